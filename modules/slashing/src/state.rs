//! Every slashing storage key.
//!
//! * `slashing/params` → [`Params`] (JSON)
//! * `slashing/seq` → next record number (u64 borsh)
//! * `slashing/record/<seq:8 BE>` → [`SlashRecord`] (borsh)
//! * `slashing/evidence/<height:8 BE><validator>` → [`magnet_core::context::Misbehavior`] kind (string)
//!
//! Slashed funds pass through the module account `Address::module("slashing")` and leave it
//! in the same call (burned or sent to the community pool), so its balance stays 0.

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError, Offence};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"slashing/params";
/// Record counter.
pub const SEQ_KEY: &[u8] = b"slashing/seq";
/// Records.
pub const RECORD_PREFIX: &[u8] = b"slashing/record/";
/// Double-sign evidence.
pub const EVIDENCE_PREFIX: &[u8] = b"slashing/evidence/";

/// Pass-through account for slashed funds.
pub fn account() -> Address {
    Address::module("slashing")
}

/// One slash.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct SlashRecord {
    /// Sequence number.
    pub seq: u64,
    /// Offender.
    pub offender: Address,
    /// Offence.
    pub offence: Offence,
    /// Rate applied (ppm).
    pub rate_ppm: u64,
    /// The amount the rate applied to.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub base: u128,
    /// Amount slashed.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub amount: u128,
    /// Burned part.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub burned: u128,
    /// Community-pool part.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub to_pool: u128,
    /// Paid to the challenger who proved the offence (0 unless rewarded).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub rewarded: u128,
    /// Height.
    pub height: u64,
    /// Evidence text.
    pub evidence: String,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// Append a record, assigning its sequence number.
pub fn push_record(ctx: &mut Ctx, mut r: SlashRecord) -> Result<u64, ModuleError> {
    let seq = ctx.get_borsh::<u64>(SEQ_KEY)?.unwrap_or(0);
    ctx.set_borsh(SEQ_KEY, &(seq + 1))?;
    r.seq = seq;
    ctx.set_borsh(&[RECORD_PREFIX, &seq.to_be_bytes()].concat(), &r)?;
    Ok(seq)
}

/// All records, oldest first.
pub fn records(store: &dyn KvStore) -> Result<Vec<SlashRecord>, ModuleError> {
    magnet_core::store::scan_prefix(store, RECORD_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            SlashRecord::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}
