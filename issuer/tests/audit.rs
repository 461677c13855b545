//! The audit log and the compliance policy over real gRPC on loopback: the
//! issuer logs what it does, serves tree heads, proofs and bundles, and an
//! auditor checks them with nothing but the issuer's public key.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::sync::Arc;

use chipward_certs::keys::{P384Key, spki_sha256};
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_issuer::compliance::CompliancePolicy;
use chipward_issuer::ledger::SqliteLedger;
use chipward_issuer::{Clock, IssuerService, IssuerSettings, ManualClock, SystemClock, serve};
use chipward_proto::audit::{
    self, AuditEntry, AuditError, AuditExport, EntryKind, tree_head, verify_consistency,
    verify_inclusion,
};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::compliance_client::ComplianceClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    ConsistencyProofRequest, EnrolChipRequest, ExportBundleRequest, GetEntriesRequest,
    GetTreeHeadRequest, InclusionProofRequest, IssueLicenseRequest, License, LiftLegalHoldRequest,
    LoadScreeningListRequest, LoadScreeningListResponse, OverrideScreeningRequest, Party,
    PlaceLegalHoldRequest, PurgeLicenseRequest, RecordResultRequest, RenewLicenseRequest, Site,
};
use chipward_proto::result::{AttestationResult, ClaimResult, Status as Verdict};
use chipward_proto::tls::{TlsFiles, connect_as};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;

const POLICY: &str = include_str!("../compliance.example.toml");

struct Rig {
    _dir: tempfile::TempDir,
    pki: DevPki,
    clock: Arc<ManualClock>,
    /// The vendor administrator.
    issuer: IssuerClient<Channel>,
    /// The operator of the tenants used here: renews.
    operator: IssuerClient<Channel>,
    log: AuditLogClient<Channel>,
    /// The log as the operator: records results.
    operator_log: AuditLogClient<Channel>,
    compliance: ComplianceClient<Channel>,
    /// The screening reviewer: overrides and legal holds.
    reviewer: ComplianceClient<Channel>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let policy = CompliancePolicy::from_toml(POLICY).unwrap();
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        ledger,
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .unwrap()
    .with_compliance(policy, [7; 32]);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let tls = dir.path().join("tls");
    create_local_deployment(
        &tls,
        &["acme-ai", "anon", "borealis", "zephyr", "quill-compute"],
    )
    .unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    tokio::spawn(serve(service, listener, server_tls, std::future::pending()));
    let (admin, operator, reviewer) = (
        connect_as(&tls, "admin", &url).await.unwrap(),
        connect_as(&tls, "operator", &url).await.unwrap(),
        connect_as(&tls, "reviewer", &url).await.unwrap(),
    );
    Rig {
        _dir: dir,
        pki,
        clock,
        issuer: IssuerClient::new(admin.clone()),
        operator: IssuerClient::new(operator.clone()),
        log: AuditLogClient::new(admin.clone()),
        operator_log: AuditLogClient::new(operator),
        compliance: ComplianceClient::new(admin),
        reviewer: ComplianceClient::new(reviewer),
    }
}

impl Rig {
    fn keys(&self) -> TrustedKeys {
        let key = &self.pki.issuer_token_key;
        TrustedKeys::new().with(key.key_id(), key.public_key())
    }

    /// Enrols a new chip; returns its id.
    async fn chip(&mut self, serial: u64) -> String {
        let key = P384Key::generate().unwrap();
        let spki = key.public_key_spki_der();
        let cert = self
            .pki
            .chip_ca
            .issue_device_identity(&spki, "CW-100", serial)
            .unwrap();
        let chain = vec![cert, self.pki.chip_ca.cert_der.clone()];
        self.issuer
            .enrol_chip(EnrolChipRequest { cert_chain: chain })
            .await
            .unwrap();
        hex::encode(spki_sha256(&spki))
    }

