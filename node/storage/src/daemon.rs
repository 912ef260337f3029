//! The replication and repair daemon, as a pure state machine.
//!
//! [`Daemon::step`] takes one [`Event`] and the current time (milliseconds on any monotonic
//! clock the caller chooses) and returns the [`Action`]s to perform. It does no I/O, reads no
//! clock and draws no randomness, so tests drive it with a simulated clock and the same inputs
//! always give the same outputs. The edges — heartbeats from the p2p layer, repair execution
//! ([`crate::repair::execute`]), manifest signing — live outside.
//!
//! # Policy
//! * Every tick (default 30 s) holder liveness is recomputed from the last heartbeat: silent for
//!   more than `suspect_after` (120 s) → *suspect*; for more than `down_out` (10 min) → *down*.
//! * A shard copy on a down holder is missing. A copy on a suspect holder still counts —
//!   suspects often come back and eager repair would churn — **unless the object is critical**.
//! * Each object gets a priority: **critical** when at most K of its shards have a copy on an up
//!   holder (one more loss and it is unreadable), **high** when some shard has no copy left on an
//!   up-or-suspect holder, **normal** when only replica counts are short. The queue is served
//!   critical → high → normal, then by object and shard index.
//! * Rate limits: at most `max_inflight` repairs at once, and at most `repair_bytes_per_tick`
//!   bytes of repair reads started per tick (one repair may always start when none is running,
//!   so a shard larger than the budget is not starved).
//! * A repair targets an up holder that holds no shard of the object (distinct holders),
//!   preferring regions the object does not use yet. It counts only once the executor reports
//!   the SHA-256 of the bytes read back from the target and that equals the manifest's hash.
//!   A failed or timed-out repair is retried on another target.
//!
//! # Non-guarantees
//! The daemon trusts the heartbeats and repair reports its caller feeds it (the p2p layer
//! authenticates them). It never deletes data itself; it asks for stray copies to be dropped.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::hash::{ContentAddress, Hash32};
use crate::manifest::{HolderId, Manifest};

/// Timing and rate-limit settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonConfig {
    /// Interval between liveness checks, ms (paper: 30 s).
    pub tick_ms: u64,
    /// Silence after which a holder is suspect, ms (paper: 120 s).
    pub suspect_after_ms: u64,
    /// Silence after which a holder is down and its shards are re-created, ms.
    pub down_out_ms: u64,
    /// Most repairs running at once.
    pub max_inflight: usize,
    /// Most bytes of repair reads started per tick.
    pub repair_bytes_per_tick: u64,
    /// A repair not reported back within this long is abandoned and retried elsewhere, ms.
    pub repair_timeout_ms: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            tick_ms: 30_000,
            suspect_after_ms: 120_000,
            down_out_ms: 600_000,
            max_inflight: 4,
            repair_bytes_per_tick: 1 << 30,
            repair_timeout_ms: 300_000,
        }
    }
}

/// Liveness of a holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Liveness {
    /// Heard from within `suspect_after`.
    Up,
    /// Silent for longer than `suspect_after`.
    Suspect,
    /// Silent for longer than `down_out`.
    Down,
}

/// What the daemon knows about a holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Region reported by the registry.
    pub region: String,
    /// Free bytes from its last heartbeat.
    pub free_bytes: u64,
    /// Time of its last heartbeat, ms.
    pub last_seen_ms: u64,
    /// Liveness as of the last tick or heartbeat.
    pub liveness: Liveness,
}

/// Repair priority (ordered: `Critical` first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Priority {
    /// At most K shards on up holders.
    Critical,
    /// Some shard has no copy on an up or suspect holder.
    High,
    /// Only replica counts are short.
    Normal,
}

/// One repair to perform: re-create shard `index` of `manifest.object` on `target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairOrder {
    /// The object's manifest (geometry and shard hashes).
    pub manifest: Manifest,
    /// The shard to re-create.
    pub index: u8,
    /// Where to put it.
    pub target: HolderId,
    /// Where to read from, best first: at most one holder per shard index. If `index` itself
    /// appears, a plain copy suffices; otherwise K of them are decoded.
    pub sources: Vec<(u8, HolderId)>,
    /// Why this repair is urgent.
    pub priority: Priority,
}

