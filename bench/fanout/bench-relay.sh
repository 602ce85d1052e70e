#!/usr/bin/env bash
# `make bench-relay`: the fan-out benchmark of issue 6 in one command.
# Installs the benchmark's npm packages (once, from the lock file), builds
# the release relay, raises the open-file limit for the 10,000-connection
# memory test, then runs run.mjs (see its header for FANOUT_* settings).
# run.mjs stops every server it started, also on failure or Ctrl-C.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

command -v node >/dev/null || { echo "bench-relay: node not found; install Node.js 20+" >&2; exit 1; }
command -v npm >/dev/null || { echo "bench-relay: npm not found" >&2; exit 1; }

if [ ! -f "$here/node_modules/.package-lock.json" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
    echo "bench-relay: installing the benchmark's packages (npm ci)"
    (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

(cd "$root" && ${CARGO:-cargo} build --release -p neuroplex-relay)

# Every server process holds 10,000 sockets in the memory test, and so do
# the load-generator processes between them.
want=65536
if [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt "$want" ]; then
    ulimit -Hn "$want" 2>/dev/null || want="$(ulimit -Hn)"
fi
ulimit -n "$want"
if [ "$(ulimit -n)" -lt 12000 ]; then
    echo "bench-relay: the open-file limit is $(ulimit -n); the memory test needs 12,000 (raise the hard limit)" >&2
    exit 1
fi

export NEUROPLEX_RELAY_BIN="${NEUROPLEX_RELAY_BIN:-$root/target/release/neuroplex-relay}"
exec node "$here/run.mjs"
