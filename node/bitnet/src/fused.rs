//! Fused CPU training: the model's forward and backward pass written by hand over `f32` slices.
//!
//! [`crate::model::Model`] builds the same network from candle tensor ops and differentiates it
//! with candle's autograd. On a CPU that path spends most of a step outside the matrix
//! products: every op allocates its output, every BitLinear fake-quantizes through a dozen
//! element-wise ops (and again in the backward pass), and autograd accumulates every gradient
//! through a freshly zeroed tensor. This module computes the same loss and the same gradients
//! with one pass per layer piece:
//!
//! - **BitLinear, fused**: the activation quantizer (per-token int8 absmax) runs once per input
//!   and is shared by the projections that read it (q/k/v, gate/up), whose ternary weights are
//!   stacked into one matrix, so each group is one GEMM forward and two backward. The
//!   straight-through estimator is the identity, so the backward pass is `dX = dY·W̃`,
//!   `dW = dYᵀ·X̃` with the quantized operands kept from the forward pass.
//! - RMSNorm, RoPE, causal softmax attention (GQA), SwiGLU and the cross-entropy head each
//!   have a forward and a backward kernel that work row by row in place.
//! - Matrix products go to the `gemm` crate (the kernel candle itself uses on CPU); row work is
//!   spread over rayon's pool, which the step enters once.
//!
//! Numerics follow [`crate::bitlinear`] (f16-rounded absmean weight scale, `127/max|x|`
//! activation scale, round half away from zero) and the candle model op for op, so the loss
//! and gradients agree with candle's to float rounding (checked against candle's autograd in
//! the tests below, quantized and float, tied and untied, GQA and not).
//!
//! What it guarantees: a deterministic result for a given input and thread count. What it does
//! not: bit-equality with the candle path (sums run in a different order), and a GPU path
//! (CUDA training uses candle's autograd; see [`crate::train::Kernels`]).

use half::f16;
use rayon::prelude::*;

use crate::bitlinear::EPS;
use crate::config::ModelConfig;
use crate::error::{BitnetError, Result};
use crate::model::rope_tables;

/// Parameters per transformer block in [`crate::model::param_specs`] order.
const PER_LAYER: usize = 9;
/// Work (m·n·k) below which a GEMM runs on one thread.
const PAR_WORK: usize = 1 << 18;
/// Rows per rayon task in the row-wise kernels.
const ROW_GRAIN: usize = 16;

/// Shapes of one batch.
#[derive(Debug, Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    n: usize,
    d: usize,
    h: usize,
    kvh: usize,
    hd: usize,
    kv: usize,
    f: usize,
    v: usize,
}

impl Dims {
    fn rep(&self) -> usize {
        self.h / self.kvh
    }
    /// Width of the stacked q|k|v projection.
    fn qkv(&self) -> usize {
        self.d + 2 * self.kv
    }
}

/// `C = s·op(A)·op(B)` (or `C += …` when `acc`) for row-major operands given as
/// (slice, row stride, column stride); `C` is `m × n` with row stride `ldc`.
#[allow(clippy::too_many_arguments)]
fn gemm_strided(
    m: usize,
    n: usize,
    k: usize,
    c: &mut [f32],
    ldc: usize,
    acc: bool,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    s: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let fits = |len: usize, rows: usize, cols: usize, rs: usize, cs: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    // Internal invariants: every caller derives the shapes from one validated config.
    assert!(fits(c.len(), m, n, ldc, 1), "gemm: C out of bounds");
    assert!(fits(a.0.len(), m, k, a.1, a.2), "gemm: A out of bounds");
    assert!(fits(b.0.len(), k, n, b.1, b.2), "gemm: B out of bounds");
    if k == 0 {
        if !acc {
            for r in 0..m {
                c[r * ldc..r * ldc + n].fill(0.0);
            }
        }
        return;
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= PAR_WORK {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the three asserts above keep every element gemm touches inside its slice
    // (`c` is borrowed mutably, so it cannot alias `a` or `b`); strides are non-negative.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            acc,
            a.0.as_ptr(),
            a.2 as isize,
            a.1 as isize,
            b.0.as_ptr(),
            b.2 as isize,
            b.1 as isize,
            1.0,
            s,
            false,
            false,
            false,
            par,
        )
    }
}

/// `C (m×n) = s·A·Bᵀ` with `A: m×k`, `B: n×k` (`y = x·Wᵀ`).
#[allow(clippy::too_many_arguments)] // BLAS-shaped: sizes, operands, accumulate, scale
fn mm_nt(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool, s: f32) {
    gemm_strided(m, n, k, c, n, acc, (a, k, 1), (b, 1, k), s)
}

/// `C (m×n) = s·A·B` with `A: m×k`, `B: k×n` (`dx = dy·W`).
#[allow(clippy::too_many_arguments)] // BLAS-shaped: sizes, operands, accumulate, scale
fn mm_nn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool, s: f32) {
    gemm_strided(m, n, k, c, n, acc, (a, k, 1), (b, n, 1), s)
}

