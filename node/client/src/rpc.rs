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

/// ABCI code of "account sequence mismatch" (Cosmos SDK `ErrWrongSequence`, codespace `sdk`).
pub const WRONG_SEQUENCE_CODE: u32 = 32;
/// How many times [`ChainClient::sign_and_broadcast`] re-signs after a sequence mismatch.
pub const SEQUENCE_RETRIES: usize = 5;

/// The sequence a "account sequence mismatch, expected N, got M" log asks for.
fn expected_sequence(log: &str) -> Option<u64> {
    let rest = &log[log.find("expected ")? + "expected ".len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

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

    /// ABCI query at a past `height` (within the node's pruning window), or the latest state
    /// when `None`; errors on a non-zero code.
    pub async fn query_at(
        &self,
        path: &str,
        data: Vec<u8>,
        height: Option<u64>,
    ) -> Result<Vec<u8>, ClientError> {
        let h = match height {
            Some(h) => Some(tendermint::block::Height::try_from(h).map_err(|e| self.err(e))?),
            None => None,
        };
        let r = self
            .http
            .abci_query(Some(path.to_string()), data, h, false)
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

    /// A module's JSON query (e.g. `/magnet.registry.v1/nodes`, or
    /// `/magnet.rewards.v1/settlement` with `data` = `b"3"`), decoded into `T`.
    ///
    /// The incentive modules answer these paths with JSON documents; `data` is the query
    /// argument as text (an address, an id, `<epoch>/<job>/<operator>`), empty when none.
    pub async fn query_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        data: &[u8],
    ) -> Result<T, ClientError> {
        self.query_json_at(path, data, None).await
    }

    /// [`ChainClient::query_json`] at a past height (`None`: latest).
    pub async fn query_json_at<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        data: &[u8],
        height: Option<u64>,
    ) -> Result<T, ClientError> {
        let bytes = self.query_at(path, data.to_vec(), height).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Format {
            what: format!("answer of {path}"),
            reason: format!(
                "{e}; got {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        })
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
    ///
    /// The sequence is read from committed state; when earlier txs of the same key are still
    /// in the mempool, CheckTx answers "account sequence mismatch, expected N" (code 32) and
    /// the tx is re-signed with sequence N, up to [`SEQUENCE_RETRIES`] times, so one key may
    /// send several txs per block (a worker's heartbeat next to its commit).
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
        let mut signer = SignerData {
            chain_id: status.node_info.network.to_string(),
            account_number: acct.account_number,
            sequence: acct.sequence,
        };
        let mut tries = 0;
        loop {
            let bytes = tx::sign_tx(key, msgs.clone(), memo, fee, &signer)?;
            let r = self.broadcast_sync(bytes).await;
            if let Err(ClientError::TxRejected {
                code,
                codespace,
                log,
                ..
            }) = &r
            {
                if *code == WRONG_SEQUENCE_CODE && codespace == "sdk" && tries < SEQUENCE_RETRIES {
                    if let Some(n) = expected_sequence(log).filter(|n| *n != signer.sequence) {
                        signer.sequence = n;
                        tries += 1;
                        continue;
                    }
                }
            }
            return r;
        }
    }

    /// Sign with `key`, broadcast, wait up to `timeout` for the block, and return the
    /// outcome. CheckTx rejection is [`ClientError::TxRejected`]; a tx included with a
    /// non-zero DeliverTx code is [`ClientError::TxFailed`] carrying the code, codespace
    /// and log; no block in time is [`ClientError::Timeout`].
    pub async fn broadcast_and_wait(
        &self,
        key: &Key,
        msgs: Vec<cosmrs::Any>,
        memo: &str,
        fee: &FeeSpec,
        timeout: Duration,
    ) -> Result<TxOutcome, ClientError> {
        let sent = self.sign_and_broadcast(key, msgs, memo, fee).await?;
        let hash = sent.hash.to_string();
        let r = self.wait_tx(&hash, timeout).await?;
        TxOutcome::from_tx(r)
    }
}

/// The `TxMsgData` bytes of a result. CometBFT sends `data` as a base64 string and
/// tendermint-rpc 0.40 keeps that string's bytes as they are, so decode it here. A protobuf
/// `TxMsgData` starts with a field tag (0x0a or 0x12), never with a base64 character, so
/// raw bytes pass through unchanged.
fn msg_data_bytes(data: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let is_b64 = !data.is_empty()
        && data
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
    if is_b64 {
        if let Ok(d) = base64::engine::general_purpose::STANDARD.decode(data) {
            return d;
        }
    }
    data.to_vec()
}

/// A transaction that made it into a block with code 0.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TxOutcome {
    /// Tx hash, upper-case hex.
    pub hash: String,
    /// Block height.
    pub height: u64,
    /// Gas limit.
    pub gas_wanted: i64,
    /// Gas used.
    pub gas_used: i64,
    /// Log.
    pub log: String,
    /// `TxMsgData` bytes: one response per message (see [`TxOutcome::msg_response`]).
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Events emitted by the tx.
    pub events: Vec<tendermint::abci::Event>,
}

impl TxOutcome {
    /// The outcome of an indexed tx; [`ClientError::TxFailed`] if its code is non-zero.
    pub fn from_tx(r: endpoint::tx::Response) -> Result<TxOutcome, ClientError> {
        let res = r.tx_result;
        if res.code.is_err() {
            return Err(ClientError::TxFailed {
                hash: r.hash.to_string(),
                height: r.height.value(),
                code: res.code.value(),
                codespace: res.codespace,
                log: res.log,
            });
        }
        Ok(TxOutcome {
            hash: r.hash.to_string(),
            height: r.height.value(),
            gas_wanted: res.gas_wanted,
            gas_used: res.gas_used,
            log: res.log,
            data: msg_data_bytes(&res.data),
            events: res.events,
        })
    }

    /// Decode the response of message `index` as `M` (e.g. `MsgCreateJobResponse` for the
    /// new job id); errors if it is missing or of another type.
    pub fn msg_response<M: prost::Message + prost::Name + Default>(
        &self,
        index: usize,
    ) -> Result<M, ClientError> {
        let fmt = |reason: String| ClientError::Format {
            what: format!("response {index} of tx {}", self.hash),
            reason,
        };
        let d = cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData::decode(self.data.as_slice())
            .map_err(|e| fmt(e.to_string()))?;
        let any = d
            .msg_responses
            .get(index)
            .ok_or_else(|| fmt(format!("the tx has {} responses", d.msg_responses.len())))?;
        if any.type_url != M::type_url() {
            return Err(fmt(format!(
                "it is a {}, not a {}",
                any.type_url,
                M::type_url()
            )));
        }
        M::decode(any.value.as_slice()).map_err(|e| fmt(e.to_string()))
    }

    /// The value of the first event attribute `key` in an event of type `kind`.
    pub fn attribute(&self, kind: &str, key: &str) -> Option<String> {
        self.events
            .iter()
            .filter(|e| e.kind == kind)
            .flat_map(|e| e.attributes.iter())
            .find(|a| a.key_bytes() == key.as_bytes())
            .and_then(|a| a.value_str().ok().map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use magnet_proto::gov::v1::MsgSubmitProposalResponse;

    fn indexed(code: u32, data: Vec<u8>) -> endpoint::tx::Response {
        endpoint::tx::Response {
            hash: tendermint::Hash::Sha256([7; 32]),
            height: 12u32.into(),
            index: 0,
            tx_result: tendermint::abci::types::ExecTxResult {
                code: code.into(),
                data: data.into(),
                log: if code == 0 {
                    String::new()
                } else {
                    "proposal 9 not found".into()
                },
                info: String::new(),
                gas_wanted: 200_000,
                gas_used: 51_000,
                events: vec![tendermint::abci::Event::new(
                    "submit_proposal",
                    [("proposal_id", "3")],
                )],
                codespace: if code == 0 {
                    String::new()
                } else {
                    "gov".into()
                },
            },
            tx: vec![],
            proof: None,
        }
    }

    #[test]
    fn the_expected_sequence_is_read_from_the_mismatch_log() {
        assert_eq!(
            expected_sequence(
                "account sequence mismatch, expected 7, got 6 (a replayed or out-of-order tx)"
            ),
            Some(7)
        );
        assert_eq!(
            expected_sequence("account sequence mismatch, expected 12"),
            Some(12)
        );
        assert_eq!(expected_sequence("insufficient fee"), None);
        assert_eq!(expected_sequence("expected x"), None);
    }

    #[test]
    fn a_failed_delivery_is_a_typed_error_with_code_codespace_and_log() {
        match TxOutcome::from_tx(indexed(5, vec![])) {
            Err(ClientError::TxFailed {
                height,
                code,
                codespace,
                log,
                ..
            }) => {
                assert_eq!((height, code), (12, 5));
                assert_eq!(codespace, "gov");
                assert_eq!(log, "proposal 9 not found");
            }
            other => panic!("expected TxFailed, got {other:?}"),
        }
    }

    #[test]
    fn message_responses_and_event_attributes_are_read_back() {
        let resp = MsgSubmitProposalResponse { proposal_id: 3 };
        #[allow(deprecated)]
        let data = cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData {
            data: vec![],
            msg_responses: vec![cosmrs::Any {
                type_url: <MsgSubmitProposalResponse as prost::Name>::type_url(),
                value: resp.encode_to_vec(),
            }],
        }
        .encode_to_vec();
        let o = TxOutcome::from_tx(indexed(0, data.clone())).unwrap();
        // As tendermint-rpc hands it over from a CometBFT JSON answer: base64 text.
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(&data);
        let o2 = TxOutcome::from_tx(indexed(0, text.into_bytes())).unwrap();
        assert_eq!(o2.data, data);
        assert_eq!(o.height, 12);
        assert_eq!(
            o.msg_response::<MsgSubmitProposalResponse>(0).unwrap(),
            resp
        );
        assert!(o.msg_response::<MsgSubmitProposalResponse>(1).is_err());
        assert!(o
            .msg_response::<magnet_proto::jobs::v1::MsgCreateJobResponse>(0)
            .is_err());
        assert_eq!(
            o.attribute("submit_proposal", "proposal_id").as_deref(),
            Some("3")
        );
        assert_eq!(o.attribute("submit_proposal", "nope"), None);
    }
}
