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
//! * **Test split.** After the final version the creator has `test_reveal_blocks` to open the
//!   sealed test split (`MsgRevealTestSplit`); a reveal that does not hash to the commitment is
//!   refused and changes nothing.
//! * **Settlement** (past the deadline, once no check is open and the test reveal period is
//!   over or used): each live trial pays its worker's operator one slot; each revealed check in
//!   a strict majority is credited to its checker's operator at resolution and pays one slot
//!   (at most `check_slots` credits in all, in resolution order). The
//!   quality pool: no final version → back to the creator; final but no valid test reveal →
//!   all of it to the coordinator (the creator's forfeit, ADR 0111); a valid reveal → back to
//!   the creator until held-out evaluators land (ADR 0111 "left"). Unused slots return to the
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
    /// How the quality pool went: `no_final`, `forfeit` or `unmeasured`.
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
    let reg = ctx.services().registry()?;
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
        let op = reg
            .operator_of(ctx, &e.worker)?
            .ok_or_else(|| bad_trial("its worker is not a registered node key".into()))?;
        let info = reg
            .node(ctx, &op)?
            .ok_or_else(|| bad_trial("its worker is not a registered node key".into()))?;
        e.claim(&chain_id, job)
            .verify(&info.node_pubkey, &e.signature)
            .map_err(|err| bad_trial(format!("the worker's signature: {err}")))?;
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

