//! Strategies: the catalog of fundamentally different ideas, how each turns into a search space
//! and candidate configs, and the [`Strategist`]s that choose 3–8 of them per version.
//!
//! The [`RuleStrategist`] maps failure patterns to ideas with a fixed table
//! ([`RULES`]), boosts ideas that the knowledge base records as successful on other data, and
//! never proposes an idea that this run already tried or that the knowledge base records as
//! failed on this data set. The LLM strategist (cargo feature `llm`) asks an OpenAI-compatible
//! endpoint and passes its answer through [`validate_proposals`], the same schema and rules.

use crate::analysis::{ErrorReport, Pattern};
use crate::kb::KnowledgeBase;
use crate::models::ModelSpec;
use crate::pipeline::{Candidate, PipelineConfig};
use crate::sweep::{Space, Values};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Strategy families (what kind of change an idea makes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Switch the model family (architectural pivot).
    ModelFamily,
    /// Re-tune the current model's regularisation/capacity.
    Regularisation,
    /// Balanced class weights.
    ClassWeights,
    /// Per-context probability offsets under one global threshold.
    ContextOffsets,
    /// Top-k feature selection.
    FeatureSelection,
    /// New features.
    FeatureEngineering,
    /// A base model's prediction as a feature.
    Stacking,
    /// Weighted soft voting of different families.
    Ensemble,
    /// Probability calibration.
    Calibration,
}

/// One catalog entry.
#[derive(Debug, Clone, Copy)]
pub struct Idea {
    /// Stable id (recorded in the knowledge base).
    pub id: &'static str,
    /// Family.
    pub family: Family,
    /// What it does.
    pub description: &'static str,
}

/// The tabular strategy catalog.
pub const CATALOG: &[Idea] = &[
    Idea {
        id: "pivot_gbm",
        family: Family::ModelFamily,
        description: "gradient-boosted trees (forust)",
    },
    Idea {
        id: "pivot_extra_trees",
        family: Family::ModelFamily,
        description: "ExtraTrees probabilities",
    },
    Idea {
        id: "pivot_random_forest",
        family: Family::ModelFamily,
        description: "random forest probabilities",
    },
    Idea {
        id: "pivot_logistic",
        family: Family::ModelFamily,
        description: "regularised logistic regression",
    },
    Idea {
        id: "tune_current",
        family: Family::Regularisation,
        description: "re-tune the current model's capacity",
    },
    Idea {
        id: "class_weights",
        family: Family::ClassWeights,
        description: "balanced class weights",
    },
    Idea {
        id: "context_offsets",
        family: Family::ContextOffsets,
        description: "per-context probability offsets, one global threshold",
    },
    Idea {
        id: "top_k_features",
        family: Family::FeatureSelection,
        description: "top-k features by ANOVA F",
    },
    Idea {
        id: "feature_interactions",
        family: Family::FeatureEngineering,
        description: "pairwise products of numeric features",
    },
    Idea {
        id: "context_interactions",
        family: Family::FeatureEngineering,
        description: "numeric × context features",
    },
    Idea {
        id: "text_tokens",
        family: Family::FeatureEngineering,
        description: "frequent free-text tokens as features",
    },
    Idea {
        id: "stacking",
        family: Family::Stacking,
        description: "another family's prediction as a feature",
    },
    Idea {
        id: "soft_vote_ensemble",
        family: Family::Ensemble,
        description: "weighted soft vote with the best other family",
    },
    Idea {
        id: "temperature_calibration",
        family: Family::Calibration,
        description: "temperature scaling",
    },
];

/// Failure pattern → ideas that address it, most direct first.
pub const RULES: &[(Pattern, &[&str])] = &[
    (
        Pattern::Underfit,
        &[
            "pivot_gbm",
            "feature_interactions",
            "text_tokens",
            "pivot_extra_trees",
            "stacking",
        ],
    ),
    (
        Pattern::Overfit,
        &[
            "tune_current",
            "top_k_features",
            "pivot_extra_trees",
            "soft_vote_ensemble",
            "pivot_logistic",
        ],
    ),
    (
        Pattern::Miscalibrated,
        &["temperature_calibration", "soft_vote_ensemble"],
    ),
    (
        Pattern::ContextDisparity,
        &["context_offsets", "context_interactions"],
    ),
    (Pattern::MinorityErrors, &["class_weights"]),
    (
        Pattern::FoldInstability,
        &["soft_vote_ensemble", "pivot_random_forest"],
    ),
    (
        Pattern::FeatureRegionErrors,
        &["feature_interactions", "pivot_gbm"],
    ),
    (Pattern::ManyFeatures, &["top_k_features"]),
    (Pattern::UnusedText, &["text_tokens"]),
];

