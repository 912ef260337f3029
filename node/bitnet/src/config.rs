//! Model shapes: the [`ModelConfig`] of a LLaMA-architecture BitNet b1.58 model and its presets.
//!
//! Guarantees: a config that passes [`ModelConfig::validate`] builds, trains and exports to GGUF
//! `TQ2_0` (every linear layer's input width is a multiple of 256, the TQ2_0 block size, and the
//! head dimension is even for RoPE). It does not check that a config fits in memory.

use serde::{Deserialize, Serialize};

use crate::error::{BitnetError, Result};

/// The TQ2_0 block: every ternary row length must be a multiple of this.
pub const QK_TERNARY: usize = 256;

/// Shape and numerics of a LLaMA-architecture model with BitLinear projections.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Vocabulary size (rows of the embedding table).
    pub vocab_size: usize,
    /// Hidden width `d`.
    pub hidden_size: usize,
    /// Number of transformer blocks `L`.
    pub num_layers: usize,
    /// Query heads `h`.
    pub num_heads: usize,
    /// Key/value heads (GQA); must divide `num_heads`.
    pub num_kv_heads: usize,
    /// SwiGLU inner width.
    pub intermediate_size: usize,
    /// Longest sequence the model is trained or served at.
    pub max_seq_len: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f64,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// Whether the output head shares the embedding matrix.
    pub tie_embeddings: bool,
    /// `true`: BitLinear (ternary weights, int8 activations); `false`: the float twin.
    pub quantized: bool,
}

/// Names of the built-in presets, for help texts and errors.
pub const PRESETS: &[&str] = &["tiny", "small", "autoresearch-best", "genkidama-618m"];

