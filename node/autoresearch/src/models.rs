//! Model families: multinomial logistic regression (own, small), gradient-boosted trees
//! (`forust-ml`), random forest and ExtraTrees (`smartcore` regressors on 0/1 targets, one per
//! class, which gives probabilities; smartcore 0.4 has no ExtraTrees classifier).
//!
//! Guarantees: every model returns a row-stochastic probability matrix (each row sums to 1,
//! every entry in `[1e-6, 1 − 1e-6]` before renormalising) so log-loss is always finite; fitting
//! is deterministic given the seed. Models that do not accept sample weights (the smartcore
//! forests) get class weights as a prior shift of their probabilities, which is the Bayes-optimal
//! equivalent of reweighting classes.

use crate::data::Mat;
use serde::{Deserialize, Serialize};

/// Smallest probability a model may output.
pub const P_MIN: f64 = 1e-6;

/// Why a model could not be fitted.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The underlying library rejected the data or parameters.
    #[error("{model}: {message}")]
    Library {
        /// Model family.
        model: &'static str,
        /// Library message.
        message: String,
    },
    /// The configuration is not valid.
    #[error("invalid model config: {0}")]
    Invalid(String),
}

/// A model family and its hyperparameters (serialisable: part of a trial).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Multinomial logistic regression on standardised, median-imputed features.
    Logistic {
        /// L2 penalty (per row-averaged loss).
        l2: f64,
    },
    /// Gradient-boosted trees (forust-ml), one-vs-rest for more than two classes.
    Gbm {
        /// Boosting rounds.
        iterations: usize,
        /// Shrinkage.
        learning_rate: f64,
        /// Tree depth.
        max_depth: usize,
        /// Minimum hessian weight in a leaf.
        min_leaf_weight: f64,
        /// Row subsample per tree.
        subsample: f64,
        /// L2 on leaf values.
        l2: f64,
    },
    /// Random forest (bootstrap, best splits) on 0/1 targets.
    RandomForest {
        /// Trees.
        n_trees: usize,
        /// Depth cap (0 = none).
        max_depth: u16,
        /// Minimum rows per leaf.
        min_samples_leaf: usize,
        /// Fraction of features tried per split.
        max_features: f64,
    },
    /// ExtraTrees (no bootstrap, random splits) on 0/1 targets.
    ExtraTrees {
        /// Trees.
        n_trees: usize,
        /// Depth cap (0 = none).
        max_depth: u16,
        /// Minimum rows per leaf.
        min_samples_leaf: usize,
        /// Fraction of features tried per split.
        max_features: f64,
    },
}

