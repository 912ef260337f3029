//! `end_epoch(e)`, in this order:
//! 1. **judge** `e`: every challenge of `e` proven → its holder is credited `Σ shard_len`
//!    (if it proved *all* its challenges); any unproven one → the holder's node bond is slashed
//!    `audit_fail_slash_ppm` once for the epoch (offence `storage_audit_failed`), the shard is
//!    marked failed (reassignable), and the holder's failing streak grows; at
//!    `jail_after_failures` consecutive failing epochs the slash also jails it.
//! 2. **collect** stripes whose `expires_epoch ≤ e`, except a non-delta stripe whose label is
//!    the current lineage head of its job (asked of the jobs service).
//! 3. **draw** the challenges of `e+1` (only when `e+1` is the running epoch: when several
//!    epochs end in one block, the ones already over get none): one leaf per shard of every
//!    live stripe whose holder is bonded and not jailed, from the seed `ctx.block.hash` (the
//!    block at whose end `e+1` begins).

use crate::state::{self, Challenge, EpochTotals, HolderEpoch};
use magnet_core::{Address, Ctx, Event, ModuleError, Offence};
use magnet_rounds::custody::challenge_leaf;
use std::collections::BTreeMap;

/// Challenges are kept this many epochs after their own, for queries.
pub const CHALLENGE_HISTORY_EPOCHS: u64 = 8;

/// The epoch-end hook.
pub fn end_epoch(ctx: &mut Ctx, e: u64) -> Result<(), ModuleError> {
    judge(ctx, e)?;
    collect(ctx, e)?;
    let current = magnet_core::epoch::state(ctx.store())?.current;
    if e.checked_add(1) == Some(current) {
        draw(ctx, current)?;
    }
    if e >= CHALLENGE_HISTORY_EPOCHS {
        let old = e - CHALLENGE_HISTORY_EPOCHS;
        let p = [state::CHALLENGE_PREFIX, &old.to_be_bytes()].concat();
        for (k, _) in ctx.scan_prefix(&p)? {
            ctx.delete(&k)?;
        }
    }
    Ok(())
}

fn operator(ctx: &mut Ctx, node: &Address) -> Result<Option<Address>, ModuleError> {
    let reg = ctx.services().registry()?;
    match reg.operator_of(ctx, node)? {
        Some(op) if reg.node(ctx, &op)?.is_some() => Ok(Some(op)),
        _ => Ok(None),
    }
}

/// Judge the challenges of `e`.
pub fn judge(ctx: &mut Ctx, e: u64) -> Result<(), ModuleError> {
    let all = state::challenges(ctx.store(), e, None)?;
    if all.is_empty() {
        return Ok(());
    }
    let p = state::params(ctx.store())?;
    let mut by_holder: BTreeMap<Address, Vec<Challenge>> = BTreeMap::new();
    for c in all {
        by_holder.entry(c.holder).or_default().push(c);
    }
    let mut t = state::totals(ctx.store(), e)?.unwrap_or(EpochTotals {
        epoch: e,
        ..Default::default()
    });
    t.failed = 0;
    for (holder, cs) in by_holder {
        let op = operator(ctx, &holder)?;
        let failed: Vec<&Challenge> = cs.iter().filter(|c| !c.proven).collect();
        // Shards proven clear an earlier failure mark; failed ones get one.
        for c in &cs {
            if let Some(mut s) = state::stripe(ctx.store(), &c.object)? {
                if let Some(sh) = s.shards.get_mut(c.index as usize) {
                    if sh.holder == holder {
                        let mark = if c.proven { None } else { Some(e) };
                        if sh.failed_epoch != mark {
                            sh.failed_epoch = mark;
                            state::update_stripe(ctx, &s)?;
                        }
                    }
                }
            }
        }
        let mut h: HolderEpoch = state::hstat(ctx, &holder, e)?;
        h.operator = op;
        h.failed = failed.len() as u64;
        if failed.is_empty() {
            let bytes = cs
                .iter()
                .try_fold(0u128, |a, c| a.checked_add(c.shard_len as u128))
                .ok_or_else(|| ModuleError::overflow("custody bytes"))?;
            h.custody_bytes = bytes;
            state::set_streak(ctx, &holder, 0)?;
            if let Some(op) = op {
                state::add_credit(ctx, e, &op, bytes)?;
                t.custody_bytes = t.custody_bytes.saturating_add(bytes);
                t.holders_credited = t.holders_credited.saturating_add(1);
            }
        } else {
            t.failed = t.failed.saturating_add(failed.len() as u64);
            let streak = state::streak(ctx.store(), &holder)?.saturating_add(1);
            state::set_streak(ctx, &holder, streak)?;
            let jail = streak >= p.jail_after_failures;
            if let Some(op) = op {
                let evidence = format!(
                    "{} of {} challenged shards unproven in epoch {e} (failing epochs in a row: {streak})",
                    failed.len(),
                    cs.len()
                );
                h.slashed = ctx.services().slashing()?.slash_node_at(
                    ctx,
                    &op,
                    Offence::StorageAuditFailed,
                    p.audit_fail_slash_ppm,
                    jail,
                    &evidence,
                )?;
                h.jailed = jail;
                t.holders_slashed = t.holders_slashed.saturating_add(1);
            }
            for c in &failed {
                ctx.emit(
                    Event::new("magnet.custody.audit_failed")
                        .attr("epoch", e)
                        .attr("holder", holder)
                        .attr("object", hex::encode(c.object))
                        .attr("index", c.index),
                );
            }
        }
        state::set_hstat(ctx, &holder, &h)?;
    }
    t.judged = true;
    state::set_totals(ctx, &t)?;
    ctx.emit(
        Event::new("magnet.custody.judged")
            .attr("epoch", e)
            .attr("proven", t.proven)
            .attr("failed", t.failed)
            .attr("custody_bytes", t.custody_bytes),
    );
    Ok(())
}

