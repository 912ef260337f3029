#!/usr/bin/env bash
# Training throughput: magnet-bitnet's fused CPU kernels and its candle-autograd reference against a
# PyTorch CPU reference of the same model, batch and sequence length
# (scripts/bitnet_torch_train_reference.py), interleaved round by round. Not part of CI: PyPI torch
# is a multi-GB install; it goes into a venv under ~/.cache.
#   scripts/bench-bitnet-train.sh [PRESET BATCH SEQ THREADS ROUNDS]   default: tiny 16 64 2 2
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
preset="${1:-tiny}" batch="${2:-16}" seq="${3:-64}" threads="${4:-2}" rounds="${5:-2}"
venv="${TORCH_VENV:-$HOME/.cache/magnet-torch-venv}"
if ! "$venv/bin/python" -c 'import torch' 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch numpy
fi
cargo build --release -p magnet-bitnet --example bench_train
for run in $(seq "$rounds"); do
  for kernels in fused candle; do
    RAYON_NUM_THREADS="$threads" nice -n "${NICE:-10}" \
      "$CARGO_TARGET_DIR/release/examples/bench_train" "$preset" "$batch" "$seq" 20 "$kernels"
  done
  nice -n "${NICE:-10}" "$venv/bin/python" scripts/bitnet_torch_train_reference.py \
    --preset "$preset" --vocab 1024 --batch "$batch" --seq "$seq" --threads "$threads"
done
