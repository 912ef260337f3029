//! Narrow traits through which modules call each other. The app builds one [`Services`]
//! per block from its module instances; a module never imports another module's crate.

use crate::coins::{Coins, CoinsError};
use crate::context::Ctx;
use crate::gas::OutOfGas;
use crate::module::ModuleError;
use crate::Address;

/// Name of the module account that is the community pool (the one treasury).
pub const COMMUNITY_POOL: &str = "community_pool";

/// The community pool's address.
pub fn community_pool() -> Address {
    Address::module(COMMUNITY_POOL)
}

/// Errors of bank operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The account holds less than required.
    #[error("insufficient funds: {address} has {have}{denom}, needs {need}{denom}")]
    InsufficientFunds {
        /// Account.
        address: Address,
        /// Denom.
        denom: String,
        /// Held.
        have: u128,
        /// Needed.
        need: u128,
    },
    /// A balance or the supply would overflow u128.
    #[error("amount overflow: {0}")]
    Overflow(String),
    /// Ran out of gas.
    #[error(transparent)]
    OutOfGas(#[from] OutOfGas),
    /// State did not decode.
    #[error("corrupt bank state: {0}")]
    Corrupt(String),
}

impl From<CoinsError> for BankError {
    fn from(e: CoinsError) -> Self {
        BankError::Overflow(e.to_string())
    }
}

impl From<BankError> for ModuleError {
    fn from(e: BankError) -> Self {
        match e {
            BankError::InsufficientFunds { .. } => ModuleError::new("sdk", 5, e.to_string()),
            BankError::Overflow(_) => ModuleError::new("sdk", 10, e.to_string()),
            BankError::OutOfGas(g) => g.into(),
            BankError::Corrupt(_) => ModuleError::new("sdk", 1, e.to_string()),
        }
    }
}

/// Balances, transfers, mint and burn. Every change keeps `supply = Σ balances` per denom.
pub trait Bank: Send + Sync {
    /// Balance of one denom.
    fn balance(&self, ctx: &mut Ctx, addr: &Address, denom: &str) -> Result<u128, BankError>;
    /// All balances of an account.
    fn balances(&self, ctx: &mut Ctx, addr: &Address) -> Result<Coins, BankError>;
    /// Move coins; fails without change if `from` lacks any of them.
    fn send(
        &self,
        ctx: &mut Ctx,
        from: &Address,
        to: &Address,
        amount: &Coins,
    ) -> Result<(), BankError>;
    /// Create coins into `to` (supply grows).
    fn mint(&self, ctx: &mut Ctx, to: &Address, amount: &Coins) -> Result<(), BankError>;
    /// Destroy coins held by `from` (supply shrinks).
    fn burn(&self, ctx: &mut Ctx, from: &Address, amount: &Coins) -> Result<(), BankError>;
    /// Total supply of a denom.
    fn supply(&self, ctx: &mut Ctx, denom: &str) -> Result<u128, BankError>;
}

/// Access to all modules by name, for governance (param changes) and genesis.
pub trait ModuleRouter: Send + Sync {
    /// Names of the registered modules, in execution order.
    fn module_names(&self) -> Vec<&'static str>;
    /// Validate a params document for `module`.
    fn validate_params(&self, module: &str, params: &serde_json::Value) -> Result<(), ModuleError>;
    /// Apply a params document to `module`.
    fn set_params(
        &self,
        ctx: &mut Ctx,
        module: &str,
        params: &serde_json::Value,
    ) -> Result<(), ModuleError>;
}

