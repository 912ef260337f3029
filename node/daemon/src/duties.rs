//! The epoch's on-chain duties, run on every tick from the chain's block time:
//!
//! * **heartbeat** every `heartbeat_interval_secs` (node key), on its own task
//!   ([`heartbeat_tick`]) so slow duties never cost liveness;
//! * **commit** this worker's work of the epoch in the last `commit_lead_secs` of the commit
//!   window: the lineage entries it claims — this node's accepted Δs in the job's lineage
//!   that no earlier commitment named (the chain derives the compute from them and refuses a
//!   reveal naming an entry twice) — with its latest local checkpoint, the inner steps ×
//!   parameters (informational) and its data shard's hash; the nonce and the entries are saved
//!   to disk *before* the commit is sent. With nothing to claim there is no commit;
//! * **reveal** it in the reveal window (unless the `no-reveal` fault is set);
//! * **evaluate** every contribution this worker is assigned to, by the *marginal* effect of
//!   the contributor's own accepted Δs (ADR 0090, [`crate::quality`]): once the reveal window
//!   has closed and the chain has fixed the epoch's evaluation seed, check this worker's corpus
//!   against the job's `eval_set_hash` (refusing to evaluate on a mismatch), draw the epoch's
//!   windows of the whole corpus from the seed, score a seeded sample of the contribution's
//!   lineage entries as `loss(base) − loss(base − Δ)` (a Δ nobody serves scores the worst
//!   value; a near-duplicate of another accepted Δ of its round scores 0), commit the mean,
//!   then reveal it. The revealed checkpoint is not scored. During the reveal window the
//!   accepted Δs of every round the revealed contributions name are fetched ahead and the
//!   near-duplicate rule is settled over them (it needs no seed), so the short
//!   evaluator-commit window only has to run the model;
//! * **read settlement** of finished epochs and count this operator's reward.
//!
//! Every step is idempotent against the saved state, so a restarted worker picks up where it
//! stopped (within the windows the chain still accepts).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use magnet_contrib::msgs as cm;
use magnet_contrib::state::Work;
use magnet_diloco::Digest;
use rand::RngCore;
use serde::Deserialize;

use crate::chain::Chain;
use crate::config::Fault;
use crate::quality::{round_duplicates, verdict, Verdict};
use crate::run::Shared;
use crate::state::{PendingEval, PendingWork, State};
use crate::{DaemonError, Result};

/// The contrib module's windows (seconds from the epoch's start).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    /// Commit window length.
    pub commit: u64,
    /// Reveal window length.
    pub reveal: u64,
    /// Evaluator commit window length.
    pub eval_commit: u64,
    /// Evaluator reveal window length.
    pub eval_reveal: u64,
    /// Challenge window length.
    pub challenge: u64,
}

impl Windows {
    /// Reads the windows from the chain's contrib params.
    pub async fn read(chain: &Chain) -> Result<Windows> {
        let p: serde_json::Value = chain.query("/magnet.contrib.v1/params", "").await?;
        let f = |k: &str| {
            p[k].as_u64()
                .ok_or_else(|| DaemonError::Chain(format!("contrib params lack {k}")))
        };
        Ok(Windows {
            commit: f("commit_window_secs")?,
            reveal: f("reveal_window_secs")?,
            eval_commit: f("eval_commit_window_secs")?,
            eval_reveal: f("eval_reveal_window_secs")?,
            challenge: f("challenge_window_secs")?,
        })
    }
}

/// Where in the epoch a block time falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Training; not yet time to commit.
    Training,
    /// The last `lead` seconds of the commit window.
    Commit,
    /// Reveal window.
    Reveal,
    /// Evaluator commit window.
    EvalCommit,
    /// Evaluator reveal window.
    EvalReveal,
    /// After the evaluator windows.
    After,
}

/// The stage at `offset` seconds into an epoch.
pub fn stage(w: &Windows, lead: u64, offset: u64) -> Stage {
    let c = w.commit;
    let r = c + w.reveal;
    let ec = r + w.eval_commit;
    let er = ec + w.eval_reveal;
    if offset < c.saturating_sub(lead) {
        Stage::Training
    } else if offset < c {
        Stage::Commit
    } else if offset < r {
        Stage::Reveal
    } else if offset < ec {
        Stage::EvalCommit
    } else if offset < er {
        Stage::EvalReveal
    } else {
        Stage::After
    }
}

/// One contribution as `/magnet.contrib.v1/epoch` lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct ContributionJson {
    /// Operator.
    pub operator: String,
    /// Job.
    pub job: u64,
    /// Status.
    pub status: String,
    /// Revealed work.
    pub work: Option<WorkJson>,
    /// Median score once scored.
    pub median: Option<i64>,
    /// Verified quality (a JSON number or decimal string).
    pub quality: serde_json::Value,
    /// Verified compute (a JSON number or decimal string).
    pub compute: serde_json::Value,
    /// Commitment (hex).
    #[serde(default)]
    pub commitment: String,
}

/// Revealed work.
#[derive(Clone, Debug, Deserialize)]
pub struct WorkJson {
    /// Checkpoint hash (hex; informational — the score does not read it).
    pub checkpoint_hash: String,
    /// Steps.
    pub steps: u64,
    /// Params.
    pub params: u64,
    /// The (round, Δ hash hex) lineage entries the result claims.
    #[serde(default)]
    pub entries: Vec<(u64, String)>,
}

