//! The ledger conformance suite: every behaviour that [`Ledger`] promises,
//! written once against `&dyn Ledger` so that every backend runs the very
//! same checks.
//!
//! Each check takes a fresh, empty ledger and panics when the ledger
//! misbehaves. [`CHECKS`] names them all, and
//! [`ledger_conformance_tests!`](crate::ledger_conformance_tests) turns the
//! list into one `#[test]` per check, so a check added here runs on every
//! backend that uses the macro. Checks that need a backend's own tools
//! (reopening a file, editing rows with raw SQL) stay with that backend.
//!
//! Built for this crate's tests and, with the `conformance` feature, for
//! other crates' tests; it is never part of a service.

#![expect(clippy::unwrap_used, reason = "a check fails its test by panicking")]

use chipward_proto::license::SiteClaim;
use chipward_proto::revocation::RevokedLicense;
use chipward_proto::{ChipId, TokenId};

use chipward_proto::audit::{AuditEntry, EntryKind};

use super::{
    AuditRecord, ChipRecord, HostRecord, Ledger, LedgerError, LicenseFilter, LicenseRecord,
    LicenseState, Revocation,
};
use crate::host_enrolment::HostId;

mod audit;
pub use audit::*;

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = crate::ledger_conformance_tests!(@list array);

/// One conformance check: panics when the fresh ledger it is given
/// misbehaves.
pub type Check = fn(&dyn Ledger);

/// Defines one `#[test]` per conformance check, named after the check.
///
/// `$fresh` is a function returning `(guard, ledger)`: a fresh, empty
/// ledger and whatever must outlive it (a temporary folder, a throwaway
/// database). Each test calls it once and drops the ledger first.
///
/// ```text
/// chipward_issuer::ledger_conformance_tests!(fresh_ledger);
/// ```
#[macro_export]
macro_rules! ledger_conformance_tests {
    ($fresh:path) => {
        $crate::ledger_conformance_tests!(@list tests $fresh);
    };
    // The one list of checks; every other arm receives it.
    (@list $mode:ident $($arg:tt)*) => {
        $crate::ledger_conformance_tests! { @$mode ($($arg)*)
            enrolment_is_idempotent_for_the_same_certificate,
            enrolment_with_another_certificate_conflicts,
            stores_licenses_and_lists_newest_first_with_filters,
            keeps_entitlement_lists_exactly,
            refuses_licenses_for_unknown_chips_and_taken_token_ids,
            renewal_supersedes_the_old_license_and_stores_the_new,
            renewing_a_revoked_license_fails_and_changes_nothing,
            renewal_rolls_back_when_the_new_license_cannot_be_stored,
            revocation_numbers_grow_by_one_and_repeat_for_the_same_license,
            revoking_a_renewed_license_revokes_its_whole_lineage_in_one_version,
            revoking_a_superseded_license_revokes_its_renewals,
            a_lineage_is_everything_connected_by_renewal,
            records_each_host_key_once_and_lists_them_oldest_first,
            every_change_is_logged_once_and_refusals_are_not,
            roots_and_proofs_match_an_independent_tree,
            a_batch_gives_each_license_its_own_outcome,
            results_and_artefacts_are_kept_and_selected,
            a_result_is_recorded_once,
            tree_heads_are_kept_once_per_size,
            retention_and_holds_guard_deletion
        }
    };
    (@tests ($fresh:path) $($check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let (_keep, ledger) = $fresh();
                $crate::ledger::conformance::$check(&ledger);
            }
        )+
    };
    (@array () $($check:ident),+ $(,)?) => {
        &[$(
            (
                stringify!($check),
                $crate::ledger::conformance::$check as $crate::ledger::conformance::Check,
            )
        ),+]
    };
}

/// Chip `n`: id `[n; 32]`, model `CW-<n>`, enrolled at `1000 + n`.
pub fn chip(n: u8) -> ChipRecord {
    ChipRecord {
        chip_id: ChipId([n; 32]),
        model: format!("CW-{n}"),
        identity_cert: vec![0x30, n, n],
        enrolled_at: 1_000 + i64::from(n),
    }
}

