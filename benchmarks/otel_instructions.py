"""What tracing adds to one send_message, in CPU instructions (valgrind), which do not vary.

    .venv/bin/python benchmarks/otel_instructions.py [--calls N]

Timings on a shared machine move by +-10% from run to run; an instruction count does not. For
each mode a child process sends 100 warm-up messages and then 0 or ``N`` more to
``restserver.py``, under ``valgrind --tool=cachegrind``; the difference of the two counts over
``N`` is the count per call, start-up and warm-up cancelled out. Modes:

- ``off``: send_message, no hooks;
- ``hooks``: with ``Hooks(on_call=...)`` that does nothing (this library's events alone);
- ``traces``: ``opentelemetry_hooks()`` with an SDK TracerProvider (SimpleSpanProcessor to an
  exporter that drops), no MeterProvider;
- ``traces+metrics``: the same with an SDK MeterProvider;
- ``bare-span``: no hooks; one SDK span with no attribute after each send (the SDK's floor);
- ``attrs-span``: no hooks; one SDK span with the six attributes our span of a send carries
  (the SDK's floor for recording what we record).

Printed: instructions per call and the share of ``off`` each mode adds; then ours above the
bare span (the issue's measure) and above the span with our attributes (our own code alone).
Needs valgrind; takes a few minutes (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from typing import Any

import _bench

WARMUP = 100
MODES = ("off", "hooks", "traces", "traces+metrics", "bare-span", "attrs-span")


def child(mode: str, calls: int, rest_url: str) -> None:
    """Send WARMUP + calls messages in ``mode`` (runs under valgrind)."""
    from clients import OtelSetup

    from signalwire_chat import ChatClient, Hooks

    hooks: Any = None
    otel = None
    if mode == "hooks":
        hooks = Hooks(on_call=lambda event: None)
    elif mode != "off":
        otel = OtelSetup(mode)
        hooks = otel.hooks
    extra_span = None
    if otel is not None and mode in ("bare-span", "attrs-span"):
        extra_span = otel.bare_span if mode == "bare-span" else otel.attrs_span
    token = _bench.bench_token("relay.bench.test")
    with ChatClient(token, rest_url=rest_url, relay_url="ws://127.0.0.1:9/x", hooks=hooks) as c:
        for i in range(WARMUP + calls):
            c.send_message(_bench.ADDRESS_ID, f"hi {i}")
            if extra_span is not None:
                extra_span()
    if otel is not None:
        otel.close()


def count(mode: str, calls: int, rest_url: str) -> int:
    """Instructions of one child run (valgrind's ``I refs``)."""
    return _bench.instructions([sys.executable, __file__, "--child", mode, str(calls), rest_url])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument(
        "--modes", default=",".join(MODES), help=f"a comma-separated subset of {', '.join(MODES)}"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("MODE", "CALLS", "URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not on PATH (apt-get install valgrind)", file=sys.stderr)
        return 3
    per_call = {}
    with _bench.rest_server() as rest_url:
        for mode in args.modes.split(","):
            start, end = count(mode, 0, rest_url), count(mode, args.calls, rest_url)
            per_call[mode] = (end - start) / args.calls
            print(f"{mode}: {per_call[mode]:,.0f} instructions per call", file=sys.stderr)
    base = per_call.get("off", 0.0) or 1.0
    print("| mode | instructions per send_message | added vs off |")
    print("|---|---|---|")
    for mode in per_call:
        added = per_call[mode] - base
        share = f"+{added:,.0f} ({added / base:+.1%})" if mode != "off" else "-"
        print(f"| {mode} | {per_call[mode]:,.0f} | {share} |")
    traces = per_call.get("traces")
    for floor in ("bare-span", "attrs-span"):
        if traces is not None and floor in per_call:
            above = traces - per_call[floor]
            share = above / base
            print(f"traces - {floor}: {above:+,.0f} instructions per call ({share:+.3f} of off)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
