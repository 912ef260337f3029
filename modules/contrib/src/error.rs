//! Contrib errors (codespace `contrib`); each failure mode has its own code.

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "contrib";

/// Why a contrib message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The signing node key is not registered.
    #[error("node key {0} is not registered")]
    UnknownNode(String),
    /// The node is jailed or unbonding.
    #[error("node of {0} is jailed or unbonding and cannot submit work")]
    NodeNotActive(String),
    /// Commit for an epoch other than the current one.
    #[error("commit is for epoch {got} but the current epoch is {current}")]
    WrongEpoch {
        /// Message epoch.
        got: u64,
        /// Current epoch.
        current: u64,
    },
    /// The phase's window is not open.
    #[error("{phase} window of epoch {epoch} is [{start}, {end}) in block time; now is {now}")]
    OutsideWindow {
        /// commit | reveal | eval_commit | eval_reveal
        phase: &'static str,
        /// Epoch.
        epoch: u64,
        /// Opens.
        start: u64,
        /// Closes.
        end: u64,
        /// Block time.
        now: u64,
    },
    /// A second commitment for the same (epoch, job, committer).
    #[error("{0} already committed for this epoch and job")]
    DuplicateCommit(String),
    /// Reveal without a commitment.
    #[error("no commitment by {0} for this epoch and job (or evaluation)")]
    NoCommitment(String),
    /// Second reveal.
    #[error("{0} already revealed")]
    AlreadyRevealed(String),
    /// Evaluation by a node that was not assigned.
    #[error("{evaluator} is not an assigned evaluator of {contributor}'s contribution")]
    NotAssigned {
        /// Evaluator.
        evaluator: String,
        /// Contributor.
        contributor: String,
    },
    /// Too many contributions this epoch.
    #[error("epoch {0} already has the maximum number of contributions")]
    TooManyContributions(u64),
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
    /// The job does not exist or no longer accepts work.
    #[error("job {0} does not exist or is not open: contributions must name an open job")]
    JobNotOpen(u64),
    /// The operator already has its per-epoch number of contributions.
    #[error("operator {operator} already has {max} contributions in epoch {epoch} (the per-operator bound)")]
    OperatorCap {
        /// Operator.
        operator: String,
        /// Epoch.
        epoch: u64,
        /// Bound.
        max: u32,
    },
    /// A training result names a lineage entry that is not the committer's, or claimed before.
    #[error("lineage entry round {round} Δ {delta}: {why}")]
    BadEntry {
        /// Round.
        round: u64,
        /// Δ hash (hex).
        delta: String,
        /// Why.
        why: String,
    },
    /// Invalid params.
    #[error("invalid contrib params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::UnknownNode(_) => 2,
            Error::NodeNotActive(_) => 3,
            Error::WrongEpoch { .. } => 4,
            Error::OutsideWindow { phase, .. } => match *phase {
                "commit" => 5,
                "reveal" => 6,
                "eval_commit" => 7,
                _ => 8,
            },
            Error::DuplicateCommit(_) => 9,
            Error::NoCommitment(_) => 10,
            Error::AlreadyRevealed(_) => 11,
            Error::NotAssigned { .. } => 12,
            Error::TooManyContributions(_) => 13,
            Error::InvalidField { .. } => 14,
            Error::NotDisputable { .. } => 15,
            Error::InvalidParams(_) => 16,
            Error::JobNotOpen(_) => 17,
            Error::OperatorCap { .. } => 18,
            Error::BadEntry { .. } => 19,
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
