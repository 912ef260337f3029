//! A full incentive epoch through the whole app, with real signed txs (SIGN_MODE_DIRECT,
//! secp256k1, account numbers and sequences) delivered through FinalizeBlock + Commit:
//! register (operator keys) → heartbeats, commit, reveal, evaluator commit-reveal (node keys)
//! → challenge window → settlement at the end of the next epoch. Every payout is recomputed
//! here from `R_i = P_c·T_i·q_i·c_i / Σ_j T_j·q_j·c_j` and the evaluator share.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::testkit::{Signer, TxBuilder};
use magnet_app::Application;
use magnet_core::Address;
use magnet_testkit::fixtures::{app_state as incentive_state, EPOCH, POOL};
use magnet_testkit::flow::work;
use magnet_testkit::magnet_contrib::msgs as cm;
use magnet_testkit::magnet_registry::msgs as rm;
use std::collections::BTreeMap;

const FUNDS: u128 = 100_000_000_000;
const T0: i64 = GENESIS_TIME;

struct Net {
    h: Harness,
    t: i64,
    /// Genesis account numbers (before the first commit the account query has no state).
    genesis_numbers: BTreeMap<Address, u64>,
}

fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

impl Net {
    fn tx(&self, s: &Signer, msgs: Vec<prost_types::Any>) -> Vec<u8> {
        let (num, seq) = if self.h.height == 0 {
            (self.genesis_numbers[&s.address()], 0)
        } else {
            self.h.account(&s.address()).expect("account exists")
        };
        let mut b = TxBuilder::new(CHAIN_ID, num, seq).fee(0, 5_000_000);
        for m in msgs {
            b = b.msg(any(m));
        }
        b.sign(s)
    }

    /// A block at time `t`; every tx must succeed unless `allow_fail`.
    fn block_at(&mut self, t: i64, txs: Vec<Vec<u8>>) -> pb::ResponseFinalizeBlock {
        self.t = t;
        self.h.block_at(t, txs)
    }

    fn ok_block(&mut self, t: i64, txs: Vec<Vec<u8>>) {
        let r = self.block_at(t, txs);
        for x in &r.tx_results {
            assert_eq!(x.code, 0, "{}: {}", x.codespace, x.log);
        }
    }

    /// Blocks every 10 s until `t`, every node heart-beating in each.
    fn beat_until(&mut self, t: i64, nodes: &[Signer]) {
        while self.t < t {
            let next = (self.t + 10).min(t);
            let txs = nodes
                .iter()
                .map(|n| self.tx(n, vec![rm::heartbeat(&n.address())]))
                .collect();
            self.ok_block(next, txs);
        }
    }

    fn q(&self, path: &str, data: &str) -> serde_json::Value {
        let r = self.h.query(path, data.as_bytes().to_vec(), 0);
        assert_eq!(r.code, 0, "{path}: {}", r.log);
        serde_json::from_slice(&r.value).unwrap()
    }

    fn assigned(&self, job: u64, who: &Address) -> Vec<(Address, u32)> {
        self.q("/magnet.contrib.v1/assignments", &format!("0/{job}/{who}"))
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_str().unwrap().parse().unwrap(),
                    p[1]["slots"].as_u64().unwrap() as u32,
                )
            })
            .collect()
    }
}

