//! Merge audits and challenges (ADR 0089) through the wired modules: a recorded round gets
//! drawn auditors; a challenge with a bond inside the window is decided by their verdicts;
//! upheld → the leader is slashed in full (`fraudulent_merge`), the challenger paid, the head
//! rolled back; rejected → the challenger loses its bond. Every refusal changes nothing.

use magnet_core::Address;
use magnet_jobs::msgs;
use magnet_testkit::fixtures::*;
use magnet_testkit::flow::*;
use serde_json::Value;

const BUDGET: u128 = 10_000_000;
const BOND: u128 = 100_000;

/// Five nodes, a training job, rounds 0 and 1 recorded (both sampled: every round is audited
/// by default).
fn two_rounds() -> (magnet_testkit::Chain, Vec<Node>, u64) {
    let (mut c, nodes) = setup(5);
    c.begin(1).unwrap();
    let job = training_job(&mut c, &nodes[0].op, 1_000, BUDGET, T0 + 50_000);
    c.end().unwrap();
    train_round(&mut c, &nodes, job, 0, &[(0, 8), (1, 8), (2, 4)]);
    train_round(&mut c, &nodes, job, 1, &[(1, 8), (3, 8)]);
    (c, nodes, job)
}

fn audit(c: &magnet_testkit::Chain, job: u64, round: u64) -> Value {
    c.query("/magnet.jobs.v1/audit", format!("{job}/{round}").as_bytes())
        .unwrap()
}

fn by_id<'a>(nodes: &'a [Node], id: &str) -> &'a Node {
    nodes.iter().find(|n| n.node_id == id).unwrap()
}

fn auditors<'a>(
    c: &magnet_testkit::Chain,
    nodes: &'a [Node],
    job: u64,
    round: u64,
) -> Vec<&'a Node> {
    audit(c, job, round)["auditors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| by_id(nodes, a.as_str().unwrap()))
        .collect()
}

/// The Δ hash `train_round` gives trainer `i` in `round`.
fn delta_of(job: u64, round: u64, i: u8) -> [u8; 32] {
    let mut d = [0u8; 32];
    d[..8].copy_from_slice(&job.to_be_bytes());
    d[8..16].copy_from_slice(&round.to_be_bytes());
    d[16] = i;
    d[31] = 0xD;
    d
}

fn challenge(challenger: &Address, job: u64, round: u64, bond: u128) -> prost_types::Any {
    msgs::challenge_round(challenger, job, round, bond, [0xAB; 32], "merged_hash")
}

fn lineage(c: &magnet_testkit::Chain, job: u64) -> Value {
    c.query("/magnet.jobs.v1/lineage", job.to_string().as_bytes())
        .unwrap()
}

fn job_of(c: &magnet_testkit::Chain, job: u64) -> Value {
    c.query("/magnet.jobs.v1/job", job.to_string().as_bytes())
        .unwrap()
}

#[test]
fn a_recorded_round_gets_auditors_drawn_by_stake_never_its_leader() {
    let (c, nodes, job) = two_rounds();
    for round in [0, 1] {
        let a = audit(&c, job, round);
        let ids: Vec<&str> = a["auditors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{a}");
        assert!(!ids.contains(&a["leader_node_id"].as_str().unwrap()));
        assert_eq!(a["outcome"], "open");
        assert!(a["sampled"].as_bool().unwrap());
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), 3);
    }
    // Listed for the daemon's duty.
    let all = c
        .query("/magnet.jobs.v1/audits", job.to_string().as_bytes())
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);
    let _ = nodes;
}

