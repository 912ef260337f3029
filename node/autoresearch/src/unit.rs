//! Research **work units** (issue 20, ADR 0112): the piece of a research run that another
//! machine can do and a third can re-check.
//!
//! A unit is one pipeline's out-of-fold (OOF) predictions on a job's training part: the data
//! (named by the SHA-256 content address of its file), the load options (domain, target,
//! context), the split (seed, folds, held-out fraction) and the [`PipelineConfig`]. Everything
//! the loop decides is a function of these OOFs (a candidate's CV log-loss, its per-fold
//! losses, the paired one-standard-error test, the error analysis and the ensemble selection
//! combine and post-process them), so a loop whose OOFs come from other machines decides
//! exactly what the same loop decides alone — as long as each OOF is the one the unit defines.
//!
//! Units are deterministic: the same binary computes the same OOF bit for bit from the same
//! unit (models train single-threaded from the unit's seed). That makes a result checkable by
//! re-running it: [`oof_hash`] over the canonical bytes ([`oof_bytes`]) of the predictions is
//! what a worker signs and what a re-checker compares. A worker cannot claim a better score
//! than its predictions give: the coordinator derives the score from the predictions
//! ([`oof_cv_loss`]); it can only fabricate the predictions themselves, which re-running
//! exposes.
//!
//! This module is pure (no network, no chain): `node/daemon`'s research duty moves units and
//! results over the signed p2p layer, and the loop takes them through an [`OofSource`].

use crate::data::{Dataset, LoadError};
use crate::models::ModelError;
use crate::pipeline::{content_hash, log_loss, Evaluator, Oof, PipelineConfig};
use crate::run::{domain_by_name, Domain};
use crate::split::{self, Fold};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Domain tag of [`WorkUnit::hash`].
pub const UNIT_DOMAIN: &[u8] = b"MAGNET/research/unit/v1";
/// Domain tag of [`oof_hash`].
pub const OOF_DOMAIN: &[u8] = b"MAGNET/research/oof/v1";
/// Largest OOF accepted from a peer (rows × classes).
pub const MAX_OOF_CELLS: usize = 1 << 20;

/// How a research job reads and splits its data: everything of a unit but the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitContext {
    /// SHA-256 of the data file's bytes (hex): its content address.
    pub data_address: String,
    /// Domain (`tabular` or `timeseries`).
    pub domain: String,
    /// Target column.
    #[serde(default)]
    pub target: Option<String>,
    /// Context column.
    #[serde(default)]
    pub context: Option<String>,
    /// Seed of the split and the models.
    pub seed: u64,
    /// Validation folds.
    pub folds: usize,
    /// Held-out fraction (the rows no unit ever sees).
    pub test_fraction: f64,
}

/// One unit of research work: a pipeline's out-of-fold predictions under a [`UnitContext`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkUnit {
    /// Data and split.
    pub context: UnitContext,
    /// The pipeline to cross-validate.
    pub pipeline: PipelineConfig,
}

impl WorkUnit {
    /// The unit's identity (hex SHA-256 over a domain tag and its canonical JSON): what results,
    /// signatures and chain records name.
    pub fn hash(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(UNIT_DOMAIN);
        h.update((json.len() as u64).to_be_bytes());
        h.update(&json);
        hex::encode(h.finalize())
    }
}

/// What a worker answers for a unit (beside the OOF bytes themselves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitSummary {
    /// [`WorkUnit::hash`] of the unit answered.
    pub unit_hash: String,
    /// [`oof_hash`] of the predictions.
    pub oof_hash: String,
    /// CV log-loss of the raw predictions (what the predictions give; re-derived by the
    /// receiver, never trusted).
    pub cv_loss: f64,
    /// Wall time the worker spent (informational, unverified).
    pub wall_ms: u64,
}

