//! `magnet-worker storage …` and `magnet-worker provision`: the storage subcommands.
//!
//! Two modes:
//! * **network** (`--home WORKER_HOME`, the way a worker uses it): `put` erasure-codes a file
//!   RS(4,2) onto six storage nodes of the registry and registers the stripe on chain with
//!   every holder's receipt; `get` rebuilds an object from any four of its holders, verifying
//!   each shard against its registered Merkle root; `status` shows the stripes this node
//!   holds, their health and its audit record (ADR 0107).
//! * **local** (`--dir`, no chain): the node keeps all K+M shards of an object itself, one
//!   shard per *slot* directory under `--dir` (`slots/<i>/`), so bitrot or loss of up to M
//!   slots is still repaired on read. Manifests are signed with the node key
//!   (`<dir>/node.key`, created on first use). Useful to try the codec; it protects against
//!   disk damage, not against losing the machine.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use k256::ecdsa::SigningKey;
use magnet_storage::object::{get_object_from_stores, put_object, PutOptions};
use magnet_storage::provision::{self, ProvisionConfig, Verdict};
use magnet_storage::{
    ContentAddress, HolderId, LocalTransport, Params, ShardId, ShardStore, Signer, StoreError,
};
use sha2::{Digest, Sha256};

/// Store, fetch and inspect erasure-coded objects in this node's shard store.
#[derive(Args, Debug)]
pub struct StorageArgs {
    /// Storage directory (shards, manifests, node key, provisioning result).
    #[arg(long, env = "MAGNET_STORAGE_DIR", default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// A worker home (`magnet-worker init`): work on the network's stripes instead of the
    /// local directory — `put` places shards on six storage nodes and registers the stripe on
    /// chain, `get` reads any object by content address, `status` shows this node's stripes.
    #[arg(long)]
    pub home: Option<PathBuf>,
    #[command(subcommand)]
    pub command: StorageCommand,
}

/// Storage subcommands.
#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Erasure-code FILE into K+M shards, store them, and print its content address.
    ///
    /// Example: `magnet-worker storage put model.gguf` → `sha256:3f9a…`
    Put {
        /// The file to store.
        file: PathBuf,
        /// Data shards (K).
        #[arg(long, default_value_t = 4)]
        k: u8,
        /// Parity shards (M): up to M shards may be lost.
        #[arg(long, default_value_t = 2)]
        m: u8,
        /// Stripe size in MiB (1-4); objects are encoded stripe by stripe.
        #[arg(long, default_value_t = 1)]
        stripe_mib: u32,
        /// With `--home`: what the object is to the network, `data` (a job's data set) or
        /// `model` (an exported model).
        #[arg(long, default_value = "data")]
        kind: String,
        /// With `--home`: the job the object belongs to.
        #[arg(long, default_value_t = 0)]
        job: u64,
    },
    /// Rebuild the object ADDR (from any K intact shards) into --out.
    Get {
        /// Content address printed by `put` (`sha256:<hex>` or bare hex).
        addr: String,
        /// Where to write the object.
        #[arg(long)]
        out: PathBuf,
    },
    /// List stored objects with the health of their shards, and the SSD test result.
    Status {
        /// Re-hash every shard (slow on large stores) instead of checking presence only.
        #[arg(long)]
        verify: bool,
    },
}

/// Run the SSD provisioning test (4 KiB random O_DIRECT reads and writes) that decides
/// storage-tier eligibility. Defaults follow the paper: 256 MiB file, queue depth 16, 5 s per
/// phase, ≥100 MB/s read and ≥50 MB/s write. Lower the thresholds only on a devnet.
#[derive(Args, Debug)]
pub struct ProvisionArgs {
    /// Directory to test (put it on the disk that will hold shards).
    #[arg(long, env = "MAGNET_STORAGE_DIR", default_value_os_t = default_dir())]
    pub dir: PathBuf,
    /// Test file size, MiB (protocol minimum 256).
    #[arg(long, default_value_t = 256)]
    pub file_mib: u64,
    /// Seconds per phase (protocol minimum 5).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Concurrent requests (protocol minimum 16).
    #[arg(long, default_value_t = 16)]
    pub queue_depth: usize,
    /// Random-read threshold, MB/s.
    #[arg(long, default_value_t = 100.0)]
    pub min_read_mbps: f64,
    /// Random-write threshold, MB/s.
    #[arg(long, default_value_t = 50.0)]
    pub min_write_mbps: f64,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

fn default_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".magnet/storage")
}

