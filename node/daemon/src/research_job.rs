//! Research jobs taken from the chain (issue 20, ADR 0115): the daemon's side of ADR 0111.
//!
//! Every [`POLL_MS`] the duty reads the chain's research jobs and plays each role the chain
//! gave this node:
//!
//! * **Coordinator** (drawn by the chain at the job's creation). It fetches the job's data by
//!   its content address (from its own store, else from the peers, checked against the
//!   address), runs the research loop (`magnet_autoresearch::run::run_with`, unchanged in
//!   what it decides) over the other registered nodes as trial workers through
//!   [`crate::research::Coordinator`] — units over the signed p2p layer, a share re-run on
//!   another worker, workers' signed `TrialClaim`s checked — and then records the search on
//!   chain: a fabricated claim it caught goes up as `MsgDisputeTrial` (the chain draws
//!   checkers for it), the accepted claims as `MsgRecordResearchVersion`s of at most
//!   [`MAX_ENTRIES`] trials, the last one final with the best trial, the knowledge base and
//!   the report by content address. Every unit, the knowledge base and the report are kept in
//!   its shard store, so re-checkers and anyone else can fetch them by hash.
//! * **Checker** (drawn by the chain for a sampled or disputed trial). It fetches the unit by
//!   its hash from the coordinator (checked: the unit's hash is the one on chain, its data the
//!   job's), re-runs it, seals `(oof hash, loss)` with a fresh nonce (saved before it is
//!   sent) and reveals it once the reveal period opens.
//! * **Held-out evaluator** (drawn by the chain when the creator reveals the test split). It
//!   fetches the test split by its address, the final trial's unit and the data, scores the
//!   final pipeline and the domain's baseline pipeline fitted on every data row
//!   (`magnet_autoresearch::unit::heldout_loss`), seals both losses (or `unavailable`, once the
//!   inputs stay missing near the end of the commit period) and reveals them.
//!
//! Data enters the network at a node that holds it: files placed in `HOME/research-data/`
//! are imported into the node's shard store under their content address and served to peers.
//!
//! # Security
//! Re-checked, by whom: every worker's answer — by the coordinator (form, signature, loss
//! re-derived from the predictions) and a share by a second worker (ADR 0112); recorded
//! trials — by checkers the chain draws (sampled, and every disputed one), who re-run them
//! from the unit whose hash the chain holds; the data — by every node, against its content
//! address. A checker never trusts the coordinator for the unit: it must hash to the
//! recorded unit and name the job's data, or the checker stays silent (the chain then
//! records no verdict rather than a wrong one).
//!
//! Not guaranteed: liveness against a coordinator that withholds a unit (its checks end
//! `no_verdict`, the trial stands); that a coordinator records every honest trial (an
//! unrecorded trial is unpaid: the coordinator's choice, visible in its report).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::run::{self, domain_by_name, RunConfig};
use magnet_autoresearch::split;
use magnet_autoresearch::strategy::RuleStrategist;
use magnet_autoresearch::unit::{
    content_address, heldout_loss, oof_bytes, oof_cv_loss, oof_hash, Prepared, UnitContext,
    WorkUnit,
};
use magnet_p2p::{NodeId, ShardKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::research::{loss_micro, ClaimFor, ClaimRecord, Coordinator, Dialer, WorkerAddr};
use crate::run::Shared;
use crate::{DaemonError, Result};

/// The duty polls the chain's research jobs at most this often.
pub const POLL_MS: u64 = 3_000;
/// Trials per `MsgRecordResearchVersion` (the chain's limit).
pub const MAX_ENTRIES: usize = 256;
/// The loop's own hold-out inside the job's data (its report's sealed check). The job's
/// held-out score is the creator's separate test split, scored by the chain's evaluators.
pub const LOOP_TEST_FRACTION: f64 = 0.2;
/// Trials proposed together (part of what a run decides: a job's search is reproducible
/// from its spec and this constant).
pub const BATCH: usize = 4;
/// A held-out evaluator whose inputs (test split, final unit, data) cannot be fetched seals
/// `unavailable` only within this many blocks of the end of the commit period: inputs on
/// their way must not read as missing.
pub const UNAVAILABLE_MARGIN_BLOCKS: u64 = 5;
/// Share of worker answers the coordinator re-runs on a second worker, off chain (ppm), on
/// top of the chain's own sampled checks.
pub const OFFCHAIN_RECHECK_PPM: u32 = 150_000;

/// The duty's memory between polls.
#[derive(Debug, Default)]
pub struct Duty {
    polled_ms: AtomicU64,
    /// Jobs this process started coordinating.
    coordinating: Mutex<BTreeSet<u64>>,
    /// Seed files already imported.
    seeded: Mutex<BTreeSet<String>>,
}

/// A sealed re-run, saved before its commitment is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Seal {
    oof_hash: String,
    cv_loss_micro: u64,
    nonce: String,
    committed: bool,
    revealed: bool,
}