/// Why a unit could not be prepared, run or decoded.
#[derive(Debug, thiserror::Error)]
pub enum UnitError {
    /// Unknown domain.
    #[error("unknown domain `{0}` (tabular or timeseries)")]
    Domain(String),
    /// The data file's bytes are not the unit's content address.
    #[error(
        "data content address mismatch: the unit names {expected}, the bytes hash to {actual}"
    )]
    Address {
        /// Named.
        expected: String,
        /// Found.
        actual: String,
    },
    /// Loading failed.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A model failed.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Bad split settings.
    #[error("bad split: {0}")]
    Split(String),
    /// OOF bytes that do not decode for this data.
    #[error("malformed OOF bytes: {0}")]
    Malformed(String),
}

/// SHA-256 of bytes, hex: a content address.
pub fn content_address(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A job's training part and folds, ready to run units on.
pub struct Prepared {
    /// The context it was prepared for.
    pub context: UnitContext,
    /// The training part (never the held-out rows).
    pub train: Dataset,
    /// Validation folds.
    pub folds: Vec<Fold>,
}

impl Prepared {
    /// Loads the data file at `path` (whose bytes must hash to the context's address) and
    /// splits it exactly as a research run with the same settings does.
    pub fn load(path: &Path, ctx: &UnitContext) -> Result<Prepared, UnitError> {
        let bytes = std::fs::read(path).map_err(|source| {
            UnitError::Load(LoadError::Io {
                path: path.display().to_string(),
                source,
            })
        })?;
        let actual = content_address(&bytes);
        if actual != ctx.data_address {
            return Err(UnitError::Address {
                expected: ctx.data_address.clone(),
                actual,
            });
        }
        if !(2..=50).contains(&ctx.folds) {
            return Err(UnitError::Split(format!(
                "folds must be 2..=50, got {}",
                ctx.folds
            )));
        }
        if !(0.0..0.9).contains(&ctx.test_fraction) {
            return Err(UnitError::Split(format!(
                "test fraction must be in [0, 0.9), got {}",
                ctx.test_fraction
            )));
        }
        let domain =
            domain_by_name(&ctx.domain).ok_or_else(|| UnitError::Domain(ctx.domain.clone()))?;
        Self::split(domain.as_ref(), path, ctx)
    }

    fn split(domain: &dyn Domain, path: &Path, ctx: &UnitContext) -> Result<Prepared, UnitError> {
        let ds = domain.load(path, ctx.target.as_deref(), ctx.context.as_deref())?;
        let (train, _sealed) =
            split::holdout(ds, ctx.test_fraction, ctx.seed, domain.holdout_mode());
        let folds = domain.folds(&train.data, ctx.folds, ctx.seed);
        Ok(Prepared {
            context: ctx.clone(),
            train: train.data,
            folds,
        })
    }

    /// Runs a unit's pipeline: its OOF predictions, computed exactly as the loop computes them.
    pub fn run(&self, pipeline: &PipelineConfig) -> Result<Oof, UnitError> {
        let ev = Evaluator::new(&self.train, &self.folds, self.context.seed);
        Ok((*ev.oof(pipeline)?).clone())
    }
}

/// The canonical bytes of an OOF: rows (u32 BE), classes (u32 BE), the mean in-sample loss
/// (f64 bits, BE), then per row its fold (u32 BE, `u32::MAX` = not scored) and, if scored,
/// its class probabilities (f64 bits, BE). Two OOFs are equal iff their bytes are.
pub fn oof_bytes(o: &Oof) -> Vec<u8> {
    let k = o
        .probs
        .iter()
        .flatten()
        .map(|p| p.len())
        .next()
        .unwrap_or(0);
    let mut b = Vec::with_capacity(16 + o.probs.len() * (4 + 8 * k));
    b.extend_from_slice(&(o.probs.len() as u32).to_be_bytes());
    b.extend_from_slice(&(k as u32).to_be_bytes());
    b.extend_from_slice(&o.train_loss.to_bits().to_be_bytes());
    for (i, p) in o.probs.iter().enumerate() {
        let fold = o.fold_of.get(i).copied().flatten();
        match (fold, p) {
            (Some(f), Some(p)) => {
                b.extend_from_slice(&(f as u32).to_be_bytes());
                for c in 0..k {
                    let v = p.get(c).copied().unwrap_or(f64::NAN);
                    b.extend_from_slice(&v.to_bits().to_be_bytes());
                }
            }
            _ => b.extend_from_slice(&u32::MAX.to_be_bytes()),
        }
    }
    b
}

/// Decodes [`oof_bytes`] for a data set of `rows` rows, `classes` classes and `folds` folds;
/// refuses anything else (wrong shape, trailing bytes, a fold out of range, a probability
/// that is not finite or not in [0, 1]).
pub fn oof_from_bytes(
    b: &[u8],
    rows: usize,
    classes: usize,
    folds: usize,
) -> Result<Oof, UnitError> {
    let bad = |m: String| UnitError::Malformed(m);
    if rows.saturating_mul(classes) > MAX_OOF_CELLS {
        return Err(bad(format!("{rows} rows × {classes} classes is too large")));
    }
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8], UnitError> {
        let s = b
            .get(at..at + n)
            .ok_or_else(|| UnitError::Malformed(format!("truncated at byte {at}")))?;
        at += n;
        Ok(s)
    };
    let u32_of = |s: &[u8]| u32::from_be_bytes([s[0], s[1], s[2], s[3]]);
    let f64_of = |s: &[u8]| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        f64::from_bits(u64::from_be_bytes(a))
    };
    let n = u32_of(take(4)?) as usize;
    let k = u32_of(take(4)?) as usize;
    if n != rows || k != classes {
        return Err(bad(format!(
            "shape {n} × {k}, expected {rows} rows × {classes} classes"
        )));
    }
    let train_loss = f64_of(take(8)?);
    let mut probs = Vec::with_capacity(n);
    let mut fold_of = Vec::with_capacity(n);
    for i in 0..n {
        let f = u32_of(take(4)?);
        if f == u32::MAX {
            probs.push(None);
            fold_of.push(None);
            continue;
        }
        if f as usize >= folds {
            return Err(bad(format!("row {i}: fold {f} of {folds}")));
        }
        let mut p = Vec::with_capacity(k);
        for _ in 0..k {
            let v = f64_of(take(8)?);
            if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                return Err(bad(format!("row {i}: probability {v}")));
            }
            p.push(v);
        }
        probs.push(Some(p));
        fold_of.push(Some(f as usize));
    }
    if at != b.len() {
        return Err(bad(format!("{} trailing bytes", b.len() - at)));
    }
    Ok(Oof {
        probs,
        fold_of,
        train_loss,
    })
}

