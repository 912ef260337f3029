//! The slash itself: amount = ⌊base · rate / 10^6⌋; of it, when the offence was proved by a
//! challenger who is rewarded (a fraudulent merge, ADR 0089), ⌊amount · reward / 10^6⌋ goes to
//! the challenger first; of the rest ⌊rest · burn / 10^6⌋ is burned and the remainder
//! (including the rounding dust) goes to the community pool.

use crate::error::Error;
use crate::state::{self, SlashRecord};
use magnet_core::math::ppm_of;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, Offence};

/// Split `amount` held in the pass-through account into burn and community pool; record it.
#[allow(clippy::too_many_arguments)]
fn settle(
    ctx: &mut Ctx,
    offender: &Address,
    offence: Offence,
    rate: u64,
    base: u128,
    amount: u128,
    evidence: &str,
    reward: Option<(&Address, u64)>,
) -> Result<u128, Error> {
    let params = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let rewarded = match reward {
        Some((to, ppm)) => {
            let r = ppm_of(amount, ppm.min(1_000_000))
                .ok_or_else(|| magnet_core::BankError::Overflow("slash reward share".into()))?;
            bank.send(ctx, &state::account(), to, &Coins::umag(r))?;
            r
        }
        None => 0,
    };
    let rest = amount
        .checked_sub(rewarded)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash rest after the reward".into()))?;
    let burned = ppm_of(rest, params.burn_ppm)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash burn share".into()))?;
    let to_pool = rest
        .checked_sub(burned)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash pool share".into()))?;
    bank.burn(ctx, &state::account(), &Coins::umag(burned))?;
    bank.send(
        ctx,
        &state::account(),
        &community_pool(),
        &Coins::umag(to_pool),
    )?;
    let height = ctx.block.height;
    let seq = state::push_record(
        ctx,
        SlashRecord {
            seq: 0,
            offender: *offender,
            offence,
            rate_ppm: rate,
            base,
            amount,
            burned,
            to_pool,
            rewarded,
            height,
            evidence: evidence.to_string(),
        },
    )?;
    ctx.emit(
        Event::new("magnet.slashing.slashed")
            .attr("seq", seq)
            .attr("offender", offender)
            .attr("offence", offence.as_str())
            .attr("rate_ppm", rate)
            .attr("amount", amount)
            .attr("burned", burned)
            .attr("to_pool", to_pool)
            .attr("rewarded", rewarded),
    );
    Ok(rewarded)
}

/// Slash a node bond and jail the node.
pub fn slash_node(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    evidence: &str,
) -> Result<u128, Error> {
    Ok(slash_node_rewarding(ctx, operator, offence, evidence, None)?.0)
}

/// Slash a node bond and jail the node, paying `reward` = (beneficiary, ppm of the slash)
/// first; returns (slashed, rewarded).
pub fn slash_node_rewarding(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    evidence: &str,
    reward: Option<(&Address, u64)>,
) -> Result<(u128, u128), Error> {
    let params = state::params(ctx.store())?;
    let registry = ctx.services().registry()?;
    let node = registry
        .node(ctx, operator)?
        .ok_or_else(|| Error::NoNode(operator.to_string()))?;
    let rate = params.rate(offence);
    let amount = ppm_of(node.bond, rate)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash amount".into()))?;
    let taken = registry.take_bond(ctx, operator, amount, &state::account())?;
    let rewarded = settle(
        ctx, operator, offence, rate, node.bond, taken, evidence, reward,
    )?;
    let until = ctx.block.time_secs.saturating_add(params.jail_secs);
    registry.jail(ctx, operator, until)?;
    Ok((taken, rewarded))
}

/// Slash `rate_ppm` (capped at 1.0) of a node bond for `offence`; jail only when `jail`.
pub fn slash_node_at(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    rate_ppm: u64,
    jail: bool,
    evidence: &str,
) -> Result<u128, Error> {
    let params = state::params(ctx.store())?;
    let registry = ctx.services().registry()?;
    let node = registry
        .node(ctx, operator)?
        .ok_or_else(|| Error::NoNode(operator.to_string()))?;
    let rate = rate_ppm.min(1_000_000);
    let amount = ppm_of(node.bond, rate)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash amount".into()))?;
    let taken = registry.take_bond(ctx, operator, amount, &state::account())?;
    settle(
        ctx, operator, offence, rate, node.bond, taken, evidence, None,
    )?;
    if jail {
        let until = ctx.block.time_secs.saturating_add(params.jail_secs);
        registry.jail(ctx, operator, until)?;
    }
    Ok(taken)
}

/// Slash `base` held in `escrow` at `offence`'s rate.
pub fn slash_escrow(
    ctx: &mut Ctx,
    offender: &Address,
    offence: Offence,
    base: u128,
    escrow: &Address,
    evidence: &str,
) -> Result<u128, Error> {
    let params = state::params(ctx.store())?;
    let rate = params.rate(offence);
    let amount = ppm_of(base, rate)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash amount".into()))?;
    ctx.services()
        .bank
        .send(ctx, escrow, &state::account(), &Coins::umag(amount))?;
    settle(ctx, offender, offence, rate, base, amount, evidence, None)?;
    Ok(amount)
}
