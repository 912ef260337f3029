//! Registry params: tiers (multiplier, minimum bond, compute cap, work kinds), heartbeat
//! liveness and the unbonding delay. Economic: governance changes apply at the next epoch.

use crate::error::Error;
use magnet_core::coins::u128_string;

/// The five tiers, in order of decreasing multiplier.
pub const TIER_NAMES: [&str; 5] = [
    "orchestrator",
    "gpu_compute",
    "storage_node",
    "cpu_only",
    "mobile_light",
];

/// One tier.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierParams {
    /// Tier name (one of [`TIER_NAMES`]).
    pub name: String,
    /// Reward multiplier in milli (3000 = 3.0×), 1..=10_000.
    pub multiplier_milli: u64,
    /// Minimum bond (umag).
    #[serde(with = "u128_string")]
    pub min_bond: u128,
    /// Verified compute credited per contribution is at most `bond × compute_cap_per_umag`
    /// (scaling with bond, so splitting a bond over identities does not raise the total cap).
    #[serde(with = "u128_string")]
    pub compute_cap_per_umag: u128,
    /// Work kinds the multiplier applies to; other kinds earn at most 1.0×.
    pub kinds: Vec<String>,
}

/// Registry params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The five tiers.
    pub tiers: Vec<TierParams>,
    /// Heartbeats closer together than this count once.
    pub heartbeat_interval_secs: u64,
    /// Counted heartbeats needed in an epoch to be eligible for its rewards.
    pub min_heartbeats_per_epoch: u64,
    /// A node is live (may be assigned as evaluator) if its last heartbeat is this recent.
    pub liveness_window_secs: u64,
    /// Delay between an unbond request and the bond's return.
    pub unbonding_delay_secs: u64,
    /// Least 4 KiB random-read throughput (MB/s) of the SSD provisioning test for tier
    /// `storage_node` and for storage capability (ADR 0107); reports carry kB/s, compared as
    /// `read_kbps ≥ ssd_min_read_mbps × 1000`.
    #[serde(default = "d_ssd_read")]
    pub ssd_min_read_mbps: u64,
    /// Least 4 KiB random-write throughput (MB/s), as for reads.
    #[serde(default = "d_ssd_write")]
    pub ssd_min_write_mbps: u64,
    /// Most inference services (jobs) one node may advertise at once (ADR 0109), 0..=256;
    /// 0 turns new advertisements off. Lowering it removes nothing: a node above it may only
    /// replace or withdraw until it is below.
    #[serde(default = "d_max_services")]
    pub max_services_per_node: u64,
}

/// Upper bound of `max_services_per_node`.
pub const MAX_SERVICES_PER_NODE_LIMIT: u64 = 256;

fn d_max_services() -> u64 {
    8
}

fn d_ssd_read() -> u64 {
    100
}

fn d_ssd_write() -> u64 {
    50
}

const MAG: u128 = 1_000_000;

impl Default for Params {
    fn default() -> Self {
        let tier = |name: &str, m: u64, bond_mag: u128, kinds: &[&str]| TierParams {
            name: name.to_string(),
            multiplier_milli: m,
            min_bond: bond_mag * MAG,
            compute_cap_per_umag: 1_000,
            kinds: kinds.iter().map(|k| k.to_string()).collect(),
        };
        Params {
            tiers: vec![
                tier(
                    "orchestrator",
                    3000,
                    10_000,
                    &["research", "training", "storage"],
                ),
                tier(
                    "gpu_compute",
                    1000,
                    1_000,
                    &["training", "inference", "storage"],
                ),
                tier("storage_node", 300, 300, &["storage"]),
                tier("cpu_only", 300, 300, &["inference", "storage"]),
                tier("mobile_light", 100, 100, &["inference"]),
            ],
            heartbeat_interval_secs: 60,
            min_heartbeats_per_epoch: 30,
            liveness_window_secs: 300,
            unbonding_delay_secs: 21 * 86_400,
            ssd_min_read_mbps: d_ssd_read(),
            ssd_min_write_mbps: d_ssd_write(),
            max_services_per_node: d_max_services(),
        }
    }
}

