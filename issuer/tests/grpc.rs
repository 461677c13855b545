//! The issuer over real gRPC on a loopback socket: a development PKI in a
//! temporary folder, a SQLite ledger file, a pinned clock, and a tonic
//! client. Expected values are worked out here from the PKI and the clock,
//! not read back from the service.

#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use chipward_certs::keys::{Ed25519Key, P384Key, spki_sha256};
use chipward_certs::pki::tls::create_local_deployment;
use chipward_certs::pki::{CertifiedKey, DevPki};
use chipward_issuer::host_enrolment::HostId;
use chipward_issuer::ledger::{
    AuditRecord, AuditSelection, ChipRecord, HostRecord, Ledger, LedgerError, LegalHold,
    LicenseFilter, LicenseRecord, ResultRecord, Revocation, SqliteLedger, StoredTreeHead,
};
use chipward_issuer::{Clock, IssuerService, IssuerSettings, ManualClock, SystemClock, serve};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    EnrolChipRequest, GetLicenseRequest, GetRevocationListRequest, IssueLicenseRequest, License,
    LicenseStatus, ListLicensesRequest, RenewLicenseRequest, RevokeLicenseRequest, Site,
};
use chipward_proto::result::{AttestationResult, ClaimResult, Status as Verdict};
use chipward_proto::revocation::RevokedLicense;
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_proto::{ChipId, TokenId, license, revocation};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};

const MODEL: &str = "CW-100";
const CA_NAME: &str = "CW-100 Provisioner CA";
/// Upper bound for any single call in these tests; a hang fails instead.
const CALL_LIMIT: Duration = Duration::from_secs(20);

struct Harness {
    _dir: tempfile::TempDir,
    pki: DevPki,
    clock: Arc<ManualClock>,
    /// The vendor administrator.
    client: IssuerClient<Channel>,
    /// The operator of the tenants used here, who renews.
    operator: IssuerClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), chipward_issuer::ServeError>>,
}

/// A chip: its identity key and certificate chain, leaf first.
struct Chip {
    id_hex: String,
    chain: Vec<Vec<u8>>,
}

async fn start() -> Harness {
    start_with(None).await
}

/// Starts the issuer over `ledger`, or over a SQLite file in the temporary
/// folder when `None`.
async fn start_with(ledger: Option<Arc<dyn Ledger>>) -> Harness {
    // Logs are captured per test and shown when one fails.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("chipward_issuer=debug")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), MODEL).unwrap();
    let ledger = ledger.unwrap_or_else(|| {
        Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap())
    });
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let service = IssuerService::from_dev_pki(
        IssuerSettings::default(),
        &pki,
        ledger,
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let tls = dir.path().join("tls");
    create_local_deployment(&tls, &["acme", "acme-ai", "globex"]).unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    let server = tokio::spawn(serve(service, listener, server_tls, async {
        let _ = stopped.await;
    }));
    let url = format!("https://{addr}");
    let client = IssuerClient::new(connect_as(&tls, "admin", &url).await.unwrap());
    let operator = IssuerClient::new(connect_as(&tls, "operator", &url).await.unwrap());
    Harness {
        _dir: dir,
        pki,
        clock,
        client,
        operator,
        stop: Some(stop),
        server,
    }
}

impl Harness {
    fn now(&self) -> i64 {
        self.clock.now()
    }

    fn chip(&self, serial: u64) -> Chip {
        let key = P384Key::generate().unwrap();
        let spki = key.public_key_spki_der();
        let cert = self
            .pki
            .chip_ca
            .issue_device_identity(&spki, MODEL, serial)
            .unwrap();
        Chip {
            id_hex: hex::encode(spki_sha256(&spki)),
            chain: vec![cert, self.pki.chip_ca.cert_der.clone()],
        }
    }

    async fn enrolled_chip(&mut self, serial: u64) -> Chip {
        let chip = self.chip(serial);
        self.enrol(chip.chain.clone()).await.unwrap();
        chip
    }

    fn token_keys(&self) -> TrustedKeys {
        let key = &self.pki.issuer_token_key;
        TrustedKeys::new().with(key.key_id(), key.public_key())
    }

    async fn enrol(
        &mut self,
        cert_chain: Vec<Vec<u8>>,
    ) -> Result<chipward_proto::grpc::EnrolChipResponse, Status> {
        let call = self.client.enrol_chip(EnrolChipRequest { cert_chain });
        bounded(call).await
    }

    async fn issue(&mut self, req: IssueLicenseRequest) -> Result<License, Status> {
        let resp = bounded(self.client.issue_license(req)).await?;
        Ok(resp.license.unwrap())
    }

    async fn get(&mut self, token_id: &str) -> Result<License, Status> {
        let req = GetLicenseRequest {
            token_id: token_id.into(),
        };
        Ok(bounded(self.client.get_license(req))
            .await?
            .license
            .unwrap())
    }

    async fn list(&mut self, chip_id: &str, tenant: &str, limit: u32) -> Vec<String> {
        let req = ListLicensesRequest {
            chip_id: chip_id.into(),
            tenant: tenant.into(),
            limit,
        };
        let resp = bounded(self.client.list_licenses(req)).await.unwrap();
        resp.licenses.into_iter().map(|l| l.token_id).collect()
    }

