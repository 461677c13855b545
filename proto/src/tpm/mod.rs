//! TPM 2.0 structures as a TPM marshals them (TPM 2.0 Library, Part 2:
//! Structures), parsed and encoded in safe Rust so the verifier needs no TSS
//! library: TPMS_ATTEST (quotes), TPMT_SIGNATURE, TPM2B_PUBLIC and
//! TPML_PCR_SELECTION.
//!
//! Every byte handed to a decoder here comes from a host the verifier does
//! not trust. Decoders check each size against what is left, bound every
//! count, reject trailing bytes and never panic. They check structure only;
//! what the values mean is the verifier's business.

mod wire;

pub mod attest;
pub mod pcr;
pub mod public;
pub mod signature;

pub use wire::TpmError;

/// TPM_ALG_ID values used here (Part 2, table 9).
pub mod alg {
    /// TPM_ALG_RSA.
    pub const RSA: u16 = 0x0001;
    /// TPM_ALG_SHA1.
    pub const SHA1: u16 = 0x0004;
    /// TPM_ALG_HMAC.
    pub const HMAC: u16 = 0x0005;
    /// TPM_ALG_AES.
    pub const AES: u16 = 0x0006;
    /// TPM_ALG_NULL.
    pub const NULL: u16 = 0x0010;
    /// TPM_ALG_SHA256.
    pub const SHA256: u16 = 0x000B;
    /// TPM_ALG_SHA384.
    pub const SHA384: u16 = 0x000C;
    /// TPM_ALG_SHA512.
    pub const SHA512: u16 = 0x000D;
    /// TPM_ALG_RSASSA.
    pub const RSASSA: u16 = 0x0014;
    /// TPM_ALG_RSAPSS.
    pub const RSAPSS: u16 = 0x0016;
    /// TPM_ALG_OAEP.
    pub const OAEP: u16 = 0x0017;
    /// TPM_ALG_ECDSA.
    pub const ECDSA: u16 = 0x0018;
    /// TPM_ALG_ECDH.
    pub const ECDH: u16 = 0x0019;
    /// TPM_ALG_ECC.
    pub const ECC: u16 = 0x0023;
    /// TPM_ALG_CFB.
    pub const CFB: u16 = 0x0043;

    /// Digest length of a hash algorithm, if it is one we know.
    pub fn digest_len(hash: u16) -> Option<usize> {
        match hash {
            SHA1 => Some(20),
            SHA256 => Some(32),
            SHA384 => Some(48),
            SHA512 => Some(64),
            _ => None,
        }
    }

    /// A short name for messages.
    pub fn name(id: u16) -> String {
        match id {
            SHA1 => "sha1".into(),
            SHA256 => "sha256".into(),
            SHA384 => "sha384".into(),
            SHA512 => "sha512".into(),
            RSASSA => "rsassa".into(),
            RSAPSS => "rsapss".into(),
            ECDSA => "ecdsa".into(),
            other => format!("0x{other:04x}"),
        }
    }
}

/// TPM_ECC_CURVE values (Part 2, table 10).
pub mod curve {
    /// TPM_ECC_NIST_P256.
    pub const NIST_P256: u16 = 0x0003;
    /// TPM_ECC_NIST_P384.
    pub const NIST_P384: u16 = 0x0004;
}
