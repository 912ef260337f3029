//! # magnet-slashing — differentiated slashing
//!
//! Each [`magnet_core::Offence`] has its own rate in [0.1, 1.0] (Params, ppm; fraudulent
//! approval and fraudulent merge are fixed at 1.0). Other modules report offences through the
//! [`magnet_core::Slashing`] service:
//! * `slash_node(operator, offence)` takes `⌊bond · rate⌋` from the node's bond in the
//!   registry and jails the node for `jail_secs` (it earns nothing until `MsgUnjail`);
//! * `slash_node_rewarding(operator, offence, beneficiary, reward_ppm)` does the same but
//!   first pays `⌊amount · reward_ppm⌋` to the challenger who proved the offence (jobs' merge
//!   challenges, ADR 0089; recorded as `rewarded`);
//! * `slash_node_at(operator, offence, rate, jail)` slashes at a rate the reporting module
//!   owns (custody's `audit_fail_slash_ppm` for `storage_audit_failed`), jailing only if asked;
//! * `slash_escrow(offender, offence, base, escrow)` takes `⌊base · rate⌋` from an escrow
//!   (challenge bonds, notary bonds) held by the calling module.
//!
//! Slashed funds (after any challenger reward) are split: `⌊rest · burn_ppm⌋` burned, the
//! remainder to the community pool.
//! Every slash is recorded (`slashing/record/<seq>`) and emitted as
//! `magnet.slashing.slashed`. Consensus double-sign evidence is recorded and punished in
//! `begin_block` ([`hooks`]).
//!
//! Queries (JSON): `/magnet.slashing.v1/params`, `/magnet.slashing.v1/records`.
//!
//! # Security
//! Guarantees: an offence is slashed at its own rate and no other; slashing never takes more
//! than the bond; slashed coins are burned or reach the community pool in the same call, so
//! nothing lingers in the pass-through account; arithmetic is exact (floor) and checked.
//! Does not guarantee: that the reporting module judged the offence correctly (that is
//! contrib's, the notary panel's and the jobs merge auditors' job). Double-sign evidence slashes the operator's node
//! bond (a validator whose operator has no node has no stake to slash) and removes the
//! validator from the set (see [`hooks`]).
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
use magnet_core::{Address, Ctx, Module, ModuleError, Offence, QueryCtx};

/// The slashing module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct SlashingModule;

impl Module for SlashingModule {
    fn name(&self) -> &'static str {
        "slashing"
    }
    magnet_core::module_params_genesis!(Params);
    fn begin_block(&self, ctx: &mut Ctx) -> Result<(), ModuleError> {
        hooks::begin_block(ctx)
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        _data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        Some(match path {
            "/magnet.slashing.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.slashing.v1/records" => state::records(ctx.store).and_then(|r| json(&r)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Slashing for SlashingModule {
    fn slash_node(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        evidence: &str,
    ) -> Result<u128, ModuleError> {
        Ok(handler::slash_node(ctx, operator, offence, evidence)?)
    }
    fn slash_node_at(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        rate_ppm: u64,
        jail: bool,
        evidence: &str,
    ) -> Result<u128, ModuleError> {
        Ok(handler::slash_node_at(
            ctx, operator, offence, rate_ppm, jail, evidence,
        )?)
    }
    fn slash_node_rewarding(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        evidence: &str,
        beneficiary: &Address,
        reward_ppm: u64,
    ) -> Result<(u128, u128), ModuleError> {
        Ok(handler::slash_node_rewarding(
            ctx,
            operator,
            offence,
            evidence,
            Some((beneficiary, reward_ppm)),
        )?)
    }
    fn slash_escrow(
        &self,
        ctx: &mut Ctx,
        offender: &Address,
        offence: Offence,
        base: u128,
        escrow: &Address,
        evidence: &str,
    ) -> Result<u128, ModuleError> {
        Ok(handler::slash_escrow(
            ctx, offender, offence, base, escrow, evidence,
        )?)
    }
}
