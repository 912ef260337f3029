//! `worker.toml`: what a worker does and where. Written by `magnet-worker init`, read by
//! every other subcommand. Every field has a default; [`Config::validate`] rejects values that
//! cannot work, naming the field and the fix.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{DaemonError, Result};

/// File name of the config inside the worker home.
pub const CONFIG_FILE: &str = "worker.toml";

/// The whole config.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A name for logs and reports.
    pub moniker: String,
    /// Chain access.
    pub chain: ChainSection,
    /// This node on the network.
    pub node: NodeSection,
    /// The research job this worker trains for.
    pub job: JobSection,
    /// Fault injection for devnets and tests (never set on a real network).
    pub dev: DevSection,
}

/// Chain access.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChainSection {
    /// CometBFT RPC endpoints, tried in order with failover.
    pub rpc: Vec<String>,
    /// Gas limit of each tx.
    pub gas_limit: u64,
    /// Fee of each tx in umag; 0 = pay `ceil(gas_limit × gas_price)` (ADR 0097).
    pub fee_umag: u64,
    /// Gas price in umag per gas used when `fee_umag` is 0 (decimal, e.g. `"0.025"`): the
    /// chain's default minimum. A devnet whose genesis sets a zero minimum writes `"0"`.
    pub gas_price: String,
}

impl ChainSection {
    /// The fee every tx pays: `fee_umag` if set, else `ceil(gas_limit × gas_price)` umag.
    pub fn fee(&self) -> std::result::Result<magnet_client::tx::FeeSpec, String> {
        if self.fee_umag > 0 {
            return Ok(magnet_client::tx::FeeSpec {
                amount: magnet_core::Coins::umag(u128::from(self.fee_umag)),
                gas_limit: self.gas_limit,
            });
        }
        magnet_client::tx::FeeSpec::at_price(self.gas_limit, &self.gas_price).map_err(|e| {
            format!(
                "chain.gas_price {:?}: {e}; write it like \"0.025\"",
                self.gas_price
            )
        })
    }
}

/// This node on the network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// Tier registered on chain.
    pub tier: String,
    /// p2p listen address (also the endpoint registered on chain).
    pub p2p_listen: String,
    /// Region label.
    pub region: String,
    /// Prometheus `/metrics` listen address; empty disables.
    pub metrics_listen: String,
    /// Bytes of disk offered to the network's shard store.
    pub storage_quota: u64,
}

/// Which leader rule the rounds use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaderRuleName {
    /// `sorted(eligible)[H(block hash ‖ r) mod N]` (default: cannot be predicted or ground).
    Hash,
    /// The paper's `sorted(eligible)[r mod N]`.
    RoundRobin,
}

/// The research job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobSection {
    /// On-chain job id.
    pub id: u64,
    /// Training corpus (UTF-8 text).
    pub corpus: PathBuf,
    /// Shared BPE tokenizer (`tokenizer.json`); every worker of a job must use the same file.
    pub tokenizer: PathBuf,
    /// Vocabulary size of the tokenizer.
    pub vocab_size: usize,
    /// BitNet preset (`tiny`, `small`, …).
    pub preset: String,
    /// Sequences per inner step.
    pub batch_size: usize,
    /// Tokens per sequence.
    pub seq_len: usize,
    /// Inner AdamW peak learning rate.
    pub lr: f64,
    /// Validation windows per evaluation.
    pub eval_windows: usize,
    /// Seed of the job's initial model (the same on every worker: it is the base checkpoint).
    pub model_seed: u64,
    /// This worker's shard of the training tokens: `shard_index` of `shard_count`.
    pub shard_index: usize,
    /// Number of shards.
    pub shard_count: usize,
    /// Inner steps H per round.
    pub inner_steps: u32,
    /// Total inner steps the LR schedule spans (rounds × H of the whole job).
    pub schedule_steps: usize,
    /// Chain height at which round 0 starts.
    pub first_height: u64,
    /// Blocks between round starts.
    pub blocks_per_round: u64,
    /// Collection window after the announcement (ms).
    pub round_ms: u64,
    /// How long a worker waits for the leader's announcement (ms).
    pub announce_timeout_ms: u64,
    /// How long after the deadline a worker waits for the merged checkpoint (ms).
    pub merge_grace_ms: u64,
    /// Leader rule.
    pub leader_rule: LeaderRuleName,
    /// Values per int8 scale when compressing Δ.
    pub compression_chunk: u32,
    /// Seconds before the end of the commit window at which the epoch's work is committed.
    pub commit_lead_secs: u64,
    /// Outer learning rate η of the merge, in thousandths (default 1000: plain averaging of
    /// the Δs). Every worker of a job must use the same value (ADR 0075).
    pub outer_lr_permille: u32,
    /// Outer Nesterov momentum μ, in thousandths (default 0). The DiLoCo paper's η = 0.7,
    /// μ = 0.9 pays off at large H (hundreds of inner steps); at H of a few dozen steps it
    /// overshoots (ADR 0075 has the measurement).
    pub outer_momentum_permille: u32,
}