/// Handles to other modules, copied into every [`Ctx`].
///
/// `bank` and `router` are always present. The incentive services are optional so that an
/// app can be built before every module exists; a module that needs an absent service fails
/// with [`missing_service`] (a clear error, never a panic). Build with [`Services::new`] and
/// set the fields the app has.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// The bank.
    pub bank: &'a dyn Bank,
    /// All modules (governance).
    pub router: &'a dyn ModuleRouter,
    /// Node registry (`magnet-registry`).
    pub registry: Option<&'a dyn NodeRegistry>,
    /// Slashing (`magnet-slashing`).
    pub slashing: Option<&'a dyn Slashing>,
    /// Epoch reward pools (`magnet-emission`).
    pub emission: Option<&'a dyn Emission>,
    /// Verified contributions (`magnet-contrib`).
    pub contrib: Option<&'a dyn Contributions>,
    /// Data records (`magnet-data`), a dispute target.
    pub data: Option<&'a dyn Disputable>,
    /// The notary panel (`magnet-notary`), for governance.
    pub notary: Option<&'a dyn NotaryPanel>,
    /// The validator set (owned by the app), for fee payouts and governance.
    pub validators: Option<&'a dyn Validators>,
    /// Research jobs and their lineage (`magnet-jobs`), for contributions bound to accepted work.
    pub jobs: Option<&'a dyn Jobs>,
    /// Audited storage custody (`magnet-custody`), for the storage share of rewards.
    pub custody: Option<&'a dyn Custody>,
}

impl<'a> Services<'a> {
    /// Bank and router only; set the optional services afterwards.
    pub fn new(bank: &'a dyn Bank, router: &'a dyn ModuleRouter) -> Services<'a> {
        Services {
            bank,
            router,
            registry: None,
            slashing: None,
            emission: None,
            contrib: None,
            data: None,
            notary: None,
            validators: None,
            jobs: None,
            custody: None,
        }
    }
    /// Custody, or a `missing_service` error.
    pub fn custody(&self) -> Result<&'a dyn Custody, ModuleError> {
        self.custody.ok_or_else(|| missing_service("custody"))
    }
    /// Jobs, or a `missing_service` error.
    pub fn jobs(&self) -> Result<&'a dyn Jobs, ModuleError> {
        self.jobs.ok_or_else(|| missing_service("jobs"))
    }
    /// The registry, or a `missing_service` error.
    pub fn registry(&self) -> Result<&'a dyn NodeRegistry, ModuleError> {
        self.registry.ok_or_else(|| missing_service("registry"))
    }
    /// Slashing, or a `missing_service` error.
    pub fn slashing(&self) -> Result<&'a dyn Slashing, ModuleError> {
        self.slashing.ok_or_else(|| missing_service("slashing"))
    }
    /// Emission, or a `missing_service` error.
    pub fn emission(&self) -> Result<&'a dyn Emission, ModuleError> {
        self.emission.ok_or_else(|| missing_service("emission"))
    }
    /// Contributions, or a `missing_service` error.
    pub fn contrib(&self) -> Result<&'a dyn Contributions, ModuleError> {
        self.contrib.ok_or_else(|| missing_service("contrib"))
    }
    /// Data records, or a `missing_service` error.
    pub fn data(&self) -> Result<&'a dyn Disputable, ModuleError> {
        self.data.ok_or_else(|| missing_service("data"))
    }
    /// The validator set, or a `missing_service` error.
    pub fn validators(&self) -> Result<&'a dyn Validators, ModuleError> {
        self.validators.ok_or_else(|| missing_service("validators"))
    }
    /// Notary panel, or a `missing_service` error.
    pub fn notary(&self) -> Result<&'a dyn NotaryPanel, ModuleError> {
        self.notary.ok_or_else(|| missing_service("notary"))
    }
}

/// The error a module returns when the app did not wire a service it needs.
pub fn missing_service(name: &str) -> ModuleError {
    ModuleError::new(
        "sdk",
        38,
        format!("service {name} is not wired into this app; register the {name} module in app/"),
    )
}

/// Name of the module account the app's ante handler collects fees into.
pub const FEE_COLLECTOR: &str = "fee_collector";
/// Name of the module account that holds minted epoch reward pools until settlement.
pub const REWARDS_POOL: &str = "rewards_pool";

