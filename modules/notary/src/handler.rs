//! check → execute for notary messages; resolution and appeals.

use crate::error::Error;
use crate::msgs::{self, Msg};
use crate::state::{self, escrow, Challenge, Member, Outcome};
use magnet_core::math::{mul_div, ppm_of};
use magnet_core::msg::result;
use magnet_core::{community_pool, Address, Coins, Ctx, Disputable, Event, MsgResult, Offence};
use magnet_proto::notary::v1 as pb;

fn target_service<'a>(ctx: &Ctx<'a>, target: &str) -> Result<&'a dyn Disputable, Error> {
    let s = ctx.services();
    if target.starts_with("contrib/") {
        let c = s.contrib()?;
        Ok(c as &dyn Disputable)
    } else if target.starts_with("data/") {
        Ok(s.data()?)
    } else {
        Err(Error::BadTarget(target.to_string()))
    }
}

/// Execute a message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    match msg {
        Msg::Bond { notary, amount } => {
            let mut m = state::member(ctx.store(), &notary)?
                .ok_or_else(|| Error::NotANotary(notary.to_string()))?;
            bank.send(ctx, &notary, &escrow(), &Coins::umag(amount))?;
            m.bond = m.bond.saturating_add(amount);
            state::set_member(ctx, &notary, &m)?;
            Ok(result(&pb::MsgBondNotaryResponse {}))
        }
        Msg::Challenge {
            challenger,
            target,
            bond,
            evidence_hash,
        } => {
            if bond < p.min_challenge_bond {
                return Err(Error::BondTooLow {
                    have: bond,
                    min: p.min_challenge_bond,
                });
            }
            let svc = target_service(ctx, &target)?;
            bank.send(ctx, &challenger, &escrow(), &Coins::umag(bond))?;
            let (party, offence) = svc.open_dispute(ctx, &target)?;
            let id = ctx.get_borsh::<u64>(state::NEXT_ID_KEY)?.unwrap_or(1);
            ctx.set_borsh(state::NEXT_ID_KEY, &(id + 1))?;
            let vote_ends = ctx.block.time_secs.saturating_add(p.vote_window_secs);
            let c = Challenge {
                id,
                challenger,
                target,
                party,
                offence,
                bond,
                evidence_hash: evidence_hash.iter().map(|b| format!("{b:02x}")).collect(),
                vote_ends,
                votes: Vec::new(),
                outcome: Outcome::Open,
            };
            state::set_challenge(ctx, &c)?;
            ctx.set(
                &[
                    state::QUEUE_PREFIX,
                    &vote_ends.to_be_bytes(),
                    &id.to_be_bytes(),
                ]
                .concat(),
                Vec::new(),
            )?;
            ctx.emit(
                Event::new("magnet.notary.challenged")
                    .attr("id", id)
                    .attr("target", &c.target)
                    .attr("challenger", challenger),
            );
            Ok(result(&pb::MsgChallengeResponse { challenge_id: id }))
        }
        Msg::Vote { notary, id, uphold } => {
            match state::member(ctx.store(), &notary)? {
                Some(m) if m.bond >= p.min_notary_bond => {}
                _ => return Err(Error::NotANotary(notary.to_string())),
            }
            let mut c = state::challenge(ctx.store(), id)?.ok_or(Error::UnknownChallenge(id))?;
            if c.outcome != Outcome::Open || ctx.block.time_secs >= c.vote_ends {
                return Err(Error::VotingClosed(id));
            }
            if c.votes.iter().any(|(a, _)| *a == notary) {
                return Err(Error::AlreadyVoted(notary.to_string()));
            }
            c.votes.push((notary, uphold));
            state::set_challenge(ctx, &c)?;
            Ok(result(&pb::MsgVoteResponse {}))
        }
    }
}

