//! Jobs errors (codespace `jobs`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "jobs";

/// Why a jobs message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such job.
    #[error("job {0} does not exist")]
    UnknownJob(u64),
    /// The job is not open.
    #[error("job {0} is not open (settling, settled or cancelled)")]
    NotOpen(u64),
    /// Only the creator may cancel.
    #[error("only the creator {0} may cancel this job")]
    NotCreator(String),
    /// Cancel after work was recorded.
    #[error(
        "job {0} has recorded rounds or verified contributions and can no longer be cancelled"
    )]
    CannotCancel(u64),
    /// Round out of order or not chained to the previous merge.
    #[error("round {round} of job {job} does not extend the lineage: {why}")]
    BadRound {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Why.
        why: String,
    },
    /// Payment for a job that has no merged model yet.
    #[error("job {0} has no merged model to pay for")]
    NoModel(u64),
    /// Server is not a registered node.
    #[error("server {0} is not a registered node operator")]
    UnknownServer(String),
    /// A malformed field.
    #[error("invalid {field}: {why}")]
    InvalidField {
        /// Field.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// Invalid params.
    #[error("invalid jobs params: {0}")]
    InvalidParams(String),
    /// The signer is not the round's elected leader.
    #[error("round {round} of job {job} is led by {elected}, not {signer}: only the elected leader may record it")]
    WrongLeader {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Elected node id.
        elected: String,
        /// The signer's node id (or address when unregistered).
        signer: String,
    },
    /// An accepted Δ's claim is unsigned, mis-signed, for another round, or over its bound.
    #[error("accepted Δ of {node} in round {round}: {why}")]
    BadClaim {
        /// Round.
        round: u64,
        /// Producer node account.
        node: String,
        /// Why.
        why: String,
    },
    /// A Δ (or a node) appears twice, or the Δ was already merged in this job.
    #[error("Δ {delta} of {node} is already merged or appears twice: {why}")]
    DuplicateDelta {
        /// Producer.
        node: String,
        /// Δ hash (hex).
        delta: String,
        /// Why.
        why: String,
    },
    /// Recorded weights differ from the weights recomputed from the signed claims.
    #[error("weight of {node} is {got} ppm but its signed claim gives {want} ppm under the job's merge policy")]
    WeightMismatch {
        /// Producer.
        node: String,
        /// Recorded.
        got: u32,
        /// Recomputed.
        want: u32,
    },
    /// The job has no training spec, so it has no rounds.
    #[error(
        "job {0} is not a training job (created without a training spec): it has no DiLoCo rounds"
    )]
    NotTraining(u64),
    /// No recorded round (never recorded, or dropped by a rollback).
    #[error("job {job} has no recorded round {round} (never recorded, or dropped by a rollback); see `magnetd query jobs lineage {job}`")]
    UnknownRound {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
    },
    /// A challenge after the round's challenge window.
    #[error("round {round} of job {job} can no longer be challenged: its window closed at height {closed_at}")]
    ChallengeClosed {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Last height of the window.
        closed_at: u64,
    },
    /// A challenge bond below the minimum.
    #[error(
        "challenge bond {have}umag is below the minimum {min}umag (jobs params challenge_bond)"
    )]
    BondTooLow {
        /// Offered.
        have: u128,
        /// Minimum.
        min: u128,
    },
    /// The round was already challenged (one challenge per round).
    #[error("round {round} of job {job} is already challenged; its auditors' verdicts decide it")]
    AlreadyChallenged {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
    },
    /// A verdict on a round with no open challenge.
    #[error("round {round} of job {job} has no open challenge to give a verdict on")]
    NoOpenChallenge {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
    },
    /// A verdict from a node that was not drawn to audit the round.
    #[error("{signer} is not a drawn auditor of round {round} of job {job}; see `magnetd query jobs audit {job}/{round}`")]
    NotAuditor {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// The signer's node id (or address when unregistered).
        signer: String,
    },
    /// A second sealed verdict from one auditor.
    #[error("auditor {0} already committed its verdict on this challenge (one commitment per auditor; reveal it with `magnetd tx jobs audit-reveal`)")]
    AlreadyVoted(String),
    /// A commit after the commit period, or a reveal after the reveal period.
    #[error("the {phase} period of round {round} of job {job} ended at height {ended}")]
    VerdictClosed {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// `commit` or `reveal`.
        phase: &'static str,
        /// Last height of the period.
        ended: u64,
    },
    /// A reveal while other drawn auditors may still commit.
    #[error("the reveal period of round {round} of job {job} opens after height {opens_after} (or once every drawn auditor committed): revealing earlier would let the others copy")]
    RevealNotOpen {
        /// Job.
        job: u64,
        /// Round.
        round: u64,
        /// Last height of the commit period.
        opens_after: u64,
    },
    /// A reveal from an auditor that committed nothing.
    #[error("auditor {0} committed no verdict on this challenge: commit first (`magnetd tx jobs audit-commit`), within the commit period")]
    NoCommitment(String),
    /// A reveal that does not hash to its commitment.
    #[error("the reveal of auditor {0} does not hash to its commitment (wrong verdict, recomputed hash or nonce)")]
    RevealMismatch(String),
    /// A second reveal.
    #[error("auditor {0} already revealed its verdict on this challenge")]
    AlreadyRevealed(String),
    /// A verdict whose recomputed hash contradicts it.
    #[error("verdict of auditor {auditor}: {why}")]
    InconsistentVerdict {
        /// Auditor node id.
        auditor: String,
        /// Why.
        why: String,
    },
    /// The job has no research spec.
    #[error("job {0} is not a research job")]
    NotResearch(u64),
    /// No node can coordinate a research job.
    #[error("no live node of a research tier (orchestrator) to coordinate the job: register one and keep it heart-beating, then create the job again")]
    NoCoordinator,
    /// The data set is not a confirmed data record.
    #[error("research data set {address}: {why}")]
    DataNotReady {
        /// Content address (hex).
        address: String,
        /// Why.
        why: String,
    },
    /// The signer is not the job's coordinator.
    #[error("research job {job} is coordinated by {coordinator}, not {signer}")]
    WrongCoordinator {
        /// Job.
        job: u64,
        /// Coordinator node id.
        coordinator: String,
        /// Signer.
        signer: String,
    },
    /// A research version that does not extend the job's search.
    #[error("version {version} of research job {job}: {why}")]
    BadVersion {
        /// Job.
        job: u64,
        /// Version.
        version: u32,
        /// Why.
        why: String,
    },
    /// A refused trial entry.
    #[error("trial {unit} of research job {job}: {why}")]
    BadTrial {
        /// Job.
        job: u64,
        /// Unit hash (hex).
        unit: String,
        /// Why.
        why: String,
    },
    /// A refused trial check commit or reveal.
    #[error("check of trial {unit} of research job {job} by {checker}: {why}")]
    BadCheck {
        /// Job.
        job: u64,
        /// Unit hash (hex).
        unit: String,
        /// Checker (node id or signer).
        checker: String,
        /// Why.
        why: String,
    },
    /// A refused test-split reveal.
    #[error("test split of research job {job}: {why}")]
    BadTestReveal {
        /// Job.
        job: u64,
        /// Why.
        why: String,
    },
    /// A refused trial dispute (ADR 0114).
    #[error("dispute of trial {unit} of research job {job}: {why}")]
    BadDispute {
        /// Job.
        job: u64,
        /// Unit hash (hex).
        unit: String,
        /// Why.
        why: String,
    },
    /// A refused held-out commit or reveal (ADR 0111 §6).
    #[error("held-out evaluation of research job {job} by {evaluator}: {why}")]
    BadHeldOut {
        /// Job.
        job: u64,
        /// Evaluator (node id or signer).
        evaluator: String,
        /// Why.
        why: String,
    },
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::UnknownJob(_) => 2,
            Error::NotOpen(_) => 3,
            Error::NotCreator(_) => 4,
            Error::CannotCancel(_) => 5,
            Error::BadRound { .. } => 6,
            Error::NoModel(_) => 7,
            Error::UnknownServer(_) => 8,
            Error::InvalidField { .. } => 9,
            Error::InvalidParams(_) => 10,
            Error::WrongLeader { .. } => 11,
            Error::BadClaim { .. } => 12,
            Error::DuplicateDelta { .. } => 13,
            Error::WeightMismatch { .. } => 14,
            Error::NotTraining(_) => 15,
            Error::UnknownRound { .. } => 16,
            Error::ChallengeClosed { .. } => 17,
            Error::BondTooLow { .. } => 18,
            Error::AlreadyChallenged { .. } => 19,
            Error::NoOpenChallenge { .. } => 20,
            Error::NotAuditor { .. } => 21,
            Error::AlreadyVoted(_) => 22,
            Error::VerdictClosed { .. } => 23,
            Error::RevealNotOpen { .. } => 24,
            Error::NoCommitment(_) => 25,
            Error::RevealMismatch(_) => 26,
            Error::AlreadyRevealed(_) => 27,
            Error::InconsistentVerdict { .. } => 28,
            Error::NotResearch(_) => 29,
            Error::NoCoordinator => 30,
            Error::DataNotReady { .. } => 31,
            Error::WrongCoordinator { .. } => 32,
            Error::BadVersion { .. } => 33,
            Error::BadTrial { .. } => 34,
            Error::BadCheck { .. } => 35,
            Error::BadTestReveal { .. } => 36,
            Error::BadDispute { .. } => 37,
            Error::BadHeldOut { .. } => 38,
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
