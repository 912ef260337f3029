//! Storage-tier stripes (issue 18, ADR 0107): what the epoch keeps is written as RS(4,2)
//! stripes over distinct storage-capable nodes, read back from any K of them, repaired from K
//! survivors, audited leaf by leaf and garbage-collected after retention.
//!
//! This module is the node-side machinery as a library. It makes no chain calls: the facts
//! the chain holds (the registered stripe, the registry's nodes, the epoch's challenges) are
//! arguments, and what the chain needs (`MsgRegisterStripe.shards`, `CustodyProof`s, the
//! receipts of a `MsgReassignShard`) are results.
//!
//! * [`encode`] cuts an object into K+M shards with `magnet_storage`'s codec (its stripe
//!   layout: 1 MiB stripes, each split into K pieces; shard `i` is piece `i` of every stripe)
//!   and computes each shard's Merkle root ([`magnet_rounds::custody::merkle_root`]).
//! * [`choose_holders`] / [`rank_holders`] order candidates by
//!   [`magnet_storage::placement::rank_spread`]: distinct operators first, then distinct
//!   regions, rendezvous-ranked by (object, node).
//! * [`put`] pushes the shards concurrently over the signed, key-bound p2p layer, verifying each
//!   holder's custody receipt; a failed holder is replaced by the next-ranked unused candidate.
//! * [`get`] fetches any K shards (data shards first), checks each against its recorded Merkle
//!   root, decodes and checks the object hash. [`scrub`] checks every holder.
//! * [`repair`] rebuilds lost shards from K survivors within a byte budget and places them
//!   on new holders with receipts.
//! * [`prove`] answers custody challenges from the local store; [`collect_garbage`] drops
//!   shards past retention.
//!
//! # Security
//! Verified:
//! * every shard read from a peer is checked chunk by chunk against the holder's signed
//!   manifest (p2p layer), then its length and **Merkle root against the root recorded in the
//!   stripe** — a shard whose root differs is reported corrupt and never decoded;
//! * the decoded bytes must hash (SHA-256) to the object's content address, or nothing is
//!   returned ([`StripeError::ObjectMismatch`]); fewer than K verified shards is
//!   [`StripeError::Unrecoverable`], never partial or wrong bytes;
//! * every receipt is checked against the holder's registered node key (the key the TLS
//!   handshake proved) and the root computed locally from the bytes sent;
//! * a rebuilt shard must have its recorded root before it is placed;
//! * [`prove`] reads through the store's hash-checked read ([`magnet_p2p::StoreBackend`]
//!   over `ShardStore`): a shard with bitrot fails its audit here instead of yielding a proof
//!   for bytes the holder no longer has intact.
//!
//! Not verified here: that the stripe record itself is what the chain registered (the caller
//! passes the chain's record), that candidates are storage-capable or unjailed (the registry
//! decides), and that holders keep shards between audits. A store without hash-checked reads
//! (`DirShardBackend`) would let [`prove`] prove rotted bytes, which the chain then rejects
//! against the recorded root — still a failed audit, but only on chain. Peer input never
//! panics this module: sizes are bounded by the recorded shard length, every index is
//! range-checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use magnet_p2p::backend::{BackendError, ShardBackend, ShardKey};
use magnet_p2p::{Expect, P2pError, PeerClient, PublicKey};
use magnet_proto::custody::v1::{CustodyProof, ShardPlacement};
use magnet_rounds::custody::{leaf_range, merkle_proof, merkle_root};
use magnet_storage::codec::{self, Codec, CodecError, Layout, Params};
use magnet_storage::placement::{rank_spread, OperatedCandidate};
use magnet_storage::{ContentAddress, Hash32, HolderId};
use tokio::task::JoinSet;

use crate::round::Net;

