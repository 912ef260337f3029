//! Every emission storage key.
//!
//! * `emission/params` → [`Params`] (JSON)
//! * `emission/genesis_time` → block time of genesis (u64 borsh): year 0 of the schedule
//! * `emission/pool/<epoch:8 BE>` → [`EpochPool`] (borsh)
//! * `emission/win/<window:1><position:8 BE>` → minted at that block time / height (u128 borsh)
//! * `emission/minted_total` → Σ minted since genesis (u128 borsh)
//! * `emission/fees/<height:8 BE>` → [`FeeSplit`] of that block (borsh)

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"emission/params";
/// Genesis time key.
pub const GENESIS_TIME_KEY: &[u8] = b"emission/genesis_time";
/// Epoch pools.
pub const POOL_PREFIX: &[u8] = b"emission/pool/";
/// Cap windows.
pub const WIN_PREFIX: &[u8] = b"emission/win/";
/// Total minted.
pub const MINTED_KEY: &[u8] = b"emission/minted_total";
/// Fee splits.
pub const FEES_PREFIX: &[u8] = b"emission/fees/";

/// One epoch's pool.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct EpochPool {
    /// Epoch.
    pub epoch: u64,
    /// What the schedule asked for.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub scheduled: u128,
    /// What was minted (≤ scheduled; less when a cap bound).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub minted: u128,
    /// Block time of the mint.
    pub time_secs: u64,
    /// Height of the mint.
    pub height: u64,
}

/// How one block's fees were split.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct FeeSplit {
    /// Fees collected.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub total: u128,
    /// Burned.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub burned: u128,
    /// Paid to validators.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub validators: u128,
    /// To the community pool (its share, unpaid validator shares and dust).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub community: u128,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// Pool of `epoch`.
pub fn pool(store: &dyn KvStore, epoch: u64) -> Result<Option<EpochPool>, ModuleError> {
    let k = [POOL_PREFIX, &epoch.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// All pools, by epoch.
pub fn pools(store: &dyn KvStore) -> Result<Vec<EpochPool>, ModuleError> {
    magnet_core::store::scan_prefix(store, POOL_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            EpochPool::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}

/// Write a pool record.
pub fn set_pool(ctx: &mut Ctx, p: &EpochPool) -> Result<(), ModuleError> {
    ctx.set_borsh(&[POOL_PREFIX, &p.epoch.to_be_bytes()].concat(), p)?;
    Ok(())
}

/// Σ minted since genesis.
pub fn minted_total(store: &dyn KvStore) -> Result<u128, ModuleError> {
    Ok(magnet_core::store::get_borsh::<u128>(store, MINTED_KEY)
        .map_err(|e| ModuleError::corrupt(MINTED_KEY, &e.to_string()))?
        .unwrap_or(0))
}
