//! The consensus validator set as a service ([`magnet_core::Validators`]) for the modules.
//!
//! State (see `docs/adr/0003-validator-operators-and-fee-payouts.md`):
//! * `app/val/<ed25519 pubkey:32>` → power (borsh u64): the current set, as CometBFT has it.
//! * `app/valrec/<consensus address:20>` → [`ValRecord`] (borsh): the public key and the
//!   operator account of every validator that was ever in the set (kept after removal, so
//!   late double-sign evidence still finds its operator).
//! * `app/valpending/<pubkey>` → power (borsh u64): changes requested by modules in the
//!   current block (governance, slashing). FinalizeBlock moves them into `app/val/` and reports
//!   them as `validator_updates`; the prefix is always empty between blocks.
//!
//! # Guarantees
//! Deterministic (ordered keys, no clock). The set never becomes empty through this service:
//! removing the last validator is refused, and so is a total power above CometBFT's
//! `MaxTotalVotingPower` ([`MAX_TOTAL_VOTING_POWER`]). A change is visible to CometBFT in the block that
//! made it.
//!
//! # Non-guarantees
//! Validators have no self-bond of their own: the stake behind a validator is its operator's
//! node bond in the registry (slashed on double-sign evidence). A validator without an operator
//! is never paid; its fee share goes to the community pool.

use magnet_core::services::{ValidatorRecord, Validators, MAX_TOTAL_VOTING_POWER};
use magnet_core::{Address, Ctx, KvStore, ModuleError};
use std::collections::BTreeMap;

/// Prefix of the validator set: `app/val/<ed25519 pubkey:32>` → power (borsh u64).
pub const VALIDATOR_PREFIX: &[u8] = b"app/val/";
/// Prefix of validator records: `app/valrec/<consensus address:20>` → [`ValRecord`].
pub const RECORD_PREFIX: &[u8] = b"app/valrec/";
/// Prefix of this block's pending power changes: `app/valpending/<pubkey>` → power.
pub const PENDING_PREFIX: &[u8] = b"app/valpending/";

/// Public key and operator of a validator, keyed by its consensus address.
#[derive(Clone, Debug, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct ValRecord {
    /// Ed25519 public key (32 bytes).
    pub pub_key: Vec<u8>,
    /// Operator account (20 bytes), if any.
    pub operator: Option<[u8; 20]>,
}

/// CometBFT's consensus address of an ed25519 key: `SHA-256(pubkey)[..20]`.
pub fn consensus_address(pub_key: &[u8]) -> [u8; 20] {
    let h = magnet_core::sha256(pub_key);
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[..20]);
    a
}

fn record_key(pub_key: &[u8]) -> Vec<u8> {
    [RECORD_PREFIX, &consensus_address(pub_key)].concat()
}

/// The validator set stored in state: ed25519 key → power.
pub fn validator_set(store: &dyn KvStore) -> BTreeMap<Vec<u8>, u64> {
    magnet_core::store::scan_prefix(store, VALIDATOR_PREFIX)
        .into_iter()
        .filter_map(|(k, v)| {
            let p = borsh::from_slice::<u64>(&v).ok()?;
            Some((k[VALIDATOR_PREFIX.len()..].to_vec(), p))
        })
        .collect()
}

/// The record of the validator with consensus address `consensus`.
pub fn record(store: &dyn KvStore, consensus: &[u8]) -> Option<ValRecord> {
    magnet_core::store::get_borsh(store, &[RECORD_PREFIX, consensus].concat())
        .ok()
        .flatten()
}

/// Write the record of `pub_key`, keeping a known operator when `operator` is `None`.
pub fn put_record(store: &mut dyn KvStore, pub_key: &[u8], operator: Option<Address>) {
    let key = record_key(pub_key);
    let old: Option<ValRecord> = magnet_core::store::get_borsh(store, &key).ok().flatten();
    let operator = operator
        .map(|a| *a.as_bytes())
        .or(old.and_then(|r| r.operator));
    magnet_core::store::set_borsh(
        store,
        &key,
        &ValRecord {
            pub_key: pub_key.to_vec(),
            operator,
        },
    );
}

/// Every operator mapping, by public key (for export).
pub fn operators(store: &dyn KvStore) -> BTreeMap<Vec<u8>, Address> {
    magnet_core::store::scan_prefix(store, RECORD_PREFIX)
        .into_iter()
        .filter_map(|(_, v)| {
            let r: ValRecord = borsh::from_slice(&v).ok()?;
            let op = Address::from_slice(&r.operator?).ok()?;
            Some((r.pub_key, op))
        })
        .collect()
}

/// Every validator record (current and former), by consensus address.
pub fn records(store: &dyn KvStore) -> Vec<ValRecord> {
    magnet_core::store::scan_prefix(store, RECORD_PREFIX)
        .into_iter()
        .filter_map(|(_, v)| borsh::from_slice(&v).ok())
        .collect()
}

