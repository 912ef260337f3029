//! The versioned, crash-safe merkle store whose root is the app hash.
//!
//! # Design (see `docs/adr/0001-merkle-store-jmt-over-redb.md`)
//! * **Merkle root.** Every key-value pair of the state is a leaf of a Jellyfish Merkle Tree
//!   (`jmt`, SHA-256) at path `SHA256(key)`, with the version equal to the block height. The
//!   root of version `h` is the app hash of height `h`.
//! * **Durability.** Everything lives in one `redb` file (pure-Rust, copy-on-write B-trees,
//!   ACID). A block's writes — tree nodes, the flat latest-state table, the per-key history, the
//!   commit point — go into **one** redb write transaction, so after a crash the file holds
//!   either the whole block or none of it.
//! * **Two phases.** [`MerkleStore::stage`] (called by FinalizeBlock) computes the new root in
//!   memory and keeps the block pending; [`MerkleStore::commit`] (called by Commit) persists all
//!   pending versions at once. A crash between the two loses only the uncommitted block, which
//!   CometBFT replays after the Info handshake.
//! * **History.** `history[(key, version)]` records every write; a read at height `h` takes the
//!   newest entry at or below `h`. Entries (and tree nodes) superseded at or before the oldest
//!   retained height are pruned at commit when a pruning window is configured.
//!
//! # Guarantees
//! The app hash is a pure function of the key-value set (independent of write order and of
//! how many blocks produced it... within the same version numbering). Reads during execution see
//! committed state plus pending blocks. Iteration is in ascending key order.
//!
//! # Non-guarantees
//! Proofs ([`MerkleStore::prove`]) cover committed heights in the pruning window. State sync
//! ([`MerkleStore::restore`], ADR 0099) rebuilds an empty store from a snapshot's key-value
//! set at its height; heights below it are not available there (no history, no proofs). An I/O error of the database file while a block executes is fatal:
//! the process stops (as the Cosmos SDK does) rather than continue with unknown state.

use jmt::storage::{Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, Version};
use magnet_core::KvStore;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

/// A jmt proof of one key against a state root.
pub type StateProof = jmt::proof::SparseMerkleProof<sha2::Sha256>;

/// A value (or absence) read with its proof, and the root it is proven against.
pub struct ProvenValue {
    /// The value; `None` when the key is absent.
    pub value: Option<Vec<u8>>,
    /// The proof.
    pub proof: StateProof,
    /// The app hash of the height it was read at.
    pub root: [u8; 32],
}

/// A key-value set in ascending key order (a snapshot's content).
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Pending writes: `None` deletes the key.
pub type WriteSet = magnet_core::store::WriteMap;

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
/// `(key, version)` → `[0]` (deleted) or `[1] ++ value`.
const HISTORY: TableDefinition<(&[u8], u64), &[u8]> = TableDefinition::new("history");
/// borsh(NodeKey) → borsh(Node).
const NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("jmt_nodes");
/// `(stale_since_version, borsh(NodeKey))` → ().
const STALE_NODES: TableDefinition<(u64, &[u8]), ()> = TableDefinition::new("jmt_stale");
/// `(stale_since_version, key, version)` → ().
const STALE_HISTORY: TableDefinition<(u64, &[u8], u64), ()> = TableDefinition::new("history_stale");
/// SHA256(key) → key.
const PREIMAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("preimages");
/// height → app hash.
const ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("roots");

const META_HEIGHT: &str = "height";
const META_EARLIEST: &str = "earliest";

/// Errors of the store. Each says what failed and where.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file failed (I/O, corruption, lock held by another process).
    #[error("state database {what}: {detail}")]
    Db {
        /// Which operation.
        what: &'static str,
        /// The underlying error.
        detail: String,
    },
    /// The merkle tree could not be updated (missing node: corruption).
    #[error("merkle tree update at height {height}: {detail}")]
    Tree {
        /// Height being staged.
        height: u64,
        /// jmt's error.
        detail: String,
    },
    /// A height was staged out of order.
    #[error("cannot stage height {got}: next height is {expected}")]
    OutOfOrder {
        /// Expected height.
        expected: u64,
        /// Requested height.
        got: u64,
    },
    /// A snapshot restore into a store that already holds state.
    #[error("cannot restore a snapshot of height {height}: the store already holds height {holds}; state sync needs an empty data directory")]
    NotEmpty {
        /// Snapshot height.
        height: u64,
        /// Height the store holds (committed or pending).
        holds: u64,
    },
    /// A restored snapshot's root differs from the trusted app hash; nothing was written.
    #[error("snapshot of height {height} rebuilds app hash {got}, the trusted app hash is {want}")]
    RestoreMismatch {
        /// Snapshot height.
        height: u64,
        /// Rebuilt root, hex.
        got: String,
        /// Trusted app hash, hex.
        want: String,
    },
    /// A query asked for a height outside what is stored.
    #[error("height {height} is not available: stored heights are {earliest}..={latest}{hint}")]
    HeightUnavailable {
        /// Requested.
        height: u64,
        /// Oldest retained.
        earliest: u64,
        /// Latest committed.
        latest: u64,
        /// Why, for the user.
        hint: &'static str,
    },
}

