//! Hostile and malformed requests against the real verifier over loopback
//! gRPC. Input that cannot be appraised gets INVALID_ARGUMENT (or the
//! transport's size limit); well-formed input whose checks fail gets a
//! signed result naming the failed claim. The server keeps answering.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::sync::Arc;

use chipward_certs::keys::Ed25519Key;
use chipward_certs::pki::DevPki;
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::clock::ScenarioClock;
use chipward_device_sim::demo::{self, Services};
use chipward_device_sim::fleet::{FleetPlan, SiteLandmarks};
use chipward_device_sim::geography::Rng;
use chipward_device_sim::landmark::{self, metro_network};
use chipward_proto::cose::{self, TrustedKeys};
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{
    AppraiseRequest, ChallengeRequest, EnrolChipRequest, IssueLicenseRequest, Site, evidence,
};
use chipward_proto::license::{self, MAX_TOKEN_LEN};
use chipward_proto::nonce::evidence_nonce;
use chipward_proto::result::{self, AttestationResult, Status};
use chipward_verifier::claims::{self, code};
use chipward_verifier::location::Point;
use coset::{CoseSign1Builder, HeaderBuilder, TaggedCborSerializable, iana};
use tonic::Code;
use tonic::transport::Channel;

struct World {
    _dir: tempfile::TempDir,
    _services: Services,
    pki: DevPki,
    chip: SimChip,
    token: Vec<u8>,
    verifier: VerifierClient<Channel>,
    issuer: IssuerClient<Channel>,
}

async fn world() -> World {
    world_with(&Default::default()).await
}

/// A world whose verifier enrols `landmarks`.
async fn world_with(landmarks: &SiteLandmarks) -> World {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan::default();
    let services = demo::start_services(
        dir.path(),
        &plan,
        &[],
        landmarks,
        &Arc::new(ScenarioClock::wall()),
    )
    .await
    .unwrap();
    let pki = DevPki::load(&dir.path().join("pki")).unwrap();
    let chip = SimChip::manufacture(&pki.chip_ca, &plan.model, 1, &plan.firmware).unwrap();

    let mut issuer = IssuerClient::new(services.issuer_as("admin").await.unwrap());
    let verifier = VerifierClient::new(services.verifier_as("operator").await.unwrap());
    issuer
        .enrol_chip(EnrolChipRequest {
            cert_chain: chip.enrolment_chain.clone(),
        })
        .await
        .unwrap();
    let token = issue(&mut issuer, &chip).await;
    World {
        _dir: dir,
        _services: services,
        pki,
        chip,
        token,
        verifier,
        issuer,
    }
}

async fn issue(issuer: &mut IssuerClient<Channel>, chip: &SimChip) -> Vec<u8> {
    let request = IssueLicenseRequest {
        chip_id: chip.chip_id.to_hex(),
        tenant: "acme-ai".into(),
        site: Some(Site {
            id: "fra-1".into(),
            latitude: 50.11,
            longitude: 8.68,
            radius_km: 50.0,
        }),
        not_before: 0,
        lifetime_seconds: 0,
        entitlements: vec!["inference".into()],
        eccn: "3A090.a".into(),
        tenant_party: None,
        end_user: None,
    };
    issuer
        .issue_license(request)
        .await
        .unwrap()
        .into_inner()
        .license
        .unwrap()
        .token
}

impl World {
    /// A request that passes every check.
    async fn good_request(&mut self) -> AppraiseRequest {
        let challenge = self
            .verifier
            .challenge(ChallengeRequest {})
            .await
            .unwrap()
            .into_inner()
            .challenge;
        AppraiseRequest {
            evidence: Some(self.chip.attest(&challenge, "acme-ai", "fra-1").unwrap()),
            challenge,
            license_token: self.token.clone(),
            tenant: "acme-ai".into(),
            site_id: "fra-1".into(),
            host: None,
            landmark_records: Vec::new(),
        }
    }

    async fn appraise(
        &mut self,
        request: AppraiseRequest,
    ) -> Result<AttestationResult, tonic::Status> {
        let signed = self.verifier.appraise(request).await?.into_inner().result;
        let key = &self.pki.verifier_result_key;
        let keys = TrustedKeys::new().with(key.key_id(), key.public_key());
        Ok(result::verify(&signed, &keys).unwrap().result().clone())
    }

