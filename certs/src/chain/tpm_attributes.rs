//! The TPM manufacturer, model and version an EK certificate states in the directoryName of
//! its subjectAltName (TCG EK Credential Profile; attribute OIDs under 2.23.133.2).
//!
//! Owns [`TpmAttributes`]. Attacker-controlled input: the whole subjectAltName of a peer's
//! EK certificate. Values are returned as the text the certificate holds (for example
//! `id:00001014` for a manufacturer), escaped like subjects; they are not decoded further.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use super::{ChainError, Link, describe, name};

/// Content octets of tcg-at-tpmManufacturer, 2.23.133.2.1.
const TPM_MANUFACTURER: [u8; 5] = [0x67, 0x81, 0x05, 0x02, 0x01];
/// Content octets of tcg-at-tpmModel, 2.23.133.2.2.
const TPM_MODEL: [u8; 5] = [0x67, 0x81, 0x05, 0x02, 0x02];
/// Content octets of tcg-at-tpmVersion, 2.23.133.2.3.
const TPM_VERSION: [u8; 5] = [0x67, 0x81, 0x05, 0x02, 0x03];

/// What an EK certificate's subjectAltName says about its TPM; read-only.
// Limitation: values are the certificate's text, escaped for display; the manufacturer's
// vendor id (`id:` and eight hex digits) and the firmware version are not decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TpmAttributes {
    manufacturer: Option<String>,
    model: Option<String>,
    version: Option<String>,
}

impl TpmAttributes {
    /// tcg-at-tpmManufacturer (2.23.133.2.1), such as `id:00001014`.
    pub fn manufacturer(&self) -> Option<&str> {
        self.manufacturer.as_deref()
    }

    /// tcg-at-tpmModel (2.23.133.2.2).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// tcg-at-tpmVersion (2.23.133.2.3), such as `id:20191023`.
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The slot an attribute goes in and its name for errors, if it is a TPM attribute.
    fn slot(
        &mut self,
        attribute: &AttributeTypeAndValue<'_>,
    ) -> Option<(&mut Option<String>, &str)> {
        match attribute.attr_type().as_bytes() {
            b if b == TPM_MANUFACTURER => Some((&mut self.manufacturer, "manufacturer")),
            b if b == TPM_MODEL => Some((&mut self.model, "model")),
            b if b == TPM_VERSION => Some((&mut self.version, "version")),
            _ => None,
        }
    }
}

/// Reads the TPM attributes from every directoryName of `cert`'s subjectAltName, whatever
/// its RDN layout (one attribute per RDN, or several in one). A certificate without
/// subjectAltName, or without TPM attributes in it, yields all `None`.
///
/// Refused as [`ChainError::Malformed`]: a subjectAltName that does not parse or is
/// repeated, an entry in it that does not parse, a TPM attribute stated twice, and a TPM
/// attribute whose value is not a string.
pub(super) fn from_subject_alt_name(
    cert: &X509Certificate<'_>,
    link: Link,
) -> Result<TpmAttributes, ChainError> {
    let malformed = |reason: String| ChainError::Malformed { link, reason };

    let san = cert.subject_alternative_name().map_err(|_| {
        malformed("subject alternative name extension is invalid or repeated".into())
    })?;
    let mut found = TpmAttributes::default();
    let Some(san) = san else {
        return Ok(found);
    };

    for name in &san.value.general_names {
        match name {
            GeneralName::DirectoryName(directory) => collect(directory, &mut found, link)?,
            GeneralName::Invalid(..) => {
                return Err(malformed(
                    "a subject alternative name does not parse".into(),
                ));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// Adds the TPM attributes of one directoryName to `found`.
fn collect(
    directory: &X509Name<'_>,
    found: &mut TpmAttributes,
    link: Link,
) -> Result<(), ChainError> {
    let malformed = |reason: String| ChainError::Malformed { link, reason };
    if !name::is_whole(directory.as_raw()) {
        return Err(malformed(
            "a directory name does not decode to its end".into(),
        ));
    }

    for attribute in directory.iter_attributes() {
        let Some((slot, what)) = found.slot(attribute) else {
            continue;
        };
        if slot.is_some() {
            return Err(malformed(format!("tpm {what} is stated twice")));
        }
        let text = attribute
            .as_str()
            .map_err(|_| malformed(format!("tpm {what} is not a string")))?;
        *slot = Some(describe(text));
    }
    Ok(())
}
