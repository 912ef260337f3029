//! check → execute for jobs messages; budget settlement; API revenue split.

use crate::error::Error;
use crate::msgs::{self, Accepted, Msg};
use crate::state::{self, escrow, DeltaRecord, Job, RejectedEntry, Round, RoundEntry, Status};
use magnet_core::math::ppm_of;
use magnet_core::msg::result;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, ModuleError, MsgResult};
use magnet_proto::jobs::v1 as pb;
use std::collections::BTreeMap;

pub(crate) fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Execute a message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    match msg {
        Msg::Create {
            creator,
            domain,
            eval_set_hash,
            base_checkpoint,
            budget,
            deadline,
            training,
            research,
        } => {
            if let Some(t) = &training {
                if t.first_height <= ctx.block.height {
                    return Err(Error::InvalidField {
                        field: "training.first_height",
                        why: format!(
                            "round 0 must start after the creating block (height {}); pick a \
                             later height",
                            ctx.block.height
                        ),
                    });
                }
            }
            if budget < p.min_budget {
                return Err(Error::InvalidField {
                    field: "budget",
                    why: format!("must be ≥ {}", p.min_budget),
                });
            }
            if deadline <= ctx.block.time_secs {
                return Err(Error::InvalidField {
                    field: "deadline_secs",
                    why: "must be in the future (block time)".into(),
                });
            }
            let id = ctx.get_borsh::<u64>(state::NEXT_ID_KEY)?.unwrap_or(1);
            // A research job's checks that need state (data set, coordinator) come before
            // the escrow moves.
            let prepared = research
                .map(|spec| crate::research::prepare(ctx, id, spec, budget))
                .transpose()?;
            bank.send(ctx, &creator, &escrow(), &Coins::umag(budget))?;
            let next = id
                .checked_add(1)
                .ok_or_else(|| magnet_core::ModuleError::overflow("the next job id"))?;
            ctx.set_borsh(state::NEXT_ID_KEY, &next)?;
            let j = Job {
                id,
                creator,
                domain,
                eval_set_hash: hexs(&eval_set_hash),
                base_checkpoint: hexs(&base_checkpoint),
                budget,
                deadline,
                created_epoch: magnet_core::epoch::state(ctx.store())?.current,
                status: Status::Open,
                rounds: 0,
                head: hexs(&base_checkpoint),
                training,
            };
            state::set_job(ctx, &j)?;
            if let Some(r) = &prepared {
                crate::research::create(ctx, r)?;
            }
            ctx.set_borsh(
                &[state::MERGED_PREFIX, &id.to_be_bytes(), &base_checkpoint].concat(),
                &0u64,
            )?;
            if let Some(t) = &j.training {
                ctx.set_borsh(
                    &[
                        state::SCHED_PREFIX,
                        &t.first_height.to_be_bytes(),
                        &id.to_be_bytes(),
                    ]
                    .concat(),
                    &0u64,
                )?;
            }
            ctx.set(
                &[
                    state::QUEUE_PREFIX,
                    &deadline.to_be_bytes(),
                    &id.to_be_bytes(),
                ]
                .concat(),
                Vec::new(),
            )?;
            ctx.emit(
                Event::new("magnet.jobs.created")
                    .attr("job", id)
                    .attr("budget", budget),
            );
            Ok(result(&pb::MsgCreateJobResponse { job: id }))
        }
        Msg::Cancel { creator, job } => {
            let mut j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
            if j.creator != creator {
                return Err(Error::NotCreator(j.creator.to_string()));
            }
            if j.status != Status::Open {
                return Err(Error::NotOpen(job));
            }
            if j.rounds > 0
                || crate::research::has_versions(ctx.store(), job)?
                || has_work(ctx, &j, u64::MAX)?
            {
                return Err(Error::CannotCancel(job));
            }
            bank.send(ctx, &escrow(), &creator, &Coins::umag(j.budget))?;
            ctx.delete(
                &[
                    state::QUEUE_PREFIX,
                    &j.deadline.to_be_bytes(),
                    &job.to_be_bytes(),
                ]
                .concat(),
            )?;
            j.status = Status::Cancelled;
            state::set_job(ctx, &j)?;
            Ok(result(&pb::MsgCancelJobResponse {}))
        }
        Msg::Round {
            leader,
            job,
            round,
            base,
            merged,
            accepted,
            rejected,
        } => {
            let (mut j, rec, deltas) =
                check_round(ctx, &leader, job, round, base, merged, &accepted, rejected)?;
            for e in &rec.accepted {
                let k = [
                    state::SHARE_PREFIX,
                    &job.to_be_bytes(),
                    e.operator.as_bytes(),
                ]
                .concat();
                let cur: u128 = ctx.get_borsh(&k)?.unwrap_or(0);
                ctx.set_borsh(&k, &cur.saturating_add(u128::from(e.weight_ppm)))?;
            }
            for (d, r) in &deltas {
                ctx.set_borsh(&[state::DELTA_PREFIX, &job.to_be_bytes(), d].concat(), r)?;
            }
            ctx.set_borsh(
                &[
                    state::ROUND_PREFIX,
                    &job.to_be_bytes(),
                    &round.to_be_bytes(),
                ]
                .concat(),
                &rec,
            )?;
            j.rounds = j.rounds.saturating_add(1);
            j.head = rec.merged_hash.clone();
            ctx.set_borsh(
                &[state::MERGED_PREFIX, &job.to_be_bytes(), &merged].concat(),
                &j.rounds,
            )?;
            state::set_job(ctx, &j)?;
            // Sampled for a merge audit in this block's end_block, by this block's hash.
            ctx.set(
                &[
                    state::RECORDED_PREFIX,
                    &job.to_be_bytes(),
                    &round.to_be_bytes(),
                ]
                .concat(),
                Vec::new(),
            )?;
            ctx.emit(
                Event::new("magnet.jobs.round")
                    .attr("job", job)
                    .attr("round", round)
                    .attr("leader", &rec.leader_node_id)
                    .attr("accepted", rec.accepted.len())
                    .attr("merged", &j.head),
            );
            Ok(result(&pb::MsgRecordRoundResponse {}))
        }
        Msg::Challenge {
            challenger,
            job,
            round,
            bond,
            recomputed,
            field,
        } => {
            crate::audit::challenge(ctx, &challenger, job, round, bond, recomputed, &field)?;
            Ok(result(&pb::MsgChallengeRoundResponse {}))
        }
        Msg::AuditCommit {
            auditor,
            job,
            round,
            commitment,
        } => {
            crate::audit::commit(ctx, &auditor, job, round, commitment)?;
            Ok(result(&pb::MsgAuditCommitResponse {}))
        }
        Msg::AuditReveal {
            auditor,
            job,
            round,
            fraud,
            recomputed,
            nonce,
        } => {
            crate::audit::reveal(ctx, &auditor, job, round, fraud, recomputed, nonce)?;
            Ok(result(&pb::MsgAuditRevealResponse {}))
        }
        Msg::ResearchVersion {
            coordinator,
            job,
            version,
            entries,
            best_unit_hash,
            kb_address,
            report_address,
            last,
        } => {
            crate::research::record_version(
                ctx,
                &coordinator,
                job,
                version,
                &entries,
                best_unit_hash,
                kb_address,
                report_address,
                last,
            )?;
            Ok(result(&pb::MsgRecordResearchVersionResponse {}))
        }
        Msg::Dispute {
            coordinator,
            job,
            entry,
        } => {
            crate::research::dispute_trial(ctx, &coordinator, job, &entry)?;
            Ok(result(&pb::MsgDisputeTrialResponse {}))
        }
        Msg::HeldOutCommit {
            evaluator,
            job,
            commitment,
        } => {
            crate::research::heldout_commit(ctx, &evaluator, job, commitment)?;
            Ok(result(&pb::MsgHeldOutCommitResponse {}))
        }
        Msg::HeldOutReveal {
            evaluator,
            job,
            final_test_loss_micro,
            baseline_test_loss_micro,
            unavailable,
            nonce,
        } => {
            crate::research::heldout_reveal(
                ctx,
                &evaluator,
                job,
                final_test_loss_micro,
                baseline_test_loss_micro,
                unavailable,
                nonce,
            )?;
            Ok(result(&pb::MsgHeldOutRevealResponse {}))
        }
        Msg::CheckCommit {
            checker,
            job,
            unit,
            commitment,
        } => {
            crate::research::commit(ctx, &checker, job, unit, commitment)?;
            Ok(result(&pb::MsgTrialCheckCommitResponse {}))
        }
        Msg::CheckReveal {
            checker,
            job,
            unit,
            oof_hash,
            cv_loss_micro,
            nonce,
        } => {
            crate::research::reveal(ctx, &checker, job, unit, oof_hash, cv_loss_micro, nonce)?;
            Ok(result(&pb::MsgTrialCheckRevealResponse {}))
        }
        Msg::RevealTest {
            creator,
            job,
            test_address,
            salt,
        } => {
            crate::research::reveal_test(ctx, &creator, job, test_address, salt)?;
            Ok(result(&pb::MsgRevealTestSplitResponse {}))
        }
        Msg::Pay {
            payer,
            model,
            server,
            amount,
        } => {
            let j = state::job(ctx.store(), model)?.ok_or(Error::UnknownJob(model))?;
            if j.rounds == 0 {
                return Err(Error::NoModel(model));
            }
            let reg = ctx.services().registry()?;
            if reg.node(ctx, &server)?.is_none() {
                return Err(Error::UnknownServer(server.to_string()));
            }
            let shares = state::shares(ctx.store(), model)?;
            let to_contrib = ppm_of(amount, p.api_contributors_ppm).unwrap_or(0);
            let to_server = ppm_of(amount, p.api_server_ppm).unwrap_or(0);
            let burn = ppm_of(amount, p.api_burn_ppm).unwrap_or(0);
            let payout = split(to_contrib, &shares)?;
            let paid = payout
                .iter()
                .try_fold(0u128, |s, (_, a)| s.checked_add(*a))
                .ok_or_else(|| {
                    magnet_core::ModuleError::overflow("the contributors' share of a payment")
                })?;
            bank.send(ctx, &payer, &server, &Coins::umag(to_server))?;
            for (a, amt) in &payout {
                bank.send(ctx, &payer, a, &Coins::umag(*amt))?;
            }
            bank.burn_from_payer(ctx, &payer, burn)?;
            let rest = amount
                .checked_sub(to_server)
                .and_then(|x| x.checked_sub(paid))
                .and_then(|x| x.checked_sub(burn))
                .ok_or_else(|| {
                    magnet_core::ModuleError::overflow("the community's share of a payment")
                })?;
            bank.send(ctx, &payer, &community_pool(), &Coins::umag(rest))?;
            ctx.emit(
                Event::new("magnet.jobs.inference_paid")
                    .attr("model", model)
                    .attr("amount", amount)
                    .attr("contributors", paid)
                    .attr("server", to_server)
                    .attr("burned", burn)
                    .attr("community", rest),
            );
            Ok(result(&pb::MsgPayForInferenceResponse {}))
        }
    }
}

