//! Load on the verifier over gRPC: honest chips are licensed once, then
//! workers each loop challenge, evidence and Appraise for a fixed time,
//! spread over a few HTTP/2 connections, and every Appraise call's latency
//! is kept.
//!
//! A warm-up pass appraises each chip once before the clock starts, so the
//! timed part measures the steady state (each chip's certificate chain
//! already validated and cached by the verifier) and not first contact.
//! Results are decoded, not checked against the verifier's key: the load
//! is on the verifier, and checking would take cycles from the cores it
//! shares with the simulated chips. The scale run checks every result.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::result;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::{Licensed, Target, attest, license, make, not_passed};
use crate::progress::{self, Progress};
use crate::usage::Usage;

/// Failures whose reasons a report keeps; the rest are only counted.
const FAILURE_SAMPLES: usize = 5;

/// How a load run is laid out.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// Concurrent workers, each with one appraisal in flight.
    pub workers: usize,
    /// HTTP/2 connections to the verifier the workers share.
    pub connections: usize,
    /// Timed wall time, after the warm-up pass.
    pub duration: Duration,
    /// Show progress even when standard error is not a terminal.
    pub progress: bool,
}

/// What one pass of appraisals found.
#[derive(Clone, Debug, Default)]
pub struct Pass {
    /// Appraisals that passed.
    pub passed: u64,
    /// Attestations that failed: an RPC error, or a verdict other than
    /// pass.
    pub failures: u64,
    /// The reasons of the first few failures.
    pub failure_samples: Vec<String>,
    /// Latency of every Appraise call that returned a result, sorted.
    pub latencies: Vec<Duration>,
    /// Wall time of the pass.
    pub elapsed: Duration,
    /// CPU time this process spent during the pass (servers started
    /// in-process included), when readable.
    pub cpu: Option<Duration>,
}

impl Pass {
    /// Passed appraisals per second of wall time.
    pub fn rate(&self) -> f64 {
        self.passed as f64 / self.elapsed.as_secs_f64()
    }

    /// Passed appraisals per second of this process's CPU time.
    pub fn per_cpu_second(&self) -> Option<f64> {
        Some(self.passed as f64 / self.cpu?.as_secs_f64())
    }

    /// Cores this process kept busy on average.
    pub fn cores_busy(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() / self.elapsed.as_secs_f64())
    }

    /// The latency at quantile `q` (0 to 1) by nearest rank; `None`
    /// without calls.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        self.latencies.get(rank.max(1) - 1).copied()
    }

    fn merge(&mut self, other: Self) {
        self.passed += other.passed;
        self.failures += other.failures;
        let room = FAILURE_SAMPLES.saturating_sub(self.failure_samples.len());
        let samples = other.failure_samples.into_iter().take(room);
        self.failure_samples.extend(samples);
        self.latencies.extend(other.latencies);
    }
}

/// What a load run found.
#[derive(Clone, Debug)]
pub struct LoadReport {
    /// Each chip appraised once before timing.
    pub warm_up: Pass,
    /// The timed part.
    pub timed: Pass,
}

impl LoadReport {
    /// Failures in both passes.
    pub fn failures(&self) -> u64 {
        self.warm_up.failures + self.timed.failures
    }
}

/// Makes, enrols and licenses `count` chips through the issuer,
/// `concurrency` at a time; fails on the first chip that cannot be
/// licensed.
pub async fn license_chips(
    target: &Target,
    count: usize,
    concurrency: usize,
    show_progress: bool,
) -> anyhow::Result<Vec<Arc<Licensed>>> {
    let issuer = IssuerClient::new(target.issuer().await?);
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let shown = Arc::clone(&done);
    let display = Progress::start(show_progress, move |elapsed| {
        let done = shown.load(Ordering::Relaxed);
        let eta = progress::eta(done, count as u64, elapsed).map_or("-".into(), progress::clock);
        format!("licensing chips: {done}/{count}, ETA {eta}")
    });
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency.max(1) {
        let (mut issuer, pki) = (issuer.clone(), Arc::clone(&target.pki));
        let (next, done) = (Arc::clone(&next), Arc::clone(&done));
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= count {
                    return Ok::<_, anyhow::Error>(made);
                }
                let chip = make(&pki, index).await?;
                made.push(Arc::new(license(&mut issuer, index, chip).await?));
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut chips = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        chips.extend(joined??);
    }
    display.finish().await;
    chips.sort_by_key(|c| c.index);
    Ok(chips)
}

/// Appraises each of `chips` once, then loops for `plan.duration`.
pub async fn run(
    target: &Target,
    chips: &[Arc<Licensed>],
    plan: &LoadPlan,
) -> anyhow::Result<LoadReport> {
    anyhow::ensure!(!chips.is_empty(), "a load run needs at least one chip");
    let mut verifiers = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections.max(1) {
        verifiers.push(VerifierClient::new(target.verifier().await?));
    }
    let chips: Arc<Vec<Arc<Licensed>>> = Arc::new(chips.to_vec());

    let warm_up = pass(&verifiers, &chips, plan, Stop::Turns(chips.len())).await?;
    let deadline = Instant::now() + plan.duration;
    let timed = pass(&verifiers, &chips, plan, Stop::At(deadline)).await?;
    Ok(LoadReport { warm_up, timed })
}

