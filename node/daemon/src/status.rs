//! `magnet-worker status`: an operator's view at a glance.

use std::path::Path;

use serde::Serialize;

use crate::chain::Chain;
use crate::config::Config;
use crate::keys::WorkerKeys;
use crate::round::NodeRecordJson;
use crate::state::State;
use crate::Result;

/// Everything `status` reports.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    /// Moniker.
    pub moniker: String,
    /// Operator address.
    pub operator: String,
    /// Node id.
    pub node_id: String,
    /// Registered on chain.
    pub registered: bool,
    /// Tier on chain.
    pub tier: Option<String>,
    /// Bond on chain (umag).
    pub bond: Option<String>,
    /// Jailed.
    pub jailed: bool,
    /// Current epoch.
    pub epoch: u64,
    /// Seconds since the last heartbeat the chain saw.
    pub since_last_heartbeat_secs: Option<u64>,
    /// Heartbeats missed (by the registry's interval) since the last one.
    pub missed_heartbeats: u64,
    /// Eligible this epoch: active, not jailed, heartbeats within the liveness window.
    pub eligible: bool,
    /// Epochs with a commit not yet revealed.
    pub pending_reveals: Vec<u64>,
    /// Epochs with work not yet committed.
    pub pending_commits: Vec<u64>,
    /// Evaluations committed but not revealed.
    pub pending_eval_reveals: usize,
    /// Open notary challenges naming this operator.
    pub challenges_against: usize,
    /// Last settled epoch and this operator's reward in it (umag).
    pub last_settlement: Option<(u64, String)>,
    /// Last DiLoCo round merged locally.
    pub last_merged_round: Option<u64>,
}

/// Builds the report (chain queries + local state).
pub async fn status(home: &Path) -> Result<StatusReport> {
    let cfg = Config::load(home)?;
    let keys = WorkerKeys::load(home)?;
    let st = State::load(home)?;
    let chain = Chain::from_config(&cfg.chain)?;
    let op = keys.operator.address().to_string();
    let g = chain.genesis().await?;
    let head = chain.head().await?;
    let epoch = head.time.saturating_sub(g.genesis_time) / g.epoch_secs.max(1);
    let node: Option<NodeRecordJson> = chain.query("/magnet.registry.v1/node", &op).await?;
    let reg: serde_json::Value = chain.query("/magnet.registry.v1/params", "").await?;
    let interval = reg["heartbeat_interval_secs"].as_u64().unwrap_or(30).max(1);
    let liveness = reg["liveness_window_secs"].as_u64().unwrap_or(300);
    let since = node
        .as_ref()
        .map(|n| head.time.saturating_sub(n.last_heartbeat));
    let challenges: serde_json::Value = chain
        .query("/magnet.notary.v1/challenges", "")
        .await
        .unwrap_or(serde_json::Value::Null);
    let challenges_against = challenges
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|c| c.to_string().contains(&op))
                .filter(|c| {
                    c["status"]
                        .as_str()
                        .is_none_or(|s| s == "Open" || s == "open")
                })
                .count()
        })
        .unwrap_or(0);
    Ok(StatusReport {
        moniker: cfg.moniker.clone(),
        operator: op,
        node_id: keys.node_id()?,
        registered: node.is_some(),
        tier: node.as_ref().map(|n| n.tier.clone()),
        bond: node.as_ref().map(|n| n.bond.clone()),
        jailed: node.as_ref().is_some_and(|n| n.jailed),
        epoch,
        since_last_heartbeat_secs: since,
        missed_heartbeats: since.map_or(0, |s| s / interval),
        eligible: node
            .as_ref()
            .is_some_and(|n| n.to_peer().active && since.is_some_and(|s| s <= liveness)),
        pending_reveals: st
            .work
            .iter()
            .filter(|(_, w)| w.committed && !w.revealed)
            .map(|(e, _)| *e)
            .collect(),
        pending_commits: st
            .steps_by_epoch
            .iter()
            .filter(|(e, s)| **s > 0 && !st.work.get(e).is_some_and(|w| w.committed))
            .map(|(e, _)| *e)
            .collect(),
        pending_eval_reveals: st
            .evals
            .values()
            .filter(|e| e.committed && !e.revealed)
            .count(),
        challenges_against,
        last_settlement: st
            .settlements
            .iter()
            .next_back()
            .map(|(e, r)| (*e, r.clone())),
        last_merged_round: st.last_merged.as_ref().map(|(r, _)| *r),
    })
}

impl std::fmt::Display for StatusReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "worker     {} ({})", self.moniker, self.node_id)?;
        writeln!(f, "operator   {}", self.operator)?;
        writeln!(
            f,
            "registered {}{}",
            yn(self.registered),
            match (&self.tier, &self.bond) {
                (Some(t), Some(b)) => format!(" as {t}, bond {b} umag"),
                _ => " — run `magnet-worker join`".into(),
            }
        )?;
        writeln!(f, "jailed     {}", yn(self.jailed))?;
        writeln!(
            f,
            "epoch      {} (eligible: {})",
            self.epoch,
            yn(self.eligible)
        )?;
        writeln!(
            f,
            "heartbeat  {} ({} missed)",
            self.since_last_heartbeat_secs
                .map_or("never".into(), |s| format!("{s}s ago")),
            self.missed_heartbeats
        )?;
        writeln!(
            f,
            "pending    commits {:?}, reveals {:?}, evaluation reveals {}",
            self.pending_commits, self.pending_reveals, self.pending_eval_reveals
        )?;
        writeln!(
            f,
            "challenges {} open against this operator",
            self.challenges_against
        )?;
        writeln!(
            f,
            "settlement {}",
            self.last_settlement
                .as_ref()
                .map_or("none yet".into(), |(e, r)| format!("epoch {e}: {r} umag"))
        )?;
        write!(
            f,
            "diloco     last merged round {}",
            self.last_merged_round
                .map_or("none".into(), |r| r.to_string())
        )
    }
}
