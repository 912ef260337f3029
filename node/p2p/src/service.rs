//! The gRPC services a node serves: peer exchange, heartbeat, shard put/get/list/delete, audit.
//!
//! Every handler first opens its [`Signed`] envelope with [`crate::auth::open`] — signature or
//! HMAC, nodeId binding, TLS-identity binding, freshness and replay are all checked on the raw
//! body bytes — and only then decodes and acts on the body. Shard uploads are checked chunk by
//! chunk against their signed manifest before anything reaches the [`ShardBackend`]; shard
//! downloads and audit proofs are signed by this node so the caller can verify their origin.

use std::collections::{BTreeMap, BTreeSet};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use magnet_proto::p2p::v1::{
    get_shard_frame, peer_service_server::PeerService, put_shard_frame,
    shard_service_server::ShardService, AuditChallenge, AuditProof, DeleteShardRequest,
    DeleteShardResponse, DilocoAck, DilocoMessage, ExchangeRequest, ExchangeResponse,
    GetShardFrame, GetShardRequest, HeartbeatRequest, HeartbeatResponse, ListShardsRequest,
    ListShardsResponse, NodeStatus, PeerInfo, PutShardFrame, PutShardResponse, ResearchMessage,
    ShardEntry, ShardManifest, Signed,
};
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{open, AuthError, Clock, Signer, SystemClock, Verifier};
use crate::backend::{BackendError, ShardBackend, ShardKey};
use crate::identity::{NodeId, PublicKey};
use crate::stream::{build_manifest, ChunkChecker, DEFAULT_CHUNK_BYTES};
use crate::tls::ConnInfo;

/// Full gRPC method paths (what requests are signed for).
pub mod methods {
    /// PeerService/Exchange.
    pub const EXCHANGE: &str = "/magnet.p2p.v1.PeerService/Exchange";
    /// PeerService/Heartbeat.
    pub const HEARTBEAT: &str = "/magnet.p2p.v1.PeerService/Heartbeat";
    /// PeerService/Diloco.
    pub const DILOCO: &str = "/magnet.p2p.v1.PeerService/Diloco";
    /// PeerService/Research.
    pub const RESEARCH: &str = "/magnet.p2p.v1.PeerService/Research";
    /// The worker's signed ResearchMessage answering Research.
    pub const RESEARCH_REPLY: &str = "/magnet.p2p.v1.PeerService/Research#reply";
    /// ShardService/PutShard (signs the manifest).
    pub const PUT_SHARD: &str = "/magnet.p2p.v1.ShardService/PutShard";
    /// ShardService/GetShard.
    pub const GET_SHARD: &str = "/magnet.p2p.v1.ShardService/GetShard";
    /// The holder's signed manifest answering GetShard.
    pub const GET_SHARD_MANIFEST: &str = "/magnet.p2p.v1.ShardService/GetShard#manifest";
    /// ShardService/ListShards.
    pub const LIST_SHARDS: &str = "/magnet.p2p.v1.ShardService/ListShards";
    /// ShardService/DeleteShard.
    pub const DELETE_SHARD: &str = "/magnet.p2p.v1.ShardService/DeleteShard";
    /// ShardService/Audit.
    pub const AUDIT: &str = "/magnet.p2p.v1.ShardService/Audit";
    /// The holder's signed AuditProof.
    pub const AUDIT_PROOF: &str = "/magnet.p2p.v1.ShardService/Audit#proof";
}

/// Largest range an audit may ask to hash.
pub const MAX_AUDIT_RANGE: u64 = 4 << 20;
/// Largest DiLoCo round message (the JSON of one record) accepted.
pub const MAX_DILOCO_MESSAGE_BYTES: usize = 1 << 20;
/// Largest research message (JSON plus blob) accepted in a request.
pub const MAX_RESEARCH_REQUEST_BYTES: usize = 1 << 20;
/// Most peers returned by one exchange.
pub const MAX_EXCHANGE_PEERS: usize = 256;

/// What this node knows about a peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerRecord {
    /// Its announced info.
    pub info: PeerInfo,
    /// Its last reported status.
    pub status: Option<NodeStatus>,
    /// When it last proved itself to us (Unix seconds; 0 = only heard of via exchange).
    pub last_seen: u64,
}

