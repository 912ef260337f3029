//! Object manifests and their secp256k1 signatures.
//!
//! A [`Manifest`] records everything needed to find, check and rebuild an object: its content
//! address and size, the erasure setting and stripe size, the SHA-256 of every shard, and the
//! holders of each shard. A [`SignedManifest`] carries the signer's compressed secp256k1 public
//! key and a 64-byte ECDSA signature over
//! `SHA-256("MAGNET/storage/manifest/v1" ‖ 0x00 ‖ canonical bytes)` ([`Manifest::signing_digest`]).
//! The canonical bytes are a fixed binary encoding (big-endian integers, length-prefixed
//! strings), independent of JSON formatting.
//!
//! # Guarantees
//! * [`SignedManifest::verify`] accepts only a low-S signature by the embedded key over exactly
//!   these fields; any change to any field, or a signature from another domain, fails.
//! * [`Manifest::validate`] checks internal consistency (supported (K, M), stripe size, one
//!   hash and one holder list per shard, no holder holding two shards of the object).
//!
//! # Non-guarantees
//! Whether the signer is *allowed* to publish this manifest (owner, registered node) is for the
//! caller to decide with [`SignedManifest::verify_by`] or its registry.

use std::collections::BTreeSet;
use std::fmt;

use k256::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use k256::ecdsa::{Signature, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{CodecError, Layout, Params};
use crate::hash::{ContentAddress, Hash32};

/// Domain separator of manifest signatures.
pub const MANIFEST_DOMAIN: &[u8] = b"MAGNET/storage/manifest/v1";

/// The identity of a shard holder (the p2p layer's node id or address). 1–128 characters of
/// `[A-Za-z0-9._:-]`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HolderId(String);

impl HolderId {
    /// Validates a holder id.
    pub fn new(s: impl Into<String>) -> Result<Self, ManifestError> {
        let s = s.into();
        let ok = !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b));
        if ok {
            Ok(HolderId(s))
        } else {
            Err(ManifestError::BadHolderId(s))
        }
    }
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for HolderId {
    type Error = ManifestError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        HolderId::new(s)
    }
}

impl From<HolderId> for String {
    fn from(h: HolderId) -> String {
        h.0
    }
}

impl fmt::Debug for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for HolderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Errors building, checking or verifying manifests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Holder id with forbidden characters or length.
    #[error("invalid holder id {0:?}: use 1-128 characters of [A-Za-z0-9._:-]")]
    BadHolderId(String),
    /// Erasure setting or stripe size invalid.
    #[error("manifest geometry: {0}")]
    Codec(#[from] CodecError),
    /// Wrong number of shard hashes or holder lists.
    #[error("manifest lists {got} {what} but K+M = {expected}")]
    ShardCount {
        /// What was miscounted.
        what: &'static str,
        /// K + M.
        expected: usize,
        /// Entries present.
        got: usize,
    },
    /// The same holder appears for two shards of one object.
    #[error("holder {0} holds more than one shard of the object; shards need distinct holders")]
    DuplicateHolder(HolderId),
    /// The embedded public key is not a valid compressed secp256k1 point.
    #[error("manifest signer key is not a compressed secp256k1 public key")]
    BadKey,
    /// The signature is malformed, high-S, or does not verify.
    #[error("manifest signature does not verify for the embedded key")]
    BadSignature,
    /// A valid signature by an unexpected key.
    #[error("manifest is signed by {got}, expected {expected}")]
    WrongSigner {
        /// Hex of the expected compressed key.
        expected: String,
        /// Hex of the signing key.
        got: String,
    },
    /// The signer refused or failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// JSON could not be parsed.
    #[error("manifest JSON: {0}")]
    Json(String),
}

/// Something that signs 32-byte prehashed digests with a secp256k1 key (the node key).
pub trait Signer {
    /// The 33-byte compressed public key.
    fn public_key(&self) -> [u8; 33];
    /// A 64-byte low-S ECDSA signature (r ‖ s) over the digest.
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], ManifestError>;
}

impl Signer for SigningKey {
    fn public_key(&self) -> [u8; 33] {
        let ep = self.verifying_key().to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(ep.as_bytes());
        out
    }
    fn sign_digest(&self, digest: &[u8; 32]) -> Result<[u8; 64], ManifestError> {
        let sig: Signature = self
            .sign_prehash(digest)
            .map_err(|e| ManifestError::Sign(e.to_string()))?;
        let sig = sig.normalize_s().unwrap_or(sig);
        Ok(sig.to_bytes().into())
    }
}

