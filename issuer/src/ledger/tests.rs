//! Ledger behaviour, run against a real SQLite file. The checks take
//! `&dyn Ledger` so that another backend can run the same ones.

use std::path::Path;

use chipward_proto::license::SiteClaim;
use chipward_proto::{ChipId, TokenId};

use super::*;

fn chip(n: u8) -> ChipRecord {
    ChipRecord {
        chip_id: ChipId([n; 32]),
        model: format!("CW-{n}"),
        identity_cert: vec![0x30, n, n],
        enrolled_at: 1_000 + i64::from(n),
    }
}

fn license(token: u8, chip: u8, tenant: &str, issued_at: i64) -> LicenseRecord {
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
    }
}

fn temp_ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
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

#[test]
fn enrolment_is_idempotent_for_the_same_certificate() {
    let (_dir, ledger) = temp_ledger();
    assert!(ledger.enrol_chip(&chip(1)).unwrap());
    assert!(!ledger.enrol_chip(&chip(1)).unwrap());

    // A later enrolment with the same certificate keeps the first record.
    let mut again = chip(1);
    again.enrolled_at = 9_999;
    assert!(!ledger.enrol_chip(&again).unwrap());
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert_eq!(ledger.chip(&ChipId([2; 32])).unwrap(), None);
}

#[test]
fn enrolment_with_another_certificate_conflicts() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    let mut other = chip(1);
    other.identity_cert = vec![0x30, 0xff];
    let err = ledger.enrol_chip(&other).unwrap_err();
    assert!(
        matches!(err, LedgerError::Conflict { chip_id } if chip_id == ChipId([1; 32])),
        "{err:?}"
    );
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
}

#[test]
fn stores_licenses_and_lists_newest_first_with_filters() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    ledger.enrol_chip(&chip(2)).unwrap();
    ledger.insert_license(&license(10, 1, "acme", 100)).unwrap();
    ledger.insert_license(&license(11, 2, "acme", 300)).unwrap();
    ledger
        .insert_license(&license(12, 1, "globex", 200))
        .unwrap();
    // Same second as token 11, inserted later: it counts as newer.
    ledger.insert_license(&license(13, 1, "acme", 300)).unwrap();

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

#[test]
fn keeps_entitlement_lists_exactly() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    let cases: [Vec<String>; 4] = [
        vec![],
        vec![String::new()],
        vec!["a;b".into(), "ü,".into(), String::new()],
        vec!["x".repeat(64); 32],
    ];
    for (i, entitlements) in cases.into_iter().enumerate() {
        let mut l = license(u8::try_from(i).unwrap() + 1, 1, "acme", 5);
        l.entitlements = entitlements;
        ledger.insert_license(&l).unwrap();
        assert_eq!(ledger.license(&l.token_id).unwrap(), Some(l));
    }
}

#[test]
fn refuses_licenses_for_unknown_chips_and_taken_token_ids() {
    let (_dir, ledger) = temp_ledger();
    let err = ledger
        .insert_license(&license(10, 1, "acme", 5))
        .unwrap_err();
    assert!(matches!(err, LedgerError::UnknownChip { .. }), "{err:?}");

    ledger.enrol_chip(&chip(1)).unwrap();
    ledger.insert_license(&license(10, 1, "acme", 5)).unwrap();
    let err = ledger
        .insert_license(&license(10, 1, "other", 6))
        .unwrap_err();
    assert!(matches!(err, LedgerError::DuplicateToken { .. }), "{err:?}");
    assert_eq!(
        ledger.license(&TokenId([10; 16])).unwrap().unwrap().tenant,
        "acme"
    );
}

#[test]
fn renewal_supersedes_the_old_license_and_stores_the_new() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    ledger.insert_license(&license(10, 1, "acme", 5)).unwrap();

    let mut new = license(11, 1, "acme", 50);
    new.renewed_from = Some(TokenId([10; 16]));
    ledger.renew(&TokenId([10; 16]), &new).unwrap();

    assert_eq!(state_of(&ledger, 10), LicenseState::Superseded);
    assert_eq!(
        ledger.license(&TokenId([11; 16])).unwrap(),
        Some(new.clone())
    );

    // The superseded one cannot be renewed a second time.
    let err = ledger.renew(&TokenId([10; 16]), &license(12, 1, "acme", 60));
    assert!(matches!(
        err,
        Err(LedgerError::NotActive {
            state: LicenseState::Superseded,
            ..
        })
    ));
    assert_eq!(ledger.license(&TokenId([12; 16])).unwrap(), None);
}

