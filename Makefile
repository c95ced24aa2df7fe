# Everyday commands. `make help` lists them.
.PHONY: help run test lint fmt check-config

help:
	@echo "make run           run the bridge locally (config/dev.toml, built-in Slack stand-in)"
	@echo "make test          run every test (installs redis-server if missing)"
	@echo "make lint          cargo fmt --check and clippy with warnings as errors"
	@echo "make fmt           format the code"
	@echo "make check-config  validate config/dev.toml and config/bridge.example.toml"

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
