//! SQLite-specific ledger behaviour: pragmas, stored values that cannot be
//! read back, schema migration, and states only raw SQL can create.

use super::*;
use crate::ledger::conformance::note;

#[test]
fn file_databases_use_wal_with_full_sync() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = SqliteLedger::open(&dir.path().join("ledger.sqlite")).unwrap();
    let conn = ledger.conn();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    let keys: i64 = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(sync, 2, "2 is FULL");
    assert_eq!(keys, 1);
}

#[test]
fn unreadable_stored_values_are_reported_as_corrupt() {
    let ledger = SqliteLedger::open_in_memory().unwrap();
    ledger
        .enrol_chip(
            &ChipRecord {
                chip_id: ChipId([1; 32]),
                model: "CW-100".into(),
                identity_cert: vec![0x30],
                enrolled_at: 1,
            },
            &note(),
        )
        .unwrap();
    let license = LicenseRecord {
        token_id: TokenId([2; 16]),
        chip_id: ChipId([1; 32]),
        tenant: "acme".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 1.0,
            longitude: 2.0,
            radius_km: 3.0,
        },
        issued_at: 1,
        not_before: 1,
        expires_at: 2,
        state: LicenseState::Active,
        token: vec![1],
        renewed_from: None,
        entitlements: vec!["a".into()],
        eccn: String::new(),
        term_started_at: 1,
        parties: String::new(),
    };
    ledger.insert_license(&license, &note()).unwrap();

    for bad in ["zz;", "6162", "ff;"] {
        ledger
            .conn()
            .execute("UPDATE licenses SET entitlements = ?1", [bad])
            .unwrap();
        let err = ledger.license(&license.token_id).unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::Corrupt {
                    what: "entitlements"
                }
            ),
            "{bad}: {err:?}"
        );
        let err = ledger
            .list_licenses(&LicenseFilter::default(), 10)
            .unwrap_err();
        assert!(matches!(err, LedgerError::Corrupt { .. }), "{bad}: {err:?}");
    }
}

#[test]
fn other_sqlite_failures_are_backend_errors() {
    let ledger = SqliteLedger::open_in_memory().unwrap();
    ledger
        .conn()
        .execute_batch("DROP TABLE revocations")
        .unwrap();
    let err = ledger.revocation_seq().unwrap_err();
    assert!(matches!(err, LedgerError::Backend(_)), "{err:?}");
}

fn enrolled() -> SqliteLedger {
    let ledger = SqliteLedger::open_in_memory().unwrap();
    ledger
        .enrol_chip(
            &ChipRecord {
                chip_id: ChipId([1; 32]),
                model: "CW-100".into(),
                identity_cert: vec![0x30],
                enrolled_at: 1,
            },
            &note(),
        )
        .unwrap();
    ledger
}

/// A license of chip 1 with token id `n` (big-endian in the first bytes).
fn numbered(n: u32, renewed_from: Option<u32>, state: LicenseState) -> LicenseRecord {
    LicenseRecord {
        token_id: token(n),
        chip_id: ChipId([1; 32]),
        tenant: "acme".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 1.0,
            longitude: 2.0,
            radius_km: 3.0,
        },
        issued_at: i64::from(n),
        not_before: i64::from(n),
        expires_at: i64::from(n) + 86_400,
        state,
        token: vec![1],
        renewed_from: renewed_from.map(token),
        entitlements: vec![],
        eccn: String::new(),
        term_started_at: i64::from(n),
        parties: String::new(),
    }
}

