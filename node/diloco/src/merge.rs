//! The outer step: screen the pseudo-gradients, weigh them, and apply Nesterov SGD.
//!
//! ```text
//! g  = Σ_i w_i Δ_i                       (w_i = weight_ppm_i / 1e6, Σ weight_ppm = 1e6)
//! m' = μ·m + g                           (PyTorch SGD(nesterov=True), dampening 0)
//! θ' = θ − η·(g + μ·m')
//! ```
//!
//! Weights are integers so they can be recorded on chain and re-used bit for bit by a verifier —
//! the chain recomputes them from the signed claims with the same functions
//! ([`magnet_rounds::raw_weight`], [`magnet_rounds::weights_ppm`]):
//! `raw_i = data_size_i × quality_bps_i × decay^s_i / 10000^s_i` (integer, `s_i` = staleness in
//! merges), `weight_ppm_i = ⌊raw_i·10^6 / Σ raw⌋`, and the rounding remainder goes to the
//! heaviest contributor (ties: lowest node id). With η = 1, μ = 0 this is FedAvg (paper Eq. 2).
//! The weights are computed over the *final* accepted set: a share that rounds to 0 ppm is
//! rejected ([`RejectReason::ZeroWeight`]) and the weights of the rest are computed again, until
//! no accepted share is 0 — so recomputing over the recorded accepted entries gives the
//! recorded weights.
//!
//! Screening, in this order, each failure recorded with its reason ([`RejectReason`]):
//! duplicate node, wrong length, Δ hash ≠ declared hash, NaN/Inf, too stale, the same Δ under
//! several nodes (all copies rejected), a zero Δ (‖Δ‖ = 0), norm > factor × or < 1/factor × the
//! median norm of the non-zero survivors, zero weight.
//!
//! # Guarantees
//! * [`merge`] is a pure function of `(base, contributions, policy, job, round, leader)`; input
//!   order does not matter (contributions are processed sorted by node id), so
//!   [`verify_merge`] recomputes the same bits and the same [`RoundRecord`] anywhere.
//! * A rejected contribution earns no weight and touches no parameter.
//! * Bad input gives a rejection or a typed [`MergeError`], never a panic.
//!
//! # Non-guarantees
//! Bit-identical results across CPU architectures rely on IEEE-754 f32/f64 without fused
//! multiply-add contraction, which Rust guarantees for this scalar code.

use std::collections::{BTreeMap, BTreeSet};

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};

use crate::checkpoint::Checkpoint;
use crate::types::{delta_hash, Digest, NodeId};

/// Total of all weights in a record.
pub const WEIGHT_SCALE_PPM: u32 = magnet_rounds::WEIGHT_SCALE_PPM;
/// Domain of [`RoundRecord::hash`].
pub const RECORD_DOMAIN: &str = "MAGNET/diloco/v1/round-record";

/// The merge rule, in integers so it can live on chain and in the [`RoundRecord`].
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize,
)]
pub struct MergePolicy {
    /// Outer learning rate η in thousandths (default 700 = 0.7).
    pub lr_permille: u32,
    /// Outer Nesterov momentum μ in thousandths (default 900 = 0.9).
    pub momentum_permille: u32,
    /// A Δ whose L2 norm exceeds this × the median norm is rejected (thousandths; 4000 = 4×).
    pub outlier_factor_permille: u32,
    /// Contributions trained on a base more than this many merges old are rejected.
    pub max_staleness: u32,
    /// Weight multiplier per merge of staleness, in basis points (5000 = halve per merge).
    pub stale_decay_bps: u32,
    /// Fewer accepted contributions than this → no merge.
    pub min_contributions: u32,
    /// 0: the merged parameters are exact (workers download them as fp32). N > 0: the outer
    /// step `θ − θ'` is quantized to int8 with one scale per N values before it is applied,
    /// so θ' = θ − decode(step) and workers that hold θ download only the int8 step
    /// ([`MergeOutput::step`], ≈ ¼ of the fp32 bytes). The momentum stays exact.
    #[serde(default)]
    pub update_chunk: u32,
}

