//! The research loop (Algorithm 1) over a [`Domain`]: versions of error analysis → strategies →
//! budgeted sweeps → selection on CV log-loss → insights → convergence.
//!
//! Guarantees: the loop receives the training part only; the sealed test set is passed through
//! untouched to [`crate::report::finish`]. Trials are deterministic given (candidate, data hash,
//! seed, folds); each finished trial is appended to `trials.jsonl` and a re-run with the same
//! output folder takes finished trials from the log instead of recomputing them (resume).

use crate::analysis::{self, ErrorReport, Pattern};
use crate::data::{Dataset, LoadError};
use crate::kb::{Insight, InsightBody, KnowledgeBase, Outcome};
use crate::models::{ModelError, ModelSpec};
use crate::pipeline::{
    content_hash, Candidate, Evaluation, Evaluator, FeatureSpec, PipelineConfig,
};
use crate::split::{self, Fold, HoldoutMode, SealedTest, TrainPart};
use crate::strategy::{self, Family, RuleStrategist, Strategist, Strategy, StrategyContext};
use crate::sweep::{self, SamplerKind};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

/// A research domain: how data is loaded, held out and folded, and what decision metrics the
/// final report adds.
pub trait Domain: Send + Sync {
    /// Name (`tabular`, `timeseries`).
    fn name(&self) -> &'static str;
    /// Loads a data file.
    fn load(
        &self,
        path: &Path,
        target: Option<&str>,
        context: Option<&str>,
    ) -> Result<Dataset, LoadError>;
    /// How the test rows are held out.
    fn holdout_mode(&self) -> HoldoutMode;
    /// Validation folds on the training part.
    fn folds(&self, train: &Dataset, k: usize, seed: u64) -> Vec<Fold>;
    /// Decision metrics on test predictions (name, value), e.g. hit rate vs baselines.
    fn decision_metrics(&self, test: &Dataset, probs: &[Vec<f64>]) -> Vec<(String, f64)>;
    /// Consecutive held-out blocks for a walk-forward final evaluation (0 = none): block b is
    /// predicted by the final config refitted on every row before it (training part and the
    /// earlier held-out blocks, minus the domain's gap), as it would be used in time. The
    /// decision metrics are then computed on those predictions.
    fn walk_forward_blocks(&self) -> usize {
        0
    }
    /// Rows dropped between a walk-forward fit and the block it predicts (label horizon).
    fn walk_forward_gap(&self, _train: &Dataset) -> usize {
        0
    }
}

/// The tabular domain: CSV with a categorical target, stratified hold-out and K-fold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tabular;

impl Domain for Tabular {
    fn name(&self) -> &'static str {
        "tabular"
    }
    fn load(
        &self,
        path: &Path,
        target: Option<&str>,
        context: Option<&str>,
    ) -> Result<Dataset, LoadError> {
        let target = target.unwrap_or("target");
        crate::data::load_tabular(path, target, context)
    }
    fn holdout_mode(&self) -> HoldoutMode {
        HoldoutMode::Stratified
    }
    fn folds(&self, train: &Dataset, k: usize, seed: u64) -> Vec<Fold> {
        split::stratified_kfold(&train.y, k, seed)
    }
    fn decision_metrics(&self, _test: &Dataset, _probs: &[Vec<f64>]) -> Vec<(String, f64)> {
        Vec::new()
    }
}

/// Returns the domain for a name.
pub fn domain_by_name(name: &str) -> Option<Box<dyn Domain>> {
    match name {
        "tabular" => Some(Box::new(Tabular)),
        "timeseries" => Some(Box::new(crate::timeseries::TimeSeries::default())),
        _ => None,
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Data could not be loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// A separate test file does not fit the data file.
    #[error(transparent)]
    TestFile(#[from] TestFileError),
    /// A model failed on every trial of the baseline.
    #[error("baseline model failed: {0}")]
    Model(#[from] ModelError),
    /// Output could not be written.
    #[error("writing {path}: {message}")]
    Output {
        /// Path.
        path: String,
        /// Cause.
        message: String,
    },
    /// Knowledge base problem.
    #[error(transparent)]
    Kb(#[from] crate::kb::KbError),
    /// The work-unit source failed (see [`crate::unit::OofSource`]).
    #[error("trial source: {0}")]
    Source(String),
    /// The work-unit source voided results the search had used (internal: [`run_with`]
    /// restarts the search).
    #[error("trial results voided: {0}")]
    Voided(String),
}

/// Settings of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// Total trial budget (the baseline counts as one).
    pub budget: usize,
    /// Convergence: minimum CV log-loss gain that counts as progress.
    pub epsilon: f64,
    /// Convergence: stop after this many consecutive versions without progress.
    pub patience: usize,
    /// Seed for splits, samplers and models.
    pub seed: u64,
    /// Validation folds.
    pub folds: usize,
    /// Fraction of rows held out for the final test.
    pub test_fraction: f64,
    /// Maximum versions.
    pub max_versions: usize,
    /// Show a progress bar.
    pub progress: bool,
    /// Greedy steps of the ensemble selection after the search (0 = none; see
    /// [`crate::ensemble`]).
    #[serde(default = "default_ensemble_steps")]
    pub ensemble_steps: usize,
    /// One-standard-error rule for replacing the incumbent: a version's best (and the
    /// post-search ensemble) replaces it only if its CV log-loss gain exceeds this many standard
    /// errors of the paired per-row difference on the out-of-fold rows (0 = any gain, the rule
    /// before ADR 0083).
    #[serde(default = "default_min_gain_se")]
    pub min_gain_se: f64,
    /// Trials proposed and run together (the samplers see a batch's results only after the
    /// whole batch): part of what the run decides, so a run farmed out to N workers and the
    /// same run alone agree only with the same batch. `None`: this machine's thread count.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Second pass (ADR 0118; off by default — a tie on the development data): when the
    /// loop would stop early — converged, or every applicable idea tried — with at least
    /// [`SECOND_PASS_MIN_TRIALS`] trials of the budget left, it forgets which ideas it tried
    /// and runs on from the incumbent, once, until the budget is spent or it stops again. Its
    /// trials pass the same one-SE rule.
    #[serde(default = "default_second_pass")]
    pub second_pass: bool,
}

/// Fewest unspent trials for which the loop starts its second pass.
pub const SECOND_PASS_MIN_TRIALS: usize = 3;

fn default_second_pass() -> bool {
    false
}

fn default_min_gain_se() -> f64 {
    1.0
}

/// Whether `challenger` should replace `incumbent`: its CV log-loss is lower by more than
/// `min_se` standard errors of the paired per-row difference (by any margin when `min_se` is 0
/// or the difference cannot be computed). Returns the decision and the (gain, standard error).
pub fn clears_one_se(
    incumbent: &Evaluation,
    challenger: &Evaluation,
    y: &[usize],
    min_se: f64,
) -> (bool, Option<(f64, f64)>) {
    let paired = crate::pipeline::paired_gain(&incumbent.probs, &challenger.probs, y);
    let better = challenger.cv_loss < incumbent.cv_loss;
    let ok = match paired {
        Some((gain, se)) if min_se > 0.0 => better && gain > min_se * se,
        _ => better,
    };
    (ok, paired)
}

fn default_ensemble_steps() -> usize {
    crate::ensemble::DEFAULT_STEPS
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            budget: 60,
            epsilon: 0.002,
            patience: 2,
            seed: 42,
            folds: 5,
            test_fraction: 0.2,
            max_versions: 10,
            progress: false,
            ensemble_steps: crate::ensemble::DEFAULT_STEPS,
            min_gain_se: default_min_gain_se(),
            batch: None,
            second_pass: default_second_pass(),
        }
    }
}

/// One logged trial (serialisable: it can be farmed out and its result merged back).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialRecord {
    /// Content hash of (candidate, data hash, seed, folds).
    pub key: String,
    /// Running number.
    pub id: usize,
    /// Version.
    pub version: usize,
    /// Strategy idea.
    pub idea: String,
    /// Sampler used.
    pub sampler: SamplerKind,
    /// The config.
    pub candidate: Candidate,
    /// Data set hash.
    pub data_hash: String,
    /// Seed.
    pub seed: u64,
    /// CV log-loss (NaN if the trial failed).
    pub cv_loss: f64,
    /// Per-fold losses.
    pub fold_loss: Vec<f64>,
    /// Error message if it failed.
    #[serde(default)]
    pub error: Option<String>,
    /// Wall time in milliseconds.
    pub wall_ms: u64,
}