#[test]
fn an_upheld_fraudulent_merge_slashes_the_leader_in_full_pays_the_challenger_and_rolls_the_head_back(
) {
    let (mut c, nodes, job) = two_rounds();
    let a0 = audit(&c, job, 0);
    let leader = by_id(&nodes, a0["leader_node_id"].as_str().unwrap()).clone();
    let jury = auditors(&c, &nodes, job, 0);
    let challenger = jury[0].op;
    let leader_bond = bond(&c, &leader.op);
    let before = c.balance(&challenger);
    assert_eq!(lineage(&c, job)["rounds"].as_array().unwrap().len(), 2);

    c.begin(1).unwrap();
    c.deliver(&challenger, &[challenge(&challenger, job, 0, BOND)])
        .unwrap();
    assert_eq!(
        c.balance(&challenger),
        before - BOND,
        "the bond is escrowed"
    );
    for n in &jury {
        c.deliver(&n.node, &[msgs::audit_verdict(&n.node, job, 0, true)])
            .unwrap();
    }
    c.end().unwrap();

    // The leader: slashed at 1.0 of its bond for fraudulent_merge.
    let s = slashes(&c);
    let rec = s
        .iter()
        .find(|r| r["offence"] == "fraudulent_merge")
        .expect("a fraudulent_merge slash");
    assert_eq!(rec["offender"], leader.op.to_string());
    assert_eq!(rec["rate_ppm"], 1_000_000);
    assert_eq!(rec["amount"], leader_bond.to_string());
    let reward = leader_bond / 2; // challenger_reward_ppm = 500000
    assert_eq!(rec["rewarded"], reward.to_string());
    let burned: u128 = rec["burned"].as_str().unwrap().parse().unwrap();
    let pool: u128 = rec["to_pool"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        reward + burned + pool,
        leader_bond,
        "every umag of the slash is named"
    );
    assert_eq!(bond(&c, &leader.op), 0);
    // The challenger: bond back plus its share.
    assert_eq!(c.balance(&challenger), before + reward);
    assert_eq!(c.balance(&magnet_jobs::state::audit_escrow()), 0);
    // The lineage: back to round 0's base; round 1 (built on the fraud) dropped with it.
    let j = job_of(&c, job);
    assert_eq!(j["head"], hex::encode(BASE_CHECKPOINT));
    assert_eq!(j["rounds"], 0);
    let l = lineage(&c, job);
    assert!(l["rounds"].as_array().unwrap().is_empty(), "{l}");
    assert!(l["shares"].as_array().unwrap().is_empty(), "{l}");
    assert_eq!(audit(&c, job, 0)["outcome"], "upheld");
    // The dropped rounds' Δs stay indexed: work already committed naming them still reveals.
    c.begin(1).unwrap();
    let still = c.with_ctx(|ctx| {
        use magnet_core::Jobs;
        magnet_jobs::JobsModule.accepted_delta(ctx, job, 0, &delta_of(job, 0, 1))
    });
    c.end().unwrap();
    assert!(still.unwrap().is_some());
    assert_eq!(audit(&c, job, 1)["outcome"], "dropped");
    // The lineage goes on from the last good merge, led by someone else (the leader is jailed).
    let mut next = 2;
    while elected(&c, job, next).is_some() {
        next += 1;
    }
    train_round(&mut c, &nodes, job, next, &[(1, 8)]);
    let l = lineage(&c, job);
    assert_eq!(l["rounds"][0]["base_hash"], hex::encode(BASE_CHECKPOINT));
    assert_ne!(l["rounds"][0]["leader_node_id"], leader.node_id);
}

