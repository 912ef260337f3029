//! check → execute for each contrib message. Every failure is detected before the first
//! write. A reveal that does not match its commitment is **not** an error: the message
//! succeeds, records the mismatch and slashes the committer (an error would discard the slash).

use crate::error::Error;
use crate::msgs::{self, Msg};
use crate::state::{self, Assignment, Contribution, EpochPhase, Phase, Status};
use magnet_core::msg::result;
use magnet_core::{Address, Ctx, Event, MsgResult, Offence};
use magnet_proto::contrib::v1 as pb;

/// Resolve the node key to its operator; the node must be active.
fn operator(ctx: &mut Ctx, node: &Address) -> Result<Address, Error> {
    let reg = ctx.services().registry()?;
    let op = reg
        .operator_of(ctx, node)?
        .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
    Ok(op)
}

fn active(ctx: &mut Ctx, op: &Address) -> Result<(), Error> {
    let reg = ctx.services().registry()?;
    match reg.node(ctx, op)? {
        Some(n) if n.active && !n.jailed => Ok(()),
        _ => Err(Error::NodeNotActive(op.to_string())),
    }
}

/// The block-time window `[start+lo, start+hi)` of `epoch`, or `OutsideWindow`.
fn in_window(ctx: &Ctx, phase: &'static str, epoch: u64, lo: u64, hi: u64) -> Result<(), Error> {
    let now = ctx.block.time_secs;
    let start = state::epoch_start(ctx.store(), epoch)?;
    let (s, e) = match start {
        Some(s) => (s.saturating_add(lo), s.saturating_add(hi)),
        None => (u64::MAX, u64::MAX),
    };
    if now < s || now >= e {
        return Err(Error::OutsideWindow {
            phase,
            epoch,
            start: s,
            end: e,
            now,
        });
    }
    Ok(())
}

/// The compute a revealed result is worth and the Δ hashes it claims; refuses an entry that is
/// not an accepted Δ of `op` in `job`'s lineage or was claimed before.
fn entry_compute(
    ctx: &mut Ctx,
    job: u64,
    op: &Address,
    work: &crate::state::Work,
) -> Result<(u128, Vec<[u8; 32]>), Error> {
    if work.kind != "training" {
        return Ok((0, Vec::new()));
    }
    let jobs = ctx.services().jobs()?;
    let Some(params) = jobs.training_params(ctx, job)? else {
        return Err(Error::BadEntry {
            round: 0,
            delta: String::new(),
            why: format!("job {job} is not a training job, so a training result cannot name it"),
        });
    };
    let mut total = 0u128;
    let mut out = Vec::with_capacity(work.entries.len());
    for (round, d) in &work.entries {
        let bad = |why: String| Error::BadEntry {
            round: *round,
            delta: hex::encode(d),
            why,
        };
        let acc = jobs
            .accepted_delta(ctx, job, *round, d)?
            .ok_or_else(|| bad(format!("not an accepted Δ of job {job}'s round {round}")))?;
        if acc.operator != *op {
            return Err(bad(format!("accepted for {}, not for {op}", acc.operator)));
        }
        let k = [state::CLAIMED_PREFIX, &job.to_be_bytes(), d].concat();
        if let Some(e) = ctx.get_borsh::<u64>(&k)? {
            return Err(bad(format!("already claimed by the result of epoch {e}")));
        }
        total = total.saturating_add(u128::from(acc.steps).saturating_mul(u128::from(params)));
        out.push(*d);
    }
    Ok((total, out))
}

