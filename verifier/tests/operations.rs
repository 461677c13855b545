//! The real `chipward-verifier serve` process, as an operator runs it: how
//! it stops on SIGTERM or SIGINT, and what it logs.
//!
//! Stopping: a call in flight when the signal comes (a server-reflection
//! stream the test holds open) still gets answers and ends cleanly; new
//! connections are refused from the signal on; the process exits with
//! status 0 once the call is over, logging "shutdown requested" and then
//! "verifier stopped". With nothing in flight it exits at once. A call held
//! open past `shutdown_grace_secs` is cut, and the process still exits 0.
//!
//! Logs: they go to standard error, standard output stays empty. With
//! `--json-logs` every line is a JSON object, and the lines of a call carry
//! its `x-request-id` and RPC name in their span (an id that is not plain
//! is replaced, not logged); without it the lines are plain text, without
//! colour codes when standard error is a file. No line holds a private key
//! (PEM or raw), the challenge key, or the license token of an appraisal
//! or its signature, in any common encoding.
//!
//! Each test has its own development PKI, TLS folder and configuration
//! file, and starts the binary cargo built for this package
//! (`CARGO_BIN_EXE_chipward-verifier`); see `chipward_tests::server`. The
//! issuer endpoint is a closed loopback port: the verifier only warns that
//! it cannot fetch revocation lists.

#![cfg(test)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chipward_certs::pki::DevPki;
use chipward_certs::pki::tls::create_local_deployment;
use chipward_device_sim::chip::SimChip;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::grpc::{AppraiseRequest, ChallengeRequest, Evidence, SpdmEvidence, evidence};
use chipward_proto::license::{LicenseClaims, SiteClaim};
use chipward_proto::tls::{DEFAULT_SERVER_NAME, TlsFiles, connect_as};
use chipward_proto::{ChipId, TokenId};
use chipward_tests::logs::{self, json_lines, message, span_field};
use chipward_tests::server::{ReflectionStream, ServerProcess};
use serde_json::Value;
use tonic::transport::{Channel, ClientTlsConfig};

const MODEL: &str = "CW-100";
/// The start-up line that carries the address.
const READY: &str = "verifier listening";
/// What the verifier's reflection lists: its service and the standard
/// three, sorted.
const SERVICES: [&str; 4] = [
    "chipward.v1.Verifier",
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
/// The challenge key the configuration names, as its file holds it.
const NONCE_KEY_HEX: &str = "5c0ffee15c0ffee15c0ffee15c0ffee1a11ce5b0b5a11ce5b0b5a11ce5b0b5aa";
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
        let nonce_key = dir.path().join("nonce.key");
        std::fs::write(&nonce_key, format!("{NONCE_KEY_HEX}\n")).unwrap();
        let path = |p: PathBuf| toml::Value::String(p.display().to_string()).to_string();
        let text = format!(
            "listen = \"127.0.0.1:0\"\n\
             pki_dir = {}\n\
             nonce_key_file = {}\n\
             issuer_endpoint = \"https://{}\"\n\
             tls_ca = {}\n\
             tls_cert = {}\n\
             tls_key = {}\n\
             {extra}\n",
            path(dir.path().join("pki")),
            path(nonce_key),
            closed_port(),
            path(tls.join("ca.pem")),
            path(tls.join("verifier.pem")),
            path(tls.join("verifier.key")),
        );
        let config = dir.path().join("verifier.toml");
        std::fs::write(&config, text).unwrap();
        Self {
            dir,
            pki,
            tls,
            config,
        }
    }

    /// Starts the verifier, its output in files named after `name`,
    /// logging at `filter`, as JSON lines if `json`.
    async fn start(&self, name: &str, json: bool, filter: &str) -> ServerProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chipward-verifier"));
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

    /// A new connection to the verifier at `addr` as client `name`.
    async fn connect(
        &self,
        addr: SocketAddr,
        name: &str,
    ) -> Result<Channel, chipward_proto::tls::TlsError> {
        connect_as(&self.tls, name, &format!("https://{addr}")).await
    }
}

