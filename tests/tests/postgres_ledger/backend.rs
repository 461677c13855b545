//! What only the PostgreSQL backend shows: reconnecting, schema versions,
//! an unreachable or vanished server, rows edited behind the ledger's
//! back, the lineage bound, retries, and connections that die while idle.
//! Raw SQL reaches the states the ledger itself never writes.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use chipward_issuer::ledger::conformance::{chip, host_key, license, note};
use chipward_issuer::ledger::{
    Ledger, LedgerError, LicenseFilter, LicenseState, MAX_LINEAGE, PostgresLedger, PostgresOptions,
    PostgresUrl, Revocation, StoredTreeHead,
};
use chipward_proto::{ChipId, TokenId};
use chipward_tests::postgres;

use super::{connect, connect_with, fresh};

fn state_of(ledger: &dyn Ledger, token: TokenId) -> LicenseState {
    ledger.license(&token).unwrap().unwrap().state
}

#[test]
fn data_survives_reconnecting() {
    let db = postgres::database();
    {
        let ledger = connect(&db);
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

    let ledger = connect(&db);
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert_eq!(state_of(&ledger, TokenId([10; 16])), LicenseState::Revoked);
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
        ledger
            .host_keys(&chipward_issuer::host_enrolment::HostId([4; 32]))
            .unwrap(),
        [host_key(4, 1, 8)]
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM schema_version"), 1);
}

#[test]
fn refuses_a_database_from_a_newer_schema() {
    let (db, ledger) = fresh();
    drop(ledger);
    db.execute("INSERT INTO schema_version (version) VALUES (3)");
    let url: PostgresUrl = db.url().parse().unwrap();
    let err = PostgresLedger::connect(&url).err().unwrap();
    assert!(
        matches!(
            err,
            LedgerError::SchemaVersion {
                found: 3,
                supported: 2
            }
        ),
        "{err:?}"
    );
}

#[test]
fn refuses_a_schema_version_below_one() {
    let (db, ledger) = fresh();
    drop(ledger);
    db.execute("DELETE FROM schema_version; INSERT INTO schema_version VALUES (0)");
    let url: PostgresUrl = db.url().parse().unwrap();
    let err = PostgresLedger::connect(&url).err().unwrap();
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

#[test]
fn a_server_that_cannot_be_reached_is_unavailable() {
    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = postgres::shared();
    let cases = [
        format!("postgres://chipward@127.0.0.1:{port}/ledger"),
        server.url("no_such_database"),
        format!(
            "postgres://no_such_role@127.0.0.1:{}/postgres",
            server.port()
        ),
    ];
    for text in cases {
        let err = PostgresLedger::connect(&text.parse().unwrap())
            .err()
            .unwrap();
        assert!(
            matches!(err, LedgerError::Unavailable(_)),
            "{text}: {err:?}"
        );
    }
}

#[test]
fn calls_fail_as_unavailable_once_the_server_is_gone() {
    let server = postgres::start();
    let db = server.database();
    let ledger = connect(&db);
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    // The database goes with its server.
    std::mem::forget(db);
    drop(server);

    for call in 0..3 {
        let err = ledger.chip(&ChipId([1; 32])).unwrap_err();
        assert!(
            matches!(err, LedgerError::Unavailable(_)),
            "{call}: {err:?}"
        );
        let err = ledger.enrol_chip(&chip(2), &note()).unwrap_err();
        assert!(
            matches!(err, LedgerError::Unavailable(_)),
            "{call}: {err:?}"
        );
    }
}

#[test]
fn a_connection_that_died_while_idle_is_replaced() {
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    // Waits (up to 10 s) until each backend has gone, not just been told.
    let killed = db.query_i64(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 10000)) \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    );
    assert!(killed >= 1, "{killed}");

    // Reads and writes both go through: the dead connection is dropped
    // before anything was sent on it.
    assert_eq!(ledger.chip(&ChipId([1; 32])).unwrap(), Some(chip(1)));
    assert!(ledger.enrol_chip(&chip(2), &note()).unwrap());
}