/// Runs on futures that complete without waiting (the local transport never waits).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

fn load_or_create_key(dir: &Path) -> Result<SigningKey> {
    let path = dir.join("node.key");
    if path.exists() {
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading node key {}", path.display()))?;
        let bytes = hex::decode(text.trim())
            .with_context(|| format!("node key {} is not hex", path.display()))?;
        return SigningKey::from_slice(&bytes)
            .with_context(|| format!("node key {} is not a secp256k1 secret", path.display()));
    }
    let key = SigningKey::random(&mut rand::rngs::OsRng);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts
        .open(&path)
        .with_context(|| format!("creating node key {}", path.display()))?;
    writeln!(f, "{}", hex::encode(key.to_bytes()))?;
    tracing::info!(path = %path.display(), "created a new node key");
    Ok(key)
}

/// `node-` ‖ first 16 hex digits of SHA-256(compressed public key) (paper §12.1).
fn node_id(key: &SigningKey) -> String {
    format!(
        "node-{}",
        &hex::encode(Sha256::digest(key.public_key()))[..16]
    )
}

struct Local {
    main: ShardStore,
    transport: LocalTransport,
    slots: Vec<HolderId>,
}

fn open_local(dir: &Path, key: &SigningKey, slots: usize) -> Result<Local> {
    let main = ShardStore::open(dir).with_context(|| format!("opening store {}", dir.display()))?;
    let transport = LocalTransport::new();
    let id = node_id(key);
    let mut holders = Vec::new();
    for i in 0..slots {
        let h = HolderId::new(format!("{id}:slot{i}"))?;
        let p = dir.join("slots").join(i.to_string());
        transport.add(
            h.clone(),
            ShardStore::open(&p).with_context(|| format!("opening slot {}", p.display()))?,
        );
        holders.push(h);
    }
    Ok(Local {
        main,
        transport,
        slots: holders,
    })
}

fn slot_store(dir: &Path, holder: &HolderId) -> Option<ShardStore> {
    let slot = holder.as_str().rsplit_once(":slot")?.1;
    let n: usize = slot.parse().ok()?;
    ShardStore::open(dir.join("slots").join(n.to_string())).ok()
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.set_message(what.to_string());
    pb
}