/// An active license with token id `[token; 16]` for chip `[chip; 32]`,
/// issued at `issued_at` and valid for a day.
pub fn license(token: u8, chip: u8, tenant: &str, issued_at: i64) -> LicenseRecord {
    LicenseRecord {
        token_id: TokenId([token; 16]),
        chip_id: ChipId([chip; 32]),
        tenant: tenant.into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 50.1,
            longitude: 8.6,
            radius_km: 25.0,
        },
        issued_at,
        not_before: issued_at - 10,
        expires_at: issued_at + 86_400,
        state: LicenseState::Active,
        token: vec![0xd2, 0x84, token],
        renewed_from: None,
        entitlements: vec!["fp8".into(), "nvlink".into()],
        eccn: "3A090.a".into(),
        term_started_at: issued_at,
        parties: format!("[{{\"role\":\"tenant\",\"name\":\"{tenant} ltd\"}}]"),
    }
}

/// An audit record for a write whose entry the check does not look at.
pub fn note() -> AuditRecord {
    AuditRecord::new(AuditEntry::new(1, EntryKind::Issued))
}

fn state_of(ledger: &dyn Ledger, token: u8) -> LicenseState {
    ledger
        .license(&TokenId([token; 16]))
        .unwrap()
        .unwrap()
        .state
}

fn tokens(list: &[LicenseRecord]) -> Vec<u8> {
    list.iter().map(|l| l.token_id.0[0]).collect()
}

/// Enrolling a chip again with the same certificate changes nothing.
pub fn enrolment_is_idempotent_for_the_same_certificate(ledger: &dyn Ledger) {
    assert!(ledger.enrol_chip(&chip(1), &note()).unwrap());
    assert!(!ledger.enrol_chip(&chip(1), &note()).unwrap());

    // A later enrolment with the same certificate keeps the first record.
    let mut again = chip(1);
    again.enrolled_at = 9_999;
    assert!(!ledger.enrol_chip(&again, &note()).unwrap());
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert_eq!(ledger.chip(&ChipId([2; 32])).unwrap(), None);
}

/// Enrolling a chip again with another certificate is a conflict.
pub fn enrolment_with_another_certificate_conflicts(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let mut other = chip(1);
    other.identity_cert = vec![0x30, 0xff];
    let err = ledger.enrol_chip(&other, &note()).unwrap_err();
    assert!(
        matches!(err, LedgerError::Conflict { chip_id } if chip_id == ChipId([1; 32])),
        "{err:?}"
    );
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
}

/// Licenses read back whole and list newest first, filtered by chip and tenant.
pub fn stores_licenses_and_lists_newest_first_with_filters(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger.enrol_chip(&chip(2), &note()).unwrap();
    ledger
        .insert_license(&license(10, 1, "acme", 100), &note())
        .unwrap();
    ledger
        .insert_license(&license(11, 2, "acme", 300), &note())
        .unwrap();
    ledger
        .insert_license(&license(12, 1, "globex", 200), &note())
        .unwrap();
    // Same second as token 11, inserted later: it counts as newer.
    ledger
        .insert_license(&license(13, 1, "acme", 300), &note())
        .unwrap();

    let got = ledger.license(&TokenId([12; 16])).unwrap();
    assert_eq!(got, Some(license(12, 1, "globex", 200)));
    assert_eq!(ledger.license(&TokenId([99; 16])).unwrap(), None);

    let all = LicenseFilter::default();
    assert_eq!(
        tokens(&ledger.list_licenses(&all, 100).unwrap()),
        [13, 11, 12, 10]
    );
    assert_eq!(tokens(&ledger.list_licenses(&all, 2).unwrap()), [13, 11]);
    assert_eq!(ledger.list_licenses(&all, 0).unwrap(), []);

    let chip1 = LicenseFilter {
        chip_id: Some(ChipId([1; 32])),
        tenant: None,
    };
    assert_eq!(
        tokens(&ledger.list_licenses(&chip1, 100).unwrap()),
        [13, 12, 10]
    );
    let acme = LicenseFilter {
        chip_id: None,
        tenant: Some("acme".into()),
    };
    assert_eq!(
        tokens(&ledger.list_licenses(&acme, 100).unwrap()),
        [13, 11, 10]
    );
    let both = LicenseFilter {
        chip_id: Some(ChipId([1; 32])),
        tenant: Some("acme".into()),
    };
    assert_eq!(tokens(&ledger.list_licenses(&both, 100).unwrap()), [13, 10]);
    let nobody = LicenseFilter {
        chip_id: None,
        tenant: Some("initech".into()),
    };
    assert_eq!(ledger.list_licenses(&nobody, 100).unwrap(), []);
}

