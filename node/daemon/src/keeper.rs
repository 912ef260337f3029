//! The storage duty (ADR 0107): what a worker does for the network's stripes.
//!
//! * **Publish** — a Δ or checkpoint this node produced is erasure-coded RS(4,2)
//!   ([`crate::stripes`]), its six shards pushed to six distinct storage-capable nodes (distinct
//!   operators first, then regions), and the stripe registered on chain with every holder's
//!   receipt (`MsgRegisterStripe`). Without six storage-capable nodes the network has no
//!   storage tier and nothing is published.
//! * **Prove** — each epoch the chain draws one leaf of every shard this node holds; the keeper
//!   reads the challenged shards from its hash-checked store and answers with the leaves and
//!   their Merkle paths (`MsgProveCustody`). A shard that fails its own hash check yields no
//!   proof: the chain counts the failure and slashes.
//! * **Repair** — a stripe whose holder is dead (no heartbeat within the registry's liveness
//!   window, jailed, unbonded) or failed an audit of its shard is repaired by its first live
//!   holder in shard order: it reads K survivors, rebuilds the lost shards, pushes them to the
//!   next-ranked storage nodes not in the stripe, and submits `MsgReassignShard` with their
//!   receipts, within a byte budget per pass.
//! * **Collect** — a shard whose stripe expired on chain, or that was reassigned away, is
//!   deleted from the local store.
//! * **Fetch** — [`Keeper::fetch_object`] reads any object by content address from its stripe
//!   when the local copy and its producer are gone.
//!
//! # Security
//! Everything the keeper acts on is read from the chain (placements, roots, challenges,
//! liveness); every shard it reads is checked against the registered Merkle root and every
//! object against its content address, so a lying holder costs a retry, never wrong bytes. The
//! chain re-checks every proof and every reassignment itself (see `magnet-custody`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chain::Chain;
use crate::keys::WorkerKeys;
use crate::round::{Net, NodeRecordJson};
use crate::stripes;
use crate::{DaemonError, Result};

/// File under the worker home with the keeper's progress.
pub const KEEPER_FILE: &str = "keeper.json";
/// Bytes a repair pass may move (reads + writes) before it stops until the next pass.
pub const REPAIR_BUDGET_BYTES: u64 = 256 << 20;

/// A stripe as `/magnet.custody.v1/stripe` returns it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct StripeJson {
    /// Content address (hex).
    pub object: String,
    /// `delta`, `checkpoint`, `data` or `model`.
    #[serde(default)]
    pub kind: String,
    /// What the object is to the epoch (hex).
    #[serde(default)]
    pub label: String,
    /// Job.
    #[serde(default)]
    pub job_id: u64,
    /// Object size.
    pub size: u64,
    /// Data shards.
    pub k: u32,
    /// Parity shards.
    pub m: u32,
    /// Codec stripe size.
    pub stripe_size: u32,
    /// Shard length.
    pub shard_len: u64,
    /// Placements in shard order.
    pub shards: Vec<ShardJson>,
    /// Epoch after which the stripe is dropped.
    #[serde(default)]
    pub expires_epoch: u64,
}

/// One placement of a stripe.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ShardJson {
    /// Holder (node account, bech32).
    pub holder: String,
    /// Merkle root (hex).
    pub root: String,
    /// Epoch of an audit failure still marked on it (reassignable while set).
    #[serde(default)]
    pub failed_epoch: Option<u64>,
}

impl ShardJson {
    /// Failed an audit and not yet proven again or reassigned.
    pub fn failed(&self) -> bool {
        self.failed_epoch.is_some()
    }
}

/// One challenge as `/magnet.custody.v1/challenges` returns it.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ChallengeJson {
    /// Object (hex).
    pub object: String,
    /// Shard index.
    pub index: u32,
    /// Holder (node account).
    #[serde(default)]
    pub holder: String,
    /// Leaf asked for.
    pub leaf: u64,
    /// Shard length.
    pub shard_len: u64,
    /// Already proven.
    #[serde(default)]
    pub proven: bool,
}

/// What the keeper has done, saved across restarts.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct KeeperState {
    /// Epochs whose challenges this node answered.
    pub proven_epochs: BTreeSet<u64>,
    /// Proofs sent.
    pub proofs_sent: u64,
    /// Challenged shards this node could not prove (missing or corrupt locally).
    pub proofs_failed: u64,
    /// Stripe shards this node has held (object hex → index): the ones garbage collection may
    /// delete once the chain drops or moves them.
    pub held: BTreeMap<String, BTreeSet<u32>>,
    /// Shards this node rebuilt and re-placed.
    pub repaired_shards: u64,
    /// Bytes read and written by repairs.
    pub repaired_bytes: u64,
    /// Bytes garbage collection freed.
    pub collected_bytes: u64,
    /// Stripes this node published.
    pub published: u64,
    /// Objects a repair found unrecoverable (fewer than K intact shards left): data lost.
    #[serde(default)]
    pub unrecoverable: BTreeSet<String>,
}

