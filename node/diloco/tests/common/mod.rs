//! A deterministic simulated network of DiLoCo nodes for the integration tests.
//!
//! Each node runs the real [`RoundState`]; the simulated edge does what a worker daemon does:
//! it trains for real (H steps of gradient descent on the node's own quadratic objective
//! `½‖θ − c_i‖²`, i.e. a different "domain" per node), compresses Δ with int8 error feedback,
//! stores it under a content address, runs the real merge, and keeps a simulated chain (the
//! eligible set per round, `MsgRecordRound` records). Message latencies come from a seeded RNG,
//! so one seed is one event order. Every step checks the node invariants; every record is
//! re-verified with `verify_merge` and checked against the global invariants.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use magnet_diloco::compress::{ByteLedger, Compressed, CompressionConfig, Compressor};
use magnet_diloco::eligible::{EligibleSet, Member};
use magnet_diloco::merge::{merge, verify_merge, Contribution, MergeMeta, RoundRecord};
use magnet_diloco::round::{Action, Event, Rejection, RoundConfig, RoundFailure, RoundState};
use magnet_diloco::{delta_hash, Checkpoint, Digest, LeaderRule, MergePolicy, NodeId};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const INNER_LR: f32 = 0.05;

/// How a node behaves.
#[derive(Clone, Debug)]
pub struct NodeSpec {
    pub train_ms: u64,
    pub poison_nan: bool,
    pub data_size: u64,
    pub quality_bps: u32,
}

impl Default for NodeSpec {
    fn default() -> Self {
        Self {
            train_ms: 300,
            poison_nan: false,
            data_size: 4096,
            quality_bps: 10_000,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub rule: LeaderRule,
    pub dim: usize,
    pub inner_steps: u32,
    pub round_ms: u64,
    pub announce_timeout_ms: u64,
    pub merge_grace_ms: u64,
    pub max_latency_ms: u64,
    /// The chain drops a dead node from the eligible set this long after it died.
    pub chain_removal_ms: u64,
    pub compression: CompressionConfig,
    pub policy: MergePolicy,
    /// Chance (parts per million) that the network delivers a message twice.
    pub duplicate_ppm: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            rule: LeaderRule::RoundRobin,
            dim: 64,
            inner_steps: 20,
            round_ms: 1000,
            announce_timeout_ms: 600,
            merge_grace_ms: 600,
            max_latency_ms: 40,
            chain_removal_ms: 5_000,
            compression: CompressionConfig {
                chunk: 16,
                top_k_ppm: None,
            },
            policy: MergePolicy::default(),
            duplicate_ppm: 0,
        }
    }
}

enum Item {
    Deliver(NodeId, Event),
    Kill { node: NodeId, notify: bool },
}

enum Stored {
    Int8(Vec<u8>),
    Raw(Vec<f32>),
}

struct Edge {
    spec: NodeSpec,
    target: Vec<f32>,
    compressor: Compressor,
}

pub struct Sim {
    pub cfg: SimConfig,
    pub now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Item>,
    pub nodes: BTreeMap<NodeId, Option<RoundState>>,
    edges: BTreeMap<NodeId, Edge>,
    pub died_at: BTreeMap<NodeId, u64>,
    pub checkpoints: BTreeMap<Digest, Checkpoint>,
    deltas: BTreeMap<String, Stored>,
    eligible: BTreeMap<u64, EligibleSet>,
    pub records: Vec<RoundRecord>,
    /// The Δs each merge was made from, by round (what a verifier fetches by hash).
    pub merge_inputs: BTreeMap<u64, Vec<Contribution>>,
    pub failures: Vec<(NodeId, u64, RoundFailure)>,
    pub rejections: Vec<(NodeId, Rejection)>,
    pub ledgers: BTreeMap<NodeId, ByteLedger>,
    pub genesis: Digest,
    counted: BTreeSet<Digest>,
    rng: ChaCha8Rng,
    pub steps: u64,
}

pub fn node_id(i: usize) -> NodeId {
    NodeId::new(format!("node-{i:016x}")).unwrap()
}

