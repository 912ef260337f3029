//! The repair daemon driven by a simulated clock over real shard stores (one directory per
//! holder, reached through `LocalTransport`): holders die, the daemon notices through missing
//! heartbeats, orders repairs, and the executor rebuilds, uploads, reads back and verifies.

use std::collections::BTreeSet;

use k256::ecdsa::SigningKey;
use magnet_storage::daemon::{Action, Daemon, DaemonConfig, Event, Liveness, Priority};
use magnet_storage::object::{execute_repair, get_object, put_object, PutOptions};
use magnet_storage::placement::{place, Candidate};
use magnet_storage::{HolderId, LocalTransport, Manifest, ShardId, ShardStore, SignedManifest};

struct Sim {
    _dirs: Vec<tempfile::TempDir>,
    transport: LocalTransport,
    daemon: Daemon,
    key: SigningKey,
    now: u64,
    holders: Vec<(HolderId, String)>,
    dead: BTreeSet<HolderId>,
    log: Vec<Action>,
}

impl Sim {
    fn new(config: DaemonConfig) -> Self {
        let transport = LocalTransport::new();
        let mut dirs = Vec::new();
        let mut holders = Vec::new();
        for region in ["eu", "us", "ap"] {
            for i in 0..3 {
                let d = tempfile::tempdir().unwrap();
                let id = HolderId::new(format!("node-{region}{i}")).unwrap();
                transport.add(id.clone(), ShardStore::open(d.path()).unwrap());
                holders.push((id, region.to_string()));
                dirs.push(d);
            }
        }
        let mut sim = Sim {
            _dirs: dirs,
            transport,
            daemon: Daemon::new(config),
            key: SigningKey::from_bytes(&[42u8; 32].into()).unwrap(),
            now: 1_000_000,
            holders,
            dead: BTreeSet::new(),
            log: Vec::new(),
        };
        sim.heartbeats();
        sim
    }

    fn heartbeats(&mut self) {
        for (h, region) in self.holders.clone() {
            if !self.dead.contains(&h) {
                self.daemon.step(
                    Event::Heartbeat {
                        holder: h,
                        region,
                        free_bytes: 1 << 34,
                    },
                    self.now,
                );
            }
        }
    }

    async fn put(&mut self, data: &[u8]) -> SignedManifest {
        let cands: Vec<Candidate> = self
            .holders
            .iter()
            .map(|(id, r)| Candidate {
                id: id.clone(),
                region: r.clone(),
                free_bytes: 1 << 34,
            })
            .collect();
        let object = magnet_storage::ContentAddress(magnet_storage::Hash32::of(data));
        let placement = place(&object, 6, 1, 1 << 20, &cands).unwrap();
        let sm = put_object(
            &self.transport,
            &self.key,
            &PutOptions::default(),
            data,
            placement,
            |_| {},
        )
        .await
        .unwrap();
        self.daemon
            .step(Event::Track(sm.manifest.clone()), self.now);
        sm
    }

    fn kill(&mut self, h: &HolderId) {
        self.transport.set_online(h, false);
        self.dead.insert(h.clone());
    }

    /// One 30 s tick: heartbeats from the living, the daemon's tick, then every ordered repair
    /// is executed and its result fed back. Returns the actions of this tick.
    async fn tick(&mut self) -> Vec<Action> {
        self.now += 30_000;
        self.heartbeats();
        let mut actions = self.daemon.step(Event::Tick, self.now);
        let mut i = 0;
        while i < actions.len() {
            if let Action::Repair(order) = actions[i].clone() {
                let ev = execute_repair(&self.transport, &order).await;
                let more = self.daemon.step(ev, self.now);
                actions.extend(more);
            }
            i += 1;
        }
        self.log.extend(actions.clone());
        actions
    }

    fn manifest(&self, sm: &SignedManifest) -> Manifest {
        self.daemon.manifest(&sm.manifest.object).unwrap().clone()
    }

    fn signed(&self, m: Manifest) -> SignedManifest {
        m.sign(&self.key).unwrap()
    }

    fn alive(&self) -> BTreeSet<HolderId> {
        self.holders
            .iter()
            .map(|(h, _)| h.clone())
            .filter(|h| !self.dead.contains(h))
            .collect()
    }

