//! Contrib params: the windows (offsets from the epoch's start, in block-time seconds), the
//! evaluator panel size and quorum, the deviation band and the quality cap. Economic: changes
//! apply at the next epoch boundary.

use crate::error::Error;

/// Contrib params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Commit window `[S, S+c)`.
    pub commit_window_secs: u64,
    /// Reveal window, right after the commit window.
    pub reveal_window_secs: u64,
    /// Evaluator commit window, right after the reveal window.
    pub eval_commit_window_secs: u64,
    /// Evaluator reveal window, right after the evaluator commit window.
    pub eval_reveal_window_secs: u64,
    /// Challenge window after the evaluator reveal window.
    pub challenge_window_secs: u64,
    /// Evaluator slots per contribution (stake-weighted draws with replacement).
    pub evaluator_slots: u32,
    /// Revealed slots needed for a score (else the contribution is unscored).
    pub min_evaluations: u32,
    /// An evaluator whose score is further than this from the median is slashed (score units,
    /// fixed-point 10^6).
    pub median_band: u64,
    /// Highest verified quality credited (fixed-point 10^6).
    pub max_quality: u64,
    /// Most contributions per epoch.
    pub max_contributions_per_epoch: u32,
    /// Most contributions one operator may commit per epoch (over all jobs), so one operator
    /// cannot fill `max_contributions_per_epoch`.
    #[serde(default = "default_per_operator")]
    pub max_contributions_per_operator: u32,
}

fn default_per_operator() -> u32 {
    4
}

impl Default for Params {
    fn default() -> Self {
        Params {
            commit_window_secs: 1_800,
            reveal_window_secs: 600,
            eval_commit_window_secs: 600,
            eval_reveal_window_secs: 600,
            challenge_window_secs: 1_800,
            evaluator_slots: 5,
            min_evaluations: 3,
            median_band: 200_000,
            max_quality: 10_000_000,
            max_contributions_per_epoch: 1_024,
            max_contributions_per_operator: default_per_operator(),
        }
    }
}

impl Params {
    /// Windows > 0, 1 ≤ min_evaluations ≤ evaluator_slots ≤ 64, caps within bounds that keep
    /// reward weights inside u128.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: &str| Err(Error::InvalidParams(s.to_string()));
        if self.commit_window_secs == 0
            || self.reveal_window_secs == 0
            || self.eval_commit_window_secs == 0
            || self.eval_reveal_window_secs == 0
            || self.challenge_window_secs == 0
        {
            return bad("every *_window_secs must be > 0");
        }
        if self.evaluator_slots == 0 || self.evaluator_slots > 64 {
            return bad("evaluator_slots must be in 1..=64");
        }
        if self.min_evaluations == 0 || self.min_evaluations > self.evaluator_slots {
            return bad("min_evaluations must be in 1..=evaluator_slots");
        }
        if self.max_quality == 0 || self.max_quality > 1 << 40 {
            return bad("max_quality must be in 1..=2^40");
        }
        if self.max_contributions_per_epoch == 0 || self.max_contributions_per_epoch > 1_024 {
            return bad(
                "max_contributions_per_epoch must be in 1..=1024 (keeps Σ T·q·c inside u128)",
            );
        }
        if self.max_contributions_per_operator == 0
            || self.max_contributions_per_operator > self.max_contributions_per_epoch
        {
            return bad(
                "max_contributions_per_operator must be in 1..=max_contributions_per_epoch",
            );
        }
        Ok(())
    }

    /// End of the commit window, as an offset from the epoch start.
    pub fn commit_end(&self) -> u64 {
        self.commit_window_secs
    }
    /// End of the reveal window (offset).
    pub fn reveal_end(&self) -> u64 {
        self.commit_end().saturating_add(self.reveal_window_secs)
    }
    /// End of the evaluator commit window (offset).
    pub fn eval_commit_end(&self) -> u64 {
        self.reveal_end()
            .saturating_add(self.eval_commit_window_secs)
    }
    /// End of the evaluator reveal window (offset).
    pub fn eval_reveal_end(&self) -> u64 {
        self.eval_commit_end()
            .saturating_add(self.eval_reveal_window_secs)
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
    fn defaults_are_valid_and_fit_two_hour_epochs() {
        let p = Params::default();
        p.validate().unwrap();
        assert!(p.eval_reveal_end() + p.challenge_window_secs <= 2 * 3600);
    }

    #[test]
    fn bad_params_are_refused() {
        let mut p = Params::default();
        p.min_evaluations = 6;
        assert!(p.validate().is_err());
        let mut p = Params::default();
        p.reveal_window_secs = 0;
        assert!(p.validate().is_err());
    }
}
