//! Jobs, model lineage and API revenue through the wired modules.

use magnet_core::Address;
use magnet_jobs::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;

const BASE: [u8; 32] = [0xB0; 32];
const BUDGET: u128 = 10_000_000;

fn job(c: &mut magnet_testkit::Chain, creator: &Address, deadline: u64) -> u64 {
    c.deliver(
        creator,
        &[msgs::create_job(
            creator, "tabular", [1; 32], BASE, BUDGET, deadline,
        )],
    )
    .unwrap();
    c.query("/magnet.jobs.v1/jobs", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .len() as u64
}

#[test]
fn rounds_must_chain_from_the_base_checkpoint_with_increasing_numbers() {
    let (mut c, nodes) = setup(3);
    c.begin(1).unwrap();
    let id = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 5_000);
    c.end().unwrap();
    // Round 0 by its elected leader, on the base checkpoint.
    train_round(&mut c, &nodes, id, 0, &[(1, 3), (2, 1)]);
    // Round 1 timed out (no record); round 2 extends the lineage from round 0's checkpoint.
    train_round(&mut c, &nodes, id, 2, &[(1, 2)]);
    let l = c
        .query("/magnet.jobs.v1/lineage", id.to_string().as_bytes())
        .unwrap();
    let rounds = l["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    assert_eq!(rounds[1]["base_hash"], rounds[0]["merged_hash"]);
    assert_eq!(rounds[0]["base_hash"], hex::encode(BASE_CHECKPOINT));
    assert_eq!(rounds[1]["round"], 2);
    // Round 1 can no longer be recorded: the lineage is past it (tested with its leader in
    // tests/verified_rounds.rs). Shares: node 1 had 3/4 of round 0 and all of round 2.
    let shares: Vec<(String, String)> = serde_json::from_value(l["shares"].clone()).unwrap();
    let share = |i: usize| {
        shares
            .iter()
            .find(|(a, _)| *a == nodes[i].op.to_string())
            .map(|(_, s)| s.clone())
            .unwrap()
    };
    assert_eq!(share(1), (750_000u64 + 1_000_000).to_string());
    assert_eq!(share(2), "250000");
}

#[test]
fn api_revenue_is_split_by_lineage_share_server_burn_and_pool() {
    let (mut c, nodes) = setup(4);
    let (payer, server) = (nodes[3].op, nodes[0].op);
    c.begin(1).unwrap();
    let id = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 5_000);
    let e = c
        .deliver(
            &payer,
            &[msgs::pay_for_inference(&payer, id, &server, 1_000)],
        )
        .unwrap_err();
    assert_eq!(e.code, 7, "no model before the first round");
    c.end().unwrap();
    // Node 1 trained twice the tokens of node 2 in the one round.
    train_round(&mut c, &nodes, id, 0, &[(1, 2_000), (2, 1_000)]);
    c.begin(1).unwrap();
    let (b1, b2, bs, pool, supply) = (
        c.balance(&nodes[1].op),
        c.balance(&nodes[2].op),
        c.balance(&server),
        c.balance(&magnet_core::community_pool()),
        c.supply(),
    );
    let amount = 1_000_003u128;
    c.deliver(
        &payer,
        &[msgs::pay_for_inference(&payer, id, &server, amount)],
    )
    .unwrap();
    c.end().unwrap();
    let contrib = amount * 600_000 / 1_000_000;
    // Weights 666,667 and 333,333 ppm (the remainder goes to the heaviest).
    let (s1, s2) = (contrib * 666_667 / 1_000_000, contrib * 333_333 / 1_000_000);
    let server_cut = amount * 250_000 / 1_000_000;
    let burn = amount * 50_000 / 1_000_000;
    assert_eq!(c.balance(&nodes[1].op) - b1, s1);
    assert_eq!(c.balance(&nodes[2].op) - b2, s2);
    assert_eq!(c.balance(&server) - bs, server_cut);
    assert_eq!(c.supply(), supply - burn);
    assert_eq!(
        c.balance(&magnet_core::community_pool()) - pool,
        amount - s1 - s2 - server_cut - burn
    );
}

