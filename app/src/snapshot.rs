//! State-sync snapshots (ABCI `ListSnapshots` / `LoadSnapshotChunk` / `OfferSnapshot` /
//! `ApplySnapshotChunk`); see `docs/adr/0099-state-sync-snapshots.md`.
//!
//! # Format 1
//! * **Payload.** The committed key-value set at height `h`, in ascending key order, each entry
//!   `u32 LE key length ‖ key ‖ u32 LE value length ‖ value`. The app hash of `h` is a pure
//!   function of this set ([`crate::store`]), so a node that rebuilds its tree from it at
//!   version `h` gets the same root.
//! * **Chunks.** The payload split into pieces of `chunk_size` bytes (the last one shorter); an
//!   entry may straddle two chunks.
//! * **Metadata** (the ABCI `Snapshot.metadata`): borsh of [`SnapshotMetadata`] — the
//!   payload's length, its entry count and every chunk's SHA-256. The ABCI `Snapshot.hash` is
//!   the SHA-256 of the metadata bytes, so two nodes with the same state at the same height
//!   advertise the same snapshot.
//!
//! # On disk
//! `<data_dir>/snapshots/<height>/` holds `snapshot.bin` (borsh of [`SnapshotInfo`]) and
//! `chunk-<index>` files. A snapshot is written into `<height>.tmp/` and renamed into place,
//! so a crash never leaves a half snapshot that [`SnapshotStore::list`] would advertise.
//!
//! # Restore
//! [`Restore`] collects chunks for one offered snapshot. Each chunk must hash to the
//! metadata's entry for its index; once all are in, [`Restore::finish`] decodes the payload
//! (strictly ascending keys, no trailing bytes, the advertised length and count). The caller
//! rebuilds the store and compares the root with the app hash CometBFT's light client
//! trusts; the peer's metadata is never trusted for that.
//!
//! # Non-guarantees
//! A restore holds the whole payload in memory (fine for today's state of a few MB; a
//! streaming restore is future work). Snapshots are node-local files and are not fsynced
//! before the rename beyond what the OS does: a snapshot lost in a power cut is simply
//! absent, and the next interval writes a new one.

use crate::store::Entries;
use borsh::{BorshDeserialize, BorshSerialize};
use std::path::{Path, PathBuf};

/// The only snapshot format this binary writes and restores.
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Default chunk size: 1 MiB (CometBFT's p2p messages allow up to 16 MB per chunk).
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;

/// Largest payload a restore accepts (bounds the memory a peer's metadata can make us
/// reserve): 4 GiB.
pub const MAX_PAYLOAD_BYTES: u64 = 4 << 30;

/// Node-local snapshot settings (not consensus).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotConfig {
    /// Take a snapshot after the Commit of every height divisible by this (`0`: never).
    #[serde(default)]
    pub interval: u64,
    /// Keep this many most recent snapshots (at least 1 when `interval > 0`).
    #[serde(default = "default_keep")]
    pub keep_recent: u32,
    /// Chunk size in bytes.
    #[serde(default = "default_chunk")]
    pub chunk_size: u64,
}

fn default_keep() -> u32 {
    2
}

fn default_chunk() -> u64 {
    DEFAULT_CHUNK_SIZE
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            interval: 0,
            keep_recent: default_keep(),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl SnapshotConfig {
    /// Check the settings; the error says which one is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval > 0 && self.keep_recent == 0 {
            return Err(
                "snapshot keep_recent must be at least 1 when snapshot interval > 0".to_string(),
            );
        }
        if self.chunk_size == 0 || self.chunk_size > 16_000_000 {
            return Err(format!(
                "snapshot chunk_size {} must be between 1 and 16000000 bytes (CometBFT's limit)",
                self.chunk_size
            ));
        }
        Ok(())
    }

    /// Whether a snapshot is due after committing `height`.
    pub fn due(&self, height: u64) -> bool {
        self.interval > 0 && height > 0 && height.is_multiple_of(self.interval)
    }
}

