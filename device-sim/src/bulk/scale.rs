//! The fleet at scale: honest chips, each made, enrolled, licensed and
//! attested end to end over gRPC, a fixed number in flight. The run
//! streams: a chip is dropped as soon as its signed result is checked
//! against the verifier's key, so the simulator holds the chips in flight
//! and a few counters, never the fleet. (The servers keep what they keep:
//! the issuer's ledger on disk, the verifier's cache of validated chains.)
//!
//! Unlike the demo's fleet there are no faults, hosts, landmarks, renewals
//! or later rounds: every chip must pass its one appraisal, and each that
//! does not is counted and its reason sampled.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::verifier_client::VerifierClient;
use chipward_proto::result;
use tokio::task::JoinSet;
use tonic::transport::Channel;

use super::{Target, attest, license, make, not_passed};
use crate::progress::{self, Progress};

/// Failures whose reasons a report keeps; the rest are only counted.
const FAILURE_SAMPLES: usize = 5;

/// The steps of one chip's turn, in order, as the report names them.
pub const STEPS: [&str; 5] = [
    "make",
    "enrol+license",
    "challenge+evidence",
    "appraise",
    "check result",
];

/// How a scale run is laid out.
#[derive(Clone, Debug)]
pub struct ScalePlan {
    /// Chips to run.
    pub chips: usize,
    /// Chips in flight at once.
    pub concurrency: usize,
    /// Show progress even when standard error is not a terminal.
    pub progress: bool,
}

/// What a scale run found.
#[derive(Clone, Debug)]
pub struct ScaleReport {
    /// Chips run.
    pub chips: usize,
    /// Chips whose appraisal passed, checked against the result key.
    pub passed: u64,
    /// Chips that failed a step or did not pass.
    pub failures: u64,
    /// The reasons of the first few failures.
    pub failure_samples: Vec<String>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Time spent in each of [`STEPS`], summed over every chip that
    /// reached it.
    pub step_totals: [Duration; 5],
}

/// Shared by every task of a run.
struct Shared {
    issuer: IssuerClient<Channel>,
    verifier: VerifierClient<Channel>,
    result_keys: TrustedKeys,
    next: AtomicUsize,
    passed: AtomicU64,
    failures: AtomicU64,
    step_nanos: [AtomicU64; 5],
}

/// Runs `plan.chips` chips through the servers of `target`.
pub async fn run(target: &Target, plan: &ScalePlan) -> anyhow::Result<ScaleReport> {
    let shared = Arc::new(Shared {
        issuer: IssuerClient::new(target.issuer().await?),
        verifier: VerifierClient::new(target.verifier().await?),
        result_keys: target.result_keys(),
        next: AtomicUsize::new(0),
        passed: AtomicU64::new(0),
        failures: AtomicU64::new(0),
        step_nanos: Default::default(),
    });
    let display = show(plan, &shared);
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..plan.concurrency.max(1) {
        let (shared, pki, chips) = (Arc::clone(&shared), Arc::clone(&target.pki), plan.chips);
        tasks.spawn(async move {
            let mut samples = Vec::new();
            loop {
                let index = shared.next.fetch_add(1, Ordering::Relaxed);
                if index >= chips {
                    return samples;
                }
                match turn(&shared, &pki, index).await {
                    Ok(()) => shared.passed.fetch_add(1, Ordering::Relaxed),
                    Err(why) => {
                        if samples.len() < FAILURE_SAMPLES {
                            samples.push(format!("chip {index}: {why:#}"));
                        }
                        shared.failures.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        });
    }
    let mut failure_samples = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        failure_samples.extend(joined?);
    }
    let elapsed = started.elapsed();
    display.finish().await;
    failure_samples.truncate(FAILURE_SAMPLES);
    Ok(ScaleReport {
        chips: plan.chips,
        passed: shared.passed.load(Ordering::Relaxed),
        failures: shared.failures.load(Ordering::Relaxed),
        failure_samples,
        elapsed,
        step_totals: shared
            .step_nanos
            .each_ref()
            .map(|n| Duration::from_nanos(n.load(Ordering::Relaxed))),
    })
}

/// Chip `index`'s whole turn; an error says which step failed and why.
async fn turn(
    shared: &Shared,
    pki: &Arc<chipward_certs::pki::DevPki>,
    index: usize,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let chip = make(pki, index).await?;
    let start = shared.lap(0, start);
    let chip = Arc::new(license(&mut shared.issuer.clone(), index, chip).await?);
    let start = shared.lap(1, start);
    let (signed, appraise) = attest(&mut shared.verifier.clone(), &chip).await?;
    // Appraise ends the attestation; the rest of it is challenge and evidence.
    let attested = Instant::now();
    shared.add(2, (attested - start).saturating_sub(appraise));
    shared.add(3, appraise);
    let verified = result::verify(&signed, &shared.result_keys)?;
    shared.lap(4, attested);
    match not_passed(verified.result()) {
        None => Ok(()),
        Some(why) => anyhow::bail!(why),
    }
}

impl Shared {
    /// Adds the time since `start` to `step`; returns now.
    fn lap(&self, step: usize, start: Instant) -> Instant {
        let now = Instant::now();
        self.add(step, now - start);
        now
    }

    fn add(&self, step: usize, spent: Duration) {
        let nanos = u64::try_from(spent.as_nanos()).unwrap_or(u64::MAX);
        self.step_nanos[step].fetch_add(nanos, Ordering::Relaxed);
    }
}

/// The progress line: chips done, rate, time left.
fn show(plan: &ScalePlan, shared: &Arc<Shared>) -> Progress {
    let shared = Arc::clone(shared);
    let total = plan.chips as u64;
    Progress::start(plan.progress, move |elapsed| {
        let failures = shared.failures.load(Ordering::Relaxed);
        let done = shared.passed.load(Ordering::Relaxed) + failures;
        let per_s = done as f64 / elapsed.as_secs_f64();
        let eta = progress::eta(done, total, elapsed).map_or("-".into(), progress::clock);
        format!(
            "chips done {done}/{total} ({per_s:.0}/s), {failures} failures, {} elapsed, ETA {eta}",
            progress::clock(elapsed)
        )
    })
}
