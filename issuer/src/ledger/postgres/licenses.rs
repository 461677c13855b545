//! The SQL for licenses: storing, reading, listing and renewing them.
//!
//! Records come from the service, already validated, and are bound as
//! parameters. Each license stores its `lineage_root`: its parent's root,
//! or its own token id when it renewed nothing. A parent always exists
//! before its child and `renewed_from` never changes, so a lineage (every
//! license connected through `renewed_from`) is exactly the licenses that
//! share a root.

use chipward_proto::license::SiteClaim;
use chipward_proto::{ChipId, TokenId};
use postgres::{Row, Transaction};

use super::audit;
use super::txn::{Failure, Step};
use crate::ledger::{
    AuditRecord, LedgerError, LicenseFilter, LicenseRecord, LicenseState, MAX_LINEAGE,
    chip_id_from, token_id_from,
};

/// The columns [`read`] expects, in its order.
pub(super) const COLUMNS: &str = "token_id, chip_id, tenant, site_id, site_latitude, \
    site_longitude, site_radius_km, issued_at, not_before, expires_at, state, token, \
    renewed_from, entitlements, eccn, term_started_at, parties";

/// Stores a new license; its chip must be enrolled and its token id free.
pub(super) fn insert(tx: &mut Transaction<'_>, l: &LicenseRecord) -> Step<()> {
    let chip = &l.chip_id.0[..];
    let token = &l.token_id.0[..];
    if tx
        .query_opt("SELECT 1 FROM chips WHERE chip_id = $1", &[&chip])?
        .is_none()
    {
        return Err(LedgerError::UnknownChip { chip_id: l.chip_id }.into());
    }
    if tx
        .query_opt("SELECT 1 FROM licenses WHERE token_id = $1", &[&token])?
        .is_some()
    {
        return Err(LedgerError::DuplicateToken {
            token_id: l.token_id,
        }
        .into());
    }

    // Limitation: PostgreSQL text cannot hold U+0000, which SQLite stores;
    // such a value fails here as a backend error. The service refuses
    // control characters before they reach the ledger.
    //
    // An unknown parent finds no root here and then fails the foreign key,
    // as it does in SQLite.
    let renewed_from = l.renewed_from.map(|t| t.0.to_vec());
    tx.execute(
        &format!(
            "INSERT INTO {INSERT_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, \
             coalesce((SELECT p.lineage_root FROM licenses p WHERE p.token_id = $13), $1))"
        ),
        &[
            &token,
            &chip,
            &l.tenant,
            &l.site.id,
            &l.site.latitude,
            &l.site.longitude,
            &l.site.radius_km,
            &l.issued_at,
            &l.not_before,
            &l.expires_at,
            &l.state.as_str(),
            &l.token,
            &renewed_from,
            &l.entitlements,
            &l.eccn,
            &l.term_started_at,
            &l.parties,
        ],
    )?;
    Ok(())
}

