//! `magnet-p2p`: how MAGNET nodes find, authenticate and talk to each other (paper §11–§12).
//!
//! * **Identity** ([`identity`]): the node key is the secp256k1 key of the node's chain account;
//!   `nodeId = "node-" ‖ hex(SHA-256(compressed key))[..16]` is a display name, always accepted
//!   together with a key that hashes to it.
//! * **Signed requests** ([`auth`]): every RPC body travels in a `Signed` envelope and is
//!   verified — recoverable secp256k1 signature (wallet mode) or HMAC-SHA256 (cluster mode),
//!   5-minute freshness, bounded nonce replay cache, optional [`registry::Registry`] — before
//!   its bytes are decoded.
//! * **TLS bound to the node key** ([`tls`]): self-signed certificates carry the node key and
//!   its signature over the TLS key, checked at the handshake against the expected nodeId;
//!   TOFU pinning only for peers with no known key; CA mode from `MAGNET_P2P_*`.
//! * **Services** ([`service`], [`client`], [`node`]): peer exchange, heartbeat, chunked shard
//!   put/get with per-chunk hash checks, list, delete and storage audits, over tonic + rustls
//!   (ring provider). The on-disk store plugs in through [`backend::ShardBackend`];
//!   [`storage_glue`] wires `magnet-storage`'s `ShardStore` in as the backend and implements
//!   its `Transport` over these services, so object put/get/repair/audit run across nodes.
//!
//! # Security
//! Guaranteed: a request is acted on only if it is fresh, not replayed, signed for this method
//! and body by the key its nodeId names (and, when TLS is key-bound, by the node that did the
//! handshake). A dialled peer must prove the expected key during the handshake.
//! Not guaranteed: availability under flooding (no rate limiting here), confidentiality of
//! metadata such as who talks to whom, and anything about a TOFU peer's first contact.
#![deny(clippy::unwrap_used)]
// `tonic::Status` (176 bytes) is the error type of every tonic handler; boxing it in our own
// results would only add conversions at each boundary.
#![allow(clippy::result_large_err)]

pub mod auth;
pub mod backend;
pub mod client;
pub mod der;
pub mod error;
pub mod identity;
pub mod node;
pub mod receipt;
pub mod registry;
pub mod service;
pub mod storage_glue;
pub mod stream;
pub mod tls;

pub use auth::{Signer, Verifier, VerifyMode};
pub use backend::{DirShardBackend, ShardBackend, ShardInfo, ShardKey};
pub use client::PeerClient;
pub use error::P2pError;
pub use identity::{NodeId, NodeKey, PublicKey};
pub use node::{NodeConfig, NodeHandle};
pub use receipt::{verify_receipt, ReceiptConfig, ReceiptError, VerifiedReceipt};
pub use registry::{Registry, StaticRegistry};
pub use service::ServiceConfig;
pub use tls::{Expect, NodeTls, PinStore};
