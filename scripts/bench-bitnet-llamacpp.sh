#!/usr/bin/env bash
# Runs llama.cpp's llama-bench (decode, TQ2_0) on the GGUF files written by
# scripts/bench-bitnet-decode.sh, with 1 and 2 threads. Not part of CI.
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/bench-bitnet-llamacpp.sh [PRESET...]
# llama.cpp is not built or fetched by this repository: build it yourself from its public source
# (CPU only) and point LLAMA_CPP_BIN at the folder holding llama-bench and llama-cli.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to a llama.cpp build/bin folder}"
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(small)
for p in "${presets[@]}"; do
  f="runs/bench/$p.gguf"
  [ -f "$f" ] || { echo "missing $f: run scripts/bench-bitnet-decode.sh $p first" >&2; exit 1; }
  # The file loads and generates in llama.cpp.
  "$bin/llama-cli" -m "$f" -p "In the beginning" -n 16 -t 1 --temp 0 -no-cnv 2>/dev/null | tail -1 || true
  # Decode only (no prompt processing), 1 and 2 threads.
  nice -n "${NICE:-10}" "$bin/llama-bench" -m "$f" -p 0 -n "${N_GEN:-64}" -t 1,2 -r "${REPS:-3}"
done
