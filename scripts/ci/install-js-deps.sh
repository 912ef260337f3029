#!/usr/bin/env bash
# Installs the cosmjs packages the wallet-compatibility test runs (tests/js, pinned by its
# package-lock.json). Idempotent: npm ci is skipped when node_modules matches the lockfile.
set -euo pipefail
cd "$(dirname "$0")/../../tests/js"
if [ -f node_modules/.package-lock.json ] && cmp -s <(node -e 'const l=require("./package-lock.json");console.log(JSON.stringify(l.packages))') <(node -e 'const l=require("./node_modules/.package-lock.json");const p=Object.assign({"":require("./package-lock.json").packages[""]},l.packages);console.log(JSON.stringify(p))') 2>/dev/null; then
  echo "tests/js node_modules up to date"
  exit 0
fi
npm ci --no-audit --no-fund
