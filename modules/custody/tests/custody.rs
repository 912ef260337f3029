//! Storage custody end to end over the real modules (testkit): stripes registered with
//! receipts, challenges drawn at the epoch boundary, proofs, judgement (credit, slash, jail),
//! reassignment, pay at settlement, and every refusal of every custody message.
#![allow(clippy::unwrap_used)]

use magnet_core::{Address, ModuleError};
use magnet_custody::msgs::{self, NewStripe, Placement, Proof};
use magnet_rounds::custody::{merkle_root, ShardReceipt};
use magnet_testkit::fixtures::*;
use magnet_testkit::Chain;

const MAG: u128 = 1_000_000;
const SHARD_LEN: u64 = 1000;
/// Producer (gpu_compute, no SSD report).
const PRODUCER: u32 = 0;
/// Holders 1..=6 (storage_node with a passing report); 7 is a spare storage node; 8 is a
/// cpu_only node without a report (not storage-capable).
const SPARE: u32 = 7;
const CPU: u32 = 8;

struct World {
    c: Chain,
    nodes: Vec<Node>,
}

fn shard_bytes(tag: u8, i: u32) -> Vec<u8> {
    (0..SHARD_LEN as usize)
        .map(|j| (j as u8).wrapping_mul(13) ^ tag ^ (i as u8).wrapping_mul(71))
        .collect()
}

fn receipt(c: &Chain, n: &Node, object: [u8; 32], index: u32, root: [u8; 32]) -> Vec<u8> {
    ShardReceipt {
        chain_id: c.block.chain_id.clone(),
        object,
        index,
        root,
        len: SHARD_LEN,
    }
    .sign(&n.node_sk)
    .unwrap()
    .to_vec()
}

/// A delta stripe of object `[tag; 32]` held by `holders` (node indexes), receipts valid.
fn stripe(w: &World, tag: u8, holders: &[u32]) -> NewStripe {
    let object = [tag; 32];
    let shards = holders
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let n = &w.nodes[*h as usize];
            let root = merkle_root(&shard_bytes(tag, i as u32));
            Placement {
                holder: n.node,
                root,
                receipt: receipt(&w.c, n, object, i as u32, root),
            }
        })
        .collect();
    NewStripe {
        object,
        kind: "delta".into(),
        label: [tag ^ 0xff; 32],
        job_id: 0,
        size: 4 * SHARD_LEN - 10,
        k: 4,
        m: 2,
        stripe_size: 4096,
        shard_len: SHARD_LEN,
        shards,
    }
}

fn world() -> World {
    let mut c = chain(9);
    let nodes: Vec<Node> = (0..9).map(node).collect();
    c.begin(1).unwrap();
    nodes[PRODUCER as usize]
        .register(&mut c, "gpu_compute", 1_000 * MAG)
        .unwrap();
    for n in &nodes[1..=SPARE as usize] {
        n.register_with_ssd(&mut c, "storage_node", 300 * MAG, Some(passing_ssd()))
            .unwrap();
    }
    nodes[CPU as usize]
        .register(&mut c, "cpu_only", 300 * MAG)
        .unwrap();
    for n in &nodes {
        n.heartbeat(&mut c).unwrap();
    }
    c.end().unwrap();
    World { c, nodes }
}

fn register(w: &mut World, s: &NewStripe) -> Result<(), ModuleError> {
    let p = &w.nodes[PRODUCER as usize];
    w.c.begin(1).unwrap();
    let r = w.c.deliver(&p.node, &[msgs::register_stripe(&p.node, s)]);
    w.c.end().unwrap();
    r.map(|_| ())
}

/// Run (everyone heart-beating) to the start of the next epoch.
fn next_epoch(w: &mut World) {
    let e = w.c.epoch();
    let t = T0 + (e + 1) * EPOCH;
    run_until(&mut w.c, t, 50, &w.nodes.clone());
    assert_eq!(w.c.epoch(), e + 1);
}

fn challenges(w: &World, epoch: u64, holder: &Address) -> Vec<serde_json::Value> {
    w.c.query(
        "/magnet.custody.v1/challenges",
        format!("{epoch}/{holder}").as_bytes(),
    )
    .unwrap()
    .as_array()
    .unwrap()
    .clone()
}

