#!/usr/bin/env bash
# End-to-end shard put/get throughput over loopback gRPC + TLS (criterion).
# Usage: scripts/bench-p2p.sh            (results in $CARGO_TARGET_DIR/criterion)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p magnet-p2p --bench p2p_throughput -- "$@"
