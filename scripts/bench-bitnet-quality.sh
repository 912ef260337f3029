#!/usr/bin/env bash
# Ternary vs float twin learning quality (not part of CI; results in docs/bench/bitnet.md).
# Trains a preset and its float twin on the KJV corpus with the same data, steps and token budget
# and prints both validation losses, the relative gap and the training tokens/s.
#   scripts/bench-bitnet-quality.sh [PRESET STEPS BATCH SEQ LR VOCAB]
#   default: tiny 300 16 64 4e-3 1024
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
cargo build --release -p magnet-bitnet --example bench_quality
nice -n "${NICE:-10}" "$CARGO_TARGET_DIR/release/examples/bench_quality" \
  "${1:-tiny}" "${2:-300}" "${3:-16}" "${4:-64}" "${5:-4e-3}" "${6:-1024}" "${OUT:-runs/quality}"
