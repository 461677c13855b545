//! The operations surface of the real issuer and verifier over loopback:
//! gRPC health checking, server reflection (v1 and v1alpha) and the
//! Prometheus metrics endpoints. Metric values are checked against what the
//! test itself did and against what the servers answered over gRPC.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use chipward_certs::pki::DevPki;
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::clock::ScenarioClock;
use chipward_device_sim::demo::{self, Services};
use chipward_device_sim::fleet::{FleetPlan, UNLICENSED_TENANT};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{
    AppraiseRequest, ChallengeRequest, EnrolChipRequest, GetTreeHeadRequest, IssueLicenseRequest,
    RevokeLicenseRequest, Site,
};
use chipward_proto::result::{self, AttestationResult, Status};
use chipward_proto::tls::{DEFAULT_SERVER_NAME, TlsFiles};
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::{v1, v1alpha};

const ISSUER_SERVICES: [&str; 3] = [
    "chipward.v1.Issuer",
    "chipward.v1.AuditLog",
    "chipward.v1.Compliance",
];
const VERIFIER_SERVICES: [&str; 1] = ["chipward.v1.Verifier"];
/// Served beside the Chipward services on both servers.
const STANDARD_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];

struct World {
    _dir: tempfile::TempDir,
    services: Services,
    pki: DevPki,
    chip: SimChip,
    issuer: IssuerClient<Channel>,
    verifier: VerifierClient<Channel>,
}

async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan::default();
    let services = demo::start_services(
        dir.path(),
        &plan,
        &[],
        &Default::default(),
        &Arc::new(ScenarioClock::wall()),
    )
    .await
    .unwrap();
    let pki = DevPki::load(&dir.path().join("pki")).unwrap();
    let chip = SimChip::manufacture(&pki.chip_ca, &plan.model, 1, &plan.firmware).unwrap();
    let issuer = IssuerClient::new(services.issuer_as("admin").await.unwrap());
    let verifier = VerifierClient::new(services.verifier_as("operator").await.unwrap());
    World {
        _dir: dir,
        services,
        pki,
        chip,
        issuer,
        verifier,
    }
}

/// A channel to `addr` as the auditor of the TLS folder `tls`: health and
/// reflection need only a valid certificate, whatever its role.
async fn channel(tls: &Path, addr: SocketAddr) -> Channel {
    let config = TlsFiles::in_dir(tls, "auditor")
        .load()
        .unwrap()
        .client(DEFAULT_SERVER_NAME);
    chipward_proto::tls::connect(&format!("https://{addr}"), &config)
        .await
        .unwrap()
}

fn license_request(chip_id: String) -> IssueLicenseRequest {
    IssueLicenseRequest {
        chip_id,
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
    }
}

impl World {
    /// Appraises evidence the chip signs for `tenant` at `fra-1`, claiming
    /// that tenant; the license names `acme-ai`.
    async fn appraise_as(&mut self, token: &[u8], tenant: &str) -> AttestationResult {
        let challenge = self
            .verifier
            .challenge(ChallengeRequest {})
            .await
            .unwrap()
            .into_inner()
            .challenge;
        let request = AppraiseRequest {
            evidence: Some(self.chip.attest(&challenge, tenant, "fra-1").unwrap()),
            challenge,
            license_token: token.to_vec(),
            tenant: tenant.into(),
            site_id: "fra-1".into(),
            host: None,
            landmark_records: Vec::new(),
        };
        let signed = self.verifier.appraise(request).await.unwrap();
        let key = &self.pki.verifier_result_key;
        let keys = TrustedKeys::new().with(key.key_id(), key.public_key());
        let verified = result::verify(&signed.into_inner().result, &keys).unwrap();
        verified.result().clone()
    }
}

/// Fetches `GET /metrics` with a hand-written HTTP/1.1 request and parses
/// the sample lines into series name (with labels) and value.
async fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse().unwrap())
        })
        .collect()
}

async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    (status, body.to_owned())
}

fn sample(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("{series} missing from {samples:#?}"))
}

