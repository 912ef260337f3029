//! Prometheus metrics (`/metrics` in the text exposition format).
//!
//! `magnet_height`, `magnet_block_txs`, `magnet_txs_total`, `magnet_mempool_size`,
//! `magnet_block_seconds` (histogram of block execution time). In `--abci-only` mode the same
//! gauges are fed from the ABCI calls (mempool size is then CometBFT's to report).

use prometheus_client::metrics::{counter::Counter, gauge::Gauge, histogram::Histogram};
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The node's metrics.
pub struct Metrics {
    /// Last committed height.
    pub height: Gauge,
    /// Txs in the last block.
    pub block_txs: Gauge,
    /// Txs committed since start.
    pub txs_total: Counter,
    /// Txs waiting in the mempool.
    pub mempool_size: Gauge,
    /// Seconds to execute and commit a block.
    pub block_seconds: Histogram,
    registry: Registry,
}

impl Metrics {
    /// Fresh metrics, registered under the `magnet` prefix.
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("magnet");
        let height = Gauge::default();
        let block_txs = Gauge::default();
        let txs_total = Counter::default();
        let mempool_size = Gauge::default();
        let block_seconds =
            Histogram::new([0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        registry.register("height", "Last committed block height", height.clone());
        registry.register(
            "block_txs",
            "Transactions in the last block",
            block_txs.clone(),
        );
        registry.register(
            "txs",
            "Transactions committed since start",
            txs_total.clone(),
        );
        registry.register(
            "mempool_size",
            "Transactions waiting in the mempool",
            mempool_size.clone(),
        );
        registry.register(
            "block_seconds",
            "Seconds to execute and commit one block",
            block_seconds.clone(),
        );
        Arc::new(Metrics {
            height,
            block_txs,
            txs_total,
            mempool_size,
            block_seconds,
            registry,
        })
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serve `/metrics` on `addr` until the runtime stops.
pub async fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    use anyhow::Context;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move { m.render() }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics server to {addr}"))?;
    tracing::info!(%addr, "prometheus metrics at /metrics");
    axum::serve(listener, app).await.context("metrics server")?;
    Ok(())
}
