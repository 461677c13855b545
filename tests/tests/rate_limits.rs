//! The verifier's rate limits over real gRPC on loopback sockets, with
//! simulated chips producing genuine evidence. The limits read a monotonic
//! clock the tests move by hand; two operators connect with certificates
//! of their own, so each has a budget of
//! its own. Expected messages and waits are worked out here from the
//! configured rates and the clock.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::sync::Arc;
use std::time::Duration;

use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::Ed25519Key;
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::{Grant, create_local_deployment};
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::fleet::FleetPlan;
use chipward_proto::TokenId;
use chipward_proto::access::Role;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{AppraiseRequest, ChallengeRequest, evidence};
use chipward_proto::license::{LicenseClaims, SiteClaim};
use chipward_proto::rate_limit::{ManualMonotonic, Rate};
use chipward_proto::result::{self, AttestationResult, Status as Verdict};
use chipward_proto::tls::{TlsFiles, connect_as};
use chipward_verifier::appraisal::{AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::claims::{self, code};
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::rate_limits::{Limit, RateLimitSettings, VerifierRateLimits};
use chipward_verifier::revocation::RevocationCache;
use chipward_verifier::service::{self, VerifierService};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::transport::Channel;
use tonic::{Code, Status};

const TENANT: &str = "acme-ai";
const SITE: &str = "fra-1";
const MINUTE: Duration = Duration::from_secs(60);

struct Verifier {
    _dir: tempfile::TempDir,
    pki: DevPki,
    plan: FleetPlan,
    /// The rate limits' clock.
    ticks: Arc<ManualMonotonic>,
    /// An operator of [`TENANT`].
    one: VerifierClient<Channel>,
    /// Another operator of [`TENANT`].
    two: VerifierClient<Channel>,
    _stop: oneshot::Sender<()>,
}

/// A chip and a license token naming it.
struct Licensed {
    chip: SimChip,
    token: Vec<u8>,
}

/// The default limits with `changes` applied.
fn limits(changes: &[(Limit, u32, Duration)]) -> RateLimitSettings {
    changes
        .iter()
        .fold(RateLimitSettings::default(), |s, &(limit, burst, every)| {
            s.with_rate(limit, Rate::new(burst, every).unwrap())
        })
}

fn now_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.unwrap().as_millis()).unwrap()
}

