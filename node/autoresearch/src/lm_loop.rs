//! The BitNet-LM research loop: the paper's Algorithm 1 for a language model, with the
//! phase-wise grid ([`crate::lm`]) as one strategy among several.
//!
//! Each version: **error analysis** of the incumbent config's trained model ([`LmAnalysis`]:
//! validation loss by training-frequency band and by position in the context window, the
//! train/validation gap, spikes and a rising tail in the training curve; the incumbent is
//! retrained for this only when it changed) → failure [`Pattern`]s ([`detect`]) → a few
//! **strategies** from the LM catalog ([`LM_CATALOG`], chosen by [`choose`] from [`LM_RULES`]
//! and the [`KnowledgeBase`]) → each strategy sweeps its
//! hyperparameter groups around the incumbent with [`phase_pass`] (one group at a time, the
//! trainer's grid values, the best carried forward) under a per-strategy trial cap → every
//! config is a short training run scored by validation loss → the version's best replaces the
//! incumbent if it is more than ε better → one **insight** per strategy in the knowledge base
//! (domain `bitnet-lm`) → **stop** at the ceiling: no gain above ε for `patience` versions, the
//! trial budget spent, or no untried strategy left for the incumbent.
//!
//! Guarantees: deterministic given the trainer (fixed seed, fixed thresholds, fixed tie
//! order); a config already scored in the run is never retrained (its loss is reused); a
//! training that fails or diverges scores an infinite loss and is listed in the report instead
//! of ending the run (only the baseline's must succeed); the
//! analysis reads only the validation split and the training stream, never a test set (the LM
//! domain has none: the validation loss is both the selection and the reported score, so the
//! final number is optimistic — the same "evaluation set reuse" caveat as the tabular loop).
//! Not guaranteed: that rankings after a short step budget hold for long training. LM insights
//! carry the strategy's best LM config in `best_lm_config` (their tabular `best_config` is
//! empty); the LM config of every trial is in `trials.jsonl`.

use crate::analysis::Pattern;
use crate::kb::{Insight, InsightBody, KnowledgeBase, Outcome};
use crate::lm::{phase_pass, Group, LmConfig, LmError, LmTrainer, PHASES};
use crate::pipeline::{content_hash, Candidate, PostSpec};
use crate::report::plot_trials;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

/// The knowledge-base domain of these insights.
pub const DOMAIN: &str = "bitnet-lm";

/// What a trainer measures for the error analysis of one trained config.
#[derive(Debug, Clone, PartialEq)]
pub struct LmProbe {
    /// Token counts of the training stream (index = token id).
    pub train_counts: Vec<u64>,
    /// Validation windows' next-token targets.
    pub targets: Vec<Vec<u32>>,
    /// Their per-token losses (nats), same shape as `targets`.
    pub losses: Vec<Vec<f32>>,
    /// In-sample loss of the trained weights on as many training windows.
    pub train_loss: f64,
    /// Training loss per optimizer step.
    pub curve: Vec<f64>,
}

/// A trainer that can also probe a trained model for the error analysis.
pub trait LmProber: LmTrainer {
    /// Trains `cfg` as [`LmTrainer::train_eval`] does and measures it.
    fn probe(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<LmProbe, LmError>;
}

/// Validation tokens whose target falls in one training-frequency band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Band {
    /// `frequent` (token types making up the first 50 % of training tokens), `mid` (to 90 %)
    /// or `rare` (the rest, unseen types included).
    pub name: String,
    /// Validation tokens in the band.
    pub tokens: usize,
    /// Mean model loss (nats/token).
    pub loss: f64,
    /// Mean surprisal under the add-one training unigram (nats/token).
    pub unigram: f64,
}

impl Band {
    /// How much better than the training unigram the model is on this band (nats/token).
    pub fn gain(&self) -> f64 {
        self.unigram - self.loss
    }
}

/// The error analysis of one trained language model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmAnalysis {
    /// Mean validation loss of the probed tokens.
    pub val_loss: f64,
    /// In-sample training loss.
    pub train_loss: f64,
    /// `val_loss − train_loss`.
    pub gap: f64,
    /// Frequent, mid, rare.
    pub bands: Vec<Band>,
    /// Mean validation loss over the first quarter of window positions.
    pub early_loss: f64,
    /// Over the last quarter.
    pub late_loss: f64,
    /// Training steps (after the first fifth) whose loss exceeded 1.25× the best so far.
    pub spikes: usize,
    /// Mean training loss of the curve's last quarter over the quarter before (1 when the
    /// curve has fewer than 8 steps).
    pub tail_ratio: f64,
    /// Whether every training loss was finite.
    pub finite: bool,
    /// Failure patterns ([`detect`]).
    pub patterns: Vec<Pattern>,
}

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    if n == 0 {
        f64::NAN
    } else {
        s / n as f64
    }
}

