//! Training throughput of the trainer: `bench_train PRESET BATCH SEQ [STEPS] [KERNELS]`, on the
//! KJV corpus (vocabulary 1024), after 3 warm-up steps; KERNELS is `fused` (default on CPU) or
//! `candle` (autograd, the reference). Compared with
//! scripts/bitnet_torch_train_reference.py by scripts/bench-bitnet-train.sh.

use std::time::Instant;

use candle_core::Device;
use magnet_bitnet::train::{prepare_data, Kernels, TrainConfig, Trainer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let mut c = TrainConfig::default();
    c.model.preset = arg(0, "tiny");
    c.train.batch_size = arg(1, "16").parse()?;
    c.train.seq_len = arg(2, "64").parse()?;
    c.model.max_seq_len = Some(c.train.seq_len);
    let steps: usize = arg(3, "20").parse()?;
    let kernels = arg(4, "auto");
    c.train.kernels = match kernels.as_str() {
        "auto" => Kernels::Auto,
        "fused" => Kernels::Fused,
        "candle" => Kernels::Candle,
        other => {
            return Err(format!("KERNELS must be auto, fused or candle, got {other:?}").into())
        }
    };
    c.train.steps = steps + 3;
    c.data.vocab_size = 1024;
    c.data.tokenizer = "runs/bench/tokenizer-1024.json".into();
    c.data.shards = "runs/bench/shards-1024".into();
    let data = prepare_data(&c)?;
    let mut t = Trainer::new(c.clone(), data, Device::Cpu)?;
    t.run_steps(3)?;
    let t0 = Instant::now();
    let s = t.run_steps(steps)?;
    let tps = (steps * c.train.batch_size * c.train.seq_len) as f64 / t0.elapsed().as_secs_f64();
    println!(
        "magnet-bitnet {} quantized=true kernels={kernels} threads={} batch={} seq={}: {tps:.0} tok/s ({steps} steps, last loss {:.3})",
        c.model.preset,
        rayon::current_num_threads(),
        c.train.batch_size,
        c.train.seq_len,
        s.last().map(|x| x.loss).unwrap_or(f64::NAN)
    );
    Ok(())
}
