//! Data params: the registration fee, the challenge window and the fee split on
//! confirmation. Economic: changes apply at the next epoch boundary.

use crate::error::Error;
use magnet_core::coins::u128_string;

/// Data params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Fee per registration (umag).
    #[serde(with = "u128_string")]
    pub registration_fee: u128,
    /// Challenge window after registration.
    pub challenge_window_secs: u64,
    /// On confirmation: share back to the contributor (ppm).
    pub contributor_ppm: u64,
    /// Share to the notary panel, equally (ppm).
    pub notaries_ppm: u64,
    /// Share burned (ppm). The rest, and all dust, goes to the community pool.
    pub burn_ppm: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            registration_fee: 10 * 1_000_000,
            challenge_window_secs: 3_600,
            contributor_ppm: 400_000,
            notaries_ppm: 200_000,
            burn_ppm: 200_000,
        }
    }
}

impl Params {
    /// Window > 0; shares sum to at most 1.
    pub fn validate(&self) -> Result<(), Error> {
        if self.challenge_window_secs == 0 {
            return Err(Error::InvalidParams(
                "challenge_window_secs must be > 0".into(),
            ));
        }
        let sum = self.contributor_ppm as u128 + self.notaries_ppm as u128 + self.burn_ppm as u128;
        if sum > 1_000_000 {
            return Err(Error::InvalidParams(
                "contributor_ppm + notaries_ppm + burn_ppm must be ≤ 1000000".into(),
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
