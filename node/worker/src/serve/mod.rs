//! `magnet-worker serve`: an OpenAI-compatible HTTP server for a ternary model, with
//! continuous batching and optional x402 payments settled on the chain (docs/serving.md).
//!
//! * `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (with
//!   `stream: true` as server-sent events ending in `data: [DONE]`), OpenAI error bodies;
//! * `GET /health`, `GET /metrics` (Prometheus);
//! * one decode thread steps every request together ([`sched`]);
//! * with `--price-per-token`, requests are gated by x402 ([`pay`]).

pub mod api;
pub mod head;
pub mod pay;
pub mod sched;
pub mod text;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use magnet_bitnet::gguf::GgufFile;
use magnet_bitnet::infer::{gguf_tokenizer, Engine, Sampling};
use magnet_bitnet::tokenizer::Tokenizer;
use magnet_client::x402;
use serde_json::{json, Value};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use api::{ApiError, Finish, GenRequestBody, Prompt, Usage};
use sched::{Event, Job, Limits, Metrics};
use text::{Template, TextStream};

/// `serve` arguments.
#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  # A free local server on a GGUF exported by `magnet-worker export`:
  magnet-worker serve --model runs/small/model.gguf --listen 127.0.0.1:8080
  curl -s localhost:8080/v1/completions -H 'content-type: application/json' \\
       -d '{\"model\":\"model\",\"prompt\":\"In the beginning\",\"max_tokens\":16}'

  # Paid: job 1's model, 2 umag per token, payments to this worker's operator account,
  # settled on the chain the worker home points at (clients pay with `magnet-worker pay`):
  magnet-worker serve --model model.gguf --job 1 --home ~/.magnet-worker --price-per-token 2

