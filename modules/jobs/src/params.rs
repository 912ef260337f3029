//! Jobs params: budget split at the deadline, the API revenue split, and the merge audits
//! (ADR 0089: how many recorded rounds are audited, by how many drawn auditors, the challenge
//! window, the verdict commit and reveal periods (ADR 0091), the challenge bond and the
//! challenger's share of the slash).
//! Research jobs (ADR 0111): pool shares, trial budget and recheck bounds, the check periods
//! (also the held-out evaluators' periods), the test reveal period, the held-out evaluator
//! count and share and the target improvement (the last three fixed per job at creation).
//! Economic: changes apply at the next epoch boundary. The audit and research fields default
//! when a params file predates them.

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
    /// Share of recorded rounds sampled for a merge audit by the recording block's hash (ppm;
    /// 1000000 = every round).
    #[serde(default = "d_audit_rounds_ppm")]
    pub audit_rounds_ppm: u64,
    /// Auditors drawn per audited round (stake-weighted from live nodes, never its leader).
    #[serde(default = "d_auditors_per_round")]
    pub auditors_per_round: u32,
    /// Blocks after a round is recorded during which its merge may be challenged.
    #[serde(default = "d_challenge_window_blocks")]
    pub challenge_window_blocks: u64,
    /// Blocks after a challenge during which the drawn auditors commit sealed verdicts (the
    /// commit period, ADR 0091).
    #[serde(default = "d_verdict_blocks")]
    pub verdict_blocks: u64,
    /// Blocks after the commit period during which committed verdicts are revealed.
    #[serde(default = "d_reveal_blocks")]
    pub reveal_blocks: u64,
    /// Smallest bond of a merge challenge (umag); the whole bond is lost when rejected.
    #[serde(default = "d_challenge_bond", with = "u128_string")]
    pub challenge_bond: u128,
    /// Share of a fraudulent leader's slashed bond paid to the challenger (ppm); the rest is
    /// burned / sent to the community pool by the slashing params.
    #[serde(default = "d_challenger_reward_ppm")]
    pub challenger_reward_ppm: u64,
    /// Research jobs (ADR 0111): share of the escrow priced into trial slots and paid to trial
    /// workers and majority checkers (ppm).
    #[serde(default = "d_research_trials_ppm")]
    pub research_trials_ppm: u64,
    /// Share of a research job's escrow paid to its coordinator by held-out quality (ppm).
    #[serde(default = "d_research_quality_ppm")]
    pub research_quality_ppm: u64,
    /// Largest trial budget of one research job.
    #[serde(default = "d_max_trial_budget")]
    pub max_trial_budget: u32,
    /// Smallest share of a research job's trials that are re-checked (ppm).
    #[serde(default = "d_min_recheck_ppm")]
    pub min_recheck_ppm: u64,
    /// Checkers drawn per sampled trial (stake-weighted, never its worker nor the coordinator).
    #[serde(default = "d_checkers_per_trial")]
    pub checkers_per_trial: u32,
    /// Blocks after the draw during which checkers commit sealed re-runs.
    #[serde(default = "d_check_commit_blocks")]
    pub check_commit_blocks: u64,
    /// Blocks after the commit period during which sealed re-runs are revealed.
    #[serde(default = "d_check_reveal_blocks")]
    pub check_reveal_blocks: u64,
    /// Blocks after a research job's final version during which its creator may reveal the
    /// sealed test split.
    #[serde(default = "d_test_reveal_blocks")]
    pub test_reveal_blocks: u64,
    /// Held-out improvement over the baseline (ppm) that earns the whole quality pool.
    #[serde(default = "d_target_improvement_ppm")]
    pub target_improvement_ppm: u64,
    /// Held-out evaluators drawn at a valid test reveal (stake-weighted from the nodes that
    /// run trials, never the coordinator; ADR 0111 §6). Fixed per job at creation.
    #[serde(default = "d_heldout_evaluators")]
    pub heldout_evaluators: u32,
    /// Share of a research job's quality pool that pays its held-out evaluators (ppm), split
    /// equally over the drawn ones and paid to those who revealed. Fixed per job at creation.
    #[serde(default = "d_heldout_evaluator_ppm")]
    pub heldout_evaluator_ppm: u64,
}

fn d_heldout_evaluators() -> u32 {
    3
}
fn d_heldout_evaluator_ppm() -> u64 {
    100_000
}

fn d_research_trials_ppm() -> u64 {
    800_000
}
fn d_research_quality_ppm() -> u64 {
    200_000
}
fn d_max_trial_budget() -> u32 {
    10_000
}
fn d_min_recheck_ppm() -> u64 {
    50_000
}
fn d_checkers_per_trial() -> u32 {
    3
}
fn d_check_commit_blocks() -> u64 {
    40
}
fn d_check_reveal_blocks() -> u64 {
    20
}
fn d_test_reveal_blocks() -> u64 {
    200
}
fn d_target_improvement_ppm() -> u64 {
    100_000
}

