//! The audit log when two ledgers on one database, as two issuer processes
//! would, append to it from many threads at once: it must stay one log.
//! Indices are dense, every acknowledged entry is stored at the index its
//! call was told, and the stored subtree hashes are exactly those of a tree
//! built apart from the ledger (`MemoryTree`) from the stored entries.

use chipward_issuer::ledger::conformance::{chip, license};
use chipward_issuer::ledger::{AuditRecord, Ledger, LedgerError, LicenseRecord};
use chipward_proto::audit::{self, AuditEntry, EntryKind, MemoryTree, NodeSource};
use chipward_proto::{ChipId, TokenId};
use chipward_tests::postgres::Database;

use super::concurrency::{THREADS, race, two_ledgers};

/// Rounds each racer runs.
const ROUNDS: u8 = 10;

/// Entries each racer's rounds add, counted from the plan in [`racer`]:
/// one issue per round, two screenings in rounds 1, 4 and 7, a revocation
/// in rounds 2, 5 and 8, and one accepted batch item in rounds 4 and 9.
const ENTRIES_PER_RACER: usize = 10 + 3 * 2 + 3 + 2;

/// The ledger's subtree hashes as a proof source.
struct Nodes<'a>(&'a dyn Ledger);

impl NodeSource for Nodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<audit::Hash, LedgerError> {
        self.0.audit_node(level, index)
    }
}

/// An entry no other call logs: its detail names the racer, the round and
/// what it was for.
fn record(kind: EntryKind, racer: usize, round: u8, what: &str) -> AuditRecord {
    let mut entry = AuditEntry::new(1_000 + i64::from(round), kind);
    entry.chip_id = Some(ChipId([1; 32]));
    entry.site_id = format!("site-{racer}");
    entry.detail = format!("racer {racer} round {round} {what}");
    AuditRecord::new(entry)
}

fn encoded(record: &AuditRecord) -> Vec<u8> {
    record.entry.encode().unwrap()
}

/// Token id of racer `racer`'s license `n`.
fn token(racer: usize, n: u8) -> TokenId {
    let mut id = [0x3c; 16];
    id[0] = u8::try_from(racer).unwrap();
    id[1] = n;
    TokenId(id)
}

fn licensed(token_id: TokenId) -> LicenseRecord {
    let mut l = license(0, 1, "acme", 100);
    l.token_id = token_id;
    l
}

/// What a call acknowledged: the entry's bytes, and its index when the
/// call returns one (a revocation does not).
type Ack = (Option<u64>, Vec<u8>);

/// One racer's calls, mixing every kind of append; returns what each
/// acknowledged.
fn racer(ledger: &dyn Ledger, racer: usize) -> Vec<Ack> {
    let mut acks = Vec::new();
    for round in 0..ROUNDS {
        let issued = record(EntryKind::Issued, racer, round, "issued");
        let index = ledger
            .insert_license(&licensed(token(racer, round)), &issued)
            .unwrap();
        acks.push((Some(index), encoded(&issued)));

        if round % 3 == 1 {
            let screened = [
                record(EntryKind::Screened, racer, round, "screened a"),
                record(EntryKind::Screened, racer, round, "screened b"),
            ];
            let first = ledger.append_audit(&screened).unwrap();
            acks.push((Some(first), encoded(&screened[0])));
            acks.push((Some(first + 1), encoded(&screened[1])));
        }
        if round % 3 == 2 {
            let revoked = record(EntryKind::Revoked, racer, round, "revoked");
            let done = ledger
                .revoke(&token(racer, round - 1), "racing", 5, &revoked)
                .unwrap();
            assert_eq!(done.newly_revoked, 1);
            acks.push((None, encoded(&revoked)));
        }
        if round % 5 == 4 {
            // A new token, then one this racer already holds.
            let fresh = record(EntryKind::Issued, racer, round, "batch fresh");
            let taken = record(EntryKind::Issued, racer, round, "batch taken");
            let batch = [
                (licensed(token(racer, 100 + round)), fresh.clone()),
                (licensed(token(racer, round)), taken),
            ];
            let outcomes = ledger.insert_licenses(&batch).unwrap();
            let index = *outcomes[0].as_ref().unwrap();
            assert!(
                matches!(outcomes[1], Err(LedgerError::DuplicateToken { .. })),
                "{outcomes:?}"
            );
            acks.push((Some(index), encoded(&fresh)));
        }
    }
    acks
}

