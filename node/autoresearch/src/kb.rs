//! The knowledge base: insights (what was tried, under which conditions, with what measured
//! effect) persisted as JSON, reloaded by the next run and mergeable with another node's.
//!
//! Guarantees: each insight carries the SHA-256 of its own canonical JSON (without the hash
//! field), so two nodes that recorded the same insight hold the same id; [`KnowledgeBase::merge`]
//! is a set union by that hash (commutative, idempotent) and keeps insights sorted by hash, so
//! the file is a deterministic function of its content. Loading verifies every hash.

use crate::analysis::Pattern;
use crate::pipeline::{content_hash, Candidate};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// File format tag.
pub const FORMAT: &str = "magnet-autoresearch-kb/1";

/// Why a knowledge base could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KbError {
    /// File I/O.
    #[error("knowledge base {path}: {source}")]
    Io {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// Not valid JSON of the expected shape.
    #[error("knowledge base {path}: not a {FORMAT} file: {message}")]
    Format {
        /// Path.
        path: String,
        /// Parser message.
        message: String,
    },
    /// An insight's content does not match its hash.
    #[error("knowledge base {path}: insight {index} has hash {stated} but its content hashes to {actual}")]
    Hash {
        /// Path.
        path: String,
        /// Insight index.
        index: usize,
        /// Hash in the file.
        stated: String,
        /// Recomputed hash.
        actual: String,
    },
}

/// Whether a strategy helped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It beat the previous best by at least ε.
    Improved,
    /// It did not.
    NoGain,
}

/// The body of an insight (what the hash covers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InsightBody {
    /// Domain (`tabular`, `timeseries`, `bitnet-lm`).
    pub domain: String,
    /// Data set content hash.
    pub dataset: String,
    /// Data set short name.
    pub dataset_name: String,
    /// Version in which it was tried.
    pub version: usize,
    /// Strategy idea id.
    pub idea: String,
    /// Strategy family.
    pub family: String,
    /// Model family of the best model the strategy started from.
    #[serde(default)]
    pub base: String,
    /// Failure patterns present when it was chosen.
    pub conditions: Vec<Pattern>,
    /// Trials spent.
    pub trials: usize,
    /// Best CV loss before this version.
    pub reference_loss: f64,
    /// Best CV loss this strategy reached.
    pub best_loss: f64,
    /// reference − best (positive = better).
    pub effect: f64,
    /// Whether it helped.
    pub outcome: Outcome,
    /// The best config this strategy found (tabular and time-series insights; empty for
    /// `bitnet-lm`, whose config is [`InsightBody::best_lm_config`]).
    pub best_config: Candidate,
    /// The best language-model config this strategy found (`bitnet-lm` insights only; absent
    /// from the JSON, and so from the hash, of every other insight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best_lm_config: Option<crate::lm::LmConfig>,
}

/// An insight with its content hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Insight {
    /// Hex SHA-256 of the body's JSON.
    pub hash: String,
    /// The insight.
    #[serde(flatten)]
    pub body: InsightBody,
}

impl Insight {
    /// Wraps a body with its hash.
    pub fn new(body: InsightBody) -> Insight {
        Insight {
            hash: content_hash(&body),
            body,
        }
    }
}

/// The knowledge base.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnowledgeBase {
    /// Format tag.
    pub format: String,
    /// Insights sorted by hash.
    pub insights: Vec<Insight>,
}