Any OpenAI client works: point its base URL at http://HOST:PORT/v1.")]
pub struct ServeArgs {
    /// The model: a GGUF file written by `magnet-worker export --format gguf`. Without
    /// it, --job and --home serve the job's lineage head as the chain records it, read from
    /// the worker's store or the storage tier and checked against its hash.
    #[arg(long, value_name = "FILE.gguf", required_unless_present = "job")]
    model: Option<PathBuf>,
    /// The training job whose model this is: payments name it, and the chain splits them
    /// between that job's lineage holders. Needed with --price-per-token.
    #[arg(long, value_name = "N")]
    job: Option<u64>,
    /// Worker home (from `magnet-worker init`): its operator key receives the server's share
    /// and its config names the chain's RPC. Needed with --price-per-token.
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Chain RPC to settle payments through (default: the home config's first `chain.rpc`).
    #[arg(long, value_name = "URL")]
    node: Option<String>,
    /// Address to listen on (port 0 picks a free port; the line `listening on http://…` on
    /// stdout says which).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: SocketAddr,
    /// Decode threads (default: every core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Most requests decoded together; more wait in a queue.
    #[arg(long, default_value_t = 16, value_name = "N")]
    max_concurrent: usize,
    /// Most requests queued or running before new ones get 503.
    #[arg(long, default_value_t = 256, value_name = "N")]
    max_queue: usize,
    /// Context length per request, prompt plus generated tokens (default: the model's).
    #[arg(long, value_name = "TOKENS")]
    ctx: Option<usize>,
    /// Memory for KV caches of all running requests, in MiB (each reserves its prompt plus
    /// `max_tokens` when admitted).
    #[arg(long, default_value_t = 1024, value_name = "MIB")]
    kv_budget_mib: usize,
    /// Price of each token (prompt + `max_tokens`) in umag; 0 serves for free.
    #[arg(long, default_value_t = 0, value_name = "UMAG")]
    price_per_token: u128,
    /// Seconds to wait for a payment to land in a block.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    settle_timeout_secs: u64,
    /// List this server on chain (`MsgAdvertiseService`, signed by the home's node key) as
    /// serving --job at --price-per-token, at URL (default: `http://<the bound address>/v1`);
    /// withdrawn on shutdown. `magnetd query registry services` shows the listings.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    advertise: Option<String>,
    /// Largest request body in KiB.
    #[arg(long, default_value_t = 256, value_name = "KIB")]
    max_body_kib: usize,
    /// The model id clients name (default: the file name without `.gguf`).
    #[arg(long, value_name = "ID")]
    model_id: Option<String>,
}

/// What every handler shares.
struct AppState {
    model_id: String,
    tokenizer: Tokenizer,
    eos: u32,
    ctx: usize,
    jobs: std::sync::mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    gate: Option<pay::Gate>,
    in_flight: AtomicUsize,
    max_queue: usize,
    created: u64,
    job: Option<u64>,
    price_per_token: u128,
}

/// Runs the server until SIGINT or SIGTERM, then lets running requests finish.
pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if a.max_concurrent == 0 || a.max_queue == 0 {
        bail!("--max-concurrent and --max-queue must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (g, source) = match (&a.model, a.job, &a.home) {
        (Some(m), _, _) => (
            GgufFile::open(m).with_context(|| {
                format!(
                    "reading {}; export one with `magnet-worker export --format gguf`",
                    m.display()
                )
            })?,
            m.display().to_string(),
        ),
        (None, Some(job), Some(home)) => rt.block_on(head::job_model(home, job))?,
        (None, _, None) => bail!("--job without --model needs --home: the worker home whose store and chain hold the job's model"),
        (None, None, _) => bail!("pass --model FILE.gguf, or --job N --home DIR"),
    };
    let template = Template::from_gguf(g.get("tokenizer.chat_template").and_then(|v| v.as_str()));
    if let Template::Foreign(t) = &template {
        tracing::warn!(template = %t.chars().take(80).collect::<String>(), "the model's chat template is not MAGNET's; chat requests use the plain `role: content` template");
    }
    let tokenizer =
        gguf_tokenizer(&g).with_context(|| format!("{source} carries no usable tokenizer"))?;
    let engine = Engine::from_gguf(&g, threads).context("loading the model")?;
    drop(g);
    let max_ctx = engine.config().max_seq_len;
    let ctx = a.ctx.unwrap_or(max_ctx);
    if ctx < 2 || ctx > max_ctx {
        bail!("--ctx {ctx}: must be between 2 and the model's context, {max_ctx}");
    }
    let budget = a.kv_budget_mib.saturating_mul(1 << 20);
    let full = ctx.saturating_mul(engine.kv_bytes_per_token());
    if budget < full {
        bail!(
            "--kv-budget-mib {}: one full context needs {} MiB of KV cache; raise it or lower --ctx",
            a.kv_budget_mib,
            full.div_ceil(1 << 20)
        );
    }
    let model_id = a
        .model_id
        .clone()
        .unwrap_or_else(|| match (&a.model, a.job) {
            (Some(m), _) => m
                .file_stem()
                .map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            (None, job) => format!("magnet-job-{}", job.unwrap_or_default()),
        });
    let gate = if a.price_per_token > 0 {
        Some(rt.block_on(gate(&a))?)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new());
    let (tx, rx) = std::sync::mpsc::channel();
    let limits = Limits {
        max_concurrent: a.max_concurrent,
        kv_budget: budget,
        ctx,
    };
    let m = metrics.clone();
    let decode = std::thread::Builder::new()
        .name("decode".into())
        .spawn(move || sched::run(engine, rx, limits, m))?;
    let state = Arc::new(AppState {
        model_id: model_id.clone(),
        eos: tokenizer.eos_id(),
        tokenizer,
        ctx,
        jobs: tx,
        metrics,
        gate,
        in_flight: AtomicUsize::new(0),
        max_queue: a.max_queue,
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        job: a.job,
        price_per_token: a.price_per_token,
    });
    let app = router(state.clone(), a.max_body_kib.saturating_mul(1024));
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen)
            .await
            .with_context(|| format!("binding {}; is another server on that port?", a.listen))?;
        let addr = listener.local_addr()?;
        let listing = match &a.advertise {
            Some(url) => {
                let url = if url.is_empty() {
                    format!("http://{addr}/v1")
                } else {
                    url.clone()
                };
                Some(advertise(&a, &url, ctx, true).await?)
            }
            None => None,
        };
        println!("listening on http://{addr}");
        eprintln!(
            "serving {model_id} from {source} (ctx {ctx}, {threads} threads, up to {} together, {})",
            a.max_concurrent,
            if a.price_per_token > 0 {
                format!("{} umag per token via x402", a.price_per_token)
            } else {
                "free".into()
            }
        );
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown())
            .await
            .context("serving");
        if let Some(url) = listing {
            if let Err(e) = advertise(&a, &url, ctx, false).await {
                eprintln!("warning: withdrawing the listing failed: {e:#}");
            }
        }
        served
    })?;
    // Dropping the last sender ends the decode loop once its requests are done.
    drop(state);
    decode
        .join()
        .map_err(|_| anyhow::anyhow!("the decode thread panicked"))?;
    eprintln!("stopped");
    Ok(())
}

