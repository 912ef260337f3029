//! The DiLoCo round state machine of one node: `step(state, event, now) → (state, actions)`.
//!
//! One [`RoundState`] runs on every node; it plays the leader when the election names it and a
//! worker otherwise. The network, the chain, storage and training are at the edges: the machine
//! asks for them with [`Action`]s and hears back through [`Event`]s. Time is `now` in
//! milliseconds, given by the caller, so tests drive it with a simulated clock.
//!
//! A round `r`:
//! 1. **Open** — [`Action::ReadEligible`] at the scheduled start height
//!    `first_height + r·blocks_per_round`; the edge answers [`Event::EligibleRead`]. Every node
//!    elects the same leader from that set ([`crate::election`]).
//! 2. **Announce** (leader) — the collection state is created *first*, then
//!    [`Action::Announce`] goes to every other eligible peer (a fast peer's GradientReady can never
//!    find the leader unprepared). The leader trains too.
//! 3. **Train** (everyone) — [`Action::TrainInner`] `{base, H}`; the edge runs H inner AdamW steps,
//!    computes `Δ = θ_base − θ_local`, compresses and stores it, and answers
//!    [`Event::TrainingDone`]. A worker sends [`Action::SendGradientReady`]; the leader injects its
//!    own directly.
//! 4. **Collect** (leader) — `needed` = peers that accepted the announcement (delivery
//!    confirmed or a gradient received) plus the leader, minus peers that dropped before
//!    contributing; unreachable peers never count. When every delivery outcome is known and
//!    `collected ≥ needed`, or at the deadline, the leader emits exactly one [`Action::Merge`].
//! 5. **Merge** — the edge runs [`crate::merge::merge`] and answers [`Event::MergeDone`] with the
//!    [`RoundRecord`]; the leader publishes it ([`Action::PublishMerged`],
//!    [`Action::RecordRound`]) and everyone adopts the merged checkpoint and opens `r+1`.
//!
//! Faults: a worker that dies or drops stops counting toward `needed`; a dead leader is noticed by
//! the announcement timeout or the merge timeout (`deadline + merge_grace`) and the next round's
//! leader starts from the last merged checkpoint (momentum included, as it lives in the
//! checkpoint). A worker whose training outlasts its round submits the result to the next round
//! as a *stale* contribution (down-weighted by the merge policy) and trains fresh after that.
//!
//! # Guarantees (checked by [`RoundState::check_invariants`] and the proptests)
//! * A node emits at most one `Merge` per round, and only for a round it leads.
//! * No Δ hash is collected twice, across rounds and across leaders (merged records carry their
//!   accepted Δ hashes, and every node remembers them); at most one Δ per sender per round.
//! * `collected ⊆ accepted ⊆ eligible` and `needed = |accepted|`, so `needed ≤ accepted`.
//! * A malformed or misdirected event is answered with [`Action::Rejected`] and changes nothing.
//!
//! # Non-guarantees
//! Deadlines are absolute times chosen by the leader, so nodes need loosely synchronised clocks
//! (NTP-grade; `merge_grace_ms` absorbs the skew), as the paper's 5-minute signature freshness
//! window already assumes. Signatures are checked at the edge before an event is built. Two nodes that read *different*
//! eligible sets for the same round can elect different leaders; the chain accepts one
//! `MsgRecordRound` per (job, round), which settles it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::election::{elect_leader, LeaderRule};
use crate::eligible::EligibleSet;
use crate::merge::{MergePolicy, RoundRecord};
use crate::types::{Digest, NodeId};
use magnet_rounds::ClaimBound;

/// Longest content address accepted in a GradientReady.
pub const MAX_CONTENT_ADDRESS_LEN: usize = 256;
/// Most out-of-order messages buffered for an upcoming round.
pub const MAX_BUFFERED: usize = 64;

/// Static configuration of a node's rounds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundConfig {
    /// This node.
    pub me: NodeId,
    /// Research job id.
    pub job_id: u64,
    /// Leader rule.
    pub rule: LeaderRule,
    /// Inner steps H per round.
    pub inner_steps: u32,
    /// Start height of round 0.
    pub first_height: u64,
    /// Blocks between round start heights.
    pub blocks_per_round: u64,
    /// Collection window after the announcement (ms).
    pub round_ms: u64,
    /// How long a worker waits for the announcement after opening a round (ms).
    pub announce_timeout_ms: u64,
    /// How long after the deadline a worker waits for the merged checkpoint (ms).
    pub merge_grace_ms: u64,
    /// Merge policy (the machine uses `max_staleness` and `min_contributions`).
    pub policy: MergePolicy,
    /// The most one Δ may claim (the job's training spec on chain); the leader rejects a
    /// GradientReady whose steps or tokens exceed it ([`Rejection::ClaimOutOfBound`]). `None`:
    /// no bound (tests, jobs without a spec).
    #[serde(default, with = "claim_bound_serde")]
    pub claim_bound: Option<ClaimBound>,
}

/// serde for `Option<ClaimBound>` (the shared type carries no serde derive).
mod claim_bound_serde {
    use magnet_rounds::ClaimBound;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct Bound {
        inner_steps: u64,
        batch_size: u64,
        seq_len: u64,
    }