/// Drop stripes that expired at the end of `e`.
pub fn collect(ctx: &mut Ctx, e: u64) -> Result<(), ModuleError> {
    let jobs = ctx.services().jobs;
    for s in state::stripes(ctx.store())? {
        if s.expires_epoch > e {
            continue;
        }
        if s.kind != "delta" {
            if let Some(j) = jobs {
                if j.lineage_head(ctx, s.job_id)? == Some(s.label) {
                    continue; // the job's current head is kept
                }
            }
        }
        state::delete_stripe(ctx, &s)?;
        ctx.emit(
            Event::new("magnet.custody.stripe_expired")
                .attr("object", hex::encode(s.object))
                .attr("kind", &s.kind)
                .attr("epoch", e),
        );
    }
    Ok(())
}

/// Draw the challenges of `epoch` from `ctx.block.hash`.
pub fn draw(ctx: &mut Ctx, epoch: u64) -> Result<(), ModuleError> {
    let seed = ctx.block.hash;
    let reg = ctx.services().registry()?;
    let mut standing: BTreeMap<Address, bool> = BTreeMap::new();
    let mut per_holder: BTreeMap<Address, u64> = BTreeMap::new();
    let mut n = 0u64;
    for s in state::stripes(ctx.store())? {
        for (i, sh) in s.shards.iter().enumerate() {
            let ok = match standing.get(&sh.holder) {
                Some(b) => *b,
                None => {
                    let b = match reg.operator_of(ctx, &sh.holder)? {
                        Some(op) => reg
                            .node(ctx, &op)?
                            .is_some_and(|info| info.active && !info.jailed),
                        None => false,
                    };
                    standing.insert(sh.holder, b);
                    b
                }
            };
            if !ok {
                continue; // reassignable already; nobody to audit
            }
            let index = i as u32;
            let c = Challenge {
                epoch,
                holder: sh.holder,
                object: s.object,
                index,
                leaf: challenge_leaf(&seed, &s.object, index, s.shard_len),
                root: sh.root,
                shard_len: s.shard_len,
                proven: false,
            };
            ctx.set_borsh(
                &state::challenge_key(epoch, &sh.holder, &s.object, index),
                &c,
            )?;
            *per_holder.entry(sh.holder).or_default() += 1;
            n += 1;
        }
    }
    for (holder, k) in per_holder {
        let mut h = state::hstat(ctx, &holder, epoch)?;
        h.challenged = h.challenged.saturating_add(k);
        state::set_hstat(ctx, &holder, &h)?;
    }
    let mut t = state::totals(ctx.store(), epoch)?.unwrap_or_default();
    t.epoch = epoch;
    t.seed = seed;
    t.challenges = n;
    state::set_totals(ctx, &t)?;
    if n > 0 {
        ctx.emit(
            Event::new("magnet.custody.challenges_drawn")
                .attr("epoch", epoch)
                .attr("challenges", n)
                .attr("seed", hex::encode(seed)),
        );
    }
    Ok(())
}
