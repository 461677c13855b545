//! `chipward-load`: drives the verifier over gRPC at high concurrency.
//! Licenses `--chips` simulated chips through the issuer, appraises each
//! once, then runs `--workers` workers that loop challenge, evidence and
//! Appraise for `--seconds`. Reports passed appraisals per second, the
//! failures, and Appraise latency, beside the raw ring rate of the
//! signature work one appraisal needs, measured in the same run. Starts
//! its own issuer and verifier on loopback unless `--issuer`, `--verifier`
//! and `--pki` name running ones.
//!
//! A benchmark, not a test; but honest chips must pass, so any failure is
//! reported and makes the exit code non-zero.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, ensure};
use chipward_device_sim::bench;
use chipward_device_sim::bulk::Target;
use chipward_device_sim::bulk::load::{self, LoadPlan, LoadReport, Pass};
use chipward_device_sim::usage::Usage;
use clap::Parser;

/// Chips licensed at once while preparing.
const LICENSING_CONCURRENCY: usize = 32;

#[derive(Parser)]
#[command(
    version,
    about = "Chipward load: Appraise over gRPC at high concurrency, beside a raw-signature baseline"
)]
struct Args {
    /// Simulated chips, each enrolled and licensed once.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    chips: u64,
    /// Concurrent workers, each with one attestation in flight.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    workers: u64,
    /// HTTP/2 connections to the verifier, shared by the workers.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    connections: u64,
    /// Timed wall time, seconds, after a warm-up pass over every chip.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Timed wall time of each baseline measurement, seconds; the baseline
    /// runs before and after the load and the better run counts.
    #[arg(long, default_value_t = 3.0)]
    baseline_seconds: f64,
    /// Show progress on standard error even when it is not a terminal.
    #[arg(long)]
    progress: bool,
    /// Drive an issuer already serving at this URL (with --verifier, --pki).
    #[arg(long, requires_all = ["verifier", "pki"])]
    issuer: Option<String>,
    /// Drive a verifier already serving at this URL.
    #[arg(long, requires_all = ["issuer", "pki"])]
    verifier: Option<String>,
    /// The PKI folder those servers use (made by `chipward-pki init`).
    #[arg(long, requires_all = ["issuer", "verifier"])]
    pki: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let args = Args::parse();
    let duration = Duration::try_from_secs_f64(args.seconds).context("--seconds")?;
    let span = Duration::try_from_secs_f64(args.baseline_seconds).context("--baseline-seconds")?;
    ensure!(
        !duration.is_zero() && !span.is_zero(),
        "times must be positive"
    );
    let plan = LoadPlan {
        workers: usize::try_from(args.workers)?,
        connections: usize::try_from(args.connections)?,
        duration,
        progress: args.progress,
    };

