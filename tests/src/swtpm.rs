//! The swtpm the TPM tests run against: `chipward_device_sim::swtpm`, started
//! so that a missing tool fails the test with a message saying how to get
//! it, never a silent skip, plus running tpm2-tools against it.

use std::process::Command;

pub use chipward_device_sim::swtpm::Swtpm;

/// Starts a provisioned swtpm or fails the test, saying why.
pub fn start() -> Swtpm {
    for tool in ["tpm2_quote", "tpm2_checkquote"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output();
        assert!(
            found.map(|o| o.status.success()).unwrap_or(false),
            "{tool} is not installed: run scripts/test.sh, or apt-get install tpm2-tools"
        );
    }
    Swtpm::start().unwrap_or_else(|e| panic!("{e}"))
}

/// Runs a tpm2-tools command against `tpm` in its folder; panics with the
/// tool's output on failure.
pub fn tools(tpm: &Swtpm, program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .current_dir(tpm.dir.path())
        .env("TPM2TOOLS_TCTI", tpm.tcti())
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
