//! The ternary × int8 matrix-vector kernel, with runtime-selected SIMD.
//!
//! Weights stay in the `TQ2_0` bit layout (2 bits per weight, code `t+1 ∈ {0,1,2}`); activations
//! are int8 with one per-token scale. For a row, `Σ_j t_j·x_j = Σ_j (t_j+1)·x_j − Σ_j x_j`: the
//! first sum is an unsigned×signed byte dot product — AVX2 `vpmaddubsw` (+ `vpmaddwd`), or AVX-512
//! VNNI `vpdpbusd` — and the second is computed once per vector.
//!
//! Exactness: every kernel computes the same integer sums exactly (no saturation is possible:
//! `|(t+1)·x| ≤ 256`, four `vpmaddubsw` lanes sum to at most 2048 < 2¹⁵), and the float epilogue
//! (`isum as f32 · d`, then `/ s`) is the same sequence of IEEE operations in every kernel (the SIMD
//! ones run it on four lanes), so the portable and SIMD kernels agree bit for bit. When all blocks
//! of a row share one scale (our exporter's files) the integer sum runs over the whole row;
//! otherwise per block.
//!
//! The SIMD kernels compute four rows per step: each activation vector is loaded once for the four
//! rows, the four accumulators stay in registers, and one horizontal reduction yields the four
//! sums (short rows — 512 columns are two blocks — made the per-row call, reduction and epilogue
//! a large share of the work). The portable kernel stays the one-row reference.
//!
//! Threads (a [`Team`]) split the rows; each row is computed by one thread, so results do not
//! depend on the thread count.
//!
//! Batched decode ([`matmul`]) applies one matrix to several activation vectors (one per
//! sequence): each group of four packed rows is applied to every vector before the next group is
//! read, so the weights stream from memory once per step instead of once per sequence. Vectors in
//! groups of four also share the decoding of the codes: the SIMD kernels unpack each block's codes
//! once and multiply them into four vectors (one row, four accumulators), which makes the
//! products faster than four matrix-vector products even where the weights fit in cache. The integer sums are exact and each vector's float epilogue is the one
//! [`matvec`] runs, so every vector's result equals its matrix-vector product bit for bit
//! ([`matvec`] is the batch of one). The Q8_0 head ([`Q8Matrix::matmul`]) likewise widens each
//! weight to f32 once for four vectors.

use crate::error::{BitnetError, Result};
use crate::team::Team;

/// Bytes of packed codes in one tile of rows of a batched product (see `rows_simd!`).
const TILE_BYTES: usize = 16 * 1024;

/// Weights per `TQ2_0` block.
pub const QK: usize = 256;
/// Packed bytes per block (without the scale).
pub const QS: usize = 64;

/// A `TQ2_0` matrix unpacked into packed codes and f32 block scales.
#[derive(Debug, Clone)]
pub struct TernaryMatrix {
    /// Output rows.
    pub rows: usize,
    /// Input columns (a multiple of 256).
    pub cols: usize,
    qs: Vec<u8>,
    d: Vec<f32>,
    uniform: Option<Vec<f32>>,
}

impl TernaryMatrix {
    /// From the raw bytes of a `(rows, cols)` `TQ2_0` tensor.
    pub fn from_tq2_0(bytes: &[u8], rows: usize, cols: usize) -> Result<Self> {
        if !cols.is_multiple_of(QK) || bytes.len() != rows * cols / QK * 66 {
            return Err(BitnetError::Model(format!(
                "TQ2_0 tensor of {} bytes does not hold a {rows}x{cols} matrix",
                bytes.len()
            )));
        }
        let nb = rows * cols / QK;
        let mut qs = Vec::with_capacity(nb * QS);
        let mut d = Vec::with_capacity(nb);
        for blk in bytes.chunks_exact(66) {
            if blk[..QS]
                .iter()
                .any(|b| (0..4).any(|k| (b >> (2 * k)) & 3 == 3))
            {
                return Err(BitnetError::Model(
                    "TQ2_0 block holds the invalid code 3".into(),
                ));
            }
            qs.extend_from_slice(&blk[..QS]);
            d.push(half::f16::from_le_bytes([blk[64], blk[65]]).to_f32());
        }
        let bpr = cols / QK;
        let uniform = d
            .chunks_exact(bpr)
            .map(|r| r.iter().all(|x| *x == r[0]).then_some(r[0]))
            .collect::<Option<Vec<f32>>>();
        Ok(Self {
            rows,
            cols,
            qs,
            d,
            uniform,
        })
    }

    /// From ternary codes (row-major, each in {−1,0,1}) and one scale for every block.
    pub fn from_codes(codes: &[i8], rows: usize, cols: usize, d: f32) -> Result<Self> {
        let bytes = crate::gguf::quantize_tq2_0(codes, d)?;
        Self::from_tq2_0(&bytes, rows, cols)
    }

    /// The rows of `parts`, in order, as one matrix (all must have the same columns). Every row
    /// keeps its bits and scales, so a product with the stack equals the parts' products one
    /// after another — decode runs q|k|v and gate|up, which read the same activations, as one
    /// product each.
    pub fn stack(parts: &[&TernaryMatrix]) -> Result<Self> {
        let cols = parts.first().map_or(0, |m| m.cols);
        if let Some(m) = parts.iter().find(|m| m.cols != cols) {
            return Err(BitnetError::Model(format!(
                "cannot stack a matrix of {} columns onto one of {cols}",
                m.cols
            )));
        }
        let uniform = parts
            .iter()
            .map(|m| m.uniform.clone())
            .collect::<Option<Vec<_>>>()
            .map(|u| u.concat());
        Ok(Self {
            rows: parts.iter().map(|m| m.rows).sum(),
            cols,
            qs: parts.iter().flat_map(|m| m.qs.iter().copied()).collect(),
            d: parts.iter().flat_map(|m| m.d.iter().copied()).collect(),
            uniform,
        })
    }

    /// Bytes of packed weights and scales (what a matvec reads).
    pub fn nbytes(&self) -> usize {
        self.qs.len() + self.d.len() * 2
    }
}

/// An activation vector quantized to int8 (absmax per vector, ×127), in the layouts the kernels
/// read.
#[derive(Debug, Clone, Default)]
pub struct QuantizedActs {
    /// Codes in natural order.
    pub q: Vec<i8>,
    /// Codes in the AVX-512 order: per block, for k in 0..4, `x[32k..32k+32] ++ x[128+32k..128+32k+32]`.
    q512: Vec<i8>,
    /// Σ codes per block.
    bsum: Vec<i32>,
    /// Σ codes over the vector.
    total: i32,
    /// The scale `s = 127·(1/max|x|)`; the real value of code `q` is `q / s`.
    pub s: f32,
}

/// Quantizes `x` (length a multiple of 256) like the training forward: `s = (1/max(max|x|, 1e-5))·127`,
/// `q = clamp(round(x·s), −128, 127)`.
pub fn quantize_acts(x: &[f32]) -> QuantizedActs {
    let mut a = QuantizedActs::default();
    quantize_acts_into(x, &mut a);
    a
}

