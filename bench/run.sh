#!/usr/bin/env bash
# tq benchmark: the TQ commands next to the seed's Lua scripts they replace
# and the bare Redis commands underneath, on one server, in one run, with
# the ratios the performance issue sets goals for. `make bench` runs it;
# bench/README.md says what each row measures.
set -euo pipefail

# --- the run's configuration (each one can be set from the environment) -----
N="${BENCH_N:-300000}"                 # requests per redis-benchmark row
CLIENTS="${BENCH_CLIENTS:-50}"         # redis-benchmark connections (-c)
PIPELINE="${BENCH_PIPELINE:-16}"       # the pipelined mode (-P); the other is -P 1
N_PIPE="${BENCH_PIPE_N:-200000}"       # commands per redis-cli --pipe row (RELEASE)
Q_SMALL="${BENCH_Q_SMALL:-5000}"       # waiting fans for the small TQ.POSITION rows
Q_LARGE="${BENCH_Q_LARGE:-500000}"     # waiting fans for the large TQ.POSITION and TQ.ENTER rows
N_ENTER="${BENCH_ENTER_N:-50000}"      # TQ.ENTER calls, from the front of Q_LARGE
MEM_SMALL="${BENCH_MEM_SMALL:-100000}" # waiting entries, first memory reading
MEM_LARGE="${BENCH_MEM_LARGE:-1000000}" # waiting entries, second memory reading
MEM_HOLDS="${BENCH_MEM_HOLDS:-100000}" # held seats for the memory reading
MEM_SHAPES="${BENCH_MEM_SHAPES:-short uuid}" # names of the memory rows: short (t:<n>, d:<n>, u:<n>, as
                                       # the state-design issue measured; the goal's basis) and uuid
                                       # (36-byte UUID-shaped tokens and DEDUPE ids, users user-<n>)
N_REPL="${BENCH_REPL_N:-20000}"        # calls per replication-bytes row
N_POLLS="${BENCH_POLLS:-200}"          # TQ.POSITION polls of waiting fans, replication row
N_TRIM="${BENCH_TRIM_N:-100000}"       # entries one TQ.TRIM removes (and one XTRIM)
N_LAPSE="${BENCH_LAPSE_N:-100000}"     # entries whose heartbeats lapse together
N_EXPIRE="${BENCH_EXPIRE_N:-10000}"    # holds that expire together
N_PREQUEUE="${BENCH_PREQUEUE_N:-1000000}" # fans pre-queued before a scheduled opening
TTL=300                                # DEDUPE window of each join (TQ and script alike)
STREAM_NODE="${BENCH_STREAM_NODE:-16}" # stream-node-max-entries, as in redis.conf.example
#   TQ_MODULE   module to load   [target/release/libtq.so]
#   TQ_SERVER   server binary    [redis-server]

# Goals (issue 14), printed as PASS/FAIL lines; they never fail the script.
GOAL_ENQ_TIME=4     # script usec / TQ.ENQUEUE usec, at least
GOAL_ENQ_OPS=3      # TQ.ENQUEUE ops/s / script ops/s (-P 16), at least
GOAL_HOLD_TIME=5
GOAL_HOLD_OPS=3
GOAL_POS_US=2       # TQ.POSITION at Q_LARGE, at most
GOAL_POS_GROWTH=2.5 # TQ.POSITION at Q_LARGE / at Q_SMALL, at most
GOAL_ENTER_US=3     # TQ.ENTER at Q_LARGE, at most
GOAL_LOG_ENQ=1      # TQ.ENQUEUE with EVENTS on / off, at most (a join logs nothing)
GOAL_LOG_ENTER=1.3  # TQ.ENTER with EVENTS on / off, at most
EVENTS_LOG=100000   # EVENTS n of the event-log rows
LOG_REPEATS=3       # runs of each side of the TQ.ENQUEUE log on/off comparison
GOAL_MEM_B=250      # used_memory per waiting entry, at most
GOAL_REPL_ENQ=2.5   # replication bytes TQ.ENQUEUE / XADD, at most
GOAL_REPL_HOLD=3    # replication bytes TQ.HOLD / HSET, at most
GOAL_GROUP_HOLD=2   # TQ.HOLD of 4 seats (WITH) / a single-seat TQ.HOLD, server time, at most
GOAL_POLL_B=1       # replication bytes per TQ.POSITION poll, at most (~nothing)
GOAL_TRIM_MS=25     # one TQ.TRIM of N_TRIM entries, at most
GOAL_STEP_MS=10     # longest background step / event-loop stall, at most

# ROOT, BENCH, MODULE, SERVER_BIN; gen_cmds, gen_pipe, mature_event_commands.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# redis-benchmark draws each __rand_int__ independently from 0..RANGE-1 and
# stops at the first error reply (DUPLICATE, SEAT_UNAVAILABLE). A name made
# of one draw repeats within a run (birthday bound: ~45 pairs in 300k draws
# from 1e9), so every name that must be unique takes two: 1e18 values,
# about 5e-8 expected repeats in a run.
RANGE=1000000000
R2="__rand_int__:__rand_int__"
RESULTS="$BENCH/results"

