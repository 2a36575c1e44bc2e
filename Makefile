# Transactional outbox on DynamoDB: the commands a user reaches for.
# Everything runs from a fresh clone; tools that are missing go into .tools/ (see scripts/install-tools.sh).

SHELL := /bin/bash
TOOLS := $(CURDIR)/.tools/venv/bin
export PATH := $(TOOLS):$(PATH)
# sam and cargo-lambda run offline here; they only need a region and no instance metadata look-ups.
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_EC2_METADATA_DISABLED := true
export SAM_CLI_TELEMETRY := 0

DEVKIT := cargo run --quiet -p devkit --
ORDERS ?= 10000
# Which of the article's patterns demo and chaos run: outbox (default), cdc, self-read; and broker,
# the outbox relayed through EventBridge to an SQS queue (on moto's server, from make tools).
PATTERN ?= outbox

.PHONY: help setup tools kinesalite kinesis build deploy demo local ddb watch trigger test test-local-paths smoke-arm64 test-external lint fmt templates events chaos bench bench-consumer compare clean public-items

help: ## This list
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

setup: tools ## Install the project-local tools (sam, cargo-lambda, zig) and the arm64 target
	rustup target add aarch64-unknown-linux-gnu

tools:
	@bash scripts/install-tools.sh

kinesalite: ## The local Kinesis of pattern 3 (kinesalite 3.3.3 from npm) into .tools/kinesalite/; needs Node.js and npm
	@bash scripts/install-kinesalite.sh

# Pattern 3's template has functions of its own; it is built into a directory of its own, so the
# root template's build (which `make deploy` deploys) stays as it is.
SELF_READ_BUILD_DIR := .aws-sam/build-self-read
BROKER_BUILD_DIR := .aws-sam/build-broker

build: setup ## sam build of template.yaml (.aws-sam/build), pattern 3's template (.aws-sam/build-self-read) and the broker deployment's (.aws-sam/build-broker): the arm64 bootstraps of all nine functions
	sam build
	sam build -t patterns/self-read/template.yaml --build-dir $(SELF_READ_BUILD_DIR)
	sam build -t patterns/broker/template.yaml --build-dir $(BROKER_BUILD_DIR)

deploy: build ## sam deploy with samconfig.toml's defaults (GUIDED=1 for sam deploy --guided)
	sam deploy $(if $(GUIDED),--guided)

demo: $(if $(filter broker,$(PATTERN)),tools) ## The main job, locally: embedded DynamoDB, orders in, stream out, balances printed (PATTERN=outbox|cdc|self-read|broker; broker runs on moto from make tools)
	$(DEVKIT) demo --pattern $(PATTERN)

local: demo ## Same as demo

ddb: ## Serve the embedded DynamoDB with the template's tables on 127.0.0.1:8000 (LISTEN=host:port, PATTERN=cdc|self-read: that pattern's tables), stream trigger on (NO_TRIGGER=1: off)
	$(DEVKIT) ddb --pattern $(PATTERN) $(if $(LISTEN),--listen $(LISTEN)) $(if $(NO_TRIGGER),,--trigger)

kinesis: kinesalite ## Serve kinesalite (the local Kinesis of pattern 3) on 127.0.0.1:4567 (PORT=n) with the template's streams
	$(DEVKIT) kinesis $(if $(PORT),--port $(PORT))

watch: tools ## cargo lambda watch: the four functions on 127.0.0.1:9000, environment from events/local.env (make ddb's)
	cargo lambda watch

trigger: ## The local stream trigger on make ddb's stream, or AWS_ENDPOINT_URL's (drain once; FOLLOW=1 to keep polling)
	$(DEVKIT) trigger $(if $(FOLLOW),--follow) $(if $(INVOKE_URL),--invoke-url $(INVOKE_URL))

test: kinesalite tools ## All tests, on the embedded DynamoDB (or on AWS_ENDPOINT_URL's server when set), a local kinesalite and moto's server (SQS, SNS, EventBridge)
	cargo test --workspace
	@$(if $(OUTBOX_SKIP_KINESIS),echo "make test: OUTBOX_SKIP_KINESIS is set: the Kinesis tests that found no kinesalite printed SKIPPED above and did not run")

test-local-paths: tools ## The README's no-Docker path as written: make ddb, make watch, each function invoked; answers and the reward checked
	@bash scripts/test-local-paths.sh

smoke-arm64: kinesalite ## The arm64 bootstraps of make build (all seven functions), under qemu, against the embedded DynamoDB and kinesalite with the sample events
	@bash scripts/smoke-arm64.sh

# Tests another server cannot run, by exact name, and why: they are skipped and said to be.
EMBEDDED_ONLY_TESTS := modify_and_remove_records_are_ignored_including_real_ttl_deletions
EMBEDDED_ONLY_WHY := it forces a TTL sweep, which only the embedded dynoxide can do on demand

test-external: kinesalite tools ## All tests on AWS_ENDPOINT_URL's server, except those named as skipped
	@test -n "$$AWS_ENDPOINT_URL$$AWS_ENDPOINT_URL_DYNAMODB" || { echo "set AWS_ENDPOINT_URL to the DynamoDB to test against"; exit 2; }
	@echo "test-external: SKIPPED $(EMBEDDED_ONLY_TESTS) ($(EMBEDDED_ONLY_WHY))"
	cargo test --workspace -- --exact $(addprefix --skip ,$(EMBEDDED_ONLY_TESTS))
	@echo "test-external: all tests passed on $${AWS_ENDPOINT_URL_DYNAMODB:-$$AWS_ENDPOINT_URL} except $(words $(EMBEDDED_ONLY_TESTS)) SKIPPED, not run: $(EMBEDDED_ONLY_TESTS)"

