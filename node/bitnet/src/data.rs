//! Token shards on disk, a held-out validation split, and a resumable batch sampler.
//!
//! Layout of a shard directory: `meta.json` (vocabulary size, token counts, shard list) and
//! `train-NNNNN.bin` / `val-NNNNN.bin`, each a run of little-endian `u16` token ids.
//!
//! Split: the corpus is cut into documents of [`DOC_LINES`] lines; every `val_every`-th document
//! goes to validation, so both splits cover the whole corpus and never share a document.
//!
//! The [`Batcher`] visits non-overlapping windows of the train stream in an order shuffled per
//! epoch by a ChaCha8 stream seeded from `(seed, epoch)`; its whole state is
//! [`DataPosition`] `{epoch, index}`, so a checkpoint resumes the exact same batches.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{io_err, BitnetError, Result};
use crate::tokenizer::Tokenizer;

/// Lines per document for the train/validation split.
pub const DOC_LINES: usize = 50;
/// Tokens per shard file.
pub const SHARD_TOKENS: usize = 1 << 20;

/// `meta.json` of a shard directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardMeta {
    /// Vocabulary size of the tokenizer that made the shards.
    pub vocab_size: usize,
    /// Tokens in the train split.
    pub train_tokens: usize,
    /// Tokens in the validation split.
    pub val_tokens: usize,
    /// Train shard file names, in order.
    pub train_shards: Vec<String>,
    /// Validation shard file names, in order.
    pub val_shards: Vec<String>,
    /// Every `val_every`-th document is validation.
    pub val_every: usize,
}

fn write_shards(dir: &Path, prefix: &str, tokens: &[u32]) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for (i, chunk) in tokens.chunks(SHARD_TOKENS).enumerate() {
        let name = format!("{prefix}-{i:05}.bin");
        let bytes: Vec<u8> = chunk
            .iter()
            .flat_map(|t| (*t as u16).to_le_bytes())
            .collect();
        let path = dir.join(&name);
        std::fs::write(&path, bytes).map_err(io_err("writing", &path))?;
        names.push(name);
    }
    Ok(names)
}

/// Tokenizes `corpus` into shards under `dir` (created), holding out every `val_every`-th document.
pub fn prepare_shards(
    corpus: &Path,
    tok: &Tokenizer,
    dir: &Path,
    val_every: usize,
) -> Result<ShardMeta> {
    if val_every < 2 {
        return Err(BitnetError::Data(format!(
            "val_every must be at least 2, got {val_every}"
        )));
    }
    if tok.vocab_size() > u16::MAX as usize + 1 {
        return Err(BitnetError::Data(format!(
            "vocabulary of {} does not fit u16 shards",
            tok.vocab_size()
        )));
    }
    let text = std::fs::read_to_string(corpus).map_err(io_err("reading corpus", corpus))?;
    let lines: Vec<&str> = text.lines().collect();
    let docs: Vec<String> = lines
        .chunks(DOC_LINES)
        .map(|c| c.join("\n") + "\n")
        .collect();
    if docs.len() < val_every {
        return Err(BitnetError::Data(format!(
            "corpus {} has {} documents of {DOC_LINES} lines; need at least {val_every} for a validation split",
            corpus.display(),
            docs.len()
        )));
    }
    let ids = tok.encode_batch(docs)?;
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, doc) in ids.into_iter().enumerate() {
        let dst = if i % val_every == val_every - 1 {
            &mut val
        } else {
            &mut train
        };
        dst.extend(doc);
        dst.push(tok.eos_id());
    }
    std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
    let meta = ShardMeta {
        vocab_size: tok.vocab_size(),
        train_tokens: train.len(),
        val_tokens: val.len(),
        train_shards: write_shards(dir, "train", &train)?,
        val_shards: write_shards(dir, "val", &val)?,
        val_every,
    };
    let path = dir.join("meta.json");
    let json = serde_json::to_vec_pretty(&meta).map_err(|e| BitnetError::Data(e.to_string()))?;
    std::fs::write(&path, json).map_err(io_err("writing", &path))?;
    Ok(meta)
}

/// Both splits of a shard directory, in memory.
#[derive(Debug, Clone)]
pub struct TokenData {
    /// The directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub meta: ShardMeta,
    /// Train token stream.
    pub train: Vec<u32>,
    /// Validation token stream.
    pub val: Vec<u32>,
}

fn read_shards(dir: &Path, names: &[String], vocab: usize, want: usize) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(want);
    for name in names {
        if name.contains('/') || name.contains("..") {
            return Err(BitnetError::Data(format!(
                "shard name {name:?} escapes {}",
                dir.display()
            )));
        }
        let path = dir.join(name);
        let bytes = std::fs::read(&path).map_err(io_err("reading shard", &path))?;
        if bytes.len() % 2 != 0 {
            return Err(BitnetError::Data(format!(
                "{} has an odd byte count",
                path.display()
            )));
        }
        for c in bytes.chunks_exact(2) {
            let t = u16::from_le_bytes([c[0], c[1]]) as u32;
            if t as usize >= vocab {
                return Err(BitnetError::Data(format!(
                    "{} holds token {t} ≥ vocab {vocab}",
                    path.display()
                )));
            }
            out.push(t);
        }
    }
    if out.len() != want {
        return Err(BitnetError::Data(format!(
            "{}: shards hold {} tokens, meta.json says {want}",
            dir.display(),
            out.len()
        )));
    }
    Ok(out)
}

