#!/usr/bin/env python3
"""PyTorch CPU reference for magnet-bitnet's training throughput (not run in CI).

The same model as node/bitnet/src/model.rs — LLaMA blocks (RMSNorm pre-norm, GQA attention with
rotate-half RoPE, SwiGLU), every projection a BitLinear (weights RoundClamp(W/α)·α with
α = f16(mean|W|), activations int8 absmax per token, straight-through estimator), tied float
embedding/head — trained with AdamW (weight decay 0.1, grad clip 1.0) on random tokens of the
same batch and sequence length. Prints training tokens/s (forward + backward + optimizer step),
after warm-up steps.

Usage: bitnet_torch_train_reference.py --preset tiny|small --vocab N --batch B --seq T
       [--steps S] [--threads N] [--float]
Run by scripts/bench-bitnet-train.sh, which installs the CPU torch wheel into a venv.
"""
import argparse
import math
import time

import torch
import torch.nn.functional as F

PRESETS = {
    # d, layers, heads, kv heads, ffn
    "tiny": (256, 2, 4, 2, 512),
    "small": (512, 8, 8, 2, 1536),
}
EPS = 1e-5


def quant_w(w):
    a = w.abs().mean().clamp(min=EPS).half().float()
    q = (w / a).round().clamp(-1, 1) * a
    return w + (q - w).detach()


def quant_x(x):
    s = 127.0 / x.abs().amax(dim=-1, keepdim=True).clamp(min=EPS)
    q = (x * s).round().clamp(-128, 127) / s
    return x + (q - x).detach()


class BitLinear(torch.nn.Module):
    def __init__(self, out_f, in_f, quantized):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(out_f, in_f) * 0.02)
        self.quantized = quantized

    def forward(self, x):
        if self.quantized:
            return F.linear(quant_x(x), quant_w(self.weight))
        return F.linear(x, self.weight)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


class Block(torch.nn.Module):
    def __init__(self, d, h, kvh, ff, q):
        super().__init__()
        hd = d // h
        self.h, self.kvh, self.hd = h, kvh, hd
        self.n1 = torch.nn.Parameter(torch.ones(d))
        self.n2 = torch.nn.Parameter(torch.ones(d))
        self.q = BitLinear(d, d, q)
        self.k = BitLinear(kvh * hd, d, q)
        self.v = BitLinear(kvh * hd, d, q)
        self.o = BitLinear(d, d, q)
        self.gate = BitLinear(ff, d, q)
        self.up = BitLinear(ff, d, q)
        self.down = BitLinear(d, ff, q)

    def forward(self, x, cos, sin, mask):
        b, t, d = x.shape
        hn = rms_norm(x, self.n1)
        q = self.q(hn).view(b, t, self.h, self.hd).transpose(1, 2)
        k = self.k(hn).view(b, t, self.kvh, self.hd).transpose(1, 2)
        v = self.v(hn).view(b, t, self.kvh, self.hd).transpose(1, 2)

        def rope(z):
            z1, z2 = z[..., : self.hd // 2], z[..., self.hd // 2:]
            return z * cos + torch.cat([-z2, z1], -1) * sin

        q, k = rope(q), rope(k)
        rep = self.h // self.kvh
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd) + mask
        y = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        x = x + self.o(y)
        hn = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(hn)) * self.up(hn))


class Model(torch.nn.Module):
    def __init__(self, preset, vocab, seq, quantized):
        super().__init__()
        d, layers, h, kvh, ff = PRESETS[preset]
        self.embed = torch.nn.Parameter(torch.randn(vocab, d) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(d, h, kvh, ff, quantized) for _ in range(layers))
        self.norm = torch.nn.Parameter(torch.ones(d))
        hd = d // h
        inv = 10000.0 ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2 / hd)
        ang = torch.arange(seq, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1).float())
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1).float())
        self.register_buffer("mask", torch.full((seq, seq), float("-inf")).triu(1))

    def forward(self, tokens):
        x = self.embed[tokens]
        for b in self.blocks:
            x = b(x, self.cos, self.sin, self.mask)
        return rms_norm(x, self.norm) @ self.embed.t()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--float", action="store_true", help="the float twin (no quantization)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    m = Model(a.preset, a.vocab, a.seq, not a.float)
    opt = torch.optim.AdamW(m.parameters(), lr=3e-3, betas=(0.9, 0.98), weight_decay=0.1)
    gen = torch.Generator().manual_seed(1)
    t0 = None
    for step in range(a.warmup + a.steps):
        if step == a.warmup:
            t0 = time.perf_counter()
        toks = torch.randint(0, a.vocab, (a.batch, a.seq + 1), generator=gen)
        logits = m(toks[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), toks[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
    dt = time.perf_counter() - t0
    tps = a.steps * a.batch * a.seq / dt
    print(f"torch {torch.__version__} {a.preset} quantized={not a.float} threads={a.threads} "
          f"batch={a.batch} seq={a.seq}: {tps:.0f} tok/s ({a.steps} steps, last loss {loss.item():.3f})")


if __name__ == "__main__":
    main()
