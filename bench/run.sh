#!/usr/bin/env bash
# tq benchmark: TQ commands next to the Lua scripts they replace and the
# bare Redis commands underneath. `make bench` runs it; see bench/README.md.
#
# Starts its own redis-server with the module on a free loopback port (no
# persistence), pinned to CPU 0, with the load generators on CPU 1. Every row
# resets INFO commandstats first and reads usec_per_call after, so server
# cost and client-side throughput come from the same run.
#
# Environment knobs (defaults in brackets):
#   BENCH_N        requests per redis-benchmark row               [600000]
#   BENCH_PIPE_N   commands per redis-cli --pipe row               [200000]
#   BENCH_MEM_N    entries / holds per memory measurement          [100000]
#   BENCH_Q_SMALL  queue length for the small TQ.POSITION row      [5000]
#   BENCH_Q_LARGE  queue length for the large TQ.POSITION row      [500000]
#   BENCH_REAP_N   entries joined for the abandonment rows         [100000]
#   TQ_MODULE      module to load          [target/release/libtq.so]
#   TQ_SERVER      server binary           [redis-server]
set -euo pipefail

# ROOT, BENCH, MODULE, SERVER_BIN; gen_pipe, mature_event_commands.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${BENCH_N:-600000}"
N_PIPE="${BENCH_PIPE_N:-200000}"
N_MEM="${BENCH_MEM_N:-100000}"
Q_SMALL="${BENCH_Q_SMALL:-5000}"
Q_LARGE="${BENCH_Q_LARGE:-500000}"
N_REAP="${BENCH_REAP_N:-100000}"
CLIENTS=50
# redis-benchmark draws each __rand_int__ independently from 0..RANGE-1.
# One draw from 1e9 values repeats within a 200k-request run (birthday
# bound: ~20 collisions), and any error reply (DUPLICATE, SEAT_UNAVAILABLE)
# makes redis-benchmark stop. So unique names use two draws: 1e18 values.
RANGE=1000000000
UNIQ="__rand_int__-__rand_int__"
RESULTS="$BENCH/results"

for tool in "$SERVER_BIN" redis-cli redis-benchmark awk; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps installs it)" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "bench: $MODULE missing: run cargo build --release first" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tq-bench.XXXXXX")"
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
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
  PIN_NOTE="server on CPU 0, load generator on CPU 1 (taskset)"
fi
cli_pin() { ${CLI_PIN[@]+"${CLI_PIN[@]}"} "$@"; }

# --- server -------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() {
  local attempt p
  for attempt in $(seq 1 20); do
    p=$((20000 + RANDOM % 30000))
    port_in_use "$p" && continue
    PORT=$p
    # Started directly (not through a function or subshell) so that $! is
    # the server itself: taskset execs it, and the EXIT trap can kill it.
    ${SRV_PIN[@]+"${SRV_PIN[@]}"} "$SERVER_BIN" --port "$PORT" --bind 127.0.0.1 --save '' \
      --appendonly no --dir "$WORK" --logfile "$WORK/redis.log" --loadmodule "$MODULE" \
      </dev/null >/dev/null 2>&1 &
    SERVER_PID=$!
    local i
    for i in $(seq 1 100); do
      if redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG; then return 0; fi
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  done
  echo "bench: could not start $SERVER_BIN with $MODULE; log:" >&2
  cat "$WORK/redis.log" >&2 || true
  exit 1
}

rcli() { redis-cli -p "$PORT" "$@" | tr -d '\r'; }

# Must answer exactly `want` (for set-up commands whose failure would make
# every later figure meaningless).
expect() {
  local want=$1; shift
  local got
  got="$(rcli "$@")"
  if [ "$got" != "$want" ]; then
    echo "bench: '$*' answered '$got', expected '$want'" >&2
    exit 1
  fi
}

info_field() { rcli INFO "$1" | awk -F: -v f="$2" '$1 == f { print $2 }'; }

# "calls usec usec_per_call rejected failed" of one command since RESETSTAT.
cmdstat() {
  local line
  line="$(rcli INFO commandstats | awk -F'[:,=]' -v n="cmdstat_$1" '$1 == n { print $3, $5, $7, $9, $11 }')"
  echo "${line:-0 0 0 0 0}"
}

