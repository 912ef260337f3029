//! The research loop's must-hold properties on real data (small budgets to stay fast).

use magnet_autoresearch::kb::KnowledgeBase;
use magnet_autoresearch::run::{self, RunConfig, RunOutcome, Tabular};
use magnet_autoresearch::strategy::RuleStrategist;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn data(p: &str) -> PathBuf {
    Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../data")
    .join(p)
}

fn cfg(budget: usize, seed: u64) -> RunConfig {
    RunConfig {
        budget,
        epsilon: 0.002,
        patience: 2,
        seed,
        folds: 5,
        ..RunConfig::default()
    }
}

/// Seeds of the "beats the baseline" tests: each seed draws a different held-out split, CV
/// folds and samplers, so a pass does not hang on one lucky split.
const SEEDS: [u64; 3] = [11, 23, 37];

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

/// Checks the structure of a run (≥ 2 versions of different strategy families, a finite
/// bootstrap interval around the held-out improvement) and returns the held-out improvement
/// (baseline − final log-loss).
fn assert_research_goes_through_versions(o: &RunOutcome) -> f64 {
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
    eprintln!(
        "seed {}: held-out log-loss {:.4} -> {:.4}, improvement {:.4} [{:.4}, {:.4}]",
        o.config.seed,
        t.baseline_loss,
        t.final_loss,
        t.improvement,
        t.improvement_ci.0,
        t.improvement_ci.1
    );
    assert!(t.improvement_ci.0 <= t.improvement && t.improvement <= t.improvement_ci.1);
    assert!(t.improvement_ci.0.is_finite() && t.improvement_ci.1.is_finite());
    t.baseline_loss - t.final_loss
}

/// Over several seeds (different held-out splits, folds and samplers) the final model beats
/// the baseline on held-out log-loss on average and on a majority of the seeds, so the claim
/// does not hang on one lucky split.
fn assert_beats_baseline_over_seeds(gains: &[f64]) {
    let mean = gains.iter().sum::<f64>() / gains.len() as f64;
    let wins = gains.iter().filter(|g| **g > 0.0).count();
    assert!(
        mean > 0.0,
        "mean held-out improvement {mean} over {gains:?}"
    );
    assert!(wins * 2 > gains.len(), "better on {wins} of {gains:?}");
}

