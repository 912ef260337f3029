//! The BitNet-LM domain's trainer: the phase-wise search of [`crate::lm`] over the real BitNet
//! b1.58 engine (`magnet_bitnet::train::Trainer`: ternary BitLinear LLaMA, AdamW, WSD schedule,
//! two-stage weight decay, accumulation, clipping) on the `tiny` preset and real text.
//!
//! Every trial builds a [`TrainConfig`] from an [`LmConfig`] (width, depth, heads from a fixed
//! head width of 64, KV heads from the GQA ratio, SwiGLU width from the FFN ratio rounded up
//! to the TQ2_0 block of 256, context as sequence length and model context, LR, schedule,
//! β2, weight decay, accumulation), trains a fresh model for the given steps on CPU and returns
//! [`Trainer::eval`]'s validation loss over a fixed number of validation *tokens* (so configs
//! with different contexts are scored on the same text).
//!
//! Guarantees: the tokenizer and shards are made once in a work directory; every trial starts
//! from weights seeded by the trial seed; the validation split (every `val_every`-th
//! document) is never trained on. Not guaranteed: that small-step rankings hold at full
//! scale — the reason the top-3 are re-validated at 4× steps.

use crate::lm::{Grid, Group, LmConfig, LmError, LmTrainer};
use crate::lm_loop::{LmProbe, LmProber};
use magnet_bitnet::config::QK_TERNARY;
use magnet_bitnet::data::TokenData;
use magnet_bitnet::train::{TrainConfig, Trainer};
use std::path::Path;

/// Head width of every searched shape (the tiny preset's).
pub const HEAD_DIM: usize = 64;

/// Drives the BitNet engine's trainer.
pub struct BitnetTrainer {
    data: TokenData,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Validation tokens scored per trial (split into windows of the config's context).
    pub eval_tokens: usize,
}

fn err(e: magnet_bitnet::BitnetError) -> LmError {
    LmError(e.to_string())
}

impl BitnetTrainer {
    /// Trains a byte-level BPE of `vocab_size` on `corpus`, tokenizes it into shards under
    /// `work` (every `val_every`-th 50-line document held out) and keeps the tokens in memory.
    pub fn prepare(
        corpus: &Path,
        work: &Path,
        vocab_size: usize,
        val_every: usize,
    ) -> Result<Self, LmError> {
        let mut c = TrainConfig::default();
        c.data.corpus = corpus.to_path_buf();
        c.data.tokenizer = work.join("tokenizer.json");
        c.data.shards = work.join("shards");
        c.data.vocab_size = vocab_size;
        c.data.val_every = val_every;
        c.validate().map_err(err)?;
        let data = magnet_bitnet::train::prepare_data(&c).map_err(err)?;
        Ok(BitnetTrainer {
            data,
            batch_size: 8,
            eval_tokens: 4096,
        })
    }

    /// Vocabulary size of the trained tokenizer.
    pub fn vocab_size(&self) -> usize {
        self.data.meta.vocab_size
    }

    /// SHA-256 (hex) of the tokenized training and validation streams: the data set's identity
    /// in the knowledge base and the trial log.
    pub fn dataset_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for s in [&self.data.train, &self.data.val] {
            h.update((s.len() as u64).to_le_bytes());
            for t in s.iter() {
                h.update(t.to_le_bytes());
            }
        }
        hex::encode(h.finalize())
    }

    /// Validation tokens available.
    pub fn val_tokens(&self) -> usize {
        self.data.val.len()
    }

    /// The tiny preset's shape and the engine's default optimiser settings, as the search's
    /// starting point.
    pub fn start_config() -> LmConfig {
        let t = TrainConfig::default().train;
        LmConfig {
            d_model: 256,
            layers: 2,
            lr: t.lr,
            warmup: t.warmup_frac,
            decay: t.decay_frac,
            beta2: t.beta2,
            weight_decay: t.weight_decay,
            ffn_mult: 2.0,
            context: 32,
            gqa_ratio: 2,
            grad_accum: 1,
        }
    }

    /// A fresh model for `cfg` trained `steps` steps, with its per-step training losses.
    fn trained(
        &self,
        cfg: &LmConfig,
        steps: usize,
        seed: u64,
    ) -> Result<(Trainer, Vec<f64>), LmError> {
        let tc = self.train_config(cfg, steps, seed);
        let device = magnet_bitnet::train::device("cpu").map_err(err)?;
        let mut tr = Trainer::new(tc, self.data.clone(), device).map_err(err)?;
        let curve = tr.run_steps(steps).map_err(err)?;
        Ok((tr, curve.iter().map(|s| s.loss).collect()))
    }

