//! Checker tests: good exports pass; each kind of tampering gives its own
//! error.

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;
use crate::audit::entry::EntryKind;
use crate::audit::export::{Base64Bytes, Base64Hash, ExportedEntry, InclusionPath};
use crate::audit::merkle::ProofError;
use crate::cose::CoseError;
use crate::ids::ChipId;

const LOG: &str = "chipward-audit-test";

struct Log {
    key: Ed25519KeyPair,
    tree: MemoryTree,
    entries: Vec<Vec<u8>>,
}

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    let kind = EntryKind::ALL[i as usize % EntryKind::ALL.len()];
    let mut e = AuditEntry::new(1_700_000_000 + i as i64, kind);
    e.chip_id = Some(ChipId([i as u8 % 4; 32]));
    e.tenant = "acme".into();
    e.site_id = format!("site-{}", i % 3);
    e.actor = "issuer".into();
    e.digests.insert("license".into(), sha256(&i.to_be_bytes()));
    e.detail = format!("entry {i}");
    e.encode().unwrap()
}

impl Log {
    fn new(n: u64) -> Self {
        let mut log = Self {
            key: key(),
            tree: MemoryTree::new(),
            entries: Vec::new(),
        };
        for i in 0..n {
            log.append(entry(i));
        }
        log
    }

    fn append(&mut self, bytes: Vec<u8>) {
        self.tree.push(&bytes);
        self.entries.push(bytes);
    }

    fn keys(&self) -> TrustedKeys {
        let public = self.key.public_key().as_ref().try_into().unwrap();
        TrustedKeys::new().with("issuer", public)
    }

    fn head_with(&self, size: u64, root: Hash) -> Vec<u8> {
        let head = TreeHead {
            log_id: LOG.into(),
            size,
            root,
            timestamp: 1_800_000_000 + size as i64,
        };
        head.sign("issuer", |m| self.key.sign(m).as_ref().to_vec())
            .unwrap()
    }

    fn head(&self, size: u64) -> Vec<u8> {
        self.head_with(size, merkle::root(&self.tree, size).unwrap())
    }

    fn full(&self, size: u64, earlier: &[u64]) -> AuditExport {
        let earlier = earlier.iter().map(|s| self.head(*s)).collect();
        let entries = self.entries[..size as usize].to_vec();
        AuditExport::full(self.head(size), entries, earlier).unwrap()
    }

    fn part(&self, size: u64, indices: &[u64], earlier: &[u64]) -> AuditExport {
        let earlier = earlier.iter().map(|s| self.head(*s)).collect();
        let picked = (indices.iter())
            .map(|i| (*i, self.entries[*i as usize].clone()))
            .collect();
        AuditExport::part(&self.tree, self.head(size), picked, earlier).unwrap()
    }

    fn check(&self, export: &AuditExport) -> Result<AuditReport, AuditError> {
        check(export, &self.keys(), None)
    }
}

// ---- Good exports. ----

#[test]
fn a_full_export_passes_and_reports_its_entries() {
    let log = Log::new(10);
    let export = log.full(10, &[0, 4, 7, 10]);
    let report = check_json(export.to_json().as_bytes(), &log.keys(), None).unwrap();
    assert_eq!(report.scope, Scope::Full);
    assert_eq!(report.head.head().size, 10);
    assert_eq!(report.head.key_id(), "issuer");
    assert_eq!(report.entries.len(), 10);
    assert_eq!(report.entries[3].1, AuditEntry::decode(&entry(3)).unwrap());
    let sizes: Vec<u64> = report.earlier_heads.iter().map(|h| h.size).collect();
    assert_eq!(sizes, [0, 4, 7, 10]);
}

#[test]
fn a_part_export_with_artifacts_passes_against_a_trusted_head() {
    let log = Log::new(12);
    let mut export = log.part(12, &[1, 5, 11], &[3, 9]);
    export.add_consistency_from(&log.tree, 6).unwrap();
    export.add_artifact("license token 5", 5u64.to_be_bytes().to_vec());
    let trusted = log.head(6);
    let json = export.to_json();
    let report = check_json(json.as_bytes(), &log.keys(), Some(&trusted)).unwrap();
    let indices: Vec<u64> = report.entries.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [1, 5, 11]);
    assert_eq!(report.trusted_head.unwrap().size, 6);
    assert_eq!(report.artifacts, ["license token 5"]);
}

#[test]
fn an_empty_log_exports_and_checks() {
    let log = Log::new(0);
    assert!(log.check(&log.full(0, &[])).is_ok());
    assert!(log.check(&log.part(0, &[], &[0])).is_ok());
}

