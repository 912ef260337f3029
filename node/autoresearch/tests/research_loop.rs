//! The research loop's must-hold properties on real data (small budgets to stay fast).

use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::run::{self, RunConfig, RunOutcome, Tabular};
use magnet_autoresearch::strategy::RuleStrategist;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn data(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(p)
}

fn cfg(budget: usize) -> RunConfig {
    RunConfig {
        budget,
        epsilon: 0.002,
        patience: 2,
        seed: 11,
        folds: 5,
        ..RunConfig::default()
    }
}

fn research(
    file: &str,
    target: &str,
    ctx: Option<&str>,
    c: &RunConfig,
    kb: KnowledgeBase,
    out: Option<&Path>,
) -> RunOutcome {
    run::run_file(
        &Tabular,
        &data(file),
        Some(target),
        ctx,
        c,
        kb,
        &RuleStrategist,
        out,
    )
    .unwrap()
}

fn assert_research_beats_baseline(o: &RunOutcome) {
    assert!(
        o.versions.len() >= 3,
        "baseline + at least two versions, got {}",
        o.versions.len()
    );
    let fam1: BTreeSet<_> = o.versions[1]
        .strategies
        .iter()
        .map(|s| s.strategy.family)
        .collect();
    let fam2: BTreeSet<_> = o.versions[2]
        .strategies
        .iter()
        .map(|s| s.strategy.family)
        .collect();
    assert!(fam1.len() >= 2 && fam2.len() >= 2, "{fam1:?} {fam2:?}");
    assert!(
        fam1 != fam2
            || o.versions[1].strategies[0].strategy.idea
                != o.versions[2].strategies[0].strategy.idea
    );
    let t = &o.test;
    assert!(
        t.final_loss < t.baseline_loss,
        "held-out log-loss {} vs baseline {}",
        t.final_loss,
        t.baseline_loss
    );
    assert!(t.improvement_ci.0 <= t.improvement && t.improvement <= t.improvement_ci.1);
    assert!(t.improvement_ci.0.is_finite() && t.improvement_ci.1.is_finite());
}

#[test]
fn titanic_with_class_context_goes_through_versions_and_beats_the_baseline_on_held_out_data() {
    let dir = tempfile::tempdir().unwrap();
    let o = research(
        "tabular/titanic.csv",
        "survived",
        Some("class"),
        &cfg(40),
        KnowledgeBase::new(),
        Some(dir.path()),
    );
    assert_research_beats_baseline(&o);
    for f in [
        "report.md",
        "trials.jsonl",
        "knowledge.json",
        "best_model.json",
        "progression.png",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(
        md.contains("| Ver. | CV log-loss") && md.contains("95% bootstrap CI"),
        "{md}"
    );
    assert!(
        o.versions.iter().all(|v| v.loco_loss.is_some()),
        "LOCO is reported with a context column"
    );
}

#[test]
fn penguins_sex_within_species_goes_through_versions_and_beats_the_baseline_on_held_out_data() {
    let o = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &cfg(40),
        KnowledgeBase::new(),
        None,
    );
    assert_research_beats_baseline(&o);
}

fn small() -> RunConfig {
    RunConfig {
        budget: 20,
        folds: 3,
        seed: 3,
        ..RunConfig::default()
    }
}

#[test]
fn convergence_stops_a_run_whose_gains_fall_below_epsilon() {
    let c = RunConfig {
        epsilon: 1.0,
        patience: 1,
        budget: 200,
        ..small()
    };
    let o = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &c,
        KnowledgeBase::new(),
        None,
    );
    assert_eq!(o.versions.len(), 2, "stops right after v1");
    assert!(o.stop_reason.starts_with("converged"), "{}", o.stop_reason);
    assert!(o.trials.len() < 200);
}

