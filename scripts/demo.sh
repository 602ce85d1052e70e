#!/usr/bin/env bash
# `make demo`: build the relay and run it, serving web-demo/ when present.
# No --listen or --data here: NEUROPLEX_LISTEN and NEUROPLEX_DATA choose them
# (defaults 127.0.0.1:8787 and ./neuroplex-data).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p neuroplex-relay
args=(serve)
if [ -z "${NEUROPLEX_STATIC:-}" ] && [ -d web-demo ]; then
    args+=(--static web-demo)
fi
coproc RELAY { exec target/release/neuroplex-relay "${args[@]}"; }
pid=$RELAY_PID
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
if read -r addr <&"${RELAY[0]}"; then
    echo "make demo: the relay is up at http://$addr/"
    echo "  Yjs clients:    ws://$addr/yjs/<room>  (y-websocket server URL ws://$addr/yjs)"
    echo "  native clients: ws://$addr/sync/<room>"
    echo "  metrics:        http://$addr/metrics"
    [ -d web-demo ] || echo "  (no web-demo/ yet: the demo page arrives with its own issue)"
    echo "  Ctrl-C stops it."
fi
wait "$pid"
