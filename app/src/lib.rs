//! # magnet-app — the MAGNET ABCI 2.0 application
//!
//! [`MagnetApp`] wires the on-chain modules (`modules/*`, plus `auth` and `bank` here) behind
//! CometBFT's ABCI 2.0 ([`tendermint_abci::Application`]). `magnetd` serves it over the ABCI
//! socket or drives it in process with its embedded block producer.
//!
//! * [`store`] — the versioned, crash-safe merkle store (jmt over redb) whose root is the
//!   app hash; a block commits atomically.
//! * [`tx`] — Cosmos SDK `TxRaw` decoding and stateless checks; [`exec`] — the ante checks
//!   (sequence, signature, fee) and message execution; [`error`] — every failure's code.
//! * [`auth`], [`bank`] — accounts and transfers with the standard Cosmos types, so wallets
//!   (cosmjs, Keplr) work unchanged.
//! * [`modules`] — **the one place modules are registered**, and the fixed hook order.
//! * [`app`] — [`MagnetApp`]: the ABCI entry points, genesis and export.
//! * `testkit` (feature `testkit`) — build and sign txs with a k256 key.
//!
//! ```no_run
//! use magnet_app::{AppConfig, MagnetApp};
//! let app = MagnetApp::open(std::path::Path::new("/tmp/magnet-data"), AppConfig::default())?;
//! // tendermint_abci::ServerBuilder::default().bind("127.0.0.1:26658", app)?.listen()?;
//! # Ok::<(), magnet_app::AppError>(())
//! ```
//!
//! # Guarantees
//! Deterministic execution (ordered maps, integer money, no clock or randomness; parallel
//! signature checks are pure). A failed tx changes nothing but its fee and sequence.
//!
//! # Non-guarantees
//! No merkle proofs in queries yet (`prove` is ignored), no state sync, no fee grants or
//! multisig, one signer per tx.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod app;
pub mod auth;
pub mod bank;
pub mod error;
pub mod exec;
pub mod modules;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tx;

pub use app::{AppConfig, AppError, ExportedState, GenesisValidator, MagnetApp};
pub use error::TxError;
pub use exec::{fee_collector, FEE_COLLECTOR};
pub use store::StoreConfig;
pub use tendermint_abci::Application;
pub use tendermint_proto::v0_38::abci;
