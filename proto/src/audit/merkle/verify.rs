//! Proof verification, RFC 9162 sections 2.1.3.2 and 2.1.4.2, step by
//! step. Proofs, indices, sizes and roots all come from peers: the proof
//! length is bounded and checked against the sizes before any hashing.

use subtle::ConstantTimeEq;
use thiserror::Error;

use super::{EMPTY_ROOT, Hash, MAX_PROOF_LEN, node_hash};

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

fn same(a: &Hash, b: &Hash) -> bool {
    a[..].ct_eq(&b[..]).into()
}
