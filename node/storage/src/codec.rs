//! Systematic Reed-Solomon erasure coding of striped objects.
//!
//! # Layout
//! An object is cut into *stripes* of `stripe_size` bytes (1–4 MiB, a multiple of K); the last
//! stripe may be shorter. Each stripe is split into K equal *pieces* (the last stripe's pieces
//! are `ceil(len / K)` bytes, zero-padded) and M parity pieces are computed over GF(2^8)
//! (polynomial 0x11D, the Vandermonde-derived systematic matrix of `reed-solomon-erasure`).
//! Shard `i` is the concatenation of piece `i` of every stripe, so shards 0..K hold the object's
//! bytes verbatim (systematic) and every shard of an object has the same length,
//! [`Layout::shard_len`]. Encoding reads the object stripe by stripe ([`encode_stream`]) and
//! decoding writes it stripe by stripe ([`decode_stream`]), so memory use is one stripe, not one
//! object.
//!
//! # Guarantees
//! * Any K of the K+M shards rebuild the exact object bytes, for every (K, M) in [`SUPPORTED`]
//!   (each is covered by the all-loss-patterns table test).
//! * [`decode`] checks every offered shard against its SHA-256; a shard that fails is excluded
//!   (reported in [`DecodeReport::corrupt`]), never used. Fewer than K good shards is
//!   [`CodecError::TooFewShards`], never wrong bytes.
//! * Encoded shards of a fixed input never change (golden vectors in `tests/golden/`).
//!
//! # Non-guarantees
//! [`decode_stream`] trusts its readers: callers verify shard hashes first (the shard store
//! does so on read; [`decode`] does so for in-memory shards).

use std::io::{self, Read, Write};

use reed_solomon_erasure::galois_8::ReedSolomon;
use serde::{Deserialize, Serialize};

use crate::hash::{Hash32, Hasher};

/// The (K, M) settings this crate accepts. Each one passes the all-patterns rebuild test.
pub const SUPPORTED: &[(u8, u8)] = &[(2, 1), (3, 2), (4, 2), (6, 3), (8, 4), (10, 4)];

/// Smallest allowed stripe (1 MiB).
pub const MIN_STRIPE: u32 = 1 << 20;
/// Largest allowed stripe (4 MiB).
pub const MAX_STRIPE: u32 = 4 << 20;

/// Errors of the erasure codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// (K, M) is not one of [`SUPPORTED`].
    #[error("unsupported erasure setting K={k}, M={m}; supported (K,M): {SUPPORTED:?}")]
    Unsupported {
        /// Data shards asked for.
        k: u8,
        /// Parity shards asked for.
        m: u8,
    },
    /// Stripe size outside 1–4 MiB or not a multiple of K.
    #[error(
        "stripe size {stripe_size} is invalid for K={k}: it must be between {MIN_STRIPE} and {MAX_STRIPE} bytes and a multiple of K"
    )]
    BadStripe {
        /// The stripe size given.
        stripe_size: u32,
        /// Data shards.
        k: u8,
    },
    /// Too few intact shards to rebuild.
    #[error(
        "cannot rebuild: {usable} intact shards of the {needed} needed (missing {missing:?}, corrupt {corrupt:?})"
    )]
    TooFewShards {
        /// Intact shards available.
        usable: usize,
        /// K.
        needed: usize,
        /// Indices not offered.
        missing: Vec<u8>,
        /// Indices offered whose hash or length was wrong.
        corrupt: Vec<u8>,
    },
    /// The caller passed a shard list of the wrong length.
    #[error("expected {expected} shard slots, got {got}")]
    WrongShardCount {
        /// K + M.
        expected: usize,
        /// Slots passed.
        got: usize,
    },
    /// A shard index out of range.
    #[error("shard index {index} out of range for {total} shards")]
    BadIndex {
        /// The index.
        index: u8,
        /// K + M.
        total: usize,
    },
    /// The rebuilt bytes do not hash to the expected content address (a bug or a hash collision;
    /// never expected).
    #[error("rebuilt object hash {got} does not match {expected}")]
    ObjectMismatch {
        /// Expected object hash.
        expected: Hash32,
        /// Hash of the rebuilt bytes.
        got: Hash32,
    },
    /// An I/O error while streaming.
    #[error("I/O error while {during}: {message}")]
    Io {
        /// What was happening.
        during: &'static str,
        /// The OS error text.
        message: String,
    },
    /// An internal error of the Reed-Solomon library (never expected with validated inputs).
    #[error("reed-solomon: {0}")]
    Rs(String),
}

