//! `end_block`: jobs past their deadline move to Settling (counting work through the current
//! epoch); settling jobs settle once every counted epoch is final, past its challenge window
//! and undisputed. With no valid work the budget returns to the creator.

use crate::state::{self, Status};
use magnet_core::{Ctx, ModuleError};

/// Deadlines and settlements.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let now = ctx.block.time_secs;
    let current = magnet_core::epoch::state(ctx.store())?.current;
    let end = [state::QUEUE_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    for (k, _) in ctx.store().range(state::QUEUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        if let Some(mut j) = state::job(ctx.store(), u64::from_be_bytes(id))? {
            if j.status == Status::Open {
                j.status = Status::Settling {
                    through_epoch: current,
                };
                state::set_job(ctx, &j)?;
            }
        }
    }
    for j in state::jobs(ctx.store())? {
        if let Status::Settling { through_epoch } = j.status {
            crate::handler::try_settle(ctx, j, through_epoch)?;
        }
    }
    Ok(())
}
