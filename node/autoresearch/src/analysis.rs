//! Error analysis of a model's out-of-fold predictions on the training part: confusion matrix,
//! per-context slices, calibration, fold-to-fold variance, residuals by feature bins and a
//! learning-curve signal (in-sample vs out-of-fold loss). The result names the failure
//! [`Pattern`]s that the strategists react to.
//!
//! Guarantees: only out-of-fold predictions are used (never the test set, which this module
//! cannot reach). The pattern thresholds are fixed heuristics, documented on [`Pattern`].

use crate::data::Dataset;
use crate::pipeline::{log_loss, Evaluation};
use serde::{Deserialize, Serialize};

/// A failure pattern found by error analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    /// In-sample loss ≥ 85 % of out-of-fold loss: the model cannot even fit its training rows.
    Underfit,
    /// In-sample loss < 60 % of out-of-fold loss: it memorises.
    Overfit,
    /// Expected calibration error > 0.03.
    Miscalibrated,
    /// Some context's mean predicted probability misses its observed rate by > 0.04, or its
    /// loss is > 1.5× the best context's.
    ContextDisparity,
    /// Binary: the minority class's recall is < 70 % of the majority's at threshold 0.5.
    MinorityErrors,
    /// Fold log-loss standard deviation > 15 % of the mean.
    FoldInstability,
    /// A quartile bin of some numeric feature has loss > 1.5× overall (≥ 15 rows).
    FeatureRegionErrors,
    /// More than 15 feature columns.
    ManyFeatures,
    /// Free-text columns exist whose tokens are not used yet.
    UnusedText,
    /// Language model (`bitnet-lm`): its gain over the training unigram on the rare tokens
    /// trails its gain on the frequent ones by more than 0.5 nats/token.
    RareTokenErrors,
    /// Language model: the last quarter of the context window is not ≥ 2 % better than the
    /// first quarter, so the model does not use its context.
    ContextUnused,
    /// Language model: the training loss spiked (a step > 1.25× the best so far, after the
    /// first fifth) or its tail rose (last quarter's mean > 1.02× the quarter before).
    UnstableTraining,
}

/// One context's slice of the out-of-fold predictions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextSlice {
    /// Context label.
    pub name: String,
    /// Rows.
    pub n: usize,
    /// Log-loss.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Largest |mean predicted − observed| over classes.
    pub calibration_gap: f64,
}

/// A feature bin with high loss.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureBin {
    /// Feature name.
    pub feature: String,
    /// Quartile (1–4) or "missing".
    pub bin: String,
    /// Rows.
    pub n: usize,
    /// Log-loss in the bin.
    pub loss: f64,
}

/// The error analysis of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorReport {
    /// Out-of-fold log-loss.
    pub cv_loss: f64,
    /// Standard deviation of fold losses.
    pub fold_sd: f64,
    /// Mean in-sample loss.
    pub train_loss: f64,
    /// Accuracy (argmax).
    pub accuracy: f64,
    /// Balanced accuracy (argmax, or tuned threshold for binary).
    pub balanced_accuracy: f64,
    /// Confusion matrix `[true][pred]`.
    pub confusion: Vec<Vec<usize>>,
    /// Binary: the global threshold on P(class 1) that maximises balanced accuracy out of fold.
    pub threshold: Option<f64>,
    /// Binary at `threshold`: false positives.
    pub fp: usize,
    /// Binary at `threshold`: false negatives.
    pub fn_: usize,
    /// Expected calibration error (10 bins of the top probability).
    pub ece: f64,
    /// Per-context slices.
    pub contexts: Vec<ContextSlice>,
    /// The worst feature bins (up to 3).
    pub worst_bins: Vec<FeatureBin>,
    /// Failure patterns found.
    pub patterns: Vec<Pattern>,
}

fn balanced_accuracy(conf: &[Vec<usize>]) -> f64 {
    let rec: Vec<f64> = conf
        .iter()
        .enumerate()
        .filter(|(_, r)| r.iter().sum::<usize>() > 0)
        .map(|(i, r)| r[i] as f64 / r.iter().sum::<usize>() as f64)
        .collect();
    rec.iter().sum::<f64>() / rec.len().max(1) as f64
}

/// Confusion matrix of decisions.
pub fn confusion(pred: &[usize], y: &[usize], k: usize) -> Vec<Vec<usize>> {
    let mut c = vec![vec![0; k]; k];
    for (&p, &t) in pred.iter().zip(y) {
        c[t][p] += 1;
    }
    c
}