/// Data shards per stripe.
pub const K: u8 = 4;
/// Parity shards per stripe.
pub const M: u8 = 2;
/// Longest one shard transfer (connect + put or get) may take before its holder counts as
/// unreachable.
pub const SHARD_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors of stripe operations.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// The erasure codec refused the settings or data.
    #[error("erasure codec: {0}")]
    Codec(#[from] CodecError),
    /// The stripe record (or an argument) is inconsistent.
    #[error("inconsistent stripe record: {0}")]
    BadRecord(String),
    /// Fewer than K+M distinct holders accepted a shard with a valid receipt.
    #[error(
        "placed {placed} of {need} shards of {} on distinct holders; failures: {}",
        hex::encode(object),
        list(failures)
    )]
    NotEnoughHolders {
        /// The object.
        object: [u8; 32],
        /// Shards placed with a valid receipt.
        placed: usize,
        /// K + M.
        need: usize,
        /// Why the other holders failed.
        failures: Vec<HolderFailure>,
    },
    /// Fewer than K shards verified: the object cannot be rebuilt from what answered.
    #[error(
        "object {} is unrecoverable: {have} verified shards of the {need} needed; failures: {}",
        hex::encode(object),
        list(failures)
    )]
    Unrecoverable {
        /// The object.
        object: [u8; 32],
        /// Verified shards.
        have: usize,
        /// K.
        need: usize,
        /// What went wrong with each holder tried.
        failures: Vec<HolderFailure>,
    },
    /// K verified shards decoded to bytes of another hash (the record's roots and object
    /// disagree); no bytes are returned.
    #[error("decoded bytes hash to {got}, not to the object {object}")]
    ObjectMismatch {
        /// The object (hex).
        object: String,
        /// Hash of the decoded bytes (hex).
        got: String,
    },
    /// A rebuilt shard does not have its recorded Merkle root; it is not placed.
    #[error("rebuilt shard {index} has Merkle root {got}, the record says {want}")]
    RebuildMismatch {
        /// Shard index.
        index: u32,
        /// Recorded root (hex).
        want: String,
        /// Root of the rebuilt bytes (hex).
        got: String,
    },
    /// The repair would move more bytes than its budget allows; nothing was transferred.
    #[error("repair needs {need} bytes of transfer, over its budget of {budget}")]
    OverBudget {
        /// Bytes the repair would read and write.
        need: u64,
        /// The budget.
        budget: u64,
    },
    /// The local store failed.
    #[error("local shard store: {0}")]
    Backend(#[from] BackendError),
}

fn list(f: &[HolderFailure]) -> String {
    if f.is_empty() {
        return "none".into();
    }
    f.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// How a holder failed a shard transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureKind {
    /// Could not be dialled, dropped the connection or timed out.
    Unreachable,
    /// Answered that it does not hold the shard.
    Missing,
    /// Served bytes that failed a check (its own store's hash check, the signed manifest, the
    /// length or the recorded Merkle root).
    Corrupt,
    /// Refused otherwise (full, bad receipt, not a registered node, protocol error).
    Refused,
}

/// One holder's failure on one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HolderFailure {
    /// Shard index.
    pub index: u32,
    /// Holder node id.
    pub holder: String,
    /// What kind of failure.
    pub kind: FailureKind,
    /// The cause, for logs.
    pub detail: String,
}

impl fmt::Display for HolderFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shard {} at {}: {:?}: {}",
            self.index, self.holder, self.kind, self.detail
        )
    }
}

/// An object cut into K+M shards, ready to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// SHA-256 of the object's bytes (its content address).
    pub object: [u8; 32],
    /// Object size in bytes.
    pub size: u64,
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
    /// The codec's stripe size (bytes of object per stripe).
    pub stripe_size: u32,
    /// Length of every shard.
    pub shard_len: u64,
    /// The K+M shards, in index order.
    pub shards: Vec<Vec<u8>>,
    /// Merkle root of each shard.
    pub roots: Vec<[u8; 32]>,
}

impl Encoded {
    /// The stripe record of this object once placed on `holders` (node ids, shard order).
    pub fn view(&self, holders: Vec<String>) -> StripeView {
        StripeView {
            object: self.object,
            size: self.size,
            k: self.k,
            m: self.m,
            stripe_size: self.stripe_size,
            shard_len: self.shard_len,
            holders,
            roots: self.roots.clone(),
        }
    }
}

/// Cuts `bytes` into RS(4,2) shards with `magnet_storage`'s default stripe size (1 MiB).
pub fn encode(bytes: &[u8]) -> Result<Encoded, StripeError> {
    let params = Params::new(K, M)?;
    let stripe_size = params.default_stripe();
    let codec = Codec::new(params)?;
    let (enc, shards) = codec::encode(&codec, stripe_size, bytes)?;
    let roots = shards.iter().map(|s| merkle_root(s)).collect();
    Ok(Encoded {
        object: enc.object_hash.0,
        size: enc.layout.object_size,
        k: K,
        m: M,
        stripe_size,
        shard_len: enc.layout.shard_len(),
        shards,
        roots,
    })
}

/// A stripe as the chain records it, with holders as node ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripeView {
    /// SHA-256 of the object.
    pub object: [u8; 32],
    /// Object size.
    pub size: u64,
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
    /// Stripe size of the codec layout.
    pub stripe_size: u32,
    /// Length of every shard.
    pub shard_len: u64,
    /// Holder node id of each shard, in shard order.
    pub holders: Vec<String>,
    /// Merkle root of each shard, in shard order.
    pub roots: Vec<[u8; 32]>,
}

impl StripeView {
    /// Checks the record's internal consistency and returns its codec layout.
    pub fn layout(&self) -> Result<Layout, StripeError> {
        let params = Params::new(self.k, self.m)?;
        let layout = Layout::new(params, self.stripe_size, self.size)?;
        if layout.shard_len() != self.shard_len {
            return Err(StripeError::BadRecord(format!(
                "shard_len {} but the layout gives {}",
                self.shard_len,
                layout.shard_len()
            )));
        }
        let total = params.total();
        if self.holders.len() != total || self.roots.len() != total {
            return Err(StripeError::BadRecord(format!(
                "{} holders and {} roots for {total} shards",
                self.holders.len(),
                self.roots.len()
            )));
        }
        Ok(layout)
    }

