//! Research jobs on chain (ADR 0111) through the wired modules: a research job names a
//! confirmed data set and a sealed test split and gets a coordinator drawn from the
//! orchestrators; the coordinator records versions of worker-signed trials; sampled trials are
//! re-run by drawn checkers under sealed commit/reveal; a fabricated trial slashes its worker
//! and voids all its trials; settlement pays verified trials and majority checks, the quality
//! pool by the creator's test reveal, and conserves the escrow. Every refusal changes nothing.

use magnet_core::Address;
use magnet_jobs::msgs;
use magnet_jobs::research::{ResearchSpec, TrialInput};
use magnet_testkit::fixtures::*;
use magnet_testkit::magnet_data;
use magnet_testkit::{key, Chain};
use serde_json::{json, Value};

const BUDGET: u128 = 100_000_000;
const DATA: [u8; 32] = [0xDA; 32];
const TEST_ADDR: [u8; 32] = [0x7E; 32];
const SALT: [u8; 32] = [0x5A; 32];

/// Data confirms after 10 s; checks commit within 5 blocks and reveal within 5 more; the test
/// split may be revealed within 10 blocks of the final version.
fn genesis() -> Value {
    let mut g = app_state();
    let mut d = serde_json::to_value(magnet_data::Params::default()).unwrap();
    d["challenge_window_secs"] = 10.into();
    g["data"] = json!({ "params": d });
    let mut j = serde_json::to_value(magnet_jobs::Params::default()).unwrap();
    j["check_commit_blocks"] = 5.into();
    j["check_reveal_blocks"] = 5.into();
    j["test_reveal_blocks"] = 10.into();
    j["max_trial_budget"] = 8.into();
    g["jobs"] = json!({ "params": j });
    g
}

struct World {
    c: Chain,
    nodes: Vec<Node>,
    creator: Address,
}

/// Node 0 is the only orchestrator (the coordinator of every job), nodes 1..=6 `gpu_compute`
/// (workers and checkers); the creator registered [`DATA`], confirmed by `T0 + 40`.
fn world() -> World {
    world_with(true)
}

fn world_with(orchestrator: bool) -> World {
    let nodes: Vec<Node> = (0..7).map(node).collect();
    let creator = key(77).1;
    let mut bal: Vec<(Address, u128)> = nodes.iter().map(|n| (n.op, FUNDS)).collect();
    bal.push((creator, FUNDS));
    let mut c = Chain::genesis(T0, genesis(), &bal);
    c.begin(1).unwrap();
    for (i, n) in nodes.iter().enumerate() {
        if i == 0 && orchestrator {
            n.register(&mut c, "orchestrator", 10_000_000_000).unwrap();
        } else {
            n.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
        }
    }
    c.deliver(
        &creator,
        &[magnet_data::msgs::register(
            &creator, DATA, 1_000, "tabular",
        )],
    )
    .unwrap();
    c.end().unwrap();
    run_until(&mut c, T0 + 40, 10, &nodes);
    World { c, nodes, creator }
}

/// `n` blocks of 1 s, every node heart-beating.
fn blocks(w: &mut World, n: u64) {
    for _ in 0..n {
        w.c.begin(1).unwrap();
        for x in &w.nodes {
            let _ = x.heartbeat(&mut w.c);
        }
        w.c.end().unwrap();
    }
}

fn spec(recheck_ppm: u32) -> ResearchSpec {
    ResearchSpec {
        domain: "tabular".into(),
        data_address: hex::encode(DATA),
        target: "y".into(),
        context: "t".into(),
        trial_budget: 4,
        seed: 7,
        folds: 5,
        test_commitment: hex::encode(msgs::test_commitment(&TEST_ADDR, &SALT)),
        recheck_ppm,
    }
}

/// Creates a research job due 60 s from now; returns its id.
fn create(w: &mut World, s: &ResearchSpec) -> u64 {
    let deadline = w.c.block.time_secs + 60;
    w.c.begin(1).unwrap();
    w.c.deliver(
        &w.creator,
        &[msgs::create_research_job(&w.creator, BUDGET, deadline, s)],
    )
    .unwrap();
    w.c.end().unwrap();
    w.c.query("/magnet.jobs.v1/jobs", b"")
        .unwrap()
        .as_array()
        .unwrap()
        .len() as u64
}

fn unit(tag: u8) -> [u8; 32] {
    [tag; 32]
}

/// The oof hash an honest run of unit `tag` produces.
fn honest_oof(tag: u8) -> [u8; 32] {
    magnet_core::sha256(&[b"oof".as_slice(), &[tag]].concat())
}

/// Worker `i`'s signed trial of unit `tag` with out-of-fold hash `oof`.
fn trial(w: &World, job: u64, i: usize, tag: u8, oof: [u8; 32]) -> TrialInput {
    let mut t = TrialInput {
        unit_hash: unit(tag),
        worker: w.nodes[i].node,
        oof_hash: oof,
        cv_loss_micro: 600_000 + u64::from(tag),
        signature: Vec::new(),
    };
    t.signature = t
        .claim(&w.c.block.chain_id, job)
        .sign(&w.nodes[i].node_sk)
        .unwrap()
        .to_vec();
    t
}

fn version(
    job: u64,
    signer: &Node,
    v: u32,
    entries: &[TrialInput],
    best: [u8; 32],
    last: bool,
) -> prost_types::Any {
    msgs::record_research_version(
        &signer.node,
        job,
        v,
        entries,
        best,
        [0xAA; 32],
        [0xBB; 32],
        last,
    )
}

/// Records a version in its own block (signed by the coordinator, node 0).
fn record(w: &mut World, job: u64, v: u32, entries: &[TrialInput], last: bool) {
    let best = entries.first().map(|e| e.unit_hash).unwrap_or([0u8; 32]);
    let m = version(job, &w.nodes[0], v, entries, best, last);
    w.c.begin(1).unwrap();
    w.c.deliver(&w.nodes[0].node, &[m]).unwrap();
    w.c.end().unwrap();
}

fn view(c: &Chain, job: u64) -> Value {
    c.query("/magnet.jobs.v1/research", job.to_string().as_bytes())
        .unwrap()
}