/// Stores a batch of new licenses, each with its audit record, in the
/// caller's transaction, which holds the audit log's lock. Each license
/// runs in a savepoint: one refused for an unknown chip or a taken token id
/// is rolled back alone and reported in its place; any other failure fails
/// the whole batch, which then stores nothing.
pub(super) fn insert_batch(
    tx: &mut Transaction<'_>,
    batch: &[(LicenseRecord, AuditRecord)],
) -> Step<Vec<Result<u64, LedgerError>>> {
    let mut out = Vec::with_capacity(batch.len());
    for (license, record) in batch {
        let mut item = tx.transaction()?;
        let done = insert(&mut item, license).and_then(|()| audit::append(&mut item, record));
        match done {
            Ok(index) => {
                item.commit()?;
                out.push(Ok(index));
            }
            Err(Failure::Ledger(
                e @ (LedgerError::UnknownChip { .. } | LedgerError::DuplicateToken { .. }),
            )) => {
                item.rollback()?;
                out.push(Err(e));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

const INSERT_COLUMNS: &str = "licenses (token_id, chip_id, tenant, site_id, site_latitude, \
    site_longitude, site_radius_km, issued_at, not_before, expires_at, state, token, \
    renewed_from, entitlements, eccn, term_started_at, parties, lineage_root)";

/// The license with this token id, if any.
pub(super) fn license(tx: &mut Transaction<'_>, token_id: &TokenId) -> Step<Option<LicenseRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM licenses WHERE token_id = $1");
    let row = tx.query_opt(&sql, &[&&token_id.0[..]])?;
    row.as_ref().map(read).transpose()
}

/// Licenses matching `filter`, newest first (later inserts first within
/// one second), at most `limit`.
pub(super) fn list(
    tx: &mut Transaction<'_>,
    filter: &LicenseFilter,
    limit: usize,
) -> Step<Vec<LicenseRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM licenses \
         WHERE ($1::bytea IS NULL OR chip_id = $1) AND ($2::text IS NULL OR tenant = $2) \
         ORDER BY issued_at DESC, id DESC LIMIT $3"
    );
    let chip = filter.chip_id.as_ref().map(|c| c.0.to_vec());
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = tx.query(&sql, &[&chip, &filter.tenant, &limit])?;
    rows.iter().map(read).collect()
}

/// Marks `old` superseded and stores `new`, when `old` is active and its
/// lineage has room.
///
/// Renewals log, so they hold the audit log's lock and run one at a time:
/// a second renewal of the same license finds it superseded. `FOR UPDATE`
/// keeps that true without the lock too: the second would wait for the
/// first, fail to serialize, be tried again and then find `old` superseded.
pub(super) fn renew(tx: &mut Transaction<'_>, old: &TokenId, new: &LicenseRecord) -> Step<()> {
    let row = tx.query_opt(
        "SELECT state, lineage_root FROM licenses WHERE token_id = $1 FOR UPDATE",
        &[&&old.0[..]],
    )?;
    let row = row.ok_or(LedgerError::NotFound { token_id: *old })?;
    let state = state_from(&row.try_get::<_, String>(0)?)?;
    if state != LicenseState::Active {
        return Err(LedgerError::NotActive {
            token_id: *old,
            state,
        }
        .into());
    }

    // The new license joins this lineage; keep it revocable in one go.
    let root: Vec<u8> = row.try_get(1)?;
    let bound = i64::try_from(MAX_LINEAGE).unwrap_or(i64::MAX);
    let members: i64 = tx
        .query_one(
            "SELECT count(*) FROM \
             (SELECT 1 FROM licenses WHERE lineage_root = $1 LIMIT $2) AS lineage",
            &[&root, &bound],
        )?
        .try_get(0)?;
    if members >= bound {
        return Err(LedgerError::LineageTooLarge {
            token_id: *old,
            max: MAX_LINEAGE,
        }
        .into());
    }

    tx.execute(
        "UPDATE licenses SET state = 'superseded' WHERE token_id = $1",
        &[&&old.0[..]],
    )?;
    insert(tx, new)
}

/// Reads one row selected with [`COLUMNS`].
fn read(r: &Row) -> Step<LicenseRecord> {
    let token: Vec<u8> = r.try_get(0)?;
    let chip: Vec<u8> = r.try_get(1)?;
    let renewed_from: Option<Vec<u8>> = r.try_get(12)?;
    // NULL entries cannot be stored through the ledger; one read back means
    // the row was changed behind its back.
    let entitlements: Vec<Option<String>> = r.try_get(13)?;
    let entitlements = entitlements
        .into_iter()
        .collect::<Option<Vec<String>>>()
        .ok_or(LedgerError::Corrupt {
            what: "entitlements",
        })?;
    Ok(LicenseRecord {
        token_id: token_id_from(&token)?,
        chip_id: chip_id_from(&chip)?,
        tenant: r.try_get(2)?,
        site: SiteClaim {
            id: r.try_get(3)?,
            latitude: r.try_get(4)?,
            longitude: r.try_get(5)?,
            radius_km: r.try_get(6)?,
        },
        issued_at: r.try_get(7)?,
        not_before: r.try_get(8)?,
        expires_at: r.try_get(9)?,
        state: state_from(&r.try_get::<_, String>(10)?)?,
        token: r.try_get(11)?,
        renewed_from: renewed_from.as_deref().map(token_id_from).transpose()?,
        entitlements,
        eccn: r.try_get(14)?,
        term_started_at: r.try_get(15)?,
        parties: r.try_get(16)?,
    })
}

fn state_from(text: &str) -> Result<LicenseState, LedgerError> {
    LicenseState::parse(text).ok_or(LedgerError::Corrupt {
        what: "license state",
    })
}

/// The chip id column of a row, checked.
pub(super) fn chip_of(r: &Row, column: usize) -> Step<ChipId> {
    let chip: Vec<u8> = r.try_get(column)?;
    Ok(chip_id_from(&chip)?)
}
