//! Signed tree heads: the log's statement "log `log_id` held `size` entries
//! with Merkle root `root` at `timestamp`", in the shared COSE_Sign1
//! envelope under the issuer's Ed25519 key.
//!
//! The payload is a CBOR map with integer keys in deterministic encoding,
//! decoded as strictly as audit entries are. Key 0 names the format, so
//! that no other object signed by the same key reads as a tree head.
//! Heads reach auditors inside exports and are attacker-controlled until
//! [`verify`] has checked the envelope and signature.
//!
//! | key | field | CBOR type |
//! | --- | --- | --- |
//! | 0 | format | text, [`TREE_HEAD_FORMAT`] |
//! | 1 | `log_id` | text |
//! | 2 | `size` | unsigned integer |
//! | 3 | `root` | 32-byte string |
//! | 4 | `timestamp` | integer, Unix seconds |

use ciborium::Value;
use thiserror::Error;

use super::cbor::{self, CborError, Field};
use super::merkle::Hash;
use crate::cose::{self, CoseError, TrustedKeys};

/// The largest signed tree head accepted.
pub const MAX_TREE_HEAD_LEN: usize = 1024;
/// The longest log id, in bytes.
pub const MAX_LOG_ID_LEN: usize = 128;
/// The format name in key 0 of every tree head payload.
pub const TREE_HEAD_FORMAT: &str = "chipward-tree-head/1";

const FORMAT: Field = Field {
    key: 0,
    name: "format",
};
const LOG_ID: Field = Field {
    key: 1,
    name: "log_id",
};
const SIZE: Field = Field {
    key: 2,
    name: "size",
};
const ROOT: Field = Field {
    key: 3,
    name: "root",
};
const TIMESTAMP: Field = Field {
    key: 4,
    name: "timestamp",
};
const FIELDS: [Field; 5] = [FORMAT, LOG_ID, SIZE, ROOT, TIMESTAMP];

/// What the log states about itself at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeHead {
    /// Which log.
    pub log_id: String,
    /// Number of entries.
    pub size: u64,
    /// Merkle root of those entries.
    pub root: Hash,
    /// When the head was signed, Unix seconds.
    pub timestamp: i64,
}

/// A tree head whose signature [`verify`] checked; only that function
/// builds one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTreeHead {
    head: TreeHead,
    key_id: String,
}

