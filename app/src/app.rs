//! [`MagnetApp`]: the ABCI 2.0 application.
//!
//! One value, cheap to clone (`Arc` inside), shared by the four ABCI connections; every call
//! takes one internal lock, so calls never interleave.
//!
//! * **InitChain** runs every module's `init_genesis` (in registration order) on the
//!   `app_state` JSON and stages the result as height `initial_height − 1`; it is persisted
//!   together with the first block at the first Commit (so a crash before that re-runs
//!   InitChain, as CometBFT expects).
//! * **FinalizeBlock** computes all state changes (hooks, txs, epochs, validator updates)
//!   into a write buffer, hashes them into the merkle store and returns the app hash; nothing is
//!   on disk yet. **Commit** persists the block atomically.
//! * **CheckTx** runs the full tx (ante and messages) on a scratch buffer over committed state
//!   that accumulates the mempool's accepted txs (so a sender may queue sequence n, n+1, …);
//!   Commit resets it and CometBFT's recheck rebuilds it.
//! * **PrepareProposal** keeps the txs that still pass on a scratch state, within
//!   `max_tx_bytes`, then drops any that would fail ProcessProposal's rule.
//! * **ProcessProposal** (ADR 0095) replays the proposal's txs in order, in Deliver mode, on a
//!   throwaway buffer over the state the block starts from, and rejects the block if any tx
//!   fails to decode or fails its ante (bad signature, wrong sequence, unknown account,
//!   insufficient fee or funds, timeout): such a tx would pay nothing in FinalizeBlock. A tx
//!   whose messages fail is accepted (it pays its fee). It changes no state.
//! * **Query** routes `path` to the module that answers it, at the latest or a past height.
//! * **Snapshots** (ADR 0099): after the Commit of every `snapshot.interval`-th height a
//!   background thread writes the committed key-value set to `data_dir/snapshots/`
//!   (`ListSnapshots`, `LoadSnapshotChunk` serve it). On an empty app, `OfferSnapshot` keeps
//!   the light client's trusted app hash, `ApplySnapshotChunk` checks each chunk's SHA-256, and
//!   the last chunk rebuilds the store, committed only if its root is the trusted app hash.

use crate::auth::{self, AuthParams, GasPrice};
use crate::error::{codes, TxError};
use crate::exec::{exec_tx, ExecEnv, Mode, SigCheck, TxOutcome};
use crate::modules::{registered_modules, ModuleSet, RegistryError};
use crate::snapshot::{Restore, SnapshotConfig, SnapshotError, SnapshotStore};
use crate::store::{BlockBuffer, MerkleStore, StoreConfig, StoreError};
use crate::tx::{decode_tx, DecodeMode, DecodedTx};
use magnet_core::context::{Misbehavior, VoteInfo};
use magnet_core::store::Overlay;
use magnet_core::{BlockInfo, Ctx, Event, GasMeter, KvStore, Module, QueryCtx};
use prost::Message;
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use tendermint_proto::v0_38::abci as pb;

/// State key of the chain id.
pub const CHAIN_ID_KEY: &[u8] = b"app/chain_id";
/// State key of the last block's height and time.
pub const LAST_BLOCK_KEY: &[u8] = b"app/last_block";
pub use crate::validators::{validator_set, VALIDATOR_PREFIX};

/// The ABCI `Info.data` name.
pub const APP_NAME: &str = "magnet";
/// Protocol version of the app (bump on a state-machine change).
pub const APP_VERSION: u64 = 1;

/// Node-local configuration of the app (not consensus).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AppConfig {
    /// Store options (pruning window, fsync).
    #[serde(default)]
    pub store: StoreConfig,
    /// This node's mempool minimum gas price in umag per gas (e.g. `"0.025"`); the consensus
    /// `auth.min_gas_price` applies too, whichever is higher.
    #[serde(default = "default_min_gas_price")]
    pub min_gas_price: String,
    /// State-sync snapshots served to new nodes (off by default).
    #[serde(default)]
    pub snapshot: SnapshotConfig,
}

fn default_min_gas_price() -> String {
    "0".to_string()
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            store: StoreConfig::default(),
            min_gas_price: default_min_gas_price(),
            snapshot: SnapshotConfig::default(),
        }
    }
}

/// Errors of opening the app, genesis and export.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The module list is inconsistent.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The data directory cannot be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// Directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Bad configuration.
    #[error("invalid app config: {0}")]
    Config(String),
    /// The genesis document is invalid.
    #[error("invalid genesis: {0}")]
    Genesis(String),
    /// InitChain on a chain that already has blocks.
    #[error("InitChain called, but the store already holds height {0}; wipe the data directory to start a new chain")]
    AlreadyInitialised(u64),
}

/// Why FinalizeBlock did not run. The block changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Governance scheduled a software upgrade at this height that this binary lacks.
    #[error(
        "UPGRADE {name:?} NEEDED at height {height}: governance halted the chain here for a \
         software upgrade that this binary (magnet-app {version}) does not implement. Stop this \
         binary and start the release that implements {name:?}; it resumes from this height. \
         No state was changed."
    )]
    UpgradeNeeded {
        /// Upgrade name from the passed proposal.
        name: String,
        /// The halt height (the block that was refused).
        height: u64,
        /// This binary's version.
        version: &'static str,
    },
}

/// Software upgrades this binary implements (their plans are cleared at the halt height
/// instead of halting). A release that ships an upgrade adds its name here.
pub const KNOWN_UPGRADES: &[&str] = &[];

/// State key of applied upgrades: `app/upgrade_done/<name>` → height (borsh u64).
pub const UPGRADE_DONE_PREFIX: &[u8] = b"app/upgrade_done/";

/// A genesis validator in `app_state.validators`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GenesisValidator {
    /// Ed25519 consensus public key, base64 (as in CometBFT's `priv_validator_key.json`).
    pub pub_key: String,
    /// Voting power.
    #[serde(with = "u64_string")]
    pub power: u64,
    /// Optional moniker.
    #[serde(default)]
    pub name: String,
}

/// A validator's operator account in `app_state.validator_operators` (see ADR 0003): the
/// account paid the validator's fee share and whose node bond backs it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisOperator {
    /// Ed25519 consensus public key, base64; must be a genesis validator.
    pub pub_key: String,
    /// Operator account, bech32 `magnet1…`.
    pub operator: String,
}

mod u64_string {
    pub fn serialize<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        use serde::Deserialize;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(u64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
            Either::N(n) => Ok(n),
        }
    }
}

/// State exported for a new genesis (`magnetd export`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ExportedState {
    /// Chain id.
    pub chain_id: String,
    /// Height the state belongs to.
    pub height: u64,
    /// App hash at that height, hex.
    pub app_hash: String,
    /// Validator set (also inside `app_state.validators`).
    pub validators: Vec<GenesisValidator>,
    /// The `app_state` of a genesis file: one section per module plus `validators`.
    pub app_state: serde_json::Value,
}

struct Inner {
    store: MerkleStore,
    modules: Arc<ModuleSet>,
    local_min_gas_price: GasPrice,
    /// Writes of txs accepted by CheckTx since the last Commit.
    check_writes: crate::store::WriteSet,
    /// Signatures CheckTx verified, so FinalizeBlock need not verify them again.
    sig_cache: SigCache,
    /// Height and time of the last finalized block (pending or committed).
    last_block: BlockInfo,
    /// Block info of the last committed block.
    committed_block: BlockInfo,
    /// Upgrades this binary implements ([`KNOWN_UPGRADES`] plus [`MagnetApp::register_upgrade`]).
    upgrades: std::collections::BTreeSet<String>,
    /// Snapshot settings and directory.
    snapshot_config: SnapshotConfig,
    snapshots: SnapshotStore,
    /// The snapshot being written in the background, if any.
    snapshot_job: Option<std::thread::JoinHandle<()>>,
    /// The state-sync restore in progress, if any.
    restore: Option<Restore>,
}

/// The MAGNET ABCI application; see the module docs.
#[derive(Clone)]
pub struct MagnetApp {
    inner: Arc<Mutex<Inner>>,
}

fn time_of(ts: &Option<tendermint_proto::google::protobuf::Timestamp>) -> (u64, u32) {
    match ts {
        Some(t) => (
            u64::try_from(t.seconds).unwrap_or(0),
            u32::try_from(t.nanos).unwrap_or(0),
        ),
        None => (0, 0),
    }
}