/// The hash a worker signs for its predictions: hex SHA-256 over a domain tag and
/// [`oof_bytes`].
pub fn oof_hash(bytes: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(OOF_DOMAIN);
    h.update(bytes);
    hex::encode(h.finalize())
}

/// CV log-loss of raw OOF predictions over the rows they score.
pub fn oof_cv_loss(o: &Oof, y: &[usize]) -> f64 {
    let mut p = Vec::new();
    let mut t = Vec::new();
    for (i, row) in o.probs.iter().enumerate() {
        if let (Some(r), Some(&c)) = (row, y.get(i)) {
            p.push(r.clone());
            t.push(c);
        }
    }
    log_loss(&p, &t)
}

/// The cache key the loop's evaluator uses for a pipeline.
pub fn pipeline_key(p: &PipelineConfig) -> String {
    content_hash(p)
}

/// Why an [`OofSource`] could not deliver.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Results already delivered were voided (a worker was caught fabricating): the caller
    /// must forget everything derived from them and start over (cheaply: the source keeps
    /// every verified result).
    #[error("results were voided, restart the search: {0}")]
    Voided(String),
    /// No result could be obtained.
    #[error("{0}")]
    Failed(String),
}

/// Where the loop gets out-of-fold predictions from when it does not compute them itself.
pub trait OofSource: Send + Sync {
    /// The OOFs of `pipelines` (on the run's own training part and folds), in order; `None`
    /// for a pipeline that failed on the worker (the loop then runs it itself, which also
    /// re-checks the failure).
    fn fetch(&self, pipelines: &[PipelineConfig]) -> Result<Vec<Option<Oof>>, SourceError>;
}

