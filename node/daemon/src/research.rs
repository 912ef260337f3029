//! The research duty (issue 20, ADR 0112): research runs farmed out as work units over the
//! signed p2p layer, re-checked by other workers.
//!
//! * [`TrialServer`] — a worker's side. Registered on the node's p2p service, it answers
//!   `PeerService/Research` requests: a [`WorkUnit`] (one pipeline's out-of-fold predictions,
//!   see `magnet_autoresearch::unit`) is run on the job's data, which it reads from its own
//!   shard store by the data's content address (the coordinator uploads it with `PutShard`;
//!   every read is checked against the address), and answered with the predictions' canonical
//!   bytes and their hash. The p2p service signs the answer with the node key, so every
//!   answer is evidence of what that node claimed.
//! * [`Coordinator`] — the side that runs the loop (`magnet_autoresearch::run::run_with`). It
//!   is the loop's [`OofSource`]: each batch's units go to the live workers (a shared queue,
//!   one unit in flight per worker); a share of the answers (`recheck`: an exact count over the
//!   run, picked in an order keyed by a secret the workers never see) is sent to a
//!   **different** worker and the two hashes are
//!   compared. On a mismatch the coordinator runs the unit itself and whoever disagrees with
//!   it is **caught**: banned for the rest of the run, its signed answer written to the
//!   evidence folder, and every result it delivered **voided** — re-run by other workers, and,
//!   if the loop had already used any, the search restarts from scratch on verified results.
//!
//! # Security
//! Re-checked, by whom: a worker's predictions — by another worker on a sampled share (and by
//! the coordinator itself on every disagreement); its score — by the coordinator on every
//! answer (the score is re-derived from the predictions, never read from the answer); the
//! answer's shape, hash and unit — by the coordinator on every answer (a malformed or
//! mismatched answer is caught like a fabricated one). The data — by every worker, against its
//! content address.
//!
//! Guaranteed: the loop only ever uses predictions that hash to what their worker signed; a
//! caught worker's results never reach the final decisions; the evidence of a catch is the
//! worker's own signed answer plus the unit, which anyone can re-run.
//!
//! Not guaranteed: that an unsampled fabrication is caught (a worker that lies on a share `f`
//! of its units survives `n` of them with probability `(1 − recheck·f)^n`; the first catch
//! voids everything it did, which is what makes lying unprofitable); that two colluding
//! workers who check each other are caught (the checker is drawn among all live workers, and
//! a matching pair of lies passes); liveness against a worker that accepts units and never
//! answers (bounded by the per-unit timeout, after which the unit goes to another worker).
//! Paying for units and slashing on evidence are the chain's part (ADR 0111), not this
//! module's.

use magnet_autoresearch::pipeline::{Oof, PipelineConfig};
use magnet_autoresearch::unit::{
    content_address, oof_bytes, oof_cv_loss, oof_from_bytes, oof_hash, OofSource, Prepared,
    SourceError, UnitContext, UnitSummary, WorkUnit,
};
use magnet_p2p::{Expect, NodeHandle, NodeId, NodeTls, PeerClient, ShardBackend, ShardKey};
use magnet_p2p::{Signer, Verifier};
use magnet_proto::p2p::v1::ResearchMessage;
use prost::Message;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Largest unit JSON accepted.
pub const MAX_UNIT_JSON: usize = 256 << 10;

/// How a trial server misbehaves (tests and the devnet's adversaries only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrialFault {
    /// Honest.
    #[default]
    None,
    /// Answers every unit with predictions pulled halfway towards the true labels: a better
    /// score than the pipeline earns, signed as if computed.
    Fabricate,
}

impl std::str::FromStr for TrialFault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(TrialFault::None),
            "fabricate" => Ok(TrialFault::Fabricate),
            _ => Err(format!("unknown trial fault `{s}` (none, fabricate)")),
        }
    }
}

/// A research job on chain whose trials are claimed (ADR 0111): the chain and the job id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimFor {
    /// Chain id.
    pub chain_id: String,
    /// Research job id.
    pub job: u64,
}

/// What a coordinator sends: the unit, and the job whose trial claim the worker signs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitRequest {
    /// The unit.
    pub unit: WorkUnit,
    /// Sign a `magnet_rounds::TrialClaim` for this chain job (`None`: an off-chain run).
    #[serde(default)]
    pub claim: Option<ClaimFor>,
}

/// A worker's signed trial claim for the chain (ADR 0111).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimSig {
    /// CV log-loss × 10^6 of the predictions, rounded.
    pub cv_loss_micro: u64,
    /// `TrialClaim` signature by the worker's node key (64 bytes r ‖ s, hex).
    pub signature: String,
}

/// What a worker answers (JSON beside the OOF bytes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialAnswer {
    /// The unit's result.
    #[serde(flatten)]
    pub summary: UnitSummary,
    /// The chain claim, when the request asked for one.
    #[serde(default)]
    pub claim: Option<ClaimSig>,
}

/// A claim the coordinator accepted: what `MsgRecordResearchVersion` carries per trial.
#[derive(Debug, Clone, Serialize)]
pub struct ClaimRecord {
    /// Unit hash (hex).
    pub unit_hash: String,
    /// The worker's node id.
    pub worker: String,
    /// The worker's compressed node key (hex).
    pub worker_key: String,
    /// OOF hash (hex).
    pub oof_hash: String,
    /// CV log-loss × 10^6.
    pub cv_loss_micro: u64,
    /// Its `TrialClaim` signature (hex).
    pub signature: String,
}