for tool in "$SERVER_BIN" redis-cli redis-benchmark awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps installs it)" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "bench: $MODULE missing: run cargo build --release first" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tq-bench.XXXXXX")"
SERVER_PID=""
REPLICA_PID=""
PROBE_PID=""
stop_pid() { # pid port: SHUTDOWN NOSAVE, else kill; waits for it
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null || return 0
  redis-cli -p "$2" SHUTDOWN NOSAVE >/dev/null 2>&1 || kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [ -z "$PROBE_PID" ] || kill "$PROBE_PID" 2>/dev/null || true
  stop_pid "$REPLICA_PID" "${REPLICA_PORT:-0}"
  stop_pid "$SERVER_PID" "${PORT:-0}"
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- CPU pinning --------------------------------------------------------------
SRV_PIN=()
CLI_PIN=()
PIN_NOTE="not pinned (taskset missing or fewer than 2 CPUs usable)"
if command -v taskset >/dev/null 2>&1 && taskset -c 0 true 2>/dev/null && taskset -c 1 true 2>/dev/null; then
  SRV_PIN=(taskset -c 0)
  CLI_PIN=(taskset -c 1)
  PIN_NOTE="server on CPU 0, load generators (and the replica) on CPU 1 (taskset)"
fi
cli_pin() { ${CLI_PIN[@]+"${CLI_PIN[@]}"} "$@"; }

# --- servers ------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 12000)) # below the kernel's ephemeral ports (32768-)
    port_in_use "$p" || { echo "$p"; return; }
  done
  echo "bench: no free port" >&2
  exit 1
}
wait_pong() { # pid port
  for _ in $(seq 1 100); do
    redis-cli -p "$2" PING 2>/dev/null | grep -q PONG && return 0
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_server: its own redis-server with the module on a free loopback port
# (never 6379), no persistence, in $WORK, pinned to CPU 0. Sets PORT and
# SERVER_PID. Every start logs to a new file (all are checked for warnings).
SERVER_STARTS=0
start_server() {
  for _ in 1 2 3 4 5; do
    SERVER_STARTS=$((SERVER_STARTS + 1))
    PORT="$(free_port)"
    mkdir -p "$WORK/master"
    # Started directly (not through a function or subshell) so that $! is
    # the server itself: taskset execs it, and the EXIT trap can stop it.
    ${SRV_PIN[@]+"${SRV_PIN[@]}"} "$SERVER_BIN" --port "$PORT" --bind 127.0.0.1 --save '' \
      --appendonly no --dir "$WORK/master" --logfile "$WORK/redis.$SERVER_STARTS.log" \
      --stream-node-max-entries "$STREAM_NODE" \
      --loadmodule "$MODULE" </dev/null >/dev/null 2>&1 &
    SERVER_PID=$!
    wait_pong "$SERVER_PID" "$PORT" && return 0
    stop_pid "$SERVER_PID" "$PORT"
    SERVER_PID=""
    grep -q 'Address already in use' "$WORK/redis.$SERVER_STARTS.log" 2>/dev/null || break
    rm -f "$WORK/redis.$SERVER_STARTS.log"
  done
  echo "bench: could not start $SERVER_BIN with $MODULE; log:" >&2
  cat "$WORK/redis.$SERVER_STARTS.log" >&2 || true
  exit 1
}
restart_server() {
  stop_pid "$SERVER_PID" "$PORT"
  SERVER_PID=""
  start_server
}

# start_replica: a replica of the bench server (module loaded: it applies
# what tq replicates), on CPU 1; waits until it is in sync.
start_replica() {
  REPLICA_PORT="$(free_port)"
  mkdir -p "$WORK/replica"
  ${CLI_PIN[@]+"${CLI_PIN[@]}"} "$SERVER_BIN" --port "$REPLICA_PORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$WORK/replica" --logfile "$WORK/replica.log" \
    --stream-node-max-entries "$STREAM_NODE" \
    --replicaof 127.0.0.1 "$PORT" --loadmodule "$MODULE" </dev/null >/dev/null 2>&1 &
  REPLICA_PID=$!
  wait_pong "$REPLICA_PID" "$REPLICA_PORT" || { echo "bench: replica did not start:" >&2; cat "$WORK/replica.log" >&2; exit 1; }
  for _ in $(seq 1 100); do
    if redis-cli -p "$REPLICA_PORT" INFO replication | tr -d '\r' | grep -q '^master_link_status:up'; then return 0; fi
    sleep 0.1
  done
  echo "bench: replica never synced:" >&2
  cat "$WORK/replica.log" >&2
  exit 1
}
stop_replica() {
  stop_pid "$REPLICA_PID" "$REPLICA_PORT"
  REPLICA_PID=""
}

rcli() { redis-cli -p "$PORT" "$@" | tr -d '\r'; }

expect() {
  local want=$1; shift
  local got
  got="$(rcli "$@")"
  if [ "$got" != "$want" ]; then
    echo "bench: '$*' answered '$got', expected '$want'" >&2
    exit 1
  fi
}

# stats_field PORT FIELD: one field of TQ.STATS ev on that server.
stats_field() { # PORT FIELD [EVENT]
  redis-cli -p "$1" TQ.STATS "${3:-ev}" | tr -d '\r' | awk -v f="$2" 'NR % 2 == 1 { k = $0 } NR % 2 == 0 && k == f { print; exit }'
}
stats_of() { # PORT: "waiting W, inventory I, held H"
  echo "waiting $(stats_field "$1" waiting), inventory $(stats_field "$1" inventory), held $(stats_field "$1" held)"
}
info_field() { rcli INFO "$1" | awk -F: -v f="$2" '$1 == f { print $2 }'; }
# tq_info FIELD: a field of INFO tq whose name ends with FIELD ("n/a" if none).
tq_info() { rcli INFO tq | awk -F: -v f="$1" 'substr($1, length($1) - length(f) + 1) == f { v = $2 } END { print (v == "" ? "n/a" : v) }'; }

# "calls usec usec_per_call rejected failed" of one command since RESETSTAT.
cmdstat() {
  local line
  line="$(rcli INFO commandstats | awk -F'[:,=]' -v n="cmdstat_$1" '$1 == n { print $3, $5, $7, $9, $11 }')"
  echo "${line:-0 0 0 0 0}"
}
cmd_usec() { local c u; read -r c u _ <<<"$(cmdstat "$1")"; echo "$u"; }

flush() { expect OK FLUSHALL; }

num_ok() { [[ "${1:-}" =~ ^[0-9.]+$ ]]; }
pos_ok() { num_ok "${1:-}" && awk -v x="$1" 'BEGIN { exit !(x > 0) }'; }
ratio() { # a / b with 2 decimals, or "-"
  if num_ok "${1:-}" && pos_ok "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi
}
fmt1() { if num_ok "${1:-}"; then awk -v x="$1" 'BEGIN { printf "%.1f", x }'; else echo "${1:--}"; fi; }
fmt0() { if num_ok "${1:-}"; then awk -v x="$1" 'BEGIN { printf "%.0f", x }'; else echo "${1:--}"; fi; }
max2() { if num_ok "${1:-}" && num_ok "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0 ? a : b) }'; else echo "n/a"; fi; }
min2() { if num_ok "${1:-}" && num_ok "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 < b + 0 ? a : b) }'; else echo "n/a"; fi; }

# --- RESP pipes ---------------------------------------------------------------

# pipe_in: sends stdin with redis-cli --pipe; sets PIPE_SECS, PIPE_ERRORS,
# PIPE_REPLIES and PIPE_FIRST_ERROR.
pipe_in() {
  local out t0 t1
  t0=$(date +%s%N)
  out="$(cli_pin redis-cli -p "$PORT" --pipe --pipe-timeout 0 2>&1)" || true
  t1=$(date +%s%N)
  PIPE_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
  PIPE_ERRORS=$(printf '%s\n' "$out" | sed -n 's/^errors: \([0-9]*\), replies: \([0-9]*\).*/\1/p' | tail -n1)
  PIPE_REPLIES=$(printf '%s\n' "$out" | sed -n 's/^errors: \([0-9]*\), replies: \([0-9]*\).*/\2/p' | tail -n1)
  PIPE_ERRORS=${PIPE_ERRORS:-unknown}
  PIPE_REPLIES=${PIPE_REPLIES:-0}
  PIPE_FIRST_ERROR="$(printf '%s\n' "$out" | grep -v -e '^All data transferred' -e '^Last reply' -e '^errors:' | head -n1 || true)"
}
pipe_file() { pipe_in <"$1"; }

# fill FIRST LAST ARG...: a set-up pipe (gen_cmds) that must not fail.
fill() {
  local first=$1 last=$2
  shift 2
  pipe_in < <(gen_cmds "$first" "$last" "$@")
  if [ "$PIPE_ERRORS" != 0 ] || [ "$PIPE_REPLIES" != $((last - first + 1)) ]; then
    echo "bench: set-up '$*' for $first..$last: $PIPE_ERRORS errors, $PIPE_REPLIES replies (first: $PIPE_FIRST_ERROR)" >&2
    exit 1
  fi
}

# --- result rows --------------------------------------------------------------
ROWS=()
declare -A OPS UPC CALLS ERRS NOTE

record() { # key ops upc calls errors note
  ROWS+=("$1")
  OPS[$1]=$2
  UPC[$1]=$3
  CALLS[$1]=$4
  ERRS[$1]=$5
  NOTE[$1]=$6
  printf '  %-40s %10s ops/s %8s us/call  calls=%s errors=%s %s\n' "$1" "$(fmt0 "$2")" "$3" "$4" "$5" "$6"
}

# bench LABEL STAT PIPELINE RANGE CMD...: one redis-benchmark row (-n N
# -c CLIENTS -P PIPELINE -r RANGE).
bench() {
  local label=$1 stat=$2 p=$3 range=$4
  shift 4
  local key="$label|P$p"
  expect OK CONFIG RESETSTAT
  local out rps note=""
  out="$(cli_pin redis-benchmark -p "$PORT" -n "$N" -c "$CLIENTS" -P "$p" -r "$range" --csv "$@" 2>"$WORK/bench.err")" || true
  rps="$(printf '%s\n' "$out" | tail -n1 | awk -F'","' 'NF > 1 { print $2 }')"
  if [ -z "$rps" ]; then
    rps="n/a"
    note="redis-benchmark stopped: $(head -c 200 "$WORK/bench.err" | tr '\n' ' ')"
  fi
  local calls upc rej fail
  read -r calls _ upc rej fail <<<"$(cmdstat "$stat")"
  [ "$calls" = "$N" ] || note="${note:+$note; }$calls calls counted, $N sent"
  record "$key" "$rps" "$upc" "$calls" $((rej + fail)) "$note"
}

# pipe_row LABEL STAT FILE: one redis-cli --pipe row (throughput = commands /
# wall time of the whole pipe, one connection).
pipe_row() {
  local label=$1 stat=$2 file=$3
  local key="$label|pipe"
  expect OK CONFIG RESETSTAT
  pipe_file "$file"
  local calls upc rej fail note=""
  read -r calls _ upc rej fail <<<"$(cmdstat "$stat")"
  local ops
  ops=$(awk -v n="$PIPE_REPLIES" -v s="$PIPE_SECS" 'BEGIN { printf "%.2f", (s > 0 ? n / s : 0) }')
  [ "$PIPE_ERRORS" = 0 ] || note="first error: $PIPE_FIRST_ERROR"
  record "$key" "$ops" "$upc" "$calls" "$PIPE_ERRORS" "$note"
}

# ------------------------------------------------------------------------------
START_TS=$(date +%s)
start_server
REDIS_VERSION="$(info_field server redis_version)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then GIT_REV="$GIT_REV+dirty"; fi
echo "tq bench: redis $REDIS_VERSION on port $PORT, module $MODULE ($GIT_REV)"
echo "          $PIN_NOTE; redis-benchmark -n $N -c $CLIENTS, -P $PIPELINE and -P 1"

load_scripts() {
  SHA_ENQ="$(rcli SCRIPT LOAD "$(cat "$BENCH/enqueue.lua")")"
  SHA_HOLD="$(rcli SCRIPT LOAD "$(cat "$BENCH/hold.lua")")"
  SHA_REL="$(rcli SCRIPT LOAD "$(cat "$BENCH/release.lua")")"
  local sha
  for sha in "$SHA_ENQ" "$SHA_HOLD" "$SHA_REL"; do
    [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || { echo "bench: SCRIPT LOAD failed: $sha" >&2; exit 1; }
  done
}
load_scripts

# The tq event every tq row runs on (mature_event_commands in lib.sh).
LAYOUT_NOTE=""
mature_event() {
  mature_event_commands | rcli >/dev/null
  expect 100000000 TQ.INVENTORY ev
  expect 0 XLEN "tq:{ev}:queue"
  if [ -z "$LAYOUT_NOTE" ]; then
    LAYOUT_NOTE="keys of a mature event: $(rcli --scan --pattern 'tq:{ev}:*' | sort | tr '\n' ' ')"
    LAYOUT_NOTE="$LAYOUT_NOTE(TYPE tq:{ev}:state: $(rcli TYPE 'tq:{ev}:state'))"
  fi
}
# The script side's inventory, as large as the event's.
lua_inventory() { expect OK SET "lua:{ev}:inventory" 100000000; }

MODES=("$PIPELINE" 1)

echo "== floor"
for p in "${MODES[@]}"; do
  bench "PING" ping "$p" "$RANGE" PING
done

echo "== enqueue: unique user, token and DEDUPE id per call, TTL $TTL"
for p in "${MODES[@]}"; do
  flush; mature_event
  bench "TQ.ENQUEUE" tq.enqueue "$p" "$RANGE" TQ.ENQUEUE ev "u:$R2" "t:$R2" DEDUPE "d:$R2" TTL "$TTL"
  # The same with the event log on (a join writes nothing to it), and,
  # since two runs of the same work differ by more than what is compared
  # here on a noisy machine, each side LOG_REPEATS times more, alternating;
  # the comparison takes each side's best run.
  for r in $(seq "$LOG_REPEATS"); do
    flush; mature_event
    expect OK TQ.CONFIG ev EVENTS "$EVENTS_LOG"
    bench "TQ.ENQUEUE (EVENTS on) #$r" tq.enqueue "$p" "$RANGE" TQ.ENQUEUE ev "u:$R2" "t:$R2" DEDUPE "d:$R2" TTL "$TTL"
    flush; mature_event
    bench "TQ.ENQUEUE (EVENTS off) #$r" tq.enqueue "$p" "$RANGE" TQ.ENQUEUE ev "u:$R2" "t:$R2" DEDUPE "d:$R2" TTL "$TTL"
  done
  flush
  bench "enqueue.lua" evalsha "$p" "$RANGE" EVALSHA "$SHA_ENQ" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:d:$R2" "t:$R2" "u:$R2" "$TTL"
  flush
  bench "XADD (bare)" xadd "$p" "$RANGE" XADD "bare:{ev}:queue" '*' token "t:$R2" user "u:$R2"
done

echo "== hold: distinct seats"
for p in "${MODES[@]}"; do
  flush; mature_event
  bench "TQ.HOLD" tq.hold "$p" "$RANGE" TQ.HOLD ev "s:$R2" "u:$R2"
  flush; mature_event
  # A group of four, all or nothing (each seat its own two draws).
  bench "TQ.HOLD of 4 (WITH)" tq.hold "$p" "$RANGE" TQ.HOLD ev "s:$R2" "u:$R2" WITH "s:$R2" "s:$R2" "s:$R2"
  flush; lua_inventory
  bench "hold.lua" evalsha "$p" "$RANGE" EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s:$R2" "s:$R2" "u:$R2"
  flush
  bench "HSET (bare)" hset "$p" "$RANGE" HSET "bare:{ev}:seats" "s:$R2" HELD
done

echo "== release (redis-cli --pipe over $N_PIPE held seats)"
last=$((N_PIPE - 1))
flush; mature_event
fill 0 "$last" TQ.HOLD ev "s#" "u#"
gen_pipe "$WORK/release.resp" 0 "$last" TQ.RELEASE ev "s#"
pipe_row "TQ.RELEASE" tq.release "$WORK/release.resp"
expect 100000000 TQ.INVENTORY ev
flush; lua_inventory
fill 0 "$last" EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#" "u#"
gen_pipe "$WORK/release.resp" 0 "$last" EVALSHA "$SHA_REL" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#"
pipe_row "release.lua" evalsha "$WORK/release.resp"
expect 100000000 GET "lua:{ev}:inventory"
flush
gen_pipe "$WORK/release.resp" 0 "$last" HSET "bare:{ev}:seats" "s#" AVAILABLE
pipe_row "HSET (bare)" hset "$WORK/release.resp"
rm -f "$WORK/release.resp"

# TQ.POSITION of random waiting fans: the queue holds t:000000000000 ..
# t:<Q-1> (12 digits, as redis-benchmark writes __rand_int__), so
# `-r Q` makes every call ask about a fan who waits, all over the queue.
check_position() { # token expected-position (reply: position, N, user_position, N, ready, 0|1, ...)
  local reply
  reply="$(rcli TQ.POSITION ev "$1")"
  [ "$(sed -n 2p <<<"$reply")" = "$2" ] && [ "$(sed -n 6p <<<"$reply")" = 0 ] || {
    echo "bench: TQ.POSITION ev $1 gave '$reply', expected position $2, not ready" >&2
    exit 1
  }
}
tok12() { printf 't:%012d' "$1"; }
echo "== position of random waiting fans ($Q_SMALL, then $Q_LARGE waiting), enter at $Q_LARGE"
flush; mature_event
# Fans wait, as most do during a sale: 100 admissions a second, so a
# reply's eta comes from the measured admission rate.
expect OK TQ.CONFIG ev RATE 100 BURST 100
position_rows() { # from to: fans from..to-1 join, then random fans of all <to> are asked about
  local from=$1 to=$2 mid=$(($2 / 2)) p
  fill "$from" $((to - 1)) TQ.ENQUEUE ev "u:#" "t:@" DEDUPE "d:#" TTL "$TTL"
  expect "$to" XLEN "tq:{ev}:queue"
  check_position "$(tok12 "$mid")" $((mid + 1))
  check_position "$(tok12 $((to - 1)))" "$to"
  for p in "${MODES[@]}"; do
    bench "TQ.POSITION @$to" tq.position "$p" "$to" TQ.POSITION ev "t:__rand_int__"
  done
}
position_rows 0 "$Q_SMALL"
position_rows "$Q_SMALL" "$Q_LARGE"

# TQ.ENTER admits only fans within the bucket: with RATE 1000000 and BURST
# 1000000000 the front fan is always within it; t:0, t:1, ... enter in order.
expect OK TQ.CONFIG ev RATE 1000000 BURST 1000000000
sleep 0.5
# The first half with no event log, the second with it on (each
# admission then also appends an `admitted` entry to tq:{ev}:events).
half=$((N_ENTER / 2))
gen_pipe "$WORK/enter.resp" 0 $((half - 1)) TQ.ENTER ev "t:@"
pipe_row "TQ.ENTER @$Q_LARGE" tq.enter "$WORK/enter.resp"
expect OK TQ.CONFIG ev EVENTS "$EVENTS_LOG"
gen_pipe "$WORK/enter.resp" "$half" $((N_ENTER - 1)) TQ.ENTER ev "t:@"
pipe_row "TQ.ENTER (EVENTS on)" tq.enter "$WORK/enter.resp"
expect $((Q_LARGE - N_ENTER)) XLEN "tq:{ev}:queue"
expect $((N_ENTER - half)) XLEN "tq:{ev}:events"
# The floor of an admission's stream part: XDEL of a plain stream's front
# entries, in order, at the same length.
flush
fill 0 $((Q_LARGE - 1)) XADD "bare:{ev}:queue" "1-#" token "t:@" user "u:#"
gen_pipe "$WORK/enter.resp" 0 $((N_ENTER - 1)) XDEL "bare:{ev}:queue" "1-#"
pipe_row "XDEL @$Q_LARGE (bare)" xdel "$WORK/enter.resp"
rm -f "$WORK/enter.resp"

echo "== memory: used_memory per waiting entry (own user and DEDUPE id), per held seat"
declare -A MEM
used_memory() { info_field memory used_memory; }
mem_usage() { local v; v="$(rcli MEMORY USAGE "$1" SAMPLES 0)"; num_ok "$v" && echo "$v" || echo 0; }
per() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.0f", a / n }'; }
# mem_enqueue SIDE QUEUE-KEY OTHER-KEY ARG...: fills MEM_SMALL then MEM_LARGE
# entries; MEM[SIDE|n|total|queue|other] bytes per entry, MEM[SIDE|used] at MEM_LARGE.
mem_enqueue() {
  local side=$1 queue=$2 other=$3 before after n from=0
  shift 3
  before="$(used_memory)"
  for n in "$MEM_SMALL" "$MEM_LARGE"; do
    fill "$from" $((n - 1)) "$@"
    from=$n
    after="$(used_memory)"
    MEM[$side|$n|total]=$(per $((after - before)) "$n")
    MEM[$side|$n|queue]=$(per "$(mem_usage "$queue")" "$n")
    if [ -n "$other" ]; then
      MEM[$side|$n|other]=$(per "$(mem_usage "$other")" "$n")
    else # the dedupe keys: all that is not the stream
      MEM[$side|$n|other]=$((MEM[$side|$n|total] - MEM[$side|$n|queue]))
    fi
    MEM[$side|used]=$after
    printf '  %-12s %8s entries: %5s B each (stream %s, %s %s)\n' "$side" "$n" "${MEM[$side|$n|total]}" \
      "${MEM[$side|$n|queue]}" "${other:-dedupe keys}" "${MEM[$side|$n|other]}"
  done
}
# MEM[SHAPE:SIDE|...]: one set of rows per shape of names.
for shape in $MEM_SHAPES; do
  case $shape in
    uuid) M_USER="user-#" M_TOKEN="7d444840-9dc0-11d1-b245-@" M_DEDUPE="3f2504e0-4f89-11d3-9a0c-@" ;;
    short) M_USER="u:#" M_TOKEN="t:#" M_DEDUPE="d:#" ;;
    *) echo "bench: unknown name shape '$shape' in BENCH_MEM_SHAPES (short, uuid)" >&2; exit 1 ;;
  esac
  echo "  names: $shape"
  flush; mature_event
  mem_enqueue "$shape:tq" "tq:{ev}:queue" "tq:{ev}:state" TQ.ENQUEUE ev "$M_USER" "$M_TOKEN" DEDUPE "$M_DEDUPE" TTL "$TTL"
  MEM[$shape:tq|keys]="$(rcli DBSIZE)"
  flush
  mem_enqueue "$shape:lua" "lua:{ev}:queue" "" EVALSHA "$SHA_ENQ" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:$M_DEDUPE" "$M_TOKEN" "$M_USER" "$TTL"
done
mem_hold() { # prints bytes per held seat
  local before after
  before="$(used_memory)"
  fill 0 $((MEM_HOLDS - 1)) "$@"
  after="$(used_memory)"
  per $((after - before)) "$MEM_HOLDS"
}
flush; mature_event
MEM[tq|hold]="$(mem_hold TQ.HOLD ev "s:#" "u:#")"
flush; lua_inventory
MEM[lua|hold]="$(mem_hold EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s:#" "s:#" "u:#")"
printf '  held seat: tq %s B, hold.lua %s B\n' "${MEM[tq|hold]}" "${MEM[lua|hold]}"
flush

