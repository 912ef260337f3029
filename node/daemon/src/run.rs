//! `magnet-worker run`: the event loop.
//!
//! One task owns the round state machine; everything slow (training, merging, fetching,
//! sending, chain writes) runs in spawned tasks that report back as [`Event`]s on a channel,
//! so the machine only ever sees one event at a time, in the order they arrived. A 500 ms tick
//! polls the chain head (answering the machine's `ReadEligible` once the height is reached),
//! fires the machine's `WakeAt` timers, and runs the epoch [`crate::duties`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnet_diloco::compress::{Compressed, CompressionConfig, Compressor};
use magnet_diloco::eligible::EligibleSet;
use magnet_diloco::merge::{merge, Contribution, MergeMeta, MergePolicy};
use magnet_diloco::round::{Action, MergeJob, RoundConfig, RoundState};
use magnet_diloco::{Checkpoint, Digest, Event, NodeId};
use magnet_p2p::backend::ShardBackend;
use magnet_p2p::storage_glue::StoreBackend;
use magnet_p2p::{
    NodeConfig, NodeHandle, NodeTls, PinStore, ReceiptConfig, ServiceConfig, Signer,
    StaticRegistry, Verifier, VerifyMode,
};
use magnet_storage::ShardStore;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::chain::{Chain, GenesisInfo};
use crate::config::{Config, Fault, LeaderRuleName};
use crate::engine::{Engine, Evaluator};
use crate::keys::WorkerKeys;
use crate::metrics::Metrics;
use crate::round::{self, kind, Net, NodeRecordJson};
use crate::state::State;
use crate::{DaemonError, Result};
use magnet_diloco::LeaderRule;
use magnet_jobs::state::TrainingSpec;

/// File (in the worker home) where every round this worker saw is logged as JSON lines.
pub const ROUNDS_LOG: &str = "rounds.jsonl";

/// p2p content address of each merged Δ, by (round, Δ hash).
pub type ContentAddresses = BTreeMap<(u64, [u8; 32]), [u8; 32]>;

/// Everything the spawned tasks share.
pub struct Shared {
    /// Worker home.
    pub home: PathBuf,
    /// Config.
    pub cfg: Config,
    /// Keys.
    pub keys: WorkerKeys,
    /// This node's id.
    pub me: NodeId,
    /// Chain.
    pub chain: Arc<Chain>,
    /// Genesis facts.
    pub genesis: GenesisInfo,
    /// Training engine.
    pub engine: std::sync::Mutex<Engine>,
    /// Evaluation model (separate from the engine: evaluations never wait for training).
    pub evaluator: std::sync::Mutex<Evaluator>,
    /// The job's base checkpoint (held here so merges never wait for the engine or evaluator).
    pub base_checkpoint: Checkpoint,
    /// Δ compressor (its error-feedback residual persists across rounds).
    pub compressor: std::sync::Mutex<Compressor>,
    /// Peers and stores.
    pub net: Net,
    /// p2p verifier's registry of accepted keys.
    pub registry: Arc<StaticRegistry>,
    /// Persistent state.
    pub state: tokio::sync::Mutex<State>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Hash of the job's base checkpoint.
    pub job_base: Digest,
    /// Model parameters (fixed for the job; read without locking the engine).
    pub params: u64,
    /// SHA-256 of this worker's training tokens.
    pub data_hash: [u8; 32],
    /// Leader node id of each round seen.
    pub leaders: std::sync::Mutex<BTreeMap<u64, String>>,
    /// Evaluator losses of base checkpoints on an epoch's windows, by `epoch/base hash`.
    pub base_losses: std::sync::Mutex<BTreeMap<String, f64>>,
    /// True while this node is in an evaluator-commit window with assigned contributions not
    /// yet scored and committed: training rounds wait (ADR 0098, evaluation duties first).
    pub evaluating: std::sync::atomic::AtomicBool,
    /// Evaluator scores by `epoch/contributor` (ADR 0090).
    pub scores: std::sync::Mutex<BTreeMap<String, i64>>,
    /// The near-duplicate rule settled per lineage round (aligned with the round's accepted
    /// Δs; [`crate::quality::round_duplicates`]), once all its Δs could be fetched.
    pub round_dups: std::sync::Mutex<BTreeMap<u64, crate::quality::Twins>>,
    /// Registry params the daemon needs.
    pub liveness_window_secs: u64,
    /// Heartbeat interval.
    pub heartbeat_interval_secs: u64,
    /// Contrib windows.
    pub windows: crate::duties::Windows,
    /// The job's training spec on chain (the truth about H, the schedule, the leader rule, the
    /// staleness policy and the claim bound).
    pub spec: TrainingSpec,
    /// The merge rule: the local outer step with the chain's staleness policy.
    pub policy: MergePolicy,
    /// `epoch + 1` of the last epoch for which "nothing to claim" was logged (0: none).
    pub nothing_to_claim: std::sync::atomic::AtomicU64,
    /// p2p content address of each Δ this node merged as leader, by (round, Δ hash): the round
    /// record carries it so auditors can fetch every accepted Δ (ADR 0089).
    pub content_addresses: std::sync::Mutex<ContentAddresses>,
    /// Merge audits this node finished (job round → done), so each is checked once.
    pub audits_done: std::sync::Mutex<BTreeMap<u64, crate::audit::Finding>>,
    /// Fetch attempts of audits whose inputs were unavailable, by round.
    pub audit_tries: std::sync::Mutex<BTreeMap<u64, u32>>,
    /// When the auditor duty last polled the chain (ms since the epoch).
    pub audit_polled_ms: std::sync::atomic::AtomicU64,
    /// The storage duty: publishes this node's Δs and checkpoints as stripes, reads objects
    /// back from stripes when their producers are gone, and (if this node holds stripes)
    /// answers custody audits (ADR 0107).
    pub keeper: Arc<crate::keeper::Keeper>,
    /// The research-job duty's memory (ADR 0115).
    pub research: crate::research_job::Duty,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Worker({})", self.me)
    }
}

