//! The `chipward.v1.AuditLog` service and the audit records the issuer's
//! other calls append.
//!
//! Tree heads are signed on request with the token key, over the log as it
//! stands, and kept so later heads can be proven consistent with them.
//! Proofs and bundles are read from the ledger's stored subtree hashes.
//! Results sent to `RecordResult` are attacker-controlled until a trusted
//! verifier key's signature checks.

use chipward_proto::access::{AccessError, Caller, Role};
use chipward_proto::audit::{
    self, AuditEntry, AuditExport, EntryKind, NodeSource, TreeHead, inclusion_proof,
};
use chipward_proto::grpc::audit_log_server::AuditLog;
use chipward_proto::grpc::{
    ConsistencyProofRequest, ConsistencyProofResponse, ExportBundleRequest, ExportBundleResponse,
    GetEntriesRequest, GetEntriesResponse, GetTreeHeadRequest, InclusionProofRequest,
    InclusionProofResponse, RecordResultRequest, RecordResultResponse, TreeHeadResponse,
};
use chipward_proto::request_id::request_id;
use chipward_proto::{ChipId, TokenId};
use chipward_proto::{cose, result};
use tonic::{Request, Response, Status};
use tracing::{info, instrument};

use super::{IssuerService, admit, in_scope, reject};
use crate::error::ServiceError;
use crate::ledger::{
    AuditRecord, AuditSelection, Ledger, LedgerError, LicenseFilter, LicenseRecord, ResultRecord,
    StoredTreeHead,
};
use crate::request::{self, InputError};

/// Most entries one `GetEntries` call returns.
pub const MAX_ENTRIES_PER_CALL: usize = 1_000;
/// Most entries one bundle carries; a request matching more is refused.
pub const MAX_BUNDLE_ENTRIES: usize = 10_000;
/// Largest bundle JSON sent, a little below the `AuditLog` encoding limit
/// ([`crate::MAX_AUDIT_RESPONSE_BYTES`]); a larger bundle is refused.
pub const MAX_BUNDLE_BYTES: usize = crate::MAX_AUDIT_RESPONSE_BYTES - 4096;

pub(crate) use chipward_certs::keys::sha256;

/// The entry for something that happened to a license, naming its chip,
/// token, tenant and site, and carrying the token's digest (and the token
/// as an artefact).
pub(super) fn license_record(
    kind: EntryKind,
    l: &LicenseRecord,
    at: i64,
    key_id: &str,
) -> AuditRecord {
    let mut entry = AuditEntry::new(at, kind);
    entry.chip_id = Some(l.chip_id);
    entry.token_id = Some(l.token_id);
    entry.tenant = l.tenant.clone();
    entry.site_id = l.site.id.clone();
    entry.key_id = key_id.to_owned();
    entry.digests.insert("license".into(), sha256(&l.token));
    AuditRecord::new(entry).with_artefact(l.token.clone())
}

/// The ledger's subtree hashes as a proof source.
pub(super) struct LedgerNodes<'a>(pub(super) &'a dyn Ledger);

impl NodeSource for LedgerNodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<audit::Hash, LedgerError> {
        self.0.audit_node(level, index)
    }
}

impl IssuerService {
    /// Signs and keeps a head over the whole log.
    pub(super) async fn tree_head(&self) -> Result<StoredTreeHead, ServiceError> {
        let now = self.clock.now();
        let (size, root) = self
            .ledger(|l| {
                let size = l.audit_size()?;
                Ok((size, audit::root(&LedgerNodes(l), size)?))
            })
            .await?;
        let head = TreeHead {
            log_id: self.log_id.clone(),
            size,
            root,
            timestamp: now,
        };
        let signed = head
            .sign(&self.token_key_id, |m| self.token_key.sign(m))
            .map_err(|e| ServiceError::Ledger(LedgerError::Backend(Box::new(e))))?;
        let stored = StoredTreeHead {
            size,
            root,
            timestamp: now,
            signed,
        };
        let kept = stored.clone();
        self.ledger(move |l| l.store_tree_head(&kept)).await?;
        Ok(stored)
    }

    async fn entries(&self, req: GetEntriesRequest) -> Result<Vec<Vec<u8>>, ServiceError> {
        let limit = match req.limit as usize {
            0 => MAX_ENTRIES_PER_CALL,
            n => n.min(MAX_ENTRIES_PER_CALL),
        };
        self.ledger(move |l| l.audit_entries(req.start, limit))
            .await
    }