/// The ABCI `Snapshot.metadata` of format 1.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotMetadata {
    /// Payload length in bytes.
    pub payload_bytes: u64,
    /// Number of key-value entries.
    pub entries: u64,
    /// SHA-256 of each chunk, in order.
    pub chunk_hashes: Vec<[u8; 32]>,
}

impl SnapshotMetadata {
    /// The borsh bytes (the ABCI `metadata`).
    pub fn encode(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// The ABCI `Snapshot.hash`: SHA-256 of the metadata bytes.
    pub fn hash(&self) -> [u8; 32] {
        magnet_core::sha256(&self.encode())
    }
}

/// One stored snapshot, as `ListSnapshots` advertises it.
#[derive(Clone, Debug, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct SnapshotInfo {
    /// Height of the state.
    pub height: u64,
    /// Format ([`SNAPSHOT_FORMAT`]).
    pub format: u32,
    /// App hash of that height (for logs; restores trust CometBFT's light client instead).
    pub app_hash: [u8; 32],
    /// The metadata.
    pub metadata: SnapshotMetadata,
}

impl SnapshotInfo {
    /// The ABCI form.
    pub fn to_abci(&self) -> tendermint_proto::v0_38::abci::Snapshot {
        tendermint_proto::v0_38::abci::Snapshot {
            height: self.height,
            format: self.format,
            chunks: u32::try_from(self.metadata.chunk_hashes.len()).unwrap_or(u32::MAX),
            hash: self.metadata.hash().to_vec().into(),
            metadata: self.metadata.encode().into(),
        }
    }
}

/// Errors of taking, reading or restoring snapshots. Each says what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file of the snapshot directory failed.
    #[error("snapshot file {path}: {detail}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        detail: String,
    },
    /// A chunk's index is outside the snapshot.
    #[error("chunk index {index} is outside the snapshot's {chunks} chunks")]
    ChunkIndex {
        /// Index received.
        index: u32,
        /// Chunks of the snapshot.
        chunks: usize,
    },
    /// A chunk does not hash to the metadata's entry.
    #[error("chunk {index} has SHA-256 {got}, the snapshot's metadata says {want}; refetch it from another peer")]
    ChunkHash {
        /// Chunk index.
        index: u32,
        /// Hash of the received bytes, hex.
        got: String,
        /// Hash in the metadata, hex.
        want: String,
    },
    /// The offered snapshot is malformed.
    #[error("malformed snapshot: {0}")]
    Malformed(String),
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |e| SnapshotError::Io {
        path: path.to_path_buf(),
        detail: e.to_string(),
    }
}

/// Encode `entries` (ascending keys) as the format-1 payload and split it into chunks.
pub fn encode_chunks<I>(entries: I, chunk_size: u64) -> (SnapshotMetadata, Vec<Vec<u8>>)
where
    I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
{
    let size = usize::try_from(chunk_size.max(1)).unwrap_or(usize::MAX);
    let mut payload = Vec::new();
    let mut count = 0u64;
    for (k, v) in entries {
        for part in [&k, &v] {
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            payload.extend_from_slice(&len.to_le_bytes());
            payload.extend_from_slice(part);
        }
        count += 1;
    }
    let chunks: Vec<Vec<u8>> = if payload.is_empty() {
        vec![Vec::new()]
    } else {
        payload.chunks(size).map(<[u8]>::to_vec).collect()
    };
    let meta = SnapshotMetadata {
        payload_bytes: payload.len() as u64,
        entries: count,
        chunk_hashes: chunks.iter().map(|c| magnet_core::sha256(c)).collect(),
    };
    (meta, chunks)
}

