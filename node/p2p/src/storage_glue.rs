//! Wiring to `magnet-storage`: its [`ShardStore`] serves as this node's [`ShardBackend`], and
//! [`P2pTransport`] implements its [`Transport`] over signed gRPC + key-bound TLS, so the
//! storage layer's put/get/repair/audit run across real nodes.
//!
//! Holders are named by nodeId ([`HolderId`] strings); the transport dials each one expecting
//! that nodeId at the TLS handshake and keeps one connection per holder, dropping it on error
//! so a restarted holder is re-dialled.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use magnet_proto::p2p::v1::AuditChallenge;
use magnet_storage::audit::Challenge;
use magnet_storage::{
    ContentAddress, Hash32, HolderId, ShardId, ShardStore, StoreError, StoredShard, Transport,
    TransportError,
};

use crate::auth::{Signer, Verifier};
use crate::backend::{BackendError, ShardBackend, ShardInfo, ShardKey};
use crate::client::PeerClient;
use crate::error::P2pError;
use crate::identity::NodeId;
use crate::tls::{Expect, NodeTls};

/// A [`ShardStore`] with a byte quota, as a [`ShardBackend`].
#[derive(Debug, Clone)]
pub struct StoreBackend {
    store: ShardStore,
    quota: u64,
}

impl StoreBackend {
    /// Serves `store`, accepting at most `quota` bytes of shards.
    pub fn new(store: ShardStore, quota: u64) -> Self {
        StoreBackend { store, quota }
    }
}

fn shard_id(key: &ShardKey) -> Result<ShardId, BackendError> {
    Ok(ShardId {
        object: ContentAddress(Hash32(key.object_id)),
        index: u8::try_from(key.index)
            .map_err(|_| BackendError::InvalidKey(format!("shard index {} over 255", key.index)))?,
    })
}

fn store_err(e: StoreError) -> BackendError {
    BackendError::Other(e.to_string())
}

impl ShardBackend for StoreBackend {
    fn put_shard(&self, key: &ShardKey, data: &[u8]) -> Result<(), BackendError> {
        let id = shard_id(key)?;
        let used = self.store.used_bytes().map_err(store_err)?;
        let free = self.quota.saturating_sub(used);
        if data.len() as u64 > free {
            return Err(BackendError::Full {
                need: data.len() as u64,
                free,
            });
        }
        self.store
            .put(id, data, &Hash32::of(data))
            .map(|_| ())
            .map_err(store_err)
    }

    fn get_shard(&self, key: &ShardKey) -> Result<Option<Vec<u8>>, BackendError> {
        match self.store.get(&shard_id(key)?) {
            Ok(b) => Ok(Some(b)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e @ StoreError::Corrupt { .. }) => Err(BackendError::Corrupt(e.to_string())),
            Err(e) => Err(store_err(e)),
        }
    }

    fn list_shards(&self, object: Option<&[u8; 32]>) -> Result<Vec<ShardInfo>, BackendError> {
        Ok(self
            .store
            .list()
            .map_err(store_err)?
            .into_iter()
            .filter(|s| object.is_none_or(|o| s.id.object.0 .0 == *o))
            .map(|s| ShardInfo {
                key: ShardKey {
                    object_id: s.id.object.0 .0,
                    index: u32::from(s.id.index),
                },
                size: s.len,
                hash: s.hash.0,
            })
            .collect())
    }

    fn delete_shard(&self, key: &ShardKey) -> Result<bool, BackendError> {
        self.store.delete(&shard_id(key)?).map_err(store_err)
    }

    fn free_bytes(&self) -> Result<u64, BackendError> {
        Ok(self
            .quota
            .saturating_sub(self.store.used_bytes().map_err(store_err)?))
    }

    fn audit_answer(&self, ch: &AuditChallenge) -> Result<Option<[u8; 32]>, BackendError> {
        let key = ShardKey::from_proto(ch.key.as_ref())?;
        let id = shard_id(&key)?;
        let nonce = <[u8; 32]>::try_from(ch.challenge_nonce.as_slice())
            .map_err(|_| BackendError::InvalidKey("storage audits use 32-byte nonces".into()))?;
        let len = u32::try_from(ch.length)
            .map_err(|_| BackendError::InvalidKey("audit length over u32".into()))?;
        let c = Challenge {
            object: id.object,
            index: id.index,
            offset: ch.offset,
            len,
            nonce: Hash32(nonce),
        };
        match self.store.audit_answer(&c) {
            Ok(h) => Ok(Some(h.0)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(StoreError::BadRange { .. }) => Err(BackendError::InvalidKey(
                "audit range outside the shard".into(),
            )),
            Err(e) => Err(store_err(e)),
        }
    }
}

/// The storage layer's [`Transport`] over signed gRPC + key-bound TLS. Holder ids are nodeIds.
pub struct P2pTransport {
    tls: NodeTls,
    signer: Signer,
    verifier: Arc<Verifier>,
    addrs: Mutex<BTreeMap<HolderId, String>>,
    conns: tokio::sync::Mutex<BTreeMap<HolderId, PeerClient>>,
}

impl std::fmt::Debug for P2pTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "P2pTransport({:?})", self.signer)
    }
}

fn unreachable(holder: &HolderId, e: impl std::fmt::Display) -> TransportError {
    TransportError::Unreachable {
        holder: holder.clone(),
        reason: e.to_string(),
    }
}

