#!/usr/bin/env bash
# Instruction profile of TQ.ENQUEUE (with DEDUPE and TTL), TQ.HOLD (one seat
# and a group of four),
# TQ.POSITION (random waiting fans) and TQ.ENTER (the front fan), and of
# the seed-style Lua scripts they replace (enqueue.lua, hold.lua), under
# callgrind, the same calls as make bench's.
#
#   bench/profile.sh [N]        (default N=20000 calls per command)
#
# For each command: starts redis-server with the module under
# `valgrind --tool=callgrind`, collecting only inside the function that runs
# the command (RedisModuleCommandDispatcher, Redis' entry into every module
# command; evalShaCommand for a script), so the profile is the command
# itself, with everything it calls in Redis, without the event loop,
# networking or parsing of the request. Sets up the data as make bench does
# (for tq a mature event: mature_event_commands in lib.sh), sends N calls
# through redis-cli --pipe, checks they all stored what they should, shuts
# the server down and writes, under bench/results/profile/:
#   <cmd>.callgrind      raw callgrind output (open with kcachegrind or
#                        callgrind_annotate)
#   <cmd>.inclusive.txt  functions by inclusive instructions (what a call
#                        spends under each function)
#   <cmd>.self.txt       functions by self instructions (where the
#                        instructions actually execute)
#   summary.txt          totals, instructions per call, the top rows of
#                        both views with percentages, and tq against the
#                        scripts (see WRITE_CALLS below)
set -euo pipefail

# ROOT, BENCH, MODULE, SERVER_BIN; gen_pipe, mature_event_commands.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
N="${1:-${PROFILE_N:-20000}}"
OUT="$ROOT/bench/results/profile"
TOP="${PROFILE_TOP:-25}"
STREAM_NODE="${BENCH_STREAM_NODE:-16}" # stream-node-max-entries, as make bench and redis.conf.example

for tool in valgrind callgrind_annotate callgrind_control "$SERVER_BIN" redis-cli awk; do
  command -v "$tool" >/dev/null || { echo "profile: $tool not found (apt-get install valgrind redis-server)" >&2; exit 1; }
done
[ -f "$MODULE" ] || { echo "profile: $MODULE missing: run cargo build --release first" >&2; exit 1; }
mkdir -p "$OUT"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/tq-profile.XXXXXX")"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    redis-cli -p "$PORT" SHUTDOWN NOSAVE >/dev/null 2>&1 || kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  SERVER_PID=""
}
cleanup() {
  stop_server
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_server() { # callgrind-out-file function-to-collect-in
  local p
  for _ in $(seq 1 20); do
    p=$((20000 + RANDOM % 30000))
    port_in_use "$p" || break
  done
  PORT=$p
  valgrind --tool=callgrind --callgrind-out-file="$1" \
    --toggle-collect="$2" \
    "$SERVER_BIN" --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --stream-node-max-entries "$STREAM_NODE" \
    --dir "$WORK" --logfile "$WORK/redis.log" --loadmodule "$MODULE" \
    </dev/null >"$WORK/valgrind.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 600); do
    redis-cli -p "$PORT" PING 2>/dev/null | grep -q PONG && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "profile: server did not start under valgrind:" >&2
  cat "$WORK/valgrind.log" "$WORK/redis.log" >&2 || true
  exit 1
}


# Reads a callgrind_annotate listing (--auto=no) and prints one view of it,
# each row with its share of the command's instructions:
#   inclusive  top functions by inclusive cost, without the event-loop and
#              dispatch frames every call goes through (>= 99%), one row per
#              function name
#   api        Redis module API functions (RM_*) and Redis internals they
#              reach, by inclusive cost
#   self       top functions by self cost
#   objects    self cost summed per shared object (libtq.so, redis-server,
#              jemalloc, libc), plus the allocator share
summarize() { # view listing-file total
  LC_ALL=C awk -v view="$1" -v total="$3" -v top="$TOP" '
    function parse(line,   m) {
      ir = line; sub(/^ */, "", ir); sub(/ .*/, "", ir); gsub(",", "", ir)
      name = line; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, "", name)
      obj = ""
      if (match(name, / \[[^]]*\]$/)) { obj = substr(name, RSTART + 2, RLENGTH - 3); name = substr(name, 1, RSTART - 1) }
      file = substr(name, 1, index(name, ":") - 1)
      fn = substr(name, index(name, ":") + 1)
      sub(/^.*\//, "", obj)
      if (obj == "redis-check-rdb") obj = "redis-server"
      if (obj == "" && file ~ /\.rs$/) obj = "libtq.so"
      if (obj == "") obj = "?"
    }
    function row(ir, label) {
      if (length(label) > 110) label = substr(label, 1, 107) "..."
      printf "%6.2f%%  %13s  %s\n", 100 * ir / total, ir, label
    }
    /^ *[0-9,]+ +\( *[0-9.]+%\) +/ && !/PROGRAM TOTALS/ {
      parse($0)
      if (view == "objects") {
        by[obj] += ir
        if (obj ~ /jemalloc/ || fn ~ /^(zmalloc|zfree|zcalloc|zrealloc|ztrymalloc|zmalloc_usable|zfree_usable|RM_Alloc|RM_Free|RM_Realloc|RM_Calloc|malloc|free|realloc|calloc|malloc_usable_size)$/ || fn ~ /RedisAlloc/) alloc += ir
        next
      }
      if (100 * ir / total >= 99) next
      if (view == "api" && fn !~ /^(RM_|module|call$|propagate|alsoPropagate|lookupCommand)/) next
      if (seen[fn]++) next
      row(ir, fn "  (" obj ")")
      if (++shown >= top) exit
    }
    END {
      if (view != "objects") exit
      for (o in by) printf "%6.2f%%  %13d  %s\n", 100 * by[o] / total, by[o], o | "sort -rn"
      close("sort -rn")
      printf "%6.2f%%  %13d  %s\n", 100 * alloc / total, alloc, "allocation (jemalloc + zmalloc/zfree + RM_Alloc/RedisAlloc), any object"
    }' "$2"
}