fn hash32(b: &[u8]) -> [u8; 32] {
    let mut h = [0u8; 32];
    let n = b.len().min(32);
    h[..n].copy_from_slice(&b[..n]);
    h
}

fn to_abci_events(events: &[Event]) -> Vec<pb::Event> {
    events
        .iter()
        .map(|e| pb::Event {
            r#type: e.kind.clone(),
            attributes: e
                .attributes
                .iter()
                .map(|(k, v)| pb::EventAttribute {
                    key: k.clone(),
                    value: v.clone(),
                    index: true,
                })
                .collect(),
        })
        .collect()
}

fn read_last_block(store: &dyn KvStore) -> (u64, u64, u32) {
    magnet_core::store::get_borsh::<(u64, u64, u32)>(store, LAST_BLOCK_KEY)
        .ok()
        .flatten()
        .unwrap_or((0, 0, 0))
}

fn read_upgrade_plan(store: &dyn KvStore) -> Option<magnet_gov::state::UpgradePlan> {
    let b = store.get(magnet_gov::state::UPGRADE_KEY)?;
    match serde_json::from_slice(&b) {
        Ok(p) => Some(p),
        Err(e) => {
            tracing::error!(error = %e, "the scheduled upgrade plan does not decode; ignoring it");
            None
        }
    }
}

fn read_chain_id(store: &dyn KvStore) -> String {
    store
        .get(CHAIN_ID_KEY)
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_default()
}

fn abci_validator(pk: &[u8], power: u64) -> pb::ValidatorUpdate {
    pb::ValidatorUpdate {
        pub_key: Some(tendermint_proto::v0_38::crypto::PublicKey {
            sum: Some(tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(
                pk.to_vec(),
            )),
        }),
        power: i64::try_from(power).unwrap_or(i64::MAX),
    }
}

/// Run `f` in a write buffer over `store`; keep its writes only if it succeeds. Hook failures
/// are logged and reported as a `hook_error` event: the chain goes on, deterministically.
fn run_hook<T>(
    store: &mut dyn KvStore,
    block: &BlockInfo,
    modules: &ModuleSet,
    events: &mut Vec<Event>,
    what: &str,
    module: &str,
    f: impl FnOnce(&mut Ctx) -> Result<T, magnet_core::ModuleError>,
) -> Option<T> {
    let mut buf = Overlay::new(store);
    let mut ctx = Ctx::new(block, &mut buf, GasMeter::infinite(), modules.services());
    let r = f(&mut ctx);
    let evs = ctx.take_events();
    drop(ctx);
    match r {
        Ok(v) => {
            buf.commit();
            events.extend(evs);
            Some(v)
        }
        Err(e) => {
            buf.discard();
            tracing::error!(module, hook = what, height = block.height, error = %e, "block hook failed; its writes were dropped");
            events.push(
                Event::new("hook_error")
                    .attr("module", module)
                    .attr("hook", what)
                    .attr("error", e.to_string()),
            );
            None
        }
    }
}

impl MagnetApp {
    /// Open (or create) the app's state in `data_dir` with the registered modules.
    pub fn open(data_dir: &Path, config: AppConfig) -> Result<MagnetApp, AppError> {
        MagnetApp::open_with_modules(data_dir, config, registered_modules())
    }