    /// The view of a registered stripe: `node_of` maps each placement's holder (a chain
    /// node address) to its node id (from the registry). Checks sizes, roots and the layout.
    pub fn from_register(
        msg: &magnet_proto::custody::v1::MsgRegisterStripe,
        node_of: impl Fn(&str) -> Option<String>,
    ) -> Result<StripeView, StripeError> {
        let bad = |what: String| StripeError::BadRecord(what);
        let object = <[u8; 32]>::try_from(msg.object.as_slice())
            .map_err(|_| bad(format!("object is {} bytes, not 32", msg.object.len())))?;
        let k = u8::try_from(msg.k).map_err(|_| bad(format!("k = {}", msg.k)))?;
        let m = u8::try_from(msg.m).map_err(|_| bad(format!("m = {}", msg.m)))?;
        let mut holders = Vec::with_capacity(msg.shards.len());
        let mut roots = Vec::with_capacity(msg.shards.len());
        for (i, p) in msg.shards.iter().enumerate() {
            holders.push(
                node_of(&p.holder)
                    .ok_or_else(|| bad(format!("shard {i}: no node for {}", p.holder)))?,
            );
            roots.push(
                <[u8; 32]>::try_from(p.root.as_slice())
                    .map_err(|_| bad(format!("shard {i}: root is not 32 bytes")))?,
            );
        }
        let v = StripeView {
            object,
            size: msg.size,
            k,
            m,
            stripe_size: msg.stripe_size,
            shard_len: msg.shard_len,
            holders,
            roots,
        };
        v.layout()?;
        Ok(v)
    }

    fn total(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    fn key(&self, index: u32) -> ShardKey {
        ShardKey {
            object_id: self.object,
            index,
        }
    }
}

/// A node offered for placement (from the registry: storage-capable, active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Node id (`node-<16 hex>`).
    pub node_id: String,
    /// Operator account running it.
    pub operator: String,
    /// Region label.
    pub region: String,
    /// Free bytes it reports.
    pub free_bytes: u64,
}

/// Candidates for `object` in placement order (see
/// [`magnet_storage::placement::rank_spread`]): only those with `min_free` bytes and not in
/// `exclude`; distinct operators first, then distinct regions. Node ids that are not valid
/// holder ids are dropped.
pub fn rank_holders(
    object: &[u8; 32],
    candidates: &[Candidate],
    exclude: &[String],
    min_free: u64,
) -> Vec<String> {
    let cands: Vec<OperatedCandidate> = candidates
        .iter()
        .filter_map(|c| {
            Some(OperatedCandidate {
                id: HolderId::new(c.node_id.clone()).ok()?,
                operator: c.operator.clone(),
                region: c.region.clone(),
                free_bytes: c.free_bytes,
            })
        })
        .collect();
    let exclude: Vec<HolderId> = exclude
        .iter()
        .filter_map(|e| HolderId::new(e.clone()).ok())
        .collect();
    rank_spread(&ContentAddress(Hash32(*object)), &cands, min_free, &exclude)
        .into_iter()
        .map(|h| h.as_str().to_owned())
        .collect()
}

/// The first `n` distinct holders for `object` by [`rank_holders`] (no space requirement).
pub fn choose_holders(
    object: &[u8; 32],
    candidates: &[Candidate],
    n: usize,
    exclude: &[String],
) -> Vec<String> {
    let mut r = rank_holders(object, candidates, exclude, 0);
    r.truncate(n);
    r
}

/// One placed shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedShard {
    /// Shard index.
    pub index: u32,
    /// Holder node id.
    pub holder: String,
    /// Merkle root of the shard.
    pub root: [u8; 32],
    /// The holder's 64-byte receipt signature, verified.
    pub receipt: Vec<u8>,
}

/// Where [`put`] placed an object's shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The object.
    pub object: [u8; 32],
    /// One entry per shard, in shard order.
    pub shards: Vec<PlacedShard>,
    /// Holders tried and replaced.
    pub failures: Vec<HolderFailure>,
    /// Bytes sent (successful uploads).
    pub bytes_written: u64,
}

impl Placement {
    /// Holder node ids in shard order.
    pub fn holders(&self) -> Vec<String> {
        self.shards.iter().map(|s| s.holder.clone()).collect()
    }

