//! Every jobs storage key.
//!
//! * `jobs/params` → [`Params`] (JSON)
//! * `jobs/next_id` → next job id (u64 borsh), from 1 (job 0 in contrib is work outside any job)
//! * `jobs/job/<id:8 BE>` → [`Job`] (borsh)
//! * `jobs/round/<id:8 BE><round:8 BE>` → [`Round`] (borsh): the model lineage
//! * `jobs/share/<id:8 BE><operator:20>` → lineage share Σ accepted weights (u128 borsh)
//! * `jobs/queue/<deadline:8 BE><id:8 BE>` → (): jobs to settle
//!
//! Budgets sit in `Address::module("jobs")` until settlement or cancellation.

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"jobs/params";
/// Next id.
pub const NEXT_ID_KEY: &[u8] = b"jobs/next_id";
/// Jobs.
pub const JOB_PREFIX: &[u8] = b"jobs/job/";
/// Rounds.
pub const ROUND_PREFIX: &[u8] = b"jobs/round/";
/// Lineage shares.
pub const SHARE_PREFIX: &[u8] = b"jobs/share/";
/// Deadline queue.
pub const QUEUE_PREFIX: &[u8] = b"jobs/queue/";

/// Budget escrow.
pub fn escrow() -> Address {
    Address::module("jobs")
}

/// Job status.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Accepting work.
    Open,
    /// Deadline passed; waiting for the epochs through `through_epoch` to be final.
    Settling {
        /// Last epoch whose contributions count.
        through_epoch: u64,
    },
    /// Budget paid out.
    Settled,
    /// Cancelled; budget refunded.
    Cancelled,
}

/// A research job.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Job {
    /// Id.
    pub id: u64,
    /// Creator.
    pub creator: Address,
    /// Domain.
    pub domain: String,
    /// Evaluation set hash (hex).
    pub eval_set_hash: String,
    /// Base checkpoint hash (hex).
    pub base_checkpoint: String,
    /// Budget.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub budget: u128,
    /// Deadline (block time).
    pub deadline: u64,
    /// Epoch of creation.
    pub created_epoch: u64,
    /// Status.
    pub status: Status,
    /// Rounds recorded.
    pub rounds: u64,
    /// Latest merged checkpoint hash (hex; the base checkpoint before any round).
    pub head: String,
}

/// One DiLoCo round.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Round {
    /// Job.
    pub job: u64,
    /// Round number (from 0).
    pub round: u64,
    /// Leader's operator.
    pub leader: Address,
    /// Base hash (hex).
    pub base_hash: String,
    /// Merged hash (hex).
    pub merged_hash: String,
    /// Accepted contributors and weights.
    pub accepted: Vec<(Address, u64)>,
    /// Rejected contributors and why.
    pub rejected: Vec<(Address, String)>,
    /// Height recorded.
    pub height: u64,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// A job.
pub fn job(store: &dyn KvStore, id: u64) -> Result<Option<Job>, ModuleError> {
    let k = [JOB_PREFIX, &id.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write a job.
pub fn set_job(ctx: &mut Ctx, j: &Job) -> Result<(), ModuleError> {
    ctx.set_borsh(&[JOB_PREFIX, &j.id.to_be_bytes()].concat(), j)?;
    Ok(())
}

/// All jobs.
pub fn jobs(store: &dyn KvStore) -> Result<Vec<Job>, ModuleError> {
    magnet_core::store::scan_prefix(store, JOB_PREFIX)
        .into_iter()
        .map(|(k, v)| Job::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string())))
        .collect()
}

/// Rounds of a job (its lineage), in order.
pub fn rounds(store: &dyn KvStore, id: u64) -> Result<Vec<Round>, ModuleError> {
    magnet_core::store::scan_prefix(store, &[ROUND_PREFIX, &id.to_be_bytes()].concat())
        .into_iter()
        .map(|(k, v)| {
            Round::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

/// Lineage shares of a job, by operator.
pub fn shares(store: &dyn KvStore, id: u64) -> Result<Vec<(Address, u128)>, ModuleError> {
    let p = [SHARE_PREFIX, &id.to_be_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[p.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let n =
                u128::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            Ok((a, n))
        })
        .collect()
}
