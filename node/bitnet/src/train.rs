//! The trainer: AdamW with a warmup-stable-decay schedule and two-stage weight decay, gradient
//! clipping and accumulation, periodic evaluation, checkpoints with exact resume.
//!
//! Schedule (paper §8.2, BitNet b1.58 2B4T): the learning rate rises linearly over the first
//! `warmup_frac` of the steps, stays at `lr`, then falls linearly to `lr·min_lr_ratio` over the last
//! `decay_frac`; weight decay is on until the decay phase starts and off during it. Decay applies to
//! matrices only (not to RMSNorm gains).
//!
//! Exact resume: a checkpoint stores the latent weights, the AdamW moments and step count, the
//! training step and the sampler's [`DataPosition`] (the sampler's only randomness is a ChaCha8
//! stream derived from `(seed, epoch)`), so a resumed run computes the same losses bit for bit as
//! an uninterrupted one on the same machine and thread count.
//!
//! Library API for outer loops such as DiLoCo: [`Trainer::params`] gives the [`ParamStore`]
//! (`params_to_vec` / `load_from_vec`), [`Trainer::run_steps`] runs `n` inner steps, and
//! [`Trainer::eval`] reports the validation loss.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::{ModelConfig, PRESETS};
use crate::data::{Batcher, DataPosition, TokenData};
use crate::error::{io_err, BitnetError, Result};
use crate::fused::FusedModel;
use crate::model::{Model, ParamStore};

/// `[model]` table: a preset plus optional overrides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelSection {
    /// One of [`PRESETS`].
    pub preset: String,
    /// `false` trains the float twin.
    pub quantized: bool,
    /// Overrides the preset's hidden size.
    pub hidden_size: Option<usize>,
    /// Overrides the preset's layer count.
    pub num_layers: Option<usize>,
    /// Overrides the preset's query heads.
    pub num_heads: Option<usize>,
    /// Overrides the preset's key/value heads.
    pub num_kv_heads: Option<usize>,
    /// Overrides the preset's SwiGLU width.
    pub intermediate_size: Option<usize>,
    /// Overrides the preset's context length.
    pub max_seq_len: Option<usize>,
    /// Overrides tied embeddings.
    pub tie_embeddings: Option<bool>,
}

impl Default for ModelSection {
    fn default() -> Self {
        Self {
            preset: "tiny".into(),
            quantized: true,
            hidden_size: None,
            num_layers: None,
            num_heads: None,
            num_kv_heads: None,
            intermediate_size: None,
            max_seq_len: None,
            tie_embeddings: None,
        }
    }
}

/// `[data]` table: corpus, tokenizer and shard locations (relative paths are relative to the
/// working directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataSection {
    /// UTF-8 text corpus, used to train the tokenizer and make shards when they are missing.
    pub corpus: PathBuf,
    /// `tokenizer.json`; trained from `corpus` when missing.
    pub tokenizer: PathBuf,
    /// Vocabulary size for a newly trained tokenizer.
    pub vocab_size: usize,
    /// Shard directory; made from `corpus` when missing.
    pub shards: PathBuf,
    /// Every `val_every`-th document is held out for validation.
    pub val_every: usize,
}

impl Default for DataSection {
    fn default() -> Self {
        Self {
            corpus: "data/text/kjv.txt".into(),
            tokenizer: "runs/tokenizer-1024.json".into(),
            vocab_size: 1024,
            shards: "runs/shards-1024".into(),
            val_every: 20,
        }
    }
}

/// `[train]` table: optimisation and bookkeeping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainSection {
    /// Optimizer steps.
    pub steps: usize,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Tokens per sequence (≤ the model's `max_seq_len`).
    pub seq_len: usize,
    /// Micro-batches accumulated per optimizer step.
    pub grad_accum: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Final learning rate as a fraction of `lr`.
    pub min_lr_ratio: f64,
    /// Warmup fraction of `steps`.
    pub warmup_frac: f64,
    /// Decay fraction of `steps` (weight decay is off during it).
    pub decay_frac: f64,
    /// Decoupled weight decay during warmup and the stable phase.
    pub weight_decay: f64,
    /// AdamW β1.
    pub beta1: f64,
    /// AdamW β2.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Global gradient-norm clip (0 disables).
    pub grad_clip: f64,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
    /// Validation windows (of `seq_len`) per evaluation, at most.
    pub eval_windows: usize,
    /// Checkpoint every this many steps (0: only at the end).
    pub checkpoint_every: usize,
    /// Seed of the initial weights and the data order.
    pub seed: u64,
    /// Run directory: metrics.jsonl, loss.png, checkpoints/.
    pub out_dir: PathBuf,
    /// `cpu` or `cuda` (needs the `cuda` feature).
    pub device: String,
    /// Which code computes the loss and gradients: `auto` (fused on CPU, candle on CUDA),
    /// `fused` or `candle`.
    pub kernels: Kernels,
}

