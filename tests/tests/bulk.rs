//! The load command's and the scale run's drivers against real servers on
//! loopback: honest chips all pass and are counted once each, and chips
//! that present another chip's license are counted as failures with the
//! claim that caught them. Small runs: these check the counting, not speed.

use std::sync::Arc;
use std::time::Duration;

use chipward_device_sim::bulk::load::{self, LoadPlan};
use chipward_device_sim::bulk::scale::{self, ScalePlan};
use chipward_device_sim::bulk::{Licensed, Target};

fn plan(workers: usize, millis: u64) -> LoadPlan {
    LoadPlan {
        workers,
        connections: 2,
        duration: Duration::from_millis(millis),
        progress: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_chips_all_pass_under_load() {
    let target = Target::in_process(None).await.unwrap();
    target.ready().await.unwrap();
    let chips = load::license_chips(&target, 3, 2, false).await.unwrap();
    assert_eq!(chips.iter().map(|c| c.index).collect::<Vec<_>>(), [0, 1, 2]);

    let report = load::run(&target, &chips, &plan(4, 1_500)).await.unwrap();

    // The warm-up takes exactly one turn per chip.
    assert_eq!((report.warm_up.passed, report.warm_up.failures), (3, 0));
    assert_eq!(report.failures(), 0, "{:?}", report.timed.failure_samples);
    assert!(report.timed.passed > 0);
    // Every passed appraisal's Appraise call was timed, and no other.
    assert_eq!(report.timed.latencies.len() as u64, report.timed.passed);
    assert!(report.timed.latencies.is_sorted());
    assert!(report.timed.elapsed >= Duration::from_millis(1_500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chips_with_each_others_licenses_are_counted_as_failures() {
    let target = Target::in_process(None).await.unwrap();
    target.ready().await.unwrap();
    let chips = load::license_chips(&target, 2, 2, false).await.unwrap();
    let [first, second] = <[Arc<Licensed>; 2]>::try_from(chips).unwrap();
    let (first, second) = (
        Arc::into_inner(first).unwrap(),
        Arc::into_inner(second).unwrap(),
    );
    // Chips 0 and 1 share a tenant (tenants change every five chips) but
    // not a site: each claims the site of the license it presents, so that
    // only the identity binding can fail.
    let swapped = vec![
        Arc::new(Licensed {
            token: second.token.clone(),
            site: second.site,
            ..first
        }),
        Arc::new(Licensed {
            token: first.token,
            site: first.site,
            ..second
        }),
    ];

    let report = load::run(&target, &swapped, &plan(2, 500)).await.unwrap();

    assert_eq!((report.warm_up.passed, report.warm_up.failures), (0, 2));
    assert_eq!(report.timed.passed, 0);
    assert!(report.timed.failures > 0);
    let sample = &report.warm_up.failure_samples[0];
    assert!(
        sample.contains("identity.binding CW-ID-MISMATCH"),
        "{sample}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_run_takes_each_chip_once_and_checks_its_result() {
    let target = Target::in_process(None).await.unwrap();
    target.ready().await.unwrap();
    let plan = ScalePlan {
        chips: 12,
        concurrency: 5,
        progress: false,
    };

    let report = scale::run(&target, &plan).await.unwrap();

    assert_eq!((report.chips, report.passed, report.failures), (12, 12, 0));
    assert!(report.failure_samples.is_empty());
    assert!(report.step_totals.iter().all(|t| !t.is_zero()));
    assert!(target.ledger_size().is_some_and(|bytes| bytes > 0));
}