    async fn revoke(&mut self, token_id: &str, reason: &str) -> Result<u64, Status> {
        let req = RevokeLicenseRequest {
            token_id: token_id.into(),
            reason: reason.into(),
        };
        Ok(bounded(self.client.revoke_license(req))
            .await?
            .revocation_seq)
    }

    async fn renew(
        &mut self,
        token_id: &str,
        result: Vec<u8>,
        lifetime: i64,
    ) -> Result<License, Status> {
        let req = RenewLicenseRequest {
            token_id: token_id.into(),
            attestation_result: result,
            lifetime_seconds: lifetime,
        };
        Ok(bounded(self.operator.renew_license(req))
            .await?
            .license
            .unwrap())
    }

    /// A passing result for `license`, appraised now, signed by the
    /// verifier key of the PKI.
    fn passing_result(&self, license: &License) -> AttestationResult {
        let claims = ["identity", "firmware", "license", "tenant", "site"]
            .iter()
            .map(|name| ClaimResult {
                claim: (*name).into(),
                status: Verdict::Pass,
                code: "ok".into(),
                reason: String::new(),
            })
            .collect();
        AttestationResult {
            appraised_at: self.now(),
            chip_id: license.chip_id.clone(),
            model: CA_NAME.into(),
            tenant: license.tenant.clone(),
            site_id: license.site.as_ref().unwrap().id.clone(),
            token_id: license.token_id.clone(),
            evidence_sha256: "ab".repeat(32),
            measurements: vec![],
            claims,
            verdict: Verdict::Pass,
            location: None,
        }
    }

    fn sign_result(&self, result: &AttestationResult) -> Vec<u8> {
        let key = &self.pki.verifier_result_key;
        result.sign(&key.key_id(), |m| key.sign(m))
    }

    async fn shut_down(mut self) {
        drop(self.stop.take());
        let outcome = tokio::time::timeout(CALL_LIMIT, self.server).await;
        outcome.unwrap().unwrap().unwrap();
    }
}

async fn bounded<T>(
    call: impl Future<Output = Result<tonic::Response<T>, Status>>,
) -> Result<T, Status> {
    let resp = tokio::time::timeout(CALL_LIMIT, call).await.unwrap()?;
    Ok(resp.into_inner())
}