/// Which code computes the training loss and gradients (`train.kernels`).
///
/// Both give the same loss and gradients up to float rounding (the fused module's tests
/// check them against each other); the fused kernels are several times faster on a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kernels {
    /// [`Kernels::Fused`] on a CPU device, [`Kernels::Candle`] on CUDA.
    #[default]
    Auto,
    /// The hand-written forward and backward pass of [`crate::fused`] (CPU only).
    Fused,
    /// candle's autograd over [`Model`] (CPU or CUDA): the reference implementation.
    Candle,
}

impl Default for TrainSection {
    fn default() -> Self {
        Self {
            steps: 300,
            batch_size: 16,
            seq_len: 64,
            grad_accum: 1,
            lr: 3e-3,
            min_lr_ratio: 0.0,
            warmup_frac: 0.01,
            decay_frac: 0.15,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.98,
            eps: 1e-8,
            grad_clip: 1.0,
            eval_every: 50,
            eval_windows: 64,
            checkpoint_every: 0,
            seed: 0,
            out_dir: "runs/tiny".into(),
            device: "cpu".into(),
            kernels: Kernels::Auto,
        }
    }
}

/// A whole training configuration, as read from TOML. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Model shape.
    pub model: ModelSection,
    /// Data locations.
    pub data: DataSection,
    /// Optimisation.
    pub train: TrainSection,
}

impl TrainConfig {
    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        let cfg: Self = toml::from_str(text).map_err(|e| BitnetError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a TOML file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(io_err("reading config", path))?;
        Self::from_toml(&text).map_err(|e| BitnetError::Config(format!("{}: {e}", path.display())))
    }

    /// The model config this file describes, for a tokenizer of `vocab_size`.
    pub fn model_config(&self, vocab_size: usize) -> Result<ModelConfig> {
        let m = &self.model;
        let mut c = ModelConfig::preset(&m.preset, vocab_size)?;
        c.quantized = m.quantized;
        c.hidden_size = m.hidden_size.unwrap_or(c.hidden_size);
        c.num_layers = m.num_layers.unwrap_or(c.num_layers);
        c.num_heads = m.num_heads.unwrap_or(c.num_heads);
        c.num_kv_heads = m.num_kv_heads.unwrap_or(c.num_kv_heads);
        c.intermediate_size = m.intermediate_size.unwrap_or(c.intermediate_size);
        c.max_seq_len = m.max_seq_len.unwrap_or(c.max_seq_len);
        c.tie_embeddings = m.tie_embeddings.unwrap_or(c.tie_embeddings);
        c.validate()?;
        if self.train.seq_len > c.max_seq_len {
            return Err(BitnetError::Config(format!(
                "train.seq_len {} exceeds the model's max_seq_len {}",
                self.train.seq_len, c.max_seq_len
            )));
        }
        Ok(c)
    }

    /// Checks every field's range.
    pub fn validate(&self) -> Result<()> {
        let t = &self.train;
        let bad = |m: String| Err(BitnetError::Config(m));
        if !PRESETS.contains(&self.model.preset.as_str()) {
            return bad(format!(
                "model.preset {:?} is not one of {PRESETS:?}",
                self.model.preset
            ));
        }
        if self.data.vocab_size < 257 || self.data.vocab_size > 65_536 {
            return bad(format!(
                "data.vocab_size must be in 257..=65536, got {}",
                self.data.vocab_size
            ));
        }
        if self.data.val_every < 2 {
            return bad(format!(
                "data.val_every must be ≥ 2, got {}",
                self.data.val_every
            ));
        }
        for (name, v) in [
            ("steps", t.steps),
            ("batch_size", t.batch_size),
            ("seq_len", t.seq_len),
            ("grad_accum", t.grad_accum),
            ("eval_every", t.eval_every),
            ("eval_windows", t.eval_windows),
        ] {
            if v == 0 {
                return bad(format!("train.{name} must be positive"));
            }
        }
        if !(f64::MIN_POSITIVE..1.0).contains(&t.lr) {
            return bad(format!("train.lr must be in (0, 1), got {}", t.lr));
        }
        for (name, v) in [
            ("min_lr_ratio", t.min_lr_ratio),
            ("warmup_frac", t.warmup_frac),
            ("decay_frac", t.decay_frac),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(format!("train.{name} must be in [0, 1], got {v}"));
            }
        }
        if t.warmup_frac + t.decay_frac > 1.0 {
            return bad(format!(
                "train.warmup_frac + train.decay_frac must be ≤ 1, got {}",
                t.warmup_frac + t.decay_frac
            ));
        }
        if !(0.0..1.0).contains(&t.weight_decay) {
            return bad(format!(
                "train.weight_decay must be in [0, 1), got {}",
                t.weight_decay
            ));
        }
        for (name, v) in [("beta1", t.beta1), ("beta2", t.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(format!("train.{name} must be in [0, 1), got {v}"));
            }
        }
        if !(f64::MIN_POSITIVE..=f64::MAX).contains(&t.eps)
            || !(0.0..=f64::MAX).contains(&t.grad_clip)
        {
            return bad("train.eps must be > 0 and train.grad_clip ≥ 0".into());
        }
        if t.device != "cpu" && t.device != "cuda" {
            return bad(format!(
                "train.device must be \"cpu\" or \"cuda\", got {:?}",
                t.device
            ));
        }
        if t.kernels == Kernels::Fused && t.device != "cpu" {
            return bad(format!(
                "train.kernels = \"fused\" runs on the CPU only; use \"auto\" or \"candle\" \
                 with train.device = {:?}",
                t.device
            ));
        }
        Ok(())
    }
}

