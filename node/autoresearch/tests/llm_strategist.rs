//! The LLM strategist (cargo feature `llm`) against a real local HTTP server that speaks the
//! OpenAI chat-completions format: valid proposals are run, schema violations are refused
//! with a clear error and never run.
#![cfg(feature = "llm")]

use magnet_autoresearch::analysis;
use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::pipeline::Evaluator;
use magnet_autoresearch::run::{self, Domain, RunConfig, Tabular};
use magnet_autoresearch::split::{self, HoldoutMode};
use magnet_autoresearch::strategy::{LlmStrategist, Strategist, StrategyContext, StrategyError};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

fn data(p: &str) -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data")
    .join(p)
}

type Answer = Box<dyn Fn(&str) -> String + Send>;

/// A real HTTP/1.1 server on a loopback port answering `POST /v1/chat/completions` with
/// `answer(prompt)` as the assistant message. Returns the base URL and the prompts it saw.
fn serve(answer: Answer) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h == "\r\n" || h.is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0u8; len];
            reader.read_exact(&mut body).unwrap();
            let (status, reply) = if request_line.starts_with("POST /v1/chat/completions ") {
                let req: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let prompt = req["messages"][0]["content"].as_str().unwrap().to_string();
                let content = answer(&prompt);
                log.lock().unwrap().push(prompt);
                let reply = serde_json::json!({
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": req["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                });
                ("200 OK", reply.to_string())
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, seen)
}

/// The catalog ids the prompt offers (lines `id: description`).
fn offered(prompt: &str) -> Vec<String> {
    let after = prompt.split("(ids only):\n").nth(1).unwrap_or("");
    after
        .lines()
        .take_while(|l| !l.starts_with("Answer only JSON"))
        .filter_map(|l| l.split(':').next())
        .map(str::to_string)
        .collect()
}

fn strategist(url: String) -> LlmStrategist {
    LlmStrategist {
        base_url: url,
        model: "test-model".into(),
        api_key: Some("sk-local".into()),
    }
}

/// A research run on the penguins set (3 folds, seed 3) with the LLM strategist at `url`.
fn research_penguins(url: String, budget: usize) -> run::RunOutcome {
    let c = RunConfig {
        budget,
        folds: 3,
        seed: 3,
        ..RunConfig::default()
    };
    run::run_file(
        &Tabular,
        &data("tabular/penguins.csv"),
        Some("sex"),
        Some("species"),
        &c,
        KnowledgeBase::new(),
        &strategist(url),
        None,
    )
    .unwrap()
}

#[test]
fn valid_llm_proposals_are_the_strategies_that_run() {
    // Like a model that reads the catalog: the last three offered ideas, in a code fence.
    let (url, seen) = serve(Box::new(|prompt| {
        let ids = offered(prompt);
        let pick: Vec<serde_json::Value> = ids
            .iter()
            .rev()
            .take(3)
            .map(|i| serde_json::json!({"idea": i, "rationale": "from the test server"}))
            .collect();
        format!(
            "Here you go:\n```json\n{}\n```",
            serde_json::json!({ "strategies": pick })
        )
    }));
    let o = research_penguins(url, 16);
    let prompts = seen.lock().unwrap().clone();
    assert!(!prompts.is_empty(), "the endpoint was never asked");
    assert!(
        prompts[0].contains("cv_loss"),
        "the prompt carries the error analysis"
    );
    assert_eq!(o.strategist, "llm");
    for (v, prompt) in o.versions[1..].iter().zip(&prompts) {
        assert!(v.strategist_error.is_none(), "{:?}", v.strategist_error);
        let want: Vec<String> = offered(prompt).into_iter().rev().take(3).collect();
        let ran: Vec<String> = v
            .strategies
            .iter()
            .map(|s| s.strategy.idea.clone())
            .collect();
        assert_eq!(ran, want[..ran.len()], "v{} ran other ideas", v.version);
        assert!(v
            .strategies
            .iter()
            .all(|s| s.strategy.rationale == "from the test server"));
        assert!(v.strategies.iter().any(|s| s.trials > 0));
    }
}