echo "== replication: bytes on the replication stream (master_repl_offset), a replica attached"
declare -A REPL
start_replica
# repl_row LABEL COUNT ARG...: COUNT commands (gen_cmds 0..COUNT-1);
# REPL[LABEL] = bytes per call, REPL[LABEL|total] = bytes in all.
repl_row() {
  local label=$1 count=$2 before after
  shift 2
  before="$(info_field replication master_repl_offset)"
  fill 0 $((count - 1)) "$@"
  after="$(info_field replication master_repl_offset)"
  REPL[$label|total]=$((after - before))
  REPL[$label]=$(awk -v a="$before" -v b="$after" -v n="$count" 'BEGIN { printf "%.1f", (b - a) / n }')
  printf '  %-28s %8s bytes per call (%s in all)\n' "$label" "${REPL[$label]}" "${REPL[$label|total]}"
}
flush; mature_event; lua_inventory
repl_row "TQ.ENQUEUE" "$N_REPL" TQ.ENQUEUE ev "u:#" "t:#" DEDUPE "d:#" TTL "$TTL"
repl_row "XADD" "$N_REPL" XADD "bare:{ev}:queue" '*' token "t:#" user "u:#"
repl_row "enqueue.lua" "$N_REPL" EVALSHA "$SHA_ENQ" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:d:#" "t:#" "u:#" "$TTL"
# Polls of random fans among the N_REPL who just joined and wait.
before="$(info_field replication master_repl_offset)"
pipe_in < <(GEN_RANDOM="$N_REPL" gen_cmds 0 $((N_POLLS - 1)) TQ.POSITION ev "t:#")
[ "$PIPE_ERRORS" = 0 ] || { echo "bench: TQ.POSITION polls failed: $PIPE_FIRST_ERROR" >&2; exit 1; }
after="$(info_field replication master_repl_offset)"
REPL[polls|total]=$((after - before))
REPL[polls]=$(awk -v a="$before" -v b="$after" -v n="$N_POLLS" 'BEGIN { printf "%.1f", (b - a) / n }')
printf '  %-28s %8s bytes per call (%s in all)\n' "$N_POLLS TQ.POSITION polls" "${REPL[polls]}" "${REPL[polls|total]}"
repl_row "TQ.HOLD" "$N_REPL" TQ.HOLD ev "s:#" "u:#"
repl_row "HSET" "$N_REPL" HSET "bare:{ev}:seats" "s:#" "u:#"
repl_row "hold.lua" "$N_REPL" EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s:#" "s:#" "u:#"
# The replica holds what the master holds.
expect 1 WAIT 1 5000
REPL_CHECK="the replica: XLEN tq:{ev}:queue $(redis-cli -p "$REPLICA_PORT" XLEN 'tq:{ev}:queue'), TQ.STATS $(stats_of "$REPLICA_PORT");"
REPL_CHECK="$REPL_CHECK the master: XLEN $(rcli XLEN 'tq:{ev}:queue'), TQ.STATS $(stats_of "$PORT")"
echo "  $REPL_CHECK"
stop_replica

