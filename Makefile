# Missive build entry points. `make help` lists the targets.
#
# Build rules (DESIGN.md "Build rules"): RocksDB's C++ takes ~20 min to compile cold on a
# 2-core machine, once per cargo profile. So every target here uses the release profile
# (`--release`; `cargo bench` uses the bench profile, which inherits release and shares its
# artifacts) and one persistent target dir. Never add a dev-profile cargo command here, and
# never `cargo clean`. A second cargo on the same target dir waits on cargo's lock: that's fine.

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Persistent, shared target dir (made absolute so the fuzz crate, built from fuzz/, agrees).
CARGO_TARGET_DIR ?= $(HOME)/.cache/missive/target
override CARGO_TARGET_DIR := $(abspath $(CARGO_TARGET_DIR))
export CARGO_TARGET_DIR

RELEASE_DIR := $(CARGO_TARGET_DIR)/release
DATA_DIR ?= data
DEV_SECRET_FILE := $(DATA_DIR)/dev-secret
# Extra flags for the broker in `make run`, e.g. `make run BROKER_ARGS='--tcp 0.0.0.0:7700'`.
BROKER_ARGS ?=
# `make run` serves the chat page on WS_ADDR (http://WS_ADDR/) in development mode (the page
# mints tokens); `make run DEV=0` turns dev mode off (then paste a token from missivectl).
WS_ADDR ?= 127.0.0.1:7780
# Raw QUIC and WebTransport (UDP) for `make run`; `make run QUIC_ADDR=` turns QUIC off.
QUIC_ADDR ?= 127.0.0.1:7443
DEV ?= 1
WEB_DIR := sdk/web

# Fuzzing: its own target dir (sanitizer RUSTFLAGS would otherwise invalidate the release
# build), and RUSTC_BOOTSTRAP=1 because cargo-fuzz passes nightly-only flags
# (-Zsanitizer=address, sancov) and this machine only has stable Rust.
FUZZ_TARGET_DIR := $(CARGO_TARGET_DIR)/fuzz
FUZZ_TARGET ?= decode_frame
FUZZ_SECONDS ?= 60
CARGO_FUZZ := RUSTC_BOOTSTRAP=1 $(CARGO) fuzz
FUZZ_FLAGS := --fuzz-dir fuzz --target-dir $(FUZZ_TARGET_DIR)

.PHONY: help bootstrap run test lint fmt bench bench-curves bench-micro ctl fuzz-build fuzz web web-test soak

## help: list the targets
help:
	@echo "Missive make targets (all cargo builds use --release; CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)):"
	@awk '/^## /{ sub(/^## /, ""); i = index($$0, ": "); printf "  %-11s %s\n", substr($$0, 1, i - 1), substr($$0, i + 2) }' $(MAKEFILE_LIST)

## bootstrap: check/install the build prerequisites (cargo, libclang, g++, make)
# Each target asks only for what it uses (scripts/bootstrap.sh modes): `make run` needs
# cargo, libclang, g++, make and node/npm for the page; chromium only for `make web-test`;
# rustfmt and clippy only for `make lint`.
bootstrap:
	@scripts/bootstrap.sh build

## run: build and start the broker on ./data with a development secret
# MISSIVE_SECRET wins if set; otherwise a random secret is generated once into
# $(DEV_SECRET_FILE) (mode 600) and reused on every later `make run`.
run: bootstrap web
	$(CARGO) build --release --workspace --bin missive
	@mkdir -p $(DATA_DIR)
	@secret="$${MISSIVE_SECRET:-}"; \
	if [ -z "$$secret" ]; then \
	  if [ ! -s $(DEV_SECRET_FILE) ]; then \
	    (umask 077; head -c 32 /dev/urandom | od -An -vtx1 | tr -d ' \n' > $(DEV_SECRET_FILE)); \
	  fi; \
	  chmod 600 $(DEV_SECRET_FILE); \
	  secret="$$(cat $(DEV_SECRET_FILE))"; \
	  echo "=================================================================================="; \
	  echo " DEVELOPMENT secret (from $(DEV_SECRET_FILE); set MISSIVE_SECRET to override):"; \
	  echo "   $$secret"; \
	  echo " Mint a token (build missivectl with 'make ctl'):"; \
	  echo "   $(RELEASE_DIR)/missivectl token --secret $$secret --user alice"; \
	  echo " Chat page: http://$(WS_ADDR)/"; \
	  echo "=================================================================================="; \
	fi; \
	exec $(RELEASE_DIR)/missive --data $(DATA_DIR) --secret "$$secret" --ws $(WS_ADDR) \
	  $(if $(QUIC_ADDR),--quic $(QUIC_ADDR)) \
	  --static-dir $(WEB_DIR)/demo/dist $(if $(filter 1,$(DEV)),--dev) $(BROKER_ARGS)

