//! `chipward-demo`: the fleet demo on the embedded defaults. Starts the
//! issuer and verifier on loopback, runs a fleet of simulated chips with
//! faults injected, and prints a per-chip table and a fleet summary. With
//! `--issuer`, `--verifier` and `--pki` it drives servers already running.

use std::path::PathBuf;

use anyhow::Context;
use chipward_device_sim::demo;
use chipward_device_sim::fleet::{FleetPlan, SITES, TENANTS};
use clap::Parser;

#[derive(Parser)]
#[command(
    version,
    about = "Chipward fleet demo: the whole loop over gRPC on loopback"
)]
struct Args {
    /// Number of simulated chips.
    #[arg(long, default_value_t = 300)]
    chips: usize,
    /// Run without injected faults.
    #[arg(long)]
    no_faults: bool,
    /// Keep the PKI and ledger in this folder (must not hold a PKI yet);
    /// default a temporary folder.
    #[arg(long, conflicts_with = "pki")]
    dir: Option<PathBuf>,
    /// Print every chip, not only the faulty ones and the first few.
    #[arg(long)]
    all: bool,
    /// Drive an issuer already serving at this URL (with --verifier, --pki).
    #[arg(long, requires_all = ["verifier", "pki"])]
    issuer: Option<String>,
    /// Drive a verifier already serving at this URL.
    #[arg(long, requires_all = ["issuer", "pki"])]
    verifier: Option<String>,
    /// The PKI folder those servers use (made by `chipward-pki init`).
    #[arg(long)]
    pki: Option<PathBuf>,
    /// Write the reference values of the simulated firmware to this file
    /// (for a verifier's `reference_values` key) and exit.
    #[arg(long)]
    write_reference_values: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .init();

    let args = Args::parse();
    let plan = FleetPlan {
        chips: args.chips,
        faults: !args.no_faults,
        ..FleetPlan::default()
    };
    if let Some(path) = &args.write_reference_values {
        std::fs::write(path, demo::reference_values(&plan).to_toml())
            .with_context(|| format!("writing {}", path.display()))?;
        println!(
            "reference values for {} firmware {} written to {}",
            plan.model,
            plan.firmware,
            path.display()
        );
        return Ok(());
    }

    println!(
        "Chipward fleet demo: {} chips, {} sites, {} tenants, faults {}",
        plan.chips,
        SITES.len(),
        TENANTS.len(),
        if plan.faults { "injected" } else { "off" }
    );
    let report = match (&args.issuer, &args.verifier, &args.pki) {
        (Some(issuer), Some(verifier), Some(pki)) => {
            println!(
                "Driving issuer {issuer} and verifier {verifier}, PKI in {}",
                pki.display()
            );
            // Servers reached by URL keep their own clocks: no later rounds.
            let clock = std::sync::Arc::new(chipward_device_sim::clock::ScenarioClock::wall());
            demo::run_against(pki, issuer, verifier, &plan, &[], Default::default(), clock).await?
        }
        _ => {
            let temp = tempfile::tempdir()?;
            let dir = args
                .dir
                .clone()
                .unwrap_or_else(|| temp.path().to_path_buf());
            println!(
                "Issuer and verifier on loopback; PKI and ledger in {}",
                dir.display()
            );
            demo::run(&dir, &plan).await?
        }
    };
    print!("{}", demo::render(&report, args.all));
    Ok(())
}