impl Default for MergePolicy {
    fn default() -> Self {
        Self {
            lr_permille: 700,
            momentum_permille: 900,
            outlier_factor_permille: 4000,
            max_staleness: 2,
            stale_decay_bps: 5000,
            min_contributions: 1,
            update_chunk: 0,
        }
    }
}

impl MergePolicy {
    /// Checks ranges: 0 < η ≤ 10, 0 ≤ μ < 1, factor ≥ 1, decay ≤ 1, staleness ≤ 16, min ≥ 1.
    pub fn validate(&self) -> Result<(), MergeError> {
        let bad = |what: &'static str| Err(MergeError::InvalidPolicy { what });
        if self.lr_permille == 0 || self.lr_permille > 10_000 {
            return bad("lr_permille must be in 1..=10000");
        }
        if self.momentum_permille >= 1000 {
            return bad("momentum_permille must be below 1000");
        }
        if self.outlier_factor_permille < 1000 {
            return bad("outlier_factor_permille must be at least 1000");
        }
        if self.stale_decay_bps > 10_000 {
            return bad("stale_decay_bps must be at most 10000");
        }
        if self.max_staleness > 16 {
            return bad("max_staleness must be at most 16");
        }
        if self.min_contributions == 0 {
            return bad("min_contributions must be at least 1");
        }
        if self.update_chunk > 1 << 20 {
            return bad("update_chunk must be at most 1048576");
        }
        Ok(())
    }

    fn lr(&self) -> f64 {
        f64::from(self.lr_permille) / 1000.0
    }

    fn mu(&self) -> f64 {
        f64::from(self.momentum_permille) / 1000.0
    }
}

/// One worker's pseudo-gradient with what the leader knows about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Contribution {
    /// Sender.
    pub node: NodeId,
    /// The Δ hash announced in GradientReady (checked against the data).
    pub declared_hash: Digest,
    /// Δ_i = θ_base − θ_i, decoded to f32.
    pub delta: Vec<f32>,
    /// Tokens (or samples) trained on in the inner steps.
    pub data_size: u64,
    /// On-chain quality score in basis points (10000 = 1.0).
    pub quality_bps: u32,
    /// How many merges older than the round's base this Δ's base is (0 = fresh).
    pub staleness: u32,
    /// Checkpoint the Δ was trained from (the claim's base; carried into the record).
    pub base_hash: Digest,
    /// Inner steps the producer claims (carried into the record).
    pub steps: u64,
    /// The producer's claim signature, hex (carried into the record).
    pub signature: String,
}

impl Contribution {
    /// A fresh contribution whose declared hash is the hash of `delta` (no claim: zero base,
    /// zero steps, empty signature).
    pub fn new(node: NodeId, delta: Vec<f32>, data_size: u64, quality_bps: u32) -> Self {
        Self {
            node,
            declared_hash: delta_hash(&delta),
            delta,
            data_size,
            quality_bps,
            staleness: 0,
            base_hash: Digest::default(),
            steps: 0,
            signature: String::new(),
        }
    }
}

