//! Merkle tree hashing for the audit log, as RFC 9162 section 2.1 (the same
//! tree as RFC 6962 section 2.1) defines it over SHA-256.
//!
//! Proof generation reads node hashes from a [`NodeSource`], which only has
//! to know the hashes of *perfect* subtrees (2^level leaves, aligned). Every
//! proof asks for O(log n) of them: a subtree that is not perfect is always
//! the right edge of the tree and is hashed here from its perfect pieces.
//!
//! Verification takes proofs, sizes and roots from peers, so all of them are
//! attacker-controlled: it follows the RFC 9162 algorithms step by step,
//! bounds the proof length first and returns a typed [`ProofError`].
//!
//! Storage is not handled here; [`MemoryTree`](super::MemoryTree) is the
//! in-memory source used by tests and the offline checker.

use ring::digest::{Context, SHA256};
use thiserror::Error;

/// A SHA-256 output: a leaf hash, a node hash or a root.
pub type Hash = [u8; 32];

/// The longest proof accepted or produced. A tree of up to 2^63 leaves
/// never needs more.
pub const MAX_PROOF_LEN: usize = 64;

/// The root of the empty tree: SHA-256 of the empty string.
pub const EMPTY_ROOT: Hash = [
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
];

/// The hash of one leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    hash_parts(&[&[0x00], data])
}

/// The hash of an interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    hash_parts(&[&[0x01], left, right])
}

/// Hashes of perfect subtrees of one log.
///
/// A node at `level` L and `index` i covers leaves `[i * 2^L, (i + 1) * 2^L)`;
/// level 0 holds the leaf hashes. Callers here only ask for nodes whose
/// leaves all lie below the tree size they were given.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error: std::error::Error + 'static;

    /// The hash of the perfect subtree at `level`, `index`.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// A node completed by appending one leaf; see [`completed_nodes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NewNode {
    /// Level of the node (0 for the leaf itself).
    pub level: u32,
    /// Index of the node within its level.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// Why a proof could not be produced.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProveError<E: std::error::Error + 'static> {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Index asked for.
        index: u64,
        /// Tree size.
        size: u64,
    },
    /// The old size is larger than the new one.
    #[error("old size {old_size} is larger than new size {new_size}")]
    SizeOrder {
        /// Old tree size.
        old_size: u64,
        /// New tree size.
        new_size: u64,
    },
    /// The node source failed.
    #[error("reading a tree node failed")]
    Source(#[source] E),
}

/// The root of the first `size` leaves of `src` (RFC 9162 MTH).
///
/// ```
/// use chipward_proto::audit::{EMPTY_ROOT, MemoryTree, leaf_hash, node_hash, root};
///
/// let mut tree = MemoryTree::new();
/// tree.push(b"a");
/// tree.push(b"b");
/// let expected = node_hash(&leaf_hash(b"a"), &leaf_hash(b"b"));
/// assert_eq!(root(&tree, 2)?, expected);
/// assert_eq!(root(&tree, 0)?, EMPTY_ROOT);
/// # Ok::<(), chipward_proto::audit::MissingNode>(())
/// ```
pub fn root<S: NodeSource>(src: &S, size: u64) -> Result<Hash, S::Error> {
    if size == 0 {
        return Ok(EMPTY_ROOT);
    }
    subtree_hash(src, 0, size)
}

