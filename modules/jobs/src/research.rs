//! Research jobs on chain (ADR 0111).
//!
//! * **Creation.** `MsgCreateJob` with a [`ResearchSpec`] names the domain, the data set (the
//!   content address of a **confirmed** data record), the target / context columns, the trial
//!   budget (≤ `max_trial_budget`), seed, folds, the recheck rate (≥ `min_recheck_ppm`) and a
//!   commitment to the sealed test split ([`crate::msgs::test_commitment`]). The coordinator is
//!   drawn in the creating block from the live nodes whose tier does `research`
//!   (`orchestrator`), stake-weighted by the block hash ([`draw`]). The escrow is priced once,
//!   at creation: `research_trials_ppm` of it is the trial pool, cut into `trial_budget +
//!   check_slots` equal slots ([`price`]); `research_quality_ppm` is the quality pool.
//! * **Versions.** `MsgRecordResearchVersion` (coordinator's node key) appends version
//!   `0, 1, …` with trials; each trial is signed by its worker's registered node key
//!   ([`magnet_rounds::TrialClaim`]); a unit is recorded once per job unless its entry was voided
//!   (and its check resolved); live (non-voided) trials never exceed the trial budget; nothing
//!   follows a `final` version.
//! * **Re-checks.** In the `end_block` of the recording block each new trial is sampled with
//!   probability `recheck_ppm` by that block's hash ([`sampled`]) and gets `checkers_per_trial`
//!   checkers drawn stake-weighted from the live nodes whose tier does `training` or
//!   `research`, never its worker, never the coordinator (fewer → all that exist; none → the
//!   check ends `no_verdict` at once). Checkers seal re-runs (`MsgTrialCheckCommit`, within
//!   `check_commit_blocks`) and open them (`MsgTrialCheckReveal`, within
//!   `check_reveal_blocks` more; early once all committed). At resolution, on revealed checks
//!   only: a strict majority whose oof hash differs from the entry's → `fabricated`: the
//!   worker's operator is slashed `fabricated_trial` and **every** trial of that worker in the
//!   job is voided (unpaid, the units recordable again); otherwise the entry stands. A drawn
//!   checker with no revealed check is slashed `no_reveal`, one that revealed against a strict
//!   majority `audit_deviation`; no reveal at all decides nothing.
//! * **Disputes** (ADR 0114). `MsgDisputeTrial` (coordinator's node key, while the job is
//!   open) brings a worker-signed trial whose off-chain re-run did not match to chain. It is
//!   held apart as a [`Dispute`] (not live, not paid) and checked in the filing block's
//!   `end_block` regardless of sampling, by the same draw, messages and rules as a sampled
//!   check (on the unit's live record instead when the entry is that record). A strict
//!   majority against the entry convicts the worker as a `fabricated` check does; a strict
//!   majority for it slashes the coordinator `audit_deviation` and makes the entry a live trial
//!   if the budget has room; a tie or silence decides nothing. A unit has at most one open
//!   check: a dispute is refused while its record's check or another dispute is open, a
//!   version while the unit is disputed.
//! * **Test split.** After the final version the creator has `test_reveal_blocks` to open the
//!   sealed test split (`MsgRevealTestSplit`); a reveal that does not hash to the commitment is
//!   refused and changes nothing.
//! * **Held-out evaluation** (ADR 0111 §6). A valid test reveal draws `heldout_evaluators`
//!   evaluators (the checker pool, never the coordinator; terms fixed at creation in
//!   [`HeldOut`]). They seal `MsgHeldOutCommit` ([`crate::msgs::heldout_commitment`]) and open
//!   `MsgHeldOutReveal` (final and baseline test loss, or `unavailable`) in the check periods.
//!   Revealed evaluators share `heldout_evaluator_ppm` of the quality pool; silent ones are
//!   unpaid and slashed `no_reveal`. The rest ([`heldout_split`]): a strict majority
//!   `unavailable` → the coordinator (forfeit); else the lower medians' improvement pays the
//!   coordinator `× min(1, improvement / target)` and the creator the rest; no reveal → the
//!   creator. Settlement waits for it.
//! * **Settlement** (past the deadline, once no check is open and the test reveal period is
//!   over or used): each live trial pays its worker's operator one slot; each revealed check in
//!   a strict majority is credited to its checker's operator at resolution and pays one slot
//!   (at most `check_slots` credits in all, in resolution order). The
//!   quality pool: no final version → back to the creator; final but no valid test reveal →
//!   all of it to the coordinator (the creator's forfeit, ADR 0111); a valid reveal → by the
//!   held-out evaluation below. Unused slots return to the
//!   creator; the floor dust of the slot price and any share outside both pools go to the
//!   community pool.

use crate::error::Error;
use crate::handler::hexs;
use crate::state::{self, escrow, Job, Status};
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::math::ppm_of;
use magnet_core::{community_pool, Address, Coins, Ctx, Event, KvStore, ModuleError, Offence};
use std::collections::BTreeMap;

/// Domain of the coordinator draw.
pub const COORDINATOR_DOMAIN: &[u8] = b"MAGNET/jobs/v1/coordinator-draw";
/// Domain of the checker draw.
pub const CHECKER_DOMAIN: &[u8] = b"MAGNET/jobs/v1/trial-check-draw";
/// Domain of the trial sample.
pub const TRIAL_SAMPLE_DOMAIN: &[u8] = b"MAGNET/jobs/v1/trial-sample";

/// What a research job searches (from `MsgCreateJob.research`).
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
pub struct ResearchSpec {
    /// `tabular`, `timeseries` or `bitnet-lm`.
    pub domain: String,
    /// Content address of the data set (hex; a confirmed data record).
    pub data_address: String,
    /// Target column.
    pub target: String,
    /// Context column(s) (may be empty).
    pub context: String,
    /// Most live trials.
    pub trial_budget: u32,
    /// Search seed.
    pub seed: u64,
    /// CV folds.
    pub folds: u32,
    /// Commitment to the sealed test split (hex).
    pub test_commitment: String,
    /// Share of trials re-checked (ppm).
    pub recheck_ppm: u32,
}

/// A trial entry of a version (stateless checks done).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrialInput {
    /// Unit hash.
    pub unit_hash: [u8; 32],
    /// Worker's node key address.
    pub worker: Address,
    /// Out-of-fold predictions hash.
    pub oof_hash: [u8; 32],
    /// CV loss × 10^6.
    pub cv_loss_micro: u64,
    /// 64-byte worker signature.
    pub signature: Vec<u8>,
}

impl TrialInput {
    /// The claim its worker signed for `job` on chain `chain_id`.
    pub fn claim(&self, chain_id: &str, job: u64) -> magnet_rounds::TrialClaim {
        magnet_rounds::TrialClaim {
            chain_id: chain_id.to_string(),
            job,
            unit_hash: self.unit_hash,
            oof_hash: self.oof_hash,
            cv_loss_micro: self.cv_loss_micro,
        }
    }
}

/// A research job's state beside its [`Job`].
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Research {
    /// Job.
    pub job: u64,
    /// Spec.
    pub spec: ResearchSpec,
    /// Coordinator node id.
    pub coordinator: String,
    /// Coordinator's operator (paid the quality pool).
    pub coordinator_operator: Address,
    /// Height the coordinator was drawn at.
    pub drawn_at: u64,
    /// Trial pool (umag), fixed at creation.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub trials_pool: u128,
    /// Quality pool (umag), fixed at creation.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub quality_pool: u128,
    /// Paid checks at most (⌈trial_budget × recheck × checkers⌉).
    pub check_slots: u64,
    /// One slot's price (umag): trials_pool / (trial_budget + check_slots).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub slot_price: u128,
    /// Versions recorded.
    pub versions: u32,
    /// Live (non-voided) trials.
    pub live_trials: u32,
    /// Checks drawn and not yet resolved (settlement waits for 0).
    pub open_checks: u32,
    /// Majority checks credited so far (at most `check_slots`; credited at resolution, in
    /// resolution order, so a re-recorded unit never loses its earlier checkers' credit).
    pub checks_credited: u64,
    /// Height of the final version.
    pub final_at: Option<u64>,
    /// Last height the creator may reveal the test split (after the final version).
    pub test_reveals_until: Option<u64>,
    /// Best unit so far (hex; empty: none).
    pub best_unit_hash: String,
    /// Knowledge base content address (hex; empty: none).
    pub kb_address: String,
    /// Report content address (hex; empty: none).
    pub report_address: String,
    /// The revealed test split's content address (hex), once validly revealed.
    pub test_address: Option<String>,
    /// What settlement paid, once settled.
    pub settlement: Option<Settlement>,
}

/// What a research job's settlement paid (umag).
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Settlement {
    /// To trial workers.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub workers: u128,
    /// To majority checkers.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub checkers: u128,
    /// To the coordinator.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub coordinator: u128,
    /// Back to the creator.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub creator: u128,
    /// To the community pool (slot dust, any share outside both pools).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub community: u128,
    /// How the quality pool went: `no_final`, `forfeit` (no valid test reveal in time, or a
    /// strict majority of held-out evaluators found the test split unavailable), `measured`
    /// (paid by held-out improvement; evaluators' pay is in the view's `heldout.result`) or
    /// `unmeasured` (no held-out score revealed).
    pub quality: String,
}

/// One recorded version.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Version {
    /// Version.
    pub version: u32,
    /// Height recorded.
    pub height: u64,
    /// Units it recorded (hex).
    pub units: Vec<String>,
    /// Best unit (hex; empty: none).
    pub best_unit_hash: String,
    /// Knowledge base (hex; empty: none).
    pub kb_address: String,
    /// Report (hex; empty: none).
    pub report_address: String,
    /// The final version.
    pub last: bool,
}

/// How a trial's check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    /// Waiting for re-runs.
    Open,
    /// The revealed re-runs did not contradict the entry: it stands.
    Agreed,
    /// A strict majority of revealed re-runs contradicted the entry: worker slashed, its
    /// trials in the job voided.
    Fabricated,
    /// No re-run revealed (or no checker to draw): nothing decided, the entry stands.
    NoVerdict,
}

/// One drawn checker's sealed re-run.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct CheckVote {
    /// Checker node id.
    pub checker: String,
    /// Commitment (hex).
    pub commitment: String,
    /// Height committed.
    pub committed_at: u64,
    /// Revealed oof hash (hex), once revealed.
    pub oof_hash: Option<String>,
    /// Revealed loss, once revealed.
    pub cv_loss_micro: Option<u64>,
    /// Revealed and on the strict majority's side at resolution (credited one slot while the
    /// job's check slots last).
    pub in_majority: bool,
}

/// A sampled trial's re-check.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Check {
    /// Height drawn.
    pub drawn_at: u64,
    /// Drawn checker node ids, in draw order.
    pub checkers: Vec<String>,
    /// Their operators at the draw.
    pub checker_operators: Vec<Address>,
    /// Last commit height.
    pub commits_until: u64,
    /// Last reveal height.
    pub reveals_until: u64,
    /// Sealed re-runs in commit order.
    pub votes: Vec<CheckVote>,
    /// Outcome.
    pub outcome: CheckOutcome,
}

/// A recorded trial.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Trial {
    /// Unit hash (hex).
    pub unit_hash: String,
    /// Version that recorded it.
    pub version: u32,
    /// Worker's node key.
    pub worker: Address,
    /// Worker's operator (paid, or slashed).
    pub worker_operator: Address,
    /// Worker's node id.
    pub worker_node_id: String,
    /// Oof hash (hex).
    pub oof_hash: String,
    /// CV loss × 10^6.
    pub cv_loss_micro: u64,
    /// Worker signature (hex).
    pub signature: String,
    /// Height recorded.
    pub height: u64,
    /// Voided by a fabrication finding (unpaid; the unit may be recorded again).
    pub voided: bool,
    /// Its re-check, when sampled.
    pub check: Option<Check>,
}

impl Trial {
    fn check_open(&self) -> bool {
        self.check
            .as_ref()
            .is_some_and(|c| c.outcome == CheckOutcome::Open)
    }
}

