#!/usr/bin/env bash
# `make demo`: install what is missing, build the npm package (only when its
# sources changed since the last build), build the demo page into
# web-demo/dist, build the relay (release) and run it serving the page.
# No --listen or --data here: NEUROPLEX_LISTEN and NEUROPLEX_DATA choose them
# (defaults 127.0.0.1:8787 and ./neuroplex-data). Ctrl-C stops it cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

# The package's .wasm takes minutes to build: rebuild it only if it is
# missing or older than anything it is made of (core's bft and sim modules
# are not: the bindings do not use them).
wasm=npm/dist/neuroplex_wasm_bg.wasm
if [ ! -f "$wasm" ] || [ -n "$(find wasm/src wasm/Cargo.toml core/src core/Cargo.toml Cargo.toml Cargo.lock \
        \( -path core/src/bft -o -path core/src/sim \) -prune -o -newer "$wasm" -type f -print -quit 2>/dev/null)" ]; then
    echo "make demo: building the npm package (make npm)"
    scripts/npm-build.sh
fi
(cd web-demo && node build.mjs)
cargo build --release -p neuroplex-relay

args=(serve)
if [ -z "${NEUROPLEX_STATIC:-}" ]; then
    args+=(--static web-demo/dist)
fi
coproc RELAY { exec target/release/neuroplex-relay "${args[@]}"; }
pid=$RELAY_PID
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
if read -r addr <&"${RELAY[0]}"; then
    echo "make demo: the demo page is at http://$addr/?room=demo"
    echo "  open it in two windows (or on two devices), or share the URL; ?room=NAME picks the room"
    echo "  Yjs clients:    ws://$addr/yjs/<room>  (y-websocket server URL ws://$addr/yjs)"
    echo "  native clients: ws://$addr/sync/<room>"
    echo "  metrics:        http://$addr/metrics"
    echo "  Ctrl-C stops it."
fi
status=0
wait "$pid" || status=$?
# Ctrl-C interrupts the wait, not the relay's shutdown: let that finish.
if kill -0 "$pid" 2>/dev/null; then
    wait "$pid" || status=$?
fi
exit "$status"
