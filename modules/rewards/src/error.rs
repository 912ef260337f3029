//! Rewards errors (codespace `rewards`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "rewards";

/// Why a settlement failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The epoch was settled before.
    #[error("epoch {0} is already settled; each epoch settles exactly once")]
    AlreadySettled(u64),
    /// The epoch cannot settle yet.
    #[error("epoch {epoch} cannot settle yet: {why}")]
    NotReady {
        /// Epoch.
        epoch: u64,
        /// Why.
        why: String,
    },
    /// Σ weights exceeded u128.
    #[error("reward weights of epoch {0} overflow u128")]
    WeightOverflow(u64),
    /// Invalid params.
    #[error("invalid rewards params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::AlreadySettled(_) => 2,
            Error::NotReady { .. } => 3,
            Error::WeightOverflow(_) => 4,
            Error::InvalidParams(_) => 5,
            Error::Other(e) => e.code,
        }
    }
}

impl From<Error> for ModuleError {
    fn from(e: Error) -> Self {
        match e {
            Error::Other(m) => m,
            e => ModuleError::new(CODESPACE, e.code(), e.to_string()),
        }
    }
}

impl From<magnet_core::OutOfGas> for Error {
    fn from(e: magnet_core::OutOfGas) -> Self {
        Error::Other(e.into())
    }
}

impl From<magnet_core::BankError> for Error {
    fn from(e: magnet_core::BankError) -> Self {
        Error::Other(e.into())
    }
}