flush() { expect OK FLUSHALL; }

# --- RESP pipe files ----------------------------------------------------------

# pipe_file FILE: sends it with redis-cli --pipe; sets PIPE_SECS, PIPE_ERRORS
# and PIPE_REPLIES.
pipe_file() {
  local out t0 t1
  t0=$(date +%s%N)
  out="$(cli_pin redis-cli -p "$PORT" --pipe <"$1" 2>&1)" || true
  t1=$(date +%s%N)
  PIPE_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", (b - a) / 1e9 }')
  PIPE_ERRORS=$(printf '%s\n' "$out" | sed -n 's/^errors: \([0-9]*\), replies: \([0-9]*\).*/\1/p' | tail -n1)
  PIPE_REPLIES=$(printf '%s\n' "$out" | sed -n 's/^errors: \([0-9]*\), replies: \([0-9]*\).*/\2/p' | tail -n1)
  PIPE_ERRORS=${PIPE_ERRORS:-unknown}
  PIPE_REPLIES=${PIPE_REPLIES:-0}
  PIPE_FIRST_ERROR="$(printf '%s\n' "$out" | grep -v -e '^All data transferred' -e '^Last reply' -e '^errors:' | head -n1 || true)"
}

# fill FIRST LAST ARG...: a set-up pipe that must not fail.
fill() {
  local first=$1 last=$2
  shift 2
  gen_pipe "$WORK/fill.resp" "$first" "$last" "$@"
  pipe_file "$WORK/fill.resp"
  if [ "$PIPE_ERRORS" != 0 ]; then
    echo "bench: set-up '$*' for $first..$last: $PIPE_ERRORS errors (first: $PIPE_FIRST_ERROR)" >&2
    exit 1
  fi
  rm -f "$WORK/fill.resp"
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
  printf '  %-34s %12s ops/s %10s us/call  calls=%s errors=%s %s\n' "$1" "$2" "$3" "$4" "$5" "$6"
}

# bench LABEL STAT PIPELINE CMD...: one redis-benchmark row.
bench() {
  local label=$1 stat=$2 p=$3
  shift 3
  local key="$label|P$p"
  expect OK CONFIG RESETSTAT
  local out rps note=""
  out="$(cli_pin redis-benchmark -p "$PORT" -n "$N" -c "$CLIENTS" -P "$p" -r "$RANGE" --csv "$@" 2>"$WORK/bench.err")" || true
  rps="$(printf '%s\n' "$out" | tail -n1 | awk -F'","' 'NF > 1 { print $2 }')"
  if [ -z "$rps" ]; then
    rps="n/a"
    note="redis-benchmark stopped: $(head -c 200 "$WORK/bench.err" | tr '\n' ' ')"
  fi
  local calls usec upc rej fail
  read -r calls usec upc rej fail <<<"$(cmdstat "$stat")"
  record "$key" "$rps" "$upc" "$calls" $((rej + fail)) "$note"
}

# pipe_row LABEL STAT FILE: one redis-cli --pipe row (throughput = commands /
# wall time of the whole pipe, one connection).
pipe_row() {
  local label=$1 stat=$2 file=$3
  local key="$label|pipe"
  expect OK CONFIG RESETSTAT
  pipe_file "$file"
  local calls usec upc rej fail note=""
  read -r calls usec upc rej fail <<<"$(cmdstat "$stat")"
  local ops
  ops=$(awk -v n="$PIPE_REPLIES" -v s="$PIPE_SECS" 'BEGIN { printf "%.2f", (s > 0 ? n / s : 0) }')
  [ "$PIPE_ERRORS" = 0 ] || note="first error: $PIPE_FIRST_ERROR"
  record "$key" "$ops" "$upc" "$calls" "$PIPE_ERRORS" "$note"
}

num_ok() { [[ "${1:-}" =~ ^[0-9.]+$ ]] && awk -v x="$1" 'BEGIN { exit !(x > 0) }'; }
ratio() { # a / b with 2 decimals, or "-"
  if num_ok "${1:-}" && num_ok "${2:-}"; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo "-"; fi
}

