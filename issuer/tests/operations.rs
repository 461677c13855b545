//! The real `chipward-issuer` process, as an operator runs it: how it stops
//! on SIGTERM or SIGINT, and what it logs.
//!
//! Stopping: a call in flight when the signal comes (a server-reflection
//! stream the test holds open) still gets answers and ends cleanly; new
//! connections are refused from the signal on; the process exits with
//! status 0 once the call is over, logging "shutdown requested" and then
//! "issuer stopped". With nothing in flight it exits at once. A call held
//! open past `shutdown_grace_secs` is cut, and the process still exits 0.
//!
//! Logs: with `--json-logs` every line on standard error is a JSON object,
//! and the lines of a call carry its `x-request-id` and RPC name in their
//! span (an id that is not plain is replaced, not logged); without it the
//! lines are plain text, without colour codes when standard error is a
//! file. Standard output stays empty. No line holds a private key, in PEM
//! or raw, or a license token or its signature, in any common encoding.
//!
//! Each test has its own development PKI, TLS folder, configuration file
//! and SQLite ledger, and starts the binary cargo built for this package
//! (`CARGO_BIN_EXE_chipward-issuer`); see `chipward_tests::server`.

#![cfg(test)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use chipward_certs::keys::{P384Key, spki_sha256};
use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    EnrolChipRequest, GetLicenseRequest, IssueLicenseRequest, License, Site,
};
use chipward_proto::tls::{DEFAULT_SERVER_NAME, TlsFiles, connect_as};
use chipward_tests::logs::{self, json_lines, message, span_field};
use chipward_tests::server::{ReflectionStream, ServerProcess, strip_ansi};
use serde_json::Value;
use tonic::transport::{Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

const MODEL: &str = "CW-100";
/// The start-up line that carries the address.
const READY: &str = "issuer serving with mutual tls";
/// What the issuer's reflection lists: its three services and the
/// standard three, sorted.
const SERVICES: [&str; 6] = [
    "chipward.v1.AuditLog",
    "chipward.v1.Compliance",
    "chipward.v1.Issuer",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
/// Upper bound of each wait in these tests; a hang fails instead.
const LIMIT: Duration = Duration::from_secs(20);
/// "At once": far below the default grace period (`shutdown_grace_secs`).
const PROMPT: Duration = Duration::from_secs(5);

/// One deployment on this machine: PKI, TLS folder and configuration.
struct Deployment {
    dir: tempfile::TempDir,
    pki: DevPki,
    tls: PathBuf,
    config: PathBuf,
}

impl Deployment {
    /// A deployment whose configuration adds `extra` lines.
    fn new(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pki = DevPki::create(&dir.path().join("pki"), MODEL).unwrap();
        let tls = dir.path().join("tls");
        create_local_deployment(&tls, &["acme-ai"]).unwrap();
        let path = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\
             database = {}\n\
             pki_dir = {}\n\
             tls_ca = {}\n\
             tls_cert = {}\n\
             tls_key = {}\n\
             {extra}\n",
            path(dir.path().join("ledger.sqlite")),
            path(dir.path().join("pki")),
            path(tls.join("ca.pem")),
            path(tls.join("issuer.pem")),
            path(tls.join("issuer.key")),
        );
        let config = dir.path().join("issuer.toml");
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            pki,
            tls,
            config,
        }
    }

    /// Starts the issuer, its output in files named after `name`, logging
    /// at `filter`, as JSON lines if `json`.
    async fn start(&self, name: &str, json: bool, filter: &str) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chipward-issuer"));
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", filter)
            .env_remove("NO_COLOR");
        if json {
            command.arg("--json-logs");
        }
        let output = self.dir.path().join(name);
        ServerProcess::start(command, &output, READY, &self.client_tls("auditor")).await
    }

    fn client_tls(&self, name: &str) -> ClientTlsConfig {
        TlsFiles::in_dir(&self.tls, name)
            .load()
            .unwrap()
            .client(DEFAULT_SERVER_NAME)
    }

    /// A new connection to the issuer at `addr` as client `name`.
    async fn connect(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> Result<Channel, chipward_proto::tls::TlsError> {
        connect_as(&self.tls, name, &format!("https://{addr}")).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_and_refuses_new_connections() {
    let d = Deployment::new("");
    let mut issuer = d.start("issuer", true, "info").await;
    let addr = issuer.addr();

    // 1. A call in flight: a reflection stream with one answer so far.
    let mut call = ReflectionStream::open(d.connect(addr, "auditor").await.unwrap()).await;
    assert_eq!(call.list_services().await.unwrap(), SERVICES);

    // 2. The signal; from then on, new connections are refused.
    issuer.signal("TERM");
    issuer.wait_for_log("shutdown requested", LIMIT).await;
    wait_until_refused(addr).await;
    let late = d.connect(addr, "auditor").await;
    assert!(
        late.is_err(),
        "a connection made after SIGTERM was accepted"
    );

    // 3. The call in flight still gets its answers, and the issuer waits
    //    for it to end.
    assert_eq!(call.list_services().await.unwrap(), SERVICES);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        issuer.is_running(),
        "the issuer exited with a call in flight"
    );
    call.close().await.unwrap();

    // 4. Then it exits cleanly, saying so.
    let status = issuer.wait_exit(LIMIT).await;
    assert_eq!(status.code(), Some(0), "{}", issuer.log_tail());
    let events = json_lines(&issuer.stderr());
    let messages: Vec<&str> = events.iter().filter_map(message).collect();
    assert_stopped_in_order(&messages);
    assert_eq!(issuer.stdout(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_or_sigint_with_nothing_in_flight_exits_zero_at_once() {
    for signal in ["TERM", "INT"] {
        let d = Deployment::new("");
        let mut issuer = d.start("issuer", true, "info").await;

        // An idle connection, its call over, must not hold the stop up.
        let idle = d.connect(issuer.addr(), "auditor").await.unwrap();
        let request = HealthCheckRequest {
            service: String::new(),
        };
        HealthClient::new(idle.clone())
            .check(request)
            .await
            .unwrap();

        let sent = Instant::now();
        issuer.signal(signal);
        let status = issuer.wait_exit(PROMPT).await;
        let took = sent.elapsed();
        assert_eq!(status.code(), Some(0), "SIG{signal}: {}", issuer.log_tail());
        let events = json_lines(&issuer.stderr());
        let messages: Vec<&str> = events.iter().filter_map(message).collect();
        assert_stopped_in_order(&messages);
        eprintln!("SIG{signal} with nothing in flight: exited 0 after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_open_past_the_grace_period_is_cut_and_the_issuer_exits_zero() {
    let d = Deployment::new("shutdown_grace_secs = 1");
    let mut issuer = d.start("issuer", true, "info").await;
    let mut call = ReflectionStream::open(d.connect(issuer.addr(), "auditor").await.unwrap()).await;
    assert_eq!(call.list_services().await.unwrap(), SERVICES);

    let sent = Instant::now();
    issuer.signal("TERM");
    let status = issuer.wait_exit(LIMIT).await;
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", issuer.log_tail());
    assert!(took >= Duration::from_secs(1), "exited after {took:?}");
    assert!(call.list_services().await.is_err());

    let events = json_lines(&issuer.stderr());
    let messages: Vec<&str> = events.iter().filter_map(message).collect();
    assert_stopped_in_order(&messages);
    let cut = events
        .iter()
        .find(|e| message(e) == Some("calls still in flight at the end of the grace period"))
        .expect("no line says calls were cut");
    assert_eq!(cut["level"], "WARN");
    assert_eq!(cut["fields"]["grace_secs"], 1);
    eprintln!("a call held open: the issuer exited 0 after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_calls_request_id_and_no_secret() {
    let d = Deployment::new("");
    let filter = "info,chipward_issuer=debug,chipward_proto=debug";
    let mut issuer = d.start("issuer", true, filter).await;
    let addr = issuer.addr();
    let mut admin = IssuerClient::new(d.connect(addr, "admin").await.unwrap());

    // 1. Three calls, two with plain ids and one with an id that is not.
    let chip_id = enrol(&mut admin, &d.pki, "enrol-7").await;
    let license = issue(&mut admin, &chip_id, "test-123").await;
    let bad_id = "bad id; with spaces";
    let mut lookup = tonic::Request::new(GetLicenseRequest {
        token_id: "00".repeat(16),
    });
    lookup
        .metadata_mut()
        .insert("x-request-id", bad_id.parse().unwrap());
    let missing = admin.get_license(lookup).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    issuer.signal("TERM");
    assert_eq!(issuer.wait_exit(LIMIT).await.code(), Some(0));

    // 2. Every line is JSON; each call's lines carry its id and RPC.
    let text = issuer.stderr();
    let events = json_lines(&text);
    let enrolled = only(&events, "chip enrolled");
    assert_eq!(span_field(enrolled, "request_id"), Some("enrol-7"));
    assert_eq!(span_field(enrolled, "rpc"), Some("EnrolChip"));
    let issued = only(&events, "license issued");
    assert_eq!(span_field(issued, "request_id"), Some("test-123"));
    assert_eq!(span_field(issued, "rpc"), Some("IssueLicense"));
    assert_eq!(issued["fields"]["token_id"], license.token_id.as_str());
    for event in &events {
        if span_field(event, "request_id") == Some("test-123") {
            assert_eq!(span_field(event, "rpc"), Some("IssueLicense"), "{event}");
        }
    }
    let refused = only(&events, "request refused");
    assert_eq!(span_field(refused, "rpc"), Some("GetLicense"));
    let replaced = span_field(refused, "request_id").unwrap();
    assert_eq!(replaced.len(), 16, "{replaced}");
    assert!(
        replaced.bytes().all(|b| b.is_ascii_hexdigit()),
        "{replaced}"
    );
    assert!(!text.contains("bad id"), "the unsafe request id was logged");

    // 3. No secret, in any form: the token key, the TLS key, the token
    //    and its signature (the last 64 bytes of the COSE_Sign1).
    assert_no_key(
        &text,
        "the token key",
        &d.dir.path().join("pki/issuer-token.key"),
    );
    assert_no_key(&text, "the tls key", &d.tls.join("issuer.key"));
    let token = &license.token;
    logs::assert_absent(&text, "the license token", &logs::encodings(token));
    let signature = &token[token.len() - 64..];
    logs::assert_absent(&text, "the token's signature", &logs::encodings(signature));
    assert_eq!(issuer.stdout(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_logs_are_plain_text_lines() {
    let d = Deployment::new("");
    let mut issuer = d.start("issuer", false, "info").await;
    let mut admin = IssuerClient::new(d.connect(issuer.addr(), "admin").await.unwrap());
    enrol(&mut admin, &d.pki, "text-77").await;
    issuer.signal("TERM");
    assert_eq!(issuer.wait_exit(LIMIT).await.code(), Some(0));

    let text = issuer.stderr();
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
        assert!(line.starts_with("20"), "no timestamp first: {line}");
    }
    let enrolled = lines
        .iter()
        .find(|l| l.contains("chip enrolled"))
        .expect("no chip enrolled line");
    assert!(enrolled.contains("request_id=text-77"), "{enrolled}");
    assert!(enrolled.contains("rpc=\"EnrolChip\""), "{enrolled}");
    assert!(lines.iter().any(|l| l.contains("shutdown requested")));
    assert!(lines.last().unwrap().contains("issuer stopped"), "{text}");
    assert_eq!(strip_ansi(&text), text);
    assert_eq!(issuer.stdout(), "");
}

/// Both stop messages are there, the request first and the stop last.
fn assert_stopped_in_order(messages: &[&str]) {
    let requested = messages.iter().position(|m| *m == "shutdown requested");
    let requested = requested.unwrap_or_else(|| panic!("no shutdown requested: {messages:?}"));
    assert_eq!(messages.last(), Some(&"issuer stopped"), "{messages:?}");
    assert!(requested < messages.len() - 1, "{messages:?}");
}

/// Polls until a TCP connection to `addr` is refused: the listening
/// socket is closed.
async fn wait_until_refused(addr: SocketAddr) {
    let deadline = Instant::now() + LIMIT;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => assert!(
                Instant::now() < deadline,
                "connections still taken {LIMIT:?} after SIGTERM: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The only event logged with `text` as its message.
fn only<'a>(events: &'a [Value], text: &str) -> &'a Value {
    let found: Vec<&Value> = events.iter().filter(|e| message(e) == Some(text)).collect();
    assert_eq!(found.len(), 1, "{text}: {found:?}");
    found[0]
}

/// Fails if `log` holds any line of the PEM key file at `path`, its DER, or
/// the DER's last 32 bytes (an Ed25519 seed, or the end of an EC key).
fn assert_no_key(log: &str, what: &str, path: &Path) {
    let pem = std::fs::read_to_string(path).unwrap();
    let lines = logs::pem_body_lines(&pem);
    logs::assert_absent(log, what, &lines);
    let der = logs::pem_der(&pem);
    logs::assert_absent(log, what, &logs::encodings(&der));
    logs::assert_absent(log, what, &logs::encodings(&der[der.len() - 32..]));
}

/// Enrols a fresh chip as the administrator, with `request_id`.
async fn enrol(admin: &mut IssuerClient<Channel>, pki: &DevPki, request_id: &str) -> String {
    let key = P384Key::generate().unwrap();
    let spki = key.public_key_spki_der();
    let cert = pki.chip_ca.issue_device_identity(&spki, MODEL, 1).unwrap();
    let mut request = tonic::Request::new(EnrolChipRequest {
        cert_chain: vec![cert, pki.chip_ca.cert_der.clone()],
    });
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    let enrolled = admin.enrol_chip(request).await.unwrap().into_inner();
    assert_eq!(enrolled.chip_id, hex::encode(spki_sha256(&spki)));
    enrolled.chip_id
}

/// Issues a license for `chip_id`, with `request_id`.
async fn issue(admin: &mut IssuerClient<Channel>, chip_id: &str, request_id: &str) -> License {
    let mut request = tonic::Request::new(IssueLicenseRequest {
        chip_id: chip_id.to_owned(),
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
    });
    request
        .metadata_mut()
        .insert("x-request-id", request_id.parse().unwrap());
    let response = admin.issue_license(request).await.unwrap().into_inner();
    response.license.unwrap()
}
