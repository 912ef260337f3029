//! A whole epoch through every incentive module, wired as the app wires them: register →
//! heartbeat → commit → reveal → evaluator commit-reveal → challenge window → settlement,
//! and the payouts equal R_i computed here, independently, from the formula.

use magnet_core::Address;
use magnet_testkit::fixtures::*;
use magnet_testkit::magnet_contrib::msgs as cm;
use magnet_testkit::magnet_contrib::state::Work;
use std::collections::BTreeMap;

fn work(steps: u64, params: u64, kind: &str, tag: u8, entries: &[(u64, [u8; 32])]) -> Work {
    Work {
        checkpoint_hash: [tag; 32],
        steps,
        params,
        data_hash: [tag.wrapping_add(1); 32],
        kind: kind.into(),
        entries: entries.to_vec(),
    }
}

/// Evaluators of `contributor`'s job-`job` contribution in `epoch`, with slots.
fn assigned(
    c: &magnet_testkit::Chain,
    epoch: u64,
    job: u64,
    contributor: &Address,
) -> Vec<(Address, u32)> {
    let v = c
        .query(
            "/magnet.contrib.v1/assignments",
            format!("{epoch}/{job}/{contributor}").as_bytes(),
        )
        .unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let a: Address = pair[0].as_str().unwrap().parse().unwrap();
            (a, pair[1]["slots"].as_u64().unwrap() as u32)
        })
        .collect()
}

