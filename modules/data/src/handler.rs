//! Registration, confirmation (fee split) and rejection.

use crate::error::Error;
use crate::msgs;
use crate::state::{self, escrow, Record, Status};
use magnet_core::math::{mul_div, ppm_of};
use magnet_core::msg::result;
use magnet_core::{community_pool, Coins, Ctx, Event, ModuleError, MsgResult};
use magnet_proto::data::v1 as pb;

/// Execute `MsgRegisterData`.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (m, _) = msgs::check(any)?;
    let p = state::params(ctx.store())?;
    let hk = [state::HASH_PREFIX, &m.hash].concat();
    if ctx.get(&hk)?.is_some() {
        return Err(Error::Duplicate(hex::encode(m.hash)));
    }
    ctx.services().bank.send(
        ctx,
        &m.contributor,
        &escrow(),
        &Coins::umag(p.registration_fee),
    )?;
    let id = ctx.get_borsh::<u64>(state::NEXT_ID_KEY)?.unwrap_or(1);
    let next = id
        .checked_add(1)
        .ok_or_else(|| magnet_core::ModuleError::overflow("the next data record id"))?;
    ctx.set_borsh(state::NEXT_ID_KEY, &next)?;
    ctx.set_borsh(&hk, &id)?;
    let until = ctx.block.time_secs.saturating_add(p.challenge_window_secs);
    let r = Record {
        id,
        contributor: m.contributor,
        hash: hex::encode(m.hash),
        size: m.size,
        domain: m.domain,
        fee: p.registration_fee,
        until,
        status: Status::Pending,
        disputed: false,
    };
    state::set_record(ctx, &r)?;
    ctx.set(
        &[state::QUEUE_PREFIX, &until.to_be_bytes(), &id.to_be_bytes()].concat(),
        Vec::new(),
    )?;
    ctx.emit(
        Event::new("magnet.data.registered")
            .attr("id", id)
            .attr("contributor", r.contributor),
    );
    Ok(result(&pb::MsgRegisterDataResponse { id }))
}

/// Confirm a record: split its fee among contributor, notaries (equally), burn and the
/// community pool (its share plus every remainder).
pub fn confirm(ctx: &mut Ctx, mut r: Record) -> Result<(), ModuleError> {
    let p = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    let to_contrib = ppm_of(r.fee, p.contributor_ppm).unwrap_or(0);
    let burn = ppm_of(r.fee, p.burn_ppm).unwrap_or(0);
    let notary_pool = ppm_of(r.fee, p.notaries_ppm).unwrap_or(0);
    let members = match ctx.services().notary {
        Some(n) => n.members(ctx)?,
        None => Vec::new(),
    };
    let mut paid_notaries = 0u128;
    if !members.is_empty() {
        let each = mul_div(notary_pool, 1, members.len() as u128).unwrap_or(0);
        for m in &members {
            bank.send(ctx, &escrow(), m, &Coins::umag(each))?;
            paid_notaries = paid_notaries
                .checked_add(each)
                .ok_or_else(|| ModuleError::overflow("the notaries' share"))?;
        }
    }
    bank.send(ctx, &escrow(), &r.contributor, &Coins::umag(to_contrib))?;
    bank.burn(ctx, &escrow(), &Coins::umag(burn))?;
    let rest = r
        .fee
        .checked_sub(to_contrib)
        .and_then(|x| x.checked_sub(burn))
        .and_then(|x| x.checked_sub(paid_notaries))
        .ok_or_else(|| ModuleError::overflow("the community's share of a data fee"))?;
    bank.send(ctx, &escrow(), &community_pool(), &Coins::umag(rest))?;
    r.status = Status::Confirmed;
    state::set_record(ctx, &r)?;
    ctx.emit(
        Event::new("magnet.data.confirmed")
            .attr("id", r.id)
            .attr("contributor", to_contrib)
            .attr("notaries", paid_notaries)
            .attr("burned", burn)
            .attr("community", rest),
    );
    Ok(())
}
