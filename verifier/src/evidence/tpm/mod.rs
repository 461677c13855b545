//! TPM 2.0 quote appraisal in pure Rust: no TSS library, so it builds
//! anywhere and can be fuzzed.
//!
//! Attacker-controlled: the TPMS_ATTEST, the TPMT_SIGNATURE and the PCR
//! values the host reports. The AK public key is trusted only once it was
//! bound to an endorsement key. Checks, in order (TPM 2.0 Part 2 and 3,
//! TPM2_Quote):
//! 1. The TPMS_ATTEST parses as a quote with no bytes left over.
//! 2. The signature parses, its hash is allowed (SHA-1 only by policy), its
//!    scheme suits the key, and it verifies over the TPMS_ATTEST bytes as
//!    received.
//! 3. magic is TPM_GENERATED_VALUE (the TPM made the structure itself, so it
//!    cannot be a signed external digest).
//! 4. extraData equals the expected nonce exactly: no padding, no prefix.
//! 5. The signed PCR selection equals the selection policy asked for.
//! 6. pcrDigest equals the hash of the reported values of the signed
//!    selection; only those values are returned, so PCRs the quote did not
//!    sign can never reach policy.

pub mod host;
pub mod key;

use chipward_proto::tpm::attest::{Attest, TPM_GENERATED_VALUE};
use chipward_proto::tpm::pcr::{PcrSelection, PcrValues};
use chipward_proto::tpm::signature::TpmSignature;
use chipward_proto::tpm::{TpmError, alg};
use ring::digest;
use ring::signature::{
    self as sig, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};
use subtle::ConstantTimeEq;
use thiserror::Error;

use self::key::{QuoteKey, left_pad};

/// What a policy asks of a quote.
#[derive(Clone, Debug)]
pub struct QuotePolicy {
    /// The PCRs the quote must cover, exactly.
    pub selection: PcrSelection,
    /// Whether SHA-1 signatures and banks are acceptable. Default false.
    pub allow_sha1: bool,
}

/// A quote that passed checks 1 to 6.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The signed attestation.
    pub attest: Attest,
    /// Only the PCR values the quote signed.
    pub pcrs: PcrValues,
}

/// Why a quote was refused; each variant is one numbered check.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuoteError {
    /// Check 1.
    #[error("quote attestation is malformed")]
    Attest(#[source] TpmError),
    /// Check 2: the signature structure.
    #[error("quote signature is malformed")]
    SignatureFormat(#[source] TpmError),
    /// Check 2: SHA-1 without policy allowing it.
    #[error("sha1 is refused by policy")]
    Sha1Refused,
    /// Check 2: a scheme, hash or key combination not supported.
    #[error("unsupported signature: {0}")]
    UnsupportedSignature(String),
    /// Check 2: the signature does not verify.
    #[error("quote signature does not verify under the attestation key")]
    BadSignature,
    /// Check 3.
    #[error("magic 0x{0:08x} is not TPM_GENERATED_VALUE")]
    Magic(u32),
    /// Check 4.
    #[error("extraData is not the expected nonce")]
    Nonce,
    /// Check 5.
    #[error("signed pcr selection differs from the selection asked for")]
    Selection,
    /// Check 6: a signed PCR has no reported value.
    #[error("no value reported for signed pcr {bank}:{index}")]
    MissingPcr {
        /// Bank name.
        bank: String,
        /// PCR index.
        index: u32,
    },
    /// Check 6: a value that is not one digest of its bank's hash.
    #[error("value reported for pcr {bank}:{index} is {len} bytes, not one digest")]
    PcrLength {
        /// Bank name.
        bank: String,
        /// PCR index.
        index: u32,
        /// Bytes reported.
        len: usize,
    },
    /// Check 6.
    #[error("pcrDigest does not match the reported pcr values")]
    PcrDigest,
}

/// Runs checks 1 to 6 on a quote.
pub fn check_quote(
    attest_bytes: &[u8],
    signature: &[u8],
    key: &QuoteKey,
    nonce: &[u8],
    reported: &PcrValues,
    policy: &QuotePolicy,
) -> Result<VerifiedQuote, QuoteError> {
    // 1 and 2: structure, then the signature over the bytes as received.
    let attest = Attest::decode(attest_bytes).map_err(QuoteError::Attest)?;
    let signature = TpmSignature::decode(signature).map_err(QuoteError::SignatureFormat)?;
    verify_signature(key, &signature, attest_bytes, policy.allow_sha1)?;

    // 3. Made by the TPM.
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(QuoteError::Magic(attest.magic));
    }

    // 4. The nonce, exactly.
    let same_len = attest.extra_data.len() == nonce.len();
    if !(same_len && bool::from(attest.extra_data.ct_eq(nonce))) {
        return Err(QuoteError::Nonce);
    }

    // 5 and 6.
    if !attest.pcr_select.same_pcrs(&policy.selection) {
        return Err(QuoteError::Selection);
    }
    let pcrs = signed_pcrs(&attest, reported, policy.allow_sha1)?;
    Ok(VerifiedQuote { attest, pcrs })
}

