//! Proof-of-custody rules the chain and storage nodes must agree on (ADR 0107).
//!
//! * [`merkle_root`] / [`merkle_proof`] / [`verify_leaf`] — a binary SHA-256 Merkle tree over a
//!   shard cut into [`LEAF_SIZE`]-byte leaves. Leaves hash as `SHA-256(0x00 ‖ leaf)`, inner
//!   nodes as `SHA-256(0x01 ‖ left ‖ right)`; an odd node at the end of a level is promoted
//!   unchanged (never duplicated, so two different leaf lists never share a root). An empty
//!   shard is one empty leaf.
//! * [`ShardReceipt`] — what a holder signs with its node key when it has stored shard `index`
//!   of `object` with that root and length; a stripe is registered on chain only with a receipt
//!   from every holder it names, so nobody can make a node answer for bytes it never accepted.
//! * [`challenge_leaf`] — the leaf an audit asks for, drawn from the epoch's seed.
//!
//! # Security
//! Guarantees: a proof verifies only for the exact leaf bytes at that index of a shard with
//! that root and length (domain-separated leaf/node hashes, promotion instead of duplication,
//! leaf count fixed by the length); receipts bind the chain id under their own domain tag.
//! Does not guarantee: that a holder keeps a shard between audits — only that at each audit
//! it produced the challenged leaf (random leaves over many epochs make keeping everything the
//! cheapest way to pass).

use sha2::{Digest as _, Sha256};

use crate::{domain_hash, framed_hash, sign_node, verify_node, ClaimError};

/// Bytes per Merkle leaf.
pub const LEAF_SIZE: usize = 256;
/// Domain of a [`ShardReceipt`] digest.
pub const RECEIPT_DOMAIN: &str = "MAGNET/custody/v1/receipt";
/// Domain of an audit's leaf draw.
pub const CHALLENGE_DOMAIN: &str = "MAGNET/custody/v1/challenge";
/// Longest Merkle path accepted (2^40 leaves: far beyond any shard).
pub const MAX_PATH: usize = 40;