// ---- Tampering with a full export. ----

fn full_entries(export: &mut AuditExport) -> &mut Vec<ExportedEntry> {
    &mut export.entries
}

#[test]
fn a_deleted_entry_is_named() {
    let log = Log::new(10);
    let mut export = log.full(10, &[]);
    full_entries(&mut export).remove(3);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::EntryDeleted { index: 3 })
    ));
}

#[test]
fn an_altered_byte_is_named() {
    let log = Log::new(10);
    for at in [0, 7, 40] {
        let mut export = log.full(10, &[]);
        full_entries(&mut export)[5].entry.0[at] ^= 0x01;
        assert!(
            matches!(
                log.check(&export),
                Err(AuditError::EntryAltered {
                    index: 5,
                    source: None
                })
            ),
            "byte {at}"
        );
    }
}

#[test]
fn swapped_entries_are_named() {
    let log = Log::new(10);
    let mut export = log.full(10, &[]);
    full_entries(&mut export).swap(2, 7);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::EntriesReordered {
            first: 2,
            second: 7
        })
    ));
    // Swapping only the entry bytes, keeping the index labels in order.
    let mut export = log.full(10, &[]);
    let e = full_entries(&mut export);
    let (a, b) = (e[2].entry.clone(), e[7].entry.clone());
    (e[2].entry, e[7].entry) = (b, a);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::EntriesReordered {
            first: 2,
            second: 7
        })
    ));
}

#[test]
fn an_inserted_entry_is_named() {
    let log = Log::new(10);
    let mut export = log.full(10, &[]);
    let forged = ExportedEntry {
        index: 4,
        entry: Base64Bytes(entry(99)),
    };
    full_entries(&mut export).insert(4, forged);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::EntryInserted { index: 4 })
    ));
}

#[test]
fn a_truncated_or_extended_export_is_a_size_mismatch() {
    let log = Log::new(10);
    let mut export = log.full(10, &[]);
    full_entries(&mut export).truncate(6);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::SizeMismatch {
            head_size: 10,
            entries: 6
        })
    ));
    let mut export = log.full(10, &[]);
    let extra = ExportedEntry {
        index: 10,
        entry: Base64Bytes(entry(10)),
    };
    full_entries(&mut export).push(extra);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::SizeMismatch {
            head_size: 10,
            entries: 11
        })
    ));
}

#[test]
fn without_a_trustworthy_leaf_list_only_the_root_mismatch_is_reported() {
    let log = Log::new(10);
    let mut export = log.full(10, &[]);
    full_entries(&mut export)[5].entry.0[3] ^= 0x01;
    export.proofs.leaf_hashes[5] = Base64Hash(merkle::leaf_hash(&export.entries[5].entry.0));
    assert!(matches!(
        log.check(&export),
        Err(AuditError::RootMismatch { size: 10 })
    ));
}

#[test]
fn authentic_entries_with_wrong_labels_are_malformed() {
    let log = Log::new(4);
    let mut export = log.full(4, &[]);
    export.entries[2].index = 9;
    assert!(matches!(
        log.check(&export),
        Err(AuditError::Malformed(ExportError::IndexField {
            position: 2,
            index: 9
        }))
    ));
    let mut export = log.full(4, &[]);
    export.proofs.leaf_hashes.pop();
    assert!(matches!(
        log.check(&export),
        Err(AuditError::Malformed(ExportError::LeafHashes))
    ));
}

#[test]
fn a_logged_entry_that_does_not_decode_is_reported() {
    let mut log = Log::new(3);
    log.append(b"not an entry".to_vec());
    assert!(matches!(
        log.check(&log.full(4, &[])),
        Err(AuditError::EntryUndecodable { index: 3, .. })
    ));
}

// ---- Tree heads. ----

#[test]
fn a_forged_tree_head_is_refused() {
    let log = Log::new(10);
    let forger = Log::new(10);
    let mut export = log.full(10, &[]);
    // Same key id, another key: the signature fails.
    export.tree_head.0 = forger.head(10);
    assert!(matches!(
        log.check(&export),
        Err(AuditError::HeadSignature {
            head: HeadRef::Current,
            source: TreeHeadError::Envelope(CoseError::BadSignature)
        })
    ));
    // A byte of the signed head flipped.
    let mut export = log.full(10, &[]);
    let last = export.tree_head.0.len() - 1;
    export.tree_head.0[last] ^= 0x01;
    assert!(matches!(
        log.check(&export),
        Err(AuditError::HeadSignature {
            head: HeadRef::Current,
            ..
        })
    ));
}

