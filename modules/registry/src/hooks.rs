//! Block hooks: `end_block` returns matured unbondings; `end_epoch(e)` slashes nodes that
//! were registered before `e` and sent fewer than `min_heartbeats_per_epoch` heartbeats in it
//! (offence `downtime`).

use crate::error::Error;
use crate::handler;
use crate::state::{self, NodeStatus};
use magnet_core::{Ctx, Offence};

/// Pay out unbondings that matured at or before this block's time.
pub fn end_block(ctx: &mut Ctx) -> Result<(), Error> {
    let now = ctx.block.time_secs;
    for e in state::pop_matured(ctx, now)? {
        handler::complete_unbonding(ctx, &e)?;
    }
    Ok(())
}

/// Downtime check for the epoch that ended.
pub fn end_epoch(ctx: &mut Ctx, epoch: u64) -> Result<(), Error> {
    let params = state::params(ctx.store())?;
    let mut offenders = Vec::new();
    for rec in state::all_nodes(ctx.store())? {
        if rec.jailed || rec.status != NodeStatus::Active || rec.registered_epoch >= epoch {
            continue;
        }
        if state::heartbeats(ctx, epoch, &rec.operator)? < params.min_heartbeats_per_epoch {
            offenders.push(rec.operator);
        }
    }
    if offenders.is_empty() {
        return Ok(());
    }
    let slashing = ctx.services().slashing()?;
    for op in offenders {
        slashing.slash_node(
            ctx,
            &op,
            Offence::Downtime,
            &format!(
                "fewer than {} heartbeats in epoch {epoch}",
                params.min_heartbeats_per_epoch
            ),
        )?;
    }
    Ok(())
}