/// Decode a format-1 payload; keys must be strictly ascending and the count must match.
pub fn decode_payload(payload: &[u8], meta: &SnapshotMetadata) -> Result<Entries, SnapshotError> {
    if payload.len() as u64 != meta.payload_bytes {
        return Err(SnapshotError::Malformed(format!(
            "payload is {} bytes, the metadata says {}",
            payload.len(),
            meta.payload_bytes
        )));
    }
    let mut out: Entries = Vec::new();
    let mut rest = payload;
    let take = |rest: &mut &[u8]| -> Result<Vec<u8>, SnapshotError> {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| SnapshotError::Malformed("payload ends inside a length".into()))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return Err(SnapshotError::Malformed(format!(
                "payload ends inside a {len}-byte field"
            )));
        }
        let (field, tail) = tail.split_at(len);
        *rest = tail;
        Ok(field.to_vec())
    };
    while !rest.is_empty() {
        let k = take(&mut rest)?;
        let v = take(&mut rest)?;
        if let Some((prev, _)) = out.last() {
            if *prev >= k {
                return Err(SnapshotError::Malformed(format!(
                    "keys are not strictly ascending at entry {} (key {})",
                    out.len(),
                    hex::encode(&k)
                )));
            }
        }
        out.push((k, v));
    }
    if out.len() as u64 != meta.entries {
        return Err(SnapshotError::Malformed(format!(
            "payload holds {} entries, the metadata says {}",
            out.len(),
            meta.entries
        )));
    }
    Ok(out)
}

/// The snapshot directory of one node.
#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    /// Snapshots under `dir` (created on the first write).
    pub fn new(dir: impl Into<PathBuf>) -> SnapshotStore {
        SnapshotStore { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn height_dir(&self, height: u64) -> PathBuf {
        self.dir.join(height.to_string())
    }

    /// Write the snapshot of `entries` (ascending keys) at `height`, then keep only the
    /// `keep_recent` newest snapshots. Returns what was written.
    pub fn create<I>(
        &self,
        height: u64,
        app_hash: [u8; 32],
        entries: I,
        chunk_size: u64,
        keep_recent: u32,
    ) -> Result<SnapshotInfo, SnapshotError>
    where
        I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    {
        let (metadata, chunks) = encode_chunks(entries, chunk_size);
        let info = SnapshotInfo {
            height,
            format: SNAPSHOT_FORMAT,
            app_hash,
            metadata,
        };
        let tmp = self.dir.join(format!("{height}.tmp"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        for (i, c) in chunks.iter().enumerate() {
            let p = tmp.join(format!("chunk-{i}"));
            std::fs::write(&p, c).map_err(io_err(&p))?;
        }
        let p = tmp.join("snapshot.bin");
        std::fs::write(&p, borsh::to_vec(&info).unwrap_or_default()).map_err(io_err(&p))?;
        let dst = self.height_dir(height);
        if dst.exists() {
            std::fs::remove_dir_all(&dst).map_err(io_err(&dst))?;
        }
        std::fs::rename(&tmp, &dst).map_err(io_err(&dst))?;
        self.prune(keep_recent)?;
        Ok(info)
    }

    /// Heights of the complete snapshots on disk, ascending.
    fn heights(&self) -> Result<Vec<u64>, SnapshotError> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err(&self.dir)(e)),
        };
        let mut hs: Vec<u64> = rd
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u64>().ok())
            .collect();
        hs.sort_unstable();
        Ok(hs)
    }

    /// Delete all but the `keep_recent` newest snapshots, and any half-written `<h>.tmp/`
    /// left by a crash (call it only while no snapshot is being written).
    pub fn prune(&self, keep_recent: u32) -> Result<(), SnapshotError> {
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.filter_map(Result::ok) {
                if e.file_name().to_str().is_some_and(|n| n.ends_with(".tmp")) {
                    let p = e.path();
                    std::fs::remove_dir_all(&p).map_err(io_err(&p))?;
                }
            }
        }
        let hs = self.heights()?;
        let doomed = hs.len().saturating_sub(keep_recent as usize);
        for h in &hs[..doomed] {
            let d = self.height_dir(*h);
            std::fs::remove_dir_all(&d).map_err(io_err(&d))?;
        }
        Ok(())
    }

    /// The stored snapshots, newest first (unreadable ones are skipped with a warning).
    pub fn list(&self) -> Result<Vec<SnapshotInfo>, SnapshotError> {
        let mut out = Vec::new();
        for h in self.heights()?.into_iter().rev() {
            let p = self.height_dir(h).join("snapshot.bin");
            match std::fs::read(&p)
                .map_err(|e| e.to_string())
                .and_then(|b| SnapshotInfo::try_from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(info) => out.push(info),
                Err(e) => {
                    tracing::warn!(path = %p.display(), error = %e, "skipping an unreadable snapshot")
                }
            }
        }
        Ok(out)
    }

    /// The bytes of chunk `index` of the snapshot at `height` in `format` (`None`: no such
    /// snapshot or chunk).
    pub fn load_chunk(&self, height: u64, format: u32, index: u32) -> Option<Vec<u8>> {
        if format != SNAPSHOT_FORMAT {
            return None;
        }
        std::fs::read(self.height_dir(height).join(format!("chunk-{index}"))).ok()
    }
}

