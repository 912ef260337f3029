//! Inference-service advertisements (ADR 0109) through the wired modules: every refusal with
//! its code and no state change, advertise / replace / withdraw, the `services` query, and
//! what jailing and unbonding do to the listing.

use magnet_core::{Address, ModuleError, MsgResult};
use magnet_registry::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::Chain;
use serde_json::json;

const BUDGET: u128 = 10_000_000;

type Delivered = Result<Vec<MsgResult>, ModuleError>;

/// Three registered, heart-beating nodes; job 1 with a merged round (trained by nodes 1 and 2),
/// job 2 with a merged round, and job 3 without one.
fn served() -> (Chain, Vec<Node>) {
    let (mut c, nodes) = setup(3);
    c.begin(1).unwrap();
    let a = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 50_000);
    let b = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 50_000);
    let none = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 50_000);
    c.end().unwrap();
    assert_eq!((a, b, none), (1, 2, 3));
    train_round(&mut c, &nodes, a, 0, &[(1, 3), (2, 1)]);
    train_round(&mut c, &nodes, b, 0, &[(1, 2)]);
    (c, nodes)
}

fn advertise(
    c: &mut Chain,
    n: &Node,
    job: u64,
    endpoint: &str,
    price: u128,
    ctx: u64,
) -> Delivered {
    c.deliver(
        &n.node,
        &[msgs::advertise_service(&n.node, job, endpoint, price, ctx)],
    )
}

/// A raw `MsgAdvertiseService` (price as a string), signed by `n`'s node key.
fn advertise_raw(c: &mut Chain, n: &Node, job: u64, endpoint: &str, price: &str, ctx: u64) -> u32 {
    let m = magnet_core::msg::to_any(&msgs::MsgAdvertiseService {
        node: n.node.to_string(),
        job,
        endpoint: endpoint.into(),
        price_per_token: price.into(),
        max_context: ctx,
    });
    let e = c.deliver(&n.node, &[m]).unwrap_err();
    assert_eq!(e.codespace, "registry", "{}", e.log);
    e.code
}

fn services(c: &Chain, job: &str) -> serde_json::Value {
    c.query("/magnet.registry.v1/services", job.as_bytes())
        .unwrap()
}

fn set_cap(c: &mut Chain, cap: u64) {
    c.with_ctx(|ctx| {
        let mut p = magnet_registry::state::params(ctx.store()).unwrap();
        p.max_services_per_node = cap;
        magnet_registry::state::set_params(ctx.store_mut(), &p);
    });
}

fn jail(c: &mut Chain, op: &Address, until: u64) {
    c.with_ctx(|ctx| {
        let reg = ctx.services().registry().unwrap();
        reg.jail(ctx, op, until).unwrap();
    });
}