#[test]
fn the_knowledge_base_changes_what_version_two_tries() {
    let a = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &small(),
        KnowledgeBase::new(),
        None,
    );
    let b = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &small(),
        a.kb.clone(),
        None,
    );
    let ideas = |o: &RunOutcome, v: usize| -> Vec<String> {
        o.versions
            .get(v)
            .map(|v| {
                v.strategies
                    .iter()
                    .map(|s| s.strategy.idea.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(!ideas(&a, 2).is_empty());
    assert_ne!(
        ideas(&a, 2),
        ideas(&b, 2),
        "same strategies despite the knowledge base"
    );
    // No idea that run A recorded as failed (same data, same starting family) is repeated by B.
    for v in &b.versions[1..] {
        let base = b.versions[v.version - 1].best.members[0]
            .0
            .model
            .family()
            .to_string();
        for s in &v.strategies {
            assert!(
                !a.kb
                    .failed("tabular", &a.dataset.1, &s.strategy.idea, &base),
                "v{} repeated failed idea {} on {base}",
                v.version,
                s.strategy.idea
            );
        }
    }
}

#[test]
fn an_interrupted_run_resumes_from_its_trial_log_without_recomputing() {
    let dir = tempfile::tempdir().unwrap();
    let a = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &small(),
        KnowledgeBase::new(),
        Some(dir.path()),
    );
    let log = dir.path().join("trials.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count();
    let unique: BTreeSet<&str> = a.trials.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(lines, unique.len(), "one log line per distinct trial");
    // Simulate an interruption: keep only the first half of the log.
    let text = std::fs::read_to_string(&log).unwrap();
    let half: Vec<&str> = text.lines().take(lines / 2).collect();
    std::fs::write(&log, half.join("\n") + "\n").unwrap();
    let b = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &small(),
        KnowledgeBase::new(),
        Some(dir.path()),
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        lines,
        "only the missing half was recomputed"
    );
    let best = |o: &RunOutcome| o.versions.last().map(|v| v.best_loss).unwrap();
    assert_eq!(
        best(&a),
        best(&b),
        "the resumed run reaches the same result"
    );
}

#[test]
fn a_serialised_trial_reproduces_the_logged_score() {
    let dir = tempfile::tempdir().unwrap();
    let a = research(
        "tabular/penguins.csv",
        "sex",
        Some("species"),
        &small(),
        KnowledgeBase::new(),
        Some(dir.path()),
    );
    let t = &a.trials[3];
    let spec = run::TrialSpec {
        domain: "tabular".into(),
        data: data("tabular/penguins.csv"),
        target: Some("sex".into()),
        context: Some("species".into()),
        seed: small().seed,
        folds: small().folds,
        test_fraction: 0.2,
        data_hash: Some(t.data_hash.clone()),
        candidate: t.candidate.clone(),
        holdout: true,
    };
    let out = run::run_trial(&spec).unwrap();
    assert_eq!(out.key, t.key);
    assert!(
        (out.cv_loss - t.cv_loss).abs() < 1e-12,
        "{} vs {}",
        out.cv_loss,
        t.cv_loss
    );
    assert!(out.test_loss.is_some_and(f64::is_finite));
}

#[test]
fn the_time_series_domain_reports_hit_rates_against_naive_baselines() {
    let c = RunConfig {
        budget: 4,
        folds: 3,
        ..small()
    };
    let o = run::run_file(
        &magnet_autoresearch::timeseries::TimeSeries::default(),
        &data("timeseries/stocks_daily.csv"),
        None,
        Some("Ticker"),
        &c,
        KnowledgeBase::new(),
        &RuleStrategist,
        None,
    )
    .unwrap();
    let names: Vec<&str> = o
        .test
        .decision_metrics
        .iter()
        .map(|m| m.0.as_str())
        .collect();
    for want in [
        "hit rate (model)",
        "hit rate (always-up)",
        "hit rate (last-direction)",
        "directional rate (model)",
    ] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert!(o
        .test
        .decision_metrics
        .iter()
        .all(|m| (0.0..=1.0).contains(&m.1)));
}
