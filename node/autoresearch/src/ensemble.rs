//! Ensemble selection at the end of a search (Caruana, Niculescu-Mizil, Crew & Ksikes 2004,
//! "Ensemble selection from libraries of models"; the way auto-sklearn builds its final model).
//!
//! The pool is every single pipeline the search evaluated. Their out-of-fold (OOF) predictions
//! are already cached by the [`Evaluator`], so selection costs no trial: greedy forward selection
//! *with replacement* adds, at each of up to `steps` steps, the pool member that most lowers the
//! OOF log-loss of the running average; the weights are the counts divided by the steps of the
//! best prefix (the step count with the lowest loss). At most [`MAX_MEMBERS`] distinct members are
//! used (the limit that [`Candidate::validate`] enforces); once reached, only chosen members can
//! be added again.
//!
//! Honest decision: weights chosen on the OOF rows they score look better than they are, and so
//! does the search's best, picked among many pipelines on the same rows. So the decision compares
//! two *procedures*, each *cross-fitted* like every post-processor in [`crate::pipeline`]: the
//! rows of fold f are predicted by the ensemble selected (and calibrated) on the other folds'
//! rows only, once with `steps` greedy steps and once with one step — which is "pick the best
//! single pipeline". The ensemble is kept when averaging scores lower than picking one
//! ([`Selected::beats_single`]) and the run's one-standard-error rule accepts its gain over the
//! search's best ([`crate::run::clears_one_se`], ADR 0083); its final weights are then selected
//! on all OOF rows, and its CV log-loss is reported the way every candidate's is
//! ([`Evaluator::evaluate`]).

//! Post-hoc calibration: the catalog's `temperature_calibration` applies to whichever model was
//! best when it ran, not necessarily to the final one, and an average of members is typically
//! less confident than each member. So the ensemble is scored with the best candidate's own
//! post-processing and with temperature scaling added to it, and the lower cross-fitted loss wins
//! (the first on ties).
//!
//! Guarantees: deterministic (pool ordered by (OOF log-loss, content hash), ties in every step
//! go to the earlier pool member); reads only the [`Evaluator`]'s training part — the held-out
//! test rows are not reachable from here ([`crate::split::SealedTest`] is opened by the report
//! alone).

