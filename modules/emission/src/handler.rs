//! Minting under caps, and the fee split.
//!
//! ## Caps over exact sliding windows
//! A cap of `C` per window of length `W` (seconds or heights) is enforced exactly: the
//! module keeps a log of mints by position (one entry per block; several epochs ending in one
//! block add to the same entry) and allows a mint at position `x` only while the entries in
//! `(x − W, x]` plus the new amount stay ≤ `C`. Every window `[s, s+W)` that ends at or
//! after a mint lies inside the window checked at its last mint, so **every** window of
//! length `W`, wherever it starts, sums to at most `C` — whatever block times a proposer
//! picks. Entries older than `W` are pruned, so the log holds at most one entry per block of
//! the window. Four windows are kept: 24 h and 365 d of block time, and `blocks_per_day` and
//! `365·blocks_per_day` heights (so a clock pushed forward cannot stretch the caps).

use crate::params::{Params, DAY_SECS, YEAR_SECS};
use crate::state::{self, EpochPool, FeeSplit, MINTED_KEY, WIN_PREFIX};
use magnet_core::math::{mul_div, ppm_of};
use magnet_core::services::{FEE_COLLECTOR, REWARDS_POOL};
use magnet_core::{community_pool, Address, Coins, Ctx, Event, ModuleError, NATIVE_DENOM};

/// One capped window.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    /// Store tag.
    pub tag: u8,
    /// Length (secs or heights).
    pub len: u64,
    /// Cap over any span of `len`.
    pub cap: u128,
    /// Position of this block (time or height).
    pub pos: u64,
}

impl Window {
    fn key(&self, pos: u64) -> Vec<u8> {
        [WIN_PREFIX, &[self.tag], &pos.to_be_bytes()].concat()
    }
    /// First position still inside the window that ends at this position.
    fn lo(&self) -> u64 {
        self.pos.saturating_add(1).saturating_sub(self.len)
    }
    /// Minted in `(pos − len, pos]`.
    pub fn used(&self, ctx: &mut Ctx) -> Result<u128, ModuleError> {
        let rows = ctx.store().range(
            &self.key(self.lo()),
            Some(&self.key(self.pos.saturating_add(1))),
        );
        let mut sum: u128 = 0;
        for (k, v) in rows {
            let n: u128 =
                borsh::from_slice(&v).map_err(|e| ModuleError::corrupt(&k, &e.to_string()))?;
            sum = sum
                .checked_add(n)
                .ok_or_else(|| ModuleError::corrupt(&k, "window sum overflows"))?;
        }
        Ok(sum)
    }
    /// Record `amount` at this position and drop entries that left the window.
    pub fn add(&self, ctx: &mut Ctx, amount: u128) -> Result<(), ModuleError> {
        let k = self.key(self.pos);
        let cur: u128 = ctx.get_borsh(&k)?.unwrap_or(0);
        let new = cur
            .checked_add(amount)
            .ok_or_else(|| ModuleError::corrupt(&k, "window entry overflows"))?;
        ctx.set_borsh(&k, &new)?;
        for (old, _) in ctx.store().range(&self.key(0), Some(&self.key(self.lo()))) {
            ctx.delete(&old)?;
        }
        Ok(())
    }
}

/// The four windows at the current block.
pub fn windows(p: &Params, time: u64, height: u64) -> [Window; 4] {
    let year_blocks = p.blocks_per_day.saturating_mul(365);
    [
        Window {
            tag: b'd',
            len: DAY_SECS,
            cap: p.daily_cap,
            pos: time,
        },
        Window {
            tag: b'y',
            len: YEAR_SECS,
            cap: p.annual_cap,
            pos: time,
        },
        Window {
            tag: b'h',
            len: p.blocks_per_day,
            cap: p.daily_cap,
            pos: height,
        },
        Window {
            tag: b'Y',
            len: year_blocks,
            cap: p.annual_cap,
            pos: height,
        },
    ]
}

/// Scheduled emission for one epoch of `duration_secs` at block time `time`.
pub fn scheduled(p: &Params, genesis_time: u64, time: u64, duration_secs: u64) -> u128 {
    let years = time.saturating_sub(genesis_time) / YEAR_SECS;
    let mut annual = p.initial_annual_emission;
    let keep = 1_000_000u64.saturating_sub(p.decay_ppm_per_year.min(1_000_000));
    for _ in 0..years.min(1_000) {
        annual = ppm_of(annual, keep).unwrap_or(0);
        if annual == 0 {
            break;
        }
    }
    mul_div(annual, duration_secs as u128, YEAR_SECS as u128).unwrap_or(u128::MAX)
}

