//! A simulated data-center host with a real TPM 2.0 (swtpm, or a device):
//! it measures its firmware into PCRs 0 to 7, records the tenant it serves
//! in PCR 16, binds an attestation key to its endorsement key through the
//! issuer, and quotes over the nonce derived from each of its chips'
//! evidence, so host and chip evidence answer one challenge.

use std::sync::Mutex;

use chipward_proto::grpc::{HostEvidence, PcrValue};
use chipward_proto::nonce::host_quote_nonce;
use chipward_proto::tpm::alg;
use chipward_verifier::evidence::tpm::host::{HostPolicy, extended};
use ring::digest;

use crate::tpm::{AkPublic, HostTpm, TpmError};

/// The firmware PCRs a host measures into.
pub const FIRMWARE_PCRS: [u32; 8] = [0, 1, 2, 3, 4, 5, 6, 7];
/// The PCR that records the tenant.
pub const TENANT_PCR: u32 = 16;

/// A host and its TPM.
pub struct SimHost {
    /// Name for tables.
    pub name: String,
    /// The tenant recorded in PCR 16.
    pub tenant: String,
    /// The attestation key.
    pub ak: AkPublic,
    tpm: Mutex<HostTpm>,
    binding: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost").field("name", &self.name).field("tenant", &self.tenant).finish()
    }
}

/// What the issuer needs to start binding the AK.
#[derive(Clone, Debug)]
pub struct EnrolmentMaterial {
    /// The EK certificate as read from NV, then its issuing CAs.
    pub ek_cert_chain: Vec<Vec<u8>>,
    /// The EK's TPM2B_PUBLIC.
    pub ek_public: Vec<u8>,
    /// The AK's TPM2B_PUBLIC.
    pub ak_public: Vec<u8>,
}

impl SimHost {
    /// Opens the TPM at `tcti`, creates an AK, and boots: firmware into
    /// PCRs 0 to 7, `tenant` into PCR 16.
    pub fn boot(name: &str, tcti: &str, tenant: &str, firmware: &str) -> Result<Self, TpmError> {
        let mut tpm = HostTpm::open(tcti)?;
        let ak = tpm.create_ak()?;
        for (pcr, component) in FIRMWARE_PCRS.iter().zip(firmware_digests(firmware)) {
            tpm.extend(*pcr, &component)?;
        }
        tpm.extend(TENANT_PCR, &sha256(tenant.as_bytes()))?;
        Ok(Self {
            name: name.to_owned(),
            tenant: tenant.to_owned(),
            ak,
            tpm: Mutex::new(tpm),
            binding: Mutex::new(Vec::new()),
        })
    }

    /// The EK certificate (with `intermediates` after it) and both public
    /// areas.
    pub fn enrolment_material(&self, intermediates: &[Vec<u8>]) -> Result<EnrolmentMaterial, TpmError> {
        let mut tpm = self.lock();
        let mut ek_cert_chain = vec![tpm.ek_certificate()?];
        ek_cert_chain.extend_from_slice(intermediates);
        Ok(EnrolmentMaterial { ek_cert_chain, ek_public: tpm.ek_public()?, ak_public: self.ak.public.clone() })
    }

    /// TPM2_ActivateCredential on what the issuer sealed.
    pub fn activate(&self, credential_blob: &[u8], secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        self.lock().activate_credential(credential_blob, secret)
    }

    /// Keeps the issuer's AK binding to present with quotes.
    pub fn set_binding(&self, binding: Vec<u8>) {
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = binding;
    }

    /// Quotes over the nonce derived from a chip's evidence nonce.
    pub fn evidence(&self, chip_nonce: &[u8; 32]) -> Result<HostEvidence, TpmError> {
        let mut pcrs = FIRMWARE_PCRS.to_vec();
        pcrs.push(TENANT_PCR);
        let quote = self.lock().quote(&host_quote_nonce(chip_nonce), &pcrs)?;
        Ok(HostEvidence {
            attest: quote.attest,
            signature: quote.signature,
            pcrs: quote
                .pcrs
                .into_iter()
                .map(|(index, value)| PcrValue { bank: u32::from(alg::SHA256), index, value })
                .collect(),
            ak_binding: self.binding.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostTpm> {
        self.tpm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The measurement of each of a host firmware image's eight components.
pub fn firmware_digests(firmware: &str) -> Vec<[u8; 32]> {
    (0..FIRMWARE_PCRS.len()).map(|i| sha256(format!("host-firmware/{firmware}/component-{i}").as_bytes())).collect()
}

/// The host policy a vendor publishes for `firmware`: each firmware PCR
/// extended once, from reset, with its component.
pub fn host_policy(firmware: &str) -> HostPolicy {
    let mut policy = HostPolicy::default();
    for (pcr, component) in FIRMWARE_PCRS.iter().zip(firmware_digests(firmware)) {
        policy.firmware.insert(*pcr, vec![extended(&[component])]);
    }
    policy.tenant_pcr = TENANT_PCR;
    policy
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}
