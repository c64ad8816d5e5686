# huatuo-bamai: `make run` (build and run in the foreground) and `make test`.
CONFIG ?= config/huatuo-bamai.toml
CARGO ?= cargo

.PHONY: all deps deps-test build run stack test soak lint fmt config dashboards bench clean

# Probe modules are included from a generated list (build.rs), which `cargo fmt` does not follow:
# rustfmt is given every tracked source file as well.
RUST_SOURCES = $(shell git ls-files '*.rs')

all: build

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

build: deps
	$(CARGO) build --release

# Runs the agent in the foreground with the shipped config (needs root for BPF).
run: build
	./target/release/huatuo-bamai --config $(CONFIG)

# The agent + Prometheus (with the alert rules) + an OpenSearch-compatible event store, no
# Docker; prints the URLs, Ctrl-C stops all (scripts/stack.sh, needs root for BPF).
stack: build deps-test
	CONFIG=$(CONFIG) scripts/stack.sh

# Unit, integration, root BPF and chaos tests. BPF tests skip without root unless
# HUATUO_REQUIRE_BPF is set (CI sets it).
test: deps-test
	$(CARGO) test --all-targets

lint:
	$(CARGO) fmt --check
	rustfmt --edition 2021 --check $(RUST_SOURCES)
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt
	rustfmt --edition 2021 $(RUST_SOURCES)

# Regenerates config/huatuo-bamai.toml and the DaemonSet ConfigMap from the code.
config:
	scripts/gen-config.sh

# Regenerates deploy/grafana/dashboards/*.json from scripts/gen-dashboards.py.
dashboards:
	python3 scripts/gen-dashboards.py

# The long runs `make test` keeps short (about 25 minutes, root): 10 minutes of mixed load with
# RSS and fd slopes (benches/soak.py), then Elasticsearch frozen for 10 minutes while events flow.
soak: build deps-test
	python3 benches/soak.py target/release/huatuo-bamai $(CONFIG)
	HUATUO_CHAOS_ES_OUTAGE_SECS=600 HUATUO_REQUIRE_BPF=1 $(CARGO) test --test chaos es_outage -- --nocapture

bench: build deps-test
	benches/overhead.sh

clean:
	$(CARGO) clean