    println!(
        "command  {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!("machine  {}", bench::machine());
    println!("date     {}", bench::utc_now()?);
    let target = match (&args.issuer, &args.verifier, &args.pki) {
        (Some(issuer), Some(verifier), Some(pki)) => Target::running(issuer, verifier, pki)?,
        _ => Target::in_process(None).await?,
    };
    println!("servers  {}", target.description);
    target.ready().await?;

    let first = baseline(span).await?;
    let chips = usize::try_from(args.chips)?;
    let licensing = std::time::Instant::now();
    let licensed =
        load::license_chips(&target, chips, LICENSING_CONCURRENCY, args.progress).await?;
    let licensing = licensing.elapsed();
    let report = load::run(&target, &licensed, &plan).await?;
    let second = baseline(span).await?;
    let whole_process = target.in_this_process();
    drop(target);

    println!(
        "licensed {chips} chips in {:.1} s ({:.0}/s, {LICENSING_CONCURRENCY} at a time)",
        licensing.as_secs_f64(),
        chips as f64 / licensing.as_secs_f64()
    );
    print!(
        "{}",
        render(&report, &plan, &first.best(&second), whole_process)
    );
    println!("{}", Usage::current());
    let failures = report.failures();
    ensure!(
        failures == 0,
        "{failures} attestations of honest chips failed"
    );
    Ok(())
}

/// Raw ring rates of the signature work one appraisal needs.
#[derive(Clone, Copy, Debug)]
struct Baseline {
    /// The verifier's signatures for one appraisal, one thread.
    one_thread: f64,
    /// The same on every core at once.
    all_cores: f64,
    /// The verifier's signatures plus the chip's, per CPU second of one
    /// thread.
    loop_per_cpu_second: f64,
    cores: usize,
}

impl Baseline {
    fn best(&self, other: &Self) -> Self {
        Self {
            one_thread: self.one_thread.max(other.one_thread),
            all_cores: self.all_cores.max(other.all_cores),
            loop_per_cpu_second: self.loop_per_cpu_second.max(other.loop_per_cpu_second),
            cores: self.cores,
        }
    }
}

/// Measures the baselines off the async threads, `span` each after a
/// fifth of it to warm up.
async fn baseline(span: Duration) -> anyhow::Result<Baseline> {
    eprintln!(
        "baseline: raw ring signatures, {:.1} s each",
        span.as_secs_f64()
    );
    tokio::task::spawn_blocking(move || {
        let warm = (span / 5).min(Duration::from_secs(1));
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let appraisal = bench::appraisal_signatures_op()?;
        let whole_loop = bench::loop_signatures_op()?;
        Ok(Baseline {
            one_thread: bench::rate(warm, span, bench::unprepared, &appraisal)?,
            all_cores: bench::parallel_rate(cores, warm, span, &appraisal)?,
            loop_per_cpu_second: bench::cpu_rate(span, &whole_loop)?,
            cores,
        })
    })
    .await?
}

/// The report: throughput, failures, latency, baselines and ratios. With
/// the servers in this process, also appraisals per CPU second against the
/// signatures of the whole loop per CPU second, which holds even when
/// other processes take cores away.
fn render(report: &LoadReport, plan: &LoadPlan, base: &Baseline, whole_process: bool) -> String {
    let (warm, timed) = (&report.warm_up, &report.timed);
    let mut out = format!(
        "warm-up  {} appraisals in {:.1} s ({:.0}/s; each chip's chain validated for the first time)\n",
        warm.passed + warm.failures,
        warm.elapsed.as_secs_f64(),
        warm.rate()
    );
    out += &format!(
        "\nworkers {}, connections {}, timed {:.1} s\n",
        plan.workers,
        plan.connections,
        timed.elapsed.as_secs_f64()
    );
    out += &format!(
        "  appraisals passed      {:>9}  {:>9.1}/s\n",
        timed.passed,
        timed.rate()
    );
    out += &format!("  failures               {:>9}\n", report.failures());
    for sample in warm.failure_samples.iter().chain(&timed.failure_samples) {
        out += &format!("    {sample}\n");
    }
    out += &format!("  Appraise latency       {}\n", latencies(timed));

    let sig = "P-384 verify + Ed25519 verify + Ed25519 sign";
    out +=
        &format!("\nbaseline: ring, the signature work of one appraisal ({sig}), best of 2 runs\n");
    out += &format!("  1 thread               {:>9.1}/s\n", base.one_thread);
    out += &format!(
        "  {} threads              {:>9.1}/s   ratio {:.3} (appraisals/s to this)\n",
        base.cores,
        base.all_cores,
        timed.rate() / base.all_cores
    );
    let who = if whole_process {
        "chips and servers"
    } else {
        "the chips only"
    };
    let busy = timed.cores_busy().map_or("-".into(), |c| format!("{c:.2}"));
    out += &format!("\nthis process ({who}): {busy} cores busy on average while timed\n");
    if whole_process && let Some(per_cpu) = timed.per_cpu_second() {
        out += &format!("  appraisals per CPU second                            {per_cpu:>9.1}\n");
        out += &format!(
            "  ring, per CPU second, with the chip's P-384 sign too {:>9.1}   ratio {:.3}\n",
            base.loop_per_cpu_second,
            per_cpu / base.loop_per_cpu_second
        );
    }
    out
}

/// `p50 ... p99 ... p99.9 ... max ...` in milliseconds.
fn latencies(pass: &Pass) -> String {
    let ms = |q: f64| {
        pass.latency(q)
            .map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
    };
    format!(
        "p50 {}, p99 {}, p99.9 {}, max {} ({} calls)",
        ms(0.5),
        ms(0.99),
        ms(0.999),
        ms(1.0),
        pass.latencies.len()
    )
}
