//! Chunked bulk transfers: a manifest of chunk hashes, then the chunks, each checked on arrival.
//!
//! The sender signs a [`ShardManifest`] (size, chunk size, SHA-256 of every chunk and of the
//! whole shard). The receiver validates the manifest's shape against its limits *before* it
//! accepts any data, checks every chunk against its entry as it arrives (so a bad chunk aborts
//! the transfer at once, without buffering the rest) and the whole shard at the end.
//! Also here: the audit proof hash.

use magnet_proto::p2p::v1::{AuditChallenge, ShardManifest};
use sha2::{Digest, Sha256};

use crate::backend::ShardKey;

/// Largest chunk accepted on the wire.
pub const MAX_CHUNK_BYTES: u32 = 4 << 20;
/// Default chunk size.
pub const DEFAULT_CHUNK_BYTES: u32 = 1 << 20;
/// Domain tag of audit proofs.
pub const DOMAIN_AUDIT: &[u8] = b"MAGNET/p2p/v1/audit";

/// A transfer that does not match its manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    /// The manifest itself is inconsistent or over limits.
    #[error("bad manifest: {0}")]
    BadManifest(String),
    /// A chunk's hash differs from its manifest entry.
    #[error("chunk {index} does not match its manifest hash")]
    ChunkHashMismatch {
        /// Chunk index.
        index: usize,
    },
    /// A chunk has the wrong length.
    #[error("chunk {index} is {got} bytes, the manifest says {want}")]
    ChunkLength {
        /// Chunk index.
        index: usize,
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// More chunks than the manifest lists.
    #[error("more chunks than the manifest's {0}")]
    TooManyChunks(usize),
    /// The stream ended early.
    #[error("stream ended after {got} of {want} chunks")]
    MissingChunks {
        /// Chunks received.
        got: usize,
        /// Chunks listed.
        want: usize,
    },
    /// The assembled shard does not hash to the manifest's shard hash.
    #[error("assembled shard does not match the manifest's shard hash")]
    ShardHashMismatch,
    /// The data does not hash to what the caller expected.
    #[error("shard hash differs from the expected {0}")]
    UnexpectedShard(String),
}

/// Builds the manifest of `data` cut into `chunk_size` pieces.
pub fn build_manifest(key: &ShardKey, data: &[u8], chunk_size: u32) -> ShardManifest {
    let cs = chunk_size.clamp(1, MAX_CHUNK_BYTES) as usize;
    ShardManifest {
        key: Some(key.to_proto()),
        size: data.len() as u64,
        chunk_size: cs as u32,
        chunk_hashes: data
            .chunks(cs)
            .map(|c| Sha256::digest(c).to_vec())
            .collect(),
        shard_hash: Sha256::digest(data).to_vec(),
    }
}

/// Receives chunks against a validated manifest.
#[derive(Debug)]
pub struct ChunkChecker {
    chunk_size: usize,
    size: usize,
    hashes: Vec<[u8; 32]>,
    shard_hash: [u8; 32],
    buf: Vec<u8>,
    next: usize,
}

