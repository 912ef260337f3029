//! Pseudo-gradient compression: int8 with a scale per chunk, optional top-k, error feedback.
//!
//! Each worker keeps a residual `e` (what compression has not yet delivered). Per round it sends
//! `C(Δ + e)` and keeps `e ← (Δ + e) − decode(C(Δ + e))`, so nothing is lost for good: over
//! T rounds `Σ decode_t = Σ Δ_t − e_T`, and `e_T` stays bounded (tests show it).
//!
//! * Dense int8: per chunk of `chunk` values, `scale = max|x| / 127`, `q = round(x / scale)`.
//!   Per element the error is ≤ scale/2, so `max|e| ≤ max|Δ| / 253` for ever.
//! * Top-k: keep the `k = ⌈n·top_k_ppm/10^6⌉` largest |x| (ties → lower index), quantise those
//!   in chunks of `chunk`, send their u32 indices; the rest stays in the residual.
//!
//! Wire format, little-endian, version 1 (the byte counts in `docs/diloco.md` are of this):
//!
//! ```text
//! "MGQ8" | version u8 = 1 | kind u8 (0 dense, 1 top-k) | n u64 | chunk u32 | k u64
//!        | scales f32 × ⌈k/chunk⌉ | indices u32 × k (top-k only) | values i8 × k
//! ```
//!
//! # Guarantees
//! Decoding is deterministic; `from_bytes` rejects every malformed input with a typed error
//! (never panics, never allocates beyond the input). A non-finite Δ is refused before it can
//! poison the residual.
//!
//! # Non-guarantees
//! Compression is lossy per round by design; the merge hashes and weighs the *decoded* Δ.

use crate::types::{delta_hash, Digest};

/// Magic bytes of a compressed Δ.
pub const COMPRESSED_MAGIC: [u8; 4] = *b"MGQ8";
/// Header length in bytes.
pub const COMPRESSED_HEADER_LEN: usize = 4 + 1 + 1 + 8 + 4 + 8;

/// How to compress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompressionConfig {
    /// Values per int8 scale (default 256 → 1.6 % scale overhead).
    pub chunk: u32,
    /// Keep only this fraction (parts per million) of the values; `None` = dense.
    pub top_k_ppm: Option<u32>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            chunk: 256,
            top_k_ppm: None,
        }
    }
}

/// Compression or decoding failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompressError {
    /// Bad configuration.
    #[error("invalid compression config: {what}")]
    InvalidConfig {
        /// What is wrong.
        what: &'static str,
    },
    /// Δ length differs from the residual's.
    #[error("delta has {got} values but this compressor was built for {expected}")]
    LengthMismatch {
        /// Residual length.
        expected: usize,
        /// Δ length.
        got: usize,
    },
    /// NaN or Inf in Δ: refused so the residual stays clean.
    #[error("delta value {index} is not finite; refusing to compress a poisoned update")]
    NonFinite {
        /// First bad index.
        index: usize,
    },
    /// Malformed wire bytes.
    #[error("compressed delta is malformed: {what}")]
    Malformed {
        /// What is wrong.
        what: &'static str,
    },
}

/// A compressed pseudo-gradient.
#[derive(Clone, Debug, PartialEq)]
pub struct Compressed {
    /// Length of the full Δ.
    pub len: u64,
    /// Values per scale.
    pub chunk: u32,
    /// One scale per chunk of `values`.
    pub scales: Vec<f32>,
    /// Positions of `values` in Δ (top-k), or `None` (dense: all positions in order).
    pub indices: Option<Vec<u32>>,
    /// Quantised values in [-127, 127].
    pub values: Vec<i8>,
}

fn quantize_chunk(x: &[f32], out_q: &mut Vec<i8>) -> f32 {
    let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
    let scale = max / 127.0;
    for &v in x {
        let q = if scale > 0.0 {
            (v / scale).round().clamp(-127.0, 127.0) as i8
        } else {
            0
        };
        out_q.push(q);
    }
    scale
}

/// Dense int8 of `x` (one scale per `chunk` values, no residual): the encoding of a merged
/// outer step (see `MergePolicy::update_chunk`). `chunk` 0 is treated as 1.
pub fn quantize_dense(x: &[f32], chunk: u32) -> Compressed {
    let chunk = chunk.max(1);
    let mut values = Vec::with_capacity(x.len());
    let scales: Vec<f32> = x
        .chunks(chunk as usize)
        .map(|c| quantize_chunk(c, &mut values))
        .collect();
    Compressed {
        len: x.len() as u64,
        chunk,
        scales,
        indices: None,
        values,
    }
}

