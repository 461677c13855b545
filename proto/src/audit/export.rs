//! The audit export: a JSON document an auditor checks with no server, only
//! the issuer's public key (see [`super::offline`]). Bytes are base64
//! (RFC 4648, standard alphabet, padded).
//!
//! ```json
//! {
//!   "format": "chipward-audit-export/1",
//!   "log_id": "...",
//!   "scope": "full" | "part",
//!   "tree_head": "<signed tree head>",
//!   "earlier_tree_heads": ["<signed tree head>", ...],
//!   "entries": [{"index": 0, "entry": "<cbor entry>"}, ...],
//!   "proofs": {
//!     "leaf_hashes": ["<hash>", ...],
//!     "inclusion": [{"index": 0, "path": ["<hash>", ...]}, ...],
//!     "consistency": [{"from_size": 5, "path": ["<hash>", ...]}, ...]
//!   },
//!   "artifacts": [{"name": "license", "data": "<bytes>"}, ...]
//! }
//! ```
//!
//! A `full` export holds every entry of the log prefix `[0, size)` that the
//! tree head signs; the checker recomputes the root (and every earlier
//! head's root) from them. `leaf_hashes` lists each entry's leaf hash: when
//! the entries do not give the signed root but these hashes do, they show
//! which entry changed. A full export carries no inclusion or consistency
//! proofs.
//!
//! A `part` export holds selected entries, each with an inclusion proof
//! against the tree head, and a consistency proof from each earlier size
//! to the head's size. This is the evidence bundle for one chip or site.
//!
//! Either may attach opaque artifacts (license tokens, attestation results);
//! each must have its SHA-256 among the digests of an included entry.
//!
//! The whole document is attacker-controlled: parsing is strict (unknown
//! fields, malformed base64 and wrong hash lengths are refused) and bounded
//! by [`MAX_EXPORT_LEN`].

use std::collections::BTreeSet;
use std::convert::Infallible;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use super::merkle::{self, Hash, NodeSource, ProveError};
use super::tree_head::{self, TreeHeadError};

/// The format name of this version of the export.
pub const EXPORT_FORMAT: &str = "chipward-audit-export/1";
/// The largest export accepted, in bytes.
// Limitation: an export is read whole into memory, so a full export of a
// log much larger than this must be checked in parts.
pub const MAX_EXPORT_LEN: usize = 512 * 1024 * 1024;

/// Which entries an export holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Every entry of the prefix the tree head signs.
    Full,
    /// Selected entries, each with an inclusion proof.
    Part,
}

/// An export as it appears in JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditExport {
    /// Always [`EXPORT_FORMAT`].
    pub format: String,
    /// The log the tree heads must name.
    pub log_id: String,
    /// Full prefix or selected entries.
    pub scope: Scope,
    /// The signed tree head the export is checked against.
    pub tree_head: Base64Bytes,
    /// Older signed heads of the same log, each consistent with `tree_head`.
    pub earlier_tree_heads: Vec<Base64Bytes>,
    /// Encoded entries with their indices, ascending.
    pub entries: Vec<ExportedEntry>,
    /// Hashes and proofs, by scope.
    pub proofs: ExportProofs,
    /// Opaque objects named by digest in included entries.
    pub artifacts: Vec<Artifact>,
}

/// One entry and its position in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedEntry {
    /// Position in the log, from 0.
    pub index: u64,
    /// The encoded entry (the leaf data).
    pub entry: Base64Bytes,
}

/// The hashes and proofs an export carries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportProofs {
    /// Full scope: the leaf hash of every entry, in order.
    pub leaf_hashes: Vec<Base64Hash>,
    /// Part scope: one inclusion proof per entry.
    pub inclusion: Vec<InclusionPath>,
    /// Part scope: consistency proofs from earlier sizes to the head's.
    pub consistency: Vec<ConsistencyPath>,
}

/// An inclusion proof for the entry at `index`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionPath {
    /// The entry's index.
    pub index: u64,
    /// The audit path, leaf sibling first.
    pub path: Vec<Base64Hash>,
}

/// A consistency proof from the tree of `from_size` entries to the head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyPath {
    /// The earlier size.
    pub from_size: u64,
    /// The proof, as RFC 9162 section 2.1.4.1 orders it.
    pub path: Vec<Base64Hash>,
}

/// An attached object, such as a license token or an attestation result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Artifact {
    /// What it is, for a reader.
    pub name: String,
    /// Its bytes.
    pub data: Base64Bytes,
}

/// Bytes written as base64 text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Base64Bytes(pub Vec<u8>);

/// A 32-byte hash written as base64 text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Base64Hash(pub Hash);

