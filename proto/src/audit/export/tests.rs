//! Export building and shape tests; the checker's tests live with it.

use ring::rand::SystemRandom;
use ring::signature::Ed25519KeyPair;

use super::*;
use crate::audit::memory::{MemoryTree, MissingNode};
use crate::audit::tree_head::TreeHead;

fn log(n: u64) -> (MemoryTree, Vec<Vec<u8>>) {
    let entries: Vec<Vec<u8>> = (0..n).map(|i| i.to_be_bytes().to_vec()).collect();
    let tree = MemoryTree::from_leaf_hashes(entries.iter().map(|e| merkle::leaf_hash(e)));
    (tree, entries)
}

fn head(tree: &MemoryTree, size: u64) -> Vec<u8> {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let head = TreeHead {
        log_id: "log".into(),
        size,
        root: merkle::root(tree, size).unwrap(),
        timestamp: 0,
    };
    head.sign("k", |m| key.sign(m).as_ref().to_vec()).unwrap()
}

#[test]
fn a_full_export_lists_every_entry_and_leaf_hash() {
    let (tree, entries) = log(5);
    let export = AuditExport::full(head(&tree, 5), entries.clone(), vec![head(&tree, 2)]).unwrap();
    assert_eq!(export.format, EXPORT_FORMAT);
    assert_eq!(export.log_id, "log");
    assert_eq!(export.scope, Scope::Full);
    let indices: Vec<u64> = export.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, [0, 1, 2, 3, 4]);
    assert_eq!(export.entries[3].entry.0, entries[3]);
    assert_eq!(export.proofs.leaf_hashes[3].0, tree.leaf_hash(3).unwrap());
    assert!(export.proofs.inclusion.is_empty() && export.proofs.consistency.is_empty());
    assert_eq!(export.earlier_tree_heads.len(), 1);
    assert!(export.check_shape().is_ok());
}

#[test]
fn a_part_export_sorts_entries_and_carries_their_proofs() {
    let (tree, entries) = log(9);
    let picked = vec![(7, entries[7].clone()), (2, entries[2].clone())];
    let export = AuditExport::part(&tree, head(&tree, 9), picked, vec![head(&tree, 4)]).unwrap();
    let indices: Vec<u64> = export.entries.iter().map(|e| e.index).collect();
    assert_eq!(indices, [2, 7]);
    let path: Vec<Hash> = export.proofs.inclusion[1]
        .path
        .iter()
        .map(|h| h.0)
        .collect();
    assert_eq!(path, merkle::inclusion_proof(&tree, 7, 9).unwrap());
    assert_eq!(export.proofs.consistency[0].from_size, 4);
    assert!(export.check_shape().is_ok());
}

#[test]
fn building_refuses_inconsistent_requests() {
    let (tree, entries) = log(4);
    assert!(matches!(
        AuditExport::full(head(&tree, 4), entries[..3].to_vec(), vec![]),
        Err(BuildError::SizeMismatch {
            head_size: 4,
            entries: 3
        })
    ));
    assert!(matches!(
        AuditExport::full(b"not a head".to_vec(), vec![], vec![]),
        Err(BuildError::Head(_))
    ));
    let twice = vec![(1, entries[1].clone()), (1, entries[1].clone())];
    assert!(matches!(
        AuditExport::part(&tree, head(&tree, 4), twice, vec![]),
        Err(BuildError::DuplicateIndex { index: 1 })
    ));
    let beyond = vec![(4, b"x".to_vec())];
    assert!(matches!(
        AuditExport::part(&tree, head(&tree, 4), beyond, vec![]),
        Err(BuildError::Prove(ProveError::IndexOutOfRange {
            index: 4,
            size: 4
        }))
    ));
    // A head the source cannot back: the tree holds 4 leaves, not 5.
    let (bigger, _) = log(5);
    assert!(matches!(
        AuditExport::part(&tree, head(&bigger, 5), vec![], vec![head(&tree, 3)]),
        Err(BuildError::Prove(ProveError::Source(MissingNode { .. })))
    ));
    let mut full = AuditExport::full(head(&tree, 4), entries, vec![]).unwrap();
    assert!(matches!(
        full.add_consistency_from(&tree, 2),
        Err(BuildError::FullScope)
    ));
}

#[test]
fn shape_checks_refuse_duplicate_and_stray_proofs() {
    let (tree, entries) = log(6);
    let picked = vec![(1, entries[1].clone()), (4, entries[4].clone())];
    let good = AuditExport::part(&tree, head(&tree, 6), picked, vec![head(&tree, 3)]).unwrap();

    let mut doubled = good.clone();
    doubled
        .proofs
        .inclusion
        .push(doubled.proofs.inclusion[0].clone());
    assert!(matches!(
        doubled.check_shape(),
        Err(ExportError::DuplicateInclusionProof { index: 1 })
    ));
    let mut stray = good.clone();
    stray.entries.remove(1);
    assert!(matches!(
        stray.check_shape(),
        Err(ExportError::UnusedInclusionProof { index: 4 })
    ));
    let mut twice = good.clone();
    twice.add_consistency_from(&tree, 3).unwrap();
    assert_eq!(twice, good, "a known size is not added twice");
    twice
        .proofs
        .consistency
        .push(twice.proofs.consistency[0].clone());
    assert!(matches!(
        twice.check_shape(),
        Err(ExportError::DuplicateConsistencyProof { from_size: 3 })
    ));
}

#[test]
fn json_round_trips_with_standard_padded_base64() {
    let (tree, entries) = log(3);
    let mut export = AuditExport::full(head(&tree, 3), entries, vec![]).unwrap();
    export.add_artifact("token", vec![0xfb, 0xff]);
    let json = export.to_json();
    // 0xfb 0xff is "+/8=" in the standard alphabet with padding.
    assert!(json.contains("\"data\": \"+/8=\""), "{json}");
    assert_eq!(AuditExport::from_json(json.as_bytes()).unwrap(), export);
    let unpadded = json.replace("\"+/8=\"", "\"+/8\"");
    assert!(matches!(
        AuditExport::from_json(unpadded.as_bytes()),
        Err(ExportError::Json(_))
    ));
}