/// Service-wide settings.
#[derive(Clone)]
pub struct ServiceConfig {
    /// How this node signs responses.
    pub signer: Signer,
    /// How this node verifies requests.
    pub verifier: Arc<Verifier>,
    /// The shard store.
    pub backend: Arc<dyn ShardBackend>,
    /// Participation tier reported in heartbeats.
    pub tier: String,
    /// Region label.
    pub region: String,
    /// Largest shard accepted.
    pub max_shard_bytes: u64,
    /// Nodes allowed to delete shards (`None`: any authenticated node).
    pub deleters: Option<BTreeSet<NodeId>>,
    /// Custody receipts signed on every stored shard (`None`: uploads get no receipt).
    pub receipts: Option<crate::receipt::ReceiptConfig>,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("signer", &self.signer)
            .field("tier", &self.tier)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// State shared by both services and the node handle.
pub struct Shared {
    pub(crate) cfg: ServiceConfig,
    pub(crate) self_info: Mutex<PeerInfo>,
    pub(crate) peers: Mutex<BTreeMap<NodeId, PeerRecord>>,
    pub(crate) load_permille: AtomicU32,
    pub(crate) diloco_inbox: Mutex<Option<DilocoInbox>>,
    pub(crate) research_inbox: Mutex<Option<ResearchInbox>>,
    clock: SystemClock,
}

/// Where verified DiLoCo messages go: `(sender, message)`.
pub type DilocoInbox = tokio::sync::mpsc::Sender<(NodeId, DilocoMessage)>;

/// Where research work units go: the sender, the unit, and where to send the answer (which
/// the service signs with this node's key before replying).
pub type ResearchInbox = tokio::sync::mpsc::Sender<(
    NodeId,
    ResearchMessage,
    tokio::sync::oneshot::Sender<ResearchMessage>,
)>;

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared({:?})", self.cfg)
    }
}

impl Shared {
    pub(crate) fn new(cfg: ServiceConfig, self_info: PeerInfo) -> Self {
        Shared {
            cfg,
            self_info: Mutex::new(self_info),
            peers: Mutex::new(BTreeMap::new()),
            load_permille: AtomicU32::new(0),
            diloco_inbox: Mutex::new(None),
            research_inbox: Mutex::new(None),
            clock: SystemClock,
        }
    }

    /// This node's status as reported in heartbeats.
    pub fn status(&self) -> Result<NodeStatus, BackendError> {
        Ok(NodeStatus {
            tier: self.cfg.tier.clone(),
            load_permille: self.load_permille.load(Ordering::Relaxed),
            free_storage_bytes: self.cfg.backend.free_bytes()?,
            shard_count: self.cfg.backend.list_shards(None)?.len() as u64,
        })
    }

    /// Known peers.
    pub fn peers(&self) -> Vec<PeerRecord> {
        self.peers
            .lock()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default()
    }

    fn upsert_seen(&self, info: PeerInfo, status: Option<NodeStatus>) {
        let Ok(id) = NodeId::parse(&info.node_id) else {
            return;
        };
        let now = self.clock.now_unix();
        if let Ok(mut p) = self.peers.lock() {
            let e = p.entry(id).or_insert_with(|| PeerRecord {
                info: info.clone(),
                status: None,
                last_seen: 0,
            });
            if !info.address.is_empty() {
                e.info = info;
            }
            if status.is_some() {
                e.status = status;
            }
            e.last_seen = now;
        }
    }
}

fn tls_peer<T>(req: &Request<T>) -> Option<NodeId> {
    req.extensions()
        .get::<ConnInfo>()
        .and_then(|c| c.identity.clone())
}

fn backend_status(e: BackendError) -> Status {
    match e {
        BackendError::InvalidKey(m) => Status::invalid_argument(m),
        BackendError::Full { .. } => Status::resource_exhausted(e.to_string()),
        BackendError::Corrupt(m) => Status::data_loss(m),
        other => Status::internal(other.to_string()),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("storage task failed: {e}")))?
        .map_err(backend_status)
}