impl TokenData {
    /// Opens and checks a shard directory.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("meta.json");
        let raw = std::fs::read(&path).map_err(io_err("reading", &path))?;
        let meta: ShardMeta = serde_json::from_slice(&raw)
            .map_err(|e| BitnetError::Data(format!("{}: {e}", path.display())))?;
        let train = read_shards(dir, &meta.train_shards, meta.vocab_size, meta.train_tokens)?;
        let val = read_shards(dir, &meta.val_shards, meta.vocab_size, meta.val_tokens)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            meta,
            train,
            val,
        })
    }
}

/// Unigram entropy (nats/token) of a token stream: the loss of the best context-free predictor.
pub fn unigram_entropy(tokens: &[u32], vocab: usize) -> f64 {
    let mut counts = vec![0u64; vocab];
    for t in tokens {
        if let Some(c) = counts.get_mut(*t as usize) {
            *c += 1;
        }
    }
    let n = tokens.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.ln()
        })
        .sum()
}

/// Where the batch sampler stands: the whole state needed to resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPosition {
    /// Completed passes over the train windows.
    pub epoch: u64,
    /// Next window within this epoch's order.
    pub index: u64,
}

/// Resumable sampler of `(inputs, targets)` windows of `seq_len + 1` tokens.
#[derive(Debug, Clone)]
pub struct Batcher {
    seq_len: usize,
    seed: u64,
    pos: DataPosition,
    order: Vec<u32>,
}

impl Batcher {
    /// A sampler over `stream` windows; `pos` resumes a previous run.
    pub fn new(stream_len: usize, seq_len: usize, seed: u64, pos: DataPosition) -> Result<Self> {
        let windows = stream_len.saturating_sub(1) / seq_len.max(1);
        if seq_len == 0 || windows == 0 {
            return Err(BitnetError::Data(format!(
                "a stream of {stream_len} tokens has no window of {seq_len}+1 tokens"
            )));
        }
        let mut b = Self {
            seq_len,
            seed,
            pos,
            order: (0..windows as u32).collect(),
        };
        b.shuffle();
        if b.pos.index as usize >= windows {
            return Err(BitnetError::Data(format!(
                "data position {:?} is past {windows} windows",
                pos
            )));
        }
        Ok(b)
    }

    fn shuffle(&mut self) {
        self.order.sort_unstable();
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ self.pos.epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        self.order.shuffle(&mut rng);
    }

    /// Current position.
    pub fn position(&self) -> DataPosition {
        self.pos
    }

    /// Next `batch` windows of `stream`, as flat `(inputs, targets)` of `batch * seq_len` ids.
    pub fn next_batch(&mut self, stream: &[u32], batch: usize) -> (Vec<u32>, Vec<u32>) {
        let mut x = Vec::with_capacity(batch * self.seq_len);
        let mut y = Vec::with_capacity(batch * self.seq_len);
        for _ in 0..batch {
            let start = self.order[self.pos.index as usize] as usize * self.seq_len;
            x.extend_from_slice(&stream[start..start + self.seq_len]);
            y.extend_from_slice(&stream[start + 1..start + self.seq_len + 1]);
            self.pos.index += 1;
            if self.pos.index as usize == self.order.len() {
                self.pos = DataPosition {
                    epoch: self.pos.epoch + 1,
                    index: 0,
                };
                self.shuffle();
            }
        }
        (x, y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_batcher_yields_the_same_batches() {
        let stream: Vec<u32> = (0..1000).collect();
        let mut a = Batcher::new(stream.len(), 10, 7, DataPosition { epoch: 0, index: 0 }).unwrap();
        let mut all = Vec::new();
        for _ in 0..30 {
            all.push(a.next_batch(&stream, 8));
        }
        let mut b = Batcher::new(stream.len(), 10, 7, DataPosition { epoch: 0, index: 0 }).unwrap();
        for _ in 0..13 {
            b.next_batch(&stream, 8);
        }
        let mut c = Batcher::new(stream.len(), 10, 7, b.position()).unwrap();
        for want in &all[13..] {
            assert_eq!(&c.next_batch(&stream, 8), want);
        }
        // Targets are inputs shifted by one.
        let (x, y) = &all[0];
        assert_eq!(x[1..10], y[..9]);
    }

    #[test]
    fn unigram_entropy_of_a_uniform_stream_is_log_vocab() {
        let s: Vec<u32> = (0..4000).map(|i| i % 4).collect();
        assert!((unigram_entropy(&s, 4) - 4f64.ln()).abs() < 1e-12);
    }

    #[test]
    fn a_stream_too_short_for_one_window_is_an_error() {
        assert!(Batcher::new(5, 10, 0, DataPosition { epoch: 0, index: 0 }).is_err());
        assert!(Batcher::new(
            100,
            10,
            0,
            DataPosition {
                epoch: 0,
                index: 99
            }
        )
        .is_err());
    }
}
