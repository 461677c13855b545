//! Signature checks: certificate signatures over the received TBS bytes, and P-384 evidence
//! signatures.
//!
//! Owns the choice of ring verification algorithm from a signature OID and a signer key.
//! Attacker-controlled input: every signature, algorithm identifier and public key here
//! comes from peer certificates or evidence. Only algorithm and key pairings listed in
//! [`certificate_algorithm`] are accepted; everything else is refused, never guessed.

use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::{Any, Oid, Tag};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_SIG_ECDSA_WITH_SHA256,
    OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::error::{ChainError, Link};

/// A failure to verify an evidence signature with [`verify_p384_fixed`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The SubjectPublicKeyInfo is not well-formed DER (or has trailing bytes).
    #[error("public key is not a well-formed subjectpublickeyinfo")]
    MalformedKey,
    /// The key is not an EC P-384 key.
    #[error("public key is {algorithm}, not ec p-384")]
    NotP384 {
        /// The key's algorithm OID, and curve OID when it is an EC key.
        algorithm: String,
    },
    /// The signature is not 96 bytes of `r || s`.
    #[error("signature is {len} bytes, expected 96")]
    Length {
        /// Its length.
        len: usize,
    },
    /// The signature does not verify.
    #[error("signature does not verify")]
    Invalid,
}

/// Verifies an ECDSA P-384 / SHA-384 signature given as fixed-width `r || s` (96 bytes),
/// as SPDM measurement reports carry, against a SubjectPublicKeyInfo from a validated
/// certificate.
///
/// ```
/// let key = chipward_certs::P384Key::generate()?;
/// let sig = key.sign_fixed(b"transcript")?;
/// let spki = key.public_key_spki_der();
///
/// assert!(chipward_certs::chain::verify_p384_fixed(&spki, b"transcript", &sig).is_ok());
/// assert!(chipward_certs::chain::verify_p384_fixed(&spki, b"tampered", &sig).is_err());
/// # Ok::<(), chipward_certs::KeyError>(())
/// ```
pub fn verify_p384_fixed(
    spki_der: &[u8],
    msg: &[u8],
    sig_r_s: &[u8],
) -> Result<(), SignatureError> {
    let point = p384_point(spki_der)?;
    if sig_r_s.len() != 96 {
        return Err(SignatureError::Length { len: sig_r_s.len() });
    }

    let key = UnparsedPublicKey::new(&signature::ECDSA_P384_SHA384_FIXED, &point);
    key.verify(msg, sig_r_s)
        .map_err(|_| SignatureError::Invalid)
}

/// The public point of a DER SubjectPublicKeyInfo that must be an EC P-384 key.
pub(crate) fn p384_point(spki_der: &[u8]) -> Result<Vec<u8>, SignatureError> {
    let Ok(([], spki)) = SubjectPublicKeyInfo::from_der(spki_der) else {
        return Err(SignatureError::MalformedKey);
    };

    let is_p384 = spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && curve(&spki.algorithm) == Some(Curve::P384);
    if !is_p384 || spki.subject_public_key.unused_bits != 0 {
        return Err(SignatureError::NotP384 {
            algorithm: key_algorithm(&spki.algorithm),
        });
    }

    Ok(spki.subject_public_key.data.to_vec())
}

/// Checks that `signer` signed `cert`: the signature over the TBS bytes exactly as received.
pub(super) fn check_certificate_signature(
    cert: &X509Certificate<'_>,
    link: Link,
    subject: &str,
    signer: &X509Certificate<'_>,
) -> Result<(), ChainError> {
    let key = signer.public_key();
    let unsupported = || ChainError::UnsupportedAlgorithm {
        link,
        subject: subject.to_owned(),
        oid: cert.signature_algorithm.algorithm.to_id_string(),
        key_oid: key_algorithm(&key.algorithm),
    };
    let algorithm =
        certificate_algorithm(&cert.signature_algorithm, key).ok_or_else(unsupported)?;

    if cert.signature_value.unused_bits != 0 || key.subject_public_key.unused_bits != 0 {
        return Err(ChainError::Malformed {
            link,
            reason: "signature or signer key bit string has unused bits".into(),
        });
    }

    let public = UnparsedPublicKey::new(algorithm, key.subject_public_key.data.as_ref());
    public
        .verify(
            cert.tbs_certificate.as_ref(),
            cert.signature_value.data.as_ref(),
        )
        .map_err(|_| ChainError::BadSignature {
            link,
            subject: subject.to_owned(),
        })
}

