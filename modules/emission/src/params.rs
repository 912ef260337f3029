//! Emission params: the schedule (an annual emission that decays yearly), the caps (per day
//! and per year, each enforced both over block time and over block heights), and the fee
//! split. Economic: changes apply at the next epoch boundary.

use crate::error::Error;
use magnet_core::coins::u128_string;

/// Seconds in a day.
pub const DAY_SECS: u64 = 86_400;
/// Seconds in a (365-day) year.
pub const YEAR_SECS: u64 = 365 * DAY_SECS;

/// Emission params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Scheduled emission in the first year (umag); each epoch gets its time share.
    #[serde(with = "u128_string")]
    pub initial_annual_emission: u128,
    /// Yearly decay of the schedule (ppm, 0..=1_000_000).
    pub decay_ppm_per_year: u64,
    /// Most minted in any 24 h of block time, and in any `blocks_per_day` heights.
    #[serde(with = "u128_string")]
    pub daily_cap: u128,
    /// Most minted in any 365 days of block time, and in any `365 · blocks_per_day` heights.
    #[serde(with = "u128_string")]
    pub annual_cap: u128,
    /// Expected blocks per day: the height span of the height-based daily cap.
    pub blocks_per_day: u64,
    /// Share of fees burned (ppm).
    pub fee_burn_ppm: u64,
    /// Share of fees paid to the block's validators, pro rata to power (ppm).
    pub fee_validators_ppm: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            // 50M MAG in year one.
            initial_annual_emission: 50_000_000 * 1_000_000,
            decay_ppm_per_year: 150_000,
            // Schedule per day ≈ 136,986 MAG; the caps leave ~10 % headroom for block-time jitter.
            daily_cap: 150_000 * 1_000_000,
            annual_cap: 55_000_000 * 1_000_000,
            blocks_per_day: 14_400,
            fee_burn_ppm: 300_000,
            fee_validators_ppm: 500_000,
        }
    }
}

impl Params {
    /// Reject caps below the schedule, zero spans and splits above 100 %.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: String| Err(Error::InvalidParams(s));
        if self.decay_ppm_per_year > 1_000_000 {
            return bad("decay_ppm_per_year must be ≤ 1000000".into());
        }
        if self.annual_cap < self.initial_annual_emission {
            return bad(format!(
                "annual_cap {} is below the schedule's initial_annual_emission {}",
                self.annual_cap, self.initial_annual_emission
            ));
        }
        let daily_schedule = self.initial_annual_emission.div_ceil(365);
        if self.daily_cap < daily_schedule {
            return bad(format!(
                "daily_cap {} is below the schedule's daily emission {daily_schedule}",
                self.daily_cap
            ));
        }
        if self.daily_cap > self.annual_cap {
            return bad("daily_cap must be ≤ annual_cap".into());
        }
        if self.blocks_per_day == 0 {
            return bad("blocks_per_day must be > 0".into());
        }
        if self
            .fee_burn_ppm
            .checked_add(self.fee_validators_ppm)
            .is_none_or(|s| s > 1_000_000)
        {
            return bad("fee_burn_ppm + fee_validators_ppm must be ≤ 1000000".into());
        }
        Ok(())
    }
}

magnet_core::impl_module_params!(
    Params,
    crate::state::PARAMS_KEY,
    crate::error::Error::InvalidParams
);

#[cfg(test)]
#[allow(clippy::field_reassign_with_default)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Params::default().validate().unwrap();
    }

    #[test]
    fn caps_below_the_schedule_are_refused() {
        let mut p = Params::default();
        p.annual_cap = p.initial_annual_emission - 1;
        assert!(p.validate().unwrap_err().to_string().contains("annual_cap"));
        let mut p = Params::default();
        p.daily_cap = p.initial_annual_emission / 365 - 1;
        assert!(p.validate().unwrap_err().to_string().contains("daily_cap"));
        let mut p = Params::default();
        p.fee_burn_ppm = 600_000;
        assert!(p.validate().is_err());
        let mut p = Params::default();
        p.blocks_per_day = 0;
        assert!(p.validate().is_err());
    }
}
