//! Custody errors (codespace `custody`).

use magnet_core::ModuleError;

/// Codespace of this module.
pub const CODESPACE: &str = "custody";

/// Why a custody message failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A stripe kind outside delta / checkpoint / data / model.
    #[error("unknown stripe kind {0:?}; use delta, checkpoint, data or model")]
    BadKind(String),
    /// K or M differ from the params.
    #[error("stripe is RS({k},{m}) but the chain stores RS({want_k},{want_m}) stripes only; encode with K={want_k}, M={want_m}")]
    BadGeometry {
        /// Offered K.
        k: u32,
        /// Offered M.
        m: u32,
        /// Params K.
        want_k: u32,
        /// Params M.
        want_m: u32,
    },
    /// Wrong number of shard placements.
    #[error("stripe lists {have} shards, RS(K,M) needs exactly K+M = {want}")]
    ShardCount {
        /// Listed.
        have: usize,
        /// K+M.
        want: usize,
    },
    /// A byte field of the wrong length.
    #[error("{field} must be {want} bytes, got {have}")]
    BadLength {
        /// Field.
        field: &'static str,
        /// Expected.
        want: usize,
        /// Got.
        have: usize,
    },
    /// Shard length zero or above the maximum.
    #[error("shard_len {have} must be in 1..={max} bytes (params max_shard_len)")]
    ShardLen {
        /// Offered.
        have: u64,
        /// Maximum.
        max: u64,
    },
    /// Object size zero or larger than K shards hold.
    #[error("object size {size} must be in 1..={max} (K × shard_len)")]
    BadSize {
        /// Size.
        size: u64,
        /// K·shard_len.
        max: u128,
    },
    /// A holder appears twice in one stripe while K+M storage nodes are live, or more than M
    /// times at all.
    #[error(
        "holder {0} holds more than one shard of the stripe: every shard needs a distinct node \
         while K+M storage nodes are live (and no node may ever hold more than M)"
    )]
    DuplicateHolder(String),
    /// A node key that is not registered.
    #[error("node key {0} is not registered; register it with MsgRegisterNode first")]
    UnknownNode(String),
    /// A node that may not act now (jailed / unbonding).
    #[error("node {node} cannot {what}: it is {why}")]
    NodeUnavailable {
        /// Node key address.
        node: String,
        /// Its role.
        what: &'static str,
        /// Jailed / unbonding.
        why: &'static str,
    },
    /// A node that is not storage-capable.
    #[error("node {0} is not storage-capable: its tier must list the storage kind and it must register a passing SSD report (run `magnet-worker storage provision`, then MsgChangeTier with the report)")]
    NotStorageCapable(String),
    /// A receipt that does not verify.
    #[error("receipt of holder {holder} for shard {index} does not verify against its node key ({why}); ask the holder for a fresh PutShard receipt")]
    BadReceipt {
        /// Holder.
        holder: String,
        /// Shard index.
        index: u32,
        /// Why.
        why: String,
    },
    /// The object is already registered.
    #[error("object {0} is already registered as a stripe")]
    AlreadyRegistered(String),
    /// No stripe for the object.
    #[error("no stripe for object {0}")]
    UnknownStripe(String),
    /// Shard index outside the stripe.
    #[error("shard index {index} is outside the stripe's {len} shards")]
    BadIndex {
        /// Index.
        index: u32,
        /// K+M.
        len: usize,
    },
    /// Proofs for another epoch.
    #[error("proofs are for epoch {got} but the current epoch is {current}; answer the current epoch's challenges only")]
    WrongEpoch {
        /// Named epoch.
        got: u64,
        /// Current.
        current: u64,
    },
    /// Too many or no proofs in one message.
    #[error("a MsgProveCustody carries 1..={max} proofs, got {have}; split it")]
    ProofCount {
        /// Got.
        have: usize,
        /// Params max_proofs_per_msg.
        max: u64,
    },
    /// A proof with no open challenge.
    #[error("holder {holder} has no challenge for shard {index} of {object} in epoch {epoch}")]
    NoChallenge {
        /// Holder.
        holder: String,
        /// Object hex.
        object: String,
        /// Index.
        index: u32,
        /// Epoch.
        epoch: u64,
    },
    /// A second proof of a proven challenge.
    #[error("shard {index} of {object} is already proven for epoch {epoch}")]
    DuplicateProof {
        /// Object hex.
        object: String,
        /// Index.
        index: u32,
        /// Epoch.
        epoch: u64,
    },
    /// A proof that does not verify.
    #[error("proof for shard {index} of {object} does not verify: leaf {leaf} against the registered root ({why})")]
    BadProof {
        /// Object hex.
        object: String,
        /// Index.
        index: u32,
        /// Challenged leaf.
        leaf: u64,
        /// Why.
        why: String,
    },
    /// Reassignment of a shard whose holder is honest and live.
    #[error("shard {index} of {object} is held by {holder}, which is live, bonded, not jailed and passed its audits; a shard moves only when its holder failed an audit, is jailed, unbonding or not live")]
    HolderInGoodStanding {
        /// Object hex.
        object: String,
        /// Index.
        index: u32,
        /// Holder.
        holder: String,
    },
    /// The new holder is already in the stripe (or is the repairer itself).
    #[error("new holder {0} is the repairer, would hold more than M shards, or already holds a shard while a live storage node outside the stripe exists; pick another storage node")]
    NewHolderInStripe(String),
    /// Invalid params.
    #[error("invalid custody params: {0}")]
    InvalidParams(String),
    /// An error from the core or another module.
    #[error(transparent)]
    Other(#[from] ModuleError),
}

impl Error {
    /// ABCI code.
    pub fn code(&self) -> u32 {
        match self {
            Error::BadKind(_) => 2,
            Error::BadGeometry { .. } => 3,
            Error::ShardCount { .. } => 4,
            Error::BadLength { .. } => 5,
            Error::ShardLen { .. } => 6,
            Error::BadSize { .. } => 7,
            Error::DuplicateHolder(_) => 8,
            Error::UnknownNode(_) => 9,
            Error::NodeUnavailable { .. } => 10,
            Error::NotStorageCapable(_) => 11,
            Error::BadReceipt { .. } => 12,
            Error::AlreadyRegistered(_) => 13,
            Error::UnknownStripe(_) => 14,
            Error::BadIndex { .. } => 15,
            Error::WrongEpoch { .. } => 16,
            Error::ProofCount { .. } => 17,
            Error::NoChallenge { .. } => 18,
            Error::DuplicateProof { .. } => 19,
            Error::BadProof { .. } => 20,
            Error::HolderInGoodStanding { .. } => 21,
            Error::NewHolderInStripe(_) => 22,
            Error::InvalidParams(_) => 23,
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
