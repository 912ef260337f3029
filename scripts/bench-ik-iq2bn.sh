#!/usr/bin/env bash
# Single-stream decode against the fastest published ternary CPU path, ik_llama.cpp's IQ2_BN
# (not part of CI; results in docs/bench/serving.md). The same model: our GGUF (TQ2_0) is
# rewritten with F16 linear weights (scripts/gguf_ternary_to_f16.py: exact) and quantized to
# IQ2_BN by ik_llama.cpp's llama-quantize (it does not read TQ2_0). Decode tok/s at 1 and 2
# threads: ik's llama-bench (-p 0 -n N) and `magnet-worker infer` (N tokens after a 4-token
# prompt), each REPS times, interleaved; plus the effective read rate (tok/s × GGUF bytes).
#   IK_BIN=/path/to/ik_llama.cpp/build/bin MODEL=runs/bench/serve-ar.gguf scripts/bench-ik-iq2bn.sh
# ik_llama.cpp is not built or fetched by this repository: build llama-bench and
# llama-quantize yourself from its public source (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
ik="${IK_BIN:?set IK_BIN to an ik_llama.cpp build/bin folder}"
model="${MODEL:-runs/bench/serve-ar.gguf}"; n="${N_GEN:-128}"; reps="${REPS:-3}"
worker="${WORKER:-$CARGO_TARGET_DIR/release/magnet-worker}"
base="${model%.gguf}"
[ -f "$base-iq2bn.gguf" ] || {
  python3 scripts/gguf_ternary_to_f16.py "$model" "$base-f16.gguf"
  "$ik/llama-quantize" "$base-f16.gguf" "$base-iq2bn.gguf" IQ2_BN >/dev/null
  rm -f "$base-f16.gguf"
}
for r in $(seq 1 "$reps"); do
  for t in 1 2; do
    ours=$("$worker" infer --model "$model" --prompt "In the beginning God" --max-tokens "$n" \
      --threads "$t" 2>&1 >/dev/null | sed -n 's/.*(\([0-9.]*\) tok\/s.*/\1/p')
    ikr=$("$ik/llama-bench" -m "$base-iq2bn.gguf" -p 0 -n "$n" -t "$t" -r 1 -o json 2>/dev/null \
      | python3 -c 'import json,sys; print(round(json.load(sys.stdin)[0]["avg_ts"],1))')
    echo "{\"rep\": $r, \"threads\": $t, \"ours_tq2_0\": $ours, \"ik_iq2_bn\": $ikr, \"ours_bytes\": $(stat -c %s "$model"), \"ik_bytes\": $(stat -c %s "$base-iq2bn.gguf")}"
  done
done