echo "== stalls"
declare -A STALL
flush; mature_event
fill 0 $((N_TRIM - 1)) TQ.ENQUEUE ev "u:#" "t:#" DEDUPE "d:#" TTL "$TTL"
sleep 1.2
expect OK CONFIG RESETSTAT
STALL[trim|removed]="$(rcli TQ.TRIM ev MAXAGE 1)"
STALL[trim|us]="$(cmd_usec tq.trim)"
STALL[trim|left]="$(rcli XLEN 'tq:{ev}:queue')"
flush
fill 0 $((N_TRIM - 1)) XADD "bare:{ev}:queue" '*' token "t:#" user "u:#"
expect OK CONFIG RESETSTAT
STALL[xtrim|removed]="$(rcli XTRIM 'bare:{ev}:queue' MAXLEN 0)"
STALL[xtrim|us]="$(cmd_usec xtrim)"
printf '  TQ.TRIM MAXAGE: %s removed in %s us (%s left); XTRIM: %s removed in %s us\n' "${STALL[trim|removed]}" \
  "${STALL[trim|us]}" "${STALL[trim|left]}" "${STALL[xtrim|removed]}" "${STALL[xtrim|us]}"

# Background work, each case on a fresh server (so that INFO tq's
# background_step_max_us is that case's). Watched three ways: the module's
# own longest step, Redis' latency monitor (threshold 1 ms: commands and
# the event loop's own events), and a client pinging all along
# (redis-cli --latency: the worst round trip, in ms).
probe_start() {
  expect OK CONFIG SET latency-monitor-threshold 1
  rcli LATENCY RESET >/dev/null
  expect OK CONFIG SET slowlog-log-slower-than 1000 slowlog-max-len 1024
  expect OK SLOWLOG RESET
  ${CLI_PIN[@]+"${CLI_PIN[@]}"} redis-cli -p "$PORT" --latency >"$WORK/probe.txt" 2>&1 &
  PROBE_PID=$!
  sleep 0.2
}
# probe_stop CASE: STALL[CASE|step_us|latency_ms|latency_event|ping_ms]
probe_stop() {
  local case=$1
  kill -INT "$PROBE_PID" 2>/dev/null || true
  wait "$PROBE_PID" 2>/dev/null || true
  PROBE_PID=""
  STALL[$case|ping_ms]="$(tail -n1 "$WORK/probe.txt" | awk 'NF >= 4 { print $2 }')"
  STALL[$case|step_us]="$(tq_info background_step_max_us)"
  # LATENCY LATEST: event, time, latest ms, max ms (per event).
  read -r "STALL[$case|latency_ms]" "STALL[$case|latency_event]" <<<"$(rcli LATENCY LATEST |
    awk 'NR % 4 == 1 { e = $0 } NR % 4 == 0 { if ($0 + 0 > m) { m = $0 + 0; ev = e } } END { print m + 0, (ev == "" ? "-" : ev) }')"
  # SLOWLOG (threshold 1 ms): the slowest command, with its name.
  STALL[$case|slowest]="$(rcli --json SLOWLOG GET 1024 | python3 -c '