fn db_err(what: &'static str) -> impl Fn(&dyn std::fmt::Display) -> StoreError {
    move |e| StoreError::Db {
        what,
        detail: e.to_string(),
    }
}

macro_rules! dbtry {
    ($e:expr, $what:expr) => {
        $e.map_err(|e| db_err($what)(&e))?
    };
}

/// Store configuration.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreConfig {
    /// Keep this many most recent heights queryable (`0` keeps every height).
    pub keep_recent: u64,
    /// fsync every commit (default). `false` keeps commits atomic but a power loss may roll
    /// back the last few blocks (CometBFT then replays them); for tests and benchmarks.
    #[serde(default = "yes")]
    pub fsync: bool,
}

fn yes() -> bool {
    true
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            keep_recent: 1000,
            fsync: true,
        }
    }
}

/// The last committed point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitPoint {
    /// Height (= jmt version).
    pub height: u64,
    /// Root hash of that height.
    pub app_hash: [u8; 32],
}

struct Pending {
    height: u64,
    writes: WriteSet,
    batch: TreeUpdateBatch,
    root: [u8; 32],
}

/// The store; see the module docs.
pub struct MerkleStore {
    db: Database,
    config: StoreConfig,
    committed: Option<CommitPoint>,
    earliest: u64,
    pending: Vec<Pending>,
    /// Union of the pending versions' tree nodes (for tree reads before commit).
    pending_nodes: BTreeMap<NodeKey, Node>,
    /// Union of the pending versions' writes, newest wins (for state reads before commit).
    pending_writes: WriteSet,
}

fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(magnet_core::sha256(key))
}

/// The key of the root node of `version` (empty nibble path). jmt keeps that constructor
/// private, so it is built from its borsh form: version (u64 LE), nibble count (u64 LE, 0),
/// path bytes (u32 LE length, 0). A unit test checks it against a root jmt wrote.
fn empty_root_key(version: u64) -> Result<NodeKey, StoreError> {
    let mut b = version.to_le_bytes().to_vec();
    b.extend_from_slice(&0u64.to_le_bytes());
    b.extend_from_slice(&0u32.to_le_bytes());
    borsh::from_slice(&b).map_err(|e| StoreError::Tree {
        height: version,
        detail: format!("cannot build the empty root key: {e}"),
    })
}

fn encode_node_key(k: &NodeKey) -> Vec<u8> {
    borsh::to_vec(k).unwrap_or_default()
}

impl MerkleStore {
    /// Open (or create) the store file at `path`.
    pub fn open(path: &Path, config: StoreConfig) -> Result<MerkleStore, StoreError> {
        let db = dbtry!(Database::create(path), "open");
        // Create every table so read transactions never meet a missing one.
        let w = dbtry!(db.begin_write(), "begin write");
        {
            dbtry!(w.open_table(META), "open meta");
            dbtry!(w.open_table(LATEST), "open latest");
            dbtry!(w.open_table(HISTORY), "open history");
            dbtry!(w.open_table(NODES), "open nodes");
            dbtry!(w.open_table(STALE_NODES), "open stale nodes");
            dbtry!(w.open_table(STALE_HISTORY), "open stale history");
            dbtry!(w.open_table(PREIMAGES), "open preimages");
            dbtry!(w.open_table(ROOTS), "open roots");
        }
        dbtry!(w.commit(), "create tables");
        let r = dbtry!(db.begin_read(), "begin read");
        let meta = dbtry!(r.open_table(META), "open meta");
        let read_u64 = |k: &str| -> Result<Option<u64>, StoreError> {
            Ok(dbtry!(meta.get(k), "read meta").and_then(|v| {
                let b: [u8; 8] = v.value().try_into().ok()?;
                Some(u64::from_be_bytes(b))
            }))
        };
        let height = read_u64(META_HEIGHT)?;
        let earliest = read_u64(META_EARLIEST)?.unwrap_or(0);
        let committed = match height {
            None => None,
            Some(h) => {
                let roots = dbtry!(r.open_table(ROOTS), "open roots");
                let hash = dbtry!(roots.get(h), "read root").ok_or_else(|| StoreError::Db {
                    what: "read root",
                    detail: format!("no app hash stored for committed height {h}"),
                })?;
                let app_hash: [u8; 32] = hash.value().try_into().map_err(|_| StoreError::Db {
                    what: "read root",
                    detail: format!("app hash of height {h} is not 32 bytes"),
                })?;
                Some(CommitPoint {
                    height: h,
                    app_hash,
                })
            }
        };
        drop(meta);
        drop(r);
        Ok(MerkleStore {
            db,
            config,
            committed,
            earliest,
            pending: Vec::new(),
            pending_nodes: BTreeMap::new(),
            pending_writes: BTreeMap::new(),
        })
    }