/// Honest answers of holder node `h` to its challenges of the current epoch over stripes
/// with tags `tags`, read as the daemon reads them (typed `state::Challenge` from the query).
fn answers(w: &World, h: u32, tags: &[u8]) -> Vec<Proof> {
    let e = w.c.epoch();
    let n = &w.nodes[h as usize];
    let v =
        w.c.query(
            "/magnet.custody.v1/challenges",
            format!("{e}/{}", n.node).as_bytes(),
        )
        .unwrap();
    let cs: Vec<magnet_custody::state::Challenge> = serde_json::from_value(v).unwrap();
    let mut out = Vec::new();
    for ch in cs {
        assert_eq!((ch.epoch, ch.holder), (e, n.node));
        let tag = ch.object[0];
        assert!(tags.contains(&tag));
        let shard = shard_bytes(tag, ch.index);
        assert_eq!(merkle_root(&shard), ch.root);
        out.push(msgs::proof_for(&shard, ch.object, ch.index, ch.leaf).unwrap());
    }
    out
}

fn prove(w: &mut World, h: u32, proofs: &[Proof]) -> Result<(), ModuleError> {
    let e = w.c.epoch();
    let n = w.nodes[h as usize].clone();
    w.c.begin(1).unwrap();
    let r =
        w.c.deliver(&n.node, &[msgs::prove_custody(&n.node, e, proofs)]);
    w.c.end().unwrap();
    r.map(|_| ())
}

fn holder(w: &World, h: u32) -> serde_json::Value {
    w.c.query(
        "/magnet.custody.v1/holder",
        w.nodes[h as usize].node.to_string().as_bytes(),
    )
    .unwrap()
}

fn bond(w: &World, i: u32) -> u128 {
    let v =
        w.c.query(
            "/magnet.registry.v1/node",
            w.nodes[i as usize].op.to_string().as_bytes(),
        )
        .unwrap();
    v["bond"].as_str().unwrap().parse().unwrap()
}

fn jailed(w: &World, i: u32) -> bool {
    let v =
        w.c.query(
            "/magnet.registry.v1/node",
            w.nodes[i as usize].op.to_string().as_bytes(),
        )
        .unwrap();
    v["jailed"].as_bool().unwrap()
}

fn code(e: &ModuleError) -> (&str, u32) {
    (e.codespace.as_str(), e.code)
}

