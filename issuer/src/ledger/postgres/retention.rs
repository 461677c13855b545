//! The SQL of retention: legal holds, and deleting a license's lineage once
//! its retention period is over and no hold covers it.
//!
//! Both run in calls that log, so they hold the audit log's lock (see
//! `audit`) and therefore run one at a time with every renewal and
//! revocation: a lineage cannot grow or change state while a purge reads
//! it. The audit log itself is never deleted from.

use chipward_proto::TokenId;
use postgres::Transaction;

use super::licenses::chip_of;
use super::txn::Step;
use crate::ledger::{LedgerError, LegalHold, MAX_LINEAGE, chip_id_from, token_id_from};

/// Places a hold; returns its id.
pub(super) fn place_hold(tx: &mut Transaction<'_>, hold: &LegalHold) -> Step<i64> {
    let row = tx.query_one(
        "INSERT INTO legal_holds (chip_id, tenant, reason, placed_at) \
         VALUES ($1, $2, $3, $4) RETURNING id",
        &[
            &hold.chip_id.map(|c| c.0.to_vec()),
            &hold.tenant,
            &hold.reason,
            &hold.placed_at,
        ],
    )?;
    Ok(row.try_get(0)?)
}

/// Lifts a hold in force; false if none with this id is.
pub(super) fn lift_hold(tx: &mut Transaction<'_>, id: i64, at: i64) -> Step<bool> {
    let changed = tx.execute(
        "UPDATE legal_holds SET lifted_at = $2 WHERE id = $1 AND lifted_at IS NULL",
        &[&id, &at],
    )?;
    Ok(changed == 1)
}

/// Holds in force, oldest first.
pub(super) fn holds(tx: &mut Transaction<'_>) -> Step<Vec<LegalHold>> {
    let rows = tx.query(
        "SELECT id, chip_id, tenant, reason, placed_at FROM legal_holds \
         WHERE lifted_at IS NULL ORDER BY id",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let chip: Option<Vec<u8>> = r.try_get(1)?;
            Ok(LegalHold {
                id: r.try_get(0)?,
                chip_id: chip.as_deref().map(chip_id_from).transpose()?,
                tenant: r.try_get(2)?,
                reason: r.try_get(3)?,
                placed_at: r.try_get(4)?,
            })
        })
        .collect()
}

/// Deletes the lineage of `token_id` (licenses and revocation rows) when
/// every member ended `retention_secs` before `now` and no hold covers any
/// member; returns how many licenses went. See
/// [`crate::ledger::Ledger::purge_lineage`].
pub(super) fn purge_lineage(
    tx: &mut Transaction<'_>,
    token_id: &TokenId,
    now: i64,
    retention_secs: i64,
) -> Step<usize> {
    // 1. The lineage, oldest first, bounded like a revocation's.
    let members = lineage(tx, token_id)?;

    // 2. A hold on any member's chip or tenant refuses, whatever the time.
    let holds = holds(tx)?;
    for m in &members {
        if let Some(hold) = holds.iter().find(|h| h.covers(&m.chip_id, &m.tenant)) {
            return Err(LedgerError::Held {
                token_id: *token_id,
                id: hold.id,
                reason: hold.reason.clone(),
            }
            .into());
        }
    }

    // 3. Every member must have ended long enough ago.
    let until = members
        .iter()
        .map(|m| m.expires_at.saturating_add(retention_secs))
        .max()
        .unwrap_or(i64::MIN);
    if now < until {
        return Err(LedgerError::Retained {
            token_id: *token_id,
            until,
        }
        .into());
    }

    // 4. One statement per table: foreign keys are checked at the end of
    //    each, when no deleted license is referenced any more.
    //
    // Limitation: the list version is the largest `seq` stored, as in the
    // SQLite ledger, so purging the lineage that holds it lowers the
    // version, and the next revocation reuses a number already published.
    let tokens: Vec<Vec<u8>> = members.iter().map(|m| m.token_id.0.to_vec()).collect();
    tx.execute(
        "DELETE FROM revocations WHERE token_id = ANY($1)",
        &[&tokens],
    )?;
    tx.execute("DELETE FROM licenses WHERE token_id = ANY($1)", &[&tokens])?;
    Ok(members.len())
}

/// One license of a lineage, as a purge needs it.
struct Member {
    token_id: TokenId,
    chip_id: chipward_proto::ChipId,
    tenant: String,
    expires_at: i64,
}

/// Every license sharing `start`'s lineage root, oldest first; fails with
/// [`LedgerError::NotFound`] for an unknown license and with
/// [`LedgerError::LineageTooLarge`] past [`MAX_LINEAGE`] members.
fn lineage(tx: &mut Transaction<'_>, start: &TokenId) -> Step<Vec<Member>> {
    let bound = i64::try_from(MAX_LINEAGE + 1).unwrap_or(i64::MAX);
    let rows = tx.query(
        "SELECT token_id, chip_id, tenant, expires_at FROM licenses \
         WHERE lineage_root = (SELECT lineage_root FROM licenses WHERE token_id = $1) \
         ORDER BY id LIMIT $2",
        &[&&start.0[..], &bound],
    )?;
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
        .map(|r| {
            let token: Vec<u8> = r.try_get(0)?;
            Ok(Member {
                token_id: token_id_from(&token)?,
                chip_id: chip_of(r, 1)?,
                tenant: r.try_get(2)?,
                expires_at: r.try_get(3)?,
            })
        })
        .collect()
}