fn io_err(during: &'static str) -> impl FnOnce(io::Error) -> CodecError {
    move |e| CodecError::Io {
        during,
        message: e.to_string(),
    }
}

/// A validated (K, M) erasure setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
}

impl Params {
    /// The default RS(4, 2).
    pub const DEFAULT: Params = Params { k: 4, m: 2 };

    /// Validates (K, M) against [`SUPPORTED`].
    pub fn new(k: u8, m: u8) -> Result<Self, CodecError> {
        if SUPPORTED.contains(&(k, m)) {
            Ok(Params { k, m })
        } else {
            Err(CodecError::Unsupported { k, m })
        }
    }

    /// K + M.
    pub fn total(&self) -> usize {
        usize::from(self.k) + usize::from(self.m)
    }

    /// Default stripe for this K: the smallest multiple of K that is at least 1 MiB.
    pub fn default_stripe(&self) -> u32 {
        let k = u32::from(self.k);
        MIN_STRIPE.div_ceil(k) * k
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Where an object's bytes go: the stripe geometry of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Erasure setting.
    pub params: Params,
    /// Full stripe size in bytes.
    pub stripe_size: u32,
    /// Object size in bytes.
    pub object_size: u64,
}

impl Layout {
    /// Validates the stripe size for `params`.
    pub fn new(params: Params, stripe_size: u32, object_size: u64) -> Result<Self, CodecError> {
        check_stripe(params, stripe_size)?;
        Ok(Layout {
            params,
            stripe_size,
            object_size,
        })
    }

    fn piece_len(&self) -> u64 {
        u64::from(self.stripe_size) / u64::from(self.params.k)
    }

    /// The stripes as `(data_len, piece_len)`, in order.
    pub fn stripes(&self) -> impl Iterator<Item = (usize, usize)> {
        let stripe = u64::from(self.stripe_size);
        let full = self.object_size / stripe;
        let tail = self.object_size % stripe;
        let piece = self.piece_len() as usize;
        let k = u64::from(self.params.k);
        let full_iter = (0..full).map(move |_| (stripe as usize, piece));
        let tail_iter = (tail > 0)
            .then(|| (tail as usize, tail.div_ceil(k) as usize))
            .into_iter();
        full_iter.chain(tail_iter)
    }

    /// Length of every shard of this object.
    pub fn shard_len(&self) -> u64 {
        let stripe = u64::from(self.stripe_size);
        let tail = self.object_size % stripe;
        (self.object_size / stripe) * self.piece_len() + tail.div_ceil(u64::from(self.params.k))
    }
}

fn check_stripe(params: Params, stripe_size: u32) -> Result<(), CodecError> {
    if !(MIN_STRIPE..=MAX_STRIPE).contains(&stripe_size)
        || !stripe_size.is_multiple_of(u32::from(params.k))
    {
        return Err(CodecError::BadStripe {
            stripe_size,
            k: params.k,
        });
    }
    Ok(())
}

/// A Reed-Solomon codec for one (K, M) setting.
#[derive(Debug)]
pub struct Codec {
    params: Params,
    rs: ReedSolomon,
}

impl Codec {
    /// A codec for `params`.
    pub fn new(params: Params) -> Result<Self, CodecError> {
        let rs = ReedSolomon::new(usize::from(params.k), usize::from(params.m))
            .map_err(|e| CodecError::Rs(format!("{e:?}")))?;
        Ok(Codec { params, rs })
    }

    /// The (K, M) setting.
    pub fn params(&self) -> Params {
        self.params
    }

