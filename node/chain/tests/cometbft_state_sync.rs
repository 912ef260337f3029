//! State sync with real CometBFT (issue 17 item 6, ADR 0099): 4 validators
//! (`scripts/testnet.sh init`) take snapshots every 5 heights while bank sends commit; a fifth,
//! non-validator node with an empty home joins by CometBFT's own `[statesync]` (two validators'
//! RPC servers for the light client, a trust height and hash read from a validator), restores
//! a snapshot through the ABCI snapshot connection and then follows the chain to the same app
//! hash. It did not replay from genesis: its block store starts above height 1 and its app
//! logged the restore, never a genesis.
//!
//! Needs `cometbft` (scripts/ci/install-cometbft.sh); skips locally with a message when it is
//! missing, fails when CI=true.

mod common;

use common::comet::*;
use common::*;
use magnet_client::ChainClient;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const INTERVAL: u64 = 5;

fn status(port: u16) -> Option<serde_json::Value> {
    let body = http_get(port, "/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(v["result"]["sync_info"].clone())
}

/// Drop ANSI colour codes from a log line.
fn plain(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn set(home: &std::path::Path, key: &str, value: &str) {
    run_ok(home, &["config", "set", key, value]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifth_node_joins_by_state_sync_and_reaches_the_same_app_hash() {
    let Some((comet, dir, base)) = new_testnet() else {
        return;
    };
    // The light client needs headers above the snapshot height: keep making (empty) blocks,
    // one a second when no tx waits.
    let homes: Vec<PathBuf> = (0..5)
        .map(|i| dir.path().join(format!("node{i}")))
        .collect();
    for h in &homes[..4] {
        set(h, "consensus.create_empty_blocks", "true");
        set(h, "consensus.create_empty_blocks_interval", "1s");
    }
    let snapshot_args: Vec<String> = [
        "--snapshot-interval",
        &INTERVAL.to_string(),
        // Enough that the snapshot a joiner picks is still there while it fetches chunks.
        "--snapshot-keep-recent",
        "20",
        "--snapshot-chunk-size",
        "1024",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut vals: Vec<Validator> = (0..5u16)
        .map(|i| Validator {
            home: homes[i as usize].clone(),
            rpc: base + 10 * i + 1,
            metrics: base + 10 * i + 3,
            eligible: None,
            extra_args: snapshot_args.clone(),
            app: None,
            comet: None,
        })
        .collect();
    let mut joiner = vals.pop().unwrap();
    for v in vals.iter_mut() {
        v.start(&comet);
    }
    let four: Vec<&Validator> = vals.iter().collect();
    wait_same_app_hash(&four, 1, Duration::from_secs(90));
    let faucet = faucet_key(dir.path());
    let client = ChainClient::new(&format!("http://127.0.0.1:{}", vals[0].rpc)).unwrap();
    send(&client, &faucet, 4).await;
    // At least two snapshots exist on every validator.
    let (h, _) = wait_same_app_hash(&four, 2 * INTERVAL + 2, Duration::from_secs(120));
    eprintln!("4 validators at height {h}");
    let snaps = homes[0].join("data/magnet-app/snapshots");
    let start = Instant::now();
    while !snaps.join((2 * INTERVAL).to_string()).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no snapshot of height {} in {}",
            2 * INTERVAL,
            snaps.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let written: Vec<String> = vals[0]
        .app
        .as_ref()
        .unwrap()
        .log_text()
        .lines()
        .filter(|l| l.contains("snapshot written"))
        .map(str::to_string)
        .collect();
    eprintln!("validator 0 snapshots:\n{}", written.join("\n"));

    // The fifth node: a fresh home with the chain's genesis, peers and [statesync].
    let home4 = &homes[4];
    let port = |j: u16| base + 40 + j;
    run_ok(
        home4,
        &[
            "init",
            "joiner",
            "--chain-id",
            "magnet-testnet-1",
            "--genesis-time",
            "2026-01-01T00:00:00Z",
            "--p2p-laddr",
            &format!("tcp://127.0.0.1:{}", port(0)),
            "--rpc-laddr",
            &format!("tcp://127.0.0.1:{}", port(1)),
            "--abci-addr",
            &format!("tcp://127.0.0.1:{}", port(2)),
            "--timeout-commit",
            "200ms",
        ],
    );
    std::fs::copy(
        homes[0].join("config/genesis.json"),
        home4.join("config/genesis.json"),
    )
    .unwrap();
    let peers: Vec<String> = (0..4u16)
        .map(|i| {
            let v: serde_json::Value =
                serde_json::from_str(&run_ok(&homes[i as usize], &["genesis", "show-validator"]))
                    .unwrap();
            format!(
                "{}@127.0.0.1:{}",
                v["node_id"].as_str().unwrap(),
                base + 10 * i
            )
        })
        .collect();
    set(home4, "p2p.persistent_peers", &peers.join(","));
    set(home4, "p2p.addr_book_strict", "false");
    set(home4, "p2p.allow_duplicate_ip", "true");
    set(home4, "consensus.create_empty_blocks", "true");
    set(home4, "consensus.create_empty_blocks_interval", "1s");
    let trust_height = h - 1;
    let block: serde_json::Value = serde_json::from_str(
        &http_get(vals[1].rpc, &format!("/block?height={trust_height}")).unwrap(),
    )
    .unwrap();
    let trust_hash = block["result"]["block_id"]["hash"].as_str().unwrap();
    set(home4, "statesync.enable", "true");
    set(
        home4,
        "statesync.rpc_servers",
        &format!(
            "http://127.0.0.1:{},http://127.0.0.1:{}",
            vals[0].rpc, vals[1].rpc
        ),
    );
    set(home4, "statesync.trust_height", &trust_height.to_string());
    set(home4, "statesync.trust_hash", trust_hash);
    set(home4, "statesync.trust_period", "168h0m0s");
    set(home4, "statesync.discovery_time", "5s");
    joiner.extra_args.clear();
    let joined = Instant::now();
    joiner.start(&comet);

    // It restores a snapshot and follows the chain to the validators' app hash.
    let start = Instant::now();
    let restored = loop {
        let log = joiner.app.as_ref().unwrap().log_text();
        if let Some(l) = log.lines().find(|l| l.contains("snapshot restored")) {
            break plain(l);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the fifth node did not restore a snapshot:\n{}",
            joiner.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let restore_secs = joined.elapsed().as_secs_f64();
    eprintln!("fifth node restored after {restore_secs:.1}s: {restored}");
    send(&client, &faucet, 2).await;
    let (h5, hash5) = {
        let mut all = four.clone();
        all.push(&joiner);
        wait_same_app_hash(&all, h + 2, Duration::from_secs(120))
    };
    eprintln!(
        "all 5 nodes at height {h5} with app hash {hash5}, {:.1}s after the fifth started",
        joined.elapsed().as_secs_f64()
    );

    // Not from genesis: the block store starts above height 1 (at the snapshot), the app
    // never ran InitChain, and its state starts at a snapshot height.
    let sync = status(joiner.rpc).unwrap();
    let earliest: u64 = sync["earliest_block_height"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        earliest > 1 && earliest % INTERVAL <= 1,
        "earliest block {earliest}: {sync}"
    );
    eprintln!("fifth node's block store starts at height {earliest}");
    let app_log = joiner.app.as_ref().unwrap().log_text();
    assert!(!app_log.contains("genesis staged"), "{app_log}");
    let snap_height: u64 = restored
        .split("height=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no height in {restored:?}"));
    assert_eq!(snap_height % INTERVAL, 0, "{restored}");
    assert!(snap_height >= INTERVAL);
    // Restarted, it goes on from its own state (CometBFT skips state sync once it has a
    // height) and keeps agreeing.
    joiner.stop();
    joiner.start(&comet);
    send(&client, &faucet, 1).await;
    let mut all = four.clone();
    all.push(&joiner);
    let (h6, _) = wait_same_app_hash(&all, h5 + 1, Duration::from_secs(120));
    eprintln!("after a restart the fifth node is at height {h6} with the others");
    let restores = joiner
        .app
        .as_ref()
        .unwrap()
        .log_text()
        .matches("snapshot restored")
        .count();
    assert_eq!(restores, 1, "the restart restored nothing");
    // The joined node serves queries at the latest height like the others.
    let c4 = ChainClient::new(&format!("http://127.0.0.1:{}", joiner.rpc)).unwrap();
    assert_eq!(
        c4.balances(&faucet.address()).await.unwrap(),
        client.balances(&faucet.address()).await.unwrap()
    );
}

#[test]
fn bad_snapshot_flags_stop_magnetd_before_it_serves_anything() {
    let net = devnet("magnet-flags-1");
    let cases: [(&[&str], &str); 3] = [
        (&["--snapshot-interval", "5"], "needs --abci-only"),
        (
            &[
                "--abci-only",
                "--snapshot-interval",
                "5",
                "--snapshot-keep-recent",
                "0",
            ],
            "keep_recent must be at least 1",
        ),
        (
            &["--abci-only", "--snapshot-chunk-size", "0"],
            "chunk_size 0 must be between",
        ),
    ];
    for (args, want) in cases {
        let out = magnetd()
            .arg("--home")
            .arg(net.home())
            .args(["start", "--metrics-addr", "off"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let help = magnetd().args(["start", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--snapshot-interval",
        "--snapshot-keep-recent",
        "--snapshot-chunk-size",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
