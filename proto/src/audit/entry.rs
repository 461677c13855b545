//! One audit log entry: what happened, when, to which chip, license and
//! tenant, who asked, and the SHA-256 digests of the objects involved.
//!
//! An entry is the leaf data of the Merkle tree, so its bytes must be
//! unique: it is a CBOR map with small integer keys in ascending order, in
//! the core deterministic encoding of RFC 8949 section 4.2.1. Decoding is
//! strict (unknown or repeated keys, wrong types, oversize fields and any
//! other encoding of the same value are refused), because entries reach
//! auditors through exports that anyone may have edited.
//!
//! | key | field | CBOR type |
//! | --- | --- | --- |
//! | 1 | `at` | integer, Unix seconds |
//! | 2 | `kind` | unsigned integer, [`EntryKind::code`] |
//! | 3 | `chip_id` | 32-byte string, omitted when absent |
//! | 4 | `token_id` | 16-byte string, omitted when absent |
//! | 5 | `tenant` | text |
//! | 6 | `site_id` | text |
//! | 7 | `actor` | text |
//! | 8 | `digests` | map of text name to 32-byte string |
//! | 9 | `key_id` | text |
//! | 10 | `detail` | text |

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use ciborium::Value;
use thiserror::Error;

use super::cbor::{self, CborError, Field};
use super::merkle::{self, Hash};
use crate::ids::{ChipId, TokenId};

/// The largest encoded entry.
pub const MAX_ENTRY_LEN: usize = 16 * 1024;
/// The longest `detail`, in bytes.
pub const MAX_DETAIL_LEN: usize = 4 * 1024;
/// The longest `tenant`, `site_id`, `actor` or `key_id`, in bytes.
pub const MAX_TEXT_LEN: usize = 256;
/// The most digests one entry carries.
pub const MAX_DIGESTS: usize = 16;
/// The longest digest name, in bytes.
pub const MAX_DIGEST_NAME_LEN: usize = 64;

const AT: Field = Field { key: 1, name: "at" };
const KIND: Field = Field {
    key: 2,
    name: "kind",
};
const CHIP_ID: Field = Field {
    key: 3,
    name: "chip_id",
};
const TOKEN_ID: Field = Field {
    key: 4,
    name: "token_id",
};
const TENANT: Field = Field {
    key: 5,
    name: "tenant",
};
const SITE_ID: Field = Field {
    key: 6,
    name: "site_id",
};
const ACTOR: Field = Field {
    key: 7,
    name: "actor",
};
const DIGESTS: Field = Field {
    key: 8,
    name: "digests",
};
const KEY_ID: Field = Field {
    key: 9,
    name: "key_id",
};
const DETAIL: Field = Field {
    key: 10,
    name: "detail",
};
const FIELDS: [Field; 10] = [
    AT, KIND, CHIP_ID, TOKEN_ID, TENANT, SITE_ID, ACTOR, DIGESTS, KEY_ID, DETAIL,
];

/// What an entry records. Each kind has a stable code (on the wire) and a
/// stable lowercase name (in reports); neither ever changes meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EntryKind {
    /// A chip identity was enrolled (code 1).
    ChipEnrolled,
    /// A host was enrolled (code 2).
    HostEnrolled,
    /// A tenant or end user was screened against restricted-party lists (3).
    Screened,
    /// A screening outcome was overridden by a person (4).
    ScreeningOverridden,
    /// A license was issued (5).
    Issued,
    /// A license request was refused (6).
    Refused,
    /// A license was renewed (7).
    Renewed,
    /// A license was revoked (8).
    Revoked,
    /// Evidence was appraised and a result signed (9).
    Appraised,
    /// A restricted-party list was loaded (10).
    ListLoaded,
    /// Existing licenses were screened again against a new list (11).
    Rescreened,
    /// A hold was placed on a tenant, chip or license (12).
    HoldPlaced,
    /// A hold was lifted (13).
    HoldLifted,
    /// Personal data was purged; the entry records what and why (14).
    Purged,
}

impl EntryKind {
    /// Every kind, in code order.
    pub const ALL: [Self; 14] = [
        Self::ChipEnrolled,
        Self::HostEnrolled,
        Self::Screened,
        Self::ScreeningOverridden,
        Self::Issued,
        Self::Refused,
        Self::Renewed,
        Self::Revoked,
        Self::Appraised,
        Self::ListLoaded,
        Self::Rescreened,
        Self::HoldPlaced,
        Self::HoldLifted,
        Self::Purged,
    ];

    /// The stable code written on the wire (1 to 14).
    pub fn code(self) -> u8 {
        match self {
            Self::ChipEnrolled => 1,
            Self::HostEnrolled => 2,
            Self::Screened => 3,
            Self::ScreeningOverridden => 4,
            Self::Issued => 5,
            Self::Refused => 6,
            Self::Renewed => 7,
            Self::Revoked => 8,
            Self::Appraised => 9,
            Self::ListLoaded => 10,
            Self::Rescreened => 11,
            Self::HoldPlaced => 12,
            Self::HoldLifted => 13,
            Self::Purged => 14,
        }
    }