/// How a dispute ended (ADR 0114).
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeOutcome {
    /// Waiting for its check.
    Open,
    /// A strict majority of re-runs contradicted the entry: the worker was slashed
    /// `fabricated_trial` and its trials in the job voided.
    Upheld,
    /// The re-runs did not contradict the entry: the coordinator was slashed `audit_deviation`;
    /// the entry became a live trial if the budget allowed (`live`).
    False,
    /// No re-run revealed (or no checker to draw): nothing decided, nothing slashed; a disputed
    /// entry stays unpaid, a disputed live record stands.
    NoVerdict,
}

/// A trial the coordinator disputed (`MsgDisputeTrial`, ADR 0114): the entry as its worker
/// signed it, held apart from the live trials (not counted toward the budget, not paid) until
/// its check decides it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Dispute {
    /// Unit hash (hex).
    pub unit_hash: String,
    /// Worker's node key.
    pub worker: Address,
    /// Worker's operator (slashed, or paid when the entry becomes live).
    pub worker_operator: Address,
    /// Worker's node id.
    pub worker_node_id: String,
    /// Oof hash the worker signed (hex).
    pub oof_hash: String,
    /// CV loss × 10^6 the worker signed.
    pub cv_loss_micro: u64,
    /// Worker signature (hex).
    pub signature: String,
    /// Height filed.
    pub filed_at: u64,
    /// The entry is the unit's live record (same worker and oof hash): its check is drawn on
    /// that record (`trials[].check`) instead of `check` here.
    pub on_record: bool,
    /// Its check, when drawn and not `on_record`.
    pub check: Option<Check>,
    /// Outcome.
    pub outcome: DisputeOutcome,
    /// A false dispute's entry became a live, paid trial.
    pub live: bool,
}

impl Dispute {
    fn open(&self) -> bool {
        self.outcome == DisputeOutcome::Open
    }
}

/// Whatever holds the open check of a unit: its trial record or a dispute.
enum Subject {
    Trial(Trial),
    Dispute(Dispute),
}

impl Subject {
    fn check(&self) -> Option<&Check> {
        match self {
            Subject::Trial(t) => t.check.as_ref(),
            Subject::Dispute(d) => d.check.as_ref(),
        }
    }
    fn check_mut(&mut self) -> Option<&mut Check> {
        match self {
            Subject::Trial(t) => t.check.as_mut(),
            Subject::Dispute(d) => d.check.as_mut(),
        }
    }
    fn unit_hash(&self) -> &str {
        match self {
            Subject::Trial(t) => &t.unit_hash,
            Subject::Dispute(d) => &d.unit_hash,
        }
    }
    fn oof_hash(&self) -> &str {
        match self {
            Subject::Trial(t) => &t.oof_hash,
            Subject::Dispute(d) => &d.oof_hash,
        }
    }
    fn save(&self, ctx: &mut Ctx, job: u64, unit: &[u8; 32]) -> Result<(), ModuleError> {
        match self {
            Subject::Trial(t) => ctx.set_borsh(&trial_key(job, unit), t)?,
            Subject::Dispute(d) => ctx.set_borsh(&dispute_key(job, unit), d)?,
        }
        Ok(())
    }
}

/// The record holding unit `unit`'s open check, if any (at most one: a dispute is refused
/// while the unit's record has an open check, and a version while the unit is disputed).
fn open_subject(
    store: &dyn KvStore,
    job: u64,
    unit: &[u8; 32],
) -> Result<Option<Subject>, ModuleError> {
    if let Some(t) = trial(store, job, unit)?.filter(Trial::check_open) {
        return Ok(Some(Subject::Trial(t)));
    }
    Ok(dispute(store, job, unit)?
        .filter(|d| {
            d.check
                .as_ref()
                .is_some_and(|c| c.outcome == CheckOutcome::Open)
        })
        .map(Subject::Dispute))
}

fn seed(domain: &[u8], block_hash: &[u8; 32], job: u64, subject: &[u8], i: u64) -> u128 {
    let h = magnet_core::sha256(
        &[
            domain,
            block_hash.as_slice(),
            &job.to_be_bytes(),
            subject,
            &i.to_be_bytes(),
        ]
        .concat(),
    );
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    u128::from_be_bytes(b)
}

/// Whether trial `unit` of `job`, recorded in the block with hash `block_hash`, is re-checked:
/// `H(domain ‖ block hash ‖ job ‖ unit ‖ 0) mod 10^6 < rate_ppm`.
pub fn sampled(block_hash: &[u8; 32], job: u64, unit: &[u8; 32], rate_ppm: u64) -> bool {
    seed(TRIAL_SAMPLE_DOMAIN, block_hash, job, unit, 0) % 1_000_000 < u128::from(rate_ppm)
}

/// Draws up to `k` node ids from `nodes` (node id, bond), stake-weighted without replacement,
/// never one in `exclude`. Deterministic: `nodes` is sorted by id first; draw `i` is
/// `H(domain ‖ block hash ‖ job ‖ subject ‖ i) mod Σ weight` (a zero bond weighs 1).
pub fn draw(
    domain: &[u8],
    nodes: &[(String, u128)],
    exclude: &[&str],
    block_hash: &[u8; 32],
    job: u64,
    subject: &[u8],
    k: u32,
) -> Vec<String> {
    let mut pool: Vec<(String, u128)> = nodes
        .iter()
        .filter(|(id, _)| !exclude.contains(&id.as_str()))
        .map(|(id, b)| (id.clone(), (*b).max(1)))
        .collect();
    pool.sort();
    pool.dedup_by(|a, b| a.0 == b.0);
    let mut out = Vec::new();
    for i in 0..u64::from(k) {
        let total = pool.iter().fold(0u128, |a, (_, w)| a.saturating_add(*w));
        if total == 0 || pool.is_empty() {
            break;
        }
        let mut x = seed(domain, block_hash, job, subject, i) % total;
        let mut pick = pool.len().saturating_sub(1);
        for (j, (_, w)) in pool.iter().enumerate() {
            if x < *w {
                pick = j;
                break;
            }
            x -= *w;
        }
        out.push(pool.remove(pick).0);
    }
    out
}

/// The escrow's pricing (ADR 0111): (trial pool, quality pool, check slots, slot price). The
/// trial pool is cut into `trial_budget + check_slots` equal slots, check slots being
/// ⌈trial_budget × recheck_ppm × checkers / 10^6⌉, so every worker and checker payment fits in
/// it by construction.
pub fn price(
    budget: u128,
    trials_ppm: u64,
    quality_ppm: u64,
    trial_budget: u32,
    recheck_ppm: u32,
    checkers: u32,
) -> (u128, u128, u64, u128) {
    let trials_pool = ppm_of(budget, trials_ppm).unwrap_or(0);
    let quality_pool = ppm_of(budget, quality_ppm).unwrap_or(0);
    let n = u128::from(trial_budget) * u128::from(recheck_ppm) * u128::from(checkers);
    let check_slots = u64::try_from(n.div_ceil(1_000_000)).unwrap_or(u64::MAX);
    let slots = u128::from(trial_budget).saturating_add(u128::from(check_slots));
    let slot_price = trials_pool.checked_div(slots).unwrap_or(0);
    (trials_pool, quality_pool, check_slots, slot_price)
}