#[test]
fn two_issuers_appending_at_once_keep_one_dense_consistent_log() {
    let (db, ledgers) = two_ledgers();
    let enrolled = record(EntryKind::ChipEnrolled, 99, 0, "enrolled");
    assert!(ledgers[0].enrol_chip(&chip(1), &enrolled).unwrap());
    let mut acks = vec![(Some(0), encoded(&enrolled))];
    acks.extend(race(&ledgers, racer).into_iter().flatten());

    // 1. The size is what the plan adds up to, and indices are 0..size.
    let size = 1 + 2 * THREADS * ENTRIES_PER_RACER;
    assert_eq!(acks.len(), size);
    for ledger in &ledgers {
        assert_eq!(ledger.audit_size().unwrap(), size as u64);
    }
    // With idx the primary key, size rows from 0 to size - 1 are all of them.
    let stored = [
        "SELECT count(*) FROM audit_entries",
        "SELECT min(idx) FROM audit_entries",
        "SELECT max(idx) FROM audit_entries",
    ]
    .map(|sql| db.query_i64(sql));
    assert_eq!(stored, [size as i64, 0, size as i64 - 1]);

    // 2. Every acknowledged entry is stored, once, where its call said.
    let entries = ledgers[1].audit_entries(0, size + 10).unwrap();
    assert_eq!(entries.len(), size);
    for (index, bytes) in &acks {
        let at: Vec<usize> = (0..size).filter(|&i| entries[i] == *bytes).collect();
        assert_eq!(at.len(), 1, "{:?}", AuditEntry::decode(bytes));
        if let Some(index) = index {
            assert_eq!(at[0] as u64, *index, "{:?}", AuditEntry::decode(bytes));
        }
    }

    // 3. The stored nodes are those of an independent tree over the stored
    //    entries, and so is every root.
    let mut memory = MemoryTree::new();
    for e in &entries {
        memory.push(e);
    }
    assert_same_nodes(&db, &memory);
    for ledger in &ledgers {
        for n in 1..=size as u64 {
            let root = audit::root(&Nodes(ledger), n).unwrap();
            assert_eq!(root, audit::root(&memory, n).unwrap(), "size {n}");
        }
    }

    // The revocation list is whole too: one version per revoking call.
    let (seq, revoked) = ledgers[0].revocations().unwrap();
    assert_eq!((seq, revoked.len()), (24, 24));
}

/// Every row of `audit_nodes` equals the memory tree's node, and the table
/// holds each perfect subtree once: floor(size / 2^level) per level.
fn assert_same_nodes(db: &Database<'_>, memory: &MemoryTree) {
    let mut client = ::postgres::Client::connect(&db.url(), ::postgres::NoTls).unwrap();
    let rows = client
        .query("SELECT level, idx, hash FROM audit_nodes", &[])
        .unwrap();
    let size = memory.len();
    let expected: u64 = (0..64).map(|level| size >> level).sum();
    assert_eq!(rows.len() as u64, expected);
    for row in rows {
        let (level, index): (i32, i64) = (row.get(0), row.get(1));
        let hash: Vec<u8> = row.get(2);
        let (level, index) = (u32::try_from(level).unwrap(), u64::try_from(index).unwrap());
        let want = memory.node(level, index).unwrap();
        assert_eq!(hash, want, "node {level}/{index}");
    }
}
