//! Data registration through the wired modules.

use magnet_core::Address;
use magnet_data::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::magnet_notary::msgs as nm;
use magnet_testkit::Chain;

const FEE: u128 = 1_000_003;

fn notaries() -> Vec<Address> {
    (0..2).map(|i| magnet_testkit::key(600 + i).1).collect()
}

fn setup() -> (Chain, Vec<Node>) {
    let mut g = app_state();
    g["data"] = serde_json::json!({ "params": {
        "registration_fee": FEE.to_string(), "challenge_window_secs": 300,
        "contributor_ppm": 400000, "notaries_ppm": 200000, "burn_ppm": 200000 } });
    g["notary"] = serde_json::json!({
        "params": { "min_notary_bond": "1000", "min_challenge_bond": "1000",
                    "vote_window_secs": 100, "quorum_ppm": 500000, "no_quorum_fee_ppm": 100000 },
        "panel": notaries().iter().map(|a| a.to_string()).collect::<Vec<_>>() });
    let nodes: Vec<Node> = (0..2).map(node).collect();
    let mut balances: Vec<(Address, u128)> = nodes.iter().map(|n| (n.op, FUNDS)).collect();
    balances.extend(notaries().iter().map(|a| (*a, FUNDS)));
    let mut c = Chain::genesis(T0, g, &balances);
    c.begin(1).unwrap();
    for n in &nodes {
        n.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
    }
    for a in notaries() {
        c.deliver(&a, &[nm::bond(&a, 1_000)]).unwrap();
    }
    c.end().unwrap();
    (c, nodes)
}

#[test]
fn a_record_confirms_after_its_window_and_splits_its_fee() {
    let (mut c, nodes) = setup();
    let who = nodes[0].op;
    let ns = notaries();
    let before = c.balance(&who);
    let (n0, pool, supply) = (
        c.balance(&ns[0]),
        c.balance(&magnet_core::community_pool()),
        c.supply(),
    );
    c.begin(1).unwrap();
    c.deliver(&who, &[msgs::register(&who, [3; 32], 1 << 20, "tabular")])
        .unwrap();
    let e = c
        .deliver(
            &nodes[1].op,
            &[msgs::register(&nodes[1].op, [3; 32], 5, "tabular")],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("data", 2));
    c.end().unwrap();
    c.empty_block(250).unwrap();
    assert_eq!(
        c.query("/magnet.data.v1/record", b"1").unwrap()["status"],
        "pending"
    );
    c.empty_block(60).unwrap();
    assert_eq!(
        c.query("/magnet.data.v1/record", b"1").unwrap()["status"],
        "confirmed"
    );
    let to_contrib = FEE * 400_000 / 1_000_000;
    let each = FEE * 200_000 / 1_000_000 / 2;
    let burn = FEE * 200_000 / 1_000_000;
    assert_eq!(before - c.balance(&who), FEE - to_contrib);
    assert_eq!(c.balance(&ns[0]) - n0, each);
    assert_eq!(c.supply(), supply - burn);
    assert_eq!(
        c.balance(&magnet_core::community_pool()) - pool,
        FEE - to_contrib - 2 * each - burn
    );
}

#[test]
fn an_upheld_challenge_rejects_the_record_and_slashes_its_node_for_invalid_data() {
    let (mut c, nodes) = setup();
    let who = nodes[0].op;
    let ns = notaries();
    c.begin(1).unwrap();
    c.deliver(&who, &[msgs::register(&who, [4; 32], 10, "tabular")])
        .unwrap();
    c.deliver(
        &nodes[1].op,
        &[nm::challenge(&nodes[1].op, "data/1", 1_000, [9; 32])],
    )
    .unwrap();
    for a in &ns {
        c.deliver(a, &[nm::vote(a, 1, true)]).unwrap();
    }
    c.end().unwrap();
    c.empty_block(400).unwrap();
    assert_eq!(
        c.query("/magnet.data.v1/record", b"1").unwrap()["status"],
        "rejected"
    );
    let s = slashes(&c);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["offence"], "invalid_data");
    assert_eq!(s[0]["offender"], who.to_string());
    assert_eq!(bond(&c, &who), 1_000_000_000 - 300_000_000);
}
