//! The final report: the only code that may open the sealed test set ([`ReportKey`]), the
//! held-out evaluation with a paired bootstrap confidence interval, and the run folder
//! (`report.md`, `progression.png`, `trials.jsonl`, `knowledge.json`, `best_model.json`).
//!
//! Guarantees: the test rows are read once, after the search has finished, to score the
//! baseline, the version-1 best and the final best, each refitted on the whole training part.

use crate::analysis::{self, decide};
use crate::data::{Dataset, Mat};
use crate::models::ModelError;
use crate::pipeline::{fit_predict, log_loss, Candidate, Evaluator, PostFit};
use crate::run::{Domain, RunError, RunOutcome};
use crate::split::{SealedTest, TrainPart};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// The capability to open the sealed test set. Its field is private to this module, so only the
/// report can construct one.
pub struct ReportKey(());

/// Held-out results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HeldOut {
    /// Test rows.
    pub n_test: usize,
    /// Baseline (v0) test log-loss.
    pub baseline_loss: f64,
    /// Version-1 best test log-loss.
    pub v1_loss: f64,
    /// Final best test log-loss.
    pub final_loss: f64,
    /// Mean paired improvement baseline − final.
    pub improvement: f64,
    /// 95 % bootstrap interval of the improvement.
    pub improvement_ci: (f64, f64),
    /// 95 % bootstrap interval of the final loss.
    pub final_loss_ci: (f64, f64),
    /// Baseline accuracy.
    pub baseline_accuracy: f64,
    /// Final accuracy (argmax, or the OOF-tuned threshold for binary).
    pub final_accuracy: f64,
    /// Final balanced accuracy.
    pub final_balanced_accuracy: f64,
    /// Final confusion matrix.
    pub final_confusion: Vec<Vec<usize>>,
    /// Domain decision metrics (name, value).
    pub decision_metrics: Vec<(String, f64)>,
    /// The final model's post-processing as fitted on the training part's out-of-fold rows and
    /// applied to the test rows (temperature 1 and no offsets when it has none); `None` when the
    /// held-out scoring failed.
    pub final_post: Option<PostFit>,
    /// Final test probabilities (for downstream checks).
    #[serde(skip)]
    pub final_probs: Vec<Vec<f64>>,
}

fn concat(a: &Dataset, b: &Dataset) -> Dataset {
    let mut d = a.clone();
    let cat = |x: &Mat, y: &Mat| {
        let mut m = x.clone();
        m.data.extend_from_slice(&y.data);
        m.rows += y.rows;
        m
    };
    d.x = cat(&a.x, &b.x);
    d.text_tokens = cat(&a.text_tokens, &b.text_tokens);
    d.y.extend_from_slice(&b.y);
    if let (Some(c), Some(cb)) = (d.context.as_mut(), b.context.as_ref()) {
        c.extend_from_slice(cb);
    }
    d
}

/// Fits `cand`'s post-processing (temperature, per-context offsets) the way the final model
/// uses it: on the weighted vote of its members' out-of-fold predictions over the training part.
/// Reads no test row.
fn final_post_fit(
    train: &Dataset,
    ev: &Evaluator,
    cand: &Candidate,
) -> Result<PostFit, ModelError> {
    let k = train.n_classes();
    let total: f64 = cand.members.iter().map(|m| m.1).sum();
    let mut oof_vote: Vec<Option<Vec<f64>>> = vec![None; train.len()];
    for (p, w) in &cand.members {
        let oof = ev.oof(p)?;
        for (i, o) in oof.probs.iter().enumerate() {
            if let Some(o) = o {
                let slot = oof_vote[i].get_or_insert_with(|| vec![0.0; k]);
                for c in 0..k {
                    slot[c] += w / total * o[c];
                }
            }
        }
    }
    let rows: Vec<usize> = (0..train.len())
        .filter(|&i| oof_vote[i].is_some())
        .collect();
    let p: Vec<Vec<f64>> = rows.iter().filter_map(|&i| oof_vote[i].clone()).collect();
    let y: Vec<usize> = rows.iter().map(|&i| train.y[i]).collect();
    let ctx: Option<Vec<usize>> = train
        .context
        .as_ref()
        .map(|c| rows.iter().map(|&i| c[i]).collect());
    Ok(PostFit::fit(
        &cand.post,
        &p,
        &y,
        ctx.as_deref(),
        train.context_names.len(),
    ))
}

