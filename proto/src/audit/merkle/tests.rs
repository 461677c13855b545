//! Merkle tests: published RFC 6962 vectors, and a second, naive
//! implementation of the RFC definitions to compare against.

use proptest::prelude::*;

use super::*;
use crate::audit::MemoryTree;

fn h(hex_text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).unwrap();
    out
}

// Test data of the transparency-dev/merkle project (proof/verify_test.go,
// inherited from certificate-transparency's merkle_tree_test): eight leaves,
// the roots of the trees of their first 1..=8 leaves, and known proofs.
// Inclusion vectors there number leaves from 1; the indices here are 0-based.
const LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// (leaf index, tree size, proof)
const INCLUSION: [(u64, u64, &[&str]); 4] = [
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (old size, new size, proof)
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn vector_tree() -> MemoryTree {
    let mut tree = MemoryTree::new();
    for leaf in LEAVES {
        tree.push(&hex::decode(leaf).unwrap());
    }
    tree
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|x| h(x)).collect()
}

/// Counts node reads, to check the O(log n) bound.
struct Counting<'a>(&'a MemoryTree, std::cell::Cell<usize>);

impl NodeSource for Counting<'_> {
    type Error = crate::audit::MissingNode;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.1.set(self.1.get() + 1);
        self.0.node(level, index)
    }
}

// ---- The RFC 9162 definitions, written out naively over leaf data. ----

fn sha(parts: &[&[u8]]) -> Hash {
    let joined: Vec<u8> = parts.concat();
    ring::digest::digest(&SHA256, &joined)
        .as_ref()
        .try_into()
        .unwrap()
}

fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => sha(&[]),
        1 => sha(&[&[0], &d[0]]),
        n => {
            let k = split(n);
            sha(&[&[1], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

fn naive_path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    if d.len() <= 1 {
        return Vec::new();
    }
    let k = split(d.len());
    let (mut p, sibling) = if m < k {
        (naive_path(m, &d[..k]), mth(&d[k..]))
    } else {
        (naive_path(m - k, &d[k..]), mth(&d[..k]))
    };
    p.push(sibling);
    p
}

fn naive_subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    if m == d.len() {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = split(d.len());
    let (mut p, sibling) = if m <= k {
        (naive_subproof(m, &d[..k], b), mth(&d[k..]))
    } else {
        (naive_subproof(m - k, &d[k..], false), mth(&d[..k]))
    };
    p.push(sibling);
    p
}

fn leaves_of(n: usize, salt: u8) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| [&[salt][..], &(i as u32).to_be_bytes()[..]].concat())
        .collect()
}

// ---- Published vectors. ----

