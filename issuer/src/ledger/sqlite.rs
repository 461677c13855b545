//! The SQLite ledger: one database file, WAL journal, `synchronous=FULL` so
//! that a write acknowledged to a caller survives a power cut.
//!
//! One connection behind a mutex serves every call; each call that changes
//! more than one row runs in a single `BEGIN IMMEDIATE` transaction. All SQL
//! of the issuer lives in this file, [`schema`] and [`hosts`]. Values come
//! from the service, already validated; they are bound as parameters, never
//! spliced into SQL text.

mod audit;
mod hosts;
mod schema;

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chipward_proto::license::SiteClaim;
use chipward_proto::revocation::RevokedLicense;
use chipward_proto::{ChipId, TokenId};
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};

use super::{
    AuditRecord, AuditSelection, ChipRecord, HostRecord, LedgerError, LegalHold, LicenseFilter,
    LicenseRecord, LicenseState, MAX_LINEAGE, ResultRecord, Revocation, StoredTreeHead,
    chip_id_from, lineage_reason, to_seq, token_id_from,
};
use crate::host_enrolment::HostId;
use crate::ledger::Ledger;

/// How long a call waits for a lock held by another process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const LICENSE_COLUMNS: &str = "token_id, chip_id, tenant, site_id, site_latitude, \
    site_longitude, site_radius_km, issued_at, not_before, expires_at, state, token, \
    renewed_from, entitlements, eccn, term_started_at, parties";

/// A ledger in one SQLite database.
pub struct SqliteLedger {
    conn: Mutex<Connection>,
    /// A second connection for reads, so that with WAL a read never waits
    /// for a commit's fsync; `None` for in-memory databases, which one
    /// connection cannot share.
    reader: Option<Mutex<Connection>>,
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
        let mut ledger = Self::prepare(conn)?;
        let reader = Connection::open(path).map_err(classify)?;
        reader.busy_timeout(BUSY_TIMEOUT).map_err(classify)?;
        reader
            .pragma_update(None, "query_only", "ON")
            .map_err(classify)?;
        ledger.reader = Some(Mutex::new(reader));
        Ok(ledger)
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
        schema::prepare(&tx)?;
        tx.commit().map_err(classify)?;

