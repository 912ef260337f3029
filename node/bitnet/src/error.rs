//! The crate's error type: every failure says what failed, on which input, and what to do.

use std::path::PathBuf;

/// Errors of the BitNet engine.
#[derive(Debug, thiserror::Error)]
pub enum BitnetError {
    /// A tensor operation failed (shape mismatch, device error).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What we were doing ("reading", "writing", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A configuration value is missing or out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The tokenizer could not be trained, loaded or applied.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A token shard directory is missing, corrupt or inconsistent.
    #[error("token data: {0}")]
    Data(String),
    /// A checkpoint is missing a part or does not match the model.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint directory.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
    /// A GGUF file is malformed, truncated or uses something we do not support.
    #[error("GGUF: {0}")]
    Gguf(String),
    /// A model file (GGUF/HF) does not describe a model this engine can run.
    #[error("model: {0}")]
    Model(String),
    /// Writing a plot failed.
    #[error("plot {path}: {msg}")]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// The plotting backend's message.
        msg: String,
    },
}

/// Result with [`BitnetError`].
pub type Result<T, E = BitnetError> = std::result::Result<T, E>;

/// Helper: wraps an `io::Error` with the operation and path.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> BitnetError {
    let path = path.into();
    move |source| BitnetError::Io { op, path, source }
}
