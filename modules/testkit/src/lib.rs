//! # magnet-testkit — the incentive modules wired as the app wires them
//!
//! [`Chain`] holds a [`MemStore`], the real [`magnet_bank::BankKeeper`] and the real
//! incentive modules, in the app's fixed order, behind a real [`ModuleRouter`] and a full
//! [`Services`]. It drives blocks exactly as the module docs prescribe: `begin_block` (all,
//! in order) → each tx's messages in an [`Overlay`] (routed by type URL; the signer checked
//! against `validate_msg`; any error discards the whole tx) → `end_block` (all) → the epoch
//! clock → `end_epoch(e)` (all) for each ended epoch.
//!
//! What it does not do: signature verification, sequences and fees (the app's ante handler);
//! a tx here names its signer. The whole-app tests with real signed txs live in `app/`.
//! The validator set is the app's too; here a validator's consensus address doubles as its
//! reward account ([`ConsensusAsAccount`]) so the fee split can be observed.
#![allow(clippy::unwrap_used)]

pub use {
    magnet_bank, magnet_contrib, magnet_custody, magnet_data, magnet_emission, magnet_gov,
    magnet_jobs, magnet_notary, magnet_registry, magnet_rewards, magnet_slashing,
};

use magnet_core::epoch::EpochsModule;
use magnet_core::services::ModuleRouter;
use magnet_core::store::Overlay;
use magnet_core::{
    Address, Bank, BlockInfo, Coins, Ctx, Event, GasMeter, KvStore, MemStore, Module, ModuleError,
    MsgResult, QueryCtx, Services,
};

/// The bank keeper.
pub static BANK: magnet_bank::BankKeeper = magnet_bank::BankKeeper;
/// The epoch clock.
pub static EPOCHS: EpochsModule = EpochsModule;
/// Registry.
pub static REGISTRY: magnet_registry::Registry = magnet_registry::Registry;
/// Slashing.
pub static SLASHING: magnet_slashing::SlashingModule = magnet_slashing::SlashingModule;
/// Emission.
pub static EMISSION: magnet_emission::EmissionModule = magnet_emission::EmissionModule;
/// Contrib.
pub static CONTRIB: magnet_contrib::ContribModule = magnet_contrib::ContribModule;
/// Rewards.
pub static REWARDS: magnet_rewards::RewardsModule = magnet_rewards::RewardsModule;
/// Governance.
pub static GOV: magnet_gov::GovModule = magnet_gov::GovModule;
/// Notary panel.
pub static NOTARY: magnet_notary::NotaryModule = magnet_notary::NotaryModule;
/// Data registration.
pub static DATA: magnet_data::DataModule = magnet_data::DataModule;
/// Jobs, lineage and API revenue.
pub static JOBS: magnet_jobs::JobsModule = magnet_jobs::JobsModule;
/// Storage custody.
pub static CUSTODY: magnet_custody::CustodyModule = magnet_custody::CustodyModule;
/// The router.
pub static ROUTER: Router = Router;
/// The validator set stand-in.
pub static VALIDATORS: ConsensusAsAccount = ConsensusAsAccount;

/// The modules in execution order (the app's documented order).
pub fn modules() -> Vec<&'static dyn Module> {
    vec![
        &EPOCHS, &REGISTRY, &SLASHING, &EMISSION, &CONTRIB, &REWARDS, &NOTARY, &DATA, &JOBS,
        &CUSTODY, &GOV,
    ]
}

/// Routes params to modules by name.
pub struct Router;

impl ModuleRouter for Router {
    fn module_names(&self) -> Vec<&'static str> {
        modules().iter().map(|m| m.name()).collect()
    }
    fn validate_params(&self, module: &str, params: &serde_json::Value) -> Result<(), ModuleError> {
        find(module)?.validate_params(params)
    }
    fn set_params(
        &self,
        ctx: &mut Ctx,
        module: &str,
        params: &serde_json::Value,
    ) -> Result<(), ModuleError> {
        find(module)?.set_params(ctx, params)
    }
}

fn find(module: &str) -> Result<&'static dyn Module, ModuleError> {
    modules()
        .into_iter()
        .find(|m| m.name() == module)
        .ok_or_else(|| ModuleError::invalid_request(format!("no module named {module}")))
}