/// When workers stop taking turns.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// After this many turns in all.
    Turns(usize),
    /// At this instant (a turn under way finishes).
    At(Instant),
}

/// Counts the display reads while workers run.
#[derive(Debug, Default)]
struct Counters {
    passed: AtomicU64,
    failures: AtomicU64,
}

/// One pass of `plan.workers` workers over `chips`, round robin.
async fn pass(
    verifiers: &[VerifierClient<Channel>],
    chips: &Arc<Vec<Arc<Licensed>>>,
    plan: &LoadPlan,
    stop: Stop,
) -> anyhow::Result<Pass> {
    let counters = Arc::new(Counters::default());
    let next = Arc::new(AtomicUsize::new(0));
    let display = show(plan, stop, &counters);
    let cpu_before = Usage::current().cpu();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for w in 0..plan.workers.max(1) {
        let verifier = verifiers[w % verifiers.len()].clone();
        let (chips, next, counters) = (Arc::clone(chips), Arc::clone(&next), Arc::clone(&counters));
        tasks.spawn(work(verifier, chips, next, stop, counters));
    }
    let mut out = Pass::default();
    while let Some(joined) = tasks.join_next().await {
        out.merge(joined?);
    }
    out.elapsed = started.elapsed();
    let cpu_after = Usage::current().cpu();
    out.cpu = cpu_after.zip(cpu_before).map(|(a, b)| a.saturating_sub(b));
    display.finish().await;
    out.latencies.sort_unstable();
    Ok(out)
}

/// One worker: takes turns until `stop`, one attestation at a time.
async fn work(
    mut verifier: VerifierClient<Channel>,
    chips: Arc<Vec<Arc<Licensed>>>,
    next: Arc<AtomicUsize>,
    stop: Stop,
    counters: Arc<Counters>,
) -> Pass {
    let mut out = Pass::default();
    loop {
        let turn = next.fetch_add(1, Ordering::Relaxed);
        let over = match stop {
            Stop::Turns(n) => turn >= n,
            Stop::At(deadline) => Instant::now() >= deadline,
        };
        if over {
            return out;
        }
        let chip = &chips[turn % chips.len()];
        let failure = match attest(&mut verifier, chip).await {
            Ok((signed, latency)) => {
                out.latencies.push(latency);
                match result::decode_unverified(&signed) {
                    Ok(r) => not_passed(&r),
                    Err(e) => Some(format!("result does not decode: {e}")),
                }
            }
            Err(e) => Some(format!("{e:#}")),
        };
        match failure {
            None => {
                out.passed += 1;
                counters.passed.fetch_add(1, Ordering::Relaxed);
            }
            Some(why) => {
                out.failures += 1;
                counters.failures.fetch_add(1, Ordering::Relaxed);
                if out.failure_samples.len() < FAILURE_SAMPLES {
                    let id = chip.chip.chip_id.to_hex();
                    out.failure_samples
                        .push(format!("chip {} ({}): {why}", chip.index, &id[..12]));
                }
            }
        }
    }
}

/// The progress line of a pass.
fn show(plan: &LoadPlan, stop: Stop, counters: &Arc<Counters>) -> Progress {
    let counters = Arc::clone(counters);
    let total = plan.duration.as_secs_f64();
    Progress::start(plan.progress, move |elapsed| {
        let passed = counters.passed.load(Ordering::Relaxed);
        let failures = counters.failures.load(Ordering::Relaxed);
        let per_s = passed as f64 / elapsed.as_secs_f64();
        let head = match stop {
            Stop::Turns(n) => format!("warm-up: {passed}/{n}"),
            Stop::At(_) => format!("{:.0}/{total:.0} s: {passed} passed", elapsed.as_secs_f64()),
        };
        format!("{head} ({per_s:.0}/s), {failures} failures")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn latency_quantiles_take_the_nearest_rank() {
        let pass = Pass {
            latencies: ms(&(1..=1000).collect::<Vec<_>>()),
            ..Pass::default()
        };
        assert_eq!(pass.latency(0.5), Some(Duration::from_millis(500)));
        assert_eq!(pass.latency(0.99), Some(Duration::from_millis(990)));
        assert_eq!(pass.latency(0.999), Some(Duration::from_millis(999)));
        assert_eq!(pass.latency(1.0), Some(Duration::from_millis(1000)));
        assert_eq!(pass.latency(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Pass::default().latency(0.5), None);
    }

    #[test]
    fn merging_keeps_counts_and_only_the_first_samples() {
        let mut total = Pass::default();
        for worker in 0..4u64 {
            total.merge(Pass {
                passed: 10,
                failures: 2,
                failure_samples: vec![format!("w{worker} a"), format!("w{worker} b")],
                latencies: ms(&[worker]),
                elapsed: Duration::ZERO,
                cpu: None,
            });
        }
        assert_eq!((total.passed, total.failures), (40, 8));
        assert_eq!(
            total.failure_samples,
            ["w0 a", "w0 b", "w1 a", "w1 b", "w2 a"]
        );
        assert_eq!(total.latencies.len(), 4);
    }
}
