//! The chain through a list of RPC endpoints with failover, and serialised tx sending.
//!
//! Reads try the endpoint that answered last, then the others in order. Writes go through one
//! lock per process, sign with the current account sequence, and wait for inclusion before the
//! next (so two txs of one key never race for a sequence); a refused tx is a typed error with
//! the chain's code and log.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, ClientError, Key};
use serde::de::DeserializeOwned;
use tendermint_rpc::Client;

use crate::{DaemonError, Result};

/// How long a sent tx may take to be included.
pub const INCLUSION_TIMEOUT: Duration = Duration::from_secs(40);

/// Genesis facts every worker needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GenesisInfo {
    /// Chain id.
    pub chain_id: String,
    /// Genesis time (unix seconds): epoch 0 starts here.
    pub genesis_time: u64,
    /// Epoch length (seconds of block time).
    pub epoch_secs: u64,
}

/// Latest block facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    /// Height.
    pub height: u64,
    /// Block time (unix seconds).
    pub time: u64,
}

/// The chain, through several endpoints.
#[derive(Debug)]
pub struct Chain {
    clients: Vec<ChainClient>,
    preferred: AtomicUsize,
    fee: FeeSpec,
    send_lock: tokio::sync::Mutex<()>,
}

fn unix(t: tendermint::Time) -> u64 {
    u64::try_from(t.unix_timestamp()).unwrap_or(0)
}

impl Chain {
    /// A chain client over `urls` (at least one) paying `fee` on every tx.
    pub fn new(urls: &[String], fee: FeeSpec) -> Result<Chain> {
        if urls.is_empty() {
            return Err(DaemonError::Chain(
                "no RPC endpoints: give at least one (chain.rpc)".into(),
            ));
        }
        let clients = urls
            .iter()
            .map(|u| ChainClient::new(u))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Chain {
            clients,
            preferred: AtomicUsize::new(0),
            fee,
            send_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// A chain client over `urls` paying the fee `section` prices (ADR 0097).
    pub fn from_config(section: &crate::config::ChainSection) -> Result<Chain> {
        let fee = section.fee().map_err(DaemonError::Chain)?;
        Chain::new(&section.rpc, fee)
    }

    /// Runs `f` against each endpoint, starting with the preferred one, until one succeeds.
    async fn each<T, F, Fut>(&self, what: &str, f: F) -> Result<T>
    where
        F: Fn(ChainClient) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, ClientError>>,
    {
        let n = self.clients.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut errors = Vec::new();
        for k in 0..n {
            let i = (start + k) % n;
            match f(self.clients[i].clone()).await {
                Ok(v) => {
                    self.preferred.store(i, Ordering::Relaxed);
                    return Ok(v);
                }
                // A query the chain answered with an error is the answer, not an outage.
                Err(e @ ClientError::Query { .. }) => {
                    return Err(DaemonError::Chain(e.to_string()))
                }
                // So is a tx the chain refused at CheckTx.
                Err(ClientError::TxRejected {
                    code,
                    codespace,
                    log,
                    ..
                }) => {
                    return Err(DaemonError::TxFailed {
                        what: what.to_string(),
                        codespace,
                        code,
                        log,
                    })
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(DaemonError::Chain(format!(
            "{what}: every endpoint failed: {}",
            errors.join("; ")
        )))
    }

    /// Latest height and block time.
    pub async fn head(&self) -> Result<Head> {
        self.each("status", |c| async move {
            let s = c.status().await?;
            Ok(Head {
                height: s.sync_info.latest_block_height.value(),
                time: unix(s.sync_info.latest_block_time),
            })
        })
        .await
    }

    /// Chain id, genesis time and epoch length.
    pub async fn genesis(&self) -> Result<GenesisInfo> {
        let g: tendermint::Genesis<serde_json::Value> = self
            .each("genesis", |c| async move {
                c.http()
                    .genesis::<serde_json::Value>()
                    .await
                    .map_err(|e| ClientError::Rpc {
                        endpoint: "genesis".into(),
                        reason: e.to_string(),
                    })
            })
            .await?;
        let epoch_secs = g.app_state["epochs"]["params"]["duration_secs"]
            .as_u64()
            .unwrap_or(3600);
        Ok(GenesisInfo {
            chain_id: g.chain_id.to_string(),
            genesis_time: unix(g.genesis_time),
            epoch_secs,
        })
    }

    /// A module's JSON query (`data` is the module's text argument).
    pub async fn query<T: DeserializeOwned>(&self, path: &str, data: &str) -> Result<T> {
        self.query_at(path, data, None).await
    }

    /// A module's JSON query at a past `height` (within the node's pruning window).
    pub async fn query_at<T: DeserializeOwned>(
        &self,
        path: &str,
        data: &str,
        height: Option<u64>,
    ) -> Result<T> {
        let bytes = self
            .each(path, |c| {
                let data = data.as_bytes().to_vec();
                async move { c.query_at(path, data, height).await }
            })
            .await?;
        serde_json::from_slice(&bytes)
            .map_err(|e| DaemonError::Chain(format!("{path}: unexpected answer: {e}")))
    }

    /// Hash of the block at `height`.
    pub async fn block_hash(&self, height: u64) -> Result<[u8; 32]> {
        let r = self
            .each("block", |c| async move { c.block(Some(height)).await })
            .await?;
        let id = r.block_id.hash.as_bytes();
        id.try_into()
            .map_err(|_| DaemonError::Chain(format!("block {height} has a {}-byte hash", id.len())))
    }

    /// Block time (unix seconds) of the block at `height`.
    pub async fn block_time(&self, height: u64) -> Result<u64> {
        let r = self
            .each("block", |c| async move { c.block(Some(height)).await })
            .await?;
        Ok(unix(r.block.header.time))
    }

    /// Signs `msgs` with `key`, broadcasts, waits for inclusion; returns the inclusion height.
    pub async fn send(&self, key: &Key, what: &str, msgs: Vec<prost_types::Any>) -> Result<u64> {
        let _g = self.send_lock.lock().await;
        let msgs: Vec<cosmrs::Any> = msgs
            .into_iter()
            .map(|a| cosmrs::Any {
                type_url: a.type_url,
                value: a.value,
            })
            .collect();
        let fee = self.fee.clone();
        let r = self
            .each(what, |c| {
                let msgs = msgs.clone();
                let fee = fee.clone();
                async move {
                    let b = c.sign_and_broadcast(key, msgs, "", &fee).await?;
                    let hash = b.hash.to_string();
                    c.wait_tx(&hash, INCLUSION_TIMEOUT).await
                }
            })
            .await;
        let r = match r {
            Ok(r) => r,
            Err(DaemonError::Chain(msg)) => {
                return Err(DaemonError::Chain(format!("{what}: {msg}")));
            }
            Err(e) => return Err(e),
        };
        if r.tx_result.code.is_err() {
            return Err(DaemonError::TxFailed {
                what: what.to_string(),
                codespace: r.tx_result.codespace,
                code: r.tx_result.code.value(),
                log: r.tx_result.log,
            });
        }
        Ok(r.height.value())
    }
}
