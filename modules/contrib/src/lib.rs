//! # magnet-contrib — commit-reveal contribution proofs with evaluator consensus
//!
//! Per epoch `e` (start `S`, windows in Params as offsets from `S`):
//!
//! | window | message (node-signed) | what happens |
//! |---|---|---|
//! | `[S, S+c)` | `MsgCommit{epoch, job, commitment}` | one commitment per (epoch, job, operator); the job must be open; at most `max_contributions_per_operator` per operator per epoch |
//! | `[S+c, S+c+r)` | `MsgReveal{epoch, job, result, nonce}` | hash checked; a mismatch is slashed |
//! | boundary | — | unrevealed commitments slashed; evaluators drawn |
//! | `[…, +ec)` | `MsgEvalCommit{…, contributor, commitment}` | assigned evaluators only |
//! | `[…, +er)` | `MsgEvalReveal{…, contributor, score, nonce}` | hash checked; mismatch slashed |
//! | boundary | — | median, deviation slashes, `q` and `c` fixed; challenge window opens |
//!
//! The commitment binds a domain tag, the chain id, the epoch, the job and the committer's
//! address (see [`msgs`]), so a copied commitment cannot be revealed by the copier and a
//! replayed reveal cannot match anyone else's commitment: both earn nothing and a copier who
//! commits is slashed for the mismatch or the missing reveal. A result carries no score:
//! quality comes only from evaluators, as the lower median of their revealed scores. Nor does
//! it carry its compute: a training result names accepted Δs of the committer's node in the
//! job's lineage (each claimable once; a bad entry refuses the reveal), and its compute is
//! their signed steps × the job's parameters (ADR 0088); other kinds get compute 0.
//!
//! Queries (JSON): `/magnet.contrib.v1/params`, `/magnet.contrib.v1/epoch` (data: epoch) →
//! phase (with the evaluation seed `eval_seed`, hex, once the reveal window has closed) and
//! contributions, `/magnet.contrib.v1/assignments` (data: `epoch/job/contributor`).
//!
//! # Security
//! Guarantees: windows are enforced in block time with their own error codes; double
//! commits and double reveals are rejected; evaluator draws are stake-weighted with
//! replacement, so splitting a bond into k identities gains no slots in expectation or in
//! distribution; the median needs `min_evaluations` slots; everything is deterministic.
//! Does not guarantee: that a majority of evaluator stake is honest (the median is only as
//! good as the evaluators; deviation slashing and notary challenges raise the cost of
//! collusion), nor that the block-hash seed is unbiasable by the proposer of the closing block.
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
use magnet_core::{Address, Ctx, Module, ModuleError, Offence, QueryCtx, VerifiedWork};
use state::{Phase, Status};

/// The contrib module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct ContribModule;

/// Parse a dispute target `contrib/<epoch>/<job>/<operator>`.
pub fn parse_target(target: &str) -> Result<(u64, u64, Address), Error> {
    let bad = |why: &str| Error::NotDisputable {
        target: target.to_string(),
        why: why.to_string(),
    };
    let parts: Vec<&str> = target.split('/').collect();
    if parts.len() != 4 || parts[0] != "contrib" {
        return Err(bad("expected contrib/<epoch>/<job>/<operator>"));
    }
    let e = parts[1].parse().map_err(|_| bad("epoch is not a number"))?;
    let j = parts[2].parse().map_err(|_| bad("job is not a number"))?;
    let a = parts[3]
        .parse()
        .map_err(|_| bad("operator is not a magnet1… address"))?;
    Ok((e, j, a))
}