/// A validator's consensus address (20 bytes) is also its reward account.
pub struct ConsensusAsAccount;

impl magnet_core::Validators for ConsensusAsAccount {
    fn reward_address(
        &self,
        _: &mut Ctx,
        consensus: &[u8],
    ) -> Result<Option<Address>, ModuleError> {
        Ok(Address::from_slice(consensus).ok())
    }
    fn by_consensus_address(
        &self,
        _: &mut Ctx,
        _: &[u8],
    ) -> Result<Option<magnet_core::ValidatorRecord>, ModuleError> {
        Ok(None)
    }
    fn effective_set(
        &self,
        _: &mut Ctx,
    ) -> Result<std::collections::BTreeMap<Vec<u8>, u64>, ModuleError> {
        Err(ModuleError::invalid_request(
            "the testkit has no validator set",
        ))
    }
    fn set_power(&self, _: &mut Ctx, _: &[u8], _: u64) -> Result<(), ModuleError> {
        Err(ModuleError::invalid_request(
            "the testkit has no validator set",
        ))
    }
    fn set_operator(&self, _: &mut Ctx, _: &[u8], _: &Address) -> Result<(), ModuleError> {
        Err(ModuleError::invalid_request(
            "the testkit has no validator set",
        ))
    }
}

/// Every service, wired.
pub fn services() -> Services<'static> {
    let mut s = Services::new(&BANK, &ROUTER);
    s.registry = Some(&REGISTRY);
    s.slashing = Some(&SLASHING);
    s.emission = Some(&EMISSION);
    s.contrib = Some(&CONTRIB);
    s.jobs = Some(&JOBS);
    s.notary = Some(&NOTARY);
    s.data = Some(&DATA);
    s.custody = Some(&CUSTODY);
    s.validators = Some(&VALIDATORS);
    s
}

/// The 32 secret bytes of deterministic key `i`.
pub fn secret(i: u32) -> [u8; 32] {
    let mut sk = [0u8; 32];
    sk[..4].copy_from_slice(&(i + 1).to_be_bytes());
    sk[31] = 7;
    sk
}

/// A deterministic secp256k1 key `i`: (compressed public key, account address).
pub fn key(i: u32) -> (Vec<u8>, Address) {
    let sk = k256::ecdsa::SigningKey::from_slice(&secret(i)).unwrap();
    let pk = sk
        .verifying_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec();
    let a = Address::from_pubkey(&pk);
    (pk, a)
}

/// A chain of the incentive modules over a [`MemStore`].
pub struct Chain {
    /// The state.
    pub store: MemStore,
    /// The block being built (or the last one).
    pub block: BlockInfo,
    /// Every event so far (block hooks and successful txs).
    pub events: Vec<Event>,
    /// Σ genesis balances.
    pub genesis_supply: u128,
}

impl Chain {
    /// Genesis at block time `time` with `app_state` (`{module: {params: …}}`) and balances.
    pub fn genesis(time: u64, app_state: serde_json::Value, balances: &[(Address, u128)]) -> Chain {
        let mut c = Chain {
            store: MemStore::new(),
            block: BlockInfo {
                chain_id: "magnet-test-1".into(),
                height: 0,
                time_secs: time,
                ..Default::default()
            },
            events: Vec::new(),
            genesis_supply: 0,
        };
        let block = c.block.clone();
        let mut ctx = Ctx::new(&block, &mut c.store, GasMeter::infinite(), services());
        for m in modules() {
            let g = app_state
                .get(m.name())
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            m.init_genesis(&mut ctx, &g).unwrap();
        }
        for (a, n) in balances {
            BANK.mint(&mut ctx, a, &Coins::umag(*n)).unwrap();
            c.genesis_supply += n;
        }
        drop(ctx);
        c
    }

    fn hook<F>(&mut self, f: F) -> Result<(), ModuleError>
    where
        F: FnOnce(&mut Ctx) -> Result<(), ModuleError>,
    {
        let block = self.block.clone();
        let mut ctx = Ctx::new(&block, &mut self.store, GasMeter::infinite(), services());
        let r = f(&mut ctx);
        self.events.extend(ctx.take_events());
        r
    }

    /// Start the next block `dt` seconds after the last one.
    pub fn begin(&mut self, dt: u64) -> Result<(), ModuleError> {
        self.begin_with(dt, Vec::new())
    }