#[test]
fn hashes_match_the_published_rfc6962_values() {
    // transparency-dev/merkle rfc6962/rfc6962_test.go.
    assert_eq!(
        EMPTY_ROOT,
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    assert_eq!(
        leaf_hash(b""),
        h("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    );
    assert_eq!(
        leaf_hash(b"L123456"),
        h("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    );
    assert_eq!(root(&MemoryTree::new(), 0).unwrap(), EMPTY_ROOT);
}

#[test]
fn roots_match_the_published_vectors() {
    let tree = vector_tree();
    for (i, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            root(&tree, i as u64 + 1).unwrap(),
            h(expected),
            "size {}",
            i + 1
        );
    }
    assert_eq!(tree.root(), h(ROOTS[7]));
}

#[test]
fn inclusion_proofs_match_and_verify_the_published_vectors() {
    let tree = vector_tree();
    for (index, size, proof) in INCLUSION {
        let expected = hashes(proof);
        assert_eq!(inclusion_proof(&tree, index, size).unwrap(), expected);
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        let root = h(ROOTS[size as usize - 1]);
        assert_eq!(
            verify_inclusion(&leaf, index, size, &expected, &root),
            Ok(())
        );
    }
}

#[test]
fn consistency_proofs_match_and_verify_the_published_vectors() {
    let tree = vector_tree();
    for (old, new, proof) in CONSISTENCY {
        let expected = hashes(proof);
        assert_eq!(consistency_proof(&tree, old, new).unwrap(), expected);
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        assert_eq!(verify_consistency(old, new, &r1, &r2, &expected), Ok(()));
    }
}

#[test]
fn corrupted_published_inclusion_proofs_fail() {
    // The probes of transparency-dev's corruptInclusionProof.
    for (index, size, proof) in INCLUSION {
        let proof = hashes(proof);
        let leaf = leaf_hash(&hex::decode(LEAVES[index as usize]).unwrap());
        let root = h(ROOTS[size as usize - 1]);
        let check = |i: u64, s: u64, l: &Hash, r: &Hash, p: &[Hash]| {
            assert!(verify_inclusion(l, i, s, p, r).is_err(), "{i}/{s} accepted");
        };
        check(index.wrapping_sub(1), size, &leaf, &root, &proof);
        check(index + 1, size, &leaf, &root, &proof);
        check(index ^ 2, size, &leaf, &root, &proof);
        check(index, size * 2, &leaf, &root, &proof);
        check(index, size / 2, &leaf, &root, &proof);
        check(index, size, &leaf_hash(b"WrongLeaf"), &root, &proof);
        check(index, size, &leaf, &EMPTY_ROOT, &proof);
        check(
            index,
            size,
            &leaf,
            &root,
            &[proof.clone(), vec![root]].concat(),
        );
        check(
            index,
            size,
            &leaf,
            &root,
            &[vec![root], proof.clone()].concat(),
        );
        check(index, size, &leaf, &root, &proof[..proof.len() - 1]);
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 8;
            check(index, size, &leaf, &root, &bad);
        }
    }
}

#[test]
fn corrupted_published_consistency_proofs_fail() {
    for (old, new, proof) in CONSISTENCY.into_iter().filter(|c| !c.2.is_empty()) {
        let proof = hashes(proof);
        let (r1, r2) = (h(ROOTS[old as usize - 1]), h(ROOTS[new as usize - 1]));
        let check = |o: u64, n: u64, a: &Hash, b: &Hash, p: &[Hash]| {
            assert!(
                verify_consistency(o, n, a, b, p).is_err(),
                "{o}->{n} accepted"
            );
        };
        check(old - 1, new, &r1, &r2, &proof);
        check(old + 1, new, &r1, &r2, &proof);
        check(old ^ 2, new, &r1, &r2, &proof);
        check(old, new * 2, &r1, &r2, &proof);
        check(old, new / 2, &r1, &r2, &proof);
        check(old, new, &r2, &r1, &proof);
        check(old, new, &EMPTY_ROOT, &r2, &proof);
        check(old, new, &r1, &EMPTY_ROOT, &proof);
        check(old, new, &r1, &r2, &[]);
        check(old, new, &r1, &r2, &[proof.clone(), vec![r1]].concat());
        check(
            old,
            new,
            &r1,
            &r2,
            &[vec![proof[0]], proof.clone()].concat(),
        );
        check(old, new, &r1, &r2, &proof[..proof.len() - 1]);
        for i in 0..proof.len() {
            let mut bad = proof.clone();
            bad[i][0] ^= 16;
            check(old, new, &r1, &r2, &bad);
        }
    }
}

// ---- Typed errors. ----

#[test]
fn verification_errors_name_what_is_wrong() {
    let tree = vector_tree();
    let root8 = tree.root();
    let leaf0 = leaf_hash(b"");
    let proof = inclusion_proof(&tree, 0, 8).unwrap();
    assert_eq!(
        verify_inclusion(&leaf0, 8, 8, &proof, &root8),
        Err(ProofError::IndexOutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        verify_inclusion(&leaf0, 0, 0, &[], &EMPTY_ROOT),
        Err(ProofError::IndexOutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        verify_inclusion(&leaf0, 0, 8, &proof[..2], &root8),
        Err(ProofError::WrongProofLength {
            expected: 3,
            got: 2
        })
    );
    assert_eq!(
        verify_inclusion(&leaf0, 0, 8, &[[0; 32]; 65], &root8),
        Err(ProofError::ProofTooLong { len: 65, max: 64 })
    );
    assert_eq!(
        verify_inclusion(&leaf_hash(b"x"), 0, 8, &proof, &root8),
        Err(ProofError::RootMismatch)
    );
    // A huge claimed size with a bounded proof is refused without work.
    assert!(matches!(
        verify_inclusion(&leaf0, 0, u64::MAX, &proof, &root8),
        Err(ProofError::WrongProofLength { expected: 64, .. })
    ));

    let r6 = root(&tree, 6).unwrap();
    let p68 = consistency_proof(&tree, 6, 8).unwrap();
    assert_eq!(
        verify_consistency(8, 6, &root8, &r6, &p68),
        Err(ProofError::SizeOrder {
            old_size: 8,
            new_size: 6
        })
    );
    assert_eq!(
        verify_consistency(6, 8, &root8, &root8, &p68),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(
        verify_consistency(6, 8, &r6, &r6, &p68),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(8, 8, &root8, &r6, &[]),
        Err(ProofError::RootMismatch)
    );
    assert_eq!(
        verify_consistency(0, 8, &r6, &root8, &[]),
        Err(ProofError::OldRootMismatch)
    );
    assert_eq!(verify_consistency(0, 8, &EMPTY_ROOT, &root8, &[]), Ok(()));
    assert_eq!(
        verify_consistency(8, 8, &root8, &root8, &[root8]),
        Err(ProofError::WrongProofLength {
            expected: 0,
            got: 1
        })
    );
}

#[test]
fn proof_generation_refuses_bad_arguments() {
    let tree = vector_tree();
    assert!(matches!(
        inclusion_proof(&tree, 8, 8),
        Err(ProveError::IndexOutOfRange { index: 8, size: 8 })
    ));
    assert!(matches!(
        consistency_proof(&tree, 5, 4),
        Err(ProveError::SizeOrder { .. })
    ));
    assert_eq!(consistency_proof(&tree, 0, 8).unwrap(), Vec::<Hash>::new());
}

#[test]
fn proofs_read_a_logarithmic_number_of_nodes() {
    let leaves = leaves_of(1000, 7);
    let tree = MemoryTree::from_leaf_hashes(leaves.iter().map(|l| leaf_hash(l)));
    let src = Counting(&tree, 0.into());
    // ceil(log2(1000)) = 10 levels; a proof has at most 10 siblings, of
    // which at most one is a right edge made of at most 10 perfect pieces.
    for index in [0, 1, 511, 512, 998, 999] {
        src.1.set(0);
        inclusion_proof(&src, index, 1000).unwrap();
        assert!(src.1.get() <= 20, "{} reads for leaf {index}", src.1.get());
    }
    for old in [1, 3, 500, 512, 999] {
        src.1.set(0);
        consistency_proof(&src, old, 1000).unwrap();
        assert!(src.1.get() <= 21, "{} reads from size {old}", src.1.get());
    }
    src.1.set(0);
    root(&src, 999).unwrap();
    assert!(src.1.get() <= 10);
}

// ---- Against the naive definitions. ----

#[test]
fn proofs_equal_the_naive_rfc_definitions_for_small_trees() {
    for n in 1..=40usize {
        let d = leaves_of(n, 1);
        let tree = MemoryTree::from_leaf_hashes(d.iter().map(|l| leaf_hash(l)));
        assert_eq!(tree.root(), mth(&d), "root of {n}");
        for m in 0..n {
            assert_eq!(
                inclusion_proof(&tree, m as u64, n as u64).unwrap(),
                naive_path(m, &d),
                "path {m} of {n}"
            );
        }
        for m in 1..n {
            assert_eq!(
                consistency_proof(&tree, m as u64, n as u64).unwrap(),
                naive_subproof(m, &d, true),
                "proof {m} -> {n}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn every_proof_verifies_and_every_corruption_fails(
        n in 1usize..=300,
        salt in any::<u8>(),
        flip in any::<usize>(),
        bit in 0u8..8,
    ) {
        let d = leaves_of(n, salt);
        let tree = MemoryTree::from_leaf_hashes(d.iter().map(|l| leaf_hash(l)));
        let roots: Vec<Hash> = (0..=n).map(|m| mth(&d[..m])).collect();
        let size = n as u64;
        let root_n = roots[n];
        let corrupt = |p: &[Hash]| {
            let mut bad = p.to_vec();
            let at = flip % (bad.len() * 32);
            bad[at / 32][at % 32] ^= 1 << bit;
            bad
        };

        for (m, data) in d.iter().enumerate() {
            let leaf = sha(&[&[0], data]);
            let i = m as u64;
            let proof = inclusion_proof(&tree, i, size).unwrap();
            prop_assert_eq!(verify_inclusion(&leaf, i, size, &proof, &root_n), Ok(()));
            if !proof.is_empty() {
                prop_assert!(verify_inclusion(&leaf, i, size, &corrupt(&proof), &root_n).is_err());
            }
            for wrong in [i.wrapping_sub(1), i + 1, i ^ 2] {
                if wrong != i {
                    prop_assert!(verify_inclusion(&leaf, wrong, size, &proof, &root_n).is_err());
                }
            }
            prop_assert!(verify_inclusion(&leaf, i, size * 2, &proof, &root_n).is_err());
            if i < size / 2 {
                prop_assert!(verify_inclusion(&leaf, i, size / 2, &proof, &root_n).is_err());
            }
        }

        for (m, old_root) in roots.iter().enumerate() {
            let old = m as u64;
            let proof = consistency_proof(&tree, old, size).unwrap();
            prop_assert_eq!(
                verify_consistency(old, size, old_root, &root_n, &proof),
                Ok(())
            );
            if proof.is_empty() {
                continue;
            }
            let bad = corrupt(&proof);
            prop_assert!(verify_consistency(old, size, old_root, &root_n, &bad).is_err());
            for wrong in [old - 1, old + 1, old ^ 2] {
                if wrong != old {
                    prop_assert!(
                        verify_consistency(wrong, size, old_root, &root_n, &proof).is_err()
                    );
                }
            }
            // Only sizes that change the shape of the proof: a root does not
            // commit to its size, so (2, 3) and (2, 4) take the same proof.
            for wrong in [size * 2, size / 2] {
                prop_assert!(verify_consistency(old, wrong, old_root, &root_n, &proof).is_err());
            }
        }
    }
}
