//! # magnet-client — talk to a MAGNET chain
//!
//! The pieces every MAGNET program needs to act on the chain, shared by `magnetd` and
//! `magnet-worker`:
//!
//! * [`keys`] — secp256k1 account keys derived from a BIP-39 mnemonic on the Cosmos path
//!   `m/44'/118'/0'/0/0`, so the same words give the same `magnet1…` address in Keplr,
//!   cosmjs and here;
//! * [`keyring`] — where keys live on disk: the `test` backend (plain JSON, for devnets and
//!   CI) and the `file` backend (mnemonic sealed with scrypt + ChaCha20-Poly1305 under a
//!   passphrase);
//! * [`msgs`] — typed builders for every incentive-module message, each saying which key
//!   (operator or node) signs it;
//! * [`tx`] — build and sign Cosmos SDK transactions (`TxRaw`, `SIGN_MODE_DIRECT`);
//! * [`rpc`] — a [`rpc::ChainClient`] over CometBFT JSON-RPC (`tendermint-rpc`'s
//!   `HttpClient`): account and balance queries through `abci_query`, broadcast, wait for
//!   inclusion, blocks;
//! * [`x402`] — x402 v2 payment wire types and the client side of the `exact` scheme
//!   (a signed `MsgPayForInference`), used by `magnet-worker serve` and `magnet-worker pay`.
//!
//! # Guarantees
//! A key file is written atomically (temp file + rename) with mode 0600; a wrong passphrase is
//! reported as such, never as garbage. Signing is deterministic (RFC 6979).
//!
//! # Non-guarantees
//! The `test` keyring stores mnemonics in clear text: never use it for real funds. The client
//! trusts the node it talks to (no light-client verification of query results).
#![deny(clippy::unwrap_used)]

pub mod error;
pub mod keyring;
pub mod keys;
pub mod msgs;
pub mod rpc;
pub mod tx;
pub mod x402;

pub use error::ClientError;
pub use keyring::{Keyring, KeyringBackend};
pub use keys::{Key, HD_PATH};
pub use rpc::{ChainClient, TxOutcome};