/// The loss a claim carries: CV log-loss × 10^6, rounded (saturating; NaN → `u64::MAX`).
pub fn loss_micro(cv_loss: f64) -> u64 {
    if cv_loss.is_nan() {
        return u64::MAX;
    }
    (cv_loss * 1e6).round().clamp(0.0, u64::MAX as f64) as u64
}

fn hash32(h: &str) -> Result<[u8; 32], String> {
    hex::decode(h)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("`{h}` is not a 32-byte hex hash"))
}

/// The chain claim of a result.
pub fn trial_claim(
    to: &ClaimFor,
    unit_hash: &str,
    oof_hash: &str,
    cv_loss_micro: u64,
) -> Result<magnet_rounds::TrialClaim, String> {
    Ok(magnet_rounds::TrialClaim {
        chain_id: to.chain_id.clone(),
        job: to.job,
        unit_hash: hash32(unit_hash)?,
        oof_hash: hash32(oof_hash)?,
        cv_loss_micro,
    })
}

/// A worker's research service: answers work units over p2p.
pub struct TrialServer {
    backend: Arc<dyn ShardBackend>,
    cache_dir: PathBuf,
    threads: usize,
    fault: TrialFault,
    claim_key: Option<magnet_p2p::NodeKey>,
    prepared: Mutex<BTreeMap<String, Arc<Prepared>>>,
}

fn error_answer(why: impl std::fmt::Display) -> ResearchMessage {
    ResearchMessage {
        kind: "error".into(),
        json: why.to_string().into_bytes(),
        blob: Vec::new(),
    }
}

fn parse_address(a: &str) -> Result<[u8; 32], String> {
    let b = hex::decode(a).map_err(|_| format!("data address `{a}` is not hex"))?;
    b.try_into()
        .map_err(|_| format!("data address `{a}` is not 32 bytes"))
}

impl TrialServer {
    /// A server reading job data from `backend` (cached as files under `cache_dir`), running at
    /// most `threads` units at once.
    pub fn new(
        backend: Arc<dyn ShardBackend>,
        cache_dir: PathBuf,
        threads: usize,
        fault: TrialFault,
    ) -> Self {
        TrialServer {
            backend,
            cache_dir,
            threads: threads.max(1),
            fault,
            claim_key: None,
            prepared: Mutex::new(BTreeMap::new()),
        }
    }

    /// Signs chain trial claims with `key` (the node key) when a request asks for them.
    pub fn with_claim_key(mut self, key: magnet_p2p::NodeKey) -> Self {
        self.claim_key = Some(key);
        self
    }

    /// Registers on `node` and serves units until the node stops.
    pub fn spawn(self, node: &NodeHandle) -> tokio::task::JoinHandle<()> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(256);
        node.set_research_inbox(tx);
        let me = Arc::new(self);
        let slots = Arc::new(tokio::sync::Semaphore::new(me.threads));
        tokio::spawn(async move {
            while let Some((peer, msg, reply)) = rx.recv().await {
                let me = me.clone();
                let slots = slots.clone();
                tokio::spawn(async move {
                    let Ok(_permit) = slots.acquire_owned().await else {
                        return;
                    };
                    let answer = tokio::task::spawn_blocking(move || me.answer(&peer, &msg))
                        .await
                        .unwrap_or_else(|e| error_answer(format!("unit panicked: {e}")));
                    let _ = reply.send(answer);
                });
            }
        })
    }

    /// Answers one research message (blocking: runs the unit).
    pub fn answer(&self, peer: &NodeId, msg: &ResearchMessage) -> ResearchMessage {
        match self.run_unit(msg) {
            Ok((summary, blob)) => {
                tracing::debug!(%peer, unit = %summary.summary.unit_hash, ms = summary.summary.wall_ms, "research unit done");
                ResearchMessage {
                    kind: "result".into(),
                    json: serde_json::to_vec(&summary).unwrap_or_default(),
                    blob,
                }
            }
            Err(e) => {
                tracing::info!(%peer, error = %e, "research unit refused");
                error_answer(e)
            }
        }
    }

    fn run_unit(&self, msg: &ResearchMessage) -> Result<(TrialAnswer, Vec<u8>), String> {
        if msg.kind != "unit" {
            return Err(format!("unknown research message kind `{}`", msg.kind));
        }
        if msg.json.len() > MAX_UNIT_JSON {
            return Err(format!("unit of {} bytes is too large", msg.json.len()));
        }
        let UnitRequest { unit, claim } =
            serde_json::from_slice(&msg.json).map_err(|e| format!("unit does not parse: {e}"))?;
        let claim_key = match (&claim, &self.claim_key) {
            (Some(_), None) => return Err("this worker signs no chain trial claims".into()),
            (_, k) => k,
        };
        let prep = self.prepared(&unit.context)?;
        let t0 = Instant::now();
        let mut oof = prep.run(&unit.pipeline).map_err(|e| e.to_string())?;
        if self.fault == TrialFault::Fabricate {
            fabricate(&mut oof, &prep.train.y);
        }
        let blob = oof_bytes(&oof);
        let summary = UnitSummary {
            unit_hash: unit.hash(),
            oof_hash: oof_hash(&blob),
            cv_loss: oof_cv_loss(&oof, &prep.train.y),
            wall_ms: t0.elapsed().as_millis() as u64,
        };
        let claim = match (claim, claim_key) {
            (Some(to), Some(key)) => {
                let micro = loss_micro(summary.cv_loss);
                let c = trial_claim(&to, &summary.unit_hash, &summary.oof_hash, micro)?;
                Some(ClaimSig {
                    cv_loss_micro: micro,
                    signature: hex::encode(key.sign_message(&c.digest())),
                })
            }
            _ => None,
        };
        Ok((TrialAnswer { summary, claim }, blob))
    }

    fn prepared(&self, ctx: &UnitContext) -> Result<Arc<Prepared>, String> {
        let key = serde_json::to_string(ctx).unwrap_or_default();
        if let Some(p) = self.prepared.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(p);
        }
        let path = self.data_file(&ctx.data_address)?;
        let p = Arc::new(Prepared::load(&path, ctx).map_err(|e| e.to_string())?);
        if let Ok(mut m) = self.prepared.lock() {
            // A handful of jobs at a time; drop the oldest-keyed beyond that.
            while m.len() >= 8 {
                let Some(k) = m.keys().next().cloned() else {
                    break;
                };
                m.remove(&k);
            }
            m.insert(key, p.clone());
        }
        Ok(p)
    }

    /// The job's data file: from the cache, else from the shard store (index-0 shard of the
    /// data's content address), checked against the address before it is written.
    fn data_file(&self, address: &str) -> Result<PathBuf, String> {
        let id = parse_address(address)?;
        let path = self.cache_dir.join(format!("{address}.data"));
        if path.exists() {
            return Ok(path);
        }
        let bytes = self
            .backend
            .get_shard(&ShardKey {
                object_id: id,
                index: 0,
            })
            .map_err(|e| format!("reading data {address}: {e}"))?
            .ok_or_else(|| {
                format!("data {address} is not held here: the coordinator uploads it first")
            })?;
        if content_address(&bytes) != address {
            return Err(format!("the stored data does not hash to {address}"));
        }
        std::fs::create_dir_all(&self.cache_dir).map_err(|e| e.to_string())?;
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, &bytes).map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &path).map_err(|e| e.to_string())?;
        Ok(path)
    }
}