fn h32(s: &str) -> Result<[u8; 32]> {
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| DaemonError::State(format!("`{s}` is not a 32-byte hex hash")))
}

fn research_dir(home: &Path, job: u64) -> PathBuf {
    home.join("research").join(format!("job-{job}"))
}

/// A sealed-state file under `HOME/research/` (`seals.json`: trial re-runs by `job/unit`;
/// `heldout-seals.json`: held-out scores by job); empty when absent or unreadable.
fn load_state<T: serde::de::DeserializeOwned + Default>(home: &Path, name: &str) -> T {
    std::fs::read(home.join("research").join(name))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Writes a sealed-state file atomically (temp file, then rename).
fn save_state<T: Serialize>(home: &Path, name: &str, s: &T) -> Result<()> {
    let p = home.join("research").join(name);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(DaemonError::io("research job files"))?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(s).unwrap_or_default())
        .map_err(DaemonError::io("research job files"))?;
    std::fs::rename(&tmp, &p).map_err(DaemonError::io("research job files"))?;
    Ok(())
}

/// Trial re-run seals.
const SEALS: &str = "seals.json";
/// Held-out score seals.
const HELDOUT_SEALS: &str = "heldout-seals.json";

fn object_key(id: [u8; 32]) -> ShardKey {
    ShardKey {
        object_id: id,
        index: 0,
    }
}

/// Imports the files of `HOME/research-data/` into the shard store under their content
/// address (once per file per process).
pub fn import_seeds(sh: &Shared) -> Result<()> {
    let dir = sh.home.join("research-data");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let mut names: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    names.sort();
    for p in names {
        let name = p.display().to_string();
        if !p.is_file() || sh.research.seeded.lock().is_ok_and(|s| s.contains(&name)) {
            continue;
        }
        let bytes = std::fs::read(&p).map_err(DaemonError::io("research job files"))?;
        let addr = content_address(&bytes);
        sh.net.put_local(&object_key(h32(&addr)?), &bytes)?;
        tracing::info!(file = %p.display(), %addr, "research data imported");
        if let Ok(mut s) = sh.research.seeded.lock() {
            s.insert(name);
        }
    }
    Ok(())
}

/// The object whose SHA-256 is `addr`: from the local store, else from the first peer that
/// has it (`first` tried first), checked against the address and kept locally.
pub async fn fetch_object(sh: &Shared, addr: &str, first: Option<&str>) -> Result<Vec<u8>> {
    let id = h32(addr)?;
    let key = object_key(id);
    if let Some(b) = sh.net.get_local(&key)? {
        if content_address(&b) == addr {
            return Ok(b);
        }
    }
    let mut errors = Vec::new();
    for peer in holders(sh, first) {
        match sh.net.fetch(&peer, &key, Some(id)).await {
            Ok(b) if content_address(&b) == addr => {
                sh.net.put_local(&key, &b)?;
                return Ok(b);
            }
            Ok(_) => errors.push(format!("{peer}: bytes do not hash to the address")),
            Err(e) => errors.push(format!("{peer}: {e}")),
        }
    }
    Err(DaemonError::P2p(format!(
        "object {addr} is not available: {}",
        if errors.is_empty() {
            "no peer known".into()
        } else {
            errors.join("; ")
        }
    )))
}

/// Peers to ask for an object: `first`, then every other active peer by node id.
fn holders(sh: &Shared, first: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = first.map(str::to_string).into_iter().collect();
    if let Ok(p) = sh.net.peers.read() {
        for (id, peer) in p.iter() {
            if peer.active && *id != sh.me.to_string() && Some(id.as_str()) != first {
                v.push(id.clone());
            }
        }
    }
    v
}