impl LmAnalysis {
    /// Analyses a probe and detects its patterns.
    pub fn from_probe(p: &LmProbe) -> LmAnalysis {
        // Frequency bands by cumulative training mass, most frequent type first (ties by id).
        let total: u64 = p.train_counts.iter().sum();
        let vocab = p.train_counts.len().max(1);
        let mut order: Vec<usize> = (0..p.train_counts.len()).collect();
        order.sort_by(|&a, &b| p.train_counts[b].cmp(&p.train_counts[a]).then(a.cmp(&b)));
        let mut band_of = vec![2usize; p.train_counts.len()];
        let mut cum = 0u64;
        for id in order {
            let before = cum as f64 / total.max(1) as f64;
            band_of[id] = if before < 0.5 {
                0
            } else if before < 0.9 {
                1
            } else {
                2
            };
            cum += p.train_counts[id];
        }
        let mut acc = [(0usize, 0.0f64, 0.0f64); 3];
        let width = p.losses.iter().map(Vec::len).max().unwrap_or(0);
        let mut by_pos = vec![(0.0f64, 0usize); width];
        for (tw, lw) in p.targets.iter().zip(&p.losses) {
            for (pos, (&t, &l)) in tw.iter().zip(lw).enumerate() {
                let t = t as usize;
                let b = band_of.get(t).copied().unwrap_or(2);
                let c = p.train_counts.get(t).copied().unwrap_or(0);
                let uni = -((c as f64 + 1.0) / (total as f64 + vocab as f64)).ln();
                acc[b].0 += 1;
                acc[b].1 += l as f64;
                acc[b].2 += uni;
                by_pos[pos].0 += l as f64;
                by_pos[pos].1 += 1;
            }
        }
        let bands = ["frequent", "mid", "rare"]
            .iter()
            .zip(acc)
            .map(|(name, (n, l, u))| Band {
                name: (*name).into(),
                tokens: n,
                loss: if n == 0 { f64::NAN } else { l / n as f64 },
                unigram: if n == 0 { f64::NAN } else { u / n as f64 },
            })
            .collect();
        let q = (width / 4).max(1);
        let pos_mean = |r: std::ops::Range<usize>| {
            let (s, n) = by_pos[r]
                .iter()
                .fold((0.0, 0), |(s, n), &(l, c)| (s + l, n + c));
            if n == 0 {
                f64::NAN
            } else {
                s / n as f64
            }
        };
        let (early_loss, late_loss) = if width == 0 {
            (f64::NAN, f64::NAN)
        } else {
            (
                pos_mean(0..q.min(width)),
                pos_mean(width.saturating_sub(q)..width),
            )
        };
        let val_loss = mean(p.losses.iter().flatten().map(|&l| l as f64));
        let (spikes, tail_ratio) = curve_shape(&p.curve);
        let mut a = LmAnalysis {
            val_loss,
            train_loss: p.train_loss,
            gap: val_loss - p.train_loss,
            bands,
            early_loss,
            late_loss,
            spikes,
            tail_ratio,
            finite: p.curve.iter().all(|l| l.is_finite()),
            patterns: Vec::new(),
        };
        a.patterns = detect(&a);
        a
    }
}

/// Spikes and the tail ratio of a training curve (see [`LmAnalysis`]).
fn curve_shape(c: &[f64]) -> (usize, f64) {
    let n = c.len();
    let mut best = f64::INFINITY;
    let mut spikes = 0;
    for (i, &l) in c.iter().enumerate() {
        if i >= (n / 5).max(1) && l > 1.25 * best {
            spikes += 1;
        }
        best = best.min(l);
    }
    let tail = if n >= 8 {
        let q = n / 4;
        mean(c[n - q..].iter().copied()) / mean(c[n - 2 * q..n - q].iter().copied())
    } else {
        1.0
    };
    (spikes, tail)
}

/// The failure patterns of an analysis, with fixed thresholds: `underfit` (train loss ≥ 85 %
/// of validation loss, the tabular rule), `overfit` (< 60 %), `rare_token_errors`,
/// `context_unused`, `unstable_training` (documented on [`Pattern`]).
pub fn detect(a: &LmAnalysis) -> Vec<Pattern> {
    let mut p = Vec::new();
    if a.train_loss >= 0.85 * a.val_loss {
        p.push(Pattern::Underfit);
    }
    if a.train_loss < 0.6 * a.val_loss {
        p.push(Pattern::Overfit);
    }
    let gain = |name: &str| {
        a.bands
            .iter()
            .find(|b| b.name == name && b.tokens > 0)
            .map(Band::gain)
    };
    if let (Some(f), Some(r)) = (gain("frequent"), gain("rare")) {
        if f - r > 0.5 {
            p.push(Pattern::RareTokenErrors);
        }
    }
    if a.late_loss > 0.98 * a.early_loss {
        p.push(Pattern::ContextUnused);
    }
    if !a.finite || a.spikes > 0 || a.tail_ratio > 1.02 {
        p.push(Pattern::UnstableTraining);
    }
    p
}