async fn start(limits: RateLimitSettings) -> Verifier {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan::default();
    let pki = DevPki::create(&dir.path().join("pki"), &plan.model).unwrap();
    let issuer = &pki.issuer_token_key;
    let issuer_keys = TrustedKeys::new().with(issuer.key_id(), issuer.public_key());
    let result_key = Ed25519Key::from_pkcs8_der(pki.verifier_result_key.pkcs8_der()).unwrap();
    let appraiser = Appraiser::new(
        AppraisalSettings::default(),
        Roots::new(&[pki.root_cert_der().to_vec()], ChainPolicy::default()).unwrap(),
        ReferenceValues::default(),
        issuer_keys,
        Challenges::new(NonceKey::generate(), 60_000),
        Arc::new(RevocationCache::new(30_000)),
        result_key,
    );

    let ticks = Arc::new(ManualMonotonic::new());
    let service = VerifierService::new(Arc::new(appraiser), Arc::new(now_ms))
        .with_rate_limits(VerifierRateLimits::new(&limits, ticks.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let tls = dir.path().join("tls");
    let ca = create_local_deployment(&tls, &[TENANT, "other-tenant"]).unwrap();
    let operator = Grant {
        tenants: vec![TENANT.into()],
        ..Grant::role(Role::Operator)
    };
    ca.issue_client("operator-2", &operator).unwrap();
    let server_tls = TlsFiles::in_dir(&tls, "verifier").load().unwrap().server();
    tokio::spawn(service::serve(
        service,
        listener,
        server_tls,
        1 << 20,
        async {
            let _ = stopped.await;
        },
    ));
    let url = format!("https://{addr}");
    let from = |name: &'static str| {
        let (tls, url) = (tls.clone(), url.clone());
        async move { VerifierClient::new(connect_as(&tls, name, &url).await.unwrap()) }
    };
    Verifier {
        one: from("operator").await,
        two: from("operator-2").await,
        _dir: dir,
        pki,
        plan,
        ticks,
        _stop: stop,
    }
}

impl Verifier {
    /// A chip with a license for [`TENANT`] at [`SITE`], signed by the
    /// issuer key the verifier trusts.
    fn licensed(&self, serial: u64) -> Licensed {
        let chip = SimChip::manufacture(
            &self.pki.chip_ca,
            &self.plan.model,
            serial,
            &self.plan.firmware,
        )
        .unwrap();
        let now = now_ms() / 1000;
        let mut token_id = [0u8; 16];
        token_id[..8].copy_from_slice(&serial.to_be_bytes());
        let claims = LicenseClaims {
            issuer: "chipward-issuer".into(),
            chip_id: chip.chip_id,
            audience: "chipward-verifier".into(),
            issued_at: now,
            not_before: now,
            expires_at: now + 3_600,
            token_id: TokenId(token_id),
            tenant: TENANT.into(),
            site: SiteClaim {
                id: SITE.into(),
                latitude: 50.11,
                longitude: 8.68,
                radius_km: 50.0,
            },
            entitlements: vec!["inference".into()],
            eccn: "3A090.a".into(),
        };
        let key = &self.pki.issuer_token_key;
        let token = claims.sign(&key.key_id(), |m| key.sign(m));
        Licensed { chip, token }
    }

    fn result_keys(&self) -> TrustedKeys {
        let key = &self.pki.verifier_result_key;
        TrustedKeys::new().with(key.key_id(), key.public_key())
    }
}

async fn challenge(client: &mut VerifierClient<Channel>) -> Result<Vec<u8>, Status> {
    let answer = client.challenge(ChallengeRequest {}).await?;
    Ok(answer.into_inner().challenge)
}

/// `chip`'s genuine evidence for a fresh challenge from `client`.
async fn request(client: &mut VerifierClient<Channel>, chip: &Licensed) -> AppraiseRequest {
    let challenge = challenge(client).await.unwrap();
    AppraiseRequest {
        evidence: Some(chip.chip.attest(&challenge, TENANT, SITE).unwrap()),
        challenge,
        license_token: chip.token.clone(),
        tenant: TENANT.into(),
        site_id: SITE.into(),
        host: None,
        landmark_records: Vec::new(),
    }
}

impl Verifier {
    /// Appraises `req` from client one; the verified result.
    async fn appraise(&mut self, req: AppraiseRequest) -> Result<AttestationResult, Status> {
        let signed = self.one.appraise(req).await?.into_inner().result;
        Ok(result::verify(&signed, &self.result_keys())
            .unwrap()
            .result()
            .clone())
    }
}

/// The status and code of the freshness claim.
fn freshness(r: &AttestationResult) -> (Verdict, String) {
    let claim = r.claim(claims::EVIDENCE_FRESHNESS).unwrap();
    (claim.status, claim.code.clone())
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
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(status.message(), message);
    let secs = wait.as_millis().div_ceil(1000).to_string();
    assert_eq!(metadata(&status, "retry-after"), secs);
    assert_eq!(
        metadata(&status, "retry-after-ms"),
        wait.as_millis().to_string()
    );
}

fn transcript_mut(request: &mut AppraiseRequest) -> &mut Vec<u8> {
    match request.evidence.as_mut().and_then(|e| e.kind.as_mut()) {
        Some(evidence::Kind::Spdm(spdm)) => &mut spdm.transcript,
        None => panic!("request has no evidence"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appraise_is_limited_per_chip_and_other_chips_are_still_served() {
    let mut v = start(limits(&[(Limit::AppraisePerChip, 2, MINUTE)])).await;
    let (a, b) = (v.licensed(1), v.licensed(2));

    for _ in 0..2 {
        let req = request(&mut v.one, &a).await;
        let r = v.appraise(req).await.unwrap();
        assert_eq!(freshness(&r).0, Verdict::Pass);
    }
    let refused = request(&mut v.one, &a).await;
    limited(
        v.appraise(refused.clone()).await,
        "rate limit appraise_per_chip reached (burst 2, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );

    // Another chip has its own budget.
    let req = request(&mut v.one, &b).await;
    assert_eq!(freshness(&v.appraise(req).await.unwrap()).0, Verdict::Pass);

    // The refusal left its challenge unused: once the minute is over, the
    // very same evidence is appraised as fresh.
    v.ticks.advance(MINUTE - Duration::from_millis(1));
    limited(
        v.appraise(refused.clone()).await,
        "rate limit appraise_per_chip reached (burst 2, then one request every 60 s); \
         retry in 1 ms",
        Duration::from_millis(1),
    );
    v.ticks.advance(Duration::from_millis(1));
    let r = v.appraise(refused).await.unwrap();
    assert_eq!(freshness(&r).0, Verdict::Pass);
    assert_eq!(r.chip_id, a.chip.chip_id.to_hex());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_replays_do_not_spend_a_chips_budget() {
    let mut v = start(limits(&[(Limit::AppraisePerChip, 2, MINUTE)])).await;
    let a = v.licensed(1);
    let stranger = v.licensed(2);

    for _ in 0..3 {
        // A forged signature over chip a's chain.
        let mut forged = request(&mut v.one, &a).await;
        let last = transcript_mut(&mut forged).len() - 1;
        transcript_mut(&mut forged)[last] ^= 1;
        let r = v.appraise(forged).await.unwrap();
        let signature = r.claim(claims::EVIDENCE_SIGNATURE).unwrap();
        assert_eq!(signature.code, code::EVIDENCE_SIGNATURE);
        assert_eq!(r.chip_id, a.chip.chip_id.to_hex());

        // Chip a's genuine evidence, sent with a forged challenge.
        let mut wrong_challenge = request(&mut v.one, &a).await;
        wrong_challenge.challenge[20] ^= 1;
        let r = v.appraise(wrong_challenge).await.unwrap();
        assert_eq!(freshness(&r).0, Verdict::Fail);

        // Chip a's genuine evidence, claimed for another tenant.
        let mut other_tenant = request(&mut v.one, &a).await;
        other_tenant.tenant = "other-tenant".into();
        let r = v.appraise(other_tenant).await.unwrap();
        assert_eq!(freshness(&r), (Verdict::Fail, code::NONCE_MISMATCH.into()));

        // Another chip's signed transcript under chip a's chain.
        let mut swapped = request(&mut v.one, &a).await;
        let mut theirs = request(&mut v.one, &stranger).await;
        *transcript_mut(&mut swapped) = std::mem::take(transcript_mut(&mut theirs));
        let r = v.appraise(swapped).await.unwrap();
        assert_eq!(freshness(&r).0, Verdict::Fail);

        // Malformed evidence.
        let mut malformed = request(&mut v.one, &a).await;
        transcript_mut(&mut malformed).truncate(10);
        let err = v.appraise(malformed).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
    }

    // One genuine appraisal, then its replays: they fail freshness and
    // spend nothing.
    let genuine = request(&mut v.one, &a).await;
    assert_eq!(
        freshness(&v.appraise(genuine.clone()).await.unwrap()).0,
        Verdict::Pass
    );
    for _ in 0..3 {
        let r = v.appraise(genuine.clone()).await.unwrap();
        assert_eq!(freshness(&r), (Verdict::Fail, code::REPLAY.into()));
    }

    // So the second of the burst is still there, and the third is not.
    let req = request(&mut v.one, &a).await;
    assert_eq!(freshness(&v.appraise(req).await.unwrap()).0, Verdict::Pass);
    let req = request(&mut v.one, &a).await;
    limited(
        v.appraise(req).await,
        "rate limit appraise_per_chip reached (burst 2, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_limited_per_client_and_other_clients_are_still_served() {
    let mut v = start(limits(&[(Limit::ChallengePerClient, 3, MINUTE)])).await;
    for _ in 0..3 {
        challenge(&mut v.one).await.unwrap();
    }
    limited(
        challenge(&mut v.one).await,
        "rate limit challenge_per_client reached (burst 3, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );
    challenge(&mut v.two).await.unwrap();
    v.ticks.advance(Duration::from_secs(20));
    limited(
        challenge(&mut v.one).await,
        "rate limit challenge_per_client reached (burst 3, then one request every 60 s); \
         retry in 40 s",
        Duration::from_secs(40),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appraisals_are_limited_per_client_garbage_included() {
    let mut v = start(limits(&[(Limit::AppraisePerClient, 2, MINUTE)])).await;
    let (a, b) = (v.licensed(1), v.licensed(2));

    let empty = v.appraise(AppraiseRequest::default()).await;
    assert_eq!(empty.unwrap_err().code(), Code::InvalidArgument);
    let req = request(&mut v.one, &a).await;
    v.appraise(req).await.unwrap();
    let req = request(&mut v.one, &b).await;
    limited(
        v.appraise(req.clone()).await,
        "rate limit appraise_per_client reached (burst 2, then one request every 60 s); \
         retry in 60 s",
        MINUTE,
    );

    // Another client is still served, with the same request.
    let signed = v.two.appraise(req).await.unwrap().into_inner().result;
    let r = result::verify(&signed, &v.result_keys()).unwrap();
    assert_eq!(freshness(r.result()).0, Verdict::Pass);
}
