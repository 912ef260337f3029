//! `magnet-worker init | join | run | status | job-hash`: the worker daemon (logic in
//! `magnet-daemon`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use magnet_daemon::config::{Config, Fault, LeaderRuleName};

/// The daemon's subcommands.
#[derive(Subcommand, Debug)]
pub enum DaemonCommand {
    /// Create a worker home: config (`worker.toml`), an operator key and a separate node key,
    /// and a hardware profile that suggests a tier.
    ///
    /// Example: `magnet-worker init --home ~/.magnet-worker --rpc http://127.0.0.1:26657
    /// --p2p 0.0.0.0:7100 --corpus kjv.txt --tokenizer tokenizer.json --job 1`
    Init(Box<InitArgs>),
    /// Register this worker's node key on chain (signed by the operator key, which must hold
    /// the bond).
    ///
    /// Example: `magnet-worker join --home ~/.magnet-worker --bond 300000000`
    Join {
        /// Worker home.
        #[arg(long, default_value = "~/.magnet-worker")]
        home: PathBuf,
        /// Tier to register (overrides the config's).
        #[arg(long)]
        tier: Option<String>,
        /// Bond in umag (at least the tier's minimum; see `magnetd query registry params`).
        #[arg(long)]
        bond: u128,
        /// Chain RPC (overrides the config's list).
        #[arg(long)]
        node: Option<String>,
    },
    /// Run the worker: heartbeats, storage, DiLoCo rounds, commit-reveal, evaluations,
    /// settlement. Ctrl-C stops it cleanly; a restart resumes from `state.json`.
    Run {
        /// Worker home.
        #[arg(long, default_value = "~/.magnet-worker")]
        home: PathBuf,
    },
    /// Show at a glance: registered? eligible? heartbeats, pending commits and reveals,
    /// challenges, last settlement.
    Status {
        /// Worker home.
        #[arg(long, default_value = "~/.magnet-worker")]
        home: PathBuf,
        /// `text` or `json`.
        #[arg(long, default_value = "text")]
        output: String,
    },
    /// Print the base-checkpoint and eval-set hashes and the model's parameter count this
    /// worker's `[job]` section produces (what `MsgCreateJob` and its training spec must name
    /// so workers accept the job).
    JobHash {
        /// Worker home.
        #[arg(long, default_value = "~/.magnet-worker")]
        home: PathBuf,
    },
    /// Train this worker alone from the job's base model for `--steps` steps (its own shard,
    /// the job's hyper-parameters) and print the validation loss as JSON: the reference a
    /// DiLoCo run is compared with ("within 2 % of one worker alone for the same steps").
    ///
    /// Example: magnet-worker solo --home ./w0 --steps 48
    Solo {
        /// Worker home.
        #[arg(long, default_value = "~/.magnet-worker")]
        home: PathBuf,
        /// Inner steps to train.
        #[arg(long)]
        steps: u32,
    },
}

