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
- ``bare-span``: no hooks; one SDK span with no attribute after each send (the SDK's floor).

Printed: instructions per call and the share of ``off`` each mode adds. Needs valgrind; takes
a few minutes (valgrind runs Python ~50x slower).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WARMUP = 100
MODES = ("off", "hooks", "traces", "traces+metrics", "bare-span")


def child(mode: str, calls: int, rest_url: str) -> None:
    """Send WARMUP + calls messages in ``mode`` (runs under valgrind)."""
    import _bench
    from clients import OtelSetup

    from signalwire_chat import ChatClient, Hooks

    hooks: Any = None
    otel = None
    if mode == "hooks":
        hooks = Hooks(on_call=lambda event: None)
    elif mode != "off":
        otel = OtelSetup(mode)
        hooks = otel.hooks
    bare_span = otel.bare_span if mode == "bare-span" and otel is not None else None
    token = _bench.bench_token("relay.bench.test")
    with ChatClient(token, rest_url=rest_url, relay_url="ws://127.0.0.1:9/x", hooks=hooks) as c:
        for i in range(WARMUP + calls):
            c.send_message(_bench.ADDRESS_ID, f"hi {i}")
            if bare_span is not None:
                bare_span()
    if otel is not None:
        otel.close()


def count(mode: str, calls: int, rest_url: str) -> int:
    """Instructions of one child run (valgrind's ``I refs``)."""
    argv = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    argv += [sys.executable, __file__, "--child", mode, str(calls), rest_url]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{mode}: valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


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
    server = subprocess.Popen(
        [sys.executable, "restserver.py"],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        rest_url = json.loads(server.stdout.readline())["rest_url"]
        per_call = {}
        for mode in args.modes.split(","):
            start, end = count(mode, 0, rest_url), count(mode, args.calls, rest_url)
            per_call[mode] = (end - start) / args.calls
            print(f"{mode}: {per_call[mode]:,.0f} instructions per call", file=sys.stderr)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)
    base = per_call.get("off", 0.0) or 1.0
    print("| mode | instructions per send_message | added vs off |")
    print("|---|---|---|")
    for mode in per_call:
        added = per_call[mode] - base
        share = f"+{added:,.0f} ({added / base:+.1%})" if mode != "off" else "-"
        print(f"| {mode} | {per_call[mode]:,.0f} | {share} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
