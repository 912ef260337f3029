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
//!   it recomputed) and its own `fraud` verdict, in one transaction.
//! * A Δ or the base still cannot be fetched after [`UNAVAILABLE_TRIES`] tries and within
//!   [`UNAVAILABLE_MARGIN_BLOCKS`] of the deadline → the same, with field `unavailable`: a
//!   record whose inputs are gone for the window cannot be re-checked, which counts against the
//!   leader who recorded it.
//! * A round another node challenged → the auditor files its own verdict from its own check.
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
    /// Last height for verdicts.
    pub verdicts_until: u64,
    /// Verdicts so far.
    pub verdicts: Vec<VerdictJson>,
}

/// One verdict.
#[derive(Clone, Debug, Deserialize)]
pub struct VerdictJson {
    /// Auditor node id.
    pub auditor: String,
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

/// One auditor tick: for every open audit of this job this node was drawn for, re-check the
/// round once and challenge it / give a verdict as the module docs say.
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
    for a in mine {
        let voted = a
            .challenge
            .as_ref()
            .is_some_and(|c| c.verdicts.iter().any(|v| v.auditor == sh.me.as_str()));
        let filed = sh
            .verdicts_filed
            .lock()
            .map(|f| f.contains(&a.round))
            .unwrap_or(true);
        if voted || filed {
            continue;
        }
        let open_for = match &a.challenge {
            None => a.window_ends,
            Some(c) => c.verdicts_until,
        };
        if height > open_for {
            continue;
        }
        let done = sh
            .audits_done
            .lock()
            .ok()
            .and_then(|d| d.get(&a.round).cloned());
        if a.challenge.is_none() && done == Some(Finding::Ok) {
            continue;
        }
        let finding = match done {
            Some(f) => f,
            None => {
                let Some(r) = lineage.rounds.iter().find(|r| r.round == a.round) else {
                    continue; // rolled back meanwhile
                };
                let f = audit_round(sh, r).await?;
                let f = match f {
                    Finding::Unavailable(why) => {
                        let tries = {
                            let mut t = sh
                                .audit_tries
                                .lock()
                                .map_err(|_| DaemonError::State("audit lock poisoned".into()))?;
                            let n = t.entry(a.round).or_default();
                            *n += 1;
                            *n
                        };
                        tracing::warn!(round = a.round, tries, "audit input unavailable: {why}");
                        let near_end = height.saturating_add(UNAVAILABLE_MARGIN_BLOCKS) >= open_for;
                        if tries < UNAVAILABLE_TRIES || !near_end {
                            continue;
                        }
                        Finding::Fraud {
                            field: "unavailable",
                            recomputed: [0; 32],
                        }
                    }
                    f => f,
                };
                if let Ok(mut d) = sh.audits_done.lock() {
                    d.insert(a.round, f.clone());
                }
                f
            }
        };
        tracing::info!(round = a.round, ?finding, "merge audited");
        sh.log_round(serde_json::json!({
            "kind": "audit", "round": a.round, "node": sh.me.as_str(),
            "fraud": finding.is_fraud(), "finding": format!("{finding:?}"),
        }));
        let mut msgs = Vec::new();
        match (&finding, &a.challenge) {
            (Finding::Inconclusive(_), _) => continue,
            (Finding::Fraud { field, recomputed }, None) => {
                let p: serde_json::Value = sh.chain.query("/magnet.jobs.v1/params", "").await?;
                let bond: u128 = p["challenge_bond"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(100_000);
                msgs.push(magnet_jobs::msgs::challenge_round(
                    &sh.keys.node.address(),
                    job,
                    a.round,
                    bond,
                    *recomputed,
                    field,
                ));
                msgs.push(magnet_jobs::msgs::audit_verdict(
                    &sh.keys.node.address(),
                    job,
                    a.round,
                    true,
                ));
            }
            (f, Some(_)) => msgs.push(magnet_jobs::msgs::audit_verdict(
                &sh.keys.node.address(),
                job,
                a.round,
                f.is_fraud(),
            )),
            (_, None) => continue,
        }
        let what = if a.challenge.is_none() {
            "MsgChallengeRound"
        } else {
            "MsgAuditVerdict"
        };
        match sh.chain.send(&sh.keys.node, what, msgs).await {
            Ok(h) => {
                tracing::info!(
                    round = a.round,
                    height = h,
                    fraud = finding.is_fraud(),
                    "{what} sent"
                );
                if let Ok(mut f) = sh.verdicts_filed.lock() {
                    f.insert(a.round);
                }
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