fn issue_request(chip: &Chip, tenant: &str) -> IssueLicenseRequest {
    IssueLicenseRequest {
        chip_id: chip.id_hex.clone(),
        tenant: tenant.into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.1109,
            longitude: 8.6821,
            radius_km: 25.0,
        }),
        not_before: 0,
        lifetime_seconds: 0,
        entitlements: vec!["fp8".into(), "nvlink".into()],
        eccn: "3A090.a".into(),
        tenant_party: None,
        end_user: None,
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
async fn enrols_a_chip_once_and_refuses_another_certificate_for_it() {
    let mut h = start().await;
    let key = P384Key::generate().unwrap();
    let spki = key.public_key_spki_der();
    let cert = h
        .pki
        .chip_ca
        .issue_device_identity(&spki, MODEL, 7)
        .unwrap();
    let chain = vec![cert, h.pki.chip_ca.cert_der.clone()];

    let first = h.enrol(chain.clone()).await.unwrap();
    assert_eq!(first.chip_id, hex::encode(spki_sha256(&spki)));
    assert_eq!(first.model, CA_NAME);
    assert!(first.newly_enrolled);

    // Again, and again with the vendor root appended: the same chip.
    assert!(!h.enrol(chain.clone()).await.unwrap().newly_enrolled);
    let mut with_root = chain.clone();
    with_root.push(h.pki.root_cert_der().to_vec());
    let again = h.enrol(with_root).await.unwrap();
    assert_eq!(
        (again.chip_id.as_str(), again.newly_enrolled),
        (first.chip_id.as_str(), false)
    );

    // Same key, new certificate (another serial): a conflict.
    let other = h
        .pki
        .chip_ca
        .issue_device_identity(&spki, MODEL, 8)
        .unwrap();
    let err = h
        .enrol(vec![other, h.pki.chip_ca.cert_der.clone()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(stable_code(&err), "chip_conflict");
    h.shut_down().await;
}

#[tokio::test]
async fn enrols_only_device_identity_certificates() {
    let mut h = start().await;
    let refused = |err: Status, why: &str| {
        assert_eq!(
            (err.code(), stable_code(&err)),
            (Code::InvalidArgument, "not_device_identity"),
            "{err:?}"
        );
        assert_eq!(
            err.message(),
            format!("first certificate is not a device-identity certificate: {why}")
        );
    };
    let by_anchor = "it is issued directly by the trust anchor, not by a provisioner ca";

    // The provisioner CA enrolling itself, with and without the root.
    let ca = h.pki.chip_ca.cert_der.clone();
    refused(h.enrol(vec![ca.clone()]).await.unwrap_err(), by_anchor);
    let with_root = vec![ca.clone(), h.pki.root_cert_der().to_vec()];
    refused(h.enrol(with_root).await.unwrap_err(), by_anchor);

    // An identity-shaped certificate that the root signed directly.
    let key = P384Key::generate().unwrap();
    let direct = h
        .pki
        .root
        .issue_device_identity(&key.public_key_spki_der(), MODEL, 1)
        .unwrap();
    refused(h.enrol(vec![direct]).await.unwrap_err(), by_anchor);

    // A firmware alias certificate placed first, above its real identity.
    let identity_key = P384Key::generate().unwrap();
    let identity = CertifiedKey {
        cert_der: h
            .pki
            .chip_ca
            .issue_device_identity(&identity_key.public_key_spki_der(), MODEL, 2)
            .unwrap(),
        key: identity_key,
    };
    let alias_key = P384Key::generate().unwrap();
    let alias = identity
        .issue_alias(&alias_key.public_key_spki_der(), MODEL, "1.0.0")
        .unwrap();
    let chain = vec![alias, identity.cert_der.clone(), ca.clone()];
    refused(
        h.enrol(chain).await.unwrap_err(),
        "it is not a ca certificate",
    );

    // Nothing was enrolled by any refusal; the identity itself enrols.
    let resp = h.enrol(vec![identity.cert_der, ca]).await.unwrap();
    assert!(resp.newly_enrolled);
    assert_eq!(
        resp.chip_id,
        hex::encode(spki_sha256(&identity.key.public_key_spki_der()))
    );
    assert_eq!(resp.model, CA_NAME);
    h.shut_down().await;
}

#[tokio::test]
async fn issues_a_signed_license_and_serves_it_back() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let now = h.now();

    let issued = h.issue(issue_request(&chip, "acme")).await.unwrap();
    assert_eq!(issued.chip_id, chip.id_hex);
    assert_eq!(issued.tenant, "acme");
    assert_eq!(issued.status, LicenseStatus::Active as i32);
    assert_eq!(
        (issued.issued_at, issued.not_before, issued.expires_at),
        (now, now, now + 86_400)
    );
    assert_eq!(issued.renewed_from, "");
    assert_eq!(issued.entitlements, ["fp8", "nvlink"]);
    assert_eq!(issued.eccn, "3A090.a");
    assert_eq!(issued.token_id.len(), 32);

    // The token verifies with the token public key and says the same.
    let verified = license::verify(&issued.token, &h.token_keys()).unwrap();
    let claims = verified.claims();
    assert_eq!(claims.issuer, "chipward-issuer");
    assert_eq!(claims.audience, "chipward-verifier");
    assert_eq!(claims.chip_id.to_hex(), chip.id_hex);
    assert_eq!(claims.token_id.to_hex(), issued.token_id);
    assert_eq!(claims.tenant, "acme");
    assert_eq!(claims.site.id, "fra-1");
    assert_eq!(claims.site.latitude, 50.1109);
    assert_eq!((claims.not_before, claims.expires_at), (now, now + 86_400));
    assert_eq!(claims.entitlements, ["fp8", "nvlink"]);
    assert_eq!(claims.eccn, "3A090.a");
    assert_eq!(verified.key_id(), h.pki.issuer_token_key.key_id());

    assert_eq!(h.get(&issued.token_id).await.unwrap(), issued);

    // A backdated start and an explicit lifetime.
    let mut req = issue_request(&chip, "acme");
    req.not_before = now - 3_600;
    req.lifetime_seconds = 7_200;
    let backdated = h.issue(req).await.unwrap();
    assert_eq!(
        (backdated.not_before, backdated.expires_at),
        (now - 3_600, now + 3_600)
    );
    assert_ne!(backdated.token_id, issued.token_id);
    h.shut_down().await;
}

#[tokio::test]
async fn lists_newest_first_by_chip_and_tenant() {
    let mut h = start().await;
    let a = h.enrolled_chip(1).await;
    let b = h.enrolled_chip(2).await;

    let first = h.issue(issue_request(&a, "acme")).await.unwrap().token_id;
    h.clock.advance(10);
    let second = h.issue(issue_request(&b, "acme")).await.unwrap().token_id;
    h.clock.advance(10);
    let third = h.issue(issue_request(&a, "globex")).await.unwrap().token_id;

    assert_eq!(
        h.list("", "", 0).await,
        [third.clone(), second.clone(), first.clone()]
    );
    assert_eq!(h.list("", "", 2).await, [third.clone(), second.clone()]);
    assert_eq!(
        h.list(&a.id_hex, "", 0).await,
        [third.clone(), first.clone()]
    );
    assert_eq!(h.list("", "acme", 0).await, [second.clone(), first.clone()]);
    assert_eq!(
        h.list(&a.id_hex, "acme", 5000).await,
        std::slice::from_ref(&first)
    );
    assert!(h.list("", "initech", 0).await.is_empty());
    h.shut_down().await;
}

#[tokio::test]
async fn revokes_and_publishes_a_signed_revocation_list() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let one = h.issue(issue_request(&chip, "acme")).await.unwrap();
    let two = h.issue(issue_request(&chip, "acme")).await.unwrap();
    let three = h.issue(issue_request(&chip, "acme")).await.unwrap();

    let empty = bounded(h.client.get_revocation_list(GetRevocationListRequest {}))
        .await
        .unwrap();
    assert_eq!(empty.seq, 0);
    assert!(
        revocation::verify(&empty.signed_list, &h.token_keys())
            .unwrap()
            .entries
            .is_empty()
    );

    let t1 = h.now();
    assert_eq!(h.revoke(&two.token_id, "contract ended").await.unwrap(), 1);
    h.clock.advance(5);
    assert_eq!(h.revoke(&one.token_id, "stolen").await.unwrap(), 2);
    assert_eq!(h.revoke(&two.token_id, "again").await.unwrap(), 1);
    assert_eq!(
        h.get(&two.token_id).await.unwrap().status,
        LicenseStatus::Revoked as i32
    );
    assert_eq!(
        h.get(&three.token_id).await.unwrap().status,
        LicenseStatus::Active as i32
    );

    let listed_at = h.now();
    let resp = bounded(h.client.get_revocation_list(GetRevocationListRequest {}))
        .await
        .unwrap();
    assert_eq!(resp.seq, 2);
    let list = revocation::verify(&resp.signed_list, &h.token_keys()).unwrap();
    assert_eq!((list.seq, list.issued_at), (2, listed_at));
    let entries: Vec<_> = list
        .entries
        .iter()
        .map(|e| {
            (
                e.token_id.as_str(),
                e.chip_id.as_str(),
                e.revoked_at,
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [
            (
                two.token_id.as_str(),
                chip.id_hex.as_str(),
                t1,
                "contract ended"
            ),
            (
                one.token_id.as_str(),
                chip.id_hex.as_str(),
                t1 + 5,
                "stolen"
            ),
        ]
    );

    // A new revocation moves the list on.
    assert_eq!(h.revoke(&three.token_id, "").await.unwrap(), 3);
    let newer = bounded(h.client.get_revocation_list(GetRevocationListRequest {}))
        .await
        .unwrap();
    let list = revocation::verify(&newer.signed_list, &h.token_keys()).unwrap();
    assert_eq!((newer.seq, list.seq, list.entries.len()), (3, 3, 3));
    assert!(list.contains(&three.token_id));

    // Another key does not verify it.
    let other = Ed25519Key::generate().unwrap();
    let wrong = TrustedKeys::new().with(h.pki.issuer_token_key.key_id(), other.public_key());
    assert!(revocation::verify(&newer.signed_list, &wrong).is_err());
    h.shut_down().await;
}

impl Harness {
    /// Issues a license to `chip` and renews it `renewals` times, a minute
    /// apart; returns every license, oldest first.
    async fn renewed_chain(&mut self, chip: &Chip, renewals: usize) -> Vec<License> {
        let mut chain = vec![self.issue(issue_request(chip, "acme")).await.unwrap()];
        for _ in 0..renewals {
            self.clock.advance(60);
            let last = chain.last().unwrap();
            let result = self.sign_result(&self.passing_result(last));
            let next = self.renew(&last.token_id, result, 0).await.unwrap();
            chain.push(next);
        }
        chain
    }

    async fn signed_list(&mut self) -> (u64, Vec<u8>) {
        let resp = bounded(self.client.get_revocation_list(GetRevocationListRequest {}))
            .await
            .unwrap();
        (resp.seq, resp.signed_list)
    }

    async fn status_of(&mut self, license: &License) -> LicenseStatus {
        let got = self.get(&license.token_id).await.unwrap();
        LicenseStatus::try_from(got.status).unwrap()
    }
}

/// The list's entries as (token id, chip id, revoked at, reason).
fn entries(list: &revocation::RevocationList) -> Vec<(String, String, i64, String)> {
    list.entries
        .iter()
        .map(|e| {
            (
                e.token_id.clone(),
                e.chip_id.clone(),
                e.revoked_at,
                e.reason.clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn revoking_a_renewed_license_revokes_its_whole_lineage_at_once() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let other = h.enrolled_chip(2).await;
    let bystander = h.issue(issue_request(&other, "acme")).await.unwrap();
    let chain = h.renewed_chain(&chip, 2).await;
    let [l1, l2, l3] = &chain[..] else {
        panic!("three licenses")
    };
    assert_eq!(h.status_of(l1).await, LicenseStatus::Superseded);

    // Revoking the middle one puts all three on one new list version.
    h.clock.advance(10);
    let at = h.now();
    assert_eq!(h.revoke(&l2.token_id, "stolen").await.unwrap(), 1);
    for l in [l1, l2, l3] {
        assert_eq!(h.status_of(l).await, LicenseStatus::Revoked);
    }
    assert_eq!(h.status_of(&bystander).await, LicenseStatus::Active);

    let (seq, signed) = h.signed_list().await;
    let list = revocation::verify(&signed, &h.token_keys()).unwrap();
    assert_eq!((seq, list.seq), (1, 1));
    let lineage = format!("stolen (lineage of {})", l2.token_id);
    assert_eq!(
        entries(&list),
        [
            (
                l1.token_id.clone(),
                chip.id_hex.clone(),
                at,
                lineage.clone()
            ),
            (
                l2.token_id.clone(),
                chip.id_hex.clone(),
                at,
                "stolen".into()
            ),
            (l3.token_id.clone(), chip.id_hex.clone(), at, lineage),
        ]
    );

    // Again, through any member: the same number, nothing added.
    h.clock.advance(10);
    for l in [l3, l1, l2] {
        assert_eq!(h.revoke(&l.token_id, "again").await.unwrap(), 1);
    }
    let (seq, signed) = h.signed_list().await;
    let again = revocation::verify(&signed, &h.token_keys()).unwrap();
    assert_eq!((seq, entries(&again)), (1, entries(&list)));

    // The next revocation is the next version.
    assert_eq!(h.revoke(&bystander.token_id, "").await.unwrap(), 2);
    h.shut_down().await;
}

#[tokio::test]
async fn revoking_a_superseded_license_revokes_its_renewals() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let chain = h.renewed_chain(&chip, 2).await;
    let at = h.now();

    assert_eq!(h.revoke(&chain[0].token_id, "").await.unwrap(), 1);
    let (_, signed) = h.signed_list().await;
    let list = revocation::verify(&signed, &h.token_keys()).unwrap();
    let lineage = format!("lineage of {}", chain[0].token_id);
    assert_eq!(
        entries(&list),
        [
            (
                chain[0].token_id.clone(),
                chip.id_hex.clone(),
                at,
                String::new()
            ),
            (
                chain[1].token_id.clone(),
                chip.id_hex.clone(),
                at,
                lineage.clone()
            ),
            (chain[2].token_id.clone(), chip.id_hex.clone(), at, lineage),
        ]
    );

    // The newest was active: it can no longer be renewed.
    let result = h.sign_result(&h.passing_result(&chain[2]));
    let err = h.renew(&chain[2].token_id, result, 0).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "license is revoked")
    );
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_to_renew_a_superseded_license_even_with_a_fresh_result() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let chain = h.renewed_chain(&chip, 1).await;

    // A fresh, passing result about the superseded token itself.
    h.clock.advance(5);
    let result = h.sign_result(&h.passing_result(&chain[0]));
    let err = h.renew(&chain[0].token_id, result, 0).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message(), stable_code(&err)),
        (
            Code::FailedPrecondition,
            "license is superseded",
            "license_not_active"
        )
    );
    assert_eq!(h.list(&chip.id_hex, "", 0).await.len(), 2);
    assert_eq!(h.status_of(&chain[1]).await, LicenseStatus::Active);
    h.shut_down().await;
}

