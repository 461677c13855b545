//! The host enrolment RPCs; [`crate::host_enrolment`] lists the checks of
//! each, in order, and this file follows that list.
//!
//! Every field of both requests is attacker-controlled. The credential is
//! a secret until the enrolment is taken: it lives in zeroized buffers,
//! only its digest is kept, and it is never logged.

use std::sync::Arc;

use chipward_certs::chain::{ChainPolicy, validate_ek_chain};
use chipward_certs::tpm_credential::make_credential;
use chipward_proto::ak_binding::AkBinding;
use chipward_proto::grpc::{
    BeginHostEnrolmentRequest, BeginHostEnrolmentResponse, CompleteHostEnrolmentRequest,
    CompleteHostEnrolmentResponse,
};
use ring::rand::SecureRandom;
use tracing::{Span, debug, field, info};
use zeroize::Zeroizing;

use chipward_proto::audit::{AuditEntry, EntryKind};

use super::IssuerService;
use crate::error::ServiceError;
use crate::host_enrolment::{HostEnrolmentError, PendingHost, keys};
use crate::ledger::AuditRecord;
use crate::rate_limits::Limit;
use crate::request;

/// Bytes of randomness sealed to each host.
const CREDENTIAL_LEN: usize = 32;

impl IssuerService {
    /// `BeginHostEnrolment`.
    pub(super) async fn begin_host(
        &self,
        client: &str,
        req: BeginHostEnrolmentRequest,
    ) -> Result<BeginHostEnrolmentResponse, ServiceError> {
        // 1. The client's budget; bound every field; without roots no chain
        //    can pass.
        self.limits.check(Limit::HostEnrolmentPerClient, client)?;
        request::chain_len(&req.ek_cert_chain, "ek_cert_chain")?;
        request::tpm_public(&req.ek_public, "ek_public")?;
        request::tpm_public(&req.ak_public, "ak_public")?;
        if self.tpm_roots.is_empty() {
            return Err(HostEnrolmentError::NoTpmRoots.into());
        }

        // 2. Both public areas, each held to its profile (cheap, so first).
        let ek = keys::endorsement_key(&req.ek_public).map_err(HostEnrolmentError::from)?;
        let ak = keys::attestation_key(&req.ak_public).map_err(HostEnrolmentError::from)?;

        // 3. The EK chain to a TPM root, off the async workers.
        let now = self.clock.now();
        let roots = Arc::clone(&self.tpm_roots);
        let chain = req.ek_cert_chain;
        let validated = tokio::task::spawn_blocking(move || {
            validate_ek_chain(&chain, &roots, now, &ChainPolicy::default())
        })
        .await
        .map_err(|_| ServiceError::TaskFailed)?
        .map_err(HostEnrolmentError::EkChain)?;

        // 4. The EK public area holds the certified key.
        let ek = ek
            .certified_by(&validated)
            .map_err(HostEnrolmentError::from)?;

        // 5. A fresh credential, sealed to the EK for the AK's name.
        let mut credential = Zeroizing::new([0u8; CREDENTIAL_LEN]);
        self.rng
            .fill(credential.as_mut())
            .map_err(|_| ServiceError::Random)?;
        let sealed = make_credential(ek.rsa(), ak.name(), credential.as_ref())
            .map_err(HostEnrolmentError::Seal)?;

        // 6. Hold its digest until the host answers or time runs out; only
        //    an enrolment now pending spends the host's budget.
        let expires_at = now.saturating_add(self.settings.host_enrolment_ttl_secs);
        let pending = PendingHost::new(&validated, &ek, ak, credential.as_ref(), expires_at);
        let host = pending.host_id();
        let ak_name = hex::encode(pending.ak_name());
        Span::current().record("host", field::display(host.short()));
        let id = self
            .limits
            .check_if(Limit::HostEnrolmentPerHost, &host.to_hex(), || {
                Ok(self.host_enrolments.insert(pending, now, &self.rng)?)
            })?;
        Span::current().record("enrolment", field::display(id.short()));
        debug!(host = %host.short(), ak_name = %ak_name, expires_at, "host enrolment begun");

        Ok(BeginHostEnrolmentResponse {
            enrolment_id: id.to_hex(),
            credential_blob: sealed.credential_blob,
            secret: sealed.secret,
            expires_at,
        })
    }

    /// `CompleteHostEnrolment`.
    pub(super) async fn complete_host(
        &self,
        client: &str,
        req: CompleteHostEnrolmentRequest,
    ) -> Result<CompleteHostEnrolmentResponse, ServiceError> {
        // 1. The client's budget; check the fields.
        self.limits.check(Limit::HostEnrolmentPerClient, client)?;
        let credential = Zeroizing::new(req.credential);
        let id = request::enrolment_id(&req.enrolment_id)?;
        Span::current().record("enrolment", field::display(id.short()));
        request::credential(&credential)?;

        // 2. Take the enrolment out: one try each, whatever happens next.
        let now = self.clock.now();
        let pending = self.host_enrolments.take(&id, now)?;
        Span::current().record("host", field::display(pending.host_id().short()));

        // 3. Only a TPM holding the certified EK and the AK could recover
        //    the credential; only that spends the host's budget.
        let host_id = pending.host_id().to_hex();
        let host = self
            .limits
            .check_if(Limit::HostEnrolmentPerHost, &host_id, || {
                Ok(pending.activate(&credential)?)
            })?;

        // 4. Record the AK; the same AK enrolled again is not an error.
        let record = host.record(now);
        let mut entry = AuditEntry::new(now, EntryKind::HostEnrolled);
        entry
            .digests
            .insert("ek_certificate".into(), host.ek_cert_sha256());
        entry.detail = format!(
            "host {} ak {}",
            host.host_id().to_hex(),
            hex::encode(host.ak_name())
        );
        let audit = AuditRecord::new(entry);
        let newly = self.ledger(move |l| l.enrol_host(&record, &audit)).await?;

        // 5. Sign the binding.
        let expires_at = now.saturating_add(self.settings.ak_binding_lifetime_secs);
        let binding = AkBinding {
            host_id: host.host_id().to_hex(),
            ak_public: hex::encode(host.ak_public()),
            ak_name: hex::encode(host.ak_name()),
            ek_cert_sha256: hex::encode(host.ek_cert_sha256()),
            tpm_manufacturer: host.tpm_manufacturer().to_owned(),
            issued_at: now,
            expires_at,
        };
        let signed = binding.sign(&self.token_key_id, |m| self.token_key.sign(m));
        info!(
            host = %host.host_id().short(),
            ak_name = %binding.ak_name,
            tpm_manufacturer = %binding.tpm_manufacturer,
            newly,
            expires_at,
            "host enrolled"
        );

        Ok(CompleteHostEnrolmentResponse {
            host_id: binding.host_id,
            ak_binding: signed,
            expires_at,
        })
    }
}