/// [`quantize_acts`] into `a`, reusing its buffers (decode quantizes four vectors per layer per
/// token).
pub fn quantize_acts_into(x: &[f32], a: &mut QuantizedActs) {
    let m = x
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(crate::bitlinear::EPS as f32);
    let s = (1.0 / m) * 127.0;
    a.q.clear();
    a.q.extend(x.iter().map(|v| round_clamp_i8(v * s)));
    a.q512.clear();
    a.q512.resize(x.len(), 0);
    a.bsum.clear();
    for (b, blk) in a.q.chunks(QK).enumerate() {
        if blk.len() == QK {
            for k in 0..4 {
                let dst = &mut a.q512[b * QK + 64 * k..b * QK + 64 * k + 64];
                dst[..32].copy_from_slice(&blk[32 * k..32 * k + 32]);
                dst[32..].copy_from_slice(&blk[128 + 32 * k..128 + 32 * k + 32]);
            }
        }
        a.bsum.push(blk.iter().map(|v| *v as i32).sum());
    }
    a.total = a.bsum.iter().sum();
    a.s = s;
}

/// `clamp(round(y), −128, 127) as i8` with `f32::round`'s rounding (half away from zero), without
/// the `roundf` library call that `f32::round` becomes on x86-64 without SSE4.1 (one call per
/// activation per token was a measurable share of decode). Clamping first gives the same result
/// (the bounds are integers and rounding is monotonic); on [−128, 127] the truncation is exact and
/// so is the remaining fraction, which decides the rounding. NaN gives 0, as `NaN as i8` does.
#[inline]
fn round_clamp_i8(y: f32) -> i8 {
    let c = y.clamp(-128.0, 127.0);
    let t = c as i32;
    let f = c - t as f32;
    (t + (f >= 0.5) as i32 - (f <= -0.5) as i32) as i8
}

/// A kernel implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernel {
    /// Plain Rust, any CPU.
    Portable,
    /// AVX2 `vpmaddubsw`.
    Avx2,
    /// AVX-512 VNNI `vpdpbusd`.
    Avx512Vnni,
}

impl Kernel {
    /// Every kernel this CPU can run.
    pub fn available() -> Vec<Kernel> {
        let mut v = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                v.push(Kernel::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vnni")
            {
                v.push(Kernel::Avx512Vnni);
            }
        }
        v
    }

    /// The fastest kernel this CPU can run (overridable with `MAGNET_BITNET_KERNEL=portable|avx2|avx512vnni`).
    pub fn best() -> Kernel {
        let avail = Self::available();
        let want = std::env::var("MAGNET_BITNET_KERNEL").ok();
        let pick = match want.as_deref() {
            Some("portable") => Some(Kernel::Portable),
            Some("avx2") => Some(Kernel::Avx2),
            Some("avx512vnni") => Some(Kernel::Avx512Vnni),
            _ => None,
        };
        match pick {
            Some(k) if avail.contains(&k) => k,
            _ => avail.last().copied().unwrap_or(Kernel::Portable),
        }
    }
}

