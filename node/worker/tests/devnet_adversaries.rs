//! The adversarial devnet (issue 16): three honest workers and five misbehaving ones —
//! `copycat` (claims other nodes' accepted Δs), `inflate` (signs 100× its steps and tokens),
//! `hijack` (records rounds it did not lead), `lazy` (zero Δs), `fraud` (as leader, records a
//! merge that is not the merge of its Δs; the drawn auditors challenge it) — in real `magnetd` and
//! `magnet-worker` processes. Every attack must lose money against honest play, and the honest
//! workers must keep the rewards for work. About nine minutes of wall time on 2 cores.
//!
//! Needs `magnetd` next to `magnet-worker` (`cargo test --workspace` builds both). Locally it
//! skips with a message when `magnetd` is missing; in CI (`CI=true`) that is a failure.

mod common;

use std::process::Command;

use common::{magnetd, repo, u};
use serde_json::Value;

#[test]
fn every_adversary_of_the_devnet_loses_money_against_honest_play() {
    let Some(magnetd) = magnetd("the adversarial devnet test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap().keep();
    let out = dir.join("devnet");
    let status = Command::new(&magnetd)
        .arg("devnet")
        .arg("--out")
        .arg(&out)
        .args(["--workers", "3", "--epochs", "1", "--epoch-secs", "165"])
        .args(["--adversary", "copycat,inflate,hijack,lazy,fraud"])
        .args([
            "--inner-steps",
            "4",
            "--batch-size",
            "4",
            "--blocks-per-round",
            "24",
        ])
        .args(["--corpus-lines", "6000", "--exit-when-done"])
        .args(["--rpc-port", "27057", "--p2p-port", "27500"])
        .arg("--worker-bin")
        .arg(env!("CARGO_BIN_EXE_magnet-worker"))
        .arg("--corpus")
        .arg(repo().join("data/text/kjv.txt"))
        .status()
        .unwrap();
    assert!(
        status.success(),
        "magnetd devnet failed; logs under {}",
        out.display()
    );
    let r: Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    // The table, shown with `--nocapture` or when an assertion fails (the run directory is
    // removed on success).
    if let Some(i) = md.find("## Adversaries") {
        eprintln!("{}", &md[i..]);
    }
    assert!(
        md.contains("## Adversaries"),
        "the report has the adversary table"
    );

    let nodes = r["nodes"].as_array().unwrap();
    let node = |m: &str| nodes.iter().find(|n| n["moniker"] == m).unwrap().clone();
    let advs = r["adversaries"].as_array().unwrap();
    assert_eq!(advs.len(), 5, "{advs:#?}");
    for a in advs {
        let gain = a["net_gain"].as_i64().unwrap();
        assert!(
            gain <= 0,
            "{} gained {gain} umag over honest play: {a:#}",
            a["kind"]
        );
    }
    let adv = |k: &str| advs.iter().find(|a| a["kind"] == k).unwrap().clone();

    // Rounds were merged, and no adversary's Δ was ever accepted: the inflater's claims are
    // over the bound, the lazy worker's Δ is zero; the copycat and hijacker train honestly, so
    // theirs may be.
    let rounds = r["rounds"].as_array().unwrap();
    assert!(rounds.len() >= 2, "at least two merged rounds: {rounds:#?}");
    for x in rounds {
        for a in x["accepted"].as_array().unwrap() {
            let who = a[0].as_str().unwrap();
            let kind = node(who)["fault"].as_str().unwrap().to_string();
            assert!(
                kind != "inflate" && kind != "lazy",
                "round {}: {kind} worker {who} accepted",
                x["round"]
            );
        }
    }
    // The hijacker tried to record rounds it did not lead; the chain refused every one.
    let h = adv("hijack");
    assert!(h["records_tried"].as_u64().unwrap() >= 1, "{h:#}");
    assert_eq!(h["records_refused"], h["records_tried"], "{h:#}");
    // Inflater and lazy worker earned nothing for work; the copycat's reveal was refused, so
    // it was slashed for not revealing (if it had anything to commit) and earned nothing.
    for k in ["inflate", "lazy", "copycat"] {
        let n = node(adv(k)["moniker"].as_str().unwrap());
        assert_eq!(u(&n["reward"]), 0, "{k} earned for work: {n:#}");
    }
    // The fraudulent leader: every round it led was challenged by its auditors, upheld, and
    // rolled back — it is slashed its whole bond for `fraudulent_merge` and no round it led
    // stays in the lineage. (The hash-seeded election may never make it leader in a short run;
    // then it is an honest trainer and must not be slashed for fraud.)
    let f = node(adv("fraud")["moniker"].as_str().unwrap());
    let audits = r["audits"].as_array().unwrap();
    let caught: Vec<&Value> = audits
        .iter()
        .filter(|a| a["leader"] == f["moniker"])
        .collect();
    for a in &caught {
        assert_eq!(
            a["outcome"], "upheld",
            "a fraudulent merge was not upheld: {a:#}"
        );
    }
    if !caught.is_empty() {
        let fraud_slash: u128 = f["slashes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s[0].as_str().unwrap_or("").contains("fraudulent_merge"))
            .map(|s| u(&s[1]))
            .sum();
        assert_eq!(fraud_slash, u(&f["bond"]), "slashed its whole bond: {f:#}");
    }
    // No honest leader's merge was ever upheld as fraud (a hijacker that happens to be
    // elected and records its own one-Δ "merge" may be).
    for a in audits.iter().filter(|a| a["outcome"] == "upheld") {
        let leader = node(a["leader"].as_str().unwrap());
        assert_ne!(
            leader["role"], "honest",
            "an honest merge was upheld as fraud: {a:#}"
        );
    }
    for x in rounds {
        assert_ne!(
            x["leader"], f["moniker"],
            "a fraudulent merge stayed in the lineage: {x:#}"
        );
    }
    let c = node(adv("copycat")["moniker"].as_str().unwrap());
    let committed = c["contributions"].as_array().is_some_and(|v| !v.is_empty());
    if committed {
        assert!(
            c["slashes"].to_string().contains("no_reveal"),
            "the copycat's unrevealable commitment is slashed: {c:#}"
        );
    }
    // The honest workers lose at most 5 % of their rewards for work to the attacks: what the
    // adversaries netted beyond honest play, per the report's rows.
    let honest_paid: u128 = nodes
        .iter()
        .filter(|n| n["fault"] == "none")
        .map(|n| u(&n["reward"]))
        .sum();
    let beyond: u128 = advs
        .iter()
        .map(|a| a["net_gain"].as_i64().unwrap().max(0) as u128)
        .sum();
    assert!(honest_paid > 0, "rewards for work were paid");
    assert!(
        beyond * 20 <= honest_paid,
        "adversaries took {beyond} umag beyond honest play of {honest_paid}"
    );
    for n in nodes.iter().filter(|n| n["fault"] == "none") {
        assert!(
            n["slashes"].as_array().unwrap().is_empty(),
            "honest node slashed: {n:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
