//! Shared helpers for magnetd's integration tests: run the real binary on a temp home.
#![allow(dead_code)]

pub mod comet;

use std::io::{BufRead, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `magnetd` binary under test.
pub fn magnetd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magnetd"));
    c.env("RUST_LOG", "info").env_remove("MAGNETD_DEBUG_HALT");
    c
}

/// A free loopback TCP port, never the same twice in one test process, and below Linux's
/// ephemeral range (32768–60999). A port from `bind(0)` lies inside that range, so between the
/// test handing it out and the node binding it, an outgoing connection (the CometBFT nodes dial
/// each other) could take it as its local port: CI at 62c7029 failed with "bind: address
/// already in use" that way.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const LOW: u16 = 20_000;
    const HIGH: u16 = 32_000;
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Each test process starts at its own offset, so consecutive processes rarely meet.
    let start = LOW + (std::process::id() % 1_000) as u16 * 10;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..(HIGH - LOW) {
        let mut p = NEXT.fetch_add(1, Ordering::SeqCst);
        if p >= HIGH {
            NEXT.store(LOW, Ordering::SeqCst);
            p = NEXT.fetch_add(1, Ordering::SeqCst);
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
    panic!("no free loopback port in {LOW}..{HIGH}");
}

/// Run magnetd with `args` on `home`, assert success, return stdout.
pub fn run_ok(home: &Path, args: &[&str]) -> String {
    let out = magnetd()
        .arg("--home")
        .arg(home)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "magnetd {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A funded devnet home: one validator, key `alice` (test keyring) with 10^12 umag.
pub struct Devnet {
    pub dir: tempfile::TempDir,
    pub rpc_port: u16,
    pub chain_id: String,
    pub alice: String,
    pub alice_mnemonic: String,
}

impl Devnet {
    pub fn home(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }
}

pub fn devnet(chain_id: &str) -> Devnet {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let rpc_port = free_port();
    run_ok(
        home,
        &[
            "init",
            "test-node",
            "--chain-id",
            chain_id,
            "--genesis-time",
            "2026-01-01T00:00:00Z",
            "--rpc-laddr",
            &format!("tcp://127.0.0.1:{rpc_port}"),
        ],
    );
    let out = run_ok(home, &["keys", "add", "alice", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let alice = v["address"].as_str().unwrap().to_string();
    let alice_mnemonic = v["mnemonic"].as_str().unwrap().to_string();
    run_ok(
        home,
        &["genesis", "add-account", &alice, "1000000000000umag"],
    );
    Devnet {
        dir,
        rpc_port,
        chain_id: chain_id.to_string(),
        alice,
        alice_mnemonic,
    }
}

/// A child process killed (SIGKILL) on drop.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    /// Prometheus port, when the test chose one.
    pub metrics_port: u16,
}

impl Proc {
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Spawn `magnetd start` with extra args, logging to `<home>/<log_name>`.
pub fn spawn_magnetd(home: &Path, args: &[&str], envs: &[(&str, &str)], log_name: &str) -> Proc {
    let log = home.join(log_name);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let mut c = magnetd();
    c.arg("--home").arg(home).arg("start").args(args);
    for (k, v) in envs {
        c.env(k, v);
    }
    let child = c
        .stdout(Stdio::from(f.try_clone().unwrap()))
        .stderr(Stdio::from(f))
        .spawn()
        .unwrap();
    Proc {
        child,
        log,
        metrics_port: 0,
    }
}

/// Start the embedded node on a devnet home with fast blocks and no metrics port clash.
pub fn start_embedded(net: &Devnet, block_time: &str) -> Proc {
    let metrics_port = free_port();
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut p = spawn_magnetd(
        &net.home(),
        &["--block-time", block_time, "--metrics-addr", &metrics],
        &[],
        "node.log",
    );
    p.metrics_port = metrics_port;
    wait_height(net.rpc_port, 1, Duration::from_secs(60), &p);
    p
}

/// Plain HTTP GET on loopback; returns the body.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

/// Latest height from `/status`, if the node answers.
pub fn height(port: u16) -> Option<u64> {
    let body = http_get(port, "/status")?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["result"]["sync_info"]["latest_block_height"]
        .as_str()?
        .parse()
        .ok()
}

/// Wait until the node at `port` reports at least height `h`.
pub fn wait_height(port: u16, h: u64, timeout: Duration, p: &Proc) {
    let start = Instant::now();
    loop {
        if height(port).is_some_and(|x| x >= h) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "node on port {port} did not reach height {h}; log:\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The CometBFT v0.38 binary: `$COMETBFT`, then scripts/ci/install-cometbft.sh's location,
/// then `$PATH`.
pub fn cometbft_bin() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("COMETBFT").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/magnet-tools/bin/cometbft")),
        Some(PathBuf::from("cometbft")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .arg("version")
            .output()
            .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("0.38."))
            .unwrap_or(false)
    })
}

/// True when the test must not skip (CI).
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Skip (return true) locally with a message, or panic in CI, when a prerequisite is missing.
pub fn skip_or_fail(what: &str) -> bool {
    if in_ci() {
        panic!("CI=true and {what}: install it (see .ci/run)");
    }
    eprintln!("SKIPPED: {what}; this test runs in CI (CI=true makes it fail instead of skipping)");
    true
}

/// Read lines of a file (for logs).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::File::open(path)
        .map(|f| {
            std::io::BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .collect()
        })
        .unwrap_or_default()
}

use prost::Message;
use tendermint_proto::v0_38::abci as pb;
use tendermint_proto::v0_38::abci::{request, response, Request, Response};

/// One ABCI socket connection (varint-length-prefixed protobuf, as CometBFT frames it).
pub struct Conn(pub std::net::TcpStream);

impl Conn {
    pub fn open(port: u16, p: &Proc) -> Conn {
        let start = Instant::now();
        loop {
            if let Ok(s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                return Conn(s);
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "ABCI server did not come up:\n{}",
                p.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn call(&mut self, v: request::Value) -> response::Value {
        let req = Request { value: Some(v) };
        let mut buf = Vec::new();
        prost::encoding::encode_varint(req.encoded_len() as u64, &mut buf);
        req.encode(&mut buf).unwrap();
        // CometBFT follows every request with a Flush on the socket client.
        let flush = Request {
            value: Some(request::Value::Flush(pb::RequestFlush {})),
        };
        prost::encoding::encode_varint(flush.encoded_len() as u64, &mut buf);
        flush.encode(&mut buf).unwrap();
        self.0.write_all(&buf).unwrap();
        let resp = self.read();
        let f = self.read();
        assert!(
            matches!(f, response::Value::Flush(_)),
            "expected Flush, got {f:?}"
        );
        resp
    }

    pub fn read(&mut self) -> response::Value {
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            self.0.read_exact(&mut b).unwrap();
            len |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let mut body = vec![0u8; len as usize];
        self.0.read_exact(&mut body).unwrap();
        Response::decode(body.as_slice()).unwrap().value.unwrap()
    }
}
