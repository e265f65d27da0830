"""Realtime CPU per event in CPU instructions (valgrind), which do not vary with the machine's load.

    .venv/bin/python benchmarks/realtime_instructions.py [--events N] [--kinds ours,floor,naive]

The realtime rows of ``run.py`` time CPU on a shared machine, where a 5% change drowns in the
noise; an instruction count does not move. ``loadserver.py`` runs in a child process of its own
(not under valgrind); for each kind a client process under ``valgrind --tool=cachegrind`` takes
``N`` and then ``2N`` events (the ``stream`` workloads of ``clients.py``: ``ours`` subscribes
with ``ChatClient`` and counts the callbacks, ``naive`` is the websocket-client loop, ``floor``
feeds the load server's frames to our frame reader, ``json.loads`` each event and calls the
same callback, less the building of those frames, counted alone); the difference of the two
counts over ``N`` is one event's instructions, start-up and warm-up cancelled out. Printed:
instructions per event of each kind, and the ratios ours / floor and ours / naive (the
figures of the realtime rows' targets).

valgrind runs one thread at a time, so how many events one read of ``ours`` brings depends on
its scheduler, not the machine's: the count of ``ours`` moves by about 1% from run to run, the
floor's (one thread, no socket) by a few instructions. Needs valgrind; takes a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Any

import _bench

KINDS = ("floor", "ours", "naive")
#: ``--kinds reader``: the frame reader alone on the floor's bytes (a change to the reader's
#: hot path shows there, to the instruction).


def child(kind: str, events: int, urls: dict[str, str]) -> None:
    """Take ``events`` events with ``kind`` (runs under valgrind)."""
    import clients

    params: dict[str, Any] = {
        "url": urls["stream_url"],
        "http_url": urls["http_url"],
        "token": _bench.bench_token("relay.bench.test"),
        "warmup": 1,
        "count": events - 1,
        "deadline": 600.0,
    }
    if kind == "floor-build":
        clients.floor_writes(params)  # the floor's set-up alone, subtracted from the floor
    elif kind == "reader":  # the frame reader alone, on the floor's bytes
        from signalwire_chat._realtime._frames import FrameReader

        feed = FrameReader().feed
        for data in clients.floor_writes(params):
            feed(data)
    else:
        clients.rt_stream(kind, params)


def count(kind: str, events: int, urls: dict[str, str]) -> int:
    """Instructions of one child run (valgrind's ``I refs``)."""
    argv = [sys.executable, __file__, "--child", kind, str(events), json.dumps(urls)]
    return _bench.instructions(argv)


def per_event_of(kind: str, n: int, urls: dict[str, str]) -> float:
    """Instructions of one event: the runs of ``2n`` and ``n`` events, subtracted."""
    runs = [count(kind, events, urls) for events in (n, 2 * n)]
    return (runs[1] - runs[0]) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), json.loads(args.child[2]))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (apt-get install valgrind)", file=sys.stderr)
        return 3
    os.environ["PYTHONHASHSEED"] = "0"  # the same dict layouts in every child: same counts
    kinds = args.kinds.split(",")
    n = args.events
    per_event: dict[str, float] = {}
    with _bench.bench_server("loadserver.py") as urls:
        for kind in kinds:
            per_event[kind] = per_event_of(kind, n, urls)
            if kind in ("floor", "reader"):  # without building the frames (the server's work)
                per_event[kind] -= per_event_of("floor-build", n, urls)
            print(f"{kind}: {per_event[kind]:,.0f} instructions per event", file=sys.stderr)
    print("| client | instructions per event |")
    print("|---|---|")
    for kind, value in per_event.items():
        print(f"| {kind} | {value:,.0f} |")
    for base in ("floor", "naive"):  # the targets' ratios
        if "ours" in per_event and per_event.get(base):
            print(f"ratio ours / {base}: {per_event['ours'] / per_event[base]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