/// A round record that passed every check: the job, the record, the Δ records to index.
type CheckedRound = (Job, Round, Vec<([u8; 32], DeltaRecord)>);

/// Every check of `MsgRecordRound`, before any write (ADR 0088): the job is an open training
/// job; the round has started (its election exists) and `leader` is its elected leader; the
/// round number and base extend the lineage; every accepted Δ comes from a registered node
/// whose node key signed its claim for this job, round and chain, within the job's bound, on a
/// base at most `max_staleness` merges old, not merged before and not twice in the record; and
/// every weight equals the one recomputed from the claims. Returns the job, the record to
/// store and the Δ records to index.
#[allow(clippy::too_many_arguments)]
fn check_round(
    ctx: &mut Ctx,
    leader: &Address,
    job: u64,
    round: u64,
    base: [u8; 32],
    merged: [u8; 32],
    accepted: &[Accepted],
    rejected: Vec<(Address, [u8; 32], String)>,
) -> Result<CheckedRound, Error> {
    let bad = |why: String| Error::BadRound { job, round, why };
    let reg = ctx.services().registry()?;
    let j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    if !matches!(j.status, Status::Open) {
        return Err(Error::NotOpen(job));
    }
    let spec = j.training.clone().ok_or(Error::NotTraining(job))?;
    let election = state::election(ctx.store(), job, round)?.ok_or_else(|| {
        bad(format!(
            "the round has not started: it starts at height {}",
            spec.start_height(round)
        ))
    })?;
    let op = reg.operator_of(ctx, leader)?;
    let signer = match op {
        Some(op) => reg.node(ctx, &op)?.map(|n| n.node_id),
        None => None,
    };
    if election.leader.is_empty() || signer.as_deref() != Some(election.leader.as_str()) {
        return Err(Error::WrongLeader {
            job,
            round,
            elected: if election.leader.is_empty() {
                "nobody (no live node at the start height)".into()
            } else {
                election.leader.clone()
            },
            signer: signer.unwrap_or_else(|| leader.to_string()),
        });
    }
    let leader_op = op.ok_or_else(|| bad("leader is not registered".into()))?;
    // DiLoCo rounds are numbered by their schedule; a round that timed out (dead leader, too
    // few contributions) leaves a gap. The lineage stays a chain through `base`.
    let next = match state::rounds(ctx.store(), job)?.last() {
        Some(r) => r.round.saturating_add(1),
        None => 0,
    };
    if round < next {
        return Err(bad(format!(
            "rounds up to {} are recorded; the next is at least {next}",
            next.saturating_sub(1)
        )));
    }
    if hexs(&base) != j.head {
        return Err(bad(format!(
            "base {} is not the current head {}",
            hexs(&base),
            j.head
        )));
    }
    if state::position(ctx.store(), job, &merged)?.is_some() {
        return Err(bad(format!(
            "merged checkpoint {} is already in the lineage",
            hexs(&merged)
        )));
    }
    let chain_id = ctx.block.chain_id.clone();
    let bound = spec.bound();
    // (node id, Δ hash, entry) sorted by node id, the order of the leader's merge.
    let mut entries: Vec<(String, [u8; 32], RoundEntry)> = Vec::with_capacity(accepted.len());
    let mut seen_deltas = std::collections::BTreeSet::new();
    for a in accepted {
        let claim_err = |why: String| Error::BadClaim {
            round,
            node: a.node.to_string(),
            why,
        };
        let op = reg
            .operator_of(ctx, &a.node)?
            .ok_or_else(|| claim_err("not a registered node key".into()))?;
        let info = reg
            .node(ctx, &op)?
            .ok_or_else(|| claim_err("not a registered node key".into()))?;
        if a.job != job || a.round != round {
            return Err(claim_err(format!(
                "the claim is for job {} round {}, not job {job} round {round}",
                a.job, a.round
            )));
        }
        a.claim(&chain_id)
            .verify(&info.node_pubkey, &a.signature)
            .map_err(|e| claim_err(e.to_string()))?;
        bound
            .check(a.steps, a.tokens)
            .map_err(|e| claim_err(format!("{e} (refused, not clipped)")))?;
        let pos = state::position(ctx.store(), job, &a.base_hash)?.ok_or_else(|| {
            claim_err(format!(
                "its base {} is not a checkpoint of this job's lineage",
                hexs(&a.base_hash)
            ))
        })?;
        let staleness = j.rounds.saturating_sub(pos);
        if staleness > u64::from(spec.max_staleness) {
            return Err(claim_err(format!(
                "its base is {staleness} merges old; the job allows {}",
                spec.max_staleness
            )));
        }
        let dup = |why: &str| Error::DuplicateDelta {
            node: a.node.to_string(),
            delta: hexs(&a.delta_hash),
            why: why.to_string(),
        };
        if !seen_deltas.insert(a.delta_hash) {
            return Err(dup("the record lists it twice"));
        }
        if let Some(prev) = state::delta(ctx.store(), job, &a.delta_hash)? {
            return Err(dup(&format!("round {} merged it already", prev.round)));
        }
        if entries.iter().any(|(id, _, _)| *id == info.node_id) {
            return Err(dup("the record lists this node twice"));
        }
        entries.push((
            info.node_id.clone(),
            a.delta_hash,
            RoundEntry {
                node: a.node,
                operator: op,
                delta_hash: hexs(&a.delta_hash),
                base_hash: hexs(&a.base_hash),
                staleness: u32::try_from(staleness).unwrap_or(u32::MAX),
                steps: a.steps,
                tokens: a.tokens,
                weight_ppm: a.weight_ppm,
                signature: hexs(&a.signature),
                content_address: hexs(&a.content_address),
            },
        ));
    }
    entries.sort_by(|x, y| x.0.cmp(&y.0));
    let raws: Vec<u128> = entries
        .iter()
        .map(|(_, _, e)| {
            magnet_rounds::raw_weight(
                e.tokens,
                magnet_rounds::QUALITY_ONE_BPS,
                e.staleness,
                spec.stale_decay_bps,
                spec.max_staleness,
            )
        })
        .collect();
    let want = magnet_rounds::weights_ppm(&raws);
    for ((_, _, e), w) in entries.iter().zip(&want) {
        if e.weight_ppm != *w {
            return Err(Error::WeightMismatch {
                node: e.node.to_string(),
                got: e.weight_ppm,
                want: *w,
            });
        }
    }
    let deltas = entries
        .iter()
        .map(|(_, d, e)| {
            (
                *d,
                DeltaRecord {
                    round,
                    node: e.node,
                    operator: e.operator,
                    steps: e.steps,
                    tokens: e.tokens,
                    weight_ppm: e.weight_ppm,
                },
            )
        })
        .collect();
    let rec = Round {
        job,
        round,
        leader: leader_op,
        leader_node_id: election.leader,
        base_hash: hexs(&base),
        merged_hash: hexs(&merged),
        accepted: entries.into_iter().map(|(_, _, e)| e).collect(),
        rejected: rejected
            .into_iter()
            .map(|(node, d, reason)| RejectedEntry {
                node,
                delta_hash: hexs(&d),
                reason,
            })
            .collect(),
        height: ctx.block.height,
    };
    Ok((j, rec, deltas))
}

