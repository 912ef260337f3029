//! Export a checkpoint as a llama.cpp-loadable GGUF (`TQ2_0` ternary linears) or as a Hugging
//! Face folder (`config.json` + `model.safetensors` + `tokenizer.json`).
//!
//! GGUF: architecture `llama`; every BitLinear weight is stored as its ternary codes
//! `RoundClamp(W/α, −1, 1)` with `d = α` (the f16-rounded tensor absmean, exactly the scale the
//! training forward uses) in every block, so the stored weights equal the training forward's
//! weights bit for bit. q/k rows are permuted from Hugging Face's rotate-half RoPE layout to
//! llama.cpp's interleaved one (a row permutation: weights stay ternary). Embeddings (and an untied
//! head) are `F16`, `Q8_0` or `F32`; norms are `F32`. The tokenizer goes in as `gpt2` BPE
//! (`tokenizer.ggml.tokens/token_type/merges`, `pre = gpt-2`).
//!
//! HF: latent float32 weights under `LlamaForCausalLM` names with `quantization_config
//! {quant_method: bitnet, linear_class: autobitlinear, quantization_mode: online}`, so
//! `transformers` re-quantizes them on the fly exactly as training did.
//!
//! A float-twin checkpoint (`quantized = false`) exports its linears as `F16` in GGUF.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use crate::bitlinear::ternary_codes;
use crate::config::ModelConfig;
use crate::error::{io_err, BitnetError, Result};
use crate::gguf::{
    encode_f16, encode_f32, quantize_q8_0, quantize_tq2_0, GgmlType, GgufWriter, Value,
};
use crate::model::ParamStore;
use crate::tokenizer::Tokenizer;
use crate::train::Trainer;

/// A model ready to export: config, latent weights, tokenizer.
#[derive(Debug)]
pub struct Exportable {
    /// Shape.
    pub cfg: ModelConfig,
    /// Latent weights.
    pub params: ParamStore,
    /// Tokenizer.
    pub tokenizer: Tokenizer,
}

/// Loads a checkpoint directory written by the trainer.
pub fn load_checkpoint(dir: &Path) -> Result<Exportable> {
    let st = Trainer::read_state(dir)?;
    let params = ParamStore::zeros(&st.model, &Device::Cpu)?;
    params.load_safetensors(&dir.join("model.safetensors"))?;
    let tokenizer =
        Tokenizer::load(&dir.join("tokenizer.json")).map_err(|e| BitnetError::Checkpoint {
            path: dir.into(),
            msg: format!("{e} (a checkpoint for export must contain tokenizer.json)"),
        })?;
    if tokenizer.vocab_size() != st.model.vocab_size {
        return Err(BitnetError::Checkpoint {
            path: dir.into(),
            msg: format!(
                "tokenizer has {} tokens, model {}",
                tokenizer.vocab_size(),
                st.model.vocab_size
            ),
        });
    }
    Ok(Exportable {
        cfg: st.model,
        params,
        tokenizer,
    })
}

