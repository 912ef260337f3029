//! # magnet-jobs — research jobs, model lineage, API revenue
//!
//! * `MsgCreateJob{domain, eval set hash, base checkpoint, budget, deadline}` escrows the
//!   budget. Workers submit through `contrib` with this job's id.
//! * `MsgCancelJob` (creator only) refunds the budget while the job is open and has no
//!   recorded round and no verified contribution; after that the budget is committed.
//! * `MsgRecordRound{job, round, leader, base hash, merged hash, accepted (operator, weight),
//!   rejected (operator, reason)}`, signed by the leader's **node key**, appends one DiLoCo
//!   round to the job's lineage: rounds are numbered from 0 without gaps and each round's base
//!   must be the previous round's merged hash (the job's base checkpoint for round 0), so the
//!   lineage is a hash chain anyone can re-check. Accepted weights accumulate into each
//!   contributor's **lineage share**.
//! * At the deadline the job counts verified, valid contributions (`contrib`) through the
//!   current epoch; once those epochs are final and past their challenge windows it pays
//!   `budget_contributors_ppm` of the budget by `q·c`, `budget_evaluators_ppm` to in-band
//!   evaluators by slots, and the rest (with all dust) to the community pool. No valid work →
//!   the budget returns to the creator.
//! * `MsgPayForInference{model (job id), server, amount}` (x402-style pay-per-call) splits the
//!   payment: `api_contributors_ppm` by lineage share, `api_server_ppm` to the serving node's
//!   operator, `api_burn_ppm` burned, the rest and all dust to the community pool.
//!
//! Queries (JSON): `/magnet.jobs.v1/params`, `/magnet.jobs.v1/jobs`, `/magnet.jobs.v1/job`
//! (data: id), `/magnet.jobs.v1/lineage` (data: id) → rounds and shares.
//!
//! # Security
//! Guarantees: budgets and payments are conserved exactly; a job settles or cancels once; a
//! lineage cannot fork or skip (base must equal head); only registered nodes lead rounds or
//! receive lineage shares. Does not guarantee: that a leader's merge is correct — the inputs
//! are on chain so anyone can recompute it and challenge the contributions.
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

/// The jobs module.
#[derive(Default, Clone, Copy, Debug)]
pub struct JobsModule;

fn id_of(data: &[u8]) -> Result<u64, ModuleError> {
    String::from_utf8_lossy(data)
        .trim()
        .parse()
        .map_err(|_| ModuleError::invalid_request("data must be a job id"))
}

impl Module for JobsModule {
    fn name(&self) -> &'static str {
        "jobs"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
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
            "/magnet.jobs.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.jobs.v1/jobs" => state::jobs(ctx.store).and_then(|j| json(&j)),
            "/magnet.jobs.v1/job" => id_of(data)
                .and_then(|id| state::job(ctx.store, id))
                .and_then(|j| json(&j)),
            "/magnet.jobs.v1/lineage" => id_of(data).and_then(|id| {
                let rounds = state::rounds(ctx.store, id)?;
                let shares: Vec<(Address, String)> = state::shares(ctx.store, id)?
                    .into_iter()
                    .map(|(a, n)| (a, n.to_string()))
                    .collect();
                json(&serde_json::json!({ "rounds": rounds, "shares": shares }))
            }),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}