/// Entitlement lists read back exactly: empty, empty entries, separators.
pub fn keeps_entitlement_lists_exactly(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let cases: [Vec<String>; 4] = [
        vec![],
        vec![String::new()],
        vec!["a;b".into(), "ü,".into(), String::new()],
        vec!["x".repeat(64); 32],
    ];
    for (i, entitlements) in cases.into_iter().enumerate() {
        let mut l = license(u8::try_from(i).unwrap() + 1, 1, "acme", 5);
        l.entitlements = entitlements;
        ledger.insert_license(&l, &note()).unwrap();
        assert_eq!(ledger.license(&l.token_id).unwrap(), Some(l));
    }
}

/// A license needs an enrolled chip and an unused token id.
pub fn refuses_licenses_for_unknown_chips_and_taken_token_ids(ledger: &dyn Ledger) {
    let err = ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::UnknownChip { .. }), "{err:?}");

    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap();
    let err = ledger
        .insert_license(&license(10, 1, "other", 6), &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::DuplicateToken { .. }), "{err:?}");
    assert_eq!(
        ledger.license(&TokenId([10; 16])).unwrap().unwrap().tenant,
        "acme"
    );
}

/// Renewal supersedes the old license, stores the new one, and only once.
pub fn renewal_supersedes_the_old_license_and_stores_the_new(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap();

    let mut new = license(11, 1, "acme", 50);
    new.renewed_from = Some(TokenId([10; 16]));
    ledger.renew(&TokenId([10; 16]), &new, &note()).unwrap();

    assert_eq!(state_of(ledger, 10), LicenseState::Superseded);
    assert_eq!(
        ledger.license(&TokenId([11; 16])).unwrap(),
        Some(new.clone())
    );

    // The superseded one cannot be renewed a second time.
    let err = ledger.renew(&TokenId([10; 16]), &license(12, 1, "acme", 60), &note());
    assert!(matches!(
        err,
        Err(LedgerError::NotActive {
            state: LicenseState::Superseded,
            ..
        })
    ));
    assert_eq!(ledger.license(&TokenId([12; 16])).unwrap(), None);
}

/// A revoked license cannot be renewed, and the attempt writes nothing.
pub fn renewing_a_revoked_license_fails_and_changes_nothing(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let old = license(10, 1, "acme", 5);
    ledger.insert_license(&old, &note()).unwrap();
    ledger.revoke(&old.token_id, "stolen", 7, &note()).unwrap();
    let before = ledger.license(&old.token_id).unwrap();

    let err = ledger.renew(&old.token_id, &license(11, 1, "acme", 50), &note());
    assert!(matches!(
        err,
        Err(LedgerError::NotActive {
            state: LicenseState::Revoked,
            ..
        })
    ));
    assert_eq!(ledger.license(&old.token_id).unwrap(), before);
    assert_eq!(ledger.license(&TokenId([11; 16])).unwrap(), None);
}

/// A renewal whose new license cannot be stored leaves the old one active.
pub fn renewal_rolls_back_when_the_new_license_cannot_be_stored(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap();
    ledger
        .insert_license(&license(11, 1, "acme", 6), &note())
        .unwrap();

    // The new record reuses token 11, so the insert fails after the update.
    let err = ledger.renew(&TokenId([10; 16]), &license(11, 1, "acme", 50), &note());
    assert!(matches!(err, Err(LedgerError::DuplicateToken { .. })));
    assert_eq!(state_of(ledger, 10), LicenseState::Active);
    assert_eq!(
        ledger
            .license(&TokenId([11; 16]))
            .unwrap()
            .unwrap()
            .issued_at,
        6
    );

    let err = ledger.renew(&TokenId([99; 16]), &license(12, 1, "acme", 50), &note());
    assert!(matches!(err, Err(LedgerError::NotFound { .. })));
    assert_eq!(ledger.license(&TokenId([12; 16])).unwrap(), None);
}