/// The `fabricate` fault: predictions pulled halfway towards the labels.
fn fabricate(oof: &mut Oof, y: &[usize]) {
    for (i, row) in oof.probs.iter_mut().enumerate() {
        if let (Some(p), Some(&c)) = (row.as_mut(), y.get(i)) {
            for (j, v) in p.iter_mut().enumerate() {
                *v = 0.5 * *v + if j == c { 0.5 } else { 0.0 };
            }
        }
    }
}

/// A trial worker the coordinator dials: `nodeId@host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerAddr {
    /// Its node id (the TLS handshake and every answer must prove it).
    pub node_id: NodeId,
    /// Where it listens.
    pub addr: String,
}

impl std::str::FromStr for WorkerAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (id, addr) = s
            .split_once('@')
            .ok_or_else(|| format!("`{s}` is not nodeId@host:port"))?;
        let node_id = NodeId::parse(id).map_err(|e| format!("`{id}`: {e}"))?;
        if !addr.contains(':') {
            return Err(format!("`{addr}` is not host:port"));
        }
        Ok(WorkerAddr {
            node_id,
            addr: addr.to_string(),
        })
    }
}

/// What the coordinator needs to dial workers.
#[derive(Clone)]
pub struct Dialer {
    /// This node's key-bound TLS.
    pub tls: NodeTls,
    /// Request signer (the node key).
    pub signer: Signer,
    /// Verifier of the workers' answers.
    pub verifier: Arc<Verifier>,
}

/// One worker's record in a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WorkerStats {
    /// Node id.
    pub node_id: String,
    /// Units it answered that the run accepted (and did not void).
    pub units: u64,
    /// Re-checks of other workers' units it ran.
    pub checks: u64,
    /// Its results voided when it was caught.
    pub voided: u64,
    /// Milliseconds it reported for the units it answered (unverified).
    pub wall_ms: u64,
    /// Transport failures.
    pub failures: u64,
    /// Why it was banned (`None`: never caught).
    pub caught: Option<String>,
}

/// The network side of a research run (written as `network.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetworkStats {
    /// Share of answers re-checked by another worker (ppm).
    pub recheck_ppm: u32,
    /// Units answered by workers (first answers, re-dispatches included).
    pub units_dispatched: u64,
    /// Re-checks sent to a second worker.
    pub rechecks: u64,
    /// Disagreements between a worker and its re-checker.
    pub mismatches: u64,
    /// Units the coordinator ran itself (tie-breaks, and units no worker could take).
    pub local_units: u64,
    /// Worker-reported milliseconds of first answers and of re-checks.
    pub unit_ms: u64,
    /// … of which re-checks.
    pub recheck_ms: u64,
    /// Searches restarted because results the loop had used were voided.
    pub restarts: u64,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Evidence files written.
    pub evidence: Vec<String>,
    /// Accepted units' signed chain trial claims (when the run is a chain research job):
    /// the entries of `MsgRecordResearchVersion`.
    pub claims: Vec<ClaimRecord>,
    /// Signed chain trial claims of caught workers whose predictions re-running contradicted:
    /// what the coordinator brings to the chain with `MsgDisputeTrial` (ADR 0115).
    pub disputes: Vec<ClaimRecord>,
}

/// An answer waiting for its re-check: (unit, worker, summary, OOF bytes, signed answer).
type PendingCheck = (
    usize,
    usize,
    UnitSummary,
    Vec<u8>,
    Vec<u8>,
    Option<ClaimRecord>,
);

struct Delivered {
    bytes: Vec<u8>,
    worker: usize,
    /// Handed to the loop already (voiding it forces a restart).
    used: bool,
}