/// An offence with its own slashing rate (see `magnet-slashing` Params).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    borsh::BorshSerialize,
    borsh::BorshDeserialize,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Offence {
    /// A commitment (contribution or evaluation) was never revealed.
    NoReveal,
    /// A reveal did not hash to its commitment.
    RevealMismatch,
    /// A notary panel upheld a challenge against the offender's contribution, or the
    /// offender lost a challenge it raised.
    FailedChallenge,
    /// A data record was rejected as invalid.
    InvalidData,
    /// Too few heartbeats in an epoch.
    Downtime,
    /// An evaluator's score was outside the band around the median.
    EvaluatorDeviation,
    /// A notary approval that governance overturned as fraudulent (rate 1.0).
    FraudulentApproval,
    /// Consensus double-sign evidence.
    DoubleSign,
    /// An elected leader recorded a merged checkpoint that is not the merge of the Δs its
    /// round record lists (an upheld merge challenge, ADR 0089; rate 1.0).
    FraudulentMerge,
    /// A drawn merge auditor revealed a verdict against the strict majority of a resolved
    /// challenge (ADR 0091).
    AuditDeviation,
    /// A storage holder did not prove custody of a challenged shard in an epoch (ADR 0107).
    /// Its rate is custody's `audit_fail_slash_ppm`, passed with the slash
    /// ([`Slashing::slash_node_at`]), not a slashing param.
    StorageAuditFailed,
    /// A research job's trial worker recorded a trial whose out-of-fold hash a strict majority
    /// of the drawn checkers' revealed re-runs contradicted (ADR 0111; rate 1.0 by default).
    FabricatedTrial,
}

impl Offence {
    /// All offences, in a fixed order.
    pub const ALL: [Offence; 12] = [
        Offence::NoReveal,
        Offence::RevealMismatch,
        Offence::FailedChallenge,
        Offence::InvalidData,
        Offence::Downtime,
        Offence::EvaluatorDeviation,
        Offence::FraudulentApproval,
        Offence::DoubleSign,
        Offence::FraudulentMerge,
        Offence::AuditDeviation,
        Offence::StorageAuditFailed,
        Offence::FabricatedTrial,
    ];
    /// snake_case name (events, params keys).
    pub fn as_str(&self) -> &'static str {
        match self {
            Offence::NoReveal => "no_reveal",
            Offence::RevealMismatch => "reveal_mismatch",
            Offence::FailedChallenge => "failed_challenge",
            Offence::InvalidData => "invalid_data",
            Offence::Downtime => "downtime",
            Offence::EvaluatorDeviation => "evaluator_deviation",
            Offence::FraudulentApproval => "fraudulent_approval",
            Offence::DoubleSign => "double_sign",
            Offence::FraudulentMerge => "fraudulent_merge",
            Offence::AuditDeviation => "audit_deviation",
            Offence::StorageAuditFailed => "storage_audit_failed",
            Offence::FabricatedTrial => "fabricated_trial",
        }
    }
}

/// A registered node as other modules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// Operator account (the state key; receives rewards).
    pub operator: Address,
    /// Address of the node key (signs the node's work).
    pub node: Address,
    /// Display / p2p name, `node-<16 hex>`.
    pub node_id: String,
    /// Tier name.
    pub tier: String,
    /// Bonded amount (umag).
    pub bond: u128,
    /// True while jailed.
    pub jailed: bool,
    /// True unless unbonding.
    pub active: bool,
    /// Compressed secp256k1 node key (33 bytes): verifies the node's signed work claims.
    pub node_pubkey: Vec<u8>,
}

/// One accepted Δ of a job's lineage, as recorded (and checked) by the jobs module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedDelta {
    /// Operator of the producing node at the time the round was recorded.
    pub operator: Address,
    /// Inner steps of the producer's signed, bounded claim.
    pub steps: u64,
    /// Tokens of the claim.
    pub tokens: u64,
    /// Weight the round merged it with (ppm of the round).
    pub weight_ppm: u32,
}

