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
/// 4: the audit log (`audit_entries`, `audit_nodes`, `artefacts`,
///    `tree_heads`), `results`, `legal_holds`, and each license's
///    `term_started_at` and screened `parties`.
pub(super) const SCHEMA_VERSION: i64 = 4;

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
    eccn           TEXT NOT NULL,
    term_started_at INTEGER NOT NULL DEFAULT 0,
    parties        TEXT NOT NULL DEFAULT ''
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
CREATE TABLE IF NOT EXISTS audit_entries (
    idx     INTEGER PRIMARY KEY CHECK (idx >= 0),
    at      INTEGER NOT NULL,
    kind    TEXT NOT NULL,
    chip_id BLOB CHECK (chip_id IS NULL OR length(chip_id) = 32),
    site_id TEXT NOT NULL,
    entry   BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_chip ON audit_entries (chip_id, at);
CREATE INDEX IF NOT EXISTS audit_by_site ON audit_entries (site_id, at);
CREATE TABLE IF NOT EXISTS audit_nodes (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   INTEGER NOT NULL CHECK (idx >= 0),
    hash  BLOB NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artefacts (
    sha256 BLOB PRIMARY KEY CHECK (length(sha256) = 32),
    bytes  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tree_heads (
    size      INTEGER PRIMARY KEY CHECK (size >= 0),
    root      BLOB NOT NULL CHECK (length(root) = 32),
    timestamp INTEGER NOT NULL,
    signed    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    sha256       BLOB PRIMARY KEY CHECK (length(sha256) = 32),
    chip_id      BLOB,
    site_id      TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    appraised_at INTEGER NOT NULL,
    token_id     BLOB,
    signed       BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS results_by_chip ON results (chip_id, appraised_at);
CREATE INDEX IF NOT EXISTS results_by_site ON results (site_id, appraised_at);
CREATE TABLE IF NOT EXISTS legal_holds (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    chip_id   BLOB,
    tenant    TEXT,
    reason    TEXT NOT NULL,
    placed_at INTEGER NOT NULL,
    lifted_at INTEGER
);
";

/// Version 3 to 4: licenses learn when their lineage's term began. For
/// licenses written before, the term is taken to begin at their own issue.
/// The column is added only where it is missing.
const MIGRATE_3_TO_4: &str = "
ALTER TABLE licenses ADD COLUMN term_started_at INTEGER NOT NULL DEFAULT 0;
";
const ADD_PARTIES: &str = "ALTER TABLE licenses ADD COLUMN parties TEXT NOT NULL DEFAULT '';";
const FILL_TERM_STARTS: &str = "UPDATE licenses SET term_started_at = issued_at;";

fn has_column(tx: &Transaction<'_>, table: &str, column: &str) -> Result<bool, LedgerError> {
    let found: i64 = tx
        .query_row(
            "SELECT count(*) FROM pragma_table_info(?1) WHERE name = ?2",
            [table, column],
            |r| r.get(0),
        )
        .map_err(classify)?;
    Ok(found > 0)
}

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
/// Version 2 to 3 only adds `host_keys`, and 3 to 4 adds tables, which
/// [`TABLES`] has just created.
pub(super) fn prepare(tx: &Transaction<'_>) -> Result<(), LedgerError> {
    tx.execute_batch(TABLES).map_err(classify)?;
    let found: Option<i64> = tx
        .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
        .map_err(classify)?;
    match found {
        // A new database: the tables above are already the current ones.
        None | Some(SCHEMA_VERSION) => {}
        Some(v @ 1..=3) => {
            if v == 1 {
                tx.execute_batch(MIGRATE_1_TO_2).map_err(classify)?;
            }
            if !has_column(tx, "licenses", "term_started_at")? {
                tx.execute_batch(MIGRATE_3_TO_4).map_err(classify)?;
            }
            if !has_column(tx, "licenses", "parties")? {
                tx.execute_batch(ADD_PARTIES).map_err(classify)?;
            }
            tx.execute_batch(FILL_TERM_STARTS).map_err(classify)?;
        }
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
