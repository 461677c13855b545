//! `chipward-audit`: checks an audit log export offline, with the issuer's
//! public key and nothing else, and prints a short summary.
//!
//! Exit codes: 0 when every check holds, 1 when one fails (the reason is
//! printed), 2 on usage errors or files that cannot be read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chipward_certs::keys::key_id_for;
use chipward_certs::pem;
use chipward_proto::audit::{AuditReport, MAX_EXPORT_LEN, MAX_TREE_HEAD_LEN, Scope, check_json};
use chipward_proto::cose::TrustedKeys;
use chipward_verifier::claims::with_sources;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Chipward audit: checks audit log exports offline")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks an export against the issuer's public keys. Exits 0 when it
    /// holds, 1 when a check fails, 2 on usage or I/O errors.
    Check {
        /// The export (JSON).
        #[arg(long)]
        export: PathBuf,
        /// A signed tree head kept from before (raw bytes or base64 text);
        /// the export must be consistent with it.
        #[arg(long)]
        trusted_head: Option<PathBuf>,
        /// The issuer's Ed25519 public key, PEM (`ED25519 PUBLIC KEY`);
        /// repeat for several.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let Command::Check {
        export,
        trusted_head,
        keys,
    } = Cli::parse().command;
    match run(&export, trusted_head.as_deref(), &keys) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chipward-audit: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(
    export: &Path,
    trusted_head: Option<&Path>,
    key_files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    let mut keys = TrustedKeys::new();
    for path in key_files {
        let public = pem::parse_ed25519_public(&read_text(path)?)
            .with_context(|| format!("{} is not an ed25519 public key", path.display()))?;
        keys = keys.with(key_id_for(&public), public);
    }
    let trusted = trusted_head.map(read_head).transpose()?;
    let json = read_bounded(export, MAX_EXPORT_LEN)?;

    match check_json(&json, &keys, trusted.as_deref()) {
        Ok(report) => {
            print_summary(&report);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("FAIL: {}", with_sources(&e));
            Ok(ExitCode::from(1))
        }
    }
}

fn print_summary(report: &AuditReport) {
    let head = report.head.head();
    let scope = match report.scope {
        Scope::Full => format!("full log prefix [0, {})", head.size),
        Scope::Part => format!("{} selected entries", report.entries.len()),
    };
    println!("OK: log {:?}, {scope}", report.log_id);
    println!(
        "tree head: size {}, root {}, timestamp {}, key {}",
        head.size,
        hex::encode(head.root),
        head.timestamp,
        report.head.key_id()
    );
    let sizes: Vec<String> = report
        .earlier_heads
        .iter()
        .map(|h| h.size.to_string())
        .collect();
    println!(
        "earlier heads consistent: {} (sizes: {})",
        sizes.len(),
        sizes.join(", ")
    );
    if let Some(t) = &report.trusted_head {
        println!("trusted head consistent: size {}", t.size);
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, e) in &report.entries {
        *kinds.entry(e.kind.name()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "entries checked: {} ({})",
        report.entries.len(),
        kinds.join(", ")
    );
    println!("artifacts referenced: {}", report.artifacts.len());
}

/// A signed tree head file: the raw COSE bytes, or them in base64 text (as
/// they appear in an export's `tree_head`).
fn read_head(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = read_bounded(path, 4 * MAX_TREE_HEAD_LEN)?;
    let text: Vec<u8> = bytes
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    // Raw bytes start with the COSE_Sign1 tag (0xd2), never base64 text.
    Ok(STANDARD.decode(&text).unwrap_or(bytes))
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Reads a file, refusing one larger than `max` before reading it.
fn read_bounded(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    if len > max as u64 {
        anyhow::bail!(
            "{} is {len} bytes, over the {max}-byte limit",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}
