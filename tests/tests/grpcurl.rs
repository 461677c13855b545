//! The real `grpcurl` (a generic gRPC client on the Go gRPC and TLS stacks)
//! against the real issuer and verifier over loopback mutual TLS, with the
//! certificates of the deployment's TLS folder: it lists and describes the
//! services through server reflection, reads health and makes real calls,
//! and gets nothing without a client certificate.
//!
//! The binary is `CHIPWARD_GRPCURL` (which `scripts/test.sh` sets from
//! `scripts/fetch-grpcurl.sh`) or else `grpcurl` on `PATH`. When neither is
//! there every test here fails with a message saying how to get it; none is
//! skipped. Expected service and method names are read from the `.proto`
//! sources, not from what the servers answer.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chipward_certs::pki::DevPki;
use chipward_device_sim::chip::SimChip;
use chipward_device_sim::clock::ScenarioClock;
use chipward_device_sim::demo::{self, Services};
use chipward_device_sim::fleet::FleetPlan;
use chipward_proto::audit::tree_head;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::GetTreeHeadRequest;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use serde_json::Value;

/// Served beside the Chipward services on both servers.
const STANDARD_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
/// The name both server certificates carry besides 127.0.0.1.
const SERVER_NAME: &str = "localhost";
/// Upper bound on one grpcurl run, connection included, in seconds.
const MAX_TIME_SECONDS: &str = "30";
/// Connection timeout, in seconds, of the runs that must fail to connect.
const FAILING_CONNECT_SECONDS: &str = "5";
/// The verifier's description.
const VERIFIER_INFO: &str = "chipward.v1.Verifier/Info";
/// How often Info is asked, 100 ms apart, until a revocation list is held.
const INFO_ATTEMPTS: usize = 100;

/// The grpcurl binary to run, or a failure that says how to get one.
fn grpcurl_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHIPWARD_GRPCURL") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CHIPWARD_GRPCURL={} is not a file",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("grpcurl"))
        .find(|p| p.is_file());
    on_path.unwrap_or_else(|| {
        panic!(
            "grpcurl not found: set CHIPWARD_GRPCURL or put grpcurl on PATH; \
             `eval \"$(scripts/fetch-grpcurl.sh)\"` fetches the pinned build \
             and sets CHIPWARD_GRPCURL (scripts/test.sh does this)"
        )
    })
}

/// The real servers and the grpcurl to call them with.
struct World {
    dir: tempfile::TempDir,
    services: Services,
    grpcurl: PathBuf,
}

async fn world() -> World {
    let grpcurl = grpcurl_binary();
    let dir = tempfile::tempdir().unwrap();
    let services = demo::start_services(
        dir.path(),
        &FleetPlan::default(),
        &[],
        &Default::default(),
        &Arc::new(ScenarioClock::wall()),
    )
    .await
    .unwrap();
    World {
        dir,
        services,
        grpcurl,
    }
}

/// What one grpcurl run printed and how it ended.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Standard output, after checking that the run succeeded.
    fn ok(&self) -> &str {
        assert!(
            self.success,
            "grpcurl failed\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        &self.stdout
    }

    /// The JSON message a successful call printed.
    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap()
    }

    /// The gRPC status code and message of a call the server refused.
    fn status(&self) -> (&str, &str) {
        let stderr = self.failed();
        let field = |name: &str| {
            let line = stderr.lines().find_map(|l| l.trim().strip_prefix(name));
            line.unwrap_or_else(|| panic!("no {name} in {stderr}"))
        };
        (field("Code: "), field("Message: "))
    }

    /// Standard error, after checking that the run failed and printed no
    /// response.
    fn failed(&self) -> &str {
        assert!(
            !self.success,
            "grpcurl succeeded\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert_eq!(self.stdout, "", "a failed call printed a response");
        &self.stderr
    }
}

impl World {
    /// Runs grpcurl against `addr` with the CA of the TLS folder and, with
    /// `client`, that client's certificate and key; `flags` go before the
    /// address, `tail` (verb or method, symbol) after it.
    async fn grpcurl(
        &self,
        addr: SocketAddr,
        client: Option<&str>,
        flags: &[&str],
        tail: &[&str],
    ) -> Run {
        let ca = self.services.tls_dir.join("ca.pem");
        self.grpcurl_with(&ca, SERVER_NAME, addr, client, flags, tail)
            .await
    }

