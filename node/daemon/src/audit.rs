//! The merge-auditor duty (ADR 0089).
//!
//! The chain draws auditors for sampled rounds (`/magnet.jobs.v1/audits`). A node drawn for a
//! round of its job fetches the round's base checkpoint (from its store or any peer that
//! adopted it) and every accepted Δ by the content address the record carries (from its
//! producer, else the leader), and re-runs the merge with
//! [`magnet_diloco::merge::verify_accepted`] — the same outer step the leader ran, bit for bit.
//!
//! * The merge does not re-check (base, Δ hash, weights or merged hash differ) → the auditor
//!   files `MsgChallengeRound` with the evidence (the field that differed and the merged hash
//!   it recomputed) and its own sealed `fraud` verdict (`MsgAuditCommit`), in one transaction.
//! * A Δ or the base still cannot be fetched after [`UNAVAILABLE_TRIES`] tries and within
//!   [`UNAVAILABLE_MARGIN_BLOCKS`] of the deadline → the same, with field `unavailable`: a
//!   record whose inputs are gone for the window cannot be re-checked, which counts against the
//!   leader who recorded it.
//! * A round another node challenged → the auditor seals its own verdict from its own check
//!   within the commit period.
//! * Verdicts are sealed (ADR 0091): the verdict, the merged hash recomputed (the recorded one
//!   for `ok`) and a random nonce are saved in `state.json` *before* the commitment is sent,
//!   and revealed (`MsgAuditReveal`) once the reveal period opens; a restarted worker re-sends
//!   nothing it already has on chain and reveals exactly what it committed ([`next_step`]).
//!   An auditor that stays silent, or reveals against the majority, is slashed.
//!
//! The merge policy is the job's, from its training spec on chain (`merge_policy_for`), the
//! same one the leader merged with.
//!
//! Workers never delete Δs or checkpoints from their store, so everything a record names stays
//! retrievable for (at least) the challenge window: the producer holds its Δ, the leader keeps
//! every Δ it merged (pushed or pulled), and an auditor keeps what it fetched.

use std::sync::Arc;

use magnet_diloco::compress::Compressed;
use magnet_diloco::merge::{
    verify_accepted, AcceptedEntry, MergeOutput, MergePolicy, RoundRecord, VerifyError,
};
use magnet_diloco::{Checkpoint, Digest, NodeId};
use serde::Deserialize;

use crate::run::Shared;
use crate::{DaemonError, Result};

/// Fetch attempts (one per duty poll) before missing inputs may count as unavailable.
pub const UNAVAILABLE_TRIES: u32 = 3;
/// Missing inputs count as unavailable only within this many blocks of the deadline (the end
/// of the challenge window, or of the verdict period), so a slow peer or a loaded machine
/// never makes an honest round look fraudulent: the inputs must stay missing for the window.
pub const UNAVAILABLE_MARGIN_BLOCKS: u64 = 15;
/// The duty polls the chain's audits at most this often.
pub const POLL_MS: u64 = 2_000;

/// What an auditor's re-check of one round found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The record re-checks bit for bit.
    Ok,
    /// The record does not re-check.
    Fraud {
        /// Which part differed: `merged_hash`, `weights`, `base`, `delta_hash` or
        /// `unavailable` (the chain's challenge fields).
        field: &'static str,
        /// The merged hash recomputed (zeros when it could not be recomputed).
        recomputed: [u8; 32],
    },
    /// An input could not be fetched (yet).
    Unavailable(String),
    /// The check itself failed for a reason that is not the leader's (e.g. this node's merge
    /// policy is invalid): no verdict is given.
    Inconclusive(String),
}

impl Finding {
    /// True when the merge is fraudulent (or its inputs are gone).
    pub fn is_fraud(&self) -> bool {
        matches!(self, Finding::Fraud { .. })
    }
}

