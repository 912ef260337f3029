//! `magnet-worker init` and `magnet-worker join`.

use std::path::Path;

use serde::Serialize;

use crate::chain::Chain;
use crate::config::Config;
use crate::keys::WorkerKeys;
use crate::profile::{profile, HardwareProfile};
use crate::run::JobJson;
use crate::{DaemonError, Result};

/// What `init` created.
#[derive(Clone, Debug, Serialize)]
pub struct InitReport {
    /// Worker home.
    pub home: String,
    /// Operator address (fund it, then `join`).
    pub operator: String,
    /// Node key's account address (pays no bond; fund it for tx fees if fees are on).
    pub node_address: String,
    /// Node id.
    pub node_id: String,
    /// Compressed node key (hex).
    pub node_pubkey: String,
    /// Hardware profile.
    pub profile: HardwareProfile,
    /// The tier written to the config.
    pub tier: String,
    /// The SSD provisioning test's figures, when it ran (tier `storage_node`, or `--ssd-test`).
    pub ssd: Option<SsdSummary>,
}

/// File under the worker home holding the SSD provisioning test's full report.
pub const SSD_REPORT_FILE: &str = "ssd.json";

/// How the SSD provisioning test runs at `init`.
#[derive(Clone, Debug)]
pub struct SsdTest {
    /// Run it even when the tier is not `storage_node`.
    pub force: bool,
    /// Test file size (the protocol's is 256 MiB).
    pub file_mb: u64,
    /// Seconds per phase (the protocol's is 5).
    pub phase_secs: u64,
}

impl Default for SsdTest {
    fn default() -> Self {
        SsdTest {
            force: false,
            file_mb: magnet_storage::provision::PROTOCOL_FILE_BYTES >> 20,
            phase_secs: magnet_storage::provision::PROTOCOL_PHASE.as_secs(),
        }
    }
}

/// The SSD test's figures as the worker prints them.
#[derive(Clone, Debug, Serialize)]
pub struct SsdSummary {
    /// Random 4 KiB reads, MB/s.
    pub read_mbps: f64,
    /// Random 4 KiB writes, MB/s.
    pub write_mbps: f64,
    /// The paper's verdict against its own thresholds (the chain applies its params).
    pub verdict: String,
}

/// Runs the O_DIRECT SSD test (paper: 4 KiB random reads and writes) on `home/store` and saves
/// its report to [`SSD_REPORT_FILE`].
pub fn ssd_test(home: &Path, t: &SsdTest) -> Result<SsdSummary> {
    use magnet_storage::provision::{self, ProvisionConfig, Verdict};
    let dir = home.join("store");
    let mut cfg = ProvisionConfig::paper(&dir);
    cfg.file_bytes = t.file_mb.max(1) << 20;
    cfg.phase = std::time::Duration::from_secs(t.phase_secs.max(1));
    let r = provision::run(&cfg, |stage| tracing::info!("SSD test: {stage}")).map_err(|e| {
        DaemonError::State(format!("SSD provisioning test on {}: {e}", dir.display()))
    })?;
    let json = serde_json::to_vec_pretty(&r).map_err(|e| DaemonError::State(e.to_string()))?;
    crate::state::write_atomic(&home.join(SSD_REPORT_FILE), &json)?;
    Ok(SsdSummary {
        read_mbps: r.read.mbps,
        write_mbps: r.write.mbps,
        verdict: match r.verdict {
            Verdict::Eligible => "eligible".into(),
            Verdict::TooSlow { reasons } => format!("too slow: {}", reasons.join("; ")),
            Verdict::Incomplete => "shorter than the paper's protocol (figures informative)".into(),
        },
    })
}

/// The saved SSD test result as registration carries it (kB/s: 1 MB/s = 1000), if the test ran.
pub fn ssd_report(home: &Path) -> Result<Option<magnet_proto::registry::v1::SsdReport>> {
    let path = home.join(SSD_REPORT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DaemonError::io(format!("reading {}", path.display()))(e)),
    };
    let r: magnet_storage::provision::ProvisionReport = serde_json::from_str(&text)
        .map_err(|e| DaemonError::State(format!("{} does not parse: {e}", path.display())))?;
    let kbps = |mbps: f64| (mbps.max(0.0) * 1000.0).round() as u64;
    Ok(Some(magnet_proto::registry::v1::SsdReport {
        read_kbps: kbps(r.read.mbps),
        write_kbps: kbps(r.write.mbps),
        block_size: magnet_storage::provision::BLOCK as u32,
        file_bytes: r.config.file_bytes,
        direct_io: true,
    }))
}