/// One LM strategy kind: the hyperparameter groups it sweeps, in order.
#[derive(Debug, Clone, Copy)]
pub struct LmIdea {
    /// Stable id (recorded in the knowledge base).
    pub id: &'static str,
    /// Groups swept, one phase each, the best carried forward.
    pub groups: &'static [Group],
    /// What it does.
    pub description: &'static str,
}

/// The LM strategy catalog.
pub const LM_CATALOG: &[LmIdea] = &[
    LmIdea {
        id: "capacity",
        groups: &[Group::Architecture, Group::FfnRatio],
        description: "width × depth, then the SwiGLU width",
    },
    LmIdea {
        id: "learning_rate",
        groups: &[Group::LearningRate],
        description: "peak learning rate",
    },
    LmIdea {
        id: "schedule",
        groups: &[Group::Schedule],
        description: "WSD warm-up and decay fractions",
    },
    LmIdea {
        id: "regularisation",
        groups: &[Group::Beta2WeightDecay],
        description: "AdamW β2 and weight decay (the engine has no dropout)",
    },
    LmIdea {
        id: "context_length",
        groups: &[Group::Context],
        description: "training and model context length",
    },
    LmIdea {
        id: "attention_heads",
        groups: &[Group::GqaRatio],
        description: "query heads per KV head",
    },
    LmIdea {
        id: "batch_accumulation",
        groups: &[Group::Accumulation],
        description: "gradient accumulation (effective batch)",
    },
    LmIdea {
        id: "phase_grid",
        groups: &PHASES,
        description: "the paper's phase-wise grid: every group in order, the best carried forward",
    },
];

/// Failure pattern → LM ideas that address it, most direct first.
pub const LM_RULES: &[(Pattern, &[&str])] = &[
    (
        Pattern::Underfit,
        &[
            "capacity",
            "learning_rate",
            "phase_grid",
            "batch_accumulation",
        ],
    ),
    (Pattern::Overfit, &["regularisation", "capacity"]),
    (
        Pattern::RareTokenErrors,
        &["capacity", "batch_accumulation", "schedule"],
    ),
    (
        Pattern::ContextUnused,
        &["context_length", "attention_heads"],
    ),
    (
        Pattern::UnstableTraining,
        &[
            "learning_rate",
            "schedule",
            "batch_accumulation",
            "regularisation",
        ],
    ),
];

/// Fallback order when the patterns name too few untried ideas.
pub const LM_FALLBACK: &[&str] = &[
    "phase_grid",
    "learning_rate",
    "capacity",
    "schedule",
    "regularisation",
    "context_length",
    "batch_accumulation",
    "attention_heads",
];

/// Looks an LM idea up.
pub fn lm_idea(id: &str) -> Option<LmIdea> {
    LM_CATALOG.iter().copied().find(|i| i.id == id)
}

/// What [`choose`] needs to know about the run.
pub struct Choice<'a> {
    /// Knowledge base.
    pub kb: &'a KnowledgeBase,
    /// Data set hash.
    pub dataset: &'a str,
    /// Base key of the incumbent ([`base_key`]).
    pub base: &'a str,
    /// (idea, base) pairs this run already tried.
    pub tried: &'a BTreeSet<(String, String)>,
    /// Ideas of the previous version (tried after the others, for diversity).
    pub last: &'a [String],
}

/// Picks up to `n` ideas: those the patterns name (round-robin over the patterns in rule
/// order, ideas the knowledge base records as successful on any data first), then the fallback
/// order; the previous version's
/// ideas after the others; never an idea this run already tried from this incumbent, nor one
/// the knowledge base records as failed from it on this data. Returns (idea, reason).
pub fn choose(patterns: &[Pattern], c: &Choice, n: usize) -> Vec<(LmIdea, String)> {
    let mut cand: Vec<(LmIdea, String, bool)> = Vec::new();
    // Round-robin over the patterns: every pattern's most direct idea before any second one.
    let rules: Vec<(Pattern, &[&str])> = patterns
        .iter()
        .filter_map(|p| LM_RULES.iter().find(|(rp, _)| rp == p).copied())
        .collect();
    let depth = rules.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0);
    for r in 0..depth {
        for (pat, ids) in &rules {
            if let Some(i) = ids.get(r).and_then(|id| lm_idea(id)) {
                cand.push((i, format!("addresses {pat:?}"), true));
            }
        }
    }
    for id in LM_FALLBACK {
        if let Some(i) = lm_idea(id) {
            cand.push((i, "fallback order".into(), false));
        }
    }
    let mut seen = BTreeSet::new();
    cand.retain(|(i, _, _)| seen.insert(i.id));
    cand.retain(|(i, _, _)| {
        !c.tried.contains(&(i.id.to_string(), c.base.to_string()))
            && !c.kb.failed(DOMAIN, c.dataset, i.id, c.base)
    });
    cand.sort_by_key(|(i, _, from_pattern)| {
        (
            c.last.iter().any(|l| l == i.id),
            !from_pattern,
            usize::MAX - c.kb.successes(DOMAIN, i.id),
        )
    });
    cand.into_iter().take(n).map(|(i, r, _)| (i, r)).collect()
}