    /// The engine's training config for `cfg` (validated by the engine).
    pub fn train_config(&self, cfg: &LmConfig, steps: usize, seed: u64) -> TrainConfig {
        let mut c = TrainConfig::default();
        c.data.vocab_size = self.vocab_size();
        c.model.preset = "tiny".into();
        c.model.quantized = true;
        let heads = (cfg.d_model / HEAD_DIM).max(1);
        c.model.hidden_size = Some(cfg.d_model);
        c.model.num_layers = Some(cfg.layers);
        c.model.num_heads = Some(heads);
        c.model.num_kv_heads = Some((heads / cfg.gqa_ratio.max(1)).max(1));
        let ffn = (cfg.ffn_mult * cfg.d_model as f64 / QK_TERNARY as f64).ceil() as usize;
        c.model.intermediate_size = Some(ffn.max(1) * QK_TERNARY);
        c.model.max_seq_len = Some(cfg.context);
        let t = &mut c.train;
        t.steps = steps;
        t.batch_size = self.batch_size;
        t.seq_len = cfg.context;
        t.grad_accum = cfg.grad_accum.max(1);
        t.lr = cfg.lr;
        t.warmup_frac = cfg.warmup;
        t.decay_frac = cfg.decay;
        t.beta2 = cfg.beta2;
        t.weight_decay = cfg.weight_decay;
        t.eval_windows = (self.eval_tokens / cfg.context.max(1)).max(1);
        t.eval_every = steps.max(1);
        t.seed = seed;
        t.device = "cpu".into();
        c
    }
}

impl LmTrainer for BitnetTrainer {
    fn supports(&self, _g: Group) -> bool {
        true
    }

    fn train_eval(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<f64, LmError> {
        let (tr, _) = self.trained(cfg, steps, seed)?;
        let loss = tr.eval().map_err(err)?;
        if !loss.is_finite() {
            return Err(LmError(format!("validation loss is {loss} for {cfg:?}")));
        }
        Ok(loss)
    }

    /// Values valid for BitLinear (widths multiples of 256, heads of width 64, KV heads
    /// dividing the query heads, the SwiGLU width rounded up to 256).
    fn variants(&self, g: Group, base: &LmConfig) -> Vec<LmConfig> {
        let heads = (base.d_model / HEAD_DIM).max(1);
        let grid = Grid {
            architecture: vec![(256, 1), (256, 2), (512, 1)],
            lr: vec![1e-3, 3e-3, 1e-2],
            schedule: vec![(0.01, 0.15), (0.1, 0.3), (0.0, 0.5)],
            beta2_weight_decay: vec![(0.95, 0.1), (0.98, 0.1), (0.99, 0.0)],
            ffn_mult: vec![2.0, 2.67, 4.0],
            context: vec![32, 64],
            gqa_ratio: [1, 2, 4]
                .into_iter()
                .filter(|&r| r <= heads && heads.is_multiple_of(r))
                .collect(),
            grad_accum: vec![1, 2],
        };
        grid.variants(g, base)
    }
}

impl LmProber for BitnetTrainer {
    /// Trains `cfg` as `train_eval` does, then reads per-token losses over the same validation
    /// windows [`Trainer::eval`] scores ([`Trainer::token_losses`]) and the in-sample loss over
    /// as many windows spread evenly over the training stream.
    fn probe(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<LmProbe, LmError> {
        let (tr, curve) = self.trained(cfg, steps, seed)?;
        let t = cfg.context.max(1);
        let (train, val) = (&self.data.train, &self.data.val);
        let windows = (self.eval_tokens / t)
            .max(1)
            .min(val.len().saturating_sub(1) / t);
        if windows == 0 || train.len() <= t + 1 {
            return Err(LmError(format!(
                "too few tokens to probe a context of {t} ({} validation, {} training)",
                val.len(),
                train.len()
            )));
        }
        let starts: Vec<usize> = (0..windows).map(|w| w * t).collect();
        let losses = tr.token_losses(val, &starts).map_err(err)?;
        let targets = starts
            .iter()
            .map(|&s| val[s + 1..s + t + 1].to_vec())
            .collect();
        let stride = ((train.len() - t - 1) / windows).max(1);
        let train_starts: Vec<usize> = (0..windows)
            .map(|w| w * stride)
            .filter(|&s| s + t < train.len())
            .collect();
        let train_loss = tr.eval_windows(train, &train_starts).map_err(err)?;
        let mut train_counts = vec![0u64; self.vocab_size()];
        for &tok in train.iter() {
            if let Some(c) = train_counts.get_mut(tok as usize) {
                *c += 1;
            }
        }
        Ok(LmProbe {
            train_counts,
            targets,
            losses,
            train_loss,
            curve,
        })
    }
}
