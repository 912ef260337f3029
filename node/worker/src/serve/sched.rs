//! The decode loop: one thread owns the model and steps every admitted request together
//! (continuous batching).
//!
//! Each step samples one token for every active sequence, sends it to its request, and feeds
//! the continuing sequences through **one** batched forward pass
//! ([`Engine::forward_batch`]), so every ternary weight is read once per step whatever the
//! number of sequences. New requests are admitted between steps (their prompt is prefilled
//! first) while fewer than `max_concurrent` are active and their KV caches — reserved for
//! the prompt plus `max_tokens` — fit the memory budget; the rest wait in a FIFO queue. A
//! request whose client went away is dropped at the next step.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use magnet_bitnet::infer::{Engine, Sampler, Sampling, Sequence};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc::UnboundedSender;

use super::api::Finish;

/// What the decode loop sends a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The next generated token.
    Token(u32),
    /// Generation ended.
    Done(Finish),
    /// The engine failed on this request.
    Failed(String),
}

/// A request for the decode loop.
#[derive(Debug)]
pub struct Job {
    /// Prompt tokens (non-empty).
    pub prompt: Vec<u32>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Sampling knobs.
    pub sampling: Sampling,
    /// End-of-text token, if the model has one.
    pub eos: Option<u32>,
    /// Where tokens go; a closed receiver cancels the request.
    pub out: UnboundedSender<Event>,
    /// When it was queued (for time to first token).
    pub queued: Instant,
}

/// The server's Prometheus metrics.
#[derive(Debug)]
pub struct Metrics {
    /// Registry the `/metrics` endpoint encodes.
    pub registry: Registry,
    /// Requests waiting for a slot.
    pub queue_depth: Gauge,
    /// Sequences being decoded.
    pub active: Gauge,
    /// Generated tokens.
    pub generated: Counter,
    /// Prompt tokens prefilled.
    pub prompt_tokens: Counter,
    /// Requests by outcome.
    pub requests: prometheus_client::metrics::family::Family<Vec<(String, String)>, Counter>,
    /// Seconds from queueing to the first token.
    pub ttft: Histogram,
    /// Generated tokens per second over the last second of decoding (×1000, integer gauge).
    pub tokens_per_second_milli: Gauge,
    /// Payments settled and umag received.
    pub payments: Counter,
    /// umag settled for this server's requests.
    pub paid_umag: Counter,
}

