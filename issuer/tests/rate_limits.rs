//! The issuer's rate limits over real gRPC on loopback sockets: small
//! budgets, a monotonic clock the tests move by hand, and clients with
//! certificates of their own (two vendor administrators, two operators and
//! one that sets chips up), so each has a budget of its own. Host enrolment runs against a real TPM
//! (swtpm). Expected messages and waits are worked out here from the
//! configured rates and the clock.

#![cfg(test)]

use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::TrustAnchor;
use chipward_certs::keys::{Ed25519Key, P384Key, spki_sha256};
use chipward_certs::pem;
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::{Grant, create_local_deployment};
use chipward_device_sim::tpm::{AkPublic, HostTpm};
use chipward_issuer::ledger::{Ledger, SqliteLedger};
use chipward_issuer::rate_limits::{Limit, RateLimitSettings};
use chipward_issuer::{Clock, IssuerService, IssuerSettings, ManualClock, SystemClock, serve};
use chipward_proto::access::Role;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    BeginHostEnrolmentRequest, BeginHostEnrolmentResponse, CompleteHostEnrolmentRequest,
    EnrolChipRequest, IssueLicenseRequest, License, RenewLicenseRequest, Site,
};
use chipward_proto::rate_limit::{ManualMonotonic, Rate};
use chipward_proto::result::{AttestationResult, ClaimResult, Status as Verdict};
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_tests::swtpm::{self, Swtpm};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Code, Status};

const MODEL: &str = "CW-100";
const MINUTE: Duration = Duration::from_secs(60);
/// Upper bound for any single call in these tests; a hang fails instead.
const CALL_LIMIT: Duration = Duration::from_secs(20);

struct Issuer {
    _dir: tempfile::TempDir,
    pki: DevPki,
    clock: Arc<ManualClock>,
    /// The rate limits' clock.
    ticks: Arc<ManualMonotonic>,
    /// A vendor administrator.
    one: IssuerClient<Channel>,
    /// Another vendor administrator.
    two: IssuerClient<Channel>,
    /// An operator of `acme-ai`.
    op_one: IssuerClient<Channel>,
    /// Another operator of `acme-ai`.
    op_two: IssuerClient<Channel>,
    /// The administrator that sets chips up, whose budget no test watches.
    setup: IssuerClient<Channel>,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<Result<(), chipward_issuer::ServeError>>,
}

/// A chip's enrolment chain and id.
struct Chip {
    id_hex: String,
    chain: Vec<Vec<u8>>,
}

/// The default limits with `changes` applied.
fn limits(changes: &[(Limit, u32, Duration)]) -> RateLimitSettings {
    changes
        .iter()
        .fold(RateLimitSettings::default(), |s, &(limit, burst, every)| {
            s.with_rate(limit, Rate::new(burst, every).unwrap())
        })
}

async fn start(limits: RateLimitSettings, tpm_roots: Vec<TrustAnchor>) -> Issuer {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("chipward_issuer=debug")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap();
    let pki = DevPki::create(&dir.path().join("pki"), MODEL).unwrap();
    let ledger = Arc::new(SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap());
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let ticks = Arc::new(ManualMonotonic::new());
    let settings = IssuerSettings {
        rate_limits: limits,
        ..IssuerSettings::default()
    };
    let service = IssuerService::from_dev_pki(
        settings,
        &pki,
        ledger as Arc<dyn Ledger>,
        Arc::clone(&clock) as Arc<dyn Clock>,
    )
    .unwrap()
    .with_tpm_roots(tpm_roots)
    .with_rate_limit_clock(ticks.clone());

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let tls = dir.path().join("tls");
    let ca = create_local_deployment(&tls, &["acme-ai"]).unwrap();
    ca.issue_client("admin-2", &Grant::role(Role::VendorAdmin))
        .unwrap();
    ca.issue_client("setup", &Grant::role(Role::VendorAdmin))
        .unwrap();
    let operator = Grant {
        tenants: vec!["acme-ai".into()],
        ..Grant::role(Role::Operator)
    };
    ca.issue_client("operator-2", &operator).unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "issuer").load().unwrap().server();
    let server = tokio::spawn(serve(service, listener, server_tls, async {
        let _ = stopped.await;
    }));
    let url = format!("https://{addr}");
    let tls = dir.path().join("tls");
    let from = |name: &'static str| {
        let (tls, url) = (tls.clone(), url.clone());
        async move { IssuerClient::new(connect_as(&tls, name, &url).await.unwrap()) }
    };
    Issuer {
        one: from("admin").await,
        two: from("admin-2").await,
        op_one: from("operator").await,
        op_two: from("operator-2").await,
        setup: from("setup").await,
        _dir: dir,
        pki,
        clock,
        ticks,
        stop: Some(stop),
        server,
    }
}

impl Issuer {
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

