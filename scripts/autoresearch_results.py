"""Shared helpers of the autoresearch benchmark scripts: seed ranges and result-file merging."""
import json
import sys


def seeds_arg(s):
    out = []
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out


def merge(paths):
    merged = {}
    for p in paths:
        for k, v in json.load(open(p)).items():
            cur = merged.setdefault(k, {})
            for side, r in v.items():
                if side in cur and r and cur[side] and cur[side]["test"] != r["test"]:
                    sys.exit(f"{k}: '{side}' differs between files ({cur[side]['test']} vs {r['test']}) - "
                             "results of different code versions; pass them separately")
                cur.setdefault(side, r)
    return merged


def add_common_args(ap):
    """The arguments every analysis script takes: result files, data sets, budget, seeds."""
    ap.add_argument("files", nargs="+", help="results.json files of scripts/bench-autoresearch.py")
    ap.add_argument("--datasets", nargs="+", default=["titanic", "penguins", "breast_cancer", "wine", "stocks"])
    ap.add_argument("--budget", type=int, default=30)
    ap.add_argument("--seeds", type=seeds_arg, default=seeds_arg("0-194"), help="e.g. 45-194 or 0-4,10")
