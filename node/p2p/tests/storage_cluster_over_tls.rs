//! A storage cluster of nine nodes on loopback — real gRPC, real key-bound mutual TLS, signed
//! requests, one `ShardStore` directory per node. An object is put as RS(4,2); holders are
//! killed; the object stays readable; the repair daemon (driven by a simulated 30 s clock, fed
//! by real heartbeats over gRPC) restores every shard onto distinct survivors.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::storage_glue::{P2pTransport, StoreBackend};
use magnet_p2p::tls::{Expect, NodeTls, PinStore};
use magnet_p2p::{NodeConfig, NodeHandle, NodeKey, PeerClient, ShardKey};
use magnet_proto::p2p::v1::NodeStatus;
use magnet_storage::daemon::{Action, Daemon, DaemonConfig, Event};
use magnet_storage::object::{execute_repair, get_object, put_object, PutOptions};
use magnet_storage::placement::{place, Candidate};
use magnet_storage::{ContentAddress, Hash32, HolderId, Manifest, ShardStore, SignedManifest};

struct Holder {
    id: HolderId,
    region: String,
    handle: Option<NodeHandle>,
    _dir: tempfile::TempDir,
}

struct Cluster {
    holders: Vec<Holder>,
    transport: P2pTransport,
    /// Heartbeat connections from the owner to each holder.
    beats: BTreeMap<HolderId, PeerClient>,
    tls: NodeTls,
    owner: NodeKey,
    daemon: Daemon,
    now: u64,
    log: Vec<Action>,
}

fn wallet() -> VerifyMode {
    VerifyMode::Wallet { registry: None }
}

impl Cluster {
    async fn new(config: DaemonConfig) -> Self {
        let owner = NodeKey::generate();
        let tls = NodeTls::key_bound(&owner, Arc::new(PinStore::in_memory())).unwrap();
        let transport = P2pTransport::new(
            tls.clone(),
            Signer::Wallet(owner.clone()),
            Arc::new(Verifier::new(wallet())),
        );
        let mut holders = Vec::new();
        for region in ["eu", "us", "ap"] {
            for _ in 0..3 {
                let key = NodeKey::generate();
                let dir = tempfile::tempdir().unwrap();
                let store = ShardStore::open(dir.path()).unwrap();
                let handle = NodeHandle::spawn(NodeConfig {
                    service: ServiceConfig {
                        signer: Signer::Wallet(key.clone()),
                        verifier: Arc::new(Verifier::new(wallet())),
                        backend: Arc::new(StoreBackend::new(store, 1 << 30)),
                        tier: "storage_node".into(),
                        region: region.into(),
                        max_shard_bytes: 64 << 20,
                        deleters: None,
                        receipts: None,
                    },
                    tls: NodeTls::key_bound(&key, Arc::new(PinStore::in_memory())).unwrap(),
                    listen: "127.0.0.1:0".parse().unwrap(),
                    public_key: Some(key.public_key()),
                })
                .await
                .unwrap();
                let id = transport
                    .add_holder(key.node_id(), &handle.addr().to_string())
                    .unwrap();
                holders.push(Holder {
                    id,
                    region: region.into(),
                    handle: Some(handle),
                    _dir: dir,
                });
            }
        }
        let mut c = Cluster {
            holders,
            transport,
            beats: BTreeMap::new(),
            tls,
            owner,
            daemon: Daemon::new(config),
            now: 1_000_000,
            log: Vec::new(),
        };
        c.heartbeats().await;
        c
    }

    /// Real heartbeats over gRPC; only holders that answer are reported alive to the daemon.
    async fn heartbeats(&mut self) {
        for i in 0..self.holders.len() {
            let (id, region) = (self.holders[i].id.clone(), self.holders[i].region.clone());
            let Some(addr) = self.holders[i]
                .handle
                .as_ref()
                .map(|h| h.addr().to_string())
            else {
                // Killed: still try the old connection, which must fail.
                if let Some(c) = self.beats.get_mut(&id) {
                    assert!(c.heartbeat(NodeStatus::default()).await.is_err());
                }
                continue;
            };
            if !self.beats.contains_key(&id) {
                let c = PeerClient::connect(
                    &addr,
                    Expect::NodeId(magnet_p2p::NodeId::parse(id.as_str()).unwrap()),
                    &self.tls,
                    Signer::Wallet(self.owner.clone()),
                    Arc::new(Verifier::new(wallet())),
                )
                .await
                .unwrap();
                self.beats.insert(id.clone(), c);
            }
            let Some(c) = self.beats.get_mut(&id) else {
                continue;
            };
            if let Ok(r) = c.heartbeat(NodeStatus::default()).await {
                let free = r.status.map(|s| s.free_storage_bytes).unwrap_or(0);
                self.daemon.step(
                    Event::Heartbeat {
                        holder: id,
                        region,
                        free_bytes: free,
                    },
                    self.now,
                );
            }
        }
    }

