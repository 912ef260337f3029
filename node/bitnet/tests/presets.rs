//! Every preset builds and takes a training step. The paper-sized presets need several GB of
//! memory and minutes of CPU, so they are `#[ignore]`d in CI:
//! `cargo test --release -p magnet-bitnet --test presets -- --ignored`.

use candle_core::Device;
use magnet_bitnet::data::{ShardMeta, TokenData};
use magnet_bitnet::train::{TrainConfig, Trainer};

fn one_step(preset: &str, vocab: usize) {
    let mut cfg = TrainConfig::default();
    cfg.model.preset = preset.into();
    cfg.train.batch_size = 1;
    cfg.train.seq_len = 16;
    cfg.train.steps = 1;
    let stream: Vec<u32> = (0..4096u64)
        .map(|i| (i * 7919 % vocab as u64) as u32)
        .collect();
    let data = TokenData {
        dir: "synthetic".into(),
        meta: ShardMeta {
            vocab_size: vocab,
            train_tokens: stream.len(),
            val_tokens: stream.len(),
            train_shards: vec![],
            val_shards: vec![],
            val_every: 20,
        },
        train: stream.clone(),
        val: stream,
    };
    let mut t = Trainer::new(cfg, data, Device::Cpu).unwrap();
    assert_eq!(t.params().num_params(), t.model_config().num_params());
    let before = t.params().params_to_vec().unwrap();
    let s = t.train_step().unwrap();
    assert!(s.loss.is_finite() && s.grad_norm > 0.0, "{s:?}");
    assert!(
        (s.loss - (vocab as f64).ln()).abs() < 1.0,
        "initial loss {} is near ln(vocab)",
        s.loss
    );
    assert_ne!(before, t.params().params_to_vec().unwrap());
}

#[test]
fn tiny_and_small_build_and_take_a_step() {
    one_step("tiny", 1024);
    one_step("small", 8192); // ~28M parameters
}

#[test]
#[ignore = "needs ~6 GB of memory and minutes of CPU"]
fn autoresearch_best_builds_and_takes_a_step() {
    one_step("autoresearch-best", 128_256);
}

#[test]
#[ignore = "needs ~10 GB of memory and minutes of CPU"]
fn genkidama_618m_builds_and_takes_a_step() {
    one_step("genkidama-618m", 128_256);
}
