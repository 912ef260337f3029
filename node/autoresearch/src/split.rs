//! Splits: a held-out test set sealed away from the search, stratified K-fold and walk-forward
//! folds on the training part, and leave-one-context-out (LOCO) folds.
//!
//! Guarantee (structural): [`holdout`] returns the test rows inside a [`SealedTest`] whose only
//! accessor, [`SealedTest::open`], takes a [`crate::report::ReportKey`]. That key has a private
//! constructor in the `report` module, so the search, the strategists and the error analysis
//! cannot read the test rows: code that tries does not compile.
//!
//! ```compile_fail
//! # fn f(s: magnet_autoresearch::split::SealedTest) {
//! // A ReportKey cannot be made outside the report module:
//! let rows = s.open(magnet_autoresearch::report::ReportKey(()));
//! # }
//! ```

use crate::data::Dataset;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// One validation fold: rows to fit on and rows to score, as indices into the training part.
#[derive(Debug, Clone, PartialEq)]
pub struct Fold {
    /// Rows to fit on.
    pub train: Vec<usize>,
    /// Rows to score.
    pub val: Vec<usize>,
}

/// How the held-out test rows are chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HoldoutMode {
    /// A stratified random fraction.
    Stratified,
    /// The last rows in order (time series), after dropping `gap` rows between train and test.
    Temporal {
        /// Rows dropped between the training part and the test part (label horizon).
        gap: usize,
    },
}

/// The data the search may use.
#[derive(Debug, Clone)]
pub struct TrainPart {
    /// Training rows (the test rows are not in here).
    pub data: Dataset,
}

/// The held-out test rows, readable only by the final report.
#[derive(Debug)]
pub struct SealedTest {
    data: Dataset,
}

impl SealedTest {
    /// Number of test rows (the only thing the search may know).
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether there are no test rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    /// Opens the test rows; consumes the seal. Only the report can make a [`crate::report::ReportKey`].
    pub fn open(self, _key: crate::report::ReportKey) -> Dataset {
        self.data
    }
}

/// Splits off a held-out test set of `frac` of the rows.
pub fn holdout(data: Dataset, frac: f64, seed: u64, mode: HoldoutMode) -> (TrainPart, SealedTest) {
    let n = data.len();
    let (train_idx, test_idx) = match mode {
        HoldoutMode::Stratified => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x7e57);
            let mut train = Vec::new();
            let mut test = Vec::new();
            for c in 0..data.n_classes() {
                let mut rows: Vec<usize> = (0..n).filter(|&i| data.y[i] == c).collect();
                rows.shuffle(&mut rng);
                let t = ((rows.len() as f64) * frac).round() as usize;
                test.extend_from_slice(&rows[..t]);
                train.extend_from_slice(&rows[t..]);
            }
            train.sort_unstable();
            test.sort_unstable();
            (train, test)
        }
        HoldoutMode::Temporal { gap } => {
            let t = ((n as f64) * (1.0 - frac)).round() as usize;
            let train_end = t.saturating_sub(gap);
            ((0..train_end).collect(), (t..n).collect())
        }
    };
    (
        TrainPart {
            data: data.subset(&train_idx),
        },
        SealedTest {
            data: data.subset(&test_idx),
        },
    )
}

/// A fixed split: the first `n_train` rows train, the rest are the sealed test rows (a test
/// file given from outside, [`crate::run::load_with_test`]).
pub fn fixed(data: Dataset, n_train: usize) -> (TrainPart, SealedTest) {
    let n_train = n_train.min(data.len());
    let train: Vec<usize> = (0..n_train).collect();
    let test: Vec<usize> = (n_train..data.len()).collect();
    (
        TrainPart {
            data: data.subset(&train),
        },
        SealedTest {
            data: data.subset(&test),
        },
    )
}

/// Stratified K-fold: each class's rows shuffled (seeded) and dealt round-robin into `k` folds.
pub fn stratified_kfold(y: &[usize], k: usize, seed: u64) -> Vec<Fold> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xf01d);
    let n_classes = y.iter().copied().max().map_or(0, |m| m + 1);
    let mut assign = vec![0usize; y.len()];
    let mut offset = 0;
    for c in 0..n_classes {
        let mut rows: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
        rows.shuffle(&mut rng);
        for (j, &r) in rows.iter().enumerate() {
            assign[r] = (j + offset) % k;
        }
        offset += rows.len();
    }
    (0..k)
        .map(|f| Fold {
            train: (0..y.len()).filter(|&i| assign[i] != f).collect(),
            val: (0..y.len()).filter(|&i| assign[i] == f).collect(),
        })
        .collect()
}

/// Walk-forward folds over rows in time order: `k` validation blocks after an initial block;
/// each fold fits on every row before its block minus `gap` rows. No row after a validation
/// block is ever used to fit for it.
pub fn walk_forward(n: usize, k: usize, gap: usize) -> Vec<Fold> {
    let block = n / (k + 1);
    (1..=k)
        .map(|f| {
            let start = f * block;
            let end = if f == k { n } else { (f + 1) * block };
            Fold {
                train: (0..start.saturating_sub(gap)).collect(),
                val: (start..end).collect(),
            }
        })
        .collect()
}

/// Leave-one-context-out folds (one per context value present).
pub fn loco(context: &[usize], n_contexts: usize) -> Vec<Fold> {
    (0..n_contexts)
        .filter(|c| context.contains(c))
        .map(|c| Fold {
            train: (0..context.len()).filter(|&i| context[i] != c).collect(),
            val: (0..context.len()).filter(|&i| context[i] == c).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn stratified_folds_partition_the_rows(y in proptest::collection::vec(0usize..3, 30..200), k in 2usize..6, seed in 0u64..1000) {
            let folds = stratified_kfold(&y, k, seed);
            let mut seen = vec![0; y.len()];
            for f in &folds {
                for &i in &f.val { seen[i] += 1; }
                prop_assert_eq!(f.train.len() + f.val.len(), y.len());
                prop_assert!(f.train.iter().all(|i| !f.val.contains(i)));
            }
            prop_assert!(seen.iter().all(|&s| s == 1));
        }

        #[test]
        fn walk_forward_never_fits_on_rows_at_or_after_its_block(n in 50usize..500, k in 2usize..6, gap in 0usize..5) {
            for f in walk_forward(n, k, gap) {
                let first_val = f.val[0];
                prop_assert!(f.train.iter().all(|&t| t + gap < first_val));
            }
        }
    }
}
