//! Every notary storage key.
//!
//! * `notary/params` → [`Params`] (JSON)
//! * `notary/member/<addr:20>` → [`Member`] (borsh): panel members and their bonds
//! * `notary/next_id` → next challenge id (u64 borsh), from 1
//! * `notary/challenge/<id:8 BE>` → [`Challenge`] (borsh)
//! * `notary/queue/<vote_ends:8 BE><id:8 BE>` → (): challenges to resolve
//!
//! Notary bonds and challenge bonds sit in the module account `Address::module("notary")`.

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError, Offence};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"notary/params";
/// Members.
pub const MEMBER_PREFIX: &[u8] = b"notary/member/";
/// Next id.
pub const NEXT_ID_KEY: &[u8] = b"notary/next_id";
/// Challenges.
pub const CHALLENGE_PREFIX: &[u8] = b"notary/challenge/";
/// Resolution queue.
pub const QUEUE_PREFIX: &[u8] = b"notary/queue/";

/// Escrow account.
pub fn escrow() -> Address {
    Address::module("notary")
}

/// A panel member.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Member {
    /// Bond (umag).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub bond: u128,
}

/// How a challenge ended.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Votes open.
    Open,
    /// Quorum, majority upheld (the target lost).
    Upheld,
    /// Quorum, majority rejected (the challenger lost).
    Rejected,
    /// No quorum: challenger refunded minus the fee.
    NoQuorum,
    /// Governance overturned the resolution as fraudulent.
    Overturned,
}

/// A challenge.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize, serde::Serialize)]
pub struct Challenge {
    /// Id.
    pub id: u64,
    /// Challenger.
    pub challenger: Address,
    /// Target (`contrib/…` or `data/…`).
    pub target: String,
    /// Party answerable for the target.
    pub party: Address,
    /// Offence if upheld.
    pub offence: Offence,
    /// Challenge bond.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub bond: u128,
    /// Evidence hash (hex).
    pub evidence_hash: String,
    /// Votes close.
    pub vote_ends: u64,
    /// Votes (notary, uphold).
    pub votes: Vec<(Address, bool)>,
    /// Outcome.
    pub outcome: Outcome,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

/// A member.
pub fn member(store: &dyn KvStore, a: &Address) -> Result<Option<Member>, ModuleError> {
    let k = [MEMBER_PREFIX, a.as_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write a member.
pub fn set_member(ctx: &mut Ctx, a: &Address, m: &Member) -> Result<(), ModuleError> {
    ctx.set_borsh(&[MEMBER_PREFIX, a.as_bytes()].concat(), m)?;
    Ok(())
}

/// All members, ascending.
pub fn members(store: &dyn KvStore) -> Result<Vec<(Address, Member)>, ModuleError> {
    magnet_core::store::scan_prefix(store, MEMBER_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[MEMBER_PREFIX.len()..])
                .map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            let m =
                Member::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            Ok((a, m))
        })
        .collect()
}

/// A challenge.
pub fn challenge(store: &dyn KvStore, id: u64) -> Result<Option<Challenge>, ModuleError> {
    let k = [CHALLENGE_PREFIX, &id.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
}

/// Write a challenge.
pub fn set_challenge(ctx: &mut Ctx, c: &Challenge) -> Result<(), ModuleError> {
    ctx.set_borsh(&[CHALLENGE_PREFIX, &c.id.to_be_bytes()].concat(), c)?;
    Ok(())
}

/// All challenges.
pub fn challenges(store: &dyn KvStore) -> Result<Vec<Challenge>, ModuleError> {
    magnet_core::store::scan_prefix(store, CHALLENGE_PREFIX)
        .into_iter()
        .map(|(k, v)| {
            Challenge::try_from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))
        })
        .collect()
}
