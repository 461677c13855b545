//! The SQL of the audit log and what hangs off it: entries, perfect
//! subtree nodes, artefacts, signed tree heads, attestation results and
//! legal holds.
//!
//! An append runs inside the caller's transaction: the entry's row, the
//! nodes it completes (RFC 9162 hashing from `chipward_proto::audit`) and
//! its artefacts commit with the change they describe, or not at all. The
//! log's size is the number of entry rows; `BEGIN IMMEDIATE` makes one
//! writer at a time, so indices are dense.

use chipward_certs::keys::sha256;
use chipward_proto::audit::{self, Hash, NodeSource, completed_nodes};
use chipward_proto::{ChipId, TokenId};
use rusqlite::{Connection, OptionalExtension, params};

use super::{chip_id_from, classify, token_id_from};
use crate::ledger::{
    AuditRecord, AuditSelection, LedgerError, LegalHold, ResultRecord, StoredTreeHead,
};

/// Perfect-subtree nodes read through one connection (or transaction).
pub(super) struct Nodes<'a>(pub(super) &'a Connection);

impl NodeSource for Nodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        node(self.0, level, index)
    }
}

/// The node at (`level`, `index`).
pub(super) fn node(conn: &Connection, level: u32, index: u64) -> Result<Hash, LedgerError> {
    let index = i64::try_from(index).map_err(|_| missing_node())?;
    let hash: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM audit_nodes WHERE level = ?1 AND idx = ?2")
        .and_then(|mut s| s.query_row(params![level, index], |r| r.get(0)).optional())
        .map_err(classify)?;
    let hash = hash.ok_or_else(missing_node)?;
    <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| missing_node())
}

fn missing_node() -> LedgerError {
    LedgerError::Corrupt {
        what: "audit tree node",
    }
}

/// How many entries the log holds.
pub(super) fn size(conn: &Connection) -> Result<u64, LedgerError> {
    let next: i64 = conn
        .prepare_cached("SELECT coalesce(max(idx) + 1, 0) FROM audit_entries")
        .and_then(|mut s| s.query_row([], |r| r.get(0)))
        .map_err(classify)?;
    u64::try_from(next).map_err(|_| LedgerError::Corrupt {
        what: "audit log size",
    })
}

/// Appends one record inside the caller's transaction; returns its index.
pub(super) fn append(conn: &Connection, record: &AuditRecord) -> Result<u64, LedgerError> {
    let bytes = record
        .entry
        .encode()
        .map_err(|e| LedgerError::Backend(Box::new(e)))?;
    let index = size(conn)?;
    let nodes = completed_nodes(&Nodes(conn), index, audit::leaf_hash(&bytes))?;

    let e = &record.entry;
    let chip = e.chip_id.map(|c| c.0.to_vec());
    let at_index = to_i64(index)?;
    conn.prepare_cached(
        "INSERT INTO audit_entries (idx, at, kind, chip_id, site_id, entry) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )
    .and_then(|mut s| {
        s.execute(params![
            at_index,
            e.at,
            e.kind.name(),
            chip,
            e.site_id,
            bytes
        ])
    })
    .map_err(classify)?;
    let mut insert_node = conn
        .prepare_cached("INSERT INTO audit_nodes (level, idx, hash) VALUES (?1, ?2, ?3)")
        .map_err(classify)?;
    for n in nodes {
        insert_node
            .execute(params![n.level, to_i64(n.index)?, &n.hash[..]])
            .map_err(classify)?;
    }
    let mut insert_artefact = conn
        .prepare_cached("INSERT OR IGNORE INTO artefacts (sha256, bytes) VALUES (?1, ?2)")
        .map_err(classify)?;
    for a in &record.artefacts {
        insert_artefact
            .execute(params![&sha256(a)[..], a])
            .map_err(classify)?;
    }
    Ok(index)
}

fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Corrupt {
        what: "audit index",
    })
}

/// Encoded entries from `from`, at most `limit`.
pub(super) fn entries(
    conn: &Connection,
    from: u64,
    limit: usize,
) -> Result<Vec<Vec<u8>>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached("SELECT entry FROM audit_entries WHERE idx >= ?1 ORDER BY idx LIMIT ?2")
        .map_err(classify)?;
    let rows = stmt
        .query_map(params![to_i64(from)?, limit], |r| r.get(0))
        .map_err(classify)?;
    rows.map(|r| r.map_err(classify)).collect()
}

