//! `tx_search` with the CometBFT query language, through tendermint-rpc's `HttpClient`.

mod common;

use common::*;
use magnet_client::tx::FeeSpec;
use magnet_client::{msgs, ChainClient, Key};
use magnet_core::Coins;
use std::collections::BTreeSet;
use std::time::Duration;
use tendermint_rpc::{Client, HttpClient, Order};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_search_filters_by_height_sender_and_module_events_with_pages() {
    let net = devnet("magnet-tx-search");
    let _node = start_embedded(&net, "200ms");
    let alice = Key::from_mnemonic(&net.alice_mnemonic).unwrap();
    let client = ChainClient::new(&net.rpc_url()).unwrap();
    let fee = FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    let wait = Duration::from_secs(30);
    let bob = Key::generate().unwrap().address();
    let carol = Key::generate().unwrap().address();

    // Three sends to bob, one to carol, one governance bond (a module event).
    let mut sends = Vec::new();
    for to in [bob, bob, carol, bob] {
        let m = magnet_client::tx::msg_send(&alice.address(), &to, &Coins::umag(10)).unwrap();
        let o = client
            .broadcast_and_wait(&alice, vec![m], "", &fee, wait)
            .await
            .unwrap();
        sends.push(o);
    }
    let bond = client
        .broadcast_and_wait(
            &alice,
            vec![msgs::bond_gov(&alice.address(), 1_000_000)],
            "",
            &fee,
            wait,
        )
        .await
        .unwrap();

    let url: tendermint_rpc::HttpClientUrl = net.rpc_url().parse().unwrap();
    let http = HttpClient::builder(url)
        .compat_mode(tendermint_rpc::client::CompatMode::V0_38)
        .build()
        .unwrap();
    let search = |q: String, page: u32, per: u8, order: Order| {
        let http = http.clone();
        async move {
            http.tx_search(q.parse().unwrap(), false, page, per, order)
                .await
                .unwrap()
        }
    };
    let hashes = |r: &tendermint_rpc::endpoint::tx_search::Response| -> Vec<String> {
        r.txs.iter().map(|t| t.hash.to_string()).collect()
    };

    // By height: exactly the tx of that block.
    let r = search(
        format!("tx.height={}", sends[2].height),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(hashes(&r), vec![sends[2].hash.clone()]);

    // By sender (the `message` event every module's messages carry): the four sends and the
    // registry bond, in height order; by module: only the bond.
    let r = search(
        format!("message.sender='{}'", alice.address()),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(r.total_count, 5);
    // (each was waited for before the next was sent: one per block, in this order)
    let all: Vec<String> = sends
        .iter()
        .chain([&bond])
        .map(|o| o.hash.clone())
        .collect();
    assert_eq!(hashes(&r), all);
    let r = search(
        format!(
            "message.sender='{}' AND message.module='registry'",
            alice.address()
        ),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(hashes(&r), vec![bond.hash.clone()]);

    // AND with a transfer attribute: the three sends to bob.
    let q = format!(
        "message.sender='{}' AND transfer.recipient='{bob}'",
        alice.address()
    );
    let r = search(q.clone(), 1, 30, Order::Ascending).await;
    let want: Vec<String> = [0, 1, 3].iter().map(|&i| sends[i].hash.clone()).collect();
    assert_eq!(hashes(&r), want);

    // Pages of 2, newest first.
    let p1 = search(q.clone(), 1, 2, Order::Descending).await;
    let p2 = search(q.clone(), 2, 2, Order::Descending).await;
    assert_eq!(p1.total_count, 3);
    assert_eq!(p2.total_count, 3);
    assert_eq!(
        [hashes(&p1), hashes(&p2)].concat(),
        want.iter().rev().cloned().collect::<Vec<_>>()
    );
    // A page past the end is an error, as in CometBFT.
    let past: tendermint_rpc::query::Query = q.parse().unwrap();
    assert!(http
        .tx_search(past, false, 3, 2, Order::Ascending)
        .await
        .is_err());

    // A module's own event attribute.
    let r = search(
        format!("magnet.registry.gov_bonded.owner='{}'", alice.address()),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(hashes(&r), vec![bond.hash.clone()]);
    let r = search(
        format!(
            "magnet.registry.gov_bonded.amount>=1000000 AND tx.height>={}",
            bond.height
        ),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(r.total_count, 1);

    // Height ranges combine with attributes; nothing matches an unknown sender.
    let r = search(
        format!(
            "tx.height>{} AND tx.height<={}",
            sends[0].height, sends[3].height
        ),
        1,
        30,
        Order::Ascending,
    )
    .await;
    let got: BTreeSet<String> = hashes(&r).into_iter().collect();
    let want: BTreeSet<String> = sends[1..].iter().map(|o| o.hash.clone()).collect();
    assert_eq!(got, want);
    let r = search(format!("message.sender='{carol}'"), 1, 30, Order::Ascending).await;
    assert_eq!(r.total_count, 0);

    // tx.hash still works, and must agree with the other conditions.
    let r = search(
        format!("tx.hash='{}'", sends[1].hash),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(hashes(&r), vec![sends[1].hash.clone()]);
    let r = search(
        format!(
            "tx.hash='{}' AND transfer.recipient='{carol}'",
            sends[1].hash
        ),
        1,
        30,
        Order::Ascending,
    )
    .await;
    assert_eq!(r.total_count, 0);

    // The same search from the CLI.
    let out = run_ok(
        &net.home(),
        &[
            "query",
            "txs",
            &format!("transfer.recipient='{bob}'"),
            "--per-page",
            "2",
            "--desc",
            "--output",
            "json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["total_count"], 3, "{v}");
    assert_eq!(
        v["txs"][0]["txhash"],
        serde_json::json!(sends[3].hash),
        "{v}"
    );
    assert_eq!(v["txs"].as_array().unwrap().len(), 2, "{v}");

    // A malformed query is an error, not an empty answer.
    assert!(http
        .tx_search(
            tendermint_rpc::query::Query::eq("tx.height", "abc"),
            false,
            1,
            30,
            Order::Ascending
        )
        .await
        .is_err());
}
