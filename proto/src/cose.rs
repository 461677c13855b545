//! The one COSE_Sign1 envelope (RFC 9052, section 4.2) that license tokens,
//! attestation results and revocation lists travel in: Ed25519 (`EdDSA`,
//! alg -8) with the signer's key id in the protected header.
//!
//! Everything handed to [`open`] is attacker-controlled. It checks the size
//! first, then the tag, then that the protected header names exactly the
//! algorithm expected and no critical extensions, then the signature with a
//! key chosen by key id from a caller-supplied set. The payload is returned
//! only after the signature holds.

use coset::{
    CborSerializable, CoseSign1, CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana,
};
use ring::signature::{ED25519, UnparsedPublicKey};
use thiserror::Error;

/// Ed25519 public keys trusted to sign one kind of object, by key id.
#[derive(Clone, Debug, Default)]
pub struct TrustedKeys {
    keys: Vec<(String, [u8; 32])>,
}

impl TrustedKeys {
    /// An empty set: nothing verifies.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key under its id.
    pub fn with(mut self, key_id: impl Into<String>, public_key: [u8; 32]) -> Self {
        self.keys.push((key_id.into(), public_key));
        self
    }

    fn find(&self, key_id: &str) -> Option<&[u8; 32]> {
        self.keys
            .iter()
            .find(|(id, _)| id == key_id)
            .map(|(_, k)| k)
    }
}

/// Why an envelope was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoseError {
    /// Larger than the limit for this kind of object.
    #[error("{len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not a tagged COSE_Sign1 structure.
    #[error("not a tagged cose_sign1 structure")]
    Malformed,
    /// No payload inside.
    #[error("cose_sign1 carries no payload")]
    NoPayload,
    /// The protected header names another algorithm or none.
    #[error("algorithm {found} is not the expected eddsa")]
    Algorithm {
        /// What the header said.
        found: String,
    },
    /// The protected header lists critical parameters.
    #[error("protected header marks parameters critical")]
    Critical,
    /// The key id is missing or unknown.
    #[error("key id {0:?} is not trusted")]
    UnknownKey(String),
    /// The signature does not verify under the named key.
    #[error("signature does not verify")]
    BadSignature,
}

/// An opened envelope: payload and the id of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The signed payload.
    pub payload: Vec<u8>,
    /// Key id from the protected header.
    pub key_id: String,
}

/// Wraps `payload` in a tagged COSE_Sign1 signed by `sign` under `key_id`.
pub fn seal(payload: Vec<u8>, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::EdDSA)
        .key_id(key_id.as_bytes().to_vec())
        .build();
    let sign1 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", sign)
        .build();
    sign1
        .to_tagged_vec()
        .expect("encoding a built cose_sign1 cannot fail")
}

/// Checks an envelope and returns its payload.
pub fn open(bytes: &[u8], max_len: usize, keys: &TrustedKeys) -> Result<Opened, CoseError> {
    // 1. Size, before any parsing.
    if bytes.len() > max_len {
        return Err(CoseError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }

    // 2. Structure: tag 18, then the four-element array.
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| CoseError::Malformed)?;

    // 3. Header: exactly EdDSA, nothing critical, a known key id.
    let header = &sign1.protected.header;
    match &header.alg {
        Some(coset::Algorithm::Assigned(iana::Algorithm::EdDSA)) => {}
        other => {
            return Err(CoseError::Algorithm {
                found: format!("{other:?}"),
            });
        }
    }
    if !header.crit.is_empty() {
        return Err(CoseError::Critical);
    }
    let key_id = String::from_utf8_lossy(&header.key_id).into_owned();
    let public = keys
        .find(&key_id)
        .ok_or_else(|| CoseError::UnknownKey(key_id.clone()))?;

    // 4. Signature over the Sig_structure built from the bytes as received.
    sign1
        .verify_signature(b"", |sig, data| {
            UnparsedPublicKey::new(&ED25519, public).verify(data, sig)
        })
        .map_err(|_| CoseError::BadSignature)?;

    let payload = sign1.payload.ok_or(CoseError::NoPayload)?;
    Ok(Opened { payload, key_id })
}

