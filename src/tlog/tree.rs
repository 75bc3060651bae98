//! The Merkle tree of RFC 6962 §2.1 / RFC 9162 §2.1, through `tlog_tiles`
//! (Go's `sumdb/tlog`, ported by Cloudflare), over hashes kept in the store.
//!
//! `tlog_tiles` reads stored hashes through a synchronous `HashReader`, while
//! the store is asynchronous. Which hashes an operation reads depends only on
//! the tree sizes and indexes involved, never on hash values, so each
//! operation runs twice: once against a [`Recorder`] that notes the indexes
//! asked for, then, once those are fetched, against [`Known`].

use std::cell::RefCell;
use std::collections::HashMap;
pub use tlog_tiles::{HASH_SIZE, Hash};
use tlog_tiles::{HashReader, tlog};

/// Why a proof cannot be given or does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    /// A tree size or leaf index the request cannot have: a leaf beyond the
    /// tree, an older tree larger than the newer, or a size past the largest
    /// this log supports; holds the sentence saying which.
    #[error("{0}")]
    OutOfRange(String),
    /// A proof that could not be built from the hashes given, or that does
    /// not lead to the root it claims (RFC 9162 §2.1.3.2, §2.1.4.2).
    #[error("the proof does not check: {0}")]
    Invalid(String),
    /// A hash the operation needs was not among those read from the store;
    /// holds the first stored-hash index concerned (`tlog`'s numbering), or
    /// 0 when a root could not be computed.
    #[error("stored hash {0} is missing")]
    Missing(u64),
}

/// Answers every read with a zero hash and remembers the indexes asked for.
#[derive(Default)]
pub struct Recorder(RefCell<Vec<u64>>);

impl HashReader for Recorder {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash([0; HASH_SIZE]); indexes.len()])
    }
}

impl Recorder {
    /// The stored-hash indexes asked for, sorted, each once.
    pub fn indexes(self) -> Vec<u64> {
        let mut v = self.0.into_inner();
        v.sort_unstable();
        v.dedup();
        v
    }
}

/// Stored hashes fetched for one operation.
#[derive(Default, Debug, Clone)]
pub struct Known(pub HashMap<u64, Hash>);

impl HashReader for Known {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog::Error> {
        indexes.iter().map(|i| self.0.get(i).copied().ok_or(tlog::Error::IndexesNotInTree)).collect()
    }
}

/// How many stored hashes a tree of `size` leaves has (about two per leaf).
pub fn stored_hash_count(size: u64) -> u64 {
    tlog::stored_hash_count(size)
}

/// The leaf hash of RFC 6962 §2.1: SHA-256(0x00 ‖ leaf).
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    tlog::record_hash(leaf)
}

/// The stored hashes that appending leaves `first..first + hashes.len()`
/// reads from the tree before them.
pub fn append_reads(first: u64, leaf_hashes: &[Hash]) -> Vec<u64> {
    let existing = tlog::stored_hash_count(first);
    let recorder = Recorder::default();
    for (i, h) in leaf_hashes.iter().enumerate() {
        let _ = tlog::stored_hashes_for_record_hash(first + i as u64, *h, &recorder);
    }
    recorder.indexes().into_iter().filter(|i| *i < existing).collect()
}

/// The stored hashes at the edge of a tree of `size` leaves: the root of
/// each complete subtree on its right side (one per bit set in `size`).
/// Any append to that tree reads only these ([`append_reads`]).
pub fn edge(size: u64) -> Vec<u64> {
    (0..64u8).filter(|l| (size >> l) & 1 == 1).map(|l| tlog::stored_hash_index(l, (size >> l) - 1)).collect()
}

/// The edge of a tree as an append left it: its size and the hashes
/// [`edge`] names, so that the next append to that tree need not read them
/// back from the store.
pub struct Edge {
    size: u64,
    known: Known,
}

