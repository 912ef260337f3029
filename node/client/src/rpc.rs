//! [`ChainClient`]: queries and broadcasts over CometBFT JSON-RPC.
//!
//! Works against `magnetd start` (embedded node) and against a CometBFT v0.38 node in front
//! of `magnetd start --abci-only`: both speak the same RPC. Queries use `abci_query` with the
//! standard Cosmos gRPC paths, so they return what any Cosmos wallet would see.

use crate::tx::{self, FeeSpec, SignerData};
use crate::{ClientError, Key};
use cosmrs::proto::cosmos::auth::v1beta1::{
    BaseAccount, QueryAccountRequest, QueryAccountResponse,
};
use cosmrs::proto::cosmos::bank::v1beta1::{QueryAllBalancesRequest, QueryAllBalancesResponse};
use magnet_core::{Address, Coins};
use prost::Message;
use std::time::Duration;
use tendermint_rpc::{endpoint, Client, HttpClient};

/// ABCI query path of an account.
pub const PATH_ACCOUNT: &str = "/cosmos.auth.v1beta1.Query/Account";
/// ABCI query path of all balances of an account.
pub const PATH_ALL_BALANCES: &str = "/cosmos.bank.v1beta1.Query/AllBalances";

/// A client of one node.
#[derive(Clone, Debug)]
pub struct ChainClient {
    url: String,
    http: HttpClient,
}

/// Account number and sequence of an on-chain account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AccountInfo {
    /// Account number, assigned when the account first appears.
    pub account_number: u64,
    /// Next expected sequence.
    pub sequence: u64,
}

impl ChainClient {
    /// A client of the node at `url` (e.g. `http://127.0.0.1:26657`).
    pub fn new(url: &str) -> Result<ChainClient, ClientError> {
        let rpc_err = |e: String| ClientError::Rpc {
            endpoint: url.to_string(),
            reason: e,
        };
        let parsed: tendermint_rpc::HttpClientUrl = url
            .parse()
            .map_err(|e: tendermint_rpc::Error| rpc_err(e.to_string()))?;
        let http = HttpClient::builder(parsed)
            .compat_mode(tendermint_rpc::client::CompatMode::V0_38)
            .build()
            .map_err(|e| rpc_err(e.to_string()))?;
        Ok(ChainClient {
            url: url.to_string(),
            http,
        })
    }

    /// The underlying `tendermint-rpc` client.
    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    fn err(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Rpc {
            endpoint: self.url.clone(),
            reason: e.to_string(),
        }
    }

    /// Node status (chain id, latest height, app hash, validator).
    pub async fn status(&self) -> Result<endpoint::status::Response, ClientError> {
        self.http.status().await.map_err(|e| self.err(e))
    }

    /// Raw ABCI query; errors on a non-zero code.
    pub async fn query(&self, path: &str, data: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let r = self
            .http
            .abci_query(Some(path.to_string()), data, None, false)
            .await
            .map_err(|e| self.err(e))?;
        if r.code.is_err() {
            return Err(ClientError::Query {
                path: path.to_string(),
                code: r.code.value(),
                log: r.log,
            });
        }
        Ok(r.value)
    }

