//! Merge audits and challenges (ADR 0089).
//!
//! * **Sampling.** In the `end_block` of the block that recorded a round, the round is sampled
//!   for an audit when `H("MAGNET/jobs/v1/audit-sample" ‖ block hash ‖ job ‖ round) mod 10^6 <
//!   audit_rounds_ppm`. A sampled round gets `auditors_per_round` auditors drawn from the live
//!   nodes, stake-weighted without replacement, never its own leader ([`draw`]).
//! * **Challenge.** Anyone may challenge a recorded round's merge (`MsgChallengeRound`) within
//!   `challenge_window_blocks` of its recording, once per round, posting at least
//!   `challenge_bond`. A round that was not sampled gets its auditors drawn at the challenge,
//!   by that block's hash. The drawn auditors then have `verdict_blocks` to commit sealed
//!   verdicts ([`crate::msgs::verdict_commitment`]) and `reveal_blocks` more to reveal them
//!   (ADR 0091); the reveal period opens early once every drawn auditor committed.
//! * **Resolution** (in `end_block`, at the end of the reveal period or once every auditor
//!   revealed), on revealed verdicts only: more `fraud` than `ok` → upheld: the leader's operator is slashed for
//!   `fraudulent_merge` (rate 1.0), `challenger_reward_ppm` of the slash goes to the
//!   challenger with its bond, and the job's head rolls back to the round's base ([`rollback`]);
//!   otherwise, with at least one verdict → rejected: the challenger loses its whole bond
//!   (`failed_challenge`'s rate of it through the slashing module, the rest to the community
//!   pool); with no verdict → the bond is returned and the round stands. Then every drawn
//!   auditor without a revealed verdict is slashed `no_reveal`, and every revealed verdict
//!   against a strict majority `audit_deviation`.

use crate::error::Error;
use crate::handler::hexs;
use crate::state::{self, audit_escrow, Audit, AuditOutcome, RoundChallenge, Verdict};
use magnet_core::{community_pool, Address, Coins, Ctx, Event, ModuleError, Offence};

/// Domain of the auditor draw.
pub const DRAW_DOMAIN: &[u8] = b"MAGNET/jobs/v1/audit-draw";
/// Domain of the round sample.
pub const SAMPLE_DOMAIN: &[u8] = b"MAGNET/jobs/v1/audit-sample";