/// Execute a message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    let p = state::params(ctx.store())?;
    let chain_id = ctx.block.chain_id.clone();
    match msg {
        Msg::Commit {
            node,
            epoch,
            job,
            commitment,
        } => {
            let op = operator(ctx, &node)?;
            active(ctx, &op)?;
            let current = magnet_core::epoch::state(ctx.store())?.current;
            if epoch != current {
                return Err(Error::WrongEpoch {
                    got: epoch,
                    current,
                });
            }
            in_window(ctx, "commit", epoch, 0, p.commit_end())?;
            if state::contribution(ctx, epoch, job, &op)?.is_some() {
                return Err(Error::DuplicateCommit(op.to_string()));
            }
            let mut ph = state::phase(ctx.store(), epoch)?.unwrap_or(EpochPhase {
                phase: Phase::Open,
                count: 0,
                eval_seed: None,
            });
            if ph.count >= p.max_contributions_per_epoch {
                return Err(Error::TooManyContributions(epoch));
            }
            if !ctx.services().jobs()?.is_open(ctx, job)? {
                return Err(Error::JobNotOpen(job));
            }
            let ok = [state::OPCOUNT_PREFIX, &epoch.to_be_bytes(), op.as_bytes()].concat();
            let mine: u32 = ctx.get_borsh(&ok)?.unwrap_or(0);
            if mine >= p.max_contributions_per_operator {
                return Err(Error::OperatorCap {
                    operator: op.to_string(),
                    epoch,
                    max: p.max_contributions_per_operator,
                });
            }
            ctx.set_borsh(&ok, &mine.saturating_add(1))?;
            ph.count = ph.count.checked_add(1).ok_or_else(|| {
                magnet_core::ModuleError::overflow("the epoch's contribution count")
            })?;
            state::set_phase(ctx, epoch, &ph)?;
            state::set_contribution(
                ctx,
                &Contribution {
                    epoch,
                    job,
                    operator: op,
                    commitment,
                    status: Status::Committed,
                    work: None,
                    median: None,
                    quality: 0,
                    compute: 0,
                    entry_compute: 0,
                    good_evaluators: Vec::new(),
                    disputed: false,
                    invalidated: false,
                },
            )?;
            ctx.emit(
                Event::new("magnet.contrib.committed")
                    .attr("epoch", epoch)
                    .attr("job", job)
                    .attr("operator", op),
            );
            Ok(result(&pb::MsgCommitResponse {}))
        }
        Msg::Reveal {
            node,
            epoch,
            job,
            work,
            nonce,
        } => {
            let op = operator(ctx, &node)?;
            let mut c = state::contribution(ctx, epoch, job, &op)?
                .ok_or_else(|| Error::NoCommitment(op.to_string()))?;
            in_window(ctx, "reveal", epoch, p.commit_end(), p.reveal_end())?;
            if c.status != Status::Committed {
                return Err(Error::AlreadyRevealed(op.to_string()));
            }
            let expect = msgs::work_commitment(&chain_id, epoch, job, &op, &work, &nonce);
            let matched = expect == c.commitment;
            if matched {
                // Compute is never a number the worker states: a training result is worth the
                // steps of the accepted Δs it names (each claimable once), other kinds nothing
                // until they have a verified path.
                let entries = entry_compute(ctx, job, &op, &work)?;
                for d in &entries.1 {
                    ctx.set_borsh(
                        &[state::CLAIMED_PREFIX, &job.to_be_bytes(), d].concat(),
                        &epoch,
                    )?;
                }
                c.entry_compute = entries.0;
                c.status = Status::Revealed;
                c.work = Some(work);
            } else {
                c.status = Status::Mismatch;
            }
            state::set_contribution(ctx, &c)?;
            ctx.emit(
                Event::new("magnet.contrib.revealed")
                    .attr("epoch", epoch)
                    .attr("job", job)
                    .attr("operator", op)
                    .attr("matched", matched),
            );
            if !matched {
                ctx.services().slashing()?.slash_node(
                    ctx,
                    &op,
                    Offence::RevealMismatch,
                    &format!("contribution reveal mismatch, epoch {epoch} job {job}"),
                )?;
            }
            Ok(result(&pb::MsgRevealResponse { matched }))
        }
        Msg::EvalCommit {
            node,
            epoch,
            job,
            contributor,
            commitment,
        } => {
            let ev = operator(ctx, &node)?;
            let k = state::a_key(epoch, job, &contributor, &ev);
            let mut a: Assignment = ctx.get_borsh(&k)?.ok_or_else(|| Error::NotAssigned {
                evaluator: ev.to_string(),
                contributor: contributor.to_string(),
            })?;
            in_window(
                ctx,
                "eval_commit",
                epoch,
                p.reveal_end(),
                p.eval_commit_end(),
            )?;
            if a.commitment.is_some() {
                return Err(Error::DuplicateCommit(ev.to_string()));
            }
            a.commitment = Some(commitment);
            ctx.set_borsh(&k, &a)?;
            Ok(result(&pb::MsgEvalCommitResponse {}))
        }
        Msg::EvalReveal {
            node,
            epoch,
            job,
            contributor,
            score,
            nonce,
        } => {
            let ev = operator(ctx, &node)?;
            let k = state::a_key(epoch, job, &contributor, &ev);
            let mut a: Assignment = ctx
                .get_borsh(&k)?
                .ok_or_else(|| Error::NoCommitment(ev.to_string()))?;
            let Some(commitment) = a.commitment else {
                return Err(Error::NoCommitment(ev.to_string()));
            };
            in_window(
                ctx,
                "eval_reveal",
                epoch,
                p.eval_commit_end(),
                p.eval_reveal_end(),
            )?;
            if a.score.is_some() || a.mismatched {
                return Err(Error::AlreadyRevealed(ev.to_string()));
            }
            let expect =
                msgs::score_commitment(&chain_id, epoch, job, &contributor, &ev, score, &nonce);
            let matched = expect == commitment;
            if matched {
                a.score = Some(score);
            } else {
                a.mismatched = true;
            }
            ctx.set_borsh(&k, &a)?;
            if !matched {
                ctx.services().slashing()?.slash_node(
                    ctx,
                    &ev,
                    Offence::RevealMismatch,
                    &format!(
                        "score reveal mismatch, epoch {epoch} job {job} contributor {contributor}"
                    ),
                )?;
            }
            Ok(result(&pb::MsgEvalRevealResponse { matched }))
        }
    }
}
