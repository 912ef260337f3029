//! # magnet-rounds — the DiLoCo round rules the chain and the workers must agree on
//!
//! A round's money-relevant facts are decided by pure functions that both sides run on the same
//! inputs, so the chain can *recompute* what a worker or leader says instead of trusting it
//! (ADR 0088):
//!
//! * [`leader_index`] — which member of the sorted eligible set leads round `r`, from the block
//!   hash of the round's start height (the chain stores that snapshot; workers read it);
//! * [`WorkClaim`] — what a Δ's producer signs with its node key: (chain id, job, round, base
//!   hash, Δ hash, steps, tokens). The round record carries the claim and signature of every
//!   accepted Δ, and the chain verifies them against the registered node key;
//! * [`ClaimBound`] — steps ≤ H and tokens ≤ steps × batch × sequence, from the job's training
//!   spec on chain: a larger claim is refused, never clipped;
//! * [`raw_weight`] / [`weights_ppm`] — the merge weights as integers, so the chain recomputes
//!   the leader's weights from the signed claims and refuses a record whose weights differ;
//! * [`custody`] — the Merkle tree, shard receipts and audit draws of the storage tier
//!   (ADR 0107).
//!
//! Everything here is deterministic: integers, SHA-256 and secp256k1 only; no floats, clocks,
//! randomness or hash-map iteration.
//!
//! # Security
//! Guarantees: a claim signature binds every field and the chain id, under a domain tag no
//! other MAGNET signature uses, so a claim cannot be replayed into another round, job, chain or
//! message kind; weights depend only on signed claims and on-chain policy. Does not guarantee:
//! that a claimed number of steps was actually trained — only that it does not exceed what the
//! job's round allows (evaluators and audits judge what the Δ is worth).
#![deny(clippy::unwrap_used, clippy::disallowed_types)]

pub mod custody;

use borsh::{BorshDeserialize, BorshSerialize};
use k256::ecdsa::signature::{Signer as _, Verifier as _};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// Domain of the leader seed (unchanged from `magnet-diloco`'s election: a consensus-visible
/// constant).
pub const LEADER_DOMAIN: &str = "MAGNET/diloco/v1/leader";
/// Domain of a [`WorkClaim`] digest.
pub const CLAIM_DOMAIN: &str = "MAGNET/diloco/v1/claim";
/// Sum of the accepted weights of one round.
pub const WEIGHT_SCALE_PPM: u32 = 1_000_000;
/// Quality multiplier 1.0 in basis points.
pub const QUALITY_ONE_BPS: u32 = 10_000;

/// `SHA-256(domain ‖ 0x00 ‖ parts…)`.
pub fn domain_hash(domain: &str, parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(domain.as_bytes());
    h.update([0u8]);
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// How the leader index is picked from the sorted eligible set.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    BorshSerialize,
    BorshDeserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum LeaderRule {
    /// `sorted(eligible)[H(block hash ‖ r) mod N]` — unpredictable before the block, not
    /// grindable by a worker.
    #[default]
    BlockHashSeeded,
    /// `sorted(eligible)[r mod N]` — the paper's rule (§10.3).
    RoundRobin,
}

impl LeaderRule {
    /// Parses the names jobs use on chain and in worker configs: `hash` or `round_robin`.
    pub fn parse(s: &str) -> Option<LeaderRule> {
        match s {
            "hash" | "block_hash_seeded" => Some(LeaderRule::BlockHashSeeded),
            "round_robin" | "round-robin" => Some(LeaderRule::RoundRobin),
            _ => None,
        }
    }

    /// The on-chain name.
    pub fn as_str(&self) -> &'static str {
        match self {
            LeaderRule::BlockHashSeeded => "hash",
            LeaderRule::RoundRobin => "round_robin",
        }
    }
}

