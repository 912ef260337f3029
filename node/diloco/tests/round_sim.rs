//! Whole rounds over the simulated network: happy path, dropouts, dead leaders, poison, staleness.

mod common;

use common::{node_id, NodeSpec, Sim, SimConfig};
use magnet_diloco::merge::RejectReason;
use magnet_diloco::round::RoundFailure;
use magnet_diloco::{elect_leader, verify_merge, LeaderRule};

fn specs(n: usize) -> Vec<NodeSpec> {
    (0..n).map(|_| NodeSpec::default()).collect()
}

#[test]
fn three_workers_merge_every_round_and_the_global_loss_falls() {
    let mut sim = Sim::new(SimConfig::default(), specs(3), 1);
    let start = sim.global_loss(&sim.checkpoints[&sim.genesis].params);
    sim.run_until(8_000);
    assert!(
        sim.records.len() >= 5,
        "only {} rounds merged",
        sim.records.len()
    );
    for (i, r) in sim.records.iter().enumerate() {
        assert_eq!(r.round, i as u64, "rounds merge in order without gaps");
        assert_eq!(r.accepted.len(), 3, "round {i}: {:?}", r.rejected);
        assert!(r.rejected.is_empty());
        // The paper's round-robin rule.
        assert_eq!(r.leader, node_id((r.round % 3) as usize));
        // Each round starts from the previous merge.
        let prev = if i == 0 {
            sim.genesis
        } else {
            sim.records[i - 1].merged_hash
        };
        assert_eq!(r.base_hash, prev);
    }
    let end = sim.global_loss(&sim.latest_checkpoint().params);
    assert!(end < 0.5 * start, "loss {start} -> {end}");
    // Bytes: each worker uploads int8 (≈1.25 B/param with chunk 16) and downloads fp32.
    let led = sim.ledgers[&node_id(1)];
    assert!(led.up > 0 && led.down > 0);
    assert!(
        led.up < led.down,
        "int8 uploads must be smaller than fp32 downloads"
    );
    assert!(sim.failures.is_empty(), "{:?}", sim.failures);
}

#[test]
fn a_worker_killed_mid_round_lets_the_round_complete_with_the_rest() {
    for notify in [true, false] {
        let mut sim = Sim::new(SimConfig::default(), specs(4), 2);
        sim.run_until(1);
        // Round 0's leader is node 0 (round robin); kill node 2 while it trains.
        sim.kill_at(150, node_id(2), notify);
        sim.run_until(6_000);
        let r0 = sim
            .record_for(0)
            .expect("round 0 merged without the dead worker");
        let who: Vec<_> = r0.accepted.iter().map(|e| e.node.clone()).collect();
        assert_eq!(
            who,
            vec![node_id(0), node_id(1), node_id(3)],
            "notify={notify}"
        );
        // Later rounds keep going with the survivors.
        assert!(
            sim.records.len() >= 3,
            "notify={notify}: {} records",
            sim.records.len()
        );
        assert!(sim
            .records
            .iter()
            .all(|r| r.accepted.iter().all(|e| e.node != node_id(2))));
    }
}

#[test]
fn a_dropout_notice_closes_the_collection_before_the_deadline() {
    let mut sim = Sim::new(SimConfig::default(), specs(3), 3);
    sim.kill_at(100, node_id(2), true);
    sim.run_until(950);
    // Deadline of round 0 is ~1000 ms; with the dropout reported, needed fell to 2 and the
    // merge happened as soon as both gradients were in (training takes 300 ms).
    assert!(
        sim.record_for(0).is_some(),
        "round 0 should have merged before its deadline"
    );
}

