//! A randomized whole-app simulation (feature `testkit`; `magnetd sim`; ADR 0100).
//!
//! In the style of the Cosmos SDK's simulation framework: a genesis with funded accounts and a
//! few validators, then `blocks` blocks, each carrying random **valid and invalid** signed txs
//! of every module, driven through the real ABCI calls of two [`MagnetApp`] replicas on
//! separate stores:
//!
//! 1. the proposer replica's `PrepareProposal` (honest blocks) — or, for a third of the blocks,
//!    a byzantine proposer that skips it, so txs whose messages fail reach `FinalizeBlock`; once
//!    in a while the proposer also stuffs a tx that fails its ante, and both replicas'
//!    `ProcessProposal` must reject that block (ADR 0095);
//! 2. `ProcessProposal` on both replicas (must accept what is finalized);
//! 3. `FinalizeBlock` + `Commit` on both; the app hashes and every tx's result code must agree;
//! 4. the invariants ([`crate::invariants`]) on the committed state, the supply ledger folded
//!    from the block's events, and the settlement records compared with the last block's.
//!
//! At a random height the state is exported ([`MagnetApp::export`]) and imported into a third
//! app (`InitChain` with `initial_height = h + 1` at the last block's time): the imported
//! genesis must commit the same app hash, pass every invariant, hold the same supply and export
//! to the same `app_state`; the third app then receives every following block with the same
//! app hash as the replicas and its own invariants and supply ledger checked. Block times advance 3–7 s, epochs last
//! [`EPOCH_SECS`], so a few hundred blocks cross many epochs, settlements included.
//!
//! Everything is a pure function of the seed ([`SplitMix64`]): a failure prints
//! `seed=S height=H invariant=NAME` and `magnetd sim --seed S --blocks H` replays it.
//!
//! Fees are real: the genesis keeps the default minimum gas price and every tx pays
//! `ceil(gas_limit × price)` ([`crate::testkit::fee_for`]), so fees flow to the fee collector,
//! emission burns its share and the ledger sees it.
#![allow(clippy::arithmetic_side_effects)]

use crate::abci as pb;
use crate::invariants::{check_all, InvariantViolation, SupplyLedger};
use crate::testkit::{fee_for, genesis_app_state_with_fees, Signer, TxBuilder};
use crate::{AppConfig, Application, MagnetApp, StoreConfig};
use magnet_contrib::msgs as cm;
use magnet_contrib::state::Work;
use magnet_core::{Address, KvStore};
use magnet_custody::msgs as sm;
use magnet_data::msgs as dm;
use magnet_gov::msgs as gm;
use magnet_jobs::msgs as jm;
use magnet_notary::msgs as nm;
use magnet_registry::msgs as rm;
use std::collections::BTreeMap;
use std::path::Path;

/// Chain id of simulated chains.
pub const SIM_CHAIN_ID: &str = "magnet-sim-1";
/// Genesis block time.
pub const GENESIS_TIME: i64 = 1_700_000_000;
/// Epoch length (s).
pub const EPOCH_SECS: u64 = 120;
/// The software upgrade the simulated binary "implements": a passed upgrade proposal with
/// this name clears at its halt height instead of halting (proposals with other names are
/// scheduled far beyond the run).
pub const UPGRADE_NAME: &str = "sim-upgrade";
/// umag each simulated account holds at genesis (10 M MAG).
pub const FUNDS: u128 = 10_000_000_000_000;
/// Gas limit of ordinary simulated txs.
pub const GAS_LIMIT: u64 = 3_000_000;
const MAG: u128 = 1_000_000;
const CONTRIB_WINDOWS: [u64; 5] = [40, 20, 20, 20, 20];

/// A tiny deterministic generator (SplitMix64, Steele et al. 2014): the simulation's only
/// source of randomness, so a seed replays bit for bit on every platform.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// Seeded generator.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (`n > 0`; 0 when `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
        }
    }
    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }
    /// 32 random bytes.
    pub fn bytes32(&mut self) -> [u8; 32] {
        let mut b = [0u8; 32];
        for c in b.chunks_mut(8) {
            c.copy_from_slice(&self.next_u64().to_be_bytes());
        }
        b
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Blocks to produce.
    pub blocks: u64,
    /// Funded operator accounts (each also gets a funded node key).
    pub accounts: usize,
    /// Most txs in one block (one per signer).
    pub max_txs_per_block: usize,
    /// Export → import at a random height (in the middle half of the run).
    pub export_import: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 1,
            blocks: 200,
            accounts: 12,
            max_txs_per_block: 10,
            export_import: true,
        }
    }
}

/// Outcomes of one message type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpCount {
    /// Delivered with code 0.
    pub ok: u64,
    /// Delivered with a non-zero code.
    pub failed: u64,
    /// Generated to be invalid (whatever became of them).
    pub meant_invalid: u64,
    /// Generated to be invalid, yet delivered with code 0.
    pub invalid_accepted: u64,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// Blocks committed.
    pub blocks: u64,
    /// Delivered txs by message type (the first message's type URL).
    pub txs: BTreeMap<String, OpCount>,
    /// Txs generated.
    pub generated: u64,
    /// Txs an honest `PrepareProposal` left out (CheckTx-mode failures, ante failures).
    pub dropped_by_prepare: u64,
    /// Stuffed proposals (a tx failing its ante) both replicas rejected.
    pub stuffed_rejected: u64,
    /// Invariant checks passed (each covers every invariant listed in
    /// [`crate::invariants::CHECKED`] plus the supply ledger).
    pub invariant_checks: u64,
    /// App-hash comparisons between replicas that agreed.
    pub hash_comparisons: u64,
    /// Epoch settlements seen (`rewards/settlement` records at the end).
    pub settlements: u64,
    /// Running epoch at the end.
    pub epoch: u64,
    /// Height exported and imported into the third replica, if any.
    pub export_height: Option<u64>,
    /// Blocks the imported replica followed with the same app hash.
    pub imported_blocks: u64,
    /// Σ minted and Σ burned (umag) over the run.
    pub minted: u128,
    /// Σ burned.
    pub burned: u128,
    /// Signers found unable to pay a fee, and the first height (their txs fail the ante).
    pub broke: BTreeMap<String, u64>,
    /// Wall-clock seconds of the run (not part of the simulation's determinism).
    pub elapsed_secs: f64,
}

impl SimReport {
    /// Delivered txs with code 0.
    pub fn ok(&self) -> u64 {
        self.txs.values().map(|c| c.ok).sum()
    }
    /// Delivered txs with a non-zero code.
    pub fn failed(&self) -> u64 {
        self.txs.values().map(|c| c.failed).sum()
    }
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per_min = if self.elapsed_secs > 0.0 {
            self.blocks as f64 * 60.0 / self.elapsed_secs
        } else {
            0.0
        };
        writeln!(
            f,
            "simulation passed: seed={} blocks={}",
            self.seed, self.blocks
        )?;
        writeln!(
            f,
            "txs: generated {}, delivered {} ok / {} failed, dropped by PrepareProposal {}, stuffed proposals rejected {}",
            self.generated,
            self.ok(),
            self.failed(),
            self.dropped_by_prepare,
            self.stuffed_rejected
        )?;
        writeln!(
            f,
            "{:<40} {:>7} {:>7} {:>13} {:>16}",
            "message type", "ok", "failed", "meant invalid", "invalid but ok"
        )?;
        for (t, c) in &self.txs {
            writeln!(
                f,
                "{:<40} {:>7} {:>7} {:>13} {:>16}",
                t, c.ok, c.failed, c.meant_invalid, c.invalid_accepted
            )?;
        }
        writeln!(
            f,
            "invariant checks: {} (each: {} + ledger), all passed",
            self.invariant_checks,
            crate::invariants::CHECKED.join(", ")
        )?;
        writeln!(
            f,
            "app hashes compared: {} (two replicas every height{}), all equal",
            self.hash_comparisons,
            match self.export_height {
                Some(h) => format!(
                    "; export at height {h} imported with the same app hash, then {} more \
                     blocks with the same hashes and its books checked",
                    self.imported_blocks
                ),
                None => String::new(),
            }
        )?;
        writeln!(
            f,
            "epochs: running epoch {}, {} settled; minted {} umag, burned {} umag",
            self.epoch, self.settlements, self.minted, self.burned
        )?;
        if !self.broke.is_empty() {
            writeln!(
                f,
                "signers that ran out of fee money (account: first height): {:?}",
                self.broke
            )?;
        }
        write!(
            f,
            "elapsed {:.1} s, {:.0} blocks/minute",
            self.elapsed_secs, per_min
        )
    }
}