impl JobSection {
    /// The merge rule this job's rounds use.
    pub fn merge_policy(&self) -> magnet_diloco::MergePolicy {
        magnet_diloco::MergePolicy {
            lr_permille: self.outer_lr_permille,
            momentum_permille: self.outer_momentum_permille,
            ..Default::default()
        }
    }

    /// Takes the round facts from the job's training spec on chain (the chain is the truth):
    /// inner steps, first height, blocks per round, leader rule and the outer step's η and μ
    /// replace the local values.
    /// Returns one warning per local value that differed, and per local value the chain fixes
    /// but this worker cannot take over (batch size and sequence length bound the token claims;
    /// the parameter count is the model's), so an operator sees a stale config.
    pub fn adopt_training_spec(
        &mut self,
        spec: &magnet_jobs::state::TrainingSpec,
        local_params: u64,
    ) -> Result<Vec<String>> {
        let mut warnings = Vec::new();
        let mut differs = |what: &str, local: String, chain: String| {
            if local != chain {
                warnings.push(format!(
                    "job.{what} is {local} here but {chain} on chain: using the chain's"
                ));
            }
        };
        let rule = match magnet_rounds::LeaderRule::parse(&spec.leader_rule) {
            Some(magnet_rounds::LeaderRule::BlockHashSeeded) => LeaderRuleName::Hash,
            Some(magnet_rounds::LeaderRule::RoundRobin) => LeaderRuleName::RoundRobin,
            None => {
                return Err(DaemonError::State(format!(
                    "job {}'s leader rule {:?} is not one this worker knows",
                    self.id, spec.leader_rule
                )))
            }
        };
        differs(
            "inner_steps",
            self.inner_steps.to_string(),
            spec.inner_steps.to_string(),
        );
        differs(
            "first_height",
            self.first_height.to_string(),
            spec.first_height.to_string(),
        );
        differs(
            "blocks_per_round",
            self.blocks_per_round.to_string(),
            spec.blocks_per_round.to_string(),
        );
        differs(
            "leader_rule",
            format!("{:?}", self.leader_rule),
            format!("{rule:?}"),
        );
        differs(
            "outer_lr_permille",
            self.outer_lr_permille.to_string(),
            spec.outer.lr_permille.to_string(),
        );
        differs(
            "outer_momentum_permille",
            self.outer_momentum_permille.to_string(),
            spec.outer.momentum_permille.to_string(),
        );
        self.outer_lr_permille = spec.outer.lr_permille;
        self.outer_momentum_permille = spec.outer.momentum_permille;
        self.inner_steps = spec.inner_steps;
        self.first_height = spec.first_height;
        self.blocks_per_round = spec.blocks_per_round;
        self.leader_rule = rule;
        let local_tokens = (self.batch_size as u128) * (self.seq_len as u128);
        let chain_tokens = u128::from(spec.batch_size) * u128::from(spec.seq_len);
        if self.batch_size as u64 != u64::from(spec.batch_size)
            || self.seq_len as u64 != u64::from(spec.seq_len)
        {
            warnings.push(format!(
                "job.batch_size × seq_len is {} × {} here but {} × {} on chain{}",
                self.batch_size,
                self.seq_len,
                spec.batch_size,
                spec.seq_len,
                if local_tokens > chain_tokens {
                    ": this worker's token claims exceed the job's bound and leaders will refuse them"
                } else {
                    ""
                }
            ));
        }
        if local_params != spec.params {
            warnings.push(format!(
                "this worker's model has {local_params} parameters, the job's spec says {}",
                spec.params
            ));
        }
        Ok(warnings)
    }