/// Research jobs as other modules see them.
pub trait Jobs: Send + Sync {
    /// Whether job `job` exists and still accepts work.
    fn is_open(&self, ctx: &mut Ctx, job: u64) -> Result<bool, ModuleError>;
    /// The model's parameter count of a training job (`None`: no such job, or not a training job).
    fn training_params(&self, ctx: &mut Ctx, job: u64) -> Result<Option<u64>, ModuleError>;
    /// The accepted Δ `delta_hash` of round `round` of `job`, if the lineage records one.
    fn accepted_delta(
        &self,
        ctx: &mut Ctx,
        job: u64,
        round: u64,
        delta_hash: &[u8; 32],
    ) -> Result<Option<AcceptedDelta>, ModuleError>;
    /// The current lineage head (latest merged checkpoint hash) of `job`, if the job exists
    /// and its head is a 32-byte hash. The default knows no heads.
    fn lineage_head(&self, _ctx: &mut Ctx, _job: u64) -> Result<Option<[u8; 32]>, ModuleError> {
        Ok(None)
    }
    /// How many merged rounds the lineage of `job` records now (`None`: no such job). A model
    /// can be served (and paid for with `MsgPayForInference`) once this is ≥ 1 (ADR 0109).
    fn merged_rounds(&self, ctx: &mut Ctx, job: u64) -> Result<Option<u64>, ModuleError>;
}

/// Audited storage custody as rewards sees it (ADR 0107).
pub trait Custody: Send + Sync {
    /// Share of each epoch pool reserved for storage custody (ppm, ≤ 500,000).
    fn storage_share_ppm(&self, ctx: &mut Ctx) -> Result<u64, ModuleError>;
    /// Proven custody of `epoch` in bytes·epochs, by holder operator, ascending; empty when
    /// nothing was proven (or the epoch has not been judged yet).
    fn custody(&self, ctx: &mut Ctx, epoch: u64) -> Result<Vec<(Address, u128)>, ModuleError>;
}

/// The registry as other modules see it.
pub trait NodeRegistry: Send + Sync {
    /// The node registered by `operator`.
    fn node(&self, ctx: &mut Ctx, operator: &Address) -> Result<Option<NodeInfo>, ModuleError>;
    /// The operator whose node key has address `node`.
    fn operator_of(&self, ctx: &mut Ctx, node: &Address) -> Result<Option<Address>, ModuleError>;
    /// May `operator` earn for `epoch`: active, not jailed, enough heartbeats in that epoch.
    fn is_eligible(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        epoch: u64,
    ) -> Result<bool, ModuleError>;
    /// Nodes live now (active, not jailed, a heartbeat within the liveness window), by operator.
    fn live_nodes(&self, ctx: &mut Ctx) -> Result<Vec<NodeInfo>, ModuleError>;
    /// Whether tier `tier` lists work kind `kind` (`training`, `inference`, `storage`, …): a
    /// `storage_node` does not train, so it is never elected into rounds nor drawn to evaluate.
    fn tier_does(&self, ctx: &mut Ctx, tier: &str, kind: &str) -> Result<bool, ModuleError>;
    /// Reward multiplier (milli: 1000 = 1.0×) of `operator`'s tier for work of `kind`.
    fn multiplier_milli(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        kind: &str,
    ) -> Result<u64, ModuleError>;
    /// Largest verified compute `operator` may be credited per contribution (scales with bond).
    fn compute_cap(&self, ctx: &mut Ctx, operator: &Address) -> Result<u128, ModuleError>;
    /// Governance weight of `addr`: its node bond plus its governance bond (not unbonding).
    fn voting_power(&self, ctx: &mut Ctx, addr: &Address) -> Result<u128, ModuleError>;
    /// Σ voting power of everyone.
    fn total_voting_power(&self, ctx: &mut Ctx) -> Result<u128, ModuleError>;
    /// Take up to `amount` from `operator`'s bond into `to`; returns what was taken.
    fn take_bond(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        amount: u128,
        to: &Address,
    ) -> Result<u128, ModuleError>;
    /// Jail `operator` until block time `until_secs` (extends, never shortens).
    fn jail(&self, ctx: &mut Ctx, operator: &Address, until_secs: u64) -> Result<(), ModuleError>;
    /// Whether `operator`'s node may hold storage shards (ADR 0107): its tier lists the
    /// `storage` work kind and it registered (or changed tier with) a passing SSD report.
    /// Says nothing about jail, bond or liveness; check those separately.
    fn is_storage_capable(&self, _ctx: &mut Ctx, _operator: &Address) -> Result<bool, ModuleError> {
        Ok(false)
    }
    /// Block time of `operator`'s last heartbeat (0: none, or no such node).
    fn last_heartbeat(&self, _ctx: &mut Ctx, _operator: &Address) -> Result<u64, ModuleError> {
        Ok(0)
    }
    /// The liveness window (seconds): a node whose last heartbeat is older is not live.
    fn liveness_window_secs(&self, _ctx: &mut Ctx) -> Result<u64, ModuleError> {
        Ok(0)
    }
}