    /// Encodes one stripe (`data.len()` ≤ K × `piece_len`; zero-padded) into K + M pieces of
    /// `piece_len` bytes, written into `pieces` (resized as needed).
    pub fn encode_stripe(
        &self,
        data: &[u8],
        piece_len: usize,
        pieces: &mut [Vec<u8>],
    ) -> Result<(), CodecError> {
        let k = usize::from(self.params.k);
        if pieces.len() != self.params.total() {
            return Err(CodecError::WrongShardCount {
                expected: self.params.total(),
                got: pieces.len(),
            });
        }
        if piece_len == 0 {
            return Ok(());
        }
        for (i, piece) in pieces.iter_mut().enumerate() {
            piece.clear();
            piece.resize(piece_len, 0);
            if i < k {
                let start = (i * piece_len).min(data.len());
                let end = ((i + 1) * piece_len).min(data.len());
                piece[..end - start].copy_from_slice(&data[start..end]);
            }
        }
        self.rs
            .encode(pieces)
            .map_err(|e| CodecError::Rs(format!("{e:?}")))
    }

    /// Rebuilds the missing pieces of one stripe in place. `present` pieces must be intact.
    /// With `data_only`, only data pieces are rebuilt (enough to emit the object bytes).
    pub fn reconstruct_stripe(
        &self,
        pieces: &mut [Option<Vec<u8>>],
        data_only: bool,
    ) -> Result<(), CodecError> {
        let r = if data_only {
            self.rs.reconstruct_data(pieces)
        } else {
            self.rs.reconstruct(pieces)
        };
        r.map_err(|e| CodecError::Rs(format!("{e:?}")))
    }
}

/// What encoding produced: the facts a manifest records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Object geometry.
    pub layout: Layout,
    /// SHA-256 of the object (its content address).
    pub object_hash: Hash32,
    /// SHA-256 of each shard, index order.
    pub shard_hashes: Vec<Hash32>,
}

fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Encodes an object read from `input`, stripe by stripe, appending shard `i` to `sinks[i]`.
/// Returns the layout and hashes for the manifest. `progress` is called with bytes consumed.
pub fn encode_stream<R: Read, W: Write>(
    codec: &Codec,
    stripe_size: u32,
    mut input: R,
    sinks: &mut [W],
    mut progress: impl FnMut(u64),
) -> Result<Encoded, CodecError> {
    let params = codec.params();
    check_stripe(params, stripe_size)?;
    if sinks.len() != params.total() {
        return Err(CodecError::WrongShardCount {
            expected: params.total(),
            got: sinks.len(),
        });
    }
    let k = usize::from(params.k);
    let mut buf = vec![0u8; stripe_size as usize];
    let mut pieces = vec![Vec::new(); params.total()];
    let mut object = Hasher::new();
    let mut shard_h = vec![Hasher::new(); params.total()];
    let mut size = 0u64;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(io_err("reading the object"))?;
        if n == 0 {
            break;
        }
        object.update(&buf[..n]);
        size += n as u64;
        let piece_len = n.div_ceil(k);
        codec.encode_stripe(&buf[..n], piece_len, &mut pieces)?;
        for ((piece, sink), h) in pieces.iter().zip(sinks.iter_mut()).zip(shard_h.iter_mut()) {
            sink.write_all(piece).map_err(io_err("writing a shard"))?;
            h.update(piece);
        }
        progress(size);
        if n < buf.len() {
            break;
        }
    }
    for sink in sinks.iter_mut() {
        sink.flush().map_err(io_err("flushing a shard"))?;
    }
    Ok(Encoded {
        layout: Layout::new(params, stripe_size, size)?,
        object_hash: object.finish(),
        shard_hashes: shard_h.into_iter().map(Hasher::finish).collect(),
    })
}

/// Encodes an in-memory object into K + M in-memory shards.
pub fn encode(
    codec: &Codec,
    stripe_size: u32,
    data: &[u8],
) -> Result<(Encoded, Vec<Vec<u8>>), CodecError> {
    let mut shards = vec![Vec::new(); codec.params().total()];
    let enc = encode_stream(codec, stripe_size, data, &mut shards, |_| {})?;
    Ok((enc, shards))
}