## test: everything CI checks: lint (fmt, clippy), tests, benches run once as tests
# Benches: `cargo bench` after `cargo test --release` does NOT recompile librocksdb-sys (or any
# dependency): the bench profile inherits release, and cargo keys artifacts on the profile's
# settings, not its name, so both resolve to the same librocksdb-sys unit in target/release.
# Only the bench targets themselves are compiled. `--bench '*'` limits it to [[bench]] targets
# (plain `--benches` would also rebuild and rerun every lib's unit tests in bench mode);
# `-- --test` makes criterion run each benchmark once as a smoke test.
# The black-box tests run the real binaries (missive-under-test, missivectl) from
# $(RELEASE_DIR); `cargo test` only builds a package's binaries for that package's own
# tests, so build every binary first or missivectl's tests would run a stale (or no) copy.
# scripts/api-fuzz.sh (after the cargo tests): schemathesis (PyPI, in $(HOME)/.cache/missive/venv)
# fuzzes every endpoint of a running broker's /openapi.json: no 5xx, no undocumented status,
# no response outside its schema.
# scripts/test-bootstrap.sh first: it checks the prerequisite detection itself in seconds.
# `web` first: the weak-network black-box test runs the TypeScript SDK from sdk/web/dist (it
# needs root for network namespaces; without them it prints why it skipped).
test: lint web
	scripts/test-bootstrap.sh
	@scripts/bootstrap.sh netns
	$(CARGO) build --release --workspace --bins
	$(CARGO) test --release --workspace
	@scripts/bootstrap.sh api
	scripts/api-fuzz.sh
	$(CARGO) bench --workspace --bench '*' -- --test
	$(MAKE) web-test

## soak: SOAK_CYCLES (default 100) kill -9 cycles under mixed load, then the weak-network test, bigger
# Not in CI and not in `make test`. The crash-cycle test (tests/tests/blackbox/robustness/soak.rs,
# #[ignore]d in ordinary runs) prints a `soak: ...` summary line; the weak-network test
# (robustness/weak_network.rs) runs WEAKNET_MSGS (default here 50; 20 in `make test`) messages per transport and
# loss level and prints time-to-delivery percentiles. Both need the release binaries; the
# weak-network test needs root (network namespaces, /dev/net/tun) and sdk/web/dist: here
# (WEAKNET_REQUIRED=1) it fails instead of skipping without them.
SOAK_CYCLES ?= 100
SOAK_WEAKNET_MSGS ?= 50
soak: bootstrap web
	@scripts/bootstrap.sh netns
	$(CARGO) build --release --workspace --bins
	SOAK_CYCLES=$(SOAK_CYCLES) $(CARGO) test --release --workspace --test blackbox -- \
	  --ignored --exact robustness::soak::soak_kill9_cycles_under_mixed_load --nocapture
	WEAKNET_REQUIRED=1 WEAKNET_MSGS=$(SOAK_WEAKNET_MSGS) $(CARGO) test --release --workspace --test blackbox -- \
	  --exact robustness::weak_network::messages_arrive_exactly_once_in_order_over_lossy_links --nocapture

## web: install the web SDK's npm packages (npm ci) and build the SDK and the chat page
web: bootstrap
	@scripts/bootstrap.sh run
	cd $(WEB_DIR) && npm ci --no-audit --no-fund && npm run build

## web-test: SDK unit tests, then the browser end-to-end tests (headless Chromium)
web-test: web
	@scripts/bootstrap.sh browser
	$(CARGO) build --release --workspace --bins
	cd $(WEB_DIR) && npm test
	cd $(WEB_DIR) && MISSIVE_BIN=$(RELEASE_DIR)/missive MISSIVECTL_BIN=$(RELEASE_DIR)/missivectl npm run test:browser

## lint: rustfmt check and clippy (warnings are errors)
lint: bootstrap
	@scripts/bootstrap.sh lint
	$(CARGO) fmt --all -- --check
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings

## fmt: format the workspace and the fuzz crate
fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path fuzz/Cargo.toml