/// One stripe this node holds, as `storage status` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct StripeHealth {
    /// Object (hex).
    pub object: String,
    /// Kind.
    pub kind: String,
    /// The shard indices this node holds.
    pub indices: Vec<u32>,
    /// Shard length.
    pub shard_len: u64,
    /// Shards on live holders that passed their audits.
    pub live_shards: u32,
    /// `healthy`, `degraded: …` or `unrecoverable: …`.
    pub health: String,
    /// Epoch after which the chain drops it.
    pub expires_epoch: u64,
}

/// `magnet-worker storage status --home`.
#[derive(Clone, Debug, Serialize)]
pub struct StorageStatus {
    /// This node's account.
    pub node: String,
    /// Current epoch.
    pub epoch: u64,
    /// Stripes it holds.
    pub stripes: Vec<StripeHealth>,
    /// Its custody record on chain (audits passed and failed, custody per epoch).
    pub audit_record: serde_json::Value,
    /// The keeper's own figures.
    pub keeper: KeeperState,
}

/// The storage duty's context.
pub struct Keeper {
    /// Worker home.
    pub home: PathBuf,
    /// Chain (shared with the daemon: one tx queue per node key).
    pub chain: Arc<Chain>,
    /// Keys (the node key signs custody messages).
    pub keys: Arc<WorkerKeys>,
    /// Peers and the local store.
    pub net: Net,
    /// Chain id (receipts bind it).
    pub chain_id: String,
    /// Genesis time and epoch length.
    pub genesis_time: u64,
    /// Epoch length (s).
    pub epoch_secs: u64,
    /// Registry liveness window (s).
    pub liveness_window_secs: u64,
    /// Progress.
    pub state: tokio::sync::Mutex<KeeperState>,
    /// Fault to play (devnets and tests: `bitrot`).
    pub fault: crate::config::Fault,
}

impl std::fmt::Debug for Keeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keeper")
    }
}

fn hex32(s: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DaemonError::Chain(format!("{s:?} is not a 32-byte hex hash")))
}

/// Accepts the registered node keys of `nodes` on this node's p2p verifier.
fn accept_keys(registry: &magnet_p2p::StaticRegistry, nodes: &[NodeRecordJson]) {
    for n in nodes {
        if let Ok(pk) = magnet_p2p::PublicKey::from_bytes(&n.to_peer().pubkey) {
            registry.register(pk, "chain");
        }
    }
}

/// Is a registry record live at chain time `now` (the chain's own reassignment rule)?
pub fn is_live(n: &NodeRecordJson, now: u64, window: u64) -> bool {
    n.status == serde_json::Value::String("Active".into())
        && !n.jailed
        && n.last_heartbeat > 0
        && now.saturating_sub(n.last_heartbeat) <= window
}

impl Keeper {
    /// Loads the keeper's saved state under `home`.
    pub fn load_state(home: &std::path::Path) -> Result<KeeperState> {
        let path = home.join(KEEPER_FILE);
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| DaemonError::Config {
                path: path.display().to_string(),
                reason: format!("{e}; move the damaged file away to start fresh"),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(KeeperState::default()),
            Err(e) => Err(DaemonError::io(format!("reading {}", path.display()))(e)),
        }
    }

    async fn save(&self) {
        let st = self.state.lock().await.clone();
        match serde_json::to_vec_pretty(&st) {
            Ok(b) => {
                if let Err(e) = crate::state::write_atomic(&self.home.join(KEEPER_FILE), &b) {
                    tracing::warn!("saving keeper state: {e}");
                }
            }
            Err(e) => tracing::warn!("saving keeper state: {e}"),
        }
    }

    /// A keeper for one-shot CLI use beside (or without) a running daemon: this worker's keys,
    /// chain and store, dialling peers without serving.
    pub async fn open(home: &std::path::Path) -> Result<Keeper> {
        let cfg = crate::Config::load(home)?;
        let keys = Arc::new(WorkerKeys::load(home)?);
        let chain = Arc::new(Chain::from_config(&cfg.chain)?);
        let genesis = chain.genesis().await?;
        let reg_params: serde_json::Value = chain.query("/magnet.registry.v1/params", "").await?;
        let (net, registry) = crate::run::client_net(&cfg, &keys, home)?;
        let k = Keeper {
            home: home.to_path_buf(),
            chain,
            keys,
            net,
            chain_id: genesis.chain_id,
            genesis_time: genesis.genesis_time,
            epoch_secs: genesis.epoch_secs,
            liveness_window_secs: reg_params["liveness_window_secs"].as_u64().unwrap_or(300),
            state: tokio::sync::Mutex::new(Keeper::load_state(home)?),
            fault: crate::config::Fault::None,
        };
        accept_keys(&registry, &k.nodes().await?);
        Ok(k)
    }