    pub fn serialize<S: Serializer>(v: &Option<ClaimBound>, s: S) -> Result<S::Ok, S::Error> {
        v.map(|b| Bound {
            inner_steps: b.inner_steps,
            batch_size: b.batch_size,
            seq_len: b.seq_len,
        })
        .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ClaimBound>, D::Error> {
        Ok(Option::<Bound>::deserialize(d)?.map(|b| ClaimBound {
            inner_steps: b.inner_steps,
            batch_size: b.batch_size,
            seq_len: b.seq_len,
        }))
    }
}

impl RoundConfig {
    /// Scheduled start height of `round`.
    pub fn start_height(&self, round: u64) -> u64 {
        self.first_height
            .saturating_add(round.saturating_mul(self.blocks_per_round))
    }
}

/// Leader → peers: round `round` is on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundAnnouncement {
    /// Job.
    pub job_id: u64,
    /// Round.
    pub round: u64,
    /// The elected leader (sender).
    pub leader: NodeId,
    /// Height the eligible set was read at.
    pub start_height: u64,
    /// Inner steps H.
    pub inner_steps: u32,
    /// Collection deadline (ms).
    pub deadline: u64,
    /// Hash of the checkpoint to train from.
    pub base_hash: Digest,
}

/// Worker → leader: my Δ is ready.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GradientReady {
    /// Job.
    pub job_id: u64,
    /// Round it is submitted to.
    pub round: u64,
    /// Sender.
    pub from: NodeId,
    /// Checkpoint the Δ was trained from (older than the round's base → stale).
    pub base_hash: Digest,
    /// Hash of the decoded Δ.
    pub delta_hash: Digest,
    /// Where the compressed Δ is stored (content address).
    pub content_address: String,
    /// Local training loss at the end of the inner steps.
    pub local_loss: f32,
    /// Tokens/samples trained on (the claim's tokens).
    pub data_size: u64,
    /// Inner steps trained (the claim's steps).
    #[serde(default)]
    pub steps: u64,
    /// The sender's [`magnet_rounds::WorkClaim`] signature over (chain id, job, round, base,
    /// Δ, steps, tokens = `data_size`) with its node key, hex. Filled in by the edge that
    /// sends the signal (the machine leaves it empty); the receiving edge verifies it against
    /// the sender's registered node key before the leader's machine sees it.
    #[serde(default)]
    pub signature: String,
}

/// Leader → peers: the round merged.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundMerged {
    /// The record (also sent on chain); `record.merged_hash` is the new base.
    pub record: RoundRecord,
}

/// Leader → peers: the round ends without a merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundAborted {
    /// Job.
    pub job_id: u64,
    /// Round.
    pub round: u64,
    /// Leader.
    pub leader: NodeId,
}

/// A Δ the leader collected, handed to the edge for merging.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CollectedGradient {
    /// Sender.
    pub node: NodeId,
    /// Δ hash.
    pub delta_hash: Digest,
    /// Where to fetch it.
    pub content_address: String,
    /// Data size.
    pub data_size: u64,
    /// On-chain quality score.
    pub quality_bps: u32,
    /// Merges between its base and the round's base.
    pub staleness: u32,
    /// Local loss.
    pub local_loss: f32,
    /// Base the Δ was trained from.
    #[serde(default)]
    pub base_hash: Digest,
    /// Claimed inner steps.
    #[serde(default)]
    pub steps: u64,
    /// Claim signature (hex; empty for the leader's own Δ until its edge signs it).
    #[serde(default)]
    pub signature: String,
}

/// Everything the edge needs to run one merge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergeJob {
    /// Round.
    pub round: u64,
    /// Base checkpoint.
    pub base_hash: Digest,
    /// Collected Δs, sorted by node.
    pub contributions: Vec<CollectedGradient>,
}

/// Inputs to the machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// The eligible set at the round's start height.
    EligibleRead {
        /// Round.
        round: u64,
        /// The set.
        set: EligibleSet,
    },
    /// An announcement arrived (signature already verified by the edge).
    Announcement(RoundAnnouncement),
    /// The announcement reached `peer` (leader).
    AnnouncementDelivered {
        /// Round.
        round: u64,
        /// Peer.
        peer: NodeId,
    },
    /// `peer` could not be reached with the announcement (leader).
    PeerUnreachable {
        /// Round.
        round: u64,
        /// Peer.
        peer: NodeId,
    },
    /// `peer` went away (connection lost, heartbeat missed).
    PeerDropped {
        /// Peer.
        peer: NodeId,
    },
    /// Inner training finished and the Δ is stored.
    TrainingDone {
        /// Round whose announcement started the training.
        round: u64,
        /// Base trained from.
        base_hash: Digest,
        /// Hash of the decoded Δ.
        delta_hash: Digest,
        /// Where the compressed Δ is stored.
        content_address: String,
        /// Local loss.
        local_loss: f32,
        /// Data size (tokens trained on).
        data_size: u64,
        /// Inner steps trained.
        #[serde(default)]
        steps: u64,
    },
    /// Inner training failed (the edge says why).
    TrainingFailed {
        /// Round.
        round: u64,
        /// Why.
        detail: String,
    },
    /// A worker's GradientReady arrived (leader).
    GradientReady(GradientReady),
    /// The edge finished the merge (leader).
    MergeDone {
        /// Round.
        round: u64,
        /// Its record.
        record: RoundRecord,
    },
    /// The merge could not be made (leader).
    MergeFailed {
        /// Round.
        round: u64,
        /// Why.
        detail: String,
    },
    /// The leader's merged notice arrived.
    Merged(RoundMerged),
    /// The leader's abort notice arrived.
    Aborted(RoundAborted),
    /// Time passed (answers [`Action::WakeAt`]).
    Tick,
}

