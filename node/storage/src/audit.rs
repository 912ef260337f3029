//! Storage audits: proof that a holder still has the exact bytes of a shard.
//!
//! A [`Challenge`] names a shard, a byte range and a fresh 32-byte nonce. The holder answers
//! with `SHA-256("MAGNET/storage/audit/v1" ‖ 0x00 ‖ object ‖ index ‖ offset ‖ len ‖ nonce ‖
//! bytes[offset..offset+len])` ([`answer`]). Because the nonce is fresh and the range random,
//! the holder cannot precompute answers without keeping the bytes.
//!
//! The auditor needs the expected answer. Two ways, both here:
//! * it holds (or rebuilds from K other verified shards) the shard and calls [`answer`];
//! * the owner precomputed a [`ChallengeBank`] when it encoded the object, so it can audit later
//!   without keeping any data; each challenge is used once.
//!
//! A failed audit produces [`Evidence`], signed by the auditor under the domain
//! `MAGNET/storage/audit-evidence/v1`, that a node can later bring on chain.
//!
//! # Non-guarantees
//! One passed audit covers one range; confidence that the whole shard is kept grows with the
//! number of audits (a holder keeping a fraction f of the shard passes a random full-range-sized
//! audit with probability about f).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hash::{ContentAddress, Hash32};
use crate::manifest::{verify_digest, HolderId, ManifestError, Signer};

/// Domain of audit answers.
pub const AUDIT_DOMAIN: &[u8] = b"MAGNET/storage/audit/v1";
/// Domain of evidence signatures.
pub const EVIDENCE_DOMAIN: &[u8] = b"MAGNET/storage/audit-evidence/v1";
/// Largest range one challenge may ask for (1 MiB).
pub const MAX_CHALLENGE_LEN: u32 = 1 << 20;

/// A request to prove possession of `shard[offset..offset+len]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The object.
    pub object: ContentAddress,
    /// The shard index.
    pub index: u8,
    /// Start of the range.
    pub offset: u64,
    /// Length of the range (1..=[`MAX_CHALLENGE_LEN`], or 0 for an empty shard).
    pub len: u32,
    /// Fresh random nonce.
    pub nonce: Hash32,
}

impl Challenge {
    /// A fresh challenge over a random range of at most `max_len` bytes of a shard of
    /// `shard_len` bytes.
    pub fn random(
        rng: &mut impl RngCore,
        object: ContentAddress,
        index: u8,
        shard_len: u64,
        max_len: u32,
    ) -> Self {
        let max_len = u64::from(max_len.clamp(1, MAX_CHALLENGE_LEN));
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        let len = if shard_len == 0 {
            0
        } else {
            1 + rng.next_u64() % shard_len.min(max_len)
        };
        let offset = if shard_len > len {
            rng.next_u64() % (shard_len - len + 1)
        } else {
            0
        };
        Challenge {
            object,
            index,
            offset,
            len: len as u32,
            nonce: Hash32(nonce),
        }
    }
}

/// The answer to `ch` over `range` (the bytes of the challenged range).
pub fn answer(ch: &Challenge, range: &[u8]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(AUDIT_DOMAIN);
    h.update([0u8]);
    h.update(ch.object.0 .0);
    h.update([ch.index]);
    h.update(ch.offset.to_be_bytes());
    h.update(ch.len.to_be_bytes());
    h.update(ch.nonce.0);
    h.update(range);
    Hash32(h.finalize().into())
}

/// The expected answer computed from a full copy of the shard; `None` if the range is out of
/// bounds.
pub fn expected_answer(ch: &Challenge, shard: &[u8]) -> Option<Hash32> {
    let start = usize::try_from(ch.offset).ok()?;
    let end = start.checked_add(ch.len as usize)?;
    shard.get(start..end).map(|r| answer(ch, r))
}

/// Challenges precomputed by the owner when it still had the shard, each with its answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChallengeBank {
    /// Unused (challenge, expected answer) pairs.
    pub entries: Vec<(Challenge, Hash32)>,
}

impl ChallengeBank {
    /// Precomputes `count` challenges over `shard`.
    pub fn precompute(
        rng: &mut impl RngCore,
        object: ContentAddress,
        index: u8,
        shard: &[u8],
        count: usize,
        max_len: u32,
    ) -> Self {
        let entries = (0..count)
            .filter_map(|_| {
                let ch = Challenge::random(rng, object, index, shard.len() as u64, max_len);
                expected_answer(&ch, shard).map(|a| (ch, a))
            })
            .collect();
        ChallengeBank { entries }
    }

    /// Takes the next unused challenge.
    pub fn take(&mut self) -> Option<(Challenge, Hash32)> {
        self.entries.pop()
    }
}