    /// The merge rule of the job, entirely from its training spec on chain (ADR 0091): the
    /// outer step (η, μ, outlier factor, minimum contributions, int8 update chunk) and the
    /// staleness rule. The local `outer_*` values play no part (`adopt_training_spec` warns
    /// when they differ), so a leader and its auditors always merge under the same policy and
    /// an auditor never files a false challenge over a local setting.
    pub fn merge_policy_for(
        &self,
        spec: &magnet_jobs::state::TrainingSpec,
    ) -> magnet_diloco::MergePolicy {
        magnet_diloco::MergePolicy {
            lr_permille: spec.outer.lr_permille,
            momentum_permille: spec.outer.momentum_permille,
            outlier_factor_permille: spec.outer.outlier_factor_permille,
            max_staleness: spec.max_staleness,
            stale_decay_bps: spec.stale_decay_bps,
            min_contributions: spec.outer.min_contributions,
            update_chunk: spec.outer.update_chunk,
        }
    }
}

/// A deliberate fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// Behave.
    None,
    /// Send NaN pseudo-gradients (the leader must reject them).
    Nan,
    /// Commit the epoch's work but never reveal it (the chain must slash).
    NoReveal,
    /// Adversary (issue 16): sign claims of 100× its steps and tokens (the leader and the chain
    /// must refuse them).
    Inflate,
    /// Adversary: never train; hand in a zero Δ (the leader must reject it).
    Lazy,
    /// Adversary: after each round it trained, record that round on chain itself, as its only
    /// contributor at full weight (the chain must refuse a record from a non-leader).
    Hijack,
    /// Adversary: name another node's accepted Δs as its own work (the chain must refuse the
    /// reveal).
    Copycat,
    /// Adversary (ADR 0089): as leader, serve and record a merged checkpoint that is not the
    /// merge of the Δs its record lists (the merge is perturbed before hashing); the drawn
    /// auditors must catch it, and the upheld challenge slashes it at 1.0 and rolls the head
    /// back.
    Fraud,
    /// Adversary: one of several identities that split one bond and one machine — it trains
    /// ⌈H/4⌉ inner steps per round (a quarter of the hardware) and claims them honestly, so the
    /// split earns only if splitting itself pays.
    Sybil,
    /// Adversary: an evaluator that scores every contribution of its partner (`dev.partner`) at
    /// the highest quality; the median and the deviation slash must make it lose.
    Collude,
    /// Adversary: train on the job's public validation split instead of its shard (its Δs'
    /// marginal scores on the post-deadline windows of the whole corpus must not beat an
    /// honest worker's; ADR 0090).
    Evalfit,
    /// Honest, on a bad link: every work and score commitment it sends lands on chain, but
    /// the daemon never learns it (as when inclusion outlasts the client's wait and the
    /// window closes meanwhile). The reveal must still happen — the chain's record decides —
    /// or the node is slashed `no_reveal` for honest work.
    LostAck,
    /// Honest work, no local copy (devnets and tests of the storage tier): its Δs exist only
    /// as stripes on the storage nodes, so the leader must read them from there (ADR 0107).
    StripeOnly,
    /// A storage node whose disk rots: at each epoch's audit it flips a byte in one shard it
    /// was challenged on. Its own store's hash check refuses the shard, the chain slashes the
    /// missing proof and the stripe is repaired onto another node (ADR 0107).
    Bitrot,
    /// Adversary (ADR 0112/0115): its trial server answers research units with fabricated
    /// predictions (a better score than the pipeline earns), signed as if computed; the
    /// coordinator's re-checks catch it, the chain's drawn checkers confirm it and it is
    /// slashed `fabricated_trial`.
    Fabricate,
}