#[test]
fn a_head_for_another_log_is_refused() {
    let log = Log::new(3);
    let mut export = log.full(3, &[]);
    export.log_id = "other-log".into();
    assert!(matches!(
        log.check(&export),
        Err(AuditError::LogIdMismatch {
            head: HeadRef::Current,
            ..
        })
    ));
}

/// A second history that shares the first 4 entries and then differs.
fn forked(n: u64) -> MemoryTree {
    let mut fork = MemoryTree::new();
    for i in 0..n {
        fork.push(&if i < 4 { entry(i) } else { entry(100 + i) });
    }
    fork
}

#[test]
fn a_contradicting_earlier_head_is_refused() {
    let log = Log::new(10);
    let fork = forked(10);
    for scope in [Scope::Full, Scope::Part] {
        let build = |earlier: Vec<u8>| match scope {
            Scope::Full => {
                AuditExport::full(log.head(10), log.entries.clone(), vec![earlier]).unwrap()
            }
            Scope::Part => {
                let mut e = AuditExport::part(&log.tree, log.head(10), vec![], vec![]).unwrap();
                e.add_consistency_from(&log.tree, 7).unwrap();
                e.earlier_tree_heads.push(Base64Bytes(earlier));
                e
            }
        };

        // Same size, different root.
        let same_size = build(log.head_with(10, fork.root()));
        assert!(matches!(
            log.check(&same_size),
            Err(AuditError::ConflictingHeads {
                head: HeadRef::Earlier(0),
                size: 10
            })
        ));

        // An earlier size whose root is not a prefix of the current tree.
        let other_root = merkle::root(&fork, 7).unwrap();
        let not_prefix = build(log.head_with(7, other_root));
        let expected_source = match scope {
            Scope::Full => None,
            Scope::Part => Some(ProofError::OldRootMismatch),
        };
        match log.check(&not_prefix) {
            Err(AuditError::InconsistentHeads {
                head: HeadRef::Earlier(0),
                old_size: 7,
                new_size: 10,
                source,
            }) => assert_eq!(source, expected_source),
            other => panic!("{scope:?}: {other:?}"),
        }

        // A larger "earlier" head.
        let larger = build(log.head_with(11, fork.root()));
        assert!(matches!(
            log.check(&larger),
            Err(AuditError::HeadsOutOfOrder {
                head: HeadRef::Earlier(0),
                size: 11,
                current_size: 10
            })
        ));
    }
}

#[test]
fn the_auditors_head_must_be_an_ancestor() {
    let log = Log::new(10);
    let fork = forked(10);
    let keys = log.keys();
    let full = log.full(8, &[]);
    let check_with = |e: &AuditExport, t: &[u8]| check(e, &keys, Some(t));

    assert!(check_with(&full, &log.head(5)).is_ok());
    assert!(matches!(
        check_with(&full, &log.head(9)),
        Err(AuditError::HeadsOutOfOrder {
            head: HeadRef::Trusted,
            ..
        })
    ));
    let other = log.head_with(5, merkle::root(&fork, 5).unwrap());
    assert!(matches!(
        check_with(&full, &other),
        Err(AuditError::InconsistentHeads {
            head: HeadRef::Trusted,
            source: None,
            ..
        })
    ));
    assert!(matches!(
        check_with(&full, &Log::new(1).head(1)),
        Err(AuditError::HeadSignature {
            head: HeadRef::Trusted,
            ..
        })
    ));

    let mut part = log.part(8, &[2], &[]);
    assert!(matches!(
        check_with(&part, &log.head(5)),
        Err(AuditError::MissingConsistencyProof {
            head: HeadRef::Trusted,
            from_size: 5
        })
    ));
    part.add_consistency_from(&log.tree, 5).unwrap();
    assert!(check_with(&part, &log.head(5)).is_ok());
    assert!(check_with(&part, &log.head(8)).is_ok());
}

// ---- Tampering with a part export. ----

