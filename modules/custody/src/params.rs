//! Custody params (governance). Economic ones (`audit_fail_slash_ppm`, `storage_share_ppm`)
//! apply from the next judgement / settlement that reads them.

use crate::error::Error;

/// Custody params.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Share of the holder's node bond slashed (offence `storage_audit_failed`) for an epoch in
    /// which it left any challenged shard unproven (ppm, 1..=1,000,000). One slash per holder
    /// per epoch, however many shards it failed.
    pub audit_fail_slash_ppm: u64,
    /// Consecutive epochs with an audit failure after which the holder is also jailed (≥ 1).
    pub jail_after_failures: u64,
    /// Share of each epoch's reward pool paid to holders for proven custody (ppm, ≤ 500,000);
    /// stays with contributors when nothing was proven.
    pub storage_share_ppm: u64,
    /// Epochs a `delta` stripe lives after the epoch of its registration (≥ 1).
    pub delta_retention_epochs: u64,
    /// Epochs a `checkpoint`, `data` or `model` stripe lives after registration (≥ 1), unless
    /// its label is the current lineage head of its job.
    pub checkpoint_retention_epochs: u64,
    /// Largest shard accepted (bytes, ≥ 1).
    pub max_shard_len: u64,
    /// Most proofs in one `MsgProveCustody` (≥ 1).
    pub max_proofs_per_msg: u64,
    /// Data shards per stripe (RS K); every stripe must use exactly this K.
    pub k: u32,
    /// Parity shards per stripe (RS M); every stripe must use exactly this M.
    pub m: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            audit_fail_slash_ppm: 50_000,
            jail_after_failures: 2,
            storage_share_ppm: 100_000,
            delta_retention_epochs: 2,
            checkpoint_retention_epochs: 4,
            max_shard_len: 64 << 20,
            max_proofs_per_msg: 512,
            k: 4,
            m: 2,
        }
    }
}

/// Largest K + M accepted.
pub const MAX_SHARDS: u32 = 32;

impl Params {
    /// Check every field; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |s: &str| Err(Error::InvalidParams(s.to_string()));
        if self.audit_fail_slash_ppm == 0 || self.audit_fail_slash_ppm > 1_000_000 {
            return bad("audit_fail_slash_ppm must be in 1..=1000000");
        }
        if self.jail_after_failures == 0 {
            return bad("jail_after_failures must be ≥ 1");
        }
        if self.storage_share_ppm > 500_000 {
            return bad("storage_share_ppm must be ≤ 500000 (half the pool)");
        }
        if self.delta_retention_epochs == 0 || self.checkpoint_retention_epochs == 0 {
            return bad("delta_retention_epochs and checkpoint_retention_epochs must be ≥ 1");
        }
        if self.max_shard_len == 0 || self.max_shard_len > 1 << 40 {
            return bad("max_shard_len must be in 1..=2^40");
        }
        if self.max_proofs_per_msg == 0 || self.max_proofs_per_msg > 65_536 {
            return bad("max_proofs_per_msg must be in 1..=65536");
        }
        if self.k == 0 || self.m == 0 || self.k.saturating_add(self.m) > MAX_SHARDS {
            return bad("k and m must be ≥ 1 with k + m ≤ 32");
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
#[allow(clippy::unwrap_used)]
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
                "audit_fail_slash_ppm",
                Box::new(|p| p.audit_fail_slash_ppm = 0),
            ),
            (
                "audit_fail_slash_ppm",
                Box::new(|p| p.audit_fail_slash_ppm = 1_000_001),
            ),
            (
                "jail_after_failures",
                Box::new(|p| p.jail_after_failures = 0),
            ),
            (
                "storage_share_ppm",
                Box::new(|p| p.storage_share_ppm = 500_001),
            ),
            (
                "delta_retention_epochs",
                Box::new(|p| p.delta_retention_epochs = 0),
            ),
            (
                "checkpoint_retention_epochs",
                Box::new(|p| p.checkpoint_retention_epochs = 0),
            ),
            ("max_shard_len", Box::new(|p| p.max_shard_len = 0)),
            ("max_proofs_per_msg", Box::new(|p| p.max_proofs_per_msg = 0)),
            ("k and m", Box::new(|p| p.k = 0)),
            ("k and m", Box::new(|p| p.m = 31)),
        ];
        for (field, mutate) in cases {
            let mut p = Params::default();
            mutate(&mut p);
            let e = p.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{field}: {e}");
        }
    }
}
