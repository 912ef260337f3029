//! The local shard store: one file per shard on disk, written atomically, hash-checked on read.
//!
//! Layout under the store root:
//! ```text
//! shards/<object hex>/<index>.<shard sha256 hex>.shard
//! manifests/<object hex>.json          signed manifests this node knows
//! evidence.jsonl                       signed audit evidence, one JSON object per line
//! ```
//! The shard's expected SHA-256 is part of its file name, so the store needs no side index and
//! a listing is a directory walk.
//!
//! # Guarantees
//! * [`ShardStore::put`] refuses bytes whose SHA-256 is not the expected one, then writes to a
//!   temporary file, `fsync`s it, renames it into place and `fsync`s the directory: a crash
//!   leaves either the old state or the complete new shard, never a torn one.
//! * [`ShardStore::get`] re-hashes the bytes and returns [`StoreError::Corrupt`] on mismatch
//!   (bitrot, tampering), never bad bytes.
//! * Paths are built from typed ids only (hex hashes, a shard index), never from peer strings.
//!
//! # Non-guarantees
//! No quota enforcement and no locking between processes sharing one root.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::audit::{answer, Challenge, Evidence, MAX_CHALLENGE_LEN};
use crate::hash::{ContentAddress, Hash32, Hasher};
use crate::manifest::{ManifestError, SignedManifest};

/// Names one shard of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardId {
    /// The object.
    pub object: ContentAddress,
    /// The shard index (0..K+M).
    pub index: u8,
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", self.object, self.index)
    }
}

/// A shard present in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredShard {
    /// Which shard.
    pub id: ShardId,
    /// Its expected SHA-256 (recorded at put time).
    pub hash: Hash32,
    /// Its length in bytes.
    pub len: u64,
}

