//! Every custody storage key, and typed access. Holders are node-key addresses (the key that
//! signs receipts and proofs); pay goes to their operators.
//!
//! * `custody/params` → [`Params`] (JSON)
//! * `custody/stripe/<object:32>` → [`Stripe`] (borsh)
//! * `custody/label/<label:32><object:32>` → () — stripes by label (Δ / checkpoint hash)
//! * `custody/holder/<node:20><object:32><index:4 BE>` → () — shards by holder
//! * `custody/challenge/<epoch:8 BE><node:20><object:32><index:4 BE>` → [`Challenge`] (borsh)
//! * `custody/hstat/<node:20><epoch:8 BE>` → [`HolderEpoch`] (borsh): a holder's audits,
//!   custody and repairs in an epoch
//! * `custody/credit/<epoch:8 BE><operator:20>` → proven custody (u128 borsh, bytes·epochs)
//! * `custody/epoch/<epoch:8 BE>` → [`EpochTotals`] (borsh)
//! * `custody/streak/<node:20>` → consecutive epochs with an audit failure (u64 borsh)

use crate::params::Params;
use borsh::{BorshDeserialize, BorshSerialize};
use magnet_core::{Address, Ctx, KvStore, ModuleError};

/// Params key.
pub const PARAMS_KEY: &[u8] = b"custody/params";
/// Stripes by object.
pub const STRIPE_PREFIX: &[u8] = b"custody/stripe/";
/// Label index.
pub const LABEL_PREFIX: &[u8] = b"custody/label/";
/// Holder index.
pub const HOLDER_PREFIX: &[u8] = b"custody/holder/";
/// Challenges by epoch and holder.
pub const CHALLENGE_PREFIX: &[u8] = b"custody/challenge/";
/// Per-holder per-epoch statistics.
pub const HSTAT_PREFIX: &[u8] = b"custody/hstat/";
/// Proven custody by epoch and operator (what rewards pays).
pub const CREDIT_PREFIX: &[u8] = b"custody/credit/";
/// Epoch totals.
pub const EPOCH_PREFIX: &[u8] = b"custody/epoch/";
/// Failing streaks.
pub const STREAK_PREFIX: &[u8] = b"custody/streak/";

/// Stripe kinds.
pub const KINDS: [&str; 4] = ["delta", "checkpoint", "data", "model"];

pub(crate) mod hex32 {
    pub fn serialize<S: serde::Serializer>(v: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        let b = hex::decode(s).map_err(serde::de::Error::custom)?;
        <[u8; 32]>::try_from(b.as_slice())
            .map_err(|_| serde::de::Error::custom("expected 32 bytes of hex"))
    }
}