/// Why a tree head was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeHeadError {
    /// The envelope or its signature failed.
    #[error("tree head envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a strictly encoded tree head map.
    #[error("tree head payload is not a strictly encoded cbor map")]
    Payload(#[source] CborError),
    /// The payload names another format.
    #[error("payload format {found:?} is not {TREE_HEAD_FORMAT}")]
    Format {
        /// The format named (first 64 characters).
        found: String,
    },
    /// The log id is longer than [`MAX_LOG_ID_LEN`].
    #[error("log id of {len} bytes exceeds the {max}-byte limit")]
    LogIdTooLong {
        /// Bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
}

impl TreeHead {
    /// Encodes and signs the head under `key_id`.
    ///
    /// ```
    /// use chipward_proto::audit::{EMPTY_ROOT, TreeHead, tree_head};
    /// use chipward_proto::cose::TrustedKeys;
    /// use ring::signature::{Ed25519KeyPair, KeyPair};
    ///
    /// let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
    /// let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    /// let head = TreeHead { log_id: "log-1".into(), size: 0, root: EMPTY_ROOT, timestamp: 0 };
    /// let signed = head.sign("k1", |m| key.sign(m).as_ref().to_vec())?;
    ///
    /// let public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
    /// let verified = tree_head::verify(&signed, &TrustedKeys::new().with("k1", public))?;
    /// assert_eq!(verified.head(), &head);
    /// # Ok::<(), chipward_proto::audit::TreeHeadError>(())
    /// ```
    pub fn sign(
        &self,
        key_id: &str,
        sign: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Result<Vec<u8>, TreeHeadError> {
        Ok(cose::seal(self.encode_payload()?, key_id, sign))
    }

    fn encode_payload(&self) -> Result<Vec<u8>, TreeHeadError> {
        if self.log_id.len() > MAX_LOG_ID_LEN {
            return Err(TreeHeadError::LogIdTooLong {
                len: self.log_id.len(),
                max: MAX_LOG_ID_LEN,
            });
        }
        Ok(cbor::encode_map(vec![
            (FORMAT.key, Value::Text(TREE_HEAD_FORMAT.into())),
            (LOG_ID.key, Value::Text(self.log_id.clone())),
            (SIZE.key, Value::Integer(self.size.into())),
            (ROOT.key, Value::Bytes(self.root.to_vec())),
            (TIMESTAMP.key, Value::Integer(self.timestamp.into())),
        ]))
    }
}

/// Opens a signed tree head and checks its signature.
pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<VerifiedTreeHead, TreeHeadError> {
    let opened = cose::open(bytes, MAX_TREE_HEAD_LEN, keys).map_err(TreeHeadError::Envelope)?;
    let head = decode_payload(&opened.payload)?;
    Ok(VerifiedTreeHead {
        head,
        key_id: opened.key_id,
    })
}

/// Reads a signed tree head without checking its signature; for building
/// exports and for display only.
pub fn decode_unverified(bytes: &[u8]) -> Result<TreeHead, TreeHeadError> {
    let payload = cose::peek_payload(bytes, MAX_TREE_HEAD_LEN).map_err(TreeHeadError::Envelope)?;
    decode_payload(&payload)
}

fn decode_payload(payload: &[u8]) -> Result<TreeHead, TreeHeadError> {
    let mut f = cbor::parse_map(payload, &FIELDS).map_err(TreeHeadError::Payload)?;
    let format = f.text(FORMAT).map_err(TreeHeadError::Payload)?;
    if format != TREE_HEAD_FORMAT {
        return Err(TreeHeadError::Format {
            found: format.chars().take(64).collect(),
        });
    }
    let head = TreeHead {
        log_id: f.text(LOG_ID).map_err(TreeHeadError::Payload)?,
        size: f.uint(SIZE).map_err(TreeHeadError::Payload)?,
        root: f.bytes(ROOT).map_err(TreeHeadError::Payload)?,
        timestamp: f.int(TIMESTAMP).map_err(TreeHeadError::Payload)?,
    };
    if head.encode_payload()? != payload {
        return Err(TreeHeadError::Payload(CborError::NonCanonical));
    }
    Ok(head)
}

impl VerifiedTreeHead {
    /// The verified head.
    pub fn head(&self) -> &TreeHead {
        &self.head
    }

    /// Id of the key that signed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
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

    fn trust(k: &Ed25519KeyPair, id: &str) -> TrustedKeys {
        TrustedKeys::new().with(id, k.public_key().as_ref().try_into().unwrap())
    }

    fn sample() -> TreeHead {
        TreeHead {
            log_id: "chipward-audit".into(),
            size: 300,
            root: [0x5a; 32],
            timestamp: 1_700_000_000,
        }
    }

    fn sealed_payload(pairs: Vec<(Value, Value)>, k: &Ed25519KeyPair) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(&Value::Map(pairs), &mut payload).unwrap();
        cose::seal(payload, "k1", |m| k.sign(m).as_ref().to_vec())
    }

    #[test]
    fn payload_is_the_map_worked_out_by_hand() {
        let head = TreeHead {
            log_id: "l".into(),
            size: 2,
            root: [0; 32],
            timestamp: 1,
        };
        // a5: 5 pairs; 00 74 "chipward-tree-head/1"; 01 61 "l"; 02 02;
        // 03 58 20 <32 zero bytes>; 04 01.
        let expected = [
            &[0xa5, 0x00, 0x74][..],
            b"chipward-tree-head/1",
            &[0x01, 0x61, b'l', 0x02, 0x02, 0x03, 0x58, 0x20],
            &[0; 32],
            &[0x04, 0x01],
        ]
        .concat();
        assert_eq!(head.encode_payload().unwrap(), expected);
    }

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let k = key();
        let signed = sample()
            .sign("k1", |m| k.sign(m).as_ref().to_vec())
            .unwrap();
        let verified = verify(&signed, &trust(&k, "k1")).unwrap();
        assert_eq!(verified.head(), &sample());
        assert_eq!(verified.key_id(), "k1");
        assert_eq!(decode_unverified(&signed).unwrap(), sample());

        assert_eq!(
            verify(&signed, &trust(&key(), "k1")),
            Err(TreeHeadError::Envelope(CoseError::BadSignature))
        );
        assert_eq!(
            verify(&signed, &trust(&k, "k2")),
            Err(TreeHeadError::Envelope(CoseError::UnknownKey("k1".into())))
        );
        for i in 0..signed.len() {
            let mut bad = signed.clone();
            bad[i] ^= 0x04;
            assert!(verify(&bad, &trust(&k, "k1")).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn refuses_payloads_that_are_not_tree_heads() {
        let k = key();
        let keys = trust(&k, "k1");
        let int = |i: u64| Value::Integer(i.into());
        let good = || {
            vec![
                (int(0), Value::Text(TREE_HEAD_FORMAT.into())),
                (int(1), Value::Text("log".into())),
                (int(2), int(1)),
                (int(3), Value::Bytes(vec![0; 32])),
                (int(4), int(1)),
            ]
        };
        assert!(verify(&sealed_payload(good(), &k), &keys).is_ok());

        let mut other = good();
        other[0].1 = Value::Text("chipward-license/1".into());
        assert_eq!(
            verify(&sealed_payload(other, &k), &keys),
            Err(TreeHeadError::Format {
                found: "chipward-license/1".into()
            })
        );
        let mut short_root = good();
        short_root[3].1 = Value::Bytes(vec![0; 31]);
        assert!(matches!(
            verify(&sealed_payload(short_root, &k), &keys),
            Err(TreeHeadError::Payload(CborError::WrongType {
                field: "root",
                ..
            }))
        ));
        let mut extra = good();
        extra.push((int(5), int(0)));
        assert_eq!(
            verify(&sealed_payload(extra, &k), &keys),
            Err(TreeHeadError::Payload(CborError::UnknownKey { key: 5 }))
        );
        let mut reordered = good();
        reordered.swap(1, 2);
        assert_eq!(
            verify(&sealed_payload(reordered, &k), &keys),
            Err(TreeHeadError::Payload(CborError::NonCanonical))
        );
        let mut negative = good();
        negative[2].1 = Value::Integer((-1i64).into());
        assert_eq!(
            verify(&sealed_payload(negative, &k), &keys),
            Err(TreeHeadError::Payload(CborError::OutOfRange {
                field: "size"
            }))
        );
    }

    #[test]
    fn refuses_long_log_ids_on_both_sides() {
        let k = key();
        let mut head = sample();
        head.log_id = "x".repeat(MAX_LOG_ID_LEN + 1);
        assert_eq!(
            head.sign("k1", |m| k.sign(m).as_ref().to_vec()),
            Err(TreeHeadError::LogIdTooLong {
                len: MAX_LOG_ID_LEN + 1,
                max: MAX_LOG_ID_LEN
            })
        );

        let int = |i: u64| Value::Integer(i.into());
        let long = sealed_payload(
            vec![
                (int(0), Value::Text(TREE_HEAD_FORMAT.into())),
                (int(1), Value::Text(head.log_id.clone())),
                (int(2), int(1)),
                (int(3), Value::Bytes(vec![0; 32])),
                (int(4), int(1)),
            ],
            &k,
        );
        assert!(matches!(
            verify(&long, &trust(&k, "k1")),
            Err(TreeHeadError::LogIdTooLong { .. })
        ));
    }
}