/// Milliseconds since the unix epoch (the state machine's `now`).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Shared {
    /// Appends one JSON line to the rounds log.
    pub fn log_round(&self, v: serde_json::Value) {
        use std::io::Write;
        let path = self.home.join(ROUNDS_LOG);
        let line = format!("{v}\n");
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = r {
            tracing::warn!("cannot append to {}: {e}", path.display());
        }
    }

    /// Saves the state, logging (not failing) on error.
    pub async fn save_state(&self) {
        let st = self.state.lock().await;
        if let Err(e) = st.save(&self.home) {
            tracing::warn!("saving state: {e}");
        }
    }

    /// The peers (node ids) that may hold checkpoint `hash`: the leader of the round that
    /// made it first, then every other registered peer.
    fn holders(&self, round_hint: Option<u64>) -> Vec<String> {
        let mut v = Vec::new();
        if let (Some(r), Ok(l)) = (round_hint, self.leaders.lock()) {
            if let Some(id) = l.get(&r) {
                v.push(id.clone());
            }
        }
        if let Ok(p) = self.net.peers.read() {
            for id in p.keys() {
                if id != self.me.as_str() && !v.contains(id) {
                    v.push(id.clone());
                }
            }
        }
        v
    }

    /// Checkpoint `hash` (the job base is built locally; others come from the store or peers).
    pub async fn checkpoint(&self, hash: &Digest, round_hint: Option<u64>) -> Result<Checkpoint> {
        if *hash == self.job_base {
            return Ok(self.base_checkpoint.clone());
        }
        let (c, bytes) = match self.net.checkpoint(hash, &self.holders(round_hint)).await {
            Ok(x) => x,
            // No peer serves it: its stripe on the storage tier (ADR 0107).
            Err(e) => match self.keeper.stripe_by_label(&hash.0).await {
                Ok(Some(s)) => {
                    let b = self.keeper.fetch_stripe(&s).await?;
                    let c = round::parse_checkpoint(&b, hash)?;
                    self.net.put_local(&round::checkpoint_key(hash), &b)?;
                    tracing::info!(%hash, "checkpoint read from its stripe");
                    (c, b.len() as u64)
                }
                _ => return Err(e),
            },
        };
        if bytes > 0 {
            self.metrics.bytes_received.inc_by(bytes);
            self.state.lock().await.bytes_received += bytes;
        }
        Ok(c)
    }

    /// The epoch and its offset (seconds) at block time `t`.
    pub fn epoch_at(&self, t: u64) -> (u64, u64) {
        let since = t.saturating_sub(self.genesis.genesis_time);
        let len = self.genesis.epoch_secs.max(1);
        (since / len, since % len)
    }

    /// Refreshes the peer table from the registry and returns the eligible set of `round`
    /// from the chain's election snapshot of this job's round (members and block hash, taken
    /// at the round's start height); an error while the chain has no snapshot yet.
    pub async fn read_eligible(&self, round: u64, height: u64) -> Result<EligibleSet> {
        self.refresh_peers().await?;
        let e: Option<round::ElectionJson> = self
            .chain
            .query(
                "/magnet.jobs.v1/election",
                &format!("{}/{round}", self.cfg.job.id),
            )
            .await?;
        let e = e.ok_or_else(|| {
            DaemonError::Chain(format!(
                "job {} round {round}: the chain has no election snapshot yet",
                self.cfg.job.id
            ))
        })?;
        let rule = LeaderRule::parse(&self.spec.leader_rule).unwrap_or_default();
        let (set, warnings) = e.to_eligible(round, height, rule)?;
        for w in warnings {
            tracing::warn!(round, "{w}");
        }
        Ok(set)
    }

    /// This node's claim signature over `g` (hex), with its node key.
    fn sign(&self, g: &mut magnet_diloco::round::GradientReady) -> Result<()> {
        let secret = self.keys.node.secret_bytes()?;
        round::sign_signal(&self.genesis.chain_id, &secret, g)
    }

    /// Checks a GradientReady that arrived over p2p: its claim must be signed by the sender's
    /// registered node key.
    fn verify_gradient(&self, g: &magnet_diloco::round::GradientReady) -> Result<()> {
        let peer = self.net.peer(g.from.as_str())?;
        round::verify_signal(&self.genesis.chain_id, &peer.pubkey, g)
    }

    /// Refreshes the peer table from the latest registry state.
    pub async fn refresh_peers(&self) -> Result<()> {
        let nodes: Vec<NodeRecordJson> = self.chain.query("/magnet.registry.v1/nodes", "").await?;
        self.upsert_peers(&nodes)
    }

    /// Records registry nodes in the peer table and their keys in the p2p verifier's registry.
    fn upsert_peers(&self, nodes: &[NodeRecordJson]) -> Result<()> {
        let mut peers = self
            .net
            .peers
            .write()
            .map_err(|_| DaemonError::State("peer table lock poisoned".into()))?;
        for p in nodes.iter().map(NodeRecordJson::to_peer) {
            if let Ok(pk) = magnet_p2p::PublicKey::from_bytes(&p.pubkey) {
                self.registry.register(pk, "chain");
            }
            peers.insert(p.node_id.clone(), p);
        }
        Ok(())
    }

    pub(crate) fn node_of_operator(&self, operator: &str) -> Option<String> {
        self.net
            .peers
            .read()
            .ok()?
            .values()
            .find(|p| p.operator == operator)
            .map(|p| p.node_id.clone())
    }
}

/// One round's inner training: fetch the base, train, compress, store Δ and θ_i.
async fn train_task(sh: Arc<Shared>, round: u64, base_hash: Digest, steps: u32) -> Event {
    match train(&sh, round, base_hash, steps).await {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(round, "training failed: {e}");
            Event::TrainingFailed {
                round,
                detail: e.to_string(),
            }
        }
    }
}

fn nan_update(len: usize, chunk: u32) -> Compressed {
    let chunks = len.div_ceil(chunk as usize);
    Compressed {
        len: len as u64,
        chunk,
        scales: vec![f32::NAN; chunks],
        indices: None,
        values: vec![0; len],
    }
}

/// The longest a training round waits for evaluation duties (a stuck flag must not stop
/// training for good; the devnet's evaluator-commit window is 70 s).
const MAX_EVALUATION_WAIT: std::time::Duration = std::time::Duration::from_secs(180);

