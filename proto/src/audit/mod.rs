//! The tamper-evident audit log, without storage: Merkle tree hashing and
//! proofs (RFC 9162), the log entry format, signed tree heads, and an
//! export that an auditor checks offline with nothing but the issuer's
//! public key.
//!
//! Everything that arrives from outside (entries, proofs, tree heads,
//! exports) is attacker-controlled and decoded strictly, with typed errors.
//! Keeping the log (a database table of entries and tree nodes) and serving
//! it belong to the issuer; this module only fixes the bytes and the checks.

mod cbor;
pub mod entry;
pub mod export;
mod memory;
pub mod merkle;
pub mod offline;
pub mod tree_head;

pub use cbor::CborError;
pub use entry::{
    AuditEntry, EntryError, EntryKind, MAX_DETAIL_LEN, MAX_DIGEST_NAME_LEN, MAX_DIGESTS,
    MAX_ENTRY_LEN, MAX_TEXT_LEN,
};

pub use export::{AuditExport, BuildError, EXPORT_FORMAT, ExportError, MAX_EXPORT_LEN, Scope};
pub use memory::{MemoryTree, MissingNode};
pub use merkle::{
    EMPTY_ROOT, Hash, MAX_PROOF_LEN, NewNode, NodeSource, ProofError, ProveError, completed_nodes,
    consistency_proof, inclusion_proof, leaf_hash, node_hash, root, verify_consistency,
    verify_inclusion,
};
pub use offline::{AuditError, AuditReport, HeadRef, check, check_json};
pub use tree_head::{
    MAX_LOG_ID_LEN, MAX_TREE_HEAD_LEN, TREE_HEAD_FORMAT, TreeHead, TreeHeadError, VerifiedTreeHead,
};
