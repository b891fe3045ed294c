#!/usr/bin/env python3
"""One fan's whole way through a TQ sale with redis-py:
join the queue -> poll the position -> enter (a pass) -> hold a seat
-> confirm it -> end the pass.

    pip install redis
    REDIS_HOST=127.0.0.1 REDIS_PORT=6379 python3 examples/flow.py

Needs a server with the tq module loaded. Every run uses a fresh, random
event name.
"""
import os
import sys
import time
import uuid

import redis


def as_map(reply):
    """A TQ map reply as a dict: RESP3 gives a dict, RESP2 a flat list."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[0::2], reply[1::2]))


def main():
    r = redis.Redis(
        host=os.environ.get("REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
        decode_responses=True,
    )
    event = f"demo-{uuid.uuid4().hex[:12]}"
    fan = f"fan-{uuid.uuid4().hex[:8]}"
    token = str(uuid.uuid4())  # the fan's opaque waiting token
    seat = "A-12"

    # The organiser puts 100 seats on sale, to admitted fans only (a hold
    # needs the pass TQ.ENTER gives).
    r.execute_command("TQ.CONFIG", event, "REQUIRE-PASS", 1)
    print(f"event {event}: {r.execute_command('TQ.INVENTORY', event, 'SET', 100)} seats on sale")

    # 1. Join the waiting room.
    joined = as_map(r.execute_command("TQ.ENQUEUE", event, fan, token))
    print(f"joined: id={joined['id']} position={joined['position']}")

    # 2. Poll the position (each poll is also the heartbeat) until ready, then
    # 3. enter. NOT_READY means someone was admitted first: keep polling.
    for _ in range(600):
        pos = as_map(r.execute_command("TQ.POSITION", event, token))
        print(f"position={pos['position']} ready={pos['ready']} eta_ms={pos['eta_ms']}")
        if int(pos["ready"]) == 1:
            try:
                entered = as_map(r.execute_command("TQ.ENTER", event, token))
                print(f"entered: position_was={entered['position_was']}")
                print(f"pass {entered['pass']} until {entered['expires_at']}")
                break
            except redis.ResponseError as e:
                if not str(e).startswith("NOT_READY"):
                    raise
        eta = int(pos["eta_ms"])
        time.sleep(1.0 if eta < 0 else min(max(eta, 100), 2000) / 1000)
    else:
        sys.exit("not admitted after 600 polls")

    # 4. Hold a seat (for the event's hold-ttl) ...
    left = r.execute_command("TQ.HOLD", event, seat, fan)
    print(f"held {seat}: {left} seats left")
    state = as_map(r.execute_command("TQ.SEAT", event, seat))
    print(f"seat {seat}: {state['state']} by {state['user']}, {state['ttl_ms']} ms to pay")

    # 5. ... and confirm it once paid; 6. checkout done: end the pass, so
    # that the place it held goes to the next fan.
    reply = r.execute_command("TQ.CONFIRM", event, seat, fan)
    if reply not in ("OK", True):
        sys.exit(f"TQ.CONFIRM replied {reply!r}")
    print(f"pass ended: {r.execute_command('TQ.PASS', event, fan, 'REVOKE')}")
    print(f"confirmed {seat} for {fan}")


if __name__ == "__main__":
    try:
        main()
    except redis.RedisError as e:
        sys.exit(f"error: {e}")
