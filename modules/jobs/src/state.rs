//! Every jobs storage key.
//!
//! * `jobs/params` → [`Params`] (JSON)
//! * `jobs/next_id` → next job id (u64 borsh), from 1 (job 0 in contrib is work outside any job)
//! * `jobs/job/<id:8 BE>` → [`Job`] (borsh)
//! * `jobs/round/<id:8 BE><round:8 BE>` → [`Round`] (borsh): the model lineage
//! * `jobs/share/<id:8 BE><operator:20>` → lineage share Σ accepted weights (u128 borsh)
//! * `jobs/queue/<deadline:8 BE><id:8 BE>` → (): jobs to settle
//! * `jobs/sched/<height:8 BE><id:8 BE>` → round (u64 borsh): a training job's next round
//!   starts at that height; its [`Election`] is snapshotted in that block's `end_block`
//! * `jobs/election/<id:8 BE><round:8 BE>` → [`Election`] (borsh): who may lead the round
//! * `jobs/delta/<id:8 BE><delta hash:32>` → [`DeltaRecord`] (borsh): every accepted Δ, so a
//!   Δ is merged at most once per job and contributions can name it
//! * `jobs/merged/<id:8 BE><checkpoint hash:32>` → lineage position (u64 borsh): the number of
//!   merges behind that checkpoint (the base checkpoint is 0); staleness is read from it
//! * `jobs/recorded/<id:8 BE><round:8 BE>` → (): rounds recorded in this block, sampled for a
//!   merge audit (and deleted) in this block's `end_block`, where the block hash is known
//! * `jobs/audit/<id:8 BE><round:8 BE>` → [`Audit`] (borsh): a round's drawn auditors, its
//!   challenge (if any), the sealed and revealed verdicts and the outcome (ADR 0089, 0091)
//! * `jobs/verdict_due/<height:8 BE><id:8 BE><round:8 BE>` → (): a challenge to resolve in
//!   that block's `end_block` (at the end of its reveal period, or once every drawn auditor
//!   revealed)
//! * `jobs/research/<id:8 BE>` → [`crate::research::Research`] (borsh): a research job's spec,
//!   its drawn coordinator, its trial price and its search's progress (ADR 0111). Kept beside
//!   the [`Job`] so that job records keep their layout.
//! * `jobs/rversion/<id:8 BE><version:4 BE>` → [`crate::research::Version`] (borsh)
//! * `jobs/trial/<id:8 BE><unit hash:32>` → [`crate::research::Trial`] (borsh): a recorded
//!   trial, its check and whether it was voided
//! * `jobs/trial_new/<id:8 BE><unit hash:32>` → (): trials recorded in this block, sampled for a
//!   re-check (and deleted) in this block's `end_block`
//! * `jobs/check_due/<height:8 BE><id:8 BE><unit hash:32>` → (): a trial check to resolve in
//!   that block's `end_block`
//! * `jobs/check_credit/<id:8 BE><operator:20>` → u64 (borsh): majority checks credited to a
//!   checker's operator, paid one slot each at settlement
//! * `jobs/dispute/<id:8 BE><unit hash:32>` → [`crate::research::Dispute`] (borsh): a trial
//!   the coordinator disputed (ADR 0114), its check (unless it rides on the live record's) and
//!   its outcome. A new key space, so trial and research records keep their layout.
//! * `jobs/dispute_new/<id:8 BE><unit hash:32>` → (): disputes filed in this block, drawn a
//!   check (and deleted) in this block's `end_block`
//! * `jobs/heldout/<id:8 BE>` → [`crate::research::HeldOut`] (borsh): a research job's
//!   held-out evaluation terms (fixed at creation), its evaluator draw at the test reveal, the
//!   sealed and revealed scores and the result (ADR 0111 §6)
//! * `jobs/heldout_due/<height:8 BE><id:8 BE>` → (): a held-out evaluation to resolve in that
//!   block's `end_block`
//!
//! Budgets sit in `Address::module("jobs")` until settlement or cancellation; challenge bonds
//! sit in `Address::module("jobs_audit")` until resolution.

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
/// Round-start schedule.
pub const SCHED_PREFIX: &[u8] = b"jobs/sched/";
/// Election snapshots.
pub const ELECTION_PREFIX: &[u8] = b"jobs/election/";
/// Accepted Δs.
pub const DELTA_PREFIX: &[u8] = b"jobs/delta/";
/// Lineage positions of merged checkpoints.
pub const MERGED_PREFIX: &[u8] = b"jobs/merged/";
/// Rounds recorded in the current block, to sample in `end_block`.
pub const RECORDED_PREFIX: &[u8] = b"jobs/recorded/";
/// Merge audits.
pub const AUDIT_PREFIX: &[u8] = b"jobs/audit/";
/// Challenges due for resolution, by height.
pub const VERDICT_DUE_PREFIX: &[u8] = b"jobs/verdict_due/";

