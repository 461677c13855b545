//! The attestation-key binding: the issuer's signed statement that a TPM
//! attestation key belongs to the host whose endorsement key a TPM vendor
//! certified, made once the host proved it by credential activation.
//!
//! Hosts present it with every quote, so verifiers need no enrolment state.
//! On the way in it is attacker-controlled: [`verify`] checks the envelope
//! and signature before decoding.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cose::{self, CoseError, TrustedKeys};

/// The largest binding accepted.
pub const MAX_BINDING_LEN: usize = 4096;

/// What the issuer vouches for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AkBinding {
    /// The host: SHA-256 of its EK certificate's SubjectPublicKeyInfo,
    /// lowercase hex.
    pub host_id: String,
    /// The attestation key's TPM2B_PUBLIC, hex.
    pub ak_public: String,
    /// The attestation key's TPM name, hex.
    pub ak_name: String,
    /// SHA-256 of the EK certificate, hex.
    pub ek_cert_sha256: String,
    /// TPM manufacturer named in the EK certificate, if any.
    pub tpm_manufacturer: String,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds after which verifiers refuse it.
    pub expires_at: i64,
}

/// Why a binding was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingError {
    /// The envelope failed.
    #[error("ak binding envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a binding.
    #[error("payload is not an ak binding")]
    Payload,
}

impl AkBinding {
    /// Encodes and signs the binding.
    pub fn sign(&self, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).expect("writing cbor to a vec cannot fail");
        cose::seal(payload, key_id, sign)
    }
}

/// Opens a binding and checks its signature; the caller checks expiry.
pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<AkBinding, BindingError> {
    let opened = cose::open(bytes, MAX_BINDING_LEN, keys).map_err(BindingError::Envelope)?;
    ciborium::from_reader(opened.payload.as_slice()).map_err(|_| BindingError::Payload)
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    #[test]
    fn verifies_what_it_signs_and_refuses_other_keys() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let k = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let keys = TrustedKeys::new().with("i1", k.public_key().as_ref().try_into().unwrap());
        let binding = AkBinding {
            host_id: "aa".repeat(32),
            ak_public: "0058".into(),
            ak_name: "000b".into(),
            ek_cert_sha256: "bb".repeat(32),
            tpm_manufacturer: "id:00001014".into(),
            issued_at: 10,
            expires_at: 20,
        };
        let bytes = binding.sign("i1", |d| k.sign(d).as_ref().to_vec());
        assert_eq!(verify(&bytes, &keys), Ok(binding));
        assert!(verify(&bytes, &TrustedKeys::new().with("i1", [0; 32])).is_err());
        assert_eq!(
            verify(b"junk", &keys),
            Err(BindingError::Envelope(CoseError::Malformed))
        );
    }
}
