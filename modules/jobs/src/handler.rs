//! check → execute for jobs messages; budget settlement; API revenue split.

use crate::error::Error;
use crate::msgs::{self, Msg};
use crate::state::{self, escrow, Job, Round, Status};
use magnet_core::math::ppm_of;
use magnet_core::msg::result;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, ModuleError, MsgResult};
use magnet_proto::jobs::v1 as pb;
use std::collections::BTreeMap;

fn hexs(b: &[u8]) -> String {
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
        } => {
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
            bank.send(ctx, &creator, &escrow(), &Coins::umag(budget))?;
            let id = ctx.get_borsh::<u64>(state::NEXT_ID_KEY)?.unwrap_or(1);
            ctx.set_borsh(state::NEXT_ID_KEY, &(id + 1))?;
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
            };
            state::set_job(ctx, &j)?;
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
            if j.rounds > 0 || has_work(ctx, &j, u64::MAX)? {
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
            let reg = ctx.services().registry()?;
            let op = reg
                .operator_of(ctx, &leader)?
                .ok_or_else(|| Error::BadRound {
                    job,
                    round,
                    why: format!("leader node key {leader} is not registered"),
                })?;
            let mut j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
            if !matches!(j.status, Status::Open) {
                return Err(Error::NotOpen(job));
            }
            // DiLoCo rounds are numbered by their schedule; a round that timed out (dead leader,
            // too few contributions) leaves a gap. The lineage stays a chain through `base`.
            let next = match state::rounds(ctx.store(), job)?.last() {
                Some(r) => r.round + 1,
                None => 0,
            };
            if round < next {
                return Err(Error::BadRound {
                    job,
                    round,
                    why: format!(
                        "rounds up to {} are recorded; the next is at least {next}",
                        next - 1
                    ),
                });
            }
            if hexs(&base) != j.head {
                return Err(Error::BadRound {
                    job,
                    round,
                    why: format!("base {} is not the current head {}", hexs(&base), j.head),
                });
            }
            for (a, _) in &accepted {
                if reg.node(ctx, a)?.is_none() {
                    return Err(Error::BadRound {
                        job,
                        round,
                        why: format!("accepted contributor {a} is not a registered node"),
                    });
                }
            }
            for (a, w) in &accepted {
                let k = [state::SHARE_PREFIX, &job.to_be_bytes(), a.as_bytes()].concat();
                let cur: u128 = ctx.get_borsh(&k)?.unwrap_or(0);
                ctx.set_borsh(&k, &cur.saturating_add(*w as u128))?;
            }
            let rec = Round {
                job,
                round,
                leader: op,
                base_hash: hexs(&base),
                merged_hash: hexs(&merged),
                accepted,
                rejected,
                height: ctx.block.height,
            };
            ctx.set_borsh(
                &[
                    state::ROUND_PREFIX,
                    &job.to_be_bytes(),
                    &round.to_be_bytes(),
                ]
                .concat(),
                &rec,
            )?;
            j.rounds += 1;
            j.head = rec.merged_hash.clone();
            state::set_job(ctx, &j)?;
            ctx.emit(
                Event::new("magnet.jobs.round")
                    .attr("job", job)
                    .attr("round", round)
                    .attr("merged", &j.head),
            );
            Ok(result(&pb::MsgRecordRoundResponse {}))
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
            let paid: u128 = payout.iter().map(|(_, a)| *a).sum();
            bank.send(ctx, &payer, &server, &Coins::umag(to_server))?;
            for (a, amt) in &payout {
                bank.send(ctx, &payer, a, &Coins::umag(*amt))?;
            }
            bank.burn_from_payer(ctx, &payer, burn)?;
            let rest = amount - to_server - paid - burn;
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
fn works(
    ctx: &mut Ctx,
    j: &Job,
    through: u64,
) -> Result<Vec<magnet_core::VerifiedWork>, ModuleError> {
    let current = magnet_core::epoch::state(ctx.store())?.current;
    let contrib = ctx.services().contrib()?;
    let mut out = Vec::new();
    for e in j.created_epoch..=through.min(current) {
        for w in contrib.verified(ctx, e)? {
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
                *ew.entry(*ev).or_default() += *s as u128;
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
            paid += amt;
        }
        bank.send(
            ctx,
            &escrow(),
            &community_pool(),
            &Coins::umag(j.budget - paid),
        )?;
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
