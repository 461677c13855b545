//! Restricted-party screening at issuance, and the `chipward.v1.Compliance`
//! service: loading lists (and screening every active license's parties
//! again), reviewer overrides, legal holds and purges.
//!
//! While a list is loaded, an issuance must name its tenant's legal party
//! and may name an end user; each is screened ([`crate::screening`]). A hit
//! blocks issuance unless a reviewer cleared that name for that list. Every
//! decision is kept: a hit as a `screened` entry plus the `refused` one, a
//! clearance as the decision's digest in the `issued` entry, the decision
//! itself (list digest and date, candidates and scores) as an artefact.
//! Decisions are cached per list and party, so screening costs one lookup
//! for a party seen before.
//!
//! Limitation: the loaded list and the overrides live in memory. After a
//! restart the list comes from the configuration again and overrides must
//! be entered again; both are in the audit log.
//! Limitation: the reviewer an override names is the one its request gives;
//! the caller's certificate proves only that a reviewer made it (roles are
//! checked by [`compliance_gate`] and by each call).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chipward_proto::access::{Caller, Role};
use chipward_proto::audit::{AuditEntry, EntryKind};
use chipward_proto::grpc::compliance_server::Compliance;
use chipward_proto::grpc::{
    IssueLicenseRequest, LiftLegalHoldRequest, LiftLegalHoldResponse, LoadScreeningListRequest,
    LoadScreeningListResponse, OverrideScreeningRequest, OverrideScreeningResponse,
    PlaceLegalHoldRequest, PlaceLegalHoldResponse, PurgeLicenseRequest, PurgeLicenseResponse,
};
use chipward_proto::request_id::request_id;
use chipward_proto::{ChipId, TokenId};
use serde::{Deserialize, Serialize};
use tonic::{Request, Response, Status};
use tracing::{info, instrument, warn};

use super::audit::{license_record, sha256};
use super::{IssuerService, admit, reject};
use crate::error::ServiceError;
use crate::ledger::{AuditRecord, LegalHold, LicenseFilter, LicenseState, RETENTION_SECS};
use crate::request::{self, InputError};
use crate::screening::{ListFormat, Party, PartyRole, Screener, ScreeningList};

/// Decisions cached before the cache is emptied.
const MAX_CACHED: usize = 10_000;
/// Most reviewer overrides kept in memory, over every list loaded since
/// start; more are refused.
pub const MAX_OVERRIDES: usize = 10_000;

/// The list in force, reviewer overrides, and cached decisions.
#[derive(Debug, Default)]
pub struct Screening {
    current: RwLock<Option<Arc<Screener>>>,
    /// (list digest, party name) pairs a reviewer cleared.
    overrides: Mutex<HashSet<(String, String)>>,
    /// (list digest, party as JSON) to (hit, decision as JSON).
    cache: Mutex<HashMap<(String, String), Decided>>,
}

/// Whether a party hit, and the decision as JSON.
type Decided = (bool, Arc<Vec<u8>>);

/// A party as stored with a license.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredParty {
    /// `tenant` or `end_user`.
    pub role: String,
    /// Legal name.
    pub name: String,
    /// Address; may be empty.
    pub address: String,
    /// ISO 3166 alpha-2; may be empty.
    pub country: String,
}

impl StoredParty {
    fn to_party(&self) -> Party {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        Party {
            role: if self.role == "end_user" {
                PartyRole::EndUser
            } else {
                PartyRole::Tenant
            },
            name: self.name.clone(),
            address: opt(&self.address),
            country: opt(&self.country),
        }
    }
}

/// What screening an issuance found: the parties to keep with the license,
/// the decisions to log, and a line for the entry.
#[derive(Debug, Default)]
pub(super) struct Screened {
    pub(super) parties: String,
    pub(super) decisions: Vec<(String, Arc<Vec<u8>>)>,
    pub(super) note: String,
}