import json, sys
entries = [e for e in json.load(sys.stdin) if e[3] and e[3][0].lower() not in ("slowlog", "config", "latency", "info")]
slow = max(entries, key=lambda e: e[2]) if entries else None
print(f"{slow[2]} ({slow[3][0]})" if slow else "none over 1000")' 2>/dev/null || echo n/a)"
  printf '  %s: background_step_max_us %s, LATENCY max %s ms (%s), slowest command %s us, worst ping %s ms\n' "$case" \
    "${STALL[$case|step_us]}" "${STALL[$case|latency_ms]}" "${STALL[$case|latency_event]}" "${STALL[$case|slowest]}" "${STALL[$case|ping_ms]:-n/a}"
}
# wait_xlen WANT SECONDS: polls XLEN of the queue until it is WANT or less;
# prints the seconds it took (or "timeout").
wait_xlen() {
  local want=$1 limit=$2 t0 len
  t0=$(date +%s%N)
  while :; do
    len="$(rcli XLEN 'tq:{ev}:queue')"
    if [ "$len" -le "$want" ]; then break; fi
    if [ $(( ($(date +%s%N) - t0) / 1000000000 )) -ge "$limit" ]; then echo "timeout($len left)"; return; fi
    sleep 0.05
  done
  awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'
}

# All N_LAPSE fans stop polling together: joined with a one-year heartbeat,
# then TQ.CONFIG HEARTBEAT 1 makes every one of them abandoned at once.
# The TQ.LEAVE right after it is the first command that meets them; the
# rest is the module's background removal, until XLEN is 0.
restart_server
mature_event
fill 0 $((N_LAPSE - 1)) TQ.ENQUEUE ev "u:#" "a:#" DEDUPE "d:#" TTL "$TTL"
sleep 1.2
probe_start
expect OK CONFIG RESETSTAT
printf 'TQ.CONFIG ev HEARTBEAT 1\nTQ.LEAVE ev nobody\n' | rcli >/dev/null
STALL[lapse|drain_s]="$(wait_xlen 0 60)"
probe_stop lapse
STALL[lapse|cmd_us]="$(max2 "$(cmd_usec tq.config)" "$(cmd_usec tq.leave)")"

# Every other one of 2 x N_LAPSE fans stops polling: the abandoned entries
# are scattered among live ones. Polls store a heartbeat only every tenth
# of the period, so the fans join with HEARTBEAT 60, the even ones poll
# 6.5 s later, and HEARTBEAT 6 then makes the odd ones abandoned; the even
# ones have about 5.5 s before they lapse too, and must all be waiting when
# the odd ones are gone.
restart_server
mature_event
expect OK TQ.CONFIG ev HEARTBEAT 60
fill 0 $((2 * N_LAPSE - 1)) TQ.ENQUEUE ev "u:#" "b:#"
sleep 6.5
pipe_in < <(LC_ALL=C awk -v n="$N_LAPSE" 'BEGIN { ORS = ""; for (i = 0; i < 2 * n; i += 2) { t = "b:" i
  print "*3\r\n$11\r\nTQ.POSITION\r\n$2\r\nev\r\n$" length(t) "\r\n" t "\r\n" } }')
[ "$PIPE_ERRORS" = 0 ] || { echo "bench: polls failed: $PIPE_FIRST_ERROR" >&2; exit 1; }
probe_start
expect OK CONFIG RESETSTAT
printf 'TQ.CONFIG ev HEARTBEAT 6\nTQ.LEAVE ev nobody\n' | rcli >/dev/null
STALL[scattered|drain_s]="$(wait_xlen "$N_LAPSE" 30)"
probe_stop scattered
STALL[scattered|cmd_us]="$(max2 "$(cmd_usec tq.config)" "$(cmd_usec tq.leave)")"
STALL[scattered|left]="$(rcli XLEN 'tq:{ev}:queue')"