/// `/magnet.contrib.v1/epoch` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct EpochJson {
    /// Contributions.
    pub contributions: Vec<ContributionJson>,
    /// The epoch's phase (absent before its first commitment).
    #[serde(default)]
    pub phase: Option<PhaseJson>,
}

/// An epoch's phase (the fields read here).
#[derive(Clone, Debug, Deserialize)]
pub struct PhaseJson {
    /// The evaluation seed (hex): the hash of the block that closed the reveal window.
    #[serde(default)]
    pub eval_seed: Option<String>,
}

impl EpochJson {
    /// The epoch's evaluation seed, once the chain has fixed it.
    pub fn eval_seed(&self) -> Option<[u8; 32]> {
        let s = self.phase.as_ref()?.eval_seed.as_deref()?;
        hex32(s).ok()
    }
}

fn nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

fn hex32(s: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DaemonError::State(format!("{s:?} is not a 32-byte hex hash")))
}

fn work_of(p: &PendingWork) -> Result<Work> {
    Ok(Work {
        checkpoint_hash: hex32(&p.checkpoint_hash)?,
        steps: p.steps,
        params: p.params,
        data_hash: hex32(&p.data_hash)?,
        kind: "training".into(),
        entries: p
            .entries
            .iter()
            .map(|(r, d)| Ok((*r, hex32(d)?)))
            .collect::<Result<Vec<_>>>()?,
    })
}

/// `/magnet.jobs.v1/lineage` (the fields read here).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LineageJson {
    /// Recorded rounds, in order.
    #[serde(default)]
    pub rounds: Vec<LineageRoundJson>,
}

/// One recorded round.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct LineageRoundJson {
    /// Round.
    pub round: u64,
    /// The leader's operator.
    #[serde(default)]
    pub leader: String,
    /// Accepted Δs.
    #[serde(default)]
    pub accepted: Vec<LineageAcceptedJson>,
}

/// One accepted Δ of a recorded round.
#[derive(Clone, Debug, Deserialize)]
pub struct LineageAcceptedJson {
    /// Producer's node account.
    pub node: String,
    /// Producer's operator.
    pub operator: String,
    /// Δ hash (hex).
    pub delta_hash: String,
    /// The base the Δ was trained from (hex; the claim's, which a stale Δ does not share with
    /// its round).
    #[serde(default)]
    pub base_hash: String,
}

/// This node's accepted Δs in `lineage` (node account `node`, operator `operator`) that
/// `taken` does not rule out, in lineage order, at most [`cm::MAX_ENTRIES`].
pub fn claimable_entries(
    lineage: &LineageJson,
    node: &str,
    operator: &str,
    taken: impl Fn(u64, &str) -> bool,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for r in &lineage.rounds {
        for a in &r.accepted {
            if a.node == node && a.operator == operator && !taken(r.round, &a.delta_hash) {
                let pair = (r.round, a.delta_hash.clone());
                if !out.contains(&pair) && out.len() < cm::MAX_ENTRIES {
                    out.push(pair);
                }
            }
        }
    }
    out
}

/// Accepted Δs of nodes other than `node` (what the copycat adversary claims), at most 4.
fn others_entries(lineage: &LineageJson, node: &str) -> Vec<(u64, String)> {
    lineage
        .rounds
        .iter()
        .flat_map(|r| {
            r.accepted
                .iter()
                .filter(|a| a.node != node)
                .map(|a| (r.round, a.delta_hash.clone()))
        })
        .take(4)
        .collect()
}

/// Runs whatever the current block time calls for.
pub async fn run_duties(sh: &Arc<Shared>) -> Result<()> {
    let head = sh.chain.head().await?;
    let (epoch, offset) = sh.epoch_at(head.time);
    let now = stage(&sh.windows, sh.cfg.job.commit_lead_secs, offset);
    if now != Stage::EvalCommit {
        sh.evaluating.store(false, Ordering::Relaxed);
    }
    match now {
        Stage::Training | Stage::After => {}
        Stage::Commit => commit(sh, epoch).await?,
        Stage::Reveal => {
            reveal(sh, epoch).await?;
            pre_evaluate(sh, epoch).await?;
        }
        Stage::EvalCommit => {
            // Training waits until every assigned score is committed (ADR 0098); an error
            // leaves the flag up until the window ends.
            sh.evaluating.store(true, Ordering::Relaxed);
            let done = eval_commit(sh, epoch).await?;
            sh.evaluating.store(!done, Ordering::Relaxed);
        }
        Stage::EvalReveal => eval_reveal(sh, epoch).await?,
    }
    settlements(sh, epoch).await
}

/// Sends a heartbeat when one is due. Runs on its own task: a slow evaluation or fetch in the
/// window duties must never cost the node its liveness.
pub async fn heartbeat_tick(sh: &Arc<Shared>) -> Result<()> {
    let head = sh.chain.head().await?;
    heartbeat(sh, head.time).await
}

async fn heartbeat(sh: &Arc<Shared>, now: u64) -> Result<()> {
    let last = sh.state.lock().await.last_heartbeat;
    if now < last + sh.heartbeat_interval_secs {
        return Ok(());
    }
    let node = sh.keys.node.address();
    sh.chain
        .send(
            &sh.keys.node,
            "MsgHeartbeat",
            vec![magnet_registry::msgs::heartbeat(&node)],
        )
        .await?;
    sh.state.lock().await.last_heartbeat = now;
    sh.save_state().await;
    Ok(())
}

