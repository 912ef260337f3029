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
#[derive(Clone, Copy)]
pub struct Services<'a> {
    /// The bank.
    pub bank: &'a dyn Bank,
    /// All modules (governance).
    pub router: &'a dyn ModuleRouter,
}
