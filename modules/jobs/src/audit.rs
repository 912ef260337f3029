//! Merge audits and challenges (ADR 0089).
//!
//! * **Sampling.** In the `end_block` of the block that recorded a round, the round is sampled
//!   for an audit when `H("MAGNET/jobs/v1/audit-sample" ‖ block hash ‖ job ‖ round) mod 10^6 <
//!   audit_rounds_ppm`. A sampled round gets `auditors_per_round` auditors drawn from the live
//!   nodes, stake-weighted without replacement, never its own leader ([`draw`]).
//! * **Challenge.** Anyone may challenge a recorded round's merge (`MsgChallengeRound`) within
//!   `challenge_window_blocks` of its recording, once per round, posting at least
//!   `challenge_bond`. A round that was not sampled gets its auditors drawn at the challenge,
//!   by that block's hash. The drawn auditors then have `verdict_blocks` to file verdicts.
//! * **Resolution** (in `end_block`, at the end of the verdict period or once every auditor
//!   voted): more `fraud` than `ok` verdicts → upheld: the leader's operator is slashed for
//!   `fraudulent_merge` (rate 1.0), `challenger_reward_ppm` of the slash goes to the
//!   challenger with its bond, and the job's head rolls back to the round's base ([`rollback`]);
//!   otherwise, with at least one verdict → rejected: the challenger loses its whole bond
//!   (`failed_challenge`'s rate of it through the slashing module, the rest to the community
//!   pool); with no verdict → the bond is returned and the round stands.

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
    let nodes: Vec<(String, u128)> = reg
        .live_nodes(ctx)?
        .into_iter()
        .map(|n| (n.node_id, n.bond))
        .collect();
    let auditors = draw(
        &nodes,
        &r.leader_node_id,
        &block_hash,
        r.job,
        r.round,
        p.auditors_per_round,
    );
    Ok(Audit {
        job: r.job,
        round: r.round,
        leader: r.leader,
        leader_node_id: r.leader_node_id.clone(),
        drawn_at: ctx.block.height,
        sampled,
        auditors,
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
    let until = ctx.block.height.saturating_add(p.verdict_blocks);
    a.challenge = Some(RoundChallenge {
        challenger: *challenger,
        bond,
        recomputed_hash: hexs(&recomputed),
        field: field.to_string(),
        height: ctx.block.height,
        verdicts_until: until,
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
            .attr("verdicts_until", until),
    );
    tracing::info!(job, round, field, "merge challenged");
    Ok(())
}

/// `MsgAuditVerdict` from a drawn auditor's node key.
pub fn verdict(
    ctx: &mut Ctx,
    auditor: &Address,
    job: u64,
    round: u64,
    fraud: bool,
) -> Result<(), Error> {
    let reg = ctx.services().registry()?;
    let node_id = match reg.operator_of(ctx, auditor)? {
        Some(op) => reg.node(ctx, &op)?.map(|n| n.node_id),
        None => None,
    };
    let mut a =
        state::audit(ctx.store(), job, round)?.ok_or(Error::NoOpenChallenge { job, round })?;
    let Some(node_id) = node_id.filter(|id| a.auditors.contains(id)) else {
        return Err(Error::NotAuditor {
            job,
            round,
            signer: auditor.to_string(),
        });
    };
    if a.outcome != AuditOutcome::Open {
        return Err(Error::NoOpenChallenge { job, round });
    }
    let n_auditors = a.auditors.len();
    let c = a
        .challenge
        .as_mut()
        .ok_or(Error::NoOpenChallenge { job, round })?;
    if ctx.block.height > c.verdicts_until {
        return Err(Error::VerdictClosed {
            job,
            round,
            ended: c.verdicts_until,
        });
    }
    if c.verdicts.iter().any(|v| v.auditor == node_id) {
        return Err(Error::AlreadyVoted(node_id));
    }
    c.verdicts.push(Verdict {
        auditor: node_id.clone(),
        fraud,
    });
    let all = c.verdicts.len() >= n_auditors;
    state::set_audit(ctx, &a)?;
    if all {
        // Every auditor spoke: resolve in this block's end_block.
        ctx.set(&due_key(ctx.block.height, job, round), Vec::new())?;
    }
    ctx.emit(
        Event::new("magnet.jobs.audit_verdict")
            .attr("job", job)
            .attr("round", round)
            .attr("auditor", &node_id)
            .attr("fraud", fraud),
    );
    Ok(())
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
    if a.outcome != AuditOutcome::Open
        || (ctx.block.height < c.verdicts_until && c.verdicts.len() < a.auditors.len())
    {
        return Ok(());
    }
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let fraud = c.verdicts.iter().filter(|v| v.fraud).count();
    let ok = c.verdicts.len() - fraud;
    let (mut slashed, mut rewarded, mut lost) = (0u128, 0u128, 0u128);
    let mut dropped = 0u64;
    if fraud + ok == 0 {
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
            &Coins::umag(c.bond - s),
        )?;
        lost = c.bond;
        a.outcome = AuditOutcome::Rejected;
    }
    state::set_audit(ctx, &a)?;
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
            .attr("rounds_dropped", dropped),
    );
    tracing::info!(job, round, outcome, fraud, ok, "merge challenge resolved");
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
