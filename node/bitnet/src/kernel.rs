//! The ternary × int8 matrix-vector kernel, with runtime-selected SIMD.
//!
//! Weights stay in the `TQ2_0` bit layout (2 bits per weight, code `t+1 ∈ {0,1,2}`); activations
//! are int8 with one per-token scale. For a row, `Σ_j t_j·x_j = Σ_j (t_j+1)·x_j − Σ_j x_j`: the
//! first sum is an unsigned×signed byte dot product — AVX2 `vpmaddubsw` (+ `vpmaddwd`), or AVX-512
//! VNNI `vpdpbusd` — and the second is computed once per vector.
//!
//! Exactness: every kernel computes the same integer sums exactly (no saturation is possible:
//! `|(t+1)·x| ≤ 256`, four `vpmaddubsw` lanes sum to at most 2048 < 2¹⁵), and the float epilogue
//! (`isum as f32 · d`, then `/ s`) is one shared scalar routine, so the portable and SIMD kernels
//! agree bit for bit. When all blocks of a row share one scale (our exporter's files) the integer
//! sum runs over the whole row; otherwise per block.
//!
//! Threads split the rows; each row is computed by one thread, so results do not depend on the
//! thread count.

use rayon::prelude::*;

use crate::error::{BitnetError, Result};

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

    /// Bytes of packed weights and scales (what a matvec reads).
    pub fn nbytes(&self) -> usize {
        self.qs.len() + self.d.len() * 2
    }
}