/// `C (m×n) = s·Aᵀ·B` with `A: k×m`, `B: k×n` (`dW = dyᵀ·x`).
#[allow(clippy::too_many_arguments)] // BLAS-shaped: sizes, operands, accumulate, scale
fn mm_tn(m: usize, n: usize, k: usize, a: &[f32], b: &[f32], c: &mut [f32], acc: bool, s: f32) {
    gemm_strided(m, n, k, c, n, acc, (a, 1, m), (b, n, 1), s)
}

/// `x.round()` (half away from zero) without a libm call, so the quantizer loops vectorize.
/// Below 2²³ in magnitude the truncation and the fraction are exact; at or above it every
/// `f32` is already an integer (and infinities and NaN pass through unchanged), so the result
/// equals `f32::round` bit for bit everywhere (tested).
#[inline(always)]
fn round_half_away(x: f32) -> f32 {
    let t = x as i32 as f32;
    let frac = x - t;
    let step = if frac.abs() >= 0.5 {
        1f32.copysign(x)
    } else {
        0.0
    };
    // The rounded value keeps x's sign, including −0 for x in (−0.5, −0].
    let r = (t + step).copysign(x);
    if x.abs() < 8_388_608.0 {
        r
    } else {
        x
    }
}

/// Ternary weights `RoundClamp(W/α, −1, 1)·α` into `out`, as [`crate::bitlinear::quantize_weights`].
fn quant_weight(w: &[f32], out: &mut [f32]) {
    let sum: f64 = w.iter().map(|x| x.abs() as f64).sum();
    let mean = (sum / w.len().max(1) as f64).max(EPS) as f32;
    let a = f16::from_f32(mean).to_f32();
    out.par_chunks_mut(4096)
        .zip(w.par_chunks(4096))
        .for_each(|(o, w)| {
            for (o, &x) in o.iter_mut().zip(w) {
                *o = round_half_away(x / a).clamp(-1.0, 1.0) * a;
            }
        });
}

/// Per-token int8 absmax fake quantization of `x` (rows of `width`) into `out`, as
/// [`crate::bitlinear::quantize_activations`].
fn quant_act(x: &[f32], out: &mut [f32], width: usize) {
    out.par_chunks_mut(width)
        .zip(x.par_chunks(width))
        .with_min_len(ROW_GRAIN)
        .for_each(|(o, x)| {
            let m = x.iter().fold(0f32, |m, v| m.max(v.abs())).max(EPS as f32);
            let s = (1.0 / m) * 127.0;
            for (o, &v) in o.iter_mut().zip(x) {
                *o = round_half_away(v * s).clamp(-128.0, 127.0) / s;
            }
        });
}

/// RMSNorm rows: `y = x / sqrt(mean(x²) + eps) · w`; returns the per-row root (kept for backward).
fn rms_fwd(x: &[f32], w: &[f32], eps: f32, y: &mut [f32], rs: &mut [f32]) {
    let d = w.len();
    y.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(rs.par_iter_mut())
        .with_min_len(ROW_GRAIN)
        .for_each(|((y, x), r)| {
            let ms = x.iter().map(|v| v * v).sum::<f32>() / d as f32 + eps;
            *r = ms.sqrt();
            for ((y, &v), &g) in y.iter_mut().zip(x).zip(w) {
                *y = v / *r * g;
            }
        });
}

/// RMSNorm backward: adds `∂L/∂x` to `dx` and returns `∂L/∂w`.
fn rms_bwd(x: &[f32], rs: &[f32], w: &[f32], dy: &[f32], dx: &mut [f32]) -> Vec<f32> {
    let d = w.len();
    dx.par_chunks_mut(d)
        .zip(x.par_chunks(d))
        .zip(dy.par_chunks(d))
        .zip(rs.par_iter())
        .with_min_len(ROW_GRAIN)
        .for_each(|(((dx, x), dy), &r)| {
            let dot: f32 = x.iter().zip(dy).zip(w).map(|((x, g), w)| x * g * w).sum();
            let c = dot / (d as f32 * r * r * r);
            for (((o, &x), &g), &w) in dx.iter_mut().zip(x).zip(dy).zip(w) {
                *o += g * w / r - x * c;
            }
        });
    let mut dw = vec![0f32; d];
    for ((x, dy), &r) in x.chunks(d).zip(dy.chunks(d)).zip(rs) {
        for ((o, &x), &g) in dw.iter_mut().zip(x).zip(dy) {
            *o += g * x / r;
        }
    }
    dw
}

/// RoPE ("rotate half") of one head vector at table row `c`, `s`.
fn rope(x: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    let half = c.len();
    for i in 0..half {
        let (x1, x2) = (x[i], x[i + half]);
        out[i] = x1 * c[i] + -x2 * s[i];
        out[i + half] = x2 * c[i] + x1 * s[i];
    }
}

