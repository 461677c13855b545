//! Audit exports and evidence bundles as an auditor checks them offline
//! (`chipward-audit`): JSON after a first byte that frames it. Bit 0 of the
//! first byte set: every tree head in the export is taken as a payload and
//! signed by the target with the fixed issuer key, so that the fuzzer
//! reaches the entry, proof and consistency checks behind signatures it
//! could never forge; clear: the heads are taken as given. Bit 1 set: the
//! export's first earlier head is also handed in as the auditor's own.
//!
//! [`AuditExport::from_json`] and [`check`] refuse bad bytes with an error;
//! any export that parses writes back to JSON that parses to it again; and
//! what the check accepts is what it claims: entries that encode to the
//! exported bytes, a full export that rebuilds the signed root from index
//! 0, a part export whose entries each prove inclusion, earlier heads no
//! larger than the current one, and artifacts each named by an entry.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, issuer_key, seal, trusted};
use chipward_proto::audit::export::Base64Bytes;
use chipward_proto::audit::{
    AuditEntry, AuditExport, AuditReport, MemoryTree, Scope, check, check_json, leaf_hash,
    verify_inclusion,
};
use libfuzzer_sys::fuzz_target;
use ring::digest::{SHA256, digest};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, json)) = data.split_first() else {
        return;
    };
    let key = issuer_key();
    let keys = trusted(&key, ISSUER_KEY_ID);

    let Ok(mut export) = AuditExport::from_json(json) else {
        assert!(check_json(json, &keys, None).is_err());
        return;
    };
    let written = export.to_json();
    assert_eq!(
        AuditExport::from_json(written.as_bytes()).ok().as_ref(),
        Some(&export)
    );

    if mode & 1 == 1 {
        let heads = std::iter::once(&mut export.tree_head).chain(&mut export.earlier_tree_heads);
        for head in heads {
            *head = Base64Bytes(seal(head.0.clone(), &key, ISSUER_KEY_ID));
        }
    }
    let trusted_head = match mode & 2 {
        0 => None,
        _ => export.earlier_tree_heads.first().map(|h| h.0.clone()),
    };

    let Ok(report) = check(&export, &keys, trusted_head.as_deref()) else {
        return;
    };
    holds_what_it_claims(&export, &report);

    let again = check_json(export.to_json().as_bytes(), &keys, trusted_head.as_deref())
        .expect("an export that checks, written out, checks again");
    assert_eq!(again.entries, report.entries);
});

fn holds_what_it_claims(export: &AuditExport, report: &AuditReport) {
    let head = report.head.head();
    assert_eq!(report.log_id, export.log_id);
    assert_eq!(head.log_id, export.log_id);
    assert_eq!(report.head.key_id(), ISSUER_KEY_ID);
    assert_eq!(report.scope, export.scope);

    // Entries: each the exported bytes, at the exported index.
    assert_eq!(report.entries.len(), export.entries.len());
    for ((index, entry), exported) in report.entries.iter().zip(&export.entries) {
        assert_eq!(*index, exported.index);
        assert_eq!(entry.encode().as_ref(), Ok(&exported.entry.0));
        assert_eq!(AuditEntry::decode(&exported.entry.0).as_ref(), Ok(entry));
    }
    let indices: Vec<u64> = report.entries.iter().map(|(i, _)| *i).collect();
    match export.scope {
        Scope::Full => {
            assert!(indices.iter().copied().eq(0..head.size));
            let mut tree = MemoryTree::new();
            for e in &export.entries {
                tree.push(&e.entry.0);
            }
            assert_eq!(tree.root(), head.root);
        }
        Scope::Part => {
            assert!(indices.windows(2).all(|w| w[0] < w[1]), "{indices:?}");
            for e in &export.entries {
                let proof = export.proofs.inclusion.iter().find(|p| p.index == e.index);
                let path: Vec<[u8; 32]> = proof
                    .expect("a proven entry has a proof")
                    .path
                    .iter()
                    .map(|h| h.0)
                    .collect();
                let leaf = leaf_hash(&e.entry.0);
                assert_eq!(
                    verify_inclusion(&leaf, e.index, head.size, &path, &head.root),
                    Ok(())
                );
            }
        }
    }

    // Heads: none larger than the current one, none of another log.
    let others = report.earlier_heads.iter().chain(&report.trusted_head);
    for other in others {
        assert!(other.size <= head.size);
        assert_eq!(other.log_id, head.log_id);
        if other.size == head.size {
            assert_eq!(other.root, head.root);
        }
    }
    assert_eq!(report.earlier_heads.len(), export.earlier_tree_heads.len());

    // Artifacts: each named by an included entry.
    assert_eq!(report.artifacts.len(), export.artifacts.len());
    for artifact in &export.artifacts {
        let mut sha = [0u8; 32];
        sha.copy_from_slice(digest(&SHA256, &artifact.data.0).as_ref());
        assert!(report.entries.iter().any(|(_, e)| e.references(&sha)));
    }
}
