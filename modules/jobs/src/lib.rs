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
//!   bind a training contribution to it. Each accepted Δ also carries its p2p **content
//!   address** (unsigned), so auditors can fetch it.
//! * **Merge audits** ([`audit`], ADR 0089): in the `end_block` of the block that records a
//!   round, the round is sampled (`audit_rounds_ppm`, default every round) by that block's hash
//!   and `auditors_per_round` auditors are drawn from the live nodes, stake-weighted, never its
//!   leader. `MsgChallengeRound{job, round, bond, recomputed hash, field}` from any account,
//!   within `challenge_window_blocks` of the recording, once per round, bond ≥
//!   `challenge_bond`; the drawn auditors seal their verdicts with `MsgAuditCommit` (node key)
//!   within `verdict_blocks` and open them with `MsgAuditReveal{fraud, recomputed hash, nonce}`
//!   within `reveal_blocks` more (ADR 0091). On revealed verdicts only: more `fraud` than `ok`
//!   → the leader is slashed for `fraudulent_merge`
//!   (1.0), the challenger gets its bond and `challenger_reward_ppm` of the slash, and the head
//!   rolls back to the round's base (that round and later ones leave the lineage with their
//!   lineage shares; their accepted Δs stay indexed, so committed contributions naming them
//!   still reveal). Otherwise the challenger loses its whole bond
//!   (`failed_challenge` rate through slashing, the rest to the community pool); no verdict at
//!   all returns it. A drawn auditor with no revealed verdict is slashed `no_reveal`, one that
//!   revealed against a strict majority `audit_deviation` (a small slashing rate).
//! * The job's **outer-step policy** (η, μ, outlier factor, minimum contributions, int8 update
//!   chunk; [`state::OuterPolicy`], ADR 0091) is part of its training spec, validated at
//!   creation: leaders merge and auditors re-check under the same policy by construction.
//! * At the deadline the job counts verified, valid contributions (`contrib`) through the
//!   current epoch; once those epochs are final and past their challenge windows it pays
//!   `budget_contributors_ppm` of the budget by `q·c`, `budget_evaluators_ppm` to in-band
//!   evaluators by slots, and the rest (with all dust) to the community pool. No valid work →
//!   the budget returns to the creator.
//! * A **research job** ([`research`], ADR 0111) carries a [`research::ResearchSpec`] instead:
//!   domain (tabular, timeseries, bitnet-lm), the data set's content address (a *confirmed*
//!   `data` record), target / context columns, trial budget, seed, folds, the recheck rate and
//!   a commitment to its sealed test split. Its **coordinator** is drawn at creation from the
//!   live `orchestrator`-tier nodes by the block hash. `MsgRecordResearchVersion` (coordinator's
//!   node key) appends consecutive versions of worker-signed trials (unit hash, oof hash, CV
//!   loss; `magnet_rounds::TrialClaim`), within the trial budget, nothing after a `final`
//!   one. Trials are sampled (`recheck_ppm`) by the recording block's hash and re-run by
//!   `checkers_per_trial` drawn checkers (never the worker or the coordinator) under sealed
//!   `MsgTrialCheckCommit` / `MsgTrialCheckReveal`; a strict majority contradicting the oof
//!   hash slashes the worker `fabricated_trial` and voids all its trials in the job. The
//!   coordinator may bring a trial its own re-run caught to chain (`MsgDisputeTrial`, ADR 0114):
//!   it is checked regardless of sampling, and a false dispute slashes the coordinator
//!   `audit_deviation`. After the
//!   final version the creator opens the test split (`MsgRevealTestSplit`), which draws
//!   held-out evaluators (`MsgHeldOutCommit` / `MsgHeldOutReveal`, sealed final and baseline
//!   test losses). Settlement pays verified trials and majority checks by slot, the quality
//!   pool by the lower-median held-out improvement (or the reveal rule), the rest back to the
//!   creator, dust to the community pool.
//! * `MsgPayForInference{model (job id), server, amount}` (x402-style pay-per-call) splits the
//!   payment: `api_contributors_ppm` by lineage share, `api_server_ppm` to the serving node's
//!   operator, `api_burn_ppm` burned, the rest and all dust to the community pool.
//!
//! Queries (JSON): `/magnet.jobs.v1/params`, `/magnet.jobs.v1/jobs`, `/magnet.jobs.v1/job`
//! (data: id), `/magnet.jobs.v1/lineage` (data: id) → rounds and shares,
//! `/magnet.jobs.v1/election` (data: `id/round`) → the round's eligible set, seed and leader,
//! `/magnet.jobs.v1/audits` (data: job id, or empty for all) → merge audits,
//! `/magnet.jobs.v1/audit` (data: `id/round`) → one round's audit (null when none),
//! `/magnet.jobs.v1/research` (data: id) → a research job's spec, coordinator, versions, trials
//! with their checks, disputes with theirs, pending checks (`pending_checks`, and
//! `open_check_list` with checkers and periods), check credits, the held-out evaluation
//! (`heldout`: terms, drawn evaluators, sealed and revealed scores, result) and settlement
//! (null when not research).
//!
//! # Security
//! Guarantees: budgets and payments are conserved exactly; a job settles or cancels once; a
//! lineage cannot fork (base must equal head) and only the elected leader of a started round
//! extends it (the election is recomputed on chain from the snapshot, never taken from the
//! leader); lineage shares follow weights recomputed from producer-signed, bounded claims, so
//! no one can invent a contributor, a weight or a claim larger than the round allows; a Δ is
//! merged at most once per job. Tests: `tests/verified_rounds.rs`.
//!
//! What is re-checked by whom (ADR 0089): the **chain** re-checks everything about a record but
//! the merge arithmetic (above); the **drawn auditors** (worker daemons, `node/daemon/src/
//! audit.rs`) re-check the merge — base hash, each accepted Δ's hash, the weights from the
//! claims, and the outer step bit for bit — from inputs fetched by the content addresses the
//! record carries, and challenge a mismatch or missing inputs; the chain then only counts the
//! auditors' verdicts, slashes, pays and rolls back. Guaranteed: a challenge is decided once;
//! bonds and slashes are conserved (every umag goes to the challenger, burn or the community
//! pool); only drawn auditors vote, once each, sealed before any is opened (a verdict cannot
//! be copied from another's reveal, and a copied commitment cannot be opened: it binds its
//! auditor); silence and a minority verdict cost stake; the draw never includes the leader and is a pure
//! function of the block hash and the registry; a rollback removes exactly the lineage shares
//! and positions the dropped rounds added. Tests: `tests/merge_audits.rs`.
//!
//! Does not guarantee: that a drawn auditor re-ran the merge rather than guessed (a guess that
//! matches the majority costs nothing; one that does not is slashed), that anyone re-checks an
//! unchallenged round (auditors only vote on challenges — ADR 0091 says why), that a majority
//! of one draw is honest (a colluding majority decides it), that the leader's *screening* (which Δs it accepted) was fair — only the arithmetic
//! over the accepted set is re-checked — nor that a claimed step count was actually trained
//! (it is only bounded by the round). API revenue already paid by lineage share is not clawed
//! back by a rollback.
//!
//! Research jobs (ADR 0111). Re-checked by the **chain**: the coordinator is the drawn one and
//! signs every version; versions are consecutive and end at `final`; every trial is signed by
//! its worker's registered node key over (chain id, job, unit, oof hash, loss); a unit is
//! recorded once unless voided; live trials stay within the budget; the test split reveal
//! opens the creator's commitment or is refused. Re-checked by the **drawn checkers** (worker
//! daemons): a sampled share of trials, re-run from (data, folds, seed, config) and compared
//! by oof hash, sealed before any is opened. Guaranteed: the escrow is conserved exactly and
//! priced at creation so that trials and credited checks always fit the trial pool; a check
//! resolves once; a strict majority against a trial slashes its worker (`fabricated_trial`)
//! and voids every trial it did for the job; silence and minority re-runs cost stake; a
//! creator that does not open its commitment in time loses the quality pool to the
//! coordinator, while verified trials are paid in every case. Tests:
//! `tests/research_jobs.rs`. Does not guarantee: that a checker re-ran the trial rather than
//! copied the worker's **public** oof hash from the version (a lazy checker who copies it is
//! not caught, as with merge auditors copying a challenger's evidence); that an unsampled trial
//! is honest (a fabricator escapes with probability (1 − recheck)^trials); that a colluding
//! majority of one draw is honest; that the coordinator's choice of configs, best unit,
//! knowledge base or report is good (recorded, not verified); nor that a held-out score is
//! true beyond what the lower median of one evaluator draw resists (a colluding majority of
//! the draw sets it).
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod audit;
pub mod error;
pub mod handler;
pub mod hooks;
pub mod msgs;
pub mod params;
pub mod research;
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
            "/magnet.jobs.v1/research" => id_of(data)
                .and_then(|id| research::view(ctx.store, id))
                .and_then(|v| json(&v)),
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
    fn merged_rounds(&self, ctx: &mut Ctx, job: u64) -> Result<Option<u64>, ModuleError> {
        Ok(state::job(ctx.store(), job)?.map(|j| j.rounds))
    }
    fn lineage_head(&self, ctx: &mut Ctx, job: u64) -> Result<Option<[u8; 32]>, ModuleError> {
        Ok(state::job(ctx.store(), job)?.and_then(|j| {
            let b = hex::decode(j.head.trim()).ok()?;
            <[u8; 32]>::try_from(b.as_slice()).ok()
        }))
    }
}
