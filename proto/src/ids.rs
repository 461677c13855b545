//! Identifiers that travel between services: chip identities and token ids.
//!
//! Both are parsed from peer-supplied hex text; parsing checks length and
//! alphabet and nothing more.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A chip's identity: SHA-256 of its device-identity key's
/// SubjectPublicKeyInfo. Firmware alias keys change; this does not.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChipId(pub [u8; 32]);

/// The 16-byte id of one license token (the CWT `cti` claim).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenId(pub [u8; 16]);

/// Text that is not a well-formed id.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// Wrong number of hex digits.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Digits required.
        expected: usize,
        /// Digits given.
        got: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("not hexadecimal")]
    NotHex,
}

fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], IdError> {
    if text.len() != N * 2 {
        return Err(IdError::Length {
            expected: N * 2,
            got: text.len(),
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| IdError::NotHex)?;
    Ok(out)
}

macro_rules! hex_id {
    ($ty:ident, $len:expr) => {
        impl $ty {
            /// Lowercase hex, the form used on the wire and in logs.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// The first 12 hex digits, enough to tell chips apart in a table.
            pub fn short(&self) -> String {
                hex::encode(&self.0[..6])
            }
        }

        impl FromStr for $ty {
            type Err = IdError;

            fn from_str(text: &str) -> Result<Self, IdError> {
                parse_hex::<$len>(text).map(Self)
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($ty), self.short())
            }
        }
    };
}

hex_id!(ChipId, 32);
hex_id!(TokenId, 16);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chip_id_round_trips_through_hex() {
        let id = ChipId([0xab; 32]);
        assert_eq!(id.to_hex(), "ab".repeat(32));
        assert_eq!(id.to_hex().parse::<ChipId>(), Ok(id));
        assert_eq!(id.short(), "abababababab");
    }

    #[test]
    fn rejects_ids_of_wrong_length_or_alphabet() {
        assert_eq!(
            "abc".parse::<TokenId>(),
            Err(IdError::Length {
                expected: 32,
                got: 3
            })
        );
        assert_eq!("zz".repeat(16).parse::<TokenId>(), Err(IdError::NotHex));
    }
}
