//! `begin_block`: record consensus misbehaviour (double-sign evidence from FinalizeBlock) and
//! emit an event per item. Validator stake and its slashing belong to the app's validator
//! set; node bonds are not validator stake, so evidence is recorded here for the app and for
//! governance, keyed by height and consensus address.

use crate::state::EVIDENCE_PREFIX;
use magnet_core::{Ctx, Event, ModuleError};

/// Record this block's misbehaviour evidence.
pub fn begin_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let items = ctx.block.misbehavior.clone();
    for m in items {
        let k = [EVIDENCE_PREFIX, &m.height.to_be_bytes(), &m.validator].concat();
        ctx.set(&k, m.kind.as_bytes().to_vec())?;
        ctx.emit(
            Event::new("magnet.slashing.evidence")
                .attr("kind", &m.kind)
                .attr("validator", hex_of(&m.validator))
                .attr("height", m.height)
                .attr("power", m.power),
        );
    }
    Ok(())
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