/// Streams the object out of K or more *already verified* shard readers (`None` = missing),
/// stripe by stripe, into `out`. Returns the SHA-256 of the bytes written.
pub fn decode_stream<R: Read, W: Write>(
    codec: &Codec,
    layout: &Layout,
    shards: &mut [Option<R>],
    mut out: W,
    mut progress: impl FnMut(u64),
) -> Result<Hash32, CodecError> {
    let params = codec.params();
    let total = params.total();
    let k = usize::from(params.k);
    if shards.len() != total {
        return Err(CodecError::WrongShardCount {
            expected: total,
            got: shards.len(),
        });
    }
    let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
    let usable = present.iter().filter(|p| **p).count();
    if usable < k {
        return Err(CodecError::TooFewShards {
            usable,
            needed: k,
            missing: missing_indices(&present),
            corrupt: Vec::new(),
        });
    }
    let all_data = present[..k].iter().all(|p| *p);
    let mut hasher = Hasher::new();
    let mut written = 0u64;
    let mut pieces: Vec<Option<Vec<u8>>> = vec![None; total];
    for (data_len, piece_len) in layout.stripes() {
        for (slot, src) in pieces.iter_mut().zip(shards.iter_mut()) {
            *slot = None;
            if let Some(r) = src {
                let mut p = vec![0u8; piece_len];
                let n = read_full(r, &mut p).map_err(io_err("reading a shard"))?;
                if n != piece_len {
                    return Err(CodecError::Io {
                        during: "reading a shard",
                        message: format!("shard ended early ({n} of {piece_len} bytes)"),
                    });
                }
                *slot = Some(p);
            }
        }
        if !all_data {
            codec.reconstruct_stripe(&mut pieces, true)?;
        }
        let mut left = data_len;
        for piece in pieces.iter().take(k) {
            let piece = piece
                .as_ref()
                .ok_or_else(|| CodecError::Rs("data piece missing after rebuild".into()))?;
            let take = left.min(piece_len);
            out.write_all(&piece[..take])
                .map_err(io_err("writing the object"))?;
            hasher.update(&piece[..take]);
            left -= take;
        }
        written += data_len as u64;
        progress(written);
    }
    out.flush().map_err(io_err("flushing the object"))?;
    Ok(hasher.finish())
}

fn missing_indices(present: &[bool]) -> Vec<u8> {
    present
        .iter()
        .enumerate()
        .filter(|(_, p)| !**p)
        .map(|(i, _)| i as u8)
        .collect()
}

/// The outcome of verifying offered shards.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DecodeReport {
    /// Indices that were not offered.
    pub missing: Vec<u8>,
    /// Indices offered whose hash or length was wrong; they were excluded.
    pub corrupt: Vec<u8>,
}

/// Offered shards after verification (corrupt ones set to `None`), with the report.
pub type VerifiedShards<'a> = (Vec<Option<&'a [u8]>>, DecodeReport);

/// Checks each offered shard against its expected hash and length; returns the verified subset
/// (corrupt ones set to `None`) and a report. Fails with [`CodecError::TooFewShards`] if fewer
/// than K survive.
pub fn verify_shards<'a>(
    layout: &Layout,
    shards: &[Option<&'a [u8]>],
    expected: &[Hash32],
) -> Result<VerifiedShards<'a>, CodecError> {
    let total = layout.params.total();
    if shards.len() != total || expected.len() != total {
        return Err(CodecError::WrongShardCount {
            expected: total,
            got: shards.len().min(expected.len()),
        });
    }
    let len = layout.shard_len();
    let mut report = DecodeReport::default();
    let mut good = Vec::with_capacity(total);
    for (i, (s, h)) in shards.iter().zip(expected).enumerate() {
        match s {
            None => {
                report.missing.push(i as u8);
                good.push(None);
            }
            Some(b) if b.len() as u64 == len && Hash32::of(b) == *h => good.push(Some(*b)),
            Some(_) => {
                report.corrupt.push(i as u8);
                good.push(None);
            }
        }
    }
    let usable = good.iter().filter(|g| g.is_some()).count();
    if usable < usize::from(layout.params.k) {
        return Err(CodecError::TooFewShards {
            usable,
            needed: usize::from(layout.params.k),
            missing: report.missing,
            corrupt: report.corrupt,
        });
    }
    Ok((good, report))
}

/// Rebuilds an in-memory object from offered shards: verifies each against `expected`, excludes
/// the corrupt ones, rebuilds from the rest and checks the result against `object_hash`.
pub fn decode(
    codec: &Codec,
    layout: &Layout,
    shards: &[Option<&[u8]>],
    expected: &[Hash32],
    object_hash: &Hash32,
) -> Result<(Vec<u8>, DecodeReport), CodecError> {
    let (good, report) = verify_shards(layout, shards, expected)?;
    let mut readers: Vec<Option<&[u8]>> = good;
    let mut out = Vec::with_capacity(layout.object_size as usize);
    let got = decode_stream(codec, layout, &mut readers, &mut out, |_| {})?;
    if got != *object_hash {
        return Err(CodecError::ObjectMismatch {
            expected: *object_hash,
            got,
        });
    }
    Ok((out, report))
}