fn trial_view(c: &Chain, job: u64, tag: u8) -> Value {
    let h = hex::encode(unit(tag));
    view(c, job)["trials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["unit_hash"] == h.as_str())
        .cloned()
        .unwrap_or(Value::Null)
}

fn checkers(w: &World, job: u64, tag: u8) -> Vec<&Node> {
    trial_view(&w.c, job, tag)["check"]["checkers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|id| {
                    w.nodes
                        .iter()
                        .find(|n| n.node_id == id.as_str().unwrap())
                        .unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn nonce(n: &Node, tag: u8) -> [u8; 32] {
    magnet_core::sha256(&[n.node.as_bytes().as_slice(), &[tag]].concat())
}

fn seal(c: &Chain, n: &Node, job: u64, tag: u8, oof: [u8; 32]) -> prost_types::Any {
    let h = msgs::check_commitment(
        &c.block.chain_id,
        &n.node,
        job,
        &unit(tag),
        &oof,
        600_000,
        &nonce(n, tag),
    );
    msgs::trial_check_commit(&n.node, job, unit(tag), h)
}

fn open(n: &Node, job: u64, tag: u8, oof: [u8; 32]) -> prost_types::Any {
    msgs::trial_check_reveal(&n.node, job, unit(tag), oof, 600_000, nonce(n, tag))
}

/// The open check of unit `tag` as a drawn checker finds it in the view
/// (`open_check_list`: a sampled trial's, a disputed record's or a disputed entry's).
fn open_check(c: &Chain, job: u64, tag: u8) -> Value {
    let h = hex::encode(unit(tag));
    view(c, job)["open_check_list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["unit_hash"] == h.as_str())
        .cloned()
        .unwrap_or(Value::Null)
}

/// The drawn checkers of unit `tag`'s open check.
fn jury(w: &World, job: u64, tag: u8) -> Vec<Node> {
    open_check(&w.c, job, tag)["checkers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|id| {
                    w.nodes
                        .iter()
                        .find(|n| n.node_id == id.as_str().unwrap())
                        .unwrap()
                        .clone()
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every drawn checker of unit `tag` commits then reveals the oof hash it re-ran, in one block.
fn recheck(w: &mut World, job: u64, tag: u8, oof: [u8; 32]) {
    let jury: Vec<Node> = jury(w, job, tag);
    assert!(!jury.is_empty(), "unit {tag} was not drawn for a check");
    w.c.begin(1).unwrap();
    for n in &jury {
        let m = seal(&w.c, n, job, tag, oof);
        w.c.deliver(&n.node, &[m]).unwrap();
    }
    for n in &jury {
        w.c.deliver(&n.node, &[open(n, job, tag, oof)]).unwrap();
    }
    w.c.end().unwrap();
}

fn offences(c: &Chain) -> Vec<(String, String)> {
    magnet_testkit::flow::slashes(c)
        .iter()
        .map(|s| {
            (
                s["offender"].as_str().unwrap().to_string(),
                s["offence"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn num(v: &Value) -> u128 {
    v.as_str().unwrap().parse().unwrap()
}

/// Runs blocks until the job settles (at most 200).
fn settle(w: &mut World, job: u64) -> Value {
    for _ in 0..200 {
        let j =
            w.c.query("/magnet.jobs.v1/job", job.to_string().as_bytes())
                .unwrap();
        if j["status"] == "settled" {
            return view(&w.c, job)["research"]["settlement"].clone();
        }
        blocks(w, 1);
    }
    panic!("job {job} did not settle: {}", view(&w.c, job));
}

/// What node `n` earns from the job's settlement by the view: one slot per live trial it
/// worked and per majority check credited to it, plus the coordinator's quality payout.
fn earned(v: &Value, n: &Node) -> u128 {
    let price = num(&v["research"]["slot_price"]);
    let mut slots = 0u128;
    for t in v["trials"].as_array().unwrap() {
        if t["worker_node_id"] == n.node_id.as_str() && !t["voided"].as_bool().unwrap() {
            slots += 1;
        }
    }
    for c in v["check_credits"].as_array().unwrap() {
        if c[0] == n.op.to_string().as_str() {
            slots += u128::from(c[1].as_u64().unwrap());
        }
    }
    let mut out = slots * price;
    if v["research"]["coordinator"] == n.node_id.as_str() {
        out += num(&v["research"]["settlement"]["coordinator"]);
    }
    out + evaluator_pay(v, n)
}

/// What node `n` earned as a held-out evaluator by the view.
fn evaluator_pay(v: &Value, n: &Node) -> u128 {
    v["heldout"]["result"]["paid"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["evaluator"] == n.node_id.as_str())
                .map(|p| num(&p["amount"]))
                .sum()
        })
        .unwrap_or(0)
}

/// The settlement spends the escrow exactly, and each node got what the view says it earned.
fn assert_conserved(w: &World, job: u64, before: &[u128]) {
    let v = view(&w.c, job);
    let s = &v["research"]["settlement"];
    let evaluators = v["heldout"]["result"]["evaluators"]
        .as_str()
        .map(|x| x.parse::<u128>().unwrap())
        .unwrap_or(0);
    let total = num(&s["workers"])
        + num(&s["checkers"])
        + num(&s["coordinator"])
        + num(&s["creator"])
        + num(&s["community"])
        + evaluators;
    assert_eq!(total, BUDGET, "{s}");
    assert_eq!(w.c.balance(&Address::module("jobs")), 0);
    for (n, b) in w.nodes.iter().zip(before) {
        assert_eq!(
            w.c.balance(&n.op) - b,
            earned(&v, n),
            "node {} earned what the view says",
            n.node_id
        );
    }
}

#[test]
fn a_research_job_gets_the_orchestrator_as_coordinator_and_prices_its_escrow() {
    let mut w = world();
    let job = create(&mut w, &spec(250_000));
    let v = view(&w.c, job);
    let r = &v["research"];
    assert_eq!(r["coordinator"], w.nodes[0].node_id.as_str());
    assert_eq!(r["spec"]["data_address"], hex::encode(DATA));
    // 80 % trial pool over 4 trials + ⌈4 × 0.25 × 3⌉ = 3 check slots; 20 % quality pool.
    assert_eq!(num(&r["trials_pool"]), 80_000_000);
    assert_eq!(num(&r["quality_pool"]), 20_000_000);
    assert_eq!(r["check_slots"], 3);
    assert_eq!(num(&r["slot_price"]), 80_000_000 / 7);
    assert_eq!(w.c.balance(&Address::module("jobs")), BUDGET);
    assert_eq!(w.c.events_of("magnet.jobs.research_created").len(), 1);
}

#[test]
fn a_fabricated_trial_is_slashed_and_all_its_workers_trials_voided_and_unpaid_while_honest_workers_are_paid(
) {
    let mut w = world();
    let job = create(&mut w, &spec(1_000_000));
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    // Worker 1 honest on unit 1; worker 2 fabricates unit 2 and is honest on unit 3.
    let entries = vec![
        trial(&w, job, 1, 1, honest_oof(1)),
        trial(&w, job, 2, 2, [0xFA; 32]),
        trial(&w, job, 2, 3, honest_oof(3)),
    ];
    record(&mut w, job, 0, &entries, false);
    // Every trial is re-checked (recheck 100 %), by 3 checkers, never its worker nor the
    // coordinator.
    for tag in [1u8, 2, 3] {
        let t = trial_view(&w.c, job, tag);
        let ids: Vec<&str> = t["check"]["checkers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 3, "{t}");
        assert!(!ids.contains(&t["worker_node_id"].as_str().unwrap()));
        assert!(!ids.contains(&w.nodes[0].node_id.as_str()));
    }
    assert_eq!(
        view(&w.c, job)["pending_checks"].as_array().unwrap().len(),
        3
    );
    assert_eq!(view(&w.c, job)["research"]["open_checks"], 3);
    recheck(&mut w, job, 1, honest_oof(1));
    recheck(&mut w, job, 2, honest_oof(2));
    recheck(&mut w, job, 3, honest_oof(3));
    assert_eq!(trial_view(&w.c, job, 1)["check"]["outcome"], "agreed");
    assert_eq!(trial_view(&w.c, job, 2)["check"]["outcome"], "fabricated");
    // Both of worker 2's trials are voided, the honest-looking one too.
    assert_eq!(trial_view(&w.c, job, 2)["voided"], true);
    assert_eq!(trial_view(&w.c, job, 3)["voided"], true);
    assert_eq!(trial_view(&w.c, job, 1)["voided"], false);
    assert_eq!(view(&w.c, job)["research"]["live_trials"], 1);
    assert_eq!(view(&w.c, job)["research"]["open_checks"], 0);
    assert_eq!(
        offences(&w.c),
        vec![(w.nodes[2].op.to_string(), "fabricated_trial".to_string())]
    );
    // The coordinator may record the voided unit again, from an honest worker, and finish.
    let e = trial(&w, job, 3, 2, honest_oof(2));
    record(&mut w, job, 1, &[e], true);
    recheck(&mut w, job, 2, honest_oof(2));
    assert_eq!(trial_view(&w.c, job, 2)["voided"], false);
    assert_eq!(
        trial_view(&w.c, job, 2)["worker_node_id"],
        w.nodes[3].node_id.as_str()
    );
    w.c.begin(1).unwrap();
    w.c.deliver(
        &w.creator,
        &[msgs::reveal_test_split(&w.creator, job, TEST_ADDR, SALT)],
    )
    .unwrap();
    w.c.end().unwrap();
    let s = settle(&mut w, job);
    let price = num(&view(&w.c, job)["research"]["slot_price"]);
    assert_eq!(num(&s["workers"]), 2 * price, "{s}");
    // Checks paid are capped at the job's check slots (⌈4 × 1.0 × 3⌉ = 12; 12 majority checks).
    assert_eq!(num(&s["checkers"]), 12 * price, "{s}");
    assert_eq!(s["quality"], "unmeasured");
    assert_eq!(num(&s["coordinator"]), 0);
    // Worker 2 earned nothing for its trials (only its majority checks, if drawn).
    let v = view(&w.c, job);
    let checks_2: u128 = v["check_credits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c[0] == w.nodes[2].op.to_string().as_str())
        .map(|c| u128::from(c[1].as_u64().unwrap()))
        .sum();
    assert_eq!(w.c.balance(&w.nodes[2].op) - before[2], checks_2 * price);
    assert_conserved(&w, job, &before);
}

#[test]
fn a_creator_whose_reveal_does_not_match_its_commitment_is_refused_and_after_the_deadline_loses_the_quality_pool_to_the_coordinator_while_workers_are_paid(
) {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let creator_before = w.c.balance(&w.creator);
    let entries = vec![
        trial(&w, job, 1, 1, honest_oof(1)),
        trial(&w, job, 2, 2, honest_oof(2)),
    ];
    record(&mut w, job, 0, &entries, true);
    // A reveal that does not open the commitment is refused and changes nothing.
    w.c.begin(1).unwrap();
    let snap = w.c.snapshot();
    let e =
        w.c.deliver(
            &w.creator,
            &[msgs::reveal_test_split(
                &w.creator, job, TEST_ADDR, [0x11; 32],
            )],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 36), "{}", e.log);
    assert!(e.log.contains("does not match the commitment"), "{}", e.log);
    assert_eq!(w.c.snapshot(), snap);
    w.c.end().unwrap();
    let s = settle(&mut w, job);
    let v = view(&w.c, job);
    let price = num(&v["research"]["slot_price"]);
    assert_eq!(s["quality"], "forfeit", "{s}");
    assert_eq!(num(&s["coordinator"]), 20_000_000);
    assert_eq!(num(&s["workers"]), 2 * price);
    assert_eq!(
        w.c.balance(&w.nodes[0].op) - before[0],
        20_000_000,
        "the coordinator gets the whole quality pool"
    );
    for i in [1, 2] {
        assert!(w.c.balance(&w.nodes[i].op) - before[i] >= price);
    }
    // The creator gets the unused slots back, nothing of the quality pool.
    assert_eq!(w.c.balance(&w.creator) - creator_before, num(&s["creator"]));
    let slots = 4 + u128::from(v["research"]["check_slots"].as_u64().unwrap());
    assert_eq!(
        num(&s["creator"]),
        slots * price - num(&s["workers"]) - num(&s["checkers"])
    );
    assert_conserved(&w, job, &before);
    // Too late now: the reveal period ended (and the job settled).
    w.c.begin(1).unwrap();
    let e =
        w.c.deliver(
            &w.creator,
            &[msgs::reveal_test_split(&w.creator, job, TEST_ADDR, SALT)],
        )
        .unwrap_err();
    assert_eq!((e.codespace.as_str(), e.code), ("jobs", 3), "{}", e.log);
    w.c.end().unwrap();
}

#[test]
fn a_job_without_a_final_version_returns_the_quality_pool_and_unused_slots_to_the_creator() {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, &[e], false);
    let s = settle(&mut w, job);
    assert_eq!(s["quality"], "no_final");
    assert_eq!(num(&s["coordinator"]), 0);
    assert_conserved(&w, job, &before);
}

/// One refusal case: what, signer, message, expected (codespace, code).
type Case = (&'static str, Address, prost_types::Any, &'static str, u32);

fn refuse_all(c: &mut Chain, cases: Vec<Case>) {
    let before = c.snapshot();
    for (what, signer, msg, space, code) in cases {
        let e = c.deliver(&signer, &[msg]).unwrap_err();
        assert_eq!(
            (e.codespace.as_str(), e.code),
            (space, code),
            "{what}: {}",
            e.log
        );
        assert_eq!(c.snapshot(), before, "{what} changed the state");
    }
}

#[test]
fn every_invalid_research_job_creation_is_refused_and_changes_nothing() {
    let mut w = world();
    let cr = w.creator;
    let d = w.c.block.time_secs + 600;
    let with = |f: &dyn Fn(&mut ResearchSpec)| {
        let mut s = spec(50_000);
        f(&mut s);
        msgs::create_research_job(&cr, BUDGET, d, &s)
    };
    let mut both: magnet_proto::jobs::v1::MsgCreateJob =
        prost::Message::decode(with(&|_| {}).value.as_slice()).unwrap();
    both.training = Some(magnet_proto::jobs::v1::TrainingSpec {
        inner_steps: 1,
        batch_size: 1,
        seq_len: 1,
        params: 1,
        first_height: 1_000,
        blocks_per_round: 1,
        leader_rule: "hash".into(),
        max_staleness: 0,
        stale_decay_bps: 0,
        outer: None,
    });
    w.c.begin(1).unwrap();
    // A data set registered in this very block is still pending.
    w.c.deliver(
        &cr,
        &[magnet_data::msgs::register(&cr, [0xDB; 32], 1, "tabular")],
    )
    .unwrap();
    let cases: Vec<Case> = vec![
        (
            "training and research",
            cr,
            magnet_core::msg::to_any(&both),
            "jobs",
            9,
        ),
        (
            "unknown domain",
            cr,
            with(&|s| s.domain = "images".into()),
            "jobs",
            9,
        ),
        ("empty target", cr, with(&|s| s.target.clear()), "jobs", 9),
        ("one fold", cr, with(&|s| s.folds = 1), "jobs", 9),
        ("21 folds", cr, with(&|s| s.folds = 21), "jobs", 9),
        ("no trials", cr, with(&|s| s.trial_budget = 0), "jobs", 9),
        (
            "over max_trial_budget",
            cr,
            with(&|s| s.trial_budget = 9),
            "jobs",
            9,
        ),
        (
            "recheck below the minimum",
            cr,
            with(&|s| s.recheck_ppm = 49_999),
            "jobs",
            9,
        ),
        (
            "recheck above 1",
            cr,
            with(&|s| s.recheck_ppm = 1_000_001),
            "jobs",
            9,
        ),
        (
            "unregistered data",
            cr,
            with(&|s| s.data_address = hex::encode([0xDC; 32])),
            "jobs",
            31,
        ),
        (
            "pending data",
            cr,
            with(&|s| s.data_address = hex::encode([0xDB; 32])),
            "jobs",
            31,
        ),
        (
            "short test commitment",
            cr,
            {
                let mut m = both.clone();
                m.training = None;
                m.research.as_mut().unwrap().test_commitment = vec![1; 31];
                magnet_core::msg::to_any(&m)
            },
            "sdk",
            3,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
}

#[test]
fn a_research_job_needs_a_live_orchestrator_to_coordinate_it() {
    let mut w = world_with(false);
    let d = w.c.block.time_secs + 600;
    w.c.begin(1).unwrap();
    let m = msgs::create_research_job(&w.creator, BUDGET, d, &spec(50_000));
    let cr = w.creator;
    refuse_all(&mut w.c, vec![("no orchestrator", cr, m, "jobs", 30)]);
    w.c.end().unwrap();
}

#[test]
fn every_invalid_research_version_is_refused_and_changes_nothing() {
    let mut w = world();
    let job = create(&mut w, &spec(1_000_000));
    // A training job to name by mistake.
    w.c.begin(1).unwrap();
    let training = magnet_testkit::flow::training_job(
        &mut w.c,
        &w.nodes[1].op,
        1_000,
        10_000_000,
        T0 + 50_000,
    );
    w.c.end().unwrap();
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, &[e], false);
    let co = w.nodes[0].clone();
    let good = |v: u32, e: &[TrialInput]| version(job, &co, v, e, [0u8; 32], false);
    let t = |i: usize, tag: u8| trial(&w, job, i, tag, honest_oof(tag));
    let mut forged = t(2, 5);
    forged.signature = trial(&w, job, 3, 5, honest_oof(5)).signature;
    let mut stranger = t(2, 6);
    stranger.worker = key(999).1;
    let mut other_job = t(2, 7);
    other_job.signature = trial(&w, job + 1, 2, 7, honest_oof(7)).signature;
    let dup = vec![t(2, 8), t(3, 8)];
    let cases: Vec<Case> = vec![
        (
            "unknown job",
            co.node,
            version(99, &co, 0, &[], [0u8; 32], false),
            "jobs",
            2,
        ),
        (
            "a training job",
            co.node,
            version(training, &co, 0, &[], [0u8; 32], false),
            "jobs",
            29,
        ),
        (
            "not the coordinator",
            w.nodes[1].node,
            version(job, &w.nodes[1], 1, &[], [0u8; 32], false),
            "jobs",
            32,
        ),
        ("version gap", co.node, good(2, &[]), "jobs", 33),
        ("version replay", co.node, good(0, &[]), "jobs", 33),
        (
            "over the trial budget",
            co.node,
            good(1, &[t(2, 2), t(3, 3), t(4, 4), t(5, 5)]),
            "jobs",
            33,
        ),
        (
            "unit recorded already",
            co.node,
            good(1, &[t(2, 1)]),
            "jobs",
            34,
        ),
        ("forged signature", co.node, good(1, &[forged]), "jobs", 34),
        (
            "signature for another job",
            co.node,
            good(1, &[other_job]),
            "jobs",
            34,
        ),
        (
            "unregistered worker",
            co.node,
            good(1, &[stranger]),
            "jobs",
            34,
        ),
        ("unit listed twice", co.node, good(1, &dup), "jobs", 9),
        (
            "unknown best unit",
            co.node,
            version(job, &co, 1, &[], [0xEE; 32], false),
            "jobs",
            33,
        ),
    ];
    w.c.begin(1).unwrap();
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
    // After the final version nothing follows.
    record(&mut w, job, 1, &[], true);
    w.c.begin(1).unwrap();
    refuse_all(
        &mut w.c,
        vec![("after final", co.node, good(2, &[]), "jobs", 33)],
    );
    w.c.end().unwrap();
}

#[test]
fn every_out_of_place_trial_check_or_test_reveal_is_refused_and_changes_nothing() {
    let mut w = world();
    let job = create(&mut w, &spec(1_000_000));
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, &[e], false);
    let jury: Vec<Node> = checkers(&w, job, 1).into_iter().cloned().collect();
    let outsider = w
        .nodes
        .iter()
        .find(|n| n.node_id != w.nodes[0].node_id && !jury.iter().any(|j| j.node_id == n.node_id))
        .unwrap()
        .clone();
    let (a, b) = (jury[0].clone(), jury[1].clone());
    let cr = w.creator;
    w.c.begin(1).unwrap();
    w.c.deliver(&a.node, &[seal(&w.c, &a, job, 1, honest_oof(1))])
        .unwrap();
    let cases: Vec<Case> = vec![
        (
            "not a drawn checker",
            outsider.node,
            seal(&w.c, &outsider, job, 1, honest_oof(1)),
            "jobs",
            35,
        ),
        (
            "no such trial",
            a.node,
            seal(&w.c, &a, job, 9, honest_oof(9)),
            "jobs",
            35,
        ),
        (
            "committed twice",
            a.node,
            seal(&w.c, &a, job, 1, honest_oof(1)),
            "jobs",
            35,
        ),
        (
            "reveal before the reveal period",
            a.node,
            open(&a, job, 1, honest_oof(1)),
            "jobs",
            35,
        ),
        (
            "reveal without a commitment",
            b.node,
            open(&b, job, 1, honest_oof(1)),
            "jobs",
            35,
        ),
        (
            "test reveal before the final version",
            cr,
            msgs::reveal_test_split(&cr, job, TEST_ADDR, SALT),
            "jobs",
            36,
        ),
        (
            "test reveal by another account",
            w.nodes[1].op,
            msgs::reveal_test_split(&w.nodes[1].op, job, TEST_ADDR, SALT),
            "jobs",
            4,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
    // Past the commit period (5 blocks): no commit; a wrong opening is refused.
    blocks(&mut w, 5);
    w.c.begin(1).unwrap();
    let cases: Vec<Case> = vec![
        (
            "commit after the commit period",
            b.node,
            seal(&w.c, &b, job, 1, honest_oof(1)),
            "jobs",
            35,
        ),
        (
            "reveal that does not open the commitment",
            a.node,
            open(&a, job, 1, [0x01; 32]),
            "jobs",
            35,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.deliver(&a.node, &[open(&a, job, 1, honest_oof(1))])
        .unwrap();
    refuse_all(
        &mut w.c,
        vec![(
            "revealed twice",
            a.node,
            open(&a, job, 1, honest_oof(1)),
            "jobs",
            35,
        )],
    );
    w.c.end().unwrap();
    // At resolution (one reveal, agreeing): the entry stands, the silent checkers pay
    // no_reveal, the revealer is in the majority.
    blocks(&mut w, 6);
    let t = trial_view(&w.c, job, 1);
    assert_eq!(t["check"]["outcome"], "agreed", "{t}");
    let mut silent: Vec<(String, String)> = jury[1..]
        .iter()
        .map(|n| (n.op.to_string(), "no_reveal".to_string()))
        .collect();
    silent.sort();
    let mut got = offences(&w.c);
    got.sort();
    assert_eq!(got, silent);
}

#[test]
fn a_minority_checker_pays_audit_deviation_and_a_check_nobody_reveals_leaves_the_trial_standing() {
    let mut w = world();
    let job = create(&mut w, &spec(1_000_000));
    let e = vec![
        trial(&w, job, 1, 1, honest_oof(1)),
        trial(&w, job, 2, 2, honest_oof(2)),
    ];
    record(&mut w, job, 0, &e, false);
    // Unit 1: two checkers agree, one claims another oof hash.
    let jury: Vec<Node> = checkers(&w, job, 1).into_iter().cloned().collect();
    w.c.begin(1).unwrap();
    let oofs = [honest_oof(1), honest_oof(1), [0x0F; 32]];
    for (n, o) in jury.iter().zip(oofs) {
        let m = seal(&w.c, n, job, 1, o);
        w.c.deliver(&n.node, &[m]).unwrap();
    }
    for (n, o) in jury.iter().zip(oofs) {
        w.c.deliver(&n.node, &[open(n, job, 1, o)]).unwrap();
    }
    w.c.end().unwrap();
    let t = trial_view(&w.c, job, 1);
    assert_eq!(t["check"]["outcome"], "agreed", "{t}");
    assert_eq!(t["voided"], false);
    // Unit 2: nobody reveals; at the end of its reveal period nothing is decided.
    blocks(&mut w, 12);
    let t = trial_view(&w.c, job, 2);
    assert_eq!(t["check"]["outcome"], "no_verdict", "{t}");
    assert_eq!(t["voided"], false);
    let mut want: Vec<(String, String)> = vec![(jury[2].op.to_string(), "audit_deviation".into())];
    want.extend(
        checkers(&w, job, 2)
            .iter()
            .map(|n| (n.op.to_string(), "no_reveal".to_string())),
    );
    want.sort();
    let mut got = offences(&w.c);
    got.sort();
    assert_eq!(got, want);
    // The two majority checkers are credited; the dissenter and the silent are not.
    let v = view(&w.c, job);
    let credited: u64 = v["check_credits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[1].as_u64().unwrap())
        .sum();
    assert_eq!(credited, 2);
    assert_eq!(v["research"]["live_trials"], 2);
}

fn dispute_view(c: &Chain, job: u64, tag: u8) -> Value {
    let h = hex::encode(unit(tag));
    view(c, job)["disputes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["unit_hash"] == h.as_str())
        .cloned()
        .unwrap_or(Value::Null)
}

/// The coordinator (node 0) disputes `entry` in its own block.
fn dispute(w: &mut World, job: u64, entry: &TrialInput) {
    let m = msgs::dispute_trial(&w.nodes[0].node, job, entry);
    w.c.begin(1).unwrap();
    w.c.deliver(&w.nodes[0].node, &[m]).unwrap();
    w.c.end().unwrap();
}

/// Re-runs honestly every sampled check still open on units `tags`.
fn recheck_sampled(w: &mut World, job: u64, tags: &[u8]) {
    for &tag in tags {
        if !open_check(&w.c, job, tag).is_null() {
            recheck(w, job, tag, honest_oof(tag));
        }
    }
}

fn reveal_test(w: &mut World, job: u64) {
    w.c.begin(1).unwrap();
    w.c.deliver(
        &w.creator,
        &[msgs::reveal_test_split(&w.creator, job, TEST_ADDR, SALT)],
    )
    .unwrap();
    w.c.end().unwrap();
}

#[test]
fn a_disputed_fabricated_trial_slashes_its_worker_voids_its_trials_and_honest_workers_are_still_paid(
) {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    // Worker 1 honest on unit 1, worker 2 honest on unit 3; the coordinator caught worker 2's
    // answer for unit 2 (its re-run did not match) and left it out of the version.
    let entries = vec![
        trial(&w, job, 1, 1, honest_oof(1)),
        trial(&w, job, 2, 3, honest_oof(3)),
    ];
    record(&mut w, job, 0, &entries, false);
    recheck_sampled(&mut w, job, &[1, 3]);
    let fabricated = trial(&w, job, 2, 2, [0xFA; 32]);
    dispute(&mut w, job, &fabricated);
    assert_eq!(w.c.events_of("magnet.jobs.trial_disputed").len(), 1);
    let d = dispute_view(&w.c, job, 2);
    assert_eq!(d["outcome"], "open", "{d}");
    assert_eq!(d["on_record"], false);
    assert_eq!(d["worker_node_id"], w.nodes[2].node_id.as_str());
    // Drawn regardless of sampling: 3 checkers, never the worker nor the coordinator; the view
    // lists it for them with its periods.
    let o = open_check(&w.c, job, 2);
    assert_eq!(o["source"], "dispute", "{o}");
    assert_eq!(o["disputed"], true);
    assert_eq!(o["job"], job);
    let ids: Vec<&str> = o["checkers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(!ids.contains(&w.nodes[2].node_id.as_str()));
    assert!(!ids.contains(&w.nodes[0].node_id.as_str()));
    assert!(o["reveals_until"].as_u64().unwrap() > o["commits_until"].as_u64().unwrap());
    assert!(view(&w.c, job)["pending_checks"]
        .as_array()
        .unwrap()
        .contains(&json!(hex::encode(unit(2)))));
    // Held apart: not live, not counted toward the budget.
    assert_eq!(view(&w.c, job)["research"]["live_trials"], 2);
    assert!(trial_view(&w.c, job, 2).is_null());
    recheck(&mut w, job, 2, honest_oof(2));
    let d = dispute_view(&w.c, job, 2);
    assert_eq!(d["outcome"], "upheld", "{d}");
    assert_eq!(d["check"]["outcome"], "fabricated");
    assert_eq!(trial_view(&w.c, job, 3)["voided"], true);
    assert_eq!(trial_view(&w.c, job, 1)["voided"], false);
    assert_eq!(view(&w.c, job)["research"]["live_trials"], 1);
    assert_eq!(view(&w.c, job)["research"]["open_checks"], 0);
    assert_eq!(
        offences(&w.c),
        vec![(w.nodes[2].op.to_string(), "fabricated_trial".to_string())]
    );
    // The unit is recordable from an honest worker once the dispute resolved.
    let e = trial(&w, job, 3, 2, honest_oof(2));
    record(&mut w, job, 1, &[e], true);
    recheck_sampled(&mut w, job, &[2]);
    reveal_test(&mut w, job);
    let s = settle(&mut w, job);
    let price = num(&view(&w.c, job)["research"]["slot_price"]);
    assert_eq!(num(&s["workers"]), 2 * price, "{s}");
    assert!(w.c.balance(&w.nodes[1].op) - before[1] >= price);
    assert!(w.c.balance(&w.nodes[3].op) - before[3] >= price);
    assert_conserved(&w, job, &before);
}

#[test]
fn a_false_dispute_slashes_the_coordinator_and_the_entry_becomes_a_live_paid_trial() {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, &[e], false);
    recheck_sampled(&mut w, job, &[1]);
    let honest = trial(&w, job, 2, 2, honest_oof(2));
    dispute(&mut w, job, &honest);
    recheck(&mut w, job, 2, honest_oof(2));
    let d = dispute_view(&w.c, job, 2);
    assert_eq!(d["outcome"], "false", "{d}");
    assert_eq!(d["live"], true);
    assert_eq!(
        offences(&w.c),
        vec![(w.nodes[0].op.to_string(), "audit_deviation".to_string())]
    );
    let t = trial_view(&w.c, job, 2);
    assert_eq!(t["voided"], false, "{t}");
    assert_eq!(t["worker_node_id"], w.nodes[2].node_id.as_str());
    assert_eq!(t["check"]["outcome"], "agreed");
    assert_eq!(view(&w.c, job)["research"]["live_trials"], 2);
    // Decided: the same claim cannot be disputed again.
    w.c.begin(1).unwrap();
    let m = msgs::dispute_trial(&w.nodes[0].node, job, &honest);
    let co = w.nodes[0].node;
    refuse_all(&mut w.c, vec![("decided already", co, m, "jobs", 37)]);
    w.c.end().unwrap();
    record(&mut w, job, 1, &[], true);
    reveal_test(&mut w, job);
    let s = settle(&mut w, job);
    let price = num(&view(&w.c, job)["research"]["slot_price"]);
    assert_eq!(num(&s["workers"]), 2 * price, "{s}");
    assert!(w.c.balance(&w.nodes[2].op) - before[2] >= price);
    assert_conserved(&w, job, &before);
}

#[test]
fn a_dispute_of_a_live_record_forces_a_check_on_that_record() {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let entries = vec![
        trial(&w, job, 1, 1, honest_oof(1)),
        trial(&w, job, 2, 2, [0xFA; 32]),
        trial(&w, job, 2, 3, honest_oof(3)),
    ];
    record(&mut w, job, 0, &entries, false);
    recheck_sampled(&mut w, job, &[1, 3]);
    assert!(
        open_check(&w.c, job, 2).is_null(),
        "unit 2 must not be sampled for this test"
    );
    dispute(&mut w, job, &entries[1]);
    let d = dispute_view(&w.c, job, 2);
    assert_eq!(d["on_record"], true, "{d}");
    assert!(d["check"].is_null());
    let o = open_check(&w.c, job, 2);
    assert_eq!(
        (o["source"].clone(), o["disputed"].clone()),
        (json!("trial"), json!(true))
    );
    assert_eq!(trial_view(&w.c, job, 2)["check"]["outcome"], "open");
    // While it is open the unit is neither re-recorded nor disputed again.
    let again = trial(&w, job, 3, 2, honest_oof(2));
    let co = w.nodes[0].clone();
    w.c.begin(1).unwrap();
    refuse_all(
        &mut w.c,
        vec![(
            "dispute of a unit under an open check",
            co.node,
            msgs::dispute_trial(&co.node, job, &again),
            "jobs",
            37,
        )],
    );
    w.c.end().unwrap();
    recheck(&mut w, job, 2, honest_oof(2));
    assert_eq!(trial_view(&w.c, job, 2)["check"]["outcome"], "fabricated");
    assert_eq!(dispute_view(&w.c, job, 2)["outcome"], "upheld");
    assert_eq!(trial_view(&w.c, job, 2)["voided"], true);
    assert_eq!(trial_view(&w.c, job, 3)["voided"], true);
    assert_eq!(
        offences(&w.c),
        vec![(w.nodes[2].op.to_string(), "fabricated_trial".to_string())]
    );
}

#[test]
fn a_dispute_nobody_reveals_slashes_no_one_but_the_silent_and_leaves_the_entry_unpaid() {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let e = trial(&w, job, 2, 2, honest_oof(2));
    dispute(&mut w, job, &e);
    let silent: Vec<Node> = jury(&w, job, 2);
    assert_eq!(silent.len(), 3);
    blocks(&mut w, 12);
    let d = dispute_view(&w.c, job, 2);
    assert_eq!(d["outcome"], "no_verdict", "{d}");
    assert_eq!(d["live"], false);
    assert!(trial_view(&w.c, job, 2).is_null());
    let mut want: Vec<(String, String)> = silent
        .iter()
        .map(|n| (n.op.to_string(), "no_reveal".to_string()))
        .collect();
    want.sort();
    let mut got = offences(&w.c);
    got.sort();
    assert_eq!(got, want);
    assert_eq!(view(&w.c, job)["research"]["live_trials"], 0);
}

#[test]
fn every_invalid_trial_dispute_is_refused_and_changes_nothing() {
    let mut w = world();
    let job = create(&mut w, &spec(1_000_000));
    w.c.begin(1).unwrap();
    let training = magnet_testkit::flow::training_job(
        &mut w.c,
        &w.nodes[1].op,
        1_000,
        10_000_000,
        T0 + 50_000,
    );
    w.c.end().unwrap();
    // Unit 1 recorded (100 % recheck: its check is open); unit 5 disputed (open).
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, std::slice::from_ref(&e), false);
    let five = trial(&w, job, 2, 5, [0xFA; 32]);
    dispute(&mut w, job, &five);
    let co = w.nodes[0].clone();
    let d = |x: &TrialInput| msgs::dispute_trial(&co.node, job, x);
    let t = |i: usize, tag: u8| trial(&w, job, i, tag, [0xFA; 32]);
    let mut forged = t(2, 6);
    forged.signature = t(3, 6).signature;
    let mut stranger = t(2, 6);
    stranger.worker = key(999).1;
    let mut other_job = t(2, 6);
    other_job.signature = trial(&w, job + 1, 2, 6, [0xFA; 32]).signature;
    let no_entry = magnet_core::msg::to_any(&msgs::MsgDisputeTrial {
        coordinator: co.node.to_string(),
        job,
        entry: None,
    });
    let mut short = t(2, 6);
    short.signature.pop();
    let (seven, eight, own) = (t(2, 7), t(2, 8), t(0, 6));
    let (six, one_other, five_other) = (t(2, 6), t(3, 1), t(3, 5));
    let honest_seven = trial(&w, job, 4, 7, honest_oof(7));
    let record_five = version(
        job,
        &co,
        1,
        &[trial(&w, job, 3, 5, honest_oof(5))],
        [0u8; 32],
        false,
    );
    let cases: Vec<Case> = vec![
        (
            "unknown job",
            co.node,
            msgs::dispute_trial(&co.node, 99, &six),
            "jobs",
            2,
        ),
        (
            "a training job",
            co.node,
            msgs::dispute_trial(&co.node, training, &six),
            "jobs",
            29,
        ),
        (
            "not the coordinator",
            w.nodes[1].node,
            msgs::dispute_trial(&w.nodes[1].node, job, &six),
            "jobs",
            32,
        ),
        (
            "the coordinator's operator account",
            co.op,
            msgs::dispute_trial(&co.op, job, &six),
            "jobs",
            32,
        ),
        ("forged signature", co.node, d(&forged), "jobs", 34),
        (
            "signature for another job",
            co.node,
            d(&other_job),
            "jobs",
            34,
        ),
        ("unregistered worker", co.node, d(&stranger), "jobs", 34),
        ("the coordinator's own trial", co.node, d(&own), "jobs", 37),
        (
            "a unit under an open check",
            co.node,
            d(&one_other),
            "jobs",
            37,
        ),
        (
            "the live record under its open check",
            co.node,
            d(&e),
            "jobs",
            37,
        ),
        (
            "a unit under an open dispute",
            co.node,
            d(&five_other),
            "jobs",
            37,
        ),
        (
            "a version recording a unit under an open dispute",
            co.node,
            record_five,
            "jobs",
            34,
        ),
        ("no entry", co.node, no_entry, "jobs", 9),
        ("a short signature", co.node, d(&short), "jobs", 9),
    ];
    w.c.begin(1).unwrap();
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
    // A unit recorded in this block with another claim may still be sampled: refused.
    w.c.begin(1).unwrap();
    let m = version(job, &co, 1, &[honest_seven], [0u8; 32], false);
    w.c.deliver(&co.node, &[m]).unwrap();
    refuse_all(
        &mut w.c,
        vec![(
            "another claim of a unit recorded in this block",
            co.node,
            d(&seven),
            "jobs",
            37,
        )],
    );
    w.c.end().unwrap();
    // Unit 1's check agrees: the same claim cannot be disputed after that.
    recheck(&mut w, job, 1, honest_oof(1));
    w.c.begin(1).unwrap();
    refuse_all(
        &mut w.c,
        vec![("a claim re-checked agreed", co.node, d(&e), "jobs", 37)],
    );
    w.c.end().unwrap();
    // Past the deadline the job is no longer open.
    let s = view(&w.c, job);
    assert_eq!(s["research"]["versions"], 2);
    blocks(&mut w, 70);
    w.c.begin(1).unwrap();
    refuse_all(
        &mut w.c,
        vec![("past the deadline", co.node, d(&eight), "jobs", 3)],
    );
    w.c.end().unwrap();
}

/// The drawn held-out evaluators.
fn evaluators(w: &World, job: u64) -> Vec<Node> {
    view(&w.c, job)["heldout"]["evaluators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| {
            w.nodes
                .iter()
                .find(|n| n.node_id == id.as_str().unwrap())
                .unwrap()
                .clone()
        })
        .collect()
}

fn heldout_nonce(n: &Node) -> [u8; 32] {
    magnet_core::sha256(&[b"heldout".as_slice(), n.node.as_bytes()].concat())
}

fn heldout_seal(c: &Chain, n: &Node, job: u64, score: (u64, u64, bool)) -> prost_types::Any {
    let h = msgs::heldout_commitment(
        &c.block.chain_id,
        &n.node,
        job,
        score.0,
        score.1,
        score.2,
        &heldout_nonce(n),
    );
    msgs::heldout_commit(&n.node, job, h)
}

fn heldout_open(n: &Node, job: u64, score: (u64, u64, bool)) -> prost_types::Any {
    msgs::heldout_reveal(&n.node, job, score.0, score.1, score.2, heldout_nonce(n))
}

/// Every drawn evaluator commits then reveals its (final, baseline, unavailable), in one block.
fn score_all(w: &mut World, job: u64, scores: &[(u64, u64, bool)]) {
    let ev = evaluators(w, job);
    assert_eq!(ev.len(), scores.len());
    w.c.begin(1).unwrap();
    for (n, sc) in ev.iter().zip(scores) {
        let m = heldout_seal(&w.c, n, job, *sc);
        w.c.deliver(&n.node, &[m]).unwrap();
    }
    for (n, sc) in ev.iter().zip(scores) {
        w.c.deliver(&n.node, &[heldout_open(n, job, *sc)]).unwrap();
    }
    w.c.end().unwrap();
}

/// A job with a final version of two honest trials and a valid test reveal.
fn revealed_job(w: &mut World) -> u64 {
    let job = create(w, &spec(50_000));
    let entries = vec![
        trial(w, job, 1, 1, honest_oof(1)),
        trial(w, job, 2, 2, honest_oof(2)),
    ];
    record(w, job, 0, &entries, true);
    recheck_sampled(w, job, &[1, 2]);
    reveal_test(w, job);
    job
}

#[test]
fn held_out_evaluators_pay_the_coordinator_by_the_lower_median_improvement_and_the_creator_the_rest(
) {
    let mut w = world();
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let creator_before = w.c.balance(&w.creator);
    let job = revealed_job(&mut w);
    let h = view(&w.c, job)["heldout"].clone();
    // 3 evaluators drawn at the reveal, never the coordinator; 10 % of the quality pool is
    // theirs; the periods are the check periods.
    let ev = evaluators(&w, job);
    assert_eq!(ev.len(), 3, "{h}");
    assert!(ev.iter().all(|n| n.node_id != w.nodes[0].node_id));
    assert_eq!(num(&h["evaluator_pool"]), 2_000_000);
    assert_eq!(h["target_improvement_ppm"], 100_000);
    assert_eq!(
        h["reveals_until"].as_u64().unwrap(),
        h["commits_until"].as_u64().unwrap() + 5
    );
    assert_eq!(w.c.events_of("magnet.jobs.heldout_drawn").len(), 1);
    // Lower medians: final 570 000 (of 100 000, 570 000, 575 000), baseline 600 000: 5 %
    // better, half the 10 % target → half of the scored 18 000 000.
    score_all(
        &mut w,
        job,
        &[
            (575_000, 600_000, false),
            (100_000, 900_000, false),
            (570_000, 600_000, false),
        ],
    );
    let r = view(&w.c, job)["heldout"]["result"].clone();
    assert_eq!(r["outcome"], "measured", "{r}");
    assert_eq!(r["final_test_loss_micro"], 570_000);
    assert_eq!(r["baseline_test_loss_micro"], 600_000);
    assert_eq!(r["improvement_ppm"], 50_000);
    assert_eq!(num(&r["coordinator"]), 9_000_000);
    assert_eq!(num(&r["evaluators"]), 3 * 666_666);
    assert_eq!(num(&r["community"]), 2);
    assert_eq!(num(&r["creator"]), 9_000_000);
    let s = settle(&mut w, job);
    assert_eq!(s["quality"], "measured", "{s}");
    assert_eq!(num(&s["coordinator"]), 9_000_000);
    assert_eq!(w.c.balance(&w.nodes[0].op) - before[0], 9_000_000);
    let v = view(&w.c, job);
    for n in &ev {
        assert_eq!(evaluator_pay(&v, n), 666_666);
    }
    assert_eq!(
        w.c.balance(&w.creator) + BUDGET - creator_before,
        num(&s["creator"])
    );
    assert_conserved(&w, job, &before);
    assert!(offences(&w.c).is_empty(), "{:?}", offences(&w.c));
}

#[test]
fn no_held_out_improvement_pays_the_coordinator_nothing_of_the_quality_pool() {
    let mut w = world();
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let job = revealed_job(&mut w);
    // One evaluator says unavailable (a minority), the others see the final no better.
    score_all(
        &mut w,
        job,
        &[
            (600_000, 600_000, false),
            (0, 0, true),
            (650_000, 600_000, false),
        ],
    );
    let r = view(&w.c, job)["heldout"]["result"].clone();
    assert_eq!(r["outcome"], "measured", "{r}");
    assert_eq!(r["improvement_ppm"], 0);
    assert_eq!(num(&r["coordinator"]), 0);
    assert_eq!(num(&r["creator"]), 18_000_000);
    let s = settle(&mut w, job);
    assert_eq!(num(&s["coordinator"]), 0, "{s}");
    assert_eq!(w.c.balance(&w.nodes[0].op), before[0]);
    assert_conserved(&w, job, &before);
}

#[test]
fn a_majority_of_evaluators_finding_the_test_split_unavailable_is_the_creators_forfeit() {
    let mut w = world();
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let job = revealed_job(&mut w);
    score_all(
        &mut w,
        job,
        &[(0, 0, true), (0, 0, true), (500_000, 600_000, false)],
    );
    let r = view(&w.c, job)["heldout"]["result"].clone();
    assert_eq!(r["outcome"], "unavailable", "{r}");
    assert_eq!(num(&r["coordinator"]), 18_000_000);
    let s = settle(&mut w, job);
    assert_eq!(s["quality"], "forfeit", "{s}");
    assert_conserved(&w, job, &before);
}

#[test]
fn silent_evaluators_are_unpaid_and_slashed_and_the_quality_pool_returns_unmeasured() {
    let mut w = world();
    let before: Vec<u128> = w.nodes.iter().map(|n| w.c.balance(&n.op)).collect();
    let job = revealed_job(&mut w);
    let ev = evaluators(&w, job);
    let s = settle(&mut w, job);
    assert_eq!(s["quality"], "unmeasured", "{s}");
    assert_eq!(num(&s["coordinator"]), 0);
    let r = view(&w.c, job)["heldout"]["result"].clone();
    assert_eq!(num(&r["evaluators"]), 0, "{r}");
    assert_eq!(num(&r["creator"]), 20_000_000 - 2);
    let mut want: Vec<(String, String)> = ev
        .iter()
        .map(|n| (n.op.to_string(), "no_reveal".to_string()))
        .collect();
    want.sort();
    let mut got = offences(&w.c);
    got.sort();
    assert_eq!(got, want);
    assert_conserved(&w, job, &before);
}

#[test]
fn every_out_of_place_held_out_commit_or_reveal_is_refused_and_changes_nothing() {
    let mut w = world();
    let job = create(&mut w, &spec(50_000));
    let e = trial(&w, job, 1, 1, honest_oof(1));
    record(&mut w, job, 0, &[e], true);
    recheck_sampled(&mut w, job, &[1]);
    let any = w.nodes[1].clone();
    let sc = (500_000, 600_000, false);
    w.c.begin(1).unwrap();
    let cases: Vec<Case> = vec![
        (
            "commit before the test reveal",
            any.node,
            heldout_seal(&w.c, &any, job, sc),
            "jobs",
            38,
        ),
        (
            "unknown job",
            any.node,
            heldout_seal(&w.c, &any, 99, sc),
            "jobs",
            2,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
    reveal_test(&mut w, job);
    let ev = evaluators(&w, job);
    let outsider = w
        .nodes
        .iter()
        .find(|n| !ev.iter().any(|e| e.node_id == n.node_id))
        .unwrap()
        .clone();
    let (a, b) = (ev[0].clone(), ev[1].clone());
    w.c.begin(1).unwrap();
    w.c.deliver(&a.node, &[heldout_seal(&w.c, &a, job, sc)])
        .unwrap();
    let cases: Vec<Case> = vec![
        (
            "not a drawn evaluator",
            outsider.node,
            heldout_seal(&w.c, &outsider, job, sc),
            "jobs",
            38,
        ),
        (
            "the coordinator",
            w.nodes[0].node,
            heldout_seal(&w.c, &w.nodes[0], job, sc),
            "jobs",
            38,
        ),
        (
            "committed twice",
            a.node,
            heldout_seal(&w.c, &a, job, sc),
            "jobs",
            38,
        ),
        (
            "reveal before the reveal period",
            a.node,
            heldout_open(&a, job, sc),
            "jobs",
            38,
        ),
        (
            "reveal without a commitment",
            b.node,
            heldout_open(&b, job, sc),
            "jobs",
            38,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.end().unwrap();
    // Past the commit period: no commit; a reveal that does not open the commitment is refused.
    blocks(&mut w, 5);
    w.c.begin(1).unwrap();
    let cases: Vec<Case> = vec![
        (
            "commit after the commit period",
            b.node,
            heldout_seal(&w.c, &b, job, sc),
            "jobs",
            38,
        ),
        (
            "wrong commitment at reveal",
            a.node,
            heldout_open(&a, job, (500_001, 600_000, false)),
            "jobs",
            38,
        ),
        (
            "unavailable flag flipped at reveal",
            a.node,
            heldout_open(&a, job, (500_000, 600_000, true)),
            "jobs",
            38,
        ),
    ];
    refuse_all(&mut w.c, cases);
    w.c.deliver(&a.node, &[heldout_open(&a, job, sc)]).unwrap();
    refuse_all(
        &mut w.c,
        vec![(
            "revealed twice",
            a.node,
            heldout_open(&a, job, sc),
            "jobs",
            38,
        )],
    );
    w.c.end().unwrap();
    // Past the reveal period: resolved, nothing more accepted.
    blocks(&mut w, 6);
    w.c.begin(1).unwrap();
    refuse_all(
        &mut w.c,
        vec![(
            "reveal after the reveal period",
            b.node,
            heldout_open(&b, job, sc),
            "jobs",
            38,
        )],
    );
    w.c.end().unwrap();
    let r = view(&w.c, job)["heldout"]["result"].clone();
    assert_eq!(r["outcome"], "measured", "{r}");
    assert_eq!(r["paid"].as_array().unwrap().len(), 1);
}
