//! Where a node keeps the shards peers send it.
//!
//! [`ShardBackend`] is the seam between the P2P services and the on-disk store (`node/storage`
//! implements it for its shard store). The services verify every byte against its signed
//! manifest before calling [`ShardBackend::put_shard`], and recompute hashes of what
//! [`ShardBackend::get_shard`] returns, so a backend need not trust its callers; it must only
//! store and return bytes faithfully (a backend that does not is caught by audits).
//!
//! [`DirShardBackend`] is a small real backend — one file per shard under a directory, written
//! atomically, with a byte quota — for nodes that run the P2P layer without the full store.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Names a shard: its object's content address and its index among the object's K+M shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardKey {
    /// SHA-256 content address of the object.
    pub object_id: [u8; 32],
    /// Index of the shard (0..K+M).
    pub index: u32,
}

impl ShardKey {
    /// Converts from the wire form, checking the object id length.
    pub fn from_proto(k: Option<&magnet_proto::p2p::v1::ShardKey>) -> Result<Self, BackendError> {
        let k = k.ok_or_else(|| BackendError::InvalidKey("missing shard key".into()))?;
        let object_id = k.object_id.as_slice().try_into().map_err(|_| {
            BackendError::InvalidKey(format!(
                "object id must be 32 bytes, got {}",
                k.object_id.len()
            ))
        })?;
        Ok(ShardKey {
            object_id,
            index: k.index,
        })
    }

    /// The wire form.
    pub fn to_proto(&self) -> magnet_proto::p2p::v1::ShardKey {
        magnet_proto::p2p::v1::ShardKey {
            object_id: self.object_id.to_vec(),
            index: self.index,
        }
    }
}

impl std::fmt::Display for ShardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}", &hex::encode(self.object_id)[..16], self.index)
    }
}

/// A stored shard's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardInfo {
    /// Its key.
    pub key: ShardKey,
    /// Its length in bytes.
    pub size: u64,
    /// SHA-256 of its bytes.
    pub hash: [u8; 32],
}

/// Errors from a shard backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The key is malformed.
    #[error("invalid shard key: {0}")]
    InvalidKey(String),
    /// The backend is out of space.
    #[error("storage full: {need} bytes needed, {free} free")]
    Full {
        /// Bytes needed.
        need: u64,
        /// Bytes free.
        free: u64,
    },
    /// Disk I/O failed.
    #[error("shard storage I/O at {path}: {source}")]
    Io {
        /// Path involved.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The stored copy failed its own hash check (bitrot or tampering).
    #[error("stored shard is corrupt: {0}")]
    Corrupt(String),
    /// Anything else the implementation reports.
    #[error("shard backend: {0}")]
    Other(String),
}

/// The store behind the shard services. Calls are blocking; the services run them on the
/// blocking pool.
pub trait ShardBackend: Send + Sync + 'static {
    /// Stores `data` as shard `key`, replacing any previous copy.
    fn put_shard(&self, key: &ShardKey, data: &[u8]) -> Result<(), BackendError>;
    /// The shard's bytes, or `None` if not held.
    fn get_shard(&self, key: &ShardKey) -> Result<Option<Vec<u8>>, BackendError>;
    /// Held shards, all or only those of `object`.
    fn list_shards(&self, object: Option<&[u8; 32]>) -> Result<Vec<ShardInfo>, BackendError>;
    /// Deletes a shard; returns whether it was held.
    fn delete_shard(&self, key: &ShardKey) -> Result<bool, BackendError>;
    /// Bytes still available for shards.
    fn free_bytes(&self) -> Result<u64, BackendError>;

    /// Answers an audit challenge: `Ok(None)` if the shard is not held. The default hashes the
    /// challenged range with [`crate::stream::audit_proof_hash`]; a store with its own audit
    /// scheme overrides it. Errors with [`BackendError::InvalidKey`] for a range outside the
    /// shard.
    fn audit_answer(
        &self,
        challenge: &magnet_proto::p2p::v1::AuditChallenge,
    ) -> Result<Option<[u8; 32]>, BackendError> {
        let key = ShardKey::from_proto(challenge.key.as_ref())?;
        let Some(data) = self.get_shard(&key)? else {
            return Ok(None);
        };
        let range = crate::stream::audit_range(challenge, &data).ok_or_else(|| {
            BackendError::InvalidKey(format!(
                "audit range {}+{} outside shard of {} bytes",
                challenge.offset,
                challenge.length,
                data.len()
            ))
        })?;
        Ok(Some(crate::stream::audit_proof_hash(challenge, range)))
    }
}