/// Why an event was not acted on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Rejection {
    /// The event is for another round.
    #[error("{what} for round {got} ignored: this node is in round {current}")]
    WrongRound {
        /// What.
        what: &'static str,
        /// Its round.
        got: u64,
        /// Ours.
        current: u64,
    },
    /// The event does not fit the current phase.
    #[error("{what} ignored in phase {phase}")]
    WrongPhase {
        /// What.
        what: &'static str,
        /// Our phase.
        phase: &'static str,
    },
    /// Another job.
    #[error("message for job {got} ignored: this node runs job {expected}")]
    WrongJob {
        /// Theirs.
        got: u64,
        /// Ours.
        expected: u64,
    },
    /// Sender is not the elected leader.
    #[error("{from} is not the leader of round {round} ({leader} is)")]
    NotLeader {
        /// Sender.
        from: NodeId,
        /// Round.
        round: u64,
        /// Elected.
        leader: NodeId,
    },
    /// Sender not in the eligible set.
    #[error("{from} is not eligible in round {round}")]
    NotEligible {
        /// Sender.
        from: NodeId,
        /// Round.
        round: u64,
    },
    /// Second Δ from one sender in a round.
    #[error("{from} already contributed to round {round}")]
    DuplicateSender {
        /// Sender.
        from: NodeId,
        /// Round.
        round: u64,
    },
    /// This Δ was already counted.
    #[error("delta {delta} from {from} was already counted")]
    DuplicateDelta {
        /// Sender.
        from: NodeId,
        /// Δ hash.
        delta: Digest,
    },
    /// Base unknown or older than `max_staleness` merges.
    #[error("{from} trained on base {base}, which is unknown or more than {max} merges old")]
    StaleBase {
        /// Sender.
        from: NodeId,
        /// Its base.
        base: Digest,
        /// Limit.
        max: u32,
    },
    /// NaN/Inf loss.
    #[error("{from} reported a non-finite local loss")]
    NonFiniteLoss {
        /// Sender.
        from: NodeId,
    },
    /// Content address empty or too long.
    #[error(
        "{from} sent a content address of {len} bytes (must be 1..={MAX_CONTENT_ADDRESS_LEN})"
    )]
    BadContentAddress {
        /// Sender.
        from: NodeId,
        /// Its length.
        len: usize,
    },
    /// Announcement fields inconsistent with our schedule.
    #[error("announcement rejected: {detail}")]
    BadAnnouncement {
        /// What.
        detail: String,
    },
    /// Eligible set for the wrong height.
    #[error("eligible set read at height {got}, round {round} starts at {expected}")]
    WrongHeight {
        /// Round.
        round: u64,
        /// Expected height.
        expected: u64,
        /// Given.
        got: u64,
    },
    /// Merge record does not match the collection.
    #[error("merge record rejected: {detail}")]
    BadRecord {
        /// What.
        detail: String,
    },
    /// Election impossible.
    #[error("round {round} has no eligible nodes")]
    NoEligible {
        /// Round.
        round: u64,
    },
    /// Buffer for future-round messages is full.
    #[error("message for a later round dropped: buffer full")]
    BufferFull,
    /// The GradientReady claims more steps or tokens than the job's rounds allow (the chain
    /// would refuse a record accepting it).
    #[error("{from} claims more than a round allows: {detail}")]
    ClaimOutOfBound {
        /// Sender.
        from: NodeId,
        /// The bound violated.
        detail: String,
    },
}

/// Why a round ended without a merge on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundFailure {
    /// No announcement within the timeout: the leader is presumed dead.
    LeaderSilent {
        /// That leader.
        leader: NodeId,
    },
    /// Announced, but no merged checkpoint by deadline + grace.
    LeaderTimedOut {
        /// That leader.
        leader: NodeId,
    },
    /// Leader collected fewer than `min_contributions` by the deadline.
    NotEnoughContributions {
        /// How many.
        collected: usize,
    },
    /// The merge failed at the edge.
    MergeFailed {
        /// Why.
        detail: String,
    },
    /// The leader said the round is aborted.
    AbortedByLeader,
    /// Not eligible this round / nobody eligible.
    NotParticipating,
}

/// Outputs of the machine, for the edge to execute in order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Action {
    /// Read the eligible set at `height`, answer with [`Event::EligibleRead`].
    ReadEligible {
        /// Round.
        round: u64,
        /// Start height.
        height: u64,
    },
    /// Send the announcement to each peer; report delivery per peer.
    Announce {
        /// Peers.
        to: Vec<NodeId>,
        /// The announcement.
        announcement: RoundAnnouncement,
    },
    /// Run `steps` inner steps from checkpoint `base_hash`, store Δ, answer `TrainingDone`.
    TrainInner {
        /// Round.
        round: u64,
        /// Base checkpoint.
        base_hash: Digest,
        /// Inner steps.
        steps: u32,
    },
    /// Send a GradientReady to the leader.
    SendGradientReady {
        /// Leader.
        to: NodeId,
        /// The signal.
        signal: GradientReady,
    },
    /// Fetch the Δs, merge, store the checkpoint, answer `MergeDone`/`MergeFailed`.
    Merge(MergeJob),
    /// Tell peers the round merged.
    PublishMerged {
        /// Peers.
        to: Vec<NodeId>,
        /// Notice.
        merged: RoundMerged,
    },
    /// Submit `MsgRecordRound` with this record.
    RecordRound(RoundRecord),
    /// Tell peers the round is aborted.
    PublishAborted {
        /// Peers.
        to: Vec<NodeId>,
        /// Notice.
        aborted: RoundAborted,
    },
    /// Make `hash` the local base (fetch it if needed).
    AdoptCheckpoint {
        /// Round that produced it.
        round: u64,
        /// Checkpoint hash.
        hash: Digest,
    },
    /// Round ended without a merge here (for logs/metrics).
    RoundFailed {
        /// Round.
        round: u64,
        /// Why.
        why: RoundFailure,
    },
    /// Send [`Event::Tick`] at this time.
    WakeAt(u64),
    /// An event was ignored (log it; the p2p layer may score the sender).
    Rejected(Rejection),
}