impl Compressed {
    /// Exact wire size in bytes.
    pub fn encoded_len(&self) -> usize {
        COMPRESSED_HEADER_LEN
            + 4 * self.scales.len()
            + self.indices.as_ref().map_or(0, |i| 4 * i.len())
            + self.values.len()
    }

    /// The f32 Δ this message stands for.
    pub fn decode(&self) -> Vec<f32> {
        let n = usize::try_from(self.len).unwrap_or(0);
        let chunk = (self.chunk as usize).max(1);
        let deq =
            |k: usize, q: i8| f32::from(q) * self.scales.get(k / chunk).copied().unwrap_or(0.0);
        match &self.indices {
            None => self
                .values
                .iter()
                .enumerate()
                .map(|(k, &q)| deq(k, q))
                .collect(),
            Some(idx) => {
                let mut out = vec![0f32; n];
                for (k, (&i, &q)) in idx.iter().zip(&self.values).enumerate() {
                    if let Some(slot) = out.get_mut(i as usize) {
                        *slot = deq(k, q);
                    }
                }
                out
            }
        }
    }

    /// Hash of the decoded Δ (what GradientReady announces and the merge checks).
    pub fn delta_hash(&self) -> Digest {
        delta_hash(&self.decode())
    }

    /// Serialises to the version-1 wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&COMPRESSED_MAGIC);
        out.push(1);
        out.push(u8::from(self.indices.is_some()));
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.chunk.to_le_bytes());
        out.extend_from_slice(&(self.values.len() as u64).to_le_bytes());
        for s in &self.scales {
            out.extend_from_slice(&s.to_le_bytes());
        }
        if let Some(idx) = &self.indices {
            for i in idx {
                out.extend_from_slice(&i.to_le_bytes());
            }
        }
        out.extend(self.values.iter().map(|&v| v as u8));
        out
    }

    /// Parses the version-1 wire format, checking every length and index.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CompressError> {
        let bad = |what| CompressError::Malformed { what };
        if b.len() < COMPRESSED_HEADER_LEN {
            return Err(bad("shorter than the header"));
        }
        if b[..4] != COMPRESSED_MAGIC {
            return Err(bad("magic is not MGQ8"));
        }
        if b[4] != 1 {
            return Err(bad("unsupported version"));
        }
        let topk = match b[5] {
            0 => false,
            1 => true,
            _ => return Err(bad("kind must be 0 (dense) or 1 (top-k)")),
        };
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let len = u64_at(6);
        let chunk = u32::from_le_bytes([b[14], b[15], b[16], b[17]]);
        let k = u64_at(18);
        if chunk == 0 {
            return Err(bad("chunk is zero"));
        }
        if (!topk && k != len) || k > len || len > u64::from(u32::MAX) {
            return Err(bad("value count inconsistent with length"));
        }
        let body = &b[COMPRESSED_HEADER_LEN..];
        let n_scales = k.div_ceil(u64::from(chunk));
        let expected = n_scales
            .checked_mul(4)
            .and_then(|s| s.checked_add(if topk { k.checked_mul(5)? } else { k }));
        if expected != Some(body.len() as u64) {
            return Err(bad("body length does not match the header"));
        }
        let (n_scales, k) = (n_scales as usize, k as usize);
        let (sb, rest) = body.split_at(4 * n_scales);
        let scales: Vec<f32> = sb
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if scales.iter().any(|s| !s.is_finite() || *s < 0.0) {
            return Err(bad("a scale is negative or not finite"));
        }
        let (indices, vb) = if topk {
            let (ib, vb) = rest.split_at(4 * k);
            let idx: Vec<u32> = ib
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            if idx.windows(2).any(|w| w[0] >= w[1])
                || idx.last().is_some_and(|&l| u64::from(l) >= len)
            {
                return Err(bad("top-k indices must be strictly increasing and below n"));
            }
            (Some(idx), vb)
        } else {
            (None, rest)
        };
        let values: Vec<i8> = vb.iter().map(|&v| v as i8).collect();
        if values.contains(&i8::MIN) {
            return Err(bad("value -128 is outside [-127, 127]"));
        }
        Ok(Self {
            len,
            chunk,
            scales,
            indices,
            values,
        })
    }
}

/// A worker's compressor: the config plus its error-feedback residual.
#[derive(Clone, Debug)]
pub struct Compressor {
    cfg: CompressionConfig,
    residual: Vec<f32>,
}