/// An activation vector quantized to int8 (absmax per vector, ×127), in the layouts the kernels
/// read.
#[derive(Debug, Clone)]
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
    let m = x
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()))
        .max(crate::bitlinear::EPS as f32);
    let s = (1.0 / m) * 127.0;
    let q: Vec<i8> = x
        .iter()
        .map(|v| (v * s).round().clamp(-128.0, 127.0) as i8)
        .collect();
    let mut q512 = vec![0i8; q.len()];
    let mut bsum = Vec::with_capacity(q.len() / QK);
    for (b, blk) in q.chunks(QK).enumerate() {
        if blk.len() == QK {
            for k in 0..4 {
                let dst = &mut q512[b * QK + 64 * k..b * QK + 64 * k + 64];
                dst[..32].copy_from_slice(&blk[32 * k..32 * k + 32]);
                dst[32..].copy_from_slice(&blk[128 + 32 * k..128 + 32 * k + 32]);
            }
        }
        bsum.push(blk.iter().map(|v| *v as i32).sum());
    }
    let total = bsum.iter().sum();
    QuantizedActs {
        q,
        q512,
        bsum,
        total,
        s,
    }
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

    /// Σ (code+1)·x over blocks `b0..b1` of one row (`qs` is the row's packed codes).
    fn biased_dot(self, qs: &[u8], a: &QuantizedActs, b0: usize, b1: usize) -> i32 {
        match self {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` only offers Avx2 when the CPU has AVX2, and `matvec` checks that
            // the kernel is available; the slices hold whole blocks `b0..b1`.
            Kernel::Avx2 => unsafe { x86::dot_avx2(&qs[b0 * QS..b1 * QS], &a.q[b0 * QK..b1 * QK]) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above, for AVX-512 F/BW/VNNI.
            Kernel::Avx512Vnni => unsafe {
                x86::dot_avx512vnni(&qs[b0 * QS..b1 * QS], &a.q512[b0 * QK..b1 * QK])
            },
            _ => dot_portable(&qs[b0 * QS..b1 * QS], &a.q[b0 * QK..b1 * QK]),
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

    /// Σ (code+1)·x over whole blocks, AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn dot_avx2(qs: &[u8], x: &[i8]) -> i32 {
        let mask = _mm256_set1_epi8(3);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        let nb = qs.len() / 64;
        for b in 0..nb {
            for h in 0..2 {
                // SAFETY: block b has 64 code bytes and 256 activations; loads are unaligned.
                let (v, xp) = unsafe {
                    (
                        _mm256_loadu_si256(qs.as_ptr().add(b * 64 + h * 32) as *const __m256i),
                        x.as_ptr().add(b * 256 + h * 128),
                    )
                };
                let w0 = _mm256_and_si256(v, mask);
                let w1 = _mm256_and_si256(_mm256_srli_epi16::<2>(v), mask);
                let w2 = _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask);
                let w3 = _mm256_and_si256(_mm256_srli_epi16::<6>(v), mask);
                // SAFETY: xp..xp+128 lies in block b.
                let (x0, x1, x2, x3) = unsafe {
                    (
                        _mm256_loadu_si256(xp as *const __m256i),
                        _mm256_loadu_si256(xp.add(32) as *const __m256i),
                        _mm256_loadu_si256(xp.add(64) as *const __m256i),
                        _mm256_loadu_si256(xp.add(96) as *const __m256i),
                    )
                };
                let p = _mm256_add_epi16(
                    _mm256_add_epi16(_mm256_maddubs_epi16(w0, x0), _mm256_maddubs_epi16(w1, x1)),
                    _mm256_add_epi16(_mm256_maddubs_epi16(w2, x2), _mm256_maddubs_epi16(w3, x3)),
                );
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
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
        let a = _mm_add_ps(_mm256_castps256_ps128(tot), _mm256_extractf128_ps::<1>(tot));
        // a = [t0+t4, t1+t5, t2+t6, t3+t7]; then (a0 + a2) + (a1 + a3).
        let b = _mm_add_ps(a, _mm_movehl_ps(a, a));
        let c = _mm_add_ss(b, _mm_shuffle_ps::<0b01>(b, b));
        _mm_cvtss_f32(c)
    }

    /// Σ (code+1)·x over whole blocks, AVX-512 VNNI; `x` is in the kernel order of `QuantizedActs::q512`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dot_avx512vnni(qs: &[u8], x: &[i8]) -> i32 {
        let mask = _mm512_set1_epi8(3);
        let mut acc = _mm512_setzero_si512();
        let nb = qs.len() / 64;
        for b in 0..nb {
            // SAFETY: block b has 64 code bytes and 256 activations.
            let (v, xp) = unsafe {
                (
                    _mm512_loadu_si512(qs.as_ptr().add(b * 64) as *const _),
                    x.as_ptr().add(b * 256),
                )
            };
            let w0 = _mm512_and_si512(v, mask);
            let w1 = _mm512_and_si512(_mm512_srli_epi16::<2>(v), mask);
            let w2 = _mm512_and_si512(_mm512_srli_epi16::<4>(v), mask);
            let w3 = _mm512_and_si512(_mm512_srli_epi16::<6>(v), mask);
            // SAFETY: xp..xp+256 lies in block b.
            unsafe {
                acc = _mm512_dpbusd_epi32(acc, w0, _mm512_loadu_si512(xp as *const _));
                acc = _mm512_dpbusd_epi32(acc, w1, _mm512_loadu_si512(xp.add(64) as *const _));
                acc = _mm512_dpbusd_epi32(acc, w2, _mm512_loadu_si512(xp.add(128) as *const _));
                acc = _mm512_dpbusd_epi32(acc, w3, _mm512_loadu_si512(xp.add(192) as *const _));
            }
        }
        _mm512_reduce_add_epi32(acc)
    }
}

fn row(kernel: Kernel, m: &TernaryMatrix, a: &QuantizedActs, r: usize) -> f32 {
    let bpr = m.cols / QK;
    let qs = &m.qs[r * bpr * QS..(r + 1) * bpr * QS];
    let acc = match &m.uniform {
        Some(d) => (kernel.biased_dot(qs, a, 0, bpr) - a.total) as f32 * d[r],
        None => {
            let mut acc = 0f32;
            for b in 0..bpr {
                let isum = kernel.biased_dot(qs, a, b, b + 1) - a.bsum[b];
                acc += isum as f32 * m.d[r * bpr + b];
            }
            acc
        }
    };
    acc / a.s
}

/// `out = M · x̃` where `x̃ = q/s`; rows are split over `pool`'s threads (or run here when `None`).
pub fn matvec(
    kernel: Kernel,
    m: &TernaryMatrix,
    a: &QuantizedActs,
    out: &mut [f32],
    pool: Option<&rayon::ThreadPool>,
) -> Result<()> {
    if a.q.len() != m.cols || out.len() != m.rows {
        return Err(BitnetError::Model(format!(
            "matvec shape mismatch: matrix {}x{}, input {}, output {}",
            m.rows,
            m.cols,
            a.q.len(),
            out.len()
        )));
    }
    if !Kernel::available().contains(&kernel) {
        return Err(BitnetError::Model(format!(
            "kernel {kernel:?} is not supported by this CPU"
        )));
    }
    match pool {
        Some(p) if p.current_num_threads() > 1 && m.rows >= 64 => {
            let chunk = m.rows.div_ceil(p.current_num_threads() * 4).max(16);
            p.install(|| {
                out.par_chunks_mut(chunk).enumerate().for_each(|(c, o)| {
                    for (i, y) in o.iter_mut().enumerate() {
                        *y = row(kernel, m, a, c * chunk + i);
                    }
                })
            });
        }
        _ => {
            for (r, y) in out.iter_mut().enumerate() {
                *y = row(kernel, m, a, r);
            }
        }
    }
    Ok(())
}

/// Dense f32 `out = W x` for a row-major `(rows, cols)` matrix (the output head), split over `pool`.
pub fn matvec_f32(
    w: &[f32],
    cols: usize,
    x: &[f32],
    out: &mut [f32],
    pool: Option<&rayon::ThreadPool>,
) {
    let dot = |r: usize| -> f32 {
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
    match pool {
        Some(p) if p.current_num_threads() > 1 => p.install(|| {
            out.par_chunks_mut(256).enumerate().for_each(|(c, o)| {
                for (i, y) in o.iter_mut().enumerate() {
                    *y = dot(c * 256 + i);
                }
            })
        }),
        _ => {
            for (r, y) in out.iter_mut().enumerate() {
                *y = dot(r);
            }
        }
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

    /// `out = W x` (f32 activations), rows split over `pool`. Runs the AVX2 row kernel when the CPU
    /// has it; it gives the same bits as the portable one.
    pub fn matvec(&self, x: &[f32], out: &mut [f32], pool: Option<&rayon::ThreadPool>) {
        self.matvec_with(q8_avx2(), x, out, pool)
    }

    fn matvec_with(
        &self,
        avx2: bool,
        x: &[f32],
        out: &mut [f32],
        pool: Option<&rayon::ThreadPool>,
    ) {
        let (cols, nb) = (self.cols, self.cols / 32);
        let x = &x[..cols];
        let dot = |r: usize| -> f32 {
            let q = &self.q[r * cols..(r + 1) * cols];
            let d = &self.d[r * nb..(r + 1) * nb];
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                // SAFETY: `avx2` is only true when the CPU has AVX2 (`q8_avx2`); `q` and `x` hold
                // `cols` values and `d` one scale per 32 of them.
                return unsafe { x86::q8_row_avx2(q, d, x) };
            }
            let _ = avx2;
            q8_row_portable(q, d, x)
        };
        match pool {
            Some(p) if p.current_num_threads() > 1 => p.install(|| {
                out.par_chunks_mut(256).enumerate().for_each(|(c, o)| {
                    for (i, y) in o.iter_mut().enumerate() {
                        *y = dot(c * 256 + i);
                    }
                })
            }),
            _ => {
                for (r, y) in out.iter_mut().enumerate() {
                    *y = dot(r);
                }
            }
        }
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        for (i, (rows, cols)) in shapes.into_iter().enumerate() {
            let m = random_matrix(rows, cols, i as u64, i % 2 == 1);
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + i as u64);
            let x: Vec<f32> = (0..cols).map(|_| rng.gen_range(-4.0f32..4.0)).collect();
            let a = quantize_acts(&x);
            let mut want = vec![0f32; rows];
            matvec(Kernel::Portable, &m, &a, &mut want, None).unwrap();
            for k in Kernel::available() {
                let mut got = vec![0f32; rows];
                matvec(k, &m, &a, &mut got, Some(&pool)).unwrap();
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        for k in Kernel::available() {
            let mut one = vec![0f32; rows];
            let mut three = vec![0f32; rows];
            matvec(k, &m, &a, &mut one, None).unwrap();
            matvec(k, &m, &a, &mut three, Some(&pool)).unwrap();
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
            m.matvec_with(false, &x, &mut want, None);
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
    fn shape_mismatches_are_errors() {
        let m = random_matrix(2, 256, 1, false);
        let a = quantize_acts(&[0.5f32; 512]);
        assert!(matvec(Kernel::Portable, &m, &a, &mut [0.0; 2], None).is_err());
        assert!(TernaryMatrix::from_tq2_0(&[0u8; 65], 1, 256).is_err());
        assert!(TernaryMatrix::from_tq2_0(&[0xffu8; 66], 1, 256).is_err());
    }
}