/// A research job's state.
pub fn research(store: &dyn KvStore, id: u64) -> Result<Option<Research>, ModuleError> {
    let k = [state::RESEARCH_PREFIX, &id.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

fn set_research(ctx: &mut Ctx, r: &Research) -> Result<(), ModuleError> {
    ctx.set_borsh(&[state::RESEARCH_PREFIX, &r.job.to_be_bytes()].concat(), r)?;
    Ok(())
}

fn trial_key(job: u64, unit: &[u8; 32]) -> Vec<u8> {
    [state::TRIAL_PREFIX, &job.to_be_bytes(), unit].concat()
}

/// Trial `unit` of `job`.
pub fn trial(store: &dyn KvStore, job: u64, unit: &[u8; 32]) -> Result<Option<Trial>, ModuleError> {
    let k = trial_key(job, unit);
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Every trial of `job`, by unit hash.
pub fn trials(store: &dyn KvStore, job: u64) -> Result<Vec<Trial>, ModuleError> {
    magnet_core::store::scan_prefix(store, &[state::TRIAL_PREFIX, &job.to_be_bytes()].concat())
        .into_iter()
        .map(|(k, v)| {
            Trial::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

fn dispute_key(job: u64, unit: &[u8; 32]) -> Vec<u8> {
    [state::DISPUTE_PREFIX, &job.to_be_bytes(), unit].concat()
}

/// The dispute of unit `unit` of `job` (the latest one filed).
pub fn dispute(
    store: &dyn KvStore,
    job: u64,
    unit: &[u8; 32],
) -> Result<Option<Dispute>, ModuleError> {
    let k = dispute_key(job, unit);
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Every dispute of `job`, by unit hash.
pub fn disputes(store: &dyn KvStore, job: u64) -> Result<Vec<Dispute>, ModuleError> {
    magnet_core::store::scan_prefix(store, &[state::DISPUTE_PREFIX, &job.to_be_bytes()].concat())
        .into_iter()
        .map(|(k, v)| {
            Dispute::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

/// Every version of `job`, in order.
pub fn versions(store: &dyn KvStore, job: u64) -> Result<Vec<Version>, ModuleError> {
    magnet_core::store::scan_prefix(
        store,
        &[state::RVERSION_PREFIX, &job.to_be_bytes()].concat(),
    )
    .into_iter()
    .map(|(k, v)| Version::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string())))
    .collect()
}

fn unhex32(s: &str) -> [u8; 32] {
    hex::decode(s)
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .unwrap_or([0u8; 32])
}

fn opt_hex(h: &[u8; 32]) -> String {
    if *h == [0u8; 32] {
        String::new()
    } else {
        hexs(h)
    }
}

/// The checks of a research job's creation that need state, before any write: the spec within
/// params, the data set a confirmed data record, a coordinator to draw. Returns the research
/// state for job `id` (not yet written).
pub fn prepare(
    ctx: &mut Ctx,
    id: u64,
    spec: ResearchSpec,
    budget: u128,
) -> Result<Research, Error> {
    let p = state::params(ctx.store())?;
    if spec.trial_budget > p.max_trial_budget {
        return Err(Error::InvalidField {
            field: "research.trial_budget",
            why: format!("must be ≤ {} (max_trial_budget)", p.max_trial_budget),
        });
    }
    if u64::from(spec.recheck_ppm) < p.min_recheck_ppm {
        return Err(Error::InvalidField {
            field: "research.recheck_ppm",
            why: format!("must be ≥ {} (min_recheck_ppm)", p.min_recheck_ppm),
        });
    }
    let addr = unhex32(&spec.data_address);
    let not_ready = |why: &str| Error::DataNotReady {
        address: spec.data_address.clone(),
        why: why.into(),
    };
    let data = ctx.services().data()?;
    match data.data_status(ctx, &addr)? {
        Some(magnet_core::DataStatus::Confirmed) => {}
        Some(magnet_core::DataStatus::Pending) => {
            return Err(not_ready(
                "registered but still in its challenge window; create the job once it is \
                 confirmed",
            ))
        }
        Some(magnet_core::DataStatus::Rejected) => {
            return Err(not_ready("rejected by the notary panel"))
        }
        None => {
            return Err(not_ready(
                "not a registered data record; register it with MsgRegisterData first",
            ))
        }
    }
    let reg = ctx.services().registry()?;
    let mut live = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.tier_does(ctx, &n.tier, "research")? {
            live.push(n);
        }
    }
    let nodes: Vec<(String, u128)> = live.iter().map(|n| (n.node_id.clone(), n.bond)).collect();
    let coordinator = draw(COORDINATOR_DOMAIN, &nodes, &[], &ctx.block.hash, id, &[], 1)
        .into_iter()
        .next()
        .ok_or(Error::NoCoordinator)?;
    let operator = live
        .iter()
        .find(|n| n.node_id == coordinator)
        .map(|n| n.operator)
        .ok_or(Error::NoCoordinator)?;
    let (trials_pool, quality_pool, check_slots, slot_price) = price(
        budget,
        p.research_trials_ppm,
        p.research_quality_ppm,
        spec.trial_budget,
        spec.recheck_ppm,
        p.checkers_per_trial,
    );
    Ok(Research {
        job: id,
        spec,
        coordinator,
        coordinator_operator: operator,
        drawn_at: ctx.block.height,
        trials_pool,
        quality_pool,
        check_slots,
        slot_price,
        versions: 0,
        live_trials: 0,
        open_checks: 0,
        checks_credited: 0,
        final_at: None,
        test_reveals_until: None,
        best_unit_hash: String::new(),
        kb_address: String::new(),
        report_address: String::new(),
        test_address: None,
        settlement: None,
    })
}

/// Writes a prepared research job and says so.
pub fn create(ctx: &mut Ctx, r: &Research) -> Result<(), ModuleError> {
    set_research(ctx, r)?;
    let p = state::params(ctx.store())?;
    set_heldout(ctx, &heldout_terms(&p, r))?;
    ctx.emit(
        Event::new("magnet.jobs.research_created")
            .attr("job", r.job)
            .attr("coordinator", &r.coordinator)
            .attr("data", &r.spec.data_address)
            .attr("trial_budget", r.spec.trial_budget)
            .attr("slot_price", r.slot_price)
            .attr("check_slots", r.check_slots),
    );
    Ok(())
}

/// The signer's node id and operator, if it is a registered node key.
fn node_of(ctx: &mut Ctx, signer: &Address) -> Result<Option<(String, Address)>, ModuleError> {
    let reg = ctx.services().registry()?;
    Ok(match reg.operator_of(ctx, signer)? {
        Some(op) => reg.node(ctx, &op)?.map(|n| (n.node_id, op)),
        None => None,
    })
}

/// The operator and node of a trial entry's worker, once its claim's signature verifies
/// against the worker's registered node key; else why not (the outer error: the store).
#[allow(clippy::type_complexity)]
fn signed_worker(
    ctx: &mut Ctx,
    chain_id: &str,
    job: u64,
    e: &TrialInput,
) -> Result<Result<(Address, magnet_core::NodeInfo), String>, ModuleError> {
    let reg = ctx.services().registry()?;
    let Some(op) = reg.operator_of(ctx, &e.worker)? else {
        return Ok(Err("its worker is not a registered node key".into()));
    };
    let Some(info) = reg.node(ctx, &op)? else {
        return Ok(Err("its worker is not a registered node key".into()));
    };
    Ok(e.claim(chain_id, job)
        .verify(&info.node_pubkey, &e.signature)
        .map(|()| (op, info))
        .map_err(|err| format!("the worker's signature: {err}")))
}

/// `MsgRecordResearchVersion`: every check before the first write.
#[allow(clippy::too_many_arguments)]
pub fn record_version(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    version: u32,
    entries: &[TrialInput],
    best: [u8; 32],
    kb: [u8; 32],
    report: [u8; 32],
    last: bool,
) -> Result<(), Error> {
    let j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    let mut r = research(ctx.store(), job)?.ok_or(Error::NotResearch(job))?;
    if j.status != Status::Open {
        return Err(Error::NotOpen(job));
    }
    let me = node_of(ctx, signer)?;
    if me.as_ref().map(|(id, _)| id.as_str()) != Some(r.coordinator.as_str()) {
        return Err(Error::WrongCoordinator {
            job,
            coordinator: r.coordinator.clone(),
            signer: me.map(|(id, _)| id).unwrap_or_else(|| signer.to_string()),
        });
    }
    let bad = |why: String| Error::BadVersion { job, version, why };
    if let Some(h) = r.final_at {
        return Err(bad(format!(
            "the final version was recorded at height {h}; nothing follows it"
        )));
    }
    if version != r.versions {
        return Err(bad(format!("the next version is {}", r.versions)));
    }
    let live = u64::from(r.live_trials).saturating_add(entries.len() as u64);
    if live > u64::from(r.spec.trial_budget) {
        return Err(bad(format!(
            "it would bring the job's live trials to {live}; the trial budget is {}",
            r.spec.trial_budget
        )));
    }
    let chain_id = ctx.block.chain_id.clone();
    let mut new_trials = Vec::with_capacity(entries.len());
    for e in entries {
        let unit = hexs(&e.unit_hash);
        let bad_trial = |why: String| Error::BadTrial {
            job,
            unit: unit.clone(),
            why,
        };
        if let Some(t) = trial(ctx.store(), job, &e.unit_hash)? {
            if !t.voided {
                return Err(bad_trial(format!(
                    "recorded already, by version {}",
                    t.version
                )));
            }
            if t.check_open() {
                return Err(bad_trial(
                    "its voided entry's check is still open; record it again once that \
                     resolves"
                        .into(),
                ));
            }
        }
        if dispute(ctx.store(), job, &e.unit_hash)?.is_some_and(|d| d.open()) {
            return Err(bad_trial(
                "it is under an open dispute; record it once the dispute resolves".into(),
            ));
        }
        let (op, info) = signed_worker(ctx, &chain_id, job, e)?.map_err(bad_trial)?;
        new_trials.push(Trial {
            unit_hash: unit,
            version,
            worker: e.worker,
            worker_operator: op,
            worker_node_id: info.node_id,
            oof_hash: hexs(&e.oof_hash),
            cv_loss_micro: e.cv_loss_micro,
            signature: hexs(&e.signature),
            height: ctx.block.height,
            voided: false,
            check: None,
        });
    }
    if best != [0u8; 32]
        && !entries.iter().any(|e| e.unit_hash == best)
        && trial(ctx.store(), job, &best)?.is_none_or(|t| t.voided)
    {
        return Err(bad(format!(
            "its best unit {} is not a live trial of the job",
            hexs(&best)
        )));
    }
    // Writes.
    for (t, e) in new_trials.iter().zip(entries) {
        ctx.set_borsh(&trial_key(job, &e.unit_hash), t)?;
        ctx.set(
            &[state::TRIAL_NEW_PREFIX, &job.to_be_bytes(), &e.unit_hash].concat(),
            Vec::new(),
        )?;
    }
    let v = Version {
        version,
        height: ctx.block.height,
        units: new_trials.iter().map(|t| t.unit_hash.clone()).collect(),
        best_unit_hash: opt_hex(&best),
        kb_address: opt_hex(&kb),
        report_address: opt_hex(&report),
        last,
    };
    ctx.set_borsh(
        &[
            state::RVERSION_PREFIX,
            &job.to_be_bytes(),
            &version.to_be_bytes(),
        ]
        .concat(),
        &v,
    )?;
    r.versions = r.versions.saturating_add(1);
    r.live_trials = u32::try_from(live).unwrap_or(u32::MAX);
    if best != [0u8; 32] {
        r.best_unit_hash = v.best_unit_hash.clone();
    }
    if kb != [0u8; 32] {
        r.kb_address = v.kb_address.clone();
    }
    if report != [0u8; 32] {
        r.report_address = v.report_address.clone();
    }
    let p = state::params(ctx.store())?;
    if last {
        r.final_at = Some(ctx.block.height);
        r.test_reveals_until = Some(ctx.block.height.saturating_add(p.test_reveal_blocks));
    }
    set_research(ctx, &r)?;
    ctx.emit(
        Event::new("magnet.jobs.research_version")
            .attr("job", job)
            .attr("version", version)
            .attr("trials", entries.len())
            .attr("live_trials", r.live_trials)
            .attr("best", &v.best_unit_hash)
            .attr("final", last),
    );
    Ok(())
}

/// `MsgDisputeTrial` (ADR 0114): the coordinator brings a worker-signed trial whose re-run did
/// not match to chain, while the job is open. The entry is held as a [`Dispute`] (not live, not
/// paid) and a check is drawn for it in this block's `end_block` regardless of sampling — on
/// the unit's live record instead when the entry is that record. Every check before the first
/// write; a refusal changes nothing.
pub fn dispute_trial(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    e: &TrialInput,
) -> Result<(), Error> {
    let j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    let r = research(ctx.store(), job)?.ok_or(Error::NotResearch(job))?;
    if j.status != Status::Open {
        return Err(Error::NotOpen(job));
    }
    let me = node_of(ctx, signer)?;
    if me.as_ref().map(|(id, _)| id.as_str()) != Some(r.coordinator.as_str()) {
        return Err(Error::WrongCoordinator {
            job,
            coordinator: r.coordinator.clone(),
            signer: me.map(|(id, _)| id).unwrap_or_else(|| signer.to_string()),
        });
    }
    let unit = hexs(&e.unit_hash);
    let oof = hexs(&e.oof_hash);
    let bad = |why: String| Error::BadDispute {
        job,
        unit: unit.clone(),
        why,
    };
    let chain_id = ctx.block.chain_id.clone();
    let (op, info) = signed_worker(ctx, &chain_id, job, e)?.map_err(|why| Error::BadTrial {
        job,
        unit: unit.clone(),
        why,
    })?;
    if info.node_id == r.coordinator {
        return Err(bad(
            "its worker is the job's coordinator: a coordinator cannot dispute its own trial"
                .into(),
        ));
    }
    let rec = trial(ctx.store(), job, &e.unit_hash)?;
    let prev = dispute(ctx.store(), job, &e.unit_hash)?;
    if rec.as_ref().is_some_and(Trial::check_open) {
        return Err(bad(
            "the unit is under an open check already; its checkers decide it".into(),
        ));
    }
    if prev.as_ref().is_some_and(Dispute::open) {
        return Err(bad("the unit is under an open dispute already".into()));
    }
    let same = |w: &Address, o: &str| *w == e.worker && o == oof;
    if let Some(t) = rec.as_ref().filter(|t| same(&t.worker, &t.oof_hash)) {
        match t.check.as_ref().map(|c| c.outcome) {
            Some(CheckOutcome::Agreed) => {
                return Err(bad(
                    "its check resolved `agreed` for this worker and oof hash already".into(),
                ))
            }
            Some(CheckOutcome::Fabricated) => {
                return Err(bad(
                    "its check found this worker's oof hash fabricated already".into(),
                ))
            }
            _ => {}
        }
    }
    if let Some(d) = prev.as_ref().filter(|d| same(&d.worker, &d.oof_hash)) {
        if matches!(d.outcome, DisputeOutcome::Upheld | DisputeOutcome::False) {
            return Err(bad(format!(
                "this worker's oof hash was disputed and decided already ({:?})",
                d.outcome
            )));
        }
    }
    let on_record = rec
        .as_ref()
        .is_some_and(|t| !t.voided && same(&t.worker, &t.oof_hash));
    if !on_record
        && rec
            .as_ref()
            .is_some_and(|t| t.check.is_none() && t.height == ctx.block.height)
    {
        return Err(bad(
            "the unit was recorded in this block with another claim and may be sampled for a \
             check in it; file the dispute in a later block"
                .into(),
        ));
    }
    // Writes.
    let d = Dispute {
        unit_hash: unit.clone(),
        worker: e.worker,
        worker_operator: op,
        worker_node_id: info.node_id,
        oof_hash: oof,
        cv_loss_micro: e.cv_loss_micro,
        signature: hexs(&e.signature),
        filed_at: ctx.block.height,
        on_record,
        check: None,
        outcome: DisputeOutcome::Open,
        live: false,
    };
    ctx.set_borsh(&dispute_key(job, &e.unit_hash), &d)?;
    ctx.set(
        &[state::DISPUTE_NEW_PREFIX, &job.to_be_bytes(), &e.unit_hash].concat(),
        Vec::new(),
    )?;
    ctx.emit(
        Event::new("magnet.jobs.trial_disputed")
            .attr("job", job)
            .attr("unit", &unit)
            .attr("worker", &d.worker_node_id)
            .attr("coordinator", &r.coordinator)
            .attr("on_record", on_record),
    );
    Ok(())
}

fn credit_key(job: u64, operator: &Address) -> Vec<u8> {
    [
        state::CHECK_CREDIT_PREFIX,
        &job.to_be_bytes(),
        operator.as_bytes(),
    ]
    .concat()
}

/// Majority checks credited to each checker's operator in job `job`.
pub fn check_credits(store: &dyn KvStore, job: u64) -> Result<Vec<(Address, u64)>, ModuleError> {
    let p = [state::CHECK_CREDIT_PREFIX, &job.to_be_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[p.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let n =
                u64::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            Ok((a, n))
        })
        .collect()
}

fn check_due_key(height: u64, job: u64, unit: &[u8; 32]) -> Vec<u8> {
    [
        state::CHECK_DUE_PREFIX,
        &height.to_be_bytes(),
        &job.to_be_bytes(),
        unit,
    ]
    .concat()
}

fn job_unit(k: &[u8]) -> (u64, [u8; 32]) {
    let n = k.len();
    let mut j = [0u8; 8];
    let mut u = [0u8; 32];
    if n >= 40 {
        j.copy_from_slice(&k[n - 40..n - 32]);
        u.copy_from_slice(&k[n - 32..]);
    }
    (u64::from_be_bytes(j), u)
}

/// The nodes that may check a trial: live nodes whose tier trains or does research (those
/// that run trials), as (node id, bond, operator).
fn checker_pool(ctx: &mut Ctx) -> Result<Vec<(String, u128, Address)>, ModuleError> {
    let reg = ctx.services().registry()?;
    let mut live = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.tier_does(ctx, &n.tier, "training")? || reg.tier_does(ctx, &n.tier, "research")? {
            live.push((n.node_id, n.bond, n.operator));
        }
    }
    Ok(live)
}

/// Draws unit `unit`'s check in this block: `checkers_per_trial` checkers stake-weighted by
/// the block hash, never the worker nor the coordinator. With checkers, the check is open,
/// counted in `open_checks` and due at the end of its reveal period; with none it is
/// `no_verdict` at once.
#[allow(clippy::too_many_arguments)]
fn draw_check(
    ctx: &mut Ctx,
    p: &crate::Params,
    pool: &[(String, u128, Address)],
    job: u64,
    unit: &[u8; 32],
    worker_node_id: &str,
    coordinator: &str,
    disputed: bool,
) -> Result<Check, ModuleError> {
    let nodes: Vec<(String, u128)> = pool.iter().map(|(id, b, _)| (id.clone(), *b)).collect();
    let (checkers, checker_operators): (Vec<String>, Vec<Address>) = draw(
        CHECKER_DOMAIN,
        &nodes,
        &[worker_node_id, coordinator],
        &ctx.block.hash,
        job,
        unit,
        p.checkers_per_trial,
    )
    .into_iter()
    .filter_map(|id| {
        let op = pool.iter().find(|n| n.0 == id)?.2;
        Some((id, op))
    })
    .unzip();
    let commits_until = ctx.block.height.saturating_add(p.check_commit_blocks);
    let reveals_until = commits_until.saturating_add(p.check_reveal_blocks);
    let outcome = if checkers.is_empty() {
        CheckOutcome::NoVerdict
    } else {
        ctx.set(&check_due_key(reveals_until, job, unit), Vec::new())?;
        if let Some(mut r) = research(ctx.store(), job)? {
            r.open_checks = r.open_checks.saturating_add(1);
            set_research(ctx, &r)?;
        }
        CheckOutcome::Open
    };
    ctx.emit(
        Event::new("magnet.jobs.trial_check_drawn")
            .attr("job", job)
            .attr("unit", hexs(unit))
            .attr("checkers", checkers.join(","))
            .attr("commits_until", commits_until)
            .attr("reveals_until", reveals_until)
            .attr("disputed", disputed),
    );
    Ok(Check {
        drawn_at: ctx.block.height,
        checkers,
        checker_operators,
        commits_until,
        reveals_until,
        votes: Vec::new(),
        outcome,
    })
}

/// `end_block`: draw the checks of the disputes filed in this block (regardless of sampling;
/// on the live record when the dispute names it), sample the trials recorded in this block,
/// then resolve the checks due.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let filed = magnet_core::store::scan_prefix(ctx.store(), state::DISPUTE_NEW_PREFIX);
    let fresh = magnet_core::store::scan_prefix(ctx.store(), state::TRIAL_NEW_PREFIX);
    if !filed.is_empty() || !fresh.is_empty() {
        let p = state::params(ctx.store())?;
        let pool = checker_pool(ctx)?;
        // Disputes first: a dispute of a record made in this block forces its check, and the
        // sample below then skips it.
        for (k, _) in filed {
            ctx.delete(&k)?;
            let (job, unit) = job_unit(&k);
            let (Some(r), Some(mut d)) = (
                research(ctx.store(), job)?,
                dispute(ctx.store(), job, &unit)?,
            ) else {
                continue;
            };
            if !d.open() || d.check.is_some() {
                continue;
            }
            let rec = trial(ctx.store(), job, &unit)?.filter(|t| {
                d.on_record
                    && !t.voided
                    && t.worker == d.worker
                    && t.oof_hash == d.oof_hash
                    && !t.check_open()
            });
            let c = draw_check(
                ctx,
                &p,
                &pool,
                job,
                &unit,
                &d.worker_node_id,
                &r.coordinator,
                true,
            )?;
            if c.outcome == CheckOutcome::NoVerdict {
                d.outcome = DisputeOutcome::NoVerdict;
            }
            match rec {
                Some(mut t) => {
                    t.check = Some(c);
                    ctx.set_borsh(&trial_key(job, &unit), &t)?;
                }
                None => {
                    d.on_record = false;
                    d.check = Some(c);
                }
            }
            ctx.set_borsh(&dispute_key(job, &unit), &d)?;
        }
        for (k, _) in fresh {
            ctx.delete(&k)?;
            let (job, unit) = job_unit(&k);
            let (Some(r), Some(mut t)) =
                (research(ctx.store(), job)?, trial(ctx.store(), job, &unit)?)
            else {
                continue;
            };
            if t.check.is_some()
                || !sampled(&ctx.block.hash, job, &unit, u64::from(r.spec.recheck_ppm))
            {
                continue;
            }
            t.check = Some(draw_check(
                ctx,
                &p,
                &pool,
                job,
                &unit,
                &t.worker_node_id,
                &r.coordinator,
                false,
            )?);
            ctx.set_borsh(&trial_key(job, &unit), &t)?;
        }
    }
    let end = [
        state::CHECK_DUE_PREFIX,
        &ctx.block.height.saturating_add(1).to_be_bytes(),
    ]
    .concat();
    for (k, _) in ctx.store().range(state::CHECK_DUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let (job, unit) = job_unit(&k);
        resolve(ctx, job, &unit)?;
    }
    let end = [
        state::HELDOUT_DUE_PREFIX,
        &ctx.block.height.saturating_add(1).to_be_bytes(),
    ]
    .concat();
    for (k, _) in ctx.store().range(state::HELDOUT_DUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let mut id = [0u8; 8];
        if k.len() >= 8 {
            id.copy_from_slice(&k[k.len() - 8..]);
        }
        resolve_heldout(ctx, u64::from_be_bytes(id))?;
    }
    Ok(())
}

/// The record (trial or dispute) with unit `unit`'s open check and the signer's node id when
/// it is one of its checkers.
fn checker_subject(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    unit: &[u8; 32],
) -> Result<(Subject, String), Error> {
    let bad = |who: String, why: &str| Error::BadCheck {
        job,
        unit: hexs(unit),
        checker: who,
        why: why.into(),
    };
    if trial(ctx.store(), job, unit)?.is_none() && dispute(ctx.store(), job, unit)?.is_none() {
        return Err(bad(signer.to_string(), "no such trial"));
    }
    let s = open_subject(ctx.store(), job, unit)?
        .ok_or_else(|| bad(signer.to_string(), "the trial has no open check"))?;
    let me = node_of(ctx, signer)?.map(|(id, _)| id);
    let drawn = s.check().map(|c| &c.checkers);
    match me {
        Some(id) if drawn.is_some_and(|d| d.contains(&id)) => Ok((s, id)),
        _ => Err(bad(signer.to_string(), "not a drawn checker of this trial")),
    }
}

/// `MsgTrialCheckCommit`: a drawn checker's sealed re-run, once, within the commit period (a
/// sampled trial's check or a disputed one's, by unit).
pub fn commit(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    unit: [u8; 32],
    commitment: [u8; 32],
) -> Result<(), Error> {
    let (mut s, id) = checker_subject(ctx, signer, job, &unit)?;
    let height = ctx.block.height;
    let bad = |why: String| Error::BadCheck {
        job,
        unit: hexs(&unit),
        checker: id.clone(),
        why,
    };
    let c = s
        .check_mut()
        .ok_or_else(|| bad("the trial has no open check".into()))?;
    if height > c.commits_until {
        return Err(bad(format!(
            "the commit period ended at height {}",
            c.commits_until
        )));
    }
    if c.votes.iter().any(|v| v.checker == id) {
        return Err(bad("committed already".into()));
    }
    c.votes.push(CheckVote {
        checker: id.clone(),
        commitment: hexs(&commitment),
        committed_at: height,
        oof_hash: None,
        cv_loss_micro: None,
        in_majority: false,
    });
    s.save(ctx, job, &unit)?;
    ctx.emit(
        Event::new("magnet.jobs.trial_check_committed")
            .attr("job", job)
            .attr("unit", s.unit_hash())
            .attr("checker", &id),
    );
    Ok(())
}

/// `MsgTrialCheckReveal`: opens a sealed re-run within the reveal period (after the commit
/// period, or once every drawn checker committed).
pub fn reveal(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    unit: [u8; 32],
    oof_hash: [u8; 32],
    cv_loss_micro: u64,
    nonce: [u8; 32],
) -> Result<(), Error> {
    let (mut s, id) = checker_subject(ctx, signer, job, &unit)?;
    let height = ctx.block.height;
    let chain_id = ctx.block.chain_id.clone();
    let bad = |why: String| Error::BadCheck {
        job,
        unit: hexs(&unit),
        checker: id.clone(),
        why,
    };
    let c = s
        .check_mut()
        .ok_or_else(|| bad("the trial has no open check".into()))?;
    if height > c.reveals_until {
        return Err(bad(format!(
            "the reveal period ended at height {}",
            c.reveals_until
        )));
    }
    if height <= c.commits_until && c.votes.len() < c.checkers.len() {
        return Err(bad(format!(
            "the reveal period opens after height {} (or once every checker committed)",
            c.commits_until
        )));
    }
    let n = c.checkers.len();
    let v = c
        .votes
        .iter_mut()
        .find(|v| v.checker == id)
        .ok_or_else(|| bad("no commitment to reveal".into()))?;
    if v.oof_hash.is_some() {
        return Err(bad("revealed already".into()));
    }
    let want = crate::msgs::check_commitment(
        &chain_id,
        signer,
        job,
        &unit,
        &oof_hash,
        cv_loss_micro,
        &nonce,
    );
    if v.commitment != hexs(&want) {
        return Err(bad(
            "the reveal does not hash to its commitment (wrong oof hash, loss or nonce)".into(),
        ));
    }
    v.oof_hash = Some(hexs(&oof_hash));
    v.cv_loss_micro = Some(cv_loss_micro);
    let all = c.votes.iter().filter(|v| v.oof_hash.is_some()).count() >= n;
    s.save(ctx, job, &unit)?;
    if all {
        ctx.set(&check_due_key(height, job, &unit), Vec::new())?;
    }
    ctx.emit(
        Event::new("magnet.jobs.trial_check_revealed")
            .attr("job", job)
            .attr("unit", s.unit_hash())
            .attr("checker", &id)
            .attr("agrees", hexs(&oof_hash) == s.oof_hash()),
    );
    Ok(())
}

fn slash_if_node(
    ctx: &mut Ctx,
    operator: &Address,
    offence: Offence,
    why: &str,
) -> Result<u128, ModuleError> {
    let reg = ctx.services().registry()?;
    if reg.node(ctx, operator)?.is_none() {
        return Ok(0);
    }
    ctx.services()
        .slashing()?
        .slash_node(ctx, operator, offence, why)
}

/// A check's revealed re-runs against an entry's oof hash.
struct Tally {
    /// (checker, differs from the entry) per revealed re-run.
    revealed: Vec<(String, bool)>,
    against: usize,
    agree: usize,
    outcome: CheckOutcome,
}

/// Counts check `c` against oof hash `oof`; `None` while it is not open or not due (before the
/// end of its reveal period with a re-run still unrevealed).
fn tally(c: &Check, oof: &str, height: u64) -> Option<Tally> {
    let revealed: Vec<(String, bool)> = c
        .votes
        .iter()
        .filter_map(|v| v.oof_hash.as_ref().map(|h| (v.checker.clone(), h != oof)))
        .collect();
    if c.outcome != CheckOutcome::Open
        || (height < c.reveals_until && revealed.len() < c.checkers.len())
    {
        return None;
    }
    let against = revealed.iter().filter(|(_, d)| *d).count();
    let agree = revealed.len().saturating_sub(against);
    let outcome = if revealed.is_empty() {
        CheckOutcome::NoVerdict
    } else if against > agree {
        CheckOutcome::Fabricated
    } else {
        CheckOutcome::Agreed
    };
    Some(Tally {
        revealed,
        against,
        agree,
        outcome,
    })
}

/// A fabrication finding: slashes the worker's operator `fabricated_trial` and voids every live
/// trial of that worker in the job. Returns (slashed, trials voided).
fn convict(
    ctx: &mut Ctx,
    job: u64,
    worker_operator: &Address,
    unit_hex: &str,
    x: &Tally,
) -> Result<(u128, u32), ModuleError> {
    let slashed = slash_if_node(
        ctx,
        worker_operator,
        Offence::FabricatedTrial,
        &format!(
            "trial {unit_hex} of research job {job}: {} of {} revealed re-runs contradict its \
             out-of-fold hash",
            x.against,
            x.revealed.len()
        ),
    )?;
    let mut voided = 0u32;
    for mut other in trials(ctx.store(), job)? {
        if other.worker_operator == *worker_operator && !other.voided {
            other.voided = true;
            voided = voided.saturating_add(1);
            ctx.set_borsh(&trial_key(job, &unhex32(&other.unit_hash)), &other)?;
        }
    }
    if let Some(mut r) = research(ctx.store(), job)? {
        r.live_trials = r.live_trials.saturating_sub(voided);
        set_research(ctx, &r)?;
    }
    Ok((slashed, voided))
}

/// What a check's resolution did to its checkers: (votes with the majority marked, silent,
/// deviated, credited). Silent drawn checkers are slashed `no_reveal`, minority ones
/// `audit_deviation`; majority ones are credited one check slot while the job's last. The
/// job's `open_checks` drops by one.
fn judge_checkers(
    ctx: &mut Ctx,
    job: u64,
    unit_hex: &str,
    c: &Check,
    x: &Tally,
) -> Result<(Vec<CheckVote>, u64, u64, u64), ModuleError> {
    // The strict majority's side (true: against the entry); a tie has none.
    let majority = match x.against.cmp(&x.agree) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    };
    let (mut silent, mut deviated, mut credited) = (0u64, 0u64, 0u64);
    let mut votes = c.votes.clone();
    let mut r = research(ctx.store(), job)?;
    if let Some(r) = r.as_mut() {
        r.open_checks = r.open_checks.saturating_sub(1);
    }
    for (i, id) in c.checkers.iter().enumerate() {
        let Some(op) = c.checker_operators.get(i) else {
            continue;
        };
        match x.revealed.iter().find(|(who, _)| who == id) {
            None => {
                silent = silent.saturating_add(1);
                slash_if_node(
                    ctx,
                    op,
                    Offence::NoReveal,
                    &format!("no revealed re-run of trial {unit_hex} of job {job}"),
                )?;
            }
            Some((_, d)) if majority.is_some_and(|m| m != *d) => {
                deviated = deviated.saturating_add(1);
                slash_if_node(
                    ctx,
                    op,
                    Offence::AuditDeviation,
                    &format!(
                        "re-run of trial {unit_hex} of job {job} against the majority {}-{}",
                        x.against, x.agree
                    ),
                )?;
            }
            Some((_, d)) => {
                if majority == Some(*d) {
                    if let Some(v) = votes.iter_mut().find(|v| v.checker == *id) {
                        v.in_majority = true;
                    }
                    if let Some(r) = r.as_mut().filter(|r| r.checks_credited < r.check_slots) {
                        r.checks_credited = r.checks_credited.saturating_add(1);
                        credited = credited.saturating_add(1);
                        let k = credit_key(job, op);
                        let n: u64 = ctx.get_borsh(&k)?.unwrap_or(0);
                        ctx.set_borsh(&k, &n.saturating_add(1))?;
                    }
                }
            }
        }
    }
    if let Some(r) = &r {
        set_research(ctx, r)?;
    }
    Ok((votes, silent, deviated, credited))
}

fn outcome_name(o: CheckOutcome) -> &'static str {
    match o {
        CheckOutcome::Fabricated => "fabricated",
        CheckOutcome::Agreed => "agreed",
        CheckOutcome::Open => "open",
        CheckOutcome::NoVerdict => "no_verdict",
    }
}

/// Resolves unit `unit`'s open check if it is due (exactly once: it leaves `Open`): the check
/// of its trial record, else of its dispute.
pub fn resolve(ctx: &mut Ctx, job: u64, unit: &[u8; 32]) -> Result<(), ModuleError> {
    match open_subject(ctx.store(), job, unit)? {
        Some(Subject::Trial(t)) => resolve_trial(ctx, job, unit, t),
        Some(Subject::Dispute(d)) => resolve_dispute(ctx, job, unit, d),
        None => Ok(()),
    }
}

fn resolve_trial(ctx: &mut Ctx, job: u64, unit: &[u8; 32], t: Trial) -> Result<(), ModuleError> {
    let Some(c) = t.check.clone() else {
        return Ok(());
    };
    let Some(x) = tally(&c, &t.oof_hash, ctx.block.height) else {
        return Ok(());
    };
    let (mut slashed, mut voided) = (0u128, 0u32);
    if x.outcome == CheckOutcome::Fabricated {
        (slashed, voided) = convict(ctx, job, &t.worker_operator, &t.unit_hash, &x)?;
    }
    let Some(mut t) = trial(ctx.store(), job, unit)? else {
        return Ok(());
    };
    let (votes, silent, deviated, credited) = judge_checkers(ctx, job, &t.unit_hash, &c, &x)?;
    t.check = Some(Check {
        votes,
        outcome: x.outcome,
        ..c
    });
    ctx.set_borsh(&trial_key(job, unit), &t)?;
    let name = outcome_name(x.outcome);
    ctx.emit(
        Event::new("magnet.jobs.trial_check_resolved")
            .attr("job", job)
            .attr("unit", &t.unit_hash)
            .attr("outcome", name)
            .attr("against", x.against)
            .attr("agree", x.agree)
            .attr("worker", t.worker_operator)
            .attr("slashed", slashed)
            .attr("trials_voided", voided)
            .attr("checks_credited", credited)
            .attr("checkers_silent", silent)
            .attr("checkers_deviated", deviated),
    );
    tracing::info!(job, unit = %t.unit_hash, outcome = name, x.against, x.agree, "trial check resolved");
    // A dispute that forced this check on the live record ends with it.
    if let Some(mut d) = dispute(ctx.store(), job, unit)?.filter(|d| d.on_record && d.open()) {
        finish_dispute(ctx, job, unit, &mut d, &x)?;
    }
    Ok(())
}

fn resolve_dispute(
    ctx: &mut Ctx,
    job: u64,
    unit: &[u8; 32],
    mut d: Dispute,
) -> Result<(), ModuleError> {
    let Some(c) = d.check.clone() else {
        return Ok(());
    };
    let Some(x) = tally(&c, &d.oof_hash, ctx.block.height) else {
        return Ok(());
    };
    let (mut slashed, mut voided) = (0u128, 0u32);
    if x.outcome == CheckOutcome::Fabricated {
        (slashed, voided) = convict(ctx, job, &d.worker_operator, &d.unit_hash, &x)?;
    }
    let (votes, silent, deviated, credited) = judge_checkers(ctx, job, &d.unit_hash, &c, &x)?;
    d.check = Some(Check {
        votes,
        outcome: x.outcome,
        ..c
    });
    let name = outcome_name(x.outcome);
    ctx.emit(
        Event::new("magnet.jobs.trial_check_resolved")
            .attr("job", job)
            .attr("unit", &d.unit_hash)
            .attr("outcome", name)
            .attr("against", x.against)
            .attr("agree", x.agree)
            .attr("worker", d.worker_operator)
            .attr("slashed", slashed)
            .attr("trials_voided", voided)
            .attr("checks_credited", credited)
            .attr("checkers_silent", silent)
            .attr("checkers_deviated", deviated)
            .attr("disputed", true),
    );
    finish_dispute(ctx, job, unit, &mut d, &x)
}

/// Whether the worker's operator was found fabricating in the job (a `fabricated` check of one
/// of its trials, or an upheld dispute against it).
fn convicted(store: &dyn KvStore, job: u64, op: &Address) -> Result<bool, ModuleError> {
    let by_check = trials(store, job)?.iter().any(|t| {
        t.worker_operator == *op
            && t.check
                .as_ref()
                .is_some_and(|c| c.outcome == CheckOutcome::Fabricated)
    });
    Ok(by_check
        || disputes(store, job)?
            .iter()
            .any(|d| d.worker_operator == *op && d.outcome == DisputeOutcome::Upheld))
}

/// Ends a dispute by its check's tally: `fabricated` → upheld (the worker was convicted by the
/// check); a strict majority agreeing with the entry → a false dispute: the coordinator's
/// operator is slashed `audit_deviation` (its re-run disagreed with the majority) and an entry
/// held apart becomes a live trial when the unit has no live record, its worker was not
/// convicted in the job and the trial budget has room (else it stays unpaid); a tie or no
/// reveal → no verdict, nothing.
fn finish_dispute(
    ctx: &mut Ctx,
    job: u64,
    unit: &[u8; 32],
    d: &mut Dispute,
    x: &Tally,
) -> Result<(), ModuleError> {
    let mut coordinator_slashed = 0u128;
    d.outcome = match x.outcome {
        CheckOutcome::Fabricated => DisputeOutcome::Upheld,
        CheckOutcome::Agreed if x.agree > x.against => DisputeOutcome::False,
        _ => DisputeOutcome::NoVerdict,
    };
    if d.outcome == DisputeOutcome::False {
        if let Some(mut r) = research(ctx.store(), job)? {
            coordinator_slashed = slash_if_node(
                ctx,
                &r.coordinator_operator,
                Offence::AuditDeviation,
                &format!(
                    "false dispute of trial {} of research job {job}: the re-runs agree with \
                     its worker",
                    d.unit_hash
                ),
            )?;
            let free = trial(ctx.store(), job, unit)?.is_none_or(|t| t.voided);
            if !d.on_record
                && free
                && r.live_trials < r.spec.trial_budget
                && !convicted(ctx.store(), job, &d.worker_operator)?
            {
                let t = Trial {
                    unit_hash: d.unit_hash.clone(),
                    version: r.versions,
                    worker: d.worker,
                    worker_operator: d.worker_operator,
                    worker_node_id: d.worker_node_id.clone(),
                    oof_hash: d.oof_hash.clone(),
                    cv_loss_micro: d.cv_loss_micro,
                    signature: d.signature.clone(),
                    height: ctx.block.height,
                    voided: false,
                    check: d.check.clone(),
                };
                ctx.set_borsh(&trial_key(job, unit), &t)?;
                r.live_trials = r.live_trials.saturating_add(1);
                set_research(ctx, &r)?;
                d.live = true;
            }
        }
    }
    ctx.set_borsh(&dispute_key(job, unit), d)?;
    let name = match d.outcome {
        DisputeOutcome::Upheld => "upheld",
        DisputeOutcome::False => "false",
        DisputeOutcome::Open => "open",
        DisputeOutcome::NoVerdict => "no_verdict",
    };
    ctx.emit(
        Event::new("magnet.jobs.dispute_resolved")
            .attr("job", job)
            .attr("unit", &d.unit_hash)
            .attr("outcome", name)
            .attr("worker", d.worker_operator)
            .attr("coordinator_slashed", coordinator_slashed)
            .attr("live", d.live),
    );
    tracing::info!(job, unit = %d.unit_hash, outcome = name, "trial dispute resolved");
    Ok(())
}

/// `MsgRevealTestSplit`: the creator opens its sealed test split after the final version,
/// within `test_reveal_blocks`. A reveal that does not hash to the commitment is refused and
/// changes nothing.
pub fn reveal_test(
    ctx: &mut Ctx,
    creator: &Address,
    job: u64,
    test_address: [u8; 32],
    salt: [u8; 32],
) -> Result<(), Error> {
    let j = state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    let mut r = research(ctx.store(), job)?.ok_or(Error::NotResearch(job))?;
    if j.creator != *creator {
        return Err(Error::NotCreator(j.creator.to_string()));
    }
    let bad = |why: String| Error::BadTestReveal { job, why };
    if matches!(j.status, Status::Settled | Status::Cancelled) {
        return Err(Error::NotOpen(job));
    }
    let (Some(_), Some(until)) = (r.final_at, r.test_reveals_until) else {
        return Err(bad(
            "the final version is not recorded yet; reveal the test split after it".into(),
        ));
    };
    if r.test_address.is_some() {
        return Err(bad("revealed already".into()));
    }
    if ctx.block.height > until {
        return Err(bad(format!(
            "the reveal period ended at height {until}; the quality claim is forfeit"
        )));
    }
    let got = crate::msgs::test_commitment(&test_address, &salt);
    if hexs(&got) != r.spec.test_commitment {
        return Err(bad(format!(
            "SHA-256(tag ‖ test address ‖ salt) = {} does not match the commitment {}; nothing \
             changed: reveal the address and salt the commitment was made from",
            hexs(&got),
            r.spec.test_commitment
        )));
    }
    r.test_address = Some(hexs(&test_address));
    set_research(ctx, &r)?;
    ctx.emit(
        Event::new("magnet.jobs.test_split_revealed")
            .attr("job", job)
            .attr("test_address", hexs(&test_address)),
    );
    draw_heldout(ctx, &r, &test_address)?;
    Ok(())
}

/// Domain of the held-out evaluator draw.
pub const HELDOUT_DRAW_DOMAIN: &[u8] = b"MAGNET/jobs/v1/heldout-draw";

/// One drawn evaluator's sealed held-out score.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct HeldOutVote {
    /// Evaluator node id.
    pub evaluator: String,
    /// Commitment (hex).
    pub commitment: String,
    /// Height committed.
    pub committed_at: u64,
    /// Opened.
    pub revealed: bool,
    /// The final version's test loss × 10^6, once revealed (not when unavailable).
    pub final_test_loss_micro: Option<u64>,
    /// The baseline's test loss × 10^6, once revealed (not when unavailable).
    pub baseline_test_loss_micro: Option<u64>,
    /// Revealed `unavailable`.
    pub unavailable: bool,
}

/// One evaluator's payment.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct EvaluatorPay {
    /// Evaluator node id.
    pub evaluator: String,
    /// Its operator (paid at settlement).
    pub operator: Address,
    /// Amount (umag).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub amount: u128,
}

/// How the quality pool splits after the held-out evaluation (paid at settlement). Exactly
/// `coordinator + creator + evaluators + community = quality_pool`.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct HeldOutResult {
    /// `measured` (scores revealed: paid by improvement), `unavailable` (a strict majority of
    /// reveals said the test split could not be fetched: the creator's forfeit, the scored
    /// share to the coordinator) or `unmeasured` (no reveal, or no evaluator to draw: the
    /// scored share back to the creator).
    pub outcome: String,
    /// Lower median of the revealed final test losses (measured only).
    pub final_test_loss_micro: Option<u64>,
    /// Lower median of the revealed baseline test losses (measured only).
    pub baseline_test_loss_micro: Option<u64>,
    /// (baseline − final) · 10^6 / baseline, 0 when not better.
    pub improvement_ppm: u64,
    /// To the coordinator.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub coordinator: u128,
    /// Back to the creator (the scored share the coordinator did not earn, and the shares of
    /// silent evaluators).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub creator: u128,
    /// To the evaluators who revealed (Σ `paid`).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub evaluators: u128,
    /// To the community pool: the floor dust of the evaluator share.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub community: u128,
    /// Per revealed evaluator.
    pub paid: Vec<EvaluatorPay>,
    /// Height resolved.
    pub resolved_at: u64,
}

