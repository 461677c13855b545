//! The SQL for the revocation list: revoking a lineage under one new list
//! version, and reading the list.
//!
//! A revocation logs, so it runs after the audit log's lock, and then takes
//! `revocations` in EXCLUSIVE mode, both before its first query (see
//! `txn`). Revocations, from any process, therefore run one at a time,
//! each seeing every version committed before it, so the sequence grows by
//! exactly one per call that revokes anything, without gaps or repeats.
//! Readers are not blocked. The table lock keeps this true on its own, and
//! renewals racing a revocation of the same lineage both write the renewed
//! license's row, so SERIALIZABLE would abort one of them even without the
//! log's lock.

use chipward_proto::TokenId;
use chipward_proto::revocation::RevokedLicense;
use postgres::Transaction;

use super::licenses::chip_of;
use super::txn::Step;
use crate::ledger::{LedgerError, MAX_LINEAGE, Revocation, lineage_reason, to_seq, token_id_from};

/// Revokes every member of `token_id`'s lineage not yet revoked, under
/// one new list version; see [`crate::ledger::Ledger::revoke`].
pub(super) fn revoke(
    tx: &mut Transaction<'_>,
    token_id: &TokenId,
    reason: &str,
    at: i64,
) -> Step<Revocation> {
    tx.batch_execute("LOCK TABLE revocations IN EXCLUSIVE MODE")?;
    let members = lineage(tx, token_id)?;
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
        .query_one("SELECT coalesce(max(seq), 0) + 1 FROM revocations", &[])?
        .try_get(0)?;
    let lineage_note = lineage_reason(reason, token_id);
    let tokens: Vec<Vec<u8>> = pending.iter().map(|m| m.token_id.0.to_vec()).collect();
    let reasons: Vec<&str> = pending
        .iter()
        .map(|m| {
            if m.token_id == *token_id {
                reason
            } else {
                lineage_note.as_str()
            }
        })
        .collect();
    tx.execute(
        "UPDATE licenses SET state = 'revoked' WHERE token_id = ANY($1)",
        &[&tokens],
    )?;
    tx.execute(
        "INSERT INTO revocations (seq, token_id, revoked_at, reason) \
         SELECT $1, t.token_id, $3, t.reason FROM unnest($2::bytea[], $4::text[]) \
         AS t (token_id, reason)",
        &[&seq, &tokens, &at, &reasons],
    )?;
    Ok(Revocation {
        seq: to_seq(seq)?,
        lineage: members.len(),
        newly_revoked: pending.len(),
    })
}

/// The current list version: 0 for the empty list.
pub(super) fn seq(tx: &mut Transaction<'_>) -> Step<u64> {
    let seq: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM revocations", &[])?
        .try_get(0)?;
    Ok(to_seq(seq)?)
}

/// The current version and every revoked license in revocation order,
/// both from the caller's one snapshot.
///
/// Versions are handed out in commit order, and within one version the
/// members were written in lineage order, so ordering by version, then by
/// license creation, is the order they were revoked in.
pub(super) fn list(tx: &mut Transaction<'_>) -> Step<(u64, Vec<RevokedLicense>)> {
    let rows = tx.query(
        "SELECT r.token_id, l.chip_id, r.revoked_at, r.reason \
         FROM revocations r JOIN licenses l ON l.token_id = r.token_id \
         ORDER BY r.seq, l.id",
        &[],
    )?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let token: Vec<u8> = row.try_get(0)?;
        entries.push(RevokedLicense {
            token_id: token_id_from(&token)?.to_hex(),
            chip_id: chip_of(row, 1)?.to_hex(),
            revoked_at: row.try_get(2)?,
            reason: row.try_get(3)?,
        });
    }
    Ok((seq(tx)?, entries))
}

/// One license of a lineage, as revocation needs it.
struct Member {
    token_id: TokenId,
    /// The list version that first carried its revocation, if revoked.
    seq: Option<i64>,
}

/// Every license sharing `start`'s lineage root, oldest first. Fails with
/// [`LedgerError::NotFound`] when `start` is unknown and with
/// [`LedgerError::LineageTooLarge`] past [`MAX_LINEAGE`] members, reading
/// at most one more than that.
fn lineage(tx: &mut Transaction<'_>, start: &TokenId) -> Step<Vec<Member>> {
    let bound = i64::try_from(MAX_LINEAGE + 1).unwrap_or(i64::MAX);
    let rows = tx.query(
        "SELECT l.token_id, r.seq FROM licenses l \
         LEFT JOIN revocations r ON r.token_id = l.token_id \
         WHERE l.lineage_root = (SELECT lineage_root FROM licenses WHERE token_id = $1) \
         ORDER BY l.id LIMIT $2",
        &[&&start.0[..], &bound],
    )?;
    // A license is always in its own lineage: no rows means no license.
    if rows.is_empty() {
        return Err(LedgerError::NotFound { token_id: *start }.into());
    }
    if rows.len() > MAX_LINEAGE {
        return Err(LedgerError::LineageTooLarge {
            token_id: *start,
            max: MAX_LINEAGE,
        }
        .into());
    }
    rows.iter()
        .map(|row| {
            let token: Vec<u8> = row.try_get(0)?;
            Ok(Member {
                token_id: token_id_from(&token)?,
                seq: row.try_get(1)?,
            })
        })
        .collect()
}
