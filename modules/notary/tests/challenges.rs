//! Notary challenges through the wired modules.

use magnet_core::{Address, NotaryPanel};
use magnet_notary::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::Chain;

const NBOND: u128 = 1_000;
const CBOND: u128 = 10_000;

fn notaries() -> Vec<Address> {
    (0..3).map(|i| magnet_testkit::key(500 + i).1).collect()
}

/// 5 nodes, node 0 contributes in epoch 0 and is evaluated; 3 bonded notaries.
fn setup() -> (Chain, Vec<Node>, Vec<Address>, String) {
    let nodes: Vec<Node> = (0..5).map(node).collect();
    let ns = notaries();
    let mut g = app_state();
    g["notary"] = serde_json::json!({
        "params": { "min_notary_bond": NBOND.to_string(), "min_challenge_bond": CBOND.to_string(),
                    "vote_window_secs": 100, "quorum_ppm": 500000, "no_quorum_fee_ppm": 100000 },
        "panel": ns.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
    });
    let mut balances: Vec<(Address, u128)> = nodes.iter().map(|n| (n.op, FUNDS)).collect();
    balances.extend(ns.iter().map(|a| (*a, FUNDS)));
    let mut c = Chain::genesis(T0, g, &balances);
    c.begin(1).unwrap();
    for n in &nodes {
        n.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
    }
    for a in &ns {
        c.deliver(a, &[msgs::bond(a, NBOND)]).unwrap();
    }
    c.end().unwrap();
    run_until(&mut c, T0 + 40, 10, &nodes);
    evaluate_epoch0(
        &mut c,
        &nodes,
        1,
        &[(0, work(100, 1_000, "training", 1))],
        |_, _| 250_000,
    );
    let target = format!("contrib/0/1/{}", nodes[0].op);
    (c, nodes, ns, target)
}

