#!/usr/bin/env bash
# DiLoCo vs synchronous data-parallel at equal compute on BitNet `tiny` (in-process workers).
# Writes docs/bench/diloco-vs-ddp.md. Settings via env: WORKERS, H, ROUNDS, BATCH, SEQ, LINES.
# The dev profile is used on purpose: dependencies (candle) are built at opt-level 2 there, and
# the build is shared with `cargo test -p magnet-dtrain`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run -q -p magnet-dtrain --example diloco_vs_ddp -- \
  --workers "${WORKERS:-2}" --inner-steps "${H:-50}" --rounds "${ROUNDS:-4}" \
  --batch "${BATCH:-8}" --seq "${SEQ:-64}" --lines "${LINES:-12000}" \
  --work "${WORK:-runs/bench-diloco}" --out "${OUT:-docs/bench/diloco-vs-ddp.md}"
