//! The `chipward-issuer` binary as a child process: its configuration
//! file, its start (it binds port 0 and says where in its JSON log, so no
//! port is guessed and none can be taken by another process between
//! choosing and binding), readiness by gRPC health, SIGSTOP and SIGKILL.
//!
//! The child is killed and reaped when its [`Issuer`] drops, so a failing
//! test leaves no server behind.
//!
//! Limitation: if the test process itself is killed, its children outlive
//! it; nothing here asks the kernel to end them with their parent.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::channel;

/// Longest a start may take, from spawn to `SERVING`.
const START_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two looks at the log or two health checks.
const POLL: Duration = Duration::from_millis(20);

/// Writes the issuer's configuration into `dir`: every path absolute, the
/// listen port left to the kernel.
pub(super) fn write_config(dir: &Path, database: &str) -> PathBuf {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let text = format!(
        "listen = \"127.0.0.1:0\"\n\
         database = {}\n\
         database_connections = 8\n\
         pki_dir = {}\n\
         tls_ca = {}\n\
         tls_cert = {}\n\
         tls_key = {}\n",
        quote(database),
        quote(&dir.join("pki").display().to_string()),
        quote(&super::tls_dir().join("ca.pem").display().to_string()),
        quote(&super::tls_dir().join("issuer.pem").display().to_string()),
        quote(&super::tls_dir().join("issuer.key").display().to_string()),
    );
    let path = dir.join("issuer.toml");
    fs::write(&path, text).unwrap();
    path
}

/// A running issuer process.
pub(super) struct Issuer {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Issuer {
    /// Spawns `chipward-issuer serve --config config`, logging JSON lines to
    /// `log`, and waits until its health service reports `SERVING`.
    pub(super) async fn start(config: &Path, log: &Path) -> Self {
        let stderr = File::create(log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_chipward-issuer"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--json-logs")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut issuer = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_path_buf(),
        };
        let deadline = Instant::now() + START_LIMIT;
        issuer.addr = issuer.listening_addr(deadline).await;
        issuer.wait_serving(deadline).await;
        issuer
    }

    /// Where it serves gRPC.
    pub(super) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the process where it stands (SIGSTOP): it answers nothing
    /// more, and what it was doing stays half-done until [`Self::sigkill`].
    pub(super) fn freeze(&self) {
        let pid = self.child.id().to_string();
        let status = Command::new("sh")
            .args(["-c", "kill -STOP \"$0\"", &pid])
            .status()
            .unwrap();
        assert!(status.success(), "SIGSTOP to {pid}: {status}");
    }

    /// Sends SIGKILL and reaps the process; fails the test unless the
    /// signal is what ended it.
    pub(super) fn sigkill(&mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "the issuer ended otherwise: {status:?}\n{}",
            self.log_tail()
        );
    }

    /// The address from the `issuer serving` log line, once it is there.
    async fn listening_addr(&mut self, deadline: Instant) -> SocketAddr {
        loop {
            let text = fs::read_to_string(&self.log).unwrap_or_default();
            if let Some(addr) = text.lines().find_map(serving_addr) {
                return addr;
            }
            self.fail_if_gone_or_late(deadline, "to log its address");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the health service until the whole server reports `SERVING`.
    async fn wait_serving(&mut self, deadline: Instant) {
        let mut health = HealthClient::new(channel(self.addr).await);
        let request = HealthCheckRequest {
            service: String::new(),
        };
        loop {
            let answer = health.check(request.clone()).await;
            if answer.is_ok_and(|a| a.into_inner().status == ServingStatus::Serving as i32) {
                return;
            }
            self.fail_if_gone_or_late(deadline, "to serve");
            tokio::time::sleep(POLL).await;
        }
    }

    fn fail_if_gone_or_late(&mut self, deadline: Instant, what: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "the issuer exited ({status}) before {what}\n{}",
                self.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the issuer took over {START_LIMIT:?} {what}\n{}",
            self.log_tail()
        );
    }

    /// The last lines of its log, for failure messages.
    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Issuer {
    fn drop(&mut self) {
        // Already reaped after a SIGKILL: both calls then fail harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `addr` field of the issuer's `issuer serving` JSON log line.
fn serving_addr(line: &str) -> Option<SocketAddr> {
    let event: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = event.get("fields")?;
    if fields.get("message")?.as_str()? != "issuer serving with mutual tls" {
        return None;
    }
    fields.get("addr")?.as_str()?.parse().ok()
}
