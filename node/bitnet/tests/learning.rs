//! The tiny preset learns: on the shipped KJV corpus its validation loss ends at least 1 nat/token
//! below the unigram entropy of the validation split (the best context-free predictor).

use std::path::Path;

use magnet_bitnet::train::{train, TrainConfig};

#[test]
fn tiny_preset_ends_at_least_one_nat_below_the_unigram_entropy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = TrainConfig::default();
    c.data.corpus = Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data/text/kjv.txt");
    c.data.tokenizer = dir.path().join("tokenizer.json");
    c.data.shards = dir.path().join("shards");
    c.data.vocab_size = 512;
    c.train.out_dir = dir.path().join("run");
    // 220 × 8 × 64 = 112,640 tokens. Measured: val 3.973 vs entropy 5.195 (1.22 nats below);
    // 150 steps at lr 5e-3 with the default 1 %/15 % schedule ended 0.99 nats below. A longer
    // decay phase (30 %) is what buys the margin (val 4.235 at step 150 → 3.973 at 220).
    c.train.steps = 220;
    c.train.batch_size = 8;
    c.train.seq_len = 64;
    c.train.lr = 6e-3;
    c.train.warmup_frac = 0.05;
    c.train.decay_frac = 0.3;
    c.train.eval_every = 50;
    c.train.eval_windows = 32;
    let r = train(&c, None, false).unwrap();
    eprintln!(
        "val loss {:.4}, unigram entropy {:.4}, {:.0} tok/s, curve {:?}",
        r.final_val_loss, r.val_unigram_entropy, r.tokens_per_s, r.val_losses
    );
    assert!(
        r.final_val_loss <= r.val_unigram_entropy - 1.0,
        "val loss {} is not 1 nat below the unigram entropy {}",
        r.final_val_loss,
        r.val_unigram_entropy
    );
}