    /// Every shard has exactly one holder, all distinct and alive, and each holder really has
    /// the shard with the manifest's hash.
    fn assert_fully_placed(&self, m: &Manifest) {
        let mut seen = BTreeSet::new();
        for (i, reps) in m.holders.iter().enumerate() {
            assert_eq!(reps.len(), 1, "shard {i}: {reps:?}");
            let h = &reps[0];
            assert!(self.alive().contains(h), "shard {i} on dead holder {h}");
            assert!(seen.insert(h.clone()), "holder {h} twice");
            let store = self.transport.store(h).unwrap();
            let id = ShardId {
                object: m.object,
                index: i as u8,
            };
            let got = store.stat(&id).unwrap();
            assert_eq!(got.hash, m.shard_hashes[i]);
            store.get(&id).unwrap();
        }
    }
}

fn object_bytes(len: usize) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn publishes(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::PublishManifest(_)))
        .count()
}

#[tokio::test]
async fn killing_two_holders_is_repaired_onto_distinct_survivors() {
    let mut sim = Sim::new(DaemonConfig::default());
    let data = object_bytes(3 * (1 << 20) + 4321);
    let sm = sim.put(&data).await;
    // A quiet network orders nothing.
    for _ in 0..6 {
        let a = sim.tick().await;
        assert!(a.iter().all(|a| !matches!(a, Action::Repair(_))), "{a:?}");
    }
    let victims = [
        sm.manifest.holders[0][0].clone(),
        sm.manifest.holders[3][0].clone(),
    ];
    for v in &victims {
        sim.kill(v);
    }
    // Still readable right away from the four survivors.
    let (got, report) = get_object(&sim.transport, &sm).await.unwrap();
    assert_eq!(got, data);
    assert_eq!(report.unreachable.len(), 2);

    let start = sim.now;
    let mut ticks = 0;
    while sim
        .manifest(&sm)
        .holders
        .iter()
        .flatten()
        .any(|h| victims.contains(h))
    {
        sim.tick().await;
        ticks += 1;
        assert!(ticks < 40, "repair did not finish: {:?}", sim.log);
    }
    // Two shards left → the object was critical, so it was repaired once the victims were
    // suspect, without waiting for the 10-minute down-out.
    assert!(sim.now - start <= 5 * 60_000, "took {} ms", sim.now - start);
    assert!(sim
        .log
        .iter()
        .any(|a| matches!(a, Action::Repair(o) if o.priority == Priority::Critical)));
    let m = sim.manifest(&sm);
    sim.assert_fully_placed(&m);
    assert_eq!(m.revision, 2);
    let (got, report) = get_object(&sim.transport, &sim.signed(m)).await.unwrap();
    assert_eq!(got, data);
    assert!(report.unreachable.is_empty());
}

#[tokio::test]
async fn a_third_holder_lost_after_one_verified_repair_leaves_the_object_readable_and_repair_completes(
) {
    let mut sim = Sim::new(DaemonConfig {
        max_inflight: 1,
        ..DaemonConfig::default()
    });
    let data = object_bytes(2 * (1 << 20) + 99);
    let sm = sim.put(&data).await;
    let first = [
        sm.manifest.holders[1][0].clone(),
        sm.manifest.holders[4][0].clone(),
    ];
    for v in &first {
        sim.kill(v);
    }
    // Tick until exactly one repaired shard has been verified and published.
    let mut ticks = 0;
    loop {
        let a = sim.tick().await;
        ticks += 1;
        assert!(ticks < 40, "no repair: {:?}", sim.log);
        if publishes(&a) > 0 {
            assert_eq!(publishes(&a), 1, "rate limit allows one repair at a time");
            break;
        }
    }
    let m = sim.manifest(&sm);
    let repaired: Vec<usize> = (0..6)
        .filter(|&i| !sm.manifest.holders[i].contains(&m.holders[i][0]))
        .collect();
    assert_eq!(repaired.len(), 1);
    // Kill a third holder: one still holding an original shard.
    let third = (0..6)
        .map(|i| m.holders[i][0].clone())
        .find(|h| !first.contains(h) && sm.manifest.holders.iter().flatten().any(|o| o == h))
        .unwrap();
    sim.kill(&third);
    let (got, _) = get_object(&sim.transport, &sim.signed(m.clone()))
        .await
        .unwrap();
    assert_eq!(got, data, "readable with three holders gone");

    let dead = sim.dead.clone();
    let mut ticks = 0;
    while sim
        .manifest(&sm)
        .holders
        .iter()
        .flatten()
        .any(|h| dead.contains(h))
    {
        sim.tick().await;
        ticks += 1;
        assert!(ticks < 60, "repair did not complete: {:?}", sim.log);
    }
    let m = sim.manifest(&sm);
    sim.assert_fully_placed(&m);
    assert_eq!(
        sim.alive().len(),
        6,
        "all six survivors now hold one shard each"
    );
    let (got, _) = get_object(&sim.transport, &sim.signed(m)).await.unwrap();
    assert_eq!(got, data);
}