/// Why a contribution was rejected (recorded on chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum RejectReason {
    /// The node already has a contribution in this merge.
    DuplicateNode,
    /// Δ length differs from the checkpoint's.
    WrongLength {
        /// Parameters in the base checkpoint.
        expected: u64,
        /// Values in Δ.
        got: u64,
    },
    /// The data does not hash to the declared Δ hash.
    HashMismatch {
        /// Hash of the data received.
        computed: Digest,
    },
    /// A NaN or ±Inf value.
    NonFinite {
        /// Index of the first non-finite value.
        index: u64,
    },
    /// Trained on a base older than `max_staleness` merges.
    TooStale {
        /// Its staleness.
        staleness: u32,
        /// The policy's limit.
        max: u32,
    },
    /// The same Δ was submitted by more than one node; every copy is rejected.
    DuplicateDelta,
    /// ‖Δ‖ > factor × median ‖Δ‖.
    NormOutlier {
        /// ‖Δ‖ in millionths (saturating).
        norm_micro: u64,
        /// Median norm of the screened contributions, in millionths (saturating).
        median_micro: u64,
    },
    /// data size × quality × staleness decay is zero, or its share rounds to 0 ppm.
    ZeroWeight,
    /// ‖Δ‖ = 0 (the Δ moves nothing), or ‖Δ‖ < median ‖Δ‖ / factor.
    NormTooSmall {
        /// ‖Δ‖ in millionths (saturating).
        norm_micro: u64,
        /// Median norm of the other non-zero contributions, in millionths (0 for a zero Δ).
        median_micro: u64,
    },
}

/// An accepted contribution in a [`RoundRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct AcceptedEntry {
    /// Contributor.
    pub node: NodeId,
    /// Hash of its Δ.
    pub delta_hash: Digest,
    /// Its weight; all accepted weights sum to [`WEIGHT_SCALE_PPM`].
    pub weight_ppm: u32,
    /// Declared data size.
    pub data_size: u64,
    /// Quality score used.
    pub quality_bps: u32,
    /// Staleness used.
    pub staleness: u32,
    /// Checkpoint the Δ was trained from (signed in the claim).
    pub base_hash: Digest,
    /// Inner steps claimed (signed in the claim).
    pub steps: u64,
    /// The producer's claim signature (hex, 64 bytes `r ‖ s`; empty when unsigned).
    pub signature: String,
}

/// A rejected contribution in a [`RoundRecord`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct RejectedEntry {
    /// Contributor.
    pub node: NodeId,
    /// The Δ hash it declared.
    pub delta_hash: Digest,
    /// Why.
    pub reason: RejectReason,
}

/// Everything needed to re-check one merge; the body of `MsgRecordRound`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, BorshSerialize, BorshDeserialize)]
pub struct RoundRecord {
    /// Research job the model belongs to.
    pub job_id: u64,
    /// DiLoCo round number.
    pub round: u64,
    /// The elected leader who merged.
    pub leader: NodeId,
    /// Hash of the checkpoint the round started from.
    pub base_hash: Digest,
    /// Hash of the merged checkpoint (params + momentum).
    pub merged_hash: Digest,
    /// The merge rule used.
    pub policy: MergePolicy,
    /// Accepted contributions, sorted by node id.
    pub accepted: Vec<AcceptedEntry>,
    /// Rejected contributions with reasons, sorted by node id.
    pub rejected: Vec<RejectedEntry>,
}

impl RoundRecord {
    /// Canonical bytes (borsh).
    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).unwrap_or_default()
    }

    /// Parses canonical bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MergeError> {
        borsh::from_slice(bytes).map_err(|e| MergeError::BadRecord {
            detail: e.to_string(),
        })
    }

    /// Domain-separated hash of the canonical bytes.
    pub fn hash(&self) -> Digest {
        Digest::domain_hash(RECORD_DOMAIN, &[&self.to_bytes()])
    }
}

/// A merge could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    /// The policy is out of range.
    #[error("invalid merge policy: {what}")]
    InvalidPolicy {
        /// Which field.
        what: &'static str,
    },
    /// Too few contributions survived screening.
    #[error("only {accepted} contribution(s) accepted, the policy needs {needed}; rejected: {rejected:?}")]
    NotEnoughContributions {
        /// Accepted count.
        accepted: usize,
        /// Policy minimum.
        needed: u32,
        /// The rejections.
        rejected: Vec<RejectedEntry>,
    },
    /// The base checkpoint's params and momentum differ in length.
    #[error("base checkpoint is malformed: params {params} values, momentum {momentum}")]
    MalformedBase {
        /// params length.
        params: usize,
        /// momentum length.
        momentum: usize,
    },
    /// Record bytes could not be decoded.
    #[error("round record does not decode: {detail}")]
    BadRecord {
        /// Decoder message.
        detail: String,
    },
}