    async fn inclusion(
        &self,
        req: InclusionProofRequest,
    ) -> Result<InclusionProofResponse, ServiceError> {
        let (index, size) = (req.index, req.tree_size);
        let size_now = self.ledger(|l| l.audit_size()).await?;
        if size > size_now || index >= size {
            return Err(ServiceError::AuditRange(format!(
                "entry {index} of a tree of {size} is outside the log of {size_now}"
            )));
        }
        self.ledger(move |l| {
            let path = inclusion_proof(&LedgerNodes(l), index, size).map_err(prove_error)?;
            let entry = l
                .audit_entries(index, 1)?
                .pop()
                .ok_or(LedgerError::Corrupt {
                    what: "audit entry",
                })?;
            Ok(InclusionProofResponse {
                entry,
                path: path.iter().map(|h| h.to_vec()).collect(),
            })
        })
        .await
    }

    async fn consistency(
        &self,
        req: ConsistencyProofRequest,
    ) -> Result<Vec<Vec<u8>>, ServiceError> {
        let (old, new) = (req.old_size, req.new_size);
        let size_now = self.ledger(|l| l.audit_size()).await?;
        if old > new || new > size_now {
            return Err(ServiceError::AuditRange(format!(
                "sizes {old} to {new} are not within the log of {size_now}"
            )));
        }
        self.ledger(move |l| {
            let path = audit::consistency_proof(&LedgerNodes(l), old, new).map_err(prove_error)?;
            Ok(path.iter().map(|h| h.to_vec()).collect())
        })
        .await
    }

    async fn bundle(
        &self,
        caller: &Caller,
        req: ExportBundleRequest,
    ) -> Result<ExportBundleResponse, ServiceError> {
        // 1. Exactly one of chip or site, and a range.
        let select = selection(&req)?;
        if !caller.sees_everything() {
            self.bundle_in_scope(caller, &select).await?;
        }
        let trusted_size = req.trusted_size;

        // 2. A fresh head, then the entries, proofs and artefacts under it.
        let head = self.tree_head().await?;
        if trusted_size > head.size {
            return Err(ServiceError::AuditRange(format!(
                "trusted size {trusted_size} is beyond the log of {}",
                head.size
            )));
        }
        self.ledger(move |l| {
            let mut found = l.audit_select(&select, MAX_BUNDLE_ENTRIES + 1)?;
            if found.len() > MAX_BUNDLE_ENTRIES {
                return Ok(Err(too_large(format!(
                    "more than {MAX_BUNDLE_ENTRIES} entries match"
                ))));
            }
            found.retain(|(index, _)| *index < head.size);
            let earlier = match trusted_size {
                0 => Vec::new(),
                size => l
                    .tree_heads(size, 1)?
                    .into_iter()
                    .filter(|h| h.size == size)
                    .map(|h| h.signed)
                    .collect(),
            };
            let mut export =
                AuditExport::part(&LedgerNodes(l), head.signed, found.clone(), earlier)
                    .map_err(|e| LedgerError::Backend(Box::new(e)))?;
            // Base64 in the JSON grows bytes by a third: stop reading
            // artefacts once their raw size alone could not fit.
            let mut raw: usize = found.iter().map(|(_, bytes)| bytes.len()).sum();
            for (_, bytes) in &found {
                let entry = AuditEntry::decode(bytes).map_err(|_| LedgerError::Corrupt {
                    what: "audit entry",
                })?;
                for (name, digest) in &entry.digests {
                    if let Some(artefact) = l.artefact(digest)? {
                        raw = raw.saturating_add(artefact.len());
                        if raw > MAX_BUNDLE_BYTES / 4 * 3 {
                            return Ok(Err(too_large(format!(
                                "the bundle would be larger than {MAX_BUNDLE_BYTES} bytes"
                            ))));
                        }
                        export.add_artifact(name.clone(), artefact);
                    }
                }
            }
            let export_json = export.to_json().into_bytes();
            if export_json.len() > MAX_BUNDLE_BYTES {
                return Ok(Err(too_large(format!(
                    "the bundle would be {} bytes, more than {MAX_BUNDLE_BYTES}",
                    export_json.len()
                ))));
            }
            Ok(Ok(ExportBundleResponse {
                export_json,
                entries: u32::try_from(found.len()).unwrap_or(u32::MAX),
            }))
        })
        .await?
    }

