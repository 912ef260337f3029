#!/usr/bin/env bash
# Installs the CometBFT v0.38 binary that the multi-validator tests run against.
#
# Idempotent: does nothing when the pinned version is already installed. The binary lands in
# $COMETBFT_BIN_DIR (default: $HOME/.cache/magnet-tools/bin); tests look there, then in $PATH.
# Needs Go and the Go module proxy (both on the dev and CI machines). Takes ~3-5 min cold.
set -euo pipefail
COMETBFT_VERSION="${COMETBFT_VERSION:-v0.38.26}"   # latest v0.38 the module proxy serves (checked 2026-11)
BIN_DIR="${COMETBFT_BIN_DIR:-$HOME/.cache/magnet-tools/bin}"
mkdir -p "$BIN_DIR"
if [ -x "$BIN_DIR/cometbft" ] && "$BIN_DIR/cometbft" version 2>/dev/null | grep -q "^${COMETBFT_VERSION#v}"; then
  echo "cometbft ${COMETBFT_VERSION} already at $BIN_DIR/cometbft"
  exit 0
fi
echo "installing cometbft ${COMETBFT_VERSION} into $BIN_DIR (go install)…"
GOBIN="$BIN_DIR" GOFLAGS="-mod=mod" go install "github.com/cometbft/cometbft/cmd/cometbft@${COMETBFT_VERSION}"
"$BIN_DIR/cometbft" version
