#!/usr/bin/env bash
# Serving benchmark (not part of CI; protocol and results in docs/bench/serving.md):
# `magnet-worker serve` against llama.cpp's `llama-server` on the same GGUF and thread count,
# 1, 4 and 16 concurrent streaming clients (scripts/bench_serve_load.py): aggregate generated
# tokens/s and time to first token p50/p99. The servers run one after the other, interleaved
# (ours, llama, ours, llama), never at the same time.
#   LLAMA_CPP_BIN=/path/to/llama.cpp/build/bin scripts/bench-serve.sh
# Env: MODEL (a GGUF; default: a `small` model trained 2 steps and exported, runs/bench/serve-small.gguf),
#      THREADS (server threads, default 1), MAX_TOKENS (64), CTX (256), REPS (2), WORKER (magnet-worker binary).
# llama.cpp is not built or fetched by this repository: build llama-server yourself (CPU only).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
bin="${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to a llama.cpp build/bin folder holding llama-server}"
threads="${THREADS:-1}"; max_tokens="${MAX_TOKENS:-64}"; ctx="${CTX:-256}"; reps="${REPS:-2}"
worker="${WORKER:-$CARGO_TARGET_DIR/debug/magnet-worker}"
[ -x "$worker" ] || cargo build -p magnet-worker
model="${MODEL:-runs/bench/serve-small.gguf}"
if [ ! -f "$model" ]; then
  mkdir -p runs/bench/serve-train
  cat > runs/bench/serve-train/small.toml <<TOML
[model]
preset = "small"
[data]
corpus = "data/text/kjv.txt"
vocab_size = 4096
tokenizer = "runs/bench/serve-train/tok-4096.json"
shards = "runs/bench/serve-train/shards"
[train]
steps = 2
batch_size = 2
seq_len = 128
eval_every = 2
checkpoint_every = 2
out_dir = "runs/bench/serve-train/run"
TOML
  "$worker" train --quiet --config runs/bench/serve-train/small.toml
  "$worker" export --format gguf --checkpoint runs/bench/serve-train/run/checkpoints/final --out "$model"
fi
name=$(basename "$model" .gguf)
out="runs/bench/serve-$(date -u +%Y%m%dT%H%M%S).jsonl"
wait_up() { for _ in $(seq 1 300); do curl -sf "$1/health" >/dev/null 2>&1 && return 0; sleep 0.2; done; echo "server at $1 did not start" >&2; return 1; }
ours() {
  "$worker" serve --model "$model" --listen 127.0.0.1:18080 --threads "$threads" \
    --max-concurrent 16 --ctx "$ctx" --model-id "$name" >/dev/null 2>runs/bench/serve-ours.log &
  local pid=$!; wait_up http://127.0.0.1:18080
  python3 scripts/bench_serve_load.py --url http://127.0.0.1:18080/v1 --model "$name" \
    --max-tokens "$max_tokens" --label "magnet-worker serve (t=$threads)" | tee -a "$out"
  kill -INT $pid; wait $pid || true
}
llama() {
  "$bin/llama-server" -m "$model" --host 127.0.0.1 --port 18081 -t "$threads" -tb "$threads" \
    -np 16 -c $((16 * ctx)) -cb --no-webui >/dev/null 2>runs/bench/serve-llama.log &
  local pid=$!; wait_up http://127.0.0.1:18081
  python3 scripts/bench_serve_load.py --url http://127.0.0.1:18081/v1 --model "$name" \
    --max-tokens "$max_tokens" --label "llama-server (t=$threads)" | tee -a "$out"
  kill -INT $pid; wait $pid || true
}
for r in $(seq 1 "$reps"); do ours; llama; done
echo "results: $out"
