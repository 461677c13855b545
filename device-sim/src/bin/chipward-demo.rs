//! `chipward-demo`: the fleet demo on the embedded defaults. Starts the
//! issuer and verifier on loopback, runs a fleet of simulated chips with
//! faults injected, and prints a per-chip table and a fleet summary.

use std::path::PathBuf;

use chipward_device_sim::demo;
use chipward_device_sim::fleet::FleetPlan;
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
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Print every chip, not only the faulty ones and the first few.
    #[arg(long)]
    all: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let args = Args::parse();
    let plan = FleetPlan {
        chips: args.chips,
        faults: !args.no_faults,
        ..FleetPlan::default()
    };
    let temp;
    let dir = match args.dir {
        Some(d) => d,
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    println!(
        "Chipward fleet demo: {} chips, {} sites, {} tenants, faults {}",
        plan.chips,
        4,
        5,
        if plan.faults { "injected" } else { "off" }
    );
    println!("PKI and ledger in {}", dir.display());
    let report = demo::run(&dir, &plan).await?;
    print!("{}", demo::render(&report, args.all));
    Ok(())
}
