//! The slash itself: amount = ⌊base · rate / 10^6⌋; of it ⌊amount · burn / 10^6⌋ is burned
//! and the remainder (including the rounding dust) goes to the community pool.

use crate::error::Error;
use crate::state::{self, SlashRecord};
use magnet_core::math::ppm_of;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, Offence};

/// Split `amount` held in the pass-through account into burn and community pool; record it.
fn settle(
    ctx: &mut Ctx,
    offender: &Address,
    offence: Offence,
    rate: u64,
    base: u128,
    amount: u128,
    evidence: &str,
) -> Result<(), Error> {
    let params = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let burned = ppm_of(amount, params.burn_ppm)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash burn share".into()))?;
    let to_pool = amount - burned;
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
            .attr("to_pool", to_pool),
    );
    Ok(())
}

/// Slash a node bond and jail the node.
pub fn slash_node(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    evidence: &str,
) -> Result<u128, Error> {
    let params = state::params(ctx.store())?;
    let registry = ctx.services().registry()?;
    let node = registry
        .node(ctx, operator)?
        .ok_or_else(|| Error::NoNode(operator.to_string()))?;
    let rate = params.rate(offence);
    let amount = ppm_of(node.bond, rate)
        .ok_or_else(|| magnet_core::BankError::Overflow("slash amount".into()))?;
    let taken = registry.take_bond(ctx, operator, amount, &state::account())?;
    settle(ctx, operator, offence, rate, node.bond, taken, evidence)?;
    let until = ctx.block.time_secs.saturating_add(params.jail_secs);
    registry.jail(ctx, operator, until)?;
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
    settle(ctx, offender, offence, rate, base, amount, evidence)?;
    Ok(amount)
}
