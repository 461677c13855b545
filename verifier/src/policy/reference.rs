//! Reference values: for each chip model, the approved values of each
//! measurement index. A model is named by the common name of the CA that
//! issued the chip's device-identity certificate (the vendor's provisioner
//! CA for that product line), which the chain to a trusted root vouches for.
//!
//! The file is operator-supplied configuration, not peer input, but it is
//! still validated: hex must parse and indices must be 1 to 254.
//!
//! ```toml
//! [[model]]
//! name = "CW-100 Provisioner CA"
//! [model.measurements]
//! 1 = ["<hex>", "<hex>"]   # any listed value is approved
//! ```

use std::collections::BTreeMap;

use chipward_proto::result::ClaimResult;
use chipward_proto::spdm::MeasurementBlock;
use serde::Deserialize;
use thiserror::Error;

use crate::claims::{self, FIRMWARE_MEASUREMENTS, code};

/// Approved measurement values per model.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReferenceValues {
    models: BTreeMap<String, BTreeMap<u8, Vec<Vec<u8>>>>,
}

/// A reference-values file that does not parse.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Not valid TOML of the expected shape.
    #[error("reference values are not valid toml")]
    Toml(#[source] toml::de::Error),
    /// An index outside 1..=254.
    #[error("model {model}: measurement index {index:?} is not 1 to 254")]
    Index {
        /// Model name.
        model: String,
        /// The key as written.
        index: String,
    },
    /// A value that is not hex.
    #[error("model {model}: measurement {index} value is not hex")]
    Hex {
        /// Model name.
        model: String,
        /// Measurement index.
        index: u8,
    },
}

#[derive(Deserialize)]
struct File {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

#[derive(Deserialize)]
struct ModelEntry {
    name: String,
    measurements: BTreeMap<String, Vec<String>>,
}

impl ReferenceValues {
    /// Parses the TOML form shown in the module docs.
    pub fn from_toml(text: &str) -> Result<Self, ReferenceError> {
        let file: File = toml::from_str(text).map_err(ReferenceError::Toml)?;
        let mut out = Self::default();
        for entry in file.model {
            let mut indices = BTreeMap::new();
            for (key, values) in entry.measurements {
                let index = key
                    .parse::<u8>()
                    .ok()
                    .filter(|i| (1..=254).contains(i))
                    .ok_or_else(|| ReferenceError::Index {
                        model: entry.name.clone(),
                        index: key,
                    })?;
                let decoded = values
                    .iter()
                    .map(hex::decode)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|_| ReferenceError::Hex {
                        model: entry.name.clone(),
                        index,
                    })?;
                indices.insert(index, decoded);
            }
            out.models.insert(entry.name, indices);
        }
        Ok(out)
    }

    /// Adds or replaces one model's values.
    pub fn insert(&mut self, model: &str, index: u8, approved: Vec<Vec<u8>>) {
        self.models
            .entry(model.to_owned())
            .or_default()
            .insert(index, approved);
    }

    /// The TOML form, for writing a file that [`Self::from_toml`] reads.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        for (model, indices) in &self.models {
            // A TOML string, escaped by TOML's rules: Rust's `{:?}` writes
            // escapes such as `\u{c}` that no TOML reader accepts.
            let name = toml::Value::String(model.clone());
            out.push_str(&format!("[[model]]\nname = {name}\n[model.measurements]\n"));
            for (index, values) in indices {
                let list: Vec<String> = values
                    .iter()
                    .map(|v| format!("\"{}\"", hex::encode(v)))
                    .collect();
                out.push_str(&format!("{index} = [{}]\n", list.join(", ")));
            }
            out.push('\n');
        }
        out
    }

    /// Judges the measurements of a chip of `model`.
    pub fn judge(&self, model: &str, blocks: &[MeasurementBlock]) -> ClaimResult {
        let Some(reference) = self.models.get(model) else {
            return claims::unknown(
                FIRMWARE_MEASUREMENTS,
                code::NO_REFERENCE,
                format!("no reference values for model {model:?}"),
            );
        };
        for (index, approved) in reference {
            let Some(block) = blocks.iter().find(|b| b.index == *index) else {
                return claims::fail(
                    FIRMWARE_MEASUREMENTS,
                    code::MEASUREMENT_MISMATCH,
                    format!("measurement {index} is missing"),
                );
            };
            if !approved.contains(&block.value) {
                return claims::fail(
                    FIRMWARE_MEASUREMENTS,
                    code::MEASUREMENT_MISMATCH,
                    format!("measurement {index} is not an approved value"),
                );
            }
        }
        claims::pass(
            FIRMWARE_MEASUREMENTS,
            format!("{} measurements match reference values", reference.len()),
        )
    }
}