/// Token ids, chip ids, times and reasons of the revocation list.
fn summary(entries: &[RevokedLicense]) -> Vec<(String, String, i64, &str)> {
    entries
        .iter()
        .map(|e| {
            (
                e.token_id.clone(),
                e.chip_id.clone(),
                e.revoked_at,
                e.reason.as_str(),
            )
        })
        .collect()
}

fn revocation(seq: u64, lineage: usize, newly_revoked: usize) -> Revocation {
    Revocation {
        seq,
        lineage,
        newly_revoked,
    }
}

/// Stores `first` and renews it into each of `rest` in turn.
fn chain(ledger: &dyn Ledger, first: u8, rest: &[u8]) {
    ledger
        .insert_license(&license(first, 1, "acme", 5), &note())
        .unwrap();
    let mut previous = first;
    for (i, &token) in rest.iter().enumerate() {
        let mut next = license(token, 1, "acme", 6 + i64::try_from(i).unwrap());
        next.renewed_from = Some(TokenId([previous; 16]));
        ledger
            .renew(&TokenId([previous; 16]), &next, &note())
            .unwrap();
        previous = token;
    }
}

/// Each revocation makes one new list version; revoking again repeats it.
pub fn revocation_numbers_grow_by_one_and_repeat_for_the_same_license(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger.enrol_chip(&chip(2), &note()).unwrap();
    for (token, chip) in [(10, 1), (11, 2), (12, 1), (13, 1)] {
        ledger
            .insert_license(&license(token, chip, "acme", 5), &note())
            .unwrap();
    }
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
    assert_eq!(ledger.revocations().unwrap(), (0, vec![]));

    assert_eq!(
        ledger
            .revoke(&TokenId([11; 16]), "contract ended", 100, &note())
            .unwrap(),
        revocation(1, 1, 1)
    );
    assert_eq!(
        ledger
            .revoke(&TokenId([10; 16]), "stolen", 101, &note())
            .unwrap(),
        revocation(2, 1, 1)
    );
    assert_eq!(
        ledger
            .revoke(&TokenId([11; 16]), "again", 102, &note())
            .unwrap(),
        revocation(1, 1, 0)
    );

    let err = ledger
        .revoke(&TokenId([99; 16]), "x", 104, &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");

    assert_eq!(ledger.revocation_seq().unwrap(), 2);
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 2);
    assert_eq!(
        summary(&entries),
        [
            ("0b".repeat(16), "02".repeat(32), 100, "contract ended"),
            ("0a".repeat(16), "01".repeat(32), 101, "stolen"),
        ]
    );
    assert_eq!(state_of(ledger, 12), LicenseState::Active);
    assert_eq!(state_of(ledger, 13), LicenseState::Active);
}

/// Revoking any member of a lineage revokes all of it under one version.
pub fn revoking_a_renewed_license_revokes_its_whole_lineage_in_one_version(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger.enrol_chip(&chip(2), &note()).unwrap();
    // 20 -> 21 -> 22 by renewal; 30 is unrelated and revoked first.
    ledger
        .insert_license(&license(30, 2, "acme", 4), &note())
        .unwrap();
    chain(ledger, 20, &[21, 22]);
    assert_eq!(
        ledger
            .revoke(&TokenId([30; 16]), "ended", 90, &note())
            .unwrap(),
        revocation(1, 1, 1)
    );

    // The middle one: its ancestor and its descendant go with it.
    assert_eq!(
        ledger
            .revoke(&TokenId([21; 16]), "stolen", 100, &note())
            .unwrap(),
        revocation(2, 3, 3)
    );
    for token in [20, 21, 22] {
        assert_eq!(state_of(ledger, token), LicenseState::Revoked, "{token}");
    }
    let lineage = format!("stolen (lineage of {})", "15".repeat(16));
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 2);
    assert_eq!(
        summary(&entries),
        [
            ("1e".repeat(16), "02".repeat(32), 90, "ended"),
            ("14".repeat(16), "01".repeat(32), 100, lineage.as_str()),
            ("15".repeat(16), "01".repeat(32), 100, "stolen"),
            ("16".repeat(16), "01".repeat(32), 100, lineage.as_str()),
        ]
    );

    // Again, through any member: the same version, nothing added.
    for token in [20, 21, 22] {
        let again = ledger
            .revoke(&TokenId([token; 16]), "again", 200, &note())
            .unwrap();
        assert_eq!(again, revocation(2, 3, 0), "{token}");
    }
    assert_eq!(ledger.revocations().unwrap(), (2, entries));
}

