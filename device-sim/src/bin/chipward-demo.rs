//! `chipward-demo`: the fleet demo on the embedded defaults. Starts the
//! issuer and verifier on loopback, runs a fleet of simulated chips with
//! faults injected, and prints a per-chip table and a fleet summary. With
//! `--issuer`, `--verifier` and `--pki` it drives servers already running.
//! With `--scale` it runs honest chips at scale instead: each enrolled,
//! licensed and attested once, streaming, reporting wall time, peak memory
//! and CPU time.

use std::path::PathBuf;

use anyhow::Context;
use chipward_device_sim::bulk::Target;
use chipward_device_sim::bulk::scale::{self, STEPS, ScalePlan, ScaleReport};
use chipward_device_sim::fleet::{FleetPlan, SITES, TENANTS};
use chipward_device_sim::usage::Usage;
use chipward_device_sim::{bench, demo};
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
    /// Run the fleet at scale instead: `--chips` honest chips enrolled,
    /// licensed and attested one by one, streaming, with a progress line
    /// and a report of wall time, peak memory and CPU time.
    #[arg(long, conflicts_with_all = ["all", "write_reference_values"])]
    scale: bool,
    /// With --scale, show progress on standard error even when it is not
    /// a terminal.
    #[arg(long, requires = "scale")]
    progress: bool,
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

    if args.scale {
        return at_scale(&args).await;
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

/// The fleet at scale: every chip honest, each enrolled, licensed and
/// attested once; fails when any chip did not pass.
async fn at_scale(args: &Args) -> anyhow::Result<()> {
    let plan = ScalePlan {
        chips: args.chips,
        concurrency: FleetPlan::default().concurrency,
        progress: args.progress,
    };
    println!(
        "Chipward fleet at scale: {} honest chips, each enrolled, licensed and attested over gRPC, {} in flight",
        plan.chips, plan.concurrency
    );
    let target = match (&args.issuer, &args.verifier, &args.pki) {
        (Some(issuer), Some(verifier), Some(pki)) => Target::running(issuer, verifier, pki)?,
        _ => Target::in_process(args.dir.as_deref()).await?,
    };
    println!("Servers: {}", target.description);
    target.ready().await?;
    let before = Usage::current();
    let report = scale::run(&target, &plan).await?;
    let usage = Usage::current();
    let run_cpu = usage
        .cpu()
        .zip(before.cpu())
        .map(|(a, b)| a.saturating_sub(b));
    let ledger = target.ledger_size();
    drop(target);

    print!("{}", render_scale(&report, &usage, run_cpu, ledger));
    println!(
        "  machine: {}; finished {}",
        bench::machine(),
        bench::utc_now()?
    );
    let failures = report.failures;
    anyhow::ensure!(failures == 0, "{failures} honest chips did not pass");
    Ok(())
}

/// The scale run's summary.
fn render_scale(
    report: &ScaleReport,
    usage: &Usage,
    run_cpu: Option<std::time::Duration>,
    ledger: Option<u64>,
) -> String {
    let secs = report.elapsed.as_secs_f64();
    let mut out = format!(
        "\nScale run: {} chips in {secs:.1} s ({:.1} chips/s)\n",
        report.chips,
        report.chips as f64 / secs
    );
    out += &format!("  passed {}, failed {}\n", report.passed, report.failures);
    for sample in &report.failure_samples {
        out += &format!("    {sample}\n");
    }
    let reached = (report.passed + report.failures).max(1) as f64;
    let steps: Vec<String> = STEPS
        .iter()
        .zip(&report.step_totals)
        .map(|(step, total)| format!("{step} {:.1} ms", total.as_secs_f64() * 1e3 / reached))
        .collect();
    out += &format!("  mean time per chip in each step: {}\n", steps.join(", "));
    let cores = run_cpu
        .map(|cpu| {
            format!(
                " ({:.2} cores busy on average during the run)",
                cpu.as_secs_f64() / secs
            )
        })
        .unwrap_or_default();
    out += &format!("  this process: {usage}{cores}\n");
    if let Some(bytes) = ledger {
        out += &format!(
            "  issuer ledger on disk: {:.1} MiB\n",
            bytes as f64 / (1024.0 * 1024.0)
        );
    }
    out
}