/// Inputs to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The periodic timer fired.
    Tick,
    /// A holder's heartbeat (authenticated by the p2p layer).
    Heartbeat {
        /// Who.
        holder: HolderId,
        /// Its region.
        region: String,
        /// Free space, bytes.
        free_bytes: u64,
    },
    /// Start tracking an object (its manifest lists the current holders).
    Track(Manifest),
    /// Stop tracking an object.
    Untrack(ContentAddress),
    /// The executor stored the shard on `target` and read it back; `hash` is SHA-256 of the
    /// bytes read back.
    RepairDone {
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
        /// Where it was stored.
        target: HolderId,
        /// Hash of the bytes read back from the target.
        hash: Hash32,
    },
    /// The executor could not complete a repair.
    RepairFailed {
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
        /// Intended target.
        target: HolderId,
        /// Why.
        reason: String,
    },
    /// A holder failed an audit of this shard: its copy no longer counts.
    AuditFailed {
        /// Who.
        holder: HolderId,
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
    },
}

/// Outputs of the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Perform this repair and report back with `RepairDone` or `RepairFailed`.
    Repair(RepairOrder),
    /// The holders of an object changed: sign and publish this revision.
    PublishManifest(Manifest),
    /// A holder's liveness changed.
    LivenessChanged {
        /// Who.
        holder: HolderId,
        /// Before.
        from: Liveness,
        /// After.
        to: Liveness,
    },
    /// A copy no longer in the manifest may be deleted from this holder when it is reachable.
    DropStray {
        /// Holder with the stray copy.
        holder: HolderId,
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
    },
    /// A repair report was refused (wrong hash, unknown repair, target not up).
    RepairRejected {
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
        /// Target.
        target: HolderId,
        /// Why.
        reason: String,
    },
    /// Fewer than K shards are reachable: the object cannot be read or repaired now.
    Unrecoverable {
        /// Object.
        object: ContentAddress,
        /// Shards reachable.
        reachable: usize,
        /// K.
        needed: usize,
    },
    /// No eligible distinct holder to place a shard on.
    Blocked {
        /// Object.
        object: ContentAddress,
        /// Shard.
        index: u8,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    target: HolderId,
    started_ms: u64,
    priority: Priority,
}

/// Per-object health summary (for `storage status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectHealth {
    /// Object.
    pub object: ContentAddress,
    /// Shards with a copy on an up holder.
    pub healthy: usize,
    /// Shards with a copy on an up or suspect holder.
    pub reachable: usize,
    /// K + M.
    pub total: usize,
    /// Priority if repair is needed.
    pub priority: Option<Priority>,
    /// Repairs running.
    pub inflight: usize,
}

/// The daemon's whole state.
#[derive(Debug, Clone, Default)]
pub struct Daemon {
    config: DaemonConfig,
    holders: BTreeMap<HolderId, Holder>,
    objects: BTreeMap<ContentAddress, Manifest>,
    inflight: BTreeMap<(ContentAddress, u8), InFlight>,
    failed_targets: BTreeMap<(ContentAddress, u8), BTreeSet<HolderId>>,
    reported_unrecoverable: BTreeSet<ContentAddress>,
    reported_blocked: BTreeSet<(ContentAddress, u8)>,
}

/// Functional form of [`Daemon::step`]: `(state, event, now) -> (state, actions)`.
pub fn step(mut state: Daemon, event: Event, now_ms: u64) -> (Daemon, Vec<Action>) {
    let actions = state.step(event, now_ms);
    (state, actions)
}

struct Need {
    priority: Priority,
    object: ContentAddress,
    index: u8,
}

impl Daemon {
    /// A daemon with no holders and no objects.
    pub fn new(config: DaemonConfig) -> Self {
        Daemon {
            config,
            ..Default::default()
        }
    }

    /// Settings.
    pub fn config(&self) -> &DaemonConfig {
        &self.config
    }

    /// Known holders.
    pub fn holders(&self) -> &BTreeMap<HolderId, Holder> {
        &self.holders
    }

