//! Identifiers and hashes shared by every part of the crate.
//!
//! Every hash here is SHA-256 over a domain-separated input (`MAGNET/diloco/v1/<what>\0`
//! followed by the bytes), so a digest of one kind can never be replayed as another kind.

use std::fmt;

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_LEN: usize = 128;

/// A node's p2p identity (`node-<16 hex>` in MAGNET, see paper §12.1).
///
/// Ordering is byte order of the string; `sorted(eligible)` in leader election means this order.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, BorshSerialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct NodeId(String);

impl BorshDeserialize for NodeId {
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let s = String::deserialize_reader(reader)?;
        NodeId::new(s)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// A node id was empty, too long, or not printable ASCII.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid node id {id:?}: must be 1..={MAX_NODE_ID_LEN} bytes of printable ASCII without spaces"
)]
pub struct NodeIdError {
    /// The rejected input (truncated to 64 chars).
    pub id: String,
}

impl NodeId {
    /// Checks and wraps a node id.
    pub fn new(id: impl Into<String>) -> Result<Self, NodeIdError> {
        let id = id.into();
        let ok = !id.is_empty()
            && id.len() <= MAX_NODE_ID_LEN
            && id.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(id))
        } else {
            Err(NodeIdError {
                id: id.chars().take(64).collect(),
            })
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NodeId {
    type Error = NodeIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<NodeId> for String {
    fn from(n: NodeId) -> String {
        n.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A 32-byte SHA-256 digest (checkpoint hash, Δ hash, block hash, record hash).
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(pub [u8; 32]);

/// A digest string was not 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid digest {input:?}: expected 64 hex characters")]
pub struct DigestError {
    /// The rejected input (truncated to 80 chars).
    pub input: String,
}

impl Digest {
    /// Hex form (64 lowercase characters).
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Result<Self, DigestError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| DigestError {
            input: s.chars().take(80).collect(),
        })?;
        Ok(Self(out))
    }

    /// SHA-256 of `domain ‖ 0x00 ‖ parts...`.
    pub fn domain_hash(domain: &str, parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update([0u8]);
        for p in parts {
            h.update(p);
        }
        Self(h.finalize().into())
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::from_hex(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.to_hex()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", &self.to_hex()[..16])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Domain of [`delta_hash`].
pub const DELTA_DOMAIN: &str = "MAGNET/diloco/v1/delta";

/// Canonical hash of a pseudo-gradient Δ as the leader merges it (the *decoded* f32 vector,
/// whatever wire compression carried it): `SHA-256(domain ‖ 0 ‖ len u64 LE ‖ f32 LE bytes)`.
pub fn delta_hash(delta: &[f32]) -> Digest {
    let mut h = Sha256::new();
    h.update(DELTA_DOMAIN.as_bytes());
    h.update([0u8]);
    h.update((delta.len() as u64).to_le_bytes());
    update_f32s(&mut h, delta);
    Digest(h.finalize().into())
}

/// Feeds `values` as little-endian bytes to `h`, in 16 KiB blocks (one `update` per value
/// would dominate the cost of hashing a large vector).
pub(crate) fn update_f32s(h: &mut Sha256, values: &[f32]) {
    let mut buf = [0u8; 16 * 1024];
    for block in values.chunks(buf.len() / 4) {
        for (dst, x) in buf.chunks_exact_mut(4).zip(block) {
            dst.copy_from_slice(&x.to_le_bytes());
        }
        h.update(&buf[..block.len() * 4]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_reject_empty_spaces_and_overlong() {
        assert!(NodeId::new("node-0123456789abcdef").is_ok());
        for bad in ["", "node 1", &"x".repeat(MAX_NODE_ID_LEN + 1), "nöde"] {
            assert!(NodeId::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn digest_hex_round_trips_and_rejects_garbage() {
        let d = Digest::domain_hash("t", &[b"x"]);
        assert_eq!(Digest::from_hex(&d.to_hex()).unwrap(), d);
        assert!(Digest::from_hex("zz").is_err());
        assert!(Digest::from_hex(&"0".repeat(62)).is_err());
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    }

    #[test]
    fn delta_hash_depends_on_every_value_and_the_length() {
        let a = delta_hash(&[1.0, 2.0]);
        assert_ne!(a, delta_hash(&[1.0, 2.5]));
        assert_ne!(a, delta_hash(&[1.0, 2.0, 0.0]));
        assert_ne!(delta_hash(&[0.0]), delta_hash(&[-0.0]));
    }
}
