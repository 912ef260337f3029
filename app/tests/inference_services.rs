//! Inference-service advertisements (ADR 0109) through the whole app with real signed txs:
//! the registry reaches the jobs service from FinalizeBlock (a job without a merged round is
//! refused, one with a merged round is accepted), a tx signed by the operator instead of the
//! node key is refused by the ante, and `/magnet.registry.v1/services` answers through the
//! app's query router.

mod common;

use common::*;
use magnet_app::abci as pb;
use magnet_app::testkit::{Signer, TxBuilder};
use magnet_app::Application;
use magnet_core::Address;
use magnet_testkit::fixtures::app_state as incentive_state;
use magnet_testkit::magnet_jobs::msgs as jm;
use magnet_testkit::magnet_registry::msgs as rm;
use std::collections::BTreeMap;

const FUNDS: u128 = 100_000_000_000;
const T0: i64 = GENESIS_TIME;

struct Net {
    h: Harness,
    t: i64,
    genesis_numbers: BTreeMap<Address, u64>,
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
            b = b.msg(cosmrs::Any {
                type_url: m.type_url,
                value: m.value,
            });
        }
        b.sign(s)
    }

    fn block(&mut self, t: i64, txs: Vec<Vec<u8>>) -> Vec<(String, u32, String)> {
        self.t = t;
        let r: pb::ResponseFinalizeBlock = self.h.block_at(t, txs);
        r.tx_results
            .iter()
            .map(|x| (x.codespace.clone(), x.code, x.log.clone()))
            .collect()
    }

    fn ok_block(&mut self, t: i64, txs: Vec<Vec<u8>>) {
        for (space, code, log) in self.block(t, txs) {
            assert_eq!(code, 0, "{space}: {log}");
        }
    }

    fn q(&self, path: &str, data: &str) -> serde_json::Value {
        let r = self.h.query(path, data.as_bytes().to_vec(), 0);
        assert_eq!(r.code, 0, "{path}: {}", r.log);
        serde_json::from_slice(&r.value).unwrap()
    }
}

#[test]
fn a_node_key_advertises_a_served_model_through_the_app_and_the_query_lists_it() {
    let ops: Vec<Signer> = (0..2).map(|i| Signer::from_seed(10 + i)).collect();
    let nodes: Vec<Signer> = (0..2).map(|i| Signer::from_seed(100 + i)).collect();
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
    let txs = (0..2)
        .map(|i| {
            net.tx(
                &ops[i],
                vec![rm::register_node(
                    &ops[i].address(),
                    &nodes[i].pub_key(),
                    "gpu_compute",
                    "https://n",
                    "eu",
                    "{}",
                    1_000_000_000,
                )],
            )
        })
        .collect();
    net.ok_block(T0 + 1, txs);
    // A training job whose round 0 starts two blocks on.
    let spec = magnet_testkit::flow::spec(1_000_000, net.h.height as u64 + 2);
    let create = jm::create_training_job(
        &ops[0].address(),
        "bitnet-lm",
        [1; 32],
        [0xB0; 32],
        10_000_000,
        (T0 + 90_000) as u64,
        Some(&spec),
    );
    let mut txs = vec![net.tx(&ops[0], vec![create])];
    txs.extend(
        nodes
            .iter()
            .map(|n| net.tx(n, vec![rm::heartbeat(&n.address())])),
    );
    net.ok_block(T0 + 2, txs);
    let job = 1u64;
    let n0 = &nodes[0];
    let ad = |endpoint: &str| rm::advertise_service(&n0.address(), job, endpoint, 3, 4096);

    // No merged round yet: refused in FinalizeBlock with registry/23 (the registry read the
    // jobs service); signed by the operator instead of the node key: refused by the ante.
    let txs = vec![
        net.tx(n0, vec![ad("https://serve.example:8443")]),
        net.tx(&ops[0], vec![ad("https://serve.example:8443")]),
    ];
    let r = net.block(T0 + 3, txs);
    assert_eq!((r[0].0.as_str(), r[0].1), ("registry", 23), "{}", r[0].2);
    assert_ne!(
        r[1].1, 0,
        "an operator-signed advertisement must be refused"
    );
    assert_eq!(
        net.q("/magnet.registry.v1/services", ""),
        serde_json::json!([])
    );

    // Round 0 recorded by its elected leader with one signed claim.
    for _ in 0..3 {
        if net.q("/magnet.jobs.v1/election", "1/0")["leader"].is_string() {
            break;
        }
        let t = net.t + 1;
        net.ok_block(t, vec![]);
    }
    let leader_id = net.q("/magnet.jobs.v1/election", "1/0")["leader"]
        .as_str()
        .expect("round 0 elected")
        .to_string();
    let node_id = |s: &Signer| magnet_testkit::magnet_registry::state::node_id(&s.pub_key());
    let leader = nodes
        .iter()
        .find(|n| node_id(n) == leader_id)
        .unwrap()
        .clone();
    let mut a = jm::Accepted {
        node: nodes[1].address(),
        job,
        round: 0,
        base_hash: [0xB0; 32],
        delta_hash: [0xD1; 32],
        steps: 100,
        tokens: 100,
        signature: Vec::new(),
        weight_ppm: 1_000_000,
        content_address: [0u8; 32],
    };
    a.signature = a
        .claim(CHAIN_ID)
        .sign(&nodes[1].secret_bytes())
        .unwrap()
        .to_vec();
    let rec = jm::record_round(&leader.address(), job, 0, [0xB0; 32], [0xEE; 32], &[a], &[]);
    let txs = vec![net.tx(&leader, vec![rec])];
    let t = net.t + 1;
    net.ok_block(t, txs);

    // Now the advertisement is accepted and listed, with the operator to pay.
    let txs = vec![net.tx(n0, vec![ad("https://serve.example:8443")])];
    let t = net.t + 1;
    net.ok_block(t, txs);
    let height = net.h.height;
    let want = serde_json::json!([{
        "node": n0.address().to_string(),
        "operator": ops[0].address().to_string(),
        "node_id": node_id(n0),
        "job": job,
        "endpoint": "https://serve.example:8443",
        "price_per_token": "3",
        "max_context": 4096,
        "height": height,
    }]);
    assert_eq!(net.q("/magnet.registry.v1/services", ""), want);
    assert_eq!(net.q("/magnet.registry.v1/services", "1"), want);
    assert_eq!(
        net.q("/magnet.registry.v1/services", "2"),
        serde_json::json!([])
    );
    // Withdrawn: gone.
    let txs = vec![net.tx(n0, vec![rm::withdraw_service(&n0.address(), job)])];
    let t = net.t + 1;
    net.ok_block(t, txs);
    assert_eq!(
        net.q("/magnet.registry.v1/services", ""),
        serde_json::json!([])
    );
}