impl Sim {
    pub fn new(cfg: SimConfig, specs: Vec<NodeSpec>, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let genesis_ckpt = Checkpoint::new((0..cfg.dim).map(|j| (j as f32 * 0.1).sin()).collect());
        let genesis = genesis_ckpt.hash();
        let mut sim = Self {
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: BTreeMap::new(),
            edges: BTreeMap::new(),
            died_at: BTreeMap::new(),
            checkpoints: BTreeMap::from([(genesis, genesis_ckpt)]),
            deltas: BTreeMap::new(),
            eligible: BTreeMap::new(),
            records: Vec::new(),
            merge_inputs: BTreeMap::new(),
            failures: Vec::new(),
            rejections: Vec::new(),
            ledgers: BTreeMap::new(),
            genesis,
            counted: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5eed),
            steps: 0,
            cfg,
        };
        let mut first = Vec::new();
        for (i, spec) in specs.into_iter().enumerate() {
            let id = node_id(i);
            // Each node's own "domain": a different optimum.
            let target: Vec<f32> = (0..sim.cfg.dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let compressor = Compressor::new(sim.cfg.compression, sim.cfg.dim).unwrap();
            sim.edges.insert(
                id.clone(),
                Edge {
                    spec,
                    target,
                    compressor,
                },
            );
            let rc = RoundConfig {
                me: id.clone(),
                job_id: 7,
                rule: sim.cfg.rule,
                inner_steps: sim.cfg.inner_steps,
                first_height: 10,
                blocks_per_round: 5,
                round_ms: sim.cfg.round_ms,
                announce_timeout_ms: sim.cfg.announce_timeout_ms,
                merge_grace_ms: sim.cfg.merge_grace_ms,
                policy: sim.cfg.policy,
                claim_bound: None,
            };
            let (state, actions) = RoundState::new(rc, 0, genesis);
            sim.nodes.insert(id.clone(), Some(state));
            sim.ledgers.insert(id.clone(), ByteLedger::default());
            first.push((id, actions));
        }
        for (id, actions) in first {
            sim.execute(&id, actions);
        }
        sim
    }

    fn push(&mut self, at: u64, item: Item) {
        self.seq += 1;
        self.queue.insert((at, self.seq), item);
    }

    /// A network message: random latency, sometimes delivered twice.
    fn send(&mut self, to: NodeId, event: Event) {
        let d = self.latency();
        if self.rng.gen_range(0..1_000_000) < self.cfg.duplicate_ppm {
            let d2 = self.latency();
            self.push(self.now + d + d2, Item::Deliver(to.clone(), event.clone()));
        }
        self.push(self.now + d, Item::Deliver(to, event));
    }

    fn latency(&mut self) -> u64 {
        1 + self.rng.gen_range(0..self.cfg.max_latency_ms.max(1))
    }

    fn alive(&self, id: &NodeId) -> bool {
        matches!(self.nodes.get(id), Some(Some(_)))
    }

    pub fn kill_at(&mut self, at: u64, node: NodeId, notify: bool) {
        self.push(at, Item::Kill { node, notify });
    }

    /// The global objective: mean over nodes of ½‖θ − c_i‖².
    pub fn global_loss(&self, params: &[f32]) -> f64 {
        let n = self.edges.len() as f64;
        self.edges
            .values()
            .map(|e| {
                params
                    .iter()
                    .zip(&e.target)
                    .map(|(p, c)| 0.5 * f64::from(p - c).powi(2))
                    .sum::<f64>()
            })
            .sum::<f64>()
            / n
    }

    /// Leader the chain view elects for a round (if the round has been opened).
    pub fn eligible_set(&self, round: u64) -> Option<&EligibleSet> {
        self.eligible.get(&round)
    }

    pub fn record_for(&self, round: u64) -> Option<&RoundRecord> {
        self.records.iter().find(|r| r.round == round)
    }

    fn chain_view(&self, height: u64) -> EligibleSet {
        let members = self
            .edges
            .iter()
            .filter(|(id, _)| {
                self.died_at
                    .get(*id)
                    .is_none_or(|&t| self.now < t + self.cfg.chain_removal_ms)
            })
            .map(|(id, e)| {
                (
                    id.clone(),
                    Member {
                        quality_bps: e.spec.quality_bps,
                    },
                )
            })
            .collect();
        EligibleSet {
            height,
            block_hash: Digest::domain_hash("block", &[&height.to_be_bytes()]),
            members,
        }
    }