/// `end_block`: sample the trials recorded in this block, then resolve the checks due.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let fresh = magnet_core::store::scan_prefix(ctx.store(), state::TRIAL_NEW_PREFIX);
    if !fresh.is_empty() {
        let p = state::params(ctx.store())?;
        let reg = ctx.services().registry()?;
        // Checkers re-run trials: tiers that train or do research.
        let mut live = Vec::new();
        for n in reg.live_nodes(ctx)? {
            if reg.tier_does(ctx, &n.tier, "training")?
                || reg.tier_does(ctx, &n.tier, "research")?
            {
                live.push(n);
            }
        }
        let nodes: Vec<(String, u128)> = live.iter().map(|n| (n.node_id.clone(), n.bond)).collect();
        for (k, _) in fresh {
            ctx.delete(&k)?;
            let (job, unit) = job_unit(&k);
            let (Some(mut r), Some(mut t)) =
                (research(ctx.store(), job)?, trial(ctx.store(), job, &unit)?)
            else {
                continue;
            };
            if t.check.is_some()
                || !sampled(&ctx.block.hash, job, &unit, u64::from(r.spec.recheck_ppm))
            {
                continue;
            }
            let (checkers, checker_operators): (Vec<String>, Vec<Address>) = draw(
                CHECKER_DOMAIN,
                &nodes,
                &[t.worker_node_id.as_str(), r.coordinator.as_str()],
                &ctx.block.hash,
                job,
                &unit,
                p.checkers_per_trial,
            )
            .into_iter()
            .filter_map(|id| {
                let op = live.iter().find(|n| n.node_id == id)?.operator;
                Some((id, op))
            })
            .unzip();
            let commits_until = ctx.block.height.saturating_add(p.check_commit_blocks);
            let reveals_until = commits_until.saturating_add(p.check_reveal_blocks);
            let outcome = if checkers.is_empty() {
                CheckOutcome::NoVerdict
            } else {
                ctx.set(&check_due_key(reveals_until, job, &unit), Vec::new())?;
                r.open_checks = r.open_checks.saturating_add(1);
                set_research(ctx, &r)?;
                CheckOutcome::Open
            };
            ctx.emit(
                Event::new("magnet.jobs.trial_check_drawn")
                    .attr("job", job)
                    .attr("unit", &t.unit_hash)
                    .attr("checkers", checkers.join(","))
                    .attr("commits_until", commits_until)
                    .attr("reveals_until", reveals_until),
            );
            t.check = Some(Check {
                drawn_at: ctx.block.height,
                checkers,
                checker_operators,
                commits_until,
                reveals_until,
                votes: Vec::new(),
                outcome,
            });
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
    Ok(())
}

/// The trial with an open check and the signer's node id when it is one of its checkers.
fn checker_trial(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    unit: &[u8; 32],
) -> Result<(Trial, String), Error> {
    let bad = |who: String, why: &str| Error::BadCheck {
        job,
        unit: hexs(unit),
        checker: who,
        why: why.into(),
    };
    let t =
        trial(ctx.store(), job, unit)?.ok_or_else(|| bad(signer.to_string(), "no such trial"))?;
    if !t.check_open() {
        return Err(bad(signer.to_string(), "the trial has no open check"));
    }
    let me = node_of(ctx, signer)?.map(|(id, _)| id);
    let drawn = t.check.as_ref().map(|c| &c.checkers);
    match me {
        Some(id) if drawn.is_some_and(|d| d.contains(&id)) => Ok((t, id)),
        _ => Err(bad(signer.to_string(), "not a drawn checker of this trial")),
    }
}

/// `MsgTrialCheckCommit`: a drawn checker's sealed re-run, once, within the commit period.
pub fn commit(
    ctx: &mut Ctx,
    signer: &Address,
    job: u64,
    unit: [u8; 32],
    commitment: [u8; 32],
) -> Result<(), Error> {
    let (mut t, id) = checker_trial(ctx, signer, job, &unit)?;
    let height = ctx.block.height;
    let bad = |why: String| Error::BadCheck {
        job,
        unit: hexs(&unit),
        checker: id.clone(),
        why,
    };
    let c = t
        .check
        .as_mut()
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
    ctx.set_borsh(&trial_key(job, &unit), &t)?;
    ctx.emit(
        Event::new("magnet.jobs.trial_check_committed")
            .attr("job", job)
            .attr("unit", &t.unit_hash)
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
    let (mut t, id) = checker_trial(ctx, signer, job, &unit)?;
    let height = ctx.block.height;
    let chain_id = ctx.block.chain_id.clone();
    let bad = |why: String| Error::BadCheck {
        job,
        unit: hexs(&unit),
        checker: id.clone(),
        why,
    };
    let c = t
        .check
        .as_mut()
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
    ctx.set_borsh(&trial_key(job, &unit), &t)?;
    if all {
        ctx.set(&check_due_key(height, job, &unit), Vec::new())?;
    }
    ctx.emit(
        Event::new("magnet.jobs.trial_check_revealed")
            .attr("job", job)
            .attr("unit", &t.unit_hash)
            .attr("checker", &id)
            .attr("agrees", hexs(&oof_hash) == t.oof_hash),
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

/// Resolves trial `unit`'s check if it is open and due (exactly once: it leaves `Open`).
pub fn resolve(ctx: &mut Ctx, job: u64, unit: &[u8; 32]) -> Result<(), ModuleError> {
    let Some(t) = trial(ctx.store(), job, unit)? else {
        return Ok(());
    };
    let Some(c) = t.check.clone() else {
        return Ok(());
    };
    let revealed: Vec<(String, bool)> = c
        .votes
        .iter()
        .filter_map(|v| {
            v.oof_hash
                .as_ref()
                .map(|h| (v.checker.clone(), *h != t.oof_hash))
        })
        .collect();
    if c.outcome != CheckOutcome::Open
        || (ctx.block.height < c.reveals_until && revealed.len() < c.checkers.len())
    {
        return Ok(());
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
    let (mut slashed, mut voided) = (0u128, 0u32);
    if outcome == CheckOutcome::Fabricated {
        slashed = slash_if_node(
            ctx,
            &t.worker_operator,
            Offence::FabricatedTrial,
            &format!(
                "trial {} of research job {job}: {against} of {} revealed re-runs contradict its \
                 out-of-fold hash",
                t.unit_hash,
                revealed.len()
            ),
        )?;
        // Every trial of this worker in the job is voided.
        for mut other in trials(ctx.store(), job)? {
            if other.worker_operator == t.worker_operator && !other.voided {
                other.voided = true;
                voided = voided.saturating_add(1);
                ctx.set_borsh(&trial_key(job, &unhex32(&other.unit_hash)), &other)?;
            }
        }
        if let Some(mut r) = research(ctx.store(), job)? {
            r.live_trials = r.live_trials.saturating_sub(voided);
            set_research(ctx, &r)?;
        }
    }
    // The strict majority's side (true: against the entry); a tie has none.
    let majority = match against.cmp(&agree) {
        std::cmp::Ordering::Greater => Some(true),
        std::cmp::Ordering::Less => Some(false),
        std::cmp::Ordering::Equal => None,
    };
    let Some(mut t) = trial(ctx.store(), job, unit)? else {
        return Ok(());
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
        match revealed.iter().find(|(who, _)| who == id) {
            None => {
                silent = silent.saturating_add(1);
                slash_if_node(
                    ctx,
                    op,
                    Offence::NoReveal,
                    &format!("no revealed re-run of trial {} of job {job}", t.unit_hash),
                )?;
            }
            Some((_, d)) if majority.is_some_and(|m| m != *d) => {
                deviated = deviated.saturating_add(1);
                slash_if_node(
                    ctx,
                    op,
                    Offence::AuditDeviation,
                    &format!(
                        "re-run of trial {} of job {job} against the majority {against}-{agree}",
                        t.unit_hash
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
    t.check = Some(Check {
        votes,
        outcome,
        ..c
    });
    ctx.set_borsh(&trial_key(job, unit), &t)?;
    let name = match outcome {
        CheckOutcome::Fabricated => "fabricated",
        CheckOutcome::Agreed => "agreed",
        _ => "no_verdict",
    };
    ctx.emit(
        Event::new("magnet.jobs.trial_check_resolved")
            .attr("job", job)
            .attr("unit", &t.unit_hash)
            .attr("outcome", name)
            .attr("against", against)
            .attr("agree", agree)
            .attr("worker", t.worker_operator)
            .attr("slashed", slashed)
            .attr("trials_voided", voided)
            .attr("checks_credited", credited)
            .attr("checkers_silent", silent)
            .attr("checkers_deviated", deviated),
    );
    tracing::info!(job, unit = %t.unit_hash, outcome = name, against, agree, "trial check resolved");
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
    Ok(())
}

/// Whether the research job has recorded a version (it can no longer be cancelled).
pub fn has_versions(store: &dyn KvStore, job: u64) -> Result<bool, ModuleError> {
    Ok(research(store, job)?.is_some_and(|r| r.versions > 0))
}

/// Settles research job `j` past its deadline once no check is open and the test reveal
/// period is used or over; returns true when settled. Conserves the budget exactly.
pub fn try_settle(ctx: &mut Ctx, mut j: Job, mut r: Research) -> Result<bool, ModuleError> {
    let ts = trials(ctx.store(), j.id)?;
    if ts.iter().any(Trial::check_open) {
        return Ok(false);
    }
    if r.test_address.is_none()
        && r.test_reveals_until
            .is_some_and(|until| ctx.block.height <= until)
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
    let (coordinator, quality_back, quality) = match (r.final_at, &r.test_address) {
        (None, _) => (0, r.quality_pool, "no_final"),
        (Some(_), None) => (r.quality_pool, 0, "forfeit"),
        (Some(_), Some(_)) => (0, r.quality_pool, "unmeasured"),
    };
    if coordinator > 0 {
        add(&mut pay, r.coordinator_operator, coordinator);
    }
    let creator = unused_slots
        .checked_add(quality_back)
        .ok_or_else(overflow)?;
    let community = j
        .budget
        .checked_sub(workers)
        .and_then(|x| x.checked_sub(checkers))
        .and_then(|x| x.checked_sub(coordinator))
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
            .attr("community", community)
            .attr("quality", quality),
    );
    Ok(true)
}

/// The `/magnet.jobs.v1/research` view of job `id`: spec, coordinator, versions, trials with
/// their checks, the pending checks and the settlement (null when not a research job).
pub fn view(store: &dyn KvStore, id: u64) -> Result<serde_json::Value, ModuleError> {
    let Some(r) = research(store, id)? else {
        return Ok(serde_json::Value::Null);
    };
    let ts = trials(store, id)?;
    let pending: Vec<&str> = ts
        .iter()
        .filter(|t| t.check_open())
        .map(|t| t.unit_hash.as_str())
        .collect();
    Ok(serde_json::json!({
        "research": r,
        "versions": versions(store, id)?,
        "trials": ts,
        "pending_checks": pending,
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

    proptest! {
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
