//! `magnetd devnet`: a whole MAGNET epoch loop on one machine, with one command.
//!
//! It builds a devnet genesis (short epochs and windows, funded operator and node accounts),
//! starts the embedded chain (`magnetd start`, a child process), creates a research job for a
//! small BitNet model on the shipped text corpus, and starts N `magnet-worker` processes of
//! different tiers on loopback. The workers register, heart-beat, train in DiLoCo rounds over
//! signed gRPC, record each merge on chain, commit and reveal their work, evaluate each other,
//! and get settled. The devnet watches the chain until the asked epochs are settled, then
//! writes `report.md` / `report.json` (per round: leader, participants, bytes, merged
//! validation loss; per node: tier, verified contribution, reward, slashes) and `loss.png`.
//!
//! `magnetd` links no ML code: the devnet only orchestrates processes, signs two kinds of tx
//! (the job's creation) and reads the chain; everything it reports about training comes from
//! the chain and from the workers' own round logs.
//!
//! # Guarantees
//! Every number in the report is read back from the chain (lineage, contributions, settlements,
//! slash records) or from the worker that measured it (losses, bytes). The chain keeps running
//! after the report unless `--exit-when-done`, and its home (`OUT/chain`) restarts with
//! `magnetd --home OUT/chain start`.
//!
//! # Non-guarantees
//! Wall-clock pacing: on a loaded machine rounds may time out and be skipped (the report shows
//! them as failed); the defaults are sized for 2 cores.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use magnet_client::tx::FeeSpec;
use magnet_client::{ChainClient, Key};
use magnet_core::Coins;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `magnetd devnet` options.
#[derive(clap::Args, Debug, Clone)]
pub struct DevnetArgs {
    /// Number of worker processes (tiers cycle orchestrator, gpu_compute, cpu_only).
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Epochs of work to settle before the report.
    #[arg(long, default_value_t = 2)]
    pub epochs: u64,
    /// Output directory (chain home, worker homes, report); must not exist or be empty.
    #[arg(long, default_value = "devnet")]
    pub out: PathBuf,
    /// Epoch length in seconds of block time (blocks are 1 s apart).
    #[arg(long, default_value_t = 150)]
    pub epoch_secs: u64,
    /// Inner steps per DiLoCo round.
    #[arg(long, default_value_t = 8)]
    pub inner_steps: u32,
    /// Sequences per inner step.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Inner AdamW peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Blocks between DiLoCo round starts.
    #[arg(long, default_value_t = 30)]
    pub blocks_per_round: u64,
    /// Text corpus for the job (default: data/text/kjv.txt under the current directory).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Lines of the corpus the job uses.
    #[arg(long, default_value_t = 12_000)]
    pub corpus_lines: usize,
    /// The magnet-worker binary (default: next to this magnetd, then $PATH).
    #[arg(long)]
    pub worker_bin: Option<PathBuf>,
    /// RPC port of the chain.
    #[arg(long, default_value_t = 26_757)]
    pub rpc_port: u16,
    /// First p2p port (worker i listens on this + i).
    #[arg(long, default_value_t = 27_100)]
    pub p2p_port: u16,
    /// Stop the chain after the report instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Replace an existing output directory.
    #[arg(long)]
    pub force: bool,
    /// Fault injection: `I:nan` (worker I sends NaN updates), `I:no-reveal`, `I:lost-ack`
    /// (worker I never learns that its commitments landed; it must reveal them anyway), or
    /// `I:stripe-only` (worker I keeps no copy of its Δs: the leader reads them from stripes),
    /// or `I:bitrot` (storage node I corrupts a challenged shard each epoch: slashed, repaired).
    #[arg(long = "fault", hide = true)]
    pub faults: Vec<String>,
    /// Add one misbehaving worker per KIND (comma-separated), after the `--workers` honest
    /// ones, each a `gpu_compute` node with the tier's bond: `copycat` (claims other nodes'
    /// accepted Δs as its work), `inflate` (signs 100× its steps and tokens), `hijack` (records
    /// the rounds it trained as if it led them), `lazy` (hands in zero Δs), `fraud` (as
    /// leader, records and serves a merge that is not the merge of its Δs; the drawn auditors
    /// challenge it, ADR 0089), `evalfit` (trains on the job's public validation split
    /// instead of its shard, ADR 0090), `sybil` (four `cpu_only` identities splitting one bond and one
    /// machine — each trains a quarter of the inner steps — beside an honest `unsplit` node
    /// holding the same bond), `collude` (an evaluator that scores its partner, the first
    /// other adversary or else worker 0, at the top). The report gains a table of what each
    /// kind earned and lost against honest play (docs/threat-model.md); add `--baseline` to
    /// compare with the same identities playing honest.
    #[arg(long = "adversary", value_delimiter = ',', value_name = "KIND")]
    pub adversaries: Vec<String>,
    /// With `--adversary`: first run the same devnet with every adversary playing honest
    /// (under OUT/baseline), then the honest workers alone with no adversary at all (under
    /// OUT/honest-only), then the adversarial one, and compare them in the report: what each
    /// adversary's identities earned honestly and what honest nodes lost (against the first),
    /// and the merged model's validation loss against the honest workers alone (ADR 0106).
    /// Triples the run time.
    #[arg(long)]
    pub baseline: bool,
    /// Internal: this run is `--baseline`'s honest twin.
    #[arg(long, hide = true)]
    pub honest_twin: bool,
    /// Internal: this run is `--baseline`'s honest-only run (the adversaries left out).
    #[arg(long, hide = true)]
    pub honest_only: bool,
    /// Storage nodes to add (tier `storage_node`, after the workers): they pass the SSD
    /// provisioning test at `init`, hold the RS(4,2) stripes of every Δ and checkpoint, answer
    /// the chain's custody audits, repair lost shards and are paid for audited custody
    /// (ADR 0107). The report gains a storage table. RS(4,2) needs at least 6.
    #[arg(long, default_value_t = 0)]
    pub storage_nodes: usize,
    /// After the asked epochs are settled, worker 0 serves the job's lineage head behind x402
    /// payments (`magnet-worker serve --job 1 --price-per-token`), a funded client pays with
    /// `magnet-worker pay`, and the devnet checks the settlement's split against the chain and
    /// that replayed, underpaid, wrong-chain, wrong-payee and malformed payments are refused
    /// (ADR 0110). The report gains a "Serving" section and API revenue per node.
    #[arg(long)]
    pub serve: bool,
    /// With `--serve`: the price of each token, in umag.
    #[arg(long, default_value_t = 10, value_name = "UMAG")]
    pub price_per_token: u128,
    /// Kill this many storage nodes (the first ones) a third into the second settled epoch
    /// (the only one with `--epochs 1`): their stripes must stay readable and be repaired
    /// onto the others.
    #[arg(long, default_value_t = 0)]
    pub kill_storage: usize,
    /// Kill injection: `I@R` kills worker I once round R starts; `leader@R` kills round R's
    /// leader once it has announced (or, if that leader carries a `--fault`, the first later
    /// round's fault-free leader); `member@R` kills, once round R is announced, the
    /// highest-numbered live worker that is neither its leader nor carries a `--fault`.
    #[arg(long = "kill", hide = true)]
    pub kills: Vec<String>,
    /// Run a research job next to the training job (issue 20, ADR 0115): `DOMAIN:CSV:TARGET`,
    /// e.g. `tabular:data/tabular/breast_cancer.csv:target`. The devnet splits the CSV into
    /// the job's data and a sealed test split, registers the data, creates the job once the
    /// record is confirmed (the chain draws an orchestrator as coordinator), and reveals the
    /// test split after the final version. The coordinator farms the search out to the other
    /// workers and records it; drawn checkers re-run sampled and disputed trials; drawn
    /// evaluators score the final model on the test split. Add `--fault I:fabricate` to make
    /// worker I answer units with fabricated predictions: it is caught and slashed. The report
    /// gains a research section.
    #[arg(long, value_name = "DOMAIN:CSV:TARGET")]
    pub research: Option<String>,
}

/// Tier and bond of a `--storage-nodes` node (the tier's minimum bond).
const STORAGE_TIER: (&str, u128) = ("storage_node", 300_000_000);
const TIERS: [(&str, u128); 3] = [
    ("orchestrator", 10_000_000_000),
    ("gpu_compute", 1_000_000_000),
    ("cpu_only", 300_000_000),
];
const MAG: u128 = 1_000_000;

/// Identities a `sybil` adversary splits one bond over.
pub const SYBIL_SPLIT: usize = 4;

/// One worker process the devnet starts: its tier, bond, the fault its daemon plays and the
/// role the report files it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// Registry tier.
    pub tier: &'static str,
    /// Bond (umag).
    pub bond: u128,
    /// `none`, a `--fault` or an adversary kind: what the daemon plays.
    pub fault: String,
    /// `honest`, an adversary kind, or `unsplit` (the sybil group's honest counterpart).
    pub role: String,
}

/// Who a devnet run starts, given its `--adversary` kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Roster {
    /// The honest workers and every adversary, misbehaving.
    Adversarial,
    /// The same identities, every adversary playing honest (`--baseline`'s twin: the
    /// reference for what each adversary's identities would have earned).
    Twin,
    /// Only the honest workers (with `sybil`, its honest `unsplit` node too): the adversaries
    /// left out (`--baseline`'s reference for the merged model, ADR 0106).
    HonestOnly,
}

/// The devnet's workers: `honest` workers cycling through [`TIERS`], then per adversary kind
/// its workers — one `gpu_compute` worker with the tier's bond, except `sybil`, which is
/// [`SYBIL_SPLIT`] `cpu_only` identities of the tier's minimum bond each (one machine's work
/// split four ways) plus one honest `cpu_only` worker holding their whole bond in one
/// identity (`unsplit`), the node the split must not beat. [`Roster::Twin`] makes every
/// adversary play honest; [`Roster::HonestOnly`] leaves them out.
pub fn plan_slots(honest: usize, adversaries: &[String], roster: Roster) -> Vec<Slot> {
    let twin = roster == Roster::Twin;
    let present = roster != Roster::HonestOnly;
    let mut v: Vec<Slot> = (0..honest)
        .map(|i| Slot {
            tier: TIERS[i % TIERS.len()].0,
            bond: TIERS[i % TIERS.len()].1,
            fault: "none".into(),
            role: "honest".into(),
        })
        .collect();
    let fault = |k: &str| {
        if twin {
            "none".to_string()
        } else {
            k.to_string()
        }
    };
    for k in adversaries {
        if k == "sybil" {
            let (tier, bond) = TIERS[2];
            for _ in 0..if present { SYBIL_SPLIT } else { 0 } {
                v.push(Slot {
                    tier,
                    bond,
                    fault: fault(k),
                    role: k.clone(),
                });
            }
            v.push(Slot {
                tier,
                bond: bond * SYBIL_SPLIT as u128,
                fault: "none".into(),
                role: "unsplit".into(),
            });
        } else if present {
            v.push(Slot {
                tier: TIERS[1].0,
                bond: TIERS[1].1,
                fault: fault(k),
                role: k.clone(),
            });
        }
    }
    v
}

/// The worker a `collude` adversary scores high: the first worker of another adversary kind,
/// else worker 0.
pub fn collude_partner(slots: &[Slot], colluder: usize) -> usize {
    slots
        .iter()
        .position(|s| ADVERSARIES.contains(&s.role.as_str()) && s.role != "collude")
        .filter(|&i| i != colluder)
        .unwrap_or(0)
}

const CHAIN_ID: &str = "magnet-devnet-1";
/// Adversary kinds `--adversary` knows (docs/threat-model.md).
pub const ADVERSARIES: [&str; 8] = [
    "copycat", "inflate", "hijack", "lazy", "fraud", "evalfit", "sybil", "collude",
];

fn parse_adversaries(v: &[String]) -> Result<Vec<String>> {
    let mut seen = Vec::new();
    for k in v {
        let k = k.trim();
        if ADVERSARIES.contains(&k) {
            if seen.iter().any(|s| s == k) {
                bail!("--adversary {k} is listed twice: each kind adds its workers once");
            }
            seen.push(k.to_string());
        } else {
            bail!("--adversary {k:?}: use one of {ADVERSARIES:?}")
        }
    }
    Ok(seen)
}

/// Seconds of each window after the commit window (reveal, evaluator commit and reveal,
/// challenge): a few blocks of inclusion latency on a loaded machine.
const TAIL: u64 = 20;
/// The evaluator-commit window: every assigned contribution is scored in it, after the chain
/// fixes the evaluation seed (ADR 0090) — the marginal score of sampled Δs on the job's model,
/// for all the contributions a node is drawn for (a large-bond node is drawn for most).
const EVAL_COMMIT: u64 = 70;
/// Evaluation windows per loss measurement on the devnet (the worker default is 32): halves
/// the cost of every evaluation on a machine that runs all the workers.
const EVAL_WINDOWS: i64 = 16;

/// The commit window of an `epoch_secs` epoch: what the reveal, evaluator and challenge
/// windows leave.
fn commit_window(epoch_secs: u64) -> u64 {
    epoch_secs.saturating_sub(3 * TAIL + EVAL_COMMIT).max(TAIL)
}