fn dot_portable(qs: &[u8], x: &[i8]) -> i32 {
    let mut sum = 0i32;
    for (blk, xb) in qs.chunks_exact(QS).zip(x.chunks_exact(QK)) {
        for h in 0..2 {
            for k in 0..4 {
                for i in 0..32 {
                    let w = (blk[h * 32 + i] >> (2 * k)) & 3;
                    sum += w as i32 * xb[h * 128 + k * 32 + i] as i32;
                }
            }
        }
    }
    sum
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::{QuantizedActs, TernaryMatrix, QK, QS, TILE_BYTES};

    /// Σ (code+1)·x for one 128-weight half block (32 code bytes `v`, activations `x0..x3`)
    /// as eight i32 lanes. No saturation: a `vpmaddubsw` lane is at most 2·2·128 = 512 in
    /// magnitude, four of them 2048 < 2¹⁵.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn half_avx2(v: __m256i, x: [__m256i; 4], mask: __m256i, ones: __m256i) -> __m256i {
        apply_avx2(codes_avx2(v, mask), x, ones)
    }

    /// The four 2-bit code planes of 32 code bytes (`(v >> 2k) & 3`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn codes_avx2(v: __m256i, mask: __m256i) -> [__m256i; 4] {
        [
            _mm256_and_si256(v, mask),
            _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask),
            _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask),
            _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask),
        ]
    }

    /// Σ code·x of decoded code planes `w` and activations `x` as eight i32 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn apply_avx2(w: [__m256i; 4], x: [__m256i; 4], ones: __m256i) -> __m256i {
        let p = _mm256_add_epi16(
            _mm256_add_epi16(
                _mm256_maddubs_epi16(w[0], x[0]),
                _mm256_maddubs_epi16(w[1], x[1]),
            ),
            _mm256_add_epi16(
                _mm256_maddubs_epi16(w[2], x[2]),
                _mm256_maddubs_epi16(w[3], x[3]),
            ),
        );
        _mm256_madd_epi16(p, ones)
    }

    /// Σ (code+1)·x over blocks `0..nb` of one row for four activation vectors at once (`x[k]`
    /// is vector k's start): each 32 code bytes are decoded once for the four vectors, and one
    /// reduction gives the four sums (lane k: vector k).
    ///
    /// # Safety
    /// `q .. q + 64·nb` and `x[k] .. x[k] + 256·nb` for k in 0..4 must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dotx4_avx2(q: *const u8, x: [*const i8; 4], nb: usize) -> __m128i {
        let mask = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 4];
        for b in 0..nb {
            for h in 0..2 {
                // SAFETY: block b of the row is readable (caller).
                let v = unsafe { _mm256_loadu_si256(q.add(b * QS + h * 32) as *const __m256i) };
                let w = codes_avx2(v, mask);
                for (acc, x) in acc.iter_mut().zip(x) {
                    // SAFETY: block b of every vector is readable (caller).
                    let xs = unsafe { acts_avx2(x, b, h) };
                    *acc = _mm256_add_epi32(*acc, apply_avx2(w, xs, ones));
                }
            }
        }
        hsum4_avx2(acc)
    }

    /// The 128 activations of half block `h` of block `b`.
    ///
    /// # Safety
    /// `x + 256·b + 128·h .. + 128` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn acts_avx2(x: *const i8, b: usize, h: usize) -> [__m256i; 4] {
        // SAFETY: the caller guarantees the 128 bytes are readable; loads are unaligned.
        unsafe {
            let p = x.add(b * QK + h * 128);
            [
                _mm256_loadu_si256(p as *const __m256i),
                _mm256_loadu_si256(p.add(32) as *const __m256i),
                _mm256_loadu_si256(p.add(64) as *const __m256i),
                _mm256_loadu_si256(p.add(96) as *const __m256i),
            ]
        }
    }

    /// Horizontal sums of four accumulators: `[Σa0, Σa1, Σa2, Σa3]`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn hsum4_avx2(a: [__m256i; 4]) -> __m128i {
        let s01 = _mm256_hadd_epi32(a[0], a[1]);
        let s23 = _mm256_hadd_epi32(a[2], a[3]);
        let s = _mm256_hadd_epi32(s01, s23);
        _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256::<1>(s))
    }

    /// Σ (code+1)·x over blocks `0..nb` for four rows at once (row `r`'s codes at `q + r·stride`):
    /// each activation vector is loaded once for the four rows, and one reduction gives the four
    /// sums.
    ///
    /// # Safety
    /// `q + r·stride .. + 64·nb` for r in 0..4 and `x .. x + 256·nb` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot4_avx2(q: *const u8, stride: usize, x: *const i8, nb: usize) -> __m128i {
        let mask = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_si256(); 4];
        for b in 0..nb {
            for h in 0..2 {
                // SAFETY: block b's activations are readable (caller).
                let xs = unsafe { acts_avx2(x, b, h) };
                for (r, acc) in acc.iter_mut().enumerate() {
                    // SAFETY: block b of row r is readable (caller).
                    let v = unsafe {
                        _mm256_loadu_si256(q.add(r * stride + b * QS + h * 32) as *const __m256i)
                    };
                    *acc = _mm256_add_epi32(*acc, half_avx2(v, xs, mask, ones));
                }
            }
        }
        hsum4_avx2(acc)
    }

    /// [`dot4_avx2`] for one row.
    ///
    /// # Safety
    /// `q .. q + 64·nb` and `x .. x + 256·nb` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn dot1_avx2(q: *const u8, x: *const i8, nb: usize) -> i32 {
        let mask = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        for b in 0..nb {
            for h in 0..2 {
                // SAFETY: block b of the row and of the activations is readable (caller).
                let (xs, v) = unsafe {
                    (
                        acts_avx2(x, b, h),
                        _mm256_loadu_si256(q.add(b * QS + h * 32) as *const __m256i),
                    )
                };
                acc = _mm256_add_epi32(acc, half_avx2(v, xs, mask, ones));
            }
        }
        let s = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256::<1>(acc),
        );
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
        _mm_cvtsi128_si32(s)
    }

    /// Rows `r0..r0 + n` of `M · x̃ⱼ` for every activation vector `x̃ⱼ` of a batch (`outs[j]`,
    /// `n` long, gets vector j's rows), four rows at a time, then one by one. A group of rows is
    /// applied to every vector of the batch before the next group is read, so its codes come from
    /// memory once per batch (and from L1 for the other vectors): whole groups of four vectors
    /// through `$dotx4` (one row's codes decoded once for the four), the remaining vectors
    /// through `$dot4` (four rows, one vector). Each row's float epilogue is the
    /// portable one (`super::row_portable`) done on four lanes: the same IEEE operations in the
    /// same order (`i32 → f32`, `× d`, per-block sums from 0, `÷ s`), so the results are
    /// bit-identical to the portable kernel's, and each vector's to a batch of one.
    macro_rules! rows_simd {
        ($name:ident, $features:literal, $dot4:ident, $dot1:ident, $dotx4:ident, $acts:ident) => {
            /// Rows `r0..r0 + n` of `M · x̃ⱼ` for a batch (see `rows_simd!`).
            ///
            /// # Safety
            /// The CPU must have the features this function enables.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                m: &TernaryMatrix,
                acts: &[QuantizedActs],
                r0: usize,
                outs: &mut [&mut [f32]],
            ) {
                let bpr = m.cols / QK;
                let n = outs.first().map_or(0, |o| o.len());
                let stride = bpr * QS;
                // The bounds every raw read below relies on.
                assert!(
                    (r0 + n) * stride <= m.qs.len()
                        && m.d.len() >= (r0 + n) * bpr
                        && acts.len() == outs.len()
                        && outs.iter().all(|o| o.len() == n)
                        && acts
                            .iter()
                            .all(|a| a.$acts.len() >= bpr * QK && a.bsum.len() >= bpr)
                );
                // SAFETY: row r0 starts inside `m.qs` (checked above).
                let q = unsafe { m.qs.as_ptr().add(r0 * stride) };
                // Vectors in groups of four share each row's decoded codes (`$dotx4`, lane k is
                // vector k); the rest run four rows at a time (`$dot4`).
                let groups = acts.len() / 4;
                let (grouped, rest) = outs.split_at_mut(4 * groups);
                let rest_acts = &acts[4 * groups..];
                // Rows are taken in tiles of about `TILE_BYTES` of codes (a multiple of four
                // rows): each group of vectors runs over the whole tile while its activations
                // and the tile's codes stay in L1.
                let tile = (TILE_BYTES / stride.max(1)).max(4) & !3;
                let full = n - n % 4;
                let mut i = 0;
                match &m.uniform {
                    Some(d) => {
                        assert!(d.len() >= r0 + n);
                        while i + 4 <= n {
                            let end = (i + tile).min(full);
                            for (ga, go) in acts.chunks_exact(4).zip(grouped.chunks_exact_mut(4)) {
                                let x = [0, 1, 2, 3].map(|k| ga[k].$acts.as_ptr());
                                let total = _mm_set_epi32(
                                    ga[3].total,
                                    ga[2].total,
                                    ga[1].total,
                                    ga[0].total,
                                );
                                let s = _mm_set_ps(ga[3].s, ga[2].s, ga[1].s, ga[0].s);
                                for rr in i..end {
                                    let mut f = [0f32; 4];
                                    // SAFETY: row r0+rr and the four vectors are in bounds
                                    // (checked above); `f` holds four lanes.
                                    unsafe {
                                        let isum = $dotx4(q.add(rr * stride), x, bpr);
                                        let v = _mm_mul_ps(
                                            _mm_cvtepi32_ps(_mm_sub_epi32(isum, total)),
                                            _mm_set1_ps(d[r0 + rr]),
                                        );
                                        _mm_storeu_ps(f.as_mut_ptr(), _mm_div_ps(v, s));
                                    }
                                    for (o, f) in go.iter_mut().zip(f) {
                                        o[rr] = f;
                                    }
                                }
                            }
                            for i in (i..end).step_by(4) {
                                for (a, out) in rest_acts.iter().zip(rest.iter_mut()) {
                                    // SAFETY: rows r0+i..r0+i+4 and the activations are in bounds;
                                    // the four scales d[r0+i..r0+i+4] and out[i..i+4] exist (checked
                                    // above).
                                    unsafe {
                                        let isum =
                                            $dot4(q.add(i * stride), stride, a.$acts.as_ptr(), bpr);
                                        let f = _mm_mul_ps(
                                            _mm_cvtepi32_ps(_mm_sub_epi32(
                                                isum,
                                                _mm_set1_epi32(a.total),
                                            )),
                                            _mm_loadu_ps(d.as_ptr().add(r0 + i)),
                                        );
                                        _mm_storeu_ps(
                                            out.as_mut_ptr().add(i),
                                            _mm_div_ps(f, _mm_set1_ps(a.s)),
                                        );
                                    }
                                }
                            }
                            i = end;
                        }
                        while i < n {
                            for (a, out) in acts.iter().zip(outs.iter_mut()) {
                                // SAFETY: row r0+i is in bounds (checked above).
                                let isum =
                                    unsafe { $dot1(q.add(i * stride), a.$acts.as_ptr(), bpr) };
                                out[i] = (isum - a.total) as f32 * d[r0 + i] / a.s;
                            }
                            i += 1;
                        }
                    }
                    None => {
                        while i + 4 <= n {
                            let end = (i + tile).min(full);
                            for (ga, go) in acts.chunks_exact(4).zip(grouped.chunks_exact_mut(4)) {
                                let x = [0, 1, 2, 3].map(|k| ga[k].$acts.as_ptr());
                                let s = _mm_set_ps(ga[3].s, ga[2].s, ga[1].s, ga[0].s);
                                for rr in i..end {
                                    let mut acc = _mm_setzero_ps();
                                    for b in 0..bpr {
                                        // SAFETY: block b of row r0+rr and of the four vectors
                                        // is in bounds (checked above).
                                        let isum = unsafe {
                                            $dotx4(
                                                q.add(rr * stride + b * QS),
                                                x.map(|x| x.add(b * QK)),
                                                1,
                                            )
                                        };
                                        let bs = _mm_set_epi32(
                                            ga[3].bsum[b],
                                            ga[2].bsum[b],
                                            ga[1].bsum[b],
                                            ga[0].bsum[b],
                                        );
                                        let t = _mm_cvtepi32_ps(_mm_sub_epi32(isum, bs));
                                        let dd = _mm_set1_ps(m.d[(r0 + rr) * bpr + b]);
                                        acc = _mm_add_ps(acc, _mm_mul_ps(t, dd));
                                    }
                                    let mut f = [0f32; 4];
                                    // SAFETY: `f` holds four lanes.
                                    unsafe { _mm_storeu_ps(f.as_mut_ptr(), _mm_div_ps(acc, s)) };
                                    for (o, f) in go.iter_mut().zip(f) {
                                        o[rr] = f;
                                    }
                                }
                            }
                            for i in (i..end).step_by(4) {
                                let r = r0 + i;
                                for (a, out) in rest_acts.iter().zip(rest.iter_mut()) {
                                    let xp = a.$acts.as_ptr();
                                    let mut acc = _mm_setzero_ps();
                                    for b in 0..bpr {
                                        // SAFETY: block b of rows r..r+4 and of the activations is
                                        // in bounds (checked above).
                                        let isum = unsafe {
                                            $dot4(
                                                q.add(i * stride + b * QS),
                                                stride,
                                                xp.add(b * QK),
                                                1,
                                            )
                                        };
                                        let t = _mm_cvtepi32_ps(_mm_sub_epi32(
                                            isum,
                                            _mm_set1_epi32(a.bsum[b]),
                                        ));
                                        let dd = _mm_set_ps(
                                            m.d[(r + 3) * bpr + b],
                                            m.d[(r + 2) * bpr + b],
                                            m.d[(r + 1) * bpr + b],
                                            m.d[r * bpr + b],
                                        );
                                        acc = _mm_add_ps(acc, _mm_mul_ps(t, dd));
                                    }
                                    // SAFETY: out[i..i+4] exists.
                                    unsafe {
                                        _mm_storeu_ps(
                                            out.as_mut_ptr().add(i),
                                            _mm_div_ps(acc, _mm_set1_ps(a.s)),
                                        )
                                    };
                                }
                            }
                            i = end;
                        }
                        while i < n {
                            for (a, out) in acts.iter().zip(outs.iter_mut()) {
                                let xp = a.$acts.as_ptr();
                                let mut acc = 0f32;
                                for b in 0..bpr {
                                    // SAFETY: block b of row r0+i is in bounds (checked above).
                                    let isum = unsafe {
                                        $dot1(q.add(i * stride + b * QS), xp.add(b * QK), 1)
                                    };
                                    acc += (isum - a.bsum[b]) as f32 * m.d[(r0 + i) * bpr + b];
                                }
                                out[i] = acc / a.s;
                            }
                            i += 1;
                        }
                    }
                }
            }
        };
    }

    rows_simd!(rows_avx2, "avx2", dot4_avx2, dot1_avx2, dotx4_avx2, q);
    rows_simd!(
        rows_avx512vnni,
        "avx2,avx512f,avx512bw,avx512vnni",
        dot4_avx512vnni,
        dot1_avx512vnni,
        dotx4_avx512vnni,
        q512
    );

    /// [`super::q8_row_portable`] with AVX2, same operations in the same order.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_row_avx2(q: &[i8], d: &[f32], x: &[f32]) -> f32 {
        let mut tot = _mm256_setzero_ps();
        for ((qb, xb), d) in q.chunks_exact(32).zip(x.chunks_exact(32)).zip(d) {
            let mut acc = _mm256_setzero_ps();
            for k in 0..4 {
                // SAFETY: qb has 32 bytes (8 loaded from 8k ≤ 24) and xb 32 floats.
                let (qv, xv) = unsafe {
                    (
                        _mm_loadl_epi64(qb.as_ptr().add(8 * k) as *const __m128i),
                        _mm256_loadu_ps(xb.as_ptr().add(8 * k)),
                    )
                };
                let qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qv));
                acc = _mm256_add_ps(acc, _mm256_mul_ps(qf, xv));
            }
            tot = _mm256_add_ps(tot, _mm256_mul_ps(acc, _mm256_set1_ps(*d)));
        }
        q8_reduce_avx2(tot)
    }

    /// The fixed reduction tree of [`super::q8_row_portable`]'s eight lane totals.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn q8_reduce_avx2(tot: __m256) -> f32 {
        let a = _mm_add_ps(_mm256_castps256_ps128(tot), _mm256_extractf128_ps::<1>(tot));
        // a = [t0+t4, t1+t5, t2+t6, t3+t7]; then (a0 + a2) + (a1 + a3).
        let b = _mm_add_ps(a, _mm_movehl_ps(a, a));
        let c = _mm_add_ss(b, _mm_shuffle_ps::<0b01>(b, b));
        _mm_cvtss_f32(c)
    }

    /// [`q8_row_avx2`] for four vectors at once: each 8 weights are widened to f32 once and
    /// applied to the four vectors; per vector the same operations in the same order, so each
    /// result equals [`q8_row_avx2`]'s bit for bit.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn q8_row_x4_avx2(q: &[i8], d: &[f32], x: [&[f32]; 4]) -> [f32; 4] {
        let nb = q.len() / 32;
        assert!(d.len() >= nb && x.iter().all(|x| x.len() >= nb * 32));
        let mut tot = [_mm256_setzero_ps(); 4];
        for (b, (qb, d)) in q.chunks_exact(32).zip(d).enumerate() {
            let mut acc = [_mm256_setzero_ps(); 4];
            for k in 0..4 {
                // SAFETY: qb has 32 bytes (8 loaded from 8k ≤ 24).
                let qv = unsafe { _mm_loadl_epi64(qb.as_ptr().add(8 * k) as *const __m128i) };
                let qf = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(qv));
                for (acc, x) in acc.iter_mut().zip(x) {
                    // SAFETY: every x holds nb·32 floats (checked above), b < nb.
                    let xv = unsafe { _mm256_loadu_ps(x.as_ptr().add(32 * b + 8 * k)) };
                    *acc = _mm256_add_ps(*acc, _mm256_mul_ps(qf, xv));
                }
            }
            for (t, a) in tot.iter_mut().zip(acc) {
                *t = _mm256_add_ps(*t, _mm256_mul_ps(a, _mm256_set1_ps(*d)));
            }
        }
        tot.map(|t| q8_reduce_avx2(t))
    }

    /// Σ (code+1)·x for one block (64 code bytes `v`, activations `x` in the `q512` order) added
    /// into two accumulators (two dependency chains instead of one).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn block_avx512vnni(v: __m512i, x: &[__m512i; 4], mask: __m512i, acc: &mut [__m512i; 2]) {
        apply_avx512vnni(&codes_avx512(v, mask), x, acc)
    }

    /// The four 2-bit code planes of one block's 64 code bytes (`(v >> 2k) & 3`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    fn codes_avx512(v: __m512i, mask: __m512i) -> [__m512i; 4] {
        [
            _mm512_and_si512(v, mask),
            _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask),
            _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask),
            _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask),
        ]
    }

    /// Σ code·x of decoded code planes `w` and one block's activations added into two
    /// accumulators.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    fn apply_avx512vnni(w: &[__m512i; 4], x: &[__m512i; 4], acc: &mut [__m512i; 2]) {
        acc[0] = _mm512_dpbusd_epi32(acc[0], w[0], x[0]);
        acc[1] = _mm512_dpbusd_epi32(acc[1], w[1], x[1]);
        acc[0] = _mm512_dpbusd_epi32(acc[0], w[2], x[2]);
        acc[1] = _mm512_dpbusd_epi32(acc[1], w[3], x[3]);
    }

    /// The 256 activations of block `b` (in the `q512` order).
    ///
    /// # Safety
    /// `x + 256·b .. + 256` must be readable.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn acts_avx512(x: *const i8, b: usize) -> [__m512i; 4] {
        // SAFETY: the caller guarantees the 256 bytes are readable; loads are unaligned.
        unsafe {
            let p = x.add(b * QK);
            [
                _mm512_loadu_si512(p as *const _),
                _mm512_loadu_si512(p.add(64) as *const _),
                _mm512_loadu_si512(p.add(128) as *const _),
                _mm512_loadu_si512(p.add(192) as *const _),
            ]
        }
    }

    /// Two 512-bit accumulators folded to one 256-bit one (i32 lanes, exact).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fold_avx512(a: [__m512i; 2]) -> __m256i {
        let s = _mm512_add_epi32(a[0], a[1]);
        _mm256_add_epi32(_mm512_castsi512_si256(s), _mm512_extracti64x4_epi64::<1>(s))
    }

    /// Σ (code+1)·x over blocks `0..nb` for four rows at once, AVX-512 VNNI; `x` is in the kernel
    /// order of `QuantizedActs::q512`.
    ///
    /// # Safety
    /// `q + r·stride .. + 64·nb` for r in 0..4 and `x .. x + 256·nb` must be readable.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn dot4_avx512vnni(q: *const u8, stride: usize, x: *const i8, nb: usize) -> __m128i {
        let mask = _mm512_set1_epi8(3);
        let mut acc = [[_mm512_setzero_si512(); 2]; 4];
        for b in 0..nb {
            // SAFETY: block b's activations are readable (caller).
            let xs = unsafe { acts_avx512(x, b) };
            for (r, acc) in acc.iter_mut().enumerate() {
                // SAFETY: block b of row r is readable (caller).
                let v = unsafe { _mm512_loadu_si512(q.add(r * stride + b * QS) as *const _) };
                block_avx512vnni(v, &xs, mask, acc);
            }
        }
        hsum4_avx2([
            fold_avx512(acc[0]),
            fold_avx512(acc[1]),
            fold_avx512(acc[2]),
            fold_avx512(acc[3]),
        ])
    }

    /// [`dotx4_avx2`] for AVX-512 VNNI: one row's codes decoded once per block for four
    /// activation vectors (in the `q512` order); lane k is vector k's sum.
    ///
    /// # Safety
    /// `q .. q + 64·nb` and `x[k] .. x[k] + 256·nb` for k in 0..4 must be readable.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn dotx4_avx512vnni(q: *const u8, x: [*const i8; 4], nb: usize) -> __m128i {
        let mask = _mm512_set1_epi8(3);
        let mut acc = [[_mm512_setzero_si512(); 2]; 4];
        for b in 0..nb {
            // SAFETY: block b of the row is readable (caller).
            let v = unsafe { _mm512_loadu_si512(q.add(b * QS) as *const _) };
            let w = codes_avx512(v, mask);
            for (acc, x) in acc.iter_mut().zip(x) {
                // SAFETY: block b of every vector is readable (caller).
                let xs = unsafe { acts_avx512(x, b) };
                apply_avx512vnni(&w, &xs, acc);
            }
        }
        hsum4_avx2([
            fold_avx512(acc[0]),
            fold_avx512(acc[1]),
            fold_avx512(acc[2]),
            fold_avx512(acc[3]),
        ])
    }

    /// [`dot4_avx512vnni`] for one row.
    ///
    /// # Safety
    /// `q .. q + 64·nb` and `x .. x + 256·nb` must be readable.
    #[inline]
    #[target_feature(enable = "avx2,avx512f,avx512bw,avx512vnni")]
    unsafe fn dot1_avx512vnni(q: *const u8, x: *const i8, nb: usize) -> i32 {
        let mask = _mm512_set1_epi8(3);
        let mut acc = [_mm512_setzero_si512(); 2];
        for b in 0..nb {
            // SAFETY: block b of the row and of the activations is readable (caller).
            let (xs, v) = unsafe {
                (
                    acts_avx512(x, b),
                    _mm512_loadu_si512(q.add(b * QS) as *const _),
                )
            };
            block_avx512vnni(v, &xs, mask, &mut acc);
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
    }
}