/// Fits `cand` on the whole training part and predicts `test` (post-processing fitted on the
/// vote of its members' out-of-fold predictions over the training part).
pub fn predict_test(
    train: &Dataset,
    test: &Dataset,
    ev: &Evaluator,
    cand: &Candidate,
    seed: u64,
) -> Result<Vec<Vec<f64>>, ModelError> {
    predict_test_fitted(train, test, ev, cand, seed).map(|(p, _)| p)
}

/// [`predict_test`], also returning the post-processing it fitted and applied.
fn predict_test_fitted(
    train: &Dataset,
    test: &Dataset,
    ev: &Evaluator,
    cand: &Candidate,
    seed: u64,
) -> Result<(Vec<Vec<f64>>, PostFit), ModelError> {
    let all = concat(train, test);
    let fit_rows: Vec<usize> = (0..train.len()).collect();
    let pred_rows: Vec<usize> = (train.len()..all.len()).collect();
    let k = train.n_classes();
    let total: f64 = cand.members.iter().map(|m| m.1).sum();
    let mut probs = vec![vec![0.0; k]; test.len()];
    for (p, w) in &cand.members {
        let (pr, _) = fit_predict(p, &all, &fit_rows, &pred_rows, seed)?;
        for (row, r) in probs.iter_mut().zip(&pr) {
            for c in 0..k {
                row[c] += w / total * r[c];
            }
        }
    }
    let post = final_post_fit(train, ev, cand)?;
    let probs = probs
        .iter()
        .enumerate()
        .map(|(i, r)| post.apply(r, test.context.as_ref().map(|c| c[i])))
        .collect();
    Ok((probs, post))
}

/// Scores one candidate on the held-out test (for `research trial` with `holdout: true`):
/// (log-loss, accuracy).
pub fn holdout_score(
    train: &Dataset,
    sealed: SealedTest,
    ev: &Evaluator,
    cand: &Candidate,
    seed: u64,
) -> Result<(f64, f64), ModelError> {
    let test = sealed.open(ReportKey(()));
    let p = predict_test(train, &test, ev, cand, seed)?;
    let d = decide(&p, None);
    let acc =
        d.iter().zip(&test.y).filter(|(a, b)| a == b).count() as f64 / test.len().max(1) as f64;
    Ok((log_loss(&p, &test.y), acc))
}

fn per_row_loss(p: &[Vec<f64>], y: &[usize]) -> Vec<f64> {
    p.iter()
        .zip(y)
        .map(|(r, &t)| -r[t].max(crate::models::P_MIN).ln())
        .collect()
}

/// Percentile bootstrap interval (95 %) of the mean of `v`.
pub fn bootstrap_ci(v: &[f64], seed: u64, reps: usize) -> (f64, f64) {
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xb007);
    let mut means: Vec<f64> = (0..reps)
        .map(|_| {
            (0..v.len())
                .map(|_| v[rng.gen_range(0..v.len())])
                .sum::<f64>()
                / v.len() as f64
        })
        .collect();
    means.sort_by(f64::total_cmp);
    (
        means[(reps as f64 * 0.025) as usize],
        means[((reps as f64 * 0.975) as usize).min(reps - 1)],
    )
}

