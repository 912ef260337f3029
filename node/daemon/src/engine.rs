//! Real BitNet training for the daemon: this worker's shard of the job's corpus, inner AdamW
//! steps from a global checkpoint, pseudo-gradients, validation loss on the job's shared
//! validation split (the worker's own progress metric), and the evaluator's losses on seeded
//! windows of all the job's training tokens (the marginal quality of ADR 0090, [`crate::quality`];
//! never the public validation split, ADR 0093).
//!
//! The job's initial model comes from `job.model_seed` and is the same on every worker (its
//! hash is the job's base checkpoint on chain). Each worker samples its own shard in its own
//! order; its AdamW state persists across rounds (as in DiLoCo).
//!
//! Not guaranteed: bit-identical losses across machines with different SIMD (the evaluation of
//! one checkpoint is deterministic on one machine, and evaluators' scores are compared with a
//! band, not for equality).

use std::path::Path;

use candle_core::Device;
use magnet_bitnet::data::TokenData;
use magnet_bitnet::train::{device, prepare_data, TrainConfig, Trainer};
use magnet_diloco::Checkpoint;
use sha2::{Digest as _, Sha256};

use crate::config::{Fault, JobSection};
use crate::{DaemonError, Result};

/// What one round of inner steps produced.
#[derive(Clone, Debug)]
pub struct RoundWork {
    /// θ_i after the steps.
    pub local: Vec<f32>,
    /// Δ_i = θ_global − θ_i.
    pub delta: Vec<f32>,
    /// Mean training loss over the steps.
    pub train_loss: f64,
    /// Validation loss of θ_i (NaN until measured; see [`Evaluator::eval`]).
    pub local_val_loss: f64,
    /// Tokens trained on.
    pub tokens: u64,
}

/// The training engine of one worker.
pub struct Engine {
    trainer: Trainer,
    params: u64,
    /// SHA-256 of this worker's training tokens (u32 little-endian).
    pub data_hash: [u8; 32],
    /// The job's corpus hash ([`crate::quality::corpus_hash`]: all training tokens, then the
    /// validation split) — what the job's `eval_set_hash` on chain must be.
    pub eval_set_hash: [u8; 32],
    tokens_per_step: u64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Engine({} params)", self.params)
    }
}

fn hash_tokens(t: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    for x in t {
        h.update(x.to_le_bytes());
    }
    h.finalize().into()
}

/// The training config a job section describes (data prepared under `shards`).
pub fn train_config(job: &JobSection, shards: &Path, seed: u64) -> TrainConfig {
    let mut c = TrainConfig::default();
    c.model.preset = job.preset.clone();
    c.data.corpus = job.corpus.clone();
    c.data.tokenizer = job.tokenizer.clone();
    c.data.vocab_size = job.vocab_size;
    c.data.shards = shards.to_path_buf();
    c.train.batch_size = job.batch_size;
    c.train.seq_len = job.seq_len;
    c.train.lr = job.lr;
    c.train.warmup_frac = 0.05;
    c.train.eval_windows = job.eval_windows;
    c.train.steps = job.schedule_steps;
    c.train.seed = seed;
    c.train.out_dir = shards.join("run");
    c
}

/// Largest interleaving block of [`shard`], in tokens.
pub const SHARD_BLOCK: usize = 4096;

/// Worker `i`'s share of the training tokens, of `n` shards: the training tokens cut into
/// blocks (at most [`SHARD_BLOCK`] tokens, and small enough that every shard gets about 16),
/// dealt round-robin. Every shard thus samples the whole corpus, as the validation split and
/// the evaluation windows do (ADR 0093): a worker that trains on data other than its shard
/// gains no better coverage of the data it is scored on. The shards partition the training
/// tokens; a corpus shorter than `n` blocks of 256 is cut into `n` nearly contiguous parts.
pub fn shard(data: &TokenData, i: usize, n: usize) -> TokenData {
    let n = n.max(1);
    let len = data.train.len();
    let block = (len / (n * 16))
        .min(SHARD_BLOCK)
        .max((len / n).min(256))
        .max(1);
    let mut d = data.clone();
    d.train = data
        .train
        .chunks(block)
        .skip(i)
        .step_by(n)
        .flatten()
        .copied()
        .collect();
    d.meta.train_tokens = d.train.len();
    d
}