# --- go -----------------------------------------------------------------------
START_TS=$(date +%s)
start_server
REDIS_VERSION="$(info_field server redis_version)"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then GIT_REV="$GIT_REV+dirty"; fi
echo "tq bench: redis $REDIS_VERSION on port $PORT, module $MODULE ($GIT_REV)"
echo "          $PIN_NOTE; redis-benchmark -n $N -c $CLIENTS; pipe rows $N_PIPE commands"

SHA_ENQ="$(rcli SCRIPT LOAD "$(cat "$BENCH/enqueue.lua")")"
SHA_HOLD="$(rcli SCRIPT LOAD "$(cat "$BENCH/hold.lua")")"
SHA_REL="$(rcli SCRIPT LOAD "$(cat "$BENCH/release.lua")")"
for sha in "$SHA_ENQ" "$SHA_HOLD" "$SHA_REL"; do
  [[ "$sha" =~ ^[0-9a-f]{40}$ ]] || { echo "bench: SCRIPT LOAD failed: $sha" >&2; exit 1; }
done

# The tq event every tq row runs on (see mature_event_commands in lib.sh).
mature_event() {
  mature_event_commands | rcli >/dev/null
  expect 100000000 TQ.INVENTORY ev
  expect 0 XLEN "tq:{ev}:queue"
  local fields
  fields="$(rcli GET "tq:{ev}:meta" | wc -w)"
  [ "$fields" = "$MATURE_META_FIELDS" ] || {
    echo "bench: the mature event's meta has $fields fields, expected $MATURE_META_FIELDS" >&2
    exit 1
  }
}

echo "== floor"
for p in 16 1; do
  bench "PING" ping "$p" PING
done

echo "== enqueue"
for p in 16 1; do
  flush; mature_event
  bench "TQ.ENQUEUE" tq.enqueue "$p" TQ.ENQUEUE ev "user:__rand_int__" "tok:$UNIQ"
  flush
  bench "enqueue.lua (EVALSHA)" evalsha "$p" EVALSHA "$SHA_ENQ" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:$UNIQ" "tok:$UNIQ" "user:__rand_int__"
  flush
  bench "XADD (bare)" xadd "$p" XADD "bare:{ev}:queue" '*' token "tok:$UNIQ" user "user:__rand_int__"
done

echo "== hold"
for p in 16 1; do
  flush; mature_event
  bench "TQ.HOLD" tq.hold "$p" TQ.HOLD ev "seat:$UNIQ" "user:__rand_int__"
  flush; expect OK SET "lua:{ev}:inventory" 100000000
  bench "hold.lua (EVALSHA)" evalsha "$p" EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:$UNIQ" "seat:$UNIQ" "user:__rand_int__"
  flush
  bench "HSET (bare)" hset "$p" HSET "bare:{ev}:seats" "seat:$UNIQ" HELD
  flush
  bench "SET (bare)" set "$p" SET "bare:{ev}:hold:$UNIQ" "user:__rand_int__"
done

# The writes TQ.ENQUEUE and TQ.HOLD make, each as a bare command: their
# summed usec_per_call is what those writes cost through Redis' own
# commands, whoever issues them. Sent through redis-cli --pipe so that
# scores rise with each call, as tq's ids and deadlines do (random scores
# would land all over a large set and cost more).
echo "== the writes themselves (bare, redis-cli --pipe, $N_PIPE each)"
last=$((N_PIPE - 1))
floor_pipe() { # LABEL STAT ARG...
  local label=$1 stat=$2
  shift 2
  flush
  gen_pipe "$WORK/floor.resp" 0 "$last" "$@"
  pipe_row "$label" "$stat" "$WORK/floor.resp"
  rm -f "$WORK/floor.resp"
}
floor_pipe "XADD (bare)" xadd XADD "bare:{ev}:queue" '*' token "t#" user "u#"
floor_pipe "ZADD (bare, one large set)" zadd ZADD "bare:{ev}:order" "#" "t#"
floor_pipe "ZADD (bare, a set per user)" zadd ZADD "bare:{ev}:user:u#" "#" "t#"
floor_pipe "HSET (bare, one large hash)" hset HSET "bare:{ev}:tokens" "t#" "u#"
floor_pipe "SET (bare, a mature meta text)" set SET "bare:{ev}:meta" \
  "inventory=# sold=1 admitted=1 duplicates=1 rate=1000000 burst=1000000000 heartbeat=31536000 hold_ttl=600 dedupe_ttl=300 bucket_milli=999999000000 bucket_at=1795492535855"

