//! Whole-object operations over a [`Transport`]: put (encode, place, upload, sign), get (fetch,
//! verify, exclude corrupt, rebuild), repair execution and audits.
//!
//! # Guarantees
//! * [`get_object`] returns bytes only if they hash to the content address; every fetched shard
//!   is checked against the signed manifest before use, and a bad or unreachable one is skipped
//!   while K good ones can still be found.
//! * [`execute_repair`] stores a rebuilt shard only if it hashes to the manifest's value, and
//!   reports the hash of the bytes *read back* from the target, so the daemon counts a repair
//!   only once the copy is verified where it lives.
//!
//! # Non-guarantees
//! Over a [`Transport`], whole shards are buffered: `put_object` holds the K+M encoded shards
//! before uploading and `get_object` holds K fetched shards (a chunked-stream transport API is
//! future work). [`get_object_from_stores`] streams stripe by stripe from local shard files.

use std::io::{BufReader, Read, Write};

use crate::audit::{judge, Challenge, Evidence, Failure};
use crate::codec::{self, Codec, CodecError, Params};
use crate::daemon::{Event, RepairOrder};
use crate::hash::{ContentAddress, Hash32};
use crate::manifest::{HolderId, Manifest, ManifestError, SignedManifest, Signer};
use crate::store::{ShardId, ShardStore, StoreError};
use crate::transport::{Transport, TransportError};

/// Failures of object operations.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// Encoding or decoding failed (including too few good shards).
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Manifest invalid or signature bad.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A holder could not store a shard.
    #[error("uploading shard {index}: {source}")]
    Upload {
        /// Shard index.
        index: u8,
        /// Transport error.
        source: TransportError,
    },
    /// The placement does not list one holder list per shard.
    #[error("placement has {got} holder lists, need {need}")]
    Placement {
        /// K + M.
        need: usize,
        /// Given.
        got: usize,
    },
}

/// How to store an object.
#[derive(Debug, Clone)]
pub struct PutOptions {
    /// Erasure setting.
    pub params: Params,
    /// Stripe size (1–4 MiB, multiple of K).
    pub stripe_size: u32,
    /// Wanted replicas per shard.
    pub replica_target: u8,
}

impl Default for PutOptions {
    fn default() -> Self {
        let params = Params::DEFAULT;
        PutOptions {
            params,
            stripe_size: params.default_stripe(),
            replica_target: 1,
        }
    }
}

/// Encodes `input` into K+M shards, uploads shard `i` to every holder in `placement[i]`, and
/// returns the signed manifest. `progress` receives bytes encoded so far.
pub async fn put_object<T: Transport, R: Read>(
    transport: &T,
    signer: &impl Signer,
    opts: &PutOptions,
    input: R,
    placement: Vec<Vec<HolderId>>,
    progress: impl FnMut(u64),
) -> Result<SignedManifest, ObjectError> {
    let codec = Codec::new(opts.params)?;
    let total = opts.params.total();
    if placement.len() != total {
        return Err(ObjectError::Placement {
            need: total,
            got: placement.len(),
        });
    }
    let mut shards = vec![Vec::new(); total];
    let enc = codec::encode_stream(&codec, opts.stripe_size, input, &mut shards, progress)?;
    let object = ContentAddress(enc.object_hash);
    for (i, (bytes, holders)) in shards.into_iter().zip(&placement).enumerate() {
        for h in holders {
            let id = ShardId {
                object,
                index: i as u8,
            };
            transport
                .put_shard(h, id, bytes.clone(), enc.shard_hashes[i])
                .await
                .map_err(|source| ObjectError::Upload {
                    index: i as u8,
                    source,
                })?;
        }
    }
    let manifest = Manifest {
        object,
        size: enc.layout.object_size,
        k: opts.params.k,
        m: opts.params.m,
        stripe_size: opts.stripe_size,
        shard_hashes: enc.shard_hashes,
        holders: placement,
        replica_target: opts.replica_target,
        revision: 0,
    };
    Ok(manifest.sign(signer)?)
}

