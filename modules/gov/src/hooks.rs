//! `begin_block`: apply passed param changes whose time has come (economic modules at the
//! first block of the epoch after the vote; others at the next block). `end_block`: end
//! deposit periods (expired proposals refund their deposits) and voting periods (tally,
//! deposits, execution).

use crate::state::{self, PendingChange, Status};
use borsh::BorshDeserialize;
use magnet_core::{Ctx, Event, ModuleError};

/// Apply due param changes.
pub fn begin_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let current = magnet_core::epoch::state(ctx.store())?.current;
    for (k, v) in magnet_core::store::scan_prefix(ctx.store(), state::PENDING_PREFIX) {
        let pc = PendingChange::try_from_slice(&v)
            .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
        if pc.at_epoch.is_some_and(|e| current < e) {
            continue;
        }
        ctx.delete(&k)?;
        let params: serde_json::Value = serde_json::from_str(&pc.params_json)
            .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
        let router = ctx.services().router;
        let outcome = router.set_params(ctx, &pc.module, &params);
        ctx.emit(
            Event::new("magnet.gov.params_applied")
                .attr("proposal", pc.proposal)
                .attr("module", &pc.module)
                .attr("ok", outcome.is_ok())
                .attr("error", outcome.err().map(|e| e.log).unwrap_or_default()),
        );
    }
    Ok(())
}

/// End deposit and voting periods.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let now = ctx.block.time_secs;
    let end = [state::QUEUE_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    for (k, _) in ctx.store().range(state::QUEUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        let id = u64::from_be_bytes(id);
        let Some(mut p) = state::proposal(ctx.store(), id)? else {
            continue;
        };
        match p.status {
            Status::DepositPeriod { .. } => {
                p.status = Status::Expired;
                let deps = state::by_proposal::<u128>(ctx.store(), state::DEPOSIT_PREFIX, id)?;
                let bank = ctx.services().bank;
                for (who, amt) in deps {
                    bank.send(ctx, &state::escrow(), &who, &magnet_core::Coins::umag(amt))?;
                    ctx.delete(
                        &[state::DEPOSIT_PREFIX, &id.to_be_bytes(), who.as_bytes()].concat(),
                    )?;
                }
                state::set_proposal(ctx, &p)?;
            }
            Status::Voting { .. } => {
                crate::handler::finish_voting(ctx, p).map_err(ModuleError::from)?;
            }
            _ => {}
        }
    }
    Ok(())
}
