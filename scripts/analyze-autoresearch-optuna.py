#!/usr/bin/env python3
"""Paired analysis of scripts/bench-autoresearch.py result files (search-only track).

Merges every results.json given (later files fill keys the earlier ones lack; a key present in
two files with different "ours" results is an error, so mixed code versions cannot pool by
accident), keeps the data sets, budget and seeds asked for, and prints per data set:
mean held-out log-loss of both sides, Δ = Optuna − ours (positive: ours better) with a 95 %
t-interval (scipy's t quantile), the verdict (better / worse / tie by that interval), the
two-sided Wilcoxon signed-rank p and its Holm adjustment over the data sets, wins, and
"reaches" (runs whose best-so-far CV reaches Optuna's final CV within half of Optuna's trials).

With --own-effect BASE_FILE..., it compares our side of FILE... with our side of BASE_FILE...
instead (a code change's own effect: FILE − BASE held-out log-loss, negative = the change better).

Usage:
  python3 scripts/analyze-autoresearch-optuna.py FILE... [--datasets ...] [--budget 30]
      [--seeds 45-194] [--per-seed] [--own-effect BASE_FILE...]
"""
import argparse, math, os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from autoresearch_results import add_common_args, merge  # noqa: E402

from scipy import stats


def paired(x):
    """Mean of paired differences with its 95 % t-interval, and the two-sided Wilcoxon p (zero
    differences dropped); NaN where n is too small."""
    n = len(x)
    m = sum(x) / n
    h = float("nan")
    if n > 1:
        sd = math.sqrt(sum((v - m) ** 2 for v in x) / (n - 1))
        h = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    nz = [v for v in x if v != 0]
    p = stats.wilcoxon(nz).pvalue if len(nz) >= 2 else float("nan")
    return m, m - h, m + h, p


def reaches(ours, opt):
    """Share of Optuna's trials after which our best-so-far CV reaches Optuna's final CV."""
    target = opt["curve"][-1]
    for i, c in enumerate(ours["curve"]):
        if c <= target + 1e-12:
            return (i + 1) / len(opt["curve"])
    return None


def holm(ps):
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adj, run = [0.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (len(ps) - rank) * ps[i]))
        adj[i] = run
    return adj


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--per-seed", action="store_true", help="also list every seed's Δ")
    ap.add_argument("--own-effect", nargs="+", metavar="BASE_FILE",
                    help="compare our side of FILE... with our side of these files")
    a = ap.parse_args()
    res = merge(a.files)
    if a.own_effect:
        return own_effect(a, res, merge(a.own_effect))
    rows = []
    for ds in a.datasets:
        pairs = []
        for s in a.seeds:
            r = res.get(f"{ds}|{a.budget}|{s}", {})
            if r.get("ours") and r.get("optuna_search_only"):
                pairs.append((s, r["ours"], r["optuna_search_only"]))
        if not pairs:
            continue
        d = [o["test"] - u["test"] for _, u, o in pairs]
        n = len(d)
        m, lo, hi, p = paired(d)
        reach = [reaches(u, o) for _, u, o in pairs]
        rows.append(dict(ds=ds, n=n, seeds=(pairs[0][0], pairs[-1][0]),
                         ours=sum(u["test"] for _, u, _ in pairs) / n,
                         opt=sum(o["test"] for _, _, o in pairs) / n, m=m, lo=lo, hi=hi, p=p,
                         wins=(sum(x > 0 for x in d), sum(x < 0 for x in d)),
                         reach=sum(1 for x in reach if x is not None and x <= 0.5),
                         wall=(sum(u["wall"] for _, u, _ in pairs) / n, sum(o["wall"] for _, _, o in pairs) / n),
                         d=d, seed_list=[s for s, _, _ in pairs]))
    tab = [r for r in rows if r["ds"] != "stocks" and not math.isnan(r["p"])]
    for r, q in zip(tab, holm([r["p"] for r in tab])):
        r["holm"] = q
    print("| data set | seeds (n) | ours | Optuna | Δ [95 % CI] | verdict | Wilcoxon p (Holm) | wins | reaches ≤ 50 % | wall s ours / Optuna |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        verdict = "**better**" if r["lo"] > 0 else "**worse**" if r["hi"] < 0 else "tie"
        fmt = lambda x: "< 0.001" if x < 0.001 else f"{x:.3f}"
        holm_s = f" ({fmt(r['holm'])})" if "holm" in r else ""
        print(f"| {r['ds']} | {r['seeds'][0]}–{r['seeds'][1]} ({r['n']}) | {r['ours']:.4f} | {r['opt']:.4f} | "
              f"{r['m']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}] | {verdict} | {fmt(r['p'])}{holm_s} | "
              f"{r['wins'][0]}–{r['wins'][1]} | {r['reach']} of {r['n']} | {r['wall'][0]:.1f} / {r['wall'][1]:.1f} |")
    if a.per_seed:
        for r in rows:
            print(f"\n{r['ds']}: " + ", ".join(f"{s}: {x:+.4f}" for s, x in zip(r["seed_list"], r["d"])))


def own_effect(a, new, base):
    print("| data set | seeds (n) | change | base | change − base [95 % CI] | Wilcoxon p | better / worse / same |")
    print("|---|---|---|---|---|---|---|")
    pooled = []
    for ds in a.datasets + ["all"]:
        if ds == "all":
            d, names = pooled, "four sets" if len(a.datasets) == 4 else "pooled"
        else:
            d = []
            for s in a.seeds:
                k = f"{ds}|{a.budget}|{s}"
                if new.get(k, {}).get("ours") and base.get(k, {}).get("ours"):
                    d.append((new[k]["ours"]["test"], base[k]["ours"]["test"]))
            pooled += d
            names = ds
        if len(d) < 2:
            continue
        x = [u - b for u, b in d]
        n = len(x)
        m, lo, hi, p = paired(x)
        print(f"| {names} | {n} | {sum(u for u, _ in d) / n:.4f} | {sum(b for _, b in d) / n:.4f} | "
              f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}] | {p:.3g} | "
              f"{sum(v < 0 for v in x)} / {sum(v > 0 for v in x)} / {sum(v == 0 for v in x)} |")


if __name__ == "__main__":
    main()