#[test]
fn renewing_a_revoked_license_fails_and_changes_nothing() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    let old = license(10, 1, "acme", 5);
    ledger.insert_license(&old).unwrap();
    ledger.revoke(&old.token_id, "stolen", 7).unwrap();
    let before = ledger.license(&old.token_id).unwrap();

    let err = ledger.renew(&old.token_id, &license(11, 1, "acme", 50));
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

#[test]
fn renewal_rolls_back_when_the_new_license_cannot_be_stored() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    ledger.insert_license(&license(10, 1, "acme", 5)).unwrap();
    ledger.insert_license(&license(11, 1, "acme", 6)).unwrap();

    // The new record reuses token 11, so the insert fails after the update.
    let err = ledger.renew(&TokenId([10; 16]), &license(11, 1, "acme", 50));
    assert!(matches!(err, Err(LedgerError::DuplicateToken { .. })));
    assert_eq!(state_of(&ledger, 10), LicenseState::Active);
    assert_eq!(
        ledger
            .license(&TokenId([11; 16]))
            .unwrap()
            .unwrap()
            .issued_at,
        6
    );

    let err = ledger.renew(&TokenId([99; 16]), &license(12, 1, "acme", 50));
    assert!(matches!(err, Err(LedgerError::NotFound { .. })));
    assert_eq!(ledger.license(&TokenId([12; 16])).unwrap(), None);
}

#[test]
fn revocation_numbers_grow_by_one_and_repeat_for_the_same_license() {
    let (_dir, ledger) = temp_ledger();
    ledger.enrol_chip(&chip(1)).unwrap();
    ledger.enrol_chip(&chip(2)).unwrap();
    for (token, chip) in [(10, 1), (11, 2), (12, 1), (13, 1)] {
        ledger
            .insert_license(&license(token, chip, "acme", 5))
            .unwrap();
    }
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
    assert_eq!(ledger.revocations().unwrap(), (0, vec![]));

    assert_eq!(
        ledger
            .revoke(&TokenId([11; 16]), "contract ended", 100)
            .unwrap(),
        1
    );
    assert_eq!(ledger.revoke(&TokenId([10; 16]), "stolen", 101).unwrap(), 2);
    assert_eq!(ledger.revoke(&TokenId([11; 16]), "again", 102).unwrap(), 1);

    // A superseded license can still be revoked.
    ledger
        .renew(&TokenId([12; 16]), &license(14, 1, "acme", 6))
        .unwrap();
    assert_eq!(ledger.revoke(&TokenId([12; 16]), "", 103).unwrap(), 3);
    assert_eq!(state_of(&ledger, 12), LicenseState::Revoked);

    let err = ledger.revoke(&TokenId([99; 16]), "x", 104).unwrap_err();
    assert!(matches!(err, LedgerError::NotFound { .. }), "{err:?}");

    assert_eq!(ledger.revocation_seq().unwrap(), 3);
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 3);
    let summary: Vec<(String, String, i64, &str)> = entries
        .iter()
        .map(|e| {
            (
                e.token_id.clone(),
                e.chip_id.clone(),
                e.revoked_at,
                e.reason.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("0b".repeat(16), "02".repeat(32), 100, "contract ended"),
            ("0a".repeat(16), "01".repeat(32), 101, "stolen"),
            ("0c".repeat(16), "01".repeat(32), 103, ""),
        ]
    );
    assert_eq!(state_of(&ledger, 13), LicenseState::Active);
}

#[test]
fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let ledger = SqliteLedger::open(&path).unwrap();
        ledger.enrol_chip(&chip(1)).unwrap();
        ledger.insert_license(&license(10, 1, "acme", 5)).unwrap();
        ledger.insert_license(&license(11, 1, "acme", 6)).unwrap();
        ledger.revoke(&TokenId([10; 16]), "stolen", 7).unwrap();
    }

    let ledger = SqliteLedger::open(&path).unwrap();
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert_eq!(state_of(&ledger, 10), LicenseState::Revoked);
    assert_eq!(
        ledger.license(&TokenId([11; 16])).unwrap(),
        Some(license(11, 1, "acme", 6))
    );
    assert_eq!(ledger.revoke(&TokenId([11; 16]), "ended", 8).unwrap(), 2);
}

#[test]
fn refuses_a_database_from_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(SqliteLedger::open(&path).unwrap());
    bump_schema(&path);
    let err = SqliteLedger::open(&path).err().unwrap();
    assert!(
        matches!(
            err,
            LedgerError::SchemaVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    std::fs::write(&path, vec![0x55; 4096]).unwrap();
    let err = SqliteLedger::open(&path).err().unwrap();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
}

#[test]
fn in_memory_ledgers_work_for_tests() {
    let ledger = SqliteLedger::open_in_memory().unwrap();
    assert!(ledger.enrol_chip(&chip(3)).unwrap());
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
}

fn bump_schema(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (2)", [])
        .unwrap();
}
