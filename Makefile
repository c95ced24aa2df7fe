# Everyday commands. `make help` lists them.
.PHONY: help run test lint fmt check-config bench profile

help:
	@echo "make run           run the bridge locally (config/dev.toml, built-in Slack stand-in)"
	@echo "make test          run every test (installs redis-server, chromium, chromedriver if missing)"
	@echo "make lint          cargo fmt --check and clippy with warnings as errors"
	@echo "make fmt           format the code"
	@echo "make check-config  validate config/dev.toml and config/bridge.example.toml"
	@echo "make bench         load benchmark (3 s per scenario) and criterion micro-benchmarks"
	@echo "make profile       where the bridge's CPU goes during sign-ins on Redis (perf)"

run:
	cargo run -- serve --config config/dev.toml

test:
	./scripts/test.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings

fmt:
	cargo fmt

check-config:
	cargo run -q -- check-config --config config/dev.toml
	cargo run -q -- check-config --config config/bridge.example.toml

# A short load run (the README's figures use --duration 10) and the criterion
# micro-benchmarks. Both build in release mode.
BENCH_DURATION ?= 3
bench:
	cargo bench --bench load -- --duration $(BENCH_DURATION)
	cargo bench --bench hot_paths

# perf's flat profile of the bridge during the sign-in scenario on Redis;
# `scripts/profile.sh refresh` for refresh grants.
profile:
	./scripts/profile.sh sign-in redis 15
