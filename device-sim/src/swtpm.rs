//! A throwaway swtpm (a TPM 2.0 implementation in software), provisioned
//! with EK certificates under a local CA in a temporary folder and listening
//! on loopback only; stopped and removed when dropped. The demo's hosts and
//! the TPM tests run against it.
//!
//! Only process management lives here, so it builds without the TSS
//! library. swtpm, swtpm_setup and swtpm_localca come from Debian's `swtpm`
//! and `swtpm-tools` packages.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use thiserror::Error;

/// The tools a provisioned swtpm needs.
pub const TOOLS: [&str; 3] = ["swtpm", "swtpm_setup", "swtpm_localca"];

/// Why a swtpm could not be started.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// A tool is not installed.
    #[error(
        "{0} is not installed: apt-get install swtpm swtpm-tools (scripts/test.sh and scripts/demo.sh do)"
    )]
    Missing(&'static str),
    /// A file or process operation failed.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// swtpm_setup refused.
    #[error("swtpm_setup failed: {0}")]
    Setup(String),
    /// swtpm did not listen in time.
    #[error("swtpm did not listen on port {0} within 10 s")]
    NotListening(u16),
}

/// A running swtpm.
pub struct Swtpm {
    /// Holds the TPM state, the local CA and any files callers write.
    pub dir: tempfile::TempDir,
    /// The TPM command port on 127.0.0.1; the control port is the next one.
    pub port: u16,
    child: Child,
}

impl std::fmt::Debug for Swtpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Swtpm").field("port", &self.port).finish()
    }
}

/// Whether every tool is on the PATH.
pub fn available() -> bool {
    TOOLS.iter().all(|t| which(t).is_some())
}

impl Swtpm {
    /// Provisions a TPM with RSA and ECC EK certificates and starts it.
    pub fn start() -> Result<Self, SwtpmError> {
        for tool in TOOLS {
            which(tool).ok_or(SwtpmError::Missing(tool))?;
        }
        let io = |what| move |source| SwtpmError::Io { what, source };
        let dir = tempfile::tempdir().map_err(io("creating a temporary folder"))?;
        provision(dir.path())?;
        let port = free_port_pair().map_err(io("finding a free port"))?;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().join("state").display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io("starting swtpm"))?;
        let tpm = Self { dir, port, child };
        tpm.wait_listening()?;
        Ok(tpm)
    }

    /// The TCTI string for tpm2-tools and tss-esapi.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The local CA's root certificate (PEM), the TPM vendor root to trust.
    pub fn root_ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca/swtpm-localca-rootca-cert.pem")
    }

    /// The local CA's issuing certificate (PEM), the EK certificate's issuer.
    pub fn issuer_ca_pem(&self) -> PathBuf {
        self.dir.path().join("ca/issuercert.pem")
    }

    fn wait_listening(&self) -> Result<(), SwtpmError> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err(SwtpmError::NotListening(self.port));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// A port P with P + 1 free too: the swtpm TCTI reaches the control channel
/// at the next port.
fn free_port_pair() -> std::io::Result<u16> {
    loop {
        let first = TcpListener::bind("127.0.0.1:0")?;
        let port = first.local_addr()?.port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return Ok(port);
        }
    }
}

/// `swtpm_setup` with a local CA whose state lives in the folder, so nothing
/// is written to /etc or /var.
fn provision(dir: &Path) -> Result<(), SwtpmError> {
    let io = |what| move |source| SwtpmError::Io { what, source };
    let ca = dir.join("ca");
    let certs = dir.join("ek-certs");
    for d in [&ca, &certs, &dir.join("state")] {
        std::fs::create_dir_all(d).map_err(io("creating the swtpm folders"))?;
    }
    let localca = dir.join("swtpm-localca.conf");
    let conf = format!(
        "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
        ca = ca.display()
    );
    std::fs::write(&localca, conf).map_err(io("writing the local ca configuration"))?;
    let options = dir.join("swtpm-localca.options");
    let platform =
        "--platform-manufacturer Chipward\n--platform-version 2.1\n--platform-model sim\n";
    std::fs::write(&options, platform).map_err(io("writing the local ca options"))?;
    let tool = which("swtpm_localca").ok_or(SwtpmError::Missing("swtpm_localca"))?;
    let setup = dir.join("swtpm_setup.conf");
    let conf = format!(
        "create_certs_tool = {}\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\n",
        tool.display(),
        localca.display(),
        options.display()
    );
    std::fs::write(&setup, conf).map_err(io("writing the swtpm_setup configuration"))?;
    let out = Command::new("swtpm_setup")
        .args([
            "--tpm2",
            "--create-ek-cert",
            "--create-platform-cert",
            "--overwrite",
        ])
        .arg("--tpmstate")
        .arg(dir.join("state"))
        .arg("--config")
        .arg(&setup)
        .arg("--write-ek-cert-files")
        .arg(&certs)
        .output()
        .map_err(io("running swtpm_setup"))?;
    if !out.status.success() {
        return Err(SwtpmError::Setup(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(())
}
