//! The SQL for hosts' attestation keys: one `host_keys` row per (host, AK
//! name). Records come from the service after credential activation and
//! are bound as parameters.

use rusqlite::{Connection, params};

use super::classify;
use crate::host_enrolment::HostId;
use crate::ledger::{HostRecord, LedgerError};

/// Inserts `host` unless its (host, AK name) pair is already recorded;
/// `true` when it was inserted. One statement, so atomic on its own.
pub(super) fn enrol(conn: &Connection, host: &HostRecord) -> Result<bool, LedgerError> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO host_keys (host_id, ak_name, ak_public, ek_cert_sha256, \
             tpm_manufacturer, enrolled_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             ON CONFLICT (host_id, ak_name) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                &host.host_id.0[..],
                host.ak_name,
                host.ak_public,
                &host.ek_cert_sha256[..],
                host.tpm_manufacturer,
                host.enrolled_at,
            ])
        })
        .map_err(classify)?;
    Ok(inserted == 1)
}

/// Every AK recorded for `host_id`, oldest first.
pub(super) fn keys(conn: &Connection, host_id: &HostId) -> Result<Vec<HostRecord>, LedgerError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT ak_name, ak_public, ek_cert_sha256, tpm_manufacturer, enrolled_at \
             FROM host_keys WHERE host_id = ?1 ORDER BY enrolled_at, rowid",
        )
        .map_err(classify)?;
    let rows = stmt
        .query_map([&host_id.0[..]], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get(3)?,
                r.get(4)?,
            ))
        })
        .map_err(classify)?;
    let mut out = Vec::new();
    for row in rows {
        let (ak_name, ak_public, ek_cert, tpm_manufacturer, enrolled_at) = row.map_err(classify)?;
        let ek_cert_sha256 =
            <[u8; 32]>::try_from(ek_cert.as_slice()).map_err(|_| LedgerError::Corrupt {
                what: "ek certificate digest",
            })?;
        out.push(HostRecord {
            host_id: *host_id,
            ak_name,
            ak_public,
            ek_cert_sha256,
            tpm_manufacturer,
            enrolled_at,
        });
    }
    Ok(out)
}