#[test]
fn every_refusal_of_advertise_service_names_its_reason_and_changes_nothing() {
    let (mut c, nodes) = served();
    let n = &nodes[0];
    c.begin(1).unwrap();
    advertise(&mut c, n, 1, "https://a.example:8443/v1", 5, 4096).unwrap();
    c.end().unwrap();
    // Node 1 jailed, node 2 unbonding.
    jail(&mut c, &nodes[1].op, T0 + 1_000_000);
    c.begin(1).unwrap();
    c.deliver(&nodes[2].op, &[msgs::unbond_node(&nodes[2].op)])
        .unwrap();
    c.end().unwrap();
    set_cap(&mut c, 1);
    let stranger = node(7);
    let ok = "https://serve.example:8443";
    c.begin(1).unwrap();
    let before = c.snapshot();
    let too_long = format!("https://{}", "a".repeat(249));
    assert_eq!(too_long.len(), 257);
    let cases: Vec<(&str, Delivered, (&str, u32))> = vec![
        (
            "unregistered node key",
            advertise(&mut c, &stranger, 1, ok, 1, 4096),
            ("registry", 7),
        ),
        (
            "signed by the operator, not the node key",
            c.deliver(&n.op, &[msgs::advertise_service(&n.node, 1, ok, 1, 4096)]),
            ("sdk", 8),
        ),
        (
            "signed by another node key",
            c.deliver(
                &nodes[1].node,
                &[msgs::advertise_service(&n.node, 1, ok, 1, 4096)],
            ),
            ("sdk", 8),
        ),
        (
            "jailed",
            advertise(&mut c, &nodes[1], 1, ok, 1, 4096),
            ("registry", 17),
        ),
        (
            "unbonding",
            advertise(&mut c, &nodes[2], 1, ok, 1, 4096),
            ("registry", 11),
        ),
        (
            "job 0",
            advertise(&mut c, n, 0, ok, 1, 4096),
            ("registry", 14),
        ),
        (
            "unknown job",
            advertise(&mut c, n, 99, ok, 1, 4096),
            ("registry", 22),
        ),
        (
            "job without a merged round",
            advertise(&mut c, n, 3, ok, 1, 4096),
            ("registry", 23),
        ),
        (
            "over the per-node cap",
            advertise(&mut c, n, 2, ok, 1, 4096),
            ("registry", 21),
        ),
        (
            "endpoint over 256 bytes",
            advertise(&mut c, n, 1, &too_long, 1, 4096),
            ("registry", 13),
        ),
        (
            "max_context 0",
            advertise(&mut c, n, 1, ok, 1, 0),
            ("registry", 20),
        ),
        (
            "max_context over the limit",
            advertise(&mut c, n, 1, ok, 1, msgs::MAX_CONTEXT + 1),
            ("registry", 20),
        ),
        (
            "price over the limit",
            advertise(&mut c, n, 1, ok, msgs::MAX_PRICE_PER_TOKEN + 1, 4096),
            ("registry", 19),
        ),
        (
            "withdrawal of a job not advertised",
            c.deliver(&n.node, &[msgs::withdraw_service(&n.node, 2)]),
            ("registry", 24),
        ),
        (
            "withdrawal signed by the operator",
            c.deliver(&n.op, &[msgs::withdraw_service(&n.node, 1)]),
            ("sdk", 8),
        ),
    ];
    for (why, r, (space, code)) in cases {
        let e = r.expect_err(why);
        assert_eq!(
            (e.codespace.as_str(), e.code),
            (space, code),
            "{why}: {}",
            e.log
        );
    }
    for bad in [
        "",
        "serve.example:8443",
        "ftp://serve.example",
        "HTTPS://serve.example",
        "https://",
        "https:///v1",
        "https://:8443",
        "https://user@serve.example",
        "https://serve.example:0",
        "https://serve.example:65536",
        "https://serve.example:port",
        "https://serve.example:",
        "https://serve example",
        "https://serve_example",
        "https://[::1",
        "https://[]:80",
        "https://[::1]x",
        "https://serve.example/\u{e9}",
    ] {
        assert_eq!(advertise_raw(&mut c, n, 1, bad, "1", 4096), 18, "{bad:?}");
    }
    for bad in [
        "",
        "-1",
        "1.5",
        "abc",
        "1e3",
        " 1",
        "1uatom",
        "1000000000001",
    ] {
        assert_eq!(advertise_raw(&mut c, n, 1, ok, bad, 4096), 19, "{bad:?}");
    }
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn a_node_advertises_replaces_and_withdraws_and_the_query_lists_it_by_job() {
    let (mut c, nodes) = served();
    assert_eq!(services(&c, ""), json!([]));
    c.begin(1).unwrap();
    advertise(&mut c, &nodes[0], 1, "https://a.example:8443/v1", 5, 4096).unwrap();
    advertise(&mut c, &nodes[1], 1, "http://10.0.0.7:8000", 0, 2048).unwrap();
    advertise(&mut c, &nodes[0], 2, "https://[2001:db8::1]:443", 7, 1024).unwrap();
    c.end().unwrap();
    let h1 = c.block.height;
    let row = |n: &Node, job: u64, endpoint: &str, price: &str, ctx: u64, h: u64| {
        json!({
            "node": n.node.to_string(),
            "operator": n.op.to_string(),
            "node_id": n.node_id,
            "job": job,
            "endpoint": endpoint,
            "price_per_token": price,
            "max_context": ctx,
            "height": h,
        })
    };
    // Ordered by (job, node-key address bytes).
    let mut job1 = vec![
        row(&nodes[0], 1, "https://a.example:8443/v1", "5", 4096, h1),
        row(&nodes[1], 1, "http://10.0.0.7:8000", "0", 2048, h1),
    ];
    job1.sort_by_key(|r| {
        let a: Address = r["node"].as_str().unwrap().parse().unwrap();
        a.as_bytes().to_vec()
    });
    let job2 = vec![row(
        &nodes[0],
        2,
        "https://[2001:db8::1]:443",
        "7",
        1024,
        h1,
    )];
    let all: Vec<serde_json::Value> = job1.iter().chain(&job2).cloned().collect();
    assert_eq!(services(&c, ""), json!(all));
    assert_eq!(services(&c, "1"), json!(job1));
    assert_eq!(services(&c, " 2 "), json!(job2));
    assert_eq!(services(&c, "3"), json!([]));
    let ev = c.events_of("magnet.registry.service_advertised");
    assert_eq!(ev.len(), 3);
    assert_eq!(
        ev[0].get("operator"),
        Some(nodes[0].op.to_string().as_str())
    );
    assert_eq!(ev[0].get("replaced"), Some("false"));
    // Re-advertising job 1 replaces node 0's row (even at the cap) at the new height.
    set_cap(&mut c, 2);
    c.begin(1).unwrap();
    advertise(&mut c, &nodes[0], 1, "https://b.example", 9, 8192).unwrap();
    c.end().unwrap();
    let h2 = c.block.height;
    let rows = services(&c, "1");
    let mine: Vec<&serde_json::Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["node"] == nodes[0].node.to_string())
        .collect();
    assert_eq!(
        mine,
        vec![&row(&nodes[0], 1, "https://b.example", "9", 8192, h2)]
    );
    assert_eq!(
        c.events_of("magnet.registry.service_advertised")[3].get("replaced"),
        Some("true")
    );
    // Withdraw job 2: gone from both the listing and the state (record and index).
    c.begin(1).unwrap();
    c.deliver(&nodes[0].node, &[msgs::withdraw_service(&nodes[0].node, 2)])
        .unwrap();
    c.end().unwrap();
    assert_eq!(services(&c, "2"), json!([]));
    assert_eq!(services(&c, "").as_array().unwrap().len(), 2);
    assert_eq!(c.events_of("magnet.registry.service_withdrawn").len(), 1);
    let jobs = magnet_registry::state::service_jobs(&c.store, &nodes[0].node).unwrap();
    assert_eq!(jobs, vec![1]);
    // A query with data that is not a job id is refused.
    assert!(c.query("/magnet.registry.v1/services", b"one").is_err());
}

