//! `end_epoch(n)`: settle, in order, every unsettled epoch `e < n` that is ready (pool
//! minted, challenge window closed, no open dispute). Epoch `e` is normally settled at the
//! end of `e+1`; one whose challenge window is still open waits for a later epoch end.

use crate::error::Error;
use magnet_core::{Ctx, ModuleError};

/// Settle what is ready.
pub fn end_epoch(ctx: &mut Ctx, ended: u64) -> Result<(), ModuleError> {
    loop {
        let e = crate::state::next(ctx.store())?;
        if e >= ended {
            return Ok(());
        }
        match crate::handler::settle(ctx, e) {
            Ok(_) => {}
            Err(Error::NotReady { .. }) => return Ok(()),
            Err(err) => return Err(err.into()),
        }
    }
}