    /// What `magnet-worker storage status --home` shows: this node's stripes and their health
    /// (live holders against K+M), its audit record on chain, and the keeper's own figures.
    pub async fn status(&self) -> Result<StorageStatus> {
        let head = self.chain.head().await?;
        let nodes = self.nodes().await?;
        let me = self.me();
        let live = |a: &str| {
            nodes
                .iter()
                .find(|n| n.node == a)
                .is_some_and(|n| is_live(n, head.time, self.liveness_window_secs))
        };
        let held = self.held_stripes().await?;
        let record: serde_json::Value = self.chain.query("/magnet.custody.v1/holder", &me).await?;
        let stripes = held
            .iter()
            .map(|s| {
                let alive = s
                    .shards
                    .iter()
                    .filter(|p| !p.failed() && live(&p.holder))
                    .count() as u32;
                let total = s.k + s.m;
                StripeHealth {
                    object: s.object.clone(),
                    kind: s.kind.clone(),
                    indices: s
                        .shards
                        .iter()
                        .enumerate()
                        .filter(|(_, p)| p.holder == me)
                        .map(|(i, _)| i as u32)
                        .collect(),
                    shard_len: s.shard_len,
                    live_shards: alive,
                    health: if alive == total {
                        "healthy".into()
                    } else if alive >= s.k {
                        format!(
                            "degraded: {} of {total} shards lost, repairable",
                            total - alive
                        )
                    } else {
                        format!("unrecoverable: {alive} of {} needed shards live", s.k)
                    },
                    expires_epoch: s.expires_epoch,
                }
            })
            .collect();
        Ok(StorageStatus {
            node: me,
            epoch: self.epoch_at(head.time),
            stripes,
            audit_record: record,
            keeper: self.state.lock().await.clone(),
        })
    }

    fn me(&self) -> String {
        self.keys.node.address().to_string()
    }

    fn epoch_at(&self, t: u64) -> u64 {
        t.saturating_sub(self.genesis_time) / self.epoch_secs.max(1)
    }

    /// Registry nodes, refreshed into the peer table.
    async fn nodes(&self) -> Result<Vec<NodeRecordJson>> {
        let nodes: Vec<NodeRecordJson> = self.chain.query("/magnet.registry.v1/nodes", "").await?;
        let mut peers = self
            .net
            .peers
            .write()
            .map_err(|_| DaemonError::State("peer table lock poisoned".into()))?;
        for n in &nodes {
            peers.insert(n.node_id.clone(), n.to_peer());
        }
        Ok(nodes)
    }

    /// Storage-capable live nodes as placement candidates.
    async fn candidates(&self, now: u64) -> Result<(Vec<stripes::Candidate>, Vec<NodeRecordJson>)> {
        let nodes = self.nodes().await?;
        let capable: BTreeSet<String> = self
            .chain
            .query::<Vec<String>>("/magnet.registry.v1/storage_nodes", "")
            .await?
            .into_iter()
            .collect();
        let c = nodes
            .iter()
            .filter(|n| capable.contains(&n.node) && is_live(n, now, self.liveness_window_secs))
            .map(|n| stripes::Candidate {
                node_id: n.node_id.clone(),
                operator: n.operator.clone(),
                region: String::new(),
                free_bytes: u64::MAX,
            })
            .collect();
        Ok((c, nodes))
    }

    fn node_id_of(nodes: &[NodeRecordJson], addr: &str) -> Option<String> {
        nodes
            .iter()
            .find(|n| n.node == addr)
            .map(|n| n.node_id.clone())
    }

    fn addr_of(nodes: &[NodeRecordJson], node_id: &str) -> Option<String> {
        nodes
            .iter()
            .find(|n| n.node_id == node_id)
            .map(|n| n.node.clone())
    }

    /// The stripe of `object`, if registered.
    pub async fn stripe(&self, object: &[u8; 32]) -> Result<Option<StripeJson>> {
        self.chain
            .query("/magnet.custody.v1/stripe", &hex::encode(object))
            .await
    }

    /// The stripe labelled `label` (a Δ or checkpoint hash), if registered (the latest one
    /// when several objects carry the label).
    pub async fn stripe_by_label(&self, label: &[u8; 32]) -> Result<Option<StripeJson>> {
        let v: Vec<StripeJson> = self
            .chain
            .query("/magnet.custody.v1/by_label", &hex::encode(label))
            .await?;
        Ok(v.into_iter().last())
    }

