//! The embedded single-validator node: a block producer that drives an ABCI 2.0 application
//! through the same entry points, in the same order, as CometBFT does.
//!
//! Per block: reap the mempool → `PrepareProposal` → `ProcessProposal` → save the block →
//! `FinalizeBlock` → save results and tx index → `Commit` → recheck the mempool with `CheckTx`.
//! On start, an ABCI handshake (`Info`, `InitChain` on a fresh chain) replays every stored block
//! the app has not committed, so a crash at any point (see [`crate::store`]) loses no block.
//!
//! # Determinism
//! Block times are `genesis_time` for height 1 and `previous + block_time` after that, never the
//! wall clock; the wall clock only paces production. Block ids, commits and hashes are computed
//! as CometBFT computes them, and the commit is a real ed25519 signature of the canonical
//! precommit by `priv_validator_key.json`.
//!
//! # Non-guarantees
//! One validator only: a genesis with several validators needs CometBFT (`--abci-only`).
//! No evidence, no vote extensions, no state sync.

use crate::metrics::Metrics;
use crate::store::{BlockStore, NodeState};
use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tendermint::block::{self, Commit, CommitSig, Header, Height};
use tendermint::{account, chain, AppHash, Hash, Time};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci as pb;

/// CometBFT version this node reports (clients pick their dialect from it).
pub const COMET_VERSION: &str = "0.38.26";
/// Block protocol version of CometBFT v0.38.
pub const BLOCK_PROTOCOL: u64 = 11;
/// p2p protocol version of CometBFT v0.38.
pub const P2P_PROTOCOL: u64 = 8;

/// Where a debug halt can stop the producer (crash-safety tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaltPoint {
    /// Block saved, FinalizeBlock not called.
    BeforeFinalize,
    /// FinalizeBlock returned, results not saved.
    AfterFinalize,
    /// Results saved, Commit not called.
    BeforeCommit,
}

impl std::str::FromStr for HaltPoint {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "before-finalize" => Ok(HaltPoint::BeforeFinalize),
            "after-finalize" => Ok(HaltPoint::AfterFinalize),
            "before-commit" => Ok(HaltPoint::BeforeCommit),
            _ => bail!(
                "unknown halt point {s:?}: use before-finalize, after-finalize or before-commit"
            ),
        }
    }
}

/// Settings of the embedded node.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Time between blocks (both the header time step and the production pace).
    pub block_time: Duration,
    /// Most tx bytes in one block.
    pub max_block_tx_bytes: usize,
    /// Most txs held in the mempool.
    pub mempool_max_txs: usize,
    /// Largest single tx accepted by the mempool.
    pub max_tx_bytes: usize,
    /// Moniker reported by `status`.
    pub moniker: String,
    /// Debug: halt (sleep forever) at this point of this height, for kill -9 tests.
    pub halt_at: Option<(HaltPoint, u64)>,
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            block_time: Duration::from_secs(1),
            max_block_tx_bytes: 4 * 1024 * 1024,
            mempool_max_txs: 10_000,
            max_tx_bytes: 1024 * 1024,
            moniker: "magnet".into(),
            halt_at: None,
        }
    }
}

/// What the mempool said about a tx.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    /// The app's CheckTx answer.
    pub response: pb::ResponseCheckTx,
    /// SHA-256 of the tx.
    pub hash: [u8; 32],
}

#[derive(Default)]
struct Mempool {
    queue: VecDeque<([u8; 32], Vec<u8>)>,
    seen: BTreeSet<[u8; 32]>,
    bytes: usize,
}

/// The in-memory chain view the RPC server reads.
#[derive(Clone, Debug)]
pub struct ChainView {
    /// Chain id.
    pub chain_id: String,
    /// The validator set (this node's single validator).
    pub validators: Vec<tendermint::validator::Info>,
    /// Last executed block state.
    pub state: NodeState,
    /// The genesis document as JSON.
    pub genesis: serde_json::Value,
    /// Genesis time.
    pub genesis_time: Time,
    /// Initial height.
    pub initial_height: u64,
}

