//! `magnetd devnet --research DOMAIN:CSV:TARGET` (issue 20, ADR 0115): a research job next to
//! the training job.
//!
//! The devnet plays the job's creator and data contributor:
//!
//! 1. It splits the CSV into the job's data (four rows in five) and a sealed test split (every
//!    fifth data row), registers the data's content address with the data module
//!    (`MsgRegisterData`) and hands the file to the first worker's `research-data/` folder —
//!    that node holds the data and serves it to the others by its address.
//! 2. Once the record is confirmed (the devnet's challenge window is short) and the workers
//!    are live, it creates the research job (`MsgCreateJob` with a `ResearchSpec` committing
//!    to the test split). The chain draws the coordinator among the live orchestrators.
//! 3. The coordinator's daemon runs the search over the other workers and records it; the
//!    chain draws checkers for sampled and disputed trials, who re-run them (see
//!    `magnet_daemon::research_job`).
//! 4. After the final version, the devnet publishes the test split (to the same worker) and
//!    reveals it (`MsgRevealTestSplit`); the chain's held-out evaluators score the final
//!    model, and the job settles at its deadline.
//!
//! The report's research section is read back from the chain (versions, trials, checks,
//! disputes, settlement, slashes) and from the coordinator's own `network.json` (off-chain
//! re-checks).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, Key};
use magnet_core::Coins;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::devnet::q;

/// Trials a devnet research job may record.
pub const TRIAL_BUDGET: u32 = 12;
/// Its escrow (umag).
pub const BUDGET: u128 = 200_000_000;
/// Seconds from its creation to its deadline (the search and its checks run in them).
pub const DEADLINE_SECS: u64 = 300;
/// Share of recorded trials the chain re-checks (ppm).
pub const RECHECK_PPM: u32 = 250_000;
/// Cross-validation folds.
pub const FOLDS: u32 = 3;
/// Search seed.
pub const SEED: u64 = 7;

/// A node of the devnet, as this module needs it.
pub struct NodeInfo {
    /// `w<i>`.
    pub moniker: String,
    /// Worker home.
    pub home: PathBuf,
    /// `node-…`.
    pub node_id: String,
    /// Operator account.
    pub operator: String,
}

/// The research job the devnet creates.
#[derive(Debug, Clone)]
pub struct Plan {
    domain: String,
    target: String,
    train: PathBuf,
    test: PathBuf,
    train_address: [u8; 32],
    test_address: [u8; 32],
    salt: [u8; 32],
    size: u64,
    rows: (usize, usize),
}