/// The audit path of leaf `index` in the tree of `size` leaves
/// (RFC 9162 section 2.1.3.1, PATH), sibling of the leaf first.
///
/// ```
/// use chipward_proto::audit::{MemoryTree, inclusion_proof, leaf_hash, verify_inclusion};
///
/// let mut tree = MemoryTree::new();
/// for d in [b"a", b"b", b"c"] {
///     tree.push(d);
/// }
/// let proof = inclusion_proof(&tree, 2, 3).expect("leaf 2 is in a tree of 3");
/// assert_eq!(verify_inclusion(&leaf_hash(b"c"), 2, 3, &proof, &tree.root()), Ok(()));
/// ```
pub fn inclusion_proof<S: NodeSource>(
    src: &S,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    if index >= size {
        return Err(ProveError::IndexOutOfRange { index, size });
    }

    // Walk from the root down to the leaf; each step keeps the half that
    // holds the leaf and records the other half. The RFC lists the
    // siblings bottom-up, so the walk's order is reversed at the end.
    let (mut lo, mut hi) = (0u64, size);
    let mut path = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index - lo < k {
            path.push(subtree_hash(src, lo + k, hi).map_err(ProveError::Source)?);
            hi = lo + k;
        } else {
            path.push(subtree_hash(src, lo, lo + k).map_err(ProveError::Source)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
}

/// The proof that the tree of `old_size` leaves is a prefix of the tree of
/// `new_size` leaves (RFC 9162 section 2.1.4.1, PROOF and SUBPROOF).
///
/// Empty when `old_size` is 0 or equals `new_size`.
pub fn consistency_proof<S: NodeSource>(
    src: &S,
    old_size: u64,
    new_size: u64,
) -> Result<Vec<Hash>, ProveError<S::Error>> {
    if old_size > new_size {
        return Err(ProveError::SizeOrder { old_size, new_size });
    }
    if old_size == 0 || old_size == new_size {
        return Ok(Vec::new());
    }

    // SUBPROOF(m, D[lo:hi], b), unrolled. `m` is relative to `lo`; `b`
    // turns false once the walk has gone right of the old tree's root.
    let (mut lo, mut hi, mut m, mut b) = (0u64, new_size, old_size, true);
    let mut path = Vec::new();
    loop {
        if m == hi - lo {
            if !b {
                path.push(subtree_hash(src, lo, hi).map_err(ProveError::Source)?);
            }
            break;
        }
        let k = split_point(hi - lo);
        if m <= k {
            path.push(subtree_hash(src, lo + k, hi).map_err(ProveError::Source)?);
            hi = lo + k;
        } else {
            path.push(subtree_hash(src, lo, lo + k).map_err(ProveError::Source)?);
            lo += k;
            m -= k;
            b = false;
        }
    }
    path.reverse();
    Ok(path)
}

/// The nodes that appending `leaf_hash` at position `index` completes: the
/// leaf itself, then each parent whose right edge it closes. Siblings are
/// read from `src`, which must hold the tree of `index` leaves.
///
/// A store that keeps these rows per append can serve as a [`NodeSource`].
pub fn completed_nodes<S: NodeSource>(
    src: &S,
    index: u64,
    leaf_hash: Hash,
) -> Result<Vec<NewNode>, S::Error> {
    let mut hash = leaf_hash;
    let (mut level, mut i) = (0u32, index);
    let mut out = vec![NewNode { level, index, hash }];
    while i & 1 == 1 {
        let left = src.node(level, i - 1)?;
        hash = node_hash(&left, &hash);
        level += 1;
        i >>= 1;
        out.push(NewNode {
            level,
            index: i,
            hash,
        });
    }
    Ok(out)
}

/// The hash of leaves `[lo, hi)`, where `lo` is a multiple of the largest
/// power of two not above `hi - lo` (true of every subtree the RFC
/// recursion visits). Reads one node per set bit of `hi - lo`.
fn subtree_hash<S: NodeSource>(src: &S, lo: u64, hi: u64) -> Result<Hash, S::Error> {
    debug_assert!(lo < hi, "subtree ranges are never empty");

    // Split into perfect pieces, largest first, then fold from the right:
    // MTH(D[lo:hi]) = H(piece1, H(piece2, ... H(piece_{n-1}, piece_n))).
    let mut pieces = Vec::with_capacity(8);
    let mut start = lo;
    while start < hi {
        let level = 63 - (hi - start).leading_zeros();
        debug_assert_eq!(start % (1u64 << level), 0, "pieces are aligned");
        pieces.push(src.node(level, start >> level)?);
        start += 1u64 << level;
    }
    let mut acc = pieces
        .pop()
        .expect("a non-empty range has at least one piece");
    while let Some(left) = pieces.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The largest power of two strictly below `n` (`n >= 2`).
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

fn hash_parts(parts: &[&[u8]]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    for part in parts {
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

mod verify;

pub use verify::{ProofError, verify_consistency, verify_inclusion};

#[cfg(test)]
mod tests;