    /// Open with an explicit module list (tests of module wiring).
    pub fn open_with_modules(
        data_dir: &Path,
        config: AppConfig,
        modules: Vec<Box<dyn Module>>,
    ) -> Result<MagnetApp, AppError> {
        std::fs::create_dir_all(data_dir).map_err(|source| AppError::DataDir {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let local_min_gas_price =
            GasPrice::parse(&config.min_gas_price).map_err(|e| AppError::Config(e.log))?;
        config.snapshot.validate().map_err(AppError::Config)?;
        let modules = Arc::new(ModuleSet::new(modules)?);
        let store = MerkleStore::open(&data_dir.join("state.redb"), config.store.clone())?;
        let view = store.committed_view()?;
        let (h, s, n) = read_last_block(&view);
        let chain_id = read_chain_id(&view);
        drop(view);
        let committed_block = BlockInfo {
            chain_id,
            height: store.last_commit().map_or(h, |c| c.height),
            time_secs: s,
            time_nanos: n,
            ..BlockInfo::default()
        };
        tracing::info!(height = committed_block.height, "magnet app opened");
        Ok(MagnetApp {
            inner: Arc::new(Mutex::new(Inner {
                store,
                modules,
                local_min_gas_price,
                check_writes: BTreeMap::new(),
                sig_cache: SigCache::default(),
                last_block: committed_block.clone(),
                committed_block,
                upgrades: KNOWN_UPGRADES.iter().map(|s| s.to_string()).collect(),
                snapshot_config: config.snapshot.clone(),
                snapshots: SnapshotStore::new(data_dir.join("snapshots")),
                snapshot_job: None,
                restore: None,
            })),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Declare that this binary implements the software upgrade `name`: at its halt height
    /// the plan is cleared and the chain goes on instead of halting. Call before the first
    /// block (a release that ships an upgrade lists it in [`KNOWN_UPGRADES`] instead).
    pub fn register_upgrade(&self, name: &str) {
        self.lock().upgrades.insert(name.to_string());
    }

    /// The software upgrade governance scheduled, if any: `(name, halt height)`.
    pub fn upgrade_plan(&self) -> Option<(String, u64)> {
        let g = self.lock();
        let view = g.store.working_view().ok()?;
        read_upgrade_plan(&view).map(|p| (p.name, p.halt_height))
    }

    /// FinalizeBlock with a typed error: on `Err` nothing was staged. The
    /// [`tendermint_abci::Application`] impl logs the error and stops the process, as
    /// CometBFT expects of an app that cannot go on; an embedded node can call this to halt
    /// cleanly instead ([`FinalizeError::UpgradeNeeded`] at a governance halt height).
    pub fn try_finalize_block(
        &self,
        req: pb::RequestFinalizeBlock,
    ) -> Result<pb::ResponseFinalizeBlock, FinalizeError> {
        let mut g = self.lock();
        let (f, block) = g.finalize(&req)?;
        g.last_block = block;
        Ok(pb::ResponseFinalizeBlock {
            events: to_abci_events(&f.events),
            tx_results: f
                .results
                .into_iter()
                .map(|o| pb::ExecTxResult {
                    code: o.code,
                    data: o.data.into(),
                    log: o.log,
                    info: String::new(),
                    gas_wanted: i64::try_from(o.gas_wanted).unwrap_or(i64::MAX),
                    gas_used: i64::try_from(o.gas_used).unwrap_or(i64::MAX),
                    events: to_abci_events(&o.events),
                    codespace: o.codespace,
                })
                .collect(),
            validator_updates: f.validator_updates,
            consensus_param_updates: None,
            app_hash: f.app_hash.to_vec().into(),
        })
    }

    /// Wait until the snapshot being written in the background (if any) is on disk.
    pub fn wait_for_snapshots(&self) {
        let job = self.lock().snapshot_job.take();
        if let Some(j) = job {
            if j.join().is_err() {
                tracing::error!("the snapshot writer panicked; no snapshot was written");
            }
        }
    }

    /// Last committed height and app hash (`(0, [])` before the first commit).
    pub fn last_commit(&self) -> (u64, Vec<u8>) {
        let g = self.lock();
        match g.store.last_commit() {
            Some(c) => (c.height, c.app_hash.to_vec()),
            None => (0, Vec::new()),
        }
    }

    /// Run `f` on the committed state (read-only, under the app's lock): invariant checks
    /// ([`crate::invariants::check_all`]) and tools that read raw keys.
    pub fn with_committed_state<T>(
        &self,
        f: impl FnOnce(&dyn KvStore) -> T,
    ) -> Result<T, AppError> {
        let g = self.lock();
        let view = g.store.committed_view()?;
        Ok(f(&view))
    }

    /// Check an `app_state` document without starting a chain: runs every module's genesis on a
    /// scratch store. `magnetd` calls this before writing or starting from a genesis file.
    pub fn validate_genesis(chain_id: &str, app_state: &serde_json::Value) -> Result<(), AppError> {
        let modules = ModuleSet::new(registered_modules())?;
        let mut store = magnet_core::MemStore::new();
        let block = BlockInfo {
            chain_id: chain_id.to_string(),
            ..BlockInfo::default()
        };
        run_genesis(&mut store, &block, &modules, app_state, &[]).map(|_| ())
    }

    /// InitChain with a typed error (the [`tendermint_abci::Application`] impl panics on it,
    /// since a chain cannot start from a broken genesis).
    pub fn try_init_chain(
        &self,
        req: pb::RequestInitChain,
    ) -> Result<pb::ResponseInitChain, AppError> {
        let mut g = self.lock();
        if let Some(c) = g.store.last_commit() {
            return Err(AppError::AlreadyInitialised(c.height));
        }
        g.store.discard_pending();
        let app_state: serde_json::Value = if req.app_state_bytes.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(&req.app_state_bytes)
                .map_err(|e| AppError::Genesis(format!("app_state is not JSON: {e}")))?
        };
        let initial_height = u64::try_from(req.initial_height).unwrap_or(1).max(1);
        let (secs, nanos) = time_of(&req.time);
        let block = BlockInfo {
            chain_id: req.chain_id.clone(),
            height: initial_height - 1,
            time_secs: secs,
            time_nanos: nanos,
            ..BlockInfo::default()
        };
        let modules = g.modules.clone();
        let view = g.store.working_view()?;
        let mut buf = BlockBuffer::new(&view);
        let validators = run_genesis(&mut buf, &block, &modules, &app_state, &req.validators)?;
        let writes = buf.into_writes();
        drop(view);
        let root = g.store.stage(initial_height - 1, writes)?;
        g.last_block = block;
        tracing::info!(chain_id = %req.chain_id, initial_height, app_hash = %hex::encode(root), "genesis staged");
        Ok(pb::ResponseInitChain {
            consensus_params: None,
            validators,
            app_hash: root.to_vec().into(),
        })
    }

    /// Export the committed state as genesis material (`magnetd export`).
    pub fn export(&self) -> Result<ExportedState, AppError> {
        let g = self.lock();
        let commit = g.store.last_commit();
        let view = g.store.committed_view()?;
        let block = g.committed_block.clone();
        let q = QueryCtx {
            block: &block,
            store: &view,
        };
        let mut app_state = serde_json::Map::new();
        for m in g.modules.iter() {
            let mut v = m
                .export_genesis(&q)
                .map_err(|e| AppError::Genesis(format!("export of {}: {e}", m.name())))?;
            if !m.export_is_complete() {
                attach_store_records(&mut v, m.name(), &view)?;
            }
            app_state.insert(m.name().to_string(), v);
        }
        use base64::Engine;
        let validators: Vec<GenesisValidator> = validator_set(&view)
            .into_iter()
            .map(|(pk, power)| GenesisValidator {
                pub_key: base64::engine::general_purpose::STANDARD.encode(pk),
                power,
                name: String::new(),
            })
            .collect();
        app_state.insert(
            "validators".to_string(),
            serde_json::to_value(&validators).map_err(|e| AppError::Genesis(e.to_string()))?,
        );
        let ops: Vec<GenesisOperator> = crate::validators::operators(&view)
            .into_iter()
            .filter(|(pk, _)| {
                validators.iter().any(|v| {
                    base64::engine::general_purpose::STANDARD
                        .decode(&v.pub_key)
                        .ok()
                        .as_deref()
                        == Some(pk.as_slice())
                })
            })
            .map(|(pk, op)| GenesisOperator {
                pub_key: base64::engine::general_purpose::STANDARD.encode(pk),
                operator: op.to_bech32(),
            })
            .collect();
        if !ops.is_empty() {
            app_state.insert(
                "validator_operators".to_string(),
                serde_json::to_value(&ops).map_err(|e| AppError::Genesis(e.to_string()))?,
            );
        }
        // Applied upgrades (name → height): part of the state, and what tells an operator
        // which software a restarted chain already runs.
        let upgrades: BTreeMap<String, u64> =
            magnet_core::store::scan_prefix(&view, UPGRADE_DONE_PREFIX)
                .into_iter()
                .filter_map(|(k, v)| {
                    let name = String::from_utf8(k[UPGRADE_DONE_PREFIX.len()..].to_vec()).ok()?;
                    Some((name, borsh::from_slice::<u64>(&v).ok()?))
                })
                .collect();
        if !upgrades.is_empty() {
            app_state.insert(
                "upgrades_done".to_string(),
                serde_json::to_value(&upgrades).map_err(|e| AppError::Genesis(e.to_string()))?,
            );
        }
        let current: BTreeSet<Vec<u8>> = validator_set(&view).into_keys().collect();
        let former: Vec<FormerValidator> = crate::validators::records(&view)
            .into_iter()
            .filter(|r| !current.contains(&r.pub_key))
            .map(|r| FormerValidator {
                pub_key: base64::engine::general_purpose::STANDARD.encode(&r.pub_key),
                operator: r
                    .operator
                    .and_then(|o| magnet_core::Address::from_slice(&o).ok())
                    .map(|a| a.to_bech32()),
            })
            .collect();
        if !former.is_empty() {
            app_state.insert(
                "former_validators".to_string(),
                serde_json::to_value(&former).map_err(|e| AppError::Genesis(e.to_string()))?,
            );
        }
        Ok(ExportedState {
            chain_id: read_chain_id(&view),
            height: commit.map_or(0, |c| c.height),
            app_hash: commit.map_or_else(String::new, |c| hex::encode(c.app_hash)),
            validators,
            app_state: serde_json::Value::Object(app_state),
        })
    }

    /// Decode and statelessly check a tx with the committed params (ProcessProposal's test;
    /// also handy for `magnetd` to explain a rejected tx).
    pub fn decode(&self, tx: &[u8]) -> Result<DecodedTx, TxError> {
        let g = self.lock();
        let params = committed_params(&g);
        decode_tx(tx, &params, &*g.modules, DecodeMode::Strict)
    }
}

fn committed_params(g: &Inner) -> AuthParams {
    g.store
        .committed_view()
        .ok()
        .and_then(|v| auth::params(&v).ok())
        .unwrap_or_default()
}

/// Key of a module's raw records in its exported genesis section.
const STORE_RECORDS: &str = "store_records";

/// Add `store_records: [[hex key, hex value], …]` (every key under `<module>/`, ascending) to
/// an exported module section (an object; `null` becomes one).
fn attach_store_records(
    section: &mut serde_json::Value,
    module: &str,
    store: &dyn KvStore,
) -> Result<(), AppError> {
    let prefix = format!("{module}/");
    let records: Vec<serde_json::Value> = magnet_core::store::scan_prefix(store, prefix.as_bytes())
        .into_iter()
        .map(|(k, v)| serde_json::json!([hex::encode(k), hex::encode(v)]))
        .collect();
    if records.is_empty() {
        return Ok(());
    }
    if section.is_null() {
        *section = serde_json::Value::Object(serde_json::Map::new());
    }
    let obj = section.as_object_mut().ok_or_else(|| {
        AppError::Genesis(format!(
            "export of {module}: its section is not a JSON object, so it cannot carry records"
        ))
    })?;
    obj.insert(STORE_RECORDS.into(), serde_json::Value::Array(records));
    Ok(())
}

/// Write a genesis section's `store_records` (see [`attach_store_records`]) after the module's
/// `init_genesis`: every key must lie under `<module>/`; keys `init_genesis` wrote are kept as
/// it wrote them.
fn restore_store_records(
    store: &mut dyn KvStore,
    module: &str,
    section: &serde_json::Value,
    written: &BTreeSet<Vec<u8>>,
) -> Result<(), AppError> {
    let Some(records) = section.get(STORE_RECORDS) else {
        return Ok(());
    };
    let bad =
        |i: usize, why: String| AppError::Genesis(format!("{module}.{STORE_RECORDS}[{i}]: {why}"));
    let list = records.as_array().ok_or_else(|| {
        AppError::Genesis(format!(
            "{module}.{STORE_RECORDS} must be a list of [hex key, hex value] pairs"
        ))
    })?;
    let prefix = format!("{module}/");
    for (i, r) in list.iter().enumerate() {
        let (k, v) = match r.as_array().map(Vec::as_slice) {
            Some([serde_json::Value::String(k), serde_json::Value::String(v)]) => (k, v),
            _ => return Err(bad(i, "expected a [hex key, hex value] pair".into())),
        };
        let k = hex::decode(k).map_err(|e| bad(i, format!("key is not hex: {e}")))?;
        let v = hex::decode(v).map_err(|e| bad(i, format!("value is not hex: {e}")))?;
        if !k.starts_with(prefix.as_bytes()) {
            return Err(bad(
                i,
                format!(
                    "key {:?} lies outside the module's prefix {prefix:?}",
                    String::from_utf8_lossy(&k)
                ),
            ));
        }
        if !written.contains(&k) {
            store.set(&k, v);
        }
    }
    Ok(())
}

/// A store wrapper that remembers which keys were written (genesis: which records the
/// module's typed section produced).
struct TrackWrites<'a> {
    inner: &'a mut dyn KvStore,
    written: BTreeSet<Vec<u8>>,
}

impl KvStore for TrackWrites<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.inner.get(key)
    }
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        self.written.insert(key.to_vec());
        self.inner.set(key, value);
    }
    fn delete(&mut self, key: &[u8]) {
        self.written.insert(key.to_vec());
        self.inner.delete(key);
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.inner.range(start, end)
    }
}