/// The key of a trial.
pub fn trial_key(c: &Candidate, data_hash: &str, seed: u64, folds: usize) -> String {
    content_hash(&(c, data_hash, seed, folds))
}

/// A strategy's result in a version.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StrategyResult {
    /// The strategy.
    pub strategy: Strategy,
    /// Trials run.
    pub trials: usize,
    /// Sampler.
    pub sampler: SamplerKind,
    /// Best CV loss (NaN if none ran).
    pub best_loss: f64,
}

/// One version of the loop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VersionRecord {
    /// Version (0 = baseline).
    pub version: usize,
    /// Error analysis of the model this version started from (None for v0).
    pub analysis_of_previous: Option<ErrorReport>,
    /// Strategies tried.
    pub strategies: Vec<StrategyResult>,
    /// Configs evaluated in this version.
    pub configs: usize,
    /// Best-so-far candidate after this version.
    pub best: Candidate,
    /// Its CV loss.
    pub best_loss: f64,
    /// Error analysis of the best after this version.
    pub analysis: ErrorReport,
    /// Gain over the previous version's best.
    pub gain: f64,
    /// The idea that produced the best (if this version improved).
    pub key_innovation: String,
    /// Leave-one-context-out loss of the best (if a context column exists).
    pub loco_loss: Option<f64>,
    /// Why the configured strategist's proposal was refused (the rule-based strategist then
    /// designed this version), if it was.
    #[serde(default)]
    pub strategist_error: Option<String>,
    /// Whether this version ran after the search (ensemble selection over the search's
    /// pipelines, no trials of its own) rather than being a search version.
    #[serde(default)]
    pub post_search: bool,
}

/// A finished run.
pub struct RunOutcome {
    /// Domain name.
    pub domain: String,
    /// Data set name and hash.
    pub dataset: (String, String),
    /// Versions, v0 = baseline.
    pub versions: Vec<VersionRecord>,
    /// All trials.
    pub trials: Vec<TrialRecord>,
    /// Knowledge base after the run (input merged with new insights).
    pub kb: KnowledgeBase,
    /// New insights of this run.
    pub new_insights: usize,
    /// Why it stopped.
    pub stop_reason: String,
    /// Held-out evaluation.
    pub test: crate::report::HeldOut,
    /// Settings.
    pub config: RunConfig,
    /// Strategist name.
    pub strategist: String,
}

/// The baseline model M0: default logistic regression.
pub fn baseline() -> Candidate {
    Candidate::single(PipelineConfig {
        features: FeatureSpec::default(),
        model: ModelSpec::Logistic { l2: 1e-3 },
        class_weight: false,
        stack: None,
    })
}

struct TrialLog {
    path: Option<PathBuf>,
    done: BTreeMap<String, TrialRecord>,
}

impl TrialLog {
    fn open(out: Option<&Path>) -> TrialLog {
        let path = out.map(|o| o.join("trials.jsonl"));
        let mut done = BTreeMap::new();
        if let Some(p) = &path {
            if let Ok(text) = std::fs::read_to_string(p) {
                for line in text.lines() {
                    if let Ok(r) = serde_json::from_str::<TrialRecord>(line) {
                        done.insert(r.key.clone(), r);
                    }
                }
            }
        }
        TrialLog { path, done }
    }
    fn append(&mut self, r: &TrialRecord) {
        if let Some(p) = &self.path {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
            {
                let _ = writeln!(f, "{}", serde_json::to_string(r).unwrap_or_default());
            }
        }
        self.done.insert(r.key.clone(), r.clone());
    }
}

/// Runs the loop on `domain` for a data file; writes the run folder if `out` is given.
#[allow(clippy::too_many_arguments)]
pub fn run_file(
    domain: &dyn Domain,
    data: &Path,
    target: Option<&str>,
    context: Option<&str>,
    cfg: &RunConfig,
    kb_in: KnowledgeBase,
    strategist: &dyn Strategist,
    out: Option<&Path>,
) -> Result<RunOutcome, RunError> {
    let ds = domain.load(data, target, context)?;
    let (train, sealed) = split::holdout(ds, cfg.test_fraction, cfg.seed, domain.holdout_mode());
    run(domain, train, sealed, cfg, kb_in, strategist, out)
}

/// Why a data file and a separate test file could not be read as one data set.
#[derive(Debug, thiserror::Error)]
pub enum TestFileError {
    /// One of the files could not be read or loaded.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The test file does not fit the data file (header, rows or classes).
    #[error("{0}")]
    Mismatch(String),
}

