//! Registry through the wired modules: keys, bonds, heartbeats, jail and unbonding.

use magnet_registry::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;

#[test]
fn node_id_is_the_sha256_prefix_of_the_node_key_and_state_is_keyed_by_operator() {
    let mut c = chain(1);
    let n = node(0);
    c.begin(1).unwrap();
    let r = n.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
    c.end().unwrap();
    let resp = <magnet_proto::registry::v1::MsgRegisterNodeResponse as prost::Message>::decode(
        r[0].value.as_slice(),
    )
    .unwrap();
    let digest = magnet_core::sha256(&n.node_pk);
    let hexed: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(resp.node_id, format!("node-{}", &hexed[..16]));
    let rec = c
        .query("/magnet.registry.v1/node", n.op.to_string().as_bytes())
        .unwrap();
    assert_eq!(rec["node"], n.node.to_string());
    assert_eq!(c.balance(&n.op), FUNDS - 1_000_000_000);
    assert_eq!(
        c.balance(&magnet_core::Address::module("registry")),
        1_000_000_000
    );
}

#[test]
fn a_stolen_node_key_cannot_move_the_bond() {
    let (mut c, nodes) = setup(1);
    let n = &nodes[0];
    c.begin(1).unwrap();
    let before = c.snapshot();
    for m in [
        msgs::unbond_node(&n.op),
        msgs::change_tier(&n.op, "storage_node", 0),
        msgs::unjail(&n.op),
    ] {
        let e = c.deliver(&n.node, &[m]).unwrap_err();
        assert_eq!((e.codespace.as_str(), e.code), ("sdk", 8), "{}", e.log);
    }
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn registration_failures_have_their_own_codes_and_change_nothing() {
    let mut c = chain(2);
    let (a, b) = (node(0), node(1));
    c.begin(1).unwrap();
    a.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
    let before = c.snapshot();
    let cases = [
        (b.register(&mut c, "gpu_compute", 999_999_999), 3u32), // below the tier minimum
        (b.register(&mut c, "quantum", 1_000_000_000), 2),      // unknown tier
        (a.register(&mut c, "gpu_compute", 1_000_000_000), 4),  // operator already registered
        (
            // b reuses a's node key
            c.deliver(
                &b.op,
                &[msgs::register_node(
                    &b.op,
                    &a.node_pk,
                    "gpu_compute",
                    "",
                    "",
                    "",
                    1_000_000_000,
                )],
            ),
            5,
        ),
        (
            c.deliver(
                &b.op,
                &[msgs::register_node(
                    &b.op,
                    &[5u8; 33],
                    "gpu_compute",
                    "",
                    "",
                    "",
                    1_000_000_000,
                )],
            ),
            8,
        ),
    ];
    for (r, code) in cases {
        let e = r.unwrap_err();
        assert_eq!(
            (e.codespace.as_str(), e.code),
            ("registry", code),
            "{}",
            e.log
        );
    }
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn unjail_while_still_jailed_is_rejected_then_accepted_after_the_jail_period() {
    let (mut c, nodes) = setup(3);
    // Node 2 misses epoch 1's heartbeats: slashed for downtime and jailed for jail_secs.
    run_until(&mut c, T0 + EPOCH + 10, 10, &nodes);
    run_until(&mut c, T0 + 2 * EPOCH + 10, 10, &nodes[..2]);
    let n = &nodes[2];
    let rec = c
        .query("/magnet.registry.v1/node", n.op.to_string().as_bytes())
        .unwrap();
    assert_eq!(rec["jailed"], true);
    c.begin(1).unwrap();
    let before = c.snapshot();
    let e = c.deliver(&n.op, &[msgs::unjail(&n.op)]).unwrap_err();
    assert_eq!(
        (e.codespace.as_str(), e.code),
        ("registry", 10),
        "{}",
        e.log
    );
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
    // A jailed node cannot commit work.
    c.begin(1).unwrap();
    let e = commit(&mut c, n, 1, &work(1, 1, "training", 1), b"x").unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("contrib", 3));
    c.end().unwrap();
    // After the jail period (default 1 day) the bond is below the minimum: top up, then unjail.
    c.empty_block(86_400).unwrap();
    c.begin(1).unwrap();
    let e = c.deliver(&n.op, &[msgs::unjail(&n.op)]).unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("registry", 3), "{}", e.log);
    c.deliver(
        &n.op,
        &[msgs::change_tier(&n.op, "gpu_compute", 100_000_000)],
    )
    .unwrap();
    c.deliver(&n.op, &[msgs::unjail(&n.op)]).unwrap();
    let e = c.deliver(&n.op, &[msgs::unjail(&n.op)]).unwrap_err();
    assert_eq!(
        (e.codespace.as_str(), e.code),
        ("registry", 9),
        "not jailed any more"
    );
    c.end().unwrap();
}

