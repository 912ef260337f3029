//! # magnet-registry — nodes, tiers, bonds, heartbeats, jailing, governance bonds
//!
//! An **operator account** registers a node with `MsgRegisterNode{node pubkey, tier,
//! endpoint, region, hardware profile, bond}`. The bond moves into the registry escrow. The
//! **node key** is a separate secp256k1 key: it signs only the node's work (heartbeats, and
//! in other modules commits, reveals and evaluations) — every message that moves a bond
//! (`MsgChangeTier`, `MsgUnbondNode`, `MsgUnjail`) must be signed by the operator, so a
//! stolen node key cannot move the bond. State is keyed by operator address;
//! `nodeId = "node-" ‖ hex(SHA-256(compressed node pubkey))[..16]` is a display/p2p name.
//!
//! Tiers (`orchestrator` 3.0×, `gpu_compute` 1.0×, `storage_node` 0.3×, `cpu_only` 0.3×,
//! `mobile_light` 0.1×) each have a minimum bond (higher for higher multipliers), the work
//! kinds their multiplier applies to (other kinds earn at most 1.0×) and a compute cap that
//! scales with the bond. Heartbeats count at most once per `heartbeat_interval_secs`; a node
//! needs `min_heartbeats_per_epoch` of them to be eligible for an epoch's rewards, and one
//! registered before an epoch that misses them there is slashed for `downtime`. Unbonding
//! takes `unbonding_delay_secs` and the bond stays slashable until it completes. Anyone may
//! post a governance bond (`MsgBondGov`) that only carries voting weight.
//!
//! **SSD gate (ADR 0107).** `MsgRegisterNode` and `MsgChangeTier` carry the operator-signed
//! result of the O_DIRECT SSD provisioning test (`SsdReport`, kB/s). Tier `storage_node` is
//! refused without a report at or above `ssd_min_read_mbps` / `ssd_min_write_mbps`; other
//! tiers register without one. A node is *storage-capable* (may hold custody shards) when its
//! tier lists the `storage` kind and its stored report passes.
//!
//! **Inference services (ADR 0109).** The node key advertises that it serves a job's model
//! (`MsgAdvertiseService{node, job, endpoint, price_per_token, max_context}`; the job must
//! have a merged round; at most `max_services_per_node` jobs per node; re-advertising a job
//! replaces it) and withdraws it with `MsgWithdrawService{node, job}`. Jailed and unbonding
//! nodes' advertisements are kept but not listed; they are deleted when the unbonding
//! completes. Clients pay the listed *operator* with `MsgPayForInference`.
//!
//! Queries (JSON): `/magnet.registry.v1/params`, `/magnet.registry.v1/node` (data: operator
//! bech32), `/magnet.registry.v1/nodes`, `/magnet.registry.v1/storage_nodes` (node-key addresses
//! of storage-capable nodes), `/magnet.registry.v1/services` (data: empty or a job id),
//! `/magnet.registry.v1/gov_bond` (data: owner bech32).
//! Msg constructors for clients: [`msgs::register_node`], [`msgs::heartbeat`],
//! [`msgs::advertise_service`], …
//!
//! # Security
//! Guarantees: escrow balance = Σ bonds (node + governance, bonded or unbonding); a node key
//! cannot move funds; one node per operator and one operator per node key; failed messages
//! change nothing; jailed or unbonding nodes are never live nor eligible.
//! Does not guarantee: that the hardware profile, endpoint or region are true (they are
//! self-reported; tiers are policed through verified work and challenges), nor liveness of
//! a node between heartbeats.
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod error;
pub mod handler;
pub mod hooks;
pub mod msgs;
pub mod params;
pub mod state;

pub use error::Error;
pub use params::Params;

use magnet_core::params::json;
use magnet_core::{
    Address, Ctx, Module, ModuleError, NodeInfo, NodeRegistry, QueryCtx, ValidatorUpdate,
};
use state::NodeRecord;

/// The registry module and keeper.
#[derive(Default, Clone, Copy, Debug)]
pub struct Registry;

