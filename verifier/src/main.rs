//! `chipward-verifier`: run the appraisal service, or appraise an SPDM
//! report from files and print the result as JSON.
//!
//! `serve` logs to stderr (`RUST_LOG` sets the filter, default `info`) and
//! runs until SIGINT or SIGTERM; then it refuses new connections, gives the
//! calls in flight `shutdown_grace_secs` to finish and exits 0.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::Ed25519Key;
use chipward_certs::pem;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::metrics::serve_metrics;
use chipward_proto::result::Status;
use chipward_proto::serving::{Shutdown, serve_within_grace};
use chipward_proto::tpm::alg;
use chipward_proto::tpm::pcr::{PcrSelection, parse_tpm2_tools_serialized};
use chipward_verifier::appraisal::{AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::config::VerifierConfig;
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::evidence::tpm::check_quote_files;
use chipward_verifier::evidence::tpm::key::QuoteKey;
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::rate_limits::VerifierRateLimits;
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
    /// Appraises an SPDM GET_MEASUREMENTS transcript read from files and
    /// prints the result as JSON. Exits 0 when every claim passed, 1 when one
    /// failed, 3 when none failed but some stayed unknown (for example no
    /// reference values for the chip's model, or no --nonce).
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
    /// Checks a TPM 2.0 quote made by `tpm2_quote`, as `tpm2_checkquote`
    /// does; exits 0 if it holds and 1 otherwise.
    CheckQuote {
        /// The TPMS_ATTEST (`tpm2_quote -m`).
        #[arg(long, short = 'm')]
        message: PathBuf,
        /// The TPMT_SIGNATURE (`tpm2_quote -s`).
        #[arg(long, short = 's')]
        signature: PathBuf,
        /// The attestation key: PEM SubjectPublicKeyInfo or TPM2B_PUBLIC.
        #[arg(long, short = 'u')]
        public: PathBuf,
        /// PCR values (`tpm2_quote -o`): the serialized form, or the values
        /// form together with --pcr-list.
        #[arg(long, short = 'f')]
        pcrs: Option<PathBuf>,
        /// PCRs the values file holds, for the values form, e.g. sha256:0,1,2.
        #[arg(long, short = 'l')]
        pcr_list: Option<String>,
        /// The qualifying data (nonce) the quote must carry, in hex; without
        /// it the quote must carry none, as with tpm2_checkquote.
        #[arg(long, short = 'q')]
        qualification: Option<String>,
        /// Accept SHA-1 banks and RSA signatures over SHA-1 (ring has no
        /// ECDSA with SHA-1, so those stay refused).
        #[arg(long)]
        allow_sha1: bool,
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
        Command::CheckQuote {
            message,
            signature,
            public,
            pcrs,
            pcr_list,
            qualification,
            allow_sha1,
        } => check_quote(&QuoteFiles {
            message,
            signature,
            public,
            pcrs,
            pcr_list,
            qualification,
            allow_sha1,
        }),
    }
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<std::net::SocketAddr>,
    json: bool,
) -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init()
    } else {
        builder.init()
    }
    let shutdown = Shutdown::on_signals();

    let mut config = match config {
        Some(path) => VerifierConfig::from_file(&path)
            .with_context(|| format!("reading {}", path.display()))?,
        None => VerifierConfig::default(),
    };
    if let Some(addr) = listen {
        config.listen = addr;
    }
    let limits = config.rate_limits.settings()?;
    let grace = config.shutdown_grace()?;
    let loaded = config
        .load()
        .context("loading keys, roots and reference values")?;
    let tls = config
        .tls_files()
        .load()
        .context("loading the tls certificate and key")?;
    let clock = service::system_clock();
    tokio::spawn(service::refresh_revocations(
        config.issuer_endpoint.clone(),
        tls.client(&config.issuer_server_name),
        loaded.issuer_keys,
        loaded.revocations,
        Duration::from_millis(config.revocation_refresh_ms.max(100)),
        Arc::clone(&clock),
    ));
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    service::announce(listener.local_addr()?, &loaded.appraiser.result_key_id());
    let svc = VerifierService::new(loaded.appraiser, clock)
        .with_rate_limits(VerifierRateLimits::system(&limits));
    if let Some(addr) = config.metrics_listen {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "metrics_listen {addr} is not a loopback address"
        );
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "metrics serving");
        let render = svc.metrics().renderer();
        tokio::spawn(serve_metrics(metrics, render, std::future::pending()));
    }
    let serving = service::serve(
        svc,
        listener,
        tls.server(),
        config.max_message_bytes,
        shutdown.clone().requested(),
    );
    serve_within_grace(serving, shutdown, grace).await?;
    tracing::info!("verifier stopped");
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
    match appraisal.result.verdict {
        Status::Pass => Ok(()),
        Status::Fail => std::process::exit(1),
        Status::Unknown => std::process::exit(3),
    }
}

