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
echo "setup: ok"
