//! The storage tier in the epoch (issue 18, ADR 0107), in real `magnetd` and `magnet-worker`
//! processes: three training workers and seven storage nodes. Every Δ and merged checkpoint is
//! written as an RS(4,2) stripe on six of them and registered on chain with the holders'
//! receipts; each epoch the chain draws one leaf per shard and the holders answer with Merkle
//! proofs. Worker 1 keeps no copy of its own Δs (`stripe-only`), so the leaders must read them
//! from their stripes; storage node 9 rots a challenged shard every epoch (`bitrot`); and the
//! first storage node is killed a third into the settled epoch. Nothing may be lost: every
//! stripe keeps at least K intact shards, the lost shards are rebuilt onto live nodes, the
//! rotting node is slashed, the honest storage nodes are paid for audited custody and never
//! slashed. About eight minutes of wall time on 2 cores.
//!
//! One kill, not two: a rotting shard counts as a loss until the chain judges it at the epoch
//! end, and RS(4,2) survives two losses per stripe, not three (a first version of this test
//! killed two beside the rotting node and, correctly, lost the one stripe that held all
//! three). Two dead storage nodes out of six is issue 18's run of record (`docs/storage.md`)
//! and every pair of dead holders is tested in `node/daemon/tests/stripes_over_tls.rs`.
//!
//! Needs `magnetd` next to `magnet-worker` (`cargo test --workspace` builds both). Locally it
//! skips with a message when `magnetd` is missing; in CI (`CI=true`) that is a failure.

mod common;

use std::process::Command;

use common::{magnetd, repo, u};
use serde_json::Value;

#[test]
fn stripes_survive_a_dead_and_a_rotting_storage_node_and_audited_custody_is_paid() {
    let Some(magnetd) = magnetd("the storage-tier devnet test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap().keep();
    let out = dir.join("devnet");
    let status = Command::new(&magnetd)
        .arg("devnet")
        .arg("--out")
        .arg(&out)
        .args(["--workers", "3", "--epochs", "1", "--epoch-secs", "150"])
        .args(["--storage-nodes", "7", "--kill-storage", "1"])
        .args(["--fault", "1:stripe-only", "--fault", "9:bitrot"])
        .args([
            "--inner-steps",
            "4",
            "--batch-size",
            "4",
            "--blocks-per-round",
            "24",
        ])
        .args(["--corpus-lines", "6000", "--exit-when-done"])
        .args(["--rpc-port", "27357", "--p2p-port", "27800"])
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
    if let Some(i) = md.find("## Storage") {
        eprintln!("{}", &md[i..]);
    }
    assert!(
        md.contains("## Storage"),
        "the report has the storage table"
    );

    // Nothing lost: every stripe on chain keeps at least K live holders, and repair moved
    // every shard off the killed nodes.
    let st = &r["stripes"];
    assert!(
        st["deltas"].as_u64().unwrap() > 0,
        "Δs were striped: {st:#}"
    );
    assert!(
        st["checkpoints"].as_u64().unwrap() > 0,
        "checkpoints were striped: {st:#}"
    );
    assert_eq!(st["unrecoverable"], 0, "{st:#}");
    assert_eq!(
        st["lost"], 0,
        "no repairer found too few intact shards: {st:#}"
    );
    assert_eq!(
        st["degraded"], 0,
        "every shard of a killed node was rebuilt elsewhere: {st:#}"
    );
    // The stripe-only worker's Δs were read from their stripes by the leaders, and paid.
    assert!(
        st["stripe_reads"].as_u64().unwrap() > 0,
        "no leader read a Δ from a stripe: {st:#}"
    );

    let rows = r["storage"].as_array().unwrap();
    assert_eq!(rows.len(), 7, "{rows:#?}");
    let repaired: u64 = rows
        .iter()
        .map(|s| s["shards_repaired"].as_u64().unwrap())
        .sum();
    assert!(repaired > 0, "someone repaired: {rows:#?}");
    for s in rows {
        let name = s["moniker"].as_str().unwrap();
        if name == "w9" {
            // The rotting node fails its audits and is slashed for them.
            assert!(s["audits_failed"].as_u64().unwrap() > 0, "{s:#}");
            assert!(u(&s["slashed"]) > 0, "{s:#}");
        } else if s["killed"] == false {
            // Honest running storage nodes prove every challenge, are never slashed, and are
            // paid for audited custody.
            assert_eq!(s["audits_failed"], 0, "{s:#}");
            assert_eq!(u(&s["slashed"]), 0, "{s:#}");
            assert!(s["audits_passed"].as_u64().unwrap() > 0, "{s:#}");
            assert!(u(&s["custody"]) > 0, "{s:#}");
            assert!(u(&s["reward"]) > 0, "{s:#}");
        }
    }

    // Honest workers (the stripe-only one included) are never slashed and are paid.
    let nodes = r["nodes"].as_array().unwrap();
    for n in nodes.iter().filter(|n| n["role"] == "honest") {
        assert!(
            n["slashes"].as_array().unwrap().is_empty(),
            "honest node slashed: {n:#}"
        );
    }
    // The stripe-only worker's Δs entered merges: the leaders read them from their stripes.
    // (Not necessarily in the settled epoch's commit window: a Δ is merged only if its stripe
    // is registered before the round's merge, and in the first rounds the worker's node-key
    // tx queue is busy — so its pay is not asserted.)
    let merged_w1 = r["rounds"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["accepted"].to_string().contains("\"w1\""))
        .count();
    assert!(
        merged_w1 > 0,
        "no merge accepted the stripe-only worker's Δs"
    );
    // Every settlement pays out exactly its pool.
    for e in r["epochs"].as_array().unwrap() {
        assert_eq!(u(&e["paid"]) + u(&e["dust"]), u(&e["pool"]), "{e:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
