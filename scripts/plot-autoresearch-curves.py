#!/usr/bin/env python3
"""Best-so-far curves of scripts/bench-autoresearch.py result files: ours vs Optuna TPE.

For every data set, the x axis is the trial number and the y axis the best-so-far CV log-loss
minus Optuna's final (last-trial) best-so-far CV of the same seed, so 0 is where Optuna ends and
every seed weighs the same. Lines are the median over seeds, bands the interquartile range. A run
of ours that converged and stopped early keeps its last value (it spends no more trials). A
second row shows the held-out log-loss difference per seed (Optuna − ours, positive: ours
better) as a sorted curve with its mean.

Usage:
  python3 scripts/plot-autoresearch-curves.py FILE... --budget 30 --seeds 45-194 --out plot.png
"""
import argparse, os, statistics, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoresearch_results import add_common_args, merge  # noqa: E402

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def quantile(xs, q):
    xs = sorted(xs)
    i = q * (len(xs) - 1)
    lo = int(i)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (i - lo)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    res = merge(a.files)
    sets = [d for d in a.datasets
            if any(f"{d}|{a.budget}|{s}" in res for s in a.seeds)]
    fig, axes = plt.subplots(2, len(sets), figsize=(3.6 * len(sets), 6.4), squeeze=False)
    for col, ds in enumerate(sets):
        runs = [res[k] for k in (f"{ds}|{a.budget}|{s}" for s in a.seeds)
                if k in res and "ours" in res[k] and "optuna_search_only" in res[k]]
        ax = axes[0][col]
        for side, colour, label in (("ours", "tab:blue", "autoresearch"), ("optuna_search_only", "tab:orange", "Optuna TPE")):
            gaps = []
            for r in runs:
                final = r["optuna_search_only"]["curve"][-1]
                c = r[side]["curve"]
                c = c + [c[-1]] * (a.budget - len(c))
                gaps.append([x - final for x in c[: a.budget]])
            xs = list(range(1, a.budget + 1))
            med = [statistics.median(g[t] for g in gaps) for t in range(a.budget)]
            q1 = [quantile([g[t] for g in gaps], 0.25) for t in range(a.budget)]
            q3 = [quantile([g[t] for g in gaps], 0.75) for t in range(a.budget)]
            ax.plot(xs, med, color=colour, label=label)
            ax.fill_between(xs, q1, q3, color=colour, alpha=0.2)
        ax.axhline(0, color="black", lw=0.6)
        ax.axvline(a.budget / 2, color="grey", lw=0.6, ls="--")
        ax.set_title(f"{ds} ({len(runs)} seeds)")
        ax.set_xlabel("trial")
        hi = max(0.01, quantile([r["ours"]["curve"][0] - r["optuna_search_only"]["curve"][-1] for r in runs], 0.75))
        ax.set_ylim(-0.5 * hi, 1.2 * hi)
        if col == 0:
            ax.set_ylabel("best-so-far CV − Optuna's final CV")
            ax.legend(fontsize=8)
        ax2 = axes[1][col]
        d = sorted(r["optuna_search_only"]["test"] - r["ours"]["test"] for r in runs)
        ax2.plot(range(1, len(d) + 1), d, color="tab:green")
        ax2.axhline(0, color="black", lw=0.6)
        m = sum(d) / len(d)
        ax2.axhline(m, color="tab:green", lw=0.8, ls="--", label=f"mean {m:+.4f}")
        lim = max(abs(quantile(d, 0.05)), abs(quantile(d, 0.95)), 1e-3) * 1.5
        ax2.set_ylim(-lim, lim)
        ax2.set_xlabel("seeds, sorted")
        ax2.legend(fontsize=8, loc="upper left")
        if col == 0:
            ax2.set_ylabel("held-out Δ = Optuna − ours")
    fig.suptitle(f"autoresearch vs Optuna TPE, budget {a.budget}, search-only track "
                 "(median and interquartile band over seeds)")
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print(a.out)


if __name__ == "__main__":
    main()