    /// The stripes this node holds at least one shard of, as the chain records them.
    pub async fn held_stripes(&self) -> Result<Vec<StripeJson>> {
        let view: serde_json::Value = self
            .chain
            .query("/magnet.custody.v1/holder", &self.me())
            .await?;
        let objects: BTreeSet<String> = view["shards"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["object"].as_str().map(str::to_string))
            .collect();
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            if let Some(s) = self.stripe(&hex32(&o)?).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    fn view(s: &StripeJson, nodes: &[NodeRecordJson]) -> Result<stripes::StripeView> {
        Ok(stripes::StripeView {
            object: hex32(&s.object)?,
            size: s.size,
            k: u8::try_from(s.k).map_err(|_| DaemonError::Chain("k over 255".into()))?,
            m: u8::try_from(s.m).map_err(|_| DaemonError::Chain("m over 255".into()))?,
            stripe_size: s.stripe_size,
            shard_len: s.shard_len,
            holders: s
                .shards
                .iter()
                .map(|p| Self::node_id_of(nodes, &p.holder).unwrap_or_default())
                .collect(),
            roots: s
                .shards
                .iter()
                .map(|p| hex32(&p.root))
                .collect::<Result<_>>()?,
        })
    }

    /// Reads `s`'s object from any K of its holders (verified shard by shard and as a whole).
    pub async fn fetch_stripe(&self, s: &StripeJson) -> Result<Vec<u8>> {
        let nodes = self.nodes().await?;
        let view = Self::view(s, &nodes)?;
        let (bytes, report) = stripes::get(&self.net, &view)
            .await
            .map_err(|e| DaemonError::P2p(e.to_string()))?;
        if !report.failures.is_empty() {
            tracing::info!(object = %s.object, failures = ?report.failures, "stripe read around failed holders");
        }
        Ok(bytes)
    }

    /// Job `job`'s lineage head as the chain records it (`head` of the job record: the last
    /// merged checkpoint, or the base before any merge), read from this node's store or else
    /// from its stripe, and checked against the recorded hash. Returns the rounds recorded,
    /// the hash and the checkpoint. The base (before any merge) is built locally by the
    /// daemon and is not striped: asking for it here is an error saying so.
    pub async fn lineage_head(
        &self,
        job: u64,
    ) -> Result<(u64, magnet_diloco::Digest, magnet_diloco::Checkpoint)> {
        let j: crate::run::JobJson = self
            .chain
            .query("/magnet.jobs.v1/job", &job.to_string())
            .await?;
        let lineage: crate::duties::LineageJson = self
            .chain
            .query("/magnet.jobs.v1/lineage", &job.to_string())
            .await?;
        let head = magnet_diloco::Digest::from_hex(&j.head)
            .map_err(|e| DaemonError::Chain(format!("job {job}'s head {:?}: {e}", j.head)))?;
        let rounds = lineage.rounds.len() as u64;
        if rounds == 0 {
            return Err(DaemonError::Chain(format!(
                "job {job} has no merged round yet: there is no trained model to serve"
            )));
        }
        // This node's store, else the stripe, else the peers (the last round's leader first:
        // it merged the checkpoint); every path checks the bytes against the recorded hash.
        if let Some(s) = self.stripe_by_label(&head.0).await? {
            if self
                .net
                .get_local(&crate::round::checkpoint_key(&head))?
                .is_none()
            {
                match self.fetch_stripe(&s).await {
                    Ok(b) => {
                        let c = crate::round::parse_checkpoint(&b, &head)?;
                        return Ok((rounds, head, c));
                    }
                    Err(e) => {
                        tracing::info!(%head, "the head's stripe is unreadable ({e}); asking peers")
                    }
                }
            }
        }
        let nodes = self.nodes().await?;
        let leader = lineage
            .rounds
            .last()
            .map(|r| r.leader.clone())
            .unwrap_or_default();
        let mut holders: Vec<String> = nodes
            .iter()
            .filter(|n| n.operator == leader)
            .map(|n| n.node_id.clone())
            .collect();
        holders.extend(
            nodes
                .iter()
                .filter(|n| n.operator != leader && !n.jailed)
                .map(|n| n.node_id.clone()),
        );
        let (c, _) = self.net.checkpoint(&head, &holders).await?;
        Ok((rounds, head, c))
    }

    /// The object `object` from its stripe, if one is registered.
    pub async fn fetch_object(&self, object: &[u8; 32]) -> Result<Option<Vec<u8>>> {
        match self.stripe(object).await? {
            Some(s) => Ok(Some(self.fetch_stripe(&s).await?)),
            None => Ok(None),
        }
    }

    /// Erasure-codes `bytes`, places the shards and registers the stripe. Returns `false` when
    /// the network has fewer storage-capable live nodes than the stripe needs.
    pub async fn publish(
        &self,
        kind: &str,
        label: &[u8; 32],
        job: u64,
        bytes: &[u8],
    ) -> Result<bool> {
        let head = self.chain.head().await?;
        let (cands, nodes) = self.candidates(head.time).await?;
        let enc = stripes::encode(bytes).map_err(|e| DaemonError::P2p(e.to_string()))?;
        // K+M distinct holders, or — with fewer live storage nodes — up to M shards each, so
        // one lost holder never takes more than M shards.
        let need = (usize::from(enc.k) + usize::from(enc.m)).div_ceil(usize::from(enc.m).max(1));
        if cands.len() < need {
            tracing::debug!(
                have = cands.len(),
                need,
                "fewer storage-capable live nodes than a stripe needs: not published"
            );
            return Ok(false);
        }
        let placement = stripes::put(&self.net, &self.chain_id, &enc, &cands)
            .await
            .map_err(|e| DaemonError::P2p(e.to_string()))?;
        let shards = placement
            .to_proto(|id| Self::addr_of(&nodes, id))
            .map_err(|e| DaemonError::P2p(e.to_string()))?;
        let msg = magnet_core::msg::to_any(&magnet_proto::custody::v1::MsgRegisterStripe {
            owner: self.me(),
            object: enc.object.to_vec(),
            kind: kind.to_string(),
            label: label.to_vec(),
            job_id: job,
            size: enc.size,
            k: u32::from(enc.k),
            m: u32::from(enc.m),
            stripe_size: enc.stripe_size,
            shard_len: enc.shard_len,
            shards,
        });
        self.chain
            .send(&self.keys.node, "MsgRegisterStripe", vec![msg])
            .await?;
        self.state.lock().await.published += 1;
        tracing::info!(kind, object = %hex::encode(enc.object), bytes = bytes.len(), "stripe registered");
        Ok(true)
    }

    /// Answers this epoch's custody challenges (once per epoch).
    pub async fn prove_tick(&self) -> Result<()> {
        // The chain's running epoch (proofs are accepted only in the epoch they answer).
        let es: serde_json::Value = self.chain.query("/magnet.epochs.v1/state", "").await?;
        let epoch = es["current"]
            .as_u64()
            .ok_or_else(|| DaemonError::Chain("epochs state has no current epoch".into()))?;
        if self.state.lock().await.proven_epochs.contains(&epoch) {
            return Ok(());
        }
        let challenges: Vec<ChallengeJson> = self
            .chain
            .query(
                "/magnet.custody.v1/challenges",
                &format!("{epoch}/{}", self.me()),
            )
            .await?;
        if challenges.is_empty() {
            return Ok(());
        }
        let open: Vec<stripes::CustodyChallenge> = challenges
            .iter()
            .filter(|c| !c.proven)
            .map(|c| {
                Ok(stripes::CustodyChallenge {
                    object: hex32(&c.object)?,
                    index: c.index,
                    shard_len: c.shard_len,
                    leaf: c.leaf,
                })
            })
            .collect::<Result<_>>()?;
        {
            let mut st = self.state.lock().await;
            for c in &challenges {
                st.held.entry(c.object.clone()).or_default().insert(c.index);
            }
        }
        if self.fault == crate::config::Fault::Bitrot {
            if let Some(c) = open.first() {
                match rot_one(&self.home, &c.object, c.index) {
                    Ok(p) => {
                        tracing::warn!(path = %p.display(), "bitrot fault: flipped a byte of a challenged shard")
                    }
                    Err(e) => tracing::warn!("bitrot fault: {e}"),
                }
            }
        }
        let (proofs, failures) = stripes::prove(self.net.backend.as_ref(), &open);
        for f in &failures {
            tracing::warn!(
                object = %hex::encode(f.challenge.object),
                index = f.challenge.index,
                "custody audit: cannot prove: {}",
                f.reason
            );
        }
        let n = proofs.len() as u64;
        for chunk in proofs.chunks(256) {
            let msg = magnet_core::msg::to_any(&magnet_proto::custody::v1::MsgProveCustody {
                holder: self.me(),
                epoch,
                proofs: chunk.to_vec(),
            });
            self.chain
                .send(&self.keys.node, "MsgProveCustody", vec![msg])
                .await?;
        }
        {
            let mut st = self.state.lock().await;
            st.proven_epochs.insert(epoch);
            st.proofs_sent += n;
            st.proofs_failed += failures.len() as u64;
            while st.proven_epochs.len() > 64 {
                st.proven_epochs.pop_first();
            }
        }
        self.save().await;
        tracing::info!(
            epoch,
            proofs = n,
            failed = failures.len(),
            "custody challenges answered"
        );
        Ok(())
    }

    /// Repairs the stripes this node holds whose other holders are gone, where this node is
    /// the first live holder.
    pub async fn repair_tick(&self) -> Result<()> {
        let head = self.chain.head().await?;
        let (cands, nodes) = self.candidates(head.time).await?;
        let held = self.held_stripes().await?;
        let by_addr: BTreeMap<&str, &NodeRecordJson> =
            nodes.iter().map(|n| (n.node.as_str(), n)).collect();
        let live = |a: &str| {
            by_addr
                .get(a)
                .is_some_and(|n| is_live(n, head.time, self.liveness_window_secs))
        };
        let me = self.me();
        let mut budget = REPAIR_BUDGET_BYTES;
        for s in held {
            {
                let mut st = self.state.lock().await;
                for (i, p) in s.shards.iter().enumerate() {
                    if p.holder == me {
                        st.held
                            .entry(s.object.clone())
                            .or_default()
                            .insert(i as u32);
                    }
                }
            }
            let lost: Vec<usize> = s
                .shards
                .iter()
                .enumerate()
                .filter(|(_, p)| p.failed() || !live(&p.holder))
                .map(|(i, _)| i)
                .collect();
            if lost.is_empty() {
                continue;
            }
            let first_live = s
                .shards
                .iter()
                .find(|p| !p.failed() && live(&p.holder))
                .map(|p| p.holder.as_str());
            if first_live != Some(me.as_str()) {
                continue;
            }
            let in_stripe: Vec<String> = s
                .shards
                .iter()
                .filter_map(|p| Self::node_id_of(&nodes, &p.holder))
                .collect();
            let object = hex32(&s.object)?;
            let mut new_holders = stripes::choose_holders(&object, &cands, lost.len(), &in_stripe);
            // Not enough spare nodes: live holders of the stripe take a second shard (never
            // more than M each), fewest first.
            if new_holders.len() < lost.len() {
                let mut count: BTreeMap<String, u32> = BTreeMap::new();
                for (i, p) in s.shards.iter().enumerate() {
                    if !lost.contains(&i) {
                        if let Some(id) = Self::node_id_of(&nodes, &p.holder) {
                            *count.entry(id).or_default() += 1;
                        }
                    }
                }
                // The chain never lets the repairer hand a shard to itself.
                let me_id = Self::node_id_of(&nodes, &me).unwrap_or_default();
                let mut spare: Vec<(u32, String)> = count
                    .into_iter()
                    .filter(|(id, _)| *id != me_id && cands.iter().any(|c| &c.node_id == id))
                    .map(|(id, n)| (n, id))
                    .collect();
                spare.sort();
                for (n, id) in spare {
                    let mut n = n;
                    while n < s.m && new_holders.len() < lost.len() {
                        new_holders.push(id.clone());
                        n += 1;
                    }
                }
            }
            if new_holders.len() < lost.len() {
                tracing::warn!(object = %s.object, lost = lost.len(), spare = new_holders.len(), "not enough spare storage nodes to repair");
                continue;
            }
            let view = Self::view(&s, &nodes)?;
            let cost = stripes::repair_cost(&view, lost.len());
            if cost > budget {
                tracing::info!(object = %s.object, cost, budget, "repair budget spent: the rest waits for the next pass");
                break;
            }
            let lost32: Vec<u32> = lost.iter().map(|&i| i as u32).collect();
            // One stripe that cannot be repaired now (too few survivors reachable, a refused
            // upload) never stops the pass: the next stripe is tried, this one next pass.
            let out = match stripes::repair(
                &self.net,
                &self.chain_id,
                &view,
                &lost32,
                &new_holders,
                budget,
            )
            .await
            {
                Ok(o) => o,
                Err(e) => {
                    if matches!(e, stripes::StripeError::Unrecoverable { .. }) {
                        self.state
                            .lock()
                            .await
                            .unrecoverable
                            .insert(s.object.clone());
                    }
                    tracing::warn!(object = %s.object, "repair: {e}");
                    continue;
                }
            };
            budget = budget.saturating_sub(cost);
            for f in &out.failures {
                tracing::warn!(object = %s.object, shard = f.index, holder = %f.holder, "repair upload failed: {}", f.detail);
            }
            if out.repaired.is_empty() {
                continue;
            }
            let mut msgs = Vec::new();
            for r in &out.repaired {
                let new_holder = Self::addr_of(&nodes, &r.holder).ok_or_else(|| {
                    DaemonError::P2p(format!("{} is not a registered node", r.holder))
                })?;
                msgs.push(magnet_core::msg::to_any(
                    &magnet_proto::custody::v1::MsgReassignShard {
                        repairer: me.clone(),
                        object: object.to_vec(),
                        index: r.index,
                        new_holder,
                        receipt: r.receipt.clone(),
                    },
                ));
            }
            if let Err(e) = self
                .chain
                .send(&self.keys.node, "MsgReassignShard", msgs)
                .await
            {
                tracing::warn!(object = %s.object, "reassignment refused: {e}");
                continue;
            }
            {
                let mut st = self.state.lock().await;
                st.repaired_shards += out.repaired.len() as u64;
                st.repaired_bytes += out.bytes_read + out.bytes_written;
            }
            self.save().await;
            tracing::info!(object = %s.object, shards = out.repaired.len(), bytes = out.bytes_read + out.bytes_written, "stripe repaired");
        }
        Ok(())
    }

    /// Deletes shards whose stripe the chain dropped or moved to another holder.
    pub async fn collect_tick(&self) -> Result<()> {
        let held = self.state.lock().await.held.clone();
        let me = self.me();
        let mut freed = 0u64;
        let mut forget = Vec::new();
        for (object, indices) in held {
            let o = hex32(&object)?;
            let s = self.stripe(&o).await?;
            for i in indices {
                let mine = s
                    .as_ref()
                    .and_then(|s| s.shards.get(i as usize))
                    .is_some_and(|p| p.holder == me);
                if !mine {
                    let key = magnet_p2p::ShardKey {
                        object_id: o,
                        index: i,
                    };
                    let size = self
                        .net
                        .backend
                        .list_shards(Some(&o))
                        .ok()
                        .and_then(|l| l.into_iter().find(|x| x.key == key).map(|x| x.size))
                        .unwrap_or(0);
                    if self
                        .net
                        .backend
                        .delete_shard(&key)
                        .map_err(|e| DaemonError::P2p(e.to_string()))?
                    {
                        freed += size;
                    }
                    forget.push((object.clone(), i));
                }
            }
        }
        if !forget.is_empty() {
            let mut st = self.state.lock().await;
            for (o, i) in &forget {
                if let Some(set) = st.held.get_mut(o) {
                    set.remove(i);
                    if set.is_empty() {
                        st.held.remove(o);
                    }
                }
            }
            st.collected_bytes += freed;
            drop(st);
            self.save().await;
            tracing::info!(shards = forget.len(), bytes = freed, "garbage collected");
        }
        Ok(())
    }
}

/// The `bitrot` fault: flips the first byte of shard `index` of `object` in this node's store
/// (`home/store/shards/<object>/<index>.<hash>.shard`).
fn rot_one(home: &std::path::Path, object: &[u8; 32], index: u32) -> Result<PathBuf> {
    let dir = home.join("store").join("shards").join(hex::encode(object));
    let prefix = format!("{index:03}.");
    let rd =
        std::fs::read_dir(&dir).map_err(DaemonError::io(format!("listing {}", dir.display())))?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".shard") {
            let p = e.path();
            let mut b =
                std::fs::read(&p).map_err(DaemonError::io(format!("reading {}", p.display())))?;
            if let Some(x) = b.first_mut() {
                *x ^= 0xff;
            }
            std::fs::write(&p, &b).map_err(DaemonError::io(format!("writing {}", p.display())))?;
            return Ok(p);
        }
    }
    Err(DaemonError::State(format!(
        "no shard {index} of {} in {}",
        hex::encode(object),
        dir.display()
    )))
}

