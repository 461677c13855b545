//! Conformance checks for the audit log, results, tree heads, legal holds
//! and retention. Roots and proofs read from the ledger are checked against
//! an in-memory tree built from the same entry bytes and against the RFC
//! 9162 verifiers, so a backend that stores a wrong node fails here.

use chipward_proto::audit::{
    self, AuditEntry, EntryKind, MemoryTree, consistency_proof, inclusion_proof,
    verify_consistency, verify_inclusion,
};
use chipward_proto::{ChipId, TokenId};

use super::{chip, license, note};
use crate::ledger::{
    AuditRecord, AuditSelection, Ledger, LedgerError, LegalHold, ResultRecord, StoredTreeHead,
};

/// The ledger's subtree hashes as a proof source.
struct Nodes<'a>(&'a dyn Ledger);

impl audit::NodeSource for Nodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<audit::Hash, LedgerError> {
        self.0.audit_node(level, index)
    }
}

fn record(kind: EntryKind, at: i64, chip: Option<u8>, site: &str) -> AuditRecord {
    let mut entry = AuditEntry::new(at, kind);
    entry.chip_id = chip.map(|c| ChipId([c; 32]));
    entry.site_id = site.into();
    entry.detail = format!("{kind} at {at}");
    AuditRecord::new(entry)
}

fn kinds(ledger: &dyn Ledger) -> Vec<EntryKind> {
    let size = ledger.audit_size().unwrap();
    let entries = ledger
        .audit_entries(0, usize::try_from(size).unwrap())
        .unwrap();
    entries
        .iter()
        .map(|e| AuditEntry::decode(e).unwrap().kind)
        .collect()
}

/// Each change appends exactly its entry, in order, with dense indices;
/// repeats and refusals append nothing.
pub fn every_change_is_logged_once_and_refusals_are_not(ledger: &dyn Ledger) {
    let enrolled = record(EntryKind::ChipEnrolled, 1, Some(1), "");
    assert!(ledger.enrol_chip(&chip(1), &enrolled).unwrap());
    assert!(!ledger.enrol_chip(&chip(1), &enrolled).unwrap());
    let issued = record(EntryKind::Issued, 2, Some(1), "fra-1");
    assert_eq!(
        ledger
            .insert_license(&license(10, 1, "acme", 5), &issued)
            .unwrap(),
        1
    );
    // Refused: unknown chip, taken token id.
    assert!(
        ledger
            .insert_license(&license(11, 9, "acme", 5), &issued)
            .is_err()
    );
    assert!(
        ledger
            .insert_license(&license(10, 1, "acme", 5), &issued)
            .is_err()
    );
    let mut next = license(12, 1, "acme", 50);
    next.renewed_from = Some(TokenId([10; 16]));
    let renewed = record(EntryKind::Renewed, 3, Some(1), "fra-1");
    assert_eq!(
        ledger.renew(&TokenId([10; 16]), &next, &renewed).unwrap(),
        2
    );
    let revoked = record(EntryKind::Revoked, 4, Some(1), "fra-1");
    ledger
        .revoke(&TokenId([12; 16]), "stolen", 4, &revoked)
        .unwrap();
    ledger
        .revoke(&TokenId([10; 16]), "again", 5, &revoked)
        .unwrap();
    // Refused: renewing a revoked license.
    assert!(
        ledger
            .renew(&TokenId([12; 16]), &license(13, 1, "acme", 60), &renewed)
            .is_err()
    );
    let first = ledger
        .append_audit(&[
            record(EntryKind::Screened, 6, None, ""),
            record(EntryKind::Refused, 7, Some(1), "fra-1"),
        ])
        .unwrap();
    assert_eq!(first, 4);
    assert_eq!(ledger.audit_size().unwrap(), 6);
    assert_eq!(
        kinds(ledger),
        [
            EntryKind::ChipEnrolled,
            EntryKind::Issued,
            EntryKind::Renewed,
            EntryKind::Revoked,
            EntryKind::Screened,
            EntryKind::Refused,
        ]
    );
    assert_eq!(ledger.audit_entries(4, 10).unwrap().len(), 2);
    assert_eq!(ledger.audit_entries(6, 10).unwrap().len(), 0);
}

