//! check → execute for custody messages. Every handler validates fully before its first write;
//! the app's tx overlay discards everything anyway when a message fails.

use crate::error::Error;
use crate::msgs::{self, Msg, NewStripe, Proof};
use crate::params::Params;
use crate::state::{self, Shard, Stripe};
use magnet_core::msg::result;
use magnet_core::{Address, Ctx, Event, MsgResult, NodeInfo};
use magnet_proto::custody::v1 as pb;
use magnet_rounds::custody::{verify_leaf, ShardReceipt};

/// A registered node by its node-key address: (operator, info).
pub fn node_by_key(ctx: &mut Ctx, node: &Address) -> Result<(Address, NodeInfo), Error> {
    let reg = ctx.services().registry()?;
    let op = reg
        .operator_of(ctx, node)?
        .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
    let info = reg
        .node(ctx, &op)?
        .ok_or_else(|| Error::UnknownNode(node.to_string()))?;
    Ok((op, info))
}

fn usable(info: &NodeInfo, what: &'static str) -> Result<(), Error> {
    let why = if info.jailed {
        "jailed"
    } else if !info.active {
        "unbonding"
    } else {
        return Ok(());
    };
    Err(Error::NodeUnavailable {
        node: info.node.to_string(),
        what,
        why,
    })
}

/// A registered, active, non-jailed, storage-capable node; returns its info.
fn storage_node(ctx: &mut Ctx, node: &Address, what: &'static str) -> Result<NodeInfo, Error> {
    let (op, info) = node_by_key(ctx, node)?;
    usable(&info, what)?;
    if !ctx.services().registry()?.is_storage_capable(ctx, &op)? {
        return Err(Error::NotStorageCapable(node.to_string()));
    }
    Ok(info)
}

fn verify_receipt(
    ctx: &Ctx,
    info: &NodeInfo,
    object: &[u8; 32],
    index: u32,
    root: &[u8; 32],
    len: u64,
    sig: &[u8],
) -> Result<(), Error> {
    ShardReceipt {
        chain_id: ctx.block.chain_id.clone(),
        object: *object,
        index,
        root: *root,
        len,
    }
    .verify(&info.node_pubkey, sig)
    .map_err(|e| Error::BadReceipt {
        holder: info.node.to_string(),
        index,
        why: e.to_string(),
    })
}

fn current_epoch(ctx: &Ctx) -> Result<u64, Error> {
    Ok(magnet_core::epoch::state(ctx.store())?.current)
}

/// Execute a message.
pub fn deliver(ctx: &mut Ctx, any: &prost_types::Any) -> Result<MsgResult, Error> {
    let (msg, _) = msgs::check(any)?;
    let p = state::params(ctx.store())?;
    match msg {
        Msg::RegisterStripe { owner, stripe } => register(ctx, &p, owner, stripe),
        Msg::Prove {
            holder,
            epoch,
            proofs,
        } => prove(ctx, &p, holder, epoch, proofs),
        Msg::Reassign {
            repairer,
            object,
            index,
            new_holder,
            receipt,
        } => reassign(ctx, repairer, object, index, new_holder, receipt),
    }
}

