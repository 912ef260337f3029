//! # magnet-notary — the bootstrap notary panel
//!
//! The panel is a genesis list of accounts, replaced only by governance (`notary_set`).
//! A member votes only while its bond (`MsgBondNotary`) is at least `min_notary_bond`.
//!
//! `MsgChallenge{target, bond, evidence hash}` targets a contribution
//! (`contrib/<epoch>/<job>/<operator>`, inside its challenge window) or a data record
//! (`data/<id>`, while pending). The target is frozen (its epoch does not settle, the data
//! record does not confirm) until resolution. Members vote (`MsgVote{uphold}`) within
//! `vote_window_secs`; then:
//! * fewer than `quorum_ppm` of the panel voted → the challenger gets its bond back minus
//!   `no_quorum_fee_ppm` (to the community pool), so challenges are not free griefing;
//! * majority uphold → the target is invalidated and its party slashed at the target's
//!   offence rate (`failed_challenge` for contributions, `invalid_data` for data); the
//!   challenger gets its bond back;
//! * otherwise → the challenger's bond is slashed at the `failed_challenge` rate.
//!
//! Voting with the minority is not an offence. Governance can overturn a resolution
//! (`overturn`); every notary of its majority is then slashed at `fraudulent_approval`
//! (1.0) of its bond.
//!
//! Genesis: `params`, `panel` (bech32 accounts) and optional `bonds` (`{account: amount}`,
//! panel members only; the escrow's coins come from the bank section). `magnetd export` writes
//! all three, so an exported chain keeps its members' bonds.
//!
//! Queries (JSON): `/magnet.notary.v1/params`, `/magnet.notary.v1/panel`,
//! `/magnet.notary.v1/challenges`, `/magnet.notary.v1/challenge` (data: id).
//!
//! # Security
//! Guarantees: only bonded panel members vote, once each; bonds are conserved (refunded,
//! slashed to burn/community pool, or kept as fee); a resolution happens exactly once.
//! Does not guarantee: an honest panel — that is the bootstrap assumption, backed by bonds
//! and the governance appeal.
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
use magnet_core::{Address, Ctx, Module, ModuleError, QueryCtx, ValidatorUpdate};

/// The notary module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct NotaryModule;

impl Module for NotaryModule {
    fn name(&self) -> &'static str {
        "notary"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    /// Genesis: `{"params": …, "panel": ["magnet1…", …]}`.
    fn init_genesis(&self, ctx: &mut Ctx, genesis: &serde_json::Value) -> Result<(), ModuleError> {
        magnet_core::params::init_genesis::<Params>(ctx.store_mut(), genesis)?;
        let mut panel = Vec::new();
        if let Some(list) = genesis.get("panel").and_then(|v| v.as_array()) {
            for m in list {
                let s = m.as_str().unwrap_or_default();
                panel.push(magnet_core::msg::address("notary panel member", s)?);
            }
        }
        handler::set_panel(ctx, &panel)?;
        // Bonds of panel members (an export carries them: without them the members would
        // restart with bond 0 while the escrow still held their coins).
        if let Some(bonds) = genesis.get("bonds").and_then(|v| v.as_object()) {
            for (who, amount) in bonds {
                let a = magnet_core::msg::address("notary bonds", who)?;
                if !panel.contains(&a) {
                    return Err(ModuleError::invalid_request(format!(
                        "notary genesis: bond for {who}, who is not on the panel"
                    )));
                }
                let bond = magnet_core::msg::amount("notary bonds", amount.as_str().unwrap_or(""))?;
                state::set_member(ctx, &a, &state::Member { bond })?;
            }
        }
        Ok(())
    }
    fn export_genesis(&self, ctx: &QueryCtx) -> Result<serde_json::Value, ModuleError> {
        let panel: Vec<String> = state::members(ctx.store)?
            .iter()
            .map(|(a, _)| a.to_string())
            .collect();
        let bonds: serde_json::Map<String, serde_json::Value> = state::members(ctx.store)?
            .iter()
            .filter(|(_, m)| m.bond > 0)
            .map(|(a, m)| (a.to_string(), m.bond.to_string().into()))
            .collect();
        Ok(
            serde_json::json!({ "params": state::params(ctx.store)?, "panel": panel, "bonds": bonds }),
        )
    }
    fn end_block(&self, ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        hooks::end_block(ctx)?;
        Ok(Vec::new())
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        Some(match path {
            "/magnet.notary.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.notary.v1/panel" => state::members(ctx.store).and_then(|m| json(&m)),
            "/magnet.notary.v1/challenges" => state::challenges(ctx.store).and_then(|c| json(&c)),
            "/magnet.notary.v1/challenge" => String::from_utf8_lossy(data)
                .trim()
                .parse::<u64>()
                .map_err(|_| ModuleError::invalid_request("data must be a challenge id"))
                .and_then(|id| state::challenge(ctx.store, id))
                .and_then(|c| json(&c)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::NotaryPanel for NotaryModule {
    fn members(&self, ctx: &mut Ctx) -> Result<Vec<Address>, ModuleError> {
        Ok(state::members(ctx.store())?
            .into_iter()
            .map(|(a, _)| a)
            .collect())
    }
    fn set_panel(&self, ctx: &mut Ctx, members: &[Address]) -> Result<(), ModuleError> {
        Ok(handler::set_panel(ctx, members)?)
    }
    fn overturn(&self, ctx: &mut Ctx, challenge_id: u64) -> Result<(), ModuleError> {
        Ok(handler::overturn(ctx, challenge_id)?)
    }
}