/// Slashing as other modules see it.
pub trait Slashing: Send + Sync {
    /// Slash `operator`'s node bond at `offence`'s rate and jail it; returns the amount slashed.
    fn slash_node(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        evidence: &str,
    ) -> Result<u128, ModuleError>;
    /// Slash `rate_ppm` of `operator`'s node bond for `offence` (a rate the caller owns, such
    /// as custody's `audit_fail_slash_ppm`), jailing it for the slashing `jail_secs` only when
    /// `jail`; returns the amount slashed.
    fn slash_node_at(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        rate_ppm: u64,
        jail: bool,
        evidence: &str,
    ) -> Result<u128, ModuleError>;
    /// Like [`Slashing::slash_node`], but first pays `reward_ppm` of the slashed amount to
    /// `beneficiary` (the challenger who proved the offence); the rest is burned / sent to the
    /// community pool as usual. Returns (slashed, paid to the beneficiary).
    fn slash_node_rewarding(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        offence: Offence,
        evidence: &str,
        beneficiary: &Address,
        reward_ppm: u64,
    ) -> Result<(u128, u128), ModuleError>;
    /// Slash `offence`'s rate of `base`, held in `escrow` on behalf of `offender` (challenge
    /// bonds, notary bonds); returns the amount slashed. The caller owns the rest.
    fn slash_escrow(
        &self,
        ctx: &mut Ctx,
        offender: &Address,
        offence: Offence,
        base: u128,
        escrow: &Address,
        evidence: &str,
    ) -> Result<u128, ModuleError>;
}

/// Epoch reward pools.
pub trait Emission: Send + Sync {
    /// Amount minted into [`REWARDS_POOL`] for `epoch` (`None` until the epoch has ended).
    fn epoch_pool(&self, ctx: &mut Ctx, epoch: u64) -> Result<Option<u128>, ModuleError>;
}

/// One verified contribution, as rewards and jobs see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedWork {
    /// Epoch of the commitment.
    pub epoch: u64,
    /// Job id.
    pub job: u64,
    /// Contributor's operator account.
    pub operator: Address,
    /// Work kind (`training`, `storage`, …).
    pub kind: String,
    /// Verified quality q (median score, fixed-point 10^6, floored at 0; 0 when unscored).
    pub quality: u128,
    /// Verified compute c (steps × params, capped).
    pub compute: u128,
    /// Evaluators whose score was within the band, with their slot counts.
    pub good_evaluators: Vec<(Address, u32)>,
    /// True when a notary resolution invalidated it.
    pub invalidated: bool,
}

/// Contributions as rewards, jobs and notary see them (and a dispute target).
pub trait Contributions: Disputable + Send + Sync {
    /// When `epoch`'s challenge window closes (`None` while its evaluation is still running).
    fn challenge_closes_at(&self, ctx: &mut Ctx, epoch: u64) -> Result<Option<u64>, ModuleError>;
    /// Verified contributions of `epoch`, in key order (empty before finalisation).
    fn verified(&self, ctx: &mut Ctx, epoch: u64) -> Result<Vec<VerifiedWork>, ModuleError>;
    /// Number of disputes against `epoch`'s contributions still open.
    fn open_disputes(&self, ctx: &mut Ctx, epoch: u64) -> Result<u64, ModuleError>;
    /// Verified contributions of `epoch` to `job`, in key order. Implementations should read
    /// only that job's keys (metered), so a caller's cost follows the job's own work, not every
    /// job's; the default filters [`Contributions::verified`].
    fn verified_for_job(
        &self,
        ctx: &mut Ctx,
        epoch: u64,
        job: u64,
    ) -> Result<Vec<VerifiedWork>, ModuleError> {
        Ok(self
            .verified(ctx, epoch)?
            .into_iter()
            .filter(|w| w.job == job)
            .collect())
    }
}

