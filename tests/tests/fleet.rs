//! The whole loop over real gRPC on loopback: a fleet with every fault kind
//! injected, checked chip by chip. The failures reported must be exactly the
//! faults injected, and renewal must follow the verdict.

use std::collections::BTreeSet;

use chipward_device_sim::chip::LicenseState;
use chipward_device_sim::demo;
use chipward_device_sim::fleet::{ChipOutcome, Fault, FleetPlan};
use chipward_proto::result::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_failures_are_exactly_the_injected_faults() {
    let dir = tempfile::tempdir().unwrap();
    // Two blocks of 40 chips: every fault kind appears twice.
    let plan = FleetPlan {
        chips: 80,
        ..FleetPlan::default()
    };
    let report = demo::run(dir.path(), &plan).await.unwrap();

    assert_eq!(report.chips.len(), 80);
    for chip in &report.chips {
        assert_caught_exactly(chip);
        assert_eq!(
            chip.renewal.is_ok(),
            chip.fault.is_none(),
            "renewal of chip {}: {:?}",
            chip.index,
            chip.renewal
        );
        // Landmarks measured every chip; the healthy ones are certified.
        let location = chip.location.as_ref().map(|(status, _)| *status);
        if chip.fault.is_none() {
            assert_eq!(
                location,
                Some(Status::Pass),
                "chip {}: {chip:?}",
                chip.index
            );
        }
    }

    // Each kind was injected twice and caught twice.
    for fault in Fault::ALL {
        let (claim, how) = fault.caught_by();
        let caught = report
            .chips
            .iter()
            .filter(|c| c.fault == Some(fault))
            .filter(|c| match how {
                Status::Fail => c.failed.iter().any(|(name, _)| name == claim),
                _ => c.unknown.iter().any(|name| name == claim),
            })
            .count();
        assert_eq!(caught, 2, "{fault:?}");
    }
    assert_eq!(report.compliant(), 80 - 16);
}

/// A chip's failed claims are exactly its fault's, and its verdict follows.
fn assert_caught_exactly(chip: &ChipOutcome) {
    let failed: BTreeSet<&str> = chip
        .failed
        .iter()
        .map(|(claim, _)| claim.as_str())
        .collect();
    let caught = chip.fault.map(Fault::caught_by);
    let expected: BTreeSet<&str> = match caught {
        Some((claim, Status::Fail)) => [claim].into_iter().collect(),
        _ => BTreeSet::new(),
    };
    assert_eq!(
        failed, expected,
        "chip {} with fault {:?}: {chip:?}",
        chip.index, chip.fault
    );
    let verdict = caught.map_or(Status::Pass, |(_, how)| how);
    assert_eq!(chip.verdict, verdict, "chip {}: {chip:?}", chip.index);
    if let Some((claim, Status::Unknown)) = caught {
        assert!(
            chip.unknown.iter().any(|c| c == claim),
            "chip {}: {chip:?}",
            chip.index
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chips_enforce_their_own_licenses() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan {
        chips: 40,
        ..FleetPlan::default()
    };
    let report = demo::run(dir.path(), &plan).await.unwrap();

    for chip in &report.chips {
        let expected = match chip.fault {
            // Expired three days ago with an hour of grace: the chip stops.
            Some(Fault::ExpiredLicense) => LicenseState::Lapsed,
            // Renewed chips hold a fresh license; the others keep a valid one
            // the verifier refused for other reasons.
            _ => LicenseState::Valid,
        };
        assert_eq!(
            chip.license_state, expected,
            "chip {} ({:?})",
            chip.index, chip.fault
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_without_faults_is_fully_compliant() {
    let dir = tempfile::tempdir().unwrap();
    let plan = FleetPlan {
        chips: 30,
        faults: false,
        ..FleetPlan::default()
    };
    let report = demo::run(dir.path(), &plan).await.unwrap();
    assert_eq!(report.compliant(), 30);
    assert!(
        report
            .chips
            .iter()
            .all(|c| c.renewal.is_ok() && c.failed.is_empty() && c.unknown.is_empty())
    );
}