# N_EXPIRE holds with a 1 s TTL, taken within a few ms, expire together.
# The module removes an expired hold from storage within 1 s (contract):
# nothing is sent for 2.5 s (a read would count the expired holds itself),
# then TQ.STATS must count them all expired.
restart_server
mature_event
probe_start
fill 0 $((N_EXPIRE - 1)) TQ.HOLD ev "x:#" "u:#" TTL 1
state_before="$(mem_usage 'tq:{ev}:state')"
sleep 2.5
STALL[holds|drain_s]="<= 2.5 (MEMORY USAGE of the state $state_before -> $(mem_usage 'tq:{ev}:state') B)"
STALL[holds|expired]="$(stats_field "$PORT" holds_expired)"
probe_stop holds
expect 100000000 TQ.INVENTORY ev

# N_PREQUEUE fans join the pre-queue of a scheduled opening (OPENS-AT an
# hour ahead), then the opening is moved to 2 s from now and happens by
# itself (the timer), while a client pings all along. Then the front fan
# and one from the middle must have their places, and the front enter.
restart_server
now_ms() { date +%s%3N; }
expect OK TQ.CONFIG show HEARTBEAT 31536000 RATE 1000 BURST 1000 OPENS-AT $(($(now_ms) + 3600000))
fill 0 $((N_PREQUEUE - 1)) TQ.ENQUEUE show "u:#" "p:#"
probe_start
expect OK CONFIG RESETSTAT
t0=$(date +%s%N)
expect OK TQ.CONFIG show OPENS-AT $(($(now_ms) + 2000))
sleep 1.9
while [ "$(stats_field "$PORT" opens_in_ms show)" != 0 ]; do sleep 0.01; done
STALL[opening|drain_s]="$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }') (set to 2 s ahead)"
sleep 0.5
probe_stop opening
STALL[opening|cmd_us]="$(cmd_usec tq.config)"
STALL[opening|left]="$(rcli XLEN 'tq:{show}:queue')"
front="$(rcli TQ.USER show u:0 | sed -n '/^position$/{n;p}')"
[ -n "$front" ] && [ "$front" -ge 1 ] || { echo "bench: no place after the opening" >&2; exit 1; }
echo "  opening: $N_PREQUEUE pre-queued, the fan who joined first is now at $front"

# --- report -------------------------------------------------------------------
mode_name() { case $1 in P1) echo "-P 1 -c $CLIENTS" ;; pipe) echo "--pipe, 1 conn" ;; *) echo "-${1/P/P } -c $CLIENTS" ;; esac; }
P="P$PIPELINE"
u() { echo "${UPC[$1]:-}"; }
# best_enqueue on|off MODE: the lowest usec/call of the LOG_REPEATS
# TQ.ENQUEUE runs with the event log on, or off.
best_enqueue() {
  local best r
  best="$(u "TQ.ENQUEUE (EVENTS $1) #1|$2")"
  for r in $(seq 2 "$LOG_REPEATS"); do
    best="$(min2 "$best" "$(u "TQ.ENQUEUE (EVENTS $1) #$r|$2")")"
  done
  echo "$best"
}
o() { echo "${OPS[$1]:-}"; }

REPORT="$WORK/report.md"
GOALS="$WORK/goals.md"
: >"$GOALS"
# goal TEXT AWK-CONDITION VALUE...: a PASS/FAIL line (a, b, ... are the values).
goal() {
  local text=$1 expr=$2 verdict=FAIL v
  shift 2
  for v in "$@"; do num_ok "$v" || { echo "- FAIL (no data): $text" >>"$GOALS"; return; }; done
  if awk -v a="${1:-0}" -v b="${2:-0}" "BEGIN { exit !($expr) }"; then verdict=PASS; fi
  echo "- $verdict: $text" >>"$GOALS"
}

