//! The LLaMA-architecture BitNet b1.58 model in candle, and its parameter store.
//!
//! Architecture: token embedding → L × [RMSNorm → GQA attention with RoPE → residual,
//! RMSNorm → SwiGLU MLP → residual] → RMSNorm → output head (tied to the embedding or not).
//! Every projection inside the blocks is a [`BitLinear`]; the embedding and the head stay in
//! float, as in BitNet b1.58. Parameter names are Hugging Face's `LlamaForCausalLM` names, so
//! the HF export writes the store as is.
//!
//! RoPE uses the Hugging Face "rotate half" layout (dimension `i` pairs with `i + head_dim/2`);
//! the GGUF exporter permutes q/k rows to llama.cpp's interleaved layout.
//!
//! [`ParamStore`] holds the float32 latent weights in a fixed, documented order; it converts
//! to and from one flat `Vec<f32>` (for DiLoCo) and to and from safetensors.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};

use crate::bitlinear::BitLinear;
use crate::config::ModelConfig;
use crate::error::{BitnetError, Result};

/// Standard deviation of the initial linear and embedding weights.
pub const INIT_STD: f32 = 0.02;

/// How a parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ParamInit {
    /// All ones (norm gains).
    Ones,
    /// N(0, std²).
    Normal(f32),
}

/// Name, shape and initialiser of every parameter of `cfg`, in store order.
pub fn param_specs(cfg: &ModelConfig) -> Vec<(String, Vec<usize>, ParamInit)> {
    let d = cfg.hidden_size;
    let kv = cfg.kv_dim();
    let ff = cfg.intermediate_size;
    let n = ParamInit::Normal(INIT_STD);
    let mut v = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![cfg.vocab_size, d],
        n,
    )];
    for l in 0..cfg.num_layers {
        let p = |s: &str| format!("model.layers.{l}.{s}");
        v.push((p("input_layernorm.weight"), vec![d], ParamInit::Ones));
        v.push((p("self_attn.q_proj.weight"), vec![d, d], n));
        v.push((p("self_attn.k_proj.weight"), vec![kv, d], n));
        v.push((p("self_attn.v_proj.weight"), vec![kv, d], n));
        v.push((p("self_attn.o_proj.weight"), vec![d, d], n));
        v.push((
            p("post_attention_layernorm.weight"),
            vec![d],
            ParamInit::Ones,
        ));
        v.push((p("mlp.gate_proj.weight"), vec![ff, d], n));
        v.push((p("mlp.up_proj.weight"), vec![ff, d], n));
        v.push((p("mlp.down_proj.weight"), vec![d, ff], n));
    }
    v.push(("model.norm.weight".to_string(), vec![d], ParamInit::Ones));
    if !cfg.tie_embeddings {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d], n));
    }
    v
}

/// The float32 latent weights of a model, in [`param_specs`] order.
#[derive(Debug, Clone)]
pub struct ParamStore {
    entries: Vec<(String, Var)>,
}

impl ParamStore {
    /// Fresh weights for `cfg`, reproducible from `seed`.
    pub fn init(cfg: &ModelConfig, seed: u64, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut entries = Vec::new();
        for (i, (name, shape, init)) in param_specs(cfg).into_iter().enumerate() {
            let n: usize = shape.iter().product();
            let data = match init {
                ParamInit::Ones => vec![1f32; n],
                ParamInit::Normal(std) => crate::init::normal_vec(
                    n,
                    0.0,
                    std,
                    seed.wrapping_mul(1_000_003).wrapping_add(i as u64),
                ),
            };
            let var = Var::from_tensor(&Tensor::from_vec(data, shape, device)?)?;
            entries.push((name, var));
        }
        Ok(Self { entries })
    }

    /// Zero-initialised store with `cfg`'s shapes (to be filled by a loader).
    pub fn zeros(cfg: &ModelConfig, device: &Device) -> Result<Self> {
        cfg.validate()?;
        let mut entries = Vec::new();
        for (name, shape, _) in param_specs(cfg) {
            entries.push((name, Var::zeros(shape, DType::F32, device)?));
        }
        Ok(Self { entries })
    }