    /// The last committed height and app hash (`None` before the first commit).
    pub fn last_commit(&self) -> Option<CommitPoint> {
        self.committed
    }

    /// Root of the newest pending (staged, uncommitted) height, if any.
    pub fn pending_root(&self) -> Option<CommitPoint> {
        self.pending.last().map(|p| CommitPoint {
            height: p.height,
            app_hash: p.root,
        })
    }

    /// Oldest height that queries may still read.
    pub fn earliest_height(&self) -> u64 {
        self.earliest
    }

    /// The next height [`stage`](Self::stage) accepts (`None`: any, the store is empty).
    pub fn next_height(&self) -> Option<u64> {
        self.pending
            .last()
            .map(|p| p.height + 1)
            .or(self.committed.map(|c| c.height + 1))
    }

    /// A read view of committed state plus every pending block (for executing the next block).
    pub fn working_view(&self) -> Result<StateView<'_>, StoreError> {
        Ok(StateView {
            committed: self.latest_table()?,
            pending: Some(&self.pending_writes),
        })
    }

    /// A read view of committed state only (CheckTx's base, queries at the latest height).
    pub fn committed_view(&self) -> Result<StateView<'_>, StoreError> {
        Ok(StateView {
            committed: self.latest_table()?,
            pending: None,
        })
    }

    fn latest_table(
        &self,
    ) -> Result<redb::ReadOnlyTable<&'static [u8], &'static [u8]>, StoreError> {
        let r = dbtry!(self.db.begin_read(), "begin read");
        Ok(dbtry!(r.open_table(LATEST), "open latest"))
    }

    /// A read view of the committed state at `height` (within the pruning window).
    pub fn view_at(&self, height: u64) -> Result<HistoricalView, StoreError> {
        let latest = self.committed.map_or(0, |c| c.height);
        if self.committed.is_none() || height > latest {
            return Err(StoreError::HeightUnavailable {
                height,
                earliest: self.earliest,
                latest,
                hint: " (not committed yet)",
            });
        }
        if height < self.earliest {
            return Err(StoreError::HeightUnavailable {
                height,
                earliest: self.earliest,
                latest,
                hint: " (pruned; raise keep_recent to keep more history)",
            });
        }
        let r = dbtry!(self.db.begin_read(), "begin read");
        Ok(HistoricalView {
            table: dbtry!(r.open_table(HISTORY), "open history"),
            height,
        })
    }

    /// The value of `key` in the committed state at `height` (within the pruning window) with
    /// a jmt proof that it — or its absence — is in the tree whose root is that height's app
    /// hash.
    pub fn prove(&self, height: u64, key: &[u8]) -> Result<ProvenValue, StoreError> {
        // Same availability rules as a historical read.
        drop(self.view_at(height)?);
        let root = self
            .app_hash_at(height)?
            .ok_or(StoreError::HeightUnavailable {
                height,
                earliest: self.earliest,
                latest: self.committed.map_or(0, |c| c.height),
                hint: " (no root recorded)",
            })?;
        let tx = dbtry!(self.db.begin_read(), "begin read");
        let no_nodes = BTreeMap::new();
        let no_writes = WriteSet::new();
        let reader = NodeReader {
            pending: &no_nodes,
            nodes: dbtry!(tx.open_table(NODES), "open nodes"),
            history: dbtry!(tx.open_table(HISTORY), "open history"),
            preimages: dbtry!(tx.open_table(PREIMAGES), "open preimages"),
            pending_writes: &no_writes,
        };
        let tree = jmt::Sha256Jmt::new(&reader);
        let (value, proof) =
            tree.get_with_proof(key_hash(key), height)
                .map_err(|e| StoreError::Tree {
                    height,
                    detail: format!("proof of {}: {e}", hex::encode(key)),
                })?;
        Ok(ProvenValue { value, proof, root })
    }

    /// App hash stored for a committed `height`.
    pub fn app_hash_at(&self, height: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let r = dbtry!(self.db.begin_read(), "begin read");
        let roots = dbtry!(r.open_table(ROOTS), "open roots");
        Ok(dbtry!(roots.get(height), "read root").and_then(|v| v.value().try_into().ok()))
    }

    /// Compute the merkle root of the state after applying `writes` as `height`, and keep the
    /// block pending until [`commit`](Self::commit). Heights must follow each other.
    pub fn stage(&mut self, height: u64, writes: WriteSet) -> Result<[u8; 32], StoreError> {
        if let Some(expected) = self.next_height() {
            if height != expected {
                return Err(StoreError::OutOfOrder {
                    expected,
                    got: height,
                });
            }
        } else if height > 0 {
            // The first version of a chain whose genesis is not height 0: make the tree at
            // `height - 1` an explicit empty tree so jmt has a parent root to start from.
            self.pending_nodes
                .insert(empty_root_key(height - 1)?, Node::Null);
        }
        let tx = dbtry!(self.db.begin_read(), "begin read");
        let reader = NodeReader {
            pending: &self.pending_nodes,
            nodes: dbtry!(tx.open_table(NODES), "open nodes"),
            history: dbtry!(tx.open_table(HISTORY), "open history"),
            preimages: dbtry!(tx.open_table(PREIMAGES), "open preimages"),
            pending_writes: &self.pending_writes,
        };
        let tree = jmt::Sha256Jmt::new(&reader);
        let value_set: Vec<(KeyHash, Option<OwnedValue>)> = writes
            .iter()
            .map(|(k, v)| (key_hash(k), v.clone()))
            .collect();
        let (root, batch) =
            tree.put_value_set(value_set, height)
                .map_err(|e| StoreError::Tree {
                    height,
                    detail: e.to_string(),
                })?;
        drop(reader);
        for (k, n) in batch.node_batch.nodes() {
            self.pending_nodes.insert(k.clone(), n.clone());
        }
        for (k, v) in &writes {
            self.pending_writes.insert(k.clone(), v.clone());
        }
        self.pending.push(Pending {
            height,
            writes,
            batch,
            root: root.0,
        });
        Ok(root.0)
    }

    /// A consistent read of the committed key-value set, detached from `&self` (it holds a
    /// redb read transaction), so a snapshot can be written on another thread while blocks
    /// go on. `None` before the first commit.
    pub fn committed_state(&self) -> Result<Option<CommittedState>, StoreError> {
        let Some(c) = self.committed else {
            return Ok(None);
        };
        Ok(Some(CommittedState {
            height: c.height,
            app_hash: c.app_hash,
            table: self.latest_table()?,
        }))
    }

    /// State sync: rebuild an **empty** store as the key-value set `entries` at `height`, and
    /// commit it only if its root equals `trusted_app_hash` (otherwise nothing is written and
    /// the store stays empty). Afterwards the store behaves as if it had committed `height`
    /// itself, with `height` as its earliest queryable height.
    pub fn restore(
        &mut self,
        height: u64,
        entries: Entries,
        trusted_app_hash: [u8; 32],
    ) -> Result<CommitPoint, StoreError> {
        if let Some(holds) = self.pending_root().or(self.committed).map(|c| c.height) {
            return Err(StoreError::NotEmpty { height, holds });
        }
        let writes: WriteSet = entries.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let root = self.stage(height, writes)?;
        if root != trusted_app_hash {
            self.discard_pending();
            return Err(StoreError::RestoreMismatch {
                height,
                got: hex::encode(root),
                want: hex::encode(trusted_app_hash),
            });
        }
        match self.commit()? {
            Some(c) => Ok(c),
            None => Err(StoreError::Tree {
                height,
                detail: "restore committed nothing".into(),
            }),
        }
    }

    /// Drop every pending (uncommitted) block.
    pub fn discard_pending(&mut self) {
        self.pending.clear();
        self.pending_nodes.clear();
        self.pending_writes.clear();
    }

    /// Persist every pending block atomically; returns the new commit point.
    pub fn commit(&mut self) -> Result<Option<CommitPoint>, StoreError> {
        if self.pending.is_empty() {
            return Ok(self.committed);
        }
        let pending = std::mem::take(&mut self.pending);
        let last = pending.last().map(|p| (p.height, p.root));
        let mut w = dbtry!(self.db.begin_write(), "begin write");
        if !self.config.fsync {
            dbtry!(w.set_durability(redb::Durability::None), "set durability");
        }
        {
            let mut latest = dbtry!(w.open_table(LATEST), "open latest");
            let mut history = dbtry!(w.open_table(HISTORY), "open history");
            let mut nodes = dbtry!(w.open_table(NODES), "open nodes");
            let mut stale_nodes = dbtry!(w.open_table(STALE_NODES), "open stale nodes");
            let mut stale_history = dbtry!(w.open_table(STALE_HISTORY), "open stale history");
            let mut preimages = dbtry!(w.open_table(PREIMAGES), "open preimages");
            let mut roots = dbtry!(w.open_table(ROOTS), "open roots");
            // The explicit empty parent tree of a chain starting above height 0.
            for (k, n) in &self.pending_nodes {
                if matches!(n, Node::Null) {
                    let nb = borsh::to_vec(n).unwrap_or_default();
                    dbtry!(
                        nodes.insert(encode_node_key(k).as_slice(), nb.as_slice()),
                        "write node"
                    );
                }
            }
            for p in &pending {
                let v = p.height;
                for (k, n) in p.batch.node_batch.nodes() {
                    let nb = borsh::to_vec(n).unwrap_or_default();
                    dbtry!(
                        nodes.insert(encode_node_key(k).as_slice(), nb.as_slice()),
                        "write node"
                    );
                }
                for s in &p.batch.stale_node_index_batch {
                    dbtry!(
                        stale_nodes.insert(
                            (
                                s.stale_since_version,
                                encode_node_key(&s.node_key).as_slice()
                            ),
                            ()
                        ),
                        "write stale node"
                    );
                }
                for (k, val) in &p.writes {
                    // The entry this write supersedes becomes stale at `v`.
                    let prev = {
                        let mut it = dbtry!(
                            history.range::<(&[u8], u64)>((k.as_slice(), 0)..(k.as_slice(), v)),
                            "read history"
                        );
                        match it.next_back() {
                            Some(e) => Some(dbtry!(e, "read history").0.value().1),
                            None => None,
                        }
                    };
                    if let Some(pv) = prev {
                        dbtry!(
                            stale_history.insert((v, k.as_slice(), pv), ()),
                            "write stale"
                        );
                    }
                    match val {
                        Some(value) => {
                            let mut enc = Vec::with_capacity(value.len() + 1);
                            enc.push(1u8);
                            enc.extend_from_slice(value);
                            dbtry!(
                                history.insert((k.as_slice(), v), enc.as_slice()),
                                "write history"
                            );
                            dbtry!(
                                latest.insert(k.as_slice(), value.as_slice()),
                                "write latest"
                            );
                        }
                        None => {
                            dbtry!(
                                history.insert((k.as_slice(), v), [0u8].as_slice()),
                                "write history"
                            );
                            // A tombstone only masks older entries; it is stale as soon as
                            // they are pruned.
                            dbtry!(
                                stale_history.insert((v, k.as_slice(), v), ()),
                                "write stale"
                            );
                            dbtry!(latest.remove(k.as_slice()), "delete latest");
                        }
                    }
                    dbtry!(
                        preimages.insert(key_hash(k).0.as_slice(), k.as_slice()),
                        "write preimage"
                    );
                }
                dbtry!(roots.insert(v, p.root.as_slice()), "write root");
            }
            let mut meta = dbtry!(w.open_table(META), "open meta");
            if let Some((h, _)) = last {
                dbtry!(
                    meta.insert(META_HEIGHT, h.to_be_bytes().as_slice()),
                    "write meta"
                );
                if self.committed.is_none() {
                    let first = pending.first().map_or(h, |p| p.height);
                    dbtry!(
                        meta.insert(META_EARLIEST, first.to_be_bytes().as_slice()),
                        "write meta"
                    );
                    self.earliest = first;
                }
                // Pruning: keep heights (h - keep_recent, h].
                if self.config.keep_recent > 0 && h >= self.config.keep_recent {
                    let oldest = h + 1 - self.config.keep_recent;
                    if oldest > self.earliest {
                        let doomed: Vec<(u64, Vec<u8>)> = {
                            let it = dbtry!(
                                stale_nodes.range::<(u64, &[u8])>(
                                    (0, [].as_slice())..(oldest + 1, [].as_slice())
                                ),
                                "read stale nodes"
                            );
                            let mut out = Vec::new();
                            for e in it {
                                let e = dbtry!(e, "read stale nodes");
                                let (s, nk) = e.0.value();
                                out.push((s, nk.to_vec()));
                            }
                            out
                        };
                        for (s, nk) in doomed {
                            dbtry!(nodes.remove(nk.as_slice()), "prune node");
                            dbtry!(stale_nodes.remove((s, nk.as_slice())), "prune node");
                        }
                        let doomed: Vec<(u64, Vec<u8>, u64)> = {
                            let it = dbtry!(
                                stale_history.range::<(u64, &[u8], u64)>(
                                    (0, [].as_slice(), 0)..(oldest + 1, [].as_slice(), 0)
                                ),
                                "read stale history"
                            );
                            let mut out = Vec::new();
                            for e in it {
                                let e = dbtry!(e, "read stale history");
                                let (s, k, ver) = e.0.value();
                                out.push((s, k.to_vec(), ver));
                            }
                            out
                        };
                        for (s, k, ver) in doomed {
                            dbtry!(history.remove((k.as_slice(), ver)), "prune history");
                            dbtry!(
                                stale_history.remove((s, k.as_slice(), ver)),
                                "prune history"
                            );
                        }
                        dbtry!(
                            meta.insert(META_EARLIEST, oldest.to_be_bytes().as_slice()),
                            "write meta"
                        );
                        self.earliest = oldest;
                    }
                }
            }
        }
        dbtry!(w.commit(), "commit block");
        self.pending_nodes.clear();
        self.pending_writes.clear();
        if let Some((h, root)) = last {
            self.committed = Some(CommitPoint {
                height: h,
                app_hash: root,
            });
        }
        Ok(self.committed)
    }
}

