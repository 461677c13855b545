//! The PostgreSQL schema, its version, and how a database gets it.
//!
//! Every open takes a transaction-level advisory lock first, so issuer
//! processes starting together set the schema up one at a time: the first
//! creates the tables and writes the version row, the others find it. A
//! database written by a newer version is refused. Nothing here reads
//! untrusted input.
//!
//! The tables follow the SQLite schema, with two differences. Each license
//! stores `lineage_root`, the token id of the license its renewal chain
//! started from, so that a lineage is one indexed lookup instead of a walk.
//! And entitlements are a `text[]`, which keeps any list exactly.

use postgres::Transaction;

use super::txn::Step;
use crate::ledger::LedgerError;

/// The schema version this build writes and reads.
///
/// 1: chips, licenses with their lineage root, revocations, host keys.
pub(super) const SCHEMA_VERSION: i64 = 1;

/// The advisory lock key schema set-up holds: "Chipward" in ASCII.
const SETUP_LOCK: i64 = 0x4368_6970_7761_7264;

const TABLES: &str = "
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

/// Creates the tables of a new database, or checks an existing one's
/// version, inside the caller's READ COMMITTED transaction.
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

    // A later version adds an arm per older version that migrates it, in
    // this same transaction, and then records the new version.
    match found {
        None => {
            tx.batch_execute(TABLES)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )?;
            Ok(())
        }
        Some(SCHEMA_VERSION) => Ok(()),
        Some(v) if v > SCHEMA_VERSION => Err(LedgerError::SchemaVersion {
            found: v,
            supported: SCHEMA_VERSION,
        }
        .into()),
        Some(_) => Err(LedgerError::Corrupt {
            what: "schema version",
        }
        .into()),
    }
}
