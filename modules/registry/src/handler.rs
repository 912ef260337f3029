//! check → execute for each registry message. Every handler validates fully before its first
//! write, so an error leaves state unchanged even outside the app's tx overlay.

use crate::error::Error;
use crate::msgs::{self, Msg};
use crate::state::{self, escrow, NodeRecord, NodeStatus, UnbondEntry, UnbondKind};
use magnet_core::msg::result;
use magnet_core::{Coins, Ctx, Event, MsgResult};
use magnet_proto::registry::v1 as pb;

fn now(ctx: &Ctx) -> u64 {
    ctx.block.time_secs
}

fn current_epoch(ctx: &Ctx) -> Result<u64, Error> {
    Ok(magnet_core::epoch::state(ctx.store())?.current)
}

/// Execute a checked message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    let params = state::params(ctx.store())?;
    let bank = ctx.services().bank;
    match msg {
        Msg::Register {
            operator,
            node_pubkey,
            node,
            tier,
            endpoint,
            region,
            hardware_profile,
            bond,
            ssd,
        } => {
            let t = params.tier(&tier)?;
            check_ssd(&params, &tier, ssd.as_ref())?;
            if bond < t.min_bond {
                return Err(Error::BondBelowMinimum {
                    tier,
                    have: bond,
                    min: t.min_bond,
                });
            }
            if state::node(ctx, &operator)?.is_some() {
                return Err(Error::AlreadyRegistered(operator.to_string()));
            }
            if let Some(other) = state::operator_of(ctx, &node)? {
                return Err(Error::NodeKeyInUse(other.to_string()));
            }
            bank.send(ctx, &operator, &escrow(), &Coins::umag(bond))?;
            let rec = NodeRecord {
                operator,
                node,
                node_id: state::node_id(&node_pubkey),
                node_pubkey,
                tier,
                endpoint,
                region,
                hardware_profile,
                bond,
                status: NodeStatus::Active,
                jailed: false,
                jail_until: 0,
                registered_epoch: current_epoch(ctx)?,
                last_heartbeat: 0,
                last_counted_heartbeat: 0,
                ssd,
            };
            state::set_node(ctx, &rec)?;
            state::set_operator_of(ctx, &node, &operator)?;
            ctx.emit(
                Event::new("magnet.registry.node_registered")
                    .attr("operator", operator)
                    .attr("node", node)
                    .attr("node_id", &rec.node_id)
                    .attr("tier", &rec.tier)
                    .attr("bond", bond),
            );
            Ok(result(&pb::MsgRegisterNodeResponse {
                node_id: rec.node_id,
            }))
        }
        Msg::Heartbeat { node } => {
            let op = state::operator_of(ctx, &node)?
                .ok_or_else(|| Error::UnknownNodeKey(node.to_string()))?;
            let mut rec = state::must_node(ctx, &op)?;
            if rec.status != NodeStatus::Active {
                return Err(Error::Unbonding(op.to_string()));
            }
            let t = now(ctx);
            rec.last_heartbeat = t;
            let first = rec.last_counted_heartbeat == 0;
            if first
                || t >= rec
                    .last_counted_heartbeat
                    .saturating_add(params.heartbeat_interval_secs)
            {
                rec.last_counted_heartbeat = t;
                let e = current_epoch(ctx)?;
                let n = state::heartbeats(ctx, e, &op)?;
                state::set_heartbeats(ctx, e, &op, n.saturating_add(1))?;
            }
            state::set_node(ctx, &rec)?;
            Ok(result(&pb::MsgHeartbeatResponse {}))
        }
        Msg::ChangeTier {
            operator,
            tier,
            extra_bond,
            ssd,
        } => {
            let mut rec = state::must_node(ctx, &operator)?;
            if rec.status != NodeStatus::Active {
                return Err(Error::Unbonding(operator.to_string()));
            }
            let t = params.tier(&tier)?;
            let ssd = ssd.or_else(|| rec.ssd.clone());
            check_ssd(&params, &tier, ssd.as_ref())?;
            let new_bond = rec
                .bond
                .checked_add(extra_bond)
                .ok_or_else(|| magnet_core::BankError::Overflow("node bond".into()))?;
            if new_bond < t.min_bond {
                return Err(Error::BondBelowMinimum {
                    tier,
                    have: new_bond,
                    min: t.min_bond,
                });
            }
            bank.send(ctx, &operator, &escrow(), &Coins::umag(extra_bond))?;
            rec.tier = tier;
            rec.bond = new_bond;
            rec.ssd = ssd;
            state::set_node(ctx, &rec)?;
            ctx.emit(
                Event::new("magnet.registry.tier_changed")
                    .attr("operator", operator)
                    .attr("tier", &rec.tier)
                    .attr("bond", new_bond),
            );
            Ok(result(&pb::MsgChangeTierResponse {}))
        }
        Msg::UnbondNode { operator } => {
            let mut rec = state::must_node(ctx, &operator)?;
            if rec.status != NodeStatus::Active {
                return Err(Error::Unbonding(operator.to_string()));
            }
            let at = now(ctx).saturating_add(params.unbonding_delay_secs);
            rec.status = NodeStatus::Unbonding { completes_at: at };
            state::set_node(ctx, &rec)?;
            state::push_unbond(
                ctx,
                at,
                &UnbondEntry {
                    owner: operator,
                    kind: UnbondKind::Node,
                },
            )?;
            ctx.emit(
                Event::new("magnet.registry.unbonding")
                    .attr("operator", operator)
                    .attr("completes_at", at),
            );
            Ok(result(&pb::MsgUnbondNodeResponse {
                completes_at_secs: at,
            }))
        }
        Msg::Unjail { operator } => {
            let mut rec = state::must_node(ctx, &operator)?;
            if !rec.jailed {
                return Err(Error::NotJailed(operator.to_string()));
            }
            if now(ctx) < rec.jail_until {
                return Err(Error::StillJailed {
                    operator: operator.to_string(),
                    until: rec.jail_until,
                    now: now(ctx),
                });
            }
            let min = params.tier(&rec.tier)?.min_bond;
            if rec.bond < min {
                return Err(Error::BondBelowMinimum {
                    tier: rec.tier,
                    have: rec.bond,
                    min,
                });
            }
            rec.jailed = false;
            state::set_node(ctx, &rec)?;
            ctx.emit(Event::new("magnet.registry.unjailed").attr("operator", operator));
            Ok(result(&pb::MsgUnjailResponse {}))
        }
        Msg::BondGov { owner, amount } => {
            let cur = state::gov_bond(ctx, &owner)?;
            let new = cur
                .checked_add(amount)
                .ok_or_else(|| magnet_core::BankError::Overflow("governance bond".into()))?;
            bank.send(ctx, &owner, &escrow(), &Coins::umag(amount))?;
            state::set_gov_bond(ctx, &owner, new)?;
            ctx.emit(
                Event::new("magnet.registry.gov_bonded")
                    .attr("owner", owner)
                    .attr("amount", amount),
            );
            Ok(result(&pb::MsgBondGovResponse {}))
        }
        Msg::UnbondGov { owner, amount } => {
            let cur = state::gov_bond(ctx, &owner)?;
            let left = cur.checked_sub(amount).ok_or(Error::InsufficientGovBond {
                owner: owner.to_string(),
                have: cur,
                need: amount,
            })?;
            let at = now(ctx).saturating_add(params.unbonding_delay_secs);
            state::set_gov_bond(ctx, &owner, left)?;
            state::push_unbond(
                ctx,
                at,
                &UnbondEntry {
                    owner,
                    kind: UnbondKind::Gov(amount),
                },
            )?;
            Ok(result(&pb::MsgUnbondGovResponse {
                completes_at_secs: at,
            }))
        }
        Msg::AdvertiseService {
            node,
            job,
            endpoint,
            price_per_token,
            max_context,
        } => {
            let op = state::operator_of(ctx, &node)?
                .ok_or_else(|| Error::UnknownNodeKey(node.to_string()))?;
            let rec = state::must_node(ctx, &op)?;
            if rec.jailed {
                return Err(Error::Jailed(op.to_string()));
            }
            if rec.status != NodeStatus::Active {
                return Err(Error::Unbonding(op.to_string()));
            }
            let jobs = ctx.services().jobs()?;
            match jobs.merged_rounds(ctx, job)? {
                None => return Err(Error::UnknownJob(job)),
                Some(0) => return Err(Error::NoModel(job)),
                Some(_) => {}
            }
            let replaced = state::service(ctx, &node, job)?.is_some();
            if !replaced {
                let have = state::service_jobs(ctx.store(), &node)?.len() as u64;
                if have >= params.max_services_per_node {
                    return Err(Error::TooManyServices {
                        node: node.to_string(),
                        have,
                        max: params.max_services_per_node,
                    });
                }
            }
            let svc = state::ServiceRecord {
                node,
                job,
                endpoint,
                price_per_token,
                max_context,
                height: ctx.block.height,
            };
            state::set_service(ctx, &svc)?;
            ctx.emit(
                Event::new("magnet.registry.service_advertised")
                    .attr("node", node)
                    .attr("operator", op)
                    .attr("job", job)
                    .attr("endpoint", &svc.endpoint)
                    .attr("price_per_token", price_per_token)
                    .attr("max_context", max_context)
                    .attr("replaced", replaced),
            );
            Ok(result(&pb::MsgAdvertiseServiceResponse {}))
        }
        Msg::WithdrawService { node, job } => {
            if state::service(ctx, &node, job)?.is_none() {
                return Err(Error::NoService {
                    node: node.to_string(),
                    job,
                });
            }
            state::delete_service(ctx, &node, job)?;
            ctx.emit(
                Event::new("magnet.registry.service_withdrawn")
                    .attr("node", node)
                    .attr("job", job),
            );
            Ok(result(&pb::MsgWithdrawServiceResponse {}))
        }
    }
}

