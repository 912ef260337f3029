#!/usr/bin/env bash
# Idempotent: a virtualenv with the pinned benchmark requirements for scripts/bench-autoresearch.py.
# Not needed by `cargo test`; only by the Optuna benchmark.
set -euo pipefail
VENV="${BENCH_VENV:-$HOME/.cache/magnet-bench-venv}"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q -r "$(dirname "$0")/requirements-bench-autoresearch.txt"
echo "$VENV/bin/python"