    /// Start the next block with these last-commit votes.
    pub fn begin_with(
        &mut self,
        dt: u64,
        votes: Vec<magnet_core::context::VoteInfo>,
    ) -> Result<(), ModuleError> {
        self.block.height += 1;
        self.block.time_secs += dt;
        self.block.hash = magnet_core::sha256(
            &[
                self.block.height.to_be_bytes(),
                self.block.time_secs.to_be_bytes(),
            ]
            .concat(),
        );
        self.block.last_votes = votes;
        self.hook(|ctx| {
            for m in modules() {
                m.begin_block(ctx)?;
            }
            Ok(())
        })
    }

    /// Deliver one tx signed by `signer`; all or nothing.
    pub fn deliver(
        &mut self,
        signer: &Address,
        msgs: &[prost_types::Any],
    ) -> Result<Vec<MsgResult>, ModuleError> {
        self.deliver_with_gas(signer, msgs, 50_000_000).0
    }

    /// [`Chain::deliver`] with a gas limit; also returns the gas used. Running out (through
    /// the metered methods or the store view) fails the tx with out-of-gas (`sdk` 11), as the
    /// app does; fees are the app's and are not charged here.
    pub fn deliver_with_gas(
        &mut self,
        signer: &Address,
        msgs: &[prost_types::Any],
        gas_limit: u64,
    ) -> (Result<Vec<MsgResult>, ModuleError>, u64) {
        let block = self.block.clone();
        let mut overlay = Overlay::new(&mut self.store);
        let mut ctx = Ctx::new(&block, &mut overlay, GasMeter::new(gas_limit), services());
        ctx.signer = Some(*signer);
        let mut out = Vec::new();
        let mut res = Ok(());
        for msg in msgs {
            let r = (|| {
                let m = modules()
                    .into_iter()
                    .find(|m| m.msg_type_urls().contains(&msg.type_url.as_str()))
                    .ok_or_else(|| ModuleError::unknown_msg(&msg.type_url))?;
                let need = m.validate_msg(msg)?;
                if need != *signer {
                    return Err(ModuleError::new(
                        "sdk",
                        8,
                        format!("message must be signed by {need}, not {signer}"),
                    ));
                }
                let r = m.deliver(&mut ctx, msg);
                match ctx.gas().exhausted() {
                    Some(e) => Err(e.into()),
                    None => r,
                }
            })();
            match r {
                Ok(x) => out.push(x),
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        let events = ctx.take_events();
        let used = ctx.gas().used();
        drop(ctx);
        let r = match res {
            Ok(()) => {
                overlay.commit();
                self.events.extend(events);
                Ok(out)
            }
            Err(e) => {
                overlay.discard();
                Err(e)
            }
        };
        (r, used)
    }

    /// End the block: `end_block`, the epoch clock, `end_epoch` for each ended epoch.
    /// Returns the epochs that ended.
    pub fn end(&mut self) -> Result<Vec<u64>, ModuleError> {
        let mut ended = Vec::new();
        self.hook(|ctx| {
            for m in modules() {
                m.end_block(ctx)?;
            }
            ended = magnet_core::epoch::advance(ctx)?;
            for e in &ended {
                for m in modules() {
                    m.end_epoch(ctx, *e)?;
                }
            }
            Ok(())
        })?;
        Ok(ended)
    }

    /// An empty block `dt` seconds later.
    pub fn empty_block(&mut self, dt: u64) -> Result<Vec<u64>, ModuleError> {
        self.begin(dt)?;
        self.end()
    }

    /// A block holding one tx; returns the tx's result.
    pub fn tx_block(
        &mut self,
        dt: u64,
        signer: &Address,
        msgs: &[prost_types::Any],
    ) -> Result<Vec<MsgResult>, ModuleError> {
        self.begin(dt).unwrap();
        let r = self.deliver(signer, msgs);
        self.end().unwrap();
        r
    }

    /// Run a closure with a hook context (to call services directly).
    pub fn with_ctx<R>(&mut self, f: impl FnOnce(&mut Ctx) -> R) -> R {
        let block = self.block.clone();
        let mut ctx = Ctx::new(&block, &mut self.store, GasMeter::infinite(), services());
        let r = f(&mut ctx);
        self.events.extend(ctx.take_events());
        r
    }

    /// Query a path.
    pub fn query(&self, path: &str, data: &[u8]) -> Result<serde_json::Value, ModuleError> {
        let q = QueryCtx {
            block: &self.block,
            store: &self.store,
        };
        for m in modules() {
            if let Some(r) = m.query(&q, path, data) {
                return r.and_then(|b| {
                    serde_json::from_slice(&b)
                        .map_err(|e| ModuleError::invalid_request(e.to_string()))
                });
            }
        }
        Err(ModuleError::invalid_request(format!(
            "no module answers {path}"
        )))
    }

    /// umag balance.
    pub fn balance(&self, a: &Address) -> u128 {
        let k = magnet_bank::state::balance_key(a, magnet_core::NATIVE_DENOM);
        magnet_core::store::get_borsh::<u128>(&self.store, &k)
            .unwrap()
            .unwrap_or(0)
    }

    /// umag supply.
    pub fn supply(&self) -> u128 {
        let k = magnet_bank::state::supply_key(magnet_core::NATIVE_DENOM);
        magnet_core::store::get_borsh::<u128>(&self.store, &k)
            .unwrap()
            .unwrap_or(0)
    }

    /// Current epoch.
    pub fn epoch(&self) -> u64 {
        magnet_core::epoch::state(&self.store).unwrap().current
    }

    /// Σ of `burn` event amounts (umag) so far.
    pub fn burned(&self) -> u128 {
        self.events
            .iter()
            .filter(|e| e.kind == "burn")
            .map(|e| {
                e.get("amount")
                    .unwrap_or("0")
                    .trim_end_matches("umag")
                    .parse::<u128>()
                    .unwrap_or(0)
            })
            .sum()
    }

    /// All events of `kind`.
    pub fn events_of(&self, kind: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind == kind).collect()
    }

    /// A snapshot of the whole state (to prove a failed tx changed nothing).
    pub fn snapshot(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.store.range(b"", None)
    }
}

/// Test fixtures: a short-epoch genesis and nodes with separate operator and node keys.
pub mod fixtures {
    use super::*;