echo "== release (redis-cli --pipe over $N_PIPE held seats)"
last=$((N_PIPE - 1))
flush; mature_event
fill 0 "$last" TQ.HOLD ev "s#" "u#"
gen_pipe "$WORK/release.resp" 0 "$last" TQ.RELEASE ev "s#"
pipe_row "TQ.RELEASE" tq.release "$WORK/release.resp"
expect 100000000 TQ.INVENTORY ev
flush; expect OK SET "lua:{ev}:inventory" 100000000
fill 0 "$last" EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#" "u#"
gen_pipe "$WORK/release.resp" 0 "$last" EVALSHA "$SHA_REL" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#"
pipe_row "release.lua (EVALSHA)" evalsha "$WORK/release.resp"
expect 100000000 GET "lua:{ev}:inventory"
flush
gen_pipe "$WORK/release.resp" 0 "$last" HSET "bare:{ev}:seats" "s#" AVAILABLE
pipe_row "HSET (bare)" hset "$WORK/release.resp"
rm -f "$WORK/release.resp"

check_position() { # token expected-position (reply: position, N, user_position, N, ready, 0|1, ...)
  local reply
  reply="$(rcli TQ.POSITION ev "$1")"
  [ "$(sed -n 2p <<<"$reply")" = "$2" ] && [ "$(sed -n 6p <<<"$reply")" = 0 ] || {
    echo "bench: TQ.POSITION ev $1 gave '$reply', expected position $2, not ready" >&2
    exit 1
  }
}
echo "== position (queue of $Q_SMALL, then $Q_LARGE waiting)"
flush; mature_event
# The fan asked about waits, as most do during a sale: 100 admissions a
# second, so the reply's eta comes from the measured admission rate.
expect OK TQ.CONFIG ev RATE 100 BURST 100
position_rows() { # from to: fans t<from>..t<to-1> join, then the one in the middle of all <to> is asked about
  local from=$1 to=$2 mid=$(($2 / 2)) p
  fill "$from" $((to - 1)) TQ.ENQUEUE ev "u#" "t#"
  expect "$to" XLEN "tq:{ev}:queue"
  check_position "t$mid" $((mid + 1))
  for p in 16 1; do
    bench "TQ.POSITION @$to" tq.position "$p" TQ.POSITION ev "t$mid"
  done
}
position_rows 0 "$Q_SMALL"
position_rows "$Q_SMALL" "$Q_LARGE"

echo "== enter (redis-cli --pipe, $N_PIPE admissions from the front)"
flush; mature_event
fill 0 "$last" TQ.ENQUEUE ev "u#" "e#"
gen_pipe "$WORK/enter.resp" 0 "$last" TQ.ENTER ev "e#"
pipe_row "TQ.ENTER" tq.enter "$WORK/enter.resp"
rm -f "$WORK/enter.resp"
expect 0 XLEN "tq:{ev}:queue"