## bench: build loadgen, run every scenario small (--spawn, fsync), write bench/results/latest.jsonl and one rate/p99 plot per run in bench/results/runs/
# One JSON line per scenario (fields: README "Performance"). A scenario that fails (exit 1: a
# check failed, 3: setup error) fails the target, after every scenario ran and the file was
# written. The whole run takes about a minute and a half. `nats-fanout` runs right after
# `fanout` with the same members and seconds: the same measurement against NATS core (a
# nats-server spawned on loopback; scripts/bench-deps.sh installs the Debian package).
# Each line carries the run's per-second series (`series`); `loadgen ... --plot FILE.svg`
# draws one.
BENCH_OUT := bench/results/latest.jsonl
LOADGEN := $(RELEASE_DIR)/loadgen
LOADGEN_FLAGS := --spawn --durability fsync --json
bench: bootstrap
	@scripts/bench-deps.sh
	$(CARGO) build --release --workspace --bins
	@mkdir -p bench/results
	@tmp="$(BENCH_OUT).tmp"; : > "$$tmp"; failed=0; \
	mkdir -p bench/results/runs; \
	run() { \
	  plot="bench/results/runs/$$(echo "$$*" | tr -s ' -' '_' | sed 's/^_//').svg"; \
	  echo "== loadgen $$* $(LOADGEN_FLAGS) --plot $$plot" >&2; rc=0; \
	  "$(LOADGEN)" "$$@" $(LOADGEN_FLAGS) --plot "$$plot" >> "$$tmp" || rc=$$?; \
	  if [ "$$rc" -ne 0 ]; then echo "   FAILED: exit $$rc" >&2; failed=1; fi; \
	}; \
	run pairs --pairs 100 --secs 10; \
	run pairs --pairs 100 --secs 10 --transport ws; \
	run pairs --pairs 100 --secs 10 --transport quic; \
	run mixed --pairs 100 --secs 10; \
	run latency --rate 10000 --secs 10; \
	run latency --rate 10000 --secs 10 --transport ws; \
	run latency --rate 10000 --secs 10 --transport quic; \
	run fanout --members 1000 --secs 10; \
	run nats-fanout --members 1000 --secs 10; \
	run idle --conns 2000; \
	run sync --convs 50 --msgs 5000; \
	mv "$$tmp" "$(BENCH_OUT)"; echo "wrote $(BENCH_OUT)"; exit "$$failed"

## bench-curves: scalability curves (pairs, fanout vs NATS, sync, idle): bench/results/curves.json, curve-*.svg
# `loadgen curves` runs each point as `loadgen SCENARIO ... --spawn --durability fsync --json`
# (a fresh broker per point): pairs at 1..5000 pairs, fanout and nats-fanout at 100..10 000
# members (5 s each), sync at 50..5000 conversations (50 000 messages), idle at 1000..18 000
# connections (sizes: bench/src/loadgen/curves.rs). Each SVG plots the main figure against
# the size (log scale) and the server's CPU per unit of work. Every point still checks
# lost/duplicates/order; a failed point fails the target after every output was written.
# `make bench-curves CURVES=quick`: small sizes and 2-second runs, to check the driver.
CURVES ?=
bench-curves: bootstrap
	@scripts/bench-deps.sh
	$(CARGO) build --release --workspace --bins
	@mkdir -p bench/results
	"$(LOADGEN)" curves --out bench/results $(if $(filter quick,$(CURVES)),--quick)

## bench-micro: run the criterion micro-benchmarks (bench/benches, protocol/benches)
bench-micro: bootstrap
	$(CARGO) bench --workspace --bench '*'

## ctl: build missivectl (into $CARGO_TARGET_DIR/release/missivectl)
ctl: bootstrap
	$(CARGO) build --release --workspace --bin missivectl

## fuzz-build: build the fuzz targets with cargo-fuzz (installs cargo-fuzz if missing)
# If cargo-fuzz ever stops working on stable+RUSTC_BOOTSTRAP, this is what it runs (flags from
# `cargo fuzz build -v`; `--target` keeps RUSTFLAGS off build scripts and proc macros):
#   cd fuzz && RUSTC_BOOTSTRAP=1 RUSTFLAGS='-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4
#     -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table
#     -Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-simplifycfg-branch-fold-threshold=0
#     -Cllvm-args=-sanitizer-coverage-stack-depth --cfg fuzzing -Zsanitizer=address -Cdebug-assertions
#     -Ccodegen-units=1' cargo build --release --target x86_64-unknown-linux-gnu --target-dir $(FUZZ_TARGET_DIR)
fuzz-build: bootstrap
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	$(CARGO_FUZZ) build $(FUZZ_FLAGS)

## fuzz: fuzz FUZZ_TARGET (default decode_frame) for FUZZ_SECONDS (default 60) seconds
# New corpus entries go to fuzz/corpus/<target> (ignored by git); fuzz/seeds/<target> is a
# small committed seed corpus that is only read. Crashes land in fuzz/artifacts/<target>.
fuzz: fuzz-build
	@mkdir -p fuzz/corpus/$(FUZZ_TARGET)
	$(CARGO_FUZZ) run $(FUZZ_FLAGS) $(FUZZ_TARGET) fuzz/corpus/$(FUZZ_TARGET) fuzz/seeds/$(FUZZ_TARGET) \
	  -- -max_total_time=$(FUZZ_SECONDS)
