//! check → execute for gov messages, and the tally/execution run by the hooks.

use crate::error::Error;
use crate::msgs::{self, Content, Msg};
use crate::state::{self, escrow, PendingChange, Proposal, Status, VoteOption};
use magnet_core::math::mul_div;
use magnet_core::msg::result;
use magnet_core::store::Overlay;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, GasMeter, MsgResult};
use magnet_proto::gov::v1 as pb;
use std::collections::BTreeMap;

/// Modules whose params are economic: a change applies at the next epoch boundary.
pub const ECONOMIC: [&str; 8] = [
    "epochs", "registry", "emission", "contrib", "rewards", "slashing", "data", "jobs",
];

/// Check validator changes against the set as it stands (with this block's changes so far)
/// and return the set they would make. Refused, with the reason (ADR 0104): removing a key
/// that is not in the set, a change that changes nothing, an empty result, a total above
/// CometBFT's maximum, new power of 1/3 or more of the new total (the validators already
/// signing must keep more than 2/3, or the chain halts while the new keys are offline), and
/// removed power of 1/3 or more of the current total. The limits hold per proposal.
pub fn check_validator_set_change(
    ctx: &mut Ctx,
    changes: &[msgs::CheckedChange],
) -> Result<BTreeMap<Vec<u8>, u64>, Error> {
    let bad = |s: String| Err(Error::InvalidProposal(s));
    let current = ctx.services().validators()?.effective_set(ctx)?;
    let mut next = current.clone();
    let (mut added, mut removed) = (0u128, 0u128);
    for c in changes {
        let key = hex::encode(&c.pub_key);
        let old = current.get(&c.pub_key).copied().unwrap_or(0);
        if old == 0 && c.power == 0 {
            return bad(format!(
                "validator {key} is not in the validator set; there is nothing to remove"
            ));
        }
        if old == c.power && c.operator.is_none() {
            return bad(format!(
                "validator {key} already has power {old}; the change changes nothing"
            ));
        }
        added = added.saturating_add(u128::from(c.power.saturating_sub(old)));
        removed = removed.saturating_add(u128::from(old.saturating_sub(c.power)));
        if c.power == 0 {
            next.remove(&c.pub_key);
        } else {
            next.insert(c.pub_key.clone(), c.power);
        }
    }
    let sum = |s: &BTreeMap<Vec<u8>, u64>| {
        s.values()
            .fold(0u128, |a, p| a.saturating_add(u128::from(*p)))
    };
    let (old_total, new_total) = (sum(&current), sum(&next));
    if next.is_empty() {
        return bad("the changes would leave no validator: the chain would halt".into());
    }
    let max = magnet_core::services::MAX_TOTAL_VOTING_POWER;
    if new_total > u128::from(max) {
        return bad(format!(
            "the new set's total power {new_total} exceeds CometBFT's maximum {max}"
        ));
    }
    if added.saturating_mul(3) >= new_total {
        return bad(format!(
            "the changes add power {added} of the new total {new_total}, 1/3 or more: the \
             validators already in the set must keep more than 2/3 of the power, or the chain \
             halts while the new keys are offline; add the power over several proposals"
        ));
    }
    if removed.saturating_mul(3) >= old_total {
        return bad(format!(
            "the changes remove power {removed} of the current total {old_total}, 1/3 or more; \
             remove it over several proposals"
        ));
    }
    Ok(next)
}

