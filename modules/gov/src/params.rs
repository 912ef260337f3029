//! Gov params. Not economic: a change applies at the next block.

use crate::error::Error;
use magnet_core::coins::u128_string;

/// Gov params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Deposit needed to enter voting (umag).
    #[serde(with = "u128_string")]
    pub min_deposit: u128,
    /// Deposit period.
    pub deposit_period_secs: u64,
    /// Voting period.
    pub voting_period_secs: u64,
    /// Share of all bonded stake that must vote (ppm).
    pub quorum_ppm: u64,
    /// Share of yes among yes+no+veto needed to pass (ppm, strictly more than).
    pub threshold_ppm: u64,
    /// Share of veto among all votes that vetoes (ppm, strictly more than).
    pub veto_ppm: u64,
    /// Burn deposits of vetoed proposals (else refund).
    pub burn_on_veto: bool,
    /// Burn deposits of proposals without quorum (else refund).
    pub burn_on_no_quorum: bool,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_deposit: 1_000 * 1_000_000,
            deposit_period_secs: 2 * 86_400,
            voting_period_secs: 3 * 86_400,
            quorum_ppm: 334_000,
            threshold_ppm: 500_000,
            veto_ppm: 334_000,
            burn_on_veto: true,
            burn_on_no_quorum: false,
        }
    }
}

impl Params {
    /// Periods > 0; shares in (0, 1].
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: &str| Err(Error::InvalidParams(s.to_string()));
        if self.deposit_period_secs == 0 || self.voting_period_secs == 0 {
            return bad("deposit_period_secs and voting_period_secs must be > 0");
        }
        for (n, v) in [
            ("quorum_ppm", self.quorum_ppm),
            ("threshold_ppm", self.threshold_ppm),
            ("veto_ppm", self.veto_ppm),
        ] {
            if v == 0 || v > 1_000_000 {
                return Err(Error::InvalidParams(format!("{n} must be in 1..=1000000")));
            }
        }
        Ok(())
    }
}

magnet_core::impl_module_params!(
    Params,
    crate::state::PARAMS_KEY,
    crate::error::Error::InvalidParams
);