impl Screening {
    fn screener(&self) -> Option<Arc<Screener>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn overridden(&self, digest: &str, name: &str) -> bool {
        self.overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&(digest.to_owned(), name.to_owned()))
    }

    /// Refuses a new override once [`MAX_OVERRIDES`] are kept.
    fn room_for_override(&self, digest: &str, name: &str) -> Result<(), ServiceError> {
        let overrides = self
            .overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let known = overrides.contains(&(digest.to_owned(), name.to_owned()));
        if overrides.len() >= MAX_OVERRIDES && !known {
            return Err(ServiceError::TooManyOverrides { max: MAX_OVERRIDES });
        }
        Ok(())
    }

    /// Screens one party, from the cache when it can.
    fn decide(
        &self,
        screener: &Screener,
        party: &StoredParty,
    ) -> Result<(bool, Arc<Vec<u8>>), ServiceError> {
        let digest = screener.list().digest().to_owned();
        let key = (digest, serde_json::to_string(party).unwrap_or_default());
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = cache.get(&key) {
            return Ok(found.clone());
        }
        let decision = screener.screen(&party.to_party()).map_err(|_| {
            ServiceError::Input(InputError::Invalid {
                field: "tenant_party",
                reason: "the party's name cannot be screened",
            })
        })?;
        let json = Arc::new(serde_json::to_vec(&decision).unwrap_or_default());
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(key, (decision.hit, Arc::clone(&json)));
        Ok((decision.hit, json))
    }
}

/// The parties an issue request names, checked.
fn parties_of(req: &IssueLicenseRequest) -> Result<Vec<StoredParty>, ServiceError> {
    let mut out = Vec::new();
    for (role, field, p) in [
        ("tenant", "tenant_party", req.tenant_party.as_ref()),
        ("end_user", "end_user", req.end_user.as_ref()),
    ] {
        if let Some(p) = request::party(p, field)? {
            out.push(StoredParty {
                role: role.into(),
                name: p.name,
                address: p.address,
                country: p.country,
            });
        }
    }
    Ok(out)
}

impl IssuerService {
    /// Screens the parties of an issue request. A hit not cleared by a
    /// reviewer is logged and refuses the issuance.
    pub(super) async fn screen_issue(
        &self,
        req: &IssueLicenseRequest,
        chip_id: ChipId,
        now: i64,
    ) -> Result<Screened, ServiceError> {
        let parties = parties_of(req)?;
        let stored = serde_json::to_string(&parties).unwrap_or_default();
        let Some(screener) = self.screening.screener() else {
            return Ok(Screened {
                parties: if parties.is_empty() {
                    String::new()
                } else {
                    stored
                },
                decisions: Vec::new(),
                note: "not screened: no restricted-party list loaded".into(),
            });
        };
        if !parties.iter().any(|p| p.role == "tenant") {
            return Err(ServiceError::Input(InputError::Missing {
                field: "tenant_party",
            }));
        }
        let list = screener.list();
        let mut out = Screened {
            parties: stored,
            decisions: Vec::new(),
            note: format!("screened against {} of {}", list.label(), list.date()),
        };
        for party in &parties {
            let (hit, json) = self.screening.decide(&screener, party)?;
            if hit && !self.screening.overridden(list.digest(), &party.name) {
                let e = self
                    .screening_hit(&screener, party, &json, req, chip_id, now)
                    .await;
                return Err(e);
            }
            if hit {
                out.note
                    .push_str(&format!("; {} cleared by reviewer override", party.role));
            }
            out.decisions
                .push((format!("screening_{}", party.role), json));
        }
        Ok(out)
    }