/// A research job's held-out evaluation (ADR 0111 §6): terms fixed at creation, evaluators
/// drawn at the valid test reveal, sealed scores, the result.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct HeldOut {
    /// Job.
    pub job: u64,
    /// Evaluators to draw (`heldout_evaluators` at creation).
    pub evaluators_wanted: u32,
    /// Share of the quality pool that pays the evaluators (`heldout_evaluator_ppm` of it at
    /// creation).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub evaluator_pool: u128,
    /// Improvement that earns the whole scored share (`target_improvement_ppm` at creation).
    pub target_improvement_ppm: u64,
    /// Height drawn (the test reveal), once drawn.
    pub drawn_at: Option<u64>,
    /// Drawn evaluator node ids, in draw order.
    pub evaluators: Vec<String>,
    /// Their operators at the draw.
    pub evaluator_operators: Vec<Address>,
    /// Last commit height.
    pub commits_until: u64,
    /// Last reveal height.
    pub reveals_until: u64,
    /// Sealed scores in commit order.
    pub votes: Vec<HeldOutVote>,
    /// The result, once resolved.
    pub result: Option<HeldOutResult>,
}

fn heldout_terms(p: &crate::Params, r: &Research) -> HeldOut {
    HeldOut {
        job: r.job,
        evaluators_wanted: p.heldout_evaluators,
        evaluator_pool: ppm_of(r.quality_pool, p.heldout_evaluator_ppm).unwrap_or(0),
        target_improvement_ppm: p.target_improvement_ppm,
        drawn_at: None,
        evaluators: Vec::new(),
        evaluator_operators: Vec::new(),
        commits_until: 0,
        reveals_until: 0,
        votes: Vec::new(),
        result: None,
    }
}