/// Permutes the rows of a `(n_head·head_dim, cols)` matrix from rotate-half to interleaved RoPE
/// order (llama.cpp's `convert_hf_to_gguf` permutation).
pub fn permute_rope_rows<T: Copy>(w: &[T], n_head: usize, rows: usize, cols: usize) -> Vec<T> {
    let hd = rows / n_head;
    let half = hd / 2;
    let mut out = Vec::with_capacity(w.len());
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let src = h * hd + j * half + i;
                out.extend_from_slice(&w[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn encode_float(x: &[f32], ty: GgmlType) -> Result<Vec<u8>> {
    match ty {
        GgmlType::F32 => Ok(encode_f32(x)),
        GgmlType::F16 => Ok(encode_f16(x)),
        GgmlType::Q8_0 => quantize_q8_0(x),
        GgmlType::Tq2_0 => Err(BitnetError::Config(
            "embeddings cannot be stored as TQ2_0".into(),
        )),
    }
}

fn to_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// Builds the GGUF image of a model; `embed_ty` is the type of the embedding (and untied head).
pub fn gguf_writer(m: &Exportable, embed_ty: GgmlType) -> Result<GgufWriter> {
    gguf_writer_parts(&m.cfg, &m.params, Some(&m.tokenizer), embed_ty)
}

/// [`gguf_writer`] from parts; without a tokenizer the file has no `tokenizer.ggml.*` keys (fine
/// for benchmarks and our engine, not for llama.cpp).
pub fn gguf_writer_parts(
    c: &ModelConfig,
    params: &ParamStore,
    tokenizer: Option<&Tokenizer>,
    embed_ty: GgmlType,
) -> Result<GgufWriter> {
    let mut w = GgufWriter::new();
    let a = "llama";
    w.kv("general.architecture", Value::Str(a.into()))
        .kv(
            "general.name",
            Value::Str(format!(
                "magnet-bitnet-{}L-{}d",
                c.num_layers, c.hidden_size
            )),
        )
        .kv("general.alignment", Value::U32(32))
        .kv(&format!("{a}.vocab_size"), Value::U32(c.vocab_size as u32))
        .kv(
            &format!("{a}.context_length"),
            Value::U32(c.max_seq_len as u32),
        )
        .kv(
            &format!("{a}.embedding_length"),
            Value::U32(c.hidden_size as u32),
        )
        .kv(&format!("{a}.block_count"), Value::U32(c.num_layers as u32))
        .kv(
            &format!("{a}.feed_forward_length"),
            Value::U32(c.intermediate_size as u32),
        )
        .kv(
            &format!("{a}.attention.head_count"),
            Value::U32(c.num_heads as u32),
        )
        .kv(
            &format!("{a}.attention.head_count_kv"),
            Value::U32(c.num_kv_heads as u32),
        )
        .kv(
            &format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(c.rms_norm_eps as f32),
        )
        .kv(
            &format!("{a}.rope.dimension_count"),
            Value::U32(c.head_dim() as u32),
        )
        .kv(
            &format!("{a}.rope.freq_base"),
            Value::F32(c.rope_theta as f32),
        )
        .kv("magnet.bitnet.quantized", Value::Bool(c.quantized));
    if let Some(tok) = tokenizer {
        write_tokenizer(&mut w, tok)?;
    }
    write_tensors(&mut w, c, params, embed_ty)?;
    Ok(w)
}

/// The chat template every exported GGUF carries (`tokenizer.chat_template`, Jinja as
/// llama.cpp reads it): one `role: content` line per message, then `assistant:`. MAGNET models
/// are base language models trained on plain text, so the template is plain text too;
/// `magnet-worker serve` renders exactly this (docs/serving.md).
pub const CHAT_TEMPLATE: &str = "{% for message in messages %}{{ message['role'] }}: \
{{ message['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

fn write_tokenizer(w: &mut GgufWriter, tok: &Tokenizer) -> Result<()> {
    let (tokens, merges) = tok.gguf_vocab()?;
    let eos = tok.eos_id();
    let types: Vec<Value> = (0..tokens.len())
        .map(|i| Value::I32(if i as u32 == eos { 3 } else { 1 }))
        .collect();
    w.kv("tokenizer.ggml.model", Value::Str("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::Str("gpt-2".into()))
        .kv(
            "tokenizer.ggml.tokens",
            Value::Array(tokens.into_iter().map(Value::Str).collect()),
        )
        .kv("tokenizer.ggml.token_type", Value::Array(types))
        .kv(
            "tokenizer.ggml.merges",
            Value::Array(merges.into_iter().map(Value::Str).collect()),
        )
        .kv("tokenizer.ggml.bos_token_id", Value::U32(eos))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(eos))
        .kv("tokenizer.ggml.add_bos_token", Value::Bool(false))
        .kv("tokenizer.chat_template", Value::Str(CHAT_TEMPLATE.into()));
    Ok(())
}

fn write_tensors(
    w: &mut GgufWriter,
    c: &ModelConfig,
    params: &ParamStore,
    embed_ty: GgmlType,
) -> Result<()> {
    let p = |n: &str| -> Result<Tensor> { Ok(params.get(n)?.as_tensor().clone()) };
    let d = c.hidden_size as u64;
    let emb = to_vec(&p("model.embed_tokens.weight")?)?;
    w.tensor(
        "token_embd.weight",
        &[d, c.vocab_size as u64],
        embed_ty,
        encode_float(&emb, embed_ty)?,
    )?;
    let linear =
        |w: &mut GgufWriter, gname: &str, hf: &str, rope_heads: Option<usize>| -> Result<()> {
            let t = p(hf)?;
            let (rows, cols) = t.dims2()?;
            if c.quantized {
                let (codes, alpha) = ternary_codes(&t)?;
                let mut codes: Vec<i8> = to_vec(&codes)?.into_iter().map(|v| v as i8).collect();
                if let Some(h) = rope_heads {
                    codes = permute_rope_rows(&codes, h, rows, cols);
                }
                w.tensor(
                    gname,
                    &[cols as u64, rows as u64],
                    GgmlType::Tq2_0,
                    quantize_tq2_0(&codes, alpha)?,
                )?;
            } else {
                let mut v = to_vec(&t)?;
                if let Some(h) = rope_heads {
                    v = permute_rope_rows(&v, h, rows, cols);
                }
                w.tensor(
                    gname,
                    &[cols as u64, rows as u64],
                    GgmlType::F16,
                    encode_f16(&v),
                )?;
            }
            Ok(())
        };
    for l in 0..c.num_layers {
        let hf = |s: &str| format!("model.layers.{l}.{s}");
        let g = |s: &str| format!("blk.{l}.{s}.weight");
        w.tensor(
            &g("attn_norm"),
            &[d],
            GgmlType::F32,
            encode_f32(&to_vec(&p(&hf("input_layernorm.weight"))?)?),
        )?;
        linear(
            w,
            &g("attn_q"),
            &hf("self_attn.q_proj.weight"),
            Some(c.num_heads),
        )?;
        linear(
            w,
            &g("attn_k"),
            &hf("self_attn.k_proj.weight"),
            Some(c.num_kv_heads),
        )?;
        linear(w, &g("attn_v"), &hf("self_attn.v_proj.weight"), None)?;
        linear(w, &g("attn_output"), &hf("self_attn.o_proj.weight"), None)?;
        w.tensor(
            &g("ffn_norm"),
            &[d],
            GgmlType::F32,
            encode_f32(&to_vec(&p(&hf("post_attention_layernorm.weight"))?)?),
        )?;
        linear(w, &g("ffn_gate"), &hf("mlp.gate_proj.weight"), None)?;
        linear(w, &g("ffn_up"), &hf("mlp.up_proj.weight"), None)?;
        linear(w, &g("ffn_down"), &hf("mlp.down_proj.weight"), None)?;
    }
    w.tensor(
        "output_norm.weight",
        &[d],
        GgmlType::F32,
        encode_f32(&to_vec(&p("model.norm.weight")?)?),
    )?;
    if !c.tie_embeddings {
        let head = to_vec(&p("lm_head.weight")?)?;
        w.tensor(
            "output.weight",
            &[d, c.vocab_size as u64],
            embed_ty,
            encode_float(&head, embed_ty)?,
        )?;
    }
    Ok(())
}

/// Writes `out` (a `.gguf` file) from a checkpoint directory.
pub fn export_gguf(checkpoint: &Path, out: &Path, embed_ty: GgmlType) -> Result<u64> {
    let m = load_checkpoint(checkpoint)?;
    let bytes = gguf_writer(&m, embed_ty)?.to_bytes()?;
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io_err("creating", parent))?;
    }
    std::fs::write(out, &bytes).map_err(io_err("writing", out))?;
    Ok(bytes.len() as u64)
}

/// The `config.json` of the HF export.
pub fn hf_config(c: &ModelConfig, eos: u32) -> serde_json::Value {
    let mut v = serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "head_dim": c.head_dim(),
        "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "hidden_act": "silu",
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": false,
        "mlp_bias": false,
        "bos_token_id": eos,
        "eos_token_id": eos,
        "torch_dtype": "float32",
    });
    if c.quantized {
        v["quantization_config"] = serde_json::json!({
            "quant_method": "bitnet",
            "linear_class": "autobitlinear",
            "quantization_mode": "online",
            "modules_to_not_convert": ["lm_head"],
        });
    }
    v
}