/// The advertisements a query lists: those of registered nodes that are neither jailed nor
/// unbonding (ADR 0109: filtered here, not deleted, so an unjailed node's advertisements come
/// back), each with its operator and node id.
pub fn listed_services(
    store: &dyn magnet_core::KvStore,
    job: Option<u64>,
) -> Result<Vec<ServiceListing>, magnet_core::ModuleError> {
    let mut out = Vec::new();
    for s in state::services(store, job)? {
        let Some(op) = state::operator_of_in(store, &s.node)? else {
            continue;
        };
        let k = [state::NODE_PREFIX, op.as_bytes()].concat();
        let rec: Option<NodeRecord> = magnet_core::store::get_borsh(store, &k)
            .map_err(|e| magnet_core::ModuleError::corrupt(&k, &e.to_string()))?;
        let Some(rec) = rec else { continue };
        if excluded(&rec) {
            continue;
        }
        out.push(ServiceListing {
            node: s.node,
            operator: op,
            node_id: rec.node_id,
            job: s.job,
            endpoint: s.endpoint,
            price_per_token: s.price_per_token,
            max_context: s.max_context,
            height: s.height,
        });
    }
    Ok(out)
}

/// One row of `/magnet.registry.v1/services`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ServiceListing {
    /// Node-key address that advertised it.
    pub node: magnet_core::Address,
    /// The node's operator: the `server` to name in `MsgPayForInference` (jobs checks
    /// `server` against the registry by operator).
    pub operator: magnet_core::Address,
    /// `node-<16 hex>`.
    pub node_id: String,
    /// Job whose model is served.
    pub job: u64,
    /// URL of the OpenAI-compatible API.
    pub endpoint: String,
    /// umag per token (0: free), as a decimal string.
    #[serde(with = "magnet_core::coins::u128_string")]
    pub price_per_token: u128,
    /// Longest context (tokens).
    pub max_context: u64,
    /// Height the advertisement was written (or last replaced).
    pub height: u64,
}

