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
T975 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262,
        12: 2.201, 15: 2.145, 16: 2.131, 20: 2.093, 24: 2.069, 25: 2.064, 30: 2.045, 40: 2.023, 50: 2.010}  # keyed by n (df = n - 1)


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
    import pandas as pd
    from sklearn.model_selection import train_test_split
    d = DATASETS[ds]
    if d["domain"] != "tabular":
        return None
    df = pd.read_csv(os.path.join(ROOT, d["data"]), na_values=["NA", ""])
    df = df[df[d["target"]].notna()]
    train, test = train_test_split(df, test_size=0.2, stratify=df[d["target"]].astype(str), random_state=seed)
    return optuna_open_frames(train, test, d["target"], budget, seed, folds)


def optuna_open_frames(train, test, target, budget, seed, folds):
    """The open track on a given split (two DataFrames with the same columns): Optuna TPE over
    logistic / XGBoost / random forest / extra trees with median imputation and scaling;
    categorical columns one-hot encoded when they have at most 12 levels, else dropped. The
    encoding is computed on both frames together (feature vocabulary only, never labels)."""
    import pandas as pd
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler
    from sklearn.linear_model import LogisticRegression
    from sklearn.ensemble import RandomForestClassifier, ExtraTreesClassifier
    from xgboost import XGBClassifier
    df = pd.concat([train, test], ignore_index=True)
    df = df[df[target].notna()]
    n_train = int(train[target].notna().sum())
    y = pd.factorize(df[target].astype(str), sort=True)[0]
    X = df.drop(columns=[target])
    X = X[[c for c in X.columns if X[c].dtype != object or X[c].nunique() <= 12]]
    X = pd.get_dummies(X, dummy_na=True).astype(float).values
    Xtr, Xte, ytr, yte = X[:n_train], X[n_train:], y[:n_train], y[n_train:]
    labels = list(range(int(y.max()) + 1))
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
    study.optimize(lambda t: log_loss(ytr, cross_val_predict(make(t), Xtr, ytr, cv=cv, method="predict_proba"), labels=labels),
                   n_trials=budget)
    m = make(optuna.trial.FixedTrial(study.best_params)).fit(Xtr, ytr)
    proba = m.predict_proba(Xte)
    test_loss = log_loss(yte, proba, labels=labels)
    wall = time.time() - t0
    curve, b = [], float("inf")
    for t in study.trials:
        b = min(b, t.value)
        curve.append(b)
    return dict(test=test_loss, test_clipped=clipped_log_loss(yte, proba), cv=study.best_value, curve=curve, wall=wall)


P_MIN = 1e-6  # magnet_autoresearch::models::P_MIN: ours scores -ln(max(p_true, P_MIN))


def clipped_log_loss(y, proba):
    """Log-loss the way ours computes it: the true class's probability floored at P_MIN (no
    renormalisation), so that every method of a comparison is scored by one formula."""
    return float(sum(-math.log(max(float(proba[i][int(t)]), P_MIN)) for i, t in enumerate(y)) / len(y))


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
    ap.add_argument("--summary-only", action="store_true", help="only summarise an existing results.json")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    res_path = os.path.join(a.out, "results.json")
    results = json.load(open(res_path)) if os.path.exists(res_path) else {}
    if a.summary_only:
        return summary(a, results)
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
    summary(a, results)


def significance(pairs):
    """Two-sided Wilcoxon signed-rank p-value of paired differences (None if not computable)."""
    try:
        from scipy.stats import wilcoxon
    except ImportError:
        return None
    d = [x for x in pairs if x != 0]
    if len(d) < 2:
        return None
    return float(wilcoxon(d).pvalue)


def friedman(blocks):
    """Friedman test over blocks of equal-length score lists (None if not computable)."""
    try:
        from scipy.stats import friedmanchisquare
    except ImportError:
        return None
    if len(blocks) < 2 or len(blocks[0]) < 3:
        return None
    cols = list(zip(*blocks))
    return float(friedmanchisquare(*cols).pvalue)


