//! Slashing errors (codespace `slashing`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "slashing";

/// Why a slashing call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid params.
    #[error("invalid slashing params: {0}")]
    InvalidParams(String),
    /// The offender has no node to slash.
    #[error("{0} has no registered node to slash")]
    NoNode(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidParams(_) => 2,
            Error::NoNode(_) => 3,
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