/// Row `r` by the portable reference: the integer sums, then the shared scalar epilogue.
fn row_portable(m: &TernaryMatrix, a: &QuantizedActs, r: usize) -> f32 {
    let bpr = m.cols / QK;
    let qs = &m.qs[r * bpr * QS..(r + 1) * bpr * QS];
    let acc = match &m.uniform {
        Some(d) => (dot_portable(qs, &a.q) - a.total) as f32 * d[r],
        None => {
            let mut acc = 0f32;
            for b in 0..bpr {
                let isum =
                    dot_portable(&qs[b * QS..(b + 1) * QS], &a.q[b * QK..(b + 1) * QK]) - a.bsum[b];
                acc += isum as f32 * m.d[r * bpr + b];
            }
            acc
        }
    };
    acc / a.s
}

/// Rows `r0..r0 + n` of `M · x̃ⱼ` into `outs[j]` (each `n` long) for every vector of `acts`. The
/// SIMD kernels run four rows per step (sharing the activation loads and one horizontal
/// reduction), then the remaining rows one by one, each group of rows over the whole batch before
/// the next; every path computes each row's value with the same operations as [`row_portable`].
fn rows(
    kernel: Kernel,
    m: &TernaryMatrix,
    acts: &[QuantizedActs],
    r0: usize,
    outs: &mut [&mut [f32]],
) {
    debug_assert!(outs.iter().all(|o| r0 + o.len() <= m.rows));
    match kernel {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `products` only runs a kernel that `Kernel::available()` lists, i.e. one whose
        // CPU features were detected at run time; `rows_simd` checks every slice bound it relies on.
        Kernel::Avx2 => unsafe { x86::rows_avx2(m, acts, r0, outs) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX-512 F/BW/VNNI (and AVX2, which they imply).
        Kernel::Avx512Vnni => unsafe { x86::rows_avx512vnni(m, acts, r0, outs) },
        _ => {
            let n = outs.first().map_or(0, |o| o.len());
            for i in 0..n {
                for (a, out) in acts.iter().zip(outs.iter_mut()) {
                    out[i] = row_portable(m, a, r0 + i);
                }
            }
        }
    }
}

/// Checks that `kernel` runs on this CPU and every vector of `acts` has `m.cols` values.
fn check_product(
    kernel: Kernel,
    m: &TernaryMatrix,
    acts: &[QuantizedActs],
    outs: usize,
) -> Result<()> {
    if let Some(a) = acts.iter().find(|a| a.q.len() != m.cols) {
        return Err(BitnetError::Model(format!(
            "ternary product shape mismatch: matrix {}x{}, input {}",
            m.rows,
            m.cols,
            a.q.len()
        )));
    }
    if outs != acts.len() * m.rows {
        return Err(BitnetError::Model(format!(
            "ternary product shape mismatch: matrix {}x{}, {} input vectors, output {outs}",
            m.rows,
            m.cols,
            acts.len()
        )));
    }
    if !Kernel::available().contains(&kernel) {
        return Err(BitnetError::Model(format!(
            "kernel {kernel:?} is not supported by this CPU"
        )));
    }
    Ok(())
}

/// `outs[j] = M · x̃ⱼ` for a checked batch; rows are split over `team`'s threads (or run here).
fn products(
    kernel: Kernel,
    m: &TernaryMatrix,
    acts: &[QuantizedActs],
    outs: &mut [&mut [f32]],
    team: Option<&Team>,
) {
    match team {
        // One range of a multiple of four rows per thread, so every range runs the four-row
        // kernel; each thread takes the same rows of every vector's output.
        Some(t) if m.rows >= 64 => {
            t.for_chunks_of_each(outs, 4, |r0, o| rows(kernel, m, acts, r0, o))
        }
        _ => rows(kernel, m, acts, 0, outs),
    }
}

/// `out = M · x̃` where `x̃ = q/s`; rows are split over `team`'s threads (or run here when `None`).
/// A batch of one of [`matmul`].
pub fn matvec(
    kernel: Kernel,
    m: &TernaryMatrix,
    a: &QuantizedActs,
    out: &mut [f32],
    team: Option<&Team>,
) -> Result<()> {
    check_product(kernel, m, std::slice::from_ref(a), out.len())?;
    products(kernel, m, std::slice::from_ref(a), &mut [out], team);
    Ok(())
}

/// The batched product: `out[j·rows .. (j+1)·rows] = M · x̃ⱼ` for every activation vector of
/// `acts` (`out` is `acts.len() × m.rows`, one vector's rows after another). Each group of
/// packed weight rows is read once and applied to every vector while it is in cache, and rows are
/// split over `team` as in [`matvec`]. Every output equals, bit for bit, what [`matvec`] gives for
/// that vector alone (the same operations in the same order per output element).
pub fn matmul(
    kernel: Kernel,
    m: &TernaryMatrix,
    acts: &[QuantizedActs],
    out: &mut [f32],
    team: Option<&Team>,
) -> Result<()> {
    check_product(kernel, m, acts, out.len())?;
    if m.rows == 0 {
        return Ok(());
    }
    let mut outs: Vec<&mut [f32]> = out.chunks_mut(m.rows).collect();
    products(kernel, m, acts, &mut outs, team);
    Ok(())
}

/// Dense f32 `out = W x` for a row-major `(rows, cols)` matrix (the output head), split over `team`.
pub fn matvec_f32(w: &[f32], cols: usize, x: &[f32], out: &mut [f32], team: Option<&Team>) {
    matmul_f32(w, cols, &[x], &mut [out], team)
}

/// [`matvec_f32`] for a batch: `outs[j] = W xs[j]`. Each weight row is applied to every vector
/// while it is in cache; each output equals [`matvec_f32`]'s for that vector, bit for bit.
pub fn matmul_f32(
    w: &[f32],
    cols: usize,
    xs: &[&[f32]],
    outs: &mut [&mut [f32]],
    team: Option<&Team>,
) {
    let dot = |r: usize, j: usize| -> f32 {
        let x = xs[j];
        let wr = &w[r * cols..(r + 1) * cols];
        let mut acc = [0f32; 8];
        for (wc, xc) in wr.chunks_exact(8).zip(x.chunks_exact(8)) {
            for ((a, w), x) in acc.iter_mut().zip(wc).zip(xc) {
                *a += w * x;
            }
        }
        let mut s: f32 = acc.iter().sum();
        for i in cols / 8 * 8..cols {
            s += wr[i] * x[i];
        }
        s
    };
    split_rows(outs, team, |r, v| {
        for (j, y) in v.iter_mut().enumerate() {
            *y = dot(r, j);
        }
    });
}

/// `outs[j][r] = v[j]` where `row(r, v)` fills `v` with row `r`'s products with every vector (a
/// row is applied to every vector before the next row), split over `team` in contiguous row
/// ranges: each thread takes the same rows of every output.
fn split_rows(
    outs: &mut [&mut [f32]],
    team: Option<&Team>,
    row: impl Fn(usize, &mut [f32]) + Sync,
) {
    let fill = |r0: usize, o: &mut [&mut [f32]]| {
        let n = o.first().map_or(0, |o| o.len());
        let mut v = vec![0f32; o.len()];
        for i in 0..n {
            row(r0 + i, &mut v);
            for (y, v) in o.iter_mut().zip(&v) {
                y[i] = *v;
            }
        }
    };
    match team {
        Some(t) => t.for_chunks_of_each(outs, 8, fill),
        _ => fill(0, outs),
    }
}

/// A `Q8_0` matrix (blocks of 32 int8 weights sharing one f16 scale) with its scales widened to
/// f32 once at load (exact), so the matrix-vector product does no f16 conversion.
#[derive(Debug, Clone)]
pub struct Q8Matrix {
    /// Input columns (a multiple of 32).
    pub cols: usize,
    d: Vec<f32>,
    q: Vec<i8>,
}

impl Q8Matrix {
    /// From the raw bytes of a `Q8_0` tensor with `cols` columns.
    pub fn from_q8_0(bytes: &[u8], cols: usize) -> Result<Self> {
        if cols == 0
            || !cols.is_multiple_of(32)
            || !bytes.len().is_multiple_of(34)
            || !(bytes.len() / 34 * 32).is_multiple_of(cols)
        {
            return Err(BitnetError::Model(format!(
                "Q8_0 tensor of {} bytes does not hold rows of {cols} columns",
                bytes.len()
            )));
        }
        let mut d = Vec::with_capacity(bytes.len() / 34);
        let mut q = Vec::with_capacity(bytes.len() / 34 * 32);
        for blk in bytes.chunks_exact(34) {
            d.push(half::f16::from_le_bytes([blk[0], blk[1]]).to_f32());
            q.extend(blk[2..].iter().map(|v| *v as i8));
        }
        Ok(Self { cols, d, q })
    }

    /// Output rows.
    pub fn rows(&self) -> usize {
        self.q.len() / self.cols
    }

    /// Row `r` dequantized (`q·d`, as `dequantize_q8_0` gives it).
    pub fn row(&self, r: usize) -> Vec<f32> {
        let nb = self.cols / 32;
        self.q[r * self.cols..(r + 1) * self.cols]
            .chunks_exact(32)
            .zip(&self.d[r * nb..(r + 1) * nb])
            .flat_map(|(qb, d)| qb.iter().map(move |v| *v as f32 * d))
            .collect()
    }

    /// Bytes as stored in the file (what a matvec reads, give or take the widened scales).
    pub fn nbytes(&self) -> usize {
        self.q.len() / 32 * 34
    }

    /// `out = W x` (f32 activations), rows split over `team`. Runs the AVX2 row kernel when the
    /// CPU has it; it gives the same bits as the portable one.
    pub fn matvec(&self, x: &[f32], out: &mut [f32], team: Option<&Team>) {
        self.matmul_with(q8_avx2(), &[x], &mut [out], team)
    }

    /// [`Q8Matrix::matvec`] for a batch: `outs[j] = W xs[j]`. Each row is applied to every
    /// vector while it is in cache; each output equals [`Q8Matrix::matvec`]'s for that vector,
    /// bit for bit.
    pub fn matmul(&self, xs: &[&[f32]], outs: &mut [&mut [f32]], team: Option<&Team>) {
        self.matmul_with(q8_avx2(), xs, outs, team)
    }

    fn matmul_with(&self, avx2: bool, xs: &[&[f32]], outs: &mut [&mut [f32]], team: Option<&Team>) {
        let (cols, nb) = (self.cols, self.cols / 32);
        let row = |r: usize, v: &mut [f32]| {
            let _ = avx2;
            let q = &self.q[r * cols..(r + 1) * cols];
            let d = &self.d[r * nb..(r + 1) * nb];
            let mut j = 0;
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                while j + 4 <= v.len() {
                    let x = [0, 1, 2, 3].map(|k| &xs[j + k][..cols]);
                    // SAFETY: `avx2` is only true when the CPU has AVX2 (`q8_avx2`); `q` and
                    // every `x` hold `cols` values and `d` one scale per 32 of them.
                    let y = unsafe { x86::q8_row_x4_avx2(q, d, x) };
                    v[j..j + 4].copy_from_slice(&y);
                    j += 4;
                }
            }
            for (y, x) in v.iter_mut().zip(xs).skip(j) {
                let x = &x[..cols];
                #[cfg(target_arch = "x86_64")]
                if avx2 {
                    // SAFETY: as above, for one vector.
                    *y = unsafe { x86::q8_row_avx2(q, d, x) };
                    continue;
                }
                *y = q8_row_portable(q, d, x);
            }
        };
        split_rows(outs, team, row);
    }
}