/// Pay out a matured unbonding.
pub fn complete_unbonding(ctx: &mut Ctx, e: &UnbondEntry) -> Result<(), Error> {
    let bank = ctx.services().bank;
    let amount = match e.kind {
        UnbondKind::Gov(a) => a,
        UnbondKind::Node => {
            let Some(rec) = state::node(ctx, &e.owner)? else {
                return Ok(());
            };
            state::delete_node(ctx, &rec)?;
            // The node key is unbound: its advertisements go with it (ADR 0109).
            for job in state::service_jobs(ctx.store(), &rec.node)? {
                state::delete_service(ctx, &rec.node, job)?;
            }
            rec.bond
        }
    };
    bank.send(ctx, &escrow(), &e.owner, &Coins::umag(amount))?;
    ctx.emit(
        Event::new("magnet.registry.unbonded")
            .attr("owner", e.owner)
            .attr("amount", amount),
    );
    Ok(())
}

/// Reward multiplier for `kind` of work on `tier`.
pub fn multiplier(params: &crate::params::Params, tier: &str, kind: &str) -> Result<u64, Error> {
    let t = params.tier(tier)?;
    Ok(if t.kinds.iter().any(|k| k == kind) {
        t.multiplier_milli
    } else {
        t.multiplier_milli.min(1000)
    })
}

/// The tier that needs a passing SSD report to register (ADR 0107).
pub const SSD_GATED_TIER: &str = "storage_node";

/// Tier `storage_node` is refused without a report meeting both thresholds; other tiers
/// register without one (they are then not storage-capable).
pub fn check_ssd(
    params: &crate::params::Params,
    tier: &str,
    ssd: Option<&state::SsdRecord>,
) -> Result<(), Error> {
    if tier != SSD_GATED_TIER {
        return Ok(());
    }
    let why = match ssd {
        None => "the registration carries no SSD report".to_string(),
        Some(r) if params.ssd_passes(r) => return Ok(()),
        Some(r) => format!(
            "the report measured read {} kB/s, write {} kB/s",
            r.read_kbps, r.write_kbps
        ),
    };
    Err(Error::SsdRequired {
        why,
        min_read: params.ssd_min_read_mbps,
        min_write: params.ssd_min_write_mbps,
    })
}

/// Whether `rec` may hold storage shards: its tier lists the `storage` kind and its SSD
/// report passes the current thresholds.
pub fn storage_capable(params: &crate::params::Params, rec: &NodeRecord) -> bool {
    let kind = params
        .tier(&rec.tier)
        .is_ok_and(|t| t.kinds.iter().any(|k| k == "storage"));
    kind && rec.ssd.as_ref().is_some_and(|r| params.ssd_passes(r))
}

/// Is `rec` jailed or unbonding (excluded from work and rewards)?
pub fn excluded(rec: &NodeRecord) -> bool {
    rec.jailed || rec.status != NodeStatus::Active
}