fn seed(domain: &[u8], block_hash: &[u8; 32], job: u64, round: u64, i: u64) -> u128 {
    let h = magnet_core::sha256(
        &[
            domain,
            block_hash.as_slice(),
            &job.to_be_bytes(),
            &round.to_be_bytes(),
            &i.to_be_bytes(),
        ]
        .concat(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    u128::from_be_bytes(b)
}

/// Whether round `round` of `job`, recorded in the block with hash `block_hash`, is audited.
pub fn sampled(block_hash: &[u8; 32], job: u64, round: u64, rate_ppm: u64) -> bool {
    seed(SAMPLE_DOMAIN, block_hash, job, round, 0) % 1_000_000 < u128::from(rate_ppm)
}

/// Draws up to `k` auditors from `nodes` (node id, bond), stake-weighted without replacement,
/// never `exclude` (the round's leader). Deterministic in its inputs: `nodes` is sorted by
/// node id first, and each draw is `H(domain ‖ block hash ‖ job ‖ round ‖ i) mod Σ weight`
/// (a zero bond weighs 1, so a live node is never undrawable).
pub fn draw(
    nodes: &[(String, u128)],
    exclude: &str,
    block_hash: &[u8; 32],
    job: u64,
    round: u64,
    k: u32,
) -> Vec<String> {
    let mut pool: Vec<(String, u128)> = nodes
        .iter()
        .filter(|(id, _)| id != exclude)
        .map(|(id, b)| (id.clone(), (*b).max(1)))
        .collect();
    pool.sort();
    pool.dedup_by(|a, b| a.0 == b.0);
    let mut out = Vec::new();
    for i in 0..u64::from(k) {
        let total = pool.iter().fold(0u128, |a, (_, w)| a.saturating_add(*w));
        if total == 0 {
            break;
        }
        let mut x = seed(DRAW_DOMAIN, block_hash, job, round, i) % total;
        let mut pick = pool.len() - 1;
        for (j, (_, w)) in pool.iter().enumerate() {
            if x < *w {
                pick = j;
                break;
            }
            x -= *w;
        }
        out.push(pool.remove(pick).0);
    }
    out
}

/// A fresh audit of recorded round `r`, its auditors drawn by `block_hash` at this height.
fn new_audit(
    ctx: &mut Ctx,
    r: &state::Round,
    block_hash: [u8; 32],
    sampled: bool,
) -> Result<Audit, ModuleError> {
    let p = state::params(ctx.store())?;
    let reg = ctx.services().registry()?;
    // Auditors re-run merges: only tiers that train are drawn.
    let mut live = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.tier_does(ctx, &n.tier, "training")? {
            live.push(n);
        }
    }
    let nodes: Vec<(String, u128)> = live.iter().map(|n| (n.node_id.clone(), n.bond)).collect();
    // Each drawn node with its operator (who its slashes hit), kept in draw order.
    let (auditors, auditor_operators): (Vec<String>, Vec<Address>) = draw(
        &nodes,
        &r.leader_node_id,
        &block_hash,
        r.job,
        r.round,
        p.auditors_per_round,
    )
    .into_iter()
    .filter_map(|id| {
        let op = live.iter().find(|n| n.node_id == id)?.operator;
        Some((id, op))
    })
    .unzip();
    Ok(Audit {
        job: r.job,
        round: r.round,
        leader: r.leader,
        leader_node_id: r.leader_node_id.clone(),
        drawn_at: ctx.block.height,
        sampled,
        auditors,
        auditor_operators,
        window_ends: r.height.saturating_add(p.challenge_window_blocks),
        challenge: None,
        outcome: AuditOutcome::Open,
    })
}

fn emit_drawn(ctx: &mut Ctx, a: &Audit) {
    ctx.emit(
        Event::new("magnet.jobs.audit_drawn")
            .attr("job", a.job)
            .attr("round", a.round)
            .attr("auditors", a.auditors.join(","))
            .attr("window_ends", a.window_ends),
    );
}

fn job_round(k: &[u8]) -> (u64, u64) {
    let n = k.len();
    let mut j = [0u8; 8];
    let mut r = [0u8; 8];
    if n >= 16 {
        j.copy_from_slice(&k[n - 16..n - 8]);
        r.copy_from_slice(&k[n - 8..]);
    }
    (u64::from_be_bytes(j), u64::from_be_bytes(r))
}

/// `end_block`: sample the rounds recorded in this block, then resolve the challenges due.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let p = state::params(ctx.store())?;
    for (k, _) in magnet_core::store::scan_prefix(ctx.store(), state::RECORDED_PREFIX) {
        ctx.delete(&k)?;
        let (job, round) = job_round(&k);
        let Some(r) = state::round(ctx.store(), job, round)? else {
            continue;
        };
        if state::audit(ctx.store(), job, round)?.is_some()
            || !sampled(&ctx.block.hash, job, round, p.audit_rounds_ppm)
        {
            continue;
        }
        let a = new_audit(ctx, &r, ctx.block.hash, true)?;
        state::set_audit(ctx, &a)?;
        emit_drawn(ctx, &a);
    }
    let end = [
        state::VERDICT_DUE_PREFIX,
        &ctx.block.height.saturating_add(1).to_be_bytes(),
    ]
    .concat();
    for (k, _) in ctx.store().range(state::VERDICT_DUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let (job, round) = job_round(&k);
        resolve(ctx, job, round)?;
    }
    Ok(())
}

fn due_key(height: u64, job: u64, round: u64) -> Vec<u8> {
    [
        state::VERDICT_DUE_PREFIX,
        &height.to_be_bytes(),
        &job.to_be_bytes(),
        &round.to_be_bytes(),
    ]
    .concat()
}

