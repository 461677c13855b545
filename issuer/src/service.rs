//! The `chipward.v1.Issuer` gRPC service: enrolment, issuance, look-up,
//! renewal and revocation of licenses, and host enrolment (binding a TPM
//! attestation key by credential activation, in `service/host.rs`).
//!
//! Every request is attacker-controlled. Fields are checked in
//! [`crate::request`], certificate chains by `chipward_certs::chain` and
//! then against the device-identity profile in [`crate::enrolment`],
//! attestation results in [`crate::renewal`], TPM keys and credentials in
//! [`crate::host_enrolment`]; only then does the service sign anything or
//! write to the ledger. Ledger calls and chain validation run on the
//! blocking pool. The service reads the time only from the [`Clock`] it was
//! given.
//!
//! Every change is written with its audit log entry in one ledger commit
//! (`service/audit.rs` serves the log); licenses are stored through a
//! group-commit writer (`service/batch.rs`). With a compliance policy, the
//! chip's model fixes the export classification and the tier of site and
//! tenant bounds lifetimes and what renewal needs ([`crate::compliance`]).

use std::sync::Arc;
use std::time::Instant;

use chipward_certs::chain::{ChainPolicy, TrustAnchor, validate_chain};
use chipward_certs::keys::Ed25519Key;
use chipward_certs::pki::DevPki;
use chipward_proto::TokenId;
use chipward_proto::access::{Caller, Role};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_server::Issuer;
use chipward_proto::grpc::{
    BeginHostEnrolmentRequest, BeginHostEnrolmentResponse, CompleteHostEnrolmentRequest,
    CompleteHostEnrolmentResponse, EnrolChipRequest, EnrolChipResponse, GetLicenseRequest,
    GetRevocationListRequest, IssueLicenseRequest, License, LicenseResponse, ListLicensesRequest,
    ListLicensesResponse, RenewLicenseRequest, RevocationListResponse, RevokeLicenseRequest,
    RevokeLicenseResponse, Site,
};
use chipward_proto::license::LicenseClaims;
use chipward_proto::metrics::Render;
use chipward_proto::rate_limit::MonotonicClock;
use chipward_proto::request_id::request_id;
use chipward_proto::revocation::{self, RevocationList};
use ring::rand::{SecureRandom, SystemRandom};
use tonic::{Request, Response, Status};
use tracing::{Span, debug, error, field, info, instrument, warn};

use crate::clock::Clock;
use crate::compliance::CompliancePolicy;
use crate::config::{ConfigError, IssuerSettings, PkiMaterial};
use crate::enrolment;
use crate::error::{ServiceError, Severity};
use crate::host_enrolment::PendingEnrolments;
use crate::ledger::{AuditRecord, ChipRecord, Ledger, LedgerError, LicenseRecord, LicenseState};
use crate::metrics::IssuerMetrics;
use crate::published_list::PublishedList;
use crate::rate_limits::{IssuerRateLimits, Limit};
use crate::renewal::{self, RenewalApproval, RenewalPolicy};
use crate::request::{self, IssueTerms};

mod audit;
mod batch;
mod compliance;
mod host;

pub use audit::{MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES, MAX_ENTRIES_PER_CALL};
pub use batch::{IssueBatcher, MAX_BATCH};
use chipward_proto::audit::{AuditEntry, EntryKind};
pub use compliance::{MAX_OVERRIDES, Screening, StoredParty, compliance_gate};

/// The issuer service; hand it to [`crate::serve`].
pub struct IssuerService {
    settings: IssuerSettings,
    ledger: Arc<dyn Ledger>,
    token_key: Ed25519Key,
    token_key_id: String,
    anchor: Arc<TrustAnchor>,
    verifier_keys: TrustedKeys,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    /// The revocation list last signed, shared by fetches in one second.
    published: PublishedList,
    /// TPM manufacturer roots that host EK chains must reach.
    tpm_roots: Arc<[TrustAnchor]>,
    /// Host enrolments waiting for their credential.
    host_enrolments: PendingEnrolments,
    /// Classifications and tiers, with the SHA-256 of the file they came
    /// from; none means no policy applies.
    compliance: Option<(Arc<CompliancePolicy>, [u8; 32])>,
    /// The group-commit writer of new licenses.
    batcher: IssueBatcher,
    /// The audit log's name in its tree heads.
    log_id: String,
    /// The restricted-party list in force and its overrides.
    screening: Screening,
    metrics: Arc<IssuerMetrics>,
    /// Budgets per client and per chip or host.
    limits: IssuerRateLimits,
}