/// The committed key-value set of one height, read in one redb read transaction
/// ([`MerkleStore::committed_state`]).
pub struct CommittedState {
    /// Height.
    pub height: u64,
    /// App hash of that height.
    pub app_hash: [u8; 32],
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
}

impl CommittedState {
    /// Every key-value pair, ascending by key.
    pub fn entries(&self) -> Result<Entries, StoreError> {
        let it = dbtry!(self.table.iter(), "read latest");
        let mut out = Vec::new();
        for e in it {
            let (k, v) = dbtry!(e, "read latest");
            out.push((k.value().to_vec(), v.value().to_vec()));
        }
        Ok(out)
    }
}

struct NodeReader<'a> {
    pending: &'a BTreeMap<NodeKey, Node>,
    nodes: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    history: redb::ReadOnlyTable<(&'static [u8], u64), &'static [u8]>,
    preimages: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pending_writes: &'a WriteSet,
}

impl TreeReader for NodeReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        if let Some(n) = self.pending.get(node_key) {
            return Ok(Some(n.clone()));
        }
        let k = encode_node_key(node_key);
        match self.nodes.get(k.as_slice())? {
            None => Ok(None),
            Some(v) => Ok(Some(borsh::from_slice(v.value())?)),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let key = match self.preimages.get(key_hash.0.as_slice())? {
            Some(k) => k.value().to_vec(),
            None => {
                // Written in a pending block only?
                match self
                    .pending_writes
                    .iter()
                    .find(|(k, _)| self::key_hash(k) == key_hash)
                {
                    Some((_, v)) => return Ok(v.clone()),
                    None => return Ok(None),
                }
            }
        };
        if let Some(v) = self.pending_writes.get(&key) {
            return Ok(v.clone());
        }
        Ok(history_get(&self.history, &key, max_version)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, jmt::storage::LeafNode)>> {
        anyhow::bail!("state-sync restore is not supported by this store")
    }
}