/// The held-out log-loss of `pipeline` for a research job (issue 20, ADR 0115): fitted on
/// **every** row of the job's data file (`train`, which must hash to the context's address)
/// and scored on the creator's sealed test split (`test`, a file of the same format with the
/// same header line), with the context's seed. Deterministic like a unit, so held-out
/// evaluators agree bit for bit.
///
/// The two files are read as one (the test rows after the data rows) so that both share one
/// feature encoding and one class numbering; a test split with a class the data lacks is
/// refused.
pub fn heldout_loss(
    ctx: &UnitContext,
    train: &Path,
    test: &Path,
    pipeline: &PipelineConfig,
) -> Result<f64, UnitError> {
    let data = std::fs::read(train).map_err(|source| {
        UnitError::Load(LoadError::Io {
            path: train.display().to_string(),
            source,
        })
    })?;
    let actual = content_address(&data);
    if actual != ctx.data_address {
        return Err(UnitError::Address {
            expected: ctx.data_address.clone(),
            actual,
        });
    }
    let domain =
        domain_by_name(&ctx.domain).ok_or_else(|| UnitError::Domain(ctx.domain.clone()))?;
    let (ds, n) = crate::run::load_with_test(
        domain.as_ref(),
        train,
        test,
        ctx.target.as_deref(),
        ctx.context.as_deref(),
    )
    .map_err(|e| match e {
        crate::run::TestFileError::Load(l) => UnitError::Load(l),
        crate::run::TestFileError::Mismatch(m) => UnitError::Split(m),
    })?;
    let fit: Vec<usize> = (0..n).collect();
    let pred: Vec<usize> = (n..ds.len()).collect();
    let (probs, _) = crate::pipeline::fit_predict(pipeline, &ds, &fit, &pred, ctx.seed)?;
    let y: Vec<usize> = pred.iter().map(|&i| ds.y[i]).collect();
    Ok(log_loss(&probs, &y))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelSpec;
    use crate::pipeline::FeatureSpec;

    fn titanic() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tabular/titanic.csv")
    }

    fn ctx(path: &Path) -> UnitContext {
        UnitContext {
            data_address: content_address(&std::fs::read(path).unwrap()),
            domain: "tabular".into(),
            target: Some("survived".into()),
            context: Some("class".into()),
            seed: 7,
            folds: 3,
            test_fraction: 0.2,
        }
    }

    fn pipeline() -> PipelineConfig {
        crate::run::baseline().members[0].0.clone()
    }

    #[test]
    fn a_unit_computes_the_same_predictions_twice_and_they_round_trip_through_bytes() {
        let p = Prepared::load(&titanic(), &ctx(&titanic())).unwrap();
        let a = p.run(&pipeline()).unwrap();
        let b = p.run(&pipeline()).unwrap();
        let (ba, bb) = (oof_bytes(&a), oof_bytes(&b));
        assert_eq!(ba, bb);
        let back = oof_from_bytes(&ba, p.train.len(), p.train.n_classes(), 3).unwrap();
        assert_eq!(oof_bytes(&back), ba);
        assert_eq!(oof_hash(&ba), oof_hash(&oof_bytes(&back)));
        assert!(oof_cv_loss(&back, &p.train.y) > 0.0);
    }

    #[test]
    fn the_unit_hash_changes_with_every_field() {
        let c = ctx(&titanic());
        let u = WorkUnit {
            context: c.clone(),
            pipeline: pipeline(),
        };
        let mut seen = std::collections::BTreeSet::new();
        seen.insert(u.hash());
        let mut v = u.clone();
        v.context.seed = 8;
        seen.insert(v.hash());
        let mut v = u.clone();
        v.context.folds = 4;
        seen.insert(v.hash());
        let mut v = u.clone();
        v.context.data_address = "00".repeat(32);
        seen.insert(v.hash());
        let mut v = u.clone();
        v.pipeline = PipelineConfig {
            features: FeatureSpec::default(),
            model: ModelSpec::Logistic { l2: 0.5 },
            class_weight: true,
            stack: None,
        };
        seen.insert(v.hash());
        assert_eq!(seen.len(), 5);
    }

    #[test]
    fn the_heldout_loss_is_deterministic_and_refuses_a_mismatched_test_split() {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(titanic()).unwrap();
        let mut lines = text.lines();
        let header = lines.next().unwrap().to_string();
        let rows: Vec<&str> = lines.collect();
        let (mut train, mut test) = (header.clone() + "\n", header.clone() + "\n");
        for (i, r) in rows.iter().enumerate() {
            let to = if i % 5 == 0 { &mut test } else { &mut train };
            to.push_str(r);
            to.push('\n');
        }
        let (tr, te) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
        std::fs::write(&tr, &train).unwrap();
        std::fs::write(&te, &test).unwrap();
        let c = ctx(&tr);
        let a = heldout_loss(&c, &tr, &te, &pipeline()).unwrap();
        let b = heldout_loss(&c, &tr, &te, &pipeline()).unwrap();
        assert_eq!(a.to_bits(), b.to_bits());
        assert!(a > 0.0 && a < 1.0, "{a}");
        // Another pipeline scores otherwise.
        let other = PipelineConfig {
            features: FeatureSpec::default(),
            model: ModelSpec::Logistic { l2: 10.0 },
            class_weight: true,
            stack: None,
        };
        assert_ne!(
            heldout_loss(&c, &tr, &te, &other).unwrap().to_bits(),
            a.to_bits()
        );
        // Refusals: data not at the address, another header, no test rows.
        let wrong_header = dir.path().join("wrong.csv");
        std::fs::write(&wrong_header, test.replacen("survived", "lived", 1)).unwrap();
        let empty = dir.path().join("empty.csv");
        std::fs::write(&empty, header + "\n").unwrap();
        let mut moved = c.clone();
        moved.data_address = "cd".repeat(32);
        let cases: Vec<(&str, &UnitContext, &Path)> = vec![
            ("address", &moved, &te),
            ("header", &c, &wrong_header),
            ("no rows", &c, &empty),
        ];
        for (name, cx, t) in cases {
            assert!(heldout_loss(cx, &tr, t, &pipeline()).is_err(), "{name}");
        }
    }

    #[test]
    fn data_whose_bytes_are_not_the_named_address_is_refused() {
        let mut c = ctx(&titanic());
        c.data_address = "ab".repeat(32);
        assert!(matches!(
            Prepared::load(&titanic(), &c),
            Err(UnitError::Address { .. })
        ));
    }

    #[test]
    fn malformed_oof_bytes_are_refused() {
        let p = Prepared::load(&titanic(), &ctx(&titanic())).unwrap();
        let good = oof_bytes(&p.run(&pipeline()).unwrap());
        let (n, k) = (p.train.len(), p.train.n_classes());
        let mut trailing = good.clone();
        trailing.push(0);
        let mut bad_prob = good.clone();
        // The first scored row's first probability: after the 16-byte header and its fold.
        let at = 16 + 4;
        bad_prob[at..at + 8].copy_from_slice(&2.0f64.to_bits().to_be_bytes());
        let mut bad_fold = good.clone();
        bad_fold[16..20].copy_from_slice(&9u32.to_be_bytes());
        let cases: Vec<(&str, Vec<u8>, usize, usize)> = vec![
            ("empty", Vec::new(), n, k),
            ("truncated", good[..good.len() - 3].to_vec(), n, k),
            ("trailing byte", trailing, n, k),
            ("wrong rows", good.clone(), n + 1, k),
            ("wrong classes", good.clone(), n, k + 1),
            ("probability above one", bad_prob, n, k),
            ("fold out of range", bad_fold, n, k),
            ("too large", good.clone(), MAX_OOF_CELLS, 2),
        ];
        for (name, bytes, rows, classes) in cases {
            assert!(
                oof_from_bytes(&bytes, rows, classes, 3).is_err(),
                "{name} was accepted"
            );
        }
    }
}
