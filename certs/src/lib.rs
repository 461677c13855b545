//! Chipward's PKI: key types, PEM files, a development PKI, and certificate chain
//! validation for chip identities.
//!
//! Owns everything X.509 in Chipward: [`keys`] (P-384 and Ed25519 private keys that never
//! print or clone), [`pem`] (the one PEM reader and writer), [`pki`] (a development vendor
//! root and chip CA in a folder, and issuance of device-identity and firmware-alias
//! certificates with rcgen), and [`chain`] (validation of a chip's chain, or of a TPM's
//! endorsement-key chain, to a trust anchor with x509-parser and ring). Attacker-controlled
//! input enters through [`chain`] (every certificate byte) and [`pem`] (PEM text); each
//! module says what it trusts.

pub mod chain;
pub mod keys;
pub mod pem;
pub mod pki;
pub mod tpm_credential;

pub use chain::{
    ChainError, ChainPolicy, Link, SignatureError, TpmAttributes, TrustAnchor, ValidatedCert,
    ValidatedChain, ValidatedEkChain, validate_chain, validate_ek_chain, verify_p384_fixed,
};
pub use keys::{Ed25519Key, KeyError, P384Key, key_id_for, spki_sha256, write_private_key_file};
pub use pem::PemError;
pub use pki::{CertifiedKey, DevPki, PkiError};
