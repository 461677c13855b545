//! TPMT_SIGNATURE (Part 2, section 11.3.4): the signature a TPM puts over a
//! TPMS_ATTEST, for the RSASSA, RSAPSS and ECDSA schemes.

use super::alg;
use super::wire::{Reader, TpmError, put_sized};

/// Largest RSA signature accepted (RSA-4096).
const MAX_RSA: usize = 512;
/// Largest ECC scalar accepted (P-521).
const MAX_ECC: usize = 66;

/// A parsed TPMT_SIGNATURE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TpmSignature {
    /// RSASSA-PKCS1-v1_5.
    RsaSsa {
        /// TPM_ALG_ID of the hash.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
    /// RSASSA-PSS.
    RsaPss {
        /// TPM_ALG_ID of the hash.
        hash: u16,
        /// The signature.
        sig: Vec<u8>,
    },
    /// ECDSA.
    Ecdsa {
        /// TPM_ALG_ID of the hash.
        hash: u16,
        /// r, big-endian, possibly shorter than the curve size.
        r: Vec<u8>,
        /// s, likewise.
        s: Vec<u8>,
    },
}

impl TpmSignature {
    /// Parses a whole TPMT_SIGNATURE.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let scheme = r.u16("sigAlg")?;
        let hash = r.u16("signature hash")?;
        let out = match scheme {
            alg::RSASSA => Self::RsaSsa {
                hash,
                sig: r.sized(MAX_RSA, "rsa signature")?.to_vec(),
            },
            alg::RSAPSS => Self::RsaPss {
                hash,
                sig: r.sized(MAX_RSA, "rsa signature")?.to_vec(),
            },
            alg::ECDSA => Self::Ecdsa {
                hash,
                r: r.sized(MAX_ECC, "signatureR")?.to_vec(),
                s: r.sized(MAX_ECC, "signatureS")?.to_vec(),
            },
            other => {
                return Err(TpmError::Unsupported {
                    field: "signature scheme",
                    value: other,
                });
            }
        };
        r.finish()?;
        Ok(out)
    }

    /// Marshals it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Self::RsaSsa { hash, sig } | Self::RsaPss { hash, sig } => {
                let scheme = if matches!(self, Self::RsaSsa { .. }) {
                    alg::RSASSA
                } else {
                    alg::RSAPSS
                };
                out.extend_from_slice(&scheme.to_be_bytes());
                out.extend_from_slice(&hash.to_be_bytes());
                put_sized(&mut out, sig);
            }
            Self::Ecdsa { hash, r, s } => {
                out.extend_from_slice(&alg::ECDSA.to_be_bytes());
                out.extend_from_slice(&hash.to_be_bytes());
                put_sized(&mut out, r);
                put_sized(&mut out, s);
            }
        }
        out
    }

    /// TPM_ALG_ID of the hash the scheme signs with.
    pub fn hash(&self) -> u16 {
        match self {
            Self::RsaSsa { hash, .. } | Self::RsaPss { hash, .. } | Self::Ecdsa { hash, .. } => {
                *hash
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_scheme() {
        let sigs = [
            TpmSignature::RsaSsa {
                hash: alg::SHA256,
                sig: vec![1; 256],
            },
            TpmSignature::RsaPss {
                hash: alg::SHA384,
                sig: vec![2; 256],
            },
            TpmSignature::Ecdsa {
                hash: alg::SHA256,
                r: vec![3; 32],
                s: vec![4; 31],
            },
        ];
        for sig in sigs {
            assert_eq!(TpmSignature::decode(&sig.encode()).unwrap(), sig);
        }
        let ecdsa = TpmSignature::Ecdsa {
            hash: alg::SHA256,
            r: vec![3; 2],
            s: vec![4; 1],
        }
        .encode();
        assert_eq!(ecdsa, vec![0x00, 0x18, 0x00, 0x0B, 0, 2, 3, 3, 0, 1, 4]);
    }

    #[test]
    fn rejects_null_and_unknown_schemes_and_bad_sizes() {
        assert!(matches!(
            TpmSignature::decode(&[0x00, 0x10, 0x00, 0x0B]),
            Err(TpmError::Unsupported { value: 0x0010, .. })
        ));
        let huge = [&[0x00, 0x14, 0x00, 0x0B, 0x02, 0x01][..], &[0u8; 513]].concat();
        assert!(matches!(
            TpmSignature::decode(&huge),
            Err(TpmError::TooLarge { .. })
        ));
        let sig = TpmSignature::RsaSsa {
            hash: alg::SHA256,
            sig: vec![1; 4],
        }
        .encode();
        assert_eq!(
            TpmSignature::decode(&[sig.clone(), vec![0]].concat()),
            Err(TpmError::TrailingBytes(1))
        );
        assert!(TpmSignature::decode(&sig[..sig.len() - 1]).is_err());
    }
}
