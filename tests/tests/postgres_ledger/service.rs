//! The ledger as the issuer service uses it: called from `spawn_blocking`
//! inside a multi-thread tokio runtime, and dropped inside async code. Two
//! issuers serve gRPC over one database, as two processes would, and serve
//! one audit log: the same heads, and proofs from either that verify
//! against heads signed by the other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_certs::keys::{P384Key, spki_sha256};
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_issuer::ledger::conformance::{chip, license, note};
use chipward_issuer::ledger::{Ledger, PostgresLedger, PostgresUrl};
use chipward_issuer::{IssuerService, IssuerSettings, SystemClock, serve};
use chipward_proto::audit::{
    self, AuditEntry, EntryKind, MemoryTree, TreeHead, tree_head, verify_consistency,
    verify_inclusion,
};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    ConsistencyProofRequest, EnrolChipRequest, GetEntriesRequest, GetLicenseRequest,
    GetRevocationListRequest, GetTreeHeadRequest, InclusionProofRequest, IssueLicenseRequest,
    LicenseStatus, RevokeLicenseRequest, Site,
};
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_proto::{ChipId, TokenId};
use chipward_tests::postgres;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;

/// Ledger work for the blocking pool.
type Call = Box<dyn FnOnce(&dyn Ledger) + Send>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn works_from_spawn_blocking_and_drops_inside_async_code() {
    let db = postgres::database();
    let url: PostgresUrl = db.url().parse().unwrap();
    let ledger = tokio::task::spawn_blocking(move || PostgresLedger::connect(&url))
        .await
        .unwrap()
        .unwrap();
    let ledger: Arc<dyn Ledger> = Arc::new(ledger);
    let blocking = |call: Call| {
        let ledger = Arc::clone(&ledger);
        tokio::task::spawn_blocking(move || call(ledger.as_ref()))
    };
    blocking(Box::new(|l| {
        assert!(l.enrol_chip(&chip(1), &note()).unwrap())
    }))
    .await
    .unwrap();

    // 32 calls at once, more than the pool has connections.
    let calls: Vec<_> = (0..32u8)
        .map(|n| {
            blocking(Box::new(move |l| {
                l.insert_license(&license(n, 1, "acme", 5), &note())
                    .unwrap();
                l.revoke(&TokenId([n; 16]), "ended", 6, &note()).unwrap();
            }))
        })
        .collect();
    for call in calls {
        call.await.unwrap();
    }
    let seq = {
        let ledger = Arc::clone(&ledger);
        tokio::task::spawn_blocking(move || ledger.revocation_seq())
    };
    assert_eq!(seq.await.unwrap().unwrap(), 32);

    // The last reference goes inside a task: its connections must close
    // without tokio refusing to stop their runtimes there.
    tokio::spawn(async move { drop(ledger) }).await.unwrap();

    // The server notices each goodbye a moment after it was sent.
    let others = "SELECT count(*) FROM pg_stat_activity \
                  WHERE datname = current_database() AND pid <> pg_backend_pid()";
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.query_i64(others) > 0 {
        assert!(
            Instant::now() < deadline,
            "the ledger's connections stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// An issuer serving gRPC on loopback until its stop sender drops.
struct Issuer {
    client: IssuerClient<Channel>,
    log: AuditLogClient<Channel>,
    _stop: oneshot::Sender<()>,
}

impl Issuer {
    /// A tree head over the whole log, its signature checked.
    async fn head(&self, keys: &TrustedKeys) -> TreeHead {
        let response = self
            .log
            .clone()
            .get_tree_head(GetTreeHeadRequest {})
            .await
            .unwrap()
            .into_inner();
        let verified = tree_head::verify(&response.signed_tree_head, keys).unwrap();
        assert_eq!(verified.head().size, response.tree_size);
        verified.head().clone()
    }

    /// Every entry, a few per call.
    async fn entries(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let request = GetEntriesRequest {
                start: out.len() as u64,
                limit: 4,
            };
            let page = self.log.clone().get_entries(request).await.unwrap();
            let page = page.into_inner().entries;
            if page.is_empty() {
                return out;
            }
            out.extend(page);
        }
    }

    /// Checks this issuer's proof that `old` is a prefix of `new`.
    async fn prove_consistent(&self, old: &TreeHead, new: &TreeHead) {
        let request = ConsistencyProofRequest {
            old_size: old.size,
            new_size: new.size,
        };
        let proof = self.log.clone().get_consistency_proof(request).await;
        let path = hashes(&proof.unwrap().into_inner().path);
        verify_consistency(old.size, new.size, &old.root, &new.root, &path).unwrap();
    }

    /// Checks this issuer's proof that `entry` is at `index` under `head`.
    async fn prove_included(&self, entry: &[u8], index: u64, head: &TreeHead) {
        let request = InclusionProofRequest {
            index,
            tree_size: head.size,
        };
        let proof = self.log.clone().get_inclusion_proof(request).await;
        let proof = proof.unwrap().into_inner();
        assert_eq!(proof.entry, entry);
        let path = hashes(&proof.path);
        verify_inclusion(
            &audit::leaf_hash(entry),
            index,
            head.size,
            &path,
            &head.root,
        )
        .unwrap();
    }
}

fn hashes(path: &[Vec<u8>]) -> Vec<audit::Hash> {
    path.iter()
        .map(|h| h.as_slice().try_into().unwrap())
        .collect()
}

async fn issuer(pki: &DevPki, url: &PostgresUrl) -> Issuer {
    let url = url.clone();
    let ledger = tokio::task::spawn_blocking(move || PostgresLedger::connect(&url))
        .await
        .unwrap()
        .unwrap();
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        pki,
        Arc::new(ledger),
        Arc::new(SystemClock),
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    // Both issuers share the PKI, and so its TLS folder.
    let tls = pki.dir().join("tls");
    if !tls.exists() {
        create_local_deployment(&tls, &[]).unwrap();
    }
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    tokio::spawn(serve(service, listener, server_tls, async {
        let _ = stopped.await;
    }));
    let admin = connect_as(&tls, "admin", &format!("https://{addr}"))
        .await
        .unwrap();
    Issuer {
        client: IssuerClient::new(admin.clone()),
        log: AuditLogClient::new(admin),
        _stop: stop,
    }
}

fn issue_request(chip_id: &str, tenant: &str) -> IssueLicenseRequest {
    IssueLicenseRequest {
        chip_id: chip_id.into(),
        tenant: tenant.into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.1109,
            longitude: 8.6821,
            radius_km: 25.0,
        }),
        not_before: 0,
        lifetime_seconds: 0,
        entitlements: vec!["fp8".into()],
        eccn: "3A090.a".into(),
        ..IssueLicenseRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_on_one_database_serve_one_ledger() {
    let db = postgres::database();
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), "CW-100").unwrap();
    let url: PostgresUrl = db.url().parse().unwrap();
    let issuers = [issuer(&pki, &url).await, issuer(&pki, &url).await];

    // A chip enrolled through the first issuer...
    let key = P384Key::generate().unwrap();
    let spki = key.public_key_spki_der();
    let cert = pki
        .chip_ca
        .issue_device_identity(&spki, "CW-100", 7)
        .unwrap();
    let chain = vec![cert, pki.chip_ca.cert_der.clone()];
    let chip_id = ChipId(spki_sha256(&spki)).to_hex();
    let mut first = issuers[0].client.clone();
    first
        .enrol_chip(EnrolChipRequest { cert_chain: chain })
        .await
        .unwrap();
    let keys = TrustedKeys::new().with(
        pki.issuer_token_key.key_id(),
        pki.issuer_token_key.public_key(),
    );
    let enrolled = issuers[0].head(&keys).await;
    assert_eq!(enrolled.size, 1);

    // ... is licensed through both at once, ...
    let issued: Vec<_> = (0..12)
        .map(|n| {
            let mut client = issuers[n % 2].client.clone();
            let req = issue_request(&chip_id, &format!("tenant-{n}"));
            tokio::spawn(async move { client.issue_license(req).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for call in issued {
        let license = call.await.unwrap().unwrap().into_inner().license.unwrap();
        tokens.push(license.token_id);
    }

    let licensed = issuers[1].head(&keys).await;
    assert_eq!(licensed.size, 13);

    // ... and half its licenses are revoked through the other issuer.
    let revoked: Vec<_> = tokens
        .iter()
        .step_by(2)
        .map(|token_id| {
            let mut client = issuers[1].client.clone();
            let req = RevokeLicenseRequest {
                token_id: token_id.clone(),
                reason: "contract ended".into(),
            };
            tokio::spawn(async move { client.revoke_license(req).await })
        })
        .collect();
    let mut seqs = Vec::new();
    for call in revoked {
        seqs.push(call.await.unwrap().unwrap().into_inner().revocation_seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);

    // Both issuers see the same ledger.
    for issuer in &issuers {
        let mut client = issuer.client.clone();
        let list = client
            .get_revocation_list(GetRevocationListRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(list.seq, 6);
        for (n, token_id) in tokens.iter().enumerate() {
            let req = GetLicenseRequest {
                token_id: token_id.clone(),
            };
            let license = client.get_license(req).await.unwrap().into_inner();
            let status = license.license.unwrap().status;
            let expected = match n % 2 {
                0 => LicenseStatus::Revoked,
                _ => LicenseStatus::Active,
            };
            assert_eq!(status, i32::from(expected), "license {n}");
        }
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM licenses"), 12);

    // One audit log: the same entries and head through either issuer, ...
    let entries = issuers[0].entries().await;
    assert_eq!(issuers[1].entries().await, entries);
    let mut kinds: Vec<EntryKind> = entries
        .iter()
        .map(|e| AuditEntry::decode(e).unwrap().kind)
        .collect();
    kinds.sort_by_key(|k| k.code());
    let expected = [
        (EntryKind::ChipEnrolled, 1),
        (EntryKind::Issued, 12),
        (EntryKind::Revoked, 6),
    ]
    .into_iter()
    .flat_map(|(kind, n)| std::iter::repeat_n(kind, n))
    .collect::<Vec<_>>();
    assert_eq!(kinds, expected);
    let heads = [issuers[0].head(&keys).await, issuers[1].head(&keys).await];
    assert_eq!((heads[0].size, heads[1].size), (19, 19));
    assert_eq!(heads[0].root, heads[1].root);
    let mut memory = MemoryTree::new();
    for e in &entries {
        memory.push(e);
    }
    assert_eq!(heads[0].root, memory.root());
    assert_eq!(db.query_i64("SELECT count(*) FROM tree_heads"), 3);

    // ... whose heads each issuer proves consistent with the other's ...
    issuers[1].prove_consistent(&enrolled, &heads[0]).await;
    issuers[0].prove_consistent(&licensed, &heads[1]).await;
    issuers[0].prove_consistent(&enrolled, &licensed).await;

    // ... and whose every entry either issuer proves included.
    for (index, entry) in entries.iter().enumerate() {
        let issuer = &issuers[index % 2];
        issuer
            .prove_included(entry, index as u64, &heads[1 - index % 2])
            .await;
    }
}