fn d_audit_rounds_ppm() -> u64 {
    1_000_000
}
fn d_auditors_per_round() -> u32 {
    3
}
fn d_challenge_window_blocks() -> u64 {
    120
}
fn d_verdict_blocks() -> u64 {
    40
}
fn d_reveal_blocks() -> u64 {
    20
}
fn d_challenge_bond() -> u128 {
    100_000
}
fn d_challenger_reward_ppm() -> u64 {
    500_000
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
            audit_rounds_ppm: d_audit_rounds_ppm(),
            auditors_per_round: d_auditors_per_round(),
            challenge_window_blocks: d_challenge_window_blocks(),
            verdict_blocks: d_verdict_blocks(),
            reveal_blocks: d_reveal_blocks(),
            challenge_bond: d_challenge_bond(),
            challenger_reward_ppm: d_challenger_reward_ppm(),
            research_trials_ppm: d_research_trials_ppm(),
            research_quality_ppm: d_research_quality_ppm(),
            max_trial_budget: d_max_trial_budget(),
            min_recheck_ppm: d_min_recheck_ppm(),
            checkers_per_trial: d_checkers_per_trial(),
            check_commit_blocks: d_check_commit_blocks(),
            check_reveal_blocks: d_check_reveal_blocks(),
            test_reveal_blocks: d_test_reveal_blocks(),
            target_improvement_ppm: d_target_improvement_ppm(),
            heldout_evaluators: d_heldout_evaluators(),
            heldout_evaluator_ppm: d_heldout_evaluator_ppm(),
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
        if self.audit_rounds_ppm > 1_000_000 || self.challenger_reward_ppm > 1_000_000 {
            return Err(Error::InvalidParams(
                "audit_rounds_ppm and challenger_reward_ppm must be ≤ 1000000".into(),
            ));
        }
        if self.auditors_per_round == 0 || self.auditors_per_round > 32 {
            return Err(Error::InvalidParams(
                "auditors_per_round must be in 1..=32".into(),
            ));
        }
        if self.challenge_window_blocks == 0 || self.verdict_blocks == 0 || self.reveal_blocks == 0
        {
            return Err(Error::InvalidParams(
                "challenge_window_blocks, verdict_blocks and reveal_blocks must be > 0".into(),
            ));
        }
        if self.challenge_bond == 0 {
            return Err(Error::InvalidParams("challenge_bond must be > 0".into()));
        }
        if self.research_trials_ppm as u128 + self.research_quality_ppm as u128 > 1_000_000 {
            return Err(Error::InvalidParams(
                "research_trials_ppm + research_quality_ppm must be ≤ 1000000".into(),
            ));
        }
        if self.max_trial_budget == 0 || self.max_trial_budget > 1_000_000 {
            return Err(Error::InvalidParams(
                "max_trial_budget must be in 1..=1000000".into(),
            ));
        }
        if self.min_recheck_ppm > 1_000_000 {
            return Err(Error::InvalidParams(
                "min_recheck_ppm must be ≤ 1000000".into(),
            ));
        }
        if self.checkers_per_trial == 0 || self.checkers_per_trial > 32 {
            return Err(Error::InvalidParams(
                "checkers_per_trial must be in 1..=32".into(),
            ));
        }
        if self.check_commit_blocks == 0
            || self.check_reveal_blocks == 0
            || self.test_reveal_blocks == 0
        {
            return Err(Error::InvalidParams(
                "check_commit_blocks, check_reveal_blocks and test_reveal_blocks must be > 0"
                    .into(),
            ));
        }
        if self.target_improvement_ppm == 0 || self.target_improvement_ppm > 1_000_000 {
            return Err(Error::InvalidParams(
                "target_improvement_ppm must be in 1..=1000000".into(),
            ));
        }
        if self.heldout_evaluators == 0 || self.heldout_evaluators > 32 {
            return Err(Error::InvalidParams(
                "heldout_evaluators must be in 1..=32".into(),
            ));
        }
        if self.heldout_evaluator_ppm > 1_000_000 {
            return Err(Error::InvalidParams(
                "heldout_evaluator_ppm must be ≤ 1000000".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verdict_periods_must_be_positive_and_default_when_absent() {
        let p = Params::default();
        p.validate().unwrap();
        assert_eq!((p.verdict_blocks, p.reveal_blocks), (40, 20));
        for (name, bad) in [
            (
                "verdict_blocks",
                Params {
                    verdict_blocks: 0,
                    ..p.clone()
                },
            ),
            (
                "reveal_blocks",
                Params {
                    reveal_blocks: 0,
                    ..p.clone()
                },
            ),
        ] {
            let e = bad
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(name), "{name}: {e}");
        }
        // A params file that predates the reveal period gets the default.
        let mut v = serde_json::to_value(&p).unwrap();
        v.as_object_mut().unwrap().remove("reveal_blocks");
        let back: Params = serde_json::from_value(v).unwrap();
        assert_eq!(back.reveal_blocks, 20);
    }
}
