//! The demo's auditor: after the fleet has run, it reads the issuer's whole
//! audit log over gRPC, exports it to a file, and checks the export offline
//! with nothing but the issuer's public key, as a regulator would. It also
//! asks for one chip's evidence bundle and checks that, and shows that a
//! copy of the log with one byte changed fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chipward_proto::audit::{self, AuditExport};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::{ExportBundleRequest, GetEntriesRequest, GetTreeHeadRequest};
use tonic::transport::Channel;

/// What the auditor found.
#[derive(Clone, Debug)]
pub struct AuditSummary {
    /// Entries in the exported log.
    pub entries: u64,
    /// Its root, lowercase hex.
    pub root: String,
    /// Entries by kind name.
    pub kinds: BTreeMap<String, usize>,
    /// Where the export was written.
    pub export: PathBuf,
    /// The chip whose bundle was checked, and its entry and artefact
    /// counts.
    pub bundle: Option<(String, usize, usize)>,
    /// What the check said of a copy with one entry altered.
    pub tampered: String,
}

/// Reads, exports and checks the log of the issuer behind `issuer`;
/// `bundle_chip` also gets its evidence bundle checked.
pub async fn audit_log(
    issuer: Channel,
    keys: &TrustedKeys,
    dir: &Path,
    bundle_chip: Option<&str>,
) -> anyhow::Result<AuditSummary> {
    let mut log = AuditLogClient::new(issuer);

    // 1. A signed head, then every entry it covers, page by page.
    let head = log.get_tree_head(GetTreeHeadRequest {}).await?.into_inner();
    let mut entries: Vec<Vec<u8>> = Vec::new();
    while (entries.len() as u64) < head.tree_size {
        let request = GetEntriesRequest {
            start: entries.len() as u64,
            limit: 0,
        };
        let page = log.get_entries(request).await?.into_inner().entries;
        anyhow::ensure!(!page.is_empty(), "the log ended before its head");
        entries.extend(page);
    }
    entries.truncate(usize::try_from(head.tree_size)?);

    // 2. The export, written out and checked offline.
    let export = AuditExport::full(head.signed_tree_head.clone(), entries.clone(), Vec::new())?;
    let path = dir.join("audit-export.json");
    std::fs::write(&path, export.to_json())?;
    let report = audit::check_json(&std::fs::read(&path)?, keys, None)?;
    let mut kinds = BTreeMap::new();
    for (_, e) in &report.entries {
        *kinds.entry(e.kind.name().to_owned()).or_insert(0) += 1;
    }

    // 3. One altered byte in the middle of the log.
    let mut tampered = entries.clone();
    if let Some(e) = tampered.get_mut(entries.len() / 2)
        && let Some(b) = e.last_mut()
    {
        *b ^= 1;
    }
    let altered = AuditExport::full(head.signed_tree_head.clone(), tampered, Vec::new())?;
    let tampered = match audit::check(&altered, keys, None) {
        Ok(_) => "PASSED (the check is broken)".to_owned(),
        Err(e) => format!("refused: {e}"),
    };

    // 4. One chip's bundle, with proofs against a fresh head.
    let bundle = match bundle_chip {
        Some(chip) => {
            let request = ExportBundleRequest {
                chip_id: chip.to_owned(),
                from: 0,
                to: i64::MAX,
                ..ExportBundleRequest::default()
            };
            let b = log.export_bundle(request).await?.into_inner();
            let checked = audit::check_json(&b.export_json, keys, Some(&head.signed_tree_head))?;
            Some((
                chip.to_owned(),
                checked.entries.len(),
                checked.artifacts.len(),
            ))
        }
        None => None,
    };

    Ok(AuditSummary {
        entries: report.head.head().size,
        root: hex::encode(report.head.head().root),
        kinds,
        export: path,
        bundle,
        tampered,
    })
}

/// Counts entries of `kind` in a summary.
pub fn count(summary: &AuditSummary, kind: &str) -> usize {
    summary.kinds.get(kind).copied().unwrap_or(0)
}