impl Module for ContribModule {
    fn name(&self) -> &'static str {
        "contrib"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
    fn begin_block(&self, ctx: &mut Ctx) -> Result<(), ModuleError> {
        hooks::begin_block(ctx)
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        let text = String::from_utf8_lossy(data).trim().to_string();
        Some(match path {
            "/magnet.contrib.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.contrib.v1/epoch" => text
                .parse::<u64>()
                .map_err(|_| ModuleError::invalid_request("data must be an epoch number"))
                .and_then(|e| {
                    let ph = state::phase(ctx.store, e)?;
                    let cs = state::contributions(ctx.store, e)?;
                    json(&serde_json::json!({ "phase": ph, "contributions": cs }))
                }),
            "/magnet.contrib.v1/assignments" => parse_target(&format!("contrib/{text}"))
                .map_err(ModuleError::from)
                .and_then(|(e, j, a)| {
                    let xs = state::assignments(ctx.store, e, j, &a)?;
                    json(&xs)
                }),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Contributions for ContribModule {
    fn challenge_closes_at(&self, ctx: &mut Ctx, epoch: u64) -> Result<Option<u64>, ModuleError> {
        Ok(match state::phase(ctx.store(), epoch)? {
            None => Some(0),
            Some(p) => match p.phase {
                Phase::Final { closes_at } => Some(closes_at),
                _ => None,
            },
        })
    }
    fn verified(&self, ctx: &mut Ctx, epoch: u64) -> Result<Vec<VerifiedWork>, ModuleError> {
        Ok(verified_work(state::contributions(ctx.store(), epoch)?))
    }
    fn verified_for_job(
        &self,
        ctx: &mut Ctx,
        epoch: u64,
        job: u64,
    ) -> Result<Vec<VerifiedWork>, ModuleError> {
        Ok(verified_work(state::job_contributions(ctx, epoch, job)?))
    }
    fn open_disputes(&self, ctx: &mut Ctx, epoch: u64) -> Result<u64, ModuleError> {
        Ok(state::contributions(ctx.store(), epoch)?
            .iter()
            .filter(|c| c.disputed)
            .count() as u64)
    }
}

/// The verified (scored or unscored) ones of `cs`, as the jobs module sees them.
fn verified_work(cs: Vec<state::Contribution>) -> Vec<VerifiedWork> {
    cs.into_iter()
        .filter(|c| matches!(c.status, Status::Scored | Status::Unscored))
        .map(|c| VerifiedWork {
            epoch: c.epoch,
            job: c.job,
            operator: c.operator,
            kind: c.work.as_ref().map(|w| w.kind.clone()).unwrap_or_default(),
            quality: c.quality,
            compute: c.compute,
            good_evaluators: c.good_evaluators,
            invalidated: c.invalidated,
        })
        .collect()
}

impl magnet_core::Disputable for ContribModule {
    fn open_dispute(&self, ctx: &mut Ctx, target: &str) -> Result<(Address, Offence), ModuleError> {
        let (e, j, op) = parse_target(target)?;
        let bad = |why: &str| -> ModuleError {
            Error::NotDisputable {
                target: target.to_string(),
                why: why.to_string(),
            }
            .into()
        };
        let mut c =
            state::contribution(ctx, e, j, &op)?.ok_or_else(|| bad("no such contribution"))?;
        let closes = match state::phase(ctx.store(), e)?.map(|p| p.phase) {
            Some(Phase::Final { closes_at }) => closes_at,
            _ => return Err(bad("its evaluation has not finished")),
        };
        if ctx.block.time_secs >= closes {
            return Err(bad("its challenge window has closed"));
        }
        if c.status != Status::Scored {
            return Err(bad("only scored contributions earn and can be challenged"));
        }
        if c.disputed || c.invalidated {
            return Err(bad("already disputed or invalidated"));
        }
        c.disputed = true;
        state::set_contribution(ctx, &c)?;
        Ok((op, Offence::FailedChallenge))
    }
    fn close_dispute(&self, ctx: &mut Ctx, target: &str, upheld: bool) -> Result<(), ModuleError> {
        let (e, j, op) = parse_target(target)?;
        let Some(mut c) = state::contribution(ctx, e, j, &op)? else {
            return Ok(());
        };
        c.disputed = false;
        c.invalidated |= upheld;
        state::set_contribution(ctx, &c)?;
        Ok(())
    }
}
