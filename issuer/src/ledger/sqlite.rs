//! The SQLite ledger: one database file, WAL journal, `synchronous=FULL` so
//! that a write acknowledged to a caller survives a power cut.
//!
//! One connection behind a mutex serves every call; each call that changes
//! more than one row runs in a single `BEGIN IMMEDIATE` transaction. All SQL
//! of the issuer lives in this file. Values come from the service, already
//! validated; they are bound as parameters, never spliced into SQL text.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chipward_proto::license::SiteClaim;
use chipward_proto::revocation::RevokedLicense;
use chipward_proto::{ChipId, TokenId};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use super::{ChipRecord, LedgerError, LicenseFilter, LicenseRecord, LicenseState};
use crate::ledger::Ledger;

/// The schema version this build writes and reads.
const SCHEMA_VERSION: i64 = 1;

/// How long a call waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS revocations (
    seq        INTEGER PRIMARY KEY,
    token_id   BLOB NOT NULL UNIQUE REFERENCES licenses (token_id),
    revoked_at INTEGER NOT NULL,
    reason     TEXT NOT NULL
);
";

const LICENSE_COLUMNS: &str = "token_id, chip_id, tenant, site_id, site_latitude, \
    site_longitude, site_radius_km, issued_at, not_before, expires_at, state, token, \
    renewed_from, entitlements, eccn";

/// A ledger in one SQLite database.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
}

impl SqliteLedger {
    /// Opens (creating if needed) the database file at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let conn = Connection::open(path).map_err(classify)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        // WAL lets readers run beside the writer; FULL syncs the WAL on each
        // commit, which is what makes an acknowledged write durable.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(classify)?;
        Self::prepare(conn)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, LedgerError> {
        Self::prepare(Connection::open_in_memory().map_err(classify)?)
    }

    fn prepare(mut conn: Connection) -> Result<Self, LedgerError> {
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(classify)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(classify)?;

        let tx = immediate(&mut conn)?;
        tx.execute_batch(SCHEMA).map_err(classify)?;
        let found: Option<i64> = tx
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(classify)?;
        match found {
            None => {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(classify)?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(LedgerError::SchemaVersion {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(_) => {}
        }
        tx.commit().map_err(classify)?;

        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change:
        // an open transaction rolls back when dropped during the unwind.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ledger for SqliteLedger {
    fn enrol_chip(&self, chip: &ChipRecord) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let existing: Option<Vec<u8>> = tx
            .query_row(
                "SELECT identity_cert FROM chips WHERE chip_id = ?1",
                [&chip.chip_id.0[..]],
                |r| r.get(0),
            )
            .optional()
            .map_err(classify)?;
        match existing {
            Some(cert) if cert == chip.identity_cert => Ok(false),
            Some(_) => Err(LedgerError::Conflict {
                chip_id: chip.chip_id,
            }),
            None => {
                tx.execute(
                    "INSERT INTO chips (chip_id, model, identity_cert, enrolled_at) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        &chip.chip_id.0[..],
                        chip.model,
                        chip.identity_cert,
                        chip.enrolled_at
                    ],
                )
                .map_err(classify)?;
                tx.commit().map_err(classify)?;
                Ok(true)
            }
        }
    }

    fn chip(&self, chip_id: &ChipId) -> Result<Option<ChipRecord>, LedgerError> {
        let conn = self.conn();
        let row = conn
            .query_row(
                "SELECT model, identity_cert, enrolled_at FROM chips WHERE chip_id = ?1",
                [&chip_id.0[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(classify)?;
        Ok(row.map(|(model, identity_cert, enrolled_at)| ChipRecord {
            chip_id: *chip_id,
            model,
            identity_cert,
            enrolled_at,
        }))
    }

    fn insert_license(&self, license: &LicenseRecord) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        insert(&tx, license)?;
        tx.commit().map_err(classify)
    }

    fn license(&self, token_id: &TokenId) -> Result<Option<LicenseRecord>, LedgerError> {
        let conn = self.conn();
        select_license(&conn, token_id)
    }

    fn list_licenses(
        &self,
        filter: &LicenseFilter,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, LedgerError> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {LICENSE_COLUMNS} FROM licenses \
             WHERE (?1 IS NULL OR chip_id = ?1) AND (?2 IS NULL OR tenant = ?2) \
             ORDER BY issued_at DESC, id DESC LIMIT ?3"
        );
        let chip = filter.chip_id.as_ref().map(|c| c.0.to_vec());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
        let rows = stmt
            .query_map(params![chip, filter.tenant, limit], read_license)
            .map_err(classify)?;
        rows.map(|r| r.map_err(classify).and_then(|inner| inner))
            .collect()
    }

    fn renew(&self, old: &TokenId, new: &LicenseRecord) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let state = select_state(&tx, old)?;
        if state != LicenseState::Active {
            return Err(LedgerError::NotActive {
                token_id: *old,
                state,
            });
        }
        tx.execute(
            "UPDATE licenses SET state = 'superseded' WHERE token_id = ?1",
            [&old.0[..]],
        )
        .map_err(classify)?;
        insert(&tx, new)?;
        tx.commit().map_err(classify)
    }

    fn revoke(&self, token_id: &TokenId, reason: &str, at: i64) -> Result<u64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let state = select_state(&tx, token_id)?;
        if state == LicenseState::Revoked {
            let seq: i64 = tx
                .query_row(
                    "SELECT seq FROM revocations WHERE token_id = ?1",
                    [&token_id.0[..]],
                    |r| r.get(0),
                )
                .map_err(classify)?;
            return to_seq(seq);
        }

        let seq: i64 = tx
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM revocations",
                [],
                |r| r.get(0),
            )
            .map_err(classify)?;
        tx.execute(
            "UPDATE licenses SET state = 'revoked' WHERE token_id = ?1",
            [&token_id.0[..]],
        )
        .map_err(classify)?;
        tx.execute(
            "INSERT INTO revocations (seq, token_id, revoked_at, reason) VALUES (?1, ?2, ?3, ?4)",
            params![seq, &token_id.0[..], at, reason],
        )
        .map_err(classify)?;
        tx.commit().map_err(classify)?;
        to_seq(seq)
    }

