# Two entry points: `make test` (CI runs it through .ci/run) and `make demo`.
# Both install what they need first, idempotently.

CARGO ?= cargo
# Property tests run at least this many cases each (the suites never go below 256).
PROPTEST_CASES ?= 256
export PROPTEST_CASES

.PHONY: test demo setup fmt-check lint nostd unit yjs bench bench-relay soak fuzz \
	npm npm-test npm-node npm-chromium npm-workerd npm-bench relay-bin web-demo e2e

test: setup fmt-check lint nostd unit yjs npm-test e2e
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

# The npm package `neuroplex` (wasm/ + npm/): builds it into npm/ with
# wasm-pack (`npm pack` there gives the tarball).
npm: setup
	@scripts/npm-build.sh

relay-bin:
	$(CARGO) build -p neuroplex-relay

# The package in Node, in Chromium (/usr/bin/chromium via playwright-core)
# and in workerd, against real relay processes.
NPM_TEST = cd tests/npm && NEUROPLEX_RELAY_BIN=$(CURDIR)/target/debug/neuroplex-relay node --test --test-concurrency=1
npm-test: npm-node npm-chromium npm-workerd

npm-node: npm relay-bin
	$(NPM_TEST) node.test.mjs

npm-chromium: npm relay-bin
	$(NPM_TEST) chromium.test.mjs

npm-workerd: npm
	$(NPM_TEST) workerd.test.mjs

# The demo page (web-demo/): type-checks it and bundles it into web-demo/dist.
web-demo: npm
	cd web-demo && node build.mjs

# The demo page in Chromium against a real relay: two contexts editing at
# once, one going offline, a Yjs client on /yjs; screenshots (desktop and
# phone width) go to target/e2e-artifacts/.
e2e: web-demo relay-bin
	cd tests/e2e && NEUROPLEX_RELAY_BIN=$(CURDIR)/target/debug/neuroplex-relay node --test --test-concurrency=1 demo.test.mjs

# The package's .wasm sizes (full and core-only) and the B4 editing trace
# through neuroplex, yjs, ywasm and loro-crdt (not part of CI).
npm-bench: npm
	@scripts/npm-bench.sh

# Criterion benchmarks of the core against the crdts crate (not part of CI).
bench: setup
	$(CARGO) bench -p neuroplex-core --bench crdts_comparison
	@scripts/bench-ratios.sh

# The relay's fan-out, capacity and memory against @hocuspocus/server and the
# y-websocket reference server, in one run (bench/fanout; docs/BENCHMARKS.md).
# Needs Node.js 20+; takes about 15 minutes. Not part of CI.
bench-relay:
	@bench/fanout/bench-relay.sh

# Long seeded runs of the simulation suites (not part of CI). A failing seed
# is printed with the command that replays it.
SOAK_SYNC_SEEDS ?= 10000
SOAK_BFT_SEEDS ?= 100000
SOAK_ROOM_SEEDS ?= 20000
soak: setup
	NEUROPLEX_SEEDS=$(SOAK_ROOM_SEEDS) $(CARGO) test --release -p neuroplex-core --all-features --test room_sim -- --nocapture
	NEUROPLEX_SEEDS=$(SOAK_SYNC_SEEDS) $(CARGO) test --release -p neuroplex-core --all-features --test sync_sim -- --nocapture
	NEUROPLEX_SEEDS=$(SOAK_BFT_SEEDS) $(CARGO) test --release -p neuroplex-core --all-features --test bft_sim -- --nocapture

# Coverage-guided fuzzing of every decoder (core/fuzz), under
# AddressSanitizer: yrs has unsafe code, and a use-after-free in it reads
# freed memory silently far more often than it crashes (the doc target's
# crossed-origins input). RUSTC_BOOTSTRAP lets the stable toolchain build
# the sanitizer; SANITIZER=none runs faster without it.
SANITIZER ?= address
FUZZ_SECONDS ?= 600
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(SANITIZER) decode -- -max_total_time=$(FUZZ_SECONDS)
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(SANITIZER) doc -- -max_total_time=$(FUZZ_SECONDS)
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(SANITIZER) bft_message -- -max_total_time=$(FUZZ_SECONDS)
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(SANITIZER) yjs_update -- -max_total_time=$(FUZZ_SECONDS) -max_len=1048576
	cd core && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -s $(SANITIZER) room -- -max_total_time=$(FUZZ_SECONDS) -max_len=1048576

# Builds the relay and serves the demo (NEUROPLEX_LISTEN and NEUROPLEX_DATA
# choose the address and the data directory). Ctrl-C stops it gracefully.
demo: setup
	@scripts/demo.sh
