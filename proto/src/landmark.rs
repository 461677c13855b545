//! Landmark measurement records: a landmark of known position timed a
//! distance-bounding exchange with a chip and signs what it saw.
//!
//! The exchange (in the manner of Brands and Chaum): the chip commits to a
//! random secret `s` (`commitment = SHA-256(label ‖ s)`); the landmark sends
//! a random `challenge` and times the chip's `response = challenge XOR s`,
//! which costs the chip nothing; only afterwards does the chip reveal `s` and
//! sign the transcript with its attestation key. A relay cannot answer for a
//! chip elsewhere without knowing `s`, which never leaves the chip until the
//! clock has stopped, so the timed round trip bounds the chip's distance.
//!
//! Records reach the verifier through the operator and are
//! attacker-controlled: [`verify`] checks the landmark's signature before
//! decoding, and every field is checked again by the verifier.

use ring::digest;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cose::{self, CoseError, TrustedKeys};

/// The largest record accepted.
pub const MAX_RECORD_LEN: usize = 4096;
const COMMIT_LABEL: &[u8] = b"chipward/distance-bound/commit/v1";
const TRANSCRIPT_LABEL: &[u8] = b"chipward/distance-bound/transcript/v1";

/// What a landmark signs about one timed exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasurementRecord {
    /// The landmark's enrolled id.
    pub landmark_id: String,
    /// Its position, degrees north.
    pub latitude: f64,
    /// Its position, degrees east.
    pub longitude: f64,
    /// The chip measured, lowercase hex.
    pub chip_id: String,
    /// The appraisal this measurement belongs to: the chip's evidence nonce,
    /// hex.
    pub binding: String,
    /// Timed round trip, nanoseconds, from a monotonic clock.
    pub rtt_ns: u64,
    /// Unix milliseconds when the exchange ended.
    pub measured_at_ms: i64,
    /// The chip's commitment, hex.
    pub commitment: String,
    /// The landmark's challenge, hex.
    pub challenge: String,
    /// The chip's timed response, hex.
    pub response: String,
    /// The secret the chip revealed after the clock stopped, hex.
    pub secret: String,
    /// The chip's ECDSA P-384 signature (r‖s) over [`transcript`], hex.
    pub chip_signature: String,
}

/// Why a record was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordError {
    /// The envelope failed.
    #[error("measurement record envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a record.
    #[error("payload is not a measurement record")]
    Payload,
}

impl MeasurementRecord {
    /// Encodes and signs the record with the landmark's key.
    pub fn sign(&self, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).expect("writing cbor to a vec cannot fail");
        cose::seal(payload, key_id, sign)
    }
}

/// Opens a record and checks the landmark's signature; the caller checks
/// the rest.
pub fn verify(
    bytes: &[u8],
    keys: &TrustedKeys,
) -> Result<(MeasurementRecord, String), RecordError> {
    let opened = cose::open(bytes, MAX_RECORD_LEN, keys).map_err(RecordError::Envelope)?;
    let record =
        ciborium::from_reader(opened.payload.as_slice()).map_err(|_| RecordError::Payload)?;
    Ok((record, opened.key_id))
}

/// The chip's commitment to its secret.
pub fn commitment(secret: &[u8; 32]) -> [u8; 32] {
    sha256(&[COMMIT_LABEL, secret])
}

/// What the chip signs once the clock has stopped: the landmark, the
/// appraisal binding and the whole exchange, each length-prefixed.
pub fn transcript(
    landmark_id: &str,
    binding: &[u8],
    commitment: &[u8],
    challenge: &[u8],
    response: &[u8],
) -> Vec<u8> {
    let mut out = TRANSCRIPT_LABEL.to_vec();
    for part in [
        landmark_id.as_bytes(),
        binding,
        commitment,
        challenge,
        response,
    ] {
        out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        out.extend_from_slice(part);
    }
    out
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    #[test]
    fn verifies_what_the_landmark_signs() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let k = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let keys = TrustedKeys::new().with("lm-1", k.public_key().as_ref().try_into().unwrap());
        let record = MeasurementRecord {
            landmark_id: "fra-lm-1".into(),
            latitude: 50.1,
            longitude: 8.6,
            chip_id: "aa".repeat(32),
            binding: "bb".repeat(32),
            rtt_ns: 123_456,
            measured_at_ms: 1_000,
            commitment: "cc".repeat(32),
            challenge: "dd".repeat(32),
            response: "ee".repeat(32),
            secret: "ff".repeat(32),
            chip_signature: "00".repeat(96),
        };
        let bytes = record.sign("lm-1", |d| k.sign(d).as_ref().to_vec());
        assert_eq!(verify(&bytes, &keys), Ok((record, "lm-1".to_owned())));
        let mut tampered = bytes.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        assert!(verify(&tampered, &keys).is_err());
    }

    #[test]
    fn transcripts_keep_their_parts_apart() {
        assert_ne!(
            transcript("ab", b"c", b"", b"", b""),
            transcript("a", b"bc", b"", b"", b"")
        );
        assert_eq!(commitment(&[1; 32]), sha256(&[COMMIT_LABEL, &[1; 32]]));
    }
}
