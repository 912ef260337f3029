//! # magnet-custody — storage custody: stripes, audits, slashing, pay (ADR 0107)
//!
//! What an epoch keeps (Δs, checkpoints, data sets, models) lives in RS(K,M) stripes on
//! storage-capable nodes. This module is the chain's side of it; the shared rules (Merkle tree,
//! receipt digest, challenge draw) are `magnet_rounds::custody`, so the chain and storage nodes
//! cannot disagree on them.
//!
//! * **`MsgRegisterStripe`** (signed by the producer's node key): an object's K+M shard
//!   placements, each with its Merkle root and its holder's **receipt** — the holder's node-key
//!   signature over `ShardReceipt{chain_id, object, index, root, shard_len}`. Refused unless
//!   the kind is delta/checkpoint/data/model, K and M equal the params, there are exactly K+M
//!   distinct holders, every holder is registered, bonded, not jailed and *storage-capable*
//!   (registry: tier with the `storage` kind and a passing SSD report), every receipt verifies,
//!   `0 < size ≤ K·shard_len`, `0 < shard_len ≤ max_shard_len` and the object is new. The stripe
//!   is indexed by object, by label (so a reader finds a Δ's or checkpoint's stripe by its
//!   hash) and by holder. It expires `delta_retention_epochs` (delta) or
//!   `checkpoint_retention_epochs` (others) after the epoch of registration.
//! * **Challenges.** At the end of epoch `e` the chain draws, for every shard of every live
//!   stripe with a bonded, unjailed holder, one leaf for epoch `e+1`:
//!   `challenge_leaf(seed, object, index, shard_len)` with `seed` = the hash of the block that
//!   ends `e` (and so opens `e+1`). A stripe registered in `e` is first challenged in `e+1`.
//! * **`MsgProveCustody{epoch, proofs}`** (signed by the holder's node key): for the current
//!   epoch only; each proof must answer an open challenge of that holder with the leaf bytes
//!   and the Merkle path to the registered root. One bad, unknown or repeated proof fails the
//!   whole message (nothing changes).
//! * **Judgement** ([`hooks`]) at the end of `e`: a holder that proved every challenge of `e`
//!   is credited `Σ shard_len` bytes·epochs of custody; one with any unproven challenge gets
//!   none, is slashed `audit_fail_slash_ppm` of its node bond (offence `storage_audit_failed`,
//!   once per epoch), its unproven shards are marked failed (reassignable), and after
//!   `jail_after_failures` failing epochs in a row it is also jailed.
//! * **`MsgReassignShard`** (signed by a storage-capable node's key, the repairer): moves a
//!   shard to a new storage-capable holder that is not yet in the stripe, with the new
//!   holder's receipt for the same root and length — only when the current holder failed an
//!   audit of that shard, is jailed, unbonding, gone, or has not heartbeated within the
//!   registry's liveness window. The repairer's repaired bytes are recorded (not paid).
//! * **Pay.** Rewards reads [`magnet_core::Custody`]: `storage_share_ppm` of each epoch pool
//!   goes to holders' operators by `T_i(storage) × custody_i` (see `magnet-rewards`).
//! * **Retention.** Expired stripes are dropped at the epoch end, except a non-delta stripe
//!   whose label is its job's current lineage head (jobs service `lineage_head`), kept and
//!   audited until the head moves on.
//!
//! Genesis: `{"params": …}`; every other record travels in the export's `store_records`.
//!
//! Queries (JSON): `/magnet.custody.v1/params`, `/magnet.custody.v1/stripe` (data: object hex),
//! `/magnet.custody.v1/by_label` (data: label hex → list of stripes),
//! `/magnet.custody.v1/challenges` (data: `epoch` or `epoch/holder`),
//! `/magnet.custody.v1/holder` (data: holder node-key bech32 → shards, per-epoch record,
//! failing streak), `/magnet.custody.v1/epoch` (data: epoch → totals).
//!
//! # Security
//! Guarantees:
//! * nobody is made to answer for bytes it never acknowledged: every placement needs the
//!   holder's own signed receipt bound to the chain id, object, index, root and length;
//! * a proof counts only for the exact challenged leaf of the registered root (domain-separated
//!   Merkle tree, fixed leaf count); the chain judges proofs itself and trusts no auditor;
//! * custody is credited only for holders that proved every challenge of the epoch, and only
//!   the challenged shards' lengths; a failed audit is slashed exactly once per epoch at the
//!   governed rate and never more than the bond;
//! * an honest holder (proving its audits, bonded, unjailed, heart-beating) cannot lose a
//!   shard to `MsgReassignShard`;
//! * everything is deterministic: store iteration and `BTreeMap` only, integer arithmetic.
//!
//! Does not guarantee:
//! * that a holder keeps a shard between audits — only that it could produce the drawn leaf
//!   (random leaves each epoch make keeping it the cheapest way); nor that it does not fetch
//!   leaves from other holders on demand (outsourcing; rebuilding costs K shards);
//! * unpredictable challenges against the block proposer: the seed is the block hash, which a
//!   proposer can grind a little (it learns the draw when it builds the block);
//! * that an SSD report is true (it is the operator's signed claim; audits police custody);
//! * availability of the data to readers (that is the daemon's repair loop).
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod error;
pub mod handler;
pub mod hooks;
pub mod msgs;
pub mod params;
pub mod state;

