//! A CometBFT-compatible JSON-RPC server for the embedded node.
//!
//! Serves the subset clients use — `health`, `status`, `abci_info`, `abci_query`,
//! `broadcast_tx_sync|async|commit`, `block`, `block_results`, `tx`, `tx_search` (CometBFT
//! query language, see [`crate::tx_search`]), `validators`, `genesis` — both as HTTP POST JSON-RPC 2.0 (single or batch) on
//! `/` and as GET URI calls (`/block?height=5`, `/tx?hash=0xABC…`). Results are serialised
//! with `tendermint-rpc`'s own v0.38 response types so its `HttpClient` and cosmjs's
//! `Comet38Client` read them unchanged. The node reports CometBFT version [`COMET_VERSION`].
//! Besides JSON-RPC it serves `GET /magnet/diloco/v1/eligible?height=H`, the DiLoCo eligible
//! set (see [`crate::eligible`]).
//!
//! Not served: websocket subscriptions, `net_info`, `consensus_state`, `unconfirmed_txs`,
//! `block_search`; they answer
//! JSON-RPC error -32601 (method not found).

use crate::node::{Node, COMET_VERSION};
use anyhow::Result;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::Json;
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci as pb;
use tendermint_rpc::endpoint;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A JSON-RPC error.
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: &'static str,
    data: String,
}

impl RpcError {
    fn invalid_params(data: impl Into<String>) -> Self {
        RpcError {
            code: -32602,
            message: "Invalid params",
            data: data.into(),
        }
    }
    fn internal(data: impl Into<String>) -> Self {
        RpcError {
            code: -32603,
            message: "Internal error",
            data: data.into(),
        }
    }
    fn not_found(method: &str) -> Self {
        RpcError {
            code: -32601,
            message: "Method not found",
            data: format!("method {method:?} is not served by the embedded node"),
        }
    }
}

fn ok<T: serde::Serialize>(v: T) -> Result<Value, RpcError> {
    let mut v = serde_json::to_value(v).map_err(|e| RpcError::internal(e.to_string()))?;
    fix_bytes(&mut v);
    Ok(v)
}

/// `tendermint`'s `ExecTxResult.data` (a `bytes::Bytes`) serialises as a JSON array of numbers;
/// CometBFT (and cosmjs) use a base64 string. Rewrite every `"data": [n, …]` accordingly.
fn fix_bytes(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "data" {
                    if let Value::Array(a) = x {
                        if a.iter().all(Value::is_u64) {
                            let bytes: Vec<u8> = a
                                .iter()
                                .filter_map(Value::as_u64)
                                .map(|n| n as u8)
                                .collect();
                            *x = Value::String(B64.encode(bytes));
                            continue;
                        }
                    }
                }
                fix_bytes(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(fix_bytes),
        _ => {}
    }
}

/// Request parameters, from a JSON object (POST) or a query string (GET).
struct Params {
    map: Map<String, Value>,
    uri: bool,
}

impl Params {
    fn str(&self, name: &str) -> Option<String> {
        let v = self.map.get(name)?;
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Null => return None,
            other => other.to_string(),
        };
        let s = if self.uri {
            s.trim_matches('"').to_string()
        } else {
            s
        };
        if s.is_empty() {
            None
        } else {
            Some(s)
        }
    }

    fn u64(&self, name: &str) -> Result<Option<u64>, RpcError> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
                RpcError::invalid_params(format!(
                    "{name} must be a non-negative integer, got {s:?}"
                ))
            }),
        }
    }

    fn bool(&self, name: &str) -> bool {
        matches!(self.str(name).as_deref(), Some("true"))
    }

    /// Bytes: `0x…` hex always works; otherwise base64 (`b64 = true`) or hex.
    fn bytes(&self, name: &str, b64: bool) -> Result<Option<Vec<u8>>, RpcError> {
        let Some(s) = self.str(name) else {
            return Ok(None);
        };
        let bad = |e: String| RpcError::invalid_params(format!("{name}: {e}"));
        if let Some(h) = s.strip_prefix("0x") {
            return hex::decode(h).map(Some).map_err(|e| bad(e.to_string()));
        }
        if b64 {
            B64.decode(&s).map(Some).map_err(|e| bad(e.to_string()))
        } else {
            hex::decode(&s).map(Some).map_err(|e| bad(e.to_string()))
        }
    }
}

type Shared<A> = Arc<Node<A>>;

