//! `GET /magnet/diloco/v1/eligible?height=H`: the DiLoCo eligible set at a height, in the
//! JSON that `magnet_diloco::eligible::HttpEligibleSource` reads.
//!
//! Answers:
//! * `200` `{"height": H, "block_hash": "<64 hex>", "members": {"node-…": {"quality_bps": 10000}, …}}`
//! * `404` `{"latest_height": L}` when the node has not reached `H` yet (the worker waits, it
//!   does not penalise this endpoint);
//! * `400` for a missing or zero height, `410` when `H` is below the pruning window, `500`
//!   for anything else — each with `{"error": "…"}`.
//!
//! A node is a member at `H` exactly when the registry's own liveness rule holds in the
//! state committed at `H`: status `Active`, not jailed, and a heartbeat within
//! `liveness_window_secs` of block `H`'s time (the same rule as the registry's
//! `live_nodes`), and its tier lists the `training` kind (the rounds' own election rule).
//! Members are keyed by their `node-<16 hex>` id (the p2p name).
//! `block_hash` is the id hash of block `H`, which seeds the round's leader election.
//!
//! Served by the embedded node's RPC server, and by `magnetd start --abci-only
//! --eligible-laddr ADDR` behind CometBFT (block hash and time from CometBFT's RPC).
//!
//! # Non-guarantees
//! `quality_bps` is 10000 (1.0) for every member: the chain keeps no per-node quality score
//! yet (contrib keeps per-contribution median scores, rewards per-epoch payouts); when one
//! exists it belongs here. The answer is not proven (no light-client proof).

use crate::node::Node;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci as pb;

/// The path served (same constant as `magnet_diloco::eligible::ELIGIBLE_PATH`).
pub const ELIGIBLE_PATH: &str = "/magnet/diloco/v1/eligible";

/// Quality of a member when the chain has no score for it: 1.0 in basis points.
pub const DEFAULT_QUALITY_BPS: u32 = 10_000;

type Answer = (StatusCode, Json<Value>);

fn fail(code: StatusCode, msg: impl Into<String>) -> Answer {
    (code, Json(json!({ "error": msg.into() })))
}

/// The axum handler.
pub async fn handler<A: Application + Sync + Send + 'static>(
    State(node): State<Arc<Node<A>>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Answer {
    let height = match q.get("height").map(|h| h.trim().parse::<u64>()) {
        Some(Ok(h)) if h > 0 => h,
        Some(_) => return fail(StatusCode::BAD_REQUEST, "height must be a positive integer"),
        None => return fail(StatusCode::BAD_REQUEST, "missing ?height=H"),
    };
    match tokio::task::spawn_blocking(move || eligible_at(&node, height)).await {
        Ok(a) => a,
        Err(e) => fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker panicked: {e}"),
        ),
    }
}

fn query_json<A: Application>(app: &A, path: &str, height: u64) -> Result<Value, Answer> {
    let r = app.query(pb::RequestQuery {
        data: Default::default(),
        path: path.to_string(),
        height: i64::try_from(height).unwrap_or(i64::MAX),
        prove: false,
    });
    if r.code != 0 {
        let code = if r.log.contains("prun") {
            StatusCode::GONE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        return Err(fail(code, format!("{path} at height {height}: {}", r.log)));
    }
    serde_json::from_slice(&r.value).map_err(|e| {
        fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{path} answered non-JSON: {e}"),
        )
    })
}

/// Is a registry node record (its JSON) live at block time `now`?
pub fn is_live(rec: &Value, now_secs: u64, liveness_window_secs: u64) -> bool {
    let active = rec["status"].as_str() == Some("Active");
    let jailed = rec["jailed"].as_bool().unwrap_or(true);
    let last = rec["last_heartbeat"].as_u64().unwrap_or(0);
    active && !jailed && last > 0 && now_secs.saturating_sub(last) <= liveness_window_secs
}

/// The answer for `height` from the embedded node.
pub fn eligible_at<A: Application + Sync>(node: &Node<A>, height: u64) -> Answer {
    let latest = node.view().state.last_height;
    if height > latest {
        return not_yet(latest);
    }
    let block = match node.load_block(height) {
        Ok(b) => b,
        Err(e) => return fail(StatusCode::GONE, format!("block {height}: {e}")),
    };
    let id = match Node::<A>::block_id(&block) {
        Ok(id) => id,
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let time = u64::try_from(block.header.time.unix_timestamp()).unwrap_or(0);
    members_at(node.app(), height, id.hash.as_bytes(), time)
}

fn not_yet(latest: u64) -> Answer {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "latest_height": latest })),
    )
}

