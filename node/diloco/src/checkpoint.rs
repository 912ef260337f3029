//! The merged checkpoint: flat f32 latent parameters *and* the outer optimizer's momentum.
//!
//! The momentum travels inside the checkpoint so that whoever leads the next round continues
//! the same Nesterov trajectory (leaders rotate every round; see paper §10.3 and ADR 0071).
//!
//! Wire format (all little-endian), version 1:
//!
//! ```text
//! "MGDC" | version u16 = 1 | n u64 | params f32 × n | momentum f32 × n
//! ```
//!
//! The checkpoint hash is `SHA-256("MAGNET/diloco/v1/checkpoint" ‖ 0 ‖ wire bytes)`.
//!
//! # Guarantees
//! `from_bytes(to_bytes(c)) == c` bit for bit (NaN payloads included); malformed input gives a
//! typed [`CheckpointError`], never a panic, and never allocates more than the input length.
//!
//! # Non-guarantees
//! No model shapes here: the BitNet engine owns the mapping from tensors to the flat vector.

use crate::types::Digest;

/// Domain of [`Checkpoint::hash`].
pub const CHECKPOINT_DOMAIN: &str = "MAGNET/diloco/v1/checkpoint";
/// Magic bytes opening a serialised checkpoint.
pub const CHECKPOINT_MAGIC: [u8; 4] = *b"MGDC";
/// Current wire version.
pub const CHECKPOINT_VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + 8;

/// Flat parameters θ plus the outer momentum buffer m (same length).
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// θ: float32 latent weights, flattened in the engine's canonical tensor order.
    pub params: Vec<f32>,
    /// m: the outer Nesterov momentum buffer (zeros before the first merge).
    pub momentum: Vec<f32>,
}

/// A serialised checkpoint could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// Input shorter than the fixed header.
    #[error("checkpoint truncated: {len} bytes, the header alone needs {HEADER_LEN}")]
    Truncated {
        /// Input length.
        len: usize,
    },
    /// Wrong magic bytes: this is not a DiLoCo checkpoint.
    #[error("not a DiLoCo checkpoint: magic {found:02x?}, expected \"MGDC\"")]
    BadMagic {
        /// The first four bytes.
        found: [u8; 4],
    },
    /// Unknown wire version.
    #[error("checkpoint wire version {found} is not supported (this build reads version {CHECKPOINT_VERSION})")]
    UnsupportedVersion {
        /// The version found.
        found: u16,
    },
    /// Body length does not match the declared parameter count.
    #[error("checkpoint declares {n} parameters ({expected} body bytes) but carries {actual} body bytes")]
    LengthMismatch {
        /// Declared parameter count.
        n: u64,
        /// Body bytes implied by `n` (saturated).
        expected: u64,
        /// Body bytes present.
        actual: u64,
    },
    /// `params` and `momentum` differ in length (construction error).
    #[error("params has {params} values but momentum has {momentum}")]
    ShapeMismatch {
        /// params length.
        params: usize,
        /// momentum length.
        momentum: usize,
    },
}

impl Checkpoint {
    /// A fresh checkpoint: `params` with zero momentum.
    pub fn new(params: Vec<f32>) -> Self {
        let momentum = vec![0.0; params.len()];
        Self { params, momentum }
    }

    /// A checkpoint from both buffers; they must have equal length.
    pub fn with_momentum(params: Vec<f32>, momentum: Vec<f32>) -> Result<Self, CheckpointError> {
        if params.len() != momentum.len() {
            return Err(CheckpointError::ShapeMismatch {
                params: params.len(),
                momentum: momentum.len(),
            });
        }
        Ok(Self { params, momentum })
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// True when there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Serialised size in bytes (`14 + 8·n`).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN + 8 * self.params.len()
    }

