//! # magnet-storage — erasure-coded, self-repairing shard storage (paper §11)
//!
//! Checkpoints and gradient tensors are stored as Reed-Solomon shards spread over unreliable
//! commodity nodes. The pieces:
//!
//! * [`codec`] — systematic RS(K, M) over GF(2^8) (polynomial 0x11D), objects cut into 1–4 MiB
//!   stripes so large objects stream; any K of K+M shards rebuild the exact bytes.
//! * [`hash`] — SHA-256 shard hashes and `sha256:` content addresses.
//! * [`manifest`] — what an object is made of and where its shards live, signed with the node's
//!   secp256k1 key under the domain `MAGNET/storage/manifest/v1`.
//! * [`store`] — the on-disk shard store a node serves: atomic writes, hash-checked reads,
//!   audit answers.
//! * [`placement`] — distinct holders per object, spread across regions; overhead and
//!   durability of each setting.
//! * [`daemon`] — the replication/repair daemon as a pure state machine driven by a clock.
//! * [`audit`] — random-range, fresh-nonce possession challenges and signed evidence.
//! * [`transport`] and [`object`] — the holder-facing trait the p2p layer implements, and
//!   put/get/repair/audit on top of it.
//! * [`provision`] — the O_DIRECT SSD test that decides storage-tier eligibility.
//!
//! # Security
//! Guarantees: bytes are returned only if they hash to the content address; a corrupt shard is
//! excluded, never decoded; manifests and audit evidence are signed and domain-separated; the
//! shard store builds paths only from typed ids. Non-guarantees: this crate does not
//! authenticate peers (the p2p layer does) and does not decide whether a manifest's signer was
//! entitled to publish it.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod audit;
pub mod codec;
pub mod daemon;
pub mod hash;
pub mod manifest;
pub mod object;
pub mod placement;
pub mod provision;
pub mod store;
pub mod transport;

pub use codec::{Codec, CodecError, Layout, Params, SUPPORTED};
pub use daemon::{Action, Daemon, DaemonConfig, Event, Priority, RepairOrder};
pub use hash::{ContentAddress, Hash32};
pub use manifest::{HolderId, Manifest, ManifestError, SignedManifest, Signer};
pub use store::{ShardId, ShardStore, StoreError, StoredShard};
pub use transport::{LocalTransport, Transport, TransportError};