impl Params {
    /// Check every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: String| Err(Error::InvalidParams(s));
        if self.tiers.len() != TIER_NAMES.len() {
            return bad(format!("tiers must list exactly {:?}", TIER_NAMES));
        }
        for (t, name) in self.tiers.iter().zip(TIER_NAMES) {
            if t.name != name {
                return bad(format!("tiers must be in the order {:?}", TIER_NAMES));
            }
            if !(1..=10_000).contains(&t.multiplier_milli) {
                return bad(format!(
                    "tier {name}: multiplier_milli must be in 1..=10000"
                ));
            }
            if t.min_bond == 0 {
                return bad(format!("tier {name}: min_bond must be > 0"));
            }
            if t.compute_cap_per_umag == 0 || t.compute_cap_per_umag > 1 << 40 {
                return bad(format!(
                    "tier {name}: compute_cap_per_umag must be in 1..=2^40"
                ));
            }
        }
        for a in &self.tiers {
            for b in &self.tiers {
                if a.multiplier_milli > b.multiplier_milli && a.min_bond < b.min_bond {
                    return bad(format!(
                        "tier {} has a higher multiplier than {} but a lower min_bond",
                        a.name, b.name
                    ));
                }
            }
        }
        if self.heartbeat_interval_secs == 0 {
            return bad("heartbeat_interval_secs must be > 0".into());
        }
        if self.min_heartbeats_per_epoch == 0 {
            return bad("min_heartbeats_per_epoch must be ≥ 1".into());
        }
        if self.liveness_window_secs < self.heartbeat_interval_secs {
            return bad("liveness_window_secs must be ≥ heartbeat_interval_secs".into());
        }
        if self.unbonding_delay_secs == 0 {
            return bad("unbonding_delay_secs must be > 0".into());
        }
        if self.ssd_min_read_mbps == 0 || self.ssd_min_read_mbps > 1_000_000 {
            return bad("ssd_min_read_mbps must be in 1..=1000000".into());
        }
        if self.ssd_min_write_mbps == 0 || self.ssd_min_write_mbps > 1_000_000 {
            return bad("ssd_min_write_mbps must be in 1..=1000000".into());
        }
        if self.max_services_per_node > MAX_SERVICES_PER_NODE_LIMIT {
            return bad(format!(
                "max_services_per_node must be in 0..={MAX_SERVICES_PER_NODE_LIMIT}"
            ));
        }
        Ok(())
    }

    /// Whether an SSD report meets both thresholds.
    pub fn ssd_passes(&self, r: &crate::state::SsdRecord) -> bool {
        r.read_kbps >= self.ssd_min_read_mbps.saturating_mul(1000)
            && r.write_kbps >= self.ssd_min_write_mbps.saturating_mul(1000)
    }

    /// The tier named `name`.
    pub fn tier(&self, name: &str) -> Result<&TierParams, Error> {
        self.tiers
            .iter()
            .find(|t| t.name == name)
            .ok_or_else(|| Error::InvalidTier(name.to_string()))
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
    fn invalid_params_are_refused_with_the_field_named() {
        type Mutation = Box<dyn Fn(&mut Params)>;
        let cases: Vec<(&str, Mutation)> = vec![
            (
                "multiplier_milli",
                Box::new(|p| p.tiers[0].multiplier_milli = 0),
            ),
            ("min_bond", Box::new(|p| p.tiers[1].min_bond = 0)),
            ("lower min_bond", Box::new(|p| p.tiers[0].min_bond = 1)),
            ("order", Box::new(|p| p.tiers.swap(0, 1))),
            (
                "heartbeat_interval_secs",
                Box::new(|p| p.heartbeat_interval_secs = 0),
            ),
            (
                "min_heartbeats_per_epoch",
                Box::new(|p| p.min_heartbeats_per_epoch = 0),
            ),
            (
                "liveness_window_secs",
                Box::new(|p| p.liveness_window_secs = 1),
            ),
            (
                "unbonding_delay_secs",
                Box::new(|p| p.unbonding_delay_secs = 0),
            ),
            ("ssd_min_read_mbps", Box::new(|p| p.ssd_min_read_mbps = 0)),
            ("ssd_min_write_mbps", Box::new(|p| p.ssd_min_write_mbps = 0)),
            (
                "max_services_per_node",
                Box::new(|p| p.max_services_per_node = 257),
            ),
        ];
        for (field, mutate) in cases {
            let mut p = Params::default();
            mutate(&mut p);
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