#[tokio::test]
async fn signs_the_revocation_list_afresh_each_second() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let lic = h.issue(issue_request(&chip, "acme")).await.unwrap();
    h.revoke(&lic.token_id, "stolen").await.unwrap();

    // Two fetches in one second: one signature, the same bytes.
    let t = h.now();
    let (seq, first) = h.signed_list().await;
    let (_, same_second) = h.signed_list().await;
    assert_eq!(first, same_second);
    let at_t = revocation::verify(&first, &h.token_keys()).unwrap();
    assert_eq!((seq, at_t.seq, at_t.issued_at), (1, 1, t));

    // Five seconds on, nothing revoked since: the same list, signed now, so
    // a verifier can tell a current list from a replayed one.
    h.clock.advance(5);
    let (seq, later) = h.signed_list().await;
    assert_ne!(later, first);
    let at_t5 = revocation::verify(&later, &h.token_keys()).unwrap();
    assert_eq!((seq, at_t5.seq, at_t5.issued_at), (1, 1, t + 5));
    assert_eq!(at_t5.entries, at_t.entries);

    // The empty list of a fresh issuer is signed with the time too.
    let mut fresh = start().await;
    let (seq, empty) = fresh.signed_list().await;
    let empty = revocation::verify(&empty, &fresh.token_keys()).unwrap();
    assert_eq!(
        (seq, empty.issued_at, empty.entries.len()),
        (0, fresh.now(), 0)
    );
    fresh.shut_down().await;
    h.shut_down().await;
}

