//! `magnet-worker research` across machines (issue 20, ADR 0112): `research serve-trials`
//! answers work units over the signed p2p layer; `research --workers …` runs the loop as the
//! coordinator, farming its units out and re-checking a share of them on other workers (see
//! `magnet_daemon::research`).

use anyhow::{bail, Context, Result};
use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::run::{self, Domain, RunConfig, RunOutcome};
use magnet_autoresearch::split;
use magnet_autoresearch::strategy::Strategist;
use magnet_autoresearch::unit::{content_address, UnitContext};
use magnet_daemon::research::{
    Coordinator, Dialer, NetworkStats, TrialFault, TrialServer, WorkerAddr,
};
use magnet_p2p::auth::{Signer, Verifier, VerifyMode};
use magnet_p2p::service::ServiceConfig;
use magnet_p2p::storage_glue::StoreBackend;
use magnet_p2p::tls::{NodeTls, PinStore};
use magnet_p2p::{NodeConfig, NodeHandle, NodeKey, ShardBackend};
use magnet_storage::ShardStore;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// `research serve-trials`: a trial worker until Ctrl-C / SIGTERM.
pub fn serve_trials(
    dir: &Path,
    listen: SocketAddr,
    threads: usize,
    fault: TrialFault,
) -> Result<()> {
    let key = NodeKey::load_or_generate(&dir.join("node.key")).context("loading node key")?;
    let pins = Arc::new(PinStore::open(&dir.join("p2p-pins.json"))?);
    let tls = NodeTls::key_bound(&key, pins).context("setting up TLS")?;
    let store = ShardStore::open(dir.join("served")).context("opening shard store")?;
    let backend: Arc<dyn ShardBackend> = Arc::new(StoreBackend::new(store, 16 << 30));
    let rt = tokio::runtime::Runtime::new().context("starting tokio")?;
    rt.block_on(async move {
        let node = NodeHandle::spawn(NodeConfig {
            service: ServiceConfig {
                signer: Signer::Wallet(key.clone()),
                verifier: Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
                backend: backend.clone(),
                tier: "compute".into(),
                region: String::new(),
                max_shard_bytes: 1 << 30,
                deleters: Some(Default::default()),
                receipts: None,
            },
            tls,
            listen,
            public_key: Some(key.public_key()),
        })
        .await?;
        let _server = TrialServer::new(backend, dir.join("research-cache"), threads, fault)
            .with_claim_key(key.clone())
            .spawn(&node);
        println!("{} listening on {}", node.node_id(), node.addr());
        std::io::stdout().flush().ok();
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.context("waiting for Ctrl-C")?,
            _ = term.recv() => {}
        }
        node.kill();
        Ok(())
    })
}

/// What the coordinator needs besides the loop's own settings.
pub struct NetArgs<'a> {
    /// `nodeId@host:port`, comma-separated.
    pub workers: &'a str,
    /// Share of answers re-checked on another worker.
    pub recheck: f64,
    /// Node directory (node key, TLS pins).
    pub node_dir: &'a Path,
    /// `CHAIN_ID/JOB`: workers sign chain trial claims for this research job.
    pub chain_job: Option<&'a str>,
}

