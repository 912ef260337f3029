//! `magnetd start --abci-only`: serve the app on the ABCI socket for an external CometBFT
//! v0.38 node (`proxy_app` in its `config.toml`).
//!
//! CometBFT opens four connections (consensus, mempool, query, snapshot); the server gives
//! each a thread and a clone of the app, which shares one state behind a lock. The framing is
//! CometBFT's: each message a protobuf `Request`/`Response` preceded by its length as an
//! unsigned varint. [`Metered`] wraps the app to feed the Prometheus gauges.

use crate::metrics::Metrics;
use std::sync::Arc;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::*;

/// An app wrapper that records height, txs and block time in [`Metrics`].
#[derive(Clone)]
pub struct Metered<A> {
    inner: A,
    metrics: Arc<Metrics>,
    started: Arc<std::sync::Mutex<Option<std::time::Instant>>>,
}

impl<A> Metered<A> {
    /// Wrap `inner`.
    pub fn new(inner: A, metrics: Arc<Metrics>) -> Self {
        Metered {
            inner,
            metrics,
            started: Arc::new(std::sync::Mutex::new(None)),
        }
    }
}

impl<A: Application> Application for Metered<A> {
    fn echo(&self, r: RequestEcho) -> ResponseEcho {
        self.inner.echo(r)
    }
    fn info(&self, r: RequestInfo) -> ResponseInfo {
        let resp = self.inner.info(r);
        self.metrics.height.set(resp.last_block_height);
        resp
    }
    fn init_chain(&self, r: RequestInitChain) -> ResponseInitChain {
        self.inner.init_chain(r)
    }
    fn query(&self, r: RequestQuery) -> ResponseQuery {
        self.inner.query(r)
    }
    fn check_tx(&self, r: RequestCheckTx) -> ResponseCheckTx {
        self.inner.check_tx(r)
    }
    fn flush(&self) -> ResponseFlush {
        self.inner.flush()
    }
    fn commit(&self) -> ResponseCommit {
        let resp = self.inner.commit();
        if let Ok(mut s) = self.started.lock() {
            if let Some(t) = s.take() {
                self.metrics
                    .block_seconds
                    .observe(t.elapsed().as_secs_f64());
            }
        }
        resp
    }
    fn list_snapshots(&self) -> ResponseListSnapshots {
        self.inner.list_snapshots()
    }
    fn offer_snapshot(&self, r: RequestOfferSnapshot) -> ResponseOfferSnapshot {
        self.inner.offer_snapshot(r)
    }
    fn load_snapshot_chunk(&self, r: RequestLoadSnapshotChunk) -> ResponseLoadSnapshotChunk {
        self.inner.load_snapshot_chunk(r)
    }
    fn apply_snapshot_chunk(&self, r: RequestApplySnapshotChunk) -> ResponseApplySnapshotChunk {
        self.inner.apply_snapshot_chunk(r)
    }
    fn prepare_proposal(&self, r: RequestPrepareProposal) -> ResponsePrepareProposal {
        self.inner.prepare_proposal(r)
    }
    fn process_proposal(&self, r: RequestProcessProposal) -> ResponseProcessProposal {
        self.inner.process_proposal(r)
    }
    fn extend_vote(&self, r: RequestExtendVote) -> ResponseExtendVote {
        self.inner.extend_vote(r)
    }
    fn verify_vote_extension(&self, r: RequestVerifyVoteExtension) -> ResponseVerifyVoteExtension {
        self.inner.verify_vote_extension(r)
    }
    fn finalize_block(&self, r: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        if let Ok(mut s) = self.started.lock() {
            *s = Some(std::time::Instant::now());
        }
        let height = r.height;
        let txs = r.txs.len();
        let resp = self.inner.finalize_block(r);
        self.metrics.height.set(height);
        self.metrics.block_txs.set(txs as i64);
        self.metrics.txs_total.inc_by(txs as u64);
        resp
    }
}

/// Serve `app` on `addr` (`tcp://host:port` or `host:port`); blocks forever.
pub fn serve<A: Application>(addr: &str, app: A) -> anyhow::Result<()> {
    use anyhow::Context;
    let bind = crate::home::strip_tcp(addr);
    let server = tendermint_abci::ServerBuilder::default()
        .bind(bind, app)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("binding the ABCI server to {bind}"))?;
    tracing::info!(addr = %server.local_addr(), "ABCI server ready for CometBFT");
    server
        .listen()
        .map_err(|e| anyhow::anyhow!("ABCI server stopped: {e}"))
}