/// A loopback address nothing listens on: bound, then closed.
fn closed_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_call_in_flight_finish_and_refuses_new_connections() {
    let d = Deployment::new("");
    let mut verifier = d.start("verifier", true, "info").await;
    let addr = verifier.addr();

    // 1. A call in flight: a reflection stream with one answer so far.
    let mut call = ReflectionStream::open(d.connect(addr, "auditor").await.unwrap()).await;
    assert_eq!(call.list_services().await.unwrap(), SERVICES);

    // 2. The signal; from then on, new connections are refused.
    verifier.signal("TERM");
    verifier.wait_for_log("shutdown requested", LIMIT).await;
    wait_until_refused(addr).await;
    let late = d.connect(addr, "auditor").await;
    assert!(
        late.is_err(),
        "a connection made after SIGTERM was accepted"
    );

    // 3. The call in flight still gets its answers, and the verifier
    //    waits for it to end.
    assert_eq!(call.list_services().await.unwrap(), SERVICES);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        verifier.is_running(),
        "the verifier exited with a call in flight"
    );
    call.close().await.unwrap();

    // 4. Then it exits cleanly, saying so.
    let status = verifier.wait_exit(LIMIT).await;
    assert_eq!(status.code(), Some(0), "{}", verifier.log_tail());
    let events = json_lines(&verifier.stderr());
    let messages: Vec<&str> = events.iter().filter_map(message).collect();
    assert_stopped_in_order(&messages);
    assert_eq!(verifier.stdout(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_or_sigint_with_nothing_in_flight_exits_zero_at_once() {
    for signal in ["TERM", "INT"] {
        let d = Deployment::new("");
        let mut verifier = d.start("verifier", true, "info").await;

        // An idle connection, its call over, must not hold the stop up.
        let idle = d.connect(verifier.addr(), "auditor").await.unwrap();
        let mut client = VerifierClient::new(idle);
        client
            .info(chipward_proto::grpc::InfoRequest {})
            .await
            .unwrap();

        let sent = Instant::now();
        verifier.signal(signal);
        let status = verifier.wait_exit(PROMPT).await;
        let took = sent.elapsed();
        assert_eq!(
            status.code(),
            Some(0),
            "SIG{signal}: {}",
            verifier.log_tail()
        );
        let events = json_lines(&verifier.stderr());
        let messages: Vec<&str> = events.iter().filter_map(message).collect();
        assert_stopped_in_order(&messages);
        eprintln!("SIG{signal} with nothing in flight: exited 0 after {took:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_held_open_past_the_grace_period_is_cut_and_the_verifier_exits_zero() {
    let d = Deployment::new("shutdown_grace_secs = 1");
    let mut verifier = d.start("verifier", true, "info").await;
    let channel = d.connect(verifier.addr(), "auditor").await.unwrap();
    let mut call = ReflectionStream::open(channel).await;
    assert_eq!(call.list_services().await.unwrap(), SERVICES);

    let sent = Instant::now();
    verifier.signal("TERM");
    let status = verifier.wait_exit(LIMIT).await;
    let took = sent.elapsed();
    assert_eq!(status.code(), Some(0), "{}", verifier.log_tail());
    assert!(took >= Duration::from_secs(1), "exited after {took:?}");
    assert!(call.list_services().await.is_err());

    let events = json_lines(&verifier.stderr());
    let messages: Vec<&str> = events.iter().filter_map(message).collect();
    assert_stopped_in_order(&messages);
    let cut = events
        .iter()
        .find(|e| message(e) == Some("calls still in flight at the end of the grace period"))
        .expect("no line says calls were cut");
    assert_eq!(cut["level"], "WARN");
    assert_eq!(cut["fields"]["grace_secs"], 1);
    eprintln!("a call held open: the verifier exited 0 after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_each_calls_request_id_and_no_secret() {
    let d = Deployment::new("");
    let filter = "info,chipward_verifier=debug,chipward_proto=debug";
    let mut verifier = d.start("verifier", true, filter).await;
    let mut operator = VerifierClient::new(d.connect(verifier.addr(), "operator").await.unwrap());

    // 1. A genuine chip's evidence with a license token of the issuer's
    //    key: no reference values and no revocation list, so it does not
    //    pass, and says so in the log.
    let chip = SimChip::manufacture(&d.pki.chip_ca, MODEL, 1, "1.4.2").unwrap();
    let token = license_token(&d.pki, chip.chip_id);
    let challenge = challenge_of(&mut operator).await;
    let evidence = chip.attest(&challenge, "acme-ai", "fra-1").unwrap();
    let request = appraisal(challenge, evidence, token.clone());
    let appraised = operator
        .appraise(with_id(request, "test-123"))
        .await
        .unwrap();
    assert!(!appraised.into_inner().result.is_empty());

    // 2. Garbage evidence under an id that is not plain: refused.
    let challenge = challenge_of(&mut operator).await;
    let garbage = Evidence {
        kind: Some(evidence::Kind::Spdm(SpdmEvidence {
            transcript: vec![0x11; 64],
            cert_chain: vec![vec![0x30, 0x00]],
        })),
    };
    let request = appraisal(challenge, garbage, token.clone());
    let refused = operator
        .appraise(with_id(request, "bad id; with spaces"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    verifier.signal("TERM");
    assert_eq!(verifier.wait_exit(LIMIT).await.code(), Some(0));

    // 3. Every line is JSON; each call's lines carry its id and RPC.
    let text = verifier.stderr();
    let events = json_lines(&text);
    let judged = only(&events, "appraisal did not pass");
    assert_eq!(span_field(judged, "request_id"), Some("test-123"));
    assert_eq!(span_field(judged, "rpc"), Some("Appraise"));
    let chip_hex = chip.chip_id.to_hex();
    assert_eq!(span_field(judged, "chip"), Some(&chip_hex[..12]));
    for event in &events {
        if span_field(event, "request_id") == Some("test-123") {
            assert_eq!(span_field(event, "rpc"), Some("Appraise"), "{event}");
        }
    }
    let garbage = only(&events, "appraisal refused");
    assert_eq!(span_field(garbage, "rpc"), Some("Appraise"));
    let replaced = span_field(garbage, "request_id").unwrap();
    assert_eq!(replaced.len(), 16, "{replaced}");
    assert!(
        replaced.bytes().all(|b| b.is_ascii_hexdigit()),
        "{replaced}"
    );
    assert!(!text.contains("bad id"), "the unsafe request id was logged");

    // 4. No secret, in any form: the result key, the TLS key, the
    //    challenge key, the token and its signature.
    let pki = d.dir.path().join("pki");
    assert_no_key(&text, "the result key", &pki.join("verifier-result.key"));
    assert_no_key(&text, "the tls key", &d.tls.join("verifier.key"));
    let nonce_key = hex::decode(NONCE_KEY_HEX).unwrap();
    logs::assert_absent(&text, "the challenge key", &logs::encodings(&nonce_key));
    logs::assert_absent(&text, "the license token", &logs::encodings(&token));
    let signature = &token[token.len() - 64..];
    logs::assert_absent(&text, "the token's signature", &logs::encodings(signature));
    assert_eq!(verifier.stdout(), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_flag_logs_are_plain_text_lines_on_stderr() {
    let d = Deployment::new("");
    let mut verifier = d.start("verifier", false, "info").await;
    let mut operator = VerifierClient::new(d.connect(verifier.addr(), "operator").await.unwrap());
    let chip = SimChip::manufacture(&d.pki.chip_ca, MODEL, 1, "1.4.2").unwrap();
    let challenge = challenge_of(&mut operator).await;
    let evidence = chip.attest(&challenge, "acme-ai", "fra-1").unwrap();
    let token = license_token(&d.pki, chip.chip_id);
    let request = appraisal(challenge, evidence, token);
    operator
        .appraise(with_id(request, "text-77"))
        .await
        .unwrap();
    verifier.signal("TERM");
    assert_eq!(verifier.wait_exit(LIMIT).await.code(), Some(0));

    let text = verifier.stderr();
    assert!(!text.contains('\u{1b}'), "colour codes in a file:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
        assert!(line.starts_with("20"), "no timestamp first: {line}");
    }
    let judged = lines
        .iter()
        .find(|l| l.contains("appraisal did not pass"))
        .expect("no appraisal line");
    assert!(judged.contains("request_id=text-77"), "{judged}");
    assert!(judged.contains("rpc=\"Appraise\""), "{judged}");
    assert!(lines.iter().any(|l| l.contains("shutdown requested")));
    assert!(lines.last().unwrap().contains("verifier stopped"), "{text}");
    assert_eq!(verifier.stdout(), "");
}

/// Both stop messages are there, the request first and the stop last.
fn assert_stopped_in_order(messages: &[&str]) {
    let requested = messages.iter().position(|m| *m == "shutdown requested");
    let requested = requested.unwrap_or_else(|| panic!("no shutdown requested: {messages:?}"));
    assert_eq!(messages.last(), Some(&"verifier stopped"), "{messages:?}");
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
    logs::assert_absent(log, what, &logs::pem_body_lines(&pem));
    let der = logs::pem_der(&pem);
    logs::assert_absent(log, what, &logs::encodings(&der));
    logs::assert_absent(log, what, &logs::encodings(&der[der.len() - 32..]));
}

/// A license for `chip_id` at `fra-1` for `acme-ai`, valid now, signed
/// with the issuer's token key.
fn license_token(pki: &DevPki, chip_id: ChipId) -> Vec<u8> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = LicenseClaims {
        issuer: "chipward-issuer".into(),
        chip_id,
        audience: "chipward-verifier".into(),
        issued_at: now,
        not_before: now - 60,
        expires_at: now + 3600,
        token_id: TokenId([7; 16]),
        tenant: "acme-ai".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 50.11,
            longitude: 8.68,
            radius_km: 50.0,
        },
        entitlements: vec!["inference".into()],
        eccn: "3A090.a".into(),
    };
    let key = &pki.issuer_token_key;
    claims.sign(&key.key_id(), |m| key.sign(m))
}

/// A fresh challenge.
async fn challenge_of(operator: &mut VerifierClient<Channel>) -> Vec<u8> {
    let answer = operator.challenge(ChallengeRequest {}).await.unwrap();
    answer.into_inner().challenge
}

fn appraisal(challenge: Vec<u8>, evidence: Evidence, token: Vec<u8>) -> AppraiseRequest {
    AppraiseRequest {
        evidence: Some(evidence),
        challenge,
        license_token: token,
        tenant: "acme-ai".into(),
        site_id: "fra-1".into(),
        host: None,
        landmark_records: Vec::new(),
    }
}

/// `message` as a request carrying `x-request-id: id`.
fn with_id<T>(message: T, id: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}
