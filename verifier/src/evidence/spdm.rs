//! Checks on SPDM measurement evidence, the format NVIDIA GPUs and
//! Chipward's simulated chips emit.
//!
//! Attacker-controlled: the transcript and every certificate. Checks, in
//! order:
//! 1. The transcript parses as SPDM 1.1 GET_MEASUREMENTS + MEASUREMENTS
//!    (a malformed one is an error: there is nothing to appraise).
//! 2. The chain validates to a trusted vendor root and holds a
//!    device-identity certificate directly above the leaf.
//! 3. The leaf key's ECDSA P-384 signature covers every transcript byte
//!    before it.
//!
//! The chip's identity is the SHA-256 of the device-identity key's
//! SubjectPublicKeyInfo: the certificate that issued the leaf (for NVIDIA,
//! the GSP BROM certificate; the leaf is the firmware alias key, which
//! changes with firmware). Its model is the common name of the CA that
//! issued the identity certificate.
//!
//! Limitation: the firmware description in the alias certificate (the TCG
//! DICE TcbInfo extension) is not compared with reference values; firmware
//! is judged only by the measurements the alias key signs. On DICE hardware
//! the alias key is derived from the firmware measured, so firmware cannot
//! keep an approved alias key across a change, but a chip that stores its
//! alias key is trusted to report its own measurements.

use std::sync::Arc;

use chipward_certs::chain::{ChainError, ValidatedChain, verify_p384_fixed};
use chipward_certs::keys::spki_sha256;
use chipward_proto::ChipId;
use chipward_proto::result::ClaimResult;
use chipward_proto::spdm::{SpdmError, Transcript};
use ring::digest;
use thiserror::Error;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::roots::Roots;
use crate::claims::{self, EVIDENCE_CHAIN, EVIDENCE_SIGNATURE, code};

/// The chip the evidence proves, once its chain validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChipIdentity {
    /// SHA-256 of the device-identity key's SubjectPublicKeyInfo.
    pub chip_id: ChipId,
    /// Common name of the CA that issued the identity certificate.
    pub model: String,
}

/// What the evidence itself establishes, before any policy.
#[derive(Debug)]
pub struct EvidenceFacts {
    /// The parsed transcript.
    pub transcript: Transcript,
    /// SHA-256 of the transcript bytes.
    pub evidence_sha256: [u8; 32],
    /// The `evidence.chain` claim.
    pub chain: ClaimResult,
    /// The `evidence.signature` claim.
    pub signature: ClaimResult,
    /// Set when the chain validated.
    pub identity: Option<ChipIdentity>,
    /// The leaf (attestation key) SubjectPublicKeyInfo, as received.
    pub leaf_spki: Vec<u8>,
}

impl EvidenceFacts {
    /// True when both chain and signature passed.
    pub fn authentic(&self) -> bool {
        self.identity.is_some() && self.signature.status == chipward_proto::result::Status::Pass
    }
}

/// Evidence that cannot be appraised at all.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum EvidenceError {
    /// The transcript does not parse.
    #[error("spdm transcript is malformed")]
    Transcript(#[source] SpdmError),
    /// The chain is empty, too long, or holds bytes that are not certificates.
    #[error("certificate chain is malformed")]
    Chain(#[source] ChainError),
}

/// Runs checks 1 to 3 at `now` (Unix seconds).
pub fn examine(
    transcript_bytes: &[u8],
    chain: &[Vec<u8>],
    roots: &Roots,
    now: i64,
) -> Result<EvidenceFacts, EvidenceError> {
    // 1. Structure, and the chain's size before any certificate is parsed.
    let transcript = Transcript::parse(transcript_bytes).map_err(EvidenceError::Transcript)?;
    if chain.is_empty() {
        return Err(EvidenceError::Chain(ChainError::Empty));
    }
    let max = roots.policy().max_depth;
    if chain.len() > max {
        return Err(EvidenceError::Chain(ChainError::TooDeep {
            len: chain.len(),
            max,
        }));
    }
    let leaf_spki = leaf_spki(&chain[0]).map_err(EvidenceError::Chain)?;

    // 2. Chain to a trusted root, and the identity it proves.
    let (chain_claim, identity) = match roots.validate(chain, now) {
        Ok(valid) => identity_of(&valid),
        Err(e @ (ChainError::Malformed { .. } | ChainError::TooLarge { .. })) => {
            return Err(EvidenceError::Chain(e));
        }
        Err(e) => (
            claims::fail(EVIDENCE_CHAIN, code::CHAIN, e.to_string()),
            None,
        ),
    };

    // 3. Signature by the leaf key over everything before it.
    let signed = &transcript_bytes[..transcript.signed_len];
    let signature = match verify_p384_fixed(&leaf_spki, signed, &transcript.signature) {
        Ok(()) => claims::pass(EVIDENCE_SIGNATURE, "transcript signed by the leaf key"),
        Err(_) => claims::fail(
            EVIDENCE_SIGNATURE,
            code::EVIDENCE_SIGNATURE,
            "transcript signature does not verify under the leaf certificate's key",
        ),
    };

    let mut evidence_sha256 = [0u8; 32];
    evidence_sha256.copy_from_slice(digest::digest(&digest::SHA256, transcript_bytes).as_ref());
    Ok(EvidenceFacts {
        transcript,
        evidence_sha256,
        chain: chain_claim,
        signature,
        identity,
        leaf_spki,
    })
}

fn leaf_spki(der: &[u8]) -> Result<Vec<u8>, ChainError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| ChainError::Malformed {
        link: chipward_certs::chain::Link::Certificate(0),
        reason: e.to_string(),
    })?;
    Ok(cert.public_key().raw.to_vec())
}

fn identity_of(valid: &Arc<ValidatedChain>) -> (ClaimResult, Option<ChipIdentity>) {
    let Some(identity_cert) = valid.certs().get(1) else {
        let reason = "chain has no device-identity certificate above the leaf";
        return (claims::fail(EVIDENCE_CHAIN, code::CHAIN, reason), None);
    };
    let chip_id = ChipId(spki_sha256(identity_cert.spki_der()));
    let model = issuer_common_name(identity_cert.der()).unwrap_or_else(|| "unnamed".to_owned());
    let claim = claims::pass(
        EVIDENCE_CHAIN,
        format!("chain of {} to a trusted root", valid.certs().len()),
    );
    (claim, Some(ChipIdentity { chip_id, model }))
}

/// The common name in a certificate's issuer field: for the identity
/// certificate, the provisioner CA that names the product line.
pub fn issuer_common_name(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let cn = cert.issuer().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