        Ok(Self {
            conn: Mutex::new(conn),
            reader: None,
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-applied change:
        // an open transaction rolls back when dropped during the unwind.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The connection for reads that need no write lock.
    fn reader(&self) -> MutexGuard<'_, Connection> {
        match &self.reader {
            Some(r) => r.lock().unwrap_or_else(PoisonError::into_inner),
            None => self.conn(),
        }
    }
}

impl Ledger for SqliteLedger {
    fn enrol_chip(&self, chip: &ChipRecord, audit: &AuditRecord) -> Result<bool, LedgerError> {
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
                audit::append(&tx, audit)?;
                tx.commit().map_err(classify)?;
                Ok(true)
            }
        }
    }

    fn chip(&self, chip_id: &ChipId) -> Result<Option<ChipRecord>, LedgerError> {
        let conn = self.reader();
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

    fn insert_license(
        &self,
        license: &LicenseRecord,
        audit: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        insert(&tx, license)?;
        let index = audit::append(&tx, audit)?;
        tx.commit().map_err(classify)?;
        Ok(index)
    }

    fn insert_licenses(
        &self,
        batch: &[(LicenseRecord, AuditRecord)],
    ) -> Result<Vec<Result<u64, LedgerError>>, LedgerError> {
        let mut conn = self.conn();
        let mut tx = immediate(&mut conn)?;
        let mut out = Vec::with_capacity(batch.len());
        for (license, record) in batch {
            // Each license in a savepoint: a refused one is undone alone.
            let sp = tx.savepoint().map_err(classify)?;
            let done = insert(&sp, license).and_then(|()| audit::append(&sp, record));
            match done {
                Ok(index) => {
                    sp.commit().map_err(classify)?;
                    out.push(Ok(index));
                }
                Err(e @ (LedgerError::UnknownChip { .. } | LedgerError::DuplicateToken { .. })) => {
                    drop(sp);
                    out.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().map_err(classify)?;
        Ok(out)
    }

    fn license(&self, token_id: &TokenId) -> Result<Option<LicenseRecord>, LedgerError> {
        let conn = self.reader();
        select_license(&conn, token_id)
    }

    fn list_licenses(
        &self,
        filter: &LicenseFilter,
        limit: usize,
    ) -> Result<Vec<LicenseRecord>, LedgerError> {
        let conn = self.reader();
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

    fn renew(
        &self,
        old: &TokenId,
        new: &LicenseRecord,
        audit: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let state = select_state(&tx, old)?;
        if state != LicenseState::Active {
            return Err(LedgerError::NotActive {
                token_id: *old,
                state,
            });
        }
        // The new license joins this lineage; keep it revocable in one walk.
        if lineage(&tx, old)?.len() >= MAX_LINEAGE {
            return Err(LedgerError::LineageTooLarge {
                token_id: *old,
                max: MAX_LINEAGE,
            });
        }
        tx.execute(
            "UPDATE licenses SET state = 'superseded' WHERE token_id = ?1",
            [&old.0[..]],
        )
        .map_err(classify)?;
        insert(&tx, new)?;
        let index = audit::append(&tx, audit)?;
        tx.commit().map_err(classify)?;
        Ok(index)
    }

    fn revoke(
        &self,
        token_id: &TokenId,
        reason: &str,
        at: i64,
        audit: &AuditRecord,
    ) -> Result<Revocation, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let members = lineage(&tx, token_id)?;
        let pending: Vec<&Member> = members.iter().filter(|m| m.seq.is_none()).collect();

        // Everything already revoked: the newest of their versions is the
        // first list carrying them all.
        if pending.is_empty() {
            let seq = members.iter().filter_map(|m| m.seq).max();
            let seq = seq.ok_or(LedgerError::Corrupt {
                what: "revocation sequence",
            })?;
            return Ok(Revocation {
                seq: to_seq(seq)?,
                lineage: members.len(),
                newly_revoked: 0,
            });
        }

        let seq: i64 = tx
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM revocations",
                [],
                |r| r.get(0),
            )
            .map_err(classify)?;
        let lineage_note = lineage_reason(reason, token_id);
        for m in &pending {
            let why = if m.token_id == *token_id {
                reason
            } else {
                lineage_note.as_str()
            };
            revoke_one(&tx, &m.token_id, seq, at, why)?;
        }
        audit::append(&tx, audit)?;
        tx.commit().map_err(classify)?;
        Ok(Revocation {
            seq: to_seq(seq)?,
            lineage: members.len(),
            newly_revoked: pending.len(),
        })
    }

    fn revocation_seq(&self) -> Result<u64, LedgerError> {
        let conn = self.reader();
        let seq: i64 = conn
            .query_row("SELECT coalesce(max(seq), 0) FROM revocations", [], |r| {
                r.get(0)
            })
            .map_err(classify)?;
        to_seq(seq)
    }

    fn revocations(&self) -> Result<(u64, Vec<RevokedLicense>), LedgerError> {
        let mut conn = self.reader();
        // A deferred transaction gives one consistent snapshot for both reads.
        let tx = conn.transaction().map_err(classify)?;
        let entries = {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT r.token_id, l.chip_id, r.revoked_at, r.reason \
                     FROM revocations r JOIN licenses l ON l.token_id = r.token_id \
                     ORDER BY r.id",
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

    fn enrol_host(&self, host: &HostRecord, audit: &AuditRecord) -> Result<bool, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let new = hosts::enrol(&tx, host)?;
        if new {
            audit::append(&tx, audit)?;
            tx.commit().map_err(classify)?;
        }
        Ok(new)
    }

    fn host_keys(&self, host_id: &HostId) -> Result<Vec<HostRecord>, LedgerError> {
        hosts::keys(&self.reader(), host_id)
    }

    fn append_audit(&self, records: &[AuditRecord]) -> Result<u64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let first = audit::size(&tx)?;
        for r in records {
            audit::append(&tx, r)?;
        }
        tx.commit().map_err(classify)?;
        Ok(first)
    }

    fn record_result(
        &self,
        result: &ResultRecord,
        record: &AuditRecord,
    ) -> Result<u64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        audit::insert_result(&tx, result)?;
        let index = audit::append(&tx, record)?;
        tx.commit().map_err(classify)?;
        Ok(index)
    }

    fn results(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<ResultRecord>, LedgerError> {
        audit::results(&self.reader(), select, limit)
    }

    fn audit_size(&self) -> Result<u64, LedgerError> {
        audit::size(&self.reader())
    }

    fn audit_entries(&self, from: u64, limit: usize) -> Result<Vec<Vec<u8>>, LedgerError> {
        audit::entries(&self.reader(), from, limit)
    }

    fn audit_select(
        &self,
        select: &AuditSelection,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
        audit::select(&self.reader(), select, limit)
    }

    fn audit_node(&self, level: u32, index: u64) -> Result<[u8; 32], LedgerError> {
        audit::node(&self.reader(), level, index)
    }

    fn artefact(&self, sha256: &[u8; 32]) -> Result<Option<Vec<u8>>, LedgerError> {
        audit::artefact(&self.reader(), sha256)
    }

    fn store_tree_head(&self, head: &StoredTreeHead) -> Result<(), LedgerError> {
        audit::store_head(&self.conn(), head)
    }

    fn tree_heads(&self, from_size: u64, limit: usize) -> Result<Vec<StoredTreeHead>, LedgerError> {
        audit::heads(&self.reader(), from_size, limit)
    }

    fn place_hold(&self, hold: &LegalHold, record: &AuditRecord) -> Result<i64, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let id = audit::place_hold(&tx, hold)?;
        audit::append(&tx, record)?;
        tx.commit().map_err(classify)?;
        Ok(id)
    }

    fn lift_hold(&self, id: i64, at: i64, record: &AuditRecord) -> Result<(), LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        if !audit::lift_hold(&tx, id, at)? {
            return Err(LedgerError::NoSuchHold { id });
        }
        audit::append(&tx, record)?;
        tx.commit().map_err(classify)
    }

    fn holds(&self) -> Result<Vec<LegalHold>, LedgerError> {
        audit::holds(&self.reader())
    }

    fn purge_lineage(
        &self,
        token_id: &TokenId,
        now: i64,
        retention_secs: i64,
        record: &AuditRecord,
    ) -> Result<usize, LedgerError> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let members = lineage(&tx, token_id)?;
        let holds = audit::holds(&tx)?;
        let mut until = i64::MIN;
        for m in &members {
            let l = select_license(&tx, &m.token_id)?.ok_or(LedgerError::Corrupt {
                what: "license lineage",
            })?;
            until = until.max(l.expires_at.saturating_add(retention_secs));
            if let Some(hold) = audit::covered_by(&holds, &l.chip_id, &l.tenant) {
                return Err(LedgerError::Held {
                    token_id: *token_id,
                    id: hold.id,
                    reason: hold.reason,
                });
            }
        }
        if now < until {
            return Err(LedgerError::Retained {
                token_id: *token_id,
                until,
            });
        }
        let newest_first: Vec<TokenId> = members.iter().rev().map(|m| m.token_id).collect();
        audit::delete_licenses(&tx, &newest_first)?;
        audit::append(&tx, record)?;
        tx.commit().map_err(classify)?;
        Ok(members.len())
    }
}