    async fn expect_code(&mut self, request: AppraiseRequest, want: Code, what: &str) {
        let got = self.appraise(request).await.map(|r| r.verdict);
        assert_eq!(
            got.as_ref().map_err(tonic::Status::code),
            Err(want),
            "{what}: {got:?}"
        );
        // The server still answers a good request afterwards.
        let good = self.good_request().await;
        assert_eq!(
            self.appraise(good).await.unwrap().verdict,
            Status::Pass,
            "after {what}"
        );
    }
}

fn transcript_mut(request: &mut AppraiseRequest) -> &mut chipward_proto::grpc::SpdmEvidence {
    match request.evidence.as_mut().and_then(|e| e.kind.as_mut()) {
        Some(evidence::Kind::Spdm(spdm)) => spdm,
        None => panic!("request has no evidence"),
    }
}

fn failed(r: &AttestationResult) -> Vec<(&str, &str)> {
    r.claims
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| (c.claim.as_str(), c.code.as_str()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_invalid_argument_and_the_server_survives() {
    let mut w = world().await;

    let mut r = w.good_request().await;
    let spdm = transcript_mut(&mut r);
    spdm.transcript.truncate(spdm.transcript.len() / 2);
    w.expect_code(r, Code::InvalidArgument, "truncated report")
        .await;

    let mut r = w.good_request().await;
    transcript_mut(&mut r).transcript = b"\x11\xe0garbage that is no spdm transcript".to_vec();
    w.expect_code(r, Code::InvalidArgument, "garbage report")
        .await;

    let mut r = w.good_request().await;
    r.license_token = b"not a cose structure".to_vec();
    w.expect_code(r, Code::InvalidArgument, "garbage token")
        .await;

    let mut r = w.good_request().await;
    r.license_token.truncate(r.license_token.len() - 20);
    w.expect_code(r, Code::InvalidArgument, "truncated token")
        .await;

    let mut r = w.good_request().await;
    r.license_token = vec![0xd2; MAX_TOKEN_LEN + 1];
    w.expect_code(r, Code::InvalidArgument, "oversized token")
        .await;

    let mut r = w.good_request().await;
    transcript_mut(&mut r).cert_chain[0] = b"\x30\x03\x02\x01\x00".to_vec();
    w.expect_code(r, Code::InvalidArgument, "garbage leaf certificate")
        .await;

    let mut r = w.good_request().await;
    let leaf = transcript_mut(&mut r).cert_chain[0].clone();
    transcript_mut(&mut r).cert_chain = vec![leaf; 50];
    w.expect_code(r, Code::InvalidArgument, "50-deep chain")
        .await;

    let mut r = w.good_request().await;
    r.challenge.truncate(32);
    w.expect_code(r, Code::InvalidArgument, "challenge of the wrong length")
        .await;

    let mut r = w.good_request().await;
    r.evidence = None;
    w.expect_code(r, Code::InvalidArgument, "no evidence").await;

    let mut r = w.good_request().await;
    r.tenant = "t".repeat(1000);
    w.expect_code(r, Code::InvalidArgument, "over-long tenant")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_messages_are_refused_by_the_transport() {
    let mut w = world().await;
    let mut r = w.good_request().await;
    transcript_mut(&mut r).transcript = vec![0u8; 2 * 1024 * 1024];
    let got = w.appraise(r).await.map(|r| r.verdict);
    let code = got
        .as_ref()
        .map_err(tonic::Status::code)
        .expect_err("2 MiB message accepted");
    assert!(
        matches!(code, Code::OutOfRange | Code::ResourceExhausted),
        "{got:?}"
    );
    let good = w.good_request().await;
    assert_eq!(w.appraise(good).await.unwrap().verdict, Status::Pass);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_fail_the_license_signature_claim() {
    let mut w = world().await;
    let payload = cose::peek_payload(&w.token, MAX_TOKEN_LEN).unwrap();

    // The same claims signed by a key the issuer never had, under its key id.
    let stranger = Ed25519Key::generate().unwrap();
    let key_id = w.pki.issuer_token_key.key_id();
    let mut r = w.good_request().await;
    r.license_token = cose::seal(payload.clone(), &key_id, |m| stranger.sign(m));
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::LICENSE_SIGNATURE, code::LICENSE_SIGNATURE)]
    );
    assert_eq!(result.verdict, Status::Fail);

    // Signed by the real issuer key, but the header names ES256.
    let protected = HeaderBuilder::new()
        .algorithm(iana::Algorithm::ES256)
        .key_id(key_id.into_bytes())
        .build();
    let issuer_key = &w.pki.issuer_token_key;
    let es256 = CoseSign1Builder::new()
        .protected(protected)
        .payload(payload)
        .create_signature(b"", |m| issuer_key.sign(m))
        .build()
        .to_tagged_vec()
        .unwrap();
    let mut r = w.good_request().await;
    r.license_token = es256;
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::LICENSE_SIGNATURE, code::LICENSE_SIGNATURE)]
    );
    assert!(
        result
            .claim(claims::LICENSE_SIGNATURE)
            .unwrap()
            .reason
            .contains("ES256"),
        "{result:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_swapped_after_signing_and_forged_challenges_fail_freshness() {
    let mut w = world().await;

    // Evidence bound to fra-1, request claims dub-1.
    let mut r = w.good_request().await;
    r.site_id = "dub-1".into();
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::EVIDENCE_FRESHNESS, code::NONCE_MISMATCH)]
    );

    // Evidence bound to acme-ai, request claims another tenant.
    let mut r = w.good_request().await;
    r.tenant = "borealis-labs".into();
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::EVIDENCE_FRESHNESS, code::NONCE_MISMATCH)]
    );

    // A challenge whose MAC was altered, with evidence made for it.
    let mut challenge = w
        .verifier
        .challenge(ChallengeRequest {})
        .await
        .unwrap()
        .into_inner()
        .challenge;
    let last = challenge.len() - 1;
    challenge[last] ^= 1;
    let r = AppraiseRequest {
        evidence: Some(w.chip.attest(&challenge, "acme-ai", "fra-1").unwrap()),
        challenge,
        license_token: w.token.clone(),
        tenant: "acme-ai".into(),
        site_id: "fra-1".into(),
        host: None,
        landmark_records: Vec::new(),
    };
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::EVIDENCE_FRESHNESS, code::CHALLENGE_FORGED)]
    );

    // The same good request twice: the second is a replay.
    let r = w.good_request().await;
    assert_eq!(w.appraise(r.clone()).await.unwrap().verdict, Status::Pass);
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::EVIDENCE_FRESHNESS, code::REPLAY)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_license_for_another_chip_fails_identity_binding() {
    let mut w = world().await;
    let other = SimChip::manufacture(&w.pki.chip_ca, "CW-100", 2, "1.4.2").unwrap();
    w.issuer
        .enrol_chip(EnrolChipRequest {
            cert_chain: other.enrolment_chain.clone(),
        })
        .await
        .unwrap();
    let other_token = issue(&mut w.issuer, &other).await;
    assert_eq!(
        license::decode_unverified(&other_token).unwrap().chip_id,
        other.chip_id
    );

    let mut r = w.good_request().await;
    r.license_token = other_token;
    let result = w.appraise(r).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::IDENTITY_BINDING, code::IDENTITY_MISMATCH)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_evidence_cannot_spend_a_challenge_the_chip_still_needs() {
    let mut w = world().await;
    let clone = SimChip::clone_of(&w.chip).unwrap();

    // An observer who saw the challenge answers first, with the chip's
    // certificates but a key of its own.
    let challenge = w
        .verifier
        .challenge(ChallengeRequest {})
        .await
        .unwrap()
        .into_inner()
        .challenge;
    let forged = AppraiseRequest {
        evidence: Some(clone.attest(&challenge, "acme-ai", "fra-1").unwrap()),
        challenge: challenge.clone(),
        license_token: w.token.clone(),
        tenant: "acme-ai".into(),
        site_id: "fra-1".into(),
        host: None,
        landmark_records: Vec::new(),
    };
    let result = w.appraise(forged).await.unwrap();
    assert_eq!(
        failed(&result),
        vec![(claims::EVIDENCE_SIGNATURE, code::EVIDENCE_SIGNATURE)]
    );

    // The genuine chip's answer to the same challenge still passes, once.
    let genuine = AppraiseRequest {
        evidence: Some(w.chip.attest(&challenge, "acme-ai", "fra-1").unwrap()),
        challenge,
        license_token: w.token.clone(),
        tenant: "acme-ai".into(),
        site_id: "fra-1".into(),
        host: None,
        landmark_records: Vec::new(),
    };
    assert_eq!(
        w.appraise(genuine.clone()).await.unwrap().verdict,
        Status::Pass
    );
    let again = w.appraise(genuine).await.unwrap();
    assert_eq!(
        failed(&again),
        vec![(claims::EVIDENCE_FRESHNESS, code::REPLAY)]
    );
}