/// A merge result: the new checkpoint and its record.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeOutput {
    /// θ' and m'.
    pub checkpoint: Checkpoint,
    /// With `policy.update_chunk > 0`: the int8 outer step, `θ' = θ − step.decode()` bit for
    /// bit ([`apply_step`]); what a worker holding θ downloads instead of θ'.
    pub step: Option<crate::compress::Compressed>,
    /// What `MsgRecordRound` carries.
    pub record: RoundRecord,
}

/// Who/which round a merge is for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MergeMeta {
    /// Research job.
    pub job_id: u64,
    /// Round.
    pub round: u64,
    /// Leader.
    pub leader: NodeId,
}

fn l2_norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

fn to_micro(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        // `as` saturates for floats → ints.
        (x * 1e6).round() as u64
    } else {
        0
    }
}

/// The integer weight numerator: data × quality × decay^s / 10000^s ([`magnet_rounds::raw_weight`]).
fn raw_weight(c: &Contribution, policy: &MergePolicy) -> u128 {
    magnet_rounds::raw_weight(
        c.data_size,
        c.quality_bps,
        c.staleness,
        policy.stale_decay_bps,
        policy.max_staleness,
    )
}

/// Screens the contributions and computes integer weights. Returns accepted (index into the
/// sorted input, entry) and rejected entries.
fn screen(
    base_len: usize,
    sorted: &[&Contribution],
    policy: &MergePolicy,
) -> (Vec<(usize, AcceptedEntry)>, Vec<RejectedEntry>) {
    let mut rejected = Vec::new();
    let mut survivors: Vec<usize> = Vec::new();
    let mut seen_nodes = BTreeSet::new();
    let reject = |rejected: &mut Vec<RejectedEntry>, c: &Contribution, reason| {
        rejected.push(RejectedEntry {
            node: c.node.clone(),
            delta_hash: c.declared_hash,
            reason,
        });
    };
    for (i, c) in sorted.iter().enumerate() {
        if !seen_nodes.insert(c.node.clone()) {
            reject(&mut rejected, c, RejectReason::DuplicateNode);
            continue;
        }
        if c.delta.len() != base_len {
            reject(
                &mut rejected,
                c,
                RejectReason::WrongLength {
                    expected: base_len as u64,
                    got: c.delta.len() as u64,
                },
            );
            continue;
        }
        let computed = delta_hash(&c.delta);
        if computed != c.declared_hash {
            reject(&mut rejected, c, RejectReason::HashMismatch { computed });
            continue;
        }
        if let Some(index) = c.delta.iter().position(|x| !x.is_finite()) {
            reject(
                &mut rejected,
                c,
                RejectReason::NonFinite {
                    index: index as u64,
                },
            );
            continue;
        }
        if c.staleness > policy.max_staleness {
            reject(
                &mut rejected,
                c,
                RejectReason::TooStale {
                    staleness: c.staleness,
                    max: policy.max_staleness,
                },
            );
            continue;
        }
        survivors.push(i);
    }
    // The same Δ under several nodes: reject every copy.
    let mut by_hash: BTreeMap<Digest, usize> = BTreeMap::new();
    for &i in &survivors {
        *by_hash.entry(sorted[i].declared_hash).or_default() += 1;
    }
    let mut unique = Vec::new();
    for i in survivors {
        if by_hash.get(&sorted[i].declared_hash).copied().unwrap_or(0) > 1 {
            reject(&mut rejected, sorted[i], RejectReason::DuplicateDelta);
        } else {
            unique.push(i);
        }
    }
    // A Δ that moves nothing (norm 0: the lazy worker's) is rejected before the median, so it
    // cannot drag the median down and make honest Δs look like outliers.
    let mut norms: Vec<(usize, f64)> = Vec::with_capacity(unique.len());
    for &i in &unique {
        let n = l2_norm(&sorted[i].delta);
        if n > 0.0 {
            norms.push((i, n));
        } else {
            reject(
                &mut rejected,
                sorted[i],
                RejectReason::NormTooSmall {
                    norm_micro: 0,
                    median_micro: 0,
                },
            );
        }
    }
    // Norm outliers, both ways, against the (lower) median of the rest.
    let mut sorted_norms: Vec<f64> = norms.iter().map(|&(_, n)| n).collect();
    sorted_norms.sort_by(f64::total_cmp);
    let median = if sorted_norms.is_empty() {
        0.0
    } else {
        sorted_norms[(sorted_norms.len() - 1) / 2]
    };
    let factor = f64::from(policy.outlier_factor_permille) / 1000.0;
    let mut weighed = Vec::new();
    for (i, norm) in norms {
        if norm > factor * median {
            reject(
                &mut rejected,
                sorted[i],
                RejectReason::NormOutlier {
                    norm_micro: to_micro(norm),
                    median_micro: to_micro(median),
                },
            );
            continue;
        }
        if norm * factor < median {
            reject(
                &mut rejected,
                sorted[i],
                RejectReason::NormTooSmall {
                    norm_micro: to_micro(norm),
                    median_micro: to_micro(median),
                },
            );
            continue;
        }
        let raw = raw_weight(sorted[i], policy);
        if raw == 0 {
            reject(&mut rejected, sorted[i], RejectReason::ZeroWeight);
            continue;
        }
        weighed.push((i, raw));
    }
    // Integer weights summing to exactly WEIGHT_SCALE_PPM, over the final accepted set: a
    // share that rounds to zero ppm earns nothing and is rejected, and the weights of the rest
    // are computed again (each pass removes at least one entry, so this ends).
    let weights = loop {
        let raws: Vec<u128> = weighed.iter().map(|&(_, r)| r).collect();
        let ppm = magnet_rounds::weights_ppm(&raws);
        if !ppm.contains(&0) {
            break ppm;
        }
        let mut kept = Vec::with_capacity(weighed.len());
        for (&(i, raw), w) in weighed.iter().zip(&ppm) {
            if *w == 0 {
                reject(&mut rejected, sorted[i], RejectReason::ZeroWeight);
            } else {
                kept.push((i, raw));
            }
        }
        weighed = kept;
    };
    let accepted: Vec<(usize, AcceptedEntry)> = weighed
        .iter()
        .zip(weights)
        .map(|(&(i, _), weight_ppm)| {
            let c = sorted[i];
            (
                i,
                AcceptedEntry {
                    node: c.node.clone(),
                    delta_hash: c.declared_hash,
                    weight_ppm,
                    data_size: c.data_size,
                    quality_bps: c.quality_bps,
                    staleness: c.staleness,
                    base_hash: c.base_hash,
                    steps: c.steps,
                    signature: c.signature.clone(),
                },
            )
        })
        .collect();
    rejected.sort_by(|a, b| a.node.cmp(&b.node));
    (accepted, rejected)
}

