//! Rewards params: the evaluators' share of each epoch pool. Economic: applies at the next
//! epoch boundary.

use crate::error::Error;

/// Rewards params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Share of the pool paid to evaluators within the median band, by slots (ppm, ≤ 500_000).
    pub evaluator_share_ppm: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            evaluator_share_ppm: 100_000,
        }
    }
}

impl Params {
    /// The evaluator share is at most half the pool.
    pub fn validate(&self) -> Result<(), Error> {
        if self.evaluator_share_ppm > 500_000 {
            return Err(Error::InvalidParams(
                "evaluator_share_ppm must be ≤ 500000 (half the pool)".into(),
            ));
        }
        Ok(())
    }
}

magnet_core::impl_module_params!(
    Params,
    crate::state::PARAMS_KEY,
    crate::error::Error::InvalidParams
);
