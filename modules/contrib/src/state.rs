//! Every contrib storage key.
//!
//! * `contrib/params` → [`Params`] (JSON)
//! * `contrib/epoch_start/<e:8 BE>` → block time the epoch started (u64 borsh)
//! * `contrib/phase/<e:8 BE>` → [`EpochPhase`] of an epoch that has contributions (borsh)
//! * `contrib/c/<e:8 BE><job:8 BE><operator:20>` → [`Contribution`] (borsh)
//! * `contrib/a/<e:8 BE><job:8 BE><contributor:20><evaluator:20>` → [`Assignment`] (borsh)
//! * `contrib/opcount/<e:8 BE><operator:20>` → contributions of an operator in an epoch (u32)
//! * `contrib/claimed/<job:8 BE><Δ hash:32>` → epoch whose result claimed that lineage entry

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"contrib/params";
/// Epoch starts.
pub const START_PREFIX: &[u8] = b"contrib/epoch_start/";
/// Epoch phases.
pub const PHASE_PREFIX: &[u8] = b"contrib/phase/";
/// Contributions.
pub const C_PREFIX: &[u8] = b"contrib/c/";
/// Evaluator assignments.
pub const A_PREFIX: &[u8] = b"contrib/a/";
/// Contributions per operator per epoch.
pub const OPCOUNT_PREFIX: &[u8] = b"contrib/opcount/";
/// Lineage entries already claimed.
pub const CLAIMED_PREFIX: &[u8] = b"contrib/claimed/";

/// Where an epoch's contributions are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub enum Phase {
    /// Commits and reveals.
    Open,
    /// Evaluators assigned; evaluations running.
    Evaluating,
    /// Scores final; the challenge window closes at `closes_at`.
    Final {
        /// Block time the challenge window closes.
        closes_at: u64,
    },
}

/// An epoch's progress.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct EpochPhase {
    /// Phase.
    pub phase: Phase,
    /// Contributions committed.
    pub count: u32,
    /// The evaluation seed: the hash of the block that closed the reveal window (`None` while
    /// reveals are open). Evaluators draw the epoch's evaluation windows from it (ADR 0090), so
    /// no contributor can know them while it trains or reveals.
    #[serde(serialize_with = "opt_hex32")]
    pub eval_seed: Option<[u8; 32]>,
}

fn opt_hex32<S: serde::Serializer>(v: &Option<[u8; 32]>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(h) => s.serialize_some(&hex::encode(h)),
        None => s.serialize_none(),
    }
}

/// The revealed work.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Work {
    /// Checkpoint hash (the worker's latest local model; bound by the commitment, but no
    /// score reads it: training quality is the marginal effect of the named entries, ADR 0090).
    #[serde(with = "magnet_core::coins::hex32")]
    pub checkpoint_hash: [u8; 32],
    /// Steps.
    pub steps: u64,
    /// Parameter count.
    pub params: u64,
    /// Data hash.
    #[serde(with = "magnet_core::coins::hex32")]
    pub data_hash: [u8; 32],
    /// Kind.
    pub kind: String,
    /// Training: the (round, Δ hash) lineage entries this result claims.
    #[serde(serialize_with = "entries_hex")]
    pub entries: Vec<(u64, [u8; 32])>,
}

fn entries_hex<S: serde::Serializer>(v: &[(u64, [u8; 32])], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for (r, d) in v {
        seq.serialize_element(&(r, hex::encode(d)))?;
    }
    seq.end()
}

/// Status of a contribution.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub enum Status {
    /// Committed, not revealed.
    Committed,
    /// Revealed and matching.
    Revealed,
    /// Revealed but not matching the commitment (slashed).
    Mismatch,
    /// Never revealed (slashed).
    NoReveal,
    /// Evaluated: quality and compute are final.
    Scored,
    /// Too few evaluations: quality 0.
    Unscored,
}

/// One contribution.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Contribution {
    /// Epoch.
    pub epoch: u64,
    /// Job.
    pub job: u64,
    /// Operator.
    pub operator: Address,
    /// Commitment.
    #[serde(with = "magnet_core::coins::hex32")]
    pub commitment: [u8; 32],
    /// Status.
    pub status: Status,
    /// Revealed work.
    pub work: Option<Work>,
    /// Median score (fixed 10^6; may be negative), once scored.
    pub median: Option<i64>,
    /// Verified quality q.
    pub quality: u128,
    /// Verified compute c.
    pub compute: u128,
    /// Compute derived at reveal from the lineage entries (Σ claim steps × job parameters),
    /// before the bond cap; 0 for kinds without a verified compute path.
    pub entry_compute: u128,
    /// Evaluators within the band, with slots.
    pub good_evaluators: Vec<(Address, u32)>,
    /// Under an open notary challenge.
    pub disputed: bool,
    /// Invalidated by a notary resolution.
    pub invalidated: bool,
}