/// Serves both services from one [`Shared`] state.
#[derive(Debug, Clone)]
pub struct NodeService {
    pub(crate) shared: Arc<Shared>,
}

fn peer_info_ok(p: &PeerInfo) -> bool {
    if NodeId::parse(&p.node_id).is_err() || p.address.len() > 256 || p.region.len() > 64 {
        return false;
    }
    if p.public_key.is_empty() {
        return true;
    }
    PublicKey::from_bytes(&p.public_key).is_ok_and(|k| k.node_id().as_str() == p.node_id)
}

#[tonic::async_trait]
impl PeerService for NodeService {
    async fn exchange(&self, req: Request<Signed>) -> Result<Response<ExchangeResponse>, Status> {
        let tls = tls_peer(&req);
        let (v, body): (_, ExchangeRequest) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::EXCHANGE,
            tls.as_ref(),
        )?;
        if let Some(si) = body.self_info {
            if si.node_id != v.node_id.as_str() || !peer_info_ok(&si) {
                return Err(Status::invalid_argument(format!(
                    "self_info names {:?} but the request is signed by {}",
                    si.node_id, v.node_id
                )));
            }
            if let Some(pk) = v.public_key {
                if si.public_key != pk.to_bytes() {
                    return Err(Status::invalid_argument(
                        "self_info public key differs from the signing key",
                    ));
                }
            }
            self.shared.upsert_seen(si, None);
        }
        if let Ok(mut p) = self.shared.peers.lock() {
            for k in body.known.into_iter().take(MAX_EXCHANGE_PEERS) {
                if let (true, Ok(id)) = (peer_info_ok(&k), NodeId::parse(&k.node_id)) {
                    p.entry(id).or_insert(PeerRecord {
                        info: k,
                        status: None,
                        last_seen: 0,
                    });
                }
            }
        }
        let mut peers: Vec<PeerInfo> = self
            .shared
            .peers()
            .into_iter()
            .map(|r| r.info)
            .take(MAX_EXCHANGE_PEERS - 1)
            .collect();
        if let Ok(me) = self.shared.self_info.lock() {
            peers.push(me.clone());
        }
        Ok(Response::new(ExchangeResponse { peers }))
    }

    async fn heartbeat(&self, req: Request<Signed>) -> Result<Response<HeartbeatResponse>, Status> {
        let tls = tls_peer(&req);
        let remote = req.extensions().get::<ConnInfo>().map(|c| c.remote);
        let (v, body): (_, HeartbeatRequest) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::HEARTBEAT,
            tls.as_ref(),
        )?;
        let info = PeerInfo {
            node_id: v.node_id.to_string(),
            public_key: v
                .public_key
                .map(|k| k.to_bytes().to_vec())
                .unwrap_or_default(),
            address: String::new(),
            region: String::new(),
        };
        tracing::debug!(peer = %v.node_id, ?remote, "heartbeat");
        self.shared.upsert_seen(info, body.status);
        let shared = self.shared.clone();
        let status = blocking(move || shared.status()).await?;
        Ok(Response::new(HeartbeatResponse {
            node_id: self.shared.cfg.signer.node_id().to_string(),
            status: Some(status),
            timestamp: self.shared.clock.now_unix(),
        }))
    }

    async fn diloco(&self, req: Request<Signed>) -> Result<Response<DilocoAck>, Status> {
        let tls = tls_peer(&req);
        let (v, body): (_, DilocoMessage) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::DILOCO,
            tls.as_ref(),
        )?;
        if body.json.len() > MAX_DILOCO_MESSAGE_BYTES {
            return Err(Status::invalid_argument(format!(
                "DiLoCo message of {} bytes exceeds {MAX_DILOCO_MESSAGE_BYTES}",
                body.json.len()
            )));
        }
        let inbox = self
            .shared
            .diloco_inbox
            .lock()
            .map_err(|_| Status::internal("inbox lock poisoned"))?
            .clone();
        let Some(inbox) = inbox else {
            return Ok(Response::new(DilocoAck {
                accepted: false,
                detail: "this node runs no DiLoCo round engine".into(),
            }));
        };
        tracing::debug!(peer = %v.node_id, kind = %body.kind, "diloco message");
        match inbox.try_send((v.node_id, body)) {
            Ok(()) => Ok(Response::new(DilocoAck {
                accepted: true,
                detail: String::new(),
            })),
            Err(e) => Err(Status::resource_exhausted(format!(
                "DiLoCo inbox cannot take the message: {e}"
            ))),
        }
    }

    async fn research(&self, req: Request<Signed>) -> Result<Response<Signed>, Status> {
        let tls = tls_peer(&req);
        let (v, body): (_, ResearchMessage) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::RESEARCH,
            tls.as_ref(),
        )?;
        if body.json.len() + body.blob.len() > MAX_RESEARCH_REQUEST_BYTES {
            return Err(Status::invalid_argument(format!(
                "research message of {} bytes exceeds {MAX_RESEARCH_REQUEST_BYTES}",
                body.json.len() + body.blob.len()
            )));
        }
        let inbox = self
            .shared
            .research_inbox
            .lock()
            .map_err(|_| Status::internal("inbox lock poisoned"))?
            .clone();
        let Some(inbox) = inbox else {
            return Err(Status::unavailable("this node runs no research trials"));
        };
        tracing::debug!(peer = %v.node_id, kind = %body.kind, "research message");
        let (tx, rx) = tokio::sync::oneshot::channel();
        inbox
            .try_send((v.node_id, body, tx))
            .map_err(|e| Status::resource_exhausted(format!("research inbox is full: {e}")))?;
        let answer = rx
            .await
            .map_err(|_| Status::internal("the research worker dropped the unit"))?;
        Ok(Response::new(
            self.shared
                .cfg
                .signer
                .seal(methods::RESEARCH_REPLY, &answer),
        ))
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<GetShardFrame, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl ShardService for NodeService {
    async fn put_shard(
        &self,
        req: Request<Streaming<PutShardFrame>>,
    ) -> Result<Response<PutShardResponse>, Status> {
        let tls = tls_peer(&req);
        let mut frames = req.into_inner();
        let first = frames
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("PutShard stream is empty"))?;
        let Some(put_shard_frame::Frame::Manifest(signed)) = first.frame else {
            return Err(AuthError::Missing.to_status());
        };
        let (v, manifest): (_, ShardManifest) = open(
            &self.shared.cfg.verifier,
            &signed,
            methods::PUT_SHARD,
            tls.as_ref(),
        )?;
        let key = ShardKey::from_proto(manifest.key.as_ref()).map_err(backend_status)?;
        let mut checker = ChunkChecker::new(&manifest, self.shared.cfg.max_shard_bytes)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        while let Some(f) = frames.message().await? {
            match f.frame {
                Some(put_shard_frame::Frame::Chunk(c)) => checker.accept(&c).map_err(|e| {
                    tracing::warn!(peer = %v.node_id, shard = %key, "refused upload: {e}");
                    Status::data_loss(e.to_string())
                })?,
                _ => {
                    return Err(Status::invalid_argument(
                        "second manifest in PutShard stream",
                    ))
                }
            }
        }
        let data = checker
            .finish()
            .map_err(|e| Status::data_loss(e.to_string()))?;
        let size = data.len() as u64;
        let hash = manifest.shard_hash.clone();
        let backend = self.shared.cfg.backend.clone();
        let receipts = self.shared.cfg.receipts.clone();
        let (root, receipt) = blocking(move || {
            backend.put_shard(&key, &data)?;
            Ok(receipts.map(|r| r.sign(&key, &data)))
        })
        .await?
        .map(|(root, sig)| (root.to_vec(), sig.to_vec()))
        .unwrap_or_default();
        tracing::debug!(peer = %v.node_id, shard = %key, size, "stored shard");
        Ok(Response::new(PutShardResponse {
            shard_hash: hash,
            size,
            receipt,
            merkle_root: root,
        }))
    }

    type GetShardStream = FrameStream;

    async fn get_shard(&self, req: Request<Signed>) -> Result<Response<FrameStream>, Status> {
        let tls = tls_peer(&req);
        let (_, body): (_, GetShardRequest) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::GET_SHARD,
            tls.as_ref(),
        )?;
        let key = ShardKey::from_proto(body.key.as_ref()).map_err(backend_status)?;
        let backend = self.shared.cfg.backend.clone();
        let data = blocking(move || backend.get_shard(&key))
            .await?
            .ok_or_else(|| Status::not_found(format!("shard {key} is not held here")))?;
        let cs = if body.chunk_size == 0 {
            DEFAULT_CHUNK_BYTES
        } else {
            body.chunk_size
        };
        let manifest = build_manifest(&key, &data, cs);
        let cs = manifest.chunk_size as usize;
        let signed = self
            .shared
            .cfg
            .signer
            .seal(methods::GET_SHARD_MANIFEST, &manifest);
        let data = bytes::Bytes::from(data);
        let n = data.len().div_ceil(cs);
        let head = std::iter::once(GetShardFrame {
            frame: Some(get_shard_frame::Frame::Manifest(signed)),
        });
        let chunks = (0..n).map(move |i| GetShardFrame {
            frame: Some(get_shard_frame::Frame::Chunk(
                data.slice(i * cs..((i + 1) * cs).min(data.len())).to_vec(),
            )),
        });
        let s = tokio_stream::iter(head.chain(chunks).map(Ok));
        Ok(Response::new(Box::pin(s)))
    }

    async fn list_shards(
        &self,
        req: Request<Signed>,
    ) -> Result<Response<ListShardsResponse>, Status> {
        let tls = tls_peer(&req);
        let (_, body): (_, ListShardsRequest) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::LIST_SHARDS,
            tls.as_ref(),
        )?;
        let object: Option<[u8; 32]> = if body.object_id.is_empty() {
            None
        } else {
            Some(
                body.object_id
                    .as_slice()
                    .try_into()
                    .map_err(|_| Status::invalid_argument("object_id must be empty or 32 bytes"))?,
            )
        };
        let backend = self.shared.cfg.backend.clone();
        let list = blocking(move || backend.list_shards(object.as_ref())).await?;
        Ok(Response::new(ListShardsResponse {
            shards: list
                .into_iter()
                .map(|s| ShardEntry {
                    key: Some(s.key.to_proto()),
                    size: s.size,
                    shard_hash: s.hash.to_vec(),
                })
                .collect(),
        }))
    }

    async fn delete_shard(
        &self,
        req: Request<Signed>,
    ) -> Result<Response<DeleteShardResponse>, Status> {
        let tls = tls_peer(&req);
        let (v, body): (_, DeleteShardRequest) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::DELETE_SHARD,
            tls.as_ref(),
        )?;
        if let Some(allowed) = &self.shared.cfg.deleters {
            if !allowed.contains(&v.node_id) {
                return Err(Status::permission_denied(format!(
                    "{} may not delete shards on this node",
                    v.node_id
                )));
            }
        }
        let key = ShardKey::from_proto(body.key.as_ref()).map_err(backend_status)?;
        let backend = self.shared.cfg.backend.clone();
        let existed = blocking(move || backend.delete_shard(&key)).await?;
        Ok(Response::new(DeleteShardResponse { existed }))
    }

    async fn audit(&self, req: Request<Signed>) -> Result<Response<Signed>, Status> {
        let tls = tls_peer(&req);
        let (_, ch): (_, AuditChallenge) = open(
            &self.shared.cfg.verifier,
            req.get_ref(),
            methods::AUDIT,
            tls.as_ref(),
        )?;
        if !(16..=64).contains(&ch.challenge_nonce.len()) {
            return Err(Status::invalid_argument(
                "audit nonce must be 16 to 64 bytes",
            ));
        }
        if ch.length > MAX_AUDIT_RANGE {
            return Err(Status::invalid_argument(format!(
                "audit range length must be at most {MAX_AUDIT_RANGE}"
            )));
        }
        let backend = self.shared.cfg.backend.clone();
        let ch2 = ch.clone();
        let answer = blocking(move || backend.audit_answer(&ch2)).await?;
        let proof = AuditProof {
            held: answer.is_some(),
            proof_hash: answer.map(|a| a.to_vec()).unwrap_or_default(),
            challenge: Some(ch),
        };
        Ok(Response::new(
            self.shared.cfg.signer.seal(methods::AUDIT_PROOF, &proof),
        ))
    }
}