/// Serve JSON-RPC on `addr` until the runtime stops.
pub async fn serve<A: Application + Sync + Send + 'static>(
    addr: std::net::SocketAddr,
    node: Shared<A>,
) -> Result<()> {
    use anyhow::Context;
    let app = axum::Router::new()
        .route("/", post(post_handler::<A>).get(|| async { "MAGNET embedded node: CometBFT v0.38 JSON-RPC. POST JSON-RPC 2.0 to / or GET /status" }))
        .route(
            crate::eligible::ELIGIBLE_PATH,
            get(crate::eligible::handler::<A>),
        )
        .route("/{method}", get(get_handler::<A>))
        .with_state(node);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the RPC server to {addr} (is another node running?)"))?;
    tracing::info!(%addr, "CometBFT JSON-RPC server listening");
    axum::serve(listener, app).await.context("RPC server")?;
    Ok(())
}

fn envelope(id: Value, res: Result<Value, RpcError>) -> Value {
    match res {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message, "data": e.data}})
        }
    }
}

async fn one<A: Application + Sync + Send + 'static>(node: &Shared<A>, req: Value) -> Value {
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return envelope(
            id,
            Err(RpcError {
                code: -32600,
                message: "Invalid Request",
                data: "no method".into(),
            }),
        );
    };
    let map = match req.get("params") {
        Some(Value::Object(m)) => m.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(_) => {
            return envelope(
                id,
                Err(RpcError::invalid_params(
                    "params must be a JSON object of named parameters",
                )),
            );
        }
    };
    let res = dispatch(node, method, Params { map, uri: false }).await;
    envelope(id, res)
}

async fn post_handler<A: Application + Sync + Send + 'static>(
    State(node): State<Shared<A>>,
    body: axum::body::Bytes,
) -> Json<Value> {
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Json(envelope(
                Value::Null,
                Err(RpcError {
                    code: -32700,
                    message: "Parse error",
                    data: e.to_string(),
                }),
            ))
        }
    };
    match parsed {
        Value::Array(reqs) => {
            let mut out = Vec::with_capacity(reqs.len());
            for r in reqs {
                out.push(one(&node, r).await);
            }
            Json(Value::Array(out))
        }
        r => Json(one(&node, r).await),
    }
}

async fn get_handler<A: Application + Sync + Send + 'static>(
    State(node): State<Shared<A>>,
    Path(method): Path<String>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Json<Value> {
    let map = q.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
    Json(envelope(
        json!(-1),
        dispatch(&node, &method, Params { map, uri: true }).await,
    ))
}

async fn blocking<A, T, F>(node: &Shared<A>, f: F) -> Result<T, RpcError>
where
    A: Application + Sync + Send + 'static,
    T: Send + 'static,
    F: FnOnce(&Node<A>) -> Result<T, RpcError> + Send + 'static,
{
    let n = node.clone();
    tokio::task::spawn_blocking(move || f(&n))
        .await
        .map_err(|e| RpcError::internal(format!("worker panicked: {e}")))?
}

fn height_or_latest<A: Application + Sync>(node: &Node<A>, p: &Params) -> Result<u64, RpcError> {
    let latest = node.view().state.last_height;
    match p.u64("height")? {
        None | Some(0) => {
            if latest == 0 {
                Err(RpcError::internal(
                    "no blocks yet: the chain has not produced its first block",
                ))
            } else {
                Ok(latest)
            }
        }
        Some(h) if h > latest => Err(RpcError::internal(format!(
            "height {h} must be less than or equal to the current blockchain height {latest}"
        ))),
        Some(h) => Ok(h),
    }
}

fn exec_result(r: &pb::ExecTxResult) -> Result<tendermint::abci::types::ExecTxResult, RpcError> {
    tendermint::abci::types::ExecTxResult::try_from(r.clone())
        .map_err(|e| RpcError::internal(e.to_string()))
}

