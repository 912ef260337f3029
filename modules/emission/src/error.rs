//! Emission errors (codespace `emission`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "emission";

/// Why an emission call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Invalid params.
    #[error("invalid emission params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidParams(_) => 2,
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
