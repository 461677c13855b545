//! A simulated data-center host with a real TPM 2.0 (swtpm, or a device):
//! it measures its firmware into PCRs 0 to 7, records the tenant it serves
//! in PCR 16 and the chips plugged into it in PCR 23 (with a device log), binds an attestation key to its endorsement key through the
//! issuer, and quotes over the nonce derived from each of its chips'
//! evidence, so host and chip evidence answer one challenge.

use std::sync::{Arc, Mutex};

use chipward_proto::ChipId;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    BeginHostEnrolmentRequest, CompleteHostEnrolmentRequest, HostEvidence, PcrValue,
};
use chipward_proto::nonce::host_quote_nonce;
use chipward_proto::tpm::alg;
use tonic::transport::Channel;

use crate::host_firmware::{DEVICE_PCR, FIRMWARE_PCRS, TENANT_PCR, firmware_digests, sha256};
use crate::tpm::{AkPublic, HostTpm, TpmError};

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
    devices: Mutex<Vec<Vec<u8>>>,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost")
            .field("name", &self.name)
            .field("tenant", &self.tenant)
            .finish()
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
            devices: Mutex::new(Vec::new()),
        })
    }

    /// The EK certificate (with `intermediates` after it) and both public
    /// areas.
    pub fn enrolment_material(
        &self,
        intermediates: &[Vec<u8>],
    ) -> Result<EnrolmentMaterial, TpmError> {
        let mut tpm = self.lock();
        let mut ek_cert_chain = vec![tpm.ek_certificate()?];
        ek_cert_chain.extend_from_slice(intermediates);
        Ok(EnrolmentMaterial {
            ek_cert_chain,
            ek_public: tpm.ek_public()?,
            ak_public: self.ak.public.clone(),
        })
    }

    /// TPM2_ActivateCredential on what the issuer sealed.
    pub fn activate(&self, credential_blob: &[u8], secret: &[u8]) -> Result<Vec<u8>, TpmError> {
        self.lock().activate_credential(credential_blob, secret)
    }

    /// Keeps the issuer's AK binding to present with quotes.
    pub fn set_binding(&self, binding: Vec<u8>) {
        *self.binding.lock().unwrap_or_else(|p| p.into_inner()) = binding;
    }

    /// Records chips plugged into the host: each id is extended into the
    /// device PCR and appended to the device log, as the host's measured
    /// boot would on finding the device.
    pub fn attach(&self, chips: &[ChipId]) -> Result<(), TpmError> {
        let mut tpm = self.lock();
        let mut devices = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        for chip in chips {
            tpm.extend(DEVICE_PCR, &chip.0)?;
            devices.push(chip.0.to_vec());
        }
        Ok(())
    }

    /// Quotes over the nonce derived from a chip's evidence nonce.
    pub fn evidence(&self, chip_nonce: &[u8; 32]) -> Result<HostEvidence, TpmError> {
        let mut pcrs = FIRMWARE_PCRS.to_vec();
        pcrs.extend([TENANT_PCR, DEVICE_PCR]);
        let quote = self.lock().quote(&host_quote_nonce(chip_nonce), &pcrs)?;
        Ok(HostEvidence {
            attest: quote.attest,
            signature: quote.signature,
            pcrs: quote
                .pcrs
                .into_iter()
                .map(|(index, value)| PcrValue {
                    bank: u32::from(alg::SHA256),
                    index,
                    value,
                })
                .collect(),
            ak_binding: self
                .binding
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            devices: self
                .devices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HostTpm> {
        self.tpm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl crate::fleet::Host for SimHost {
    fn name(&self) -> &str {
        &self.name
    }

    fn evidence(&self, chip_nonce: &[u8; 32]) -> anyhow::Result<HostEvidence> {
        Ok(Self::evidence(self, chip_nonce)?)
    }

    fn attach(&self, chips: &[ChipId]) -> anyhow::Result<()> {
        Ok(Self::attach(self, chips)?)
    }
}

/// Binds the host's AK through the issuer: sends the EK certificate chain
/// and both public areas, activates the sealed credential in the TPM, and
/// keeps the AK binding the issuer returns. Returns the host id.
pub async fn enrol(
    host: &Arc<SimHost>,
    issuer: &mut IssuerClient<Channel>,
    intermediates: Vec<Vec<u8>>,
) -> anyhow::Result<String> {
    let h = Arc::clone(host);
    let material =
        tokio::task::spawn_blocking(move || h.enrolment_material(&intermediates)).await??;
    let begun = issuer
        .begin_host_enrolment(BeginHostEnrolmentRequest {
            ek_cert_chain: material.ek_cert_chain,
            ek_public: material.ek_public,
            ak_public: material.ak_public,
        })
        .await?
        .into_inner();
    let h = Arc::clone(host);
    let (blob, secret) = (begun.credential_blob, begun.secret);
    let credential = tokio::task::spawn_blocking(move || h.activate(&blob, &secret)).await??;
    let done = issuer
        .complete_host_enrolment(CompleteHostEnrolmentRequest {
            enrolment_id: begun.enrolment_id,
            credential,
        })
        .await?
        .into_inner();
    host.set_binding(done.ak_binding);
    Ok(done.host_id)
}