/// The transpose of [`rope`] (its gradient).
fn rope_bwd(dy: &[f32], c: &[f32], s: &[f32], out: &mut [f32]) {
    let half = c.len();
    for i in 0..half {
        let (g1, g2) = (dy[i], dy[i + half]);
        out[i] = g1 * c[i] + g2 * s[i];
        out[i + half] = g2 * c[i] - g1 * s[i];
    }
}

/// One block's ternary (or float) weights, stacked the way the fused GEMMs read them.
struct BlockWeights {
    qkv: Vec<f32>,
    o: Vec<f32>,
    gu: Vec<f32>,
    down: Vec<f32>,
}

/// What a block's forward pass keeps for its backward pass.
struct BlockCache {
    x_in: Vec<f32>,
    rs1: Vec<f32>,
    xq1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    p: Vec<f32>,
    yq: Vec<f32>,
    x_mid: Vec<f32>,
    rs2: Vec<f32>,
    xq2: Vec<f32>,
    gu: Vec<f32>,
    mq: Vec<f32>,
}

/// The fused trainer's model: shapes, RoPE tables and the parameter layout of a [`ModelConfig`].
#[derive(Debug, Clone)]
pub struct FusedModel {
    cfg: ModelConfig,
    /// Name and element count of every parameter, in store order (checked on each call).
    specs: Vec<(String, usize)>,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

/// Loss and gradients of one micro-batch.
#[derive(Debug, Clone)]
pub struct LossAndGrads {
    /// Mean next-token cross-entropy (nats/token), unscaled.
    pub loss: f64,
    /// `scale · ∂loss/∂p` for every parameter, in [`crate::model::param_specs`] order.
    pub grads: Vec<Vec<f32>>,
}

impl FusedModel {
    /// The fused model of `cfg` (validated).
    pub fn new(cfg: &ModelConfig) -> Result<Self> {
        cfg.validate()?;
        let (cos, sin) = rope_tables(cfg);
        let specs = crate::model::param_specs(cfg)
            .into_iter()
            .map(|(name, shape, _)| (name, shape.iter().product()))
            .collect();
        Ok(Self {
            cfg: cfg.clone(),
            specs,
            cos,
            sin,
        })
    }

    fn dims(&self, b: usize, t: usize) -> Dims {
        let c = &self.cfg;
        Dims {
            b,
            t,
            n: b * t,
            d: c.hidden_size,
            h: c.num_heads,
            kvh: c.num_kv_heads,
            hd: c.head_dim(),
            kv: c.kv_dim(),
            f: c.intermediate_size,
            v: c.vocab_size,
        }
    }

    fn check(&self, params: &[&[f32]], inputs: &[u32], targets: &[u32], b: usize) -> Result<usize> {
        let bad = |m: String| Err(BitnetError::Model(m));
        let specs = &self.specs;
        if params.len() != specs.len() {
            return bad(format!(
                "fused model expects {} parameter tensors, got {}",
                specs.len(),
                params.len()
            ));
        }
        for ((name, want), p) in specs.iter().zip(params) {
            if p.len() != *want {
                return bad(format!(
                    "parameter {name} has {} values, want {want}",
                    p.len()
                ));
            }
        }
        if b == 0
            || inputs.is_empty()
            || !inputs.len().is_multiple_of(b)
            || targets.len() != inputs.len()
        {
            return bad(format!(
                "a batch of {b} sequences needs inputs and targets of one length divisible by {b} \
                 (got {} and {})",
                inputs.len(),
                targets.len()
            ));
        }
        let t = inputs.len() / b;
        if t > self.cfg.max_seq_len {
            return bad(format!(
                "sequence length {t} is outside 1..={}",
                self.cfg.max_seq_len
            ));
        }
        if let Some(&tok) = inputs
            .iter()
            .chain(targets)
            .find(|&&x| x as usize >= self.cfg.vocab_size)
        {
            return bad(format!(
                "token id {tok} is outside the vocabulary of {}",
                self.cfg.vocab_size
            ));
        }
        Ok(t)
    }

    /// Mean cross-entropy of `inputs` predicting `targets` (`b` sequences, row-major) and the
    /// gradients of `scale ·` that loss with respect to every parameter. `params` are the latent
    /// weights in [`crate::model::param_specs`] order. Runs inside rayon's global pool.
    pub fn loss_and_grads(
        &self,
        params: &[&[f32]],
        inputs: &[u32],
        targets: &[u32],
        b: usize,
        scale: f32,
    ) -> Result<LossAndGrads> {
        let t = self.check(params, inputs, targets, b)?;
        let dims = self.dims(b, t);
        Ok(rayon::scope(|_| {
            self.run(params, inputs, targets, dims, Some(scale))
        }))
    }