#[test]
fn a_killed_leader_hands_over_to_the_next_leader_from_the_last_merged_checkpoint() {
    let cfg = SimConfig::default();
    let mut sim = Sim::new(cfg, specs(3), 4);
    // Let round 0 merge (leader node 0), then kill round 1's leader (node 1) after it announced.
    assert!(sim.run_until_state(5_000, |s| s.is_collecting(&node_id(1), 1)));
    let r0 = sim.record_for(0).expect("round 0 merged").clone();
    let t = sim.now + 60;
    sim.kill_at(t, node_id(1), false);
    sim.run_until(10_000);
    assert!(
        sim.record_for(1).is_none(),
        "the dead leader cannot have merged round 1"
    );
    let r2 = sim
        .record_for(2)
        .expect("round 2 merged under the next leader");
    assert_eq!(r2.leader, node_id(2));
    assert_eq!(
        r2.base_hash, r0.merged_hash,
        "next leader starts from the last merged checkpoint"
    );
    // Workers noticed the dead leader by timeout.
    assert!(sim
        .failures_of(1)
        .iter()
        .all(|f| matches!(f, RoundFailure::LeaderTimedOut { leader } | RoundFailure::LeaderSilent { leader } if *leader == node_id(1))));
    // Momentum survived the rotation: round 2's merge is exactly the Nesterov step from round
    // 0's checkpoint *with its non-zero momentum*.
    let base = sim.checkpoints[&r0.merged_hash].clone();
    assert!(base.momentum.iter().any(|m| *m != 0.0));
    let inputs = &sim.merge_inputs[&2];
    let again = verify_merge(&base, inputs, r2).expect("round 2 = Nesterov step from round 0");
    assert_eq!(again.hash(), r2.merged_hash);
    // Dropping the momentum would have given a different model.
    let mut zeroed = base.clone();
    zeroed.momentum.iter_mut().for_each(|m| *m = 0.0);
    let meta = magnet_diloco::MergeMeta {
        job_id: r2.job_id,
        round: 2,
        leader: r2.leader.clone(),
    };
    let without = magnet_diloco::merge(&zeroed, inputs, &r2.policy, &meta).unwrap();
    assert_ne!(without.checkpoint.params, again.params);
}

#[test]
fn a_killed_leader_under_block_hash_election_is_replaced_from_the_last_merge() {
    let cfg = SimConfig {
        rule: LeaderRule::BlockHashSeeded,
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg, specs(4), 5);
    assert!(sim.run_until_state(5_000, |s| s.eligible_set(1).is_some()));
    let r0 = sim.record_for(0).expect("round 0 merged").clone();
    // Round 1's leader as every node computes it; kill it once it announced.
    let set1 = sim.eligible_set(1).expect("round 1 opened").clone();
    let dead = elect_leader(
        &set1.ids(),
        1,
        &set1.block_hash,
        LeaderRule::BlockHashSeeded,
    )
    .unwrap();
    assert!(sim.run_until_state(5_000, |s| s.is_collecting(&dead, 1)));
    let t = sim.now + 60;
    sim.kill_at(t, dead.clone(), false);
    sim.run_until(20_000);
    assert!(sim.records.iter().all(|r| r.leader != dead || r.round == 0));
    let next = sim
        .records
        .iter()
        .find(|r| r.round > 1)
        .expect("a later round merged under a live leader");
    assert_ne!(next.leader, dead);
    assert_eq!(next.base_hash, r0.merged_hash);
    assert!(next.accepted.iter().all(|e| e.node != dead));
}

#[test]
fn a_nan_worker_is_rejected_and_earns_no_weight() {
    let mut s = specs(3);
    s[2].poison_nan = true;
    let mut sim = Sim::new(SimConfig::default(), s, 6);
    sim.run_until(5_000);
    assert!(sim.records.len() >= 3);
    for r in &sim.records {
        assert!(
            r.accepted.iter().all(|e| e.node != node_id(2)),
            "round {}",
            r.round
        );
        let rej = r
            .rejected
            .iter()
            .find(|e| e.node == node_id(2))
            .expect("rejection recorded");
        assert!(matches!(rej.reason, RejectReason::NonFinite { index: 1 }));
        assert_eq!(
            r.accepted.iter().map(|e| e.weight_ppm).sum::<u32>(),
            1_000_000
        );
    }
    // The merged model stays finite.
    assert!(sim.latest_checkpoint().params.iter().all(|x| x.is_finite()));
}

