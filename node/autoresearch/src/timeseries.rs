//! Time-series direction domain: daily prices → BUY / SELL / HOLD of the next day's return with
//! a neutral band, lagged features only, walk-forward validation, hit rate against naive
//! baselines (always-up, last-direction).
//!
//! Guarantees: [`features_at`] receives only the prefix of each series up to and including day
//! t (a slice ending at t), so no feature can read the future; a test perturbs every later
//! value and checks the features do not move. Rows are in date order; the held-out test is the
//! last 20 % of dates and walk-forward folds fit only on rows before each validation block, with
//! a gap of one day (the label horizon). Not guaranteed: profitability — no costs or slippage.

use crate::data::{is_missing, ColumnUse, Dataset, LoadError, Mat, Table};
use crate::run::Domain;
use crate::split::{self, Fold, HoldoutMode};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Names of the lagged features, in order.
pub const FEATURES: &[&str] = &[
    "ret_1",
    "ret_2",
    "ret_3",
    "ret_4",
    "ret_5",
    "mom_10",
    "mom_20",
    "vol_10",
    "range",
    "volume_ratio",
    "dist_ma20",
    "rsi_14",
    "vol_20",
    "hold_prior_10",
    "hold_prior_20",
    "z_ret_1",
    "z_mom_10",
    "z_dist_ma20",
];
/// Days of history a row needs.
pub const WARMUP: usize = 21;
/// Class labels (index = class).
pub const CLASSES: [&str; 3] = ["SELL", "HOLD", "BUY"];

/// The time-series domain.
#[derive(Debug, Clone, Copy)]
pub struct TimeSeries {
    /// Neutral band: |next-day return| ≤ band is HOLD.
    pub band: f64,
}

impl Default for TimeSeries {
    fn default() -> Self {
        TimeSeries { band: 0.005 }
    }
}

/// One series' columns up to some day (prefix slices).
pub struct Prefix<'a> {
    /// Prices (adjusted close).
    pub price: &'a [f64],
    /// Highs.
    pub high: &'a [f64],
    /// Lows.
    pub low: &'a [f64],
    /// Volumes.
    pub volume: &'a [f64],
}

/// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let y = 1.0 - poly * (-x * x).exp();
    if x >= 0.0 {
        y
    } else {
        -y
    }
}

/// Features for the last day of `h` (needs `WARMUP` days) under the neutral `band`. Reads
/// nothing beyond the prefix.
///
/// Besides raw lagged returns, momentum, range, volume and RSI, it gives volatility-scaled
/// versions (returns in units of the 20-day volatility, so one model serves calm and wild
/// regimes) and the HOLD prior `P(|r| ≤ band)` of a zero-mean normal return with the recent
/// volatility (`erf(band / (σ √2))` over 10 and 20 days): the share of HOLD days moves with the
/// volatility regime, which raw returns only show indirectly.
pub fn features_at(h: &Prefix, band: f64) -> Option<Vec<f64>> {
    let t = h.price.len().checked_sub(1)?;
    if t < WARMUP {
        return None;
    }
    let p = h.price;
    let r = |i: usize| p[i] / p[i - 1] - 1.0;
    let rets: Vec<f64> = (t - 19..=t).map(r).collect();
    let last10 = &rets[rets.len() - 10..];
    let m10 = last10.iter().sum::<f64>() / 10.0;
    let vol10 = (last10.iter().map(|x| (x - m10).powi(2)).sum::<f64>() / 10.0).sqrt();
    let ma20 = p[t - 19..=t].iter().sum::<f64>() / 20.0;
    let vma = h.volume[t - 19..=t].iter().sum::<f64>() / 20.0;
    let last14 = &rets[rets.len() - 14..];
    let gain: f64 = last14.iter().filter(|x| **x > 0.0).sum();
    let loss: f64 = -last14.iter().filter(|x| **x < 0.0).sum::<f64>();
    let rsi = if gain + loss > 0.0 {
        gain / (gain + loss)
    } else {
        0.5
    };
    let m20 = rets.iter().sum::<f64>() / 20.0;
    let vol20 = (rets.iter().map(|x| (x - m20).powi(2)).sum::<f64>() / 20.0).sqrt();
    let floor = 1e-6;
    let hold_prior = |sd: f64| erf(band / (sd.max(floor) * std::f64::consts::SQRT_2));
    let dist_ma20 = p[t] / ma20 - 1.0;
    Some(vec![
        r(t),
        r(t - 1),
        r(t - 2),
        r(t - 3),
        r(t - 4),
        p[t] / p[t - 10] - 1.0,
        p[t] / p[t - 20] - 1.0,
        vol10,
        (h.high[t] - h.low[t]) / p[t],
        if vma > 0.0 {
            h.volume[t] / vma - 1.0
        } else {
            0.0
        },
        dist_ma20,
        rsi,
        vol20,
        hold_prior(vol10),
        hold_prior(vol20),
        r(t) / vol20.max(floor),
        (p[t] / p[t - 10] - 1.0) / (vol20.max(floor) * 10f64.sqrt()),
        dist_ma20 / vol20.max(floor),
    ])
}