impl Edge {
    /// The edge of the tree an append left `size` leaves long, from every
    /// hash that append read or wrote: only the ones a next append reads.
    pub fn after(size: u64, mut all: Known) -> Edge {
        let edge = edge(size);
        all.0.retain(|i, _| edge.contains(i));
        Edge { size, known: all }
    }

    /// The hashes `reads` names, if the tree is still `size` leaves long
    /// (nobody appended since) and each is kept.
    pub fn known_for(self, size: u64, reads: &[u64]) -> Option<Known> {
        (self.size == size && reads.iter().all(|i| self.known.0.contains_key(i))).then_some(self.known)
    }
}

/// The stored hashes (index, hash) that appending the leaves adds, given
/// the hashes [`append_reads`] named.
pub fn append(first: u64, leaf_hashes: &[Hash], mut known: Known) -> Result<Vec<(u64, Hash)>, TreeError> {
    let mut added = Vec::with_capacity(leaf_hashes.len() * 2);
    for (i, h) in leaf_hashes.iter().enumerate() {
        let n = first + i as u64;
        let start = tlog::stored_hash_index(0, n);
        let hashes = tlog::stored_hashes_for_record_hash(n, *h, &known).map_err(|_| TreeError::Missing(start))?;
        for (k, h) in hashes.into_iter().enumerate() {
            known.0.insert(start + k as u64, h);
            added.push((start + k as u64, h));
        }
    }
    Ok(added)
}

/// The stored hashes the root of a tree of `size` leaves is made of.
pub fn root_reads(size: u64) -> Vec<u64> {
    if size > MAX_TREE_SIZE {
        return Vec::new();
    }
    let r = Recorder::default();
    let _ = tlog::tree_hash(size, &r);
    r.indexes()
}

/// The root hash of RFC 6962 §2.1 (MTH) of the first `size` leaves.
pub fn root(size: u64, known: &Known) -> Result<Hash, TreeError> {
    check_size(size)?;
    tlog::tree_hash(size, known).map_err(|_| TreeError::Missing(0))
}

/// The largest tree any proof is computed or checked for: 2^48 leaves, far
/// beyond any log of statements, and well inside the index arithmetic of
/// `tlog_tiles` (which overflows near 2^63).
pub const MAX_TREE_SIZE: u64 = 1 << 48;

fn check_size(size: u64) -> Result<(), TreeError> {
    if size > MAX_TREE_SIZE {
        return Err(TreeError::OutOfRange(format!("tree size {size} is beyond the largest this log supports ({MAX_TREE_SIZE})")));
    }
    Ok(())
}

fn check_index(index: u64, size: u64) -> Result<(), TreeError> {
    check_size(size)?;
    if index >= size {
        return Err(TreeError::OutOfRange(format!("leaf index {index} is not in a tree of {size} leaves")));
    }
    Ok(())
}

fn check_sizes(old: u64, new: u64) -> Result<(), TreeError> {
    check_size(new)?;
    if old == 0 || old > new {
        return Err(TreeError::OutOfRange(format!(
            "no consistency proof from size {old} to size {new}: the old size must be at least 1 and at most the new one"
        )));
    }
    Ok(())
}

/// The stored hashes an inclusion proof of `index` in a tree of `size` reads.
pub fn inclusion_reads(index: u64, size: u64) -> Result<Vec<u64>, TreeError> {
    check_index(index, size)?;
    let r = Recorder::default();
    let _ = tlog::prove_record(size, index, &r);
    Ok(r.indexes())
}

/// The inclusion proof (audit path) of RFC 9162 §2.1.3.1.
pub fn inclusion(index: u64, size: u64, known: &Known) -> Result<Vec<Hash>, TreeError> {
    check_index(index, size)?;
    tlog::prove_record(size, index, known).map_err(|e| TreeError::Invalid(e.to_string()))
}