async fn health_of(tls: &Path, addr: SocketAddr, service: &str) -> Result<i32, tonic::Code> {
    let mut client = HealthClient::new(channel(tls, addr).await);
    let request = HealthCheckRequest {
        service: service.into(),
    };
    match client.check(request).await {
        Ok(response) => Ok(response.into_inner().status),
        Err(status) => Err(status.code()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_for_every_service() {
    let w = world().await;
    let serving = Ok(ServingStatus::Serving as i32);
    for (addr, names) in [
        (w.services.issuer, &ISSUER_SERVICES[..]),
        (w.services.verifier, &VERIFIER_SERVICES[..]),
    ] {
        assert_eq!(
            health_of(&w.services.tls_dir, addr, "").await,
            serving,
            "whole server at {addr}"
        );
        for name in names.iter().chain(&["grpc.health.v1.Health"]) {
            assert_eq!(
                health_of(&w.services.tls_dir, addr, name).await,
                serving,
                "{name}"
            );
        }
        // A service the server does not run is unknown to health checking.
        let absent = health_of(&w.services.tls_dir, addr, "chipward.v1.Nonexistent").await;
        assert_eq!(absent, Err(tonic::Code::NotFound));
    }
    // Each server reports only its own services.
    let verifier_on_issuer = health_of(
        &w.services.tls_dir,
        w.services.issuer,
        "chipward.v1.Verifier",
    )
    .await;
    assert_eq!(verifier_on_issuer, Err(tonic::Code::NotFound));
}

/// The service names v1 reflection lists, and the file it returns for
/// `symbol`, decoded.
async fn reflect_v1(
    tls: &Path,
    addr: SocketAddr,
    symbol: &str,
) -> (Vec<String>, prost_types::FileDescriptorProto) {
    use v1::server_reflection_client::ServerReflectionClient;
    use v1::server_reflection_request::MessageRequest;
    use v1::server_reflection_response::MessageResponse;

    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol(symbol.into()),
    ]
    .map(|m| v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(m),
    });
    let mut client = ServerReflectionClient::new(channel(tls, addr).await);
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no service list");
    };
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        answers.message().await.unwrap().unwrap().message_response
    else {
        panic!("no file for {symbol}");
    };
    let file =
        prost_types::FileDescriptorProto::decode(&files.file_descriptor_proto[0][..]).unwrap();
    (list.service.into_iter().map(|s| s.name).collect(), file)
}

