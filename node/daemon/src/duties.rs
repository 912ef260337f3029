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
//! * **evaluate** every contribution this worker is assigned to: fetch the revealed checkpoint
//!   from the contributor's node, check its hash, measure the validation-loss improvement over
//!   the job's base model on the job's evaluation split, commit the score, then reveal it;
//! * **read settlement** of finished epochs and count this operator's reward.
//!
//! Every step is idempotent against the saved state, so a restarted worker picks up where it
//! stopped (within the windows the chain still accepts).

use std::sync::Arc;

use magnet_contrib::msgs as cm;
use magnet_contrib::state::Work;
use magnet_diloco::Digest;
use rand::RngCore;
use serde::Deserialize;

use crate::chain::Chain;
use crate::config::Fault;
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
    /// Checkpoint hash (hex).
    pub checkpoint_hash: String,
    /// Steps.
    pub steps: u64,
    /// Params.
    pub params: u64,
}

/// `/magnet.contrib.v1/epoch` answer.
#[derive(Clone, Debug, Deserialize)]
pub struct EpochJson {
    /// Contributions.
    pub contributions: Vec<ContributionJson>,
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
#[derive(Clone, Debug, Deserialize)]
pub struct LineageRoundJson {
    /// Round.
    pub round: u64,
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
    match stage(&sh.windows, sh.cfg.job.commit_lead_secs, offset) {
        Stage::Training | Stage::After => {}
        Stage::Commit => commit(sh, epoch).await?,
        Stage::Reveal => {
            reveal(sh, epoch).await?;
            pre_evaluate(sh, epoch).await?;
        }
        Stage::EvalCommit => eval_commit(sh, epoch).await?,
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
    let n = hex::decode(&pending.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
    let h = cm::work_commitment(
        &sh.genesis.chain_id,
        epoch,
        sh.cfg.job.id,
        &sh.keys.operator.address(),
        &w,
        &n,
    );
    let node = sh.keys.node.address();
    // A commit whose inclusion timed out may still have landed: the chain's record is the
    // truth (sending it again would be refused as a duplicate, and the work never revealed).
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    if ep
        .contributions
        .iter()
        .any(|c| c.job == sh.cfg.job.id && c.operator == me && c.commitment == hex::encode(h))
    {
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
    if !p.committed || p.revealed {
        return Ok(());
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

/// Validation loss of the job's base model (computed once).
async fn base_loss(sh: &Arc<Shared>) -> Result<f64> {
    if let Some(l) = sh.base_loss.lock().ok().and_then(|g| *g) {
        return Ok(l);
    }
    let sh2 = sh.clone();
    let l = tokio::task::spawn_blocking(move || -> Result<f64> {
        sh2.evaluator
            .lock()
            .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))?
            .eval(&sh2.base_checkpoint.params)
    })
    .await
    .map_err(|e| DaemonError::State(format!("eval task: {e}")))??;
    if let Ok(mut g) = sh.base_loss.lock() {
        *g = Some(l);
    }
    Ok(l)
}

/// Scores every contribution already revealed this epoch (not ours) before the chain assigns
/// evaluators, so the short eval-commit window only has to send the commitments. Scores
/// depend on the checkpoint alone and are memoised by [`evaluate`].
async fn pre_evaluate(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    for c in ep
        .contributions
        .iter()
        .filter(|c| c.job == sh.cfg.job.id && c.operator != me)
    {
        if let Some(w) = &c.work {
            let holder = sh.node_of_operator(&c.operator);
            let score = evaluate(sh, &w.checkpoint_hash, holder).await?;
            tracing::debug!(epoch, contributor = %c.operator, score, "pre-evaluated");
        }
    }
    Ok(())
}

/// Scores the checkpoint `hash` held by `contributor_node` (memoised by hash; an unavailable
/// checkpoint is not memoised, so a later try can still fetch it).
async fn evaluate(sh: &Arc<Shared>, hash: &str, contributor_node: Option<String>) -> Result<i64> {
    if let Some(s) = sh.scores.lock().ok().and_then(|m| m.get(hash).copied()) {
        return Ok(s);
    }
    let digest = Digest::from_hex(hash).map_err(|e| DaemonError::State(e.to_string()))?;
    let mut holders: Vec<String> = contributor_node.into_iter().collect();
    if let Ok(p) = sh.net.peers.read() {
        let more: Vec<String> = p.keys().filter(|k| !holders.contains(k)).cloned().collect();
        holders.extend(more);
    }
    let base = base_loss(sh).await?;
    let loss = match sh.net.checkpoint(&digest, &holders).await {
        Ok((c, bytes)) => {
            sh.metrics.bytes_received.inc_by(bytes);
            let sh2 = sh.clone();
            tokio::task::spawn_blocking(move || -> Result<f64> {
                sh2.evaluator
                    .lock()
                    .map_err(|_| DaemonError::State("evaluator lock poisoned".into()))?
                    .eval(&c.params)
            })
            .await
            .map_err(|e| DaemonError::State(format!("eval task: {e}")))??
        }
        // A revealed checkpoint nobody serves is worth nothing.
        Err(e) => {
            tracing::warn!("checkpoint {hash} unavailable for evaluation: {e}");
            return Ok(crate::engine::score(base, f64::NAN));
        }
    };
    let score = crate::engine::score(base, loss);
    if let Ok(mut m) = sh.scores.lock() {
        m.insert(hash.to_string(), score);
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

async fn eval_commit(sh: &Arc<Shared>, epoch: u64) -> Result<()> {
    let ep: EpochJson = sh
        .chain
        .query("/magnet.contrib.v1/epoch", &epoch.to_string())
        .await?;
    let me = sh.keys.operator.address().to_string();
    let job = sh.cfg.job.id;
    let mut msgs = Vec::new();
    let mut keys = Vec::new();
    for c in ep
        .contributions
        .iter()
        .filter(|c| c.job == job && c.operator != me)
    {
        let Some(w) = &c.work else { continue };
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
        let pending = match known {
            Some(p) => p,
            None => {
                let holder = sh.node_of_operator(&c.operator);
                let measured = evaluate(sh, &w.checkpoint_hash, holder).await?;
                let score = committed_score(&sh.cfg.dev, &c.operator, measured);
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
        let n = hex::decode(&pending.nonce).map_err(|e| DaemonError::State(e.to_string()))?;
        let h = cm::score_commitment(
            &sh.genesis.chain_id,
            epoch,
            job,
            &contributor,
            &sh.keys.operator.address(),
            pending.score,
            &n,
        );
        // A score commit whose inclusion timed out may still have landed: if the chain holds
        // this very commitment, it is committed (a resend would be refused as a duplicate and
        // the score never revealed).
        let on_chain = assigned
            .iter()
            .find(|(ev, _)| *ev == me)
            .and_then(|(_, a)| serde_json::from_value::<Vec<u8>>(a["commitment"].clone()).ok());
        if on_chain.as_deref() == Some(&h[..]) {
            mark(sh, |st| {
                if let Some(e) = st.evals.get_mut(&key) {
                    e.committed = true;
                }
            })
            .await?;
            continue;
        }
        msgs.push(cm::eval_commit(
            &sh.keys.node.address(),
            epoch,
            job,
            &contributor,
            h,
        ));
        keys.push(key);
    }
    if msgs.is_empty() {
        return Ok(());
    }
    sh.chain.send(&sh.keys.node, "MsgEvalCommit", msgs).await?;
    mark(sh, |st| {
        for k in &keys {
            if let Some(e) = st.evals.get_mut(k) {
                e.committed = true;
            }
        }
    })
    .await
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
