# tributary: `make demo` runs the main job, `make test` the whole suite (what CI runs).
# Both start the local stack (stack/stack.sh) first, installing what is missing.

SHELL := /bin/bash
# The same cache as stack/stack.sh (TRIBUTARY_CACHE_DIR).
CACHE_DIR ?= $(or $(TRIBUTARY_CACHE_DIR),$(HOME)/.cache/tributary)
# Two cores on our machines: keep the build from starving the JVMs of the stack.
CARGO_BUILD_JOBS ?= 2
export CARGO_BUILD_JOBS
CARGO_DENY_VERSION := 0.20.2
CARGO_DENY := $(CACHE_DIR)/cargo/bin/cargo-deny
CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ := $(CACHE_DIR)/cargo/bin/cargo-fuzz
TRIBUTARY := target/debug/tributary
# The stack profile of stack-up, stack-down and stack-status (stack/profiles/): single
# (what demo, test, chaos and soak run against) or cluster (3 Kafka + 3 Cassandra).
STACK ?= single
STACK_SH := TRIBUTARY_STACK=$(STACK) stack/stack.sh

.PHONY: help demo test build build-cli schema stack-up stack-down stack-status test-tools cqlsh psql lint fmt-check clippy deny fuzz fuzz-ci chaos chaos-ci chaos-cluster chaos-containers test-secure soak soak-ci bench

help:
	@echo "make demo          stack up, schema apply, move DEMO_USERS (10000) users through the pipeline, verify"
	@echo "make test          the whole suite against the real stack (what CI runs)"
	@echo "make stack-up      start Kafka, Cassandra, PostgreSQL, Jaeger, Toxiproxy (installs what is missing)"
	@echo "make stack-down    stop them"
	@echo "make stack-status  one line per service: up or down"
	@echo "make cqlsh         a CQL shell on the stack's Cassandra (cqlsh from PyPI, cached); make psql: PostgreSQL's"
	@echo "                   STACK=cluster for any of the three: 3 Kafka brokers + 3 Cassandra nodes on 127.0.0.1-3"
	@echo "                   STACK=containers: docker-compose.yml on podman, images built here"
	@echo "                   STACK=secure: TLS, client certificates and passwords required by every store, tributary granted its own objects only"
	@echo "make chaos-ci      the chaos suite's CI scenarios (every fault kind once, 4 long holds); make chaos: all (hours)"
	@echo "make chaos-cluster the cluster suite: node losses, rolling restarts, partitions (3 Kafka + 3 Cassandra)"
	@echo "make chaos-containers  docker compose up, and container kills, pauses, partitions (the container stack)"
	@echo "make test-secure   the secure stack's tests: exactly once over TLS with certificates and passwords, refusals, rights, no secret leaked"
	@echo "make soak          60 minutes at a steady rate under a fault every 30-90 s (target/soak/report.md); make soak-ci: 5 minutes"
	@echo "make bench         benchmarks: tributary vs Kafka/Cassandra ceilings and Spark (target/bench/report.md)"
	@echo "make fuzz          each fuzz target for FUZZ_RUNS (10 million) executions; make fuzz-ci: FUZZ_SECONDS (30) each"
	@echo "make lint          rustfmt and clippy; make deny: cargo-deny"

DEMO_USERS ?= 10000

# Only what the demo runs: the tributary binary, not the test, chaos and bench tools.
demo: stack-up build-cli
	$(TRIBUTARY) schema apply
	$(TRIBUTARY) demo --users $(DEMO_USERS)

test: stack-up test-tools lint
	cargo test --workspace --locked
	$(MAKE) chaos-ci
	$(MAKE) soak-ci
	$(MAKE) chaos-cluster
	$(MAKE) chaos-containers
	$(MAKE) test-secure
	$(MAKE) fuzz-ci
	$(MAKE) deny

# The chaos suite against the local stack: report in target/chaos/report.{json,md}.
chaos-ci: stack-up test-tools build
	target/debug/tributary-chaos --suite ci --seeds 1

# The whole catalogue: every fault with seeded 2-5 s holds under three seeds, then every
# store and source fault held 30 s and 3 minutes (seed 1: the hold is fixed), then the
# cluster suite under three seeds. Hours.
chaos: stack-up test-tools build
	target/debug/tributary-chaos --suite short --seeds 1,2,3 --out target/chaos/short
	target/debug/tributary-chaos --suite long --seeds 1 --out target/chaos/long
	$(MAKE) chaos-cluster CLUSTER_SEEDS=1,2,3