/// `MsgChallengeRound`: every check comes before the first write (the bond transfer).
pub fn challenge(
    ctx: &mut Ctx,
    challenger: &Address,
    job: u64,
    round: u64,
    bond: u128,
    recomputed: [u8; 32],
    field: &str,
) -> Result<(), Error> {
    let p = state::params(ctx.store())?;
    let j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    if j.training.is_none() {
        return Err(Error::NotTraining(job));
    }
    let r = state::round(ctx.store(), job, round)?.ok_or(Error::UnknownRound { job, round })?;
    let closed_at = r.height.saturating_add(p.challenge_window_blocks);
    if ctx.block.height > closed_at {
        return Err(Error::ChallengeClosed {
            job,
            round,
            closed_at,
        });
    }
    if bond < p.challenge_bond {
        return Err(Error::BondTooLow {
            have: bond,
            min: p.challenge_bond,
        });
    }
    let (mut a, fresh) = match state::audit(ctx.store(), job, round)? {
        Some(a) => (a, false),
        None => (new_audit(ctx, &r, ctx.block.hash, false)?, true),
    };
    if a.challenge.is_some() || a.outcome != AuditOutcome::Open {
        return Err(Error::AlreadyChallenged { job, round });
    }
    let bank = ctx.services().bank;
    bank.send(ctx, challenger, &audit_escrow(), &Coins::umag(bond))?;
    let commits_until = ctx.block.height.saturating_add(p.verdict_blocks);
    let until = commits_until.saturating_add(p.reveal_blocks);
    a.challenge = Some(RoundChallenge {
        challenger: *challenger,
        bond,
        recomputed_hash: hexs(&recomputed),
        field: field.to_string(),
        height: ctx.block.height,
        commits_until,
        reveals_until: until,
        verdicts: Vec::new(),
    });
    state::set_audit(ctx, &a)?;
    if fresh {
        emit_drawn(ctx, &a);
    }
    ctx.set(&due_key(until, job, round), Vec::new())?;
    ctx.emit(
        Event::new("magnet.jobs.round_challenged")
            .attr("job", job)
            .attr("round", round)
            .attr("challenger", challenger)
            .attr("field", field)
            .attr("recomputed", hexs(&recomputed))
            .attr("recorded", &r.merged_hash)
            .attr("commits_until", commits_until)
            .attr("reveals_until", until),
    );
    tracing::info!(job, round, field, "merge challenged");
    Ok(())
}

/// The open challenged audit of round `round` of `job` and the signer's node id, when the
/// signer is one of its drawn auditors (the checks every verdict message shares).
fn auditor_audit(
    ctx: &mut Ctx,
    auditor: &Address,
    job: u64,
    round: u64,
) -> Result<(Audit, String), Error> {
    let reg = ctx.services().registry()?;
    let node_id = match reg.operator_of(ctx, auditor)? {
        Some(op) => reg.node(ctx, &op)?.map(|n| n.node_id),
        None => None,
    };
    let a = state::audit(ctx.store(), job, round)?.ok_or(Error::NoOpenChallenge { job, round })?;
    let Some(node_id) = node_id.filter(|id| a.auditors.contains(id)) else {
        return Err(Error::NotAuditor {
            job,
            round,
            signer: auditor.to_string(),
        });
    };
    if a.outcome != AuditOutcome::Open || a.challenge.is_none() {
        return Err(Error::NoOpenChallenge { job, round });
    }
    Ok((a, node_id))
}

/// `MsgAuditCommit` from a drawn auditor's node key: its sealed verdict, once, within the
/// commit period. Every check comes before the only write.
pub fn commit(
    ctx: &mut Ctx,
    auditor: &Address,
    job: u64,
    round: u64,
    commitment: [u8; 32],
) -> Result<(), Error> {
    let (mut a, node_id) = auditor_audit(ctx, auditor, job, round)?;
    let height = ctx.block.height;
    let c = a
        .challenge
        .as_mut()
        .ok_or(Error::NoOpenChallenge { job, round })?;
    if height > c.commits_until {
        return Err(Error::VerdictClosed {
            job,
            round,
            phase: "commit",
            ended: c.commits_until,
        });
    }
    if c.verdicts.iter().any(|v| v.auditor == node_id) {
        return Err(Error::AlreadyVoted(node_id));
    }
    c.verdicts.push(Verdict {
        auditor: node_id.clone(),
        commitment: hexs(&commitment),
        committed_at: height,
        fraud: None,
        recomputed_hash: String::new(),
    });
    state::set_audit(ctx, &a)?;
    ctx.emit(
        Event::new("magnet.jobs.audit_committed")
            .attr("job", job)
            .attr("round", round)
            .attr("auditor", &node_id),
    );
    Ok(())
}

