#!/usr/bin/env bash
# Decode per CPU-second, ours vs llama.cpp, one thread, interleaved in the same minutes (the
# anchor for every figure in docs/bench/bitnet.md on a loaded machine). Not part of CI.
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/bench-bitnet-compare.sh [PRESET] [ROUNDS]
# Needs scripts/bench-bitnet-decode.sh PRESET to have run once (builds our binary and writes
# runs/bench/PRESET.gguf, the file both engines decode). llama.cpp's CPU time per token is the
# difference of `perf stat -e task-clock` over two llama-bench runs (-n 16 and -n 144), which
# cancels loading and warm-up; ours is bench_decode's own per-thread CPU clock over 144 tokens
# from position 0 (TOKENS=N to change).
# llama.cpp is not built or fetched by this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to a llama.cpp build/bin folder}"
preset="${1:-small}"
rounds="${2:-3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
f="runs/bench/$preset.gguf"
tok="runs/bench/tokenizer-${VOCAB:-8192}.json"
[ -f "$f" ] && [ -f "$tok" ] || { echo "run scripts/bench-bitnet-decode.sh $preset first" >&2; exit 1; }
llama_cpu_ms() { # CPU ms of one llama-bench run decoding $1 tokens on one thread
  nice -n "${NICE:-10}" perf stat -x, -e task-clock "$bin/llama-bench" -m "$f" -p 0 -n "$1" -t 1 -r 1 2>&1 >/dev/null |
    awk -F, '/task-clock/ {print $1}'
}
echo "| round | ours tok/CPU-s | ours matvecs CPU ms/token | llama.cpp tok/CPU-s | ratio ours/llama.cpp | load avg |"
echo "|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  line=$(TOKENS="${TOKENS:-144}" TOKENIZER="$tok" EMBED="${EMBED:-q8_0}" nice -n "${NICE:-10}" \
    "$CARGO_TARGET_DIR/release/examples/bench_decode" "$preset" 1 2>/dev/null | tail -n 1)
  ours=$(echo "$line" | awk -F'|' '{gsub(/ /,"",$6); print $6}')
  mv=$(echo "$line" | awk -F'|' '{gsub(/ /,"",$8); print $8}')
  a=$(llama_cpu_ms 16)
  b=$(llama_cpu_ms 144)
  llama=$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f", 128 / ((b - a) / 1000)}')
  ratio=$(awk -v o="$ours" -v l="$llama" 'BEGIN {printf "%.2f", o / l}')
  echo "| $r | $ours | $mv | $llama | $ratio | $(cut -d' ' -f1 /proc/loadavg) |"
done