    /// `MsgRegisterStripe.shards`: `chain_address` maps a holder node id to its chain (node
    /// account) address — `Net::peer(id)?.node` for registered peers.
    pub fn to_proto(
        &self,
        chain_address: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<ShardPlacement>, StripeError> {
        self.shards
            .iter()
            .map(|s| {
                Ok(ShardPlacement {
                    holder: chain_address(&s.holder).ok_or_else(|| {
                        StripeError::BadRecord(format!("no chain address for {}", s.holder))
                    })?,
                    root: s.root.to_vec(),
                    receipt: s.receipt.clone(),
                })
            })
            .collect()
    }
}

type Fail = (FailureKind, String);

fn classify(e: &P2pError) -> FailureKind {
    match e {
        P2pError::Rpc(s) => match s.code() {
            tonic::Code::NotFound => FailureKind::Missing,
            tonic::Code::DataLoss => FailureKind::Corrupt,
            tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded => FailureKind::Unreachable,
            _ => FailureKind::Refused,
        },
        P2pError::Integrity(_) => FailureKind::Corrupt,
        P2pError::Transport { .. } | P2pError::Tls(_) | P2pError::Io(_) => FailureKind::Unreachable,
        _ => FailureKind::Refused,
    }
}

fn p2p_fail(e: P2pError) -> Fail {
    (classify(&e), e.to_string())
}

async fn dial(net: &Net, id: &str) -> Result<(PeerClient, PublicKey), Fail> {
    let p = net
        .peer(id)
        .map_err(|e| (FailureKind::Refused, e.to_string()))?;
    let key = PublicKey::from_bytes(&p.pubkey)
        .map_err(|e| (FailureKind::Refused, format!("registered key: {e}")))?;
    let c = PeerClient::connect(
        &p.endpoint,
        Expect::Key(key),
        &net.tls,
        net.signer.clone(),
        net.verifier.clone(),
    )
    .await
    .map_err(p2p_fail)?;
    Ok((c, key))
}

async fn timed<T>(f: impl std::future::Future<Output = Result<T, Fail>>) -> Result<T, Fail> {
    tokio::time::timeout(SHARD_TIMEOUT, f)
        .await
        .unwrap_or_else(|_| {
            Err((
                FailureKind::Unreachable,
                format!("no answer within {SHARD_TIMEOUT:?}"),
            ))
        })
}

/// Uploads one shard and checks the holder's receipt.
async fn push_one(
    net: Net,
    chain_id: String,
    holder: String,
    key: ShardKey,
    data: Vec<u8>,
) -> Result<magnet_p2p::VerifiedReceipt, Fail> {
    timed(async {
        let (mut c, pk) = dial(&net, &holder).await?;
        c.put_shard_with_receipt(&key, &data, &chain_id, &pk)
            .await
            .map_err(p2p_fail)
    })
    .await
}

/// Downloads one shard and checks its length and Merkle root against the record.
async fn fetch_one(
    net: Net,
    holder: String,
    key: ShardKey,
    shard_len: u64,
    root: [u8; 32],
) -> Result<Vec<u8>, Fail> {
    timed(async {
        let (mut c, _) = dial(&net, &holder).await?;
        c.max_shard_bytes = shard_len;
        let b = c.get_shard(&key, None).await.map_err(p2p_fail)?;
        if b.len() as u64 != shard_len {
            return Err((
                FailureKind::Corrupt,
                format!("served {} bytes, the record says {shard_len}", b.len()),
            ));
        }
        let got = merkle_root(&b);
        if got != root {
            return Err((
                FailureKind::Corrupt,
                format!(
                    "Merkle root {} differs from the recorded {}",
                    hex::encode(got),
                    hex::encode(root)
                ),
            ));
        }
        Ok(b)
    })
    .await
}

/// Places `enc` on distinct holders from `candidates` (registered peers of `net`), each
/// upload answered by a receipt valid on `chain_id`; a holder that fails is replaced by the
/// next-ranked unused candidate. Errors with [`StripeError::NotEnoughHolders`] when
/// candidates run out before all K+M shards are placed.
pub async fn put(
    net: &Net,
    chain_id: &str,
    enc: &Encoded,
    candidates: &[Candidate],
) -> Result<Placement, StripeError> {
    let total = usize::from(enc.k) + usize::from(enc.m);
    if enc.shards.len() != total || enc.roots.len() != total {
        return Err(StripeError::BadRecord(format!(
            "{} shards and {} roots for K+M = {total}",
            enc.shards.len(),
            enc.roots.len()
        )));
    }
    let ranked = rank_holders(&enc.object, candidates, &[], enc.shard_len);
    // Fewer distinct candidates than shards: a holder takes up to M shards (round robin over
    // the ranking), so losing any one holder still leaves K shards (ADR 0107; the chain
    // enforces the same bound).
    let per_holder = if ranked.len() >= total {
        1
    } else {
        usize::from(enc.m).max(1)
    };
    let slots: Vec<String> = (0..per_holder)
        .flat_map(|_| ranked.iter().cloned())
        .collect();
    let mut next = slots.iter();
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, index: usize, holder: String| {
        let key = ShardKey {
            object_id: enc.object,
            index: index as u32,
        };
        let fut = push_one(
            net.clone(),
            chain_id.to_owned(),
            holder.clone(),
            key,
            enc.shards[index].clone(),
        );
        tasks.spawn(async move { (index, holder, fut.await) });
    };
    let mut placed: BTreeMap<usize, PlacedShard> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut bytes_written = 0u64;
    for index in 0..total {
        match next.next() {
            Some(h) => spawn(&mut tasks, index, h.clone()),
            None => break,
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, holder, res)) = joined else {
            continue;
        };
        match res {
            Ok(r) if r.root == enc.roots[index] => {
                bytes_written += enc.shard_len;
                placed.insert(
                    index,
                    PlacedShard {
                        index: index as u32,
                        holder,
                        root: r.root,
                        receipt: r.signature,
                    },
                );
            }
            other => {
                let (kind, detail) = match other {
                    Err(f) => f,
                    Ok(_) => (
                        FailureKind::Refused,
                        "receipt root differs from the encoded root".into(),
                    ),
                };
                tracing::warn!(shard = index, %holder, ?kind, "shard placement failed: {detail}");
                failures.push(HolderFailure {
                    index: index as u32,
                    holder,
                    kind,
                    detail,
                });
                if let Some(h) = next.next() {
                    spawn(&mut tasks, index, h.clone());
                }
            }
        }
    }
    if placed.len() < total {
        return Err(StripeError::NotEnoughHolders {
            object: enc.object,
            placed: placed.len(),
            need: total,
            failures,
        });
    }
    Ok(Placement {
        object: enc.object,
        shards: placed.into_values().collect(),
        failures,
        bytes_written,
    })
}