    /// An operator may export the bundle of a chip only when it has at
    /// least one license and every one of them is within its scope; site
    /// bundles hold other tenants' chips and are for the vendor's roles.
    async fn bundle_in_scope(
        &self,
        caller: &Caller,
        select: &AuditSelection,
    ) -> Result<(), ServiceError> {
        let AuditSelection::Chip { chip_id, .. } = select else {
            return Err(AccessError::Scope {
                role: caller.role(),
                what: "a site bundle".into(),
            }
            .into());
        };
        let chip = *chip_id;
        let filter = LicenseFilter {
            chip_id: Some(chip),
            tenant: None,
        };
        let licenses = self
            .ledger(move |l| l.list_licenses(&filter, usize::MAX))
            .await?;
        if licenses.is_empty() {
            return Err(AccessError::Scope {
                role: caller.role(),
                what: format!("chip {}", chip.to_hex()),
            }
            .into());
        }
        for license in &licenses {
            in_scope(caller, license)?;
        }
        Ok(())
    }

    async fn record(&self, caller: &Caller, req: RecordResultRequest) -> Result<u64, ServiceError> {
        // 1. Only a trusted verifier's signature makes the bytes count. The
        //    envelope is re-encoded canonically first, so one signed result
        //    has one digest however it was wrapped, and it is stored so.
        request::attestation_result(&req.attestation_result)?;
        let untrusted = || {
            ServiceError::Input(InputError::Invalid {
                field: "attestation_result",
                reason: "not a result signed by a trusted verifier",
            })
        };
        let signed = cose::canonical(&req.attestation_result, result::MAX_RESULT_LEN)
            .map_err(|_| untrusted())?;
        let verified = result::verify(&signed, &self.verifier_keys).map_err(|_| untrusted())?;
        let r = verified.result();
        caller.require_scope(&r.tenant, &r.site_id, &r.chip_id)?;

        // 2. Only a recent result: an old one recorded again would fake a
        //    regular attestation (and the ledger refuses one recorded before).
        let now = self.clock.now();
        let max_age = self.settings.record_max_result_age_secs;
        let skew = self.settings.clock_skew_secs;
        if r.appraised_at < now.saturating_sub(max_age) || r.appraised_at > now.saturating_add(skew)
        {
            return Err(ServiceError::ResultOutOfWindow {
                appraised_at: r.appraised_at,
                max_age_secs: max_age,
            });
        }

        // 3. The result row and its entry, in one commit.
        let digest = sha256(&signed);
        let chip_id = r.chip_id.parse::<ChipId>().ok();
        let token_id = r.token_id.parse::<TokenId>().ok();
        let mut entry = AuditEntry::new(now, EntryKind::Appraised);
        entry.chip_id = chip_id;
        entry.token_id = token_id;
        entry.tenant = bounded(&r.tenant);
        entry.site_id = bounded(&r.site_id);
        entry.key_id = verified.key_id().to_owned();
        entry.digests.insert("result".into(), digest);
        if let Ok(evidence) = hex::decode(&r.evidence_sha256)
            && let Ok(evidence) = <[u8; 32]>::try_from(evidence.as_slice())
        {
            entry.digests.insert("evidence".into(), evidence);
        }
        entry.detail = format!("verdict {:?}", r.verdict).to_lowercase();
        let record = AuditRecord::new(entry).with_artefact(signed.clone());
        let row = ResultRecord {
            sha256: digest,
            chip_id,
            site_id: bounded(&r.site_id),
            tenant: bounded(&r.tenant),
            appraised_at: r.appraised_at,
            token_id,
            signed,
        };
        let index = self.ledger(move |l| l.record_result(&row, &record)).await?;
        info!(index, "attestation result logged");
        Ok(index)
    }
}

/// An inclusion proof carries its entry, so it is served outside the roles
/// that read the whole log ([`LOG_READERS`]) only when the entry concerns
/// the caller's scope: an operator's tenant and site, a device's chip.
/// Entries naming no tenant (or, for a device, no chip) are for the vendor's
/// roles; landmarks and verifiers have no scope and get no entry.
fn entry_in_scope(caller: &Caller, entry: &[u8]) -> Result<(), ServiceError> {
    if caller.sees_everything() {
        return Ok(());
    }
    let entry = AuditEntry::decode(entry).map_err(|_| LedgerError::Corrupt {
        what: "audit entry",
    })?;
    let chip = entry.chip_id.map(|c| c.to_hex()).unwrap_or_default();
    caller.require_scope(&entry.tenant, &entry.site_id, &chip)?;
    Ok(())
}

fn too_large(what: String) -> ServiceError {
    ServiceError::BundleTooLarge(what)
}

/// Text from a verified result, cut to what an entry holds.
fn bounded(text: &str) -> String {
    text.chars().take(audit::MAX_TEXT_LEN / 4).collect()
}

fn prove_error(e: audit::ProveError<LedgerError>) -> LedgerError {
    match e {
        audit::ProveError::Source(inner) => inner,
        other => LedgerError::Backend(Box::new(other)),
    }
}