fn register(ctx: &mut Ctx, p: &Params, owner: Address, s: NewStripe) -> Result<MsgResult, Error> {
    if s.k != p.k || s.m != p.m {
        return Err(Error::BadGeometry {
            k: s.k,
            m: s.m,
            want_k: p.k,
            want_m: p.m,
        });
    }
    let want = (p.k as usize).saturating_add(p.m as usize);
    if s.shards.len() != want {
        return Err(Error::ShardCount {
            have: s.shards.len(),
            want,
        });
    }
    if s.shard_len == 0 || s.shard_len > p.max_shard_len {
        return Err(Error::ShardLen {
            have: s.shard_len,
            max: p.max_shard_len,
        });
    }
    let max = (s.k as u128).saturating_mul(s.shard_len as u128);
    if s.size == 0 || s.size as u128 > max {
        return Err(Error::BadSize { size: s.size, max });
    }
    let (_, own) = node_by_key(ctx, &owner)?;
    usable(&own, "register a stripe")?;
    if state::stripe(ctx.store(), &s.object)?.is_some() {
        return Err(Error::AlreadyRegistered(hex::encode(s.object)));
    }
    // Distinct holders while K+M storage nodes are live; with fewer, a node may hold up to M
    // shards (the stateless check bounds it), so one lost node still leaves K.
    let mut holders: Vec<Address> = s.shards.iter().map(|x| x.holder).collect();
    holders.sort();
    if let Some(w) = holders.windows(2).find(|w| w[0] == w[1]) {
        if live_storage_nodes(ctx)?.len() >= want {
            return Err(Error::DuplicateHolder(w[0].to_string()));
        }
    }
    let mut shards = Vec::with_capacity(s.shards.len());
    for (i, pl) in s.shards.iter().enumerate() {
        let info = storage_node(ctx, &pl.holder, "hold a shard")?;
        verify_receipt(
            ctx,
            &info,
            &s.object,
            i as u32,
            &pl.root,
            s.shard_len,
            &pl.receipt,
        )?;
        shards.push(Shard {
            holder: pl.holder,
            root: pl.root,
            receipt: pl.receipt.clone(),
            failed_epoch: None,
        });
    }
    let epoch = current_epoch(ctx)?;
    let keep = if s.kind == "delta" {
        p.delta_retention_epochs
    } else {
        p.checkpoint_retention_epochs
    };
    let rec = Stripe {
        object: s.object,
        owner,
        kind: s.kind,
        label: s.label,
        job_id: s.job_id,
        size: s.size,
        k: s.k,
        m: s.m,
        stripe_size: s.stripe_size,
        shard_len: s.shard_len,
        shards,
        registered_epoch: epoch,
        expires_epoch: epoch.saturating_add(keep),
    };
    state::insert_stripe(ctx, &rec)?;
    ctx.emit(
        Event::new("magnet.custody.stripe_registered")
            .attr("object", hex::encode(rec.object))
            .attr("kind", &rec.kind)
            .attr("label", hex::encode(rec.label))
            .attr("owner", owner)
            .attr("shard_len", rec.shard_len)
            .attr("expires_epoch", rec.expires_epoch),
    );
    Ok(result(&pb::MsgRegisterStripeResponse {}))
}

fn prove(
    ctx: &mut Ctx,
    p: &Params,
    holder: Address,
    epoch: u64,
    proofs: Vec<Proof>,
) -> Result<MsgResult, Error> {
    if proofs.len() as u64 > p.max_proofs_per_msg {
        return Err(Error::ProofCount {
            have: proofs.len(),
            max: p.max_proofs_per_msg,
        });
    }
    let current = current_epoch(ctx)?;
    if epoch != current {
        return Err(Error::WrongEpoch {
            got: epoch,
            current,
        });
    }
    let mut accepted = 0u32;
    for pr in &proofs {
        let k = state::challenge_key(epoch, &holder, &pr.object, pr.index);
        let mut c: state::Challenge = ctx.get_borsh(&k)?.ok_or_else(|| Error::NoChallenge {
            holder: holder.to_string(),
            object: hex::encode(pr.object),
            index: pr.index,
            epoch,
        })?;
        if c.proven {
            return Err(Error::DuplicateProof {
                object: hex::encode(pr.object),
                index: pr.index,
                epoch,
            });
        }
        if !verify_leaf(&c.root, c.shard_len, c.leaf, &pr.leaf, &pr.path) {
            return Err(Error::BadProof {
                object: hex::encode(pr.object),
                index: pr.index,
                leaf: c.leaf,
                why: format!(
                    "{} leaf bytes, {} path steps do not hash to the root",
                    pr.leaf.len(),
                    pr.path.len()
                ),
            });
        }
        c.proven = true;
        ctx.set_borsh(&k, &c)?;
        accepted = accepted.saturating_add(1);
    }
    let mut t = state::totals(ctx.store(), epoch)?.unwrap_or_default();
    t.epoch = epoch;
    t.proven = t.proven.saturating_add(accepted as u64);
    state::set_totals(ctx, &t)?;
    let mut h = state::hstat(ctx, &holder, epoch)?;
    h.proven = h.proven.saturating_add(accepted as u64);
    state::set_hstat(ctx, &holder, &h)?;
    ctx.emit(
        Event::new("magnet.custody.proven")
            .attr("holder", holder)
            .attr("epoch", epoch)
            .attr("proofs", accepted),
    );
    Ok(result(&pb::MsgProveCustodyResponse { accepted }))
}

