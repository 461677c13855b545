//! TPM2B_PUBLIC (Part 2, section 12.2.5) for RSA and ECC keys: the public
//! area of an attestation or endorsement key, and the key's TPM name.
//!
//! Only the fields a verifier needs are kept; the raw TPMT_PUBLIC bytes are
//! kept too, because a key's name is the hash of exactly those bytes.

use ring::digest;

use super::alg;
use super::wire::{Reader, TpmError, put_sized};

/// The largest TPMT_PUBLIC accepted.
const MAX_PUBLIC: usize = 1024;
/// Largest authPolicy digest.
const MAX_DIGEST: usize = 64;

/// objectAttributes bit: fixedTPM.
pub const ATTR_FIXED_TPM: u32 = 1 << 1;
/// objectAttributes bit: fixedParent.
pub const ATTR_FIXED_PARENT: u32 = 1 << 4;
/// objectAttributes bit: sensitiveDataOrigin.
pub const ATTR_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
/// objectAttributes bit: restricted.
pub const ATTR_RESTRICTED: u32 = 1 << 16;
/// objectAttributes bit: decrypt.
pub const ATTR_DECRYPT: u32 = 1 << 17;
/// objectAttributes bit: sign / encrypt.
pub const ATTR_SIGN: u32 = 1 << 18;

/// The key material of a public area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// RSA modulus and exponent, big-endian.
    Rsa {
        /// The modulus.
        modulus: Vec<u8>,
        /// The public exponent (0 in the structure means 65537).
        exponent: u32,
    },
    /// An ECC point.
    Ecc {
        /// TPM_ECC_CURVE.
        curve: u16,
        /// X coordinate, big-endian.
        x: Vec<u8>,
        /// Y coordinate, big-endian.
        y: Vec<u8>,
    },
}

/// A parsed public area.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmPublic {
    /// Hash algorithm of the name.
    pub name_alg: u16,
    /// objectAttributes.
    pub attributes: u32,
    /// The key.
    pub key: PublicKey,
    /// The signing scheme fixed in the key, or [`alg::NULL`].
    pub scheme: u16,
    /// The scheme's hash, or [`alg::NULL`].
    pub scheme_hash: u16,
    /// The marshalled TPMT_PUBLIC, as received.
    pub raw: Vec<u8>,
}

impl TpmPublic {
    /// Parses a TPM2B_PUBLIC (size-prefixed), as `tpm2_readpublic` writes.
    pub fn decode_sized(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let inner = r.sized(MAX_PUBLIC, "public size")?;
        r.finish()?;
        Self::decode(inner)
    }

    /// Parses a TPMT_PUBLIC.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let kind = r.u16("public type")?;
        let name_alg = r.u16("nameAlg")?;
        let attributes = r.u32("objectAttributes")?;
        r.sized(MAX_DIGEST, "authPolicy")?;
        read_symmetric(&mut r)?;
        let (scheme, scheme_hash, key) = match kind {
            alg::RSA => {
                let (scheme, hash) = read_scheme(&mut r)?;
                let _key_bits = r.u16("keyBits")?;
                let exponent = match r.u32("exponent")? {
                    0 => 65_537,
                    e => e,
                };
                let modulus = r.sized(512, "rsa modulus")?.to_vec();
                (scheme, hash, PublicKey::Rsa { modulus, exponent })
            }
            alg::ECC => {
                let (scheme, hash) = read_scheme(&mut r)?;
                let curve = r.u16("curveID")?;
                let kdf = r.u16("kdf scheme")?;
                if kdf != alg::NULL {
                    r.u16("kdf hash")?;
                }
                let x = r.sized(66, "ecc x")?.to_vec();
                let y = r.sized(66, "ecc y")?.to_vec();
                (scheme, hash, PublicKey::Ecc { curve, x, y })
            }
            other => {
                return Err(TpmError::Unsupported {
                    field: "public type",
                    value: other,
                });
            }
        };
        r.finish()?;
        Ok(Self {
            name_alg,
            attributes,
            key,
            scheme,
            scheme_hash,
            raw: bytes.to_vec(),
        })
    }

    /// The TPM name: nameAlg followed by its hash of the TPMT_PUBLIC.
    pub fn name(&self) -> Result<Vec<u8>, TpmError> {
        let algorithm = match self.name_alg {
            alg::SHA256 => &digest::SHA256,
            alg::SHA384 => &digest::SHA384,
            alg::SHA512 => &digest::SHA512,
            other => {
                return Err(TpmError::Unsupported {
                    field: "nameAlg",
                    value: other,
                });
            }
        };
        let mut out = self.name_alg.to_be_bytes().to_vec();
        out.extend_from_slice(digest::digest(algorithm, &self.raw).as_ref());
        Ok(out)
    }

    /// The TPM2B_PUBLIC form.
    pub fn encode_sized(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_sized(&mut out, &self.raw);
        out
    }
}