async fn commit(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let job = sh.cfg.job.id;
    let known = sh.state.lock().await.work.get(&epoch).cloned();
    let pending = match known {
        Some(w) if w.committed => return Ok(()),
        // Entries already chosen (and saved) for this epoch: commit exactly those.
        Some(w) => w,
        None => {
            let lineage: LineageJson = sh
                .chain
                .query("/magnet.jobs.v1/lineage", &job.to_string())
                .await?;
            let (node, operator) = (
                sh.keys.node.address().to_string(),
                sh.keys.operator.address().to_string(),
            );
            let mut st = sh.state.lock().await;
            let entries = if sh.cfg.dev.fault == Fault::Copycat {
                // The copycat adversary names another node's accepted Δs as its own; the chain
                // must refuse the reveal (and then slash the unrevealed commitment).
                others_entries(&lineage, &node)
            } else {
                claimable_entries(&lineage, &node, &operator, |r, d| {
                    st.entry_taken(&State::entry_key(job, r, d), epoch)
                })
            };
            let Some(ckpt) = st.local_checkpoint.clone() else {
                return Ok(());
            };
            if entries.is_empty() {
                if sh
                    .nothing_to_claim
                    .swap(epoch + 1, std::sync::atomic::Ordering::Relaxed)
                    != epoch + 1
                {
                    tracing::info!(
                        epoch,
                        job,
                        "no commit: none of this node's accepted Δs is left to claim"
                    );
                }
                return Ok(());
            }
            let steps = st.steps_by_epoch.get(&epoch).copied().unwrap_or(0);
            // Never wait for the engine (busy training) while holding the state lock.
            let (params, data_hash) = (sh.params, hex::encode(sh.data_hash));
            let p = PendingWork {
                checkpoint_hash: ckpt,
                steps,
                params,
                data_hash,
                nonce: hex::encode(nonce()),
                committed: false,
                revealed: false,
                entries,
            };
            for (r, d) in &p.entries {
                st.claimed.insert(State::entry_key(job, *r, d), epoch);
            }
            st.work.insert(epoch, p.clone());
            st.save(&sh.home)?;
            p
        }
    };
    let w = work_of(&pending)?;
    let h = work_hash(sh, epoch, &pending)?;
    let node = sh.keys.node.address();
    // A commit whose inclusion timed out may still have landed: the chain's record is the
    // truth (sending it again would be refused as a duplicate, and the work never revealed).
    if work_committed_on_chain(sh, epoch, &h).await? {
        tracing::info!(epoch, "work commitment found on chain");
        return mark(sh, |st| {
            if let Some(p) = st.work.get_mut(&epoch) {
                p.committed = true;
            }
        })
        .await;
    }
    sh.chain
        .send(
            &sh.keys.node,
            "MsgCommit",
            vec![cm::commit(&node, epoch, sh.cfg.job.id, h)],
        )
        .await?;
    if sh.cfg.dev.fault == Fault::LostAck {
        return lose_ack(sh, Stage::Commit).await;
    }
    tracing::info!(
        epoch,
        entries = w.entries.len(),
        steps = w.steps,
        "work committed"
    );
    mark(sh, |st| {
        if let Some(p) = st.work.get_mut(&epoch) {
            p.committed = true;
        }
    })
    .await
}