    /// The forward pass only: mean cross-entropy of `inputs` predicting `targets`.
    pub fn loss(
        &self,
        params: &[&[f32]],
        inputs: &[u32],
        targets: &[u32],
        b: usize,
    ) -> Result<f64> {
        let t = self.check(params, inputs, targets, b)?;
        let dims = self.dims(b, t);
        Ok(rayon::scope(|_| self.run(params, inputs, targets, dims, None)).loss)
    }

    fn block_weights(&self, params: &[&[f32]], l: usize, dm: Dims) -> BlockWeights {
        let base = 1 + PER_LAYER * l;
        let q = self.cfg.quantized;
        let stack = |idx: &[usize], rows: usize, cols: usize| {
            let mut out = vec![0f32; rows * cols];
            let mut at = 0;
            for &i in idx {
                let w = params[base + i];
                let dst = &mut out[at..at + w.len()];
                if q {
                    quant_weight(w, dst);
                } else {
                    dst.copy_from_slice(w);
                }
                at += w.len();
            }
            out
        };
        BlockWeights {
            qkv: stack(&[1, 2, 3], dm.qkv(), dm.d),
            o: stack(&[4], dm.d, dm.d),
            gu: stack(&[6, 7], 2 * dm.f, dm.d),
            down: stack(&[8], dm.d, dm.f),
        }
    }

    fn act(&self, x: &[f32], width: usize) -> Vec<f32> {
        if self.cfg.quantized {
            let mut out = vec![0f32; x.len()];
            quant_act(x, &mut out, width);
            out
        } else {
            x.to_vec()
        }
    }

    fn block_fwd(
        &self,
        x: &mut [f32],
        w: &BlockWeights,
        norms: (&[f32], &[f32]),
        dm: Dims,
    ) -> BlockCache {
        let (n, d, t, hd, half) = (dm.n, dm.d, dm.t, dm.hd, dm.hd / 2);
        let eps = self.cfg.rms_norm_eps as f32;
        let x_in = x.to_vec();
        let mut hn = vec![0f32; n * d];
        let mut rs1 = vec![0f32; n];
        rms_fwd(&x_in, norms.0, eps, &mut hn, &mut rs1);
        let xq1 = self.act(&hn, d);
        let w3 = dm.qkv();
        let mut qkv = vec![0f32; n * w3];
        mm_nt(n, w3, d, &xq1, &w.qkv, &mut qkv, false, 1.0);
        // Head-major q (B,h,T,hd), k and v (B,kvh,T,hd), RoPE applied to q and k.
        let (cos, sin) = (&self.cos, &self.sin);
        let head_major = |heads: usize, col0: usize, rotate: bool| {
            let mut out = vec![0f32; dm.b * heads * t * hd];
            out.par_chunks_mut(t * hd)
                .enumerate()
                .for_each(|(i, chunk)| {
                    let (bi, hh) = (i / heads, i % heads);
                    for (ti, o) in chunk.chunks_mut(hd).enumerate() {
                        let row = (bi * t + ti) * w3 + col0 + hh * hd;
                        let src = &qkv[row..row + hd];
                        if rotate {
                            let tab = ti * half..(ti + 1) * half;
                            rope(src, &cos[tab.clone()], &sin[tab], o);
                        } else {
                            o.copy_from_slice(src);
                        }
                    }
                });
            out
        };
        let q = head_major(dm.h, 0, true);
        let k = head_major(dm.kvh, d, true);
        let v = head_major(dm.kvh, d + dm.kv, false);
        drop(qkv);
        // Attention, one task per (batch, kv head): its `rep` query heads are contiguous.
        let rep = dm.rep();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut p = vec![0f32; dm.b * dm.h * t * t];
        let mut y = vec![0f32; dm.b * dm.h * t * hd];
        p.par_chunks_mut(rep * t * t)
            .zip(y.par_chunks_mut(rep * t * hd))
            .zip(q.par_chunks(rep * t * hd))
            .zip(k.par_chunks(t * hd).zip(v.par_chunks(t * hd)))
            .for_each(|(((p, y), q), (k, v))| {
                for r in 0..rep {
                    let pr = &mut p[r * t * t..(r + 1) * t * t];
                    mm_nt(
                        t,
                        t,
                        hd,
                        &q[r * t * hd..(r + 1) * t * hd],
                        k,
                        pr,
                        false,
                        scale,
                    );
                    for (i, row) in pr.chunks_mut(t).enumerate() {
                        let mx = row[..=i].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                        let mut sum = 0f32;
                        for e in &mut row[..=i] {
                            *e = (*e - mx).exp();
                            sum += *e;
                        }
                        for e in &mut row[..=i] {
                            *e /= sum;
                        }
                        row[i + 1..].fill(0.0);
                    }
                    mm_nn(
                        t,
                        hd,
                        t,
                        pr,
                        v,
                        &mut y[r * t * hd..(r + 1) * t * hd],
                        false,
                        1.0,
                    );
                }
            });
        // Back to token-major (N, d) for the output projection.
        let mut y_tok = vec![0f32; n * d];
        y_tok
            .par_chunks_mut(d)
            .enumerate()
            .with_min_len(ROW_GRAIN)
            .for_each(|(row, out)| {
                let (bi, ti) = (row / t, row % t);
                for hh in 0..dm.h {
                    let src = ((bi * dm.h + hh) * t + ti) * hd;
                    out[hh * hd..(hh + 1) * hd].copy_from_slice(&y[src..src + hd]);
                }
            });
        drop(y);
        let yq = self.act(&y_tok, d);
        drop(y_tok);
        mm_nt(n, d, d, &yq, &w.o, x, true, 1.0);
        let x_mid = x.to_vec();
        let mut rs2 = vec![0f32; n];
        rms_fwd(&x_mid, norms.1, eps, &mut hn, &mut rs2);
        let xq2 = self.act(&hn, d);
        let f = dm.f;
        let mut gu = vec![0f32; n * 2 * f];
        mm_nt(n, 2 * f, d, &xq2, &w.gu, &mut gu, false, 1.0);
        let mut m = vec![0f32; n * f];
        m.par_chunks_mut(f)
            .zip(gu.par_chunks(2 * f))
            .with_min_len(ROW_GRAIN)
            .for_each(|(m, gu)| {
                let (g, u) = gu.split_at(f);
                for ((m, &g), &u) in m.iter_mut().zip(g).zip(u) {
                    *m = g / (1.0 + (-g).exp()) * u;
                }
            });
        let mq = self.act(&m, f);
        drop(m);
        mm_nt(n, d, f, &mq, &w.down, x, true, 1.0);
        BlockCache {
            x_in,
            rs1,
            xq1,
            q,
            k,
            v,
            p,
            yq,
            x_mid,
            rs2,
            xq2,
            gu,
            mq,
        }
    }