/// A failed run: where, which invariant, and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("seed={seed} height={height} invariant={invariant}: {detail}\nreplay: magnetd sim --seed {seed} --blocks {blocks}")]
pub struct SimFailure {
    /// The seed.
    pub seed: u64,
    /// The blocks the run was asked for: with the seed, they fix every choice (the export
    /// height too), so `--seed S --blocks N` fails again at `height`.
    pub blocks: u64,
    /// The height at which the check failed.
    pub height: u64,
    /// Which invariant (an [`InvariantViolation::name`], or `app_hash`, `results`,
    /// `process_proposal`, `export`, `setup`).
    pub invariant: String,
    /// The numbers.
    pub detail: String,
}

/// An operator and its node key.
#[derive(Clone)]
struct Agent {
    op: Signer,
    node: Signer,
}

/// A sealed contribution the agent may reveal.
#[derive(Clone)]
struct Sealed {
    epoch: u64,
    job: u64,
    work: Work,
    nonce: Vec<u8>,
}

/// What the generator reads from the committed state before each block.
#[derive(Default)]
struct View {
    time: u64,
    epoch: u64,
    epoch_start: u64,
    nodes: BTreeMap<Address, magnet_registry::state::NodeRecord>,
    gov_bonds: BTreeMap<Address, u128>,
    jobs: Vec<magnet_jobs::state::Job>,
    proposals: Vec<magnet_gov::state::Proposal>,
    data: Vec<magnet_data::state::Record>,
    notaries: BTreeMap<Address, u128>,
    challenges: Vec<magnet_notary::state::Challenge>,
    balances: BTreeMap<Address, u128>,
    /// (evaluator operator, contributor operator, job, commitment, score) assigned in the
    /// current epoch to the contributions this simulation sealed.
    assignments: Vec<Assigned>,
    /// Node keys that may hold custody shards now (storage-capable, bonded, not jailed).
    storage_nodes: Vec<Address>,
    /// Open (unproven) custody challenges of the running epoch, by holder node key.
    custody: BTreeMap<Address, Vec<magnet_custody::state::Challenge>>,
}

/// (evaluator operator, contributor operator, job, score commitment, revealed score).
type Assigned = (Address, Address, u64, Option<[u8; 32]>, Option<i64>);

/// One generated tx.
struct GenTx {
    bytes: Vec<u8>,
    label: String,
    meant_invalid: bool,
    /// Fails its ante (bad signature, wrong sequence, fee too low): never in an accepted block.
    ante_bad: bool,
}

/// The running simulation: two replicas (and a third after the import) fed the same blocks.
pub struct Sim {
    cfg: SimConfig,
    rng: SplitMix64,
    a: MagnetApp,
    b: MagnetApp,
    c: Option<MagnetApp>,
    dir: std::path::PathBuf,
    agents: Vec<Agent>,
    validators: Vec<Vec<u8>>,
    height: u64,
    time: i64,
    gas_price: String,
    ledger: SupplyLedger,
    settlements: BTreeMap<Vec<u8>, Vec<u8>>,
    sealed: BTreeMap<usize, Sealed>,
    scores: BTreeMap<(usize, Address), (i64, Vec<u8>)>,
    export_at: Option<u64>,
    /// The imported replica's supply ledger (from its genesis).
    import_ledger: Option<SupplyLedger>,
    /// The op just generated names a signer other than the tx's (an ante failure).
    forged: bool,
    report: SimReport,
    started: std::time::Instant,
}

fn app_config() -> AppConfig {
    AppConfig {
        store: StoreConfig {
            keep_recent: 2,
            fsync: false,
        },
        min_gas_price: "0".into(),
        snapshot: Default::default(),
    }
}

fn timestamp(t: i64) -> tendermint_proto::google::protobuf::Timestamp {
    tendermint_proto::google::protobuf::Timestamp {
        seconds: t,
        nanos: 0,
    }
}

fn any(a: prost_types::Any) -> cosmrs::Any {
    cosmrs::Any {
        type_url: a.type_url,
        value: a.value,
    }
}

fn short(type_url: &str) -> String {
    type_url
        .trim_start_matches('/')
        .trim_start_matches("magnet.")
        .trim_start_matches("cosmos.")
        .replace(".v1beta1.", ".")
        .replace(".v1.", ".")
}

/// The sim genesis `app_state`: funded accounts, validators with operators, short epochs and
/// windows so a few hundred blocks cross many epochs, a notary panel of the first four agents.
fn genesis(agents: &[Agent], validators: &[Vec<u8>]) -> serde_json::Value {
    use base64::Engine;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut accounts: Vec<(Address, u128)> =
        agents.iter().map(|a| (a.op.address(), FUNDS)).collect();
    accounts.extend(agents.iter().map(|a| (a.node.address(), FUNDS / 100)));
    let mut s = genesis_app_state_with_fees(&accounts);
    s["validators"] = validators
        .iter()
        .map(|pk| serde_json::json!({"pub_key": b64(pk), "power": "10", "name": ""}))
        .collect();
    s["validator_operators"] = validators
        .iter()
        .zip(agents)
        .map(|(pk, a)| serde_json::json!({"pub_key": b64(pk), "operator": a.op.address().to_bech32()}))
        .collect();
    s["epochs"] =
        serde_json::json!({"params": {"duration_secs": EPOCH_SECS, "max_ends_per_block": 16}});
    let mut reg = serde_json::to_value(magnet_registry::Params::default()).unwrap_or_default();
    reg["heartbeat_interval_secs"] = 10.into();
    reg["min_heartbeats_per_epoch"] = 1.into();
    reg["liveness_window_secs"] = 600.into();
    reg["unbonding_delay_secs"] = 300.into();
    s["registry"] = serde_json::json!({ "params": reg });
    let mut co = serde_json::to_value(magnet_contrib::Params::default()).unwrap_or_default();
    for (k, v) in [
        "commit_window_secs",
        "reveal_window_secs",
        "eval_commit_window_secs",
        "eval_reveal_window_secs",
        "challenge_window_secs",
    ]
    .iter()
    .zip(CONTRIB_WINDOWS)
    {
        co[*k] = v.into();
    }
    co["evaluator_slots"] = 3.into();
    co["min_evaluations"] = 1.into();
    s["contrib"] = serde_json::json!({ "params": co });
    s["gov"] = serde_json::json!({"params": {
        "min_deposit": "1000000", "deposit_period_secs": 100, "voting_period_secs": 60,
        "quorum_ppm": 334000, "threshold_ppm": 500000, "veto_ppm": 334000,
        "burn_on_veto": true, "burn_on_no_quorum": false
    }});
    let mut no = serde_json::to_value(magnet_notary::Params::default()).unwrap_or_default();
    no["vote_window_secs"] = 60.into();
    s["notary"] = serde_json::json!({
        "params": no,
        "panel": agents.iter().take(4).map(|a| a.op.address().to_bech32()).collect::<Vec<_>>(),
    });
    // Jail for 200 s, so jailed nodes unjail within the run.
    let mut sl = serde_json::to_value(magnet_slashing::Params::default()).unwrap_or_default();
    sl["jail_secs"] = 200.into();
    s["slashing"] = serde_json::json!({ "params": sl });
    let mut da = serde_json::to_value(magnet_data::Params::default()).unwrap_or_default();
    da["challenge_window_secs"] = 90.into();
    s["data"] = serde_json::json!({ "params": da });
    // RS(2,1) stripes: a dozen agents rarely have six storage-capable nodes at once.
    let mut cu = serde_json::to_value(magnet_custody::Params::default()).unwrap_or_default();
    cu["k"] = SIM_K.into();
    cu["m"] = SIM_M.into();
    s["custody"] = serde_json::json!({ "params": cu });
    s
}

