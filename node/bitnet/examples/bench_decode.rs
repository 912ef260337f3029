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
/// than the caches (a STREAM-like "sum" kernel: decode only reads weights): by wall clock, and
/// by the slowest thread's CPU time (the figure that survives a loaded machine).
fn read_bandwidth(threads: usize) -> (f64, f64) {
    let v: Vec<u64> = (0..(512u64 << 20) / 8).collect();
    let part = v.len().div_ceil(threads);
    let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
    for _ in 0..5 {
        let t = Instant::now();
        let res: Vec<(u64, u64)> = std::thread::scope(|s| {
            let hs: Vec<_> = v
                .chunks(part)
                .map(|c| {
                    s.spawn(move || {
                        let c0 = thread_cpu_ns();
                        let mut acc = [0u64; 8];
                        for c in c.chunks_exact(8) {
                            for (a, x) in acc.iter_mut().zip(c) {
                                *a = a.wrapping_add(*x);
                            }
                        }
                        let sum = acc.iter().fold(0u64, |a, b| a.wrapping_add(*b));
                        (sum, thread_cpu_ns() - c0)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or((0, 0))).collect()
        });
        best = best.min(t.elapsed().as_secs_f64());
        let cpu = res.iter().map(|r| r.1).max().unwrap_or(0) as f64 / 1e9;
        best_cpu = best_cpu.min(cpu);
        std::hint::black_box(res);
    }
    let bytes = (v.len() * 8) as f64;
    (bytes / best, bytes / best_cpu)
}

/// CPU time (ns) this thread has run, from `/proc/thread-self/schedstat` (Linux; 0 elsewhere).
/// On a loaded machine, tokens per CPU-second of a one-thread run is the figure that does not
/// depend on how often the scheduler ran us.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
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
    println!("| preset | threads | kernel | decode tok/s | decode tok/CPU-s (1 thread) | ternary matvecs ms/token | matvecs CPU ms/token (1 thread) | ternary GB/s | weight MB/token | read bw GB/s (wall / per CPU-s) | bound tok/s (wall bw) | % of bound | CPU-time bound tok/s | decode % of CPU-time bound (1 thread) | head CPU ms/token (1 thread) |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for &t in &threads {
        let (bw, bw_cpu) = read_bandwidth(t);
        let mut e = Engine::from_gguf(&g, t)?;
        // TOKENS=N decodes N tokens (default 48), e.g. 144 to span llama-bench's -n 16 … -n 144.
        let n = std::env::var("TOKENS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48usize)
            .min(cfg.max_seq_len - 1);
        for i in 0..4 {
            e.forward(i)?;
        }
        e.reset();
        // PROFILE=N decodes N extra rounds of the same tokens first, so that a profiler
        // (`perf record`) sees mostly decode rather than model construction.
        let extra: usize = std::env::var("PROFILE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..extra {
            for i in 0..n as u32 {
                e.forward(i % cfg.vocab_size as u32)?;
            }
            e.reset();
        }
        let t0 = Instant::now();
        let c0 = thread_cpu_ns();
        for i in 0..n as u32 {
            e.forward(i % cfg.vocab_size as u32)?;
        }
        let tps = n as f64 / t0.elapsed().as_secs_f64();
        let cpu_tps = n as f64 / ((thread_cpu_ns() - c0) as f64 / 1e9);
        // The matvec pass alone at the same thread count.
        let reps = 100;
        let t1 = Instant::now();
        let c1 = thread_cpu_ns();
        let mut fastest = f64::MAX;
        for _ in 0..reps {
            let tp = Instant::now();
            e.ternary_matvec_pass()?;
            fastest = fastest.min(tp.elapsed().as_secs_f64());
        }
        let mv = t1.elapsed().as_secs_f64() / reps as f64;
        let mv_cpu = (thread_cpu_ns() - c1) as f64 / 1e9 / reps as f64;
        // The fastest single pass: the figure least moved by other processes (kernel A/B tests).
        eprintln!(
            "ternary matvec pass | threads {t} | fastest of {reps}: {:.3} ms",
            fastest * 1e3
        );
        // The head alone.
        let c2 = thread_cpu_ns();
        for _ in 0..reps {
            e.head_matvec_pass();
        }
        let head_cpu = (thread_cpu_ns() - c2) as f64 / 1e9 / reps as f64;
        let tb = e.ternary_bytes() as f64;
        let total = tb + e.head_bytes() as f64;
        let bound = bw / total;
        println!(
            "| {preset} | {t} | {:?} | {tps:.1} | {} | {:.3} | {} | {:.1} | {:.1} | {:.1} / {:.1} | {bound:.1} | {:.0}% | {:.1} | {} | {} |",
            e.kernel(),
            if t == 1 { format!("{cpu_tps:.1}") } else { "-".into() },
            mv * 1e3,
            if t == 1 { format!("{:.3}", mv_cpu * 1e3) } else { "-".into() },
            tb / mv / 1e9,
            total / 1e6,
            bw / 1e9,
            bw_cpu / 1e9,
            100.0 * tps / bound,
            bw_cpu / total,
            if t == 1 { format!("{:.0}%", 100.0 * cpu_tps / (bw_cpu / total)) } else { "-".into() },
            if t == 1 { format!("{:.3}", head_cpu * 1e3) } else { "-".into() },
        );
    }
    Ok(())
}