fn token(n: u32) -> TokenId {
    let mut id = [0xee; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    TokenId(id)
}

/// Stores licenses 1..=len as one renewal chain, the last one active, in a
/// single transaction (renewing one by one would take minutes).
fn long_chain(ledger: &SqliteLedger, len: u32) {
    let mut conn = ledger.conn();
    let tx = immediate(&mut conn).unwrap();
    for n in 1..=len {
        let state = if n == len {
            LicenseState::Active
        } else {
            LicenseState::Superseded
        };
        let parent = (n > 1).then(|| n - 1);
        insert(&tx, &numbered(n, parent, state)).unwrap();
    }
    tx.commit().unwrap();
}

#[test]
fn lineages_stop_growing_at_the_bound_and_revoke_up_to_it() {
    let max = u32::try_from(MAX_LINEAGE).unwrap();
    let ledger = enrolled();
    long_chain(&ledger, max);

    // Renewing the newest would make the lineage one too large.
    let next = numbered(max + 1, Some(max), LicenseState::Active);
    let err = ledger.renew(&token(max), &next, &note()).unwrap_err();
    assert!(
        matches!(err, LedgerError::LineageTooLarge { token_id, max: m }
            if token_id == token(max) && m == MAX_LINEAGE),
        "{err:?}"
    );
    assert_eq!(ledger.license(&token(max + 1)).unwrap(), None);
    let active = ledger.license(&token(max)).unwrap().unwrap();
    assert_eq!(active.state, LicenseState::Active);

    // At the bound, the whole lineage is still revoked in one version.
    let done = ledger
        .revoke(&token(max / 2), "stolen", 7, &note())
        .unwrap();
    assert_eq!(
        done,
        Revocation {
            seq: 1,
            lineage: MAX_LINEAGE,
            newly_revoked: MAX_LINEAGE
        }
    );
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!((seq, entries.len()), (1, MAX_LINEAGE));
    assert_eq!(entries[0].token_id, token(1).to_hex());
    assert_eq!(entries[MAX_LINEAGE - 1].token_id, token(max).to_hex());
}

#[test]
fn refuses_to_revoke_a_lineage_past_the_bound_and_writes_nothing() {
    let max = u32::try_from(MAX_LINEAGE).unwrap();
    let ledger = enrolled();
    long_chain(&ledger, max);
    // Only a record stored outside renewal can push a lineage past it.
    let extra = numbered(max + 1, Some(max), LicenseState::Active);
    ledger.insert_license(&extra, &note()).unwrap();

    for start in [1, max + 1] {
        let err = ledger.revoke(&token(start), "x", 7, &note()).unwrap_err();
        assert!(
            matches!(err, LedgerError::LineageTooLarge { token_id, .. } if token_id == token(start)),
            "{err:?}"
        );
    }
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
    let states: i64 = ledger
        .conn()
        .query_row(
            "SELECT count(*) FROM licenses WHERE state = 'revoked'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(states, 0);
}

#[test]
fn revoking_completes_a_lineage_revoked_only_in_part() {
    let ledger = enrolled();
    ledger
        .insert_license(&numbered(1, None, LicenseState::Active), &note())
        .unwrap();
    ledger
        .renew(
            &token(1),
            &numbered(2, Some(1), LicenseState::Active),
            &note(),
        )
        .unwrap();
    // What a ledger revoked before lineages were revoked whole looks like:
    // the superseded license on the list at version 1, its renewal active.
    ledger
        .conn()
        .execute_batch(&format!(
            "UPDATE licenses SET state = 'revoked' WHERE token_id = x'{t}';
             INSERT INTO revocations (seq, token_id, revoked_at, reason)
                 VALUES (1, x'{t}', 50, 'old');",
            t = token(1).to_hex()
        ))
        .unwrap();

    let done = ledger.revoke(&token(1), "again", 100, &note()).unwrap();
    assert_eq!(
        done,
        Revocation {
            seq: 2,
            lineage: 2,
            newly_revoked: 1
        }
    );
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 2);
    let summary: Vec<_> = entries
        .iter()
        .map(|e| (e.token_id.clone(), e.revoked_at, e.reason.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (token(1).to_hex(), 50, "old".to_owned()),
            (
                token(2).to_hex(),
                100,
                format!("again (lineage of {})", token(1).to_hex())
            ),
        ]
    );
    assert_eq!(ledger.revoke(&token(2), "", 101, &note()).unwrap().seq, 2);
}

/// The version 1 `revocations` table, as older builds created it.
const REVOCATIONS_V1: &str = "
DROP TABLE revocations;
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY,
    token_id   BLOB NOT NULL UNIQUE REFERENCES licenses (token_id),
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
DELETE FROM schema_version;
INSERT INTO schema_version (version) VALUES (1);
";

#[test]
fn migrates_a_version_1_database_keeping_its_list() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let ledger = SqliteLedger::open(&path).unwrap();
        ledger
            .enrol_chip(
                &ChipRecord {
                    chip_id: ChipId([1; 32]),
                    model: "CW-100".into(),
                    identity_cert: vec![0x30],
                    enrolled_at: 1,
                },
                &note(),
            )
            .unwrap();
        for n in 1..=4 {
            ledger
                .insert_license(&numbered(n, None, LicenseState::Active), &note())
                .unwrap();
        }
        let conn = ledger.conn();
        conn.execute_batch(REVOCATIONS_V1).unwrap();
        // Two revocations, each its own version, stored out of order.
        for (seq, n, reason) in [(2, 1, "second"), (1, 3, "first")] {
            conn.execute(
                "INSERT INTO revocations (seq, token_id, revoked_at, reason) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![seq, &token(n).0[..], 10 * seq, reason],
            )
            .unwrap();
            conn.execute(
                "UPDATE licenses SET state = 'revoked' WHERE token_id = ?1",
                [&token(n).0[..]],
            )
            .unwrap();
        }
    }

    let ledger = SqliteLedger::open(&path).unwrap();
    let version: i64 = ledger
        .conn()
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    let (seq, entries) = ledger.revocations().unwrap();
    assert_eq!(seq, 2);
    let order: Vec<_> = entries.iter().map(|e| e.reason.as_str()).collect();
    assert_eq!(order, ["first", "second"]);

    // New revocations continue the sequence and repeat the old numbers.
    assert_eq!(
        ledger.revoke(&token(2), "third", 30, &note()).unwrap().seq,
        3
    );
    assert_eq!(
        ledger.revoke(&token(1), "again", 31, &note()).unwrap().seq,
        2
    );
    drop(ledger);

    // Opening again changes nothing.
    let ledger = SqliteLedger::open(&path).unwrap();
    assert_eq!(ledger.revocations().unwrap().0, 3);
}