/// Verifies a 64-byte low-S ECDSA signature over a digest by a compressed public key.
pub fn verify_digest(
    public_key: &[u8; 33],
    digest: &[u8; 32],
    signature: &[u8; 64],
) -> Result<(), ManifestError> {
    let vk = VerifyingKey::from_sec1_bytes(public_key).map_err(|_| ManifestError::BadKey)?;
    let sig = Signature::from_slice(signature).map_err(|_| ManifestError::BadSignature)?;
    if sig.normalize_s().is_some() {
        return Err(ManifestError::BadSignature);
    }
    vk.verify_prehash(digest, &sig)
        .map_err(|_| ManifestError::BadSignature)
}

/// Everything needed to find, check and rebuild one object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Content address (SHA-256 of the object).
    pub object: ContentAddress,
    /// Object size in bytes.
    pub size: u64,
    /// Data shards.
    pub k: u8,
    /// Parity shards.
    pub m: u8,
    /// Stripe size in bytes.
    pub stripe_size: u32,
    /// SHA-256 of each shard, by index.
    pub shard_hashes: Vec<Hash32>,
    /// Holders of each shard, by index (replicas; may be empty while a shard is lost).
    pub holders: Vec<Vec<HolderId>>,
    /// Wanted replicas per shard (1 by default; 3–5 for hot objects).
    pub replica_target: u8,
    /// Revision, bumped each time the holders change (repairs publish a new revision).
    pub revision: u64,
}

impl Manifest {
    /// The erasure setting.
    pub fn params(&self) -> Result<Params, ManifestError> {
        Ok(Params::new(self.k, self.m)?)
    }

    /// The stripe layout.
    pub fn layout(&self) -> Result<Layout, ManifestError> {
        Ok(Layout::new(self.params()?, self.stripe_size, self.size)?)
    }

    /// Checks the manifest is internally consistent.
    pub fn validate(&self) -> Result<(), ManifestError> {
        let layout = self.layout()?;
        let total = layout.params.total();
        if self.shard_hashes.len() != total {
            return Err(ManifestError::ShardCount {
                what: "shard hashes",
                expected: total,
                got: self.shard_hashes.len(),
            });
        }
        if self.holders.len() != total {
            return Err(ManifestError::ShardCount {
                what: "holder lists",
                expected: total,
                got: self.holders.len(),
            });
        }
        let mut seen = BTreeSet::new();
        for h in self.holders.iter().flatten() {
            if !seen.insert(h) {
                return Err(ManifestError::DuplicateHolder(h.clone()));
            }
        }
        Ok(())
    }

    /// The canonical byte encoding that is signed.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128 + 32 * self.shard_hashes.len());
        b.extend_from_slice(&self.object.0 .0);
        b.extend_from_slice(&self.size.to_be_bytes());
        b.push(self.k);
        b.push(self.m);
        b.extend_from_slice(&self.stripe_size.to_be_bytes());
        b.extend_from_slice(&(self.shard_hashes.len() as u32).to_be_bytes());
        for h in &self.shard_hashes {
            b.extend_from_slice(&h.0);
        }
        b.extend_from_slice(&(self.holders.len() as u32).to_be_bytes());
        for list in &self.holders {
            b.extend_from_slice(&(list.len() as u32).to_be_bytes());
            for h in list {
                b.extend_from_slice(&(h.0.len() as u32).to_be_bytes());
                b.extend_from_slice(h.0.as_bytes());
            }
        }
        b.push(self.replica_target);
        b.extend_from_slice(&self.revision.to_be_bytes());
        b
    }

    /// `SHA-256(MANIFEST_DOMAIN ‖ 0x00 ‖ canonical_bytes)`.
    pub fn signing_digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(MANIFEST_DOMAIN);
        h.update([0u8]);
        h.update(self.canonical_bytes());
        h.finalize().into()
    }

    /// Validates and signs.
    pub fn sign(self, signer: &impl Signer) -> Result<SignedManifest, ManifestError> {
        self.validate()?;
        let sig = signer.sign_digest(&self.signing_digest())?;
        Ok(SignedManifest {
            manifest: self,
            signer: hex::encode(signer.public_key()),
            signature: hex::encode(sig),
        })
    }
}

/// A manifest with its signer's key and signature (hex in JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedManifest {
    /// The manifest.
    pub manifest: Manifest,
    /// Compressed secp256k1 public key of the signer, hex.
    pub signer: String,
    /// 64-byte ECDSA signature (r ‖ s), hex.
    pub signature: String,
}