#[test]
fn honest_holders_are_credited_and_paid_a_silent_one_is_slashed_then_jailed_and_loses_its_shard() {
    let mut w = world();
    let mut s = stripe(&w, 1, &[1, 2, 3, 4, 5, 6]);
    s.kind = "checkpoint".into(); // lives 4 epochs
    register(&mut w, &s).unwrap();
    let st =
        w.c.query(
            "/magnet.custody.v1/stripe",
            hex::encode(s.object).as_bytes(),
        )
        .unwrap();
    assert_eq!(st["shards"].as_array().unwrap().len(), 6);
    let by_label =
        w.c.query(
            "/magnet.custody.v1/by_label",
            hex::encode(s.label).as_bytes(),
        )
        .unwrap();
    assert_eq!(by_label[0]["object"], hex::encode(s.object));
    // Registered in epoch 0: no challenge before epoch 1.
    assert!(challenges(&w, 0, &w.nodes[1].node).is_empty());

    next_epoch(&mut w); // epoch 1: challenges drawn
    let e1 = w.c.epoch();
    for h in 1..=6 {
        assert_eq!(challenges(&w, e1, &w.nodes[h].node).len(), 1, "holder {h}");
    }
    for h in 1..=5 {
        let p = answers(&w, h, &[1]);
        prove(&mut w, h, &p).unwrap();
    }
    // A second answer to a proven challenge is refused.
    let p = answers(&w, 1, &[1]);
    let e = prove(&mut w, 1, &p).unwrap_err();
    assert_eq!(code(&e), ("custody", 19), "{}", e.log);

    let bond6 = bond(&w, 6);
    next_epoch(&mut w); // judge epoch 1
    for h in 1..=5 {
        let v = holder(&w, h);
        let rec = v["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["epoch"] == e1)
            .unwrap()
            .clone();
        assert_eq!(rec["custody_bytes"], SHARD_LEN.to_string(), "holder {h}");
        assert_eq!(rec["failed"], 0);
    }
    let v6 = holder(&w, 6);
    let typed: magnet_custody::HolderView = serde_json::from_value(v6.clone()).unwrap();
    assert_eq!(typed.shards.len(), 1);
    assert_eq!(v6["failing_streak"], 1);
    assert_eq!(v6["shards"][0]["failed_epoch"], e1);
    assert_eq!(bond(&w, 6), bond6 - bond6 * 50_000 / 1_000_000);
    assert!(
        !jailed(&w, 6),
        "one failing epoch slashes but does not jail"
    );
    let tot =
        w.c.query("/magnet.custody.v1/epoch", e1.to_string().as_bytes())
            .unwrap();
    assert_eq!(tot["proven"], 5);
    assert_eq!(tot["failed"], 1);
    assert_eq!(tot["custody_bytes"], (5 * SHARD_LEN).to_string());

    // Reassigning the shard of an honest, live holder is refused.
    let repairer = w.nodes[1].clone();
    let spare = w.nodes[SPARE as usize].clone();
    let root0 = s.shards[0].root;
    let m = msgs::reassign_shard(
        &repairer.node,
        s.object,
        0,
        &spare.node,
        &receipt(&w.c, &spare, s.object, 0, root0),
    );
    w.c.begin(1).unwrap();
    let e = w.c.deliver(&repairer.node, &[m]).unwrap_err();
    w.c.end().unwrap();
    assert_eq!(code(&e), ("custody", 21), "{}", e.log);

    // Epoch 2: holder 6 stays silent again → slashed and jailed.
    let e2 = w.c.epoch();
    for h in 1..=5 {
        let p = answers(&w, h, &[1]);
        prove(&mut w, h, &p).unwrap();
    }
    next_epoch(&mut w); // judge epoch 2, settle epoch 1
    assert_eq!(holder(&w, 6)["failing_streak"], 2);
    assert!(jailed(&w, 6), "two failing epochs in a row jail");

    // Epoch 1's settlement paid the storage share to the five honest holders' operators.
    let set =
        w.c.query("/magnet.rewards.v1/settlement", e1.to_string().as_bytes())
            .unwrap();
    let storage = set["storage"].as_array().unwrap();
    assert_eq!(storage.len(), 5, "{set}");
    let share = POOL * 100_000 / 1_000_000;
    assert_eq!(set["storage_pool"], share.to_string());
    for p in storage {
        assert_eq!(p["amount"], (share / 5).to_string());
        assert!((1..=5).any(|h| p["operator"] == w.nodes[h].op.to_string()));
    }

    // The failed, jailed holder's shard moves to the spare with the spare's receipt.
    let root5 = s.shards[5].root;
    let m = msgs::reassign_shard(
        &repairer.node,
        s.object,
        5,
        &spare.node,
        &receipt(&w.c, &spare, s.object, 5, root5),
    );
    w.c.begin(1).unwrap();
    w.c.deliver(&repairer.node, &[m]).unwrap();
    w.c.end().unwrap();
    let st =
        w.c.query(
            "/magnet.custody.v1/stripe",
            hex::encode(s.object).as_bytes(),
        )
        .unwrap();
    assert_eq!(st["shards"][5]["holder"], spare.node.to_string());
    assert!(st["shards"][5]["failed_epoch"].is_null());
    assert_eq!(holder(&w, 6)["shards"].as_array().unwrap().len(), 0);
    assert_eq!(holder(&w, SPARE)["shards"].as_array().unwrap().len(), 1);
    let rep = holder(&w, 1);
    let last = rep["epochs"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["repaired_bytes"], SHARD_LEN.to_string());
    let _ = e2;
}

#[test]
fn a_delta_stripe_expires_after_its_retention_and_is_no_longer_challenged() {
    let mut w = world();
    let s = stripe(&w, 2, &[1, 2, 3, 4, 5, 6]);
    register(&mut w, &s).unwrap(); // epoch 0, expires at the end of epoch 2
    for _ in 0..2 {
        next_epoch(&mut w);
        for h in 1..=6 {
            let p = answers(&w, h, &[2]);
            prove(&mut w, h, &p).unwrap();
        }
    }
    next_epoch(&mut w); // end of epoch 2: dropped
    let st =
        w.c.query(
            "/magnet.custody.v1/stripe",
            hex::encode(s.object).as_bytes(),
        )
        .unwrap();
    assert!(st.is_null());
    assert!(challenges(&w, w.c.epoch(), &w.nodes[1].node).is_empty());
    assert_eq!(holder(&w, 1)["failing_streak"], 0);
}

fn register_err(w: &mut World, s: &NewStripe) -> ModuleError {
    let p = w.nodes[PRODUCER as usize].clone();
    w.c.begin(1).unwrap();
    let after_begin = w.c.snapshot();
    let e =
        w.c.deliver(&p.node, &[msgs::register_stripe(&p.node, s)])
            .unwrap_err();
    assert_eq!(w.c.snapshot(), after_begin, "a refused tx changes nothing");
    w.c.end().unwrap();
    e
}

#[test]
fn a_checkpoint_stripe_that_is_its_jobs_lineage_head_outlives_its_retention() {
    let mut w = world();
    let creator = w.nodes[PRODUCER as usize].op;
    let job = magnet_testkit::flow::open_job(&mut w.c, &creator);
    let mut head = stripe(&w, 10, &[1, 2, 3, 4, 5, 6]);
    head.kind = "checkpoint".into();
    head.job_id = job;
    head.label = magnet_testkit::flow::BASE_CHECKPOINT;
    let mut old = stripe(&w, 11, &[1, 2, 3, 4, 5, 6]);
    old.kind = "checkpoint".into();
    old.job_id = job;
    register(&mut w, &head).unwrap();
    register(&mut w, &old).unwrap();
    for _ in 0..5 {
        next_epoch(&mut w);
        for h in 1..=6 {
            let p = answers(&w, h, &[10, 11]);
            if !p.is_empty() {
                prove(&mut w, h, &p).unwrap();
            }
        }
    }
    let q = |w: &World, o: [u8; 32]| {
        w.c.query("/magnet.custody.v1/stripe", hex::encode(o).as_bytes())
            .unwrap()
    };
    assert!(q(&w, old.object).is_null(), "a non-head checkpoint expires");
    assert!(!q(&w, head.object).is_null(), "the lineage head is kept");
    assert_eq!(challenges(&w, w.c.epoch(), &w.nodes[1].node).len(), 1);
}

#[test]
fn every_refusal_of_register_stripe_names_its_reason_and_changes_nothing() {
    let mut w = world();
    let good = stripe(&w, 3, &[1, 2, 3, 4, 5, 6]);
    type Case = (
        &'static str,
        (&'static str, u32),
        Box<dyn Fn(&World, &mut NewStripe)>,
    );
    let cases: Vec<Case> = vec![
        (
            "bad kind",
            ("custody", 2),
            Box::new(|_, s| s.kind = "video".into()),
        ),
        ("wrong k", ("custody", 3), Box::new(|_, s| s.k = 5)),
        ("wrong m", ("custody", 3), Box::new(|_, s| s.m = 3)),
        (
            "too few shards",
            ("custody", 4),
            Box::new(|_, s| {
                s.shards.pop();
            }),
        ),
        (
            "zero shard_len",
            ("custody", 6),
            Box::new(|_, s| s.shard_len = 0),
        ),
        (
            "shard_len over max",
            ("custody", 6),
            Box::new(|_, s| s.shard_len = (64 << 20) + 1),
        ),
        ("size zero", ("custody", 7), Box::new(|_, s| s.size = 0)),
        (
            "size over K shards",
            ("custody", 7),
            Box::new(|_, s| s.size = 4 * SHARD_LEN + 1),
        ),
        (
            "duplicate holder",
            ("custody", 8),
            Box::new(|_, s| s.shards[1].holder = s.shards[0].holder),
        ),
        (
            "unregistered holder",
            ("custody", 9),
            Box::new(|_, s| s.shards[2].holder = Address([9; 20])),
        ),
        (
            "holder not storage-capable",
            ("custody", 11),
            Box::new(|w, s| s.shards[3].holder = w.nodes[CPU as usize].node),
        ),
        (
            "bad receipt",
            ("custody", 12),
            Box::new(|_, s| s.shards[4].receipt[10] ^= 1),
        ),
        (
            "receipt for another index",
            ("custody", 12),
            Box::new(|w, s| {
                let n = &w.nodes[5];
                s.shards[4].receipt = receipt(&w.c, n, s.object, 3, s.shards[4].root);
            }),
        ),
        (
            "receipt of another length",
            ("custody", 12),
            Box::new(|_, s| s.shard_len = SHARD_LEN - 1),
        ),
    ];
    for (name, want, mutate) in &cases {
        let mut s = good.clone();
        mutate(&w, &mut s);
        let e = register_err(&mut w, &s);
        assert_eq!(code(&e), *want, "{name}: {}", e.log);
    }
    // Fields the typed builder cannot get wrong, through raw protobuf.
    let p = w.nodes[PRODUCER as usize].clone();
    let mut raw = msgs::MsgRegisterStripe {
        owner: p.node.to_string(),
        object: vec![1; 31],
        kind: "delta".into(),
        label: vec![2; 32],
        job_id: 0,
        size: 1,
        k: 4,
        m: 2,
        stripe_size: 0,
        shard_len: 1,
        shards: vec![],
    };
    raw.shards = good
        .shards
        .iter()
        .map(|x| msgs::ShardPlacement {
            holder: x.holder.to_string(),
            root: x.root.to_vec(),
            receipt: x.receipt.clone(),
        })
        .collect();
    let e = msgs::check(&magnet_core::msg::to_any(&raw)).unwrap_err();
    assert_eq!(e.code(), 5, "{e}");
    raw.object = vec![1; 32];
    raw.shards[0].root = vec![0; 31];
    let e = msgs::check(&magnet_core::msg::to_any(&raw)).unwrap_err();
    assert_eq!(e.code(), 5, "{e}");
    raw.shards[0].root = vec![0; 32];
    raw.shards[0].receipt = vec![0; 63];
    let e = msgs::check(&magnet_core::msg::to_any(&raw)).unwrap_err();
    assert_eq!(e.code(), 5, "{e}");

    // A jailed or unregistered producer is refused; then the good stripe registers once.
    let stranger = Address([77; 20]);
    w.c.begin(1).unwrap();
    let e =
        w.c.deliver(&stranger, &[msgs::register_stripe(&stranger, &good)])
            .unwrap_err();
    w.c.end().unwrap();
    assert_eq!(code(&e), ("custody", 9), "{}", e.log);
    register(&mut w, &good).unwrap();
    let e = register_err(&mut w, &good);
    assert_eq!(code(&e), ("custody", 13), "{}", e.log);
    // Signed by someone else than the owner.
    w.c.begin(1).unwrap();
    let e =
        w.c.deliver(
            &w.nodes[1].node.clone(),
            &[msgs::register_stripe(
                &p.node,
                &stripe(&w, 4, &[1, 2, 3, 4, 5, 6]),
            )],
        )
        .unwrap_err();
    w.c.end().unwrap();
    assert_eq!(code(&e), ("sdk", 8), "{}", e.log);
}

#[test]
fn every_refusal_of_prove_custody_names_its_reason_and_changes_nothing() {
    let mut w = world();
    let s = stripe(&w, 5, &[1, 2, 3, 4, 5, 6]);
    register(&mut w, &s).unwrap();
    next_epoch(&mut w);
    let e = w.c.epoch();
    let good = answers(&w, 1, &[5]);
    assert_eq!(good.len(), 1);
    let n1 = w.nodes[1].clone();
    type Case = (&'static str, (&'static str, u32), u64, Vec<Proof>);
    let mut flip_leaf = good.clone();
    flip_leaf[0].leaf[0] ^= 1;
    let mut flip_path = good.clone();
    if let Some(step) = flip_path[0].path.first_mut() {
        step[3] ^= 1;
    }
    let mut short_path = good.clone();
    short_path[0].path.pop();
    let mut other_index = good.clone();
    other_index[0].index = (other_index[0].index + 1) % 6;
    let mut unknown = good.clone();
    unknown[0].object = [99; 32];
    let mut dup = good.clone();
    dup.push(good[0].clone());
    let cases: Vec<Case> = vec![
        ("past epoch", ("custody", 16), e - 1, good.clone()),
        ("future epoch", ("custody", 16), e + 1, good.clone()),
        ("tampered leaf", ("custody", 20), e, flip_leaf),
        ("tampered path", ("custody", 20), e, flip_path),
        ("short path", ("custody", 20), e, short_path),
        (
            "no challenge for that shard",
            ("custody", 18),
            e,
            other_index,
        ),
        ("unknown object", ("custody", 18), e, unknown),
        (
            "the same proof twice in one message",
            ("custody", 19),
            e,
            dup,
        ),
        ("no proofs", ("custody", 17), e, vec![]),
    ];
    for (name, want, epoch, proofs) in cases {
        w.c.begin(1).unwrap();
        let before = w.c.snapshot();
        let r =
            w.c.deliver(&n1.node, &[msgs::prove_custody(&n1.node, epoch, &proofs)]);
        let after = w.c.snapshot();
        w.c.end().unwrap();
        let err = r.unwrap_err();
        assert_eq!(code(&err), want, "{name}: {}", err.log);
        assert_eq!(before, after, "{name}: a refused proof changes nothing");
    }
    // Another holder's challenge cannot be answered by node 1.
    let theirs = answers(&w, 2, &[5]);
    let err = prove(&mut w, 1, &theirs).unwrap_err();
    assert_eq!(code(&err), ("custody", 18), "{}", err.log);
    // The good proof passes after all those failures.
    prove(&mut w, 1, &good).unwrap();
}

#[test]
fn every_refusal_of_reassign_shard_names_its_reason() {
    let mut w = world();
    let s = stripe(&w, 6, &[1, 2, 3, 4, 5, 6]);
    register(&mut w, &s).unwrap();
    next_epoch(&mut w);
    // Holder 6 fails epoch 1.
    for h in 1..=5 {
        let p = answers(&w, h, &[6]);
        prove(&mut w, h, &p).unwrap();
    }
    next_epoch(&mut w);
    let spare = w.nodes[SPARE as usize].clone();
    let rep = w.nodes[1].clone();
    let good_receipt = receipt(&w.c, &spare, s.object, 5, s.shards[5].root);
    type Case = (
        &'static str,
        (&'static str, u32),
        Address,
        msgs::MsgReassignShard,
    );
    let base = |repairer: &Address| msgs::MsgReassignShard {
        repairer: repairer.to_string(),
        object: s.object.to_vec(),
        index: 5,
        new_holder: spare.node.to_string(),
        receipt: good_receipt.clone(),
    };
    let cpu = w.nodes[CPU as usize].node;
    let cases: Vec<Case> = vec![
        (
            "repairer not storage-capable",
            ("custody", 11),
            cpu,
            base(&cpu),
        ),
        (
            "unknown stripe",
            ("custody", 14),
            rep.node,
            msgs::MsgReassignShard {
                object: vec![42; 32],
                ..base(&rep.node)
            },
        ),
        (
            "index outside the stripe",
            ("custody", 15),
            rep.node,
            msgs::MsgReassignShard {
                index: 6,
                ..base(&rep.node)
            },
        ),
        (
            "honest holder",
            ("custody", 21),
            rep.node,
            msgs::MsgReassignShard {
                index: 2,
                receipt: receipt(&w.c, &spare, s.object, 2, s.shards[2].root),
                ..base(&rep.node)
            },
        ),
        (
            "new holder already in the stripe",
            ("custody", 22),
            rep.node,
            msgs::MsgReassignShard {
                new_holder: w.nodes[2].node.to_string(),
                ..base(&rep.node)
            },
        ),
        (
            "new holder is the repairer",
            ("custody", 22),
            spare.node,
            base(&spare.node),
        ),
        (
            "new holder not storage-capable",
            ("custody", 11),
            rep.node,
            msgs::MsgReassignShard {
                new_holder: cpu.to_string(),
                ..base(&rep.node)
            },
        ),
        (
            "receipt for another root",
            ("custody", 12),
            rep.node,
            msgs::MsgReassignShard {
                receipt: receipt(&w.c, &spare, s.object, 5, [0; 32]),
                ..base(&rep.node)
            },
        ),
        (
            "receipt too short",
            ("custody", 5),
            rep.node,
            msgs::MsgReassignShard {
                receipt: vec![1; 10],
                ..base(&rep.node)
            },
        ),
    ];
    for (name, want, signer, m) in cases {
        w.c.begin(1).unwrap();
        let before = w.c.snapshot();
        let r = w.c.deliver(&signer, &[magnet_core::msg::to_any(&m)]);
        assert_eq!(before, w.c.snapshot(), "{name}");
        w.c.end().unwrap();
        let err = r.unwrap_err();
        assert_eq!(code(&err), want, "{name}: {}", err.log);
    }
    // The valid one (holder 6 failed an audit of shard 5).
    w.c.begin(1).unwrap();
    w.c.deliver(&rep.node, &[magnet_core::msg::to_any(&base(&rep.node))])
        .unwrap();
    w.c.end().unwrap();
}

#[test]
fn a_holder_that_stops_heartbeating_can_be_replaced() {
    let mut w = world();
    let s = stripe(&w, 7, &[1, 2, 3, 4, 5, 6]);
    register(&mut w, &s).unwrap();
    // Everyone but holder 3 beats for 200 s (liveness window 150 s).
    let beating: Vec<Node> = w
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, n)| n.clone())
        .collect();
    let t = w.c.block.time_secs + 200;
    run_until(&mut w.c, t, 20, &beating);
    let spare = w.nodes[SPARE as usize].clone();
    let rep = w.nodes[1].clone();
    let m = msgs::reassign_shard(
        &rep.node,
        s.object,
        2,
        &spare.node,
        &receipt(&w.c, &spare, s.object, 2, s.shards[2].root),
    );
    w.c.begin(1).unwrap();
    w.c.deliver(&rep.node, &[m]).unwrap();
    w.c.end().unwrap();
    let ev = w.c.events_of("magnet.custody.reassigned");
    assert_eq!(ev.last().unwrap().get("reason"), Some("not live"));
}