    pub fn run_until(&mut self, end: u64) {
        while let Some((&(at, seq), _)) = self.queue.iter().next() {
            if at > end {
                break;
            }
            let item = self.queue.remove(&(at, seq)).unwrap();
            self.now = at;
            match item {
                Item::Kill { node, notify } => {
                    if let Some(slot) = self.nodes.get_mut(&node) {
                        *slot = None;
                    }
                    self.died_at.insert(node.clone(), at);
                    if notify {
                        let peers: Vec<NodeId> = self.nodes.keys().cloned().collect();
                        for p in peers {
                            if p != node {
                                let d = self.latency();
                                self.push(
                                    at + d,
                                    Item::Deliver(p, Event::PeerDropped { peer: node.clone() }),
                                );
                            }
                        }
                    }
                }
                Item::Deliver(to, event) => {
                    let Some(Some(state)) = self.nodes.remove(&to) else {
                        continue; // dead: the message is lost
                    };
                    if std::env::var("SIM_TRACE").is_ok() {
                        eprintln!("t={at} -> {to}: {event:?}");
                    }
                    let (state, actions) = state.step(event, at);
                    if std::env::var("SIM_TRACE").is_ok() {
                        eprintln!("    actions {actions:?}");
                    }
                    if let Err(e) = state.check_invariants() {
                        panic!("invariant broken on {to} at t={at}: {e}");
                    }
                    self.nodes.insert(to.clone(), Some(state));
                    self.steps += 1;
                    self.execute(&to, actions);
                }
            }
        }
        self.now = end;
    }

    fn execute(&mut self, me: &NodeId, actions: Vec<Action>) {
        let now = self.now;
        for action in actions {
            match action {
                Action::ReadEligible { round, height } => {
                    let view = self.chain_view(height);
                    let set = self.eligible.entry(round).or_insert(view).clone();
                    self.push(
                        now + 1,
                        Item::Deliver(me.clone(), Event::EligibleRead { round, set }),
                    );
                }
                Action::Announce { to, announcement } => {
                    for peer in to {
                        let d = self.latency();
                        if self.alive(&peer) {
                            self.send(peer.clone(), Event::Announcement(announcement.clone()));
                            self.push(
                                now + 2 * d,
                                Item::Deliver(
                                    me.clone(),
                                    Event::AnnouncementDelivered {
                                        round: announcement.round,
                                        peer,
                                    },
                                ),
                            );
                        } else {
                            self.push(
                                now + 3 * d,
                                Item::Deliver(
                                    me.clone(),
                                    Event::PeerUnreachable {
                                        round: announcement.round,
                                        peer,
                                    },
                                ),
                            );
                        }
                    }
                }
                Action::TrainInner {
                    round,
                    base_hash,
                    steps,
                } => {
                    let event = self.train(me, round, base_hash, steps);
                    let t = self.edges[me].spec.train_ms;
                    self.push(now + t, Item::Deliver(me.clone(), event));
                }
                Action::SendGradientReady { to, signal } => {
                    self.send(to, Event::GradientReady(signal));
                }
                Action::Merge(job) => {
                    let event = self.run_merge(me, &job);
                    self.push(now + 5, Item::Deliver(me.clone(), event));
                }
                Action::PublishMerged { to, merged } => {
                    for peer in to {
                        self.send(peer, Event::Merged(merged.clone()));
                    }
                }
                Action::RecordRound(record) => self.record_on_chain(record),
                Action::PublishAborted { to, aborted } => {
                    for peer in to {
                        self.send(peer, Event::Aborted(aborted.clone()));
                    }
                }
                Action::AdoptCheckpoint { hash, .. } => {
                    assert!(
                        self.checkpoints.contains_key(&hash),
                        "adopted an unknown checkpoint"
                    );
                    let led = self.ledgers.get_mut(me).unwrap();
                    led.down += 4 * self.cfg.dim as u64;
                }
                Action::RoundFailed { round, why } => self.failures.push((me.clone(), round, why)),
                Action::WakeAt(t) => self.push(t.max(now), Item::Deliver(me.clone(), Event::Tick)),
                Action::Rejected(r) => self.rejections.push((me.clone(), r)),
            }
        }
    }

    fn train(&mut self, me: &NodeId, round: u64, base_hash: Digest, steps: u32) -> Event {
        let Some(base) = self.checkpoints.get(&base_hash).cloned() else {
            return Event::TrainingFailed {
                round,
                detail: "base checkpoint not found".into(),
            };
        };
        let edge = self.edges.get_mut(me).unwrap();
        let mut theta = base.params.clone();
        for _ in 0..steps {
            for (t, c) in theta.iter_mut().zip(&edge.target) {
                *t -= INNER_LR * (*t - c);
            }
        }
        let local_loss: f32 = theta
            .iter()
            .zip(&edge.target)
            .map(|(t, c)| 0.5 * (t - c) * (t - c))
            .sum();
        let delta = magnet_diloco::pseudo_gradient(&base.params, &theta).unwrap();
        let (stored, decoded) = if edge.spec.poison_nan {
            let mut d = delta;
            d[1] = f32::NAN;
            (Stored::Raw(d.clone()), d)
        } else {
            let c = edge.compressor.compress(&delta).unwrap();
            let bytes = c.to_bytes();
            let decoded = Compressed::from_bytes(&bytes).unwrap().decode();
            (Stored::Int8(bytes), decoded)
        };
        let up = match &stored {
            Stored::Int8(b) => b.len() as u64,
            Stored::Raw(v) => 4 * v.len() as u64,
        };
        let cid = match &stored {
            Stored::Int8(b) => Digest::domain_hash("cid", &[b]).to_hex(),
            Stored::Raw(_) => format!("raw-{}", delta_hash(&decoded).to_hex()),
        };
        self.deltas.insert(cid.clone(), stored);
        self.ledgers.get_mut(me).unwrap().up += up;
        Event::TrainingDone {
            round,
            base_hash,
            delta_hash: delta_hash(&decoded),
            content_address: cid,
            local_loss,
            data_size: edge.spec.data_size,
            steps: u64::from(steps),
        }
    }

