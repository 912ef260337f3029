//! The embedded node against tendermint-rpc's `HttpClient`, magnet-client and the magnetd CLI.

mod common;

use common::*;
use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, Key};
use magnet_core::{Address, Coins};
use std::time::Duration;
use tendermint_rpc::{Client, HttpClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tendermint_rpc_http_client_reads_and_writes_the_embedded_node() {
    let net = devnet("magnet-rpc-test");
    let node = start_embedded(&net, "200ms");
    let url: tendermint_rpc::HttpClientUrl = net.rpc_url().parse().unwrap();
    let http = HttpClient::builder(url)
        .compat_mode(tendermint_rpc::client::CompatMode::V0_38)
        .build()
        .unwrap();

    // Read endpoints.
    http.health().await.unwrap();
    let status = http.status().await.unwrap();
    assert_eq!(status.node_info.network.as_str(), "magnet-rpc-test");
    assert!(status.node_info.version.to_string().starts_with("0.38."));
    assert!(status.sync_info.latest_block_height.value() >= 1);
    let info = http.abci_info().await.unwrap();
    assert_eq!(info.data, "magnet");
    let genesis: tendermint::Genesis<serde_json::Value> = http.genesis().await.unwrap();
    assert_eq!(genesis.chain_id.as_str(), "magnet-rpc-test");
    let vals = http
        .validators(
            tendermint::block::Height::from(1u32),
            tendermint_rpc::Paging::All,
        )
        .await
        .unwrap();
    assert_eq!(vals.validators.len(), 1);
    let b1 = http
        .block(tendermint::block::Height::from(1u32))
        .await
        .unwrap();
    assert_eq!(b1.block.header.height.value(), 1);
    assert_eq!(b1.block.header.time.to_rfc3339(), "2026-01-01T00:00:00Z");
    assert_eq!(
        b1.block_id.hash,
        b1.block.header.hash(),
        "block id is the header hash"
    );

    // A signed transfer through magnet-client (CheckTx → block → tx index).
    let alice = Key::from_mnemonic(&net.alice_mnemonic).unwrap();
    let bob = Key::generate().unwrap().address();
    let client = ChainClient::new(&net.rpc_url()).unwrap();
    let acct = client
        .account(&alice.address())
        .await
        .unwrap()
        .expect("alice exists at genesis");
    let msg = magnet_client::tx::msg_send(&alice.address(), &bob, &Coins::umag(777)).unwrap();
    let fee = FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    let sent = client
        .sign_and_broadcast(&alice, vec![msg], "hello", &fee)
        .await
        .unwrap();
    let res = client
        .wait_tx(&sent.hash.to_string(), Duration::from_secs(20))
        .await
        .unwrap();
    assert!(res.tx_result.code.is_ok(), "{}", res.tx_result.log);
    assert_eq!(client.balances(&bob).await.unwrap(), Coins::umag(777));
    let after = client.account(&alice.address()).await.unwrap().unwrap();
    assert_eq!(after.sequence, acct.sequence + 1);

    // The same tx is findable by tx_search (what cosmjs polls) and block_results has it.
    let q: tendermint_rpc::query::Query = format!("tx.hash='{}'", sent.hash).parse().unwrap();
    let found = http
        .tx_search(q, false, 1, 10, tendermint_rpc::Order::Ascending)
        .await
        .unwrap();
    assert_eq!(found.total_count, 1);
    assert_eq!(found.txs[0].height, res.height);
    let br = http.block_results(res.height).await.unwrap();
    assert_eq!(br.txs_results.unwrap().len(), 1);
    let blk = http.block(res.height).await.unwrap();
    assert_eq!(blk.block.data.len(), 1);
    // Next block's header carries the app hash after this block.
    let next = res.height.increment();
    while http.status().await.unwrap().sync_info.latest_block_height < next {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let nb = http.block(next).await.unwrap();
    assert_eq!(nb.block.header.app_hash, br.app_hash);
    assert_eq!(nb.block.header.last_block_id.unwrap(), blk.block_id);

    // broadcast_tx_commit with the next sequence.
    let signer = magnet_client::tx::SignerData {
        chain_id: "magnet-rpc-test".into(),
        account_number: acct.account_number,
        sequence: after.sequence,
    };
    let msg = magnet_client::tx::msg_send(&alice.address(), &bob, &Coins::umag(3)).unwrap();
    let bytes = magnet_client::tx::sign_tx(&alice, vec![msg], "", &fee, &signer).unwrap();
    let c = http.broadcast_tx_commit(bytes.clone()).await.unwrap();
    assert!(c.check_tx.code.is_ok() && c.tx_result.code.is_ok(), "{c:?}");
    // Replaying it is rejected by CheckTx with a reason.
    let again = http.broadcast_tx_sync(bytes).await.unwrap();
    assert!(again.code.is_err());
    assert!(!again.log.is_empty());
    // Garbage is rejected too, and the node keeps going.
    let junk = http.broadcast_tx_sync(vec![1u8, 2, 3]).await.unwrap();
    assert!(junk.code.is_err(), "{junk:?}");

    // URI (GET) style, as curl users call it.
    let body = http_get(net.rpc_port, &format!("/tx?hash=0x{}", sent.hash)).unwrap();
    assert!(body.contains(&format!("\"{}\"", sent.hash)), "{body}");
    let body = http_get(net.rpc_port, "/block?height=1").unwrap();
    assert!(body.contains("\"height\":\"1\""), "{body}");
    let body = http_get(net.rpc_port, "/no_such_method").unwrap();
    assert!(body.contains("-32601"), "{body}");
    drop(node);
}

#[test]
fn the_cli_sends_and_queries_with_json_output() {
    let net = devnet("magnet-cli-test");
    let node = start_embedded(&net, "200ms");
    let home = net.home();
    let url = net.rpc_url();
    let bob = Address([42; 20]).to_bech32();
    let out = run_ok(
        &home,
        &[
            "tx", "bank", "send", "alice", &bob, "1500umag", "--fees", "5000umag", "--yes",
            "--output", "json", "--node", &url,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["code"], 0, "{out}");
    let hash = v["txhash"].as_str().unwrap().to_string();
    let out = run_ok(
        &home,
        &[
            "query", "bank", "balances", &bob, "--output", "json", "--node", &url,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["balances"],
        serde_json::json!([{"denom": "umag", "amount": "1500"}])
    );
    let out = run_ok(
        &home,
        &["query", "tx", &hash, "--output", "json", "--node", &url],
    );
    assert!(out.contains(&hash));
    let out = run_ok(
        &home,
        &[
            "query", "auth", "account", &net.alice, "--output", "json", "--node", &url,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sequence"], "1");
    let out = run_ok(
        &home,
        &["query", "block", "1", "--output", "json", "--node", &url],
    );
    assert!(out.contains("magnet-cli-test"));
    let out = run_ok(&home, &["status", "--output", "json"]);
    assert!(out.contains("magnet-cli-test"));
    // Prometheus metrics are served.
    let m = http_get(node.metrics_port, "/metrics").unwrap();
    assert!(
        m.contains("magnet_height")
            && m.contains("magnet_txs_total")
            && m.contains("magnet_mempool_size"),
        "{m}"
    );
    // Bad input fails with a clear message and a non-zero exit.
    let bad = magnetd()
        .arg("--home")
        .arg(&home)
        .args([
            "tx",
            "bank",
            "send",
            "alice",
            "cosmos1xyz",
            "1umag",
            "--yes",
            "--node",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("bech32"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
