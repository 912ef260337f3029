//! Marginal quality (ADR 0090): what one training contribution is worth, measured as the
//! marginal effect of the contributor's *own* accepted Δs, on evaluation data drawn after the
//! reveal deadline from all of the job's training tokens.
//!
//! A contribution names `(round, Δ hash)` lineage entries. An evaluator
//!
//! 1. checks that its copy of the job's corpus hashes to the job's `eval_set_hash` on chain
//!    ([`check_corpus`]; a mismatch refuses to evaluate);
//! 2. draws the epoch's evaluation windows from the epoch's evaluation seed — the hash of the
//!    block that closed the reveal window — over all training tokens, every shard's, in corpus
//!    order ([`eval_windows`]; stratified, so every part of the corpus is covered). Never over
//!    the validation split: it is public and small enough to fit in advance (the `evalfit`
//!    adversary, ADR 0093), while the training tokens are far more than one round can fit;
//! 3. samples [`EVAL_ENTRIES`] of the named entries by the same seed, keyed by round
//!    ([`sample_entries`]), so every evaluator scores the same ones and every contribution is
//!    scored on the same rounds where it has entries in them;
//! 4. scores each as `loss(base) − loss(base − Δ)` in fixed point 10^6 ([`marginal`]) — the base
//!    being the one the Δ's signed claim names — or [`WORST`] when the Δ cannot be fetched or
//!    does not hash to its entry, or 0 when the Δ is a near-duplicate (cosine ≥
//!    [`NEAR_DUPLICATE_PPM`]) of another accepted Δ of the same round ([`round_duplicates`],
//!    [`verdict`]);
//! 5. reports the mean of those ([`aggregate`]).
//!
//! Everything here is pure and deterministic given its inputs; the fetching and the model
//! evaluations are in [`crate::duties`] and [`crate::engine`]. Floats appear only in the
//! evaluator's own measurement (losses, cosines): the chain sees integer scores and takes a
//! median with a deviation band, as before.

use sha2::{Digest as _, Sha256};

use crate::{DaemonError, Result};

/// Lineage entries scored per contribution (all of them when it names fewer). Bounds an
/// evaluation to `EVAL_ENTRIES` model evaluations plus one per distinct base (memoised).
pub const EVAL_ENTRIES: usize = 4;

/// Cosine similarity (ppm) at or above which two accepted Δs of one round are near-duplicates.
pub const NEAR_DUPLICATE_PPM: i64 = 990_000;

/// The worst score: a Δ that cannot be fetched, does not match its hash, or gives a NaN loss.
pub const WORST: i64 = -1_000_000_000;