#[test]
fn part_export_tampering_is_named() {
    let log = Log::new(12);
    let good = log.part(12, &[1, 5, 11], &[]);
    assert!(log.check(&good).is_ok());

    let mut altered = good.clone();
    altered.entries[1].entry.0[9] ^= 0x80;
    assert!(matches!(
        log.check(&altered),
        Err(AuditError::EntryAltered {
            index: 5,
            source: Some(ProofError::RootMismatch)
        })
    ));

    let mut swapped = good.clone();
    swapped.entries.swap(0, 1);
    assert!(matches!(
        log.check(&swapped),
        Err(AuditError::EntriesReordered {
            first: 5,
            second: 1
        })
    ));

    let mut doubled = good.clone();
    let mut copy = doubled.entries[1].clone();
    copy.entry = Base64Bytes(entry(77));
    doubled.entries.insert(2, copy);
    assert!(matches!(
        log.check(&doubled),
        Err(AuditError::EntryInserted { index: 5 })
    ));

    let mut beyond = good.clone();
    beyond.entries.push(ExportedEntry {
        index: 12,
        entry: Base64Bytes(entry(12)),
    });
    beyond.proofs.inclusion.push(InclusionPath {
        index: 12,
        path: vec![],
    });
    assert!(matches!(
        log.check(&beyond),
        Err(AuditError::IndexBeyondHead {
            index: 12,
            size: 12
        })
    ));

    let mut moved = good.clone();
    moved.entries[0].index = 2;
    moved.proofs.inclusion[0].index = 2;
    assert!(matches!(
        log.check(&moved),
        Err(AuditError::EntryAltered {
            index: 2,
            source: Some(ProofError::RootMismatch)
        })
    ));
}

#[test]
fn an_artifact_no_entry_names_is_refused() {
    let log = Log::new(6);
    let mut export = log.part(6, &[2], &[]);
    export.add_artifact("license token 2", 2u64.to_be_bytes().to_vec());
    assert!(log.check(&export).is_ok());
    // Entry 3's license is real but entry 3 is not in this export.
    export.add_artifact("license token 3", 3u64.to_be_bytes().to_vec());
    match log.check(&export) {
        Err(AuditError::ArtifactNotReferenced { name, sha256: d }) => {
            assert_eq!(name, "license token 3");
            assert_eq!(d, hex::encode(sha256(&3u64.to_be_bytes())));
        }
        other => panic!("{other:?}"),
    }
}

// ---- Malformed exports. ----

#[test]
fn malformed_exports_are_refused_before_any_check() {
    let log = Log::new(4);
    let keys = log.keys();
    let json = log.part(4, &[1], &[2]).to_json();
    let malformed = |text: &str| match check_json(text.as_bytes(), &keys, None) {
        Err(AuditError::Malformed(e)) => e,
        other => panic!("{other:?}"),
    };

    assert!(matches!(malformed("{"), ExportError::Json(_)));
    assert!(matches!(
        malformed(&json.replacen("\"format\"", "\"extra\": 1, \"format\"", 1)),
        ExportError::Json(_)
    ));
    assert!(matches!(
        malformed(&json.replace("chipward-audit-export/1", "chipward-audit-export/2")),
        ExportError::Format { .. }
    ));
    assert!(matches!(
        malformed(&json.replacen("\"entry\": \"", "\"entry\": \"!", 1)),
        ExportError::Json(_)
    ));

    let export = log.part(4, &[1], &[2]);
    let mut short = serde_json::to_value(&export).unwrap();
    short["proofs"]["inclusion"][0]["path"][0] = "AAAA".into();
    assert!(matches!(
        malformed(&short.to_string()),
        ExportError::Json(_)
    ));

    let mut no_proof = log.part(4, &[1], &[]);
    no_proof.proofs.inclusion.clear();
    assert!(matches!(
        log.check(&no_proof),
        Err(AuditError::Malformed(ExportError::MissingInclusionProof {
            index: 1
        }))
    ));
    let mut part_with_leaves = log.part(4, &[1], &[]);
    part_with_leaves
        .proofs
        .leaf_hashes
        .push(Base64Hash([0; 32]));
    assert!(matches!(
        log.check(&part_with_leaves),
        Err(AuditError::Malformed(ExportError::UnexpectedProofs {
            scope: Scope::Part,
            ..
        }))
    ));
    let mut full_with_proofs = log.full(4, &[]);
    full_with_proofs.proofs.inclusion = log.part(4, &[1], &[]).proofs.inclusion;
    assert!(matches!(
        log.check(&full_with_proofs),
        Err(AuditError::Malformed(ExportError::UnexpectedProofs {
            scope: Scope::Full,
            ..
        }))
    ));
    assert!(matches!(
        AuditExport::from_json_bounded(json.as_bytes(), json.len() - 1),
        Err(ExportError::TooLarge { .. })
    ));
    assert!(AuditExport::from_json_bounded(json.as_bytes(), json.len()).is_ok());
}
