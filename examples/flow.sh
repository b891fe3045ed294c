#!/usr/bin/env bash
# One fan's whole way through a TQ sale with redis-cli:
#   join the queue -> poll the position -> enter (a pass) -> hold a seat
#   -> confirm it -> end the pass.
#
#   REDIS_HOST=127.0.0.1 REDIS_PORT=6379 examples/flow.sh
#
# Needs redis-cli 7+ (for -e: exit non-zero on an error reply) and a server
# with the tq module loaded. Every run uses a fresh, random event name.
set -euo pipefail

HOST="${REDIS_HOST:-127.0.0.1}"
PORT="${REDIS_PORT:-6379}"
CLI="${REDIS_CLI:-redis-cli}"

rand() { od -An -N6 -tx1 /dev/urandom | tr -d ' \n'; }
EVENT="demo-$(rand)"
FAN="fan-$(rand)"
TOKEN="tok-$(rand)$(rand)"   # the fan's opaque waiting token (a UUID in real life)
SEAT="A-12"

# tq WORDS...: runs one command. On success prints the reply (raw: one value
# per line, maps as field/value lines); on an error reply prints the error
# ("CODE text") and fails.
tq() {
  local out
  if out=$("$CLI" -h "$HOST" -p "$PORT" -e "$@" 2>&1); then
    printf '%s\n' "$out"
  else
    printf '%s\n' "${out:-$CLI failed}"
    return 1
  fi
}

# field REPLY NAME: the value of NAME in a map reply.
field() {
  printf '%s\n' "$1" | awk -v k="$2" 'NR % 2 == 1 && $0 == k { getline v; print v; found = 1; exit }
                                      END { exit !found }'
}

die() { echo "error: $*" >&2; exit 1; }

# The organiser puts 100 seats on sale, to admitted fans only (a hold
# needs the pass TQ.ENTER gives).
reply=$(tq TQ.CONFIG "$EVENT" REQUIRE-PASS 1) || die "$reply"
reply=$(tq TQ.INVENTORY "$EVENT" SET 100) || die "$reply"
echo "event $EVENT: $reply seats on sale"

# 1. Join the waiting room.
reply=$(tq TQ.ENQUEUE "$EVENT" "$FAN" "$TOKEN") || die "$reply"
echo "joined: id=$(field "$reply" id) position=$(field "$reply" position)"

# 2. Poll the position (each poll is also the heartbeat) until ready, then
# 3. enter. NOT_READY means someone was admitted first: keep polling.
entered=""
for _ in $(seq 1 600); do
  reply=$(tq TQ.POSITION "$EVENT" "$TOKEN") || die "$reply"
  ready=$(field "$reply" ready)
  eta=$(field "$reply" eta_ms)
  echo "position=$(field "$reply" position) ready=$ready eta_ms=$eta"
  if [ "$ready" = 1 ]; then
    if reply=$(tq TQ.ENTER "$EVENT" "$TOKEN"); then
      entered=yes
      echo "entered: position_was=$(field "$reply" position_was)"
      echo "pass $(field "$reply" pass) until $(field "$reply" expires_at)"
      break
    fi
    case "$reply" in NOT_READY*) ;; *) die "$reply" ;; esac
  fi
  # Wait about the estimated time (0.1 s .. 2 s; 1 s without an estimate).
  if [ "$eta" -lt 0 ]; then wait_ms=1000; else wait_ms=$(( eta < 100 ? 100 : (eta > 2000 ? 2000 : eta) )); fi
  sleep "$(( wait_ms / 1000 )).$(printf '%03d' $(( wait_ms % 1000 )))"
done
[ -n "$entered" ] || die "not admitted after 600 polls"

# 4. Hold a seat (for the event's hold-ttl) ...
reply=$(tq TQ.HOLD "$EVENT" "$SEAT" "$FAN") || die "$reply"
echo "held $SEAT: $reply seats left"
reply=$(tq TQ.SEAT "$EVENT" "$SEAT") || die "$reply"
echo "seat $SEAT: $(field "$reply" state) by $(field "$reply" user), $(field "$reply" ttl_ms) ms to pay"

# 5. ... and confirm it once paid; 6. checkout done: end the pass, so that
# the place it held goes to the next fan.
reply=$(tq TQ.CONFIRM "$EVENT" "$SEAT" "$FAN") || die "$reply"
[ "$reply" = OK ] || die "TQ.CONFIRM replied $reply"
reply=$(tq TQ.PASS "$EVENT" "$FAN" REVOKE) || die "$reply"
echo "pass ended: $reply"
echo "confirmed $SEAT for $FAN"