fn leaf_hash(leaf: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(leaf);
    h.finalize().into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// Number of leaves of a shard of `len` bytes (at least 1).
pub fn leaf_count(len: u64) -> u64 {
    len.div_ceil(LEAF_SIZE as u64).max(1)
}

/// The byte range of leaf `index` in a shard of `len` bytes, or `None` past the end.
pub fn leaf_range(len: u64, index: u64) -> Option<(u64, u64)> {
    if index >= leaf_count(len) {
        return None;
    }
    let start = index.checked_mul(LEAF_SIZE as u64)?;
    Some((start, (start + LEAF_SIZE as u64).min(len)))
}

fn leaves(shard: &[u8]) -> Vec<[u8; 32]> {
    if shard.is_empty() {
        return vec![leaf_hash(&[])];
    }
    shard.chunks(LEAF_SIZE).map(leaf_hash).collect()
}

fn next_level(level: &[[u8; 32]]) -> Vec<[u8; 32]> {
    level
        .chunks(2)
        .map(|p| {
            if p.len() == 2 {
                node_hash(&p[0], &p[1])
            } else {
                p[0]
            }
        })
        .collect()
}

/// The Merkle root of `shard`.
pub fn merkle_root(shard: &[u8]) -> [u8; 32] {
    let mut level = leaves(shard);
    while level.len() > 1 {
        level = next_level(&level);
    }
    level[0]
}

/// The sibling path of leaf `index` (bottom up; promoted levels contribute nothing), or `None`
/// if the shard has no such leaf.
pub fn merkle_proof(shard: &[u8], index: u64) -> Option<Vec<[u8; 32]>> {
    let mut level = leaves(shard);
    let mut i = usize::try_from(index).ok()?;
    if i >= level.len() {
        return None;
    }
    let mut path = Vec::new();
    while level.len() > 1 {
        let sib = i ^ 1;
        if sib < level.len() {
            path.push(level[sib]);
        }
        level = next_level(&level);
        i /= 2;
    }
    Some(path)
}

/// Whether `leaf` is leaf `index` of a shard of `len` bytes with Merkle root `root`, by `path`.
pub fn verify_leaf(root: &[u8; 32], len: u64, index: u64, leaf: &[u8], path: &[[u8; 32]]) -> bool {
    let Some((a, b)) = leaf_range(len, index) else {
        return false;
    };
    if leaf.len() as u64 != b - a || path.len() > MAX_PATH {
        return false;
    }
    let mut h = leaf_hash(leaf);
    let (mut i, mut n) = (index, leaf_count(len));
    let mut it = path.iter();
    while n > 1 {
        let sib = i ^ 1;
        if sib < n {
            let Some(s) = it.next() else {
                return false;
            };
            h = if i % 2 == 0 {
                node_hash(&h, s)
            } else {
                node_hash(s, &h)
            };
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    it.next().is_none() && h == *root
}

/// The leaf audited for shard `index` of `object` by the challenge seed `seed` (the block hash
/// the chain drew the epoch's challenges from).
pub fn challenge_leaf(seed: &[u8; 32], object: &[u8; 32], index: u32, len: u64) -> u64 {
    let h = domain_hash(CHALLENGE_DOMAIN, &[seed, object, &index.to_be_bytes()]);
    let mut x = [0u8; 8];
    x.copy_from_slice(&h[..8]);
    u64::from_be_bytes(x) % leaf_count(len)
}

/// A holder's signed acknowledgement that it stores shard `index` of `object`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardReceipt {
    /// Chain id (a receipt for a test network is void on another).
    pub chain_id: String,
    /// Content address (SHA-256) of the whole object.
    pub object: [u8; 32],
    /// Shard index among the stripe's K+M.
    pub index: u32,
    /// Merkle root of the shard.
    pub root: [u8; 32],
    /// Shard length in bytes.
    pub len: u64,
}

impl ShardReceipt {
    /// `SHA-256(RECEIPT_DOMAIN ‖ 0 ‖ framed[chain_id, object, index, root, len])`, every field
    /// length-prefixed (u32 BE), integers big-endian.
    pub fn digest(&self) -> [u8; 32] {
        let fields: [&[u8]; 5] = [
            self.chain_id.as_bytes(),
            &self.object,
            &self.index.to_be_bytes(),
            &self.root,
            &self.len.to_be_bytes(),
        ];
        framed_hash(RECEIPT_DOMAIN, &fields)
    }

    /// Signs the digest with the node key → 64 bytes `r ‖ s` (RFC 6979, low-S).
    pub fn sign(&self, secret: &[u8; 32]) -> Result<[u8; 64], ClaimError> {
        sign_node(secret, &self.digest())
    }

    /// Verifies `sig` against the holder's compressed node key `pubkey` (33 bytes).
    pub fn verify(&self, pubkey: &[u8], sig: &[u8]) -> Result<(), ClaimError> {
        verify_node(pubkey, &self.digest(), sig)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bytes(n: usize, salt: u8) -> Vec<u8> {
        (0..n).map(|i| (i as u8).wrapping_mul(31) ^ salt).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every leaf of every shard length proves against the root, and only at its index.
        #[test]
        fn every_leaf_proves_and_no_other_leaf_does(len in 0usize..5000, salt in any::<u8>()) {
            let s = bytes(len, salt);
            let root = merkle_root(&s);
            let n = leaf_count(len as u64);
            for i in 0..n {
                let (a, b) = leaf_range(len as u64, i).unwrap();
                let leaf = &s[a as usize..b as usize];
                let p = merkle_proof(&s, i).unwrap();
                prop_assert!(verify_leaf(&root, len as u64, i, leaf, &p));
                if n > 1 {
                    let j = (i + 1) % n;
                    let (c, d) = leaf_range(len as u64, j).unwrap();
                    let same = &s[c as usize..d as usize] == leaf;
                    let ok = verify_leaf(&root, len as u64, j, leaf, &p);
                    prop_assert!(!ok || same, "leaf {} proved at index {}", i, j);
                }
            }
        }

        /// Flipping any byte of a leaf, or any byte of its path, breaks the proof.
        #[test]
        fn a_tampered_leaf_or_path_fails(len in 1usize..3000, pick in any::<u64>(), bit in 0u8..8) {
            let s = bytes(len, 7);
            let root = merkle_root(&s);
            let i = pick % leaf_count(len as u64);
            let (a, b) = leaf_range(len as u64, i).unwrap();
            let mut leaf = s[a as usize..b as usize].to_vec();
            let path = merkle_proof(&s, i).unwrap();
            let k = (pick as usize / 7) % leaf.len();
            leaf[k] ^= 1 << bit;
            prop_assert!(!verify_leaf(&root, len as u64, i, &leaf, &path));
            if !path.is_empty() {
                let leaf = &s[a as usize..b as usize];
                let mut bad = path.clone();
                let j = (pick as usize) % bad.len();
                bad[j][0] ^= 1 << bit;
                prop_assert!(!verify_leaf(&root, len as u64, i, leaf, &bad));
            }
        }
    }

    #[test]
    fn a_proof_with_an_extra_or_missing_step_is_refused() {
        let s = bytes(5 * LEAF_SIZE + 17, 3);
        let root = merkle_root(&s);
        let p = merkle_proof(&s, 2).unwrap();
        let leaf = &s[2 * LEAF_SIZE..3 * LEAF_SIZE];
        assert!(verify_leaf(&root, s.len() as u64, 2, leaf, &p));
        let mut longer = p.clone();
        longer.push([0; 32]);
        assert!(!verify_leaf(&root, s.len() as u64, 2, leaf, &longer));
        assert!(!verify_leaf(
            &root,
            s.len() as u64,
            2,
            leaf,
            &p[..p.len() - 1]
        ));
        assert!(!verify_leaf(&root, s.len() as u64, 99, leaf, &p));
    }

    #[test]
    fn the_root_of_a_known_shard_is_stable() {
        // Golden value: changing the tree shape changes every root on chain.
        let s = bytes(3 * LEAF_SIZE + 1, 0);
        assert_eq!(
            hex_of(&merkle_root(&s)),
            hex_of(&node_hash(
                &node_hash(&leaf_hash(&s[..256]), &leaf_hash(&s[256..512])),
                &node_hash(&leaf_hash(&s[512..768]), &leaf_hash(&s[768..]))
            ))
        );
        let odd = bytes(3 * LEAF_SIZE, 0);
        assert_eq!(
            merkle_root(&odd),
            node_hash(
                &node_hash(&leaf_hash(&odd[..256]), &leaf_hash(&odd[256..512])),
                &leaf_hash(&odd[512..])
            )
        );
        assert_eq!(merkle_root(&[]), leaf_hash(&[]));
    }

    fn hex_of(b: &[u8; 32]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn a_receipt_verifies_only_with_its_holder_key_and_fields() {
        let sk = [7u8; 32];
        let pk = k256::ecdsa::SigningKey::from_slice(&sk)
            .unwrap()
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec();
        let r = ShardReceipt {
            chain_id: "magnet-devnet".into(),
            object: [1; 32],
            index: 3,
            root: [2; 32],
            len: 1000,
        };
        let sig = r.sign(&sk).unwrap();
        r.verify(&pk, &sig).unwrap();
        let mut other = r.clone();
        other.index = 4;
        assert!(other.verify(&pk, &sig).is_err());
        let mut other = r.clone();
        other.chain_id = "other".into();
        assert!(other.verify(&pk, &sig).is_err());
        let pk2 = k256::ecdsa::SigningKey::from_slice(&[8u8; 32])
            .unwrap()
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec();
        assert!(r.verify(&pk2, &sig).is_err());
    }

    #[test]
    fn challenge_leaves_stay_in_range() {
        for len in [0u64, 1, 255, 256, 257, 100_000] {
            for s in 0..20u8 {
                assert!(challenge_leaf(&[s; 32], &[1; 32], 2, len) < leaf_count(len));
            }
        }
    }
}