impl Fault {
    /// Parses the devnet / CLI names: `none`, `nan`, `no-reveal`, `inflate`, `lazy`, `hijack`,
    /// `copycat`, `fraud`, `sybil`, `collude`, `evalfit`, `lost-ack`, `stripe-only`, `bitrot`,
    /// `fabricate`.
    pub fn parse(s: &str) -> Option<Fault> {
        Some(match s {
            "none" => Fault::None,
            "nan" => Fault::Nan,
            "no-reveal" => Fault::NoReveal,
            "inflate" => Fault::Inflate,
            "lazy" => Fault::Lazy,
            "hijack" => Fault::Hijack,
            "copycat" => Fault::Copycat,
            "fraud" => Fault::Fraud,
            "sybil" => Fault::Sybil,
            "collude" => Fault::Collude,
            "evalfit" => Fault::Evalfit,
            "lost-ack" => Fault::LostAck,
            "stripe-only" => Fault::StripeOnly,
            "bitrot" => Fault::Bitrot,
            "fabricate" => Fault::Fabricate,
            _ => return None,
        })
    }
}

/// Fault injection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DevSection {
    /// The fault to play.
    pub fault: Fault,
    /// The `collude` fault's partner: the operator address whose work it scores high (empty:
    /// none).
    pub partner: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            moniker: "worker".into(),
            chain: ChainSection::default(),
            node: NodeSection::default(),
            job: JobSection::default(),
            dev: DevSection::default(),
        }
    }
}

impl Default for ChainSection {
    fn default() -> Self {
        ChainSection {
            rpc: vec!["http://127.0.0.1:26657".into()],
            gas_limit: 2_000_000,
            fee_umag: 0,
            gas_price: magnet_client::tx::DEFAULT_GAS_PRICE.into(),
        }
    }
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            tier: "cpu_only".into(),
            p2p_listen: "127.0.0.1:7100".into(),
            region: "local".into(),
            metrics_listen: String::new(),
            storage_quota: 1 << 30,
        }
    }
}

impl Default for JobSection {
    fn default() -> Self {
        JobSection {
            id: 1,
            corpus: PathBuf::from("data/text/kjv.txt"),
            tokenizer: PathBuf::from("tokenizer.json"),
            vocab_size: 512,
            preset: "tiny".into(),
            batch_size: 8,
            seq_len: 32,
            lr: 3e-3,
            eval_windows: 32,
            model_seed: 42,
            shard_index: 0,
            shard_count: 1,
            inner_steps: 20,
            schedule_steps: 2_000,
            first_height: 10,
            blocks_per_round: 20,
            round_ms: 15_000,
            announce_timeout_ms: 6_000,
            merge_grace_ms: 6_000,
            leader_rule: LeaderRuleName::Hash,
            compression_chunk: 256,
            commit_lead_secs: 10,
            outer_lr_permille: 1000,
            outer_momentum_permille: 0,
        }
    }
}

impl Default for DevSection {
    fn default() -> Self {
        DevSection {
            fault: Fault::None,
            partner: String::new(),
        }
    }
}

/// The tiers the registry knows.
pub const TIERS: &[&str] = &[
    "orchestrator",
    "gpu_compute",
    "storage_node",
    "cpu_only",
    "mobile_light",
];

