//! An append-only Merkle tree held in memory, keeping every perfect-subtree
//! hash per level. Tests and the offline checker use it as their
//! [`NodeSource`]; a service keeps the same nodes in its database instead.
//!
//! Appending hashes each completed node once, so n appends cost about 2n
//! hashes in all. Nothing here is attacker-controlled beyond leaf data.

use thiserror::Error;

use super::merkle::{self, Hash, NodeSource};

/// An append-only tree of leaf hashes with every perfect subtree kept.
#[derive(Clone, Debug, Default)]
pub struct MemoryTree {
    /// `levels[l][i]` is the node at level `l`, index `i`.
    levels: Vec<Vec<Hash>>,
}

/// A node that is not (yet) in the tree.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
#[error("no node at level {level}, index {index}")]
pub struct MissingNode {
    /// Level asked for.
    pub level: u32,
    /// Index asked for.
    pub index: u64,
}

impl MemoryTree {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tree of the given leaf hashes, in order.
    pub fn from_leaf_hashes(hashes: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        for h in hashes {
            tree.push_leaf_hash(h);
        }
        tree
    }

    /// Appends a leaf holding `data`; returns its index.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        self.push_leaf_hash(merkle::leaf_hash(data))
    }

    /// Appends a leaf by its leaf hash; returns its index.
    pub fn push_leaf_hash(&mut self, leaf_hash: Hash) -> u64 {
        let index = self.len();
        let nodes = merkle::completed_nodes(self, index, leaf_hash)
            .expect("every left sibling an append reads is complete and so stored");
        for node in nodes {
            let level = node.level as usize;
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(node.hash);
        }
        index
    }

    /// The number of leaves.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Whether the tree has no leaves.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The leaf hash at `index`, if there is one.
    pub fn leaf_hash(&self, index: u64) -> Option<Hash> {
        let i = usize::try_from(index).ok()?;
        self.levels.first()?.get(i).copied()
    }

    /// The root of the whole tree.
    pub fn root(&self) -> Hash {
        merkle::root(self, self.len()).expect("every perfect subtree of the tree is stored")
    }
}

impl NodeSource for MemoryTree {
    type Error = MissingNode;

    fn node(&self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        let missing = MissingNode { level, index };
        let i = usize::try_from(index).map_err(|_| missing)?;
        self.levels
            .get(level as usize)
            .and_then(|l| l.get(i))
            .copied()
            .ok_or(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::merkle::{leaf_hash, node_hash};

    #[test]
    fn keeps_only_complete_perfect_subtrees() {
        let mut tree = MemoryTree::new();
        for d in [b"a", b"b", b"c"] {
            tree.push(d);
        }
        let (a, b, c) = (leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"c"));
        assert_eq!(tree.node(0, 2), Ok(c));
        assert_eq!(tree.node(1, 0), Ok(node_hash(&a, &b)));
        assert_eq!(tree.node(1, 1), Err(MissingNode { level: 1, index: 1 }));
        assert_eq!(tree.node(2, 0), Err(MissingNode { level: 2, index: 0 }));
        assert_eq!(tree.root(), node_hash(&node_hash(&a, &b), &c));
        assert_eq!(tree.len(), 3);
        assert_eq!(tree.leaf_hash(3), None);
    }

    #[test]
    fn proofs_beyond_the_stored_size_report_the_missing_node() {
        let mut tree = MemoryTree::new();
        tree.push(b"a");
        let err = merkle::inclusion_proof(&tree, 0, 2).unwrap_err();
        assert!(matches!(
            err,
            merkle::ProveError::Source(MissingNode { level: 0, index: 1 })
        ));
    }
}