#[test]
fn a_lock_held_too_long_elsewhere_makes_writes_unavailable() {
    let db = postgres::database();
    let options = PostgresOptions {
        lock_timeout: Duration::from_millis(300),
        ..PostgresOptions::default()
    };
    let ledger = connect_with(&db, &options);
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap();

    // Another session holds the lock every revocation takes first.
    let mut other = ::postgres::Client::connect(&db.url(), ::postgres::NoTls).unwrap();
    let mut held = other.transaction().unwrap();
    held.batch_execute("LOCK TABLE revocations IN EXCLUSIVE MODE")
        .unwrap();
    let started = Instant::now();
    let err = ledger
        .revoke(&TokenId([10; 16]), "x", 6, &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // Readers do not wait for it.
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
    assert_eq!(state_of(&ledger, TokenId([10; 16])), LicenseState::Active);

    held.rollback().unwrap();
    assert_eq!(
        ledger
            .revoke(&TokenId([10; 16]), "x", 6, &note())
            .unwrap()
            .seq,
        1
    );
}

#[test]
fn writes_that_log_wait_for_the_log_lock_and_reads_do_not() {
    let db = postgres::database();
    let options = PostgresOptions {
        lock_timeout: Duration::from_millis(300),
        ..PostgresOptions::default()
    };
    let ledger = connect_with(&db, &options);
    ledger.enrol_chip(&chip(1), &note()).unwrap();

    // Another session holds the lock every logging write takes first.
    let mut other = ::postgres::Client::connect(&db.url(), ::postgres::NoTls).unwrap();
    let mut held = other.transaction().unwrap();
    held.batch_execute("LOCK TABLE audit_head IN EXCLUSIVE MODE")
        .unwrap();
    let started = Instant::now();
    let err = ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let err = ledger.append_audit(&[note()]).unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");

    // Readers, and a write that never logs, go through.
    assert_eq!(ledger.audit_size().unwrap(), 1);
    assert_eq!(ledger.audit_entries(0, 10).unwrap().len(), 1);
    assert_eq!(ledger.license(&TokenId([10; 16])).unwrap(), None);
    let head = StoredTreeHead {
        size: 1,
        root: [1; 32],
        timestamp: 2,
        signed: vec![3],
    };
    ledger.store_tree_head(&head).unwrap();

    held.rollback().unwrap();
    assert_eq!(
        ledger
            .insert_license(&license(10, 1, "acme", 5), &note())
            .unwrap(),
        1
    );
}

#[test]
fn a_batch_item_failing_for_another_reason_fails_the_whole_batch() {
    let (_db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let batch = [
        (license(10, 1, "acme", 5), note()),
        // PostgreSQL text cannot hold U+0000: not a refusal of the ledger's.
        (license(11, 1, "ac\0me", 5), note()),
        (license(12, 1, "acme", 5), note()),
    ];
    let err = ledger.insert_licenses(&batch).unwrap_err();
    assert!(matches!(err, LedgerError::Backend(_)), "{err:?}");
    assert_eq!(ledger.license(&TokenId([10; 16])).unwrap(), None);
    assert_eq!(ledger.audit_size().unwrap(), 1);

    let outcomes = ledger.insert_licenses(&[batch[0].clone(), batch[2].clone()]);
    let indices: Vec<u64> = outcomes.unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(indices, [1, 2]);
}

#[test]
fn unreadable_stored_values_are_reported_as_corrupt() {
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let stored = license(2, 1, "acme", 1);
    ledger.insert_license(&stored, &note()).unwrap();

    db.execute("UPDATE licenses SET entitlements = ARRAY['a', NULL]");
    let err = ledger.license(&stored.token_id).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Corrupt {
                what: "entitlements"
            }
        ),
        "{err:?}"
    );

    db.execute(
        "ALTER TABLE licenses DROP CONSTRAINT licenses_token_id_check; \
         UPDATE licenses SET entitlements = '{}', token_id = '\\x0102'",
    );
    let err = ledger
        .list_licenses(&LicenseFilter::default(), 10)
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::Corrupt { what: "token id" }),
        "{err:?}"
    );
}