#[tokio::test]
async fn a_suspect_holder_is_left_alone_until_down_out_when_the_object_is_not_critical() {
    let mut sim = Sim::new(DaemonConfig::default());
    let data = object_bytes(100_000);
    let sm = sim.put(&data).await;
    let v = sm.manifest.holders[2][0].clone();
    sim.kill(&v);
    // 9 minutes: suspect after 2, but one lost shard of six is not critical.
    for _ in 0..18 {
        let a = sim.tick().await;
        assert!(a.iter().all(|a| !matches!(a, Action::Repair(_))), "{a:?}");
    }
    assert_eq!(sim.daemon.holders()[&v].liveness, Liveness::Suspect);
    // It comes back: nothing to do.
    sim.dead.remove(&v);
    sim.transport.set_online(&v, true);
    let a = sim.tick().await;
    assert!(a.iter().all(|a| !matches!(a, Action::Repair(_))));
    assert_eq!(sim.daemon.holders()[&v].liveness, Liveness::Up);
    // It dies for good: after the 10-minute down-out it is repaired at high priority.
    sim.kill(&v);
    let mut ticks = 0;
    while sim.manifest(&sm).holders.iter().flatten().any(|h| *h == v) {
        sim.tick().await;
        ticks += 1;
        assert!(ticks < 40);
    }
    assert!(ticks * 30_000 > 600_000, "repaired only after down-out");
    assert!(sim
        .log
        .iter()
        .any(|a| matches!(a, Action::Repair(o) if o.priority == Priority::High)));
    sim.assert_fully_placed(&sim.manifest(&sm));
}

fn heartbeat(d: &mut Daemon, holders: &[HolderId], now: u64) {
    for h in holders {
        d.step(
            Event::Heartbeat {
                holder: h.clone(),
                region: "r".into(),
                free_bytes: 1 << 30,
            },
            now,
        );
    }
}

fn tracked(d: &mut Daemon, seed: &[u8], holders: &[HolderId]) -> Manifest {
    let codec = magnet_storage::Codec::new(magnet_storage::Params::DEFAULT).unwrap();
    let (enc, _) = magnet_storage::codec::encode(&codec, 1 << 20, seed).unwrap();
    let m = Manifest {
        object: magnet_storage::ContentAddress(enc.object_hash),
        size: seed.len() as u64,
        k: 4,
        m: 2,
        stripe_size: 1 << 20,
        shard_hashes: enc.shard_hashes,
        holders: holders.iter().map(|h| vec![h.clone()]).collect(),
        replica_target: 1,
        revision: 0,
    };
    d.step(Event::Track(m.clone()), 0);
    m
}

#[test]
fn critical_objects_are_repaired_before_high_ones_and_the_rate_limit_holds() {
    let mut d = Daemon::new(DaemonConfig {
        max_inflight: 1,
        ..DaemonConfig::default()
    });
    let h: Vec<HolderId> = (0..16)
        .map(|i| HolderId::new(format!("h{i:02}")).unwrap())
        .collect();
    heartbeat(&mut d, &h, 0);
    // Two objects on disjoint holders; find seeds so the object that will only be *high*
    // sorts first by address, proving priority beats address order.
    let mut seeds = (0u8..).map(|i| vec![i; 10]);
    let (hi, crit) = loop {
        let a = seeds.next().unwrap();
        let b = seeds.next().unwrap();
        let ha = magnet_storage::Hash32::of(&a);
        let hb = magnet_storage::Hash32::of(&b);
        if ha < hb {
            break (a, b);
        }
    };
    let high = tracked(&mut d, &hi, &h[0..6]);
    let critical = tracked(&mut d, &crit, &h[6..12]);
    assert!(high.object < critical.object);
    // Past down-out: `high` lost one holder, `critical` lost two.
    let live: Vec<HolderId> = h
        .iter()
        .filter(|x| ![&h[0], &h[6], &h[7]].contains(x))
        .cloned()
        .collect();
    let mut repairs = Vec::new();
    for t in 1..=25u64 {
        heartbeat(&mut d, &live, t * 30_000);
        let acts = d.step(Event::Tick, t * 30_000);
        let orders: Vec<_> = acts
            .iter()
            .filter_map(|a| match a {
                Action::Repair(o) => Some(o.clone()),
                _ => None,
            })
            .collect();
        assert!(orders.len() <= 1, "max_inflight = 1");
        for o in orders {
            repairs.push((o.manifest.object, o.priority));
            let ev = Event::RepairDone {
                object: o.manifest.object,
                index: o.index,
                target: o.target.clone(),
                hash: o.manifest.shard_hashes[usize::from(o.index)],
            };
            d.step(ev, t * 30_000 + 1);
        }
    }
    assert_eq!(
        repairs,
        vec![
            // Before down-out only the critical object is repaired (its suspects count as lost).
            (critical.object, Priority::Critical),
            // After down-out both are merely high: address order decides.
            (high.object, Priority::High),
            (critical.object, Priority::High),
        ]
    );
}