/// The chain RPC: --node, else the first `chain.rpc` of the home's config.
fn rpc_url(a: &ServeArgs, home: &std::path::Path) -> anyhow::Result<String> {
    match &a.node {
        Some(n) => Ok(n.clone()),
        None => magnet_daemon::Config::load(home)?
            .chain
            .rpc
            .first()
            .cloned()
            .context("the home config names no chain.rpc; pass --node URL"),
    }
}

async fn gate(a: &ServeArgs) -> anyhow::Result<pay::Gate> {
    let (Some(job), Some(home)) = (a.job, a.home.as_ref()) else {
        bail!("--price-per-token needs --job N (whose lineage is paid) and --home DIR (whose operator is paid)");
    };
    let keys = magnet_daemon::keys::WorkerKeys::load(home)?;
    let rpc = rpc_url(a, home)?;
    let chain = magnet_client::ChainClient::new(&rpc)?;
    let status = chain
        .status()
        .await
        .with_context(|| format!("reaching the chain at {rpc}"))?;
    Ok(pay::Gate::new(
        a.price_per_token,
        job,
        keys.operator.address(),
        status.node_info.network.to_string(),
        chain,
        Duration::from_secs(a.settle_timeout_secs),
    ))
}

/// Lists (`list`) or withdraws this server's on-chain advertisement for --job, signed by the
/// home's node key; returns the URL listed.
async fn advertise(a: &ServeArgs, url: &str, ctx: usize, list: bool) -> anyhow::Result<String> {
    let (Some(job), Some(home)) = (a.job, a.home.as_ref()) else {
        bail!("--advertise needs --job N and --home DIR (whose node key signs the listing)");
    };
    let keys = magnet_daemon::keys::WorkerKeys::load(home)?;
    let cfg = magnet_daemon::Config::load(home)?;
    let rpc = rpc_url(a, home)?;
    let fee = cfg.chain.fee().map_err(|e| anyhow::anyhow!(e))?;
    let chain = magnet_client::ChainClient::new(&rpc)?;
    let node = keys.node.address();
    let msg = if list {
        magnet_client::msgs::advertise_service(&node, job, url, a.price_per_token, ctx as u64)
    } else {
        magnet_client::msgs::withdraw_service(&node, job)
    };
    let out = chain
        .broadcast_and_wait(&keys.node, vec![msg], "", &fee, Duration::from_secs(30))
        .await
        .with_context(|| {
            if list {
                format!("advertising {url} for job {job} on chain")
            } else {
                format!("withdrawing the listing of job {job}")
            }
        })?;
    eprintln!(
        "{} job {job} at {url} on chain (tx {})",
        if list { "listed" } else { "withdrew" },
        out.hash
    );
    Ok(url.to_string())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    eprintln!("shutting down: finishing running requests");
}

fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat))
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError {
                status: StatusCode::NOT_FOUND,
                message: "no such endpoint; this server has /v1/models, /v1/completions, \
                          /v1/chat/completions, /health and /metrics"
                    .into(),
                kind: "not_found_error",
                param: None,
                code: None,
            }
        })
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

async fn metrics(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
}