impl ChunkChecker {
    /// Validates `m` against `max_size` and prepares to receive its chunks.
    pub fn new(m: &ShardManifest, max_size: u64) -> Result<Self, IntegrityError> {
        let bad = |s: String| IntegrityError::BadManifest(s);
        if m.size > max_size {
            return Err(bad(format!(
                "shard of {} bytes exceeds the {max_size}-byte limit",
                m.size
            )));
        }
        if m.chunk_size == 0 || m.chunk_size > MAX_CHUNK_BYTES {
            return Err(bad(format!(
                "chunk size {} outside 1..={MAX_CHUNK_BYTES}",
                m.chunk_size
            )));
        }
        let want = m.size.div_ceil(m.chunk_size as u64) as usize;
        if m.chunk_hashes.len() != want {
            return Err(bad(format!(
                "{} chunk hashes for {want} chunks",
                m.chunk_hashes.len()
            )));
        }
        let hashes = m
            .chunk_hashes
            .iter()
            .map(|h| <[u8; 32]>::try_from(h.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| bad("chunk hash is not 32 bytes".into()))?;
        let shard_hash = <[u8; 32]>::try_from(m.shard_hash.as_slice())
            .map_err(|_| bad("shard hash is not 32 bytes".into()))?;
        Ok(ChunkChecker {
            chunk_size: m.chunk_size as usize,
            size: m.size as usize,
            hashes,
            shard_hash,
            buf: Vec::with_capacity(m.size as usize),
            next: 0,
        })
    }

    /// Checks and appends the next chunk.
    pub fn accept(&mut self, chunk: &[u8]) -> Result<(), IntegrityError> {
        let index = self.next;
        let want_hash = self
            .hashes
            .get(index)
            .ok_or(IntegrityError::TooManyChunks(self.hashes.len()))?;
        let want_len = (self.size - self.buf.len()).min(self.chunk_size);
        if chunk.len() != want_len {
            return Err(IntegrityError::ChunkLength {
                index,
                got: chunk.len(),
                want: want_len,
            });
        }
        if Sha256::digest(chunk).as_slice() != want_hash {
            return Err(IntegrityError::ChunkHashMismatch { index });
        }
        self.buf.extend_from_slice(chunk);
        self.next += 1;
        Ok(())
    }

    /// Ends the transfer: all chunks present and the whole shard matches.
    pub fn finish(self) -> Result<Vec<u8>, IntegrityError> {
        if self.next != self.hashes.len() {
            return Err(IntegrityError::MissingChunks {
                got: self.next,
                want: self.hashes.len(),
            });
        }
        if Sha256::digest(&self.buf).as_slice() != self.shard_hash {
            return Err(IntegrityError::ShardHashMismatch);
        }
        Ok(self.buf)
    }

    /// The shard hash the manifest promises.
    pub fn shard_hash(&self) -> [u8; 32] {
        self.shard_hash
    }
}

/// The audit proof over `range` of a shard for `challenge`:
/// `SHA-256(DOMAIN_AUDIT ‖ 0x00 ‖ be32(len nonce) ‖ nonce ‖ object_id ‖ be32(index) ‖
/// be64(offset) ‖ be64(length) ‖ range)`.
pub fn audit_proof_hash(challenge: &AuditChallenge, range: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(DOMAIN_AUDIT);
    h.update([0u8]);
    h.update((challenge.challenge_nonce.len() as u32).to_be_bytes());
    h.update(&challenge.challenge_nonce);
    if let Some(k) = &challenge.key {
        h.update(&k.object_id);
        h.update(k.index.to_be_bytes());
    }
    h.update(challenge.offset.to_be_bytes());
    h.update(challenge.length.to_be_bytes());
    h.update(range);
    h.finalize().into()
}

/// The slice of `shard` an audit challenge asks for, if in bounds.
pub fn audit_range<'a>(challenge: &AuditChallenge, shard: &'a [u8]) -> Option<&'a [u8]> {
    let start = usize::try_from(challenge.offset).ok()?;
    let end = start.checked_add(usize::try_from(challenge.length).ok()?)?;
    shard.get(start..end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> ShardKey {
        ShardKey {
            object_id: [9; 32],
            index: 2,
        }
    }

    proptest! {
        #[test]
        fn honest_transfers_reassemble_exactly(len in 0usize..5000, cs in 1u32..700) {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let m = build_manifest(&key(), &data, cs);
            let mut c = ChunkChecker::new(&m, 1 << 20).unwrap();
            for ch in data.chunks(cs as usize) {
                c.accept(ch).unwrap();
            }
            prop_assert_eq!(c.finish().unwrap(), data);
        }

        #[test]
        fn any_flipped_byte_is_caught_at_its_chunk(len in 1usize..3000, cs in 1u32..500, pos in any::<prop::sample::Index>()) {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
            let m = build_manifest(&key(), &data, cs);
            let p = pos.index(len);
            let mut bad = data.clone();
            bad[p] ^= 0x80;
            let mut c = ChunkChecker::new(&m, 1 << 20).unwrap();
            let mut failed_at = None;
            for (i, ch) in bad.chunks(cs as usize).enumerate() {
                if c.accept(ch).is_err() {
                    failed_at = Some(i);
                    break;
                }
            }
            prop_assert_eq!(failed_at, Some(p / cs as usize));
        }
    }

    #[test]
    fn inconsistent_manifests_are_refused_before_any_data() {
        let data = vec![1u8; 1000];
        let good = build_manifest(&key(), &data, 100);
        let mut m = good.clone();
        m.chunk_hashes.pop();
        assert!(matches!(
            ChunkChecker::new(&m, 1 << 20),
            Err(IntegrityError::BadManifest(_))
        ));
        let mut m = good.clone();
        m.chunk_size = 0;
        assert!(matches!(
            ChunkChecker::new(&m, 1 << 20),
            Err(IntegrityError::BadManifest(_))
        ));
        assert!(matches!(
            ChunkChecker::new(&good, 999),
            Err(IntegrityError::BadManifest(_))
        ));
        let mut c = ChunkChecker::new(&good, 1 << 20).unwrap();
        c.accept(&data[..100]).unwrap();
        assert_eq!(
            c.finish().unwrap_err(),
            IntegrityError::MissingChunks { got: 1, want: 10 }
        );
    }
}