/// Merges `contributions` into `base` under `policy` (see the module docs for the math).
pub fn merge(
    base: &Checkpoint,
    contributions: &[Contribution],
    policy: &MergePolicy,
    meta: &MergeMeta,
) -> Result<MergeOutput, MergeError> {
    policy.validate()?;
    if base.params.len() != base.momentum.len() {
        return Err(MergeError::MalformedBase {
            params: base.params.len(),
            momentum: base.momentum.len(),
        });
    }
    let mut sorted: Vec<&Contribution> = contributions.iter().collect();
    sorted.sort_by(|a, b| {
        a.node
            .cmp(&b.node)
            .then(a.declared_hash.cmp(&b.declared_hash))
    });
    let (accepted, rejected) = screen(base.len(), &sorted, policy);
    if accepted.len() < policy.min_contributions as usize {
        return Err(MergeError::NotEnoughContributions {
            accepted: accepted.len(),
            needed: policy.min_contributions,
            rejected,
        });
    }
    let weighted: Vec<(u32, &[f32])> = accepted
        .iter()
        .map(|(i, e)| (e.weight_ppm, sorted[*i].delta.as_slice()))
        .collect();
    let (checkpoint, step) = outer_step(base, &weighted, policy);
    let record = RoundRecord {
        job_id: meta.job_id,
        round: meta.round,
        leader: meta.leader.clone(),
        base_hash: base.hash(),
        merged_hash: checkpoint.hash(),
        policy: *policy,
        accepted: accepted.into_iter().map(|(_, e)| e).collect(),
        rejected,
    };
    Ok(MergeOutput {
        checkpoint,
        step,
        record,
    })
}