/// Fallback order when the patterns name too few ideas.
pub const FALLBACK: &[&str] = &[
    "pivot_gbm",
    "pivot_extra_trees",
    "context_offsets",
    "soft_vote_ensemble",
    "text_tokens",
    "feature_interactions",
    "stacking",
    "tune_current",
    "pivot_random_forest",
    "top_k_features",
    "temperature_calibration",
    "class_weights",
    "context_interactions",
    "pivot_logistic",
];

/// Looks an idea up.
pub fn idea(id: &str) -> Option<Idea> {
    CATALOG.iter().copied().find(|i| i.id == id)
}

/// A chosen strategy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    /// Idea id.
    pub idea: String,
    /// Family.
    pub family: Family,
    /// Why it was chosen.
    pub rationale: String,
}

/// What a strategist sees.
pub struct StrategyContext<'a> {
    /// Domain name.
    pub domain: &'a str,
    /// Data set hash.
    pub dataset: &'a str,
    /// Version being designed.
    pub version: usize,
    /// Error analysis of the current best.
    pub report: &'a ErrorReport,
    /// Knowledge base.
    pub kb: &'a KnowledgeBase,
    /// Ideas already tried in this run.
    pub tried: &'a BTreeSet<String>,
    /// The current best candidate.
    pub best: &'a Candidate,
    /// Best candidate seen per model family.
    pub family_best: &'a BTreeMap<String, (Candidate, f64)>,
    /// Whether a context column exists.
    pub has_context: bool,
    /// Whether free-text tokens exist.
    pub has_text: bool,
    /// How many strategies to return (3–8).
    pub want: usize,
}

/// Why a strategist failed.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// The proposal does not match the schema.
    #[error("invalid strategy proposal: {0}")]
    Invalid(String),
    /// The endpoint failed.
    #[error("strategist endpoint: {0}")]
    Endpoint(String),
}

/// Designs the strategies of a version.
pub trait Strategist: Send + Sync {
    /// Name for reports.
    fn name(&self) -> &str;
    /// Chooses strategies (may return fewer than `want` when the catalog is exhausted).
    fn design(&self, ctx: &StrategyContext) -> Result<Vec<Strategy>, StrategyError>;
}

/// Whether an idea can run now, and if not, why.
pub fn applicable(id: &str, ctx: &StrategyContext) -> Result<(), &'static str> {
    let fam = ctx.best.members[0].0.model.family();
    match id {
        "context_offsets" | "context_interactions" if !ctx.has_context => Err("no context column"),
        "text_tokens" if !ctx.has_text => Err("no free-text column"),
        "text_tokens" if ctx.best.members.iter().all(|m| m.0.features.text_tokens) => {
            Err("already on")
        }
        "soft_vote_ensemble"
            if ctx.family_best.keys().filter(|f| f.as_str() != fam).count() == 0 =>
        {
            Err("needs a second model family")
        }
        "stacking" if ctx.family_best.keys().filter(|f| f.as_str() != fam).count() == 0 => {
            Err("needs a second model family")
        }
        "pivot_gbm" if fam == "gbm" => Err("already the family"),
        "pivot_extra_trees" if fam == "extra_trees" => Err("already the family"),
        "pivot_random_forest" if fam == "random_forest" => Err("already the family"),
        "pivot_logistic" if fam == "logistic" => Err("already the family"),
        _ if ctx.tried.contains(&tried_key(id, ctx.best)) => {
            Err("already tried on this model family in this run")
        }
        _ if ctx.kb.failed(ctx.domain, ctx.dataset, id, fam) => {
            Err("recorded as failed in the knowledge base")
        }
        _ => Ok(()),
    }
}

