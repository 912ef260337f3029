//! `begin_block` drives every epoch with contributions through its phases, at the first
//! block whose time reaches each boundary (so transactions in that block already see the
//! window closed):
//!
//! 1. **reveal window closed** → unrevealed commitments are slashed (`no_reveal`); each
//!    revealed contribution gets `evaluator_slots` evaluator draws, seeded by this block's
//!    hash, among live nodes other than the contributor, **weighted by bond, with
//!    replacement** — splitting a bond over k identities leaves the distribution of slots a
//!    party controls unchanged (the Sybil property); the same block hash is kept on the
//!    epoch's phase as its **evaluation seed** (`eval_seed`), from which every evaluator draws
//!    the same evaluation windows of the job's corpus (ADR 0090);
//! 2. **evaluator reveal window closed** → per contribution, the median of the revealed scores
//!    (each counted once per slot; the lower middle for an even count) if at least
//!    `min_evaluations` slots revealed, else unscored; evaluators further than `median_band`
//!    from the median are slashed (`evaluator_deviation`), committed-but-unrevealed ones are
//!    slashed (`no_reveal`); `q = clamp(median, 0, max_quality)`,
//!    `c = min(Σ entry steps · job params, compute cap)` (the entries' steps are the producers'
//!    signed, bounded claims recorded in the lineage — never the reveal's own numbers; kinds
//!    other than training have no verified compute yet and get `c = 0`); the challenge window
//!    starts.

use crate::state::{self, Assignment, EpochPhase, Phase, Status};
use magnet_core::msg::framed;
use magnet_core::{sha256, Address, Ctx, Event, ModuleError, Offence};

/// Slash `op` unless its node is gone (fully unbonded).
fn slash(ctx: &mut Ctx, op: &Address, offence: Offence, why: &str) -> Result<(), ModuleError> {
    let reg = ctx.services().registry()?;
    if reg.node(ctx, op)?.is_some() {
        ctx.services()
            .slashing()?
            .slash_node(ctx, op, offence, why)?;
    }
    Ok(())
}

/// Phase transitions; see the module docs.
pub fn begin_block(ctx: &mut Ctx) -> Result<(), ModuleError> {
    let es = magnet_core::epoch::state(ctx.store())?;
    if state::epoch_start(ctx.store(), es.current)?.is_none() {
        state::set_epoch_start(ctx.store_mut(), es.current, es.start_time_secs);
    }
    let p = state::params(ctx.store())?;
    let now = ctx.block.time_secs;
    for (e, mut ph) in state::unfinished(ctx.store())? {
        let Some(start) = state::epoch_start(ctx.store(), e)? else {
            continue;
        };
        if ph.phase == Phase::Open && now >= start.saturating_add(p.reveal_end()) {
            close_reveals(ctx, e, p.evaluator_slots)?;
            ph.phase = Phase::Evaluating;
            ph.eval_seed = Some(ctx.block.hash);
            state::set_phase(ctx, e, &ph)?;
        }
        if ph.phase == Phase::Evaluating && now >= start.saturating_add(p.eval_reveal_end()) {
            finalize(ctx, e, &p)?;
            let closes_at = start
                .saturating_add(p.eval_reveal_end())
                .saturating_add(p.challenge_window_secs);
            state::set_phase(
                ctx,
                e,
                &EpochPhase {
                    phase: Phase::Final { closes_at },
                    count: ph.count,
                    eval_seed: ph.eval_seed,
                },
            )?;
            ctx.emit(
                Event::new("magnet.contrib.epoch_final")
                    .attr("epoch", e)
                    .attr("challenge_closes_at", closes_at),
            );
        }
    }
    Ok(())
}

/// Draw `slots` evaluators for one contribution: stake-weighted, with replacement.
pub fn draw(
    seed: &[u8; 32],
    epoch: u64,
    job: u64,
    contributor: &Address,
    candidates: &[(Address, u128)],
    slots: u32,
) -> Vec<(Address, u32)> {
    let total: u128 = candidates
        .iter()
        .fold(0u128, |a, (_, w)| a.saturating_add(*w));
    let mut out: std::collections::BTreeMap<Address, u32> = Default::default();
    if total == 0 {
        return Vec::new();
    }
    for j in 0..slots {
        let h = sha256(&framed(&[
            b"MAGNET/contrib/assign/v1",
            seed,
            &epoch.to_be_bytes(),
            &job.to_be_bytes(),
            contributor.as_bytes(),
            &j.to_be_bytes(),
        ]));
        let mut r = [0u8; 16];
        r.copy_from_slice(&h[..16]);
        if let Some(a) = pick(u128::from_be_bytes(r) % total, candidates) {
            *out.entry(a).or_default() += 1;
        }
    }
    out.into_iter().collect()
}

/// The candidate whose stake interval contains `x` (intervals laid out in list order).
pub fn pick(mut x: u128, candidates: &[(Address, u128)]) -> Option<Address> {
    for (a, w) in candidates {
        if x < *w {
            return Some(*a);
        }
        x -= *w;
    }
    None
}