{
  echo "# tq bench results"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), redis $REDIS_VERSION, tq $GIT_REV, $(nproc) CPUs; $PIN_NOTE."
  echo "redis-benchmark rows: -n $N -c $CLIENTS, unique names (two __rand_int__ draws each); pipe rows: redis-cli --pipe, one connection."
  echo "usec/call: server time per call from INFO commandstats (including what a script or the module runs inside)."
  echo
  echo "## Time and throughput"
  echo
  echo "| workload | mode | ops/s | usec/call | calls | errors |"
  echo "|---|---|---:|---:|---:|---:|"
  for key in "${ROWS[@]}"; do
    printf '| %s | %s | %s | %s | %s | %s |\n' "${key%|*}" "$(mode_name "${key##*|}")" "$(fmt0 "${OPS[$key]}")" \
      "${UPC[$key]}" "${CALLS[$key]}" "${ERRS[$key]}"
  done
  for key in "${ROWS[@]}"; do
    [ -z "${NOTE[$key]}" ] || echo "- note, $key: ${NOTE[$key]}"
  done
  echo
  echo "## TQ against the seed's scripts (same server, same run)"
  echo
  echo "Ratios are script / tq for time (how many times less server time tq takes) and tq / script"
  echo "for throughput (how many times more calls per second)."
  echo
  echo "| command | mode | tq usec | script usec | script/tq time | goal | tq ops/s | script ops/s | tq/script ops | goal |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  cmp_row() { # tq-label script-label mode time-goal ops-goal
    local k="$1|$3" s="$2|$3"
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1 vs $2" "$(mode_name "$3")" "$(u "$k")" "$(u "$s")" \
      "$(ratio "$(u "$s")" "$(u "$k")")" "${4:+>= $4}" "$(fmt0 "$(o "$k")")" "$(fmt0 "$(o "$s")")" \
      "$(ratio "$(o "$k")" "$(o "$s")")" "${5:+>= $5}"
  }
  cmp_row TQ.ENQUEUE enqueue.lua "$P" "$GOAL_ENQ_TIME" "$GOAL_ENQ_OPS"
  cmp_row TQ.ENQUEUE enqueue.lua P1 "$GOAL_ENQ_TIME" ""
  cmp_row TQ.HOLD hold.lua "$P" "$GOAL_HOLD_TIME" "$GOAL_HOLD_OPS"
  cmp_row TQ.HOLD hold.lua P1 "$GOAL_HOLD_TIME" ""
  cmp_row TQ.RELEASE release.lua pipe "" ""
  echo
  for m in "$P" P1; do
    echo "A group of 4 seats (TQ.HOLD ... WITH, all or nothing), $(mode_name "$m"): $(u "TQ.HOLD of 4 (WITH)|$m") us, $(ratio "$(u "TQ.HOLD of 4 (WITH)|$m")" "$(u "TQ.HOLD|$m")")x a single-seat TQ.HOLD (goal <= ${GOAL_GROUP_HOLD}x)."
  done
  echo
  echo "Bare commands for scale: XADD $(u "XADD (bare)|$P") us, HSET $(u "HSET (bare)|$P") us, PING $(u "PING|$P") us (-P $PIPELINE)."
  echo
  echo "## Waiting room at scale (random waiting fans, never one hot token)"
  echo
  echo "| command | mode | usec/call | ops/s | goal |"
  echo "|---|---|---:|---:|---|"
  for q in "$Q_SMALL" "$Q_LARGE"; do
    for m in "$P" P1; do
      g=""; [ "$q" = "$Q_LARGE" ] && g="<= $GOAL_POS_US us, <= ${GOAL_POS_GROWTH}x the $Q_SMALL row"
      echo "| TQ.POSITION, $q waiting | $(mode_name "$m") | $(u "TQ.POSITION @$q|$m") | $(fmt0 "$(o "TQ.POSITION @$q|$m")") | $g |"
    done
  done
  echo "| TQ.ENTER of the front fan, $Q_LARGE waiting ($N_ENTER calls) | $(mode_name pipe) | $(u "TQ.ENTER @$Q_LARGE|pipe") | $(fmt0 "$(o "TQ.ENTER @$Q_LARGE|pipe")") | <= $GOAL_ENTER_US us |"
  echo "| XDEL of a plain stream's front entry, $Q_LARGE long (bare) | $(mode_name pipe) | $(u "XDEL @$Q_LARGE (bare)|pipe") | $(fmt0 "$(o "XDEL @$Q_LARGE (bare)|pipe")") | |"
  echo
  echo "## The event log (EVENTS $EVENTS_LOG against none, same run)"
  echo
  echo "| command | mode | usec/call, log off | usec/call, log on | on/off | goal |"
  echo "|---|---|---:|---:|---:|---|"
  for m in "$P" P1; do
    echo "| TQ.ENQUEUE (a join logs nothing), best of $LOG_REPEATS | $(mode_name "$m") | $(best_enqueue off "$m") | $(best_enqueue on "$m") | $(ratio "$(best_enqueue on "$m")" "$(best_enqueue off "$m")") | <= $GOAL_LOG_ENQ |"
  done
  echo "| TQ.ENTER (an \`admitted\` entry each), $Q_LARGE waiting | $(mode_name pipe) | $(u "TQ.ENTER @$Q_LARGE|pipe") | $(u "TQ.ENTER (EVENTS on)|pipe") | $(ratio "$(u "TQ.ENTER (EVENTS on)|pipe")" "$(u "TQ.ENTER @$Q_LARGE|pipe")") | <= $GOAL_LOG_ENTER |"
  echo
  echo "## Memory"
  echo
  echo "used_memory delta per waiting entry (each with its own user and DEDUPE id), and the MEMORY USAGE"
  echo "of each structure per entry; the script's stream entry + dedupe key beside it. Names: short are"
  echo "tokens t:<n>, DEDUPE ids d:<n>, users u:<n> (as the state-design issue measured); uuid are tokens and"
  echo "DEDUPE ids of 36 bytes (UUID-shaped) and users user-<n>, as a gateway's would be."
  echo
  echo "| names | entries | tq total B | tq:{ev}:queue (stream) | tq:{ev}:state | script total B | script stream | script dedupe keys | tq/script |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for shape in $MEM_SHAPES; do
    for n in "$MEM_SMALL" "$MEM_LARGE"; do
      t="$shape:tq|$n" l="$shape:lua|$n"
      echo "| $shape | $n | ${MEM[$t|total]} | ${MEM[$t|queue]} | ${MEM[$t|other]} | ${MEM[$l|total]} | ${MEM[$l|queue]} | ${MEM[$l|other]} | $(ratio "${MEM[$t|total]}" "${MEM[$l|total]}") |"
    done
  done
  echo
  for shape in $MEM_SHAPES; do
    echo "With $MEM_LARGE waiting fans ($shape names): used_memory $(awk -v b="${MEM[$shape:tq|used]}" 'BEGIN { printf "%.0f MB", b / 1048576 }') with tq"
    echo "($(awk -v b="${MEM[$shape:lua|used]}" 'BEGIN { printf "%.0f MB", b / 1048576 }') with the script), $((MEM[$shape:tq|keys])) keys."
  done
  echo "A held seat: tq ${MEM[tq|hold]} B, hold.lua ${MEM[lua|hold]} B (used_memory delta / $MEM_HOLDS)."
  echo
  echo "## Replication"
  echo
  echo "Bytes the master puts on the replication stream (master_repl_offset delta, a replica attached)"
  echo "per call, $N_REPL calls each."
  echo
  echo "| command | bytes per call | against | bytes per call | ratio | goal |"
  echo "|---|---:|---|---:|---:|---|"
  echo "| TQ.ENQUEUE (DEDUPE, TTL) | ${REPL[TQ.ENQUEUE]} | XADD of the same fields | ${REPL[XADD]} | $(ratio "${REPL[TQ.ENQUEUE]}" "${REPL[XADD]}") | <= $GOAL_REPL_ENQ |"
  echo "| TQ.ENQUEUE (DEDUPE, TTL) | ${REPL[TQ.ENQUEUE]} | enqueue.lua | ${REPL[enqueue.lua]} | $(ratio "${REPL[TQ.ENQUEUE]}" "${REPL[enqueue.lua]}") | |"
  echo "| TQ.HOLD | ${REPL[TQ.HOLD]} | HSET of the seat | ${REPL[HSET]} | $(ratio "${REPL[TQ.HOLD]}" "${REPL[HSET]}") | <= $GOAL_REPL_HOLD |"
  echo "| TQ.HOLD | ${REPL[TQ.HOLD]} | hold.lua | ${REPL[hold.lua]} | $(ratio "${REPL[TQ.HOLD]}" "${REPL[hold.lua]}") | |"
  echo "| $N_POLLS TQ.POSITION polls of waiting fans | ${REPL[polls]} (${REPL[polls|total]} in all) | | | | <= $GOAL_POLL_B per poll |"
  echo
  echo "$REPL_CHECK"
  echo
  echo "## Stalls"
  echo
  echo "| what | removed | one command's usec | slowest command, us (SLOWLOG) | longest background step (us) | LATENCY max (ms) | worst ping (ms) | done after (s) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  echo "| TQ.TRIM MAXAGE, $N_TRIM entries, one call | ${STALL[trim|removed]} (${STALL[trim|left]} left) | ${STALL[trim|us]} | | | | | |"
  echo "| XTRIM of as many stream entries | ${STALL[xtrim|removed]} | ${STALL[xtrim|us]} | | | | | |"
  bg_row() { # case label removed
    echo "| $2 | $3 | ${STALL[$1|cmd_us]:-} | ${STALL[$1|slowest]} | ${STALL[$1|step_us]} | ${STALL[$1|latency_ms]} (${STALL[$1|latency_event]}) | ${STALL[$1|ping_ms]:-n/a} | ${STALL[$1|drain_s]} |"
  }
  bg_row lapse "$N_LAPSE heartbeats lapse together (TQ.CONFIG HEARTBEAT, then TQ.LEAVE)" "$N_LAPSE"
  bg_row scattered "$N_LAPSE of $((2 * N_LAPSE)) lapse, scattered among live ones" "$N_LAPSE (${STALL[scattered|left]} left, want $N_LAPSE)"
  bg_row holds "$N_EXPIRE holds expire together" "${STALL[holds|expired]}"
  bg_row opening "a scheduled opening of $N_PREQUEUE pre-queued fans (by itself, no command)" "${STALL[opening|left]} waiting, first joiner at $front"
  echo
  echo "\"one command's usec\": INFO commandstats (for the lapse rows the slower of the TQ.CONFIG that"
  echo "lowered the heartbeat and the TQ.LEAVE right after it); SLOWLOG: the slowest command of the case"
  echo "(threshold 1 ms); \"longest background step\": INFO tq"
  echo "background_step_max_us on a fresh server; LATENCY: the latency monitor at 1 ms; worst ping:"
  echo "redis-cli --latency all along (a client's view, scheduling noise included); \"done after\": until the queue (XLEN) is down, or"
  echo "TQ.STATS counts every hold expired."
  echo
  echo "$LAYOUT_NOTE"
  echo
  echo "## Goals"
  echo
} >"$REPORT"

