//! Data errors (codespace `data`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "data";

/// Why a data message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The same hash is already registered.
    #[error("data {0} is already registered")]
    Duplicate(String),
    /// A malformed field.
    #[error("invalid {field}: {why}")]
    InvalidField {
        /// Field.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// A dispute target that cannot be disputed.
    #[error("cannot dispute {target}: {why}")]
    NotDisputable {
        /// Target.
        target: String,
        /// Why.
        why: String,
    },
    /// Invalid params.
    #[error("invalid data params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::Duplicate(_) => 2,
            Error::InvalidField { .. } => 3,
            Error::NotDisputable { .. } => 4,
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
