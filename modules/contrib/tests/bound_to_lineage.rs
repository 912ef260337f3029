//! A training contribution is worth only the accepted Δs it names from the job's lineage
//! (ADR 0088): its own step count is never used, each entry counts once, and only for the node
//! that produced it. Commits must name an open job and respect the per-operator bound.

use magnet_core::ModuleError;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use magnet_testkit::magnet_contrib::msgs as cm;

fn code(r: Result<Vec<magnet_core::MsgResult>, ModuleError>) -> (String, u32) {
    let e = r.unwrap_err();
    (e.codespace, e.code)
}

fn contribution(c: &magnet_testkit::Chain, op: &magnet_core::Address) -> serde_json::Value {
    let e = c.query("/magnet.contrib.v1/epoch", b"0").unwrap();
    e["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["operator"] == op.to_string())
        .cloned()
        .unwrap()
}

#[test]
fn compute_is_the_signed_steps_of_the_named_entries_not_the_reported_steps() {
    let (mut c, nodes) = setup(4);
    let job = open_job(&mut c, &nodes[3].op);
    let e = train_round(&mut c, &nodes, job, 0, &[(0, 40), (1, 10)]);
    // Node 0 reports 100x its steps; node 1 reports honestly; node 2 trained nothing and names
    // nothing.
    let w0 = trained_work(4_000, 1_000, 1, &[e[0].1]);
    let w1 = trained_work(10, 1_000, 2, &[e[1].1]);
    let w2 = trained_work(10_000, 1_000, 3, &[]);
    evaluate_epoch0(&mut c, &nodes, job, &[(0, w0), (1, w1), (2, w2)], |_, _| {
        100_000
    });
    assert_eq!(contribution(&c, &nodes[0].op)["compute"], 40 * 1_000);
    assert_eq!(contribution(&c, &nodes[1].op)["compute"], 10 * 1_000);
    assert_eq!(contribution(&c, &nodes[2].op)["compute"], 0);
}

/// Every bad entry is refused at reveal with state unchanged (the committer, bound to its
/// commitment, is then slashed for not revealing).
#[test]
fn entries_that_are_not_the_committers_unclaimed_accepted_deltas_are_refused() {
    let (mut c, nodes) = setup(5);
    let job = open_job(&mut c, &nodes[4].op);
    let e = train_round(&mut c, &nodes, job, 0, &[(0, 8), (1, 8)]);
    let (r0, d0) = e[0].1;
    let other_job = open_job(&mut c, &nodes[4].op);
    type Entries = Vec<(u64, [u8; 32])>;
    let cases: Vec<(&str, usize, u64, Entries)> = vec![
        ("another node's accepted Δ", 2, job, vec![(r0, d0)]),
        (
            "a Δ the lineage never accepted",
            3,
            job,
            vec![(0, [0x42; 32])],
        ),
        (
            "the right Δ under the wrong round",
            0,
            job,
            vec![(r0 + 1, d0)],
        ),
        ("an entry of another job", 0, other_job, vec![(r0, d0)]),
    ];
    c.begin(1).unwrap();
    let mut works = Vec::new();
    for (k, (_, who, j, entries)) in cases.iter().enumerate() {
        let w = trained_work(8, 1_000, k as u8 + 1, entries);
        // One commitment per (epoch, job, operator): use distinct job/operator pairs.
        commit(&mut c, &nodes[*who], *j, &w, b"n").unwrap();
        works.push(w);
    }
    c.end().unwrap();
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    let before = c.snapshot();
    for ((what, who, j, _), w) in cases.iter().zip(&works) {
        assert_eq!(
            code(reveal(&mut c, &nodes[*who], *j, w, b"n")),
            ("contrib".into(), 19),
            "{what}"
        );
        assert_eq!(c.snapshot(), before, "{what} changed the state");
    }
    c.end().unwrap();
}

#[test]
fn an_accepted_delta_can_be_claimed_only_once() {
    let (mut c, nodes) = setup(4);
    let job = open_job(&mut c, &nodes[3].op);
    let e = train_round(&mut c, &nodes, job, 0, &[(0, 8)]);
    let w = trained_work(8, 1_000, 1, &[e[0].1]);
    c.begin(1).unwrap();
    commit(&mut c, &nodes[0], job, &w, b"n").unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 205, 10, &nodes);
    c.begin(1).unwrap();
    reveal(&mut c, &nodes[0], job, &w, b"n").unwrap();
    c.end().unwrap();
    // Next epoch: the same entry again.
    run_until(&mut c, T0 + EPOCH + 5, 10, &nodes);
    c.begin(1).unwrap();
    let e1 = c.epoch();
    let h = cm::work_commitment(&c.block.chain_id, e1, job, &nodes[0].op, &w, b"m");
    c.deliver(&nodes[0].node, &[cm::commit(&nodes[0].node, e1, job, h)])
        .unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + EPOCH + 205, 10, &nodes);
    c.begin(1).unwrap();
    let before = c.snapshot();
    let r = c.deliver(
        &nodes[0].node,
        &[cm::reveal(&nodes[0].node, e1, job, &w, b"m")],
    );
    assert_eq!(code(r), ("contrib".into(), 19));
    assert_eq!(c.snapshot(), before);
    c.end().unwrap();
}

#[test]
fn commits_must_name_an_open_job_and_respect_the_per_operator_bound() {
    let (mut c, nodes) = setup(3);
    let w = work(1, 1, "training", 1);
    c.begin(1).unwrap();
    let before = c.snapshot();
    assert_eq!(
        code(commit(&mut c, &nodes[0], 42, &w, b"n")),
        ("contrib".into(), 17)
    );
    assert_eq!(c.snapshot(), before, "unknown job");
    c.end().unwrap();
    // The default bound is 4 per operator per epoch: a fifth open job is refused.
    let jobs: Vec<u64> = (0..5).map(|_| open_job(&mut c, &nodes[2].op)).collect();
    c.begin(1).unwrap();
    for j in &jobs[..4] {
        commit(&mut c, &nodes[0], *j, &w, b"n").unwrap();
    }
    let before = c.snapshot();
    assert_eq!(
        code(commit(&mut c, &nodes[0], jobs[4], &w, b"n")),
        ("contrib".into(), 18)
    );
    assert_eq!(c.snapshot(), before, "over the per-operator bound");
    // Another operator is not affected.
    commit(&mut c, &nodes[1], jobs[4], &w, b"n").unwrap();
    // A cancelled job takes no commits.
    c.deliver(&nodes[2].op, &[magnet_jobs_cancel(&nodes[2].op, jobs[3])])
        .unwrap();
    assert_eq!(
        code(commit(&mut c, &nodes[1], jobs[3], &w, b"n")),
        ("contrib".into(), 17)
    );
    c.end().unwrap();
}

fn magnet_jobs_cancel(creator: &magnet_core::Address, job: u64) -> prost_types::Any {
    magnet_testkit::magnet_jobs::msgs::cancel_job(creator, job)
}