/// Binary: the threshold (on P(class 1)) maximising balanced accuracy; ties → closest to 0.5.
pub fn best_threshold(p1: &[f64], y: &[usize]) -> f64 {
    let mut best = (f64::NEG_INFINITY, 0.5);
    for step in 5..=95 {
        let t = step as f64 / 100.0;
        let pred: Vec<usize> = p1.iter().map(|&p| usize::from(p >= t)).collect();
        let ba = balanced_accuracy(&confusion(&pred, y, 2));
        if ba > best.0 + 1e-12
            || ((ba - best.0).abs() <= 1e-12 && (t - 0.5).abs() < (best.1 - 0.5f64).abs())
        {
            best = (ba, t);
        }
    }
    best.1
}

/// Decisions: argmax, or `p1 ≥ threshold` for binary.
pub fn decide(probs: &[Vec<f64>], threshold: Option<f64>) -> Vec<usize> {
    probs
        .iter()
        .map(|r| match threshold {
            Some(t) if r.len() == 2 => usize::from(r[1] >= t),
            _ => {
                let mut best = 0;
                for (c, v) in r.iter().enumerate() {
                    if *v > r[best] {
                        best = c;
                    }
                }
                best
            }
        })
        .collect()
}

/// Analyses the out-of-fold predictions `ev` of a model on `data` (the training part).
pub fn analyse(data: &Dataset, ev: &Evaluation) -> ErrorReport {
    let k = data.n_classes();
    let rows: Vec<usize> = (0..data.len()).filter(|&i| ev.probs[i].is_some()).collect();
    let probs: Vec<Vec<f64>> = rows.iter().filter_map(|&i| ev.probs[i].clone()).collect();
    let y: Vec<usize> = rows.iter().map(|&i| data.y[i]).collect();
    let argmax = decide(&probs, None);
    let conf_argmax = confusion(&argmax, &y, k);
    let accuracy =
        argmax.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / y.len().max(1) as f64;
    let threshold = (k == 2).then(|| {
        let p1: Vec<f64> = probs.iter().map(|r| r[1]).collect();
        best_threshold(&p1, &y)
    });
    let decided = decide(&probs, threshold);
    let conf = confusion(&decided, &y, k);
    let (fp, fn_) = if k == 2 {
        (conf[0][1], conf[1][0])
    } else {
        (0, 0)
    };
    let mean = ev.fold_loss.iter().sum::<f64>() / ev.fold_loss.len().max(1) as f64;
    let fold_sd = (ev.fold_loss.iter().map(|l| (l - mean).powi(2)).sum::<f64>()
        / ev.fold_loss.len().max(1) as f64)
        .sqrt();
    // Calibration: 10 bins of the top probability.
    let mut bins = [(0.0f64, 0.0f64, 0usize); 10];
    for (r, &t) in probs.iter().zip(&y) {
        let top = decide(std::slice::from_ref(r), None)[0];
        let b = ((r[top] * 10.0) as usize).min(9);
        bins[b].0 += r[top];
        bins[b].1 += f64::from(u8::from(top == t));
        bins[b].2 += 1;
    }
    let n = y.len().max(1) as f64;
    let ece = bins
        .iter()
        .filter(|b| b.2 > 0)
        .map(|b| (b.0 - b.1).abs() / n)
        .sum::<f64>();
    // Context slices.
    let mut contexts = Vec::new();
    if let Some(ctx) = &data.context {
        for (c, name) in data.context_names.iter().enumerate() {
            let idx: Vec<usize> = (0..rows.len()).filter(|&j| ctx[rows[j]] == c).collect();
            if idx.is_empty() {
                continue;
            }
            let p: Vec<Vec<f64>> = idx.iter().map(|&j| probs[j].clone()).collect();
            let t: Vec<usize> = idx.iter().map(|&j| y[j]).collect();
            let d = decide(&p, None);
            let gap = (0..k)
                .map(|cl| {
                    let mp = p.iter().map(|r| r[cl]).sum::<f64>() / p.len() as f64;
                    let ob = t.iter().filter(|&&v| v == cl).count() as f64 / t.len() as f64;
                    (mp - ob).abs()
                })
                .fold(0.0, f64::max);
            contexts.push(ContextSlice {
                name: name.clone(),
                n: idx.len(),
                loss: log_loss(&p, &t),
                accuracy: d.iter().zip(&t).filter(|(a, b)| a == b).count() as f64 / t.len() as f64,
                calibration_gap: gap,
            });
        }
    }
    // Residuals by feature bins (quartiles of numeric features).
    let mut all_bins = Vec::new();
    for &j in &data.numeric_features {
        let vals: Vec<f64> = rows.iter().map(|&i| data.x.get(i, j)).collect();
        let mut sorted: Vec<f64> = vals.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.len() < 8 {
            continue;
        }
        sorted.sort_by(f64::total_cmp);
        let q = |f: f64| sorted[((sorted.len() - 1) as f64 * f) as usize];
        let cuts = [q(0.25), q(0.5), q(0.75)];
        let mut groups: Vec<Vec<usize>> = vec![Vec::new(); 5];
        for (jj, v) in vals.iter().enumerate() {
            let g = if v.is_nan() {
                4
            } else {
                cuts.iter().filter(|&&c| *v > c).count()
            };
            groups[g].push(jj);
        }
        for (g, idx) in groups.iter().enumerate() {
            if idx.len() < 15 {
                continue;
            }
            let p: Vec<Vec<f64>> = idx.iter().map(|&jj| probs[jj].clone()).collect();
            let t: Vec<usize> = idx.iter().map(|&jj| y[jj]).collect();
            all_bins.push(FeatureBin {
                feature: data.feature_names[j].clone(),
                bin: if g == 4 {
                    "missing".into()
                } else {
                    format!("Q{}", g + 1)
                },
                n: idx.len(),
                loss: log_loss(&p, &t),
            });
        }
    }
    all_bins.sort_by(|a, b| b.loss.total_cmp(&a.loss));
    all_bins.truncate(3);

    let mut patterns = Vec::new();
    if ev.train_loss >= 0.85 * ev.cv_loss {
        patterns.push(Pattern::Underfit);
    }
    if ev.train_loss < 0.6 * ev.cv_loss {
        patterns.push(Pattern::Overfit);
    }
    if ece > 0.03 {
        patterns.push(Pattern::Miscalibrated);
    }
    let best_ctx = contexts
        .iter()
        .map(|c| c.loss)
        .fold(f64::INFINITY, f64::min);
    if contexts
        .iter()
        .any(|c| c.n >= 15 && (c.calibration_gap > 0.04 || c.loss > 1.5 * best_ctx.max(0.05)))
    {
        patterns.push(Pattern::ContextDisparity);
    }
    if k == 2 {
        let rec = |c: usize| {
            conf_argmax[c][c] as f64 / conf_argmax[c].iter().sum::<usize>().max(1) as f64
        };
        let counts = [
            conf_argmax[0].iter().sum::<usize>(),
            conf_argmax[1].iter().sum::<usize>(),
        ];
        let (minor, major) = if counts[0] < counts[1] {
            (0, 1)
        } else {
            (1, 0)
        };
        if rec(minor) < 0.7 * rec(major) {
            patterns.push(Pattern::MinorityErrors);
        }
    }
    if mean > 0.0 && fold_sd > 0.15 * mean {
        patterns.push(Pattern::FoldInstability);
    }
    if all_bins.first().is_some_and(|b| b.loss > 1.5 * ev.cv_loss) {
        patterns.push(Pattern::FeatureRegionErrors);
    }
    if data.x.cols > 15 {
        patterns.push(Pattern::ManyFeatures);
    }
    if data.text_tokens.cols > 0 {
        patterns.push(Pattern::UnusedText);
    }
    ErrorReport {
        cv_loss: ev.cv_loss,
        fold_sd,
        train_loss: ev.train_loss,
        accuracy,
        balanced_accuracy: balanced_accuracy(&conf),
        confusion: conf,
        threshold,
        fp,
        fn_,
        ece,
        contexts,
        worst_bins: all_bins,
        patterns,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_moves_toward_the_minority_class() {
        // Positives have p ≈ 0.3, negatives ≈ 0.1: threshold 0.5 misses every positive.
        let mut p = Vec::new();
        let mut y = Vec::new();
        for i in 0..100usize {
            let pos = i.is_multiple_of(5);
            p.push(if pos {
                0.3 + (i % 3) as f64 * 0.01
            } else {
                0.1 + (i % 7) as f64 * 0.01
            });
            y.push(usize::from(pos));
        }
        let t = best_threshold(&p, &y);
        assert!(t > 0.16 && t <= 0.3, "{t}");
    }
}