struct State {
    stats: NetworkStats,
    banned: BTreeSet<usize>,
    down: BTreeSet<usize>,
    delivered: BTreeMap<String, Delivered>,
    /// Units that failed on a worker (model error): the loop runs them itself.
    failed: BTreeSet<String>,
    /// Re-check credit in ppm of an answer (see [`Coordinator::pick_checks`]).
    check_credit: u64,
    /// Every unit handed out, by hash (served to the chain's re-checkers).
    units: BTreeMap<String, WorkUnit>,
}

enum Answer {
    Result {
        summary: UnitSummary,
        claim: Option<ClaimSig>,
        /// The worker's compressed node key (hex), from its signed envelope.
        key: String,
        blob: Vec<u8>,
        signed: Vec<u8>,
    },
    Refused(String),
    Down(String),
}

/// The coordinator's side: the loop's [`OofSource`] over remote trial workers.
pub struct Coordinator {
    rt: tokio::runtime::Handle,
    ctx: UnitContext,
    local: Arc<Prepared>,
    workers: Vec<WorkerAddr>,
    clients: Vec<Arc<tokio::sync::Mutex<Option<PeerClient>>>>,
    dialer: Dialer,
    recheck_ppm: u32,
    secret: [u8; 32],
    timeout: Duration,
    evidence_dir: Option<PathBuf>,
    claim_for: Option<ClaimFor>,
    state: Mutex<State>,
}