/// The leader's collection state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Collection {
    /// The announcement sent.
    pub announcement: RoundAnnouncement,
    /// Eligible set of the round.
    pub set: EligibleSet,
    /// Announced, delivery outcome not known yet.
    pub pending: BTreeSet<NodeId>,
    /// Peers known to take part (the leader included).
    pub accepted: BTreeSet<NodeId>,
    /// Collected gradients by sender.
    pub gradients: BTreeMap<NodeId, CollectedGradient>,
    /// When the merge was requested (0 while collecting).
    pub merge_requested_at: u64,
}

impl Collection {
    /// How many gradients the leader waits for: the accepted reachable peers.
    pub fn needed(&self) -> usize {
        self.accepted.len()
    }

    /// How many it has.
    pub fn collected(&self) -> usize {
        self.gradients.len()
    }
}

/// Where the node is in the current round.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Phase {
    /// Waiting for the eligible set of the round.
    Opening,
    /// Worker: waiting for the leader's announcement until `until`.
    AwaitAnnouncement {
        /// Leader.
        leader: NodeId,
        /// Eligible set.
        set: EligibleSet,
        /// Timeout.
        until: u64,
    },
    /// Worker: announced; training or sent; waiting for the merge until `until`.
    Working {
        /// The announcement.
        announcement: RoundAnnouncement,
        /// Timeout (deadline + grace).
        until: u64,
    },
    /// Leader: collecting.
    Collecting(Collection),
    /// Leader: merge requested, waiting for the edge.
    Merging(Collection),
    /// Not eligible (or nobody is): waiting for the round to pass.
    Observing {
        /// The leader, if any.
        leader: Option<NodeId>,
        /// When to move on.
        until: u64,
    },
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::Opening => "opening",
            Phase::AwaitAnnouncement { .. } => "await-announcement",
            Phase::Working { .. } => "working",
            Phase::Collecting(_) => "collecting",
            Phase::Merging(_) => "merging",
            Phase::Observing { .. } => "observing",
        }
    }

    fn leader(&self) -> Option<&NodeId> {
        match self {
            Phase::AwaitAnnouncement { leader, .. } => Some(leader),
            Phase::Working { announcement, .. } => Some(&announcement.leader),
            Phase::Collecting(c) | Phase::Merging(c) => Some(&c.announcement.leader),
            Phase::Observing { leader, .. } => leader.as_ref(),
            Phase::Opening => None,
        }
    }
}

/// A finished training the node has not yet submitted (it outlasted its round).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Held {
    base_hash: Digest,
    delta_hash: Digest,
    content_address: String,
    local_loss: f32,
    data_size: u64,
    #[serde(default)]
    steps: u64,
}

/// One node's DiLoCo state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoundState {
    cfg: RoundConfig,
    round: u64,
    phase: Phase,
    /// Last merged checkpoint hash (the base of the next announcement this node would make).
    last_merged: Digest,
    /// Recent merged hashes, newest last (for staleness).
    recent_bases: Vec<Digest>,
    /// Every Δ hash collected here or seen in a merged record.
    counted: BTreeSet<Digest>,
    /// Round whose announcement started the training in flight.
    training: Option<u64>,
    /// A finished Δ waiting for a round to submit to.
    held: Option<Held>,
    /// Last round this node submitted a Δ to.
    submitted: Option<u64>,
    /// Messages for a round we have not opened yet.
    buffered: Vec<Event>,
    /// Merges this node requested, per round (invariant: ≤ 1).
    merges_requested: BTreeMap<u64, u32>,
}

impl RoundState {
    /// A node starting at `round` from checkpoint `base` (genesis or the chain's last record).
    /// Returns the first actions (read the eligible set).
    pub fn new(cfg: RoundConfig, round: u64, base: Digest) -> (Self, Vec<Action>) {
        let height = cfg.start_height(round);
        let s = Self {
            cfg,
            round,
            phase: Phase::Opening,
            last_merged: base,
            recent_bases: vec![base],
            counted: BTreeSet::new(),
            training: None,
            held: None,
            submitted: None,
            buffered: Vec::new(),
            merges_requested: BTreeMap::new(),
        };
        (s, vec![Action::ReadEligible { round, height }])
    }

    /// Current round.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// Current phase.
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Last merged checkpoint hash known here.
    pub fn last_merged(&self) -> Digest {
        self.last_merged
    }

    /// The configuration.
    pub fn config(&self) -> &RoundConfig {
        &self.cfg
    }

    /// Merges requested per round.
    pub fn merges_requested(&self) -> &BTreeMap<u64, u32> {
        &self.merges_requested
    }