/// One license of a lineage, as revocation needs it.
struct Member {
    /// `licenses.id`: creation order.
    row: i64,
    token_id: TokenId,
    /// The list version that first carried its revocation, if revoked.
    seq: Option<i64>,
}

/// Every license connected to `start` through `renewed_from`, in either
/// direction, oldest first. Fails with [`LedgerError::NotFound`] when
/// `start` is unknown and [`LedgerError::LineageTooLarge`] as soon as more
/// than [`MAX_LINEAGE`] members are seen, so the walk is bounded.
fn lineage(tx: &Transaction<'_>, start: &TokenId) -> Result<Vec<Member>, LedgerError> {
    let mut read = tx
        .prepare_cached(
            "SELECT l.id, l.renewed_from, r.seq FROM licenses l \
             LEFT JOIN revocations r ON r.token_id = l.token_id WHERE l.token_id = ?1",
        )
        .map_err(classify)?;
    let mut children = tx
        .prepare_cached("SELECT token_id FROM licenses WHERE renewed_from = ?1")
        .map_err(classify)?;

    let mut walk = Walk {
        start: *start,
        seen: HashSet::from([*start]),
        queue: vec![*start],
    };
    let mut members = Vec::new();
    while let Some(token_id) = walk.queue.pop() {
        let row: Option<(i64, Option<Vec<u8>>, Option<i64>)> = read
            .query_row([&token_id.0[..]], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()
            .map_err(classify)?;
        let (row, parent, seq) = match row {
            Some(found) => found,
            None if token_id == *start => return Err(LedgerError::NotFound { token_id }),
            // A renewed_from pointing nowhere; foreign keys should prevent it.
            None => {
                return Err(LedgerError::Corrupt {
                    what: "license lineage",
                });
            }
        };
        members.push(Member { row, token_id, seq });

        if let Some(parent) = parent {
            walk.visit(token_id_from(&parent)?)?;
        }
        let mut rows = children.query([&token_id.0[..]]).map_err(classify)?;
        while let Some(child) = rows.next().map_err(classify)? {
            let child: Vec<u8> = child.get(0).map_err(classify)?;
            walk.visit(token_id_from(&child)?)?;
        }
    }
    members.sort_by_key(|m| m.row);
    Ok(members)
}

/// The licenses a lineage walk has seen and has yet to read.
struct Walk {
    start: TokenId,
    seen: HashSet<TokenId>,
    queue: Vec<TokenId>,
}

impl Walk {
    /// Queues a license not seen before; fails once the lineage outgrows
    /// [`MAX_LINEAGE`], even in the middle of one license's children.
    fn visit(&mut self, token_id: TokenId) -> Result<(), LedgerError> {
        if !self.seen.insert(token_id) {
            return Ok(());
        }
        if self.seen.len() > MAX_LINEAGE {
            return Err(LedgerError::LineageTooLarge {
                token_id: self.start,
                max: MAX_LINEAGE,
            });
        }
        self.queue.push(token_id);
        Ok(())
    }
}

/// Marks one license revoked and appends it to the list under `seq`.
fn revoke_one(
    tx: &Transaction<'_>,
    token_id: &TokenId,
    seq: i64,
    at: i64,
    reason: &str,
) -> Result<(), LedgerError> {
    tx.prepare_cached("UPDATE licenses SET state = 'revoked' WHERE token_id = ?1")
        .and_then(|mut s| s.execute([&token_id.0[..]]))
        .map_err(classify)?;
    tx.prepare_cached(
        "INSERT INTO revocations (seq, token_id, revoked_at, reason) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![seq, &token_id.0[..], at, reason]))
    .map_err(classify)?;
    Ok(())
}

fn immediate(conn: &mut Connection) -> Result<Transaction<'_>, LedgerError> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(classify)
}

fn insert(tx: &Connection, l: &LicenseRecord) -> Result<(), LedgerError> {
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
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"
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
            l.term_started_at,
            l.parties,
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
    let term_started_at = r.get(15)?;
    let parties = r.get(16)?;

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
            term_started_at,
            parties,
        })
    };
    Ok(build())
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
mod tests;
