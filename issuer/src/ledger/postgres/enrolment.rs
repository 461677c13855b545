//! The SQL for chips and for hosts' attestation keys: one `chips` row per
//! chip id, one `host_keys` row per (host, AK name). Records come from the
//! service, already validated, and are bound as parameters.

use chipward_proto::ChipId;
use postgres::Transaction;

use super::txn::Step;
use crate::host_enrolment::HostId;
use crate::ledger::{ChipRecord, HostRecord, LedgerError};

/// Inserts `chip` unless it is enrolled; `true` when it was inserted.
pub(super) fn enrol_chip(tx: &mut Transaction<'_>, chip: &ChipRecord) -> Step<bool> {
    let id = &chip.chip_id.0[..];
    let existing = tx.query_opt("SELECT identity_cert FROM chips WHERE chip_id = $1", &[&id])?;
    if let Some(row) = existing {
        let cert: Vec<u8> = row.try_get(0)?;
        if cert == chip.identity_cert {
            return Ok(false);
        }
        return Err(LedgerError::Conflict {
            chip_id: chip.chip_id,
        }
        .into());
    }
    tx.execute(
        "INSERT INTO chips (chip_id, model, identity_cert, enrolled_at) VALUES ($1, $2, $3, $4)",
        &[&id, &chip.model, &chip.identity_cert, &chip.enrolled_at],
    )?;
    Ok(true)
}

/// The chip with this id, if enrolled.
pub(super) fn chip(tx: &mut Transaction<'_>, chip_id: &ChipId) -> Step<Option<ChipRecord>> {
    let row = tx.query_opt(
        "SELECT model, identity_cert, enrolled_at FROM chips WHERE chip_id = $1",
        &[&&chip_id.0[..]],
    )?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(ChipRecord {
        chip_id: *chip_id,
        model: row.try_get(0)?,
        identity_cert: row.try_get(1)?,
        enrolled_at: row.try_get(2)?,
    }))
}

/// Inserts `host` unless its (host, AK name) pair is already recorded;
/// `true` when it was inserted.
pub(super) fn enrol_host(tx: &mut Transaction<'_>, host: &HostRecord) -> Step<bool> {
    let inserted = tx.execute(
        "INSERT INTO host_keys (host_id, ak_name, ak_public, ek_cert_sha256, \
         tpm_manufacturer, enrolled_at) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (host_id, ak_name) DO NOTHING",
        &[
            &&host.host_id.0[..],
            &host.ak_name,
            &host.ak_public,
            &&host.ek_cert_sha256[..],
            &host.tpm_manufacturer,
            &host.enrolled_at,
        ],
    )?;
    Ok(inserted == 1)
}

/// Every AK recorded for `host_id`, oldest first.
pub(super) fn host_keys(tx: &mut Transaction<'_>, host_id: &HostId) -> Step<Vec<HostRecord>> {
    let rows = tx.query(
        "SELECT ak_name, ak_public, ek_cert_sha256, tpm_manufacturer, enrolled_at \
         FROM host_keys WHERE host_id = $1 ORDER BY enrolled_at, id",
        &[&&host_id.0[..]],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let ek_cert: Vec<u8> = row.try_get(2)?;
        let ek_cert_sha256 =
            <[u8; 32]>::try_from(ek_cert.as_slice()).map_err(|_| LedgerError::Corrupt {
                what: "ek certificate digest",
            })?;
        out.push(HostRecord {
            host_id: *host_id,
            ak_name: row.try_get(0)?,
            ak_public: row.try_get(1)?,
            ek_cert_sha256,
            tpm_manufacturer: row.try_get(3)?,
            enrolled_at: row.try_get(4)?,
        });
    }
    Ok(out)
}
