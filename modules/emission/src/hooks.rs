//! `begin_block`: split the fees the previous block collected. `end_epoch(e)`: mint epoch
//! `e`'s reward pool (a block that ends several epochs mints each, every mint under the caps).

use magnet_core::{Ctx, ModuleError};

/// Fee split.
pub fn begin_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    crate::handler::split_fees(ctx).map(|_| ())
}

/// Mint the pool of the epoch that ended.
pub fn end_epoch(ctx: &mut Ctx, epoch: u64) -> Result<(), ModuleError> {
    crate::handler::mint_epoch(ctx, epoch).map(|_| ())
}
