//! A real 4-validator network: `scripts/testnet.sh init` runs the genesis ceremony, then 4
//! `magnetd start --abci-only` apps run behind 4 CometBFT v0.38 nodes on loopback. Txs commit
//! and all 4 apps reach the same app hash; with one validator stopped the chain goes on; the
//! restarted validator catches up to the same app hash.
//!
//! Needs `cometbft` (scripts/ci/install-cometbft.sh); skips locally with a message when it is
//! missing, fails when CI=true.

mod common;

use common::*;
use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, Key};
use magnet_core::Coins;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Validator {
    home: PathBuf,
    rpc: u16,
    metrics: u16,
    /// Port of the DiLoCo eligible-set endpoint (`--eligible-laddr`), if served.
    eligible: Option<u16>,
    app: Option<Proc>,
    comet: Option<Proc>,
}

impl Validator {
    fn start(&mut self, comet: &Path) {
        let m = format!("127.0.0.1:{}", self.metrics);
        let mut args = vec!["--abci-only".to_string(), "--metrics-addr".into(), m];
        if let Some(p) = self.eligible {
            args.extend([
                "--eligible-laddr".into(),
                format!("127.0.0.1:{p}"),
                "--comet-rpc".into(),
                format!("http://127.0.0.1:{}", self.rpc),
            ]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.app = Some(spawn_magnetd(&self.home, &args, &[], "magnetd.log"));
        std::thread::sleep(Duration::from_millis(300));
        let log = self.home.join("cometbft.log");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(comet)
            .args(["start", "--home"])
            .arg(&self.home)
            .stdout(Stdio::from(f.try_clone().unwrap()))
            .stderr(Stdio::from(f))
            .spawn()
            .unwrap();
        self.comet = Some(Proc {
            child,
            log,
            metrics_port: 0,
        });
    }
    fn stop(&mut self) {
        self.comet.take();
        self.app.take();
    }
    /// (height, app hash) the app reports through CometBFT's abci_info.
    fn app_info(&self) -> Option<(u64, String)> {
        let body = http_get(self.rpc, "/abci_info")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = &v["result"]["response"];
        Some((
            r["last_block_height"].as_str()?.parse().ok()?,
            r["last_block_app_hash"].as_str()?.to_string(),
        ))
    }
    fn logs(&self) -> String {
        let c = self
            .comet
            .as_ref()
            .map(|p| p.log_text())
            .unwrap_or_default();
        let a = self.app.as_ref().map(|p| p.log_text()).unwrap_or_default();
        let tail = |s: &str| {
            s.lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        };
        format!(
            "--- cometbft ---\n{}\n--- magnetd ---\n{}",
            tail(&c),
            tail(&a)
        )
    }
}

fn wait_same_app_hash(vals: &[&Validator], min_height: u64, timeout: Duration) -> (u64, String) {
    let start = Instant::now();
    loop {
        let infos: Vec<Option<(u64, String)>> = vals.iter().map(|v| v.app_info()).collect();
        if let Some(Some(first)) = infos.first() {
            if first.0 >= min_height && infos.iter().all(|i| i.as_ref() == Some(first)) {
                return first.clone();
            }
        }
        if start.elapsed() > timeout {
            let logs: Vec<String> = vals.iter().map(|v| v.logs()).collect();
            panic!(
                "validators did not agree at height >= {min_height}: {infos:?}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn send(client: &ChainClient, from: &Key, n: u64) {
    let fee = FeeSpec {
        amount: Coins::umag(5000),
        gas_limit: 200_000,
    };
    for i in 0..n {
        let to = Key::generate().unwrap().address();
        let msg =
            magnet_client::tx::msg_send(&from.address(), &to, &Coins::umag(100 + u128::from(i)))
                .unwrap();
        let r = client
            .sign_and_broadcast(from, vec![msg], "", &fee)
            .await
            .unwrap();
        let res = client
            .wait_tx(&r.hash.to_string(), Duration::from_secs(30))
            .await
            .unwrap();
        assert!(res.tx_result.code.is_ok(), "{}", res.tx_result.log);
        assert_eq!(
            client.balances(&to).await.unwrap(),
            Coins::umag(100 + u128::from(i))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_cometbft_validators_agree_survive_a_stop_and_catch_up() {
    let Some(comet) = cometbft_bin() else {
        skip_or_fail("cometbft v0.38 is not installed (run scripts/ci/install-cometbft.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = 20_000 + (free_port() % 40_000);
    let script = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../scripts/testnet.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["init", "--validators", "4", "--dir"])
        .arg(dir.path())
        .args(["--base-port", &base.to_string()])
        .env("MAGNETD", env!("CARGO_BIN_EXE_magnetd"))
        .env("COMETBFT", &comet)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testnet.sh init failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
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
            app: None,
            comet: None,
        })
        .collect();
    for v in vals.iter_mut() {
        v.start(&comet);
    }
    let all: Vec<&Validator> = vals.iter().collect();
    wait_same_app_hash(&all, 1, Duration::from_secs(90));

    let faucet: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("faucet.json")).unwrap())
            .unwrap();
    let faucet = Key::from_mnemonic(faucet["mnemonic"].as_str().unwrap()).unwrap();
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
