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
use subtle::ConstantTimeEq;
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

/// Why a proof does not hold.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProofError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of size {size}")]
    IndexOutOfRange {
        /// Index claimed.
        index: u64,
        /// Tree size claimed.
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
    /// More hashes than any proof may hold.
    #[error("proof of {len} hashes exceeds the limit of {max}")]
    ProofTooLong {
        /// Hashes given.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// The proof does not have the length the index and sizes imply.
    #[error("proof has {got} hashes where {expected} are required")]
    WrongProofLength {
        /// Length the sizes imply.
        expected: usize,
        /// Length given.
        got: usize,
    },
    /// The root computed from the proof is not the root given.
    #[error("computed root does not match the tree head")]
    RootMismatch,
    /// The old root computed from a consistency proof is not the one given.
    #[error("computed old root does not match the earlier tree head")]
    OldRootMismatch,
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

/// Checks that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// with root `root` (RFC 9162 section 2.1.3.2).
pub fn verify_inclusion(
    leaf_hash: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), ProofError> {
    // 1. The index must lie inside the tree; the proof must be bounded and
    //    exactly as long as index and size require.
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    check_len(proof.len(), inclusion_proof_len(index, size))?;

    // 2. fn = index, sn = size - 1, r = the leaf hash.
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf_hash;

    // 3. Fold in each proof hash as a left or right sibling.
    for p in proof {
        if s == 0 {
            return Err(wrong_len(proof.len(), inclusion_proof_len(index, size)));
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }

    // 4. The walk must have reached the root, and the root must match.
    if s != 0 {
        return Err(wrong_len(proof.len(), inclusion_proof_len(index, size)));
    }
    if !same(&r, root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// Checks that the tree of `old_size` leaves with root `old_root` is a
/// prefix of the tree of `new_size` leaves with root `new_root`
/// (RFC 9162 section 2.1.4.2).
///
/// Equal sizes need an empty proof and equal roots; old size 0 needs an
/// empty proof and the empty-tree root as `old_root`.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ProofError> {
    // 1. Sizes in order, proof bounded and of the length the sizes imply.
    if old_size > new_size {
        return Err(ProofError::SizeOrder { old_size, new_size });
    }
    let expected = consistency_proof_len(old_size, new_size);
    check_len(proof.len(), expected)?;

    // 2. The trivial cases the RFC algorithm leaves out.
    if old_size == 0 {
        return match same(old_root, &EMPTY_ROOT) {
            true => Ok(()),
            false => Err(ProofError::OldRootMismatch),
        };
    }
    if old_size == new_size {
        return match same(old_root, new_root) {
            true => Ok(()),
            false => Err(ProofError::RootMismatch),
        };
    }

    // 3. If the old size is a power of two, the old root starts the path.
    let mut path: Vec<&Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(old_root);
    }
    path.extend(proof);

    // 4. fn = old_size - 1, sn = new_size - 1; shift off fn's low ones.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }

    // 5. fr = sr = the first path hash; fold in the rest.
    let (first, rest) = path.split_first().ok_or(wrong_len(proof.len(), expected))?;
    let (mut fr, mut sr) = (**first, **first);
    for c in rest {
        if s == 0 {
            return Err(wrong_len(proof.len(), expected));
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }

    // 6. Both roots must match and the walk must have reached the top.
    if s != 0 {
        return Err(wrong_len(proof.len(), expected));
    }
    if !same(&fr, old_root) {
        return Err(ProofError::OldRootMismatch);
    }
    if !same(&sr, new_root) {
        return Err(ProofError::RootMismatch);
    }
    Ok(())
}

/// The number of hashes in an inclusion proof for `index` in a tree of
/// `size` leaves; `index < size` is assumed.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    // The walk of section 2.1.3.2 without the hashing.
    let (mut f, mut s) = (index, size - 1);
    let mut n = 0;
    while s != 0 {
        if f & 1 == 0 && f == s {
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
        n += 1;
    }
    n
}

/// The number of hashes in a consistency proof from `old_size` to
/// `new_size`; `old_size <= new_size` is assumed.
fn consistency_proof_len(old_size: u64, new_size: u64) -> usize {
    if old_size == 0 || old_size == new_size {
        return 0;
    }
    // The walk of section 2.1.4.2 without the hashing: one hash seeds it
    // (supplied by the verifier itself when old_size is a power of two),
    // then one per step until sn reaches 0.
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let mut steps = 0;
    while s != 0 {
        if f & 1 == 0 && f == s {
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        }
        f >>= 1;
        s >>= 1;
        steps += 1;
    }
    if old_size.is_power_of_two() {
        steps
    } else {
        steps + 1
    }
}

fn check_len(got: usize, expected: usize) -> Result<(), ProofError> {
    if got > MAX_PROOF_LEN {
        return Err(ProofError::ProofTooLong {
            len: got,
            max: MAX_PROOF_LEN,
        });
    }
    if got != expected {
        return Err(wrong_len(got, expected));
    }
    Ok(())
}

fn wrong_len(got: usize, expected: usize) -> ProofError {
    ProofError::WrongProofLength { expected, got }
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

fn same(a: &Hash, b: &Hash) -> bool {
    a[..].ct_eq(&b[..]).into()
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

#[cfg(test)]
mod tests;
