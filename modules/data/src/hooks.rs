//! `end_block`: confirm pending records whose challenge window ended undisputed. A record
//! under dispute waits; after its resolution it is confirmed at the next end_block (or was
//! rejected).

use crate::state::{self, Status};
use magnet_core::{Ctx, ModuleError};

/// Confirm due records.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let now = ctx.block.time_secs;
    let end = [state::QUEUE_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    for (k, _) in ctx.store().range(state::QUEUE_PREFIX, Some(&end)) {
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        let Some(r) = state::record(ctx.store(), u64::from_be_bytes(id))? else {
            ctx.delete(&k)?;
            continue;
        };
        if r.disputed {
            continue; // stays queued until the dispute closes
        }
        ctx.delete(&k)?;
        if r.status == Status::Pending {
            crate::handler::confirm(ctx, r)?;
        }
    }
    Ok(())
}