/// The unit `unit_hash` of a job: from the local store, else from the coordinator (then the
/// other peers); its hash must be `unit_hash` and its data the job's.
async fn fetch_unit(
    sh: &Shared,
    unit_hash: &str,
    data_address: &str,
    coordinator: &str,
) -> Result<WorkUnit> {
    let key = object_key(h32(unit_hash)?);
    let check = |b: &[u8]| -> std::result::Result<WorkUnit, String> {
        let u: WorkUnit = serde_json::from_slice(b).map_err(|e| format!("unit: {e}"))?;
        if u.hash() != unit_hash {
            return Err(format!("the unit served hashes to {}", u.hash()));
        }
        if u.context.data_address != data_address {
            return Err("the unit names other data than the job's".into());
        }
        Ok(u)
    };
    if let Some(b) = sh.net.get_local(&key)? {
        if let Ok(u) = check(&b) {
            return Ok(u);
        }
    }
    let mut errors = Vec::new();
    for peer in holders(sh, Some(coordinator)) {
        match sh.net.fetch(&peer, &key, None).await {
            Ok(b) => match check(&b) {
                Ok(u) => {
                    sh.net.put_local(&key, &b)?;
                    return Ok(u);
                }
                Err(e) => errors.push(format!("{peer}: {e}")),
            },
            Err(e) => errors.push(format!("{peer}: {e}")),
        }
    }
    Err(DaemonError::P2p(format!(
        "unit {unit_hash} is not available: {}",
        errors.join("; ")
    )))
}

/// Re-runs `unit` on the job's data: (oof hash, loss micro).
fn rerun(dir: &Path, bytes: &[u8], unit: &WorkUnit) -> Result<(String, u64)> {
    std::fs::create_dir_all(dir).map_err(DaemonError::io("research job files"))?;
    let path = dir.join("data.csv");
    if std::fs::read(&path).map(|b| b != bytes).unwrap_or(true) {
        std::fs::write(&path, bytes).map_err(DaemonError::io("research job files"))?;
    }
    let prep =
        Prepared::load(&path, &unit.context).map_err(|e| DaemonError::State(e.to_string()))?;
    let oof = prep
        .run(&unit.pipeline)
        .map_err(|e| DaemonError::State(e.to_string()))?;
    let blob = oof_bytes(&oof);
    Ok((
        oof_hash(&blob),
        loss_micro(oof_cv_loss(&oof, &prep.train.y)),
    ))
}

/// One poll of the duty (the run loop single-flights it).
pub async fn research_tick(sh: &Arc<Shared>) -> Result<()> {
    let now = crate::run::now_ms();
    if now.saturating_sub(sh.research.polled_ms.load(Ordering::Relaxed)) < POLL_MS {
        return Ok(());
    }
    sh.research.polled_ms.store(now, Ordering::Relaxed);
    import_seeds(sh)?;
    let jobs: Vec<Value> = sh.chain.query("/magnet.jobs.v1/jobs", "").await?;
    let head = sh.chain.head().await?.height;
    let me = sh.me.to_string();
    for j in jobs {
        if !j["training"].is_null() {
            continue;
        }
        let Some(id) = j["id"].as_u64() else { continue };
        let view: Value = sh
            .chain
            .query("/magnet.jobs.v1/research", &id.to_string())
            .await?;
        if view.is_null() || !view["research"]["settlement"].is_null() {
            continue;
        }
        let r = &view["research"];
        if r["coordinator"].as_str() == Some(me.as_str())
            && view["versions"].as_array().is_some_and(|v| v.is_empty())
        {
            let fresh = sh
                .research
                .coordinating
                .lock()
                .map(|mut s| s.insert(id))
                .unwrap_or(false);
            if fresh {
                let (sh2, spec) = (sh.clone(), r["spec"].clone());
                let rt = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || match coordinate(&sh2, &rt, id, &spec) {
                    Ok(n) => tracing::info!(job = id, trials = n, "research job recorded"),
                    Err(e) => {
                        // Tried again at a later poll (unless a version got recorded).
                        tracing::warn!(job = id, "research job: {e}");
                        std::thread::sleep(std::time::Duration::from_secs(10));
                        if let Ok(mut s) = sh2.research.coordinating.lock() {
                            s.remove(&id);
                        }
                    }
                });
            }
        }
        if let Err(e) = check_duty(sh, id, &view, head).await {
            tracing::warn!(job = id, "trial checks: {e}");
        }
        if let Err(e) = heldout_duty(sh, id, &view, head).await {
            tracing::warn!(job = id, "held-out evaluation: {e}");
        }
    }
    Ok(())
}

