#!/usr/bin/env bash
# Research on the network (issue 20, ADR 0112): trials per minute with 1, 2 and 3 trial
# workers against the same run alone, and the share of worker time spent on re-checks.
# Protocol (pre-registered in docs/bench/research-network.md before the first run):
#   data/tabular/titanic.csv (target survived, context class), budget 40, 5 folds, seed 11,
#   --batch 3 in every configuration (so every configuration runs the same trials and decides
#   the same), --recheck 0 for the throughput rows, 0.15 (the default) for the overhead row; configurations
#   interleaved, REPEATS rounds (default 3); the median wall time per configuration.
#   Workers and coordinator share this machine (its cores are printed).
# Usage: scripts/bench-research-network.sh [REPEATS]   → docs/bench/research-network-results.json
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
REPEATS="${1:-3}"
cargo build --locked -q -p magnet-worker
BIN="$CARGO_TARGET_DIR/debug/magnet-worker"
WORK="$(mktemp -d)"
trap 'pkill -f "serve-trials --dir $WORK" || true; rm -rf "$WORK"' EXIT
export RUST_LOG=warn
WORKERS=()
for i in 0 1 2; do
  "$BIN" research serve-trials --dir "$WORK/w$i" --listen 127.0.0.1:0 > "$WORK/w$i.out" 2>&1 &
done
for i in 0 1 2; do
  for _ in $(seq 50); do grep -q "listening on" "$WORK/w$i.out" 2>/dev/null && break; sleep 0.1; done
  WORKERS+=("$(grep "listening on" "$WORK/w$i.out" | awk '{print $1"@"$4}')")
done
run() { # name, extra args…
  local name="$1"; shift
  local out="$WORK/run-$name-$RANDOM"
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" research --domain tabular --data data/tabular/titanic.csv --target survived \
    --context class --budget 40 --folds 5 --seed 11 --batch 3 --quiet --out "$out" "$@" > "$out.log" 2>&1
  t1=$(date +%s.%N)
  python3 - "$name" "$t0" "$t1" "$out" >> "$WORK/rows.jsonl" <<'PY'
import json, sys, os
name, t0, t1, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
trials = sum(1 for _ in open(os.path.join(out, "trials.jsonl")))
net = {}
p = os.path.join(out, "network.json")
if os.path.exists(p):
    net = json.load(open(p))
best = open(os.path.join(out, "best_model.json")).read()
print(json.dumps({"config": name, "wall_s": t1 - t0, "trials": trials,
                  "units": net.get("units_dispatched"), "rechecks": net.get("rechecks"),
                  "unit_ms": net.get("unit_ms"), "recheck_ms": net.get("recheck_ms"),
                  "best_model_sha": __import__("hashlib").sha256(best.encode()).hexdigest()[:16]}))
PY
}
for r in $(seq "$REPEATS"); do
  echo "round $r/$REPEATS" >&2
  run alone
  run w1 --workers "${WORKERS[0]}" --recheck 0 --node-dir "$WORK/c"
  run w2 --workers "${WORKERS[0]},${WORKERS[1]}" --recheck 0 --node-dir "$WORK/c"
  run w3 --workers "$(IFS=,; echo "${WORKERS[*]}")" --recheck 0 --node-dir "$WORK/c"
  run w3-recheck --workers "$(IFS=,; echo "${WORKERS[*]}")" --recheck 0.15 --node-dir "$WORK/c"
done
python3 - "$WORK/rows.jsonl" "$(nproc)" > docs/bench/research-network-results.json <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
out = {"cores": int(sys.argv[2]), "rows": rows, "summary": {}}
by = {}
for r in rows:
    by.setdefault(r["config"], []).append(r)
alone = statistics.median(r["wall_s"] for r in by["alone"])
for k, rs in by.items():
    w = statistics.median(r["wall_s"] for r in rs)
    t = rs[0]["trials"]
    s = {"median_wall_s": round(w, 3), "trials": t, "trials_per_min": round(60 * t / w, 1),
         "speedup_vs_alone": round(alone / w, 3),
         "same_model_as_alone": all(r["best_model_sha"] == by["alone"][0]["best_model_sha"] for r in rs)}
    if rs[0].get("unit_ms"):
        s["recheck_share_of_unit_time"] = round(
            sum(r["recheck_ms"] for r in rs) / max(1, sum(r["unit_ms"] for r in rs)), 4)
        s["rechecks"] = rs[0]["rechecks"]
        s["units"] = rs[0]["units"]
    out["summary"][k] = s
print(json.dumps(out, indent=1))
PY
cat docs/bench/research-network-results.json | python3 -c 'import json,sys; d=json.load(sys.stdin); print("cores", d["cores"]); [print(k, v) for k, v in d["summary"].items()]'
