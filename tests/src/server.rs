//! A Chipward server binary (`chipward-issuer`, `chipward-verifier`) as a
//! child process, for tests that need the real process: its start, its
//! readiness, signals, its exit and what it wrote.
//!
//! The caller builds the command, with the server told to listen on port 0:
//! the server says where it listens in its log (the `addr` field of a
//! start-up line, JSON or text), so no port is guessed and none can be
//! taken by another process between choosing and binding. Ready means the
//! gRPC health service reports `SERVING`, asked over mutual TLS. Standard
//! output and standard error go to two files, so a test can check each.
//! [`ReflectionStream`] is a call that stays in flight as long as the test
//! wants, on any Chipward server.
//!
//! The child is killed and reaped when its [`ServerProcess`] drops, so a
//! failing test leaves no server behind.
//!
//! Limitation: if the test process itself is killed, its children outlive
//! it; nothing here asks the kernel to end them with their parent.

use std::fs::{self, File};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, ClientTlsConfig};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use tonic_reflection::pb::v1::{ServerReflectionRequest, ServerReflectionResponse};

/// Longest a start may take, from spawn to `SERVING`.
pub const START_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two looks at the log, the process or the health service.
const POLL: Duration = Duration::from_millis(20);

/// A running server process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl ServerProcess {
    /// Spawns `command` with its standard output and error going to
    /// `<output>.stdout` and `<output>.stderr`, reads its address from the
    /// first log line whose message is `ready`, and waits until its health
    /// service, asked as the client of `tls`, reports `SERVING`. Fails the
    /// test if the process exits first or takes over [`START_LIMIT`].
    pub async fn start(
        mut command: Command,
        output: &Path,
        ready: &str,
        tls: &ClientTlsConfig,
    ) -> Self {
        let stdout = output.with_extension("stdout");
        let stderr = output.with_extension("stderr");
        let child = command
            .stdin(Stdio::null())
            .stdout(File::create(&stdout).expect("creating the stdout file"))
            .stderr(File::create(&stderr).expect("creating the stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {command:?}: {e}"));
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stdout,
            stderr,
        };
        let deadline = Instant::now() + START_LIMIT;
        server.addr = server.listening_addr(ready, deadline).await;
        server.wait_serving(tls, deadline).await;
        server
    }

    /// Where it serves gRPC.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends signal `name` (`TERM`, `INT`, `STOP`...), with the shell's
    /// `kill`.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("sh")
            .args(["-c", "kill -s \"$0\" \"$1\"", name, &pid])
            .status()
            .expect("running sh");
        assert!(status.success(), "SIG{name} to {pid}: {status}");
    }

    /// Sends SIGKILL and reaps the process.
    pub fn kill(&mut self) -> ExitStatus {
        self.child.kill().expect("sending SIGKILL");
        self.child.wait().expect("reaping the server")
    }

    /// Whether the process is still running (not yet exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .try_wait()
            .expect("asking whether the server exited")
            .is_none()
    }

    /// Waits for the process to exit and returns how; fails the test, with
    /// the end of its log, if it runs longer than `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("asking whether it exited") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server still runs after {limit:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until its standard error holds a line containing `needle`;
    /// fails the test, with the end of its log, after `limit`.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.stderr().lines().any(|l| l.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "no log line with {needle:?} after {limit:?}\n{}",
                self.log_tail()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Everything it wrote to standard error so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Everything it wrote to standard output so far.
    pub fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The last lines of its standard error, for failure messages, and of
    /// its standard output if it wrote there.
    pub fn log_tail(&self) -> String {
        let tail = |text: &str| {
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        let out = self.stdout();
        if out.is_empty() {
            return tail(&self.stderr());
        }
        format!(
            "{}\n-- standard output:\n{}",
            tail(&self.stderr()),
            tail(&out)
        )
    }

    /// The address from the `ready` log line, once it is there.
    async fn listening_addr(&mut self, ready: &str, deadline: Instant) -> SocketAddr {
        loop {
            if let Some(addr) = self.stderr().lines().find_map(|l| ready_addr(l, ready)) {
                return addr;
            }
            self.fail_if_gone_or_late(deadline, "to log its address");
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls the health service until the whole server reports `SERVING`.
    async fn wait_serving(&mut self, tls: &ClientTlsConfig, deadline: Instant) {
        let channel = chipward_proto::tls::endpoint(&format!("https://{}", self.addr), tls)
            .expect("a loopback URL is a valid endpoint")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
            .connect_lazy();
        let mut health = HealthClient::new(channel);
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
        if let Some(status) = self.child.try_wait().expect("asking whether it exited") {
            panic!(
                "the server exited ({status}) before {what}\n{}",
                self.log_tail()
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server took over {START_LIMIT:?} {what}\n{}",
            self.log_tail()
        );
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Already reaped after an exit or a kill: both calls then fail
        // harmlessly.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A server-reflection call (`grpc.reflection.v1`) held open: one
/// bidirectional stream on which each request gets its answer, for as long
/// as the caller keeps it. A call in flight that the caller controls.
#[derive(Debug)]
pub struct ReflectionStream {
    requests: tokio::sync::mpsc::Sender<ServerReflectionRequest>,
    answers: tonic::Streaming<ServerReflectionResponse>,
}

impl ReflectionStream {
    /// Opens the stream on `channel`.
    pub async fn open(channel: Channel) -> Self {
        let (requests, queue) = tokio::sync::mpsc::channel(4);
        let answers = ServerReflectionClient::new(channel)
            .server_reflection_info(tokio_stream::wrappers::ReceiverStream::new(queue))
            .await
            .expect("opening the reflection stream")
            .into_inner();
        Self { requests, answers }
    }

    /// Sends `ListServices` on the stream and returns the names listed,
    /// sorted.
    pub async fn list_services(&mut self) -> Result<Vec<String>, tonic::Status> {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        self.requests
            .send(request)
            .await
            .map_err(|_| tonic::Status::cancelled("the stream is gone"))?;
        let answer = self
            .answers
            .message()
            .await?
            .ok_or_else(|| tonic::Status::unknown("the stream ended"))?;
        let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
            return Err(tonic::Status::unknown(format!("not a list: {answer:?}")));
        };
        let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
        names.sort();
        Ok(names)
    }

    /// Ends the requests and reads the stream to its end; the call's
    /// outcome, `Ok` if the server ended it cleanly with no further answer.
    pub async fn close(mut self) -> Result<(), tonic::Status> {
        drop(self.requests);
        match self.answers.message().await? {
            None => Ok(()),
            Some(extra) => Err(tonic::Status::unknown(format!("unasked answer: {extra:?}"))),
        }
    }
}

/// The `addr` field of a log line whose message is `ready`: a JSON line
/// (`fields.message`, `fields.addr`) or a text line (`... ready addr=A ...`).
fn ready_addr(line: &str, ready: &str) -> Option<SocketAddr> {
    if let Ok(event) = serde_json::from_str::<serde_json::Value>(line) {
        let fields = event.get("fields")?;
        if fields.get("message")?.as_str()? != ready {
            return None;
        }
        return fields.get("addr")?.as_str()?.parse().ok();
    }
    let plain = strip_ansi(line);
    let (_, after) = plain.split_once(ready)?;
    let (_, value) = after.split_once(" addr=")?;
    value.split_whitespace().next()?.parse().ok()
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        if chars.next() == Some('[') {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_address_from_json_and_text_lines() {
        let addr: SocketAddr = "127.0.0.1:40123".parse().unwrap();
        let json = r#"{"timestamp":"t","level":"INFO","fields":{"message":"up","addr":"127.0.0.1:40123"},"target":"x"}"#;
        assert_eq!(ready_addr(json, "up"), Some(addr));
        assert_eq!(ready_addr(json, "down"), None);

        let text = "2026-01-01T00:00:00Z  INFO x: up addr=127.0.0.1:40123 key=1";
        assert_eq!(ready_addr(text, "up"), Some(addr));
        let coloured = "\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m up \
                        \u{1b}[3maddr\u{1b}[0m\u{1b}[2m=\u{1b}[0m127.0.0.1:40123";
        assert_eq!(ready_addr(coloured, "up"), Some(addr));
        assert_eq!(ready_addr("up addr=nowhere", "up"), None);
    }
}
