//! The offline auditor's check of an [`AuditExport`]: needs the issuer's
//! public keys, optionally a tree head the auditor kept from before, and
//! nothing else. Every byte of the export is attacker-controlled.
//!
//! Checks, in order:
//! 1. The export has the format and the parts its scope requires.
//! 2. The current tree head is signed by a trusted key and names the log.
//! 3. Entries: a full export's entries rebuild the signed root exactly; a
//!    part export's entries each have an inclusion proof under it. Only
//!    then are entries decoded.
//! 4. Each earlier head in the export, and the auditor's trusted head, is
//!    signed, names the log, is not larger than the current head, and is
//!    consistent with it: equal roots at equal sizes, and otherwise the
//!    prefix root (full) or a consistency proof (part) must hold.
//! 5. Every artifact's SHA-256 is a digest of some included entry.
//!
//! When a full export fails step 3, its leaf hash list, if it rebuilds the
//! signed root, locates the first difference and the error names it
//! (deleted, inserted, reordered or altered entry). That naming explains the
//! difference in the simplest way; the failure itself is certain either way.
//!
//! Limitation: tree head timestamps are reported, not checked; an earlier
//! head with a later timestamp than the current one is not refused.

use std::collections::BTreeMap;
use std::fmt;

use thiserror::Error;

use super::entry::{AuditEntry, EntryError};
use super::export::{AuditExport, Base64Hash, ConsistencyPath, ExportError, Scope};
use super::memory::MemoryTree;
use super::merkle::{self, Hash, ProofError};
use super::tree_head::{self, TreeHead, TreeHeadError, VerifiedTreeHead};
use crate::cose::TrustedKeys;

/// Which tree head an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadRef {
    /// The export's `tree_head`.
    Current,
    /// `earlier_tree_heads[i]`.
    Earlier(usize),
    /// The head the auditor supplied.
    Trusted,
}

/// What a successful check established.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AuditReport {
    /// The log checked.
    pub log_id: String,
    /// Full prefix or selected entries.
    pub scope: Scope,
    /// The current head, signature checked.
    pub head: VerifiedTreeHead,
    /// Every entry in the export with its index, each proven to be in the log.
    pub entries: Vec<(u64, AuditEntry)>,
    /// Earlier heads from the export, each consistent with `head`.
    pub earlier_heads: Vec<TreeHead>,
    /// The auditor's head, consistent with `head`, if one was given.
    pub trusted_head: Option<TreeHead>,
    /// Names of the artifacts, each referenced by an included entry.
    pub artifacts: Vec<String>,
}