impl ModelConfig {
    /// A named preset: `tiny` (tests; trains in about a minute on 2 cores), `small` (~27M
    /// parameters), `autoresearch-best` (paper §8.3: d=1024, L=12, h=16, kv=4, ctx=2048) and
    /// `genkidama-618m` (paper §8.4: d=1536, L=17, h=16, kv=4, ff=4096, ctx=1024).
    pub fn preset(name: &str, vocab_size: usize) -> Result<Self> {
        let base = Self {
            vocab_size,
            hidden_size: 256,
            num_layers: 2,
            num_heads: 4,
            num_kv_heads: 2,
            intermediate_size: 512,
            max_seq_len: 64,
            rms_norm_eps: 1e-5,
            rope_theta: 10_000.0,
            tie_embeddings: true,
            quantized: true,
        };
        let cfg = match name {
            "tiny" => base,
            "small" => Self {
                hidden_size: 512,
                num_layers: 8,
                num_heads: 8,
                num_kv_heads: 2,
                intermediate_size: 1536,
                max_seq_len: 256,
                ..base
            },
            "autoresearch-best" => Self {
                hidden_size: 1024,
                num_layers: 12,
                num_heads: 16,
                num_kv_heads: 4,
                // 2.67 x d rounded to the TQ2_0 block (paper phase 6: 2.67x FFN).
                intermediate_size: 2816,
                max_seq_len: 2048,
                ..base
            },
            "genkidama-618m" => Self {
                hidden_size: 1536,
                num_layers: 17,
                num_heads: 16,
                num_kv_heads: 4,
                intermediate_size: 4096,
                max_seq_len: 1024,
                ..base
            },
            other => {
                return Err(BitnetError::Config(format!(
                    "unknown model preset {other:?}; choose one of {PRESETS:?}"
                )))
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    /// Width of the key/value projections (`num_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.num_kv_heads * self.head_dim()
    }

    /// Number of trainable parameters, counted from the shapes.
    pub fn num_params(&self) -> usize {
        let d = self.hidden_size;
        let attn = d * d * 2 + d * self.kv_dim() * 2;
        let ffn = 3 * d * self.intermediate_size;
        let per_layer = attn + ffn + 2 * d;
        let head = if self.tie_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        self.vocab_size * d + self.num_layers * per_layer + d + head
    }

    /// Checks every constraint the model, the trainer and the GGUF exporter rely on.
    pub fn validate(&self) -> Result<()> {
        let err = |m: String| Err(BitnetError::Config(m));
        if self.vocab_size < 2 {
            return err(format!(
                "vocab_size must be at least 2, got {}",
                self.vocab_size
            ));
        }
        if self.num_layers == 0 || self.num_heads == 0 || self.num_kv_heads == 0 {
            return err("num_layers, num_heads and num_kv_heads must be positive".into());
        }
        if self.hidden_size == 0 || !self.hidden_size.is_multiple_of(QK_TERNARY) {
            return err(format!(
                "hidden_size must be a positive multiple of {QK_TERNARY} (TQ2_0 rows), got {}",
                self.hidden_size
            ));
        }
        if self.intermediate_size == 0 || !self.intermediate_size.is_multiple_of(QK_TERNARY) {
            return err(format!(
                "intermediate_size must be a positive multiple of {QK_TERNARY} (TQ2_0 rows), got {}",
                self.intermediate_size
            ));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return err(format!(
                "hidden_size {} is not divisible by num_heads {}",
                self.hidden_size, self.num_heads
            ));
        }
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return err(format!(
                "num_heads {} is not a multiple of num_kv_heads {} (GQA groups)",
                self.num_heads, self.num_kv_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return err(format!(
                "head_dim {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if self.max_seq_len == 0 {
            return err("max_seq_len must be positive".into());
        }
        if !(f64::MIN_POSITIVE..1.0).contains(&self.rms_norm_eps) {
            return err(format!(
                "rms_norm_eps must be in (0, 1), got {}",
                self.rms_norm_eps
            ));
        }
        if !self.rope_theta.is_finite() || self.rope_theta <= 1.0 {
            return err(format!("rope_theta must be > 1, got {}", self.rope_theta));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_validate_and_have_the_papers_parameter_counts() {
        for name in PRESETS {
            ModelConfig::preset(name, 128_256).unwrap();
        }
        let g = ModelConfig::preset("genkidama-618m", 128_256).unwrap();
        let m = g.num_params() as f64 / 1e6;
        assert!((m - 618.3).abs() < 1.0, "genkidama-618m has {m:.1}M params");
        let s = ModelConfig::preset("small", 8192).unwrap();
        let m = s.num_params() as f64 / 1e6;
        assert!((20.0..=30.0).contains(&m), "small has {m:.1}M params");
    }

    #[test]
    fn invalid_shapes_are_rejected_with_a_reason() {
        let ok = ModelConfig::preset("tiny", 1024).unwrap();
        let cases: Vec<(ModelConfig, &str)> = vec![
            (
                ModelConfig {
                    hidden_size: 200,
                    ..ok.clone()
                },
                "hidden_size",
            ),
            (
                ModelConfig {
                    intermediate_size: 300,
                    ..ok.clone()
                },
                "intermediate_size",
            ),
            (
                ModelConfig {
                    num_kv_heads: 3,
                    ..ok.clone()
                },
                "num_kv_heads",
            ),
            (
                ModelConfig {
                    num_heads: 0,
                    ..ok.clone()
                },
                "positive",
            ),
            (
                ModelConfig {
                    vocab_size: 1,
                    ..ok.clone()
                },
                "vocab_size",
            ),
            (
                ModelConfig {
                    rms_norm_eps: 0.0,
                    ..ok.clone()
                },
                "rms_norm_eps",
            ),
            (
                ModelConfig {
                    max_seq_len: 0,
                    ..ok.clone()
                },
                "max_seq_len",
            ),
        ];
        for (cfg, needle) in cases {
            let e = cfg.validate().unwrap_err().to_string();
            assert!(e.contains(needle), "{e} should mention {needle}");
        }
        assert!(ModelConfig::preset("huge", 10).is_err());
    }
}