    /// The current manifest (holders as the daemon knows them) of a tracked object.
    pub fn manifest(&self, object: &ContentAddress) -> Option<&Manifest> {
        self.objects.get(object)
    }

    /// Number of repairs running.
    pub fn inflight(&self) -> usize {
        self.inflight.len()
    }

    fn liveness(&self, h: &HolderId) -> Liveness {
        self.holders
            .get(h)
            .map(|x| x.liveness)
            .unwrap_or(Liveness::Down)
    }

    /// Health of every tracked object.
    pub fn health(&self) -> Vec<ObjectHealth> {
        self.objects
            .values()
            .map(|m| {
                let (healthy, reachable) = self.counts(m);
                ObjectHealth {
                    object: m.object,
                    healthy,
                    reachable,
                    total: m.holders.len(),
                    priority: self.priority(m),
                    inflight: self.inflight.keys().filter(|(o, _)| *o == m.object).count(),
                }
            })
            .collect()
    }

    fn counts(&self, m: &Manifest) -> (usize, usize) {
        let mut healthy = 0;
        let mut reachable = 0;
        for reps in &m.holders {
            let best = reps.iter().map(|h| self.liveness(h)).min();
            match best {
                Some(Liveness::Up) => {
                    healthy += 1;
                    reachable += 1;
                }
                Some(Liveness::Suspect) => reachable += 1,
                _ => {}
            }
        }
        (healthy, reachable)
    }

    fn priority(&self, m: &Manifest) -> Option<Priority> {
        let (healthy, reachable) = self.counts(m);
        if healthy <= usize::from(m.k) && healthy < m.holders.len() {
            return Some(Priority::Critical);
        }
        if reachable < m.holders.len() {
            return Some(Priority::High);
        }
        let short = m.holders.iter().any(|reps| {
            reps.iter()
                .filter(|h| self.liveness(h) != Liveness::Down)
                .count()
                < usize::from(m.replica_target)
        });
        short.then_some(Priority::Normal)
    }

    /// Copies of shard `index` that count, given the object's priority.
    fn counted_copies(&self, m: &Manifest, index: usize, critical: bool) -> usize {
        m.holders[index]
            .iter()
            .filter(|h| match self.liveness(h) {
                Liveness::Up => true,
                Liveness::Suspect => !critical,
                Liveness::Down => false,
            })
            .count()
    }