/// Makes one landmark record for a request.
type MakeRecord<'a> = Box<dyn Fn(&World, &AppraiseRequest, &mut Rng) -> Vec<u8> + 'a>;

/// Location records over the wire: only genuine records from enrolled
/// landmarks for this very appraisal count; anything else fails the
/// location claim with `CW-LOC-RECORD`, never passes, and too many records
/// are refused outright.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_landmark_records_fail_the_location_claim() {
    let sites = demo::site_landmarks().unwrap();
    let mut w = world_with(&sites).await;
    let fra = &sites["fra-1"];
    let here = Point::new(50.11, 8.68).unwrap();
    let network = metro_network();
    let mut rng = Rng::new(7);
    let now_ms = || chipward_verifier::service::system_clock()();
    let measure = |w: &World, l: &landmark::SimLandmark, r: &AppraiseRequest, rng: &mut Rng| {
        let binding = evidence_nonce(&r.challenge, &r.tenant, &r.site_id);
        l.measure(&w.chip, &here, None, &binding, &network, rng, now_ms())
            .unwrap()
    };
    let location = |r: &AttestationResult| {
        let c = r.claim(claims::LOCATION).unwrap();
        (c.status, c.code.clone())
    };

    // Genuine records from the three Frankfurt landmarks certify the chip.
    let mut good = w.good_request().await;
    good.landmark_records = fra
        .iter()
        .map(|l| measure(&w, l, &good, &mut rng))
        .collect();
    let first = good.clone();
    let r = w.appraise(good).await.unwrap();
    assert_eq!(location(&r), (Status::Pass, "ok".to_owned()), "{r:?}");
    assert_eq!(r.verdict, Status::Pass);

    // Each bad record, beside two genuine ones.
    let stranger = landmark::ring("fra-1", &here, 5.0).unwrap().remove(0);
    let mut cases: Vec<(&str, MakeRecord<'_>)> = vec![
        ("garbage", Box::new(|_, _, _| b"not a record".to_vec())),
        ("empty", Box::new(|_, _, _| Vec::new())),
        (
            "unenrolled landmark with an enrolled id and position",
            Box::new(|w, r, rng| measure(w, &stranger, r, rng)),
        ),
        (
            "record from an earlier appraisal",
            Box::new(|_, _, _| first.landmark_records[0].clone()),
        ),
        (
            "flipped byte",
            Box::new(|w, r, rng| {
                let mut bytes = measure(w, &fra[0], r, rng);
                let at = bytes.len() / 2;
                bytes[at] ^= 0x40;
                bytes
            }),
        ),
    ];
    for (what, make) in cases.drain(..) {
        let mut r = w.good_request().await;
        let bad = make(&w, &r, &mut rng);
        r.landmark_records = vec![measure(&w, &fra[1], &r, &mut rng), bad];
        r.landmark_records.push(measure(&w, &fra[2], &r, &mut rng));
        let got = w.appraise(r).await.unwrap();
        assert_eq!(
            location(&got),
            (Status::Fail, code::LOCATION_RECORD.to_owned()),
            "{what}: {got:?}"
        );
        assert_ne!(got.verdict, Status::Pass, "{what}");
    }

    // More records than an appraisal takes: refused before any check.
    let mut r = w.good_request().await;
    r.landmark_records = vec![b"x".to_vec(); 65];
    w.expect_code(r, Code::InvalidArgument, "65 records").await;
}