/// The eligible set at `height` given block `height`'s id hash and time, from `app`'s
/// state committed at that height.
pub fn members_at<A: Application>(app: &A, height: u64, block_hash: &[u8], now: u64) -> Answer {
    let params = match query_json(app, "/magnet.registry.v1/params", height) {
        Ok(v) => v,
        Err(a) => return a,
    };
    let Some(window) = params["liveness_window_secs"].as_u64() else {
        return fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            "registry params carry no liveness_window_secs",
        );
    };
    let nodes = match query_json(app, "/magnet.registry.v1/nodes", height) {
        Ok(v) => v,
        Err(a) => return a,
    };
    // Tiers that train (a `storage_node` keeps stripes and is never a round member).
    let trains = |tier: &str| {
        params["tiers"].as_array().is_some_and(|ts| {
            ts.iter().any(|t| {
                t["name"] == tier
                    && t["kinds"]
                        .as_array()
                        .is_some_and(|k| k.iter().any(|k| k == "training"))
            })
        })
    };
    let mut members = BTreeMap::new();
    for rec in nodes.as_array().map(Vec::as_slice).unwrap_or_default() {
        if !is_live(rec, now, window) || !trains(rec["tier"].as_str().unwrap_or_default()) {
            continue;
        }
        if let Some(id) = rec["node_id"].as_str() {
            members.insert(
                id.to_string(),
                json!({ "quality_bps": DEFAULT_QUALITY_BPS }),
            );
        }
    }
    (
        StatusCode::OK,
        Json(json!({
            "height": height,
            "block_hash": hex::encode(block_hash),
            "members": members,
        })),
    )
}

/// State of the `--abci-only` eligible server: the app and the CometBFT node in front of it.
#[derive(Clone)]
pub struct CometSide<A> {
    app: A,
    comet: tendermint_rpc::HttpClient,
}

/// Serve the eligible endpoint on `addr` for `magnetd start --abci-only`: app state from the
/// in-process app, block hash and time from the CometBFT RPC at `comet_rpc`.
pub async fn serve_behind_comet<A: Application + Clone + Sync + Send + 'static>(
    addr: std::net::SocketAddr,
    app: A,
    comet_rpc: &str,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let url: tendermint_rpc::HttpClientUrl = comet_rpc
        .parse()
        .with_context(|| format!("CometBFT RPC URL {comet_rpc:?}"))?;
    let comet = tendermint_rpc::HttpClient::builder(url)
        .compat_mode(tendermint_rpc::client::CompatMode::V0_38)
        .build()
        .context("CometBFT RPC client")?;
    let router = axum::Router::new()
        .route(ELIGIBLE_PATH, axum::routing::get(comet_handler::<A>))
        .with_state(CometSide { app, comet });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the eligible-set server to {addr}"))?;
    tracing::info!(%addr, "DiLoCo eligible-set endpoint listening");
    axum::serve(listener, router)
        .await
        .context("eligible-set server")?;
    Ok(())
}

async fn comet_handler<A: Application + Clone + Sync + Send + 'static>(
    State(side): State<CometSide<A>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Answer {
    use tendermint_rpc::Client;
    let height = match q.get("height").map(|h| h.trim().parse::<u64>()) {
        Some(Ok(h)) if h > 0 => h,
        Some(_) => return fail(StatusCode::BAD_REQUEST, "height must be a positive integer"),
        None => return fail(StatusCode::BAD_REQUEST, "missing ?height=H"),
    };
    let app = side.app.clone();
    let info = match tokio::task::spawn_blocking(move || {
        app.info(pb::RequestInfo::default()).last_block_height
    })
    .await
    {
        Ok(h) => u64::try_from(h).unwrap_or(0),
        Err(e) => {
            return fail(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("worker panicked: {e}"),
            )
        }
    };
    if height > info {
        return not_yet(info);
    }
    let h = match tendermint::block::Height::try_from(height) {
        Ok(h) => h,
        Err(e) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let b = match side.comet.block(h).await {
        Ok(b) => b,
        Err(e) => {
            return fail(
                StatusCode::BAD_GATEWAY,
                format!("CometBFT block {height}: {e}"),
            )
        }
    };
    let time = u64::try_from(b.block.header.time.unix_timestamp()).unwrap_or(0);
    let hash = b.block_id.hash.as_bytes().to_vec();
    let app = side.app.clone();
    match tokio::task::spawn_blocking(move || members_at(&app, height, &hash, time)).await {
        Ok(a) => a,
        Err(e) => fail(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("worker panicked: {e}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_follows_the_registry_rule() {
        let rec = |status: Value, jailed: bool, last: u64| json!({"status": status, "jailed": jailed, "last_heartbeat": last, "node_id": "node-00"});
        let cases = [
            (
                rec(json!("Active"), false, 900),
                true,
                "heartbeat 100 s ago",
            ),
            (
                rec(json!("Active"), false, 700),
                true,
                "exactly at the window edge",
            ),
            (rec(json!("Active"), false, 699), false, "heartbeat too old"),
            (
                rec(json!("Active"), false, 0),
                false,
                "never sent a heartbeat",
            ),
            (rec(json!("Active"), true, 900), false, "jailed"),
            (
                rec(json!({"Unbonding": {"until": 5}}), false, 900),
                false,
                "unbonding",
            ),
            (json!({}), false, "not a record"),
        ];
        for (r, want, why) in cases {
            assert_eq!(is_live(&r, 1000, 300), want, "{why}");
        }
    }
}