/// `init` arguments.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Worker home (created).
    #[arg(long, default_value = "~/.magnet-worker")]
    pub home: PathBuf,
    /// A name for logs and reports.
    #[arg(long, default_value = "worker")]
    pub moniker: String,
    /// Chain RPC endpoints (repeat for failover).
    #[arg(long = "rpc", default_value = "http://127.0.0.1:26657")]
    pub rpc: Vec<String>,
    /// p2p listen address (registered as the node's endpoint).
    #[arg(long = "p2p", default_value = "127.0.0.1:7100")]
    pub p2p: String,
    /// Prometheus listen address (empty: off).
    #[arg(long, default_value = "")]
    pub metrics: String,
    /// Tier; default: the hardware profile's suggestion.
    #[arg(long)]
    pub tier: Option<String>,
    /// Job id on chain.
    #[arg(long, default_value_t = 1)]
    pub job: u64,
    /// Training corpus.
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Shared tokenizer.json of the job.
    #[arg(long)]
    pub tokenizer: Option<PathBuf>,
    /// This worker's data shard, as `INDEX/COUNT`.
    #[arg(long, default_value = "0/1")]
    pub shard: String,
    /// Inner steps per round.
    #[arg(long)]
    pub inner_steps: Option<u32>,
    /// Sequences per inner step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Inner AdamW peak learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Outer learning rate η of the merge ×1000 (default 1000: average the Δs). Every worker
    /// of a job must use the same value.
    #[arg(long)]
    pub outer_lr_permille: Option<u32>,
    /// Outer Nesterov momentum μ ×1000 (default 0; the DiLoCo paper's 900 with η 700 suits
    /// hundreds of inner steps per round, not a few dozen).
    #[arg(long)]
    pub outer_momentum_permille: Option<u32>,
    /// Seconds before the end of the commit window at which the epoch's work is committed.
    #[arg(long)]
    pub commit_lead_secs: Option<u64>,
    /// Chain height of round 0.
    #[arg(long)]
    pub first_height: Option<u64>,
    /// Blocks per round.
    #[arg(long)]
    pub blocks_per_round: Option<u64>,
    /// Collection window after the announcement (ms).
    #[arg(long)]
    pub round_ms: Option<u64>,
    /// Total inner steps the LR schedule spans.
    #[arg(long)]
    pub schedule_steps: Option<usize>,
    /// Leader rule: `hash` (default) or `round-robin`.
    #[arg(long)]
    pub leader_rule: Option<String>,
    /// Fault to play (devnets and tests only): `none`, `nan`, `no-reveal`, or an adversary of
    /// `docs/threat-model.md`: `inflate`, `lazy`, `hijack`, `copycat`, `fraud` (as leader,
    /// records a merge that is not the merge of its Δs; ADR 0089), `sybil`, `collude`,
    /// `evalfit`.
    #[arg(long, default_value = "none", hide = true)]
    pub fault: String,
    /// MiB written by the disk test.
    #[arg(long, default_value_t = 32)]
    pub disk_test_mb: usize,
    /// Run the SSD provisioning test (O_DIRECT 4 KiB random reads and writes; paper: read ≥
    /// 100 MB/s, write ≥ 50 MB/s) even if the tier is not `storage_node`, which always runs
    /// it. Its signed result goes into `join`'s registration: a storage tier needs a passing
    /// one, and only nodes with one are given stripes to hold.
    #[arg(long)]
    pub ssd_test: bool,
    /// Size of the SSD test's file in MiB (the paper's protocol: 256; smaller runs are
    /// marked informative but still registered).
    #[arg(long, default_value_t = 256)]
    pub ssd_test_mb: u64,
    /// Seconds per SSD test phase (the paper's protocol: 5).
    #[arg(long, default_value_t = 5)]
    pub ssd_test_secs: u64,
}

fn expand(p: PathBuf) -> PathBuf {
    match (p.to_str(), std::env::var_os("HOME")) {
        (Some(s), Some(h)) if s.starts_with("~/") => PathBuf::from(h).join(&s[2..]),
        _ => p,
    }
}

fn abs(p: PathBuf) -> Result<PathBuf> {
    let p = expand(p);
    if p.is_absolute() {
        Ok(p)
    } else {
        Ok(std::env::current_dir()?.join(p))
    }
}