fn selection(req: &ExportBundleRequest) -> Result<AuditSelection, ServiceError> {
    let (from, to) = (req.from, req.to);
    if from >= to {
        return Err(ServiceError::Input(InputError::Invalid {
            field: "to",
            reason: "must be later than from",
        }));
    }
    match (req.chip_id.is_empty(), req.site_id.is_empty()) {
        (false, true) => Ok(AuditSelection::Chip {
            chip_id: request::chip_id(&req.chip_id, "chip_id")?,
            from,
            to,
        }),
        (true, false) => Ok(AuditSelection::Site {
            site_id: request::site_id(&req.site_id)?,
            from,
            to,
        }),
        _ => Err(ServiceError::Input(InputError::Invalid {
            field: "chip_id",
            reason: "give exactly one of chip_id and site_id",
        })),
    }
}

/// Roles that may read every log entry.
const LOG_READERS: &[Role] = &[Role::VendorAdmin, Role::Reviewer, Role::Auditor];
/// Roles that may export evidence bundles (operators for their own chips).
const BUNDLE_READERS: &[Role] = &[
    Role::VendorAdmin,
    Role::Reviewer,
    Role::Auditor,
    Role::Operator,
];

#[tonic::async_trait]
impl AuditLog for IssuerService {
    #[instrument(skip_all, fields(rpc = "GetTreeHead", request_id = %request_id(&request)))]
    async fn get_tree_head(
        &self,
        request: Request<GetTreeHeadRequest>,
    ) -> Result<Response<TreeHeadResponse>, Status> {
        admit(&request, "GetTreeHead", &Role::ALL).map_err(reject)?;
        let GetTreeHeadRequest {} = request.into_inner();
        let head = self.tree_head().await.map_err(reject)?;
        Ok(Response::new(TreeHeadResponse {
            signed_tree_head: head.signed,
            tree_size: head.size,
        }))
    }

    #[instrument(skip_all, fields(rpc = "GetEntries", request_id = %request_id(&request)))]
    async fn get_entries(
        &self,
        request: Request<GetEntriesRequest>,
    ) -> Result<Response<GetEntriesResponse>, Status> {
        admit(&request, "GetEntries", LOG_READERS).map_err(reject)?;
        let entries = self.entries(request.into_inner()).await.map_err(reject)?;
        Ok(Response::new(GetEntriesResponse { entries }))
    }

    #[instrument(skip_all, fields(rpc = "GetInclusionProof", request_id = %request_id(&request)))]
    async fn get_inclusion_proof(
        &self,
        request: Request<InclusionProofRequest>,
    ) -> Result<Response<InclusionProofResponse>, Status> {
        let caller = admit(&request, "GetInclusionProof", &Role::ALL).map_err(reject)?;
        let proof = self.inclusion(request.into_inner()).await.map_err(reject)?;
        entry_in_scope(&caller, &proof.entry).map_err(reject)?;
        Ok(Response::new(proof))
    }

    #[instrument(skip_all, fields(rpc = "GetConsistencyProof", request_id = %request_id(&request)))]
    async fn get_consistency_proof(
        &self,
        request: Request<ConsistencyProofRequest>,
    ) -> Result<Response<ConsistencyProofResponse>, Status> {
        admit(&request, "GetConsistencyProof", &Role::ALL).map_err(reject)?;
        let path = self
            .consistency(request.into_inner())
            .await
            .map_err(reject)?;
        Ok(Response::new(ConsistencyProofResponse { path }))
    }

    #[instrument(skip_all, fields(rpc = "ExportBundle", request_id = %request_id(&request)))]
    async fn export_bundle(
        &self,
        request: Request<ExportBundleRequest>,
    ) -> Result<Response<ExportBundleResponse>, Status> {
        let caller = admit(&request, "ExportBundle", BUNDLE_READERS).map_err(reject)?;
        let bundle = self
            .bundle(&caller, request.into_inner())
            .await
            .map_err(reject)?;
        Ok(Response::new(bundle))
    }

    #[instrument(skip_all, fields(rpc = "RecordResult", request_id = %request_id(&request)))]
    async fn record_result(
        &self,
        request: Request<RecordResultRequest>,
    ) -> Result<Response<RecordResultResponse>, Status> {
        let caller = admit(&request, "RecordResult", &[Role::Operator]).map_err(reject)?;
        let index = self
            .record(&caller, request.into_inner())
            .await
            .map_err(reject)?;
        Ok(Response::new(RecordResultResponse { index }))
    }
}