/// Run genesis: modules' sections in order, then the validator set. Returns the validators
/// to report to CometBFT (empty: accept CometBFT's).
fn run_genesis(
    store: &mut dyn KvStore,
    block: &BlockInfo,
    modules: &ModuleSet,
    app_state: &serde_json::Value,
    comet_validators: &[pb::ValidatorUpdate],
) -> Result<Vec<pb::ValidatorUpdate>, AppError> {
    if !app_state.is_object() {
        return Err(AppError::Genesis("app_state must be a JSON object".into()));
    }
    store.set(CHAIN_ID_KEY, block.chain_id.as_bytes().to_vec());
    for m in modules.iter() {
        let section = app_state
            .get(m.name())
            .cloned()
            .unwrap_or(serde_json::Value::Null);
        let mut tracked = TrackWrites {
            inner: &mut *store,
            written: BTreeSet::new(),
        };
        let mut ctx = Ctx::new(
            block,
            &mut tracked,
            GasMeter::infinite(),
            modules.services(),
        );
        m.init_genesis(&mut ctx, &section)
            .map_err(|e| AppError::Genesis(format!("module {}: {e}", m.name())))?;
        let written = tracked.written;
        restore_store_records(store, m.name(), &section, &written)?;
    }
    // Validators: app_state.validators when given (and reported back), else CometBFT's.
    let mut report = Vec::new();
    let mut set = BTreeMap::new();
    match app_state.get("validators") {
        Some(v) if !v.is_null() => {
            let vals: Vec<GenesisValidator> = serde_json::from_value(v.clone())
                .map_err(|e| AppError::Genesis(format!("validators: {e}")))?;
            use base64::Engine;
            for val in vals {
                let pk = base64::engine::general_purpose::STANDARD
                    .decode(&val.pub_key)
                    .map_err(|e| {
                        AppError::Genesis(format!("validator {}: pub_key: {e}", val.name))
                    })?;
                if pk.len() != 32 {
                    return Err(AppError::Genesis(format!(
                        "validator {}: ed25519 pub_key must be 32 bytes, got {}",
                        val.name,
                        pk.len()
                    )));
                }
                if val.power == 0 || set.insert(pk.clone(), val.power).is_some() {
                    return Err(AppError::Genesis(format!(
                        "validator {}: zero power or listed twice",
                        val.name
                    )));
                }
            }
            report = set.iter().map(|(pk, p)| abci_validator(pk, *p)).collect();
        }
        _ => {
            for v in comet_validators {
                if let Some(tendermint_proto::v0_38::crypto::PublicKey {
                    sum: Some(tendermint_proto::v0_38::crypto::public_key::Sum::Ed25519(pk)),
                }) = &v.pub_key
                {
                    set.insert(pk.clone(), u64::try_from(v.power).unwrap_or(0));
                }
            }
        }
    }
    let mut operators: BTreeMap<Vec<u8>, magnet_core::Address> = BTreeMap::new();
    if let Some(v) = app_state
        .get("validator_operators")
        .filter(|v| !v.is_null())
    {
        use base64::Engine;
        let ops: Vec<GenesisOperator> = serde_json::from_value(v.clone())
            .map_err(|e| AppError::Genesis(format!("validator_operators: {e}")))?;
        for o in ops {
            let pk = base64::engine::general_purpose::STANDARD
                .decode(&o.pub_key)
                .map_err(|e| {
                    AppError::Genesis(format!("validator_operators: pub_key {:?}: {e}", o.pub_key))
                })?;
            if !set.contains_key(&pk) {
                return Err(AppError::Genesis(format!(
                    "validator_operators: {} is not a genesis validator",
                    o.pub_key
                )));
            }
            let op: magnet_core::Address = o.operator.parse().map_err(|e| {
                AppError::Genesis(format!(
                    "validator_operators: operator {:?}: {e}",
                    o.operator
                ))
            })?;
            if operators.insert(pk, op).is_some() {
                return Err(AppError::Genesis(format!(
                    "validator_operators: {} is listed twice",
                    o.pub_key
                )));
            }
        }
    }
    for (pk, p) in &set {
        magnet_core::store::set_borsh(store, &[VALIDATOR_PREFIX, pk].concat(), p);
        crate::validators::put_record(store, pk, operators.get(pk).copied());
    }
    // Validators that left the set keep their records (late double-sign evidence still finds
    // its operator); an export carries them as `former_validators`.
    if let Some(v) = app_state.get("former_validators").filter(|v| !v.is_null()) {
        use base64::Engine;
        let former: Vec<FormerValidator> = serde_json::from_value(v.clone())
            .map_err(|e| AppError::Genesis(format!("former_validators: {e}")))?;
        let mut seen = BTreeSet::new();
        for f in former {
            let pk = base64::engine::general_purpose::STANDARD
                .decode(&f.pub_key)
                .map_err(|e| {
                    AppError::Genesis(format!("former_validators: pub_key {:?}: {e}", f.pub_key))
                })?;
            if pk.len() != 32 || set.contains_key(&pk) || !seen.insert(pk.clone()) {
                return Err(AppError::Genesis(format!(
                    "former_validators: {} must be a 32-byte ed25519 key, listed once, and not \
                     a current validator",
                    f.pub_key
                )));
            }
            let op = match &f.operator {
                None => None,
                Some(o) => Some(o.parse::<magnet_core::Address>().map_err(|e| {
                    AppError::Genesis(format!("former_validators: operator {o:?}: {e}"))
                })?),
            };
            crate::validators::put_record(store, &pk, op);
        }
    }
    if let Some(v) = app_state.get("upgrades_done").filter(|v| !v.is_null()) {
        let done: BTreeMap<String, u64> = serde_json::from_value(v.clone()).map_err(|e| {
            AppError::Genesis(format!(
                "upgrades_done: expected {{\"name\": height, …}}: {e}"
            ))
        })?;
        // Heights are history (the exporting chain's), not checked against this genesis:
        // `validate_genesis` runs at height 0 and must accept an export.
        for (name, height) in done {
            if name.is_empty() {
                return Err(AppError::Genesis(format!(
                    "upgrades_done: an upgrade at height {height} has an empty name"
                )));
            }
            magnet_core::store::set_borsh(
                store,
                &[UPGRADE_DONE_PREFIX, name.as_bytes()].concat(),
                &height,
            );
        }
    }
    // The genesis block is the committed block until the first one: its height and time are
    // what a restart before that block reads (and what an exported chain recorded last).
    magnet_core::store::set_borsh(
        store,
        LAST_BLOCK_KEY,
        &(block.height, block.time_secs, block.time_nanos),
    );
    Ok(report)
}

/// A validator no longer in the set, as an export lists it (`former_validators`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormerValidator {
    /// Ed25519 public key, base64.
    pub pub_key: String,
    /// Operator account (bech32), if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// Signatures verified by CheckTx: tx hash → (key, account number). Bounded; oldest entries
/// go first. Only a cache of a pure function's `true` answers, so it cannot change results.
#[derive(Default)]
struct SigCache {
    map: BTreeMap<[u8; 32], (Vec<u8>, u64)>,
    order: std::collections::VecDeque<[u8; 32]>,
}

const SIG_CACHE_MAX: usize = 200_000;