SUMMARY="$WORK/summary.txt"
{
  echo "tq callgrind profile: $N calls per command, collected inside the function that runs it"
  echo "module $MODULE ($(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)), $("$SERVER_BIN" --version | head -c 40)"
} >"$SUMMARY"

# The SHA1 Redis gives a script loaded as run.sh loads it (the file's text
# without its last newline).
script_sha() { printf '%s' "$(cat "$BENCH/$1.lua")" | sha1sum | cut -c1-40; }

# Set-ups, run once the server is up.
setup_tq() { mature_event_commands | redis-cli -p "$PORT" >/dev/null; }
# 5,000 fans who wait, as most do during a sale: 100 admissions a second,
# so TQ.POSITION's eta comes from the measured admission rate (as in make
# bench's TQ.POSITION rows). The calls ask about random fans among them.
setup_position() {
  setup_tq
  redis-cli -p "$PORT" TQ.CONFIG ev RATE 100 BURST 100 >/dev/null
  GEN_RANDOM='' gen_pipe "$WORK/fans.resp" 0 $((POSITION_Q - 1)) TQ.ENQUEUE ev "w#" "p#" DEDUPE "d#" TTL 300
  redis-cli -p "$PORT" --pipe <"$WORK/fans.resp" | tail -n1 | grep -q "errors: 0, replies: $POSITION_Q" || { echo "profile: the fans did not all join" >&2; exit 1; }
}
# N fans who wait, each with their own user and DEDUPE id, at the mature
# event's RATE and BURST: every TQ.ENTER of the front fan admits it.
setup_enter() {
  setup_tq
  GEN_RANDOM='' gen_pipe "$WORK/fans.resp" 0 $((N - 1)) TQ.ENQUEUE ev "w#" "e#" DEDUPE "d#" TTL 300
  redis-cli -p "$PORT" --pipe <"$WORK/fans.resp" | tail -n1 | grep -q "errors: 0, replies: $N" || { echo "profile: the fans did not all join" >&2; exit 1; }
}
# The same with the event log on (EVENTS n).
setup_tq_log() { setup_tq; redis-cli -p "$PORT" TQ.CONFIG ev EVENTS 100000 >/dev/null; }
setup_enter_log() { setup_enter; redis-cli -p "$PORT" TQ.CONFIG ev EVENTS 100000 >/dev/null; }
setup_lua() {
  local script sha
  for script in enqueue hold; do
    sha="$(redis-cli -p "$PORT" SCRIPT LOAD "$(cat "$BENCH/$script.lua")")"
    [ "$sha" = "$(script_sha "$script")" ] || { echo "profile: SCRIPT LOAD $script.lua gave '$sha'" >&2; exit 1; }
  done
  redis-cli -p "$PORT" SET "lua:{ev}:inventory" 100000000 >/dev/null
}

