//! A research job on the network (issue 20, ADR 0111/0112/0115), in real `magnetd` and
//! `magnet-worker` processes: `magnetd devnet --research` registers a CSV's data part with
//! the data module, creates a research job committing to its sealed test split, and the
//! chain draws the orchestrator (worker 0) as its coordinator. The coordinator runs the
//! search over the two other workers as trial workers, re-running a share of their answers on
//! the other one; worker 2 fabricates every answer (`fabricate`). It must be caught off chain,
//! disputed on chain, confirmed by the drawn checker and slashed `fabricated_trial`; the
//! honest worker must be paid for its verified trials; the creator reveals the test split
//! after the final version and the drawn evaluators score the final model on it; the escrow
//! is conserved to the umag. About six minutes of wall time on 2 cores (one 150 s epoch of
//! training beside the research job).
//!
//! Needs `magnetd` next to `magnet-worker` (`cargo test --workspace` builds both). Locally it
//! skips with a message when `magnetd` is missing; in CI (`CI=true`) that is a failure.

mod common;

use std::process::Command;

use common::{magnetd, repo, u};
use serde_json::Value;

#[test]
fn a_devnet_research_job_pays_verified_trials_and_slashes_a_fabricating_worker() {
    let Some(magnetd) = magnetd("the research devnet test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap().keep();
    let out = dir.join("devnet");
    let status = Command::new(&magnetd)
        .arg("devnet")
        .arg("--out")
        .arg(&out)
        .args(["--workers", "3", "--epochs", "1", "--epoch-secs", "150"])
        .args([
            "--inner-steps",
            "4",
            "--batch-size",
            "4",
            "--blocks-per-round",
            "24",
        ])
        .args(["--corpus-lines", "4000", "--exit-when-done"])
        .args(["--rpc-port", "27157", "--p2p-port", "27900"])
        .arg("--research")
        .arg(format!(
            "tabular:{}:target",
            repo().join("data/tabular/breast_cancer.csv").display()
        ))
        .args(["--fault", "2:fabricate"])
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
    assert!(md.contains("## Research"), "{md}");
    let rs = &r["research"];
    assert_eq!(rs["coordinator"], "w0", "{rs}");
    assert!(rs["versions"].as_u64().unwrap() >= 1, "{rs}");
    let live = rs["trials"][1].as_u64().unwrap();
    assert!(live >= 3, "{rs}");
    let node = |m: &str| -> Value {
        rs["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["moniker"] == m)
            .cloned()
            .unwrap()
    };
    let (honest, liar) = (node("w1"), node("w2"));
    // Caught off chain by the coordinator's re-checks, and nothing of its is paid.
    assert!(liar["caught"].is_string(), "{liar}");
    assert_eq!(
        liar["trials"].as_u64().unwrap() - liar["voided"].as_u64().unwrap(),
        0
    );
    // Disputed on chain, upheld by the drawn checker, slashed.
    assert!(rs["disputes_upheld"].as_u64().unwrap() >= 1, "{rs}");
    assert!(u(&liar["slashed"]) > 0, "{liar}");
    // The honest trial worker is paid for verified trials and never slashed.
    assert!(honest["trials"].as_u64().unwrap() >= 1, "{honest}");
    assert!(u(&honest["paid"]) > 0, "{honest}");
    assert_eq!(u(&honest["slashed"]), 0);
    // Held-out measured by the drawn evaluators (the final trial against the baseline on the
    // sealed split); the escrow conserved exactly, the evaluators' pay included.
    assert_eq!(rs["heldout_outcome"], "measured", "{rs}");
    let h = rs["heldout"].as_array().unwrap();
    assert!(u(&h[0]) > 0 && u(&h[1]) > 0, "{rs}");
    assert!(u(&rs["evaluator_pay"]) > 0, "{rs}");
    let s = rs["settlement"].as_array().unwrap();
    let sum: u128 = s[..5].iter().map(u).sum::<u128>() + u(&rs["evaluator_pay"]);
    assert_eq!(sum, 200_000_000, "{rs}");
    let _ = std::fs::remove_dir_all(&dir);
}
