#!/usr/bin/env bash
# make loadtest: an end-to-end load test of a sale on loopback. Starts
# redis-server with the module and tq-gateway on free ports, puts the
# seats on sale (TQ.CONFIG, TQ.INVENTORY), runs tq-loadtest (goose) against
# the gateway, prints its report, the machine, and whether the sale's
# invariant held; then stops both servers.
#
#   LOADTEST_USERS (default 2000)  simulated fans at once
#   LOADTEST_HATCH (default 200)   fans started per second
#   LOADTEST_SECONDS (default 60)  how long
#   LOADTEST_ROWS (default 60)     seat rows of 25 seats (1,500 seats)
#   LOADTEST_RATE (default 30)     admissions per second (TQ.CONFIG RATE)
#   TQ_SERVER                      the server binary (default redis-server)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="${TQ_MODULE:-$ROOT/target/release/libtq.so}"
GATEWAY="$ROOT/target/release/tq-gateway"
LOADTEST="$ROOT/target/release/tq-loadtest"
USERS="${LOADTEST_USERS:-2000}"
HATCH="${LOADTEST_HATCH:-200}"
SECONDS_="${LOADTEST_SECONDS:-60}"
ROWS="${LOADTEST_ROWS:-60}"
RATE="${LOADTEST_RATE:-30}"
SERVER="${TQ_SERVER:-redis-server}"
for f in "$MODULE" "$GATEWAY" "$LOADTEST"; do
  [ -x "$f" ] || [ -f "$f" ] || { echo "loadtest: $f is missing (make build; cargo build --release --workspace)" >&2; exit 2; }
done
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/tq-loadtest.XXXXXX")"
REDIS_PORT="$(free_port)"
GW_PORT="$(free_port)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
"$SERVER" --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$WORK" --save '' --appendonly no \
  --loadmodule "$MODULE" --logfile "$WORK/server.log" &
PIDS+=($!)
for _ in $(seq 100); do redis-cli -p "$REDIS_PORT" PING >/dev/null 2>&1 && break; sleep 0.05; done
layout=""
for r in $(seq "$ROWS"); do layout="${layout:+$layout,}R$r:25"; done
SEATS=$((ROWS * 25))
EVENT="loadtest"
redis-cli -p "$REDIS_PORT" TQ.CONFIG "$EVENT" RATE "$RATE" BURST "$RATE" REQUIRE-PASS 1 MAX-SEATS 2 >/dev/null
redis-cli -p "$REDIS_PORT" TQ.INVENTORY "$EVENT" SET "$SEATS" >/dev/null
TQ_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" TQ_GATEWAY_ADDR="127.0.0.1:$GW_PORT" TQ_SEATS="$layout" \
  "$GATEWAY" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$GW_PORT") 2>/dev/null && break; sleep 0.05; done
echo "tq loadtest: $USERS fans (started $HATCH/s) for ${SECONDS_}s, $SEATS seats, admissions $RATE/s"
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $("$SERVER" --version | head -c 40)"
TQ_REDIS_URL="redis://127.0.0.1:$REDIS_PORT" TQ_EVENT="$EVENT" TQ_LOADTEST_SEATS="$SEATS" \
  "$LOADTEST" --host "http://127.0.0.1:$GW_PORT" --users "$USERS" --hatch-rate "$HATCH" \
  --run-time "${SECONDS_}s" --no-reset-metrics --quiet