    /// Checks the invariants listed in the module docs.
    pub fn check_invariants(&self) -> Result<(), String> {
        if let Some((r, n)) = self.merges_requested.iter().find(|(_, &n)| n > 1) {
            return Err(format!("{n} merges requested in round {r}"));
        }
        if let Phase::Collecting(c) | Phase::Merging(c) = &self.phase {
            let members: BTreeSet<&NodeId> = c.set.members.keys().collect();
            if !c.gradients.keys().all(|k| c.accepted.contains(k)) {
                return Err("a collected sender is not accepted".into());
            }
            if !c.accepted.iter().all(|k| members.contains(k)) {
                return Err("an accepted peer is not eligible".into());
            }
            if c.pending.iter().any(|p| c.accepted.contains(p)) {
                return Err("a peer is both pending and accepted".into());
            }
            if c.needed() > c.accepted.len() {
                return Err("needed exceeds accepted".into());
            }
            let hashes: BTreeSet<&Digest> = c.gradients.values().map(|g| &g.delta_hash).collect();
            if hashes.len() != c.gradients.len() {
                return Err("one delta collected twice".into());
            }
            if !hashes.iter().all(|h| self.counted.contains(h)) {
                return Err("a collected delta is not remembered as counted".into());
            }
            if !matches!(self.phase, Phase::Merging(_))
                && self.merges_requested.contains_key(&self.round)
            {
                return Err("collecting after the merge was requested".into());
            }
        }
        Ok(())
    }

    /// The transition function.
    pub fn step(mut self, event: Event, now: u64) -> (Self, Vec<Action>) {
        let mut out = Vec::new();
        self.handle(event, now, &mut out);
        (self, out)
    }

    fn handle(&mut self, event: Event, now: u64, out: &mut Vec<Action>) {
        match event {
            Event::EligibleRead { round, set } => self.on_eligible(round, set, now, out),
            Event::Announcement(a) => self.on_announcement(a, now, out),
            Event::AnnouncementDelivered { round, peer } => {
                self.on_delivery(round, peer, true, now, out)
            }
            Event::PeerUnreachable { round, peer } => {
                self.on_delivery(round, peer, false, now, out)
            }
            Event::PeerDropped { peer } => self.on_dropped(peer, now, out),
            Event::TrainingDone {
                round,
                base_hash,
                delta_hash,
                content_address,
                local_loss,
                data_size,
                steps,
            } => {
                if self.training != Some(round) {
                    out.push(Action::Rejected(Rejection::WrongPhase {
                        what: "training result",
                        phase: "no training in flight for that round",
                    }));
                    return;
                }
                self.training = None;
                self.held = Some(Held {
                    base_hash,
                    delta_hash,
                    content_address,
                    local_loss,
                    data_size,
                    steps,
                });
                self.submit_held(now, out);
            }
            Event::TrainingFailed { round, .. } => {
                if self.training == Some(round) {
                    self.training = None;
                }
            }
            Event::GradientReady(g) => self.on_gradient(g, now, out),
            Event::MergeDone { round, record } => self.on_merge_done(round, record, now, out),
            Event::MergeFailed { round, detail } => {
                if round != self.round || !matches!(self.phase, Phase::Merging(_)) {
                    out.push(Action::Rejected(Rejection::WrongPhase {
                        what: "merge failure",
                        phase: self.phase.name(),
                    }));
                    return;
                }
                self.abort_as_leader(RoundFailure::MergeFailed { detail }, now, out);
            }
            Event::Merged(m) => self.on_merged(m, now, out),
            Event::Aborted(a) => self.on_aborted(a, now, out),
            Event::Tick => self.on_tick(now, out),
        }
    }

    fn peers(&self, set: &EligibleSet) -> Vec<NodeId> {
        set.members
            .keys()
            .filter(|k| **k != self.cfg.me)
            .cloned()
            .collect()
    }

    fn advance(&mut self, now: u64, out: &mut Vec<Action>) {
        self.round = self.round.saturating_add(1);
        self.phase = Phase::Opening;
        let round = self.round;
        self.buffered
            .retain(|e| event_round(e).is_some_and(|r| r >= round));
        out.push(Action::ReadEligible {
            round,
            height: self.cfg.start_height(round),
        });
        let _ = now;
    }

    fn fail(&mut self, why: RoundFailure, now: u64, out: &mut Vec<Action>) {
        out.push(Action::RoundFailed {
            round: self.round,
            why,
        });
        self.advance(now, out);
    }

    fn buffer(&mut self, e: Event, out: &mut Vec<Action>) {
        if self.buffered.len() >= MAX_BUFFERED {
            out.push(Action::Rejected(Rejection::BufferFull));
        } else {
            self.buffered.push(e);
        }
    }

    /// Messages for `r` while we are not ready for them: buffer if r is this (opening) round or
    /// the next one; otherwise reject.
    fn defer_or_reject(&mut self, what: &'static str, e: Event, r: u64, out: &mut Vec<Action>) {
        let opening_this = r == self.round && matches!(self.phase, Phase::Opening);
        if opening_this || r == self.round.saturating_add(1) {
            self.buffer(e, out);
        } else {
            out.push(Action::Rejected(Rejection::WrongRound {
                what,
                got: r,
                current: self.round,
            }));
        }
    }

