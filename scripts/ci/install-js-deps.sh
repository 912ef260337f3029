#!/usr/bin/env bash
# Installs the cosmjs packages the wallet-compatibility test runs (tests/js), exactly as
# pinned by its package-lock.json. npm ci is idempotent and fast from npm's cache.
set -euo pipefail
cd "$(dirname "$0")/../../tests/js"
npm ci --no-audit --no-fund
