//! # magnet-jobs — research jobs, model lineage, API revenue
//!
//! * `MsgCreateJob{domain, eval set hash, base checkpoint, budget, deadline}` escrows the
//!   budget. Workers submit through `contrib` with this job's id.
//! * `MsgCancelJob` (creator only) refunds the budget while the job is open and has no
//!   recorded round and no verified contribution; after that the budget is committed.
//! * A **training job** carries a [`state::TrainingSpec`] (H, batch, sequence, parameters,
//!   round schedule, leader rule, staleness rule). At each round's start height the module
//!   snapshots the round's election (live nodes sorted by node id, the block hash, the leader).
//! * `MsgRecordRound{job, round, leader, base hash, merged hash, accepted Δs (node, signed claim,
//!   weight), rejected Δs (node, Δ hash, reason)}`, signed by the leader's **node key**, appends
//!   one DiLoCo round to the job's lineage — only from the round's **elected leader**, only for
//!   a round that has started and is after the last recorded one, only on the current head
//!   (ADR 0088). Every accepted Δ's claim must be signed by its producer's registered node key
//!   over (chain id, job, round, base, Δ hash, steps, tokens), be within the job's bound, sit on
//!   a base at most `max_staleness` merges old, and never have been merged before; its weight
//!   must equal the weight the chain recomputes from the claims. Accepted weights accumulate
//!   into each contributor's **lineage share**; every accepted Δ is indexed so `contrib` can
//!   bind a training contribution to it.
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
//! (data: id), `/magnet.jobs.v1/lineage` (data: id) → rounds and shares,
//! `/magnet.jobs.v1/election` (data: `id/round`) → the round's eligible set, seed and leader.
//!
//! # Security
//! Guarantees: budgets and payments are conserved exactly; a job settles or cancels once; a
//! lineage cannot fork (base must equal head) and only the elected leader of a started round
//! extends it (the election is recomputed on chain from the snapshot, never taken from the
//! leader); lineage shares follow weights recomputed from producer-signed, bounded claims, so
//! no one can invent a contributor, a weight or a claim larger than the round allows; a Δ is
//! merged at most once per job. Tests: `tests/verified_rounds.rs`. Does not guarantee: that the
//! merged checkpoint is the correct merge of the named Δs (the Δ hashes and claims are on chain
//! for anyone to re-run the merge, but no on-chain challenge of a merge exists yet), nor that a
//! claimed step count was actually trained (it is only bounded by the round).
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod audit;
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

fn pair_of(data: &[u8]) -> Result<(u64, u64), ModuleError> {
    let t = String::from_utf8_lossy(data);
    let (a, b) = t
        .trim()
        .split_once('/')
        .ok_or_else(|| ModuleError::invalid_request("data must be <job id>/<round>"))?;
    match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        _ => Err(ModuleError::invalid_request(
            "data must be <job id>/<round>",
        )),
    }
}

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
            "/magnet.jobs.v1/election" => pair_of(data)
                .and_then(|(id, r)| state::election(ctx.store, id, r).and_then(|e| json(&e))),
            "/magnet.jobs.v1/audits" => {
                let t = String::from_utf8_lossy(data);
                let id = if t.trim().is_empty() {
                    Ok(None)
                } else {
                    id_of(data).map(Some)
                };
                id.and_then(|id| state::audits(ctx.store, id).and_then(|a| json(&a)))
            }
            "/magnet.jobs.v1/audit" => pair_of(data)
                .and_then(|(id, r)| state::audit(ctx.store, id, r).and_then(|a| json(&a))),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Jobs for JobsModule {
    fn is_open(&self, ctx: &mut Ctx, job: u64) -> Result<bool, ModuleError> {
        Ok(state::job(ctx.store(), job)?.is_some_and(|j| j.status == state::Status::Open))
    }
    fn training_params(&self, ctx: &mut Ctx, job: u64) -> Result<Option<u64>, ModuleError> {
        Ok(state::job(ctx.store(), job)?
            .and_then(|j| j.training)
            .map(|t| t.params))
    }
    fn accepted_delta(
        &self,
        ctx: &mut Ctx,
        job: u64,
        round: u64,
        delta_hash: &[u8; 32],
    ) -> Result<Option<magnet_core::AcceptedDelta>, ModuleError> {
        Ok(state::delta(ctx.store(), job, delta_hash)?
            .filter(|d| d.round == round)
            .map(|d| magnet_core::AcceptedDelta {
                operator: d.operator,
                steps: d.steps,
                tokens: d.tokens,
                weight_ppm: d.weight_ppm,
            }))
    }
}