    fn on_eligible(&mut self, round: u64, set: EligibleSet, now: u64, out: &mut Vec<Action>) {
        if round != self.round || !matches!(self.phase, Phase::Opening) {
            out.push(Action::Rejected(Rejection::WrongRound {
                what: "eligible set",
                got: round,
                current: self.round,
            }));
            return;
        }
        let expected = self.cfg.start_height(round);
        if set.height != expected {
            out.push(Action::Rejected(Rejection::WrongHeight {
                round,
                expected,
                got: set.height,
            }));
            return;
        }
        let leader = match elect_leader(&set.ids(), round, &set.block_hash, self.cfg.rule) {
            Ok(l) => l,
            Err(_) => {
                out.push(Action::Rejected(Rejection::NoEligible { round }));
                let until = now.saturating_add(self.cfg.announce_timeout_ms);
                self.phase = Phase::Observing {
                    leader: None,
                    until,
                };
                out.push(Action::WakeAt(until));
                return;
            }
        };
        if leader == self.cfg.me {
            let deadline = now.saturating_add(self.cfg.round_ms);
            let announcement = RoundAnnouncement {
                job_id: self.cfg.job_id,
                round,
                leader: leader.clone(),
                start_height: expected,
                inner_steps: self.cfg.inner_steps,
                deadline,
                base_hash: self.last_merged,
            };
            let peers = self.peers(&set);
            // Collection state first, then the broadcast.
            self.phase = Phase::Collecting(Collection {
                announcement: announcement.clone(),
                set,
                pending: peers.iter().cloned().collect(),
                accepted: BTreeSet::from([leader]),
                gradients: BTreeMap::new(),
                merge_requested_at: 0,
            });
            if !peers.is_empty() {
                out.push(Action::Announce {
                    to: peers,
                    announcement: announcement.clone(),
                });
            }
            out.push(Action::WakeAt(deadline));
            self.start_work(&announcement, now, out);
        } else if set.members.contains_key(&self.cfg.me) {
            let until = now.saturating_add(self.cfg.announce_timeout_ms);
            self.phase = Phase::AwaitAnnouncement { leader, set, until };
            out.push(Action::WakeAt(until));
        } else {
            let until = now.saturating_add(
                self.cfg
                    .announce_timeout_ms
                    .saturating_add(self.cfg.round_ms)
                    .saturating_add(self.cfg.merge_grace_ms),
            );
            self.phase = Phase::Observing {
                leader: Some(leader),
                until,
            };
            out.push(Action::WakeAt(until));
        }
        // Replay what arrived early for this round.
        let (now_round, later): (Vec<Event>, Vec<Event>) = std::mem::take(&mut self.buffered)
            .into_iter()
            .partition(|e| event_round(e) == Some(round));
        self.buffered = later;
        for e in now_round {
            if self.round != round {
                break;
            }
            self.handle(e, now, out);
        }
    }

    /// Train (or submit a held result) for the announced round.
    fn start_work(&mut self, a: &RoundAnnouncement, now: u64, out: &mut Vec<Action>) {
        if self.held.is_some() {
            self.submit_held(now, out);
        } else if self.training.is_none() {
            self.training = Some(a.round);
            out.push(Action::TrainInner {
                round: a.round,
                base_hash: a.base_hash,
                steps: a.inner_steps,
            });
        }
    }

    /// Submits the held Δ to the current round if it has an announcement and we have not
    /// submitted to it yet.
    fn submit_held(&mut self, now: u64, out: &mut Vec<Action>) {
        if self.submitted == Some(self.round) {
            return;
        }
        let leader = match &self.phase {
            Phase::Working { announcement, .. } => announcement.leader.clone(),
            Phase::Collecting(_) => self.cfg.me.clone(),
            _ => return,
        };
        let Some(h) = self.held.take() else { return };
        let signal = GradientReady {
            job_id: self.cfg.job_id,
            round: self.round,
            from: self.cfg.me.clone(),
            base_hash: h.base_hash,
            delta_hash: h.delta_hash,
            content_address: h.content_address,
            local_loss: h.local_loss,
            data_size: h.data_size,
            steps: h.steps,
            signature: String::new(),
        };
        self.submitted = Some(self.round);
        if leader == self.cfg.me {
            self.on_gradient(signal, now, out);
        } else {
            out.push(Action::SendGradientReady { to: leader, signal });
        }
    }

    fn on_announcement(&mut self, a: RoundAnnouncement, now: u64, out: &mut Vec<Action>) {
        if a.job_id != self.cfg.job_id {
            out.push(Action::Rejected(Rejection::WrongJob {
                got: a.job_id,
                expected: self.cfg.job_id,
            }));
            return;
        }
        if a.round != self.round || matches!(self.phase, Phase::Opening) {
            let r = a.round;
            self.defer_or_reject("announcement", Event::Announcement(a), r, out);
            return;
        }
        let Phase::AwaitAnnouncement { leader, .. } = &self.phase else {
            out.push(Action::Rejected(Rejection::WrongPhase {
                what: "announcement",
                phase: self.phase.name(),
            }));
            return;
        };
        if &a.leader != leader {
            out.push(Action::Rejected(Rejection::NotLeader {
                from: a.leader,
                round: a.round,
                leader: leader.clone(),
            }));
            return;
        }
        let expected = self.cfg.start_height(a.round);
        if a.start_height != expected || a.inner_steps == 0 {
            out.push(Action::Rejected(Rejection::BadAnnouncement {
                detail: format!(
                    "start height {} (expected {expected}), inner steps {}",
                    a.start_height, a.inner_steps
                ),
            }));
            return;
        }
        let until = a.deadline.max(now).saturating_add(self.cfg.merge_grace_ms);
        self.phase = Phase::Working {
            announcement: a.clone(),
            until,
        };
        out.push(Action::WakeAt(until));
        self.start_work(&a, now, out);
    }