fn spec_str<'a>(spec: &'a Value, k: &str) -> &'a str {
    spec[k].as_str().unwrap_or_default()
}

/// Runs the job's search as its coordinator and records it; returns the trials recorded.
fn coordinate(
    sh: &Arc<Shared>,
    rt: &tokio::runtime::Handle,
    job: u64,
    spec: &Value,
) -> Result<usize> {
    let bad = |m: String| DaemonError::State(m);
    let addr = spec_str(spec, "data_address").to_string();
    let domain_name = spec_str(spec, "domain").to_string();
    let domain = domain_by_name(&domain_name).ok_or_else(|| {
        bad(format!(
            "research domain `{domain_name}`: the daemon coordinates tabular and timeseries jobs \
             (bitnet-lm research runs with `magnet-worker research --domain bitnet-lm`)"
        ))
    })?;
    let opt = |k: &str| Some(spec_str(spec, k).to_string()).filter(|s| !s.is_empty());
    let (target, context) = (opt("target"), opt("context"));
    let seed = spec["seed"].as_u64().unwrap_or_default();
    let folds = spec["folds"].as_u64().unwrap_or(5) as usize;
    let budget = spec["trial_budget"].as_u64().unwrap_or_default() as usize;
    let bytes = rt.block_on(fetch_object(sh, &addr, None))?;
    let dir = research_dir(&sh.home, job);
    std::fs::create_dir_all(&dir).map_err(DaemonError::io("research job files"))?;
    let data = dir.join("data.csv");
    std::fs::write(&data, &bytes).map_err(DaemonError::io("research job files"))?;
    let ctx = UnitContext {
        data_address: addr.clone(),
        domain: domain_name.clone(),
        target: target.clone(),
        context: context.clone(),
        seed,
        folds,
        test_fraction: LOOP_TEST_FRACTION,
    };
    let me = sh.me.to_string();
    let workers: Vec<WorkerAddr> = sh
        .net
        .peers
        .read()
        .map_err(|_| bad("peer table lock poisoned".into()))?
        .values()
        .filter(|p| p.active && p.node_id != me && p.tier != "storage_node")
        .filter_map(|p| {
            Some(WorkerAddr {
                node_id: NodeId::parse(&p.node_id).ok()?,
                addr: p.endpoint.clone(),
            })
        })
        .collect();
    tracing::info!(
        job,
        workers = workers.len(),
        budget,
        "coordinating research job"
    );
    let dialer = Dialer {
        tls: sh.net.tls.clone(),
        signer: sh.net.signer.clone(),
        verifier: sh.net.verifier.clone(),
    };
    let ctx_final = ctx.clone();
    let coord = Coordinator::new(
        rt.clone(),
        ctx,
        &data,
        workers,
        dialer,
        OFFCHAIN_RECHECK_PPM,
        Some(dir.join("evidence")),
    )
    .map_err(bad)?
    .with_claims(ClaimFor {
        chain_id: sh.genesis.chain_id.clone(),
        job,
    });
    coord.upload_data(&bytes).map_err(bad)?;
    let ds = domain
        .load(&data, target.as_deref(), context.as_deref())
        .map_err(|e| bad(e.to_string()))?;
    let (train, sealed) = split::holdout(ds, LOOP_TEST_FRACTION, seed, domain.holdout_mode());
    let cfg = RunConfig {
        budget,
        seed,
        folds,
        test_fraction: LOOP_TEST_FRACTION,
        batch: Some(BATCH),
        progress: false,
        ..RunConfig::default()
    };
    let outcome = run::run_with(
        domain.as_ref(),
        train,
        sealed,
        &cfg,
        KnowledgeBase::new(),
        &RuleStrategist,
        Some(&dir),
        Some(&coord),
    )
    .map_err(|e| bad(format!("research loop: {e}")))?;
    let stats = coord.stats();
    std::fs::write(
        dir.join("network.json"),
        serde_json::to_vec_pretty(&stats).unwrap_or_default(),
    )
    .map_err(DaemonError::io("research job files"))?;
    // Units, knowledge base and report stay fetchable by hash.
    for (h, u) in coord.units() {
        sh.net.put_local(
            &object_key(h32(&h)?),
            &serde_json::to_vec(&u).unwrap_or_default(),
        )?;
    }
    let stored = |name: &str| -> Result<[u8; 32]> {
        match std::fs::read(dir.join(name)) {
            Ok(b) => {
                let id = h32(&content_address(&b))?;
                sh.net.put_local(&object_key(id), &b)?;
                Ok(id)
            }
            Err(_) => Ok([0; 32]),
        }
    };
    let (kb, report) = (stored("knowledge.json")?, stored("report.md")?);
    let node = sh.keys.node.address();
    // Fabrications first: the chain draws checkers for each, and a unit under an open
    // dispute cannot be recorded, so its honest result waits for the dispute's verdict.
    let mut disputed: BTreeSet<String> = BTreeSet::new();
    for d in &stats.disputes {
        let msg = magnet_jobs::msgs::dispute_trial(&node, job, &entry(d)?);
        match rt.block_on(sh.chain.send(&sh.keys.node, "MsgDisputeTrial", vec![msg])) {
            Ok(h) => {
                tracing::warn!(job, worker = %d.worker, unit = %d.unit_hash, height = h, "fabricated trial disputed on chain");
                disputed.insert(d.unit_hash.clone());
            }
            Err(e) => {
                tracing::warn!(job, worker = %d.worker, unit = %d.unit_hash, "MsgDisputeTrial: {e}")
            }
        }
    }
    let mut claims = stats.claims.clone();
    if claims.len() > budget {
        tracing::warn!(
            job,
            claims = claims.len(),
            budget,
            "more accepted trials than the budget: recording the first"
        );
        claims.truncate(budget);
    }
    // The final trial: the loop's own choice (its last version's model; of an ensemble, the
    // member of largest weight) when that unit is recorded, else the recorded trial of lowest
    // CV loss. The chain's held-out evaluators score it against the baseline.
    let chosen = outcome.versions.last().and_then(|v| {
        let mut best: Option<&(magnet_autoresearch::pipeline::PipelineConfig, f64)> = None;
        for m in &v.best.members {
            if best.is_none_or(|b| m.1 > b.1) {
                best = Some(m);
            }
        }
        best.map(|m| {
            WorkUnit {
                context: ctx_final.clone(),
                pipeline: m.0.clone(),
            }
            .hash()
        })
    });
    let best = chosen
        .filter(|h| claims.iter().any(|c| &c.unit_hash == h))
        .or_else(|| {
            claims
                .iter()
                .min_by(|a, b| {
                    a.cv_loss_micro
                        .cmp(&b.cv_loss_micro)
                        .then(a.unit_hash.cmp(&b.unit_hash))
                })
                .map(|c| c.unit_hash.clone())
        });
    let (held, now): (Vec<ClaimRecord>, Vec<ClaimRecord>) = claims
        .into_iter()
        .partition(|c| disputed.contains(&c.unit_hash));
    let mut version = 0u32;
    let mut recorded = 0usize;
    let mut record = |entries: &[ClaimRecord], last: bool| -> Result<()> {
        let entries: Vec<magnet_jobs::research::TrialInput> =
            entries.iter().map(entry).collect::<Result<_>>()?;
        let chunks: Vec<&[magnet_jobs::research::TrialInput]> = if entries.is_empty() {
            vec![&[]]
        } else {
            entries.chunks(MAX_ENTRIES).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let fin = last && i + 1 == n;
            let (b, k, r) = if fin {
                let b = match &best {
                    Some(h) => h32(h)?,
                    None => [0; 32],
                };
                (b, kb, report)
            } else {
                ([0; 32], [0; 32], [0; 32])
            };
            let msg = magnet_jobs::msgs::record_research_version(
                &node, job, version, chunk, b, k, r, fin,
            );
            let h = rt.block_on(sh.chain.send(
                &sh.keys.node,
                "MsgRecordResearchVersion",
                vec![msg],
            ))?;
            tracing::info!(
                job,
                version,
                trials = chunk.len(),
                last = fin,
                height = h,
                "research version recorded"
            );
            version += 1;
            recorded += chunk.len();
        }
        Ok(())
    };
    if held.is_empty() {
        record(&now, true)?;
        return Ok(recorded);
    }
    if !now.is_empty() {
        record(&now, false)?;
    }
    // Wait for the disputes' verdicts, then record the held units' honest results (those the
    // chain does not already hold live: a false dispute makes the disputed entry live).
    tracing::info!(job, held = held.len(), "waiting for the disputes' verdicts");
    let view = loop {
        let v: Value =
            match rt.block_on(sh.chain.query("/magnet.jobs.v1/research", &job.to_string())) {
                Ok(v) => v,
                Err(e) => {
                    tracing::warn!(job, "reading the disputes: {e}");
                    std::thread::sleep(std::time::Duration::from_secs(3));
                    continue;
                }
            };
        let open = v["disputes"].as_array().is_some_and(|a| {
            a.iter().any(|d| {
                d["outcome"].as_str() == Some("open")
                    && d["unit_hash"]
                        .as_str()
                        .is_some_and(|u| disputed.contains(u))
            })
        });
        if !open {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_secs(3));
    };
    let live: BTreeSet<&str> = view["trials"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|t| t["voided"].as_bool() != Some(true))
                .filter_map(|t| t["unit_hash"].as_str())
                .collect()
        })
        .unwrap_or_default();
    let held: Vec<ClaimRecord> = held
        .into_iter()
        .filter(|c| !live.contains(c.unit_hash.as_str()))
        .collect();
    record(&held, true)?;
    Ok(recorded)
}

