//! `end_block`: jobs past their deadline move to Settling (counting work through the current
//! epoch); settling jobs settle once every counted epoch is final, past its challenge window
//! and undisputed. With no valid work the budget returns to the creator.
//!
//! Before that, every open training job whose round starts at this height gets its
//! [`Election`] snapshot: the registry's live nodes (active, not jailed, a heartbeat within the
//! liveness window), sorted by node id, this block's hash, and the leader the job's rule picks
//! from them. The next round is scheduled `blocks_per_round` later.
//!
//! Then the rounds recorded in this block are sampled for merge audits and the merge
//! challenges due are resolved ([`crate::audit::end_block`], ADR 0089), and the research
//! trials recorded in this block are sampled for re-checks and the checks due resolved
//! ([`crate::research::end_block`], ADR 0111). A research job settles by its own rule
//! ([`crate::research::try_settle`]).

use crate::state::{self, Election, Status};
use magnet_core::{Ctx, ModuleError};

/// Election snapshots of the rounds that start at this height.
fn snapshot_elections(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let h = ctx.block.height;
    let end = [state::SCHED_PREFIX, &h.saturating_add(1).to_be_bytes()].concat();
    let due = ctx.store().range(state::SCHED_PREFIX, Some(&end));
    if due.is_empty() {
        return Ok(());
    }
    let reg = ctx.services().registry()?;
    // Only tiers that train are round members (a storage node keeps stripes, not Δs).
    let mut members: Vec<String> = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.tier_does(ctx, &n.tier, "training")? {
            members.push(n.node_id);
        }
    }
    members.sort();
    members.dedup();
    for (k, v) in due {
        ctx.delete(&k)?;
        let round: u64 =
            borsh::from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        let id = u64::from_be_bytes(id);
        let Some(j) = state::job(ctx.store(), id)? else {
            continue;
        };
        let Some(t) = j.training.as_ref() else {
            continue;
        };
        if j.status != Status::Open {
            continue;
        }
        let rule = magnet_rounds::LeaderRule::parse(&t.leader_rule).unwrap_or_default();
        let leader = magnet_rounds::leader_index(members.len(), round, &ctx.block.hash, rule)
            .and_then(|i| members.get(i).cloned())
            .unwrap_or_default();
        let e = Election {
            round,
            height: h,
            block_hash: ctx.block.hash,
            rule: rule.as_str().to_string(),
            members: members.clone(),
            leader,
        };
        ctx.set_borsh(
            &[
                state::ELECTION_PREFIX,
                &id.to_be_bytes(),
                &round.to_be_bytes(),
            ]
            .concat(),
            &e,
        )?;
        let next = h.saturating_add(t.blocks_per_round);
        ctx.set_borsh(
            &[state::SCHED_PREFIX, &next.to_be_bytes(), &id.to_be_bytes()].concat(),
            &round.saturating_add(1),
        )?;
    }
    Ok(())
}

/// Deadlines and settlements.
pub fn end_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    snapshot_elections(ctx)?;
    crate::audit::end_block(ctx)?;
    crate::research::end_block(ctx)?;
    let now = ctx.block.time_secs;
    let current = magnet_core::epoch::state(ctx.store())?.current;
    let end = [state::QUEUE_PREFIX, &now.saturating_add(1).to_be_bytes()].concat();
    for (k, _) in ctx.store().range(state::QUEUE_PREFIX, Some(&end)) {
        ctx.delete(&k)?;
        let mut id = [0u8; 8];
        id.copy_from_slice(&k[k.len() - 8..]);
        if let Some(mut j) = state::job(ctx.store(), u64::from_be_bytes(id))? {
            if j.status == Status::Open {
                j.status = Status::Settling {
                    through_epoch: current,
                };
                state::set_job(ctx, &j)?;
            }
        }
    }
    for j in state::jobs(ctx.store())? {
        if let Status::Settling { through_epoch } = j.status {
            match crate::research::research(ctx.store(), j.id)? {
                Some(r) => {
                    crate::research::try_settle(ctx, j, r)?;
                }
                None => {
                    crate::handler::try_settle(ctx, j, through_epoch)?;
                }
            }
        }
    }
    Ok(())
}
