//! # magnet-daemon — the worker daemon behind `magnet-worker init|join|run|status`
//!
//! A worker is an operator account (holds the bond, never leaves the operator's machine) and a
//! separate **node key** (signs the node's own work: heartbeats, commits, reveals, evaluations,
//! round records, and every p2p request). This crate runs one worker:
//!
//! * [`config`] — the TOML config `magnet-worker init` writes, every field defaulted and
//!   validated with an error that says what to change;
//! * [`profile`] — hardware profiling (CPU features, cores, memory, GPU, a disk write test) and
//!   the tier it suggests;
//! * [`chain`] — the chain through a list of RPC endpoints with failover: JSON queries of the
//!   modules, the genesis clock, and one serialised tx queue per key (no sequence races);
//! * [`engine`] — real BitNet training on this worker's shard of the job's corpus (inner AdamW
//!   steps from a global checkpoint, pseudo-gradients, validation loss on the job's validation
//!   split, and the evaluator's losses on seeded windows of the job's whole corpus);
//! * [`quality`] — marginal quality (ADR 0090): the seeded window draw, the entry sample, the
//!   per-Δ marginal score and its mean, the near-duplicate rule, the corpus-hash check;
//! * [`round`] — the edge of `magnet-diloco`'s round state machine: the eligible set from the
//!   chain, announcements / GradientReady / merged notices over signed gRPC (`magnet-p2p`),
//!   Δs and checkpoints stored as shards (sent directly to the leader *and* kept locally, so
//!   the leader can pull what a push missed), the merge, `MsgRecordRound`;
//! * [`duties`] — the epoch's on-chain duties: commit and reveal this worker's contribution,
//!   evaluate the contributions it is assigned to (the marginal effect of each one's own
//!   accepted Δs) and commit-reveal the scores, read settlement;
//! * [`state`] — everything needed to resume after a restart, written atomically;
//! * [`run`] — the event loop tying it together, with Prometheus metrics and clean Ctrl-C;
//! * [`setup`] — `init` (config, keys, hardware profile) and `join` (register on chain);
//! * [`status`] — what `magnet-worker status` prints;
//! * [`stripes`] and [`keeper`] — the storage tier (ADR 0107): RS(4,2) stripes over the p2p
//!   layer, and the duty that publishes, proves, repairs and collects them.
//!
//! # Guarantees
//! Every chain write is signed by the right key (operator for bonds, node for work) and waits
//! for inclusion before the next from the same key. Every p2p message is signed and checked
//! (`magnet-p2p`), and the round machine drops messages from anyone but the role they claim.
//! Checkpoints are accepted only if their hash matches the chain's record. State survives
//! restarts; a restarted worker rejoins at the current round from the chain's latest merge.
//!
//! # Non-guarantees
//! The daemon trusts its chain endpoints' answers (no light client). Wall-clock time paces the
//! round deadlines (the state machine gets it as an argument), so workers need NTP-grade clocks.
#![deny(clippy::unwrap_used)]

pub mod audit;
pub mod chain;
pub mod config;
pub mod duties;
pub mod engine;
pub mod error;
pub mod keeper;
pub mod keys;
pub mod metrics;
pub mod profile;
pub mod quality;
pub mod research;
pub mod research_job;
pub mod round;
pub mod run;
pub mod setup;
pub mod state;
pub mod status;
pub mod stripes;

pub use config::Config;
pub use error::DaemonError;

/// Result alias.
pub type Result<T> = std::result::Result<T, DaemonError>;
