//! Commit-reveal through the wired modules: windows, duplicates, copying and replaying.

use magnet_core::ModuleError;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::magnet_contrib::msgs as cm;

fn code(r: Result<Vec<magnet_core::MsgResult>, ModuleError>) -> (String, u32) {
    let e = r.unwrap_err();
    (e.codespace, e.code)
}

#[test]
fn out_of_window_and_duplicate_messages_are_rejected_with_their_own_codes_and_change_nothing() {
    let (mut c, nodes) = setup(4);
    open_job(&mut c, &nodes[3].op);
    let w = work(10, 1_000, "training", 1);
    let (a, b) = (&nodes[0], &nodes[1]);

    // In the commit window: reveal is early (6); a commit works; a second commit is a duplicate (9).
    c.begin(1).unwrap();
    commit(&mut c, a, 1, &w, b"n").unwrap();
    let before = c.snapshot();
    assert_eq!(code(reveal(&mut c, a, 1, &w, b"n")), ("contrib".into(), 6));
    assert_eq!(code(commit(&mut c, a, 1, &w, b"n")), ("contrib".into(), 9));
    // An evaluator commit before any assignment: not assigned (12).
    let h = cm::score_commitment(&c.block.chain_id, 0, 1, &a.op, &b.op, 1, b"x");
    assert_eq!(
        code(c.deliver(&b.node, &[cm::eval_commit(&b.node, 0, 1, &a.op, h)])),
        ("contrib".into(), 12)
    );
    // Commit for a past or future epoch (4).
    let h = cm::work_commitment(&c.block.chain_id, 3, 1, &b.op, &w, b"n");
    assert_eq!(
        code(c.deliver(&b.node, &[cm::commit(&b.node, 3, 1, h)])),
        ("contrib".into(), 4)
    );
    assert_eq!(c.snapshot(), before, "rejected messages wrote nothing");
    c.end().unwrap();

    // After the commit window: a commit is late (5).
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    let before = c.snapshot();
    assert_eq!(code(commit(&mut c, b, 1, &w, b"n")), ("contrib".into(), 5));
    assert_eq!(c.snapshot(), before);
    // Reveal works once; the second is a double reveal (11).
    reveal(&mut c, a, 1, &w, b"n").unwrap();
    let before = c.snapshot();
    assert_eq!(code(reveal(&mut c, a, 1, &w, b"n")), ("contrib".into(), 11));
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();

    // After the reveal window: a reveal by someone with no commitment (10).
    run_until(&mut c, T0 + 305, 10, &nodes);
    c.begin(1).unwrap();
    assert_eq!(code(reveal(&mut c, b, 1, &w, b"n")), ("contrib".into(), 10));
    c.end().unwrap();
}

#[test]
fn copying_a_commitment_or_replaying_a_reveal_earns_nothing() {
    let (mut c, nodes) = setup(6);
    open_job(&mut c, &nodes[5].op);
    let (honest, copier, replayer) = (&nodes[0], &nodes[1], &nodes[2]);
    let w = work(1_000, 1_000_000, "training", 9);
    let bond_before = bond(&c, &copier.op);

    c.begin(5).unwrap();
    let h = cm::work_commitment(&c.block.chain_id, 0, 1, &honest.op, &w, b"secret");
    c.deliver(&honest.node, &[cm::commit(&honest.node, 0, 1, h)])
        .unwrap();
    // The copier commits the very same bytes it saw in the mempool.
    c.deliver(&copier.node, &[cm::commit(&copier.node, 0, 1, h)])
        .unwrap();
    c.end().unwrap();

    run_until(&mut c, T0 + 210, 10, &nodes);
    c.begin(1).unwrap();
    c.deliver(
        &honest.node,
        &[cm::reveal(&honest.node, 0, 1, &w, b"secret")],
    )
    .unwrap();
    // The copier replays the honest reveal: it does not match its own commitment.
    let r = c
        .deliver(
            &copier.node,
            &[cm::reveal(&copier.node, 0, 1, &w, b"secret")],
        )
        .unwrap();
    let resp = <magnet_proto::contrib::v1::MsgRevealResponse as prost::Message>::decode(
        r[0].value.as_slice(),
    );
    assert!(
        !resp.map(|x| x.matched).unwrap_or(true),
        "the replayed reveal does not match"
    );
    // A node with no commitment cannot use the reveal at all.
    let e = c
        .deliver(
            &replayer.node,
            &[cm::reveal(&replayer.node, 0, 1, &w, b"secret")],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("contrib", 10));
    c.end().unwrap();

    // The copier was slashed for the mismatch at that offence's rate.
    let s = slashes(&c);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0]["offence"], "reveal_mismatch");
    assert_eq!(s[0]["offender"], copier.op.to_string());
    assert_eq!(
        bond(&c, &copier.op),
        bond_before - bond_before * 300_000 / 1_000_000
    );

    // It is never assigned a score and never paid.
    let e0 = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
    let mine: Vec<_> = e0["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["operator"] == copier.op.to_string())
        .collect();
    assert_eq!(mine[0]["status"], "Mismatch");
    assert_eq!(mine[0]["quality"].as_u64(), Some(0));
}

#[test]
fn malformed_messages_are_refused_before_execution() {
    let (mut c, nodes) = setup(2);
    let a = &nodes[0];
    c.begin(1).unwrap();
    // A 31-byte commitment.
    let bad = magnet_core::msg::to_any(&cm::MsgCommit {
        node: a.node.to_string(),
        epoch: 0,
        job: 1,
        commitment: vec![0; 31],
    });
    assert_eq!(c.deliver(&a.node, &[bad]).unwrap_err().code, 3);
    // A commit signed by the operator key instead of the node key.
    let h = [1u8; 32];
    let e = c
        .deliver(&a.op, &[cm::commit(&a.node, 0, 1, h)])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("sdk", 8));
    // An unknown work kind.
    let mut w = work(1, 1, "training", 1);
    w.kind = "mining".into();
    let e = c
        .deliver(&a.node, &[cm::reveal(&a.node, 0, 1, &w, b"n")])
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("contrib", 14));
    c.end().unwrap();
}

#[test]
fn the_evaluation_seed_is_the_hash_of_the_block_that_closed_the_reveal_window() {
    let (mut c, nodes) = setup(4);
    open_job(&mut c, &nodes[3].op);
    let w = work(10, 1_000, "training", 1);
    let a = &nodes[0];
    c.begin(1).unwrap();
    commit(&mut c, a, 1, &w, b"n").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    reveal(&mut c, a, 1, &w, b"n").unwrap();
    c.end().unwrap();
    let e0 = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
    assert!(
        e0["phase"]["eval_seed"].is_null(),
        "no seed while reveals are open: {e0}"
    );
    // Step block by block until the phase leaves Open: the seed is that block's hash.
    let mut seed = serde_json::Value::Null;
    for _ in 0..40 {
        c.begin(5).unwrap();
        let closing = hex::encode(c.block.hash);
        c.end().unwrap();
        let e0 = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
        if e0["phase"]["phase"] != "Open" {
            assert_eq!(e0["phase"]["eval_seed"], closing.as_str());
            seed = e0["phase"]["eval_seed"].clone();
            break;
        }
    }
    assert!(seed.is_string(), "the reveal window closed within 200 s");
    // It stays fixed through the evaluation windows and the final phase.
    run_until(&mut c, T0 + 600, 10, &nodes);
    let e0 = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
    assert_eq!(e0["phase"]["eval_seed"], seed);
}