impl IssuerService {
    /// A service that signs with `token_key`, accepts chip chains ending at
    /// `anchor`, renews against results signed by `verifier_keys`, and
    /// stores into `ledger`. `settings` should have passed
    /// [`IssuerSettings::check`].
    pub fn new(
        settings: IssuerSettings,
        ledger: Arc<dyn Ledger>,
        token_key: Ed25519Key,
        anchor: TrustAnchor,
        verifier_keys: TrustedKeys,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let token_key_id = token_key.key_id();
        let log_id = format!("{}/audit", settings.issuer_name);
        Self {
            limits: IssuerRateLimits::system(&settings.rate_limits),
            settings,
            batcher: IssueBatcher::start(Arc::clone(&ledger)),
            compliance: None,
            log_id,
            screening: Screening::default(),
            metrics: Arc::new(IssuerMetrics::new()),
            ledger,
            token_key,
            token_key_id,
            anchor: Arc::new(anchor),
            verifier_keys,
            clock,
            rng: SystemRandom::new(),
            published: PublishedList::default(),
            tpm_roots: Arc::new([]),
            host_enrolments: PendingEnrolments::default(),
        }
    }

    /// Accepts host EK certificate chains that reach one of `roots` (TPM
    /// manufacturer CAs), replacing any set before. Without roots, the
    /// default, every host enrolment is refused with `FAILED_PRECONDITION`.
    #[must_use]
    pub fn with_tpm_roots(mut self, roots: Vec<TrustAnchor>) -> Self {
        self.tpm_roots = roots.into();
        self
    }

    /// Reads the time for rate limits from `clock` (default: the system's
    /// monotonic clock), with every budget full again.
    #[must_use]
    pub fn with_rate_limit_clock(mut self, clock: Arc<dyn MonotonicClock>) -> Self {
        self.limits = IssuerRateLimits::new(&self.settings.rate_limits, clock);
        self
    }

    /// Applies `policy` (read from a file whose SHA-256 is `digest`) to
    /// every issuance and renewal.
    #[must_use]
    pub fn with_compliance(mut self, policy: CompliancePolicy, digest: [u8; 32]) -> Self {
        self.compliance = Some((Arc::new(policy), digest));
        self
    }

    /// A service from PKI material loaded by
    /// [`crate::config::IssuerConfig::load_pki`].
    pub fn from_pki(
        settings: IssuerSettings,
        pki: PkiMaterial,
        ledger: Arc<dyn Ledger>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::new(
            settings,
            ledger,
            pki.token_key,
            pki.anchor,
            pki.verifier_keys,
            clock,
        )
    }