/// Errors of the shard store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such shard here.
    #[error("shard {0} is not in this store")]
    NotFound(ShardId),
    /// No manifest for this object here.
    #[error("no manifest for {0} in this store")]
    NoManifest(ContentAddress),
    /// The bytes offered to `put` do not hash to the expected value.
    #[error("refusing to store shard {id}: bytes hash to {got}, expected {expected}")]
    HashMismatch {
        /// The shard.
        id: ShardId,
        /// Expected hash.
        expected: Hash32,
        /// Hash of the offered bytes.
        got: Hash32,
    },
    /// The stored bytes no longer hash to the recorded value.
    #[error("shard {id} is corrupt on disk: hashes to {got}, recorded {expected}")]
    Corrupt {
        /// The shard.
        id: ShardId,
        /// Recorded hash.
        expected: Hash32,
        /// Hash of the bytes on disk.
        got: Hash32,
    },
    /// An audit range outside the shard or too long.
    #[error("audit range {offset}+{len} is outside shard {id} ({shard_len} bytes) or longer than {MAX_CHALLENGE_LEN}")]
    BadRange {
        /// The shard.
        id: ShardId,
        /// Range start.
        offset: u64,
        /// Range length.
        len: u32,
        /// Shard length.
        shard_len: u64,
    },
    /// A stored manifest failed to parse or verify.
    #[error("stored manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// Filesystem error.
    #[error("{during} {path}: {source}")]
    Io {
        /// What was being done.
        during: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

fn io_at(during: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io {
        during,
        path,
        source,
    }
}

/// A directory of shard files.
#[derive(Debug, Clone)]
pub struct ShardStore {
    root: PathBuf,
}

impl ShardStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let root = root.into();
        for sub in ["shards", "manifests"] {
            let p = root.join(sub);
            fs::create_dir_all(&p).map_err(io_at("creating", &p))?;
        }
        Ok(ShardStore { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn object_dir(&self, object: &ContentAddress) -> PathBuf {
        self.root.join("shards").join(object.0.to_hex())
    }

    fn find(&self, id: &ShardId) -> Result<Option<(PathBuf, Hash32)>, StoreError> {
        let dir = self.object_dir(&id.object);
        let rd = match fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_at("listing", &dir)(e)),
        };
        for entry in rd {
            let entry = entry.map_err(io_at("listing", &dir))?;
            if let Some((idx, hash)) = parse_name(&entry.file_name().to_string_lossy()) {
                if idx == id.index {
                    return Ok(Some((entry.path(), hash)));
                }
            }
        }
        Ok(None)
    }

    /// Stores a shard after checking its hash; replaces any older copy of the same shard.
    pub fn put(
        &self,
        id: ShardId,
        bytes: &[u8],
        expected: &Hash32,
    ) -> Result<StoredShard, StoreError> {
        let got = Hash32::of(bytes);
        if got != *expected {
            return Err(StoreError::HashMismatch {
                id,
                expected: *expected,
                got,
            });
        }
        let old = self.find(&id)?;
        let dir = self.object_dir(&id.object);
        fs::create_dir_all(&dir).map_err(io_at("creating", &dir))?;
        let final_path = dir.join(format!("{:03}.{}.shard", id.index, expected.to_hex()));
        let tmp = dir.join(format!(".{:03}.{}.tmp", id.index, std::process::id()));
        {
            let mut f = File::create(&tmp).map_err(io_at("creating", &tmp))?;
            f.write_all(bytes).map_err(io_at("writing", &tmp))?;
            f.sync_all().map_err(io_at("syncing", &tmp))?;
        }
        fs::rename(&tmp, &final_path).map_err(io_at("renaming into", &final_path))?;
        if let Some((p, _)) = old {
            if p != final_path {
                fs::remove_file(&p).map_err(io_at("removing old", &p))?;
            }
        }
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io_at("syncing directory", &dir))?;
        Ok(StoredShard {
            id,
            hash: *expected,
            len: bytes.len() as u64,
        })
    }

    /// Reads a shard and checks its hash.
    pub fn get(&self, id: &ShardId) -> Result<Vec<u8>, StoreError> {
        let (path, expected) = self.find(id)?.ok_or(StoreError::NotFound(*id))?;
        let bytes = fs::read(&path).map_err(io_at("reading", &path))?;
        let got = Hash32::of(&bytes);
        if got != expected {
            return Err(StoreError::Corrupt {
                id: *id,
                expected,
                got,
            });
        }
        Ok(bytes)
    }

    /// Checks a shard's hash by streaming it, then returns an open file positioned at 0, for
    /// decoding large objects without holding shards in memory.
    pub fn open_verified(&self, id: &ShardId) -> Result<(File, StoredShard), StoreError> {
        let (path, expected) = self.find(id)?.ok_or(StoreError::NotFound(*id))?;
        let mut f = File::open(&path).map_err(io_at("opening", &path))?;
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io_at("reading", &path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            len += n as u64;
        }
        let got = h.finish();
        if got != expected {
            return Err(StoreError::Corrupt {
                id: *id,
                expected,
                got,
            });
        }
        f.seek(SeekFrom::Start(0))
            .map_err(io_at("seeking", &path))?;
        Ok((
            f,
            StoredShard {
                id: *id,
                hash: expected,
                len,
            },
        ))
    }

    /// The shard's recorded hash and length, without reading it.
    pub fn stat(&self, id: &ShardId) -> Result<StoredShard, StoreError> {
        let (path, hash) = self.find(id)?.ok_or(StoreError::NotFound(*id))?;
        let len = fs::metadata(&path).map_err(io_at("stat", &path))?.len();
        Ok(StoredShard { id: *id, hash, len })
    }

    /// Every shard in the store, ordered by object then index.
    pub fn list(&self) -> Result<Vec<StoredShard>, StoreError> {
        let top = self.root.join("shards");
        let mut out = Vec::new();
        for obj in fs::read_dir(&top).map_err(io_at("listing", &top))? {
            let obj = obj.map_err(io_at("listing", &top))?;
            let Ok(object) = obj.file_name().to_string_lossy().parse::<ContentAddress>() else {
                continue;
            };
            let dir = obj.path();
            for e in fs::read_dir(&dir).map_err(io_at("listing", &dir))? {
                let e = e.map_err(io_at("listing", &dir))?;
                if let Some((index, hash)) = parse_name(&e.file_name().to_string_lossy()) {
                    let len = e.metadata().map_err(io_at("stat", &e.path()))?.len();
                    out.push(StoredShard {
                        id: ShardId { object, index },
                        hash,
                        len,
                    });
                }
            }
        }
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// Total bytes of shards stored.
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        Ok(self.list()?.iter().map(|s| s.len).sum())
    }

    /// Deletes a shard; `Ok(false)` if it was not there.
    pub fn delete(&self, id: &ShardId) -> Result<bool, StoreError> {
        match self.find(id)? {
            None => Ok(false),
            Some((p, _)) => {
                fs::remove_file(&p).map_err(io_at("removing", &p))?;
                Ok(true)
            }
        }
    }

    /// Answers an audit challenge from the bytes on disk (reads only the range).
    pub fn audit_answer(&self, ch: &Challenge) -> Result<Hash32, StoreError> {
        let id = ShardId {
            object: ch.object,
            index: ch.index,
        };
        let (path, _) = self.find(&id)?.ok_or(StoreError::NotFound(id))?;
        let mut f = File::open(&path).map_err(io_at("opening", &path))?;
        let shard_len = f.metadata().map_err(io_at("stat", &path))?.len();
        let bad = StoreError::BadRange {
            id,
            offset: ch.offset,
            len: ch.len,
            shard_len,
        };
        match ch.offset.checked_add(u64::from(ch.len)) {
            Some(end) if end <= shard_len && ch.len <= MAX_CHALLENGE_LEN => {}
            _ => return Err(bad),
        }
        f.seek(SeekFrom::Start(ch.offset))
            .map_err(io_at("seeking", &path))?;
        let mut buf = vec![0u8; ch.len as usize];
        f.read_exact(&mut buf).map_err(io_at("reading", &path))?;
        Ok(answer(ch, &buf))
    }

    /// Saves a signed manifest (after verifying it), replacing an older revision.
    pub fn put_manifest(&self, sm: &SignedManifest) -> Result<(), StoreError> {
        sm.verify()?;
        let dir = self.root.join("manifests");
        let path = dir.join(format!("{}.json", sm.manifest.object.0.to_hex()));
        let tmp = dir.join(format!(".{}.tmp", std::process::id()));
        {
            let mut f = File::create(&tmp).map_err(io_at("creating", &tmp))?;
            f.write_all(sm.to_json().as_bytes())
                .map_err(io_at("writing", &tmp))?;
            f.sync_all().map_err(io_at("syncing", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io_at("renaming into", &path))?;
        Ok(())
    }

    /// Loads and verifies the manifest of `object`.
    pub fn get_manifest(&self, object: &ContentAddress) -> Result<SignedManifest, StoreError> {
        let path = self
            .root
            .join("manifests")
            .join(format!("{}.json", object.0.to_hex()));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NoManifest(*object))
            }
            Err(e) => return Err(io_at("reading", &path)(e)),
        };
        Ok(SignedManifest::from_json_verified(&text)?)
    }

    /// Content addresses of every manifest stored here.
    pub fn list_manifests(&self) -> Result<Vec<ContentAddress>, StoreError> {
        let dir = self.root.join("manifests");
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).map_err(io_at("listing", &dir))? {
            let e = e.map_err(io_at("listing", &dir))?;
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(stem) = name.strip_suffix(".json") {
                if let Ok(a) = stem.parse() {
                    out.push(a);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Appends signed audit evidence to `evidence.jsonl`.
    pub fn record_evidence(&self, ev: &Evidence) -> Result<(), StoreError> {
        let path = self.root.join("evidence.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_at("opening", &path))?;
        let line = serde_json::to_string(ev).unwrap_or_default();
        writeln!(f, "{line}").map_err(io_at("appending to", &path))?;
        f.sync_data().map_err(io_at("syncing", &path))
    }

    /// All recorded evidence (lines that fail to parse are skipped).
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let path = self.root.join("evidence.jsonl");
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_at("reading", &path)(e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

fn parse_name(name: &str) -> Option<(u8, Hash32)> {
    let stem = name.strip_suffix(".shard")?;
    let (idx, hash) = stem.split_once('.')?;
    Some((idx.parse().ok()?, Hash32::from_hex(hash).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: u8) -> ShardId {
        ShardId {
            object: ContentAddress(Hash32::of(b"obj")),
            index: i,
        }
    }

    #[test]
    fn put_get_list_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = ShardStore::open(dir.path()).unwrap();
        let a = b"shard zero".to_vec();
        s.put(id(0), &a, &Hash32::of(&a)).unwrap();
        s.put(id(1), b"one", &Hash32::of(b"one")).unwrap();
        assert_eq!(s.get(&id(0)).unwrap(), a);
        assert_eq!(s.list().unwrap().len(), 2);
        assert_eq!(s.used_bytes().unwrap(), 13);
        // Replacing a shard with new bytes leaves one file.
        s.put(id(1), b"uno", &Hash32::of(b"uno")).unwrap();
        assert_eq!(s.get(&id(1)).unwrap(), b"uno");
        assert_eq!(s.list().unwrap().len(), 2);
        assert!(s.delete(&id(1)).unwrap());
        assert!(!s.delete(&id(1)).unwrap());
        assert!(matches!(s.get(&id(1)), Err(StoreError::NotFound(_))));
    }

    #[test]
    fn put_refuses_bytes_with_the_wrong_hash() {
        let dir = tempfile::tempdir().unwrap();
        let s = ShardStore::open(dir.path()).unwrap();
        let r = s.put(id(0), b"abc", &Hash32::of(b"abd"));
        assert!(matches!(r, Err(StoreError::HashMismatch { .. })));
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn bitrot_on_disk_is_detected_on_read() {
        let dir = tempfile::tempdir().unwrap();
        let s = ShardStore::open(dir.path()).unwrap();
        s.put(id(2), b"precious", &Hash32::of(b"precious")).unwrap();
        let (path, _) = s.find(&id(2)).unwrap().unwrap();
        fs::write(&path, b"precioUs").unwrap();
        assert!(matches!(s.get(&id(2)), Err(StoreError::Corrupt { .. })));
        assert!(matches!(
            s.open_verified(&id(2)),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