/// Stateful validation at submission: the change must be valid now.
fn validate_content(ctx: &mut Ctx, c: &Content) -> Result<(), Error> {
    match c {
        Content::ParamChange { module, params } => {
            let router = ctx.services().router;
            if !router.module_names().contains(&module.as_str()) {
                return Err(Error::InvalidProposal(format!(
                    "no module named {module:?}"
                )));
            }
            router
                .validate_params(module, params)
                .map_err(|e| Error::InvalidProposal(format!("params for {module}: {}", e.log)))?;
        }
        Content::SoftwareUpgrade { halt_height, .. } => {
            if *halt_height <= ctx.block.height {
                return Err(Error::InvalidProposal(format!(
                    "software_upgrade.halt_height {halt_height} is not above the current height {}",
                    ctx.block.height
                )));
            }
        }
        Content::NotarySet { .. } | Content::Overturn { .. } => {
            ctx.services().notary()?;
        }
        Content::ValidatorSet { .. } | Content::ValidatorSetChanges { .. } => {
            if ctx.services().validators.is_none() {
                return Err(magnet_core::services::missing_service("validators").into());
            }
            let changes = msgs::checked_validator_changes(c)?.unwrap_or_default();
            check_validator_set_change(ctx, &changes)?;
        }
        Content::CommunitySpend { .. } | Content::Text { .. } => {}
    }
    Ok(())
}

fn add_deposit(ctx: &mut Ctx, p: &mut Proposal, who: &Address, amount: u128) -> Result<(), Error> {
    let bank = ctx.services().bank;
    bank.send(ctx, who, &escrow(), &Coins::umag(amount))?;
    let k = [state::DEPOSIT_PREFIX, &p.id.to_be_bytes(), who.as_bytes()].concat();
    let cur: u128 = ctx.get_borsh(&k)?.unwrap_or(0);
    ctx.set_borsh(&k, &cur.saturating_add(amount))?;
    p.total_deposit = p.total_deposit.saturating_add(amount);
    let params = state::params(ctx.store())?;
    if let Status::DepositPeriod { ends } = p.status {
        if p.total_deposit >= params.min_deposit {
            ctx.delete(&state::queue_key(ends, p.id))?;
            let vend = ctx
                .block
                .time_secs
                .saturating_add(params.voting_period_secs);
            p.status = Status::Voting { ends: vend };
            ctx.set(&state::queue_key(vend, p.id), Vec::new())?;
            ctx.emit(
                Event::new("magnet.gov.voting_started")
                    .attr("proposal", p.id)
                    .attr("ends", vend),
            );
        }
    }
    Ok(())
}

/// Execute a message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    match msg {
        Msg::Submit {
            proposer,
            title,
            content,
            content_json,
            deposit,
        } => {
            validate_content(ctx, &content)?;
            let params = state::params(ctx.store())?;
            let id = ctx.get_borsh::<u64>(state::NEXT_ID_KEY)?.unwrap_or(1);
            let next = id
                .checked_add(1)
                .ok_or_else(|| magnet_core::ModuleError::overflow("the next proposal id"))?;
            ctx.set_borsh(state::NEXT_ID_KEY, &next)?;
            let ends = ctx
                .block
                .time_secs
                .saturating_add(params.deposit_period_secs);
            let mut p = Proposal {
                id,
                proposer,
                title,
                content_json,
                total_deposit: 0,
                status: Status::DepositPeriod { ends },
                tally: None,
            };
            ctx.set(&state::queue_key(ends, id), Vec::new())?;
            if deposit > 0 {
                add_deposit(ctx, &mut p, &proposer, deposit)?;
            }
            state::set_proposal(ctx, &p)?;
            ctx.emit(
                Event::new("magnet.gov.submitted")
                    .attr("proposal", id)
                    .attr("proposer", proposer),
            );
            Ok(result(&pb::MsgSubmitProposalResponse { proposal_id: id }))
        }
        Msg::Deposit {
            depositor,
            id,
            amount,
        } => {
            let mut p = state::proposal(ctx.store(), id)?.ok_or(Error::UnknownProposal(id))?;
            if !matches!(
                p.status,
                Status::DepositPeriod { .. } | Status::Voting { .. }
            ) {
                return Err(Error::DepositClosed(id));
            }
            add_deposit(ctx, &mut p, &depositor, amount)?;
            state::set_proposal(ctx, &p)?;
            Ok(result(&pb::MsgDepositResponse {}))
        }
        Msg::Vote { voter, id, option } => {
            let p = state::proposal(ctx.store(), id)?.ok_or(Error::UnknownProposal(id))?;
            if !matches!(p.status, Status::Voting { .. }) {
                return Err(Error::VotingClosed(id));
            }
            let reg = ctx.services().registry()?;
            if reg.voting_power(ctx, &voter)? == 0 {
                return Err(Error::NoVotingPower(voter.to_string()));
            }
            let k = [state::VOTE_PREFIX, &id.to_be_bytes(), voter.as_bytes()].concat();
            ctx.set_borsh(&k, &option)?;
            ctx.emit(
                Event::new("magnet.gov.voted")
                    .attr("proposal", id)
                    .attr("voter", voter)
                    .attr("option", format!("{option:?}").to_lowercase()),
            );
            Ok(result(&pb::MsgVoteResponse {}))
        }
    }
}