    async fn put(&mut self, data: &[u8]) -> SignedManifest {
        let cands: Vec<Candidate> = self
            .holders
            .iter()
            .map(|h| Candidate {
                id: h.id.clone(),
                region: h.region.clone(),
                free_bytes: 1 << 30,
            })
            .collect();
        let object = ContentAddress(Hash32::of(data));
        let placement = place(&object, 6, 1, 1 << 20, &cands).unwrap();
        let sk = k256::ecdsa::SigningKey::from_bytes(&[42u8; 32].into()).unwrap();
        let sm = put_object(
            &self.transport,
            &sk,
            &PutOptions::default(),
            data,
            placement,
            |_| {},
        )
        .await
        .unwrap();
        self.daemon
            .step(Event::Track(sm.manifest.clone()), self.now);
        sm
    }

    fn kill(&mut self, id: &HolderId) {
        let h = self.holders.iter_mut().find(|h| h.id == *id).unwrap();
        h.handle.take().unwrap().kill();
    }

    fn dead(&self) -> BTreeSet<HolderId> {
        self.holders
            .iter()
            .filter(|h| h.handle.is_none())
            .map(|h| h.id.clone())
            .collect()
    }

    async fn tick(&mut self) -> Vec<Action> {
        self.now += 30_000;
        self.heartbeats().await;
        let mut actions = self.daemon.step(Event::Tick, self.now);
        let mut i = 0;
        while i < actions.len() {
            if let Action::Repair(order) = actions[i].clone() {
                let ev = execute_repair(&self.transport, &order).await;
                actions.extend(self.daemon.step(ev, self.now));
            }
            i += 1;
        }
        self.log.extend(actions.clone());
        actions
    }

    fn manifest(&self, sm: &SignedManifest) -> Manifest {
        self.daemon.manifest(&sm.manifest.object).unwrap().clone()
    }

    fn signed(&self, m: Manifest) -> SignedManifest {
        m.sign(&k256::ecdsa::SigningKey::from_bytes(&[42u8; 32].into()).unwrap())
            .unwrap()
    }

    /// Each of the K+M shards sits on exactly one distinct live holder, which lists it over
    /// gRPC with the manifest's hash.
    async fn assert_fully_placed(&mut self, m: &Manifest) {
        let dead = self.dead();
        let mut seen = BTreeSet::new();
        for (i, reps) in m.holders.iter().enumerate() {
            assert_eq!(reps.len(), 1, "shard {i}: {reps:?}");
            let h = &reps[0];
            assert!(!dead.contains(h), "shard {i} on dead holder {h}");
            assert!(seen.insert(h.clone()), "holder {h} twice");
            let listed = self
                .beats
                .get_mut(h)
                .unwrap()
                .list_shards(Some(m.object.0 .0))
                .await
                .unwrap();
            let key = ShardKey {
                object_id: m.object.0 .0,
                index: i as u32,
            };
            let entry = listed.iter().find(|s| s.key == key).expect("shard listed");
            assert_eq!(entry.hash, m.shard_hashes[i].0);
        }
    }
}

fn object_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_nodes_survive_three_lost_holders_and_repair_onto_distinct_survivors() {
    let mut c = Cluster::new(DaemonConfig {
        max_inflight: 1,
        ..DaemonConfig::default()
    })
    .await;
    let data = object_bytes(2 * (1 << 20) + 99);
    let sm = c.put(&data).await;
    let (got, _) = get_object(&c.transport, &sm).await.unwrap();
    assert_eq!(got, data);

    // Kill two holders: the object is still readable, from the four survivors.
    let first = [
        sm.manifest.holders[1][0].clone(),
        sm.manifest.holders[4][0].clone(),
    ];
    for v in &first {
        c.kill(v);
    }
    let (got, report) = get_object(&c.transport, &sm).await.unwrap();
    assert_eq!(got, data, "intact after two holders died");
    assert!(!report.unreachable.is_empty());

    // Tick until exactly one repaired shard has been verified and published.
    let mut ticks = 0;
    loop {
        let a = c.tick().await;
        ticks += 1;
        assert!(ticks < 40, "no repair: {:?}", c.log);
        let published = a
            .iter()
            .filter(|a| matches!(a, Action::PublishManifest(_)))
            .count();
        if published > 0 {
            assert_eq!(published, 1, "rate limit allows one repair at a time");
            break;
        }
    }
    let m = c.manifest(&sm);
    let repaired: Vec<usize> = (0..6)
        .filter(|&i| !sm.manifest.holders[i].contains(&m.holders[i][0]))
        .collect();
    assert_eq!(repaired.len(), 1);

    // Kill a third holder, one still holding an original shard.
    let third = (0..6)
        .map(|i| m.holders[i][0].clone())
        .find(|h| !first.contains(h) && sm.manifest.holders.iter().flatten().any(|o| o == h))
        .unwrap();
    c.kill(&third);
    let (got, _) = get_object(&c.transport, &c.signed(m.clone()))
        .await
        .unwrap();
    assert_eq!(got, data, "readable with three holders gone");

    // Repair completes: all K+M shards on distinct live holders.
    let dead = c.dead();
    let mut ticks = 0;
    while c
        .manifest(&sm)
        .holders
        .iter()
        .flatten()
        .any(|h| dead.contains(h))
    {
        c.tick().await;
        ticks += 1;
        assert!(ticks < 60, "repair did not complete: {:?}", c.log);
    }
    let m = c.manifest(&sm);
    c.assert_fully_placed(&m).await;
    let (got, report) = get_object(&c.transport, &c.signed(m)).await.unwrap();
    assert_eq!(got, data);
    assert!(report.unreachable.is_empty(), "{report:?}");
}