#[test]
fn the_ssd_gate_refuses_storage_nodes_without_a_passing_report_and_accepts_one_with_it() {
    let mut c = chain(4);
    let ns: Vec<Node> = (0..4).map(node).collect();
    c.begin(1).unwrap();
    let e = ns[0]
        .register_with_ssd(&mut c, "storage_node", 300 * MAG, None)
        .unwrap_err();
    assert_eq!(code(&e), ("registry", 16), "{}", e.log);
    assert!(
        e.log.contains("magnet-worker storage provision"),
        "{}",
        e.log
    );
    assert!(e.log.contains("cpu_only"), "{}", e.log);
    let mut slow = passing_ssd();
    slow.write_kbps = 49_999;
    let e = ns[0]
        .register_with_ssd(&mut c, "storage_node", 300 * MAG, Some(slow))
        .unwrap_err();
    assert_eq!(code(&e), ("registry", 16), "{}", e.log);
    assert!(e.log.contains("49999"), "{}", e.log);
    ns[0]
        .register_with_ssd(&mut c, "storage_node", 300 * MAG, Some(passing_ssd()))
        .unwrap();
    // Other tiers register without a report, but are not storage-capable.
    ns[1].register(&mut c, "cpu_only", 300 * MAG).unwrap();
    // Changing to storage_node needs a passing report too.
    let e = c
        .deliver(
            &ns[1].op,
            &[magnet_core::msg::to_any(
                &magnet_testkit::magnet_registry::msgs::MsgChangeTier {
                    operator: ns[1].op.to_string(),
                    tier: "storage_node".into(),
                    extra_bond: "0".into(),
                    ssd: Some(slow),
                },
            )],
        )
        .unwrap_err();
    assert_eq!(code(&e), ("registry", 16), "{}", e.log);
    c.deliver(
        &ns[1].op,
        &[magnet_testkit::magnet_registry::msgs::change_tier_with_ssd(
            &ns[1].op,
            "storage_node",
            0,
            Some(passing_ssd()),
        )],
    )
    .unwrap();
    let capable = c.with_ctx(|ctx| {
        let reg = ctx.services().registry().unwrap();
        (
            reg.is_storage_capable(ctx, &ns[0].op).unwrap(),
            reg.is_storage_capable(ctx, &ns[1].op).unwrap(),
        )
    });
    assert_eq!(capable, (true, true));
    c.end().unwrap();
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        /// Custody is credited only to holders that proved every challenge, exactly the
        /// challenged bytes; everyone else gets nothing for the epoch, and the storage
        /// payouts + dust stay within the storage pool.
        #[test]
        fn custody_is_credited_only_for_proven_shards(answering in proptest::collection::vec(any::<bool>(), 6)) {
            let mut w = world();
            let s = stripe(&w, 9, &[1, 2, 3, 4, 5, 6]);
            register(&mut w, &s).unwrap();
            next_epoch(&mut w);
            let e1 = w.c.epoch();
            for (i, yes) in answering.iter().enumerate() {
                if *yes {
                    let p = answers(&w, i as u32 + 1, &[9]);
                    prove(&mut w, i as u32 + 1, &p).unwrap();
                }
            }
            next_epoch(&mut w);
            next_epoch(&mut w); // settle e1
            let mut credited = 0u128;
            for (i, yes) in answering.iter().enumerate() {
                let v = holder(&w, i as u32 + 1);
                let rec = v["epochs"].as_array().unwrap().iter().find(|r| r["epoch"] == e1).unwrap().clone();
                let bytes: u128 = rec["custody_bytes"].as_str().unwrap().parse().unwrap();
                prop_assert_eq!(bytes, if *yes { SHARD_LEN as u128 } else { 0 });
                credited += bytes;
            }
            let set = w.c.query("/magnet.rewards.v1/settlement", e1.to_string().as_bytes()).unwrap();
            let paid: u128 = set["storage"].as_array().unwrap().iter()
                .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap()).sum();
            let pool: u128 = set["storage_pool"].as_str().unwrap().parse().unwrap();
            prop_assert!(paid <= pool);
            let amounts = |k: &str| -> u128 {
                set[k].as_array().unwrap().iter()
                    .map(|p| p["amount"].as_str().unwrap().parse::<u128>().unwrap()).sum()
            };
            let dust: u128 = set["dust"].as_str().unwrap().parse().unwrap();
            let total: u128 = set["pool"].as_str().unwrap().parse().unwrap();
            prop_assert_eq!(amounts("contributors") + amounts("evaluators") + amounts("storage") + dust, total);
            prop_assert_eq!(pool == 0, credited == 0);
            let n = answering.iter().filter(|x| **x).count();
            prop_assert_eq!(set["storage"].as_array().unwrap().len(), n);
        }
    }
}