/// Re-checks a round from its base and accepted Δs (in the record's order) — the pure core of
/// the duty.
pub fn check(base: &Checkpoint, deltas: &[Vec<f32>], record: &RoundRecord) -> Finding {
    match verify_accepted(base, deltas, record) {
        Ok(_) => Finding::Ok,
        Err(VerifyError::BaseMismatch { .. }) => Finding::Fraud {
            field: "base",
            recomputed: [0; 32],
        },
        Err(VerifyError::MergedMismatch { recomputed, .. }) => Finding::Fraud {
            field: "merged_hash",
            recomputed: recomputed.0,
        },
        Err(VerifyError::RecordMismatch { field: "weights" }) => Finding::Fraud {
            field: "weights",
            recomputed: [0; 32],
        },
        Err(VerifyError::RecordMismatch { .. }) => Finding::Fraud {
            field: "delta_hash",
            recomputed: [0; 32],
        },
        Err(e @ VerifyError::Merge(_)) => Finding::Inconclusive(e.to_string()),
    }
}

/// The fraud adversary's edit: move the first merged parameter and re-hash, so the record
/// names a checkpoint that is not the merge of its Δs (the checkpoint served is the edited
/// one, so the lie is consistent for anyone who only downloads it).
pub fn perturb(out: &mut MergeOutput) {
    if let Some(p) = out.checkpoint.params.first_mut() {
        *p += 0.5;
    }
    out.step = None;
    out.record.merged_hash = out.checkpoint.hash();
}

/// `/magnet.jobs.v1/audits` (the fields read here).
#[derive(Clone, Debug, Deserialize)]
pub struct AuditJson {
    /// Round.
    pub round: u64,
    /// Drawn auditor node ids.
    pub auditors: Vec<String>,
    /// Last height a challenge may be filed.
    pub window_ends: u64,
    /// The challenge, once filed.
    pub challenge: Option<ChallengeJson>,
    /// `open`, `upheld`, `rejected`, `no_verdict`, `dropped`.
    pub outcome: String,
}

/// A challenge as the audits query shows it.
#[derive(Clone, Debug, Deserialize)]
pub struct ChallengeJson {
    /// Last height a sealed verdict may be committed.
    pub commits_until: u64,
    /// Last height a sealed verdict may be revealed.
    pub reveals_until: u64,
    /// Sealed verdicts so far.
    pub verdicts: Vec<VerdictJson>,
}

/// One sealed verdict.
#[derive(Clone, Debug, Deserialize)]
pub struct VerdictJson {
    /// Auditor node id.
    pub auditor: String,
    /// Commitment (hex).
    pub commitment: String,
    /// The revealed verdict, once revealed.
    pub fraud: Option<bool>,
}

/// What the auditor duty does next for one audit it was drawn for ([`next_step`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing (not drawn, closed, done, or waiting for the reveal period).
    Wait,
    /// Re-check the round (if not done yet) and, on fraud, challenge it with a sealed verdict;
    /// missing inputs may count as unavailable near `deadline`.
    CheckUnchallenged {
        /// End of the challenge window.
        deadline: u64,
    },
    /// Re-check the round (if not done yet) and commit the sealed verdict.
    Commit {
        /// End of the commit period.
        deadline: u64,
    },
    /// Reveal the saved verdict.
    Reveal,
    /// The chain holds a commitment this worker has no saved verdict for (its state was
    /// lost): nothing can open it.
    Lost,
}

/// The pure core of the duty's scheduling: what to do for audit `a` at `height`, given the
/// commitment of this worker's saved verdict (`saved`: (commitment hex, revealed)).
pub fn next_step(a: &AuditJson, me: &str, height: u64, saved: Option<(&str, bool)>) -> Step {
    if a.outcome != "open" || !a.auditors.iter().any(|x| x == me) {
        return Step::Wait;
    }
    let Some(c) = &a.challenge else {
        if height > a.window_ends {
            return Step::Wait;
        }
        return Step::CheckUnchallenged {
            deadline: a.window_ends,
        };
    };
    let mine = c.verdicts.iter().find(|v| v.auditor == me);
    match (mine, saved) {
        (None, _) if height > c.commits_until => Step::Wait,
        (None, _) => Step::Commit {
            deadline: c.commits_until,
        },
        (Some(v), _) if v.fraud.is_some() => Step::Wait,
        (Some(v), Some((h, false))) if v.commitment == h => {
            let all = c.verdicts.len() >= a.auditors.len();
            if height > c.reveals_until || (height <= c.commits_until && !all) {
                Step::Wait
            } else {
                Step::Reveal
            }
        }
        (Some(_), Some((_, true))) => Step::Wait,
        (Some(_), _) => Step::Lost,
    }
}