fn init(a: InitArgs) -> Result<()> {
    let home = expand(a.home);
    let mut cfg = Config {
        moniker: a.moniker,
        ..Config::default()
    };
    cfg.chain.rpc = a.rpc;
    cfg.node.p2p_listen = a.p2p;
    cfg.node.metrics_listen = a.metrics;
    cfg.node.tier = a.tier.unwrap_or_default();
    cfg.job.id = a.job;
    if let Some(c) = a.corpus {
        cfg.job.corpus = abs(c)?;
    }
    if let Some(t) = a.tokenizer {
        cfg.job.tokenizer = abs(t)?;
    }
    let (i, n) = a
        .shard
        .split_once('/')
        .and_then(|(i, n)| Some((i.parse().ok()?, n.parse().ok()?)))
        .context("--shard must be INDEX/COUNT, e.g. 0/3")?;
    cfg.job.shard_index = i;
    cfg.job.shard_count = n;
    if let Some(v) = a.inner_steps {
        cfg.job.inner_steps = v;
    }
    if let Some(v) = a.batch_size {
        cfg.job.batch_size = v;
    }
    if let Some(v) = a.lr {
        cfg.job.lr = v;
    }
    if let Some(v) = a.outer_lr_permille {
        cfg.job.outer_lr_permille = v;
    }
    if let Some(v) = a.outer_momentum_permille {
        cfg.job.outer_momentum_permille = v;
    }
    if let Some(v) = a.commit_lead_secs {
        cfg.job.commit_lead_secs = v;
    }
    if let Some(v) = a.first_height {
        cfg.job.first_height = v;
    }
    if let Some(v) = a.blocks_per_round {
        cfg.job.blocks_per_round = v;
    }
    if let Some(v) = a.round_ms {
        cfg.job.round_ms = v;
        cfg.job.announce_timeout_ms = v / 2;
        cfg.job.merge_grace_ms = v / 2;
    }
    if let Some(v) = a.schedule_steps {
        cfg.job.schedule_steps = v;
    }
    if let Some(r) = a.leader_rule {
        cfg.job.leader_rule = match r.as_str() {
            "hash" => LeaderRuleName::Hash,
            "round-robin" => LeaderRuleName::RoundRobin,
            other => anyhow::bail!("--leader-rule {other:?}: use hash or round-robin"),
        };
    }
    cfg.dev.fault = Fault::parse(&a.fault).ok_or_else(|| {
        anyhow::anyhow!(
            "--fault {:?}: use none, nan, no-reveal, lost-ack, stripe-only, bitrot, inflate, \
             lazy, hijack, copycat, fraud, sybil, collude or evalfit",
            a.fault
        )
    })?;
    let ssd = magnet_daemon::setup::SsdTest {
        force: a.ssd_test,
        file_mb: a.ssd_test_mb,
        phase_secs: a.ssd_test_secs,
    };
    let r = magnet_daemon::setup::init(&home, cfg, a.disk_test_mb, &ssd)?;
    println!("{}", serde_json::to_string_pretty(&r)?);
    eprintln!(
        "next: fund {} with the bond, then `magnet-worker join --home {} --bond <umag>`",
        r.operator,
        home.display()
    );
    Ok(())
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")
}

/// Runs a daemon subcommand.
pub fn run(cmd: DaemonCommand) -> Result<()> {
    match cmd {
        DaemonCommand::Init(a) => init(*a),
        DaemonCommand::Join {
            home,
            tier,
            bond,
            node,
        } => {
            let home = expand(home);
            if tier.is_some() || node.is_some() {
                let mut cfg = Config::load(&home)?;
                if let Some(t) = tier {
                    cfg.node.tier = t;
                }
                if let Some(n) = node {
                    cfg.chain.rpc = vec![n];
                }
                cfg.validate()
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .context("checking --tier/--node")?;
                cfg.save(&home)?;
            }
            let id = runtime()?.block_on(magnet_daemon::setup::join(&home, bond))?;
            println!("{id}");
            Ok(())
        }
        DaemonCommand::Run { home } => {
            let home = expand(home);
            let stop = Arc::new(AtomicBool::new(false));
            let rt = runtime()?;
            rt.block_on(async {
                let s = stop.clone();
                tokio::spawn(async move {
                    let mut term =
                        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                            .ok();
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {},
                        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
                    }
                    tracing::info!("stop requested");
                    s.store(true, Ordering::SeqCst);
                });
                magnet_daemon::run::run(&home, stop).await
            })?;
            Ok(())
        }
        DaemonCommand::Status { home, output } => {
            let home = expand(home);
            let r = runtime()?.block_on(magnet_daemon::status::status(&home))?;
            if output == "json" {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!("{r}");
            }
            Ok(())
        }
        DaemonCommand::Solo { home, steps } => {
            let r = magnet_daemon::setup::solo(&expand(home), steps)?;
            println!("{}", serde_json::to_string(&r)?);
            Ok(())
        }
        DaemonCommand::JobHash { home } => {
            let (base, eval, params) = magnet_daemon::setup::base_hash(&expand(home))?;
            println!(
                "{}",
                serde_json::json!({"base_checkpoint": base, "eval_set_hash": eval, "params": params})
            );
            Ok(())
        }
    }
}