/// Mint epoch `epoch`'s pool into the rewards pool account.
pub fn mint_epoch(ctx: &mut Ctx, epoch: u64) -> Result<EpochPool, ModuleError> {
    let p = state::params(ctx.store())?;
    let genesis_time = magnet_core::store::get_borsh::<u64>(ctx.store(), state::GENESIS_TIME_KEY)
        .map_err(|e| ModuleError::corrupt(state::GENESIS_TIME_KEY, &e.to_string()))?
        .unwrap_or(0);
    let duration = magnet_core::epoch::state(ctx.store())?.params.duration_secs;
    let (time, height) = (ctx.block.time_secs, ctx.block.height);
    let want = scheduled(&p, genesis_time, time, duration);
    let mut mint = want;
    let wins = windows(&p, time, height);
    for w in &wins {
        let room = w.cap.saturating_sub(w.used(ctx)?);
        mint = mint.min(room);
    }
    if mint > 0 {
        for w in &wins {
            w.add(ctx, mint)?;
        }
        ctx.services()
            .bank
            .mint(ctx, &Address::module(REWARDS_POOL), &Coins::umag(mint))?;
        let total = state::minted_total(ctx.store())?
            .checked_add(mint)
            .ok_or_else(|| ModuleError::corrupt(MINTED_KEY, "minted total overflows"))?;
        ctx.set_borsh(MINTED_KEY, &total)?;
    }
    let pool = EpochPool {
        epoch,
        scheduled: want,
        minted: mint,
        time_secs: time,
        height,
    };
    state::set_pool(ctx, &pool)?;
    ctx.emit(
        Event::new("magnet.emission.minted")
            .attr("epoch", epoch)
            .attr("scheduled", want)
            .attr("minted", mint),
    );
    Ok(pool)
}

/// Split the fees collected in the previous block: burn, validators (pro rata to power among
/// those that signed), community pool (its share, unpayable validator shares, dust).
pub fn split_fees(ctx: &mut Ctx) -> Result<Option<FeeSplit>, ModuleError> {
    let collector = Address::module(FEE_COLLECTOR);
    let bank = ctx.services().bank;
    let total = bank.balance(ctx, &collector, NATIVE_DENOM)?;
    if total == 0 {
        return Ok(None);
    }
    let p = state::params(ctx.store())?;
    let burned = ppm_of(total, p.fee_burn_ppm).unwrap_or(0);
    let val_share = ppm_of(total, p.fee_validators_ppm).unwrap_or(0);
    bank.burn(ctx, &collector, &Coins::umag(burned))?;
    let votes: Vec<_> = ctx
        .block
        .last_votes
        .iter()
        .filter(|v| v.signed && v.power > 0)
        .cloned()
        .collect();
    let total_power = votes
        .iter()
        .fold(0u128, |s, v| s.saturating_add(u128::from(v.power)));
    let mut paid: u128 = 0;
    if let (Some(vals), true) = (ctx.services().validators, total_power > 0) {
        for v in &votes {
            let Some(to) = vals.reward_address(ctx, &v.validator)? else {
                continue;
            };
            let amt = mul_div(val_share, v.power as u128, total_power).unwrap_or(0);
            bank.send(ctx, &collector, &to, &Coins::umag(amt))?;
            paid = paid.saturating_add(amt);
        }
    }
    let community = total
        .checked_sub(burned)
        .and_then(|x| x.checked_sub(paid))
        .ok_or_else(|| magnet_core::ModuleError::overflow("the community's share of the fees"))?;
    bank.send(ctx, &collector, &community_pool(), &Coins::umag(community))?;
    let split = FeeSplit {
        total,
        burned,
        validators: paid,
        community,
    };
    ctx.set_borsh(
        &[state::FEES_PREFIX, &ctx.block.height.to_be_bytes()].concat(),
        &split,
    )?;
    ctx.emit(
        Event::new("magnet.emission.fees")
            .attr("total", total)
            .attr("burned", burned)
            .attr("validators", paid)
            .attr("community", community),
    );
    Ok(Some(split))
}