    /// Account number and sequence of `addr`, or `None` if it has never been seen on chain.
    pub async fn account(&self, addr: &Address) -> Result<Option<AccountInfo>, ClientError> {
        let req = QueryAccountRequest {
            address: addr.to_bech32(),
        };
        let bytes = match self.query(PATH_ACCOUNT, req.encode_to_vec()).await {
            Ok(b) => b,
            // Cosmos SDK answers an unknown account with a NotFound error; treat any error
            // whose log says "not found" as absence.
            Err(ClientError::Query { log, .. }) if log.to_lowercase().contains("not found") => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let resp =
            QueryAccountResponse::decode(bytes.as_slice()).map_err(|e| ClientError::Format {
                what: "QueryAccountResponse".into(),
                reason: e.to_string(),
            })?;
        let Some(any) = resp.account else {
            return Ok(None);
        };
        let base = BaseAccount::decode(any.value.as_slice()).map_err(|e| ClientError::Format {
            what: format!("account ({})", any.type_url),
            reason: e.to_string(),
        })?;
        Ok(Some(AccountInfo {
            account_number: base.account_number,
            sequence: base.sequence,
        }))
    }

    /// All balances of `addr`.
    pub async fn balances(&self, addr: &Address) -> Result<Coins, ClientError> {
        let req = QueryAllBalancesRequest {
            address: addr.to_bech32(),
            pagination: None,
            resolve_denom: false,
        };
        let bytes = self.query(PATH_ALL_BALANCES, req.encode_to_vec()).await?;
        let resp = QueryAllBalancesResponse::decode(bytes.as_slice()).map_err(|e| {
            ClientError::Format {
                what: "QueryAllBalancesResponse".into(),
                reason: e.to_string(),
            }
        })?;
        let mut coins = Coins::new();
        for c in resp.balances {
            let amount: u128 = c.amount.parse().map_err(|_| ClientError::Format {
                what: "balance amount".into(),
                reason: format!("{:?} is not an integer", c.amount),
            })?;
            coins
                .checked_add_coin(&c.denom, amount)
                .map_err(|e| ClientError::Format {
                    what: "balances".into(),
                    reason: e.to_string(),
                })?;
        }
        Ok(coins)
    }

    /// Broadcast `tx` and wait for CheckTx; errors if CheckTx rejects it.
    pub async fn broadcast_sync(
        &self,
        tx: Vec<u8>,
    ) -> Result<endpoint::broadcast::tx_sync::Response, ClientError> {
        let r = self
            .http
            .broadcast_tx_sync(tx)
            .await
            .map_err(|e| self.err(e))?;
        if r.code.is_err() {
            return Err(ClientError::TxRejected {
                hash: r.hash.to_string(),
                code: r.code.value(),
                codespace: r.codespace,
                log: r.log,
            });
        }
        Ok(r)
    }

    /// The tx with `hash` (hex), if indexed.
    pub async fn tx(&self, hash: &str) -> Result<endpoint::tx::Response, ClientError> {
        let h: tendermint::Hash = tendermint::Hash::from_hex_upper(
            tendermint::hash::Algorithm::Sha256,
            &hash.to_uppercase(),
        )
        .map_err(|e| ClientError::Format {
            what: format!("tx hash {hash:?}"),
            reason: format!("{e}; a tx hash is 64 hex characters"),
        })?;
        self.http.tx(h, false).await.map_err(|e| self.err(e))
    }

    /// Poll for the tx until it is in a block or `timeout` passes.
    pub async fn wait_tx(
        &self,
        hash: &str,
        timeout: Duration,
    ) -> Result<endpoint::tx::Response, ClientError> {
        let start = std::time::Instant::now();
        loop {
            match self.tx(hash).await {
                Ok(r) => return Ok(r),
                Err(ClientError::Format { what, reason }) => {
                    return Err(ClientError::Format { what, reason })
                }
                Err(_) if start.elapsed() < timeout => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(_) => return Err(ClientError::Timeout(hash.to_string(), timeout)),
            }
        }
    }

    /// Block at `height`, or the latest.
    pub async fn block(
        &self,
        height: Option<u64>,
    ) -> Result<endpoint::block::Response, ClientError> {
        match height {
            Some(h) => {
                let h = tendermint::block::Height::try_from(h).map_err(|e| self.err(e))?;
                self.http.block(h).await.map_err(|e| self.err(e))
            }
            None => self.http.latest_block().await.map_err(|e| self.err(e)),
        }
    }

    /// Sign with `key` and broadcast a tx carrying `msgs`, looking up the chain id, account
    /// number and sequence from the node. Returns the CheckTx answer (hash included).
    pub async fn sign_and_broadcast(
        &self,
        key: &Key,
        msgs: Vec<cosmrs::Any>,
        memo: &str,
        fee: &FeeSpec,
    ) -> Result<endpoint::broadcast::tx_sync::Response, ClientError> {
        let status = self.status().await?;
        let addr = key.address();
        let acct = self
            .account(&addr)
            .await?
            .ok_or_else(|| ClientError::AccountNotFound(addr.to_bech32()))?;
        let signer = SignerData {
            chain_id: status.node_info.network.to_string(),
            account_number: acct.account_number,
            sequence: acct.sequence,
        };
        let bytes = tx::sign_tx(key, msgs, memo, fee, &signer)?;
        self.broadcast_sync(bytes).await
    }
}