    /// Genesis block time.
    pub const T0: u64 = 1_700_000_000;
    /// Epoch length in the test genesis.
    pub const EPOCH: u64 = 1_000;
    /// Pool minted per epoch by the test schedule.
    pub const POOL: u128 = 1_000_000;
    /// Starting balance of every operator.
    pub const FUNDS: u128 = 100_000_000_000;

    /// A genesis with 1000 s epochs, windows commit 200 / reveal 100 / eval commit 100 /
    /// eval reveal 100 / challenge 200, 3 heartbeats (10 s apart) per epoch, and a schedule of
    /// exactly [`POOL`] per epoch.
    pub fn app_state() -> serde_json::Value {
        let mut reg = serde_json::to_value(magnet_registry::Params::default()).unwrap();
        reg["heartbeat_interval_secs"] = 10.into();
        reg["min_heartbeats_per_epoch"] = 3.into();
        reg["liveness_window_secs"] = 150.into();
        reg["unbonding_delay_secs"] = 5_000.into();
        let mut em = serde_json::to_value(magnet_emission::Params::default()).unwrap();
        // 1000 s of a 31,536,000 s year: POOL per epoch.
        em["initial_annual_emission"] = (POOL * 31_536).to_string().into();
        em["decay_ppm_per_year"] = 0.into();
        em["daily_cap"] = (POOL * 100).to_string().into();
        em["annual_cap"] = (POOL * 40_000).to_string().into();
        em["blocks_per_day"] = 1_000.into();
        let mut co = serde_json::to_value(magnet_contrib::Params::default()).unwrap();
        co["commit_window_secs"] = 200.into();
        co["reveal_window_secs"] = 100.into();
        co["eval_commit_window_secs"] = 100.into();
        co["eval_reveal_window_secs"] = 100.into();
        co["challenge_window_secs"] = 200.into();
        co["evaluator_slots"] = 5.into();
        co["min_evaluations"] = 3.into();
        serde_json::json!({
            "epochs": { "params": { "duration_secs": EPOCH, "max_ends_per_block": 16 } },
            "registry": { "params": reg },
            "emission": { "params": em },
            "contrib": { "params": co },
        })
    }