/// Waits while this node has evaluation duties pending (ADR 0098): an evaluator's window is
/// hard — a missed score leaves an honest contributor unscored and forfeits the evaluator's
/// pay — while a training round is soft (a late Δ only misses that round's merge).
async fn evaluation_first(sh: &Shared, round: u64) {
    let started = Instant::now();
    while sh.evaluating.load(std::sync::atomic::Ordering::Relaxed)
        && started.elapsed() < MAX_EVALUATION_WAIT
    {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let waited = started.elapsed();
    if waited.as_millis() >= 250 {
        tracing::info!(
            round,
            waited_ms = waited.as_millis() as u64,
            "training waited for evaluation duties"
        );
    }
}

async fn train(sh: &Arc<Shared>, round: u64, base_hash: Digest, steps: u32) -> Result<Event> {
    let base = sh.checkpoint(&base_hash, round.checked_sub(1)).await?;
    evaluation_first(sh, round).await;
    let fault = sh.cfg.dev.fault;
    // A Sybil identity shares one machine with three others: a quarter of the inner steps,
    // claimed as what they are.
    let steps = if fault == Fault::Sybil {
        steps.div_ceil(4).max(1)
    } else {
        steps
    };
    let sh2 = sh.clone();
    let (work, wire, delta_hash) = tokio::task::spawn_blocking(move || -> Result<_> {
        let work = sh2
            .engine
            .lock()
            .map_err(|_| DaemonError::State("engine lock poisoned".into()))?
            .train_round(&base.params, steps, fault)?;
        let c = if fault == Fault::Nan {
            nan_update(work.delta.len(), sh2.cfg.job.compression_chunk)
        } else {
            sh2.compressor
                .lock()
                .map_err(|_| DaemonError::State("compressor lock poisoned".into()))?
                .compress(&work.delta)
                .map_err(|e| DaemonError::Diloco(e.to_string()))?
        };
        let dh = c.delta_hash();
        Ok((work, c.to_bytes(), dh))
    })
    .await
    .map_err(|e| DaemonError::State(format!("training task: {e}")))??;
    let key = round::delta_key(&wire);
    // The `stripe-only` fault keeps no local copy (and so pushes and serves none): every
    // reader — the leader included — must take the network path, its stripe.
    if fault != Fault::StripeOnly {
        sh.net.put_local(&key, &wire)?;
        // Also by its Δ hash, the name the lineage gives it: evaluators fetch it from here.
        sh.net
            .put_local(&round::delta_by_hash_key(&delta_hash), &wire)?;
    }
    // The network copy: RS(4,2) stripes on the storage tier, registered on chain, so the
    // leader, evaluators and auditors can read this Δ when this node is gone. A node that keeps
    // no copy (`stripe-only`) registers the stripe before it hands the Δ in: published in the
    // background, the registration waited behind the node key's other txs and reached the
    // chain after the leader's merge, which then found neither a copy nor a stripe (CI at
    // 62c7029: all 17 of its Δs rejected).
    {
        let (k, wire) = (sh.keeper.clone(), wire.clone());
        let job = sh.cfg.job.id;
        let publish = async move {
            if let Err(e) = k.publish("delta", &delta_hash.0, job, &wire).await {
                tracing::warn!(round, "publishing the Δ's stripe: {e}");
            }
        };
        if fault == Fault::StripeOnly {
            publish.await;
        } else {
            tokio::spawn(publish);
        }
    }
    let local = Checkpoint::new(work.local.clone());
    let local_hash = local.hash();
    sh.net
        .put_local(&round::checkpoint_key(&local_hash), &local.to_bytes())?;
    let head = sh.chain.head().await?;
    let (epoch, offset) = sh.epoch_at(head.time);
    let commit_at = sh
        .windows
        .commit
        .saturating_sub(sh.cfg.job.commit_lead_secs);
    let credit_epoch = if offset < commit_at { epoch } else { epoch + 1 };
    {
        let mut st = sh.state.lock().await;
        st.local_checkpoint = Some(local_hash.to_hex());
        *st.steps_by_epoch.entry(credit_epoch).or_default() += u64::from(steps);
    }
    tracing::debug!(round, steps, tokens = work.tokens, "claimable work");
    sh.save_state().await;
    // The local model's validation loss is measured after the Δ is handed back, so a slow
    // evaluation never makes the Δ miss its round.
    let (sh2, local_params, train_loss, tokens, up) = (
        sh.clone(),
        work.local.clone(),
        work.train_loss,
        work.tokens,
        wire.len(),
    );
    let (dh, height) = (delta_hash.to_hex(), head.height);
    tokio::task::spawn_blocking(move || {
        let v = sh2
            .evaluator
            .lock()
            .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))
            .and_then(|e| e.eval(&local_params))
            .unwrap_or(f64::NAN);
        if v.is_finite() {
            sh2.metrics.local_val_loss.set(v);
        }
        sh2.log_round(serde_json::json!({
            "kind": "local", "round": round, "node": sh2.me.as_str(), "moniker": sh2.cfg.moniker,
            "train_loss": train_loss, "local_val_loss": v,
            "upload_bytes": up, "tokens": tokens, "height": height, "delta_hash": dh,
        }));
        tracing::info!(round, loss = train_loss, val = v, "local model evaluated");
    });
    tracing::info!(round, loss = work.train_loss, "inner steps done");
    // The inflate adversary signs 100× its work; the leader and the chain must refuse it.
    let inflate = if fault == Fault::Inflate { 100 } else { 1 };
    Ok(Event::TrainingDone {
        round,
        base_hash,
        delta_hash,
        content_address: hex::encode(key.object_id),
        local_loss: work.train_loss as f32,
        data_size: work.tokens.saturating_mul(inflate),
        steps: u64::from(steps).saturating_mul(inflate),
    })
}

/// Signs the Δ's work claim, pushes the Δ to the leader (direct path), then signals it.
async fn send_gradient(
    sh: Arc<Shared>,
    to: NodeId,
    mut signal: magnet_diloco::round::GradientReady,
) {
    if let Err(e) = sh.sign(&mut signal) {
        tracing::warn!(round = signal.round, "GradientReady not sent: {e}");
        return;
    }
    let pushed = async {
        let id: [u8; 32] = hex::decode(&signal.content_address)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| DaemonError::Diloco("bad content address".into()))?;
        let key = magnet_p2p::ShardKey {
            object_id: id,
            index: 0,
        };
        let bytes = sh
            .net
            .get_local(&key)?
            .ok_or_else(|| DaemonError::Diloco("our Δ is not in the local store".into()))?;
        sh.net.push(to.as_str(), &key, &bytes).await?;
        sh.metrics.bytes_sent.inc_by(bytes.len() as u64);
        sh.state.lock().await.bytes_sent += bytes.len() as u64;
        Ok::<_, DaemonError>(())
    }
    .await;
    if let Err(e) = pushed {
        tracing::warn!(leader = %to, "direct Δ push failed (the leader can still pull it): {e}");
    }
    match serde_json::to_vec(&signal) {
        Ok(json) => {
            if let Err(e) = sh.net.send(to.as_str(), kind::GRADIENT_READY, json).await {
                tracing::warn!(leader = %to, "GradientReady not delivered: {e}");
            }
        }
        Err(e) => tracing::warn!("encoding GradientReady: {e}"),
    }
}

async fn merge_task(sh: Arc<Shared>, job: MergeJob) -> Event {
    match do_merge(&sh, &job).await {
        Ok(ev) => ev,
        Err(e) => {
            tracing::warn!(round = job.round, "merge failed: {e}");
            Event::MergeFailed {
                round: job.round,
                detail: e.to_string(),
            }
        }
    }
}

