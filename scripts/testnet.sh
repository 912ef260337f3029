#!/usr/bin/env bash
# A multi-validator MAGNET testnet on loopback: N `magnetd start --abci-only` apps, each
# behind its own CometBFT v0.38 node.
#
#   scripts/testnet.sh init  [--validators 4] [--dir ./testnet] [--base-port 36000]
#   scripts/testnet.sh start [--dir ./testnet]      # background; logs in DIR/nodeI/*.log
#   scripts/testnet.sh status [--dir ./testnet]
#   scripts/testnet.sh stop  [--dir ./testnet]
#
# `init` runs the genesis ceremony the way separate operators would: each node runs
# `magnetd init`, hands `magnetd genesis show-validator` to node0, node0 adds them with
# `magnetd genesis add-validator` and funds a `faucet` key, and the final genesis.json is
# copied to every node. Ports of node I: p2p BASE+10I, rpc BASE+10I+1, abci BASE+10I+2,
# metrics BASE+10I+3.
#
# Binaries: $MAGNETD (default: magnetd on PATH, else target/debug/magnetd) and $COMETBFT
# (default: cometbft on PATH, else ~/.cache/magnet-tools/bin/cometbft from
# scripts/ci/install-cometbft.sh).
set -euo pipefail

cmd="${1:-}"; shift || true
N=4; DIR=./testnet; BASE=36000; CHAIN_ID=magnet-testnet-1
while [ $# -gt 0 ]; do
  case "$1" in
    --validators) N="$2"; shift 2;;
    --dir) DIR="$2"; shift 2;;
    --base-port) BASE="$2"; shift 2;;
    --chain-id) CHAIN_ID="$2"; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done

MAGNETD="${MAGNETD:-$(command -v magnetd || echo "${CARGO_TARGET_DIR:-target}/debug/magnetd")}"
COMETBFT="${COMETBFT:-$(command -v cometbft || echo "$HOME/.cache/magnet-tools/bin/cometbft")}"

port() { echo $((BASE + 10 * $1 + $2)); }

case "$cmd" in
  init)
    [ -x "$MAGNETD" ] || { echo "magnetd not found at $MAGNETD (build it: cargo build -p magnet-chain)" >&2; exit 1; }
    rm -rf "$DIR"; mkdir -p "$DIR"
    for i in $(seq 0 $((N - 1))); do
      "$MAGNETD" --home "$DIR/node$i" init "val$i" --chain-id "$CHAIN_ID" \
        --genesis-time 2026-01-01T00:00:00Z \
        --p2p-laddr "tcp://127.0.0.1:$(port $i 0)" --rpc-laddr "tcp://127.0.0.1:$(port $i 1)" \
        --abci-addr "tcp://127.0.0.1:$(port $i 2)" --timeout-commit 200ms >/dev/null
    done
    # Genesis ceremony on node0.
    for i in $(seq 1 $((N - 1))); do
      "$MAGNETD" --home "$DIR/node$i" genesis show-validator > "$DIR/val$i.json"
      "$MAGNETD" --home "$DIR/node0" genesis add-validator "$DIR/val$i.json"
    done
    "$MAGNETD" --home "$DIR/node0" keys add faucet --output json > "$DIR/faucet.json"
    "$MAGNETD" --home "$DIR/node0" genesis add-account faucet 1000000000000000umag
    "$MAGNETD" --home "$DIR/node0" genesis validate
    peers=()
    for i in $(seq 0 $((N - 1))); do
      [ "$i" = 0 ] || cp "$DIR/node0/config/genesis.json" "$DIR/node$i/config/genesis.json"
      id=$("$MAGNETD" --home "$DIR/node$i" genesis show-validator | sed -n 's/.*"node_id": "\(.*\)".*/\1/p')
      peers+=("$id@127.0.0.1:$(port $i 0)")
    done
    for i in $(seq 0 $((N - 1))); do
      others=$(printf '%s\n' "${peers[@]}" | grep -v "127.0.0.1:$(port $i 0)$" | paste -sd, -)
      h="$DIR/node$i"
      "$MAGNETD" --home "$h" config set p2p.persistent_peers "$others"
      "$MAGNETD" --home "$h" config set p2p.addr_book_strict false
      "$MAGNETD" --home "$h" config set p2p.allow_duplicate_ip true
      "$MAGNETD" --home "$h" config set consensus.timeout_propose 1s
      "$MAGNETD" --home "$h" config set consensus.create_empty_blocks false
      "$MAGNETD" --home "$h" config set consensus.timeout_commit 200ms
    done
    echo "testnet of $N validators in $DIR (chain $CHAIN_ID); faucet key in $DIR/faucet.json"
    ;;
  start)
    [ -x "$COMETBFT" ] || { echo "cometbft not found at $COMETBFT (run scripts/ci/install-cometbft.sh)" >&2; exit 1; }
    for h in "$DIR"/node*; do
      i="${h##*node}"
      "$MAGNETD" --home "$h" start --abci-only --metrics-addr "127.0.0.1:$(port "$i" 3)" > "$h/magnetd.log" 2>&1 &
      echo $! > "$h/magnetd.pid"
      sleep 0.3
      "$COMETBFT" start --home "$h" > "$h/cometbft.log" 2>&1 &
      echo $! > "$h/cometbft.pid"
    done
    echo "started; RPC of node0: http://127.0.0.1:$(port 0 1)"
    ;;
  status)
    for h in "$DIR"/node*; do
      i="${h##*node}"
      info=$(curl -s "http://127.0.0.1:$(port "$i" 1)/abci_info" | sed -n 's/.*"last_block_height":"\([0-9]*\)".*"last_block_app_hash":"\([^"]*\)".*/height \1 app_hash \2/p')
      echo "node$i ${info:-down}"
    done
    ;;
  stop)
    for f in "$DIR"/node*/*.pid; do
      [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null || true
      rm -f "$f"
    done
    ;;
  *)
    sed -n '2,20p' "$0"; exit 2;;
esac
