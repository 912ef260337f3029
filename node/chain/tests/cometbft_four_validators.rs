//! A real 4-validator network: `scripts/testnet.sh init` runs the genesis ceremony, then 4
//! `magnetd start --abci-only` apps run behind 4 CometBFT v0.38 nodes on loopback. Txs commit
//! and all 4 apps reach the same app hash; with one validator stopped the chain goes on; the
//! restarted validator catches up to the same app hash.
//!
//! Needs `cometbft` (scripts/ci/install-cometbft.sh); skips locally with a message when it is
//! missing, fails when CI=true.

mod common;

use common::comet::*;
use common::*;
use magnet_client::ChainClient;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_cometbft_validators_agree_survive_a_stop_and_catch_up() {
    let Some((comet, dir, base)) = new_testnet() else {
        return;
    };
    let genesis: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("node3/config/genesis.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        genesis["validators"].as_array().unwrap().len(),
        4,
        "the ceremony put all 4 validators in genesis"
    );

    let mut vals: Vec<Validator> = (0..4)
        .map(|i| Validator {
            home: dir.path().join(format!("node{i}")),
            rpc: base + 10 * i + 1,
            metrics: base + 10 * i + 3,
            eligible: (i == 0).then_some(base + 4),
            extra_args: Vec::new(),
            app: None,
            comet: None,
        })
        .collect();
    for v in vals.iter_mut() {
        v.start(&comet);
    }
    let all: Vec<&Validator> = vals.iter().collect();
    wait_same_app_hash(&all, 1, Duration::from_secs(90));

    let faucet = faucet_key(dir.path());
    let client = ChainClient::new(&format!("http://127.0.0.1:{}", vals[0].rpc)).unwrap();
    send(&client, &faucet, 4).await;
    let (h1, hash1) = wait_same_app_hash(&all, 2, Duration::from_secs(60));
    eprintln!("all 4 validators at height {h1} with app hash {hash1}");

    // Stop validator 3 (25% of the power): the other three still make blocks.
    vals[3].stop();
    let three: Vec<&Validator> = vals[..3].iter().collect();
    send(&client, &faucet, 3).await;
    let (h2, hash2) = wait_same_app_hash(&three, h1 + 1, Duration::from_secs(60));
    assert_ne!(hash2, hash1);
    eprintln!("3 validators went on to height {h2} with app hash {hash2}");

    // Restart it: CometBFT replays the missed blocks through the app, which catches up.
    let mut v3 = vals.pop().unwrap();
    v3.start(&comet);
    vals.push(v3);
    let all: Vec<&Validator> = vals.iter().collect();
    let (h3, hash3) = wait_same_app_hash(&all, h2, Duration::from_secs(90));
    eprintln!("validator 3 caught up: all 4 at height {h3} with app hash {hash3}");
    // One more tx with all four back.
    send(&client, &faucet, 1).await;
    wait_same_app_hash(&all, h3 + 1, Duration::from_secs(60));
    // The DiLoCo eligible set is served beside the ABCI socket, with CometBFT's block hash.
    use magnet_diloco::eligible::{EligibleSource, HttpEligibleSource, SourceError};
    let mut src = HttpEligibleSource::new(
        &format!("http://127.0.0.1:{}", vals[0].eligible.unwrap()),
        Duration::from_secs(10),
    )
    .unwrap();
    let set = src.eligible_at(h3).unwrap();
    assert_eq!(set.height, h3);
    assert!(set.members.is_empty(), "no node is registered: {set:?}");
    let b = client.block(Some(h3)).await.unwrap();
    assert_eq!(set.block_hash.0.as_slice(), b.block_id.hash.as_bytes());
    assert!(matches!(
        src.eligible_at(h3 + 1_000_000),
        Err(SourceError::NotYet { .. })
    ));
    // The app's metrics are served in --abci-only mode.
    let m = http_get(vals[0].metrics, "/metrics").unwrap();
    assert!(m.contains("magnet_height"), "{m}");
}