/// The key under which an idea counts as tried: the idea and the model family it started from
/// (feature engineering that failed on logistic regression may still help trees).
pub fn tried_key(id: &str, best: &Candidate) -> String {
    format!("{id}@{}", best.members[0].0.model.family())
}

/// The rule-based strategist.
#[derive(Debug, Default, Clone, Copy)]
pub struct RuleStrategist;

impl Strategist for RuleStrategist {
    fn name(&self) -> &str {
        "rules"
    }
    fn design(&self, ctx: &StrategyContext) -> Result<Vec<Strategy>, StrategyError> {
        let mut score: BTreeMap<&str, (f64, String)> = BTreeMap::new();
        for (pat, ideas) in RULES {
            if !ctx.report.patterns.contains(pat) {
                continue;
            }
            for (pos, id) in ideas.iter().enumerate() {
                let e = score.entry(id).or_insert((0.0, String::new()));
                e.0 += 10.0 - pos as f64;
                if !e.1.is_empty() {
                    e.1.push_str(", ");
                }
                e.1.push_str(&format!("{pat:?}"));
            }
        }
        for (pos, id) in FALLBACK.iter().enumerate() {
            let e = score.entry(id).or_insert((0.0, String::new()));
            e.0 +=
                0.1 * (FALLBACK.len() - pos) as f64 + 3.0 * ctx.kb.successes(ctx.domain, id) as f64;
        }
        let mut ranked: Vec<(&str, f64, String)> = score
            .into_iter()
            .filter(|(id, _)| applicable(id, ctx).is_ok())
            .map(|(id, (s, why))| (id, s, why))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        let mut out: Vec<Strategy> = Vec::new();
        let mut per_family: BTreeMap<Family, usize> = BTreeMap::new();
        for (id, _, why) in &ranked {
            let Some(i) = idea(id) else { continue };
            let n = per_family.entry(i.family).or_default();
            if *n >= 2 {
                continue;
            }
            *n += 1;
            out.push(Strategy {
                idea: id.to_string(),
                family: i.family,
                rationale: if why.is_empty() {
                    format!("{} (exploration)", i.description)
                } else {
                    format!("{} — addresses {why}", i.description)
                },
            });
            if out.len() >= ctx.want.clamp(3, 8) {
                break;
            }
        }
        Ok(out)
    }
}