use crate::models::{self, ModelError};
use crate::pipeline::{
    content_hash, log_loss, Candidate, Evaluation, Evaluator, Oof, PipelineConfig, PostFit,
    PostSpec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Default number of greedy steps (weights are multiples of 1 / steps).
pub const DEFAULT_STEPS: usize = 25;

/// Pool members kept for selection (the best by their own OOF log-loss).
pub const POOL_SIZE: usize = 50;

/// Most distinct members of an ensemble (as [`Candidate::validate`] allows).
pub const MAX_MEMBERS: usize = 5;

/// The outcome of ensemble selection.
#[derive(Debug, Clone)]
pub struct Selected {
    /// The weighted soft vote chosen on all OOF rows (with its post-processing).
    pub candidate: Candidate,
    /// Its evaluation like any candidate's ([`Evaluator::evaluate`]: weights chosen on the
    /// rows they score, post-processing cross-fitted), comparable with the search's CV losses.
    pub evaluation: Evaluation,
    /// Cross-fitted CV log-loss of ensemble selection as a procedure (fold f scored by the
    /// ensemble selected on the other folds).
    pub cross_fitted: f64,
    /// Cross-fitted CV log-loss of picking the single best pipeline (one greedy step) the same
    /// way: what the ensemble must beat.
    pub cross_fitted_single: f64,
    /// Distinct pipelines in the pool.
    pub pool: usize,
}

impl Selected {
    /// Whether averaging beat picking one, both scored cross-fitted (strictly lower loss).
    pub fn beats_single(&self) -> bool {
        self.cross_fitted < self.cross_fitted_single
    }
}

/// Greedy forward selection with replacement over `pool` on `rows`: returns the count of every
/// pool member in the best prefix of at most `steps` steps and that prefix's log-loss.
///
/// `pool[j].probs[r]` must be `Some` for every row `r` in `rows`. Ties (equal loss) go to the
/// lower pool index, and among prefixes (within 1e-12) to the shorter one.
pub fn forward_select(
    pool: &[Arc<Oof>],
    y: &[usize],
    rows: &[usize],
    steps: usize,
    max_members: usize,
) -> (Vec<usize>, f64) {
    let mut counts = vec![0usize; pool.len()];
    if pool.is_empty() || rows.is_empty() || steps == 0 {
        return (counts, f64::NAN);
    }
    // Only the true class's probability enters the log-loss, and every member's rows are
    // normalised, so the running average is tracked by its true-class sum alone.
    let truth: Vec<Vec<f64>> = pool
        .iter()
        .map(|o| {
            rows.iter()
                .map(|&r| o.probs[r].as_ref().map_or(0.0, |p| p[y[r]]))
                .collect()
        })
        .collect();
    let mut sum = vec![0.0; rows.len()];
    let mut chosen: Vec<usize> = Vec::with_capacity(steps);
    let mut best = (f64::INFINITY, 0usize);
    let n = rows.len() as f64;
    for t in 1..=steps {
        let distinct = counts.iter().filter(|&&c| c > 0).count();
        let mut pick: Option<(usize, f64)> = None;
        for (j, tr) in truth.iter().enumerate() {
            if distinct >= max_members && counts[j] == 0 {
                continue;
            }
            let loss = sum
                .iter()
                .zip(tr)
                .map(|(s, p)| -((s + p) / t as f64).max(models::P_MIN).ln())
                .sum::<f64>()
                / n;
            if pick.is_none_or(|(_, l)| loss < l) {
                pick = Some((j, loss));
            }
        }
        let Some((j, loss)) = pick else { break };
        counts[j] += 1;
        chosen.push(j);
        sum.iter_mut().zip(&truth[j]).for_each(|(s, p)| *s += p);
        // A longer prefix must be better by more than rounding (adding a copy of the only
        // member changes the loss in the last bits).
        if loss < best.0 - 1e-12 {
            best = (loss, t);
        }
    }
    let mut out = vec![0usize; pool.len()];
    for &j in &chosen[..best.1] {
        out[j] += 1;
    }
    (out, best.0)
}

/// The weighted average of `pool` with `counts` on one row.
fn vote(pool: &[Arc<Oof>], counts: &[usize], row: usize, k: usize) -> Vec<f64> {
    // Weights, not counts: `normalise` clips every entry to [P_MIN, 1 − P_MIN] first.
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let mut v = vec![0.0; k];
    for (o, &c) in pool.iter().zip(counts) {
        if let (true, Some(p)) = (c > 0, &o.probs[row]) {
            for (a, b) in v.iter_mut().zip(p) {
                *a += c as f64 / total * b;
            }
        }
    }
    models::normalise(&mut v);
    v
}

/// Builds the pool from the search's pipelines (duplicates removed, ordered by OOF log-loss and
/// content hash, at most [`POOL_SIZE`]); returns the configs and their OOFs.
fn pool(
    ev: &Evaluator,
    configs: &[PipelineConfig],
) -> Result<Vec<(PipelineConfig, Arc<Oof>)>, ModelError> {
    let unique: BTreeMap<String, &PipelineConfig> =
        configs.iter().map(|p| (content_hash(p), p)).collect();
    let mut scored = Vec::with_capacity(unique.len());
    for (hash, p) in unique {
        let o = ev.oof(p)?;
        let (pr, y): (Vec<Vec<f64>>, Vec<usize>) = o
            .probs
            .iter()
            .zip(&ev.data.y)
            .filter_map(|(p, &y)| p.clone().map(|p| (p, y)))
            .unzip();
        let loss = log_loss(&pr, &y);
        if loss.is_finite() {
            scored.push((loss, hash, p.clone(), o));
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    scored.truncate(POOL_SIZE);
    Ok(scored.into_iter().map(|(_, _, p, o)| (p, o)).collect())
}

/// Selects a weighted soft vote from the pipelines in `configs` (normally every pipeline the
/// search evaluated) with `steps` greedy steps, post-processed with `post` (the best candidate's
/// own) or `post` plus temperature scaling, whichever scores lower cross-fitted. Returns `None`
/// when there is nothing to select from (no pipeline, no scored row, or `steps == 0`).
pub fn select(
    ev: &Evaluator,
    configs: &[PipelineConfig],
    post: &PostSpec,
    steps: usize,
) -> Result<Option<Selected>, ModelError> {
    let entries = pool(ev, configs)?;
    if entries.is_empty() || steps == 0 {
        return Ok(None);
    }
    let oofs: Vec<Arc<Oof>> = entries.iter().map(|e| e.1.clone()).collect();
    let data = ev.data;
    let fold_of = oofs[0].fold_of.clone();
    let rows: Vec<usize> = (0..data.len())
        .filter(|&i| oofs.iter().all(|o| o.probs[i].is_some()))
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    let mut variants = vec![post.clone()];
    if !post.temperature {
        variants.push(PostSpec {
            temperature: true,
            ..post.clone()
        });
    }
    let cross = |n_steps: usize| -> Option<(PostSpec, f64)> {
        cross_fit(ev, &oofs, &rows, &fold_of, n_steps, &variants)
    };
    let (Some((spec, cross_fitted)), Some((_, cross_fitted_single))) = (cross(steps), cross(1))
    else {
        return Ok(None);
    };
    let counts = forward_select(&oofs, &data.y, &rows, steps, MAX_MEMBERS).0;
    let total = counts.iter().sum::<usize>().max(1) as f64;
    let members: Vec<(PipelineConfig, f64)> = entries
        .iter()
        .zip(&counts)
        .filter(|(_, &c)| c > 0)
        .map(|((p, _), &c)| (p.clone(), c as f64 / total))
        .collect();
    let candidate = Candidate {
        members,
        post: spec,
    };
    let evaluation = ev.evaluate(&candidate)?;
    Ok(Some(Selected {
        candidate,
        evaluation,
        cross_fitted,
        cross_fitted_single,
        pool: entries.len(),
    }))
}

/// Cross-fitted CV log-loss of selection with `steps` greedy steps, for the post-processing
/// variant that scores lowest (the first on ties): the rows of fold f are predicted by the
/// ensemble selected (and post-processed) on the other folds' rows.
fn cross_fit(
    ev: &Evaluator,
    oofs: &[Arc<Oof>],
    rows: &[usize],
    fold_of: &[Option<usize>],
    steps: usize,
    variants: &[PostSpec],
) -> Option<(PostSpec, f64)> {
    let data = ev.data;
    let k = data.n_classes();
    let per_fold: Vec<(Vec<usize>, Vec<usize>)> = (0..ev.folds.len())
        .map(|f| {
            let fit: Vec<usize> = rows
                .iter()
                .copied()
                .filter(|&i| fold_of[i] != Some(f))
                .collect();
            let counts = forward_select(oofs, &data.y, &fit, steps, MAX_MEMBERS).0;
            (fit, counts)
        })
        .collect();
    let ctx_of = |i: usize| data.context.as_ref().map(|c| c[i]);
    let mut best: Option<(PostSpec, f64)> = None;
    for spec in variants {
        let mut p_out = Vec::with_capacity(rows.len());
        let mut y_out = Vec::with_capacity(rows.len());
        for (f, (fit, counts)) in per_fold.iter().enumerate() {
            if fit.is_empty() || counts.iter().all(|&c| c == 0) {
                continue;
            }
            let fitted = if *spec == PostSpec::default() {
                PostFit {
                    temperature: 1.0,
                    offsets: Vec::new(),
                }
            } else {
                let p: Vec<Vec<f64>> = fit.iter().map(|&i| vote(oofs, counts, i, k)).collect();
                let y: Vec<usize> = fit.iter().map(|&i| data.y[i]).collect();
                let ctx: Option<Vec<usize>> = data
                    .context
                    .as_ref()
                    .map(|c| fit.iter().map(|&i| c[i]).collect());
                PostFit::fit(spec, &p, &y, ctx.as_deref(), data.context_names.len())
            };
            for &i in rows.iter().filter(|&&i| fold_of[i] == Some(f)) {
                p_out.push(fitted.apply(&vote(oofs, counts, i, k), ctx_of(i)));
                y_out.push(data.y[i]);
            }
        }
        let loss = log_loss(&p_out, &y_out);
        if loss.is_finite() && best.as_ref().is_none_or(|b| loss < b.1) {
            best = Some((spec.clone(), loss));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{Dataset, Mat};
    use crate::models::ModelSpec;
    use crate::pipeline::FeatureSpec;
    use crate::split::stratified_kfold;

    fn oof(rows: &[[f64; 2]]) -> Arc<Oof> {
        Arc::new(Oof {
            probs: rows.iter().map(|r| Some(r.to_vec())).collect(),
            fold_of: (0..rows.len()).map(|i| Some(i % 2)).collect(),
            train_loss: 0.0,
        })
    }

    /// Two members that are each confidently wrong on different rows: their average is better
    /// than either, and selection finds it.
    #[test]
    fn forward_selection_lowers_the_oof_log_loss_below_the_best_single_member() {
        let y = vec![1, 1, 0, 0];
        let a = oof(&[[0.02, 0.98], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]]);
        let b = oof(&[[0.9, 0.1], [0.02, 0.98], [0.9, 0.1], [0.9, 0.1]]);
        let pool = vec![a.clone(), b.clone()];
        let rows = [0, 1, 2, 3];
        let single = |o: &Arc<Oof>| {
            let p: Vec<Vec<f64>> = o.probs.iter().flatten().cloned().collect();
            log_loss(&p, &y)
        };
        let (counts, loss) = forward_select(&pool, &y, &rows, 25, MAX_MEMBERS);
        assert!(counts.iter().all(|&c| c > 0), "{counts:?}");
        assert!(loss < single(&a).min(single(&b)) - 0.1, "{loss}");
        // A pool of one gives that member alone, at its own loss.
        let (c1, l1) = forward_select(std::slice::from_ref(&a), &y, &rows, 25, MAX_MEMBERS);
        assert_eq!(c1, vec![1]);
        assert!((l1 - single(&a)).abs() < 1e-12);
    }

    #[test]
    fn forward_selection_respects_the_member_limit_and_breaks_ties_by_pool_order() {
        let y = vec![1, 0];
        let same = oof(&[[0.3, 0.7], [0.6, 0.4]]);
        let pool = vec![same.clone(), same.clone(), same];
        let (counts, _) = forward_select(&pool, &y, &[0, 1], 10, MAX_MEMBERS);
        assert_eq!(counts, vec![1, 0, 0], "identical members: the first, once");
        let many: Vec<Arc<Oof>> = (0..8)
            .map(|j| {
                let e = 0.05 * j as f64;
                oof(&[[0.2 + e, 0.8 - e], [0.9 - e, 0.1 + e]])
            })
            .collect();
        let (counts, _) = forward_select(&many, &y, &[0, 1], 25, 2);
        assert!(counts.iter().filter(|&&c| c > 0).count() <= 2, "{counts:?}");
    }

    /// Counts above one are weights: the vote stays the weighted average of the members
    /// (`normalise` clips entries above 1 − P_MIN, so summing raw counts would flatten it).
    #[test]
    fn the_vote_of_repeated_members_is_their_weighted_average() {
        let a = oof(&[[0.2, 0.8]]);
        let b = oof(&[[0.6, 0.4]]);
        let v = vote(&[a, b], &[3, 1], 0, 2);
        assert!(
            (v[0] - 0.3).abs() < 1e-12 && (v[1] - 0.7).abs() < 1e-12,
            "{v:?}"
        );
    }

    fn toy(n: usize) -> Dataset {
        // Two noisy features; the label depends on their sum.
        let mut x = Mat::with_cols(2);
        let mut y = Vec::new();
        let mut s = 7u64;
        let mut r = || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..n {
            let (a, b) = (r(), r());
            x.push_row(&[a, b]);
            y.push(usize::from(a + b + 0.6 * (r() - 0.5) > 1.0));
        }
        Dataset {
            name: "toy".into(),
            hash: "toy".into(),
            feature_names: vec!["a".into(), "b".into()],
            numeric_features: vec![0, 1],
            x,
            text_tokens: Mat {
                rows: n,
                ..Mat::with_cols(0)
            },
            token_names: Vec::new(),
            y,
            classes: vec!["0".into(), "1".into()],
            context: None,
            context_names: Vec::new(),
            dropped_rows: 0,
            columns: Vec::new(),
        }
    }

    fn configs() -> Vec<PipelineConfig> {
        let p = |model| PipelineConfig {
            features: FeatureSpec::default(),
            model,
            class_weight: false,
            stack: None,
        };
        vec![
            p(ModelSpec::Logistic { l2: 1e-3 }),
            p(ModelSpec::Logistic { l2: 0.5 }),
            p(ModelSpec::ExtraTrees {
                n_trees: 20,
                max_depth: 0,
                min_samples_leaf: 1,
                max_features: 1.0,
            }),
        ]
    }

    #[test]
    fn selection_is_deterministic_and_independent_of_the_pool_order() {
        let data = toy(160);
        let folds = stratified_kfold(&data.y, 3, 5);
        let ev = Evaluator::new(&data, &folds, 5);
        let c = configs();
        let a = select(&ev, &c, &PostSpec::default(), DEFAULT_STEPS)
            .unwrap()
            .unwrap();
        let reversed: Vec<PipelineConfig> = c.iter().rev().cloned().collect();
        let ev2 = Evaluator::new(&data, &folds, 5);
        let b = select(&ev2, &reversed, &PostSpec::default(), DEFAULT_STEPS)
            .unwrap()
            .unwrap();
        assert_eq!(a.candidate, b.candidate);
        assert_eq!(a.cross_fitted.to_bits(), b.cross_fitted.to_bits());
        assert_eq!(a.pool, 3);
        a.candidate.validate(data.x.cols).unwrap();
        // In-sample weights never score worse than the best member alone (the first greedy
        // step is that member), and the cross-fitted scores are finite OOF log-losses.
        let best_single = c
            .iter()
            .map(|p| ev.evaluate(&Candidate::single(p.clone())).unwrap().cv_loss)
            .fold(f64::INFINITY, f64::min);
        if a.candidate.post == PostSpec::default() {
            assert!(a.evaluation.cv_loss <= best_single + 1e-12);
        }
        assert!(a.cross_fitted.is_finite() && a.cross_fitted_single.is_finite());
    }

    #[test]
    fn selection_reads_only_the_evaluators_rows() {
        // The evaluator holds the training part only; selection scores exactly its rows (the
        // sealed test set has no path into this module).
        let data = toy(120);
        let folds = stratified_kfold(&data.y, 3, 1);
        let ev = Evaluator::new(&data, &folds, 1);
        let s = select(&ev, &configs(), &PostSpec::default(), 5)
            .unwrap()
            .unwrap();
        assert_eq!(s.evaluation.probs.len(), data.len());
        assert!(s.evaluation.probs.iter().all(Option::is_some));
        assert!(select(&ev, &[], &PostSpec::default(), 5).unwrap().is_none());
        assert!(select(&ev, &configs(), &PostSpec::default(), 0)
            .unwrap()
            .is_none());
    }
}