    fn revocation_seq(&self) -> Result<u64, LedgerError> {
        let conn = self.conn();
        let seq: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM revocations", [], |r| {
                r.get(0)
            })
            .map_err(classify)?;
        to_seq(seq)
    }

    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError> {
        let mut conn = self.conn();
        // A deferred transaction gives one consistent snapshot for both reads.
        let tx = conn.transaction().map_err(classify)?;
        let entries = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.token_id, l.chip_id, r.revoked_at, r.reason \
                     FROM revocations r JOIN licenses l ON l.token_id = r.token_id \
                     ORDER BY r.seq",
                )
                .map_err(classify)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .map_err(classify)?;
            let mut out = Vec::new();
            for row in rows {
                let (token, chip, revoked_at, reason): (Vec<u8>, Vec<u8>, i64, String) =
                    row.map_err(classify)?;
                out.push(RevokedLicense {
                    token_id: token_id_from(&token)?.to_hex(),
                    chip_id: chip_id_from(&chip)?.to_hex(),
                    revoked_at,
                    reason,
                });
            }
            out
        };
        let seq: i64 = tx
            .query_row("SELECT coalesce(max(seq), 0) FROM revocations", [], |r| {
                r.get(0)
            })
            .map_err(classify)?;
        tx.commit().map_err(classify)?;
        Ok((to_seq(seq)?, entries))
    }
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, LedgerError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)
}