/// Floor split of `pool` by weights (u128, 256-bit intermediate).
pub fn split(pool: u128, weights: &[(Address, u128)]) -> Result<Vec<(Address, u128)>, ModuleError> {
    let total = weights
        .iter()
        .try_fold(0u128, |a, (_, w)| a.checked_add(*w));
    let total = total.ok_or_else(|| ModuleError::invalid_request("lineage weights overflow"))?;
    if total == 0 {
        return Ok(Vec::new());
    }
    weights
        .iter()
        .map(|(a, w)| {
            magnet_core::math::mul_div(pool, *w, total)
                .map(|x| (*a, x))
                .ok_or_else(|| ModuleError::invalid_request("split overflow"))
        })
        .collect()
}

/// Verified, valid work for `j` in epochs `created_epoch..=through`.
///
/// One metered seek per epoch plus this job's keys (ADR 0096): the cost follows the job's age
/// and its own work, never other jobs', and a tx running it stops at its gas limit.
fn works(
    ctx: &mut Ctx,
    j: &Job,
    through: u64,
) -> Result<Vec<magnet_core::VerifiedWork>, ModuleError> {
    let current = magnet_core::epoch::state(ctx.store())?.current;
    let contrib = ctx.services().contrib()?;
    let mut out = Vec::new();
    for e in j.created_epoch..=through.min(current) {
        for w in contrib.verified_for_job(ctx, e, j.id)? {
            if w.job == j.id && !w.invalidated && w.quality > 0 && w.compute > 0 {
                out.push(w);
            }
        }
    }
    Ok(out)
}