/// A claim as a chain trial entry.
fn entry(c: &ClaimRecord) -> Result<magnet_jobs::research::TrialInput> {
    let key = hex::decode(&c.worker_key)
        .map_err(|_| DaemonError::State(format!("worker key of {} is not hex", c.worker)))?;
    Ok(magnet_jobs::research::TrialInput {
        unit_hash: h32(&c.unit_hash)?,
        worker: magnet_core::Address::from_pubkey(&key),
        oof_hash: h32(&c.oof_hash)?,
        cv_loss_micro: c.cv_loss_micro,
        signature: hex::decode(&c.signature)
            .map_err(|_| DaemonError::State("claim signature is not hex".into()))?,
    })
}

/// Open checks of `view` (sampled trials and disputes) this node was drawn for: seals the
/// re-run, then reveals it.
async fn check_duty(sh: &Arc<Shared>, job: u64, view: &Value, head: u64) -> Result<()> {
    let me = sh.me.to_string();
    let r = &view["research"];
    let data_address = spec_str(&r["spec"], "data_address").to_string();
    let coordinator = r["coordinator"].as_str().unwrap_or_default().to_string();
    let mut subjects: Vec<&Value> = Vec::new();
    for list in ["trials", "disputes"] {
        if let Some(a) = view[list].as_array() {
            subjects.extend(a.iter());
        }
    }
    let mut seals: BTreeMap<String, Seal> = load_state(&sh.home, SEALS);
    let node = sh.keys.node.address();
    for t in subjects {
        let c = &t["check"];
        if c.is_null() || c["outcome"].as_str() != Some("open") {
            continue;
        }
        let checkers: Vec<&str> = c["checkers"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !checkers.contains(&me.as_str()) {
            continue;
        }
        let Some(unit_hash) = t["unit_hash"].as_str() else {
            continue;
        };
        let votes = c["votes"].as_array().cloned().unwrap_or_default();
        let mine = votes.iter().find(|v| v["checker"].as_str() == Some(&me));
        let (commits_until, reveals_until) = (
            c["commits_until"].as_u64().unwrap_or(0),
            c["reveals_until"].as_u64().unwrap_or(0),
        );
        let key = format!("{job}/{unit_hash}");
        let unit = h32(unit_hash)?;
        match mine {
            Some(v) if !v["oof_hash"].is_null() => {
                if let Some(s) = seals.get_mut(&key) {
                    s.revealed = true;
                }
            }
            Some(_) => {
                let Some(s) = seals.get(&key).cloned() else {
                    tracing::warn!(job, unit = unit_hash, "a sealed re-run of this node is on chain but not in seals.json: it cannot be revealed");
                    continue;
                };
                let open = head > commits_until || votes.len() == checkers.len();
                if !open || head > reveals_until {
                    continue;
                }
                let msg = magnet_jobs::msgs::trial_check_reveal(
                    &node,
                    job,
                    unit,
                    h32(&s.oof_hash)?,
                    s.cv_loss_micro,
                    h32(&s.nonce)?,
                );
                match sh
                    .chain
                    .send(&sh.keys.node, "MsgTrialCheckReveal", vec![msg])
                    .await
                {
                    Ok(h) => {
                        tracing::info!(job, unit = unit_hash, height = h, "trial re-run revealed");
                        if let Some(s) = seals.get_mut(&key) {
                            s.revealed = true;
                        }
                    }
                    Err(e) => tracing::warn!(job, unit = unit_hash, "MsgTrialCheckReveal: {e}"),
                }
            }
            None => {
                if head > commits_until {
                    continue;
                }
                let s = match seals.get(&key) {
                    Some(s) => s.clone(),
                    None => {
                        let dir = research_dir(&sh.home, job);
                        let ran = async {
                            let u = fetch_unit(sh, unit_hash, &data_address, &coordinator).await?;
                            let bytes = fetch_object(sh, &data_address, Some(&coordinator)).await?;
                            tokio::task::spawn_blocking(move || rerun(&dir, &bytes, &u))
                                .await
                                .map_err(|e| DaemonError::State(format!("re-run task: {e}")))?
                        };
                        let (oof, micro) = match ran.await {
                            Ok(r) => r,
                            Err(e) => {
                                // Tried again at the next poll while the commit period lasts.
                                tracing::warn!(job, unit = unit_hash, "trial re-run: {e}");
                                continue;
                            }
                        };
                        let s = Seal {
                            oof_hash: oof,
                            cv_loss_micro: micro,
                            nonce: hex::encode(rand::random::<[u8; 32]>()),
                            committed: false,
                            revealed: false,
                        };
                        seals.insert(key.clone(), s.clone());
                        save_state(&sh.home, SEALS, &seals)?;
                        s
                    }
                };
                let commitment = magnet_jobs::msgs::check_commitment(
                    &sh.genesis.chain_id,
                    &node,
                    job,
                    &unit,
                    &h32(&s.oof_hash)?,
                    s.cv_loss_micro,
                    &h32(&s.nonce)?,
                );
                let msg = magnet_jobs::msgs::trial_check_commit(&node, job, unit, commitment);
                match sh
                    .chain
                    .send(&sh.keys.node, "MsgTrialCheckCommit", vec![msg])
                    .await
                {
                    Ok(h) => {
                        tracing::info!(job, unit = unit_hash, height = h, "trial re-run sealed");
                        if let Some(s) = seals.get_mut(&key) {
                            s.committed = true;
                        }
                    }
                    Err(e) => tracing::warn!(job, unit = unit_hash, "MsgTrialCheckCommit: {e}"),
                }
            }
        }
    }
    save_state(&sh.home, SEALS, &seals)
}

/// A sealed held-out score, saved before its commitment is sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HeldOutSeal {
    final_micro: u64,
    baseline_micro: u64,
    unavailable: bool,
    nonce: String,
}

