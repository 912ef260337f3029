//! Gov errors (codespace `gov`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "gov";

/// Why a gov message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The proposal content is malformed or its change is invalid.
    #[error("invalid proposal: {0}")]
    InvalidProposal(String),
    /// No such proposal.
    #[error("proposal {0} does not exist")]
    UnknownProposal(u64),
    /// Deposit on a proposal past its deposit period.
    #[error("proposal {0} is not in its deposit or voting period")]
    DepositClosed(u64),
    /// Vote on a proposal not in its voting period.
    #[error("proposal {0} is not in its voting period")]
    VotingClosed(u64),
    /// Vote option unknown.
    #[error("vote option {0:?} is not one of yes, no, abstain, veto")]
    InvalidOption(String),
    /// Voter has no bonded stake.
    #[error("{0} has no bonded stake; post a node bond or a governance bond (MsgBondGov) to vote")]
    NoVotingPower(String),
    /// Zero amount.
    #[error("{0} must be > 0")]
    ZeroAmount(&'static str),
    /// Invalid params.
    #[error("invalid gov params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidProposal(_) => 2,
            Error::UnknownProposal(_) => 3,
            Error::DepositClosed(_) => 4,
            Error::VotingClosed(_) => 5,
            Error::InvalidOption(_) => 6,
            Error::NoVotingPower(_) => 7,
            Error::ZeroAmount(_) => 8,
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