/// What a read found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GetReport {
    /// Shard indices that verified and were used.
    pub used: Vec<u32>,
    /// Holders that failed, and why (the caller's repair trigger).
    pub failures: Vec<HolderFailure>,
    /// Bytes received from holders (verified shards and shards found corrupt).
    pub bytes_read: u64,
}

/// Fetches verified shards of `view` from its holders, skipping `skip`, data shards first,
/// at most `want` at a time in flight and stopping at `want` good ones.
async fn fetch_verified(
    net: &Net,
    view: &StripeView,
    skip: &BTreeSet<u32>,
    want: usize,
) -> (BTreeMap<u32, Vec<u8>>, GetReport) {
    let mut queue = (0..view.total() as u32).filter(|i| !skip.contains(i));
    let mut tasks = JoinSet::new();
    let spawn = |tasks: &mut JoinSet<_>, index: u32| {
        let i = index as usize;
        let fut = fetch_one(
            net.clone(),
            view.holders[i].clone(),
            view.key(index),
            view.shard_len,
            view.roots[i],
        );
        tasks.spawn(async move { (index, fut.await) });
    };
    for _ in 0..want {
        match queue.next() {
            Some(i) => spawn(&mut tasks, i),
            None => break,
        }
    }
    let mut good = BTreeMap::new();
    let mut report = GetReport::default();
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, res)) = joined else {
            continue;
        };
        match res {
            Ok(b) => {
                report.bytes_read += b.len() as u64;
                good.insert(index, b);
                if good.len() >= want {
                    break;
                }
            }
            Err((kind, detail)) => {
                if kind == FailureKind::Corrupt {
                    report.bytes_read += view.shard_len;
                }
                report.failures.push(HolderFailure {
                    index,
                    holder: view.holders[index as usize].clone(),
                    kind,
                    detail,
                });
                if let Some(i) = queue.next() {
                    spawn(&mut tasks, i);
                }
            }
        }
    }
    tasks.abort_all();
    report.used = good.keys().copied().collect();
    report.failures.sort_by_key(|f| f.index);
    (good, report)
}

fn readers(total: usize, good: &BTreeMap<u32, Vec<u8>>) -> Vec<Option<&[u8]>> {
    (0..total)
        .map(|i| good.get(&(i as u32)).map(Vec::as_slice))
        .collect()
}

/// Reads the object of `view` from any K of its holders: shards are fetched concurrently
/// (data shards first, then parity as others fail), each checked against its recorded Merkle
/// root; a shard that fails is reported and skipped. Returns the exact bytes (their SHA-256
/// is the object) and a report of who failed, or [`StripeError::Unrecoverable`] when fewer
/// than K shards verify.
pub async fn get(net: &Net, view: &StripeView) -> Result<(Vec<u8>, GetReport), StripeError> {
    let layout = view.layout()?;
    let k = usize::from(view.k);
    let (good, report) = fetch_verified(net, view, &BTreeSet::new(), k).await;
    if good.len() < k {
        return Err(StripeError::Unrecoverable {
            object: view.object,
            have: good.len(),
            need: k,
            failures: report.failures,
        });
    }
    let codec = Codec::new(layout.params)?;
    let mut shards = readers(view.total(), &good);
    // The record's size is not trusted for a huge up-front allocation; the output grows as
    // verified shards decode.
    let mut out = Vec::with_capacity(usize::try_from(view.size.min(1 << 28)).unwrap_or(0));
    let got = codec::decode_stream(&codec, &layout, &mut shards, &mut out, |_| {})?;
    // `got` is the SHA-256 of exactly the bytes written to `out`.
    if got.0 != view.object {
        return Err(StripeError::ObjectMismatch {
            object: hex::encode(view.object),
            got: got.to_hex(),
        });
    }
    Ok((out, report))
}

