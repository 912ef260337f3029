//! Ternary matrix-vector kernel micro-benchmarks, per kernel: `small` shapes (whose codes fit in
//! L2, so the kernel's arithmetic shows) and genkidama-618m shapes (which stream from L3 or DRAM).
//!
//! `decode-batch`: aggregate decode tokens/s of [`Engine::forward_batch`] over B = 1, 4 and 16
//! sequences against B separate single-sequence steps (what [`Engine::forward`] runs per call) on
//! a random `small` model, one thread, best kernel. Each sample decodes 8 tokens per sequence
//! after a 16-token prompt (prefilled outside the timing).
#![allow(missing_docs)] // criterion's macros generate undocumented public items

use std::time::Duration;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use magnet_bitnet::export::gguf_writer_parts;
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::infer::{Engine, Sequence};
use magnet_bitnet::kernel::{matvec, quantize_acts, Kernel, TernaryMatrix};
use magnet_bitnet::{ModelConfig, ParamStore};

fn bench(c: &mut Criterion) {
    let shapes = [
        (512usize, 512usize, "small attn_q 512x512"),
        (512, 1536, "small ffn_down 512x1536"),
        (1536, 1536, "attn_q 1536x1536"),
        (4096, 1536, "ffn_up 4096x1536"),
        (1536, 4096, "ffn_down 1536x4096"),
    ];
    let mut g = c.benchmark_group("ternary_matvec");
    for (rows, cols, name) in shapes {
        let codes: Vec<i8> = (0..rows * cols)
            .map(|i| (i.wrapping_mul(2_654_435_761usize) >> 7) as i8 % 2)
            .collect();
        let m = TernaryMatrix::from_codes(&codes, rows, cols, 0.02).expect("matrix");
        let x: Vec<f32> = (0..cols)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let a = quantize_acts(&x);
        let mut out = vec![0f32; rows];
        g.throughput(Throughput::Bytes(m.nbytes() as u64));
        for k in Kernel::available() {
            g.bench_function(format!("{name} {k:?}"), |b| {
                b.iter(|| matvec(k, &m, &a, &mut out, None).expect("matvec"))
            });
        }
    }
    g.finish();
}

fn decode_batch(c: &mut Criterion) {
    const PROMPT: usize = 16;
    const STEPS: usize = 8;
    let cfg = ModelConfig::preset("small", 8192).expect("preset");
    let params = ParamStore::init(&cfg, 1, &Device::Cpu).expect("weights");
    let bytes = gguf_writer_parts(&cfg, &params, None, GgmlType::Q8_0)
        .and_then(|w| w.to_bytes())
        .expect("gguf");
    drop(params);
    let file = GgufFile::parse(bytes).expect("parse");
    let mut e = Engine::from_gguf(&file, 1).expect("engine");
    let vocab = cfg.vocab_size as u32;
    let tok = |r: usize, t: usize| ((r * 7919 + t * 104_729 + 13) as u32) % vocab;
    let mut g = c.benchmark_group("decode-batch");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    for b in [1usize, 4, 16] {
        let template: Vec<Sequence> = (0..b)
            .map(|r| {
                let mut s = e.new_sequence();
                let p: Vec<u32> = (0..PROMPT).map(|t| tok(r, t)).collect();
                e.prefill(&mut s, &p).expect("prefill");
                s
            })
            .collect();
        g.throughput(Throughput::Elements((b * STEPS) as u64));
        g.bench_function(format!("forward_batch B={b}"), |bench| {
            bench.iter_batched_ref(
                || template.clone(),
                |seqs| {
                    for t in 0..STEPS {
                        let tokens: Vec<u32> = (0..b).map(|r| tok(r, PROMPT + t)).collect();
                        let mut refs: Vec<&mut Sequence> = seqs.iter_mut().collect();
                        std::hint::black_box(e.forward_batch(&mut refs, &tokens).expect("step"));
                    }
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("separate B={b}"), |bench| {
            bench.iter_batched_ref(
                || template.clone(),
                |seqs| {
                    for t in 0..STEPS {
                        for (r, s) in seqs.iter_mut().enumerate() {
                            let logits = e.forward_batch(&mut [s], &[tok(r, PROMPT + t)]);
                            std::hint::black_box(logits.expect("step"));
                        }
                    }
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench, decode_batch);
criterion_main!(benches);