    /// A service over a development PKI held in memory: its root is the
    /// anchor, its token key signs, its verifier key is trusted.
    pub fn from_dev_pki(
        settings: IssuerSettings,
        pki: &DevPki,
        ledger: Arc<dyn Ledger>,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ConfigError> {
        let dir = pki.dir().to_path_buf();
        let anchor =
            TrustAnchor::from_der(pki.root_cert_der()).map_err(|source| ConfigError::Anchor {
                path: dir.clone(),
                source,
            })?;
        let token_key = Ed25519Key::from_pkcs8_der(pki.issuer_token_key.pkcs8_der())
            .map_err(|source| ConfigError::Key { path: dir, source })?;
        let verifier = &pki.verifier_result_key;
        let verifier_keys = TrustedKeys::new().with(verifier.key_id(), verifier.public_key());
        Ok(Self::new(
            settings,
            ledger,
            token_key,
            anchor,
            verifier_keys,
            clock,
        ))
    }

    /// What this service has counted so far.
    pub fn metrics(&self) -> &Arc<IssuerMetrics> {
        &self.metrics
    }

    /// A renderer for the metrics endpoint
    /// ([`chipward_proto::metrics::serve_metrics`]) that also reports the
    /// size of this service's audit log.
    pub fn metrics_renderer(&self) -> Render {
        self.metrics.renderer(Arc::clone(&self.ledger))
    }

    /// The settings in force.
    pub fn settings(&self) -> &IssuerSettings {
        &self.settings
    }

    /// The raw Ed25519 public key that verifies tokens and revocation lists.
    pub fn token_public_key(&self) -> [u8; 32] {
        self.token_key.public_key()
    }

    async fn enrol(
        &self,
        client: &str,
        chain: Vec<Vec<u8>>,
    ) -> Result<EnrolChipResponse, ServiceError> {
        // 1. The client's budget; bound the chain before any certificate is
        //    read.
        self.limits.check(Limit::EnrolChipPerClient, client)?;
        request::chain_len(&chain, "cert_chain")?;

        // 2. Validate it to the vendor root, off the async workers.
        let now = self.clock.now();
        let anchor = Arc::clone(&self.anchor);
        let validated = tokio::task::spawn_blocking(move || {
            validate_chain(&chain, &anchor, now, &ChainPolicy::default())
        })
        .await
        .map_err(|_| ServiceError::TaskFailed)?
        .map_err(ServiceError::ChainInvalid)?;

        // 3. Its first certificate must be a device identity; the chip id is
        //    its key's digest, the model its issuer's name.
        let identity = enrolment::device_identity(&validated)?;
        let chip_id = identity.chip_id();
        Span::current().record("chip", field::display(chip_id.short()));
        self.limits
            .check(Limit::EnrolChipPerChip, &chip_id.to_hex())?;
        let model = identity.model().to_owned();

        // 4. Record it; the same certificate again is not an error.
        let record = ChipRecord {
            chip_id,
            model: model.clone(),
            identity_cert: identity.cert_der().to_vec(),
            enrolled_at: now,
        };
        let mut entry = AuditEntry::new(now, EntryKind::ChipEnrolled);
        entry.chip_id = Some(chip_id);
        entry.digests.insert(
            "identity_certificate".into(),
            audit::sha256(identity.cert_der()),
        );
        entry.detail = format!("model {model}");
        let audit = AuditRecord::new(entry);
        let newly = self.ledger(move |l| l.enrol_chip(&record, &audit)).await?;
        info!(chip = %chip_id.short(), model = %model, newly, "chip enrolled");
        Ok(EnrolChipResponse {
            chip_id: chip_id.to_hex(),
            model,
            newly_enrolled: newly,
        })
    }

    async fn issue(&self, req: IssueLicenseRequest) -> Result<License, ServiceError> {
        // 1. Check every field.
        let now = self.clock.now();
        let terms = request::issue_terms(&req, now, &self.settings)?;
        Span::current().record("chip", field::display(terms.chip_id.short()));

        // 2. The chip must be enrolled.
        let chip_id = terms.chip_id;
        let Some(chip) = self.ledger(move |l| l.chip(&chip_id)).await? else {
            return Err(ServiceError::ChipNotEnrolled { chip_id });
        };

        // 3. The compliance policy: classification from the model, token
        //    lifetime from the tier.
        let (terms, tier) = match self.apply_policy(terms, &chip.model, req.lifetime_seconds) {
            Ok(applied) => applied,
            Err(e) => return Err(self.refuse(now, chip_id, &req, e).await),
        };

        // 4. Screen the tenant and end user; a hit is logged and refuses.
        let screened = self.screen_issue(&req, chip_id, now).await?;

        // 5. Mint, store with its entry (group commit), answer.
        let record = self.mint(terms, now, None, (now, screened.parties))?;
        Span::current().record("token", field::display(record.token_id));
        let mut audit = audit::license_record(EntryKind::Issued, &record, now, &self.token_key_id);
        if let Some((_, digest)) = &self.compliance {
            audit.entry.digests.insert("policy".into(), *digest);
        }
        for (name, decision) in screened.decisions {
            audit.entry.digests.insert(name, audit::sha256(&decision));
            audit.artefacts.push(decision.to_vec());
        }
        audit.entry.detail = format!(
            "issued until {}; {tier}; {}",
            record.expires_at, screened.note
        );
        let index = self.batcher.store(record.clone(), audit).await?;
        info!(
            token_id = %record.token_id,
            chip = %record.chip_id.short(),
            tenant = %record.tenant,
            expires_at = record.expires_at,
            index,
            "license issued"
        );
        Ok(to_wire(record))
    }

    async fn get(&self, caller: &Caller, token_id: &str) -> Result<License, ServiceError> {
        let token_id = request::token_id(token_id, "token_id")?;
        Span::current().record("token", field::display(token_id));
        let record = self.ledger(move |l| l.license(&token_id)).await?;
        let record = record.ok_or(ServiceError::LicenseNotFound { token_id })?;
        in_scope(caller, &record)?;
        Ok(to_wire(record))
    }

    async fn list(
        &self,
        caller: &Caller,
        mut req: ListLicensesRequest,
    ) -> Result<Vec<License>, ServiceError> {
        // An operator lists one of its tenants (its only one when it names
        // none), a device only its own chip; what they get back is then
        // cut to their sites or chip.
        match caller.role() {
            Role::Operator => {
                if req.tenant.is_empty()
                    && let [only] = caller.tenants()
                {
                    req.tenant.clone_from(only);
                }
                if req.tenant.is_empty() {
                    return Err(ServiceError::Input(request::InputError::Invalid {
                        field: "tenant",
                        reason: "an operator acting for several tenants must name one",
                    }));
                }
                caller.require_tenant(&req.tenant)?;
            }
            Role::Device => caller.require_chip(&req.chip_id)?,
            _ => {}
        }
        let (filter, limit) = request::list_filter(&req)?;
        let records = self
            .ledger(move |l| l.list_licenses(&filter, limit))
            .await?;
        debug!(count = records.len(), "licenses listed");
        Ok(records
            .into_iter()
            .filter(|r| in_scope(caller, r).is_ok())
            .map(to_wire)
            .collect())
    }

    async fn renew(
        &self,
        caller: &Caller,
        req: RenewLicenseRequest,
    ) -> Result<License, ServiceError> {
        // 1. The client's budget; check the request fields.
        self.limits.check(Limit::RenewPerClient, caller.key())?;
        let token_id = request::token_id(&req.token_id, "token_id")?;
        Span::current().record("token", field::display(token_id));
        let lifetime = request::lifetime(req.lifetime_seconds, &self.settings)?;
        request::attestation_result(&req.attestation_result)?;

        // 2. The license must exist.
        let old = self.ledger(move |l| l.license(&token_id)).await?;
        let old = old.ok_or(ServiceError::LicenseNotFound { token_id })?;
        Span::current().record("chip", field::display(old.chip_id.short()));
        in_scope(caller, &old)?;

        // 3. The attestation result must justify renewal now.
        let now = self.clock.now();
        let policy = RenewalPolicy {
            max_result_age_secs: self.settings.renewal_max_result_age_secs,
            clock_skew_secs: self.settings.clock_skew_secs,
        };
        let approval = match renewal::check(
            &req.attestation_result,
            &self.verifier_keys,
            &old,
            now,
            &policy,
        ) {
            Ok(approval) => approval,
            Err(e) => {
                let e = ServiceError::from(e);
                self.log_refusal(now, &old, "renewal", &e).await;
                return Err(e);
            }
        };
        debug!(
            result_key = approval.result_key_id(),
            "attestation result accepted"
        );
        // Only a trusted verifier's result for this license spends the chip's
        // budget.
        self.limits
            .check(Limit::RenewPerChip, &old.chip_id.to_hex())?;

        // 4. The tier may end the term, shorten the token or want a
        //    measured location.
        let expires_at = match self
            .renewal_expiry(&old, now, req.lifetime_seconds, lifetime, &approval)
            .await
        {
            Ok(at) => at,
            Err(e) => {
                self.log_refusal(now, &old, "renewal", &e).await;
                return Err(e);
            }
        };

        // 5. Same terms, fresh token, starting now; supersede atomically.
        let lineage = (old.term_started_at, old.parties.clone());
        let terms = IssueTerms {
            chip_id: old.chip_id,
            tenant: old.tenant,
            site: old.site,
            not_before: now,
            expires_at,
            entitlements: old.entitlements,
            eccn: old.eccn,
        };
        let record = self.mint(terms, now, Some(&approval), lineage)?;
        let mut audit =
            audit::license_record(EntryKind::Renewed, &record, now, approval.result_key_id());
        audit
            .entry
            .digests
            .insert("result".into(), audit::sha256(&req.attestation_result));
        if let Some(evidence) = approval.evidence_sha256() {
            audit.entry.digests.insert("evidence".into(), evidence);
        }
        audit.entry.detail = format!("renews {token_id} until {}", record.expires_at);
        let audit = audit.with_artefact(req.attestation_result.clone());
        self.supersede(approval, record.clone(), audit).await?;
        info!(
            token_id = %record.token_id,
            renewed_from = %token_id,
            chip = %record.chip_id.short(),
            tenant = %record.tenant,
            expires_at = record.expires_at,
            "license renewed"
        );
        Ok(to_wire(record))
    }

    async fn revoke(&self, req: RevokeLicenseRequest) -> Result<u64, ServiceError> {
        // 1. Check the request fields.
        let token_id = request::token_id(&req.token_id, "token_id")?;
        Span::current().record("token", field::display(token_id));
        let reason = request::reason(&req.reason)?;

        // 2. Revoke the license and its whole renewal lineage in one ledger
        //    step: a renewal leaves older tokens within their validity.
        let now = self.clock.now();
        let license = self.ledger(move |l| l.license(&token_id)).await?;
        let license = license.ok_or(ServiceError::LicenseNotFound { token_id })?;
        let mut audit =
            audit::license_record(EntryKind::Revoked, &license, now, &self.token_key_id);
        audit.entry.detail = format!("lineage revoked: {reason}");
        let done = self
            .ledger(move |l| l.revoke(&token_id, &reason, now, &audit))
            .await?;
        info!(
            token_id = %token_id,
            seq = done.seq,
            lineage = done.lineage,
            newly_revoked = done.newly_revoked,
            "license revoked"
        );
        Ok(done.seq)
    }

    async fn revocation_list(&self) -> Result<(u64, Arc<Vec<u8>>), ServiceError> {
        // Verifiers judge freshness by the signed issued_at, so the list is
        // signed in the current second; the cache makes that one signature
        // per second and version.
        let seq = self.ledger(|l| l.revocation_seq()).await?;
        let read = || self.ledger(|l| l.revocations());
        let sign =
            |list: &RevocationList| list.sign(&self.token_key_id, |m| self.token_key.sign(m));
        let (seq, signed) = self
            .published
            .current(seq, || self.clock.now(), read, sign)
            .await?;
        // A list verifiers would refuse is not served: the refusal names the
        // problem here instead of in every verifier's log.
        // Limitation: entries stay on the list after their licenses expire,
        // so a long-lived issuer can reach this bound (about 29,000 entries
        // with empty reasons, 3,500 with 256 four-byte characters each);
        // revocations are still recorded, but verifiers keep their last list
        // until it is stale and then leave every revocation claim unknown.
        if signed.len() > revocation::MAX_LIST_LEN {
            return Err(ServiceError::RevocationListTooLarge {
                bytes: signed.len(),
                max: revocation::MAX_LIST_LEN,
            });
        }
        Ok((seq, signed))
    }

    /// Builds and signs a license record from checked terms.
    fn mint(
        &self,
        terms: IssueTerms,
        now: i64,
        renewing: Option<&RenewalApproval>,
        (term_started_at, parties): (i64, String),
    ) -> Result<LicenseRecord, ServiceError> {
        let mut id = [0u8; 16];
        self.rng.fill(&mut id).map_err(|_| ServiceError::Random)?;
        let token_id = TokenId(id);

        let claims = LicenseClaims {
            issuer: self.settings.issuer_name.clone(),
            chip_id: terms.chip_id,
            audience: self.settings.audience.clone(),
            issued_at: now,
            not_before: terms.not_before,
            expires_at: terms.expires_at,
            token_id,
            tenant: terms.tenant,
            site: terms.site,
            entitlements: terms.entitlements,
            eccn: terms.eccn,
        };
        let token = claims.sign(&self.token_key_id, |m| self.token_key.sign(m));
        Ok(LicenseRecord {
            token_id,
            chip_id: claims.chip_id,
            tenant: claims.tenant,
            site: claims.site,
            issued_at: claims.issued_at,
            not_before: claims.not_before,
            expires_at: claims.expires_at,
            state: LicenseState::Active,
            token,
            renewed_from: renewing.map(|a| *a.token_id()),
            entitlements: claims.entitlements,
            eccn: claims.eccn,
            term_started_at,
            parties,
        })
    }

    /// The terms the compliance policy allows, and the tier in words; the
    /// terms as they are without a policy.
    fn apply_policy(
        &self,
        mut terms: IssueTerms,
        model: &str,
        requested_lifetime: i64,
    ) -> Result<(IssueTerms, String), ServiceError> {
        let Some((policy, _)) = &self.compliance else {
            return Ok((terms, "no compliance policy".into()));
        };
        let allowed = policy.terms(model, &terms.site.id, &terms.tenant)?;
        terms.eccn = allowed.classification_for(model, &terms.eccn)?;
        terms.expires_at = terms
            .not_before
            .saturating_add(allowed.lifetime(requested_lifetime)?);
        let tier = format!(
            "tier {} ({}), classification {}",
            allowed.tier.name, allowed.country, allowed.classification
        );
        Ok((terms, tier))
    }

    /// When a renewed token expires: the tier's rules with a policy, the
    /// issuer's lifetime without.
    async fn renewal_expiry(
        &self,
        old: &LicenseRecord,
        now: i64,
        requested: i64,
        lifetime: i64,
        approval: &RenewalApproval,
    ) -> Result<i64, ServiceError> {
        let Some((policy, _)) = &self.compliance else {
            return Ok(now.saturating_add(lifetime));
        };
        let chip_id = old.chip_id;
        let chip = self.ledger(move |l| l.chip(&chip_id)).await?;
        let chip = chip.ok_or(ServiceError::ChipNotEnrolled { chip_id })?;
        let terms = policy.terms(&chip.model, &old.site.id, &old.tenant)?;
        Ok(terms.renewal_expiry(
            old.term_started_at,
            now,
            requested,
            approval.location_measured(),
        )?)
    }

    /// Logs a refused issuance and hands the error back.
    async fn refuse(
        &self,
        now: i64,
        chip_id: chipward_proto::ChipId,
        req: &IssueLicenseRequest,
        e: ServiceError,
    ) -> ServiceError {
        let mut entry = AuditEntry::new(now, EntryKind::Refused);
        entry.chip_id = Some(chip_id);
        entry.tenant = req.tenant.chars().take(64).collect();
        entry.site_id = req
            .site
            .as_ref()
            .map(|s| s.id.chars().take(64).collect())
            .unwrap_or_default();
        if let Some((_, digest)) = &self.compliance {
            entry.digests.insert("policy".into(), *digest);
        }
        entry.detail = format!("issuance refused: {e}");
        self.log(AuditRecord::new(entry)).await;
        e
    }

    /// Logs a refusal concerning an existing license.
    async fn log_refusal(&self, now: i64, license: &LicenseRecord, what: &str, e: &ServiceError) {
        let mut record = audit::license_record(EntryKind::Refused, license, now, "");
        record.artefacts.clear();
        record.entry.detail = format!("{what} refused: {e}");
        self.log(record).await;
    }

    /// Appends an entry that changes nothing else. A failure is logged and
    /// otherwise ignored: the refusal it records stands either way.
    async fn log(&self, record: AuditRecord) {
        let records = vec![record];
        if let Err(e) = self.ledger(move |l| l.append_audit(&records)).await {
            error!(error = %e, "audit entry not written");
        }
    }

    /// Replaces the approved license with `new` in one ledger step.
    async fn supersede(
        &self,
        approval: RenewalApproval,
        new: LicenseRecord,
        audit: AuditRecord,
    ) -> Result<u64, ServiceError> {
        let old = *approval.token_id();
        self.ledger(move |l| l.renew(&old, &new, &audit)).await
    }

    /// Runs a ledger call on the blocking pool.
    async fn ledger<T, F>(&self, call: F) -> Result<T, ServiceError>
    where
        F: FnOnce(&dyn Ledger) -> Result<T, LedgerError> + Send + 'static,
        T: Send + 'static,
    {
        let ledger = Arc::clone(&self.ledger);
        tokio::task::spawn_blocking(move || call(ledger.as_ref()))
            .await
            .map_err(|_| ServiceError::TaskFailed)?
            .map_err(ServiceError::from)
    }
}

#[tonic::async_trait]
impl Issuer for IssuerService {
    #[instrument(skip_all, fields(
        rpc = "EnrolChip",
        request_id = %request_id(&request),
        chip = field::Empty,
    ))]
    async fn enrol_chip(
        &self,
        request: Request<EnrolChipRequest>,
    ) -> Result<Response<EnrolChipResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "EnrolChip", ADMIN) {
            Ok(caller) => {
                let chain = request.into_inner().cert_chain;
                self.enrol(caller.key(), chain).await
            }
            Err(e) => Err(e),
        };
        self.answer("EnrolChip", started, out).map(Response::new)
    }

    #[instrument(skip_all, fields(
        rpc = "IssueLicense",
        request_id = %request_id(&request),
        chip = field::Empty,
        token = field::Empty,
    ))]
    async fn issue_license(
        &self,
        request: Request<IssueLicenseRequest>,
    ) -> Result<Response<LicenseResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "IssueLicense", ADMIN) {
            Ok(_) => self.issue(request.into_inner()).await,
            Err(e) => Err(e),
        };
        let license = self.answer("IssueLicense", started, out)?;
        self.metrics.issued();
        Ok(Response::new(LicenseResponse {
            license: Some(license),
        }))
    }

    #[instrument(skip_all, fields(
        rpc = "GetLicense",
        request_id = %request_id(&request),
        token = field::Empty,
    ))]
    async fn get_license(
        &self,
        request: Request<GetLicenseRequest>,
    ) -> Result<Response<LicenseResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "GetLicense", READERS) {
            Ok(caller) => self.get(&caller, &request.into_inner().token_id).await,
            Err(e) => Err(e),
        };
        let license = self.answer("GetLicense", started, out)?;
        Ok(Response::new(LicenseResponse {
            license: Some(license),
        }))
    }

    #[instrument(skip_all, fields(
        rpc = "ListLicenses",
        request_id = %request_id(&request),
    ))]
    async fn list_licenses(
        &self,
        request: Request<ListLicensesRequest>,
    ) -> Result<Response<ListLicensesResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "ListLicenses", READERS) {
            Ok(caller) => self.list(&caller, request.into_inner()).await,
            Err(e) => Err(e),
        };
        let licenses = self.answer("ListLicenses", started, out)?;
        Ok(Response::new(ListLicensesResponse { licenses }))
    }

    #[instrument(skip_all, fields(
        rpc = "RenewLicense",
        request_id = %request_id(&request),
        chip = field::Empty,
        token = field::Empty,
    ))]
    async fn renew_license(
        &self,
        request: Request<RenewLicenseRequest>,
    ) -> Result<Response<LicenseResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "RenewLicense", &[Role::Operator]) {
            Ok(caller) => self.renew(&caller, request.into_inner()).await,
            Err(e) => Err(e),
        };
        let license = self.answer("RenewLicense", started, out)?;
        self.metrics.renewed();
        Ok(Response::new(LicenseResponse {
            license: Some(license),
        }))
    }

    #[instrument(skip_all, fields(
        rpc = "RevokeLicense",
        request_id = %request_id(&request),
        token = field::Empty,
    ))]
    async fn revoke_license(
        &self,
        request: Request<RevokeLicenseRequest>,
    ) -> Result<Response<RevokeLicenseResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "RevokeLicense", ADMIN) {
            Ok(_) => self.revoke(request.into_inner()).await,
            Err(e) => Err(e),
        };
        let seq = self.answer("RevokeLicense", started, out)?;
        self.metrics.revoked();
        Ok(Response::new(RevokeLicenseResponse {
            revocation_seq: seq,
        }))
    }

    #[instrument(skip_all, fields(
        rpc = "GetRevocationList",
        request_id = %request_id(&request),
    ))]
    async fn get_revocation_list(
        &self,
        request: Request<GetRevocationListRequest>,
    ) -> Result<Response<RevocationListResponse>, Status> {
        let started = Instant::now();
        let out = match admit(&request, "GetRevocationList", &Role::ALL) {
            Ok(_) => {
                let GetRevocationListRequest {} = request.into_inner();
                self.revocation_list().await
            }
            Err(e) => Err(e),
        };
        let (seq, signed) = self.answer("GetRevocationList", started, out)?;
        Ok(Response::new(RevocationListResponse {
            signed_list: signed.as_ref().clone(),
            seq,
        }))
    }

    #[instrument(skip_all, fields(
        rpc = "BeginHostEnrolment",
        request_id = %request_id(&request),
        host = field::Empty,
        enrolment = field::Empty,
    ))]
    async fn begin_host_enrolment(
        &self,
        request: Request<BeginHostEnrolmentRequest>,
    ) -> Result<Response<BeginHostEnrolmentResponse>, Status> {
        let started = Instant::now();
        let begun = match admit(&request, "BeginHostEnrolment", HOST_ENROLERS) {
            Ok(caller) => self.begin_host(caller.key(), request.into_inner()).await,
            Err(e) => Err(e),
        };
        self.answer("BeginHostEnrolment", started, begun)
            .map(Response::new)
    }

    #[instrument(skip_all, fields(
        rpc = "CompleteHostEnrolment",
        request_id = %request_id(&request),
        host = field::Empty,
        enrolment = field::Empty,
    ))]
    async fn complete_host_enrolment(
        &self,
        request: Request<CompleteHostEnrolmentRequest>,
    ) -> Result<Response<CompleteHostEnrolmentResponse>, Status> {
        let started = Instant::now();
        let done = match admit(&request, "CompleteHostEnrolment", HOST_ENROLERS) {
            Ok(caller) => self.complete_host(caller.key(), request.into_inner()).await,
            Err(e) => Err(e),
        };
        self.answer("CompleteHostEnrolment", started, done)
            .map(Response::new)
    }
}