impl ModelSpec {
    /// The family name.
    pub fn family(&self) -> &'static str {
        match self {
            ModelSpec::Logistic { .. } => "logistic",
            ModelSpec::Gbm { .. } => "gbm",
            ModelSpec::RandomForest { .. } => "random_forest",
            ModelSpec::ExtraTrees { .. } => "extra_trees",
        }
    }
    /// The default configuration of a family.
    pub fn default_for(family: &str) -> Option<ModelSpec> {
        Some(match family {
            "logistic" => ModelSpec::Logistic { l2: 1e-3 },
            "gbm" => ModelSpec::Gbm {
                iterations: 100,
                learning_rate: 0.1,
                max_depth: 3,
                min_leaf_weight: 1.0,
                subsample: 1.0,
                l2: 1.0,
            },
            "random_forest" => ModelSpec::RandomForest {
                n_trees: 60,
                max_depth: 0,
                min_samples_leaf: 3,
                max_features: 0.5,
            },
            "extra_trees" => ModelSpec::ExtraTrees {
                n_trees: 60,
                max_depth: 0,
                min_samples_leaf: 3,
                max_features: 0.7,
            },
            _ => return None,
        })
    }
    /// Checks ranges (used to validate LLM proposals and trial files).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: &str| Err(ModelError::Invalid(m.to_string()));
        match *self {
            ModelSpec::Logistic { l2 } if !(0.0..=100.0).contains(&l2) => bad("l2 in [0, 100]"),
            ModelSpec::Gbm {
                iterations,
                learning_rate,
                max_depth,
                min_leaf_weight,
                subsample,
                l2,
            } => {
                if !(1..=2000).contains(&iterations)
                    || !(1e-4..=1.0).contains(&learning_rate)
                    || !(1..=12).contains(&max_depth)
                    || !(0.0..=1000.0).contains(&min_leaf_weight)
                    || !(0.1..=1.0).contains(&subsample)
                    || !(0.0..=1000.0).contains(&l2)
                {
                    bad("gbm: iterations 1..2000, learning_rate 1e-4..1, max_depth 1..12, subsample 0.1..1")
                } else {
                    Ok(())
                }
            }
            ModelSpec::RandomForest {
                n_trees,
                min_samples_leaf,
                max_features,
                ..
            }
            | ModelSpec::ExtraTrees {
                n_trees,
                min_samples_leaf,
                max_features,
                ..
            } => {
                if !(1..=1000).contains(&n_trees)
                    || !(1..=500).contains(&min_samples_leaf)
                    || !(0.01..=1.0).contains(&max_features)
                {
                    bad("forest: n_trees 1..1000, min_samples_leaf 1..500, max_features 0.01..1")
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}

/// Median imputation + standardisation, fitted on training rows.
#[derive(Debug, Clone)]
pub struct Scaler {
    median: Vec<f64>,
    mean: Vec<f64>,
    sd: Vec<f64>,
}

impl Scaler {
    /// Fits on `x`.
    pub fn fit(x: &Mat) -> Scaler {
        let mut median = Vec::with_capacity(x.cols);
        let mut mean = Vec::with_capacity(x.cols);
        let mut sd = Vec::with_capacity(x.cols);
        for j in 0..x.cols {
            let mut v: Vec<f64> = x.col(j).into_iter().filter(|v| !v.is_nan()).collect();
            v.sort_by(f64::total_cmp);
            let med = if v.is_empty() { 0.0 } else { v[v.len() / 2] };
            let m = if v.is_empty() {
                0.0
            } else {
                v.iter().sum::<f64>() / v.len() as f64
            };
            let var = if v.is_empty() {
                0.0
            } else {
                v.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / v.len() as f64
            };
            median.push(med);
            mean.push(m);
            sd.push(if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 });
        }
        Scaler { median, mean, sd }
    }
    /// Imputes missing values with the median (no scaling).
    pub fn impute(&self, x: &Mat) -> Mat {
        let mut out = x.clone();
        for i in 0..x.rows {
            for j in 0..x.cols {
                let v = &mut out.data[i * x.cols + j];
                if v.is_nan() {
                    *v = self.median[j];
                }
            }
        }
        out
    }
    /// Imputes and standardises.
    pub fn transform(&self, x: &Mat) -> Mat {
        let mut out = self.impute(x);
        for i in 0..x.rows {
            for j in 0..x.cols {
                let v = &mut out.data[i * x.cols + j];
                *v = (*v - self.mean[j]) / self.sd[j];
            }
        }
        out
    }
}

/// A fitted model.
pub enum Fitted {
    /// Logistic regression weights `(cols + 1) × k` (last row is the bias).
    Logistic {
        /// Preprocessing.
        scaler: Scaler,
        /// Weights, row-major `(cols+1) × k`.
        w: Vec<f64>,
        /// Classes.
        k: usize,
    },
    /// One booster per class (one for binary).
    Gbm(Vec<forust_ml::GradientBooster>),
    /// One forest per class (one for binary), each a list of one-tree smartcore forests with
    /// their own seeds (see [`forest_tree_seed`]); with the imputer.
    Forest {
        /// Imputer.
        scaler: Scaler,
        /// Random-forest trees, per class.
        rf: Vec<Vec<SmartRf>>,
        /// ExtraTrees trees, per class.
        et: Vec<Vec<SmartEt>>,
    },
}

/// smartcore random forest regressor over dense f64 matrices.
pub type SmartRf = smartcore::ensemble::random_forest_regressor::RandomForestRegressor<
    f64,
    f64,
    smartcore::linalg::basic::matrix::DenseMatrix<f64>,
    Vec<f64>,
>;
/// smartcore ExtraTrees regressor over dense f64 matrices.
pub type SmartEt = smartcore::ensemble::extra_trees_regressor::ExtraTreesRegressor<
    f64,
    f64,
    smartcore::linalg::basic::matrix::DenseMatrix<f64>,
    Vec<f64>,
>;

/// The seed of tree `tree` of class `class`'s forest: distinct per tree (a SplitMix64 step of
/// the model seed, class and index), deterministic, so a unit's predictions are the same on
/// every machine.
pub fn forest_tree_seed(seed: u64, class: usize, tree: usize) -> u64 {
    let mut z = seed
        .wrapping_add((class as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add((tree as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Normalises a row to sum to one after clipping.
pub fn normalise(row: &mut [f64]) {
    for p in row.iter_mut() {
        *p = if p.is_finite() {
            p.clamp(P_MIN, 1.0 - P_MIN)
        } else {
            P_MIN
        };
    }
    let s: f64 = row.iter().sum();
    for p in row.iter_mut() {
        *p /= s;
    }
}

/// Balanced class weights `n / (k · n_c)`.
pub fn class_weights(y: &[usize], k: usize) -> Vec<f64> {
    let n = y.len() as f64;
    (0..k)
        .map(|c| {
            let nc = y.iter().filter(|&&v| v == c).count().max(1) as f64;
            n / (k as f64 * nc)
        })
        .collect()
}

fn to_dense(x: &Mat) -> Result<smartcore::linalg::basic::matrix::DenseMatrix<f64>, ModelError> {
    let rows: Vec<Vec<f64>> = (0..x.rows).map(|i| x.row(i).to_vec()).collect();
    smartcore::linalg::basic::matrix::DenseMatrix::from_2d_vec(&rows).map_err(|e| {
        ModelError::Library {
            model: "smartcore",
            message: e.to_string(),
        }
    })
}

fn col_major(x: &Mat) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.rows * x.cols);
    for j in 0..x.cols {
        for i in 0..x.rows {
            out.push(x.get(i, j));
        }
    }
    out
}

/// Fits `spec` on `x`, labels `y` in `0..k`, with per-class weights (all ones = unweighted).
pub fn fit(
    spec: &ModelSpec,
    x: &Mat,
    y: &[usize],
    k: usize,
    weights: &[f64],
    seed: u64,
) -> Result<Fitted, ModelError> {
    spec.validate()?;
    if x.rows != y.len() || x.rows == 0 || x.cols == 0 {
        return Err(ModelError::Invalid(format!(
            "{} rows × {} cols with {} labels",
            x.rows,
            x.cols,
            y.len()
        )));
    }
    let binary_targets =
        |c: usize| -> Vec<f64> { y.iter().map(|&v| f64::from(u8::from(v == c))).collect() };
    let heads: Vec<usize> = if k == 2 { vec![1] } else { (0..k).collect() };
    match spec {
        ModelSpec::Logistic { l2 } => {
            let scaler = Scaler::fit(x);
            let xs = scaler.transform(x);
            let w = fit_logistic(&xs, y, k, weights, *l2);
            Ok(Fitted::Logistic { scaler, w, k })
        }
        ModelSpec::Gbm {
            iterations,
            learning_rate,
            max_depth,
            min_leaf_weight,
            subsample,
            l2,
        } => {
            let data = col_major(x);
            let m = forust_ml::Matrix::new(&data, x.rows, x.cols);
            let sw: Vec<f64> = y.iter().map(|&c| weights[c]).collect();
            let mut boosters = Vec::new();
            for &c in &heads {
                let mut b = forust_ml::GradientBooster::default()
                    .set_iterations(*iterations)
                    .set_learning_rate(*learning_rate as f32)
                    .set_max_depth(*max_depth)
                    .set_min_leaf_weight(*min_leaf_weight as f32)
                    .set_subsample(*subsample as f32)
                    .set_l2(*l2 as f32)
                    .set_seed(seed.wrapping_add(c as u64))
                    .set_parallel(false)
                    .set_initialize_base_score(true);
                b.fit(&m, &binary_targets(c), &sw, None)
                    .map_err(|e| ModelError::Library {
                        model: "forust",
                        message: e.to_string(),
                    })?;
                boosters.push(b);
            }
            Ok(Fitted::Gbm(boosters))
        }
        ModelSpec::RandomForest {
            n_trees,
            max_depth,
            min_samples_leaf,
            max_features,
        }
        | ModelSpec::ExtraTrees {
            n_trees,
            max_depth,
            min_samples_leaf,
            max_features,
        } => {
            let scaler = Scaler::fit(x);
            let dense = to_dense(&scaler.impute(x))?;
            let m = ((x.cols as f64 * max_features).round() as usize).clamp(1, x.cols);
            let depth = if *max_depth == 0 {
                None
            } else {
                Some(*max_depth)
            };
            let mut rf = Vec::new();
            let mut et = Vec::new();
            let lib = |e: smartcore::error::Failed| ModelError::Library {
                model: "smartcore",
                message: e.to_string(),
            };
            for &c in &heads {
                let t = binary_targets(c);
                // smartcore 0.4 seeds every tree of a forest with the forest's one seed: an
                // ExtraTrees forest (no bootstrap) is then n copies of one tree, and a random
                // forest's trees draw the same feature subsets. So each tree is a one-tree
                // forest with a seed of its own.
                let (mut rf_c, mut et_c) = (Vec::new(), Vec::new());
                for tree in 0..(*n_trees).max(1) {
                    let s = forest_tree_seed(seed, c, tree);
                    if matches!(spec, ModelSpec::RandomForest { .. }) {
                        let p = smartcore::ensemble::random_forest_regressor::RandomForestRegressorParameters {
                            max_depth: depth,
                            min_samples_leaf: *min_samples_leaf,
                            min_samples_split: 2 * *min_samples_leaf,
                            n_trees: 1,
                            m: Some(m),
                            keep_samples: false,
                            seed: s,
                        };
                        rf_c.push(SmartRf::fit(&dense, &t, p).map_err(lib)?);
                    } else {
                        let p = smartcore::ensemble::extra_trees_regressor::ExtraTreesRegressorParameters {
                            max_depth: depth,
                            min_samples_leaf: *min_samples_leaf,
                            min_samples_split: 2 * *min_samples_leaf,
                            n_trees: 1,
                            m: Some(m),
                            keep_samples: false,
                            seed: s,
                        };
                        et_c.push(SmartEt::fit(&dense, &t, p).map_err(lib)?);
                    }
                }
                if !rf_c.is_empty() {
                    rf.push(rf_c);
                }
                if !et_c.is_empty() {
                    et.push(et_c);
                }
            }
            Ok(Fitted::Forest { scaler, rf, et })
        }
    }
}

fn fit_logistic(x: &Mat, y: &[usize], k: usize, cw: &[f64], l2: f64) -> Vec<f64> {
    // Full-batch Adam on the weighted mean cross-entropy + l2/2 ‖W‖² (bias unpenalised).
    let d = x.cols + 1;
    let n = x.rows as f64;
    let mut w = vec![0.0; d * k];
    let (mut m1, mut m2) = (vec![0.0; d * k], vec![0.0; d * k]);
    let (b1, b2, lr, eps) = (0.9, 0.999, 0.05, 1e-8);
    let mut grad = vec![0.0; d * k];
    let mut z = vec![0.0; k];
    for t in 1..=400 {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..x.rows {
            let r = x.row(i);
            for (c, zc) in z.iter_mut().enumerate() {
                let mut s = w[x.cols * k + c];
                for (j, v) in r.iter().enumerate() {
                    s += v * w[j * k + c];
                }
                *zc = s;
            }
            let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let se: f64 = z.iter().map(|v| (v - mx).exp()).sum();
            let wi = cw[y[i]];
            for c in 0..k {
                let p = (z[c] - mx).exp() / se;
                let g = wi * (p - f64::from(u8::from(y[i] == c))) / n;
                for (j, v) in r.iter().enumerate() {
                    grad[j * k + c] += g * v;
                }
                grad[x.cols * k + c] += g;
            }
        }
        for (idx, g) in grad.iter_mut().enumerate() {
            if idx < x.cols * k {
                *g += l2 * w[idx];
            }
        }
        let (bc1, bc2) = (1.0 - f64::powi(b1, t), 1.0 - f64::powi(b2, t));
        for idx in 0..w.len() {
            m1[idx] = b1 * m1[idx] + (1.0 - b1) * grad[idx];
            m2[idx] = b2 * m2[idx] + (1.0 - b2) * grad[idx] * grad[idx];
            w[idx] -= lr * (m1[idx] / bc1) / ((m2[idx] / bc2).sqrt() + eps);
        }
    }
    w
}

impl Fitted {
    /// Class probabilities, one row per input row (`k` columns).
    pub fn predict_proba(&self, x: &Mat, k: usize) -> Result<Vec<Vec<f64>>, ModelError> {
        let from_heads = |heads: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
            (0..x.rows)
                .map(|i| {
                    let mut row = if k == 2 {
                        let p = heads[0][i];
                        vec![1.0 - p, p]
                    } else {
                        heads.iter().map(|h| h[i]).collect()
                    };
                    normalise(&mut row);
                    row
                })
                .collect()
        };
        match self {
            Fitted::Logistic { scaler, w, k } => {
                let xs = scaler.transform(x);
                let k = *k;
                Ok((0..xs.rows)
                    .map(|i| {
                        let r = xs.row(i);
                        let z: Vec<f64> = (0..k)
                            .map(|c| {
                                w[xs.cols * k + c]
                                    + r.iter()
                                        .enumerate()
                                        .map(|(j, v)| v * w[j * k + c])
                                        .sum::<f64>()
                            })
                            .collect();
                        let mx = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                        let mut p: Vec<f64> = z.iter().map(|v| (v - mx).exp()).collect();
                        normalise(&mut p);
                        p
                    })
                    .collect())
            }
            Fitted::Gbm(boosters) => {
                let data = col_major(x);
                let m = forust_ml::Matrix::new(&data, x.rows, x.cols);
                let heads = boosters
                    .iter()
                    .map(|b| b.predict(&m, false).into_iter().map(sigmoid).collect())
                    .collect();
                Ok(from_heads(heads))
            }
            Fitted::Forest { scaler, rf, et } => {
                let dense = to_dense(&scaler.impute(x))?;
                let lib = |e: smartcore::error::Failed| ModelError::Library {
                    model: "smartcore",
                    message: e.to_string(),
                };
                // Each class's probability is the mean over its trees.
                let mean = |preds: Vec<Vec<f64>>| -> Vec<f64> {
                    let n = preds.len().max(1) as f64;
                    (0..x.rows)
                        .map(|i| preds.iter().map(|p| p[i]).sum::<f64>() / n)
                        .collect()
                };
                let mut heads = Vec::new();
                for trees in rf {
                    let preds = trees
                        .iter()
                        .map(|m| m.predict(&dense).map_err(lib))
                        .collect::<Result<Vec<_>, _>>()?;
                    heads.push(mean(preds));
                }
                for trees in et {
                    let preds = trees
                        .iter()
                        .map(|m| m.predict(&dense).map_err(lib))
                        .collect::<Result<Vec<_>, _>>()?;
                    heads.push(mean(preds));
                }
                Ok(from_heads(heads))
            }
        }
    }
}

/// Multiplies each row by class weights and renormalises (prior shift).
pub fn prior_shift(probs: &mut [Vec<f64>], w: &[f64]) {
    for row in probs.iter_mut() {
        for (p, wc) in row.iter_mut().zip(w) {
            *p *= wc;
        }
        normalise(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy() -> (Mat, Vec<usize>) {
        let mut x = Mat::with_cols(2);
        let mut y = Vec::new();
        for i in 0..120usize {
            let a = (i % 12) as f64;
            let b = ((i * 7) % 5) as f64;
            x.push_row(&[a, if i.is_multiple_of(10) { f64::NAN } else { b }]);
            y.push(usize::from(a + 0.3 * b > 6.0));
        }
        (x, y)
    }

    #[test]
    fn every_family_learns_a_separable_rule_and_returns_probabilities() {
        let (x, y) = toy();
        for fam in ["logistic", "gbm", "random_forest", "extra_trees"] {
            let spec = ModelSpec::default_for(fam).unwrap();
            let m = fit(&spec, &x, &y, 2, &[1.0, 1.0], 7).unwrap();
            let p = m.predict_proba(&x, 2).unwrap();
            let acc = p
                .iter()
                .zip(&y)
                .filter(|(r, &t)| usize::from(r[1] > 0.5) == t)
                .count() as f64
                / y.len() as f64;
            assert!(acc > 0.9, "{fam}: acc {acc}");
            for r in &p {
                assert!((r.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            }
        }
    }

    /// A noisy problem: the label follows the rule on 80 % of the rows, a seeded coin on the rest.
    fn noisy() -> (Mat, Vec<usize>, Mat, Vec<usize>) {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % 10_000) as f64 / 10_000.0
        };
        let mut make = |n: usize| {
            let mut x = Mat::with_cols(3);
            let mut y = Vec::new();
            for _ in 0..n {
                let (a, b, c) = (next(), next(), next());
                x.push_row(&[a, b, c]);
                let rule = usize::from(a + 0.5 * b > 0.75);
                y.push(if next() < 0.2 {
                    usize::from(next() < 0.5)
                } else {
                    rule
                });
            }
            (x, y)
        };
        let (x, y) = make(400);
        let (xt, yt) = make(400);
        (x, y, xt, yt)
    }

    #[test]
    fn forest_trees_get_seeds_of_their_own_so_their_mean_is_a_probability_not_a_vote_of_clones() {
        // smartcore seeds every tree of one forest alike; an ExtraTrees forest of fully grown
        // trees was then one tree: 0/1 probabilities and a held-out log-loss of several nats.
        let (x, y, xt, yt) = noisy();
        for spec in [
            ModelSpec::ExtraTrees {
                n_trees: 30,
                max_depth: 0,
                min_samples_leaf: 1,
                max_features: 1.0,
            },
            ModelSpec::RandomForest {
                n_trees: 30,
                max_depth: 0,
                min_samples_leaf: 1,
                max_features: 1.0,
            },
        ] {
            let m = fit(&spec, &x, &y, 2, &[1.0, 1.0], 3).unwrap();
            let p = m.predict_proba(&xt, 2).unwrap();
            let soft = p.iter().filter(|r| r[1] > 0.05 && r[1] < 0.95).count();
            assert!(
                soft > 100,
                "{spec:?}: only {soft} of 400 rows between 0.05 and 0.95"
            );
            let loss = crate::pipeline::log_loss(&p, &yt);
            // One fully grown tree scores several nats here (a tenth of the rows flipped, each
            // at the 1e-6 floor); thirty distinct ones average their votes.
            assert!(loss < 1.0, "{spec:?}: held-out log-loss {loss}");
            // Deterministic: the same seed gives the same forest.
            let again = fit(&spec, &x, &y, 2, &[1.0, 1.0], 3).unwrap();
            assert_eq!(again.predict_proba(&xt, 2).unwrap(), p);
        }
        let seeds: std::collections::BTreeSet<u64> =
            (0..100).map(|t| forest_tree_seed(3, 0, t)).collect();
        assert_eq!(seeds.len(), 100);
        assert_ne!(forest_tree_seed(3, 0, 0), forest_tree_seed(3, 1, 0));
    }

    #[test]
    fn invalid_hyperparameters_are_rejected_not_run() {
        let (x, y) = toy();
        let spec = ModelSpec::Gbm {
            iterations: 0,
            learning_rate: 0.1,
            max_depth: 3,
            min_leaf_weight: 1.0,
            subsample: 1.0,
            l2: 1.0,
        };
        assert!(matches!(
            fit(&spec, &x, &y, 2, &[1.0, 1.0], 1),
            Err(ModelError::Invalid(_))
        ));
    }
}