    /// Logs a hit (the decision and the refusal) and builds the error.
    async fn screening_hit(
        &self,
        screener: &Screener,
        party: &StoredParty,
        decision: &[u8],
        req: &IssueLicenseRequest,
        chip_id: ChipId,
        now: i64,
    ) -> ServiceError {
        let list = screener.list();
        let best = serde_json::from_slice::<serde_json::Value>(decision)
            .ok()
            .and_then(|d| d["candidates"].get(0).cloned());
        let candidate = best
            .as_ref()
            .and_then(|c| c["listed_name"].as_str())
            .unwrap_or("?")
            .to_owned();
        let score = best
            .as_ref()
            .and_then(|c| c["score"].as_f64())
            .unwrap_or(0.0);
        let err = ServiceError::Screened {
            party: format!("{} {:?}", party.role, party.name),
            list: format!("{} of {}", list.label(), list.date()),
            candidate,
            score,
        };
        let mut entry = AuditEntry::new(now, EntryKind::Screened);
        entry.chip_id = Some(chip_id);
        entry.tenant = req.tenant.chars().take(64).collect();
        entry.digests.insert("screening".into(), sha256(decision));
        if let Ok(list_digest) = hex::decode(list.digest())
            && let Ok(d) = <[u8; 32]>::try_from(list_digest.as_slice())
        {
            entry.digests.insert("list".into(), d);
        }
        entry.detail = format!("hit: {err}");
        let screened = AuditRecord::new(entry).with_artefact(decision.to_vec());
        let mut refused = AuditEntry::new(now, EntryKind::Refused);
        refused.chip_id = Some(chip_id);
        refused.tenant = req.tenant.chars().take(64).collect();
        refused.detail = format!("issuance refused: {err}");
        let records = vec![screened, AuditRecord::new(refused)];
        if let Err(e) = self.ledger(move |l| l.append_audit(&records)).await {
            tracing::error!(error = %e, "screening hit not logged");
        }
        warn!(error = %err, "issuance refused by screening");
        err
    }

    /// Loads a list from bytes (a request or the configuration), logs it,
    /// and screens every active license's parties against it.
    pub async fn load_list(
        &self,
        label: &str,
        date: &str,
        format: &str,
        content: &[u8],
    ) -> Result<LoadScreeningListResponse, ServiceError> {
        let format = match format {
            "json" => ListFormat::Json,
            "csv" => ListFormat::Csv,
            _ => {
                return Err(ServiceError::Input(InputError::Invalid {
                    field: "format",
                    reason: "must be json or csv",
                }));
            }
        };
        let list = ScreeningList::parse(format, label, date, content).map_err(|e| {
            warn!(error = %e, "screening list refused");
            ServiceError::Input(InputError::Invalid {
                field: "content",
                reason: "not a restricted-party list in the stated format",
            })
        })?;
        let (digest, entries) = (list.digest().to_owned(), list.entries().len());
        let screener = Arc::new(Screener::new(list));
        *self
            .screening
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(Arc::clone(&screener));

        let now = self.clock.now();
        let mut entry = AuditEntry::new(now, EntryKind::ListLoaded);
        if let Ok(d) = hex::decode(&digest)
            && let Ok(d) = <[u8; 32]>::try_from(d.as_slice())
        {
            entry.digests.insert("list".into(), d);
        }
        entry.detail = format!("{label} of {date}: {entries} entries");
        let mut records = vec![AuditRecord::new(entry)];
        let flagged = self.rescreen(&screener, now, &mut records).await?;
        self.ledger(move |l| l.append_audit(&records)).await?;
        info!(%digest, entries, flagged = flagged.len(), "screening list loaded");
        Ok(LoadScreeningListResponse {
            digest,
            entries: u32::try_from(entries).unwrap_or(u32::MAX),
            flagged_token_ids: flagged,
        })
    }

    /// Active licenses whose parties now hit; a `rescreened` record each.
    async fn rescreen(
        &self,
        screener: &Screener,
        now: i64,
        records: &mut Vec<AuditRecord>,
    ) -> Result<Vec<String>, ServiceError> {
        // Limitation: every license is read into memory at once.
        let all = self
            .ledger(|l| l.list_licenses(&LicenseFilter::default(), usize::MAX))
            .await?;
        let mut flagged = Vec::new();
        for license in all
            .iter()
            .filter(|l| l.state == LicenseState::Active && l.expires_at > now)
        {
            let parties: Vec<StoredParty> =
                serde_json::from_str(&license.parties).unwrap_or_default();
            for party in &parties {
                let Ok((true, json)) = self.screening.decide(screener, party) else {
                    continue;
                };
                let mut record = license_record(EntryKind::Rescreened, license, now, "");
                record.artefacts = vec![json.to_vec()];
                record
                    .entry
                    .digests
                    .insert("screening".into(), sha256(&json));
                record.entry.detail =
                    format!("{} {:?} now matches the list", party.role, party.name);
                records.push(record);
                flagged.push(license.token_id.to_hex());
                break;
            }
        }
        Ok(flagged)
    }

