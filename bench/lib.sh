# shellcheck shell=bash disable=SC2034
# Shared by run.sh and profile.sh, sourced first by both.

# Where things are, and which module and server run (TQ_MODULE, TQ_SERVER).
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
MODULE="${TQ_MODULE:-$ROOT/target/release/libtq.so}"
SERVER_BIN="${TQ_SERVER:-redis-server}"

# gen_cmds FIRST LAST ARG...: RESP commands on stdout, one per index
# FIRST..LAST (for redis-cli --pipe). Inside an ARG, "#" becomes the index
# and "@" the index as 12 zero-padded digits, the way redis-benchmark
# prints __rand_int__ (so that `-r N` draws exactly the names 0..N-1 of a
# fill). With GEN_RANDOM=R set, each command's index is instead a random
# draw in 0..R-1 (fixed seed: the same sequence every run).
gen_cmds() {
  local first=$1 last=$2
  shift 2
  local IFS=$'\037'
  LC_ALL=C awk -v first="$first" -v last="$last" -v spec="$*" -v rnd="${GEN_RANDOM:-0}" 'BEGIN {
    # Each ARG is split once into its literal pieces and placeholders, and
    # one without any is written out once (no gsub per line: mawk gets
    # quadratic with it over 100k+ lines).
    srand(1); ORS = ""
    n = split(spec, a, "\037")
    for (j = 1; j <= n; j++) {
      np[j] = 0; v = a[j]
      while (match(v, /[#@]/)) {
        lit[j, np[j]] = substr(v, 1, RSTART - 1); ph[j, np[j]] = substr(v, RSTART, 1); np[j]++
        v = substr(v, RSTART + 1)
      }
      tail[j] = v
      if (np[j] == 0) fixed[j] = "$" length(v) "\r\n" v "\r\n"
    }
    head = "*" n "\r\n"
    for (i = first; i <= last; i++) {
      x = rnd > 0 ? int(rand() * rnd) : i
      si = x ""; sp = sprintf("%012d", x)
      s = head
      for (j = 1; j <= n; j++) {
        if (np[j] == 0) { s = s fixed[j]; continue }
        v = ""
        for (k = 0; k < np[j]; k++) v = v lit[j, k] (ph[j, k] == "#" ? si : sp)
        v = v tail[j]
        s = s "$" length(v) "\r\n" v "\r\n"
      }
      print s
    }
  }'
}

# gen_pipe FILE FIRST LAST ARG...: gen_cmds into FILE.
gen_pipe() {
  local file=$1
  shift
  gen_cmds "$@" >"$file"
}

# mature_event_commands: the commands that set up event `ev` as it looks a
# few minutes into a sale, one per line (for redis-cli to read): its own
# settings (HEARTBEAT long enough that nothing is abandoned mid-run, RATE
# and BURST that never hold anyone back), a join, a duplicate, an
# admission, a sold seat (which sells the event out for a moment: the
# inventory was 1), then a large inventory. Every command reads the
# event's state, so an event that never saw any of this would flatter tq.
mature_event_commands() {
  cat <<'COMMANDS'
TQ.CONFIG ev HEARTBEAT 31536000 HOLD-TTL 300 DEDUPE-TTL 300 RATE 1000000 BURST 1000000000
TQ.INVENTORY ev SET 1
TQ.ENQUEUE ev mature-user mature-token DEDUPE mature-dedupe
TQ.ENQUEUE ev mature-user mature-token-2 DEDUPE mature-dedupe
TQ.ENTER ev mature-token
TQ.HOLD ev mature-seat mature-user
TQ.CONFIRM ev mature-seat mature-user
TQ.INVENTORY ev SET 100000000
COMMANDS
}