/// Why an audit failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The holder answered with the wrong hash (altered or partly lost data).
    WrongAnswer {
        /// What it answered.
        got: Hash32,
    },
    /// The holder said it does not have the shard, or the range is past its end.
    Missing {
        /// The holder's error text.
        reason: String,
    },
    /// The holder could not be reached or did not answer in time.
    NoAnswer {
        /// The transport error text.
        reason: String,
    },
}

/// A signed record of a failed audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The audited holder.
    pub holder: HolderId,
    /// The challenge sent.
    pub challenge: Challenge,
    /// The correct answer.
    pub expected: Hash32,
    /// What went wrong.
    pub failure: Failure,
    /// When (unix milliseconds, from the auditor's clock).
    pub at_ms: u64,
    /// Auditor's compressed secp256k1 key, hex.
    pub auditor: String,
    /// Signature over [`Evidence::signing_digest`], hex.
    pub signature: String,
}

impl Evidence {
    /// `SHA-256(EVIDENCE_DOMAIN ‖ 0x00 ‖ JSON of the unsigned fields)`.
    pub fn signing_digest(
        holder: &HolderId,
        challenge: &Challenge,
        expected: &Hash32,
        failure: &Failure,
        at_ms: u64,
    ) -> [u8; 32] {
        let body = serde_json::json!({
            "holder": holder, "challenge": challenge, "expected": expected,
            "failure": failure, "at_ms": at_ms,
        });
        let mut h = Sha256::new();
        h.update(EVIDENCE_DOMAIN);
        h.update([0u8]);
        h.update(body.to_string().as_bytes());
        h.finalize().into()
    }

    /// Checks the auditor's signature.
    pub fn verify(&self) -> Result<(), ManifestError> {
        let mut key = [0u8; 33];
        hex::decode_to_slice(&self.auditor, &mut key).map_err(|_| ManifestError::BadKey)?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig).map_err(|_| ManifestError::BadSignature)?;
        let d = Self::signing_digest(
            &self.holder,
            &self.challenge,
            &self.expected,
            &self.failure,
            self.at_ms,
        );
        verify_digest(&key, &d, &sig)
    }
}

/// Judges a holder's response. `Ok(None)` = passed; `Ok(Some(evidence))` = failed, signed by
/// `auditor`.
pub fn judge(
    holder: &HolderId,
    challenge: &Challenge,
    expected: &Hash32,
    response: Result<Hash32, Failure>,
    at_ms: u64,
    auditor: &impl Signer,
) -> Result<Option<Evidence>, ManifestError> {
    let failure = match response {
        Ok(got) if got == *expected => return Ok(None),
        Ok(got) => Failure::WrongAnswer { got },
        Err(f) => f,
    };
    let d = Evidence::signing_digest(holder, challenge, expected, &failure, at_ms);
    let sig = auditor.sign_digest(&d)?;
    Ok(Some(Evidence {
        holder: holder.clone(),
        challenge: challenge.clone(),
        expected: *expected,
        failure,
        at_ms,
        auditor: hex::encode(auditor.public_key()),
        signature: hex::encode(sig),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k256::ecdsa::SigningKey;
    use rand::SeedableRng;

    #[test]
    fn random_challenges_stay_inside_the_shard() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for shard_len in [0u64, 1, 2, 100, 5000] {
            for _ in 0..200 {
                let ch = Challenge::random(&mut rng, ContentAddress::default(), 0, shard_len, 64);
                assert!(ch.offset + u64::from(ch.len) <= shard_len);
                assert!(shard_len == 0 || ch.len >= 1);
            }
        }
    }

    #[test]
    fn the_answer_depends_on_nonce_and_bytes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let shard = vec![5u8; 1000];
        let ch = Challenge::random(&mut rng, ContentAddress::default(), 1, 1000, 100);
        let a = expected_answer(&ch, &shard).unwrap();
        let mut ch2 = ch.clone();
        ch2.nonce.0[0] ^= 1;
        assert_ne!(expected_answer(&ch2, &shard).unwrap(), a);
        let mut altered = shard.clone();
        altered[ch.offset as usize] ^= 1;
        assert_ne!(expected_answer(&ch, &altered).unwrap(), a);
    }

    #[test]
    fn failed_audits_become_signed_evidence() {
        let sk = SigningKey::from_bytes(&[3u8; 32].into()).unwrap();
        let holder = HolderId::new("node-a").unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let ch = Challenge::random(&mut rng, ContentAddress::default(), 0, 10, 4);
        let good = Hash32::of(b"x");
        assert_eq!(judge(&holder, &ch, &good, Ok(good), 1, &sk).unwrap(), None);
        let ev = judge(&holder, &ch, &good, Ok(Hash32::of(b"y")), 1, &sk)
            .unwrap()
            .unwrap();
        ev.verify().unwrap();
        let mut forged = ev.clone();
        forged.at_ms = 2;
        assert_eq!(forged.verify(), Err(ManifestError::BadSignature));
    }
}