fn history_get(
    table: &redb::ReadOnlyTable<(&'static [u8], u64), &'static [u8]>,
    key: &[u8],
    height: u64,
) -> Result<Option<Vec<u8>>, redb::StorageError> {
    let mut it = table.range::<(&[u8], u64)>((key, 0)..=(key, height))?;
    match it.next_back() {
        None => Ok(None),
        Some(e) => {
            let (_, v) = e?;
            Ok(decode_history(v.value()))
        }
    }
}

fn decode_history(v: &[u8]) -> Option<Vec<u8>> {
    match v.split_first() {
        Some((1, rest)) => Some(rest.to_vec()),
        _ => None,
    }
}

/// Stops the process on a database read error during execution (see module docs).
fn fatal(e: &dyn std::fmt::Display) -> ! {
    tracing::error!(error = %e, "state database read failed; stopping to keep state consistent");
    panic!("state database read failed: {e}")
}

/// Latest state (committed, optionally plus pending blocks) as a [`KvStore`]. Writes through
/// this view are not allowed: execution writes into its own buffer above it.
pub struct StateView<'a> {
    committed: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    pending: Option<&'a WriteSet>,
}

impl StateView<'_> {
    fn committed_get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.committed.get(key) {
            Ok(v) => v.map(|v| v.value().to_vec()),
            Err(e) => fatal(&e),
        }
    }
    fn committed_range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        let upper = match end {
            Some(e) => Bound::Excluded(e),
            None => Bound::Unbounded,
        };
        let it = match self
            .committed
            .range::<&[u8]>((Bound::Included(start), upper))
        {
            Ok(it) => it,
            Err(e) => fatal(&e),
        };
        it.map(|e| match e {
            Ok((k, v)) => (k.value().to_vec(), v.value().to_vec()),
            Err(e) => fatal(&e),
        })
        .collect()
    }
}