    fn on_delivery(&mut self, round: u64, peer: NodeId, ok: bool, now: u64, out: &mut Vec<Action>) {
        let Phase::Collecting(c) = &mut self.phase else {
            return;
        };
        if round != self.round {
            return;
        }
        if c.pending.remove(&peer) && ok {
            c.accepted.insert(peer);
        }
        self.try_complete(now, out);
    }

    fn on_dropped(&mut self, peer: NodeId, now: u64, out: &mut Vec<Action>) {
        let Phase::Collecting(c) = &mut self.phase else {
            return;
        };
        if peer == self.cfg.me || c.gradients.contains_key(&peer) {
            return;
        }
        c.pending.remove(&peer);
        c.accepted.remove(&peer);
        self.try_complete(now, out);
    }

    fn staleness(&self, base: &Digest) -> Option<u32> {
        let pos = self.recent_bases.iter().rposition(|b| b == base)?;
        u32::try_from(self.recent_bases.len() - 1 - pos).ok()
    }

    fn on_gradient(&mut self, g: GradientReady, now: u64, out: &mut Vec<Action>) {
        let reject = |out: &mut Vec<Action>, r| out.push(Action::Rejected(r));
        if g.job_id != self.cfg.job_id {
            return reject(
                out,
                Rejection::WrongJob {
                    got: g.job_id,
                    expected: self.cfg.job_id,
                },
            );
        }
        if g.round != self.round {
            return reject(
                out,
                Rejection::WrongRound {
                    what: "gradient",
                    got: g.round,
                    current: self.round,
                },
            );
        }
        let staleness = self.staleness(&g.base_hash);
        let max = self.cfg.policy.max_staleness;
        let seen = self.counted.contains(&g.delta_hash);
        let Phase::Collecting(c) = &mut self.phase else {
            return reject(
                out,
                Rejection::WrongPhase {
                    what: "gradient",
                    phase: self.phase.name(),
                },
            );
        };
        let Some(member) = c.set.members.get(&g.from) else {
            return reject(
                out,
                Rejection::NotEligible {
                    from: g.from,
                    round: g.round,
                },
            );
        };
        if c.gradients.contains_key(&g.from) {
            return reject(
                out,
                Rejection::DuplicateSender {
                    from: g.from,
                    round: g.round,
                },
            );
        }
        if seen {
            return reject(
                out,
                Rejection::DuplicateDelta {
                    from: g.from,
                    delta: g.delta_hash,
                },
            );
        }
        if !g.local_loss.is_finite() {
            return reject(out, Rejection::NonFiniteLoss { from: g.from });
        }
        if g.content_address.is_empty() || g.content_address.len() > MAX_CONTENT_ADDRESS_LEN {
            let len = g.content_address.len();
            return reject(out, Rejection::BadContentAddress { from: g.from, len });
        }
        if let Some(bound) = &self.cfg.claim_bound {
            if let Err(e) = bound.check(g.steps, g.data_size) {
                return reject(
                    out,
                    Rejection::ClaimOutOfBound {
                        from: g.from,
                        detail: e.to_string(),
                    },
                );
            }
        }
        let staleness = match staleness {
            Some(s) if s <= max => s,
            _ => {
                return reject(
                    out,
                    Rejection::StaleBase {
                        from: g.from,
                        base: g.base_hash,
                        max,
                    },
                )
            }
        };
        let quality_bps = member.quality_bps;
        c.pending.remove(&g.from);
        c.accepted.insert(g.from.clone());
        self.counted.insert(g.delta_hash);
        c.gradients.insert(
            g.from.clone(),
            CollectedGradient {
                node: g.from,
                delta_hash: g.delta_hash,
                content_address: g.content_address,
                data_size: g.data_size,
                quality_bps,
                staleness,
                local_loss: g.local_loss,
                base_hash: g.base_hash,
                steps: g.steps,
                signature: g.signature,
            },
        );
        self.try_complete(now, out);
    }

    /// Leader: merge when everyone reachable has answered, or at the deadline.
    fn try_complete(&mut self, now: u64, out: &mut Vec<Action>) {
        let Phase::Collecting(c) = &self.phase else {
            return;
        };
        let min = self.cfg.policy.min_contributions.max(1) as usize;
        let all_in = c.pending.is_empty() && c.collected() >= c.needed();
        let at_deadline = now >= c.announcement.deadline;
        if !(all_in || at_deadline) {
            return;
        }
        if c.collected() < min {
            if at_deadline {
                let collected = c.collected();
                self.abort_as_leader(RoundFailure::NotEnoughContributions { collected }, now, out);
            }
            return;
        }
        let Phase::Collecting(mut c) = std::mem::replace(&mut self.phase, Phase::Opening) else {
            return;
        };
        c.merge_requested_at = now;
        *self.merges_requested.entry(self.round).or_default() += 1;
        out.push(Action::WakeAt(
            c.announcement
                .deadline
                .max(now)
                .saturating_add(self.cfg.merge_grace_ms),
        ));
        out.push(Action::Merge(MergeJob {
            round: self.round,
            base_hash: c.announcement.base_hash,
            contributions: c.gradients.values().cloned().collect(),
        }));
        self.phase = Phase::Merging(c);
    }

