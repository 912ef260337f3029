//! # magnet-rewards — epoch settlement
//!
//! Epoch `e` settles at the end of epoch `e+1` (or the first epoch end after its challenge
//! window closes and no dispute is open), **exactly once**: the settlement record
//! `rewards/settlement/<e>` is written once and `rewards/next` only moves forward.
//!
//! From the pool `P` minted for `e` (held in `rewards_pool`):
//! * storage holders get `P_s = ⌊P · storage_share⌋` (custody's `storage_share_ppm`, 0 when no
//!   eligible holder proved custody in `e`) as `⌊P_s · T_i(storage) · C_i / Σ T_j · C_j⌋`, with
//!   `C_i` the audited custody in bytes·epochs (ADR 0107);
//! * evaluators within the median band get `P_e = ⌊P · evaluator_share⌋` by slots (0 if none);
//! * contributors get `P_c = P − P_e − P_s` as `R_i = ⌊P_c · W_i / Σ_j W_j⌋`, with
//!   `W_i = Σ_{i's contributions} T_i(kind) · q · c` — the paper's `R_i = R_pool·T_i·C_i/ΣT_j·C_j`
//!   with `C = q·c`;
//! * `dust = P − Σ payouts` goes to the community pool.
//!
//! Only contributions that are scored, not invalidated by a notary, and by operators
//! eligible for `e` (active, not jailed, enough heartbeats in `e`) are paid.
//!
//! Queries (JSON): `/magnet.rewards.v1/params`, `/magnet.rewards.v1/settlement` (data: epoch),
//! `/magnet.rewards.v1/settlements`.
//!
//! # Security
//! Guarantees: `Σ R_i + dust = P` exactly; no epoch is paid twice; each `R_i` is the floor
//! of its exact share computed with a 256-bit intermediate; weight overflow is a typed error,
//! never a wrap; splitting one identity into k with the same total work gains nothing (the
//! floor can only lose dust).
//! Does not guarantee: that `q` and `c` are honest beyond what contrib's evaluator consensus
//! and the notary panel establish.
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

/// The rewards module.
#[derive(Default, Clone, Copy, Debug)]
pub struct RewardsModule;

impl Module for RewardsModule {
    fn name(&self) -> &'static str {
        "rewards"
    }
    magnet_core::module_params_genesis!(Params);
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
            "/magnet.rewards.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.rewards.v1/settlements" => {
                state::settlements(ctx.store).and_then(|s| json(&s))
            }
            "/magnet.rewards.v1/settlement" => String::from_utf8_lossy(data)
                .trim()
                .parse::<u64>()
                .map_err(|_| ModuleError::invalid_request("data must be an epoch number"))
                .and_then(|e| state::settlement(ctx.store, e))
                .and_then(|s| json(&s)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}