/// Why an export failed the check.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The export is not well-formed.
    #[error("malformed export")]
    Malformed(#[source] ExportError),
    /// A tree head does not open under the trusted keys.
    #[error("{head} tree head refused")]
    HeadSignature {
        /// Which head.
        head: HeadRef,
        /// Why.
        #[source]
        source: TreeHeadError,
    },
    /// A tree head names another log.
    #[error("{head} tree head is for log {found:?}, not {expected:?}")]
    LogIdMismatch {
        /// Which head.
        head: HeadRef,
        /// The log the export names.
        expected: String,
        /// The log the head names.
        found: String,
    },
    /// A full export holds more or fewer entries than the head signs.
    #[error("the tree head covers {head_size} entries, the export holds {entries}")]
    SizeMismatch {
        /// The head's size.
        head_size: u64,
        /// Entries in the export.
        entries: usize,
    },
    /// The entry at `index` is not the one the log holds there.
    #[error("entry {index} was altered")]
    EntryAltered {
        /// The index.
        index: u64,
        /// For a part export, how its inclusion proof failed.
        #[source]
        source: Option<ProofError>,
    },
    /// The log's entry at `index` is missing; later entries moved up.
    #[error("entry {index} was deleted")]
    EntryDeleted {
        /// The index.
        index: u64,
    },
    /// An entry that the log does not hold sits at `index`.
    #[error("an entry was inserted at {index}")]
    EntryInserted {
        /// The index.
        index: u64,
    },
    /// Entries at `first` and `second` are out of their logged order.
    #[error("entries {first} and {second} are out of order")]
    EntriesReordered {
        /// The first position out of order.
        first: u64,
        /// The entry found there belongs here.
        second: u64,
    },
    /// Neither the entries nor the leaf hash list rebuild the signed root,
    /// so no difference can be located.
    #[error("entries do not rebuild the root of the {size}-entry tree head")]
    RootMismatch {
        /// The head's size.
        size: u64,
    },
    /// A part export entry's index is not below the head's size.
    #[error("entry index {index} is beyond the tree head's size {size}")]
    IndexBeyondHead {
        /// The index.
        index: u64,
        /// The head's size.
        size: u64,
    },
    /// A proven entry does not decode; the log itself holds a bad entry.
    #[error("entry {index} is in the log but does not decode")]
    EntryUndecodable {
        /// The index.
        index: u64,
        /// Why.
        #[source]
        source: EntryError,
    },
    /// Two signed heads of one size with different roots: the log forked.
    #[error("{head} tree head and the current one both have size {size} but different roots")]
    ConflictingHeads {
        /// Which head.
        head: HeadRef,
        /// The size.
        size: u64,
    },
    /// A head that should be older is larger than the current head.
    #[error("{head} tree head has size {size}, larger than the current {current_size}")]
    HeadsOutOfOrder {
        /// Which head.
        head: HeadRef,
        /// Its size.
        size: u64,
        /// The current head's size.
        current_size: u64,
    },
    /// An earlier head's tree is not a prefix of the current one.
    #[error("{head} tree head of size {old_size} is not a prefix of size {new_size}")]
    InconsistentHeads {
        /// Which head.
        head: HeadRef,
        /// Its size.
        old_size: u64,
        /// The current size.
        new_size: u64,
        /// For a part export, how the consistency proof failed.
        #[source]
        source: Option<ProofError>,
    },
    /// A part export lacks the consistency proof for a head.
    #[error("no consistency proof from size {from_size} for the {head} tree head")]
    MissingConsistencyProof {
        /// Which head.
        head: HeadRef,
        /// Its size.
        from_size: u64,
    },
    /// An artifact whose digest no included entry names.
    #[error("artifact {name:?} (sha-256 {sha256}) is not named by any included entry")]
    ArtifactNotReferenced {
        /// The artifact's name.
        name: String,
        /// Its SHA-256, lowercase hex.
        sha256: String,
    },
}

/// Parses and checks an export given as JSON bytes.
///
/// `trusted_head` is a signed tree head the auditor kept from before.
pub fn check_json(
    json: &[u8],
    keys: &TrustedKeys,
    trusted_head: Option<&[u8]>,
) -> Result<AuditReport, AuditError> {
    let export = AuditExport::from_json(json).map_err(AuditError::Malformed)?;
    check(&export, keys, trusted_head)
}

/// Checks a parsed export; see the module notes for the steps.
///
/// ```
/// use chipward_proto::audit::{AuditEntry, AuditExport, EntryKind, MemoryTree, TreeHead, check};
/// use chipward_proto::cose::TrustedKeys;
/// use ring::signature::{Ed25519KeyPair, KeyPair};
///
/// let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
/// let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
/// let public: [u8; 32] = key.public_key().as_ref().try_into().unwrap();
///
/// // The issuer's side: append entries, sign a head, export.
/// let mut tree = MemoryTree::new();
/// let entries: Vec<Vec<u8>> = (0..3)
///     .map(|i| AuditEntry::new(1_700_000_000 + i, EntryKind::Issued).encode())
///     .collect::<Result<_, _>>()?;
/// for e in &entries {
///     tree.push(e);
/// }
/// let head = TreeHead { log_id: "log-1".into(), size: 3, root: tree.root(), timestamp: 0 };
/// let signed = head.sign("k1", |m| key.sign(m).as_ref().to_vec())?;
/// let export = AuditExport::full(signed, entries, vec![]).expect("sizes agree");
///
/// // The auditor's side: only the public key.
/// let report = check(&export, &TrustedKeys::new().with("k1", public), None)?;
/// assert_eq!(report.entries.len(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn check(
    export: &AuditExport,
    keys: &TrustedKeys,
    trusted_head: Option<&[u8]>,
) -> Result<AuditReport, AuditError> {
    // 1. Shape.
    export.check_shape().map_err(AuditError::Malformed)?;

    // 2. The current head.
    let head = open_head(&export.tree_head.0, HeadRef::Current, keys, &export.log_id)?;
    let current = head.head();

    // 3. Entries, authenticated before they are decoded.
    let tree = match export.scope {
        Scope::Full => Some(check_full(export, current)?),
        Scope::Part => {
            check_part(export, current)?;
            None
        }
    };
    let entries = decode_entries(export)?;

    // 4. Earlier heads and the auditor's head.
    let relate = |bytes: &[u8], which| -> Result<TreeHead, AuditError> {
        let other = open_head(bytes, which, keys, &export.log_id)?
            .head()
            .clone();
        relate_heads(
            which,
            &other,
            current,
            tree.as_ref(),
            &export.proofs.consistency,
        )?;
        Ok(other)
    };
    let earlier_heads = (export.earlier_tree_heads.iter().enumerate())
        .map(|(i, b)| relate(&b.0, HeadRef::Earlier(i)))
        .collect::<Result<Vec<_>, _>>()?;
    let trusted_head = trusted_head
        .map(|b| relate(b, HeadRef::Trusted))
        .transpose()?;

    // 5. Artifacts.
    for artifact in &export.artifacts {
        let digest = sha256(&artifact.data.0);
        if !entries.iter().any(|(_, e)| e.references(&digest)) {
            return Err(AuditError::ArtifactNotReferenced {
                name: artifact.name.chars().take(64).collect(),
                sha256: hex::encode(digest),
            });
        }
    }

    Ok(AuditReport {
        log_id: export.log_id.clone(),
        scope: export.scope,
        head,
        entries,
        earlier_heads,
        trusted_head,
        artifacts: export.artifacts.iter().map(|a| a.name.clone()).collect(),
    })
}