async fn models(State(s): State<Arc<AppState>>) -> impl IntoResponse {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": s.model_id,
            "object": "model",
            "created": s.created,
            "owned_by": "magnet",
            "meta": {
                "job": s.job,
                "context_length": s.ctx,
                "price_per_token_umag": s.price_per_token.to_string(),
            },
        }],
    }))
}

async fn completions(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(s, "/v1/completions", headers, body, api::parse_completion).await
}

async fn chat(
    State(s): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    handle(s, "/v1/chat/completions", headers, body, api::parse_chat).await
}

/// Counts a request in flight for as long as it lives.
struct InFlight(Arc<AppState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    s: Arc<AppState>,
    endpoint: &'static str,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8]) -> Result<GenRequestBody, ApiError>,
) -> Response {
    let r = match prepare(&s, endpoint, &headers, body, parse).await {
        Ok(r) => r,
        Err(resp) => {
            count(&s, endpoint, resp.status());
            return resp;
        }
    };
    count(&s, endpoint, StatusCode::OK);
    r
}

fn count(s: &AppState, endpoint: &str, status: StatusCode) {
    s.metrics
        .requests
        .get_or_create(&vec![
            ("endpoint".to_string(), endpoint.to_string()),
            ("status".to_string(), status.as_u16().to_string()),
        ])
        .inc();
}

/// Everything up to the answer: checks, pricing, payment, queueing.
async fn prepare(
    s: &Arc<AppState>,
    endpoint: &'static str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    parse: fn(&[u8]) -> Result<GenRequestBody, ApiError>,
) -> Result<Response, Response> {
    let body = body.map_err(|e| {
        ApiError {
            status: e.status(),
            message: format!("{}; the limit is set by --max-body-kib", e.body_text()),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }
        .into_response()
    })?;
    let req = parse(&body).map_err(IntoResponse::into_response)?;
    if req.model != s.model_id {
        return Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "the model `{}` does not exist here; this server serves `{}`",
                req.model, s.model_id
            ),
            kind: "invalid_request_error",
            param: Some("model".into()),
            code: Some("model_not_found"),
        }
        .into_response());
    }
    let chat = matches!(req.prompt, Prompt::Chat(_));
    let (text, mut stops) = match &req.prompt {
        Prompt::Text(t) => (t.clone(), vec![]),
        Prompt::Chat(m) => (text::render_chat(m), text::chat_stops()),
    };
    stops.extend(req.params.stop.iter().cloned());
    let prompt = s.tokenizer.encode(&text).map_err(|e| {
        ApiError::invalid("prompt", format!("cannot tokenize: {e}")).into_response()
    })?;
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt has no tokens").into_response());
    }
    let room = s.ctx.saturating_sub(prompt.len());
    let max_tokens = req.params.max_tokens.unwrap_or(room);
    if room == 0 || max_tokens > room {
        return Err(ApiError::invalid(
            if chat { "messages" } else { "prompt" },
            format!(
                "this model's context is {} tokens, but the request needs {} ({} in the prompt, \
                 {max_tokens} to generate); shorten the prompt or lower max_tokens",
                s.ctx,
                prompt.len() + max_tokens,
                prompt.len()
            ),
        )
        .code("context_length_exceeded")
        .into_response());
    }
    if s.in_flight.fetch_add(1, Ordering::SeqCst) >= s.max_queue {
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "the server has {} requests queued or running; retry shortly",
                s.max_queue
            ),
            kind: "server_error",
            param: None,
            code: Some("server_overloaded"),
        }
        .into_response());
    }
    let guard = InFlight(s.clone());
    // Payment, if the server charges: nothing is generated before it settled.
    let mut receipt = None;
    if let Some(g) = &s.gate {
        let amount = g
            .price(prompt.len(), max_tokens)
            .map_err(IntoResponse::into_response)?;
        let requirement = g.requirement(amount, prompt.len(), max_tokens);
        let required = |error: &str, status: StatusCode| {
            let pr = g.required(error, endpoint, requirement.clone());
            let mut resp = (
                status,
                axum::Json(serde_json::to_value(&pr).unwrap_or_default()),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(&x402::encode_header(&pr)) {
                resp.headers_mut().insert(x402::HEADER_PAYMENT_REQUIRED, v);
            }
            resp
        };
        let Some(h) = headers.get(x402::HEADER_PAYMENT_SIGNATURE) else {
            return Err(required("payment required", StatusCode::PAYMENT_REQUIRED));
        };
        let h = h.to_str().unwrap_or_default();
        match g.settle(h, amount).await {
            Ok(settled) => {
                s.metrics.payments.inc();
                s.metrics
                    .paid_umag
                    .inc_by(u64::try_from(settled.amount).unwrap_or(u64::MAX));
                receipt = Some(settled.header);
            }
            Err(r) => {
                tracing::info!(reason = %r.reason, "x402 payment refused");
                return Err(required(&r.reason, r.status));
            }
        }
    }
    let (tx, rx) = unbounded_channel();
    let sampling = Sampling {
        temperature: req.params.temperature,
        top_k: 0,
        top_p: req.params.top_p,
        seed: req.params.seed.unwrap_or_else(rand::random),
    };
    let job = Job {
        prompt: prompt.clone(),
        max_tokens,
        sampling,
        eos: Some(s.eos),
        out: tx,
        queued: Instant::now(),
    };
    if s.jobs.send(job).is_err() {
        return Err(ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "the server is shutting down".into(),
            kind: "server_error",
            param: None,
            code: None,
        }
        .into_response());
    }
    let meta = Meta {
        id: format!(
            "{}-{:016x}",
            if chat { "chatcmpl" } else { "cmpl" },
            rand::random::<u64>()
        ),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        model: s.model_id.clone(),
        chat,
        prompt_tokens: prompt.len(),
        include_usage: req.params.include_usage,
    };
    let mut resp = if req.params.stream {
        stream(s.clone(), meta, rx, TextStream::new(stops), guard)
    } else {
        collect(s, meta, rx, TextStream::new(stops), guard).await
    };
    if let Some(h) = receipt.and_then(|h| HeaderValue::from_str(&h).ok()) {
        resp.headers_mut().insert(x402::HEADER_PAYMENT_RESPONSE, h);
    }
    Ok(resp)
}