    /// Backward through one block: `dx` holds `∂L/∂x_out` and leaves holding `∂L/∂x_in`;
    /// the block's nine gradients are returned in store order.
    fn block_bwd(
        &self,
        dx: &mut [f32],
        w: &BlockWeights,
        c: &BlockCache,
        norms: (&[f32], &[f32]),
        dm: Dims,
    ) -> Vec<Vec<f32>> {
        let (n, d, f, t, hd, half) = (dm.n, dm.d, dm.f, dm.t, dm.hd, dm.hd / 2);
        // SwiGLU MLP.
        let mut d_down = vec![0f32; d * f];
        mm_tn(d, f, n, dx, &c.mq, &mut d_down, false, 1.0);
        let mut dm_ = vec![0f32; n * f];
        mm_nn(n, f, d, dx, &w.down, &mut dm_, false, 1.0);
        let mut dgu = vec![0f32; n * 2 * f];
        dgu.par_chunks_mut(2 * f)
            .zip(c.gu.par_chunks(2 * f))
            .zip(dm_.par_chunks(f))
            .with_min_len(ROW_GRAIN)
            .for_each(|((dgu, gu), dmr)| {
                let (g, u) = gu.split_at(f);
                let (dg, du) = dgu.split_at_mut(f);
                for i in 0..f {
                    let s = 1.0 / (1.0 + (-g[i]).exp());
                    let silu = g[i] * s;
                    dg[i] = dmr[i] * u[i] * s * (1.0 + g[i] * (1.0 - s));
                    du[i] = dmr[i] * silu;
                }
            });
        drop(dm_);
        let mut d_gu = vec![0f32; 2 * f * d];
        mm_tn(2 * f, d, n, &dgu, &c.xq2, &mut d_gu, false, 1.0);
        let mut dhn = vec![0f32; n * d];
        mm_nn(n, d, 2 * f, &dgu, &w.gu, &mut dhn, false, 1.0);
        drop(dgu);
        let d_ffn_norm = rms_bwd(&c.x_mid, &c.rs2, norms.1, &dhn, dx);
        // Attention output projection.
        let mut d_o = vec![0f32; d * d];
        mm_tn(d, d, n, dx, &c.yq, &mut d_o, false, 1.0);
        let mut dy_tok = vec![0f32; n * d];
        mm_nn(n, d, d, dx, &w.o, &mut dy_tok, false, 1.0);
        let mut dy = vec![0f32; dm.b * dm.h * t * hd];
        dy.par_chunks_mut(t * hd)
            .enumerate()
            .for_each(|(i, chunk)| {
                let (bi, hh) = (i / dm.h, i % dm.h);
                for (ti, o) in chunk.chunks_mut(hd).enumerate() {
                    let src = (bi * t + ti) * d + hh * hd;
                    o.copy_from_slice(&dy_tok[src..src + hd]);
                }
            });
        drop(dy_tok);
        // Attention core.
        let rep = dm.rep();
        let scale = 1.0 / (hd as f32).sqrt();
        let mut dq = vec![0f32; c.q.len()];
        let mut dk = vec![0f32; c.k.len()];
        let mut dv = vec![0f32; c.v.len()];
        dq.par_chunks_mut(rep * t * hd)
            .zip(dk.par_chunks_mut(t * hd).zip(dv.par_chunks_mut(t * hd)))
            .zip(c.p.par_chunks(rep * t * t).zip(dy.par_chunks(rep * t * hd)))
            .zip(c.q.par_chunks(rep * t * hd))
            .zip(c.k.par_chunks(t * hd).zip(c.v.par_chunks(t * hd)))
            .for_each(|((((dq, (dk, dv)), (p, dy)), q), (k, v))| {
                let mut ds = vec![0f32; t * t];
                for r in 0..rep {
                    let pr = &p[r * t * t..(r + 1) * t * t];
                    let dyr = &dy[r * t * hd..(r + 1) * t * hd];
                    mm_nt(t, t, hd, dyr, v, &mut ds, false, 1.0);
                    mm_tn(t, hd, t, pr, dyr, dv, r > 0, 1.0);
                    for (dsr, pr) in ds.chunks_mut(t).zip(pr.chunks(t)) {
                        let dot: f32 = dsr.iter().zip(pr).map(|(a, b)| a * b).sum();
                        for (e, &pv) in dsr.iter_mut().zip(pr) {
                            *e = pv * (*e - dot);
                        }
                    }
                    let qr = &q[r * t * hd..(r + 1) * t * hd];
                    mm_nn(
                        t,
                        hd,
                        t,
                        &ds,
                        k,
                        &mut dq[r * t * hd..(r + 1) * t * hd],
                        false,
                        scale,
                    );
                    mm_tn(t, hd, t, &ds, qr, dk, r > 0, scale);
                }
            });
        drop(dy);
        // Undo RoPE and go back to the token-major stacked q|k|v gradient.
        let w3 = dm.qkv();
        let (cos, sin) = (&self.cos, &self.sin);
        let mut dqkv = vec![0f32; n * w3];
        dqkv.par_chunks_mut(w3)
            .enumerate()
            .with_min_len(ROW_GRAIN)
            .for_each(|(row, out)| {
                let (bi, ti) = (row / t, row % t);
                let tab = ti * half..(ti + 1) * half;
                let (c_, s_) = (&cos[tab.clone()], &sin[tab]);
                for hh in 0..dm.h {
                    let src = ((bi * dm.h + hh) * t + ti) * hd;
                    rope_bwd(&dq[src..src + hd], c_, s_, &mut out[hh * hd..(hh + 1) * hd]);
                }
                for g in 0..dm.kvh {
                    let src = ((bi * dm.kvh + g) * t + ti) * hd;
                    let kc = d + g * hd;
                    rope_bwd(&dk[src..src + hd], c_, s_, &mut out[kc..kc + hd]);
                    let vc = d + dm.kv + g * hd;
                    out[vc..vc + hd].copy_from_slice(&dv[src..src + hd]);
                }
            });
        drop((dq, dk, dv));
        let mut d_qkv = vec![0f32; w3 * d];
        mm_tn(w3, d, n, &dqkv, &c.xq1, &mut d_qkv, false, 1.0);
        mm_nn(n, d, w3, &dqkv, &w.qkv, &mut dhn, false, 1.0);
        drop(dqkv);
        let d_attn_norm = rms_bwd(&c.x_in, &c.rs1, norms.0, &dhn, dx);
        let (dq_w, rest) = d_qkv.split_at(d * d);
        let (dk_w, dv_w) = rest.split_at(dm.kv * d);
        let (dg_w, du_w) = d_gu.split_at(f * d);
        vec![
            d_attn_norm,
            dq_w.to_vec(),
            dk_w.to_vec(),
            dv_w.to_vec(),
            d_o,
            d_ffn_norm,
            dg_w.to_vec(),
            du_w.to_vec(),
            d_down,
        ]
    }