/// The checks `tpm2_checkquote` makes, for quote files: checks 1 to 4
/// always — like `tpm2_checkquote`, no nonce given means the quote must
/// carry an empty one — and 5 and 6 only when PCR values are given (the
/// selection they came with is the one asked for). Services use
/// [`check_quote`], which makes every check.
pub fn check_quote_files(
    attest_bytes: &[u8],
    signature: &[u8],
    key: &QuoteKey,
    nonce: &[u8],
    reported: Option<(&PcrSelection, &PcrValues)>,
    allow_sha1: bool,
) -> Result<VerifiedQuote, QuoteError> {
    match reported {
        Some((selection, values)) => {
            let policy = QuotePolicy {
                selection: selection.clone(),
                allow_sha1,
            };
            check_quote(attest_bytes, signature, key, nonce, values, &policy)
        }
        None => {
            let attest = Attest::decode(attest_bytes).map_err(QuoteError::Attest)?;
            let parsed = TpmSignature::decode(signature).map_err(QuoteError::SignatureFormat)?;
            verify_signature(key, &parsed, attest_bytes, allow_sha1)?;
            if attest.magic != TPM_GENERATED_VALUE {
                return Err(QuoteError::Magic(attest.magic));
            }
            if attest.extra_data.len() != nonce.len() || !bool::from(attest.extra_data.ct_eq(nonce))
            {
                return Err(QuoteError::Nonce);
            }
            Ok(VerifiedQuote {
                attest,
                pcrs: PcrValues::default(),
            })
        }
    }
}

/// Checks the pcrDigest against the reported values and keeps only the
/// signed ones. The digest uses the signature's hash algorithm per Part 3,
/// TPM2_Quote; TPMs in practice use the AK's scheme hash, which is the same.
fn signed_pcrs(
    attest: &Attest,
    reported: &PcrValues,
    allow_sha1: bool,
) -> Result<PcrValues, QuoteError> {
    let mut signed = PcrValues::default();
    for (bank, index) in attest.pcr_select.slots() {
        if bank == alg::SHA1 && !allow_sha1 {
            return Err(QuoteError::Sha1Refused);
        }
        let value = reported
            .0
            .get(&(bank, index))
            .ok_or_else(|| QuoteError::MissingPcr {
                bank: alg::name(bank),
                index,
            })?;
        if alg::digest_len(bank) != Some(value.len()) {
            return Err(QuoteError::PcrLength {
                bank: alg::name(bank),
                index,
                len: value.len(),
            });
        }
        signed.0.insert((bank, index), value.clone());
    }
    let concat = signed.concat_for(&attest.pcr_select).unwrap_or_default();
    let matches = [
        &digest::SHA256,
        &digest::SHA384,
        &digest::SHA512,
        &digest::SHA1_FOR_LEGACY_USE_ONLY,
    ]
    .iter()
    .filter(|a| a.output_len() == attest.pcr_digest.len())
    .any(|a| {
        bool::from(
            digest::digest(a, &concat)
                .as_ref()
                .ct_eq(&attest.pcr_digest),
        )
    });
    if !matches {
        return Err(QuoteError::PcrDigest);
    }
    Ok(signed)
}