fn insert(tx: &Transaction<'_>, l: &LicenseRecord) -> Result<(), LedgerError> {
    let chip_known = tx
        .query_row(
            "SELECT 1 FROM chips WHERE chip_id = ?1",
            [&l.chip_id.0[..]],
            |_| Ok(()),
        )
        .optional()
        .map_err(classify)?;
    if chip_known.is_none() {
        return Err(LedgerError::UnknownChip { chip_id: l.chip_id });
    }
    let token_taken = tx
        .query_row(
            "SELECT 1 FROM licenses WHERE token_id = ?1",
            [&l.token_id.0[..]],
            |_| Ok(()),
        )
        .optional()
        .map_err(classify)?;
    if token_taken.is_some() {
        return Err(LedgerError::DuplicateToken {
            token_id: l.token_id,
        });
    }

    let entitlements = encode_list(&l.entitlements);
    let renewed_from = l.renewed_from.map(|t| t.0.to_vec());
    let sql = format!(
        "INSERT INTO licenses ({LICENSE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    );
    tx.execute(
        &sql,
        params![
            &l.token_id.0[..],
            &l.chip_id.0[..],
            l.tenant,
            l.site.id,
            l.site.latitude,
            l.site.longitude,
            l.site.radius_km,
            l.issued_at,
            l.not_before,
            l.expires_at,
            l.state.as_str(),
            l.token,
            renewed_from,
            entitlements,
            l.eccn,
        ],
    )
    .map_err(classify)?;
    Ok(())
}

fn select_license(
    conn: &Connection,
    token_id: &TokenId,
) -> Result<Option<LicenseRecord>, LedgerError> {
    let sql = format!("SELECT {LICENSE_COLUMNS} FROM licenses WHERE token_id = ?1");
    let row = conn
        .query_row(&sql, [&token_id.0[..]], read_license)
        .optional()
        .map_err(classify)?;
    row.transpose()
}

fn select_state(tx: &Transaction<'_>, token_id: &TokenId) -> Result<LicenseState, LedgerError> {
    let state: Option<String> = tx
        .query_row(
            "SELECT state FROM licenses WHERE token_id = ?1",
            [&token_id.0[..]],
            |r| r.get(0),
        )
        .optional()
        .map_err(classify)?;
    let state = state.ok_or(LedgerError::NotFound {
        token_id: *token_id,
    })?;
    LicenseState::parse(&state).ok_or(LedgerError::Corrupt {
        what: "license state",
    })
}

/// Reads one row selected with [`LICENSE_COLUMNS`]. SQL-level failures come
/// back in the outer result, unreadable values in the inner one.
fn read_license(r: &Row<'_>) -> rusqlite::Result<Result<LicenseRecord, LedgerError>> {
    let token: Vec<u8> = r.get(0)?;
    let chip: Vec<u8> = r.get(1)?;
    let state: String = r.get(10)?;
    let renewed_from: Option<Vec<u8>> = r.get(12)?;
    let entitlements: String = r.get(13)?;
    let site = SiteClaim {
        id: r.get(3)?,
        latitude: r.get(4)?,
        longitude: r.get(5)?,
        radius_km: r.get(6)?,
    };
    let (tenant, issued_at, not_before, expires_at, signed, eccn) = (
        r.get(2)?,
        r.get(7)?,
        r.get(8)?,
        r.get(9)?,
        r.get(11)?,
        r.get(14)?,
    );

    let build = || {
        Ok(LicenseRecord {
            token_id: token_id_from(&token)?,
            chip_id: chip_id_from(&chip)?,
            tenant,
            site,
            issued_at,
            not_before,
            expires_at,
            state: LicenseState::parse(&state).ok_or(LedgerError::Corrupt {
                what: "license state",
            })?,
            token: signed,
            renewed_from: renewed_from.as_deref().map(token_id_from).transpose()?,
            entitlements: decode_list(&entitlements)?,
            eccn,
        })
    };
    Ok(build())
}

fn token_id_from(bytes: &[u8]) -> Result<TokenId, LedgerError> {
    <[u8; 16]>::try_from(bytes)
        .map(TokenId)
        .map_err(|_| LedgerError::Corrupt { what: "token id" })
}

fn chip_id_from(bytes: &[u8]) -> Result<ChipId, LedgerError> {
    <[u8; 32]>::try_from(bytes)
        .map(ChipId)
        .map_err(|_| LedgerError::Corrupt { what: "chip id" })
}

fn to_seq(seq: i64) -> Result<u64, LedgerError> {
    u64::try_from(seq).map_err(|_| LedgerError::Corrupt {
        what: "revocation sequence",
    })
}

/// Stores a list of strings as hex-encoded UTF-8, each entry followed by
/// `;`, so that no character inside an entry can be mistaken for a
/// separator and an empty entry stays distinct from an empty list.
fn encode_list(items: &[String]) -> String {
    items
        .iter()
        .map(|i| format!("{};", hex::encode(i)))
        .collect()
}

fn decode_list(text: &str) -> Result<Vec<String>, LedgerError> {
    let corrupt = || LedgerError::Corrupt {
        what: "entitlements",
    };
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let body = text.strip_suffix(';').ok_or_else(corrupt)?;
    body.split(';')
        .map(|item| {
            let bytes = hex::decode(item).map_err(|_| corrupt())?;
            String::from_utf8(bytes).map_err(|_| corrupt())
        })
        .collect()
}

/// Splits SQLite failures into "the database cannot serve now" (busy,
/// locked, unopenable, full, read-only, I/O) and everything else.
fn classify(err: rusqlite::Error) -> LedgerError {
    let unavailable = matches!(
        err.sqlite_error_code(),
        Some(
            ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::ReadOnly
                | ErrorCode::SystemIoFailure
                | ErrorCode::NotADatabase
                | ErrorCode::PermissionDenied
        )
    );
    if unavailable {
        LedgerError::Unavailable(Box::new(err))
    } else {
        LedgerError::Backend(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .enrol_chip(&ChipRecord {
                chip_id: ChipId([1; 32]),
                model: "CW-100".into(),
                identity_cert: vec![0x30],
                enrolled_at: 1,
            })
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
        };
        ledger.insert_license(&license).unwrap();

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
}