/// Fetches every shard of `view` from its holder and checks it against its root: the
/// holders that fail (unreachable, missing, corrupt) are the shards to repair.
pub async fn scrub(net: &Net, view: &StripeView) -> Result<GetReport, StripeError> {
    view.layout()?;
    let (_, report) = fetch_verified(net, view, &BTreeSet::new(), view.total()).await;
    Ok(report)
}

/// A shard rebuilt and placed on a new holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairedShard {
    /// Shard index.
    pub index: u32,
    /// The new holder's node id.
    pub holder: String,
    /// Merkle root (equal to the recorded one).
    pub root: [u8; 32],
    /// The new holder's receipt (for `MsgReassignShard.receipt`).
    pub receipt: Vec<u8>,
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepairReport {
    /// Shards rebuilt and placed with a valid receipt.
    pub repaired: Vec<RepairedShard>,
    /// Survivors that failed the read, and new holders that failed the upload.
    pub failures: Vec<HolderFailure>,
    /// Bytes read from survivors.
    pub bytes_read: u64,
    /// Bytes written to new holders.
    pub bytes_written: u64,
}

/// Bytes a repair of `lost` shards moves at most: K survivor reads plus one write per lost
/// shard (`(K + lost) × shard_len`).
pub fn repair_cost(view: &StripeView, lost: usize) -> u64 {
    (u64::from(view.k) + lost as u64).saturating_mul(view.shard_len)
}

/// Rebuilds shards `lost` of `view` from K verified survivors and places shard `lost[i]` on
/// `new_holders[i]` with a receipt valid on `chain_id`. Refuses to start
/// ([`StripeError::OverBudget`]) when [`repair_cost`] exceeds `budget_bytes`. A rebuilt shard
/// must have its recorded root. Uploads that fail are listed in the report's failures (the
/// caller picks other holders); reads that leave fewer than K survivors are
/// [`StripeError::Unrecoverable`].
pub async fn repair(
    net: &Net,
    chain_id: &str,
    view: &StripeView,
    lost: &[u32],
    new_holders: &[String],
    budget_bytes: u64,
) -> Result<RepairReport, StripeError> {
    let layout = view.layout()?;
    let total = view.total();
    let lost_set: BTreeSet<u32> = lost.iter().copied().collect();
    if lost_set.len() != lost.len() || lost.iter().any(|i| *i as usize >= total) {
        return Err(StripeError::BadRecord(format!(
            "lost shards {lost:?} must be distinct indices below {total}"
        )));
    }
    if new_holders.len() != lost.len() {
        return Err(StripeError::BadRecord(format!(
            "{} lost shards but {} new holders",
            lost.len(),
            new_holders.len()
        )));
    }
    // After the repair no node may hold more than M shards of the object (ADR 0107: a holder
    // takes a second shard only when no spare storage node is left; the chain checks that).
    let mut per_holder: BTreeMap<&str, usize> = BTreeMap::new();
    for i in (0..total).filter(|i| !lost_set.contains(&(*i as u32))) {
        *per_holder.entry(view.holders[i].as_str()).or_default() += 1;
    }
    for h in new_holders {
        *per_holder.entry(h.as_str()).or_default() += 1;
    }
    if per_holder.values().any(|&n| n > usize::from(view.m).max(1)) {
        return Err(StripeError::BadRecord(
            "no node may hold more than M shards of the object after the repair".into(),
        ));
    }
    let need = repair_cost(view, lost.len());
    if need > budget_bytes {
        return Err(StripeError::OverBudget {
            need,
            budget: budget_bytes,
        });
    }
    let k = usize::from(view.k);
    let (good, read) = fetch_verified(net, view, &lost_set, k).await;
    if good.len() < k {
        return Err(StripeError::Unrecoverable {
            object: view.object,
            have: good.len(),
            need: k,
            failures: read.failures,
        });
    }
    let codec = Codec::new(layout.params)?;
    let mut report = RepairReport {
        failures: read.failures,
        bytes_read: read.bytes_read,
        ..RepairReport::default()
    };
    let mut tasks = JoinSet::new();
    for (&index, holder) in lost.iter().zip(new_holders) {
        let idx = u8::try_from(index)
            .map_err(|_| StripeError::BadRecord(format!("shard index {index} over 255")))?;
        let mut shards = readers(total, &good);
        let rebuilt = codec::rebuild_shard(&codec, &layout, &mut shards, idx)?;
        let want = view.roots[index as usize];
        let got = merkle_root(&rebuilt);
        if got != want {
            return Err(StripeError::RebuildMismatch {
                index,
                want: hex::encode(want),
                got: hex::encode(got),
            });
        }
        let fut = push_one(
            net.clone(),
            chain_id.to_owned(),
            holder.clone(),
            view.key(index),
            rebuilt,
        );
        let holder = holder.clone();
        tasks.spawn(async move { (index, holder, fut.await) });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, holder, res)) = joined else {
            continue;
        };
        match res {
            Ok(r) => {
                report.bytes_written += r.len;
                report.repaired.push(RepairedShard {
                    index,
                    holder,
                    root: r.root,
                    receipt: r.signature,
                });
            }
            Err((kind, detail)) => report.failures.push(HolderFailure {
                index,
                holder,
                kind,
                detail,
            }),
        }
    }
    report.repaired.sort_by_key(|r| r.index);
    Ok(report)
}