/// What [`get_object`] saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetReport {
    /// Shard indices fetched and verified.
    pub used: Vec<u8>,
    /// (index, holder) pairs that returned bytes with the wrong hash.
    pub corrupt: Vec<(u8, HolderId)>,
    /// (index, holder, error) for holders that failed to answer.
    pub unreachable: Vec<(u8, HolderId, String)>,
}

/// Fetches K verified shards (trying every listed holder of every shard, data shards first) and
/// rebuilds the object.
pub async fn get_object<T: Transport>(
    transport: &T,
    manifest: &SignedManifest,
) -> Result<(Vec<u8>, GetReport), ObjectError> {
    let m = manifest.verify()?;
    let layout = m.layout()?;
    let codec = Codec::new(layout.params)?;
    let k = usize::from(m.k);
    let mut report = GetReport::default();
    let mut shards: Vec<Option<Vec<u8>>> = vec![None; m.holders.len()];
    let mut have = 0;
    for (i, reps) in m.holders.iter().enumerate() {
        if have == k {
            break;
        }
        for h in reps {
            let id = ShardId {
                object: m.object,
                index: i as u8,
            };
            match transport.get_shard(h, id).await {
                Ok(b)
                    if b.len() as u64 == layout.shard_len()
                        && Hash32::of(&b) == m.shard_hashes[i] =>
                {
                    shards[i] = Some(b);
                    report.used.push(i as u8);
                    have += 1;
                    break;
                }
                Ok(_) | Err(TransportError::Corrupt { .. }) => {
                    report.corrupt.push((i as u8, h.clone()))
                }
                Err(e) => report.unreachable.push((i as u8, h.clone(), e.to_string())),
            }
        }
    }
    let refs: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
    let (bytes, _) = codec::decode(&codec, &layout, &refs, &m.shard_hashes, &m.object.0).map_err(
        |e| match e {
            CodecError::TooFewShards {
                usable,
                needed,
                missing,
                ..
            } => {
                let corrupt: Vec<u8> = report.corrupt.iter().map(|(i, _)| *i).collect();
                CodecError::TooFewShards {
                    usable,
                    needed,
                    missing: missing
                        .into_iter()
                        .filter(|i| !corrupt.contains(i))
                        .collect(),
                    corrupt,
                }
            }
            other => other,
        },
    )?;
    Ok((bytes, report))
}

/// Streams an object out of local shard stores (`stores[i]` holds shard `i`, `None` if there is
/// no such store) into `out`, stripe by stripe, without holding whole shards in memory. Each
/// shard is hash-checked (one streaming pass) before it is used; corrupt or missing ones are
/// skipped while K good ones remain. The written bytes are checked against the content address;
/// on [`CodecError::ObjectMismatch`] the caller must discard what was written.
pub fn get_object_from_stores<W: Write>(
    manifest: &SignedManifest,
    stores: &[Option<ShardStore>],
    out: W,
    progress: impl FnMut(u64),
) -> Result<GetReport, ObjectError> {
    let m = manifest.verify()?;
    let layout = m.layout()?;
    let codec = Codec::new(layout.params)?;
    let k = usize::from(m.k);
    let mut report = GetReport::default();
    let mut readers: Vec<Option<BufReader<std::fs::File>>> =
        (0..m.holders.len()).map(|_| None).collect();
    let mut have = 0;
    for (i, slot) in readers.iter_mut().enumerate() {
        if have == k {
            break;
        }
        let holder = m.holders[i].first().cloned();
        let Some(store) = stores.get(i).and_then(Option::as_ref) else {
            continue;
        };
        let id = ShardId {
            object: m.object,
            index: i as u8,
        };
        match store.open_verified(&id) {
            Ok((f, st)) if st.hash == m.shard_hashes[i] && st.len == layout.shard_len() => {
                *slot = Some(BufReader::with_capacity(1 << 20, f));
                report.used.push(i as u8);
                have += 1;
            }
            Ok(_) | Err(StoreError::Corrupt { .. }) => {
                if let Some(h) = holder {
                    report.corrupt.push((i as u8, h));
                }
            }
            Err(e) => {
                if let Some(h) = holder {
                    report.unreachable.push((i as u8, h, e.to_string()));
                }
            }
        }
    }
    if have < k {
        let corrupt: Vec<u8> = report.corrupt.iter().map(|(i, _)| *i).collect();
        return Err(CodecError::TooFewShards {
            usable: have,
            needed: k,
            missing: (0..m.holders.len() as u8)
                .filter(|i| !report.used.contains(i) && !corrupt.contains(i))
                .collect(),
            corrupt,
        }
        .into());
    }
    let got = codec::decode_stream(&codec, &layout, &mut readers, out, progress)?;
    if got != m.object.0 {
        return Err(CodecError::ObjectMismatch {
            expected: m.object.0,
            got,
        }
        .into());
    }
    Ok(report)
}

