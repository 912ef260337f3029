//! Settlement arithmetic and the settle operation.
//!
//! [`split`] is the pure formula: `R_i = ⌊P · w_i / Σ w⌋` with a 256-bit intermediate, and
//! `dust = P − Σ R_i` (< number of recipients). It is exposed so tests and clients can
//! recompute a settlement independently.

use crate::error::Error;
use crate::state::{self, Payout, Settlement};
use magnet_core::math::{mul_div, ppm_of};
use magnet_core::services::REWARDS_POOL;
use magnet_core::{community_pool, Address, Coins, Ctx, Event};
use std::collections::BTreeMap;

/// Split `pool` by `weights`; returns payouts (same order) and the dust.
/// With Σ w = 0 everything is dust. Errors if Σ w overflows u128.
pub fn split(pool: u128, weights: &[(Address, u128)]) -> Option<(Vec<Payout>, u128)> {
    let total = weights
        .iter()
        .try_fold(0u128, |a, (_, w)| a.checked_add(*w))?;
    if total == 0 {
        return Some((Vec::new(), pool));
    }
    let mut paid: u128 = 0;
    let mut out = Vec::with_capacity(weights.len());
    for (a, w) in weights {
        let amount = mul_div(pool, *w, total)?;
        paid = paid.checked_add(amount)?;
        out.push(Payout {
            operator: *a,
            weight: *w,
            amount,
        });
    }
    Some((out, pool.checked_sub(paid)?))
}

