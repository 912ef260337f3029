#!/usr/bin/env python3
"""Benchmark: MAGNET autoresearch vs Optuna TPE at the same trial budget.

Tracks
  search-only  Optuna's TPE drives the *same* Rust model families through
               `magnet-worker research trial --config FILE` (same data, same held-out split,
               same CV folds, same seed), so only the search differs.
  open         Optuna TPE over scikit-learn / xgboost models (own preprocessing, a stratified
               split with the same fraction and seed — not row-identical to ours; tabular only).

For every dataset × seed × budget it records the held-out log-loss of the selected model, the
best-so-far CV log-loss after each trial, and wall time; then prints per-dataset paired
differences (Optuna − ours, positive = ours better) with 95 % t-intervals over seeds, the mean
rank, and how early ours reached Optuna's final CV score. Results go to --out (JSON + markdown).

Usage:
  pip install -r scripts/requirements-bench-autoresearch.txt
  cargo build --release -p magnet-worker
  python3 scripts/bench-autoresearch.py --bin target/release/magnet-worker \
      --budgets 10 30 100 --seeds 0 1 2 3 4 --out bench-out
"""
import argparse, json, math, os, subprocess, sys, tempfile, time

import optuna

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATASETS = {
    "titanic": dict(domain="tabular", data="data/tabular/titanic.csv", target="survived", context="class"),
    "penguins": dict(domain="tabular", data="data/tabular/penguins.csv", target="sex", context="species"),
    "breast_cancer": dict(domain="tabular", data="data/tabular/breast_cancer.csv", target="target", context=None),
    "wine": dict(domain="tabular", data="data/tabular/wine_data.csv", target="target", context=None),
    "stocks": dict(domain="timeseries", data="data/timeseries/stocks_daily.csv", target=None, context="Ticker"),
}
T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


def ours(bin_, ds, budget, seed, folds):
    d = DATASETS[ds]
    out = tempfile.mkdtemp(prefix=f"ar-{ds}-{budget}-{seed}-")
    cmd = [bin_, "research", "--domain", d["domain"], "--data", os.path.join(ROOT, d["data"]),
           "--budget", str(budget), "--seed", str(seed), "--folds", str(folds), "--out", out, "--quiet"]
    if d["target"]:
        cmd += ["--target", d["target"]]
    if d["context"]:
        cmd += ["--context", d["context"]]
    t0 = time.time()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "RUST_LOG": "warn"})
    wall = time.time() - t0
    model = json.load(open(os.path.join(out, "best_model.json")))
    trials = [json.loads(l) for l in open(os.path.join(out, "trials.jsonl"))]
    trials.sort(key=lambda t: t["id"])
    curve, best = [], float("inf")
    for t in trials:
        if t["cv_loss"] is not None and math.isfinite(t["cv_loss"]):
            best = min(best, t["cv_loss"])
        curve.append(best)
    return dict(test=model["test"]["final_loss"], cv=model["cv_loss"], curve=curve, wall=wall)


def optuna_candidate(trial):
    fam = trial.suggest_categorical("family", ["logistic", "gbm", "random_forest", "extra_trees"])
    if fam == "logistic":
        model = {"kind": "logistic", "l2": trial.suggest_float("l2", 1e-4, 1.0, log=True)}
    elif fam == "gbm":
        model = {"kind": "gbm", "iterations": trial.suggest_int("iterations", 30, 200, log=True),
                 "learning_rate": trial.suggest_float("learning_rate", 0.02, 0.3, log=True),
                 "max_depth": trial.suggest_int("max_depth", 2, 6),
                 "min_leaf_weight": trial.suggest_float("min_leaf_weight", 0.5, 20, log=True),
                 "subsample": trial.suggest_float("subsample", 0.5, 1.0),
                 "l2": trial.suggest_float("gbm_l2", 0.1, 10, log=True)}
    else:
        model = {"kind": fam, "n_trees": trial.suggest_int(f"{fam}_n_trees", 20, 80),
                 "max_depth": trial.suggest_categorical(f"{fam}_depth", [0, 4, 8, 12]),
                 "min_samples_leaf": trial.suggest_int(f"{fam}_leaf", 1, 20, log=True),
                 "max_features": trial.suggest_float(f"{fam}_mf", 0.2, 1.0)}
    return {"members": [[{"model": model}, 1.0]]}