/// SHA-256 of the job's evaluation corpus: the number of training tokens (u64 little-endian,
/// so the train/validation boundary — and with it every shard — is bound too), every training
/// token (all shards, in order), then the validation split, each as u32 little-endian. This is
/// what a job's `eval_set_hash` names.
pub fn corpus_hash(train: &[u32], val: &[u32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((train.len() as u64).to_le_bytes());
    for x in train.iter().chain(val) {
        h.update(x.to_le_bytes());
    }
    h.finalize().into()
}

/// Refuses to evaluate for job `job` unless this worker's corpus hash `local` is the job's
/// `eval_set_hash` on chain (`on_chain`, hex).
pub fn check_corpus(job: u64, on_chain: &str, local: &[u8; 32]) -> Result<()> {
    if on_chain.eq_ignore_ascii_case(&hex::encode(local)) {
        Ok(())
    } else {
        Err(DaemonError::CorpusMismatch {
            job,
            on_chain: on_chain.to_string(),
            local: hex::encode(local),
        })
    }
}

fn h64(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let d: [u8; 32] = h.finalize().into();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

/// The start offsets of the `n` evaluation windows of epoch `epoch`, job `job`, in a corpus of
/// `corpus_len` tokens with windows of `seq_len` inputs (each window reads `seq_len + 1`
/// tokens). Stratified: the valid starts are cut into `n` equal strata and window `i` lies in
/// stratum `i` at a seed-drawn offset, so the windows spread over the whole corpus (every
/// shard at least as long as a stratum holds one). Fewer than `n` when the corpus is shorter
/// than `n` windows' worth of starts; empty when it cannot hold one window.
pub fn eval_windows(
    seed: &[u8; 32],
    epoch: u64,
    job: u64,
    corpus_len: usize,
    seq_len: usize,
    n: usize,
) -> Vec<usize> {
    let Some(starts) = corpus_len.checked_sub(seq_len) else {
        return Vec::new();
    };
    let n = n.min(starts);
    (0..n)
        .map(|i| {
            let lo = starts * i / n;
            let hi = starts * (i + 1) / n;
            let r = h64(&[
                b"MAGNET/quality/window/v1",
                seed,
                &epoch.to_be_bytes(),
                &job.to_be_bytes(),
                &(i as u64).to_be_bytes(),
            ]);
            lo + (r % (hi - lo) as u64) as usize
        })
        .collect()
}

/// The entries of a contribution that evaluators score: all of them when there are at most
/// `k`, else those in the `k` rounds whose seeded hash is smallest (the same for every
/// evaluator, unknowable before the seed), returned in their original order.
///
/// The key is the round alone, not the contributor: every contribution is scored on the same
/// rounds wherever it has entries in them. A Δ's marginal effect shrinks as the model learns
/// (an early round's honest Δ scores several times a late one's), so contributors scored on
/// different rounds would differ by the luck of the draw more than by their work (ADR 0093).
pub fn sample_entries(
    seed: &[u8; 32],
    epoch: u64,
    job: u64,
    entries: &[(u64, [u8; 32])],
    k: usize,
) -> Vec<(u64, [u8; 32])> {
    if entries.len() <= k {
        return entries.to_vec();
    }
    let mut keyed: Vec<(u64, usize)> = entries
        .iter()
        .enumerate()
        .map(|(i, (r, _))| {
            let h = h64(&[
                b"MAGNET/quality/entry/v2",
                seed,
                &epoch.to_be_bytes(),
                &job.to_be_bytes(),
                &r.to_be_bytes(),
            ]);
            (h, i)
        })
        .collect();
    keyed.sort_unstable();
    let mut pick: Vec<usize> = keyed.into_iter().take(k).map(|(_, i)| i).collect();
    pick.sort_unstable();
    pick.into_iter().map(|i| entries[i]).collect()
}

/// One Δ's marginal score: `loss(base) − loss(base − Δ)` in fixed point 10^6, clamped to
/// ±10^9; a NaN/Inf loss scores [`WORST`].
pub fn marginal(base_loss: f64, loss: f64) -> i64 {
    if !loss.is_finite() || !base_loss.is_finite() {
        return WORST;
    }
    let s = ((base_loss - loss) * 1e6).round();
    s.clamp(-1e9, 1e9) as i64
}

/// A contribution's score: the mean of its entries' scores, rounded towards −∞; [`WORST`] when
/// nothing was scored.
pub fn aggregate(scores: &[i64]) -> i64 {
    if scores.is_empty() {
        return WORST;
    }
    let sum: i128 = scores.iter().map(|&s| i128::from(s)).sum();
    let n = scores.len() as i128;
    let mean = sum.div_euclid(n);
    i64::try_from(mean).unwrap_or(WORST)
}

/// Cosine similarity of `a` and `b` in ppm (rounded); `None` when the lengths differ or either
/// is zero or not finite (a zero Δ is not "similar" to anything: it scores its own 0).
pub fn cosine_ppm(a: &[f32], b: &[f32]) -> Option<i64> {
    if a.len() != b.len() {
        return None;
    }
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if !(ab.is_finite() && aa.is_finite() && bb.is_finite()) || aa == 0.0 || bb == 0.0 {
        return None;
    }
    Some((ab / (aa.sqrt() * bb.sqrt()) * 1e6).round() as i64)
}

/// What decides one entry's score before any model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody served the Δ (or it decodes to another hash): [`WORST`].
    Unavailable,
    /// The Δ does not have the model's parameter count: [`WORST`].
    Malformed,
    /// Cosine ≥ [`NEAR_DUPLICATE_PPM`] with `others[twin]`: 0.
    NearDuplicate {
        /// Index into the round's other Δs.
        twin: usize,
        /// The cosine, ppm.
        cosine_ppm: i64,
    },
    /// Measure `loss(base) − loss(base − Δ)`.
    Measure,
}

impl Verdict {
    /// The score this verdict fixes without measuring, if any.
    pub fn fixed_score(self) -> Option<i64> {
        match self {
            Verdict::Unavailable | Verdict::Malformed => Some(WORST),
            Verdict::NearDuplicate { .. } => Some(0),
            Verdict::Measure => None,
        }
    }
}

/// Per accepted Δ of a round, its near-duplicate twin (index, cosine ppm), if any.
pub type Twins = Vec<Option<(usize, i64)>>;

/// The near-duplicate rule over one round's accepted Δs (`None`: this evaluator could not
/// fetch it): for each, the index and cosine (ppm) of its first twin among the others, if any.
/// Symmetric, so every copy is flagged — nothing orders two signed claims of one round.
pub fn round_duplicates(deltas: &[Option<&[f32]>]) -> Twins {
    deltas
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let d = (*d)?;
            deltas.iter().enumerate().find_map(|(j, o)| {
                let o = (*o).filter(|_| j != i)?;
                cosine_ppm(d, o)
                    .filter(|&c| c >= NEAR_DUPLICATE_PPM)
                    .map(|c| (j, c))
            })
        })
        .collect()
}

