//! Round records are authenticated on chain (ADR 0088): only the elected leader of a started
//! round records it, on the current head, with producer-signed, bounded claims whose weights
//! the chain recomputes. Every refusal leaves the state unchanged.

use magnet_jobs::msgs::{self, Accepted};
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use proptest::prelude::*;

const BUDGET: u128 = 10_000_000;

/// A chain with 4 nodes and a training job (H = 8, batch 2 × seq 4, rounds every 2 blocks);
/// returns the chain, nodes, job id and round 0's leader index.
fn started() -> (magnet_testkit::Chain, Vec<Node>, u64, usize) {
    let (mut c, nodes) = setup(4);
    c.begin(1).unwrap();
    let mut s = spec(1_000, c.block.height + 1);
    s.inner_steps = 8;
    s.batch_size = 2;
    s.seq_len = 4;
    c.deliver(
        &nodes[0].op,
        &[msgs::create_training_job(
            &nodes[0].op,
            "bitnet-lm",
            [1; 32],
            BASE_CHECKPOINT,
            BUDGET,
            T0 + 50_000,
            Some(&s),
        )],
    )
    .unwrap();
    c.end().unwrap();
    c.begin(1).unwrap();
    for n in &nodes {
        n.heartbeat(&mut c).unwrap();
    }
    c.end().unwrap();
    let leader = elected(&c, 1, 0).expect("round 0 started");
    let li = nodes.iter().position(|n| n.node_id == leader).unwrap();
    (c, nodes, 1, li)
}

fn honest(c: &magnet_testkit::Chain, nodes: &[Node], job: u64, round: u64) -> Vec<Accepted> {
    let mut v: Vec<Accepted> = (0..3)
        .map(|i| {
            signed(
                c,
                &nodes[i],
                job,
                round,
                BASE_CHECKPOINT,
                [0x10 + i as u8; 32],
                8,
                8 * 8,
            )
        })
        .collect();
    v[2].tokens = 40;
    v[2].signature = v[2]
        .claim(&c.block.chain_id)
        .sign(&nodes[2].node_sk)
        .unwrap()
        .to_vec();
    honest_weights(&mut v, nodes);
    v
}

fn record(
    leader: &Node,
    job: u64,
    round: u64,
    base: [u8; 32],
    acc: &[Accepted],
) -> prost_types::Any {
    msgs::record_round(&leader.node, job, round, base, [0xEE; 32], acc, &[])
}