/// Roots and proofs from the stored nodes match a tree built apart from
/// the ledger, at every size.
pub fn roots_and_proofs_match_an_independent_tree(ledger: &dyn Ledger) {
    let mut memory = MemoryTree::new();
    for at in 0..37 {
        ledger
            .append_audit(&[record(EntryKind::Screened, at, None, "")])
            .unwrap();
    }
    let entries = ledger.audit_entries(0, 100).unwrap();
    assert_eq!(entries.len(), 37);
    for (i, e) in entries.iter().enumerate() {
        memory.push(e);
        let size = i as u64 + 1;
        let root = audit::root(&Nodes(ledger), size).unwrap();
        assert_eq!(root, audit::root(&memory, size).unwrap(), "size {size}");
    }
    let root37 = memory.root();
    for index in [0u64, 1, 17, 31, 32, 36] {
        let path = inclusion_proof(&Nodes(ledger), index, 37).unwrap();
        let leaf = audit::leaf_hash(&entries[index as usize]);
        verify_inclusion(&leaf, index, 37, &path, &root37).unwrap();
    }
    for old in [1u64, 8, 13, 32, 36] {
        let path = consistency_proof(&Nodes(ledger), old, 37).unwrap();
        let old_root = audit::root(&memory, old).unwrap();
        verify_consistency(old, 37, &old_root, &root37, &path).unwrap();
    }
    // A node beyond the log is not there.
    assert!(matches!(
        ledger.audit_node(0, 37),
        Err(LedgerError::Corrupt { .. })
    ));
}

/// A batch commits each license alone or not at all, in order.
pub fn a_batch_gives_each_license_its_own_outcome(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let batch = vec![
        (
            license(10, 1, "acme", 5),
            record(EntryKind::Issued, 5, Some(1), "fra-1"),
        ),
        (
            license(10, 1, "acme", 6),
            record(EntryKind::Issued, 6, Some(1), "fra-1"),
        ),
        (
            license(11, 9, "acme", 7),
            record(EntryKind::Issued, 7, Some(9), "fra-1"),
        ),
        (
            license(12, 1, "acme", 8),
            record(EntryKind::Issued, 8, Some(1), "fra-1"),
        ),
    ];
    let outcomes = ledger.insert_licenses(&batch).unwrap();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(outcomes[0].as_ref().unwrap(), &1);
    assert!(matches!(
        outcomes[1],
        Err(LedgerError::DuplicateToken { .. })
    ));
    assert!(matches!(outcomes[2], Err(LedgerError::UnknownChip { .. })));
    assert_eq!(outcomes[3].as_ref().unwrap(), &2);
    assert_eq!(ledger.audit_size().unwrap(), 3);
    assert!(ledger.license(&TokenId([12; 16])).unwrap().is_some());
    assert!(ledger.license(&TokenId([11; 16])).unwrap().is_none());
    assert_eq!(ledger.insert_licenses(&[]).unwrap().len(), 0);
}

fn result_row(byte: u8, chip: u8, site: &str, at: i64) -> ResultRecord {
    let signed = vec![byte; 40];
    ResultRecord {
        sha256: chipward_certs::keys::sha256(&signed),
        chip_id: Some(ChipId([chip; 32])),
        site_id: site.into(),
        tenant: "acme".into(),
        appraised_at: at,
        token_id: Some(TokenId([byte; 16])),
        signed,
    }
}

/// Results and the artefacts of entries are kept, and selected by chip or
/// site and time.
pub fn results_and_artefacts_are_kept_and_selected(ledger: &dyn Ledger) {
    for (byte, chip, site, at) in [
        (1, 1, "fra-1", 10),
        (2, 1, "sin-1", 20),
        (3, 2, "fra-1", 15),
    ] {
        let row = result_row(byte, chip, site, at);
        let entry =
            record(EntryKind::Appraised, at, Some(chip), site).with_artefact(row.signed.clone());
        ledger.record_result(&row, &entry).unwrap();
    }
    let chip1 = AuditSelection::Chip {
        chip_id: ChipId([1; 32]),
        from: 0,
        to: 15,
    };
    let got = ledger.results(&chip1, 10).unwrap();
    assert_eq!(got, vec![result_row(1, 1, "fra-1", 10)]);
    let fra = AuditSelection::Site {
        site_id: "fra-1".into(),
        from: 0,
        to: 100,
    };
    let got: Vec<i64> = ledger
        .results(&fra, 10)
        .unwrap()
        .iter()
        .map(|r| r.appraised_at)
        .collect();
    assert_eq!(got, [10, 15]);
    let indices: Vec<u64> = ledger
        .audit_select(&fra, 10)
        .unwrap()
        .iter()
        .map(|(i, _)| *i)
        .collect();
    assert_eq!(indices, [0, 2]);
    let row = result_row(2, 1, "sin-1", 20);
    assert_eq!(ledger.artefact(&row.sha256).unwrap(), Some(row.signed));
    assert_eq!(ledger.artefact(&[7; 32]).unwrap(), None);
}