impl SigCache {
    fn verified(&self, tx: &DecodedTx, key: &[u8], account_number: u64) -> bool {
        self.map
            .get(&tx.hash)
            .is_some_and(|(k, n)| k.as_slice() == key && *n == account_number)
    }
    fn insert(&mut self, tx: &DecodedTx, key: Vec<u8>, account_number: u64) {
        if self.map.insert(tx.hash, (key, account_number)).is_none() {
            self.order.push_back(tx.hash);
        }
        while self.order.len() > SIG_CACHE_MAX {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
    }
}

/// Signature checks of one block, shared by the block's thread and helper threads. Each tx's
/// answer is a pure function of (tx, signer account at block start, chain id), computed once.
struct SigPipeline<'a> {
    decoded: &'a [Result<DecodedTx, TxError>],
    view: &'a crate::store::StateView<'a>,
    cache: &'a SigCache,
    chain_id: &'a str,
    slots: Vec<std::sync::OnceLock<Option<SigCheck>>>,
    next: std::sync::atomic::AtomicUsize,
}

impl<'a> SigPipeline<'a> {
    fn new(
        decoded: &'a [Result<DecodedTx, TxError>],
        view: &'a crate::store::StateView<'a>,
        cache: &'a SigCache,
        chain_id: &'a str,
    ) -> SigPipeline<'a> {
        SigPipeline {
            decoded,
            view,
            cache,
            chain_id,
            slots: (0..decoded.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            next: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The next tx nobody has started checking.
    fn claim(&self) -> Option<usize> {
        let i = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        (i < self.decoded.len()).then_some(i)
    }

    /// Check tx `i` (of a signer known at block start) and publish the answer.
    fn check(&self, i: usize) {
        let hint = (|| {
            let tx = self.decoded[i].as_ref().ok()?;
            let acct = auth::get_account(self.view, &tx.signer).ok()??;
            let pub_key = tx.pub_key.clone().or(acct.pub_key)?;
            let n = acct.account_number;
            let valid = self.cache.verified(tx, &pub_key, n)
                || crate::tx::verify_signature(tx, &pub_key, self.chain_id, n);
            Some(SigCheck {
                pub_key,
                account_number: n,
                valid,
            })
        })();
        let _ = self.slots[i].set(hint);
    }

    /// Helper thread: check txs until none is left.
    fn run(&self) {
        while let Some(i) = self.claim() {
            self.check(i);
        }
    }

    /// The answer for tx `i`, checking unclaimed txs while it is not there yet.
    fn wait(&self, i: usize) -> Option<&SigCheck> {
        loop {
            if let Some(h) = self.slots[i].get() {
                return h.as_ref();
            }
            match self.claim() {
                Some(j) => self.check(j),
                None => std::thread::yield_now(),
            }
        }
    }
}

/// Everything [`finalize`] returns.
struct Finalized {
    events: Vec<Event>,
    results: Vec<TxOutcome>,
    validator_updates: Vec<pb::ValidatorUpdate>,
    app_hash: [u8; 32],
}

impl Inner {
    /// Write a snapshot of the just-committed height on a background thread: it reads one
    /// redb read transaction, so blocks go on meanwhile. Skipped (with a warning) while the
    /// previous snapshot is still being written.
    fn start_snapshot(&mut self) {
        if self.snapshot_job.as_ref().is_some_and(|j| !j.is_finished()) {
            tracing::warn!("previous snapshot still being written; skipping this one (raise the snapshot interval)");
            return;
        }
        if let Some(j) = self.snapshot_job.take() {
            let _ = j.join();
        }
        let state = match self.store.committed_state() {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the committed state for a snapshot");
                return;
            }
        };
        let store = self.snapshots.clone();
        let cfg = self.snapshot_config.clone();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                // Node-local timing for the log, not consensus.
                let started = std::time::Instant::now();
                let height = state.height;
                let written = state
                    .entries()
                    .map_err(|e| e.to_string())
                    .and_then(|entries| {
                        store
                            .create(height, state.app_hash, entries, cfg.chunk_size, cfg.keep_recent)
                            .map_err(|e| e.to_string())
                    });
                match written {
                    Ok(info) => tracing::info!(
                        height,
                        chunks = info.metadata.chunk_hashes.len(),
                        bytes = info.metadata.payload_bytes,
                        entries = info.metadata.entries,
                        hash = %hex::encode(info.metadata.hash()),
                        millis = started.elapsed().as_millis(),
                        "snapshot written"
                    ),
                    Err(e) => tracing::error!(height, error = %e, "snapshot failed; the node goes on without it"),
                }
            });
        match spawned {
            Ok(j) => self.snapshot_job = Some(j),
            Err(e) => tracing::error!(error = %e, "cannot start the snapshot thread"),
        }
    }

    /// ApplySnapshotChunk: see [`Restore`] and ADR 0099.
    fn apply_chunk(
        &mut self,
        req: pb::RequestApplySnapshotChunk,
    ) -> pb::ResponseApplySnapshotChunk {
        use pb::response_apply_snapshot_chunk::Result as R;
        let reply =
            |result: R, refetch: Vec<u32>, reject: Vec<String>| pb::ResponseApplySnapshotChunk {
                result: result as i32,
                refetch_chunks: refetch,
                reject_senders: reject,
            };
        let Some(restore) = self.restore.as_mut() else {
            tracing::error!(
                index = req.index,
                "ApplySnapshotChunk without an accepted snapshot"
            );
            return reply(R::Abort, Vec::new(), Vec::new());
        };
        let done = match restore.apply(req.index, &req.chunk) {
            Ok(done) => done,
            Err(e @ SnapshotError::ChunkHash { .. }) => {
                tracing::warn!(index = req.index, sender = %req.sender, error = %e, "refusing a snapshot chunk");
                let reject = if req.sender.is_empty() {
                    Vec::new()
                } else {
                    vec![req.sender.clone()]
                };
                return reply(R::Retry, vec![req.index], reject);
            }
            Err(e) => {
                tracing::warn!(index = req.index, error = %e, "refusing the snapshot");
                self.restore = None;
                return reply(R::RejectSnapshot, Vec::new(), Vec::new());
            }
        };
        if !done {
            return reply(R::Accept, Vec::new(), Vec::new());
        }
        let Some(restore) = self.restore.take() else {
            return reply(R::Abort, Vec::new(), Vec::new());
        };
        let entries = match restore.finish() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(height = restore.height, error = %e, "refusing the snapshot");
                return reply(R::RejectSnapshot, Vec::new(), Vec::new());
            }
        };
        let n = entries.len();
        match self
            .store
            .restore(restore.height, entries, restore.trusted_app_hash)
        {
            Ok(c) => {
                let view = match self.store.committed_view() {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot read the restored state");
                        return reply(R::Abort, Vec::new(), Vec::new());
                    }
                };
                let (_, secs, nanos) = read_last_block(&view);
                let block = BlockInfo {
                    chain_id: read_chain_id(&view),
                    height: c.height,
                    time_secs: secs,
                    time_nanos: nanos,
                    ..BlockInfo::default()
                };
                drop(view);
                self.committed_block = block.clone();
                self.last_block = block;
                self.check_writes.clear();
                tracing::info!(height = c.height, entries = n, app_hash = %hex::encode(c.app_hash), "state sync: snapshot restored; the chain goes on from here, not from genesis");
                reply(R::Accept, Vec::new(), Vec::new())
            }
            Err(e @ StoreError::RestoreMismatch { .. }) => {
                tracing::warn!(error = %e, "refusing the snapshot: its state does not match the trusted app hash");
                reply(R::RejectSnapshot, Vec::new(), Vec::new())
            }
            Err(e) => {
                tracing::error!(error = %e, "snapshot restore failed");
                reply(R::Abort, Vec::new(), Vec::new())
            }
        }
    }

    fn block_info(&self, req: &pb::RequestFinalizeBlock, chain_id: String) -> BlockInfo {
        let (secs, nanos) = time_of(&req.time);
        BlockInfo {
            chain_id,
            height: u64::try_from(req.height).unwrap_or(0),
            time_secs: secs,
            time_nanos: nanos,
            hash: hash32(&req.hash),
            proposer: req.proposer_address.to_vec(),
            last_votes: req
                .decided_last_commit
                .as_ref()
                .map(|c| {
                    c.votes
                        .iter()
                        .map(|v| VoteInfo {
                            validator: v
                                .validator
                                .as_ref()
                                .map(|x| x.address.to_vec())
                                .unwrap_or_default(),
                            power: v
                                .validator
                                .as_ref()
                                .map_or(0, |x| u64::try_from(x.power).unwrap_or(0)),
                            signed: v.block_id_flag == 2,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            misbehavior: req
                .misbehavior
                .iter()
                .map(|m| Misbehavior {
                    kind: match m.r#type {
                        1 => "duplicate_vote".to_string(),
                        2 => "light_client_attack".to_string(),
                        _ => "unknown".to_string(),
                    },
                    validator: m
                        .validator
                        .as_ref()
                        .map(|x| x.address.to_vec())
                        .unwrap_or_default(),
                    power: m
                        .validator
                        .as_ref()
                        .map_or(0, |x| u64::try_from(x.power).unwrap_or(0)),
                    height: u64::try_from(m.height).unwrap_or(0),
                })
                .collect(),
        }
    }

    fn finalize(
        &mut self,
        req: &pb::RequestFinalizeBlock,
    ) -> Result<(Finalized, BlockInfo), FinalizeError> {
        let _span = tracing::info_span!("finalize_block", height = req.height, txs = req.txs.len())
            .entered();
        let modules = self.modules.clone();
        let view = self.store.working_view()?;
        let chain_id = read_chain_id(&view);
        let block = self.block_info(req, chain_id.clone());
        // A passed software upgrade halts the chain at its height unless this binary has it.
        let plan = read_upgrade_plan(&view).filter(|p| block.height >= p.halt_height);
        if let Some(p) = &plan {
            if !self.upgrades.contains(&p.name) {
                return Err(FinalizeError::UpgradeNeeded {
                    name: p.name.clone(),
                    height: block.height,
                    version: env!("CARGO_PKG_VERSION"),
                });
            }
            tracing::info!(name = %p.name, height = block.height, "applying software upgrade");
        }
        let params = auth::params(&view).unwrap_or_default();
        let min_gas_price = GasPrice::parse(&params.min_gas_price).unwrap_or_default();

        // Decode every tx and check signatures of already-known accounts on all cores. Pure
        // functions of (bytes, state at block start): the results are the same on any machine
        // and thread count, and execution re-verifies whenever the hint does not apply.
        let decoded: Vec<Result<DecodedTx, TxError>> = req
            .txs
            .par_iter()
            .map(|t| decode_tx(t, &params, &*modules, DecodeMode::Strict))
            .collect();
        // Signatures are checked by helper threads while this thread runs the block; it
        // takes tx i's answer when it gets there (verifying the next unclaimed tx itself
        // while it waits), so execution order, and every result, are independent of timing.
        let sigs = SigPipeline::new(&decoded, &view, &self.sig_cache, &chain_id);
        let helpers = rayon::current_num_threads()
            .saturating_sub(1)
            .min(decoded.len());
        let (mut buf, mut events, results) = std::thread::scope(|scope| {
            for _ in 0..helpers {
                scope.spawn(|| sigs.run());
            }
            let mut buf = BlockBuffer::new(&view);
            let mut events = Vec::new();
            if let Some(p) = plan {
                buf.delete(magnet_gov::state::UPGRADE_KEY);
                magnet_core::store::set_borsh(
                    &mut buf,
                    &[UPGRADE_DONE_PREFIX, p.name.as_bytes()].concat(),
                    &block.height,
                );
                events.push(
                    Event::new("magnet.upgrade.applied")
                        .attr("name", &p.name)
                        .attr("height", block.height),
                );
            }
            for m in modules.iter() {
                run_hook(
                    &mut buf,
                    &block,
                    &modules,
                    &mut events,
                    "begin_block",
                    m.name(),
                    |ctx| m.begin_block(ctx),
                );
            }
            let env = ExecEnv {
                block: &block,
                chain_id: &chain_id,
                modules: &modules,
                params: &params,
                min_gas_price,
            };
            let mut results = Vec::with_capacity(decoded.len());
            for (i, d) in decoded.iter().enumerate() {
                let outcome = match d {
                    Ok(tx) => exec_tx(&mut buf, &env, tx, sigs.wait(i), Mode::Deliver),
                    Err(e) => TxOutcome {
                        code: e.code,
                        codespace: e.codespace.clone(),
                        log: e.log.clone(),
                        ..TxOutcome::default()
                    },
                };
                results.push(outcome);
            }
            (buf, events, results)
        });
        let mut updates: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        for m in modules.iter() {
            if let Some(ups) = run_hook(
                &mut buf,
                &block,
                &modules,
                &mut events,
                "end_block",
                m.name(),
                |ctx| m.end_block(ctx),
            ) {
                for u in ups {
                    updates.insert(u.pub_key_ed25519, u.power);
                }
            }
        }
        let ended = run_hook(
            &mut buf,
            &block,
            &modules,
            &mut events,
            "advance",
            "epochs",
            magnet_core::epoch::advance,
        )
        .unwrap_or_default();
        for e in ended {
            for m in modules.iter() {
                run_hook(
                    &mut buf,
                    &block,
                    &modules,
                    &mut events,
                    "end_epoch",
                    m.name(),
                    |ctx| m.end_epoch(ctx, e),
                );
            }
        }
        // Changes requested through the Validators service (governance, double-sign
        // evidence) apply after modules' end_block updates.
        updates.extend(crate::validators::take_pending(&mut buf));
        // Apply validator updates; report only real changes.
        let mut validator_updates = Vec::new();
        for (pk, power) in updates {
            if pk.len() != 32 {
                tracing::error!(
                    len = pk.len(),
                    "ignoring a validator update whose key is not 32 bytes"
                );
                continue;
            }
            let key = [VALIDATOR_PREFIX, pk.as_slice()].concat();
            let cur: Option<u64> = magnet_core::store::get_borsh(&buf, &key).ok().flatten();
            if cur.unwrap_or(0) == power {
                continue;
            }
            if power == 0 {
                buf.delete(&key);
            } else {
                magnet_core::store::set_borsh(&mut buf, &key, &power);
            }
            validator_updates.push(abci_validator(&pk, power));
        }
        magnet_core::store::set_borsh(
            &mut buf,
            LAST_BLOCK_KEY,
            &(block.height, block.time_secs, block.time_nanos),
        );
        let writes = buf.into_writes();
        drop(view);
        let app_hash = self.store.stage(block.height, writes)?;
        Ok((
            Finalized {
                events,
                results,
                validator_updates,
                app_hash,
            },
            block,
        ))
    }

    /// The signature check of `tx` against its signer's account in `store` (remembered
    /// answers from [`SigCache`] first), or `None` when exec_tx must decide (no signature,
    /// unknown account, no key).
    fn sig_hint(&self, store: &dyn KvStore, tx: &DecodedTx, chain_id: &str) -> Option<SigCheck> {
        if tx.signature.is_empty() {
            return None;
        }
        let a = auth::get_account(store, &tx.signer).ok().flatten()?;
        let key = tx.pub_key.clone().or(a.pub_key)?;
        let valid = self.sig_cache.verified(tx, &key, a.account_number)
            || crate::tx::verify_signature(tx, &key, chain_id, a.account_number);
        Some(SigCheck {
            pub_key: key,
            account_number: a.account_number,
            valid,
        })
    }

    /// ADR 0095: run a proposal's `txs` in order, in Deliver mode, on a throwaway buffer over
    /// the state the block will start from, and return, per tx, why it would fail its decoding
    /// or ante checks in FinalizeBlock (`None`: it passes them and pays its fee; its messages
    /// may still fail). PrepareProposal and ProcessProposal both call this with the same
    /// inputs (height, time, proposer; no block hash, votes or block hooks, which
    /// PrepareProposal does not know), so a block an honest proposer built always passes.
    /// Changes no state; only the signature cache learns the signatures it verified.
    fn proposal_ante_failures<T: AsRef<[u8]>>(
        &mut self,
        height: i64,
        time: &Option<tendermint_proto::google::protobuf::Timestamp>,
        proposer: &[u8],
        txs: &[T],
    ) -> Result<Vec<Option<TxError>>, StoreError> {
        let modules = self.modules.clone();
        let view = self.store.working_view()?;
        let chain_id = read_chain_id(&view);
        let params = auth::params(&view).unwrap_or_default();
        let (time_secs, time_nanos) = time_of(time);
        let block = BlockInfo {
            chain_id: chain_id.clone(),
            height: u64::try_from(height).unwrap_or(0),
            time_secs,
            time_nanos,
            proposer: proposer.to_vec(),
            ..BlockInfo::default()
        };
        let env = ExecEnv {
            block: &block,
            chain_id: &chain_id,
            modules: &modules,
            params: &params,
            min_gas_price: GasPrice::parse(&params.min_gas_price).unwrap_or_default(),
        };
        let mut buf = BlockBuffer::new(&view);
        let mut verdicts = Vec::with_capacity(txs.len());
        let mut verified = Vec::new();
        for bytes in txs {
            let tx = match decode_tx(bytes.as_ref(), &params, &*modules, DecodeMode::Strict) {
                Ok(t) => t,
                Err(e) => {
                    verdicts.push(Some(e));
                    continue;
                }
            };
            let hint = self.sig_hint(&buf, &tx, &chain_id);
            let out = exec_tx(&mut buf, &env, &tx, hint.as_ref(), Mode::Deliver);
            if out.ante_passed {
                if let Some(h) = hint.filter(|h| h.valid) {
                    verified.push((tx, h));
                }
                verdicts.push(None);
            } else {
                verdicts.push(Some(TxError {
                    codespace: out.codespace,
                    code: out.code,
                    log: out.log,
                }));
            }
        }
        drop(buf);
        drop(view);
        for (tx, h) in verified {
            self.sig_cache.insert(&tx, h.pub_key, h.account_number);
        }
        Ok(verdicts)
    }

    /// Run a tx on the check state (CheckTx) or a throwaway copy of it (simulate, proposals).
    fn check(&mut self, tx_bytes: &[u8], mode: Mode, keep: bool) -> TxOutcome {
        let modules = self.modules.clone();
        let view = match self.store.committed_view() {
            Ok(v) => v,
            Err(e) => {
                return TxOutcome {
                    code: codes::INTERNAL,
                    codespace: crate::error::SDK.into(),
                    log: e.to_string(),
                    ..TxOutcome::default()
                }
            }
        };
        let chain_id = read_chain_id(&view);
        let params = auth::params(&view).unwrap_or_default();
        let decode_mode = if mode == Mode::Simulate {
            DecodeMode::Simulate
        } else {
            DecodeMode::Strict
        };
        let tx = match decode_tx(tx_bytes, &params, &*modules, decode_mode) {
            Ok(t) => t,
            Err(e) => {
                return TxOutcome {
                    code: e.code,
                    codespace: e.codespace,
                    log: e.log,
                    ..TxOutcome::default()
                }
            }
        };
        if self.store.last_commit().is_none() {
            return TxOutcome {
                code: codes::INVALID_REQUEST,
                codespace: crate::error::SDK.into(),
                log: "the chain has not committed its first block yet; retry shortly".into(),
                ..TxOutcome::default()
            };
        }
        let block = BlockInfo {
            chain_id: chain_id.clone(),
            height: self.committed_block.height + 1,
            ..self.committed_block.clone()
        };
        let env = ExecEnv {
            block: &block,
            chain_id: &chain_id,
            modules: &modules,
            params: &params,
            min_gas_price: GasPrice::parse(&params.min_gas_price).unwrap_or_default(),
        };
        let writes = if keep {
            std::mem::take(&mut self.check_writes)
        } else {
            self.check_writes.clone()
        };
        let mut buf = BlockBuffer::with_writes(&view, writes);
        // Verify here (rather than inside exec_tx) to remember a valid signature for
        // FinalizeBlock; the answer is the same pure function either way.
        let hint = self.sig_hint(&buf, &tx, &chain_id);
        let out = exec_tx(&mut buf, &env, &tx, hint.as_ref(), mode);
        if let Some(h) = hint.filter(|h| h.valid && out.is_ok()) {
            self.sig_cache.insert(&tx, h.pub_key, h.account_number);
        }
        let writes = buf.into_writes();
        drop(view);
        if keep {
            self.check_writes = writes;
        }
        out
    }
}

impl tendermint_abci::Application for MagnetApp {
    fn info(&self, _req: pb::RequestInfo) -> pb::ResponseInfo {
        let (height, hash) = self.last_commit();
        pb::ResponseInfo {
            data: APP_NAME.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            app_version: APP_VERSION,
            last_block_height: i64::try_from(height).unwrap_or(i64::MAX),
            last_block_app_hash: hash.into(),
        }
    }

    fn init_chain(&self, req: pb::RequestInitChain) -> pb::ResponseInitChain {
        match self.try_init_chain(req) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "InitChain failed: the chain cannot start");
                panic!("InitChain failed: {e}")
            }
        }
    }

    fn query(&self, req: pb::RequestQuery) -> pb::ResponseQuery {
        let mut g = self.lock();
        let fail = |e: magnet_core::ModuleError, height: i64| pb::ResponseQuery {
            code: e.code,
            log: e.log,
            codespace: e.codespace,
            height,
            ..Default::default()
        };
        let latest = g.store.last_commit().map_or(0, |c| c.height);
        if req.path == "/cosmos.tx.v1beta1.Service/Simulate" {
            return simulate(&mut g, &req.data, latest);
        }
        let height = if req.height <= 0 {
            latest
        } else {
            u64::try_from(req.height).unwrap_or(0)
        };
        let h = i64::try_from(height).unwrap_or(i64::MAX);
        if g.store.last_commit().is_none() {
            return fail(
                magnet_core::ModuleError::new(
                    "sdk",
                    codes::INVALID_HEIGHT,
                    "no committed state yet",
                ),
                0,
            );
        }
        let block = BlockInfo {
            height,
            ..g.committed_block.clone()
        };
        let view: Box<dyn KvStore> = if height == latest {
            match g.store.committed_view() {
                Ok(v) => Box::new(v),
                Err(e) => {
                    return fail(
                        magnet_core::ModuleError::new("sdk", codes::INTERNAL, e.to_string()),
                        h,
                    )
                }
            }
        } else {
            match g.store.view_at(height) {
                Ok(v) => Box::new(v),
                Err(e) => {
                    return fail(
                        magnet_core::ModuleError::new("sdk", codes::INVALID_HEIGHT, e.to_string()),
                        h,
                    )
                }
            }
        };
        if req.path == crate::proof::STORE_KEY_PATH {
            let key = req.data.to_vec();
            if !req.prove {
                return pb::ResponseQuery {
                    code: 0,
                    key: key.clone().into(),
                    value: view.get(&key).unwrap_or_default().into(),
                    height: h,
                    ..Default::default()
                };
            }
            drop(view);
            return match g.store.prove(height, &key) {
                Ok(crate::store::ProvenValue { value, proof, .. }) => pb::ResponseQuery {
                    code: 0,
                    info: if value.is_some() { "exists" } else { "absent" }.into(),
                    proof_ops: Some(crate::proof::proof_ops(&key, &proof)),
                    key: key.into(),
                    value: value.unwrap_or_default().into(),
                    height: h,
                    ..Default::default()
                },
                Err(e) => fail(
                    magnet_core::ModuleError::new("sdk", codes::INVALID_HEIGHT, e.to_string()),
                    h,
                ),
            };
        }
        let q = QueryCtx {
            block: &block,
            store: &*view,
        };
        for m in g.modules.iter() {
            if let Some(r) = m.query(&q, &req.path, &req.data) {
                return match r {
                    Ok(value) => pb::ResponseQuery {
                        code: 0,
                        value: value.into(),
                        height: h,
                        ..Default::default()
                    },
                    Err(e) => fail(e, h),
                };
            }
        }
        fail(
            magnet_core::ModuleError::new(
                "sdk",
                codes::UNKNOWN_REQUEST,
                format!("unknown query path {:?}", req.path),
            ),
            h,
        )
    }

    fn check_tx(&self, req: pb::RequestCheckTx) -> pb::ResponseCheckTx {
        let mut g = self.lock();
        let local = g.local_min_gas_price;
        let out = g.check(
            &req.tx,
            Mode::Check {
                local_min_gas_price: local,
            },
            true,
        );
        if !out.is_ok() {
            tracing::debug!(code = out.code, log = %out.log, "CheckTx rejected a tx");
        }
        pb::ResponseCheckTx {
            code: out.code,
            data: out.data.into(),
            log: out.log,
            info: String::new(),
            gas_wanted: i64::try_from(out.gas_wanted).unwrap_or(i64::MAX),
            gas_used: i64::try_from(out.gas_used).unwrap_or(i64::MAX),
            events: Vec::new(),
            codespace: out.codespace,
        }
    }

    fn commit(&self) -> pb::ResponseCommit {
        let mut g = self.lock();
        match g.store.commit() {
            Ok(c) => {
                g.committed_block = g.last_block.clone();
                g.check_writes.clear();
                tracing::info!(height = c.map_or(0, |c| c.height), "committed");
                if let Some(c) = c {
                    if g.snapshot_config.due(c.height) {
                        g.start_snapshot();
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "Commit failed: stopping so the block is replayed on restart");
                panic!("Commit failed: {e}")
            }
        }
        pb::ResponseCommit { retain_height: 0 }
    }

    fn list_snapshots(&self) -> pb::ResponseListSnapshots {
        let store = self.lock().snapshots.clone();
        match store.list() {
            Ok(list) => pb::ResponseListSnapshots {
                snapshots: list.iter().map(|i| i.to_abci()).collect(),
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot list snapshots");
                pb::ResponseListSnapshots::default()
            }
        }
    }

    fn load_snapshot_chunk(
        &self,
        req: pb::RequestLoadSnapshotChunk,
    ) -> pb::ResponseLoadSnapshotChunk {
        let store = self.lock().snapshots.clone();
        let chunk = store
            .load_chunk(req.height, req.format, req.chunk)
            .unwrap_or_default();
        pb::ResponseLoadSnapshotChunk {
            chunk: chunk.into(),
        }
    }

    fn offer_snapshot(&self, req: pb::RequestOfferSnapshot) -> pb::ResponseOfferSnapshot {
        use pb::response_offer_snapshot::Result as R;
        let mut g = self.lock();
        let result = if let Some(c) = g.store.last_commit() {
            tracing::error!(
                height = c.height,
                "refusing a state-sync snapshot: this node already holds state; wipe the data directory to state sync"
            );
            R::Abort
        } else {
            match req.snapshot.as_ref() {
                None => R::Reject,
                Some(snap) if snap.format != crate::snapshot::SNAPSHOT_FORMAT => {
                    tracing::info!(
                        format = snap.format,
                        "refusing a snapshot of an unknown format"
                    );
                    R::RejectFormat
                }
                Some(snap) => match Restore::offer(snap, &req.app_hash) {
                    Ok(r) => {
                        tracing::info!(height = r.height, chunks = snap.chunks, trusted_app_hash = %hex::encode(r.trusted_app_hash), "state sync: snapshot accepted");
                        g.store.discard_pending();
                        g.restore = Some(r);
                        R::Accept
                    }
                    Err(e) => {
                        tracing::warn!(height = snap.height, error = %e, "refusing a snapshot");
                        R::Reject
                    }
                },
            }
        };
        pb::ResponseOfferSnapshot {
            result: result as i32,
        }
    }

    fn apply_snapshot_chunk(
        &self,
        req: pb::RequestApplySnapshotChunk,
    ) -> pb::ResponseApplySnapshotChunk {
        self.lock().apply_chunk(req)
    }

    fn prepare_proposal(&self, req: pb::RequestPrepareProposal) -> pb::ResponsePrepareProposal {
        let mut g = self.lock();
        let max = u64::try_from(req.max_tx_bytes).unwrap_or(0);
        let local = g.local_min_gas_price;
        // A scratch copy of the check state: txs are tried in order, as the block will run.
        let saved = g.check_writes.clone();
        g.check_writes.clear();
        let mut total = 0u64;
        let mut txs = Vec::new();
        for tx in req.txs {
            let len = tx.len() as u64;
            if total.saturating_add(len) > max {
                continue;
            }
            let out = g.check(
                &tx,
                Mode::Check {
                    local_min_gas_price: local,
                },
                true,
            );
            if out.is_ok() {
                total = total.saturating_add(len);
                txs.push(tx);
            }
        }
        g.check_writes = saved;
        // Then ProcessProposal's own rule on what is left, so that the block passes it: a tx
        // failing its ante writes nothing, so dropping it changes no later tx's verdict.
        match g.proposal_ante_failures(req.height, &req.time, &req.proposer_address, &txs) {
            Ok(verdicts) => {
                let mut v = verdicts.into_iter();
                txs.retain(|_| matches!(v.next(), Some(None)));
            }
            Err(e) => {
                tracing::error!(error = %e, "PrepareProposal cannot read state; proposing an empty block");
                txs.clear();
            }
        }
        pb::ResponsePrepareProposal { txs }
    }

    fn process_proposal(&self, req: pb::RequestProcessProposal) -> pb::ResponseProcessProposal {
        let mut g = self.lock();
        let reject = pb::ResponseProcessProposal {
            status: pb::response_process_proposal::ProposalStatus::Reject as i32,
        };
        let verdicts = match g.proposal_ante_failures(
            req.height,
            &req.time,
            &req.proposer_address,
            &req.txs,
        ) {
            Ok(v) => v,
            Err(e) => {
                tracing::error!(height = req.height, error = %e, "ProcessProposal cannot read state; rejecting");
                return reject;
            }
        };
        if let Some((i, e)) = verdicts
            .iter()
            .enumerate()
            .find_map(|(i, v)| v.as_ref().map(|e| (i, e)))
        {
            tracing::warn!(
                height = req.height,
                index = i,
                error = %e,
                "rejecting a proposal holding a tx that fails its decoding or ante checks"
            );
            return reject;
        }
        pb::ResponseProcessProposal {
            status: pb::response_process_proposal::ProposalStatus::Accept as i32,
        }
    }

    fn finalize_block(&self, req: pb::RequestFinalizeBlock) -> pb::ResponseFinalizeBlock {
        let height = req.height;
        match self.try_finalize_block(req) {
            Ok(r) => r,
            Err(e @ FinalizeError::UpgradeNeeded { .. }) => {
                tracing::error!(height, "{e}");
                panic!("{e}")
            }
            Err(e) => {
                tracing::error!(height, error = %e, "FinalizeBlock failed: stopping");
                panic!("FinalizeBlock at height {height} failed: {e}")
            }
        }
    }
}

