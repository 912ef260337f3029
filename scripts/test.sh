#!/usr/bin/env bash
# The project's test command (README "Run the tests"). CI calls it from .ci/run.
# Lints (clippy -D warnings) run separately with scripts/lint.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/magnet-target}"
export PROPTEST_CASES="${PROPTEST_CASES:-64}"
cargo fmt --all -- --check
cargo test --workspace --locked