/// Opens `cpu` or `cuda` (GPU 0).
pub fn device(name: &str) -> Result<Device> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if cfg!(feature = "cuda") => Ok(Device::new_cuda(0)?),
        "cuda" => Err(BitnetError::Config(
            "train.device = \"cuda\" needs a build with the `cuda` cargo feature".into(),
        )),
        other => Err(BitnetError::Config(format!("unknown device {other:?}"))),
    }
}

/// The learning rate and weight decay at 0-based `step` of `t.steps`.
pub fn schedule(t: &TrainSection, step: usize) -> (f64, f64) {
    let n = t.steps.max(1);
    let warm = ((t.warmup_frac * n as f64).ceil() as usize).min(n);
    let decay = ((t.decay_frac * n as f64).round() as usize).min(n - warm);
    let decay_start = n - decay;
    if step < warm {
        (t.lr * (step + 1) as f64 / warm as f64, t.weight_decay)
    } else if step < decay_start {
        (t.lr, t.weight_decay)
    } else {
        let frac = (n - step) as f64 / decay.max(1) as f64;
        (t.lr * (t.min_lr_ratio + (1.0 - t.min_lr_ratio) * frac), 0.0)
    }
}

/// AdamW with decoupled weight decay on matrices.
#[derive(Debug)]
pub struct AdamW {
    m: Vec<Var>,
    v: Vec<Var>,
    t: u64,
}

impl AdamW {
    fn new(params: &ParamStore) -> Result<Self> {
        let mut m = Vec::new();
        let mut v = Vec::new();
        for (_, p) in params.entries() {
            m.push(Var::zeros(p.shape(), DType::F32, p.device())?);
            v.push(Var::zeros(p.shape(), DType::F32, p.device())?);
        }
        Ok(Self { m, v, t: 0 })
    }

    /// Resets the moments and step count (e.g. between DiLoCo rounds, if wanted).
    pub fn reset(&mut self) -> Result<()> {
        for x in self.m.iter().chain(self.v.iter()) {
            x.set(&x.zeros_like()?)?;
        }
        self.t = 0;
        Ok(())
    }

    /// Counts one more step and returns the bias corrections `1 − β1ᵗ`, `1 − β2ᵗ`.
    fn advance(&mut self, t: &TrainSection) -> (f64, f64) {
        self.t += 1;
        (
            1.0 - t.beta1.powi(self.t as i32),
            1.0 - t.beta2.powi(self.t as i32),
        )
    }

    fn step(
        &mut self,
        params: &ParamStore,
        grads: &[Tensor],
        lr: f64,
        wd: f64,
        t: &TrainSection,
    ) -> Result<()> {
        let (bc1, bc2) = self.advance(t);
        for (i, ((_, p), g)) in params.entries().iter().zip(grads).enumerate() {
            let m = ((self.m[i].as_tensor() * t.beta1)? + (g * (1.0 - t.beta1))?)?;
            let v = ((self.v[i].as_tensor() * t.beta2)? + (g.sqr()? * (1.0 - t.beta2))?)?;
            let upd = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + t.eps)?)?;
            let decayed = if p.rank() >= 2 && wd > 0.0 {
                (p.as_tensor() * (1.0 - lr * wd))?
            } else {
                p.as_tensor().clone()
            };
            p.set(&(decayed - (upd * lr)?)?)?;
            self.m[i].set(&m)?;
            self.v[i].set(&v)?;
        }
        Ok(())
    }

    /// [`Self::step`] over host copies: `flat` holds the parameters (updated in place and
    /// written back to `params`), `grads` their gradients, both in store order.
    fn step_host(
        &mut self,
        params: &ParamStore,
        flat: &mut [Vec<f32>],
        grads: &[Vec<f32>],
        lr: f64,
        wd: f64,
        t: &TrainSection,
    ) -> Result<()> {
        let (bc1, bc2) = self.advance(t);
        let (b1, b2) = (t.beta1 as f32, t.beta2 as f32);
        let (c1, c2) = ((1.0 - t.beta1) as f32, (1.0 - t.beta2) as f32);
        let (ibc1, ibc2, eps, lr32) = (
            (1.0 / bc1) as f32,
            (1.0 / bc2) as f32,
            t.eps as f32,
            lr as f32,
        );
        for (i, ((_, var), (p, g))) in params
            .entries()
            .iter()
            .zip(flat.iter_mut().zip(grads))
            .enumerate()
        {
            let decay = if var.rank() >= 2 && wd > 0.0 {
                (1.0 - lr * wd) as f32
            } else {
                1.0
            };
            let mut m = self.m[i].as_tensor().flatten_all()?.to_vec1::<f32>()?;
            let mut v = self.v[i].as_tensor().flatten_all()?.to_vec1::<f32>()?;
            rayon::scope(|_| {
                p.par_chunks_mut(4096)
                    .zip(m.par_chunks_mut(4096))
                    .zip(v.par_chunks_mut(4096))
                    .zip(g.par_chunks(4096))
                    .for_each(|(((p, m), v), g)| {
                        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
                            *m = *m * b1 + g * c1;
                            *v = *v * b2 + g * g * c2;
                            let upd = (*m * ibc1) / ((*v * ibc2).sqrt() + eps);
                            *p = *p * decay - upd * lr32;
                        }
                    })
            });
            let dev = var.device();
            self.m[i].set(&Tensor::from_vec(m, var.shape(), dev)?)?;
            self.v[i].set(&Tensor::from_vec(v, var.shape(), dev)?)?;
            var.set(&Tensor::from_vec(std::mem::take(p), var.shape(), dev)?)?;
        }
        Ok(())
    }
}