# The cluster suite (node losses, rolling restarts, partitions) against the cluster
# stack: report in target/chaos-cluster/report.{json,md}. The single stack is stopped
# first and the cluster stopped after: both at once do not fit two cores. 30,000 users
# (about 40 s of staging) outlast every fault's hold, so the longest gap between
# Cassandra commits measures the failover, not the end of the workload.
CLUSTER_SEEDS ?= 1
chaos-cluster: test-tools build
	stack/stack.sh down
	TRIBUTARY_STACK=cluster stack/stack.sh up
	target/debug/tributary-chaos --suite cluster --seeds $(CLUSTER_SEEDS) --users 30000 --out target/chaos-cluster; \
		status=$$?; TRIBUTARY_STACK=cluster stack/stack.sh down; exit $$status

# The container suite (`docker compose up` of the whole file, then kills, pauses and
# network partitions of each store's container and tributary's own) against the
# container stack: docker-compose.yml run by docker compose on podman with images built
# here (stack/containers/; tributary's from the release binary). Report in
# target/chaos-containers/report.md. The single stack is stopped first and the
# container stack after, as for the cluster.
chaos-containers: test-tools build
	cargo build --release --locked -p tributary
	stack/stack.sh down
	TRIBUTARY_STACK=containers stack/stack.sh up
	env=$$(TRIBUTARY_STACK=containers stack/stack.sh env) || exit 2; eval "$$env"; \
		target/debug/tributary-chaos --suite containers --seeds 1 --out target/chaos-containers; \
		status=$$?; TRIBUTARY_STACK=containers stack/stack.sh down; exit $$status

# The secure stack's tests (tests/secure/, a test target `cargo test` leaves out) against
# the secure stack: TLS, client certificates and passwords required by every store,
# tributary's role granted its own objects only (stack/profiles/secure.sh). The single
# stack is stopped first and the secure stack after, as for the cluster.
test-secure: test-tools build
	stack/stack.sh down
	TRIBUTARY_STACK=secure stack/stack.sh up || { TRIBUTARY_STACK=secure stack/stack.sh down; exit 1; }
	env=$$(TRIBUTARY_STACK=secure stack/stack.sh env) || exit 2; eval "$$env"; \
		cargo test --locked --test secure; \
		status=$$?; TRIBUTARY_STACK=secure stack/stack.sh down; exit $$status

# The soak (release build, as the service runs): one tributary at half of the bench's
# peak with ingestion, a fault from the chaos catalogue every 30-90 s, retention acting
# many times, the reconciler on. Report in target/soak/report.{md,json} with SVG charts;
# fails if anything was lost, duplicated or miscounted, or trended upward.
# SOAK_RATE: users/s. Half of the bench's peak (7,541/s) is the tool's own default
# (--rate unset), but with the reconciler and retention on, two cores fell behind at it
# (p99 at the histogram's 30 s cap within 2 minutes, README "Running for months"); a
# quarter of the peak is what the whole service holds here. SOAK_ARGS, e.g. --seed 2.
SOAK_RATE ?= 3750
SOAK_ARGS ?=
soak: stack-up
	cargo build --release --locked -p tributary -p tributary-chaos
	target/release/tributary-chaos soak --minutes 60 --rate $(SOAK_RATE) --out target/soak $(SOAK_ARGS)

soak-ci: stack-up
	cargo build --release --locked -p tributary -p tributary-chaos
	target/release/tributary-chaos soak --minutes 5 --rate $(SOAK_RATE) --out target/soak-ci

# Benchmarks (release build): report in target/bench/report.{json,md} with SVG charts.
# They report numbers, never fail on speed. BENCH_ARGS, e.g. --users 50000 --no-spark.
BENCH_ARGS ?=
bench: stack-up
	cargo build --release --locked -p tributary -p tributary-bench
	target/release/tributary-bench $(BENCH_ARGS)

build:
	cargo build --workspace --locked

build-cli:
	cargo build --locked -p tributary

schema: build
	$(TRIBUTARY) schema apply

stack-up:
	$(STACK_SH) up

stack-down:
	$(STACK_SH) down