pub use error::Error;
/// The shared custody rules (Merkle tree, receipts, challenge draw), re-exported so a client
/// signs receipts and builds proofs with the very code the chain checks them with.
pub use magnet_rounds::custody as rules;
pub use params::Params;

use magnet_core::params::json;
use magnet_core::{Address, Ctx, Module, ModuleError, QueryCtx};

/// The custody module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct CustodyModule;

fn hex32(what: &str, data: &[u8]) -> Result<[u8; 32], ModuleError> {
    let s = String::from_utf8_lossy(data);
    let b = hex::decode(s.trim())
        .map_err(|e| ModuleError::invalid_request(format!("{what} must be hex: {e}")))?;
    <[u8; 32]>::try_from(b.as_slice())
        .map_err(|_| ModuleError::invalid_request(format!("{what} must be 32 bytes of hex")))
}

/// What `/magnet.custody.v1/holder` answers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HolderView {
    /// The holder's node-key address.
    pub holder: Address,
    /// Shards it holds now.
    pub shards: Vec<HeldShard>,
    /// Its audits, custody and repairs per epoch, ascending.
    pub epochs: Vec<state::HolderEpoch>,
    /// Consecutive epochs with an audit failure.
    pub failing_streak: u64,
}

/// One shard a holder holds (in [`HolderView`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeldShard {
    /// Object (hex).
    pub object: String,
    /// Shard index.
    pub index: u32,
    /// Stripe kind.
    pub kind: String,
    /// Stripe label (hex).
    pub label: String,
    /// Shard length.
    pub shard_len: u64,
    /// Epoch of an audit failure still marked on it.
    pub failed_epoch: Option<u64>,
    /// Epoch at whose end the stripe expires (unless kept as a lineage head).
    pub expires_epoch: u64,
}

fn holder_view(store: &dyn magnet_core::KvStore, data: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let holder = magnet_core::msg::address("holder", String::from_utf8_lossy(data).trim())?;
    let mut shards = Vec::new();
    for (object, index) in state::held(store, &holder)? {
        if let Some(s) = state::stripe(store, &object)? {
            let failed_epoch = s.shards.get(index as usize).and_then(|x| x.failed_epoch);
            shards.push(HeldShard {
                object: hex::encode(object),
                index,
                kind: s.kind.clone(),
                label: hex::encode(s.label),
                shard_len: s.shard_len,
                failed_epoch,
                expires_epoch: s.expires_epoch,
            });
        }
    }
    json(&HolderView {
        holder,
        shards,
        epochs: state::hstats(store, &holder)?,
        failing_streak: state::streak(store, &holder)?,
    })
}

fn challenges_view(store: &dyn magnet_core::KvStore, data: &[u8]) -> Result<Vec<u8>, ModuleError> {
    let s = String::from_utf8_lossy(data);
    let mut it = s.trim().splitn(2, '/');
    let epoch = it
        .next()
        .unwrap_or_default()
        .parse::<u64>()
        .map_err(|_| ModuleError::invalid_request("data must be `epoch` or `epoch/holder`"))?;
    let holder = match it.next() {
        Some(h) => Some(magnet_core::msg::address("holder", h)?),
        None => None,
    };
    json(&state::challenges(store, epoch, holder.as_ref())?)
}

impl Module for CustodyModule {
    fn name(&self) -> &'static str {
        "custody"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
    fn end_epoch(&self, ctx: &mut Ctx, epoch: u64) -> Result<(), ModuleError> {
        hooks::end_epoch(ctx, epoch)
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        let store = ctx.store;
        Some(match path {
            "/magnet.custody.v1/params" => state::params(store).and_then(|p| json(&p)),
            "/magnet.custody.v1/stripe" => hex32("object", data)
                .and_then(|o| state::stripe(store, &o))
                .and_then(|s| json(&s)),
            "/magnet.custody.v1/by_label" => hex32("label", data)
                .and_then(|l| state::by_label(store, &l))
                .and_then(|s| json(&s)),
            "/magnet.custody.v1/challenges" => challenges_view(store, data),
            "/magnet.custody.v1/holder" => holder_view(store, data),
            "/magnet.custody.v1/epoch" => String::from_utf8_lossy(data)
                .trim()
                .parse::<u64>()
                .map_err(|_| ModuleError::invalid_request("data must be an epoch number"))
                .and_then(|e| state::totals(store, e))
                .and_then(|t| json(&t)),
            _ => return None,
        })
    }
    magnet_core::module_params_methods!(Params);
}

impl magnet_core::Custody for CustodyModule {
    fn storage_share_ppm(&self, ctx: &mut Ctx) -> Result<u64, ModuleError> {
        Ok(state::params(ctx.store())?.storage_share_ppm)
    }
    fn custody(&self, ctx: &mut Ctx, epoch: u64) -> Result<Vec<(Address, u128)>, ModuleError> {
        state::credits(ctx.store(), epoch)
    }
}