/// One file per shard under a directory (`<dir>/<object hex>/<index>.shard`), with an
/// in-memory index (size and hash per shard) rebuilt by scanning at open.
#[derive(Debug)]
pub struct DirShardBackend {
    dir: PathBuf,
    quota: u64,
    index: std::sync::Mutex<std::collections::BTreeMap<ShardKey, ShardInfo>>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> BackendError + '_ {
    move |source| BackendError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl DirShardBackend {
    /// Opens (creating) `dir`, holding at most `quota` bytes of shards.
    pub fn open(dir: &Path, quota: u64) -> Result<Self, BackendError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut index = std::collections::BTreeMap::new();
        for odir in std::fs::read_dir(dir).map_err(io_err(dir))?.flatten() {
            let odir = odir.path();
            let Some(object_id) = odir
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| hex::decode(n).ok())
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
            else {
                continue;
            };
            let Ok(rd) = std::fs::read_dir(&odir) else {
                continue;
            };
            for f in rd.flatten() {
                let p = f.path();
                if p.extension().and_then(|e| e.to_str()) != Some("shard") {
                    continue;
                }
                let Some(i) = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                let data = std::fs::read(&p).map_err(io_err(&p))?;
                let key = ShardKey {
                    object_id,
                    index: i,
                };
                index.insert(
                    key,
                    ShardInfo {
                        key,
                        size: data.len() as u64,
                        hash: Sha256::digest(&data).into(),
                    },
                );
            }
        }
        Ok(DirShardBackend {
            dir: dir.to_owned(),
            quota,
            index: std::sync::Mutex::new(index),
        })
    }

    fn path(&self, key: &ShardKey) -> PathBuf {
        self.dir
            .join(hex::encode(key.object_id))
            .join(format!("{}.shard", key.index))
    }

    fn locked(
        &self,
    ) -> Result<
        std::sync::MutexGuard<'_, std::collections::BTreeMap<ShardKey, ShardInfo>>,
        BackendError,
    > {
        self.index
            .lock()
            .map_err(|_| BackendError::Other("shard index lock poisoned".into()))
    }
}

impl ShardBackend for DirShardBackend {
    fn put_shard(&self, key: &ShardKey, data: &[u8]) -> Result<(), BackendError> {
        let mut index = self.locked()?;
        let used: u64 = index.values().map(|s| s.size).sum();
        let old = index.get(key).map(|s| s.size).unwrap_or(0);
        let free = self.quota.saturating_sub(used.saturating_sub(old));
        if data.len() as u64 > free {
            return Err(BackendError::Full {
                need: data.len() as u64,
                free,
            });
        }
        let path = self.path(key);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, data).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        index.insert(
            *key,
            ShardInfo {
                key: *key,
                size: data.len() as u64,
                hash: Sha256::digest(data).into(),
            },
        );
        Ok(())
    }

    fn get_shard(&self, key: &ShardKey) -> Result<Option<Vec<u8>>, BackendError> {
        let path = self.path(key);
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn list_shards(&self, object: Option<&[u8; 32]>) -> Result<Vec<ShardInfo>, BackendError> {
        Ok(self
            .locked()?
            .values()
            .filter(|s| object.is_none_or(|o| s.key.object_id == *o))
            .cloned()
            .collect())
    }

    fn delete_shard(&self, key: &ShardKey) -> Result<bool, BackendError> {
        let mut index = self.locked()?;
        let path = self.path(key);
        let existed = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io_err(&path)(e)),
        };
        index.remove(key);
        Ok(existed)
    }

    fn free_bytes(&self) -> Result<u64, BackendError> {
        let used: u64 = self.locked()?.values().map(|s| s.size).sum();
        Ok(self.quota.saturating_sub(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_backend_persists_and_enforces_its_quota() {
        let dir = tempfile::tempdir().unwrap();
        let k = ShardKey {
            object_id: [3; 32],
            index: 1,
        };
        let b = DirShardBackend::open(dir.path(), 100).unwrap();
        b.put_shard(&k, &[5u8; 60]).unwrap();
        let k2 = ShardKey { index: 2, ..k };
        assert!(matches!(
            b.put_shard(&k2, &[1u8; 41]),
            Err(BackendError::Full { .. })
        ));
        drop(b);
        let b = DirShardBackend::open(dir.path(), 100).unwrap();
        assert_eq!(b.get_shard(&k).unwrap().unwrap(), vec![5u8; 60]);
        assert_eq!(b.list_shards(Some(&[3; 32])).unwrap().len(), 1);
        assert_eq!(b.free_bytes().unwrap(), 40);
        assert!(b.delete_shard(&k).unwrap());
        assert!(!b.delete_shard(&k).unwrap());
        assert_eq!(b.get_shard(&k).unwrap(), None);
    }
}
