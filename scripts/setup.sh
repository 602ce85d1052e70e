#!/usr/bin/env bash
# Installs what `make test` needs on a fresh machine. Idempotent: each step
# checks first and skips what is already there.
set -euo pipefail

need_component() {
    if ! rustup component list --installed 2>/dev/null | grep -q "^$1"; then
        echo "setup: adding rustup component $1"
        rustup component add "$1"
    fi
}

need_target() {
    if ! rustup target list --installed 2>/dev/null | grep -qx "$1"; then
        echo "setup: adding rustup target $1"
        rustup target add "$1"
    fi
}

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust with rustup first" >&2; exit 1; }
command -v rustup >/dev/null || { echo "setup: rustup not found; install Rust with rustup first" >&2; exit 1; }

need_component rustfmt
need_component clippy
# The core must build for a target with no std at all.
need_target wasm32v1-none
# The Yjs interop suite (tests/yjs) runs unmodified yjs + y-websocket
# clients under Node.js; install them from the lock file once.
command -v node >/dev/null || { echo "setup: node not found; install Node.js 20+ (the Yjs interop tests need it)" >&2; exit 1; }
command -v npm >/dev/null || { echo "setup: npm not found; install npm (the Yjs interop tests need it)" >&2; exit 1; }
yjs_dir="$(dirname "$0")/../tests/yjs"
if [ ! -f "$yjs_dir/node_modules/.package-lock.json" ] || [ "$yjs_dir/package-lock.json" -nt "$yjs_dir/node_modules/.package-lock.json" ]; then
    echo "setup: installing the Yjs interop test packages (npm ci)"
    (cd "$yjs_dir" && npm ci --no-audit --no-fund)
fi
echo "setup: ok"