pub(crate) mod hexvec {
    pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

/// One shard of a stripe.
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
pub struct Shard {
    /// Holder's node-key address.
    pub holder: Address,
    /// Merkle root of the shard (`magnet_rounds::custody::merkle_root`).
    #[serde(with = "hex32")]
    pub root: [u8; 32],
    /// The holder's receipt (64-byte signature over the `ShardReceipt`).
    #[serde(with = "hexvec")]
    pub receipt: Vec<u8>,
    /// Epoch of the last audit this holder failed on this shard, while it still holds it
    /// (the shard may then be reassigned); cleared by a later proven audit or a reassignment.
    pub failed_epoch: Option<u64>,
}

/// A registered stripe.
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
pub struct Stripe {
    /// SHA-256 of the whole object.
    #[serde(with = "hex32")]
    pub object: [u8; 32],
    /// Producer's node key that registered it.
    pub owner: Address,
    /// delta / checkpoint / data / model.
    pub kind: String,
    /// What it is to the epoch (Δ hash, checkpoint hash, …).
    #[serde(with = "hex32")]
    pub label: [u8; 32],
    /// Job it belongs to (0: none).
    pub job_id: u64,
    /// Object size (bytes).
    pub size: u64,
    /// RS K.
    pub k: u32,
    /// RS M.
    pub m: u32,
    /// Codec stripe size (bytes), as the producer declared it.
    pub stripe_size: u32,
    /// Length of every shard (bytes).
    pub shard_len: u64,
    /// K+M shards in order.
    pub shards: Vec<Shard>,
    /// Epoch of registration.
    pub registered_epoch: u64,
    /// Dropped at the end of this epoch (unless kept as a lineage head).
    pub expires_epoch: u64,
}

/// One audit: holder must prove leaf `leaf` of shard `index` of `object` in `epoch`.
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
pub struct Challenge {
    /// Epoch of the audit.
    pub epoch: u64,
    /// Holder's node key.
    pub holder: Address,
    /// Object.
    #[serde(with = "hex32")]
    pub object: [u8; 32],
    /// Shard index.
    pub index: u32,
    /// Challenged leaf.
    pub leaf: u64,
    /// Root to prove against (as registered when drawn).
    #[serde(with = "hex32")]
    pub root: [u8; 32],
    /// Shard length (bytes).
    pub shard_len: u64,
    /// True once a valid proof was accepted.
    pub proven: bool,
}

/// A holder's audits, custody and repairs in one epoch.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct HolderEpoch {
    /// Epoch.
    pub epoch: u64,
    /// Operator at judgement (None before judgement, or if the node is gone).
    pub operator: Option<Address>,
    /// Challenges drawn.
    pub challenged: u64,
    /// Challenges proven.
    pub proven: u64,
    /// Challenges failed.
    pub failed: u64,
    /// Proven custody credited (bytes·epochs; 0 with any failure).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub custody_bytes: u128,
    /// Bytes of shards this node moved to new holders by `MsgReassignShard` (not paid).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub repaired_bytes: u128,
    /// Amount slashed for this epoch's failures (umag).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub slashed: u128,
    /// Whether this epoch's failures jailed the holder.
    pub jailed: bool,
}

/// What an epoch's audits came to.
#[derive(
    Clone,
    Debug,
    Default,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct EpochTotals {
    /// Epoch.
    pub epoch: u64,
    /// Seed the challenges were drawn from (hash of the block that opened the epoch).
    #[serde(with = "hex32")]
    pub seed: [u8; 32],
    /// Challenges drawn.
    pub challenges: u64,
    /// Challenges proven.
    pub proven: u64,
    /// Challenges failed (set at judgement).
    pub failed: u64,
    /// Σ proven custody credited (bytes·epochs).
    #[serde(with = "magnet_core::coins::u128_string")]
    pub custody_bytes: u128,
    /// Holders credited.
    pub holders_credited: u64,
    /// Holders slashed.
    pub holders_slashed: u64,
    /// True once the epoch was judged.
    pub judged: bool,
}

/// Current params.
pub fn params(store: &dyn KvStore) -> Result<Params, ModuleError> {
    magnet_core::params::load(store)
}

/// Write params.
pub fn set_params(store: &mut dyn KvStore, p: &Params) {
    magnet_core::params::save(store, p)
}

fn corrupt(k: &[u8], e: impl std::fmt::Display) -> ModuleError {
    ModuleError::corrupt(k, &e.to_string())
}

/// Stripe key.
pub fn stripe_key(object: &[u8; 32]) -> Vec<u8> {
    [STRIPE_PREFIX, object].concat()
}

/// A stripe.
pub fn stripe(store: &dyn KvStore, object: &[u8; 32]) -> Result<Option<Stripe>, ModuleError> {
    let k = stripe_key(object);
    magnet_core::store::get_borsh(store, &k).map_err(|e| corrupt(&k, e))
}

/// All stripes, by object.
pub fn stripes(store: &dyn KvStore) -> Result<Vec<Stripe>, ModuleError> {
    magnet_core::store::scan_prefix(store, STRIPE_PREFIX)
        .into_iter()
        .map(|(k, v)| Stripe::try_from_slice(&v).map_err(|e| corrupt(&k, e)))
        .collect()
}