#[tokio::test]
async fn renews_against_a_passing_result_and_supersedes_the_old_license() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let old = h.issue(issue_request(&chip, "acme")).await.unwrap();
    h.clock.advance(1_000);
    let now = h.now();

    let result = h.sign_result(&h.passing_result(&old));
    let new = h.renew(&old.token_id, result.clone(), 3_600).await.unwrap();
    assert_ne!(new.token_id, old.token_id);
    assert_eq!(new.renewed_from, old.token_id);
    assert_eq!(new.status, LicenseStatus::Active as i32);
    assert_eq!(
        (new.issued_at, new.not_before, new.expires_at),
        (now, now, now + 3_600)
    );
    assert_eq!(
        (
            &new.chip_id,
            &new.tenant,
            &new.site,
            &new.entitlements,
            &new.eccn
        ),
        (
            &old.chip_id,
            &old.tenant,
            &old.site,
            &old.entitlements,
            &old.eccn
        )
    );
    let claims = license::verify(&new.token, &h.token_keys()).unwrap();
    assert_eq!(claims.claims().token_id.to_hex(), new.token_id);
    assert_eq!(claims.claims().expires_at, now + 3_600);

    assert_eq!(
        h.get(&old.token_id).await.unwrap().status,
        LicenseStatus::Superseded as i32
    );
    assert_eq!(h.get(&new.token_id).await.unwrap(), new);

    // The superseded license cannot be renewed again with the same result.
    let err = h.renew(&old.token_id, result, 0).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "license is superseded");

    // The new one renews with the default lifetime.
    let next = h.sign_result(&h.passing_result(&new));
    let renewed = h.renew(&new.token_id, next, 0).await.unwrap();
    assert_eq!(renewed.expires_at, now + 86_400);
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_renewals_that_fail_a_check() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let lic = h.issue(issue_request(&chip, "acme")).await.unwrap();

    // Signed by a key the issuer does not trust.
    let stranger = Ed25519Key::generate().unwrap();
    let foreign = h
        .passing_result(&lic)
        .sign(&stranger.key_id(), |m| stranger.sign(m));
    let err = h.renew(&lic.token_id, foreign, 0).await.unwrap_err();
    assert_eq!(
        (err.code(), stable_code(&err)),
        (Code::Unauthenticated, "result_unauthenticated")
    );

    // A failing claim, and the verdict that follows from it: the claim is
    // named.
    let mut failing = h.passing_result(&lic);
    failing.claims[4].status = Verdict::Fail;
    failing.verdict = AttestationResult::verdict_of(&failing.claims);
    let err = h
        .renew(&lic.token_id, h.sign_result(&failing), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message(), stable_code(&err)),
        (
            Code::PermissionDenied,
            "attestation claim \"site\" is fail, not pass",
            "renewal_claim"
        )
    );

    // Every claim passed but the verdict is not pass.
    let mut odd = h.passing_result(&lic);
    odd.verdict = Verdict::Unknown;
    let err = h
        .renew(&lic.token_id, h.sign_result(&odd), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message(), stable_code(&err)),
        (
            Code::PermissionDenied,
            "attestation verdict is unknown, not pass",
            "renewal_verdict"
        )
    );

    // Another tenant.
    let mut other_tenant = h.passing_result(&lic);
    other_tenant.tenant = "globex".into();
    let err = h
        .renew(&lic.token_id, h.sign_result(&other_tenant), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), stable_code(&err)),
        (Code::PermissionDenied, "renewal_tenant_mismatch")
    );

    // A result about another license.
    let mut other_token = h.passing_result(&lic);
    other_token.token_id = "00".repeat(16);
    let err = h
        .renew(&lic.token_id, h.sign_result(&other_token), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), stable_code(&err)),
        (Code::PermissionDenied, "renewal_token_mismatch")
    );

    // A result 301 seconds old.
    let stale = h.sign_result(&h.passing_result(&lic));
    h.clock.advance(301);
    let err = h.renew(&lic.token_id, stale, 0).await.unwrap_err();
    assert_eq!(
        (err.code(), stable_code(&err)),
        (Code::PermissionDenied, "renewal_result_stale")
    );

    // A lifetime over the maximum, and an unknown license.
    let fresh = h.sign_result(&h.passing_result(&lic));
    let err = h
        .renew(&lic.token_id, fresh.clone(), 30 * 86_400 + 1)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h
        .renew(&"ee".repeat(16), fresh.clone(), 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Nothing was written by any refusal.
    let unchanged = h.get(&lic.token_id).await.unwrap();
    assert_eq!(unchanged, lic);
    assert_eq!(h.list("", "", 0).await, std::slice::from_ref(&lic.token_id));

    // A revoked license cannot be renewed, even with a good result.
    h.revoke(&lic.token_id, "stolen").await.unwrap();
    let err = h.renew(&lic.token_id, fresh, 0).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "license is revoked")
    );
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_a_pass_verdict_that_its_claims_do_not_support() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let lic = h.issue(issue_request(&chip, "acme")).await.unwrap();

    // A verifier that wrote "pass" over a claim it could not decide.
    let mut result = h.passing_result(&lic);
    result.claims[1].status = Verdict::Unknown;
    result.verdict = Verdict::Pass;
    let err = h
        .renew(&lic.token_id, h.sign_result(&result), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message(), stable_code(&err)),
        (
            Code::PermissionDenied,
            "attestation claim \"firmware\" is unknown, not pass",
            "renewal_claim"
        )
    );

    // Or over no claims at all.
    let mut result = h.passing_result(&lic);
    result.claims.clear();
    result.verdict = Verdict::Pass;
    let err = h
        .renew(&lic.token_id, h.sign_result(&result), 0)
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::PermissionDenied, "attestation result lists no claims")
    );

    assert_eq!(h.get(&lic.token_id).await.unwrap(), lic);
    h.shut_down().await;
}