/// A restore in progress: the offered snapshot, the trusted app hash, the chunks so far.
#[derive(Debug)]
pub struct Restore {
    /// Height being restored.
    pub height: u64,
    /// App hash CometBFT's light client trusts for `height`.
    pub trusted_app_hash: [u8; 32],
    /// The offered (untrusted) metadata.
    pub metadata: SnapshotMetadata,
    chunks: Vec<Option<Vec<u8>>>,
}

impl Restore {
    /// Start restoring an offered snapshot. Refuses an unknown format, a metadata that does
    /// not decode or disagrees with the advertised chunk count or hash, and a trusted app
    /// hash that is not 32 bytes.
    pub fn offer(
        snapshot: &tendermint_proto::v0_38::abci::Snapshot,
        trusted_app_hash: &[u8],
    ) -> Result<Restore, SnapshotError> {
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(SnapshotError::Malformed(format!(
                "format {} (this binary restores format {SNAPSHOT_FORMAT})",
                snapshot.format
            )));
        }
        let metadata = SnapshotMetadata::try_from_slice(&snapshot.metadata)
            .map_err(|e| SnapshotError::Malformed(format!("metadata does not decode: {e}")))?;
        if metadata.chunk_hashes.len() != snapshot.chunks as usize || snapshot.chunks == 0 {
            return Err(SnapshotError::Malformed(format!(
                "{} chunks advertised, the metadata lists {}",
                snapshot.chunks,
                metadata.chunk_hashes.len()
            )));
        }
        if metadata.hash().as_slice() != snapshot.hash.as_ref() {
            return Err(SnapshotError::Malformed(
                "the snapshot hash is not the SHA-256 of its metadata".into(),
            ));
        }
        if metadata.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(SnapshotError::Malformed(format!(
                "payload of {} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit",
                metadata.payload_bytes
            )));
        }
        let trusted_app_hash: [u8; 32] = trusted_app_hash.try_into().map_err(|_| {
            SnapshotError::Malformed(format!(
                "trusted app hash is {} bytes, not 32",
                trusted_app_hash.len()
            ))
        })?;
        Ok(Restore {
            height: snapshot.height,
            trusted_app_hash,
            chunks: vec![None; metadata.chunk_hashes.len()],
            metadata,
        })
    }

    /// Add chunk `index`; `Ok(true)` once every chunk is in. A chunk whose hash differs from
    /// the metadata's is refused (and not kept).
    pub fn apply(&mut self, index: u32, chunk: &[u8]) -> Result<bool, SnapshotError> {
        let chunks = self.chunks.len();
        let want = *self
            .metadata
            .chunk_hashes
            .get(index as usize)
            .ok_or(SnapshotError::ChunkIndex { index, chunks })?;
        let got = magnet_core::sha256(chunk);
        if got != want {
            return Err(SnapshotError::ChunkHash {
                index,
                got: hex::encode(got),
                want: hex::encode(want),
            });
        }
        if let Some(slot) = self.chunks.get_mut(index as usize) {
            *slot = Some(chunk.to_vec());
        }
        Ok(self.chunks.iter().all(Option::is_some))
    }

    /// Decode the complete payload into key-value entries (ascending keys).
    pub fn finish(&self) -> Result<Entries, SnapshotError> {
        let mut payload = Vec::new();
        for (i, c) in self.chunks.iter().enumerate() {
            let c = c
                .as_ref()
                .ok_or_else(|| SnapshotError::Malformed(format!("chunk {i} is missing")))?;
            payload.extend_from_slice(c);
        }
        decode_payload(&payload, &self.metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(n: u32) -> Vec<(Vec<u8>, Vec<u8>)> {
        (0..n)
            .map(|i| {
                (
                    format!("key/{i:05}").into_bytes(),
                    vec![u8::try_from(i % 251).unwrap_or(0); (i % 40) as usize],
                )
            })
            .collect()
    }

    fn offered(meta: &SnapshotMetadata, height: u64) -> tendermint_proto::v0_38::abci::Snapshot {
        SnapshotInfo {
            height,
            format: SNAPSHOT_FORMAT,
            app_hash: [0; 32],
            metadata: meta.clone(),
        }
        .to_abci()
    }

    #[test]
    fn chunks_reassemble_into_the_same_key_value_set() {
        for size in [1u64, 7, 64, 1 << 20] {
            let entries = kv(300);
            let (meta, chunks) = encode_chunks(entries.clone(), size);
            let mut r = Restore::offer(&offered(&meta, 5), &[1; 32]).expect("offer");
            // Chunks may arrive in any order.
            let n = chunks.len();
            for i in (0..n).rev() {
                let done = r.apply(i as u32, &chunks[i]).expect("apply");
                assert_eq!(done, i == 0);
            }
            assert_eq!(r.finish().expect("finish"), entries, "chunk size {size}");
        }
    }

    #[test]
    fn an_empty_state_is_one_empty_chunk() {
        let (meta, chunks) = encode_chunks(Vec::new(), 16);
        assert_eq!(chunks, vec![Vec::<u8>::new()]);
        let mut r = Restore::offer(&offered(&meta, 1), &[0; 32]).expect("offer");
        assert!(r.apply(0, &[]).expect("apply"));
        assert!(r.finish().expect("finish").is_empty());
    }

    #[test]
    fn a_tampered_chunk_is_refused_and_the_good_one_is_still_accepted() {
        let (meta, chunks) = encode_chunks(kv(50), 64);
        let mut r = Restore::offer(&offered(&meta, 5), &[1; 32]).expect("offer");
        let mut bad = chunks[1].clone();
        bad[0] ^= 1;
        assert!(matches!(
            r.apply(1, &bad),
            Err(SnapshotError::ChunkHash { index: 1, .. })
        ));
        assert!(matches!(
            r.apply(99, &chunks[0]),
            Err(SnapshotError::ChunkIndex { index: 99, .. })
        ));
        for (i, c) in chunks.iter().enumerate() {
            r.apply(i as u32, c).expect("good chunk");
        }
        assert_eq!(r.finish().expect("finish").len(), 50);
    }

    #[test]
    fn malformed_offers_are_refused_with_a_reason() {
        let (meta, _) = encode_chunks(kv(10), 16);
        let good = offered(&meta, 5);
        let cases: Vec<(&str, tendermint_proto::v0_38::abci::Snapshot, Vec<u8>)> = vec![
            (
                "format",
                tendermint_proto::v0_38::abci::Snapshot {
                    format: 2,
                    ..good.clone()
                },
                vec![0; 32],
            ),
            (
                "metadata does not decode",
                tendermint_proto::v0_38::abci::Snapshot {
                    metadata: vec![1, 2, 3].into(),
                    ..good.clone()
                },
                vec![0; 32],
            ),
            (
                "chunks advertised",
                tendermint_proto::v0_38::abci::Snapshot {
                    chunks: good.chunks + 1,
                    ..good.clone()
                },
                vec![0; 32],
            ),
            (
                "not the SHA-256",
                tendermint_proto::v0_38::abci::Snapshot {
                    hash: vec![0; 32].into(),
                    ..good.clone()
                },
                vec![0; 32],
            ),
            ("not 32", good.clone(), vec![0; 5]),
        ];
        for (want, snap, hash) in cases {
            let e = Restore::offer(&snap, &hash).expect_err(want).to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn payloads_with_unsorted_keys_or_wrong_counts_are_refused() {
        let entries = vec![
            (b"b".to_vec(), b"1".to_vec()),
            (b"a".to_vec(), b"2".to_vec()),
        ];
        let (meta, chunks) = encode_chunks(entries, 1024);
        let e = decode_payload(&chunks[0], &meta).expect_err("unsorted");
        assert!(e.to_string().contains("ascending"), "{e}");
        let (mut meta, chunks) = encode_chunks(kv(3), 1024);
        meta.entries = 4;
        let e = decode_payload(&chunks[0], &meta).expect_err("count");
        assert!(e.to_string().contains("entries"), "{e}");
        meta.entries = 3;
        let e = decode_payload(&chunks[0][..chunks[0].len() - 1], &meta).expect_err("short");
        assert!(e.to_string().contains("bytes"), "{e}");
        let mut m2 = meta.clone();
        m2.payload_bytes -= 1;
        let e = decode_payload(&chunks[0][..chunks[0].len() - 1], &m2).expect_err("truncated");
        assert!(e.to_string().contains("ends inside"), "{e}");
    }

    #[test]
    fn pruning_keeps_the_newest_snapshots() {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = SnapshotStore::new(dir.path().join("snapshots"));
        for h in [10u64, 20, 30, 40] {
            s.create(h, [0; 32], kv(5), 32, 2).expect("create");
        }
        let hs: Vec<u64> = s.list().expect("list").iter().map(|i| i.height).collect();
        assert_eq!(hs, vec![40, 30]);
        assert!(s.load_chunk(10, SNAPSHOT_FORMAT, 0).is_none());
        assert!(s.load_chunk(40, SNAPSHOT_FORMAT, 0).is_some());
        assert!(s.load_chunk(40, 7, 0).is_none());
        // A crash left a half-written snapshot: never listed, removed by the next prune.
        let stale = dir.path().join("snapshots/50.tmp");
        std::fs::create_dir_all(&stale).expect("mkdir");
        std::fs::write(stale.join("chunk-0"), b"x").expect("write");
        assert_eq!(s.list().expect("list").len(), 2);
        s.prune(1).expect("prune");
        assert_eq!(s.list().expect("list").len(), 1);
        assert!(!stale.exists());
    }

    #[test]
    fn config_validation_names_the_bad_setting() {
        let bad = SnapshotConfig {
            interval: 10,
            keep_recent: 0,
            ..SnapshotConfig::default()
        };
        assert!(bad.validate().expect_err("keep").contains("keep_recent"));
        let bad = SnapshotConfig {
            chunk_size: 0,
            ..SnapshotConfig::default()
        };
        assert!(bad.validate().expect_err("chunk").contains("chunk_size"));
        assert!(SnapshotConfig::default().validate().is_ok());
        let c = SnapshotConfig {
            interval: 10,
            ..SnapshotConfig::default()
        };
        assert!(c.due(10) && c.due(20) && !c.due(15) && !c.due(0));
        assert!(!SnapshotConfig::default().due(10));
    }
}
