//! Calling a peer: dial with TLS bound to the expected node, sign every request, verify what
//! comes back.
//!
//! [`PeerClient::connect`] performs the TLS handshake eagerly, so a peer that cannot prove the
//! expected key is refused before any request is sent ([`P2pError::Tls`]). Shard downloads are
//! checked against the holder's signed manifest chunk by chunk, and against the caller's
//! expected shard hash when one is given; audit proofs are checked for the holder's signature.

use std::sync::Arc;
use std::time::Duration;

use magnet_proto::p2p::v1::{
    get_shard_frame, peer_service_client::PeerServiceClient, put_shard_frame,
    shard_service_client::ShardServiceClient, AuditChallenge, AuditProof, DeleteShardRequest,
    DilocoMessage, ExchangeRequest, GetShardRequest, HeartbeatRequest, HeartbeatResponse,
    ListShardsRequest, NodeStatus, PeerInfo, PutShardFrame, PutShardResponse, ResearchMessage,
    ShardManifest,
};
use prost::Message;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::auth::{Signer, Verifier};
use crate::backend::{ShardInfo, ShardKey};
use crate::error::P2pError;
use crate::identity::NodeId;
use crate::node::{CONNECTION_WINDOW, MAX_MESSAGE_BYTES, STREAM_WINDOW};
use crate::service::methods;
use crate::stream::{build_manifest, ChunkChecker, DEFAULT_CHUNK_BYTES};
use crate::tls::{find_tls_error, Expect, NodeTls};

/// A connection to one peer.
#[derive(Debug, Clone)]
pub struct PeerClient {
    peer: PeerServiceClient<Channel>,
    shard: ShardServiceClient<Channel>,
    signer: Signer,
    verifier: Arc<Verifier>,
    expected: Option<NodeId>,
    addr: String,
    /// Chunk size for uploads and requested for downloads.
    pub chunk_size: u32,
    /// Largest shard accepted on download.
    pub max_shard_bytes: u64,
}

