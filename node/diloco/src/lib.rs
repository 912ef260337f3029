//! # magnet-diloco — DiLoCo rounds for MAGNET (paper §10)
//!
//! Workers train a shared model for `H` inner steps each, send pseudo-gradients
//! `Δ_i = θ_global − θ_i`, and an elected leader merges them with an outer Nesterov step.
//! This crate is the protocol, with no network, disk or tensor library in it:
//!
//! * [`election`] — the leader of round `r` from the chain's eligible set at the round's start
//!   height: `sorted(eligible)[H(block hash ‖ r) mod N]` (default) or the paper's `r mod N`;
//! * [`round`] — the round state machine `step(state, event, now) → (state, actions)`: the
//!   announcement, inner training (an action the edge runs), GradientReady signals, collection
//!   until `collected ≥ needed` or the deadline, dropouts, dead leaders, stale contributions;
//! * [`merge`] — screening (NaN/Inf, norm outliers, staleness, duplicates), integer weights from
//!   data size × quality, the outer Nesterov step, the [`merge::RoundRecord`] that goes on chain,
//!   and [`merge::verify_merge`] so anyone can recompute a merge and check its hash;
//! * [`checkpoint`] — the merged checkpoint (parameters *and* outer momentum) and its hash;
//! * [`compress`] — int8 pseudo-gradient compression with error feedback, optional top-k, and
//!   exact byte accounting;
//! * [`eligible`] — the [`eligible::EligibleSource`] trait (the chain's eligible set through a
//!   list of RPC endpoints), an HTTP implementation, and a failover source over several of them.
//!
//! # Guarantees
//! Everything is deterministic given its inputs (time comes in as an argument, maps are
//! ordered), so the state machine is tested under simulated time over arbitrary event orders.
//! Bad input — a malformed checkpoint, a poisoned Δ, a message for the wrong round — yields a
//! typed error or a recorded rejection, never a panic.
//!
//! # Non-guarantees
//! Signatures and transport belong to `node/p2p`; storage of Δs and checkpoints to
//! `node/storage`; inner training to `node/bitnet`. This crate trusts the edge to have verified
//! who sent an event.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod checkpoint;
pub mod compress;
pub mod election;
pub mod eligible;
pub mod merge;
pub mod round;
pub mod types;

pub use checkpoint::{pseudo_gradient, Checkpoint, CheckpointError};
pub use compress::{
    quantize_dense, ByteLedger, CompressError, Compressed, CompressionConfig, Compressor,
};
pub use election::{elect_leader, ElectionError, LeaderRule};
pub use eligible::{EligibleSet, EligibleSource, FailoverSource, HttpEligibleSource, Member};
pub use merge::{
    apply_step, merge, verify_merge, Contribution, MergeError, MergeMeta, MergeOutput, MergePolicy,
    RejectReason, RoundRecord, VerifyError,
};
pub use round::{Action, Event, Phase, RoundConfig, RoundState};
pub use types::{delta_hash, Digest, NodeId};