#[test]
fn jailed_and_unbonding_nodes_are_not_listed_and_an_unbonded_node_loses_its_advertisements() {
    let (mut c, nodes) = served();
    c.begin(1).unwrap();
    for n in &nodes {
        advertise(&mut c, n, 1, "https://serve.example", 1, 4096).unwrap();
    }
    c.end().unwrap();
    let listed = |c: &Chain| -> Vec<String> {
        let mut v: Vec<String> = services(c, "1")
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["operator"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let ops = |ix: &[usize]| -> Vec<String> {
        let mut v: Vec<String> = ix.iter().map(|i| nodes[*i].op.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(listed(&c), ops(&[0, 1, 2]));
    // Jailed: hidden, kept; withdrawing is still allowed.
    let now = c.block.time_secs;
    jail(&mut c, &nodes[1].op, now + 100);
    assert_eq!(listed(&c), ops(&[0, 2]));
    // Unbonding: hidden at once.
    c.begin(1).unwrap();
    c.deliver(&nodes[2].op, &[msgs::unbond_node(&nodes[2].op)])
        .unwrap();
    c.end().unwrap();
    let unbonded_at = c.block.time_secs + 5_000;
    assert_eq!(listed(&c), ops(&[0]));
    // Unjailed: listed again without re-advertising.
    c.empty_block(200).unwrap();
    c.begin(1).unwrap();
    c.deliver(&nodes[1].op, &[msgs::unjail(&nodes[1].op)])
        .unwrap();
    c.end().unwrap();
    assert_eq!(listed(&c), ops(&[0, 1]));
    // The unbonding completes (delay 5000 s; nodes 0 and 1 keep beating so that no downtime
    // jails them): the node key's advertisements are deleted.
    assert_eq!(
        magnet_registry::state::service_jobs(&c.store, &nodes[2].node).unwrap(),
        vec![1]
    );
    run_until(&mut c, unbonded_at + 10, 10, &nodes[..2]);
    assert!(c
        .query(
            "/magnet.registry.v1/node",
            nodes[2].op.to_string().as_bytes()
        )
        .unwrap()
        .is_null());
    assert!(
        magnet_registry::state::service_jobs(&c.store, &nodes[2].node)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        magnet_registry::state::services(&c.store, Some(1))
            .unwrap()
            .len(),
        2
    );
    assert_eq!(listed(&c), ops(&[0, 1]));
}