/// Loads a data file and a test file of the same format (the same header line) as **one**
/// data set, the test rows after the data rows, so that both share one feature encoding and
/// one class numbering. Returns it with the number of leading rows that came from `data`.
///
/// Used where the test rows are fixed from outside instead of drawn by [`split::holdout`]:
/// a research job's sealed test split (its held-out evaluators, [`crate::unit::heldout_loss`])
/// and `magnet-worker research --test-data` (the benchmark's shared split). Refused: a
/// different header line, an empty test file, a class the data file lacks.
pub fn load_with_test(
    domain: &dyn Domain,
    data: &Path,
    test: &Path,
    target: Option<&str>,
    context: Option<&str>,
) -> Result<(Dataset, usize), TestFileError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| LoadError::Io {
            path: p.display().to_string(),
            source,
        })
    };
    let (rows, tests) = (read(data)?, read(test)?);
    let header = |b: &[u8]| -> Vec<u8> {
        let end = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
        b[..end].strip_suffix(b"\r").unwrap_or(&b[..end]).to_vec()
    };
    if header(&rows) != header(&tests) {
        return Err(TestFileError::Mismatch(format!(
            "the header line of {} differs from the data's ({}): both files need the same columns in the same order",
            test.display(),
            data.display()
        )));
    }
    let body = tests
        .iter()
        .position(|&c| c == b'\n')
        .map_or(&[][..], |i| &tests[i + 1..]);
    let mut both = rows;
    if !both.ends_with(b"\n") {
        both.push(b'\n');
    }
    both.extend_from_slice(body);
    let scratch = std::env::temp_dir().join(format!(
        "magnet-with-test-{}-{:016x}.csv",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::write(&scratch, &both).map_err(|source| LoadError::Io {
        path: scratch.display().to_string(),
        source,
    })?;
    let loaded = (
        domain.load(data, target, context),
        domain.load(&scratch, target, context),
    );
    let _ = std::fs::remove_file(&scratch);
    let (alone, ds) = (loaded.0?, loaded.1?);
    let n = alone.len();
    if ds.len() <= n {
        return Err(TestFileError::Mismatch(format!(
            "{} has no usable rows",
            test.display()
        )));
    }
    if ds.n_classes() != alone.n_classes() {
        return Err(TestFileError::Mismatch(format!(
            "{} has classes the data lacks ({} classes with it, {} without)",
            test.display(),
            ds.n_classes(),
            alone.n_classes()
        )));
    }
    Ok((ds, n))
}

/// Runs the loop on `data` and scores its final model on the rows of a separate `test` file
/// (same header line) instead of a held-out part drawn from `data`: the search sees every
/// row of `data` and only those; the final and baseline models are fitted on all of them.
#[allow(clippy::too_many_arguments)]
pub fn run_file_with_test(
    domain: &dyn Domain,
    data: &Path,
    test: &Path,
    target: Option<&str>,
    context: Option<&str>,
    cfg: &RunConfig,
    kb_in: KnowledgeBase,
    strategist: &dyn Strategist,
    out: Option<&Path>,
) -> Result<RunOutcome, RunError> {
    let (ds, n) = load_with_test(domain, data, test, target, context)?;
    let (train, sealed) = split::fixed(ds, n);
    run(domain, train, sealed, cfg, kb_in, strategist, out)
}

/// Runs the loop on an already split data set.
pub fn run(
    domain: &dyn Domain,
    train: TrainPart,
    sealed: SealedTest,
    cfg: &RunConfig,
    kb_in: KnowledgeBase,
    strategist: &dyn Strategist,
    out: Option<&Path>,
) -> Result<RunOutcome, RunError> {
    run_with(domain, train, sealed, cfg, kb_in, strategist, out, None)
}

/// [`run`] with the pipelines' out-of-fold predictions taken from `source` (work units run by
/// other machines, [`crate::unit`]) instead of computed here. The loop decides exactly what
/// it decides alone as long as the source delivers the units' true predictions. When the
/// source voids results it already delivered (a worker caught fabricating), the search starts
/// over from scratch (the source keeps every verified result, so this costs only the voided
/// units) and `trials.jsonl` is rewritten.
#[allow(clippy::too_many_arguments)]
pub fn run_with(
    domain: &dyn Domain,
    train: TrainPart,
    sealed: SealedTest,
    cfg: &RunConfig,
    kb_in: KnowledgeBase,
    strategist: &dyn Strategist,
    out: Option<&Path>,
    source: Option<&dyn crate::unit::OofSource>,
) -> Result<RunOutcome, RunError> {
    if let Some(o) = out {
        std::fs::create_dir_all(o).map_err(|e| RunError::Output {
            path: o.display().to_string(),
            message: e.to_string(),
        })?;
    }
    // Each restart follows a voiding, which bans a worker: bounded by the workers there are;
    // the cap only guards against a source that voids forever.
    let mut restarts = 0usize;
    let outcome = loop {
        match search(domain, &train, cfg, kb_in.clone(), strategist, out, source) {
            Err(RunError::Voided(why)) if restarts < 64 => {
                restarts += 1;
                tracing::warn!(%why, restarts, "trial results voided: restarting the search");
                if let Some(o) = out {
                    let _ = std::fs::remove_file(o.join("trials.jsonl"));
                }
            }
            r => break r?,
        }
    };
    let test = crate::report::finish(domain, &train, sealed, &outcome, cfg.seed);
    let outcome = RunOutcome { test, ..outcome };
    if let Some(o) = out {
        crate::report::write_run_folder(o, &outcome, &train.data)?;
    }
    Ok(outcome)
}

fn search(
    domain: &dyn Domain,
    train: &TrainPart,
    cfg: &RunConfig,
    kb_in: KnowledgeBase,
    strategist: &dyn Strategist,
    out: Option<&Path>,
    source: Option<&dyn crate::unit::OofSource>,
) -> Result<RunOutcome, RunError> {
    let data = &train.data;
    let folds = domain.folds(data, cfg.folds, cfg.seed);
    let ev = Evaluator::new(data, &folds, cfg.seed);
    let loco_folds = data
        .context
        .as_ref()
        .map(|c| split::loco(c, data.context_names.len()));
    let loco_ev = loco_folds
        .as_ref()
        .map(|f| Evaluator::new(data, f, cfg.seed));
    let mut log = TrialLog::open(out);
    let mut trials: Vec<TrialRecord> = Vec::new();
    let mut kb = kb_in;
    let mut new_insights = 0;
    let threads = cfg.batch.unwrap_or_else(rayon::current_num_threads).max(1);
    let pb = if cfg.progress {
        let pb = indicatif::ProgressBar::new(cfg.budget as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} trials  {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        pb
    } else {
        indicatif::ProgressBar::hidden()
    };

    let run_batch = |cands: &[(Candidate, String, SamplerKind)],
                     version: usize,
                     log: &mut TrialLog,
                     trials: &mut Vec<TrialRecord>|
     -> Result<Vec<TrialRecord>, RunError> {
        if let Some(src) = source {
            // Farm out the pipelines this batch needs and nobody has computed yet.
            let mut want: Vec<PipelineConfig> = Vec::new();
            let mut keys = BTreeSet::new();
            for (c, _, _) in cands {
                let key = trial_key(c, &data.hash, cfg.seed, cfg.folds);
                if log.done.contains_key(&key) || c.validate(data.x.cols).is_err() {
                    continue;
                }
                for (p, _) in &c.members {
                    if !ev.has_oof(p) && keys.insert(crate::unit::pipeline_key(p)) {
                        want.push(p.clone());
                    }
                }
            }
            if !want.is_empty() {
                let got = src.fetch(&want).map_err(|e| match e {
                    crate::unit::SourceError::Voided(w) => RunError::Voided(w),
                    crate::unit::SourceError::Failed(w) => RunError::Source(w),
                })?;
                for (p, o) in want.iter().zip(got) {
                    if let Some(o) = o {
                        ev.insert_oof(p, o);
                    }
                }
            }
        }
        let jobs: Vec<(usize, &(Candidate, String, SamplerKind), String)> = cands
            .iter()
            .enumerate()
            .map(|(j, c)| {
                (
                    trials.len() + j,
                    c,
                    trial_key(&c.0, &data.hash, cfg.seed, cfg.folds),
                )
            })
            .collect();
        let results: Vec<TrialRecord> = jobs
            .par_iter()
            .map(|(id, (cand, idea, sampler), key)| {
                if let Some(r) = log.done.get(key) {
                    let mut r = r.clone();
                    r.id = *id;
                    r.version = version;
                    return r;
                }
                let t0 = std::time::Instant::now();
                let res = ev.evaluate(cand);
                TrialRecord {
                    key: key.clone(),
                    id: *id,
                    version,
                    idea: idea.clone(),
                    sampler: *sampler,
                    candidate: cand.clone(),
                    data_hash: data.hash.clone(),
                    seed: cfg.seed,
                    cv_loss: res.as_ref().map_or(f64::NAN, |e| e.cv_loss),
                    fold_loss: res
                        .as_ref()
                        .map_or_else(|_| Vec::new(), |e| e.fold_loss.clone()),
                    error: res.err().map(|e| e.to_string()),
                    wall_ms: t0.elapsed().as_millis() as u64,
                }
            })
            .collect();
        for r in &results {
            if !log.done.contains_key(&r.key) {
                log.append(r);
            }
            pb.inc(1);
        }
        trials.extend(results.iter().cloned());
        Ok(results)
    };

    // Version 0: the baseline.
    let base = baseline();
    let r0 = run_batch(
        &[(base.clone(), "baseline".into(), SamplerKind::Grid)],
        0,
        &mut log,
        &mut trials,
    )?;
    if let Some(e) = &r0[0].error {
        return Err(RunError::Model(ModelError::Invalid(e.clone())));
    }
    let mut best = base.clone();
    let mut best_eval: Evaluation = ev.evaluate(&best)?;
    let mut best_loss = best_eval.cv_loss;
    let mut family_best: BTreeMap<String, (Candidate, f64)> = BTreeMap::new();
    family_best.insert("logistic".into(), (base.clone(), best_loss));
    let mut versions = vec![VersionRecord {
        version: 0,
        analysis_of_previous: None,
        strategies: Vec::new(),
        configs: 1,
        best: base.clone(),
        best_loss,
        analysis: analysis::analyse(data, &best_eval),
        gain: 0.0,
        key_innovation: "baseline: logistic regression".into(),
        loco_loss: loco_ev
            .as_ref()
            .and_then(|l| l.evaluate(&base).ok())
            .map(|e| e.cv_loss),
        strategist_error: None,
        post_search: false,
    }];
    let mut tried: BTreeSet<String> = BTreeSet::new();
    // Trial keys evaluated in this run: a sweep never spends the budget on one of them again.
    let mut seen: BTreeSet<String> = trials.iter().map(|t| t.key.clone()).collect();
    let mut stall = 0;
    let mut stop_reason = String::from("budget exhausted");
    // The version the second pass started at (ADR 0118), if it did.
    let mut second_pass_from: Option<usize> = None;
    let per_version = (cfg.budget.saturating_sub(1) / 3).max(6);
    for version in 1..=cfg.max_versions {
        let used = trials.len();
        if used >= cfg.budget {
            stop_reason = "budget exhausted".into();
            break;
        }
        let this_budget = per_version.min(cfg.budget - used);
        let report = analysis::analyse(data, &best_eval);
        let want = (this_budget / 2).clamp(3, 8);
        let mut strategist_error = None;
        let strategies = loop {
            let ctx = StrategyContext {
                domain: domain.name(),
                dataset: &data.hash,
                version,
                report: &report,
                kb: &kb,
                tried: &tried,
                best: &best,
                family_best: &family_best,
                has_context: data.context.is_some(),
                has_text: data.text_tokens.cols > 0,
                want,
            };
            let designed = match strategist.design(&ctx) {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(
                        "strategist {} failed ({e}); using the rule-based strategist",
                        strategist.name()
                    );
                    strategist_error = Some(e.to_string());
                    RuleStrategist.design(&ctx).unwrap_or_default()
                }
            };
            if designed.is_empty()
                && cfg.second_pass
                && second_pass_from.is_none()
                && cfg.budget - used >= SECOND_PASS_MIN_TRIALS
            {
                tracing::info!(version, "every idea tried with budget left: second pass");
                second_pass_from = Some(version);
                tried.clear();
                continue;
            }
            break designed;
        };
        if strategies.is_empty() {
            stop_reason = "strategy catalog exhausted".into();
            break;
        }
        pb.set_message(format!(
            "v{version}: {}",
            strategies
                .iter()
                .map(|s| s.idea.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let per_strategy = (this_budget / strategies.len()).max(1);
        let start_best = best.clone();
        let start_loss = best_loss;
        // The strategies' sweeps run interleaved, round by round (every strategy's next config,
        // in the strategist's order), so that each idea's first and best-informed config — the
        // change alone, or the centre of its space — comes before any idea's second one.
        let mut arms: Vec<Arm> = strategies
            .iter()
            .map(|s| {
                tried.insert(strategy::tried_key(&s.idea, &start_best));
                let space = strategy::idea_space(&s.idea, &start_best, data.x.cols);
                let kind = SamplerKind::choose(&space, per_strategy);
                let n = if space.dims() == 0 { 1 } else { per_strategy };
                let seed = cfg.seed
                    ^ content_hash(&(version, &s.idea))
                        .bytes()
                        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
                Arm {
                    proposer: SweepProposer::new(&s.idea, space, kind, n, seed),
                    kind,
                    n,
                    history: Vec::new(),
                    trials: Vec::new(),
                    done: false,
                }
            })
            .collect();
        while trials.len() < cfg.budget {
            let room = cfg.budget - trials.len();
            let mut planned: Vec<(usize, Option<Vec<f64>>, Candidate)> = Vec::new();
            for (ai, arm) in arms.iter_mut().enumerate() {
                if planned.len() >= room {
                    break;
                }
                if arm.done || arm.trials.len() >= arm.n {
                    continue;
                }
                let next = arm
                    .proposer
                    .next_batch(1, &arm.history, &start_best, &family_best, |c| {
                        seen.insert(trial_key(c, &data.hash, cfg.seed, cfg.folds))
                    })
                    .pop();
                match next {
                    Some((u, c)) => planned.push((ai, u, c)),
                    None => arm.done = true,
                }
            }
            if planned.is_empty() {
                break;
            }
            for chunk in planned.chunks(threads) {
                let cands: Vec<(Candidate, String, SamplerKind)> = chunk
                    .iter()
                    .map(|(ai, _, c)| (c.clone(), strategies[*ai].idea.clone(), arms[*ai].kind))
                    .collect();
                let res = run_batch(&cands, version, &mut log, &mut trials)?;
                for ((ai, u, _), r) in chunk.iter().zip(res) {
                    let arm = &mut arms[*ai];
                    if let Some(u) = u {
                        let loss = if r.cv_loss.is_finite() {
                            r.cv_loss
                        } else {
                            10.0
                        };
                        arm.history.push((u.clone(), loss));
                    }
                    if r.cv_loss.is_finite() && r.candidate.members.len() == 1 {
                        let fam = r.candidate.members[0].0.model.family().to_string();
                        if family_best.get(&fam).is_none_or(|f| r.cv_loss < f.1) {
                            family_best.insert(fam, (r.candidate.clone(), r.cv_loss));
                        }
                    }
                    arm.trials.push(r);
                }
            }
        }
        let mut results = Vec::new();
        let mut version_trials: Vec<TrialRecord> = Vec::new();
        for (s, arm) in strategies.iter().zip(arms) {
            let s_best = arm
                .trials
                .iter()
                .filter(|t| t.cv_loss.is_finite())
                .min_by(|a, b| a.cv_loss.total_cmp(&b.cv_loss));
            if let Some(b) = s_best {
                let ins = strategy_insight(
                    domain,
                    data,
                    version,
                    s,
                    &start_best,
                    &report.patterns,
                    arm.trials.len(),
                    start_loss,
                    (&b.candidate, b.cv_loss),
                    cfg.epsilon,
                );
                let before = kb.insights.len();
                kb.add(ins);
                new_insights += kb.insights.len() - before;
            }
            results.push(StrategyResult {
                strategy: s.clone(),
                trials: arm.trials.len(),
                sampler: arm.kind,
                best_loss: s_best.map_or(f64::NAN, |b| b.cv_loss),
            });
            version_trials.extend(arm.trials);
        }
        version_trials.sort_by_key(|t| t.id);
        let v_best = version_trials
            .iter()
            .filter(|t| t.cv_loss.is_finite())
            .min_by(|a, b| a.cv_loss.total_cmp(&b.cv_loss))
            .cloned();
        let mut key_innovation = "no improvement".to_string();
        if let Some(vb) = v_best {
            if vb.cv_loss < best_loss {
                if let Ok(e) = ev.evaluate(&vb.candidate) {
                    match clears_one_se(&best_eval, &e, &data.y, cfg.min_gain_se) {
                        (true, _) => {
                            best = vb.candidate.clone();
                            best_loss = e.cv_loss;
                            best_eval = e;
                            let desc = strategy::idea(&vb.idea).map_or("", |i| i.description);
                            key_innovation = format!("{}: {desc}", vb.idea);
                        }
                        (false, paired) => {
                            let (g, se) = paired.unwrap_or((f64::NAN, f64::NAN));
                            key_innovation = format!(
                                "not significant: {} gains {g:.4} ± {se:.4} (SE), below {} SE",
                                vb.idea, cfg.min_gain_se
                            );
                        }
                    }
                }
            }
        }
        let gain = start_loss - best_loss;
        versions.push(VersionRecord {
            version,
            analysis_of_previous: Some(report),
            strategies: results,
            configs: version_trials.len(),
            best: best.clone(),
            best_loss,
            analysis: analysis::analyse(data, &best_eval),
            gain,
            key_innovation,
            loco_loss: loco_ev
                .as_ref()
                .and_then(|l| l.evaluate(&best).ok())
                .map(|e| e.cv_loss),
            strategist_error,
            post_search: false,
        });
        tracing::info!(version, best_loss, gain, "version done");
        if gain < cfg.epsilon {
            stall += 1;
            if stall >= cfg.patience
                && cfg.second_pass
                && second_pass_from.is_none()
                && cfg.budget.saturating_sub(trials.len()) >= SECOND_PASS_MIN_TRIALS
            {
                tracing::info!(version, "converged with budget left: second pass");
                second_pass_from = Some(version + 1);
                tried.clear();
                stall = 0;
            } else if stall >= cfg.patience {
                stop_reason = format!(
                    "converged: gain < ε = {} for {} consecutive versions (ceiling declared)",
                    cfg.epsilon, cfg.patience
                );
                break;
            }
        } else {
            stall = 0;
        }
        if version == cfg.max_versions {
            stop_reason = "maximum versions reached".into();
        }
    }
    pb.finish_and_clear();
    if let Some(v) = second_pass_from {
        stop_reason = format!("{stop_reason} (second pass from version {v})");
    }
    if cfg.ensemble_steps > 0 {
        let search = SearchState {
            best,
            best_loss,
            best_eval,
        };
        match ensemble_version(
            domain,
            &ev,
            loco_ev.as_ref(),
            cfg,
            &trials,
            &search,
            versions.len(),
        ) {
            Ok(Some((v, ins))) => {
                let before = kb.insights.len();
                kb.add(ins);
                new_insights += kb.insights.len() - before;
                tracing::info!(
                    best_loss = v.best_loss,
                    gain = v.gain,
                    "ensemble selection done"
                );
                versions.push(v);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("ensemble selection failed ({e}); the search's best stays"),
        }
    }
    Ok(RunOutcome {
        domain: domain.name().into(),
        dataset: (data.name.clone(), data.hash.clone()),
        versions,
        trials,
        kb,
        new_insights,
        stop_reason,
        test: crate::report::HeldOut::default(),
        config: cfg.clone(),
        strategist: strategist.name().into(),
    })
}

/// Proposes one strategy's configs: the sweep's points in order, except that (1) an idea that
/// changes the incumbent but re-tunes its model (`class_weights`, feature ideas, `stacking`)
/// first tries the change with the incumbent's own hyperparameters (one change at a time), and
/// (2) a config that this run already evaluated is skipped, not re-run: it costs no trial, and
/// the sweep moves on (past the end of a grid, to random points) — at most `4n + 8` proposals.
struct SweepProposer<'a> {
    idea: &'a str,
    space: crate::sweep::Space,
    kind: SamplerKind,
    n: usize,
    seed: u64,
    incumbent_pending: bool,
    sweep_i: usize,
    proposals: usize,
}

impl<'a> SweepProposer<'a> {
    fn new(
        idea: &'a str,
        space: crate::sweep::Space,
        kind: SamplerKind,
        n: usize,
        seed: u64,
    ) -> Self {
        SweepProposer {
            idea,
            incumbent_pending: space.dims() > 0 && strategy::retunes_incumbent(idea),
            space,
            kind,
            n,
            seed,
            sweep_i: 0,
            proposals: 0,
        }
    }

    /// Up to `want` new candidates with their sweep points (`None` for the incumbent's own
    /// hyperparameters, which are not a point of the sweep). `fresh` is asked once per
    /// candidate and returns false for a config already evaluated (it records the new ones).
    fn next_batch(
        &mut self,
        want: usize,
        history: &[(Vec<f64>, f64)],
        best: &Candidate,
        family_best: &BTreeMap<String, (Candidate, f64)>,
        mut fresh: impl FnMut(&Candidate) -> bool,
    ) -> Vec<(Option<Vec<f64>>, Candidate)> {
        let mut out = Vec::new();
        let limit = 4 * self.n + 8;
        while out.len() < want && self.proposals < limit {
            self.proposals += 1;
            let (u, vals) = if std::mem::take(&mut self.incumbent_pending) {
                (None, crate::sweep::Values::new())
            } else {
                let kind = if self.kind == SamplerKind::Grid && self.sweep_i >= self.n {
                    SamplerKind::Random
                } else {
                    self.kind
                };
                let u = sweep::propose(kind, &self.space, self.sweep_i, self.n, history, self.seed);
                self.sweep_i += 1;
                let vals = self.space.decode(&u);
                (Some(u), vals)
            };
            let Some(c) = strategy::instantiate(self.idea, &vals, best, family_best) else {
                // The idea does not apply (e.g. no second family): no point of its space will.
                break;
            };
            if fresh(&c) {
                out.push((u, c));
            } else if self.space.dims() == 0 {
                break;
            }
        }
        out
    }
}

/// One strategy's sweep within a version.
struct Arm<'a> {
    proposer: SweepProposer<'a>,
    kind: SamplerKind,
    /// Trials it may spend.
    n: usize,
    history: Vec<(Vec<f64>, f64)>,
    trials: Vec<TrialRecord>,
    /// No new config left to propose.
    done: bool,
}

/// The search's best when it stopped.
struct SearchState {
    best: Candidate,
    best_loss: f64,
    best_eval: Evaluation,
}

/// The knowledge-base record of one tried strategy: where and from which base it was tried,
/// under which failure patterns, with how many trials, and its measured effect on the CV
/// log-loss (`Improved` when the gain reaches ε).
#[allow(clippy::too_many_arguments)]
fn strategy_insight(
    domain: &dyn Domain,
    data: &Dataset,
    version: usize,
    strategy: &Strategy,
    base: &Candidate,
    conditions: &[Pattern],
    trials: usize,
    reference_loss: f64,
    (best_config, best_loss): (&Candidate, f64),
    epsilon: f64,
) -> Insight {
    let effect = reference_loss - best_loss;
    Insight::new(InsightBody {
        domain: domain.name().into(),
        dataset: data.hash.clone(),
        dataset_name: data.name.clone(),
        version,
        idea: strategy.idea.clone(),
        family: format!("{:?}", strategy.family),
        base: base.members[0].0.model.family().to_string(),
        conditions: conditions.to_vec(),
        trials,
        reference_loss,
        best_loss,
        effect,
        outcome: if effect >= epsilon {
            Outcome::Improved
        } else {
            Outcome::NoGain
        },
        best_config: best_config.clone(),
        best_lm_config: None,
    })
}

/// The post-search version: ensemble selection ([`crate::ensemble`]) over every pipeline the
/// search evaluated, kept only if averaging beats picking one pipeline when both are scored
/// cross-fitted ([`crate::ensemble::Selected::beats_single`]) and its CV gain over the search's
/// best clears the one-standard-error rule ([`clears_one_se`], the same test a version's best
/// must pass; ε decides when to stop searching, not whether a better candidate is kept). The
/// version and its knowledge-base insight are returned either way (`None` only when there was
/// nothing to select from).
fn ensemble_version(
    domain: &dyn Domain,
    ev: &Evaluator,
    loco_ev: Option<&Evaluator>,
    cfg: &RunConfig,
    trials: &[TrialRecord],
    s: &SearchState,
    version: usize,
) -> Result<Option<(VersionRecord, Insight)>, ModelError> {
    let configs: Vec<PipelineConfig> = trials
        .iter()
        .filter(|t| t.cv_loss.is_finite())
        .flat_map(|t| t.candidate.members.iter().map(|m| m.0.clone()))
        .collect();
    let Some(sel) = crate::ensemble::select(ev, &configs, &s.best.post, cfg.ensemble_steps)? else {
        return Ok(None);
    };
    let data = ev.data;
    let report = analysis::analyse(data, &s.best_eval);
    let kept = sel.beats_single()
        && sel.candidate != s.best
        && clears_one_se(&s.best_eval, &sel.evaluation, &data.y, cfg.min_gain_se).0;
    let (best, best_loss, best_eval) = if kept {
        (
            sel.candidate.clone(),
            sel.evaluation.cv_loss,
            sel.evaluation.clone(),
        )
    } else {
        (s.best.clone(), s.best_loss, s.best_eval.clone())
    };
    let what = format!(
        "{} of {} pipelines{}; cross-fitted CV {:.4} vs {:.4} for picking one",
        sel.candidate.members.len(),
        sel.pool,
        if sel.candidate.post.temperature && !s.best.post.temperature {
            ", temperature-scaled"
        } else {
            ""
        },
        sel.cross_fitted,
        sel.cross_fitted_single
    );
    let key_innovation = if kept {
        format!("ensemble selection: {what}")
    } else {
        format!("ensemble selection: not kept ({what})")
    };
    let strategy = Strategy {
        idea: "ensemble_selection".into(),
        family: Family::Ensemble,
        rationale: format!(
            "greedy forward selection with replacement ({} steps) over the out-of-fold \
             predictions of every evaluated pipeline, cross-fitted",
            cfg.ensemble_steps
        ),
    };
    let insight = strategy_insight(
        domain,
        data,
        version,
        &strategy,
        &s.best,
        &report.patterns,
        0,
        s.best_loss,
        (&sel.candidate, sel.evaluation.cv_loss),
        cfg.epsilon,
    );
    let loco_loss = loco_ev
        .and_then(|l| l.evaluate(&best).ok())
        .map(|e| e.cv_loss);
    Ok(Some((
        VersionRecord {
            version,
            analysis_of_previous: Some(report),
            strategies: vec![StrategyResult {
                strategy,
                trials: 0,
                sampler: SamplerKind::Grid,
                best_loss: sel.cross_fitted,
            }],
            configs: 0,
            analysis: analysis::analyse(data, &best_eval),
            best,
            best_loss,
            gain: s.best_loss - best_loss,
            key_innovation,
            loco_loss,
            strategist_error: None,
            post_search: true,
        },
        insight,
    )))
}

/// A serialised single trial (what `magnet-worker research trial --config` reads).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialSpec {
    /// Domain name.
    pub domain: String,
    /// Data file.
    pub data: PathBuf,
    /// Target column.
    #[serde(default)]
    pub target: Option<String>,
    /// Context column.
    #[serde(default)]
    pub context: Option<String>,
    /// Seed (same splits as a `research` run with this seed).
    pub seed: u64,
    /// Validation folds.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Held-out fraction.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Expected data hash (checked if given).
    #[serde(default)]
    pub data_hash: Option<String>,
    /// The candidate to evaluate.
    pub candidate: Candidate,
    /// Also fit on the whole training part and score the held-out test (final reporting only).
    #[serde(default)]
    pub holdout: bool,
    /// A separate test file (same header line): `data` is then the whole training part (no
    /// held-out fraction is drawn from it) and `holdout` scores this file's rows, as
    /// `research --test-data` does.
    #[serde(default)]
    pub test_data: Option<PathBuf>,
}

fn default_folds() -> usize {
    5
}
fn default_test_fraction() -> f64 {
    0.2
}

/// Output of a single trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrialOutput {
    /// Trial key.
    pub key: String,
    /// Data hash.
    pub data_hash: String,
    /// CV log-loss on the training part.
    pub cv_loss: f64,
    /// Per-fold losses.
    pub fold_loss: Vec<f64>,
    /// Held-out log-loss (only if `holdout`).
    pub test_loss: Option<f64>,
    /// Held-out accuracy (only if `holdout`).
    pub test_accuracy: Option<f64>,
}

/// Why a single trial failed.
#[derive(Debug, thiserror::Error)]
pub enum TrialError {
    /// Unknown domain.
    #[error("unknown domain `{0}` (tabular or timeseries)")]
    Domain(String),
    /// Data problem.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The separate test file does not fit the data file.
    #[error(transparent)]
    TestFile(#[from] TestFileError),
    /// Data changed since the trial was made.
    #[error("data hash mismatch: trial expects {expected}, file gives {actual}")]
    Hash {
        /// Expected.
        expected: String,
        /// Actual.
        actual: String,
    },
    /// Model problem.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Runs one serialised trial.
pub fn run_trial(spec: &TrialSpec) -> Result<TrialOutput, TrialError> {
    let domain =
        domain_by_name(&spec.domain).ok_or_else(|| TrialError::Domain(spec.domain.clone()))?;
    let (ds, n_train) = match &spec.test_data {
        Some(test) => {
            let (ds, n) = load_with_test(
                domain.as_ref(),
                &spec.data,
                test,
                spec.target.as_deref(),
                spec.context.as_deref(),
            )?;
            (ds, Some(n))
        }
        None => (
            domain.load(&spec.data, spec.target.as_deref(), spec.context.as_deref())?,
            None,
        ),
    };
    if let Some(h) = &spec.data_hash {
        if *h != ds.hash {
            return Err(TrialError::Hash {
                expected: h.clone(),
                actual: ds.hash,
            });
        }
    }
    let (train, sealed) = match n_train {
        Some(n) => split::fixed(ds, n),
        None => split::holdout(ds, spec.test_fraction, spec.seed, domain.holdout_mode()),
    };
    let folds = domain.folds(&train.data, spec.folds, spec.seed);
    let ev = Evaluator::new(&train.data, &folds, spec.seed);
    let e = ev.evaluate(&spec.candidate)?;
    let (test_loss, test_accuracy) = if spec.holdout {
        let h = crate::report::holdout_score(&train.data, sealed, &ev, &spec.candidate, spec.seed)?;
        (Some(h.0), Some(h.1))
    } else {
        (None, None)
    };
    Ok(TrialOutput {
        key: trial_key(&spec.candidate, &train.data.hash, spec.seed, spec.folds),
        data_hash: train.data.hash.clone(),
        cv_loss: e.cv_loss,
        fold_loss: e.fold_loss,
        test_loss,
        test_accuracy,
    })
}

/// Families of the strategies that produced each version's best (for tests and reports).
pub fn families_used(o: &RunOutcome) -> BTreeSet<Family> {
    o.versions
        .iter()
        .flat_map(|v| v.strategies.iter().map(|s| s.strategy.family))
        .collect()
}

/// Patterns seen across versions.
pub fn patterns_seen(o: &RunOutcome) -> BTreeSet<Pattern> {
    o.versions
        .iter()
        .flat_map(|v| v.analysis.patterns.iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::log_loss;

    /// An evaluation whose out-of-fold true-class (class 1) probabilities are `p`.
    fn eval(p: &[f64]) -> Evaluation {
        let probs: Vec<Option<Vec<f64>>> = p.iter().map(|&q| Some(vec![1.0 - q, q])).collect();
        let dense: Vec<Vec<f64>> = probs.iter().flatten().cloned().collect();
        Evaluation {
            cv_loss: log_loss(&dense, &vec![1; p.len()]),
            fold_loss: Vec::new(),
            probs,
            train_loss: 0.0,
        }
    }

    /// The one-standard-error rule, every way it can decide: (name, incumbent, challenger,
    /// standard errors required, replaces?).
    #[test]
    fn the_incumbent_is_replaced_only_by_a_gain_larger_than_its_standard_error() {
        let steady = vec![0.6; 20];
        let better_everywhere: Vec<f64> = vec![0.7; 20];
        // Better on average, but only through one row (and slightly worse on two): a gain
        // within its own noise. (A gain on one row alone sits exactly at 1 SE.)
        let mut one_row = vec![0.6; 20];
        one_row[0] = 0.99;
        one_row[1] = 0.55;
        one_row[2] = 0.55;
        let mut worse = vec![0.6; 20];
        worse[3] = 0.2;
        type Case<'a> = (&'a str, &'a [f64], &'a [f64], f64, bool);
        let cases: Vec<Case> = vec![
            ("consistent gain", &steady, &better_everywhere, 1.0, true),
            (
                "gain carried by one row, 1 SE",
                &steady,
                &one_row,
                1.0,
                false,
            ),
            (
                "gain carried by one row, any gain",
                &steady,
                &one_row,
                0.0,
                true,
            ),
            ("worse challenger", &steady, &worse, 1.0, false),
            ("worse challenger, any gain", &steady, &worse, 0.0, false),
            ("identical", &steady, &steady, 1.0, false),
        ];
        let y = vec![1; 20];
        for (name, inc, ch, se, want) in cases {
            let (got, paired) = clears_one_se(&eval(inc), &eval(ch), &y, se);
            assert_eq!(got, want, "{name}: {paired:?}");
        }
    }

    #[test]
    fn without_a_paired_difference_any_gain_replaces_the_incumbent() {
        // One common row: no standard error, so the rule falls back to "lower CV wins".
        let (ok, paired) = clears_one_se(&eval(&[0.5]), &eval(&[0.9]), &[1], 1.0);
        assert!(ok && paired.is_none());
    }

    fn proposals(
        idea: &str,
        n: usize,
        best: &Candidate,
        seen: &mut BTreeSet<String>,
    ) -> Vec<(Option<Vec<f64>>, Candidate)> {
        let mut family_best = BTreeMap::new();
        family_best.insert("logistic".to_string(), (baseline(), 0.5));
        let space = strategy::idea_space(idea, best, 6);
        let kind = SamplerKind::choose(&space, n);
        let mut p = SweepProposer::new(idea, space, kind, n, 7);
        let mut out = Vec::new();
        loop {
            let b = p.next_batch(2, &[], best, &family_best, |c| seen.insert(content_hash(c)));
            if b.is_empty() || out.len() >= n {
                break;
            }
            out.extend(b);
        }
        out.truncate(n);
        out
    }

    #[test]
    fn a_sweep_never_spends_a_trial_on_a_config_the_run_already_evaluated() {
        let base = baseline();
        let mut seen: BTreeSet<String> = [content_hash(&base)].into();
        // tune_current's two-point l2 grid starts at the baseline's own l2 (1e-3): skipped.
        let got = proposals("tune_current", 2, &base, &mut seen);
        assert_eq!(got.len(), 2);
        let hashes: BTreeSet<String> = got.iter().map(|(_, c)| content_hash(c)).collect();
        assert_eq!(hashes.len(), 2, "no config twice");
        assert!(got.iter().all(|(_, c)| *c != base), "{got:?}");
        // Running the same sweep again finds nothing new it may spend the budget on except
        // fresh random points, never the ones already run.
        let again = proposals("tune_current", 2, &base, &mut seen);
        assert!(again
            .iter()
            .all(|(_, c)| !hashes.contains(&content_hash(c))));
        // A fixed config (no search space) that was already run is not run again.
        let mut t = base.clone();
        t.post.temperature = true;
        seen.insert(content_hash(&t));
        assert!(proposals("temperature_calibration", 1, &base, &mut seen).is_empty());
    }

    #[test]
    fn an_idea_that_retunes_the_incumbent_first_tries_the_change_alone() {
        let base = baseline();
        let mut seen = BTreeSet::new();
        let got = proposals("feature_interactions", 3, &base, &mut seen);
        assert_eq!(got.len(), 3);
        let (u, first) = &got[0];
        assert!(u.is_none(), "not a sweep point");
        assert_eq!(first.members[0].0.model, base.members[0].0.model);
        assert!(first.members[0].0.features.interactions);
        assert!(got[1..].iter().all(|(u, _)| u.is_some()));
        // A model-family pivot has no incumbent hyperparameters to keep: it starts at the
        // centre of its space.
        let pivot = proposals("pivot_gbm", 2, &base, &mut BTreeSet::new());
        assert_eq!(pivot[0].0.as_deref(), Some(&[0.5; 6][..]));
    }

    fn toy(n: usize) -> Dataset {
        // Three noisy features; the label depends on the first two.
        let mut x = crate::data::Mat::with_cols(3);
        let mut y = Vec::new();
        let mut st = 11u64;
        let mut r = || {
            st = st
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (st >> 11) as f64 / (1u64 << 53) as f64
        };
        for _ in 0..n {
            let (a, b, c) = (r(), r(), r());
            x.push_row(&[a, b, c]);
            y.push(usize::from(a + 0.5 * b + 0.5 * (r() - 0.5) > 0.75));
        }
        Dataset {
            name: "toy".into(),
            hash: "toy".into(),
            feature_names: vec!["a".into(), "b".into(), "c".into()],
            numeric_features: vec![0, 1, 2],
            x,
            text_tokens: crate::data::Mat {
                rows: n,
                ..crate::data::Mat::with_cols(0)
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

    /// The search as a whole: no config is evaluated twice in a run, and within a version every
    /// strategy's first config runs before any strategy's second.
    #[test]
    fn a_run_evaluates_each_config_once_and_interleaves_its_strategies() {
        let (train, sealed) = split::holdout(toy(240), 0.2, 5, HoldoutMode::Stratified);
        let cfg = RunConfig {
            budget: 25,
            folds: 3,
            seed: 5,
            ensemble_steps: 0,
            ..RunConfig::default()
        };
        let o = run(
            &Tabular,
            train,
            sealed,
            &cfg,
            KnowledgeBase::new(),
            &RuleStrategist,
            None,
        )
        .unwrap();
        assert!(o.trials.len() <= cfg.budget);
        let keys: BTreeSet<&str> = o.trials.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys.len(), o.trials.len(), "a config was evaluated twice");
        let v1: Vec<&str> = o
            .trials
            .iter()
            .filter(|t| t.version == 1)
            .map(|t| t.idea.as_str())
            .collect();
        assert!(v1.len() >= 4, "{v1:?}");
        let mut count: BTreeMap<&str, usize> = BTreeMap::new();
        let mut second_seen = false;
        for idea in &v1 {
            let c = count.entry(idea).or_default();
            *c += 1;
            if *c == 1 {
                assert!(!second_seen, "a first config after a second one: {v1:?}");
            } else {
                second_seen = true;
            }
        }
    }
}
