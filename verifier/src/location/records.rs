//! Checking landmark measurement records before their round trips count.
//!
//! Attacker-controlled: every byte of a record. Checks, in order:
//! 1. The record is signed by an enrolled landmark's key.
//! 2. It names that landmark and its enrolled position, exactly.
//! 3. It measured the chip being appraised, for this appraisal (its binding
//!    is the chip's evidence nonce), recently.
//! 4. The round trip is a number physics and the clock allow (at most one
//!    second).
//! 5. The exchange is consistent: the commitment opens to the revealed
//!    secret, and the timed response is the challenge XOR that secret.
//! 6. The chip signed the transcript with its attestation key, so the chip
//!    whose evidence is appraised took part.
//!
//! Only then does the record become a cap of radius `rtt / 2 × c`.

use std::collections::HashMap;

use chipward_certs::chain::verify_p384_fixed;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::landmark::{self, MeasurementRecord};
use subtle::ConstantTimeEq;
use thiserror::Error;

use super::geometry::{Cap, GeoError, Point, SPEED_OF_LIGHT_KM_PER_MS};

/// Longest round trip accepted, ns (one second: the far side of the Earth
/// is under 135 ms away at c, round trip).
pub const MAX_RTT_NS: u64 = 1_000_000_000;

/// An enrolled landmark.
#[derive(Clone, Debug, PartialEq)]
pub struct Landmark {
    /// Its id.
    pub id: String,
    /// Where it is.
    pub position: Point,
    /// Its Ed25519 record-signing key.
    pub public_key: [u8; 32],
}

/// The landmarks a verifier trusts, by key id.
#[derive(Clone, Debug, Default)]
pub struct Landmarks {
    by_key: HashMap<String, Landmark>,
    keys: TrustedKeys,
}