/// Creates `home` with a config (`cfg`, its tier replaced by the profile's suggestion when
/// `cfg.node.tier` is empty), both keys, and a hardware profile. Refuses an existing config.
pub fn init(
    home: &Path,
    mut cfg: Config,
    disk_test_mb: usize,
    ssd: &SsdTest,
) -> Result<InitReport> {
    if home.join(crate::config::CONFIG_FILE).exists() {
        return Err(DaemonError::State(format!(
            "{} already holds a worker; pick another --home or remove it",
            home.display()
        )));
    }
    std::fs::create_dir_all(home)
        .map_err(DaemonError::io(format!("creating {}", home.display())))?;
    let profile = profile(home, disk_test_mb)?;
    if cfg.node.tier.is_empty() {
        cfg.node.tier = profile.suggested_tier.clone();
    }
    cfg.validate().map_err(|reason| DaemonError::Config {
        path: "worker.toml".into(),
        reason,
    })?;
    let ssd = if ssd.force || cfg.node.tier == "storage_node" {
        Some(ssd_test(home, ssd)?)
    } else {
        None
    };
    let keys = WorkerKeys::create(home)?;
    cfg.save(home)?;
    let hw = serde_json::to_vec_pretty(&profile).map_err(|e| DaemonError::State(e.to_string()))?;
    crate::state::write_atomic(&home.join("hardware.json"), &hw)?;
    Ok(InitReport {
        home: home.display().to_string(),
        operator: keys.operator.address().to_string(),
        node_address: keys.node.address().to_string(),
        node_id: keys.node_id()?,
        node_pubkey: hex::encode(keys.node.public_key_bytes()),
        tier: cfg.node.tier.clone(),
        profile,
        ssd,
    })
}

/// Registers this worker's node key on chain under its operator, with `bond` umag.
pub async fn join(home: &Path, bond: u128) -> Result<String> {
    let cfg = Config::load(home)?;
    let keys = WorkerKeys::load(home)?;
    let chain = Chain::from_config(&cfg.chain)?;
    let op = keys.operator.address();
    let existing: Option<serde_json::Value> = chain
        .query("/magnet.registry.v1/node", &op.to_string())
        .await?;
    if let Some(n) = existing {
        return Ok(n["node_id"].as_str().unwrap_or_default().to_string());
    }
    let hw = std::fs::read_to_string(home.join("hardware.json")).unwrap_or_else(|_| "{}".into());
    let msg = magnet_core::msg::to_any(&magnet_proto::registry::v1::MsgRegisterNode {
        operator: op.to_string(),
        node_pubkey: keys.node.public_key_bytes().to_vec(),
        tier: cfg.node.tier.clone(),
        endpoint: cfg.node.p2p_listen.clone(),
        region: cfg.node.region.clone(),
        hardware_profile: hw,
        bond: bond.to_string(),
        ssd: ssd_report(home)?,
    });
    chain
        .send(&keys.operator, "MsgRegisterNode", vec![msg])
        .await?;
    keys.node_id()
}

/// The job's base checkpoint hash, eval-set hash (the corpus hash evaluators check,
/// [`crate::quality::corpus_hash`]) and model parameter count this worker's `[job]` section
/// produces (for `MsgCreateJob` and its training spec).
pub fn base_hash(home: &Path) -> Result<(String, String, u64)> {
    let cfg = Config::load(home)?;
    let (e, ev) = crate::engine::Engine::open(&cfg.job, home, crate::config::Fault::None)?;
    Ok((
        ev.base_checkpoint().hash().to_hex(),
        hex::encode(e.eval_set_hash),
        e.params(),
    ))
}

/// What [`solo`] measured.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Solo {
    /// Steps trained.
    pub steps: u32,
    /// Mean training loss over the steps.
    pub train_loss: f64,
    /// Validation loss of the result on the job's evaluation split.
    pub val_loss: f64,
}

/// Trains this worker's engine alone from the job's base model for `steps` steps and
/// measures the result on the job's evaluation split: the single-worker reference for a
/// DiLoCo run (same model, data shard, optimiser and schedule as the daemon's rounds).
pub fn solo(home: &Path, steps: u32) -> Result<Solo> {
    let cfg = Config::load(home)?;
    let (mut e, ev) = crate::engine::Engine::open(&cfg.job, home, crate::config::Fault::None)?;
    let base = ev.base_checkpoint();
    let w = e.train_round(&base.params, steps, crate::config::Fault::None)?;
    Ok(Solo {
        steps,
        train_loss: w.train_loss,
        val_loss: ev.eval(&w.local)?,
    })
}

/// Checks that the job exists on chain.
pub async fn job(chain: &Chain, id: u64) -> Result<JobJson> {
    chain.query("/magnet.jobs.v1/job", &id.to_string()).await
}