    async fn enrol(client: &mut IssuerClient<Channel>, chain: &[Vec<u8>]) -> Result<(), Status> {
        let req = EnrolChipRequest {
            cert_chain: chain.to_vec(),
        };
        bounded(client.enrol_chip(req)).await.map(drop)
    }

    /// Enrols `chip` (as the set-up client, whose budget the tests do not
    /// watch) and licenses it.
    async fn licensed(&mut self, chip: &Chip) -> License {
        Self::enrol(&mut self.setup, &chip.chain).await.unwrap();
        let req = IssueLicenseRequest {
            chip_id: chip.id_hex.clone(),
            tenant: "acme-ai".into(),
            site: Some(Site {
                id: "fra-1".into(),
                latitude: 50.11,
                longitude: 8.68,
                radius_km: 25.0,
            }),
            entitlements: vec!["inference".into()],
            eccn: "3A090.a".into(),
            ..IssueLicenseRequest::default()
        };
        let issued = bounded(self.setup.issue_license(req)).await.unwrap();
        issued.license.unwrap()
    }

    /// A passing result for `license`, appraised now, signed by `key`.
    fn result(&self, license: &License, key: &Ed25519Key) -> Vec<u8> {
        let pass = |name: &str| ClaimResult {
            claim: name.into(),
            status: Verdict::Pass,
            code: "ok".into(),
            reason: String::new(),
        };
        let result = AttestationResult {
            appraised_at: self.clock.now(),
            chip_id: license.chip_id.clone(),
            model: format!("{MODEL} Provisioner CA"),
            tenant: license.tenant.clone(),
            site_id: "fra-1".into(),
            token_id: license.token_id.clone(),
            evidence_sha256: "ab".repeat(32),
            measurements: vec![],
            claims: vec![pass("identity"), pass("firmware"), pass("license")],
            verdict: Verdict::Pass,
            location: None,
        };
        result.sign(&key.key_id(), |m| key.sign(m))
    }

