# Two entry points: `make test` (CI runs it through .ci/run) and `make demo`.
# Both install what they need first, idempotently.

CARGO ?= cargo
# Property tests run at least this many cases each (the suites never go below 256).
PROPTEST_CASES ?= 256
export PROPTEST_CASES

.PHONY: test demo setup fmt-check lint nostd unit yjs bench soak fuzz

test: setup fmt-check lint nostd unit yjs
	@echo "make test: all suites passed"

setup:
	@scripts/setup.sh

fmt-check:
	$(CARGO) fmt --all --check

lint:
	$(CARGO) clippy --workspace --all-targets --all-features -- -D warnings

# neuroplex-core on a target without std: proves it is no_std + alloc only.
nostd:
	$(CARGO) build -p neuroplex-core --no-default-features --target wasm32v1-none

# --all-features turns on `sim`, which the seeded simulation suites need.
unit:
	$(CARGO) test --workspace --all-features

# Unmodified yjs + y-websocket clients (Node.js) against a real relay.
yjs:
	$(CARGO) build -p neuroplex-relay
	cd tests/yjs && NEUROPLEX_RELAY_BIN=$(CURDIR)/target/debug/neuroplex-relay npm test

# Criterion benchmarks of the core against the crdts crate (not part of CI).
bench: setup
	$(CARGO) bench -p neuroplex-core --bench crdts_comparison
	@scripts/bench-ratios.sh

# Long seeded runs of the simulation suites (not part of CI). A failing seed
# is printed with the command that replays it.
SOAK_SYNC_SEEDS ?= 10000
SOAK_BFT_SEEDS ?= 100000
soak: setup
	NEUROPLEX_SEEDS=$(SOAK_SYNC_SEEDS) $(CARGO) test --release -p neuroplex-core --all-features --test sync_sim -- --nocapture
	NEUROPLEX_SEEDS=$(SOAK_BFT_SEEDS) $(CARGO) test --release -p neuroplex-core --all-features --test bft_sim -- --nocapture

# Coverage-guided fuzzing of every decoder (core/fuzz). cargo-fuzz wants a
# nightly compiler for sanitizers; without one it runs here with no
# sanitizer (panics and aborts are still caught) on the stable toolchain.
FUZZ_SECONDS ?= 300
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s none decode -- -max_total_time=$(FUZZ_SECONDS)

# Builds the relay and serves the demo (NEUROPLEX_LISTEN and NEUROPLEX_DATA
# choose the address and the data directory). Ctrl-C stops it gracefully.
demo: setup
	@scripts/demo.sh