/// What one optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// 1-based step number.
    pub step: usize,
    /// Mean training loss over the step's micro-batches (nats/token).
    pub loss: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Weight decay used.
    pub wd: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps done.
    pub step: usize,
    /// AdamW's bias-correction step count.
    pub adam_t: u64,
    /// Where the sampler resumes.
    pub data_position: DataPosition,
    /// The model.
    pub model: ModelConfig,
    /// The training configuration.
    pub config: TrainConfig,
}

/// Rejects an empty window list or a window that runs past the stream.
fn check_windows(stream: &[u32], starts: &[usize], seq_len: usize) -> Result<()> {
    if starts.is_empty() {
        return Err(BitnetError::Data("no evaluation windows".into()));
    }
    if let Some(s) = starts.iter().find(|&&s| s + seq_len >= stream.len()) {
        return Err(BitnetError::Data(format!(
            "evaluation window at {s} runs past the {}-token stream",
            stream.len()
        )));
    }
    Ok(())
}

/// Inputs and next-token targets of the windows starting at `starts`, row-major.
fn window_batch(stream: &[u32], starts: &[usize], seq_len: usize) -> (Vec<u32>, Vec<u32>) {
    let mut x = Vec::with_capacity(starts.len() * seq_len);
    let mut y = Vec::with_capacity(starts.len() * seq_len);
    for &s in starts {
        x.extend_from_slice(&stream[s..s + seq_len]);
        y.extend_from_slice(&stream[s + 1..s + seq_len + 1]);
    }
    (x, y)
}

/// A model, its optimizer and its data, stepping together.
#[derive(Debug)]
pub struct Trainer {
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    params: ParamStore,
    model: Model,
    /// The fused CPU kernels, when `train.kernels` selects them for this device.
    fused: Option<FusedModel>,
    opt: AdamW,
    data: TokenData,
    batcher: Batcher,
    step: usize,
    device: Device,
}

impl Trainer {
    /// Fresh weights from `cfg.train.seed` over `data`.
    pub fn new(cfg: TrainConfig, data: TokenData, device: Device) -> Result<Self> {
        cfg.validate()?;
        let model_cfg = cfg.model_config(data.meta.vocab_size)?;
        let params = ParamStore::init(&model_cfg, cfg.train.seed, &device)?;
        let start = DataPosition { epoch: 0, index: 0 };
        Self::assemble(cfg, model_cfg, params, data, device, start, 0)
    }

    fn assemble(
        cfg: TrainConfig,
        model_cfg: ModelConfig,
        params: ParamStore,
        data: TokenData,
        device: Device,
        pos: DataPosition,
        step: usize,
    ) -> Result<Self> {
        let model = Model::new(&model_cfg, &params)?;
        let fused = match (cfg.train.kernels, device.is_cpu()) {
            (Kernels::Auto, true) | (Kernels::Fused, true) => Some(FusedModel::new(&model_cfg)?),
            (Kernels::Fused, false) => {
                return Err(BitnetError::Config(
                    "train.kernels = \"fused\" runs on the CPU only".into(),
                ))
            }
            _ => None,
        };
        let opt = AdamW::new(&params)?;
        let batcher = Batcher::new(data.train.len(), cfg.train.seq_len, cfg.train.seed, pos)?;
        if data.val.len() <= cfg.train.seq_len {
            return Err(BitnetError::Data(format!(
                "validation split has {} tokens, fewer than one window of {}",
                data.val.len(),
                cfg.train.seq_len + 1
            )));
        }
        Ok(Self {
            cfg,
            model_cfg,
            params,
            model,
            fused,
            opt,
            data,
            batcher,
            step,
            device,
        })
    }

