//! The SQLite schema, its version, and the migrations between versions.
//!
//! Tables are created with `IF NOT EXISTS` on every open; a database
//! written by an older version is then migrated in the same transaction,
//! and one written by a newer version is refused. Nothing here reads
//! untrusted input.

use rusqlite::Transaction;

use super::classify;
use crate::ledger::LedgerError;

/// The schema version this build writes and reads.
///
/// 1: one revocation row per list version (`revocations.seq` its key).
/// 2: revocation rows keyed by `id`, several may share a `seq`, so one
///    revocation call (a whole lineage) makes one list version.
/// 3: `host_keys`, the hosts' attestation keys.
pub(super) const SCHEMA_VERSION: i64 = 3;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chips (
    chip_id       BLOB PRIMARY KEY CHECK (length(chip_id) = 32),
    model         TEXT NOT NULL,
    identity_cert BLOB NOT NULL,
    enrolled_at   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS licenses (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    token_id       BLOB NOT NULL UNIQUE CHECK (length(token_id) = 16),
    chip_id        BLOB NOT NULL REFERENCES chips (chip_id),
    tenant         TEXT NOT NULL,
    site_id        TEXT NOT NULL,
    site_latitude  REAL NOT NULL,
    site_longitude REAL NOT NULL,
    site_radius_km REAL NOT NULL,
    issued_at      INTEGER NOT NULL,
    not_before     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'superseded')),
    token          BLOB NOT NULL,
    renewed_from   BLOB REFERENCES licenses (token_id),
    entitlements   TEXT NOT NULL,
    eccn           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_by_chip ON licenses (chip_id, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_tenant ON licenses (tenant, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_parent ON licenses (renewed_from);
CREATE TABLE IF NOT EXISTS revocations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    token_id   BLOB NOT NULL UNIQUE REFERENCES licenses (token_id),
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS host_keys (
    host_id          BLOB NOT NULL CHECK (length(host_id) = 32),
    ak_name          BLOB NOT NULL CHECK (length(ak_name) BETWEEN 34 AND 66),
    ak_public        BLOB NOT NULL,
    ek_cert_sha256   BLOB NOT NULL CHECK (length(ek_cert_sha256) = 32),
    tpm_manufacturer TEXT NOT NULL,
    enrolled_at      INTEGER NOT NULL,
    PRIMARY KEY (host_id, ak_name)
);
";

/// Indexes on tables whose shape changed; created after any migration.
const LATE_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS revocations_by_seq ON revocations (seq);
";

/// Version 1 to 2: rebuild `revocations` with its own row key. Each old
/// row was its own list version, so `seq` carries over and also orders the
/// rows.
const MIGRATE_1_TO_2: &str = "
CREATE TABLE revocations_v2 (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    token_id   BLOB NOT NULL UNIQUE REFERENCES licenses (token_id),
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
INSERT INTO revocations_v2 (id, seq, token_id, revoked_at, reason)
    SELECT seq, seq, token_id, revoked_at, reason FROM revocations ORDER BY seq;
DROP TABLE revocations;
ALTER TABLE revocations_v2 RENAME TO revocations;
";

/// Creates missing tables and brings an older schema up to
/// [`SCHEMA_VERSION`], inside the caller's transaction.
///
/// Version 2 to 3 only adds `host_keys`, which [`TABLES`] has just created.
pub(super) fn prepare(tx: &Transaction<'_>) -> Result<(), LedgerError> {
    tx.execute_batch(TABLES).map_err(classify)?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .map_err(classify)?;
    match found {
        // A new database: the tables above are already the current ones.
        None => {}
        Some(1) => tx.execute_batch(MIGRATE_1_TO_2).map_err(classify)?,
        Some(2 | SCHEMA_VERSION) => {}
        Some(v) if v > SCHEMA_VERSION => {
            return Err(LedgerError::SchemaVersion {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {
            return Err(LedgerError::Corrupt {
                what: "schema version",
            });
        }
    }
    if found != Some(SCHEMA_VERSION) {
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [SCHEMA_VERSION],
        )
        .map_err(classify)?;
    }
    tx.execute_batch(LATE_INDEXES).map_err(classify)
}