async fn do_merge(sh: &Arc<Shared>, job: &MergeJob) -> Result<Event> {
    let base = sh
        .checkpoint(&job.base_hash, job.round.checked_sub(1))
        .await?;
    let mut contributions = Vec::with_capacity(job.contributions.len());
    for g in &job.contributions {
        let id: Option<[u8; 32]> = hex::decode(&g.content_address)
            .ok()
            .and_then(|b| b.try_into().ok());
        let delta = match id {
            None => Vec::new(),
            Some(id) => {
                let key = magnet_p2p::ShardKey {
                    object_id: id,
                    index: 0,
                };
                let bytes = match sh.net.get_local(&key)? {
                    Some(b) => Some(b),
                    None => {
                        let mut b = sh.net.fetch(g.node.as_str(), &key, Some(id)).await.ok();
                        // Its producer is gone or withholds it: read it from its stripe.
                        if b.is_none() {
                            match sh.keeper.fetch_object(&id).await {
                                Ok(Some(x)) => {
                                    tracing::info!(round = job.round, from = %g.node, "Δ read from its stripe (producer unreachable)");
                                    sh.log_round(serde_json::json!({
                                        "kind": "stripe_read", "round": job.round,
                                        "producer": g.node.as_str(), "bytes": x.len(),
                                    }));
                                    b = Some(x);
                                }
                                Ok(None) => {}
                                Err(e) => tracing::warn!(round = job.round, "Δ stripe: {e}"),
                            }
                        }
                        // Kept, so the round's auditors can fetch it from the leader too.
                        if let Some(b) = &b {
                            sh.net.put_local(&key, b)?;
                        }
                        b
                    }
                };
                // A Δ that cannot be fetched or parsed enters the merge empty and is rejected
                // there (wrong length), so the record names it.
                bytes
                    .and_then(|b| Compressed::from_bytes(&b).ok())
                    .map(|c| c.decode())
                    .unwrap_or_default()
            }
        };
        // The leader's own Δ reaches the machine unsigned (it never travels): sign its claim
        // for this round here, so the record carries a signature for every accepted Δ.
        let mut signature = g.signature.clone();
        if g.node == sh.me && signature.is_empty() {
            let mut own = magnet_diloco::round::GradientReady {
                job_id: sh.cfg.job.id,
                round: job.round,
                from: g.node.clone(),
                base_hash: g.base_hash,
                delta_hash: g.delta_hash,
                content_address: g.content_address.clone(),
                local_loss: g.local_loss,
                data_size: g.data_size,
                steps: g.steps,
                signature: String::new(),
            };
            sh.sign(&mut own)?;
            signature = own.signature;
        }
        if let (Some(id), Ok(mut m)) = (id, sh.content_addresses.lock()) {
            m.insert((job.round, g.delta_hash.0), id);
        }
        contributions.push(Contribution {
            node: g.node.clone(),
            declared_hash: g.delta_hash,
            delta,
            data_size: g.data_size,
            quality_bps: g.quality_bps,
            staleness: g.staleness,
            base_hash: g.base_hash,
            steps: g.steps,
            signature,
        });
    }
    let meta = MergeMeta {
        job_id: sh.cfg.job.id,
        round: job.round,
        leader: sh.me.clone(),
    };
    let policy = sh.policy;
    let mut out = tokio::task::spawn_blocking(move || {
        merge(&base, &contributions, &policy, &meta).map_err(|e| DaemonError::Diloco(e.to_string()))
    })
    .await
    .map_err(|e| DaemonError::State(format!("merge task: {e}")))??;
    if sh.cfg.dev.fault == Fault::Fraud {
        // The fraud adversary serves and records a checkpoint that is not the merge of the Δs
        // its record lists; the drawn auditors must catch it (ADR 0089).
        crate::audit::perturb(&mut out);
        tracing::warn!(
            round = job.round,
            "fraud fault: recording a perturbed merge"
        );
    }
    let hash = out.checkpoint.hash();
    let ckpt_bytes = out.checkpoint.to_bytes();
    sh.net
        .put_local(&round::checkpoint_key(&hash), &ckpt_bytes)?;
    {
        let (k, job_id, round) = (sh.keeper.clone(), sh.cfg.job.id, job.round);
        tokio::spawn(async move {
            if let Err(e) = k.publish("checkpoint", &hash.0, job_id, &ckpt_bytes).await {
                tracing::warn!(round, "publishing the checkpoint's stripe: {e}");
            }
        });
    }
    sh.metrics.rounds_led.inc();
    let accepted: Vec<_> = out
        .record
        .accepted
        .iter()
        .map(|a| {
            serde_json::json!({
                "node": a.node.as_str(), "weight_ppm": a.weight_ppm,
                "delta_hash": a.delta_hash.to_hex(), "staleness": a.staleness,
            })
        })
        .collect();
    let rejected: Vec<_> = out
        .record
        .rejected
        .iter()
        .map(|r| serde_json::json!({"node": r.node.as_str(), "reason": format!("{:?}", r.reason)}))
        .collect();
    // The merged model's validation loss is measured after the round is handed back, so a slow
    // evaluation never holds the merge past its grace period.
    let (sh2, round, base_hash) = (sh.clone(), job.round, job.base_hash);
    let params = out.checkpoint.params.clone();
    tokio::task::spawn_blocking(move || {
        let loss = sh2
            .evaluator
            .lock()
            .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))
            .and_then(|e| e.eval(&params));
        let merged_val_loss = match loss {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(round, "evaluating the merged model: {e}");
                f64::NAN
            }
        };
        if merged_val_loss.is_finite() {
            sh2.metrics.merged_val_loss.set(merged_val_loss);
        }
        sh2.log_round(serde_json::json!({
            "kind": "merged", "round": round, "leader": sh2.me.as_str(), "moniker": sh2.cfg.moniker,
            "merged_hash": hash.to_hex(), "base_hash": base_hash.to_hex(),
            "merged_val_loss": merged_val_loss, "accepted": accepted, "rejected": rejected,
        }));
        tracing::info!(round, merged_val_loss, "merged");
    });
    Ok(Event::MergeDone {
        round: job.round,
        record: out.record,
    })
}