impl Coordinator {
    /// A coordinator for the job `ctx` (whose data is at `data`, already uploaded to the
    /// workers), dialling `workers`, re-checking `recheck_ppm` of the answers.
    pub fn new(
        rt: tokio::runtime::Handle,
        ctx: UnitContext,
        data: &Path,
        workers: Vec<WorkerAddr>,
        dialer: Dialer,
        recheck_ppm: u32,
        evidence_dir: Option<PathBuf>,
    ) -> Result<Self, String> {
        let local = Arc::new(Prepared::load(data, &ctx).map_err(|e| e.to_string())?);
        let secret: [u8; 32] = rand::random();
        let stats = NetworkStats {
            recheck_ppm: recheck_ppm.min(1_000_000),
            workers: workers
                .iter()
                .map(|w| WorkerStats {
                    node_id: w.node_id.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        Ok(Coordinator {
            rt,
            ctx,
            local,
            clients: workers
                .iter()
                .map(|_| Arc::new(tokio::sync::Mutex::new(None)))
                .collect(),
            workers,
            dialer,
            recheck_ppm: recheck_ppm.min(1_000_000),
            secret,
            timeout: Duration::from_secs(600),
            evidence_dir,
            claim_for: None,
            state: Mutex::new(State {
                stats,
                banned: BTreeSet::new(),
                down: BTreeSet::new(),
                delivered: BTreeMap::new(),
                failed: BTreeSet::new(),
                check_credit: 0,
                units: BTreeMap::new(),
            }),
        })
    }

    /// Asks every worker for a signed chain trial claim for research job `to` (ADR 0111) and
    /// refuses answers without a valid one; accepted claims are in [`NetworkStats::claims`].
    pub fn with_claims(mut self, to: ClaimFor) -> Self {
        self.claim_for = Some(to);
        self
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>, SourceError> {
        self.state
            .lock()
            .map_err(|_| SourceError::Failed("state lock poisoned".into()))
    }

    /// The run's network record so far.
    pub fn stats(&self) -> NetworkStats {
        self.state
            .lock()
            .map(|s| s.stats.clone())
            .unwrap_or_default()
    }

    /// Every unit this run handed out (the loop's units), by hash.
    pub fn units(&self) -> BTreeMap<String, WorkUnit> {
        self.state
            .lock()
            .map(|s| s.units.clone())
            .unwrap_or_default()
    }

    /// Uploads the job's data to every worker (index-0 shard of its content address).
    pub fn upload_data(&self, bytes: &[u8]) -> Result<(), String> {
        let id = parse_address(&self.ctx.data_address)?;
        if content_address(bytes) != self.ctx.data_address {
            return Err("the data bytes do not hash to the job's address".into());
        }
        let key = ShardKey {
            object_id: id,
            index: 0,
        };
        self.rt.block_on(async {
            for i in 0..self.workers.len() {
                let client = self.client(i).await?;
                let mut g = client.lock().await;
                let c = g.as_mut().ok_or("no client")?;
                c.put_shard(&key, bytes)
                    .await
                    .map_err(|e| format!("uploading the data to {}: {e}", self.workers[i].addr))?;
            }
            Ok(())
        })
    }

    async fn client(
        &self,
        i: usize,
    ) -> Result<Arc<tokio::sync::Mutex<Option<PeerClient>>>, String> {
        let slot = self.clients[i].clone();
        let mut g = slot.lock().await;
        if g.is_none() {
            let w = &self.workers[i];
            let c = PeerClient::connect(
                &w.addr,
                Expect::NodeId(w.node_id.clone()),
                &self.dialer.tls,
                self.dialer.signer.clone(),
                self.dialer.verifier.clone(),
            )
            .await
            .map_err(|e| format!("dialling {}: {e}", w.addr))?;
            *g = Some(c);
        }
        drop(g);
        Ok(slot)
    }

    async fn ask(&self, i: usize, unit_json: &[u8]) -> Answer {
        let slot = match self.client(i).await {
            Ok(s) => s,
            Err(e) => return Answer::Down(e),
        };
        let mut g = slot.lock().await;
        let Some(c) = g.as_mut() else {
            return Answer::Down("no client".into());
        };
        let msg = ResearchMessage {
            kind: "unit".into(),
            json: unit_json.to_vec(),
            blob: Vec::new(),
        };
        match c.research(msg, self.timeout).await {
            Ok((a, signed)) if a.kind == "result" => {
                // The client checked the envelope against the dialled worker: its key is the
                // one a chain claim must verify under.
                let key = magnet_p2p::auth::verify_evidence(
                    signed.auth.as_ref(),
                    magnet_p2p::service::methods::RESEARCH_REPLY,
                    &signed.body,
                )
                .map(|(_, pk)| hex::encode(pk.to_bytes()))
                .unwrap_or_default();
                let (summary, claim) = match serde_json::from_slice::<TrialAnswer>(&a.json) {
                    Ok(t) => (t.summary, t.claim),
                    Err(e) => (
                        UnitSummary {
                            unit_hash: format!("unparsable summary: {e}"),
                            oof_hash: String::new(),
                            cv_loss: f64::NAN,
                            wall_ms: 0,
                        },
                        None,
                    ),
                };
                Answer::Result {
                    summary,
                    claim,
                    key,
                    blob: a.blob,
                    signed: signed.encode_to_vec(),
                }
            }
            Ok((a, _)) => Answer::Refused(String::from_utf8_lossy(&a.json).into_owned()),
            Err(e) => {
                *g = None;
                Answer::Down(e.to_string())
            }
        }
    }

    /// The secret order in which a batch's answers are picked for re-checks: a worker cannot
    /// tell which of its answers will be re-run.
    fn draw_key(&self, unit_hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"MAGNET/research/recheck/v1");
        h.update(self.secret);
        h.update(unit_hash.as_bytes());
        h.finalize().into()
    }

    /// Splits a batch's well-formed answers into those re-checked and those accepted as they
    /// are. The count is exact over the run, not per-unit luck: `recheck_ppm` of every answer
    /// accrues as credit and each whole unit of credit re-checks one answer, the first ones in
    /// the secret order ([`Self::draw_key`]).
    fn pick_checks(
        &self,
        st: &mut State,
        fresh: Vec<PendingCheck>,
    ) -> (Vec<PendingCheck>, Vec<PendingCheck>) {
        st.check_credit += u64::from(self.recheck_ppm) * fresh.len() as u64;
        let k = ((st.check_credit / 1_000_000) as usize).min(fresh.len());
        st.check_credit -= k as u64 * 1_000_000;
        let mut keyed: Vec<([u8; 32], PendingCheck)> = fresh
            .into_iter()
            .map(|c| (self.draw_key(&c.2.unit_hash), c))
            .collect();
        keyed.sort_by_key(|a| a.0);
        let mut checks = Vec::with_capacity(k);
        let mut rest = Vec::new();
        for (i, (_, c)) in keyed.into_iter().enumerate() {
            if i < k {
                checks.push(c);
            } else {
                rest.push(c);
            }
        }
        (checks, rest)
    }

    /// Checks an answer's form: the unit it names, the hash of its bytes, its shape.
    fn well_formed(
        &self,
        unit_hash: &str,
        summary: &UnitSummary,
        blob: &[u8],
        claim: Option<&ClaimSig>,
        key: &str,
        worker: usize,
    ) -> Result<Option<ClaimRecord>, String> {
        if summary.unit_hash != unit_hash {
            return Err(format!(
                "answer names unit {}, not {unit_hash}",
                summary.unit_hash
            ));
        }
        if oof_hash(blob) != summary.oof_hash {
            return Err("the predictions do not hash to the signed oof_hash".into());
        }
        let t = &self.local.train;
        let oof = oof_from_bytes(blob, t.len(), t.n_classes(), self.local.folds.len())
            .map_err(|e| e.to_string())?;
        let Some(to) = &self.claim_for else {
            return Ok(None);
        };
        // The chain claim: the loss the predictions give, signed by the worker's node key.
        let c = claim.ok_or("the answer carries no chain trial claim")?;
        let micro = loss_micro(oof_cv_loss(&oof, &t.y));
        if c.cv_loss_micro != micro {
            return Err(format!(
                "the claim says loss {} µnats, the predictions give {micro}",
                c.cv_loss_micro
            ));
        }
        let tc = trial_claim(to, unit_hash, &summary.oof_hash, micro)?;
        let sig = hex::decode(&c.signature).map_err(|_| "claim signature is not hex")?;
        let pk = hex::decode(key).map_err(|_| "no worker key")?;
        tc.verify(&pk, &sig)
            .map_err(|e| format!("the trial claim does not verify: {e}"))?;
        Ok(Some(ClaimRecord {
            unit_hash: unit_hash.to_string(),
            worker: self.workers[worker].node_id.to_string(),
            worker_key: key.to_string(),
            oof_hash: summary.oof_hash.clone(),
            cv_loss_micro: micro,
            signature: c.signature.clone(),
        }))
    }

    fn live(&self, st: &State) -> Vec<usize> {
        (0..self.workers.len())
            .filter(|i| !st.banned.contains(i) && !st.down.contains(i))
            .collect()
    }

    /// Runs `units` (indices into `jobs`) on the live workers from a shared queue; returns
    /// each unit's answers as (unit, worker, answer). A unit whose worker went down goes back
    /// on the queue; units left when every worker is down are returned unanswered.
    async fn run_queue(
        &self,
        jobs: &[(String, Vec<u8>)],
        todo: Vec<(usize, Option<usize>)>,
    ) -> (Vec<(usize, usize, Answer)>, Vec<usize>) {
        let live = {
            let st = match self.state.lock() {
                Ok(s) => s,
                Err(_) => return (Vec::new(), todo.into_iter().map(|t| t.0).collect()),
            };
            self.live(&st)
        };
        let queue = Arc::new(tokio::sync::Mutex::new(
            todo.into_iter().collect::<VecDeque<_>>(),
        ));
        let results = Arc::new(tokio::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for &w in &live {
            let queue = queue.clone();
            let results = results.clone();
            tasks.push(async move {
                loop {
                    // Take the first unit this worker may run (not its own re-check).
                    let next = {
                        let mut q = queue.lock().await;
                        let pos = q.iter().position(|(_, not)| *not != Some(w));
                        pos.and_then(|p| q.remove(p))
                    };
                    let Some((u, not)) = next else { break };
                    let a = self.ask(w, &jobs[u].1).await;
                    if let Answer::Down(why) = &a {
                        tracing::warn!(worker = %self.workers[w].node_id, %why, "trial worker down");
                        if let Ok(mut st) = self.state.lock() {
                            st.down.insert(w);
                            if let Some(s) = st.stats.workers.get_mut(w) {
                                s.failures += 1;
                            }
                        }
                        queue.lock().await.push_front((u, not));
                        break;
                    }
                    results.lock().await.push((u, w, a));
                }
            });
        }
        join_borrowed(tasks).await;
        let left: Vec<usize> = queue.lock().await.iter().map(|(u, _)| *u).collect();
        let res = std::mem::take(&mut *results.lock().await);
        (res, left)
    }

    #[allow(clippy::too_many_arguments)]
    fn write_evidence(
        &self,
        st: &mut State,
        worker: usize,
        unit: &WorkUnit,
        claimed: &str,
        correct: &str,
        signed: &[u8],
        why: &str,
    ) {
        let Some(dir) = &self.evidence_dir else {
            return;
        };
        #[derive(Serialize)]
        struct Evidence<'a> {
            worker: String,
            why: &'a str,
            unit_hash: String,
            unit: &'a WorkUnit,
            claimed_oof_hash: &'a str,
            recomputed_oof_hash: &'a str,
            /// The worker's answer: a prost-encoded `magnet.p2p.v1.Signed`, hex.
            signed_answer: String,
        }
        let e = Evidence {
            worker: self.workers[worker].node_id.to_string(),
            why,
            unit_hash: unit.hash(),
            unit,
            claimed_oof_hash: claimed,
            recomputed_oof_hash: correct,
            signed_answer: hex::encode(signed),
        };
        let _ = std::fs::create_dir_all(dir);
        let name = format!(
            "{}-{}.json",
            self.workers[worker].node_id,
            &unit.hash()[..16]
        );
        let path = dir.join(&name);
        if std::fs::write(&path, serde_json::to_vec_pretty(&e).unwrap_or_default()).is_ok() {
            st.stats.evidence.push(path.display().to_string());
        }
    }

    /// Bans `worker` and voids everything it delivered; true if the loop had used any of it.
    fn catch(&self, st: &mut State, worker: usize, why: &str) -> bool {
        tracing::warn!(worker = %self.workers[worker].node_id, %why, "trial worker caught: banned, its results voided");
        st.banned.insert(worker);
        let mine: Vec<String> = st
            .delivered
            .iter()
            .filter(|(_, d)| d.worker == worker)
            .map(|(k, _)| k.clone())
            .collect();
        let mut used = false;
        for k in &mine {
            if let Some(d) = st.delivered.remove(k) {
                used |= d.used;
            }
        }
        let id = self.workers[worker].node_id.to_string();
        st.stats.claims.retain(|c| c.worker != id);
        if let Some(s) = st.stats.workers.get_mut(worker) {
            s.caught = Some(why.to_string());
            s.voided += mine.len() as u64;
            s.units = s.units.saturating_sub(mine.len() as u64);
        }
        used
    }

    fn local_run(&self, unit: &WorkUnit) -> Result<Vec<u8>, String> {
        let o = self.local.run(&unit.pipeline).map_err(|e| e.to_string())?;
        Ok(oof_bytes(&o))
    }
}

/// Takes a worker's answer as the unit's result.
fn accept(
    st: &mut State,
    unit_hash: &str,
    worker: usize,
    wall_ms: u64,
    bytes: Vec<u8>,
    claim: Option<ClaimRecord>,
) {
    if let Some(s) = st.stats.workers.get_mut(worker) {
        s.units += 1;
        s.wall_ms += wall_ms;
    }
    if let Some(c) = claim {
        st.stats.claims.retain(|x| x.unit_hash != c.unit_hash);
        st.stats.claims.push(c);
    }
    st.delivered.insert(
        unit_hash.to_string(),
        Delivered {
            bytes,
            worker,
            used: false,
        },
    );
}

/// Runs `tasks` to completion concurrently on the current task. They borrow the coordinator,
/// so they cannot be spawned (`'static`), and the workspace has no `futures` dependency.
async fn join_borrowed<F: std::future::Future<Output = ()>>(tasks: Vec<F>) {
    let mut set: Vec<std::pin::Pin<Box<F>>> = tasks.into_iter().map(Box::pin).collect();
    std::future::poll_fn(move |cx| {
        set.retain_mut(|f| f.as_mut().poll(cx).is_pending());
        if set.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

impl OofSource for Coordinator {
    fn fetch(&self, pipelines: &[PipelineConfig]) -> Result<Vec<Option<Oof>>, SourceError> {
        let units: Vec<WorkUnit> = pipelines
            .iter()
            .map(|p| WorkUnit {
                context: self.ctx.clone(),
                pipeline: p.clone(),
            })
            .collect();
        let jobs: Vec<(String, Vec<u8>)> = units
            .iter()
            .map(|u| {
                let req = UnitRequest {
                    unit: u.clone(),
                    claim: self.claim_for.clone(),
                };
                (u.hash(), serde_json::to_vec(&req).unwrap_or_default())
            })
            .collect();
        {
            let mut st = self.lock()?;
            for (u, (h, _)) in units.iter().zip(&jobs) {
                st.units.insert(h.clone(), u.clone());
            }
        }
        let mut voided_used = false;
        // Until every unit is delivered, failed, or run here.
        for _round in 0..=self.workers.len() + 1 {
            let todo: Vec<(usize, Option<usize>)> = {
                let st = self.lock()?;
                (0..jobs.len())
                    .filter(|&u| {
                        !st.delivered.contains_key(&jobs[u].0) && !st.failed.contains(&jobs[u].0)
                    })
                    .map(|u| (u, None))
                    .collect()
            };
            if todo.is_empty() {
                break;
            }
            let (answers, left) = self.rt.block_on(self.run_queue(&jobs, todo));
            // Units no worker could take: run here.
            for u in left {
                let bytes = self
                    .local_run(&units[u])
                    .map_err(|e| SourceError::Failed(format!("local unit: {e}")))?;
                let mut st = self.lock()?;
                st.stats.local_units += 1;
                st.delivered.insert(
                    jobs[u].0.clone(),
                    Delivered {
                        bytes,
                        worker: usize::MAX,
                        used: false,
                    },
                );
            }
            // First answers: form, then the re-check draw.
            let mut fresh: Vec<PendingCheck> = Vec::new();
            let checks: Vec<PendingCheck>;
            {
                let mut st = self.lock()?;
                for (u, w, a) in answers {
                    st.stats.units_dispatched += 1;
                    match a {
                        Answer::Result {
                            summary,
                            claim,
                            key,
                            blob,
                            signed,
                        } => {
                            if st.banned.contains(&w) {
                                continue;
                            }
                            st.stats.unit_ms += summary.wall_ms;
                            let record = match self.well_formed(
                                &jobs[u].0,
                                &summary,
                                &blob,
                                claim.as_ref(),
                                &key,
                                w,
                            ) {
                                Ok(r) => r,
                                Err(why) => {
                                    let why = format!("malformed answer: {why}");
                                    let correct =
                                        oof_hash(&self.local_run(&units[u]).unwrap_or_default());
                                    self.write_evidence(
                                        &mut st,
                                        w,
                                        &units[u],
                                        &summary.oof_hash,
                                        &correct,
                                        &signed,
                                        &why,
                                    );
                                    voided_used |= self.catch(&mut st, w, &why);
                                    continue;
                                }
                            };
                            fresh.push((u, w, summary, blob, signed, record));
                        }
                        Answer::Refused(why) => {
                            tracing::info!(worker = %self.workers[w].node_id, %why, "unit failed on the worker; the loop runs it itself");
                            st.failed.insert(jobs[u].0.clone());
                        }
                        Answer::Down(_) => {}
                    }
                }
                let (picked, rest) = self.pick_checks(&mut st, fresh);
                for (u, w, summary, blob, _, record) in rest {
                    // A worker caught later in this batch keeps none of it (re-dispatched).
                    if !st.banned.contains(&w) {
                        accept(&mut st, &jobs[u].0, w, summary.wall_ms, blob, record);
                    }
                }
                checks = picked;
            }
            // Re-checks on a different worker; a lone worker is re-checked here.
            if !checks.is_empty() {
                let todo: Vec<(usize, Option<usize>)> =
                    checks.iter().map(|(u, w, ..)| (*u, Some(*w))).collect();
                let (answers, _left) = self.rt.block_on(self.run_queue(&jobs, todo));
                let mut by_unit: BTreeMap<usize, (usize, Answer)> = BTreeMap::new();
                for (u, w, a) in answers {
                    by_unit.insert(u, (w, a));
                }
                let mut st = self.lock()?;
                for (u, w, summary, blob, signed, record) in checks {
                    if st.banned.contains(&w) {
                        continue;
                    }
                    st.stats.rechecks += 1;
                    let second = by_unit.remove(&u);
                    let (checker, second_hash, second_signed, second_record) = match &second {
                        Some((
                            c,
                            Answer::Result {
                                summary: s2,
                                claim: c2,
                                key: k2,
                                blob: b2,
                                signed: sg2,
                            },
                        )) if !st.banned.contains(c) => {
                            st.stats.recheck_ms += s2.wall_ms;
                            st.stats.unit_ms += s2.wall_ms;
                            match self.well_formed(&jobs[u].0, s2, b2, c2.as_ref(), k2, *c) {
                                Ok(r2) => (Some(*c), s2.oof_hash.clone(), sg2.clone(), r2),
                                Err(_) => (Some(*c), String::from("malformed"), sg2.clone(), None),
                            }
                        }
                        _ => {
                            // No second worker: the coordinator is the checker.
                            st.stats.local_units += 1;
                            let b = self.local_run(&units[u]).unwrap_or_default();
                            (None, oof_hash(&b), Vec::new(), None)
                        }
                    };
                    if second_hash == summary.oof_hash {
                        if let Some(s) = checker.and_then(|c| st.stats.workers.get_mut(c)) {
                            s.checks += 1;
                        }
                        accept(&mut st, &jobs[u].0, w, summary.wall_ms, blob, record);
                        continue;
                    }
                    st.stats.mismatches += 1;
                    // Disagreement: the coordinator runs it and catches whoever differs.
                    let truth = if checker.is_some() {
                        st.stats.local_units += 1;
                        match self.local_run(&units[u]) {
                            Ok(b) => oof_hash(&b),
                            Err(e) => return Err(SourceError::Failed(format!("tie-break: {e}"))),
                        }
                    } else {
                        second_hash.clone()
                    };
                    if summary.oof_hash != truth {
                        if let Some(r) = &record {
                            st.stats.disputes.push(r.clone());
                        }
                        let why = "fabricated predictions: re-running the unit gives another hash";
                        self.write_evidence(
                            &mut st,
                            w,
                            &units[u],
                            &summary.oof_hash,
                            &truth,
                            &signed,
                            why,
                        );
                        voided_used |= self.catch(&mut st, w, why);
                    } else {
                        accept(&mut st, &jobs[u].0, w, summary.wall_ms, blob, record);
                    }
                    if let Some(c) = checker {
                        if second_hash != truth {
                            if let Some(r) = &second_record {
                                st.stats.disputes.push(r.clone());
                            }
                            let why = "fabricated re-check: re-running the unit gives another hash";
                            self.write_evidence(
                                &mut st,
                                c,
                                &units[u],
                                &second_hash,
                                &truth,
                                &second_signed,
                                why,
                            );
                            voided_used |= self.catch(&mut st, c, why);
                        }
                    }
                }
            }
            if voided_used {
                break;
            }
        }
        let mut st = self.lock()?;
        if voided_used {
            st.stats.restarts += 1;
            // Everything delivered so far stays verified but must be handed out again.
            for d in st.delivered.values_mut() {
                d.used = false;
            }
            return Err(SourceError::Voided(
                "a worker was caught fabricating after the loop used its results".into(),
            ));
        }
        let t = &self.local.train;
        let (rows, classes, folds) = (t.len(), t.n_classes(), self.local.folds.len());
        let mut out = Vec::with_capacity(jobs.len());
        for (h, _) in &jobs {
            match st.delivered.get_mut(h) {
                Some(d) => {
                    d.used = true;
                    out.push(Some(
                        oof_from_bytes(&d.bytes, rows, classes, folds)
                            .map_err(|e| SourceError::Failed(e.to_string()))?,
                    ));
                }
                None => out.push(None),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator(recheck_ppm: u32, rt: &tokio::runtime::Runtime) -> Coordinator {
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tabular/penguins.csv");
        let ctx = UnitContext {
            data_address: content_address(&std::fs::read(&data).unwrap()),
            domain: "tabular".into(),
            target: Some("sex".into()),
            context: None,
            seed: 1,
            folds: 3,
            test_fraction: 0.2,
        };
        let key = magnet_p2p::NodeKey::generate();
        let dialer = Dialer {
            tls: NodeTls::key_bound(&key, Arc::new(magnet_p2p::PinStore::in_memory())).unwrap(),
            signer: Signer::Wallet(key),
            verifier: Arc::new(Verifier::new(magnet_p2p::VerifyMode::Wallet {
                registry: None,
            })),
        };
        Coordinator::new(
            rt.handle().clone(),
            ctx,
            &data,
            Vec::new(),
            dialer,
            recheck_ppm,
            None,
        )
        .unwrap()
    }

    fn answer(i: usize) -> PendingCheck {
        let summary = UnitSummary {
            unit_hash: format!("{i:064x}"),
            oof_hash: String::new(),
            cv_loss: 0.5,
            wall_ms: 1,
        };
        (i, 0, summary, Vec::new(), Vec::new(), None)
    }

    #[test]
    fn re_checks_are_an_exact_share_of_the_answers_over_a_run() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        for (ppm, batches, per_batch, want) in [
            (150_000u32, 100usize, 3usize, 45usize),
            (150_000, 7, 1, 1),
            (0, 50, 3, 0),
            (1_000_000, 10, 3, 30),
            (300_000, 10, 2, 6),
        ] {
            let c = coordinator(ppm, &rt);
            let mut st = c.state.lock().unwrap();
            let mut picked = 0;
            let mut n = 0;
            for _ in 0..batches {
                let fresh: Vec<PendingCheck> = (0..per_batch).map(|j| answer(n + j)).collect();
                n += per_batch;
                let (checks, rest) = c.pick_checks(&mut st, fresh);
                assert_eq!(checks.len() + rest.len(), per_batch);
                picked += checks.len();
            }
            assert_eq!(picked, want, "ppm {ppm}, {batches} batches of {per_batch}");
        }
    }

    #[test]
    fn worker_addresses_parse_or_say_what_is_wrong() {
        assert!("node-0123456789abcdef@127.0.0.1:7480"
            .parse::<WorkerAddr>()
            .is_ok());
        for bad in [
            "127.0.0.1:7480",
            "node-0123456789abcdef@",
            "node-0123456789abcdef@host",
            "node-XYZ@127.0.0.1:1",
            "",
        ] {
            assert!(bad.parse::<WorkerAddr>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn a_claim_loss_is_the_rounded_micro_nats_and_never_wraps() {
        assert_eq!(loss_micro(0.6931474), 693_147);
        assert_eq!(loss_micro(0.0), 0);
        assert_eq!(loss_micro(-1.0), 0);
        assert_eq!(loss_micro(f64::NAN), u64::MAX);
        assert_eq!(loss_micro(f64::INFINITY), u64::MAX);
    }
}
