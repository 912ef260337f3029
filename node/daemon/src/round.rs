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

use magnet_core::Address;
use magnet_diloco::compress::Compressed;
use magnet_diloco::eligible::{EligibleSet, Member};
use magnet_diloco::round::{GradientReady, RoundAborted, RoundAnnouncement, RoundMerged};
use magnet_diloco::{Checkpoint, Digest, Event, LeaderRule, NodeId, RoundRecord};
use magnet_jobs::msgs::Accepted;
use magnet_p2p::backend::ShardBackend;
use magnet_p2p::{Expect, NodeTls, PeerClient, PublicKey, ShardKey, Signer, Verifier};
use magnet_proto::p2p::v1::DilocoMessage;
use magnet_rounds::WorkClaim;
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

/// The shard key under which a Δ's wire bytes are also stored by its Δ hash (the hash the
/// lineage names), so an evaluator holding only the lineage can fetch it from its producer.
pub fn delta_by_hash_key(hash: &Digest) -> ShardKey {
    let mut h = Sha256::new();
    h.update(b"MAGNET/delta-by-hash/v1");
    h.update(hash.0);
    ShardKey {
        object_id: h.finalize().into(),
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
    /// This node's shard store (hash-checked reads: a `StoreBackend` in the daemon).
    pub backend: Arc<dyn ShardBackend>,
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

    /// Reads `key` from the local store. A local copy that fails its hash check is dropped
    /// (logged and deleted) and reported as absent, so callers fall back to the network.
    pub fn get_local(&self, key: &ShardKey) -> Result<Option<Vec<u8>>> {
        match self.backend.get_shard(key) {
            Err(magnet_p2p::backend::BackendError::Corrupt(why)) => {
                tracing::warn!(shard = %key, "dropping a corrupt local shard: {why}");
                let _ = self.backend.delete_shard(key);
                Ok(None)
            }
            r => r.map_err(|e| DaemonError::P2p(format!("reading local shard: {e}"))),
        }
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

impl Net {
    /// The decoded Δ whose hash is `hash`: from the local store, else from the first of
    /// `holders` that serves bytes that parse and decode to that hash (then stored locally).
    pub async fn delta(&self, hash: &Digest, holders: &[String]) -> Result<Vec<f32>> {
        let key = delta_by_hash_key(hash);
        let check = |b: &[u8]| -> Result<Vec<f32>> {
            let c = Compressed::from_bytes(b).map_err(|e| DaemonError::Diloco(e.to_string()))?;
            let d = c.decode();
            if magnet_diloco::delta_hash(&d) != *hash {
                return Err(DaemonError::Diloco(format!(
                    "bytes served for Δ {hash} decode to another Δ"
                )));
            }
            Ok(d)
        };
        if let Some(b) = self.get_local(&key)? {
            if let Ok(d) = check(&b) {
                return Ok(d);
            }
        }
        let mut errors = Vec::new();
        for h in holders {
            match self.fetch(h, &key, None).await.and_then(|b| {
                let d = check(&b)?;
                Ok((b, d))
            }) {
                Ok((b, d)) => {
                    self.put_local(&key, &b)?;
                    return Ok(d);
                }
                Err(e) => errors.push(format!("{h}: {e}")),
            }
        }
        Err(DaemonError::Diloco(format!(
            "Δ {hash} is not available: {}",
            if errors.is_empty() {
                "no holder known".to_string()
            } else {
                errors.join("; ")
            }
        )))
    }
}

/// The [`magnet_rounds::WorkClaim`] a GradientReady stands for on chain `chain_id`: the Δ's
/// job, the round it is submitted to, its base, its hash, its steps and its tokens
/// (`data_size`).
pub fn claim_of(chain_id: &str, g: &GradientReady) -> WorkClaim {
    WorkClaim {
        chain_id: chain_id.to_string(),
        job: g.job_id,
        round: g.round,
        base_hash: g.base_hash.0,
        delta_hash: g.delta_hash.0,
        steps: g.steps,
        tokens: g.data_size,
    }
}

/// Signs `g`'s claim with the node key's secret, putting the hex signature in the signal.
pub fn sign_signal(chain_id: &str, secret: &[u8; 32], g: &mut GradientReady) -> Result<()> {
    let sig = claim_of(chain_id, g)
        .sign(secret)
        .map_err(|e| DaemonError::Keys(format!("signing the work claim: {e}")))?;
    g.signature = hex::encode(sig);
    Ok(())
}

/// Checks that `g`'s claim was signed by the node key `pubkey` (33-byte compressed).
pub fn verify_signal(chain_id: &str, pubkey: &[u8], g: &GradientReady) -> Result<()> {
    let sig = hex::decode(&g.signature).map_err(|_| {
        DaemonError::Diloco(format!(
            "GradientReady from {}: the claim signature is not hex",
            g.from
        ))
    })?;
    claim_of(chain_id, g)
        .verify(pubkey, &sig)
        .map_err(|e| DaemonError::Diloco(format!("GradientReady from {}: {e}", g.from)))
}

/// A round's election as `/magnet.jobs.v1/election` returns it.
#[derive(Clone, Debug, Deserialize)]
pub struct ElectionJson {
    /// Round.
    pub round: u64,
    /// Height the chain snapshotted it at.
    pub height: u64,
    /// Hash of that block (hex).
    pub block_hash: String,
    /// Leader rule (`hash` / `round_robin`).
    pub rule: String,
    /// Eligible node ids, sorted.
    pub members: Vec<String>,
    /// The chain's leader (empty when nobody was live).
    pub leader: String,
}

impl ElectionJson {
    /// The eligible set of `round` for the machine, which expects it at `height` (the
    /// round's scheduled start). Every member weighs with quality 1.0, as the chain
    /// recomputes the weights. Returns the set and warnings (a snapshot at another height, a
    /// member id that does not parse, a chain leader that differs from the local election).
    pub fn to_eligible(
        &self,
        round: u64,
        height: u64,
        rule: LeaderRule,
    ) -> Result<(EligibleSet, Vec<String>)> {
        let mut warnings = Vec::new();
        if self.round != round {
            return Err(DaemonError::Chain(format!(
                "asked for round {round}'s election, the chain answered round {}",
                self.round
            )));
        }
        if self.height != height {
            warnings.push(format!(
                "the chain snapshotted round {round} at height {}, the schedule says {height}",
                self.height
            ));
        }
        let block_hash = Digest::from_hex(&self.block_hash)
            .map_err(|e| DaemonError::Chain(format!("election block hash: {e}")))?;
        let mut members = BTreeMap::new();
        for m in &self.members {
            match NodeId::new(m.clone()) {
                Ok(id) => {
                    members.insert(id, Member::default());
                }
                Err(e) => warnings.push(format!("election member skipped: {e}")),
            }
        }
        let set = EligibleSet {
            height,
            block_hash,
            members,
        };
        let local = magnet_diloco::elect_leader(&set.ids(), round, &block_hash, rule)
            .map(|l| l.to_string())
            .unwrap_or_default();
        if local != self.leader {
            warnings.push(format!(
                "the chain elected {:?} for round {round}, this node elects {local:?} (rule {})",
                self.leader, self.rule
            ));
        }
        Ok((set, warnings))
    }
}

/// A round record as `MsgRecordRound` carries it: accepted Δs with their producers' node
/// accounts and signed claims, rejected Δs as (node account, Δ hash, reason). `node_account`
/// maps a node id to its node account (the registry's `node`); an accepted Δ whose producer
/// has none, or whose signature is not 64 hex bytes, is an error (the chain would refuse the
/// record); a rejected one without an account is left out.
#[allow(clippy::type_complexity)]
pub fn record_entries(
    record: &RoundRecord,
    node_account: impl Fn(&NodeId) -> Option<Address>,
) -> Result<(Vec<Accepted>, Vec<(Address, [u8; 32], String)>)> {
    let mut accepted = Vec::with_capacity(record.accepted.len());
    for a in &record.accepted {
        let node = node_account(&a.node).ok_or_else(|| {
            DaemonError::Chain(format!("{} has no registered node account", a.node))
        })?;
        let signature = hex::decode(&a.signature)
            .ok()
            .filter(|s| s.len() == 64)
            .ok_or_else(|| {
                DaemonError::Diloco(format!("{}'s claim signature is not 64 hex bytes", a.node))
            })?;
        accepted.push(Accepted {
            node,
            job: record.job_id,
            round: record.round,
            base_hash: a.base_hash.0,
            delta_hash: a.delta_hash.0,
            steps: a.steps,
            tokens: a.data_size,
            signature,
            weight_ppm: a.weight_ppm,
            content_address: [0u8; 32],
        });
    }
    let rejected = record
        .rejected
        .iter()
        .filter_map(|r| {
            let mut why = format!("{:?}", r.reason);
            while why.len() > 256 {
                why.pop();
            }
            node_account(&r.node).map(|n| (n, r.delta_hash.0, why))
        })
        .collect();
    Ok((accepted, rejected))
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

    /// The daemon's local store is a hash-checked `ShardStore`: Δ/checkpoint shards (index 0)
    /// round-trip, and a rotted local copy reads as absent (and is dropped) so the caller
    /// falls back to the network instead of failing or using bad bytes.
    #[test]
    fn local_fast_path_round_trips_and_drops_a_rotted_copy() {
        let dir = tempfile::tempdir().unwrap();
        let store = magnet_storage::ShardStore::open(dir.path()).unwrap();
        let key = magnet_p2p::NodeKey::from_secret_bytes(&[3u8; 32]).unwrap();
        let net = Net {
            tls: NodeTls::key_bound(&key, Arc::new(magnet_p2p::PinStore::in_memory())).unwrap(),
            signer: Signer::Wallet(key),
            verifier: Arc::new(Verifier::new(magnet_p2p::VerifyMode::Wallet {
                registry: None,
            })),
            backend: Arc::new(magnet_p2p::storage_glue::StoreBackend::new(store, 1 << 20)),
            peers: Default::default(),
        };
        let bytes = b"checkpoint bytes".to_vec();
        let k = checkpoint_key(&Digest(sha256(&bytes)));
        assert_eq!(k.index, 0);
        net.put_local(&k, &bytes).unwrap();
        assert_eq!(net.get_local(&k).unwrap(), Some(bytes.clone()));
        // Rot one byte of the file on disk.
        let obj = dir.path().join("shards").join(hex::encode(k.object_id));
        let f = std::fs::read_dir(&obj)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut b = std::fs::read(&f).unwrap();
        b[0] ^= 1;
        std::fs::write(&f, &b).unwrap();
        assert_eq!(net.get_local(&k).unwrap(), None);
        assert!(net
            .backend
            .list_shards(Some(&k.object_id))
            .unwrap()
            .is_empty());
        // Too big for the quota: a typed error, not a panic.
        let big = ShardKey {
            object_id: [9; 32],
            index: 0,
        };
        assert!(net.put_local(&big, &vec![0u8; 2 << 20]).is_err());
    }

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

    fn signal() -> GradientReady {
        GradientReady {
            job_id: 1,
            round: 4,
            from: NodeId::new("node-aaaa").unwrap(),
            base_hash: Digest([1; 32]),
            delta_hash: Digest([2; 32]),
            content_address: "ab".into(),
            local_loss: 1.0,
            data_size: 256,
            steps: 2,
            signature: String::new(),
        }
    }

    fn pubkey(secret: &[u8; 32]) -> Vec<u8> {
        k256::ecdsa::SigningKey::from_slice(secret)
            .unwrap()
            .verifying_key()
            .to_encoded_point(true)
            .as_bytes()
            .to_vec()
    }

    #[test]
    fn a_signed_gradient_verifies_against_its_key_and_nothing_else() {
        let sk = [7u8; 32];
        let mut g = signal();
        assert!(verify_signal("c-1", &pubkey(&sk), &g).is_err(), "unsigned");
        sign_signal("c-1", &sk, &mut g).unwrap();
        assert_eq!(g.signature.len(), 128);
        verify_signal("c-1", &pubkey(&sk), &g).unwrap();
        assert!(
            verify_signal("c-2", &pubkey(&sk), &g).is_err(),
            "other chain"
        );
        assert!(
            verify_signal("c-1", &pubkey(&[8u8; 32]), &g).is_err(),
            "other key"
        );
        let mut more = g.clone();
        more.data_size += 1;
        assert!(verify_signal("c-1", &pubkey(&sk), &more).is_err(), "tokens");
        let mut later = g.clone();
        later.round += 1;
        assert!(verify_signal("c-1", &pubkey(&sk), &later).is_err(), "round");
        // What the chain checks is the same claim.
        let sig = hex::decode(&g.signature).unwrap();
        claim_of("c-1", &g).verify(&pubkey(&sk), &sig).unwrap();
    }

    #[test]
    fn the_chains_election_becomes_the_eligible_set() {
        let e: ElectionJson = serde_json::from_value(serde_json::json!({
            "round": 3, "height": 40, "block_hash": hex::encode([9u8; 32]), "rule": "round_robin",
            "members": ["node-a", "node-b", "node-c"], "leader": "node-a",
        }))
        .unwrap();
        let (set, warnings) = e.to_eligible(3, 40, LeaderRule::RoundRobin).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(set.height, 40);
        assert_eq!(set.block_hash, Digest([9; 32]));
        assert_eq!(set.members.len(), 3);
        assert!(set.members.values().all(|m| m.quality_bps == 10_000));
        // 3 mod 3 = 0 → node-a, as the chain said; another height or leader is a warning.
        let (_, warnings) = e.to_eligible(3, 41, LeaderRule::BlockHashSeeded).unwrap();
        assert!(
            warnings.iter().any(|w| w.contains("height 40")),
            "{warnings:?}"
        );
        assert!(e.to_eligible(4, 40, LeaderRule::RoundRobin).is_err());
    }

    #[test]
    fn a_record_becomes_accepted_claims_and_rejections_with_node_accounts() {
        use magnet_diloco::merge::{AcceptedEntry, RejectReason, RejectedEntry};
        let n = |s: &str| NodeId::new(s).unwrap();
        let record = RoundRecord {
            job_id: 1,
            round: 4,
            leader: n("node-a"),
            base_hash: Digest([1; 32]),
            merged_hash: Digest([3; 32]),
            policy: Default::default(),
            accepted: vec![AcceptedEntry {
                node: n("node-a"),
                delta_hash: Digest([2; 32]),
                weight_ppm: 1_000_000,
                data_size: 256,
                quality_bps: 10_000,
                staleness: 0,
                base_hash: Digest([1; 32]),
                steps: 2,
                signature: hex::encode([5u8; 64]),
            }],
            rejected: vec![RejectedEntry {
                node: n("node-b"),
                delta_hash: Digest([6; 32]),
                reason: RejectReason::ZeroWeight,
            }],
        };
        let addr = |b: u8| Address::from_slice(&[b; 20]).unwrap();
        let account = |id: &NodeId| match id.as_str() {
            "node-a" => Some(addr(1)),
            "node-b" => Some(addr(2)),
            _ => None,
        };
        let (acc, rej) = record_entries(&record, account).unwrap();
        assert_eq!(acc.len(), 1);
        assert_eq!(acc[0].node, addr(1));
        assert_eq!(
            (acc[0].job, acc[0].round, acc[0].steps, acc[0].tokens),
            (1, 4, 2, 256)
        );
        assert_eq!(acc[0].base_hash, [1; 32]);
        assert_eq!(acc[0].delta_hash, [2; 32]);
        assert_eq!(acc[0].signature, vec![5u8; 64]);
        assert_eq!(rej, vec![(addr(2), [6; 32], "ZeroWeight".to_string())]);
        // An accepted producer without an account, or without a signature, is an error.
        assert!(record_entries(&record, |_| None).is_err());
        let mut unsigned = record.clone();
        unsigned.accepted[0].signature.clear();
        assert!(record_entries(&unsigned, account).is_err());
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