fn verify_signature(
    key: &QuoteKey,
    signature: &TpmSignature,
    message: &[u8],
    allow_sha1: bool,
) -> Result<(), QuoteError> {
    let hash = signature.hash();
    if hash == alg::SHA1 && !allow_sha1 {
        return Err(QuoteError::Sha1Refused);
    }
    let unsupported = || {
        QuoteError::UnsupportedSignature(format!(
            "{} with {} on {}",
            scheme_name(signature),
            alg::name(hash),
            key_name(key)
        ))
    };
    let ok = match (key, signature) {
        (QuoteKey::Rsa { n, e }, TpmSignature::RsaSsa { sig, .. }) => {
            let algorithm: &sig::RsaParameters = match hash {
                alg::SHA256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                alg::SHA384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                alg::SHA512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                alg::SHA1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                _ => return Err(unsupported()),
            };
            RsaPublicKeyComponents { n, e }
                .verify(algorithm, message, sig)
                .is_ok()
        }
        (QuoteKey::Rsa { n, e }, TpmSignature::RsaPss { sig, .. }) => {
            let algorithm: &sig::RsaParameters = match hash {
                alg::SHA256 => &sig::RSA_PSS_2048_8192_SHA256,
                alg::SHA384 => &sig::RSA_PSS_2048_8192_SHA384,
                alg::SHA512 => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return Err(unsupported()),
            };
            RsaPublicKeyComponents { n, e }
                .verify(algorithm, message, sig)
                .is_ok()
        }
        (QuoteKey::P256(point), TpmSignature::Ecdsa { r, s, .. }) => {
            let algorithm: &'static dyn VerificationAlgorithm = match hash {
                alg::SHA256 => &sig::ECDSA_P256_SHA256_ASN1,
                alg::SHA384 => &sig::ECDSA_P256_SHA384_ASN1,
                _ => return Err(unsupported()),
            };
            verify_ecdsa(algorithm, point, r, s, 32, message)
        }
        (QuoteKey::P384(point), TpmSignature::Ecdsa { r, s, .. }) => {
            let algorithm: &'static dyn VerificationAlgorithm = match hash {
                alg::SHA256 => &sig::ECDSA_P384_SHA256_ASN1,
                alg::SHA384 => &sig::ECDSA_P384_SHA384_ASN1,
                _ => return Err(unsupported()),
            };
            verify_ecdsa(algorithm, point, r, s, 48, message)
        }
        _ => return Err(unsupported()),
    };
    if ok {
        Ok(())
    } else {
        Err(QuoteError::BadSignature)
    }
}

/// ring verifies mixed curve and hash pairs only in the ASN.1 form, so r and
/// s are encoded as a DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn verify_ecdsa(
    algorithm: &'static dyn VerificationAlgorithm,
    point: &[u8],
    r: &[u8],
    s: &[u8],
    size: usize,
    message: &[u8],
) -> bool {
    let (Some(r), Some(s)) = (left_pad(r, size), left_pad(s, size)) else {
        return false;
    };
    let body = [der_integer(&r), der_integer(&s)].concat();
    let mut der = vec![0x30];
    der_length(&mut der, body.len());
    der.extend_from_slice(&body);
    UnparsedPublicKey::new(algorithm, point)
        .verify(message, &der)
        .is_ok()
}

/// A DER INTEGER holding the unsigned big-endian `value`.
fn der_integer(value: &[u8]) -> Vec<u8> {
    let first = value
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(value.len() - 1);
    let trimmed = &value[first..];
    let pad = trimmed[0] & 0x80 != 0;
    let mut out = vec![0x02];
    der_length(&mut out, trimmed.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        out.extend_from_slice(&[0x81, len as u8]);
    }
}

fn scheme_name(signature: &TpmSignature) -> &'static str {
    match signature {
        TpmSignature::RsaSsa { .. } => "rsassa",
        TpmSignature::RsaPss { .. } => "rsapss",
        TpmSignature::Ecdsa { .. } => "ecdsa",
    }
}

fn key_name(key: &QuoteKey) -> &'static str {
    match key {
        QuoteKey::Rsa { .. } => "an rsa key",
        QuoteKey::P256(_) => "a p-256 key",
        QuoteKey::P384(_) => "a p-384 key",
    }
}

#[cfg(test)]
mod tests;