fn has_work(ctx: &mut Ctx, j: &Job, through: u64) -> Result<bool, ModuleError> {
    Ok(!works(ctx, j, through)?.is_empty())
}

/// Try to settle a job past its deadline; returns true when settled.
pub fn try_settle(ctx: &mut Ctx, mut j: Job, through: u64) -> Result<bool, ModuleError> {
    let contrib = ctx.services().contrib()?;
    for e in j.created_epoch..=through {
        match contrib.challenge_closes_at(ctx, e)? {
            Some(t) if t <= ctx.block.time_secs && contrib.open_disputes(ctx, e)? == 0 => {}
            _ => return Ok(false),
        }
    }
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let ws = works(ctx, &j, through)?;
    if ws.is_empty() {
        bank.send(ctx, &escrow(), &j.creator, &Coins::umag(j.budget))?;
    } else {
        let mut cw: BTreeMap<Address, u128> = BTreeMap::new();
        let mut ew: BTreeMap<Address, u128> = BTreeMap::new();
        for w in &ws {
            let e = cw.entry(w.operator).or_default();
            *e = e.saturating_add(w.quality.saturating_mul(w.compute));
            for (ev, s) in &w.good_evaluators {
                let e = ew.entry(*ev).or_default();
                *e = e.saturating_add(u128::from(*s));
            }
        }
        let cpool = ppm_of(j.budget, p.budget_contributors_ppm).unwrap_or(0);
        let epool = if ew.is_empty() {
            0
        } else {
            ppm_of(j.budget, p.budget_evaluators_ppm).unwrap_or(0)
        };
        let cv: Vec<(Address, u128)> = cw.into_iter().collect();
        let ev: Vec<(Address, u128)> = ew.into_iter().collect();
        let mut paid = 0u128;
        for (a, amt) in split(cpool, &cv)?.into_iter().chain(split(epool, &ev)?) {
            bank.send(ctx, &escrow(), &a, &Coins::umag(amt))?;
            paid = paid
                .checked_add(amt)
                .ok_or_else(|| magnet_core::ModuleError::overflow("a job's settled budget"))?;
        }
        let rest = j.budget.checked_sub(paid).ok_or_else(|| {
            magnet_core::ModuleError::overflow("a job's budget left after settlement")
        })?;
        bank.send(ctx, &escrow(), &community_pool(), &Coins::umag(rest))?;
    }
    j.status = Status::Settled;
    state::set_job(ctx, &j)?;
    ctx.emit(
        Event::new("magnet.jobs.settled")
            .attr("job", j.id)
            .attr("contributions", ws.len()),
    );
    Ok(true)
}

/// Burn helper: the bank burns from the account that holds the coins.
trait BurnFromPayer {
    fn burn_from_payer(
        &self,
        ctx: &mut Ctx,
        payer: &Address,
        amount: u128,
    ) -> Result<(), ModuleError>;
}

impl BurnFromPayer for &dyn magnet_core::Bank {
    fn burn_from_payer(
        &self,
        ctx: &mut Ctx,
        payer: &Address,
        amount: u128,
    ) -> Result<(), ModuleError> {
        self.burn(ctx, payer, &Coins::umag(amount))?;
        Ok(())
    }
}