/// One evaluator's assignment to one contribution.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Assignment {
    /// Slots (draws) this evaluator holds.
    pub slots: u32,
    /// Its score commitment.
    pub commitment: Option<[u8; 32]>,
    /// Its revealed score.
    pub score: Option<i64>,
    /// Its reveal did not match.
    pub mismatched: bool,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

fn e8(e: u64) -> [u8; 8] {
    e.to_be_bytes()
}

/// Start time of epoch `e`, if seen.
pub fn epoch_start(store: &dyn KvStore, e: u64) -> Result<Option<u64>, ModuleError> {
    let k = [START_PREFIX, &e8(e)].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|x| ModuleError::corrupt(&k, &x.to_string()))
}

/// Record the start of `e`.
pub fn set_epoch_start(store: &mut dyn KvStore, e: u64, t: u64) {
    magnet_core::store::set_borsh(store, &[START_PREFIX, &e8(e)].concat(), &t);
}

/// Phase of epoch `e`.
pub fn phase(store: &dyn KvStore, e: u64) -> Result<Option<EpochPhase>, ModuleError> {
    let k = [PHASE_PREFIX, &e8(e)].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|x| ModuleError::corrupt(&k, &x.to_string()))
}

/// Write the phase of `e`.
pub fn set_phase(ctx: &mut Ctx, e: u64, p: &EpochPhase) -> Result<(), ModuleError> {
    ctx.set_borsh(&[PHASE_PREFIX, &e8(e)].concat(), p)?;
    Ok(())
}

/// Epochs whose phase is not final, ascending.
pub fn unfinished(store: &dyn KvStore) -> Result<Vec<(u64, EpochPhase)>, ModuleError> {
    let mut out = Vec::new();
    for (k, v) in magnet_core::store::scan_prefix(store, PHASE_PREFIX) {
        let p =
            EpochPhase::try_from_slice(&v).map_err(|x| ModuleError::corrupt(&k, &x.to_string()))?;
        if !matches!(p.phase, Phase::Final { .. }) {
            let mut b = [0u8; 8];
            b.copy_from_slice(&k[PHASE_PREFIX.len()..]);
            out.push((u64::from_be_bytes(b), p));
        }
    }
    Ok(out)
}

/// Key of a contribution.
pub fn c_key(e: u64, job: u64, op: &Address) -> Vec<u8> {
    [C_PREFIX, &e8(e), &job.to_be_bytes(), op.as_bytes()].concat()
}

/// A contribution.
pub fn contribution(
    ctx: &mut Ctx,
    e: u64,
    job: u64,
    op: &Address,
) -> Result<Option<Contribution>, ModuleError> {
    ctx.get_borsh(&c_key(e, job, op))
}

/// Write a contribution.
pub fn set_contribution(ctx: &mut Ctx, c: &Contribution) -> Result<(), ModuleError> {
    ctx.set_borsh(&c_key(c.epoch, c.job, &c.operator), c)?;
    Ok(())
}

/// All contributions of epoch `e`, in key order.
pub fn contributions(store: &dyn KvStore, e: u64) -> Result<Vec<Contribution>, ModuleError> {
    magnet_core::store::scan_prefix(store, &[C_PREFIX, &e8(e)].concat())
        .into_iter()
        .map(|(k, v)| {
            Contribution::try_from_slice(&v).map_err(|x| ModuleError::corrupt(&k, &x.to_string()))
        })
        .collect()
}

/// Contributions of `e` to `job`, in key order (metered: one seek plus each key returned).
pub fn job_contributions(
    ctx: &mut Ctx,
    e: u64,
    job: u64,
) -> Result<Vec<Contribution>, ModuleError> {
    ctx.scan_prefix(&[C_PREFIX, &e8(e), &job.to_be_bytes()].concat())?
        .into_iter()
        .map(|(k, v)| {
            Contribution::try_from_slice(&v).map_err(|x| ModuleError::corrupt(&k, &x.to_string()))
        })
        .collect()
}

/// Key of an assignment.
pub fn a_key(e: u64, job: u64, contributor: &Address, evaluator: &Address) -> Vec<u8> {
    [
        A_PREFIX,
        &e8(e),
        &job.to_be_bytes(),
        contributor.as_bytes(),
        evaluator.as_bytes(),
    ]
    .concat()
}

/// All assignments of one contribution, by evaluator.
pub fn assignments(
    store: &dyn KvStore,
    e: u64,
    job: u64,
    contributor: &Address,
) -> Result<Vec<(Address, Assignment)>, ModuleError> {
    let prefix = [A_PREFIX, &e8(e), &job.to_be_bytes(), contributor.as_bytes()].concat();
    magnet_core::store::scan_prefix(store, &prefix)
        .into_iter()
        .map(|(k, v)| {
            let ev = Address::from_slice(&k[prefix.len()..])
                .map_err(|x| ModuleError::corrupt(&k, &x.to_string()))?;
            let a = Assignment::try_from_slice(&v)
                .map_err(|x| ModuleError::corrupt(&k, &x.to_string()))?;
            Ok((ev, a))
        })
        .collect()
}