/// Resolve a challenge whose vote window ended.
pub fn resolve(ctx: &mut Ctx, mut c: Challenge) -> Result<(), Error> {
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let panel = state::members(ctx.store())?.len() as u128;
    // Only votes of members still on the panel count.
    let mut yes = 0u128;
    let mut no = 0u128;
    for (a, up) in &c.votes {
        if state::member(ctx.store(), a)?.is_some() {
            if *up {
                yes = yes.saturating_add(1)
            } else {
                no = no.saturating_add(1)
            }
        }
    }
    let voted = yes.saturating_add(no);
    let quorum = panel > 0 && mul_div(voted, 1_000_000, panel).unwrap_or(0) >= p.quorum_ppm as u128;
    let svc = target_service(ctx, &c.target)?;
    if !quorum {
        let fee = ppm_of(c.bond, p.no_quorum_fee_ppm).unwrap_or(c.bond);
        bank.send(ctx, &escrow(), &community_pool(), &Coins::umag(fee))?;
        bank.send(
            ctx,
            &escrow(),
            &c.challenger,
            &Coins::umag(c.bond.checked_sub(fee).ok_or_else(|| {
                magnet_core::ModuleError::overflow("a challenge bond after its fee")
            })?),
        )?;
        svc.close_dispute(ctx, &c.target, false)?;
        c.outcome = Outcome::NoQuorum;
    } else if yes > no {
        let reg = ctx.services().registry()?;
        if reg.node(ctx, &c.party)?.is_some() {
            ctx.services().slashing()?.slash_node(
                ctx,
                &c.party,
                c.offence,
                &format!("notary challenge {} upheld", c.id),
            )?;
        }
        bank.send(ctx, &escrow(), &c.challenger, &Coins::umag(c.bond))?;
        svc.close_dispute(ctx, &c.target, true)?;
        c.outcome = Outcome::Upheld;
    } else {
        let slashed = ctx.services().slashing()?.slash_escrow(
            ctx,
            &c.challenger,
            Offence::FailedChallenge,
            c.bond,
            &escrow(),
            &format!("notary challenge {} rejected", c.id),
        )?;
        bank.send(
            ctx,
            &escrow(),
            &c.challenger,
            &Coins::umag(c.bond.checked_sub(slashed).ok_or_else(|| {
                magnet_core::ModuleError::overflow("a challenge bond after its slash")
            })?),
        )?;
        svc.close_dispute(ctx, &c.target, false)?;
        c.outcome = Outcome::Rejected;
    }
    state::set_challenge(ctx, &c)?;
    ctx.emit(
        Event::new("magnet.notary.resolved")
            .attr("id", c.id)
            .attr("outcome", format!("{:?}", c.outcome).to_lowercase())
            .attr("yes", yes)
            .attr("no", no),
    );
    Ok(())
}

/// Governance overturned challenge `id` as fraudulent: every notary in its majority is
/// slashed at the fraudulent-approval rate (1.0) of its bond.
pub fn overturn(ctx: &mut Ctx, id: u64) -> Result<(), Error> {
    let mut c = state::challenge(ctx.store(), id)?.ok_or(Error::UnknownChallenge(id))?;
    let majority = match c.outcome {
        Outcome::Upheld => true,
        Outcome::Rejected => false,
        _ => return Err(Error::NotOverturnable(id)),
    };
    let slashing = ctx.services().slashing()?;
    for (a, up) in c.votes.clone() {
        if up != majority {
            continue; // voting with the minority is not an offence
        }
        let Some(mut m) = state::member(ctx.store(), &a)? else {
            continue;
        };
        let taken = slashing.slash_escrow(
            ctx,
            &a,
            Offence::FraudulentApproval,
            m.bond,
            &escrow(),
            &format!("resolution of challenge {id} overturned by governance"),
        )?;
        m.bond = m
            .bond
            .checked_sub(taken)
            .ok_or_else(|| magnet_core::ModuleError::overflow("a notary bond after its slash"))?;
        state::set_member(ctx, &a, &m)?;
    }
    c.outcome = Outcome::Overturned;
    state::set_challenge(ctx, &c)?;
    Ok(())
}

/// Replace the panel: new members start with no bond; removed members get their bond back.
pub fn set_panel(ctx: &mut Ctx, members: &[Address]) -> Result<(), Error> {
    let bank = ctx.services().bank;
    for (a, m) in state::members(ctx.store())? {
        if !members.contains(&a) {
            bank.send(ctx, &escrow(), &a, &Coins::umag(m.bond))?;
            ctx.delete(&[state::MEMBER_PREFIX, a.as_bytes()].concat())?;
        }
    }
    for a in members {
        if state::member(ctx.store(), a)?.is_none() {
            state::set_member(ctx, a, &Member { bond: 0 })?;
        }
    }
    Ok(())
}
