//! The adversarial devnet, part two (issue 16): the attacks on quality and stake. Three honest
//! workers beside an `evalfit` worker (trains on the public validation split), a `sybil` (one
//! bond and one machine split over four identities, next to an honest `unsplit` node holding
//! the same bond in one identity) and a `collude` evaluator (scores its partner — the evalfit
//! worker — at the top), in real `magnetd` and `magnet-worker` processes. The split must net
//! no more than the unsplit node, the collusion no more than honest play, and no honest node
//! may be slashed; evalfit is measured and printed, not yet held to a target (it has
//! out-scored the honest workers here; docs/threat-model.md). About nine minutes of wall time on 2 cores.
//!
//! Needs `magnetd` next to `magnet-worker` (`cargo test --workspace` builds both). Locally it
//! skips with a message when `magnetd` is missing; in CI (`CI=true`) that is a failure.

mod common;

use std::process::Command;

use common::{magnetd, repo, u};
use serde_json::Value;

#[test]
fn a_split_bond_and_a_colluding_evaluator_earn_no_more_than_honest_play() {
    let Some(magnetd) = magnetd("the evaluation-adversaries devnet test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap().keep();
    let out = dir.join("devnet");
    let status = Command::new(&magnetd)
        .arg("devnet")
        .arg("--out")
        .arg(&out)
        .args(["--workers", "3", "--epochs", "1", "--epoch-secs", "185"])
        .args(["--adversary", "evalfit,sybil,collude"])
        .args([
            "--inner-steps",
            "4",
            "--batch-size",
            "4",
            "--blocks-per-round",
            "24",
        ])
        .args(["--corpus-lines", "6000", "--exit-when-done"])
        .args(["--rpc-port", "27257", "--p2p-port", "27700"])
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
    assert!(md.contains("## Adversaries"), "the report has the table");

    let nodes = r["nodes"].as_array().unwrap();
    let advs = r["adversaries"].as_array().unwrap();
    assert_eq!(advs.len(), 3, "one row per kind: {advs:#?}");
    // The split and the collusion must not pay. evalfit is not held to a target yet (below).
    for a in advs.iter().filter(|a| a["kind"] != "evalfit") {
        let gain = a["net_gain"].as_i64().unwrap();
        assert!(
            gain <= 0,
            "{} gained {gain} umag over honest play: {a:#}",
            a["kind"]
        );
    }
    let adv = |k: &str| advs.iter().find(|a| a["kind"] == k).unwrap().clone();

    // The sybil row sums four identities against the unsplit node of the same total bond.
    let s = adv("sybil");
    assert_eq!(
        s["moniker"].as_str().unwrap().split('+').count(),
        4,
        "{s:#}"
    );
    let unsplit = nodes.iter().find(|n| n["role"] == "unsplit").unwrap();
    let split_bond: u128 = nodes
        .iter()
        .filter(|n| n["role"] == "sybil")
        .map(|n| u(&n["bond"]))
        .sum();
    assert_eq!(split_bond, u(&unsplit["bond"]), "same bond, split or not");
    assert!(
        s["reference_basis"].as_str().unwrap().contains("unsplit"),
        "{s:#}"
    );

    // The evalfit worker's quality is reported, not asserted: in the devnet its Δs (trained on
    // the small public validation split, which the evaluation windows also sample) have scored
    // far above the honest workers' (CI, 138338f: 152,950 against 24,773–39,231), so the rule
    // of ADR 0090 does not stop it yet — an open row of docs/threat-model.md.
    let evalfit = nodes.iter().find(|n| n["role"] == "evalfit").unwrap();
    eprintln!("evalfit contributions: {}", evalfit["contributions"]);

    // A colluder drawn onto its partner's panel beside an honest majority is slashed for its
    // deviation; never drawn, it had no chance to act (and its net gain is still ≤ 0).
    let c = adv("collude");
    let colluder = nodes.iter().find(|n| n["role"] == "collude").unwrap();
    if c["partner_slots"].as_u64().unwrap() > 0 {
        eprintln!("the colluder sat on its partner's panel: {c:#}");
    }
    let deviation = colluder["slashes"]
        .to_string()
        .contains("evaluator_deviation");
    if deviation {
        assert!(u(&c["slashed"]) > 0, "{c:#}");
    }

    // Honest nodes (and the unsplit node) are never slashed, and rewards for work were paid.
    for n in nodes
        .iter()
        .filter(|n| n["role"] == "honest" || n["role"] == "unsplit")
    {
        assert!(
            n["slashes"].as_array().unwrap().is_empty(),
            "honest node slashed: {n:#}"
        );
    }
    let honest_paid: u128 = nodes
        .iter()
        .filter(|n| n["role"] == "honest")
        .map(|n| u(&n["reward"]))
        .sum();
    assert!(honest_paid > 0, "rewards for work were paid");
    let _ = std::fs::remove_dir_all(&dir);
}
