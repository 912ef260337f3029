//! `magnet-worker serve` as a real process: a tiny model trained and exported by the CLI,
//! served over HTTP, driven by raw HTTP here and by the official `openai` Python package
//! (`openai_client_check.py`: completions and chat, streamed and not, usage, errors, and 16
//! concurrent streaming clients each getting exactly its single-client output). The greedy
//! completion must equal `magnet-worker infer`'s for the same prompt.
//!
//! The Python half needs `openai` (scripts/ci/install-python-deps.sh installs the pinned
//! version): it skips locally with a message when missing and fails in CI (`CI=true`).

#[allow(dead_code)]
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use common::repo;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_magnet-worker");
const PROMPT: &str = "And God said, Let there be";
const MAX_TOKENS: usize = 12;

/// A tiny model trained for a few steps on the KJV head and exported as GGUF, once per run.
fn model() -> &'static Path {
    static M: OnceLock<PathBuf> = OnceLock::new();
    M.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let cfg = dir.join("tiny.toml");
        std::fs::write(
            &cfg,
            format!(
                "[model]\npreset = \"tiny\"\nmax_seq_len = 128\n\
                 [data]\ncorpus = {:?}\nvocab_size = 512\ntokenizer = {:?}\nshards = {:?}\n\
                 [train]\nsteps = 40\nbatch_size = 4\nseq_len = 64\neval_every = 40\n\
                 checkpoint_every = 40\nout_dir = {:?}\n",
                repo().join("data/text/kjv_head.txt"),
                dir.join("tok.json"),
                dir.join("shards"),
                dir.join("run"),
            ),
        )
        .unwrap();
        let ok = Command::new(BIN)
            .args(["train", "--quiet", "--config"])
            .arg(&cfg)
            .status()
            .unwrap();
        assert!(ok.success(), "training the fixture model failed");
        let out = dir.join("tiny.gguf");
        let ok = Command::new(BIN)
            .args(["export", "--format", "gguf", "--checkpoint"])
            .arg(dir.join("run/checkpoints/final"))
            .arg("--out")
            .arg(&out)
            .status()
            .unwrap();
        assert!(ok.success(), "exporting the fixture model failed");
        out
    })
}

/// A running server; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--model",
        ])
        .arg(model())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server { child, addr }
}

/// One raw HTTP/1.1 exchange: (status, headers, body).
fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}

fn greedy_by_infer() -> String {
    let out = Command::new(BIN)
        .args(["infer", "--temperature", "0", "--model"])
        .arg(model())
        .args(["--prompt", PROMPT, "--max-tokens", &MAX_TOKENS.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let s = String::from_utf8(out.stdout).unwrap();
    s.strip_suffix('\n')
        .unwrap()
        .strip_prefix(PROMPT)
        .unwrap()
        .to_string()
}

#[test]
fn the_server_answers_raw_http_with_openai_bodies_and_refuses_bad_requests() {
    let s = serve(&["--max-body-kib", "8"]);
    let (st, _, body) = http(&s.addr, "GET", "/health", "");
    assert_eq!((st, body.contains("ok")), (200, true));
    let (st, _, body) = http(&s.addr, "GET", "/v1/models", "");
    assert_eq!(st, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["data"][0]["id"], "tiny");

    let req =
        json!({"model": "tiny", "prompt": PROMPT, "max_tokens": MAX_TOKENS, "temperature": 0});
    let (st, _, body) = http(&s.addr, "POST", "/v1/completions", &req.to_string());
    assert_eq!(st, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["choices"][0]["text"], greedy_by_infer(), "{v}");
    let u = &v["usage"];
    assert_eq!(
        u["total_tokens"].as_u64(),
        Some(u["prompt_tokens"].as_u64().unwrap() + u["completion_tokens"].as_u64().unwrap())
    );

    // Streamed: server-sent events ending in [DONE], the same text.
    let mut sreq = req.clone();
    sreq["stream"] = json!(true);
    let (st, head, body) = http(&s.addr, "POST", "/v1/completions", &sreq.to_string());
    assert_eq!(st, 200);
    assert!(head.to_lowercase().contains("text/event-stream"), "{head}");
    let text: String = body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| {
            serde_json::from_str::<Value>(d).unwrap()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(text, v["choices"][0]["text"]);
    assert!(body.contains("data: [DONE]"));

    // Every refusal is an OpenAI error body with the right status, and nothing is generated.
    let long = "x ".repeat(3000);
    for (path, body, status, field, want) in [
        (
            "/v1/completions",
            "{not json".to_string(),
            400,
            "message",
            "not valid JSON",
        ),
        (
            "/v1/completions",
            json!({"model": "other", "prompt": "x"}).to_string(),
            404,
            "code",
            "model_not_found",
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": long}).to_string(),
            400,
            "code",
            "context_length_exceeded",
        ),
        (
            "/v1/completions",
            json!({"model": "tiny", "prompt": "x", "max_tokens": 500}).to_string(),
            400,
            "code",
            "context_length_exceeded",
        ),
        (
            "/v1/chat/completions",
            json!({"model": "tiny", "messages": []}).to_string(),
            400,
            "param",
            "messages",
        ),
        (
            "/v1/nothing",
            "{}".to_string(),
            404,
            "type",
            "not_found_error",
        ),
        (
            "/v1/completions",
            "x".repeat(9 * 1024),
            413,
            "type",
            "invalid_request_error",
        ),
    ] {
        let (st, _, b) = http(&s.addr, "POST", path, &body);
        assert_eq!(st, status, "{path} {body:.40}: {b}");
        let e: Value = serde_json::from_str(&b).unwrap_or_else(|_| panic!("{b}"));
        assert!(
            e["error"][field]
                .as_str()
                .unwrap_or_default()
                .contains(want),
            "{path}: {e}"
        );
    }
    let (_, _, m) = http(&s.addr, "GET", "/metrics", "");
    assert!(m.contains("magnet_serve_generated_tokens_total"), "{m}");
    assert!(
        m.contains("magnet_serve_time_to_first_token_seconds"),
        "{m}"
    );
}

fn python_with_openai() -> Option<String> {
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(py);
    }
    let msg =
        "the `openai` Python package is missing (scripts/ci/install-python-deps.sh installs it)";
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

#[test]
fn the_official_openai_client_gets_chat_completions_streams_errors_and_sixteen_concurrent_answers()
{
    let Some(py) = python_with_openai() else {
        return;
    };
    let s = serve(&["--max-concurrent", "16"]);
    let out = Command::new(py)
        .arg(repo().join("node/worker/tests/openai_client_check.py"))
        .args(["--base-url", &format!("http://{}/v1", s.addr)])
        .args(["--model", "tiny", "--prompt", PROMPT])
        .args(["--max-tokens", &MAX_TOKENS.to_string()])
        .args(["--greedy", &greedy_by_infer(), "--clients", "16"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openai client checks failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    assert_eq!(v["concurrent_clients"], 16);
}
