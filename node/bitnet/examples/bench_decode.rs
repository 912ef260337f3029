//! Decode benchmark: tokens/s of the in-process ternary engine at a preset's shape, the ternary
//! matrix-vector products alone, and the memory-bandwidth bound.
//!
//! `cargo run --release -p magnet-bitnet --example bench_decode -- PRESET [THREADS...]`
//! (see scripts/bench-bitnet.sh). Weights are random (speed does not depend on their values).

use std::time::Instant;

use candle_core::Device;
use magnet_bitnet::export::gguf_writer_parts;
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::infer::Engine;
use magnet_bitnet::{ModelConfig, ParamStore};

/// Single-thread read bandwidth (bytes/s) over a buffer far larger than the caches.
fn read_bandwidth() -> f64 {
    let v: Vec<u64> = (0..(256u64 << 20) / 8).collect();
    let mut best = f64::MAX;
    let mut sink = 0u64;
    for _ in 0..5 {
        let t = Instant::now();
        let mut acc = [0u64; 8];
        for c in v.chunks_exact(8) {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = a.wrapping_add(*x);
            }
        }
        sink = sink.wrapping_add(acc.iter().sum::<u64>());
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    (v.len() * 8) as f64 / best
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let preset = args.first().cloned().unwrap_or_else(|| "small".into());
    let threads: Vec<usize> = if args.len() > 1 {
        args[1..]
            .iter()
            .map(|a| a.parse())
            .collect::<Result<_, _>>()?
    } else {
        vec![1, 2]
    };
    let embed = match std::env::var("EMBED").as_deref() {
        Ok("f16") => GgmlType::F16,
        Ok("f32") => GgmlType::F32,
        _ => GgmlType::Q8_0,
    };
    let vocab = match preset.as_str() {
        "tiny" => 1024,
        "small" => 8192,
        _ => 128_256,
    };
    let cfg = ModelConfig::preset(&preset, vocab)?;
    eprintln!(
        "building random {preset} ({:.1}M params)…",
        cfg.num_params() as f64 / 1e6
    );
    let params = ParamStore::init(&cfg, 1, &Device::Cpu)?;
    let bytes = gguf_writer_parts(&cfg, &params, None, embed)?.to_bytes()?;
    drop(params);
    let g = GgufFile::parse(bytes)?;
    let bw = read_bandwidth();
    println!("| preset | threads | kernel | decode tok/s | ternary matvecs ms/token | ternary GB/s | weight MB/token | bound tok/s (1-thread bw {:.1} GB/s) | % of bound |", bw / 1e9);
    println!("|---|---|---|---|---|---|---|---|---|");
    for &t in &threads {
        let mut e = Engine::from_gguf(&g, t)?;
        let n = 48.min(cfg.max_seq_len - 1);
        for i in 0..4 {
            e.forward(i)?;
        }
        e.reset();
        let t0 = Instant::now();
        for i in 0..n as u32 {
            e.forward(i % cfg.vocab_size as u32)?;
        }
        let tps = n as f64 / t0.elapsed().as_secs_f64();
        let reps = 20;
        let t1 = Instant::now();
        for _ in 0..reps {
            e.ternary_matvec_pass()?;
        }
        let mv = t1.elapsed().as_secs_f64() / reps as f64;
        let tb = e.ternary_bytes() as f64;
        let total = tb + e.head_bytes() as f64;
        let bound = bw / total;
        println!(
            "| {preset} | {t} | {:?} | {tps:.1} | {:.3} | {:.1} | {:.1} | {bound:.1} | {:.0}% |",
            e.kernel(),
            mv * 1e3,
            tb / mv / 1e9,
            total / 1e6,
            100.0 * tps / bound
        );
    }
    Ok(())
}