/// Parses `DOMAIN:CSV:TARGET` and writes the data and the sealed test split under
/// `out/data/`.
pub fn prepare(spec: &str, out: &Path) -> Result<Plan> {
    let mut parts = spec.splitn(3, ':');
    let (Some(domain), Some(csv), Some(target)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("--research {spec:?}: use DOMAIN:CSV:TARGET, e.g. tabular:data/tabular/breast_cancer.csv:target");
    };
    if domain != "tabular" && domain != "timeseries" {
        bail!("--research domain {domain:?}: the devnet runs tabular or timeseries research jobs");
    }
    if target.is_empty() || target.len() > 128 {
        bail!("--research target column {target:?}: 1 to 128 bytes");
    }
    let text = std::fs::read_to_string(csv)
        .with_context(|| format!("reading {csv} (run from the repository root or give a path)"))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| anyhow!("{csv} is empty"))?;
    if !header
        .split(',')
        .any(|c| c.trim().trim_matches('"') == target)
    {
        bail!("{csv} has no column {target:?} (its header: {header})");
    }
    let (mut train, mut test) = (format!("{header}\n"), format!("{header}\n"));
    let mut rows = (0, 0);
    for (i, l) in lines.enumerate() {
        // Every fifth data row is sealed; a time series keeps its order either way.
        if i % 5 == 4 {
            test.push_str(l);
            test.push('\n');
            rows.1 += 1;
        } else {
            train.push_str(l);
            train.push('\n');
            rows.0 += 1;
        }
    }
    if rows.0 < 20 || rows.1 < 5 {
        bail!(
            "{csv}: {} data rows and {} test rows are too few",
            rows.0,
            rows.1
        );
    }
    let dir = out.join("data");
    std::fs::create_dir_all(&dir)?;
    let (tp, sp) = (dir.join("research-data.csv"), dir.join("research-test.csv"));
    std::fs::write(&tp, &train)?;
    std::fs::write(&sp, &test)?;
    Ok(Plan {
        domain: domain.to_string(),
        target: target.to_string(),
        train: tp,
        test: sp,
        train_address: magnet_core::sha256(train.as_bytes()),
        test_address: magnet_core::sha256(test.as_bytes()),
        salt: rand::random(),
        size: train.len() as u64,
        rows,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Register,
    Confirming,
    Running,
    Revealed,
    Settled,
}

/// The devnet's side of the research job, stepped from its watch loop.
pub struct Driver {
    plan: Plan,
    phase: Phase,
    /// The research job, once created.
    pub job: Option<u64>,
    tries: u32,
}

fn fee() -> FeeSpec {
    FeeSpec {
        amount: Coins::new(),
        gas_limit: 2_000_000,
    }
}

async fn send(c: &ChainClient, key: &Key, what: &str, msg: cosmrs::Any) -> Result<()> {
    let r = c.sign_and_broadcast(key, vec![msg], what, &fee()).await?;
    let tx = c
        .wait_tx(&r.hash.to_string(), Duration::from_secs(30))
        .await?;
    if tx.tx_result.code.is_err() {
        bail!("{what} failed: {}", tx.tx_result.log);
    }
    Ok(())
}

fn place(file: &Path, holder: &NodeInfo, name: &str) -> Result<()> {
    let dir = holder.home.join("research-data");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(file, dir.join(name))
        .with_context(|| format!("handing {} to {}", file.display(), holder.moniker))?;
    Ok(())
}

impl Driver {
    /// A driver for `plan`.
    pub fn new(plan: Plan) -> Self {
        Driver {
            plan,
            phase: Phase::Register,
            job: None,
            tries: 0,
        }
    }

    /// Whether the research job is settled.
    pub fn settled(&self) -> bool {
        self.phase == Phase::Settled
    }

    /// One step; `live` says the workers are running and heart-beating.
    pub async fn step(
        &mut self,
        c: &ChainClient,
        creator: &Key,
        holder: &NodeInfo,
        live: bool,
    ) -> Result<()> {
        let p = &self.plan;
        match self.phase {
            Phase::Register => {
                let msg = magnet_client::msgs::register_data(
                    &creator.address(),
                    p.train_address,
                    p.size,
                    &p.domain,
                );
                send(c, creator, "MsgRegisterData", msg).await?;
                place(&p.train, holder, "research-data.csv")?;
                eprintln!(
                    "devnet: research data registered ({} rows, {} sealed for the test split; \
                     address {})",
                    p.rows.0,
                    p.rows.1,
                    hex::encode(p.train_address)
                );
                self.phase = Phase::Confirming;
            }
            Phase::Confirming => {
                if !live {
                    return Ok(());
                }
                let records = q(c, "/magnet.data.v1/records", "").await?;
                let hex_addr = hex::encode(p.train_address);
                let confirmed = records.as_array().is_some_and(|a| {
                    a.iter().any(|r| {
                        r["hash"].as_str() == Some(hex_addr.as_str())
                            && r["status"]
                                .as_str()
                                .is_some_and(|s| s.eq_ignore_ascii_case("confirmed"))
                    })
                });
                if !confirmed {
                    return Ok(());
                }
                let st = c.status().await?;
                let now =
                    u64::try_from(st.sync_info.latest_block_time.unix_timestamp()).unwrap_or(0);
                let spec = magnet_client::msgs::ResearchSpec {
                    domain: p.domain.clone(),
                    data_address: hex_addr,
                    target: p.target.clone(),
                    context: String::new(),
                    trial_budget: TRIAL_BUDGET,
                    seed: SEED,
                    folds: FOLDS,
                    test_commitment: hex::encode(magnet_jobs::msgs::test_commitment(
                        &p.test_address,
                        &p.salt,
                    )),
                    recheck_ppm: RECHECK_PPM,
                };
                let msg = magnet_client::msgs::create_research_job(
                    &creator.address(),
                    BUDGET,
                    now + DEADLINE_SECS,
                    &spec,
                );
                match send(c, creator, "MsgCreateJob (research)", msg).await {
                    Ok(()) => {}
                    // No live orchestrator yet: the workers' first heartbeats are on their way.
                    Err(e) if self.tries < 20 => {
                        self.tries += 1;
                        tracing::debug!("research job not created yet: {e:#}");
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                let jobs = q(c, "/magnet.jobs.v1/jobs", "").await?;
                let job = jobs
                    .as_array()
                    .and_then(|j| j.last())
                    .and_then(|j| j["id"].as_u64())
                    .ok_or_else(|| anyhow!("no job on chain after the research MsgCreateJob"))?;
                let v = q(c, "/magnet.jobs.v1/research", &job.to_string()).await?;
                eprintln!(
                    "devnet: research job {job} created ({} trials, recheck {} %, deadline in {} s); \
                     coordinator {}",
                    TRIAL_BUDGET,
                    RECHECK_PPM / 10_000,
                    DEADLINE_SECS,
                    v["research"]["coordinator"].as_str().unwrap_or("?")
                );
                self.job = Some(job);
                self.phase = Phase::Running;
            }
            Phase::Running => {
                let Some(job) = self.job else { return Ok(()) };
                let v = q(c, "/magnet.jobs.v1/research", &job.to_string()).await?;
                if !v["research"]["settlement"].is_null() {
                    self.phase = Phase::Settled;
                    return Ok(());
                }
                if v["research"]["final_at"].is_null() {
                    return Ok(());
                }
                // The final version is in: publish the test split and open the commitment.
                place(&p.test, holder, "research-test.csv")?;
                let msg = magnet_client::msgs::reveal_test_split(
                    &creator.address(),
                    job,
                    p.test_address,
                    p.salt,
                );
                send(c, creator, "MsgRevealTestSplit", msg).await?;
                eprintln!("devnet: research job {job}: test split revealed");
                self.phase = Phase::Revealed;
            }
            Phase::Revealed => {
                let Some(job) = self.job else { return Ok(()) };
                let v = q(c, "/magnet.jobs.v1/research", &job.to_string()).await?;
                if !v["research"]["settlement"].is_null() {
                    eprintln!("devnet: research job {job} settled");
                    self.phase = Phase::Settled;
                }
            }
            Phase::Settled => {}
        }
        Ok(())
    }

    /// What the run's progress line says about research.
    pub fn progress(&self) -> String {
        match self.phase {
            Phase::Register | Phase::Confirming => "research: data pending".into(),
            Phase::Running => "research: searching".into(),
            Phase::Revealed => "research: held-out".into(),
            Phase::Settled => "research: settled".into(),
        }
    }
}

/// One worker's part in the research job.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResearchNode {
    /// `w<i>`.
    pub moniker: String,
    /// Trials recorded (live and voided).
    pub trials: u64,
    /// … of them voided (a fabrication finding).
    pub voided: u64,
    /// Re-runs it revealed as a drawn checker.
    pub checks: u64,
    /// Paid by the job (umag): trials, checks and, for the coordinator, quality.
    pub paid: u128,
    /// Slashed for `fabricated_trial` (umag).
    pub slashed: u128,
    /// Caught off chain by the coordinator (why).
    pub caught: Option<String>,
}

/// The report's research section.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ResearchReport {
    /// Job id.
    pub job: u64,
    /// Domain and data rows (data, test).
    pub domain: String,
    /// Rows of the data and of the sealed test split.
    pub rows: (usize, usize),
    /// Coordinator moniker.
    pub coordinator: String,
    /// Versions recorded.
    pub versions: u64,
    /// Trials recorded / live.
    pub trials: (u64, u64),
    /// Chain checks: drawn, agreed, fabricated, no verdict.
    pub checks: (u64, u64, u64, u64),
    /// Disputes the coordinator filed.
    pub disputes: u64,
    /// … of them upheld (the worker slashed `fabricated_trial`).
    pub disputes_upheld: u64,
    /// Off chain: units answered by workers, re-checked on a second worker, disagreements.
    pub offchain: (u64, u64, u64),
    /// Best recorded trial's CV loss × 10^6.
    pub best_cv_loss_micro: Option<u64>,
    /// Held-out (final, baseline, improvement ppm), when measured.
    pub heldout: Option<(u64, u64, u64)>,
    /// How the held-out evaluation ended (`measured`, `unavailable`, `unmeasured`; empty: not
    /// resolved).
    pub heldout_outcome: String,
    /// Paid to the held-out evaluators who revealed (umag; outside the settlement record).
    pub evaluator_pay: u128,
    /// Settlement (umag): workers, checkers, coordinator, creator, community; and how the
    /// quality pool went.
    pub settlement: Option<(u128, u128, u128, u128, u128, String)>,
    /// Per node.
    pub nodes: Vec<ResearchNode>,
}

fn u(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
        .unwrap_or(0)
}

/// Reads the research job back from the chain and the coordinator's `network.json`.
pub async fn report(c: &ChainClient, plan: &Driver, nodes: &[NodeInfo]) -> Result<ResearchReport> {
    let Some(job) = plan.job else {
        bail!("the research job was never created (see the worker logs)");
    };
    let v = q(c, "/magnet.jobs.v1/research", &job.to_string()).await?;
    let r = &v["research"];
    let moniker = |id: &str| {
        nodes
            .iter()
            .find(|n| n.node_id == id)
            .map_or(id.to_string(), |n| n.moniker.clone())
    };
    let coordinator = r["coordinator"].as_str().unwrap_or_default().to_string();
    let mut rows: Vec<ResearchNode> = nodes
        .iter()
        .map(|n| ResearchNode {
            moniker: n.moniker.clone(),
            ..Default::default()
        })
        .collect();
    let mut rep = ResearchReport {
        job,
        domain: plan.plan.domain.clone(),
        rows: plan.plan.rows,
        coordinator: moniker(&coordinator),
        versions: v["versions"].as_array().map_or(0, |a| a.len() as u64),
        ..Default::default()
    };
    let mut subjects: Vec<(bool, &Value)> = Vec::new();
    for (list, disputed) in [("trials", false), ("disputes", true)] {
        if let Some(a) = v[list].as_array() {
            subjects.extend(a.iter().map(|t| (disputed, t)));
        }
    }
    let mut best: Option<u64> = None;
    for (disputed, t) in subjects {
        let worker = moniker(t["worker_node_id"].as_str().unwrap_or_default());
        let voided = t["voided"].as_bool().unwrap_or(false);
        if disputed {
            rep.disputes += 1;
            rep.disputes_upheld += u64::from(t["outcome"].as_str() == Some("upheld"));
        } else {
            rep.trials.0 += 1;
            if !voided {
                rep.trials.1 += 1;
                if let Some(l) = t["cv_loss_micro"].as_u64() {
                    best = Some(best.map_or(l, |b| b.min(l)));
                }
            }
            if let Some(n) = rows.iter_mut().find(|n| n.moniker == worker) {
                n.trials += 1;
                n.voided += u64::from(voided);
            }
        }
        let ch = &t["check"];
        if ch.is_null() {
            continue;
        }
        rep.checks.0 += 1;
        match ch["outcome"].as_str().unwrap_or_default() {
            "agreed" => rep.checks.1 += 1,
            "fabricated" => rep.checks.2 += 1,
            "no_verdict" => rep.checks.3 += 1,
            _ => {}
        }
        for vote in ch["votes"].as_array().cloned().unwrap_or_default() {
            if !vote["oof_hash"].is_null() {
                let m = moniker(vote["checker"].as_str().unwrap_or_default());
                if let Some(n) = rows.iter_mut().find(|n| n.moniker == m) {
                    n.checks += 1;
                }
            }
        }
    }
    rep.best_cv_loss_micro = best;
    let h = &v["heldout"]["result"];
    if let (Some(f), Some(b)) = (
        h["final_test_loss_micro"].as_u64(),
        h["baseline_test_loss_micro"].as_u64(),
    ) {
        rep.heldout = Some((f, b, h["improvement_ppm"].as_u64().unwrap_or(0)));
    }
    rep.heldout_outcome = h["outcome"].as_str().unwrap_or_default().to_string();
    rep.evaluator_pay = u(&h["evaluators"]);
    let s = &r["settlement"];
    if !s.is_null() {
        rep.settlement = Some((
            u(&s["workers"]),
            u(&s["checkers"]),
            u(&s["coordinator"]),
            u(&s["creator"]),
            u(&s["community"]),
            s["quality"].as_str().unwrap_or_default().to_string(),
        ));
    }
    // Payments per node, from the chain's research view: live trials and credited checks at
    // the job's slot price, the evaluators' paid list, the coordinator's settlement share.
    // Slashes from the slashing module's records.
    let slot = u(&r["slot_price"]);
    let slashes = q(c, "/magnet.slashing.v1/records", "").await?;
    for (n, info) in rows.iter_mut().zip(nodes) {
        n.slashed = slashes
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|s| {
                s["offender"].as_str() == Some(info.operator.as_str())
                    && s["offence"]
                        .as_str()
                        .is_some_and(|o| o.contains("fabricated"))
            })
            .map(|s| u(&s["amount"]))
            .sum();
        if rep.settlement.is_some() {
            n.paid = slot * u128::from(n.trials - n.voided);
        }
    }
    // Checker credits (one slot each) and the coordinator's quality share.
    for (addr, k) in v["check_credits"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| Some((p.get(0)?.as_str()?.to_string(), p.get(1)?.as_u64()?)))
    {
        if let Some((n, _)) = rows.iter_mut().zip(nodes).find(|(_, i)| i.operator == addr) {
            if rep.settlement.is_some() {
                n.paid += slot * u128::from(k);
            }
        }
    }
    for p in h["paid"].as_array().cloned().unwrap_or_default() {
        if let Some((n, _)) = rows
            .iter_mut()
            .zip(nodes)
            .find(|(_, i)| p["operator"].as_str() == Some(i.operator.as_str()))
        {
            n.paid += u(&p["amount"]);
        }
    }
    if let Some((_, _, q, ..)) = &rep.settlement {
        if let Some(n) = rows.iter_mut().find(|n| n.moniker == rep.coordinator) {
            n.paid += q;
        }
    }
    // Off chain: the coordinator's own record.
    if let Some(ci) = nodes.iter().find(|n| n.node_id == coordinator) {
        let p = ci
            .home
            .join("research")
            .join(format!("job-{job}"))
            .join("network.json");
        if let Ok(b) = std::fs::read(&p) {
            let net: Value = serde_json::from_slice(&b).unwrap_or(Value::Null);
            rep.offchain = (
                net["units_dispatched"].as_u64().unwrap_or(0),
                net["rechecks"].as_u64().unwrap_or(0),
                net["mismatches"].as_u64().unwrap_or(0),
            );
            for w in net["workers"].as_array().cloned().unwrap_or_default() {
                let m = moniker(w["node_id"].as_str().unwrap_or_default());
                if let (Some(n), Some(why)) = (
                    rows.iter_mut().find(|n| n.moniker == m),
                    w["caught"].as_str(),
                ) {
                    n.caught = Some(why.to_string());
                }
            }
        }
    }
    rep.nodes = rows;
    Ok(rep)
}

