//! The daemon's error type: each variant says what went wrong and, where it can, what to do.

/// Everything that can stop a daemon operation.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The config file is missing, unparsable or out of range.
    #[error("config {path}: {reason}")]
    Config {
        /// File.
        path: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// Disk I/O.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// Keys or keyring.
    #[error("keys: {0}")]
    Keys(String),
    /// Every chain endpoint failed.
    #[error("chain: {0}")]
    Chain(String),
    /// The chain refused a tx.
    #[error("chain refused {what}: code {codespace}/{code}: {log}")]
    TxFailed {
        /// What was sent.
        what: String,
        /// Codespace.
        codespace: String,
        /// Code.
        code: u32,
        /// The chain's log.
        log: String,
    },
    /// Training / evaluation.
    #[error("engine: {0}")]
    Engine(String),
    /// p2p transport.
    #[error("p2p: {0}")]
    P2p(String),
    /// DiLoCo protocol data (checkpoint, Δ, record).
    #[error("diloco: {0}")]
    Diloco(String),
    /// The worker is not in a state that allows this.
    #[error("{0}")]
    State(String),
    /// This worker's copy of the job's corpus is not the one the job names on chain, so it
    /// must not evaluate anyone (its scores would be measured on other data).
    #[error(
        "job {job}: the local corpus hashes to {local}, but the job's eval_set_hash on chain is \
         {on_chain}; this worker refuses to evaluate — use the job's exact corpus, tokenizer and \
         vocabulary size (`magnet-worker job-hash` prints what this worker's [job] section gives)"
    )]
    CorpusMismatch {
        /// Job id.
        job: u64,
        /// The job's hash on chain (hex).
        on_chain: String,
        /// This worker's corpus hash (hex).
        local: String,
    },
}

impl DaemonError {
    /// An I/O error with context.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
        let context = context.into();
        move |source| DaemonError::Io { context, source }
    }
}

impl From<magnet_client::ClientError> for DaemonError {
    fn from(e: magnet_client::ClientError) -> Self {
        DaemonError::Chain(e.to_string())
    }
}

impl From<magnet_bitnet::BitnetError> for DaemonError {
    fn from(e: magnet_bitnet::BitnetError) -> Self {
        DaemonError::Engine(e.to_string())
    }
}

impl From<magnet_p2p::P2pError> for DaemonError {
    fn from(e: magnet_p2p::P2pError) -> Self {
        DaemonError::P2p(e.to_string())
    }
}
