//! Encode and rebuild-two throughput of the RS(4,2) codec at 1, 4 and 64 MiB objects (4 MiB
//! stripes), against `memcpy` of the same bytes in the same run. Build with
//! `--features simd-accel` for the SIMD path. Reported as bytes of object per second.
#![allow(missing_docs)] // criterion_group! generates undocumented items.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use magnet_storage::codec::{Codec, Params, MAX_STRIPE};

const SIZES_MIB: &[usize] = &[1, 4, 64];

fn object(len: usize) -> Vec<u8> {
    let mut x = 0x0123_4567_89AB_CDEFu64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn stripes(len: usize) -> usize {
    len.div_ceil(MAX_STRIPE as usize)
}

fn bench(c: &mut Criterion) {
    let path = if cfg!(feature = "simd-accel") {
        "simd"
    } else {
        "pure"
    };
    let codec = Codec::new(Params::DEFAULT).unwrap();
    let stripe = MAX_STRIPE as usize;
    let piece = stripe / 4;
    let mut g = c.benchmark_group(format!("rs42-{path}"));
    g.sample_size(10);
    for &mib in SIZES_MIB {
        let len = mib << 20;
        let data = object(len);
        g.throughput(Throughput::Bytes(len as u64));

        let mut dst = vec![0u8; len];
        g.bench_with_input(BenchmarkId::new("memcpy", mib), &data, |b, d| {
            b.iter(|| {
                dst.copy_from_slice(d);
                std::hint::black_box(&dst);
            })
        });

        let mut pieces: Vec<Vec<Vec<u8>>> = (0..stripes(len))
            .map(|_| (0..6).map(|_| Vec::with_capacity(piece)).collect())
            .collect();
        g.bench_with_input(BenchmarkId::new("encode", mib), &data, |b, d| {
            b.iter(|| {
                for (s, chunk) in d.chunks(stripe).enumerate() {
                    let pl = chunk.len().div_ceil(4);
                    codec.encode_stripe(chunk, pl, &mut pieces[s]).unwrap();
                }
                std::hint::black_box(&pieces);
            })
        });

        // Shards of every stripe with data shards 0 and 1 lost (the costliest two-loss case).
        let encoded: Vec<Vec<Option<Vec<u8>>>> = data
            .chunks(stripe)
            .map(|chunk| {
                let mut p = vec![Vec::new(); 6];
                codec
                    .encode_stripe(chunk, chunk.len().div_ceil(4), &mut p)
                    .unwrap();
                p.into_iter()
                    .enumerate()
                    .map(|(i, v)| (i >= 2).then_some(v))
                    .collect()
            })
            .collect();
        g.bench_function(BenchmarkId::new("rebuild-two", mib), |b| {
            b.iter_batched(
                || encoded.clone(),
                |mut stripes| {
                    for s in stripes.iter_mut() {
                        codec.reconstruct_stripe(s, true).unwrap();
                    }
                    stripes
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