/// `MsgAuditReveal` from a drawn auditor's node key: opens its sealed verdict within the
/// reveal period (after the commit period, or once every drawn auditor committed). The verdict
/// must agree with its recomputed hash: `ok` names the recorded merged hash, `fraud` any other
/// (zeros when the inputs were unavailable). Every check comes before the only write.
pub fn reveal(
    ctx: &mut Ctx,
    auditor: &Address,
    job: u64,
    round: u64,
    fraud: bool,
    recomputed: [u8; 32],
    nonce: [u8; 32],
) -> Result<(), Error> {
    let (mut a, node_id) = auditor_audit(ctx, auditor, job, round)?;
    let height = ctx.block.height;
    let n_auditors = a.auditors.len();
    let chain_id = ctx.block.chain_id.clone();
    let r = state::round(ctx.store(), job, round)?.ok_or(Error::UnknownRound { job, round })?;
    let c = a
        .challenge
        .as_mut()
        .ok_or(Error::NoOpenChallenge { job, round })?;
    if height > c.reveals_until {
        return Err(Error::VerdictClosed {
            job,
            round,
            phase: "reveal",
            ended: c.reveals_until,
        });
    }
    if height <= c.commits_until && c.verdicts.len() < n_auditors {
        return Err(Error::RevealNotOpen {
            job,
            round,
            opens_after: c.commits_until,
        });
    }
    let v = c
        .verdicts
        .iter_mut()
        .find(|v| v.auditor == node_id)
        .ok_or_else(|| Error::NoCommitment(node_id.clone()))?;
    if v.fraud.is_some() {
        return Err(Error::AlreadyRevealed(node_id));
    }
    let want =
        crate::msgs::verdict_commitment(&chain_id, job, round, auditor, fraud, &recomputed, &nonce);
    if v.commitment != hexs(&want) {
        return Err(Error::RevealMismatch(node_id));
    }
    let names_recorded = hexs(&recomputed) == r.merged_hash;
    if names_recorded == fraud {
        return Err(Error::InconsistentVerdict {
            auditor: node_id,
            why: if fraud {
                "a fraud verdict must name the merged hash recomputed (or zeros when the inputs \
                 were unavailable), not the recorded one"
                    .into()
            } else {
                format!(
                    "an ok verdict must name the recorded merged hash {}",
                    r.merged_hash
                )
            },
        });
    }
    v.fraud = Some(fraud);
    v.recomputed_hash = hexs(&recomputed);
    let all = c.verdicts.iter().filter(|v| v.fraud.is_some()).count() >= n_auditors;
    state::set_audit(ctx, &a)?;
    if all {
        // Every drawn auditor revealed: resolve in this block's end_block.
        ctx.set(&due_key(height, job, round), Vec::new())?;
    }
    ctx.emit(
        Event::new("magnet.jobs.audit_verdict")
            .attr("job", job)
            .attr("round", round)
            .attr("auditor", &node_id)
            .attr("fraud", fraud)
            .attr("recomputed", hexs(&recomputed)),
    );
    Ok(())
}

/// Slashes `operator` (a drawn auditor's) for `offence` if it still has a node.
fn slash_auditor(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    why: &str,
) -> Result<u128, ModuleError> {
    let reg = ctx.services().registry()?;
    if reg.node(ctx, operator)?.is_none() {
        return Ok(0);
    }
    ctx.services()
        .slashing()?
        .slash_node(ctx, operator, offence, why)
}

