//! A byte-level BPE tokenizer (GPT-2 style, no prefix space) trained with the `tokenizers` crate.
//!
//! Byte-level means every byte string is encodable (no unknown token) and decoding inverts
//! encoding. The one special token, [`EOS`], separates documents. The saved `tokenizer.json` is the
//! Hugging Face format (usable by `transformers`), and [`Tokenizer::gguf_vocab`] gives the
//! vocabulary and merges in id order for GGUF's `tokenizer.ggml.*` keys.

use std::path::Path;

use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::AddedToken;

use crate::error::{BitnetError, Result};

/// The end-of-text / document separator token.
pub const EOS: &str = "<|endoftext|>";

/// A trained byte-level BPE tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    eos_id: u32,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn tk_err(what: &str) -> impl FnOnce(tokenizers::Error) -> BitnetError + '_ {
    move |e| BitnetError::Tokenizer(format!("{what}: {e}"))
}

fn byte_level() -> ByteLevel {
    ByteLevel::default().add_prefix_space(false)
}

impl Tokenizer {
    /// Trains a byte-level BPE with `vocab_size` entries (≥ 257: 256 bytes + [`EOS`]) on text files.
    pub fn train(files: &[&Path], vocab_size: usize) -> Result<Self> {
        if vocab_size < 257 {
            return Err(BitnetError::Tokenizer(format!(
                "vocab_size must be at least 257 (256 bytes + {EOS}), got {vocab_size}"
            )));
        }
        for f in files {
            if !f.is_file() {
                return Err(BitnetError::Tokenizer(format!(
                    "corpus file {} does not exist",
                    f.display()
                )));
            }
        }
        // `tokenizers` takes the alphabet as a HashSet; the trainer sorts what it learns, so its
        // iteration order does not reach the result.
        #[allow(clippy::disallowed_types)]
        let alphabet: std::collections::HashSet<char> = ByteLevel::alphabet().into_iter().collect();
        let trainer = BpeTrainerBuilder::new()
            .show_progress(false)
            .vocab_size(vocab_size)
            .min_frequency(2)
            .special_tokens(vec![AddedToken::from(EOS, true)])
            .initial_alphabet(alphabet)
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        let mut inner = tokenizers::Tokenizer::new(BPE::default());
        inner.with_pre_tokenizer(Some(byte_level()));
        inner.with_post_processor(Some(byte_level()));
        inner.with_decoder(Some(byte_level()));
        let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
        inner
            .train_from_files(&mut trainer, names)
            .map_err(tk_err("training BPE"))?;
        Self::from_inner(inner)
    }

    fn from_inner(inner: tokenizers::Tokenizer) -> Result<Self> {
        let eos_id = inner
            .token_to_id(EOS)
            .ok_or_else(|| BitnetError::Tokenizer(format!("tokenizer has no {EOS} token")))?;
        Ok(Self { inner, eos_id })
    }

    /// Loads a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| BitnetError::Tokenizer(format!("loading {}: {e}", path.display())))?;
        Self::from_inner(inner)
    }

    /// Parses a `tokenizer.json` held in memory.
    pub fn from_json(json: &str) -> Result<Self> {
        let inner: tokenizers::Tokenizer = json
            .parse()
            .map_err(|e| BitnetError::Tokenizer(format!("parsing tokenizer json: {e}")))?;
        Self::from_inner(inner)
    }

    /// Saves as `tokenizer.json`.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner
            .save(path, false)
            .map_err(|e| BitnetError::Tokenizer(format!("saving {}: {e}", path.display())))
    }

    /// The Hugging Face JSON text.
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(false)
            .map_err(tk_err("serialising tokenizer"))
    }

    /// Number of tokens including [`EOS`].
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Id of [`EOS`].
    pub fn eos_id(&self) -> u32 {
        self.eos_id
    }

    /// Token ids of `text` (no special tokens added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode(text, false)
            .map_err(tk_err("encoding"))?
            .get_ids()
            .to_vec())
    }

    /// Token ids of many texts, in parallel.
    pub fn encode_batch(&self, texts: Vec<String>) -> Result<Vec<Vec<u32>>> {
        let enc = self
            .inner
            .encode_batch(texts, false)
            .map_err(tk_err("encoding"))?;
        Ok(enc.iter().map(|e| e.get_ids().to_vec()).collect())
    }

    /// Text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tk_err("decoding"))
    }

    /// Tokens in id order and merges (`"a b"`), for GGUF's `tokenizer.ggml.tokens` / `.merges`.
    pub fn gguf_vocab(&self) -> Result<(Vec<String>, Vec<String>)> {
        let vocab = self.inner.get_vocab(true);
        let mut tokens = vec![String::new(); vocab.len()];
        for (tok, id) in vocab {
            let slot = tokens.get_mut(id as usize).ok_or_else(|| {
                BitnetError::Tokenizer(format!("token id {id} is outside a dense vocabulary"))
            })?;
            *slot = tok;
        }
        let json: serde_json::Value = serde_json::from_str(&self.to_json()?)
            .map_err(|e| BitnetError::Tokenizer(format!("re-reading tokenizer json: {e}")))?;
        let merges = json["model"]["merges"]
            .as_array()
            .ok_or_else(|| BitnetError::Tokenizer("tokenizer json has no model.merges".into()))?
            .iter()
            .map(|m| match m {
                serde_json::Value::String(s) => Ok(s.clone()),
                serde_json::Value::Array(p) if p.len() == 2 => Ok(format!(
                    "{} {}",
                    p[0].as_str().unwrap_or_default(),
                    p[1].as_str().unwrap_or_default()
                )),
                other => Err(BitnetError::Tokenizer(format!(
                    "unexpected merge entry {other}"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok((tokens, merges))
    }
}
