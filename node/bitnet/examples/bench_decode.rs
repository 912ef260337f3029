//! Decode benchmark: tokens/s of the in-process ternary engine at a preset's shape, the ternary
//! matrix-vector products alone, and the memory-bandwidth bound.
//!
//! `cargo run --release -p magnet-bitnet --example bench_decode -- PRESET [THREADS...]`
//! (see scripts/bench-bitnet-decode.sh). Weights are random (speed does not depend on their values).

use std::time::Instant;

use candle_core::Device;
use magnet_bitnet::export::gguf_writer_parts;
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::infer::Engine;
use magnet_bitnet::tokenizer::Tokenizer;
use magnet_bitnet::{ModelConfig, ParamStore};

/// Read bandwidth (bytes/s) of `threads` threads each summing its part of a buffer far larger
/// than the caches (a STREAM-like "sum" kernel: decode only reads weights).
fn read_bandwidth(threads: usize) -> f64 {
    let v: Vec<u64> = (0..(512u64 << 20) / 8).collect();
    let part = v.len() / threads;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let hs: Vec<_> = v
                .chunks(part)
                .map(|c| {
                    s.spawn(move || {
                        let mut acc = [0u64; 8];
                        for c in c.chunks_exact(8) {
                            for (a, x) in acc.iter_mut().zip(c) {
                                *a = a.wrapping_add(*x);
                            }
                        }
                        acc.iter().fold(0u64, |a, b| a.wrapping_add(*b))
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or(0)).collect()
        });
        std::hint::black_box(sums);
        best = best.min(t.elapsed().as_secs_f64());
    }
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
    // A real tokenizer (TOKENIZER=tokenizer.json) sets the vocabulary and goes into the file, so
    // llama.cpp can load the same GGUF (OUT_GGUF=path saves it).
    let tokenizer = match std::env::var("TOKENIZER") {
        Ok(p) => Some(Tokenizer::load(std::path::Path::new(&p))?),
        Err(_) => None,
    };
    let vocab = match (&tokenizer, preset.as_str()) {
        (Some(t), _) => t.vocab_size(),
        (None, "tiny") => 1024,
        (None, "small") => 8192,
        _ => 128_256,
    };
    let cfg = ModelConfig::preset(&preset, vocab)?;
    eprintln!(
        "building random {preset} ({:.1}M params)…",
        cfg.num_params() as f64 / 1e6
    );
    let params = ParamStore::init(&cfg, 1, &Device::Cpu)?;
    let bytes = gguf_writer_parts(&cfg, &params, tokenizer.as_ref(), embed)?.to_bytes()?;
    drop(params);
    if let Ok(out) = std::env::var("OUT_GGUF") {
        std::fs::write(&out, &bytes)?;
        eprintln!("wrote {out} ({:.1} MB)", bytes.len() as f64 / 1e6);
    }
    let g = GgufFile::parse(bytes)?;
    println!("| preset | threads | kernel | decode tok/s | ternary matvecs ms/token | ternary GB/s | weight MB/token | read bw GB/s | bound tok/s | % of bound |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for &t in &threads {
        let bw = read_bandwidth(t);
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
        // The matvec pass alone at the same thread count.
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
            "| {preset} | {t} | {:?} | {tps:.1} | {:.3} | {:.1} | {:.1} | {:.1} | {bound:.1} | {:.0}% |",
            e.kernel(),
            mv * 1e3,
            tb / mv / 1e9,
            total / 1e6,
            bw / 1e9,
            100.0 * tps / bound
        );
    }
    Ok(())
}
