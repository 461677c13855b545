//! The PostgreSQL schema, its version, and how a database gets it.
//!
//! Every open takes a transaction-level advisory lock first, so issuer
//! processes starting together set the schema up one at a time: the first
//! creates the tables (or migrates them) and writes the version row, the
//! others find it. A database written by a newer version is refused.
//! Nothing here reads untrusted input.
//!
//! A new database is built the way an old one is upgraded: the version 1
//! tables, then each migration in turn, so the migrations run on every
//! new database too.
//!
//! The tables follow the SQLite schema, with three differences. Each
//! license stores `lineage_root`, the token id of the license its renewal
//! chain started from, so that a lineage is one indexed lookup instead of a
//! walk. Entitlements are a `text[]`, which keeps any list exactly. And
//! the audit log has a one-row `audit_head` holding its size, which every
//! append locks (see `audit`).

use postgres::Transaction;

use super::txn::Step;
use crate::ledger::LedgerError;

/// The schema version this build writes and reads.
///
/// 1: chips, licenses with their lineage root, revocations, host keys.
/// 2: the audit log (`audit_head`, `audit_entries`, `audit_nodes`,
///    `artefacts`, `tree_heads`), `results`, `legal_holds`, and each
///    license's `term_started_at` and screened `parties`.
pub(super) const SCHEMA_VERSION: i64 = 2;

/// The advisory lock key schema set-up holds: "Chipward" in ASCII.
const SETUP_LOCK: i64 = 0x4368_6970_7761_7264;