/// The one encoding of a COSE_Sign1 whose signature covers the same
/// content: unprotected header emptied (nothing in it is signed) and every
/// CBOR head in its shortest form, the protected header kept byte for byte.
/// Two envelopes with the same signed content have the same canonical
/// bytes, so a digest of them names the signed content, not its wrapping.
pub fn canonical(bytes: &[u8], max_len: usize) -> Result<Vec<u8>, CoseError> {
    if bytes.len() > max_len {
        return Err(CoseError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let mut sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| CoseError::Malformed)?;
    sign1.unprotected = coset::Header::default();
    sign1.to_tagged_vec().map_err(|_| CoseError::Malformed)
}

/// Returns the payload without checking anything; for display only.
pub fn peek_payload(bytes: &[u8], max_len: usize) -> Result<Vec<u8>, CoseError> {
    if bytes.len() > max_len {
        return Err(CoseError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    let sign1 = CoseSign1::from_tagged_slice(bytes).map_err(|_| CoseError::Malformed)?;
    sign1.payload.ok_or(CoseError::NoPayload)
}

/// Re-encodes an untagged structure; used by tests to build hostile inputs.
#[doc(hidden)]
pub fn untag(bytes: &[u8]) -> Option<Vec<u8>> {
    CoseSign1::from_tagged_slice(bytes).ok()?.to_vec().ok()
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    fn key() -> Ed25519KeyPair {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
    }

    fn public(k: &Ed25519KeyPair) -> [u8; 32] {
        k.public_key().as_ref().try_into().unwrap()
    }

    #[test]
    fn opens_what_it_seals() {
        let k = key();
        let bytes = seal(b"hello".to_vec(), "k1", |d| k.sign(d).as_ref().to_vec());
        let keys = TrustedKeys::new().with("k1", public(&k));
        let opened = open(&bytes, 1024, &keys).unwrap();
        assert_eq!(
            opened,
            Opened {
                payload: b"hello".to_vec(),
                key_id: "k1".into()
            }
        );
        // Tag 18 (0xd2) then a 4-element array (0x84).
        assert_eq!(&bytes[..2], &[0xd2, 0x84]);
    }

    #[test]
    fn rejects_other_keys_ids_and_flipped_bytes() {
        let k = key();
        let other = key();
        let bytes = seal(b"hello".to_vec(), "k1", |d| k.sign(d).as_ref().to_vec());

        let wrong_key = TrustedKeys::new().with("k1", public(&other));
        assert_eq!(open(&bytes, 1024, &wrong_key), Err(CoseError::BadSignature));
        let wrong_id = TrustedKeys::new().with("k2", public(&k));
        assert_eq!(
            open(&bytes, 1024, &wrong_id),
            Err(CoseError::UnknownKey("k1".into()))
        );

        let keys = TrustedKeys::new().with("k1", public(&k));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(open(&b, 1024, &keys).is_err(), "flip at {i} accepted");
        }
    }

    #[test]
    fn rejects_algorithms_other_than_eddsa() {
        let k = key();
        let protected = HeaderBuilder::new()
            .algorithm(iana::Algorithm::ES256)
            .key_id(b"k1".to_vec())
            .build();
        let bytes = CoseSign1Builder::new()
            .protected(protected)
            .payload(b"x".to_vec())
            .create_signature(b"", |d| k.sign(d).as_ref().to_vec())
            .build()
            .to_tagged_vec()
            .unwrap();
        let keys = TrustedKeys::new().with("k1", public(&k));
        assert!(matches!(
            open(&bytes, 1024, &keys),
            Err(CoseError::Algorithm { .. })
        ));
    }

    #[test]
    fn rejects_untagged_oversized_and_garbage() {
        let k = key();
        let bytes = seal(b"hello".to_vec(), "k1", |d| k.sign(d).as_ref().to_vec());
        let keys = TrustedKeys::new().with("k1", public(&k));
        assert_eq!(
            open(&untag(&bytes).unwrap(), 1024, &keys),
            Err(CoseError::Malformed)
        );
        assert!(matches!(
            open(&bytes, 10, &keys),
            Err(CoseError::TooLarge { .. })
        ));
        assert_eq!(
            open(b"\xff\x00garbage", 1024, &keys),
            Err(CoseError::Malformed)
        );
        assert_eq!(open(&[], 1024, &keys), Err(CoseError::Malformed));
    }
}

#[cfg(test)]
mod canonical_tests {
    use super::*;

    #[test]
    fn canonical_bytes_name_the_signed_content() {
        let key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&[7; 32]).unwrap();
        let public: [u8; 32] = ring::signature::KeyPair::public_key(&key)
            .as_ref()
            .try_into()
            .unwrap();
        let keys = TrustedKeys::new().with("k", public);
        let sealed = seal(b"payload".to_vec(), "k", |m| key.sign(m).as_ref().to_vec());
        assert_eq!(canonical(&sealed, 1024).unwrap(), sealed);

        let mut sign1 = CoseSign1::from_tagged_slice(&sealed).unwrap();
        sign1.unprotected.key_id = b"unsigned".to_vec();
        let rewrapped = sign1.to_tagged_vec().unwrap();
        assert_ne!(rewrapped, sealed);
        open(&rewrapped, 1024, &keys).unwrap();
        let again = canonical(&rewrapped, 1024).unwrap();
        assert_eq!(again, sealed);
        open(&again, 1024, &keys).unwrap();
    }
}
