//! Shared helpers: start real nodes on loopback (real TCP, real TLS, real files).
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::Arc;

use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::registry::Registry;
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::tls::{Expect, NodeTls, PinStore};
use magnet_p2p::{DirShardBackend, NodeConfig, NodeHandle, NodeKey, PeerClient};

pub struct TestNode {
    pub key: NodeKey,
    pub tls: NodeTls,
    pub signer: Signer,
    pub verifier: Arc<Verifier>,
    pub handle: NodeHandle,
    pub dir: tempfile::TempDir,
}

pub fn wallet() -> VerifyMode {
    VerifyMode::Wallet { registry: None }
}

pub fn wallet_with(reg: Arc<dyn Registry>) -> VerifyMode {
    VerifyMode::Wallet {
        registry: Some(reg),
    }
}

pub fn cluster(secret: &[u8]) -> VerifyMode {
    VerifyMode::Cluster {
        secret: Arc::from(secret),
    }
}

pub fn cluster_signer(key: &NodeKey, secret: &[u8]) -> Signer {
    Signer::Cluster {
        node_id: key.node_id().clone(),
        secret: Arc::from(secret),
    }
}

pub async fn start(key: NodeKey, mode: VerifyMode, signer: Signer) -> TestNode {
    start_with(key, mode, signer, None).await
}

pub async fn start_with(
    key: NodeKey,
    mode: VerifyMode,
    signer: Signer,
    deleters: Option<BTreeSet<magnet_p2p::NodeId>>,
) -> TestNode {
    let dir = tempfile::tempdir().unwrap();
    let tls = NodeTls::key_bound(&key, Arc::new(PinStore::in_memory())).unwrap();
    let verifier = Arc::new(Verifier::new(mode));
    let backend = Arc::new(DirShardBackend::open(&dir.path().join("shards"), 1 << 30).unwrap());
    let handle = NodeHandle::spawn(NodeConfig {
        service: ServiceConfig {
            signer: signer.clone(),
            verifier: verifier.clone(),
            backend,
            tier: "storage_node".into(),
            region: "eu".into(),
            max_shard_bytes: 256 << 20,
            deleters,
            receipts: None,
        },
        tls: tls.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        public_key: Some(key.public_key()),
    })
    .await
    .unwrap();
    TestNode {
        key,
        tls,
        signer,
        verifier,
        handle,
        dir,
    }
}

impl TestNode {
    /// Dials `other`, requiring it to prove its nodeId at the TLS handshake.
    pub async fn dial(&self, other: &TestNode) -> PeerClient {
        PeerClient::connect(
            &other.handle.addr().to_string(),
            Expect::NodeId(other.key.node_id().clone()),
            &self.tls,
            self.signer.clone(),
            self.verifier.clone(),
        )
        .await
        .unwrap()
    }

    pub fn shard_file(&self, key: &magnet_p2p::ShardKey) -> std::path::PathBuf {
        self.dir
            .path()
            .join("shards")
            .join(hex::encode(key.object_id))
            .join(format!("{}.shard", key.index))
    }
}
