//! Jobs params: budget split at the deadline, the API revenue split, and the merge audits
//! (ADR 0089: how many recorded rounds are audited, by how many drawn auditors, the challenge
//! window, the verdict commit and reveal periods (ADR 0091), the challenge bond and the
//! challenger's share of the slash).
//! Economic: changes apply at the next epoch boundary. The audit fields default when a params
//! file predates them.

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
