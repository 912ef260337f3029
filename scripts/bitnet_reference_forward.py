#!/usr/bin/env python3
"""Reference forward pass of an exported BitNet b1.58 HF folder, in plain numpy.

Independent of our Rust code: it parses model.safetensors itself and implements the
LLaMA + BitLinear forward from the paper (§4.1) and the HF `autobitlinear` online mode:
  weights      W~ = RoundClamp(W / a, -1, 1) * a,  a = f16(mean|W|)  (the scale a GGUF TQ2_0 block stores)
  activations  X~ = clamp(round(X * s), -128, 127) / s,  s = 127 / max|X| per token
RoPE is the HF rotate-half layout. Embeddings and the head stay float.

Usage: bitnet_reference_forward.py HF_DIR TOKEN_IDS(comma separated) OUT.npy
Writes logits of shape (len(tokens), vocab) as float32.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": None}


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = DTYPES[info["dtype"]]
        s, e = info["data_offsets"]
        out[name] = np.frombuffer(raw[base + s : base + e], dtype=dt).reshape(info["shape"]).astype(np.float32)
    return out


def quant_weights(w):
    a = np.float32(np.float16(max(np.abs(w).mean(dtype=np.float64), 1e-5)))
    return np.clip(np.round(w / a), -1, 1).astype(np.float32) * a


def quant_acts(x):
    m = np.maximum(np.abs(x).max(axis=-1, keepdims=True), np.float32(1e-5))
    s = (np.float32(1.0) / m) * np.float32(127.0)
    # np.round is half-to-even; the reference (torch/candle) rounds half away from zero.
    y = x * s
    r = np.sign(y) * np.floor(np.abs(y) + np.float32(0.5))
    return np.clip(r, -128, 127) / s


def rms_norm(x, w, eps):
    ms = (x * x).mean(axis=-1, keepdims=True) + np.float32(eps)
    return x / np.sqrt(ms) * w


def forward(cfg, t, tokens):
    quant = "quantization_config" in cfg
    d = cfg["hidden_size"]
    h = cfg["num_attention_heads"]
    kvh = cfg["num_key_value_heads"]
    hd = d // h
    eps = cfg["rms_norm_eps"]
    n = len(tokens)

    def lin(x, name):
        w = t[name]
        if quant:
            return quant_acts(x) @ quant_weights(w).T
        return x @ w.T

    half = hd // 2
    inv = cfg["rope_theta"] ** (-(2.0 * np.arange(half)) / hd)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos = np.cos(ang).astype(np.float32)
    sin = np.sin(ang).astype(np.float32)
    cos = np.concatenate([cos, cos], axis=-1)
    sin = np.concatenate([sin, sin], axis=-1)

    def rope(x):  # (heads, n, hd)
        rot = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
        return x * cos + rot * sin

    x = t["model.embed_tokens.weight"][tokens]
    mask = np.triu(np.full((n, n), -np.inf, dtype=np.float32), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        hn = rms_norm(x, t[p + "input_layernorm.weight"], eps)
        q = lin(hn, p + "self_attn.q_proj.weight").reshape(n, h, hd).transpose(1, 0, 2)
        k = lin(hn, p + "self_attn.k_proj.weight").reshape(n, kvh, hd).transpose(1, 0, 2)
        v = lin(hn, p + "self_attn.v_proj.weight").reshape(n, kvh, hd).transpose(1, 0, 2)
        q, k = rope(q), rope(k)
        k = np.repeat(k, h // kvh, axis=0)
        v = np.repeat(v, h // kvh, axis=0)
        att = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(hd)) + mask
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att = att / att.sum(axis=-1, keepdims=True)
        y = (att @ v).transpose(1, 0, 2).reshape(n, d)
        x = x + lin(y, p + "self_attn.o_proj.weight")
        hn = rms_norm(x, t[p + "post_attention_layernorm.weight"], eps)
        g = lin(hn, p + "mlp.gate_proj.weight")
        u = lin(hn, p + "mlp.up_proj.weight")
        x = x + lin(g / (1 + np.exp(-g)) * u, p + "mlp.down_proj.weight")
    x = rms_norm(x, t["model.norm.weight"], eps)
    head = t["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else t["lm_head.weight"]
    return (x @ head.T).astype(np.float32)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    folder, ids, out = sys.argv[1:]
    with open(f"{folder}/config.json") as f:
        cfg = json.load(f)
    t = load_safetensors(f"{folder}/model.safetensors")
    tokens = np.array([int(i) for i in ids.split(",")], dtype=np.int64)
    np.save(out, forward(cfg, t, tokens))


if __name__ == "__main__":
    main()
