//! Storage-tier benches (protocol in docs/bench/storage-tier.md): (a) repair time and bytes
//! moved per lost shard, (b) fetch-any-K over real loopback TLS vs a local read, (c) audit
//! cost — building 50 custody proofs of 1 MiB shards and verifying one on chain.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../tests/common/stripe_cluster.rs"]
mod stripe_cluster;

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use magnet_daemon::stripes::{
    encode, get, prove, put, rank_holders, repair, repair_cost, CustodyChallenge, StripeView,
};
use magnet_p2p::{ShardBackend, ShardKey};
use magnet_rounds::custody::{challenge_leaf, verify_leaf};
use prost::Message;
use stripe_cluster::{object_bytes, Cluster, CHAIN};

const SIZES: [(usize, &str); 2] = [(4 << 20, "4MiB"), (300_007, "300007B")];

struct Setup {
    c: Cluster,
    view: StripeView,
    data: Vec<u8>,
    spares: Vec<String>,
}

async fn setup(size: usize) -> Setup {
    let c = Cluster::new(8).await;
    let data = object_bytes(size, 11);
    let enc = encode(&data).unwrap();
    let placed = put(&c.net, CHAIN, &enc, &c.candidates()).await.unwrap();
    let view = enc.view(placed.holders());
    let spares = rank_holders(&enc.object, &c.candidates(), &view.holders, 0);
    Setup {
        c,
        view,
        data,
        spares,
    }
}

fn repair_bench(cr: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = cr.benchmark_group("a_repair");
    g.sample_size(10);
    for (size, name) in SIZES {
        let mut s = rt.block_on(setup(size));
        for i in [1usize, 4] {
            let n = s.c.index_of(&s.view.holders[i]);
            s.c.kill(n);
        }
        for lost in [vec![1u32], vec![1, 4]] {
            let new: Vec<String> = s.spares[..lost.len()].to_vec();
            let cost = repair_cost(&s.view, lost.len());
            let r = rt
                .block_on(repair(&s.c.net, CHAIN, &s.view, &lost, &new, cost))
                .unwrap();
            assert_eq!(r.repaired.len(), lost.len());
            let l = s.view.shard_len;
            let per = (r.bytes_read + r.bytes_written) as f64 / lost.len() as f64;
            println!(
                "REPAIR {name} lost={} shard_len={l} read={} written={} per_lost_shard={per:.0} bound_per_lost={} ratio_to_bound={:.3}",
                lost.len(),
                r.bytes_read,
                r.bytes_written,
                5 * l,
                per / (5 * l) as f64
            );
            g.bench_function(BenchmarkId::new(name, format!("lost{}", lost.len())), |b| {
                b.iter(|| {
                    rt.block_on(repair(&s.c.net, CHAIN, &s.view, &lost, &new, cost))
                        .unwrap()
                })
            });
        }
    }
    g.finish();
}

fn fetch_bench(cr: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut g = cr.benchmark_group("b_fetch");
    g.sample_size(10);
    for (size, name) in SIZES {
        let mut s = rt.block_on(setup(size));
        // The local fast path: the whole object as one index-0 shard in this node's store.
        let key = ShardKey {
            object_id: s.view.object,
            index: 0,
        };
        s.c.net.backend.put_shard(&key, &s.data).unwrap();
        g.bench_function(BenchmarkId::new(name, "local_read"), |b| {
            b.iter(|| s.c.net.backend.get_shard(&key).unwrap().unwrap())
        });
        // Connection setup alone: four concurrent key-bound TLS dials (what every `get` pays
        // first, as `Net::connect` keeps no connection pool).
        g.bench_function(BenchmarkId::new(name, "dial_4_holders"), |b| {
            b.iter(|| {
                rt.block_on(async {
                    let mut set = tokio::task::JoinSet::new();
                    for h in &s.view.holders[..4] {
                        let (net, h) = (s.c.net.clone(), h.clone());
                        set.spawn(async move { net.connect(&h).await.map(|_| ()) });
                    }
                    while let Some(r) = set.join_next().await {
                        r.unwrap().unwrap();
                    }
                })
            })
        });
        g.bench_function(BenchmarkId::new(name, "get_any_k_all_up"), |b| {
            b.iter(|| {
                let (bytes, r) = rt.block_on(get(&s.c.net, &s.view)).unwrap();
                assert_eq!(r.used, vec![0, 1, 2, 3]);
                bytes
            })
        });
        for i in [0usize, 1] {
            let n = s.c.index_of(&s.view.holders[i]);
            s.c.kill(n);
        }
        g.bench_function(BenchmarkId::new(name, "get_any_k_two_data_down"), |b| {
            b.iter(|| {
                let (bytes, r) = rt.block_on(get(&s.c.net, &s.view)).unwrap();
                assert_eq!(r.used, vec![2, 3, 4, 5]);
                bytes
            })
        });
    }
    g.finish();
}

fn audit_bench(cr: &mut Criterion) {
    const N: usize = 50;
    const SHARD: usize = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let store = magnet_p2p::storage_glue::StoreBackend::new(
        magnet_storage::ShardStore::open(dir.path()).unwrap(),
        1 << 34,
    );
    let seed = [42u8; 32];
    let mut chs = Vec::new();
    let mut roots = Vec::new();
    for i in 0..N {
        let shard = object_bytes(SHARD, i as u64 + 100);
        let object = <[u8; 32]>::from(sha2::Digest::finalize(sha2::Digest::chain_update(
            sha2::Sha256::default(),
            (i as u64).to_be_bytes(),
        )));
        let index = (i % 6) as u32;
        store
            .put_shard(
                &ShardKey {
                    object_id: object,
                    index,
                },
                &shard,
            )
            .unwrap();
        roots.push(magnet_rounds::custody::merkle_root(&shard));
        chs.push(CustodyChallenge {
            object,
            index,
            shard_len: SHARD as u64,
            leaf: challenge_leaf(&seed, &object, index, SHARD as u64),
        });
    }
    let (proofs, fails) = prove(&store, &chs);
    assert!(fails.is_empty() && proofs.len() == N);
    let sizes: Vec<usize> = proofs.iter().map(Message::encoded_len).collect();
    println!(
        "AUDIT proofs={N} shard_len={SHARD} proof_bytes_min={} max={} total={} path_len={}",
        sizes.iter().min().unwrap(),
        sizes.iter().max().unwrap(),
        sizes.iter().sum::<usize>(),
        proofs[0].path.len()
    );
    let mut g = cr.benchmark_group("c_audit");
    g.sample_size(10);
    g.bench_function("prove_50_shards_of_1MiB", |b| {
        b.iter(|| prove(&store, &chs))
    });
    g.finish();
    let paths: Vec<Vec<[u8; 32]>> = proofs
        .iter()
        .map(|p| {
            p.path
                .iter()
                .map(|h| <[u8; 32]>::try_from(h.as_slice()).unwrap())
                .collect()
        })
        .collect();
    let mut g = cr.benchmark_group("c_audit");
    g.bench_function("verify_leaf_one_proof", |b| {
        b.iter(|| {
            assert!(verify_leaf(
                &roots[7],
                SHARD as u64,
                chs[7].leaf,
                &proofs[7].leaf,
                &paths[7]
            ))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = repair_bench, fetch_bench, audit_bench
}
criterion_main!(benches);