struct Worker {
    home: PathBuf,
    moniker: String,
    tier: String,
    operator: String,
    /// Node account (the node key's address).
    node: String,
    node_id: String,
    /// `none`, a `--fault` or an `--adversary` kind.
    fault: String,
    /// Report role: `honest`, an adversary kind or `unsplit`.
    role: String,
    /// Bond (umag).
    bond: u128,
    child: Option<Child>,
}

pub(crate) fn run_cmd(cmd: &mut Command, what: &str) -> Result<String> {
    // The error's own lines, not a backtrace, are what the last lines of stderr must show.
    let out = cmd
        .stdin(Stdio::null())
        .env("RUST_BACKTRACE", "0")
        .env("RUST_LIB_BACKTRACE", "0")
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(8)
                .collect::<Vec<_>>()
                .join(" | ")
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn find_worker_bin(given: &Option<PathBuf>) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.clone());
    }
    if let Ok(me) = std::env::current_exe() {
        let sib = me.with_file_name("magnet-worker");
        if sib.is_file() {
            return Ok(sib);
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for d in std::env::split_paths(&paths) {
            let p = d.join("magnet-worker");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "magnet-worker not found next to magnetd or on $PATH: build it with \
         `cargo build --release -p magnet-worker` or pass --worker-bin"
    )
}

fn parse_faults(v: &[String], n: usize) -> Result<BTreeMap<usize, String>> {
    let mut m = BTreeMap::new();
    for f in v {
        let (i, k) = f.split_once(':').ok_or_else(|| {
            anyhow!(
                "--fault {f:?}: use I:nan, I:no-reveal, I:lost-ack, I:stripe-only or I:fabricate"
            )
        })?;
        let i: usize = i.parse().with_context(|| format!("--fault {f:?}"))?;
        let known = [
            "nan",
            "no-reveal",
            "lost-ack",
            "stripe-only",
            "bitrot",
            "fabricate",
        ];
        if i >= n || !(known.contains(&k) || ADVERSARIES.contains(&k)) {
            bail!(
                "--fault {f:?}: worker index below {n}, fault nan, no-reveal, lost-ack, \
                 stripe-only, bitrot or fabricate"
            );
        }
        m.insert(i, k.to_string());
    }
    Ok(m)
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KillWho {
    Worker(usize),
    Leader,
    Member,
}

fn parse_kills(v: &[String], n: usize) -> Result<Vec<(KillWho, u64)>> {
    v.iter()
        .map(|k| {
            let (who, r) = k.split_once('@').ok_or_else(|| {
                anyhow!("--kill {k:?}: use I@ROUND, leader@ROUND or member@ROUND")
            })?;
            let r: u64 = r.parse().with_context(|| format!("--kill {k:?}"))?;
            let who = if who == "leader" {
                KillWho::Leader
            } else if who == "member" {
                KillWho::Member
            } else {
                let i: usize = who.parse().with_context(|| format!("--kill {k:?}"))?;
                if i >= n {
                    bail!("--kill {k:?}: there are only {n} workers");
                }
                KillWho::Worker(i)
            };
            Ok((who, r))
        })
        .collect()
}

/// Set `[section] key = "value"` in the `worker.toml` under `home`.
fn set_worker_toml(home: &Path, section: &str, key: &str, value: &str) -> Result<()> {
    let p = home.join("worker.toml");
    let mut t: toml::Table = std::fs::read_to_string(&p)?.parse()?;
    let s = t
        .entry(section)
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(s) = s.as_table_mut() {
        s.insert(key.into(), toml::Value::String(value.into()));
    }
    std::fs::write(&p, toml::to_string_pretty(&t)?)?;
    Ok(())
}

/// The devnet's auth params: the defaults with a zero minimum gas price (see `run`).
fn devnet_auth_params() -> Result<Value> {
    Ok(serde_json::to_value(magnet_app::auth::AuthParams {
        min_gas_price: "0".into(),
        ..Default::default()
    })?)
}

fn devnet_app_state(epoch_secs: u64) -> Result<Value> {
    let mut reg = serde_json::to_value(magnet_registry::Params::default())?;
    reg["heartbeat_interval_secs"] = 10.into();
    reg["min_heartbeats_per_epoch"] = 2.into();
    reg["liveness_window_secs"] = 45.into();
    reg["unbonding_delay_secs"] = 600.into();
    // The devnet's storage nodes run a short SSD test (16 MiB, 1 s) while the machine trains;
    // the thresholds are a fifth of the paper's so a busy CI disk still qualifies (ADR 0107).
    reg["ssd_min_read_mbps"] = 20.into();
    reg["ssd_min_write_mbps"] = 10.into();
    // On a CPU-only devnet every tier trains: give cpu_only the training kind too.
    if let Some(tiers) = reg["tiers"].as_array_mut() {
        for t in tiers {
            if t["name"] == "cpu_only" {
                if let Some(k) = t["kinds"].as_array_mut() {
                    k.push("training".into());
                }
            }
        }
    }
    let mut em = serde_json::to_value(magnet_emission::Params::default())?;
    em["blocks_per_day"] = 86_400.into();
    let mut co = serde_json::to_value(magnet_contrib::Params::default())?;
    let w = |x: u64| Value::from(x);
    let tail = TAIL;
    let commit = commit_window(epoch_secs);
    co["commit_window_secs"] = w(commit);
    co["reveal_window_secs"] = w(tail);
    co["eval_commit_window_secs"] = w(EVAL_COMMIT);
    co["eval_reveal_window_secs"] = w(tail);
    co["challenge_window_secs"] = w(tail);
    co["evaluator_slots"] = 4.into();
    co["min_evaluations"] = 2.into();
    // Research jobs (ADR 0111/0115) on a devnet's clock: a short data challenge window and
    // check, reveal and held-out periods of tens of blocks.
    let mut da = serde_json::to_value(magnet_data::Params::default())?;
    da["challenge_window_secs"] = 5.into();
    let mut jo = serde_json::to_value(magnet_jobs::params::Params::default())?;
    jo["check_commit_blocks"] = 20.into();
    jo["check_reveal_blocks"] = 15.into();
    jo["test_reveal_blocks"] = 40.into();
    Ok(json!({
        "epochs": { "params": { "duration_secs": epoch_secs, "max_ends_per_block": 16 } },
        "registry": { "params": reg },
        "emission": { "params": em },
        "contrib": { "params": co },
        "data": { "params": da },
        "jobs": { "params": jo },
    }))
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status();
}

pub(crate) fn stop_child(child: &mut Child, grace: Duration) {
    signal(child, "INT");
    let t = Instant::now();
    while t.elapsed() < grace {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One line of a worker's `rounds.jsonl`.
#[derive(Clone, Debug, Deserialize)]
struct RoundLine {
    kind: String,
    round: u64,
    #[serde(default)]
    local_val_loss: Option<f64>,
    #[serde(default)]
    merged_val_loss: Option<f64>,
    #[serde(default)]
    upload_bytes: Option<u64>,
    #[serde(default)]
    delta_hash: Option<String>,
    #[serde(default)]
    accepted: Vec<Value>,
    /// Hijack attempts: whether the chain refused the record.
    #[serde(default)]
    refused: Option<bool>,
}

fn read_rounds(home: &Path) -> Vec<RoundLine> {
    let Ok(f) = std::fs::File::open(home.join("rounds.jsonl")) else {
        return Vec::new();
    };
    std::io::BufReader::new(f)
        .lines()
        .map_while(|l| l.ok())
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// The devnet's report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Chain id.
    pub chain_id: String,
    /// Job id.
    pub job: u64,
    /// Per round.
    pub rounds: Vec<RoundRow>,
    /// Per node.
    pub nodes: Vec<NodeRow>,
    /// Per settled epoch.
    pub epochs: Vec<EpochRow>,
    /// Workers the devnet killed (fault injection), with the round.
    pub killed: Vec<(String, u64)>,
    /// The single-worker reference: the first worker trained alone for as many inner steps
    /// as the merged lineage holds (`merged rounds × H`).
    pub solo: Option<SoloRow>,
    /// One row per `--adversary` kind.
    pub adversaries: Vec<AdversaryRow>,
    /// Against the `--baseline` run, when there was one.
    pub baseline: Option<BaselineComparison>,
    /// Merge audits of the job's rounds that were challenged (ADR 0089).
    pub audits: Vec<AuditRow>,
    /// One row per `--storage-nodes` node (ADR 0107).
    #[serde(default)]
    pub storage: Vec<StorageRow>,
    /// The stripes of the run, as the chain holds them at the end.
    #[serde(default)]
    pub stripes: Option<StripeSummary>,
    /// `--serve`'s serving phase.
    #[serde(default)]
    pub serving: Option<crate::devnet_serve::ServingReport>,
    /// `--research`'s research job.
    #[serde(default)]
    pub research: Option<crate::devnet_research::ResearchReport>,
}

/// What a storage node did and earned.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StorageRow {
    /// Worker name.
    pub moniker: String,
    /// Node account.
    pub node: String,
    /// Killed by `--kill-storage`.
    pub killed: bool,
    /// Shards it holds on chain at the end.
    pub shards_held: u64,
    /// Custody challenges it proved.
    pub audits_passed: u64,
    /// Custody challenges it failed (slashed).
    pub audits_failed: u64,
    /// Shards it rebuilt and re-placed.
    pub shards_repaired: u64,
    /// Bytes its repairs read and wrote.
    pub bytes_repaired: u64,
    /// Audited custody credited over the settled epochs (bytes × epochs).
    pub custody: u128,
    /// Paid for custody over the settled epochs (umag).
    pub reward: u128,
    /// Slashed (umag).
    pub slashed: u128,
}

/// The run's stripes at the end.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct StripeSummary {
    /// Stripes registered (live on chain at the end).
    pub registered: u64,
    /// Of which Δs.
    pub deltas: u64,
    /// Of which checkpoints.
    pub checkpoints: u64,
    /// Stripes with a holder among the killed nodes at the end (not yet repaired).
    pub degraded: u64,
    /// Stripes with fewer than K live holders that passed their audits.
    pub unrecoverable: u64,
    /// Objects a storage node's repair found unrecoverable: fewer than K intact shards left
    /// (a corrupt shard not yet judged counts as live on chain but not here). Data lost.
    #[serde(default)]
    pub lost: u64,
    /// Δs the leaders read from stripes because their producer served none.
    pub stripe_reads: u64,
}

/// One challenged round's audit, as the chain resolved it.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRow {
    /// Round.
    pub round: u64,
    /// Its leader (moniker).
    pub leader: String,
    /// `open`, `upheld`, `rejected`, `no_verdict` or `dropped`.
    pub outcome: String,
    /// The record field the challenger said was wrong.
    pub field: String,
}

/// What one adversary earned and lost, against honest play.
#[derive(Clone, Debug, Serialize)]
pub struct AdversaryRow {
    /// Kind (one of [`ADVERSARIES`]).
    pub kind: String,
    /// Moniker(s), `+`-joined for a sybil group.
    pub moniker: String,
    /// Reward for work + evaluator pay (umag).
    pub earned: u128,
    /// Slashed (umag).
    pub slashed: u128,
    /// What the same work would have netted played honestly (umag; see `reference_basis`).
    pub honest_reference: i128,
    /// Where `honest_reference` comes from.
    pub reference_basis: String,
    /// `earned − slashed − honest_reference`: the attack's net gain over honest play.
    pub net_gain: i128,
    /// Times it recorded a round on chain / times the chain refused (hijack).
    pub records_tried: u64,
    /// Refused records.
    pub records_refused: u64,
    /// `collude`: evaluator slots it was drawn for on its partner's work, over the settled
    /// epochs (0: the collusion never had a chance to act).
    pub partner_slots: u64,
    /// `evalfit`: its mean scored quality, and the best mean quality of a worker training
    /// honestly (`honest` or `unsplit`) in this run.
    pub quality_vs_best_honest: Option<(i64, i64)>,
    /// `evalfit`: the lowest and highest mean quality among the honestly training workers
    /// (`None` when fewer than one was scored).
    pub honest_quality_range: Option<(i64, i64)>,
    /// Whether the row meets its target ([`AdversaryRow::meets_target`]).
    pub target_met: bool,
}

impl AdversaryRow {
    /// The target: net gain ≤ 0 against honest play. For `evalfit`, whose only channel is the
    /// quality score, a positive net is also within target while its quality stays within
    /// [`AdversaryRow::evalfit_quality_bound`]: honest workers' per-Δ qualities differ by tens
    /// of percent within one run (different data, hash-drawn rounds), so one run's net against
    /// a mean is noise unless the quality itself stands out (ADR 0093, ADR 0108;
    /// docs/threat-model.md).
    pub fn meets_target(&self) -> bool {
        self.net_gain <= 0
            || (self.kind == "evalfit"
                && self
                    .quality_vs_best_honest
                    .zip(self.evalfit_quality_bound())
                    .is_some_and(|((q, _), bound)| q <= bound))
    }

    /// The highest `evalfit` quality that is still a draw from the honest spread: the best
    /// honest quality plus the honest workers' own range (best − worst) in the same run
    /// (ADR 0108). Under the null hypothesis — training on the public split is just another
    /// representative sample — the adversary is one more draw of the same distribution, so
    /// "above the best honest worker" alone happens in about 1 run of (honest workers + 1);
    /// a systematic edge such as the 3.9× one before ADR 0093 lies far beyond this bound.
    /// `None` when no honest worker was scored.
    pub fn evalfit_quality_bound(&self) -> Option<i64> {
        self.honest_quality_range
            .map(|(worst, best)| best.saturating_add(best.saturating_sub(worst).max(0)))
    }
}

/// Mean quality of a node's scored contributions (`None` when none was scored).
pub fn mean_quality(n: &NodeRow) -> Option<i64> {
    let q: Vec<i64> = n
        .contributions
        .iter()
        .filter(|c| c.1 == "Scored")
        .filter_map(|c| c.2.parse::<i64>().ok())
        .collect();
    (!q.is_empty()).then(|| q.iter().sum::<i64>() / q.len() as i64)
}

/// The devnet's `min_evaluations` and the contrib module's default `max_quality`.
const MIN_EVALUATIONS: u64 = 2;
const MAX_QUALITY: i128 = 10_000_000;

/// Lower median of `(score, slots)` with each score counted once per slot (the contrib
/// module's rule), or `None` below `min` slots.
fn panel_median(scores: &[(i64, u64)], min: u64) -> Option<i64> {
    let mut v: Vec<(i64, u64)> = scores.to_vec();
    v.sort_unstable();
    let n: u64 = v.iter().map(|(_, k)| k).sum();
    if n < min.max(1) {
        return None;
    }
    let mut idx = (n - 1) / 2;
    for (s, k) in v {
        if idx < k {
            return Some(s);
        }
        idx -= k;
    }
    None
}

/// What a colluding evaluator's scores added to its partner's reward in one epoch: the partner
/// was `paid` at quality q = clamp(median of the whole panel); without the colluder's slots the
/// median (hence q) could differ, and reward is proportional to q. `panel`: (revealed score,
/// slots, is the colluder).
pub fn collusion_gain(panel: &[(i64, u64, bool)], paid: u128, min: u64, max_q: i128) -> i128 {
    let q = |m: Option<i64>| m.map_or(0, |m| i128::from(m).clamp(0, max_q));
    let all: Vec<(i64, u64)> = panel.iter().map(|(s, k, _)| (*s, *k)).collect();
    let honest: Vec<(i64, u64)> = panel
        .iter()
        .filter(|(_, _, c)| !c)
        .map(|(s, k, _)| (*s, *k))
        .collect();
    let (with, without) = (q(panel_median(&all, min)), q(panel_median(&honest, min)));
    if with == 0 {
        return 0;
    }
    paid as i128 * (with - without) / with
}

/// What a node netted: reward for work + evaluator pay − slashes (umag).
pub fn net_of(n: &NodeRow) -> i128 {
    let slashed: u128 = n.slashes.iter().map(|(_, a)| *a).sum();
    (n.reward + n.evaluator_pay) as i128 - slashed as i128
}

/// One row per adversary kind (a `sybil` group's identities summed into one row). Its honest
/// reference: for `sybil`, what the run's `unsplit` node (the same bond in one identity)
/// netted; otherwise, with a `baseline` run, what the same identities netted there playing
/// honest; without one, the mean net of this run's honest workers of its tier (all honest
/// workers when none shares its tier).
pub fn adversary_rows(
    nodes: &[NodeRow],
    hijacks: &BTreeMap<String, (u64, u64)>,
    baseline: Option<&[NodeRow]>,
) -> Vec<AdversaryRow> {
    let honest: Vec<&NodeRow> = nodes.iter().filter(|n| n.role == "honest").collect();
    let mut kinds: Vec<&str> = Vec::new();
    for n in nodes {
        if ADVERSARIES.contains(&n.role.as_str()) && !kinds.contains(&n.role.as_str()) {
            kinds.push(&n.role);
        }
    }
    kinds
        .into_iter()
        .map(|kind| {
            let group: Vec<&NodeRow> = nodes.iter().filter(|n| n.role == kind).collect();
            let tier = group.first().map(|n| n.tier.clone()).unwrap_or_default();
            let unsplit = nodes.iter().find(|n| n.role == "unsplit");
            let twins: Option<Vec<&NodeRow>> = baseline.map(|b| {
                b.iter()
                    .filter(|t| group.iter().any(|n| n.moniker == t.moniker))
                    .collect()
            });
            let (reference, basis) = match (kind, unsplit, twins) {
                ("sybil", Some(u), _) => (net_of(u), format!("{} (unsplit, same bond)", u.moniker)),
                (_, _, Some(t)) if t.len() == group.len() => (
                    t.iter().map(|n| net_of(n)).sum(),
                    "the same identities, honest, in the baseline run".to_string(),
                ),
                _ => {
                    let same: Vec<&&NodeRow> = honest.iter().filter(|h| h.tier == tier).collect();
                    let pool: Vec<i128> = if same.is_empty() {
                        honest.iter().map(|h| net_of(h)).collect()
                    } else {
                        same.iter().map(|h| net_of(h)).collect()
                    };
                    let mean = if pool.is_empty() {
                        0
                    } else {
                        pool.iter().sum::<i128>() / pool.len() as i128
                    };
                    (
                        mean * group.len() as i128,
                        format!("mean honest {tier} node in this run"),
                    )
                }
            };
            let earned: u128 = group.iter().map(|n| n.reward + n.evaluator_pay).sum();
            let slashed: u128 = group
                .iter()
                .flat_map(|n| n.slashes.iter().map(|(_, a)| *a))
                .sum();
            let (tried, refused) = group
                .iter()
                .filter_map(|n| hijacks.get(&n.moniker))
                .fold((0, 0), |(t, r), (a, b)| (t + a, r + b));
            let net: i128 = group.iter().map(|n| net_of(n)).sum();
            // A hijacker whose every record was refused changed no money: what it earned is
            // its honest training and evaluation, so the attack's gain is minus its slashes.
            // (Against another node, per-Δ quality noise would swamp the comparison.)
            let (reference, basis) = if kind == "hijack" && tried > 0 && refused == tried {
                (
                    earned as i128,
                    "its own honest earnings (every record refused)".to_string(),
                )
            } else {
                (reference, basis)
            };
            let honest_q: Vec<i64> = nodes
                .iter()
                .filter(|n| n.role == "honest" || n.role == "unsplit")
                .filter_map(mean_quality)
                .collect();
            let honest_quality_range = (kind == "evalfit")
                .then(|| {
                    honest_q
                        .iter()
                        .min()
                        .copied()
                        .zip(honest_q.iter().max().copied())
                })
                .flatten();
            let quality_vs_best_honest = if kind == "evalfit" {
                let mine: Vec<i64> = group.iter().filter_map(|n| mean_quality(n)).collect();
                match (mine.is_empty(), honest_quality_range) {
                    (false, Some((_, b))) => {
                        Some((mine.iter().sum::<i64>() / mine.len() as i64, b))
                    }
                    _ => None,
                }
            } else {
                None
            };
            let mut row = AdversaryRow {
                kind: kind.to_string(),
                moniker: group
                    .iter()
                    .map(|n| n.moniker.as_str())
                    .collect::<Vec<_>>()
                    .join("+"),
                earned,
                slashed,
                honest_reference: reference,
                reference_basis: basis,
                net_gain: net - reference,
                records_tried: tried,
                records_refused: refused,
                partner_slots: 0,
                quality_vs_best_honest,
                honest_quality_range,
                target_met: false,
            };
            row.target_met = row.meets_target();
            row
        })
        .collect()
}

/// The adversarial run against its `--baseline` runs: the twin (the same identities, every
/// adversary playing honest) for earnings, the honest workers alone for the model (ADR 0106).
#[derive(Clone, Debug, Serialize)]
pub struct BaselineComparison {
    /// The last merged model's validation loss in the twin run (every identity honest).
    pub merged_val_loss_baseline: Option<f64>,
    /// The last merged model's validation loss with the honest workers alone.
    pub merged_val_loss_honest_only: Option<f64>,
    /// ... and with the adversaries.
    pub merged_val_loss: Option<f64>,
    /// What the honest workers netted together without adversaries (umag).
    pub honest_net_baseline: i128,
    /// ... and with them.
    pub honest_net: i128,
}

impl BaselineComparison {
    /// Compares the runs' honest workers and last merged models.
    pub fn new(baseline: &Report, honest_only: &Report, run: &Report) -> Self {
        let last = |r: &Report| r.rounds.iter().rev().find_map(|x| x.merged_val_loss);
        let honest = |r: &Report| -> i128 {
            r.nodes
                .iter()
                .filter(|n| n.role == "honest")
                .map(net_of)
                .sum()
        };
        BaselineComparison {
            merged_val_loss_baseline: last(baseline),
            merged_val_loss_honest_only: last(honest_only),
            merged_val_loss: last(run),
            honest_net_baseline: honest(baseline),
            honest_net: honest(run),
        }
    }

    /// Honest workers' loss to the adversaries, in % of their no-adversary net (negative: they
    /// gained).
    pub fn honest_loss_pct(&self) -> Option<f64> {
        (self.honest_net_baseline > 0).then(|| {
            100.0 * (self.honest_net_baseline - self.honest_net) as f64
                / self.honest_net_baseline as f64
        })
    }

    /// The merged model's validation loss against the twin run, in % (positive: worse).
    /// Informational: the twin merges the adversaries' identities' honest work too.
    pub fn val_loss_change_pct(&self) -> Option<f64> {
        pct_change(self.merged_val_loss, self.merged_val_loss_baseline)
    }

    /// The merged model's validation loss against the honest workers alone, in % (positive:
    /// worse) — what the adversaries' presence did to the model.
    pub fn val_loss_change_vs_honest_only_pct(&self) -> Option<f64> {
        pct_change(self.merged_val_loss, self.merged_val_loss_honest_only)
    }

    /// The model target (issue 16): the merged validation loss is at most 2 % above the
    /// honest workers' own; `None` when either run has no merged model.
    pub fn model_target_met(&self) -> Option<bool> {
        self.val_loss_change_vs_honest_only_pct().map(|p| p <= 2.0)
    }
}

fn pct_change(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 && a.is_finite() => Some(100.0 * (a / b - 1.0)),
        _ => None,
    }
}