impl Engine {
    /// Prepares the data (tokenising the corpus into `home/shards` once) and the models: the
    /// training engine on this worker's shard, and a separate [`Evaluator`] holding all the job's
    /// training tokens (the evaluation windows' corpus, ADR 0093), so evaluations never wait
    /// for training (or the reverse). With
    /// [`Fault::Evalfit`] the engine trains on the validation split instead of its shard.
    pub fn open(job: &JobSection, home: &Path, fault: Fault) -> Result<(Engine, Evaluator)> {
        let shards = home.join("shards");
        let base_cfg = train_config(job, &shards, job.model_seed);
        if !job.tokenizer.is_file() {
            return Err(DaemonError::Engine(format!(
                "tokenizer {} is missing: every worker of a job must use the same file \
                 (make one with `magnet-worker tokenizer train`)",
                job.tokenizer.display()
            )));
        }
        let data = prepare_data(&base_cfg)?;
        let dev: Device = device("cpu")?;
        let eval_trainer = Trainer::new(base_cfg, data.clone(), dev.clone())?;
        let base = eval_trainer.params().params_to_vec()?;
        let mut mine = shard(&data, job.shard_index, job.shard_count);
        if fault == Fault::Evalfit {
            // The evalfit adversary fits the public validation split instead of its shard.
            mine.train = data.val.clone();
            mine.meta.train_tokens = mine.train.len();
        }
        let data_hash = hash_tokens(&mine.train);
        let eval_set_hash = crate::quality::corpus_hash(&data.train, &data.val);
        let seed = job
            .model_seed
            .wrapping_add(1)
            .wrapping_add(job.shard_index as u64);
        let cfg = train_config(job, &shards, seed);
        let tokens_per_step =
            (cfg.train.batch_size * cfg.train.seq_len * cfg.train.grad_accum) as u64;
        let trainer = Trainer::new(cfg, mine, dev)?;
        let engine = Engine {
            trainer,
            params: base.len() as u64,
            data_hash,
            eval_set_hash,
            tokens_per_step,
        };
        Ok((
            engine,
            Evaluator {
                trainer: eval_trainer,
                base,
                corpus_hash: eval_set_hash,
                seq_len: job.seq_len,
            },
        ))
    }

    /// Model parameters.
    pub fn params(&self) -> u64 {
        self.params
    }

    /// `steps` inner steps from `global`; with [`Fault::Nan`] the local weights come out NaN.
    pub fn train_round(&mut self, global: &[f32], steps: u32, fault: Fault) -> Result<RoundWork> {
        self.trainer.params().load_from_vec(global)?;
        let mut loss = 0.0;
        // The lazy adversary trains nothing: its Δ is zero.
        let trained = if fault == Fault::Lazy { 0 } else { steps };
        for _ in 0..trained {
            loss += self.trainer.train_step()?.loss;
        }
        let mut local = self.trainer.params().params_to_vec()?;
        if fault == Fault::Nan {
            local.iter_mut().for_each(|x| *x = f32::NAN);
        }
        let local_val_loss = f64::NAN;
        let delta = magnet_diloco::pseudo_gradient(global, &local)
            .map_err(|e| DaemonError::Diloco(e.to_string()))?;
        Ok(RoundWork {
            local,
            delta,
            train_loss: loss / f64::from(steps.max(1)),
            local_val_loss,
            tokens: u64::from(steps) * self.tokens_per_step,
        })
    }
}

/// Measures losses with its own model instance: on the job's validation split
/// ([`Evaluator::eval`]) and on windows of all the job's training tokens
/// ([`Evaluator::eval_at`]).
pub struct Evaluator {
    trainer: Trainer,
    base: Vec<f32>,
    corpus_hash: [u8; 32],
    seq_len: usize,
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("params", &self.base.len())
            .finish()
    }
}

impl Evaluator {
    /// The job's initial model (momentum zero).
    pub fn base_checkpoint(&self) -> Checkpoint {
        Checkpoint::new(self.base.clone())
    }

