//! Seeds for the audit log targets, made with the project's own encoders
//! and signed with the fixed issuer key: entries of several kinds, tree
//! heads, a full export and an evidence bundle (part export) of a small
//! log, and proofs of a real tree next to raw values at the edges of their
//! ranges. None depends on a fresh key, so these are written in every run,
//! `--fixed-only` included.

use std::collections::BTreeMap;

use chipward_fuzz::{ENVELOPE_AS_IS, ENVELOPE_SEAL, ISSUER_KEY_ID, NOW_UNIX, issuer_key};
use chipward_proto::audit::{
    AuditEntry, AuditExport, EntryKind, MAX_DETAIL_LEN, MAX_DIGESTS, MAX_TEXT_LEN, MemoryTree,
    TreeHead,
};
use chipward_proto::cose;
use chipward_proto::ids::{ChipId, TokenId};
use ring::digest::{SHA256, digest};

use crate::Out;
use crate::objects::enveloped;

/// The log every seed describes.
const LOG_ID: &str = "chipward-audit";
/// The artifact the exports carry: a license token's bytes, as far as the
/// check is concerned.
const ARTIFACT: &[u8] = b"license token bytes";

/// Writes every seed of this module.
pub(crate) fn seeds(out: &Out) -> anyhow::Result<()> {
    let entries = entries()?;
    for (name, bytes) in ["issued", "revoked", "screened", "hold-placed"]
        .iter()
        .zip(&entries)
    {
        out.seed("audit_entry", name, bytes)?;
    }
    out.seed("audit_entry", "widest", &widest_entry()?)?;

    let mut tree = MemoryTree::new();
    for e in &entries {
        tree.push(e);
    }
    let earlier = signed_head(&tree, 2)?;
    let current = signed_head(&tree, entries.len() as u64)?;
    enveloped(out, "audit_tree_head", "current", &current)?;
    enveloped(out, "audit_tree_head", "earlier", &earlier)?;

    let mut full = AuditExport::full(current.clone(), entries.clone(), vec![earlier.clone()])?;
    full.add_artifact("license", ARTIFACT.to_vec());
    export_seeds(out, "full", &full)?;

    let selected = vec![(0, entries[0].clone()), (3, entries[3].clone())];
    let mut part = AuditExport::part(&tree, current, selected, vec![earlier])?;
    part.add_artifact("license", ARTIFACT.to_vec());
    export_seeds(out, "part", &part)?;

    proof_seeds(out)
}

/// The log: an issuance naming the artifact, a revocation, a screening
/// and a hold.
fn entries() -> anyhow::Result<Vec<Vec<u8>>> {
    let mut issued = AuditEntry::new(NOW_UNIX - 300, EntryKind::Issued);
    issued.chip_id = Some(ChipId([0xAB; 32]));
    issued.token_id = Some(TokenId([0x07; 16]));
    issued.tenant = "acme".into();
    issued.site_id = "fra-1".into();
    issued.actor = "operator@example".into();
    issued.key_id = ISSUER_KEY_ID.into();
    issued.digests.insert("token".into(), sha256(ARTIFACT));

    let mut revoked = AuditEntry::new(NOW_UNIX - 60, EntryKind::Revoked);
    revoked.token_id = issued.token_id;
    revoked.detail = "contract ended".into();

    let mut screened = AuditEntry::new(-1, EntryKind::Screened);
    screened.tenant = "acme".into();
    screened.digests.insert("decision".into(), [0x5A; 32]);
    screened.digests.insert("list".into(), [0xA5; 32]);

    let mut hold = AuditEntry::new(NOW_UNIX, EntryKind::HoldPlaced);
    hold.chip_id = issued.chip_id;
    hold.actor = "compliance".into();

    [issued, revoked, screened, hold]
        .iter()
        .map(|e| Ok(e.encode()?))
        .collect()
}

/// An entry with every field at its longest.
fn widest_entry() -> anyhow::Result<Vec<u8>> {
    let mut widest = AuditEntry::new(i64::MIN, EntryKind::Purged);
    widest.tenant = "t".repeat(MAX_TEXT_LEN);
    widest.actor = "\u{e9}".repeat(MAX_TEXT_LEN / 2);
    widest.detail = "d".repeat(MAX_DETAIL_LEN);
    widest.digests = (0..MAX_DIGESTS)
        .map(|i| (format!("d-{i:02}.x_y"), [i as u8; 32]))
        .collect::<BTreeMap<_, _>>();
    Ok(widest.encode()?)
}

fn signed_head(tree: &MemoryTree, size: u64) -> anyhow::Result<Vec<u8>> {
    let key = issuer_key();
    let head = TreeHead {
        log_id: LOG_ID.into(),
        size,
        root: chipward_proto::audit::root(tree, size)?,
        timestamp: NOW_UNIX,
    };
    Ok(head.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec())?)
}

/// An export as received, with the auditor's head, and with its heads as
/// the payloads the target signs itself.
fn export_seeds(out: &Out, name: &str, export: &AuditExport) -> anyhow::Result<()> {
    let json = export.to_json();
    out.seed(
        "audit_export",
        name,
        &[&[ENVELOPE_AS_IS][..], json.as_bytes()].concat(),
    )?;
    out.seed(
        "audit_export",
        &format!("{name}-trusted-head"),
        &[&[2][..], json.as_bytes()].concat(),
    )?;

    let mut bare = export.clone();
    let heads = std::iter::once(&mut bare.tree_head).chain(&mut bare.earlier_tree_heads);
    for head in heads {
        head.0 = cose::peek_payload(&head.0, usize::MAX)?;
    }
    let json = bare.to_json();
    out.seed(
        "audit_export",
        &format!("{name}-payload-heads"),
        &[&[ENVELOPE_SEAL][..], json.as_bytes()].concat(),
    )
}

/// Proofs of a real tree (the target builds it) and raw values at the edges
/// of their ranges.
fn proof_seeds(out: &Out) -> anyhow::Result<()> {
    let real = |size: u16, index: u16, old_size: u16, edits: &[u8]| {
        [
            &[1][..],
            &size.to_be_bytes(),
            &index.to_be_bytes(),
            &old_size.to_be_bytes(),
            edits,
        ]
        .concat()
    };
    out.seed("audit_proof", "real-7-of-300", &real(299, 7, 100, &[]))?;
    out.seed(
        "audit_proof",
        "real-edited",
        &real(12, 5, 8, &[0x00, 0x21, 0x80]),
    )?;
    out.seed("audit_proof", "real-truncated", &real(64, 63, 32, &[0x01]))?;

    let raw = |index: u64, size: u64, old_size: u64, hashes: usize| {
        let numbers = [index, size, old_size].map(u64::to_be_bytes).concat();
        [&[0][..], &numbers, &vec![0x3C; 32 * hashes]].concat()
    };
    out.seed(
        "audit_proof",
        "raw-largest-size",
        &raw(u64::MAX - 1, u64::MAX, u64::MAX - 1, 66),
    )?;
    out.seed(
        "audit_proof",
        "raw-power-of-two",
        &raw(5, 1 << 40, 1 << 39, 3 + 41),
    )?;
    Ok(())
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}