/// The hijack adversary: records the round it just trained for itself — its own Δ as the only
/// contributor at full weight, its local checkpoint as the merge — whoever the leader is. The
/// chain must refuse it unless this node is the round's elected leader (then the record is an
/// honest-looking one-contributor round; the leader's own merge record follows and is refused
/// as a replay). The outcome goes to the rounds log as `{"kind": "hijack", …}`.
async fn hijack(sh: Arc<Shared>, mut signal: magnet_diloco::round::GradientReady) {
    let attempt = async {
        sh.sign(&mut signal)?;
        let job: JobJson = sh
            .chain
            .query("/magnet.jobs.v1/job", &sh.cfg.job.id.to_string())
            .await?;
        let head = Digest::from_hex(&job.head).map_err(|e| DaemonError::Chain(e.to_string()))?;
        let merged = sh
            .state
            .lock()
            .await
            .local_checkpoint
            .as_deref()
            .and_then(|h| Digest::from_hex(h).ok())
            .unwrap_or(Digest([0x66; 32]));
        let signature =
            hex::decode(&signal.signature).map_err(|e| DaemonError::State(e.to_string()))?;
        let own = magnet_jobs::msgs::Accepted {
            node: sh.keys.node.address(),
            job: sh.cfg.job.id,
            round: signal.round,
            base_hash: signal.base_hash.0,
            delta_hash: signal.delta_hash.0,
            steps: signal.steps,
            tokens: signal.data_size,
            signature,
            weight_ppm: magnet_rounds::WEIGHT_SCALE_PPM,
            content_address: hex::decode(&signal.content_address)
                .ok()
                .and_then(|b| b.try_into().ok())
                .unwrap_or([0u8; 32]),
        };
        let msg = magnet_jobs::msgs::record_round(
            &sh.keys.node.address(),
            sh.cfg.job.id,
            signal.round,
            head.0,
            merged.0,
            &[own],
            &[],
        );
        sh.chain
            .send(&sh.keys.node, "MsgRecordRound", vec![msg])
            .await
    }
    .await;
    let (refused, error) = match &attempt {
        Ok(_) => (false, String::new()),
        Err(e) => (true, e.to_string()),
    };
    tracing::info!(round = signal.round, refused, "hijack attempt: {error}");
    sh.log_round(serde_json::json!({
        "kind": "hijack", "round": signal.round, "node": sh.me.as_str(),
        "refused": refused, "error": error,
    }));
}

async fn record_round(sh: Arc<Shared>, record: magnet_diloco::RoundRecord) {
    let node_account = |id: &NodeId| -> Option<magnet_core::Address> {
        sh.net
            .peer(id.as_str())
            .ok()
            .and_then(|p| p.node.parse().ok())
    };
    let (mut accepted, rejected) = match round::record_entries(&record, node_account) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(round = record.round, "MsgRecordRound not sent: {e}");
            return;
        }
    };
    if let Ok(m) = sh.content_addresses.lock() {
        for a in &mut accepted {
            if let Some(ca) = m.get(&(record.round, a.delta_hash)) {
                a.content_address = *ca;
            }
        }
    }
    let msg = magnet_jobs::msgs::record_round(
        &sh.keys.node.address(),
        sh.cfg.job.id,
        record.round,
        record.base_hash.0,
        record.merged_hash.0,
        &accepted,
        &rejected,
    );
    match sh
        .chain
        .send(&sh.keys.node, "MsgRecordRound", vec![msg])
        .await
    {
        Ok(h) => tracing::info!(round = record.round, height = h, "round recorded on chain"),
        Err(e) => {
            sh.metrics.chain_errors.inc();
            tracing::warn!(round = record.round, "MsgRecordRound: {e}");
        }
    }
}

async fn adopt(sh: Arc<Shared>, round: u64, hash: Digest) {
    match sh.checkpoint(&hash, Some(round)).await {
        Ok(_) => {
            {
                let mut st = sh.state.lock().await;
                st.last_merged = Some((round, hash.to_hex()));
            }
            sh.save_state().await;
            sh.log_round(serde_json::json!({
                "kind": "adopted", "round": round, "node": sh.me.as_str(), "hash": hash.to_hex(),
            }));
        }
        Err(e) => tracing::warn!(round, "cannot adopt checkpoint {hash}: {e}"),
    }
}

async fn publish(
    sh: Arc<Shared>,
    to: Vec<NodeId>,
    kind: &'static str,
    json: Vec<u8>,
) -> Vec<(NodeId, bool)> {
    let mut out = Vec::new();
    for p in to {
        let ok = match sh.net.send(p.as_str(), kind, json.clone()).await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(peer = %p, "{kind} not delivered: {e}");
                false
            }
        };
        out.push((p, ok));
    }
    out
}

/// Performs the machine's actions; slow ones are spawned and answer on `tx`.
fn perform(
    sh: &Arc<Shared>,
    actions: Vec<Action>,
    tx: &mpsc::UnboundedSender<Event>,
    reads: &mut Vec<(u64, u64)>,
    wakes: &mut Vec<u64>,
) {
    for a in actions {
        match a {
            Action::ReadEligible { round, height } => {
                sh.metrics.round.set(round as i64);
                reads.push((round, height));
            }
            Action::Announce { to, announcement } => {
                if let Ok(mut l) = sh.leaders.lock() {
                    l.insert(announcement.round, sh.me.to_string());
                }
                sh.log_round(serde_json::json!({
                    "kind": "announced", "round": announcement.round, "leader": sh.me.as_str(),
                    "peers": to.len(),
                }));
                let (sh, tx) = (sh.clone(), tx.clone());
                tokio::spawn(async move {
                    let round = announcement.round;
                    let json = serde_json::to_vec(&announcement).unwrap_or_default();
                    for (peer, ok) in publish(sh, to, kind::ANNOUNCEMENT, json).await {
                        let ev = if ok {
                            Event::AnnouncementDelivered { round, peer }
                        } else {
                            Event::PeerUnreachable { round, peer }
                        };
                        let _ = tx.send(ev);
                    }
                });
            }
            Action::TrainInner {
                round,
                base_hash,
                steps,
            } => {
                let (sh, tx) = (sh.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(train_task(sh, round, base_hash, steps).await);
                });
            }
            Action::SendGradientReady { to, signal } => {
                if let Ok(mut l) = sh.leaders.lock() {
                    l.insert(signal.round, to.to_string());
                }
                if sh.cfg.dev.fault == Fault::Hijack {
                    tokio::spawn(hijack(sh.clone(), signal.clone()));
                }
                tokio::spawn(send_gradient(sh.clone(), to, signal));
            }
            Action::Merge(job) => {
                let (sh, tx) = (sh.clone(), tx.clone());
                tokio::spawn(async move {
                    let _ = tx.send(merge_task(sh, job).await);
                });
            }
            Action::PublishMerged { to, merged } => {
                let json = serde_json::to_vec(&merged).unwrap_or_default();
                let sh = sh.clone();
                tokio::spawn(async move {
                    publish(sh, to, kind::MERGED, json).await;
                });
            }
            Action::RecordRound(record) => {
                tokio::spawn(record_round(sh.clone(), record));
            }
            Action::PublishAborted { to, aborted } => {
                let json = serde_json::to_vec(&aborted).unwrap_or_default();
                let sh = sh.clone();
                tokio::spawn(async move {
                    publish(sh, to, kind::ABORTED, json).await;
                });
            }
            Action::AdoptCheckpoint { round, hash } => {
                tokio::spawn(adopt(sh.clone(), round, hash));
            }
            Action::RoundFailed { round, why } => {
                tracing::warn!(round, "round ended without a merge here: {why:?}");
                sh.log_round(serde_json::json!({
                    "kind": "failed", "round": round, "node": sh.me.as_str(),
                    "why": format!("{why:?}"),
                }));
            }
            Action::WakeAt(t) => wakes.push(t),
            Action::Rejected(r) => tracing::debug!("round event ignored: {r}"),
        }
    }
}