/// The tables of schema version 1.
const TABLES_V1: &str = "
CREATE TABLE IF NOT EXISTS schema_version (
    version BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS chips (
    chip_id       BYTEA PRIMARY KEY CHECK (length(chip_id) = 32),
    model         TEXT NOT NULL,
    identity_cert BYTEA NOT NULL,
    enrolled_at   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS licenses (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_id       BYTEA NOT NULL UNIQUE CHECK (length(token_id) = 16),
    chip_id        BYTEA NOT NULL REFERENCES chips (chip_id),
    tenant         TEXT NOT NULL,
    site_id        TEXT NOT NULL,
    site_latitude  DOUBLE PRECISION NOT NULL,
    site_longitude DOUBLE PRECISION NOT NULL,
    site_radius_km DOUBLE PRECISION NOT NULL,
    issued_at      BIGINT NOT NULL,
    not_before     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    state          TEXT NOT NULL CHECK (state IN ('active', 'revoked', 'superseded')),
    token          BYTEA NOT NULL,
    renewed_from   BYTEA REFERENCES licenses (token_id),
    lineage_root   BYTEA NOT NULL CHECK (length(lineage_root) = 16),
    entitlements   TEXT[] NOT NULL,
    eccn           TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS licenses_by_chip ON licenses (chip_id, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_tenant ON licenses (tenant, issued_at);
CREATE INDEX IF NOT EXISTS licenses_by_parent ON licenses (renewed_from);
CREATE INDEX IF NOT EXISTS licenses_by_lineage ON licenses (lineage_root, id);
CREATE TABLE IF NOT EXISTS revocations (
    token_id   BYTEA PRIMARY KEY REFERENCES licenses (token_id),
    seq        BIGINT NOT NULL CHECK (seq > 0),
    revoked_at BIGINT NOT NULL,
    reason     TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS revocations_by_seq ON revocations (seq);
CREATE TABLE IF NOT EXISTS host_keys (
    id               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    host_id          BYTEA NOT NULL CHECK (length(host_id) = 32),
    ak_name          BYTEA NOT NULL CHECK (length(ak_name) BETWEEN 34 AND 66),
    ak_public        BYTEA NOT NULL,
    ek_cert_sha256   BYTEA NOT NULL CHECK (length(ek_cert_sha256) = 32),
    tpm_manufacturer TEXT NOT NULL,
    enrolled_at      BIGINT NOT NULL,
    PRIMARY KEY (host_id, ak_name)
);
";

/// Version 1 to 2: the audit log and what hangs off it, and when each
/// license's lineage began its term. Licenses written before are taken to
/// begin their term at their own issue, as the SQLite ledger migrates them.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE licenses ADD COLUMN term_started_at BIGINT NOT NULL DEFAULT 0;
UPDATE licenses SET term_started_at = issued_at;
ALTER TABLE licenses ADD COLUMN parties TEXT NOT NULL DEFAULT '';
CREATE TABLE audit_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_row),
    size     BIGINT NOT NULL CHECK (size >= 0)
);
INSERT INTO audit_head (size) VALUES (0);
CREATE TABLE audit_entries (
    idx     BIGINT PRIMARY KEY CHECK (idx >= 0),
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    chip_id BYTEA CHECK (chip_id IS NULL OR length(chip_id) = 32),
    site_id TEXT NOT NULL,
    entry   BYTEA NOT NULL
);
CREATE INDEX audit_by_chip ON audit_entries (chip_id, at);
CREATE INDEX audit_by_site ON audit_entries (site_id, at);
CREATE TABLE audit_nodes (
    level INTEGER NOT NULL CHECK (level BETWEEN 0 AND 63),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  BYTEA NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);
CREATE TABLE artefacts (
    sha256 BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    bytes  BYTEA NOT NULL
);
CREATE TABLE tree_heads (
    size      BIGINT PRIMARY KEY CHECK (size >= 0),
    root      BYTEA NOT NULL CHECK (length(root) = 32),
    timestamp BIGINT NOT NULL,
    signed    BYTEA NOT NULL
);
CREATE TABLE results (
    id           BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    sha256       BYTEA PRIMARY KEY CHECK (length(sha256) = 32),
    chip_id      BYTEA CHECK (chip_id IS NULL OR length(chip_id) = 32),
    site_id      TEXT NOT NULL,
    tenant       TEXT NOT NULL,
    appraised_at BIGINT NOT NULL,
    token_id     BYTEA CHECK (token_id IS NULL OR length(token_id) = 16),
    signed       BYTEA NOT NULL
);
CREATE INDEX results_by_chip ON results (chip_id, appraised_at);
CREATE INDEX results_by_site ON results (site_id, appraised_at);
CREATE TABLE legal_holds (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chip_id   BYTEA CHECK (chip_id IS NULL OR length(chip_id) = 32),
    tenant    TEXT,
    reason    TEXT NOT NULL,
    placed_at BIGINT NOT NULL,
    lifted_at BIGINT
);
";

/// Each migration, by the version it starts from.
const MIGRATIONS: [(i64, &str); 1] = [(1, MIGRATE_1_TO_2)];

/// Creates the tables of a new database, or brings an existing one up to
/// [`SCHEMA_VERSION`], inside the caller's READ COMMITTED transaction.
pub(super) fn prepare(tx: &mut Transaction<'_>) -> Step<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])?;

    // to_regclass is NULL for a missing table, and asking it raises no
    // notice, unlike CREATE TABLE IF NOT EXISTS on every start.
    let row = tx.query_one("SELECT to_regclass('schema_version') IS NOT NULL", &[])?;
    let found: Option<i64> = if row.try_get(0)? {
        tx.query_one("SELECT max(version) FROM schema_version", &[])?
            .try_get(0)?
    } else {
        None
    };

    let from = match found {
        None => {
            tx.batch_execute(TABLES_V1)?;
            1
        }
        Some(SCHEMA_VERSION) => return Ok(()),
        Some(v) if v > SCHEMA_VERSION => {
            return Err(LedgerError::SchemaVersion {
                found: v,
                supported: SCHEMA_VERSION,
            }
            .into());
        }
        Some(v) if v >= 1 => v,
        Some(_) => {
            return Err(LedgerError::Corrupt {
                what: "schema version",
            }
            .into());
        }
    };
    for (_, sql) in MIGRATIONS.iter().filter(|(v, _)| *v >= from) {
        tx.batch_execute(sql)?;
    }
    tx.execute(
        "INSERT INTO schema_version (version) VALUES ($1)",
        &[&SCHEMA_VERSION],
    )?;
    Ok(())
}