#[test]
fn a_slow_worker_contributes_to_the_next_round_as_stale_and_weighs_less() {
    let mut s = specs(3);
    s[2].train_ms = 1_200; // longer than the round
    let mut sim = Sim::new(SimConfig::default(), s, 7);
    sim.run_until(12_000);
    let stale: Vec<_> = sim
        .records
        .iter()
        .flat_map(|r| {
            r.accepted
                .iter()
                .filter(|e| e.staleness > 0)
                .map(move |e| (r, e))
        })
        .collect();
    assert!(
        !stale.is_empty(),
        "the slow worker's late deltas should be merged as stale"
    );
    for (r, e) in stale {
        assert_eq!(e.node, node_id(2));
        let fresh = r.accepted.iter().find(|x| x.staleness == 0).unwrap();
        assert!(
            e.weight_ppm < fresh.weight_ppm,
            "stale {} vs fresh {}",
            e.weight_ppm,
            fresh.weight_ppm
        );
    }
}

#[test]
fn every_recorded_round_can_be_rechecked_by_anyone_and_forgeries_are_caught() {
    use magnet_diloco::VerifyError;
    let mut sim = Sim::new(SimConfig::default(), specs(3), 8);
    sim.run_until(4_000);
    assert!(sim.records.len() >= 3);
    for r in &sim.records {
        let base = &sim.checkpoints[&r.base_hash];
        let inputs = &sim.merge_inputs[&r.round];
        let again = verify_merge(base, inputs, r).expect("honest record verifies");
        assert_eq!(again.hash(), r.merged_hash);
    }
    let r = sim.records[1].clone();
    let base = sim.checkpoints[&r.base_hash].clone();
    let inputs = sim.merge_inputs[&r.round].clone();
    let mut forged = r.clone();
    forged.accepted[0].weight_ppm += 1;
    forged.accepted[1].weight_ppm -= 1;
    assert!(matches!(
        verify_merge(&base, &inputs, &forged),
        Err(VerifyError::RecordMismatch { .. })
    ));
    let mut forged = r.clone();
    forged.merged_hash = sim.genesis;
    assert!(matches!(
        verify_merge(&base, &inputs, &forged),
        Err(VerifyError::MergedMismatch { .. })
    ));
    let mut forged = r.clone();
    forged.rejected.push(magnet_diloco::merge::RejectedEntry {
        node: node_id(9),
        delta_hash: sim.genesis,
        reason: RejectReason::ZeroWeight,
    });
    assert!(verify_merge(&base, &inputs, &forged).is_err());
    // A verifier handed a different base is told so.
    let other = sim.checkpoints[&sim.genesis].clone();
    assert!(matches!(
        verify_merge(&other, &inputs, &r),
        Err(VerifyError::BaseMismatch { .. })
    ));
}

#[test]
fn replayed_messages_are_rejected_and_never_counted_twice() {
    use magnet_diloco::round::Rejection;
    let cfg = SimConfig {
        duplicate_ppm: 1_000_000, // every network message arrives twice
        ..SimConfig::default()
    };
    let mut sim = Sim::new(cfg, specs(3), 9);
    sim.run_until(6_000);
    assert!(sim.records.len() >= 4);
    assert!(sim.records.iter().all(|r| r.accepted.len() == 3));
    let dup_senders = sim
        .rejections
        .iter()
        .filter(|(_, r)| {
            matches!(
                r,
                Rejection::DuplicateSender { .. }
                    | Rejection::WrongRound { .. }
                    | Rejection::WrongPhase { .. }
            )
        })
        .count();
    assert!(
        dup_senders > 0,
        "replays must be seen and rejected: {:?}",
        sim.rejections
    );
}