/// The class of a return under a neutral band.
pub fn direction(ret: f64, band: f64) -> usize {
    if ret > band {
        2
    } else if ret < -band {
        0
    } else {
        1
    }
}

impl TimeSeries {
    /// Builds the data set from a table.
    pub fn from_table(
        &self,
        table: &Table,
        name: &str,
        price_col: &str,
        group_col: Option<&str>,
    ) -> Result<Dataset, LoadError> {
        let date = table.column("Date")?;
        let pc = table.column(price_col)?;
        let prices = table.numeric_column(pc)?;
        let opt = |n: &str| -> Result<Option<Vec<f64>>, LoadError> {
            match table.column(n) {
                Ok(c) => table.numeric_column(c).map(Some),
                Err(_) => Ok(None),
            }
        };
        let high = opt("High")?;
        let low = opt("Low")?;
        let vol = opt("Volume")?;
        let close = opt("Close")?;
        let gc = match group_col {
            Some(g) => Some(table.column(g)?),
            None => None,
        };
        for (i, v) in prices.iter().enumerate() {
            if v.is_nan() || *v <= 0.0 {
                return Err(LoadError::NonNumeric {
                    line: i as u64 + 2,
                    column: price_col.to_string(),
                    value: table.rows[i][pc].clone(),
                });
            }
        }
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, row) in table.rows.iter().enumerate() {
            if is_missing(&row[date]) {
                return Err(LoadError::NonNumeric {
                    line: i as u64 + 2,
                    column: "Date".into(),
                    value: row[date].clone(),
                });
            }
            let g = gc.map_or(String::new(), |c| row[c].trim().to_string());
            groups.entry(g).or_default().push(i);
        }
        let names: Vec<String> = groups.keys().cloned().collect();
        // (date, group, features, label)
        let mut rows: Vec<(String, usize, Vec<f64>, usize)> = Vec::new();
        for (gi, (_, idx)) in groups.iter_mut().enumerate() {
            idx.sort_by(|a, b| table.rows[*a][date].cmp(&table.rows[*b][date]));
            let p: Vec<f64> = idx.iter().map(|&i| prices[i]).collect();
            // Ratio of adjusted to raw close rescales highs and lows consistently.
            let adj = |src: &Option<Vec<f64>>| -> Vec<f64> {
                idx.iter()
                    .enumerate()
                    .map(|(j, &i)| match (src, &close) {
                        (Some(s), Some(c)) if c[i] > 0.0 && !s[i].is_nan() => s[i] * p[j] / c[i],
                        _ => p[j],
                    })
                    .collect()
            };
            let hi = adj(&high);
            let lo = adj(&low);
            let v: Vec<f64> = idx
                .iter()
                .map(|&i| {
                    vol.as_ref()
                        .map_or(0.0, |v| if v[i].is_nan() { 0.0 } else { v[i] })
                })
                .collect();
            for t in WARMUP..p.len().saturating_sub(1) {
                let prefix = Prefix {
                    price: &p[..=t],
                    high: &hi[..=t],
                    low: &lo[..=t],
                    volume: &v[..=t],
                };
                if let Some(f) = features_at(&prefix, self.band) {
                    let label = direction(p[t + 1] / p[t] - 1.0, self.band);
                    rows.push((table.rows[idx[t]][date].clone(), gi, f, label));
                }
            }
        }
        rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let y: Vec<usize> = rows.iter().map(|r| r.3).collect();
        let classes: Vec<String> = CLASSES.iter().map(|s| s.to_string()).collect();
        crate::data::check_counts(&y, &classes, price_col, 0)?;
        let mut x = Mat::with_cols(FEATURES.len());
        for r in &rows {
            x.push_row(&r.2);
        }
        let mut h = Sha256::new();
        h.update(table.file_hash.as_bytes());
        h.update(
            format!(
                "|timeseries|{price_col}|{}|{}",
                group_col.unwrap_or(""),
                self.band
            )
            .as_bytes(),
        );
        Ok(Dataset {
            x,
            feature_names: FEATURES.iter().map(|s| s.to_string()).collect(),
            numeric_features: (0..FEATURES.len()).collect(),
            text_tokens: Mat::with_cols(0),
            token_names: Vec::new(),
            y,
            classes,
            context: gc.map(|_| rows.iter().map(|r| r.1).collect()),
            context_names: if gc.is_some() { names } else { Vec::new() },
            hash: hex::encode(h.finalize()),
            name: name.to_string(),
            dropped_rows: 0,
            columns: vec![(price_col.to_string(), ColumnUse::Target)],
        })
    }

    fn gap(&self, d: &Dataset) -> usize {
        d.context_names.len().max(1)
    }
}

