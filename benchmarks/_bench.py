"""Shared helpers of the benchmark processes: core pinning, CPU and memory probes, bench tokens,
the ``signalwire.connect`` request of the hand-written clients, a REST connection to the
emulator."""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

#: The conversation every realtime bench subscribes to and every REST bench reads or writes.
ADDRESS_ID = "cccccccc-0000-4000-8000-00000000c001"
SUBSCRIBER_ID = "aaaaaaaa-0000-4000-8000-000000000001"
#: The bench subscriber's own address ("my address" of the group dialect).
MY_ADDRESS_ID = "aaaaaaaa-0000-4000-8000-00000000a001"
#: The group of MY_ADDRESS_ID and ADDRESS_ID (what the bench REST server's join answers).
GROUP_ID = "99999999-0000-4000-8000-0000000000aa"


def cores() -> tuple[int, int]:
    """Return (client core, server core): two different cores when the machine has two."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) >= 2:
        return allowed[0], allowed[1]
    return allowed[0], allowed[0]


def pin(core: int) -> None:
    """Pin the calling process (all its threads, present and future) to one core."""
    os.sched_setaffinity(0, {core})


def cpu_seconds() -> float:
    """Return user + system CPU time of this process, all threads included."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    """Return the resident set size of this process now (not the peak)."""
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def median(values: Sequence[float]) -> float:
    """Return the median of a non-empty sequence."""
    return float(statistics.median(values))


def bench_token(ch: str) -> str:
    """Return a five-part token shaped like a SAT (JWE compact form) whose header names ``ch``.

    The bench servers accept any token; the official client needs one whose header it can read.
    """
    header = {"alg": "dir", "enc": "A256GCM", "typ": "SAT", "ch": ch}
    encoded = base64.urlsafe_b64encode(json.dumps(header, separators=(",", ":")).encode())
    head = encoded.rstrip(b"=").decode()
    # The other four parts are opaque to a client: any base64url text will do.
    return f"{head}.AQJlbmMta2V5.aXZpdml2aXY.Y2lwaGVydGV4dA.dGFndGFndGFn"


def deadline_after(seconds: float) -> float:
    """Return a monotonic deadline ``seconds`` from now."""
    return time.monotonic() + seconds


def connect_request(token: str, *, request_id: str, agent: str) -> str:
    """Return the ``signalwire.connect`` request a hand-written client sends (events acked)."""
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "signalwire.connect",
            "params": {
                "version": {"major": 4, "minor": 0, "revision": 0},
                "event_acks": True,
                "agent": agent,
                "authentication": {"jwt_token": token},
            },
        }
    )


class Rest:
    """One keep-alive connection to the emulator's REST side, under one Authorization header."""

    def __init__(self, rest_url: str, authorization: str) -> None:
        split = urlsplit(rest_url)
        self.connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=30)
        self.headers = {"Authorization": authorization, "Content-Type": "application/json"}

    def call(self, method: str, path: str, body: object = None) -> Any:
        """Send one request (``body`` as JSON); return the decoded answer, raise on >= 300."""
        data = None if body is None else json.dumps(body).encode()
        self.connection.request(method, path, data, self.headers)
        reply = self.connection.getresponse()
        payload = reply.read()
        if reply.status >= 300:
            raise RuntimeError(f"{method} {path}: {reply.status} {payload[:200]!r}")
        return json.loads(payload) if payload else None

    def close(self) -> None:
        self.connection.close()


@contextlib.contextmanager
def rest_server(*args: str) -> Iterator[str]:
    """Run ``restserver.py`` (with ``args``) in a child process; yield its URL; stop it on exit."""
    with bench_server("restserver.py", *args) as urls:
        yield str(urls["rest_url"])


@contextlib.contextmanager
def bench_server(script: str, *args: str) -> Iterator[dict[str, Any]]:
    """Run a server of this folder (``script`` with ``args``) in a child process; yield the
    JSON line it prints first (its URLs); stop it (close its standard input) on exit."""
    server = subprocess.Popen(
        [sys.executable, script, *args],
        cwd=os.path.dirname(os.path.abspath(__file__)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield json.loads(server.stdout.readline())
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=10)


def instructions(argv: Sequence[str]) -> int:
    """The CPU instructions of one run of ``argv`` under valgrind (its ``I refs``), which do
    not vary with the load of a shared machine."""
    valgrind = ["valgrind", "--tool=cachegrind", "--cache-sim=no"]
    valgrind.append("--cachegrind-out-file=/dev/null")
    done = subprocess.run([*valgrind, *argv], capture_output=True, text=True, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"{argv}: valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))
