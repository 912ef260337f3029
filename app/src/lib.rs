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
//! * [`snapshot`] — state-sync snapshots: taken every N heights after Commit, chunked and
//!   hashed, restored through `OfferSnapshot` / `ApplySnapshotChunk` (ADR 0099).
//! * [`invariants`] — whole-app invariants (supply, escrows, settlements) over any state.
//! * `testkit` (feature `testkit`) — build and sign txs with a k256 key; `sim` (same
//!   feature) — the randomized whole-app simulation behind `magnetd sim` (ADR 0100).
//! * `fuzzing` (feature `fuzzing`) — the structure-aware fuzz input (every message type) and
//!   the block harness with its oracles, shared by `fuzz/` and the corpus replay (ADR 0102).
//!
//! ```no_run
//! use magnet_app::{AppConfig, MagnetApp};
//! let app = MagnetApp::open(std::path::Path::new("/tmp/magnet-data"), AppConfig::default())?;
//! // tendermint_abci::ServerBuilder::default().bind("127.0.0.1:26658", app)?.listen()?;
//! # Ok::<(), magnet_app::AppError>(())
//! ```
//!
//! # For `magnetd`
//! * [`MagnetApp::open`]`(data_dir, AppConfig)` — state lives in `data_dir/state.redb`.
//! * It implements [`tendermint_abci::Application`] (Clone + Send): hand it to
//!   `tendermint_abci::ServerBuilder` for `--abci-only`, or call `info`, `init_chain`,
//!   `check_tx`, `prepare_proposal`, `process_proposal`, `finalize_block`, `commit`, `query`
//!   directly from the embedded block producer, in CometBFT's order.
//! * [`MagnetApp::validate_genesis`] checks an `app_state` before starting;
//!   [`MagnetApp::export`] gives `magnetd export` the `app_state`, chain id, height and validators.
//! * `testkit` (feature) builds and signs `MsgSend` txs and Simulate requests.
//! * Query paths: `/cosmos.auth.v1beta1.Query/Account`, `/cosmos.bank.v1beta1.Query/Balance`,
//!   `/AllBalances`, `/TotalSupply`, `/SupplyOf`, `/cosmos.tx.v1beta1.Service/Simulate`,
//!   `/magnet.auth.v1/params`, `/magnet.epochs.v1/state`, and `/store/key` (a raw state key,
//!   with a merkle proof when `prove = true`: check it with [`proof::verify_proof`]). `GetTx` is not served here: the app
//!   keeps no tx index (the node's `tx`/`tx_search` does).
//! * State sync: set [`AppConfig::snapshot`] (`interval`, `keep_recent`) to serve snapshots
//!   from `data_dir/snapshots/`; an empty app restores one when CometBFT offers it.
//!
//! # Guarantees
//! Deterministic execution (ordered maps, integer money, no clock or randomness; parallel
//! signature checks are pure). A failed tx changes nothing but its fee and sequence.
//!
//! # Non-guarantees
//! Merkle proofs cover raw state keys only (`/store/key`, see [`proof`]); a state-synced node
//! has no history below its snapshot height; no
//! fee grants or multisig, one signer per tx.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod app;
pub mod auth;
pub mod bank;
pub mod error;
pub mod exec;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod invariants;
pub mod modules;
pub mod proof;
#[cfg(feature = "testkit")]
pub mod sim;
pub mod snapshot;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod tx;
pub mod validators;

pub use app::{
    AppConfig, AppError, ExportedState, FinalizeError, GenesisOperator, GenesisValidator, MagnetApp,
};
pub use error::TxError;
pub use exec::{fee_collector, FEE_COLLECTOR};
pub use store::StoreConfig;
pub use tendermint_abci::Application;
pub use tendermint_proto::v0_38::abci;