fn close_reveals(ctx: &mut Ctx, e: u64, slots: u32) -> Result<(), ModuleError> {
    let reg = ctx.services().registry()?;
    // Evaluators run the model: tiers that only store are never drawn.
    let mut live: Vec<(Address, u128)> = Vec::new();
    for n in reg.live_nodes(ctx)? {
        if reg.tier_does(ctx, &n.tier, "training")? || reg.tier_does(ctx, &n.tier, "inference")? {
            live.push((n.operator, n.bond));
        }
    }
    let seed = ctx.block.hash;
    for mut c in state::contributions(ctx.store(), e)? {
        match c.status {
            Status::Committed => {
                c.status = Status::NoReveal;
                state::set_contribution(ctx, &c)?;
                slash(
                    ctx,
                    &c.operator,
                    Offence::NoReveal,
                    &format!("no reveal, epoch {e} job {}", c.job),
                )?;
            }
            Status::Revealed => {
                let cands: Vec<(Address, u128)> = live
                    .iter()
                    .filter(|(a, _)| *a != c.operator)
                    .cloned()
                    .collect();
                for (ev, n) in draw(&seed, e, c.job, &c.operator, &cands, slots) {
                    let a = Assignment {
                        slots: n,
                        commitment: None,
                        score: None,
                        mismatched: false,
                    };
                    ctx.set_borsh(&state::a_key(e, c.job, &c.operator, &ev), &a)?;
                    ctx.emit(
                        Event::new("magnet.contrib.evaluator_assigned")
                            .attr("epoch", e)
                            .attr("job", c.job)
                            .attr("contributor", c.operator)
                            .attr("evaluator", ev)
                            .attr("slots", n),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Lower median of a multiset given as (value, multiplicity), sorted here.
pub fn lower_median(mut xs: Vec<(i64, u32)>) -> Option<i64> {
    let n: u64 = xs.iter().map(|(_, m)| *m as u64).sum();
    if n == 0 {
        return None;
    }
    xs.sort();
    let idx = (n - 1) / 2;
    let mut seen = 0u64;
    for (v, m) in xs {
        seen += m as u64;
        if seen > idx {
            return Some(v);
        }
    }
    None
}

fn finalize(ctx: &mut Ctx, e: u64, p: &crate::params::Params) -> Result<(), ModuleError> {
    let reg = ctx.services().registry()?;
    for mut c in state::contributions(ctx.store(), e)? {
        if c.status != Status::Revealed {
            continue;
        }
        let assigned = state::assignments(ctx.store(), e, c.job, &c.operator)?;
        for (ev, a) in &assigned {
            if a.commitment.is_some() && a.score.is_none() && !a.mismatched {
                slash(
                    ctx,
                    ev,
                    Offence::NoReveal,
                    &format!("no score reveal, epoch {e} job {}", c.job),
                )?;
            }
        }
        let scores: Vec<(i64, u32)> = assigned
            .iter()
            .filter_map(|(_, a)| a.score.map(|s| (s, a.slots)))
            .collect();
        let n: u64 = scores.iter().map(|(_, m)| *m as u64).sum();
        let median = if n >= p.min_evaluations as u64 {
            lower_median(scores)
        } else {
            None
        };
        match median {
            None => {
                c.status = Status::Unscored;
            }
            Some(med) => {
                c.status = Status::Scored;
                c.median = Some(med);
                for (ev, a) in &assigned {
                    let Some(s) = a.score else { continue };
                    let dev = (s as i128 - med as i128).unsigned_abs();
                    if dev > p.median_band as u128 {
                        slash(
                            ctx,
                            ev,
                            Offence::EvaluatorDeviation,
                            &format!("score {s} vs median {med}, epoch {e} job {}", c.job),
                        )?;
                    } else {
                        c.good_evaluators.push((*ev, a.slots));
                    }
                }
                c.quality = (med.max(0) as u128).min(p.max_quality as u128);
                let raw = c.entry_compute;
                let cap = if reg.node(ctx, &c.operator)?.is_some() {
                    reg.compute_cap(ctx, &c.operator)?
                } else {
                    0
                };
                c.compute = raw.min(cap).min(u64::MAX as u128);
            }
        }
        state::set_contribution(ctx, &c)?;
        ctx.emit(
            Event::new("magnet.contrib.scored")
                .attr("epoch", e)
                .attr("job", c.job)
                .attr("operator", c.operator)
                .attr("quality", c.quality)
                .attr("compute", c.compute),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_lower_median_counts_each_score_once_per_slot() {
        assert_eq!(lower_median(vec![(5, 1), (1, 1), (3, 1)]), Some(3));
        assert_eq!(lower_median(vec![(5, 1), (1, 1), (3, 1), (9, 1)]), Some(3));
        assert_eq!(lower_median(vec![(9, 3), (1, 2)]), Some(9));
        assert_eq!(lower_median(vec![]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Every point of `[0, Σ stake)` maps to exactly one candidate, and a party owns
        /// exactly as many points as its stake — however it splits that stake into
        /// identities and wherever those identities sort. Draws are uniform points, so the
        /// distribution of slots a party controls does not change with splitting.
        #[test]
        fn splitting_a_bond_never_changes_the_chance_of_being_drawn(
            others in proptest::collection::vec(1u128..200, 1..6),
            party in 1u128..400,
            k in 1usize..6,
            salt in any::<u8>(),
        ) {
            let mut cands: Vec<(Address, u128)> = others
                .iter()
                .enumerate()
                .map(|(i, w)| (Address([i as u8 * 2 + 1; 20]), *w))
                .collect();
            let mut mine = Vec::new();
            for j in 0..k {
                let w = party / k as u128 + if j == 0 { party % k as u128 } else { 0 };
                let a = Address([salt.wrapping_add(j as u8 * 37) | 0x80; 20]);
                if w > 0 && !cands.iter().any(|(b, _)| *b == a) {
                    cands.push((a, w));
                    mine.push(a);
                }
            }
            cands.sort();
            let total: u128 = cands.iter().map(|(_, w)| w).sum();
            let party_stake: u128 = cands.iter().filter(|(a, _)| mine.contains(a)).map(|(_, w)| w).sum();
            let owned = (0..total).filter(|x| pick(*x, &cands).is_some_and(|a| mine.contains(&a))).count() as u128;
            prop_assert_eq!(owned, party_stake);
            prop_assert!(pick(total, &cands).is_none());
        }
    }
}