/// Resolves the challenge of round `round` of `job` if it is open and due (exactly once: the
/// outcome leaves `Open`).
pub fn resolve(ctx: &mut Ctx, job: u64, round: u64) -> Result<(), ModuleError> {
    let Some(mut a) = state::audit(ctx.store(), job, round)? else {
        return Ok(());
    };
    let Some(c) = a.challenge.clone() else {
        return Ok(());
    };
    let revealed: Vec<(&str, bool)> = c
        .verdicts
        .iter()
        .filter_map(|v| v.fraud.map(|f| (v.auditor.as_str(), f)))
        .collect();
    if a.outcome != AuditOutcome::Open
        || (ctx.block.height < c.reveals_until && revealed.len() < a.auditors.len())
    {
        return Ok(());
    }
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    // Only revealed verdicts count.
    let fraud = revealed.iter().filter(|(_, f)| *f).count();
    let ok = revealed.len().saturating_sub(fraud);
    let (mut slashed, mut rewarded, mut lost) = (0u128, 0u128, 0u128);
    let mut dropped = 0u64;
    if revealed.is_empty() {
        bank.send(ctx, &audit_escrow(), &c.challenger, &Coins::umag(c.bond))?;
        a.outcome = AuditOutcome::NoVerdict;
    } else if fraud > ok {
        let reg = ctx.services().registry()?;
        if reg.node(ctx, &a.leader)?.is_some() {
            (slashed, rewarded) = ctx.services().slashing()?.slash_node_rewarding(
                ctx,
                &a.leader,
                Offence::FraudulentMerge,
                &format!(
                    "merge of job {job} round {round} challenged ({}) and upheld {fraud}-{ok}",
                    c.field
                ),
                &c.challenger,
                p.challenger_reward_ppm,
            )?;
        }
        bank.send(ctx, &audit_escrow(), &c.challenger, &Coins::umag(c.bond))?;
        dropped = rollback(ctx, job, round)?;
        a.outcome = AuditOutcome::Upheld;
    } else {
        let s = ctx.services().slashing()?.slash_escrow(
            ctx,
            &c.challenger,
            Offence::FailedChallenge,
            c.bond,
            &audit_escrow(),
            &format!("merge challenge of job {job} round {round} rejected {ok}-{fraud}"),
        )?;
        bank.send(
            ctx,
            &audit_escrow(),
            &community_pool(),
            &Coins::umag(c.bond.checked_sub(s).ok_or_else(|| {
                magnet_core::ModuleError::overflow("a challenge bond after its slash")
            })?),
        )?;
        lost = c.bond;
        a.outcome = AuditOutcome::Rejected;
    }
    state::set_audit(ctx, &a)?;
    // The drawn auditors answer for their verdicts (ADR 0091), in draw order: silence (no
    // commitment, or one never opened) is `no_reveal`; a revealed verdict against a strict
    // majority is `audit_deviation`. A tie has no majority and slashes no deviation.
    let majority = match fraud.cmp(&ok) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    };
    let (mut silent, mut deviated) = (0u64, 0u64);
    for (i, id) in a.auditors.iter().enumerate() {
        let Some(op) = a.auditor_operators.get(i) else {
            continue;
        };
        match revealed.iter().find(|(who, _)| who == id) {
            None => {
                silent = silent.saturating_add(1);
                slash_auditor(
                    ctx,
                    op,
                    Offence::NoReveal,
                    &format!("no revealed verdict on the challenge of job {job} round {round}"),
                )?;
            }
            Some((_, f)) if majority.is_some_and(|m| m != *f) => {
                deviated = deviated.saturating_add(1);
                slash_auditor(
                    ctx,
                    op,
                    Offence::AuditDeviation,
                    &format!(
                        "verdict fraud={f} against the majority {fraud}-{ok} on job {job} round {round}"
                    ),
                )?;
            }
            Some(_) => {}
        }
    }
    let outcome = match a.outcome {
        AuditOutcome::Upheld => "upheld",
        AuditOutcome::Rejected => "rejected",
        _ => "no_verdict",
    };
    ctx.emit(
        Event::new("magnet.jobs.challenge_resolved")
            .attr("job", job)
            .attr("round", round)
            .attr("outcome", outcome)
            .attr("fraud", fraud)
            .attr("ok", ok)
            .attr("leader", a.leader)
            .attr("slashed", slashed)
            .attr("challenger_reward", rewarded)
            .attr("bond_lost", lost)
            .attr("rounds_dropped", dropped)
            .attr("auditors_silent", silent)
            .attr("auditors_deviated", deviated),
    );
    tracing::info!(
        job,
        round,
        outcome,
        fraud,
        ok,
        silent,
        deviated,
        "merge challenge resolved"
    );
    Ok(())
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    hex::decode(s).ok().and_then(|b| b.try_into().ok())
}