/// How many hashes an inclusion proof of leaf `index` in a tree of `size`
/// leaves has (RFC 9162 §2.1.3.1): the levels where the leaf's path and the
/// tree's last leaf part, plus the right-border nodes above them.
/// `index` must be below `size`.
pub fn inclusion_proof_len(index: u64, size: u64) -> usize {
    let inner = (64 - (index ^ (size - 1)).leading_zeros()) as usize;
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    inner + border
}

/// Verifies an inclusion proof, RFC 9162 §2.1.3.2.
pub fn check_inclusion(proof: &[Hash], index: u64, size: u64, root: Hash, leaf: Hash) -> Result<(), TreeError> {
    check_index(index, size)?;
    tlog::check_record(&proof.to_vec(), size, root, index, leaf)
        .map_err(|_| TreeError::Invalid(format!("leaf {index} is not in the tree of size {size} with that root")))
}

/// The stored hashes a consistency proof from `old` to `new` reads.
pub fn consistency_reads(old: u64, new: u64) -> Result<Vec<u64>, TreeError> {
    check_sizes(old, new)?;
    let r = Recorder::default();
    let _ = tlog::prove_tree(new, old, &r);
    Ok(r.indexes())
}

/// The consistency proof of RFC 9162 §2.1.4.1.
pub fn consistency(old: u64, new: u64, known: &Known) -> Result<Vec<Hash>, TreeError> {
    check_sizes(old, new)?;
    tlog::prove_tree(new, old, known).map_err(|e| TreeError::Invalid(e.to_string()))
}

/// Verifies a consistency proof, RFC 9162 §2.1.4.2.
pub fn check_consistency(proof: &[Hash], old: u64, old_root: Hash, new: u64, new_root: Hash) -> Result<(), TreeError> {
    check_sizes(old, new)?;
    tlog::check_tree(&proof.to_vec(), new, new_root, old, old_root)
        .map_err(|_| TreeError::Invalid(format!("the tree of size {new} does not extend the tree of size {old} with that root")))
}

/// Encodes a hash as the standard base64 C2SP formats use.
pub fn hash_b64(h: &Hash) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(h.0)
}

/// A hash from raw bytes, refusing any length but 32.
pub fn hash_from_bytes(bytes: &[u8]) -> Option<Hash> {
    <[u8; HASH_SIZE]>::try_from(bytes).ok().map(Hash)
}

#[cfg(test)]
mod tests {
    //! Every tree size 1..=200 against a straightforward recomputation of
    //! RFC 6962 §2.1 (MTH, PATH, PROOF/SUBPROOF) written from the text,
    //! plus the published root hashes of RFC 6962's reference test leaves.
    use super::*;
    use ring::digest::{SHA256, digest};

    fn h(parts: &[&[u8]]) -> Hash {
        let joined: Vec<u8> = parts.concat();
        Hash(digest(&SHA256, &joined).as_ref().try_into().unwrap())
    }

    #[test]
    fn an_inclusion_proof_has_the_length_rfc_9162_gives() {
        for size in 1..=200u64 {
            for index in 0..size {
                let r = Recorder::default();
                let proof = tlog::prove_record(size, index, &r).unwrap();
                assert_eq!(inclusion_proof_len(index, size), proof.len(), "leaf {index} of {size}");
            }
        }
    }

    fn mth(leaves: &[Vec<u8>]) -> Hash {
        match leaves.len() {
            0 => h(&[]),
            1 => h(&[&[0], &leaves[0]]),
            n => {
                let k = n.next_power_of_two() / 2;
                h(&[&[1], &mth(&leaves[..k]).0, &mth(&leaves[k..]).0])
            }
        }
    }

    fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = n.next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    fn subproof(m: usize, leaves: &[Vec<u8>], b: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if b { vec![] } else { vec![mth(leaves)] };
        }
        let k = n.next_power_of_two() / 2;
        if m <= k {
            let mut p = subproof(m, &leaves[..k], b);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = subproof(m - k, &leaves[k..], false);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    /// A whole tree kept in memory the way the store keeps it.
    fn build(leaves: &[Vec<u8>]) -> Known {
        let mut known = Known::default();
        for (n, leaf) in leaves.iter().enumerate() {
            let hashes = [leaf_hash(leaf)];
            let reads = append_reads(n as u64, &hashes);
            assert!(reads.iter().all(|i| known.0.contains_key(i)));
            for (i, h) in append(n as u64, &hashes, known.clone()).unwrap() {
                known.0.insert(i, h);
            }
        }
        known
    }

    #[test]
    fn proofs_for_every_size_up_to_200_match_an_independent_recomputation() {
        let leaves: Vec<Vec<u8>> = (0..200u32).map(|i| format!("leaf {i}").into_bytes()).collect();
        let known = build(&leaves);
        for size in 1..=200usize {
            let tree = &leaves[..size];
            let r = root(size as u64, &known).unwrap();
            assert_eq!(r, mth(tree), "root of size {size}");
            assert!(root_reads(size as u64).iter().all(|i| known.0.contains_key(i)));
            for (m, leaf) in tree.iter().enumerate() {
                let proof = inclusion(m as u64, size as u64, &known).unwrap();
                assert_eq!(proof, path(m, tree), "inclusion of {m} in {size}");
                check_inclusion(&proof, m as u64, size as u64, r, leaf_hash(leaf)).unwrap();
                assert!(check_inclusion(&proof, m as u64, size as u64, r, leaf_hash(b"other")).is_err());
            }
            for old in 1..=size {
                let proof = consistency(old as u64, size as u64, &known).unwrap();
                assert_eq!(proof, subproof(old, tree, true), "consistency {old} -> {size}");
                check_consistency(&proof, old as u64, mth(&leaves[..old]), size as u64, r).unwrap();
                if old < size {
                    assert!(check_consistency(&proof, old as u64, leaf_hash(b"forged"), size as u64, r).is_err());
                }
            }
        }
    }

    #[test]
    fn published_rfc6962_reference_roots() {
        // The eight test leaves of the RFC 6962 reference implementation
        // (certificate-transparency merkle_tree_test) and its roots.
        let leaves: Vec<Vec<u8>> = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|s| hex::decode(s).unwrap())
            .collect();
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let known = build(&leaves);
        assert_eq!(hex::encode(root(0, &known).unwrap().0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        for (i, want) in roots.iter().enumerate() {
            assert_eq!(hex::encode(root(i as u64 + 1, &known).unwrap().0), *want, "root of {} leaves", i + 1);
        }
    }

    #[test]
    fn out_of_range_requests_are_errors_not_panics() {
        let leaves: Vec<Vec<u8>> = (0..5u32).map(|i| vec![i as u8]).collect();
        let known = build(&leaves);
        assert!(matches!(inclusion(5, 5, &known), Err(TreeError::OutOfRange(_))));
        assert!(matches!(inclusion(0, 0, &known), Err(TreeError::OutOfRange(_))));
        assert!(matches!(consistency(4, 3, &known), Err(TreeError::OutOfRange(_))));
        assert!(matches!(consistency(0, 3, &known), Err(TreeError::OutOfRange(_))));
        assert!(matches!(inclusion_reads(u64::MAX, 3), Err(TreeError::OutOfRange(_))));
        assert!(matches!(inclusion(2, 9, &known), Err(TreeError::Invalid(_))), "a tree larger than stored is missing hashes");
    }

    /// Whatever its length, an append reads only the edge of the tree it
    /// starts from: the store keeps one append's edge for the next.
    #[test]
    fn an_append_reads_only_the_edge_of_the_tree_it_starts_from() {
        for first in 0..600u64 {
            let edge = edge(first);
            assert!(edge.len() <= 10, "{first}");
            for n in [1, 2, 3, 17, 300] {
                let reads = append_reads(first, &vec![leaf_hash(b"a"); n]);
                assert!(reads.iter().all(|i| edge.contains(i)), "first {first}, {n} leaves: {reads:?} beyond {edge:?}");
            }
        }
    }
}