/// A research job's held-out evaluation (terms from creation; evaluators once drawn).
pub fn heldout(store: &dyn KvStore, job: u64) -> Result<Option<HeldOut>, ModuleError> {
    let k = [state::HELDOUT_PREFIX, &job.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

fn set_heldout(ctx: &mut Ctx, h: &HeldOut) -> Result<(), ModuleError> {
    ctx.set_borsh(&[state::HELDOUT_PREFIX, &h.job.to_be_bytes()].concat(), h)?;
    Ok(())
}

fn heldout_due_key(height: u64, job: u64) -> Vec<u8> {
    [
        state::HELDOUT_DUE_PREFIX,
        &height.to_be_bytes(),
        &job.to_be_bytes(),
    ]
    .concat()
}

/// At a valid test reveal: draws the held-out evaluators (the checker pool, stake-weighted by
/// the block hash, never the coordinator) with a commit period of `check_commit_blocks` and a
/// reveal period of `check_reveal_blocks`. None to draw → resolved `unmeasured` at once.
fn draw_heldout(ctx: &mut Ctx, r: &Research, test_address: &[u8; 32]) -> Result<(), ModuleError> {
    let p = state::params(ctx.store())?;
    // A job created before held-out terms existed gets today's.
    let mut h = match heldout(ctx.store(), r.job)? {
        Some(h) => h,
        None => heldout_terms(&p, r),
    };
    if h.drawn_at.is_some() {
        return Ok(());
    }
    let pool = checker_pool(ctx)?;
    let nodes: Vec<(String, u128)> = pool.iter().map(|(id, b, _)| (id.clone(), *b)).collect();
    let (evaluators, ops): (Vec<String>, Vec<Address>) = draw(
        HELDOUT_DRAW_DOMAIN,
        &nodes,
        &[r.coordinator.as_str()],
        &ctx.block.hash,
        r.job,
        test_address,
        h.evaluators_wanted,
    )
    .into_iter()
    .filter_map(|id| {
        let op = pool.iter().find(|n| n.0 == id)?.2;
        Some((id, op))
    })
    .unzip();
    h.drawn_at = Some(ctx.block.height);
    h.evaluators = evaluators;
    h.evaluator_operators = ops;
    h.commits_until = ctx.block.height.saturating_add(p.check_commit_blocks);
    h.reveals_until = h.commits_until.saturating_add(p.check_reveal_blocks);
    ctx.emit(
        Event::new("magnet.jobs.heldout_drawn")
            .attr("job", r.job)
            .attr("evaluators", h.evaluators.join(","))
            .attr("commits_until", h.commits_until)
            .attr("reveals_until", h.reveals_until),
    );
    if h.evaluators.is_empty() {
        set_heldout(ctx, &h)?;
        return resolve_heldout(ctx, r.job);
    }
    ctx.set(&heldout_due_key(h.reveals_until, r.job), Vec::new())?;
    set_heldout(ctx, &h)
}

/// The drawn, unresolved held-out evaluation of `job` and the signer's node id when it is one
/// of its evaluators.
fn evaluator_of(ctx: &mut Ctx, signer: &Address, job: u64) -> Result<(HeldOut, String), Error> {
    let bad = |why: &str| Error::BadHeldOut {
        job,
        evaluator: signer.to_string(),
        why: why.into(),
    };
    state::job(ctx.store(), job)?.ok_or(Error::UnknownJob(job))?;
    research(ctx.store(), job)?.ok_or(Error::NotResearch(job))?;
    let h = heldout(ctx.store(), job)?
        .filter(|h| h.drawn_at.is_some())
        .ok_or_else(|| {
            bad("no evaluators are drawn: they are drawn when the creator reveals the test split")
        })?;
    if h.result.is_some() {
        return Err(bad("the held-out evaluation is resolved already"));
    }
    match node_of(ctx, signer)?.map(|(id, _)| id) {
        Some(id) if h.evaluators.contains(&id) => Ok((h, id)),
        _ => Err(bad("not a drawn evaluator of this job")),
    }
}

/// `MsgHeldOutCommit`: a drawn evaluator's sealed score, once, within the commit period.
pub fn heldout_commit(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    commitment: [u8; 32],
) -> Result<(), Error> {
    let (mut h, id) = evaluator_of(ctx, signer, job)?;
    let height = ctx.block.height;
    let bad = |why: String| Error::BadHeldOut {
        job,
        evaluator: id.clone(),
        why,
    };
    if height > h.commits_until {
        return Err(bad(format!(
            "the commit period ended at height {}",
            h.commits_until
        )));
    }
    if h.votes.iter().any(|v| v.evaluator == id) {
        return Err(bad("committed already".into()));
    }
    h.votes.push(HeldOutVote {
        evaluator: id.clone(),
        commitment: hexs(&commitment),
        committed_at: height,
        revealed: false,
        final_test_loss_micro: None,
        baseline_test_loss_micro: None,
        unavailable: false,
    });
    set_heldout(ctx, &h)?;
    ctx.emit(
        Event::new("magnet.jobs.heldout_committed")
            .attr("job", job)
            .attr("evaluator", &id),
    );
    Ok(())
}

/// `MsgHeldOutReveal`: opens a sealed score within the reveal period (after the commit period,
/// or once every drawn evaluator committed).
pub fn heldout_reveal(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    final_loss: u64,
    baseline_loss: u64,
    unavailable: bool,
    nonce: [u8; 32],
) -> Result<(), Error> {
    let (mut h, id) = evaluator_of(ctx, signer, job)?;
    let height = ctx.block.height;
    let chain_id = ctx.block.chain_id.clone();
    let bad = |why: String| Error::BadHeldOut {
        job,
        evaluator: id.clone(),
        why,
    };
    if height > h.reveals_until {
        return Err(bad(format!(
            "the reveal period ended at height {}",
            h.reveals_until
        )));
    }
    if height <= h.commits_until && h.votes.len() < h.evaluators.len() {
        return Err(bad(format!(
            "the reveal period opens after height {} (or once every evaluator committed)",
            h.commits_until
        )));
    }
    let n = h.evaluators.len();
    let v = h
        .votes
        .iter_mut()
        .find(|v| v.evaluator == id)
        .ok_or_else(|| bad("no commitment to reveal".into()))?;
    if v.revealed {
        return Err(bad("revealed already".into()));
    }
    let want = crate::msgs::heldout_commitment(
        &chain_id,
        signer,
        job,
        final_loss,
        baseline_loss,
        unavailable,
        &nonce,
    );
    if v.commitment != hexs(&want) {
        return Err(bad(
            "the reveal does not hash to its commitment (wrong losses, unavailable flag or \
             nonce)"
                .into(),
        ));
    }
    v.revealed = true;
    v.unavailable = unavailable;
    if !unavailable {
        v.final_test_loss_micro = Some(final_loss);
        v.baseline_test_loss_micro = Some(baseline_loss);
    }
    let all = h.votes.iter().filter(|v| v.revealed).count() >= n;
    set_heldout(ctx, &h)?;
    if all {
        ctx.set(&heldout_due_key(height, job), Vec::new())?;
    }
    ctx.emit(
        Event::new("magnet.jobs.heldout_revealed")
            .attr("job", job)
            .attr("evaluator", &id)
            .attr("unavailable", unavailable),
    );
    Ok(())
}

/// The lower median (the ⌈n/2⌉-th smallest) of `v`; `None` when empty.
pub fn lower_median(mut v: Vec<u64>) -> Option<u64> {
    v.sort_unstable();
    let i = v.len().checked_sub(1)? / 2;
    v.get(i).copied()
}

/// `(baseline − final) · 10^6 / baseline`, floored; 0 when the final is not better (or the
/// baseline is 0).
pub fn improvement_ppm(final_loss: u64, baseline_loss: u64) -> u64 {
    if baseline_loss == 0 || final_loss >= baseline_loss {
        return 0;
    }
    let x = u128::from(baseline_loss - final_loss) * 1_000_000 / u128::from(baseline_loss);
    u64::try_from(x).unwrap_or(u64::MAX)
}

/// The coordinator's share of `pool`: `pool × min(1, improvement / target)`, floored, exact
/// for any `pool` (no overflow: split into quotient and remainder by `target`).
pub fn coordinator_share(pool: u128, improvement_ppm: u64, target_ppm: u64) -> u128 {
    if target_ppm == 0 {
        return 0;
    }
    let t = u128::from(target_ppm);
    let x = u128::from(improvement_ppm.min(target_ppm));
    (pool / t) * x + (pool % t) * x / t
}

/// A drawn evaluator at resolution: node id, operator, and its revealed score (`None`: silent;
/// `Some(None)`: unavailable; `Some(Some((final, baseline)))`).
pub type EvaluatorScore = (String, Address, Option<Option<(u64, u64)>>);

/// The held-out split of the quality pool (pure): `revealed` is, per drawn evaluator in draw
/// order, its operator and its revealed score (`None`: silent; `Some(None)`: unavailable;
/// `Some(Some((final, baseline)))`). Each drawn evaluator's share is `evaluator_pool / n`;
/// revealed evaluators are paid it, silent ones' shares go back to the creator, the floor dust
/// to the community pool. The rest (`quality_pool − evaluator_pool`, the scored share): no
/// reveal or no evaluator → creator (`unmeasured`); a strict majority of reveals
/// `unavailable` → coordinator (`unavailable`, the creator's forfeit); else by the lower
/// medians' improvement (`measured`).
pub fn heldout_split(
    quality_pool: u128,
    evaluator_pool: u128,
    target_ppm: u64,
    revealed: &[EvaluatorScore],
    resolved_at: u64,
) -> HeldOutResult {
    let evaluator_pool = evaluator_pool.min(quality_pool);
    let scored = quality_pool - evaluator_pool;
    let n = revealed.len() as u128;
    if n == 0 {
        return HeldOutResult {
            outcome: "unmeasured".into(),
            final_test_loss_micro: None,
            baseline_test_loss_micro: None,
            improvement_ppm: 0,
            coordinator: 0,
            creator: quality_pool,
            evaluators: 0,
            community: 0,
            paid: Vec::new(),
            resolved_at,
        };
    }
    let each = evaluator_pool / n;
    let dust = evaluator_pool - each * n;
    let paid: Vec<EvaluatorPay> = revealed
        .iter()
        .filter(|(_, _, v)| v.is_some())
        .map(|(id, op, _)| EvaluatorPay {
            evaluator: id.clone(),
            operator: *op,
            amount: each,
        })
        .collect();
    let evaluators = each * paid.len() as u128;
    let silent_back = each * (n - paid.len() as u128);
    let scores: Vec<(u64, u64)> = revealed.iter().filter_map(|(_, _, v)| (*v)?).collect();
    let unavailable = paid.len() - scores.len();
    let (outcome, fin, base, imp, coordinator) = if paid.is_empty() {
        ("unmeasured", None, None, 0, 0)
    } else if unavailable > scores.len() {
        ("unavailable", None, None, 0, scored)
    } else {
        let fin = lower_median(scores.iter().map(|s| s.0).collect()).unwrap_or(0);
        let base = lower_median(scores.iter().map(|s| s.1).collect()).unwrap_or(0);
        let imp = improvement_ppm(fin, base);
        (
            "measured",
            Some(fin),
            Some(base),
            imp,
            coordinator_share(scored, imp, target_ppm),
        )
    };
    HeldOutResult {
        outcome: outcome.into(),
        final_test_loss_micro: fin,
        baseline_test_loss_micro: base,
        improvement_ppm: imp,
        coordinator,
        creator: scored - coordinator + silent_back,
        evaluators,
        community: dust,
        paid,
        resolved_at,
    }
}

/// Resolves `job`'s held-out evaluation if it is drawn, unresolved and due (at the end of its
/// reveal period, or once every evaluator revealed): the split of [`heldout_split`]; silent
/// evaluators are slashed `no_reveal`. Paid at settlement.
pub fn resolve_heldout(ctx: &mut Ctx, job: u64) -> Result<(), ModuleError> {
    let (Some(mut h), Some(r)) = (heldout(ctx.store(), job)?, research(ctx.store(), job)?) else {
        return Ok(());
    };
    if h.drawn_at.is_none() || h.result.is_some() {
        return Ok(());
    }
    let revealed_n = h.votes.iter().filter(|v| v.revealed).count();
    if ctx.block.height < h.reveals_until && revealed_n < h.evaluators.len() {
        return Ok(());
    }
    let mut revealed = Vec::with_capacity(h.evaluators.len());
    for (i, id) in h.evaluators.iter().enumerate() {
        let Some(op) = h.evaluator_operators.get(i) else {
            continue;
        };
        let v = h.votes.iter().find(|v| v.evaluator == *id && v.revealed);
        let score = v.map(
            |v| match (v.final_test_loss_micro, v.baseline_test_loss_micro) {
                (Some(f), Some(b)) if !v.unavailable => Some((f, b)),
                _ => None,
            },
        );
        if score.is_none() {
            slash_if_node(
                ctx,
                op,
                Offence::NoReveal,
                &format!("no revealed held-out score of research job {job}"),
            )?;
        }
        revealed.push((id.clone(), *op, score));
    }
    let res = heldout_split(
        r.quality_pool,
        h.evaluator_pool,
        h.target_improvement_ppm,
        &revealed,
        ctx.block.height,
    );
    ctx.emit(
        Event::new("magnet.jobs.heldout_resolved")
            .attr("job", job)
            .attr("outcome", &res.outcome)
            .attr("improvement_ppm", res.improvement_ppm)
            .attr("coordinator", res.coordinator)
            .attr("creator", res.creator)
            .attr("evaluators", res.evaluators)
            .attr("community", res.community),
    );
    h.result = Some(res);
    set_heldout(ctx, &h)
}

/// Whether the research job has recorded a version or a dispute (it can no longer be
/// cancelled: work or a check is under way).
pub fn has_versions(store: &dyn KvStore, job: u64) -> Result<bool, ModuleError> {
    Ok(research(store, job)?.is_some_and(|r| r.versions > 0) || !disputes(store, job)?.is_empty())
}

/// Settles research job `j` past its deadline once no check is open and the test reveal
/// period is used or over; returns true when settled. Conserves the budget exactly.
pub fn try_settle(ctx: &mut Ctx, mut j: Job, mut r: Research) -> Result<bool, ModuleError> {
    let ts = trials(ctx.store(), j.id)?;
    if ts.iter().any(Trial::check_open) || disputes(ctx.store(), j.id)?.iter().any(Dispute::open) {
        return Ok(false);
    }
    if r.test_address.is_none()
        && r.test_reveals_until
            .is_some_and(|until| ctx.block.height <= until)
    {
        return Ok(false);
    }
    let ho = heldout(ctx.store(), j.id)?;
    if r.test_address.is_some()
        && ho
            .as_ref()
            .is_some_and(|h| h.drawn_at.is_some() && h.result.is_none())
    {
        return Ok(false);
    }
    let overflow = || ModuleError::overflow("a research job's settlement");
    let mut pay: BTreeMap<Address, u128> = BTreeMap::new();
    let (mut workers, mut checkers) = (0u128, 0u128);
    let add = |pay: &mut BTreeMap<Address, u128>, a: Address, x: u128| {
        let e = pay.entry(a).or_default();
        *e = e.saturating_add(x);
    };
    for t in ts.iter().filter(|t| !t.voided) {
        add(&mut pay, t.worker_operator, r.slot_price);
        workers = workers.checked_add(r.slot_price).ok_or_else(overflow)?;
    }
    for (op, n) in check_credits(ctx.store(), j.id)? {
        let x = r
            .slot_price
            .checked_mul(u128::from(n))
            .ok_or_else(overflow)?;
        add(&mut pay, op, x);
        checkers = checkers.checked_add(x).ok_or_else(overflow)?;
    }
    let slots = u128::from(r.spec.trial_budget).saturating_add(u128::from(r.check_slots));
    let priced = r.slot_price.checked_mul(slots).ok_or_else(overflow)?;
    let unused_slots = priced
        .checked_sub(workers)
        .and_then(|x| x.checked_sub(checkers))
        .ok_or_else(overflow)?;
    let measured = ho.and_then(|h| h.result);
    let (coordinator, quality_back, quality, evaluator_pay) =
        match (r.final_at, &r.test_address, measured) {
            (None, _, _) => (0, r.quality_pool, "no_final", Vec::new()),
            (Some(_), None, _) => (r.quality_pool, 0, "forfeit", Vec::new()),
            (Some(_), Some(_), Some(m)) => {
                let q = match m.outcome.as_str() {
                    "measured" => "measured",
                    "unavailable" => "forfeit",
                    _ => "unmeasured",
                };
                (m.coordinator, m.creator, q, m.paid)
            }
            // A reveal with no held-out draw (before held-out evaluators existed).
            (Some(_), Some(_), None) => (0, r.quality_pool, "unmeasured", Vec::new()),
        };
    if coordinator > 0 {
        add(&mut pay, r.coordinator_operator, coordinator);
    }
    let mut evaluators = 0u128;
    for e in &evaluator_pay {
        add(&mut pay, e.operator, e.amount);
        evaluators = evaluators.checked_add(e.amount).ok_or_else(overflow)?;
    }
    let creator = unused_slots
        .checked_add(quality_back)
        .ok_or_else(overflow)?;
    // The remainder — slot dust, any share outside both pools, the evaluator share's dust.
    let community = j
        .budget
        .checked_sub(workers)
        .and_then(|x| x.checked_sub(checkers))
        .and_then(|x| x.checked_sub(coordinator))
        .and_then(|x| x.checked_sub(evaluators))
        .and_then(|x| x.checked_sub(creator))
        .ok_or_else(overflow)?;
    let bank = ctx.services().bank;
    for (a, x) in &pay {
        bank.send(ctx, &escrow(), a, &Coins::umag(*x))?;
    }
    bank.send(ctx, &escrow(), &j.creator, &Coins::umag(creator))?;
    bank.send(ctx, &escrow(), &community_pool(), &Coins::umag(community))?;
    r.settlement = Some(Settlement {
        workers,
        checkers,
        coordinator,
        creator,
        community,
        quality: quality.into(),
    });
    set_research(ctx, &r)?;
    j.status = Status::Settled;
    state::set_job(ctx, &j)?;
    ctx.emit(
        Event::new("magnet.jobs.research_settled")
            .attr("job", j.id)
            .attr("workers", workers)
            .attr("checkers", checkers)
            .attr("coordinator", coordinator)
            .attr("creator", creator)
            .attr("evaluators", evaluators)
            .attr("community", community)
            .attr("quality", quality),
    );
    Ok(true)
}

/// One open check as a drawn checker looks for it (`open_check_list` in the research view).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OpenCheck {
    /// Job.
    pub job: u64,
    /// Unit hash (hex): what `MsgTrialCheckCommit` / `MsgTrialCheckReveal` name.
    pub unit_hash: String,
    /// `trial` (a sampled or disputed live record) or `dispute` (an entry held apart).
    pub source: &'static str,
    /// Disputed by the coordinator.
    pub disputed: bool,
    /// The entry's worker node id.
    pub worker_node_id: String,
    /// The entry's oof hash (hex).
    pub oof_hash: String,
    /// Drawn checker node ids.
    pub checkers: Vec<String>,
    /// Last commit height.
    pub commits_until: u64,
    /// Last reveal height.
    pub reveals_until: u64,
    /// Checkers that committed.
    pub committed: Vec<String>,
    /// Checkers that revealed.
    pub revealed: Vec<String>,
}

fn open_check(
    job: u64,
    source: &'static str,
    disputed: bool,
    unit: &str,
    worker: &str,
    oof: &str,
    c: &Check,
) -> OpenCheck {
    OpenCheck {
        job,
        unit_hash: unit.into(),
        source,
        disputed,
        worker_node_id: worker.into(),
        oof_hash: oof.into(),
        checkers: c.checkers.clone(),
        commits_until: c.commits_until,
        reveals_until: c.reveals_until,
        committed: c.votes.iter().map(|v| v.checker.clone()).collect(),
        revealed: c
            .votes
            .iter()
            .filter(|v| v.oof_hash.is_some())
            .map(|v| v.checker.clone())
            .collect(),
    }
}

/// The `/magnet.jobs.v1/research` view of job `id`: spec, coordinator, versions, trials with
/// their checks, disputes with theirs, the pending checks (unit hashes, and
/// `open_check_list` with what a drawn checker needs) and the settlement (null when not a
/// research job).
pub fn view(store: &dyn KvStore, id: u64) -> Result<serde_json::Value, ModuleError> {
    let Some(r) = research(store, id)? else {
        return Ok(serde_json::Value::Null);
    };
    let ts = trials(store, id)?;
    let ds = disputes(store, id)?;
    let mut open: Vec<OpenCheck> = Vec::new();
    for t in &ts {
        if let Some(c) = t.check.as_ref().filter(|_| t.check_open()) {
            let disputed = ds
                .iter()
                .any(|d| d.unit_hash == t.unit_hash && d.on_record && d.open());
            open.push(open_check(
                id,
                "trial",
                disputed,
                &t.unit_hash,
                &t.worker_node_id,
                &t.oof_hash,
                c,
            ));
        }
    }
    for d in &ds {
        if let Some(c) = d.check.as_ref().filter(|c| c.outcome == CheckOutcome::Open) {
            open.push(open_check(
                id,
                "dispute",
                true,
                &d.unit_hash,
                &d.worker_node_id,
                &d.oof_hash,
                c,
            ));
        }
    }
    let pending: Vec<&str> = open.iter().map(|o| o.unit_hash.as_str()).collect();
    Ok(serde_json::json!({
        "research": r,
        "versions": versions(store, id)?,
        "trials": ts,
        "disputes": ds,
        "heldout": heldout(store, id)?,
        "pending_checks": pending,
        "open_check_list": open,
        "check_credits": check_credits(store, id)?
            .into_iter()
            .map(|(a, n)| (a.to_string(), n))
            .collect::<Vec<_>>(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes() -> Vec<(String, u128)> {
        vec![
            ("node-a".into(), 10),
            ("node-b".into(), 1_000),
            ("node-c".into(), 10),
            ("node-d".into(), 0),
        ]
    }

    #[test]
    fn the_trial_sample_is_a_pure_function_of_the_block_hash_job_unit_and_rate() {
        // (rate ppm, sampled count out of 2000 units: at least, at most)
        let table: [(u64, usize, usize); 4] = [
            (0, 0, 0),
            (50_000, 60, 140),
            (250_000, 420, 580),
            (1_000_000, 2_000, 2_000),
        ];
        let units: Vec<[u8; 32]> = (0..2_000u32)
            .map(|i| magnet_core::sha256(&i.to_be_bytes()))
            .collect();
        for (rate, lo, hi) in table {
            let hits = units
                .iter()
                .filter(|u| sampled(&[3; 32], 1, u, rate))
                .count();
            assert!((lo..=hi).contains(&hits), "rate {rate}: {hits}");
            // Same inputs, same answer.
            let again = units
                .iter()
                .filter(|u| sampled(&[3; 32], 1, u, rate))
                .count();
            assert_eq!(hits, again);
        }
        // Another block hash or job samples another set.
        let pick = |h: [u8; 32], job: u64| -> Vec<bool> {
            units.iter().map(|u| sampled(&h, job, u, 250_000)).collect()
        };
        assert_ne!(pick([3; 32], 1), pick([4; 32], 1));
        assert_ne!(pick([3; 32], 1), pick([3; 32], 2));
    }

    #[test]
    fn the_checker_draw_never_picks_an_excluded_node_nor_twice_and_takes_what_exists() {
        // (excluded, k, how many drawn)
        let table: [(&[&str], u32, usize); 6] = [
            (&[], 3, 3),
            (&["node-b"], 3, 3),
            (&["node-b", "node-a"], 3, 2),
            (&["node-a", "node-b", "node-c"], 3, 1),
            (&["node-a", "node-b", "node-c", "node-d"], 3, 0),
            (&[], 0, 0),
        ];
        for (exclude, k, n) in table {
            for i in 0..100u64 {
                let h = magnet_core::sha256(&i.to_be_bytes());
                let d = draw(CHECKER_DOMAIN, &nodes(), exclude, &h, 1, &[9; 32], k);
                assert_eq!(d.len(), n, "{exclude:?} k={k}");
                assert!(d.iter().all(|x| !exclude.contains(&x.as_str())));
                let set: std::collections::BTreeSet<_> = d.iter().collect();
                assert_eq!(set.len(), d.len());
            }
        }
    }

    #[test]
    fn the_draw_is_deterministic_independent_of_input_order_and_domain_separated() {
        let h = [7u8; 32];
        let mut rev = nodes();
        rev.reverse();
        let a = draw(CHECKER_DOMAIN, &nodes(), &[], &h, 1, &[1; 32], 2);
        assert_eq!(a, draw(CHECKER_DOMAIN, &rev, &[], &h, 1, &[1; 32], 2));
        assert_eq!(a, draw(CHECKER_DOMAIN, &nodes(), &[], &h, 1, &[1; 32], 2));
        // Over many blocks the coordinator and checker draws differ somewhere.
        let differs = (0..50u64).any(|i| {
            let h = magnet_core::sha256(&i.to_be_bytes());
            draw(COORDINATOR_DOMAIN, &nodes(), &[], &h, 1, &[], 1)
                != draw(CHECKER_DOMAIN, &nodes(), &[], &h, 1, &[], 1)
        });
        assert!(differs);
    }

    #[test]
    fn the_draw_follows_stake() {
        let first_b = (0..500u64)
            .filter(|i| {
                let h = magnet_core::sha256(&i.to_be_bytes());
                draw(COORDINATOR_DOMAIN, &nodes(), &[], &h, 1, &[], 1)[0] == "node-b"
            })
            .count();
        assert!(
            first_b > 450,
            "node-b holds ~98 % of the stake: {first_b}/500"
        );
    }

    #[test]
    fn the_lower_median_and_the_improvement_are_integer_and_floored() {
        // (values, lower median)
        let medians: [(&[u64], Option<u64>); 5] = [
            (&[], None),
            (&[7], Some(7)),
            (&[9, 1], Some(1)),
            (&[5, 1, 9], Some(5)),
            (&[4, 8, 1, 6], Some(4)),
        ];
        for (v, m) in medians {
            assert_eq!(lower_median(v.to_vec()), m, "{v:?}");
        }
        // (final, baseline, improvement ppm)
        let table: [(u64, u64, u64); 6] = [
            (570_000, 600_000, 50_000),
            (600_000, 600_000, 0),
            (650_000, 600_000, 0),
            (0, 600_000, 1_000_000),
            (1, 3, 666_666),
            (5, 0, 0),
        ];
        for (f, b, want) in table {
            assert_eq!(improvement_ppm(f, b), want, "{f} vs {b}");
        }
        assert_eq!(coordinator_share(18_000_000, 50_000, 100_000), 9_000_000);
        assert_eq!(coordinator_share(18_000_000, 250_000, 100_000), 18_000_000);
        assert_eq!(coordinator_share(u128::MAX, 1, 3), u128::MAX / 3);
    }

    proptest! {
        /// The held-out split spends the quality pool exactly, never pays the coordinator more
        /// than the scored share, and pays each revealed evaluator the same.
        #[test]
        fn the_heldout_split_conserves_the_quality_pool(
            q in 0u128..1_000_000_000_000_000,
            e_ppm in 0u64..=1_000_000,
            target in 1u64..=1_000_000,
            votes in proptest::collection::vec(
                proptest::option::of(proptest::option::of((0u64..2_000_000, 0u64..2_000_000))),
                0..8,
            ),
        ) {
            let e = ppm_of(q, e_ppm).unwrap_or(0);
            let revealed: Vec<EvaluatorScore> = votes
                .iter()
                .enumerate()
                .map(|(i, v)| (format!("node-{i}"), Address([i as u8; 20]), *v))
                .collect();
            let r = heldout_split(q, e, target, &revealed, 1);
            prop_assert_eq!(r.coordinator + r.creator + r.evaluators + r.community, q);
            prop_assert!(r.coordinator <= q - e);
            prop_assert_eq!(r.paid.iter().map(|p| p.amount).sum::<u128>(), r.evaluators);
            prop_assert!(r.community < revealed.len().max(1) as u128);
        }

        /// Every payment the pricing allows fits in the escrow: both pools within the budget,
        /// every slot (trials and checks) within the trial pool.
        #[test]
        fn pricing_never_promises_more_than_the_escrow(
            budget in 0u128..1_000_000_000_000_000,
            trials_ppm in 0u64..=1_000_000,
            q in 0u64..=1_000_000,
            trial_budget in 1u32..=1_000_000,
            recheck in 0u32..=1_000_000,
            checkers in 1u32..=32,
        ) {
            let quality_ppm = q.min(1_000_000 - trials_ppm);
            let (tp, qp, cs, price) =
                price(budget, trials_ppm, quality_ppm, trial_budget, recheck, checkers);
            prop_assert!(tp + qp <= budget);
            let slots = u128::from(trial_budget) + u128::from(cs);
            prop_assert!(price * slots <= tp);
            prop_assert!(tp - price * slots < slots);
            prop_assert!(
                u128::from(cs) * 1_000_000
                    >= u128::from(trial_budget) * u128::from(recheck) * u128::from(checkers)
            );
        }
    }
}
