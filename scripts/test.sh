#!/usr/bin/env bash
# The project's test command (README "Run the tests"). CI calls it from .ci/run.
# Lints (clippy -D warnings) run separately with scripts/lint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
cargo fmt --all -- --check
# The LLM strategist (opt-in feature) is tested here too. Enabling it workspace-wide keeps the
# workspace's one feature set; a separate `-p magnet-autoresearch --features llm` line would
# rebuild candle, tokenizers and more under other feature hashes (~16 min cold; ADR 0063).
cargo test --workspace --locked --features magnet-autoresearch/llm