/// The latest merged round recorded on chain: `(round, merged hash, leader operator)`.
#[derive(Debug, Deserialize)]
struct Lineage {
    rounds: Vec<LineageRound>,
}

#[derive(Debug, Deserialize)]
struct LineageRound {
    round: u64,
    leader: String,
    merged_hash: String,
}

/// The job record fields the daemon reads.
#[derive(Debug, Deserialize)]
pub struct JobJson {
    /// Base checkpoint (hex).
    pub base_checkpoint: String,
    /// The job's corpus hash (hex; [`crate::quality::corpus_hash`]), checked by evaluators.
    #[serde(default)]
    pub eval_set_hash: String,
    /// Latest merged checkpoint (hex).
    pub head: String,
    /// Status.
    pub status: serde_json::Value,
    /// The DiLoCo round spec of a training job.
    #[serde(default)]
    pub training: Option<TrainingSpec>,
}

/// The chain's latest recorded round of this job and its merged hash (the leader of that
/// round is remembered as the checkpoint's holder).
async fn chain_head(sh: &Shared) -> Result<Option<(u64, Digest)>> {
    let lineage: Lineage = sh
        .chain
        .query("/magnet.jobs.v1/lineage", &sh.cfg.job.id.to_string())
        .await?;
    let Some(last) = lineage.rounds.last() else {
        // No recorded round: none yet (then the machine's base is right, or round 0's record
        // is still on its way), or an upheld merge challenge rolled every round back (ADR
        // 0089) — then the head is the job's base checkpoint again.
        let audits: Vec<crate::audit::AuditJson> = sh
            .chain
            .query("/magnet.jobs.v1/audits", &sh.cfg.job.id.to_string())
            .await?;
        if !audits.iter().any(|a| a.outcome == "upheld") {
            return Ok(None);
        }
        let job: JobJson = sh
            .chain
            .query("/magnet.jobs.v1/job", &sh.cfg.job.id.to_string())
            .await?;
        let head = Digest::from_hex(&job.head).map_err(|e| DaemonError::Chain(e.to_string()))?;
        return Ok(Some((0, head)));
    };
    let hash =
        Digest::from_hex(&last.merged_hash).map_err(|e| DaemonError::Chain(e.to_string()))?;
    if let (Some(id), Ok(mut l)) = (sh.node_of_operator(&last.leader), sh.leaders.lock()) {
        l.entry(last.round).or_insert(id);
    }
    Ok(Some((last.round, hash)))
}

/// Starts the worker's services and runs until `shutdown` flips.
/// This worker's side of the p2p layer without a server: its key-bound TLS identity, request
/// signer, a verifier that accepts only keys put in the returned registry (fill it from the
/// chain's registry), and its shard store under `home/store`. Enough to dial peers — the CLI's
/// `storage` commands use it beside a running daemon.
pub fn client_net(
    cfg: &Config,
    keys: &WorkerKeys,
    home: &Path,
) -> Result<(Net, Arc<StaticRegistry>)> {
    let node_key = keys.p2p_key()?;
    let registry = Arc::new(StaticRegistry::new());
    let verifier = Arc::new(Verifier::new(VerifyMode::Wallet {
        registry: Some(registry.clone()),
    }));
    let pins = Arc::new(
        PinStore::open(&home.join("p2p-pins.json")).map_err(|e| DaemonError::P2p(e.to_string()))?,
    );
    let tls = NodeTls::key_bound(&node_key, pins).map_err(|e| DaemonError::P2p(e.to_string()))?;
    // Shards this node holds (its own Δs and checkpoints as index-0 shards, and stripe shards
    // it keeps for others): a `ShardStore`, whose reads are hash-checked, so bitrot in a shard
    // it is audited on is detected instead of proven.
    let store = ShardStore::open(home.join("store"))
        .map_err(|e| DaemonError::P2p(format!("opening the shard store: {e}")))?;
    let backend: Arc<dyn ShardBackend> = Arc::new(StoreBackend::new(store, cfg.node.storage_quota));
    let net = Net {
        tls,
        signer: Signer::Wallet(node_key),
        verifier,
        backend,
        peers: Default::default(),
    };
    Ok((net, registry))
}

/// Starts this worker's p2p node (wallet mode: only keys registered on chain are accepted,
/// once the peer table is filled) over its shard store under `home/store`.
/// Every shard it accepts is acknowledged with a receipt signed by the node key for chain
/// `chain_id` (ADR 0107).
pub async fn start_p2p(
    cfg: &Config,
    keys: &WorkerKeys,
    home: &Path,
    chain_id: &str,
) -> Result<(NodeHandle, Net, Arc<StaticRegistry>)> {
    let (net, registry) = client_net(cfg, keys, home)?;
    let node_key = keys.p2p_key()?;
    let listen = cfg
        .node
        .p2p_listen
        .parse()
        .map_err(|e| DaemonError::State(format!("node.p2p_listen: {e}")))?;
    let p2p = NodeHandle::spawn(NodeConfig {
        service: ServiceConfig {
            signer: net.signer.clone(),
            verifier: net.verifier.clone(),
            backend: net.backend.clone(),
            tier: cfg.node.tier.clone(),
            region: cfg.node.region.clone(),
            max_shard_bytes: 1 << 30,
            deleters: Some(Default::default()),
            receipts: Some(ReceiptConfig {
                chain_id: chain_id.to_string(),
                key: node_key.clone(),
            }),
        },
        tls: net.tls.clone(),
        listen,
        public_key: Some(node_key.public_key()),
    })
    .await?;
    Ok((p2p, net, registry))
}