impl Compressor {
    /// A compressor for Δs of `len` values, starting with a zero residual.
    pub fn new(cfg: CompressionConfig, len: usize) -> Result<Self, CompressError> {
        if cfg.chunk == 0 {
            return Err(CompressError::InvalidConfig {
                what: "chunk must be at least 1",
            });
        }
        if matches!(cfg.top_k_ppm, Some(p) if p == 0 || p > 1_000_000) {
            return Err(CompressError::InvalidConfig {
                what: "top_k_ppm must be in 1..=1000000",
            });
        }
        if len > u32::MAX as usize {
            return Err(CompressError::InvalidConfig {
                what: "at most 2^32-1 parameters",
            });
        }
        Ok(Self {
            cfg,
            residual: vec![0.0; len],
        })
    }

    /// The residual not yet delivered.
    pub fn residual(&self) -> &[f32] {
        &self.residual
    }

    /// Compresses `delta + residual` and updates the residual.
    pub fn compress(&mut self, delta: &[f32]) -> Result<Compressed, CompressError> {
        if delta.len() != self.residual.len() {
            return Err(CompressError::LengthMismatch {
                expected: self.residual.len(),
                got: delta.len(),
            });
        }
        if let Some(index) = delta.iter().position(|x| !x.is_finite()) {
            return Err(CompressError::NonFinite { index });
        }
        let x: Vec<f32> = delta
            .iter()
            .zip(&self.residual)
            .map(|(d, e)| d + e)
            .collect();
        let chunk = self.cfg.chunk as usize;
        let n = x.len();
        let out = match self.cfg.top_k_ppm {
            None => quantize_dense(&x, self.cfg.chunk),
            Some(ppm) => {
                let k =
                    ((n as u64 * u64::from(ppm)).div_ceil(1_000_000) as usize).clamp(n.min(1), n);
                let mut order: Vec<u32> = (0..n as u32).collect();
                if k < n {
                    // Largest |x| first; ties → lower index. Total order, so deterministic.
                    order.select_nth_unstable_by(k, |&a, &b| {
                        x[b as usize]
                            .abs()
                            .total_cmp(&x[a as usize].abs())
                            .then(a.cmp(&b))
                    });
                    order.truncate(k);
                }
                order.sort_unstable();
                let picked: Vec<f32> = order.iter().map(|&i| x[i as usize]).collect();
                let mut values = Vec::with_capacity(k);
                let scales: Vec<f32> = picked
                    .chunks(chunk)
                    .map(|c| quantize_chunk(c, &mut values))
                    .collect();
                Compressed {
                    len: n as u64,
                    chunk: self.cfg.chunk,
                    scales,
                    indices: Some(order),
                    values,
                }
            }
        };
        let decoded = out.decode();
        for ((e, xi), di) in self.residual.iter_mut().zip(&x).zip(&decoded) {
            *e = xi - di;
        }
        Ok(out)
    }
}

/// Bytes sent and received by one node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ByteLedger {
    /// Bytes uploaded (Δs, or gradients for data-parallel).
    pub up: u64,
    /// Bytes downloaded (merged models, or averaged gradients).
    pub down: u64,
}

impl ByteLedger {
    /// up + down.
    pub fn total(&self) -> u64 {
        self.up.saturating_add(self.down)
    }

    /// Adds another ledger.
    pub fn add(&mut self, other: ByteLedger) {
        self.up = self.up.saturating_add(other.up);
        self.down = self.down.saturating_add(other.down);
    }
}

/// Wire bytes of a dense int8 Δ of `n` values.
pub fn dense_int8_len(n: u64, chunk: u32) -> u64 {
    COMPRESSED_HEADER_LEN as u64 + 4 * n.div_ceil(u64::from(chunk.max(1))) + n
}

/// Wire bytes of a top-k int8 Δ keeping `k` values.
pub fn topk_int8_len(k: u64, chunk: u32) -> u64 {
    COMPRESSED_HEADER_LEN as u64 + 4 * k.div_ceil(u64::from(chunk.max(1))) + 5 * k
}

/// Synchronous data-parallel, per worker, over `steps` optimizer steps of a `params`-parameter
/// model: every step uploads its fp32 gradient and downloads the fp32 average (a parameter
/// server; ring all-reduce moves 2(N−1)/N of the same in each direction).
pub fn ddp_bytes_per_worker(params: u64, steps: u64) -> ByteLedger {
    let per = 4 * params * steps;
    ByteLedger { up: per, down: per }
}