impl KnowledgeBase {
    /// An empty knowledge base.
    pub fn new() -> Self {
        KnowledgeBase {
            format: FORMAT.into(),
            insights: Vec::new(),
        }
    }
    /// Loads and verifies a file.
    pub fn load(path: &Path) -> Result<Self, KbError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| KbError::Io {
            path: p.clone(),
            source,
        })?;
        let kb: KnowledgeBase = serde_json::from_str(&text).map_err(|e| KbError::Format {
            path: p.clone(),
            message: e.to_string(),
        })?;
        if kb.format != FORMAT {
            return Err(KbError::Format {
                path: p,
                message: format!("format is `{}`", kb.format),
            });
        }
        for (index, ins) in kb.insights.iter().enumerate() {
            let actual = content_hash(&ins.body);
            if actual != ins.hash {
                return Err(KbError::Hash {
                    path: p,
                    index,
                    stated: ins.hash.clone(),
                    actual,
                });
            }
        }
        let mut out = KnowledgeBase::new();
        out.merge(&kb);
        Ok(out)
    }
    /// Writes the file (pretty JSON).
    pub fn save(&self, path: &Path) -> Result<(), KbError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| KbError::Format {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        std::fs::write(path, text).map_err(|source| KbError::Io {
            path: path.display().to_string(),
            source,
        })
    }
    /// Adds one insight (no duplicate hashes).
    pub fn add(&mut self, ins: Insight) {
        if let Err(pos) = self.insights.binary_search_by(|i| i.hash.cmp(&ins.hash)) {
            self.insights.insert(pos, ins);
        }
    }
    /// Union with another knowledge base.
    pub fn merge(&mut self, other: &KnowledgeBase) {
        for ins in &other.insights {
            self.add(ins.clone());
        }
    }
    /// Whether `idea` is recorded as failed on this data set in this domain, starting from a
    /// model of family `base`.
    pub fn failed(&self, domain: &str, dataset: &str, idea: &str, base: &str) -> bool {
        let rel: Vec<&Insight> = self
            .insights
            .iter()
            .filter(|i| {
                i.body.domain == domain
                    && i.body.dataset == dataset
                    && i.body.idea == idea
                    && i.body.base == base
            })
            .collect();
        !rel.is_empty() && rel.iter().all(|i| i.body.outcome == Outcome::NoGain)
    }
    /// Net successes of `idea` in this domain on any data set (a priority signal).
    pub fn successes(&self, domain: &str, idea: &str) -> usize {
        self.insights
            .iter()
            .filter(|i| {
                i.body.domain == domain
                    && i.body.idea == idea
                    && i.body.outcome == Outcome::Improved
            })
            .count()
    }
    /// Content hash of the whole knowledge base.
    pub fn hash(&self) -> String {
        content_hash(&self.insights.iter().map(|i| &i.hash).collect::<Vec<_>>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::ModelSpec;
    use crate::pipeline::{FeatureSpec, PipelineConfig};

    fn insight(idea: &str, outcome: Outcome) -> Insight {
        Insight::new(InsightBody {
            domain: "tabular".into(),
            dataset: "d".into(),
            dataset_name: "d.csv".into(),
            version: 1,
            idea: idea.into(),
            family: "f".into(),
            base: "logistic".into(),
            conditions: vec![Pattern::Underfit],
            trials: 3,
            reference_loss: 0.5,
            best_loss: 0.49,
            effect: 0.01,
            outcome,
            best_config: Candidate::single(PipelineConfig {
                features: FeatureSpec::default(),
                model: ModelSpec::Logistic { l2: 0.1 },
                class_weight: false,
                stack: None,
            }),
            best_lm_config: None,
        })
    }

    #[test]
    fn a_tabular_insight_carries_no_lm_config_in_its_json_so_its_hash_is_unchanged() {
        let i = insight("x", Outcome::Improved);
        let json = serde_json::to_string(&i.body).unwrap();
        assert!(!json.contains("best_lm_config"), "{json}");
        let back: InsightBody = serde_json::from_str(&json).unwrap();
        assert_eq!(Insight::new(back).hash, i.hash);
    }

    #[test]
    fn merge_is_a_commutative_idempotent_union_and_survives_a_round_trip() {
        let mut a = KnowledgeBase::new();
        a.add(insight("x", Outcome::Improved));
        let mut b = KnowledgeBase::new();
        b.add(insight("y", Outcome::NoGain));
        b.add(insight("x", Outcome::Improved));
        let mut ab = a.clone();
        ab.merge(&b);
        let mut ba = b.clone();
        ba.merge(&a);
        assert_eq!(ab, ba);
        assert_eq!(ab.insights.len(), 2);
        let again = {
            let mut t = ab.clone();
            t.merge(&ab);
            t
        };
        assert_eq!(again, ab);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.json");
        ab.save(&p).unwrap();
        assert_eq!(KnowledgeBase::load(&p).unwrap(), ab);
        assert!(ab.failed("tabular", "d", "y", "logistic"));
        assert!(!ab.failed("tabular", "d", "y", "gbm"));
        assert!(!ab.failed("tabular", "d", "x", "logistic"));
    }

    #[test]
    fn a_tampered_insight_is_rejected_on_load() {
        let mut kb = KnowledgeBase::new();
        kb.add(insight("x", Outcome::Improved));
        kb.insights[0].body.effect = 9.0;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kb.json");
        kb.save(&p).unwrap();
        let err = KnowledgeBase::load(&p).unwrap_err().to_string();
        assert!(err.contains("insight 0 has hash"), "{err}");
    }
}
