//! Property: every event order (random latencies, duplicates, kills, slow and poisoned nodes)
//! keeps the round invariants. The simulator checks node invariants after every step and the
//! global ones (one merge per round, no Δ counted twice, weights sum to 1e6) on every record.

mod common;

use common::{node_id, NodeSpec, Sim, SimConfig};
use magnet_diloco::{elect_leader, verify_merge, LeaderRule};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Scenario {
    seed: u64,
    n: usize,
    seeded_rule: bool,
    train_ms: Vec<u64>,
    kills: Vec<(usize, u64, bool)>,
    poison: Option<usize>,
    max_latency_ms: u64,
    duplicate_ppm: u32,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        any::<u64>(),
        2usize..=5,
        any::<bool>(),
        prop::collection::vec(50u64..1_600, 5),
        prop::collection::vec((0usize..5, 0u64..7_000, any::<bool>()), 0..=2),
        prop::option::of(0usize..5),
        1u64..150,
        prop_oneof![Just(0u32), Just(200_000u32)],
    )
        .prop_map(
            |(seed, n, seeded_rule, train_ms, kills, poison, max_latency_ms, duplicate_ppm)| {
                Scenario {
                    seed,
                    n,
                    seeded_rule,
                    train_ms,
                    kills,
                    poison,
                    max_latency_ms,
                    duplicate_ppm,
                }
            },
        )
}

fn run(sc: &Scenario) -> Sim {
    let cfg = SimConfig {
        rule: if sc.seeded_rule {
            LeaderRule::BlockHashSeeded
        } else {
            LeaderRule::RoundRobin
        },
        dim: 16,
        inner_steps: 5,
        max_latency_ms: sc.max_latency_ms,
        duplicate_ppm: sc.duplicate_ppm,
        chain_removal_ms: 3_000,
        ..SimConfig::default()
    };
    let specs = (0..sc.n)
        .map(|i| NodeSpec {
            train_ms: sc.train_ms[i],
            poison_nan: sc.poison == Some(i),
            data_size: 1_000 + 500 * i as u64,
            quality_bps: 5_000 + 1_000 * i as u32,
        })
        .collect();
    let mut sim = Sim::new(cfg, specs, sc.seed);
    for &(who, at, notify) in &sc.kills {
        if who < sc.n {
            sim.kill_at(at, node_id(who), notify);
        }
    }
    sim.run_until(12_000);
    sim
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Honours PROPTEST_CASES; 96 by default keeps the suite at a few seconds.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(96),
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_event_order_keeps_the_round_invariants(sc in scenario()) {
        let sim = run(&sc);
        for r in &sim.records {
            // The recorded leader is the one the chain's eligible set elects.
            let set = sim.eligible_set(r.round).expect("round was opened");
            let rule = if sc.seeded_rule { LeaderRule::BlockHashSeeded } else { LeaderRule::RoundRobin };
            let elected = elect_leader(&set.ids(), r.round, &set.block_hash, rule).unwrap();
            prop_assert_eq!(&r.leader, &elected);
            // needed ≤ accepted ≤ eligible; contributors are eligible.
            prop_assert!(r.accepted.len() <= set.members.len());
            prop_assert!(r.accepted.iter().all(|e| set.members.contains_key(&e.node)));
            // Poison never earns weight.
            if let Some(p) = sc.poison {
                prop_assert!(r.accepted.iter().all(|e| e.node != node_id(p)));
            }
            // Anyone can recompute the merge.
            let base = &sim.checkpoints[&r.base_hash];
            let again = verify_merge(base, &sim.merge_inputs[&r.round], r);
            prop_assert!(again.is_ok(), "{:?}", again.err());
        }
        // Rounds that merged form a chain of bases: each base is genesis or an earlier merge.
        for r in &sim.records {
            prop_assert!(r.base_hash == sim.genesis
                || sim.records.iter().any(|p| p.round < r.round && p.merged_hash == r.base_hash));
        }
        // Liveness when nothing goes wrong: quick trainers, no kills, no poison.
        let calm = sc.kills.iter().all(|k| k.0 >= sc.n)
            && sc.poison.is_none_or(|p| p >= sc.n)
            && sc.train_ms[..sc.n].iter().all(|&t| t <= 700);
        if calm {
            prop_assert!(sim.records.len() >= 6, "only {} merges", sim.records.len());
            prop_assert!(sim.failures.is_empty(), "{:?}", sim.failures);
        }
        prop_assert!(sim.latest_checkpoint().params.iter().all(|x| x.is_finite()));
    }
}
