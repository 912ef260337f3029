//! `end_block`: resolve every challenge whose vote window has ended.

use crate::state;
use magnet_core::{Ctx, ModuleError};

/// Resolve due challenges.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let now = ctx.block.time_secs;
    let end = [state::QUEUE_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    for (k, _) in ctx.store().range(state::QUEUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        if let Some(c) = state::challenge(ctx.store(), u64::from_be_bytes(id))? {
            crate::handler::resolve(ctx, c)?;
        }
    }
    Ok(())
}