/// Performs one repair ordered by the daemon and returns the event to feed back.
pub async fn execute_repair<T: Transport>(transport: &T, order: &RepairOrder) -> Event {
    let m = &order.manifest;
    let object = m.object;
    let failed = |reason: String| Event::RepairFailed {
        object,
        index: order.index,
        target: order.target.clone(),
        reason,
    };
    let Ok(layout) = m.layout() else {
        return failed("manifest geometry is invalid".into());
    };
    let Ok(codec) = Codec::new(layout.params) else {
        return failed("unsupported erasure setting".into());
    };
    let idx = usize::from(order.index);
    let Some(expected) = m.shard_hashes.get(idx).copied() else {
        return failed("shard index out of range".into());
    };
    let mut shards: Vec<Option<Vec<u8>>> = vec![None; m.holders.len()];
    let mut have = 0;
    let mut copy = None;
    for (i, h) in &order.sources {
        let i = usize::from(*i);
        if have == usize::from(m.k) || i >= shards.len() {
            break;
        }
        let id = ShardId {
            object,
            index: i as u8,
        };
        if let Ok(b) = transport.get_shard(h, id).await {
            if b.len() as u64 == layout.shard_len() && Hash32::of(&b) == m.shard_hashes[i] {
                if i == idx {
                    copy = Some(b);
                    break;
                }
                shards[i] = Some(b);
                have += 1;
            }
        }
    }
    let bytes = match copy {
        Some(b) => b,
        None => {
            let mut readers: Vec<Option<&[u8]>> = shards.iter().map(|s| s.as_deref()).collect();
            match codec::rebuild_shard(&codec, &layout, &mut readers, order.index) {
                Ok(b) => b,
                Err(e) => return failed(format!("rebuild: {e}")),
            }
        }
    };
    if Hash32::of(&bytes) != expected {
        return failed("rebuilt shard does not match the manifest hash".into());
    }
    let id = ShardId {
        object,
        index: order.index,
    };
    if let Err(e) = transport
        .put_shard(&order.target, id, bytes, expected)
        .await
    {
        return failed(format!("upload: {e}"));
    }
    match transport.get_shard(&order.target, id).await {
        Ok(back) => Event::RepairDone {
            object,
            index: order.index,
            target: order.target.clone(),
            hash: Hash32::of(&back),
        },
        Err(e) => failed(format!("read-back: {e}")),
    }
}

/// Audits `holder` for one shard with `challenge`, whose correct answer is `expected`.
/// Returns signed evidence if the holder failed.
pub async fn audit_holder<T: Transport>(
    transport: &T,
    auditor: &impl Signer,
    holder: &HolderId,
    challenge: &Challenge,
    expected: &Hash32,
    now_ms: u64,
) -> Result<Option<Evidence>, ManifestError> {
    let response = match transport.audit(holder, challenge.clone()).await {
        Ok(h) => Ok(h),
        Err(TransportError::NotFound { .. }) => Err(Failure::Missing {
            reason: "holder does not have the shard".into(),
        }),
        Err(TransportError::Refused { reason, .. }) => Err(Failure::Missing { reason }),
        Err(e @ TransportError::Corrupt { .. }) => Err(Failure::Missing {
            reason: e.to_string(),
        }),
        Err(TransportError::Unreachable { reason, .. }) => Err(Failure::NoAnswer { reason }),
    };
    judge(holder, challenge, expected, response, now_ms, auditor)
}