    async fn issue(
        &mut self,
        chip_id: &str,
        site: &str,
        eccn: &str,
        lifetime: i64,
    ) -> Result<License, tonic::Status> {
        let (latitude, longitude) = match site {
            "sin-1" => (1.35, 103.82),
            _ => (50.11, 8.68),
        };
        let request = IssueLicenseRequest {
            chip_id: chip_id.into(),
            tenant: "acme-ai".into(),
            site: Some(Site {
                id: site.into(),
                latitude,
                longitude,
                radius_km: 50.0,
            }),
            lifetime_seconds: lifetime,
            eccn: eccn.into(),
            ..IssueLicenseRequest::default()
        };
        Ok(self
            .issuer
            .issue_license(request)
            .await?
            .into_inner()
            .license
            .unwrap())
    }

    async fn head(&mut self) -> (Vec<u8>, u64) {
        let h = self
            .log
            .get_tree_head(GetTreeHeadRequest {})
            .await
            .unwrap()
            .into_inner();
        (h.signed_tree_head, h.tree_size)
    }

    async fn entries(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let request = GetEntriesRequest {
                start: out.len() as u64,
                limit: 3,
            };
            let page = self
                .log
                .get_entries(request)
                .await
                .unwrap()
                .into_inner()
                .entries;
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    fn signed_result(&self, l: &License, location: Option<Verdict>) -> Vec<u8> {
        let mut names = vec!["license.signature", "evidence.signature", "tenant", "site"];
        if location.is_some() {
            names.push("location");
        }
        let claims = names
            .into_iter()
            .map(|name| ClaimResult {
                claim: name.into(),
                status: if name == "location" {
                    location.unwrap_or(Verdict::Pass)
                } else {
                    Verdict::Pass
                },
                code: "ok".into(),
                reason: String::new(),
            })
            .collect::<Vec<_>>();
        let result = AttestationResult {
            appraised_at: self.clock.now(),
            chip_id: l.chip_id.clone(),
            model: "CW-100 Provisioner CA".into(),
            tenant: l.tenant.clone(),
            site_id: l.site.as_ref().unwrap().id.clone(),
            token_id: l.token_id.clone(),
            evidence_sha256: "cd".repeat(32),
            measurements: vec![],
            verdict: AttestationResult::verdict_of(&claims),
            claims,
            location: None,
        };
        let key = &self.pki.verifier_result_key;
        result.sign(&key.key_id(), |m| key.sign(m))
    }
}

fn kinds(entries: &[Vec<u8>]) -> Vec<EntryKind> {
    entries
        .iter()
        .map(|e| AuditEntry::decode(e).unwrap().kind)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_shapes_issuance_and_every_decision_is_logged() {
    let mut r = rig().await;
    let chip = r.chip(1).await;

    // No ECCN asked: the model's is given; the allied tier's interval.
    let l = r.issue(&chip, "fra-1", "", 0).await.unwrap();
    assert_eq!(l.eccn, "3A090.a");
    assert_eq!(l.expires_at - l.not_before, 86_400);
    // A controlled site: six hours at most.
    let l2 = r.issue(&chip, "sin-1", "3A090.a", 0).await.unwrap();
    assert_eq!(l2.expires_at - l2.not_before, 21_600);

    // Refusals: another classification, a site not in the policy, a
    // lifetime beyond the interval.
    let err = r.issue(&chip, "fra-1", "4A090.a", 0).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("classified 3A090.a"), "{err:?}");
    let err = r.issue(&chip, "mos-1", "", 0).await.unwrap_err();
    assert!(err.message().contains("not a destination"), "{err:?}");
    let err = r.issue(&chip, "sin-1", "", 21_601).await.unwrap_err();
    assert!(err.message().contains("at most 21600 s"), "{err:?}");

    let entries = r.entries().await;
    assert_eq!(
        kinds(&entries),
        [
            EntryKind::ChipEnrolled,
            EntryKind::Issued,
            EntryKind::Issued,
            EntryKind::Refused,
            EntryKind::Refused,
            EntryKind::Refused,
        ]
    );
    let issued = AuditEntry::decode(&entries[1]).unwrap();
    assert_eq!(issued.token_id.unwrap().to_hex(), l.token_id);
    assert_eq!(issued.digests["license"], sha(&l.token));
    assert_eq!(issued.digests["policy"], [7; 32]);
    let refused = AuditEntry::decode(&entries[4]).unwrap();
    assert!(refused.detail.contains("mos-1"), "{refused:?}");
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    chipward_certs::keys::sha256(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_measured_tier_renews_only_on_a_passing_location_claim() {
    let mut r = rig().await;
    let chip = r.chip(1).await;
    let l = r.issue(&chip, "sin-1", "", 0).await.unwrap();
    r.clock.advance(60);

    let renew = |token: &str, result: Vec<u8>| RenewLicenseRequest {
        token_id: token.into(),
        attestation_result: result,
        lifetime_seconds: 0,
    };
    let without = r.signed_result(&l, None);
    let err = r
        .operator
        .renew_license(renew(&l.token_id, without))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(
        err.message().contains("needs a location measured"),
        "{err:?}"
    );

    let with = r.signed_result(&l, Some(Verdict::Pass));
    let renewed = r
        .operator
        .renew_license(renew(&l.token_id, with))
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap();
    assert_eq!(renewed.expires_at - renewed.not_before, 21_600);
    let last = r.entries().await;
    let kinds = kinds(&last);
    assert_eq!(
        kinds[kinds.len() - 2..],
        [EntryKind::Refused, EntryKind::Renewed]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_and_proofs_verify_and_the_exported_log_checks_offline() {
    let mut r = rig().await;
    for serial in 1..=5 {
        let chip = r.chip(serial).await;
        r.issue(&chip, "fra-1", "", 0).await.unwrap();
    }
    let (old_head, old_size) = r.head().await;
    assert_eq!(old_size, 10);
    let chip = r.chip(6).await;
    let l = r.issue(&chip, "dub-1", "", 0).await.unwrap();
    let result = r.signed_result(&l, None);
    let logged = r
        .operator_log
        .record_result(RecordResultRequest {
            attestation_result: result.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .index;
    assert_eq!(logged, 12);
    let (head, size) = r.head().await;
    assert_eq!(size, 13);
    let keys = r.keys();
    let verified = tree_head::verify(&head, &keys).unwrap();
    let old = tree_head::verify(&old_head, &keys).unwrap();

    // Every entry's inclusion proof, and consistency with the older head.
    let entries = r.entries().await;
    assert_eq!(entries.len(), 13);
    for (i, e) in entries.iter().enumerate() {
        let request = InclusionProofRequest {
            index: i as u64,
            tree_size: size,
        };
        let proof = r
            .log
            .get_inclusion_proof(request)
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&proof.entry, e);
        let path: Vec<[u8; 32]> = proof
            .path
            .iter()
            .map(|h| h.as_slice().try_into().unwrap())
            .collect();
        verify_inclusion(
            &audit::leaf_hash(e),
            i as u64,
            size,
            &path,
            &verified.head().root,
        )
        .unwrap();
    }
    let request = ConsistencyProofRequest {
        old_size,
        new_size: size,
    };
    let path = r
        .log
        .get_consistency_proof(request)
        .await
        .unwrap()
        .into_inner()
        .path;
    let path: Vec<[u8; 32]> = path
        .iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect();
    verify_consistency(
        old_size,
        size,
        &old.head().root,
        &verified.head().root,
        &path,
    )
    .unwrap();

    // Out of range asks are refused.
    let request = InclusionProofRequest {
        index: 13,
        tree_size: 13,
    };
    assert_eq!(
        r.log.get_inclusion_proof(request).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let request = ConsistencyProofRequest {
        old_size: 5,
        new_size: 14,
    };
    assert_eq!(
        r.log
            .get_consistency_proof(request)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // The whole log, exported and checked against the older head.
    let export = AuditExport::full(head.clone(), entries.clone(), vec![old_head.clone()]).unwrap();
    let json = export.to_json();
    let report = audit::check_json(json.as_bytes(), &keys, Some(&old_head)).unwrap();
    assert_eq!(report.entries.len(), 13);

    // One altered entry, or a forged result, does not pass.
    let mut tampered = entries.clone();
    let last = tampered[12].len() - 1;
    tampered[12][last] ^= 1;
    let export = AuditExport::full(head.clone(), tampered, vec![]).unwrap();
    assert!(audit::check(&export, &keys, None).is_err());
    let mut forged = result.clone();
    let at = forged.len() - 5;
    forged[at] ^= 1;
    let err = r
        .operator_log
        .record_result(RecordResultRequest {
            attestation_result: forged,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(r.head().await.1, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chip_bundle_carries_its_records_and_proofs() {
    let mut r = rig().await;
    let first = r.chip(1).await;
    let other = r.chip(2).await;
    let l = r.issue(&first, "fra-1", "", 0).await.unwrap();
    r.issue(&other, "fra-1", "", 0).await.unwrap();
    let result = r.signed_result(&l, None);
    r.operator_log
        .record_result(RecordResultRequest {
            attestation_result: result.clone(),
        })
        .await
        .unwrap();
    let (trusted, trusted_size) = r.head().await;
    r.issue(&first, "dub-1", "", 0).await.unwrap();

    let now = r.clock.now();
    let request = ExportBundleRequest {
        chip_id: first.clone(),
        from: now - 10,
        to: now + 10,
        trusted_size,
        ..ExportBundleRequest::default()
    };
    let bundle = r.log.export_bundle(request).await.unwrap().into_inner();
    // Enrolment, two issues and the result of the first chip; not the other.
    assert_eq!(bundle.entries, 4);
    let keys = r.keys();
    let report = audit::check_json(&bundle.export_json, &keys, Some(&trusted)).unwrap();
    let export = AuditExport::from_json(&bundle.export_json).unwrap();
    let carried: Vec<&Vec<u8>> = export.artifacts.iter().map(|a| &a.data.0).collect();
    let chips: Vec<String> = report
        .entries
        .iter()
        .map(|(_, e)| e.chip_id.unwrap().to_hex())
        .collect();
    assert!(chips.iter().all(|c| *c == first), "{chips:?}");
    assert!(carried.contains(&&l.token));
    assert!(carried.contains(&&result));
    assert_eq!(report.artifacts.len(), carried.len());

    // A bundle whose artefact was swapped fails the offline check.
    let mut export = AuditExport::from_json(&bundle.export_json).unwrap();
    export.add_artifact("license", b"not a license anyone logged".to_vec());
    let err = audit::check(&export, &keys, Some(&trusted)).unwrap_err();
    assert!(
        matches!(err, AuditError::ArtifactNotReferenced { .. }),
        "{err:?}"
    );

    // Neither or both of chip and site: refused.
    let request = ExportBundleRequest {
        from: now - 10,
        to: now + 10,
        ..ExportBundleRequest::default()
    };
    assert_eq!(
        r.log.export_bundle(request).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}

const LIST: &[u8] = include_bytes!("data/screening/list.json");

fn party(name: &str, country: &str) -> Option<Party> {
    Some(Party {
        name: name.into(),
        address: String::new(),
        country: country.into(),
    })
}

impl Rig {
    async fn issue_for(
        &mut self,
        chip_id: &str,
        tenant: &str,
        legal: &str,
    ) -> Result<License, tonic::Status> {
        let request = IssueLicenseRequest {
            chip_id: chip_id.into(),
            tenant: tenant.into(),
            site: Some(Site {
                id: "fra-1".into(),
                latitude: 50.11,
                longitude: 8.68,
                radius_km: 50.0,
            }),
            tenant_party: party(legal, "DE"),
            end_user: party("Quiet Meadow Analytics", "DE"),
            ..IssueLicenseRequest::default()
        };
        Ok(self
            .issuer
            .issue_license(request)
            .await?
            .into_inner()
            .license
            .unwrap())
    }

    async fn load(&mut self, content: &[u8], date: &str) -> LoadScreeningListResponse {
        let request = LoadScreeningListRequest {
            name: "Test CSL".into(),
            date: date.into(),
            format: "json".into(),
            content: content.to_vec(),
        };
        self.compliance
            .load_screening_list(request)
            .await
            .unwrap()
            .into_inner()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listed_party_is_refused_logged_and_can_be_cleared_by_a_reviewer() {
    let mut r = rig().await;
    let chip = r.chip(1).await;
    // Before any list: not screened, but the parties are kept.
    r.issue_for(&chip, "quill-compute", "Evander Quill Tarnowski")
        .await
        .unwrap();

    let loaded = r.load(LIST, "2026-12-01").await;
    assert_eq!(loaded.entries, 7);
    // The earlier license's tenant is listed (word order differs): flagged.
    assert_eq!(loaded.flagged_token_ids.len(), 1);
    assert_eq!(loaded.digest, hex::encode(sha(LIST)));

    // Listed, in another spelling and legal form: refused.
    let err = r
        .issue_for(&chip, "zephyr", "The Zephyr Dynamics")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert!(err.message().contains("Zephyr Dynamics GmbH"), "{err:?}");
    // Not listed: issued, with the decision's digest in the entry.
    let cleared = r
        .issue_for(&chip, "borealis", "Borealis Labs Oy")
        .await
        .unwrap();

    // A reviewer clears the listed name for this list; now it is issued.
    let request = OverrideScreeningRequest {
        name: "The Zephyr Dynamics".into(),
        list_digest: loaded.digest.clone(),
        reviewer: "r.ortega".into(),
        reason: "different company, registry extract on file".into(),
    };
    r.reviewer
        .override_screening(request.clone())
        .await
        .unwrap();
    r.issue_for(&chip, "zephyr", "The Zephyr Dynamics")
        .await
        .unwrap();
    // An override for another list version is refused.
    let stale = OverrideScreeningRequest {
        list_digest: "00".repeat(32),
        ..request
    };
    assert_eq!(
        r.reviewer
            .override_screening(stale)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    let entries: Vec<AuditEntry> = r
        .entries()
        .await
        .iter()
        .map(|e| AuditEntry::decode(e).unwrap())
        .collect();
    let kinds: Vec<EntryKind> = entries.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds[1..],
        [
            EntryKind::Issued,
            EntryKind::ListLoaded,
            EntryKind::Rescreened,
            EntryKind::Screened,
            EntryKind::Refused,
            EntryKind::Issued,
            EntryKind::ScreeningOverridden,
            EntryKind::Issued,
        ]
    );
    assert_eq!(hex::encode(entries[2].digests["list"]), loaded.digest);
    assert!(
        entries[4].detail.contains("Zephyr Dynamics GmbH"),
        "{:?}",
        entries[4]
    );
    let issued = entries.iter().rev().nth(2).unwrap();
    assert_eq!(issued.token_id.unwrap().to_hex(), cleared.token_id);
    assert!(issued.digests.contains_key("screening_tenant"));
    assert!(issued.digests.contains_key("screening_end_user"));
    assert_eq!(entries.last().unwrap().kind, EntryKind::Issued);
    assert!(
        entries.last().unwrap().detail.contains("override"),
        "{:?}",
        entries.last()
    );

    // Without a tenant party while a list is loaded: refused as bad input.
    let request = IssueLicenseRequest {
        chip_id: chip.clone(),
        tenant: "anon".into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.11,
            longitude: 8.68,
            radius_km: 50.0,
        }),
        ..IssueLicenseRequest::default()
    };
    assert_eq!(
        r.issuer.issue_license(request).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    // A list that is not a list: refused, the one in force stays.
    let request = LoadScreeningListRequest {
        name: "Broken".into(),
        date: "2026-12-02".into(),
        format: "json".into(),
        content: b"{\"results\": [{\"name\": 7}]}".to_vec(),
    };
    assert_eq!(
        r.compliance
            .load_screening_list(request)
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    assert!(
        r.issue_for(&chip, "zephyr2", "Zephyr Dynamics")
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stay_through_retention_and_holds() {
    let mut r = rig().await;
    let chip = r.chip(1).await;
    let l = r.issue(&chip, "fra-1", "", 0).await.unwrap();
    let purge = PurgeLicenseRequest {
        token_id: l.token_id.clone(),
    };
    let err = r.compliance.purge_license(purge.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("must be kept until"), "{err:?}");

    // Five years and a little after it ended, but under a hold: refused.
    r.clock.advance(86_400 + 5 * 365 * 86_400 + 3 * 86_400);
    let hold = PlaceLegalHoldRequest {
        chip_id: chip.clone(),
        tenant: String::new(),
        reason: "litigation 2031-17".into(),
    };
    let id = r
        .reviewer
        .place_legal_hold(hold)
        .await
        .unwrap()
        .into_inner()
        .hold_id;
    let err = r.compliance.purge_license(purge.clone()).await.unwrap_err();
    assert!(err.message().contains("litigation 2031-17"), "{err:?}");
    let lift = LiftLegalHoldRequest {
        hold_id: id,
        reason: "case closed".into(),
    };
    r.reviewer.lift_legal_hold(lift.clone()).await.unwrap();
    assert_eq!(
        r.reviewer.lift_legal_hold(lift).await.unwrap_err().code(),
        Code::NotFound
    );
    let done = r
        .compliance
        .purge_license(purge)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.licenses_deleted, 1);
    let kinds = kinds(&r.entries().await);
    assert_eq!(
        kinds[kinds.len() - 3..],
        [
            EntryKind::HoldPlaced,
            EntryKind::HoldLifted,
            EntryKind::Purged
        ]
    );
}

/// The issuer's `chipward-code` of a refusal.
fn stable_code(status: &tonic::Status) -> &str {
    status
        .metadata()
        .get("chipward-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_is_recorded_once_and_only_while_recent() {
    let mut r = rig().await;
    let chip = r.chip(1).await;
    let l = r.issue(&chip, "fra-1", "", 0).await.unwrap();
    let result = r.signed_result(&l, None);
    let record = |bytes: Vec<u8>| RecordResultRequest {
        attestation_result: bytes,
    };
    r.operator_log
        .record_result(record(result.clone()))
        .await
        .unwrap();
    let (_, size) = r.head().await;

    // The same signed result again: refused, nothing logged.
    let again = r
        .operator_log
        .record_result(record(result.clone()))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists, "{again:?}");
    assert_eq!(stable_code(&again), "result_recorded");

    // Re-wrapped: an unprotected header added (nothing in it is signed),
    // so the bytes differ but the signed content does not.
    let mut sign1: coset::CoseSign1 =
        coset::TaggedCborSerializable::from_tagged_slice(&result).unwrap();
    sign1.unprotected.key_id = b"unsigned".to_vec();
    let rewrapped = coset::CborSerializable::to_vec(sign1.clone()).unwrap();
    let tagged = coset::TaggedCborSerializable::to_tagged_vec(sign1).unwrap();
    assert_ne!(tagged, result);
    let err = r
        .operator_log
        .record_result(record(tagged))
        .await
        .unwrap_err();
    assert_eq!(stable_code(&err), "result_recorded", "{err:?}");
    // Untagged envelopes are not results at all.
    let err = r
        .operator_log
        .record_result(record(rewrapped))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(r.head().await.1, size);

    // A result appraised more than an hour ago (the default window) is
    // refused; one 59 minutes old is taken.
    let old = r.signed_result(&l, None);
    r.clock.advance(3601);
    let err = r.operator_log.record_result(record(old)).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert_eq!(stable_code(&err), "result_out_of_window");
    let recent = r.signed_result(&l, None);
    r.clock.advance(3540);
    r.operator_log.record_result(record(recent)).await.unwrap();
    assert_eq!(r.head().await.1, size + 1);
}