/// [`Fault::LostAck`]: after the work commitment was sent (and landed), wait out the window
/// as a client whose inclusion wait outlasted it would, then fail without marking it
/// committed. (Scores do the same without blocking the others: `eval_commit`.)
async fn lose_ack(sh: &Shared, window: Stage) -> Result<()> {
    loop {
        let head = sh.chain.head().await?;
        let (_, offset) = sh.epoch_at(head.time);
        if stage(&sh.windows, sh.cfg.job.commit_lead_secs, offset) != window {
            return Err(DaemonError::Chain(format!(
                "fault lost-ack: the {window:?} commitment's inclusion was never confirmed"
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// This node's work commitment for `epoch` over `p`.
fn work_hash(sh: &Shared, epoch: u64, p: &PendingWork) -> Result<[u8; 32]> {
    let w = work_of(p)?;
    let n = hex::decode(&p.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
    Ok(cm::work_commitment(
        &sh.genesis.chain_id,
        epoch,
        sh.cfg.job.id,
        &sh.keys.operator.address(),
        &w,
        &n,
    ))
}

/// Whether the chain holds this node's work commitment `h` for `epoch` — the truth about a
/// commit whose inclusion timed out on our side.
async fn work_committed_on_chain(sh: &Shared, epoch: u64, h: &[u8; 32]) -> Result<bool> {
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    Ok(ep
        .contributions
        .iter()
        .any(|c| c.job == sh.cfg.job.id && c.operator == me && c.commitment == hex::encode(h)))
}

async fn mark(sh: &Arc<Shared>, f: impl FnOnce(&mut State)) -> Result<()> {
    let mut st = sh.state.lock().await;
    f(&mut st);
    st.save(&sh.home)
}

async fn reveal(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    if sh.cfg.dev.fault == Fault::NoReveal {
        return Ok(());
    }
    let Some(p) = sh.state.lock().await.work.get(&epoch).cloned() else {
        return Ok(());
    };
    if p.revealed {
        return Ok(());
    }
    // Not marked committed: the send may have timed out in the last seconds of the commit
    // window and landed anyway. A commitment on chain that is never revealed is slashed
    // (`no_reveal`), so the chain's record decides, not our bookkeeping.
    if !p.committed {
        if !work_committed_on_chain(sh, epoch, &work_hash(sh, epoch, &p)?).await? {
            return Ok(());
        }
        tracing::info!(
            epoch,
            "work commitment found on chain after its send timed out"
        );
        // Committed: its entries stay claimed by this epoch (`State::entry_taken`), so the
        // next epoch never names them again.
        mark(sh, |st| {
            if let Some(p) = st.work.get_mut(&epoch) {
                p.committed = true;
            }
        })
        .await?;
    }
    let w = work_of(&p)?;
    let n = hex::decode(&p.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
    let node = sh.keys.node.address();
    sh.chain
        .send(
            &sh.keys.node,
            "MsgReveal",
            vec![cm::reveal(&node, epoch, sh.cfg.job.id, &w, &n)],
        )
        .await?;
    tracing::info!(epoch, "work revealed");
    mark(sh, |st| {
        if let Some(p) = st.work.get_mut(&epoch) {
            p.revealed = true;
        }
    })
    .await
}

/// Works ahead during the reveal window: for every round that a revealed contribution of this
/// job names, fetches the round's accepted Δs and settles the near-duplicate rule over them
/// ([`round_duplicates`]), so the short evaluator-commit window only has to run the model.
/// Nothing here depends on the evaluation seed, which does not exist yet.
async fn pre_evaluate(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    let job = sh.cfg.job.id;
    let mut rounds: std::collections::BTreeSet<u64> = Default::default();
    for c in ep
        .contributions
        .iter()
        .filter(|c| c.job == job && c.operator != me)
    {
        if let Some(w) = &c.work {
            rounds.extend(w.entries.iter().map(|(r, _)| *r));
        }
    }
    let settled = sh
        .round_dups
        .lock()
        .map(|m| rounds.iter().all(|r| m.contains_key(r)))
        .unwrap_or(false);
    if settled {
        return Ok(());
    }
    let lineage: LineageJson = sh
        .chain
        .query("/magnet.jobs.v1/lineage", &job.to_string())
        .await?;
    let reveal_ends = sh.windows.commit + sh.windows.reveal;
    for r in lineage.rounds.iter().filter(|r| rounds.contains(&r.round)) {
        // Prefetching is a head start, never a reason to miss the evaluator-commit window:
        // stop at the reveal deadline (the scoring fetches what is still missing).
        let (e, offset) = sh.epoch_at(sh.chain.head().await?.time);
        if e != epoch || offset >= reveal_ends {
            tracing::debug!(
                epoch,
                round = r.round,
                "evaluation prefetch stopped at the deadline"
            );
            break;
        }
        round_dups(sh, r).await?;
    }
    tracing::debug!(epoch, rounds = rounds.len(), "evaluation prefetch done");
    Ok(())
}

/// [`round_duplicates`] over the accepted Δs of `round` (aligned with `round.accepted`),
/// memoised once every Δ of the round could be fetched.
async fn round_dups(sh: &Arc<Shared>, round: &LineageRoundJson) -> Result<crate::quality::Twins> {
    if let Some(v) = sh
        .round_dups
        .lock()
        .ok()
        .and_then(|m| m.get(&round.round).cloned())
    {
        return Ok(v);
    }
    let mut deltas = Vec::with_capacity(round.accepted.len());
    for a in &round.accepted {
        match fetch_delta(sh, a).await {
            Ok(d) => deltas.push(Some(d)),
            Err(e) => {
                tracing::debug!(
                    round = round.round,
                    "near-duplicate check skips {}: {e}",
                    a.delta_hash
                );
                deltas.push(None);
            }
        }
    }
    let complete = deltas.iter().all(Option::is_some);
    let dups = tokio::task::spawn_blocking(move || {
        let views: Vec<Option<&[f32]>> = deltas.iter().map(|d| d.as_deref()).collect();
        round_duplicates(&views)
    })
    .await
    .map_err(|e| DaemonError::State(format!("near-duplicate task: {e}")))?;
    if complete {
        if let Ok(mut m) = sh.round_dups.lock() {
            m.insert(round.round, dups.clone());
        }
    }
    Ok(dups)
}

/// The decoded Δ of lineage entry `a`, from the local store or its producer (then any peer).
async fn fetch_delta(sh: &Arc<Shared>, a: &LineageAcceptedJson) -> Result<Vec<f32>> {
    let digest = Digest::from_hex(&a.delta_hash).map_err(|e| DaemonError::State(e.to_string()))?;
    let mut holders: Vec<String> = sh.node_of_operator(&a.operator).into_iter().collect();
    if let Ok(p) = sh.net.peers.read() {
        let more: Vec<String> = p
            .keys()
            .filter(|k| !holders.contains(k) && *k != sh.me.as_str())
            .cloned()
            .collect();
        holders.extend(more);
    }
    match sh.net.delta(&digest, &holders).await {
        Ok(d) => Ok(d),
        // No peer serves it: its stripe on the storage tier (ADR 0107).
        Err(e) => match sh.keeper.stripe_by_label(&digest.0).await {
            Ok(Some(s)) => {
                let b = sh.keeper.fetch_stripe(&s).await?;
                let c = magnet_diloco::compress::Compressed::from_bytes(&b)
                    .map_err(|e| DaemonError::Diloco(e.to_string()))?;
                let d = c.decode();
                if magnet_diloco::delta_hash(&d) != digest {
                    return Err(DaemonError::Diloco(format!(
                        "the stripe labelled {digest} decodes to another Δ"
                    )));
                }
                Ok(d)
            }
            _ => Err(e),
        },
    }
}

/// Loss of `params` on `windows` with the evaluation model (off the async runtime).
async fn eval_at(sh: &Arc<Shared>, params: Vec<f32>, windows: Arc<Vec<usize>>) -> Result<f64> {
    let sh2 = sh.clone();
    tokio::task::spawn_blocking(move || -> Result<f64> {
        sh2.evaluator
            .lock()
            .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))?
            .eval_at(&params, &windows)
    })
    .await
    .map_err(|e| DaemonError::State(format!("eval task: {e}")))?
}

/// Scores contribution `c` of `epoch` under evaluation seed `seed` (ADR 0090): the mean
/// marginal score of its lineage entries in the seeded rounds (ADR 0093) on the epoch's seeded
/// windows of the job's training tokens. Memoised per (epoch, contributor); the losses of each base per epoch.
/// An error (a base checkpoint this evaluator cannot get, a broken model) means "no score
/// from this evaluator", never a score the contributor did not earn.
async fn evaluate(
    sh: &Arc<Shared>,
    epoch: u64,
    seed: &[u8; 32],
    c: &ContributionJson,
    lineage: &LineageJson,
) -> Result<i64> {
    let memo = State::eval_key(epoch, &c.operator);
    if let Some(s) = sh.scores.lock().ok().and_then(|m| m.get(&memo).copied()) {
        return Ok(s);
    }
    let job = sh.cfg.job.id;
    let Some(w) = &c.work else {
        return Ok(crate::quality::WORST);
    };
    let entries: Vec<(u64, [u8; 32])> = w
        .entries
        .iter()
        .filter_map(|(r, d)| hex32(d).ok().map(|d| (*r, d)))
        .collect();
    let sample =
        crate::quality::sample_entries(seed, epoch, job, &entries, crate::quality::EVAL_ENTRIES);
    let windows = {
        let ev = sh
            .evaluator
            .lock()
            .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))?;
        Arc::new(crate::quality::eval_windows(
            seed,
            epoch,
            job,
            ev.corpus_len(),
            ev.seq_len(),
            sh.cfg.job.eval_windows,
        ))
    };
    let started = std::time::Instant::now();
    let mut scores = Vec::with_capacity(sample.len());
    for (r, d) in &sample {
        let dh = hex::encode(d);
        let round = lineage.rounds.iter().find(|x| x.round == *r);
        let entry = round.and_then(|x| x.accepted.iter().find(|a| a.delta_hash == dh));
        let (Some(round), Some(entry)) = (round, entry) else {
            // The chain checked the entries at reveal; a lineage without them is a stale read.
            return Err(DaemonError::Chain(format!(
                "round {r} Δ {dh} is not in the lineage this evaluator read"
            )));
        };
        let delta = match fetch_delta(sh, entry).await {
            Ok(d) => Some(d),
            Err(e) => {
                tracing::warn!(epoch, contributor = %c.operator, round = r, "Δ {dh} unavailable: {e}");
                None
            }
        };
        let twin = if delta.is_some() {
            let idx = round.accepted.iter().position(|a| a.delta_hash == dh);
            let dups = round_dups(sh, round).await?;
            idx.and_then(|i| dups.get(i).copied().flatten())
        } else {
            None
        };
        let v = verdict(delta.as_deref(), sh.params as usize, twin);
        if let Verdict::NearDuplicate { twin, cosine_ppm } = v {
            tracing::info!(epoch, contributor = %c.operator, round = r, cosine_ppm,
                twin = round.accepted.get(twin).map(|a| a.operator.as_str()).unwrap_or(""),
                "near-duplicate Δ scores 0");
        }
        if let Some(fixed) = v.fixed_score() {
            scores.push(fixed);
            continue;
        }
        let Some(delta) = delta else { continue };
        let base_hash =
            Digest::from_hex(&entry.base_hash).map_err(|e| DaemonError::State(e.to_string()))?;
        let base = sh.checkpoint(&base_hash, r.checked_sub(1)).await?;
        let bkey = format!("{epoch}/{}", entry.base_hash);
        let base_loss = match sh
            .base_losses
            .lock()
            .ok()
            .and_then(|m| m.get(&bkey).copied())
        {
            Some(l) => l,
            None => {
                let l = eval_at(sh, base.params.clone(), windows.clone()).await?;
                if let Ok(mut m) = sh.base_losses.lock() {
                    m.insert(bkey, l);
                }
                l
            }
        };
        let Some(applied) = crate::engine::apply_delta(&base.params, &delta) else {
            scores.push(crate::quality::WORST);
            continue;
        };
        let loss = eval_at(sh, applied, windows.clone()).await?;
        let m = crate::quality::marginal(base_loss, loss);
        tracing::debug!(epoch, contributor = %c.operator, round = r, base_loss, loss, marginal = m, "entry scored");
        scores.push(m);
    }
    let score = crate::quality::aggregate(&scores);
    tracing::info!(
        epoch,
        contributor = %c.operator,
        entries = entries.len(),
        scored = sample.len(),
        windows = windows.len(),
        score,
        ms = started.elapsed().as_millis() as u64,
        "marginal quality measured"
    );
    if let Ok(mut m) = sh.scores.lock() {
        m.insert(memo, score);
    }
    Ok(score)
}

/// The highest score an evaluator can commit (the fixed-point clamp of [`crate::engine::score`]).
pub const SCORE_MAX: i64 = 1_000_000_000;

/// The score this evaluator commits for `contributor`'s work: what it measured — or, for the
/// `collude` adversary, the highest score whenever the contributor is its partner.
pub fn committed_score(dev: &crate::config::DevSection, contributor: &str, measured: i64) -> i64 {
    if dev.fault == Fault::Collude && !dev.partner.is_empty() && dev.partner == contributor {
        SCORE_MAX
    } else {
        measured
    }
}

/// Refuses to evaluate unless this worker's corpus is the one the job names on chain.
async fn check_job_corpus(sh: &Arc<Shared>) -> Result<()> {
    let job: crate::run::JobJson = sh
        .chain
        .query("/magnet.jobs.v1/job", &sh.cfg.job.id.to_string())
        .await?;
    let local = sh
        .evaluator
        .lock()
        .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))?
        .corpus_hash();
    crate::quality::check_corpus(sh.cfg.job.id, &job.eval_set_hash, &local)
}

/// Scores and commits every contribution this node is assigned to evaluate in `epoch`;
/// returns whether all of them are committed (false while the seed is not fixed yet or one
/// could not be scored this time).
async fn eval_commit(sh: &Arc<Shared>, epoch: u64) -> Result<bool> {
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    let job = sh.cfg.job.id;
    // The windows do not exist before the chain fixes the seed (the first block after the
    // reveal deadline); until then there is nothing to score.
    let Some(seed) = ep.eval_seed() else {
        return Ok(false);
    };
    let mut done = true;
    let mut lineage: Option<LineageJson> = None;
    for c in ep
        .contributions
        .iter()
        .filter(|c| c.job == job && c.operator != me)
    {
        if c.work.is_none() {
            continue;
        }
        let key = State::eval_key(epoch, &c.operator);
        if sh
            .state
            .lock()
            .await
            .evals
            .get(&key)
            .is_some_and(|e| e.committed)
        {
            continue;
        }
        let assigned: Vec<(String, serde_json::Value)> = sh
            .chain
            .query(
                "/magnet.contrib.v1/assignments",
                &format!("{epoch}/{job}/{}", c.operator),
            )
            .await?;
        if !assigned.iter().any(|(ev, _)| *ev == me) {
            continue;
        }
        // Bound first: a guard in a `match` scrutinee would live through the arms, and the
        // arms lock the state again (a tokio Mutex is not reentrant).
        let known = sh.state.lock().await.evals.get(&key).cloned();
        if sh.cfg.dev.fault == Fault::LostAck && known.is_some() {
            // [`Fault::LostAck`]: sent, and never confirmed in this window.
            continue;
        }
        let pending = match known {
            Some(p) => p,
            None => {
                if lineage.is_none() {
                    check_job_corpus(sh).await?;
                    lineage = Some(
                        sh.chain
                            .query("/magnet.jobs.v1/lineage", &job.to_string())
                            .await?,
                    );
                }
                let Some(l) = lineage.as_ref() else {
                    done = false;
                    continue;
                };
                let score = match evaluate(sh, epoch, &seed, c, l).await {
                    Ok(s) => s,
                    // This evaluator cannot score it (e.g. a base checkpoint it cannot get):
                    // no commitment, and the next tick tries again.
                    Err(e) => {
                        tracing::warn!(epoch, contributor = %c.operator, "not evaluated: {e}");
                        done = false;
                        continue;
                    }
                };
                let score = committed_score(&sh.cfg.dev, &c.operator, score);
                let p = PendingEval {
                    score,
                    nonce: hex::encode(nonce()),
                    committed: false,
                    revealed: false,
                };
                mark(sh, |st| {
                    st.evals.insert(key.clone(), p.clone());
                })
                .await?;
                tracing::info!(epoch, contributor = %c.operator, score, "evaluated");
                p
            }
        };
        let contributor: magnet_core::Address = c
            .operator
            .parse()
            .map_err(|e| DaemonError::Chain(format!("contributor address: {e}")))?;
        let h = score_hash(sh, epoch, &contributor, &pending)?;
        // A score commit whose inclusion timed out may still have landed: if the chain holds
        // this very commitment, it is committed (a resend would be refused as a duplicate and
        // the score never revealed).
        if my_score_commitment(&assigned, &me).as_deref() == Some(&h[..]) {
            mark(sh, |st| {
                if let Some(e) = st.evals.get_mut(&key) {
                    e.committed = true;
                }
            })
            .await?;
            continue;
        }
        // Each score is committed as soon as it is measured: the window is short and an
        // evaluator drawn for many contributions must not lose them all to the last one.
        let msg = cm::eval_commit(&sh.keys.node.address(), epoch, job, &contributor, h);
        sh.chain
            .send(&sh.keys.node, "MsgEvalCommit", vec![msg])
            .await?;
        if sh.cfg.dev.fault == Fault::LostAck {
            // Still waiting on the inclusion, as far as this node knows, until the window
            // closes (the next ticks skip it, above); the other scores go on.
            continue;
        }
        mark(sh, |st| {
            if let Some(e) = st.evals.get_mut(&key) {
                e.committed = true;
            }
        })
        .await?;
    }
    Ok(done)
}

/// This evaluator's score commitment for `contributor`'s work of `epoch`.
fn score_hash(
    sh: &Shared,
    epoch: u64,
    contributor: &magnet_core::Address,
    p: &PendingEval,
) -> Result<[u8; 32]> {
    let n = hex::decode(&p.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
    Ok(cm::score_commitment(
        &sh.genesis.chain_id,
        epoch,
        sh.cfg.job.id,
        contributor,
        &sh.keys.operator.address(),
        p.score,
        &n,
    ))
}

/// The commitment the chain holds for evaluator `me` in an `assignments` answer, if any.
fn my_score_commitment(assigned: &[(String, serde_json::Value)], me: &str) -> Option<Vec<u8>> {
    assigned
        .iter()
        .find(|(ev, _)| ev == me)
        .and_then(|(_, a)| serde_json::from_value::<Vec<u8>>(a["commitment"].clone()).ok())
}

async fn eval_reveal(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let prefix = format!("{epoch}/");
    let todo: Vec<(String, PendingEval)> = sh
        .state
        .lock()
        .await
        .evals
        .iter()
        .filter(|(k, e)| k.starts_with(&prefix) && e.committed && !e.revealed)
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    // Scores not marked committed: a send that timed out late in the commit window may have
    // landed, and a commitment on chain that is never revealed is slashed (`no_reveal`). The
    // chain's record decides.
    let unsure: Vec<(String, PendingEval)> = sh
        .state
        .lock()
        .await
        .evals
        .iter()
        .filter(|(k, e)| k.starts_with(&prefix) && !e.committed && !e.revealed)
        .map(|(k, e)| (k.clone(), e.clone()))
        .collect();
    let me = sh.keys.operator.address().to_string();
    let mut todo = todo;
    for (k, e) in unsure {
        let contributor: magnet_core::Address = k[prefix.len()..]
            .parse()
            .map_err(|e| DaemonError::State(format!("eval key {k}: {e}")))?;
        let assigned: Vec<(String, serde_json::Value)> = sh
            .chain
            .query(
                "/magnet.contrib.v1/assignments",
                &format!("{epoch}/{}/{contributor}", sh.cfg.job.id),
            )
            .await?;
        let h = score_hash(sh, epoch, &contributor, &e)?;
        if my_score_commitment(&assigned, &me).as_deref() == Some(&h[..]) {
            tracing::info!(epoch, %contributor, "score commitment found on chain after its send timed out");
            mark(sh, |st| {
                if let Some(p) = st.evals.get_mut(&k) {
                    p.committed = true;
                }
            })
            .await?;
            todo.push((k, e));
        }
    }
    if todo.is_empty() {
        return Ok(());
    }
    let mut msgs = Vec::new();
    for (k, e) in &todo {
        let contributor: magnet_core::Address = k[prefix.len()..]
            .parse()
            .map_err(|e| DaemonError::State(format!("eval key {k}: {e}")))?;
        let n = hex::decode(&e.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
        msgs.push(cm::eval_reveal(
            &sh.keys.node.address(),
            epoch,
            sh.cfg.job.id,
            &contributor,
            e.score,
            &n,
        ));
    }
    sh.chain.send(&sh.keys.node, "MsgEvalReveal", msgs).await?;
    tracing::info!(epoch, n = todo.len(), "scores revealed");
    mark(sh, |st| {
        for (k, _) in &todo {
            if let Some(e) = st.evals.get_mut(k) {
                e.revealed = true;
            }
        }
    })
    .await
}

/// A settlement as `/magnet.rewards.v1/settlement` returns it (fields read here).
#[derive(Clone, Debug, Deserialize)]
pub struct SettlementJson {
    /// Epoch.
    pub epoch: u64,
    /// Pool.
    pub pool: String,
    /// Contributor payouts.
    pub contributors: Vec<PayoutJson>,
    /// Evaluator payouts.
    pub evaluators: Vec<PayoutJson>,
    /// Dust.
    pub dust: String,
}

/// One payout.
#[derive(Clone, Debug, Deserialize)]
pub struct PayoutJson {
    /// Operator.
    pub operator: String,
    /// Weight.
    pub weight: String,
    /// Amount.
    pub amount: String,
}

impl SettlementJson {
    /// What `operator` was paid in total.
    pub fn paid_to(&self, operator: &str) -> u128 {
        self.contributors
            .iter()
            .chain(&self.evaluators)
            .filter(|p| p.operator == operator)
            .filter_map(|p| p.amount.parse::<u128>().ok())
            .sum()
    }
}

async fn settlements(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let me = sh.keys.operator.address().to_string();
    for e in epoch.saturating_sub(3)..epoch {
        if sh.state.lock().await.settlements.contains_key(&e) {
            continue;
        }
        let s: Option<SettlementJson> = match sh
            .chain
            .query("/magnet.rewards.v1/settlement", &e.to_string())
            .await
        {
            Ok(s) => s,
            Err(_) => continue,
        };
        if let Some(s) = s {
            let paid = s.paid_to(&me);
            sh.metrics
                .rewards
                .inc_by(u64::try_from(paid).unwrap_or(u64::MAX));
            tracing::info!(epoch = e, reward_umag = %paid, "epoch settled");
            mark(sh, |st| {
                st.settlements.insert(e, paid.to_string());
            })
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_follow_the_windows_in_order() {
        let w = Windows {
            commit: 60,
            reveal: 10,
            eval_commit: 10,
            eval_reveal: 10,
            challenge: 10,
        };
        let at = |o| stage(&w, 8, o);
        assert_eq!(at(0), Stage::Training);
        assert_eq!(at(51), Stage::Training);
        assert_eq!(at(52), Stage::Commit);
        assert_eq!(at(59), Stage::Commit);
        assert_eq!(at(60), Stage::Reveal);
        assert_eq!(at(70), Stage::EvalCommit);
        assert_eq!(at(80), Stage::EvalReveal);
        assert_eq!(at(90), Stage::After);
        assert_eq!(
            stage(&w, 100, 0),
            Stage::Commit,
            "a lead longer than the window"
        );
    }

    #[test]
    fn only_this_nodes_untaken_accepted_deltas_are_claimed_once_each() {
        let l: LineageJson = serde_json::from_value(serde_json::json!({
            "rounds": [
                {"round": 0, "accepted": [
                    {"node": "n1", "operator": "o1", "delta_hash": "aa"},
                    {"node": "n2", "operator": "o2", "delta_hash": "bb"}]},
                {"round": 2, "accepted": [
                    {"node": "n1", "operator": "o1", "delta_hash": "cc"},
                    {"node": "n1", "operator": "o9", "delta_hash": "dd"}]},
                {"round": 3, "accepted": [
                    {"node": "n1", "operator": "o1", "delta_hash": "ee"}]},
            ],
            "shares": [],
        }))
        .unwrap();
        let got = claimable_entries(&l, "n1", "o1", |r, d| r == 3 && d == "ee");
        assert_eq!(got, vec![(0, "aa".to_string()), (2, "cc".to_string())]);
        assert!(claimable_entries(&l, "n3", "o3", |_, _| false).is_empty());
        let w = work_of(&PendingWork {
            checkpoint_hash: hex::encode([1u8; 32]),
            steps: 3,
            params: 4,
            data_hash: hex::encode([2u8; 32]),
            nonce: String::new(),
            committed: false,
            revealed: false,
            entries: vec![(2, hex::encode([5u8; 32]))],
        })
        .unwrap();
        assert_eq!(w.entries, vec![(2, [5u8; 32])]);
    }

    #[test]
    fn a_colluding_evaluator_scores_only_its_partner_at_the_top() {
        let mut dev = crate::config::DevSection::default();
        assert_eq!(committed_score(&dev, "magnet1partner", 1_234), 1_234);
        dev.partner = "magnet1partner".into();
        assert_eq!(
            committed_score(&dev, "magnet1partner", 1_234),
            1_234,
            "no fault, no collusion"
        );
        dev.fault = Fault::Collude;
        assert_eq!(committed_score(&dev, "magnet1partner", 1_234), SCORE_MAX);
        assert_eq!(committed_score(&dev, "magnet1other", 1_234), 1_234);
    }

    #[test]
    fn the_evaluation_seed_and_the_named_entries_are_read_from_the_epoch_query() {
        let seed = hex::encode([9u8; 32]);
        let ep: EpochJson = serde_json::from_value(serde_json::json!({
            "phase": {"phase": "Evaluating", "count": 1, "eval_seed": seed},
            "contributions": [{
                "operator": "o1", "job": 1, "status": "Revealed", "median": null,
                "quality": 0, "compute": "0", "commitment": "aa",
                "work": {"checkpoint_hash": "bb", "steps": 1, "params": 2,
                         "data_hash": "cc", "kind": "training",
                         "entries": [[3, "dd"], [5, "ee"]]},
            }],
        }))
        .unwrap();
        assert_eq!(ep.eval_seed(), Some([9u8; 32]));
        let w = ep.contributions[0].work.as_ref().unwrap();
        assert_eq!(
            w.entries,
            vec![(3, "dd".to_string()), (5, "ee".to_string())]
        );
        let open: EpochJson = serde_json::from_value(serde_json::json!({
            "phase": {"phase": "Open", "count": 1, "eval_seed": null},
            "contributions": [],
        }))
        .unwrap();
        assert_eq!(open.eval_seed(), None, "no seed while reveals are open");
        let none: EpochJson =
            serde_json::from_value(serde_json::json!({"phase": null, "contributions": []}))
                .unwrap();
        assert_eq!(none.eval_seed(), None);
    }

    #[test]
    fn a_settlement_sums_what_one_operator_was_paid() {
        let s: SettlementJson = serde_json::from_value(serde_json::json!({
            "epoch": 1, "pool": "100", "dust": "1",
            "contributors": [{"operator": "a", "weight": "1", "amount": "60"},
                             {"operator": "b", "weight": "1", "amount": "30"}],
            "evaluators": [{"operator": "a", "weight": "1", "amount": "9"}],
        }))
        .unwrap();
        assert_eq!(s.paid_to("a"), 69);
        assert_eq!(s.paid_to("c"), 0);
    }
}