/// The index into `sorted(eligible)` of round `round`'s leader, for `n` members
/// (`None` when `n == 0`). With [`LeaderRule::BlockHashSeeded`] the seed is
/// `SHA-256("MAGNET/diloco/v1/leader" ‖ 0 ‖ block hash ‖ round u64 BE)`, its first 16 bytes read
/// as a big-endian `u128`, modulo `n`.
pub fn leader_index(
    n: usize,
    round: u64,
    block_hash: &[u8; 32],
    rule: LeaderRule,
) -> Option<usize> {
    if n == 0 {
        return None;
    }
    let n128 = n as u128;
    let pick = match rule {
        LeaderRule::RoundRobin => u128::from(round) % n128,
        LeaderRule::BlockHashSeeded => {
            let seed = domain_hash(LEADER_DOMAIN, &[block_hash, &round.to_be_bytes()]);
            let mut head = [0u8; 16];
            head.copy_from_slice(&seed[..16]);
            u128::from_be_bytes(head) % n128
        }
    };
    usize::try_from(pick).ok()
}

/// A claim could not be verified or is out of bounds.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The public key is not a compressed secp256k1 point.
    #[error("node key is not a 33-byte compressed secp256k1 key")]
    BadKey,
    /// The signature is not 64 bytes (r ‖ s) or does not verify.
    #[error("claim signature does not verify against the producer's registered node key")]
    BadSignature,
    /// Zero steps or zero tokens.
    #[error("a claim must name at least one step and one token")]
    Empty,
    /// More steps than the job's round has.
    #[error("claims {steps} inner steps but the job's rounds have {max}")]
    TooManySteps {
        /// Claimed.
        steps: u64,
        /// H.
        max: u64,
    },
    /// More tokens than the claimed steps can have seen.
    #[error("claims {tokens} tokens but {steps} steps of batch × sequence allow at most {max}")]
    TooManyTokens {
        /// Claimed tokens.
        tokens: u64,
        /// Claimed steps.
        steps: u64,
        /// steps × batch × seq.
        max: u128,
    },
}

/// What a Δ's producer signs with its node key when it hands the Δ to the round's leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct WorkClaim {
    /// Chain id (a claim signed for a test network is void on another).
    pub chain_id: String,
    /// Job.
    pub job: u64,
    /// Round the Δ is submitted to.
    pub round: u64,
    /// Checkpoint the Δ was trained from.
    pub base_hash: [u8; 32],
    /// Hash of the decoded Δ (`magnet-diloco`'s `delta_hash`).
    pub delta_hash: [u8; 32],
    /// Inner steps trained.
    pub steps: u64,
    /// Tokens trained on.
    pub tokens: u64,
}

impl WorkClaim {
    /// `SHA-256(CLAIM_DOMAIN ‖ 0 ‖ framed[chain_id, job, round, base, Δ, steps, tokens])`, every
    /// field length-prefixed (u32 BE) and integers 8-byte big-endian.
    pub fn digest(&self) -> [u8; 32] {
        let fields: [&[u8]; 7] = [
            self.chain_id.as_bytes(),
            &self.job.to_be_bytes(),
            &self.round.to_be_bytes(),
            &self.base_hash,
            &self.delta_hash,
            &self.steps.to_be_bytes(),
            &self.tokens.to_be_bytes(),
        ];
        framed_hash(CLAIM_DOMAIN, &fields)
    }

    /// Signs the digest (ECDSA secp256k1 over SHA-256, RFC 6979, low-S) → 64 bytes `r ‖ s`.
    pub fn sign(&self, secret: &[u8; 32]) -> Result<[u8; 64], ClaimError> {
        sign_node(secret, &self.digest())
    }

    /// Verifies `sig` (64 bytes) against the compressed node key `pubkey` (33 bytes).
    pub fn verify(&self, pubkey: &[u8], sig: &[u8]) -> Result<(), ClaimError> {
        verify_node(pubkey, &self.digest(), sig)
    }
}

/// Domain of a [`TrialClaim`] digest.
pub const TRIAL_DOMAIN: &str = "MAGNET/research/v1/trial";

/// What a research job's trial worker signs with its node key when it hands a trial's result
/// to the job's coordinator (ADR 0111): the trial's identity and outcome, bound to the chain and
/// the job. Same scheme as [`WorkClaim`] (ECDSA secp256k1 over a domain-separated, framed
/// SHA-256 digest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct TrialClaim {
    /// Chain id.
    pub chain_id: String,
    /// Job.
    pub job: u64,
    /// SHA-256 of the work unit (data hash, seed, folds, pipeline config).
    pub unit_hash: [u8; 32],
    /// SHA-256 of the canonical bytes of the trial's out-of-fold predictions.
    pub oof_hash: [u8; 32],
    /// CV log-loss × 10^6, rounded.
    pub cv_loss_micro: u64,
}