/// One custody challenge addressed to this node (from the chain's epoch draw).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodyChallenge {
    /// The object.
    pub object: [u8; 32],
    /// Shard index this node holds.
    pub index: u32,
    /// The recorded shard length.
    pub shard_len: u64,
    /// The challenged leaf ([`magnet_rounds::custody::challenge_leaf`]).
    pub leaf: u64,
}

/// A challenge this node could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProveFailure {
    /// The challenge.
    pub challenge: CustodyChallenge,
    /// Why (not held, corrupt, wrong length, leaf out of range, store error).
    pub reason: String,
}

/// Answers custody challenges from the local store: each challenged shard is read with the
/// store's hash check (a rotted shard fails here), its length checked against the record,
/// and the leaf with its Merkle path returned. Unanswerable challenges are listed, never
/// answered with other bytes.
pub fn prove(
    store: &dyn ShardBackend,
    challenges: &[CustodyChallenge],
) -> (Vec<CustodyProof>, Vec<ProveFailure>) {
    let mut proofs = Vec::new();
    let mut failures = Vec::new();
    for ch in challenges {
        let key = ShardKey {
            object_id: ch.object,
            index: ch.index,
        };
        let fail = |reason: String| ProveFailure {
            challenge: *ch,
            reason,
        };
        let data = match store.get_shard(&key) {
            Ok(Some(d)) => d,
            Ok(None) => {
                failures.push(fail("shard not held".into()));
                continue;
            }
            Err(e) => {
                failures.push(fail(e.to_string()));
                continue;
            }
        };
        if data.len() as u64 != ch.shard_len {
            failures.push(fail(format!(
                "held shard has {} bytes, the record says {}",
                data.len(),
                ch.shard_len
            )));
            continue;
        }
        let (Some((a, b)), Some(path)) = (
            leaf_range(ch.shard_len, ch.leaf),
            merkle_proof(&data, ch.leaf),
        ) else {
            failures.push(fail(format!("leaf {} is out of range", ch.leaf)));
            continue;
        };
        proofs.push(CustodyProof {
            object: ch.object.to_vec(),
            index: ch.index,
            leaf: data[a as usize..b as usize].to_vec(),
            path: path.iter().map(|h| h.to_vec()).collect(),
        });
    }
    (proofs, failures)
}

/// What a garbage collection freed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GcReport {
    /// Shards deleted.
    pub shards: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
}

