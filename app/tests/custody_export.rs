//! Custody state (ADR 0107) through the real app: nodes registered with SSD reports and a
//! stripe registered with its holders' receipts by signed txs; an export imported at the
//! exported block's time has the same app hash and answers the same custody queries.

mod common;

use common::*;
use magnet_app::invariants::check_all;
use magnet_app::testkit::{genesis_app_state, Signer, TxBuilder};
use magnet_app::Application;
use magnet_custody::msgs::{NewStripe, Placement};
use magnet_rounds::custody::{merkle_root, ShardReceipt};

fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

fn tx(h: &Harness, s: &Signer, m: prost_types::Any) -> Vec<u8> {
    let (num, seq) = h.account(&s.address()).unwrap();
    TxBuilder::new(CHAIN_ID, num, seq)
        .fee(0, 2_000_000)
        .msg(any(m))
        .sign(s)
}

#[test]
fn an_export_with_custody_stripes_imports_with_the_same_app_hash() {
    use magnet_testkit::magnet_registry::msgs as rm;
    let ops: Vec<Signer> = (0..7).map(|i| Signer::from_seed(100 + i)).collect();
    let nodes: Vec<Signer> = (0..7).map(|i| Signer::from_seed(200 + i)).collect();
    let accounts: Vec<_> = ops
        .iter()
        .chain(nodes.iter())
        .map(|s| (s.address(), 100_000_000_000u128))
        .collect();
    let state = genesis_app_state(&accounts);
    let tmp = tempfile::tempdir().unwrap();
    let mut h = Harness::open(tmp.path(), fast_config());
    h.app.init_chain(init_request(&state));
    h.block(vec![]);
    let ssd = rm::SsdReport {
        read_kbps: 300_000,
        write_kbps: 150_000,
        block_size: 4096,
        file_bytes: 1 << 30,
        direct_io: true,
    };
    let mut txs = vec![tx(
        &h,
        &ops[0],
        rm::register_node(
            &ops[0].address(),
            &nodes[0].pub_key(),
            "gpu_compute",
            "https://p",
            "eu",
            "{}",
            1_000_000_000,
        ),
    )];
    for i in 1..7 {
        txs.push(tx(
            &h,
            &ops[i],
            rm::register_node_with_ssd(
                &ops[i].address(),
                &nodes[i].pub_key(),
                "storage_node",
                "https://s",
                "eu",
                "{}",
                300_000_000,
                Some(ssd),
            ),
        ));
    }
    let r = h.block(txs);
    for t in &r.tx_results {
        assert_eq!(t.code, 0, "{}", t.log);
    }
    let object = [5u8; 32];
    let shard_len = 700u64;
    let shards = (1..7)
        .map(|i| {
            let bytes: Vec<u8> = (0..shard_len).map(|j| (j as u8) ^ (i as u8)).collect();
            let root = merkle_root(&bytes);
            let sig = ShardReceipt {
                chain_id: CHAIN_ID.into(),
                object,
                index: (i - 1) as u32,
                root,
                len: shard_len,
            }
            .sign(&nodes[i].secret_bytes())
            .unwrap();
            Placement {
                holder: nodes[i].address(),
                root,
                receipt: sig.to_vec(),
            }
        })
        .collect();
    let stripe = NewStripe {
        object,
        kind: "checkpoint".into(),
        label: [6; 32],
        job_id: 0,
        size: 2_000,
        k: 4,
        m: 2,
        stripe_size: 4096,
        shard_len,
        shards,
    };
    let m = magnet_custody::msgs::register_stripe(&nodes[0].address(), &stripe);
    let r = h.block(vec![tx(&h, &nodes[0], m)]);
    assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);

    let ex = h.app.export().unwrap();
    let recs = ex.app_state["custody"]["store_records"].as_array().unwrap();
    assert!(recs.iter().any(|r| r[0]
        .as_str()
        .unwrap()
        .starts_with(&hex::encode(b"custody/stripe/"))));
    let (height, hash) = h.app.last_commit();
    let dir = tempfile::tempdir().unwrap();
    let mut c = Harness::open(dir.path(), fast_config());
    let mut req = init_request(&ex.app_state);
    req.time = Some(timestamp(height as i64));
    req.initial_height = height as i64 + 1;
    let r = c.app.init_chain(req);
    c.app.commit();
    c.height = height as i64;
    assert_eq!(
        r.app_hash.to_vec(),
        hash,
        "custody state survives export → import"
    );
    c.app.with_committed_state(check_all).unwrap().unwrap();
    let q = |h: &Harness| {
        h.query(
            "/magnet.custody.v1/stripe",
            hex::encode(object).into_bytes(),
            0,
        )
        .value
        .to_vec()
    };
    let a = q(&h);
    assert_eq!(a, q(&c));
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["shards"].as_array().unwrap().len(), 6);
    for _ in 0..3 {
        assert_eq!(h.block(vec![]).app_hash, c.block(vec![]).app_hash);
    }
}