/// Why an export is malformed, before any signature or proof is checked.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ExportError {
    /// Larger than [`MAX_EXPORT_LEN`].
    #[error("export of {len} bytes exceeds the {max}-byte limit")]
    TooLarge {
        /// Bytes.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not JSON of the export's shape.
    #[error("export is not valid json of the expected shape")]
    Json(#[source] serde_json::Error),
    /// Another format or version.
    #[error("format {found:?} is not {EXPORT_FORMAT}")]
    Format {
        /// The format named (first 64 characters).
        found: String,
    },
    /// Proofs that this scope does not use.
    #[error("a {scope:?} export carries {what}")]
    UnexpectedProofs {
        /// The export's scope.
        scope: Scope,
        /// Which proofs.
        what: &'static str,
    },
    /// An entry of a part export has no inclusion proof.
    #[error("entry {index} has no inclusion proof")]
    MissingInclusionProof {
        /// The entry's index.
        index: u64,
    },
    /// Two inclusion proofs for one index.
    #[error("two inclusion proofs for index {index}")]
    DuplicateInclusionProof {
        /// The index.
        index: u64,
    },
    /// An inclusion proof for an index with no entry.
    #[error("inclusion proof for index {index}, which has no entry")]
    UnusedInclusionProof {
        /// The index.
        index: u64,
    },
    /// Two consistency proofs from one size.
    #[error("two consistency proofs from size {from_size}")]
    DuplicateConsistencyProof {
        /// The size.
        from_size: u64,
    },
    /// In a full export, the leaf hash list does not match the entries.
    #[error("leaf hash list does not match the entries")]
    LeafHashes,
    /// In a full export, an entry's index is not its position.
    #[error("entry at position {position} is labelled index {index}")]
    IndexField {
        /// Position in the entry list.
        position: usize,
        /// Index it claims.
        index: u64,
    },
}

/// Why an export could not be built.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BuildError<E: std::error::Error + 'static> {
    /// A signed tree head given to the builder does not decode.
    #[error("tree head does not decode")]
    Head(#[source] TreeHeadError),
    /// A full export's entries are not exactly the head's size.
    #[error("the tree head covers {head_size} entries, {entries} were given")]
    SizeMismatch {
        /// The head's size.
        head_size: u64,
        /// Entries given.
        entries: usize,
    },
    /// Two entries of a part export with one index.
    #[error("two entries with index {index}")]
    DuplicateIndex {
        /// The index.
        index: u64,
    },
    /// Consistency proofs belong to part exports only.
    #[error("full exports carry no consistency proofs")]
    FullScope,
    /// A proof could not be produced.
    #[error("producing a proof failed")]
    Prove(#[source] ProveError<E>),
}

impl AuditExport {
    /// A full export of the prefix `signed_head` covers: `entries` must be
    /// every encoded entry from index 0 up to the head's size.
    pub fn full(
        signed_head: Vec<u8>,
        entries: Vec<Vec<u8>>,
        earlier_heads: Vec<Vec<u8>>,
    ) -> Result<Self, BuildError<Infallible>> {
        let head = tree_head::decode_unverified(&signed_head).map_err(BuildError::Head)?;
        if entries.len() as u64 != head.size {
            return Err(BuildError::SizeMismatch {
                head_size: head.size,
                entries: entries.len(),
            });
        }
        let leaf_hashes = entries
            .iter()
            .map(|e| Base64Hash(merkle::leaf_hash(e)))
            .collect();
        let entries = entries
            .into_iter()
            .zip(0u64..)
            .map(|(e, index)| ExportedEntry {
                index,
                entry: Base64Bytes(e),
            })
            .collect();
        Ok(Self {
            proofs: ExportProofs {
                leaf_hashes,
                ..ExportProofs::default()
            },
            ..Self::empty(
                Scope::Full,
                head.log_id,
                signed_head,
                earlier_heads,
                entries,
            )
        })
    }

    /// A part export of selected `(index, encoded entry)` pairs, with
    /// inclusion proofs against `signed_head` and consistency proofs from
    /// each earlier head, all read from `src`.
    pub fn part<S: NodeSource>(
        src: &S,
        signed_head: Vec<u8>,
        mut entries: Vec<(u64, Vec<u8>)>,
        earlier_heads: Vec<Vec<u8>>,
    ) -> Result<Self, BuildError<S::Error>> {
        let head = tree_head::decode_unverified(&signed_head).map_err(BuildError::Head)?;
        entries.sort_by_key(|(index, _)| *index);
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BuildError::DuplicateIndex { index: w[0].0 });
        }

        let mut inclusion = Vec::with_capacity(entries.len());
        for (index, _) in &entries {
            let path =
                merkle::inclusion_proof(src, *index, head.size).map_err(BuildError::Prove)?;
            inclusion.push(InclusionPath {
                index: *index,
                path: path.into_iter().map(Base64Hash).collect(),
            });
        }
        let entries = entries
            .into_iter()
            .map(|(index, e)| ExportedEntry {
                index,
                entry: Base64Bytes(e),
            })
            .collect();
        let mut export = Self {
            proofs: ExportProofs {
                inclusion,
                ..ExportProofs::default()
            },
            ..Self::empty(Scope::Part, head.log_id, signed_head, Vec::new(), entries)
        };
        for earlier in earlier_heads {
            let size = tree_head::decode_unverified(&earlier)
                .map_err(BuildError::Head)?
                .size;
            export.add_consistency_from(src, size)?;
            export.earlier_tree_heads.push(Base64Bytes(earlier));
        }
        Ok(export)
    }

    /// Adds a consistency proof from `from_size` to a part export, for an
    /// auditor who holds a head of that size. Sizes of 0 and of the head's
    /// own size need none and add nothing.
    pub fn add_consistency_from<S: NodeSource>(
        &mut self,
        src: &S,
        from_size: u64,
    ) -> Result<(), BuildError<S::Error>> {
        if self.scope == Scope::Full {
            return Err(BuildError::FullScope);
        }
        let head = tree_head::decode_unverified(&self.tree_head.0).map_err(BuildError::Head)?;
        let path =
            merkle::consistency_proof(src, from_size, head.size).map_err(BuildError::Prove)?;
        let known = self
            .proofs
            .consistency
            .iter()
            .any(|c| c.from_size == from_size);
        if from_size != 0 && from_size != head.size && !known {
            self.proofs.consistency.push(ConsistencyPath {
                from_size,
                path: path.into_iter().map(Base64Hash).collect(),
            });
        }
        Ok(())
    }

    /// Attaches an opaque artifact.
    pub fn add_artifact(&mut self, name: impl Into<String>, data: Vec<u8>) {
        self.artifacts.push(Artifact {
            name: name.into(),
            data: Base64Bytes(data),
        });
    }

    /// The export as indented JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an export always serialises to json")
    }

    /// Parses an export, refusing unknown fields and malformed bytes.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ExportError> {
        Self::from_json_bounded(bytes, MAX_EXPORT_LEN)
    }

    pub(super) fn from_json_bounded(bytes: &[u8], max: usize) -> Result<Self, ExportError> {
        if bytes.len() > max {
            return Err(ExportError::TooLarge {
                len: bytes.len(),
                max,
            });
        }
        serde_json::from_slice(bytes).map_err(ExportError::Json)
    }

    /// Checks that the parts present fit the format and scope; signatures
    /// and proofs are the checker's job.
    pub fn check_shape(&self) -> Result<(), ExportError> {
        if self.format != EXPORT_FORMAT {
            return Err(ExportError::Format {
                found: self.format.chars().take(64).collect(),
            });
        }
        let unexpected = |what| ExportError::UnexpectedProofs {
            scope: self.scope,
            what,
        };
        match self.scope {
            Scope::Full if !self.proofs.inclusion.is_empty() => Err(unexpected("inclusion proofs")),
            Scope::Full if !self.proofs.consistency.is_empty() => {
                Err(unexpected("consistency proofs"))
            }
            Scope::Full => Ok(()),
            Scope::Part if !self.proofs.leaf_hashes.is_empty() => Err(unexpected("leaf hashes")),
            Scope::Part => self.check_part_proofs(),
        }
    }

    fn check_part_proofs(&self) -> Result<(), ExportError> {
        let mut proven = BTreeSet::new();
        for p in &self.proofs.inclusion {
            if !proven.insert(p.index) {
                return Err(ExportError::DuplicateInclusionProof { index: p.index });
            }
        }
        let indices: BTreeSet<u64> = self.entries.iter().map(|e| e.index).collect();
        if let Some(index) = indices.difference(&proven).next() {
            return Err(ExportError::MissingInclusionProof { index: *index });
        }
        if let Some(index) = proven.difference(&indices).next() {
            return Err(ExportError::UnusedInclusionProof { index: *index });
        }
        let mut sizes = BTreeSet::new();
        match self
            .proofs
            .consistency
            .iter()
            .find(|c| !sizes.insert(c.from_size))
        {
            Some(c) => Err(ExportError::DuplicateConsistencyProof {
                from_size: c.from_size,
            }),
            None => Ok(()),
        }
    }

    fn empty(
        scope: Scope,
        log_id: String,
        signed_head: Vec<u8>,
        earlier_heads: Vec<Vec<u8>>,
        entries: Vec<ExportedEntry>,
    ) -> Self {
        Self {
            format: EXPORT_FORMAT.into(),
            log_id,
            scope,
            tree_head: Base64Bytes(signed_head),
            earlier_tree_heads: earlier_heads.into_iter().map(Base64Bytes).collect(),
            entries,
            proofs: ExportProofs::default(),
            artifacts: Vec::new(),
        }
    }
}

impl Serialize for Base64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Self)
            .map_err(|_| serde::de::Error::custom("invalid base64"))
    }
}

impl Serialize for Base64Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for Base64Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = Base64Bytes::deserialize(d)?.0;
        let hash = Hash::try_from(bytes.as_slice())
            .map_err(|_| serde::de::Error::custom("a hash must be 32 bytes"))?;
        Ok(Self(hash))
    }
}

#[cfg(test)]
mod tests;