/// Why a record does not count.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum RecordRejection {
    /// Check 1.
    #[error("record not signed by an enrolled landmark")]
    Envelope(#[source] landmark::RecordError),
    /// Check 2.
    #[error("record names landmark {named:?} or a position other than its enrolment")]
    Landmark {
        /// The id the record gave.
        named: String,
    },
    /// Check 3: another chip.
    #[error("record measured another chip")]
    Chip,
    /// Check 3: another appraisal.
    #[error("record belongs to another appraisal")]
    Binding,
    /// Check 3: too old or from the future.
    #[error("record made at {measured_at_ms} ms is not within {max_age_ms} ms of now")]
    Stale {
        /// When it says it was made.
        measured_at_ms: i64,
        /// The age allowed.
        max_age_ms: i64,
    },
    /// Check 4.
    #[error("round trip of {0} ns is out of range")]
    RoundTrip(u64),
    /// Check 5.
    #[error("distance-bounding exchange does not open consistently")]
    Exchange,
    /// Check 6.
    #[error("chip signature over the exchange does not verify")]
    ChipSignature,
    /// The geometry refused the numbers.
    #[error("record geometry is invalid")]
    Geometry(#[source] GeoError),
}

/// A landmarks file that does not parse.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LandmarksError {
    /// Not valid TOML of the expected shape.
    #[error("landmarks file is not valid toml")]
    Toml(#[source] toml::de::Error),
    /// A landmark with an unusable position or key.
    #[error("landmark {0:?} has an invalid position or key")]
    Invalid(String),
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LandmarksFile {
    #[serde(default)]
    landmark: Vec<LandmarkEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LandmarkEntry {
    id: String,
    latitude: f64,
    longitude: f64,
    public_key: String,
}

impl Landmarks {
    /// Parses `[[landmark]]` tables of `id`, `latitude`, `longitude` and
    /// `public_key` (32 bytes of hex); each key's id is derived from it.
    pub fn from_toml(text: &str) -> Result<Self, LandmarksError> {
        let file: LandmarksFile = toml::from_str(text).map_err(LandmarksError::Toml)?;
        let mut out = Self::default();
        for entry in file.landmark {
            let invalid = || LandmarksError::Invalid(entry.id.clone());
            let position = Point::new(entry.latitude, entry.longitude).map_err(|_| invalid())?;
            let public_key = hex_array(&entry.public_key).ok_or_else(invalid)?;
            let key_id = chipward_certs::keys::key_id_for(&public_key);
            out = out.with(
                &key_id,
                Landmark {
                    id: entry.id.clone(),
                    position,
                    public_key,
                },
            );
        }
        Ok(out)
    }

    /// Trusts `landmark`, under the key id its public key gives.
    pub fn with(mut self, key_id: &str, landmark: Landmark) -> Self {
        self.keys = self.keys.with(key_id, landmark.public_key);
        self.by_key.insert(key_id.to_owned(), landmark);
        self
    }

    /// Checks one record (steps 1 to 6) for the chip with identity `chip_id`
    /// (hex) whose attestation key is `alias_spki`, in the appraisal whose
    /// evidence nonce is `binding`, at `now_ms`.
    pub fn check(
        &self,
        bytes: &[u8],
        chip_id: &str,
        alias_spki: &[u8],
        binding: &[u8; 32],
        now_ms: i64,
        max_age_ms: i64,
    ) -> Result<Cap, RecordRejection> {
        // 1 and 2.
        let (record, key_id) =
            landmark::verify(bytes, &self.keys).map_err(RecordRejection::Envelope)?;
        let enrolled = self.by_key.get(&key_id).ok_or(RecordRejection::Landmark {
            named: record.landmark_id.clone(),
        })?;
        let same_place = record.latitude == enrolled.position.latitude
            && record.longitude == enrolled.position.longitude;
        if record.landmark_id != enrolled.id || !same_place {
            return Err(RecordRejection::Landmark {
                named: record.landmark_id,
            });
        }

        // 3.
        if record.chip_id != chip_id {
            return Err(RecordRejection::Chip);
        }
        let given = hex_array(&record.binding).ok_or(RecordRejection::Binding)?;
        if !bool::from(given.ct_eq(binding)) {
            return Err(RecordRejection::Binding);
        }
        let age = now_ms.saturating_sub(record.measured_at_ms);
        if !(0..=max_age_ms).contains(&age) {
            return Err(RecordRejection::Stale {
                measured_at_ms: record.measured_at_ms,
                max_age_ms,
            });
        }

        // 4.
        if record.rtt_ns > MAX_RTT_NS {
            return Err(RecordRejection::RoundTrip(record.rtt_ns));
        }

        // 5 and 6.
        check_exchange(&record, binding, alias_spki)?;

        let rtt_ms = record.rtt_ns as f64 / 1_000_000.0;
        Cap::from_round_trip(enrolled.position, rtt_ms, SPEED_OF_LIGHT_KM_PER_MS)
            .map_err(RecordRejection::Geometry)
    }
}

fn check_exchange(
    record: &MeasurementRecord,
    binding: &[u8; 32],
    alias_spki: &[u8],
) -> Result<(), RecordRejection> {
    let parts = [
        &record.commitment,
        &record.challenge,
        &record.response,
        &record.secret,
    ]
    .map(|h| hex_array(h));
    let [
        Some(commitment),
        Some(challenge),
        Some(response),
        Some(secret),
    ] = parts
    else {
        return Err(RecordRejection::Exchange);
    };
    let opened = landmark::commitment(&secret);
    let expected: Vec<u8> = challenge.iter().zip(&secret).map(|(c, s)| c ^ s).collect();
    if !bool::from(opened.ct_eq(&commitment)) || !bool::from(expected.ct_eq(&response[..])) {
        return Err(RecordRejection::Exchange);
    }
    let signature =
        hex::decode(&record.chip_signature).map_err(|_| RecordRejection::ChipSignature)?;
    let transcript = landmark::transcript(
        &record.landmark_id,
        binding,
        &commitment,
        &challenge,
        &response,
    );
    verify_p384_fixed(alias_spki, &transcript, &signature)
        .map_err(|_| RecordRejection::ChipSignature)
}

fn hex_array(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests;