fn open_head(
    bytes: &[u8],
    which: HeadRef,
    keys: &TrustedKeys,
    log_id: &str,
) -> Result<VerifiedTreeHead, AuditError> {
    let head = tree_head::verify(bytes, keys).map_err(|source| AuditError::HeadSignature {
        head: which,
        source,
    })?;
    if head.head().log_id != log_id {
        return Err(AuditError::LogIdMismatch {
            head: which,
            expected: log_id.chars().take(128).collect(),
            found: head.head().log_id.clone(),
        });
    }
    Ok(head)
}

/// Rebuilds the tree from a full export's entries; on a mismatch, locates it.
fn check_full(export: &AuditExport, head: &TreeHead) -> Result<MemoryTree, AuditError> {
    let found: Vec<Hash> = (export.entries.iter())
        .map(|e| merkle::leaf_hash(&e.entry.0))
        .collect();
    let tree = MemoryTree::from_leaf_hashes(found.iter().copied());
    if tree.len() != head.size || tree.root() != head.root {
        let claimed: Vec<Hash> = export.proofs.leaf_hashes.iter().map(|h| h.0).collect();
        return Err(locate_difference(&found, &claimed, head));
    }

    // The entries are authentic; the list and labels beside them must agree.
    if !export.proofs.leaf_hashes.iter().map(|h| h.0).eq(found) {
        return Err(AuditError::Malformed(ExportError::LeafHashes));
    }
    if let Some((position, e)) =
        (export.entries.iter().enumerate()).find(|(p, e)| u64::try_from(*p).ok() != Some(e.index))
    {
        return Err(AuditError::Malformed(ExportError::IndexField {
            position,
            index: e.index,
        }));
    }
    Ok(tree)
}

/// Names the first difference between the entries found and the leaf
/// hashes the head signs, if the claimed list is those hashes.
fn locate_difference(found: &[Hash], claimed: &[Hash], head: &TreeHead) -> AuditError {
    let claimed_tree = MemoryTree::from_leaf_hashes(claimed.iter().copied());
    if claimed_tree.len() != head.size || claimed_tree.root() != head.root {
        return AuditError::RootMismatch { size: head.size };
    }
    let size_mismatch = AuditError::SizeMismatch {
        head_size: head.size,
        entries: found.len(),
    };
    let Some(p) = (0..found.len().min(claimed.len())).find(|&p| found[p] != claimed[p]) else {
        return size_mismatch;
    };

    // Where the entry found at p belongs, and where the log's entry p went.
    let belongs = claimed[p..]
        .iter()
        .position(|c| *c == found[p])
        .map(|i| i + p);
    let went = found[p..]
        .iter()
        .position(|f| *f == claimed[p])
        .map(|i| i + p);
    let at = |i: usize| i as u64;
    match (belongs, went) {
        (Some(q), Some(r)) if q == r => AuditError::EntriesReordered {
            first: at(p),
            second: at(q),
        },
        (Some(_), None) => AuditError::EntryDeleted { index: at(p) },
        (None, Some(_)) => AuditError::EntryInserted { index: at(p) },
        (Some(q), Some(_)) => AuditError::EntriesReordered {
            first: at(p),
            second: at(q),
        },
        (None, None) => AuditError::EntryAltered {
            index: at(p),
            source: None,
        },
    }
}