fn holder_key(holder: &Address, object: &[u8; 32], index: u32) -> Vec<u8> {
    [
        HOLDER_PREFIX,
        holder.as_bytes(),
        object,
        &index.to_be_bytes(),
    ]
    .concat()
}

/// Write a stripe and its indexes (the first time).
pub fn insert_stripe(ctx: &mut Ctx, s: &Stripe) -> Result<(), ModuleError> {
    ctx.set_borsh(&stripe_key(&s.object), s)?;
    ctx.set(&[LABEL_PREFIX, &s.label, &s.object].concat(), Vec::new())?;
    for (i, sh) in s.shards.iter().enumerate() {
        ctx.set(&holder_key(&sh.holder, &s.object, i as u32), Vec::new())?;
    }
    Ok(())
}

/// Rewrite a stripe record (indexes unchanged).
pub fn update_stripe(ctx: &mut Ctx, s: &Stripe) -> Result<(), ModuleError> {
    ctx.set_borsh(&stripe_key(&s.object), s)?;
    Ok(())
}

/// Move shard `index`'s holder index from `old` to `new`.
pub fn move_holder(
    ctx: &mut Ctx,
    object: &[u8; 32],
    index: u32,
    old: &Address,
    new: &Address,
) -> Result<(), ModuleError> {
    ctx.delete(&holder_key(old, object, index))?;
    ctx.set(&holder_key(new, object, index), Vec::new())?;
    Ok(())
}

/// Delete a stripe and its indexes.
pub fn delete_stripe(ctx: &mut Ctx, s: &Stripe) -> Result<(), ModuleError> {
    ctx.delete(&stripe_key(&s.object))?;
    ctx.delete(&[LABEL_PREFIX, &s.label, &s.object].concat())?;
    for (i, sh) in s.shards.iter().enumerate() {
        ctx.delete(&holder_key(&sh.holder, &s.object, i as u32))?;
    }
    Ok(())
}

/// Stripes whose label is `label`, by object.
pub fn by_label(store: &dyn KvStore, label: &[u8; 32]) -> Result<Vec<Stripe>, ModuleError> {
    let p = [LABEL_PREFIX, label].concat();
    let mut out = Vec::new();
    for (k, _) in magnet_core::store::scan_prefix(store, &p) {
        let obj: [u8; 32] = k[p.len()..].try_into().map_err(|e| corrupt(&k, e))?;
        if let Some(s) = stripe(store, &obj)? {
            out.push(s);
        }
    }
    Ok(out)
}

/// Shards `holder` holds: (object, index), ascending.
pub fn held(store: &dyn KvStore, holder: &Address) -> Result<Vec<([u8; 32], u32)>, ModuleError> {
    let p = [HOLDER_PREFIX, holder.as_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, _)| {
            let rest = &k[p.len()..];
            if rest.len() != 36 {
                return Err(corrupt(&k, "holder index key length"));
            }
            let mut o = [0u8; 32];
            o.copy_from_slice(&rest[..32]);
            let mut i = [0u8; 4];
            i.copy_from_slice(&rest[32..]);
            Ok((o, u32::from_be_bytes(i)))
        })
        .collect()
}

/// Challenge key.
pub fn challenge_key(epoch: u64, holder: &Address, object: &[u8; 32], index: u32) -> Vec<u8> {
    [
        CHALLENGE_PREFIX,
        &epoch.to_be_bytes(),
        holder.as_bytes(),
        object,
        &index.to_be_bytes(),
    ]
    .concat()
}

/// Challenges of `epoch` (of `holder` only, if given), in key order.
pub fn challenges(
    store: &dyn KvStore,
    epoch: u64,
    holder: Option<&Address>,
) -> Result<Vec<Challenge>, ModuleError> {
    let mut p = [CHALLENGE_PREFIX, &epoch.to_be_bytes()].concat();
    if let Some(h) = holder {
        p.extend_from_slice(h.as_bytes());
    }
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| Challenge::try_from_slice(&v).map_err(|e| corrupt(&k, e)))
        .collect()
}