    /// Tokens the evaluation windows are drawn from: the training tokens of every shard (the
    /// validation split is not among them, ADR 0093).
    pub fn corpus_len(&self) -> usize {
        self.trainer.data().train.len()
    }

    /// [`crate::quality::corpus_hash`] of the corpus this evaluator holds.
    pub fn corpus_hash(&self) -> [u8; 32] {
        self.corpus_hash
    }

    /// Tokens per evaluation window (inputs; a window reads one more).
    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Mean loss of `params` over the corpus windows starting at `starts` (see
    /// [`crate::quality::eval_windows`]); NaN weights give NaN.
    pub fn eval_at(&self, params: &[f32], starts: &[usize]) -> Result<f64> {
        self.check_len(params)?;
        if params.iter().any(|x| !x.is_finite()) {
            return Ok(f64::NAN);
        }
        self.trainer.params().load_from_vec(params)?;
        // Evaluation windows are drawn from the training tokens only: the validation split is
        // public and small enough to fit (the `evalfit` adversary), so it never scores a Δ.
        Ok(self
            .trainer
            .eval_windows(&self.trainer.data().train, starts)?)
    }

    fn check_len(&self, params: &[f32]) -> Result<()> {
        if params.len() != self.base.len() {
            return Err(DaemonError::Diloco(format!(
                "checkpoint has {} parameters, the job's model {}",
                params.len(),
                self.base.len()
            )));
        }
        Ok(())
    }

    /// Validation loss of `params` on the job's validation split (NaN weights give NaN).
    pub fn eval(&self, params: &[f32]) -> Result<f64> {
        if params.len() != self.base.len() {
            return Err(DaemonError::Diloco(format!(
                "checkpoint has {} parameters, the job's model {}",
                params.len(),
                self.base.len()
            )));
        }
        if params.iter().any(|x| !x.is_finite()) {
            return Ok(f64::NAN);
        }
        self.trainer.params().load_from_vec(params)?;
        Ok(self.trainer.eval()?)
    }
}

/// `base − Δ`: the local model a Δ (= θ_global − θ_local) was taken from, i.e. the base with
/// only that Δ applied; `None` when the lengths differ.
pub fn apply_delta(base: &[f32], delta: &[f32]) -> Option<Vec<f32>> {
    (base.len() == delta.len()).then(|| base.iter().zip(delta).map(|(b, d)| b - d).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnet_bitnet::data::ShardMeta;

    fn data(train_tokens: usize) -> TokenData {
        TokenData {
            dir: std::path::PathBuf::new(),
            meta: ShardMeta {
                vocab_size: 1 << 20,
                train_tokens,
                val_tokens: 0,
                train_shards: Vec::new(),
                val_shards: Vec::new(),
                val_every: 10,
            },
            train: (0..train_tokens as u32).collect(),
            val: Vec::new(),
        }
    }

    #[test]
    fn shards_partition_the_training_tokens_and_each_spans_the_whole_corpus() {
        for (len, n) in [
            (300_000, 3),
            (90_001, 3),
            (5_000, 4),
            (1_000, 3),
            (7, 3),
            (0, 2),
        ] {
            let d = data(len);
            let parts: Vec<TokenData> = (0..n).map(|i| shard(&d, i, n)).collect();
            let mut all: Vec<u32> = parts.iter().flat_map(|p| p.train.clone()).collect();
            all.sort_unstable();
            assert_eq!(
                all, d.train,
                "len {len} n {n}: every token in exactly one shard"
            );
            for (i, p) in parts.iter().enumerate() {
                assert_eq!(p.meta.train_tokens, p.train.len());
                if len >= 16 * n * 256 {
                    // Each shard holds tokens from every tenth of the corpus.
                    for t in 0..10 {
                        let (a, b) = ((len * t / 10) as u32, (len * (t + 1) / 10) as u32);
                        assert!(
                            p.train.iter().any(|&x| x >= a && x < b),
                            "len {len} shard {i} tenth {t}"
                        );
                    }
                }
                if len >= n {
                    assert!(!p.train.is_empty(), "len {len} shard {i} is empty");
                }
            }
        }
    }
}