/// What an answer says about itself.
#[derive(Clone)]
struct Meta {
    id: String,
    created: u64,
    model: String,
    chat: bool,
    prompt_tokens: usize,
    include_usage: bool,
}

impl Meta {
    fn full(&self, text: String, finish: Finish, usage: Usage) -> Value {
        let choice = if self.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text},
                   "logprobs": null, "finish_reason": finish.as_str()})
        } else {
            json!({"index": 0, "text": text, "logprobs": null, "finish_reason": finish.as_str()})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage.json(),
        })
    }

    fn chunk(&self, text: Option<String>, first: bool, finish: Option<Finish>) -> Value {
        let finish = finish.map(Finish::as_str);
        let choice = if self.chat {
            let mut delta = serde_json::Map::new();
            if first {
                delta.insert("role".into(), "assistant".into());
            }
            if let Some(t) = text {
                delta.insert("content".into(), t.into());
            }
            json!({"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text.unwrap_or_default(), "logprobs": null,
                   "finish_reason": finish})
        };
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        })
    }

    fn usage_chunk(&self, usage: Usage) -> Value {
        json!({
            "id": self.id,
            "object": if self.chat { "chat.completion.chunk" } else { "text_completion" },
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage.json(),
        })
    }
}

/// The next piece of an answer.
enum Step {
    Text(String),
    End(Finish),
    Failed(String),
}

/// Reads the decode loop's events and turns them into text pieces, ending with one `End` or
/// `Failed`; `None` after that.
struct Pieces {
    rx: Option<UnboundedReceiver<Event>>,
    text: TextStream,
    queue: std::collections::VecDeque<Step>,
    done: bool,
}

impl Pieces {
    fn new(rx: UnboundedReceiver<Event>, text: TextStream) -> Pieces {
        Pieces {
            rx: Some(rx),
            text,
            queue: Default::default(),
            done: false,
        }
    }

    /// Generated tokens so far.
    fn tokens(&self) -> usize {
        self.text.tokens()
    }