/// Rolls job `job`'s lineage back to the base of round `round`: that round and every later
/// recorded round leave the lineage — their records, their lineage positions (no Δ can be
/// trained on a dropped checkpoint any more) and the lineage shares they added — and the job's
/// head becomes the round's base. Their Δ index entries stay: each accepted Δ was signed,
/// bounded work, so a training contribution already committed naming it still reveals (and a
/// Δ is still merged at most once). Open challenges of the dropped later rounds are closed as
/// `Dropped` with their bonds returned. Returns the number of rounds dropped.
pub fn rollback(ctx: &mut Ctx, job: u64, round: u64) -> Result<u64, ModuleError> {
    let Some(mut j) = state::job(ctx.store(), job)? else {
        return Ok(0);
    };
    let rs: Vec<state::Round> = state::rounds(ctx.store(), job)?
        .into_iter()
        .filter(|r| r.round >= round)
        .collect();
    let Some(first) = rs.first() else {
        return Ok(0);
    };
    let head = first.base_hash.clone();
    let bank = ctx.services().bank;
    for r in &rs {
        for e in &r.accepted {
            let k = [
                state::SHARE_PREFIX,
                &job.to_be_bytes(),
                e.operator.as_bytes(),
            ]
            .concat();
            let cur: u128 = ctx.get_borsh(&k)?.unwrap_or(0);
            let left = cur.saturating_sub(u128::from(e.weight_ppm));
            if left == 0 {
                ctx.delete(&k)?;
            } else {
                ctx.set_borsh(&k, &left)?;
            }
        }
        if let Some(m) = unhex32(&r.merged_hash) {
            ctx.delete(&[state::MERGED_PREFIX, &job.to_be_bytes(), &m].concat())?;
        }
        ctx.delete(
            &[
                state::ROUND_PREFIX,
                &job.to_be_bytes(),
                &r.round.to_be_bytes(),
            ]
            .concat(),
        )?;
        if r.round != round {
            if let Some(mut a) = state::audit(ctx.store(), job, r.round)? {
                if a.outcome == AuditOutcome::Open {
                    if let Some(c) = &a.challenge {
                        bank.send(ctx, &audit_escrow(), &c.challenger, &Coins::umag(c.bond))?;
                    }
                    a.outcome = AuditOutcome::Dropped;
                    state::set_audit(ctx, &a)?;
                }
            }
        }
    }
    let n = rs.len() as u64;
    j.rounds = j.rounds.saturating_sub(n);
    j.head = head.clone();
    state::set_job(ctx, &j)?;
    ctx.emit(
        Event::new("magnet.jobs.rolled_back")
            .attr("job", job)
            .attr("from_round", round)
            .attr("rounds_dropped", n)
            .attr("head", &head),
    );
    tracing::warn!(job, round, dropped = n, head = %head, "lineage rolled back");
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<(String, u128)> {
        vec![
            ("node-a".into(), 10),
            ("node-b".into(), 1_000),
            ("node-c".into(), 10),
            ("node-d".into(), 0),
        ]
    }

    #[test]
    fn the_draw_never_picks_the_leader_and_never_picks_twice() {
        for i in 0..200u64 {
            let h = magnet_core::sha256(&i.to_be_bytes());
            let d = draw(&nodes(), "node-b", &h, 1, i, 3);
            assert_eq!(d.len(), 3);
            assert!(!d.contains(&"node-b".to_string()));
            let set: std::collections::BTreeSet<_> = d.iter().collect();
            assert_eq!(set.len(), 3);
        }
    }

    #[test]
    fn the_draw_is_deterministic_and_independent_of_input_order() {
        let h = [7u8; 32];
        let mut rev = nodes();
        rev.reverse();
        assert_eq!(
            draw(&nodes(), "x", &h, 1, 2, 2),
            draw(&rev, "x", &h, 1, 2, 2)
        );
    }

    #[test]
    fn the_draw_follows_stake() {
        let mut first_b = 0;
        for i in 0..500u64 {
            let h = magnet_core::sha256(&i.to_be_bytes());
            if draw(&nodes(), "none", &h, 1, 1, 1)[0] == "node-b" {
                first_b += 1;
            }
        }
        assert!(
            first_b > 450,
            "node-b holds ~98 % of the stake, drawn first {first_b}/500"
        );
    }

    #[test]
    fn sampling_at_one_million_ppm_audits_every_round_and_zero_audits_none() {
        for r in 0..50 {
            assert!(sampled(&[1; 32], 1, r, 1_000_000));
            assert!(!sampled(&[1; 32], 1, r, 0));
        }
    }
}