/// Logs a duty error once a minute while it repeats (a jailed node, a refused tx).
#[derive(Default)]
struct ErrorLimiter {
    last: Option<(String, std::time::Instant)>,
}

impl ErrorLimiter {
    fn report(&mut self, what: &str, e: DaemonError) {
        let e = format!("{what}: {e}");
        match &self.last {
            Some((m, t)) if *m == e && t.elapsed() < std::time::Duration::from_secs(60) => {
                tracing::debug!("{e} (repeated)")
            }
            _ => {
                tracing::warn!("{e}");
                self.last = Some((e, std::time::Instant::now()));
            }
        }
    }
}

/// Runs the keeper's three duties as independent loops — proofs every 3 s, repair every
/// 10 s, garbage collection every 30 s — so a long repair never delays an audit answer.
/// On a node that holds no shards each pass is one query.
pub fn spawn_duties(
    keeper: Arc<Keeper>,
    shutdown: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let every = |ms: u64| {
            let mut t = tokio::time::interval(std::time::Duration::from_millis(ms));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            t
        };
        let (mut p, mut r, mut c) = (
            every(PROVE_EVERY_MS),
            every(REPAIR_EVERY_MS),
            every(COLLECT_EVERY_MS),
        );
        let (k1, k2, k3) = (keeper.clone(), keeper.clone(), keeper);
        let (s1, s2, s3) = (shutdown.clone(), shutdown.clone(), shutdown);
        let prove = async move {
            let mut l = ErrorLimiter::default();
            while !s1.load(std::sync::atomic::Ordering::Relaxed) {
                p.tick().await;
                if let Err(e) = k1.prove_tick().await {
                    l.report("custody proofs", e);
                }
            }
        };
        let repair = async move {
            let mut l = ErrorLimiter::default();
            while !s2.load(std::sync::atomic::Ordering::Relaxed) {
                r.tick().await;
                if let Err(e) = k2.repair_tick().await {
                    l.report("repair", e);
                }
            }
        };
        let collect = async move {
            let mut l = ErrorLimiter::default();
            while !s3.load(std::sync::atomic::Ordering::Relaxed) {
                c.tick().await;
                if let Err(e) = k3.collect_tick().await {
                    l.report("garbage collection", e);
                }
            }
        };
        tokio::join!(prove, repair, collect);
    })
}

