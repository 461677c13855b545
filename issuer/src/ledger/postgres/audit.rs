//! The SQL of the audit log and what hangs off it: entries, perfect
//! subtree nodes, artefacts, signed tree heads and attestation results.
//!
//! An append runs inside the caller's transaction, so the entry's row, the
//! nodes it completes (RFC 9162 hashing from `chipward_proto::audit`) and
//! its artefacts commit with the change they describe, or not at all.
//!
//! Several processes append to one log, so appends must run one at a time:
//! two appends that both read size `n` would both write index `n`, and an
//! append that missed a concurrent one would hash its nodes over the wrong
//! siblings. Every call that may append runs in [`Mode::Log`], whose first
//! statement is [`lock`]: `audit_head` in EXCLUSIVE mode, which waits for
//! every other appender's commit or rollback and does not block plain
//! reads. The lock comes before the transaction's snapshot is taken, so the
//! snapshot already holds every entry committed before, and the index is
//! then the `size` that [`append`] reads from `audit_head` and advances.
//! Should a call ever append without that lock, its update of the head row
//! fails to serialize and the call is retried, so indices stay dense
//! either way.
//!
//! [`Mode::Log`]: super::txn::Mode::Log

use std::cell::RefCell;

use chipward_certs::keys::sha256;
use chipward_proto::audit::{self, Hash, NodeSource, completed_nodes};
use postgres::Transaction;
use postgres::types::ToSql;

use super::txn::{Failure, Step};
use crate::ledger::{
    AuditRecord, AuditSelection, LedgerError, ResultRecord, StoredTreeHead, chip_id_from,
    token_id_from,
};

/// Takes the log's lock; must be the transaction's first statement.
pub(super) fn lock(tx: &mut Transaction<'_>) -> Result<(), postgres::Error> {
    tx.batch_execute("LOCK TABLE audit_head IN EXCLUSIVE MODE")
}

/// Appends one record inside the caller's transaction, which holds the
/// log's lock; returns its index.
pub(super) fn append(tx: &mut Transaction<'_>, record: &AuditRecord) -> Step<u64> {
    let bytes = record
        .entry
        .encode()
        .map_err(|e| LedgerError::Backend(Box::new(e)))?;

    // Takes the next index and advances the size in one statement.
    let index: i64 = tx
        .query_one(
            "UPDATE audit_head SET size = size + 1 RETURNING size - 1",
            &[],
        )?
        .try_get(0)?;
    let index = to_u64(index, "audit log size")?;
    let nodes = completed_nodes(&Nodes(RefCell::new(tx)), index, audit::leaf_hash(&bytes))?;

    let e = &record.entry;
    let chip = e.chip_id.map(|c| c.0.to_vec());
    tx.execute(
        "INSERT INTO audit_entries (idx, at, kind, chip_id, site_id, entry) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &to_i64(index)?,
            &e.at,
            &e.kind.name(),
            &chip,
            &e.site_id,
            &bytes,
        ],
    )?;

    let levels: Vec<i32> = nodes.iter().map(|n| n.level as i32).collect();
    let indices = nodes
        .iter()
        .map(|n| to_i64(n.index))
        .collect::<Result<Vec<i64>, _>>()?;
    let hashes: Vec<&[u8]> = nodes.iter().map(|n| &n.hash[..]).collect();
    tx.execute(
        "INSERT INTO audit_nodes (level, idx, hash) \
         SELECT * FROM unnest($1::int4[], $2::int8[], $3::bytea[])",
        &[&levels, &indices, &hashes],
    )?;

    for a in &record.artefacts {
        tx.execute(
            "INSERT INTO artefacts (sha256, bytes) VALUES ($1, $2) \
             ON CONFLICT (sha256) DO NOTHING",
            &[&&sha256(a)[..], a],
        )?;
    }
    Ok(index)
}

/// Perfect-subtree nodes read through the appending transaction.
struct Nodes<'t, 'c>(RefCell<&'t mut Transaction<'c>>);

impl NodeSource for Nodes<'_, '_> {
    type Error = Failure;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Failure> {
        node(&mut self.0.borrow_mut(), level, index)
    }
}

/// The node at (`level`, `index`); [`LedgerError::Corrupt`] if missing.
pub(super) fn node(tx: &mut Transaction<'_>, level: u32, index: u64) -> Step<Hash> {
    let (Ok(level), Ok(index)) = (i32::try_from(level), i64::try_from(index)) else {
        return Err(missing_node().into());
    };
    let row = tx.query_opt(
        "SELECT hash FROM audit_nodes WHERE level = $1 AND idx = $2",
        &[&level, &index],
    )?;
    let hash: Vec<u8> = row.ok_or_else(missing_node)?.try_get(0)?;
    Ok(<[u8; 32]>::try_from(hash.as_slice()).map_err(|_| missing_node())?)
}

fn missing_node() -> LedgerError {
    LedgerError::Corrupt {
        what: "audit tree node",
    }
}

/// How many entries the log holds.
pub(super) fn size(tx: &mut Transaction<'_>) -> Step<u64> {
    let size: i64 = tx
        .query_one("SELECT size FROM audit_head", &[])?
        .try_get(0)?;
    Ok(to_u64(size, "audit log size")?)
}

/// Encoded entries from `from`, at most `limit`.
pub(super) fn entries(tx: &mut Transaction<'_>, from: u64, limit: usize) -> Step<Vec<Vec<u8>>> {
    let rows = tx.query(
        "SELECT entry FROM audit_entries WHERE idx >= $1 ORDER BY idx LIMIT $2",
        &[&to_i64(from)?, &limit_of(limit)],
    )?;
    Ok(rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?)
}