impl Config {
    /// Reads `home/worker.toml`, resolving relative paths against `home`.
    pub fn load(home: &Path) -> Result<Config> {
        let path = home.join(CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| DaemonError::Config {
            path: path.display().to_string(),
            reason: format!(
                "{e}; create it with `magnet-worker init --home {}`",
                home.display()
            ),
        })?;
        let mut cfg: Config = toml::from_str(&text).map_err(|e| DaemonError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        cfg.job.corpus = resolve(home, &cfg.job.corpus);
        cfg.job.tokenizer = resolve(home, &cfg.job.tokenizer);
        cfg.validate().map_err(|reason| DaemonError::Config {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(cfg)
    }

    /// Writes the config to `home/worker.toml` (atomically).
    pub fn save(&self, home: &Path) -> Result<()> {
        let text = toml::to_string_pretty(self).map_err(|e| DaemonError::Config {
            path: CONFIG_FILE.into(),
            reason: e.to_string(),
        })?;
        crate::state::write_atomic(&home.join(CONFIG_FILE), text.as_bytes())
    }

    /// Checks every range; the error names the field and what would work.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.chain.rpc.is_empty() {
            return Err("chain.rpc is empty: give at least one RPC endpoint".into());
        }
        for u in &self.chain.rpc {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(format!(
                    "chain.rpc entry {u:?} must be an http(s) URL like http://127.0.0.1:26657"
                ));
            }
        }
        if self.chain.gas_limit == 0 {
            return Err("chain.gas_limit must be positive".into());
        }
        self.chain.fee()?;
        if !TIERS.contains(&self.node.tier.as_str()) {
            return Err(format!(
                "node.tier {:?} is not a tier; use one of {}",
                self.node.tier,
                TIERS.join(", ")
            ));
        }
        self.node
            .p2p_listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| format!("node.p2p_listen {:?}: {e}", self.node.p2p_listen))?;
        if !self.node.metrics_listen.is_empty() {
            self.node
                .metrics_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|e| format!("node.metrics_listen {:?}: {e}", self.node.metrics_listen))?;
        }
        let j = &self.job;
        if j.shard_count == 0 || j.shard_index >= j.shard_count {
            return Err(format!(
                "job.shard_index {} must be below job.shard_count {} (and the count positive)",
                j.shard_index, j.shard_count
            ));
        }
        let positive = [
            ("job.batch_size", j.batch_size as u64),
            ("job.seq_len", j.seq_len as u64),
            ("job.eval_windows", j.eval_windows as u64),
            ("job.inner_steps", u64::from(j.inner_steps)),
            ("job.schedule_steps", j.schedule_steps as u64),
            ("job.blocks_per_round", j.blocks_per_round),
            ("job.round_ms", j.round_ms),
            ("job.compression_chunk", u64::from(j.compression_chunk)),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("{name} must be positive"));
        }
        if !(j.lr.is_finite() && j.lr > 0.0) {
            return Err(format!("job.lr {} must be a positive number", j.lr));
        }
        if j.first_height == 0 {
            return Err("job.first_height must be at least 1".into());
        }
        j.merge_policy().validate().map_err(|e| {
            format!(
                "job.outer_lr_permille {} / job.outer_momentum_permille {}: {e}",
                j.outer_lr_permille, j.outer_momentum_permille
            )
        })?;
        Ok(())
    }
}