/// Runs a `storage` subcommand.
pub fn run(args: StorageArgs) -> Result<()> {
    if let Some(home) = args.home {
        return network(&home, args.command);
    }
    let dir = args.dir;
    match args.command {
        StorageCommand::Put {
            file,
            k,
            m,
            stripe_mib,
            ..
        } => {
            let params = Params::new(k, m)?;
            if !(1..=4).contains(&stripe_mib) {
                bail!("--stripe-mib must be 1-4, got {stripe_mib}");
            }
            // A multiple of K at least stripe_mib MiB, within 4 MiB.
            let mut stripe = (stripe_mib << 20).div_ceil(u32::from(k)) * u32::from(k);
            if stripe > magnet_storage::codec::MAX_STRIPE {
                stripe -= u32::from(k);
            }
            let key = load_or_create_key(&dir)?;
            let local = open_local(&dir, &key, params.total())?;
            let f = File::open(&file).with_context(|| format!("opening {}", file.display()))?;
            let len = f.metadata()?.len();
            let pb = bar(len, "encoding");
            let opts = PutOptions {
                params,
                stripe_size: stripe,
                replica_target: 1,
            };
            let placement = local.slots.iter().map(|h| vec![h.clone()]).collect();
            let sm = block_on(put_object(
                &local.transport,
                &key,
                &opts,
                BufReader::new(f),
                placement,
                |n| pb.set_position(n),
            ))
            .with_context(|| format!("storing {}", file.display()))?;
            pb.finish_and_clear();
            local.main.put_manifest(&sm)?;
            tracing::info!(object = %sm.manifest.object, size = len, k, m, "stored");
            println!("{}", sm.manifest.object);
            Ok(())
        }
        StorageCommand::Get { addr, out } => {
            let object: ContentAddress = addr.parse()?;
            let main = ShardStore::open(&dir)?;
            let sm = match main.get_manifest(&object) {
                Ok(sm) => sm,
                Err(StoreError::NoManifest(_)) => {
                    bail!("{object} is not stored here (see `magnet-worker storage status`)")
                }
                Err(e) => return Err(e).context("loading the manifest"),
            };
            let stores: Vec<Option<ShardStore>> = sm
                .manifest
                .holders
                .iter()
                .map(|reps| reps.first().and_then(|h| slot_store(&dir, h)))
                .collect();
            let tmp = out.with_extension("magnet-partial");
            let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
            let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
            let pb = bar(sm.manifest.size, "rebuilding");
            let result = get_object_from_stores(&sm, &stores, &mut writer, |n| pb.set_position(n));
            pb.finish_and_clear();
            let report = match result.and_then(|r| {
                writer.flush().map(|_| r).map_err(|e| {
                    magnet_storage::CodecError::Io {
                        during: "writing the object",
                        message: e.to_string(),
                    }
                    .into()
                })
            }) {
                Ok(r) => r,
                Err(e) => {
                    drop(writer);
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e).context("rebuilding the object");
                }
            };
            for (i, h) in &report.corrupt {
                eprintln!("warning: shard {i} on {h} is corrupt and was excluded");
            }
            for (i, h, e) in &report.unreachable {
                eprintln!("warning: shard {i} on {h} unavailable: {e}");
            }
            drop(writer);
            std::fs::rename(&tmp, &out)
                .with_context(|| format!("renaming to {}", out.display()))?;
            let bytes_len = sm.manifest.size;
            println!(
                "{} bytes → {} (verified {object})",
                bytes_len,
                out.display()
            );
            Ok(())
        }
        StorageCommand::Status { verify } => status(&dir, verify),
    }
}