fn info(rec: &NodeRecord) -> NodeInfo {
    NodeInfo {
        operator: rec.operator,
        node: rec.node,
        node_id: rec.node_id.clone(),
        tier: rec.tier.clone(),
        bond: rec.bond,
        jailed: rec.jailed,
        active: rec.status == state::NodeStatus::Active,
        node_pubkey: rec.node_pubkey.clone(),
    }
}

impl Module for Registry {
    fn name(&self) -> &'static str {
        "registry"
    }
    magnet_core::module_msg_methods!(msgs::type_urls, msgs::check, handler::deliver);
    magnet_core::module_params_genesis!(Params);
    fn end_block(&self, ctx: &mut Ctx) -> Result<Vec<ValidatorUpdate>, ModuleError> {
        hooks::end_block(ctx)?;
        Ok(Vec::new())
    }
    fn end_epoch(&self, ctx: &mut Ctx, epoch: u64) -> Result<(), ModuleError> {
        Ok(hooks::end_epoch(ctx, epoch)?)
    }
    fn query(
        &self,
        ctx: &QueryCtx,
        path: &str,
        data: &[u8],
    ) -> Option<Result<Vec<u8>, ModuleError>> {
        let addr = || magnet_core::msg::address("query data", String::from_utf8_lossy(data).trim());
        let r = match path {
            "/magnet.registry.v1/params" => state::params(ctx.store).and_then(|p| json(&p)),
            "/magnet.registry.v1/nodes" => state::all_nodes(ctx.store).and_then(|n| json(&n)),
            // Node-key addresses of the nodes that may hold stripes: a tier with the `storage`
            // kind and an SSD report that passes today's thresholds (ADR 0107).
            "/magnet.registry.v1/storage_nodes" => state::params(ctx.store).and_then(|p| {
                let v: Vec<String> = state::all_nodes(ctx.store)?
                    .iter()
                    .filter(|r| handler::storage_capable(&p, r))
                    .map(|r| r.node.to_string())
                    .collect();
                json(&v)
            }),
            // Advertised inference services of nodes neither jailed nor unbonding, by (job,
            // node); data: empty for all, or a job id (ADR 0109).
            "/magnet.registry.v1/services" => {
                let t = String::from_utf8_lossy(data);
                let t = t.trim();
                let job = if t.is_empty() {
                    Ok(None)
                } else {
                    t.parse::<u64>().map(Some).map_err(|_| {
                        ModuleError::invalid_request(format!(
                            "services query data must be empty or a job id, got {t:?}"
                        ))
                    })
                };
                job.and_then(|j| handler::listed_services(ctx.store, j))
                    .and_then(|v| json(&v))
            }
            "/magnet.registry.v1/node" => addr().and_then(|a| {
                let k = [state::NODE_PREFIX, a.as_bytes()].concat();
                let n: Option<NodeRecord> = ctx.get_borsh(&k)?;
                json(&n)
            }),
            "/magnet.registry.v1/gov_bond" => addr().and_then(|a| {
                let k = [state::GOV_PREFIX, a.as_bytes()].concat();
                let n: Option<u128> = ctx.get_borsh(&k)?;
                json(&n.unwrap_or(0).to_string())
            }),
            _ => return None,
        };
        Some(r)
    }
    magnet_core::module_params_methods!(Params);
}

