#!/usr/bin/env bash
# The project's test command (README "Run the tests"). CI calls it from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
