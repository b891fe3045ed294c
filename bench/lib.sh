# Shared by run.sh and profile.sh, sourced first by both.

# Where things are, and which module and server run (TQ_MODULE, TQ_SERVER).
BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH")"
MODULE="${TQ_MODULE:-$ROOT/target/release/libtq.so}"
SERVER_BIN="${TQ_SERVER:-redis-server}"

# gen_pipe FILE FIRST LAST ARG...: RESP commands, one per index FIRST..LAST,
# each "#" inside an ARG replaced by the index (for redis-cli --pipe).
gen_pipe() {
  local file=$1 first=$2 last=$3
  shift 3
  local IFS=$'\037'
  LC_ALL=C awk -v first="$first" -v last="$last" -v spec="$*" 'BEGIN {
    # (no gsub here: mawk gets quadratic with it over 100k+ lines)
    n = split(spec, a, "\037")
    for (i = first; i <= last; i++) {
      si = sprintf("%d", i)
      s = "*" n "\r\n"
      for (j = 1; j <= n; j++) {
        m = split(a[j], part, "#")
        v = part[1]
        for (k = 2; k <= m; k++) v = v si part[k]
        s = s "$" length(v) "\r\n" v "\r\n"
      }
      printf "%s", s
    }
  }' >"$file"
}

# mature_event_commands: the commands that set up event `ev` as it looks a
# few minutes into a sale, one per line (for redis-cli to read): its own
# settings (HEARTBEAT long enough that nothing is abandoned mid-run, RATE
# and BURST that never hold anyone back), an admission, a duplicate and a
# sold seat, then a large inventory. Its `meta` then holds 13 of its 15
# fields, as a real event's does; every command reads it, so an event
# with an empty meta would flatter tq.
mature_event_commands() {
  cat <<'COMMANDS'
TQ.CONFIG ev HEARTBEAT 31536000 HOLD-TTL 600 DEDUPE-TTL 300 RATE 1000000 BURST 1000000000
TQ.INVENTORY ev SET 1
TQ.ENQUEUE ev mature-user mature-token
TQ.ENQUEUE ev mature-user mature-token
TQ.ENTER ev mature-token
TQ.HOLD ev mature-seat mature-user
TQ.CONFIRM ev mature-seat mature-user
TQ.INVENTORY ev SET 100000000
COMMANDS
}
MATURE_META_FIELDS=13