#[test]
fn schema_violations_from_the_llm_are_refused_with_a_clear_error() {
    let ds = Tabular
        .load(&data("tabular/penguins.csv"), Some("sex"), Some("species"))
        .unwrap();
    let (train, _sealed) = split::holdout(ds, 0.2, 3, HoldoutMode::Stratified);
    let folds = Tabular.folds(&train.data, 3, 3);
    let ev = Evaluator::new(&train.data, &folds, 3);
    let best = run::baseline();
    let report = analysis::analyse(&train.data, &ev.evaluate(&best).unwrap());
    let kb = KnowledgeBase::new();
    let tried = BTreeSet::new();
    let family_best = BTreeMap::new();
    let ctx = StrategyContext {
        domain: "tabular",
        dataset: &train.data.hash,
        version: 1,
        report: &report,
        kb: &kb,
        tried: &tried,
        best: &best,
        family_best: &family_best,
        has_context: true,
        has_text: false,
        want: 3,
    };
    let many: Vec<serde_json::Value> = [
        "pivot_gbm",
        "pivot_extra_trees",
        "pivot_random_forest",
        "tune_current",
        "class_weights",
        "context_offsets",
        "top_k_features",
        "feature_interactions",
        "temperature_calibration",
    ]
    .iter()
    .map(|i| serde_json::json!({ "idea": i }))
    .collect();
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "not JSON",
            "I would try boosting.".into(),
            "invalid strategy proposal",
        ),
        (
            "braces the wrong way round",
            "} no proposal here {".into(),
            "invalid strategy proposal",
        ),
        (
            "wrong shape",
            r#"{"ideas":["pivot_gbm"]}"#.into(),
            "missing field `strategies`",
        ),
        (
            "idea not a string",
            r#"{"strategies":[{"idea":7}]}"#.into(),
            "invalid type",
        ),
        (
            "empty",
            r#"{"strategies":[]}"#.into(),
            "0 strategies (need 1–8)",
        ),
        (
            "too many",
            serde_json::json!({ "strategies": many }).to_string(),
            "9 strategies (need 1–8)",
        ),
        (
            "unknown idea",
            r#"{"strategies":[{"idea":"quantum_boost"}]}"#.into(),
            "unknown idea `quantum_boost`",
        ),
        (
            "not applicable",
            r#"{"strategies":[{"idea":"pivot_logistic"}]}"#.into(),
            "`pivot_logistic`: already the family",
        ),
        (
            "needs a second family",
            r#"{"strategies":[{"idea":"stacking"}]}"#.into(),
            "`stacking`: needs a second model family",
        ),
        (
            "duplicate",
            r#"{"strategies":[{"idea":"pivot_gbm"},{"idea":"pivot_gbm"}]}"#.into(),
            "`pivot_gbm` proposed twice",
        ),
    ];
    for (name, content, want) in cases {
        let reply = content.clone();
        let (url, _) = serve(Box::new(move |_| reply.clone()));
        let err = strategist(url).design(&ctx).unwrap_err();
        assert!(matches!(err, StrategyError::Invalid(_)), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: `{msg}` does not say `{want}`");
    }
    // A dead endpoint is an endpoint error, not a panic.
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/v1", l.local_addr().unwrap())
    };
    let err = strategist(dead).design(&ctx).unwrap_err();
    assert!(matches!(err, StrategyError::Endpoint(_)), "{err:?}");
}

#[test]
fn a_refused_proposal_is_recorded_and_never_run() {
    let (url, seen) = serve(Box::new(|_| {
        r#"{"strategies":[{"idea":"quantum_boost","rationale":"hallucinated"}]}"#.into()
    }));
    let o = research_penguins(url, 10);
    assert!(!seen.lock().unwrap().is_empty());
    let v1 = &o.versions[1];
    let e = v1.strategist_error.as_deref().unwrap_or("");
    assert!(e.contains("unknown idea `quantum_boost`"), "{e}");
    assert!(o.trials.iter().all(|t| t.idea != "quantum_boost"));
    assert!(
        !v1.strategies.is_empty(),
        "the rule-based strategist stood in"
    );
}