/// Research jobs.
pub const RESEARCH_PREFIX: &[u8] = b"jobs/research/";
/// Research versions.
pub const RVERSION_PREFIX: &[u8] = b"jobs/rversion/";
/// Recorded trials.
pub const TRIAL_PREFIX: &[u8] = b"jobs/trial/";
/// Trials recorded in the current block, to sample in `end_block`.
pub const TRIAL_NEW_PREFIX: &[u8] = b"jobs/trial_new/";
/// Trial checks due for resolution, by height.
pub const CHECK_DUE_PREFIX: &[u8] = b"jobs/check_due/";
/// Majority checks credited per checker operator.
pub const CHECK_CREDIT_PREFIX: &[u8] = b"jobs/check_credit/";
/// Disputed trials (ADR 0114), by job and unit.
pub const DISPUTE_PREFIX: &[u8] = b"jobs/dispute/";
/// Disputes filed in the current block, to draw checkers for in `end_block`.
pub const DISPUTE_NEW_PREFIX: &[u8] = b"jobs/dispute_new/";
/// Held-out evaluations of research jobs (ADR 0111 §6), by job.
pub const HELDOUT_PREFIX: &[u8] = b"jobs/heldout/";
/// Held-out evaluations due for resolution, by height.
pub const HELDOUT_DUE_PREFIX: &[u8] = b"jobs/heldout_due/";

/// How a training job's DiLoCo rounds run (from `MsgCreateJob.training`).
#[derive(
    Clone,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct TrainingSpec {
    /// H: inner steps per round.
    pub inner_steps: u32,
    /// Sequences per inner step.
    pub batch_size: u32,
    /// Tokens per sequence.
    pub seq_len: u32,
    /// Model parameters.
    pub params: u64,
    /// Height at which round 0 starts.
    pub first_height: u64,
    /// Blocks between round starts.
    pub blocks_per_round: u64,
    /// Leader rule: `hash` or `round_robin`.
    pub leader_rule: String,
    /// Most merges a Δ's base may be behind the round's base.
    pub max_staleness: u32,
    /// Weight multiplier per merge of staleness (basis points).
    pub stale_decay_bps: u32,
    /// The outer step leaders merge with and auditors re-check with (ADR 0091).
    #[serde(default)]
    pub outer: OuterPolicy,
}

/// The DiLoCo outer step of a training job: `magnet_diloco::MergePolicy` less the staleness
/// rule (which [`TrainingSpec`] carries). Integers only; the defaults are
/// `MergePolicy::default()`'s.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct OuterPolicy {
    /// Outer learning rate η in thousandths (1..=10000; default 700).
    pub lr_permille: u32,
    /// Outer Nesterov momentum μ in thousandths (0..=999; default 900).
    pub momentum_permille: u32,
    /// A Δ whose L2 norm exceeds this × the median norm is rejected (≥ 1000; default 4000).
    pub outlier_factor_permille: u32,
    /// Fewer accepted contributions than this → no merge (1..=256; default 1).
    pub min_contributions: u32,
    /// 0: exact fp32 outer step; N > 0: int8 step with one scale per N values (default 0).
    pub update_chunk: u32,
}

impl Default for OuterPolicy {
    fn default() -> Self {
        OuterPolicy {
            lr_permille: 700,
            momentum_permille: 900,
            outlier_factor_permille: 4000,
            min_contributions: 1,
            update_chunk: 0,
        }
    }
}