/// One worker trained alone (`magnet-worker solo`).
#[derive(Clone, Debug, Serialize)]
pub struct SoloRow {
    /// Worker moniker whose home, shard and settings were used.
    pub moniker: String,
    /// Inner steps trained.
    pub steps: u64,
    /// Validation loss on the job's evaluation split.
    pub val_loss: f64,
}

/// One DiLoCo round.
#[derive(Clone, Debug, Serialize)]
pub struct RoundRow {
    /// Round.
    pub round: u64,
    /// Leader moniker (as recorded on chain).
    pub leader: String,
    /// Accepted participants (monikers) and weights (ppm).
    pub accepted: Vec<(String, u64)>,
    /// Rejected participants and why.
    pub rejected: Vec<(String, String)>,
    /// Δ bytes uploaded to the leader.
    pub upload_bytes: u64,
    /// Merged-model bytes every participant downloads (fp32 parameters + momentum).
    pub merged_val_loss: Option<f64>,
    /// Mean validation loss of the participants' local models.
    pub mean_local_val_loss: Option<f64>,
}

/// One node.
#[derive(Clone, Debug, Serialize)]
pub struct NodeRow {
    /// Moniker.
    pub moniker: String,
    /// Node id.
    pub node_id: String,
    /// Operator.
    pub operator: String,
    /// Tier.
    pub tier: String,
    /// Per epoch: contribution status, quality, compute.
    pub contributions: Vec<(u64, String, String, String)>,
    /// Reward for its own verified work (umag), over the settled epochs.
    pub reward: u128,
    /// Pay for honest evaluations of others' work (umag), over the settled epochs.
    pub evaluator_pay: u128,
    /// API revenue from `--serve`'s paid requests (umag): lineage shares and the server's
    /// part of each settled x402 payment.
    #[serde(default)]
    pub api_revenue: u128,
    /// Slashes: offence and amount.
    pub slashes: Vec<(String, u128)>,
    /// `none`, a fault, or an adversary kind.
    pub fault: String,
    /// `honest`, a fault, an adversary kind, or `unsplit`.
    pub role: String,
    /// Bond (umag).
    pub bond: u128,
}

/// One settled epoch.
#[derive(Clone, Debug, Serialize)]
pub struct EpochRow {
    /// Epoch.
    pub epoch: u64,
    /// The epoch's reward pool.
    pub pool: u128,
    /// Its contributors' part (the rest goes to evaluators).
    pub contributor_pool: u128,
    /// Contributor payouts: operator (moniker) and amount.
    pub contributors: Vec<(String, u128)>,
    /// Σ payouts (contributors and evaluators).
    pub paid: u128,
    /// Dust to the community pool.
    pub dust: u128,
}

fn u(v: &Value) -> u128 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_u64().map(u128::from))
        .unwrap_or(0)
}

fn node_infos(workers: &[Worker]) -> Vec<crate::devnet_research::NodeInfo> {
    workers
        .iter()
        .map(|w| crate::devnet_research::NodeInfo {
            moniker: w.moniker.clone(),
            home: w.home.clone(),
            node_id: w.node_id.clone(),
            operator: w.operator.clone(),
        })
        .collect()
}

