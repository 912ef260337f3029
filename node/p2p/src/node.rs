//! Running a node: a TCP listener, a TLS handshake per connection, tonic on top.
//!
//! Handshakes run concurrently (one task each, bounded by a timeout) so a slow or hostile peer
//! cannot stall the accept loop. Each accepted connection carries a [`ConnInfo`] with the
//! client's TLS-proved nodeId into the services. [`NodeHandle::kill`] stops the node abruptly —
//! listener closed, every open connection failed — which is what the cluster tests use to take
//! holders down.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use magnet_proto::p2p::v1::{
    peer_service_server::PeerServiceServer, shard_service_server::ShardServiceServer, PeerInfo,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tonic::transport::server::Connected;

use crate::error::P2pError;
use crate::identity::{NodeId, PublicKey};
use crate::service::{NodeService, PeerRecord, ServiceConfig, Shared};
use crate::tls::{cert_identity, ConnInfo, NodeTls};

/// Largest gRPC message accepted (a chunk plus framing).
pub const MAX_MESSAGE_BYTES: usize = 8 << 20;
/// HTTP/2 per-stream flow-control window.
pub const STREAM_WINDOW: u32 = 4 << 20;
/// HTTP/2 per-connection flow-control window.
pub const CONNECTION_WINDOW: u32 = 16 << 20;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A server-side TLS connection handed to tonic.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: ConnInfo,
    killed: Arc<AtomicBool>,
}

fn killed_err() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "node stopped")
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed.load(Ordering::Relaxed) {
            return Poll::Ready(Err(killed_err()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl Connected for TlsConn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

/// Everything needed to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Services configuration (signer, verifier, backend, tier…).
    pub service: ServiceConfig,
    /// TLS setup.
    pub tls: NodeTls,
    /// Address to listen on (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// This node's key, announced in peer exchange (`None` in cluster mode).
    pub public_key: Option<PublicKey>,
}

/// A running node.
#[derive(Debug)]
pub struct NodeHandle {
    addr: SocketAddr,
    node_id: NodeId,
    shared: Arc<Shared>,
    killed: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl NodeHandle {
    /// Starts listening and serving.
    pub async fn spawn(cfg: NodeConfig) -> Result<Self, P2pError> {
        let listener = TcpListener::bind(cfg.listen).await.map_err(P2pError::Io)?;
        let addr = listener.local_addr().map_err(P2pError::Io)?;
        let node_id = cfg.service.signer.node_id().clone();
        let self_info = PeerInfo {
            node_id: node_id.to_string(),
            public_key: cfg
                .public_key
                .map(|k| k.to_bytes().to_vec())
                .unwrap_or_default(),
            address: addr.to_string(),
            region: cfg.service.region.clone(),
        };
        let shared = Arc::new(Shared::new(cfg.service, self_info));
        let acceptor = TlsAcceptor::from(cfg.tls.server_config()?);
        let killed = Arc::new(AtomicBool::new(false));
        let (shutdown, mut shut_rx) = watch::channel(false);
        let (tx, rx) = mpsc::channel::<Result<TlsConn, std::io::Error>>(64);

        let accept_killed = killed.clone();
        let accept = tokio::spawn(async move {
            loop {
                let (tcp, remote) = tokio::select! {
                    _ = shut_rx.changed() => break,
                    r = listener.accept() => match r {
                        Ok(x) => x,
                        Err(e) => {
                            tracing::warn!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let killed = accept_killed.clone();
                tokio::spawn(async move {
                    let tls =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::warn!(%remote, "TLS handshake refused: {e}");
                                return;
                            }
                            Err(_) => {
                                tracing::warn!(%remote, "TLS handshake timed out");
                                return;
                            }
                        };
                    let identity = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(|c| cert_identity(c).ok().flatten())
                        .map(|i| i.node_id);
                    let conn = TlsConn {
                        inner: tls,
                        info: ConnInfo { remote, identity },
                        killed,
                    };
                    let _ = tx.send(Ok(conn)).await;
                });
            }
        });

        let svc = NodeService {
            shared: shared.clone(),
        };
        let mut shut_rx2 = shutdown.subscribe();
        let serve = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::ReceiverStream::new(rx);
            let res = tonic::transport::Server::builder()
                .initial_stream_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .http2_keepalive_interval(Some(Duration::from_secs(20)))
                .add_service(
                    PeerServiceServer::new(svc.clone())
                        .max_decoding_message_size(MAX_MESSAGE_BYTES),
                )
                .add_service(
                    ShardServiceServer::new(svc)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                )
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = shut_rx2.changed().await;
                })
                .await;
            if let Err(e) = res {
                tracing::warn!("gRPC server stopped: {e}");
            }
        });
        tracing::info!(%node_id, %addr, "p2p node listening");
        Ok(NodeHandle {
            addr,
            node_id,
            shared,
            killed,
            shutdown,
            tasks: vec![accept, serve],
        })
    }

    /// Routes verified research work units to `inbox` from now on; each answer sent back on
    /// its oneshot is signed with this node's key and returned to the requester.
    pub fn set_research_inbox(&self, inbox: crate::service::ResearchInbox) {
        if let Ok(mut slot) = self.shared.research_inbox.lock() {
            *slot = Some(inbox);
        }
    }

    /// Routes verified DiLoCo round messages to `inbox` from now on.
    pub fn set_diloco_inbox(&self, inbox: crate::service::DilocoInbox) {
        if let Ok(mut slot) = self.shared.diloco_inbox.lock() {
            *slot = Some(inbox);
        }
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// Peers this node has heard from or of.
    pub fn peers(&self) -> Vec<PeerRecord> {
        self.shared.peers()
    }

    /// Sets the load reported in heartbeats (per-mille, clamped to 1000).
    pub fn set_load(&self, permille: u32) {
        self.shared
            .load_permille
            .store(permille.min(1000), std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the node at once: no new connections, every open connection fails.
    pub fn kill(self) {
        self.killed.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        tracing::info!(node_id = %self.node_id, "p2p node killed");
    }
}

impl Drop for NodeHandle {
    fn drop(&mut self) {
        self.killed.store(true, Ordering::Relaxed);
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
    }
}