/// How often each storage duty runs (ms).
const PROVE_EVERY_MS: u64 = 3_000;
const REPAIR_EVERY_MS: u64 = 10_000;
const COLLECT_EVERY_MS: u64 = 30_000;

/// `magnet-worker run` for a tier that only stores (`storage_node`): heartbeats, custody
/// proofs, repair and garbage collection — no model, no rounds.
pub async fn run_storage(
    home: &std::path::Path,
    shutdown: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    use std::sync::atomic::Ordering;
    let cfg = crate::Config::load(home)?;
    let keys = Arc::new(WorkerKeys::load(home)?);
    let chain = Arc::new(Chain::from_config(&cfg.chain)?);
    let genesis = chain.genesis().await?;
    let registration: Option<NodeRecordJson> = chain
        .query(
            "/magnet.registry.v1/node",
            &keys.operator.address().to_string(),
        )
        .await?;
    if registration.is_none() {
        return Err(DaemonError::State(format!(
            "operator {} has no registered node: run `magnet-worker join --home {}` first",
            keys.operator.address(),
            home.display()
        )));
    }
    let reg_params: serde_json::Value = chain.query("/magnet.registry.v1/params", "").await?;
    let liveness_window_secs = reg_params["liveness_window_secs"].as_u64().unwrap_or(300);
    let heartbeat_interval_secs = reg_params["heartbeat_interval_secs"].as_u64().unwrap_or(30);
    let (p2p, net, registry) = crate::run::start_p2p(&cfg, &keys, home, &genesis.chain_id).await?;
    let keeper = Arc::new(Keeper {
        home: home.to_path_buf(),
        chain,
        keys,
        net,
        chain_id: genesis.chain_id.clone(),
        genesis_time: genesis.genesis_time,
        epoch_secs: genesis.epoch_secs,
        liveness_window_secs,
        state: tokio::sync::Mutex::new(Keeper::load_state(home)?),
        fault: cfg.dev.fault,
    });
    let register_keys = |nodes: &[NodeRecordJson]| accept_keys(&registry, nodes);
    register_keys(&keeper.nodes().await?);
    tracing::info!(p2p = %p2p.addr(), "storage node running");
    let mut last_beat = crate::state::State::load(home)?.last_heartbeat;
    let duties = spawn_duties(keeper.clone(), shutdown.clone());
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut limiter = ErrorLimiter::default();
    let mut refreshed_at = 0u64;
    while !shutdown.load(Ordering::Relaxed) {
        tick.tick().await;
        let now = crate::run::now_ms();
        match keeper.chain.head().await {
            Ok(head) if head.time >= last_beat + heartbeat_interval_secs => {
                let node = keeper.keys.node.address();
                match keeper
                    .chain
                    .send(
                        &keeper.keys.node,
                        "MsgHeartbeat",
                        vec![magnet_registry::msgs::heartbeat(&node)],
                    )
                    .await
                {
                    Ok(_) => {
                        last_beat = head.time;
                        let mut st = crate::state::State::load(home)?;
                        st.last_heartbeat = head.time;
                        if let Err(e) = st.save(home) {
                            tracing::warn!("saving state: {e}");
                        }
                    }
                    Err(e) => limiter.report("heartbeat", e),
                }
            }
            Ok(_) => {}
            Err(e) => limiter.report("chain", e),
        }
        // New registrations: accept their keys on the p2p layer.
        if now >= refreshed_at + REPAIR_EVERY_MS {
            refreshed_at = now;
            match keeper.nodes().await {
                Ok(n) => register_keys(&n),
                Err(e) => limiter.report("registry", e),
            }
        }
    }
    duties.abort();
    tracing::info!("storage node shutting down");
    keeper.save().await;
    p2p.kill();
    Ok(())
}