/// Current tally of `id`: (yes, no, abstain, veto) by voting power now.
pub fn tally(ctx: &mut Ctx, id: u64) -> Result<[u128; 4], Error> {
    let reg = ctx.services().registry()?;
    let votes = state::by_proposal::<VoteOption>(ctx.store(), state::VOTE_PREFIX, id)?;
    let mut t = [0u128; 4];
    for (voter, opt) in votes {
        let w = reg.voting_power(ctx, &voter)?;
        let i = match opt {
            VoteOption::Yes => 0,
            VoteOption::No => 1,
            VoteOption::Abstain => 2,
            VoteOption::Veto => 3,
        };
        t[i] = t[i].saturating_add(w);
    }
    Ok(t)
}

fn settle_deposits(ctx: &mut Ctx, id: u64, burn: bool) -> Result<(), Error> {
    let bank = ctx.services().bank;
    let deps = state::by_proposal::<u128>(ctx.store(), state::DEPOSIT_PREFIX, id)?;
    for (who, amt) in deps {
        if burn {
            bank.burn(ctx, &escrow(), &Coins::umag(amt))?;
        } else {
            bank.send(ctx, &escrow(), &who, &Coins::umag(amt))?;
        }
        ctx.delete(&[state::DEPOSIT_PREFIX, &id.to_be_bytes(), who.as_bytes()].concat())?;
    }
    Ok(())
}

/// Execute a passed proposal's content; an error becomes `Status::Failed`.
fn execute(ctx: &mut Ctx, p: &Proposal) -> Result<(), Error> {
    let content: Content =
        serde_json::from_str(&p.content_json).map_err(|e| Error::InvalidProposal(e.to_string()))?;
    match content {
        Content::ParamChange { module, params } => {
            let current = magnet_core::epoch::state(ctx.store())?.current;
            let at_epoch = ECONOMIC
                .contains(&module.as_str())
                .then_some(current.saturating_add(1));
            let seq = ctx.get_borsh::<u64>(state::PENDING_SEQ_KEY)?.unwrap_or(0);
            let next = seq
                .checked_add(1)
                .ok_or_else(|| magnet_core::ModuleError::overflow("the pending change sequence"))?;
            ctx.set_borsh(state::PENDING_SEQ_KEY, &next)?;
            let pc = PendingChange {
                proposal: p.id,
                module,
                params_json: params.to_string(),
                at_epoch,
            };
            ctx.set_borsh(&[state::PENDING_PREFIX, &seq.to_be_bytes()].concat(), &pc)?;
        }
        Content::NotarySet { members } => {
            let ms = members
                .iter()
                .map(|m| magnet_core::msg::address("member", m))
                .collect::<Result<Vec<_>, _>>()?;
            ctx.services().notary()?.set_panel(ctx, &ms)?;
        }
        Content::ValidatorSet { .. } | Content::ValidatorSetChanges { .. } => {
            // Checked again: the set may have changed since submission. Every change or none
            // (the caller runs this in an overlay it discards on error).
            let changes = msgs::checked_validator_changes(&content)?.unwrap_or_default();
            check_validator_set_change(ctx, &changes)?;
            let v = ctx.services().validators()?;
            for c in &changes {
                v.set_power(ctx, &c.pub_key, c.power)?;
                if let Some(op) = &c.operator {
                    v.set_operator(ctx, &c.pub_key, op)?;
                }
            }
        }
        Content::CommunitySpend { recipient, amount } => {
            let to = magnet_core::msg::address("recipient", &recipient)?;
            let a = magnet_core::msg::amount("amount", &amount)?;
            ctx.services()
                .bank
                .send(ctx, &community_pool(), &to, &Coins::umag(a))?;
        }
        Content::SoftwareUpgrade { name, halt_height } => {
            if halt_height <= ctx.block.height {
                return Err(Error::InvalidProposal(format!(
                    "software_upgrade.halt_height {halt_height} passed before the proposal passed (now {})",
                    ctx.block.height
                )));
            }
            let plan = state::UpgradePlan { name, halt_height };
            ctx.set(
                state::UPGRADE_KEY,
                serde_json::to_vec(&plan).unwrap_or_default(),
            )?;
        }
        Content::Overturn { challenge_id } => {
            ctx.services().notary()?.overturn(ctx, challenge_id)?;
        }
        Content::Text { .. } => {}
    }
    Ok(())
}