/// Remove and return the changes modules requested in this block, by public key.
pub fn take_pending(store: &mut dyn KvStore) -> BTreeMap<Vec<u8>, u64> {
    let mut out = BTreeMap::new();
    for (k, v) in magnet_core::store::scan_prefix(store, PENDING_PREFIX) {
        store.delete(&k);
        if let Ok(p) = borsh::from_slice::<u64>(&v) {
            out.insert(k[PENDING_PREFIX.len()..].to_vec(), p);
        }
    }
    out
}

fn check_key(pub_key: &[u8]) -> Result<(), ModuleError> {
    if pub_key.len() != 32 {
        return Err(ModuleError::invalid_request(format!(
            "an ed25519 validator key has 32 bytes, got {}",
            pub_key.len()
        )));
    }
    Ok(())
}

/// The app's [`Validators`] service over the state above.
pub struct AppValidators;

impl Validators for AppValidators {
    fn reward_address(
        &self,
        ctx: &mut Ctx,
        consensus: &[u8],
    ) -> Result<Option<Address>, ModuleError> {
        Ok(self
            .by_consensus_address(ctx, consensus)?
            .and_then(|r| r.operator))
    }

    fn by_consensus_address(
        &self,
        ctx: &mut Ctx,
        consensus: &[u8],
    ) -> Result<Option<ValidatorRecord>, ModuleError> {
        let Some(rec) = ctx.get_borsh::<ValRecord>(&[RECORD_PREFIX, consensus].concat())? else {
            return Ok(None);
        };
        let power = ctx
            .get_borsh::<u64>(&[VALIDATOR_PREFIX, &rec.pub_key].concat())?
            .unwrap_or(0);
        let operator = match rec.operator {
            Some(b) => Some(
                Address::from_slice(&b)
                    .map_err(|e| ModuleError::corrupt(RECORD_PREFIX, &e.to_string()))?,
            ),
            None => None,
        };
        Ok(Some(ValidatorRecord {
            pub_key_ed25519: rec.pub_key,
            power,
            operator,
        }))
    }

    fn effective_set(&self, ctx: &mut Ctx) -> Result<BTreeMap<Vec<u8>, u64>, ModuleError> {
        let mut set = BTreeMap::new();
        for (prefix, k_off) in [
            (VALIDATOR_PREFIX, VALIDATOR_PREFIX.len()),
            (PENDING_PREFIX, PENDING_PREFIX.len()),
        ] {
            for (k, v) in ctx.scan_prefix(prefix)? {
                let p = borsh::from_slice::<u64>(&v)
                    .map_err(|e| ModuleError::corrupt(prefix, &e.to_string()))?;
                set.insert(k[k_off..].to_vec(), p);
            }
        }
        set.retain(|_, p| *p > 0);
        Ok(set)
    }

    fn set_power(
        &self,
        ctx: &mut Ctx,
        pub_key_ed25519: &[u8],
        power: u64,
    ) -> Result<(), ModuleError> {
        check_key(pub_key_ed25519)?;
        if power > MAX_TOTAL_VOTING_POWER {
            return Err(ModuleError::invalid_request(format!(
                "validator power {power} exceeds CometBFT's maximum total voting power {MAX_TOTAL_VOTING_POWER}"
            )));
        }
        // The set after this block's changes must keep at least one validator and stay
        // within CometBFT's total power.
        let mut set = self.effective_set(ctx)?;
        set.insert(pub_key_ed25519.to_vec(), power);
        set.retain(|_, p| *p > 0);
        if set.is_empty() {
            return Err(ModuleError::invalid_request(
                "refusing to remove the last validator: the chain would have no validator set",
            ));
        }
        let total = set
            .values()
            .fold(0u128, |a, p| a.saturating_add(u128::from(*p)));
        if total > u128::from(MAX_TOTAL_VOTING_POWER) {
            return Err(ModuleError::invalid_request(format!(
                "the validator set's total power would be {total}, above CometBFT's maximum {MAX_TOTAL_VOTING_POWER}"
            )));
        }
        ctx.set_borsh(&[PENDING_PREFIX, pub_key_ed25519].concat(), &power)?;
        if ctx.get(&record_key(pub_key_ed25519))?.is_none() {
            put_record(ctx.store_mut(), pub_key_ed25519, None);
        }
        ctx.emit(
            magnet_core::Event::new("magnet.validators.power")
                .attr("pub_key", hex::encode(pub_key_ed25519))
                .attr("power", power),
        );
        Ok(())
    }

    fn set_operator(
        &self,
        ctx: &mut Ctx,
        pub_key_ed25519: &[u8],
        operator: &Address,
    ) -> Result<(), ModuleError> {
        check_key(pub_key_ed25519)?;
        put_record(ctx.store_mut(), pub_key_ed25519, Some(*operator));
        ctx.emit(
            magnet_core::Event::new("magnet.validators.operator")
                .attr("pub_key", hex::encode(pub_key_ed25519))
                .attr("operator", operator),
        );
        Ok(())
    }
}
