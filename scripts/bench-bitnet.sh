#!/usr/bin/env bash
# BitNet engine benchmarks (not part of CI).
#   scripts/bench-bitnet.sh [PRESET...]     decode tok/s (1 and 2 threads), ternary matvecs alone,
#                                           memory-bandwidth bound; default presets: tiny small
#   QUALITY=1 scripts/bench-bitnet.sh       also trains the ternary model and its float twin on
#                                           the same data/steps and prints the val-loss gap
# Kernel micro-benchmarks: cargo bench -p magnet-bitnet --bench ternary
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(tiny small)
cargo build --release -p magnet-bitnet --example bench_decode -p magnet-worker
for p in "${presets[@]}"; do
  EMBED="${EMBED:-q8_0}" "$CARGO_TARGET_DIR/release/examples/bench_decode" "$p" 1 2
done
if [ "${QUALITY:-0}" = 1 ]; then
  out="${OUT:-runs/quality}"
  mkdir -p "$out"
  steps="${STEPS:-300}"
  for q in true false; do
    cat > "$out/q-$q.toml" <<TOML
[model]
preset = "tiny"
quantized = $q
[data]
vocab_size = 1024
tokenizer = "$out/tokenizer.json"
shards = "$out/shards"
[train]
steps = $steps
batch_size = 16
seq_len = 64
lr = 4e-3
eval_every = 100
out_dir = "$out/quantized-$q"
TOML
    "$CARGO_TARGET_DIR/release/magnet-worker" train --config "$out/q-$q.toml" --quiet | tee "$out/result-$q.txt"
  done
  t=$(grep -o 'final val loss [0-9.]*' "$out/result-true.txt" | awk '{print $4}')
  f=$(grep -o 'final val loss [0-9.]*' "$out/result-false.txt" | awk '{print $4}')
  python3 -c "t,f=$t,$f; print(f'ternary {t:.4f}  float twin {f:.4f}  gap {100*(t-f)/f:.2f}% ($steps steps x 16 x 64 tokens)')"
fi