/// Validates an LLM's JSON answer `{"strategies":[{"idea":…, "rationale":…}, …]}` against the
/// catalog and the same rules as the rule-based strategist.
pub fn validate_proposals(
    json: &str,
    ctx: &StrategyContext,
) -> Result<Vec<Strategy>, StrategyError> {
    #[derive(Deserialize)]
    struct P {
        idea: String,
        #[serde(default)]
        rationale: String,
    }
    #[derive(Deserialize)]
    struct A {
        strategies: Vec<P>,
    }
    let a: A = serde_json::from_str(json).map_err(|e| StrategyError::Invalid(e.to_string()))?;
    if a.strategies.is_empty() || a.strategies.len() > 8 {
        return Err(StrategyError::Invalid(format!(
            "{} strategies (need 1–8)",
            a.strategies.len()
        )));
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for p in a.strategies {
        let i = idea(&p.idea)
            .ok_or_else(|| StrategyError::Invalid(format!("unknown idea `{}`", p.idea)))?;
        applicable(&p.idea, ctx)
            .map_err(|why| StrategyError::Invalid(format!("`{}`: {why}", p.idea)))?;
        if !seen.insert(p.idea.clone()) {
            return Err(StrategyError::Invalid(format!(
                "`{}` proposed twice",
                p.idea
            )));
        }
        out.push(Strategy {
            idea: p.idea,
            family: i.family,
            rationale: p.rationale,
        });
    }
    Ok(out)
}

/// LLM strategist over an OpenAI-compatible `/v1/chat/completions` endpoint.
#[cfg(feature = "llm")]
pub struct LlmStrategist {
    /// Base URL, e.g. `http://localhost:8080/v1`.
    pub base_url: String,
    /// Model name.
    pub model: String,
    /// Bearer token, if any.
    pub api_key: Option<String>,
}

#[cfg(feature = "llm")]
impl Strategist for LlmStrategist {
    fn name(&self) -> &str {
        "llm"
    }
    fn design(&self, ctx: &StrategyContext) -> Result<Vec<Strategy>, StrategyError> {
        let catalog: Vec<String> = CATALOG
            .iter()
            .filter(|i| applicable(i.id, ctx).is_ok())
            .map(|i| format!("{}: {}", i.id, i.description))
            .collect();
        let prompt = format!(
            "You design ML research strategies. Error analysis of the current best model:\n{}\n\
             Choose {} different ideas from this catalog (ids only):\n{}\n\
             Answer only JSON: {{\"strategies\":[{{\"idea\":\"<id>\",\"rationale\":\"<why>\"}}]}}",
            serde_json::to_string(ctx.report).unwrap_or_default(),
            ctx.want.clamp(3, 8),
            catalog.join("\n")
        );
        let body = serde_json::json!({
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "temperature": 0.2,
        });
        let agent = ureq::AgentBuilder::new()
            .timeout(std::time::Duration::from_secs(120))
            .build();
        let mut req = agent.post(&format!(
            "{}/chat/completions",
            self.base_url.trim_end_matches('/')
        ));
        if let Some(k) = &self.api_key {
            req = req.set("Authorization", &format!("Bearer {k}"));
        }
        let resp: serde_json::Value = req
            .send_json(body)
            .map_err(|e| StrategyError::Endpoint(e.to_string()))?
            .into_json()
            .map_err(|e| StrategyError::Endpoint(e.to_string()))?;
        let content = resp["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| StrategyError::Endpoint("no choices[0].message.content".into()))?;
        // Models often wrap the JSON in prose or a code fence: take the outermost braces, or
        // the whole reply when there is no `{ … }` pair (the validator then names the error).
        let json = match (content.find('{'), content.rfind('}')) {
            (Some(s), Some(e)) if e > s => &content[s..=e],
            _ => content,
        };
        validate_proposals(json, ctx)
    }
}

/// The search space of a model family.
pub fn model_space(family: &str) -> Space {
    match family {
        "logistic" => Space::default().float("l2", 1e-4, 1.0, true),
        "gbm" => Space::default()
            .int("iterations", 30, 200, true)
            .float("learning_rate", 0.02, 0.3, true)
            .int("max_depth", 2, 6, false)
            .float("min_leaf_weight", 0.5, 20.0, true)
            .float("subsample", 0.5, 1.0, false)
            .float("l2", 0.1, 10.0, true),
        _ => Space::default()
            .int("n_trees", 20, 80, false)
            .int("min_samples_leaf", 1, 20, true)
            .float("max_features", 0.2, 1.0, false)
            .int("depth_choice", 0, 3, false),
    }
}

/// Builds a model of `family` from decoded values (missing values take defaults).
pub fn model_from(family: &str, v: &Values) -> Option<ModelSpec> {
    let g = |k: &str, d: f64| v.get(k).copied().unwrap_or(d);
    let depth = |c: f64| [0u16, 4, 8, 12][(c as usize).min(3)];
    Some(match family {
        "logistic" => ModelSpec::Logistic { l2: g("l2", 1e-3) },
        "gbm" => ModelSpec::Gbm {
            iterations: g("iterations", 100.0) as usize,
            learning_rate: g("learning_rate", 0.1),
            max_depth: g("max_depth", 3.0) as usize,
            min_leaf_weight: g("min_leaf_weight", 1.0),
            subsample: g("subsample", 1.0),
            l2: g("l2", 1.0),
        },
        "random_forest" => ModelSpec::RandomForest {
            n_trees: g("n_trees", 100.0) as usize,
            max_depth: depth(g("depth_choice", 0.0)),
            min_samples_leaf: g("min_samples_leaf", 3.0) as usize,
            max_features: g("max_features", 0.5),
        },
        "extra_trees" => ModelSpec::ExtraTrees {
            n_trees: g("n_trees", 100.0) as usize,
            max_depth: depth(g("depth_choice", 0.0)),
            min_samples_leaf: g("min_samples_leaf", 3.0) as usize,
            max_features: g("max_features", 0.7),
        },
        _ => return None,
    })
}

/// Whether an idea changes the incumbent and re-tunes its model in the same sweep (the sweep's
/// first config then keeps the incumbent's hyperparameters: the change alone).
pub fn retunes_incumbent(id: &str) -> bool {
    matches!(
        id,
        "class_weights"
            | "feature_interactions"
            | "context_interactions"
            | "text_tokens"
            | "stacking"
    )
}

fn with_first<F: Fn(&mut PipelineConfig)>(base: &Candidate, f: F) -> Candidate {
    let mut c = base.clone();
    for m in c.members.iter_mut() {
        f(&mut m.0);
    }
    c
}

/// The search space of an idea given the current best.
pub fn idea_space(id: &str, best: &Candidate, n_features: usize) -> Space {
    let fam = best.members[0].0.model.family();
    match id {
        "pivot_gbm" => model_space("gbm"),
        "pivot_extra_trees" => model_space("extra_trees"),
        "pivot_random_forest" => model_space("random_forest"),
        "pivot_logistic" => model_space("logistic"),
        "tune_current"
        | "class_weights"
        | "stacking"
        | "feature_interactions"
        | "context_interactions"
        | "text_tokens" => {
            if best.members.len() == 1 {
                model_space(fam)
            } else {
                Space::default()
            }
        }
        "context_offsets" => Space::default().float("lambda", 0.3, 300.0, true),
        "top_k_features" => Space::default().int("k", 2, n_features.max(3) as i64 - 1, false),
        "soft_vote_ensemble" => Space::default().float("w", 0.1, 0.9, false),
        _ => Space::default(),
    }
}

/// Turns an idea and a point of its space into a candidate, or `None` if it does not apply.
pub fn instantiate(
    id: &str,
    v: &Values,
    best: &Candidate,
    family_best: &BTreeMap<String, (Candidate, f64)>,
) -> Option<Candidate> {
    let fam = best.members[0].0.model.family();
    let retune = |c: &mut PipelineConfig| {
        if !v.is_empty() {
            if let Some(m) = model_from(c.model.family(), v) {
                c.model = m;
            }
        }
    };
    let other_best = || {
        family_best
            .iter()
            .filter(|(f, _)| f.as_str() != fam)
            .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
            .map(|(_, (c, _))| c.clone())
    };
    Some(match id {
        "pivot_gbm" | "pivot_extra_trees" | "pivot_random_forest" | "pivot_logistic" => {
            let family = id.trim_start_matches("pivot_");
            let model = model_from(family, v)?;
            let mut c = with_first(best, |p| p.model = model.clone());
            c.members.truncate(1);
            c.members[0].1 = 1.0;
            c
        }
        "tune_current" => with_first(best, retune),
        "class_weights" => with_first(best, |p| {
            retune(p);
            p.class_weight = true;
        }),
        "context_offsets" => {
            let mut c = best.clone();
            c.post.context_offsets = Some(v.get("lambda").copied().unwrap_or(10.0));
            c
        }
        "top_k_features" => {
            let k = v.get("k").copied().unwrap_or(5.0) as usize;
            with_first(best, |p| p.features.top_k = Some(k))
        }
        "feature_interactions" => with_first(best, |p| {
            retune(p);
            p.features.interactions = true;
        }),
        "context_interactions" => with_first(best, |p| {
            retune(p);
            p.features.context_interactions = true;
        }),
        "text_tokens" => with_first(best, |p| {
            retune(p);
            p.features.text_tokens = true;
        }),
        "stacking" => {
            let base = other_best()?.members[0].0.model.clone();
            with_first(best, |p| {
                retune(p);
                p.stack = Some(base.clone());
            })
        }
        "soft_vote_ensemble" => {
            let other = other_best()?;
            let w = v.get("w").copied().unwrap_or(0.5);
            let mut c = best.clone();
            c.members = vec![
                (best.members[0].0.clone(), 1.0 - w),
                (other.members[0].0.clone(), w),
            ];
            c
        }
        "temperature_calibration" => {
            let mut c = best.clone();
            c.post.temperature = true;
            c
        }
        _ => return None,
    })
}