fn simulate(g: &mut Inner, data: &[u8], height: u64) -> pb::ResponseQuery {
    use cosmrs::proto::cosmos::base::abci::v1beta1 as abcipb;
    use cosmrs::proto::cosmos::tx::v1beta1 as txpb;
    let h = i64::try_from(height).unwrap_or(i64::MAX);
    let req = match txpb::SimulateRequest::decode(data) {
        Ok(r) => r,
        Err(e) => {
            return pb::ResponseQuery {
                code: codes::TX_DECODE,
                codespace: crate::error::SDK.into(),
                log: format!("SimulateRequest does not decode: {e}"),
                height: h,
                ..Default::default()
            }
        }
    };
    #[allow(deprecated)]
    let tx_bytes = if !req.tx_bytes.is_empty() {
        req.tx_bytes
    } else if let Some(tx) = req.tx {
        txpb::TxRaw {
            body_bytes: tx.body.map(|b| b.encode_to_vec()).unwrap_or_default(),
            auth_info_bytes: tx.auth_info.map(|a| a.encode_to_vec()).unwrap_or_default(),
            signatures: tx.signatures,
        }
        .encode_to_vec()
    } else {
        Vec::new()
    };
    let out = g.check(&tx_bytes, Mode::Simulate, false);
    if !out.is_ok() {
        return pb::ResponseQuery {
            code: out.code,
            codespace: out.codespace,
            log: out.log,
            height: h,
            ..Default::default()
        };
    }
    #[allow(deprecated)]
    let resp = txpb::SimulateResponse {
        gas_info: Some(abcipb::GasInfo {
            gas_wanted: out.gas_wanted,
            gas_used: out.gas_used,
        }),
        result: Some(abcipb::Result {
            data: out.data.clone(),
            log: String::new(),
            events: to_abci_events(&out.events)
                .into_iter()
                .map(|e| tendermint_proto::abci::Event {
                    r#type: e.r#type,
                    attributes: e
                        .attributes
                        .into_iter()
                        .map(|a| tendermint_proto::abci::EventAttribute {
                            key: a.key,
                            value: a.value,
                            index: a.index,
                        })
                        .collect(),
                })
                .collect(),
            msg_responses: cosmrs::proto::cosmos::base::abci::v1beta1::TxMsgData::decode(
                out.data.as_slice(),
            )
            .map(|d| d.msg_responses)
            .unwrap_or_default(),
        }),
    };
    pb::ResponseQuery {
        code: 0,
        value: resp.encode_to_vec().into(),
        height: h,
        ..Default::default()
    }
}
