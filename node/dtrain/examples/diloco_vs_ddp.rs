//! DiLoCo against synchronous data-parallel training at equal compute, on BitNet `tiny` and the
//! shipped KJV corpus; writes a Markdown report.
//!
//! ```sh
//! cargo run -p magnet-dtrain --example diloco_vs_ddp -- \
//!     --workers 2 --inner-steps 50 --rounds 4 --out docs/bench/diloco-vs-ddp.md
//! ```

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use magnet_bitnet::train::{prepare_data, TrainConfig};
use magnet_diloco::compress::CompressionConfig;
use magnet_diloco::merge::MergePolicy;
use magnet_dtrain::{run_ddp, run_diloco, SimConfig};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| default.to_string())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "diloco_vs_ddp: DiLoCo vs synchronous data-parallel at equal compute (BitNet tiny)\n\n\
             --workers N       workers (default 2)\n\
             --inner-steps H   inner AdamW steps per round (default 50)\n\
             --rounds R        outer rounds (default 4)\n\
             --batch B         sequences per worker step (default 8)\n\
             --seq T           tokens per sequence (default 64)\n\
             --lines L         KJV verses used (default 12000)\n\
             --work DIR        tokenizer/shards cache (default runs/bench-diloco)\n\
             --out FILE        Markdown report (default docs/bench/diloco-vs-ddp.md)\n\
             --outer-lr-permille E        outer learning rate η ×1000 (default 700)\n\
             --outer-momentum-permille M  outer Nesterov momentum μ ×1000 (default 900)\n\
             --int8-downloads C  workers download the merged outer step as int8, one scale per C\n\
                                 values (default 0: the merged parameters as fp32)"
        );
        return Ok(());
    }
    let workers: usize = arg(&args, "--workers", "2").parse()?;
    let h: usize = arg(&args, "--inner-steps", "50").parse()?;
    let rounds: usize = arg(&args, "--rounds", "4").parse()?;
    let batch: usize = arg(&args, "--batch", "8").parse()?;
    let seq: usize = arg(&args, "--seq", "64").parse()?;
    let lines: usize = arg(&args, "--lines", "12000").parse()?;
    let work = PathBuf::from(arg(&args, "--work", "runs/bench-diloco"));
    let out = PathBuf::from(arg(&args, "--out", "docs/bench/diloco-vs-ddp.md"));
    let outer_lr: u32 = arg(&args, "--outer-lr-permille", "700").parse()?;
    let outer_mu: u32 = arg(&args, "--outer-momentum-permille", "900").parse()?;
    let update_chunk: u32 = arg(&args, "--int8-downloads", "0").parse()?;
    let policy = MergePolicy {
        lr_permille: outer_lr,
        momentum_permille: outer_mu,
        update_chunk,
        ..MergePolicy::default()
    };
    policy.validate()?;
    // Bytes per parameter per round, up + down (int8 with a 4-byte scale per 256 values up).
    let per_round = 1.0
        + 4.0 / 256.0
        + if update_chunk > 0 {
            1.0 + 4.0 / f64::from(update_chunk)
        } else {
            4.0
        };

    std::fs::create_dir_all(&work)?;
    let corpus = work.join(format!("kjv-{lines}.txt"));
    if !corpus.is_file() {
        let text = std::fs::read_to_string("data/text/kjv.txt")?;
        let part: String = text.lines().take(lines).map(|l| format!("{l}\n")).collect();
        std::fs::write(&corpus, part)?;
    }
    let mut cfg = TrainConfig::default();
    cfg.data.corpus = corpus;
    cfg.data.vocab_size = 512;
    cfg.data.tokenizer = work.join(format!("tokenizer-{lines}.json"));
    cfg.data.shards = work.join(format!("shards-{lines}"));
    cfg.train.batch_size = batch;
    cfg.train.seq_len = seq;
    cfg.train.lr = 3e-3;
    cfg.train.warmup_frac = 0.05;
    cfg.train.eval_windows = 64;
    cfg.train.out_dir = work.join("run");
    let data = prepare_data(&cfg)?;
    let compression = CompressionConfig::default();
    let sim = SimConfig {
        train: cfg,
        workers,
        inner_steps: h,
        rounds,
        compression: Some(compression),
        policy,
        faults: vec![],
    };

    let t0 = Instant::now();
    let total = workers * h * rounds;
    let mut done = 0usize;
    let dl = run_diloco(&sim, &data, || {
        done += 1;
        if done.is_multiple_of(25) {
            eprintln!("diloco: {done}/{total} worker steps");
        }
    })?;
    let t_dl = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut done = 0usize;
    let dp = run_ddp(&sim, &data, || {
        done += 1;
        if done.is_multiple_of(25) {
            eprintln!("ddp: {done}/{} steps", h * rounds);
        }
    })?;
    let t_dp = t1.elapsed().as_secs_f64();

    let ratio = dp.bytes_total.total() as f64 / dl.bytes_total.total() as f64;
    let ratio_up = dp.bytes_total.up as f64 / dl.bytes_total.up as f64;
    let gap = (dl.final_val_loss - dp.final_val_loss) / dp.final_val_loss * 100.0;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let mut md = String::new();
    writeln!(
        md,
        "# DiLoCo vs synchronous data-parallel (BitNet `tiny`, in-process)\n"
    )?;
    writeln!(
        md,
        "Produced by `scripts/bench-diloco.sh` (`cargo run -p magnet-dtrain --example diloco_vs_ddp`).\n"
    )?;
    writeln!(md, "| setting | value |\n|---|---|")?;
    writeln!(
        md,
        "| model | BitNet b1.58 `tiny`, {} parameters, vocab 512 |",
        dl.params
    )?;
    writeln!(md, "| data | first {lines} KJV verses, one contiguous shard per worker, shared validation split |")?;
    writeln!(md, "| workers N | {workers} (sequential in one process) |")?;
    writeln!(
        md,
        "| inner steps H | {h} (AdamW, lr 3e-3, WSD schedule over the whole run) |"
    )?;
    writeln!(md, "| rounds | {rounds} |")?;
    writeln!(md, "| batch | {batch} × {seq} tokens per worker step |")?;
    writeln!(md, "| tokens (both) | {} |", dl.tokens)?;
    writeln!(
        md,
        "| compression | int8, one f32 scale per {} values, error feedback; downloads {} |",
        compression.chunk,
        if update_chunk > 0 {
            format!("the outer step as int8, one f32 scale per {update_chunk} values")
        } else {
            "the merged parameters as fp32".to_string()
        }
    )?;
    writeln!(
        md,
        "| outer optimizer | Nesterov η = {}, μ = {} |",
        f64::from(outer_lr) / 1000.0,
        f64::from(outer_mu) / 1000.0
    )?;
    writeln!(
        md,
        "| DDP bytes | fp32 gradient up + fp32 average down, every step, per worker |\n"
    )?;
    writeln!(
        md,
        "| | DiLoCo | data-parallel | ratio |\n|---|---|---|---|"
    )?;
    writeln!(
        md,
        "| bytes up (all workers) | {} ({:.2} MiB) | {} ({:.1} MiB) | {:.1}× |",
        dl.bytes_total.up,
        mib(dl.bytes_total.up),
        dp.bytes_total.up,
        mib(dp.bytes_total.up),
        ratio_up
    )?;
    writeln!(
        md,
        "| bytes down (all workers) | {} ({:.2} MiB) | {} ({:.1} MiB) | {:.1}× |",
        dl.bytes_total.down,
        mib(dl.bytes_total.down),
        dp.bytes_total.down,
        mib(dp.bytes_total.down),
        dp.bytes_total.down as f64 / dl.bytes_total.down as f64
    )?;
    writeln!(
        md,
        "| bytes total | {} | {} | **{ratio:.1}×** |",
        dl.bytes_total.total(),
        dp.bytes_total.total()
    )?;
    writeln!(
        md,
        "| final validation loss | {:.4} | {:.4} | gap **{gap:+.2} %** |",
        dl.final_val_loss, dp.final_val_loss
    )?;
    writeln!(
        md,
        "| wall time (2 cores, shared) | {t_dl:.0} s | {t_dp:.0} s | |\n"
    )?;
    writeln!(
        md,
        "Initial validation loss {:.4}. Per round (merged vs mean local):\n",
        dl.initial_val_loss
    )?;
    writeln!(
        md,
        "| round | mean local val loss | merged val loss |\n|---|---|---|"
    )?;
    for r in &dl.rounds {
        writeln!(
            md,
            "| {} | {:.4} | {:.4} |",
            r.round,
            r.mean_local_val_loss(),
            r.merged_val_loss
        )?;
    }
    writeln!(
        md,
        "\nBytes per worker per round: up = int8 Δ ≈ 1.016 B/param, down = {} B/param; \
         data-parallel moves 8 B/param per step. The ratio is therefore ≈ 8H / {:.2} ≈ {:.0}× at \
         H = {h} (≥ 500× needs H ≈ 315 with fp32 downloads, H ≈ 127 with int8 downloads).",
        if update_chunk > 0 { "≈ 1.016" } else { "4" },
        per_round,
        8.0 * h as f64 / per_round
    )?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, &md)?;
    print!("{md}");
    Ok(())
}