/// Entries naming the chip or site of `select` within its range.
pub(super) fn select(
    conn: &Connection,
    select: &AuditSelection,
    limit: usize,
) -> Result<Vec<(u64, Vec<u8>)>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (from, to) = select.range();
    let (sql, key): (&str, rusqlite::types::Value) = match select {
        AuditSelection::Chip { chip_id, .. } => (
            "SELECT idx, entry FROM audit_entries WHERE chip_id = ?1 AND at >= ?2 AND at < ?3 \
             ORDER BY idx LIMIT ?4",
            chip_id.0.to_vec().into(),
        ),
        AuditSelection::Site { site_id, .. } => (
            "SELECT idx, entry FROM audit_entries WHERE site_id = ?1 AND at >= ?2 AND at < ?3 \
             ORDER BY idx LIMIT ?4",
            site_id.clone().into(),
        ),
    };
    let mut stmt = conn.prepare_cached(sql).map_err(classify)?;
    let rows = stmt
        .query_map(params![key, from, to, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get(1)?))
        })
        .map_err(classify)?;
    rows.map(|r| {
        let (idx, entry) = r.map_err(classify)?;
        let idx = u64::try_from(idx).map_err(|_| LedgerError::Corrupt {
            what: "audit index",
        })?;
        Ok((idx, entry))
    })
    .collect()
}

/// An artefact by digest.
pub(super) fn artefact(
    conn: &Connection,
    sha256: &[u8; 32],
) -> Result<Option<Vec<u8>>, LedgerError> {
    conn.prepare_cached("SELECT bytes FROM artefacts WHERE sha256 = ?1")
        .and_then(|mut s| s.query_row([&sha256[..]], |r| r.get(0)).optional())
        .map_err(classify)
}

/// Stores a tree head unless one of its size is kept.
pub(super) fn store_head(conn: &Connection, head: &StoredTreeHead) -> Result<(), LedgerError> {
    let size = to_i64(head.size)?;
    conn.prepare_cached(
        "INSERT OR IGNORE INTO tree_heads (size, root, timestamp, signed) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| s.execute(params![size, &head.root[..], head.timestamp, head.signed]))
    .map_err(classify)?;
    Ok(())
}

/// Tree heads from `from_size` up.
pub(super) fn heads(
    conn: &Connection,
    from_size: u64,
    limit: usize,
) -> Result<Vec<StoredTreeHead>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached(
            "SELECT size, root, timestamp, signed FROM tree_heads WHERE size >= ?1 \
             ORDER BY size LIMIT ?2",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map(params![to_i64(from_size)?, limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .map_err(classify)?;
    rows.map(|r| {
        let (size, root, timestamp, signed) = r.map_err(classify)?;
        let corrupt = || LedgerError::Corrupt { what: "tree head" };
        Ok(StoredTreeHead {
            size: u64::try_from(size).map_err(|_| corrupt())?,
            root: <[u8; 32]>::try_from(root.as_slice()).map_err(|_| corrupt())?,
            timestamp,
            signed,
        })
    })
    .collect()
}

/// Stores a result row; a result stored before is kept as it was.
/// Stores `r`; [`LedgerError::AlreadyRecorded`] if its digest is stored.
pub(super) fn insert_result(conn: &Connection, r: &ResultRecord) -> Result<(), LedgerError> {
    let inserted = conn.prepare_cached(
        "INSERT OR IGNORE INTO results (sha256, chip_id, site_id, tenant, appraised_at, token_id, signed) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut s| {
        s.execute(params![
            &r.sha256[..],
            r.chip_id.map(|c| c.0.to_vec()),
            r.site_id,
            r.tenant,
            r.appraised_at,
            r.token_id.map(|t| t.0.to_vec()),
            r.signed
        ])
    })
    .map_err(classify)?;
    if inserted == 0 {
        return Err(LedgerError::AlreadyRecorded);
    }
    Ok(())
}

/// Results of one chip or site within a range.
pub(super) fn results(
    conn: &Connection,
    select: &AuditSelection,
    limit: usize,
) -> Result<Vec<ResultRecord>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (from, to) = select.range();
    let columns = "sha256, chip_id, site_id, tenant, appraised_at, token_id, signed";
    let (sql, key): (String, rusqlite::types::Value) = match select {
        AuditSelection::Chip { chip_id, .. } => (
            format!(
                "SELECT {columns} FROM results WHERE chip_id = ?1 AND appraised_at >= ?2 \
                 AND appraised_at < ?3 ORDER BY appraised_at, rowid LIMIT ?4"
            ),
            chip_id.0.to_vec().into(),
        ),
        AuditSelection::Site { site_id, .. } => (
            format!(
                "SELECT {columns} FROM results WHERE site_id = ?1 AND appraised_at >= ?2 \
                 AND appraised_at < ?3 ORDER BY appraised_at, rowid LIMIT ?4"
            ),
            site_id.clone().into(),
        ),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(classify)?;
    let rows = stmt
        .query_map(params![key, from, to, limit], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get::<_, Option<Vec<u8>>>(5)?,
                r.get(6)?,
            ))
        })
        .map_err(classify)?;
    rows.map(|r| {
        let (sha, chip, site_id, tenant, appraised_at, token, signed) = r.map_err(classify)?;
        Ok(ResultRecord {
            sha256: <[u8; 32]>::try_from(sha.as_slice()).map_err(|_| LedgerError::Corrupt {
                what: "result digest",
            })?,
            chip_id: chip.as_deref().map(chip_id_from).transpose()?,
            site_id,
            tenant,
            appraised_at,
            token_id: token.as_deref().map(token_id_from).transpose()?,
            signed,
        })
    })
    .collect()
}