/// Revoking a superseded license takes its renewals along.
pub fn revoking_a_superseded_license_revokes_its_renewals(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    chain(ledger, 20, &[21, 22]);
    assert_eq!(state_of(ledger, 20), LicenseState::Superseded);

    assert_eq!(
        ledger.revoke(&TokenId([20; 16]), "", 100, &note()).unwrap(),
        revocation(1, 3, 3)
    );
    let lineage = format!("lineage of {}", "14".repeat(16));
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 1);
    assert_eq!(
        summary(&entries),
        [
            ("14".repeat(16), "01".repeat(32), 100, ""),
            ("15".repeat(16), "01".repeat(32), 100, lineage.as_str()),
            ("16".repeat(16), "01".repeat(32), 100, lineage.as_str()),
        ]
    );

    // The newest one was active; it cannot be renewed now.
    let mut next = license(23, 1, "acme", 50);
    next.renewed_from = Some(TokenId([22; 16]));
    let err = ledger
        .renew(&TokenId([22; 16]), &next, &note())
        .unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::NotActive {
                state: LicenseState::Revoked,
                ..
            }
        ),
        "{err:?}"
    );
}

/// A lineage is everything connected through `renewed_from`, siblings too.
pub fn a_lineage_is_everything_connected_by_renewal(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    // Renewal never branches, but a record may say so; 41 and 42 both
    // name 40, and revoking 42 takes its sibling 41 along through 40.
    ledger
        .insert_license(&license(40, 1, "acme", 5), &note())
        .unwrap();
    for token in [41, 42] {
        let mut l = license(token, 1, "acme", 6);
        l.renewed_from = Some(TokenId([40; 16]));
        ledger.insert_license(&l, &note()).unwrap();
    }
    ledger
        .insert_license(&license(43, 1, "acme", 7), &note())
        .unwrap();

    assert_eq!(
        ledger
            .revoke(&TokenId([42; 16]), "x", 100, &note())
            .unwrap(),
        revocation(1, 3, 3)
    );
    let (_, entries) = ledger.revocations().unwrap();
    let revoked: Vec<_> = entries.iter().map(|e| e.token_id.clone()).collect();
    assert_eq!(revoked, ["28".repeat(16), "29".repeat(16), "2a".repeat(16)]);
    assert_eq!(state_of(ledger, 43), LicenseState::Active);
}

/// Host `host`'s attestation key number `ak`, first enrolled at `enrolled_at`.
pub fn host_key(host: u8, ak: u8, enrolled_at: i64) -> HostRecord {
    HostRecord {
        host_id: HostId([host; 32]),
        ak_name: [&[0x00, 0x0B][..], &[ak; 32]].concat(),
        ak_public: vec![0x00, 0x03, ak, ak, ak],
        ek_cert_sha256: [host ^ 0xFF; 32],
        tpm_manufacturer: "id:00001014".into(),
        enrolled_at,
    }
}

/// Host keys are recorded once per (host, AK name) and list oldest first.
pub fn records_each_host_key_once_and_lists_them_oldest_first(ledger: &dyn Ledger) {
    assert!(ledger.enrol_host(&host_key(1, 1, 100), &note()).unwrap());
    assert!(ledger.enrol_host(&host_key(1, 2, 200), &note()).unwrap());
    assert!(ledger.enrol_host(&host_key(2, 1, 150), &note()).unwrap());

    // The same AK again keeps the first record.
    assert!(!ledger.enrol_host(&host_key(1, 1, 900), &note()).unwrap());

    assert_eq!(
        ledger.host_keys(&HostId([1; 32])).unwrap(),
        [host_key(1, 1, 100), host_key(1, 2, 200)]
    );
    assert_eq!(
        ledger.host_keys(&HostId([2; 32])).unwrap(),
        [host_key(2, 1, 150)]
    );
    assert_eq!(ledger.host_keys(&HostId([3; 32])).unwrap(), []);
}
