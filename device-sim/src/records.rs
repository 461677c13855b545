//! The demo's compliance records. Before the fleet runs, the issuer loads
//! an invented restricted-party list and a listed tenant is refused. After,
//! the demo's auditor: after the fleet has run, it reads the issuer's whole
//! audit log over gRPC, exports it to a file, and checks the export offline
//! with nothing but the issuer's public key, as a regulator would. It also
//! asks for one chip's evidence bundle and checks that, and shows that a
//! copy of the log with one byte changed fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chipward_proto::audit::{self, AuditExport};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::compliance_client::ComplianceClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    EnrolChipRequest, ExportBundleRequest, GetEntriesRequest, GetTreeHeadRequest,
    IssueLicenseRequest, LoadScreeningListRequest, Party, Site,
};
use tonic::transport::Channel;

use crate::chip::SimChip;

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

/// The restricted-party list the demo loads: invented entries in the US
/// Consolidated Screening List's JSON form. One of them is a tenant that
/// asks for a license during the demo.
pub const DEMO_LIST: &[u8] = include_bytes!("../data/demo-screening-list.json");

/// The tenant on [`DEMO_LIST`] that asks for a license, and its legal name
/// as its request gives it.
pub const LISTED_TENANT: (&str, &str) = ("zephyr-dynamics", "Zephyr Dynamik GmbH");

/// Loads [`DEMO_LIST`] into the issuer behind `issuer`; returns a line
/// saying what it is.
pub async fn load_demo_list(issuer: Channel) -> anyhow::Result<String> {
    let mut compliance = ComplianceClient::new(issuer);
    let request = LoadScreeningListRequest {
        name: "Demo CSL".into(),
        date: "2026-12-01".into(),
        format: "json".into(),
        content: DEMO_LIST.to_vec(),
    };
    let loaded = compliance.load_screening_list(request).await?.into_inner();
    Ok(format!(
        "list Demo CSL of 2026-12-01 ({} entries, sha256 {}…)",
        loaded.entries,
        &loaded.digest[..12]
    ))
}

/// A listed tenant asks for a license for `chip` (enrolled here); returns
/// the refusal, or an error if the issuer granted it.
pub async fn listed_tenant_asks(issuer: Channel, chip: &SimChip) -> anyhow::Result<String> {
    let mut client = IssuerClient::new(issuer);
    client
        .enrol_chip(EnrolChipRequest {
            cert_chain: chip.enrolment_chain.clone(),
        })
        .await?;
    let (tenant, legal) = LISTED_TENANT;
    let site = &crate::fleet::SITES[0];
    let request = IssueLicenseRequest {
        chip_id: chip.chip_id.to_hex(),
        tenant: tenant.into(),
        site: Some(Site {
            id: site.id.into(),
            latitude: site.latitude,
            longitude: site.longitude,
            radius_km: 50.0,
        }),
        tenant_party: Some(Party {
            name: legal.into(),
            address: "Musterweg 9, Musterstadt".into(),
            country: "DE".into(),
        }),
        ..IssueLicenseRequest::default()
    };
    match client.issue_license(request).await {
        Ok(_) => anyhow::bail!("the issuer licensed a listed tenant"),
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            Ok(format!("{tenant} refused: {}", status.message()))
        }
        Err(status) => anyhow::bail!("unexpected refusal of the listed tenant: {status}"),
    }
}
