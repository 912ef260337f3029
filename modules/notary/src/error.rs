//! Notary errors (codespace `notary`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "notary";

/// Why a notary message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Voter is not a bonded panel member.
    #[error("{0} is not a bonded member of the notary panel")]
    NotANotary(String),
    /// No such challenge.
    #[error("challenge {0} does not exist")]
    UnknownChallenge(u64),
    /// Vote outside the vote window or on a resolved challenge.
    #[error("challenge {0} is not open for votes")]
    VotingClosed(u64),
    /// Second vote.
    #[error("{0} already voted on this challenge")]
    AlreadyVoted(String),
    /// Challenge bond below the minimum.
    #[error("challenge bond {have}umag is below the minimum {min}umag")]
    BondTooLow {
        /// Offered.
        have: u128,
        /// Minimum.
        min: u128,
    },
    /// Target kind unknown.
    #[error("unknown challenge target {0:?}: use contrib/<epoch>/<job>/<operator> or data/<id>")]
    BadTarget(String),
    /// Overturn of a challenge that was not resolved by a quorum.
    #[error("challenge {0} was not resolved by a quorum and cannot be overturned")]
    NotOverturnable(u64),
    /// Invalid params.
    #[error("invalid notary params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::NotANotary(_) => 2,
            Error::UnknownChallenge(_) => 3,
            Error::VotingClosed(_) => 4,
            Error::AlreadyVoted(_) => 5,
            Error::BondTooLow { .. } => 6,
            Error::BadTarget(_) => 7,
            Error::NotOverturnable(_) => 8,
            Error::InvalidParams(_) => 9,
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
