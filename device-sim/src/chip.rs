//! One simulated accelerator: an identity key certified at manufacture, a
//! firmware alias key certified by the identity key, firmware measurements,
//! and the SPDM 1.1 transcripts a real GPU would send.
//!
//! The chain layers match NVIDIA's: alias leaf, device identity, provisioner
//! CA, vendor root. A chip enforces its own license: past expiry plus a grace
//! period it refuses work, whatever its operator says.

use chipward_certs::keys::{P384Key, spki_sha256};
use chipward_certs::pki::CertifiedKey;
use chipward_proto::ChipId;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::{Evidence, SpdmEvidence, evidence};
use chipward_proto::license;
use chipward_proto::nonce::evidence_nonce;
use chipward_proto::spdm::{
    DMTF_SPEC, MeasurementBlock, MeasurementsRequest, MeasurementsResponse, P384_SIGNATURE_LEN,
    UnsignedTranscript,
};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use thiserror::Error;

/// Clock skew a chip allows on its license's start, seconds.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Measurement indices a simulated chip reports.
pub const MEASUREMENT_COUNT: u8 = 8;

/// Errors making a chip or its evidence.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ChipError {
    /// Key generation or signing failed.
    #[error("chip key operation failed: {0}")]
    Key(String),
    /// Certificate issuance failed.
    #[error("certificate issuance failed: {0}")]
    Certificate(String),
}

/// Whether the chip's own license lets it run work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LicenseState {
    /// Inside the validity window.
    Valid,
    /// Expired, but within the grace period.
    Grace,
    /// No valid license, or past the grace period: the chip refuses work.
    Lapsed,
}

/// The chip's side of one distance-bounding exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DistanceBound {
    /// Commitment to the secret, sent before the timed phase.
    pub commitment: [u8; 32],
    /// The timed reply.
    pub response: [u8; 32],
    /// The secret, revealed after the timed phase.
    pub secret: [u8; 32],
    /// ECDSA P-384 r‖s over the transcript.
    pub signature: Vec<u8>,
}

/// A simulated accelerator.
pub struct SimChip {
    /// The chip's identity.
    pub chip_id: ChipId,
    /// Product line.
    pub model: String,
    /// Device-identity certificate and its issuing CA, for enrolment.
    pub enrolment_chain: Vec<Vec<u8>>,
    /// Firmware version string in the alias certificate.
    pub firmware_version: String,
    alias_key: P384Key,
    evidence_chain: Vec<Vec<u8>>,
    measurements: Vec<MeasurementBlock>,
}

impl std::fmt::Debug for SimChip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimChip")
            .field("chip_id", &self.chip_id)
            .field("model", &self.model)
            .finish()
    }
}

impl SimChip {
    /// Manufactures a chip: identity key certified by the provisioner CA,
    /// alias key certified by the identity key, golden firmware.
    pub fn manufacture(
        ca: &CertifiedKey,
        model: &str,
        serial: u64,
        firmware: &str,
    ) -> Result<Self, ChipError> {
        let identity_key = P384Key::generate().map_err(|e| ChipError::Key(e.to_string()))?;
        let identity_spki = identity_key.public_key_spki_der();
        let identity_cert = ca
            .issue_device_identity(&identity_spki, model, serial)
            .map_err(|e| ChipError::Certificate(e.to_string()))?;
        let identity = CertifiedKey {
            cert_der: identity_cert.clone(),
            key: identity_key,
        };

        let alias_key = P384Key::generate().map_err(|e| ChipError::Key(e.to_string()))?;
        let alias_cert = identity
            .issue_alias(&alias_key.public_key_spki_der(), model, firmware)
            .map_err(|e| ChipError::Certificate(e.to_string()))?;

        Ok(Self {
            chip_id: ChipId(spki_sha256(&identity_spki)),
            model: model.to_owned(),
            enrolment_chain: vec![identity_cert.clone(), ca.cert_der.clone()],
            firmware_version: firmware.to_owned(),
            alias_key,
            evidence_chain: vec![alias_cert, identity_cert, ca.cert_der.clone()],
            measurements: golden_measurements(model, firmware),
        })
    }

    /// A clone: another chip's public certificates with a key of its own,
    /// since the identity's private key never leaves the genuine chip.
    pub fn clone_of(victim: &Self) -> Result<Self, ChipError> {
        Ok(Self {
            chip_id: victim.chip_id,
            model: victim.model.clone(),
            enrolment_chain: victim.enrolment_chain.clone(),
            firmware_version: victim.firmware_version.clone(),
            alias_key: P384Key::generate().map_err(|e| ChipError::Key(e.to_string()))?,
            evidence_chain: victim.evidence_chain.clone(),
            measurements: victim.measurements.clone(),
        })
    }