/// Opens the sealed test set once and scores the baseline, the v1 best and the final best.
pub fn finish(
    domain: &dyn Domain,
    train: &TrainPart,
    sealed: SealedTest,
    o: &RunOutcome,
    seed: u64,
) -> HeldOut {
    let test = sealed.open(ReportKey(()));
    let data = &train.data;
    let folds = domain.folds(data, o.config.folds, seed);
    let ev = Evaluator::new(data, &folds, seed);
    let score = |c: &Candidate| predict_test_fitted(data, &test, &ev, c, seed).ok();
    let first = o
        .versions
        .first()
        .map(|v| v.best.clone())
        .unwrap_or_else(crate::run::baseline);
    let v1 = o.versions.get(1).map_or(first.clone(), |v| v.best.clone());
    let last = o.versions.last().map_or(first.clone(), |v| v.best.clone());
    let (Some((pb, _)), Some((p1, _)), Some((pf, final_post))) =
        (score(&first), score(&v1), score(&last))
    else {
        return HeldOut::default();
    };
    let lb = per_row_loss(&pb, &test.y);
    let lf = per_row_loss(&pf, &test.y);
    let diff: Vec<f64> = lb.iter().zip(&lf).map(|(a, b)| a - b).collect();
    let threshold = o.versions.last().and_then(|v| v.analysis.threshold);
    let dec = decide(&pf, threshold);
    let conf = analysis::confusion(&dec, &test.y, data.n_classes());
    let acc = |d: &[usize]| {
        d.iter().zip(&test.y).filter(|(a, b)| a == b).count() as f64 / test.len().max(1) as f64
    };
    let bal = {
        let rec: Vec<f64> = conf
            .iter()
            .enumerate()
            .filter(|(_, r)| r.iter().sum::<usize>() > 0)
            .map(|(i, r)| r[i] as f64 / r.iter().sum::<usize>() as f64)
            .collect();
        rec.iter().sum::<f64>() / rec.len().max(1) as f64
    };
    HeldOut {
        n_test: test.len(),
        final_post: Some(final_post),
        baseline_loss: log_loss(&pb, &test.y),
        v1_loss: log_loss(&p1, &test.y),
        final_loss: log_loss(&pf, &test.y),
        improvement: diff.iter().sum::<f64>() / diff.len().max(1) as f64,
        improvement_ci: bootstrap_ci(&diff, seed, 2000),
        final_loss_ci: bootstrap_ci(&lf, seed ^ 1, 2000),
        baseline_accuracy: acc(&decide(&pb, None)),
        final_accuracy: acc(&dec),
        final_balanced_accuracy: bal,
        final_confusion: conf,
        decision_metrics: match walk_forward_predictions(domain, data, &test, &last, o, seed) {
            Some(Ok(wf)) => {
                let mut m = domain.decision_metrics(&test, &wf);
                m.push((
                    "walk-forward log-loss (model)".into(),
                    log_loss(&wf, &test.y),
                ));
                m
            }
            Some(Err(e)) => {
                tracing::warn!("walk-forward evaluation failed ({e}); single fit reported");
                domain.decision_metrics(&test, &pf)
            }
            None => domain.decision_metrics(&test, &pf),
        },
        final_probs: pf,
    }
}

/// Walk-forward predictions of the held-out rows (see [`Domain::walk_forward_blocks`]), or
/// `None` when the domain asks for none.
fn walk_forward_predictions(
    domain: &dyn Domain,
    train: &Dataset,
    test: &Dataset,
    cand: &Candidate,
    o: &RunOutcome,
    seed: u64,
) -> Option<Result<Vec<Vec<f64>>, ModelError>> {
    let blocks = domain.walk_forward_blocks().min(test.len());
    if blocks == 0 {
        return None;
    }
    let all = concat(train, test);
    let gap = domain.walk_forward_gap(train);
    let n0 = train.len();
    let run = || -> Result<Vec<Vec<f64>>, ModelError> {
        let mut out = Vec::with_capacity(test.len());
        for b in 0..blocks {
            let start = n0 + b * test.len() / blocks;
            let end = n0 + (b + 1) * test.len() / blocks;
            let fit = all.subset(&(0..start.saturating_sub(gap)).collect::<Vec<_>>());
            let pred = all.subset(&(start..end).collect::<Vec<_>>());
            let folds = domain.folds(&fit, o.config.folds, seed);
            let ev = Evaluator::new(&fit, &folds, seed);
            out.extend(predict_test(&fit, &pred, &ev, cand, seed)?);
        }
        Ok(out)
    };
    Some(run())
}

