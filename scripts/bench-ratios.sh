#!/usr/bin/env bash
# Prints one line per neuroplex-vs-crdts benchmark group from criterion's
# output (the latest run, `new/estimates.json`, mean point estimate in ns):
#
#   bench group=<g> neuroplex_ns=<a> crdts_ns=<b> speedup=<b/a>
#
# Usage: scripts/bench-ratios.sh [group...]
#   Groups default to the four of core/benches/crdts_comparison.rs. The
#   criterion directory is $CARGO_TARGET_DIR/criterion (default ./target).
#   Exits 1 if a requested group has no result for either side.
set -euo pipefail

target_dir="${CARGO_TARGET_DIR:-./target}"
criterion_dir="$target_dir/criterion"
if [ "$#" -eq 0 ]; then
    set -- awset_add awset_merge pncounter_inc ormap_update
fi
if [ ! -d "$criterion_dir" ]; then
    echo "bench-ratios: no criterion output in $criterion_dir (run cargo bench first)" >&2
    exit 1
fi

python3 - "$criterion_dir" "$@" <<'PY'
import json
import os
import sys

criterion_dir, groups = sys.argv[1], sys.argv[2:]


def mean_ns(group, function):
    path = os.path.join(criterion_dir, group, function, "new", "estimates.json")
    try:
        with open(path) as f:
            return float(json.load(f)["mean"]["point_estimate"])
    except (OSError, KeyError, ValueError) as e:
        print(f"bench-ratios: {group}/{function}: cannot read {path}: {e}", file=sys.stderr)
        return None


status = 0
for group in groups:
    a = mean_ns(group, "neuroplex")
    b = mean_ns(group, "crdts")
    if a is None or b is None or a <= 0:
        status = 1
        continue
    print(f"bench group={group} neuroplex_ns={a:.0f} crdts_ns={b:.0f} speedup={b / a:.2f}")
sys.exit(status)
PY
