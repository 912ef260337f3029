//! Slashing params: one rate per offence in parts per million, each in [0.1, 1.0]
//! (100_000..=1_000_000 ppm), fraudulent approval and fraudulent merge fixed at 1.0; the burn share of slashed
//! funds (the rest goes to the community pool); the jail period. Economic: changes apply at
//! the next epoch boundary.

use crate::error::Error;
use magnet_core::Offence;

/// Rates per offence (ppm).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rates {
    /// A commitment never revealed.
    pub no_reveal: u64,
    /// A reveal that does not match its commitment.
    pub reveal_mismatch: u64,
    /// Lost a notary challenge (as target or as challenger).
    pub failed_challenge: u64,
    /// Data rejected as invalid.
    pub invalid_data: u64,
    /// Too few heartbeats in an epoch.
    pub downtime: u64,
    /// Evaluator outside the median band.
    pub evaluator_deviation: u64,
    /// Notary approval overturned as fraudulent (must be 1_000_000).
    pub fraudulent_approval: u64,
    /// Consensus double-sign.
    pub double_sign: u64,
    /// A leader's merge challenged and upheld as not the merge of its recorded Δs (must be
    /// 1_000_000; defaults to it when a params file predates the offence).
    #[serde(default = "full_rate")]
    pub fraudulent_merge: u64,
    /// A drawn merge auditor's revealed verdict against the majority of a resolved challenge
    /// (ADR 0091; small: an honest auditor is in the majority whenever honest stake holds
    /// most of the draw). Defaults to 100000 (0.1, the floor) when a params file predates it.
    #[serde(default = "d_audit_deviation")]
    pub audit_deviation: u64,
    /// A research trial a strict majority of its drawn checkers contradicted (ADR 0111).
    /// Defaults to 1000000 (1.0) when a params file predates it.
    #[serde(default = "full_rate")]
    pub fabricated_trial: u64,
}

fn full_rate() -> u64 {
    1_000_000
}

fn d_audit_deviation() -> u64 {
    100_000
}

/// Slashing params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Rate per offence.
    pub rates: Rates,
    /// Share of slashed funds burned (ppm, 0..=1_000_000); the rest goes to the community pool.
    pub burn_ppm: u64,
    /// Jail period after a node slash, seconds of block time (> 0).
    pub jail_secs: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            rates: Rates {
                no_reveal: 100_000,
                reveal_mismatch: 300_000,
                failed_challenge: 200_000,
                invalid_data: 300_000,
                downtime: 100_000,
                evaluator_deviation: 150_000,
                fraudulent_approval: 1_000_000,
                double_sign: 500_000,
                fraudulent_merge: 1_000_000,
                audit_deviation: d_audit_deviation(),
                fabricated_trial: full_rate(),
            },
            burn_ppm: 500_000,
            jail_secs: 86_400,
        }
    }
}

impl Params {
    /// The rate of `o` (ppm).
    pub fn rate(&self, o: Offence) -> u64 {
        let r = &self.rates;
        match o {
            Offence::NoReveal => r.no_reveal,
            Offence::RevealMismatch => r.reveal_mismatch,
            Offence::FailedChallenge => r.failed_challenge,
            Offence::InvalidData => r.invalid_data,
            Offence::Downtime => r.downtime,
            Offence::EvaluatorDeviation => r.evaluator_deviation,
            Offence::FraudulentApproval => r.fraudulent_approval,
            Offence::DoubleSign => r.double_sign,
            Offence::FraudulentMerge => r.fraudulent_merge,
            Offence::AuditDeviation => r.audit_deviation,
            Offence::FabricatedTrial => r.fabricated_trial,
            // Rated by the reporting module (custody's `audit_fail_slash_ppm`), passed with
            // `slash_node_at`; a table slash of it takes nothing.
            Offence::StorageAuditFailed => 0,
        }
    }

    /// Every table rate in [0.1, 1.0] (`storage_audit_failed` is custody's), fraudulent approval exactly 1.0, burn ≤ 1.0, jail > 0.
    pub fn validate(&self) -> Result<(), Error> {
        for o in Offence::ALL {
            if o == Offence::StorageAuditFailed {
                continue; // rated by custody's params
            }
            let r = self.rate(o);
            if !(100_000..=1_000_000).contains(&r) {
                return Err(Error::InvalidParams(format!(
                    "rates.{} = {r} ppm is outside [0.1, 1.0] (100000..=1000000 ppm)",
                    o.as_str()
                )));
            }
        }
        if self.rates.fraudulent_approval != 1_000_000 {
            return Err(Error::InvalidParams(
                "rates.fraudulent_approval must be 1000000 ppm (1.0)".into(),
            ));
        }
        if self.rates.fraudulent_merge != 1_000_000 {
            return Err(Error::InvalidParams(
                "rates.fraudulent_merge must be 1000000 ppm (1.0)".into(),
            ));
        }
        if self.burn_ppm > 1_000_000 {
            return Err(Error::InvalidParams("burn_ppm must be ≤ 1000000".into()));
        }
        if self.jail_secs == 0 {
            return Err(Error::InvalidParams("jail_secs must be > 0".into()));
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
    fn defaults_are_valid_and_rates_are_distinct() {
        let p = Params::default();
        p.validate().unwrap();
        let rates: std::collections::BTreeSet<u64> = [
            Offence::NoReveal,
            Offence::RevealMismatch,
            Offence::FailedChallenge,
            Offence::EvaluatorDeviation,
        ]
        .iter()
        .map(|o| p.rate(*o))
        .collect();
        assert_eq!(rates.len(), 4);
    }

    #[test]
    fn a_rate_outside_the_allowed_range_is_refused() {
        for bad in [0u64, 99_999, 1_000_001] {
            let mut p = Params::default();
            p.rates.downtime = bad;
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains("rates.downtime"), "{e}");
        }
        let mut p = Params::default();
        p.rates.fraudulent_approval = 900_000;
        assert!(p.validate().is_err());
        let mut p = Params::default();
        p.rates.fraudulent_merge = 900_000;
        assert!(p.validate().is_err());
        let mut p = Params::default();
        p.rates.audit_deviation = 99_999;
        assert!(p
            .validate()
            .unwrap_err()
            .to_string()
            .contains("audit_deviation"));
        let mut p = Params::default();
        p.burn_ppm = 1_000_001;
        assert!(p.validate().is_err());
    }
}