/// Checks each entry of a part export against its inclusion proof.
fn check_part(export: &AuditExport, head: &TreeHead) -> Result<(), AuditError> {
    let paths: BTreeMap<u64, &[Base64Hash]> = (export.proofs.inclusion.iter())
        .map(|p| (p.index, p.path.as_slice()))
        .collect();
    let mut previous: Option<u64> = None;
    for e in &export.entries {
        let index = e.index;
        if index >= head.size {
            return Err(AuditError::IndexBeyondHead {
                index,
                size: head.size,
            });
        }
        match previous {
            Some(p) if p == index => return Err(AuditError::EntryInserted { index }),
            Some(p) if p > index => {
                return Err(AuditError::EntriesReordered {
                    first: p,
                    second: index,
                });
            }
            _ => {}
        }
        let path: Vec<Hash> = (paths.get(&index).copied().unwrap_or_default().iter())
            .map(|h| h.0)
            .collect();
        let leaf = merkle::leaf_hash(&e.entry.0);
        merkle::verify_inclusion(&leaf, index, head.size, &path, &head.root).map_err(|err| {
            AuditError::EntryAltered {
                index,
                source: Some(err),
            }
        })?;
        previous = Some(index);
    }
    Ok(())
}

fn decode_entries(export: &AuditExport) -> Result<Vec<(u64, AuditEntry)>, AuditError> {
    (export.entries.iter())
        .map(|e| {
            AuditEntry::decode(&e.entry.0)
                .map(|entry| (e.index, entry))
                .map_err(|source| AuditError::EntryUndecodable {
                    index: e.index,
                    source,
                })
        })
        .collect()
}

/// Checks that `other` is the current head or an ancestor of it.
fn relate_heads(
    which: HeadRef,
    other: &TreeHead,
    current: &TreeHead,
    tree: Option<&MemoryTree>,
    proofs: &[ConsistencyPath],
) -> Result<(), AuditError> {
    if other.size > current.size {
        return Err(AuditError::HeadsOutOfOrder {
            head: which,
            size: other.size,
            current_size: current.size,
        });
    }
    if other.size == current.size {
        return match other.root == current.root {
            true => Ok(()),
            false => Err(AuditError::ConflictingHeads {
                head: which,
                size: other.size,
            }),
        };
    }
    let inconsistent = |source| AuditError::InconsistentHeads {
        head: which,
        old_size: other.size,
        new_size: current.size,
        source,
    };

    // Full: the entries are authentic, so the prefix root is known exactly.
    if let Some(tree) = tree {
        let prefix = merkle::root(tree, other.size)
            .expect("a full export's tree holds every node below its size");
        return match prefix == other.root {
            true => Ok(()),
            false => Err(inconsistent(None)),
        };
    }

    // Part: a consistency proof must link the two (none needed from 0).
    let path: Vec<Hash> = match proofs.iter().find(|p| p.from_size == other.size) {
        Some(p) => p.path.iter().map(|h| h.0).collect(),
        None if other.size == 0 => Vec::new(),
        None => {
            return Err(AuditError::MissingConsistencyProof {
                head: which,
                from_size: other.size,
            });
        }
    };
    merkle::verify_consistency(other.size, current.size, &other.root, &current.root, &path)
        .map_err(|e| inconsistent(Some(e)))
}

fn sha256(data: &[u8]) -> Hash {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref());
    out
}

impl fmt::Display for HeadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Current => f.write_str("current"),
            Self::Earlier(i) => write!(f, "earlier #{i}"),
            Self::Trusted => f.write_str("trusted"),
        }
    }
}

#[cfg(test)]
mod tests;
