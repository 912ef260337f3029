//! The network and storage edge of `magnet-diloco`'s round state machine.
//!
//! The machine decides; this module carries its decisions out and turns what happens into
//! events:
//!
//! * **peers** come from the chain's registry (node id, key, endpoint, operator); only
//!   registered keys are accepted by this node's p2p verifier;
//! * **messages** (announcement, gradient-ready, merged, aborted) travel as signed
//!   `PeerService/Diloco` requests; [`parse_message`] refuses a message whose claimed sender
//!   is not the key that signed it;
//! * **Δs** are stored as shards keyed by the SHA-256 of their wire bytes, in this node's store
//!   *and* pushed to the leader (dual path: the leader pulls what a push missed);
//! * **checkpoints** (parameters + outer momentum) are stored as shards keyed by their
//!   checkpoint hash and verified against it on every fetch.

use std::collections::BTreeMap;
use std::sync::Arc;

use magnet_diloco::round::{GradientReady, RoundAborted, RoundAnnouncement, RoundMerged};
use magnet_diloco::{Checkpoint, Digest, Event, NodeId};
use magnet_p2p::backend::ShardBackend;
use magnet_p2p::{
    DirShardBackend, Expect, NodeTls, PeerClient, PublicKey, ShardKey, Signer, Verifier,
};
use magnet_proto::p2p::v1::DilocoMessage;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::{DaemonError, Result};

/// A registered peer as the chain lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// `node-<16 hex>`.
    pub node_id: String,
    /// Compressed node key.
    pub pubkey: Vec<u8>,
    /// p2p endpoint.
    pub endpoint: String,
    /// Operator account (bech32).
    pub operator: String,
    /// Node account (bech32).
    pub node: String,
    /// Tier.
    pub tier: String,
    /// Active and not jailed.
    pub active: bool,
    /// Block time of its last heartbeat.
    pub last_heartbeat: u64,
}

/// The registry's node record, as its JSON query returns it (fields this daemon reads).
#[derive(Clone, Debug, Deserialize)]
pub struct NodeRecordJson {
    /// Operator.
    pub operator: String,
    /// Node account.
    pub node: String,
    /// Compressed node key (hex).
    pub node_pubkey: String,
    /// Node id.
    pub node_id: String,
    /// Tier.
    pub tier: String,
    /// Endpoint.
    pub endpoint: String,
    /// Bond (decimal umag).
    pub bond: String,
    /// `"Active"` or `{"Unbonding": …}`.
    pub status: serde_json::Value,
    /// Jailed.
    pub jailed: bool,
    /// Last heartbeat.
    pub last_heartbeat: u64,
}

impl NodeRecordJson {
    /// As a [`Peer`].
    pub fn to_peer(&self) -> Peer {
        Peer {
            node_id: self.node_id.clone(),
            pubkey: hex::decode(&self.node_pubkey).unwrap_or_default(),
            endpoint: self.endpoint.clone(),
            operator: self.operator.clone(),
            node: self.node.clone(),
            tier: self.tier.clone(),
            active: self.status == serde_json::Value::String("Active".into()) && !self.jailed,
            last_heartbeat: self.last_heartbeat,
        }
    }
}

/// Message kinds on the wire.
pub mod kind {
    /// [`super::RoundAnnouncement`].
    pub const ANNOUNCEMENT: &str = "announcement";
    /// [`super::GradientReady`].
    pub const GRADIENT_READY: &str = "gradient_ready";
    /// [`super::RoundMerged`].
    pub const MERGED: &str = "merged";
    /// [`super::RoundAborted`].
    pub const ABORTED: &str = "aborted";
}

