//! Notary params (not economic: changes apply at the next block).

use crate::error::Error;
use magnet_core::coins::u128_string;

/// Notary params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Bond a panel member needs to vote (umag).
    #[serde(with = "u128_string")]
    pub min_notary_bond: u128,
    /// Smallest challenge bond (umag).
    #[serde(with = "u128_string")]
    pub min_challenge_bond: u128,
    /// Vote window after a challenge opens.
    pub vote_window_secs: u64,
    /// Share of the panel that must vote (ppm).
    pub quorum_ppm: u64,
    /// Fee kept from a challenge that reaches no quorum (ppm of its bond, to the community pool).
    pub no_quorum_fee_ppm: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_notary_bond: 5_000 * 1_000_000,
            min_challenge_bond: 100 * 1_000_000,
            vote_window_secs: 600,
            quorum_ppm: 500_000,
            no_quorum_fee_ppm: 100_000,
        }
    }
}

impl Params {
    /// Bonds > 0, window > 0, quorum in (0, 1], fee ≤ 1.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: &str| Err(Error::InvalidParams(s.to_string()));
        if self.min_notary_bond == 0 || self.min_challenge_bond == 0 {
            return bad("min_notary_bond and min_challenge_bond must be > 0");
        }
        if self.vote_window_secs == 0 {
            return bad("vote_window_secs must be > 0");
        }
        if self.quorum_ppm == 0 || self.quorum_ppm > 1_000_000 {
            return bad("quorum_ppm must be in 1..=1000000");
        }
        if self.no_quorum_fee_ppm > 1_000_000 {
            return bad("no_quorum_fee_ppm must be ≤ 1000000");
        }
        Ok(())
    }
}

magnet_core::impl_module_params!(
    Params,
    crate::state::PARAMS_KEY,
    crate::error::Error::InvalidParams
);