struct QuoteFiles {
    message: PathBuf,
    signature: PathBuf,
    public: PathBuf,
    pcrs: Option<PathBuf>,
    pcr_list: Option<String>,
    qualification: Option<String>,
    allow_sha1: bool,
}

fn check_quote(files: &QuoteFiles) -> anyhow::Result<()> {
    let read = |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
    let message = read(&files.message)?;
    let signature = read(&files.signature)?;
    let key = QuoteKey::from_file_bytes(&read(&files.public)?)?;
    let nonce = files
        .qualification
        .as_deref()
        .map(hex::decode)
        .transpose()
        .context("--qualification must be hex")?;
    let reported = match &files.pcrs {
        None => None,
        Some(path) => {
            let bytes = read(path)?;
            Some(match &files.pcr_list {
                Some(list) => {
                    let selection = parse_pcr_list(list)?;
                    let values = selection.split_values(&bytes)?;
                    (selection, values)
                }
                None => parse_tpm2_tools_serialized(&bytes)?,
            })
        }
    };

    let outcome = check_quote_files(
        &message,
        &signature,
        &key,
        nonce.as_deref().unwrap_or_default(),
        reported.as_ref().map(|(s, v)| (s, v)),
        files.allow_sha1,
    );
    match outcome {
        Ok(quote) => {
            let pcrs: serde_json::Map<String, serde_json::Value> = quote
                .pcrs
                .0
                .iter()
                .map(|((bank, index), v)| {
                    (
                        format!("{}:{index}", alg::name(*bank)),
                        hex::encode(v).into(),
                    )
                })
                .collect();
            let out = serde_json::json!({
                "verdict": "pass",
                "nonce": hex::encode(&quote.attest.extra_data),
                "clock": quote.attest.clock_info.clock,
                "reset_count": quote.attest.clock_info.reset_count,
                "restart_count": quote.attest.clock_info.restart_count,
                "signed_pcrs": pcrs,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
        Err(e) => {
            let reason = chipward_verifier::claims::with_sources(&e);
            println!(
                "{}",
                serde_json::json!({ "verdict": "fail", "reason": reason })
            );
            std::process::exit(1);
        }
    }
}

/// `sha256:0,1,2` or several banks joined by `+`, as tpm2-tools writes them.
fn parse_pcr_list(list: &str) -> anyhow::Result<PcrSelection> {
    let mut banks = Vec::new();
    for bank in list.split('+') {
        let (hash, indices) = bank
            .split_once(':')
            .context("pcr list must look like sha256:0,1,2")?;
        let hash = match hash {
            "sha1" => alg::SHA1,
            "sha256" => alg::SHA256,
            "sha384" => alg::SHA384,
            "sha512" => alg::SHA512,
            other => anyhow::bail!("unknown pcr bank {other}"),
        };
        let indices = indices
            .split(',')
            .map(|i| {
                i.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|i| *i < 64)
                    .context("pcr index must be 0 to 63")
            })
            .collect::<anyhow::Result<Vec<u32>>>()?;
        banks.push((hash, indices));
    }
    let refs: Vec<(u16, &[u32])> = banks.iter().map(|(h, i)| (*h, i.as_slice())).collect();
    Ok(PcrSelection::new(&refs))
}