# A command that finds many entries abandoned at once removes them all
# before it answers (so that positions stay exact): after an outage, the
# first fan back pays for everyone who stopped polling. $N_REAP entries
# join; two seconds later either none or every other one polls
# (`abandon_once all|half`), and `TQ.CONFIG ev HEARTBEAT 2` makes the rest
# abandoned. One TQ.LEAVE then removes them; XLEN before and after it, in
# the same transaction, say how many (the reaper may take a batch first).
# All abandoned is a run at the queue's front, which tq trims in one pass;
# every other one is scattered, each deleted on its own.
# Sets ABANDON_<mode>="removed ms us-per-entry".
abandon_once() {
  local mode=$1 keep=0 out before after usec
  flush; mature_event
  fill 0 $((N_REAP - 1)) TQ.ENQUEUE ev "u#" "a#"
  sleep 2.1
  if [ "$mode" = half ]; then
    awk -v n="$N_REAP" 'BEGIN { for (i = 0; i < n; i += 2) { t = "a" i
      printf "*3\r\n$11\r\nTQ.POSITION\r\n$2\r\nev\r\n$%d\r\n%s\r\n", length(t), t } }' >"$WORK/polls.resp"
    pipe_file "$WORK/polls.resp"
    rm -f "$WORK/polls.resp"
    keep=$(((N_REAP + 1) / 2))
  fi
  expect OK CONFIG RESETSTAT
  expect OK TQ.CONFIG ev HEARTBEAT 2
  out="$(printf 'MULTI\nXLEN tq:{ev}:queue\nTQ.LEAVE ev nobody\nXLEN tq:{ev}:queue\nEXEC\n' | rcli)"
  read -r before _ after <<<"$(tail -n 3 <<<"$out" | tr '\n' ' ')"
  read -r _ usec _ <<<"$(cmdstat tq.leave)"
  [ "$after" = "$keep" ] && num_ok "$before" || { echo "bench: abandonment ($mode) gave '$out'" >&2; exit 1; }
  local removed=$((before - after))
  local ms per
  ms="$(awk -v u="$usec" 'BEGIN { printf "%.0f", u / 1000 }')"
  per="$(awk -v u="$usec" -v n="$removed" 'BEGIN { printf "%.1f", u / n }')"
  printf -v "ABANDON_$mode" '%s %s %s' "$removed" "$ms" "$per"
  printf '  %s: one TQ.LEAVE removed %s abandoned entries in %s ms (%s us each)\n' "$mode" "$removed" "$ms" "$per"
}
echo "== abandonment (one command finds up to $N_REAP entries abandoned)"
abandon_once all
abandon_once half

echo "== memory ($N_MEM entries / holds each, used_memory delta)"
mem_delta() { # setup done by caller; fills with ARGs, prints bytes per item
  local before after
  before="$(info_field memory used_memory)"
  fill 0 $((N_MEM - 1)) "$@"
  after="$(info_field memory used_memory)"
  awk -v a="$before" -v b="$after" -v n="$N_MEM" 'BEGIN { printf "%.0f", (b - a) / n }'
}
flush; mature_event
MEM_TQ_ENQ="$(mem_delta TQ.ENQUEUE ev "u#" "t#")"
flush
MEM_LUA_ENQ="$(mem_delta EVALSHA "$SHA_ENQ" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:t#" "t#" "u#")"
flush; mature_event
MEM_TQ_HOLD="$(mem_delta TQ.HOLD ev "s#" "u#")"
flush; expect OK SET "lua:{ev}:inventory" 100000000
MEM_LUA_HOLD="$(mem_delta EVALSHA "$SHA_HOLD" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#" "u#")"
flush
for m in "TQ.ENQUEUE $MEM_TQ_ENQ" "enqueue.lua $MEM_LUA_ENQ" "TQ.HOLD $MEM_TQ_HOLD" "hold.lua $MEM_LUA_HOLD"; do
  printf '  %-12s %6s bytes per item\n' $m
done

# --- report -------------------------------------------------------------------
declare -A LUA_OF BARE_OF
LUA_OF["TQ.ENQUEUE"]="enqueue.lua (EVALSHA)"; BARE_OF["TQ.ENQUEUE"]="XADD (bare)"
LUA_OF["TQ.HOLD"]="hold.lua (EVALSHA)";       BARE_OF["TQ.HOLD"]="HSET (bare)"
LUA_OF["TQ.RELEASE"]="release.lua (EVALSHA)"; BARE_OF["TQ.RELEASE"]="HSET (bare)"

mode_name() { case $1 in P16) echo "-P 16 -c $CLIENTS" ;; P1) echo "-P 1 -c $CLIENTS" ;; pipe) echo "--pipe, 1 conn" ;; esac; }