/// Turns a verified p2p message into a round event, refusing one whose claimed sender is not
/// the signer.
pub fn parse_message(from: &str, m: &DilocoMessage) -> Result<Event> {
    let bad = |e: serde_json::Error| DaemonError::Diloco(format!("{} from {from}: {e}", m.kind));
    let claimed_ok = |claimed: &NodeId| -> Result<()> {
        if claimed.as_str() == from {
            Ok(())
        } else {
            Err(DaemonError::Diloco(format!(
                "{} claims to come from {claimed} but {from} signed it",
                m.kind
            )))
        }
    };
    match m.kind.as_str() {
        kind::ANNOUNCEMENT => {
            let a: RoundAnnouncement = serde_json::from_slice(&m.json).map_err(bad)?;
            claimed_ok(&a.leader)?;
            Ok(Event::Announcement(a))
        }
        kind::GRADIENT_READY => {
            let g: GradientReady = serde_json::from_slice(&m.json).map_err(bad)?;
            claimed_ok(&g.from)?;
            Ok(Event::GradientReady(g))
        }
        kind::MERGED => {
            let r: RoundMerged = serde_json::from_slice(&m.json).map_err(bad)?;
            claimed_ok(&r.record.leader)?;
            Ok(Event::Merged(r))
        }
        kind::ABORTED => {
            let a: RoundAborted = serde_json::from_slice(&m.json).map_err(bad)?;
            claimed_ok(&a.leader)?;
            Ok(Event::Aborted(a))
        }
        other => Err(DaemonError::Diloco(format!(
            "unknown DiLoCo message kind {other:?} from {from}"
        ))),
    }
}

/// SHA-256 of `bytes` (the content address of a Δ).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The shard key of a Δ's wire bytes.
pub fn delta_key(bytes: &[u8]) -> ShardKey {
    ShardKey {
        object_id: sha256(bytes),
        index: 0,
    }
}

/// The shard key of a checkpoint.
pub fn checkpoint_key(hash: &Digest) -> ShardKey {
    ShardKey {
        object_id: hash.0,
        index: 0,
    }
}

/// Everything needed to talk to peers.
#[derive(Clone)]
pub struct Net {
    /// This node's TLS identity.
    pub tls: NodeTls,
    /// Request signer.
    pub signer: Signer,
    /// Verifier for answers.
    pub verifier: Arc<Verifier>,
    /// This node's shard store.
    pub backend: Arc<DirShardBackend>,
    /// Registered peers by node id.
    pub peers: Arc<std::sync::RwLock<BTreeMap<String, Peer>>>,
}

impl std::fmt::Debug for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Net")
    }
}

impl Net {
    /// The registered peer `id`.
    pub fn peer(&self, id: &str) -> Result<Peer> {
        self.peers
            .read()
            .map_err(|_| DaemonError::State("peer table lock poisoned".into()))?
            .get(id)
            .cloned()
            .ok_or_else(|| DaemonError::P2p(format!("{id} is not a registered node")))
    }

    /// Dials `id`, requiring it to prove its registered key.
    pub async fn connect(&self, id: &str) -> Result<PeerClient> {
        let p = self.peer(id)?;
        let key = PublicKey::from_bytes(&p.pubkey)
            .map_err(|e| DaemonError::P2p(format!("{id}'s registered key: {e}")))?;
        let c = PeerClient::connect(
            &p.endpoint,
            Expect::Key(key),
            &self.tls,
            self.signer.clone(),
            self.verifier.clone(),
        )
        .await?;
        Ok(c)
    }

    /// Sends a DiLoCo message to `id`; `Ok(false)` if it runs no round engine.
    pub async fn send(&self, id: &str, kind: &str, json: Vec<u8>) -> Result<bool> {
        let mut c = self.connect(id).await?;
        Ok(c.diloco(kind, json).await?)
    }

    /// Stores `bytes` locally under `key`.
    pub fn put_local(&self, key: &ShardKey, bytes: &[u8]) -> Result<()> {
        self.backend
            .put_shard(key, bytes)
            .map_err(|e| DaemonError::P2p(format!("storing shard locally: {e}")))
    }

    /// Reads `key` from the local store.
    pub fn get_local(&self, key: &ShardKey) -> Result<Option<Vec<u8>>> {
        self.backend
            .get_shard(key)
            .map_err(|e| DaemonError::P2p(format!("reading local shard: {e}")))
    }

