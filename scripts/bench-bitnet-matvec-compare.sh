#!/usr/bin/env bash
# The ternary matrix-vector products alone, ours vs llama.cpp's TQ2_0 kernel, interleaved in the
# same minutes, one and two threads. Not part of CI; results in docs/bench/bitnet.md.
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/bench-bitnet-matvec-compare.sh [PRESET] [ROUNDS]
# Ours: bench_decode's `ternary_matvec_pass` (every ternary product of one token: q, k, v, o,
# gate, up, down per layer, activations quantized inside the pass), fastest of 100 passes.
# llama.cpp's: scripts/llamacpp_tq2_matvec.c — our harness, compiled here against the
# libggml-cpu of a llama.cpp you built yourself, calls its exported `ggml_vec_dot_tq2_0_q8_K`
# on the same shapes and byte counts (activations quantized to Q8_K inside the pass), fastest of
# 100 passes; two threads split rows and meet at a spin barrier after every matrix.
# The fastest pass is the figure least moved by other processes; means are printed too.
# llama.cpp is not built or fetched by this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to a llama.cpp build/bin folder (with libggml-cpu.so)}"
preset="${1:-small}"
rounds="${2:-3}"
case "$preset" in # layers d kv_dim ff
  tiny) shape="2 256 128 512" ;;
  small) shape="8 512 128 1536" ;;
  autoresearch-best) shape="12 1024 256 2816" ;;
  genkidama-618m) shape="17 1536 384 4096" ;;
  *) echo "unknown preset $preset (tiny|small|autoresearch-best|genkidama-618m)" >&2; exit 2 ;;
esac
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
cargo build --release -p magnet-bitnet --example bench_decode
harness="${TMPDIR:-/tmp}/llamacpp_tq2_matvec"
gcc -O2 -Wall scripts/llamacpp_tq2_matvec.c -o "$harness" -lpthread -L"$bin" -lggml-cpu -lggml-base -Wl,-rpath,"$bin"
echo "| round | threads | ours fastest ms | llama.cpp fastest ms | ratio llama.cpp/ours | ours mean ms | llama.cpp mean ms | load avg |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq "$rounds"); do
  ours=$(TOKENS=4 nice -n "${NICE:-0}" "$CARGO_TARGET_DIR/release/examples/bench_decode" "$preset" 1 2 2>&1 |
    awk -F'|' '/ternary matvec pass/ {gsub(/[^0-9.]/,"",$2); split($3,a,": "); gsub(/ ms/,"",a[2]); print $2, a[2]} /^\| '"$preset"' \|/ {gsub(/ /,"",$7); print "mean", $7}')
  for t in 1 2; do
    o=$(echo "$ours" | awk -v t="$t" '$1 == t {print $2}')
    om=$(echo "$ours" | awk -v t="$t" '$1 == "mean" {n++; if (n == t) print $2}')
    l=$(nice -n "${NICE:-0}" "$harness" 100 "$t" $shape)
    lf=$(echo "$l" | awk -F'|' '{split($3,a," "); print a[3]}')
    lm=$(echo "$l" | awk -F'|' '{split($4,a," "); print a[2]}')
    ratio=$(awk -v o="$o" -v l="$lf" 'BEGIN {printf "%.2f", l / o}')
    echo "| $r | $t | $o | $lf | $ratio | $om | $lm | $(cut -d' ' -f1 /proc/loadavg) |"
  done
done
