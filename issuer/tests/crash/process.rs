//! The `chipward-issuer` binary as a child process: its configuration
//! file, its start (on port 0, ready by gRPC health; see
//! `chipward_tests::server`), SIGSTOP and SIGKILL.
//!
//! The child is killed and reaped when its [`Issuer`] drops, so a failing
//! test leaves no server behind.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chipward_proto::tls::{DEFAULT_SERVER_NAME, TlsFiles};
use chipward_tests::server::ServerProcess;

/// The start-up line that says where the issuer listens.
const READY: &str = "issuer serving with mutual tls";

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
    server: ServerProcess,
}

impl Issuer {
    /// Spawns `chipward-issuer serve --config config`, logging JSON lines to
    /// `<log>.stderr`, and waits until its health service reports `SERVING`.
    pub(super) async fn start(config: &Path, log: &Path) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chipward-issuer"));
        command
            .arg("serve")
            .arg("--config")
            .arg(config)
            .arg("--json-logs")
            .env("RUST_LOG", "info");
        let tls = TlsFiles::in_dir(super::tls_dir(), "admin")
            .load()
            .expect("the shared tls folder holds every client")
            .client(DEFAULT_SERVER_NAME);
        let server = ServerProcess::start(command, log, READY, &tls).await;
        Self { server }
    }

    /// Where it serves gRPC.
    pub(super) fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Stops the process where it stands (SIGSTOP): it answers nothing
    /// more, and what it was doing stays half-done until [`Self::sigkill`].
    pub(super) fn freeze(&self) {
        self.server.signal("STOP");
    }

    /// Sends SIGKILL and reaps the process; fails the test unless the
    /// signal is what ended it.
    pub(super) fn sigkill(&mut self) {
        let status = self.server.kill();
        assert_eq!(
            status.signal(),
            Some(9),
            "the issuer ended otherwise: {status:?}\n{}",
            self.server.log_tail()
        );
    }
}