    fn fetch(&self, cid: &str) -> Option<Vec<f32>> {
        match self.deltas.get(cid)? {
            Stored::Int8(b) => Compressed::from_bytes(b).ok().map(|c| c.decode()),
            Stored::Raw(v) => Some(v.clone()),
        }
    }

    fn contributions(&self, job: &magnet_diloco::round::MergeJob) -> Vec<Contribution> {
        job.contributions
            .iter()
            .filter_map(|g| {
                Some(Contribution {
                    node: g.node.clone(),
                    declared_hash: g.delta_hash,
                    delta: self.fetch(&g.content_address)?,
                    data_size: g.data_size,
                    quality_bps: g.quality_bps,
                    staleness: g.staleness,
                    base_hash: g.base_hash,
                    steps: g.steps,
                    signature: g.signature.clone(),
                })
            })
            .collect()
    }

    fn run_merge(&mut self, me: &NodeId, job: &magnet_diloco::round::MergeJob) -> Event {
        let Some(base) = self.checkpoints.get(&job.base_hash).cloned() else {
            return Event::MergeFailed {
                round: job.round,
                detail: "base not found".into(),
            };
        };
        let contributions = self.contributions(job);
        let meta = MergeMeta {
            job_id: 7,
            round: job.round,
            leader: me.clone(),
        };
        match merge(&base, &contributions, &self.cfg.policy, &meta) {
            Ok(out) => {
                // Anyone can re-check: recompute from the inputs and compare.
                let again =
                    verify_merge(&base, &contributions, &out.record).expect("merge verifies");
                assert_eq!(again.hash(), out.record.merged_hash);
                self.checkpoints
                    .insert(out.record.merged_hash, out.checkpoint);
                self.merge_inputs.insert(job.round, contributions);
                Event::MergeDone {
                    round: job.round,
                    record: out.record,
                }
            }
            Err(e) => Event::MergeFailed {
                round: job.round,
                detail: e.to_string(),
            },
        }
    }

    fn record_on_chain(&mut self, record: RoundRecord) {
        assert!(
            self.records.iter().all(|r| r.round != record.round),
            "two merges recorded for round {}",
            record.round
        );
        let nodes: BTreeSet<&NodeId> = record.accepted.iter().map(|e| &e.node).collect();
        assert_eq!(
            nodes.len(),
            record.accepted.len(),
            "a node counted twice in one record"
        );
        for e in &record.accepted {
            assert!(
                self.counted.insert(e.delta_hash),
                "delta {} counted twice",
                e.delta_hash
            );
        }
        let total: u64 = record
            .accepted
            .iter()
            .map(|e| u64::from(e.weight_ppm))
            .sum();
        assert_eq!(total, 1_000_000, "weights must sum to 1e6 ppm");
        self.records.push(record);
    }

    /// Runs in 1 ms slices until `pred` holds (or `limit`); returns whether it held.
    pub fn run_until_state(&mut self, limit: u64, pred: impl Fn(&Sim) -> bool) -> bool {
        while self.now < limit {
            if pred(self) {
                return true;
            }
            let t = self.now + 1;
            self.run_until(t);
        }
        pred(self)
    }

    /// True when `node` is alive and leading (collecting) `round`.
    pub fn is_collecting(&self, node: &NodeId, round: u64) -> bool {
        matches!(self.nodes.get(node), Some(Some(s)) if s.round() == round
            && matches!(s.phase(), magnet_diloco::round::Phase::Collecting(_)))
    }

    pub fn latest_checkpoint(&self) -> &Checkpoint {
        let h = self.records.last().map_or(self.genesis, |r| r.merged_hash);
        &self.checkpoints[&h]
    }

    pub fn failures_of(&self, round: u64) -> Vec<&RoundFailure> {
        self.failures
            .iter()
            .filter(|f| f.1 == round)
            .map(|f| &f.2)
            .collect()
    }
}
