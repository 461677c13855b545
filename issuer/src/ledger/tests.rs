//! Ledger behaviour on a real SQLite file: the whole conformance suite
//! (one test per check, named after it), then what only a file can show.

use std::path::Path;

use chipward_proto::{ChipId, TokenId};

use super::conformance::{chip, host_key, license, note};
use super::*;
use crate::host_enrolment::HostId;

fn temp_ledger() -> (tempfile::TempDir, SqliteLedger) {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
    (dir, ledger)
}

crate::ledger_conformance_tests!(temp_ledger);

#[test]
fn the_check_list_names_each_check_once() {
    let mut names: Vec<&str> = conformance::CHECKS.iter().map(|(name, _)| *name).collect();
    let listed = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), listed);
    assert_eq!(listed, 20);
}

fn state_of(ledger: &dyn Ledger, token: u8) -> LicenseState {
    ledger
        .license(&TokenId([token; 16]))
        .unwrap()
        .unwrap()
        .state
}

#[test]
fn data_survives_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let ledger = SqliteLedger::open(&path).unwrap();
        ledger.enrol_chip(&chip(1), &note()).unwrap();
        ledger
            .insert_license(&license(10, 1, "acme", 5), &note())
            .unwrap();
        ledger
            .insert_license(&license(11, 1, "acme", 6), &note())
            .unwrap();
        ledger
            .revoke(&TokenId([10; 16]), "stolen", 7, &note())
            .unwrap();
        ledger.enrol_host(&host_key(4, 1, 8), &note()).unwrap();
    }

    let ledger = SqliteLedger::open(&path).unwrap();
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert_eq!(state_of(&ledger, 10), LicenseState::Revoked);
    assert_eq!(
        ledger.license(&TokenId([11; 16])).unwrap(),
        Some(license(11, 1, "acme", 6))
    );
    assert_eq!(
        ledger
            .revoke(&TokenId([11; 16]), "ended", 8, &note())
            .unwrap()
            .seq,
        2
    );
    assert_eq!(
        ledger.host_keys(&HostId([4; 32])).unwrap(),
        [host_key(4, 1, 8)]
    );
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
                found: 5,
                supported: 4
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
    assert!(ledger.enrol_chip(&chip(3), &note()).unwrap());
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
}

fn bump_schema(path: &Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute("INSERT INTO schema_version (version) VALUES (5)", [])
        .unwrap();
}