#[test]
fn the_elected_leader_records_a_round_whose_weights_follow_the_signed_claims() {
    let (mut c, nodes, job, li) = started();
    let acc = honest(&c, &nodes, job, 0);
    c.begin(1).unwrap();
    c.deliver(
        &nodes[li].node,
        &[record(&nodes[li], job, 0, BASE_CHECKPOINT, &acc)],
    )
    .unwrap();
    c.end().unwrap();
    let l = c
        .query("/magnet.jobs.v1/lineage", job.to_string().as_bytes())
        .unwrap();
    let r = &l["rounds"][0];
    assert_eq!(r["leader_node_id"], nodes[li].node_id);
    assert_eq!(r["accepted"].as_array().unwrap().len(), 3);
    let sum: u64 = r["accepted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["weight_ppm"].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 1_000_000);
    // 64 : 64 : 40 tokens.
    for e in &acc {
        let got: u64 = l["shares"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| {
                p[0] == nodes
                    .iter()
                    .find(|n| n.node == e.node)
                    .unwrap()
                    .op
                    .to_string()
            })
            .map(|p| p[1].as_str().unwrap().parse().unwrap())
            .unwrap();
        assert_eq!(got, u64::from(e.weight_ppm));
    }
    assert_eq!(acc[2].weight_ppm, 238_095);
}

/// Every way a round record can be wrong, each refused with its code and no state change.
#[test]
fn every_unauthenticated_or_invented_round_record_is_refused_and_changes_nothing() {
    let (mut c, nodes, job, li) = started();
    let other = (li + 1) % nodes.len();
    let leader = nodes[li].clone();
    let good = honest(&c, &nodes, job, 0);
    type Case = (
        &'static str,
        Box<dyn Fn(&magnet_testkit::Chain) -> (Node, prost_types::Any)>,
        &'static str,
        u32,
    );
    let l2 = leader.clone();
    let g = good.clone();
    let ns = nodes.clone();
    let cases: Vec<Case> = vec![
        (
            "a registered node that is not the elected leader",
            {
                let (n, g) = (nodes[other].clone(), g.clone());
                Box::new(move |_| (n.clone(), record(&n, job, 0, BASE_CHECKPOINT, &g)))
            },
            "jobs",
            11,
        ),
        (
            "a round whose start height has not been reached",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| (l.clone(), record(&l, job, 5, BASE_CHECKPOINT, &g)))
            },
            "jobs",
            6,
        ),
        (
            // Issue 17's overflow case: the next round number is computed from the last
            // recorded one; u64::MAX must be refused, never wrap or panic.
            "a round numbered u64::MAX",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| (l.clone(), record(&l, job, u64::MAX, BASE_CHECKPOINT, &g)))
            },
            "jobs",
            6,
        ),
        (
            "a base that is not the job's head",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| (l.clone(), record(&l, job, 0, [0x77; 32], &g)))
            },
            "jobs",
            6,
        ),
        (
            "an unknown job",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| (l.clone(), record(&l, 99, 0, BASE_CHECKPOINT, &g)))
            },
            "jobs",
            2,
        ),
        (
            "a claim signed by another node's key",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[0].signature = a[0]
                        .claim(&c.block.chain_id)
                        .sign(&ns[3].node_sk)
                        .unwrap()
                        .to_vec();
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "a claim whose steps were inflated after signing",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| {
                    let mut a = g.clone();
                    a[1].tokens *= 100;
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "a signed claim over the round's bound (100x steps and tokens)",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[0] = signed(c, &ns[0], job, 0, BASE_CHECKPOINT, [0x10; 32], 800, 6_400);
                    honest_weights(&mut a, &ns);
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "a claim signed for another round",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[0] = signed(c, &ns[0], job, 1, BASE_CHECKPOINT, [0x10; 32], 8, 64);
                    honest_weights(&mut a, &ns);
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "a claim on a base outside the lineage",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[0] = signed(c, &ns[0], job, 0, [0x55; 32], [0x10; 32], 8, 64);
                    honest_weights(&mut a, &ns);
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "a producer that is not a registered node",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |c| {
                    let stranger = node(77);
                    let mut a = g.clone();
                    let w = a[0].weight_ppm;
                    a[0] = signed(c, &stranger, job, 0, BASE_CHECKPOINT, [0x10; 32], 8, 64);
                    a[0].weight_ppm = w;
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            12,
        ),
        (
            "the same Δ twice in one record",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[1] = signed(c, &ns[1], job, 0, BASE_CHECKPOINT, [0x10; 32], 8, 64);
                    honest_weights(&mut a, &ns);
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            13,
        ),
        (
            "one node twice in one record",
            {
                let (l, g, ns) = (l2.clone(), g.clone(), ns.clone());
                Box::new(move |c| {
                    let mut a = g.clone();
                    a[1] = signed(c, &ns[0], job, 0, BASE_CHECKPOINT, [0x99; 32], 8, 64);
                    honest_weights(&mut a, &ns);
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            13,
        ),
        (
            "weights the claims do not give (one producer takes the merge)",
            {
                let (l, g) = (l2.clone(), g.clone());
                Box::new(move |_| {
                    let mut a = g.clone();
                    a[0].weight_ppm = 999_998;
                    a[1].weight_ppm = 1;
                    a[2].weight_ppm = 1;
                    (l.clone(), record(&l, job, 0, BASE_CHECKPOINT, &a))
                })
            },
            "jobs",
            14,
        ),
    ];
    c.begin(1).unwrap();
    let before = c.snapshot();
    for (what, make, space, code) in &cases {
        let (signer, msg) = make(&c);
        let e = c.deliver(&signer.node, &[msg]).unwrap_err();
        assert_eq!(
            (e.codespace.as_str(), e.code),
            (*space, *code),
            "{what}: {}",
            e.log
        );
        assert_eq!(c.snapshot(), before, "{what} changed the state");
    }
    // The honest record still goes through afterwards; then its Δs cannot be merged again and
    // round 0 cannot be recorded again.
    c.deliver(
        &leader.node,
        &[record(&leader, job, 0, BASE_CHECKPOINT, &good)],
    )
    .unwrap();
    c.end().unwrap();
    for _ in 0..2 {
        c.begin(1).unwrap();
        for n in &nodes {
            n.heartbeat(&mut c).unwrap();
        }
        c.end().unwrap();
    }
    let l1 = elected(&c, job, 1).expect("round 1 started");
    let l1 = nodes.iter().find(|n| n.node_id == l1).unwrap().clone();
    c.begin(1).unwrap();
    let before = c.snapshot();
    let mut replay = good.clone();
    for a in replay.iter_mut() {
        let n = nodes.iter().find(|n| n.node == a.node).unwrap();
        *a = signed(
            &c,
            n,
            job,
            1,
            BASE_CHECKPOINT,
            a.delta_hash,
            a.steps,
            a.tokens,
        );
    }
    honest_weights(&mut replay, &nodes);
    let e = c
        .deliver(
            &l1.node,
            &[msgs::record_round(
                &l1.node,
                job,
                1,
                [0xEE; 32],
                [0xEF; 32],
                &replay,
                &[],
            )],
        )
        .unwrap_err();
    assert_eq!(
        (e.codespace.as_str(), e.code),
        ("jobs", 13),
        "replayed Δs: {}",
        e.log
    );
    let e = c
        .deliver(&l1.node, &[record(&l1, job, 0, [0xEE; 32], &good)])
        .unwrap_err();
    assert!(
        matches!(e.code, 6 | 11),
        "a recorded round again: {}",
        e.log
    );
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn a_job_without_a_training_spec_has_no_rounds() {
    let (mut c, nodes) = setup(2);
    c.begin(1).unwrap();
    c.deliver(
        &nodes[0].op,
        &[msgs::create_job(
            &nodes[0].op,
            "tabular",
            [1; 32],
            BASE_CHECKPOINT,
            BUDGET,
            T0 + 9_000,
        )],
    )
    .unwrap();
    let e = c
        .deliver(
            &nodes[1].node,
            &[record(&nodes[1], 1, 0, BASE_CHECKPOINT, &[])],
        )
        .unwrap_err();
    // An empty accepted list is refused statelessly first.
    assert_eq!(e.code, 9, "{}", e.log);
    let a = signed(&c, &nodes[0], 1, 0, BASE_CHECKPOINT, [3; 32], 1, 1);
    let mut a = vec![a];
    honest_weights(&mut a, &nodes);
    let e = c
        .deliver(
            &nodes[1].node,
            &[record(&nodes[1], 1, 0, BASE_CHECKPOINT, &a)],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 15), "{}", e.log);
    // And a training spec whose round 0 would start in the past is refused at creation.
    let s = spec(10, c.block.height);
    let e = c
        .deliver(
            &nodes[0].op,
            &[msgs::create_training_job(
                &nodes[0].op,
                "bitnet-lm",
                [1; 32],
                BASE_CHECKPOINT,
                BUDGET,
                T0 + 9_000,
                Some(&s),
            )],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 9), "{}", e.log);
    c.end().unwrap();
}

#[test]
fn the_election_names_a_live_member_chosen_by_the_jobs_rule() {
    let (c, nodes, job, li) = started();
    let e = c
        .query("/magnet.jobs.v1/election", format!("{job}/0").as_bytes())
        .unwrap();
    let members: Vec<String> = serde_json::from_value(e["members"].clone()).unwrap();
    let mut ids: Vec<String> = nodes.iter().map(|n| n.node_id.clone()).collect();
    ids.sort();
    assert_eq!(members, ids);
    // Round robin: round 0 → the first node id.
    assert_eq!(nodes[li].node_id, ids[0]);
    assert_eq!(
        c.query("/magnet.jobs.v1/election", format!("{job}/9").as_bytes())
            .unwrap(),
        serde_json::Value::Null
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// For random rounds — honest, or with one entry's weight, tokens or signature tampered —
    /// an honest record is stored with shares equal to the weights recomputed from its signed
    /// claims, and a tampered one is refused with the state unchanged.
    #[test]
    fn recorded_shares_equal_the_weights_recomputed_from_the_signed_claims(
        tokens in proptest::collection::vec(1u64..=64, 1..=4),
        tamper in 0u8..4,
        victim in 0usize..4,
        bump in 1u32..1000,
    ) {
        let (mut c, nodes, job, li) = started();
        let mut acc: Vec<Accepted> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| signed(&c, &nodes[i], job, 0, BASE_CHECKPOINT, [0x40 + i as u8; 32], 8, *t))
            .collect();
        honest_weights(&mut acc, &nodes);
        let v = victim % acc.len();
        match tamper {
            1 if acc.len() > 1 => {
                acc[v].weight_ppm += bump;
                let o = (v + 1) % acc.len();
                acc[o].weight_ppm = acc[o].weight_ppm.saturating_sub(bump).max(1);
            }
            2 => acc[v].tokens += u64::from(bump),
            3 => acc[v].signature[5] ^= 1,
            _ => {}
        }
        let tampered = !(tamper == 0 || (tamper == 1 && acc.len() == 1));
        c.begin(1).unwrap();
        let before = c.snapshot();
        let r = c.deliver(&nodes[li].node, &[record(&nodes[li], job, 0, BASE_CHECKPOINT, &acc)]);
        if tampered {
            prop_assert!(r.is_err());
            prop_assert_eq!(c.snapshot(), before);
        } else {
            prop_assert!(r.is_ok(), "{:?}", r.err());
            let l = c.query("/magnet.jobs.v1/lineage", job.to_string().as_bytes()).unwrap();
            let mut ids: Vec<(String, u64)> = acc
                .iter()
                .enumerate()
                .map(|(i, a)| (nodes[i].node_id.clone(), a.tokens))
                .collect();
            ids.sort();
            let want = magnet_rounds::weights_ppm(
                &ids.iter().map(|(_, t)| u128::from(*t) * 10_000).collect::<Vec<_>>(),
            );
            for (i, a) in acc.iter().enumerate() {
                let k = ids.iter().position(|(id, _)| *id == nodes[i].node_id).unwrap();
                let share: u64 = l["shares"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|p| p[0] == nodes[i].op.to_string())
                    .map(|p| p[1].as_str().unwrap().parse().unwrap())
                    .unwrap();
                prop_assert_eq!(share, u64::from(want[k]));
                prop_assert_eq!(a.weight_ppm, want[k]);
            }
        }
        c.end().unwrap();
    }
}