pub(crate) async fn q(c: &ChainClient, path: &str, data: &str) -> Result<Value> {
    let b = c.query(path, data.as_bytes().to_vec()).await?;
    Ok(serde_json::from_slice(&b)?)
}

/// Runs the devnet; returns the report (also written under `--out`).
pub fn run(mut a: DevnetArgs, magnetd: &Path) -> Result<Report> {
    if a.workers == 0 {
        bail!("--workers must be at least 1");
    }
    let asked = a.clone();
    // Adversaries are extra workers with a fault, after the honest ones.
    let adversaries = parse_adversaries(&a.adversaries)?;
    let roster = match (a.honest_twin, a.honest_only) {
        (true, true) => bail!("a run is the honest twin or the honest-only run, not both"),
        (true, false) => Roster::Twin,
        (false, true) => Roster::HonestOnly,
        (false, false) => Roster::Adversarial,
    };
    let mut slots = plan_slots(a.workers, &adversaries, roster);
    if a.storage_nodes > 0 && a.storage_nodes < 6 {
        bail!(
            "--storage-nodes {}: stripes are RS(4,2), six distinct holders; use 0 or at least 6",
            a.storage_nodes
        );
    }
    if a.kill_storage > 2 {
        bail!(
            "--kill-storage {}: RS(4,2) survives the loss of 2 holders per stripe, not more",
            a.kill_storage
        );
    }
    if a.kill_storage > a.storage_nodes {
        bail!(
            "--kill-storage {} exceeds --storage-nodes {}",
            a.kill_storage,
            a.storage_nodes
        );
    }
    let trainers = slots.len();
    for _ in 0..a.storage_nodes {
        slots.push(Slot {
            tier: STORAGE_TIER.0,
            bond: STORAGE_TIER.1,
            fault: "none".into(),
            role: "storage".into(),
        });
    }
    for (i, s) in slots.iter().enumerate().skip(a.workers) {
        if s.fault != "none" {
            a.faults.push(format!("{i}:{}", s.fault));
        }
    }
    a.workers = slots.len();
    if a.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    let faults = parse_faults(&a.faults, a.workers)?;
    let mut kills = parse_kills(&a.kills, a.workers)?;
    let worker_bin = find_worker_bin(&a.worker_bin)?;
    let out = &a.out;
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        if !a.force {
            bail!(
                "{} exists and is not empty: pick another --out or pass --force",
                out.display()
            );
        }
        std::fs::remove_dir_all(out)?;
    }
    std::fs::create_dir_all(out.join("data"))?;
    let out = std::fs::canonicalize(out)?;
    let research = a
        .research
        .as_deref()
        .map(|s| crate::devnet_research::prepare(s, &out))
        .transpose()?;
    let baseline = if a.baseline && !adversaries.is_empty() {
        let mut b = asked.clone();
        b.baseline = false;
        b.serve = false;
        b.research = None;
        b.honest_twin = true;
        b.exit_when_done = true;
        b.force = true;
        b.out = out.join("baseline");
        eprintln!(
            "devnet: the no-adversary baseline first (the same identities, every adversary \
             playing honest) under {}",
            b.out.display()
        );
        let twin = run(b.clone(), magnetd).context("the --baseline run")?;
        b.honest_twin = false;
        b.honest_only = true;
        b.out = out.join("honest-only");
        eprintln!(
            "devnet: the honest workers alone (no adversary at all, the merged model's \
             reference) under {}",
            b.out.display()
        );
        let alone = run(b, magnetd).context("the --baseline honest-only run")?;
        Some((twin, alone))
    } else {
        None
    };
    let corpus_src = a
        .corpus
        .clone()
        .unwrap_or_else(|| PathBuf::from("data/text/kjv.txt"));
    let text = std::fs::read_to_string(&corpus_src).with_context(|| {
        format!(
            "reading the corpus {} (run from the repository root or pass --corpus)",
            corpus_src.display()
        )
    })?;
    let corpus = out.join("data/corpus.txt");
    let part: String = text
        .lines()
        .take(a.corpus_lines)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&corpus, part)?;
    let tokenizer = out.join("data/tokenizer.json");
    let t0 = Instant::now();
    eprintln!(
        "devnet: training the job's tokenizer on {} lines",
        a.corpus_lines
    );
    run_cmd(
        Command::new(&worker_bin)
            .args(["tokenizer", "train", "--vocab-size", "512", "--corpus"])
            .arg(&corpus)
            .arg("--out")
            .arg(&tokenizer),
        "magnet-worker tokenizer train",
    )?;

    // Chain home.
    let chain = out.join("chain");
    let rpc = format!("127.0.0.1:{}", a.rpc_port);
    let rpc_url = format!("http://{rpc}");
    let md = |args: &[&str]| -> Result<String> {
        let mut c = Command::new(magnetd);
        c.arg("--home").arg(&chain).args(args);
        run_cmd(&mut c, &format!("magnetd {}", args.join(" ")))
    };
    md(&[
        "init",
        "devnet",
        "--chain-id",
        CHAIN_ID,
        "--rpc-laddr",
        &format!("tcp://{rpc}"),
    ])?;

    // Workers' homes and keys.
    let total_rounds_estimate = (a.epochs + 1) * a.epoch_secs / a.blocks_per_round.max(1) + 2;
    let mut workers = Vec::new();
    for (i, slot) in slots.iter().enumerate() {
        let tier = slot.tier;
        let home = out.join(format!("w{i}"));
        let fault = faults.get(&i).cloned().unwrap_or_else(|| "none".into());
        let s = run_cmd(
            Command::new(&worker_bin)
                .arg("init")
                .arg("--home")
                .arg(&home)
                .args(["--moniker", &format!("w{i}")])
                .args(["--rpc", &rpc_url])
                .args(["--p2p", &format!("127.0.0.1:{}", a.p2p_port as usize + i)])
                .args(["--tier", tier])
                .arg("--corpus")
                .arg(&corpus)
                .arg("--tokenizer")
                .arg(&tokenizer)
                .args(["--shard", &format!("{}/{trainers}", i.min(trainers - 1))])
                .args(["--inner-steps", &a.inner_steps.to_string()])
                .args(["--batch-size", &a.batch_size.to_string()])
                .args(["--lr", &a.lr.to_string()])
                .args(["--commit-lead-secs", &(TAIL + 4).to_string()])
                .args(["--blocks-per-round", &a.blocks_per_round.to_string()])
                .args([
                    "--round-ms",
                    &(a.blocks_per_round * 1000 * 3 / 4).to_string(),
                ])
                .args([
                    "--schedule-steps",
                    &(total_rounds_estimate * u64::from(a.inner_steps)).to_string(),
                ])
                .args(["--fault", &fault])
                .args(["--disk-test-mb", "4"])
                // Storage nodes run the SSD test at init (a short one: the devnet's machine is
                // busy training; the chain's thresholds apply to its figures).
                .args(["--ssd-test-mb", "16", "--ssd-test-secs", "1"]),
            &format!("magnet-worker init (w{i})"),
        )?;
        let r: Value = serde_json::from_str(&s).context("magnet-worker init output")?;
        workers.push(Worker {
            home,
            moniker: format!("w{i}"),
            tier: tier.to_string(),
            operator: r["operator"].as_str().unwrap_or_default().to_string(),
            node: r["node_address"].as_str().unwrap_or_default().to_string(),
            node_id: r["node_id"].as_str().unwrap_or_default().to_string(),
            fault: fault.clone(),
            // `lost-ack` is an honest node on a bad link: it keeps its `honest` role (and the
            // report's honest-node checks).
            role: if fault == "none"
                || fault == "lost-ack"
                || fault == "stripe-only"
                || slot.role != "honest"
            {
                slot.role.clone()
            } else {
                fault.clone()
            },
            bond: slot.bond,
            child: None,
        });
        let node_addr = r["node_address"].as_str().unwrap_or_default().to_string();
        let bond = slot.bond;
        md(&[
            "genesis",
            "add-account",
            &workers[i].operator,
            &format!("{}umag", 2 * bond + 100 * MAG),
        ])?;
        md(&[
            "genesis",
            "add-account",
            &node_addr,
            &format!("{}umag", MAG),
        ])?;
    }
    // The devnet's genesis sets a zero minimum gas price (see `devnet_auth_params`): the
    // workers pay no fee, as before ADR 0097, so their balances measure only the incentives.
    for w in &workers {
        set_worker_toml(&w.home, "chain", "gas_price", "0")?;
    }
    // A colluding evaluator's partner.
    for (i, w) in workers.iter().enumerate() {
        if w.fault == "collude" {
            let partner = &workers[collude_partner(&slots, i)];
            set_worker_toml(&w.home, "dev", "partner", &partner.operator)?;
            eprintln!(
                "devnet: {} colludes with {} (scores its work at the top)",
                w.moniker, partner.moniker
            );
        }
    }
    eprintln!("devnet: computing the job's base checkpoint");
    let hashes: Value = serde_json::from_str(&run_cmd(
        Command::new(&worker_bin)
            .arg("job-hash")
            .arg("--home")
            .arg(&workers[0].home),
        "magnet-worker job-hash",
    )?)?;
    let base = hashes["base_checkpoint"].as_str().unwrap_or_default();
    let eval = hashes["eval_set_hash"].as_str().unwrap_or_default();
    // The job's training spec is the workers' round setup: H, batch and sequence length, the
    // model's size and leader rule from the workers' config; the staleness policy is the merge
    // policy's default (2 merges, halving per merge). The schedule is set when the job is
    // created (its first height must lie ahead of the creating block).
    let wcfg: toml::Table =
        std::fs::read_to_string(workers[0].home.join("worker.toml"))?.parse()?;
    let wjob = wcfg.get("job").and_then(|j| j.as_table());
    let wint = |k: &str| -> Result<u32> {
        wjob.and_then(|j| j.get(k))
            .and_then(|v| v.as_integer())
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| anyhow!("worker.toml has no [job] {k}"))
    };
    let wopt = |k: &str, default: u32| -> Result<u32> {
        match wjob.and_then(|j| j.get(k)) {
            None => Ok(default),
            Some(v) => v
                .as_integer()
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| anyhow!("worker.toml's [job] {k} is not a u32")),
        }
    };
    let rule = wjob
        .and_then(|j| j.get("leader_rule"))
        .and_then(|v| v.as_str())
        .unwrap_or("hash");
    let training = magnet_jobs::state::TrainingSpec {
        inner_steps: a.inner_steps,
        batch_size: wint("batch_size")?,
        seq_len: wint("seq_len")?,
        params: hashes["params"]
            .as_u64()
            .ok_or_else(|| anyhow!("magnet-worker job-hash printed no parameter count"))?,
        first_height: 0,
        blocks_per_round: a.blocks_per_round,
        leader_rule: magnet_rounds::LeaderRule::parse(rule)
            .ok_or_else(|| anyhow!("worker.toml's leader rule {rule:?} is unknown"))?
            .as_str()
            .to_string(),
        max_staleness: 2,
        stale_decay_bps: 5_000,
        // The outer step the workers are configured with (magnet-worker's defaults when
        // worker.toml names none): on chain, leaders and auditors both take it from here.
        outer: magnet_jobs::state::OuterPolicy {
            lr_permille: wopt("outer_lr_permille", 1_000)?,
            momentum_permille: wopt("outer_momentum_permille", 0)?,
            ..Default::default()
        },
    };

    // The job's creator.
    let funder = Key::generate()?;
    // `--serve`'s paying client: a funded key in a `test` keyring under OUT/client.
    let client = if a.serve {
        let k = Key::generate()?;
        magnet_client::Keyring::open(&out.join("client"), magnet_client::KeyringBackend::Test)
            .add("client", &k)?;
        md(&[
            "genesis",
            "add-account",
            &k.address().to_string(),
            &format!("{}umag", 1_000 * MAG),
        ])?;
        Some(k)
    } else {
        None
    };
    md(&[
        "genesis",
        "add-account",
        &funder.address().to_string(),
        &format!("{}umag", 1_000_000 * MAG),
    ])?;
    let gpath = chain.join("config/genesis.json");
    let mut g: Value = serde_json::from_slice(&std::fs::read(&gpath)?)?;
    for (k, v) in devnet_app_state(a.epoch_secs)?
        .as_object()
        .ok_or_else(|| anyhow!("app state"))?
    {
        g["app_state"][k] = v.clone();
    }
    // Fees are zero on the devnet (ADR 0097, docs/devnet.md): its incentive measurements are
    // balance differences that a fee per tx would blur, and its node keys hold 1 MAG. The
    // accounts `genesis add-account` wrote stay; only the params are set.
    g["app_state"]["auth"]["params"] = devnet_auth_params()?;
    crate::genesis::write(&gpath, &g)?;

    // Start the chain.
    let chain_log = std::fs::File::create(chain.join("node.log"))?;
    let mut node = Command::new(magnetd)
        .arg("--home")
        .arg(&chain)
        .args([
            "start",
            "--block-time",
            "1s",
            "--metrics-addr",
            "off",
            "--min-gas-price",
            "0",
        ])
        .stdin(Stdio::null())
        .stdout(chain_log.try_clone()?)
        .stderr(chain_log)
        .spawn()
        .context("starting magnetd")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let res = rt.block_on(drive(
        &a,
        &out,
        &rpc_url,
        &worker_bin,
        &mut workers,
        &funder,
        client.as_ref(),
        base,
        eval,
        training,
        &mut kills,
        baseline.as_ref().map(|(t, h)| (t, h)),
        research,
    ));
    let report = match res {
        Ok(r) => r,
        Err(e) => {
            for w in &mut workers {
                if let Some(c) = w.child.as_mut() {
                    stop_child(c, Duration::from_secs(5));
                }
            }
            stop_child(&mut node, Duration::from_secs(5));
            return Err(e);
        }
    };
    for w in &mut workers {
        if let Some(c) = w.child.as_mut() {
            stop_child(c, Duration::from_secs(10));
        }
    }
    eprintln!(
        "devnet: done in {:.0} s; report at {}",
        t0.elapsed().as_secs_f64(),
        out.join("report.md").display()
    );
    if a.exit_when_done {
        stop_child(&mut node, Duration::from_secs(10));
    } else {
        eprintln!(
            "devnet: the chain is still serving at {rpc_url} (e.g. `magnetd query bank balances \
             <addr> --node {rpc_url}`); Ctrl-C stops it. Restart it later with \
             `magnetd --home {} start`.",
            chain.display()
        );
        let _ = rt.block_on(tokio::signal::ctrl_c());
        stop_child(&mut node, Duration::from_secs(10));
    }
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    a: &DevnetArgs,
    out: &Path,
    rpc_url: &str,
    worker_bin: &Path,
    workers: &mut [Worker],
    funder: &Key,
    client: Option<&Key>,
    base: &str,
    eval: &str,
    mut training: magnet_jobs::state::TrainingSpec,
    kills: &mut Vec<(KillWho, u64)>,
    baseline: Option<(&Report, &Report)>,
    research: Option<crate::devnet_research::Plan>,
) -> Result<Report> {
    let faults = parse_faults(&a.faults, workers.len())?;
    let c = ChainClient::new(rpc_url)?;
    let t = Instant::now();
    loop {
        if let Ok(s) = c.status().await {
            if s.sync_info.latest_block_height.value() >= 2 {
                break;
            }
        }
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "the chain did not start: see {}",
                out.join("chain/node.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Register, then create the job with round 0 scheduled a few blocks ahead, and start the
    // workers.
    for w in workers.iter() {
        let bond = w.bond;
        // `join` is idempotent (it returns the existing registration), so a join that failed
        // on a slow node (inclusion timeout, a dropped RPC connection) is simply run again.
        let mut attempt = 1;
        loop {
            let r = run_cmd(
                Command::new(worker_bin)
                    .arg("join")
                    .arg("--home")
                    .arg(&w.home)
                    .args(["--bond", &bond.to_string()]),
                &format!("magnet-worker join ({})", w.moniker),
            );
            match r {
                Ok(_) => break,
                Err(e) if attempt < 3 => {
                    eprintln!("devnet: {e:#}; trying again ({attempt}/3 failed)");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    // Create the job: its training spec fixes round 0 a few blocks ahead of the block the
    // create tx lands in (the chain refuses a first height at or below it).
    let fee = FeeSpec {
        amount: Coins::new(),
        gas_limit: 2_000_000,
    };
    let g = c.http();
    let genesis: tendermint::Genesis<Value> = tendermint_rpc::Client::genesis(g).await?;
    let genesis_time = u64::try_from(genesis.genesis_time.unix_timestamp()).unwrap_or(0);
    let deadline = genesis_time + (a.epochs + 4) * a.epoch_secs;
    let hexa = |s: &str| -> Result<[u8; 32]> {
        hex::decode(s)?
            .try_into()
            .map_err(|_| anyhow!("{s} is not a 32-byte hash"))
    };
    // Eight blocks for the workers to start, plus two for the create tx to land.
    let h = c.status().await?.sync_info.latest_block_height.value();
    let first_height = h + 10;
    training.first_height = first_height;
    let msg = magnet_jobs::msgs::create_training_job(
        &funder.address(),
        "bitnet-lm",
        hexa(eval)?,
        hexa(base)?,
        1_000 * MAG,
        deadline,
        Some(&training),
    );
    let r = c
        .sign_and_broadcast(
            funder,
            vec![cosmrs::Any {
                type_url: msg.type_url,
                value: msg.value,
            }],
            "devnet job",
            &fee,
        )
        .await?;
    let tx = c
        .wait_tx(&r.hash.to_string(), Duration::from_secs(30))
        .await?;
    if tx.tx_result.code.is_err() {
        bail!("MsgCreateJob failed: {}", tx.tx_result.log);
    }
    let mut research = research.map(crate::devnet_research::Driver::new);
    if let Some(d) = research.as_mut() {
        // Registered now, so its challenge window runs while the workers start.
        let infos = node_infos(workers);
        d.step(&c, funder, &infos[0], false).await?;
    }
    let jobs = q(&c, "/magnet.jobs.v1/jobs", "").await?;
    let job = jobs
        .as_array()
        .and_then(|j| j.last())
        .and_then(|j| j["id"].as_u64())
        .ok_or_else(|| anyhow!("no job on chain after MsgCreateJob"))?;
    eprintln!(
        "devnet: job {job} created (H {}, batch {} × {} tokens, {} parameters, rounds every {} \
         blocks from height {first_height}, leader rule {})",
        training.inner_steps,
        training.batch_size,
        training.seq_len,
        training.params,
        training.blocks_per_round,
        training.leader_rule
    );

    // The workers share this machine: split its cores between them (a worker's kernels
    // would otherwise each start one thread per core and thrash), unless the user chose.
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let trainers = workers.iter().filter(|w| w.role != "storage").count();
        (cores / trainers.max(1)).max(1).to_string()
    });
    for w in workers.iter_mut() {
        let p = w.home.join("worker.toml");
        let mut t: toml::Table = std::fs::read_to_string(&p)?.parse()?;
        if let Some(j) = t.get_mut("job").and_then(|j| j.as_table_mut()) {
            j.insert("id".into(), toml::Value::Integer(job as i64));
            j.insert(
                "first_height".into(),
                toml::Value::Integer(first_height as i64),
            );
            j.insert("eval_windows".into(), toml::Value::Integer(EVAL_WINDOWS));
        }
        std::fs::write(&p, toml::to_string_pretty(&t)?)?;
        let log = std::fs::File::create(w.home.join("worker.log"))?;
        w.child = Some(
            Command::new(worker_bin)
                .arg("run")
                .arg("--home")
                .arg(&w.home)
                .env("RUST_LOG", "info")
                .env("RAYON_NUM_THREADS", &threads)
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}", w.moniker))?,
        );
    }
    eprintln!(
        "devnet: {} workers running; round 0 starts at height {first_height}; \
         {} epochs of {} s to settle",
        workers.len(),
        a.epochs,
        a.epoch_secs
    );

    // The first epoch with work: round 0 plus two rounds of training must fit before its
    // commit window closes (block time is genesis + height seconds on the devnet).
    let commit = commit_window(a.epoch_secs);
    let ready = first_height + 2 * a.blocks_per_round;
    let e0 = ready / a.epoch_secs + u64::from(ready % a.epoch_secs + TAIL + 4 > commit);
    let wanted: Vec<u64> = (e0..e0 + a.epochs).collect();
    eprintln!("devnet: settling epochs {wanted:?}");
    // Watch until every asked epoch is settled.
    let limit = Duration::from_secs((e0 + a.epochs + 3) * a.epoch_secs + 120);
    let started = Instant::now();
    let mut last_line = String::new();
    let mut killed = Vec::new();
    let mut storage_killed = false;
    loop {
        if started.elapsed() > limit {
            bail!(
                "epochs not settled after {} s: see the worker logs under {}",
                limit.as_secs(),
                out.display()
            );
        }
        let st = c.status().await?;
        let height = st.sync_info.latest_block_height.value();
        let time = u64::try_from(st.sync_info.latest_block_time.unix_timestamp()).unwrap_or(0);
        let epoch = time.saturating_sub(genesis_time) / a.epoch_secs;
        let round = height.saturating_sub(first_height) / a.blocks_per_round;
        // Kills.
        let mut fired = Vec::new();
        let mut postponed = Vec::new();
        for (k, (who, r)) in kills.iter().enumerate() {
            let leader = || {
                workers.iter().position(|w| {
                    read_rounds(&w.home)
                        .iter()
                        .any(|l| l.kind == "announced" && l.round == *r)
                })
            };
            let target = match who {
                KillWho::Worker(i) => (round >= *r && height >= first_height).then_some(*i),
                // A leader that carries a `--fault` is spared (its fault is under test, and
                // killing it would hide it): the kill moves to the next round's leader.
                KillWho::Leader => match leader() {
                    Some(l) if faults.contains_key(&l) => {
                        postponed.push(k);
                        None
                    }
                    // A postponed leader kill never lands on the round a member kill targets:
                    // killing both would leave that round nobody to merge it.
                    Some(_) if kills.iter().any(|(w, mr)| *w == KillWho::Member && mr == r) => {
                        postponed.push(k);
                        None
                    }
                    l => l,
                },
                KillWho::Member => leader().and_then(|l| {
                    (0..workers.len())
                        .rev()
                        .find(|&i| i != l && workers[i].child.is_some() && !faults.contains_key(&i))
                }),
            };
            if let Some(i) = target {
                if let Some(ch) = workers[i].child.as_mut() {
                    let _ = ch.kill();
                    let _ = ch.wait();
                    eprintln!("devnet: killed {} (round {r})", workers[i].moniker);
                    killed.push((workers[i].moniker.clone(), *r));
                }
                workers[i].child = None;
                fired.push(k);
            }
        }
        for k in postponed {
            kills[k].1 += 1;
        }
        // `--kill-storage K`: the first K storage nodes die a third into the second settled
        // epoch (the only one with `--epochs 1`); their shards must stay readable.
        let into = time.saturating_sub(genesis_time) % a.epoch_secs;
        let kill_epoch = e0 + a.epochs.min(2) - 1;
        if !storage_killed && a.kill_storage > 0 && epoch == kill_epoch && into >= a.epoch_secs / 3
        {
            storage_killed = true;
            for w in workers
                .iter_mut()
                .filter(|w| w.role == "storage")
                .take(a.kill_storage)
            {
                if let Some(ch) = w.child.as_mut() {
                    let _ = ch.kill();
                    let _ = ch.wait();
                    eprintln!("devnet: killed storage node {} (epoch {epoch})", w.moniker);
                    killed.push((w.moniker.clone(), round));
                }
                w.child = None;
            }
        }
        for k in fired.into_iter().rev() {
            kills.remove(k);
        }
        // A worker that exits on its own is a failure: say which and show its log.
        for w in workers.iter_mut() {
            if let Some(ch) = w.child.as_mut() {
                if let Ok(Some(status)) = ch.try_wait() {
                    let log =
                        std::fs::read_to_string(w.home.join("worker.log")).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    bail!(
                        "{} exited ({status}); the end of {}:\n{}",
                        w.moniker,
                        w.home.join("worker.log").display(),
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    );
                }
            }
        }
        let settled = {
            let mut n = 0;
            for e in &wanted {
                let s = q(&c, "/magnet.rewards.v1/settlement", &e.to_string()).await;
                let _ = e;
                if matches!(s, Ok(ref v) if !v.is_null()) {
                    n += 1;
                }
            }
            n
        };
        let merged = workers
            .iter()
            .flat_map(|w| read_rounds(&w.home))
            .filter(|l| l.kind == "merged")
            .max_by_key(|l| l.round);
        if let Some(d) = research.as_mut() {
            let infos = node_infos(workers);
            d.step(&c, funder, &infos[0], height >= first_height + 5)
                .await
                .context("the research job (--research)")?;
        }
        let line = format!(
            "height {height} · epoch {epoch} · round {round} · settled {settled}/{}{} · last merge: {}",
            a.epochs,
            research
                .as_ref()
                .map(|d| format!(" · {}", d.progress()))
                .unwrap_or_default(),
            merged.map_or("none yet".to_string(), |m| format!(
                "round {} val loss {:.3}",
                m.round,
                m.merged_val_loss.unwrap_or(f64::NAN)
            ))
        );
        if line != last_line {
            eprintln!("devnet: {line}");
            last_line = line;
        }
        if settled == a.epochs && research.as_ref().is_none_or(|d| d.settled()) {
            break;
        }
        // A pending kill watches closely: a member trains a few tiny steps in well under the
        // 2 s poll, and must die after the announcement but before its Δ is in.
        let pause = if kills.is_empty() { 2_000 } else { 200 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    // The server: the first honest worker still running.
    let server = workers
        .iter()
        .find(|w| w.child.is_some() && w.fault == "none" && w.role == "honest")
        .unwrap_or(&workers[0]);
    let serving = match client {
        Some(k) => Some(
            crate::devnet_serve::run(
                &c,
                out,
                rpc_url,
                worker_bin,
                job,
                (&server.moniker, &server.home, &server.operator),
                (k, &out.join("client")),
                a.price_per_token,
            )
            .await
            .context("the serving phase (--serve)")?,
        ),
        None => None,
    };
    let mut report = build_report(&c, job, workers, &wanted).await?;
    if let Some(d) = &research {
        report.research = Some(crate::devnet_research::report(&c, d, &node_infos(workers)).await?);
    }
    if let Some(sv) = serving {
        for n in &mut report.nodes {
            n.api_revenue = sv.revenue.get(&n.operator).copied().unwrap_or(0);
        }
        report.serving = Some(sv);
    }
    if let Some((b, alone)) = baseline {
        let hijacks: BTreeMap<String, (u64, u64)> = report
            .adversaries
            .iter()
            .map(|r| (r.moniker.clone(), (r.records_tried, r.records_refused)))
            .collect();
        let first = std::mem::take(&mut report.adversaries);
        report.adversaries = adversary_rows(&report.nodes, &hijacks, Some(&b.nodes))
            .into_iter()
            .map(|r| match first.iter().find(|o| o.moniker == r.moniker) {
                // A collusion is measured by what its scores moved (`build_report`), never
                // against its twin: the twin's honest training differs by per-Δ noise that
                // swamps the effect (the 14-worker run: +18.7 M with 0 slots on its partner).
                Some(o) if r.kind == "collude" => o.clone(),
                _ => r,
            })
            .collect();
        report.baseline = Some(BaselineComparison::new(b, alone, &report));
    }
    report.killed = killed;
    report.solo = solo_reference(worker_bin, &workers[0], &report, a.inner_steps)?;
    write_report(out, &report, workers)?;
    Ok(report)
}

async fn build_report(
    c: &ChainClient,
    job: u64,
    workers: &[Worker],
    wanted: &[u64],
) -> Result<Report> {
    let by_operator: BTreeMap<String, String> = workers
        .iter()
        .map(|w| (w.operator.clone(), w.moniker.clone()))
        .collect();
    let name = |op: &str| {
        by_operator
            .get(op)
            .cloned()
            .unwrap_or_else(|| op.to_string())
    };
    // Rejections name the producer's node account.
    let by_node: BTreeMap<String, String> = workers
        .iter()
        .map(|w| (w.node.clone(), w.moniker.clone()))
        .collect();
    let node_name = |node: &str| {
        by_node
            .get(node)
            .cloned()
            .unwrap_or_else(|| node.to_string())
    };
    let logs: Vec<RoundLine> = workers.iter().flat_map(|w| read_rounds(&w.home)).collect();
    let lineage = q(c, "/magnet.jobs.v1/lineage", &job.to_string()).await?;
    let mut rounds = Vec::new();
    for r in lineage["rounds"].as_array().cloned().unwrap_or_default() {
        let round = r["round"].as_u64().unwrap_or(0);
        let locals: Vec<&RoundLine> = logs
            .iter()
            .filter(|l| l.kind == "local" && l.round == round)
            .collect();
        let accepted: Vec<(String, u64)> = r["accepted"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|x| {
                (
                    name(x["operator"].as_str().unwrap_or("")),
                    x["weight_ppm"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        // The leader's merge line names the Δ hashes it accepted; each worker's local line
        // carries its Δ hash and the validation loss of the model it came from.
        let merge_line = logs.iter().find(|l| l.kind == "merged" && l.round == round);
        let hashes: Vec<&str> = merge_line
            .map(|m| {
                m.accepted
                    .iter()
                    .filter_map(|a| a["delta_hash"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let finite: Vec<f64> = logs
            .iter()
            .filter(|l| l.kind == "local")
            .filter(|l| l.delta_hash.as_deref().is_some_and(|h| hashes.contains(&h)))
            .filter_map(|l| l.local_val_loss)
            .filter(|x| x.is_finite())
            .collect();
        rounds.push(RoundRow {
            round,
            leader: name(r["leader"].as_str().unwrap_or("")),
            rejected: r["rejected"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|x| {
                    (
                        node_name(x["node"].as_str().unwrap_or("")),
                        x["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect(),
            accepted,
            upload_bytes: locals.iter().filter_map(|l| l.upload_bytes).sum(),
            merged_val_loss: logs
                .iter()
                .find(|l| l.kind == "merged" && l.round == round)
                .and_then(|l| l.merged_val_loss),
            mean_local_val_loss: (!finite.is_empty())
                .then(|| finite.iter().sum::<f64>() / finite.len() as f64),
        });
    }
    let settlements = q(c, "/magnet.rewards.v1/settlements", "").await?;
    let mut epochs = Vec::new();
    let mut rewards: BTreeMap<String, u128> = BTreeMap::new();
    let mut eval_pay: BTreeMap<String, u128> = BTreeMap::new();
    let mut storage_pay: BTreeMap<String, u128> = BTreeMap::new();
    for s in settlements.as_array().cloned().unwrap_or_default() {
        if !s["epoch"].as_u64().is_some_and(|e| wanted.contains(&e)) {
            continue;
        }
        let mut paid = 0u128;
        let contributors = s["contributors"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|p| (name(p["operator"].as_str().unwrap_or("")), u(&p["amount"])))
            .collect();
        for (list, into) in [
            ("contributors", &mut rewards),
            ("evaluators", &mut eval_pay),
            ("storage", &mut storage_pay),
        ] {
            for p in s[list].as_array().into_iter().flatten() {
                let amt = u(&p["amount"]);
                paid += amt;
                *into
                    .entry(p["operator"].as_str().unwrap_or("").to_string())
                    .or_default() += amt;
            }
        }
        epochs.push(EpochRow {
            epoch: s["epoch"].as_u64().unwrap_or(0),
            pool: u(&s["pool"]),
            contributor_pool: u(&s["contributor_pool"]),
            contributors,
            paid,
            dust: u(&s["dust"]),
        });
    }
    let slashes = q(c, "/magnet.slashing.v1/records", "").await?;
    let mut nodes = Vec::new();
    for w in workers {
        let mut contributions = Vec::new();
        for e in &epochs {
            let ep = q(c, "/magnet.contrib.v1/epoch", &e.epoch.to_string()).await?;
            for x in ep["contributions"].as_array().cloned().unwrap_or_default() {
                if x["operator"].as_str() == Some(w.operator.as_str()) {
                    contributions.push((
                        e.epoch,
                        x["status"].as_str().unwrap_or("").to_string(),
                        u(&x["quality"]).to_string(),
                        u(&x["compute"]).to_string(),
                    ));
                }
            }
        }
        nodes.push(NodeRow {
            moniker: w.moniker.clone(),
            node_id: w.node_id.clone(),
            operator: w.operator.clone(),
            tier: w.tier.clone(),
            contributions,
            reward: rewards.get(&w.operator).copied().unwrap_or(0),
            evaluator_pay: eval_pay.get(&w.operator).copied().unwrap_or(0),
            api_revenue: 0,
            slashes: slashes
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter(|s| s["offender"].as_str() == Some(w.operator.as_str()))
                .map(|s| (s["offence"].to_string(), u(&s["amount"])))
                .collect(),
            fault: w.fault.clone(),
            role: w.role.clone(),
            bond: w.bond,
        });
    }
    let hijacks: BTreeMap<String, (u64, u64)> = workers
        .iter()
        .map(|w| {
            let lines: Vec<RoundLine> = read_rounds(&w.home)
                .into_iter()
                .filter(|l| l.kind == "hijack")
                .collect();
            let refused = lines.iter().filter(|l| l.refused == Some(true)).count() as u64;
            (w.moniker.clone(), (lines.len() as u64, refused))
        })
        .collect();
    let mut adversaries = adversary_rows(&nodes, &hijacks, None);
    let audits: Vec<AuditRow> = q(c, "/magnet.jobs.v1/audits", &job.to_string())
        .await
        .unwrap_or(Value::Null)
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| !a["challenge"].is_null())
        .map(|a| AuditRow {
            round: a["round"].as_u64().unwrap_or(0),
            leader: workers
                .iter()
                .find(|w| Some(w.operator.as_str()) == a["leader"].as_str())
                .map_or_else(|| a["leader"].to_string(), |w| w.moniker.clone()),
            outcome: a["outcome"].as_str().unwrap_or_default().to_string(),
            field: a["challenge"]["field"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
        .collect();
    let (storage, stripes) = storage_rows(c, workers, wanted, &storage_pay, &slashes).await?;
    // How often each colluder sat on its partner's panel.
    for w in workers.iter().filter(|w| w.fault == "collude") {
        let t: toml::Table = std::fs::read_to_string(w.home.join("worker.toml"))?.parse()?;
        let partner = t
            .get("dev")
            .and_then(|d| d.get("partner"))
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_string();
        let mut slots = 0;
        let mut partner_gain: i128 = 0;
        let partner_name = workers
            .iter()
            .find(|x| x.operator == partner)
            .map_or(partner.clone(), |x| x.moniker.clone());
        for e in &epochs {
            let a = q(
                c,
                "/magnet.contrib.v1/assignments",
                &format!("{}/{job}/{partner}", e.epoch),
            )
            .await
            .unwrap_or(Value::Null);
            let mut panel = Vec::new();
            for x in a.as_array().into_iter().flatten() {
                let n = x[1]["slots"].as_u64().unwrap_or(0);
                let colluder = x[0].as_str() == Some(w.operator.as_str());
                if colluder {
                    slots += n;
                }
                if let Some(score) = x[1]["score"].as_i64() {
                    panel.push((score, n, colluder));
                }
            }
            let paid = e
                .contributors
                .iter()
                .find(|(m, _)| *m == partner_name)
                .map_or(0, |(_, a)| *a);
            partner_gain += collusion_gain(&panel, paid, MIN_EVALUATIONS, MAX_QUALITY);
        }
        for r in adversaries.iter_mut().filter(|r| r.moniker == w.moniker) {
            r.partner_slots = slots;
            // The collusion's effect: the partner's extra reward from the colluder's scores,
            // minus what the colluder was slashed; everything else it earned (its own honest
            // training and honest evaluations) is honest play.
            let slashed = r.slashed as i128;
            r.honest_reference = r.earned as i128;
            r.reference_basis = format!(
                "its own honest earnings; {partner_name}'s gain from its scores: {partner_gain}"
            );
            r.net_gain = partner_gain - slashed;
            r.target_met = r.meets_target();
        }
    }
    Ok(Report {
        chain_id: CHAIN_ID.into(),
        job,
        rounds,
        nodes,
        epochs,
        killed: Vec::new(),
        solo: None,
        adversaries,
        baseline: None,
        audits,
        storage,
        stripes,
        serving: None,
        research: None,
    })
}

/// The report's "Serving" section (`--serve`, ADR 0110): every check of the x402 phase and
/// the settled payments.
fn serving_section(sv: &crate::devnet_serve::ServingReport) -> String {
    let mut md = format!(
        "\n## Serving (x402)\n\n{} served `{}` at {} ({} umag per token). Every payment is a \
         signed `MsgPayForInference` the server settled on chain before answering; the balances \
         below are read at the block before and the block of each settlement.\n\n\
         | check | result | detail |\n|---|---|---|\n",
        sv.server, sv.model, sv.url, sv.price_per_token
    );
    for c in &sv.checks {
        md.push_str(&format!(
            "| {} | {} | {} |\n",
            c.what,
            if c.passed { "ok" } else { "FAILED" },
            c.detail.replace('|', "/")
        ));
    }
    md.push_str(
        "\n| settlement tx | height | paid (umag) | to lineage holders |\n|---|---|---|---|\n",
    );
    for p in &sv.payments {
        md.push_str(&format!(
            "| `{}` | {} | {} | {} |\n",
            p.tx,
            p.height,
            p.amount,
            p.to_holders
                .iter()
                .map(|(a, x)| format!("{a}: {x}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    md
}

/// The storage table: each storage node's custody record on chain, its keeper's repair
/// figures, what it was paid for custody and slashed; and the run's stripes at the end.
async fn storage_rows(
    c: &ChainClient,
    workers: &[Worker],
    wanted: &[u64],
    storage_pay: &BTreeMap<String, u128>,
    slashes: &Value,
) -> Result<(Vec<StorageRow>, Option<StripeSummary>)> {
    let keepers: Vec<&Worker> = workers.iter().filter(|w| w.role == "storage").collect();
    if keepers.is_empty() {
        return Ok((Vec::new(), None));
    }
    let mut rows = Vec::new();
    for w in &keepers {
        let h = q(c, "/magnet.custody.v1/holder", &w.node).await?;
        let k: Value = std::fs::read(w.home.join("keeper.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        let epochs: Vec<&Value> = h["epochs"].as_array().into_iter().flatten().collect();
        let custody = epochs
            .iter()
            .filter(|e| e["epoch"].as_u64().is_some_and(|x| wanted.contains(&x)))
            .map(|e| u(&e["custody_bytes"]))
            .sum();
        let count = |f: &str| {
            epochs
                .iter()
                .map(|e| e[f].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
        rows.push(StorageRow {
            moniker: w.moniker.clone(),
            node: w.node.clone(),
            killed: w.child.is_none(),
            shards_held: h["shards"].as_array().map_or(0, |a| a.len() as u64),
            audits_passed: count("proven"),
            audits_failed: count("failed"),
            shards_repaired: k["repaired_shards"].as_u64().unwrap_or(0),
            bytes_repaired: k["repaired_bytes"].as_u64().unwrap_or(0),
            custody,
            reward: storage_pay.get(&w.operator).copied().unwrap_or(0),
            slashed: slashes
                .as_array()
                .into_iter()
                .flatten()
                .filter(|s| s["offender"].as_str() == Some(w.operator.as_str()))
                .map(|s| u(&s["amount"]))
                .sum(),
        });
    }
    let dead: Vec<&str> = keepers
        .iter()
        .filter(|w| w.child.is_none())
        .map(|w| w.node.as_str())
        .collect();
    // Every stripe on chain has at least one holder among the storage nodes: gather them from
    // the holders' views.
    let mut objects = std::collections::BTreeSet::new();
    for w in &keepers {
        let h = q(c, "/magnet.custody.v1/holder", &w.node).await?;
        for s in h["shards"].as_array().into_iter().flatten() {
            if let Some(o) = s["object"].as_str() {
                objects.insert(o.to_string());
            }
        }
    }
    let mut all = Vec::new();
    for o in &objects {
        let s = q(c, "/magnet.custody.v1/stripe", o).await?;
        if !s.is_null() {
            all.push(s);
        }
    }
    let mut sum = StripeSummary::default();
    for st in &all {
        sum.registered += 1;
        match st["kind"].as_str() {
            Some("delta") => sum.deltas += 1,
            Some("checkpoint") => sum.checkpoints += 1,
            _ => {}
        }
        let holders: Vec<&str> = st["shards"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["holder"].as_str())
            .collect();
        let lost = holders.iter().filter(|h| dead.contains(h)).count();
        if lost > 0 {
            sum.degraded += 1;
        }
        if holders.len().saturating_sub(lost) < st["k"].as_u64().unwrap_or(4) as usize {
            sum.unrecoverable += 1;
        }
    }
    let mut lost = std::collections::BTreeSet::new();
    for w in &keepers {
        let k: Value = std::fs::read(w.home.join("keeper.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        for o in k["unrecoverable"].as_array().into_iter().flatten() {
            if let Some(o) = o.as_str() {
                lost.insert(o.to_string());
            }
        }
    }
    sum.lost = lost.len() as u64;
    sum.stripe_reads = workers
        .iter()
        .flat_map(|w| read_rounds(&w.home))
        .filter(|l| l.kind == "stripe_read")
        .count() as u64;
    Ok((rows, Some(sum)))
}

/// Trains the first worker's engine alone for `merged rounds × H` steps (its own process, so
/// the validator links no ML code). `None` when nothing merged.
fn solo_reference(
    worker_bin: &Path,
    w: &Worker,
    r: &Report,
    inner_steps: u32,
) -> Result<Option<SoloRow>> {
    let steps = r.rounds.len() as u64 * u64::from(inner_steps);
    if steps == 0 {
        return Ok(None);
    }
    eprintln!(
        "devnet: training {} alone for {steps} steps (the single-worker reference)",
        w.moniker
    );
    let out: Value = serde_json::from_str(&run_cmd(
        Command::new(worker_bin)
            .args(["solo", "--steps", &steps.to_string(), "--home"])
            .arg(&w.home),
        "magnet-worker solo",
    )?)?;
    Ok(Some(SoloRow {
        moniker: w.moniker.clone(),
        steps,
        val_loss: out["val_loss"].as_f64().unwrap_or(f64::NAN),
    }))
}

fn write_report(out: &Path, r: &Report, workers: &[Worker]) -> Result<()> {
    std::fs::write(out.join("report.json"), serde_json::to_vec_pretty(r)?)?;
    let mut md = String::new();
    md.push_str(&format!(
        "# MAGNET devnet report\n\nChain `{}`, job {}. Every figure below is read back from the \
         chain or from the worker that measured it.\n\n## Rounds\n\n\
         | round | leader | accepted (weight ppm) | rejected | Δ bytes up | merged val loss | mean local val loss |\n\
         |---|---|---|---|---|---|---|\n",
        r.chain_id, r.job
    ));
    for x in &r.rounds {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            x.round,
            x.leader,
            x.accepted
                .iter()
                .map(|(m, w)| format!("{m} ({w})"))
                .collect::<Vec<_>>()
                .join(", "),
            x.rejected
                .iter()
                .map(|(m, why)| format!("{m}: {why}"))
                .collect::<Vec<_>>()
                .join(", "),
            x.upload_bytes,
            x.merged_val_loss.map_or("—".into(), |l| format!("{l:.4}")),
            x.mean_local_val_loss
                .map_or("—".into(), |l| format!("{l:.4}")),
        ));
    }
    if let (Some(solo), Some(last)) = (
        &r.solo,
        r.rounds.iter().rev().find_map(|x| x.merged_val_loss),
    ) {
        md.push_str(&format!(
            "\nOne worker alone ({}, {} inner steps = merged rounds × H, its own shard): val loss \
             {:.4}; the last merged model: {:.4} ({:+.2} %).\n",
            solo.moniker,
            solo.steps,
            solo.val_loss,
            last,
            100.0 * (last / solo.val_loss - 1.0)
        ));
    }
    md.push_str("\n## Nodes\n\n| node | tier | contributions (epoch: status, quality, compute) | reward for work (umag) | evaluator pay (umag) | API revenue (umag) | slashes |\n|---|---|---|---|---|---|---|\n");
    for n in &r.nodes {
        md.push_str(&format!(
            "| {} (`{}`) | {} | {} | {} | {} | {} | {} |\n",
            n.moniker,
            n.node_id,
            n.tier,
            n.contributions
                .iter()
                .map(|(e, s, q, c)| format!("{e}: {s}, q={q}, c={c}"))
                .collect::<Vec<_>>()
                .join("; "),
            n.reward,
            n.evaluator_pay,
            n.api_revenue,
            n.slashes
                .iter()
                .map(|(o, a)| format!("{o} {a}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if !r.adversaries.is_empty() {
        md.push_str(&adversary_section(r));
    }
    if !r.storage.is_empty() {
        md.push_str(&storage_section(r));
    }
    if let Some(sv) = &r.serving {
        md.push_str(&serving_section(sv));
    }
    if let Some(rs) = &r.research {
        md.push_str(&crate::devnet_research::section(rs));
    }
    md.push_str("\n## Settlements\n\n| epoch | contributor pool | paid | dust (community pool) | paid + dust = pool |\n|---|---|---|---|---|\n");
    for e in &r.epochs {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} |\n",
            e.epoch,
            e.pool,
            e.paid,
            e.dust,
            if e.paid + e.dust == e.pool {
                "yes"
            } else {
                "NO"
            }
        ));
    }
    md.push_str("\n![loss](loss.png)\n");
    std::fs::write(out.join("report.md"), md)?;
    plot(out, r, workers)
}

/// The report's "Storage" section (ADR 0107): per storage node, what it held, proved,
/// repaired and earned; and the stripes at the end.
fn storage_section(r: &Report) -> String {
    let mut md = String::from(
        "\n## Storage\n\nRS(4,2) stripes of every Δ and checkpoint on the storage nodes, \
         audited each epoch on chain (one Merkle-proven leaf per shard) and paid from the \
         storage share of the pool for audited custody (ADR 0107).\n\n\
         | node | state | shards held | audits passed | audits failed | shards repaired | \
         bytes repaired | custody (byte·epochs) | reward (umag) | slashed (umag) |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for s in &r.storage {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            s.moniker,
            if s.killed { "killed" } else { "running" },
            s.shards_held,
            s.audits_passed,
            s.audits_failed,
            s.shards_repaired,
            s.bytes_repaired,
            s.custody,
            s.reward,
            s.slashed
        ));
    }
    if let Some(t) = &r.stripes {
        md.push_str(&format!(
            "\nStripes on chain at the end: {} ({} Δs, {} checkpoints); {} still have a holder \
             among the killed nodes, {} have fewer than K live holders in good standing, and \
             repairers found {} objects with fewer than K intact shards (data lost). Leaders read \
             {} Δs from stripes because their producer served none.\n",
            t.registered,
            t.deltas,
            t.checkpoints,
            t.degraded,
            t.unrecoverable,
            t.lost,
            t.stripe_reads
        ));
    }
    md
}

/// The report's "Adversaries" section: the per-kind table and, with `--baseline`, the
/// comparison with the no-adversary run.
fn adversary_section(r: &Report) -> String {
    let paid: u128 = r.nodes.iter().map(|n| n.reward).sum();
    let taken: u128 = r
        .nodes
        .iter()
        .filter(|n| ADVERSARIES.contains(&n.role.as_str()))
        .map(|n| n.reward)
        .sum();
    let beyond: i128 = r.adversaries.iter().map(|a| a.net_gain.max(0)).sum();
    let mut md = format!(
        "\n## Adversaries\n\nEach adversary is a `gpu_compute` worker, except `sybil`: {SYBIL_SPLIT} \
         `cpu_only` identities of the tier's minimum bond, each training a quarter of the inner \
         steps (one machine split {SYBIL_SPLIT} ways), against `unsplit`, one honest `cpu_only` \
         node holding their whole bond. `collude` scores its partner's work at the top. Net = \
         reward + evaluator pay − slashes; each row's honest reference is named. Target: net \
         gain ≤ 0, or for `evalfit` a quality no higher than the best honest worker's \
         (docs/threat-model.md). Rewards for work paid to adversary workers: {taken} \
         of {paid} umag ({:.2} %; only their own accepted Δs earn); taken beyond honest play: \
         {beyond} umag.\n\n\
         | kind | node(s) | earned (umag) | slashed (umag) | honest reference (umag) | reference | net gain vs honest (umag) | target met | notes |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        if paid == 0 {
            0.0
        } else {
            100.0 * taken as f64 / paid as f64
        }
    );
    for a in &r.adversaries {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            a.kind,
            a.moniker,
            a.earned,
            a.slashed,
            a.honest_reference,
            a.reference_basis,
            a.net_gain,
            if a.target_met { "yes" } else { "NO" },
            match a.kind.as_str() {
                "evalfit" => match (a.quality_vs_best_honest, a.honest_quality_range) {
                    (Some((q, _)), Some((worst, best))) => format!(
                        "quality {q} vs the honest {worst}–{best} (bound {})",
                        a.evalfit_quality_bound().unwrap_or(best)
                    ),
                    _ => "quality not scored".to_string(),
                },
                "hijack" => format!(
                    "{}/{} own round records refused",
                    a.records_refused, a.records_tried
                ),
                "collude" => format!("{} evaluator slots on its partner's work", a.partner_slots),
                _ => String::new(),
            }
        ));
    }
    if !r.audits.is_empty() {
        md.push_str(
            "\n### Challenged merges (ADR 0089)\n\n| round | leader | challenged field | outcome |\n|---|---|---|---|\n",
        );
        for x in &r.audits {
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                x.round, x.leader, x.field, x.outcome
            ));
        }
    }
    if let Some(b) = &r.baseline {
        let pct = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:+.2} %"));
        let loss = |x: Option<f64>| x.map_or("—".to_string(), |v| format!("{v:.4}"));
        md.push_str(&format!(
            "\n### Against the no-adversary run (`--baseline`)\n\n\
             | measure | reference run | reference | with adversaries | change | target |\n|---|---|---|---|---|---|\n\
             | honest workers' net (umag) | every identity honest | {} | {} | {} | loss ≤ 5 % |\n\
             | last merged model's validation loss | the honest workers alone | {} | {} | {} | ≤ +2 %: {} |\n\
             | last merged model's validation loss | every identity honest | {} | {} | {} | (for information) |\n\n\
             The model's reference is the honest workers alone (ADR 0106): the every-identity-honest \
             run also merges the adversaries' identities' honest work (the four Sybil identities \
             train all H steps there, a quarter here), work an adversary can always withhold.\n",
            b.honest_net_baseline,
            b.honest_net,
            match b.honest_loss_pct() {
                Some(v) if v < 0.0 => format!("gained {:.2} %", -v),
                Some(v) => format!("lost {v:.2} %"),
                None => "—".to_string(),
            },
            loss(b.merged_val_loss_honest_only),
            loss(b.merged_val_loss),
            pct(b.val_loss_change_vs_honest_only_pct()),
            match b.model_target_met() {
                Some(true) => "met",
                Some(false) => "MISSED",
                None => "—",
            },
            loss(b.merged_val_loss_baseline),
            loss(b.merged_val_loss),
            pct(b.val_loss_change_pct()),
        ));
    }
    md
}

fn plot(out: &Path, r: &Report, workers: &[Worker]) -> Result<()> {
    use plotters::prelude::*;
    let merged: Vec<(f64, f64)> = r
        .rounds
        .iter()
        .filter_map(|x| x.merged_val_loss.map(|l| (x.round as f64, l)))
        .filter(|(_, l)| l.is_finite())
        .collect();
    let mut series: Vec<(String, Vec<(f64, f64)>)> = vec![("merged".into(), merged)];
    for w in workers {
        let pts: Vec<(f64, f64)> = read_rounds(&w.home)
            .iter()
            .filter(|l| l.kind == "local")
            .filter_map(|l| l.local_val_loss.map(|v| (l.round as f64, v)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        series.push((format!("{} local", w.moniker), pts));
    }
    let mut all: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    if all.is_empty() {
        return Ok(());
    }
    let solo = r.solo.as_ref().filter(|s| s.val_loss.is_finite());
    if let Some(s) = solo {
        all.push((0.0, s.val_loss));
    }
    let (x1, y0, y1) = all
        .iter()
        .fold((1.0f64, f64::MAX, f64::MIN), |(x, a, b), (px, py)| {
            (x.max(*px), a.min(*py), b.max(*py))
        });
    let path = out.join("loss.png");
    let root = BitMapBackend::new(&path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("plot: {e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "DiLoCo on the devnet: validation loss per round",
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..x1 + 0.5, (y0 - 0.05)..(y1 + 0.05))
        .map_err(|e| anyhow!("plot: {e}"))?;
    chart
        .configure_mesh()
        .x_desc("round")
        .y_desc("validation loss (nats/token)")
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    for (i, (name, pts)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let width = if i == 0 { 3 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                pts.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    if let Some(s) = solo {
        chart
            .draw_series(LineSeries::new(
                [(0.0, s.val_loss), (x1 + 0.5, s.val_loss)],
                BLACK.stroke_width(1),
            ))
            .map_err(|e| anyhow!("plot: {e}"))?
            .label(format!("{} alone, {} steps (final)", s.moniker, s.steps))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLACK));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
        .map_err(|e| anyhow!("plot: {e}"))?;
    root.present().map_err(|e| anyhow!("plot: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_and_kill_specs_parse_or_say_what_is_wrong() {
        assert_eq!(
            parse_faults(&["1:nan".into(), "2:no-reveal".into()], 3).unwrap(),
            BTreeMap::from([(1, "nan".to_string()), (2, "no-reveal".to_string())])
        );
        for bad in ["x:nan", "5:nan", "1:evil", "1"] {
            assert!(parse_faults(&[bad.into()], 3).is_err(), "{bad}");
        }
        assert_eq!(
            parse_kills(&["leader@2".into(), "1@3".into(), "member@5".into()], 3).unwrap(),
            vec![
                (KillWho::Leader, 2),
                (KillWho::Worker(1), 3),
                (KillWho::Member, 5)
            ]
        );
        for bad in ["leader", "9@1", "a@b"] {
            assert!(parse_kills(&[bad.into()], 3).is_err(), "{bad}");
        }
    }

    fn node(m: &str, role: &str, tier: &str, reward: u128, slashed: u128) -> NodeRow {
        NodeRow {
            moniker: m.into(),
            node_id: String::new(),
            operator: format!("op-{m}"),
            tier: tier.into(),
            contributions: Vec::new(),
            reward,
            evaluator_pay: 0,
            api_revenue: 0,
            slashes: if slashed > 0 {
                vec![("\"evaluator_deviation\"".into(), slashed)]
            } else {
                Vec::new()
            },
            fault: role.into(),
            role: role.into(),
            bond: 0,
        }
    }

    #[test]
    fn a_sybil_adversary_is_four_quarter_identities_beside_one_unsplit_node() {
        let s = plan_slots(3, &["collude".into(), "sybil".into()], Roster::Adversarial);
        assert_eq!(s.len(), 3 + 1 + SYBIL_SPLIT + 1);
        let sybils: Vec<&Slot> = s.iter().filter(|x| x.role == "sybil").collect();
        assert_eq!(sybils.len(), SYBIL_SPLIT);
        let unsplit = s.iter().find(|x| x.role == "unsplit").unwrap();
        assert_eq!(unsplit.fault, "none", "the unsplit node plays honest");
        assert_eq!(
            sybils.iter().map(|x| x.bond).sum::<u128>(),
            unsplit.bond,
            "the split and the unsplit node hold the same bond"
        );
        assert!(sybils.iter().all(|x| x.tier == unsplit.tier));
        // The colluder's partner is the first worker of another adversary kind.
        assert_eq!(collude_partner(&s, 3), 4);
        assert_eq!(
            collude_partner(&plan_slots(2, &["collude".into()], Roster::Adversarial), 2),
            0
        );
        // The honest twin keeps the identities and plays honest.
        let twin = plan_slots(3, &["collude".into(), "sybil".into()], Roster::Twin);
        assert_eq!(twin.len(), s.len());
        assert!(twin.iter().all(|x| x.fault == "none"));
        // The honest-only run keeps the honest workers and the unsplit node, nothing else.
        let alone = plan_slots(3, &["collude".into(), "sybil".into()], Roster::HonestOnly);
        assert_eq!(
            alone.iter().map(|x| x.role.as_str()).collect::<Vec<_>>(),
            ["honest", "honest", "honest", "unsplit"]
        );
        assert!(alone.iter().all(|x| x.fault == "none"));
        assert!(parse_adversaries(&["sybil".into(), "sybil".into()]).is_err());
        assert!(parse_adversaries(&["evil".into()]).is_err());
    }

    #[test]
    fn evalfit_within_the_honest_quality_spread_meets_its_target_and_beyond_it_does_not() {
        let scored = |mut n: NodeRow, q: &[i64]| {
            n.contributions = q
                .iter()
                .enumerate()
                .map(|(e, q)| {
                    (
                        e as u64,
                        "Scored".to_string(),
                        q.to_string(),
                        "1".to_string(),
                    )
                })
                .collect();
            n.contributions
                .push((9, "Unscored".into(), "0".into(), "0".into()));
            n
        };
        let honest = [
            scored(node("w0", "honest", "gpu_compute", 100, 0), &[120, 140]),
            scored(node("w1", "honest", "gpu_compute", 80, 0), &[90]),
            scored(node("w2", "unsplit", "cpu_only", 20, 0), &[150]),
        ];
        assert_eq!(
            mean_quality(&honest[0]),
            Some(130),
            "unscored epochs do not count"
        );
        assert_eq!(
            mean_quality(&node("w9", "honest", "gpu_compute", 0, 0)),
            None
        );
        // Honest qualities 90–150: the bound is 150 + (150 − 90) = 210.
        for (q, reward, met) in [
            (140, 110, true),  // net above the mean but quality inside the honest range
            (150, 110, true),  // equal to the best honest quality
            (151, 110, true),  // above the best, but by less than the honest spread: a draw
            (210, 110, true),  // at the bound
            (211, 110, false), // an edge beyond the honest spread: the old leak (3.9×)
            (600, 110, false), // the 4× edge windows on the public split once paid
            (400, 80, true),   // nets no more than honest play
        ] {
            let mut nodes = honest.to_vec();
            nodes.push(scored(
                node("w3", "evalfit", "gpu_compute", reward, 0),
                &[q],
            ));
            let rows = adversary_rows(&nodes, &BTreeMap::new(), None);
            assert_eq!(rows[0].quality_vs_best_honest, Some((q, 150)));
            assert_eq!(rows[0].honest_quality_range, Some((90, 150)));
            assert_eq!(rows[0].evalfit_quality_bound(), Some(210));
            assert_eq!(rows[0].target_met, met, "quality {q} reward {reward}");
        }
        // Other kinds are held to their net alone.
        let mut nodes = honest.to_vec();
        nodes.push(scored(node("w3", "lazy", "gpu_compute", 110, 0), &[10]));
        let rows = adversary_rows(&nodes, &BTreeMap::new(), None);
        assert_eq!(rows[0].quality_vs_best_honest, None);
        assert!(!rows[0].target_met);
    }

    #[test]
    fn adversary_rows_sum_a_sybil_group_against_its_unsplit_node_and_use_the_baseline_twins() {
        let nodes = vec![
            node("w0", "honest", "gpu_compute", 100, 0),
            node("w1", "collude", "gpu_compute", 90, 40),
            node("w2", "sybil", "cpu_only", 10, 0),
            node("w3", "sybil", "cpu_only", 12, 0),
            node("w4", "unsplit", "cpu_only", 30, 0),
        ];
        let rows = adversary_rows(&nodes, &BTreeMap::new(), None);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].kind, "collude");
        assert_eq!(
            rows[0].honest_reference, 100,
            "mean honest node of its tier"
        );
        assert_eq!(rows[0].net_gain, 90 - 40 - 100);
        assert_eq!(rows[1].moniker, "w2+w3");
        assert_eq!(rows[1].earned, 22);
        assert_eq!(rows[1].honest_reference, 30, "the unsplit node");
        assert_eq!(rows[1].net_gain, 22 - 30);
        // With a baseline run, the same identities' honest net is the reference.
        let twins = vec![node("w1", "collude", "gpu_compute", 70, 0)];
        let rows = adversary_rows(&nodes, &BTreeMap::new(), Some(&twins));
        assert_eq!(rows[0].honest_reference, 70);
        assert_eq!(rows[0].net_gain, 50 - 70);
    }

    #[test]
    fn a_colluders_gain_is_what_its_scores_moved_its_partners_reward() {
        // A minority colluder does not move the lower median: no gain.
        let minority = [(100, 1, false), (120, 2, false), (1_000_000_000, 1, true)];
        assert_eq!(collusion_gain(&minority, 1_000, 2, 10_000_000), 0);
        // Three of five slots: the median is the colluder's (capped) score.
        let majority = [(100, 2, false), (1_000_000_000, 3, true)];
        assert_eq!(collusion_gain(&majority, 1_000, 2, 10_000_000), 999);
        // Its slots were needed to score the partner at all: all of the reward is its doing.
        let needed = [(100, 1, false), (1_000_000_000, 1, true)];
        assert_eq!(collusion_gain(&needed, 1_000, 2, 10_000_000), 1_000);
        assert_eq!(panel_median(&[(5, 1), (1, 1), (3, 1), (9, 1)], 2), Some(3));
        assert_eq!(panel_median(&[(5, 1)], 2), None);
    }

    #[test]
    fn the_baseline_comparison_reports_honest_loss_and_val_loss_change() {
        let report = |honest: u128, loss: f64| Report {
            chain_id: String::new(),
            job: 0,
            rounds: vec![RoundRow {
                round: 0,
                leader: String::new(),
                accepted: Vec::new(),
                rejected: Vec::new(),
                upload_bytes: 0,
                merged_val_loss: Some(loss),
                mean_local_val_loss: None,
            }],
            nodes: vec![
                node("w0", "honest", "gpu_compute", honest, 0),
                node("w1", "lazy", "gpu_compute", 5, 0),
            ],
            epochs: Vec::new(),
            killed: Vec::new(),
            solo: None,
            adversaries: Vec::new(),
            baseline: None,
            audits: Vec::new(),
            storage: Vec::new(),
            stripes: None,
            serving: None,
            research: None,
        };
        let b = BaselineComparison::new(&report(200, 4.0), &report(150, 4.1), &report(190, 4.04));
        assert_eq!(b.honest_net_baseline, 200);
        assert_eq!(b.honest_net, 190);
        assert!((b.honest_loss_pct().unwrap() - 5.0).abs() < 1e-9);
        assert!((b.val_loss_change_pct().unwrap() - 1.0).abs() < 1e-9);
        // Against the honest workers alone the model got better: the target is met.
        assert!(b.val_loss_change_vs_honest_only_pct().unwrap() < 0.0);
        assert_eq!(b.model_target_met(), Some(true));
        let worse =
            BaselineComparison::new(&report(200, 4.0), &report(150, 3.9), &report(190, 4.0));
        assert!((worse.val_loss_change_vs_honest_only_pct().unwrap() - 2.564).abs() < 1e-3);
        assert_eq!(worse.model_target_met(), Some(false));
        let lost =
            BaselineComparison::new(&report(200, 4.0), &report(150, f64::NAN), &report(190, 4.0));
        assert_eq!(lost.model_target_met(), None);
    }

    #[test]
    fn the_devnet_genesis_windows_fit_in_an_epoch_and_validate() {
        let s = devnet_app_state(150).unwrap();
        let co: magnet_contrib::Params =
            serde_json::from_value(s["contrib"]["params"].clone()).unwrap();
        co.validate().unwrap();
        let sum = co.commit_window_secs
            + co.reveal_window_secs
            + co.eval_commit_window_secs
            + co.eval_reveal_window_secs
            + co.challenge_window_secs;
        assert!(sum <= 150, "{sum}");
        let reg: magnet_registry::Params =
            serde_json::from_value(s["registry"]["params"].clone()).unwrap();
        reg.validate().unwrap();
        magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &s).unwrap();
    }

    #[test]
    fn the_devnet_genesis_sets_a_zero_minimum_gas_price_and_validates() {
        let mut s = devnet_app_state(150).unwrap();
        s["auth"] = json!({ "params": devnet_auth_params().unwrap(), "accounts": [] });
        let p: magnet_app::auth::AuthParams =
            serde_json::from_value(s["auth"]["params"].clone()).unwrap();
        assert_eq!(p.min_gas_price, "0");
        assert_ne!(
            magnet_app::auth::AuthParams::default().min_gas_price,
            "0",
            "the chain's default is non-zero; only the devnet opts out"
        );
        magnet_app::MagnetApp::validate_genesis(CHAIN_ID, &s).unwrap();
    }
}