/// Writes a Hugging Face folder (`config.json`, `model.safetensors`, `tokenizer.json`).
pub fn export_hf(checkpoint: &Path, out_dir: &Path) -> Result<PathBuf> {
    let m = load_checkpoint(checkpoint)?;
    std::fs::create_dir_all(out_dir).map_err(io_err("creating", out_dir))?;
    let cfg = hf_config(&m.cfg, m.tokenizer.eos_id());
    let p = out_dir.join("config.json");
    let text = serde_json::to_string_pretty(&cfg).map_err(|e| BitnetError::Model(e.to_string()))?;
    std::fs::write(&p, text).map_err(io_err("writing", &p))?;
    m.params
        .save_safetensors(&out_dir.join("model.safetensors"))?;
    m.tokenizer.save(&out_dir.join("tokenizer.json"))?;
    Ok(out_dir.to_path_buf())
}

/// Reads an HF folder written by [`export_hf`] back into an [`Exportable`].
pub fn load_hf(dir: &Path) -> Result<Exportable> {
    let p = dir.join("config.json");
    let raw = std::fs::read(&p).map_err(io_err("reading", &p))?;
    let v: serde_json::Value = serde_json::from_slice(&raw)
        .map_err(|e| BitnetError::Model(format!("{}: {e}", p.display())))?;
    let u = |k: &str| -> Result<usize> {
        v[k].as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| BitnetError::Model(format!("{}: missing integer {k}", p.display())))
    };
    let f = |k: &str| -> Result<f64> {
        v[k].as_f64()
            .ok_or_else(|| BitnetError::Model(format!("{}: missing number {k}", p.display())))
    };
    let cfg = ModelConfig {
        vocab_size: u("vocab_size")?,
        hidden_size: u("hidden_size")?,
        num_layers: u("num_hidden_layers")?,
        num_heads: u("num_attention_heads")?,
        num_kv_heads: u("num_key_value_heads")?,
        intermediate_size: u("intermediate_size")?,
        max_seq_len: u("max_position_embeddings")?,
        rms_norm_eps: f("rms_norm_eps")?,
        rope_theta: f("rope_theta")?,
        tie_embeddings: v["tie_word_embeddings"].as_bool().unwrap_or(false),
        quantized: v["quantization_config"]["quant_method"].as_str() == Some("bitnet"),
    };
    cfg.validate()?;
    let params = ParamStore::zeros(&cfg, &Device::Cpu)?;
    params.load_safetensors(&dir.join("model.safetensors"))?;
    let tokenizer = Tokenizer::load(&dir.join("tokenizer.json"))?;
    Ok(Exportable {
        cfg,
        params,
        tokenizer,
    })
}
