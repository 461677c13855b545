//! The revocation list: every revoked license, with a sequence number that
//! grows by one with each revocation, signed with the issuer's token key.
//!
//! Verifiers fetch it from the issuer; the bytes are checked with
//! [`verify`] before use, and a verifier never moves to a lower sequence.
//!
//! Limitation: the whole list travels each time; there are no deltas.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cose::{self, CoseError, TrustedKeys};

/// The largest list accepted: about 29,000 entries with empty reasons,
/// 10,000 with 256-character ASCII ones.
pub const MAX_LIST_LEN: usize = 4 * 1024 * 1024;

/// One revoked license.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokedLicense {
    /// Token id, lowercase hex.
    pub token_id: String,
    /// The chip it was bound to, lowercase hex.
    pub chip_id: String,
    /// Unix seconds.
    pub revoked_at: i64,
    /// Why, in words.
    pub reason: String,
}

/// The list as signed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationList {
    /// Grows by one with each new version of the list (one revocation call
    /// may add several entries); 0 for the empty list.
    pub seq: u64,
    /// Unix seconds when this list was signed.
    pub issued_at: i64,
    /// Every revoked license.
    pub entries: Vec<RevokedLicense>,
}

/// Why a list was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum RevocationError {
    /// The envelope failed.
    #[error("revocation list envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a list.
    #[error("payload is not a revocation list")]
    Payload,
}

impl RevocationList {
    /// Encodes and signs the list.
    pub fn sign(&self, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).expect("writing cbor to a vec cannot fail");
        cose::seal(payload, key_id, sign)
    }

    /// Whether a token id (lowercase hex) is on the list.
    pub fn contains(&self, token_id: &str) -> bool {
        self.entries.iter().any(|e| e.token_id == token_id)
    }
}

/// Opens a list and checks its signature.
pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<RevocationList, RevocationError> {
    let opened = cose::open(bytes, MAX_LIST_LEN, keys).map_err(RevocationError::Envelope)?;
    ciborium::from_reader(opened.payload.as_slice()).map_err(|_| RevocationError::Payload)
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    #[test]
    fn verifies_signed_lists_and_finds_entries() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let k = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let keys = TrustedKeys::new().with("i1", k.public_key().as_ref().try_into().unwrap());
        let list = RevocationList {
            seq: 2,
            issued_at: 5,
            entries: vec![RevokedLicense {
                token_id: "aa".repeat(16),
                chip_id: "bb".repeat(32),
                revoked_at: 4,
                reason: "contract ended".into(),
            }],
        };
        let bytes = list.sign("i1", |d| k.sign(d).as_ref().to_vec());
        let back = verify(&bytes, &keys).unwrap();
        assert_eq!(back, list);
        assert!(back.contains(&"aa".repeat(16)));
        assert!(!back.contains(&"ab".repeat(16)));

        let other = TrustedKeys::new().with("i1", [0u8; 32]);
        assert!(verify(&bytes, &other).is_err());
    }
}
