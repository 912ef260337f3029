//! `magnet-worker research --workers …` across real processes (issue 20, ADR 0112): three
//! `research serve-trials` workers answer the loop's work units over the signed p2p layer;
//! the coordinator re-checks a share of the answers on other workers.
//!
//! What these tests prove: a run farmed out to three workers picks the same final model and
//! reports the same held-out scores as the same run alone (same seed and batch); a worker that
//! signs fabricated predictions is caught by re-checking, banned and voided, its own signed
//! answer is kept as evidence, and the run still decides what the honest run decides.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

fn penguins() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/tabular/penguins.csv")
}

/// The run both tests use, alone or farmed out.
fn research(out: &Path, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magnet-worker"));
    c.env("RUST_LOG", "warn")
        .args(["research", "--domain", "tabular", "--data"])
        .arg(penguins())
        .args([
            "--target",
            "sex",
            "--context",
            "species",
            "--budget",
            "14",
            "--folds",
            "3",
            "--seed",
            "5",
            "--batch",
            "3",
            "--quiet",
            "--out",
        ])
        .arg(out)
        .args(extra);
    c.output().unwrap()
}

/// Trial worker processes, killed when dropped.
struct Workers(Vec<Child>, Vec<String>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn workers(root: &Path, faults: &[&str]) -> Workers {
    let mut w = Workers(Vec::new(), Vec::new());
    for (i, fault) in faults.iter().enumerate() {
        let dir = root.join(format!("worker{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_magnet-worker"))
            .env("RUST_LOG", "warn")
            .args([
                "research",
                "serve-trials",
                "--listen",
                "127.0.0.1:0",
                "--fault",
                fault,
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        w.0.push(child);
        // "node-… listening on 127.0.0.1:PORT"
        let mut parts = line.split_whitespace();
        let id = parts.next().unwrap().to_string();
        let addr = parts.last().unwrap().to_string();
        assert!(id.starts_with("node-"), "unexpected first line {line:?}");
        w.1.push(format!("{id}@{addr}"));
    }
    w
}

/// What a run decided: the chosen model and the summary line's scores.
fn decided(out: &Path, o: &std::process::Output) -> (String, String) {
    assert!(
        o.status.success(),
        "run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    let scores = stdout
        .lines()
        .find(|l| l.contains("held-out"))
        .unwrap_or_else(|| panic!("no summary line in {stdout}"))
        .to_string();
    (
        std::fs::read_to_string(out.join("best_model.json")).unwrap(),
        scores,
    )
}

/// Runs of the same seed compete for the two cores: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn alone() -> &'static (String, String) {
    static ALONE: OnceLock<(String, String)> = OnceLock::new();
    ALONE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("alone");
        let o = research(&out, &[]);
        decided(&out, &o)
    })
}

fn network(out: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join("network.json")).unwrap()).unwrap()
}

#[test]
fn a_run_farmed_out_to_three_workers_decides_what_the_same_run_decides_alone() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reference = alone().clone();
    let dir = tempfile::tempdir().unwrap();
    let w = workers(dir.path(), &["none", "none", "none"]);
    let out = dir.path().join("farmed");
    let o = research(
        &out,
        &[
            "--workers",
            &w.1.join(","),
            "--recheck",
            "0.3",
            "--chain-job",
            "magnet-test/7",
            "--node-dir",
            dir.path().join("coordinator").to_str().unwrap(),
        ],
    );
    assert_eq!(decided(&out, &o), reference);
    let net = network(&out);
    assert!(net["units_dispatched"].as_u64().unwrap() >= 3);
    assert_eq!(net["mismatches"], 0);
    let ws = net["workers"].as_array().unwrap();
    let accepted: u64 = ws.iter().map(|w| w["units"].as_u64().unwrap()).sum();
    assert_eq!(accepted, net["units_dispatched"].as_u64().unwrap());
    // A shared queue: whoever is free takes the next unit, so the split varies, but the work
    // is spread.
    assert!(
        ws.iter()
            .filter(|w| w["units"].as_u64().unwrap() > 0)
            .count()
            >= 2
    );
    assert!(ws.iter().all(|w| w["caught"].is_null()));
    // Every accepted unit carries its worker's chain trial claim, verifying under its key.
    let claims = net["claims"].as_array().unwrap();
    assert_eq!(claims.len() as u64, accepted);
    for c in claims {
        let h = |k: &str| -> [u8; 32] {
            hex::decode(c[k].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let claim = magnet_rounds::TrialClaim {
            chain_id: "magnet-test".into(),
            job: 7,
            unit_hash: h("unit_hash"),
            oof_hash: h("oof_hash"),
            cv_loss_micro: c["cv_loss_micro"].as_u64().unwrap(),
        };
        let key = hex::decode(c["worker_key"].as_str().unwrap()).unwrap();
        let sig = hex::decode(c["signature"].as_str().unwrap()).unwrap();
        claim.verify(&key, &sig).expect("a claim the chain accepts");
        let mut tampered = claim.clone();
        tampered.cv_loss_micro += 1;
        assert!(tampered.verify(&key, &sig).is_err());
    }
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("## Network"));
}