impl IssuerService {
    /// Records how long one call of `rpc` took, counts a refusal by its
    /// stable code, and turns the outcome into the gRPC answer.
    // Limitation: only Issuer RPCs pass through here; AuditLog and
    // Compliance calls are logged when refused but neither timed nor counted.
    fn answer<T>(
        &self,
        rpc: &'static str,
        started: Instant,
        out: Result<T, ServiceError>,
    ) -> Result<T, Status> {
        self.metrics.observe(rpc, started.elapsed());
        out.map_err(|e| {
            self.metrics.refused(e.code());
            reject(e)
        })
    }
}

/// Roles that administer the vendor's side.
const ADMIN: &[Role] = &[Role::VendorAdmin];
/// Roles that may read licenses (operators and devices within scope).
const READERS: &[Role] = &[
    Role::VendorAdmin,
    Role::Reviewer,
    Role::Auditor,
    Role::Operator,
    Role::Device,
];
/// Roles that may enrol a host's TPM.
// Limitation: a host enrolment names no tenant or site, so an operator's
// scope does not limit which hosts it may enrol.
const HOST_ENROLERS: &[Role] = &[Role::VendorAdmin, Role::Operator];

/// The caller of `request`, if its role is one of `roles`.
pub(crate) fn admit<T>(
    request: &Request<T>,
    rpc: &'static str,
    roles: &[Role],
) -> Result<Caller, ServiceError> {
    let caller = Caller::of(request)?;
    caller.require(rpc, roles)?;
    Ok(caller)
}