worst_time_ratio() { # tq-label script-label: the smaller script/tq time ratio of the two modes
  min2 "$(ratio "$(u "$2|$P")" "$(u "$1|$P")")" "$(ratio "$(u "$2|P1")" "$(u "$1|P1")")"
}
r="$(worst_time_ratio TQ.ENQUEUE enqueue.lua)"
goal "TQ.ENQUEUE (DEDUPE, TTL) takes >= ${GOAL_ENQ_TIME}x less server time than enqueue.lua (worse mode: ${r}x)" "a >= $GOAL_ENQ_TIME" "$r"
r="$(ratio "$(o "TQ.ENQUEUE|$P")" "$(o "enqueue.lua|$P")")"
goal "TQ.ENQUEUE throughput >= ${GOAL_ENQ_OPS}x enqueue.lua's at -P $PIPELINE (${r}x)" "a >= $GOAL_ENQ_OPS" "$r"
r="$(worst_time_ratio TQ.HOLD hold.lua)"
goal "TQ.HOLD takes >= ${GOAL_HOLD_TIME}x less server time than hold.lua (worse mode: ${r}x)" "a >= $GOAL_HOLD_TIME" "$r"
g="$(max2 "$(ratio "$(u "TQ.HOLD of 4 (WITH)|$P")" "$(u "TQ.HOLD|$P")")" \
  "$(ratio "$(u "TQ.HOLD of 4 (WITH)|P1")" "$(u "TQ.HOLD|P1")")")"
goal "TQ.HOLD of 4 seats <= ${GOAL_GROUP_HOLD}x a single-seat hold's server time (worse mode: ${g}x)" "a <= $GOAL_GROUP_HOLD" "$g"
r="$(ratio "$(o "TQ.HOLD|$P")" "$(o "hold.lua|$P")")"
goal "TQ.HOLD throughput >= ${GOAL_HOLD_OPS}x hold.lua's at -P $PIPELINE (${r}x)" "a >= $GOAL_HOLD_OPS" "$r"
pl="$(max2 "$(u "TQ.POSITION @$Q_LARGE|$P")" "$(u "TQ.POSITION @$Q_LARGE|P1")")"
goal "TQ.POSITION of random fans at $Q_LARGE waiting <= $GOAL_POS_US us (worse mode: $pl us)" "a <= $GOAL_POS_US" "$pl"
g="$(max2 "$(ratio "$(u "TQ.POSITION @$Q_LARGE|$P")" "$(u "TQ.POSITION @$Q_SMALL|$P")")" \
  "$(ratio "$(u "TQ.POSITION @$Q_LARGE|P1")" "$(u "TQ.POSITION @$Q_SMALL|P1")")")"
goal "TQ.POSITION at $Q_LARGE <= ${GOAL_POS_GROWTH}x its cost at $Q_SMALL (worse mode: ${g}x)" "a <= $GOAL_POS_GROWTH" "$g"
e="$(u "TQ.ENTER @$Q_LARGE|pipe")"
goal "TQ.ENTER at $Q_LARGE waiting <= $GOAL_ENTER_US us ($e us)" "a <= $GOAL_ENTER_US" "$e"
r="$(max2 "$(ratio "$(best_enqueue on "$P")" "$(best_enqueue off "$P")")" \
  "$(ratio "$(best_enqueue on P1)" "$(best_enqueue off P1)")")"
goal "TQ.ENQUEUE with EVENTS on costs no more than with it off (worse mode: ${r}x)" "a <= $GOAL_LOG_ENQ" "$r"
r="$(ratio "$(u "TQ.ENTER (EVENTS on)|pipe")" "$e")"
goal "TQ.ENTER with EVENTS on <= ${GOAL_LOG_ENTER}x with it off (${r}x)" "a <= $GOAL_LOG_ENTER" "$r"
for shape in $MEM_SHAPES; do
  m="$(max2 "${MEM[$shape:tq|$MEM_SMALL|total]}" "${MEM[$shape:tq|$MEM_LARGE|total]}")"
  if [ "$shape" = short ]; then
    goal "used_memory per waiting entry <= $GOAL_MEM_B B, with the issue's short names (worse of $MEM_SMALL and $MEM_LARGE: $m B)" "a <= $GOAL_MEM_B" "$m"
  else
    echo "- (no goal) used_memory per waiting entry with $shape names: $m B (the script: $(max2 "${MEM[$shape:lua|$MEM_SMALL|total]}" "${MEM[$shape:lua|$MEM_LARGE|total]}") B)" >>"$GOALS"
  fi
done
r="$(ratio "${REPL[TQ.ENQUEUE]}" "${REPL[XADD]}")"
goal "replication bytes per TQ.ENQUEUE <= ${GOAL_REPL_ENQ}x an XADD's (${r}x)" "a <= $GOAL_REPL_ENQ" "$r"
r="$(ratio "${REPL[TQ.HOLD]}" "${REPL[HSET]}")"
goal "replication bytes per TQ.HOLD <= ${GOAL_REPL_HOLD}x an HSET's (${r}x)" "a <= $GOAL_REPL_HOLD" "$r"
goal "$N_POLLS TQ.POSITION polls propagate (almost) nothing (${REPL[polls|total]} bytes)" "a <= $GOAL_POLL_B" "${REPL[polls]}"
tm="$(awk -v u="${STALL[trim|us]}" 'BEGIN { printf "%.1f", u / 1000 }')"
goal "TQ.TRIM of $N_TRIM entries <= $GOAL_TRIM_MS ms in one call ($tm ms; XTRIM: $(awk -v u="${STALL[xtrim|us]}" 'BEGIN { printf "%.2f", u / 1000 }') ms)" \
  "a <= $GOAL_TRIM_MS && b == $N_TRIM" "$tm" "${STALL[trim|removed]}"
for c in lapse scattered holds opening; do
  s="${STALL[$c|step_us]}"
  goal "$c: longest background step <= $GOAL_STEP_MS ms ($s us)" "a <= $GOAL_STEP_MS * 1000" "$s"
  l="${STALL[$c|latency_ms]}"
  goal "$c: the latency monitor sees nothing > $GOAL_STEP_MS ms ($l ms, ${STALL[$c|latency_event]}; worst ping ${STALL[$c|ping_ms]:-n/a} ms)" "a <= $GOAL_STEP_MS" "$l"
done
goal "the scattered lapse removed exactly the $N_LAPSE abandoned fans (${STALL[scattered|left]} still waiting)" "a == $N_LAPSE" "${STALL[scattered|left]}"
cat "$GOALS" >>"$REPORT"

# Warnings the servers logged while they ran (module errors, background timer
# failures...): there should be none. Start-up, shutdown and the replica's
# connection are logged at the same level and left out.
server_warnings() {
  awk 'FNR == 1 { up = 0 } /Ready to accept connections/ { up = 1; next } /User requested shutdown/ { up = 0 }
    up && / # / && !/[Rr]eplica|MASTER|[Mm]aster|rdb transfer|RDB/ { f = FILENAME; sub(/.*\//, "", f); print f ": " $0 }' \
    "$WORK"/redis.*.log "$WORK"/replica.log 2>/dev/null
}
WARNINGS="$(server_warnings | wc -l)"
if [ "${WARNINGS:-0}" != 0 ]; then
  {
    echo "- server logs: $WARNINGS warning lines after start-up, e.g.:"
    server_warnings | head -n 5 | sed 's/^/    /'
  } >>"$REPORT"
else
  echo "- server logs: no warnings" >>"$REPORT"
fi
echo >>"$REPORT"
echo "Bench took $(($(date +%s) - START_TS)) s." >>"$REPORT"

echo
cat "$REPORT"
mkdir -p "$RESULTS"
cp "$REPORT" "$RESULTS/latest.md"
echo
echo "saved to ${RESULTS#"$ROOT"/}/latest.md"