def summary(a, results):
    lines = ["# autoresearch vs Optuna TPE (held-out log-loss, lower is better)", "",
             "Δ = Optuna − ours (positive: ours better), mean over seeds with 95 % t-interval; "
             "p = two-sided Wilcoxon signed-rank over the paired seeds.", ""]
    methods = ["ours", "optuna_search_only", "optuna_open"]
    for budget in a.budgets:
        lines += [f"## budget {budget}", "",
                  "| dataset | ours | Optuna (search-only) | Δ search-only [95% CI] | p | Optuna (open) | Δ open [95% CI] | ours reaches Optuna's CV best at | wall s ours / optuna |",
                  "|---|---|---|---|---|---|---|---|---|"]
        ranks = {m: [] for m in methods}
        pooled = {"optuna_search_only": [], "optuna_open": []}
        blocks3, blocks2 = [], []
        verdict = []
        for ds in a.datasets:
            rows = [results[f"{ds}|{budget}|{s}"] for s in a.seeds if f"{ds}|{budget}|{s}" in results]
            if not rows:
                continue
            def mean(k):
                xs = [r[k]["test"] for r in rows if r.get(k)]
                return f"{sum(xs) / len(xs):.4f}" if xs else "–"
            def diffs(k):
                return [r[k]["test"] - r["ours"]["test"] for r in rows if r.get(k)]
            def delta(k):
                ds_ = diffs(k)
                if not ds_:
                    return "–", None
                m, lo, hi = ci(ds_)
                return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]", (m, lo, hi)
            so, so_ci = delta("optuna_search_only")
            op, _ = delta("optuna_open")
            p = significance(diffs("optuna_search_only"))
            if so_ci:
                verdict.append((ds, "better" if so_ci[1] > 0 else "worse" if so_ci[2] < 0 else "tie"))
            for k in pooled:
                pooled[k] += diffs(k)
            reach = []
            for r in rows:
                target = r.get("optuna_search_only", {}).get("cv")
                if target is None:
                    continue
                idx = next((i + 1 for i, v in enumerate(r["ours"]["curve"]) if v <= target), None)
                reach.append(idx / budget if idx else float("nan"))
            reach_s = ", ".join("—" if math.isnan(x) else f"{x:.0%}" for x in reach)
            for r in rows:
                present = [k for k in methods if r.get(k)]
                order = sorted(present, key=lambda k: r[k]["test"])
                for i, k in enumerate(order):
                    ranks[k].append(i + 1)
                if all(r.get(k) for k in methods):
                    blocks3.append([r[k]["test"] for k in methods])
                if r.get("optuna_search_only"):
                    blocks2.append([r[k]["test"] for k in methods[:2]])
            wall_o = sum(r["ours"]["wall"] for r in rows) / len(rows)
            wall_p = sum(r["optuna_search_only"]["wall"] for r in rows if r.get("optuna_search_only")) / max(1, len(rows))
            ps = "–" if p is None else f"{p:.3f}"
            lines.append(f"| {ds} | {mean('ours')} | {mean('optuna_search_only')} | {so} | {ps} | "
                         f"{mean('optuna_open')} | {op} | {reach_s} | {wall_o:.1f} / {wall_p:.1f} |")
        lines += ["", "Mean rank (1 = best; every dataset × seed is one block): "
                  + ", ".join(f"{k} {sum(v)/len(v):.2f} (n={len(v)})" for k, v in ranks.items() if v)]
        # Rank of ours vs search-only alone (two methods, all datasets).
        if blocks2:
            r2 = [1.0 if b[0] < b[1] else 2.0 if b[0] > b[1] else 1.5 for b in blocks2]
            lines.append(f"Mean rank ours vs Optuna search-only only: ours {sum(r2)/len(r2):.2f}, "
                         f"Optuna {3 - sum(r2)/len(r2):.2f} over {len(r2)} blocks")
        for k, name in [("optuna_search_only", "search-only"), ("optuna_open", "open")]:
            if pooled[k]:
                m, lo, hi = ci(pooled[k])
                p = significance(pooled[k])
                wins = sum(1 for x in pooled[k] if x > 0)
                lines.append(f"Pooled Δ {name} over {len(pooled[k])} dataset × seed pairs: {m:+.4f} "
                             f"[{lo:+.4f}, {hi:+.4f}], ours better in {wins}/{len(pooled[k])}, "
                             f"Wilcoxon p = {'–' if p is None else f'{p:.3f}'}")
        fp = friedman(blocks3)
        if fp is not None:
            lines.append(f"Friedman test over the three methods ({len(blocks3)} tabular blocks): p = {fp:.3f}")
        if verdict:
            lines.append("Per-dataset verdict vs search-only (95 % CI of Δ excludes 0): "
                         + ", ".join(f"{d} {v}" for d, v in verdict))
        lines.append("")
    curves = {k: {m: v["curve"] for m, v in r.items() if v} for k, r in results.items()}
    json.dump(curves, open(os.path.join(a.out, "curves.json"), "w"))
    open(os.path.join(a.out, "summary.md"), "w").write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