/// The outer step over weighted Δs given in node order: `g = Σ w_i Δ_i` (f64, in that
/// order), then Nesterov SGD (and the optional int8 step). Shared by [`merge`] and
/// [`verify_accepted`] so both compute the same bits.
fn outer_step(
    base: &Checkpoint,
    weighted: &[(u32, &[f32])],
    policy: &MergePolicy,
) -> (Checkpoint, Option<crate::compress::Compressed>) {
    // g = Σ w_i Δ_i, accumulated in f64 in node order.
    let mut g = vec![0f64; base.len()];
    for (weight_ppm, delta) in weighted {
        let w = f64::from(*weight_ppm) / f64::from(WEIGHT_SCALE_PPM);
        for (acc, &d) in g.iter_mut().zip(delta.iter()) {
            *acc += w * f64::from(d);
        }
    }
    let (lr, mu) = (policy.lr(), policy.mu());
    let mut params = Vec::with_capacity(base.len());
    let mut momentum = Vec::with_capacity(base.len());
    for ((&theta, &m), &gj) in base.params.iter().zip(&base.momentum).zip(&g) {
        let g32 = gj as f32;
        let m_new = (mu * f64::from(m) + f64::from(g32)) as f32;
        let update = f64::from(g32) + mu * f64::from(m_new);
        params.push((f64::from(theta) - lr * update) as f32);
        momentum.push(m_new);
    }
    let step = (policy.update_chunk > 0).then(|| {
        let exact: Vec<f32> = base
            .params
            .iter()
            .zip(&params)
            .map(|(&theta, &p)| theta - p)
            .collect();
        let step = crate::compress::quantize_dense(&exact, policy.update_chunk);
        params = apply_step(&base.params, &step);
        step
    });
    (Checkpoint { params, momentum }, step)
}

/// θ' = θ − decode(step), element by element in f32: what a worker computes from the int8
/// outer step it downloaded, and what [`merge`] itself uses, so both agree bit for bit.
/// Values past the end of `step` are left unchanged.
pub fn apply_step(base: &[f32], step: &crate::compress::Compressed) -> Vec<f32> {
    let d = step.decode();
    base.iter()
        .enumerate()
        .map(|(j, &theta)| theta - d.get(j).copied().unwrap_or(0.0))
        .collect()
}

/// A recomputed merge disagrees with a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The base checkpoint is not the one the record names.
    #[error("base checkpoint hash {actual} differs from the recorded base {recorded}")]
    BaseMismatch {
        /// Recorded.
        recorded: Digest,
        /// Of the checkpoint given.
        actual: Digest,
    },
    /// The recomputation failed.
    #[error("recomputing the merge failed: {0}")]
    Merge(#[from] MergeError),
    /// Recomputed merged checkpoint hash differs.
    #[error("recomputed merged hash {recomputed} differs from the recorded {recorded}")]
    MergedMismatch {
        /// Recorded.
        recorded: Digest,
        /// Recomputed.
        recomputed: Digest,
    },
    /// Accepted/rejected lists or weights differ.
    #[error("recorded {field} differ from the recomputation")]
    RecordMismatch {
        /// Which part.
        field: &'static str,
    },
}