    /// A second device holding a copy of `victim`'s attestation key, as a
    /// key extracted from the chip would give: its evidence is genuine.
    pub fn leaked_copy(victim: &Self) -> Result<Self, ChipError> {
        let alias_key = P384Key::from_pkcs8_der(victim.alias_key.pkcs8_der())
            .map_err(|e| ChipError::Key(e.to_string()))?;
        Ok(Self {
            alias_key,
            ..Self::clone_of(victim)?
        })
    }

    /// Changes the firmware behind measurement `index`, as a tampered image
    /// would.
    pub fn tamper_firmware(&mut self, index: u8) {
        if let Some(block) = self.measurements.iter_mut().find(|b| b.index == index) {
            block.value[0] ^= 0xff;
        }
    }

    /// The SPDM evidence answering `challenge`, bound to the tenant and site
    /// the chip claims.
    pub fn attest(
        &self,
        challenge: &[u8],
        tenant: &str,
        site_id: &str,
    ) -> Result<Evidence, ChipError> {
        let request = MeasurementsRequest {
            attributes: 1,
            operation: 0xFF,
            nonce: evidence_nonce(challenge, tenant, site_id),
            slot_id: 0,
        };
        let mut responder_nonce = [0u8; 32];
        SystemRandom::new()
            .fill(&mut responder_nonce)
            .map_err(|_| ChipError::Key("random source failed".into()))?;
        let response = MeasurementsResponse {
            param1: 0,
            param2: 0,
            blocks: self.measurements.clone(),
            nonce: responder_nonce,
            opaque: Vec::new(),
        };
        let unsigned = UnsignedTranscript::new(&request, &response);
        let signature = self
            .alias_key
            .sign_fixed(unsigned.signed_bytes())
            .map_err(|e| ChipError::Key(e.to_string()))?;
        let signature: [u8; P384_SIGNATURE_LEN] = signature
            .try_into()
            .map_err(|_| ChipError::Key("signature is not 96 bytes".into()))?;
        let transcript = unsigned.finish(&signature);
        Ok(Evidence {
            kind: Some(evidence::Kind::Spdm(SpdmEvidence {
                transcript,
                cert_chain: self.evidence_chain.clone(),
            })),
        })
    }

    /// One distance-bounding exchange with a landmark, as the chip runs it:
    /// a fresh secret and its commitment first, then the timed reply to the
    /// landmark's `challenge` (the challenge XOR the secret, no signature),
    /// and only after the clock has stopped the secret revealed and the
    /// transcript signed with the attestation key.
    pub fn distance_bound(
        &self,
        landmark_id: &str,
        binding: &[u8; 32],
        challenge: &[u8; 32],
    ) -> Result<DistanceBound, ChipError> {
        let mut secret = [0u8; 32];
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| ChipError::Key("random source failed".into()))?;
        let commitment = chipward_proto::landmark::commitment(&secret);
        let response: [u8; 32] = std::array::from_fn(|i| challenge[i] ^ secret[i]);
        let transcript = chipward_proto::landmark::transcript(
            landmark_id,
            binding,
            &commitment,
            challenge,
            &response,
        );
        let signature = self
            .alias_key
            .sign_fixed(&transcript)
            .map_err(|e| ChipError::Key(e.to_string()))?;
        Ok(DistanceBound {
            commitment,
            response,
            secret,
            signature,
        })
    }

    /// Checks the chip's own license at `now` (Unix seconds) with the
    /// issuer's key built into its firmware.
    pub fn license_state(
        &self,
        token: &[u8],
        issuer: &TrustedKeys,
        now: i64,
        grace_secs: i64,
    ) -> LicenseState {
        let Ok(verified) = license::verify(token, issuer) else {
            return LicenseState::Lapsed;
        };
        let claims = verified.claims();
        if claims.chip_id != self.chip_id || now.saturating_add(CLOCK_SKEW_SECS) < claims.not_before
        {
            return LicenseState::Lapsed;
        }
        if now <= claims.expires_at {
            LicenseState::Valid
        } else if now <= claims.expires_at.saturating_add(grace_secs) {
            LicenseState::Grace
        } else {
            LicenseState::Lapsed
        }
    }
}

/// The measurements of an untampered image of `firmware` for `model`: one
/// SHA-384 digest per component.
pub fn golden_measurements(model: &str, firmware: &str) -> Vec<MeasurementBlock> {
    (1..=MEASUREMENT_COUNT)
        .map(|index| {
            let label = format!("{model}/{firmware}/component-{index}");
            let value = digest::digest(&digest::SHA384, label.as_bytes())
                .as_ref()
                .to_vec();
            MeasurementBlock {
                index,
                spec: DMTF_SPEC,
                value_type: 1,
                value,
            }
        })
        .collect()
}