/// RS K and M of the simulation's custody stripes.
const SIM_K: u32 = 2;
/// See [`SIM_K`].
const SIM_M: u32 = 1;

fn init_request(
    app_state: &serde_json::Value,
    time: i64,
    initial_height: i64,
) -> pb::RequestInitChain {
    pb::RequestInitChain {
        time: Some(timestamp(time)),
        chain_id: SIM_CHAIN_ID.into(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: serde_json::to_vec(app_state).unwrap_or_default().into(),
        initial_height,
    }
}

impl Sim {
    /// Genesis of two replicas under `dir` (`dir/a`, `dir/b`; the import goes to `dir/c`).
    pub fn new(cfg: SimConfig, dir: &Path) -> Result<Sim, SimFailure> {
        let setup = |detail: String| SimFailure {
            seed: cfg.seed,
            blocks: cfg.blocks,
            height: 0,
            invariant: "setup".into(),
            detail,
        };
        let mut rng = SplitMix64::new(cfg.seed);
        let n = cfg.accounts.max(4) as u64;
        let agents: Vec<Agent> = (0..n)
            .map(|i| Agent {
                op: Signer::from_seed(1_000 + i),
                node: Signer::from_seed(2_000 + i),
            })
            .collect();
        let validators: Vec<Vec<u8>> = (1..=4u8).map(|i| vec![i; 32]).collect();
        let state = genesis(&agents, &validators);
        let open = |name: &str| {
            let app = MagnetApp::open(&dir.join(name), app_config())
                .map_err(|e| setup(format!("open replica {name}: {e}")))?;
            app.register_upgrade(UPGRADE_NAME);
            app.try_init_chain(init_request(&state, GENESIS_TIME, 1))
                .map_err(|e| setup(format!("genesis of replica {name}: {e}")))?;
            Ok::<MagnetApp, SimFailure>(app)
        };
        let a = open("a")?;
        let b = open("b")?;
        // The ledger starts from the genesis supply: the sum of the funded balances.
        let genesis_supply = agents.len() as u128 * (FUNDS + FUNDS / 100);
        let export_at = (cfg.export_import && cfg.blocks >= 8)
            .then(|| cfg.blocks / 4 + rng.below(cfg.blocks / 2).max(1));
        let gas_price = crate::auth::DEFAULT_MIN_GAS_PRICE.to_string();
        Ok(Sim {
            report: SimReport {
                seed: cfg.seed,
                ..Default::default()
            },
            cfg,
            rng,
            a,
            b,
            c: None,
            dir: dir.to_path_buf(),
            agents,
            validators,
            height: 0,
            time: GENESIS_TIME,
            gas_price,
            ledger: SupplyLedger {
                genesis: genesis_supply,
                minted: 0,
                burned: 0,
            },
            settlements: BTreeMap::new(),
            sealed: BTreeMap::new(),
            scores: BTreeMap::new(),
            export_at,
            forged: false,
            import_ledger: None,
            started: std::time::Instant::now(),
        })
    }

    /// The proposer replica (tests read its state).
    pub fn app(&self) -> &MagnetApp {
        &self.a
    }

    /// Height of the last committed block.
    pub fn height(&self) -> u64 {
        self.height
    }

    fn fail(&self, invariant: impl Into<String>, detail: impl Into<String>) -> SimFailure {
        SimFailure {
            seed: self.cfg.seed,
            blocks: self.cfg.blocks,
            height: self.height,
            invariant: invariant.into(),
            detail: detail.into(),
        }
    }

    fn read<T>(&self, f: impl FnOnce(&dyn KvStore) -> T) -> Result<T, SimFailure> {
        self.a
            .with_committed_state(f)
            .map_err(|e| self.fail("store", e.to_string()))
    }

    fn view(&self) -> Result<View, SimFailure> {
        let time = self.time as u64;
        if self.height == 0 {
            // Genesis is staged, not committed, until the first block: what it holds is known.
            return Ok(View {
                time,
                epoch: 0,
                epoch_start: time,
                balances: self
                    .agents
                    .iter()
                    .map(|a| (a.op.address(), FUNDS))
                    .collect(),
                notaries: self
                    .agents
                    .iter()
                    .take(4)
                    .map(|a| (a.op.address(), 0))
                    .collect(),
                ..Default::default()
            });
        }
        let ops: Vec<Address> = self
            .agents
            .iter()
            .flat_map(|a| [a.op.address(), a.node.address()])
            .collect();
        let sealed: Vec<(Address, u64, u64)> = self
            .sealed
            .iter()
            .map(|(i, s)| (self.agents[*i].op.address(), s.epoch, s.job))
            .collect();
        let r = self.read(move |s| {
            let corrupt = |e: magnet_core::ModuleError| e.to_string();
            let ep = magnet_core::epoch::state(s).map_err(corrupt)?;
            let mut v = View {
                time,
                epoch: ep.current,
                epoch_start: ep.start_time_secs,
                ..Default::default()
            };
            for n in magnet_registry::state::all_nodes(s).map_err(corrupt)? {
                v.nodes.insert(n.operator, n);
            }
            v.gov_bonds = magnet_registry::state::all_gov_bonds(s)
                .map_err(corrupt)?
                .into_iter()
                .collect();
            v.jobs = magnet_jobs::state::jobs(s).map_err(corrupt)?;
            v.proposals = magnet_gov::state::proposals(s).map_err(corrupt)?;
            v.data = magnet_data::state::records(s).map_err(corrupt)?;
            v.notaries = magnet_notary::state::members(s)
                .map_err(corrupt)?
                .into_iter()
                .map(|(a, m)| (a, m.bond))
                .collect();
            v.challenges = magnet_notary::state::challenges(s).map_err(corrupt)?;
            let rp = magnet_registry::state::params(s).map_err(corrupt)?;
            v.storage_nodes = v
                .nodes
                .values()
                .filter(|n| {
                    magnet_registry::handler::storage_capable(&rp, n)
                        && !magnet_registry::handler::excluded(n)
                })
                .map(|n| n.node)
                .collect();
            for c in magnet_custody::state::challenges(s, ep.current, None).map_err(corrupt)? {
                if !c.proven {
                    v.custody.entry(c.holder).or_default().push(c);
                }
            }
            for (a, d, amt) in magnet_bank::state::all_balances(s).map_err(|e| e.to_string())? {
                if d == magnet_core::NATIVE_DENOM && ops.contains(&a) {
                    v.balances.insert(a, amt);
                }
            }
            for (contributor, epoch, job) in sealed {
                if epoch != v.epoch {
                    continue;
                }
                for (ev, asg) in magnet_contrib::state::assignments(s, epoch, job, &contributor)
                    .map_err(corrupt)?
                {
                    v.assignments
                        .push((ev, contributor, job, asg.commitment, asg.score));
                }
            }
            Ok::<View, String>(v)
        })?;
        r.map_err(|e| self.fail("corrupt", e))
    }

    fn account(&self, addr: &Address) -> Result<(u64, u64), SimFailure> {
        let a = *addr;
        let r = self.read(move |s| crate::auth::get_account(s, &a))?;
        Ok(r.map_err(|e| self.fail("corrupt", e.to_string()))?
            .map_or((u64::MAX, 0), |x| (x.account_number, x.sequence)))
    }

    /// Sign `msgs` from `signer`; `corrupt` = 1 bad signature, 2 wrong sequence, 3 fee below
    /// the minimum gas price, 4 gas limit too low for the messages (fails in delivery).
    fn sign(
        &mut self,
        signer: &Signer,
        msgs: Vec<prost_types::Any>,
        corrupt: u8,
    ) -> Result<Vec<u8>, SimFailure> {
        let (num, seq) = self.account(&signer.address())?;
        let gas = if corrupt == 4 { 60_000 } else { GAS_LIMIT };
        let fee = fee_for(gas, &self.gas_price).map_err(|e| self.fail("setup", e.to_string()))?;
        let mut b = TxBuilder::new(SIM_CHAIN_ID, num, if corrupt == 2 { seq + 1 } else { seq })
            .fee(if corrupt == 3 { fee / 2 } else { fee }, gas);
        for m in msgs {
            b = b.msg(any(m));
        }
        if corrupt == 1 {
            let other = Signer::from_seed(999_999);
            let mut raw = b.sign(signer);
            // Re-sign the same body with another key: a well-formed, wrong signature.
            let good = b.sign(&other);
            use prost::Message;
            if let (Ok(mut t), Ok(o)) = (
                cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(raw.as_slice()),
                cosmrs::proto::cosmos::tx::v1beta1::TxRaw::decode(good.as_slice()),
            ) {
                t.signatures = o.signatures;
                raw = t.encode_to_vec();
            }
            return Ok(raw);
        }
        Ok(b.sign(signer))
    }

    /// Generate one op for agent `i`: (signer is node key?, messages, meant invalid).
    fn op(&mut self, i: usize, v: &View) -> (bool, Vec<prost_types::Any>, bool) {
        let ag = self.agents[i].clone();
        let me = ag.op.address();
        let node = ag.node.address();
        let n = self.agents.len() as u64;
        let other = self.agents[self.rng.below(n) as usize].op.address();
        let bal = v.balances.get(&me).copied().unwrap_or(0);
        let invalid = self.rng.chance(1, 4);
        let rec = v.nodes.get(&me).cloned();
        let since_epoch = v.time.saturating_sub(v.epoch_start);
        let [cw, rw, ecw, erw, _] = CONTRIB_WINDOWS;
        let r = &mut self.rng;
        // Weights: sends and heartbeats most often, governance and admin actions rarely.
        let kind = r.below(100);
        match kind {
            12..=14 => {
                // Storage custody (ADR 0107): answer this node's open challenges, else
                // register a stripe on K+M storage-capable nodes with their receipts;
                // invalid: proofs for an epoch that is not running (always refused).
                let open = v.custody.get(&node).cloned().unwrap_or_default();
                if invalid {
                    let p = sim_proof(&[7; 32], 0, 300, 0);
                    (
                        true,
                        vec![sm::prove_custody(&node, v.epoch + 1, &[p])],
                        true,
                    )
                } else if !open.is_empty() {
                    let proofs: Vec<sm::Proof> = open
                        .iter()
                        .map(|c| sim_proof(&c.object, c.index, c.shard_len, c.leaf))
                        .collect();
                    (
                        true,
                        vec![sm::prove_custody(&node, v.epoch, &proofs)],
                        false,
                    )
                } else {
                    let mut pool = v.storage_nodes.clone();
                    for j in (1..pool.len()).rev() {
                        let s = r.below(j as u64 + 1) as usize;
                        pool.swap(j, s);
                    }
                    let object = r.bytes32();
                    let shard_len = r.range(1, 2_000);
                    let shards: Vec<sm::Placement> = pool
                        .iter()
                        .take((SIM_K + SIM_M) as usize)
                        .enumerate()
                        .filter_map(|(i, h)| {
                            let holder = self.agents.iter().find(|a| a.node.address() == *h)?;
                            let root = magnet_custody::rules::merkle_root(&sim_shard(
                                &object, i as u32, shard_len,
                            ));
                            let sig = magnet_custody::rules::ShardReceipt {
                                chain_id: SIM_CHAIN_ID.into(),
                                object,
                                index: i as u32,
                                root,
                                len: shard_len,
                            }
                            .sign(&holder.node.secret_bytes())
                            .ok()?;
                            Some(sm::Placement {
                                holder: *h,
                                root,
                                receipt: sig.to_vec(),
                            })
                        })
                        .collect();
                    let stripe = sm::NewStripe {
                        object,
                        kind: if r.chance(1, 2) {
                            "delta"
                        } else {
                            "checkpoint"
                        }
                        .into(),
                        label: r.bytes32(),
                        job_id: 0,
                        size: shard_len * u64::from(SIM_K),
                        k: SIM_K,
                        m: SIM_M,
                        stripe_size: 4096,
                        shard_len,
                        shards,
                    };
                    // Meant valid (it may still fail: too few storage nodes now, a holder
                    // jailed or unbonding earlier in the block, a producer not yet registered).
                    (true, vec![sm::register_stripe(&node, &stripe)], false)
                }
            }
            0..=11 => {
                if invalid {
                    if r.chance(1, 2) {
                        // An overdraft by more than other txs of the block can pay in.
                        (false, vec![any_send(&me, &other, bal + 1_000 * MAG)], true)
                    } else {
                        // Someone else's coins: the signer is not the message's, so the
                        // ante refuses it (never in an accepted block).
                        self.forged = other != me;
                        (false, vec![any_send(&other, &me, 1)], other != me)
                    }
                } else {
                    (
                        false,
                        vec![any_send(&me, &other, u128::from(r.range(1, 1_000_000)))],
                        false,
                    )
                }
            }
            15..=29 => {
                // Heartbeats from node keys; a key of no registered node is refused.
                let registered = rec.is_some();
                let stranger = invalid || !registered;
                let signer_is_node = true;
                let msg = if stranger && !registered {
                    rm::heartbeat(&node)
                } else if invalid {
                    self.forged = true;
                    rm::heartbeat(&Signer::from_seed(3_000 + i as u64).address())
                } else {
                    rm::heartbeat(&node)
                };
                (signer_is_node, vec![msg], stranger)
            }
            30..=37 => {
                if rec.is_none() && !invalid {
                    let (tier, bond) = match r.below(3) {
                        0 => ("storage_node", 300),
                        1 => ("cpu_only", 400),
                        _ => ("gpu_compute", 1_000),
                    };
                    // Every registration carries a passing SSD report (ADR 0107): storage_node
                    // needs it, and the other storage-kind tiers become storage-capable.
                    let ssd = Some(rm::SsdReport {
                        read_kbps: 200_000,
                        write_kbps: 100_000,
                        block_size: 4096,
                        file_bytes: 1 << 30,
                        direct_io: true,
                    });
                    let m = rm::register_node_with_ssd(
                        &me,
                        &ag.node.pub_key(),
                        tier,
                        "https://sim.example:7000",
                        "eu",
                        "{}",
                        bond * MAG + u128::from(r.below(1000)),
                        ssd,
                    );
                    (false, vec![m], false)
                } else {
                    let bad = if r.chance(1, 2) {
                        "no_such_tier"
                    } else {
                        "storage_node"
                    };
                    let m = rm::register_node(&me, &ag.node.pub_key(), bad, "e", "eu", "{}", 1);
                    (false, vec![m], true)
                }
            }
            38..=40 => match (&rec, invalid) {
                (Some(n), false) if n.jailed && n.jail_until <= v.time => {
                    (false, vec![rm::unjail(&me)], false)
                }
                (Some(n), false) if n.tier == "storage_node" => (
                    false,
                    vec![rm::change_tier(&me, "gpu_compute", 800 * MAG)],
                    false,
                ),
                _ => {
                    if r.chance(1, 2) {
                        (
                            false,
                            vec![rm::unjail(&me)],
                            !rec.as_ref().is_some_and(|n| n.jailed),
                        )
                    } else {
                        (false, vec![rm::change_tier(&me, "no_such_tier", 1)], true)
                    }
                }
            },
            41 => {
                if rec.is_some() && !invalid && r.chance(1, 3) {
                    (false, vec![rm::unbond_node(&me)], false)
                } else if rec.is_none() {
                    (false, vec![rm::unbond_node(&me)], true)
                } else {
                    self.forged = other != me;
                    (false, vec![rm::unbond_node(&other)], true)
                }
            }
            42..=46 => {
                let bonded = v.gov_bonds.get(&me).copied().unwrap_or(0);
                if invalid {
                    (false, vec![rm::unbond_gov(&me, bonded + 1)], true)
                } else if bonded > 0 && r.chance(1, 4) {
                    (
                        false,
                        vec![rm::unbond_gov(&me, r.range(1, bonded as u64) as u128)],
                        false,
                    )
                } else {
                    (
                        false,
                        vec![rm::bond_gov(&me, u128::from(r.range(1, 50_000)) * MAG)],
                        false,
                    )
                }
            }
            47..=51 => {
                let h = r.bytes32();
                if invalid {
                    // The same hash twice is refused, as is a size of 0 (stateless check).
                    match v.data.first() {
                        Some(d) if r.chance(1, 2) => {
                            let mut hh = [0u8; 32];
                            if let Ok(b) = hex::decode(&d.hash) {
                                if b.len() == 32 {
                                    hh.copy_from_slice(&b);
                                }
                            }
                            (false, vec![dm::register(&me, hh, 10, "text")], true)
                        }
                        _ => (false, vec![dm::register(&me, h, 0, "text")], true),
                    }
                } else {
                    (
                        false,
                        vec![dm::register(&me, h, r.range(1, 1 << 30), "text")],
                        false,
                    )
                }
            }
            52..=56 => {
                if invalid {
                    let m = jm::create_job(
                        &me,
                        "bitnet-lm",
                        r.bytes32(),
                        r.bytes32(),
                        10,
                        v.time + 100,
                    );
                    (false, vec![m], true)
                } else {
                    let m = jm::create_job(
                        &me,
                        "bitnet-lm",
                        r.bytes32(),
                        r.bytes32(),
                        u128::from(r.range(1, 20)) * MAG,
                        v.time + r.range(60, 600),
                    );
                    (false, vec![m], false)
                }
            }
            57..=58 => {
                let mine: Vec<u64> = v
                    .jobs
                    .iter()
                    .filter(|j| j.creator == me && j.status == magnet_jobs::state::Status::Open)
                    .map(|j| j.id)
                    .collect();
                if !invalid && !mine.is_empty() {
                    let id = mine[r.below(mine.len() as u64) as usize];
                    (false, vec![jm::cancel_job(&me, id)], false)
                } else {
                    let id = v
                        .jobs
                        .iter()
                        .find(|j| j.creator != me)
                        .map_or(9_999, |j| j.id);
                    (false, vec![jm::cancel_job(&me, id)], true)
                }
            }
            59..=62 => {
                let model = v.jobs.last().map_or(0, |j| j.id);
                if invalid || model == 0 {
                    (
                        false,
                        vec![jm::pay_for_inference(&me, 9_999_999, &other, 1_000)],
                        true,
                    )
                } else {
                    (
                        false,
                        vec![jm::pay_for_inference(
                            &me,
                            model,
                            &other,
                            u128::from(r.range(1_000, 5_000_000)),
                        )],
                        false,
                    )
                }
            }
            63..=64 => {
                // Training rounds need an elected leader's signed claims: the sim sends the
                // refusals (no such round, no training spec, unknown audit).
                let job = v.jobs.last().map_or(1, |j| j.id);
                let m = match r.below(4) {
                    0 => jm::record_round(&node, job, 0, r.bytes32(), r.bytes32(), &[], &[]),
                    1 => jm::challenge_round(
                        &me,
                        job,
                        r.below(3),
                        1_000 * MAG,
                        r.bytes32(),
                        "merged_hash",
                    ),
                    2 => jm::audit_commit(&node, job, 0, r.bytes32()),
                    _ => jm::audit_reveal(&node, job, 0, true, r.bytes32(), r.bytes32()),
                };
                let by_node = !matches!(m.type_url.as_str(), "/magnet.jobs.v1.MsgChallengeRound");
                (by_node, vec![m], true)
            }
            65..=71 => {
                // Contributions: commit in the commit window, reveal in the reveal window.
                let sealed = self.sealed.get(&i).cloned();
                let open: Vec<u64> = v
                    .jobs
                    .iter()
                    .filter(|j| j.status == magnet_jobs::state::Status::Open)
                    .map(|j| j.id)
                    .collect();
                let open_job =
                    (!open.is_empty()).then(|| open[r.below(open.len() as u64) as usize]);
                match sealed {
                    Some(s) if s.epoch == v.epoch && since_epoch >= cw && since_epoch < cw + rw => {
                        let nonce = if invalid {
                            b"wrong".to_vec()
                        } else {
                            s.nonce.clone()
                        };
                        // A mismatched reveal succeeds and is slashed (ADR 0024): not "invalid".
                        (
                            true,
                            vec![cm::reveal(&node, s.epoch, s.job, &s.work, &nonce)],
                            false,
                        )
                    }
                    _ if rec.as_ref().is_some_and(|n| {
                        !n.jailed && n.status == magnet_registry::state::NodeStatus::Active
                    }) && since_epoch < cw
                        && !invalid
                        && open_job.is_some() =>
                    {
                        let job = open_job.unwrap_or(0);
                        let w = Work {
                            checkpoint_hash: r.bytes32(),
                            steps: r.range(1, 10_000),
                            params: 1_000_000,
                            data_hash: r.bytes32(),
                            kind: "research".into(),
                            entries: Vec::new(),
                        };
                        let nonce = r.bytes32().to_vec();
                        let c = cm::work_commitment(SIM_CHAIN_ID, v.epoch, job, &me, &w, &nonce);
                        self.sealed.insert(
                            i,
                            Sealed {
                                epoch: v.epoch,
                                job,
                                work: w,
                                nonce,
                            },
                        );
                        (true, vec![cm::commit(&node, v.epoch, job, c)], false)
                    }
                    _ => {
                        // Outside its window, or from an unregistered node.
                        let c = r.bytes32();
                        (true, vec![cm::commit(&node, v.epoch + 5, 0, c)], true)
                    }
                }
            }
            72..=77 => {
                // Evaluator scores for the contributions this agent was drawn for.
                let mine: Vec<_> = v
                    .assignments
                    .iter()
                    .filter(|x| x.0 == me)
                    .cloned()
                    .collect();
                let in_commit = since_epoch >= cw + rw && since_epoch < cw + rw + ecw;
                let in_reveal = since_epoch >= cw + rw + ecw && since_epoch < cw + rw + ecw + erw;
                match mine.first() {
                    Some((_, contributor, job, None, _)) if in_commit && !invalid => {
                        let score = r.range(0, 1_000_000) as i64;
                        let nonce = r.bytes32().to_vec();
                        let c = cm::score_commitment(
                            SIM_CHAIN_ID,
                            v.epoch,
                            *job,
                            contributor,
                            &me,
                            score,
                            &nonce,
                        );
                        self.scores.insert((i, *contributor), (score, nonce));
                        (
                            true,
                            vec![cm::eval_commit(&node, v.epoch, *job, contributor, c)],
                            false,
                        )
                    }
                    Some((_, contributor, job, Some(_), None)) if in_reveal && !invalid => {
                        let (score, nonce) = self
                            .scores
                            .get(&(i, *contributor))
                            .cloned()
                            .unwrap_or((0, b"x".to_vec()));
                        (
                            true,
                            vec![cm::eval_reveal(
                                &node,
                                v.epoch,
                                *job,
                                contributor,
                                score,
                                &nonce,
                            )],
                            false,
                        )
                    }
                    _ => (
                        true,
                        vec![cm::eval_commit(&node, v.epoch, 0, &other, r.bytes32())],
                        true,
                    ),
                }
            }
            78..=82 => {
                // Proposals: text, community spend, param change, software upgrade.
                let deposit = if invalid {
                    0
                } else {
                    u128::from(r.range(1, 3)) * MAG
                };
                let content = match r.below(5) {
                    0 => serde_json::json!({"text": {"body": "simulated"}}),
                    1 => {
                        serde_json::json!({"community_spend": {"recipient": other.to_bech32(), "amount": "1000"}})
                    }
                    2 => {
                        let mut p = serde_json::to_value(magnet_jobs::Params::default())
                            .unwrap_or_default();
                        p["min_budget"] = r.range(500_000, 2_000_000).to_string().into();
                        serde_json::json!({"param_change": {"module": "jobs", "params": p}})
                    }
                    3 if r.chance(1, 2) => {
                        let mut p = serde_json::to_value(magnet_slashing::Params::default())
                            .unwrap_or_default();
                        p["jail_secs"] = r.range(60, 400).into();
                        serde_json::json!({"param_change": {"module": "slashing", "params": p}})
                    }
                    3 => {
                        let mut p = serde_json::to_value(magnet_data::Params::default())
                            .unwrap_or_default();
                        p["challenge_window_secs"] = r.range(30, 200).into();
                        serde_json::json!({"param_change": {"module": "data", "params": p}})
                    }
                    _ => serde_json::json!({"software_upgrade": {
                        "name": UPGRADE_NAME, "halt_height": self.height + r.range(40, 120)}}),
                };
                let content = if invalid && r.chance(1, 2) {
                    serde_json::json!({"param_change": {"module": "no_such_module", "params": {}}})
                } else {
                    content
                };
                (
                    false,
                    vec![gm::submit(&me, "sim", &content, deposit)],
                    invalid,
                )
            }
            83..=85 => {
                let open: Vec<u64> = v
                    .proposals
                    .iter()
                    .filter(|p| matches!(p.status, magnet_gov::state::Status::DepositPeriod { .. }))
                    .map(|p| p.id)
                    .collect();
                if invalid || open.is_empty() {
                    (false, vec![gm::deposit(&me, 999_999, MAG)], true)
                } else {
                    let id = open[r.below(open.len() as u64) as usize];
                    (
                        false,
                        vec![gm::deposit(&me, id, u128::from(r.range(1, 2)) * MAG)],
                        false,
                    )
                }
            }
            86..=91 => {
                let voting: Vec<u64> = v
                    .proposals
                    .iter()
                    .filter(|p| matches!(p.status, magnet_gov::state::Status::Voting { .. }))
                    .map(|p| p.id)
                    .collect();
                let power = v.gov_bonds.get(&me).copied().unwrap_or(0) > 0 || rec.is_some();
                if invalid || voting.is_empty() || !power {
                    (
                        false,
                        vec![gm::vote(
                            &me,
                            if invalid {
                                999_999
                            } else {
                                voting.first().copied().unwrap_or(999_999)
                            },
                            "yes",
                        )],
                        true,
                    )
                } else {
                    let id = voting[r.below(voting.len() as u64) as usize];
                    let opt = ["yes", "yes", "yes", "no", "abstain", "veto"][r.below(6) as usize];
                    (false, vec![gm::vote(&me, id, opt)], false)
                }
            }
            92..=94 => {
                let member = v.notaries.contains_key(&me);
                if member && !invalid {
                    (
                        false,
                        vec![nm::bond(&me, u128::from(r.range(5_000, 6_000)) * MAG)],
                        false,
                    )
                } else {
                    (false, vec![nm::bond(&me, MAG)], !member || invalid)
                }
            }
            95..=97 => {
                // Challenge a pending data record, or a contribution of this epoch.
                let pending: Vec<u64> = v
                    .data
                    .iter()
                    .filter(|d| d.status == magnet_data::state::Status::Pending && !d.disputed)
                    .map(|d| d.id)
                    .collect();
                if invalid || pending.is_empty() {
                    (
                        false,
                        vec![nm::challenge(&me, "nowhere/1", 100 * MAG, r.bytes32())],
                        true,
                    )
                } else {
                    let id = pending[r.below(pending.len() as u64) as usize];
                    (
                        false,
                        vec![nm::challenge(
                            &me,
                            &format!("data/{id}"),
                            100 * MAG,
                            r.bytes32(),
                        )],
                        false,
                    )
                }
            }
            _ => {
                let open: Vec<u64> = v
                    .challenges
                    .iter()
                    .filter(|c| c.outcome == magnet_notary::state::Outcome::Open)
                    .map(|c| c.id)
                    .collect();
                let member = v.notaries.get(&me).copied().unwrap_or(0) > 0;
                if invalid || open.is_empty() || !member {
                    (false, vec![nm::vote(&me, 999_999, true)], true)
                } else {
                    let id = open[r.below(open.len() as u64) as usize];
                    (false, vec![nm::vote(&me, id, r.chance(1, 2))], false)
                }
            }
        }
    }

    fn generate(&mut self, v: &View) -> Result<Vec<GenTx>, SimFailure> {
        let n = self.agents.len();
        let k = self.rng.range(0, self.cfg.max_txs_per_block as u64) as usize;
        let mut order: Vec<usize> = (0..n).collect();
        for j in (1..n).rev() {
            let s = self.rng.below(j as u64 + 1) as usize;
            order.swap(j, s);
        }
        let mut out = Vec::new();
        let mut used_signers = std::collections::BTreeSet::new();
        for &i in order.iter().take(k.min(n)) {
            self.forged = false;
            let (by_node, msgs, meant_invalid) = self.op(i, v);
            let signer = if by_node {
                self.agents[i].node.clone()
            } else {
                self.agents[i].op.clone()
            };
            if !used_signers.insert(signer.address()) {
                continue;
            }
            let label = msgs
                .first()
                .map_or_else(String::new, |m| short(&m.type_url));
            // 1 in 25: an ante failure (bad signature, wrong sequence, fee too low);
            // 1 in 40: too little gas for the messages (fails in delivery, pays its fee).
            let corrupt = if self.rng.chance(1, 25) {
                self.rng.range(1, 3) as u8
            } else if self.rng.chance(1, 40) {
                4
            } else {
                0
            };
            // A signer that cannot pay the fee fails its ante.
            let fee = fee_for(GAS_LIMIT, &self.gas_price).unwrap_or(0);
            let broke = v.balances.get(&signer.address()).copied().unwrap_or(0) < fee;
            if broke {
                // Its tx would pass or fail its ante depending on what earlier txs of the block
                // pay it: leave it out.
                self.report
                    .broke
                    .entry(signer.address().to_bech32())
                    .or_insert(self.height + 1);
                continue;
            }
            let bytes = self.sign(&signer, msgs, corrupt)?;
            // A tx failing the stateless checks (`MagnetApp::decode`, ProcessProposal's first
            // test) is refused like an ante failure.
            let stateless_bad = self.a.decode(&bytes).is_err();
            out.push(GenTx {
                bytes,
                label,
                meant_invalid: meant_invalid || (1..=3).contains(&corrupt),
                ante_bad: (1..=3).contains(&corrupt) || self.forged || stateless_bad,
            });
        }
        Ok(out)
    }

    fn last_commit(&self) -> pb::CommitInfo {
        pb::CommitInfo {
            round: 0,
            votes: self
                .validators
                .iter()
                .enumerate()
                .map(|(i, pk)| pb::VoteInfo {
                    validator: Some(pb::Validator {
                        address: magnet_core::sha256(pk)[..20].to_vec().into(),
                        power: 10,
                    }),
                    // Validator 4 misses every fifth block.
                    block_id_flag: if i == 3 && self.height.is_multiple_of(5) {
                        1
                    } else {
                        2
                    },
                })
                .collect(),
        }
    }

    /// Now and then (1 block in 150) evidence that a validator double-signed the last block:
    /// the slashing module slashes its operator's node bond and jails it.
    fn evidence(&mut self, height: u64) -> Vec<pb::Misbehavior> {
        if height < 3 || !self.rng.chance(1, 150) {
            return Vec::new();
        }
        let v = self.rng.below(self.validators.len() as u64) as usize;
        vec![pb::Misbehavior {
            r#type: 1,
            validator: Some(pb::Validator {
                address: magnet_core::sha256(&self.validators[v])[..20]
                    .to_vec()
                    .into(),
                power: 10,
            }),
            height: height as i64 - 1,
            time: None,
            total_voting_power: 10 * self.validators.len() as i64,
        }]
    }

    /// Produce, check and commit one block.
    pub fn step(&mut self) -> Result<(), SimFailure> {
        let v = self.view()?;
        // The first block is empty: account numbers and sequences are read from committed
        // state, which exists from height 1 on.
        let gen = if self.height == 0 {
            Vec::new()
        } else {
            self.generate(&v)?
        };
        self.report.generated += gen.len() as u64;
        let height = self.height + 1;
        let time = self.time + self.rng.range(3, 7) as i64;
        let proposer: Vec<u8> =
            magnet_core::sha256(&self.validators[(height % 4) as usize])[..20].to_vec();
        let labels: BTreeMap<Vec<u8>, (String, bool)> = gen
            .iter()
            .map(|g| (g.bytes.clone(), (g.label.clone(), g.meant_invalid)))
            .collect();
        let all: Vec<Vec<u8>> = gen.iter().map(|g| g.bytes.clone()).collect();

        let process = |app: &MagnetApp, txs: &[Vec<u8>]| {
            app.process_proposal(pb::RequestProcessProposal {
                txs: txs.iter().cloned().map(Into::into).collect(),
                proposed_last_commit: None,
                misbehavior: vec![],
                hash: vec![0u8; 32].into(),
                height: height as i64,
                time: Some(timestamp(time)),
                next_validators_hash: Default::default(),
                proposer_address: proposer.clone().into(),
            })
            .status
                == pb::response_process_proposal::ProposalStatus::Accept as i32
        };

        // A stuffed proposal (one tx failing its ante) must be rejected by every replica.
        if let Some(bad) = gen.iter().find(|g| g.ante_bad) {
            if self.rng.chance(1, 2) {
                let mut stuffed: Vec<Vec<u8>> = gen
                    .iter()
                    .filter(|g| !g.ante_bad)
                    .map(|g| g.bytes.clone())
                    .collect();
                stuffed.push(bad.bytes.clone());
                for (name, app) in [("a", &self.a), ("b", &self.b)] {
                    if process(app, &stuffed) {
                        return Err(SimFailure {
                            height,
                            ..self.fail(
                                "process_proposal",
                                format!("replica {name} accepted a proposal with a tx that fails its ante ({})", labels[&bad.bytes].0),
                            )
                        });
                    }
                }
                self.report.stuffed_rejected += 1;
            }
        }

        let txs: Vec<Vec<u8>> = if self.rng.chance(1, 3) {
            // A byzantine proposer: every tx whose ante passes, messages failing or not.
            gen.iter()
                .filter(|g| !g.ante_bad)
                .map(|g| g.bytes.clone())
                .collect()
        } else {
            let r = self.a.prepare_proposal(prepare_request(
                all.clone(),
                height,
                time,
                proposer.clone(),
            ));
            self.report.dropped_by_prepare += (all.len() - r.txs.len()) as u64;
            r.txs.into_iter().map(|t| t.to_vec()).collect()
        };
        for (name, app) in [("a", &self.a), ("b", &self.b)] {
            if !process(app, &txs) {
                return Err(SimFailure {
                    height,
                    ..self.fail(
                        "process_proposal",
                        format!(
                            "replica {name} rejected a proposal of {} txs whose antes should pass; CheckTx says: {}",
                            txs.len(),
                            txs.iter()
                                .map(|t| {
                                    let r = app.check_tx(pb::RequestCheckTx { tx: t.clone().into(), r#type: 0 });
                                    let alone = process(app, std::slice::from_ref(t));
                                    format!("[{} {}: {} {}; alone {}]", labels.get(t).map_or("?", |l| l.0.as_str()), r.code, r.codespace, r.log, if alone { "accepted" } else { "REJECTED" })
                                })
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                    )
                });
            }
        }

        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&height.to_be_bytes());
        hash[8..16].copy_from_slice(&self.cfg.seed.to_be_bytes());
        let req = pb::RequestFinalizeBlock {
            txs: txs.iter().cloned().map(Into::into).collect(),
            decided_last_commit: Some(self.last_commit()),
            misbehavior: self.evidence(height),
            hash: hash.to_vec().into(),
            height: height as i64,
            time: Some(timestamp(time)),
            next_validators_hash: Default::default(),
            proposer_address: proposer.clone().into(),
        };
        let replicas: Vec<(&str, &MagnetApp)> = vec![("a", &self.a), ("b", &self.b)];
        let mut responses = Vec::new();
        for (name, app) in &replicas {
            let r = app
                .try_finalize_block(req.clone())
                .map_err(|e| SimFailure {
                    height,
                    ..self.fail("finalize", format!("replica {name}: {e}"))
                })?;
            app.commit();
            responses.push((*name, r));
        }
        let (_, first) = &responses[0];
        for (name, r) in &responses[1..] {
            if r.app_hash != first.app_hash {
                return Err(SimFailure {
                    height,
                    ..self.fail(
                        "app_hash",
                        format!(
                            "replica a has {} but replica {name} has {}",
                            hex::encode(&first.app_hash),
                            hex::encode(&r.app_hash)
                        ),
                    )
                });
            }
            let codes = |r: &pb::ResponseFinalizeBlock| {
                r.tx_results.iter().map(|t| t.code).collect::<Vec<_>>()
            };
            if codes(r) != codes(first) {
                return Err(SimFailure {
                    height,
                    ..self.fail(
                        "results",
                        format!("replica {name}'s tx codes differ from replica a's"),
                    )
                });
            }
            self.report.hash_comparisons += 1;
        }
        // The imported replica: same block, same app hash (the export carries the running
        // epoch's start, so the imported chain computes what the exported one does), and its
        // own books.
        if let Some(c) = &self.c {
            let r = c.try_finalize_block(req.clone()).map_err(|e| SimFailure {
                height,
                ..self.fail("import/finalize", e.to_string())
            })?;
            if r.app_hash != first.app_hash {
                return Err(SimFailure {
                    height,
                    ..self.fail(
                        "import/app_hash",
                        format!(
                            "the imported replica's app hash {} differs from replica a's {}",
                            hex::encode(&r.app_hash),
                            hex::encode(&first.app_hash)
                        ),
                    )
                });
            }
            self.report.hash_comparisons += 1;
            c.commit();
            if let Some(l) = self.import_ledger.as_mut() {
                l.fold(&r).map_err(|e| SimFailure {
                    seed: self.cfg.seed,
                    blocks: self.cfg.blocks,
                    height,
                    invariant: format!("import/{}", e.name()),
                    detail: e.to_string(),
                })?;
                let l = l.clone();
                let checked = c
                    .with_committed_state(|s| check_all(s).and_then(|()| l.check_supply_only(s)))
                    .map_err(|e| self.fail("store", e.to_string()))?;
                checked.map_err(|e| SimFailure {
                    seed: self.cfg.seed,
                    blocks: self.cfg.blocks,
                    height,
                    invariant: format!("import/{}", e.name()),
                    detail: e.to_string(),
                })?;
            }
            self.report.imported_blocks += 1;
        }
        let first = responses.swap_remove(0).1;
        for (tx, res) in txs.iter().zip(&first.tx_results) {
            let (label, meant_invalid) = labels.get(tx).cloned().unwrap_or_default();
            tracing::debug!(height, %label, meant_invalid, code = res.code, log = %res.log, events = ?res.events.iter().map(|e| (&e.r#type, e.attributes.iter().map(|a| (&a.key, &a.value)).collect::<Vec<_>>())).collect::<Vec<_>>(), "sim tx");
            let c = self.report.txs.entry(label).or_default();
            if res.code == 0 {
                c.ok += 1;
            } else {
                c.failed += 1;
            }
            if meant_invalid {
                c.meant_invalid += 1;
                if res.code == 0 {
                    c.invalid_accepted += 1;
                }
            }
        }
        self.height = height;
        self.time = time;
        self.report.blocks = height;

        // Invariants on the committed state.
        let ledger = &mut self.ledger;
        ledger.fold(&first).map_err(|e| SimFailure {
            seed: self.cfg.seed,
            blocks: self.cfg.blocks,
            height,
            invariant: e.name(),
            detail: e.to_string(),
        })?;
        let ledger = self.ledger.clone();
        let (checked, settlements) = self.read(|s| {
            let r = check_all(s).and_then(|()| ledger.check(s));
            let settlements: BTreeMap<Vec<u8>, Vec<u8>> =
                magnet_core::store::scan_prefix(s, magnet_rewards::state::SETTLEMENT_PREFIX)
                    .into_iter()
                    .collect();
            (r, settlements)
        })?;
        checked.map_err(|e: InvariantViolation| self.fail(e.name(), e.to_string()))?;
        for (k, old) in &self.settlements {
            match settlements.get(k) {
                Some(new) if new == old => {}
                Some(_) => {
                    return Err(self.fail(
                        "settlement",
                        format!("the settlement under {} was rewritten", hex::encode(k)),
                    ))
                }
                None => {
                    return Err(self.fail(
                        "settlement",
                        format!("the settlement under {} disappeared", hex::encode(k)),
                    ))
                }
            }
        }
        self.settlements = settlements;
        self.report.invariant_checks += 1;

        if self.export_at == Some(height) {
            self.export_import()?;
        }
        Ok(())
    }

    /// Export the committed state, start a third replica from it, and check it agrees.
    fn export_import(&mut self) -> Result<(), SimFailure> {
        let ex = self
            .a
            .export()
            .map_err(|e| self.fail("export", e.to_string()))?;
        let c = MagnetApp::open(&self.dir.join("imported"), app_config())
            .map_err(|e| self.fail("export", format!("open the import replica: {e}")))?;
        c.register_upgrade(UPGRADE_NAME);
        c.try_init_chain(init_request(
            &ex.app_state,
            self.time,
            self.height as i64 + 1,
        ))
        .map_err(|e| {
            self.fail(
                "export",
                format!("import the export of height {}: {e}", self.height),
            )
        })?;
        c.commit();
        // Same books: the imported state must pass every invariant and hold the same supply.
        let imported = c
            .with_committed_state(|s| check_all(s).map(|()| magnet_bank::state::all_supply(s)))
            .map_err(|e| self.fail("export", e.to_string()))?
            .map_err(|e| self.fail(format!("import/{}", e.name()), e.to_string()))?
            .map_err(|e| self.fail("export", e.to_string()))?;
        let ours = self
            .read(magnet_bank::state::all_supply)?
            .map_err(|e| self.fail("export", e.to_string()))?;
        if imported != ours {
            return Err(self.fail(
                "export",
                format!("imported supply {imported:?} differs from {ours:?}"),
            ));
        }
        // The imported genesis commits the very app hash the exported chain had at that height.
        let ((_, ours), (_, theirs)) = (self.a.last_commit(), c.last_commit());
        if ours != theirs {
            let all = |st: &dyn magnet_core::KvStore| magnet_core::store::scan_prefix(st, b"");
            let x = self.read(all)?;
            let y = c
                .with_committed_state(all)
                .map_err(|e| self.fail("export", e.to_string()))?;
            let differ: Vec<String> = x
                .iter()
                .filter(|kv| !y.contains(kv))
                .map(|(k, _)| format!("-{}", String::from_utf8_lossy(k)))
                .chain(
                    y.iter()
                        .filter(|kv| !x.contains(kv))
                        .map(|(k, _)| format!("+{}", String::from_utf8_lossy(k))),
                )
                .take(12)
                .collect();
            return Err(self.fail(
                "import/app_hash",
                format!(
                    "the imported genesis commits app hash {}, the exported chain {}; keys that \
                     differ (- exported only or changed, + imported): {}",
                    hex::encode(&theirs),
                    hex::encode(&ours),
                    differ.join(", ")
                ),
            ));
        }
        // Its export must be the same document (the round trip is lossless).
        let again = c.export().map_err(|e| self.fail("export", e.to_string()))?;
        if again.app_state != ex.app_state {
            let differ: Vec<String> = ex
                .app_state
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, v)| again.app_state.get(k.as_str()) != Some(*v))
                        .map(|(k, v)| {
                            let a = v.to_string();
                            let b = again
                                .app_state
                                .get(k.as_str())
                                .map(|x| x.to_string())
                                .unwrap_or_default();
                            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
                            format!(
                                "{k} (first difference at byte {at}: {:?} vs {:?})",
                                a.get(at.saturating_sub(80)..(at + 80).min(a.len())),
                                b.get(at.saturating_sub(80)..(at + 80).min(b.len()))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(self.fail(
                "export",
                format!(
                    "exporting the imported state gives a different app_state in {}",
                    differ.join("; ")
                ),
            ));
        }
        self.import_ledger = Some(
            c.with_committed_state(SupplyLedger::at_genesis)
                .map_err(|e| self.fail("export", e.to_string()))?
                .map_err(|e| self.fail("export", e.to_string()))?,
        );
        self.report.export_height = Some(self.height);
        self.c = Some(c);
        Ok(())
    }

    /// Final figures.
    pub fn finish(mut self) -> Result<SimReport, SimFailure> {
        let (epoch, settled) = self.read(|s| {
            (
                magnet_core::epoch::state(s).map(|e| e.current).unwrap_or(0),
                magnet_core::store::scan_prefix(s, magnet_rewards::state::SETTLEMENT_PREFIX).len(),
            )
        })?;
        self.report.epoch = epoch;
        self.report.settlements = settled as u64;
        self.report.minted = self.ledger.minted;
        self.report.burned = self.ledger.burned;
        self.report.elapsed_secs = self.started.elapsed().as_secs_f64();
        Ok(self.report)
    }
}

/// The simulated bytes of shard `index` of `object` (every agent derives the same).
fn sim_shard(object: &[u8; 32], index: u32, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len as usize);
    let mut ctr = 0u64;
    while (out.len() as u64) < len {
        let h =
            magnet_core::sha256(&[&object[..], &index.to_be_bytes(), &ctr.to_be_bytes()].concat());
        out.extend_from_slice(&h);
        ctr += 1;
    }
    out.truncate(len as usize);
    out
}

/// An honest proof of leaf `leaf` of the simulated shard (`leaf` 0 when the shard has no such
/// leaf: the proof then fails, as a bad one should).
fn sim_proof(object: &[u8; 32], index: u32, len: u64, leaf: u64) -> sm::Proof {
    let shard = sim_shard(object, index, len);
    sm::proof_for(&shard, *object, index, leaf).unwrap_or(sm::Proof {
        object: *object,
        index,
        leaf: Vec::new(),
        path: Vec::new(),
    })
}

fn any_send(from: &Address, to: &Address, amount: u128) -> prost_types::Any {
    let m = crate::testkit::msg_send(from, &to.to_bech32(), amount, magnet_core::NATIVE_DENOM);
    prost_types::Any {
        type_url: m.type_url,
        value: m.value,
    }
}

fn prepare_request(
    txs: Vec<Vec<u8>>,
    height: u64,
    time: i64,
    proposer: Vec<u8>,
) -> pb::RequestPrepareProposal {
    pb::RequestPrepareProposal {
        max_tx_bytes: 4 << 20,
        txs: txs.into_iter().map(Into::into).collect(),
        local_last_commit: None,
        misbehavior: vec![],
        height: height as i64,
        time: Some(timestamp(time)),
        next_validators_hash: Default::default(),
        proposer_address: proposer.into(),
    }
}

/// Run a whole simulation in `dir`; `progress(height, blocks)` is called after each block.
pub fn run(
    cfg: &SimConfig,
    dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SimReport, SimFailure> {
    let mut sim = Sim::new(cfg.clone(), dir)?;
    for _ in 0..cfg.blocks {
        sim.step()?;
        progress(sim.height(), cfg.blocks);
    }
    sim.finish()
}
