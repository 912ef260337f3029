//! Custody receipts on shard uploads (ADR 0107).
//!
//! A node configured with a [`ReceiptConfig`] answers every accepted `PutShard` with the
//! Merkle root ([`magnet_rounds::custody::merkle_root`]) of the bytes it verified and stored,
//! and its node key's signature over [`ShardReceipt`]`{chain_id, object, index, root, len}`.
//! The chain registers a stripe only with a receipt from every holder it names, so the uploader
//! checks each receipt with [`verify_receipt`] against the holder's registered key and the
//! root it computed itself before relying on it.
//!
//! # Security
//! Verified: the signature is by the expected holder key, over this chain id, object, index,
//! root and length, and the root is the one the uploader computed from its own bytes.
//! Not verified: that the holder keeps the bytes afterwards (audits do that).

use magnet_proto::p2p::v1::PutShardResponse;
use magnet_rounds::custody::{merkle_root, ShardReceipt};

use crate::backend::ShardKey;
use crate::identity::{NodeKey, PublicKey};

/// What a node needs to sign custody receipts: the chain they are valid on and its node key
/// (the secp256k1 key the chain has registered for it — the same key as its p2p identity).
#[derive(Clone)]
pub struct ReceiptConfig {
    /// Chain id bound into every receipt.
    pub chain_id: String,
    /// The node key that signs.
    pub key: NodeKey,
}

impl std::fmt::Debug for ReceiptConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReceiptConfig({}, {:?})", self.chain_id, self.key)
    }
}

impl ReceiptConfig {
    /// The receipt for shard `key` with bytes `data`: `(merkle_root, 64-byte signature)`.
    pub fn sign(&self, key: &ShardKey, data: &[u8]) -> ([u8; 32], [u8; 64]) {
        let root = merkle_root(data);
        let r = ShardReceipt {
            chain_id: self.chain_id.clone(),
            object: key.object_id,
            index: key.index,
            root,
            len: data.len() as u64,
        };
        (root, self.key.sign_message(&r.digest()))
    }
}

/// Why a receipt was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The holder returned no receipt (it is not configured to sign them).
    #[error("holder returned no custody receipt for {0}")]
    Missing(ShardKey),
    /// The holder's Merkle root differs from the one computed from the bytes sent.
    #[error("holder reports Merkle root {got} for {key}, the bytes sent have {want}")]
    RootMismatch {
        /// The shard.
        key: ShardKey,
        /// Root computed locally.
        want: String,
        /// Root the holder returned.
        got: String,
    },
    /// The holder acknowledged another length.
    #[error("holder acknowledged {got} bytes for {key}, {want} were sent")]
    LengthMismatch {
        /// The shard.
        key: ShardKey,
        /// Bytes sent.
        want: u64,
        /// Bytes acknowledged.
        got: u64,
    },
    /// The signature is not the expected holder's over this receipt.
    #[error("receipt for {key} does not verify against the holder key: {reason}")]
    BadSignature {
        /// The shard.
        key: ShardKey,
        /// Cause.
        reason: String,
    },
}

/// A receipt that verified: what goes into `ShardPlacement{root, receipt}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedReceipt {
    /// Merkle root of the shard.
    pub root: [u8; 32],
    /// Shard length.
    pub len: u64,
    /// The holder's 64-byte signature.
    pub signature: Vec<u8>,
}

/// Checks the receipt in `resp` for shard `key` of length `len` whose locally computed Merkle
/// root is `root`, against the holder key `holder` on chain `chain_id`.
pub fn verify_receipt(
    chain_id: &str,
    holder: &PublicKey,
    key: &ShardKey,
    len: u64,
    root: &[u8; 32],
    resp: &PutShardResponse,
) -> Result<VerifiedReceipt, ReceiptError> {
    if resp.receipt.is_empty() {
        return Err(ReceiptError::Missing(*key));
    }
    if resp.merkle_root.as_slice() != root.as_slice() {
        return Err(ReceiptError::RootMismatch {
            key: *key,
            want: hex::encode(root),
            got: hex::encode(&resp.merkle_root),
        });
    }
    if resp.size != len {
        return Err(ReceiptError::LengthMismatch {
            key: *key,
            want: len,
            got: resp.size,
        });
    }
    let r = ShardReceipt {
        chain_id: chain_id.to_owned(),
        object: key.object_id,
        index: key.index,
        root: *root,
        len,
    };
    r.verify(&holder.to_bytes(), &resp.receipt)
        .map_err(|e| ReceiptError::BadSignature {
            key: *key,
            reason: e.to_string(),
        })?;
    Ok(VerifiedReceipt {
        root: *root,
        len,
        signature: resp.receipt.clone(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_receipt_verifies_with_magnet_rounds_and_only_for_its_holder() {
        let key = NodeKey::from_secret_bytes(&[9u8; 32]).unwrap();
        let cfg = ReceiptConfig {
            chain_id: "magnet-test".into(),
            key: key.clone(),
        };
        let sk = ShardKey {
            object_id: [4; 32],
            index: 2,
        };
        let data = vec![7u8; 1000];
        let (root, sig) = cfg.sign(&sk, &data);
        // The shared rule (what the chain runs) accepts it.
        ShardReceipt {
            chain_id: "magnet-test".into(),
            object: [4; 32],
            index: 2,
            root,
            len: 1000,
        }
        .verify(&key.public_key().to_bytes(), &sig)
        .unwrap();
        let resp = PutShardResponse {
            shard_hash: vec![],
            size: 1000,
            receipt: sig.to_vec(),
            merkle_root: root.to_vec(),
        };
        let ok = verify_receipt("magnet-test", &key.public_key(), &sk, 1000, &root, &resp).unwrap();
        assert_eq!(ok.signature, sig.to_vec());
        let other = NodeKey::from_secret_bytes(&[8u8; 32]).unwrap().public_key();
        assert!(matches!(
            verify_receipt("magnet-test", &other, &sk, 1000, &root, &resp),
            Err(ReceiptError::BadSignature { .. })
        ));
        assert!(verify_receipt("other-chain", &key.public_key(), &sk, 1000, &root, &resp).is_err());
        assert!(matches!(
            verify_receipt("magnet-test", &key.public_key(), &sk, 1000, &[0; 32], &resp),
            Err(ReceiptError::RootMismatch { .. })
        ));
        let empty = PutShardResponse::default();
        assert!(matches!(
            verify_receipt("magnet-test", &key.public_key(), &sk, 0, &root, &empty),
            Err(ReceiptError::Missing(_))
        ));
    }
}
