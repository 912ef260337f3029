//! Registry errors; each variant has its own ABCI code in codespace `registry`.

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "registry";

/// Why a registry message or call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Unknown tier name.
    #[error(
        "unknown tier {0:?}; use orchestrator, gpu_compute, storage_node, cpu_only or mobile_light"
    )]
    InvalidTier(String),
    /// Bond below the tier's minimum.
    #[error("bond {have}umag is below the {tier} minimum of {min}umag")]
    BondBelowMinimum {
        /// Tier.
        tier: String,
        /// Offered / held.
        have: u128,
        /// Required.
        min: u128,
    },
    /// The operator already has a node.
    #[error("operator {0} already registered a node; one node per operator account")]
    AlreadyRegistered(String),
    /// The node key is bound to another operator.
    #[error("node key is already registered by operator {0}")]
    NodeKeyInUse(String),
    /// No node for this operator.
    #[error("operator {0} has no registered node")]
    NotRegistered(String),
    /// The signing node key is not registered.
    #[error("node key address {0} is not registered; register it with MsgRegisterNode first")]
    UnknownNodeKey(String),
    /// Bad node public key.
    #[error("invalid node public key: {0}; expected a 33-byte compressed secp256k1 key")]
    InvalidPubkey(String),
    /// Unjail of a node that is not jailed.
    #[error("node of {0} is not jailed")]
    NotJailed(String),
    /// Unjail before the jail period ended.
    #[error(
        "node of {operator} is jailed until block time {until}s (now {now}s); unjail after that"
    )]
    StillJailed {
        /// Operator.
        operator: String,
        /// Jail end.
        until: u64,
        /// Block time.
        now: u64,
    },
    /// The node is unbonding.
    #[error("node of {0} is unbonding and cannot do this")]
    Unbonding(String),
    /// Governance unbond above the bond.
    #[error("governance bond of {owner} is {have}umag, cannot unbond {need}umag")]
    InsufficientGovBond {
        /// Owner.
        owner: String,
        /// Held.
        have: u128,
        /// Asked.
        need: u128,
    },
    /// A text field is too long.
    #[error("{field} is {len} bytes, at most {max} allowed")]
    FieldTooLong {
        /// Field.
        field: &'static str,
        /// Length.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// A zero amount where a positive one is needed.
    #[error("{0} must be > 0")]
    ZeroAmount(&'static str),
    /// Tier `storage_node` without a passing SSD provisioning report.
    #[error(
        "tier storage_node needs a passing SSD report (4 KiB random read ≥ {min_read} MB/s and write ≥ {min_write} MB/s, O_DIRECT): {why}; run `magnet-worker storage provision` on the disk that will hold shards and register with its report, or register tier cpu_only"
    )]
    SsdRequired {
        /// What was wrong with the report.
        why: String,
        /// Threshold (MB/s).
        min_read: u64,
        /// Threshold (MB/s).
        min_write: u64,
    },
    /// Invalid params.
    #[error("invalid registry params: {0}")]
    InvalidParams(String),
    /// The node is jailed.
    #[error("node of {0} is jailed; unjail it (MsgUnjail, signed by the operator) first")]
    Jailed(String),
    /// A service endpoint that is not an `http://` or `https://` URL with a host.
    #[error("invalid service endpoint {endpoint:?}: {why}; expected http://host[:port][/path] or https://…")]
    InvalidEndpoint {
        /// The endpoint as sent.
        endpoint: String,
        /// What is wrong with it.
        why: String,
    },
    /// A service price that is not a whole number of umag in range.
    #[error("invalid price_per_token {price:?}: {why}")]
    InvalidPrice {
        /// The price as sent.
        price: String,
        /// What is wrong with it.
        why: String,
    },
    /// A max_context of 0 or above the limit.
    #[error("max_context {have} must be in 1..={max} tokens")]
    InvalidMaxContext {
        /// Sent.
        have: u64,
        /// Limit.
        max: u64,
    },
    /// The node already advertises the most services a node may.
    #[error("node {node} already advertises {have} services, the most a node may (registry param max_services_per_node = {max}); withdraw one first (MsgWithdrawService)")]
    TooManyServices {
        /// Node-key address.
        node: String,
        /// Advertised now.
        have: u64,
        /// Param.
        max: u64,
    },
    /// No such job.
    #[error("job {0} does not exist")]
    UnknownJob(u64),
    /// The job has no merged round: there is no model to serve.
    #[error("job {0} has no merged round yet: there is no model to serve")]
    NoModel(u64),
    /// Withdrawal of an advertisement that does not exist.
    #[error("node {node} does not advertise a service for job {job}")]
    NoService {
        /// Node-key address.
        node: String,
        /// Job.
        job: u64,
    },
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::InvalidTier(_) => 2,
            Error::BondBelowMinimum { .. } => 3,
            Error::AlreadyRegistered(_) => 4,
            Error::NodeKeyInUse(_) => 5,
            Error::NotRegistered(_) => 6,
            Error::UnknownNodeKey(_) => 7,
            Error::InvalidPubkey(_) => 8,
            Error::NotJailed(_) => 9,
            Error::StillJailed { .. } => 10,
            Error::Unbonding(_) => 11,
            Error::InsufficientGovBond { .. } => 12,
            Error::FieldTooLong { .. } => 13,
            Error::ZeroAmount(_) => 14,
            Error::InvalidParams(_) => 15,
            Error::SsdRequired { .. } => 16,
            Error::Jailed(_) => 17,
            Error::InvalidEndpoint { .. } => 18,
            Error::InvalidPrice { .. } => 19,
            Error::InvalidMaxContext { .. } => 20,
            Error::TooManyServices { .. } => 21,
            Error::UnknownJob(_) => 22,
            Error::NoModel(_) => 23,
            Error::NoService { .. } => 24,
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