/// The held-out losses × 10^6 of the job's final trial and of the domain's baseline pipeline
/// on the revealed test split (`magnet_autoresearch::unit::heldout_loss`).
async fn heldout_scores(sh: &Shared, job: u64, view: &Value) -> Result<(u64, u64)> {
    let r = &view["research"];
    let data_address = spec_str(&r["spec"], "data_address").to_string();
    let coordinator = r["coordinator"].as_str().unwrap_or_default().to_string();
    let best = r["best_unit_hash"].as_str().unwrap_or_default();
    let test_address = r["test_address"].as_str().unwrap_or_default();
    if best.is_empty() || test_address.is_empty() {
        return Err(DaemonError::State(
            "the final version names no trial, or no test split is revealed".into(),
        ));
    }
    let unit = fetch_unit(sh, best, &data_address, &coordinator).await?;
    let data = fetch_object(sh, &data_address, Some(&coordinator)).await?;
    let test = fetch_object(sh, test_address, None).await?;
    let dir = research_dir(&sh.home, job);
    tokio::task::spawn_blocking(move || -> Result<(u64, u64)> {
        std::fs::create_dir_all(&dir).map_err(DaemonError::io("research job files"))?;
        let (dp, tp) = (dir.join("data.csv"), dir.join("test.csv"));
        std::fs::write(&dp, &data).map_err(DaemonError::io("research job files"))?;
        std::fs::write(&tp, &test).map_err(DaemonError::io("research job files"))?;
        let score = |p: &magnet_autoresearch::pipeline::PipelineConfig| {
            heldout_loss(&unit.context, &dp, &tp, p)
                .map(loss_micro)
                .map_err(|e| DaemonError::State(format!("held-out score: {e}")))
        };
        let baseline = run::baseline()
            .members
            .first()
            .map(|m| m.0.clone())
            .ok_or_else(|| DaemonError::State("the baseline has no pipeline".into()))?;
        Ok((score(&unit.pipeline)?, score(&baseline)?))
    })
    .await
    .map_err(|e| DaemonError::State(format!("held-out task: {e}")))?
}