/// The embedded node.
pub struct Node<A> {
    app: A,
    store: BlockStore,
    key: ed25519_consensus::SigningKey,
    address: account::Id,
    node_id: String,
    cfg: NodeConfig,
    mempool: Mutex<Mempool>,
    view: RwLock<ChainView>,
    consensus_params: tendermint_proto::v0_38::types::ConsensusParams,
    commits: tokio::sync::watch::Sender<u64>,
    metrics: Arc<Metrics>,
    home_node_dir: std::path::PathBuf,
}

fn ts(t: Time) -> tendermint_proto::google::protobuf::Timestamp {
    t.into()
}

fn sha(b: &[u8]) -> [u8; 32] {
    magnet_core::sha256(b)
}

fn merkle<T: AsRef<[u8]>>(items: &[T]) -> [u8; 32] {
    tendermint::merkle::simple_hash_from_byte_vectors::<sha2::Sha256>(items)
}

/// Hash of the consensus params as CometBFT computes it (`HashedParams`).
fn consensus_hash(p: &tendermint_proto::v0_38::types::ConsensusParams) -> [u8; 32] {
    let (max_bytes, max_gas) = p
        .block
        .as_ref()
        .map(|b| (b.max_bytes, b.max_gas))
        .unwrap_or((0, 0));
    let hp = tendermint_proto::v0_38::types::HashedParams {
        block_max_bytes: max_bytes,
        block_max_gas: max_gas,
    };
    sha(&hp.encode_to_vec())
}

/// Deterministic part of a tx result that CometBFT hashes into `last_results_hash`.
fn results_hash(resp: &pb::ResponseFinalizeBlock) -> [u8; 32] {
    let leaves: Vec<Vec<u8>> = resp
        .tx_results
        .iter()
        .map(|r| {
            pb::ExecTxResult {
                code: r.code,
                data: r.data.clone(),
                gas_wanted: r.gas_wanted,
                gas_used: r.gas_used,
                ..Default::default()
            }
            .encode_to_vec()
        })
        .collect();
    merkle(&leaves)
}

fn hex_hash(h: &str) -> Result<Hash> {
    if h.is_empty() {
        return Ok(Hash::None);
    }
    Hash::from_hex_upper(tendermint::hash::Algorithm::Sha256, h)
        .map_err(|e| anyhow!("bad stored hash {h}: {e}"))
}