    /// An SSD report that passes the default thresholds (read 100 MB/s, write 50 MB/s).
    pub fn passing_ssd() -> magnet_registry::msgs::SsdReport {
        magnet_registry::msgs::SsdReport {
            read_kbps: 250_000,
            write_kbps: 120_000,
            block_size: 4096,
            file_bytes: 1 << 30,
            direct_io: true,
        }
    }

    /// An operator account and its node key.
    #[derive(Clone, Debug)]
    pub struct Node {
        /// Operator account.
        pub op: Address,
        /// Node key (compressed).
        pub node_pk: Vec<u8>,
        /// Node key address.
        pub node: Address,
        /// Node key secret (signs work claims).
        pub node_sk: [u8; 32],
        /// Node id as the registry derives it.
        pub node_id: String,
    }

    /// Node `i`: operator key `i`, node key `1000 + i`.
    pub fn node(i: u32) -> Node {
        let (_, op) = key(i);
        let (node_pk, node) = key(1000 + i);
        let node_id = magnet_registry::state::node_id(&node_pk);
        Node {
            op,
            node_pk,
            node,
            node_sk: secret(1000 + i),
            node_id,
        }
    }

    /// A test chain at genesis where nodes `0..n` hold [`FUNDS`].
    pub fn chain(n: u32) -> Chain {
        let balances: Vec<(Address, u128)> = (0..n).map(|i| (node(i).op, FUNDS)).collect();
        Chain::genesis(T0, app_state(), &balances)
    }

    impl Node {
        /// Register with `tier` and `bond`.
        pub fn register(
            &self,
            c: &mut Chain,
            tier: &str,
            bond: u128,
        ) -> Result<Vec<MsgResult>, ModuleError> {
            let m = magnet_registry::msgs::register_node(
                &self.op,
                &self.node_pk,
                tier,
                "https://n:7000",
                "eu",
                "{}",
                bond,
            );
            c.deliver(&self.op, &[m])
        }
        /// Register with `tier`, `bond` and an SSD report (`None`: no report).
        pub fn register_with_ssd(
            &self,
            c: &mut Chain,
            tier: &str,
            bond: u128,
            ssd: Option<magnet_registry::msgs::SsdReport>,
        ) -> Result<Vec<MsgResult>, ModuleError> {
            let m = magnet_registry::msgs::register_node_with_ssd(
                &self.op,
                &self.node_pk,
                tier,
                "https://n:7000",
                "eu",
                "{}",
                bond,
                ssd,
            );
            c.deliver(&self.op, &[m])
        }
        /// Heartbeat.
        pub fn heartbeat(&self, c: &mut Chain) -> Result<Vec<MsgResult>, ModuleError> {
            c.deliver(&self.node, &[magnet_registry::msgs::heartbeat(&self.node)])
        }
    }

    /// Advance (in empty blocks of at most `step` seconds, all nodes heart-beating in each)
    /// until block time reaches `t`.
    pub fn run_until(c: &mut Chain, t: u64, step: u64, beating: &[Node]) {
        while c.block.time_secs < t {
            let dt = step.min(t - c.block.time_secs);
            c.begin(dt).unwrap();
            for n in beating {
                let _ = n.heartbeat(c);
            }
            c.end().unwrap();
        }
    }
}

/// Helpers that drive contributions through commit → reveal → evaluation.
pub mod flow {
    use super::fixtures::*;
    use super::*;
    use magnet_contrib::msgs as cm;
    use magnet_contrib::state::Work;
    use std::collections::BTreeMap;

    /// A work result with distinct hashes per `tag`.
    pub fn work(steps: u64, params: u64, kind: &str, tag: u8) -> Work {
        Work {
            checkpoint_hash: [tag; 32],
            steps,
            params,
            data_hash: [tag.wrapping_add(100); 32],
            kind: kind.into(),
            entries: Vec::new(),
        }
    }