/// The knowledge-base `base` of an incumbent config: `lm:` and the first 16 hex digits of its
/// content hash (an idea that failed from one config may work from another).
pub fn base_key(c: &LmConfig) -> String {
    format!("lm:{}", &content_hash(c)[..16])
}

/// Loop settings.
#[derive(Debug, Clone)]
pub struct LmLoopConfig {
    /// Total trainings, the baseline included (analyses are not counted).
    pub budget: usize,
    /// Optimizer steps per training.
    pub steps: usize,
    /// New trainings per strategy at most.
    pub per_strategy: usize,
    /// Strategies per version.
    pub strategies: usize,
    /// Minimum validation-loss gain that counts as progress (and that a new incumbent needs).
    pub epsilon: f64,
    /// Versions without progress before the loop stops.
    pub patience: usize,
    /// Training seed.
    pub seed: u64,
}

impl Default for LmLoopConfig {
    fn default() -> Self {
        LmLoopConfig {
            budget: 30,
            steps: 20,
            per_strategy: 3,
            strategies: 3,
            epsilon: 0.002,
            patience: 2,
            seed: 42,
        }
    }
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmTrial {
    /// 1-based, in run order.
    pub id: usize,
    /// Version (0 = baseline).
    pub version: usize,
    /// Strategy idea (`baseline` for the first).
    pub idea: String,
    /// Data set hash.
    pub dataset: String,
    /// Config.
    pub config: LmConfig,
    /// Optimizer steps.
    pub steps: usize,
    /// Seed.
    pub seed: u64,
    /// Validation loss (nats/token); infinite (`null` in JSON) when the training failed.
    pub val_loss: f64,
}

/// One strategy's result within a version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmStrategyResult {
    /// Idea id.
    pub idea: String,
    /// Why it was chosen.
    pub reason: String,
    /// New trainings spent.
    pub trials: usize,
    /// Best config it reached (the incumbent if nothing beat it).
    pub best: LmConfig,
    /// Its validation loss.
    pub best_loss: f64,
    /// Whether it beat the incumbent by more than ε.
    pub outcome: Outcome,
}

/// One version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LmVersion {
    /// 0 = baseline.
    pub version: usize,
    /// The incumbent's error analysis this version reacted to (none for the baseline).
    pub analysis: Option<LmAnalysis>,
    /// Strategies run.
    pub strategies: Vec<LmStrategyResult>,
    /// Incumbent after the version.
    pub best: LmConfig,
    /// Its validation loss.
    pub best_loss: f64,
    /// Whether the version replaced the incumbent.
    pub improved: bool,
}

/// The loop's result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LmRunOutcome {
    /// Data set (name, hash).
    pub dataset: (String, String),
    /// Steps per training.
    pub steps: usize,
    /// Versions, the baseline first.
    pub versions: Vec<LmVersion>,
    /// Every training.
    pub trials: Vec<LmTrial>,
    /// Final incumbent.
    pub best: LmConfig,
    /// Its validation loss.
    pub best_loss: f64,
    /// Why the loop stopped.
    pub stop_reason: String,
    /// Insights recorded by this run.
    pub insights: usize,
    /// Trainings that failed (their loss is infinite in the trial log, `null` in JSON).
    pub failures: Vec<String>,
}

