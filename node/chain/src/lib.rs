//! # magnet-chain — the `magnetd` validator binary, as a library
//!
//! `magnetd` runs MAGNET's ABCI 2.0 application ([`magnet_app::MagnetApp`]) in one of two
//! ways:
//!
//! * **embedded** (`magnetd start`, the default): [`node::Node`] is a single-validator block
//!   producer in the same process. It drives the app through the same ABCI calls in the same
//!   order as CometBFT (PrepareProposal → ProcessProposal → FinalizeBlock → Commit, with a
//!   CheckTx mempool), stores blocks, results and a tx index in [`store`], and serves a
//!   CometBFT v0.38-compatible JSON-RPC ([`rpc_server`]) so `tendermint-rpc` and cosmjs clients
//!   work unchanged.
//! * **behind CometBFT** (`magnetd start --abci-only`): [`abci_server`] serves the ABCI socket
//!   for an external CometBFT v0.38 node; this is how a multi-validator network runs.
//!
//! [`home`] and [`genesis`] lay out and edit a CometBFT-compatible home directory, so the same
//! `--home` works for `magnetd` and `cometbft`. [`metrics`] exposes Prometheus gauges.
//!
//! # Guarantees
//! The embedded node survives `kill -9` at any point: blocks are saved before execution and
//! replayed through the ABCI handshake on restart (see [`store`]). Block times, ids and commits
//! are deterministic functions of the genesis, the txs and the validator key.
//!
//! # Non-guarantees
//! The embedded node is one validator: it has no p2p, no evidence, no state sync.
#![deny(clippy::unwrap_used)]

pub mod abci_server;
pub mod devnet;
pub mod devnet_research;
pub mod devnet_serve;
pub mod eligible;
pub mod genesis;
pub mod home;
pub mod metrics;
pub mod node;
pub mod rpc_server;
pub mod store;
pub mod tx_search;