    /// Advances the machine by one event at time `now_ms`.
    pub fn step(&mut self, event: Event, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Tick => self.tick(now_ms, &mut out),
            Event::Heartbeat {
                holder,
                region,
                free_bytes,
            } => {
                let prev = self.holders.get(&holder).map(|h| h.liveness);
                self.holders.insert(
                    holder.clone(),
                    Holder {
                        region,
                        free_bytes,
                        last_seen_ms: now_ms,
                        liveness: Liveness::Up,
                    },
                );
                if let Some(from) = prev.filter(|p| *p != Liveness::Up) {
                    out.push(Action::LivenessChanged {
                        holder,
                        from,
                        to: Liveness::Up,
                    });
                }
            }
            Event::Track(m) => {
                self.reported_unrecoverable.remove(&m.object);
                self.objects.insert(m.object, m);
            }
            Event::Untrack(obj) => {
                self.objects.remove(&obj);
                self.inflight.retain(|(o, _), _| *o != obj);
                self.failed_targets.retain(|(o, _), _| *o != obj);
            }
            Event::RepairDone {
                object,
                index,
                target,
                hash,
            } => self.repair_done(object, index, target, hash, &mut out),
            Event::RepairFailed {
                object,
                index,
                target,
                reason,
            } => {
                if self
                    .inflight
                    .get(&(object, index))
                    .is_some_and(|f| f.target == target)
                {
                    self.inflight.remove(&(object, index));
                    tracing::warn!(%object, index, %target, %reason, "repair failed; will retry elsewhere");
                    self.failed_targets
                        .entry((object, index))
                        .or_default()
                        .insert(target);
                }
            }
            Event::AuditFailed {
                holder,
                object,
                index,
            } => {
                if let Some(m) = self.objects.get_mut(&object) {
                    if let Some(reps) = m.holders.get_mut(usize::from(index)) {
                        let before = reps.len();
                        reps.retain(|h| *h != holder);
                        if reps.len() != before {
                            // Never pick the failed holder to re-create this shard.
                            self.failed_targets
                                .entry((object, index))
                                .or_default()
                                .insert(holder.clone());
                            m.revision += 1;
                            out.push(Action::PublishManifest(m.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    fn repair_done(
        &mut self,
        object: ContentAddress,
        index: u8,
        target: HolderId,
        hash: Hash32,
        out: &mut Vec<Action>,
    ) {
        let reject = |reason: &str, out: &mut Vec<Action>| {
            out.push(Action::RepairRejected {
                object,
                index,
                target: target.clone(),
                reason: reason.to_string(),
            })
        };
        let Some(f) = self.inflight.get(&(object, index)) else {
            return reject("no such repair is running", out);
        };
        if f.target != target {
            return reject("report from a different target than the one ordered", out);
        }
        // A critical repair replaces suspect copies; other repairs only replace down ones.
        let replaces_suspects = f.priority == Priority::Critical;
        self.inflight.remove(&(object, index));
        let Some(m) = self.objects.get(&object) else {
            return reject("object no longer tracked", out);
        };
        let expected = m.shard_hashes.get(usize::from(index)).copied();
        if expected != Some(hash) {
            self.failed_targets
                .entry((object, index))
                .or_default()
                .insert(target.clone());
            return reject("read-back hash differs from the manifest", out);
        }
        if self.liveness(&target) != Liveness::Up {
            return reject("target is no longer up", out);
        }
        let liveness: BTreeMap<HolderId, Liveness> = self
            .holders
            .iter()
            .map(|(k, v)| (k.clone(), v.liveness))
            .collect();
        let Some(m) = self.objects.get_mut(&object) else {
            return;
        };
        let reps = &mut m.holders[usize::from(index)];
        let mut keep = Vec::new();
        for h in reps.drain(..) {
            let l = liveness.get(&h).copied().unwrap_or(Liveness::Down);
            // Suspect copies stay unless this repair replaced them because the object was critical.
            if l == Liveness::Up || (l == Liveness::Suspect && !replaces_suspects) {
                keep.push(h);
            } else {
                out.push(Action::DropStray {
                    holder: h,
                    object,
                    index,
                });
            }
        }
        keep.push(target);
        *reps = keep;
        m.revision += 1;
        self.failed_targets.remove(&(object, index));
        self.reported_blocked.remove(&(object, index));
        out.push(Action::PublishManifest(m.clone()));
    }

    fn tick(&mut self, now_ms: u64, out: &mut Vec<Action>) {
        // 1. Liveness.
        for (id, h) in self.holders.iter_mut() {
            let age = now_ms.saturating_sub(h.last_seen_ms);
            let new = if age > self.config.down_out_ms {
                Liveness::Down
            } else if age > self.config.suspect_after_ms {
                Liveness::Suspect
            } else {
                Liveness::Up
            };
            if new != h.liveness {
                out.push(Action::LivenessChanged {
                    holder: id.clone(),
                    from: h.liveness,
                    to: new,
                });
                h.liveness = new;
            }
        }
        // 2. Expire repairs that timed out or whose target went down.
        let holders = &self.holders;
        let timeout = self.config.repair_timeout_ms;
        let mut expired = Vec::new();
        self.inflight.retain(|key, f| {
            let target_up = holders
                .get(&f.target)
                .is_some_and(|h| h.liveness == Liveness::Up);
            let keep = target_up && now_ms.saturating_sub(f.started_ms) <= timeout;
            if !keep {
                expired.push((*key, f.target.clone()));
            }
            keep
        });
        for (key, target) in expired {
            self.failed_targets.entry(key).or_default().insert(target);
        }
        // 3. Build the queue.
        let mut needs: Vec<Need> = Vec::new();
        for m in self.objects.values() {
            let (_, reachable) = self.counts(m);
            if reachable < usize::from(m.k) {
                if self.reported_unrecoverable.insert(m.object) {
                    out.push(Action::Unrecoverable {
                        object: m.object,
                        reachable,
                        needed: usize::from(m.k),
                    });
                }
                continue;
            }
            self.reported_unrecoverable.remove(&m.object);
            let Some(priority) = self.priority(m) else {
                continue;
            };
            let critical = priority == Priority::Critical;
            for index in 0..m.holders.len() {
                if self.counted_copies(m, index, critical) < usize::from(m.replica_target) {
                    needs.push(Need {
                        priority,
                        object: m.object,
                        index: index as u8,
                    });
                }
            }
        }
        needs.sort_by_key(|n| (n.priority, n.object, n.index));
        // 4. Dispatch within the rate limits.
        let mut budget = self.config.repair_bytes_per_tick;
        for need in needs {
            if self.inflight.len() >= self.config.max_inflight {
                break;
            }
            if self.inflight.contains_key(&(need.object, need.index)) {
                continue;
            }
            let Some(m) = self.objects.get(&need.object) else {
                continue;
            };
            let Some(order) = self.plan(m, need.index, need.priority) else {
                if self.reported_blocked.insert((need.object, need.index)) {
                    out.push(Action::Blocked {
                        object: need.object,
                        index: need.index,
                    });
                }
                continue;
            };
            let shard_len = m.layout().map(|l| l.shard_len()).unwrap_or(0);
            let copy = order.sources.iter().any(|(i, _)| *i == need.index);
            let cost = if copy {
                shard_len
            } else {
                shard_len.saturating_mul(u64::from(m.k))
            };
            if cost > budget
                && !(self.inflight.is_empty() && budget == self.config.repair_bytes_per_tick)
            {
                break;
            }
            budget = budget.saturating_sub(cost);
            self.inflight.insert(
                (need.object, need.index),
                InFlight {
                    target: order.target.clone(),
                    started_ms: now_ms,
                    priority: need.priority,
                },
            );
            out.push(Action::Repair(order));
        }
    }

    fn plan(&self, m: &Manifest, index: u8, priority: Priority) -> Option<RepairOrder> {
        // Sources: per shard index, the best live copy (up before suspect).
        let mut sources = Vec::new();
        for (i, reps) in m.holders.iter().enumerate() {
            let best = reps
                .iter()
                .filter(|h| self.liveness(h) != Liveness::Down)
                .min_by_key(|h| (self.liveness(h), (*h).clone()));
            if let Some(h) = best {
                sources.push((i as u8, h.clone()));
            }
        }
        // Prefer a plain copy of the same shard when one is up.
        sources.sort_by_key(|(i, h)| (*i != index, self.liveness(h), *i));
        // Targets: up, room, no shard of this object, not already a target, not failed before.
        let used: BTreeSet<&HolderId> = m.holders.iter().flatten().collect();
        let busy: BTreeSet<&HolderId> = self
            .inflight
            .iter()
            .filter(|((o, _), _)| *o == m.object)
            .map(|(_, f)| &f.target)
            .collect();
        let failed = self.failed_targets.get(&(m.object, index));
        let used_regions: BTreeMap<&str, usize> =
            used.iter().fold(BTreeMap::new(), |mut acc, h| {
                if let Some(x) = self.holders.get(*h) {
                    if x.liveness != Liveness::Down {
                        *acc.entry(x.region.as_str()).or_default() += 1;
                    }
                }
                acc
            });
        let shard_len = m.layout().map(|l| l.shard_len()).unwrap_or(0);
        let candidates: Vec<crate::placement::Candidate> = self
            .holders
            .iter()
            .filter(|(id, h)| {
                h.liveness == Liveness::Up
                    && !used.contains(id)
                    && !busy.contains(id)
                    && !failed.is_some_and(|f| f.contains(*id))
            })
            .map(|(id, h)| crate::placement::Candidate {
                id: id.clone(),
                region: h.region.clone(),
                free_bytes: h.free_bytes,
            })
            .collect();
        let ranked = crate::placement::rank(&m.object, &candidates, shard_len);
        let target = ranked.into_iter().min_by_key(|id| {
            let region = self
                .holders
                .get(id)
                .map(|h| h.region.as_str())
                .unwrap_or("");
            used_regions.get(region).copied().unwrap_or(0)
        })?;
        Some(RepairOrder {
            manifest: m.clone(),
            index,
            target,
            sources,
            priority,
        })
    }
}
