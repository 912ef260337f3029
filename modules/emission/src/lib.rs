//! # magnet-emission — capped epoch reward pools and the fee split
//!
//! At the end of each epoch `e` the module mints `e`'s reward pool into the module account
//! `rewards_pool` (where `magnet-rewards` settles it one epoch later). The schedule gives each
//! epoch its time share of an annual emission that decays yearly; the mint is then clipped so
//! that no 24 h of block time and no `blocks_per_day` heights see more than `daily_cap`, and
//! no 365 days / `365·blocks_per_day` heights more than `annual_cap` (see [`handler`]). A
//! clipped amount is not carried over. A block that ends several epochs mints each, in order.
//!
//! Fees: at the start of each block the fees collected into `fee_collector` are split by
//! Params into burn, the last block's signing validators (pro rata to power, paid to the
//! account the app's validator set names) and the community pool, which also receives
//! unpayable shares and rounding dust.
//!
//! Genesis: `params` and optional `schedule_start_secs` (year 0 of the schedule; default the
//! genesis time). `magnetd export` writes it, so a chain restarted from an export continues
//! the decay instead of restarting it.
//!
//! Queries (JSON): `/magnet.emission.v1/params`, `/magnet.emission.v1/pool` (data: epoch in
//! decimal), `/magnet.emission.v1/pools`, `/magnet.emission.v1/minted_total`.
//!
//! # Security
//! Guarantees: minted per 24 h / per `blocks_per_day` heights ≤ daily cap and per year ≤
//! annual cap whatever block times the proposers choose; supply grows only here (and shrinks
//! by burns), so `supply = genesis + minted − burned`; the fee split conserves coins exactly.
//! Does not guarantee: that block time tracks wall time (the height caps bound the damage),
//! nor that validators are paid when the app wires no validator set (their share then goes to
//! the community pool, and an event says so).
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod error;
pub mod handler;
pub mod hooks;
pub mod msgs;
pub mod params;
pub mod state;

pub use error::Error;
pub use params::Params;

use magnet_core::params::json;
use magnet_core::{Ctx, Module, ModuleError, QueryCtx};

/// The emission module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct EmissionModule;

impl Module for EmissionModule {
    fn name(&self) -> &'static str {
        "emission"
    }
    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        magnet_core::params::init_genesis::<Params>(ctx.store_mut(), genesis)?;
        // Year 0 of the schedule: this chain's genesis, or the original chain's when the
        // genesis is an export (`schedule_start_secs`), so an export does not restart the
        // decay at year 0.
        let t = match genesis.get("schedule_start_secs") {
            None | Some(serde_json::Value::Null) => ctx.block.time_secs,
            Some(v) => v.as_u64().ok_or_else(|| {
                ModuleError::invalid_request(format!(
                    "emission genesis: schedule_start_secs must be a block time in seconds, got {v}"
                ))
            })?,
        };
        magnet_core::store::set_borsh(ctx.store_mut(), state::GENESIS_TIME_KEY, &t);
        Ok(())
    }
    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        let start = magnet_core::store::get_borsh::<u64>(ctx.store, state::GENESIS_TIME_KEY)
            .map_err(|e| ModuleError::corrupt(state::GENESIS_TIME_KEY, &e.to_string()))?;
        Ok(serde_json::json!({ "params": state::params(ctx.store)?, "schedule_start_secs": start }))
    }
    fn begin_block(&self, ctx: &mut Ctx) -> Result<(), ModuleError> {
        hooks::begin_block(ctx)
    }
    fn end_epoch(&self, ctx: &mut Ctx, epoch: u64) -> Result<(), ModuleError> {
        hooks::end_epoch(ctx, epoch)
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        Some(match path {
            "/magnet.emission.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.emission.v1/pools" => state::pools(ctx.store).and_then(|p| json(&p)),
            "/magnet.emission.v1/minted_total" => {
                state::minted_total(ctx.store).and_then(|m| json(&m.to_string()))
            }
            "/magnet.emission.v1/pool" => String::from_utf8_lossy(data)
                .trim()
                .parse::<u64>()
                .map_err(|_| {
                    ModuleError::invalid_request("pool query data must be an epoch number")
                })
                .and_then(|e| state::pool(ctx.store, e))
                .and_then(|p| json(&p)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Emission for EmissionModule {
    fn epoch_pool(&self, ctx: &mut Ctx, epoch: u64) -> Result<Option<u128>, ModuleError> {
        Ok(state::pool(ctx.store(), epoch)?.map(|p| p.minted))
    }
}