#[test]
fn a_worker_that_signs_fabricated_predictions_is_caught_and_the_run_still_decides_what_the_honest_run_decides(
) {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let reference = alone().clone();
    let dir = tempfile::tempdir().unwrap();
    let w = workers(dir.path(), &["none", "fabricate", "none"]);
    let liar = w.1[1].split('@').next().unwrap().to_string();
    let out = dir.path().join("farmed");
    let o = research(
        &out,
        &[
            "--workers",
            &w.1.join(","),
            // Every answer re-checked, so the catch does not depend on the draw: the
            // draw itself is the coordinator's secret.
            "--recheck",
            "1",
            "--node-dir",
            dir.path().join("coordinator").to_str().unwrap(),
            "--chain-job",
            "magnet-test/7",
        ],
    );
    assert_eq!(decided(&out, &o), reference);
    let net = network(&out);
    assert!(net["mismatches"].as_u64().unwrap() >= 1);
    for wk in net["workers"].as_array().unwrap() {
        let caught = !wk["caught"].is_null();
        assert_eq!(caught, wk["node_id"] == liar.as_str(), "{wk}");
        if caught {
            assert_eq!(wk["units"], 0, "a caught worker keeps no accepted unit");
        }
    }
    // The evidence is the liar's own signature over what it claimed.
    let files = net["evidence"].as_array().unwrap();
    assert!(!files.is_empty());
    let ev: serde_json::Value =
        serde_json::from_slice(&std::fs::read(files[0].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(ev["worker"], liar.as_str());
    assert_ne!(ev["claimed_oof_hash"], ev["recomputed_oof_hash"]);
    let signed = <magnet_proto::p2p::v1::Signed as prost::Message>::decode(
        hex::decode(ev["signed_answer"].as_str().unwrap())
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    let (signer, _) = magnet_p2p::auth::verify_evidence(
        signed.auth.as_ref(),
        magnet_p2p::service::methods::RESEARCH_REPLY,
        &signed.body,
    )
    .expect("the evidence carries a valid signature");
    assert_eq!(signer.as_str(), liar);
    let answer =
        <magnet_proto::p2p::v1::ResearchMessage as prost::Message>::decode(signed.body.as_slice())
            .unwrap();
    let summary: serde_json::Value = serde_json::from_slice(&answer.json).unwrap();
    assert_eq!(summary["oof_hash"], ev["claimed_oof_hash"]);
    // What the coordinator takes to the chain (`MsgDisputeTrial`, ADR 0114): the liar's own
    // signed trial claim over predictions the re-run contradicts; no accepted claim is its.
    let disputes = net["disputes"].as_array().unwrap();
    assert!(!disputes.is_empty());
    for d in disputes {
        assert_eq!(d["worker"], liar.as_str(), "{d}");
        let h = |k: &str| -> [u8; 32] {
            hex::decode(d[k].as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        };
        let claim = magnet_rounds::TrialClaim {
            chain_id: "magnet-test".into(),
            job: 7,
            unit_hash: h("unit_hash"),
            oof_hash: h("oof_hash"),
            cv_loss_micro: d["cv_loss_micro"].as_u64().unwrap(),
        };
        let key = hex::decode(d["worker_key"].as_str().unwrap()).unwrap();
        let sig = hex::decode(d["signature"].as_str().unwrap()).unwrap();
        claim.verify(&key, &sig).expect("the liar's own signature");
    }
    assert!(net["claims"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["worker"] != liar.as_str()));
}