/// One row of a Q8_0 matrix times f32 `x`: per 32-weight block, eight lane sums of
/// `q·x` (lane `j` takes weights `j, j+8, j+16, j+24` in that order) scaled by the block's `d`
/// and added to eight running lane totals, which are reduced in a fixed tree at the end. The
/// AVX2 version performs exactly these operations (no FMA), so both give the same bits.
fn q8_row_portable(q: &[i8], d: &[f32], x: &[f32]) -> f32 {
    let mut tot = [0f32; 8];
    for ((qb, xb), d) in q.chunks_exact(32).zip(x.chunks_exact(32)).zip(d) {
        let mut acc = [0f32; 8];
        for k in 0..4 {
            for j in 0..8 {
                acc[j] += qb[8 * k + j] as f32 * xb[8 * k + j];
            }
        }
        for j in 0..8 {
            tot[j] += acc[j] * d;
        }
    }
    let a = [
        tot[0] + tot[4],
        tot[1] + tot[5],
        tot[2] + tot[6],
        tot[3] + tot[7],
    ];
    (a[0] + a[2]) + (a[1] + a[3])
}

/// Whether the AVX2 Q8_0 row kernel can run here.
fn q8_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::{Rng, SeedableRng};

    fn random_matrix(rows: usize, cols: usize, seed: u64, per_block: bool) -> TernaryMatrix {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let codes: Vec<i8> = (0..rows * cols).map(|_| rng.gen_range(-1i8..=1)).collect();
        if per_block {
            let mut bytes = Vec::new();
            for blk in codes.chunks_exact(QK) {
                bytes
                    .extend(crate::gguf::quantize_tq2_0(blk, rng.gen_range(0.01f32..2.0)).unwrap());
            }
            TernaryMatrix::from_tq2_0(&bytes, rows, cols).unwrap()
        } else {
            TernaryMatrix::from_codes(&codes, rows, cols, 0.37).unwrap()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn simd_and_portable_kernels_agree_exactly(rows in 1usize..300, blocks in 1usize..17, seed in any::<u64>(), per_block in any::<bool>()) {
            let cols = blocks * QK;
            let m = random_matrix(rows, cols, seed, per_block);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 1);
            let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
            let a = quantize_acts(&x);
            let mut want = vec![0f32; rows];
            matvec(Kernel::Portable, &m, &a, &mut want, None).unwrap();
            for k in Kernel::available() {
                let mut got = vec![0f32; rows];
                matvec(k, &m, &a, &mut got, None).unwrap();
                prop_assert_eq!(&got, &want, "kernel {:?}", k);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn a_batched_product_equals_each_vectors_matvec_bit_for_bit(rows in 1usize..200, blocks in 1usize..7, batch in 1usize..10, seed in any::<u64>(), per_block in any::<bool>(), threads in 1usize..4) {
            let cols = blocks * QK;
            let m = random_matrix(rows, cols, seed, per_block);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 7);
            let acts: Vec<QuantizedActs> = (0..batch)
                .map(|j| {
                    let amp = 0.1 + j as f32;
                    let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-amp..amp)).collect();
                    quantize_acts(&x)
                })
                .collect();
            let team = Team::new(threads).unwrap();
            for k in Kernel::available() {
                let mut got = vec![f32::NAN; batch * rows];
                matmul(k, &m, &acts, &mut got, Some(&team)).unwrap();
                for (j, a) in acts.iter().enumerate() {
                    let mut want = vec![0f32; rows];
                    matvec(k, &m, a, &mut want, None).unwrap();
                    prop_assert_eq!(&got[j * rows..(j + 1) * rows], &want[..], "kernel {:?}, vector {}", k, j);
                }
            }
        }
    }

    #[test]
    fn a_batched_product_checks_its_shapes() {
        let m = random_matrix(8, 256, 1, false);
        let good = quantize_acts(&[0.5f32; 256]);
        let bad = quantize_acts(&[0.5f32; 512]);
        let k = Kernel::Portable;
        assert!(matmul(k, &m, &[good.clone(), good.clone()], &mut [0.0; 16], None).is_ok());
        assert!(matmul(k, &m, &[good.clone(), good.clone()], &mut [0.0; 8], None).is_err());
        assert!(matmul(k, &m, &[good.clone(), bad], &mut [0.0; 16], None).is_err());
        assert!(matmul(k, &m, &[], &mut [], None).is_ok());
    }

    #[test]
    fn simd_and_portable_kernels_agree_exactly_at_every_preset_shape() {
        // (rows, cols) of every projection of tiny, small, autoresearch-best and genkidama-618m.
        let shapes = [
            (256, 256),
            (128, 256),
            (512, 256),
            (256, 512),
            (512, 512),
            (1536, 512),
            (512, 1536),
            (1024, 1024),
            (256, 1024),
            (2816, 1024),
            (1024, 2816),
            (1536, 1536),
            (384, 1536),
            (4096, 1536),
            (1536, 4096),
        ];
        let team = Team::new(2).unwrap();
        for (i, (rows, cols)) in shapes.into_iter().enumerate() {
            let m = random_matrix(rows, cols, i as u64, i % 2 == 1);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + i as u64);
            let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-4.0f32..4.0)).collect();
            let a = quantize_acts(&x);
            let mut want = vec![0f32; rows];
            matvec(Kernel::Portable, &m, &a, &mut want, None).unwrap();
            for k in Kernel::available() {
                let mut got = vec![0f32; rows];
                matvec(k, &m, &a, &mut got, Some(&team)).unwrap();
                assert_eq!(got, want, "{k:?} at {rows}x{cols}");
            }
        }
    }

    #[test]
    fn kernels_match_a_float_reference_and_thread_counts_do_not_matter() {
        let (rows, cols) = (300, 512);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let codes: Vec<i8> = (0..rows * cols).map(|_| rng.gen_range(-1i8..=1)).collect();
        let m = TernaryMatrix::from_codes(&codes, rows, cols, 0.5).unwrap();
        let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let a = quantize_acts(&x);
        let team = Team::new(3).unwrap();
        for k in Kernel::available() {
            let mut one = vec![0f32; rows];
            let mut three = vec![0f32; rows];
            matvec(k, &m, &a, &mut one, None).unwrap();
            matvec(k, &m, &a, &mut three, Some(&team)).unwrap();
            assert_eq!(one, three);
            for r in 0..rows {
                let want: f32 = (0..cols)
                    .map(|j| codes[r * cols + j] as f32 * 0.5 * a.q[j] as f32 / a.s)
                    .sum();
                assert!(
                    (one[r] - want).abs() < 1e-3,
                    "row {r}: {} vs {want}",
                    one[r]
                );
            }
        }
    }

    #[test]
    fn the_q8_0_head_kernels_agree_exactly_and_match_a_float_reference() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        for (rows, cols) in [(1, 32), (7, 64), (300, 512), (513, 1536)] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| rng.gen_range(-0.1f32..0.1))
                .collect();
            let q = crate::gguf::quantize_q8_0(&w).unwrap();
            let deq = crate::gguf::dequantize_q8_0(&q);
            let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-3.0f32..3.0)).collect();
            let m = Q8Matrix::from_q8_0(&q, cols).unwrap();
            assert_eq!(m.rows(), rows);
            assert_eq!(m.row(rows - 1), deq[(rows - 1) * cols..]);
            let mut want = vec![0f32; rows];
            m.matmul_with(false, &[&x], &mut [&mut want], None);
            for r in 0..rows {
                let f: f32 = (0..cols).map(|j| deq[r * cols + j] * x[j]).sum();
                assert!((want[r] - f).abs() < 1e-4, "row {r}: {} vs {f}", want[r]);
            }
            let mut got = vec![0f32; rows];
            m.matvec(&x, &mut got, None);
            assert_eq!(got, want, "{rows}x{cols}");
        }
    }

    #[test]
    fn batched_head_products_equal_each_vectors_matvec_bit_for_bit() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12);
        let team = Team::new(3).unwrap();
        for (rows, cols, batch) in [(1, 32, 1), (7, 64, 3), (300, 512, 5), (513, 256, 16)] {
            let w: Vec<f32> = (0..rows * cols)
                .map(|_| rng.gen_range(-0.1f32..0.1))
                .collect();
            let m = Q8Matrix::from_q8_0(&crate::gguf::quantize_q8_0(&w).unwrap(), cols).unwrap();
            let xs: Vec<Vec<f32>> = (0..batch)
                .map(|_| (0..cols).map(|_| rng.gen_range(-3.0f32..3.0)).collect())
                .collect();
            let xr: Vec<&[f32]> = xs.iter().map(|x| x.as_slice()).collect();
            for pool in [None, Some(&team)] {
                let mut q8 = vec![vec![f32::NAN; rows]; batch];
                let mut f = q8.clone();
                m.matmul(
                    &xr,
                    &mut q8.iter_mut().map(|o| o.as_mut_slice()).collect::<Vec<_>>(),
                    pool,
                );
                matmul_f32(
                    &w,
                    cols,
                    &xr,
                    &mut f.iter_mut().map(|o| o.as_mut_slice()).collect::<Vec<_>>(),
                    pool,
                );
                for (j, x) in xs.iter().enumerate() {
                    let mut want = vec![0f32; rows];
                    m.matvec(x, &mut want, None);
                    assert_eq!(q8[j], want, "Q8_0 {rows}x{cols}, vector {j}");
                    matvec_f32(&w, cols, x, &mut want, None);
                    assert_eq!(f[j], want, "f32 {rows}x{cols}, vector {j}");
                }
            }
        }
    }

    #[test]
    fn the_activation_rounding_equals_round_then_clamp() {
        let reference = |y: f32| y.round().clamp(-128.0, 127.0) as i8;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let specials = [
            0.0f32,
            -0.0,
            0.5,
            -0.5,
            0.49999997,
            -0.49999997,
            1.5,
            -1.5,
            2.5,
            126.5,
            127.0,
            127.49998,
            127.5,
            -127.5,
            -128.0,
            -128.5,
            -129.0,
            1e9,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ];
        let halves = (-260..=260).map(|i| i as f32 * 0.5);
        let ulps = (-260..=260).flat_map(|i| {
            let h = i as f32 * 0.5;
            [h.next_down(), h.next_up()]
        });
        let random = (0..100_000).map(|_| rng.gen_range(-140.0f32..140.0));
        for y in specials.into_iter().chain(halves).chain(ulps).chain(random) {
            assert_eq!(round_clamp_i8(y), reference(y), "y = {y:e}");
        }
    }

    #[test]
    fn extreme_activations_do_not_saturate() {
        let (rows, cols) = (4, 1024);
        let codes = vec![1i8; rows * cols];
        let m = TernaryMatrix::from_codes(&codes, rows, cols, 1.0).unwrap();
        let a = quantize_acts(&vec![-1.0f32; cols]);
        for k in Kernel::available() {
            let mut y = vec![0f32; rows];
            matvec(k, &m, &a, &mut y, None).unwrap();
            assert!(
                y.iter().all(|v| (*v + cols as f32).abs() < 1e-2),
                "{k:?}: {y:?}"
            );
        }
    }

    #[test]
    fn a_stacked_matrix_gives_its_parts_products_bit_for_bit() {
        let a = random_matrix(100, 512, 1, false);
        let b = random_matrix(36, 512, 2, true);
        let c = random_matrix(64, 512, 3, false);
        let s = TernaryMatrix::stack(&[&a, &b, &c]).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let x: Vec<f32> = (0..512).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
        let acts = quantize_acts(&x);
        for k in Kernel::available() {
            let mut whole = vec![0f32; 200];
            matvec(k, &s, &acts, &mut whole, None).unwrap();
            let mut parts = Vec::new();
            for m in [&a, &b, &c] {
                let mut y = vec![0f32; m.rows];
                matvec(k, m, &acts, &mut y, None).unwrap();
                parts.extend(y);
            }
            assert_eq!(whole, parts, "{k:?}");
        }
        let wide = random_matrix(4, 768, 5, false);
        assert!(TernaryMatrix::stack(&[&a, &wide]).is_err());
    }

    #[test]
    fn shape_mismatches_are_errors() {
        let m = random_matrix(2, 256, 1, false);
        let a = quantize_acts(&[0.5f32; 512]);
        assert!(matvec(Kernel::Portable, &m, &a, &mut [0.0; 2], None).is_err());
        assert!(TernaryMatrix::from_tq2_0(&[0u8; 65], 1, 256).is_err());
        assert!(TernaryMatrix::from_tq2_0(&[0xffu8; 66], 1, 256).is_err());
    }
}