impl P2pTransport {
    /// A transport signing as `signer` and verifying holders' signed replies with `verifier`.
    pub fn new(tls: NodeTls, signer: Signer, verifier: Arc<Verifier>) -> Self {
        P2pTransport {
            tls,
            signer,
            verifier,
            addrs: Mutex::new(BTreeMap::new()),
            conns: tokio::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Records where `node` listens; its holder id is its nodeId.
    pub fn add_holder(&self, node: &NodeId, addr: &str) -> Result<HolderId, P2pError> {
        let h = HolderId::new(node.as_str()).map_err(|e| P2pError::Protocol(e.to_string()))?;
        if let Ok(mut a) = self.addrs.lock() {
            a.insert(h.clone(), addr.to_owned());
        }
        Ok(h)
    }

    async fn client(&self, holder: &HolderId) -> Result<PeerClient, TransportError> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(holder) {
            return Ok(c.clone());
        }
        let addr = self
            .addrs
            .lock()
            .ok()
            .and_then(|a| a.get(holder).cloned())
            .ok_or_else(|| unreachable(holder, "no known address"))?;
        let node = NodeId::parse(holder.as_str()).map_err(|e| unreachable(holder, e))?;
        let c = PeerClient::connect(
            &addr,
            Expect::NodeId(node),
            &self.tls,
            self.signer.clone(),
            self.verifier.clone(),
        )
        .await
        .map_err(|e| unreachable(holder, e))?;
        conns.insert(holder.clone(), c.clone());
        Ok(c)
    }

    async fn fail(&self, holder: &HolderId, id: Option<ShardId>, e: P2pError) -> TransportError {
        let code = match &e {
            P2pError::Rpc(s) => Some(s.code()),
            _ => None,
        };
        let corrupt = code == Some(tonic::Code::DataLoss) || matches!(e, P2pError::Integrity(_));
        let down = matches!(
            code,
            Some(tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled)
        ) || matches!(
            e,
            P2pError::Transport { .. } | P2pError::Tls(_) | P2pError::Io(_)
        );
        match id {
            Some(id) if code == Some(tonic::Code::NotFound) => TransportError::NotFound {
                holder: holder.clone(),
                id,
            },
            Some(id) if corrupt => TransportError::Corrupt {
                holder: holder.clone(),
                id,
            },
            _ if down => {
                self.conns.lock().await.remove(holder);
                unreachable(holder, e)
            }
            _ => TransportError::Refused {
                holder: holder.clone(),
                reason: e.to_string(),
            },
        }
    }
}

fn key_of(id: &ShardId) -> ShardKey {
    ShardKey {
        object_id: id.object.0 .0,
        index: u32::from(id.index),
    }
}

impl Transport for P2pTransport {
    async fn put_shard(
        &self,
        holder: &HolderId,
        id: ShardId,
        bytes: Vec<u8>,
        hash: Hash32,
    ) -> Result<(), TransportError> {
        if Hash32::of(&bytes) != hash {
            return Err(TransportError::Refused {
                holder: holder.clone(),
                reason: format!("refusing to send shard {id}: bytes do not match its hash"),
            });
        }
        let mut c = self.client(holder).await?;
        match c.put_shard(&key_of(&id), &bytes).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.fail(holder, Some(id), e).await),
        }
    }

    async fn get_shard(&self, holder: &HolderId, id: ShardId) -> Result<Vec<u8>, TransportError> {
        let mut c = self.client(holder).await?;
        match c.get_shard(&key_of(&id), None).await {
            Ok(b) => Ok(b),
            Err(e) => Err(self.fail(holder, Some(id), e).await),
        }
    }

    async fn list_shards(&self, holder: &HolderId) -> Result<Vec<StoredShard>, TransportError> {
        let mut c = self.client(holder).await?;
        let list = match c.list_shards(None).await {
            Ok(l) => l,
            Err(e) => return Err(self.fail(holder, None, e).await),
        };
        list.into_iter()
            .map(|s| {
                Ok(StoredShard {
                    id: ShardId {
                        object: ContentAddress(Hash32(s.key.object_id)),
                        index: u8::try_from(s.key.index).map_err(|_| TransportError::Refused {
                            holder: holder.clone(),
                            reason: "listed shard index over 255".into(),
                        })?,
                    },
                    hash: Hash32(s.hash),
                    len: s.size,
                })
            })
            .collect()
    }

    async fn delete_shard(&self, holder: &HolderId, id: ShardId) -> Result<bool, TransportError> {
        let mut c = self.client(holder).await?;
        match c.delete_shard(&key_of(&id)).await {
            Ok(b) => Ok(b),
            Err(e) => Err(self.fail(holder, Some(id), e).await),
        }
    }

    async fn audit(&self, holder: &HolderId, ch: Challenge) -> Result<Hash32, TransportError> {
        let id = ShardId {
            object: ch.object,
            index: ch.index,
        };
        let req = AuditChallenge {
            key: Some(key_of(&id).to_proto()),
            offset: ch.offset,
            length: u64::from(ch.len),
            challenge_nonce: ch.nonce.0.to_vec(),
        };
        let mut c = self.client(holder).await?;
        match c.audit(req).await {
            Ok(p) if p.held => <[u8; 32]>::try_from(p.proof_hash.as_slice())
                .map(Hash32)
                .map_err(|_| TransportError::Refused {
                    holder: holder.clone(),
                    reason: "audit proof is not 32 bytes".into(),
                }),
            Ok(_) => Err(TransportError::NotFound {
                holder: holder.clone(),
                id,
            }),
            Err(e) => Err(self.fail(holder, Some(id), e).await),
        }
    }
}