    fn end(&mut self, text: String, last: Step) {
        if !text.is_empty() {
            self.queue.push_back(Step::Text(text));
        }
        self.queue.push_back(last);
        self.done = true;
        // Dropping the receiver cancels the request in the decode loop.
        self.rx = None;
    }

    async fn next(&mut self, tok: &Tokenizer) -> Option<Step> {
        let decode = |ids: &[u32]| tok.decode(ids);
        loop {
            if let Some(s) = self.queue.pop_front() {
                return Some(s);
            }
            if self.done {
                return None;
            }
            let ev = match self.rx.as_mut() {
                Some(rx) => rx.recv().await,
                None => None,
            };
            match ev {
                Some(Event::Token(t)) => match self.text.push(t, decode) {
                    Ok(p) if p.stop => self.end(p.text, Step::End(Finish::Stop)),
                    Ok(p) if !p.text.is_empty() => self.queue.push_back(Step::Text(p.text)),
                    Ok(_) => {}
                    Err(e) => self.end(String::new(), Step::Failed(e.to_string())),
                },
                Some(Event::Done(f)) => {
                    let rest = self.text.finish(decode).map(|p| p.text).unwrap_or_default();
                    self.end(rest, Step::End(f));
                }
                Some(Event::Failed(e)) => self.end(String::new(), Step::Failed(e)),
                None => self.end(
                    String::new(),
                    Step::Failed("the decode loop stopped".into()),
                ),
            }
        }
    }
}

fn internal(message: String) -> Response {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
        kind: "server_error",
        param: None,
        code: None,
    }
    .into_response()
}

/// A whole (non-streamed) answer.
async fn collect(
    s: &Arc<AppState>,
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    text: TextStream,
    _guard: InFlight,
) -> Response {
    let mut p = Pieces::new(rx, text);
    let mut out = String::new();
    while let Some(step) = p.next(&s.tokenizer).await {
        match step {
            Step::Text(t) => out.push_str(&t),
            Step::End(f) => {
                let usage = Usage {
                    prompt: meta.prompt_tokens,
                    completion: p.tokens(),
                };
                return axum::Json(meta.full(out, f, usage)).into_response();
            }
            Step::Failed(e) => return internal(format!("generation failed: {e}")),
        }
    }
    internal("generation ended without a reason".into())
}

/// A streamed answer: server-sent events, one chunk per piece of text, a last chunk with the
/// finish reason (and one with `usage` if asked), then `data: [DONE]`.
fn stream(
    s: Arc<AppState>,
    meta: Meta,
    rx: UnboundedReceiver<Event>,
    text: TextStream,
    guard: InFlight,
) -> Response {
    let (tx, out) = unbounded_channel::<Result<SseEvent, std::convert::Infallible>>();
    tokio::spawn(async move {
        let _guard = guard;
        let mut p = Pieces::new(rx, text);
        let send = |v: Value| tx.send(Ok(SseEvent::default().data(v.to_string()))).is_ok();
        let mut first = true;
        while let Some(step) = p.next(&s.tokenizer).await {
            let alive = match step {
                Step::Text(t) => {
                    let ok = send(meta.chunk(Some(t), first, None));
                    first = false;
                    ok
                }
                Step::End(f) => {
                    let mut ok = send(meta.chunk(None, first, Some(f)));
                    if meta.include_usage {
                        ok &= send(meta.usage_chunk(Usage {
                            prompt: meta.prompt_tokens,
                            completion: p.tokens(),
                        }));
                    }
                    ok && tx.send(Ok(SseEvent::default().data("[DONE]"))).is_ok()
                }
                Step::Failed(e) => {
                    let body = ApiError {
                        status: StatusCode::INTERNAL_SERVER_ERROR,
                        message: format!("generation failed: {e}"),
                        kind: "server_error",
                        param: None,
                        code: None,
                    }
                    .body();
                    send(body)
                }
            };
            // The client went away: dropping `p` cancels the request.
            if !alive {
                break;
            }
        }
    });
    Sse::new(tokio_stream::wrappers::UnboundedReceiverStream::new(out)).into_response()
}
