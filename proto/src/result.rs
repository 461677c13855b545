//! The attestation result: what a verifier concluded about one piece of
//! evidence, claim by claim, signed with the verifier's Ed25519 result key.
//!
//! The payload is a CBOR map (field names as text keys) in the shared
//! COSE_Sign1 envelope. Results come back to the issuer from operators, so
//! on the way in they are attacker-controlled: [`verify`] checks envelope and
//! signature before decoding.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cose::{self, CoseError, TrustedKeys};

/// The largest result accepted.
pub const MAX_RESULT_LEN: usize = 64 * 1024;

/// The outcome of one claim, or of the whole appraisal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The claim held.
    Pass,
    /// The claim was checked and does not hold.
    Fail,
    /// The claim could not be decided.
    Unknown,
}

/// One claim's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimResult {
    /// Stable claim name, for example `firmware.measurements`.
    pub claim: String,
    /// What was concluded.
    pub status: Status,
    /// Stable code: `ok` on a pass, otherwise a code that names the failure.
    pub code: String,
    /// Words for an operator.
    pub reason: String,
}

/// One measurement as the evidence reported it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementRecord {
    /// Measurement index.
    pub index: u8,
    /// The value in lowercase hex.
    pub value: String,
}

/// Where signed landmark round trips place the chip: somewhere between
/// `nearest_km` and `farthest_km` from the licensed site's centre. Only the
/// bounds the measurements establish are given.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LocationBound {
    /// The licensed site's centre, degrees north.
    pub latitude: f64,
    /// The licensed site's centre, degrees east.
    pub longitude: f64,
    /// The licensed radius, km.
    pub radius_km: f64,
    /// Smallest possible distance from the centre, km; `None` when the
    /// measurements contradict each other.
    pub nearest_km: Option<f64>,
    /// Largest possible distance from the centre, km; `None` when the
    /// measurements bound it only from below.
    pub farthest_km: Option<f64>,
}

/// Everything a verifier states about one appraisal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttestationResult {
    /// Unix seconds of the appraisal.
    pub appraised_at: i64,
    /// Chip id proven by the evidence, lowercase hex; empty if none was.
    pub chip_id: String,
    /// Product line named by the chip's certificate chain.
    pub model: String,
    /// Tenant the chip claimed.
    pub tenant: String,
    /// Site the chip claimed.
    pub site_id: String,
    /// Token id of the license presented; empty if unreadable.
    pub token_id: String,
    /// SHA-256 of the evidence transcript, lowercase hex.
    pub evidence_sha256: String,
    /// Measurements the evidence carried.
    pub measurements: Vec<MeasurementRecord>,
    /// Each claim's outcome.
    pub claims: Vec<ClaimResult>,
    /// Pass only when every claim passed.
    pub verdict: Status,
    /// The location bound, when landmark records were judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<LocationBound>,
}

/// A result whose signature was checked by [`verify`]; only that function
/// builds one.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedResult {
    result: AttestationResult,
    key_id: String,
}

/// Why a result was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultError {
    /// The envelope failed.
    #[error("result envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a result.
    #[error("payload is not an attestation result")]
    Payload,
}

impl AttestationResult {
    /// The verdict that follows from the claims: pass only if all passed,
    /// fail if any failed, otherwise unknown.
    pub fn verdict_of(claims: &[ClaimResult]) -> Status {
        if claims.iter().any(|c| c.status == Status::Fail) {
            Status::Fail
        } else if claims.iter().all(|c| c.status == Status::Pass) && !claims.is_empty() {
            Status::Pass
        } else {
            Status::Unknown
        }
    }

    /// The outcome of a claim by name.
    pub fn claim(&self, name: &str) -> Option<&ClaimResult> {
        self.claims.iter().find(|c| c.claim == name)
    }

    /// Encodes and signs the result.
    pub fn sign(&self, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        let mut payload = Vec::new();
        ciborium::into_writer(self, &mut payload).expect("writing cbor to a vec cannot fail");
        cose::seal(payload, key_id, sign)
    }
}

/// Opens a result and checks its signature.
pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<VerifiedResult, ResultError> {
    let opened = cose::open(bytes, MAX_RESULT_LEN, keys).map_err(ResultError::Envelope)?;
    let result = decode_payload(&opened.payload)?;
    Ok(VerifiedResult {
        result,
        key_id: opened.key_id,
    })
}

/// Reads a result without checking its signature; for display only.
pub fn decode_unverified(bytes: &[u8]) -> Result<AttestationResult, ResultError> {
    let payload = cose::peek_payload(bytes, MAX_RESULT_LEN).map_err(ResultError::Envelope)?;
    decode_payload(&payload)
}

fn decode_payload(payload: &[u8]) -> Result<AttestationResult, ResultError> {
    ciborium::from_reader(payload).map_err(|_| ResultError::Payload)
}

impl VerifiedResult {
    /// The verified result.
    pub fn result(&self) -> &AttestationResult {
        &self.result
    }

    /// Id of the key that signed it.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }
}

#[cfg(test)]
mod tests {
    use ring::rand::SystemRandom;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    fn claim(name: &str, status: Status) -> ClaimResult {
        ClaimResult {
            claim: name.into(),
            status,
            code: "ok".into(),
            reason: String::new(),
        }
    }

    fn sample() -> AttestationResult {
        let claims = vec![claim("tenant", Status::Pass), claim("site", Status::Pass)];
        AttestationResult {
            appraised_at: 1_700_000_000,
            chip_id: "ab".repeat(32),
            model: "CW-100".into(),
            tenant: "acme".into(),
            site_id: "fra-1".into(),
            token_id: "cd".repeat(16),
            evidence_sha256: "ef".repeat(32),
            measurements: vec![MeasurementRecord {
                index: 1,
                value: "00".repeat(48),
            }],
            verdict: AttestationResult::verdict_of(&claims),
            location: None,
            claims,
        }
    }

    #[test]
    fn verdict_is_pass_only_when_every_claim_passes() {
        let pass = claim("a", Status::Pass);
        let fail = claim("b", Status::Fail);
        let unknown = claim("c", Status::Unknown);
        assert_eq!(
            AttestationResult::verdict_of(std::slice::from_ref(&pass)),
            Status::Pass
        );
        assert_eq!(
            AttestationResult::verdict_of(&[pass.clone(), unknown.clone()]),
            Status::Unknown
        );
        assert_eq!(
            AttestationResult::verdict_of(&[unknown, fail, pass]),
            Status::Fail
        );
        assert_eq!(AttestationResult::verdict_of(&[]), Status::Unknown);
    }

    #[test]
    fn verifies_what_it_signs_and_nothing_else() {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let k = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let keys = TrustedKeys::new().with("v1", k.public_key().as_ref().try_into().unwrap());
        let bytes = sample().sign("v1", |d| k.sign(d).as_ref().to_vec());

        let verified = verify(&bytes, &keys).unwrap();
        assert_eq!(verified.result(), &sample());
        assert_eq!(
            verified.result().claim("site").unwrap().status,
            Status::Pass
        );

        let mut tampered = bytes.clone();
        let at = tampered.len() / 2;
        tampered[at] ^= 1;
        assert!(verify(&tampered, &keys).is_err());
        assert_eq!(
            verify(&bytes, &TrustedKeys::new()),
            Err(ResultError::Envelope(CoseError::UnknownKey("v1".into())))
        );
    }
}