#[cfg(test)]
mod tests {
    use chipward_proto::result::Status;
    use chipward_proto::spdm::DMTF_SPEC;

    use super::*;

    fn block(index: u8, fill: u8) -> MeasurementBlock {
        MeasurementBlock {
            index,
            spec: DMTF_SPEC,
            value_type: 1,
            value: vec![fill; 48],
        }
    }

    fn values() -> ReferenceValues {
        let text = format!(
            "[[model]]\nname = \"CW-100\"\n[model.measurements]\n1 = [\"{}\", \"{}\"]\n2 = [\"{}\"]\n",
            "aa".repeat(48),
            "ab".repeat(48),
            "bb".repeat(48)
        );
        ReferenceValues::from_toml(&text).unwrap()
    }

    #[test]
    fn passes_approved_values_and_ignores_unreferenced_indices() {
        let r = values().judge("CW-100", &[block(1, 0xab), block(2, 0xbb), block(9, 0)]);
        assert_eq!(r.status, Status::Pass);
    }

    #[test]
    fn fails_a_changed_or_missing_measurement() {
        let changed = values().judge("CW-100", &[block(1, 0xaa), block(2, 0xbc)]);
        assert_eq!(
            (changed.status, changed.code.as_str()),
            (Status::Fail, code::MEASUREMENT_MISMATCH)
        );
        assert_eq!(changed.reason, "measurement 2 is not an approved value");
        let missing = values().judge("CW-100", &[block(1, 0xaa)]);
        assert_eq!(missing.reason, "measurement 2 is missing");
    }

    #[test]
    fn unknown_model_is_unknown_not_pass() {
        let r = values().judge("GH100", &[block(1, 0xaa)]);
        assert_eq!(
            (r.status, r.code.as_str()),
            (Status::Unknown, code::NO_REFERENCE)
        );
    }

    /// Found by the `verifier_config` fuzz target: a name with a form feed
    /// (TOML escape `\f`) was written back as `\u{c}`, which TOML refuses.
    #[test]
    fn writes_names_with_control_characters_that_read_back() {
        let file = "[[model]]\nname = \"CW-100 Provi\\fsioner CA\"\n\
                    [model.measurements]\n1 = [\"10eb\"]\n";
        let read = ReferenceValues::from_toml(file).unwrap();
        let mut expected = ReferenceValues::default();
        expected.insert("CW-100 Provi\u{c}sioner CA", 1, vec![vec![0x10, 0xeb]]);
        assert_eq!(read, expected);
        assert_eq!(
            ReferenceValues::from_toml(&read.to_toml()).unwrap(),
            expected
        );

        for name in [
            "nul\0",
            "del\u{7f}",
            "zero\u{200b}width",
            "q\"b\\s",
            "t\tn\n",
            "é'",
        ] {
            let mut values = ReferenceValues::default();
            values.insert(name, 2, vec![vec![0xaa]]);
            let reread = ReferenceValues::from_toml(&values.to_toml());
            assert_eq!(reread.unwrap(), values, "{name:?}");
        }
    }

    #[test]
    fn round_trips_through_toml_and_rejects_bad_files() {
        assert_eq!(
            ReferenceValues::from_toml(&values().to_toml()).unwrap(),
            values()
        );
        let bad_index = "[[model]]\nname = \"x\"\n[model.measurements]\n0 = [\"aa\"]\n";
        assert!(matches!(
            ReferenceValues::from_toml(bad_index),
            Err(ReferenceError::Index { .. })
        ));
        let bad_hex = "[[model]]\nname = \"x\"\n[model.measurements]\n1 = [\"zz\"]\n";
        assert!(matches!(
            ReferenceValues::from_toml(bad_hex),
            Err(ReferenceError::Hex { .. })
        ));
        assert!(matches!(
            ReferenceValues::from_toml("model = 3"),
            Err(ReferenceError::Toml(_))
        ));
    }
}