/// The commitment of a saved verdict by `auditor` (its node account) on round `round` of
/// `job` — the chain's [`magnet_jobs::msgs::verdict_commitment`].
pub fn sealed(
    chain_id: &str,
    job: u64,
    round: u64,
    auditor: &magnet_core::Address,
    v: &crate::state::PendingVerdict,
) -> Result<[u8; 32]> {
    let (recomputed, nonce) = opened(v)?;
    Ok(magnet_jobs::msgs::verdict_commitment(
        chain_id,
        job,
        round,
        auditor,
        v.fraud,
        &recomputed,
        &nonce,
    ))
}

fn opened(v: &crate::state::PendingVerdict) -> Result<([u8; 32], [u8; 32])> {
    let h = |s: &str| -> Result<[u8; 32]> {
        hex::decode(s)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| DaemonError::State(format!("saved verdict: {s:?} is not 32 bytes")))
    };
    Ok((h(&v.recomputed)?, h(&v.nonce)?))
}

fn verdict_key(job: u64, round: u64) -> String {
    format!("{job}/{round}")
}

/// A recorded round as `/magnet.jobs.v1/lineage` shows it (the fields an audit needs).
#[derive(Clone, Debug, Deserialize)]
pub struct RoundJson {
    /// Round.
    pub round: u64,
    /// Leader's node id.
    pub leader_node_id: String,
    /// Base (hex).
    pub base_hash: String,
    /// Merged (hex).
    pub merged_hash: String,
    /// Accepted Δs, sorted by producer node id.
    pub accepted: Vec<EntryJson>,
}

/// An accepted Δ of a recorded round.
#[derive(Clone, Debug, Deserialize)]
pub struct EntryJson {
    /// Producer's node account.
    pub node: String,
    /// Δ hash (hex).
    pub delta_hash: String,
    /// The Δ's own base (hex).
    pub base_hash: String,
    /// Staleness.
    pub staleness: u32,
    /// Signed steps.
    pub steps: u64,
    /// Signed tokens (the merge's data size).
    pub tokens: u64,
    /// Weight.
    pub weight_ppm: u32,
    /// Claim signature (hex).
    pub signature: String,
    /// p2p content address (hex; empty or zeros when the leader gave none).
    #[serde(default)]
    pub content_address: String,
}

#[derive(Debug, Deserialize)]
struct LineageJson {
    rounds: Vec<RoundJson>,
}

fn digest(s: &str) -> Result<Digest> {
    Digest::from_hex(s).map_err(|e| DaemonError::Chain(format!("{s:?}: {e}")))
}

