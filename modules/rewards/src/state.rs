//! Every rewards storage key.
//!
//! * `rewards/params` → [`Params`] (JSON)
//! * `rewards/next` → the next epoch to settle (u64 borsh); epochs settle in order
//! * `rewards/settlement/<epoch:8 BE>` → [`Settlement`] (borsh), written exactly once

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"rewards/params";
/// Next epoch to settle.
pub const NEXT_KEY: &[u8] = b"rewards/next";
/// Settlements.
pub const SETTLEMENT_PREFIX: &[u8] = b"rewards/settlement/";

/// One payout.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Payout {
    /// Operator.
    pub operator: Address,
    /// Weight (T·C for contributors, slots for evaluators, T·custody bytes for storage).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub weight: u128,
    /// Amount paid.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub amount: u128,
}

/// An epoch's settlement record.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Settlement {
    /// Epoch.
    pub epoch: u64,
    /// The pool.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub pool: u128,
    /// Contributors' part of the pool.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub contributor_pool: u128,
    /// Contributor payouts, by operator.
    pub contributors: Vec<Payout>,
    /// Evaluator payouts, by operator.
    pub evaluators: Vec<Payout>,
    /// Remainder sent to the community pool.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub dust: u128,
    /// Height of settlement.
    pub height: u64,
    /// Storage holders' part of the pool (ADR 0107; 0 when no custody was proven).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub storage_pool: u128,
    /// Storage custody payouts, by operator (weight `T_i(storage) × custody bytes`).
    pub storage: Vec<Payout>,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// Next epoch to settle.
pub fn next(store: &dyn KvStore) -> Result<u64, ModuleError> {
    Ok(magnet_core::store::get_borsh::<u64>(store, NEXT_KEY)
        .map_err(|e| ModuleError::corrupt(NEXT_KEY, &e.to_string()))?
        .unwrap_or(0))
}

/// Settlement of `epoch`.
pub fn settlement(store: &dyn KvStore, epoch: u64) -> Result<Option<Settlement>, ModuleError> {
    let k = [SETTLEMENT_PREFIX, &epoch.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// All settlements.
pub fn settlements(store: &dyn KvStore) -> Result<Vec<Settlement>, ModuleError> {
    magnet_core::store::scan_prefix(store, SETTLEMENT_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            Settlement::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}
