//! `magnet-worker research --strategist llm`: the real binary asks a real OpenAI-compatible
//! HTTP endpoint (a loopback server in this test) to design each version, runs what it
//! proposes, and falls back to the rule-based strategist, saying so, when the endpoint fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

fn penguins() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data/tabular/penguins.csv")
}

fn research(out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_magnet-worker"));
    c.env("RUST_LOG", "warn")
        .env("MAGNET_LLM_API_KEY", "sk-local")
        .args(["research", "--domain", "tabular", "--data"])
        .arg(penguins())
        .args([
            "--target",
            "sex",
            "--context",
            "species",
            "--budget",
            "12",
            "--folds",
            "3",
            "--seed",
            "3",
            "--quiet",
            "--out",
        ])
        .arg(out)
        .args(extra);
    c.output().unwrap()
}

/// A loopback HTTP/1.1 server answering chat completions with the last three catalog ids the
/// prompt offers; counts the requests and checks the bearer token.
fn serve() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut line, mut len, mut auth) = (String::new(), 0usize, String::new());
            reader.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                if lower.starts_with("authorization:") {
                    auth = h.trim().to_string();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            assert_eq!(auth, "Authorization: Bearer sk-local");
            let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let prompt = req["messages"][0]["content"].as_str().unwrap();
            let ids: Vec<&str> = prompt
                .split("(ids only):\n")
                .nth(1)
                .unwrap_or("")
                .lines()
                .take_while(|l| !l.starts_with("Answer only JSON"))
                .filter_map(|l| l.split(':').next())
                .collect();
            let pick: Vec<serde_json::Value> = ids
                .iter()
                .rev()
                .take(3)
                .map(|i| serde_json::json!({"idea": i, "rationale": "chosen by the loopback LLM"}))
                .collect();
            count.fetch_add(1, Ordering::SeqCst);
            let reply = serde_json::json!({
                "choices": [{"index": 0, "message": {"role": "assistant",
                    "content": serde_json::json!({"strategies": pick}).to_string()}}],
            })
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, asked)
}

#[test]
fn research_with_the_llm_strategist_runs_what_the_endpoint_proposes() {
    let (url, asked) = serve();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = research(&out, &["--strategist", "llm", "--llm-url", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        asked.load(Ordering::SeqCst) >= 1,
        "the endpoint was never asked"
    );
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("strategist `llm`"), "{report}");
    assert!(report.contains("chosen by the loopback LLM"), "{report}");
    assert!(!report.contains("was not used"), "{report}");
}

#[test]
fn a_dead_llm_endpoint_falls_back_to_the_rule_strategist_and_says_so() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let url = format!("http://127.0.0.1:{port}/v1");
    let o = research(&out, &["--strategist", "llm", "--llm-url", &url]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("strategist's proposal was not used"),
        "{report}"
    );
    assert!(
        report.contains("rule-based strategist designed this version"),
        "{report}"
    );
}

#[test]
fn llm_strategist_options_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["--strategist", "llm"],
            "--strategist llm needs --llm-url",
        ),
        (
            vec![
                "--strategist",
                "llm",
                "--llm-url",
                "https://api.example.com/v1",
            ],
            "must be an http:// URL",
        ),
        (vec!["--strategist", "oracle"], "invalid value 'oracle'"),
    ] {
        let out = dir.path().join("never");
        let o = research(&out, &args);
        assert!(!o.status.success(), "{args:?} was accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} created the output folder");
    }
}
