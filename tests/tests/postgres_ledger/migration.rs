//! A database that schema version 1 wrote, before the ledger kept an audit
//! log, is migrated when a ledger opens it: its records stay as they were,
//! each license's term is taken to begin at its own issue (as the SQLite
//! ledger migrates its older rows), and the log starts empty and works.

use chipward_issuer::ledger::conformance::{chip, license, note};
use chipward_issuer::ledger::{Ledger, LicenseState, PostgresLedger, Revocation};
use chipward_proto::TokenId;
use chipward_proto::audit;
use chipward_tests::postgres;

use super::connect;

/// The rows of chip 1 and of licenses 10 and 11, 11 renewing 10, as
/// version 1 stored them; the same values as the conformance suite's
/// `chip(1)`, `license(10, 1, "acme", 5)` and `license(11, 1, "acme", 50)`.
const VERSION_1_ROWS: &str = "
INSERT INTO chips (chip_id, model, identity_cert, enrolled_at)
    VALUES (decode(repeat('01', 32), 'hex'), 'CW-1', '\\x300101', 1001);
INSERT INTO licenses (token_id, chip_id, tenant, site_id, site_latitude, site_longitude,
    site_radius_km, issued_at, not_before, expires_at, state, token, renewed_from,
    lineage_root, entitlements, eccn)
VALUES
    (decode(repeat('0a', 16), 'hex'), decode(repeat('01', 32), 'hex'), 'acme', 'fra-1',
     50.1, 8.6, 25.0, 5, -5, 86405, 'superseded', '\\xd2840a', NULL,
     decode(repeat('0a', 16), 'hex'), ARRAY['fp8', 'nvlink'], '3A090.a'),
    (decode(repeat('0b', 16), 'hex'), decode(repeat('01', 32), 'hex'), 'acme', 'fra-1',
     50.1, 8.6, 25.0, 50, 40, 86450, 'active', '\\xd2840b', decode(repeat('0a', 16), 'hex'),
     decode(repeat('0a', 16), 'hex'), ARRAY['fp8', 'nvlink'], '3A090.a');
";

#[test]
fn a_version_1_database_is_migrated_and_keeps_its_records() {
    let db = postgres::database();
    db.execute(include_str!("schema_v1.sql"));
    db.execute(VERSION_1_ROWS);

    let ledger = connect(&db);
    assert_eq!(
        db.query_i64("SELECT count(*) * 10 + max(version) FROM schema_version"),
        22
    );
    assert_eq!(ledger.chip(&chip(1).chip_id).unwrap(), Some(chip(1)));
    // Licenses from before version 2 kept no screened parties.
    let mut older = license(10, 1, "acme", 5);
    older.state = LicenseState::Superseded;
    older.parties = String::new();
    assert_eq!(ledger.license(&TokenId([10; 16])).unwrap(), Some(older));
    let mut newer = license(11, 1, "acme", 50);
    newer.renewed_from = Some(TokenId([10; 16]));
    newer.parties = String::new();
    assert_eq!(ledger.license(&TokenId([11; 16])).unwrap(), Some(newer));
    assert_eq!(ledger.audit_size().unwrap(), 0);

    // The lineage kept from version 1 revokes whole, and the log records it.
    let done = ledger
        .revoke(&TokenId([11; 16]), "ended", 60, &note())
        .unwrap();
    let whole = Revocation {
        seq: 1,
        lineage: 2,
        newly_revoked: 2,
    };
    assert_eq!(done, whole);
    let entries = ledger.audit_entries(0, 10).unwrap();
    assert_eq!(entries, [note().entry.encode().unwrap()]);
    assert_eq!(
        ledger.audit_node(0, 0).unwrap(),
        audit::leaf_hash(&entries[0])
    );

    // Opening again migrates nothing twice.
    drop(ledger);
    let url = db.url().parse().unwrap();
    let again = PostgresLedger::connect(&url).unwrap();
    assert_eq!(db.query_i64("SELECT count(*) FROM schema_version"), 2);
    assert_eq!(again.audit_size().unwrap(), 1);
}
