#!/usr/bin/env bash
# Fresh-seed check of the search-only track, seed-major (not run by CI).
#
# Runs seeds FIRST..LAST, each seed on the four tabular sets (ours, then Optuna TPE), budget 30,
# 3 folds, in two lanes (even and odd seeds) so the two cores stay busy. Each lane writes its own
# results.json under OUT (lane-a, lane-b); the harness resumes from them, so an interrupted run
# continues where it stopped. Seed-major order means a run cut short leaves every data set with
# the same seeds done. Merge and analyse with scripts/analyze-autoresearch-optuna.py.
#
# Usage: [BUDGET=30] [TRACKS=search-only] scripts/bench-autoresearch-fresh.sh BIN OUT FIRST LAST
#   BIN     a magnet-worker binary (copy it somewhere first: a rebuild must not replace it mid-run)
#   BUDGET  trials per search (default 30)
#   TRACKS  harness tracks (default search-only; "open" adds Optuna over scikit-learn/xgboost —
#           seed OUT/lane-*/results.json with finished entries first so "ours" is not re-run)
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 4 ] || { echo "usage: $0 BIN OUT FIRST LAST" >&2; exit 2; }
BIN=$1 OUT=$2 FIRST=$3 LAST=$4
BUDGET="${BUDGET:-30}"
read -r -a TRACK_LIST <<<"${TRACKS:-search-only}"
PY="$(scripts/install-bench-autoresearch.sh | tail -n 1)"
lane() {
  local s
  for ((s = $1; s <= LAST; s += 2)); do
    nice -n 10 "$PY" scripts/bench-autoresearch.py --bin "$BIN" --folds 3 --tracks "${TRACK_LIST[@]}" \
      --budgets "$BUDGET" --datasets titanic penguins breast_cancer wine --seeds "$s" --out "$OUT/$2" \
      >>"$OUT/$2.log" 2>&1
    echo "$(date -u +%H:%M:%S) seed $s done" >>"$OUT/$2.log"
  done
}
mkdir -p "$OUT"
lane "$FIRST" lane-a &
lane "$((FIRST + 1))" lane-b &
wait
