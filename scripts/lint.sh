#!/usr/bin/env bash
# Lints: clippy with warnings denied, over every target of every crate.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
cargo clippy --workspace --all-targets --locked --features magnet-autoresearch/llm -- -D warnings
