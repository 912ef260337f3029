//! Every gov storage key.
//!
//! * `gov/params` → [`Params`] (JSON)
//! * `gov/next_id` → next proposal id (u64 borsh), ids start at 1
//! * `gov/proposal/<id:8 BE>` → [`Proposal`] (borsh)
//! * `gov/deposit/<id:8 BE><depositor:20>` → amount (u128 borsh)
//! * `gov/vote/<id:8 BE><voter:20>` → [`VoteOption`] (borsh)
//! * `gov/queue/<time:8 BE><id:8 BE>` → () : a deposit or voting period ends at `time`
//! * `gov/pending/<seq:8 BE>` → [`PendingChange`] (borsh): passed param changes not yet applied
//! * `gov/upgrade` → [`UpgradePlan`] (JSON): the app halts at its height
//!
//! Deposits sit in the module account `Address::module("gov")`.

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"gov/params";
/// Next id.
pub const NEXT_ID_KEY: &[u8] = b"gov/next_id";
/// Proposals.
pub const PROPOSAL_PREFIX: &[u8] = b"gov/proposal/";
/// Deposits.
pub const DEPOSIT_PREFIX: &[u8] = b"gov/deposit/";
/// Votes.
pub const VOTE_PREFIX: &[u8] = b"gov/vote/";
/// Period ends.
pub const QUEUE_PREFIX: &[u8] = b"gov/queue/";
/// Pending changes.
pub const PENDING_PREFIX: &[u8] = b"gov/pending/";
/// Pending-change counter.
pub const PENDING_SEQ_KEY: &[u8] = b"gov/pending_seq";
/// Upgrade plan.
pub const UPGRADE_KEY: &[u8] = b"gov/upgrade";

/// Escrow of deposits.
pub fn escrow() -> Address {
    Address::module("gov")
}

/// A vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VoteOption {
    /// Yes.
    Yes,
    /// No.
    No,
    /// Abstain (counts for quorum only).
    Abstain,
    /// No with veto.
    Veto,
}

/// Where a proposal is.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Collecting deposits until `ends`.
    DepositPeriod {
        /// End.
        ends: u64,
    },
    /// Voting until `ends`.
    Voting {
        /// End.
        ends: u64,
    },
    /// Passed and executed (or queued for the next epoch boundary).
    Passed,
    /// Passed but its execution failed.
    Failed {
        /// Why.
        reason: String,
    },
    /// Did not pass.
    Rejected,
    /// Vetoed.
    Vetoed,
    /// Quorum not reached.
    NoQuorum,
    /// Deposit period ended below the minimum deposit.
    Expired,
}

/// A proposal.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Proposal {
    /// Id.
    pub id: u64,
    /// Proposer.
    pub proposer: Address,
    /// Title.
    pub title: String,
    /// Content JSON (see [`crate::msgs::Content`]).
    pub content_json: String,
    /// Σ deposits.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub total_deposit: u128,
    /// Status.
    pub status: Status,
    /// Final tally (yes, no, abstain, veto), set when voting ends.
    pub tally: Option<[String; 4]>,
}

/// A passed param change waiting for its effective time.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct PendingChange {
    /// Proposal id.
    pub proposal: u64,
    /// Module.
    pub module: String,
    /// Params JSON.
    pub params_json: String,
    /// Apply at the first block of this epoch (`None`: next block).
    pub at_epoch: Option<u64>,
}

/// A software-upgrade plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UpgradePlan {
    /// Name.
    pub name: String,
    /// Height at which the app halts for the upgrade.
    pub halt_height: u64,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

fn pkey(id: u64) -> Vec<u8> {
    [PROPOSAL_PREFIX, &id.to_be_bytes()].concat()
}

/// Read a proposal.
pub fn proposal(store: &dyn KvStore, id: u64) -> Result<Option<Proposal>, ModuleError> {
    let k = pkey(id);
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write a proposal.
pub fn set_proposal(ctx: &mut Ctx, p: &Proposal) -> Result<(), ModuleError> {
    ctx.set_borsh(&pkey(p.id), p)?;
    Ok(())
}

/// All proposals.
pub fn proposals(store: &dyn KvStore) -> Result<Vec<Proposal>, ModuleError> {
    magnet_core::store::scan_prefix(store, PROPOSAL_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            Proposal::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

/// Rows `(address, value)` under `prefix ‖ id`.
pub fn by_proposal<T: BorshDeserialize>(
    store: &dyn KvStore,
    prefix: &[u8],
    id: u64,
) -> Result<Vec<(Address, T)>, ModuleError> {
    let p = [prefix, &id.to_be_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[p.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let t = T::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            Ok((a, t))
        })
        .collect()
}

/// Queue key.
pub fn queue_key(time: u64, id: u64) -> Vec<u8> {
    [QUEUE_PREFIX, &time.to_be_bytes(), &id.to_be_bytes()].concat()
}
