//! Prometheus metrics of a worker (`/metrics`, text exposition format):
//! `magnet_worker_round`, `magnet_worker_local_val_loss`, `magnet_worker_merged_val_loss`,
//! `magnet_worker_bytes_sent_total`, `magnet_worker_bytes_received_total`,
//! `magnet_worker_shards_held`, `magnet_worker_rewards_umag_total`,
//! `magnet_worker_rounds_led_total`, `magnet_worker_chain_errors_total`.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::{DaemonError, Result};

/// The worker's metrics.
pub struct Metrics {
    /// Current round.
    pub round: Gauge,
    /// Validation loss of the local model after the last inner steps.
    pub local_val_loss: Gauge<f64, AtomicU64>,
    /// Validation loss of the last merged model this node produced.
    pub merged_val_loss: Gauge<f64, AtomicU64>,
    /// Δ bytes uploaded.
    pub bytes_sent: Counter,
    /// Checkpoint bytes downloaded.
    pub bytes_received: Counter,
    /// Shards in the local store.
    pub shards_held: Gauge,
    /// Rewards settled to this operator (umag).
    pub rewards: Counter,
    /// Rounds this node merged as leader.
    pub rounds_led: Counter,
    /// Chain operations that failed.
    pub chain_errors: Counter,
    registry: Registry,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Metrics")
    }
}

impl Metrics {
    /// Fresh metrics under the `magnet_worker` prefix.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("magnet_worker");
        let m = Metrics {
            round: Gauge::default(),
            local_val_loss: Gauge::default(),
            merged_val_loss: Gauge::default(),
            bytes_sent: Counter::default(),
            bytes_received: Counter::default(),
            shards_held: Gauge::default(),
            rewards: Counter::default(),
            rounds_led: Counter::default(),
            chain_errors: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("round", "Current DiLoCo round", m.round.clone());
        registry.register(
            "local_val_loss",
            "Validation loss of the local model after the last inner steps",
            m.local_val_loss.clone(),
        );
        registry.register(
            "merged_val_loss",
            "Validation loss of the last model this node merged",
            m.merged_val_loss.clone(),
        );
        registry.register(
            "bytes_sent",
            "Pseudo-gradient bytes uploaded",
            m.bytes_sent.clone(),
        );
        registry.register(
            "bytes_received",
            "Checkpoint bytes downloaded",
            m.bytes_received.clone(),
        );
        registry.register(
            "shards_held",
            "Shards in the local store",
            m.shards_held.clone(),
        );
        registry.register(
            "rewards_umag",
            "Rewards settled to this operator",
            m.rewards.clone(),
        );
        registry.register(
            "rounds_led",
            "Rounds merged as leader",
            m.rounds_led.clone(),
        );
        registry.register(
            "chain_errors",
            "Chain operations that failed",
            m.chain_errors.clone(),
        );
        Arc::new(Metrics { registry, ..m })
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

/// Serves `/metrics` on `addr` until the task is dropped.
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> Result<tokio::task::JoinHandle<()>> {
    let addr: SocketAddr = addr
        .parse()
        .map_err(|e| DaemonError::State(format!("metrics address {addr:?}: {e}")))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(DaemonError::io(format!("binding metrics on {addr}")))?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.render() }
        }),
    );
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics server stopped: {e}");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_metric() {
        let m = Metrics::new();
        m.round.set(3);
        m.bytes_sent.inc_by(100);
        let text = m.render();
        for name in [
            "magnet_worker_round 3",
            "magnet_worker_bytes_sent_total 100",
            "magnet_worker_rewards_umag_total",
            "magnet_worker_local_val_loss",
        ] {
            assert!(text.contains(name), "{name} missing in {text}");
        }
    }
}