#[test]
fn unbonding_returns_the_bond_after_the_delay_and_not_before() {
    let (mut c, nodes) = setup(1);
    let n = &nodes[0];
    c.begin(1).unwrap();
    c.deliver(&n.op, &[msgs::unbond_node(&n.op)]).unwrap();
    c.end().unwrap();
    let before = c.balance(&n.op);
    c.empty_block(4_990).unwrap();
    assert_eq!(c.balance(&n.op), before, "delay is 5000 s");
    // Unbonding nodes send no heartbeats and cannot unbond twice.
    c.begin(1).unwrap();
    let e = c.deliver(&n.op, &[msgs::unbond_node(&n.op)]).unwrap_err();
    assert_eq!(e.code, 11);
    c.end().unwrap();
    c.empty_block(20).unwrap();
    assert_eq!(c.balance(&n.op), before + 1_000_000_000);
    assert!(c
        .query("/magnet.registry.v1/node", n.op.to_string().as_bytes())
        .unwrap()
        .is_null());
}

#[test]
fn heartbeats_closer_than_the_interval_count_once() {
    let (mut c, nodes) = setup(1);
    let n = &nodes[0];
    let count = |c: &mut magnet_testkit::Chain| {
        c.with_ctx(|ctx| magnet_registry::state::heartbeats(ctx, 1, &n.op).unwrap())
    };
    run_until(&mut c, T0 + EPOCH, 10, &[]);
    c.begin(1).unwrap();
    n.heartbeat(&mut c).unwrap();
    n.heartbeat(&mut c).unwrap();
    c.end().unwrap();
    c.begin(5).unwrap();
    n.heartbeat(&mut c).unwrap();
    c.end().unwrap();
    assert_eq!(count(&mut c), 1);
    c.begin(10).unwrap();
    n.heartbeat(&mut c).unwrap();
    c.end().unwrap();
    assert_eq!(count(&mut c), 2);
}

#[test]
fn governance_bonds_carry_voting_power_and_unbond_after_the_delay() {
    let mut c = chain(1);
    let a = node(0).op;
    c.begin(1).unwrap();
    c.deliver(&a, &[msgs::bond_gov(&a, 500)]).unwrap();
    let e = c.deliver(&a, &[msgs::unbond_gov(&a, 501)]).unwrap_err();
    assert_eq!(e.code, 12);
    c.deliver(&a, &[msgs::unbond_gov(&a, 200)]).unwrap();
    c.end().unwrap();
    assert_eq!(
        c.query("/magnet.registry.v1/gov_bond", a.to_string().as_bytes())
            .unwrap(),
        "300"
    );
    c.empty_block(5_000).unwrap();
    assert_eq!(c.balance(&a), FUNDS - 300);
}

#[test]
fn storage_capability_needs_the_storage_kind_and_a_passing_report_and_follows_the_thresholds() {
    let mut c = chain(3);
    let ns: Vec<Node> = (0..3).map(node).collect();
    c.begin(1).unwrap();
    // gpu_compute lists the storage kind: with a passing report it is storage-capable.
    ns[0]
        .register_with_ssd(&mut c, "gpu_compute", 1_000_000_000, Some(passing_ssd()))
        .unwrap();
    // mobile_light has no storage kind: a report does not make it capable.
    ns[1]
        .register_with_ssd(&mut c, "mobile_light", 100_000_000, Some(passing_ssd()))
        .unwrap();
    // cpu_only without a report: not capable.
    ns[2].register(&mut c, "cpu_only", 300_000_000).unwrap();
    let capable = |c: &mut magnet_testkit::Chain| -> Vec<bool> {
        c.with_ctx(|ctx| {
            let reg = ctx.services().registry().unwrap();
            ns.iter()
                .map(|n| reg.is_storage_capable(ctx, &n.op).unwrap())
                .collect()
        })
    };
    assert_eq!(capable(&mut c), vec![true, false, false]);
    // A tier change without a report keeps the stored one.
    c.deliver(&ns[0].op, &[msgs::change_tier(&ns[0].op, "cpu_only", 0)])
        .unwrap();
    assert_eq!(capable(&mut c), vec![true, false, false]);
    let rec = c
        .query("/magnet.registry.v1/node", ns[0].op.to_string().as_bytes())
        .unwrap();
    assert_eq!(rec["ssd"]["read_kbps"], 250_000, "{rec}");
    // Governance raising the read threshold above the report demotes the node at once.
    c.with_ctx(|ctx| {
        let mut p = magnet_registry::state::params(ctx.store()).unwrap();
        p.ssd_min_read_mbps = 251;
        magnet_registry::state::set_params(ctx.store_mut(), &p);
    });
    assert_eq!(capable(&mut c), vec![false, false, false]);
    c.end().unwrap();
}