    /// Serialises to the version-1 wire format.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(&CHECKPOINT_MAGIC);
        out.extend_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.params.len() as u64).to_le_bytes());
        for x in &self.params {
            out.extend_from_slice(&x.to_le_bytes());
        }
        for x in &self.momentum {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Parses the version-1 wire format.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        if bytes.len() < HEADER_LEN {
            return Err(CheckpointError::Truncated { len: bytes.len() });
        }
        let (magic, rest) = bytes.split_at(4);
        let mut found = [0u8; 4];
        found.copy_from_slice(magic);
        if found != CHECKPOINT_MAGIC {
            return Err(CheckpointError::BadMagic { found });
        }
        let (ver, rest) = rest.split_at(2);
        let version = u16::from_le_bytes([ver[0], ver[1]]);
        if version != CHECKPOINT_VERSION {
            return Err(CheckpointError::UnsupportedVersion { found: version });
        }
        let (nb, body) = rest.split_at(8);
        let mut n8 = [0u8; 8];
        n8.copy_from_slice(nb);
        let n = u64::from_le_bytes(n8);
        let expected = n.saturating_mul(8);
        if expected != body.len() as u64 {
            return Err(CheckpointError::LengthMismatch {
                n,
                expected,
                actual: body.len() as u64,
            });
        }
        let half = body.len() / 2;
        let read = |b: &[u8]| -> Vec<f32> {
            b.chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()
        };
        Ok(Self {
            params: read(&body[..half]),
            momentum: read(&body[half..]),
        })
    }

    /// The checkpoint hash (over the wire bytes, domain-separated).
    pub fn hash(&self) -> Digest {
        use sha2::{Digest as _, Sha256};
        // Streams the wire bytes without materialising them.
        let mut h = Sha256::new();
        h.update(CHECKPOINT_DOMAIN.as_bytes());
        h.update([0u8]);
        h.update(CHECKPOINT_MAGIC);
        h.update(CHECKPOINT_VERSION.to_le_bytes());
        h.update((self.params.len() as u64).to_le_bytes());
        crate::types::update_f32s(&mut h, &self.params);
        crate::types::update_f32s(&mut h, &self.momentum);
        Digest(h.finalize().into())
    }
}

/// Δ = θ_global − θ_local (paper Eq. 1), elementwise.
pub fn pseudo_gradient(global: &[f32], local: &[f32]) -> Result<Vec<f32>, CheckpointError> {
    if global.len() != local.len() {
        return Err(CheckpointError::ShapeMismatch {
            params: global.len(),
            momentum: local.len(),
        });
    }
    Ok(global.iter().zip(local).map(|(g, l)| g - l).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_bit_for_bit() {
        let c = Checkpoint::with_momentum(
            vec![1.5, -0.0, f32::MIN_POSITIVE, f32::NAN],
            vec![0.25, 3.0, -7.0, 0.0],
        )
        .unwrap();
        let back = Checkpoint::from_bytes(&c.to_bytes()).unwrap();
        assert_eq!(back.to_bytes(), c.to_bytes());
        assert_eq!(c.to_bytes().len(), c.encoded_len());
    }

    #[test]
    fn every_malformed_input_is_a_typed_error() {
        let good = Checkpoint::new(vec![1.0, 2.0]).to_bytes();
        let mut bad_magic = good.clone();
        bad_magic[0] = b'X';
        let mut bad_ver = good.clone();
        bad_ver[4] = 9;
        let mut huge_n = good.clone();
        huge_n[6..14].copy_from_slice(&u64::MAX.to_le_bytes());
        type Case = (&'static str, Vec<u8>, fn(&CheckpointError) -> bool);
        let cases: Vec<Case> = vec![
            ("empty", vec![], |e| {
                matches!(e, CheckpointError::Truncated { .. })
            }),
            ("short header", good[..10].to_vec(), |e| {
                matches!(e, CheckpointError::Truncated { .. })
            }),
            ("magic", bad_magic, |e| {
                matches!(e, CheckpointError::BadMagic { .. })
            }),
            ("version", bad_ver, |e| {
                matches!(e, CheckpointError::UnsupportedVersion { found: 9 })
            }),
            ("body cut", good[..good.len() - 1].to_vec(), |e| {
                matches!(e, CheckpointError::LengthMismatch { .. })
            }),
            ("huge n", huge_n, |e| {
                matches!(e, CheckpointError::LengthMismatch { .. })
            }),
        ];
        for (name, bytes, want) in cases {
            let err = Checkpoint::from_bytes(&bytes).unwrap_err();
            assert!(want(&err), "{name}: got {err}");
        }
    }

    #[test]
    fn hash_covers_the_momentum() {
        let a = Checkpoint::new(vec![1.0, 2.0]);
        let mut b = a.clone();
        b.momentum[1] = 1e-30;
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn checkpoint_hash_conformance_vector() {
        let c = Checkpoint::with_momentum(vec![1.0, -2.0], vec![0.5, 0.0]).unwrap();
        assert_eq!(c.hash().to_hex(), CONFORMANCE_HASH);
    }

    const CONFORMANCE_HASH: &str =
        "aaa420e8ac86a3f85b31e992b4811ce2823c818b44b0ee01f77c6ca2e197d6d9";

    #[test]
    fn pseudo_gradient_is_global_minus_local() {
        assert_eq!(
            pseudo_gradient(&[1.0, 2.0], &[0.5, 3.0]).unwrap(),
            vec![0.5, -1.0]
        );
        assert!(pseudo_gradient(&[1.0], &[]).is_err());
    }
}