/// TPMT_SYM_DEF_OBJECT: NULL, or an algorithm with key bits and mode.
fn read_symmetric(r: &mut Reader<'_>) -> Result<(), TpmError> {
    if r.u16("symmetric algorithm")? != alg::NULL {
        r.u16("symmetric keyBits")?;
        r.u16("symmetric mode")?;
    }
    Ok(())
}

/// TPMT_RSA_SCHEME / TPMT_ECC_SCHEME: NULL, or a scheme with its hash.
fn read_scheme(r: &mut Reader<'_>) -> Result<(u16, u16), TpmError> {
    let scheme = r.u16("scheme")?;
    if scheme == alg::NULL {
        return Ok((scheme, alg::NULL));
    }
    let hash = r.u16("scheme hash")?;
    // ECDAA carries a commit count as well.
    if scheme == 0x001A {
        r.u16("ecdaa count")?;
    }
    Ok((scheme, hash))
}

#[cfg(test)]
mod tests {
    use super::super::curve;
    use super::*;

    /// An ECC P-256 restricted signing key with ECDSA-SHA256, marshalled by hand
    /// from Part 2 tables 185, 180 and 176.
    fn ecc_ak() -> Vec<u8> {
        let mut out = vec![0x00, 0x23, 0x00, 0x0B];
        out.extend_from_slice(&0x0005_0072u32.to_be_bytes()); // attributes
        out.extend_from_slice(&[0, 0]); // empty authPolicy
        out.extend_from_slice(&[0x00, 0x10]); // symmetric NULL
        out.extend_from_slice(&[0x00, 0x18, 0x00, 0x0B]); // ECDSA, SHA256
        out.extend_from_slice(&[0x00, 0x03]); // NIST P-256
        out.extend_from_slice(&[0x00, 0x10]); // kdf NULL
        out.extend_from_slice(&[0, 32]);
        out.extend_from_slice(&[0xAA; 32]);
        out.extend_from_slice(&[0, 32]);
        out.extend_from_slice(&[0xBB; 32]);
        out
    }

    #[test]
    fn parses_an_ecc_key_and_names_it() {
        let raw = ecc_ak();
        let key = TpmPublic::decode(&raw).unwrap();
        assert_eq!(
            key.key,
            PublicKey::Ecc {
                curve: curve::NIST_P256,
                x: vec![0xAA; 32],
                y: vec![0xBB; 32]
            }
        );
        assert_eq!((key.scheme, key.scheme_hash), (alg::ECDSA, alg::SHA256));
        assert_ne!(key.attributes & ATTR_RESTRICTED, 0);
        let name = key.name().unwrap();
        assert_eq!(&name[..2], &[0x00, 0x0B]);
        assert_eq!(&name[2..], digest::digest(&digest::SHA256, &raw).as_ref());
        assert_eq!(TpmPublic::decode_sized(&key.encode_sized()).unwrap(), key);
    }

    #[test]
    fn parses_an_rsa_key_with_the_default_exponent() {
        let mut raw = vec![0x00, 0x01, 0x00, 0x0B, 0, 0x05, 0, 0x72, 0, 0, 0x00, 0x10];
        raw.extend_from_slice(&[0x00, 0x14, 0x00, 0x0B]); // RSASSA SHA256
        raw.extend_from_slice(&[0x08, 0x00, 0, 0, 0, 0]); // 2048 bits, exponent 0
        raw.extend_from_slice(&[0x01, 0x00]);
        raw.extend_from_slice(&[0xC5; 256]);
        let key = TpmPublic::decode(&raw).unwrap();
        assert_eq!(
            key.key,
            PublicKey::Rsa {
                modulus: vec![0xC5; 256],
                exponent: 65_537
            }
        );
    }

    #[test]
    fn rejects_truncations_and_other_types() {
        let raw = ecc_ak();
        for len in 0..raw.len() {
            assert!(TpmPublic::decode(&raw[..len]).is_err(), "{len}");
        }
        let mut keyed_hash = raw.clone();
        keyed_hash[1] = 0x08;
        assert!(matches!(
            TpmPublic::decode(&keyed_hash),
            Err(TpmError::Unsupported { .. })
        ));
        assert_eq!(
            TpmPublic::decode(&[raw, vec![1]].concat()),
            Err(TpmError::TrailingBytes(1))
        );
    }
}
