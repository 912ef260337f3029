//! Jobs params: budget split at the deadline and the API revenue split. Economic: changes
//! apply at the next epoch boundary.

use crate::error::Error;
use magnet_core::coins::u128_string;

/// Jobs params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Smallest budget (umag).
    #[serde(with = "u128_string")]
    pub min_budget: u128,
    /// Budget share to contributors by verified score q·c (ppm).
    pub budget_contributors_ppm: u64,
    /// Budget share to in-band evaluators by slots (ppm). The rest goes to the community pool.
    pub budget_evaluators_ppm: u64,
    /// API revenue share to the model's contributors by lineage share (ppm).
    pub api_contributors_ppm: u64,
    /// API revenue share to the serving node (ppm).
    pub api_server_ppm: u64,
    /// API revenue share burned (ppm). The rest goes to the community pool.
    pub api_burn_ppm: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_budget: 1_000_000,
            budget_contributors_ppm: 900_000,
            budget_evaluators_ppm: 50_000,
            api_contributors_ppm: 600_000,
            api_server_ppm: 250_000,
            api_burn_ppm: 50_000,
        }
    }
}

impl Params {
    /// Each split sums to at most 1.
    pub fn validate(&self) -> Result<(), Error> {
        if self.budget_contributors_ppm as u128 + self.budget_evaluators_ppm as u128 > 1_000_000 {
            return Err(Error::InvalidParams(
                "budget_* shares must sum to ≤ 1000000".into(),
            ));
        }
        if self.api_contributors_ppm as u128
            + self.api_server_ppm as u128
            + self.api_burn_ppm as u128
            > 1_000_000
        {
            return Err(Error::InvalidParams(
                "api_* shares must sum to ≤ 1000000".into(),
            ));
        }
        if self.min_budget == 0 {
            return Err(Error::InvalidParams("min_budget must be > 0".into()));
        }
        Ok(())
    }
}

magnet_core::impl_module_params!(
    Params,
    crate::state::PARAMS_KEY,
    crate::error::Error::InvalidParams
);
