//! The issuer's bounds on what it answers and keeps, over real gRPC on
//! loopback: evidence bundles, the revocation list, reviewer overrides and
//! legal holds. The ledger is filled directly where reaching a bound
//! through the API would take thousands of calls; expected messages and
//! sizes are worked out here.

#![cfg(test)]

use std::sync::Arc;

use chipward_certs::keys::sha256;
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_issuer::ledger::{
    AuditRecord, ChipRecord, Ledger, LicenseRecord, LicenseState, SqliteLedger,
};
use chipward_issuer::service::{MAX_BUNDLE_BYTES, MAX_BUNDLE_ENTRIES};
use chipward_issuer::{Clock, IssuerService, IssuerSettings, ManualClock, SystemClock, serve};
use chipward_proto::audit::{AuditEntry, EntryKind};
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::compliance_client::ComplianceClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    ExportBundleRequest, GetRevocationListRequest, OverrideScreeningRequest, PlaceLegalHoldRequest,
    RevokeLicenseRequest,
};
use chipward_proto::license::SiteClaim;
use chipward_proto::revocation::{MAX_LIST_LEN, RevocationList};
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_proto::{ChipId, TokenId};
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic::{Code, Status};

struct Rig {
    _dir: tempfile::TempDir,
    pki: DevPki,
    ledger: Arc<SqliteLedger>,
    clock: Arc<ManualClock>,
    issuer: IssuerClient<Channel>,
    log: AuditLogClient<Channel>,
    compliance: ComplianceClient<Channel>,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
    let ledger = Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        Arc::clone(&ledger) as Arc<dyn Ledger>,
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let tls = dir.path().join("tls");
    create_local_deployment(&tls, &[]).unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    tokio::spawn(serve(service, listener, server_tls, std::future::pending()));
    let (admin, reviewer) = (
        connect_as(&tls, "admin", &url).await.unwrap(),
        connect_as(&tls, "reviewer", &url).await.unwrap(),
    );
    let log = AuditLogClient::new(admin.clone()).max_decoding_message_size(usize::MAX);
    Rig {
        _dir: dir,
        pki,
        ledger,
        clock,
        issuer: IssuerClient::new(admin),
        log,
        compliance: ComplianceClient::new(reviewer),
    }
}

/// An entry about chip `[7; 32]` at `at`.
fn chip_entry(at: i64) -> AuditEntry {
    let mut entry = AuditEntry::new(at, EntryKind::Appraised);
    entry.chip_id = Some(ChipId([7; 32]));
    entry
}

fn bundle_request(from: i64, to: i64) -> ExportBundleRequest {
    ExportBundleRequest {
        chip_id: hex::encode([7; 32]),
        from,
        to,
        ..ExportBundleRequest::default()
    }
}

fn stable_code(status: &Status) -> &str {
    status
        .metadata()
        .get("chipward-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn a_bundle_matching_more_entries_than_it_may_carry_is_refused() {
    let mut rig = rig().await;
    let at = rig.clock.now();
    let mut records: Vec<AuditRecord> = (0..MAX_BUNDLE_ENTRIES)
        .map(|_| AuditRecord::new(chip_entry(at)))
        .collect();
    records.push(AuditRecord::new(chip_entry(at + 100)));
    rig.ledger.append_audit(&records).unwrap();

    let status = rig
        .log
        .export_bundle(bundle_request(at, at + 101))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), stable_code(&status)),
        (Code::ResourceExhausted, "bundle_too_large")
    );
    assert_eq!(
        status.message(),
        "more than 10000 entries match; ask for a shorter time range"
    );

    // A shorter range is served.
    let bundle = rig
        .log
        .export_bundle(bundle_request(at + 100, at + 101))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bundle.entries, 1);
}

#[tokio::test]
async fn a_bundle_larger_than_an_answer_may_be_is_refused() {
    let mut rig = rig().await;
    let at = rig.clock.now();
    // Ten artefacts of 5 MiB: more raw bytes than fit once base64 grows
    // them by a third.
    let records: Vec<AuditRecord> = (0..10u8)
        .map(|n| {
            let artefact = vec![n; 5 * 1024 * 1024];
            let mut entry = chip_entry(at);
            entry.digests.insert("result".into(), sha256(&artefact));
            AuditRecord::new(entry).with_artefact(artefact)
        })
        .collect();
    rig.ledger.append_audit(&records).unwrap();

    let status = rig
        .log
        .export_bundle(bundle_request(at, at + 1))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), stable_code(&status)),
        (Code::ResourceExhausted, "bundle_too_large")
    );
    assert_eq!(
        status.message(),
        format!(
            "the bundle would be larger than {MAX_BUNDLE_BYTES} bytes; ask for a shorter time range"
        )
    );
    assert_eq!(MAX_BUNDLE_BYTES, 64 * 1024 * 1024 - 4096);
}

