//! Every offence path slashes at its own rate and no other. Rates are set to distinct
//! values so a wrong rate cannot pass by coincidence.

use magnet_core::{Address, Offence};
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::magnet_contrib::msgs as cm;

fn genesis() -> serde_json::Value {
    let mut g = app_state();
    g["slashing"] = serde_json::json!({ "params": {
        "rates": {
            "no_reveal": 110_000, "reveal_mismatch": 120_000, "failed_challenge": 130_000,
            "invalid_data": 140_000, "downtime": 150_000, "evaluator_deviation": 160_000,
            "fraudulent_approval": 1_000_000, "double_sign": 170_000
        },
        "burn_ppm": 250_000,
        "jail_secs": 3_000
    }});
    g
}

fn rate(o: Offence) -> u128 {
    match o {
        Offence::NoReveal => 110_000,
        Offence::RevealMismatch => 120_000,
        Offence::FailedChallenge => 130_000,
        Offence::InvalidData => 140_000,
        Offence::Downtime => 150_000,
        Offence::EvaluatorDeviation => 160_000,
        Offence::FraudulentApproval => 1_000_000,
        Offence::DoubleSign => 170_000,
        Offence::FraudulentMerge => 1_000_000,
        Offence::AuditDeviation => 100_000,
        Offence::StorageAuditFailed => 0, // custody's rate, not a slashing param
        Offence::FabricatedTrial => 1_000_000,
    }
}

/// The only slashes are `expected` (offender, offence), each at its own rate of the bond it
/// had, split 25 % burn / 75 % community pool.
fn assert_slashes(c: &magnet_testkit::Chain, expected: &[(Address, Offence, u128)]) {
    let s = slashes(c);
    assert_eq!(s.len(), expected.len(), "slash records: {s:#?}");
    for (rec, (who, off, base)) in s.iter().zip(expected) {
        assert_eq!(rec["offender"], who.to_string());
        assert_eq!(rec["offence"], off.as_str());
        assert_eq!(rec["rate_ppm"].as_u64().unwrap() as u128, rate(*off));
        let amount: u128 = rec["amount"].as_str().unwrap().parse().unwrap();
        assert_eq!(amount, base * rate(*off) / 1_000_000, "{off:?} amount");
        let burned: u128 = rec["burned"].as_str().unwrap().parse().unwrap();
        let to_pool: u128 = rec["to_pool"].as_str().unwrap().parse().unwrap();
        assert_eq!(burned, amount / 4);
        assert_eq!(burned + to_pool, amount);
    }
}

const BOND: u128 = 1_000_000_000;

#[test]
fn a_missing_reveal_is_slashed_at_the_no_reveal_rate_only() {
    let (mut c, nodes) = setup_with(4, genesis());
    open_job(&mut c, &nodes[3].op);
    c.begin(5).unwrap();
    commit(&mut c, &nodes[0], 1, &work(1, 1, "training", 1), b"n").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 305, 10, &nodes);
    assert_slashes(&c, &[(nodes[0].op, Offence::NoReveal, BOND)]);
    // Jailed: it can no longer commit or earn.
    let n = c
        .query(
            "/magnet.registry.v1/node",
            nodes[0].op.to_string().as_bytes(),
        )
        .unwrap();
    assert_eq!(n["jailed"], true);
}

#[test]
fn a_mismatched_reveal_is_slashed_at_the_mismatch_rate_only() {
    let (mut c, nodes) = setup_with(4, genesis());
    open_job(&mut c, &nodes[3].op);
    let w = work(1, 1, "training", 1);
    c.begin(5).unwrap();
    commit(&mut c, &nodes[0], 1, &w, b"right").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    reveal(&mut c, &nodes[0], 1, &w, b"wrong").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 305, 10, &nodes);
    assert_slashes(&c, &[(nodes[0].op, Offence::RevealMismatch, BOND)]);
}

#[test]
fn an_evaluator_far_from_the_median_is_slashed_at_the_deviation_rate_only() {
    let (mut c, nodes) = setup_with(6, genesis());
    let liar = nodes[5].op;
    let slots = evaluate_epoch0(
        &mut c,
        &nodes,
        1,
        &[(0, work(100, 1_000, "training", 1))],
        |_, ev| {
            if *ev == liar {
                5_000_000
            } else {
                300_000
            }
        },
    );
    if slots.contains_key(&liar) {
        assert_slashes(&c, &[(liar, Offence::EvaluatorDeviation, BOND)]);
    } else {
        assert_slashes(&c, &[]);
    }
    // Whoever was drawn, the liar is not among the paid evaluators.
    let e0 = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
    let good = e0["contributions"][0]["good_evaluators"].to_string();
    assert!(!good.contains(&liar.to_string()));
}

#[test]
fn an_unrevealed_score_is_slashed_at_the_no_reveal_rate_only() {
    let (mut c, nodes) = setup_with(5, genesis());
    open_job(&mut c, &nodes[4].op);
    let w = work(100, 1_000, "training", 1);
    c.begin(5).unwrap();
    commit(&mut c, &nodes[0], 1, &w, b"n").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    reveal(&mut c, &nodes[0], 1, &w, b"n").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 305, 10, &nodes);
    let evs = assigned(&c, 0, 1, &nodes[0].op);
    let (ev, _) = evs[0];
    let n = nodes.iter().find(|n| n.op == ev).unwrap().clone();
    c.begin(1).unwrap();
    let h = cm::score_commitment(&c.block.chain_id, 0, 1, &nodes[0].op, &ev, 1, b"e");
    c.deliver(&n.node, &[cm::eval_commit(&n.node, 0, 1, &nodes[0].op, h)])
        .unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 505, 10, &nodes);
    assert_slashes(&c, &[(ev, Offence::NoReveal, BOND)]);
}

#[test]
fn missed_heartbeats_are_slashed_at_the_downtime_rate_only() {
    let (mut c, nodes) = setup_with(3, genesis());
    // Node 2 stops heart-beating after epoch 0.
    run_until(&mut c, T0 + EPOCH + 10, 10, &nodes);
    run_until(&mut c, T0 + 2 * EPOCH + 10, 10, &nodes[..2]);
    assert_slashes(&c, &[(nodes[2].op, Offence::Downtime, BOND)]);
}

#[test]
fn slashing_conserves_coins_supply_drops_only_by_the_burn() {
    let (mut c, nodes) = setup_with(3, genesis());
    let pool_before = c.balance(&magnet_core::community_pool());
    run_until(&mut c, T0 + EPOCH + 10, 10, &nodes);
    run_until(&mut c, T0 + 2 * EPOCH + 10, 10, &nodes[..2]);
    let amount = BOND * 150_000 / 1_000_000;
    // Epoch 0 settled with no contributions: its whole pool went to the community pool too.
    let pools = 2 * POOL;
    assert_eq!(c.supply(), c.genesis_supply + pools - amount / 4);
    assert_eq!(
        c.balance(&magnet_core::community_pool()) - pool_before,
        amount - amount / 4 + POOL
    );
    assert_eq!(c.balance(&magnet_core::Address::module("slashing")), 0);
}