/// Why the holder of a shard may lose it, or `None` if it is in good standing.
/// Node-key addresses of the storage-capable nodes that are live now (the registry's
/// liveness rule).
fn live_storage_nodes(ctx: &mut Ctx) -> Result<Vec<Address>, Error> {
    let reg = ctx.services().registry()?;
    let mut out = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.is_storage_capable(ctx, &n.operator)? {
            out.push(n.node);
        }
    }
    Ok(out)
}

fn reassignable(ctx: &mut Ctx, sh: &Shard) -> Result<Option<&'static str>, Error> {
    if sh.failed_epoch.is_some() {
        return Ok(Some("failed an audit"));
    }
    let reg = ctx.services().registry()?;
    let Some(op) = reg.operator_of(ctx, &sh.holder)? else {
        return Ok(Some("no longer registered"));
    };
    let Some(info) = reg.node(ctx, &op)? else {
        return Ok(Some("no longer registered"));
    };
    if info.jailed {
        return Ok(Some("jailed"));
    }
    if !info.active {
        return Ok(Some("unbonding"));
    }
    let last = reg.last_heartbeat(ctx, &op)?;
    let window = reg.liveness_window_secs(ctx)?;
    if last == 0 || ctx.block.time_secs.saturating_sub(last) > window {
        return Ok(Some("not live"));
    }
    Ok(None)
}

fn reassign(
    ctx: &mut Ctx,
    repairer: Address,
    object: [u8; 32],
    index: u32,
    new_holder: Address,
    receipt: Vec<u8>,
) -> Result<MsgResult, Error> {
    storage_node(ctx, &repairer, "repair a shard")?;
    let mut s = state::stripe(ctx.store(), &object)?
        .ok_or_else(|| Error::UnknownStripe(hex::encode(object)))?;
    let len = s.shards.len();
    let sh = s
        .shards
        .get(index as usize)
        .cloned()
        .ok_or(Error::BadIndex { index, len })?;
    let Some(why) = reassignable(ctx, &sh)? else {
        return Err(Error::HolderInGoodStanding {
            object: hex::encode(object),
            index,
            holder: sh.holder.to_string(),
        });
    };
    // The new holder is outside the stripe; or, when no live storage node outside it is
    // left, a live holder taking a second shard, never more than M.
    let already = s.shards.iter().filter(|x| x.holder == new_holder).count() as u32;
    if new_holder == repairer || already >= s.m.max(1) {
        return Err(Error::NewHolderInStripe(new_holder.to_string()));
    }
    if already > 0 {
        let spare = live_storage_nodes(ctx)?
            .into_iter()
            .any(|n| s.shards.iter().all(|x| x.holder != n));
        if spare {
            return Err(Error::NewHolderInStripe(new_holder.to_string()));
        }
    }
    let info = storage_node(ctx, &new_holder, "hold a shard")?;
    verify_receipt(ctx, &info, &object, index, &sh.root, s.shard_len, &receipt)?;
    let old = sh.holder;
    if let Some(x) = s.shards.get_mut(index as usize) {
        x.holder = new_holder;
        x.receipt = receipt;
        x.failed_epoch = None;
    }
    state::update_stripe(ctx, &s)?;
    state::move_holder(ctx, &object, index, &old, &new_holder)?;
    let epoch = current_epoch(ctx)?;
    let mut h = state::hstat(ctx, &repairer, epoch)?;
    h.repaired_bytes = h.repaired_bytes.saturating_add(s.shard_len as u128);
    state::set_hstat(ctx, &repairer, &h)?;
    ctx.emit(
        Event::new("magnet.custody.reassigned")
            .attr("object", hex::encode(object))
            .attr("index", index)
            .attr("from", old)
            .attr("to", new_holder)
            .attr("repairer", repairer)
            .attr("reason", why),
    );
    Ok(result(&pb::MsgReassignShardResponse {}))
}
