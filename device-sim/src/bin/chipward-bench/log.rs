//! The audit log's append rate and proof cost, from a real SQLite ledger:
//! a log of `entries` entries is built in commits of [`BATCH`] (timed: the
//! append rate), then inclusion proofs for random entries are read from the
//! stored subtree hashes and verified (timed: the proof cost). The baseline
//! is raw SHA-256 over one encoded entry, in the same run.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::ensure;
use chipward_issuer::ledger::{AuditRecord, Ledger, LedgerError, SqliteLedger};
use chipward_proto::audit::{
    self, AuditEntry, EntryKind, NodeSource, inclusion_proof, verify_inclusion,
};
use chipward_proto::{ChipId, TokenId};

/// Entries per commit while building the log.
pub(crate) const BATCH: usize = 1_000;

/// What the log measurements found.
pub(crate) struct LogFigures {
    /// Entries appended per second while building.
    pub(crate) appends_per_s: f64,
    /// Inclusion proofs read and verified per second.
    pub(crate) proofs_per_s: f64,
    /// Raw SHA-256 of one encoded entry, per second.
    pub(crate) sha256_per_s: f64,
    /// Size of the log the proofs were read from.
    pub(crate) entries: u64,
}

struct Nodes<'a>(&'a SqliteLedger);

impl NodeSource for Nodes<'_> {
    type Error = LedgerError;

    fn node(&self, level: u32, index: u64) -> Result<audit::Hash, LedgerError> {
        self.0.audit_node(level, index)
    }
}

/// An entry shaped like an issuance record.
fn entry(n: u64) -> AuditRecord {
    let mut e = AuditEntry::new(1_800_000_000 + n as i64, EntryKind::Issued);
    let mut chip = [0u8; 32];
    chip[..8].copy_from_slice(&n.to_be_bytes());
    e.chip_id = Some(ChipId(chip));
    e.token_id = Some(TokenId([n as u8; 16]));
    e.tenant = "acme-ai".into();
    e.site_id = "fra-1".into();
    e.key_id = "issuer-token-key".into();
    e.digests.insert("license".into(), chip);
    e.digests.insert("policy".into(), [7; 32]);
    e.detail = "issued until 1800086400; tier allied (DE), classification 3A090.a".into();
    AuditRecord::new(e)
}

/// Builds the log in `path` and measures it for `span`.
pub(crate) fn measure(path: &Path, entries: u64, span: Duration) -> anyhow::Result<LogFigures> {
    let ledger = SqliteLedger::open(path)?;

    // 1. Appends, in commits of BATCH.
    let start = Instant::now();
    let mut written = 0u64;
    while written < entries {
        let n = (entries - written).min(BATCH as u64);
        let batch: Vec<AuditRecord> = (written..written + n).map(entry).collect();
        ledger.append_audit(&batch)?;
        written += n;
    }
    let appends_per_s = entries as f64 / start.elapsed().as_secs_f64();
    ensure!(ledger.audit_size()? == entries, "log holds the wrong count");

    // 2. Proofs of pseudo-random entries, each verified against the root.
    let root = audit::root(&Nodes(&ledger), entries)?;
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let (mut done, start) = (0u64, Instant::now());
    while start.elapsed() < span {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let index = x % entries;
        let path = inclusion_proof(&Nodes(&ledger), index, entries)?;
        let leaf = ledger.audit_node(0, index)?;
        verify_inclusion(&leaf, index, entries, &path, &root)?;
        done += 1;
    }
    let proofs_per_s = done as f64 / start.elapsed().as_secs_f64();

    // 3. The baseline: hashing one encoded entry.
    let bytes = entry(1).entry.encode()?;
    let (mut hashed, start) = (0u64, Instant::now());
    while start.elapsed() < span {
        black_box(chipward_certs::keys::sha256(black_box(&bytes)));
        hashed += 1;
    }
    let sha256_per_s = hashed as f64 / start.elapsed().as_secs_f64();

    Ok(LogFigures {
        appends_per_s,
        proofs_per_s,
        sha256_per_s,
        entries,
    })
}