/// The report's markdown section.
pub fn section(r: &ResearchReport) -> String {
    let mut md = format!(
        "\n## Research\n\nResearch job {} ({}, {} data rows, {} sealed test rows) coordinated by {}: \
         {} versions, {} trials recorded ({} live). Off chain the coordinator handed out {} units, \
         re-ran {} on a second worker and saw {} disagreements. On chain {} trials were re-checked \
         by drawn checkers ({} agreed, {} fabricated, {} without a verdict); the coordinator \
         disputed {} caught fabrications ({} upheld by the drawn checkers).\n",
        r.job,
        r.domain,
        r.rows.0,
        r.rows.1,
        r.coordinator,
        r.versions,
        r.trials.0,
        r.trials.1,
        r.offchain.0,
        r.offchain.1,
        r.offchain.2,
        r.checks.0,
        r.checks.1,
        r.checks.2,
        r.checks.3,
        r.disputes,
        r.disputes_upheld
    );
    if let Some(b) = r.best_cv_loss_micro {
        md.push_str(&format!(
            "\nBest recorded trial: CV log-loss {:.4}.\n",
            b as f64 / 1e6
        ));
    }
    match r.heldout {
        Some((f, b, imp)) => md.push_str(&format!(
            "Held-out (the creator's sealed split, scored by the drawn evaluators): final {:.4}, \
             baseline {:.4}, improvement {:.1} %.\n",
            f as f64 / 1e6,
            b as f64 / 1e6,
            imp as f64 / 1e4
        )),
        None => md.push_str(&format!(
            "Held-out: not measured ({}).\n",
            if r.heldout_outcome.is_empty() {
                "not resolved"
            } else {
                r.heldout_outcome.as_str()
            }
        )),
    }
    if let Some((w, c, co, cr, cm, quality)) = &r.settlement {
        md.push_str(&format!(
            "\nSettlement (umag): trial workers {w}, checkers {c}, coordinator {co}, held-out \
             evaluators {}, back to the creator {cr}, community pool {cm}; quality pool: \
             {quality}.\n",
            r.evaluator_pay
        ));
    } else {
        md.push_str("\nNot settled when the report was written.\n");
    }
    md.push_str(
        "\n| node | trials recorded | voided | re-checks revealed | paid (umag) | slashed (umag) | caught off chain |\n|---|---|---|---|---|---|---|\n",
    );
    for n in &r.nodes {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            n.moniker,
            n.trials,
            n.voided,
            n.checks,
            n.paid,
            n.slashed,
            n.caught.as_deref().unwrap_or("no")
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_research_spec_is_refused_with_a_reason_for_each_kind_of_mistake() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("d.csv");
        let mut body = String::from("a,b,label\n");
        for i in 0..100 {
            body.push_str(&format!("{i},{},{}\n", i * 2, i % 2));
        }
        std::fs::write(&csv, &body).unwrap();
        let c = csv.display().to_string();
        let cases = [
            ("no parts", "tabular".to_string()),
            ("domain", format!("bitnet-lm:{c}:label")),
            ("missing file", "tabular:/nonexistent.csv:label".to_string()),
            ("column", format!("tabular:{c}:nope")),
        ];
        for (name, spec) in cases {
            assert!(prepare(&spec, dir.path()).is_err(), "{name}");
        }
        let p = prepare(&format!("tabular:{c}:label"), dir.path()).unwrap();
        assert_eq!(p.rows, (80, 20));
        let train = std::fs::read(&p.train).unwrap();
        assert_eq!(magnet_core::sha256(&train), p.train_address);
        // Same header in both; no data row in both.
        let test = std::fs::read_to_string(&p.test).unwrap();
        assert!(test.starts_with("a,b,label\n"));
        let train = String::from_utf8(train).unwrap();
        for l in test.lines().skip(1) {
            assert!(!train.lines().any(|t| t == l), "{l}");
        }
    }
}