/// Renders `report.md`.
pub fn render_markdown(o: &RunOutcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Autoresearch report: {} ({})\n", o.dataset.0, o.domain);
    let _ = writeln!(
        s,
        "Data hash `{}` · seed {} · budget {} trials ({} run) · ε = {} · patience {} · {} folds · strategist `{}`\n",
        &o.dataset.1[..12.min(o.dataset.1.len())],
        o.config.seed,
        o.config.budget,
        o.trials.len(),
        o.config.epsilon,
        o.config.patience,
        o.config.folds,
        o.strategist
    );
    let _ = writeln!(s, "**Stopped:** {}\n", o.stop_reason);
    let _ = writeln!(
        s,
        "## Progression (selection on cross-validated log-loss, training part only)\n"
    );
    let _ = writeln!(s, "| Ver. | CV log-loss | fold sd | LOCO | bal_acc | FP | FN | Configs | Strategies | Key innovation |");
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for v in &o.versions {
        let a = &v.analysis;
        let strategies: Vec<String> = v
            .strategies
            .iter()
            .map(|x| x.strategy.idea.clone())
            .collect();
        let _ = writeln!(
            s,
            "| v{} | {:.4} | {:.4} | {} | {:.4} | {} | {} | {} | {} | {} |",
            v.version,
            v.best_loss,
            a.fold_sd,
            v.loco_loss.map_or("–".into(), |l| format!("{l:.4}")),
            a.balanced_accuracy,
            if a.threshold.is_some() {
                a.fp.to_string()
            } else {
                "–".into()
            },
            if a.threshold.is_some() {
                a.fn_.to_string()
            } else {
                "–".into()
            },
            v.configs,
            if strategies.is_empty() {
                "baseline".into()
            } else {
                strategies.join(", ")
            },
            v.key_innovation
        );
    }
    let _ = writeln!(s, "\n## Strategies per version\n");
    for v in o.versions.iter().skip(1) {
        let pats: Vec<String> = v
            .analysis_of_previous
            .as_ref()
            .map(|a| a.patterns.iter().map(|p| format!("{p:?}")).collect())
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "**v{}** — failure patterns: {}",
            v.version,
            pats.join(", ")
        );
        if let Some(e) = &v.strategist_error {
            let _ = writeln!(
                s,
                "\n_The `{}` strategist's proposal was not used ({e}); the rule-based strategist designed this version._\n",
                o.strategist
            );
        }
        for r in &v.strategies {
            if v.post_search {
                let _ = writeln!(
                    s,
                    "- `{}` ({:?}, after the search, no trials): cross-fitted CV {:.4} — {}",
                    r.strategy.idea, r.strategy.family, r.best_loss, r.strategy.rationale
                );
                continue;
            }
            let _ = writeln!(
                s,
                "- `{}` ({:?}, {:?} sweep, {} trials): best {:.4} — {}",
                r.strategy.idea,
                r.strategy.family,
                r.sampler,
                r.trials,
                r.best_loss,
                r.strategy.rationale
            );
        }
        let _ = writeln!(s);
    }
    if let Some(last) = o.versions.last() {
        let a = &last.analysis;
        let _ = writeln!(s, "## Error analysis of the final model (out of fold)\n");
        let _ = writeln!(s, "Final config: {}\n", last.best.describe());
        let _ = writeln!(
            s,
            "CV log-loss {:.4} (in-sample {:.4}), accuracy {:.4}, ECE {:.4}, threshold {}\n",
            a.cv_loss,
            a.train_loss,
            a.accuracy,
            a.ece,
            a.threshold.map_or("argmax".into(), |t| format!("{t:.2}"))
        );
        let _ = writeln!(s, "Confusion (rows = truth): {:?}\n", a.confusion);
        for c in &a.contexts {
            let _ = writeln!(
                s,
                "- context `{}`: n={}, log-loss {:.4}, accuracy {:.3}, calibration gap {:.3}",
                c.name, c.n, c.loss, c.accuracy, c.calibration_gap
            );
        }
        for b in &a.worst_bins {
            let _ = writeln!(
                s,
                "- worst bin `{}` {}: n={}, log-loss {:.4}",
                b.feature, b.bin, b.n, b.loss
            );
        }
    }
    let t = &o.test;
    let _ = writeln!(
        s,
        "\n## Held-out test (touched once, after the search; n = {})\n",
        t.n_test
    );
    let _ = writeln!(s, "| model | test log-loss |\n|---|---|");
    let _ = writeln!(s, "| baseline (v0) | {:.4} |", t.baseline_loss);
    let _ = writeln!(s, "| v1 best | {:.4} |", t.v1_loss);
    let _ = writeln!(
        s,
        "| final | {:.4} (95% CI {:.4}–{:.4}) |\n",
        t.final_loss, t.final_loss_ci.0, t.final_loss_ci.1
    );
    let _ = writeln!(
        s,
        "Improvement over the baseline (paired, per test row): {:.4}, 95% bootstrap CI [{:.4}, {:.4}].  \nAccuracy {:.4} → {:.4}; final balanced accuracy {:.4}; confusion {:?}",
        t.improvement, t.improvement_ci.0, t.improvement_ci.1, t.baseline_accuracy, t.final_accuracy, t.final_balanced_accuracy, t.final_confusion
    );
    if let Some(post) = t.final_post.as_ref().filter(|p| p.temperature != 1.0) {
        let _ = writeln!(
            s,
            "\nFinal model's fitted temperature {:.3} (softens the vote; fitted on the training part's out-of-fold rows).",
            post.temperature
        );
    }
    if !t.decision_metrics.is_empty() {
        let _ = writeln!(s, "\n| decision metric | value |\n|---|---|");
        for (k, v) in &t.decision_metrics {
            let _ = writeln!(s, "| {k} | {v:.4} |");
        }
    }
    let _ = writeln!(
        s,
        "\n## Knowledge base\n\n{} insights ({} new in this run), content hash `{}`.",
        o.kb.insights.len(),
        o.new_insights,
        &o.kb.hash()[..12]
    );
    s
}

