//! A throwaway swtpm for tests: provisioned with EK certificates under a
//! local CA in a temporary folder, listening on loopback ports, stopped when
//! dropped. swtpm and tpm2-tools come from Debian's packages, which
//! `scripts/test.sh` installs; when they are missing the test fails and says
//! so rather than skipping.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running swtpm; stopped and removed when dropped.
pub struct Swtpm {
    /// Holds the TPM state, the local CA and any files tests write.
    pub dir: tempfile::TempDir,
    /// The TPM command port on 127.0.0.1; the control port is the next one.
    pub port: u16,
    child: Child,
}

fn require(tool: &str) {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output();
    assert!(
        found.map(|o| o.status.success()).unwrap_or(false),
        "{tool} is not installed: run scripts/test.sh (it installs swtpm, swtpm-tools and tpm2-tools) \
         or apt-get install swtpm swtpm-tools tpm2-tools"
    );
}

/// A port P with P + 1 free too: the swtpm TCTI reaches the control channel
/// at the next port.
fn free_port_pair() -> u16 {
    loop {
        let first = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = first.local_addr().unwrap().port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

impl Swtpm {
    /// Provisions a TPM with RSA and ECC EK certificates and starts it.
    pub fn start() -> Self {
        for tool in [
            "swtpm",
            "swtpm_setup",
            "swtpm_localca",
            "tpm2_quote",
            "tpm2_checkquote",
        ] {
            require(tool);
        }
        let dir = tempfile::tempdir().unwrap();
        provision(dir.path());
        let port = free_port_pair();
        let ctrl = port + 1;
        let child = Command::new("swtpm")
            .args(["socket", "--tpm2", "--server"])
            .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
            .arg("--ctrl")
            .arg(format!("type=tcp,port={ctrl},bindaddr=127.0.0.1"))
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.path().join("state").display()))
            .args(["--flags", "not-need-init,startup-clear"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("swtpm starts");
        let tpm = Self { dir, port, child };
        tpm.wait_listening();
        tpm
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "swtpm did not listen on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The TCTI string for tpm2-tools and tss-esapi.
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Runs a tpm2-tools command against this TPM; panics with its output on
    /// failure.
    pub fn tools(&self, program: &str, args: &[&str]) -> Vec<u8> {
        let out = Command::new(program)
            .args(args)
            .current_dir(self.dir.path())
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env("TSS2_LOG", "all+none")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `swtpm_setup` with a local CA whose state lives in the folder.
fn provision(dir: &Path) {
    let ca = dir.join("ca");
    let certs = dir.join("ek-certs");
    for d in [&ca, &certs, &dir.join("state")] {
        std::fs::create_dir_all(d).unwrap();
    }
    let localca = dir.join("swtpm-localca.conf");
    std::fs::write(
        &localca,
        format!(
            "statedir = {ca}\nsigningkey = {ca}/signkey.pem\nissuercert = {ca}/issuercert.pem\ncertserial = {ca}/certserial\n",
            ca = ca.display()
        ),
    )
    .unwrap();
    let options = dir.join("swtpm-localca.options");
    std::fs::write(
        &options,
        "--platform-manufacturer Chipward\n--platform-version 2.1\n--platform-model test\n",
    )
    .unwrap();
    let localca_tool = Command::new("sh")
        .arg("-c")
        .arg("command -v swtpm_localca")
        .output()
        .unwrap();
    let localca_tool = String::from_utf8_lossy(&localca_tool.stdout)
        .trim()
        .to_owned();
    let setup = dir.join("swtpm_setup.conf");
    std::fs::write(
        &setup,
        format!(
            "create_certs_tool = {localca_tool}\ncreate_certs_tool_config = {}\ncreate_certs_tool_options = {}\n",
            localca.display(),
            options.display()
        ),
    )
    .unwrap();
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
        .expect("swtpm_setup runs");
    assert!(
        out.status.success(),
        "swtpm_setup failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