/// Runs the loop from `start` and adds its insights to `kb`.
pub fn run_lm_loop(
    t: &dyn LmProber,
    dataset: (&str, &str),
    start: LmConfig,
    cfg: &LmLoopConfig,
    kb: &mut KnowledgeBase,
) -> Result<LmRunOutcome, LmError> {
    let (name, hash) = dataset;
    let trial = |id: usize, version: usize, idea: &str, c: &LmConfig, l: f64| LmTrial {
        id,
        version,
        idea: idea.into(),
        dataset: hash.into(),
        config: c.clone(),
        steps: cfg.steps,
        seed: cfg.seed,
        val_loss: l,
    };
    let start_loss = t.train_eval(&start, cfg.steps, cfg.seed)?;
    let scored = Scored {
        t,
        failures: Mutex::new(Vec::new()),
    };
    let mut trials = vec![trial(1, 0, "baseline", &start, start_loss)];
    let mut known: Vec<(LmConfig, f64)> = vec![(start.clone(), start_loss)];
    let (mut best, mut best_loss) = (start.clone(), start_loss);
    let mut versions = vec![LmVersion {
        version: 0,
        analysis: None,
        strategies: Vec::new(),
        best: best.clone(),
        best_loss,
        improved: false,
    }];
    let mut tried: BTreeSet<(String, String)> = BTreeSet::new();
    let mut last: Vec<String> = Vec::new();
    let (mut stale, mut insights) = (0usize, 0usize);
    let stop_reason = loop {
        let v = versions.len();
        if trials.len() >= cfg.budget {
            break format!("budget exhausted ({} trainings)", trials.len());
        }
        if stale >= cfg.patience {
            break format!(
                "ceiling: no gain above ε = {} for {} versions",
                cfg.epsilon, cfg.patience
            );
        }
        let base = base_key(&best);
        // The incumbent is retrained and probed only when it changed (same seed, same model).
        let analysis = match versions.last() {
            Some(LmVersion {
                analysis: Some(a),
                improved: false,
                ..
            }) => a.clone(),
            _ => LmAnalysis::from_probe(&t.probe(&best, cfg.steps, cfg.seed)?),
        };
        let chosen = choose(
            &analysis.patterns,
            &Choice {
                kb: &*kb,
                dataset: hash,
                base: &base,
                tried: &tried,
                last: &last,
            },
            cfg.strategies,
        );
        if chosen.is_empty() {
            break "no untried strategy left for the incumbent".into();
        }
        let (reference, mut v_best, mut v_loss) = (best_loss, best.clone(), best_loss);
        let mut results = Vec::new();
        for (idea, reason) in chosen {
            let cap = cfg
                .per_strategy
                .min(cfg.budget.saturating_sub(trials.len()));
            if cap == 0 {
                break;
            }
            let before = known.len();
            let (_, s_best, s_loss) = phase_pass(
                &scored,
                idea.groups,
                best.clone(),
                best_loss,
                cfg.steps,
                cfg.seed,
                &mut known,
                cap,
            )?;
            let mut spent = 0;
            for i in before..known.len() {
                let (c, l) = &known[i];
                if !known[..i].iter().any(|(a, _)| a == c) {
                    spent += 1;
                    trials.push(trial(trials.len() + 1, v, idea.id, c, *l));
                }
            }
            let outcome = if reference - s_loss > cfg.epsilon {
                Outcome::Improved
            } else {
                Outcome::NoGain
            };
            kb.add(Insight::new(InsightBody {
                domain: DOMAIN.into(),
                dataset: hash.into(),
                dataset_name: name.into(),
                version: v,
                idea: idea.id.into(),
                family: idea
                    .groups
                    .iter()
                    .map(|g| format!("{g:?}"))
                    .collect::<Vec<_>>()
                    .join("+"),
                base: base.clone(),
                conditions: analysis.patterns.clone(),
                trials: spent,
                reference_loss: reference,
                best_loss: s_loss,
                effect: reference - s_loss,
                outcome,
                best_config: Candidate {
                    members: Vec::new(),
                    post: PostSpec::default(),
                },
                best_lm_config: Some(s_best.clone()),
            }));
            insights += 1;
            tried.insert((idea.id.to_string(), base.clone()));
            if s_loss < v_loss {
                (v_best, v_loss) = (s_best.clone(), s_loss);
            }
            results.push(LmStrategyResult {
                idea: idea.id.into(),
                reason,
                trials: spent,
                best: s_best,
                best_loss: s_loss,
                outcome,
            });
        }
        let improved = reference - v_loss > cfg.epsilon;
        if improved {
            (best, best_loss) = (v_best, v_loss);
            stale = 0;
        } else {
            stale += 1;
        }
        last = results.iter().map(|r| r.idea.clone()).collect();
        versions.push(LmVersion {
            version: v,
            analysis: Some(analysis),
            strategies: results,
            best: best.clone(),
            best_loss,
            improved,
        });
    };
    Ok(LmRunOutcome {
        dataset: (name.into(), hash.into()),
        steps: cfg.steps,
        versions,
        trials,
        best,
        best_loss,
        stop_reason,
        insights,
        failures: scored.failures.into_inner().unwrap_or_default(),
    })
}

/// A trainer whose failed trainings (an engine error, a non-finite loss) score an infinite
/// loss instead of ending the loop; the messages are kept for the report.
struct Scored<'a> {
    t: &'a dyn LmProber,
    failures: Mutex<Vec<String>>,
}

impl LmTrainer for Scored<'_> {
    fn train_eval(&self, cfg: &LmConfig, steps: usize, seed: u64) -> Result<f64, LmError> {
        match self.t.train_eval(cfg, steps, seed) {
            Ok(l) if l.is_finite() => Ok(l),
            Ok(l) => self.failed(format!("validation loss {l} for {cfg:?}")),
            Err(e) => self.failed(format!("{e} ({cfg:?})")),
        }
    }
    fn supports(&self, g: Group) -> bool {
        self.t.supports(g)
    }
    fn variants(&self, g: Group, base: &LmConfig) -> Vec<LmConfig> {
        self.t.variants(g, base)
    }
}

impl Scored<'_> {
    fn failed(&self, why: String) -> Result<f64, LmError> {
        if let Ok(mut f) = self.failures.lock() {
            f.push(why);
        }
        Ok(f64::INFINITY)
    }
}

