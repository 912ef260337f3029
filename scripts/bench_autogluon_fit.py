#!/usr/bin/env python3
"""One AutoGluon-Tabular run for scripts/bench-suite20.py (issue 21's anchor).

Runs in AutoGluon's own environment (scripts/requirements-bench-autogluon.txt; its pins differ
from the Optuna track's), so the suite harness calls it as a subprocess:

  python bench_autogluon_fit.py --train train.csv --test test.csv --target COL \
      --time-limit SECONDS --seed S --work DIR

It fits `TabularPredictor(eval_metric="log_loss").fit(presets="medium_quality")` on the training
file only, with one CPU and no GPU, and prints one JSON line: the held-out log-loss on the test
file (scikit-learn's `log_loss` over every class of the two files, and `test_clipped`, the
benchmark's common formula -ln(max(p_true, 1e-6))), the wall time of fit and
predict, the models AutoGluon trained and the one it picked. Models whose packages are not
installed (its neural networks need torch, which this benchmark does not install) are skipped
by AutoGluon itself, and the JSON says which ran.
"""
import argparse, json, os, random, sys, time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--time-limit", type=float, required=True, help="seconds for fit (AutoGluon's time_limit)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", required=True, help="folder for AutoGluon's models (deleted by the caller)")
    ap.add_argument("--presets", default="medium_quality")
    a = ap.parse_args()
    import numpy as np
    import pandas as pd
    from sklearn.metrics import log_loss
    from autogluon.tabular import TabularPredictor
    random.seed(a.seed)
    np.random.seed(a.seed)
    train = pd.read_csv(a.train, na_values=["NA", ""], keep_default_na=True)
    test = pd.read_csv(a.test, na_values=["NA", ""], keep_default_na=True)
    train = train[train[a.target].notna()]
    test = test[test[a.target].notna()]
    train[a.target] = train[a.target].astype(str)
    test[a.target] = test[a.target].astype(str)
    labels = sorted(set(train[a.target]) | set(test[a.target]))
    t0 = time.time()
    p = TabularPredictor(label=a.target, eval_metric="log_loss", path=a.work, verbosity=0,
                         problem_type="binary" if len(labels) == 2 else "multiclass")
    p.fit(train, presets=a.presets, time_limit=max(1.0, a.time_limit), num_cpus=1, num_gpus=0)
    proba = p.predict_proba(test.drop(columns=[a.target]))
    wall = time.time() - t0
    cols = [str(c) for c in proba.columns]
    full = np.zeros((len(test), len(labels)))
    for j, lab in enumerate(labels):
        if lab in cols:
            full[:, j] = proba.iloc[:, cols.index(lab)].to_numpy()
    truth = test[a.target].to_numpy()
    loss = log_loss(truth, full, labels=labels)
    # The benchmark's common formula (ours' own): -ln(max(p_true, 1e-6)), no renormalisation.
    at = {lab: j for j, lab in enumerate(labels)}
    clipped = float(np.mean([-np.log(max(full[i, at[t]], 1e-6)) for i, t in enumerate(truth)]))
    board = p.leaderboard(silent=True)
    print(json.dumps(dict(test=float(loss), test_clipped=clipped, wall=wall, best=p.model_best,
                          models=[str(m) for m in board["model"]])))


if __name__ == "__main__":
    sys.exit(main())