def run_trial(bin_, ds, seed, folds, cand, holdout=False):
    d = DATASETS[ds]
    spec = dict(domain=d["domain"], data=os.path.join(ROOT, d["data"]), target=d["target"],
                context=d["context"], seed=seed, folds=folds, candidate=cand, holdout=holdout)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        out = subprocess.run([bin_, "research", "trial", "--config", f.name], check=True,
                             capture_output=True, text=True, env={**os.environ, "RUST_LOG": "warn"})
    finally:
        os.unlink(f.name)
    return json.loads(out.stdout.strip().splitlines()[-1])


def optuna_search_only(bin_, ds, budget, seed, folds):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    cands = {}
    t0 = time.time()

    def objective(trial):
        c = optuna_candidate(trial)
        cands[trial.number] = c
        return run_trial(bin_, ds, seed, folds, c)["cv_loss"]

    study.optimize(objective, n_trials=budget)
    wall = time.time() - t0
    best = study.best_trial.number
    test = run_trial(bin_, ds, seed, folds, cands[best], holdout=True)["test_loss"]
    curve, b = [], float("inf")
    for t in study.trials:
        if t.value is not None:
            b = min(b, t.value)
        curve.append(b)
    return dict(test=test, cv=study.best_value, curve=curve, wall=wall)


def optuna_open(ds, budget, seed, folds):
    import numpy as np, pandas as pd
    from sklearn.model_selection import train_test_split, StratifiedKFold, cross_val_predict
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import LogisticRegression
    from sklearn.ensemble import RandomForestClassifier, ExtraTreesClassifier
    from xgboost import XGBClassifier
    d = DATASETS[ds]
    if d["domain"] != "tabular":
        return None
    df = pd.read_csv(os.path.join(ROOT, d["data"]), na_values=["NA", ""])
    df = df[df[d["target"]].notna()]
    y = pd.factorize(df[d["target"]].astype(str), sort=True)[0]
    X = df.drop(columns=[d["target"]])
    X = X[[c for c in X.columns if X[c].dtype != object or X[c].nunique() <= 12]]
    X = pd.get_dummies(X, dummy_na=True).astype(float).values
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, stratify=y, random_state=seed)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)

    def make(trial):
        fam = trial.suggest_categorical("family", ["logistic", "xgb", "rf", "et"])
        if fam == "logistic":
            m = LogisticRegression(C=trial.suggest_float("C", 1e-2, 1e3, log=True), max_iter=2000)
        elif fam == "xgb":
            m = XGBClassifier(n_estimators=trial.suggest_int("n", 30, 200, log=True),
                              learning_rate=trial.suggest_float("lr", 0.02, 0.3, log=True),
                              max_depth=trial.suggest_int("depth", 2, 6), subsample=trial.suggest_float("ss", 0.5, 1.0),
                              n_jobs=1, random_state=seed)
        else:
            cls = RandomForestClassifier if fam == "rf" else ExtraTreesClassifier
            m = cls(n_estimators=trial.suggest_int(f"{fam}_n", 20, 80), min_samples_leaf=trial.suggest_int(f"{fam}_leaf", 1, 20, log=True),
                    max_features=trial.suggest_float(f"{fam}_mf", 0.2, 1.0), n_jobs=1, random_state=seed)
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), m)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    t0 = time.time()
    study.optimize(lambda t: log_loss(ytr, cross_val_predict(make(t), Xtr, ytr, cv=cv, method="predict_proba")),
                   n_trials=budget)
    wall = time.time() - t0
    m = make(optuna.trial.FixedTrial(study.best_params)).fit(Xtr, ytr)
    curve, b = [], float("inf")
    for t in study.trials:
        b = min(b, t.value)
        curve.append(b)
    return dict(test=log_loss(yte, m.predict_proba(Xte)), cv=study.best_value, curve=curve, wall=wall)