    /// Runs grpcurl trusting the CA certificate `ca` and expecting the
    /// server certificate to name `authority`.
    async fn grpcurl_with(
        &self,
        ca: &Path,
        authority: &str,
        addr: SocketAddr,
        client: Option<&str>,
        flags: &[&str],
        tail: &[&str],
    ) -> Run {
        let tls = &self.services.tls_dir;
        let mut cmd = Command::new(&self.grpcurl);
        cmd.arg("-cacert").arg(ca);
        if let Some(name) = client {
            cmd.arg("-cert").arg(tls.join(format!("{name}.pem")));
            cmd.arg("-key").arg(tls.join(format!("{name}.key")));
        }
        cmd.args(["-authority", authority, "-max-time", MAX_TIME_SECONDS]);
        cmd.args(flags).arg(addr.to_string()).args(tail);
        let output: Output = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap();
        Run {
            success: output.status.success(),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// A call of `method` as `client` with the JSON request `body`.
    async fn call(&self, addr: SocketAddr, client: &str, method: &str, body: &str) -> Run {
        self.grpcurl(addr, Some(client), &["-d", body], &[method])
            .await
    }

    fn pki(&self) -> DevPki {
        DevPki::load(&self.dir.path().join("pki")).unwrap()
    }
}

/// One `rpc` line of a `.proto` service: name, request and response types.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rpc {
    name: String,
    request: String,
    response: String,
}

/// The services of the `.proto` file `file` (under `proto/proto/chipward/v1`)
/// by fully qualified name, each with its methods.
fn proto_services(file: &str) -> Vec<(String, Vec<Rpc>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../proto/proto/chipward/v1")
        .join(file);
    let source = std::fs::read_to_string(path).unwrap();
    let mut services: Vec<(String, Vec<Rpc>)> = Vec::new();
    for line in source.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("service ") {
            let name = rest.trim_end_matches('{').trim();
            services.push((format!("chipward.v1.{name}"), Vec::new()));
        } else if let Some(rest) = line.strip_prefix("rpc ") {
            // rpc Name(Request) returns (Response);
            let (name, rest) = rest.split_once('(').unwrap();
            let (request, rest) = rest.split_once(')').unwrap();
            let response = rest.split_once('(').unwrap().1.split_once(')').unwrap().0;
            services.last_mut().unwrap().1.push(Rpc {
                name: name.trim().to_owned(),
                request: request.trim().to_owned(),
                response: response.trim().to_owned(),
            });
        }
    }
    services
}

fn issuer_services() -> Vec<(String, Vec<Rpc>)> {
    let mut all = proto_services("issuer.proto");
    all.extend(proto_services("compliance.proto"));
    all
}

fn verifier_services() -> Vec<(String, Vec<Rpc>)> {
    proto_services("verifier.proto")
}

