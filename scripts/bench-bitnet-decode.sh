#!/usr/bin/env bash
# BitNet engine decode benchmark (not part of CI; results in docs/bench/bitnet.md).
#   scripts/bench-bitnet-decode.sh [PRESET...]   default: small
# For each preset: a random-init model with a real KJV BPE tokenizer, embeddings/head Q8_0
# (EMBED=f16|f32 to change), written to runs/bench/PRESET.gguf (the file llama.cpp is run on by
# scripts/bench-bitnet-llamacpp.sh); prints decode tok/s with 1 and 2 threads, the ternary
# matrix-vector products alone, the measured read bandwidth and the bandwidth bound.
# Kernel micro-benchmarks: cargo bench -p magnet-bitnet --bench ternary
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(small)
vocab="${VOCAB:-8192}"
mkdir -p runs/bench
cargo build --release -p magnet-bitnet --example bench_decode --example make_tokenizer
tok="runs/bench/tokenizer-$vocab.json"
[ -f "$tok" ] || "$CARGO_TARGET_DIR/release/examples/make_tokenizer" data/text/kjv.txt "$vocab" "$tok"
for p in "${presets[@]}"; do
  TOKENIZER="$tok" OUT_GGUF="runs/bench/$p.gguf" EMBED="${EMBED:-q8_0}" \
    nice -n "${NICE:-10}" "$CARGO_TARGET_DIR/release/examples/bench_decode" "$p" 1 2
done