impl TrialClaim {
    /// `SHA-256(TRIAL_DOMAIN ‖ 0 ‖ framed[chain_id, job, unit, oof, loss])`, every field
    /// length-prefixed (u32 BE) and integers 8-byte big-endian.
    pub fn digest(&self) -> [u8; 32] {
        let fields: [&[u8]; 5] = [
            self.chain_id.as_bytes(),
            &self.job.to_be_bytes(),
            &self.unit_hash,
            &self.oof_hash,
            &self.cv_loss_micro.to_be_bytes(),
        ];
        framed_hash(TRIAL_DOMAIN, &fields)
    }

    /// Signs the digest → 64 bytes `r ‖ s`.
    pub fn sign(&self, secret: &[u8; 32]) -> Result<[u8; 64], ClaimError> {
        sign_node(secret, &self.digest())
    }

    /// Verifies `sig` (64 bytes) against the compressed node key `pubkey` (33 bytes).
    pub fn verify(&self, pubkey: &[u8], sig: &[u8]) -> Result<(), ClaimError> {
        verify_node(pubkey, &self.digest(), sig)
    }
}

/// `domain_hash(domain, framed fields)`: every field length-prefixed (u32 BE).
pub(crate) fn framed_hash(domain: &str, fields: &[&[u8]]) -> [u8; 32] {
    let mut framed = Vec::with_capacity(160);
    for f in fields {
        framed.extend_from_slice(&(f.len() as u32).to_be_bytes());
        framed.extend_from_slice(f);
    }
    domain_hash(domain, &[&framed])
}

/// Signs `msg` with a node key (ECDSA secp256k1 over SHA-256, RFC 6979, low-S) → `r ‖ s`.
pub(crate) fn sign_node(secret: &[u8; 32], msg: &[u8]) -> Result<[u8; 64], ClaimError> {
    let key = k256::ecdsa::SigningKey::from_slice(secret).map_err(|_| ClaimError::BadKey)?;
    let sig: k256::ecdsa::Signature = key.sign(msg);
    let mut out = [0u8; 64];
    out.copy_from_slice(&sig.to_bytes());
    Ok(out)
}

/// Verifies `sig` (64 bytes) over `msg` against a compressed node key (33 bytes).
pub(crate) fn verify_node(pubkey: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), ClaimError> {
    if pubkey.len() != 33 {
        return Err(ClaimError::BadKey);
    }
    let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(pubkey).map_err(|_| ClaimError::BadKey)?;
    let sig = k256::ecdsa::Signature::from_slice(sig).map_err(|_| ClaimError::BadSignature)?;
    key.verify(msg, &sig).map_err(|_| ClaimError::BadSignature)
}

/// The most one Δ may claim, from the job's training spec on chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClaimBound {
    /// H: inner steps per round.
    pub inner_steps: u64,
    /// Sequences per inner step.
    pub batch_size: u64,
    /// Tokens per sequence.
    pub seq_len: u64,
}

impl ClaimBound {
    /// `1 ≤ steps ≤ H` and `1 ≤ tokens ≤ steps × batch × seq`.
    pub fn check(&self, steps: u64, tokens: u64) -> Result<(), ClaimError> {
        if steps == 0 || tokens == 0 {
            return Err(ClaimError::Empty);
        }
        if steps > self.inner_steps {
            return Err(ClaimError::TooManySteps {
                steps,
                max: self.inner_steps,
            });
        }
        let max = u128::from(steps) * u128::from(self.batch_size) * u128::from(self.seq_len);
        if u128::from(tokens) > max {
            return Err(ClaimError::TooManyTokens { tokens, steps, max });
        }
        Ok(())
    }
}

/// The integer weight numerator of one Δ:
/// `data_size × quality_bps × (decay_bps / 10000)^min(staleness, max_staleness)`, each decay step
/// floored.
pub fn raw_weight(
    data_size: u64,
    quality_bps: u32,
    staleness: u32,
    stale_decay_bps: u32,
    max_staleness: u32,
) -> u128 {
    let mut raw = u128::from(data_size) * u128::from(quality_bps);
    for _ in 0..staleness.min(max_staleness) {
        raw = raw * u128::from(stale_decay_bps) / 10_000;
    }
    raw
}