# floor_row CMD TEXT ROW...: the --pipe usec_per_call of the ROWs, summed.
floor_row() {
  local cmd=$1 text=$2 sum=0 row
  shift 2
  for row in "$@"; do
    num_ok "${UPC[$row|pipe]:-}" || { echo "| $cmd | $text | n/a | | | | |"; return; }
    sum=$(awk -v a="$sum" -v b="${UPC[$row|pipe]}" 'BEGIN { printf "%.2f", a + b }')
  done
  local lua="${UPC[${LUA_OF[$cmd]}|P16]:-}"
  local fifth
  fifth=$(awk -v l="${lua:-0}" 'BEGIN { printf "%.2f", l / 5 }')
  echo "| $cmd | $text | $sum | ${UPC[$cmd|P16]:-} | $lua | $(ratio "$sum" "$lua") | $fifth |"
}

REPORT="$WORK/report.md"
{
  echo "# tq bench results"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), redis $REDIS_VERSION, tq $GIT_REV, $(nproc) CPUs; $PIN_NOTE."
  echo "redis-benchmark rows: -n $N with unique tokens/seats; pipe rows: $N_PIPE commands through redis-cli --pipe."
  echo "usec/call is server time per call from INFO commandstats (includes the commands a module or script calls)."
  echo "Ratios are tq / reference for the same mode: usec ratio < 1 and ops ratio > 1 mean tq is better."
  echo
  echo "| workload | mode | ops/s | usec/call | calls | errors | tq/Lua usec | tq/Lua ops | tq/bare usec | tq/bare ops |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for key in "${ROWS[@]}"; do
    label=${key%|*}; mode=${key##*|}
    lu="" lo="" bu="" bo=""
    if [ -n "${LUA_OF[$label]:-}" ]; then
      ref="${LUA_OF[$label]}|$mode"
      lu=$(ratio "${UPC[$key]}" "${UPC[$ref]:-}"); lo=$(ratio "${OPS[$key]}" "${OPS[$ref]:-}")
      ref="${BARE_OF[$label]}|$mode"
      bu=$(ratio "${UPC[$key]}" "${UPC[$ref]:-}"); bo=$(ratio "${OPS[$key]}" "${OPS[$ref]:-}")
    fi
    ops="${OPS[$key]}"; num_ok "$ops" && ops=$(awk -v x="$ops" 'BEGIN { printf "%.0f", x }')
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$label" "$(mode_name "$mode")" "$ops" "${UPC[$key]}" \
      "${CALLS[$key]}" "${ERRS[$key]}" "$lu" "$lo" "$bu" "$bo"
  done
  echo
  for key in "${ROWS[@]}"; do
    [ -z "${NOTE[$key]}" ] || echo "- note, $key: ${NOTE[$key]}"
  done
  echo
  echo "## The writes themselves"
  echo
  echo "What the stored effects of one call cost as bare Redis commands (usec_per_call of the --pipe"
  echo "rows above, summed), next to tq and the Lua script (-P 16 rows) and to the goal of 1/5 of Lua."
  echo
  echo "| command | its writes, as bare commands | sum usec | tq usec | Lua usec | sum/Lua | goal: tq <= |"
  echo "|---|---|---:|---:|---:|---:|---:|"
  floor_row "TQ.ENQUEUE" "XADD + ZADD order + ZADD beat + ZADD user key + HSET tokens" \
    "XADD (bare)" "ZADD (bare, one large set)" "ZADD (bare, one large set)" "ZADD (bare, a set per user)" \
    "HSET (bare, one large hash)"
  floor_row "TQ.HOLD" "HSET seats + ZADD holds + SET meta" \
    "HSET (bare, one large hash)" "ZADD (bare, one large set)" "SET (bare, a mature meta text)"
  echo
  echo "## Abandonment"
  echo
  echo "One TQ.LEAVE removes every entry it finds abandoned before it answers: the first command"
  echo "after a mass abandonment pays for it."
  echo
  echo "| abandoned | removed | ms | usec per entry |"
  echo "|---|---:|---:|---:|"
  read -r n ms per <<<"$ABANDON_all"
  echo "| all $N_REAP (a run at the queue's front: trimmed) | $n | $ms | $per |"
  read -r n ms per <<<"$ABANDON_half"
  echo "| every other one (scattered: deleted one by one) | $n | $ms | $per |"
  echo
  echo "## Memory (used_memory delta / $N_MEM)"
  echo
  echo "| design | bytes per item | tq/Lua |"
  echo "|---|---:|---:|"
  echo "| TQ.ENQUEUE (waiting entry) | $MEM_TQ_ENQ | $(ratio "$MEM_TQ_ENQ" "$MEM_LUA_ENQ") |"
  echo "| enqueue.lua (stream entry + dedupe key) | $MEM_LUA_ENQ | |"
  echo "| TQ.HOLD (held seat) | $MEM_TQ_HOLD | $(ratio "$MEM_TQ_HOLD" "$MEM_LUA_HOLD") |"
  echo "| hold.lua (hash field + hold key) | $MEM_LUA_HOLD | |"
  echo
  echo "## Goals"
  echo
} >"$REPORT"