#[test]
fn migrates_a_version_2_database_by_adding_host_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    {
        let ledger = SqliteLedger::open(&path).unwrap();
        ledger
            .enrol_chip(
                &ChipRecord {
                    chip_id: ChipId([1; 32]),
                    model: "CW-100".into(),
                    identity_cert: vec![0x30],
                    enrolled_at: 1,
                },
                &note(),
            )
            .unwrap();
        ledger
            .insert_license(&numbered(1, None, LicenseState::Active), &note())
            .unwrap();
        // What version 2 looked like: no host_keys table.
        ledger
            .conn()
            .execute_batch(
                "DROP TABLE host_keys; DELETE FROM schema_version; \
                 INSERT INTO schema_version (version) VALUES (2);",
            )
            .unwrap();
    }

    let ledger = SqliteLedger::open(&path).unwrap();
    let version: i64 = ledger
        .conn()
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 4);
    assert!(ledger.license(&token(1)).unwrap().is_some());
    let host = HostRecord {
        host_id: HostId([7; 32]),
        ak_name: [&[0x00, 0x0B][..], &[7; 32]].concat(),
        ak_public: vec![0x00, 0x01, 0x07],
        ek_cert_sha256: [8; 32],
        tpm_manufacturer: String::new(),
        enrolled_at: 5,
    };
    assert!(ledger.enrol_host(&host, &note()).unwrap());
    assert_eq!(ledger.host_keys(&HostId([7; 32])).unwrap(), [host]);
}

#[test]
fn host_keys_refuse_ids_and_digests_of_the_wrong_length() {
    let ledger = SqliteLedger::open_in_memory().unwrap();
    let err = ledger
        .conn()
        .execute(
            "INSERT INTO host_keys VALUES (x'01', x'000b', x'00', x'00', '', 1)",
            [],
        )
        .unwrap_err();
    assert!(err.to_string().contains("CHECK"), "{err}");
}

#[test]
fn refuses_a_schema_version_below_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.sqlite");
    drop(SqliteLedger::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("DELETE FROM schema_version; INSERT INTO schema_version VALUES (0);")
        .unwrap();
    drop(conn);
    let err = SqliteLedger::open(&path).err().unwrap();
    assert!(
        matches!(
            err,
            LedgerError::Corrupt {
                what: "schema version"
            }
        ),
        "{err:?}"
    );
}
