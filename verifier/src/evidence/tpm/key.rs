//! The public key a quote is checked with: from a TPM2B_PUBLIC or a PEM
//! SubjectPublicKeyInfo (what `tpm2_createak -f pem` writes), reduced to
//! what ring needs to verify.

use chipward_proto::tpm::TpmError;
use chipward_proto::tpm::curve;
use chipward_proto::tpm::public::{PublicKey, TpmPublic};
use thiserror::Error;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as SpkiKey;
use x509_parser::x509::SubjectPublicKeyInfo;

/// A key ring can verify quotes with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QuoteKey {
    /// RSA: modulus and exponent, big-endian, no leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent.
        e: Vec<u8>,
    },
    /// ECC P-256: uncompressed point.
    P256(Vec<u8>),
    /// ECC P-384: uncompressed point.
    P384(Vec<u8>),
}

/// A key that cannot be used.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// The TPM2B_PUBLIC is malformed.
    #[error("tpm public area is malformed")]
    Public(#[source] TpmError),
    /// The SubjectPublicKeyInfo is malformed.
    #[error("public key is not a subjectpublickeyinfo")]
    Spki,
    /// A curve or key type quotes are not checked with.
    #[error("unsupported key: {0}")]
    Unsupported(String),
    /// The PEM is not a single PUBLIC KEY block.
    #[error("not a pem public key")]
    Pem,
}

impl QuoteKey {
    /// From a TPM2B_PUBLIC.
    pub fn from_tpm2b_public(bytes: &[u8]) -> Result<Self, KeyError> {
        let public = TpmPublic::decode_sized(bytes).map_err(KeyError::Public)?;
        Self::from_tpm_public(&public)
    }

    /// From a parsed public area.
    pub fn from_tpm_public(public: &TpmPublic) -> Result<Self, KeyError> {
        match &public.key {
            PublicKey::Rsa { modulus, exponent } => Ok(Self::Rsa {
                n: strip(modulus),
                e: strip(&exponent.to_be_bytes()),
            }),
            PublicKey::Ecc { curve, x, y } => {
                let size = match *curve {
                    curve::NIST_P256 => 32,
                    curve::NIST_P384 => 48,
                    other => return Err(KeyError::Unsupported(format!("ecc curve 0x{other:04x}"))),
                };
                let mut point = vec![0x04];
                point.extend_from_slice(
                    &left_pad(x, size).ok_or_else(|| KeyError::Unsupported("x too long".into()))?,
                );
                point.extend_from_slice(
                    &left_pad(y, size).ok_or_else(|| KeyError::Unsupported("y too long".into()))?,
                );
                Ok(if size == 32 {
                    Self::P256(point)
                } else {
                    Self::P384(point)
                })
            }
        }
    }

    /// From DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let (rest, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| KeyError::Spki)?;
        if !rest.is_empty() {
            return Err(KeyError::Spki);
        }
        match spki.parsed().map_err(|_| KeyError::Spki)? {
            SpkiKey::RSA(rsa) => Ok(Self::Rsa {
                n: strip(rsa.modulus),
                e: strip(rsa.exponent),
            }),
            SpkiKey::EC(point) => match point.data().len() {
                65 => Ok(Self::P256(point.data().to_vec())),
                97 => Ok(Self::P384(point.data().to_vec())),
                n => Err(KeyError::Unsupported(format!("ec point of {n} bytes"))),
            },
            _ => Err(KeyError::Unsupported("key type".into())),
        }
    }

    /// From a PEM `PUBLIC KEY` block or, failing that, raw TPM2B_PUBLIC bytes,
    /// as `tpm2_checkquote -u` accepts either.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        let text = std::str::from_utf8(bytes)
            .ok()
            .filter(|t| t.contains("-----BEGIN PUBLIC KEY-----"));
        match text {
            Some(text) => Self::from_spki_der(&pem_public_der(text)?),
            None => Self::from_tpm2b_public(bytes),
        }
    }
}

fn pem_public_der(text: &str) -> Result<Vec<u8>, KeyError> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|_| KeyError::Pem)?;
    if pem.label != "PUBLIC KEY" {
        return Err(KeyError::Pem);
    }
    Ok(pem.contents)
}

fn strip(bytes: &[u8]) -> Vec<u8> {
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len().saturating_sub(1));
    bytes[first..].to_vec()
}

/// Big-endian `bytes` widened to `size` with leading zeros; `None` if longer
/// than `size` after dropping leading zeros.
pub(crate) fn left_pad(bytes: &[u8], size: usize) -> Option<Vec<u8>> {
    let trimmed = strip(bytes);
    if trimmed.len() > size {
        return None;
    }
    let mut out = vec![0u8; size - trimmed.len()];
    out.extend_from_slice(&trimmed);
    Some(out)
}
