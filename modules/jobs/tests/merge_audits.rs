//! Merge audits and challenges (ADR 0089) through the wired modules: a recorded round gets
//! drawn auditors; a challenge with a bond inside the window is decided by their verdicts;
//! upheld → the leader is slashed in full (`fraudulent_merge`), the challenger paid, the head
//! rolled back; rejected → the challenger loses its bond. Verdicts are sealed (commit) and
//! opened (reveal) by the drawn auditors (ADR 0091): silence is slashed `no_reveal`, a verdict
//! against the majority `audit_deviation`. Every refusal changes nothing.

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

/// The fraud evidence every test challenge and fraud verdict names.
const FRAUD_HASH: [u8; 32] = [0xAB; 32];

/// Auditor `n`'s secret nonce for round `round`.
fn nonce(n: &Node, round: u64) -> [u8; 32] {
    magnet_core::sha256(&[n.node.as_bytes().as_slice(), &round.to_be_bytes()].concat())
}

/// The recorded merged hash of round `round` (what an `ok` verdict names).
fn recorded(c: &magnet_testkit::Chain, job: u64, round: u64) -> [u8; 32] {
    let l = lineage(c, job);
    let r = l["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["round"] == round)
        .unwrap();
    hex::decode(r["merged_hash"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap()
}

/// What auditor `n` recomputed for its verdict.
fn evidence(c: &magnet_testkit::Chain, job: u64, round: u64, fraud: bool) -> [u8; 32] {
    if fraud {
        FRAUD_HASH
    } else {
        recorded(c, job, round)
    }
}

/// `n`'s sealed verdict.
fn seal(
    c: &magnet_testkit::Chain,
    n: &Node,
    job: u64,
    round: u64,
    fraud: bool,
) -> prost_types::Any {
    let h = msgs::verdict_commitment(
        &c.block.chain_id,
        job,
        round,
        &n.node,
        fraud,
        &evidence(c, job, round, fraud),
        &nonce(n, round),
    );
    msgs::audit_commit(&n.node, job, round, h)
}

/// `n`'s reveal of its sealed verdict.
fn open(
    c: &magnet_testkit::Chain,
    n: &Node,
    job: u64,
    round: u64,
    fraud: bool,
) -> prost_types::Any {
    msgs::audit_reveal(
        &n.node,
        job,
        round,
        fraud,
        evidence(c, job, round, fraud),
        nonce(n, round),
    )
}

/// Each juror commits, then (the reveal period opens once all committed) reveals, in the
/// current block.
fn vote(c: &mut magnet_testkit::Chain, jury: &[&Node], job: u64, round: u64, fraud: &[bool]) {
    for (n, f) in jury.iter().zip(fraud) {
        let m = seal(c, n, job, round, *f);
        c.deliver(&n.node, &[m]).unwrap();
    }
    for (n, f) in jury.iter().zip(fraud) {
        let m = open(c, n, job, round, *f);
        c.deliver(&n.node, &[m]).unwrap();
    }
}

/// Mines empty blocks until the height is past `h`.
fn past(c: &mut magnet_testkit::Chain, h: u64) {
    while c.block.height <= h {
        c.empty_block(1).unwrap();
    }
}

fn offences(c: &magnet_testkit::Chain) -> Vec<(String, String)> {
    slashes(c)
        .iter()
        .map(|s| {
            (
                s["offender"].as_str().unwrap().to_string(),
                s["offence"].as_str().unwrap().to_string(),
            )
        })
        .collect()
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
    vote(&mut c, &jury, job, 0, &[true, true, true]);
    c.end().unwrap();

    // The leader: slashed at 1.0 of its bond for fraudulent_merge; the honest auditors not.
    assert_eq!(
        offences(&c),
        vec![(leader.op.to_string(), "fraudulent_merge".to_string())]
    );
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
    vote(&mut c, &jury, job, 0, &[true, false, false]);
    c.end().unwrap();

    assert_eq!(audit(&c, job, 0)["outcome"], "rejected");
    assert_eq!(
        c.balance(&challenger),
        before - BOND,
        "the whole bond is lost"
    );
    let s = slashes(&c);
    // The bond, and the challenger's own verdict against the majority (it is a drawn auditor
    // like any other: its verdict is sealed and counted, and answers for itself).
    assert_eq!(s.len(), 2, "{s:#?}");
    assert_eq!(s[1]["offence"], "audit_deviation");
    assert_eq!(s[1]["offender"], jury[0].op.to_string());
    assert_eq!(s[0]["offence"], "failed_challenge");
    assert_eq!(s[0]["offender"], challenger.to_string());
    assert_eq!(s[0]["base"], BOND.to_string());
    assert_eq!(bond(&c, &leader.op), leader_bond);
    assert_eq!(job_of(&c, job)["head"], head);
    assert_eq!(lineage(&c, job)["rounds"].as_array().unwrap().len(), 2);
    assert_eq!(c.balance(&magnet_jobs::state::audit_escrow()), 0);
}

#[test]
fn a_challenge_nobody_rules_on_returns_the_bond_and_slashes_every_silent_auditor() {
    let (mut c, nodes, job) = two_rounds();
    let challenger = nodes[4].op;
    let jury = auditors(&c, &nodes, job, 1);
    let before = c.balance(&challenger);
    c.begin(1).unwrap();
    c.deliver(&challenger, &[challenge(&challenger, job, 1, BOND)])
        .unwrap();
    c.end().unwrap();
    let until = audit(&c, job, 1)["challenge"]["reveals_until"]
        .as_u64()
        .unwrap();
    while c.block.height < until {
        c.empty_block(1).unwrap();
    }
    assert_eq!(audit(&c, job, 1)["outcome"], "no_verdict");
    assert_eq!(c.balance(&challenger), before);
    let want: Vec<(String, String)> = jury
        .iter()
        .map(|n| (n.op.to_string(), "no_reveal".to_string()))
        .collect();
    assert_eq!(
        offences(&c),
        want,
        "an auditor that never answers pays for it"
    );
}

#[test]
fn a_minority_auditor_is_slashed_for_audit_deviation_and_the_honest_majority_is_not() {
    let (mut c, nodes, job) = two_rounds();
    let a0 = audit(&c, job, 0);
    let leader = by_id(&nodes, a0["leader_node_id"].as_str().unwrap()).clone();
    let jury = auditors(&c, &nodes, job, 0);
    let ch = nodes
        .iter()
        .find(|n| n.node_id != leader.node_id)
        .unwrap()
        .op;
    let bonds: Vec<u128> = jury.iter().map(|n| bond(&c, &n.op)).collect();
    c.begin(1).unwrap();
    c.deliver(&ch, &[challenge(&ch, job, 0, BOND)]).unwrap();
    // The third auditor says "ok" without having re-run anything; the merge was a fraud.
    vote(&mut c, &jury, job, 0, &[true, true, false]);
    c.end().unwrap();
    assert_eq!(audit(&c, job, 0)["outcome"], "upheld");
    let off = offences(&c);
    assert!(off.contains(&(leader.op.to_string(), "fraudulent_merge".into())));
    assert!(off.contains(&(jury[2].op.to_string(), "audit_deviation".into())));
    assert_eq!(off.len(), 2, "{off:?}");
    let rec = slashes(&c)
        .into_iter()
        .find(|r| r["offence"] == "audit_deviation")
        .unwrap();
    assert_eq!(rec["rate_ppm"], 100_000, "the small default rate");
    assert_eq!(rec["amount"], (bonds[2] / 10).to_string());
    assert_eq!(bond(&c, &jury[0].op), bonds[0]);
    assert_eq!(bond(&c, &jury[1].op), bonds[1]);
}

#[test]
fn a_copied_commitment_cannot_be_opened_so_the_copier_and_the_silent_auditor_pay_no_reveal() {
    let (mut c, nodes, job) = two_rounds();
    let a0 = audit(&c, job, 0);
    let leader = by_id(&nodes, a0["leader_node_id"].as_str().unwrap()).clone();
    let jury: Vec<Node> = auditors(&c, &nodes, job, 0).into_iter().cloned().collect();
    let ch = jury[0].op;
    c.begin(1).unwrap();
    c.deliver(&ch, &[challenge(&ch, job, 0, BOND)]).unwrap();
    let honest = seal(&c, &jury[0], job, 0, true);
    c.deliver(&jury[0].node, std::slice::from_ref(&honest))
        .unwrap();
    // The copier files the honest auditor's commitment bytes as its own.
    let m: msgs::MsgAuditCommit = prost::Message::decode(honest.value.as_slice()).unwrap();
    let copied = msgs::audit_commit(&jury[1].node, job, 0, m.commitment.try_into().unwrap());
    c.deliver(&jury[1].node, &[copied]).unwrap();
    // jury[2] stays silent.
    c.end().unwrap();
    let commits_until = audit(&c, job, 0)["challenge"]["commits_until"]
        .as_u64()
        .unwrap();
    past(&mut c, commits_until);
    c.begin(1).unwrap();
    let m = open(&c, &jury[0], job, 0, true);
    c.deliver(&jury[0].node, &[m]).unwrap();
    // The commitment binds its auditor: the copier cannot open it, whatever it learned.
    let opened = msgs::audit_reveal(&jury[1].node, job, 0, true, FRAUD_HASH, nonce(&jury[0], 0));
    let e = c.deliver(&jury[1].node, &[opened]).unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 26), "{}", e.log);
    c.end().unwrap();
    let until = audit(&c, job, 0)["challenge"]["reveals_until"]
        .as_u64()
        .unwrap();
    while c.block.height < until {
        c.empty_block(1).unwrap();
    }
    assert_eq!(audit(&c, job, 0)["outcome"], "upheld");
    assert_eq!(
        offences(&c),
        vec![
            (leader.op.to_string(), "fraudulent_merge".to_string()),
            (jury[1].op.to_string(), "no_reveal".to_string()),
            (jury[2].op.to_string(), "no_reveal".to_string()),
        ]
    );
}

/// A malformed message is refused by its stateless checks (the shared `sdk` codespace) with no
/// state change.
fn malformed(c: &mut magnet_testkit::Chain, what: &str, signer: &Address, msg: prost_types::Any) {
    let before = c.snapshot();
    let e = c.deliver(signer, &[msg]).unwrap_err();
    assert_eq!(e.codespace.as_str(), "sdk", "{what}: {}", e.log);
    assert!(e.log.contains("must be 32 bytes"), "{what}: {}", e.log);
    assert_eq!(c.snapshot(), before, "{what} changed the state");
}

/// Every way a challenge, a sealed verdict or its reveal can be wrong, each refused with its
/// code and no state change.
#[test]
fn every_out_of_place_challenge_commit_or_reveal_is_refused_and_changes_nothing() {
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
    let m = seal(&c, &jury[0], job, 0, true);
    refused(
        &mut c,
        "a commit on a round nobody challenged",
        &jury[0].node,
        m,
        20,
    );
    let m = seal(&c, &leader, job, 0, false);
    refused(
        &mut c,
        "a commit from the round's own leader (never an auditor)",
        &leader.node,
        m,
        21,
    );
    refused(
        &mut c,
        "a commit from an unregistered key",
        &ch,
        msgs::audit_commit(&ch, job, 0, [3; 32]),
        21,
    );
    let mut short = msgs::audit_commit(&jury[0].node, job, 0, [3; 32]);
    short.value = prost::Message::encode_to_vec(&msgs::MsgAuditCommit {
        auditor: jury[0].node.to_string(),
        job,
        round: 0,
        commitment: vec![3; 31],
    });
    malformed(
        &mut c,
        "a commitment that is not 32 bytes",
        &jury[0].node,
        short,
    );
    let mut short = open(&c, &jury[0], job, 0, true);
    short.value = prost::Message::encode_to_vec(&msgs::MsgAuditReveal {
        auditor: jury[0].node.to_string(),
        job,
        round: 0,
        fraud: true,
        recomputed_hash: FRAUD_HASH.to_vec(),
        nonce: vec![1; 8],
    });
    malformed(&mut c, "a nonce that is not 32 bytes", &jury[0].node, short);
    c.deliver(&ch, &[challenge(&ch, job, 0, BOND)]).unwrap();
    refused(
        &mut c,
        "a second challenge of the same round",
        &nodes[3].op,
        challenge(&nodes[3].op, job, 0, BOND),
        19,
    );
    let m = seal(&c, &jury[0], job, 0, false);
    c.deliver(&jury[0].node, &[m]).unwrap();
    let m = seal(&c, &jury[0], job, 0, true);
    refused(
        &mut c,
        "a second commit from one auditor",
        &jury[0].node,
        m,
        22,
    );
    let m = open(&c, &jury[0], job, 0, false);
    refused(
        &mut c,
        "a reveal while others may still commit (it would let them copy)",
        &jury[0].node,
        m,
        24,
    );
    // jury[1] seals an `ok` that names a hash other than the recorded one.
    let bad_ok = msgs::verdict_commitment(
        &c.block.chain_id,
        job,
        0,
        &jury[1].node,
        false,
        &[0x11; 32],
        &nonce(&jury[1], 0),
    );
    c.deliver(
        &jury[1].node,
        &[msgs::audit_commit(&jury[1].node, job, 0, bad_ok)],
    )
    .unwrap();
    c.end().unwrap();
    let commits_until = audit(&c, job, 0)["challenge"]["commits_until"]
        .as_u64()
        .unwrap();
    past(&mut c, commits_until);
    c.begin(1).unwrap();
    let m = seal(&c, &jury[2], job, 0, false);
    refused(
        &mut c,
        "a commit after the commit period",
        &jury[2].node,
        m,
        23,
    );
    let m = open(&c, &jury[2], job, 0, false);
    refused(
        &mut c,
        "a reveal without a commitment",
        &jury[2].node,
        m,
        25,
    );
    let ok = recorded(&c, job, 0);
    refused(
        &mut c,
        "a reveal with the wrong nonce",
        &jury[0].node,
        msgs::audit_reveal(&jury[0].node, job, 0, false, ok, [9; 32]),
        26,
    );
    let m = open(&c, &jury[0], job, 0, true);
    refused(&mut c, "a reveal of another verdict", &jury[0].node, m, 26);
    refused(
        &mut c,
        "a reveal of another recomputed hash",
        &jury[0].node,
        msgs::audit_reveal(&jury[0].node, job, 0, false, [0x12; 32], nonce(&jury[0], 0)),
        26,
    );
    refused(
        &mut c,
        "an ok verdict that does not name the recorded merged hash",
        &jury[1].node,
        msgs::audit_reveal(&jury[1].node, job, 0, false, [0x11; 32], nonce(&jury[1], 0)),
        28,
    );
    let m = open(&c, &jury[0], job, 0, false);
    c.deliver(&jury[0].node, std::slice::from_ref(&m)).unwrap();
    refused(&mut c, "a second reveal", &jury[0].node, m, 27);
    c.end().unwrap();
    // Past the reveal period the challenge is resolved; past the window nothing can be filed.
    let until = audit(&c, job, 0)["challenge"]["reveals_until"]
        .as_u64()
        .unwrap();
    while c.block.height < until {
        c.empty_block(1).unwrap();
    }
    assert_eq!(audit(&c, job, 0)["outcome"], "rejected");
    c.begin(1).unwrap();
    let m = seal(&c, &jury[1], job, 0, true);
    refused(
        &mut c,
        "a commit after the challenge was resolved",
        &jury[1].node,
        m,
        20,
    );
    let m = open(&c, &jury[1], job, 0, false);
    refused(
        &mut c,
        "a reveal after the challenge was resolved",
        &jury[1].node,
        m,
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