async fn list_v1alpha(tls: &Path, addr: SocketAddr) -> Vec<String> {
    use v1alpha::server_reflection_client::ServerReflectionClient;
    use v1alpha::server_reflection_request::MessageRequest;
    use v1alpha::server_reflection_response::MessageResponse;

    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut client = ServerReflectionClient::new(channel(tls, addr).await);
    let mut answers = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    match answers.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.into_iter().map(|s| s.name).collect()
        }
        other => panic!("no service list: {other:?}"),
    }
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_each_servers_services() {
    let w = world().await;

    let (mut listed, file) = reflect_v1(
        &w.services.tls_dir,
        w.services.verifier,
        "chipward.v1.Verifier",
    )
    .await;
    listed.sort();
    let want: Vec<&str> = VERIFIER_SERVICES
        .iter()
        .chain(&STANDARD_SERVICES)
        .copied()
        .collect();
    assert_eq!(listed, sorted(&want));
    assert_eq!(file.name(), "chipward/v1/verifier.proto");
    let verifier = file
        .service
        .iter()
        .find(|s| s.name() == "Verifier")
        .unwrap();
    let methods: Vec<&str> = verifier.method.iter().map(|m| m.name()).collect();
    assert!(
        methods.contains(&"Challenge") && methods.contains(&"Appraise"),
        "{methods:?}"
    );

    let (mut listed, file) = reflect_v1(
        &w.services.tls_dir,
        w.services.issuer,
        "chipward.v1.AuditLog",
    )
    .await;
    listed.sort();
    let want: Vec<&str> = ISSUER_SERVICES
        .iter()
        .chain(&STANDARD_SERVICES)
        .copied()
        .collect();
    assert_eq!(listed, sorted(&want));
    assert!(file.service.iter().any(|s| s.name() == "AuditLog"));

    let mut alpha = list_v1alpha(&w.services.tls_dir, w.services.issuer).await;
    alpha.sort();
    assert_eq!(alpha, sorted(&want));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_the_servers_did() {
    let mut w = world().await;
    let chip_id = w.chip.chip_id.to_hex();
    let chain = w.chip.enrolment_chain.clone();
    w.issuer
        .enrol_chip(EnrolChipRequest { cert_chain: chain })
        .await
        .unwrap();

    // Two licenses issued; one request refused for a chip never enrolled.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let issued = w
            .issuer
            .issue_license(license_request(chip_id.clone()))
            .await;
        let license = issued.unwrap().into_inner().license.unwrap();
        tokens.push((license.token_id, license.token));
    }
    let stranger = license_request("ab".repeat(32));
    let refused = w.issuer.issue_license(stranger).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);

    // Three passing appraisals, two failing ones (the claimed tenant is not
    // the license's), one refused outright (no evidence).
    let mut results = Vec::new();
    for _ in 0..3 {
        let r = w.appraise_as(&tokens[0].1, "acme-ai").await;
        assert_eq!(r.verdict, Status::Pass);
        results.push(r);
    }
    for _ in 0..2 {
        let r = w.appraise_as(&tokens[0].1, UNLICENSED_TENANT).await;
        assert_eq!(r.verdict, Status::Fail);
        results.push(r);
    }
    let empty = AppraiseRequest {
        challenge: Vec::new(),
        evidence: None,
        license_token: Vec::new(),
        tenant: String::new(),
        site_id: String::new(),
        host: None,
        landmark_records: Vec::new(),
    };
    assert!(w.verifier.appraise(empty).await.is_err());

    let revoke = RevokeLicenseRequest {
        token_id: tokens[1].0.clone(),
        reason: "test".into(),
    };
    w.issuer.revoke_license(revoke).await.unwrap();

    let v = scrape(w.services.verifier_metrics).await;
    assert_eq!(
        sample(&v, "chipward_verifier_appraisals_total{verdict=\"pass\"}"),
        3.0
    );
    assert_eq!(
        sample(&v, "chipward_verifier_appraisals_total{verdict=\"fail\"}"),
        2.0
    );
    assert!(!v.contains_key("chipward_verifier_appraisals_total{verdict=\"unknown\"}"));
    assert_eq!(
        sample(&v, "chipward_verifier_appraisals_refused_total"),
        1.0
    );
    // Five challenges: one per appraisal that carried evidence.
    assert_eq!(sample(&v, "chipward_verifier_challenges_issued_total"), 5.0);
    // Every claim that did not pass in the signed results, counted here.
    let mut not_passed = BTreeMap::<String, f64>::new();
    for claim in results
        .iter()
        .flat_map(|r| &r.claims)
        .filter(|c| c.status != Status::Pass)
    {
        let series = format!(
            "chipward_verifier_failed_claims_total{{claim=\"{}\",code=\"{}\"}}",
            claim.claim, claim.code
        );
        *not_passed.entry(series).or_default() += 1.0;
    }
    let tenant = "chipward_verifier_failed_claims_total{claim=\"tenant\",code=\"CW-TENANT\"}";
    assert_eq!(not_passed.get(tenant), Some(&2.0));
    let counted: BTreeMap<String, f64> = v
        .iter()
        .filter(|(k, _)| k.starts_with("chipward_verifier_failed_claims_total"))
        .map(|(k, n)| (k.clone(), *n))
        .collect();
    assert_eq!(counted, not_passed);
    let latency = "chipward_verifier_appraisal_duration_seconds";
    assert_eq!(
        sample(&v, &format!("{latency}_count{{verdict=\"pass\"}}")),
        3.0
    );
    assert_eq!(
        sample(&v, &format!("{latency}_count{{verdict=\"fail\"}}")),
        2.0
    );
    assert_eq!(
        sample(&v, &format!("{latency}_count{{verdict=\"refused\"}}")),
        1.0
    );
    let inf = format!("{latency}_bucket{{verdict=\"pass\",le=\"+Inf\"}}");
    assert_eq!(sample(&v, &inf), 3.0);

    let mut audit = AuditLogClient::new(channel(&w.services.tls_dir, w.services.issuer).await);
    let head = audit.get_tree_head(GetTreeHeadRequest {}).await.unwrap();
    let i = scrape(w.services.issuer_metrics).await;
    assert_eq!(sample(&i, "chipward_issuer_licenses_issued_total"), 2.0);
    assert_eq!(sample(&i, "chipward_issuer_renewals_total"), 0.0);
    assert_eq!(sample(&i, "chipward_issuer_revocations_total"), 1.0);
    let not_enrolled = "chipward_issuer_refusals_total{code=\"chip_not_enrolled\"}";
    assert_eq!(sample(&i, not_enrolled), 1.0);
    let issue = "chipward_issuer_request_duration_seconds_count{rpc=\"IssueLicense\"}";
    assert_eq!(sample(&i, issue), 3.0);
    let enrol = "chipward_issuer_request_duration_seconds_count{rpc=\"EnrolChip\"}";
    assert_eq!(sample(&i, enrol), 1.0);
    let size = sample(&i, "chipward_issuer_audit_log_entries");
    assert!(size > 0.0);
    assert_eq!(size, head.into_inner().tree_size as f64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_only_get_metrics() {
    let w = world().await;
    let (status, _) = http_get(w.services.verifier_metrics, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, body) = http_get(w.services.issuer_metrics, "/metrics?x=1").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.contains("# TYPE chipward_issuer_licenses_issued_total counter\n"));

    let mut stream = tokio::net::TcpStream::connect(w.services.issuer_metrics)
        .await
        .unwrap();
    stream
        .write_all(b"DELETE /metrics HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(
        response.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"),
        "{response}"
    );
}