/// License `n` of chip `[9; 32]`, renewing license `n - 1`.
fn lineage_member(n: u32, now: i64) -> LicenseRecord {
    let mut id = [0u8; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    let renewed_from = n.checked_sub(1).map(|p| {
        let mut prev = [0u8; 16];
        prev[..4].copy_from_slice(&p.to_be_bytes());
        TokenId(prev)
    });
    LicenseRecord {
        token_id: TokenId(id),
        chip_id: ChipId([9; 32]),
        tenant: "acme-ai".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 50.1,
            longitude: 8.6,
            radius_km: 25.0,
        },
        issued_at: now,
        not_before: now,
        expires_at: now + 86_400,
        state: LicenseState::Active,
        token: vec![0xd2, 0x84],
        renewed_from,
        entitlements: vec![],
        eccn: String::new(),
        term_started_at: now,
        parties: String::new(),
    }
}

#[tokio::test]
async fn a_revocation_list_verifiers_would_refuse_is_not_served() {
    let mut rig = rig().await;
    let now = rig.clock.now();
    let chip = ChipRecord {
        chip_id: ChipId([9; 32]),
        model: "CW-100".into(),
        identity_cert: vec![0x30, 0x00],
        enrolled_at: now,
    };
    let note = || AuditRecord::new(AuditEntry::new(now, EntryKind::Issued));
    rig.ledger.enrol_chip(&chip, &note()).unwrap();
    let lineage: Vec<(LicenseRecord, AuditRecord)> = (0..9_000)
        .map(|n| (lineage_member(n, now), note()))
        .collect();
    for stored in rig.ledger.insert_licenses(&lineage).unwrap() {
        stored.unwrap();
    }

    // One revocation takes the whole lineage onto the list, each entry
    // with a 256-character reason of two-byte characters.
    let reason = "é".repeat(256);
    rig.issuer
        .revoke_license(RevokeLicenseRequest {
            token_id: hex::encode(lineage_member(0, now).token_id.0),
            reason: reason.clone(),
        })
        .await
        .unwrap();

    // The list the issuer would sign now, worked out from the ledger.
    let (seq, entries) = rig.ledger.revocations().unwrap();
    assert_eq!(entries.len(), 9_000);
    let key = &rig.pki.issuer_token_key;
    let list = RevocationList {
        seq,
        issued_at: now,
        entries,
    };
    let expected = list.sign(&key.key_id(), |m| key.sign(m)).len();
    assert!(expected > MAX_LIST_LEN, "{expected}");

    let status = rig
        .issuer
        .get_revocation_list(GetRevocationListRequest {})
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), stable_code(&status)),
        (Code::ResourceExhausted, "revocation_list_too_large")
    );
    assert_eq!(
        status.message(),
        format!("revocation list is {expected} bytes, more than the 4194304 verifiers accept")
    );
}

#[tokio::test]
async fn overrides_and_holds_take_only_names_the_issuer_could_ever_license() {
    let mut rig = rig().await;
    let override_named = |name: String| OverrideScreeningRequest {
        name,
        list_digest: "00".repeat(32),
        reviewer: "reviewer".into(),
        reason: "cleared".into(),
    };

    let long = rig
        .compliance
        .override_screening(override_named("n".repeat(257)))
        .await
        .unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument);
    assert_eq!(
        long.message(),
        "name must be 1 to 256 characters long, got 257"
    );
    // At 256 characters the name passes and the next check speaks.
    let longest = rig
        .compliance
        .override_screening(override_named("n".repeat(256)))
        .await
        .unwrap_err();
    assert_eq!(
        longest.message(),
        "list_digest: is not the digest of the list in force"
    );

    let hold = |tenant: &str| PlaceLegalHoldRequest {
        chip_id: String::new(),
        tenant: tenant.into(),
        reason: "litigation".into(),
    };
    for bad in ["ACME AI", &"a".repeat(65), "acme\u{202e}ai"] {
        let err = rig
            .compliance
            .place_legal_hold(hold(bad))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}");
    }
    rig.compliance
        .place_legal_hold(hold(&"a".repeat(64)))
        .await
        .unwrap();
}