/// The verdict on an entry whose Δ is `delta` (`None`: not obtainable) in a model of `params`
/// parameters, given its near-duplicate `twin` in its round ([`round_duplicates`]).
pub fn verdict(delta: Option<&[f32]>, params: usize, twin: Option<(usize, i64)>) -> Verdict {
    let Some(d) = delta else {
        return Verdict::Unavailable;
    };
    if d.len() != params {
        return Verdict::Malformed;
    }
    match twin {
        Some((twin, cosine_ppm)) => Verdict::NearDuplicate { twin, cosine_ppm },
        None => Verdict::Measure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_draw_is_deterministic_differs_by_seed_and_stays_in_the_corpus() {
        let a = eval_windows(&[1; 32], 3, 1, 100_000, 32, 64);
        assert_eq!(a, eval_windows(&[1; 32], 3, 1, 100_000, 32, 64));
        assert_eq!(a.len(), 64);
        assert!(a.iter().all(|&s| s + 32 < 100_000));
        assert_ne!(a, eval_windows(&[2; 32], 3, 1, 100_000, 32, 64), "seed");
        assert_ne!(a, eval_windows(&[1; 32], 4, 1, 100_000, 32, 64), "epoch");
        assert_ne!(a, eval_windows(&[1; 32], 3, 2, 100_000, 32, 64), "job");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "one window per stratum");
        assert!(eval_windows(&[1; 32], 3, 1, 32, 32, 8).is_empty());
        assert_eq!(eval_windows(&[1; 32], 3, 1, 36, 32, 8).len(), 4);
    }

    #[test]
    fn the_windows_cover_every_part_of_the_training_tokens() {
        // 90,000 training tokens in 8 equal parts, 32 windows: each part holds at least one
        // window, for any seed.
        let (train, parts) = (90_000usize, 8usize);
        for s in 0..50u8 {
            let w = eval_windows(&[s; 32], 0, 1, train, 32, 32);
            assert!(
                w.iter().all(|&x| x + 32 < train),
                "seed {s} stays in the corpus"
            );
            for i in 0..parts {
                let (a, b) = (train * i / parts, train * (i + 1) / parts);
                assert!(w.iter().any(|&x| x >= a && x < b), "seed {s} part {i}");
            }
        }
    }

    #[test]
    fn every_evaluator_samples_the_same_entries_and_a_short_list_is_scored_whole() {
        let entries: Vec<(u64, [u8; 32])> = (0..20u8).map(|i| (u64::from(i), [i; 32])).collect();
        let a = sample_entries(&[7; 32], 1, 1, &entries, 4);
        assert_eq!(a.len(), 4);
        assert_eq!(a, sample_entries(&[7; 32], 1, 1, &entries, 4));
        assert!(a.windows(2).all(|w| w[0].0 < w[1].0), "original order");
        assert!(a.iter().all(|e| entries.contains(e)));
        let others: Vec<_> = (0..8u8)
            .map(|s| sample_entries(&[s; 32], 1, 1, &entries, 4))
            .collect();
        assert!(
            others.iter().any(|o| *o != a),
            "another seed, another sample"
        );
        assert_eq!(
            sample_entries(&[7; 32], 1, 1, &entries[..3], 4),
            entries[..3]
        );
        // Two contributors with entries in the same rounds are scored on the same rounds.
        let theirs: Vec<(u64, [u8; 32])> = (0..20u8).map(|i| (u64::from(i), [99; 32])).collect();
        let b = sample_entries(&[7; 32], 1, 1, &theirs, 4);
        let rounds = |v: &[(u64, [u8; 32])]| v.iter().map(|e| e.0).collect::<Vec<_>>();
        assert_eq!(rounds(&a), rounds(&b));
    }

    #[test]
    fn a_contribution_scores_the_floor_of_its_entries_mean_and_nothing_scores_worst() {
        assert_eq!(aggregate(&[300, 100]), 200);
        assert_eq!(aggregate(&[1, 2]), 1);
        assert_eq!(aggregate(&[-1, -2]), -2, "towards −∞");
        assert_eq!(
            aggregate(&[500_000, 0, 0, 0]),
            125_000,
            "a copied entry dilutes"
        );
        assert_eq!(aggregate(&[]), WORST);
        assert!(aggregate(&[1_000_000, WORST]) < 0, "one missing Δ sinks it");
        assert_eq!(aggregate(&[WORST; 30]), WORST);
    }

    #[test]
    fn marginal_scores_are_fixed_point_improvements_and_nan_scores_worst() {
        assert_eq!(marginal(5.0, 4.5), 500_000);
        assert_eq!(marginal(5.0, 5.25), -250_000);
        assert_eq!(marginal(5.0, f64::NAN), WORST);
        assert_eq!(marginal(f64::INFINITY, 4.0), WORST);
        assert_eq!(marginal(5.0, -1e12), 1_000_000_000);
    }

    #[test]
    fn near_duplicates_are_found_by_cosine_and_zero_or_unrelated_deltas_are_not() {
        let a: Vec<f32> = (0..1000)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let noisy: Vec<f32> = a
            .iter()
            .enumerate()
            .map(|(i, x)| x * 1.7 + if i % 2 == 0 { 0.02 } else { -0.02 })
            .collect();
        let other: Vec<f32> = (0..1000)
            .map(|i| ((i * 53 % 97) as f32 - 48.0) / 48.0)
            .collect();
        let neg: Vec<f32> = a.iter().map(|x| -x).collect();
        let zero = vec![0f32; 1000];
        assert_eq!(cosine_ppm(&a, &a), Some(1_000_000));
        assert_eq!(cosine_ppm(&a, &neg), Some(-1_000_000));
        assert_eq!(cosine_ppm(&a, &zero), None);
        assert_eq!(cosine_ppm(&a, &a[..10]), None);
        let c = cosine_ppm(&a, &noisy).unwrap();
        assert!(c >= NEAR_DUPLICATE_PPM, "scaled copy with noise: {c}");
        assert!(cosine_ppm(&a, &other).unwrap() < NEAR_DUPLICATE_PPM);
        let round = round_duplicates(&[Some(&a), Some(&other), Some(&noisy)]);
        assert_eq!(
            round.iter().map(|t| t.map(|x| x.0)).collect::<Vec<_>>(),
            [Some(2), None, Some(0)]
        );
        assert_eq!(
            round_duplicates(&[Some(&a), Some(&other), Some(&neg), Some(&zero)]),
            [None; 4],
            "unrelated, opposite and zero Δs are not copies"
        );
        assert_eq!(round_duplicates(&[Some(&zero), Some(&zero)]), [None; 2]);
    }

    #[test]
    fn unavailable_malformed_and_copied_deltas_get_fixed_scores_and_others_are_measured() {
        let a: Vec<f32> = (0..100).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..100).map(|i| (i % 5) as f32 - 2.0).collect();
        let copy: Vec<f32> = a.iter().map(|x| x * 0.5).collect();
        // One round: a, b, a's copy, and a Δ this evaluator could not fetch.
        let dups = round_duplicates(&[Some(&a), Some(&b), Some(&copy), None]);
        assert_eq!(
            dups,
            vec![Some((2, 1_000_000)), None, Some((0, 1_000_000)), None],
            "every copy is flagged, the unrelated Δ and the missing one are not"
        );
        assert_eq!(round_duplicates(&[Some(&a)]), vec![None]);
        assert_eq!(verdict(None, 100, None), Verdict::Unavailable);
        assert_eq!(verdict(Some(&a[..99]), 100, None), Verdict::Malformed);
        assert_eq!(
            verdict(Some(&copy), 100, dups[2]),
            Verdict::NearDuplicate {
                twin: 0,
                cosine_ppm: 1_000_000
            }
        );
        assert_eq!(verdict(Some(&b), 100, dups[1]), Verdict::Measure);
        assert_eq!(Verdict::Unavailable.fixed_score(), Some(WORST));
        assert_eq!(Verdict::Malformed.fixed_score(), Some(WORST));
        let dup = Verdict::NearDuplicate {
            twin: 0,
            cosine_ppm: 999_000,
        };
        assert_eq!(dup.fixed_score(), Some(0));
        assert_eq!(Verdict::Measure.fixed_score(), None);
    }

    #[test]
    fn an_evaluator_whose_corpus_differs_from_the_jobs_refuses_to_evaluate() {
        let mine = corpus_hash(&[1, 2, 3], &[4]);
        assert_ne!(mine, corpus_hash(&[1, 2], &[3, 4]), "the split is bound");
        check_corpus(1, &hex::encode(mine), &mine).unwrap();
        check_corpus(1, &hex::encode(mine).to_uppercase(), &mine).unwrap();
        let other = corpus_hash(&[1, 2, 3], &[5]);
        let e = check_corpus(7, &hex::encode(other), &mine).unwrap_err();
        assert!(matches!(e, DaemonError::CorpusMismatch { job: 7, .. }));
        assert!(e.to_string().contains("refuses to evaluate"), "{e}");
        assert!(check_corpus(7, "", &mine).is_err());
    }
}
