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
# The npm package (make npm): wasm-pack, the wasm-bindgen CLI of exactly the
# version wasm/Cargo.toml pins, and the wasm32 target. wasm-opt comes from
# npm's `binaryen` (npm/package.json): Debian's is too old for rustc's output.
need_target wasm32-unknown-unknown
root_dir="$(cd "$(dirname "$0")/.." && pwd)"
wbg_version="$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' "$root_dir/wasm/Cargo.toml")"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wbg_version" ]; then
    echo "setup: installing wasm-bindgen-cli $wbg_version"
    cargo install wasm-bindgen-cli --version "$wbg_version" --locked --force \
        || cargo install wasm-bindgen-cli --version "$wbg_version" --force
fi
if ! command -v wasm-pack >/dev/null; then
    echo "setup: installing wasm-pack"
    cargo install wasm-pack --locked || cargo install wasm-pack
fi
# The browser suite drives Debian's Chromium (playwright's own download
# cannot be fetched here).
if ! command -v chromium >/dev/null; then
    echo "setup: installing chromium"
    apt-get update && apt-get install -y chromium
fi
npm_ci() {
    local dir="$1"
    if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
        echo "setup: npm ci in ${dir#"$root_dir"/}"
        # A lock made against a registry that lacks other platforms' optional
        # packages (workerd's darwin/windows builds) fails `npm ci`'s
        # completeness check; `npm install --no-save` still installs exactly
        # the locked versions and skips the missing optional ones.
        local log
        log="$(mktemp)"
        if ! (cd "$dir" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
            grep -m3 -E "^npm error (code|Missing|.*in sync)" "$log" || tail -n 3 "$log"
            echo "setup: npm ci refused; installing the locked versions with npm install --no-save"
            (cd "$dir" && npm install --no-audit --no-fund --no-save)
        fi
        rm -f "$log"
    fi
}
npm_ci "$root_dir/npm"
npm_ci "$root_dir/tests/npm"
# The demo page (esbuild, tsc; make web-demo / make demo) and its browser
# suite (playwright-core, yjs; make e2e).
npm_ci "$root_dir/web-demo"
npm_ci "$root_dir/tests/e2e"
echo "setup: ok"