/// Starts the worker's services and runs until `shutdown` flips.
pub async fn run(home: &Path, shutdown: Arc<AtomicBool>) -> Result<()> {
    let mut cfg = Config::load(home)?;
    // A storage node keeps stripes, not models: its own, lighter loop.
    if cfg.node.tier == "storage_node" {
        return crate::keeper::run_storage(home, shutdown).await;
    }
    let keys = WorkerKeys::load(home)?;
    // One client per daemon: its tx queue serialises the node key's sequence across duties.
    let chain = Arc::new(Chain::from_config(&cfg.chain)?);
    let genesis = chain.genesis().await?;
    let me = NodeId::new(keys.node_id()?).map_err(|e| DaemonError::Keys(e.to_string()))?;
    let state = State::load(home)?;
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
    let windows = crate::duties::Windows::read(&chain).await?;
    let reg_params: serde_json::Value = chain.query("/magnet.registry.v1/params", "").await?;
    let liveness_window_secs = reg_params["liveness_window_secs"].as_u64().unwrap_or(300);
    let heartbeat_interval_secs = reg_params["heartbeat_interval_secs"].as_u64().unwrap_or(30);

    // The job on chain is the truth about its rounds: H, the schedule, the leader rule, the
    // staleness policy and the claim bound come from its training spec.
    let job: JobJson = chain
        .query("/magnet.jobs.v1/job", &cfg.job.id.to_string())
        .await
        .map_err(|e| DaemonError::State(format!("job {}: {e}", cfg.job.id)))?;
    let spec = job.training.clone().ok_or_else(|| {
        DaemonError::State(format!(
            "job {} has no training spec on chain: DiLoCo rounds need a training job \
             (create it with `magnet-chain tx jobs create … --inner-steps …`)",
            cfg.job.id
        ))
    })?;

    tracing::info!(node = %me, "preparing data and model");
    let job_cfg = cfg.job.clone();
    let (home2, fault) = (home.to_path_buf(), cfg.dev.fault);
    let (engine, evaluator) =
        tokio::task::spawn_blocking(move || Engine::open(&job_cfg, &home2, fault))
            .await
            .map_err(|e| DaemonError::State(format!("engine task: {e}")))??;
    let base_checkpoint = evaluator.base_checkpoint();
    let job_base = base_checkpoint.hash();
    let (params, data_hash) = (engine.params(), engine.data_hash);
    for w in cfg.job.adopt_training_spec(&spec, params)? {
        tracing::warn!(job = cfg.job.id, "{w}");
    }
    let policy = cfg.job.merge_policy_for(&spec);
    policy
        .validate()
        .map_err(|e| DaemonError::State(format!("job {}'s merge policy: {e}", cfg.job.id)))?;
    if job.base_checkpoint != job_base.to_hex() {
        return Err(DaemonError::State(format!(
            "job {}'s base checkpoint is {}, but this worker's model is {}: the [job] section \
             (preset, vocab, model_seed, tokenizer, corpus) must match the job's",
            cfg.job.id,
            job.base_checkpoint,
            job_base.to_hex()
        )));
    }
    let compressor = Compressor::new(
        CompressionConfig {
            chunk: cfg.job.compression_chunk,
            top_k_ppm: None,
        },
        engine.params() as usize,
    )
    .map_err(|e| DaemonError::Diloco(e.to_string()))?;

    let (p2p, net, registry) = start_p2p(&cfg, &keys, home, &genesis.chain_id).await?;
    let (inbox_tx, mut inbox) = mpsc::channel(256);
    p2p.set_diloco_inbox(inbox_tx);
    // Research work units (ADR 0112) from registered nodes, one at a time beside training.
    let _research = crate::research::TrialServer::new(
        net.backend.clone(),
        home.join("research-cache"),
        1,
        if cfg.dev.fault == crate::config::Fault::Fabricate {
            crate::research::TrialFault::Fabricate
        } else {
            crate::research::TrialFault::None
        },
    )
    .with_claim_key(keys.p2p_key()?)
    .spawn(&p2p);
    let metrics = Metrics::new();
    let _metrics_task = if cfg.node.metrics_listen.is_empty() {
        None
    } else {
        Some(crate::metrics::serve(&cfg.node.metrics_listen, metrics.clone()).await?)
    };
    let keeper = Arc::new(crate::keeper::Keeper {
        home: home.to_path_buf(),
        chain: chain.clone(),
        keys: Arc::new(WorkerKeys::load(home)?),
        net: net.clone(),
        chain_id: genesis.chain_id.clone(),
        genesis_time: genesis.genesis_time,
        epoch_secs: genesis.epoch_secs,
        liveness_window_secs,
        state: tokio::sync::Mutex::new(crate::keeper::Keeper::load_state(home)?),
        fault: cfg.dev.fault,
    });
    let sh = Arc::new(Shared {
        home: home.to_path_buf(),
        cfg: cfg.clone(),
        keys,
        me: me.clone(),
        chain,
        genesis,
        engine: std::sync::Mutex::new(engine),
        evaluator: std::sync::Mutex::new(evaluator),
        base_checkpoint,
        compressor: std::sync::Mutex::new(compressor),
        net,
        registry,
        state: tokio::sync::Mutex::new(state),
        metrics: metrics.clone(),
        job_base,
        params,
        data_hash,
        leaders: Default::default(),
        base_losses: Default::default(),
        evaluating: Default::default(),
        scores: Default::default(),
        round_dups: Default::default(),
        liveness_window_secs,
        heartbeat_interval_secs,
        windows,
        spec: spec.clone(),
        policy,
        nothing_to_claim: Default::default(),
        content_addresses: Default::default(),
        audits_done: Default::default(),
        audit_tries: Default::default(),
        audit_polled_ms: Default::default(),
        keeper,
        research: Default::default(),
    });
    sh.refresh_peers().await?;
    // Custody duties for the shards this node holds, if it is storage-capable (ADR 0107).
    let keeper_duties = crate::keeper::spawn_duties(sh.keeper.clone(), shutdown.clone());

    // Where to start: after the chain's last recorded round, at the current schedule.
    let lineage: Lineage = sh
        .chain
        .query("/magnet.jobs.v1/lineage", &cfg.job.id.to_string())
        .await?;
    let mut base = job_base;
    let mut next_round = 0;
    if let Some(last) = lineage.rounds.last() {
        base =
            Digest::from_hex(&last.merged_hash).map_err(|e| DaemonError::Chain(e.to_string()))?;
        next_round = last.round + 1;
        if let (Some(id), Ok(mut l)) = (sh.node_of_operator(&last.leader), sh.leaders.lock()) {
            l.insert(last.round, id);
        }
    }
    let head = sh.chain.head().await?;
    let rc = RoundConfig {
        me: me.clone(),
        job_id: cfg.job.id,
        rule: match cfg.job.leader_rule {
            LeaderRuleName::Hash => LeaderRule::BlockHashSeeded,
            LeaderRuleName::RoundRobin => LeaderRule::RoundRobin,
        },
        inner_steps: cfg.job.inner_steps,
        first_height: cfg.job.first_height,
        blocks_per_round: cfg.job.blocks_per_round,
        round_ms: cfg.job.round_ms,
        announce_timeout_ms: cfg.job.announce_timeout_ms,
        merge_grace_ms: cfg.job.merge_grace_ms,
        policy,
        claim_bound: Some(spec.bound()),
    };
    let scheduled = if head.height <= rc.first_height {
        0
    } else {
        (head.height - rc.first_height).div_ceil(rc.blocks_per_round)
    };
    let start = next_round.max(scheduled);
    tracing::info!(node = %me, round = start, base = %base, p2p = %p2p.addr(), "worker running");
    let (mut sm, first) = RoundState::new(rc.clone(), start, base);
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut reads: Vec<(u64, u64)> = Vec::new();
    let mut wakes: Vec<u64> = Vec::new();
    perform(&sh, first, &tx, &mut reads, &mut wakes);
    let duty_running = Arc::new(AtomicBool::new(false));
    // The last duty error and when it was logged: a refusal that repeats every tick (a
    // jailed node, a reveal the chain refuses) is logged once a minute, not twice a second.
    let duty_error: Arc<std::sync::Mutex<Option<(String, Instant)>>> =
        Arc::new(std::sync::Mutex::new(None));
    let audit_running = Arc::new(AtomicBool::new(false));
    let research_running = Arc::new(AtomicBool::new(false));
    let beat_running = Arc::new(AtomicBool::new(false));
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut reading = false;
    let (read_tx, mut read_rx) = mpsc::unbounded_channel::<(u64, u64, Result<EligibleSet>)>();
    while !shutdown.load(Ordering::Relaxed) {
        let mut events = Vec::new();
        tokio::select! {
            Some((from, msg)) = inbox.recv() => {
                match round::parse_message(from.as_str(), &msg) {
                    // A Δ claim not signed by its sender's registered node key never
                    // reaches the machine (the chain would refuse a record accepting it).
                    Ok(Event::GradientReady(g)) => match sh.verify_gradient(&g) {
                        Ok(()) => events.push(Event::GradientReady(g)),
                        Err(e) => tracing::warn!(from = %from, round = g.round, "dropped GradientReady: {e}"),
                    },
                    Ok(ev) => {
                        if let Event::Merged(m) = &ev {
                            if let Ok(mut l) = sh.leaders.lock() {
                                l.insert(m.record.round, from.to_string());
                            }
                        }
                        events.push(ev);
                    }
                    Err(e) => tracing::warn!("dropped p2p message: {e}"),
                }
            }
            Some(ev) = rx.recv() => events.push(ev),
            Some((round, height, r)) = read_rx.recv() => {
                reading = false;
                match r {
                    Ok(set) => {
                        // The chain's lineage is the truth about the base: a node that missed a
                        // merged notice (or whose merge the chain refused) restarts the round
                        // from the chain's head.
                        if let Ok(Some((head_round, head))) = chain_head(&sh).await {
                            if head != sm.last_merged() && head_round < round {
                                tracing::info!(round, %head, "resyncing the round base with the chain");
                                let (fresh, _read_again) = RoundState::new(rc.clone(), round, head);
                                sm = fresh;
                            }
                        }
                        events.push(Event::EligibleRead { round, set });
                    }
                    Err(e) => {
                        tracing::warn!(round, height, "eligible set not readable yet: {e}");
                        reads.push((round, height));
                    }
                }
            }
            _ = tick.tick() => {
                let now = now_ms();
                if wakes.iter().any(|&t| t <= now) {
                    wakes.retain(|&t| t > now);
                    events.push(Event::Tick);
                }
                if !reading {
                    if let Some(&(round, height)) = reads.first() {
                        if let Ok(h) = sh.chain.head().await {
                            if h.height >= height {
                                reads.remove(0);
                                reading = true;
                                let (sh, read_tx) = (sh.clone(), read_tx.clone());
                                tokio::spawn(async move {
                                    let r = sh.read_eligible(round, height).await;
                                    let _ = read_tx.send((round, height, r));
                                });
                            }
                        }
                    }
                }
                if !beat_running.swap(true, Ordering::SeqCst) {
                    let (sh, flag) = (sh.clone(), beat_running.clone());
                    tokio::spawn(async move {
                        if let Err(e) = crate::duties::heartbeat_tick(&sh).await {
                            sh.metrics.chain_errors.inc();
                            tracing::warn!("heartbeat: {e}");
                        }
                        flag.store(false, Ordering::SeqCst);
                    });
                }
                if !duty_running.swap(true, Ordering::SeqCst) {
                    let (sh, flag) = (sh.clone(), duty_running.clone());
                    let last = duty_error.clone();
                    tokio::spawn(async move {
                        if let Err(e) = crate::duties::run_duties(&sh).await {
                            sh.metrics.chain_errors.inc();
                            let e = e.to_string();
                            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
                            match last.as_ref() {
                                Some((m, t)) if *m == e && t.elapsed() < Duration::from_secs(60) => {
                                    tracing::debug!("epoch duties (repeated): {e}");
                                }
                                _ => {
                                    tracing::warn!("epoch duties: {e}");
                                    *last = Some((e, Instant::now()));
                                }
                            }
                        }
                        flag.store(false, Ordering::SeqCst);
                    });
                }
                if !audit_running.swap(true, Ordering::SeqCst) {
                    let (sh, flag) = (sh.clone(), audit_running.clone());
                    tokio::spawn(async move {
                        if let Err(e) = crate::audit::audit_tick(&sh).await {
                            tracing::warn!("merge audit: {e}");
                        }
                        flag.store(false, Ordering::SeqCst);
                    });
                }
                if !research_running.swap(true, Ordering::SeqCst) {
                    let (sh, flag) = (sh.clone(), research_running.clone());
                    tokio::spawn(async move {
                        if let Err(e) = crate::research_job::research_tick(&sh).await {
                            tracing::warn!("research jobs: {e}");
                        }
                        flag.store(false, Ordering::SeqCst);
                    });
                }
                if let Ok(list) = sh.net.backend.list_shards(None) {
                    sh.metrics.shards_held.set(list.len() as i64);
                }
            }
        }
        for ev in events {
            let (next, actions) = sm.step(ev, now_ms());
            sm = next;
            perform(&sh, actions, &tx, &mut reads, &mut wakes);
        }
    }
    keeper_duties.abort();
    tracing::info!(node = %me, "shutting down");
    sh.save_state().await;
    p2p.kill();
    Ok(())
}
