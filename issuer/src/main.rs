//! `chipward-issuer`: runs the license issuer from a configuration file.
//!
//! Reads the TOML configuration (see `issuer.example.toml`), loads the PKI
//! files it names, opens the ledger (SQLite or PostgreSQL) and serves gRPC until SIGINT or
//! SIGTERM, with the Prometheus metrics endpoint beside it when
//! `metrics_listen` is set. On the signal it refuses new connections and
//! gives the calls in flight `shutdown_grace_secs` to finish, then exits 0.
//! Logs go to stderr; `RUST_LOG` sets the filter (default `info`).

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use chipward_issuer::ledger::{self, LedgerLocation};
use chipward_issuer::{IssuerConfig, IssuerService, SystemClock, serve};
use chipward_proto::metrics::serve_metrics;
use chipward_proto::serving::{Shutdown, serve_within_grace};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(version, about = "Chipward license issuer")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the issuer's gRPC API.
    Serve {
        /// TOML configuration file; without one, every default applies.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address, overriding the configuration.
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Ledger, overriding the configuration: a SQLite file path or a
        /// postgres:// URL.
        #[arg(long)]
        db: Option<LedgerLocation>,
        /// Log JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let Command::Serve {
        config,
        listen,
        db,
        json_logs,
    } = Cli::parse().command;
    init_logging(json_logs);
    let shutdown = Shutdown::on_signals();

    let mut config = match &config {
        Some(path) => IssuerConfig::load(path)?,
        None => IssuerConfig::default(),
    };
    config.listen = listen.unwrap_or(config.listen);
    config.database = db.unwrap_or(config.database);
    let settings = config.settings()?;
    let grace = config.shutdown_grace()?;
    let pki = config.load_pki()?;
    let tpm_roots = config.load_tpm_roots()?;
    let tls = config
        .tls_files()
        .load()
        .context("loading the tls certificate and key")?;
    tracing::info!(count = tpm_roots.len(), "tpm roots loaded");

    let location = config.database.clone();
    let options = config.postgres_options()?;
    let ledger = tokio::task::spawn_blocking(move || ledger::open(&location, &options))
        .await?
        .with_context(|| format!("cannot open ledger {}", config.database))?;
    tracing::info!(database = %config.database, "ledger open");
    let mut service = IssuerService::from_pki(settings, pki, ledger, Arc::new(SystemClock))
        .with_tpm_roots(tpm_roots);
    if let Some((policy, digest)) = config.load_compliance()? {
        tracing::info!(digest = %hex::encode(digest), "compliance policy loaded");
        service = service.with_compliance(policy, digest);
    }
    if let Some((bytes, format)) = config.load_screening_list()? {
        let (label, date) = (&config.screening_list_label, &config.screening_list_date);
        service
            .load_list(label, date, format, &bytes)
            .await
            .map_err(|e| anyhow::anyhow!("screening list refused: {e}"))?;
    }

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    if let Some(addr) = config.metrics_listen {
        anyhow::ensure!(
            addr.ip().is_loopback(),
            "metrics_listen {addr} is not a loopback address"
        );
        let metrics = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        tracing::info!(%addr, "metrics serving");
        tokio::spawn(serve_metrics(
            metrics,
            service.metrics_renderer(),
            std::future::pending(),
        ));
    }
    let serving = serve(
        service,
        listener,
        tls.server(),
        shutdown.clone().requested(),
    );
    serve_within_grace(serving, shutdown, grace).await?;
    tracing::info!("issuer stopped");
    Ok(())
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal, not in files or the journal.
    let ansi = std::io::stderr().is_terminal();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
}