/// Settle `epoch` now. Fails with `AlreadySettled` or `NotReady` without writing anything.
pub fn settle(ctx: &mut Ctx, epoch: u64) -> Result<Settlement, Error> {
    if state::settlement(ctx.store(), epoch)?.is_some() {
        return Err(Error::AlreadySettled(epoch));
    }
    let not_ready = |why: String| Error::NotReady { epoch, why };
    let next = state::next(ctx.store())?;
    if epoch != next {
        return Err(not_ready(format!("epochs settle in order; next is {next}")));
    }
    let s = ctx.services();
    let (emission, contrib, registry) = (s.emission()?, s.contrib()?, s.registry()?);
    let pool = emission
        .epoch_pool(ctx, epoch)?
        .ok_or_else(|| not_ready("its reward pool is not minted yet".into()))?;
    let closes = contrib
        .challenge_closes_at(ctx, epoch)?
        .ok_or_else(|| not_ready("its evaluation is still running".into()))?;
    if ctx.block.time_secs < closes {
        return Err(not_ready(format!(
            "its challenge window closes at {closes}"
        )));
    }
    if contrib.open_disputes(ctx, epoch)? > 0 {
        return Err(not_ready("a notary challenge against it is open".into()));
    }
    let params = state::params(ctx.store())?;
    let works = contrib.verified(ctx, epoch)?;
    let mut eligible: BTreeMap<Address, bool> = BTreeMap::new();
    let mut contrib_w: BTreeMap<Address, u128> = BTreeMap::new();
    let mut eval_w: BTreeMap<Address, u128> = BTreeMap::new();
    let overflow = || Error::WeightOverflow(epoch);
    for w in &works {
        if w.invalidated || w.quality == 0 || w.compute == 0 {
            continue;
        }
        let ok = match eligible.get(&w.operator) {
            Some(b) => *b,
            None => {
                let b = registry.is_eligible(ctx, &w.operator, epoch)?;
                eligible.insert(w.operator, b);
                b
            }
        };
        if !ok {
            continue;
        }
        let t = registry.multiplier_milli(ctx, &w.operator, &w.kind)? as u128;
        let weight = t
            .checked_mul(w.quality)
            .and_then(|x| x.checked_mul(w.compute))
            .ok_or_else(overflow)?;
        let e = contrib_w.entry(w.operator).or_default();
        *e = e.checked_add(weight).ok_or_else(overflow)?;
        for (ev, slots) in &w.good_evaluators {
            let e = eval_w.entry(*ev).or_default();
            *e = e.checked_add(*slots as u128).ok_or_else(overflow)?;
        }
    }
    // Evaluators must still be eligible (not jailed, live in the epoch) to be paid.
    let mut evals = Vec::new();
    for (ev, w) in eval_w {
        if registry.is_eligible(ctx, &ev, epoch)? {
            evals.push((ev, w));
        }
    }
    let eval_pool = if evals.is_empty() {
        0
    } else {
        ppm_of(pool, params.evaluator_share_ppm).ok_or_else(overflow)?
    };
    // Storage custody (ADR 0107): holders eligible for the epoch, weighted T_i(storage) × C_i.
    let mut storage_w: Vec<(Address, u128)> = Vec::new();
    let mut storage_share = 0u64;
    if let Some(custody) = ctx.services().custody {
        for (op, bytes) in custody.custody(ctx, epoch)? {
            if bytes == 0 || !registry.is_eligible(ctx, &op, epoch)? {
                continue;
            }
            let t = registry.multiplier_milli(ctx, &op, "storage")? as u128;
            let w = t.checked_mul(bytes).ok_or_else(overflow)?;
            if w > 0 {
                storage_w.push((op, w));
            }
        }
        if !storage_w.is_empty() {
            storage_share = custody.storage_share_ppm(ctx)?.min(500_000);
        }
    }
    let storage_pool = ppm_of(pool, storage_share).ok_or_else(overflow)?;
    let contributor_pool = pool
        .checked_sub(eval_pool)
        .and_then(|x| x.checked_sub(storage_pool))
        .ok_or_else(overflow)?;
    let cw: Vec<(Address, u128)> = contrib_w.into_iter().collect();
    let (contributors, dust_c) = split(contributor_pool, &cw).ok_or_else(overflow)?;
    let (evaluators, dust_e) = split(eval_pool, &evals).ok_or_else(overflow)?;
    let (storage, dust_s) = split(storage_pool, &storage_w).ok_or_else(overflow)?;
    let dust = dust_c
        .checked_add(dust_e)
        .and_then(|x| x.checked_add(dust_s))
        .ok_or_else(overflow)?;
    let bank = ctx.services().bank;
    let from = Address::module(REWARDS_POOL);
    for p in contributors
        .iter()
        .chain(evaluators.iter())
        .chain(storage.iter())
    {
        bank.send(ctx, &from, &p.operator, &Coins::umag(p.amount))?;
    }
    bank.send(ctx, &from, &community_pool(), &Coins::umag(dust))?;
    let rec = Settlement {
        epoch,
        pool,
        contributor_pool,
        contributors,
        evaluators,
        dust,
        height: ctx.block.height,
        storage_pool,
        storage,
    };
    ctx.set_borsh(
        &[state::SETTLEMENT_PREFIX, &epoch.to_be_bytes()].concat(),
        &rec,
    )?;
    ctx.set_borsh(state::NEXT_KEY, &epoch.saturating_add(1))?;
    ctx.emit(
        Event::new("magnet.rewards.settled")
            .attr("epoch", epoch)
            .attr("pool", pool)
            .attr("contributors", rec.contributors.len())
            .attr("evaluators", rec.evaluators.len())
            .attr("storage_holders", rec.storage.len())
            .attr("storage_pool", storage_pool)
            .attr("dust", dust),
    );
    Ok(rec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// Σ R_i + dust = R_pool exactly, dust < number of recipients, and each R_i is the
        /// floor of its exact share.
        #[test]
        fn payouts_plus_dust_equal_the_pool(
            pool in any::<u128>(),
            ws in proptest::collection::vec(0u128..(1u128 << 117), 0..40),
        ) {
            let weights: Vec<(Address, u128)> =
                ws.iter().enumerate().map(|(i, w)| (Address([i as u8; 20]), *w)).collect();
            let (pay, dust) = split(pool, &weights).unwrap();
            let sum: u128 = pay.iter().map(|p| p.amount).sum();
            prop_assert_eq!(sum + dust, pool);
            if ws.iter().any(|w| *w > 0) {
                prop_assert!(dust < weights.len() as u128);
            }
        }

        /// Splitting one identity's weight into k parts never pays the parts more in total.
        #[test]
        fn splitting_an_identity_never_gains(
            pool in 0u128..(1u128 << 100),
            mine in 1u128..(1u128 << 60),
            others in proptest::collection::vec(1u128..(1u128 << 60), 1..10),
            k in 1usize..8,
        ) {
            let mut whole = vec![(Address([200; 20]), mine)];
            whole.extend(others.iter().enumerate().map(|(i, w)| (Address([i as u8; 20]), *w)));
            let (p1, _) = split(pool, &whole).unwrap();
            let mut parts: Vec<(Address, u128)> = (0..k)
                .map(|j| (Address([201 + j as u8; 20]), mine / k as u128 + if j == 0 { mine % k as u128 } else { 0 }))
                .collect();
            parts.extend(others.iter().enumerate().map(|(i, w)| (Address([i as u8; 20]), *w)));
            let (p2, _) = split(pool, &parts).unwrap();
            let got_whole = p1[0].amount;
            let got_split: u128 = p2[..k].iter().map(|p| p.amount).sum();
            prop_assert!(got_split <= got_whole, "split {} > whole {}", got_split, got_whole);
            prop_assert!(got_whole - got_split < k as u128, "split loses at most rounding");
        }
    }

    #[test]
    fn weights_that_overflow_are_reported_not_wrapped() {
        let w = vec![(Address([1; 20]), u128::MAX), (Address([2; 20]), 1)];
        assert!(split(100, &w).is_none());
        let w = vec![(Address([1; 20]), u128::MAX)];
        assert_eq!(split(u128::MAX, &w).unwrap().0[0].amount, u128::MAX);
    }
}
