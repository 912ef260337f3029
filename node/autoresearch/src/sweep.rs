//! Config sweeps over a strategy's search space: grid, random, or a small Tree-structured
//! Parzen Estimator (TPE; our own — the `tpe` crate needs rand 0.10 and the tree pins 0.8).
//!
//! Points live in the unit cube; [`Space::decode`] maps them to values (linear or log scale,
//! integers rounded). Guarantees: deterministic given the seed and the history; every point is
//! inside the cube.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One hyperparameter's range.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Range {
    /// Real in [lo, hi], log scale if `log`.
    Float {
        /// Low end.
        lo: f64,
        /// High end.
        hi: f64,
        /// Log scale.
        log: bool,
    },
    /// Integer in [lo, hi], log scale if `log`.
    Int {
        /// Low end.
        lo: i64,
        /// High end.
        hi: i64,
        /// Log scale.
        log: bool,
    },
}

/// A search space: named ranges.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Space {
    /// Parameters in order.
    pub params: Vec<(String, Range)>,
}

/// Decoded values by name.
pub type Values = BTreeMap<String, f64>;

impl Space {
    /// Adds a float parameter.
    pub fn float(mut self, name: &str, lo: f64, hi: f64, log: bool) -> Self {
        self.params
            .push((name.into(), Range::Float { lo, hi, log }));
        self
    }
    /// Adds an integer parameter.
    pub fn int(mut self, name: &str, lo: i64, hi: i64, log: bool) -> Self {
        self.params.push((name.into(), Range::Int { lo, hi, log }));
        self
    }
    /// Dimensions.
    pub fn dims(&self) -> usize {
        self.params.len()
    }
    /// Maps a unit-cube point to values.
    pub fn decode(&self, u: &[f64]) -> Values {
        self.params
            .iter()
            .zip(u)
            .map(|((name, r), &t)| {
                let t = t.clamp(0.0, 1.0);
                let v = match *r {
                    Range::Float { lo, hi, log } => round_sig(scale(lo, hi, log, t)),
                    // The nudge keeps a log scale's round trip (exp(ln lo) = lo − ε) from
                    // flooring to lo − 1, below the range.
                    Range::Int { lo, hi, log } => (scale(lo as f64, hi as f64 + 0.999, log, t)
                        + 1e-9)
                        .floor()
                        .clamp(lo as f64, hi as f64),
                };
                (name.clone(), v)
            })
            .collect()
    }
    /// Number of distinct grid points if every dimension is an integer range (else `None`).
    pub fn grid_size(&self) -> Option<usize> {
        self.params.iter().try_fold(1usize, |acc, (_, r)| match *r {
            Range::Int { lo, hi, .. } => Some(acc.saturating_mul((hi - lo + 1).max(1) as usize)),
            Range::Float { .. } => None,
        })
    }
}

/// Rounds to 6 significant digits: a sweep value that differs from a config already run only in
/// the last bits of the float (e.g. 1e-3 read back from a log scale as 1.0000000000000002e-3)
/// is the same config, and the run recognises it as such (it is not evaluated again).
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = 5 - v.abs().log10().floor() as i32;
    let m = 10f64.powi(e.abs());
    if e >= 0 {
        (v * m).round() / m
    } else {
        (v / m).round() * m
    }
}

fn scale(lo: f64, hi: f64, log: bool, t: f64) -> f64 {
    if log && lo > 0.0 {
        (lo.ln() + t * (hi.ln() - lo.ln())).exp()
    } else {
        lo + t * (hi - lo)
    }
}

/// Which sampler a sweep used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Exhaustive or evenly spaced points.
    Grid,
    /// Uniform random points.
    Random,
    /// Tree-structured Parzen Estimator.
    Tpe,
}

