//! Strict reading and writing of the small CBOR maps (RFC 8949) that audit
//! entries and tree heads are made of: unsigned integer keys, each known to
//! the caller, each at most once, each value of one expected type.
//!
//! Input is attacker-controlled; callers bound its size before calling
//! [`parse_map`]. The encoding written by [`encode_map`] is the core
//! deterministic encoding of RFC 8949 section 4.2.1 when the caller lists
//! keys in ascending order: callers re-encode what they decoded and refuse
//! any input that differs, so each value has exactly one byte form.

use ciborium::Value;
use thiserror::Error;

/// How a CBOR map failed strict decoding.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CborError {
    /// Not exactly one well-formed CBOR data item.
    #[error("not a well-formed cbor item")]
    NotCbor,
    /// The item is not a map.
    #[error("not a cbor map")]
    NotMap,
    /// A map key is not an unsigned integer.
    #[error("a map key is not an unsigned integer")]
    KeyNotInteger,
    /// A map key that this format does not define.
    #[error("unknown map key {key}")]
    UnknownKey {
        /// The key.
        key: u64,
    },
    /// A map key given twice.
    #[error("map key {key} appears twice")]
    DuplicateKey {
        /// The key.
        key: u64,
    },
    /// A required field is absent.
    #[error("required field {field} is missing")]
    MissingField {
        /// Field name.
        field: &'static str,
    },
    /// A field holds the wrong CBOR type.
    #[error("field {field} is not {expected}")]
    WrongType {
        /// Field name.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// An integer field is outside its range.
    #[error("field {field} is out of range")]
    OutOfRange {
        /// Field name.
        field: &'static str,
    },
    /// Well-formed, but not the one deterministic encoding of its value
    /// (key order, integer or length encoding, or trailing bytes).
    #[error("not in deterministic encoding")]
    NonCanonical,
}

/// One field of a map: its integer key and its name for errors.
#[derive(Clone, Copy, Debug)]
pub(super) struct Field {
    pub(super) key: u64,
    pub(super) name: &'static str,
}

/// The fields of a decoded map, each key known and present once.
pub(super) struct Fields {
    items: Vec<(u64, Value)>,
}

/// Parses one CBOR map whose keys must all appear in `known`.
pub(super) fn parse_map(bytes: &[u8], known: &[Field]) -> Result<Fields, CborError> {
    let value: Value = ciborium::from_reader(bytes).map_err(|_| CborError::NotCbor)?;
    let Value::Map(pairs) = value else {
        return Err(CborError::NotMap);
    };
    let mut items: Vec<(u64, Value)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let key = k
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or(CborError::KeyNotInteger)?;
        if !known.iter().any(|f| f.key == key) {
            return Err(CborError::UnknownKey { key });
        }
        if items.iter().any(|(seen, _)| *seen == key) {
            return Err(CborError::DuplicateKey { key });
        }
        items.push((key, v));
    }
    Ok(Fields { items })
}

/// Writes a map of integer keys; the caller lists them in ascending order.
pub(super) fn encode_map(pairs: Vec<(u64, Value)>) -> Vec<u8> {
    let map = Value::Map(
        pairs
            .into_iter()
            .map(|(k, v)| (Value::Integer(k.into()), v))
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::into_writer(&map, &mut out).expect("writing cbor to a vec cannot fail");
    out
}

/// Orders text keys of a nested map as RFC 8949 section 4.2.1 requires:
/// by the bytes of their encoded form.
pub(super) fn sort_text_keys(pairs: &mut [(Value, Value)]) {
    pairs.sort_by_cached_key(|(k, _)| {
        let mut out = Vec::new();
        ciborium::into_writer(k, &mut out).expect("writing cbor to a vec cannot fail");
        out
    });
}

impl Fields {
    /// Removes and returns a field's value, if present.
    pub(super) fn take(&mut self, field: Field) -> Option<Value> {
        let at = self.items.iter().position(|(k, _)| *k == field.key)?;
        Some(self.items.swap_remove(at).1)
    }

    /// Removes a required field's value.
    pub(super) fn required(&mut self, field: Field) -> Result<Value, CborError> {
        self.take(field)
            .ok_or(CborError::MissingField { field: field.name })
    }

    /// A required text string.
    pub(super) fn text(&mut self, field: Field) -> Result<String, CborError> {
        match self.required(field)? {
            Value::Text(t) => Ok(t),
            _ => Err(wrong(field, "a text string")),
        }
    }

    /// A required signed integer that fits in an `i64`.
    pub(super) fn int(&mut self, field: Field) -> Result<i64, CborError> {
        let i = as_integer(field, self.required(field)?)?;
        i64::try_from(i).map_err(|_| CborError::OutOfRange { field: field.name })
    }

    /// A required unsigned integer that fits in a `u64`.
    pub(super) fn uint(&mut self, field: Field) -> Result<u64, CborError> {
        let i = as_integer(field, self.required(field)?)?;
        u64::try_from(i).map_err(|_| CborError::OutOfRange { field: field.name })
    }

    /// An optional byte string of exactly `N` bytes.
    pub(super) fn opt_bytes<const N: usize>(
        &mut self,
        field: Field,
    ) -> Result<Option<[u8; N]>, CborError> {
        self.take(field).map(|v| fixed_bytes(field, v)).transpose()
    }

    /// A required byte string of exactly `N` bytes.
    pub(super) fn bytes<const N: usize>(&mut self, field: Field) -> Result<[u8; N], CborError> {
        fixed_bytes(field, self.required(field)?)
    }

    /// A required map, returned as its pairs.
    pub(super) fn map(&mut self, field: Field) -> Result<Vec<(Value, Value)>, CborError> {
        match self.required(field)? {
            Value::Map(pairs) => Ok(pairs),
            _ => Err(wrong(field, "a map")),
        }
    }
}

/// A byte string of exactly `N` bytes.
pub(super) fn fixed_bytes<const N: usize>(field: Field, v: Value) -> Result<[u8; N], CborError> {
    match v {
        Value::Bytes(b) => b
            .try_into()
            .map_err(|_| wrong(field, "a byte string of the right length")),
        _ => Err(wrong(field, "a byte string")),
    }
}

fn as_integer(field: Field, v: Value) -> Result<i128, CborError> {
    match v {
        Value::Integer(i) => Ok(i128::from(i)),
        _ => Err(wrong(field, "an integer")),
    }
}

fn wrong(field: Field, expected: &'static str) -> CborError {
    CborError::WrongType {
        field: field.name,
        expected,
    }
}