    async fn renew(
        client: &mut IssuerClient<Channel>,
        license: &License,
        result: Vec<u8>,
    ) -> Result<License, Status> {
        let req = RenewLicenseRequest {
            token_id: license.token_id.clone(),
            attestation_result: result,
            lifetime_seconds: 0,
        };
        Ok(bounded(client.renew_license(req)).await?.license.unwrap())
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

fn metadata<'a>(status: &'a Status, key: &str) -> &'a str {
    status
        .metadata()
        .get(key)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Asserts that `result` is a rate-limit refusal with exactly `message`
/// and a wait of `wait`.
#[track_caller]
fn limited<T: std::fmt::Debug>(result: Result<T, Status>, message: &str, wait: Duration) {
    let status = result.unwrap_err();
    assert_eq!(
        (status.code(), metadata(&status, "chipward-code")),
        (Code::ResourceExhausted, "rate_limited"),
        "{status:?}"
    );
    assert_eq!(status.message(), message);
    let secs = wait.as_millis().div_ceil(1000).to_string();
    assert_eq!(metadata(&status, "retry-after"), secs);
    assert_eq!(
        metadata(&status, "retry-after-ms"),
        wait.as_millis().to_string()
    );
}

/// `chain` with one bit of its first certificate's signature flipped.
fn forged(chain: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut chain = chain.to_vec();
    let last = chain[0].len() - 1;
    chain[0][last] ^= 1;
    chain
}

#[tokio::test]
async fn enrol_chip_is_limited_per_chip_and_other_chips_are_still_served() {
    let mut issuer = start(limits(&[(Limit::EnrolChipPerChip, 2, MINUTE)]), vec![]).await;
    let (a, b) = (issuer.chip(1), issuer.chip(2));
    let c = &mut issuer.one;

    // Chains that do not validate never reach the chip's budget.
    Issuer::enrol(c, &a.chain).await.unwrap();
    for _ in 0..5 {
        let err = Issuer::enrol(c, &forged(&a.chain)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }
    Issuer::enrol(c, &a.chain).await.unwrap();
    limited(
        Issuer::enrol(c, &a.chain).await,
        "rate limit enrol_chip_per_chip reached (burst 2, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );

    // Another chip has its own budget.
    Issuer::enrol(c, &b.chain).await.unwrap();

    // The wait is exact: one request comes back after one interval.
    issuer.ticks.advance(MINUTE - Duration::from_millis(1));
    limited(
        Issuer::enrol(&mut issuer.one, &a.chain).await,
        "rate limit enrol_chip_per_chip reached (burst 2, then one request every 60 s); \
         retry in 1 ms",
        Duration::from_millis(1),
    );
    issuer.ticks.advance(Duration::from_millis(1));
    Issuer::enrol(&mut issuer.one, &a.chain).await.unwrap();
    assert!(Issuer::enrol(&mut issuer.one, &a.chain).await.is_err());
    issuer.shut_down().await;
}

#[tokio::test]
async fn enrol_chip_is_limited_per_client_and_other_clients_are_still_served() {
    let mut issuer = start(
        limits(&[(Limit::EnrolChipPerClient, 3, Duration::from_secs(2))]),
        vec![],
    )
    .await;
    let chips: Vec<Chip> = (1..=4).map(|n| issuer.chip(n)).collect();

    // Every call counts for its client, garbage included.
    Issuer::enrol(&mut issuer.one, &chips[0].chain)
        .await
        .unwrap();
    let garbage = Issuer::enrol(&mut issuer.one, &[vec![0x30, 0x00]]).await;
    assert_eq!(garbage.unwrap_err().code(), Code::InvalidArgument);
    Issuer::enrol(&mut issuer.one, &chips[1].chain)
        .await
        .unwrap();
    limited(
        Issuer::enrol(&mut issuer.one, &chips[2].chain).await,
        "rate limit enrol_chip_per_client reached (burst 3, then one request every 2 s); \
         retry in 2 s",
        Duration::from_secs(2),
    );

    Issuer::enrol(&mut issuer.two, &chips[2].chain)
        .await
        .unwrap();
    issuer.ticks.advance(Duration::from_secs(2));
    Issuer::enrol(&mut issuer.one, &chips[3].chain)
        .await
        .unwrap();
    issuer.shut_down().await;
}

#[tokio::test]
async fn renewal_is_limited_per_chip_and_untrusted_results_spend_nothing() {
    let mut issuer = start(limits(&[(Limit::RenewPerChip, 1, MINUTE)]), vec![]).await;
    let (a, b) = (issuer.chip(1), issuer.chip(2));
    let (license_a, license_b) = (issuer.licensed(&a).await, issuer.licensed(&b).await);

    // Results the issuer does not trust, or about another license, are
    // refused before the chip's budget is touched.
    let stranger = Ed25519Key::generate().unwrap();
    for _ in 0..3 {
        let forged = issuer.result(&license_a, &stranger);
        let err = Issuer::renew(&mut issuer.op_one, &license_a, forged)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
        let other = issuer.result(&license_b, &issuer.pki.verifier_result_key);
        let err = Issuer::renew(&mut issuer.op_one, &license_a, other)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    }

    let good = issuer.result(&license_a, &issuer.pki.verifier_result_key);
    let renewed = Issuer::renew(&mut issuer.op_one, &license_a, good)
        .await
        .unwrap();
    let again = issuer.result(&renewed, &issuer.pki.verifier_result_key);
    limited(
        Issuer::renew(&mut issuer.op_one, &renewed, again.clone()).await,
        "rate limit renew_per_chip reached (burst 1, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );

    // Another chip is still served, and chip a once the minute is over.
    let good_b = issuer.result(&license_b, &issuer.pki.verifier_result_key);
    Issuer::renew(&mut issuer.op_one, &license_b, good_b)
        .await
        .unwrap();
    issuer.ticks.advance(MINUTE);
    Issuer::renew(&mut issuer.op_one, &renewed, again)
        .await
        .unwrap();
    issuer.shut_down().await;
}

#[tokio::test]
async fn renewal_is_limited_per_client_and_other_clients_are_still_served() {
    let mut issuer = start(limits(&[(Limit::RenewPerClient, 2, MINUTE)]), vec![]).await;
    let (a, b) = (issuer.chip(1), issuer.chip(2));
    let (license_a, license_b) = (issuer.licensed(&a).await, issuer.licensed(&b).await);
    let good_a = issuer.result(&license_a, &issuer.pki.verifier_result_key);
    Issuer::renew(&mut issuer.op_one, &license_a, good_a)
        .await
        .unwrap();
    let empty = Issuer::renew(&mut issuer.op_one, &license_b, Vec::new()).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    let good_b = issuer.result(&license_b, &issuer.pki.verifier_result_key);
    limited(
        Issuer::renew(&mut issuer.op_one, &license_b, good_b.clone()).await,
        "rate limit renew_per_client reached (burst 2, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );
    Issuer::renew(&mut issuer.op_two, &license_b, good_b)
        .await
        .unwrap();
    issuer.shut_down().await;
}

/// A host with a TPM: its swtpm and what it sends to begin enrolment.
struct Host {
    tpm: HostTpm,
    swtpm: Swtpm,
    chain: Vec<Vec<u8>>,
    ek_public: Vec<u8>,
    ak: AkPublic,
}

impl Host {
    fn start() -> Self {
        let swtpm = swtpm::start();
        let mut tpm = HostTpm::open(&swtpm.tcti()).unwrap();
        let issuing = std::fs::read_to_string(swtpm.dir.path().join("ca/issuercert.pem")).unwrap();
        let mut chain = vec![tpm.ek_certificate().unwrap()];
        chain.extend(pem::parse_certificates(&issuing).unwrap());
        let ek_public = tpm.ek_public().unwrap();
        let ak = tpm.create_ak().unwrap();
        Self {
            tpm,
            swtpm,
            chain,
            ek_public,
            ak,
        }
    }

    /// The TPM manufacturer root the issuer trusts for this host.
    fn root(&self) -> TrustAnchor {
        let path = self
            .swtpm
            .dir
            .path()
            .join("ca/swtpm-localca-rootca-cert.pem");
        let root = pem::parse_certificates(&std::fs::read_to_string(path).unwrap()).unwrap();
        TrustAnchor::from_der(&root[0]).unwrap()
    }

    fn begin_request(&self) -> BeginHostEnrolmentRequest {
        BeginHostEnrolmentRequest {
            ek_cert_chain: self.chain.clone(),
            ek_public: self.ek_public.clone(),
            ak_public: self.ak.public.clone(),
        }
    }

    async fn begin(
        &self,
        client: &mut IssuerClient<Channel>,
    ) -> Result<BeginHostEnrolmentResponse, Status> {
        bounded(client.begin_host_enrolment(self.begin_request())).await
    }

    /// Completes `begun` with what the TPM recovers, or with `credential`.
    async fn complete(
        &mut self,
        client: &mut IssuerClient<Channel>,
        begun: &BeginHostEnrolmentResponse,
        credential: Option<Vec<u8>>,
    ) -> Result<(), Status> {
        let credential = credential.unwrap_or_else(|| {
            self.tpm
                .activate_credential(&begun.credential_blob, &begun.secret)
                .unwrap()
        });
        let req = CompleteHostEnrolmentRequest {
            enrolment_id: begun.enrolment_id.clone(),
            credential,
        };
        bounded(client.complete_host_enrolment(req)).await.map(drop)
    }
}

#[tokio::test]
async fn host_enrolment_is_limited_per_host_and_only_proven_steps_count() {
    let (mut host, mut other) = (Host::start(), Host::start());
    let limits = limits(&[(Limit::HostEnrolmentPerHost, 4, MINUTE)]);
    let mut issuer = start(limits, vec![host.root(), other.root()]).await;
    let c = &mut issuer.one;

    // Begun and completed: two of the four.
    let begun = host.begin(c).await.unwrap();
    host.complete(c, &begun, None).await.unwrap();
    // Begun (three), then completed with a wrong credential, which spends
    // nothing.
    let begun = host.begin(c).await.unwrap();
    let wrong = host.complete(c, &begun, Some(vec![7; 32])).await;
    assert_eq!(wrong.unwrap_err().code(), Code::PermissionDenied);

    // An EK chain that does not validate spends nothing either.
    let mut bad = host.begin_request();
    bad.ek_cert_chain[0][100] ^= 1;
    for _ in 0..3 {
        let err = bounded(c.begin_host_enrolment(bad.clone()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    }

    // Begun (four); then the host waits.
    let begun = host.begin(c).await.unwrap();
    let message = "rate limit host_enrolment_per_host reached \
                   (burst 4, then one request every 60 s); retry in 60 s";
    limited(host.begin(c).await, message, MINUTE);
    // Completing spends from the same budget, so it waits as well.
    limited(host.complete(c, &begun, None).await, message, MINUTE);

    // Another host is still served.
    let begun_other = other.begin(c).await.unwrap();
    other.complete(c, &begun_other, None).await.unwrap();

    // After one interval the host begins and, after another, completes.
    issuer.ticks.advance(MINUTE);
    let begun = host.begin(&mut issuer.one).await.unwrap();
    issuer.ticks.advance(MINUTE);
    host.complete(&mut issuer.one, &begun, None).await.unwrap();
    issuer.shut_down().await;
}

#[tokio::test]
async fn host_enrolment_is_limited_per_client_and_other_clients_are_still_served() {
    let mut host = Host::start();
    let limits = limits(&[(Limit::HostEnrolmentPerClient, 3, MINUTE)]);
    let mut issuer = start(limits, vec![host.root()]).await;

    let begun = host.begin(&mut issuer.one).await.unwrap();
    host.complete(&mut issuer.one, &begun, None).await.unwrap();
    let garbage = CompleteHostEnrolmentRequest {
        enrolment_id: "zz".into(),
        credential: vec![1],
    };
    let err = bounded(issuer.one.complete_host_enrolment(garbage))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    limited(
        host.begin(&mut issuer.one).await,
        "rate limit host_enrolment_per_client reached (burst 3, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );

    let begun = host.begin(&mut issuer.two).await.unwrap();
    host.complete(&mut issuer.two, &begun, None).await.unwrap();
    issuer.shut_down().await;
}