impl<A: Application + Sync> Node<A> {
    /// Open the node: load genesis and keys, open the block store, run the ABCI handshake
    /// (InitChain on a fresh chain, replay of uncommitted blocks after a crash).
    pub fn open(
        home: &crate::home::Home,
        app: A,
        cfg: NodeConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Node<A>> {
        let genesis_json = crate::genesis::read(&home.genesis())?;
        let genesis = crate::genesis::validate(&genesis_json)?;
        let pvk = tendermint_config::PrivValidatorKey::load_json_file(&home.priv_validator_key())
            .map_err(|e| anyhow!("loading {}: {e}", home.priv_validator_key().display()))?;
        let sk = pvk
            .priv_key
            .ed25519_signing_key()
            .context("priv_validator_key.json does not hold an ed25519 key")?;
        let key = ed25519_consensus::SigningKey::try_from(sk.clone())
            .map_err(|e| anyhow!("bad validator key: {e}"))?;
        let node_id = tendermint_config::NodeKey::load_json_file(&home.node_key())
            .map_err(|e| anyhow!("loading {}: {e}", home.node_key().display()))?
            .node_id()
            .to_string();
        if genesis.validators.len() != 1 || genesis.validators[0].address != pvk.address {
            bail!(
                "the embedded node runs a single-validator chain whose only genesis validator is this node's \
                 priv_validator_key ({}); this genesis has {} validator(s). Run a multi-validator chain with \
                 `magnetd start --abci-only` behind CometBFT (see docs/validator-quickstart.md)",
                pvk.address,
                genesis.validators.len()
            );
        }
        let consensus_params: tendermint_proto::v0_38::types::ConsensusParams =
            genesis.consensus_params.clone().into();
        let store = BlockStore::open(&home.node_dir())?;
        let state = store.state()?;
        let view = ChainView {
            chain_id: genesis.chain_id.to_string(),
            validators: genesis.validators.clone(),
            state,
            genesis: genesis_json.clone(),
            genesis_time: genesis.genesis_time,
            initial_height: genesis.initial_height as u64,
        };
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let node = Node {
            app,
            store,
            key,
            address: pvk.address,
            node_id,
            cfg,
            mempool: Mutex::new(Mempool::default()),
            view: RwLock::new(view),
            consensus_params,
            commits: tx,
            metrics,
            home_node_dir: home.node_dir(),
        };
        node.handshake(&genesis_json)?;
        Ok(node)
    }

    /// The application.
    pub fn app(&self) -> &A {
        &self.app
    }
    /// The block store.
    pub fn store(&self) -> &BlockStore {
        &self.store
    }
    /// A snapshot of the chain view.
    pub fn view(&self) -> ChainView {
        self.view
            .read()
            .map(|v| v.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
    /// This node's p2p id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
    /// The validator's consensus address.
    pub fn validator_address(&self) -> account::Id {
        self.address
    }
    /// The node config.
    pub fn config(&self) -> &NodeConfig {
        &self.cfg
    }
    /// Subscribe to committed heights.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.commits.subscribe()
    }
    /// Number of txs in the mempool.
    pub fn mempool_size(&self) -> usize {
        self.mempool.lock().map(|m| m.queue.len()).unwrap_or(0)
    }

    fn set_state(&self, state: NodeState) {
        match self.view.write() {
            Ok(mut v) => v.state = state,
            Err(p) => p.into_inner().state = state,
        }
    }

    fn handshake(&self, genesis_json: &serde_json::Value) -> Result<()> {
        let info = self.app.info(pb::RequestInfo {
            version: COMET_VERSION.into(),
            block_version: BLOCK_PROTOCOL,
            p2p_version: P2P_PROTOCOL,
            abci_version: "2.0.0".into(),
        });
        let app_height =
            u64::try_from(info.last_block_height).context("app reports a negative height")?;
        let mut state = self.store.state()?;
        let stored = self.store.last_block_height()?;
        tracing::info!(
            app_height,
            node_height = state.last_height,
            stored_blocks = stored,
            "ABCI handshake"
        );
        if app_height > stored {
            bail!(
                "the app is at height {app_height} but the node store only has blocks up to {stored}: \
                 the node store ({}) was lost or belongs to another chain",
                self.home_node_dir.display()
            );
        }
        if app_height == 0 {
            let view = self.view();
            let app_state = genesis_json
                .get("app_state")
                .cloned()
                .unwrap_or(serde_json::Value::Null);
            let validators = view
                .validators
                .iter()
                .map(|v| pb::ValidatorUpdate {
                    pub_key: Some(v.pub_key.into()),
                    power: v.power.value() as i64,
                })
                .collect();
            let resp = self.app.init_chain(pb::RequestInitChain {
                time: Some(ts(view.genesis_time)),
                chain_id: view.chain_id.clone(),
                consensus_params: Some(self.consensus_params.clone()),
                validators,
                app_state_bytes: serde_json::to_vec(&app_state)?.into(),
                initial_height: view.initial_height as i64,
            });
            if state.last_height == 0 {
                state = NodeState {
                    app_hash: hex::encode_upper(&resp.app_hash),
                    last_time: view.genesis_time.to_rfc3339(),
                    ..NodeState::default()
                };
                self.store.save_results_genesis(&state)?;
            }
            tracing::info!(app_hash = %hex::encode_upper(&resp.app_hash), "InitChain done");
        }
        // Replay what the app has not committed. A chain started from an exported genesis
        // begins at `initial_height`, not 1.
        let first = if app_height == 0 {
            self.view().initial_height.max(1)
        } else {
            app_height + 1
        };
        for h in first..=stored {
            let req = self.store.request(h)?.with_context(|| {
                format!("block {h} is stored without its FinalizeBlock request")
            })?;
            tracing::warn!(height = h, "replaying block the app had not committed");
            let prior = self.store.results(h)?;
            let resp = self.app.finalize_block(req.clone());
            if let Some(prior) = prior {
                if prior.app_hash != resp.app_hash {
                    bail!(
                        "replaying block {h} gave app hash {} but it gave {} before the restart: the app is not deterministic",
                        hex::encode_upper(&resp.app_hash),
                        hex::encode_upper(&prior.app_hash)
                    );
                }
            }
            let block = self.load_block(h)?;
            state = self.record_results(&block, &req, &resp)?;
            self.app.commit();
        }
        self.set_state(state.clone());
        self.commits.send_replace(state.last_height);
        self.metrics.height.set(state.last_height as i64);
        Ok(())
    }

    /// The stored block at `height`.
    pub fn load_block(&self, height: u64) -> Result<tendermint::Block> {
        use tendermint_proto::Protobuf;
        let bytes = self
            .store
            .block(height)?
            .with_context(|| format!("no block at height {height}"))?;
        <tendermint::Block as Protobuf<tendermint_proto::v0_38::types::Block>>::decode_vec(&bytes)
            .map_err(|e| anyhow!("decoding stored block {height}: {e}"))
    }

    /// Block id (header hash + part set header) of a block, as CometBFT computes it
    /// (64 KiB parts of the proto encoding, merkle root of the parts).
    pub fn block_id(block: &tendermint::Block) -> Result<block::Id> {
        use tendermint_proto::Protobuf;
        let bytes =
            <tendermint::Block as Protobuf<tendermint_proto::v0_38::types::Block>>::encode_vec(
                block.clone(),
            );
        let parts: Vec<&[u8]> = bytes.chunks(65536).collect();
        let total = u32::try_from(parts.len().max(1)).context("block too large")?;
        let parts_hash = Hash::Sha256(merkle(&parts));
        Ok(block::Id {
            hash: block.header.hash(),
            part_set_header: block::parts::Header::new(total, parts_hash)
                .map_err(|e| anyhow!("{e}"))?,
        })
    }

    /// Sign the precommit for `id` at `height` with timestamp `time`.
    fn commit_for(
        &self,
        chain_id: &chain::Id,
        height: Height,
        id: block::Id,
        time: Time,
    ) -> Result<Commit> {
        let vote = tendermint::Vote {
            vote_type: tendermint::vote::Type::Precommit,
            height,
            round: block::Round::default(),
            block_id: Some(id),
            timestamp: Some(time),
            validator_address: self.address,
            validator_index: tendermint::vote::ValidatorIndex::try_from(0u32)
                .map_err(|e| anyhow!("{e}"))?,
            signature: None,
            extension: vec![],
            extension_signature: None,
        };
        let sign_bytes = vote.into_signable_vec(chain_id.clone());
        let sig = self.key.sign(&sign_bytes);
        let signature = tendermint::Signature::try_from(sig.to_bytes().as_slice())
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Commit {
            height,
            round: block::Round::default(),
            block_id: id,
            signatures: vec![CommitSig::BlockIdFlagCommit {
                validator_address: self.address,
                timestamp: time,
                signature: Some(signature),
            }],
        })
    }

    fn commit_info(&self, height: u64) -> pb::CommitInfo {
        if height <= 1 {
            return pb::CommitInfo::default();
        }
        let view = self.view();
        pb::CommitInfo {
            round: 0,
            votes: view
                .validators
                .iter()
                .map(|v| pb::VoteInfo {
                    validator: Some(pb::Validator {
                        address: v.address.as_bytes().to_vec().into(),
                        power: v.power.value() as i64,
                    }),
                    block_id_flag: tendermint_proto::v0_38::types::BlockIdFlag::Commit as i32,
                })
                .collect(),
        }
    }

    /// Offer a tx to the mempool through CheckTx.
    pub fn check_tx(&self, tx: Vec<u8>) -> Result<CheckOutcome> {
        let hash = sha(&tx);
        if tx.len() > self.cfg.max_tx_bytes {
            return Ok(CheckOutcome {
                hash,
                response: pb::ResponseCheckTx {
                    code: 1,
                    codespace: "mempool".into(),
                    log: format!(
                        "tx of {} bytes exceeds the mempool limit of {}",
                        tx.len(),
                        self.cfg.max_tx_bytes
                    ),
                    ..Default::default()
                },
            });
        }
        // Hold the mempool lock across CheckTx, as CometBFT does, so CheckTx never runs
        // concurrently with Commit and the recheck after it.
        let mut mp = self
            .mempool
            .lock()
            .map_err(|_| anyhow!("mempool lock poisoned"))?;
        if mp.seen.contains(&hash) {
            return Ok(CheckOutcome {
                hash,
                response: pb::ResponseCheckTx {
                    code: 19,
                    codespace: "mempool".into(),
                    log: "tx already in the mempool".into(),
                    ..Default::default()
                },
            });
        }
        if mp.queue.len() >= self.cfg.mempool_max_txs {
            return Ok(CheckOutcome {
                hash,
                response: pb::ResponseCheckTx {
                    code: 20,
                    codespace: "mempool".into(),
                    log: format!("mempool is full ({} txs); retry later", mp.queue.len()),
                    ..Default::default()
                },
            });
        }
        let response = self.app.check_tx(pb::RequestCheckTx {
            tx: tx.clone().into(),
            r#type: pb::CheckTxType::New as i32,
        });
        if response.code == 0 {
            mp.bytes += tx.len();
            mp.seen.insert(hash);
            mp.queue.push_back((hash, tx));
            self.metrics.mempool_size.set(mp.queue.len() as i64);
        }
        Ok(CheckOutcome { response, hash })
    }

    fn reap(&self) -> Vec<Vec<u8>> {
        let Ok(mp) = self.mempool.lock() else {
            return vec![];
        };
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for (_, tx) in mp.queue.iter() {
            if bytes + tx.len() > self.cfg.max_block_tx_bytes {
                break;
            }
            bytes += tx.len();
            out.push(tx.clone());
        }
        out
    }

    /// Produce, execute and commit one block. Returns its height.
    pub fn produce_block(&self) -> Result<u64> {
        let view = self.view();
        let st = view.state.clone();
        // The first block is at the genesis `initial_height` (1 unless the genesis was
        // exported from an earlier chain).
        let height = if st.last_height == 0 {
            view.initial_height.max(1)
        } else {
            st.last_height + 1
        };
        let h = Height::try_from(height)?;
        let chain_id: chain::Id = view.chain_id.parse()?;
        let time = if height == view.initial_height.max(1) {
            view.genesis_time
        } else {
            let prev: Time = st
                .last_time
                .parse()
                .map_err(|e| anyhow!("stored time: {e}"))?;
            (prev + self.cfg.block_time).map_err(|e| anyhow!("block time overflow: {e}"))?
        };
        let vset = tendermint::validator::Set::without_proposer(view.validators.clone());
        let vhash = vset.hash();
        let candidates = self.reap();
        let prep = self.app.prepare_proposal(pb::RequestPrepareProposal {
            max_tx_bytes: self.cfg.max_block_tx_bytes as i64,
            txs: candidates.into_iter().map(Into::into).collect(),
            local_last_commit: Some(pb::ExtendedCommitInfo::default()),
            misbehavior: vec![],
            height: height as i64,
            time: Some(ts(time)),
            next_validators_hash: vhash.as_bytes().to_vec().into(),
            proposer_address: self.address.as_bytes().to_vec().into(),
        });
        let mut txs: Vec<Vec<u8>> = prep.txs.into_iter().map(|b| b.to_vec()).collect();

        let (last_block_id, last_commit) = if st.last_height == 0 {
            (None, None)
        } else {
            let id = block::Id {
                hash: hex_hash(&st.last_block_hash)?,
                part_set_header: block::parts::Header::new(
                    st.last_parts_total,
                    hex_hash(&st.last_parts_hash)?,
                )
                .map_err(|e| anyhow!("{e}"))?,
            };
            let prev_time: Time = st
                .last_time
                .parse()
                .map_err(|e| anyhow!("stored time: {e}"))?;
            let c = self.commit_for(&chain_id, Height::try_from(st.last_height)?, id, prev_time)?;
            (Some(id), Some(c))
        };
        let build = |txs: &Vec<Vec<u8>>| -> Result<tendermint::Block> {
            let tx_hashes: Vec<[u8; 32]> = txs.iter().map(|t| sha(t)).collect();
            let last_commit_hash = match &last_commit {
                Some(c) => {
                    let leaves: Vec<Vec<u8>> = c
                        .signatures
                        .iter()
                        .map(|s| {
                            tendermint_proto::v0_38::types::CommitSig::from(s.clone())
                                .encode_to_vec()
                        })
                        .collect();
                    Some(Hash::Sha256(merkle(&leaves)))
                }
                None => None,
            };
            let app_hash_bytes = hex::decode(&st.app_hash).context("stored app hash")?;
            let header = Header {
                version: tendermint::block::header::Version {
                    block: BLOCK_PROTOCOL,
                    app: 0,
                },
                chain_id: chain_id.clone(),
                height: h,
                time,
                last_block_id,
                last_commit_hash,
                data_hash: Some(Hash::Sha256(merkle(&tx_hashes))),
                validators_hash: vhash,
                next_validators_hash: vhash,
                consensus_hash: Hash::Sha256(consensus_hash(&self.consensus_params)),
                app_hash: AppHash::try_from(app_hash_bytes).map_err(|e| anyhow!("{e}"))?,
                last_results_hash: if st.last_height == 0 {
                    None
                } else {
                    Some(hex_hash(&st.last_results_hash)?)
                },
                evidence_hash: Some(Hash::Sha256(merkle::<Vec<u8>>(&[]))),
                proposer_address: self.address,
            };
            Ok(tendermint::Block::new(
                header,
                txs.clone(),
                Default::default(),
                last_commit.clone(),
            ))
        };
        let mut blk = build(&txs)?;
        let mut id = Self::block_id(&blk)?;
        let proc = self.app.process_proposal(pb::RequestProcessProposal {
            txs: txs.iter().cloned().map(Into::into).collect(),
            proposed_last_commit: Some(self.commit_info(height)),
            misbehavior: vec![],
            hash: id.hash.as_bytes().to_vec().into(),
            height: height as i64,
            time: Some(ts(time)),
            next_validators_hash: vhash.as_bytes().to_vec().into(),
            proposer_address: self.address.as_bytes().to_vec().into(),
        });
        if proc.status != pb::response_process_proposal::ProposalStatus::Accept as i32 {
            tracing::error!(
                height,
                "the app rejected our own proposal; producing an empty block instead"
            );
            txs.clear();
            blk = build(&txs)?;
            id = Self::block_id(&blk)?;
        }
        let req = pb::RequestFinalizeBlock {
            txs: txs.iter().cloned().map(Into::into).collect(),
            decided_last_commit: Some(self.commit_info(height)),
            misbehavior: vec![],
            hash: id.hash.as_bytes().to_vec().into(),
            height: height as i64,
            time: Some(ts(time)),
            next_validators_hash: vhash.as_bytes().to_vec().into(),
            proposer_address: self.address.as_bytes().to_vec().into(),
        };
        {
            use tendermint_proto::Protobuf;
            let bytes =
                <tendermint::Block as Protobuf<tendermint_proto::v0_38::types::Block>>::encode_vec(
                    blk.clone(),
                );
            self.store.save_block(height, &bytes, &req)?;
        }
        self.maybe_halt(HaltPoint::BeforeFinalize, height);
        let span = tracing::info_span!("block", height, txs = txs.len());
        let _g = span.enter();
        let resp = self.app.finalize_block(req.clone());
        self.maybe_halt(HaltPoint::AfterFinalize, height);
        let new_state = self.record_results(&blk, &req, &resp)?;
        self.maybe_halt(HaltPoint::BeforeCommit, height);
        // Commit under the mempool lock, then recheck what is left (as CometBFT does).
        let mut mp = self
            .mempool
            .lock()
            .map_err(|_| anyhow!("mempool lock poisoned"))?;
        self.app.commit();
        self.set_state(new_state.clone());
        let included: BTreeSet<[u8; 32]> = txs.iter().map(|t| sha(t)).collect();
        let old = std::mem::take(&mut mp.queue);
        mp.seen.clear();
        mp.bytes = 0;
        for (hsh, tx) in old {
            if included.contains(&hsh) {
                continue;
            }
            let r = self.app.check_tx(pb::RequestCheckTx {
                tx: tx.clone().into(),
                r#type: pb::CheckTxType::Recheck as i32,
            });
            if r.code == 0 {
                mp.bytes += tx.len();
                mp.seen.insert(hsh);
                mp.queue.push_back((hsh, tx));
            }
        }
        self.metrics.mempool_size.set(mp.queue.len() as i64);
        drop(mp);
        let failed = resp.tx_results.iter().filter(|r| r.code != 0).count();
        tracing::info!(app_hash = %new_state.app_hash, failed_txs = failed, "committed");
        self.metrics.height.set(height as i64);
        self.metrics.txs_total.inc_by(txs.len() as u64);
        self.metrics.block_txs.set(txs.len() as i64);
        self.commits.send_replace(height);
        Ok(height)
    }

    /// Store results of an executed block and return the new node state (not yet applied to
    /// the view). Validator updates are applied to the view here.
    fn record_results(
        &self,
        blk: &tendermint::Block,
        req: &pb::RequestFinalizeBlock,
        resp: &pb::ResponseFinalizeBlock,
    ) -> Result<NodeState> {
        if resp.tx_results.len() != req.txs.len() {
            bail!(
                "FinalizeBlock returned {} tx results for {} txs",
                resp.tx_results.len(),
                req.txs.len()
            );
        }
        let id = Self::block_id(blk)?;
        let state = NodeState {
            last_height: blk.header.height.value(),
            last_block_hash: id.hash.to_string(),
            last_parts_hash: id.part_set_header.hash.to_string(),
            last_parts_total: id.part_set_header.total,
            last_time: blk.header.time.to_rfc3339(),
            app_hash: hex::encode_upper(&resp.app_hash),
            last_results_hash: hex::encode_upper(results_hash(resp)),
        };
        let hashes: Vec<[u8; 32]> = req.txs.iter().map(|t| sha(t)).collect();
        self.store
            .save_results(state.last_height, resp, &hashes, &state)?;
        if !resp.validator_updates.is_empty() {
            self.apply_validator_updates(&resp.validator_updates)?;
        }
        Ok(state)
    }

    fn apply_validator_updates(&self, updates: &[pb::ValidatorUpdate]) -> Result<()> {
        let mut view = self
            .view
            .write()
            .map_err(|_| anyhow!("view lock poisoned"))?;
        for u in updates {
            let pk = u
                .pub_key
                .clone()
                .context("validator update without a key")?;
            let pk = tendermint::PublicKey::try_from(pk).map_err(|e| anyhow!("{e}"))?;
            let addr = account::Id::from(pk);
            view.validators.retain(|v| v.address != addr);
            if u.power > 0 {
                let power =
                    tendermint::vote::Power::try_from(u.power).map_err(|e| anyhow!("{e}"))?;
                view.validators
                    .push(tendermint::validator::Info::new(pk, power));
            }
        }
        if !view.validators.iter().any(|v| v.address == self.address) {
            tracing::error!(
                "the app removed this node's validator; the embedded node cannot continue to sign"
            );
        }
        Ok(())
    }

    fn maybe_halt(&self, point: HaltPoint, height: u64) {
        if self.cfg.halt_at == Some((point, height)) {
            let marker = self.home_node_dir.join(format!("halted-{height}"));
            let _ = std::fs::write(&marker, format!("{point:?}"));
            tracing::warn!(?point, height, "debug halt: sleeping until killed");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
    }

    /// Produce blocks every `block_time` until `stop` is set.
    pub fn run(self: Arc<Self>, stop: Arc<std::sync::atomic::AtomicBool>) -> Result<()> {
        let mut next = std::time::Instant::now() + self.cfg.block_time;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let now = std::time::Instant::now();
            if now < next {
                std::thread::sleep((next - now).min(Duration::from_millis(50)));
                continue;
            }
            let started = std::time::Instant::now();
            self.produce_block()?;
            self.metrics
                .block_seconds
                .observe(started.elapsed().as_secs_f64());
            next += self.cfg.block_time;
            if next < std::time::Instant::now() {
                next = std::time::Instant::now();
            }
        }
        Ok(())
    }
}
