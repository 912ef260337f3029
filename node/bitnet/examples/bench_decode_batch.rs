//! Batched decode benchmark, interleaved: aggregate tokens/s of [`Engine::forward_batch`] over B
//! sequences against B separate single-sequence steps (what [`Engine::forward`] runs per call),
//! alternating the two within every round so that a loaded machine moves both alike.
//!
//! `cargo run --profile bench -p magnet-bitnet --example bench_decode_batch -- [PRESET] [ROUNDS]`
//! (default `small`, 5 rounds). Random weights, vocabulary 8192, Q8_0 head, one thread, best
//! kernel; each sequence is prefilled with 16 tokens, then decodes 8 timed tokens per round.

use std::time::Instant;

use candle_core::Device;
use magnet_bitnet::export::gguf_writer_parts;
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::infer::{Engine, Sequence};
use magnet_bitnet::{ModelConfig, ParamStore};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let preset = args.next().unwrap_or_else(|| "small".into());
    let rounds: usize = args
        .next()
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    const VOCAB: usize = 8192;
    const PROMPT: usize = 16;
    const STEPS: usize = 8;
    let cfg = ModelConfig::preset(&preset, VOCAB)?;
    let params = ParamStore::init(&cfg, 1, &Device::Cpu)?;
    let bytes = gguf_writer_parts(&cfg, &params, None, GgmlType::Q8_0)?.to_bytes()?;
    drop(params);
    let mut e = Engine::from_gguf(&GgufFile::parse(bytes)?, 1)?;
    let tok = |r: usize, t: usize| ((r * 7919 + t * 104_729 + 13) % VOCAB) as u32;
    println!(
        "| preset | kernel | B | forward_batch tok/s (median of {rounds}) | separate tok/s | ratio (median of per-round ratios) | per-round ratios |"
    );
    println!("|---|---|---|---|---|---|---|");
    for b in [1usize, 4, 16] {
        let mut template = Vec::new();
        for r in 0..b {
            let mut s = e.new_sequence();
            let p: Vec<u32> = (0..PROMPT).map(|t| tok(r, t)).collect();
            e.prefill(&mut s, &p)?;
            template.push(s);
        }
        let (mut batched, mut separate, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            let mut seqs = template.clone();
            let t0 = Instant::now();
            for t in 0..STEPS {
                let tokens: Vec<u32> = (0..b).map(|r| tok(r, PROMPT + t)).collect();
                let mut refs: Vec<&mut Sequence> = seqs.iter_mut().collect();
                std::hint::black_box(e.forward_batch(&mut refs, &tokens)?);
            }
            let tb = (b * STEPS) as f64 / t0.elapsed().as_secs_f64();
            let mut seqs = template.clone();
            let t0 = Instant::now();
            for t in 0..STEPS {
                for (r, s) in seqs.iter_mut().enumerate() {
                    std::hint::black_box(e.forward_batch(&mut [s], &[tok(r, PROMPT + t)])?);
                }
            }
            let ts = (b * STEPS) as f64 / t0.elapsed().as_secs_f64();
            batched.push(tb);
            separate.push(ts);
            ratios.push(tb / ts);
        }
        let per: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        println!(
            "| {preset} | {:?} | {b} | {:.0} | {:.0} | {:.2} | {} |",
            e.kernel(),
            median(batched),
            median(separate),
            median(ratios),
            per.join(" · ")
        );
    }
    Ok(())
}
