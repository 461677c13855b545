//! `chipward-verifier`: run the appraisal service, or appraise an SPDM
//! report from files and print the result as JSON.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::Ed25519Key;
use chipward_certs::pem;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::result::Status;
use chipward_verifier::appraisal::{AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::config::VerifierConfig;
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::revocation::RevocationCache;
use chipward_verifier::service::{self, VerifierService};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    version,
    about = "Chipward verifier: appraises chip evidence against license tokens"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the gRPC verifier.
    Serve {
        /// TOML configuration; every key has a default.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Overrides the listen address.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// Logs as JSON lines.
        #[arg(long)]
        json_logs: bool,
    },
    /// Appraises an SPDM GET_MEASUREMENTS transcript read from files; prints
    /// the result as JSON and exits 0 only if no claim failed.
    AppraiseReport {
        /// The transcript, as hex text (like NVIDIA's samples) or raw bytes.
        #[arg(long)]
        report: PathBuf,
        /// PEM certificate chain, leaf first.
        #[arg(long)]
        chain: PathBuf,
        /// PEM file of the trusted root.
        #[arg(long)]
        root: PathBuf,
        /// The nonce the request must carry, 64 hex digits.
        #[arg(long)]
        nonce: Option<String>,
        /// Appraisal time, Unix seconds; default now.
        #[arg(long)]
        at: Option<i64>,
        /// Reference values file.
        #[arg(long)]
        reference_values: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            json_logs,
        } => serve(config, listen, json_logs).await,
        Command::AppraiseReport {
            report,
            chain,
            root,
            nonce,
            at,
            reference_values,
        } => appraise_report(report, chain, root, nonce, at, reference_values),
    }
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    json: bool,
) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }

    let mut config = match config {
        Some(path) => VerifierConfig::from_file(&path)
            .with_context(|| format!("reading {}", path.display()))?,
        None => VerifierConfig::default(),
    };
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let loaded = config
        .load()
        .context("loading keys, roots and reference values")?;
    let clock = service::system_clock();
    tokio::spawn(service::refresh_revocations(
        config.issuer_endpoint.clone(),
        loaded.issuer_keys,
        loaded.revocations,
        Duration::from_millis(config.revocation_refresh_ms.max(100)),
        Arc::clone(&clock),
    ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    service::announce(listener.local_addr()?, &loaded.appraiser.result_key_id());
    let svc = VerifierService::new(loaded.appraiser, clock);
    service::serve(svc, listener, config.max_message_bytes, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}

fn appraise_report(
    report: PathBuf,
    chain: PathBuf,
    root: PathBuf,
    nonce: Option<String>,
    at: Option<i64>,
    reference_values: Option<PathBuf>,
) -> anyhow::Result<()> {
    let raw = std::fs::read(&report).with_context(|| format!("reading {}", report.display()))?;
    let transcript = match std::str::from_utf8(&raw) {
        Ok(text) if text.trim().bytes().all(|b| b.is_ascii_hexdigit()) => hex::decode(text.trim())?,
        _ => raw,
    };
    let chain = pem::parse_certificates(&std::fs::read_to_string(&chain)?)?;
    let roots = pem::parse_certificates(&std::fs::read_to_string(&root)?)?;
    let nonce = nonce
        .map(|n| -> anyhow::Result<[u8; 32]> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(n.trim(), &mut out).context("--nonce must be 64 hex digits")?;
            Ok(out)
        })
        .transpose()?;
    let references = match reference_values {
        Some(p) => ReferenceValues::from_toml(&std::fs::read_to_string(p)?)?,
        None => ReferenceValues::default(),
    };
    let now = at.unwrap_or_else(|| service::system_clock()() / 1000);

    // The result is signed with a throwaway key: it is printed, not kept.
    let appraiser = Appraiser::new(
        AppraisalSettings::default(),
        Roots::new(&roots, ChainPolicy::default())?,
        references,
        TrustedKeys::new(),
        Challenges::new(NonceKey::generate(), 0),
        Arc::new(RevocationCache::new(0)),
        Ed25519Key::generate()?,
    );
    let appraisal = appraiser.appraise_report(&transcript, &chain, nonce.as_ref(), now)?;
    println!("{}", serde_json::to_string_pretty(&appraisal.result)?);
    if appraisal
        .result
        .claims
        .iter()
        .any(|c| c.status == Status::Fail)
    {
        std::process::exit(1);
    }
    Ok(())
}
