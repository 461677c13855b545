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
    // A block of 55 chips holds every fault kind once; the next 25 chips
    // hold the first five kinds again.
    let plan = FleetPlan {
        chips: 80,
        ..FleetPlan::default()
    };
    let report = demo::run(dir.path(), &plan).await.unwrap();

    assert_eq!(report.chips.len(), 80);
    for chip in &report.chips {
        assert_caught_exactly(chip);
        let passes_first_round = chip.fault.is_none_or(|f| f.caught_by().is_none());
        assert_eq!(
            chip.renewal.is_ok(),
            passes_first_round,
            "renewal of chip {}: {:?}",
            chip.index,
            chip.renewal
        );
        // Landmarks measured every chip; those that passed are certified.
        let location = chip.location.as_ref().map(|(status, _)| *status);
        if passes_first_round {
            assert_eq!(
                location,
                Some(Status::Pass),
                "chip {}: {chip:?}",
                chip.index
            );
            assert!(chip.certified_km.is_some_and(|km| km <= 50.0), "{chip:?}");
        }
    }

    // Each kind was caught as often as it was injected.
    let injected = |fault: Fault| -> BTreeSet<usize> {
        (0..plan.chips)
            .filter(|&i| plan.fault_for(i) == Some(fault))
            .collect()
    };
    let mut failing = 0;
    for fault in Fault::ALL {
        let Some((claim, how)) = fault.caught_by() else {
            continue;
        };
        let caught: BTreeSet<usize> = report
            .chips
            .iter()
            .filter(|c| match how {
                Status::Fail => c.failed.iter().any(|(name, _)| name == claim),
                _ => c.unknown.iter().any(|name| name == claim),
            })
            .map(|c| c.index)
            .filter(|i| injected(fault).contains(i))
            .collect();
        assert_eq!(caught, injected(fault), "{fault:?}");
        failing += caught.len();
    }
    assert_eq!(report.compliant(), 80 - failing);

    // The fleet view catches what no single appraisal does, and flags
    // nothing else. A leaked key's copy shares the id of the chip before it.
    let integrity = report.integrity.as_ref().unwrap();
    let with_victims = |fault: Fault| -> BTreeSet<usize> {
        injected(fault).iter().flat_map(|&i| [i - 1, i]).collect()
    };
    assert_eq!(
        integrity.chips_in("two-places"),
        with_victims(Fault::LeakedKey)
    );
    assert_eq!(
        integrity.chips_in("impossible-travel"),
        with_victims(Fault::LeakedKey)
    );
    assert_eq!(
        integrity.chips_in("reappeared"),
        injected(Fault::Reappearing)
    );
    // Chips seen at a site they hold no license for at the time: those that
    // claim an unlicensed site, those whose license expired, and those that
    // reappeared elsewhere.
    let unlicensed: BTreeSet<usize> = [Fault::MovedSite, Fault::ExpiredLicense, Fault::Reappearing]
        .into_iter()
        .flat_map(injected)
        .collect();
    assert_eq!(integrity.chips_in("unlicensed-at-site"), unlicensed);
    let kinds: BTreeSet<&str> = integrity.findings.iter().map(|f| f.kind()).collect();
    assert_eq!(kinds.len(), 4, "{:?}", integrity.findings);

    // The issuer logged it all, and the log checks offline. A clone shares
    // its victim's license; a leaked key's copy gets a license but is no
    // new chip.
    let audit = report.audit.as_ref().unwrap();
    let count = |kind| chipward_device_sim::records::count(audit, kind);
    let clones = injected(Fault::ClonedIdentity).len();
    let leaks = injected(Fault::LeakedKey).len();
    // The listed tenant's chip is enrolled too; its license is refused.
    assert_eq!(count("chip_enrolled"), 80 - clones - leaks + 1);
    assert_eq!(count("list_loaded"), 1);
    assert_eq!(count("screened"), 1);
    assert!(
        report.screening[1].starts_with("zephyr-dynamics refused"),
        "{:?}",
        report.screening
    );
    // Roles hold over mutual TLS: an operator of one tenant is refused
    // another tenant's licenses, an auditor a revocation.
    assert!(
        report.access[1].ends_with("refused (PermissionDenied: tenant \"borealis-labs\" is outside the scope of this operator certificate)"),
        "{:?}",
        report.access
    );
    assert!(
        report.access[2].starts_with("an auditor revoking one of them: refused (PermissionDenied: role auditor may not call RevokeLicense)"),
        "{:?}",
        report.access
    );
    assert_eq!(count("issued"), 80 - clones);
    assert_eq!(count("appraised"), integrity.appraisals);
    assert_eq!(count("revoked"), injected(Fault::RevokedLicense).len());
    assert!(audit.tampered.starts_with("refused"), "{}", audit.tampered);
    let (_, entries, artefacts) = audit.bundle.as_ref().unwrap();
    assert!(*entries > 0 && *artefacts > 0);
}

/// A chip's failed claims are exactly its fault's, and its verdict follows.
fn assert_caught_exactly(chip: &ChipOutcome) {
    let failed: BTreeSet<&str> = chip
        .failed
        .iter()
        .map(|(claim, _)| claim.as_str())
        .collect();
    let caught = chip.fault.and_then(Fault::caught_by);
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