/// Draws the progression plot (every trial's CV loss and the best-so-far line).
pub fn plot_progression(path: &Path, o: &RunOutcome) -> Result<(), String> {
    let trials: Vec<(f64, usize, f64)> = o
        .trials
        .iter()
        .map(|t| (t.id as f64, t.version, t.cv_loss))
        .collect();
    plot_trials(
        path,
        &format!("{}: CV log-loss per trial", o.dataset.0),
        "CV log-loss",
        &trials,
    )
}

/// Draws a progression plot of trials `(x, version, loss)` in run order: every finite loss as a
/// point, the best-so-far line, and a vertical line where the version changes.
pub fn plot_trials(
    path: &Path,
    caption: &str,
    y_desc: &str,
    trials: &[(f64, usize, f64)],
) -> Result<(), String> {
    use plotters::prelude::*;
    let pts: Vec<(f64, f64)> = trials
        .iter()
        .filter(|t| t.2.is_finite())
        .map(|t| (t.0, t.2))
        .collect();
    if pts.is_empty() {
        return Err("no finished trials".into());
    }
    let mut best = f64::INFINITY;
    let best_line: Vec<(f64, f64)> = pts
        .iter()
        .map(|&(x, y)| {
            best = best.min(y);
            (x, best)
        })
        .collect();
    let lo = best * 0.95;
    let mut ys: Vec<f64> = pts.iter().map(|p| p.1).collect();
    ys.sort_by(f64::total_cmp);
    let hi = ys[(ys.len() * 9 / 10).min(ys.len() - 1)].max(pts[0].1) * 1.05;
    let root = BitMapBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let draw = |with_text: bool| -> Result<(), String> {
        let mut b = ChartBuilder::on(&root);
        b.margin(15);
        if with_text {
            b.caption(caption, ("sans-serif", 22))
                .x_label_area_size(35)
                .y_label_area_size(55);
        }
        let mut chart = b
            .build_cartesian_2d(0f64..pts.len() as f64 + 1.0, lo..hi)
            .map_err(|e| e.to_string())?;
        if with_text {
            chart
                .configure_mesh()
                .x_desc("trial")
                .y_desc(y_desc)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        chart
            .draw_series(
                pts.iter()
                    .map(|&(x, y)| Circle::new((x, y.min(hi)), 3, BLUE.mix(0.5).filled())),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(best_line.clone(), RED.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        // Version boundaries.
        let mut last = 0usize;
        for &(x, version, _) in trials {
            if version != last {
                last = version;
                let x = x - 0.5;
                chart
                    .draw_series(LineSeries::new(vec![(x, lo), (x, hi)], BLACK.mix(0.3)))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    };
    // Fonts may be missing on a bare machine; fall back to a plot without text.
    if draw(true).is_err() {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(false)?;
    }
    root.present().map_err(|e| e.to_string())
}

/// Writes the run folder (trials.jsonl is appended during the run).
pub fn write_run_folder(out: &Path, o: &RunOutcome, train: &Dataset) -> Result<(), RunError> {
    let io = |p: &Path, e: String| RunError::Output {
        path: p.display().to_string(),
        message: e,
    };
    let md = out.join("report.md");
    std::fs::write(&md, render_markdown(o)).map_err(|e| io(&md, e.to_string()))?;
    o.kb.save(&out.join("knowledge.json"))?;
    let png = out.join("progression.png");
    if let Err(e) = plot_progression(&png, o) {
        tracing::warn!("progression plot not written: {e}");
    }
    let best = o.versions.last().map(|v| v.best.clone());
    let model = serde_json::json!({
        "format": "magnet-autoresearch-model/1",
        "note": "refit is deterministic: fit this candidate on the training part with this seed",
        "domain": o.domain,
        "data": o.dataset.0,
        "data_hash": o.dataset.1,
        "seed": o.config.seed,
        "folds": o.config.folds,
        "classes": train.classes,
        "features": train.feature_names,
        "candidate": best,
        "cv_loss": o.versions.last().map(|v| v.best_loss),
        "test": o.test,
    });
    let bm = out.join("best_model.json");
    std::fs::write(
        &bm,
        serde_json::to_string_pretty(&model).unwrap_or_default(),
    )
    .map_err(|e| io(&bm, e.to_string()))?;
    let vj = out.join("versions.json");
    std::fs::write(
        &vj,
        serde_json::to_string_pretty(&o.versions).unwrap_or_default(),
    )
    .map_err(|e| io(&vj, e.to_string()))?;
    Ok(())
}