declare -A PER_CALL

# profile_cmd NAME COLLECT SETUP CHECK EXPECTED ARG...: N calls of ARG...
# (each "#" in an ARG -> 0..N-1), counted inside the Redis function
# COLLECT, on a server prepared by the shell function SETUP. Afterwards
# every call must have succeeded and the command CHECK must answer EXPECTED
# (the calls stored all they should: a profile of refused calls would
# flatter anyone).
profile_cmd() {
  local name=$1 collect=$2 setup=$3 check=$4 expected=$5
  shift 5
  local out="$OUT/$name.callgrind" res got
  local -a check_words
  read -ra check_words <<<"$check"
  echo "profiling $name ($N calls under callgrind; takes a minute or two)..."
  start_server "$out" "$collect"
  "$setup"
  # Count the N calls only, not the set-up's commands.
  callgrind_control --zero "$SERVER_PID" >/dev/null
  gen_pipe "$WORK/load.resp" 0 $((N - 1)) "$@"
  res="$(redis-cli -p "$PORT" --pipe --pipe-timeout 0 <"$WORK/load.resp" 2>&1 | tail -n1)"
  echo "  $res"
  got="$(redis-cli -p "$PORT" "${check_words[@]}")"
  stop_server
  [[ "$res" == *"errors: 0, replies: $N"* ]] || { echo "profile: $name: calls failed: $res" >&2; exit 1; }
  [ "$got" = "$expected" ] || { echo "profile: $name: $check gave '$got', expected $expected" >&2; exit 1; }
  callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$out" >"$OUT/$name.inclusive.txt" 2>/dev/null
  callgrind_annotate --auto=no --threshold=100 "$out" >"$OUT/$name.self.txt" 2>/dev/null
  local total
  total="$(awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }' "$OUT/$name.self.txt")"
  PER_CALL[$name]=$(awk -v t="$total" -v n="$N" 'BEGIN { printf "%.0f", t / n }')
  {
    echo
    echo "== $name: $* ($res)"
    echo "total $total instructions, ${PER_CALL[$name]} per call"
    echo "-- inclusive: share of the command's instructions spent under each function"
    summarize inclusive "$OUT/$name.inclusive.txt" "$total"
    echo "-- Redis module API and the Redis internals it reaches (inclusive)"
    summarize api "$OUT/$name.inclusive.txt" "$total"
    echo "-- self: where the instructions execute"
    summarize self "$OUT/$name.self.txt" "$total"
    echo "-- self, per object"
    summarize objects "$OUT/$name.self.txt" "$total"
  } >>"$SUMMARY"
}

# The module API calls through which a TQ command changes Redis' own
# structures and the replication stream: the stream append or removal and
# the one replicated record (what tq keeps in its own state is tq's code).
WRITE_CALLS="RM_StreamAdd RM_StreamDelete RM_StreamTrimByID RM_StreamTrimByLength RM_Replicate RM_ReplicateVerbatim"

# writes_per_call NAME: instructions per call spent under WRITE_CALLS.
writes_per_call() {
  awk -v n="$N" -v calls="$WRITE_CALLS" '
    BEGIN { split(calls, c, " "); for (i in c) want[c[i]] = 1 }
    /^ *[0-9,]+ +\( *[0-9.]+%\) +/ {
      fn = $0; sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +[^:]*:/, "", fn); sub(/ .*/, "", fn)
      if (fn in want) { ir = $1; gsub(",", "", ir); sum += ir }
    }
    END { printf "%.0f", sum / n }' "$OUT/$1.inclusive.txt"
}