    /// The latent weights (read or overwrite them with `params_to_vec` / `load_from_vec`).
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// The model (aliases [`Self::params`]).
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The model config.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model_cfg
    }

    /// The training config.
    pub fn config(&self) -> &TrainConfig {
        &self.cfg
    }

    /// Optimizer steps done.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The optimizer (to reset between outer rounds).
    pub fn optimizer_mut(&mut self) -> &mut AdamW {
        &mut self.opt
    }

    /// The data the trainer reads.
    pub fn data(&self) -> &TokenData {
        &self.data
    }

    fn tensors(&self, x: Vec<u32>, y: Vec<u32>, b: usize) -> Result<(Tensor, Tensor)> {
        let t = self.cfg.train.seq_len;
        Ok((
            Tensor::from_vec(x, (b, t), &self.device)?,
            Tensor::from_vec(y, (b, t), &self.device)?,
        ))
    }

    /// One optimizer step through candle's autograd and tensor ops; returns the summed
    /// micro-batch losses and the gradient norm before clipping.
    fn candle_step(&mut self, t: &TrainSection, lr: f64, wd: f64) -> Result<(f64, f64)> {
        let mut grads: Vec<Option<Tensor>> = vec![None; self.params.entries().len()];
        let mut loss_sum = 0.0;
        for _ in 0..t.grad_accum {
            let (x, y) = self.batcher.next_batch(&self.data.train, t.batch_size);
            let (x, y) = self.tensors(x, y, t.batch_size)?;
            let loss = self.model.loss(&x, &y)?;
            loss_sum += loss.to_scalar::<f32>()? as f64;
            let scaled = (loss / t.grad_accum as f64)?;
            let store = scaled.backward()?;
            for (slot, (name, var)) in grads.iter_mut().zip(self.params.entries()) {
                let g = store.get(var.as_tensor()).ok_or_else(|| {
                    BitnetError::Model(format!("parameter {name} received no gradient"))
                })?;
                *slot = Some(match slot.take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        let grads: Vec<Tensor> = grads.into_iter().flatten().collect();
        let mut sq = 0f64;
        for g in &grads {
            sq += g
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
        }
        let norm = sq.sqrt();
        let grads = if t.grad_clip > 0.0 && norm > t.grad_clip {
            let s = t.grad_clip / norm;
            grads
                .iter()
                .map(|g| Ok((g * s)?))
                .collect::<Result<Vec<_>>>()?
        } else {
            grads
        };
        self.opt.step(&self.params, &grads, lr, wd, t)?;
        Ok((loss_sum, norm))
    }

    /// One optimizer step through the fused CPU kernels, with clipping and AdamW on host
    /// vectors (the same arithmetic as [`Self::candle_step`]); returns the summed micro-batch
    /// losses and the gradient norm before clipping.
    fn fused_step(
        &mut self,
        fused: &FusedModel,
        t: &TrainSection,
        lr: f64,
        wd: f64,
    ) -> Result<(f64, f64)> {
        let mut flat = self.params.host_vecs()?;
        let mut grads: Vec<Vec<f32>> = Vec::new();
        let mut loss_sum = 0.0;
        {
            let views: Vec<&[f32]> = flat.iter().map(Vec::as_slice).collect();
            for _ in 0..t.grad_accum {
                let (x, y) = self.batcher.next_batch(&self.data.train, t.batch_size);
                let out = fused.loss_and_grads(
                    &views,
                    &x,
                    &y,
                    t.batch_size,
                    1.0 / t.grad_accum as f32,
                )?;
                loss_sum += out.loss;
                if grads.is_empty() {
                    grads = out.grads;
                } else {
                    for (a, g) in grads.iter_mut().zip(&out.grads) {
                        for (a, g) in a.iter_mut().zip(g) {
                            *a += g;
                        }
                    }
                }
            }
        }
        let norm = grads
            .iter()
            .flatten()
            .map(|&g| g as f64 * g as f64)
            .sum::<f64>()
            .sqrt();
        if t.grad_clip > 0.0 && norm > t.grad_clip {
            let s = (t.grad_clip / norm) as f32;
            grads.iter_mut().flatten().for_each(|g| *g *= s);
        }
        self.opt
            .step_host(&self.params, &mut flat, &grads, lr, wd, t)?;
        Ok((loss_sum, norm))
    }

    /// One optimizer step (with accumulation and clipping). The schedule position is the
    /// trainer's step count modulo `train.steps`.
    pub fn train_step(&mut self) -> Result<StepStats> {
        let t = self.cfg.train.clone();
        let (lr, wd) = schedule(&t, self.step % t.steps);
        let (loss_sum, norm) = match self.fused.take() {
            Some(f) => {
                let out = self.fused_step(&f, &t, lr, wd);
                self.fused = Some(f);
                out?
            }
            None => self.candle_step(&t, lr, wd)?,
        };
        self.step += 1;
        Ok(StepStats {
            step: self.step,
            loss: loss_sum / t.grad_accum as f64,
            lr,
            wd,
            grad_norm: norm,
        })
    }

    /// Runs `n` optimizer steps.
    pub fn run_steps(&mut self, n: usize) -> Result<Vec<StepStats>> {
        (0..n).map(|_| self.train_step()).collect()
    }

    /// Mean validation loss (nats/token) over up to `eval_windows` windows of the validation split.
    pub fn eval(&self) -> Result<f64> {
        let t = &self.cfg.train;
        let windows = ((self.data.val.len() - 1) / t.seq_len).min(t.eval_windows);
        if windows == 0 {
            return Ok(f64::NAN);
        }
        let starts: Vec<usize> = (0..windows).map(|w| w * t.seq_len).collect();
        self.eval_windows(&self.data.val, &starts)
    }

    /// Mean loss (nats/token) of the current weights over the windows of `stream` that start at
    /// `starts` (each `seq_len` inputs predicting the next token, so `start + seq_len` must be
    /// a valid index), in batches of `batch_size`. The evaluators' seeded windows over a job's
    /// whole corpus go through here.
    pub fn eval_windows(&self, stream: &[u32], starts: &[usize]) -> Result<f64> {
        let t = &self.cfg.train;
        check_windows(stream, starts, t.seq_len)?;
        let mut total = 0.0;
        // The fused kernels read host copies of the weights: one copy for the whole evaluation.
        let host = match &self.fused {
            Some(_) => self.params.host_vecs()?,
            None => Vec::new(),
        };
        let views: Vec<&[f32]> = host.iter().map(Vec::as_slice).collect();
        for batch in starts.chunks(t.batch_size.max(1)) {
            let b = batch.len();
            let (x, y) = window_batch(stream, batch, t.seq_len);
            let loss = match &self.fused {
                Some(f) => f.loss(&views, &x, &y, b)?,
                None => {
                    let (x, y) = self.tensors(x, y, b)?;
                    self.model.loss(&x, &y)?.to_scalar::<f32>()? as f64
                }
            };
            total += loss * b as f64;
        }
        Ok(total / starts.len() as f64)
    }

    /// Per-token losses (nats) of the current weights over the windows of `stream` that start
    /// at `starts`: row `w`, column `p` is the loss of predicting `stream[starts[w] + p + 1]`
    /// from the `p + 1` tokens before it. Computed by the candle model (also when training uses
    /// the fused kernels), in batches of `batch_size`; the mean of all entries equals
    /// [`Self::eval_windows`] up to float rounding. The error analysis of the autoresearch
    /// LM domain reads losses by token and by position from here.
    pub fn token_losses(&self, stream: &[u32], starts: &[usize]) -> Result<Vec<Vec<f32>>> {
        let t = &self.cfg.train;
        check_windows(stream, starts, t.seq_len)?;
        let mut out = Vec::with_capacity(starts.len());
        for batch in starts.chunks(t.batch_size.max(1)) {
            let b = batch.len();
            let (x, y) = window_batch(stream, batch, t.seq_len);
            let (x, y) = self.tensors(x, y, b)?;
            let logp = candle_nn::ops::log_softmax(&self.model.forward(&x)?, D::Minus1)?;
            let picked = logp.gather(&y.unsqueeze(2)?, 2)?.squeeze(2)?.neg()?;
            out.extend(picked.to_dtype(DType::F32)?.to_vec2::<f32>()?);
        }
        Ok(out)
    }

    /// Writes a checkpoint directory: `model.safetensors`, `optimizer.safetensors`,
    /// `state.json`, and `tokenizer.json` when `tokenizer` is given.
    pub fn save_checkpoint(&self, dir: &Path, tokenizer: Option<&Path>) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        self.params
            .save_safetensors(&dir.join("model.safetensors"))?;
        // candle's safetensors writer takes a HashMap; the file format sorts tensors by name.
        #[allow(clippy::disallowed_types)]
        let mut opt: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
        for (i, (name, _)) in self.params.entries().iter().enumerate() {
            opt.insert(format!("m.{name}"), self.opt.m[i].as_tensor().clone());
            opt.insert(format!("v.{name}"), self.opt.v[i].as_tensor().clone());
        }
        candle_core::safetensors::save(&opt, dir.join("optimizer.safetensors"))?;
        let state = CheckpointState {
            step: self.step,
            adam_t: self.opt.t,
            data_position: self.batcher.position(),
            model: self.model_cfg.clone(),
            config: self.cfg.clone(),
        };
        let json = serde_json::to_vec_pretty(&state).map_err(|e| BitnetError::Checkpoint {
            path: dir.into(),
            msg: e.to_string(),
        })?;
        let p = dir.join("state.json");
        std::fs::write(&p, json).map_err(io_err("writing", &p))?;
        if let Some(tok) = tokenizer {
            let dst = dir.join("tokenizer.json");
            std::fs::copy(tok, &dst).map_err(io_err("copying tokenizer to", &dst))?;
        }
        Ok(())
    }

    /// Reads a checkpoint's `state.json`.
    pub fn read_state(dir: &Path) -> Result<CheckpointState> {
        let p = dir.join("state.json");
        let raw = std::fs::read(&p).map_err(io_err("reading", &p))?;
        serde_json::from_slice(&raw).map_err(|e| BitnetError::Checkpoint {
            path: dir.into(),
            msg: format!("state.json: {e}"),
        })
    }

    /// Resumes from a checkpoint directory over `data` (which must be the same shards).
    pub fn resume(dir: &Path, data: TokenData, device: Device) -> Result<Self> {
        let st = Self::read_state(dir)?;
        if st.model.vocab_size != data.meta.vocab_size {
            return Err(BitnetError::Checkpoint {
                path: dir.into(),
                msg: format!(
                    "model vocabulary {} ≠ data vocabulary {}",
                    st.model.vocab_size, data.meta.vocab_size
                ),
            });
        }
        let params = ParamStore::zeros(&st.model, &device)?;
        params.load_safetensors(&dir.join("model.safetensors"))?;
        let mut tr = Self::assemble(
            st.config,
            st.model,
            params,
            data,
            device,
            st.data_position,
            st.step,
        )?;
        let p = dir.join("optimizer.safetensors");
        let opt = candle_core::safetensors::load(&p, &tr.device).map_err(|e| {
            BitnetError::Checkpoint {
                path: dir.into(),
                msg: format!("optimizer.safetensors: {e}"),
            }
        })?;
        for (i, (name, var)) in tr.params.entries().iter().enumerate() {
            for (slot, key) in [
                (&tr.opt.m[i], format!("m.{name}")),
                (&tr.opt.v[i], format!("v.{name}")),
            ] {
                let t = opt.get(&key).ok_or_else(|| BitnetError::Checkpoint {
                    path: dir.into(),
                    msg: format!("optimizer.safetensors lacks {key}"),
                })?;
                if t.dims() != var.dims() {
                    return Err(BitnetError::Checkpoint {
                        path: dir.into(),
                        msg: format!("{key} has the wrong shape"),
                    });
                }
                slot.set(t)?;
            }
        }
        tr.opt.t = st.adam_t;
        Ok(tr)
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Metric {
    /// A training step.
    Train {
        /// Stats of the step.
        #[serde(flatten)]
        stats: StepStats,
        /// Tokens per second over the step.
        tok_per_s: f64,
    },
    /// An evaluation.
    Eval {
        /// Step after which it ran.
        step: usize,
        /// Validation loss (nats/token).
        val_loss: f64,
        /// exp(val_loss).
        val_ppl: f64,
    },
}

/// Summary of a [`train`] run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainReport {
    /// Last validation loss.
    pub final_val_loss: f64,
    /// Unigram entropy of the validation split (nats/token), the context-free baseline.
    pub val_unigram_entropy: f64,
    /// Mean training throughput.
    pub tokens_per_s: f64,
    /// Final checkpoint directory.
    pub checkpoint: PathBuf,
    /// Every train loss, in order.
    pub train_losses: Vec<f64>,
    /// `(step, val_loss)` of every evaluation.
    pub val_losses: Vec<(usize, f64)>,
}

/// Makes sure the tokenizer and shards named by `cfg.data` exist (training/tokenizing when not),
/// and opens the shards.
pub fn prepare_data(cfg: &TrainConfig) -> Result<TokenData> {
    let d = &cfg.data;
    if !d.tokenizer.is_file() {
        tracing::info!(corpus = %d.corpus.display(), vocab = d.vocab_size, "training tokenizer");
        let tok = crate::tokenizer::Tokenizer::train(&[&d.corpus], d.vocab_size)?;
        if let Some(parent) = d.tokenizer.parent() {
            std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
        }
        tok.save(&d.tokenizer)?;
    }
    if !d.shards.join("meta.json").is_file() {
        tracing::info!(shards = %d.shards.display(), "tokenizing corpus into shards");
        let tok = crate::tokenizer::Tokenizer::load(&d.tokenizer)?;
        crate::data::prepare_shards(&d.corpus, &tok, &d.shards, d.val_every)?;
    }
    TokenData::open(&d.shards)
}

/// Runs a whole configured training job: data, fresh or resumed trainer (from `resume`), metrics,
/// evaluations, checkpoints, loss plot. `progress` shows a progress bar on stderr.
pub fn train(cfg: &TrainConfig, resume: Option<&Path>, progress: bool) -> Result<TrainReport> {
    cfg.validate()?;
    let data = prepare_data(cfg)?;
    let dev = device(&cfg.train.device)?;
    let entropy = crate::data::unigram_entropy(&data.val, data.meta.vocab_size);
    let mut tr = match resume {
        Some(dir) => Trainer::resume(dir, data, dev)?,
        None => Trainer::new(cfg.clone(), data, dev)?,
    };
    let t = tr.config().train.clone();
    let out = t.out_dir.clone();
    std::fs::create_dir_all(&out).map_err(io_err("creating", &out))?;
    let mpath = out.join("metrics.jsonl");
    let mut metrics = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&mpath)
        .map_err(io_err("opening", &mpath))?;
    let mut log = |m: &Metric| -> Result<()> {
        let line = serde_json::to_string(m).map_err(|e| BitnetError::Data(e.to_string()))?;
        writeln!(metrics, "{line}").map_err(io_err("writing", &mpath))
    };
    tracing::info!(
        params = tr.params().num_params(),
        val_unigram_entropy = entropy,
        "training"
    );
    let bar = if progress {
        let b = indicatif::ProgressBar::new(t.steps as u64);
        b.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps  {msg}  eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b.set_position(tr.step() as u64);
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let tokens_per_step = (t.batch_size * t.seq_len * t.grad_accum) as f64;
    let (mut train_losses, mut val_losses) = (Vec::new(), Vec::new());
    let started = Instant::now();
    let first = tr.step();
    let mut last_val = f64::NAN;
    while tr.step() < t.steps {
        let t0 = Instant::now();
        let s = tr.train_step()?;
        let tps = tokens_per_step / t0.elapsed().as_secs_f64().max(1e-9);
        train_losses.push(s.loss);
        log(&Metric::Train {
            stats: s,
            tok_per_s: tps,
        })?;
        if s.step % t.eval_every == 0 || s.step == t.steps {
            last_val = tr.eval()?;
            val_losses.push((s.step, last_val));
            log(&Metric::Eval {
                step: s.step,
                val_loss: last_val,
                val_ppl: last_val.exp(),
            })?;
        }
        if t.checkpoint_every > 0 && s.step % t.checkpoint_every == 0 && s.step < t.steps {
            tr.save_checkpoint(
                &out.join(format!("checkpoints/step-{:06}", s.step)),
                Some(&tr.cfg.data.tokenizer.clone()),
            )?;
        }
        bar.set_message(format!(
            "loss {:.3}  val {:.3}  {:.0} tok/s",
            s.loss, last_val, tps
        ));
        bar.inc(1);
    }
    bar.finish();
    let ckpt = out.join("checkpoints/final");
    tr.save_checkpoint(&ckpt, Some(&tr.cfg.data.tokenizer.clone()))?;
    let steps_run = (tr.step() - first) as f64;
    let tokens_per_s = steps_run * tokens_per_step / started.elapsed().as_secs_f64().max(1e-9);
    if let Err(e) = crate::plot::loss_curve(&mpath, &out.join("loss.png")) {
        tracing::warn!("could not draw the loss curve: {e}");
    }
    if last_val.is_nan() {
        last_val = tr.eval()?;
    }
    Ok(TrainReport {
        final_val_loss: last_val,
        val_unigram_entropy: entropy,
        tokens_per_s,
        checkpoint: ckpt,
        train_losses,
        val_losses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_holds_then_decays_with_weight_decay_off() {
        let t = TrainSection {
            steps: 1000,
            lr: 1e-3,
            weight_decay: 0.1,
            ..Default::default()
        };
        assert!((schedule(&t, 0).0 - 1e-4).abs() < 1e-12);
        assert_eq!(schedule(&t, 9), (1e-3, 0.1));
        assert_eq!(schedule(&t, 500), (1e-3, 0.1));
        assert_eq!(schedule(&t, 849), (1e-3, 0.1));
        let (lr, wd) = schedule(&t, 850);
        assert!((lr - 1e-3).abs() < 1e-12 && wd == 0.0);
        let (lr, wd) = schedule(&t, 999);
        assert!(lr > 0.0 && lr < 1e-4 && wd == 0.0);
    }

    #[test]
    fn every_bad_config_field_is_rejected_with_its_name() {
        let cases = [
            ("[train]\nsteps = 0", "steps"),
            ("[train]\nlr = 2.0", "lr"),
            (
                "[train]\nwarmup_frac = 0.6\ndecay_frac = 0.6",
                "warmup_frac",
            ),
            ("[train]\nbeta2 = 1.0", "beta2"),
            ("[train]\ndevice = \"tpu\"", "device"),
            ("[model]\npreset = \"huge\"", "preset"),
            ("[data]\nvocab_size = 10", "vocab_size"),
            ("[train]\nlearning_rate = 0.1", "unknown field"),
            ("[train]\nsteps = \"many\"", "invalid type"),
        ];
        for (text, needle) in cases {
            let e = TrainConfig::from_toml(text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
        let c = TrainConfig::from_toml("").unwrap();
        assert_eq!(c, TrainConfig::default());
        let c = TrainConfig::from_toml("[train]\nseq_len = 4096").unwrap();
        assert!(c
            .model_config(1024)
            .unwrap_err()
            .to_string()
            .contains("max_seq_len"));
    }
}