/// With fewer than K+M storage nodes live a node may hold a second shard (never more than M),
/// both at registration and at repair; while enough are live, every shard needs its own node.
#[test]
fn a_holder_takes_a_second_shard_only_while_fewer_than_k_plus_m_storage_nodes_are_live() {
    let mut w = world();
    // Seven storage nodes live: a duplicate is refused; more than M shards on one node always.
    let dup = stripe(&w, 30, &[1, 1, 2, 3, 4, 5]);
    assert_eq!(code(&register_err(&mut w, &dup)), ("custody", 8));
    let triple = stripe(&w, 31, &[1, 1, 1, 2, 3, 4]);
    assert_eq!(code(&register_err(&mut w, &triple)), ("custody", 8));
    let s = stripe(&w, 32, &[1, 2, 3, 4, 5, 6]);
    register(&mut w, &s).unwrap();

    let reassign = |w: &mut World, index: u32, to: u32| {
        let rep = w.nodes[2].clone();
        let to = w.nodes[to as usize].clone();
        let m = msgs::reassign_shard(
            &rep.node,
            s.object,
            index,
            &to.node,
            &receipt(&w.c, &to, s.object, index, s.shards[index as usize].root),
        );
        w.c.begin(1).unwrap();
        let r = w.c.deliver(&rep.node, &[m]);
        w.c.end().unwrap();
        r
    };
    let beating = |w: &World, dead: &[usize]| -> Vec<Node> {
        w.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !dead.contains(i))
            .map(|(_, n)| n.clone())
            .collect()
    };
    // Holders 5 and 6 stop (liveness window 150 s); the spare (7) is still live: their shards
    // go to the spare, not to a node already in the stripe.
    let t = w.c.block.time_secs + 200;
    let b = beating(&w, &[5, 6]);
    run_until(&mut w.c, t, 20, &b);
    let e = reassign(&mut w, 4, 1).unwrap_err();
    assert_eq!(code(&e), ("custody", 22), "{e:?}");
    // The spare dies too: only the four live holders remain, so a live holder takes a second
    // shard — and no third.
    let t = w.c.block.time_secs + 200;
    let b = beating(&w, &[5, 6, 7]);
    run_until(&mut w.c, t, 20, &b);
    reassign(&mut w, 4, 1).unwrap();
    let e = reassign(&mut w, 5, 1).unwrap_err();
    assert_eq!(code(&e), ("custody", 22), "{e:?}");
    reassign(&mut w, 5, 3).unwrap();
    let now =
        w.c.query(
            "/magnet.custody.v1/stripe",
            hex::encode(s.object).as_bytes(),
        )
        .unwrap();
    let holders: Vec<String> = now["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["holder"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(holders[4], w.nodes[1].node.to_string());
    assert_eq!(holders[5], w.nodes[3].node.to_string());
    // Four storage nodes live: a new stripe with two shards on each of two nodes registers.
    let dup = stripe(&w, 33, &[1, 1, 2, 2, 3, 4]);
    register(&mut w, &dup).unwrap();
}