#[test]
fn other_database_failures_are_backend_errors() {
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();

    // PostgreSQL text cannot hold U+0000: refused, not a panic.
    let err = ledger
        .insert_license(&license(3, 1, "ac\0me", 1), &note())
        .unwrap_err();
    assert!(matches!(err, LedgerError::Backend(_)), "{err:?}");
    assert_eq!(ledger.license(&TokenId([3; 16])).unwrap(), None);

    db.execute("DROP TABLE revocations");
    let err = ledger.revocation_seq().unwrap_err();
    assert!(matches!(err, LedgerError::Backend(_)), "{err:?}");
}

#[test]
fn host_keys_refuse_ids_and_digests_of_the_wrong_length() {
    let (db, _ledger) = fresh();
    let insert = |host_id: &str, ek_digest: &str| {
        db.try_execute(&format!(
            "INSERT INTO host_keys (host_id, ak_name, ak_public, ek_cert_sha256, \
             tpm_manufacturer, enrolled_at) VALUES (decode('{host_id}', 'hex'), \
             decode('000b' || repeat('01', 32), 'hex'), '\\x00', \
             decode('{ek_digest}', 'hex'), '', 1)"
        ))
    };
    let good = "07".repeat(32);
    for (host_id, ek_digest, constraint) in [
        ("01", good.as_str(), "host_keys_host_id_check"),
        (good.as_str(), "0102", "host_keys_ek_cert_sha256_check"),
    ] {
        let err = insert(host_id, ek_digest).unwrap_err();
        let db_err = err.as_db_error().unwrap();
        assert_eq!(db_err.constraint(), Some(constraint), "{err:?}");
    }
    insert(&good, &good).unwrap();
}

/// Token id `n`: `n` big-endian in the first four bytes, then `0xee`.
fn token(n: u32) -> TokenId {
    let mut id = [0xee; 16];
    id[..4].copy_from_slice(&n.to_be_bytes());
    TokenId(id)
}

/// Stores licenses `token(1..=len)` of chip 1 as one renewal chain, the
/// last one active, in one statement (renewing one by one would take
/// minutes).
fn long_chain(db: &postgres::Database<'_>, len: u32) {
    let t = |n: &str| format!("decode(lpad(to_hex({n}), 8, '0') || repeat('ee', 12), 'hex')");
    db.execute(&format!(
        "INSERT INTO licenses (token_id, chip_id, tenant, site_id, site_latitude, \
         site_longitude, site_radius_km, issued_at, not_before, expires_at, state, token, \
         renewed_from, lineage_root, entitlements, eccn) \
         SELECT {tn}, decode(repeat('01', 32), 'hex'), 'acme', 'fra-1', 1, 2, 3, n, n, \
         n + 86400, CASE WHEN n = {len} THEN 'active' ELSE 'superseded' END, '\\x01', \
         CASE WHEN n > 1 THEN {parent} END, {root}, '{{}}', '' \
         FROM generate_series(1, {len}) AS n ORDER BY n",
        tn = t("n"),
        parent = t("n - 1"),
        root = t("1"),
    ));
}

/// A license of chip 1 with token id `token(n)`.
fn numbered(n: u32, renewed_from: Option<u32>) -> chipward_issuer::ledger::LicenseRecord {
    let mut l = license(0, 1, "acme", i64::from(n));
    l.token_id = token(n);
    l.renewed_from = renewed_from.map(token);
    l
}

#[test]
fn lineages_stop_growing_at_the_bound_and_revoke_up_to_it() {
    let max = u32::try_from(MAX_LINEAGE).unwrap();
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    long_chain(&db, max);
    assert_eq!(state_of(&ledger, token(max)), LicenseState::Active);
    assert_eq!(state_of(&ledger, token(1)), LicenseState::Superseded);

    // Renewing the newest would make the lineage one too large.
    let err = ledger
        .renew(&token(max), &numbered(max + 1, Some(max)), &note())
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::LineageTooLarge { token_id, max: m }
            if token_id == token(max) && m == MAX_LINEAGE),
        "{err:?}"
    );
    assert_eq!(ledger.license(&token(max + 1)).unwrap(), None);
    assert_eq!(state_of(&ledger, token(max)), LicenseState::Active);

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
    let lineage_note = format!("stolen (lineage of {})", token(max / 2).to_hex());
    assert_eq!(entries[0].reason, lineage_note);
    let asked = usize::try_from(max / 2).unwrap() - 1;
    assert_eq!(entries[asked].reason, "stolen");
}