/// Refuses unless `license` is within the caller's scope.
pub(crate) fn in_scope(caller: &Caller, license: &LicenseRecord) -> Result<(), ServiceError> {
    caller.require_scope(&license.tenant, &license.site.id, &license.chip_id.to_hex())?;
    Ok(())
}

/// Logs a failure at the level its kind deserves and turns it into a status.
fn reject(err: ServiceError) -> Status {
    let code = err.code();
    match err.severity() {
        Severity::BadRequest => debug!(code, error = %err, "request refused"),
        Severity::Security => warn!(code, error = %err, "request refused"),
        Severity::Fault => error!(code, error = ?err, "request failed"),
    }
    Status::from(err)
}

fn to_wire(r: LicenseRecord) -> License {
    License {
        token_id: r.token_id.to_hex(),
        chip_id: r.chip_id.to_hex(),
        tenant: r.tenant,
        site: Some(Site {
            id: r.site.id,
            latitude: r.site.latitude,
            longitude: r.site.longitude,
            radius_km: r.site.radius_km,
        }),
        issued_at: r.issued_at,
        not_before: r.not_before,
        expires_at: r.expires_at,
        status: r.state.to_proto().into(),
        token: r.token,
        renewed_from: r.renewed_from.map(|t| t.to_hex()).unwrap_or_default(),
        entitlements: r.entitlements,
        eccn: r.eccn,
    }
}