/// The state of a registered data record, as other modules see it (`magnet-data`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataStatus {
    /// Registered, inside its challenge window.
    Pending,
    /// Past its challenge window undisputed (or a dispute was rejected).
    Confirmed,
    /// Rejected by a notary resolution.
    Rejected,
}

/// Something a notary challenge can target (`contrib/<epoch>/<job>/<operator>`, `data/<id>`).
pub trait Disputable: Send + Sync {
    /// The status of the data record registered under content hash `hash`, if any. Only the
    /// data module answers it; other disputable targets say they hold no data records.
    fn data_status(
        &self,
        _ctx: &mut Ctx,
        _hash: &[u8; 32],
    ) -> Result<Option<DataStatus>, ModuleError> {
        Err(missing_service("data records"))
    }
    /// The party answerable for `target` and the offence if a challenge is upheld, if the
    /// target exists and is inside its challenge window; otherwise an error saying why not.
    fn open_dispute(&self, ctx: &mut Ctx, target: &str) -> Result<(Address, Offence), ModuleError>;
    /// The panel resolved: `upheld` = the target is invalid.
    fn close_dispute(&self, ctx: &mut Ctx, target: &str, upheld: bool) -> Result<(), ModuleError>;
}

/// The notary panel, for governance and fee splits.
pub trait NotaryPanel: Send + Sync {
    /// Current panel members, ascending.
    fn members(&self, ctx: &mut Ctx) -> Result<Vec<Address>, ModuleError>;
    /// Replace the panel.
    fn set_panel(&self, ctx: &mut Ctx, members: &[Address]) -> Result<(), ModuleError>;
    /// Governance overturned challenge `id` as fraudulently approved: slash its majority 1.0.
    fn overturn(&self, ctx: &mut Ctx, challenge_id: u64) -> Result<(), ModuleError>;
}

/// A consensus validator as other modules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatorRecord {
    /// Ed25519 consensus public key (32 bytes).
    pub pub_key_ed25519: Vec<u8>,
    /// Current power in state (0 once removed).
    pub power: u64,
    /// Operator account that is paid its fee share and whose bonds back it, if known.
    pub operator: Option<Address>,
}

/// CometBFT v0.38's `MaxTotalVotingPower` (`math.MaxInt64 / 8`): a validator set whose total
/// power exceeds it is an invalid update that stops every node, so the app never reports one.
pub const MAX_TOTAL_VOTING_POWER: u64 = (i64::MAX / 8) as u64;

/// The validator set, owned by the app. Changes made through it reach CometBFT as the
/// block's `validator_updates`.
pub trait Validators: Send + Sync {
    /// Account that receives fee payouts of the validator with this consensus address
    /// (`SHA-256(pubkey)[..20]`); `None` when it has no operator.
    fn reward_address(
        &self,
        ctx: &mut Ctx,
        consensus: &[u8],
    ) -> Result<Option<Address>, ModuleError>;
    /// The validator with this consensus address, if it was ever in the set.
    fn by_consensus_address(
        &self,
        ctx: &mut Ctx,
        consensus: &[u8],
    ) -> Result<Option<ValidatorRecord>, ModuleError>;
    /// The set as it will be after this block's changes so far: ed25519 key → power (> 0),
    /// in key order.
    fn effective_set(
        &self,
        ctx: &mut Ctx,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, u64>, ModuleError>;
    /// Set a validator's power by its ed25519 public key (0 removes it). Refuses to remove
    /// the last validator and a total power above [`MAX_TOTAL_VOTING_POWER`].
    fn set_power(
        &self,
        ctx: &mut Ctx,
        pub_key_ed25519: &[u8],
        power: u64,
    ) -> Result<(), ModuleError>;
    /// Set the operator account of a validator.
    fn set_operator(
        &self,
        ctx: &mut Ctx,
        pub_key_ed25519: &[u8],
        operator: &Address,
    ) -> Result<(), ModuleError>;
}