def ci(xs):
    n = len(xs)
    m = sum(xs) / n
    if n < 2:
        return m, float("nan"), float("nan")
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (n - 1))
    h = T975.get(n, 1.96) * sd / math.sqrt(n)
    return m, m - h, m + h


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target/release/magnet-worker"))
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--budgets", nargs="+", type=int, default=[10, 30, 100])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--tracks", nargs="+", default=["search-only", "open"])
    ap.add_argument("--out", default="bench-autoresearch-out")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res_path = os.path.join(a.out, "results.json")
    results = json.load(open(res_path)) if os.path.exists(res_path) else {}
    for budget in a.budgets:
        for ds in a.datasets:
            for seed in a.seeds:
                key = f"{ds}|{budget}|{seed}"
                r = results.get(key, {})
                if "ours" not in r:
                    r["ours"] = ours(a.bin, ds, budget, seed, a.folds)
                if "search-only" in a.tracks and "optuna_search_only" not in r:
                    r["optuna_search_only"] = optuna_search_only(a.bin, ds, budget, seed, a.folds)
                if "open" in a.tracks and "optuna_open" not in r:
                    r["optuna_open"] = optuna_open(ds, budget, seed, a.folds)
                results[key] = r
                json.dump(results, open(res_path, "w"), indent=1)
                print(key, {k: round(v["test"], 4) for k, v in r.items() if v}, flush=True)
    # Summary.
    lines = ["# autoresearch vs Optuna TPE (held-out log-loss, lower is better)", "",
             "Δ = Optuna − ours (positive: ours better), mean over seeds with 95 % t-interval.", ""]
    for budget in a.budgets:
        lines += [f"## budget {budget}", "",
                  "| dataset | ours | Optuna (search-only) | Δ search-only [95% CI] | Optuna (open) | Δ open [95% CI] | ours reaches Optuna's CV best at | wall s ours / optuna |",
                  "|---|---|---|---|---|---|---|---|"]
        ranks = {"ours": [], "optuna_search_only": [], "optuna_open": []}
        for ds in a.datasets:
            rows = [results[f"{ds}|{budget}|{s}"] for s in a.seeds if f"{ds}|{budget}|{s}" in results]
            if not rows:
                continue
            mean = lambda k: sum(r[k]["test"] for r in rows if r.get(k)) / max(1, sum(1 for r in rows if r.get(k)))
            def delta(k):
                ds_ = [r[k]["test"] - r["ours"]["test"] for r in rows if r.get(k)]
                if not ds_:
                    return "–"
                m, lo, hi = ci(ds_)
                return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"
            reach = []
            for r in rows:
                target = r.get("optuna_search_only", {}).get("cv")
                if target is None:
                    continue
                idx = next((i + 1 for i, v in enumerate(r["ours"]["curve"]) if v <= target), None)
                reach.append(idx / budget if idx else float("nan"))
            reach_s = ", ".join("—" if math.isnan(x) else f"{x:.0%}" for x in reach)
            for r in rows:
                present = [k for k in ranks if r.get(k)]
                order = sorted(present, key=lambda k: r[k]["test"])
                for i, k in enumerate(order):
                    ranks[k].append(i + 1)
            wall_o = sum(r["ours"]["wall"] for r in rows) / len(rows)
            wall_p = sum(r["optuna_search_only"]["wall"] for r in rows if r.get("optuna_search_only")) / max(1, len(rows))
            lines.append(f"| {ds} | {mean('ours'):.4f} | {mean('optuna_search_only'):.4f} | {delta('optuna_search_only')} | "
                         f"{mean('optuna_open'):.4f} | {delta('optuna_open')} | {reach_s} | {wall_o:.1f} / {wall_p:.1f} |")
        lines += ["", "Mean rank (1 = best): " + ", ".join(f"{k} {sum(v)/len(v):.2f}" for k, v in ranks.items() if v), ""]
    curves = {k: {m: v["curve"] for m, v in r.items() if v} for k, r in results.items()}
    json.dump(curves, open(os.path.join(a.out, "curves.json"), "w"))
    open(os.path.join(a.out, "summary.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
