//! # magnet-core — the shared core every on-chain module stands on
//!
//! MAGNET's chain is a set of module crates (`modules/<name>`) wired together by `magnet-app`.
//! This crate is the narrow waist between them: it defines
//!
//! * [`store`] — the key-value view a module reads and writes ([`KvStore`]), an in-memory
//!   store and a write-buffering [`store::Overlay`] used for atomic transactions;
//! * [`context`] — [`Ctx`], what a module gets on every call: block info, metered store access,
//!   the event sink, the tx signer and the [`Services`] of other modules;
//! * [`coins`] and [`address`] — integer money (`u128`) and bech32 `magnet1…` addresses;
//! * [`module`] — the [`Module`] trait every module implements, and [`ModuleError`];
//! * [`services`] — the narrow traits through which modules call each other (bank first);
//! * [`epoch`] — the block-time epoch clock shared by all modules;
//! * [`math`] — checked `a·b/c` with a 256-bit intermediate, ppm rates;
//! * [`params`] — the glue every module shares: a params document parsed, validated, stored
//!   and queried one way ([`params::ModuleParams`]), plus the macros
//!   `impl_module_params!`, `module_params_methods!`, `module_params_genesis!` and
//!   `module_msg_methods!` that write the repetitive `impl Module` methods.
//!
//! # Guarantees
//! Everything here is deterministic: ordered maps only, no floats, no wall clock, no
//! randomness. Iteration over the store is always in ascending key order.
//!
//! # Non-guarantees
//! This crate does not persist anything: durability and the merkle app hash belong to the
//! store in `magnet-app`. It does not check signatures: the app's ante handler does.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod address;
pub mod coins;
pub mod context;
pub mod epoch;
pub mod event;
pub mod gas;
pub mod math;
pub mod module;
pub mod msg;
pub mod params;
pub mod services;
pub mod store;

pub use address::{Address, AddressError, BECH32_PREFIX};
pub use coins::{Coin, Coins, CoinsError, NATIVE_DENOM};
pub use context::{BlockInfo, Ctx, QueryCtx};
pub use event::Event;
pub use gas::{GasCosts, GasMeter, OutOfGas};
pub use module::{Module, ModuleError, MsgResult, ValidatorUpdate};
pub use services::{
    community_pool, AcceptedDelta, Bank, BankError, Contributions, Custody, DataStatus, Disputable,
    Emission, Jobs, NodeInfo, NodeRegistry, NotaryPanel, Offence, Services, Slashing,
    ValidatorRecord, Validators, VerifiedWork,
};
pub use store::{KvStore, MemStore};

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}