impl Domain for TimeSeries {
    fn name(&self) -> &'static str {
        "timeseries"
    }
    fn load(
        &self,
        path: &Path,
        target: Option<&str>,
        context: Option<&str>,
    ) -> Result<Dataset, LoadError> {
        let table = Table::read(path)?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        );
        self.from_table(&table, &name, target.unwrap_or("Adj Close"), context)
    }
    fn holdout_mode(&self) -> HoldoutMode {
        // Gap of a few rows covers the one-day label horizon across all series.
        HoldoutMode::Temporal { gap: 4 }
    }
    fn folds(&self, train: &Dataset, k: usize, _seed: u64) -> Vec<Fold> {
        split::walk_forward(train.len(), k, self.gap(train))
    }
    fn walk_forward_blocks(&self) -> usize {
        WALK_FORWARD_BLOCKS
    }
    fn walk_forward_gap(&self, train: &Dataset) -> usize {
        self.gap(train)
    }
    fn decision_metrics(&self, test: &Dataset, probs: &[Vec<f64>]) -> Vec<(String, f64)> {
        direction_metrics(test, probs, self.band, WALK_FORWARD_BLOCKS)
    }
}

/// Held-out blocks of the walk-forward final evaluation.
pub const WALK_FORWARD_BLOCKS: usize = 5;

