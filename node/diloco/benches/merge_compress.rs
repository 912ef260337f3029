//! Throughput of the outer merge and of pseudo-gradient compression on 1M-parameter vectors.
//!
//! Run: `cargo bench -p magnet-diloco --bench merge_compress`.
#![allow(missing_docs)] // criterion_group! generates undocumented functions
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use magnet_diloco::{
    merge, verify_merge, Checkpoint, Compressed, CompressionConfig, Compressor, Contribution,
    MergeMeta, MergePolicy, NodeId,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const P: usize = 1 << 20;

fn vec_of(rng: &mut ChaCha8Rng, scale: f32) -> Vec<f32> {
    (0..P).map(|_| rng.gen_range(-scale..scale)).collect()
}

fn bench_merge(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let base = Checkpoint::with_momentum(vec_of(&mut rng, 1.0), vec_of(&mut rng, 0.01)).unwrap();
    let contribs: Vec<Contribution> = (0..4)
        .map(|i| {
            let id = NodeId::new(format!("node-{i:016x}")).unwrap();
            Contribution::new(id, vec_of(&mut rng, 0.01), 1000 + i, 10_000)
        })
        .collect();
    let meta = MergeMeta {
        job_id: 1,
        round: 0,
        leader: NodeId::new("node-0000000000000000").unwrap(),
    };
    let policy = MergePolicy::default();
    let mut g = c.benchmark_group("merge");
    g.sample_size(10);
    g.throughput(Throughput::Elements((P * contribs.len()) as u64));
    g.bench_function("nesterov_4x1M", |b| {
        b.iter(|| merge(black_box(&base), black_box(&contribs), &policy, &meta).unwrap())
    });
    let out = merge(&base, &contribs, &policy, &meta).unwrap();
    g.bench_function("verify_4x1M", |b| {
        b.iter(|| verify_merge(black_box(&base), black_box(&contribs), &out.record).unwrap())
    });
    g.finish();
}

fn bench_compress(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let delta = vec_of(&mut rng, 0.01);
    let mut g = c.benchmark_group("compress");
    g.sample_size(10);
    g.throughput(Throughput::Elements(P as u64));
    for (name, cfg) in [
        ("int8_dense_1M", CompressionConfig::default()),
        (
            "int8_top1pct_1M",
            CompressionConfig {
                chunk: 256,
                top_k_ppm: Some(10_000),
            },
        ),
    ] {
        let mut comp = Compressor::new(cfg, P).unwrap();
        g.bench_function(name, |b| {
            b.iter(|| comp.compress(black_box(&delta)).unwrap().to_bytes())
        });
    }
    let bytes = Compressor::new(CompressionConfig::default(), P)
        .unwrap()
        .compress(&delta)
        .unwrap()
        .to_bytes();
    g.bench_function("int8_decode_1M", |b| {
        b.iter(|| Compressed::from_bytes(black_box(&bytes)).unwrap().decode())
    });
    g.finish();
}

criterion_group!(benches, bench_merge, bench_compress);
criterion_main!(benches);