#[tokio::test]
async fn malformed_results_are_invalid_argument_and_forged_ones_unauthenticated() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let lic = h.issue(issue_request(&chip, "acme")).await.unwrap();
    let good = h.sign_result(&h.passing_result(&lic));

    let untagged = chipward_proto::cose::untag(&good).unwrap();
    let cases: [(&str, Vec<u8>, &str); 5] = [
        ("empty", vec![], "attestation_result is required"),
        (
            "garbage",
            b"not cose".to_vec(),
            "attestation result is malformed",
        ),
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "attestation result is malformed",
        ),
        ("untagged", untagged, "attestation result is malformed"),
        (
            "oversized",
            vec![0xd2; 100 * 1024],
            "attestation_result is 102400 bytes, at most 65536 allowed",
        ),
    ];
    for (what, bytes, message) in cases {
        let err = h.renew(&lic.token_id, bytes, 0).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message),
            "{what}"
        );
    }

    // Well-formed but signed by a stranger, or under our key id by another
    // key, or with one signature byte flipped.
    let stranger = Ed25519Key::generate().unwrap();
    let result = h.passing_result(&lic);
    let unknown_key = result.sign(&stranger.key_id(), |m| stranger.sign(m));
    let wrong_key = result.sign(&h.pki.verifier_result_key.key_id(), |m| stranger.sign(m));
    let mut flipped = good.clone();
    *flipped.last_mut().unwrap() ^= 1;
    for (what, bytes) in [
        ("unknown key", unknown_key),
        ("wrong key", wrong_key),
        ("flipped", flipped),
    ] {
        let err = h.renew(&lic.token_id, bytes, 0).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message(), stable_code(&err)),
            (
                Code::Unauthenticated,
                "attestation result is not signed by a trusted verifier",
                "result_unauthenticated"
            ),
            "{what}"
        );
    }

    // Nothing was written; the good result still renews.
    assert_eq!(h.get(&lic.token_id).await.unwrap(), lic);
    h.renew(&lic.token_id, good, 0).await.unwrap();
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_bad_chains_with_invalid_argument() {
    let mut h = start().await;

    let err = h.enrol(vec![b"garbage".to_vec()]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("certificate chain refused: certificate 0"),
        "{}",
        err.message()
    );

    let err = h.enrol(vec![]).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "cert_chain is required")
    );

    // Fifty certificates: refused by count before any is parsed.
    let deep = vec![h.chip(1).chain[0].clone(); 50];
    let err = h.enrol(deep).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "cert_chain has 50 entries, at most 8 allowed"
    );

    // A chip of another vendor root: the CA's signature fails under ours.
    let dir = tempfile::tempdir().unwrap();
    let other = DevPki::create(&dir.path().join("pki"), MODEL).unwrap();
    let key = P384Key::generate().unwrap();
    let cert = other
        .chip_ca
        .issue_device_identity(&key.public_key_spki_der(), MODEL, 1)
        .unwrap();
    let err = h
        .enrol(vec![cert, other.chip_ca.cert_der.clone()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("certificate 1"), "{}", err.message());
    assert_eq!(stable_code(&err), "chain_invalid");
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_bad_license_requests_with_exact_codes() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;

    let stranger = h.chip(2);
    let err = h.issue(issue_request(&stranger, "acme")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::FailedPrecondition, "chip not enrolled")
    );

    let mut req = issue_request(&chip, "acme");
    req.site.as_mut().unwrap().latitude = 91.0;
    let err = h.issue(req).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (
            Code::InvalidArgument,
            "site.latitude must be a number from -90 to 90"
        )
    );

    let mut req = issue_request(&chip, "acme");
    req.chip_id = "not-hex".into();
    assert_eq!(
        h.issue(req).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let err = h.get("xyz").await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::InvalidArgument, "token_id is not a valid id")
    );
    let err = h.get(&"zz".repeat(16)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h.revoke("0123", "x").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = h.renew("0123", vec![], 0).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    let err = h.get(&"ab".repeat(16)).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::NotFound, "license not found")
    );
    let err = h.revoke(&"ab".repeat(16), "x").await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let req = ListLicensesRequest {
        chip_id: "abc".into(),
        tenant: String::new(),
        limit: 0,
    };
    let err = bounded(h.client.list_licenses(req)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.shut_down().await;
}