/// Places a hold; returns its id.
pub(super) fn place_hold(conn: &Connection, hold: &LegalHold) -> Result<i64, LedgerError> {
    conn.prepare_cached(
        "INSERT INTO legal_holds (chip_id, tenant, reason, placed_at) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut s| {
        s.execute(params![
            hold.chip_id.map(|c| c.0.to_vec()),
            hold.tenant,
            hold.reason,
            hold.placed_at
        ])
    })
    .map_err(classify)?;
    Ok(conn.last_insert_rowid())
}

/// Lifts a hold in force; false if none has this id.
pub(super) fn lift_hold(conn: &Connection, id: i64, at: i64) -> Result<bool, LedgerError> {
    let changed = conn
        .prepare_cached("UPDATE legal_holds SET lifted_at = ?2 WHERE id = ?1 AND lifted_at IS NULL")
        .and_then(|mut s| s.execute(params![id, at]))
        .map_err(classify)?;
    Ok(changed == 1)
}

/// Holds in force, oldest first.
pub(super) fn holds(conn: &Connection) -> Result<Vec<LegalHold>, LedgerError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, chip_id, tenant, reason, placed_at FROM legal_holds \
             WHERE lifted_at IS NULL ORDER BY id",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get::<_, Option<Vec<u8>>>(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })
        .map_err(classify)?;
    rows.map(|r| {
        let (id, chip, tenant, reason, placed_at) = r.map_err(classify)?;
        Ok(LegalHold {
            id,
            chip_id: chip.as_deref().map(chip_id_from).transpose()?,
            tenant,
            reason,
            placed_at,
        })
    })
    .collect()
}

/// Deletes the licenses (and their revocation rows) of a lineage, newest
/// first so no row is left pointing at a deleted one.
pub(super) fn delete_licenses(
    conn: &Connection,
    newest_first: &[TokenId],
) -> Result<(), LedgerError> {
    for t in newest_first {
        conn.prepare_cached("DELETE FROM revocations WHERE token_id = ?1")
            .and_then(|mut s| s.execute([&t.0[..]]))
            .map_err(classify)?;
        conn.prepare_cached("DELETE FROM licenses WHERE token_id = ?1")
            .and_then(|mut s| s.execute([&t.0[..]]))
            .map_err(classify)?;
    }
    Ok(())
}

/// The chip of a license, for hold checks.
pub(super) fn covered_by(holds: &[LegalHold], chip_id: &ChipId, tenant: &str) -> Option<LegalHold> {
    holds.iter().find(|h| h.covers(chip_id, tenant)).cloned()
}
