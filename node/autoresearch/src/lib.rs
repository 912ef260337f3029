//! MAGNET autoresearch: the error-driven research loop of the paper's Algorithm 1.
//!
//! For each version: **error analysis** of the current best on the validation folds
//! ([`analysis`]) → 3–8 **strategies** chosen by a [`strategy::Strategist`] from the failure
//! patterns and the [`kb::KnowledgeBase`] → a budgeted **config sweep** per strategy
//! ([`sweep`]: grid, random or TPE) → every config trained and scored by cross-validated
//! log-loss ([`pipeline`]) → keep the best if it beats the incumbent by more than one standard
//! error of the paired per-row difference ([`run::clears_one_se`], ADR 0083) → record
//! **insights** → **stop** when the gain is below ε for p consecutive versions ([`run`]). A sweep
//! never spends a trial on a config the run already evaluated. After the search, **ensemble
//! selection** ([`ensemble`]) builds a weighted soft vote from every pipeline the search
//! evaluated, from their cached out-of-fold predictions (no extra trials), and keeps it as a
//! final version if its cross-fitted CV log-loss beats picking one pipeline and its gain over the
//! search's best clears the same one-standard-error rule.
//!
//! What it guarantees: model selection only ever sees the training part; the held-out test
//! rows are sealed in [`split::SealedTest`], which only [`report`] can open (enforced by types).
//! Every trial is a serialisable unit (config + data hash + seed) logged to `trials.jsonl`, so an
//! interrupted run resumes without recomputing. What it does not guarantee: that repeated
//! selection on the same CV folds cannot overfit them (the paper's "evaluation set reuse"); the
//! report shows the held-out score with a bootstrap interval and a LOCO check to expose that.
//!
//! The BitNet-LM domain ([`lm_loop`]) runs the same loop over a language model trained by the
//! BitNet engine ([`lm`], `bitnet_lm` under the default `bitnet` feature): the error analysis
//! reads the incumbent's validation loss by token-frequency band and by context position, its
//! train/validation gap and its training curve; the strategies come from an LM catalog in which
//! the paper's phase-wise grid ([`lm::phase_search`], §8.2) is one kind among capacity,
//! learning rate, schedule, regularisation, context length, attention heads and accumulation;
//! each config is a short training run scored by validation loss (there is no separate test
//! set in this domain); insights go to the same knowledge base under domain `bitnet-lm`.
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod analysis;
#[cfg(feature = "bitnet")]
pub mod bitnet_lm;
pub mod data;
pub mod ensemble;
pub mod kb;
pub mod lm;
pub mod lm_loop;
pub mod models;
pub mod pipeline;
pub mod report;
pub mod run;
pub mod split;
pub mod strategy;
pub mod sweep;
pub mod timeseries;
pub mod unit;
