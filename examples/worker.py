#!/usr/bin/env python3
"""A worker that reacts to what happens in a TQ sale, through the event log.

With `TQ.CONFIG <event> EVENTS <n>`, tq appends every admission, hold,
release, expiry, sale... to the Stream `tq:{<event>}:events`, from the
same command or background step that made it happen. This worker reads it
with a consumer group, so several workers share the work and nothing is
lost when one restarts: each entry is handled, then acknowledged (XACK).

    pip install redis
    REDIS_HOST=127.0.0.1 REDIS_PORT=6379 python3 examples/worker.py <event> \\
        [--group workers] [--name worker-1] [--until sold_out] [--timeout 30]

It prints one line per entry, e.g. `hold_expired seat=A-12 user=fan-1`,
and stops when it has handled an entry of the type given by --until, or
after --timeout seconds without any entry.
"""
import argparse
import os
import sys

import redis


def handle(kind, fields):
    """What a real worker would do: release a hold in the payment service
    when it expires, send the e-mail after a sale, close a session..."""
    subject = " ".join(f"{k}={v}" for k, v in fields.items() if k != "type")
    print(f"{kind} {subject}".rstrip(), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("event")
    ap.add_argument("--group", default="workers")
    ap.add_argument("--name", default="worker-1")
    ap.add_argument("--until", help="stop after handling an entry of this type")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="stop after this many seconds without an entry")
    args = ap.parse_args()

    r = redis.Redis(
        host=os.environ.get("REDIS_HOST", "127.0.0.1"),
        port=int(os.environ.get("REDIS_PORT", "6379")),
        decode_responses=True,
    )
    log = f"tq:{{{args.event}}}:events"
    try:
        # From the log's start ("0"): a worker that joins late still sees
        # what is kept. MKSTREAM: the group may be made before tq's first
        # entry; tq appends to the stream made here.
        r.xgroup_create(log, args.group, id="0", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise

    # First what this consumer was given but never acknowledged (a restart),
    # then new entries (">").
    start = "0"
    while True:
        got = r.xreadgroup(args.group, args.name, {log: start}, count=100,
                           block=int(args.timeout * 1000))
        entries = got[0][1] if got else []
        if not entries:
            if start == "0":
                start = ">"
                continue
            print("no entry for a while, stopping", file=sys.stderr)
            return 1
        for entry_id, fields in entries:
            kind = fields.get("type", "?")
            handle(kind, fields)
            r.xack(log, args.group, entry_id)
            if kind == args.until:
                return 0


if __name__ == "__main__":
    sys.exit(main())
