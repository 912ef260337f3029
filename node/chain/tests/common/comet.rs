//! A real CometBFT network for integration tests: `magnetd start --abci-only` apps behind
//! CometBFT v0.38 nodes (see scripts/testnet.sh), and helpers to compare their app hashes.

use super::*;
use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, Key};
use magnet_core::Coins;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One node: a magnetd app and its CometBFT in one home.
pub struct Validator {
    pub home: PathBuf,
    pub rpc: u16,
    pub metrics: u16,
    /// Port of the DiLoCo eligible-set endpoint (`--eligible-laddr`), if served.
    pub eligible: Option<u16>,
    /// Extra `magnetd start` arguments.
    pub extra_args: Vec<String>,
    pub app: Option<Proc>,
    pub comet: Option<Proc>,
}

impl Validator {
    pub fn start(&mut self, comet: &Path) {
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
        args.extend(self.extra_args.iter().cloned());
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
    pub fn stop(&mut self) {
        self.comet.take();
        self.app.take();
    }
    /// (height, app hash) the app reports through CometBFT's abci_info.
    pub fn app_info(&self) -> Option<(u64, String)> {
        let body = http_get(self.rpc, "/abci_info")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let r = &v["result"]["response"];
        Some((
            r["last_block_height"].as_str()?.parse().ok()?,
            r["last_block_app_hash"].as_str()?.to_string(),
        ))
    }
    pub fn logs(&self) -> String {
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

/// Wait until every node reports the same (height, app hash) at `min_height` or above.
pub fn wait_same_app_hash(
    vals: &[&Validator],
    min_height: u64,
    timeout: Duration,
) -> (u64, String) {
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

/// Send `n` bank transfers from `from` to fresh accounts, each checked on chain.
pub async fn send(client: &ChainClient, from: &Key, n: u64) {
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

/// `scripts/testnet.sh init` for 4 validators in `dir` on ports from `base` (node I: p2p
/// BASE+10I, rpc +1, abci +2, metrics +3); asserts it succeeded.
pub fn testnet_init(dir: &Path, base: u16, comet: &Path) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/testnet.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["init", "--validators", "4", "--dir"])
        .arg(dir)
        .args(["--base-port", &base.to_string()])
        .env("MAGNETD", env!("CARGO_BIN_EXE_magnetd"))
        .env("COMETBFT", comet)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "testnet.sh init failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `faucet` key that `testnet.sh init` funded (its mnemonic is in `DIR/faucet.json`).
pub fn faucet_key(dir: &Path) -> Key {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("faucet.json")).unwrap()).unwrap();
    Key::from_mnemonic(v["mnemonic"].as_str().unwrap()).unwrap()
}

/// A 4-validator testnet ([`testnet_init`]) in a temp dir on random ports:
/// `(cometbft binary, dir, base port)`. `None` (skipped with a message) when CometBFT v0.38 is
/// missing locally; with CI=true that panics instead.
pub fn new_testnet() -> Option<(PathBuf, tempfile::TempDir, u16)> {
    let Some(comet) = cometbft_bin() else {
        skip_or_fail("cometbft v0.38 is not installed (run scripts/ci/install-cometbft.sh)");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let base = 20_000 + (free_port() % 40_000);
    testnet_init(dir.path(), base, &comet);
    Some((comet, dir, base))
}