/// Deletes every local shard whose object `keep` rejects (past retention, or no longer
/// registered). `keep` sees every object in the store — the node's own Δ and checkpoint
/// shards included — so it must keep what the node still needs.
pub fn collect_garbage(
    store: &dyn ShardBackend,
    keep: impl Fn(&[u8; 32]) -> bool,
) -> Result<GcReport, StripeError> {
    let mut r = GcReport::default();
    for s in store.list_shards(None)? {
        if keep(&s.key.object_id) {
            continue;
        }
        if store.delete_shard(&s.key)? {
            r.shards += 1;
            r.bytes_freed += s.size;
        }
    }
    Ok(r)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use magnet_p2p::storage_glue::StoreBackend;
    use magnet_rounds::custody::{challenge_leaf, verify_leaf};
    use magnet_storage::ShardStore;
    use sha2::{Digest as _, Sha256};

    fn data(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| (i * 131 % 251) as u8 ^ (i >> 9) as u8)
            .collect()
    }

    #[test]
    fn encode_records_a_layout_that_decodes_exactly_from_any_four() {
        let d = data(2 * 1024 * 1024 + 12_345);
        let e = encode(&d).unwrap();
        assert_eq!(e.object, <[u8; 32]>::from(Sha256::digest(&d)));
        assert_eq!(e.shards.len(), 6);
        assert!(e.shards.iter().all(|s| s.len() as u64 == e.shard_len));
        let view = e.view((0..6).map(|i| format!("n{i}")).collect());
        let layout = view.layout().unwrap();
        let codec = Codec::new(layout.params).unwrap();
        for drop in [[0usize, 1], [2, 5], [4, 5], [0, 3]] {
            let good: BTreeMap<u32, Vec<u8>> = (0..6)
                .filter(|i| !drop.contains(i))
                .map(|i| (i as u32, e.shards[i].clone()))
                .collect();
            let mut r = readers(6, &good);
            let mut out = Vec::new();
            codec::decode_stream(&codec, &layout, &mut r, &mut out, |_| {}).unwrap();
            assert_eq!(out, d);
        }
    }

    #[test]
    fn a_view_with_a_wrong_shard_len_or_holder_count_is_refused() {
        let e = encode(&data(1000)).unwrap();
        let mut v = e.view((0..6).map(|i| format!("n{i}")).collect());
        v.shard_len += 1;
        assert!(matches!(v.layout(), Err(StripeError::BadRecord(_))));
        let v = e.view(vec!["a".into()]);
        assert!(matches!(v.layout(), Err(StripeError::BadRecord(_))));
    }

    #[test]
    fn a_registered_stripe_maps_back_to_a_view() {
        let e = encode(&data(5000)).unwrap();
        let v = e.view((0..6).map(|i| format!("node-{i}")).collect());
        let msg = magnet_proto::custody::v1::MsgRegisterStripe {
            object: e.object.to_vec(),
            size: e.size,
            k: 4,
            m: 2,
            stripe_size: e.stripe_size,
            shard_len: e.shard_len,
            shards: (0..6)
                .map(|i| ShardPlacement {
                    holder: format!("magnet1node{i}"),
                    root: e.roots[i].to_vec(),
                    receipt: vec![0; 64],
                })
                .collect(),
            ..Default::default()
        };
        let back = StripeView::from_register(&msg, |a| {
            a.strip_prefix("magnet1")
                .map(|n| n.replace("node", "node-"))
        })
        .unwrap();
        assert_eq!(back, v);
        let mut short = msg.clone();
        short.shards.pop();
        assert!(StripeView::from_register(&short, |a| Some(a.into())).is_err());
        assert!(StripeView::from_register(&msg, |_| None).is_err());
    }

    #[test]
    fn holders_spread_over_operators_first() {
        let cands: Vec<Candidate> = (0..8)
            .map(|i| Candidate {
                node_id: format!("node-{i:016x}"),
                operator: format!("op{}", i % 4),
                region: ["eu", "us"][i % 2].into(),
                free_bytes: 1 << 30,
            })
            .collect();
        let h = choose_holders(&[1; 32], &cands, 6, &[]);
        assert_eq!(h.len(), 6);
        let ops: BTreeSet<String> = h[..4]
            .iter()
            .map(|n| {
                cands
                    .iter()
                    .find(|c| &c.node_id == n)
                    .unwrap()
                    .operator
                    .clone()
            })
            .collect();
        assert_eq!(ops.len(), 4);
        assert_eq!(h, choose_holders(&[1; 32], &cands, 6, &[]));
        let ex = choose_holders(&[1; 32], &cands, 6, &h[..1]);
        assert!(!ex.contains(&h[0]));
    }

    #[test]
    fn prove_answers_from_a_hash_checked_store_and_gc_frees_what_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let store = StoreBackend::new(ShardStore::open(dir.path()).unwrap(), 1 << 30);
        let e = encode(&data(300_001)).unwrap();
        for i in [1u32, 4] {
            let key = ShardKey {
                object_id: e.object,
                index: i,
            };
            store.put_shard(&key, &e.shards[i as usize]).unwrap();
        }
        let chs: Vec<CustodyChallenge> = [1u32, 4, 2]
            .iter()
            .map(|&index| CustodyChallenge {
                object: e.object,
                index,
                shard_len: e.shard_len,
                leaf: challenge_leaf(&[9; 32], &e.object, index, e.shard_len),
            })
            .collect();
        let (proofs, fails) = prove(&store, &chs);
        assert_eq!(proofs.len(), 2);
        assert_eq!(fails.len(), 1);
        assert_eq!(fails[0].challenge.index, 2);
        for (p, ch) in proofs.iter().zip(&chs) {
            let path: Vec<[u8; 32]> = p
                .path
                .iter()
                .map(|h| h.as_slice().try_into().unwrap())
                .collect();
            assert!(verify_leaf(
                &e.roots[ch.index as usize],
                e.shard_len,
                ch.leaf,
                &p.leaf,
                &path
            ));
        }
        // A wrong recorded length is a failure, not a proof.
        let mut bad = chs[0];
        bad.shard_len += 1;
        assert_eq!(prove(&store, &[bad]).1.len(), 1);
        let kept = collect_garbage(&store, |_| true).unwrap();
        assert_eq!(kept, GcReport::default());
        let gone = collect_garbage(&store, |o| *o != e.object).unwrap();
        assert_eq!(gone.shards, 2);
        assert_eq!(gone.bytes_freed, 2 * e.shard_len);
        assert!(store.list_shards(None).unwrap().is_empty());
    }
}