#[tokio::test]
async fn licenses_only_identifier_tenants() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;
    let rule = "tenant must be 1 to 64 bytes of lowercase ascii letters, digits, '.', '_' or \
                '-', starting with a letter or digit";
    let cases = [
        ("acme\u{202e}ia-", format!("{rule}; byte 4 is not allowed")),
        ("acme-ai\u{200b}", format!("{rule}; byte 7 is not allowed")),
        ("   ", format!("{rule}; byte 0 is not allowed")),
        ("ACME-AI", format!("{rule}; byte 0 is not allowed")),
        (
            &"é".repeat(128),
            "tenant must be 1 to 64 bytes long, got 256".to_owned(),
        ),
    ];
    for (tenant, message) in cases {
        let err = h.issue(issue_request(&chip, tenant)).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::InvalidArgument, message.as_str()),
            "{tenant:?}"
        );
    }
    assert!(h.list("", "", 0).await.is_empty());

    let issued = h.issue(issue_request(&chip, "acme-ai")).await.unwrap();
    assert_eq!(issued.tenant, "acme-ai");
    h.shut_down().await;
}

#[tokio::test]
async fn refuses_oversized_requests_and_keeps_answering() {
    let mut h = start().await;
    let chip = h.enrolled_chip(1).await;

    // 1 MiB is the default limit; send a chain a little over it.
    let big = vec![vec![0x30; 600 * 1024]; 2];
    let err = h.enrol(big).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");

    let issued = h.issue(issue_request(&chip, "acme")).await.unwrap();
    assert_eq!(h.get(&issued.token_id).await.unwrap(), issued);
    h.shut_down().await;
}

/// A ledger that fails every call the same way.
#[derive(Clone, Copy)]
enum Broken {
    /// The database cannot be reached.
    Down,
    /// The backend reports a fault of its own.
    Bug,
    /// The call panics.
    Panics,
}