lint: tools ## cargo fmt --check, clippy -D warnings, the size limits (500 lines a file, 80 a function, in crates/ functions/ examples/), the engine's rustdoc (missing_docs) and package, sam validate (with and without --lint), sam validate --lint of each pattern's template and the invoices example's
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@# The product code: no file over 500 lines, no function over 80.
	python3 scripts/size-limits.py crates functions examples
	@# The engine as its users get it: every public item documented, doctests aside (make test
	@# runs them), and a crate `cargo package` accepts and builds from its own files.
	RUSTDOCFLAGS="-D warnings" cargo doc -p dynamodb-outbox --all-features --no-deps
	cargo package -p dynamodb-outbox --allow-dirty --quiet
	sam validate --lint
	sam validate
	@# The pattern templates: --lint (cfn-lint and SAM's transform). Plain `sam validate` refuses
	@# their HttpApi's conditional Auth (an `!If` it does not resolve), which the root passes.
	@for template in patterns/*/template.yaml examples/invoices/template.yaml; do \
		echo "sam validate --lint -t $$template"; sam validate --lint -t $$template || exit 1; \
	done

public-items: ## Count the engine's public items (rustdoc JSON; needs a nightly toolchain: rustup toolchain install nightly)
	cargo +nightly rustdoc -p dynamodb-outbox --lib -- -Z unstable-options --output-format json
	python3 scripts/public-items.py target/doc/dynamodb_outbox.json

fmt: ## Format the code
	cargo fmt --all

templates: ## Rewrite the pattern templates' parts copied from template.yaml (each one's header names them)
	$(DEVKIT) templates

events: ## Regenerate the sample events in events/ from the code
	$(DEVKIT) events

clean: ## Remove build output
	cargo clean
	rm -rf .aws-sam .local

chaos: $(if $(filter broker,$(PATTERN)),tools) ## 10,000 orders (ORDERS=N) under faults, races, crashes; invariants checked (on AWS_ENDPOINT_URL if set; YES=1 skips the question)
	cargo run --quiet --profile tools -p devkit -- chaos --pattern $(PATTERN) --orders $(ORDERS) $(if $(SEED),--seed $(SEED)) $(if $(YES),--yes)

FUNCTIONS := -p order-writer -p stream-consumer -p rewards-api -p outbox-sweeper -p order-publisher -p order-history -p rewards-kinesis-consumer

bench: ## Benchmarks in release: prints one table, writes docs/benchmarks.md and the chart (BENCH_QUICK=1: quick)
	@# The functions are built apart from the bench crate so its dependencies cannot unify
	@# features into them; the arm64 bootstraps (for their size) need cargo-lambda from .tools/.
	cargo build --release $(FUNCTIONS)
	@bash scripts/install-tools.sh || echo "bench: could not install cargo-lambda"
	@if [ -x "$(TOOLS)/cargo-lambda" ] && rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-gnu; then \
		echo "cargo lambda build --release --arm64 $(FUNCTIONS)"; \
		cargo lambda build --release --arm64 $(FUNCTIONS); \
	else \
		echo "bench: no cargo-lambda or no aarch64 target: sizes fall back to this machine's binaries"; \
		rm -f $${CARGO_TARGET_DIR:-target}/lambda/*/bootstrap; \
	fi
	cargo bench -p outbox-bench --bench handlers --bench consumer $(if $(BENCH_QUICK),-- --warm-up-time 1 --measurement-time 2)
	cargo run --release --quiet -p outbox-bench --bin outbox-bench -- $(if $(BENCH_QUICK),--quick)

# make compare: the workload, the latency added per request, and the chaos runs' size.
COMPARE_ORDERS ?= 2000
COMPARE_CUSTOMERS ?= 200
COMPARE_LATENCY_MS ?= 10
COMPARE_RATE ?= 50
CHAOS_ORDERS ?= 1000
COMPARE_BIN = $${CARGO_TARGET_DIR:-target}/tools

compare: kinesalite tools ## The three patterns and the broker deployment side by side on one workload: short chaos runs, then docs/patterns.md and docs/patterns.svg
	@# The tools profile (optimised, no LTO): a release build of the bench takes minutes more and
	@# measures the same round trips. Both binaries come from this one build and run from
	@# target/ (a `cargo run -p devkit` alone resolves other features and builds again).
	cargo build --profile tools -p devkit -p outbox-bench
	@mkdir -p .local/compare
	@for p in outbox cdc self-read broker; do \
		echo "compare: make chaos PATTERN=$$p ORDERS=$(CHAOS_ORDERS)"; \
		$(COMPARE_BIN)/devkit chaos --pattern $$p --orders $(CHAOS_ORDERS) --yes > .local/compare/chaos-$$p.log 2>&1 \
			|| { tail -n 30 .local/compare/chaos-$$p.log; exit 1; }; \
	done
	$(COMPARE_BIN)/patterns-compare --orders $(COMPARE_ORDERS) --customers $(COMPARE_CUSTOMERS) --latency-ms $(COMPARE_LATENCY_MS) --rate $(COMPARE_RATE) --chaos-dir .local/compare --chaos-orders $(CHAOS_ORDERS)

bench-consumer: ## Only the engine consumer's batch shapes (make bench runs them too): rewrites their section of docs/benchmarks.md
	cargo run --release --quiet -p outbox-bench --bin outbox-bench -- --consumer-only $(if $(BENCH_QUICK),--quick)
