//! magnet-client against the embedded node: several txs from one key in one block, typed
//! module queries, and typed rejections.

mod common;

use common::*;
use magnet_client::tx::FeeSpec;
use magnet_client::{msgs, ChainClient, ClientError, Key};
use magnet_core::Coins;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sends_several_txs_without_waiting_for_blocks() {
    let net = devnet("magnet-client-seq");
    // Slow blocks, so the three txs below are all in the mempool together.
    let _node = start_embedded(&net, "1s");
    let alice = Key::from_mnemonic(&net.alice_mnemonic).unwrap();
    let client = ChainClient::new(&net.rpc_url()).unwrap();
    let fee = FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    let before = client.account(&alice.address()).await.unwrap().unwrap();
    let bob = Key::generate().unwrap().address();
    let mut hashes = Vec::new();
    for amount in [1u128, 2, 3] {
        let m = magnet_client::tx::msg_send(&alice.address(), &bob, &Coins::umag(amount)).unwrap();
        let r = client
            .sign_and_broadcast(&alice, vec![m], "", &fee)
            .await
            .unwrap();
        hashes.push(r.hash.to_string());
    }
    for h in &hashes {
        let r = client.wait_tx(h, Duration::from_secs(30)).await.unwrap();
        assert!(r.tx_result.code.is_ok(), "{}", r.tx_result.log);
    }
    assert_eq!(client.balances(&bob).await.unwrap(), Coins::umag(6));
    let after = client.account(&alice.address()).await.unwrap().unwrap();
    assert_eq!(after.sequence, before.sequence + 3);

    // A module tx through broadcast_and_wait, and its JSON query through query_json.
    let o = client
        .broadcast_and_wait(
            &alice,
            vec![msgs::bond_gov(&alice.address(), 2_000_000)],
            "",
            &fee,
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert!(o.height > 0);
    assert_eq!(
        o.attribute("magnet.registry.gov_bonded", "amount")
            .as_deref(),
        Some("2000000")
    );
    let bond: String = client
        .query_json(
            "/magnet.registry.v1/gov_bond",
            alice.address().to_bech32().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(bond, "2000000");
    // ... and at a past height, before the bond existed.
    let old: String = client
        .query_json_at(
            "/magnet.registry.v1/gov_bond",
            alice.address().to_bech32().as_bytes(),
            Some(o.height - 1),
        )
        .await
        .unwrap();
    assert_eq!(old, "0");

    // A tx the module refuses is a typed rejection naming the module and the reason.
    match client
        .broadcast_and_wait(
            &alice,
            vec![msgs::gov_vote(&alice.address(), 999, "yes")],
            "",
            &fee,
            Duration::from_secs(30),
        )
        .await
    {
        Err(ClientError::TxRejected { log, .. }) | Err(ClientError::TxFailed { log, .. }) => {
            assert!(log.contains("999"), "{log}")
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
    // A malformed query answer is a Format error, not a panic.
    let bad: Result<u64, _> = client.query_json("/magnet.registry.v1/params", b"").await;
    assert!(matches!(bad, Err(ClientError::Format { .. })), "{bad:?}");
}
