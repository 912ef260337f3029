//! # magnet-slashing — differentiated slashing
//!
//! Each [`magnet_core::Offence`] has its own rate in [0.1, 1.0] (Params, ppm; fraudulent
//! approval is fixed at 1.0). Other modules report offences through the
//! [`magnet_core::Slashing`] service:
//! * `slash_node(operator, offence)` takes `⌊bond · rate⌋` from the node's bond in the
//!   registry and jails the node for `jail_secs` (it earns nothing until `MsgUnjail`);
//! * `slash_escrow(offender, offence, base, escrow)` takes `⌊base · rate⌋` from an escrow
//!   (challenge bonds, notary bonds) held by the calling module.
//!
//! Slashed funds are split: `⌊amount · burn_ppm⌋` burned, the remainder to the community pool.
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
//! contrib's and the notary panel's job). Double-sign evidence slashes the operator's node
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

use magnet_core::{Address, Ctx, Module, ModuleError, Offence, QueryCtx};

/// The slashing module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct SlashingModule;

fn parse_params(v: &serde_json::Value) -> Result<Params, ModuleError> {
    let p: Params =
        serde_json::from_value(v.clone()).map_err(|e| Error::InvalidParams(e.to_string()))?;
    p.validate()?;
    Ok(p)
}

fn json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ModuleError> {
    serde_json::to_vec(v).map_err(|e| ModuleError::invalid_request(e.to_string()))
}

impl Module for SlashingModule {
    fn name(&self) -> &'static str {
        "slashing"
    }
    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        let p = match genesis.get("params") {
            Some(p) => parse_params(p)?,
            None => Params::default(),
        };
        state::set_params(ctx.store_mut(), &p);
        Ok(())
    }
    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        Ok(serde_json::json!({ "params": state::params(ctx.store)? }))
    }
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
    fn params(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        serde_json::to_value(state::params(ctx.store)?)
            .map_err(|e| ModuleError::invalid_request(e.to_string()))
    }
    fn validate_params(&self, params: &serde_json::Value) -> Result<(), ModuleError> {
        parse_params(params).map(|_| ())
    }
    fn set_params(&self, ctx: &mut Ctx, params: &serde_json::Value) -> Result<(), ModuleError> {
        let p = parse_params(params)?;
        state::set_params(ctx.store_mut(), &p);
        Ok(())
    }
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