/// Rebuilds shard `index` from K or more *verified* shard readers (used by repair).
pub fn rebuild_shard<R: Read>(
    codec: &Codec,
    layout: &Layout,
    shards: &mut [Option<R>],
    index: u8,
) -> Result<Vec<u8>, CodecError> {
    let params = codec.params();
    let total = params.total();
    if usize::from(index) >= total {
        return Err(CodecError::BadIndex { index, total });
    }
    if shards.len() != total {
        return Err(CodecError::WrongShardCount {
            expected: total,
            got: shards.len(),
        });
    }
    let present: Vec<bool> = shards.iter().map(Option::is_some).collect();
    let usable = present.iter().filter(|p| **p).count();
    if usable < usize::from(params.k) {
        return Err(CodecError::TooFewShards {
            usable,
            needed: usize::from(params.k),
            missing: missing_indices(&present),
            corrupt: Vec::new(),
        });
    }
    let mut out = Vec::with_capacity(layout.shard_len() as usize);
    let mut pieces: Vec<Option<Vec<u8>>> = vec![None; total];
    for (_, piece_len) in layout.stripes() {
        for (slot, src) in pieces.iter_mut().zip(shards.iter_mut()) {
            *slot = None;
            if let Some(r) = src {
                let mut p = vec![0u8; piece_len];
                let n = read_full(r, &mut p).map_err(io_err("reading a shard"))?;
                if n != piece_len {
                    return Err(CodecError::Io {
                        during: "reading a shard",
                        message: format!("shard ended early ({n} of {piece_len} bytes)"),
                    });
                }
                *slot = Some(p);
            }
        }
        if pieces[usize::from(index)].is_none() {
            codec.reconstruct_stripe(&mut pieces, usize::from(index) < usize::from(params.k))?;
        }
        let p = pieces[usize::from(index)]
            .as_ref()
            .ok_or_else(|| CodecError::Rs("piece missing after rebuild".into()))?;
        out.extend_from_slice(p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_counts_full_and_tail_stripes() {
        let p = Params::DEFAULT;
        let l = Layout::new(p, MIN_STRIPE, u64::from(MIN_STRIPE) * 2 + 10).unwrap();
        let s: Vec<_> = l.stripes().collect();
        assert_eq!(s, vec![(1 << 20, 1 << 18), (1 << 20, 1 << 18), (10, 3)]);
        assert_eq!(l.shard_len(), 2 * (1 << 18) + 3);
        let empty = Layout::new(p, MIN_STRIPE, 0).unwrap();
        assert_eq!(empty.stripes().count(), 0);
        assert_eq!(empty.shard_len(), 0);
    }

    #[test]
    fn bad_settings_are_typed_errors() {
        assert_eq!(
            Params::new(5, 5),
            Err(CodecError::Unsupported { k: 5, m: 5 })
        );
        assert_eq!(
            Params::new(0, 2),
            Err(CodecError::Unsupported { k: 0, m: 2 })
        );
        let p = Params::new(6, 3).unwrap();
        assert!(matches!(
            Layout::new(p, MIN_STRIPE, 1),
            Err(CodecError::BadStripe { .. })
        ));
        assert!(Layout::new(p, p.default_stripe(), 1).is_ok());
        assert!(matches!(
            Layout::new(Params::DEFAULT, MAX_STRIPE + 4, 1),
            Err(CodecError::BadStripe { .. })
        ));
    }

    #[test]
    fn data_shards_hold_the_object_verbatim() {
        let codec = Codec::new(Params::DEFAULT).unwrap();
        let data: Vec<u8> = (0..4000u32).map(|i| (i * 7) as u8).collect();
        let (_, shards) = encode(&codec, MIN_STRIPE, &data).unwrap();
        let joined: Vec<u8> = shards[..4].concat();
        assert_eq!(&joined[..data.len()], &data[..]);
    }
}