#[test]
fn a_full_epoch_pays_exactly_the_formula() {
    let nodes: Vec<Node> = (0..6).map(node).collect();
    let by_op: BTreeMap<Address, Node> = nodes.iter().map(|n| (n.op, n.clone())).collect();
    let mut c = chain(6);

    // Register: operator-signed, bond escrowed.
    let bonds = [
        2_000_000_000u128,
        1_000_000_000,
        10_000_000_000,
        300_000_000,
        300_000_000,
        300_000_000,
    ];
    let tiers = [
        "gpu_compute",
        "gpu_compute",
        "orchestrator",
        "cpu_only",
        "cpu_only",
        "cpu_only",
    ];
    c.begin(1).unwrap();
    for (i, n) in nodes.iter().enumerate() {
        n.register(&mut c, tiers[i], bonds[i]).unwrap();
    }
    c.end().unwrap();

    // Heartbeats; a training job whose round 0 merges Δs of nodes 0 and 1 (signed claims of
    // 1,000 and 500 steps); three contributors commit. Node 2's research result names no
    // verified work, so its compute is 0 whatever it reports.
    run_until(&mut c, T0 + 40, 10, &nodes);
    c.begin(1).unwrap();
    let job = magnet_testkit::flow::training_job(
        &mut c,
        &nodes[5].op,
        1_000_000,
        10_000_000,
        T0 + 90_000,
    );
    c.end().unwrap();
    let e = magnet_testkit::flow::train_round(&mut c, &nodes, job, 0, &[(0, 1_000), (1, 500)]);
    let works = [
        (0usize, work(1_000, 1_000_000, "training", 1, &[e[0].1])),
        (1, work(500, 1_000_000, "training", 2, &[e[1].1])),
        (2, work(100, 1_000_000, "research", 3, &[])),
    ];
    c.begin(5).unwrap();
    for (i, w) in &works {
        let n = &nodes[*i];
        let h = cm::work_commitment(&c.block.chain_id, 0, job, &n.op, w, b"nonce-1");
        c.deliver(&n.node, &[cm::commit(&n.node, 0, job, h)])
            .unwrap();
    }
    c.end().unwrap();

    // Reveal window.
    run_until(&mut c, T0 + 210, 10, &nodes);
    c.begin(1).unwrap();
    for (i, w) in &works {
        let n = &nodes[*i];
        c.deliver(&n.node, &[cm::reveal(&n.node, 0, job, w, b"nonce-1")])
            .unwrap();
    }
    c.end().unwrap();

    // Reveal window closes at T0+300: evaluators are drawn.
    run_until(&mut c, T0 + 310, 10, &nodes);
    let scores = [400_000i64, 300_000, 200_000];
    let mut slots: BTreeMap<Address, u128> = BTreeMap::new();
    c.begin(1).unwrap();
    for (k, (i, _)) in works.iter().enumerate() {
        let contributor = nodes[*i].op;
        let evs = assigned(&c, 0, job, &contributor);
        assert_eq!(
            evs.iter().map(|(_, s)| s).sum::<u32>(),
            5,
            "five slots per contribution"
        );
        assert!(
            evs.iter().all(|(e, _)| *e != contributor),
            "nobody evaluates itself"
        );
        for (ev, s) in evs {
            // Evaluators are paid for contributions that earn (q > 0 and c > 0): not node 2's.
            if !works[k].1.entries.is_empty() {
                *slots.entry(ev).or_default() += s as u128;
            }
            let n = &by_op[&ev];
            let h = cm::score_commitment(
                &c.block.chain_id,
                0,
                job,
                &contributor,
                &ev,
                scores[k],
                b"ev",
            );
            c.deliver(
                &n.node,
                &[cm::eval_commit(&n.node, 0, job, &contributor, h)],
            )
            .unwrap();
        }
    }
    c.end().unwrap();

    // Evaluator reveal window [T0+400, T0+500).
    run_until(&mut c, T0 + 410, 10, &nodes);
    c.begin(1).unwrap();
    for (k, (i, _)) in works.iter().enumerate() {
        let contributor = nodes[*i].op;
        for (ev, _) in assigned(&c, 0, job, &contributor) {
            let n = &by_op[&ev];
            c.deliver(
                &n.node,
                &[cm::eval_reveal(
                    &n.node,
                    0,
                    job,
                    &contributor,
                    scores[k],
                    b"ev",
                )],
            )
            .unwrap();
        }
    }
    c.end().unwrap();

    // Past the challenge window and to the end of epoch 1: epoch 0 settles.
    run_until(&mut c, T0 + 2 * EPOCH, 10, &nodes);
    assert_eq!(c.epoch(), 2);
    let s = c.query("/magnet.rewards.v1/settlement", b"0").unwrap();
    assert!(!s.is_null(), "epoch 0 settled at the end of epoch 1");

    // Independent computation: P_e = 10 % to evaluators by slots; R_i = ⌊P_c·T_i·q_i·c_i / Σ⌋.
    let pool = POOL;
    let pe = pool / 10;
    let pc = pool - pe;
    let t = [1_000u128, 1_000, 3_000];
    let w: Vec<u128> = works
        .iter()
        .enumerate()
        .map(|(k, (_, wk))| {
            // Compute is the signed steps of the named lineage entries × the job's parameters.
            let c = if wk.entries.is_empty() {
                0
            } else {
                wk.steps as u128 * 1_000_000
            };
            t[k] * scores[k] as u128 * c
        })
        .collect();
    let total_w: u128 = w.iter().sum();
    let mut expect: BTreeMap<Address, u128> = BTreeMap::new();
    for (k, (i, _)) in works.iter().enumerate() {
        *expect.entry(nodes[*i].op).or_default() += pc * w[k] / total_w;
    }
    let total_slots: u128 = slots.values().sum();
    for (ev, s) in &slots {
        *expect.entry(*ev).or_default() += pe * s / total_slots;
    }
    let paid: u128 = expect.values().sum();
    for (i, n) in nodes.iter().enumerate() {
        let got = c.balance(&n.op);
        let budget = if i == 5 { 10_000_000 } else { 0 };
        let want = FUNDS - bonds[i] - budget + expect.get(&n.op).copied().unwrap_or(0);
        assert_eq!(got, want, "node {i} balance");
    }
    let dust: u128 = s["dust"].as_str().unwrap().parse().unwrap();
    assert_eq!(paid + dust, pool, "Σ R_i + dust = R_pool");
    assert_eq!(c.balance(&magnet_core::community_pool()), dust);
    assert!(
        c.events_of("magnet.slashing.slashed").is_empty(),
        "honest nodes are never slashed"
    );
    // Supply = genesis + minted − burned.
    let minted: u128 = c
        .query("/magnet.emission.v1/minted_total", b"")
        .unwrap()
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(minted, 2 * POOL);
    assert_eq!(c.supply(), c.genesis_supply + minted - c.burned());

    // Settlement is exactly once: a second attempt is refused with its own code, state unchanged.
    let before = c.snapshot();
    let err = c
        .with_ctx(|ctx| magnet_rewards::handler::settle(ctx, 0))
        .unwrap_err();
    assert_eq!(magnet_core::ModuleError::from(err).code, 2);
    assert_eq!(c.snapshot(), before);
}