    fn run(
        &self,
        params: &[&[f32]],
        inputs: &[u32],
        targets: &[u32],
        dm: Dims,
        scale: Option<f32>,
    ) -> LossAndGrads {
        let (n, d, v) = (dm.n, dm.d, dm.v);
        let layers = self.cfg.num_layers;
        let eps = self.cfg.rms_norm_eps as f32;
        let embed = params[0];
        let norm_w = params[1 + PER_LAYER * layers];
        let head = if self.cfg.tie_embeddings {
            embed
        } else {
            params[2 + PER_LAYER * layers]
        };
        let mut x = vec![0f32; n * d];
        for (row, &tok) in x.chunks_mut(d).zip(inputs) {
            let s = tok as usize * d;
            row.copy_from_slice(&embed[s..s + d]);
        }
        let mut weights = Vec::with_capacity(layers);
        let mut caches = Vec::with_capacity(layers);
        for l in 0..layers {
            let base = 1 + PER_LAYER * l;
            let w = self.block_weights(params, l, dm);
            let c = self.block_fwd(&mut x, &w, (params[base], params[base + 5]), dm);
            weights.push(w);
            if scale.is_some() {
                caches.push(c);
            }
        }
        let mut xn = vec![0f32; n * d];
        let mut rsf = vec![0f32; n];
        rms_fwd(&x, norm_w, eps, &mut xn, &mut rsf);
        let mut logits = vec![0f32; n * v];
        mm_nt(n, v, d, &xn, head, &mut logits, false, 1.0);
        // Cross-entropy; the logits turn into `scale·(softmax − onehot)/N` in place.
        let g = scale.unwrap_or(0.0) / n as f32;
        let mut row_loss = vec![0f64; n];
        logits
            .par_chunks_mut(v)
            .zip(targets.par_iter())
            .zip(row_loss.par_iter_mut())
            .with_min_len(ROW_GRAIN)
            .for_each(|((row, &y), out)| {
                let mx = row.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z));
                let zy = row[y as usize];
                let mut sum = 0f32;
                for z in row.iter_mut() {
                    *z = (*z - mx).exp();
                    sum += *z;
                }
                *out = (mx + sum.ln() - zy) as f64;
                let k = g / sum;
                for z in row.iter_mut() {
                    *z *= k;
                }
                row[y as usize] -= g;
            });
        let loss = row_loss.iter().sum::<f64>() / n as f64;
        let Some(_) = scale else {
            return LossAndGrads {
                loss,
                grads: Vec::new(),
            };
        };
        let dlogits = logits;
        let mut grads: Vec<Vec<f32>> = vec![Vec::new(); params.len()];
        let mut d_head = vec![0f32; v * d];
        mm_tn(v, d, n, &dlogits, &xn, &mut d_head, false, 1.0);
        let mut dxn = vec![0f32; n * d];
        mm_nn(n, d, v, &dlogits, head, &mut dxn, false, 1.0);
        drop(dlogits);
        let mut dx = vec![0f32; n * d];
        grads[1 + PER_LAYER * layers] = rms_bwd(&x, &rsf, norm_w, &dxn, &mut dx);
        drop(dxn);
        for l in (0..layers).rev() {
            let base = 1 + PER_LAYER * l;
            let norms = (params[base], params[base + 5]);
            let gs = self.block_bwd(&mut dx, &weights[l], &caches[l], norms, dm);
            for (i, gr) in gs.into_iter().enumerate() {
                grads[base + i] = gr;
            }
        }
        let mut d_embed = if self.cfg.tie_embeddings {
            d_head
        } else {
            grads[2 + PER_LAYER * layers] = d_head;
            vec![0f32; v * d]
        };
        for (row, &tok) in dx.chunks(d).zip(inputs) {
            let s = tok as usize * d;
            for (o, &g) in d_embed[s..s + d].iter_mut().zip(row) {
                *o += g;
            }
        }
        grads[0] = d_embed;
        LossAndGrads { loss, grads }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Model, ParamStore};
    use candle_core::{Device, Tensor};

    fn cfg(quantized: bool, tied: bool, kvh: usize) -> ModelConfig {
        let mut c = ModelConfig::preset("tiny", 96).expect("tiny preset");
        c.hidden_size = 256;
        c.num_heads = 4;
        c.num_kv_heads = kvh;
        c.intermediate_size = 256;
        c.num_layers = 2;
        c.max_seq_len = 16;
        c.quantized = quantized;
        c.tie_embeddings = tied;
        c
    }

    fn tokens(n: usize, v: usize, seed: u64) -> Vec<u32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s % v as u64) as u32
            })
            .collect()
    }

    /// ‖a − b‖ / ‖b‖.
    fn rel(a: &[f32], b: &[f32]) -> f64 {
        let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
        let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
        (num / den.max(1e-30)).sqrt()
    }

    /// The fused loss and every gradient against candle's autograd of [`Model::loss`].
    fn agrees_with_candle(c: ModelConfig, tol: f64) {
        let dev = Device::Cpu;
        let params = ParamStore::init(&c, 7, &dev).expect("init");
        let (b, t) = (3, 12);
        let x = tokens(b * t, c.vocab_size, 1);
        let y = tokens(b * t, c.vocab_size, 2);
        let model = Model::new(&c, &params).expect("model");
        let xt = Tensor::from_vec(x.clone(), (b, t), &dev).expect("x");
        let yt = Tensor::from_vec(y.clone(), (b, t), &dev).expect("y");
        let loss = model.loss(&xt, &yt).expect("loss");
        let want_loss = loss.to_scalar::<f32>().expect("scalar") as f64;
        let store = (loss * 0.5).expect("scale").backward().expect("backward");
        let flat = params.host_vecs().expect("host copies");
        let views: Vec<&[f32]> = flat.iter().map(|v| v.as_slice()).collect();
        let fused = FusedModel::new(&c).expect("fused");
        let got = fused
            .loss_and_grads(&views, &x, &y, b, 0.5)
            .expect("fused grads");
        assert!(
            (got.loss - want_loss).abs() <= 1e-5 * want_loss,
            "loss {} vs candle {want_loss}",
            got.loss
        );
        let fwd_only = fused.loss(&views, &x, &y, b).expect("fused loss");
        assert_eq!(fwd_only, got.loss);
        for ((name, var), g) in params.entries().iter().zip(&got.grads) {
            let want: Vec<f32> = store
                .get(var.as_tensor())
                .expect("candle grad")
                .flatten_all()
                .and_then(|t| t.to_vec1())
                .expect("vec");
            let e = rel(g, &want);
            assert!(
                e <= tol,
                "{name}: relative gradient error {e:.2e} > {tol:.0e}"
            );
        }
    }

    // Ternary tolerances are looser than the float twin's: an activation that sits within float
    // rounding of a quantization threshold can land on the other int8 level in one of the two
    // implementations (sums run in a different order), which moves a few gradient entries.
    #[test]
    fn fused_gradients_match_candle_autograd_for_the_ternary_model_with_gqa() {
        agrees_with_candle(cfg(true, true, 2), 1e-3);
    }

    #[test]
    fn fused_gradients_match_candle_autograd_for_an_untied_mha_ternary_model() {
        agrees_with_candle(cfg(true, false, 4), 1e-3);
    }

    #[test]
    fn fused_gradients_match_candle_autograd_for_the_float_twin() {
        agrees_with_candle(cfg(false, true, 2), 1e-5);
        agrees_with_candle(cfg(false, false, 1), 1e-5);
    }

    #[test]
    fn the_inline_rounding_equals_f32_round_everywhere_it_is_used() {
        let mut xs = vec![
            0.0,
            -0.0,
            0.5,
            -0.5,
            1.5,
            -1.5,
            2.5,
            0.499_999_97,
            -0.499_999_97,
            127.5,
            -128.5,
            8_388_607.5,
            8_388_608.0,
            -8_388_609.0,
            1e30,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::MIN_POSITIVE,
        ];
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        for _ in 0..200_000 {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            xs.push(f32::from_bits(s as u32) % 300.0);
        }
        for x in xs.into_iter().filter(|x| !x.is_nan()) {
            assert_eq!(round_half_away(x).to_bits(), x.round().to_bits(), "{x}");
        }
        assert!(round_half_away(f32::NAN).is_nan());
    }

    #[test]
    fn bad_batches_are_refused_with_a_reason() {
        let c = cfg(true, true, 2);
        let fused = FusedModel::new(&c).expect("fused");
        let params = ParamStore::init(&c, 1, &Device::Cpu).expect("init");
        let flat = params.host_vecs().expect("host copies");
        let views: Vec<&[f32]> = flat.iter().map(|v| v.as_slice()).collect();
        let ok = tokens(8, c.vocab_size, 3);
        // (case, parameters, inputs, targets, batch, expected words in the error)
        type Case<'a> = (&'a str, Vec<&'a [f32]>, Vec<u32>, Vec<u32>, usize, &'a str);
        let cases: Vec<Case> = vec![
            (
                "missing parameter",
                views[1..].to_vec(),
                ok.clone(),
                ok.clone(),
                2,
                "parameter tensors",
            ),
            (
                "zero batch",
                views.clone(),
                ok.clone(),
                ok.clone(),
                0,
                "batch of 0",
            ),
            (
                "ragged batch",
                views.clone(),
                ok[..7].to_vec(),
                ok[..7].to_vec(),
                2,
                "divisible",
            ),
            (
                "targets differ",
                views.clone(),
                ok.clone(),
                ok[..6].to_vec(),
                2,
                "one length",
            ),
            (
                "too long",
                views.clone(),
                tokens(40, 96, 4),
                tokens(40, 96, 5),
                2,
                "sequence length 20",
            ),
            (
                "token out of vocab",
                views.clone(),
                vec![96; 8],
                ok.clone(),
                2,
                "token id 96",
            ),
        ];
        for (what, p, x, y, b, want) in cases {
            let err = fused
                .loss_and_grads(&p, &x, &y, b, 1.0)
                .expect_err(what)
                .to_string();
            assert!(err.contains(want), "{what}: {err}");
        }
        let mut short = views.clone();
        short[1] = &flat[1][..3];
        let err = fused
            .loss(&short, &ok, &ok, 2)
            .expect_err("short")
            .to_string();
        assert!(
            err.contains("model.layers.0.input_layernorm.weight has 3 values"),
            "{err}"
        );
    }
}