    fn abort_as_leader(&mut self, why: RoundFailure, now: u64, out: &mut Vec<Action>) {
        if let Phase::Collecting(c) | Phase::Merging(c) = &self.phase {
            out.push(Action::PublishAborted {
                to: self.peers(&c.set),
                aborted: RoundAborted {
                    job_id: self.cfg.job_id,
                    round: self.round,
                    leader: self.cfg.me.clone(),
                },
            });
        }
        self.fail(why, now, out);
    }

    fn on_merge_done(&mut self, round: u64, record: RoundRecord, now: u64, out: &mut Vec<Action>) {
        let Phase::Merging(c) = &self.phase else {
            out.push(Action::Rejected(Rejection::WrongPhase {
                what: "merge result",
                phase: self.phase.name(),
            }));
            return;
        };
        if round != self.round || record.round != round || record.job_id != self.cfg.job_id {
            out.push(Action::Rejected(Rejection::BadRecord {
                detail: format!("record for job {} round {}", record.job_id, record.round),
            }));
            return;
        }
        let consistent = record.base_hash == c.announcement.base_hash
            && record.leader == self.cfg.me
            && record.accepted.iter().all(|e| {
                c.gradients
                    .get(&e.node)
                    .is_some_and(|g| g.delta_hash == e.delta_hash)
            });
        if !consistent {
            out.push(Action::Rejected(Rejection::BadRecord {
                detail: "record does not match the collection".into(),
            }));
            return;
        }
        out.push(Action::PublishMerged {
            to: self.peers(&c.set),
            merged: RoundMerged {
                record: record.clone(),
            },
        });
        out.push(Action::RecordRound(record.clone()));
        self.adopt(&record, now, out);
    }

    fn adopt(&mut self, record: &RoundRecord, now: u64, out: &mut Vec<Action>) {
        self.last_merged = record.merged_hash;
        self.recent_bases.push(record.merged_hash);
        let keep = self.cfg.policy.max_staleness as usize + 1;
        if self.recent_bases.len() > keep {
            let cut = self.recent_bases.len() - keep;
            self.recent_bases.drain(..cut);
        }
        self.counted
            .extend(record.accepted.iter().map(|e| e.delta_hash));
        out.push(Action::AdoptCheckpoint {
            round: record.round,
            hash: record.merged_hash,
        });
        self.advance(now, out);
    }

    fn on_merged(&mut self, m: RoundMerged, now: u64, out: &mut Vec<Action>) {
        let r = m.record.round;
        if m.record.job_id != self.cfg.job_id {
            out.push(Action::Rejected(Rejection::WrongJob {
                got: m.record.job_id,
                expected: self.cfg.job_id,
            }));
            return;
        }
        if r != self.round || matches!(self.phase, Phase::Opening) {
            self.defer_or_reject("merged notice", Event::Merged(m), r, out);
            return;
        }
        match &self.phase {
            Phase::AwaitAnnouncement { leader, .. }
            | Phase::Observing {
                leader: Some(leader),
                ..
            } if *leader == m.record.leader => {}
            Phase::Working { announcement, .. } if announcement.leader == m.record.leader => {}
            _ => {
                out.push(Action::Rejected(Rejection::NotLeader {
                    from: m.record.leader.clone(),
                    round: r,
                    leader: self
                        .phase
                        .leader()
                        .cloned()
                        .unwrap_or_else(|| self.cfg.me.clone()),
                }));
                return;
            }
        }
        self.adopt(&m.record, now, out);
    }

    fn on_aborted(&mut self, a: RoundAborted, now: u64, out: &mut Vec<Action>) {
        if a.round != self.round || matches!(self.phase, Phase::Opening) {
            let r = a.round;
            self.defer_or_reject("abort notice", Event::Aborted(a), r, out);
            return;
        }
        let is_leader = self.phase.leader() == Some(&a.leader) && a.leader != self.cfg.me;
        if !is_leader || a.job_id != self.cfg.job_id {
            out.push(Action::Rejected(Rejection::NotLeader {
                from: a.leader,
                round: a.round,
                leader: self
                    .phase
                    .leader()
                    .cloned()
                    .unwrap_or_else(|| self.cfg.me.clone()),
            }));
            return;
        }
        self.fail(RoundFailure::AbortedByLeader, now, out);
    }

    fn on_tick(&mut self, now: u64, out: &mut Vec<Action>) {
        match &self.phase {
            Phase::AwaitAnnouncement { leader, until, .. } if now >= *until => {
                let leader = leader.clone();
                self.fail(RoundFailure::LeaderSilent { leader }, now, out);
            }
            Phase::Working {
                announcement,
                until,
            } if now >= *until => {
                let leader = announcement.leader.clone();
                self.fail(RoundFailure::LeaderTimedOut { leader }, now, out);
            }
            Phase::Observing { until, .. } if now >= *until => {
                self.fail(RoundFailure::NotParticipating, now, out);
            }
            Phase::Collecting(_) => self.try_complete(now, out),
            Phase::Merging(c)
                if now
                    >= c.announcement
                        .deadline
                        .max(c.merge_requested_at)
                        .saturating_add(self.cfg.merge_grace_ms) =>
            {
                self.abort_as_leader(
                    RoundFailure::MergeFailed {
                        detail: "the merge did not finish within the grace period".into(),
                    },
                    now,
                    out,
                );
            }
            _ => {}
        }
    }
}

fn event_round(e: &Event) -> Option<u64> {
    match e {
        Event::Announcement(a) => Some(a.round),
        Event::Merged(m) => Some(m.record.round),
        Event::Aborted(a) => Some(a.round),
        _ => None,
    }
}