/// Hit rate (3-class accuracy) and directional rate (accuracy where both the call and the
/// outcome are BUY or SELL) of the model's argmax calls against always-up (always BUY) and
/// last-direction (the class of the last known return under the band), overall and per
/// consecutive block, with 95 % bootstrap intervals of the paired per-row hit differences.
pub fn direction_metrics(
    test: &Dataset,
    probs: &[Vec<f64>],
    band: f64,
    blocks: usize,
) -> Vec<(String, f64)> {
    let n = test.len().min(probs.len());
    let pred = crate::analysis::decide(&probs[..n], None);
    let up = vec![2usize; n];
    let last: Vec<usize> = (0..n).map(|i| direction(test.x.get(i, 0), band)).collect();
    let y = &test.y[..n];
    let hits = |p: &[usize], r: std::ops::Range<usize>| -> f64 {
        r.clone().filter(|&i| p[i] == y[i]).count() as f64 / r.len().max(1) as f64
    };
    let directional = |p: &[usize]| {
        let pairs: Vec<(usize, usize)> = p
            .iter()
            .zip(y)
            .filter(|(a, b)| **a != 1 && **b != 1)
            .map(|(a, b)| (*a, *b))
            .collect();
        pairs.iter().filter(|(a, b)| a == b).count() as f64 / pairs.len().max(1) as f64
    };
    let mut m: Vec<(String, f64)> = vec![
        ("hit rate (model)".into(), hits(&pred, 0..n)),
        ("hit rate (always-up)".into(), hits(&up, 0..n)),
        ("hit rate (last-direction)".into(), hits(&last, 0..n)),
        ("directional rate (model)".into(), directional(&pred)),
        ("directional rate (always-up)".into(), directional(&up)),
        (
            "directional rate (last-direction)".into(),
            directional(&last),
        ),
        (
            "share of non-HOLD calls (model)".into(),
            pred.iter().filter(|&&p| p != 1).count() as f64 / n.max(1) as f64,
        ),
    ];
    for (name, base) in [("always-up", &up), ("last-direction", &last)] {
        let d: Vec<f64> = (0..n)
            .map(|i| f64::from(u8::from(pred[i] == y[i])) - f64::from(u8::from(base[i] == y[i])))
            .collect();
        let (lo, hi) = crate::report::bootstrap_ci(&d, 7, 2000);
        m.push((format!("hit rate − {name}, 95% CI low"), lo));
        m.push((format!("hit rate − {name}, 95% CI high"), hi));
    }
    let blocks = blocks.min(n);
    for b in 0..blocks {
        let r = b * n / blocks..(b + 1) * n / blocks;
        for (name, p) in [
            ("model", &pred),
            ("always-up", &up),
            ("last-direction", &last),
        ] {
            m.push((
                format!("block {} hit rate ({name})", b + 1),
                hits(p, r.clone()),
            ));
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn series() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let table = Table::read(
            &Path::new(
                &std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join("../../data/timeseries/stocks_daily.csv"),
        )
        .unwrap();
        let pc = table.column("Adj Close").unwrap();
        let rows: Vec<usize> = (0..table.rows.len())
            .filter(|&i| table.rows[i][0] == "MSFT")
            .take(300)
            .collect();
        let col = |c: &str| {
            let j = table.column(c).unwrap();
            rows.iter()
                .map(|&i| table.rows[i][j].parse::<f64>().unwrap())
                .collect::<Vec<_>>()
        };
        let p: Vec<f64> = rows
            .iter()
            .map(|&i| table.rows[i][pc].parse().unwrap())
            .collect();
        (p, col("High"), col("Low"), col("Volume"))
    }

    #[test]
    fn no_feature_uses_the_future() {
        let (p, h, l, v) = series();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..40 {
            let t = rng.gen_range(WARMUP..p.len() - 2);
            let before: Vec<Vec<f64>> = (WARMUP..=t)
                .map(|s| {
                    features_at(
                        &Prefix {
                            price: &p[..=s],
                            high: &h[..=s],
                            low: &l[..=s],
                            volume: &v[..=s],
                        },
                        0.005,
                    )
                    .unwrap()
                })
                .collect();
            // Scramble every value after day t.
            let scramble = |x: &[f64], rng: &mut rand_chacha::ChaCha8Rng| -> Vec<f64> {
                x.iter()
                    .enumerate()
                    .map(|(i, &a)| {
                        if i > t {
                            a * rng.gen_range(0.5..2.0)
                        } else {
                            a
                        }
                    })
                    .collect()
            };
            let (p2, h2, l2, v2) = (
                scramble(&p, &mut rng),
                scramble(&h, &mut rng),
                scramble(&l, &mut rng),
                scramble(&v, &mut rng),
            );
            let after: Vec<Vec<f64>> = (WARMUP..=t)
                .map(|s| {
                    features_at(
                        &Prefix {
                            price: &p2[..=s],
                            high: &h2[..=s],
                            low: &l2[..=s],
                            volume: &v2[..=s],
                        },
                        0.005,
                    )
                    .unwrap()
                })
                .collect();
            assert_eq!(
                before, after,
                "features up to day {t} changed when the future changed"
            );
        }
    }

    #[test]
    fn the_dataset_is_in_date_order_with_three_direction_classes() {
        let path = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../data/timeseries/stocks_daily.csv");
        let d = TimeSeries::default()
            .load(&path, None, Some("Ticker"))
            .unwrap();
        assert_eq!(d.classes, vec!["SELL", "HOLD", "BUY"]);
        assert_eq!(d.context_names, vec!["GOOG", "MSFT"]);
        assert!(d.len() > 5000);
        for c in 0..3 {
            assert!(d.y.iter().filter(|&&y| y == c).count() > 500);
        }
    }

    #[test]
    fn a_missing_price_column_is_named() {
        let path = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../../data/timeseries/stocks_daily.csv");
        let err = TimeSeries::default()
            .load(&path, Some("Price"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("column `Price` not found"), "{err}");
    }
}