impl PeerClient {
    /// Dials `addr` ("host:port"), requiring the peer to satisfy `expect` at the handshake.
    pub async fn connect(
        addr: &str,
        expect: Expect,
        tls: &NodeTls,
        signer: Signer,
        verifier: Arc<Verifier>,
    ) -> Result<Self, P2pError> {
        let cfg = tls.client_config(&expect)?;
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name: ServerName<'static> = match (&expect, host.parse::<std::net::IpAddr>()) {
            (Expect::NodeId(_) | Expect::Key(_), _) if !tls.is_ca_mode() => {
                ServerName::try_from(expect.node_id().map(|n| n.to_string()).unwrap_or_default())
                    .map_err(|e| P2pError::Protocol(format!("server name: {e}")))?
            }
            (_, Ok(ip)) => ServerName::IpAddress(ip.into()),
            (_, Err(_)) => ServerName::try_from(host.to_owned())
                .map_err(|e| P2pError::Protocol(format!("server name {host:?}: {e}")))?,
        };
        let target = addr.to_owned();
        let svc = tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let name = name.clone();
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| P2pError::Protocol(format!("address {addr:?}: {e}")))?
            .connect_timeout(Duration::from_secs(5))
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .http2_keep_alive_interval(Duration::from_secs(20));
        let channel =
            endpoint
                .connect_with_connector(svc)
                .await
                .map_err(|e| match find_tls_error(&e) {
                    Some(t) => P2pError::Tls(t),
                    None => P2pError::Transport {
                        addr: addr.to_owned(),
                        source: e,
                    },
                })?;
        Ok(PeerClient {
            peer: PeerServiceClient::new(channel.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES),
            shard: ShardServiceClient::new(channel)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            signer,
            verifier,
            expected: expect.node_id(),
            addr: addr.to_owned(),
            chunk_size: DEFAULT_CHUNK_BYTES,
            max_shard_bytes: 1 << 30,
        })
    }

    /// The dialled address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The peer's nodeId when it was dialled by key or nodeId.
    pub fn expected(&self) -> Option<&NodeId> {
        self.expected.as_ref()
    }

    /// Sends our status; returns the peer's.
    pub async fn heartbeat(&mut self, status: NodeStatus) -> Result<HeartbeatResponse, P2pError> {
        let req = self.signer.seal(
            methods::HEARTBEAT,
            &HeartbeatRequest {
                status: Some(status),
            },
        );
        let resp = self.peer.heartbeat(req).await?.into_inner();
        if let Some(want) = &self.expected {
            if resp.node_id != want.as_str() {
                return Err(P2pError::Protocol(format!(
                    "heartbeat answered by {} but {want} was dialled",
                    resp.node_id
                )));
            }
        }
        Ok(resp)
    }

    /// Delivers a DiLoCo round message; `Ok(false)` when the peer runs no round engine.
    pub async fn diloco(&mut self, kind: &str, json: Vec<u8>) -> Result<bool, P2pError> {
        let req = self.signer.seal(
            methods::DILOCO,
            &DilocoMessage {
                kind: kind.to_owned(),
                json,
            },
        );
        let ack = self.peer.diloco(req).await?.into_inner();
        Ok(ack.accepted)
    }

    /// Sends a research message and returns the peer's answer with the signed envelope it came
    /// in (the envelope is evidence of what the peer claimed: its signature was checked
    /// against the dialled peer's key here). Research units can run for minutes: `timeout`
    /// bounds the wait.
    pub async fn research(
        &mut self,
        msg: ResearchMessage,
        timeout: Duration,
    ) -> Result<(ResearchMessage, magnet_proto::p2p::v1::Signed), P2pError> {
        let req = self.signer.seal(methods::RESEARCH, &msg);
        let mut req = tonic::Request::new(req);
        req.set_timeout(timeout);
        let signed = self.peer.research(req).await?.into_inner();
        self.verifier.verify(
            signed.auth.as_ref(),
            methods::RESEARCH_REPLY,
            &signed.body,
            self.expected.as_ref(),
        )?;
        let answer = ResearchMessage::decode(signed.body.as_slice())
            .map_err(|e| P2pError::Protocol(format!("research answer does not decode: {e}")))?;
        Ok((answer, signed))
    }

    /// Announces ourselves and the peers we know; returns the peers the other side knows.
    pub async fn exchange(
        &mut self,
        self_info: PeerInfo,
        known: Vec<PeerInfo>,
    ) -> Result<Vec<PeerInfo>, P2pError> {
        let req = self.signer.seal(
            methods::EXCHANGE,
            &ExchangeRequest {
                self_info: Some(self_info),
                known,
            },
        );
        Ok(self.peer.exchange(req).await?.into_inner().peers)
    }

    /// Uploads a shard in chunks under a signed manifest. The response carries the holder's
    /// custody receipt and Merkle root when it signs receipts (empty otherwise); check them
    /// with [`crate::receipt::verify_receipt`] or use [`Self::put_shard_with_receipt`].
    pub async fn put_shard(
        &mut self,
        key: &ShardKey,
        data: &[u8],
    ) -> Result<PutShardResponse, P2pError> {
        let manifest = build_manifest(key, data, self.chunk_size);
        let cs = manifest.chunk_size as usize;
        let signed = self.signer.seal(methods::PUT_SHARD, &manifest);
        let data = bytes::Bytes::copy_from_slice(data);
        let n = data.len().div_ceil(cs);
        let head = std::iter::once(PutShardFrame {
            frame: Some(put_shard_frame::Frame::Manifest(signed)),
        });
        let chunks = (0..n).map(move |i| PutShardFrame {
            frame: Some(put_shard_frame::Frame::Chunk(
                data.slice(i * cs..((i + 1) * cs).min(data.len())).to_vec(),
            )),
        });
        let resp = self
            .shard
            .put_shard(tokio_stream::iter(head.chain(chunks)))
            .await?
            .into_inner();
        if resp.shard_hash != manifest.shard_hash {
            return Err(P2pError::Protocol(format!(
                "holder acknowledged a different shard hash for {key}"
            )));
        }
        Ok(resp)
    }

    /// Uploads a shard to a holder that signs custody receipts and checks the receipt: the
    /// holder's Merkle root must equal the one computed here from `data`, and the signature
    /// must be `holder`'s over `ShardReceipt{chain_id, object, index, root, len}`.
    pub async fn put_shard_with_receipt(
        &mut self,
        key: &ShardKey,
        data: &[u8],
        chain_id: &str,
        holder: &crate::identity::PublicKey,
    ) -> Result<crate::receipt::VerifiedReceipt, P2pError> {
        let root = magnet_rounds::custody::merkle_root(data);
        let resp = self.put_shard(key, data).await?;
        Ok(crate::receipt::verify_receipt(
            chain_id,
            holder,
            key,
            data.len() as u64,
            &root,
            &resp,
        )?)
    }

    /// Downloads a shard, checking every chunk against the holder's signed manifest and, when
    /// given, the whole shard against `expected_hash`.
    pub async fn get_shard(
        &mut self,
        key: &ShardKey,
        expected_hash: Option<[u8; 32]>,
    ) -> Result<Vec<u8>, P2pError> {
        let req = self.signer.seal(
            methods::GET_SHARD,
            &GetShardRequest {
                key: Some(key.to_proto()),
                chunk_size: self.chunk_size,
            },
        );
        let mut frames = self.shard.get_shard(req).await?.into_inner();
        let first = frames
            .message()
            .await?
            .ok_or_else(|| P2pError::Protocol("GetShard stream is empty".into()))?;
        let Some(get_shard_frame::Frame::Manifest(signed)) = first.frame else {
            return Err(P2pError::Protocol(
                "GetShard stream does not open with a manifest".into(),
            ));
        };
        self.verifier.verify(
            signed.auth.as_ref(),
            methods::GET_SHARD_MANIFEST,
            &signed.body,
            self.expected.as_ref(),
        )?;
        let manifest = ShardManifest::decode(signed.body.as_slice())
            .map_err(|e| P2pError::Protocol(format!("manifest does not decode: {e}")))?;
        if ShardKey::from_proto(manifest.key.as_ref())? != *key {
            return Err(P2pError::Protocol(format!(
                "holder sent a manifest for another shard than {key}"
            )));
        }
        let mut checker = ChunkChecker::new(&manifest, self.max_shard_bytes)?;
        if let Some(h) = expected_hash {
            if checker.shard_hash() != h {
                return Err(crate::stream::IntegrityError::UnexpectedShard(hex::encode(h)).into());
            }
        }
        while let Some(f) = frames.message().await? {
            match f.frame {
                Some(get_shard_frame::Frame::Chunk(c)) => checker.accept(&c)?,
                _ => {
                    return Err(P2pError::Protocol(
                        "second manifest in GetShard stream".into(),
                    ))
                }
            }
        }
        Ok(checker.finish()?)
    }

    /// Lists the peer's shards (of one object, or all).
    pub async fn list_shards(
        &mut self,
        object: Option<[u8; 32]>,
    ) -> Result<Vec<ShardInfo>, P2pError> {
        let req = self.signer.seal(
            methods::LIST_SHARDS,
            &ListShardsRequest {
                object_id: object.map(|o| o.to_vec()).unwrap_or_default(),
            },
        );
        let resp = self.shard.list_shards(req).await?.into_inner();
        resp.shards
            .into_iter()
            .map(|e| {
                Ok(ShardInfo {
                    key: ShardKey::from_proto(e.key.as_ref())?,
                    size: e.size,
                    hash: e.shard_hash.as_slice().try_into().map_err(|_| {
                        P2pError::Protocol("listed shard hash is not 32 bytes".into())
                    })?,
                })
            })
            .collect()
    }

    /// Deletes a shard on the peer; returns whether it existed.
    pub async fn delete_shard(&mut self, key: &ShardKey) -> Result<bool, P2pError> {
        let req = self.signer.seal(
            methods::DELETE_SHARD,
            &DeleteShardRequest {
                key: Some(key.to_proto()),
            },
        );
        Ok(self.shard.delete_shard(req).await?.into_inner().existed)
    }

    /// Challenges the peer to hash a range of a shard; returns its signed, verified proof.
    /// Comparing `proof_hash` with [`crate::stream::audit_proof_hash`] over the true bytes is
    /// the caller's job (only the caller knows them).
    pub async fn audit(&mut self, challenge: AuditChallenge) -> Result<AuditProof, P2pError> {
        let req = self.signer.seal(methods::AUDIT, &challenge);
        let signed = self.shard.audit(req).await?.into_inner();
        self.verifier.verify(
            signed.auth.as_ref(),
            methods::AUDIT_PROOF,
            &signed.body,
            self.expected.as_ref(),
        )?;
        let proof = AuditProof::decode(signed.body.as_slice())
            .map_err(|e| P2pError::Protocol(format!("audit proof does not decode: {e}")))?;
        if proof.challenge.as_ref() != Some(&challenge) {
            return Err(P2pError::Protocol(
                "audit proof answers a different challenge".into(),
            ));
        }
        Ok(proof)
    }

    /// Sends a pre-built signed envelope to Heartbeat (conformance and attack tests).
    pub async fn heartbeat_raw(
        &mut self,
        signed: magnet_proto::p2p::v1::Signed,
    ) -> Result<HeartbeatResponse, P2pError> {
        Ok(self.peer.heartbeat(signed).await?.into_inner())
    }
}