/// The held-out evaluation of `view`'s job, when this node is a drawn evaluator: seals the
/// final trial's and the baseline's test losses (or `unavailable` once the inputs stay
/// missing to the end of the commit period), then reveals them.
async fn heldout_duty(sh: &Arc<Shared>, job: u64, view: &Value, head: u64) -> Result<()> {
    let h = &view["heldout"];
    if h.is_null() || !h["result"].is_null() {
        return Ok(());
    }
    let me = sh.me.to_string();
    let evaluators: Vec<&str> = h["evaluators"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !evaluators.contains(&me.as_str()) {
        return Ok(());
    }
    let votes = h["votes"].as_array().cloned().unwrap_or_default();
    let mine = votes.iter().find(|v| v["evaluator"].as_str() == Some(&me));
    let (commits_until, reveals_until) = (
        h["commits_until"].as_u64().unwrap_or(0),
        h["reveals_until"].as_u64().unwrap_or(0),
    );
    let node = sh.keys.node.address();
    let mut seals: BTreeMap<u64, HeldOutSeal> = load_state(&sh.home, HELDOUT_SEALS);
    match mine {
        Some(v) if v["revealed"].as_bool() == Some(true) => {}
        Some(_) => {
            let Some(s) = seals.get(&job).cloned() else {
                tracing::warn!(job, "a sealed held-out score of this node is on chain but not in heldout-seals.json: it cannot be revealed");
                return Ok(());
            };
            let open = head > commits_until || votes.len() == evaluators.len();
            if !open || head > reveals_until {
                return Ok(());
            }
            let msg = magnet_jobs::msgs::heldout_reveal(
                &node,
                job,
                s.final_micro,
                s.baseline_micro,
                s.unavailable,
                h32(&s.nonce)?,
            );
            let h = sh
                .chain
                .send(&sh.keys.node, "MsgHeldOutReveal", vec![msg])
                .await?;
            tracing::info!(
                job,
                height = h,
                final_micro = s.final_micro,
                baseline_micro = s.baseline_micro,
                unavailable = s.unavailable,
                "held-out score revealed"
            );
        }
        None => {
            if head > commits_until {
                return Ok(());
            }
            let s = match seals.get(&job) {
                Some(s) => s.clone(),
                None => {
                    let (f, b, unavailable) = match heldout_scores(sh, job, view).await {
                        Ok((f, b)) => (f, b, false),
                        // Inputs may still be on their way: `unavailable` only near the end.
                        Err(e) if head + UNAVAILABLE_MARGIN_BLOCKS < commits_until => {
                            tracing::info!(job, "held-out score not ready: {e}");
                            return Ok(());
                        }
                        Err(e) => {
                            tracing::warn!(job, "held-out inputs unavailable: {e}");
                            (0, 0, true)
                        }
                    };
                    let s = HeldOutSeal {
                        final_micro: f,
                        baseline_micro: b,
                        unavailable,
                        nonce: hex::encode(rand::random::<[u8; 32]>()),
                    };
                    seals.insert(job, s.clone());
                    save_state(&sh.home, HELDOUT_SEALS, &seals)?;
                    s
                }
            };
            let commitment = magnet_jobs::msgs::heldout_commitment(
                &sh.genesis.chain_id,
                &node,
                job,
                s.final_micro,
                s.baseline_micro,
                s.unavailable,
                &h32(&s.nonce)?,
            );
            let msg = magnet_jobs::msgs::heldout_commit(&node, job, commitment);
            let h = sh
                .chain
                .send(&sh.keys.node, "MsgHeldOutCommit", vec![msg])
                .await?;
            tracing::info!(job, height = h, "held-out score sealed");
        }
    }
    Ok(())
}
