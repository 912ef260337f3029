//! How this crate talks to shard holders: the [`Transport`] trait, and [`LocalTransport`], an
//! in-process implementation over real [`ShardStore`] directories.
//!
//! The p2p layer (`magnet-p2p`) implements [`Transport`] over its signed gRPC+TLS shard service;
//! its server side answers each call from a [`ShardStore`]. Everything above this trait (object
//! put/get, the repair executor, audits) is the same for both.
//!
//! `LocalTransport` serves single-node use (the `magnet-worker storage` CLI keeps every shard of
//! an object in this node's store) and in-process multi-holder tests; [`LocalTransport::set_online`]
//! makes a holder refuse calls as a crashed node would.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use crate::audit::Challenge;
use crate::hash::Hash32;
use crate::manifest::HolderId;
use crate::store::{ShardId, ShardStore, StoreError, StoredShard};

/// Failures talking to a holder.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// The holder could not be reached.
    #[error("holder {holder} unreachable: {reason}")]
    Unreachable {
        /// Who.
        holder: HolderId,
        /// Why.
        reason: String,
    },
    /// The holder does not have the shard.
    #[error("holder {holder} does not have shard {id}")]
    NotFound {
        /// Who.
        holder: HolderId,
        /// Which shard.
        id: ShardId,
    },
    /// The holder's copy failed its own hash check (bitrot or tampering).
    #[error("holder {holder} has a corrupt copy of shard {id}")]
    Corrupt {
        /// Who.
        holder: HolderId,
        /// Which shard.
        id: ShardId,
    },
    /// The holder refused or failed the request.
    #[error("holder {holder} refused: {reason}")]
    Refused {
        /// Who.
        holder: HolderId,
        /// Why.
        reason: String,
    },
}

impl TransportError {
    fn from_store(holder: &HolderId, e: StoreError) -> Self {
        match e {
            StoreError::NotFound(id) => TransportError::NotFound {
                holder: holder.clone(),
                id,
            },
            StoreError::Corrupt { id, .. } => TransportError::Corrupt {
                holder: holder.clone(),
                id,
            },
            other => TransportError::Refused {
                holder: holder.clone(),
                reason: other.to_string(),
            },
        }
    }
}

/// Shard operations on remote (or local) holders.
pub trait Transport: Send + Sync {
    /// Stores a shard on `holder`; the holder checks `hash` before accepting.
    fn put_shard(
        &self,
        holder: &HolderId,
        id: ShardId,
        bytes: Vec<u8>,
        hash: Hash32,
    ) -> impl Future<Output = Result<(), TransportError>> + Send;
    /// Fetches a shard (the caller re-checks the hash against its manifest).
    fn get_shard(
        &self,
        holder: &HolderId,
        id: ShardId,
    ) -> impl Future<Output = Result<Vec<u8>, TransportError>> + Send;
    /// Lists the shards a holder has.
    fn list_shards(
        &self,
        holder: &HolderId,
    ) -> impl Future<Output = Result<Vec<StoredShard>, TransportError>> + Send;
    /// Deletes a shard; `Ok(false)` if it was not there.
    fn delete_shard(
        &self,
        holder: &HolderId,
        id: ShardId,
    ) -> impl Future<Output = Result<bool, TransportError>> + Send;
    /// Asks a holder to answer an audit challenge.
    fn audit(
        &self,
        holder: &HolderId,
        challenge: Challenge,
    ) -> impl Future<Output = Result<Hash32, TransportError>> + Send;
}

#[derive(Debug, Default)]
struct Inner {
    stores: BTreeMap<HolderId, ShardStore>,
    offline: BTreeSet<HolderId>,
}

/// In-process holders, each a real [`ShardStore`] directory.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    inner: Arc<Mutex<Inner>>,
}

impl LocalTransport {
    /// No holders yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a holder backed by `store`.
    pub fn add(&self, holder: HolderId, store: ShardStore) {
        if let Ok(mut g) = self.inner.lock() {
            g.stores.insert(holder, store);
        }
    }

    /// Takes a holder offline (calls fail as `Unreachable`) or back online.
    pub fn set_online(&self, holder: &HolderId, online: bool) {
        if let Ok(mut g) = self.inner.lock() {
            if online {
                g.offline.remove(holder);
            } else {
                g.offline.insert(holder.clone());
            }
        }
    }

    /// The store behind a holder (for tests and the CLI).
    pub fn store(&self, holder: &HolderId) -> Option<ShardStore> {
        self.inner.lock().ok()?.stores.get(holder).cloned()
    }

    fn with<T>(
        &self,
        holder: &HolderId,
        f: impl FnOnce(&ShardStore) -> Result<T, StoreError>,
    ) -> Result<T, TransportError> {
        let store = {
            let g = self.inner.lock().map_err(|_| TransportError::Unreachable {
                holder: holder.clone(),
                reason: "transport lock poisoned".into(),
            })?;
            if g.offline.contains(holder) {
                return Err(TransportError::Unreachable {
                    holder: holder.clone(),
                    reason: "holder is offline".into(),
                });
            }
            g.stores
                .get(holder)
                .cloned()
                .ok_or_else(|| TransportError::Unreachable {
                    holder: holder.clone(),
                    reason: "unknown holder".into(),
                })?
        };
        f(&store).map_err(|e| TransportError::from_store(holder, e))
    }
}

impl Transport for LocalTransport {
    async fn put_shard(
        &self,
        holder: &HolderId,
        id: ShardId,
        bytes: Vec<u8>,
        hash: Hash32,
    ) -> Result<(), TransportError> {
        self.with(holder, |s| s.put(id, &bytes, &hash).map(|_| ()))
    }

    async fn get_shard(&self, holder: &HolderId, id: ShardId) -> Result<Vec<u8>, TransportError> {
        self.with(holder, |s| s.get(&id))
    }

    async fn list_shards(&self, holder: &HolderId) -> Result<Vec<StoredShard>, TransportError> {
        self.with(holder, ShardStore::list)
    }

    async fn delete_shard(&self, holder: &HolderId, id: ShardId) -> Result<bool, TransportError> {
        self.with(holder, |s| s.delete(&id))
    }

    async fn audit(
        &self,
        holder: &HolderId,
        challenge: Challenge,
    ) -> Result<Hash32, TransportError> {
        self.with(holder, |s| s.audit_answer(&challenge))
    }
}