impl NodeRegistry for Registry {
    fn node(&self, ctx: &mut Ctx, operator: &Address) -> Result<Option<NodeInfo>, ModuleError> {
        Ok(state::node(ctx, operator)?.as_ref().map(info))
    }
    fn operator_of(&self, ctx: &mut Ctx, node: &Address) -> Result<Option<Address>, ModuleError> {
        Ok(state::operator_of(ctx, node)?)
    }
    fn is_eligible(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        epoch: u64,
    ) -> Result<bool, ModuleError> {
        let Some(rec) = state::node(ctx, operator)? else {
            return Ok(false);
        };
        if handler::excluded(&rec) {
            return Ok(false);
        }
        let p = state::params(ctx.store())?;
        Ok(state::heartbeats(ctx, epoch, operator)? >= p.min_heartbeats_per_epoch)
    }
    fn live_nodes(&self, ctx: &mut Ctx) -> Result<Vec<NodeInfo>, ModuleError> {
        let p = state::params(ctx.store())?;
        let now = ctx.block.time_secs;
        Ok(state::all_nodes(ctx.store())?
            .iter()
            .filter(|r| {
                !handler::excluded(r)
                    && r.last_heartbeat > 0
                    && now.saturating_sub(r.last_heartbeat) <= p.liveness_window_secs
            })
            .map(info)
            .collect())
    }
    fn tier_does(&self, ctx: &mut Ctx, tier: &str, kind: &str) -> Result<bool, ModuleError> {
        let p = state::params(ctx.store())?;
        Ok(p.tier(tier)?.kinds.iter().any(|k| k == kind))
    }
    fn multiplier_milli(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        kind: &str,
    ) -> Result<u64, ModuleError> {
        let rec = state::must_node(ctx, operator)?;
        let p = state::params(ctx.store())?;
        Ok(handler::multiplier(&p, &rec.tier, kind)?)
    }
    fn compute_cap(&self, ctx: &mut Ctx, operator: &Address) -> Result<u128, ModuleError> {
        let rec = state::must_node(ctx, operator)?;
        let p = state::params(ctx.store())?;
        Ok(rec
            .bond
            .saturating_mul(p.tier(&rec.tier)?.compute_cap_per_umag))
    }
    fn voting_power(&self, ctx: &mut Ctx, addr: &Address) -> Result<u128, ModuleError> {
        let node = match state::node(ctx, addr)? {
            Some(r) if !handler::excluded(&r) => r.bond,
            _ => 0,
        };
        Ok(node.saturating_add(state::gov_bond(ctx, addr)?))
    }
    fn total_voting_power(&self, ctx: &mut Ctx) -> Result<u128, ModuleError> {
        let mut total: u128 = 0;
        for r in state::all_nodes(ctx.store())? {
            if !handler::excluded(&r) {
                total = total.saturating_add(r.bond);
            }
        }
        for (_, b) in state::all_gov_bonds(ctx.store())? {
            total = total.saturating_add(b);
        }
        Ok(total)
    }
    fn take_bond(
        &self,
        ctx: &mut Ctx,
        operator: &Address,
        amount: u128,
        to: &Address,
    ) -> Result<u128, ModuleError> {
        let mut rec = state::must_node(ctx, operator)?;
        let take = amount.min(rec.bond);
        rec.bond -= take;
        ctx.services()
            .bank
            .send(ctx, &state::escrow(), to, &magnet_core::Coins::umag(take))?;
        state::set_node(ctx, &rec)?;
        Ok(take)
    }
    fn is_storage_capable(&self, ctx: &mut Ctx, operator: &Address) -> Result<bool, ModuleError> {
        let Some(rec) = state::node(ctx, operator)? else {
            return Ok(false);
        };
        let p = state::params(ctx.store())?;
        Ok(handler::storage_capable(&p, &rec))
    }
    fn last_heartbeat(&self, ctx: &mut Ctx, operator: &Address) -> Result<u64, ModuleError> {
        Ok(state::node(ctx, operator)?.map_or(0, |r| r.last_heartbeat))
    }
    fn liveness_window_secs(&self, ctx: &mut Ctx) -> Result<u64, ModuleError> {
        Ok(state::params(ctx.store())?.liveness_window_secs)
    }
    fn jail(&self, ctx: &mut Ctx, operator: &Address, until_secs: u64) -> Result<(), ModuleError> {
        let mut rec = state::must_node(ctx, operator)?;
        rec.jailed = true;
        rec.jail_until = rec.jail_until.max(until_secs);
        state::set_node(ctx, &rec)?;
        ctx.emit(
            magnet_core::Event::new("magnet.registry.jailed")
                .attr("operator", operator)
                .attr("until", rec.jail_until),
        );
        Ok(())
    }
}
