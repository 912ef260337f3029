//! The embedded node's block store: blocks, the FinalizeBlock request that executed them,
//! their results, a tx index and the node's last state, in one `redb` file
//! (`<home>/data/magnet-node/blocks.redb`).
//!
//! # Crash safety
//! The producer follows CometBFT's order: it saves a block (with the exact
//! `RequestFinalizeBlock` it will send) *before* executing it, saves the results and the new
//! node state in one transaction *after* FinalizeBlock and *before* Commit. Each save is one
//! ACID redb transaction. So after a crash at any point the store holds every block that was
//! proposed, and the ABCI handshake can replay to the app whatever it had not committed.

use anyhow::{Context, Result};
use prost::Message;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use std::path::Path;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, ResponseFinalizeBlock};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const REQUESTS: TableDefinition<u64, &[u8]> = TableDefinition::new("finalize_requests");
const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
const TXS: TableDefinition<&[u8], (u64, u32)> = TableDefinition::new("tx_index");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// What the node knows after its last executed block.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct NodeState {
    /// Last block whose results are stored (0 before the first block).
    pub last_height: u64,
    /// Its block id hash, hex.
    pub last_block_hash: String,
    /// Its part-set header hash, hex.
    pub last_parts_hash: String,
    /// Its part count.
    pub last_parts_total: u32,
    /// Header time of the last block, RFC 3339.
    pub last_time: String,
    /// App hash after the last block, hex.
    pub app_hash: String,
    /// Merkle root of the last block's deterministic tx results, hex.
    pub last_results_hash: String,
}

/// The block store.
pub struct BlockStore {
    db: redb::Database,
}

fn hex_key(hash: &[u8]) -> Vec<u8> {
    hash.to_vec()
}

impl BlockStore {
    /// Open or create the store under `dir`.
    pub fn open(dir: &Path) -> Result<BlockStore> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("blocks.redb");
        let db = redb::Database::create(&path)
            .with_context(|| format!("opening block store {}", path.display()))?;
        let w = db.begin_write()?;
        {
            w.open_table(BLOCKS)?;
            w.open_table(REQUESTS)?;
            w.open_table(RESULTS)?;
            w.open_table(TXS)?;
            w.open_table(META)?;
        }
        w.commit()?;
        Ok(BlockStore { db })
    }

    /// The node state (default before the first block).
    pub fn state(&self) -> Result<NodeState> {
        let r = self.db.begin_read()?;
        let t = r.open_table(META)?;
        match t.get("state")? {
            Some(v) => Ok(serde_json::from_slice(v.value()).context("decoding node state")?),
            None => Ok(NodeState::default()),
        }
    }

    /// Save a proposed block and the request that will execute it (before FinalizeBlock).
    pub fn save_block(
        &self,
        height: u64,
        block_proto: &[u8],
        req: &RequestFinalizeBlock,
    ) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            w.open_table(BLOCKS)?.insert(height, block_proto)?;
            w.open_table(REQUESTS)?
                .insert(height, req.encode_to_vec().as_slice())?;
        }
        w.commit().context("committing block to the block store")?;
        Ok(())
    }

    /// Save the results of `height`, index its txs and advance the node state (before Commit).
    pub fn save_results(
        &self,
        height: u64,
        resp: &ResponseFinalizeBlock,
        tx_hashes: &[[u8; 32]],
        state: &NodeState,
    ) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            w.open_table(RESULTS)?
                .insert(height, resp.encode_to_vec().as_slice())?;
            let mut txs = w.open_table(TXS)?;
            for (i, h) in tx_hashes.iter().enumerate() {
                let idx = u32::try_from(i).context("too many txs in a block")?;
                txs.insert(hex_key(h).as_slice(), (height, idx))?;
            }
            let bytes = serde_json::to_vec(state)?;
            w.open_table(META)?.insert("state", bytes.as_slice())?;
        }
        w.commit()
            .context("committing results to the block store")?;
        Ok(())
    }

    /// Record the node state right after InitChain (height 0: the initial app hash).
    pub fn save_results_genesis(&self, state: &NodeState) -> Result<()> {
        let w = self.db.begin_write()?;
        {
            let bytes = serde_json::to_vec(state)?;
            w.open_table(META)?.insert("state", bytes.as_slice())?;
        }
        w.commit()
            .context("committing genesis state to the block store")?;
        Ok(())
    }

    /// The stored block proto bytes at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>> {
        let r = self.db.begin_read()?;
        Ok(r.open_table(BLOCKS)?
            .get(height)?
            .map(|v| v.value().to_vec()))
    }

    /// Highest stored block (executed or not).
    pub fn last_block_height(&self) -> Result<u64> {
        let r = self.db.begin_read()?;
        let t = r.open_table(BLOCKS)?;
        let last = t.last()?.map(|(k, _)| k.value()).unwrap_or(0);
        Ok(last)
    }

    /// The FinalizeBlock request saved with block `height`.
    pub fn request(&self, height: u64) -> Result<Option<RequestFinalizeBlock>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(REQUESTS)?;
        match t.get(height)? {
            Some(v) => Ok(Some(
                RequestFinalizeBlock::decode(v.value()).context("decoding stored request")?,
            )),
            None => Ok(None),
        }
    }

    /// The FinalizeBlock results of `height`.
    pub fn results(&self, height: u64) -> Result<Option<ResponseFinalizeBlock>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(RESULTS)?;
        match t.get(height)? {
            Some(v) => Ok(Some(
                ResponseFinalizeBlock::decode(v.value()).context("decoding stored results")?,
            )),
            None => Ok(None),
        }
    }

    /// Where the tx with SHA-256 `hash` landed: (height, index).
    pub fn tx_location(&self, hash: &[u8]) -> Result<Option<(u64, u32)>> {
        let r = self.db.begin_read()?;
        let t = r.open_table(TXS)?;
        Ok(t.get(hash)?.map(|v| v.value()))
    }
}
