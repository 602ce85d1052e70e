# Two entry points: `make test` (CI runs it through .ci/run) and `make demo`.
# Both install what they need first, idempotently.

CARGO ?= cargo
# Property tests run at least this many cases each (the suites never go below 256).
PROPTEST_CASES ?= 256
export PROPTEST_CASES

.PHONY: test demo setup fmt-check lint nostd unit bench soak fuzz

test: setup fmt-check lint nostd unit
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

demo:
	@echo "make demo: the relay server and demo page do not exist yet (they arrive with"
	@echo "the relay issue); today only the core library and its tests are here."
	@echo "Run 'make test' to build and test it."
	@exit 2