/// The `--home` mode: the network's stripes through this worker's keys and chain.
fn network(home: &Path, command: StorageCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")?;
    rt.block_on(async {
        let keeper = magnet_daemon::keeper::Keeper::open(home)
            .await
            .with_context(|| format!("opening the worker at {}", home.display()))?;
        match command {
            StorageCommand::Put {
                file, kind, job, ..
            } => {
                if kind != "data" && kind != "model" {
                    bail!("--kind {kind:?}: use data or model");
                }
                let bytes = std::fs::read(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let label: [u8; 32] = Sha256::digest(&bytes).into();
                if !keeper.publish(&kind, &label, job, &bytes).await? {
                    bail!(
                        "the network has fewer than six live storage-capable nodes: nothing was \
                         stored (see `magnetd query registry nodes`)"
                    );
                }
                println!("sha256:{}", hex::encode(label));
                Ok(())
            }
            StorageCommand::Get { addr, out } => {
                let hexa = addr.strip_prefix("sha256:").unwrap_or(&addr);
                let object: [u8; 32] = hex::decode(hexa)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .with_context(|| format!("{addr:?} is not a sha256:<64 hex> content address"))?;
                let bytes = keeper.fetch_object(&object).await?.with_context(|| {
                    format!("no stripe of {addr} is registered on chain")
                })?;
                std::fs::write(&out, &bytes)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("{} bytes → {} (verified sha256:{hexa})", bytes.len(), out.display());
                Ok(())
            }
            StorageCommand::Status { .. } => {
                let st = keeper.status().await?;
                println!("node {} · epoch {}", st.node, st.epoch);
                println!(
                    "stripes held: {} · proofs sent {} · failed {} · repaired {} shards ({} bytes) · \
                     collected {} bytes · published {}",
                    st.stripes.len(),
                    st.keeper.proofs_sent,
                    st.keeper.proofs_failed,
                    st.keeper.repaired_shards,
                    st.keeper.repaired_bytes,
                    st.keeper.collected_bytes,
                    st.keeper.published
                );
                println!(
                    "audit record on chain: {}",
                    serde_json::to_string(&st.audit_record)?
                );
                for s in &st.stripes {
                    println!(
                        "  {} {:<10} shards {:?} × {} B · {} · expires after epoch {}",
                        &s.object[..16.min(s.object.len())],
                        s.kind,
                        s.indices,
                        s.shard_len,
                        s.health,
                        s.expires_epoch
                    );
                }
                Ok(())
            }
        }
    })
}

fn status(dir: &Path, verify: bool) -> Result<()> {
    let main = ShardStore::open(dir)?;
    let objects = main.list_manifests()?;
    println!("storage dir: {}", dir.display());
    if dir.join("node.key").exists() {
        let key = load_or_create_key(dir)?;
        println!("node id:     {}", node_id(&key));
    }
    println!("objects:     {}", objects.len());
    let mut total_bytes = 0u64;
    for obj in &objects {
        let sm = main.get_manifest(obj)?;
        let m = &sm.manifest;
        let mut ok = 0;
        let mut bad = Vec::new();
        for (i, reps) in m.holders.iter().enumerate() {
            let id = ShardId {
                object: m.object,
                index: i as u8,
            };
            let good = reps.iter().any(|h| {
                slot_store(dir, h).is_some_and(|s| {
                    if verify {
                        s.open_verified(&id).is_ok()
                    } else {
                        s.stat(&id).is_ok_and(|x| x.hash == m.shard_hashes[i])
                    }
                })
            });
            if good {
                ok += 1;
            } else {
                bad.push(i);
            }
        }
        let shard_len = m.layout().map(|l| l.shard_len()).unwrap_or(0);
        total_bytes += shard_len * (ok as u64);
        let state = if ok == m.holders.len() {
            "healthy".to_string()
        } else if ok >= usize::from(m.k) {
            format!("degraded (shards {bad:?} missing or corrupt; still readable)")
        } else {
            format!("UNREADABLE (shards {bad:?} missing or corrupt)")
        };
        println!(
            "  {}  {:>12} bytes  RS({},{})  {}/{} shards  {}",
            m.object,
            m.size,
            m.k,
            m.m,
            ok,
            m.holders.len(),
            state
        );
    }
    println!("shard bytes: {total_bytes}");
    println!(
        "evidence:    {} failed audits recorded",
        main.evidence()?.len()
    );
    match std::fs::read_to_string(dir.join("provision.json")) {
        Ok(t) => match serde_json::from_str::<provision::ProvisionReport>(&t) {
            Ok(r) => println!(
                "ssd test:    read {:.1} MB/s, write {:.1} MB/s → {}",
                r.read.mbps,
                r.write.mbps,
                verdict_text(&r.verdict)
            ),
            Err(_) => {
                println!("ssd test:    provision.json unreadable; rerun `magnet-worker provision`")
            }
        },
        Err(_) => println!("ssd test:    not run (run `magnet-worker provision`)"),
    }
    Ok(())
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::Eligible => "eligible for the storage tier".into(),
        Verdict::TooSlow { reasons } => format!("NOT eligible: {}", reasons.join("; ")),
        Verdict::Incomplete => {
            "informative only (shorter than the protocol: 256 MiB, QD16, 5 s)".into()
        }
    }
}

/// Runs `provision`.
pub fn run_provision(args: ProvisionArgs) -> Result<()> {
    let cfg = ProvisionConfig {
        dir: args.dir.clone(),
        file_bytes: args.file_mib << 20,
        queue_depth: args.queue_depth,
        phase: Duration::from_secs(args.seconds),
        min_read_mbps: args.min_read_mbps,
        min_write_mbps: args.min_write_mbps,
    };
    let pb = ProgressBar::new_spinner();
    pb.enable_steady_tick(Duration::from_millis(120));
    let report = provision::run(&cfg, |stage| pb.set_message(stage.to_string()))
        .context("SSD provisioning test")?;
    pb.finish_and_clear();
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(args.dir.join("provision.json"), &text)
        .with_context(|| format!("saving {}", args.dir.join("provision.json").display()))?;
    if args.json {
        println!("{text}");
    } else {
        println!(
            "random 4 KiB read:  {:>8.1} MB/s  {:>9.0} IOPS  (threshold {:.0} MB/s)",
            report.read.mbps, report.read.iops, cfg.min_read_mbps
        );
        println!(
            "random 4 KiB write: {:>8.1} MB/s  {:>9.0} IOPS  (threshold {:.0} MB/s)",
            report.write.mbps, report.write.iops, cfg.min_write_mbps
        );
        println!("verdict: {}", verdict_text(&report.verdict));
    }
    Ok(())
}