fn hstat_key(holder: &Address, epoch: u64) -> Vec<u8> {
    [HSTAT_PREFIX, holder.as_bytes(), &epoch.to_be_bytes()].concat()
}

/// A holder's record for an epoch (default if none).
pub fn hstat(ctx: &mut Ctx, holder: &Address, epoch: u64) -> Result<HolderEpoch, ModuleError> {
    Ok(ctx
        .get_borsh::<HolderEpoch>(&hstat_key(holder, epoch))?
        .unwrap_or(HolderEpoch {
            epoch,
            ..Default::default()
        }))
}

/// Write a holder's record for an epoch.
pub fn set_hstat(ctx: &mut Ctx, holder: &Address, h: &HolderEpoch) -> Result<(), ModuleError> {
    ctx.set_borsh(&hstat_key(holder, h.epoch), h)?;
    Ok(())
}

/// Every epoch record of a holder, ascending.
pub fn hstats(store: &dyn KvStore, holder: &Address) -> Result<Vec<HolderEpoch>, ModuleError> {
    let p = [HSTAT_PREFIX, holder.as_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| HolderEpoch::try_from_slice(&v).map_err(|e| corrupt(&k, e)))
        .collect()
}

/// Add `bytes` of proven custody for `operator` in `epoch`.
pub fn add_credit(
    ctx: &mut Ctx,
    epoch: u64,
    operator: &Address,
    bytes: u128,
) -> Result<(), ModuleError> {
    let k = [CREDIT_PREFIX, &epoch.to_be_bytes(), operator.as_bytes()].concat();
    let cur = ctx.get_borsh::<u128>(&k)?.unwrap_or(0);
    let new = cur
        .checked_add(bytes)
        .ok_or_else(|| ModuleError::overflow("custody credit"))?;
    ctx.set_borsh(&k, &new)?;
    Ok(())
}

/// Proven custody of `epoch` by operator, ascending.
pub fn credits(store: &dyn KvStore, epoch: u64) -> Result<Vec<(Address, u128)>, ModuleError> {
    let p = [CREDIT_PREFIX, &epoch.to_be_bytes()].concat();
    magnet_core::store::scan_prefix(store, &p)
        .into_iter()
        .map(|(k, v)| {
            let a = Address::from_slice(&k[p.len()..]).map_err(|e| corrupt(&k, e))?;
            let n = u128::try_from_slice(&v).map_err(|e| corrupt(&k, e))?;
            Ok((a, n))
        })
        .collect()
}

/// Totals of `epoch`.
pub fn totals(store: &dyn KvStore, epoch: u64) -> Result<Option<EpochTotals>, ModuleError> {
    let k = [EPOCH_PREFIX, &epoch.to_be_bytes()].concat();
    magnet_core::store::get_borsh(store, &k).map_err(|e| corrupt(&k, e))
}

/// Write totals.
pub fn set_totals(ctx: &mut Ctx, t: &EpochTotals) -> Result<(), ModuleError> {
    ctx.set_borsh(&[EPOCH_PREFIX, &t.epoch.to_be_bytes()].concat(), t)?;
    Ok(())
}

/// Consecutive failing epochs of `holder`.
pub fn streak(store: &dyn KvStore, holder: &Address) -> Result<u64, ModuleError> {
    let k = [STREAK_PREFIX, holder.as_bytes()].concat();
    Ok(magnet_core::store::get_borsh::<u64>(store, &k)
        .map_err(|e| corrupt(&k, e))?
        .unwrap_or(0))
}

/// Set a streak (0 deletes).
pub fn set_streak(ctx: &mut Ctx, holder: &Address, n: u64) -> Result<(), ModuleError> {
    let k = [STREAK_PREFIX, holder.as_bytes()].concat();
    if n == 0 {
        ctx.delete(&k)?;
    } else {
        ctx.set_borsh(&k, &n)?;
    }
    Ok(())
}