#[test]
fn a_false_challenge_costs_the_challenger_its_bond_and_nothing_else_changes() {
    let (mut c, nodes, job) = two_rounds();
    let a0 = audit(&c, job, 0);
    let leader = by_id(&nodes, a0["leader_node_id"].as_str().unwrap()).clone();
    let jury = auditors(&c, &nodes, job, 0);
    let challenger = jury[0].op;
    let leader_bond = bond(&c, &leader.op);
    let before = c.balance(&challenger);
    let head = job_of(&c, job)["head"].clone();

    c.begin(1).unwrap();
    c.deliver(&challenger, &[challenge(&challenger, job, 0, BOND)])
        .unwrap();
    c.deliver(
        &jury[0].node,
        &[msgs::audit_verdict(&jury[0].node, job, 0, true)],
    )
    .unwrap();
    for n in &jury[1..] {
        c.deliver(&n.node, &[msgs::audit_verdict(&n.node, job, 0, false)])
            .unwrap();
    }
    c.end().unwrap();

    assert_eq!(audit(&c, job, 0)["outcome"], "rejected");
    assert_eq!(
        c.balance(&challenger),
        before - BOND,
        "the whole bond is lost"
    );
    let s = slashes(&c);
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0]["offence"], "failed_challenge");
    assert_eq!(s[0]["offender"], challenger.to_string());
    assert_eq!(s[0]["base"], BOND.to_string());
    assert_eq!(bond(&c, &leader.op), leader_bond);
    assert_eq!(job_of(&c, job)["head"], head);
    assert_eq!(lineage(&c, job)["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(c.balance(&magnet_jobs::state::audit_escrow()), 0);
}

#[test]
fn a_challenge_nobody_rules_on_returns_the_bond_after_the_verdict_period() {
    let (mut c, nodes, job) = two_rounds();
    let challenger = nodes[4].op;
    let before = c.balance(&challenger);
    c.begin(1).unwrap();
    c.deliver(&challenger, &[challenge(&challenger, job, 1, BOND)])
        .unwrap();
    c.end().unwrap();
    let until = audit(&c, job, 1)["challenge"]["verdicts_until"]
        .as_u64()
        .unwrap();
    while c.block.height < until {
        c.empty_block(1).unwrap();
    }
    assert_eq!(audit(&c, job, 1)["outcome"], "no_verdict");
    assert_eq!(c.balance(&challenger), before);
    assert!(slashes(&c).is_empty());
}

/// Every way a challenge or a verdict can be wrong, each refused with its code and no state
/// change.
#[test]
fn every_out_of_place_challenge_or_verdict_is_refused_and_changes_nothing() {
    let (mut c, nodes, job) = two_rounds();
    let a0 = audit(&c, job, 0);
    let leader = by_id(&nodes, a0["leader_node_id"].as_str().unwrap()).clone();
    let jury: Vec<Node> = auditors(&c, &nodes, job, 0).into_iter().cloned().collect();
    let ch = nodes[4].op;
    let refused = |c: &mut magnet_testkit::Chain,
                   what: &str,
                   signer: &Address,
                   msg: prost_types::Any,
                   code: u32| {
        let before = c.snapshot();
        let e = c.deliver(signer, &[msg]).unwrap_err();
        assert_eq!(
            (e.codespace.as_str(), e.code),
            ("jobs", code),
            "{what}: {}",
            e.log
        );
        assert_eq!(c.snapshot(), before, "{what} changed the state");
    };
    c.begin(1).unwrap();
    refused(
        &mut c,
        "a challenge of an unknown job",
        &ch,
        challenge(&ch, 99, 0, BOND),
        2,
    );
    refused(
        &mut c,
        "a challenge of a round never recorded",
        &ch,
        challenge(&ch, job, 7, BOND),
        16,
    );
    refused(
        &mut c,
        "a bond below challenge_bond",
        &ch,
        challenge(&ch, job, 0, BOND - 1),
        18,
    );
    refused(
        &mut c,
        "evidence naming no part of the record",
        &ch,
        msgs::challenge_round(&ch, job, 0, BOND, [1; 32], "vibes"),
        9,
    );
    refused(
        &mut c,
        "a verdict on a round nobody challenged",
        &jury[0].node,
        msgs::audit_verdict(&jury[0].node, job, 0, true),
        20,
    );
    refused(
        &mut c,
        "a verdict from the round's own leader (never an auditor)",
        &leader.node,
        msgs::audit_verdict(&leader.node, job, 0, false),
        21,
    );
    refused(
        &mut c,
        "a verdict from an unregistered key",
        &ch,
        msgs::audit_verdict(&ch, job, 0, true),
        21,
    );
    c.deliver(&ch, &[challenge(&ch, job, 0, BOND)]).unwrap();
    refused(
        &mut c,
        "a second challenge of the same round",
        &nodes[3].op,
        challenge(&nodes[3].op, job, 0, BOND),
        19,
    );
    c.deliver(
        &jury[0].node,
        &[msgs::audit_verdict(&jury[0].node, job, 0, false)],
    )
    .unwrap();
    refused(
        &mut c,
        "a second verdict from one auditor",
        &jury[0].node,
        msgs::audit_verdict(&jury[0].node, job, 0, true),
        22,
    );
    c.end().unwrap();
    // Past the verdict period the challenge is resolved; past the window nothing can be filed.
    let until = audit(&c, job, 0)["challenge"]["verdicts_until"]
        .as_u64()
        .unwrap();
    while c.block.height < until {
        c.empty_block(1).unwrap();
    }
    c.begin(1).unwrap();
    refused(
        &mut c,
        "a verdict after the challenge was resolved",
        &jury[1].node,
        msgs::audit_verdict(&jury[1].node, job, 0, true),
        20,
    );
    c.end().unwrap();
    let window = audit(&c, job, 1)["window_ends"].as_u64().unwrap();
    while c.block.height <= window {
        c.empty_block(1).unwrap();
    }
    c.begin(1).unwrap();
    refused(
        &mut c,
        "a challenge after the round's window",
        &ch,
        challenge(&ch, job, 1, BOND),
        17,
    );
    c.end().unwrap();
}
