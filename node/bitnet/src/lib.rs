//! `magnet-bitnet`: the BitNet b1.58 engine of MAGNET (paper §4, §8).
//!
//! - [`model`]: a LLaMA-architecture model (RMSNorm pre-norm, SwiGLU, GQA, RoPE, tied or untied
//!   embeddings) whose projections are [`bitlinear::BitLinear`] layers — ternary weights, int8
//!   activations, straight-through estimator, float32 latent weights — or their float twin.
//! - [`tokenizer`] and [`data`]: a byte-level BPE and on-disk token shards with a validation split.
//! - [`train`]: AdamW, warmup-stable-decay, two-stage weight decay, clipping, accumulation,
//!   evaluation, checkpoints with exact resume, JSONL metrics and a loss-curve PNG.
//! - [`gguf`] and [`export`]: our own GGUF writer/reader (`TQ2_0` ternary weights) and a
//!   Hugging Face folder export.
//! - [`kernel`] and [`infer`]: in-process ternary inference from a GGUF file with a runtime-selected
//!   SIMD int8×ternary matrix-vector kernel, KV cache and sampling.
//!
//! What it does not do: it is not a general LLaMA runtime (only the files this crate writes, or
//! files of the same shape, are supported), and training is single-process (DiLoCo drives it).
#![deny(clippy::unwrap_used)]

pub mod bitlinear;
pub mod config;
pub mod data;
pub mod error;
pub mod export;
pub mod fused;
pub mod gguf;
pub mod infer;
pub mod init;
pub mod kernel;
pub mod model;
pub mod plot;
pub mod team;
pub mod tokenizer;
pub mod train;

pub use config::ModelConfig;
pub use error::{BitnetError, Result};
pub use model::{Model, ParamStore};
pub use train::{TrainConfig, Trainer};
