//! Learning quality and training throughput: trains a preset and its float twin on the same data,
//! steps and token budget and prints both validation losses, the relative gap and tokens/s.
//!
//! `bench_quality PRESET STEPS BATCH SEQ [LR] [VOCAB] [OUT_DIR]` (see scripts/bench-bitnet-quality.sh).
//! The corpus is data/text/kjv.txt (run from the repository root). Environment: `WARMUP`, `DECAY`
//! (schedule fractions), `ONLY=ternary` or `ONLY=float` (one model only, e.g. to run both
//! at once or to tune a preset's run), `EVAL_WINDOWS` (validation windows per evaluation), `SEED`
//! (initialisation and data order; default 0).

use magnet_bitnet::train::{train, TrainConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let preset = arg(0, "tiny");
    let steps: usize = arg(1, "300").parse()?;
    let batch: usize = arg(2, "16").parse()?;
    let seq: usize = arg(3, "64").parse()?;
    let lr: f64 = arg(4, "4e-3").parse()?;
    let vocab: usize = arg(5, "1024").parse()?;
    let out = std::path::PathBuf::from(arg(6, "runs/quality"));
    let mut res = Vec::new();
    let env_f = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<f64>().ok());
    let modes: &[bool] = match std::env::var("ONLY").as_deref() {
        Ok("ternary") => &[true],
        Ok("float") => &[false],
        _ => &[true, false],
    };
    for &quantized in modes {
        let mut c = TrainConfig::default();
        c.model.preset = preset.clone();
        c.model.quantized = quantized;
        c.model.max_seq_len = Some(seq);
        c.data.vocab_size = vocab;
        c.data.tokenizer = out.join(format!("tokenizer-{vocab}.json"));
        c.data.shards = out.join(format!("shards-{vocab}"));
        c.train.steps = steps;
        c.train.batch_size = batch;
        c.train.seq_len = seq;
        c.train.lr = lr;
        if let Some(w) = env_f("WARMUP") {
            c.train.warmup_frac = w;
        }
        if let Some(w) = env_f("EVAL_WINDOWS") {
            c.train.eval_windows = w as usize;
        }
        if let Some(s) = env_f("SEED") {
            c.train.seed = s as u64;
        }
        if let Some(d) = env_f("DECAY") {
            c.train.decay_frac = d;
        }
        c.train.eval_every = (steps / 4).max(1);
        c.train.out_dir = out.join(format!("{preset}-quantized-{quantized}"));
        let r = train(&c, None, false)?;
        println!(
            "{preset} quantized={quantized}: final val loss {:.4} (unigram entropy {:.4}), {:.0} train tok/s, curve {:?}",
            r.final_val_loss, r.val_unigram_entropy, r.tokens_per_s, r.val_losses
        );
        res.push(r.final_val_loss);
    }
    let [t, f] = res[..] else {
        return Ok(());
    };
    println!(
        "{preset}: ternary {t:.4}  float twin {f:.4}  gap {:.2}%  ({steps} steps x {batch} x {seq} = {} tokens)",
        100.0 * (t - f) / f,
        steps * batch * seq
    );
    Ok(())
}