/// Runs the loop as the coordinator of `workers`.
#[allow(clippy::too_many_arguments)]
pub fn coordinate(
    domain: &dyn Domain,
    domain_name: &str,
    data: &Path,
    target: Option<&str>,
    context: Option<&str>,
    cfg: &RunConfig,
    kb: KnowledgeBase,
    strategist: &dyn Strategist,
    out: &Path,
    net: NetArgs<'_>,
) -> Result<(RunOutcome, NetworkStats)> {
    let workers: Vec<WorkerAddr> = net
        .workers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|e: String| anyhow::anyhow!(e)))
        .collect::<Result<_>>()
        .context("--workers takes nodeId@host:port[,…] (each worker prints its own line when `research serve-trials` starts)")?;
    if workers.is_empty() {
        bail!("--workers names no worker");
    }
    if !(0.0..=1.0).contains(&net.recheck) {
        bail!(
            "--recheck must be a fraction in [0, 1], got {}",
            net.recheck
        );
    }
    let bytes = std::fs::read(data).with_context(|| format!("reading {}", data.display()))?;
    let ctx = UnitContext {
        data_address: content_address(&bytes),
        domain: domain_name.to_string(),
        target: target.map(str::to_string),
        context: context.map(str::to_string),
        seed: cfg.seed,
        folds: cfg.folds,
        test_fraction: cfg.test_fraction,
    };
    let key = NodeKey::load_or_generate(&net.node_dir.join("node.key"))
        .context("loading the node key")?;
    let pins = Arc::new(PinStore::open(&net.node_dir.join("p2p-pins.json"))?);
    let dialer = Dialer {
        tls: NodeTls::key_bound(&key, pins).context("setting up TLS")?,
        signer: Signer::Wallet(key),
        verifier: Arc::new(Verifier::new(VerifyMode::Wallet { registry: None })),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    let coord = Coordinator::new(
        rt.handle().clone(),
        ctx,
        data,
        workers,
        dialer,
        (net.recheck * 1e6).round() as u32,
        Some(out.join("evidence")),
    )
    .map_err(|e| anyhow::anyhow!(e))
    .context("preparing the job's data")?;
    let coord = match net.chain_job {
        Some(cj) => {
            let (chain_id, job) = cj
                .rsplit_once('/')
                .and_then(|(c, j)| Some((c.to_string(), j.parse::<u64>().ok()?)))
                .filter(|(c, _)| !c.is_empty())
                .with_context(|| format!("--chain-job {cj:?} is not CHAIN_ID/JOB"))?;
            coord.with_claims(magnet_daemon::research::ClaimFor { chain_id, job })
        }
        None => coord,
    };
    coord
        .upload_data(&bytes)
        .map_err(|e| anyhow::anyhow!(e))
        .context("uploading the data to the workers")?;
    let ds = domain
        .load(data, target, context)
        .with_context(|| format!("loading {}", data.display()))?;
    let (train, sealed) = split::holdout(ds, cfg.test_fraction, cfg.seed, domain.holdout_mode());
    let o = run::run_with(
        domain,
        train,
        sealed,
        cfg,
        kb,
        strategist,
        Some(out),
        Some(&coord),
    )
    .with_context(|| format!("research on {}", data.display()))?;
    let stats = coord.stats();
    std::fs::write(out.join("network.json"), serde_json::to_vec_pretty(&stats)?)
        .context("writing network.json")?;
    append_network_report(&out.join("report.md"), &stats)?;
    Ok((o, stats))
}

/// Adds the network section to a run's report.
fn append_network_report(path: &Path, s: &NetworkStats) -> Result<()> {
    let mut md = std::fs::read_to_string(path).unwrap_or_default();
    let share = if s.unit_ms > 0 {
        s.recheck_ms as f64 / s.unit_ms as f64
    } else {
        0.0
    };
    md.push_str(&format!(
        "\n## Network\n\nUnits (one pipeline's out-of-fold predictions each) ran on {} trial workers over the signed p2p layer. \
         {} answers, {} re-checked on another worker (target share {:.0} %), {} disagreements, {} units run by the coordinator \
         (tie-breaks and units no worker could take), {} restarts of the search after voiding. Re-checks took {:.1} % of the \
         worker-reported unit time.\n\n| worker | units accepted | re-checks run | voided | caught |\n|---|---|---|---|---|\n",
        s.workers.len(),
        s.units_dispatched,
        s.rechecks,
        f64::from(s.recheck_ppm) / 1e4,
        s.mismatches,
        s.local_units,
        s.restarts,
        share * 100.0
    ));
    for w in &s.workers {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            w.node_id,
            w.units,
            w.checks,
            w.voided,
            w.caught.as_deref().unwrap_or("no")
        ));
    }
    if !s.evidence.is_empty() {
        md.push_str("\nEvidence (each worker's own signed answer and the unit to re-run):\n\n");
        for e in &s.evidence {
            md.push_str(&format!("- `{e}`\n"));
        }
    }
    std::fs::write(path, md).with_context(|| format!("writing {}", path.display()))
}