impl SignedManifest {
    /// Checks consistency and the signature by the embedded key.
    pub fn verify(&self) -> Result<&Manifest, ManifestError> {
        self.manifest.validate()?;
        let mut key = [0u8; 33];
        hex::decode_to_slice(&self.signer, &mut key).map_err(|_| ManifestError::BadKey)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| ManifestError::BadSignature)?;
        verify_digest(&key, &self.manifest.signing_digest(), &sig)?;
        Ok(&self.manifest)
    }

    /// [`verify`](Self::verify), and checks the signer is `expected`.
    pub fn verify_by(&self, expected: &[u8; 33]) -> Result<&Manifest, ManifestError> {
        let m = self.verify()?;
        let exp = hex::encode(expected);
        if self.signer != exp {
            return Err(ManifestError::WrongSigner {
                expected: exp,
                got: self.signer.clone(),
            });
        }
        Ok(m)
    }

    /// JSON text.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses JSON and verifies the signature.
    pub fn from_json_verified(text: &str) -> Result<Self, ManifestError> {
        let sm: SignedManifest =
            serde_json::from_str(text).map_err(|e| ManifestError::Json(e.to_string()))?;
        sm.verify()?;
        Ok(sm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode, Codec};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32].into()).unwrap()
    }

    fn manifest() -> Manifest {
        let codec = Codec::new(Params::DEFAULT).unwrap();
        let (enc, _) = encode(&codec, 1 << 20, b"hello manifest").unwrap();
        Manifest {
            object: ContentAddress(enc.object_hash),
            size: 14,
            k: 4,
            m: 2,
            stripe_size: 1 << 20,
            shard_hashes: enc.shard_hashes,
            holders: (0..6)
                .map(|i| vec![HolderId::new(format!("node-{i}")).unwrap()])
                .collect(),
            replica_target: 1,
            revision: 0,
        }
    }

    #[test]
    fn a_signed_manifest_verifies_and_survives_json() {
        let sm = manifest().sign(&key(7)).unwrap();
        let back = SignedManifest::from_json_verified(&sm.to_json()).unwrap();
        assert_eq!(back, sm);
        back.verify_by(&key(7).public_key()).unwrap();
        assert!(matches!(
            back.verify_by(&key(8).public_key()),
            Err(ManifestError::WrongSigner { .. })
        ));
    }

    #[test]
    fn every_field_change_breaks_the_signature() {
        let sm = manifest().sign(&key(7)).unwrap();
        let mut cases: Vec<(&str, SignedManifest)> = Vec::new();
        let mut t = sm.clone();
        t.manifest.size += 1;
        cases.push(("size", t));
        let mut t = sm.clone();
        t.manifest.shard_hashes[3].0[0] ^= 1;
        cases.push(("shard hash", t));
        let mut t = sm.clone();
        t.manifest.holders[2] = vec![HolderId::new("node-evil").unwrap()];
        cases.push(("holder", t));
        let mut t = sm.clone();
        t.manifest.revision = 9;
        cases.push(("revision", t));
        let mut t = sm.clone();
        t.manifest.object.0 .0[31] ^= 0x80;
        cases.push(("object", t));
        let mut t = sm.clone();
        t.manifest.replica_target = 3;
        cases.push(("replicas", t));
        for (what, t) in cases {
            assert_eq!(t.verify(), Err(ManifestError::BadSignature), "{what}");
        }
    }

    #[test]
    fn high_s_and_other_domain_signatures_are_refused() {
        let m = manifest();
        let sk = key(9);
        let sm = m.clone().sign(&sk).unwrap();
        // Flip s to n - s: the same signature in high-S form.
        let mut raw = [0u8; 64];
        hex::decode_to_slice(&sm.signature, &mut raw).unwrap();
        let sig = Signature::from_slice(&raw).unwrap();
        let (r, s) = sig.split_scalars();
        let high = Signature::from_scalars(r, -*s).unwrap();
        let mut t = sm.clone();
        t.signature = hex::encode(high.to_bytes());
        assert_eq!(t.verify(), Err(ManifestError::BadSignature));
        // A signature over the raw canonical bytes without the domain does not verify.
        let digest: [u8; 32] = Sha256::digest(m.canonical_bytes()).into();
        let mut t = sm;
        t.signature = hex::encode(sk.sign_digest(&digest).unwrap());
        assert_eq!(t.verify(), Err(ManifestError::BadSignature));
    }

    #[test]
    fn inconsistent_manifests_are_typed_errors() {
        let mut m = manifest();
        m.holders[1] = m.holders[0].clone();
        assert!(matches!(
            m.validate(),
            Err(ManifestError::DuplicateHolder(_))
        ));
        let mut m = manifest();
        m.shard_hashes.pop();
        assert!(matches!(
            m.validate(),
            Err(ManifestError::ShardCount { .. })
        ));
        let mut m = manifest();
        m.k = 5;
        assert!(matches!(m.validate(), Err(ManifestError::Codec(_))));
        for bad in ["", "a b", "../x", &"x".repeat(129)] {
            assert!(HolderId::new(bad).is_err(), "{bad:?}");
        }
    }
}