    /// Pushes `bytes` under `key` to peer `id`.
    pub async fn push(&self, id: &str, key: &ShardKey, bytes: &[u8]) -> Result<()> {
        let mut c = self.connect(id).await?;
        c.put_shard(key, bytes).await?;
        Ok(())
    }

    /// Fetches `key` from peer `id`, checking the bytes against `expect_sha256` when given.
    pub async fn fetch(
        &self,
        id: &str,
        key: &ShardKey,
        expect_sha256: Option<[u8; 32]>,
    ) -> Result<Vec<u8>> {
        let mut c = self.connect(id).await?;
        Ok(c.get_shard(key, expect_sha256).await?)
    }

    /// The checkpoint `hash`: from the local store, else from the first of `holders` that has
    /// it (verified against `hash`, then stored locally).
    pub async fn checkpoint(&self, hash: &Digest, holders: &[String]) -> Result<(Checkpoint, u64)> {
        let key = checkpoint_key(hash);
        if let Some(b) = self.get_local(&key)? {
            let c = parse_checkpoint(&b, hash)?;
            return Ok((c, 0));
        }
        let mut errors = Vec::new();
        for h in holders {
            match self.fetch(h, &key, None).await {
                Ok(b) => match parse_checkpoint(&b, hash) {
                    Ok(c) => {
                        self.put_local(&key, &b)?;
                        return Ok((c, b.len() as u64));
                    }
                    Err(e) => errors.push(format!("{h}: {e}")),
                },
                Err(e) => errors.push(format!("{h}: {e}")),
            }
        }
        Err(DaemonError::Diloco(format!(
            "checkpoint {hash} is not available: {}",
            if errors.is_empty() {
                "no holder known".to_string()
            } else {
                errors.join("; ")
            }
        )))
    }
}

/// Parses checkpoint bytes and checks their hash.
pub fn parse_checkpoint(b: &[u8], want: &Digest) -> Result<Checkpoint> {
    let c = Checkpoint::from_bytes(b).map_err(|e| DaemonError::Diloco(e.to_string()))?;
    let got = c.hash();
    if &got != want {
        return Err(DaemonError::Diloco(format!(
            "checkpoint hashes to {got}, expected {want}"
        )));
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(leader: &str) -> Vec<u8> {
        serde_json::to_vec(&RoundAnnouncement {
            job_id: 1,
            round: 0,
            leader: NodeId::new(leader).unwrap(),
            start_height: 10,
            inner_steps: 5,
            deadline: 1,
            base_hash: Digest([0; 32]),
        })
        .unwrap()
    }

    #[test]
    fn a_message_is_accepted_only_from_the_sender_it_names() {
        let m = DilocoMessage {
            kind: kind::ANNOUNCEMENT.into(),
            json: ann("node-aaaa"),
        };
        assert!(matches!(
            parse_message("node-aaaa", &m),
            Ok(Event::Announcement(_))
        ));
        let e = parse_message("node-bbbb", &m).unwrap_err().to_string();
        assert!(e.contains("claims to come from node-aaaa"), "{e}");
    }

    #[test]
    fn malformed_and_unknown_messages_are_typed_errors() {
        let cases = [
            (kind::ANNOUNCEMENT, b"{".to_vec(), "announcement from"),
            (kind::MERGED, b"[]".to_vec(), "merged from"),
            ("gossip", b"{}".to_vec(), "unknown DiLoCo message kind"),
        ];
        for (k, json, needle) in cases {
            let m = DilocoMessage {
                kind: k.into(),
                json,
            };
            let e = parse_message("node-aaaa", &m).unwrap_err().to_string();
            assert!(e.contains(needle), "{k}: {e}");
        }
    }

    #[test]
    fn a_checkpoint_with_the_wrong_hash_is_refused() {
        let c = Checkpoint::new(vec![1.0, 2.0]);
        let b = c.to_bytes();
        assert_eq!(parse_checkpoint(&b, &c.hash()).unwrap(), c);
        let e = parse_checkpoint(&b, &Digest([7; 32]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("expected"), "{e}");
        assert!(parse_checkpoint(&b[..3], &c.hash()).is_err());
    }
}