/// Entries naming the chip or site of `select` within its range.
pub(super) fn select(
    tx: &mut Transaction<'_>,
    select: &AuditSelection,
    limit: usize,
) -> Step<Vec<(u64, Vec<u8>)>> {
    let (column, key) = selection_key(select);
    let (from, to) = select.range();
    let sql = format!(
        "SELECT idx, entry FROM audit_entries WHERE {column} = $1 AND at >= $2 AND at < $3 \
         ORDER BY idx LIMIT $4"
    );
    let rows = tx.query(&sql, &[key.as_ref(), &from, &to, &limit_of(limit)])?;
    rows.iter()
        .map(|r| Ok((to_u64(r.try_get(0)?, "audit index")?, r.try_get(1)?)))
        .collect()
}

/// The column and the value a selection filters on. Column names are
/// fixed here, never taken from the caller.
fn selection_key(select: &AuditSelection) -> (&'static str, Box<dyn ToSql + Sync>) {
    match select {
        AuditSelection::Chip { chip_id, .. } => ("chip_id", Box::new(chip_id.0.to_vec())),
        AuditSelection::Site { site_id, .. } => ("site_id", Box::new(site_id.clone())),
    }
}

/// An artefact by digest.
pub(super) fn artefact(tx: &mut Transaction<'_>, sha256: &[u8; 32]) -> Step<Option<Vec<u8>>> {
    let row = tx.query_opt(
        "SELECT bytes FROM artefacts WHERE sha256 = $1",
        &[&&sha256[..]],
    )?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Stores a tree head unless one of its size is kept.
pub(super) fn store_head(tx: &mut Transaction<'_>, head: &StoredTreeHead) -> Step<()> {
    tx.execute(
        "INSERT INTO tree_heads (size, root, timestamp, signed) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (size) DO NOTHING",
        &[
            &to_i64(head.size)?,
            &&head.root[..],
            &head.timestamp,
            &head.signed,
        ],
    )?;
    Ok(())
}

/// Tree heads from `from_size` up, smallest first.
pub(super) fn heads(
    tx: &mut Transaction<'_>,
    from_size: u64,
    limit: usize,
) -> Step<Vec<StoredTreeHead>> {
    let rows = tx.query(
        "SELECT size, root, timestamp, signed FROM tree_heads WHERE size >= $1 \
         ORDER BY size LIMIT $2",
        &[&to_i64(from_size)?, &limit_of(limit)],
    )?;
    rows.iter()
        .map(|r| {
            let root: Vec<u8> = r.try_get(1)?;
            Ok(StoredTreeHead {
                size: to_u64(r.try_get(0)?, "tree head")?,
                root: <[u8; 32]>::try_from(root.as_slice())
                    .map_err(|_| LedgerError::Corrupt { what: "tree head" })?,
                timestamp: r.try_get(2)?,
                signed: r.try_get(3)?,
            })
        })
        .collect()
}

/// Stores a result row; a result stored before is kept as it was.
/// Stores `r`; [`LedgerError::AlreadyRecorded`] if its digest is stored.
pub(super) fn insert_result(tx: &mut Transaction<'_>, r: &ResultRecord) -> Step<()> {
    let inserted = tx.execute(
        "INSERT INTO results (sha256, chip_id, site_id, tenant, appraised_at, token_id, signed) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (sha256) DO NOTHING",
        &[
            &&r.sha256[..],
            &r.chip_id.map(|c| c.0.to_vec()),
            &r.site_id,
            &r.tenant,
            &r.appraised_at,
            &r.token_id.map(|t| t.0.to_vec()),
            &r.signed,
        ],
    )?;
    if inserted == 0 {
        return Err(LedgerError::AlreadyRecorded.into());
    }
    Ok(())
}

/// Results of one chip or site within a range, oldest first (stored
/// order within one second).
pub(super) fn results(
    tx: &mut Transaction<'_>,
    select: &AuditSelection,
    limit: usize,
) -> Step<Vec<ResultRecord>> {
    let (column, key) = selection_key(select);
    let (from, to) = select.range();
    let sql = format!(
        "SELECT sha256, chip_id, site_id, tenant, appraised_at, token_id, signed FROM results \
         WHERE {column} = $1 AND appraised_at >= $2 AND appraised_at < $3 \
         ORDER BY appraised_at, id LIMIT $4"
    );
    let rows = tx.query(&sql, &[key.as_ref(), &from, &to, &limit_of(limit)])?;
    rows.iter()
        .map(|r| {
            let sha: Vec<u8> = r.try_get(0)?;
            let chip: Option<Vec<u8>> = r.try_get(1)?;
            let token: Option<Vec<u8>> = r.try_get(5)?;
            Ok(ResultRecord {
                sha256: <[u8; 32]>::try_from(sha.as_slice()).map_err(|_| LedgerError::Corrupt {
                    what: "result digest",
                })?,
                chip_id: chip.as_deref().map(chip_id_from).transpose()?,
                site_id: r.try_get(2)?,
                tenant: r.try_get(3)?,
                appraised_at: r.try_get(4)?,
                token_id: token.as_deref().map(token_id_from).transpose()?,
                signed: r.try_get(6)?,
            })
        })
        .collect()
}

/// A row limit as PostgreSQL takes it.
pub(super) fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// An index or size as stored; none the log reaches is out of range.
fn to_i64(v: u64) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::Corrupt {
        what: "audit index",
    })
}

fn to_u64(v: i64, what: &'static str) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| LedgerError::Corrupt { what })
}