fn tx_response<A: Application + Sync>(
    node: &Node<A>,
    hash: &[u8],
) -> Result<endpoint::tx::Response, RpcError> {
    let hex_hash = hex::encode_upper(hash);
    let (height, index) = node
        .store()
        .tx_location(hash)
        .map_err(|e| RpcError::internal(e.to_string()))?
        .ok_or_else(|| RpcError::internal(format!("tx ({hex_hash}) not found")))?;
    let req = node
        .store()
        .request(height)
        .map_err(|e| RpcError::internal(e.to_string()))?
        .ok_or_else(|| RpcError::internal(format!("block {height} missing")))?;
    let res = node
        .store()
        .results(height)
        .map_err(|e| RpcError::internal(e.to_string()))?
        .ok_or_else(|| RpcError::internal(format!("results of block {height} missing")))?;
    let i = index as usize;
    let (Some(tx), Some(r)) = (req.txs.get(i), res.tx_results.get(i)) else {
        return Err(RpcError::internal(format!(
            "tx index {index} out of range in block {height}"
        )));
    };
    Ok(endpoint::tx::Response {
        hash: tendermint::Hash::Sha256(magnet_core::sha256(tx)),
        height: tendermint::block::Height::try_from(height)
            .map_err(|e| RpcError::internal(e.to_string()))?,
        index,
        tx_result: exec_result(r)?,
        tx: tx.to_vec(),
        proof: None,
    })
}

fn check_tx_domain(
    r: pb::ResponseCheckTx,
) -> Result<tendermint::abci::response::CheckTx, RpcError> {
    tendermint::abci::response::CheckTx::try_from(r).map_err(|e| RpcError::internal(e.to_string()))
}