impl TrainingSpec {
    /// Start height of `round` (saturating).
    pub fn start_height(&self, round: u64) -> u64 {
        self.first_height
            .saturating_add(round.saturating_mul(self.blocks_per_round))
    }

    /// The claim bound of one Δ.
    pub fn bound(&self) -> magnet_rounds::ClaimBound {
        magnet_rounds::ClaimBound {
            inner_steps: u64::from(self.inner_steps),
            batch_size: u64::from(self.batch_size),
            seq_len: u64::from(self.seq_len),
        }
    }
}

/// Who may lead one round: the live nodes at the round's start height, sorted by node id, and
/// that block's hash (the election seed).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Election {
    /// Round.
    pub round: u64,
    /// Start height.
    pub height: u64,
    /// Hash of the block at `height` (hex in JSON).
    #[serde(with = "magnet_core::coins::hex32")]
    pub block_hash: [u8; 32],
    /// Leader rule.
    pub rule: String,
    /// Eligible node ids, sorted.
    pub members: Vec<String>,
    /// The elected leader's node id (empty when nobody was live).
    pub leader: String,
}

/// An accepted Δ.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct DeltaRecord {
    /// Round that merged it.
    pub round: u64,
    /// Producer's node account.
    pub node: Address,
    /// Producer's operator when recorded.
    pub operator: Address,
    /// Claimed (signed, bounded) steps.
    pub steps: u64,
    /// Claimed tokens.
    pub tokens: u64,
    /// Merge weight.
    pub weight_ppm: u32,
}

/// Budget escrow.
pub fn escrow() -> Address {
    Address::module("jobs")
}

/// Challenge-bond escrow.
pub fn audit_escrow() -> Address {
    Address::module("jobs_audit")
}

/// How a round's merge audit ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// Unchallenged so far, or challenged and waiting for verdicts.
    Open,
    /// A majority of verdicts found the merge fraudulent: leader slashed, head rolled back.
    Upheld,
    /// The verdicts did not find fraud: the challenger lost its bond.
    Rejected,
    /// No auditor gave a verdict: the bond was returned, the round stands.
    NoVerdict,
    /// An earlier round was upheld as fraudulent, so this round left the lineage (an open
    /// challenge's bond was returned).
    Dropped,
}

/// One drawn auditor's sealed verdict, and what it revealed (ADR 0091).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Verdict {
    /// Auditor node id.
    pub auditor: String,
    /// The commitment (hex).
    pub commitment: String,
    /// Height committed.
    pub committed_at: u64,
    /// The revealed verdict (true: the merge does not re-check); `None` until revealed.
    pub fraud: Option<bool>,
    /// The revealed recomputed merged hash (hex; empty until revealed).
    pub recomputed_hash: String,
}

/// A challenge of a round's merge.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RoundChallenge {
    /// Who filed it (and posted the bond).
    pub challenger: Address,
    /// Bond (umag) in [`audit_escrow`].
    #[serde(with = "magnet_core::coins::u128_string")]
    pub bond: u128,
    /// The merged hash the challenger recomputed (hex; zeros when the inputs were unavailable).
    pub recomputed_hash: String,
    /// Which part of the record disagreed.
    pub field: String,
    /// Height filed.
    pub height: u64,
    /// Last height a drawn auditor may commit its sealed verdict.
    pub commits_until: u64,
    /// Last height a committed verdict may be revealed (the reveal period starts after
    /// `commits_until`, or as soon as every drawn auditor committed).
    pub reveals_until: u64,
    /// Sealed verdicts in commit order (at most one per drawn auditor).
    pub verdicts: Vec<Verdict>,
}