fn resolve(home: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        home.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table row: the text the error must contain, and how to break the config.
    type BadField = (&'static str, Box<dyn Fn(&mut Config)>);

    #[test]
    fn the_chains_training_spec_replaces_the_round_facts_with_warnings() {
        let mut j = JobSection::default();
        let spec = magnet_jobs::state::TrainingSpec {
            inner_steps: j.inner_steps,
            batch_size: j.batch_size as u32,
            seq_len: j.seq_len as u32,
            params: 1_000,
            first_height: j.first_height,
            blocks_per_round: j.blocks_per_round,
            leader_rule: "hash".into(),
            max_staleness: 1,
            stale_decay_bps: 2_500,
            outer: magnet_jobs::state::OuterPolicy {
                lr_permille: j.outer_lr_permille,
                momentum_permille: j.outer_momentum_permille,
                ..Default::default()
            },
        };
        assert!(j.adopt_training_spec(&spec, 1_000).unwrap().is_empty());
        let other = magnet_jobs::state::TrainingSpec {
            inner_steps: 7,
            batch_size: 1,
            first_height: 99,
            blocks_per_round: 3,
            leader_rule: "round_robin".into(),
            outer: magnet_jobs::state::OuterPolicy {
                lr_permille: 650,
                momentum_permille: 850,
                outlier_factor_permille: 3_000,
                min_contributions: 2,
                update_chunk: 64,
            },
            ..spec.clone()
        };
        let w = j.adopt_training_spec(&other, 999).unwrap();
        for what in [
            "inner_steps",
            "first_height",
            "blocks_per_round",
            "leader_rule",
            "exceed the job's bound",
            "parameters",
            "outer_lr_permille",
            "outer_momentum_permille",
        ] {
            assert!(w.iter().any(|x| x.contains(what)), "{what}: {w:?}");
        }
        assert_eq!(
            (j.inner_steps, j.first_height, j.blocks_per_round),
            (7, 99, 3)
        );
        assert_eq!(j.leader_rule, LeaderRuleName::RoundRobin);
        // The whole merge policy comes from the chain, never from the local config.
        j.outer_lr_permille = 1_000;
        let p = j.merge_policy_for(&other);
        assert_eq!((p.max_staleness, p.stale_decay_bps), (1, 2_500));
        assert_eq!(
            (
                p.lr_permille,
                p.momentum_permille,
                p.outlier_factor_permille,
                p.min_contributions,
                p.update_chunk
            ),
            (650, 850, 3_000, 2, 64)
        );
        let bad = magnet_jobs::state::TrainingSpec {
            leader_rule: "dice".into(),
            ..spec
        };
        assert!(j.adopt_training_spec(&bad, 1_000).is_err());
    }

    /// Every outer policy the chain accepts at job creation is one the daemon can merge with
    /// (the chain's ranges sit inside `MergePolicy::validate`'s), at both ends of each range.
    #[test]
    fn every_outer_policy_the_chain_accepts_is_a_valid_merge_policy() {
        let j = JobSection::default();
        let extremes = [(1, 0, 1_000, 1, 0), (10_000, 999, 1_000_000, 256, 1 << 20)];
        for (lr, mu, outlier, min, chunk) in extremes {
            let o = magnet_proto::jobs::v1::OuterPolicy {
                lr_permille: lr,
                momentum_permille: mu,
                outlier_factor_permille: outlier,
                min_contributions: min,
                update_chunk: chunk,
            };
            let outer = magnet_jobs::msgs::outer_policy(&o).unwrap();
            let spec = magnet_jobs::state::TrainingSpec {
                inner_steps: 8,
                batch_size: 4,
                seq_len: 64,
                params: 1_000,
                first_height: 10,
                blocks_per_round: 10,
                leader_rule: "hash".into(),
                max_staleness: 16,
                stale_decay_bps: 10_000,
                outer,
            };
            assert_eq!(j.merge_policy_for(&spec).validate(), Ok(()), "{o:?}");
        }
    }

    #[test]
    fn the_default_config_is_valid_and_round_trips_through_toml() {
        let c = Config::default();
        assert_eq!(c.validate(), Ok(()));
        let text = toml::to_string_pretty(&c).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn every_bad_field_is_named_in_its_error() {
        let cases: Vec<BadField> = vec![
            ("chain.rpc is empty", Box::new(|c| c.chain.rpc.clear())),
            (
                "must be an http(s) URL",
                Box::new(|c| c.chain.rpc = vec!["tcp://x:1".into()]),
            ),
            ("node.tier", Box::new(|c| c.node.tier = "gold".into())),
            (
                "node.p2p_listen",
                Box::new(|c| c.node.p2p_listen = "nowhere".into()),
            ),
            (
                "node.metrics_listen",
                Box::new(|c| c.node.metrics_listen = "x".into()),
            ),
            ("job.shard_index", Box::new(|c| c.job.shard_index = 3)),
            ("job.inner_steps", Box::new(|c| c.job.inner_steps = 0)),
            (
                "job.outer_lr_permille 0",
                Box::new(|c| c.job.outer_lr_permille = 0),
            ),
            (
                "job.outer_momentum_permille 1000",
                Box::new(|c| c.job.outer_momentum_permille = 1000),
            ),
            (
                "job.blocks_per_round",
                Box::new(|c| c.job.blocks_per_round = 0),
            ),
            ("job.lr", Box::new(|c| c.job.lr = f64::NAN)),
            ("job.first_height", Box::new(|c| c.job.first_height = 0)),
            ("chain.gas_limit", Box::new(|c| c.chain.gas_limit = 0)),
            (
                "chain.gas_price",
                Box::new(|c| c.chain.gas_price = "free".into()),
            ),
        ];
        for (needle, f) in cases {
            let mut c = Config::default();
            f(&mut c);
            let err = c.validate().expect_err(needle);
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn unknown_fields_and_missing_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("magnet-worker init"), "{e}");
        std::fs::write(dir.path().join(CONFIG_FILE), "moniker = \"a\"\nbogus = 1\n").unwrap();
        let e = Config::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
    }
}