/// The merge record of a recorded round, as the auditor rebuilds it from the chain: the
/// recorded inputs under this job's merge policy, no rejected entries (see
/// [`verify_accepted`]). `node_id` maps a node account to its node id.
pub fn record_of(
    job: u64,
    r: &RoundJson,
    policy: MergePolicy,
    node_id: impl Fn(&str) -> Option<String>,
) -> Result<RoundRecord> {
    let bad = |e: &dyn std::fmt::Display| DaemonError::Chain(e.to_string());
    let accepted = r
        .accepted
        .iter()
        .map(|e| {
            let id = node_id(&e.node).ok_or_else(|| {
                DaemonError::Chain(format!("{} is not a registered node", e.node))
            })?;
            Ok(AcceptedEntry {
                node: NodeId::new(id).map_err(|e| bad(&e))?,
                delta_hash: digest(&e.delta_hash)?,
                weight_ppm: e.weight_ppm,
                data_size: e.tokens,
                quality_bps: magnet_rounds::QUALITY_ONE_BPS,
                staleness: e.staleness,
                base_hash: digest(&e.base_hash)?,
                steps: e.steps,
                signature: e.signature.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RoundRecord {
        job_id: job,
        round: r.round,
        leader: NodeId::new(r.leader_node_id.clone()).map_err(|e| bad(&e))?,
        base_hash: digest(&r.base_hash)?,
        merged_hash: digest(&r.merged_hash)?,
        policy,
        accepted,
        rejected: Vec::new(),
    })
}

/// Fetches the inputs of round `r` and re-checks it.
async fn audit_round(sh: &Arc<Shared>, r: &RoundJson) -> Result<Finding> {
    sh.refresh_peers().await?;
    let node_id = |addr: &str| -> Option<String> {
        sh.net
            .peers
            .read()
            .ok()?
            .values()
            .find(|p| p.node == addr)
            .map(|p| p.node_id.clone())
    };
    let record = record_of(sh.cfg.job.id, r, sh.policy, node_id)?;
    let base = match sh
        .checkpoint(&record.base_hash, r.round.checked_sub(1))
        .await
    {
        Ok(b) => b,
        Err(e) => return Ok(Finding::Unavailable(format!("base checkpoint: {e}"))),
    };
    let mut deltas = Vec::with_capacity(r.accepted.len());
    for (e, a) in r.accepted.iter().zip(&record.accepted) {
        let Some(id) = hex::decode(&e.content_address)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .filter(|b| *b != [0u8; 32])
        else {
            return Ok(Finding::Unavailable(format!(
                "the record gives no content address for {}'s Δ",
                a.node
            )));
        };
        let key = magnet_p2p::ShardKey {
            object_id: id,
            index: 0,
        };
        let mut bytes = sh.net.get_local(&key)?;
        // Its producer, then the leader (who keeps every Δ it merged), then any other peer
        // (auditors keep what they fetched).
        let mut holders = vec![a.node.to_string(), r.leader_node_id.clone()];
        if let Ok(p) = sh.net.peers.read() {
            holders.extend(
                p.keys()
                    .filter(|k| !holders.contains(k))
                    .cloned()
                    .collect::<Vec<_>>(),
            );
        }
        for holder in &holders {
            if bytes.is_some() {
                break;
            }
            if holder == sh.me.as_str() {
                continue;
            }
            bytes = sh.net.fetch(holder, &key, Some(id)).await.ok();
            if let Some(b) = &bytes {
                sh.net.put_local(&key, b)?;
            }
        }
        let Some(b) = bytes else {
            return Ok(Finding::Unavailable(format!(
                "{}'s Δ {} from its producer or the leader",
                a.node,
                hex::encode(id)
            )));
        };
        match Compressed::from_bytes(&b) {
            Ok(c) => deltas.push(c.decode()),
            Err(_) => {
                return Ok(Finding::Fraud {
                    field: "delta_hash",
                    recomputed: [0; 32],
                })
            }
        }
    }
    let out = tokio::task::spawn_blocking(move || check(&base, &deltas, &record))
        .await
        .map_err(|e| DaemonError::State(format!("audit task: {e}")))?;
    Ok(out)
}

/// The verdict a finding gives, with the merged hash it names: `ok` names the recorded one,
/// `fraud` the recomputed one (zeros when it could not be recomputed). `None`: no verdict.
fn verdict_of(f: &Finding, recorded: &str) -> Option<(bool, String)> {
    match f {
        Finding::Ok => Some((false, recorded.to_string())),
        Finding::Fraud { recomputed, .. } => Some((true, hex::encode(recomputed))),
        Finding::Unavailable(_) | Finding::Inconclusive(_) => None,
    }
}

/// Re-checks round `round` once (cached), turning missing inputs into `unavailable` only after
/// [`UNAVAILABLE_TRIES`] and within [`UNAVAILABLE_MARGIN_BLOCKS`] of `deadline`. `None`: try
/// again later.
async fn finding(
    sh: &Arc<Shared>,
    r: &RoundJson,
    height: u64,
    deadline: u64,
) -> Result<Option<Finding>> {
    if let Some(f) = sh
        .audits_done
        .lock()
        .ok()
        .and_then(|d| d.get(&r.round).cloned())
    {
        return Ok(Some(f));
    }
    let f = match audit_round(sh, r).await? {
        Finding::Unavailable(why) => {
            let tries = {
                let mut t = sh
                    .audit_tries
                    .lock()
                    .map_err(|_| DaemonError::State("audit lock poisoned".into()))?;
                let n = t.entry(r.round).or_default();
                *n += 1;
                *n
            };
            tracing::warn!(round = r.round, tries, "audit input unavailable: {why}");
            let near_end = height.saturating_add(UNAVAILABLE_MARGIN_BLOCKS) >= deadline;
            if tries < UNAVAILABLE_TRIES || !near_end {
                return Ok(None);
            }
            Finding::Fraud {
                field: "unavailable",
                recomputed: [0; 32],
            }
        }
        f => f,
    };
    if let Ok(mut d) = sh.audits_done.lock() {
        d.insert(r.round, f.clone());
    }
    tracing::info!(round = r.round, ?f, "merge audited");
    sh.log_round(serde_json::json!({
        "kind": "audit", "round": r.round, "node": sh.me.as_str(),
        "fraud": f.is_fraud(), "finding": format!("{f:?}"),
    }));
    Ok(Some(f))
}

/// Saves a fresh sealed verdict for `key` (before anything is sent) and returns it; an already
/// saved one is returned as is, so a resend commits the very same commitment.
async fn save_verdict(
    sh: &Arc<Shared>,
    key: &str,
    fraud: bool,
    recomputed: String,
) -> Result<crate::state::PendingVerdict> {
    let mut st = sh.state.lock().await;
    if let Some(v) = st.audit_verdicts.get(key) {
        return Ok(v.clone());
    }
    let mut n = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut n);
    let v = crate::state::PendingVerdict {
        fraud,
        recomputed,
        nonce: hex::encode(n),
        committed: false,
        revealed: false,
    };
    st.audit_verdicts.insert(key.to_string(), v.clone());
    st.save(&sh.home)?;
    Ok(v)
}

async fn mark_verdict(
    sh: &Arc<Shared>,
    key: &str,
    f: impl FnOnce(&mut crate::state::PendingVerdict),
) -> Result<()> {
    let mut st = sh.state.lock().await;
    if let Some(v) = st.audit_verdicts.get_mut(key) {
        f(v);
    }
    st.save(&sh.home)
}

/// One auditor tick: for every open audit of this job this node was drawn for, re-check the
/// round once, challenge it with a sealed verdict, seal a verdict on another's challenge, or
/// reveal a sealed verdict, as [`next_step`] says.
pub async fn audit_tick(sh: &Arc<Shared>) -> Result<()> {
    use std::sync::atomic::Ordering;
    let now = crate::run::now_ms();
    if now.saturating_sub(sh.audit_polled_ms.load(Ordering::SeqCst)) < POLL_MS {
        return Ok(());
    }
    sh.audit_polled_ms.store(now, Ordering::SeqCst);
    let job = sh.cfg.job.id;
    let audits: Vec<AuditJson> = sh
        .chain
        .query("/magnet.jobs.v1/audits", &job.to_string())
        .await?;
    let mine: Vec<AuditJson> = audits
        .into_iter()
        .filter(|a| a.outcome == "open" && a.auditors.iter().any(|x| x == sh.me.as_str()))
        .collect();
    if mine.is_empty() {
        return Ok(());
    }
    let height = sh.chain.head().await?.height;
    let lineage: LineageJson = sh
        .chain
        .query("/magnet.jobs.v1/lineage", &job.to_string())
        .await?;
    let me = sh.keys.node.address();
    for a in mine {
        let key = verdict_key(job, a.round);
        let saved = sh.state.lock().await.audit_verdicts.get(&key).cloned();
        let seal = match &saved {
            Some(v) => Some(hex::encode(sealed(
                &sh.genesis.chain_id,
                job,
                a.round,
                &me,
                v,
            )?)),
            None => None,
        };
        let step = next_step(
            &a,
            sh.me.as_str(),
            height,
            seal.as_deref().zip(saved.as_ref().map(|v| v.revealed)),
        );
        let (what, msgs) = match step {
            Step::Wait => continue,
            Step::Lost => {
                tracing::warn!(
                    round = a.round,
                    "the chain holds a sealed verdict of this node that state.json does not: \
                     it cannot be revealed (no_reveal slash ahead)"
                );
                continue;
            }
            Step::Reveal => {
                let Some(v) = saved else { continue };
                let (recomputed, nonce) = opened(&v)?;
                (
                    "MsgAuditReveal",
                    vec![magnet_jobs::msgs::audit_reveal(
                        &me, job, a.round, v.fraud, recomputed, nonce,
                    )],
                )
            }
            Step::CheckUnchallenged { deadline } | Step::Commit { deadline } => {
                let challenged = a.challenge.is_some();
                let Some(r) = lineage.rounds.iter().find(|r| r.round == a.round) else {
                    continue; // rolled back meanwhile
                };
                let mut msgs = Vec::new();
                let v = if challenged {
                    match &saved {
                        // Saved but not on chain (a send that failed or timed out): resend it.
                        Some(v) => v.clone(),
                        None => {
                            let Some(f) = finding(sh, r, height, deadline).await? else {
                                continue;
                            };
                            let Some((fraud, recomputed)) = verdict_of(&f, &r.merged_hash) else {
                                continue;
                            };
                            save_verdict(sh, &key, fraud, recomputed).await?
                        }
                    }
                } else {
                    // An honest, unchallenged round has nothing to vote on; a fraud is
                    // challenged with this node's sealed verdict in the same transaction.
                    let Some(Finding::Fraud { field, recomputed }) =
                        finding(sh, r, height, deadline).await?
                    else {
                        continue;
                    };
                    let p: serde_json::Value = sh.chain.query("/magnet.jobs.v1/params", "").await?;
                    let bond: u128 = p["challenge_bond"]
                        .as_str()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(100_000);
                    msgs.push(magnet_jobs::msgs::challenge_round(
                        &me, job, a.round, bond, recomputed, field,
                    ));
                    save_verdict(sh, &key, true, hex::encode(recomputed)).await?
                };
                let commitment = sealed(&sh.genesis.chain_id, job, a.round, &me, &v)?;
                msgs.push(magnet_jobs::msgs::audit_commit(
                    &me, job, a.round, commitment,
                ));
                (
                    if challenged {
                        "MsgAuditCommit"
                    } else {
                        "MsgChallengeRound"
                    },
                    msgs,
                )
            }
        };
        match sh.chain.send(&sh.keys.node, what, msgs).await {
            Ok(h) => {
                tracing::info!(round = a.round, height = h, "{what} sent");
                let reveal = what == "MsgAuditReveal";
                mark_verdict(sh, &key, |v| {
                    if reveal {
                        v.revealed = true;
                    } else {
                        v.committed = true;
                    }
                })
                .await?;
            }
            Err(e) => {
                sh.metrics.chain_errors.inc();
                tracing::warn!(round = a.round, "{what}: {e}");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnet_diloco::merge::{merge, Contribution, MergeMeta};

    fn node(s: &str) -> NodeId {
        NodeId::new(s).unwrap()
    }

    /// A real base checkpoint, three real Δs and the honest merge of them.
    fn honest() -> (Checkpoint, Vec<Vec<f32>>, MergeOutput) {
        let n = 64;
        let base = Checkpoint {
            params: (0..n).map(|i| (i as f32 * 0.37).sin()).collect(),
            momentum: (0..n).map(|i| (i as f32 * 0.11).cos() * 0.01).collect(),
        };
        let contributions: Vec<Contribution> = ["node-a", "node-b", "node-c"]
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let d: Vec<f32> = (0..n)
                    .map(|i| ((i * (k + 2)) as f32 * 0.05).sin() * 0.01)
                    .collect();
                Contribution::new(node(id), d, 100 * (k as u64 + 1), 10_000)
            })
            .collect();
        let meta = MergeMeta {
            job_id: 1,
            round: 4,
            leader: node("node-a"),
        };
        let out = merge(&base, &contributions, &MergePolicy::default(), &meta).unwrap();
        let deltas = contributions.into_iter().map(|c| c.delta).collect();
        (base, deltas, out)
    }

    fn audit_json(challenge: Option<ChallengeJson>) -> AuditJson {
        AuditJson {
            round: 4,
            auditors: vec!["node-me".into(), "node-b".into()],
            window_ends: 100,
            challenge,
            outcome: "open".into(),
        }
    }

    fn ch(verdicts: Vec<VerdictJson>) -> Option<ChallengeJson> {
        Some(ChallengeJson {
            commits_until: 50,
            reveals_until: 70,
            verdicts,
        })
    }

    fn v(who: &str, c: &str, fraud: Option<bool>) -> VerdictJson {
        VerdictJson {
            auditor: who.into(),
            commitment: c.into(),
            fraud,
        }
    }

    /// The daemon seals exactly what the chain checks: the saved verdict's commitment is the
    /// chain's pinned vector (`magnet_jobs::msgs` tests pin the same bytes).
    #[test]
    fn a_saved_verdict_seals_to_the_chains_pinned_commitment() {
        let auditor = magnet_core::Address::from_slice(&[7u8; 20]).unwrap();
        let saved = crate::state::PendingVerdict {
            fraud: true,
            recomputed: hex::encode([0xAB; 32]),
            nonce: hex::encode([0x5A; 32]),
            committed: false,
            revealed: false,
        };
        assert_eq!(
            hex::encode(sealed("magnet-1", 3, 9, &auditor, &saved).unwrap()),
            "10412d71e16166e6148a1565c1142cbbe799f1089533d0f0ef5af4dd4fef12f3"
        );
        let bad = crate::state::PendingVerdict {
            nonce: "abcd".into(),
            ..saved
        };
        assert!(sealed("magnet-1", 3, 9, &auditor, &bad).is_err());
    }

    #[test]
    fn the_duty_checks_commits_then_reveals_only_when_the_reveal_period_is_open() {
        let me = "node-me";
        // Not challenged: re-check within the window, nothing after it.
        assert_eq!(
            next_step(&audit_json(None), me, 10, None),
            Step::CheckUnchallenged { deadline: 100 }
        );
        assert_eq!(next_step(&audit_json(None), me, 101, None), Step::Wait);
        // Not drawn, or closed: nothing.
        assert_eq!(next_step(&audit_json(None), "node-x", 10, None), Step::Wait);
        let mut closed = audit_json(ch(vec![]));
        closed.outcome = "upheld".into();
        assert_eq!(next_step(&closed, me, 10, None), Step::Wait);
        // Challenged, not yet committed: commit within the period (a saved verdict is resent).
        assert_eq!(
            next_step(&audit_json(ch(vec![])), me, 20, Some(("aa", false))),
            Step::Commit { deadline: 50 }
        );
        assert_eq!(next_step(&audit_json(ch(vec![])), me, 51, None), Step::Wait);
        // Committed: wait while the other auditor may still commit, then reveal.
        let one = audit_json(ch(vec![v(me, "aa", None)]));
        assert_eq!(next_step(&one, me, 20, Some(("aa", false))), Step::Wait);
        assert_eq!(next_step(&one, me, 51, Some(("aa", false))), Step::Reveal);
        assert_eq!(next_step(&one, me, 71, Some(("aa", false))), Step::Wait);
        // Everyone committed: the reveal period is open at once.
        let both = audit_json(ch(vec![v(me, "aa", None), v("node-b", "bb", None)]));
        assert_eq!(next_step(&both, me, 20, Some(("aa", false))), Step::Reveal);
        // Revealed (on chain or in the saved state): done.
        assert_eq!(next_step(&both, me, 60, Some(("aa", true))), Step::Wait);
        let opened = audit_json(ch(vec![v(me, "aa", Some(false))]));
        assert_eq!(next_step(&opened, me, 60, Some(("aa", false))), Step::Wait);
        // A commitment on chain this worker has no saved verdict for cannot be opened.
        assert_eq!(next_step(&both, me, 60, None), Step::Lost);
        assert_eq!(next_step(&both, me, 60, Some(("cc", false))), Step::Lost);
    }

    #[test]
    fn an_honest_merge_re_checks() {
        let (base, deltas, out) = honest();
        assert_eq!(check(&base, &deltas, &out.record), Finding::Ok);
    }

    #[test]
    fn an_honest_merge_with_stale_deltas_an_int8_step_and_a_rejected_outlier_re_checks() {
        let (base, _, _) = honest();
        let n = base.len();
        let mut cs: Vec<Contribution> = (0..4)
            .map(|k| {
                let d: Vec<f32> = (0..n)
                    .map(|i| ((i * (k + 3)) as f32 * 0.07).cos() * 0.02)
                    .collect();
                let mut c = Contribution::new(node(&format!("node-{k}")), d, 50 + k as u64, 10_000);
                c.staleness = (k % 2) as u32;
                c
            })
            .collect();
        // An outlier the leader rejects: the auditor never sees it.
        cs.push(Contribution::new(node("node-z"), vec![9.0; n], 50, 10_000));
        let policy = MergePolicy {
            update_chunk: 16,
            lr_permille: 800,
            momentum_permille: 500,
            ..MergePolicy::default()
        };
        let meta = MergeMeta {
            job_id: 2,
            round: 9,
            leader: node("node-0"),
        };
        let out = merge(&base, &cs, &policy, &meta).unwrap();
        assert_eq!(out.record.rejected.len(), 1);
        let accepted: Vec<Vec<f32>> = out
            .record
            .accepted
            .iter()
            .map(|e| cs.iter().find(|c| c.node == e.node).unwrap().delta.clone())
            .collect();
        let mut chain_view = out.record.clone();
        chain_view.rejected.clear();
        assert_eq!(check(&base, &accepted, &chain_view), Finding::Ok);
    }

    #[test]
    fn a_perturbed_merge_is_caught_with_the_true_merged_hash_as_evidence() {
        let (base, deltas, mut out) = honest();
        let truth = out.record.merged_hash;
        perturb(&mut out);
        assert_ne!(out.record.merged_hash, truth);
        assert_eq!(
            check(&base, &deltas, &out.record),
            Finding::Fraud {
                field: "merged_hash",
                recomputed: truth.0
            }
        );
    }

    #[test]
    fn invented_weights_are_caught() {
        let (base, deltas, mut out) = honest();
        out.record.accepted[0].weight_ppm += 1;
        out.record.accepted[1].weight_ppm -= 1;
        assert!(matches!(
            check(&base, &deltas, &out.record),
            Finding::Fraud {
                field: "weights",
                ..
            }
        ));
    }

    #[test]
    fn a_delta_that_is_not_the_recorded_one_is_caught() {
        let (base, mut deltas, out) = honest();
        deltas[2][0] += 1.0;
        assert!(matches!(
            check(&base, &deltas, &out.record),
            Finding::Fraud {
                field: "delta_hash",
                ..
            }
        ));
    }

    #[test]
    fn a_wrong_base_is_caught() {
        let (mut base, deltas, out) = honest();
        base.params[1] += 1.0;
        assert!(matches!(
            check(&base, &deltas, &out.record),
            Finding::Fraud { field: "base", .. }
        ));
    }

    #[test]
    fn the_chain_record_rebuilds_the_leaders_record() {
        let (base, deltas, out) = honest();
        let r = RoundJson {
            round: out.record.round,
            leader_node_id: "node-a".into(),
            base_hash: out.record.base_hash.to_hex(),
            merged_hash: out.record.merged_hash.to_hex(),
            accepted: out
                .record
                .accepted
                .iter()
                .map(|e| EntryJson {
                    node: format!("acct-{}", e.node),
                    delta_hash: e.delta_hash.to_hex(),
                    base_hash: e.base_hash.to_hex(),
                    staleness: e.staleness,
                    steps: e.steps,
                    tokens: e.data_size,
                    weight_ppm: e.weight_ppm,
                    signature: e.signature.clone(),
                    content_address: String::new(),
                })
                .collect(),
        };
        let rebuilt = record_of(1, &r, MergePolicy::default(), |a| {
            a.strip_prefix("acct-").map(str::to_string)
        })
        .unwrap();
        assert_eq!(rebuilt.accepted, out.record.accepted);
        assert_eq!(check(&base, &deltas, &rebuilt), Finding::Ok);
    }
}