impl Metrics {
    /// Registers every metric under `magnet_serve_*`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("magnet_serve");
        let m = Metrics {
            registry: Registry::default(),
            queue_depth: Gauge::default(),
            active: Gauge::default(),
            generated: Counter::default(),
            prompt_tokens: Counter::default(),
            requests: Default::default(),
            ttft: Histogram::new([0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            tokens_per_second_milli: Gauge::default(),
            payments: Counter::default(),
            paid_umag: Counter::default(),
        };
        registry.register(
            "queue_depth",
            "Requests waiting for a decode slot",
            m.queue_depth.clone(),
        );
        registry.register(
            "active_sequences",
            "Sequences being decoded",
            m.active.clone(),
        );
        registry.register("generated_tokens", "Tokens generated", m.generated.clone());
        registry.register(
            "prompt_tokens",
            "Prompt tokens prefilled",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "requests",
            "Requests by endpoint and HTTP status",
            m.requests.clone(),
        );
        registry.register(
            "time_to_first_token_seconds",
            "Seconds from queueing to the first generated token",
            m.ttft.clone(),
        );
        registry.register(
            "decode_tokens_per_second_milli",
            "Generated tokens per second over the last second of decoding, times 1000",
            m.tokens_per_second_milli.clone(),
        );
        registry.register("payments", "x402 payments settled", m.payments.clone());
        registry.register(
            "paid_umag",
            "umag settled by x402 payments",
            m.paid_umag.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

/// Limits of the decode loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most sequences decoded together.
    pub max_concurrent: usize,
    /// Bytes of KV cache all active sequences may reserve together.
    pub kv_budget: usize,
    /// Context length (prompt + generated) of one sequence.
    pub ctx: usize,
}

struct Active {
    seq: Sequence,
    logits: Vec<f32>,
    sampler: Sampler,
    generated: usize,
    reserved: usize,
    job: Job,
}

/// Runs the loop until every sender of `rx` is gone and no work is left.
pub fn run(mut engine: Engine, rx: Receiver<Job>, limits: Limits, metrics: Arc<Metrics>) {
    let per_token = engine.kv_bytes_per_token();
    let mut waiting: VecDeque<Job> = VecDeque::new();
    let mut active: Vec<Active> = Vec::new();
    let mut reserved = 0usize;
    let mut open = true;
    let mut window = 0u64;
    let mut window_start = Instant::now();
    loop {
        // Take new requests: block while idle, otherwise only what is there.
        if active.is_empty() && waiting.is_empty() {
            if !open {
                return;
            }
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(j) => waiting.push_back(j),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => open = false,
            }
        }
        while let Ok(j) = rx.try_recv() {
            waiting.push_back(j);
        }
        // Admit while slots and KV memory last (one request always fits: checked at start).
        while active.len() < limits.max_concurrent {
            let Some(front) = waiting.front() else { break };
            let need = front
                .prompt
                .len()
                .saturating_add(front.max_tokens)
                .min(limits.ctx)
                .saturating_mul(per_token);
            if !active.is_empty() && reserved.saturating_add(need) > limits.kv_budget {
                break;
            }
            let Some(job) = waiting.pop_front() else {
                break;
            };
            if job.out.is_closed() {
                continue;
            }
            let mut seq = engine.new_sequence();
            match engine.prefill(&mut seq, &job.prompt) {
                Ok(logits) => {
                    metrics.prompt_tokens.inc_by(job.prompt.len() as u64);
                    reserved += need;
                    active.push(Active {
                        seq,
                        logits,
                        sampler: Sampler::new(job.sampling),
                        generated: 0,
                        reserved: need,
                        job,
                    });
                }
                Err(e) => {
                    let _ = job.out.send(Event::Failed(e.to_string()));
                }
            }
        }
        metrics.queue_depth.set(waiting.len() as i64);
        metrics.active.set(active.len() as i64);
        if active.is_empty() {
            continue;
        }
        // Sample one token for every sequence and hand it out.
        let mut next: Vec<Option<u32>> = Vec::with_capacity(active.len());
        for a in active.iter_mut() {
            let t = a.sampler.sample(&a.logits);
            if a.generated == 0 {
                metrics.ttft.observe(a.job.queued.elapsed().as_secs_f64());
            }
            a.generated += 1;
            metrics.generated.inc();
            window += 1;
            let finish = if Some(t) == a.job.eos {
                Some(Finish::Stop)
            } else if a.generated >= a.job.max_tokens || a.seq.position() >= limits.ctx {
                Some(Finish::Length)
            } else {
                None
            };
            // The end-of-text token itself is not sent: it has no text.
            let alive = Some(t) == a.job.eos || a.job.out.send(Event::Token(t)).is_ok();
            match (alive, finish) {
                (false, _) => next.push(None),
                (true, Some(f)) => {
                    let _ = a.job.out.send(Event::Done(f));
                    next.push(None);
                }
                (true, None) => next.push(Some(t)),
            }
        }
        // Retire finished and cancelled sequences.
        let mut keep = Vec::with_capacity(active.len());
        let mut tokens = Vec::with_capacity(active.len());
        for (a, t) in active.drain(..).zip(next) {
            match t {
                Some(t) => {
                    keep.push(a);
                    tokens.push(t);
                }
                None => reserved -= a.reserved,
            }
        }
        active = keep;
        if active.is_empty() {
            continue;
        }
        // One batched forward pass for every continuing sequence.
        let mut seqs: Vec<&mut Sequence> = active.iter_mut().map(|a| &mut a.seq).collect();
        match engine.forward_batch(&mut seqs, &tokens) {
            Ok(logits) => {
                for (a, l) in active.iter_mut().zip(logits) {
                    a.logits = l;
                }
            }
            Err(e) => {
                for a in active.drain(..) {
                    let _ = a.job.out.send(Event::Failed(e.to_string()));
                }
                reserved = 0;
            }
        }
        let secs = window_start.elapsed().as_secs_f64();
        if secs >= 1.0 {
            let n = std::mem::take(&mut window);
            metrics
                .tokens_per_second_milli
                .set((n as f64 / secs * 1000.0) as i64);
            window_start = Instant::now();
        }
    }
}
