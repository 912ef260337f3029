//! `magnetd export` round trip: the exported genesis starts a new chain with the same
//! balances and module state.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

fn json_ok(home: &Path, args: &[&str]) -> Value {
    let out = run_ok(home, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("magnetd {args:?} printed non-JSON ({e}):\n{out}"))
}

fn q(home: &Path, args: &[&str]) -> Value {
    let mut a = vec!["query"];
    a.extend_from_slice(args);
    a.extend_from_slice(&["--output", "json"]);
    json_ok(home, &a)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

/// Balances and module params: what the chain carries across an export today.
fn snapshot(home: &Path, addrs: &[&str]) -> Value {
    let mut balances = serde_json::Map::new();
    for a in addrs {
        balances.insert(
            a.to_string(),
            q(home, &["bank", "balances", a])["balances"].clone(),
        );
    }
    let mut params = serde_json::Map::new();
    for m in [
        "registry", "emission", "contrib", "rewards", "slashing", "notary", "data", "jobs", "gov",
    ] {
        params.insert(m.to_string(), q(home, &[m, "params"]));
    }
    json!({ "balances": balances, "params": params })
}

/// Module records (registered nodes, governance bonds, data records).
fn records(home: &Path, owner: &str) -> Value {
    json!({
        "nodes": q(home, &["registry", "nodes"]),
        "gov_bond": q(home, &["registry", "gov-bond", owner]),
        "data_records": q(home, &["data", "records"]),
    })
}

/// Build some state, export it, start a new chain from the export; returns the state before
/// and after, as (balances and params, records).
fn export_and_restart() -> ((Value, Value), (Value, Value)) {
    let net = devnet("magnet-export-1");
    let home = net.home();
    let mut node = start_embedded(&net, "200ms");

    // Some state in bank, registry (node + governance bond) and data.
    let out = run_ok(&home, &["keys", "add", "node1", "--output", "json"]);
    let node1: Value = serde_json::from_str(&out).unwrap();
    let node1 = node1["address"].as_str().unwrap().to_string();
    run_ok(
        &home,
        &[
            "tx",
            "bank",
            "send",
            "alice",
            &node1,
            "2000000umag",
            "--yes",
        ],
    );
    let tx = |args: &[&str], from: &str| {
        let mut a = vec!["tx"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["--from", from, "--yes", "--output", "json"]);
        let v = json_ok(&home, &a);
        assert_eq!(v["code"], 0, "{v}");
    };
    tx(
        &[
            "registry",
            "register-node",
            "--node-key",
            "node1",
            "--tier",
            "storage_node",
            "--bond",
            "300000000",
            // A storage node registers with its SSD provisioning result (ADR 0107).
            "--ssd-read-kbps",
            "250000",
            "--ssd-write-kbps",
            "120000",
        ],
        "alice",
    );
    tx(&["registry", "heartbeat"], "node1");
    tx(&["registry", "bond-gov", "7000000"], "alice");
    tx(
        &[
            "data",
            "register",
            "--hash",
            &"ab".repeat(32),
            "--size",
            "4096",
            "--domain",
            "text",
        ],
        "alice",
    );
    // Stop between blocks, then snapshot the committed state through a fresh start of the
    // same home (nothing changes without txs except the clock-driven modules, which the
    // snapshot leaves out).
    let before = (
        snapshot(&home, &[&net.alice, &node1]),
        records(&home, &net.alice),
    );
    assert_eq!(before.1["nodes"].as_array().unwrap().len(), 1);
    node.kill9();

    let exported = home.join("exported.json");
    run_ok(
        &home,
        &[
            "export",
            "--output-file",
            exported.to_str().unwrap(),
            "--chain-id",
            "magnet-export-2",
        ],
    );
    let g: Value = serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(g["chain_id"], "magnet-export-2");
    let initial: u64 = g["initial_height"].as_str().unwrap().parse().unwrap();
    assert!(initial > 1, "{}", g["initial_height"]);

    // A new home for the new chain: same validator key and keyring, the exported genesis,
    // an empty data directory.
    let dir2 = tempfile::tempdir().unwrap();
    let home2 = dir2.path();
    copy_dir(&home.join("config"), &home2.join("config"));
    copy_dir(&home.join("keyring-test"), &home2.join("keyring-test"));
    std::fs::create_dir_all(home2.join("data")).unwrap();
    std::fs::write(
        home2.join("data/priv_validator_state.json"),
        r#"{"height":"0","round":0,"step":0}"#,
    )
    .unwrap();
    std::fs::copy(&exported, home2.join("config/genesis.json")).unwrap();
    let port2 = free_port();
    run_ok(
        home2,
        &[
            "config",
            "set",
            "rpc.laddr",
            &format!("tcp://127.0.0.1:{port2}"),
        ],
    );
    let metrics = format!("127.0.0.1:{}", free_port());
    let node2 = spawn_magnetd(
        home2,
        &["--block-time", "200ms", "--metrics-addr", &metrics],
        &[],
        "node.log",
    );
    wait_height(port2, initial, Duration::from_secs(60), &node2);
    let st = json_ok(home2, &["status", "--output", "json"]);
    assert_eq!(st["node_info"]["network"], "magnet-export-2", "{st}");

    let after = (
        snapshot(home2, &[&net.alice, &node1]),
        records(home2, &net.alice),
    );
    // And it keeps working: a transfer on the new chain.
    run_ok(
        home2,
        &["tx", "bank", "send", "alice", &node1, "1umag", "--yes"],
    );
    (before, after)
}

#[test]
fn an_exported_genesis_starts_a_chain_with_the_same_balances_and_params() {
    let (before, after) = export_and_restart();
    assert_eq!(before.0, after.0, "balances and params carry over");
}

#[test]
fn an_exported_genesis_keeps_registered_nodes_bonds_and_data_records() {
    let (before, after) = export_and_restart();
    assert_eq!(before.1, after.1, "module records carry over");
}