/// A result is recorded once: again, it is refused and nothing is written.
pub fn a_result_is_recorded_once(ledger: &dyn Ledger) {
    let row = result_row(4, 3, "dub-1", 30);
    let entry =
        || record(EntryKind::Appraised, 30, Some(3), "dub-1").with_artefact(row.signed.clone());
    assert_eq!(ledger.record_result(&row, &entry()).unwrap(), 0);
    let again = ledger.record_result(&row, &entry()).unwrap_err();
    assert!(matches!(again, LedgerError::AlreadyRecorded), "{again:?}");
    assert_eq!(ledger.audit_size().unwrap(), 1);
    let chip3 = AuditSelection::Chip {
        chip_id: ChipId([3; 32]),
        from: 0,
        to: 100,
    };
    assert_eq!(ledger.results(&chip3, 10).unwrap(), vec![row.clone()]);
    // The log goes on after the refusal.
    let other = result_row(5, 3, "dub-1", 31);
    let entry =
        record(EntryKind::Appraised, 31, Some(3), "dub-1").with_artefact(other.signed.clone());
    assert_eq!(ledger.record_result(&other, &entry).unwrap(), 1);
}

/// One tree head per size, oldest first.
pub fn tree_heads_are_kept_once_per_size(ledger: &dyn Ledger) {
    let head = |size: u64, ts: i64| StoredTreeHead {
        size,
        root: [size as u8; 32],
        timestamp: ts,
        signed: vec![size as u8, ts as u8],
    };
    ledger.store_tree_head(&head(5, 1)).unwrap();
    ledger.store_tree_head(&head(2, 2)).unwrap();
    ledger.store_tree_head(&head(5, 3)).unwrap();
    assert_eq!(
        ledger.tree_heads(0, 10).unwrap(),
        vec![head(2, 2), head(5, 1)]
    );
    assert_eq!(ledger.tree_heads(3, 10).unwrap(), vec![head(5, 1)]);
}

/// Deletion waits out retention and every hold that covers the records.
pub fn retention_and_holds_guard_deletion(ledger: &dyn Ledger) {
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    // A lineage of two, the newer expiring last, at 50 + 86,400.
    ledger
        .insert_license(&license(10, 1, "acme", 5), &note())
        .unwrap();
    let mut next = license(11, 1, "acme", 50);
    next.renewed_from = Some(TokenId([10; 16]));
    ledger.renew(&TokenId([10; 16]), &next, &note()).unwrap();
    let ended = 50 + 86_400;
    let retention = 1_000;
    let purge = |now| ledger.purge_lineage(&TokenId([10; 16]), now, retention, &note());

    let err = purge(ended + retention - 1).unwrap_err();
    assert!(
        matches!(err, LedgerError::Retained { until, .. } if until == ended + retention),
        "{err:?}"
    );

    let hold = LegalHold {
        id: 0,
        chip_id: None,
        tenant: Some("acme".into()),
        reason: "subpoena 17".into(),
        placed_at: 9,
    };
    let id = ledger.place_hold(&hold, &note()).unwrap();
    assert_eq!(ledger.holds().unwrap(), vec![LegalHold { id, ..hold }]);
    let err = purge(ended + retention).unwrap_err();
    assert!(
        matches!(&err, LedgerError::Held { id: held, reason, .. } if *held == id && reason == "subpoena 17"),
        "{err:?}"
    );
    assert!(ledger.license(&TokenId([10; 16])).unwrap().is_some());

    ledger.lift_hold(id, 10, &note()).unwrap();
    assert!(matches!(
        ledger.lift_hold(id, 11, &note()),
        Err(LedgerError::NoSuchHold { .. })
    ));
    assert!(ledger.holds().unwrap().is_empty());
    let before = ledger.audit_size().unwrap();
    assert_eq!(purge(ended + retention).unwrap(), 2);
    assert!(ledger.license(&TokenId([10; 16])).unwrap().is_none());
    assert!(ledger.license(&TokenId([11; 16])).unwrap().is_none());
    // The log keeps everything and gains the purge.
    assert_eq!(ledger.audit_size().unwrap(), before + 1);
}