#[test]
fn the_byte_budget_limits_repairs_started_per_tick() {
    let mut d = Daemon::new(DaemonConfig {
        repair_bytes_per_tick: 1,
        ..DaemonConfig::default()
    });
    let h: Vec<HolderId> = (0..12)
        .map(|i| HolderId::new(format!("h{i:02}")).unwrap())
        .collect();
    heartbeat(&mut d, &h, 0);
    let m = tracked(&mut d, &[7u8; 4000], &h[0..6]);
    heartbeat(&mut d, &h[2..], 700_000);
    let acts = d.step(Event::Tick, 700_000);
    let n = acts
        .iter()
        .filter(|a| matches!(a, Action::Repair(_)))
        .count();
    // Both lost shards need repair, but only one fits (the first may exceed a full budget).
    assert_eq!(n, 1, "{acts:?}");
    assert_eq!(d.manifest(&m.object).unwrap().holders.len(), 6);
}

#[test]
fn a_repair_report_with_the_wrong_hash_is_rejected() {
    let mut d = Daemon::new(DaemonConfig::default());
    let holders: Vec<HolderId> = (0..7)
        .map(|i| HolderId::new(format!("h{i}")).unwrap())
        .collect();
    for h in &holders {
        d.step(
            Event::Heartbeat {
                holder: h.clone(),
                region: "r".into(),
                free_bytes: 1 << 30,
            },
            0,
        );
    }
    let codec = magnet_storage::Codec::new(magnet_storage::Params::DEFAULT).unwrap();
    let (enc, _) = magnet_storage::codec::encode(&codec, 1 << 20, b"abc").unwrap();
    let m = Manifest {
        object: magnet_storage::ContentAddress(enc.object_hash),
        size: 3,
        k: 4,
        m: 2,
        stripe_size: 1 << 20,
        shard_hashes: enc.shard_hashes.clone(),
        holders: holders[..6].iter().map(|h| vec![h.clone()]).collect(),
        replica_target: 1,
        revision: 0,
    };
    d.step(Event::Track(m.clone()), 0);
    d.step(
        Event::AuditFailed {
            holder: holders[0].clone(),
            object: m.object,
            index: 0,
        },
        0,
    );
    // Keep everyone else alive and tick.
    for h in &holders {
        d.step(
            Event::Heartbeat {
                holder: h.clone(),
                region: "r".into(),
                free_bytes: 1 << 30,
            },
            30_000,
        );
    }
    let acts = d.step(Event::Tick, 30_000);
    let order = acts
        .iter()
        .find_map(|a| match a {
            Action::Repair(o) => Some(o.clone()),
            _ => None,
        })
        .expect("a repair for the audited-away shard");
    assert_eq!(order.index, 0);
    assert_eq!(order.target, holders[6]);
    let acts = d.step(
        Event::RepairDone {
            object: m.object,
            index: 0,
            target: order.target.clone(),
            hash: enc.shard_hashes[1],
        },
        31_000,
    );
    assert!(
        matches!(&acts[..], [Action::RepairRejected { .. }]),
        "{acts:?}"
    );
    assert!(d.manifest(&m.object).unwrap().holders[0].is_empty());
    // Unknown repairs are rejected too, and change nothing.
    let acts = d.step(
        Event::RepairDone {
            object: m.object,
            index: 3,
            target: holders[6].clone(),
            hash: enc.shard_hashes[3],
        },
        31_000,
    );
    assert!(matches!(&acts[..], [Action::RepairRejected { .. }]));
    assert_eq!(d.manifest(&m.object).unwrap().revision, 1);
}

#[test]
fn the_same_events_give_the_same_actions() {
    let run = || {
        let mut d = Daemon::new(DaemonConfig::default());
        let mut out = Vec::new();
        for t in 0..20u64 {
            for i in 0..8 {
                if i < 6 || t < 3 {
                    out.extend(d.step(
                        Event::Heartbeat {
                            holder: HolderId::new(format!("n{i}")).unwrap(),
                            region: format!("r{}", i % 3),
                            free_bytes: 1 << 30,
                        },
                        t * 30_000,
                    ));
                }
            }
            out.extend(d.step(Event::Tick, t * 30_000));
        }
        format!("{out:?}")
    };
    assert_eq!(run(), run());
}
