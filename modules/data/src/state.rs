//! Every data storage key.
//!
//! * `data/params` → [`Params`] (JSON)
//! * `data/next_id` → next record id (u64 borsh), from 1
//! * `data/record/<id:8 BE>` → [`Record`] (borsh)
//! * `data/hash/<hash:32>` → id (u64 borsh): one record per hash
//! * `data/queue/<until:8 BE><id:8 BE>` → (): pending records to confirm
//!
//! Fees of pending records sit in `Address::module("data")`.

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"data/params";
/// Next id.
pub const NEXT_ID_KEY: &[u8] = b"data/next_id";
/// Records.
pub const RECORD_PREFIX: &[u8] = b"data/record/";
/// Hash index.
pub const HASH_PREFIX: &[u8] = b"data/hash/";
/// Confirmation queue.
pub const QUEUE_PREFIX: &[u8] = b"data/queue/";

/// Escrow of pending fees.
pub fn escrow() -> Address {
    Address::module("data")
}

/// Record status.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// In its challenge window.
    Pending,
    /// Confirmed; fee split.
    Confirmed,
    /// Rejected by a notary resolution; fee to the community pool.
    Rejected,
}

/// A data record.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Record {
    /// Id.
    pub id: u64,
    /// Contributor.
    pub contributor: Address,
    /// Content hash (hex).
    pub hash: String,
    /// Size in bytes.
    pub size: u64,
    /// Domain.
    pub domain: String,
    /// Fee paid.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub fee: u128,
    /// Challenge window end.
    pub until: u64,
    /// Status.
    pub status: Status,
    /// Under an open challenge.
    pub disputed: bool,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// A record.
pub fn record(store: &dyn KvStore, id: u64) -> Result<Option<Record>, ModuleError> {
    let k = [RECORD_PREFIX, &id.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write a record.
pub fn set_record(ctx: &mut Ctx, r: &Record) -> Result<(), ModuleError> {
    ctx.set_borsh(&[RECORD_PREFIX, &r.id.to_be_bytes()].concat(), r)?;
    Ok(())
}

/// All records.
pub fn records(store: &dyn KvStore) -> Result<Vec<Record>, ModuleError> {
    magnet_core::store::scan_prefix(store, RECORD_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            Record::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}