async fn dispatch<A: Application + Sync + Send + 'static>(
    node: &Shared<A>,
    method: &str,
    p: Params,
) -> Result<Value, RpcError> {
    match method {
        "health" => Ok(json!({})),
        "status" => {
            let v = node.view();
            let st = &v.state;
            let (latest_hash, latest_app_hash, latest_time) = if st.last_height == 0 {
                (
                    String::new(),
                    st.app_hash.clone(),
                    v.genesis_time.to_rfc3339(),
                )
            } else {
                let blk = node
                    .load_block(st.last_height)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                (
                    st.last_block_hash.clone(),
                    hex::encode_upper(blk.header.app_hash.as_bytes()),
                    st.last_time.clone(),
                )
            };
            let (earliest_hash, earliest_app, earliest_time, earliest_h) = if st.last_height == 0 {
                (String::new(), String::new(), v.genesis_time.to_rfc3339(), 0)
            } else {
                let first = v.initial_height.max(1);
                let b = node
                    .load_block(first)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let id = Node::<A>::block_id(&b).map_err(|e| RpcError::internal(e.to_string()))?;
                (
                    id.hash.to_string(),
                    hex::encode_upper(b.header.app_hash.as_bytes()),
                    b.header.time.to_rfc3339(),
                    first,
                )
            };
            let me = v
                .validators
                .iter()
                .find(|x| x.address == node.validator_address());
            let status = json!({
                "node_info": {
                    "protocol_version": {"p2p": "8", "block": "11", "app": "0"},
                    "id": node.node_id(),
                    "listen_addr": "tcp://0.0.0.0:26656",
                    "network": v.chain_id,
                    "version": COMET_VERSION,
                    "channels": "40202122233038606100",
                    "moniker": node.config().moniker,
                    "other": {"tx_index": "on", "rpc_address": "tcp://127.0.0.1:26657"}
                },
                "sync_info": {
                    "latest_block_hash": latest_hash,
                    "latest_app_hash": latest_app_hash,
                    "latest_block_height": st.last_height.to_string(),
                    "latest_block_time": latest_time,
                    "earliest_block_hash": earliest_hash,
                    "earliest_app_hash": earliest_app,
                    "earliest_block_height": earliest_h.to_string(),
                    "earliest_block_time": earliest_time,
                    "catching_up": false
                },
                "validator_info": {
                    "address": node.validator_address().to_string(),
                    "pub_key": me.map(|m| serde_json::to_value(m.pub_key).unwrap_or(Value::Null)).unwrap_or(Value::Null),
                    "voting_power": me.map(|m| m.power.value()).unwrap_or(0).to_string()
                }
            });
            Ok(status)
        }
        "abci_info" => {
            blocking(node, |n| {
                let r = n.app().info(pb::RequestInfo {
                    version: COMET_VERSION.into(),
                    block_version: crate::node::BLOCK_PROTOCOL,
                    p2p_version: crate::node::P2P_PROTOCOL,
                    abci_version: "2.0.0".into(),
                });
                let info = tendermint::abci::response::Info::try_from(r)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                ok(endpoint::abci_info::Response { response: info })
            })
            .await
        }
        "abci_query" => {
            let path = p.str("path").unwrap_or_default();
            let data = p.bytes("data", false)?.unwrap_or_default();
            let height = p.u64("height")?.unwrap_or(0);
            let prove = p.bool("prove");
            blocking(node, move |n| {
                let r = n.app().query(pb::RequestQuery {
                    data: data.into(),
                    path,
                    height: height as i64,
                    prove,
                });
                let q = endpoint::abci_query::AbciQuery {
                    code: r.code.into(),
                    log: r.log,
                    info: r.info,
                    index: r.index,
                    key: r.key.to_vec(),
                    value: r.value.to_vec(),
                    proof: None,
                    height: tendermint::block::Height::try_from(r.height.max(0) as u64)
                        .map_err(|e| RpcError::internal(e.to_string()))?,
                    codespace: r.codespace,
                };
                ok(endpoint::abci_query::Response { response: q })
            })
            .await
        }
        "broadcast_tx_sync" | "broadcast_tx_async" | "broadcast_tx_commit" => {
            let tx = p.bytes("tx", true)?.ok_or_else(|| {
                RpcError::invalid_params("missing tx (base64 in JSON-RPC, 0x-hex in URI calls)")
            })?;
            let mut commits = node.subscribe();
            if method == "broadcast_tx_async" {
                let hash = magnet_core::sha256(&tx);
                let n = node.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(e) = n.check_tx(tx) {
                        tracing::warn!("async CheckTx failed: {e:#}");
                    }
                });
                return ok(endpoint::broadcast::tx_async::Response {
                    codespace: String::new(),
                    code: tendermint::abci::Code::Ok,
                    data: Default::default(),
                    log: String::new(),
                    hash: tendermint::Hash::Sha256(hash),
                });
            }
            let out = blocking(node, move |n| {
                n.check_tx(tx)
                    .map_err(|e| RpcError::internal(e.to_string()))
            })
            .await?;
            let hash = tendermint::Hash::Sha256(out.hash);
            if method == "broadcast_tx_sync" {
                return ok(endpoint::broadcast::tx_sync::Response {
                    codespace: out.response.codespace.clone(),
                    code: out.response.code.into(),
                    data: out.response.data.clone(),
                    log: out.response.log.clone(),
                    hash,
                });
            }
            let check = out.response.clone();
            if check.code != 0 {
                return ok(endpoint::broadcast::tx_commit::Response {
                    check_tx: check_tx_domain(check)?,
                    tx_result: Default::default(),
                    hash,
                    height: Default::default(),
                });
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let n = node.clone();
                let h = out.hash;
                let found =
                    blocking(node, move |_| Ok(n.store().tx_location(&h).ok().flatten())).await?;
                if found.is_some() {
                    let n = node.clone();
                    let r = blocking(node, move |_| tx_response(&n, &h)).await?;
                    return ok(endpoint::broadcast::tx_commit::Response {
                        check_tx: check_tx_domain(check)?,
                        tx_result: r.tx_result,
                        hash,
                        height: r.height,
                    });
                }
                if tokio::time::timeout_at(deadline, commits.changed())
                    .await
                    .is_err()
                {
                    return Err(RpcError::internal(
                        "timed out waiting for tx to be included in a block",
                    ));
                }
            }
        }
        "block" => {
            let h = height_or_latest(node, &p)?;
            blocking(node, move |n| {
                let b = n
                    .load_block(h)
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let id = Node::<A>::block_id(&b).map_err(|e| RpcError::internal(e.to_string()))?;
                ok(endpoint::block::v0_38::DialectResponse {
                    block_id: id,
                    block: endpoint::block::v0_38::DialectBlock {
                        header: b.header,
                        data: b.data,
                        evidence: b.evidence,
                        last_commit: b.last_commit,
                    },
                })
            })
            .await
        }
        "block_results" => {
            let h = height_or_latest(node, &p)?;
            blocking(node, move |n| {
                let r = n
                    .store()
                    .results(h)
                    .map_err(|e| RpcError::internal(e.to_string()))?
                    .ok_or_else(|| {
                        RpcError::internal(format!("could not find results for height #{h}"))
                    })?;
                let txs = r
                    .tx_results
                    .iter()
                    .map(exec_result)
                    .collect::<Result<Vec<_>, _>>()?;
                let events = r
                    .events
                    .iter()
                    .cloned()
                    .map(tendermint::abci::Event::try_from)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                let updates = r
                    .validator_updates
                    .iter()
                    .cloned()
                    .map(tendermint::validator::Update::try_from)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RpcError::internal(e.to_string()))?;
                ok(endpoint::block_results::Response {
                    height: tendermint::block::Height::try_from(h)
                        .map_err(|e| RpcError::internal(e.to_string()))?,
                    txs_results: Some(txs),
                    finalize_block_events: events,
                    begin_block_events: None,
                    end_block_events: None,
                    validator_updates: updates,
                    consensus_param_updates: None,
                    app_hash: tendermint::AppHash::try_from(r.app_hash.to_vec())
                        .map_err(|e| RpcError::internal(e.to_string()))?,
                })
            })
            .await
        }
        "tx" => {
            let hash = p.bytes("hash", true)?.ok_or_else(|| {
                RpcError::invalid_params("missing hash (base64 in JSON-RPC, 0x-hex in URI calls)")
            })?;
            blocking(node, move |n| ok(tx_response(n, &hash)?)).await
        }
        "tx_search" => {
            let q = p
                .str("query")
                .ok_or_else(|| RpcError::invalid_params("missing query"))?;
            let search = crate::tx_search::Search::parse(&q)
                .map_err(|e| RpcError::invalid_params(e.to_string()))?;
            let page = p.u64("page")?;
            let per_page = p.u64("per_page")?;
            let desc = match p.str("order_by").as_deref().map(str::trim) {
                None | Some("") | Some("asc") => false,
                Some("desc") => true,
                Some(o) => {
                    return Err(RpcError::invalid_params(format!(
                        "order_by must be asc or desc, got {o:?}"
                    )))
                }
            };
            blocking(node, move |n| {
                let mut found: Vec<(u64, u32, Vec<u8>)> = Vec::new();
                if let Some(hash) = search.hash() {
                    if let Some((h, i)) = n
                        .store()
                        .tx_location(&hash)
                        .map_err(|e| RpcError::internal(e.to_string()))?
                    {
                        found.push((h, i, hash));
                    }
                } else {
                    let view = n.view();
                    let (lo, hi) =
                        search.height_range(view.initial_height.max(1), view.state.last_height);
                    for h in lo..=hi {
                        let Some(res) = n
                            .store()
                            .results(h)
                            .map_err(|e| RpcError::internal(e.to_string()))?
                        else {
                            continue;
                        };
                        if res.tx_results.is_empty() {
                            continue;
                        }
                        let req = n
                            .store()
                            .request(h)
                            .map_err(|e| RpcError::internal(e.to_string()))?
                            .ok_or_else(|| RpcError::internal(format!("block {h} missing")))?;
                        for (i, (tx, r)) in req.txs.iter().zip(&res.tx_results).enumerate() {
                            let hash = magnet_core::sha256(tx).to_vec();
                            if search.matches(h, &hash, &r.events) {
                                found.push((h, i as u32, hash));
                            }
                        }
                    }
                }
                // A tx.hash hit must still satisfy the other conditions.
                let mut hits = Vec::new();
                for (h, i, hash) in found {
                    let t = tx_response(n, &hash)?;
                    let events = n
                        .store()
                        .results(h)
                        .map_err(|e| RpcError::internal(e.to_string()))?
                        .and_then(|r| r.tx_results.get(i as usize).map(|x| x.events.clone()))
                        .unwrap_or_default();
                    if search.matches(h, &hash, &events) {
                        hits.push(t);
                    }
                }
                if desc {
                    hits.reverse();
                }
                let total = hits.len();
                let range = crate::tx_search::page_range(total, page, per_page)
                    .map_err(RpcError::invalid_params)?;
                let txs: Vec<_> = hits.drain(range).collect();
                ok(endpoint::tx_search::Response {
                    total_count: u32::try_from(total).unwrap_or(u32::MAX),
                    txs,
                })
            })
            .await
        }
        "validators" => {
            let v = node.view();
            let h = match p.u64("height")? {
                None | Some(0) => v.state.last_height.max(1),
                Some(h) => h,
            };
            let total = v.validators.len() as i32;
            ok(endpoint::validators::Response::new(
                tendermint::block::Height::try_from(h)
                    .map_err(|e| RpcError::internal(e.to_string()))?,
                v.validators,
                total,
            ))
        }
        "genesis" => Ok(json!({"genesis": node.view().genesis})),
        other => Err(RpcError::not_found(other)),
    }
}