/// Integer weights in ppm for `raws` (in the caller's order — node-id order in a round):
/// `⌊raw_i · 10^6 / Σ raw⌋`, and the rounding remainder to the heaviest (ties: the first). All
/// zero (or empty) input gives all zeros. The result sums to [`WEIGHT_SCALE_PPM`] otherwise.
pub fn weights_ppm(raws: &[u128]) -> Vec<u32> {
    let total = raws.iter().fold(0u128, |a, r| a.saturating_add(*r));
    if total == 0 {
        return vec![0; raws.len()];
    }
    let scale = u128::from(WEIGHT_SCALE_PPM);
    let mut out: Vec<u32> = raws
        .iter()
        .map(|&r| {
            // r ≤ total, so the quotient is ≤ 1e6. r·1e6 cannot overflow for r < 2^108; above
            // that scale both sides down (still exact in ordering, floor on each).
            let q = r
                .checked_mul(scale)
                .map(|x| x / total)
                .unwrap_or_else(|| r / (total / scale).max(1));
            u32::try_from(q.min(scale)).unwrap_or(WEIGHT_SCALE_PPM)
        })
        .collect();
    let assigned: u32 = out.iter().fold(0u32, |a, w| a.saturating_add(*w));
    let mut heaviest = 0usize;
    for (i, r) in raws.iter().enumerate() {
        if *r > raws[heaviest] {
            heaviest = i;
        }
    }
    if let Some(w) = out.get_mut(heaviest) {
        *w = w.saturating_add(WEIGHT_SCALE_PPM.saturating_sub(assigned));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn claim() -> WorkClaim {
        WorkClaim {
            chain_id: "magnet-devnet-1".into(),
            job: 1,
            round: 3,
            base_hash: [1; 32],
            delta_hash: [2; 32],
            steps: 8,
            tokens: 8 * 4 * 64,
        }
    }

    fn pubkey(secret: &[u8; 32]) -> Vec<u8> {
        let k = k256::ecdsa::SigningKey::from_slice(secret).expect("key");
        k.verifying_key().to_encoded_point(true).as_bytes().to_vec()
    }

    #[test]
    fn a_signed_trial_verifies_and_any_changed_field_does_not() {
        let sk = [9u8; 32];
        let t = TrialClaim {
            chain_id: "magnet-devnet-1".into(),
            job: 4,
            unit_hash: [3; 32],
            oof_hash: [4; 32],
            cv_loss_micro: 693_147,
        };
        let sig = t.sign(&sk).expect("sign");
        t.verify(&pubkey(&sk), &sig).expect("verifies");
        type Change = (&'static str, Box<dyn Fn(&mut TrialClaim)>);
        let changes: Vec<Change> = vec![
            ("chain_id", Box::new(|c| c.chain_id = "other-1".into())),
            ("job", Box::new(|c| c.job += 1)),
            ("unit_hash", Box::new(|c| c.unit_hash[0] ^= 1)),
            ("oof_hash", Box::new(|c| c.oof_hash[31] ^= 1)),
            ("cv_loss_micro", Box::new(|c| c.cv_loss_micro += 1)),
        ];
        for (what, f) in changes {
            let mut d = t.clone();
            f(&mut d);
            assert_eq!(
                d.verify(&pubkey(&sk), &sig),
                Err(ClaimError::BadSignature),
                "{what}"
            );
        }
        // The daemon signs exactly these framed fields.
        assert_eq!(
            t.digest(),
            framed_hash(
                TRIAL_DOMAIN,
                &[
                    b"magnet-devnet-1",
                    &4u64.to_be_bytes(),
                    &[3; 32],
                    &[4; 32],
                    &693_147u64.to_be_bytes()
                ]
            )
        );
    }

    #[test]
    fn a_signed_claim_verifies_and_any_changed_field_does_not() {
        let sk = [7u8; 32];
        let c = claim();
        let sig = c.sign(&sk).expect("sign");
        c.verify(&pubkey(&sk), &sig).expect("verifies");
        type Change = (&'static str, Box<dyn Fn(&mut WorkClaim)>);
        let changes: Vec<Change> = vec![
            ("chain_id", Box::new(|c| c.chain_id = "other-1".into())),
            ("job", Box::new(|c| c.job += 1)),
            ("round", Box::new(|c| c.round += 1)),
            ("base_hash", Box::new(|c| c.base_hash[0] ^= 1)),
            ("delta_hash", Box::new(|c| c.delta_hash[31] ^= 1)),
            ("steps", Box::new(|c| c.steps += 1)),
            ("tokens", Box::new(|c| c.tokens -= 1)),
        ];
        for (what, f) in changes {
            let mut d = c.clone();
            f(&mut d);
            assert_eq!(
                d.verify(&pubkey(&sk), &sig),
                Err(ClaimError::BadSignature),
                "{what}"
            );
        }
        assert_eq!(
            c.verify(&pubkey(&[8u8; 32]), &sig),
            Err(ClaimError::BadSignature),
            "another node's key"
        );
        assert_eq!(c.verify(&[5u8; 33], &sig), Err(ClaimError::BadKey));
        assert_eq!(
            c.verify(&pubkey(&sk), &sig[..63]),
            Err(ClaimError::BadSignature)
        );
    }

    #[test]
    fn claim_digest_conformance_vector() {
        // Pinned: a change of the signed bytes is a consensus-visible change.
        let d = claim().digest();
        let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, CLAIM_VECTOR);
    }
    const CLAIM_VECTOR: &str = "ca2f26e74e0a0a3390bc794c390781f6d9027bb427932284565dfe6394d9cac5";

    #[test]
    fn claims_over_the_rounds_bound_are_refused_not_clipped() {
        let b = ClaimBound {
            inner_steps: 8,
            batch_size: 4,
            seq_len: 64,
        };
        assert_eq!(b.check(8, 8 * 4 * 64), Ok(()));
        assert_eq!(b.check(1, 1), Ok(()));
        let table = [
            (0, 10, ClaimError::Empty),
            (3, 0, ClaimError::Empty),
            (9, 10, ClaimError::TooManySteps { steps: 9, max: 8 }),
            (
                800,
                204_800,
                ClaimError::TooManySteps { steps: 800, max: 8 },
            ),
            (
                2,
                2 * 4 * 64 + 1,
                ClaimError::TooManyTokens {
                    tokens: 513,
                    steps: 2,
                    max: 512,
                },
            ),
        ];
        for (steps, tokens, want) in table {
            assert_eq!(b.check(steps, tokens), Err(want), "{steps} {tokens}");
        }
    }

    #[test]
    fn leader_index_matches_the_pinned_election_vector() {
        // The same vector `magnet-diloco`'s election pinned before the rule moved here.
        let b = domain_hash("block", &[b"conformance"]);
        let got: Vec<usize> = (0..8u64)
            .filter_map(|r| leader_index(10, r, &b, LeaderRule::BlockHashSeeded))
            .collect();
        assert_eq!(got, [1, 7, 5, 1, 3, 6, 4, 7]);
        assert_eq!(leader_index(0, 1, &b, LeaderRule::RoundRobin), None);
        assert_eq!(leader_index(3, 7, &b, LeaderRule::RoundRobin), Some(1));
    }

    #[test]
    fn staleness_halves_the_weight_per_merge_up_to_the_limit() {
        assert_eq!(raw_weight(1000, 10_000, 0, 5000, 2), 10_000_000);
        assert_eq!(raw_weight(1000, 10_000, 1, 5000, 2), 5_000_000);
        assert_eq!(raw_weight(1000, 10_000, 2, 5000, 2), 2_500_000);
        assert_eq!(raw_weight(1000, 10_000, 5, 5000, 2), 2_500_000);
    }

    proptest! {
        #[test]
        fn weights_sum_to_a_million_and_follow_the_raw_order(
            raws in proptest::collection::vec(0u128..1u128 << 100, 1..20)
        ) {
            let w = weights_ppm(&raws);
            prop_assert_eq!(w.len(), raws.len());
            if raws.iter().all(|r| *r == 0) {
                prop_assert!(w.iter().all(|x| *x == 0));
            } else {
                prop_assert_eq!(w.iter().map(|x| u64::from(*x)).sum::<u64>(), 1_000_000);
                // Floors preserve order except for the one remainder, which only raises the
                // heaviest.
                for i in 0..raws.len() {
                    for j in 0..raws.len() {
                        if raws[i] > raws[j] {
                            prop_assert!(w[i] >= w[j]);
                        }
                    }
                }
            }
        }
    }
}