impl KvStore for StateView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        if let Some(p) = self.pending {
            if let Some(v) = p.get(key) {
                return v.clone();
            }
        }
        self.committed_get(key)
    }
    fn set(&mut self, _key: &[u8], _value: Vec<u8>) {
        fatal(&"write to a read-only state view (a bug: execution must write to a buffer)")
    }
    fn delete(&mut self, _key: &[u8]) {
        fatal(&"delete on a read-only state view (a bug: execution must write to a buffer)")
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        if let Some(e) = end {
            if e <= start {
                return Vec::new();
            }
        }
        let base = self.committed_range(start, end);
        match self.pending {
            Some(p) => magnet_core::store::apply_writes(base, p, start, end),
            None => base,
        }
    }
}

/// Committed state at a past height, read from the history table.
pub struct HistoricalView {
    table: redb::ReadOnlyTable<(&'static [u8], u64), &'static [u8]>,
    height: u64,
}

impl HistoricalView {
    /// The height this view reads.
    pub fn height(&self) -> u64 {
        self.height
    }
}

impl KvStore for HistoricalView {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match history_get(&self.table, key, self.height) {
            Ok(v) => v,
            Err(e) => fatal(&e),
        }
    }
    fn set(&mut self, _key: &[u8], _value: Vec<u8>) {
        fatal(&"write to a historical view (a bug)")
    }
    fn delete(&mut self, _key: &[u8]) {
        fatal(&"delete on a historical view (a bug)")
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        if let Some(e) = end {
            if e <= start {
                return Vec::new();
            }
        }
        let lower = Bound::Included((start, 0u64));
        let upper = match end {
            Some(e) => Bound::Excluded((e, 0u64)),
            None => Bound::Unbounded,
        };
        let it = match self.table.range::<(&[u8], u64)>((lower, upper)) {
            Ok(it) => it,
            Err(e) => fatal(&e),
        };
        // Entries come grouped by key, versions ascending: keep the newest at or below height.
        let mut out: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut cur: Option<(Vec<u8>, Option<Vec<u8>>)> = None;
        for e in it {
            let (k, v) = match e {
                Ok(kv) => kv,
                Err(e) => fatal(&e),
            };
            let (key, ver) = k.value();
            if ver > self.height {
                continue;
            }
            match &mut cur {
                Some((ck, cv)) if ck.as_slice() == key => *cv = decode_history(v.value()),
                _ => {
                    if let Some((ck, Some(cv))) = cur.take() {
                        out.push((ck, cv));
                    }
                    cur = Some((key.to_vec(), decode_history(v.value())));
                }
            }
        }
        if let Some((ck, Some(cv))) = cur {
            out.push((ck, cv));
        }
        out
    }
}