impl Broken {
    fn fail<T>(self) -> Result<T, LedgerError> {
        match self {
            Self::Down => Err(LedgerError::Unavailable(Box::new(std::io::Error::other(
                "connection refused to db.internal:5432",
            )))),
            Self::Bug => Err(LedgerError::Backend(Box::new(std::io::Error::other(
                "syntax error near SELECT secret",
            )))),
            Self::Panics => panic!("ledger bug"),
        }
    }
}

impl Ledger for Broken {
    fn enrol_chip(&self, _: &ChipRecord, _: &AuditRecord) -> Result<bool, LedgerError> {
        self.fail()
    }
    fn chip(&self, _: &ChipId) -> Result<Option<ChipRecord>, LedgerError> {
        self.fail()
    }
    fn insert_license(&self, _: &LicenseRecord, _: &AuditRecord) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn insert_licenses(
        &self,
        _: &[(LicenseRecord, AuditRecord)],
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError> {
        self.fail()
    }
    fn license(&self, _: &TokenId) -> Result<Option<LicenseRecord>, LedgerError> {
        self.fail()
    }
    fn list_licenses(
        &self,
        _: &LicenseFilter,
        _: usize,
    ) -> Result<Vec<LicenseRecord>, LedgerError> {
        self.fail()
    }
    fn renew(&self, _: &TokenId, _: &LicenseRecord, _: &AuditRecord) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn revoke(
        &self,
        _: &TokenId,
        _: &str,
        _: i64,
        _: &AuditRecord,
    ) -> Result<Revocation, LedgerError> {
        self.fail()
    }
    fn revocation_seq(&self) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError> {
        self.fail()
    }
    fn enrol_host(&self, _: &HostRecord, _: &AuditRecord) -> Result<bool, LedgerError> {
        self.fail()
    }
    fn host_keys(&self, _: &HostId) -> Result<Vec<HostRecord>, LedgerError> {
        self.fail()
    }
    fn append_audit(&self, _: &[AuditRecord]) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn record_result(&self, _: &ResultRecord, _: &AuditRecord) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn results(&self, _: &AuditSelection, _: usize) -> Result<Vec<ResultRecord>, LedgerError> {
        self.fail()
    }
    fn audit_size(&self) -> Result<u64, LedgerError> {
        self.fail()
    }
    fn audit_entries(&self, _: u64, _: usize) -> Result<Vec<Vec<u8>>, LedgerError> {
        self.fail()
    }
    fn audit_select(
        &self,
        _: &AuditSelection,
        _: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        self.fail()
    }
    fn audit_node(&self, _: u32, _: u64) -> Result<[u8; 32], LedgerError> {
        self.fail()
    }
    fn artefact(&self, _: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
        self.fail()
    }
    fn store_tree_head(&self, _: &StoredTreeHead) -> Result<(), LedgerError> {
        self.fail()
    }
    fn tree_heads(&self, _: u64, _: usize) -> Result<Vec<StoredTreeHead>, LedgerError> {
        self.fail()
    }
    fn place_hold(&self, _: &LegalHold, _: &AuditRecord) -> Result<i64, LedgerError> {
        self.fail()
    }
    fn lift_hold(&self, _: i64, _: i64, _: &AuditRecord) -> Result<(), LedgerError> {
        self.fail()
    }
    fn holds(&self) -> Result<Vec<LegalHold>, LedgerError> {
        self.fail()
    }
    fn purge_lineage(
        &self,
        _: &TokenId,
        _: i64,
        _: i64,
        _: &AuditRecord,
    ) -> Result<usize, LedgerError> {
        self.fail()
    }
}

#[tokio::test]
async fn a_ledger_that_is_down_gives_unavailable() {
    let mut h = start_with(Some(Arc::new(Broken::Down))).await;
    let chip = h.chip(1);
    let err = h.enrol(chip.chain.clone()).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Unavailable, "ledger unavailable")
    );
    assert_eq!(stable_code(&err), "ledger_unavailable");
    let err = h.get(&"ab".repeat(16)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    let err = bounded(h.client.get_revocation_list(GetRevocationListRequest {}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    h.shut_down().await;
}

#[tokio::test]
async fn ledger_faults_are_internal_and_hide_their_details() {
    let mut h = start_with(Some(Arc::new(Broken::Bug))).await;
    let chip = h.chip(1);
    let err = h.issue(issue_request(&chip, "acme")).await.unwrap_err();
    assert_eq!(
        (err.code(), err.message()),
        (Code::Internal, "internal error")
    );
    assert_eq!(stable_code(&err), "internal");
    h.shut_down().await;
}

#[tokio::test]
async fn a_panicking_ledger_call_is_internal_and_the_server_keeps_answering() {
    let mut h = start_with(Some(Arc::new(Broken::Panics))).await;
    let chip = h.chip(1);
    for _ in 0..3 {
        let err = h.enrol(chip.chain.clone()).await.unwrap_err();
        assert_eq!(
            (err.code(), err.message()),
            (Code::Internal, "internal error")
        );
    }
    // Input checks run before the ledger and still answer.
    let err = h.get("xyz").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    h.shut_down().await;
}