/// Recomputes the merge from its inputs and checks it against `record` (anyone can run this:
/// the inputs are the base checkpoint and the Δs named in the record, fetched by hash).
pub fn verify_merge(
    base: &Checkpoint,
    contributions: &[Contribution],
    record: &RoundRecord,
) -> Result<Checkpoint, VerifyError> {
    let actual = base.hash();
    if actual != record.base_hash {
        return Err(VerifyError::BaseMismatch {
            recorded: record.base_hash,
            actual,
        });
    }
    let meta = MergeMeta {
        job_id: record.job_id,
        round: record.round,
        leader: record.leader.clone(),
    };
    let out = merge(base, contributions, &record.policy, &meta)?;
    if out.record.accepted != record.accepted {
        return Err(VerifyError::RecordMismatch {
            field: "accepted contributions or weights",
        });
    }
    if out.record.rejected != record.rejected {
        return Err(VerifyError::RecordMismatch {
            field: "rejected contributions",
        });
    }
    if out.record.merged_hash != record.merged_hash {
        return Err(VerifyError::MergedMismatch {
            recorded: record.merged_hash,
            recomputed: out.record.merged_hash,
        });
    }
    Ok(out.checkpoint)
}

/// Re-checks a recorded merge from its **accepted** Δs alone (what a merge auditor can fetch:
/// the record's rejected Δs earned nothing and touched no parameter, and may be gone):
/// the base must hash to the recorded base; each Δ (`deltas[i]` for `record.accepted[i]`) must
/// have the base's length and hash to its recorded Δ hash; the weights recomputed from the
/// recorded claims (data size, quality, staleness, under `record.policy`) must equal the
/// recorded weights; and the outer step with those weights must give the recorded merged hash.
/// Unlike [`verify_merge`] it does not screen again, so an honest leader's record always
/// re-checks even when the median norm of the accepted set alone differs from the screened
/// set's. Returns the recomputed merged checkpoint.
pub fn verify_accepted(
    base: &Checkpoint,
    deltas: &[Vec<f32>],
    record: &RoundRecord,
) -> Result<Checkpoint, VerifyError> {
    record.policy.validate()?;
    let actual = base.hash();
    if actual != record.base_hash {
        return Err(VerifyError::BaseMismatch {
            recorded: record.base_hash,
            actual,
        });
    }
    if deltas.len() != record.accepted.len() || record.accepted.is_empty() {
        return Err(VerifyError::RecordMismatch {
            field: "number of accepted Δs",
        });
    }
    for (e, d) in record.accepted.iter().zip(deltas) {
        if d.len() != base.len() || delta_hash(d) != e.delta_hash {
            return Err(VerifyError::RecordMismatch {
                field: "delta_hash",
            });
        }
    }
    let raws: Vec<u128> = record
        .accepted
        .iter()
        .map(|e| {
            magnet_rounds::raw_weight(
                e.data_size,
                e.quality_bps,
                e.staleness,
                record.policy.stale_decay_bps,
                record.policy.max_staleness,
            )
        })
        .collect();
    let want = magnet_rounds::weights_ppm(&raws);
    if record
        .accepted
        .iter()
        .zip(&want)
        .any(|(e, w)| e.weight_ppm != *w)
    {
        return Err(VerifyError::RecordMismatch { field: "weights" });
    }
    let weighted: Vec<(u32, &[f32])> = record
        .accepted
        .iter()
        .zip(deltas)
        .map(|(e, d)| (e.weight_ppm, d.as_slice()))
        .collect();
    let (checkpoint, _) = outer_step(base, &weighted, &record.policy);
    let recomputed = checkpoint.hash();
    if recomputed != record.merged_hash {
        return Err(VerifyError::MergedMismatch {
            recorded: record.merged_hash,
            recomputed,
        });
    }
    Ok(checkpoint)
}