    /// The kind with this code, if any.
    pub fn from_code(code: u64) -> Option<Self> {
        Self::ALL.into_iter().find(|k| u64::from(k.code()) == code)
    }

    /// The stable lowercase name, for example `screening_overridden`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ChipEnrolled => "chip_enrolled",
            Self::HostEnrolled => "host_enrolled",
            Self::Screened => "screened",
            Self::ScreeningOverridden => "screening_overridden",
            Self::Issued => "issued",
            Self::Refused => "refused",
            Self::Renewed => "renewed",
            Self::Revoked => "revoked",
            Self::Appraised => "appraised",
            Self::ListLoaded => "list_loaded",
            Self::Rescreened => "rescreened",
            Self::HoldPlaced => "hold_placed",
            Self::HoldLifted => "hold_lifted",
            Self::Purged => "purged",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EntryKind {
    type Err = EntryError;

    fn from_str(name: &str) -> Result<Self, EntryError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| EntryError::UnknownKindName {
                name: name.chars().take(64).collect(),
            })
    }
}

/// One audit log entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditEntry {
    /// When it happened, Unix seconds.
    pub at: i64,
    /// What happened.
    pub kind: EntryKind,
    /// The chip concerned, if one is.
    pub chip_id: Option<ChipId>,
    /// The license token concerned, if one is.
    pub token_id: Option<TokenId>,
    /// The tenant concerned; may be empty.
    pub tenant: String,
    /// The site concerned; may be empty.
    pub site_id: String,
    /// Who asked for it (an operator, a service, a key id).
    pub actor: String,
    /// Named SHA-256 digests of the objects involved, for example
    /// `evidence`, `license`, `policy`, `reference_values`, `list`, `result`.
    pub digests: BTreeMap<String, Hash>,
    /// Id of the key that signed the license or result; may be empty.
    pub key_id: String,
    /// Words for a reader, at most [`MAX_DETAIL_LEN`] bytes.
    pub detail: String,
}