/// The lines of `text`, trimmed, without blank ones, as a set.
fn line_set(text: &str) -> BTreeSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_exactly_each_servers_services_and_their_methods() {
    let w = world().await;
    let servers = [
        ("issuer", w.services.issuer, issuer_services()),
        ("verifier", w.services.verifier, verifier_services()),
    ];
    for (server, addr, services) in servers {
        assert!(!services.is_empty(), "no services read for the {server}");
        let listed = w.grpcurl(addr, Some("auditor"), &[], &["list"]).await;
        let expected: BTreeSet<String> = services
            .iter()
            .map(|(name, _)| name.clone())
            .chain(STANDARD_SERVICES.iter().map(|s| (*s).to_owned()))
            .collect();
        assert_eq!(line_set(listed.ok()), expected, "services of the {server}");

        for (service, rpcs) in &services {
            let methods = w
                .grpcurl(addr, Some("auditor"), &[], &["list", service])
                .await;
            let expected: BTreeSet<String> = rpcs
                .iter()
                .map(|r| format!("{service}.{}", r.name))
                .collect();
            assert_eq!(line_set(methods.ok()), expected, "methods of {service}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describes_the_verifier_service_from_reflection() {
    let w = world().await;
    let verifier = w.services.verifier;
    let described = w
        .grpcurl(
            verifier,
            Some("auditor"),
            &[],
            &["describe", "chipward.v1.Verifier"],
        )
        .await;
    let text = described.ok();
    assert_eq!(
        text.lines().next(),
        Some("chipward.v1.Verifier is a service:")
    );
    let lines = line_set(text);
    let (_, rpcs) = verifier_services().remove(0);
    assert_eq!(rpcs.len(), 3);
    for rpc in &rpcs {
        let line = format!(
            "rpc {} ( .chipward.v1.{} ) returns ( .chipward.v1.{} );",
            rpc.name, rpc.request, rpc.response
        );
        assert!(lines.contains(&line), "{line} missing from:\n{text}");
    }
    let rpc_lines = lines.iter().filter(|l| l.starts_with("rpc ")).count();
    assert_eq!(rpc_lines, rpcs.len(), "unexpected methods in:\n{text}");

    // A message type is described field by field.
    let info = w
        .grpcurl(
            verifier,
            Some("auditor"),
            &[],
            &["describe", "chipward.v1.InfoResponse"],
        )
        .await;
    let lines = line_set(info.ok());
    for field in [
        "string result_key_id = 1;",
        "uint64 revocation_seq = 2;",
        "int64 revocation_age_ms = 3;",
    ] {
        assert!(lines.contains(field), "{field} missing from {lines:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_check_reports_serving() {
    let w = world().await;
    let check = "grpc.health.v1.Health/Check";
    let servers = [
        (w.services.issuer, issuer_services()),
        (w.services.verifier, verifier_services()),
    ];
    for (addr, services) in servers {
        let names = services.into_iter().map(|(name, _)| name);
        for service in std::iter::once(String::new()).chain(names) {
            let body = serde_json::json!({ "service": service }).to_string();
            let reply = w.call(addr, "landmark", check, &body).await.json();
            assert_eq!(
                reply,
                serde_json::json!({ "status": "SERVING" }),
                "{service:?}"
            );
        }
        let unknown = r#"{"service":"chipward.v1.Nonexistent"}"#;
        let refused = w.call(addr, "landmark", check, unknown).await;
        assert_eq!(refused.status().0, "NotFound", "{}", refused.stderr);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_reads_verifier_info() {
    let w = world().await;
    let expected_key = w.pki().verifier_result_key.key_id();

    // The verifier fetches the issuer's revocation list in the background;
    // until it holds one the age is -1.
    let mut info = Value::Null;
    for _ in 0..INFO_ATTEMPTS {
        info = w
            .call(w.services.verifier, "auditor", VERIFIER_INFO, "{}")
            .await
            .json();
        if int_field(&info, "revocationAgeMs") >= 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(info["resultKeyId"], Value::String(expected_key), "{info}");
    assert!(int_field(&info, "revocationAgeMs") >= 0, "{info}");
    // JSON names the fields in camel case; nothing else is there.
    let known = ["resultKeyId", "revocationSeq", "revocationAgeMs"];
    let fields = info.as_object().unwrap();
    assert!(fields.keys().all(|k| known.contains(&k.as_str())), "{info}");

    // The list it holds is the issuer's current one (nothing was revoked).
    let get_list = "chipward.v1.Issuer/GetRevocationList";
    let list = w
        .call(w.services.issuer, "landmark", get_list, "{}")
        .await
        .json();
    assert!(list["signedList"].is_string(), "{list}");
    let seq = int_field(&list, "seq");
    assert_eq!(int_field(&info, "revocationSeq"), seq, "{info} {list}");
}

/// A 64-bit integer field of a JSON reply (a string there), 0 when left out
/// as the default.
fn int_field(reply: &Value, name: &str) -> i64 {
    reply
        .get(name)
        .map_or(0, |v| v.as_str().unwrap().parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_enrols_and_auditor_reads_the_signed_tree_head() {
    let w = world().await;
    let issuer = w.services.issuer;
    let pki = w.pki();
    let keys = TrustedKeys::new().with(
        pki.issuer_token_key.key_id(),
        pki.issuer_token_key.public_key(),
    );
    let get_head = "chipward.v1.AuditLog/GetTreeHead";
    let before = w.call(issuer, "auditor", get_head, "{}").await.json();
    let before = tree_head::verify(&signed_head(&before), &keys).unwrap();

    // The admin enrols a chip through grpcurl, with its chain as base64.
    let plan = FleetPlan::default();
    let chip = SimChip::manufacture(&pki.chip_ca, &plan.model, 1, &plan.firmware).unwrap();
    let chain: Vec<String> = chip
        .enrolment_chain
        .iter()
        .map(|c| BASE64.encode(c))
        .collect();
    let body = serde_json::json!({ "certChain": chain }).to_string();
    let enrol = "chipward.v1.Issuer/EnrolChip";
    let enrolled = w.call(issuer, "admin", enrol, &body).await.json();
    assert_eq!(enrolled["chipId"], Value::String(chip.chip_id.to_hex()));
    assert_eq!(enrolled["newlyEnrolled"], Value::Bool(true));
    // The auditor may read the log but not enrol.
    let denied = w.call(issuer, "auditor", enrol, &body).await;
    let refusal = ("PermissionDenied", "role auditor may not call EnrolChip");
    assert_eq!(denied.status(), refusal);

    // The new enrolment is one more entry in a head signed by the issuer.
    let after = w.call(issuer, "auditor", get_head, "{}").await.json();
    let verified = tree_head::verify(&signed_head(&after), &keys).unwrap();
    assert_eq!(verified.key_id(), pki.issuer_token_key.key_id());
    assert_eq!(verified.head().size, before.head().size + 1);
    let tree_size = after["treeSize"].as_str().unwrap();
    assert_eq!(tree_size, verified.head().size.to_string());

    // The same head size as a tonic client reads.
    let channel = w.services.issuer_as("auditor").await.unwrap();
    let head = AuditLogClient::new(channel)
        .get_tree_head(GetTreeHeadRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(head.tree_size, verified.head().size);

    // Every role may read the head; the entries only the log's readers.
    let entries = "chipward.v1.AuditLog/GetEntries";
    let read = w.call(issuer, "auditor", entries, "{}").await.json();
    let read = read["entries"].as_array().unwrap();
    assert_eq!(read.len() as u64, verified.head().size);
    w.call(issuer, "landmark", get_head, "{}").await.ok();
    let denied = w.call(issuer, "landmark", entries, "{}").await;
    let refusal = ("PermissionDenied", "role landmark may not call GetEntries");
    assert_eq!(denied.status(), refusal);
}

/// The `signedTreeHead` bytes (base64 in JSON) of a GetTreeHead reply.
fn signed_head(reply: &Value) -> Vec<u8> {
    let text = reply["signedTreeHead"].as_str().unwrap();
    BASE64.decode(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_client_certificate_fail() {
    let w = world().await;
    let calls: [(SocketAddr, &[&str], &[&str]); 4] = [
        (w.services.issuer, &[], &["list"]),
        (
            w.services.issuer,
            &["-d", "{}"],
            &["chipward.v1.AuditLog/GetTreeHead"],
        ),
        (w.services.verifier, &[], &["list"]),
        (w.services.verifier, &["-d", "{}"], &[VERIFIER_INFO]),
    ];
    for (addr, body, tail) in calls {
        // The same call with the auditor's certificate goes through.
        w.grpcurl(addr, Some("auditor"), body, tail).await.ok();

        // Without one the server ends the TLS handshake: no connection, so
        // not even an error status.
        let flags = [body, &["-connect-timeout", FAILING_CONNECT_SECONDS]].concat();
        let without = w.grpcurl(addr, None, &flags, tail).await;
        assert!(
            without.failed().starts_with("Failed to dial target host"),
            "{tail:?}: {}",
            without.stderr
        );

        // Nor without TLS at all.
        let flags = ["-plaintext", "-connect-timeout", FAILING_CONNECT_SECONDS];
        let plaintext = w.grpcurl(addr, None, &flags, &["list"]).await;
        assert!(
            plaintext.failed().starts_with("Failed to dial target host"),
            "{}",
            plaintext.stderr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_certificate_is_checked_against_the_ca() {
    let w = world().await;
    let verifier = w.services.verifier;
    let ca = w.services.tls_dir.join("ca.pem");

    // A name the server certificate does not carry.
    let wrong_name = w
        .grpcurl_with(
            &ca,
            "elsewhere.invalid",
            verifier,
            Some("auditor"),
            &[],
            &["list"],
        )
        .await;
    let refused = "x509: certificate is valid for localhost, not elsewhere.invalid";
    assert!(
        wrong_name.failed().contains(refused),
        "{}",
        wrong_name.stderr
    );

    // The right name, trusting another deployment's CA.
    let other = tempfile::tempdir().unwrap();
    chipward_certs::pki::tls::create_local_deployment(other.path(), &[]).unwrap();
    let other_ca = other.path().join("ca.pem");
    let untrusted = w
        .grpcurl_with(
            &other_ca,
            SERVER_NAME,
            verifier,
            Some("auditor"),
            &[],
            &["list"],
        )
        .await;
    let refused = "x509: certificate signed by unknown authority";
    assert!(untrusted.failed().contains(refused), "{}", untrusted.stderr);
}