impl SamplerKind {
    /// The sampler that fits a space and a trial count: grid when the space is empty, one
    /// dimension, or an integer grid no larger than the trials; TPE when there are ≥ 6 trials;
    /// random otherwise.
    pub fn choose(space: &Space, trials: usize) -> SamplerKind {
        if space.dims() <= 1 || space.grid_size().is_some_and(|g| g <= trials) {
            SamplerKind::Grid
        } else if trials >= 6 {
            SamplerKind::Tpe
        } else {
            SamplerKind::Random
        }
    }
}

/// Proposes the `i`-th point of a sweep of `total` trials, given the history so far
/// (points and their losses, lower is better). A random or TPE sweep starts at the centre of
/// the cube.
pub fn propose(
    kind: SamplerKind,
    space: &Space,
    i: usize,
    total: usize,
    history: &[(Vec<f64>, f64)],
    seed: u64,
) -> Vec<f64> {
    let d = space.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    match kind {
        SamplerKind::Grid => {
            if d == 0 {
                return Vec::new();
            }
            if let Some(g) = space.grid_size().filter(|&g| g <= total.max(1)) {
                // Enumerate the integer grid (mixed radix).
                let mut idx = i % g.max(1);
                return space
                    .params
                    .iter()
                    .map(|(_, r)| match *r {
                        Range::Int { lo, hi, .. } => {
                            let m = (hi - lo + 1).max(1) as usize;
                            let v = idx % m;
                            idx /= m;
                            if m == 1 {
                                0.0
                            } else {
                                v as f64 / (m - 1) as f64 * 0.9999
                            }
                        }
                        Range::Float { .. } => 0.5,
                    })
                    .collect();
            }
            // One dimension: evenly spaced, centre-first order for small budgets.
            let t = if total <= 1 {
                0.5
            } else {
                (i as f64 + 0.5) / total as f64
            };
            vec![t; d]
        }
        // The first point of a random or TPE sweep is the centre of the space (every range's
        // middle, geometric on log scales): one config that avoids the edges of every range
        // before the draws begin.
        SamplerKind::Random | SamplerKind::Tpe if i == 0 => vec![0.5; d],
        SamplerKind::Random => (0..d).map(|_| rng.gen::<f64>()).collect(),
        SamplerKind::Tpe => tpe(d, history, &mut rng),
    }
}

/// Startup trials of TPE before the Parzen model is used.
pub const TPE_STARTUP: usize = 4;