/// Why an entry could not be encoded or decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// The encoded entry is larger than [`MAX_ENTRY_LEN`].
    #[error("entry of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The bytes are not a strictly encoded entry map.
    #[error("entry is not a strictly encoded cbor map")]
    Cbor(#[source] CborError),
    /// A text field is longer than its limit.
    #[error("field {field} of {len} bytes exceeds the {max}-byte limit")]
    FieldTooLong {
        /// Field name.
        field: &'static str,
        /// Bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The kind code is not one of [`EntryKind::ALL`].
    #[error("unknown entry kind code {code}")]
    UnknownKind {
        /// The code.
        code: u64,
    },
    /// The kind name is not one of [`EntryKind::ALL`].
    #[error("unknown entry kind name {name:?}")]
    UnknownKindName {
        /// The name (first 64 characters).
        name: String,
    },
    /// More than [`MAX_DIGESTS`] digests.
    #[error("{count} digests exceed the limit of {max}")]
    TooManyDigests {
        /// Digests given.
        count: usize,
        /// Limit.
        max: usize,
    },
    /// A digest name that is empty, too long, repeated, or not made of
    /// `a-z`, `0-9`, `_`, `.` and `-`.
    #[error("digest name {name:?} is not allowed")]
    DigestName {
        /// The name (first 64 characters).
        name: String,
    },
}

impl AuditEntry {
    /// An entry of `kind` at `at` with every other field empty.
    pub fn new(at: i64, kind: EntryKind) -> Self {
        Self {
            at,
            kind,
            chip_id: None,
            token_id: None,
            tenant: String::new(),
            site_id: String::new(),
            actor: String::new(),
            digests: BTreeMap::new(),
            key_id: String::new(),
            detail: String::new(),
        }
    }

    /// The entry's one encoding: the leaf data of the log.
    ///
    /// ```
    /// use chipward_proto::audit::{AuditEntry, EntryKind};
    ///
    /// let mut entry = AuditEntry::new(1_700_000_000, EntryKind::Issued);
    /// entry.tenant = "acme".into();
    /// let bytes = entry.encode()?;
    /// assert_eq!(AuditEntry::decode(&bytes)?, entry);
    /// # Ok::<(), chipward_proto::audit::EntryError>(())
    /// ```
    pub fn encode(&self) -> Result<Vec<u8>, EntryError> {
        self.check_limits()?;

        let mut digests: Vec<(Value, Value)> = self
            .digests
            .iter()
            .map(|(name, d)| (Value::Text(name.clone()), Value::Bytes(d.to_vec())))
            .collect();
        cbor::sort_text_keys(&mut digests);

        let mut pairs = vec![
            (AT.key, Value::Integer(self.at.into())),
            (KIND.key, Value::Integer(self.kind.code().into())),
        ];
        if let Some(chip) = &self.chip_id {
            pairs.push((CHIP_ID.key, Value::Bytes(chip.0.to_vec())));
        }
        if let Some(token) = &self.token_id {
            pairs.push((TOKEN_ID.key, Value::Bytes(token.0.to_vec())));
        }
        pairs.extend([
            (TENANT.key, Value::Text(self.tenant.clone())),
            (SITE_ID.key, Value::Text(self.site_id.clone())),
            (ACTOR.key, Value::Text(self.actor.clone())),
            (DIGESTS.key, Value::Map(digests)),
            (KEY_ID.key, Value::Text(self.key_id.clone())),
            (DETAIL.key, Value::Text(self.detail.clone())),
        ]);
        let bytes = cbor::encode_map(pairs);

        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_LEN,
            });
        }
        Ok(bytes)
    }

    /// Decodes an entry, refusing anything but its one encoding.
    pub fn decode(bytes: &[u8]) -> Result<Self, EntryError> {
        // 1. Size, before any parsing.
        if bytes.len() > MAX_ENTRY_LEN {
            return Err(EntryError::TooLarge {
                len: bytes.len(),
                max: MAX_ENTRY_LEN,
            });
        }

        // 2. A map of known integer keys, each once, each of its type.
        let mut f = cbor::parse_map(bytes, &FIELDS).map_err(EntryError::Cbor)?;
        let code = f.uint(KIND).map_err(EntryError::Cbor)?;
        let entry = Self {
            at: f.int(AT).map_err(EntryError::Cbor)?,
            kind: EntryKind::from_code(code).ok_or(EntryError::UnknownKind { code })?,
            chip_id: f.opt_bytes(CHIP_ID).map_err(EntryError::Cbor)?.map(ChipId),
            token_id: f
                .opt_bytes(TOKEN_ID)
                .map_err(EntryError::Cbor)?
                .map(TokenId),
            tenant: f.text(TENANT).map_err(EntryError::Cbor)?,
            site_id: f.text(SITE_ID).map_err(EntryError::Cbor)?,
            actor: f.text(ACTOR).map_err(EntryError::Cbor)?,
            digests: decode_digests(f.map(DIGESTS).map_err(EntryError::Cbor)?)?,
            key_id: f.text(KEY_ID).map_err(EntryError::Cbor)?,
            detail: f.text(DETAIL).map_err(EntryError::Cbor)?,
        };

        // 3. Limits, then the one-encoding rule: re-encoding must give back
        //    exactly the bytes received.
        if entry.encode()? != bytes {
            return Err(EntryError::Cbor(CborError::NonCanonical));
        }
        Ok(entry)
    }

    /// The Merkle leaf hash of the encoded entry.
    pub fn leaf_hash(&self) -> Result<Hash, EntryError> {
        Ok(merkle::leaf_hash(&self.encode()?))
    }

    /// Whether any of the entry's digests is `digest`.
    pub fn references(&self, digest: &Hash) -> bool {
        self.digests.values().any(|d| d == digest)
    }

    fn check_limits(&self) -> Result<(), EntryError> {
        for (field, text, max) in [
            (TENANT.name, &self.tenant, MAX_TEXT_LEN),
            (SITE_ID.name, &self.site_id, MAX_TEXT_LEN),
            (ACTOR.name, &self.actor, MAX_TEXT_LEN),
            (KEY_ID.name, &self.key_id, MAX_TEXT_LEN),
            (DETAIL.name, &self.detail, MAX_DETAIL_LEN),
        ] {
            if text.len() > max {
                return Err(EntryError::FieldTooLong {
                    field,
                    len: text.len(),
                    max,
                });
            }
        }
        if self.digests.len() > MAX_DIGESTS {
            return Err(EntryError::TooManyDigests {
                count: self.digests.len(),
                max: MAX_DIGESTS,
            });
        }
        match self.digests.keys().find(|name| !digest_name_ok(name)) {
            Some(name) => Err(EntryError::DigestName {
                name: name.chars().take(64).collect(),
            }),
            None => Ok(()),
        }
    }
}

fn decode_digests(pairs: Vec<(Value, Value)>) -> Result<BTreeMap<String, Hash>, EntryError> {
    if pairs.len() > MAX_DIGESTS {
        return Err(EntryError::TooManyDigests {
            count: pairs.len(),
            max: MAX_DIGESTS,
        });
    }
    let mut out = BTreeMap::new();
    for (name, digest) in pairs {
        let Value::Text(name) = name else {
            return Err(EntryError::Cbor(CborError::WrongType {
                field: DIGESTS.name,
                expected: "a map with text keys",
            }));
        };
        let digest: Hash = cbor::fixed_bytes(DIGESTS, digest).map_err(EntryError::Cbor)?;
        if out.contains_key(&name) {
            return Err(EntryError::DigestName {
                name: name.chars().take(64).collect(),
            });
        }
        out.insert(name, digest);
    }
    Ok(out)
}

fn digest_name_ok(name: &str) -> bool {
    (1..=MAX_DIGEST_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

#[cfg(test)]
mod tests;