/// A round's merge audit: who re-checks it, and its challenge.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Audit {
    /// Job.
    pub job: u64,
    /// Round.
    pub round: u64,
    /// Leader's operator (the party a fraudulent merge slashes).
    pub leader: Address,
    /// Leader's node id (never drawn as its own auditor).
    pub leader_node_id: String,
    /// Height the auditors were drawn at (the recording block, or the challenge's block when
    /// the round was not sampled).
    pub drawn_at: u64,
    /// True when the round was sampled at recording; false when the draw came with a challenge.
    pub sampled: bool,
    /// Drawn auditor node ids, in draw order.
    pub auditors: Vec<String>,
    /// Their operators at the draw, in the same order (who a missing or minority verdict
    /// slashes).
    pub auditor_operators: Vec<Address>,
    /// Last height a challenge may be filed.
    pub window_ends: u64,
    /// The challenge, once filed.
    pub challenge: Option<RoundChallenge>,
    /// Outcome.
    pub outcome: AuditOutcome,
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
    /// Evaluation set hash (hex). For a BitNet training job, the hash of its whole corpus (every
    /// training token, then the validation split); evaluators refuse to score on other data
    /// (ADR 0090).
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
    /// How its DiLoCo rounds run; `None` for a job without training rounds (no round can be
    /// recorded for it and no training contribution can name it).
    pub training: Option<TrainingSpec>,
}

/// An accepted Δ in a round record.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RoundEntry {
    /// Producer's node account.
    pub node: Address,
    /// Producer's operator.
    pub operator: Address,
    /// Δ hash (hex).
    pub delta_hash: String,
    /// Base the Δ was trained from (hex).
    pub base_hash: String,
    /// Merges between that base and the round's base.
    pub staleness: u32,
    /// Signed steps.
    pub steps: u64,
    /// Signed tokens.
    pub tokens: u64,
    /// Merge weight (ppm; recomputed by the chain from the claims).
    pub weight_ppm: u32,
    /// The producer's claim signature (hex).
    pub signature: String,
    /// p2p content address of the compressed Δ (hex; SHA-256 of its wire bytes; not signed —
    /// a wrong one makes the Δ unavailable to auditors, which counts against the leader).
    pub content_address: String,
}

/// A rejected Δ in a round record.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct RejectedEntry {
    /// Producer's node account.
    pub node: Address,
    /// Δ hash it declared (hex).
    pub delta_hash: String,
    /// Why the leader rejected it.
    pub reason: String,
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
    /// Leader's node id.
    pub leader_node_id: String,
    /// Accepted Δs with their signed claims and weights, sorted by producer node id.
    pub accepted: Vec<RoundEntry>,
    /// Rejected Δs and why.
    pub rejected: Vec<RejectedEntry>,
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

/// The election of `round` of job `id`, if its start height has been reached.
pub fn election(store: &dyn KvStore, id: u64, round: u64) -> Result<Option<Election>, ModuleError> {
    let k = [ELECTION_PREFIX, &id.to_be_bytes(), &round.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// The accepted Δ `delta` of job `id`.
pub fn delta(
    store: &dyn KvStore,
    id: u64,
    delta: &[u8; 32],
) -> Result<Option<DeltaRecord>, ModuleError> {
    let k = [DELTA_PREFIX, &id.to_be_bytes(), delta].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Lineage position (merges behind it) of checkpoint `hash` of job `id`.
pub fn position(store: &dyn KvStore, id: u64, hash: &[u8; 32]) -> Result<Option<u64>, ModuleError> {
    let k = [MERGED_PREFIX, &id.to_be_bytes(), hash].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Recorded round `round` of job `id`.
pub fn round(store: &dyn KvStore, id: u64, round: u64) -> Result<Option<Round>, ModuleError> {
    let k = [ROUND_PREFIX, &id.to_be_bytes(), &round.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// The audit of round `round` of job `id`.
pub fn audit(store: &dyn KvStore, id: u64, round: u64) -> Result<Option<Audit>, ModuleError> {
    let k = [AUDIT_PREFIX, &id.to_be_bytes(), &round.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write an audit.
pub fn set_audit(ctx: &mut Ctx, a: &Audit) -> Result<(), ModuleError> {
    ctx.set_borsh(
        &[AUDIT_PREFIX, &a.job.to_be_bytes(), &a.round.to_be_bytes()].concat(),
        a,
    )?;
    Ok(())
}

/// Every audit of job `id` (every job when `None`), by job then round.
pub fn audits(store: &dyn KvStore, id: Option<u64>) -> Result<Vec<Audit>, ModuleError> {
    let p = match id {
        Some(id) => [AUDIT_PREFIX, &id.to_be_bytes()].concat(),
        None => AUDIT_PREFIX.to_vec(),
    };
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| {
            Audit::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}