#[test]
fn a_full_epoch_through_the_app_with_signed_txs_pays_exactly_the_formula() {
    let ops: Vec<Signer> = (0..6).map(|i| Signer::from_seed(10 + i)).collect();
    let nodes: Vec<Signer> = (0..6).map(|i| Signer::from_seed(100 + i)).collect();
    let mut accounts: Vec<(Address, u128)> = ops.iter().map(|s| (s.address(), FUNDS)).collect();
    accounts.extend(nodes.iter().map(|s| (s.address(), 1_000)));
    let mut state = magnet_app::testkit::genesis_app_state(&accounts);
    for (k, v) in incentive_state().as_object().unwrap() {
        state[k] = v.clone();
    }
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness::open(tmp.path(), fast_config());
    h.app.init_chain(init_request(&state));
    let genesis_numbers = accounts
        .iter()
        .enumerate()
        .map(|(i, (a, _))| (*a, i as u64))
        .collect();
    let mut net = Net {
        h,
        t: T0,
        genesis_numbers,
    };
    let node_of: BTreeMap<Address, Signer> = ops
        .iter()
        .zip(&nodes)
        .map(|(o, n)| (o.address(), n.clone()))
        .collect();

    // Register: signed by the operator keys.
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
    let txs: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            let m = rm::register_node(
                &ops[i].address(),
                &nodes[i].pub_key(),
                tiers[i],
                "https://n",
                "eu",
                "{}",
                bonds[i],
            );
            net.tx(&ops[i], vec![m])
        })
        .collect();
    net.ok_block(T0 + 1, txs);
    net.beat_until(T0 + 40, &nodes);

    // A training job (operator 5); at round 0's start height the chain elects its leader,
    // who records the round with the signed claims of nodes 0 and 1 (1,000 and 500 steps).
    let height = net.h.height;
    let spec = magnet_testkit::flow::spec(1_000_000, height as u64 + 2);
    let create = magnet_testkit::magnet_jobs::msgs::create_training_job(
        &ops[5].address(),
        "bitnet-lm",
        [1; 32],
        [0xB0; 32],
        10_000_000,
        (T0 + 90_000) as u64,
        Some(&spec),
    );
    let txs = vec![net.tx(&ops[5], vec![create])];
    net.ok_block(T0 + 41, txs);
    net.beat_until(T0 + 43, &nodes);
    let job = 1u64;
    let election = net.q("/magnet.jobs.v1/election", "1/0");
    let leader_id = election["leader"]
        .as_str()
        .expect("round 0 elected")
        .to_string();
    let node_id = |s: &Signer| magnet_testkit::magnet_registry::state::node_id(&s.pub_key());
    let leader = nodes
        .iter()
        .find(|n| node_id(n) == leader_id)
        .unwrap()
        .clone();
    let mut acc: Vec<magnet_testkit::magnet_jobs::msgs::Accepted> = [(0usize, 1_000u64), (1, 500)]
        .iter()
        .map(|(i, steps)| {
            let mut a = magnet_testkit::magnet_jobs::msgs::Accepted {
                node: nodes[*i].address(),
                job,
                round: 0,
                base_hash: [0xB0; 32],
                delta_hash: [0xD0 + *i as u8; 32],
                steps: *steps,
                tokens: *steps,
                signature: Vec::new(),
                weight_ppm: 0,
                content_address: [0u8; 32],
            };
            a.signature = a
                .claim(CHAIN_ID)
                .sign(&nodes[*i].secret_bytes())
                .unwrap()
                .to_vec();
            a
        })
        .collect();
    let mut order: Vec<usize> = vec![0, 1];
    order.sort_by_key(|i| node_id(&nodes[*i]));
    let raws: Vec<u128> = order
        .iter()
        .map(|i| u128::from(acc[*i].tokens) * 10_000)
        .collect();
    for (i, w) in order.into_iter().zip(magnet_rounds::weights_ppm(&raws)) {
        acc[i].weight_ppm = w;
    }
    let rec = magnet_testkit::magnet_jobs::msgs::record_round(
        &leader.address(),
        job,
        0,
        [0xB0; 32],
        [0xEE; 32],
        &acc,
        &[],
    );
    let txs = vec![net.tx(&leader, vec![rec])];
    net.ok_block(T0 + 44, txs);

    // Commit (node keys). Node 2's research result names no verified work: compute 0.
    let mut works = [
        (0usize, work(1_000, 1_000_000, "training", 1)),
        (1, work(500, 1_000_000, "training", 2)),
        (2, work(100, 1_000_000, "research", 3)),
    ];
    works[0].1.entries = vec![(0, [0xD0; 32])];
    works[1].1.entries = vec![(0, [0xD1; 32])];
    let txs = works
        .iter()
        .map(|(i, w)| {
            let h = cm::work_commitment(CHAIN_ID, 0, job, &ops[*i].address(), w, b"nonce");
            net.tx(
                &nodes[*i],
                vec![cm::commit(&nodes[*i].address(), 0, job, h)],
            )
        })
        .collect();
    net.ok_block(T0 + 45, txs);

    // Reveal; a double reveal in the next block fails with contrib/11.
    net.beat_until(T0 + 210, &nodes);
    let txs = works
        .iter()
        .map(|(i, w)| {
            net.tx(
                &nodes[*i],
                vec![cm::reveal(&nodes[*i].address(), 0, job, w, b"nonce")],
            )
        })
        .collect();
    net.ok_block(T0 + 211, txs);
    let again = net.tx(
        &nodes[0],
        vec![cm::reveal(
            &nodes[0].address(),
            0,
            job,
            &works[0].1,
            b"nonce",
        )],
    );
    let r = net.block_at(T0 + 212, vec![again]);
    assert_eq!(
        (r.tx_results[0].codespace.as_str(), r.tx_results[0].code),
        ("contrib", 11)
    );

    // Evaluators drawn at T0+300; they commit, then reveal.
    net.beat_until(T0 + 310, &nodes);
    let scores = [400_000i64, 300_000, 200_000];
    let mut slots: BTreeMap<Address, u128> = BTreeMap::new();
    let mut evals: Vec<(Signer, prost_types::Any, prost_types::Any)> = Vec::new();
    for (k, (i, _)) in works.iter().enumerate() {
        let who = ops[*i].address();
        for (ev, s) in net.assigned(job, &who) {
            // Evaluators are paid only for contributions that earn (c > 0).
            if !works[k].1.entries.is_empty() {
                *slots.entry(ev).or_default() += s as u128;
            }
            let n = node_of[&ev].clone();
            let h = cm::score_commitment(CHAIN_ID, 0, job, &who, &ev, scores[k], b"ev");
            evals.push((
                n.clone(),
                cm::eval_commit(&n.address(), 0, job, &who, h),
                cm::eval_reveal(&n.address(), 0, job, &who, scores[k], b"ev"),
            ));
        }
    }
    // One tx per evaluator node per block (sequences), all its commits in one tx.
    let mut by_node: BTreeMap<Address, (Signer, Vec<prost_types::Any>, Vec<prost_types::Any>)> =
        BTreeMap::new();
    for (n, c, r) in evals {
        let e = by_node
            .entry(n.address())
            .or_insert((n.clone(), Vec::new(), Vec::new()));
        e.1.push(c);
        e.2.push(r);
    }
    let txs = by_node
        .values()
        .map(|(n, c, _)| net.tx(n, c.clone()))
        .collect();
    net.ok_block(T0 + 320, txs);
    net.beat_until(T0 + 410, &nodes);
    let txs = by_node
        .values()
        .map(|(n, _, r)| net.tx(n, r.clone()))
        .collect();
    net.ok_block(T0 + 420, txs);

    // Challenge window passes; epoch 0 settles at the end of epoch 1.
    net.beat_until(T0 + 2 * EPOCH as i64, &nodes);
    let s = net.q("/magnet.rewards.v1/settlement", "0");
    assert!(!s.is_null(), "epoch 0 settled");

    let pool = POOL;
    let pe = pool / 10;
    let pc = pool - pe;
    let t = [1_000u128, 1_000, 3_000];
    let w: Vec<u128> = works
        .iter()
        .enumerate()
        .map(|(k, (_, wk))| {
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
        *expect.entry(ops[*i].address()).or_default() += pc * w[k] / total_w;
    }
    let total_slots: u128 = slots.values().sum();
    for (ev, s) in &slots {
        *expect.entry(*ev).or_default() += pe * s / total_slots;
    }
    for (i, o) in ops.iter().enumerate() {
        assert_eq!(
            net.h.balance(&o.address()),
            FUNDS - bonds[i] - if i == 5 { 10_000_000 } else { 0 }
                + expect.get(&o.address()).copied().unwrap_or(0),
            "operator {i}"
        );
    }
    let dust: u128 = s["dust"].as_str().unwrap().parse().unwrap();
    assert_eq!(expect.values().sum::<u128>() + dust, pool);
    assert!(net
        .q("/magnet.slashing.v1/records", "")
        .as_array()
        .unwrap()
        .is_empty());
}
