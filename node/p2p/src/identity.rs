//! Node identity: the secp256k1 wallet key and the display name derived from it.
//!
//! `nodeId = "node-" ‖ hex(SHA-256(compressed public key))[..16]` (paper §12.1). The nodeId is
//! a 64-bit *display name*: peers are authenticated by their full public key, and the nodeId is
//! only ever accepted together with a key that hashes to it.
//!
//! This module guarantees that a [`NodeId`] is well-formed (prefix plus 16 lowercase hex digits)
//! and that [`NodeKey::node_id`] is the derivation above. It does not keep keys secret on disk
//! beyond file permissions (0600 on Unix).

use std::fmt;
use std::path::Path;

use k256::ecdsa::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Length of a compressed secp256k1 public key.
pub const PUBKEY_LEN: usize = 33;

/// Errors about keys and node ids.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The string is not `node-` followed by 16 lowercase hex digits.
    #[error("malformed node id {0:?}: expected \"node-\" followed by 16 lowercase hex digits")]
    MalformedNodeId(String),
    /// The bytes are not a valid compressed secp256k1 public key.
    #[error("invalid secp256k1 public key ({len} bytes): expected a 33-byte compressed point")]
    InvalidPublicKey {
        /// Length of the rejected input.
        len: usize,
    },
    /// The secret key file is unreadable or malformed.
    #[error("node key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

/// A node's display identity, `node-` plus 16 hex digits.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// Derives the nodeId of a compressed public key.
    pub fn from_public_key(pk: &PublicKey) -> Self {
        let h = Sha256::digest(pk.to_bytes());
        NodeId(format!("node-{}", &hex::encode(h)[..16]))
    }

    /// Parses and validates a nodeId string.
    pub fn parse(s: &str) -> Result<Self, IdentityError> {
        let ok = s.len() == 21
            && s.starts_with("node-")
            && s[5..]
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(NodeId(s.to_owned()))
        } else {
            Err(IdentityError::MalformedNodeId(s.chars().take(64).collect()))
        }
    }

    /// The string form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

/// A validated compressed secp256k1 public key.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses a 33-byte compressed SEC1 point.
    pub fn from_bytes(b: &[u8]) -> Result<Self, IdentityError> {
        if b.len() != PUBKEY_LEN {
            return Err(IdentityError::InvalidPublicKey { len: b.len() });
        }
        VerifyingKey::from_sec1_bytes(b)
            .map(PublicKey)
            .map_err(|_| IdentityError::InvalidPublicKey { len: b.len() })
    }

    /// The 33-byte compressed encoding.
    pub fn to_bytes(&self) -> [u8; PUBKEY_LEN] {
        let ep = self.0.to_encoded_point(true);
        let mut out = [0u8; PUBKEY_LEN];
        out.copy_from_slice(ep.as_bytes());
        out
    }

    /// The nodeId this key maps to.
    pub fn node_id(&self) -> NodeId {
        NodeId::from_public_key(self)
    }

    /// The underlying k256 key.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.0
    }

    pub(crate) fn from_verifying_key(vk: VerifyingKey) -> Self {
        PublicKey(vk)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.to_bytes()))
    }
}

/// A node's secret key (the same secp256k1 key as its chain account).
#[derive(Clone)]
pub struct NodeKey {
    sk: SigningKey,
    pk: PublicKey,
    id: NodeId,
}

impl NodeKey {
    /// Wraps a k256 signing key.
    pub fn from_signing_key(sk: SigningKey) -> Self {
        let pk = PublicKey(*sk.verifying_key());
        let id = pk.node_id();
        NodeKey { sk, pk, id }
    }

    /// Generates a fresh key from the OS random source.
    pub fn generate() -> Self {
        Self::from_signing_key(SigningKey::random(&mut rand::rngs::OsRng))
    }

    /// Builds a key from 32 secret bytes (a scalar in [1, n)).
    pub fn from_secret_bytes(b: &[u8]) -> Result<Self, IdentityError> {
        SigningKey::from_slice(b)
            .map(Self::from_signing_key)
            .map_err(|_| IdentityError::KeyFile {
                path: "<bytes>".into(),
                reason: "not a valid secp256k1 secret scalar".into(),
            })
    }

    /// Loads the hex-encoded secret key at `path`, creating a fresh one (mode 0600) if absent.
    pub fn load_or_generate(path: &Path) -> Result<Self, IdentityError> {
        let err = |reason: String| IdentityError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
            let bytes = hex::decode(text.trim()).map_err(|e| err(format!("not hex: {e}")))?;
            return Self::from_secret_bytes(&bytes)
                .map_err(|_| err("not a valid secp256k1 secret scalar".into()));
        }
        let key = Self::generate();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(path).map_err(|e| err(e.to_string()))?;
        std::io::Write::write_all(&mut f, hex::encode(key.sk.to_bytes()).as_bytes())
            .map_err(|e| err(e.to_string()))?;
        Ok(key)
    }

    /// The public key.
    pub fn public_key(&self) -> PublicKey {
        self.pk
    }

    /// The nodeId.
    pub fn node_id(&self) -> &NodeId {
        &self.id
    }

    /// Signs `msg` as k256's `Signer` does (SHA-256 of `msg`, RFC 6979, low-S): returns
    /// r ‖ s (64 bytes) — the form of `magnet_rounds` signatures such as custody receipts.
    pub fn sign_message(&self, msg: &[u8]) -> [u8; 64] {
        use k256::ecdsa::signature::Signer as _;
        let sig: k256::ecdsa::Signature = self.sk.sign(msg);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        out
    }

    /// Signs a 32-byte digest: returns r ‖ s ‖ recovery id (65 bytes), low-S.
    pub fn sign_digest(&self, digest: &[u8; 32]) -> [u8; 65] {
        let mut out = [0u8; 65];
        // k256 produces normalized (low-S) signatures; sign_prehash only fails for digests
        // shorter than the field size, which a 32-byte digest never is.
        match self.sk.sign_prehash_recoverable(digest) {
            Ok((sig, recid)) => {
                out[..64].copy_from_slice(&sig.to_bytes());
                out[64] = recid.to_byte();
            }
            Err(_) => unreachable_sign(),
        }
        out
    }
}

#[cold]
fn unreachable_sign() {
    // A 32-byte prehash is always accepted by k256; keep an all-zero signature, which every
    // verifier rejects, rather than panic.
    tracing::error!("secp256k1 signing of a 32-byte digest failed");
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeKey({}, secret hidden)", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_is_prefix_of_sha256_of_compressed_key() {
        let key = NodeKey::from_secret_bytes(&[7u8; 32]).unwrap();
        let pk = key.public_key().to_bytes();
        let expect = format!("node-{}", &hex::encode(Sha256::digest(pk))[..16]);
        assert_eq!(key.node_id().as_str(), expect);
        assert!(NodeId::parse(&expect).is_ok());
    }

    #[test]
    fn malformed_node_ids_are_rejected() {
        for bad in [
            "",
            "node-",
            "node-0123456789abcdeF",
            "node-0123456789abcde",
            "nodx-0123456789abcdef",
            "node-0123456789abcdef0",
        ] {
            assert!(NodeId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_file_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k/node.key");
        let a = NodeKey::load_or_generate(&p).unwrap();
        let b = NodeKey::load_or_generate(&p).unwrap();
        assert_eq!(a.node_id(), b.node_id());
    }
}
