//! # magnet-gov — proposals, deposits, stake-weighted votes, tally, execution
//!
//! `MsgSubmitProposal{title, content_json, deposit}` opens a deposit period; once deposits
//! reach `min_deposit` the voting period starts. `MsgVote` (yes | no | abstain | veto) is
//! accepted from anyone with bonded stake (node bond or governance bond, through the
//! registry); weights are read at tally time, so stake moved after voting cannot count
//! twice (bonds are not transferable and unbonding ones do not count). At the end of the
//! voting period: no quorum → `NoQuorum`; veto share above `veto_ppm` → `Vetoed`; yes share
//! of yes+no+veto above `threshold_ppm` → `Passed` and executed; else `Rejected`. Deposits
//! are refunded, except that vetoed (and, if set, no-quorum) proposals burn them.
//!
//! Contents ([`msgs::Content`]): param changes for any module — **validated at submission**
//! through the module's own `validate_params`, so an invalid change (a rate outside
//! [0.1, 1.0], a zero epoch, a cap below the schedule) is refused with the module's error —
//! applied at the next epoch boundary for economic modules ([`handler::ECONOMIC`]) and at the
//! next block otherwise; notary set; validator set; community-pool spend; software upgrade
//! (a halt height the app reads from `/magnet.gov.v1/upgrade`); appeals that overturn a
//! notary resolution as fraudulent; text. A passed proposal whose execution fails is marked
//! `Failed` and writes nothing.
//!
//! CLI mapping (for `magnetd`): `tx gov submit-proposal <file.json>` → [`msgs::submit`]
//! (file: `{"title", "content", "deposit"}`, see `docs/gov-proposal-example.json`);
//! `tx gov deposit <id> <amount>` → [`msgs::deposit`]; `tx gov vote <id> <option>` →
//! [`msgs::vote`]. Queries (JSON): `/magnet.gov.v1/params`, `/magnet.gov.v1/proposals`,
//! `/magnet.gov.v1/proposal` (data: id), `/magnet.gov.v1/votes` (data: id),
//! `/magnet.gov.v1/tally` (data: id; live weights), `/magnet.gov.v1/upgrade`.
//!
//! # Security
//! Guarantees: one vote per address per proposal (re-voting replaces it); no voting without
//! bonded stake; deposits are conserved (refunded or burned, never lost); invalid param
//! changes never reach a vote.
//! Does not guarantee: protection against a stake majority (that is what governance is).
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
use magnet_core::{Ctx, Module, ModuleError, QueryCtx, ValidatorUpdate};

/// The gov module.
#[derive(Default, Clone, Copy, Debug)]
pub struct GovModule;

fn id_of(data: &[u8]) -> Result<u64, ModuleError> {
    String::from_utf8_lossy(data)
        .trim()
        .parse()
        .map_err(|_| ModuleError::invalid_request("data must be a proposal id"))
}

impl Module for GovModule {
    fn name(&self) -> &'static str {
        "gov"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
    fn begin_block(&self, ctx: &mut Ctx) -> Result<(), ModuleError> {
        hooks::begin_block(ctx)
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
            "/magnet.gov.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.gov.v1/proposals" => state::proposals(ctx.store).and_then(|p| json(&p)),
            "/magnet.gov.v1/proposal" => id_of(data)
                .and_then(|id| state::proposal(ctx.store, id))
                .and_then(|p| json(&p)),
            "/magnet.gov.v1/votes" => id_of(data)
                .and_then(|id| {
                    state::by_proposal::<state::VoteOption>(ctx.store, state::VOTE_PREFIX, id)
                })
                .and_then(|v| json(&v)),
            "/magnet.gov.v1/tally" => id_of(data).and_then(|id| {
                let votes =
                    state::by_proposal::<state::VoteOption>(ctx.store, state::VOTE_PREFIX, id)?;
                let mut counts = [0u64; 4];
                for (_, o) in votes {
                    counts[o as usize] += 1;
                }
                json(&serde_json::json!({
                    "yes": counts[0], "no": counts[1], "abstain": counts[2], "veto": counts[3],
                    "note": "vote counts; stake weights are applied at the end of the voting period"
                }))
            }),
            "/magnet.gov.v1/upgrade" => {
                let v: serde_json::Value = ctx
                    .store
                    .get(state::UPGRADE_KEY)
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or(serde_json::Value::Null);
                json(&v)
            }
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}