    async fn override_hit(&self, req: OverrideScreeningRequest) -> Result<u64, ServiceError> {
        let reviewer = request::reason(&req.reviewer)?;
        let reason = request::reason(&req.reason)?;
        if reviewer.is_empty() || reason.is_empty() || req.name.is_empty() {
            return Err(ServiceError::Input(InputError::Missing {
                field: "name, reviewer and reason",
            }));
        }
        request::party_name(&req.name, "name")?;
        let current = self
            .screening
            .screener()
            .map(|s| s.list().digest().to_owned());
        if current.as_deref() != Some(req.list_digest.as_str()) {
            return Err(ServiceError::Input(InputError::Invalid {
                field: "list_digest",
                reason: "is not the digest of the list in force",
            }));
        }
        self.screening
            .room_for_override(&req.list_digest, &req.name)?;
        let mut entry = AuditEntry::new(self.clock.now(), EntryKind::ScreeningOverridden);
        entry.actor = reviewer.chars().take(64).collect();
        entry.detail = format!("{:?} cleared: {reason}", req.name);
        let records = vec![AuditRecord::new(entry)];
        let index = self.ledger(move |l| l.append_audit(&records)).await?;
        self.screening
            .overrides
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((req.list_digest, req.name));
        Ok(index)
    }

    async fn place(&self, req: PlaceLegalHoldRequest) -> Result<i64, ServiceError> {
        let reason = request::reason(&req.reason)?;
        let chip_id = match req.chip_id.as_str() {
            "" => None,
            text => Some(request::chip_id(text, "chip_id")?),
        };
        let tenant = match req.tenant.as_str() {
            "" => None,
            text => Some(request::tenant(text)?),
        };
        let now = self.clock.now();
        let hold = LegalHold {
            id: 0,
            chip_id,
            tenant: tenant.clone(),
            reason: reason.clone(),
            placed_at: now,
        };
        let mut entry = AuditEntry::new(now, EntryKind::HoldPlaced);
        entry.chip_id = chip_id;
        entry.tenant = tenant.unwrap_or_default().chars().take(64).collect();
        entry.detail = reason;
        let record = AuditRecord::new(entry);
        self.ledger(move |l| l.place_hold(&hold, &record)).await
    }

    async fn lift(&self, req: LiftLegalHoldRequest) -> Result<(), ServiceError> {
        let reason = request::reason(&req.reason)?;
        let now = self.clock.now();
        let mut entry = AuditEntry::new(now, EntryKind::HoldLifted);
        entry.detail = format!("hold {}: {reason}", req.hold_id);
        let record = AuditRecord::new(entry);
        self.ledger(move |l| l.lift_hold(req.hold_id, now, &record))
            .await
    }

    async fn purge(&self, req: PurgeLicenseRequest) -> Result<usize, ServiceError> {
        let token_id: TokenId = request::token_id(&req.token_id, "token_id")?;
        let now = self.clock.now();
        let license = self.ledger(move |l| l.license(&token_id)).await?;
        let license = license.ok_or(ServiceError::LicenseNotFound { token_id })?;
        let mut record = license_record(EntryKind::Purged, &license, now, "");
        record.artefacts.clear();
        record.entry.detail = "lineage deleted after its retention period".into();
        self.ledger(move |l| l.purge_lineage(&token_id, now, RETENTION_SECS, &record))
            .await
    }
}