    /// The training spec of test jobs: H = 1,000,000 inner steps of 1 × 1 tokens (so any test
    /// step count fits), `params` parameters, rounds every 2 blocks from `first_height`,
    /// round-robin leaders, staleness ≤ 2 halving per merge.
    pub fn spec(params: u64, first_height: u64) -> magnet_jobs::state::TrainingSpec {
        magnet_jobs::state::TrainingSpec {
            inner_steps: 1_000_000,
            batch_size: 1,
            seq_len: 1,
            params,
            first_height,
            blocks_per_round: 2,
            leader_rule: "round_robin".into(),
            max_staleness: 2,
            stale_decay_bps: 5_000,
            outer: Default::default(),
        }
    }

    /// Creates a training job (in the current block) whose round 0 starts at the next block;
    /// returns its id.
    pub fn training_job(
        c: &mut Chain,
        creator: &Address,
        params: u64,
        budget: u128,
        deadline: u64,
    ) -> u64 {
        let s = spec(params, c.block.height + 1);
        c.deliver(
            creator,
            &[magnet_jobs::msgs::create_training_job(
                creator,
                "bitnet-lm",
                [1; 32],
                BASE_CHECKPOINT,
                budget,
                deadline,
                Some(&s),
            )],
        )
        .unwrap();
        c.query("/magnet.jobs.v1/jobs", b"")
            .unwrap()
            .as_array()
            .unwrap()
            .len() as u64
    }

    /// A block creating a training job (params 1,000) by `creator`; returns its id.
    pub fn open_job(c: &mut Chain, creator: &Address) -> u64 {
        c.begin(1).unwrap();
        let id = training_job(c, creator, 1_000, 1_000_000, T0 + 100 * EPOCH);
        c.end().unwrap();
        id
    }

    /// The base checkpoint of test jobs.
    pub const BASE_CHECKPOINT: [u8; 32] = [0xB0; 32];

    /// The elected leader's node id of `job`'s round `round` (None before it starts).
    pub fn elected(c: &Chain, job: u64, round: u64) -> Option<String> {
        let e = c
            .query(
                "/magnet.jobs.v1/election",
                format!("{job}/{round}").as_bytes(),
            )
            .ok()?;
        e["leader"].as_str().map(str::to_string)
    }

    /// `n`'s signed claim on the Δ `delta` for `job`'s `round`, trained from `base`, with weight
    /// left 0 (fill it with [`honest_weights`]).
    #[allow(clippy::too_many_arguments)]
    pub fn signed(
        c: &Chain,
        n: &Node,
        job: u64,
        round: u64,
        base: [u8; 32],
        delta: [u8; 32],
        steps: u64,
        tokens: u64,
    ) -> magnet_jobs::msgs::Accepted {
        let mut a = magnet_jobs::msgs::Accepted {
            node: n.node,
            job,
            round,
            base_hash: base,
            delta_hash: delta,
            steps,
            tokens,
            signature: Vec::new(),
            weight_ppm: 0,
            content_address: [0u8; 32],
        };
        a.signature = a
            .claim(&c.block.chain_id)
            .sign(&n.node_sk)
            .unwrap()
            .to_vec();
        a
    }

    /// Sets the weights the chain recomputes for fresh (staleness 0) claims by `nodes`.
    pub fn honest_weights(entries: &mut [magnet_jobs::msgs::Accepted], nodes: &[Node]) {
        let id = |a: &magnet_jobs::msgs::Accepted| {
            nodes
                .iter()
                .find(|n| n.node == a.node)
                .map(|n| n.node_id.clone())
                .unwrap_or_default()
        };
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|i| id(&entries[*i]));
        let raws: Vec<u128> = order
            .iter()
            .map(|i| magnet_rounds::raw_weight(entries[*i].tokens, 10_000, 0, 5_000, 2))
            .collect();
        for (i, w) in order.into_iter().zip(magnet_rounds::weights_ppm(&raws)) {
            entries[i].weight_ppm = w;
        }
    }