/// A proposal's voting period ended: tally, settle deposits, execute.
pub fn finish_voting(ctx: &mut Ctx, mut p: Proposal) -> Result<(), Error> {
    let params = state::params(ctx.store())?;
    let t = tally(ctx, p.id)?;
    let total_power = ctx.services().registry()?.total_voting_power(ctx)?;
    let voted = t.iter().fold(0u128, |a, x| a.saturating_add(*x));
    let non_abstain = t[0].saturating_add(t[1]).saturating_add(t[3]);
    let share = |part: u128, whole: u128| -> u128 {
        if whole == 0 {
            0
        } else {
            mul_div(part, 1_000_000, whole).unwrap_or(u128::MAX)
        }
    };
    let status = if total_power == 0 || share(voted, total_power) < params.quorum_ppm as u128 {
        Status::NoQuorum
    } else if share(t[3], voted) > params.veto_ppm as u128 {
        Status::Vetoed
    } else if share(t[0], non_abstain) > params.threshold_ppm as u128 {
        Status::Passed
    } else {
        Status::Rejected
    };
    let burn = match status {
        Status::Vetoed => params.burn_on_veto,
        Status::NoQuorum => params.burn_on_no_quorum,
        _ => false,
    };
    settle_deposits(ctx, p.id, burn)?;
    p.status = status;
    p.tally = Some(t.map(|x| x.to_string()));
    if p.status == Status::Passed {
        // Execute inside an overlay so a failing execution writes nothing.
        let block = ctx.block;
        let services = ctx.services();
        let mut ov = Overlay::new(ctx.store_mut());
        let mut sub = Ctx::new(block, &mut ov, GasMeter::infinite(), services);
        let r = execute(&mut sub, &p);
        let events = sub.take_events();
        drop(sub);
        match r {
            Ok(()) => {
                ov.commit();
                for e in events {
                    ctx.emit(e);
                }
            }
            Err(e) => {
                ov.discard();
                p.status = Status::Failed {
                    reason: magnet_core::ModuleError::from(e).log,
                };
            }
        }
    }
    state::set_proposal(ctx, &p)?;
    ctx.emit(
        Event::new("magnet.gov.tallied")
            .attr("proposal", p.id)
            .attr("status", format!("{:?}", p.status))
            .attr("yes", t[0])
            .attr("no", t[1])
            .attr("abstain", t[2])
            .attr("veto", t[3]),
    );
    Ok(())
}
