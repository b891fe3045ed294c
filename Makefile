# tq: build, run and test the Redis module.
#   make run    install what is missing, build, run redis-server with tq on 127.0.0.1:6379
#   make test   install what is missing, build, run unit and integration tests
#   make bench  tq next to the Lua scripts it replaces (see bench/README.md)

SHELL := /bin/bash
MODULE := target/release/libtq.so
APT_PACKAGES := redis-server redis-tools clang libclang-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test bench build deps lint clean

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

build: deps
	cargo build --release --locked

run: build
	redis-server redis.conf.example

test: build
	cargo test --release --locked -- --test-threads=4

bench: build
	bench/run.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