/// The block's write buffer over a read view: what execution writes into.
pub struct BlockBuffer<'a> {
    base: &'a dyn KvStore,
    writes: WriteSet,
}

impl<'a> BlockBuffer<'a> {
    /// Empty buffer over `base`.
    pub fn new(base: &'a dyn KvStore) -> BlockBuffer<'a> {
        BlockBuffer {
            base,
            writes: BTreeMap::new(),
        }
    }
    /// Buffer over `base` starting from earlier `writes`.
    pub fn with_writes(base: &'a dyn KvStore, writes: WriteSet) -> BlockBuffer<'a> {
        BlockBuffer { base, writes }
    }
    /// The buffered writes.
    pub fn into_writes(self) -> WriteSet {
        self.writes
    }
    /// The buffered writes, by reference.
    pub fn writes(&self) -> &WriteSet {
        &self.writes
    }
}

impl KvStore for BlockBuffer<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        magnet_core::store::read_through(&self.writes, self.base, key)
    }
    fn set(&mut self, key: &[u8], value: Vec<u8>) {
        self.writes.insert(key.to_vec(), Some(value));
    }
    fn delete(&mut self, key: &[u8]) {
        self.writes.insert(key.to_vec(), None);
    }
    fn range(&self, start: &[u8], end: Option<&[u8]>) -> Vec<(Vec<u8>, Vec<u8>)> {
        magnet_core::store::range_through(&self.writes, self.base, start, end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(pairs: &[(&str, Option<&str>)]) -> WriteSet {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.map(|v| v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn app_hash_depends_only_on_the_key_value_set() {
        let d = tempfile::tempdir().unwrap();
        let mut a = MerkleStore::open(&d.path().join("a.redb"), StoreConfig::default()).unwrap();
        let mut b = MerkleStore::open(&d.path().join("b.redb"), StoreConfig::default()).unwrap();
        a.stage(1, ws(&[("x", Some("1")), ("y", Some("2"))]))
            .unwrap();
        a.commit().unwrap();
        let ha = a.stage(2, ws(&[("z", Some("3")), ("y", None)])).unwrap();
        b.stage(1, ws(&[("z", Some("3"))])).unwrap();
        let hb = b.stage(2, ws(&[("x", Some("1"))])).unwrap();
        b.commit().unwrap();
        assert_eq!(ha, hb);
    }

    #[test]
    fn reopened_store_reports_its_last_commit_and_history() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("s.redb");
        let root2;
        {
            let mut s = MerkleStore::open(
                &p,
                StoreConfig {
                    keep_recent: 0,
                    fsync: true,
                },
            )
            .unwrap();
            s.stage(1, ws(&[("a", Some("1")), ("b", Some("1"))]))
                .unwrap();
            s.commit().unwrap();
            root2 = s
                .stage(2, ws(&[("a", Some("2")), ("b", None), ("c", Some("3"))]))
                .unwrap();
            s.commit().unwrap();
            // Staged, never committed: lost on reopen.
            s.stage(3, ws(&[("a", Some("9"))])).unwrap();
        }
        let s = MerkleStore::open(
            &p,
            StoreConfig {
                keep_recent: 0,
                fsync: true,
            },
        )
        .unwrap();
        assert_eq!(
            s.last_commit(),
            Some(CommitPoint {
                height: 2,
                app_hash: root2
            })
        );
        let v = s.committed_view().unwrap();
        assert_eq!(v.get(b"a"), Some(b"2".to_vec()));
        assert_eq!(v.get(b"b"), None);
        let h1 = s.view_at(1).unwrap();
        assert_eq!(h1.get(b"a"), Some(b"1".to_vec()));
        assert_eq!(
            h1.range(b"", None),
            vec![
                (b"a".to_vec(), b"1".to_vec()),
                (b"b".to_vec(), b"1".to_vec())
            ]
        );
        let h2 = s.view_at(2).unwrap();
        assert_eq!(
            h2.range(b"", None),
            vec![
                (b"a".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        assert!(matches!(
            s.view_at(3),
            Err(StoreError::HeightUnavailable { .. })
        ));
    }

    #[test]
    fn pruned_heights_are_refused_and_recent_ones_still_read() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MerkleStore::open(
            &d.path().join("s.redb"),
            StoreConfig {
                keep_recent: 2,
                fsync: true,
            },
        )
        .unwrap();
        for h in 1..=5u64 {
            s.stage(
                h,
                ws(&[
                    ("k", Some(&h.to_string())),
                    ("d", if h % 2 == 0 { None } else { Some("x") }),
                ]),
            )
            .unwrap();
            s.commit().unwrap();
        }
        assert_eq!(s.earliest_height(), 4);
        assert!(matches!(
            s.view_at(3),
            Err(StoreError::HeightUnavailable { .. })
        ));
        assert_eq!(s.view_at(4).unwrap().get(b"k"), Some(b"4".to_vec()));
        assert_eq!(s.view_at(4).unwrap().get(b"d"), None);
        assert_eq!(s.view_at(5).unwrap().get(b"d"), Some(b"x".to_vec()));
        // The tree still updates after pruning (no needed node was deleted).
        s.stage(6, ws(&[("k", Some("6"))])).unwrap();
        s.commit().unwrap();
    }

    #[test]
    fn the_empty_root_key_matches_the_one_jmt_writes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MerkleStore::open(&d.path().join("s.redb"), StoreConfig::default()).unwrap();
        s.stage(0, ws(&[("a", Some("1"))])).unwrap();
        let root = empty_root_key(0).unwrap();
        assert!(s.pending_nodes.contains_key(&root));
        assert_eq!(root.version(), 0);
        assert_eq!(root.nibble_path().num_nibbles(), 0);
    }

    #[test]
    fn a_chain_may_start_above_height_zero() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MerkleStore::open(&d.path().join("s.redb"), StoreConfig::default()).unwrap();
        s.stage(99, ws(&[("g", Some("1"))])).unwrap();
        s.stage(100, ws(&[("h", Some("1"))])).unwrap();
        s.commit().unwrap();
        assert_eq!(s.last_commit().unwrap().height, 100);
        s.stage(101, ws(&[("h", Some("2"))])).unwrap();
        s.commit().unwrap();
        assert!(matches!(
            s.stage(7, WriteSet::new()),
            Err(StoreError::OutOfOrder { .. })
        ));
    }

    #[test]
    fn a_restored_store_has_the_source_root_and_goes_on_from_there() {
        let d = tempfile::tempdir().unwrap();
        let mut src = MerkleStore::open(&d.path().join("a.redb"), StoreConfig::default()).unwrap();
        src.stage(0, ws(&[("g", Some("1")), ("x", Some("1"))]))
            .unwrap();
        src.stage(1, ws(&[("h", Some("1")), ("x", None)])).unwrap();
        src.stage(2, ws(&[("h", Some("2")), ("i", Some("3"))]))
            .unwrap();
        let c = src.commit().unwrap().unwrap();
        let state = src.committed_state().unwrap().unwrap();
        assert_eq!((state.height, state.app_hash), (2, c.app_hash));
        let entries = state.entries().unwrap();
        let keys: Vec<&[u8]> = entries.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, vec![b"g".as_slice(), b"h", b"i"]);

        let mut dst = MerkleStore::open(&d.path().join("b.redb"), StoreConfig::default()).unwrap();
        let r = dst.restore(2, entries, c.app_hash).unwrap();
        assert_eq!(r, c);
        assert_eq!(dst.earliest_height(), 2);
        assert_eq!(dst.committed_view().unwrap().get(b"h"), Some(b"2".to_vec()));
        // Both go on with the same block and agree.
        let next = ws(&[("j", Some("4")), ("g", None)]);
        assert_eq!(
            src.stage(3, next.clone()).unwrap(),
            dst.stage(3, next).unwrap()
        );
        dst.commit().unwrap();
        // Reopened, the restored store still knows its height.
        drop(dst);
        let dst = MerkleStore::open(&d.path().join("b.redb"), StoreConfig::default()).unwrap();
        assert_eq!(dst.last_commit().unwrap().height, 3);
    }

    #[test]
    fn a_restore_whose_root_differs_from_the_trusted_hash_writes_nothing() {
        let d = tempfile::tempdir().unwrap();
        let mut s = MerkleStore::open(&d.path().join("s.redb"), StoreConfig::default()).unwrap();
        let e = s
            .restore(5, vec![(b"k".to_vec(), b"v".to_vec())], [7; 32])
            .unwrap_err();
        assert!(
            matches!(e, StoreError::RestoreMismatch { height: 5, .. }),
            "{e}"
        );
        assert!(s.last_commit().is_none() && s.pending_root().is_none());
        // A correct restore still works afterwards, and a second one is refused.
        let mut probe =
            MerkleStore::open(&d.path().join("p.redb"), StoreConfig::default()).unwrap();
        let root = probe.stage(5, ws(&[("k", Some("v"))])).unwrap();
        s.restore(5, vec![(b"k".to_vec(), b"v".to_vec())], root)
            .unwrap();
        assert!(matches!(
            s.restore(6, Vec::new(), root),
            Err(StoreError::NotEmpty { holds: 5, .. })
        ));
    }
}
