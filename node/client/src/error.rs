//! The client's error type.

/// Everything that can go wrong in the client, each variant saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The mnemonic is not valid BIP-39 English.
    #[error("invalid mnemonic: {0}; give 12 or 24 BIP-39 English words separated by spaces")]
    Mnemonic(String),
    /// Key derivation or signing failed.
    #[error("key error: {0}")]
    Key(String),
    /// No key of that name in the keyring.
    #[error("no key named {name:?} in the {backend} keyring at {dir}; list keys with `magnetd keys list`")]
    KeyNotFound {
        /// The requested name.
        name: String,
        /// Backend name.
        backend: String,
        /// Keyring directory.
        dir: String,
    },
    /// A key of that name already exists.
    #[error("a key named {0:?} already exists; pick another name or delete it first")]
    KeyExists(String),
    /// The name cannot be used as a file name.
    #[error("invalid key name {0:?}: use letters, digits, '-', '_' and '.' (1-64 chars)")]
    KeyName(String),
    /// Decryption failed: wrong passphrase or a damaged file.
    #[error("cannot decrypt key {0:?}: wrong passphrase or damaged key file")]
    WrongPassphrase(String),
    /// No passphrase available for the file backend.
    #[error(
        "the file keyring needs a passphrase: set MAGNET_KEYRING_PASSPHRASE or type it on stdin"
    )]
    NoPassphrase,
    /// Disk I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key file or response could not be (de)serialised.
    #[error("cannot parse {what}: {reason}")]
    Format {
        /// What was parsed.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Building or signing a transaction failed.
    #[error("cannot build tx: {0}")]
    Tx(String),
    /// The RPC endpoint failed or returned an error.
    #[error("rpc {endpoint}: {reason}")]
    Rpc {
        /// The node URL.
        endpoint: String,
        /// What happened.
        reason: String,
    },
    /// The node answered a query with a non-zero code.
    #[error("query {path} failed with code {code}: {log}")]
    Query {
        /// ABCI query path.
        path: String,
        /// ABCI code.
        code: u32,
        /// Log from the app.
        log: String,
    },
    /// The account does not exist on chain yet (it never received coins).
    #[error("account {0} not found on chain: it must receive coins before it can send a tx")]
    AccountNotFound(String),
    /// A broadcast transaction was rejected.
    #[error("tx {hash} rejected with code {code} ({codespace}): {log}")]
    TxRejected {
        /// Tx hash, upper-case hex.
        hash: String,
        /// ABCI code.
        code: u32,
        /// Codespace.
        codespace: String,
        /// Log.
        log: String,
    },
    /// A tx was included in a block but its messages failed (non-zero DeliverTx code); its
    /// state changes were discarded, its fee was paid.
    #[error("tx {hash} failed in block {height} with code {code} ({codespace}): {log}")]
    TxFailed {
        /// Tx hash, upper-case hex.
        hash: String,
        /// Block height.
        height: u64,
        /// ABCI code.
        code: u32,
        /// Codespace (the module that failed).
        codespace: String,
        /// Log: why.
        log: String,
    },
    /// A tx was not included in a block in time.
    #[error("tx {0} was not included in a block within {1:?}; query it later with `magnetd query tx {0}`")]
    Timeout(String, std::time::Duration),
}

impl ClientError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        ClientError::Io {
            context: context.into(),
            source,
        }
    }
}
