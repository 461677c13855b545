//! Merkle inclusion and consistency proofs (RFC 9162) as exports carry
//! them. Bit 0 of the first byte picks the form of the rest:
//!
//! - clear: raw values a peer controls, big-endian: leaf index, tree size,
//!   old size (8 bytes each), then 32-byte hashes: the leaf, the root, the
//!   old root and the proof. [`verify_inclusion`] and
//!   [`verify_consistency`] must answer with a result for any of them.
//! - set: a real tree of up to 300 leaves (sizes and index from the next
//!   six bytes), whose proofs, made by [`inclusion_proof`] and
//!   [`consistency_proof`], must verify; the remaining bytes then edit
//!   those proofs (three bytes an edit: a 16-bit position and a byte to
//!   XOR there; one left-over byte drops each proof's last hash, two
//!   append a zero hash), and an edited proof must verify only if the edits
//!   left it as it was.

#![no_main]

use chipward_proto::audit::{
    Hash, MemoryTree, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};
use libfuzzer_sys::fuzz_target;

/// Most leaves of a real tree.
const MAX_LEAVES: u16 = 300;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        raw(rest);
    } else {
        real(rest);
    }
});

fn raw(data: &[u8]) {
    let Some((numbers, hashes)) = data.split_first_chunk::<24>() else {
        return;
    };
    let number = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&numbers[i * 8..i * 8 + 8]);
        u64::from_be_bytes(bytes)
    };
    let (index, size, old_size) = (number(0), number(1), number(2));
    let mut hashes: Vec<Hash> = hashes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("chunks of 32"))
        .collect();
    if hashes.len() < 3 {
        return;
    }
    let proof = hashes.split_off(3);
    let (leaf, new_root, old_root) = (hashes[0], hashes[1], hashes[2]);

    let _ = verify_inclusion(&leaf, index, size, &proof, &new_root);
    let _ = verify_consistency(old_size, size, &old_root, &new_root, &proof);
}

fn real(data: &[u8]) {
    let Some((sizes, edits)) = data.split_first_chunk::<6>() else {
        return;
    };
    let number = |i: usize| u16::from_be_bytes([sizes[i], sizes[i + 1]]);
    let size = 1 + number(0) % MAX_LEAVES;
    let index = u64::from(number(2) % size);
    let old_size = u64::from(number(4) % (size + 1));
    let size = u64::from(size);

    let mut tree = MemoryTree::new();
    for leaf in 0..size {
        tree.push(&leaf.to_be_bytes());
    }
    let new_root = tree.root();
    let old_root = root(&tree, old_size).expect("the tree holds every smaller size");
    let leaf = leaf_hash(&index.to_be_bytes());

    let inclusion = inclusion_proof(&tree, index, size).expect("the index is in the tree");
    let consistency = consistency_proof(&tree, old_size, size).expect("old size <= size");
    assert_eq!(
        verify_inclusion(&leaf, index, size, &inclusion, &new_root),
        Ok(())
    );
    assert_eq!(
        verify_consistency(old_size, size, &old_root, &new_root, &consistency),
        Ok(())
    );

    let (edited_inclusion, edited_consistency) = edit(&inclusion, &consistency, edits);
    let verified = verify_inclusion(&leaf, index, size, &edited_inclusion, &new_root);
    assert_eq!(
        verified.is_ok(),
        edited_inclusion == inclusion,
        "{verified:?}"
    );
    let verified = verify_consistency(old_size, size, &old_root, &new_root, &edited_consistency);
    assert_eq!(
        verified.is_ok(),
        edited_consistency == consistency,
        "{verified:?}"
    );
}

/// Applies `edits` (see the module notes) to both proofs, the positions
/// running over the inclusion proof's bytes, then the consistency proof's.
fn edit(inclusion: &[Hash], consistency: &[Hash], edits: &[u8]) -> (Vec<Hash>, Vec<Hash>) {
    let mut bytes: Vec<u8> = inclusion
        .iter()
        .chain(consistency)
        .flatten()
        .copied()
        .collect();
    let chunks = edits.chunks_exact(3);
    let shape = chunks.remainder().len();
    if !bytes.is_empty() {
        for e in chunks {
            let at = usize::from(u16::from_be_bytes([e[0], e[1]])) % bytes.len();
            bytes[at] ^= e[2];
        }
    }

    let hashes: Vec<Hash> = bytes
        .chunks_exact(32)
        .map(|c| c.try_into().expect("chunks of 32"))
        .collect();
    let (a, b) = hashes.split_at(inclusion.len());
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    for proof in [&mut a, &mut b] {
        match shape {
            1 => {
                proof.pop();
            }
            2 => proof.push([0; 32]),
            _ => {}
        }
    }
    (a, b)
}