# sha_per_call NAME: instructions per call under sha2's SHA-256 compression.
# Valgrind hides the CPU's SHA extensions, so under callgrind sha2 runs its
# portable code, some 3,500 instructions per name digested; natively it
# uses the SHA instructions where the CPU has them (about 100 ns a name on
# the bench machine).
sha_per_call() {
  awk -v n="$N" '
    /^ *[0-9,]+ +\( *[0-9.]+%\) +.*sha2::sha256::compress256/ { ir = $1; gsub(",", "", ir); sum = ir; exit }
    END { printf "%.0f", sum / n }' "$OUT/$1.inclusive.txt"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

POSITION_Q=5000
profile_cmd enqueue RedisModuleCommandDispatcher setup_tq "XLEN tq:{ev}:queue" "$N" \
  TQ.ENQUEUE ev "u#" "t#" DEDUPE "d#" TTL 300
profile_cmd hold RedisModuleCommandDispatcher setup_tq "TQ.INVENTORY ev" "$((100000000 - N))" \
  TQ.HOLD ev "s#" "u#"
profile_cmd hold4 RedisModuleCommandDispatcher setup_tq "TQ.INVENTORY ev" "$((100000000 - 4 * N))" \
  TQ.HOLD ev "s#" "u#" WITH "t#" "v#" "w#"
GEN_RANDOM=$POSITION_Q profile_cmd position RedisModuleCommandDispatcher setup_position \
  "XLEN tq:{ev}:queue" "$POSITION_Q" TQ.POSITION ev "p#"
profile_cmd enter RedisModuleCommandDispatcher setup_enter "XLEN tq:{ev}:queue" 0 \
  TQ.ENTER ev "e#"
profile_cmd enqueue_log RedisModuleCommandDispatcher setup_tq_log "XLEN tq:{ev}:queue" "$N" \
  TQ.ENQUEUE ev "u#" "t#" DEDUPE "d#" TTL 300
profile_cmd enter_log RedisModuleCommandDispatcher setup_enter_log "XLEN tq:{ev}:events" "$N" \
  TQ.ENTER ev "e#"
profile_cmd enqueue.lua evalShaCommand setup_lua "XLEN lua:{ev}:queue" "$N" \
  EVALSHA "$(script_sha enqueue)" 2 "lua:{ev}:queue" "lua:{ev}:dedupe:d#" "t#" "u#" 300
profile_cmd hold.lua evalShaCommand setup_lua "HLEN lua:{ev}:seats" "$N" \
  EVALSHA "$(script_sha hold)" 3 "lua:{ev}:seats" "lua:{ev}:inventory" "lua:{ev}:hold:s#" "s#" "u#"

{
  echo
  echo "== tq against the seed-style scripts, instructions per call"
  echo "| command | tq | script | script/tq | 1/5 of script | tq's stream + replication calls | those/script |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  for cmd in enqueue hold; do
    tq=${PER_CALL[$cmd]} lua=${PER_CALL[$cmd.lua]} writes=$(writes_per_call "$cmd")
    echo "| TQ.${cmd^^} | $tq | $lua | $(ratio "$lua" "$tq") | $((lua / 5)) | $writes | $(ratio "$writes" "$lua") |"
  done
  echo
  echo "tq's stream + replication calls: instructions per call inside the module API calls"
  echo "that change the stream and put the command's record on the replication stream"
  echo "($WRITE_CALLS): what Redis itself spends on them, without tq's own code."
  echo
  echo "== SHA-256 of the queue's names (tokens, users, DEDUPE ids), instructions per call"
  echo "Under valgrind sha2 runs its portable code (valgrind hides the CPU's SHA extensions);"
  echo "natively it uses the SHA instructions, where the CPU has them."
  echo "| command | tq | of which SHA-256 in software | the rest | script | script/rest |"
  echo "|---|---:|---:|---:|---:|---:|"
  for cmd in enqueue hold hold4 position enter; do
    tq=${PER_CALL[$cmd]} sha=$(sha_per_call "$cmd") lua=${PER_CALL[$cmd.lua]:-}
    rest=$((tq - sha))
    echo "| TQ.${cmd^^} | $tq | $sha | $rest | ${lua:--} | $([ -n "$lua" ] && ratio "$lua" "$rest" || echo -) |"
  done
  echo
  echo "A group hold of 4 seats (hold4: TQ.HOLD ... WITH, all or nothing): ${PER_CALL[hold4]} instructions per call, $(ratio "${PER_CALL[hold4]}" "${PER_CALL[hold]}")x a single-seat TQ.HOLD."
  echo
  echo "With the event log on (EVENTS 100000): TQ.ENQUEUE ${PER_CALL[enqueue_log]} instructions per call, $(ratio "${PER_CALL[enqueue_log]}" "${PER_CALL[enqueue]}")x with it off (a join logs nothing); TQ.ENTER ${PER_CALL[enter_log]}, $(ratio "${PER_CALL[enter_log]}" "${PER_CALL[enter]}")x (an \`admitted\` entry each)."
} >>"$SUMMARY"

cp "$SUMMARY" "$OUT/summary.txt"
cat "$OUT/summary.txt"
echo
echo "full listings: ${OUT#"$ROOT"/}/{enqueue,hold,hold4,position,enter,enqueue_log,enter_log,enqueue.lua,hold.lua}.{inclusive,self}.txt"