/// Why the run folder could not be written.
#[derive(Debug, thiserror::Error)]
#[error("writing the LM run folder {path}: {message}")]
pub struct LmReportError {
    /// File.
    pub path: String,
    /// Cause.
    pub message: String,
}

/// The run's `report.md`.
pub fn render_lm_markdown(o: &LmRunOutcome) -> String {
    let first = o.versions.first().map_or(f64::NAN, |v| v.best_loss);
    let mut s = format!(
        "# BitNet-LM research loop on {}\n\nData hash `{}`. {} versions after the baseline, {} trainings of {} steps each. Validation loss (nats/token) {first:.4} → {:.4}. Stop: {}.\n\nThe validation split both selects and scores, so the final loss is optimistic.\n\n## Versions\n\n| Version | Patterns | Strategies (new trainings, best val loss) | Best val loss | Improved |\n|---|---|---|---|---|\n",
        o.dataset.0,
        &o.dataset.1[..o.dataset.1.len().min(16)],
        o.versions.len().saturating_sub(1),
        o.trials.len(),
        o.steps,
        o.best_loss,
        o.stop_reason
    );
    for v in &o.versions {
        let pats = v.analysis.as_ref().map_or("–".to_string(), |a| {
            a.patterns
                .iter()
                .map(|p| format!("{p:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let strat = if v.strategies.is_empty() {
            "baseline".to_string()
        } else {
            v.strategies
                .iter()
                .map(|r| {
                    format!(
                        "{} [{}] ({}, {:.4})",
                        r.idea, r.reason, r.trials, r.best_loss
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        s.push_str(&format!(
            "| {} | {pats} | {strat} | {:.4} | {} |\n",
            v.version,
            v.best_loss,
            if v.improved { "yes" } else { "no" }
        ));
    }
    s.push_str("\n## Error analyses\n\n| Version | Val | Train | Gap | Frequent (loss / unigram) | Mid | Rare | Early / late positions | Spikes | Tail ratio |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for v in &o.versions {
        if let Some(a) = &v.analysis {
            let band = |i: usize| {
                a.bands.get(i).map_or("–".into(), |b| {
                    format!("{:.3} / {:.3} ({} tok)", b.loss, b.unigram, b.tokens)
                })
            };
            s.push_str(&format!(
                "| {} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {:.3} / {:.3} | {} | {:.3} |\n",
                v.version,
                a.val_loss,
                a.train_loss,
                a.gap,
                band(0),
                band(1),
                band(2),
                a.early_loss,
                a.late_loss,
                a.spikes,
                a.tail_ratio
            ));
        }
    }
    s.push_str("\n## Strategy catalog\n\n");
    for i in LM_CATALOG {
        s.push_str(&format!("- `{}`: {}\n", i.id, i.description));
    }
    s.push_str(&format!(
        "\n## Best config\n\n`{}` (validation loss {:.4})\n\n{} insights recorded in knowledge.json (domain `{DOMAIN}`).\n",
        serde_json::to_string(&o.best).unwrap_or_default(),
        o.best_loss,
        o.insights
    ));
    if !o.failures.is_empty() {
        s.push_str(&format!("\n## Failed trainings ({})\n\n", o.failures.len()));
        for f in &o.failures {
            s.push_str(&format!("- {f}\n"));
        }
    }
    s
}

/// Writes `report.md`, `progression.png`, `trials.jsonl` and `knowledge.json` into `out`.
pub fn write_lm_folder(
    out: &Path,
    o: &LmRunOutcome,
    kb: &KnowledgeBase,
) -> Result<(), LmReportError> {
    let fail = |p: &Path, m: String| LmReportError {
        path: p.display().to_string(),
        message: m,
    };
    std::fs::create_dir_all(out).map_err(|e| fail(out, e.to_string()))?;
    let md = out.join("report.md");
    std::fs::write(&md, render_lm_markdown(o)).map_err(|e| fail(&md, e.to_string()))?;
    let mut lines = String::new();
    for t in &o.trials {
        let line = serde_json::to_string(t).map_err(|e| fail(out, e.to_string()))?;
        lines.push_str(&line);
        lines.push('\n');
    }
    let tj = out.join("trials.jsonl");
    std::fs::write(&tj, lines).map_err(|e| fail(&tj, e.to_string()))?;
    let kp = out.join("knowledge.json");
    kb.save(&kp).map_err(|e| fail(&kp, e.to_string()))?;
    let png = out.join("progression.png");
    let pts: Vec<(f64, usize, f64)> = o
        .trials
        .iter()
        .map(|t| (t.id as f64, t.version, t.val_loss))
        .collect();
    plot_trials(
        &png,
        &format!("{}: validation loss per training", o.dataset.0),
        "validation loss (nats/token)",
        &pts,
    )
    .map_err(|m| fail(&png, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analysis() -> LmAnalysis {
        // A healthy model: gap moderate, rare tokens as well served as frequent ones, late
        // positions better than early, a smooth curve.
        LmAnalysis {
            val_loss: 4.0,
            train_loss: 3.0,
            gap: 1.0,
            bands: vec![
                Band {
                    name: "frequent".into(),
                    tokens: 100,
                    loss: 3.0,
                    unigram: 4.0,
                },
                Band {
                    name: "mid".into(),
                    tokens: 50,
                    loss: 5.0,
                    unigram: 6.0,
                },
                Band {
                    name: "rare".into(),
                    tokens: 10,
                    loss: 7.0,
                    unigram: 7.8,
                },
            ],
            early_loss: 4.5,
            late_loss: 3.8,
            spikes: 0,
            tail_ratio: 0.97,
            finite: true,
            patterns: Vec::new(),
        }
    }

    #[test]
    fn each_synthetic_analysis_yields_its_failure_patterns() {
        type Edit = fn(&mut LmAnalysis);
        let cases: &[(&str, Edit, &[Pattern])] = &[
            ("healthy", |_| {}, &[]),
            (
                "small gap is underfit",
                |a| a.train_loss = 3.9,
                &[Pattern::Underfit],
            ),
            (
                "large gap is overfit",
                |a| a.train_loss = 2.0,
                &[Pattern::Overfit],
            ),
            (
                "rare tokens gain less than frequent ones",
                |a| a.bands[2].loss = 7.7,
                &[Pattern::RareTokenErrors],
            ),
            (
                "late positions no better than early ones",
                |a| a.late_loss = 4.45,
                &[Pattern::ContextUnused],
            ),
            (
                "a loss spike",
                |a| a.spikes = 1,
                &[Pattern::UnstableTraining],
            ),
            (
                "a rising tail",
                |a| a.tail_ratio = 1.05,
                &[Pattern::UnstableTraining],
            ),
            (
                "a non-finite loss",
                |a| a.finite = false,
                &[Pattern::UnstableTraining],
            ),
            (
                "an empty rare band is no evidence",
                |a| {
                    a.bands[2].tokens = 0;
                    a.bands[2].loss = 99.0;
                },
                &[],
            ),
            (
                "several at once",
                |a| {
                    a.train_loss = 3.95;
                    a.late_loss = 4.6;
                },
                &[Pattern::Underfit, Pattern::ContextUnused],
            ),
        ];
        for (name, edit, want) in cases {
            let mut a = analysis();
            edit(&mut a);
            assert_eq!(detect(&a), *want, "{name}");
        }
    }

    #[test]
    fn a_probe_is_split_into_frequency_bands_positions_and_curve_shape() {
        // Token 0 is 60 % of training, token 1 30 %, token 2 10 %, token 3 unseen.
        let p = LmProbe {
            train_counts: vec![60, 30, 10, 0],
            targets: vec![vec![0, 1, 2, 3], vec![0, 0, 1, 3]],
            losses: vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 1.0, 2.0, 6.0]],
            train_loss: 1.0,
            curve: vec![5.0, 4.0, 3.0, 2.9, 2.8, 2.7, 2.6, 5.0],
        };
        let a = LmAnalysis::from_probe(&p);
        let names: Vec<(&str, usize)> = a.bands.iter().map(|b| (&*b.name, b.tokens)).collect();
        assert_eq!(names, [("frequent", 3), ("mid", 2), ("rare", 3)]);
        assert!((a.bands[0].loss - 1.0).abs() < 1e-9);
        assert!((a.bands[2].loss - 13.0 / 3.0).abs() < 1e-9);
        assert!((a.val_loss - 2.5).abs() < 1e-9);
        assert!((a.early_loss - 1.0).abs() < 1e-9 && (a.late_loss - 5.0).abs() < 1e-9);
        assert_eq!(a.spikes, 1);
        assert!(a.tail_ratio > 1.02);
        assert_eq!(
            a.patterns,
            [
                Pattern::Overfit,
                Pattern::ContextUnused,
                Pattern::UnstableTraining
            ]
        );
    }

    /// A fast stand-in trainer: wider and longer-context models are better, a learning rate
    /// of 1e-2 or more diverges, and the probe always shows an underfit model.
    struct Fake;

    impl LmTrainer for Fake {
        fn train_eval(&self, c: &LmConfig, _steps: usize, _seed: u64) -> Result<f64, LmError> {
            if c.lr >= 1e-2 {
                return Err(LmError("diverged".into()));
            }
            Ok(5.0 - 0.1 * c.d_model as f64 / 256.0 - if c.context == 2 { 0.05 } else { 0.0 })
        }
        fn supports(&self, _g: Group) -> bool {
            true
        }
    }

    impl LmProber for Fake {
        fn probe(&self, c: &LmConfig, steps: usize, seed: u64) -> Result<LmProbe, LmError> {
            let l = self.train_eval(c, steps, seed)? as f32;
            Ok(LmProbe {
                train_counts: vec![10, 5, 1],
                targets: vec![vec![0, 1, 2, 0]],
                losses: vec![vec![l; 4]],
                train_loss: l as f64,
                curve: vec![6.0, 5.5, 5.0],
            })
        }
    }

    #[test]
    fn the_loop_survives_failed_trainings_records_insights_and_stops_at_the_ceiling() {
        let cfg = LmLoopConfig {
            budget: 100,
            steps: 1,
            per_strategy: 3,
            strategies: 2,
            epsilon: 0.01,
            patience: 2,
            seed: 1,
        };
        let mut kb = KnowledgeBase::new();
        let o = run_lm_loop(&Fake, ("fake", "h"), LmConfig::default(), &cfg, &mut kb).unwrap();
        assert!(!o.stop_reason.starts_with("budget"), "{}", o.stop_reason);
        assert!(o.trials.len() < cfg.budget);
        assert!(o.best_loss < o.versions[0].best_loss);
        assert_eq!((o.best.d_model, o.best.context), (512, 2));
        // The diverging learning rates were tried, scored +inf and reported, not fatal.
        let failed: Vec<&LmTrial> = o.trials.iter().filter(|t| t.config.lr >= 1e-2).collect();
        assert!(!failed.is_empty());
        assert!(failed.iter().all(|t| t.val_loss == f64::INFINITY));
        assert_eq!(o.failures.len(), failed.len());
        assert!(render_lm_markdown(&o).contains("## Failed trainings"));
        // One insight per strategy run, all in this domain; consecutive versions differ.
        let runs: usize = o.versions.iter().map(|v| v.strategies.len()).sum();
        assert_eq!(o.insights, runs);
        assert_eq!(kb.insights.len(), runs);
        assert!(kb.insights.iter().all(|i| i.body.domain == DOMAIN));
        for w in o.versions[1..].windows(2) {
            let ideas = |v: &LmVersion| {
                v.strategies
                    .iter()
                    .map(|s| s.idea.clone())
                    .collect::<Vec<_>>()
            };
            assert_ne!(ideas(&w[0]), ideas(&w[1]));
        }
        // A second run on the same knowledge base skips what failed from the same incumbent.
        let failed: BTreeSet<(String, String)> = kb
            .insights
            .iter()
            .filter(|i| i.body.outcome == Outcome::NoGain)
            .map(|i| (i.body.idea.clone(), i.body.base.clone()))
            .collect();
        assert!(!failed.is_empty());
        let again = run_lm_loop(&Fake, ("fake", "h"), LmConfig::default(), &cfg, &mut kb).unwrap();
        for w in again.versions.windows(2) {
            let base = base_key(&w[0].best);
            for s in &w[1].strategies {
                assert!(
                    !failed.contains(&(s.idea.clone(), base.clone())),
                    "{}",
                    s.idea
                );
            }
        }
    }

    #[test]
    fn the_chooser_follows_the_patterns_skips_tried_and_failed_ideas_and_rotates() {
        let kb = KnowledgeBase::new();
        let tried = BTreeSet::new();
        let c = Choice {
            kb: &kb,
            dataset: "d",
            base: "lm:x",
            tried: &tried,
            last: &[],
        };
        let ids = |v: Vec<(LmIdea, String)>| v.iter().map(|x| x.0.id).collect::<Vec<_>>();
        assert_eq!(
            ids(choose(&[Pattern::ContextUnused], &c, 3)),
            ["context_length", "attention_heads", "phase_grid"]
        );
        assert_eq!(
            ids(choose(&[Pattern::Underfit, Pattern::ContextUnused], &c, 4)),
            [
                "capacity",
                "context_length",
                "learning_rate",
                "attention_heads"
            ]
        );
        assert_eq!(ids(choose(&[], &c, 2)), ["phase_grid", "learning_rate"]);
        let mut tried = BTreeSet::new();
        tried.insert(("context_length".to_string(), "lm:x".to_string()));
        let last = ["attention_heads".to_string()];
        let c = Choice {
            tried: &tried,
            last: &last,
            ..c
        };
        assert_eq!(
            ids(choose(&[Pattern::ContextUnused], &c, 2)),
            ["phase_grid", "learning_rate"]
        );
        // A failure recorded in the knowledge base for this data and incumbent is skipped.
        let mut kb = KnowledgeBase::new();
        kb.add(Insight::new(InsightBody {
            domain: DOMAIN.into(),
            dataset: "d".into(),
            dataset_name: "d.txt".into(),
            version: 1,
            idea: "phase_grid".into(),
            family: "f".into(),
            base: "lm:x".into(),
            conditions: vec![],
            trials: 1,
            reference_loss: 1.0,
            best_loss: 1.0,
            effect: 0.0,
            outcome: Outcome::NoGain,
            best_config: Candidate {
                members: Vec::new(),
                post: PostSpec::default(),
            },
            best_lm_config: None,
        }));
        let c = Choice { kb: &kb, ..c };
        assert_eq!(
            ids(choose(&[Pattern::ContextUnused], &c, 2)),
            ["learning_rate", "capacity"]
        );
    }
}