/// DiLoCo, per worker, over `rounds` rounds: one compressed Δ up (`upload_len` bytes) and the
/// merged fp32 parameters down (4 bytes each) per round.
pub fn diloco_bytes_per_worker(params: u64, rounds: u64, upload_len: u64) -> ByteLedger {
    ByteLedger {
        up: rounds * upload_len,
        down: rounds * 4 * params,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_round_trip_and_exact_length() {
        let mut c = Compressor::new(CompressionConfig::default(), 1000).unwrap();
        let d: Vec<f32> = (0..1000).map(|i| ((i as f32) * 0.37).sin()).collect();
        let m = c.compress(&d).unwrap();
        let bytes = m.to_bytes();
        assert_eq!(bytes.len(), m.encoded_len());
        assert_eq!(bytes.len() as u64, dense_int8_len(1000, 256));
        assert_eq!(Compressed::from_bytes(&bytes).unwrap(), m);
        let dec = m.decode();
        for (a, b) in d.iter().zip(&dec) {
            assert!((a - b).abs() <= 1.0 / 254.0 + 1e-6);
        }
    }

    #[test]
    fn topk_keeps_the_largest_and_counts_bytes() {
        let cfg = CompressionConfig {
            chunk: 4,
            top_k_ppm: Some(250_000),
        };
        let mut c = Compressor::new(cfg, 8).unwrap();
        let d = [0.1, -5.0, 0.2, 0.0, 3.0, 0.0, 0.0, 0.3];
        let m = c.compress(&d).unwrap();
        assert_eq!(m.indices, Some(vec![1, 4]));
        assert_eq!(m.to_bytes().len() as u64, topk_int8_len(2, 4));
        assert_eq!(Compressed::from_bytes(&m.to_bytes()).unwrap(), m);
        // What was not sent stays in the residual.
        assert_eq!(c.residual()[0], 0.1);
        assert_eq!(c.residual()[7], 0.3);
    }

    #[test]
    fn non_finite_delta_is_refused_and_residual_untouched() {
        let mut c = Compressor::new(CompressionConfig::default(), 3).unwrap();
        c.compress(&[0.5, 0.25, 1.0]).unwrap();
        let before = c.residual().to_vec();
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            assert_eq!(
                c.compress(&[0.0, bad, 0.0]),
                Err(CompressError::NonFinite { index: 1 })
            );
        }
        assert_eq!(c.residual(), &before[..]);
        assert!(c.compress(&[0.0]).is_err());
    }

    #[test]
    fn wire_format_conformance_vector() {
        let cfg = CompressionConfig {
            chunk: 2,
            top_k_ppm: None,
        };
        let m = Compressor::new(cfg, 3)
            .unwrap()
            .compress(&[1.0, -0.5, 0.25])
            .unwrap();
        assert_eq!(hex::encode(m.to_bytes()), WIRE_VECTOR);
    }

    // "MGQ8" v1 dense n=3 chunk=2 k=3 | scales 1/127, 0.25/127 | values 127, -64, 127
    const WIRE_VECTOR: &str =
        "4d475138010003000000000000000200000003000000000000000402013c0402013b7fc07f";

    #[test]
    fn every_malformed_wire_input_is_a_typed_error() {
        let cfg = CompressionConfig {
            chunk: 2,
            top_k_ppm: Some(500_000),
        };
        let good = Compressor::new(cfg, 4)
            .unwrap()
            .compress(&[1.0, -2.0, 3.0, 0.5])
            .unwrap()
            .to_bytes();
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("extra", [good.clone(), vec![0]].concat()),
        ];
        let mut m = good.clone();
        m[0] = b'X';
        cases.push(("magic", m));
        let mut m = good.clone();
        m[4] = 2;
        cases.push(("version", m));
        let mut m = good.clone();
        m[5] = 7;
        cases.push(("kind", m));
        let mut m = good.clone();
        m[14..18].copy_from_slice(&0u32.to_le_bytes());
        cases.push(("zero chunk", m));
        let mut m = good.clone();
        m[18..26].copy_from_slice(&u64::MAX.to_le_bytes());
        cases.push(("huge k", m));
        let mut m = good.clone();
        let idx0 = COMPRESSED_HEADER_LEN + 4;
        m[idx0..idx0 + 4].copy_from_slice(&9u32.to_le_bytes());
        cases.push(("index order", m));
        let mut m = good.clone();
        let last = m.len() - 1;
        m[last] = 0x80;
        cases.push(("-128", m));
        let mut m = good.clone();
        m[COMPRESSED_HEADER_LEN..COMPRESSED_HEADER_LEN + 4]
            .copy_from_slice(&f32::NAN.to_le_bytes());
        cases.push(("nan scale", m));
        for (name, bytes) in cases {
            assert!(
                matches!(
                    Compressed::from_bytes(&bytes),
                    Err(CompressError::Malformed { .. })
                ),
                "{name} accepted"
            );
        }
    }
}