    /// Runs blocks (all `nodes` heart-beating) until round `round` of `job` has started, then
    /// has its elected leader record it on the job's head with fresh Δs trained by `trainers`
    /// (node index, steps; one token per step); returns each trainer's lineage entry.
    pub fn train_round(
        c: &mut Chain,
        nodes: &[Node],
        job: u64,
        round: u64,
        trainers: &[(usize, u64)],
    ) -> Vec<(usize, (u64, [u8; 32]))> {
        while elected(c, job, round).is_none() {
            c.begin(1).unwrap();
            for n in nodes {
                let _ = n.heartbeat(c);
            }
            c.end().unwrap();
        }
        let leader_id = elected(c, job, round).unwrap();
        let leader = nodes
            .iter()
            .find(|n| n.node_id == leader_id)
            .unwrap()
            .clone();
        let j = c
            .query("/magnet.jobs.v1/job", job.to_string().as_bytes())
            .unwrap();
        let mut head = [0u8; 32];
        hex::decode_to_slice(j["head"].as_str().unwrap(), &mut head).unwrap();
        let mut entries = Vec::new();
        let mut out = Vec::new();
        for (i, steps) in trainers {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&job.to_be_bytes());
            d[8..16].copy_from_slice(&round.to_be_bytes());
            d[16] = *i as u8;
            d[31] = 0xD;
            entries.push(signed(c, &nodes[*i], job, round, head, d, *steps, *steps));
            out.push((*i, (round, d)));
        }
        honest_weights(&mut entries, nodes);
        let mut merged = head;
        merged[0] ^= 0x5A;
        merged[1] = round as u8;
        merged[2] = job as u8;
        c.begin(1).unwrap();
        c.deliver(
            &leader.node,
            &[magnet_jobs::msgs::record_round(
                &leader.node,
                job,
                round,
                head,
                merged,
                &entries,
                &[],
            )],
        )
        .unwrap();
        c.end().unwrap();
        out
    }

    /// A training result of `steps` steps naming `entries`.
    pub fn trained_work(steps: u64, params: u64, tag: u8, entries: &[(u64, [u8; 32])]) -> Work {
        let mut w = work(steps, params, "training", tag);
        w.entries = entries.to_vec();
        w
    }

    /// Evaluators assigned to a contribution, with slots.
    pub fn assigned(c: &Chain, epoch: u64, job: u64, contributor: &Address) -> Vec<(Address, u32)> {
        let v = c
            .query(
                "/magnet.contrib.v1/assignments",
                format!("{epoch}/{job}/{contributor}").as_bytes(),
            )
            .unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|pair| {
                let a: Address = pair[0].as_str().unwrap().parse().unwrap();
                (a, pair[1]["slots"].as_u64().unwrap() as u32)
            })
            .collect()
    }

    /// A chain with `n` registered `gpu_compute` nodes (bond 1,000 MAG each), heart-beating
    /// until `T0 + 40`.
    pub fn setup(n: u32) -> (Chain, Vec<Node>) {
        setup_with(n, app_state())
    }

    /// As [`setup`] with a custom genesis.
    pub fn setup_with(n: u32, app_state: serde_json::Value) -> (Chain, Vec<Node>) {
        let nodes: Vec<Node> = (0..n).map(node).collect();
        let balances: Vec<(Address, u128)> = nodes.iter().map(|x| (x.op, FUNDS)).collect();
        let mut c = Chain::genesis(T0, app_state, &balances);
        c.begin(1).unwrap();
        for x in &nodes {
            x.register(&mut c, "gpu_compute", 1_000_000_000).unwrap();
        }
        c.end().unwrap();
        run_until(&mut c, T0 + 40, 10, &nodes);
        (c, nodes)
    }

    /// Commit `w` for `job` by `n` in the current epoch (in the current block).
    pub fn commit(
        c: &mut Chain,
        n: &Node,
        job: u64,
        w: &Work,
        nonce: &[u8],
    ) -> Result<Vec<MsgResult>, ModuleError> {
        let e = c.epoch();
        let h = cm::work_commitment(&c.block.chain_id, e, job, &n.op, w, nonce);
        c.deliver(&n.node, &[cm::commit(&n.node, e, job, h)])
    }

    /// Reveal.
    pub fn reveal(
        c: &mut Chain,
        n: &Node,
        job: u64,
        w: &Work,
        nonce: &[u8],
    ) -> Result<Vec<MsgResult>, ModuleError> {
        let e = c.epoch();
        c.deliver(&n.node, &[cm::reveal(&n.node, e, job, w, nonce)])
    }

    /// Run one epoch's full evaluation for `contribs` (node index, work) in epoch 0 of a
    /// chain from [`setup`]: commit, reveal, evaluator commit and reveal with `score(contributor,
    /// evaluator)`, until the evaluator reveal window closes (`T0 + 510`). If `job` does not
    /// exist it is created as a training job, and if it has no recorded round yet, the
    /// training results that name no lineage entries get one round of signed Δs of their
    /// steps first (compute is verified only through the lineage). Returns the slots of
    /// every evaluator, summed over contributions.
    pub fn evaluate_epoch0(
        c: &mut Chain,
        nodes: &[Node],
        job: u64,
        contribs: &[(usize, Work)],
        score: impl Fn(&Address, &Address) -> i64,
    ) -> BTreeMap<Address, u128> {
        let by_op: BTreeMap<Address, Node> = nodes.iter().map(|n| (n.op, n.clone())).collect();
        // Compute is verified only through the lineage: make sure the job exists, and give the
        // training results that name no entries one round of signed Δs of their steps.
        let params = contribs.first().map_or(1_000, |(_, w)| w.params.max(1));
        while c
            .query("/magnet.jobs.v1/job", job.to_string().as_bytes())
            .unwrap()
            .is_null()
        {
            c.begin(1).unwrap();
            training_job(c, &nodes[0].op, params, 1_000_000, T0 + 100 * EPOCH);
            c.end().unwrap();
        }
        let trainers: Vec<(usize, u64)> = contribs
            .iter()
            .filter(|(_, w)| w.kind == "training" && w.entries.is_empty())
            .map(|(i, w)| (*i, w.steps))
            .collect();
        let mut contribs = contribs.to_vec();
        let recorded = c
            .query("/magnet.jobs.v1/lineage", job.to_string().as_bytes())
            .unwrap()["rounds"]
            .as_array()
            .map_or(0, |r| r.len());
        // Only for a job without rounds yet: a test that trained its own rounds names its
        // entries itself (and a result naming none is worth nothing).
        if !trainers.is_empty() && recorded == 0 {
            let round = 0;
            for (i, e) in train_round(c, nodes, job, round, &trainers) {
                if let Some((_, w)) = contribs
                    .iter_mut()
                    .find(|(k, w)| *k == i && w.kind == "training" && w.entries.is_empty())
                {
                    w.entries = vec![e];
                }
            }
        }
        let contribs = &contribs[..];
        c.begin(5).unwrap();
        for (i, w) in contribs {
            commit(c, &nodes[*i], job, w, b"n1").unwrap();
        }
        c.end().unwrap();
        run_until(c, T0 + 210, 10, nodes);
        c.begin(1).unwrap();
        for (i, w) in contribs {
            reveal(c, &nodes[*i], job, w, b"n1").unwrap();
        }
        c.end().unwrap();
        run_until(c, T0 + 310, 10, nodes);
        let mut slots = BTreeMap::new();
        c.begin(1).unwrap();
        for (i, _) in contribs {
            let who = nodes[*i].op;
            for (ev, s) in assigned(c, 0, job, &who) {
                *slots.entry(ev).or_default() += s as u128;
                let n = &by_op[&ev];
                let h = cm::score_commitment(
                    &c.block.chain_id,
                    0,
                    job,
                    &who,
                    &ev,
                    score(&who, &ev),
                    b"ev",
                );
                c.deliver(&n.node, &[cm::eval_commit(&n.node, 0, job, &who, h)])
                    .unwrap();
            }
        }
        c.end().unwrap();
        run_until(c, T0 + 410, 10, nodes);
        c.begin(1).unwrap();
        for (i, _) in contribs {
            let who = nodes[*i].op;
            for (ev, _) in assigned(c, 0, job, &who) {
                let n = &by_op[&ev];
                c.deliver(
                    &n.node,
                    &[cm::eval_reveal(
                        &n.node,
                        0,
                        job,
                        &who,
                        score(&who, &ev),
                        b"ev",
                    )],
                )
                .unwrap();
            }
        }
        c.end().unwrap();
        run_until(c, T0 + 510, 10, nodes);
        slots
    }

    /// Slash records so far.
    pub fn slashes(c: &Chain) -> Vec<serde_json::Value> {
        c.query("/magnet.slashing.v1/records", b"")
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    /// Bond of `op` now.
    pub fn bond(c: &Chain, op: &Address) -> u128 {
        let v = c
            .query("/magnet.registry.v1/node", op.to_string().as_bytes())
            .unwrap();
        v["bond"].as_str().unwrap().parse().unwrap()
    }
}
