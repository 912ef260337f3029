//! A storage cluster on loopback for the stripe tests and benchmarks: real p2p nodes (signed
//! gRPC over key-bound mutual TLS), each with its own `ShardStore` directory and a receipt
//! identity, and the producer's `Net` with every node registered as a peer.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use magnet_daemon::round::{Net, Peer};
use magnet_daemon::stripes::Candidate;
use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::storage_glue::StoreBackend;
use magnet_p2p::tls::{NodeTls, PinStore};
use magnet_p2p::{NodeConfig, NodeHandle, NodeKey, ReceiptConfig};
use magnet_storage::ShardStore;

pub const CHAIN: &str = "magnet-stripes-test";

pub struct Node {
    pub key: NodeKey,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub handle: Option<NodeHandle>,
    pub receipts: bool,
    pub operator: String,
    pub region: String,
}

impl Node {
    pub fn id(&self) -> String {
        self.key.node_id().to_string()
    }

    pub fn store(&self) -> StoreBackend {
        StoreBackend::new(ShardStore::open(self.dir.path()).unwrap(), 1 << 32)
    }

    pub fn pubkey(&self) -> Vec<u8> {
        self.key.public_key().to_bytes().to_vec()
    }
}

pub struct Cluster {
    pub nodes: Vec<Node>,
    pub net: Net,
    _own: tempfile::TempDir,
}

async fn spawn(
    key: &NodeKey,
    dir: &std::path::Path,
    listen: SocketAddr,
    receipts: bool,
) -> NodeHandle {
    let mut last = None;
    // A killed node's port is released when its tasks finish; retry the bind briefly.
    for _ in 0..200 {
        let r = NodeHandle::spawn(NodeConfig {
            service: ServiceConfig {
                signer: Signer::Wallet(key.clone()),
                verifier: Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
                backend: Arc::new(StoreBackend::new(ShardStore::open(dir).unwrap(), 1 << 32)),
                tier: "storage".into(),
                region: "eu".into(),
                max_shard_bytes: 256 << 20,
                deleters: None,
                receipts: receipts.then(|| ReceiptConfig {
                    chain_id: CHAIN.into(),
                    key: key.clone(),
                }),
            },
            tls: NodeTls::key_bound(key, Arc::new(PinStore::in_memory())).unwrap(),
            listen,
            public_key: Some(key.public_key()),
        })
        .await;
        match r {
            Ok(h) => return h,
            Err(e) => {
                last = Some(e);
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        }
    }
    panic!("node did not start on {listen}: {last:?}");
}

impl Cluster {
    /// `n` storage nodes, each its own operator, regions eu/us/ap in turn.
    pub async fn new(n: usize) -> Cluster {
        Self::with_keys((0..n).map(|_| (NodeKey::generate(), true)).collect()).await
    }

    /// One node per `(key, signs receipts)`.
    pub async fn with_keys(keys: Vec<(NodeKey, bool)>) -> Cluster {
        let mut nodes = Vec::new();
        for (i, (key, receipts)) in keys.into_iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let h = spawn(&key, dir.path(), "127.0.0.1:0".parse().unwrap(), receipts).await;
            nodes.push(Node {
                key,
                dir,
                addr: h.addr(),
                handle: Some(h),
                receipts,
                operator: format!("magnet1operator{i}"),
                region: ["eu", "us", "ap"][i % 3].into(),
            });
        }
        let own = NodeKey::generate();
        let own_dir = tempfile::tempdir().unwrap();
        let mut peers = BTreeMap::new();
        for (i, n) in nodes.iter().enumerate() {
            peers.insert(
                n.id(),
                Peer {
                    node_id: n.id(),
                    pubkey: n.pubkey(),
                    endpoint: n.addr.to_string(),
                    operator: n.operator.clone(),
                    node: format!("magnet1node{i}"),
                    tier: "storage".into(),
                    active: true,
                    last_heartbeat: 0,
                },
            );
        }
        let net = Net {
            tls: NodeTls::key_bound(&own, Arc::new(PinStore::in_memory())).unwrap(),
            signer: Signer::Wallet(own.clone()),
            verifier: Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
            backend: Arc::new(StoreBackend::new(
                ShardStore::open(own_dir.path()).unwrap(),
                1 << 32,
            )),
            peers: Arc::new(std::sync::RwLock::new(peers)),
        };
        Cluster {
            nodes,
            net,
            _own: own_dir,
        }
    }

    pub fn candidates(&self) -> Vec<Candidate> {
        self.nodes
            .iter()
            .map(|n| Candidate {
                node_id: n.id(),
                operator: n.operator.clone(),
                region: n.region.clone(),
                free_bytes: 1 << 32,
            })
            .collect()
    }

    pub fn index_of(&self, node_id: &str) -> usize {
        self.nodes.iter().position(|n| n.id() == node_id).unwrap()
    }

    pub fn node(&self, node_id: &str) -> &Node {
        &self.nodes[self.index_of(node_id)]
    }

    /// Stops node `i` at once (listener closed, open connections failed).
    pub fn kill(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].handle.take() {
            h.kill();
        }
    }

    /// Starts node `i` again on its address with its store.
    pub async fn restart(&mut self, i: usize) {
        if self.nodes[i].handle.is_some() {
            return;
        }
        let n = &self.nodes[i];
        let h = spawn(&n.key, n.dir.path(), n.addr, n.receipts).await;
        self.nodes[i].handle = Some(h);
    }

    /// The file holding shard `index` in node `i`'s store.
    pub fn shard_file(&self, i: usize, index: u32) -> PathBuf {
        let top = self.nodes[i].dir.path().join("shards");
        for obj in std::fs::read_dir(&top).unwrap().flatten() {
            for f in std::fs::read_dir(obj.path()).unwrap().flatten() {
                let name = f.file_name().to_string_lossy().to_string();
                if name.starts_with(&format!("{index:03}.")) && name.ends_with(".shard") {
                    return f.path();
                }
            }
        }
        panic!("node {i} holds no shard {index}");
    }
}

/// Deterministic non-repeating test bytes.
pub fn object_bytes(n: usize, salt: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ salt;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