#[test]
fn refuses_to_revoke_a_lineage_past_the_bound_and_writes_nothing() {
    let max = u32::try_from(MAX_LINEAGE).unwrap();
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    long_chain(&db, max);
    // Only a record stored outside renewal can push a lineage past it.
    ledger
        .insert_license(&numbered(max + 1, Some(max)), &note())
        .unwrap();

    for start in [1, max + 1] {
        let err = ledger.revoke(&token(start), "x", 7, &note()).unwrap_err();
        let refused = matches!(err, LedgerError::LineageTooLarge { token_id, .. }
            if token_id == token(start));
        assert!(refused, "{err:?}");
    }
    assert_eq!(ledger.revocation_seq().unwrap(), 0);
    assert_eq!(
        db.query_i64("SELECT count(*) FROM licenses WHERE state = 'revoked'"),
        0
    );
}

#[test]
fn revoking_completes_a_lineage_revoked_only_in_part() {
    let (db, ledger) = fresh();
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    ledger.insert_license(&numbered(1, None), &note()).unwrap();
    ledger
        .renew(&token(1), &numbered(2, Some(1)), &note())
        .unwrap();
    // A lineage whose older member alone is on the list, at version 1.
    db.execute(&format!(
        "UPDATE licenses SET state = 'revoked' WHERE token_id = '\\x{t}';
         INSERT INTO revocations (seq, token_id, revoked_at, reason)
             VALUES (1, '\\x{t}', 50, 'old');",
        t = token(1).to_hex()
    ));

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

/// A trigger on `host_keys` that counts every attempt to insert (sequences
/// ignore rollbacks) and fails the first `failures` of them as a
/// serialization failure would.
fn flaky_host_keys(db: &postgres::Database<'_>, failures: i64) {
    db.execute(&format!(
        "CREATE SEQUENCE attempts;
         CREATE FUNCTION flaky() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('attempts') <= {failures} THEN
                 RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'serialization_failure';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER flaky BEFORE INSERT ON host_keys
             FOR EACH ROW EXECUTE FUNCTION flaky();"
    ));
}

#[test]
fn conflicts_are_retried_until_one_attempt_commits() {
    let (db, ledger) = fresh();
    flaky_host_keys(&db, 4);
    assert!(ledger.enrol_host(&host_key(1, 1, 10), &note()).unwrap());
    assert_eq!(db.query_i64("SELECT last_value FROM attempts"), 5);
    assert_eq!(
        ledger
            .host_keys(&chipward_issuer::host_enrolment::HostId([1; 32]))
            .unwrap(),
        [host_key(1, 1, 10)]
    );
}

#[test]
fn conflicts_that_outlast_every_attempt_are_unavailable() {
    let db = postgres::database();
    let options = PostgresOptions {
        max_attempts: 3,
        ..PostgresOptions::default()
    };
    let ledger = connect_with(&db, &options);
    flaky_host_keys(&db, 1_000);
    let err = ledger.enrol_host(&host_key(1, 1, 10), &note()).unwrap_err();
    assert!(matches!(err, LedgerError::Unavailable(_)), "{err:?}");
    assert_eq!(db.query_i64("SELECT last_value FROM attempts"), 3);
    assert_eq!(db.query_i64("SELECT count(*) FROM host_keys"), 0);
}

#[test]
fn commits_wait_for_the_flush_even_where_the_database_says_otherwise() {
    let db = postgres::database();
    db.execute(&format!(
        "ALTER DATABASE \"{}\" SET synchronous_commit = off",
        db.name()
    ));
    let ledger = connect(&db);
    // Records the setting of the session that inserts, which is the ledger's.
    db.execute(
        "CREATE TABLE seen (setting text);
         CREATE FUNCTION record_setting() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             INSERT INTO seen VALUES (current_setting('synchronous_commit'));
             RETURN NEW;
         END $$;
         CREATE TRIGGER record_setting BEFORE INSERT ON chips
             FOR EACH ROW EXECUTE FUNCTION record_setting();",
    );
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    assert_eq!(
        db.query_i64("SELECT count(*) FROM seen WHERE setting = 'on'"),
        1
    );
    assert_eq!(db.query_i64("SELECT count(*) FROM seen"), 1);
}