#[test]
fn titanic_with_class_context_goes_through_versions_and_beats_the_baseline_on_held_out_data() {
    let mut gains = Vec::new();
    for seed in SEEDS[1..].iter().copied() {
        let o = research(
            "tabular/titanic.csv",
            "survived",
            Some("class"),
            &cfg(40, seed),
            KnowledgeBase::new(),
            None,
        );
        gains.push(assert_research_goes_through_versions(&o));
    }
    let dir = tempfile::tempdir().unwrap();
    let o = research(
        "tabular/titanic.csv",
        "survived",
        Some("class"),
        &cfg(40, SEEDS[0]),
        KnowledgeBase::new(),
        Some(dir.path()),
    );
    gains.push(assert_research_goes_through_versions(&o));
    assert_beats_baseline_over_seeds(&gains);
    for f in [
        "report.md",
        "trials.jsonl",
        "knowledge.json",
        "best_model.json",
        "progression.png",
    ] {
        assert!(dir.path().join(f).exists(), "{f} missing");
    }
    // The final model's fitted post-processing is recorded next to its held-out score, and it
    // is the one its candidate asks for: a temperature only when the candidate is tempered.
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("best_model.json")).unwrap())
            .unwrap();
    let t = model["test"]["final_post"]["temperature"].as_f64().unwrap();
    let last = &o.versions.last().unwrap().best;
    if last.post.temperature {
        assert!(
            t.is_finite() && t >= 1.0,
            "fitted temperature {t} (it only softens)"
        );
    } else {
        assert_eq!(t, 1.0, "an untempered candidate has temperature 1");
    }
    let offsets = model["test"]["final_post"]["offsets"].as_array().unwrap();
    assert_eq!(
        offsets.is_empty(),
        last.post.context_offsets.is_none(),
        "offsets are fitted exactly when the candidate asks for them"
    );
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
    let gains: Vec<f64> = SEEDS
        .iter()
        .map(|&seed| {
            let o = research(
                "tabular/penguins.csv",
                "sex",
                Some("species"),
                &cfg(40, seed),
                KnowledgeBase::new(),
                None,
            );
            assert_research_goes_through_versions(&o)
        })
        .collect();
    assert_beats_baseline_over_seeds(&gains);
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
        // The convergence rule alone (the second pass, ADR 0118, would run on after it).
        second_pass: false,
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
    let searched = o.versions.iter().filter(|v| !v.post_search).count();
    assert_eq!(searched, 2, "stops right after v1");
    assert!(
        o.versions.len() == searched || o.versions.last().is_some_and(|v| v.post_search),
        "only the ensemble selection follows the search"
    );
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
        test_data: None,
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
fn the_time_series_domain_reports_walk_forward_hit_rates_against_naive_baselines() {
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
    let m: std::collections::BTreeMap<&str, f64> = o
        .test
        .decision_metrics
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    eprintln!("{m:#?}");
    for want in [
        "hit rate (model)",
        "hit rate (always-up)",
        "hit rate (last-direction)",
        "directional rate (model)",
        "directional rate (always-up)",
        "directional rate (last-direction)",
        "walk-forward log-loss (model)",
        "hit rate − always-up, 95% CI low",
        "block 5 hit rate (model)",
    ] {
        assert!(m.contains_key(want), "{want} missing from {m:?}");
    }
    for (k, v) in &m {
        if k.contains("rate") && !k.contains("CI") {
            assert!((0.0..=1.0).contains(v), "{k} = {v}");
        }
    }
    // The baselines are computed from the held-out labels alone: always-up is the BUY share.
    let buy = o
        .test
        .final_confusion
        .get(2)
        .map_or(0, |r| r.iter().sum::<usize>());
    assert!((m["hit rate (always-up)"] - buy as f64 / o.test.n_test as f64).abs() < 1e-12);
    // The blocks partition the held-out rows: their mean hit rate is the overall one.
    let blocks: f64 = (1..=5)
        .map(|b| m[format!("block {b} hit rate (always-up)").as_str()])
        .sum::<f64>()
        / 5.0;
    assert!((blocks - m["hit rate (always-up)"]).abs() < 0.01);
}

/// Writes `rows` of penguins.csv (by index, header first) to `path`.
fn penguin_rows(path: &Path, keep: impl Fn(usize) -> bool) {
    let text = std::fs::read_to_string(data("tabular/penguins.csv")).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for (i, l) in lines.enumerate() {
        if keep(i) {
            out.push_str(l);
            out.push('\n');
        }
    }
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_run_with_a_test_file_searches_every_data_row_and_a_trial_reproduces_its_baseline_score() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train.csv"), dir.path().join("test.csv"));
    penguin_rows(&train, |i| i % 5 != 0);
    penguin_rows(&test, |i| i % 5 == 0);
    let c = RunConfig {
        budget: 6,
        ..small()
    };
    let o = run::run_file_with_test(
        &Tabular,
        &train,
        &test,
        Some("sex"),
        None,
        &c,
        KnowledgeBase::new(),
        &RuleStrategist,
        Some(&dir.path().join("run")),
    )
    .unwrap();
    let (alone, _) = run::load_with_test(&Tabular, &train, &test, Some("sex"), None).unwrap();
    let n_train = magnet_autoresearch::data::load_tabular(&train, "sex", None)
        .unwrap()
        .len();
    assert_eq!(
        o.test.n_test,
        alone.len() - n_train,
        "every test-file row scored"
    );
    assert!(o.test.final_loss.is_finite() && o.test.final_loss > 0.0);
    let spec = run::TrialSpec {
        domain: "tabular".into(),
        data: train.clone(),
        target: Some("sex".into()),
        context: None,
        seed: c.seed,
        folds: c.folds,
        test_fraction: 0.2,
        data_hash: None,
        candidate: run::baseline(),
        holdout: true,
        test_data: Some(test.clone()),
    };
    let t = run::run_trial(&spec).unwrap();
    let baseline = o.test.baseline_loss;
    assert!(
        (t.test_loss.unwrap() - baseline).abs() < 1e-9,
        "trial {:?} vs run {baseline}",
        t.test_loss
    );
    assert!(
        (t.cv_loss - o.trials[0].cv_loss).abs() < 1e-12,
        "the trial's CV uses every data row, as the run's baseline did"
    );
}

