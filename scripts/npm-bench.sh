#!/usr/bin/env bash
# make npm-bench: the npm package's measurements (docs/BENCHMARKS.md).
#   wasm size build=<full|core> raw=<bytes> gzip=<bytes>
#   b4 lib=<neuroplex|yjs|ywasm|loro> ms=<t> ok=<true|false> heap_bytes=<n>
# `full` is the package's .wasm (make npm builds it); `core` is the same
# crate without yrs (no texts, undo or connection), built here for the
# measurement only, for size (opt-level z, wasm-opt -Oz).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

size() {
    local build="$1" file="$2"
    echo "wasm size build=$build raw=$(wc -c < "$file") gzip=$(gzip -9 -c "$file" | wc -c)"
}

size full npm/dist/neuroplex_wasm_bg.wasm
# Core-only: sized for size (opt-level z, wasm-opt -Oz), not speed.
core_dir="$root/target/npm-core"
CARGO_PROFILE_WASM_RELEASE_OPT_LEVEL=z nice cargo build --quiet -p neuroplex-wasm \
    --target wasm32-unknown-unknown --profile wasm-release --no-default-features
wasm-bindgen target/wasm32-unknown-unknown/wasm-release/neuroplex_wasm.wasm \
    --out-dir "$core_dir" --out-name neuroplex_core --target web
npm/node_modules/.bin/wasm-opt "$core_dir/neuroplex_core_bg.wasm" -Oz -o "$core_dir/neuroplex_core_bg.wasm" \
    --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
    --enable-mutable-globals --enable-reference-types --enable-multivalue
size core "$core_dir/neuroplex_core_bg.wasm"

bench="$root/wasm/bench"
if [ ! -f "$bench/node_modules/.package-lock.json" ] || [ "$bench/package-lock.json" -nt "$bench/node_modules/.package-lock.json" ]; then
    (cd "$bench" && npm ci --no-audit --no-fund >/dev/null)
fi
node "$bench/b4.mjs"
