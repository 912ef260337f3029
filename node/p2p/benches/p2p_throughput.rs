//! End-to-end shard put/get throughput over loopback gRPC + TLS (key-bound, mutual, signed).
//!
//! Run: `cargo bench -p magnet-p2p --bench p2p_throughput` (or `scripts/bench-p2p.sh`).

#![allow(missing_docs)] // criterion_group! generates undocumented items

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::tls::{Expect, NodeTls, PinStore};
use magnet_p2p::{DirShardBackend, NodeConfig, NodeHandle, NodeKey, PeerClient, ShardKey};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let sk = NodeKey::generate();
    let ck = NodeKey::generate();
    let wallet = || VerifyMode::Wallet { registry: None };
    let (server, mut client) = rt.block_on(async {
        let tls = NodeTls::key_bound(&sk, Arc::new(PinStore::in_memory())).expect("tls");
        let server = NodeHandle::spawn(NodeConfig {
            service: ServiceConfig {
                signer: Signer::Wallet(sk.clone()),
                verifier: Arc::new(Verifier::new(wallet())),
                backend: Arc::new(DirShardBackend::open(dir.path(), 1 << 33).expect("backend")),
                tier: "storage_node".into(),
                region: String::new(),
                max_shard_bytes: 1 << 30,
                deleters: None,
                receipts: None,
            },
            tls,
            listen: "127.0.0.1:0".parse().expect("addr"),
            public_key: Some(sk.public_key()),
        })
        .await
        .expect("server");
        let ctls = NodeTls::key_bound(&ck, Arc::new(PinStore::in_memory())).expect("tls");
        let client = PeerClient::connect(
            &server.addr().to_string(),
            Expect::NodeId(sk.node_id().clone()),
            &ctls,
            Signer::Wallet(ck.clone()),
            Arc::new(Verifier::new(wallet())),
        )
        .await
        .expect("connect");
        (server, client)
    });
    let mut g = c.benchmark_group("p2p_loopback_tls");
    g.sample_size(10);
    for mib in [1usize, 16, 64] {
        let data: Vec<u8> = (0..mib << 20)
            .map(|i| ((i * 2_654_435_761usize) >> 7) as u8)
            .collect();
        let key = ShardKey {
            object_id: [mib as u8; 32],
            index: 0,
        };
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_with_input(
            BenchmarkId::new("put", format!("{mib}MiB")),
            &data,
            |b, d| b.iter(|| rt.block_on(client.put_shard(&key, d)).expect("put")),
        );
        g.bench_with_input(
            BenchmarkId::new("get", format!("{mib}MiB")),
            &data,
            |b, d| {
                b.iter(|| {
                    let got = rt.block_on(client.get_shard(&key, None)).expect("get");
                    assert_eq!(got.len(), d.len());
                })
            },
        );
    }
    g.finish();
    drop(server);
}

criterion_group!(benches, bench);
criterion_main!(benches);