    /// `(name, var)` pairs in store order.
    pub fn entries(&self) -> &[(String, Var)] {
        &self.entries
    }

    /// The variable called `name`.
    pub fn get(&self, name: &str) -> Result<&Var> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| BitnetError::Model(format!("no parameter named {name}")))
    }

    /// Total number of scalars.
    pub fn num_params(&self) -> usize {
        self.entries.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// All parameters concatenated in store order (row-major), as one flat vector.
    pub fn params_to_vec(&self) -> Result<Vec<f32>> {
        let mut out = Vec::with_capacity(self.num_params());
        for (_, v) in &self.entries {
            out.extend(
                v.as_tensor()
                    .flatten_all()?
                    .to_dtype(DType::F32)?
                    .to_vec1::<f32>()?,
            );
        }
        Ok(out)
    }

    /// Every parameter as its own row-major vector, in store order (host copies).
    pub fn host_vecs(&self) -> Result<Vec<Vec<f32>>> {
        self.entries
            .iter()
            .map(|(_, v)| Ok(v.as_tensor().flatten_all()?.to_vec1::<f32>()?))
            .collect()
    }

    /// Overwrites every parameter from a flat vector produced by [`Self::params_to_vec`].
    pub fn load_from_vec(&self, flat: &[f32]) -> Result<()> {
        if flat.len() != self.num_params() {
            return Err(BitnetError::Model(format!(
                "flat parameter vector has {} values, the model has {}",
                flat.len(),
                self.num_params()
            )));
        }
        let mut off = 0;
        for (_, v) in &self.entries {
            let n = v.elem_count();
            let t = Tensor::from_slice(&flat[off..off + n], v.shape(), v.device())?;
            v.set(&t)?;
            off += n;
        }
        Ok(())
    }

    /// Writes the latent weights as a safetensors file (f32, HF names).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let map: Vec<(String, Tensor)> = self
            .entries
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        candle_core::safetensors::save(&map.into_iter().collect(), path)?;
        Ok(())
    }

    /// Loads every parameter from a safetensors file; names and shapes must match.
    pub fn load_safetensors(&self, path: &Path) -> Result<()> {
        let device = self
            .entries
            .first()
            .map(|(_, v)| v.device().clone())
            .unwrap_or(Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device).map_err(|e| {
            BitnetError::Model(format!("cannot read weights {}: {e}", path.display()))
        })?;
        for (name, var) in &self.entries {
            let t = tensors.get(name).ok_or_else(|| {
                BitnetError::Model(format!("{} lacks tensor {name}", path.display()))
            })?;
            if t.dims() != var.dims() {
                return Err(BitnetError::Model(format!(
                    "{}: tensor {name} has shape {:?}, the model wants {:?}",
                    path.display(),
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        Ok(())
    }
}

/// RoPE tables `cos`, `sin` of shape `(max_seq_len, head_dim/2)`, computed in f64 then rounded.
pub fn rope_tables(cfg: &ModelConfig) -> (Vec<f32>, Vec<f32>) {
    let half = cfg.head_dim() / 2;
    let mut cos = Vec::with_capacity(cfg.max_seq_len * half);
    let mut sin = Vec::with_capacity(cfg.max_seq_len * half);
    for p in 0..cfg.max_seq_len {
        for i in 0..half {
            let inv = cfg
                .rope_theta
                .powf(-(2.0 * i as f64) / cfg.head_dim() as f64);
            let a = p as f64 * inv;
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

#[derive(Debug, Clone)]
struct Block {
    attn_norm: Tensor,
    q: BitLinear,
    k: BitLinear,
    v: BitLinear,
    o: BitLinear,
    ffn_norm: Tensor,
    gate: BitLinear,
    up: BitLinear,
    down: BitLinear,
}

/// A LLaMA/BitNet model whose tensors alias a [`ParamStore`] (updates to the store show here).
#[derive(Debug, Clone)]
pub struct Model {
    cfg: ModelConfig,
    embed: Tensor,
    blocks: Vec<Block>,
    norm: Tensor,
    head: Tensor,
    cos: Tensor,
    sin: Tensor,
}

fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let ms = (x.sqr()?.mean_keepdim(D::Minus1)? + eps)?;
    Ok(x.broadcast_div(&ms.sqrt()?)?.broadcast_mul(w)?)
}

impl Model {
    /// Builds the model over `params` (which must have been made for `cfg`).
    pub fn new(cfg: &ModelConfig, params: &ParamStore) -> Result<Self> {
        cfg.validate()?;
        let t = |n: &str| -> Result<Tensor> { Ok(params.get(n)?.as_tensor().clone()) };
        let lin = |n: &str| -> Result<BitLinear> { Ok(BitLinear::new(t(n)?, cfg.quantized)) };
        let mut blocks = Vec::new();
        for l in 0..cfg.num_layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            blocks.push(Block {
                attn_norm: t(&p("input_layernorm.weight"))?,
                q: lin(&p("self_attn.q_proj.weight"))?,
                k: lin(&p("self_attn.k_proj.weight"))?,
                v: lin(&p("self_attn.v_proj.weight"))?,
                o: lin(&p("self_attn.o_proj.weight"))?,
                ffn_norm: t(&p("post_attention_layernorm.weight"))?,
                gate: lin(&p("mlp.gate_proj.weight"))?,
                up: lin(&p("mlp.up_proj.weight"))?,
                down: lin(&p("mlp.down_proj.weight"))?,
            });
        }
        let embed = t("model.embed_tokens.weight")?;
        let head = if cfg.tie_embeddings {
            embed.clone()
        } else {
            t("lm_head.weight")?
        };
        let device = embed.device().clone();
        let (cos, sin) = rope_tables(cfg);
        let half = cfg.head_dim() / 2;
        let cos = Tensor::from_vec(cos, (cfg.max_seq_len, half), &device)?;
        let sin = Tensor::from_vec(sin, (cfg.max_seq_len, half), &device)?;
        let cos = Tensor::cat(&[&cos, &cos], 1)?;
        let sin = Tensor::cat(&[&sin, &sin], 1)?;
        Ok(Self {
            cfg: cfg.clone(),
            embed,
            blocks,
            norm: t("model.norm.weight")?,
            head,
            cos,
            sin,
        })
    }

    /// The model's config.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    fn rope(&self, x: &Tensor, t: usize) -> Result<Tensor> {
        let hd = self.cfg.head_dim();
        let half = hd / 2;
        let cos = self.cos.narrow(0, 0, t)?;
        let sin = self.sin.narrow(0, 0, t)?;
        let x1 = x.narrow(D::Minus1, 0, half)?;
        let x2 = x.narrow(D::Minus1, half, half)?;
        let rot = Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?;
        Ok((x.broadcast_mul(&cos)? + rot.broadcast_mul(&sin)?)?)
    }

    /// Logits `(batch, seq, vocab)` for token ids `(batch, seq)` (u32).
    pub fn forward(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, t) = tokens.dims2()?;
        if t == 0 || t > self.cfg.max_seq_len {
            return Err(BitnetError::Model(format!(
                "sequence length {t} is outside 1..={}",
                self.cfg.max_seq_len
            )));
        }
        let c = &self.cfg;
        let (h, kvh, hd, d) = (c.num_heads, c.num_kv_heads, c.head_dim(), c.hidden_size);
        let rep = h / kvh;
        let mut x = self
            .embed
            .index_select(&tokens.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let mask: Vec<f32> = (0..t)
            .flat_map(|i| (0..t).map(move |j| if j <= i { 0.0 } else { f32::NEG_INFINITY }))
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), x.device())?;
        let scale = 1.0 / (hd as f64).sqrt();
        for blk in &self.blocks {
            let hn = rms_norm(&x, &blk.attn_norm, c.rms_norm_eps)?;
            let q = blk
                .q
                .forward(&hn)?
                .reshape((b, t, h, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let k = blk
                .k
                .forward(&hn)?
                .reshape((b, t, kvh, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let v = blk
                .v
                .forward(&hn)?
                .reshape((b, t, kvh, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let q = self.rope(&q, t)?;
            let k = self.rope(&k, t)?;
            let (k, v) = if rep > 1 {
                let k = k
                    .unsqueeze(2)?
                    .broadcast_as((b, kvh, rep, t, hd))?
                    .reshape((b, h, t, hd))?;
                let v = v
                    .unsqueeze(2)?
                    .broadcast_as((b, kvh, rep, t, hd))?
                    .reshape((b, h, t, hd))?;
                (k, v)
            } else {
                (k, v)
            };
            let att = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&att, D::Minus1)?;
            let y = att.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
            x = (x + blk.o.forward(&y)?)?;
            let hn = rms_norm(&x, &blk.ffn_norm, c.rms_norm_eps)?;
            let g = blk.gate.forward(&hn)?.silu()?;
            let u = blk.up.forward(&hn)?;
            x = (x + blk.down.forward(&(g * u)?)?)?;
        }
        let x = rms_norm(&x, &self.norm, c.rms_norm_eps)?;
        let logits = x.reshape((b * t, d))?.matmul(&self.head.t()?)?;
        Ok(logits.reshape((b, t, c.vocab_size))?)
    }

    /// Mean next-token cross-entropy (nats/token) of `inputs` predicting `targets`, both `(b, t)`.
    pub fn loss(&self, inputs: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logits = self.forward(inputs)?;
        let (b, t, v) = logits.dims3()?;
        Ok(candle_nn::loss::cross_entropy(
            &logits.reshape((b * t, v))?,
            &targets.reshape(b * t)?,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> ModelConfig {
        ModelConfig::preset("tiny", 512).unwrap()
    }

    #[test]
    fn flat_vectors_round_trip_through_the_store() {
        let cfg = tiny();
        let a = ParamStore::init(&cfg, 1, &Device::Cpu).unwrap();
        let b = ParamStore::init(&cfg, 2, &Device::Cpu).unwrap();
        let va = a.params_to_vec().unwrap();
        assert_eq!(va.len(), cfg.num_params());
        assert_ne!(va, b.params_to_vec().unwrap());
        b.load_from_vec(&va).unwrap();
        assert_eq!(va, b.params_to_vec().unwrap());
        assert!(b.load_from_vec(&va[1..]).is_err());
    }

    #[test]
    fn the_model_aliases_the_store_and_gives_finite_logits() {
        let cfg = tiny();
        let store = ParamStore::init(&cfg, 3, &Device::Cpu).unwrap();
        let model = Model::new(&cfg, &store).unwrap();
        let toks = Tensor::from_vec((0..32u32).collect::<Vec<_>>(), (2, 16), &Device::Cpu).unwrap();
        let l1 = model.forward(&toks).unwrap();
        assert_eq!(l1.dims(), &[2, 16, 512]);
        let other = ParamStore::init(&cfg, 4, &Device::Cpu).unwrap();
        store
            .load_from_vec(&other.params_to_vec().unwrap())
            .unwrap();
        let l2 = model.forward(&toks).unwrap();
        let d = (l1 - l2)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d > 0.0 && d.is_finite());
    }

    #[test]
    fn causal_masking_keeps_early_logits_independent_of_later_tokens() {
        let cfg = tiny();
        let store = ParamStore::init(&cfg, 5, &Device::Cpu).unwrap();
        let model = Model::new(&cfg, &store).unwrap();
        let a = Tensor::new(&[[1u32, 2, 3, 4]], &Device::Cpu).unwrap();
        let b = Tensor::new(&[[1u32, 2, 3, 9]], &Device::Cpu).unwrap();
        let la = model.forward(&a).unwrap().narrow(1, 0, 3).unwrap();
        let lb = model.forward(&b).unwrap().narrow(1, 0, 3).unwrap();
        let d = (la - lb)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-5, "future token leaked: {d}");
    }
}
