//! `kill -9` the embedded node inside a block — after the block is saved but before
//! FinalizeBlock, after FinalizeBlock but before its results are saved, and between saving
//! the results and Commit — then restart it. The restarted node must replay the stored block,
//! keep every committed tx, and end at the app hash that a twin app reaches executing the same
//! blocks without ever crashing.

mod common;

use common::*;
use magnet_client::Key;
use magnet_core::Coins;
use std::time::{Duration, Instant};
use tendermint_proto::v0_38::abci as pb;
use tendermint_proto::v0_38::abci::{request, response};

const HALT_HEIGHT: u64 = 4;

fn signed_sends(net: &Devnet, n: u64) -> Vec<(String, String)> {
    let alice = Key::from_mnemonic(&net.alice_mnemonic).unwrap();
    let fee = magnet_client::tx::FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    (0..n)
        .map(|seq| {
            let to = Key::generate().unwrap().address();
            let msg = magnet_client::tx::msg_send(
                &alice.address(),
                &to,
                &Coins::umag(1000 + u128::from(seq)),
            )
            .unwrap();
            let signer = magnet_client::tx::SignerData {
                chain_id: net.chain_id.clone(),
                account_number: 0,
                sequence: seq,
            };
            let bytes = magnet_client::tx::sign_tx(&alice, vec![msg], "", &fee, &signer).unwrap();
            (magnet_client::tx::tx_hash(&bytes), hex::encode(bytes))
        })
        .collect()
}

fn committed(port: u16, hash: &str) -> Option<serde_json::Value> {
    let body = http_get(port, &format!("/tx?hash=0x{hash}"))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.get("result").cloned()
}

fn crash_and_recover(point: &str) {
    let net = devnet(&format!("magnet-crash-{point}"));
    let home = net.home();
    let txs = signed_sends(&net, 8);
    let metrics = format!("127.0.0.1:{}", free_port());
    let halt = format!("{point}:{HALT_HEIGHT}");
    let mut node = spawn_magnetd(
        &home,
        &["--block-time", "300ms", "--metrics-addr", &metrics],
        &[("MAGNETD_DEBUG_HALT", &halt)],
        "node.log",
    );
    wait_height(net.rpc_port, 1, Duration::from_secs(60), &node);
    // Feed txs while blocks 2..4 are produced, so the halted block carries some.
    for (i, (_, tx)) in txs.iter().enumerate() {
        let body = http_get(net.rpc_port, &format!("/broadcast_tx_sync?tx=0x{tx}")).unwrap();
        assert!(body.contains("\"code\":0"), "tx {i}: {body}");
        if i == 3 {
            wait_height(net.rpc_port, 2, Duration::from_secs(30), &node);
        }
    }
    let marker = home.join(format!("data/magnet-node/halted-{HALT_HEIGHT}"));
    let start = Instant::now();
    while !marker.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "node never reached the halt point:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // What was committed before the crash.
    let before: Vec<(String, serde_json::Value)> = txs
        .iter()
        .filter_map(|(h, _)| committed(net.rpc_port, h).map(|r| (h.clone(), r)))
        .collect();
    node.kill9();

    // Restart without the halt: the handshake replays block HALT_HEIGHT.
    let mut node = spawn_magnetd(
        &home,
        &["--block-time", "300ms", "--metrics-addr", &metrics],
        &[],
        "node2.log",
    );
    wait_height(
        net.rpc_port,
        HALT_HEIGHT + 2,
        Duration::from_secs(60),
        &node,
    );
    assert!(
        node.log_text().contains("replaying block"),
        "no replay happened:\n{}",
        node.log_text()
    );
    for (h, r) in &before {
        let after = committed(net.rpc_port, h)
            .unwrap_or_else(|| panic!("committed tx {h} lost after the crash"));
        assert_eq!(&after, r, "tx {h} changed across the crash");
    }
    // Txs that were in the halted block are committed now too; resubmit any that were only in
    // the mempool (a mempool is not durable, in CometBFT either) and require all to land.
    for (h, tx) in &txs {
        if committed(net.rpc_port, h).is_none() {
            let _ = http_get(net.rpc_port, &format!("/broadcast_tx_sync?tx=0x{tx}"));
        }
    }
    let start = Instant::now();
    while txs
        .iter()
        .any(|(h, _)| committed(net.rpc_port, h).is_none())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not every tx got committed after restart:\n{}",
            node.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for (h, _) in &txs {
        let r = committed(net.rpc_port, h).unwrap();
        assert_eq!(r["tx_result"]["code"], 0, "tx {h}: {r}");
    }
    node.kill9();

    // The twin: a fresh app fed the very same blocks over the ABCI socket, never crashed.
    let store = magnet_chain::store::BlockStore::open(&home.join("data/magnet-node")).unwrap();
    let state = store.state().unwrap();
    let twin_dir = tempfile::tempdir().unwrap();
    copy_dir(&home.join("config"), &twin_dir.path().join("config"));
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let twin = spawn_magnetd(
        twin_dir.path(),
        &["--abci-only", "--abci-addr", &addr, "--metrics-addr", "off"],
        &[],
        "twin.log",
    );
    let mut c = Conn::open(port, &twin);
    let genesis: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("config/genesis.json")).unwrap())
            .unwrap();
    let g: tendermint::Genesis<serde_json::Value> =
        serde_json::from_value(genesis.clone()).unwrap();
    let response::Value::InitChain(_) = c.call(request::Value::InitChain(pb::RequestInitChain {
        time: Some(g.genesis_time.into()),
        chain_id: g.chain_id.to_string(),
        consensus_params: Some(g.consensus_params.clone().into()),
        validators: g
            .validators
            .iter()
            .map(|v| pb::ValidatorUpdate {
                pub_key: Some(v.pub_key.into()),
                power: v.power.value() as i64,
            })
            .collect(),
        app_state_bytes: serde_json::to_vec(&genesis["app_state"]).unwrap().into(),
        initial_height: 1,
    })) else {
        panic!()
    };
    let mut twin_hash = Vec::new();
    for h in 1..=state.last_height {
        let req = store.request(h).unwrap().unwrap();
        let response::Value::FinalizeBlock(fin) = c.call(request::Value::FinalizeBlock(req)) else {
            panic!()
        };
        let stored = store.results(h).unwrap().unwrap();
        assert_eq!(
            fin.app_hash, stored.app_hash,
            "twin disagrees at height {h}"
        );
        assert_eq!(
            fin.tx_results, stored.tx_results,
            "twin tx results differ at height {h}"
        );
        c.call(request::Value::Commit(pb::RequestCommit {}));
        twin_hash = fin.app_hash.to_vec();
    }
    assert_eq!(hex::encode_upper(twin_hash), state.app_hash);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn kill_9_after_the_block_is_saved_but_before_finalize_block_loses_nothing() {
    crash_and_recover("before-finalize");
}

#[test]
fn kill_9_during_block_execution_before_results_are_saved_loses_nothing() {
    crash_and_recover("after-finalize");
}

#[test]
fn kill_9_between_finalize_block_and_commit_loses_nothing() {
    crash_and_recover("before-commit");
}