fn tpe(d: usize, history: &[(Vec<f64>, f64)], rng: &mut ChaCha8Rng) -> Vec<f64> {
    if history.len() < TPE_STARTUP {
        return (0..d).map(|_| rng.gen::<f64>()).collect();
    }
    let mut sorted: Vec<&(Vec<f64>, f64)> = history.iter().collect();
    sorted.sort_by(|a, b| a.1.total_cmp(&b.1));
    let n_good = ((0.25 * sorted.len() as f64).ceil() as usize).max(1);
    let (good, bad) = sorted.split_at(n_good);
    let bw = |n: usize| (1.06 * 0.3 * (n.max(1) as f64).powf(-0.2)).clamp(0.05, 0.5);
    let density = |pts: &[&(Vec<f64>, f64)], x: &[f64]| -> f64 {
        // Product-kernel Parzen estimator with a uniform prior component.
        let h = bw(pts.len());
        let mut s = 1.0; // prior weight (uniform density = 1)
        for p in pts {
            let mut k = 1.0;
            for (xj, pj) in x.iter().zip(&p.0) {
                let z = (xj - pj) / h;
                k *= (-0.5 * z * z).exp() / (h * (2.0 * std::f64::consts::PI).sqrt());
            }
            s += k;
        }
        s / (pts.len() as f64 + 1.0)
    };
    let h = bw(good.len());
    let mut best = (f64::NEG_INFINITY, vec![0.5; d]);
    for _ in 0..24 {
        let centre = &good[rng.gen_range(0..good.len())].0;
        let x: Vec<f64> = (0..d)
            .map(|j| {
                // Box–Muller normal around the chosen good point.
                let (u1, u2): (f64, f64) = (rng.gen::<f64>().max(1e-12), rng.gen());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                (centre[j] + h * z).clamp(0.0, 1.0)
            })
            .collect();
        let score = density(good, &x).ln() - density(bad, &x).ln();
        if score > best.0 {
            best = (score, x);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpe_concentrates_near_the_minimum_of_a_smooth_function() {
        let space = Space::default()
            .float("a", 0.0, 1.0, false)
            .float("b", 0.0, 1.0, false);
        let f = |u: &[f64]| (u[0] - 0.8).powi(2) + (u[1] - 0.2).powi(2);
        let mut hist: Vec<(Vec<f64>, f64)> = Vec::new();
        for i in 0..40 {
            let u = propose(SamplerKind::Tpe, &space, i, 40, &hist, 3);
            assert!(u.iter().all(|v| (0.0..=1.0).contains(v)));
            let l = f(&u);
            hist.push((u, l));
        }
        let best_tpe = hist.iter().map(|h| h.1).fold(f64::INFINITY, f64::min);
        let late: f64 = hist[30..].iter().map(|h| h.1).sum::<f64>() / 10.0;
        let early: f64 = hist[..TPE_STARTUP].iter().map(|h| h.1).sum::<f64>() / TPE_STARTUP as f64;
        assert!(best_tpe < 0.01, "{best_tpe}");
        assert!(late < early, "late {late} early {early}");
    }

    #[test]
    fn an_integer_range_decodes_inside_its_bounds_at_both_ends() {
        for (lo, hi, log) in [
            (30, 200, true),
            (5, 10, true),
            (38, 157, true),
            (2, 6, false),
        ] {
            let space = Space::default().int("n", lo, hi, log);
            assert_eq!(space.decode(&[0.0])["n"], lo as f64, "{lo}..{hi}");
            assert_eq!(space.decode(&[1.0])["n"], hi as f64, "{lo}..{hi}");
        }
    }

    #[test]
    fn decoded_floats_keep_six_significant_digits() {
        let space = Space::default().float("l2", 1e-4, 1.0, true);
        // ln-scale round trip of 1e-3 is 1.0000000000000002e-3 before rounding.
        assert_eq!(space.decode(&[0.25])["l2"], 1e-3);
        assert_eq!(space.decode(&[0.75])["l2"], 0.1);
        for (v, want) in [
            (123.456789, 123.457),
            (0.000123456789, 0.000123457),
            (0.0, 0.0),
        ] {
            assert_eq!(round_sig(v), want, "{v}");
        }
    }

    #[test]
    fn random_and_tpe_sweeps_start_at_the_centre_and_then_draw() {
        let space = Space::default()
            .float("a", 1e-4, 1.0, true)
            .int("b", 2, 6, false);
        for kind in [SamplerKind::Random, SamplerKind::Tpe] {
            assert_eq!(propose(kind, &space, 0, 10, &[], 9), vec![0.5, 0.5]);
            let v = space.decode(&propose(kind, &space, 0, 10, &[], 9));
            assert!((v["a"] - 1e-2).abs() < 1e-12, "geometric middle: {v:?}");
            assert_eq!(v["b"], 4.0);
            assert_ne!(propose(kind, &space, 1, 10, &[], 9), vec![0.5, 0.5]);
        }
    }

    #[test]
    fn integer_grids_are_enumerated_exactly() {
        let space = Space::default().int("k", 1, 3, false).int("j", 0, 1, false);
        assert_eq!(space.grid_size(), Some(6));
        let mut seen: Vec<(i64, i64)> = (0..6)
            .map(|i| {
                let v = space.decode(&propose(SamplerKind::Grid, &space, i, 6, &[], 0));
                (v["k"] as i64, v["j"] as i64)
            })
            .collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 6);
    }
}