stack-status:
	$(STACK_SH) status

# What only the tests use: headless Chromium (the dashboard test) and gdb (the chaos
# suite's thread dumps). Not part of stack-up, so `make demo` does not install them.
test-tools:
	$(STACK_SH) install-test-tools

# Shells on the single stack's stores, with tributary's keyspace and schema selected.
# cqlsh comes from PyPI into a virtualenv under the cache (once).
CQLSH_VERSION := 6.2.2
CQLSH := $(CACHE_DIR)/cqlsh-$(CQLSH_VERSION)/bin/cqlsh
$(CQLSH):
	stack/stack.sh install-cqlsh $(CQLSH_VERSION)

cqlsh: stack-up $(CQLSH)
	$(CQLSH) -k tributary 127.0.0.1 $${TRIBUTARY_STACK_CASSANDRA_PORT:-9042}

psql: stack-up
	PGOPTIONS=--search_path=tributary psql -X -h 127.0.0.1 -p $${TRIBUTARY_STACK_PG_PORT:-55432} -U postgres -d postgres

lint: fmt-check clippy

fmt-check:
	cargo fmt --all --check
	cargo fmt --manifest-path fuzz/Cargo.toml --check

clippy:
	cargo clippy --workspace --all-targets --locked -- -D warnings
	cargo clippy --locked --test secure -- -D warnings

# Fuzzing (fuzz/, README "Security"): libFuzzer through cargo-fuzz, on stable Rust
# (--sanitizer none: AddressSanitizer needs nightly; our parsers are safe Rust, so what a
# sanitizer would add is little). The instrumented build is a workspace of its own in
# fuzz/target. Inputs: fuzz/corpus/<target> (what earlier runs found, minimised) and
# fuzz/seeds/<target> (hand-made, and inputs that once crashed: never minimised away),
# plus config/ for config_text (our profiles).
# `make fuzz` runs each target for FUZZ_RUNS executions and adds what it finds to
# fuzz/corpus (minimise before committing: README); fuzz-ci runs each for FUZZ_SECONDS,
# writing new finds to target/ only. A crash stops either, the input saved under
# fuzz/artifacts/<target>/.
FUZZ_TARGETS := source_page raw_record kafka_headers config_text
FUZZ_RUNS ?= 10000000
FUZZ_SECONDS ?= 30
FUZZ := PATH="$(CACHE_DIR)/cargo/bin:$$PATH" cargo fuzz
fuzz_seeds = fuzz/seeds/$$target $$([ $$target = config_text ] && echo config)

$(CARGO_FUZZ):
	cargo install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root $(CACHE_DIR)/cargo

fuzz: $(CARGO_FUZZ)
	$(FUZZ) build --sanitizer none
	for target in $(FUZZ_TARGETS); do \
		$(FUZZ) run --sanitizer none $$target fuzz/corpus/$$target $(fuzz_seeds) -- \
			-runs=$(FUZZ_RUNS) -print_final_stats=1 || exit 1; \
	done

fuzz-ci: $(CARGO_FUZZ)
	$(FUZZ) build --sanitizer none
	for target in $(FUZZ_TARGETS); do \
		mkdir -p target/fuzz-ci/$$target; \
		$(FUZZ) run --sanitizer none $$target target/fuzz-ci/$$target fuzz/corpus/$$target $(fuzz_seeds) -- \
			-max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 || exit 1; \
	done

$(CARGO_DENY):
	cargo install cargo-deny --locked --version $(CARGO_DENY_VERSION) --root $(CACHE_DIR)/cargo

# Advisories need the RustSec database, fetched from GitHub. Where it cannot be fetched
# (our machines reach crates.io but not GitHub) that check is reported as not run,
# never as passed; licenses, bans and sources are checked regardless.
deny: $(CARGO_DENY)
	PATH="$(CACHE_DIR)/cargo/bin:$$PATH" cargo deny --locked check bans licenses sources
	@if PATH="$(CACHE_DIR)/cargo/bin:$$PATH" timeout 60 cargo deny fetch db >/dev/null 2>&1; then \
		PATH="$(CACHE_DIR)/cargo/bin:$$PATH" cargo deny --locked check --disable-fetch advisories; \
	else \
		echo "deny: advisories NOT CHECKED: the RustSec advisory database cannot be fetched from this machine"; \
	fi