#[test]
fn a_test_file_that_does_not_fit_the_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let train = dir.path().join("train.csv");
    penguin_rows(&train, |i| i % 5 != 0);
    let text = std::fs::read_to_string(data("tabular/penguins.csv")).unwrap();
    let header = text.lines().next().unwrap().to_string();
    let row = text.lines().nth(1).unwrap().to_string();
    let other_header = header.replacen(',', ";", 1);
    let new_class = {
        // The same row with a target value the data never has.
        let cols: Vec<&str> = header.split(',').collect();
        let at = cols.iter().position(|c| *c == "sex").unwrap();
        let mut cells: Vec<String> = row.split(',').map(str::to_string).collect();
        cells[at] = "neither".into();
        cells.join(",")
    };
    let cases = [
        ("another header line", format!("{other_header}\n{row}\n")),
        ("no rows", format!("{header}\n")),
        // Enough rows of it that the joined file loads; with fewer, loading the joined file
        // is what refuses it (a class with too few rows for stratified folds).
        (
            "a class the data lacks",
            format!("{header}\n{}", format!("{new_class}\n").repeat(6)),
        ),
    ];
    for (name, body) in cases {
        let test = dir.path().join("test.csv");
        std::fs::write(&test, body).unwrap();
        let err = run::load_with_test(&Tabular, &train, &test, Some("sex"), None);
        assert!(
            matches!(err, Err(run::TestFileError::Mismatch(_))),
            "{name}: {err:?}"
        );
        let missing = dir.path().join("absent.csv");
        assert!(matches!(
            run::load_with_test(&Tabular, &train, &missing, Some("sex"), None),
            Err(run::TestFileError::Load(_))
        ));
    }
}

#[test]
fn a_run_that_stops_early_with_budget_left_runs_a_second_pass_and_spends_more_of_it() {
    // Wine at budget 30 converges after about 17 trials when it stops where it stops.
    let base = RunConfig {
        second_pass: false,
        ..cfg(30, 0)
    };
    let one = research(
        "tabular/wine_data.csv",
        "target",
        None,
        &base,
        KnowledgeBase::new(),
        None,
    );
    assert!(
        one.trials.len() + run::SECOND_PASS_MIN_TRIALS <= 30,
        "{}",
        one.trials.len()
    );
    assert!(
        !one.stop_reason.contains("second pass"),
        "{}",
        one.stop_reason
    );
    let on = RunConfig {
        second_pass: true,
        ..cfg(30, 0)
    };
    let two = research(
        "tabular/wine_data.csv",
        "target",
        None,
        &on,
        KnowledgeBase::new(),
        None,
    );
    assert!(
        two.stop_reason.contains("second pass"),
        "{}",
        two.stop_reason
    );
    assert!(two.trials.len() > one.trials.len());
    assert!(two.trials.len() <= 30);
    // The first pass is the same run: same trials in the same order.
    for (a, b) in one.trials.iter().zip(&two.trials) {
        assert_eq!(a.key, b.key);
    }
    // The second pass never re-runs a trial.
    let keys: BTreeSet<&str> = two.trials.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys.len(), two.trials.len());
    // And it only replaces the incumbent through the one-SE rule, so it never ends worse in CV.
    let best = |o: &RunOutcome| {
        o.versions
            .iter()
            .rfind(|v| !v.post_search)
            .unwrap()
            .best_loss
    };
    assert!(best(&two) <= best(&one) + 1e-12);
}