#[test]
fn a_job_pays_its_budget_by_verified_score_after_the_deadline() {
    let (mut c, nodes) = setup(5);
    let creator = nodes[4].op;
    c.begin(1).unwrap();
    let id = training_job(&mut c, &creator, 1_000, BUDGET, T0 + 600);
    c.end().unwrap();
    let e = train_round(&mut c, &nodes, id, 0, &[(0, 100), (1, 300)]);
    let w0 = trained_work(100, 1_000, 1, &[e[0].1]);
    let w1 = trained_work(300, 1_000, 2, &[e[1].1]);
    let before: Vec<u128> = nodes.iter().map(|n| c.balance(&n.op)).collect();
    let slots = evaluate_epoch0(
        &mut c,
        &nodes,
        id,
        &[(0, w0.clone()), (1, w1.clone())],
        |who, _| {
            if *who == nodes[0].op {
                100_000
            } else {
                200_000
            }
        },
    );
    // Evaluation was final at T0+500; challenge window closes at T0+700.
    run_until(&mut c, T0 + 690, 10, &nodes);
    assert_eq!(
        c.query("/magnet.jobs.v1/job", id.to_string().as_bytes())
            .unwrap()["status"]["settling"]["through_epoch"],
        0
    );
    run_until(&mut c, T0 + 710, 10, &nodes);
    assert_eq!(
        c.query("/magnet.jobs.v1/job", id.to_string().as_bytes())
            .unwrap()["status"],
        "settled"
    );
    let q = [100_000u128 * 100 * 1_000, 200_000 * 300 * 1_000];
    let cpool = BUDGET * 900_000 / 1_000_000;
    let epool = BUDGET * 50_000 / 1_000_000;
    let total_slots: u128 = slots.values().sum();
    for (i, n) in nodes.iter().enumerate() {
        let mut want = 0;
        if i < 2 {
            want += cpool * q[i] / (q[0] + q[1]);
        }
        want += epool * slots.get(&n.op).copied().unwrap_or(0) / total_slots;
        assert_eq!(c.balance(&n.op) - before[i], want, "node {i}");
    }
    assert_eq!(c.balance(&magnet_core::Address::module("jobs")), 0);
}

#[test]
fn cancellation_refunds_only_before_any_work() {
    let (mut c, nodes) = setup(2);
    let creator = nodes[0].op;
    c.begin(1).unwrap();
    let before = c.balance(&creator);
    let a = job(&mut c, &creator, T0 + 5_000);
    let e = c
        .deliver(&nodes[1].op, &[msgs::cancel_job(&nodes[1].op, a)])
        .unwrap_err();
    assert_eq!(e.code, 4);
    c.deliver(&creator, &[msgs::cancel_job(&creator, a)])
        .unwrap();
    assert_eq!(c.balance(&creator), before);
    let b = training_job(&mut c, &creator, 1_000, BUDGET, T0 + 5_000);
    c.end().unwrap();
    train_round(&mut c, &nodes, b, 0, &[(1, 1)]);
    c.begin(1).unwrap();
    let e = c
        .deliver(&creator, &[msgs::cancel_job(&creator, b)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 5));
    c.end().unwrap();
}

/// A job `epochs` epochs old (blocks of 16 epochs each, the fixture's `max_ends_per_block`).
fn aged_job(epochs: u64) -> (magnet_testkit::Chain, Address, u64) {
    let (mut c, nodes) = setup(1);
    let creator = nodes[0].op;
    c.begin(1).unwrap();
    let id = job(&mut c, &creator, T0 + 10_000 * EPOCH);
    c.end().unwrap();
    let start = c.epoch();
    while c.epoch() < start + epochs {
        let step = (start + epochs - c.epoch()).min(16);
        c.empty_block(step * EPOCH).unwrap();
    }
    (c, creator, id)
}

#[test]
fn cancelling_an_old_job_costs_gas_per_epoch_and_runs_out_under_a_modest_limit() {
    // The cancel checks every epoch since the job's creation for its work: one metered seek
    // per epoch (ADR 0096), so its gas follows the job's age.
    let mut used = Vec::new();
    for epochs in [0u64, 50, 200] {
        let (mut c, creator, id) = aged_job(epochs);
        let (r, g) = c.deliver_with_gas(&creator, &[msgs::cancel_job(&creator, id)], 50_000_000);
        r.unwrap();
        used.push(g);
    }
    assert!(
        used[1] >= used[0] + 50 * 1_000 && used[2] >= used[1] + 150 * 1_000,
        "gas used by cancel after 0, 50, 200 epochs: {used:?}"
    );

    // The same cancel after 200 epochs with a 100,000-gas limit: out of gas, nothing changes.
    let (mut c, creator, id) = aged_job(200);
    let before = c.snapshot();
    let balance = c.balance(&creator);
    let (r, g) = c.deliver_with_gas(&creator, &[msgs::cancel_job(&creator, id)], 100_000);
    let e = r.unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("sdk", 11), "{}", e.log);
    assert_eq!(g, 100_000);
    assert_eq!(c.snapshot(), before, "a tx that ran out of gas wrote state");
    assert_eq!(c.balance(&creator), balance);
}