#[tonic::async_trait]
impl Compliance for IssuerService {
    #[instrument(skip_all, fields(rpc = "LoadScreeningList", request_id = %request_id(&request)))]
    async fn load_screening_list(
        &self,
        request: Request<LoadScreeningListRequest>,
    ) -> Result<Response<LoadScreeningListResponse>, Status> {
        admit(&request, "LoadScreeningList", &[Role::VendorAdmin]).map_err(reject)?;
        let r = request.into_inner();
        let loaded = self
            .load_list(&r.name, &r.date, &r.format, &r.content)
            .await
            .map_err(reject)?;
        Ok(Response::new(loaded))
    }

    #[instrument(skip_all, fields(rpc = "OverrideScreening", request_id = %request_id(&request)))]
    async fn override_screening(
        &self,
        request: Request<OverrideScreeningRequest>,
    ) -> Result<Response<OverrideScreeningResponse>, Status> {
        admit(&request, "OverrideScreening", &[Role::Reviewer]).map_err(reject)?;
        let log_index = self
            .override_hit(request.into_inner())
            .await
            .map_err(reject)?;
        Ok(Response::new(OverrideScreeningResponse { log_index }))
    }

    #[instrument(skip_all, fields(rpc = "PlaceLegalHold", request_id = %request_id(&request)))]
    async fn place_legal_hold(
        &self,
        request: Request<PlaceLegalHoldRequest>,
    ) -> Result<Response<PlaceLegalHoldResponse>, Status> {
        admit(&request, "PlaceLegalHold", &[Role::Reviewer]).map_err(reject)?;
        let hold_id = self.place(request.into_inner()).await.map_err(reject)?;
        Ok(Response::new(PlaceLegalHoldResponse { hold_id }))
    }

    #[instrument(skip_all, fields(rpc = "LiftLegalHold", request_id = %request_id(&request)))]
    async fn lift_legal_hold(
        &self,
        request: Request<LiftLegalHoldRequest>,
    ) -> Result<Response<LiftLegalHoldResponse>, Status> {
        admit(&request, "LiftLegalHold", &[Role::Reviewer]).map_err(reject)?;
        self.lift(request.into_inner()).await.map_err(reject)?;
        Ok(Response::new(LiftLegalHoldResponse {}))
    }

    #[instrument(skip_all, fields(rpc = "PurgeLicense", request_id = %request_id(&request)))]
    async fn purge_license(
        &self,
        request: Request<PurgeLicenseRequest>,
    ) -> Result<Response<PurgeLicenseResponse>, Status> {
        admit(&request, "PurgeLicense", &[Role::VendorAdmin]).map_err(reject)?;
        let n = self.purge(request.into_inner()).await.map_err(reject)?;
        Ok(Response::new(PurgeLicenseResponse {
            licenses_deleted: u32::try_from(n).unwrap_or(u32::MAX),
        }))
    }
}

/// Refuses a Compliance call from any role but the vendor administrator and
/// the reviewer before its message is read: screening lists may be large,
/// and nobody else may make these calls. Each call checks its own role too.
pub fn compliance_gate(request: Request<()>) -> Result<Request<()>, Status> {
    let caller = Caller::of(&request).map_err(|e| reject(e.into()))?;
    caller
        .require("Compliance", &[Role::VendorAdmin, Role::Reviewer])
        .map_err(|e| reject(e.into()))?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_new_overrides_once_the_most_are_kept() {
        let screening = Screening::default();
        {
            let mut overrides = screening.overrides.lock().unwrap();
            for n in 0..MAX_OVERRIDES - 1 {
                overrides.insert(("list".into(), format!("party {n}")));
            }
        }
        assert!(screening.room_for_override("list", "new").is_ok());
        screening
            .overrides
            .lock()
            .unwrap()
            .insert(("list".into(), "new".into()));

        let full = screening.room_for_override("list", "another").unwrap_err();
        assert!(
            matches!(full, ServiceError::TooManyOverrides { max: 10_000 }),
            "{full:?}"
        );
        // One already kept may be entered again.
        assert!(screening.room_for_override("list", "party 7").is_ok());
    }
}