/// The ring algorithm for a certificate signature algorithm and signer key, if supported:
///
/// | signature | signer key |
/// | --- | --- |
/// | ecdsa-with-SHA256 / SHA384, no parameters | id-ecPublicKey on P-256 or P-384 |
/// | Ed25519, no parameters | Ed25519, no parameters |
/// | sha256/sha384WithRSAEncryption, NULL or absent parameters | rsaEncryption, 2048-8192 bits |
fn certificate_algorithm(
    sig: &AlgorithmIdentifier<'_>,
    key: &SubjectPublicKeyInfo<'_>,
) -> Option<&'static dyn VerificationAlgorithm> {
    let oid = &sig.algorithm;
    let key_oid = &key.algorithm.algorithm;

    if *oid == OID_SIG_ECDSA_WITH_SHA256 || *oid == OID_SIG_ECDSA_WITH_SHA384 {
        if sig.parameters.is_some() || *key_oid != OID_KEY_TYPE_EC_PUBLIC_KEY {
            return None;
        }
        let sha384 = *oid == OID_SIG_ECDSA_WITH_SHA384;
        return match (curve(&key.algorithm)?, sha384) {
            (Curve::P256, false) => Some(&signature::ECDSA_P256_SHA256_ASN1),
            (Curve::P256, true) => Some(&signature::ECDSA_P256_SHA384_ASN1),
            (Curve::P384, false) => Some(&signature::ECDSA_P384_SHA256_ASN1),
            (Curve::P384, true) => Some(&signature::ECDSA_P384_SHA384_ASN1),
        };
    }

    if *oid == OID_SIG_ED25519 {
        let plain = sig.parameters.is_none() && key.algorithm.parameters.is_none();
        return (plain && *key_oid == OID_SIG_ED25519).then_some(&signature::ED25519);
    }

    let rsa_key = *key_oid == OID_PKCS1_RSAENCRYPTION && null_or_absent(&key.algorithm.parameters);
    if !rsa_key || !null_or_absent(&sig.parameters) {
        return None;
    }
    if *oid == OID_PKCS1_SHA256WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA256)
    } else if *oid == OID_PKCS1_SHA384WITHRSA {
        Some(&signature::RSA_PKCS1_2048_8192_SHA384)
    } else {
        None
    }
}

/// The two NIST curves accepted for signer and evidence keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

/// The named curve in an id-ecPublicKey algorithm identifier, if it is one we accept.
fn curve(algorithm: &AlgorithmIdentifier<'_>) -> Option<Curve> {
    let named = named_oid(algorithm.parameters.as_ref()?)?;
    if named == OID_EC_P256 {
        Some(Curve::P256)
    } else if named == OID_NIST_EC_P384 {
        Some(Curve::P384)
    } else {
        None
    }
}

/// The OID held by algorithm parameters, if they are one (asn1-rs reads any primitive as
/// an OID, so the tag is checked first).
fn named_oid<'p>(parameters: &'p Any<'_>) -> Option<Oid<'p>> {
    if parameters.tag() != Tag::Oid {
        return None;
    }
    parameters.as_oid().ok()
}

/// True when algorithm parameters are absent or an ASN.1 NULL.
fn null_or_absent(parameters: &Option<Any<'_>>) -> bool {
    parameters
        .as_ref()
        .is_none_or(|p| p.tag() == Tag::Null && p.data.is_empty())
}

/// A key's algorithm OID, with its curve OID when the parameters are one.
fn key_algorithm(algorithm: &AlgorithmIdentifier<'_>) -> String {
    let oid = algorithm.algorithm.to_id_string();
    match algorithm.parameters.as_ref().and_then(named_oid) {
        Some(named) => format!("{oid}/{}", named.to_id_string()),
        None => oid,
    }
}
