//! Issue 17 through a real node (ADR 0094): a `MagnetApp` with the registered modules plus the
//! test-only `hazard` module (never in magnetd) is served over magnetd's ABCI socket server to
//! one real CometBFT v0.38 validator. A deliberately panicking message and an unchecked `+`
//! overflowing on a u64 from the tx are signed, broadcast over RPC, pass the mempool, are
//! proposed, accepted by ProcessProposal and executed: each fails with `sdk/111222`, the
//! module's state is unchanged, and blocks keep coming.
//!
//! Needs `cometbft` (scripts/ci/install-cometbft.sh); skips locally with a message when it is
//! missing, fails when CI=true.

mod common;

use common::*;
use magnet_app::testkit::hazard::{
    hazard_msg, sink, Hazard, OVERFLOW_URL, PANIC_URL, TOUCHED_PATH,
};
use magnet_app::testkit::{genesis_app_state, Signer, TxBuilder};
use magnet_app::{abci as pb, AppConfig, Application, MagnetApp, StoreConfig};
use prost::Message;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHAIN_ID: &str = "magnet-hazard-1";
const FUND: u128 = 1_000_000_000;
const FEE: u128 = 2_000;

/// Set `key = value` in the `[section]` of a CometBFT config.toml ("" for the top level).
fn set_toml(text: &str, section: &str, key: &str, value: &str) -> String {
    let mut cur = String::new();
    text.lines()
        .map(|l| {
            if let Some(s) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
                cur = s.to_string();
            }
            if cur == section && l.starts_with(&format!("{key} = ")) {
                format!("{key} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn init_comet(comet: &Path, home: &Path, alice: &Signer, abci: u16, rpc: u16, p2p: u16) {
    let out = Command::new(comet)
        .args(["init", "--home"])
        .arg(home)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let gpath = home.join("config/genesis.json");
    let mut g: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gpath).unwrap()).unwrap();
    g["chain_id"] = CHAIN_ID.into();
    g["app_state"] = genesis_app_state(&[(alice.address(), FUND)]);
    std::fs::write(&gpath, serde_json::to_vec_pretty(&g).unwrap()).unwrap();
    let cpath = home.join("config/config.toml");
    let mut c = std::fs::read_to_string(&cpath).unwrap();
    c = set_toml(&c, "", "proxy_app", &format!("\"tcp://127.0.0.1:{abci}\""));
    c = set_toml(&c, "rpc", "laddr", &format!("\"tcp://127.0.0.1:{rpc}\""));
    c = set_toml(&c, "p2p", "laddr", &format!("\"tcp://127.0.0.1:{p2p}\""));
    c = set_toml(&c, "consensus", "timeout_commit", "\"300ms\"");
    c = set_toml(&c, "consensus", "timeout_propose", "\"1s\"");
    std::fs::write(&cpath, c).unwrap();
}

/// The ABCI result of the committed tx with `hash`, once it is in a block.
fn tx_result(rpc: u16, hash: &[u8; 32], timeout: Duration) -> serde_json::Value {
    let start = Instant::now();
    loop {
        let body = http_get(rpc, &format!("/tx?hash=0x{}", hex::encode_upper(hash)));
        if let Some(v) = body.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok()) {
            if v["result"]["tx_result"].is_object() {
                return v["result"].clone();
            }
        }
        assert!(
            start.elapsed() < timeout,
            "tx {} never committed",
            hex::encode(hash)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn query_balance(app: &MagnetApp, a: &magnet_core::Address) -> u128 {
    use cosmrs::proto::cosmos::bank::v1beta1 as b;
    let r = app.query(pb::RequestQuery {
        data: b::QueryBalanceRequest {
            address: a.to_bech32(),
            denom: "umag".into(),
        }
        .encode_to_vec()
        .into(),
        path: "/cosmos.bank.v1beta1.Query/Balance".into(),
        height: 0,
        prove: false,
    });
    assert_eq!(r.code, 0, "{}", r.log);
    b::QueryBalanceResponse::decode(r.value.as_ref())
        .unwrap()
        .balance
        .map_or(0, |c| c.amount.parse().unwrap())
}

#[test]
fn a_real_node_fails_panicking_and_overflowing_txs_and_keeps_producing_blocks() {
    let Some(comet) = cometbft_bin() else {
        if skip_or_fail("cometbft v0.38 is not installed") {
            return;
        }
        unreachable!()
    };
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("comet");
    let alice = Signer::from_seed(17);
    let (abci, rpc, p2p) = (free_port(), free_port(), free_port());
    init_comet(&comet, &home, &alice, abci, rpc, p2p);

    let config = AppConfig {
        store: StoreConfig {
            keep_recent: 0,
            fsync: false,
        },
        min_gas_price: "0".into(),
        snapshot: Default::default(),
    };
    let mut mods = magnet_app::modules::registered_modules();
    mods.push(Box::new(Hazard { in_check_tx: false }));
    let app = MagnetApp::open_with_modules(&tmp.path().join("app"), config, mods).unwrap();
    let served = app.clone();
    let addr = format!("127.0.0.1:{abci}");
    std::thread::spawn(move || magnet_chain::abci_server::serve(&addr, served));
    std::thread::sleep(Duration::from_millis(300));

    let log = home.join("cometbft.log");
    let f = std::fs::File::create(&log).unwrap();
    let child = Command::new(&comet)
        .args(["start", "--home"])
        .arg(&home)
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap();
    let node = Proc {
        child,
        log,
        metrics_port: 0,
    };
    wait_height(rpc, 2, Duration::from_secs(60), &node);

    let acct = {
        use cosmrs::proto::cosmos::auth::v1beta1 as a;
        let r = app.query(pb::RequestQuery {
            data: a::QueryAccountRequest {
                address: alice.address().to_bech32(),
            }
            .encode_to_vec()
            .into(),
            path: "/cosmos.auth.v1beta1.Query/Account".into(),
            height: 0,
            prove: false,
        });
        assert_eq!(r.code, 0, "{}", r.log);
        let any = a::QueryAccountResponse::decode(r.value.as_ref())
            .unwrap()
            .account
            .unwrap();
        a::BaseAccount::decode(any.value.as_slice()).unwrap()
    };
    let tx = |seq: u64, msg: cosmrs::Any| {
        TxBuilder::new(CHAIN_ID, acct.account_number, seq)
            .fee(FEE, 200_000)
            .msg(msg)
            .sign(&alice)
    };
    let txs = [
        tx(0, hazard_msg(PANIC_URL, &alice.address(), 0)),
        tx(1, hazard_msg(OVERFLOW_URL, &alice.address(), u64::MAX)),
    ];
    for t in &txs {
        let body = http_get(rpc, &format!("/broadcast_tx_sync?tx=0x{}", hex::encode(t)))
            .expect("broadcast over RPC");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["result"]["code"], 0, "CheckTx accepted it: {body}");
    }
    let mut last = 0;
    for (t, what) in txs.iter().zip(["panic", "overflow"]) {
        let r = tx_result(rpc, &magnet_core::sha256(t), Duration::from_secs(60));
        let res = &r["tx_result"];
        assert_eq!(res["code"], 111_222, "{what}: {r}");
        assert_eq!(res["codespace"], "sdk", "{what}: {r}");
        assert!(
            res["log"].as_str().unwrap_or("").contains("panic"),
            "{what}: {r}"
        );
        last = last.max(r["height"].as_str().unwrap().parse::<u64>().unwrap());
    }
    // Blocks keep coming after the failed txs.
    wait_height(rpc, last + 3, Duration::from_secs(60), &node);
    // The module's writes were dropped; each tx paid its fee.
    let touched = app.query(pb::RequestQuery {
        path: TOUCHED_PATH.into(),
        ..Default::default()
    });
    assert_eq!(touched.code, 0, "{}", touched.log);
    assert!(touched.value.is_empty(), "a hazard write survived");
    assert_eq!(query_balance(&app, &sink()), 0);
    assert_eq!(query_balance(&app, &alice.address()), FUND - 2 * FEE);
}