fn challenge(c: &mut Chain, who: &Address, target: &str) -> u64 {
    c.begin(1).unwrap();
    c.deliver(who, &[msgs::challenge(who, target, CBOND, [7; 32])])
        .unwrap();
    c.end().unwrap();
    c.query("/magnet.notary.v1/challenges", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .len() as u64
}

fn outcome(c: &Chain, id: u64) -> serde_json::Value {
    c.query("/magnet.notary.v1/challenge", id.to_string().as_bytes())
        .unwrap()["outcome"]
        .clone()
}

#[test]
fn votes_by_non_notaries_twice_or_late_are_rejected_with_their_own_codes() {
    let (mut c, nodes, ns, target) = setup();
    let id = challenge(&mut c, &nodes[1].op, &target);
    c.begin(1).unwrap();
    let before = c.snapshot();
    let e = c
        .deliver(&nodes[2].op, &[msgs::vote(&nodes[2].op, id, true)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("notary", 2));
    assert_eq!(c.snapshot(), before);
    c.deliver(&ns[0], &[msgs::vote(&ns[0], id, true)]).unwrap();
    let e = c
        .deliver(&ns[0], &[msgs::vote(&ns[0], id, false)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("notary", 5));
    let e = c
        .deliver(&ns[0], &[msgs::vote(&ns[0], 99, false)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("notary", 3));
    c.end().unwrap();
    c.empty_block(200).unwrap();
    c.begin(1).unwrap();
    let e = c
        .deliver(&ns[1], &[msgs::vote(&ns[1], id, true)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("notary", 4));
    c.end().unwrap();
}

#[test]
fn a_challenge_without_quorum_refunds_the_challenger_minus_the_fee() {
    let (mut c, nodes, ns, target) = setup();
    let challenger = nodes[1].op;
    let before = c.balance(&challenger);
    let pool = c.balance(&magnet_core::community_pool());
    let id = challenge(&mut c, &challenger, &target);
    c.begin(1).unwrap();
    c.deliver(&ns[0], &[msgs::vote(&ns[0], id, true)]).unwrap(); // 1 of 3 < 50 %
    c.end().unwrap();
    c.empty_block(150).unwrap();
    assert_eq!(outcome(&c, id), "no_quorum");
    assert_eq!(c.balance(&challenger), before - CBOND / 10);
    assert_eq!(c.balance(&magnet_core::community_pool()), pool + CBOND / 10);
    assert!(slashes(&c).is_empty());
}

#[test]
fn an_upheld_challenge_slashes_the_target_and_its_contribution_earns_nothing() {
    let (mut c, nodes, ns, target) = setup();
    let challenger = nodes[1].op;
    let before = c.balance(&challenger);
    let id = challenge(&mut c, &challenger, &target);
    c.begin(1).unwrap();
    c.deliver(&ns[0], &[msgs::vote(&ns[0], id, true)]).unwrap();
    c.deliver(&ns[1], &[msgs::vote(&ns[1], id, true)]).unwrap();
    c.deliver(&ns[2], &[msgs::vote(&ns[2], id, false)]).unwrap(); // minority: not an offence
    c.end().unwrap();
    c.empty_block(150).unwrap();
    assert_eq!(outcome(&c, id), "upheld");
    assert_eq!(
        c.balance(&challenger),
        before,
        "challenger refunded in full"
    );
    let s = slashes(&c);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["offence"], "failed_challenge");
    assert_eq!(s[0]["offender"], nodes[0].op.to_string());
    assert_eq!(s[0]["rate_ppm"], 200_000);
    // Epoch 0 settles at the end of epoch 1 and pays the invalidated contribution nothing.
    run_until(&mut c, T0 + 2 * EPOCH, 50, &nodes);
    let st = c.query("/magnet.rewards.v1/settlement", b"0").unwrap();
    assert_eq!(st["contributors"].as_array().unwrap().len(), 0);
    assert_eq!(st["dust"].as_str().unwrap(), POOL.to_string());
    assert_eq!(
        c.balance(&ns[2]),
        FUNDS - NBOND,
        "minority notary untouched"
    );
}

#[test]
fn a_rejected_challenge_slashes_the_challengers_bond_at_the_failed_challenge_rate() {
    let (mut c, nodes, ns, target) = setup();
    let challenger = nodes[1].op;
    let before = c.balance(&challenger);
    let id = challenge(&mut c, &challenger, &target);
    c.begin(1).unwrap();
    c.deliver(&ns[0], &[msgs::vote(&ns[0], id, false)]).unwrap();
    c.deliver(&ns[1], &[msgs::vote(&ns[1], id, false)]).unwrap();
    c.end().unwrap();
    c.empty_block(150).unwrap();
    assert_eq!(outcome(&c, id), "rejected");
    assert_eq!(c.balance(&challenger), before - CBOND * 200_000 / 1_000_000);
    let s = slashes(&c);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["offender"], challenger.to_string());
    // The contribution is paid normally.
    run_until(&mut c, T0 + 2 * EPOCH, 50, &nodes);
    let st = c.query("/magnet.rewards.v1/settlement", b"0").unwrap();
    assert_eq!(st["contributors"][0]["operator"], nodes[0].op.to_string());
}

#[test]
fn a_governance_overturn_slashes_the_majority_notaries_fully_and_spares_the_minority() {
    let (mut c, nodes, ns, target) = setup();
    let id = challenge(&mut c, &nodes[1].op, &target);
    c.begin(1).unwrap();
    c.deliver(&ns[0], &[msgs::vote(&ns[0], id, false)]).unwrap();
    c.deliver(&ns[1], &[msgs::vote(&ns[1], id, false)]).unwrap();
    c.deliver(&ns[2], &[msgs::vote(&ns[2], id, true)]).unwrap();
    c.end().unwrap();
    c.empty_block(150).unwrap();
    let before = slashes(&c).len();
    c.with_ctx(|ctx| magnet_testkit::NOTARY.overturn(ctx, id))
        .unwrap();
    let s = slashes(&c);
    assert_eq!(s.len(), before + 2);
    for rec in &s[before..] {
        assert_eq!(rec["offence"], "fraudulent_approval");
        assert_eq!(rec["rate_ppm"], 1_000_000);
        assert_eq!(rec["amount"], NBOND.to_string());
    }
    let panel = c.query("/magnet.notary.v1/panel", b"").unwrap();
    let bonds: Vec<&str> = panel
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m[1]["bond"].as_str().unwrap())
        .collect();
    let sorted: Vec<Address> = {
        let mut v = ns.clone();
        v.sort();
        v
    };
    for (a, b) in sorted.iter().zip(bonds) {
        let expect = if *a == ns[2] {
            NBOND.to_string()
        } else {
            "0".to_string()
        };
        assert_eq!(b, expect);
    }
    // Overturning twice is refused.
    let e = c
        .with_ctx(|ctx| magnet_testkit::NOTARY.overturn(ctx, id))
        .unwrap_err();
    assert_eq!(e.code, 8);
}