# goal LINE-TEXT CONDITION(awk expr over a..d) a b c d
goal() {
  local text=$1 expr=$2
  shift 2
  local verdict="FAIL"
  local v
  for v in "$@"; do num_ok "$v" || { echo "- FAIL (no data): $text" >>"$REPORT"; return; }; done
  if awk -v a="${1:-0}" -v b="${2:-0}" -v c="${3:-0}" -v d="${4:-0}" "BEGIN { exit !($expr) }"; then verdict="PASS"; fi
  echo "- $verdict: $text" >>"$REPORT"
}
max2() { awk -v a="$1" -v b="$2" 'BEGIN { if (!(a ~ /^[0-9.]+$/) || !(b ~ /^[0-9.]+$/)) print "n/a"; else print (a + 0 > b + 0 ? a : b) }'; }

for cmd in TQ.ENQUEUE TQ.HOLD; do
  lua="${LUA_OF[$cmd]}"
  # worst of the two modes
  r16=$(ratio "${UPC[$cmd|P16]}" "${UPC[$lua|P16]}"); r1=$(ratio "${UPC[$cmd|P1]}" "${UPC[$lua|P1]}")
  worst=$(max2 "$r16" "$r1")
  goal "$cmd usec_per_call <= 1/5 of ${lua%% *} (worst mode: ${worst}x)" "a <= 0.2" "$worst"
  rt=$(ratio "${OPS[$cmd|P16]}" "${OPS[$lua|P16]}")
  goal "$cmd pipelined throughput >= 3x ${lua%% *} (-P 16: ${rt}x)" "a >= 3" "$rt"
done
pl16="${UPC[TQ.POSITION @$Q_LARGE|P16]}"; pl1="${UPC[TQ.POSITION @$Q_LARGE|P1]}"
pl=$(max2 "$pl16" "$pl1")
goal "TQ.POSITION at $Q_LARGE waiting < 3 us/call (worst mode: $pl us)" "a < 3" "$pl"
g16=$(ratio "$pl16" "${UPC[TQ.POSITION @$Q_SMALL|P16]}"); g1=$(ratio "$pl1" "${UPC[TQ.POSITION @$Q_SMALL|P1]}")
gw=$(max2 "$g16" "$g1")
goal "TQ.POSITION at $Q_LARGE <= 2.5x its cost at $Q_SMALL (worst mode: ${gw}x)" "a <= 2.5" "$gw"
# Warnings the server logged during the run (module errors, reaper
# failures...): there should be none.
server_warnings() { awk '/Ready to accept connections/ { up = 1; next } up && / # / { print }' "$WORK/redis.log"; }
WARNINGS="$(server_warnings | wc -l)"
if [ "${WARNINGS:-0}" != 0 ]; then
  {
    echo "- server log: $WARNINGS warning lines after start-up, e.g.:"
    server_warnings | head -n 5 | sed 's/^/    /'
  } >>"$REPORT"
else
  echo "- server log: no warnings" >>"$REPORT"
fi
echo >>"$REPORT"
echo "Bench took $(( $(date +%s) - START_TS )) s." >>"$REPORT"

echo
cat "$REPORT"
mkdir -p "$RESULTS"
cp "$REPORT" "$RESULTS/latest.md"
echo
echo "saved to ${RESULTS#"$ROOT"/}/latest.md"
