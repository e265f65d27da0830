"""Run every benchmark, print one table of ratios, optionally write it to BENCHMARKS.md.

    .venv/bin/python benchmarks/run.py [--quick] [--write BENCHMARKS.md] [--only NAME,...]

Servers (the relay load server, the REST server, the emulator) run in processes of their own
pinned to one core; each client workload runs in a fresh process pinned to the other core
(``taskset`` for Node). Our client and its baselines alternate (A B A B ...) in the same
invocation; each figure is the median of the repeats. ``--quick`` runs the same code paths with
tiny counts and asserts nothing about times: it exits 0 when everything ran (rows of our client
that is not available yet print n/a), 1 when something failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _bench

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
NODE_MODULES = ROOT / "tests" / "conformance" / "js" / "node_modules"
V4_MODULES = ROOT / "tests" / "conformance" / "sdk-js-4.0.0-beta.12" / "node_modules"

# Every count once, as (full run, --quick run): the two sets cannot drift apart key by key.
COUNTS: dict[str, Any] = {
    "repeats": (5, 1),
    "send": {"warmup": (300, 20), "count": (2000, 100)},
    "iter": {
        "messages": (10_000, 1_000),
        "page_size": (100, 100),
        "warmup": (1, 1),
        "count": (3, 1),
    },
    "stream": {"warmup": (5_000, 300), "count": (30_000, 1_500)},
    "official": {"warmup": (20_000, 2_000), "count": (50_000, 3_000)},
    "paced": {"warmup": (200, 20), "count": (2_000, 100)},
    "import_repeats": (15, 3),
    "memory": {"warmup": (20_000, 1_000), "count": (200_000, 5_000)},
    "fanout": {"subscribers": (50, 50), "warmup": (10, 2), "messages": (2000, 10)},
    "subs": {"groups": (1000, 100), "warmup": (5_000, 300), "count": (30_000, 1_500)},
    "coldstart": {"repeats": (9, 1)},
}


def _pick(counts: dict[str, Any], which: int) -> dict[str, Any]:
    """Return one column of COUNTS (0: full, 1: quick) as nested dicts of plain counts."""
    return {
        key: _pick(value, which) if isinstance(value, dict) else value[which]
        for key, value in counts.items()
    }


FULL = _pick(COUNTS, 0)
QUICK = _pick(COUNTS, 1)


class Unavailable(Exception):
    """A participant cannot run here (our client not built yet, Node modules not installed)."""


class Failed(Exception):
    """A participant that should have run did not."""


@dataclass
class Row:
    """One line of the table."""

    what: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    verdict: str
    note: str = ""


@dataclass
class Context:
    """What every benchmark needs: counts, cores, server URLs, and the rows produced so far."""

    counts: dict[str, Any]
    client_core: int
    server_core: int
    servers: dict[str, Any] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


# --- processes -----------------------------------------------------------------------------


def pin_to(core: int) -> Callable[[], None]:
    return lambda: os.sched_setaffinity(0, {core})


@contextlib.contextmanager
def server(argv: Sequence[str], core: int, *, cwd: Path = HERE) -> Iterator[dict[str, Any]]:
    """Start a server process pinned to ``core``; yield its JSON line; stop it on exit."""
    process = subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=pin_to(core),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise Failed(f"{argv[1]} did not start: {process.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        info = json.loads(line)
        info["pid"] = process.pid
        yield info
    finally:
        with contextlib.suppress(OSError):
            process.stdin.close()  # type: ignore[union-attr]
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def client(ctx: Context, case: str, kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one workload of clients.py in a fresh process on the client core."""
    argv = [PYTHON, str(HERE / "clients.py"), case, kind, "--core", str(ctx.client_core)]
    argv += ["--params", json.dumps(params)]
    return finish(argv, timeout=params.get("deadline", 120) + 60)


def node_client(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Run the official client's workload in Node on the client core."""
    node = shutil.which("node")
    if node is None or not (NODE_MODULES / "@signalwire" / "js").is_dir():
        raise Unavailable("node or tests/conformance/js/node_modules missing (make bench installs)")
    argv = [node, str(HERE / "official_client.mjs"), json.dumps(params)]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", str(ctx.client_core), *argv]
    return finish(argv, timeout=params["deadline"] + 60)


def finish(argv: list[str], *, timeout: float) -> dict[str, Any]:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, cwd=HERE, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Failed(f"{' '.join(argv[:4])}: no result within {timeout:.0f} s") from exc
    lines = done.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if done.returncode == 3 and "unavailable" in result:
        raise Unavailable(result["unavailable"])
    if done.returncode != 0 or not result:
        tail = done.stderr.strip().splitlines()[-6:]
        raise Failed(f"exit {done.returncode}: " + " | ".join(tail))
    return dict(result)


# --- the benchmarks ------------------------------------------------------------------------


def interleave(
    ctx: Context, runners: dict[str, Callable[[], dict[str, Any]]]
) -> dict[str, list[dict[str, Any]] | str]:
    """Run each participant once per repeat, in turn; a participant that fails drops out."""
    results: dict[str, list[dict[str, Any]] | str] = {name: [] for name in runners}
    for _ in range(ctx.counts["repeats"]):
        for name, runner in runners.items():
            if isinstance(results[name], str):
                continue
            try:
                results[name].append(runner())  # type: ignore[union-attr]
            except Unavailable as exc:
                results[name] = f"n/a ({exc})"
            except Failed as exc:
                results[name] = f"FAILED ({exc})"
                ctx.failures.append(f"{name}: {exc}")
    return results


def med(results: list[dict[str, Any]] | str, key: str) -> float | None:
    if isinstance(results, str) or not results:
        return None
    return _bench.median([r[key] for r in results])


def add_ratio_row(
    ctx: Context,
    what: str,
    ours: list[dict[str, Any]] | str,
    base: list[dict[str, Any]] | str,
    key: str,
    unit: str,
    target: str,
    *,
    higher_is_better: bool = False,
) -> None:
    """Add a row comparing medians of ``key``; the target is '<= x', '>= x' or 'report'."""
    ours_value, base_value = med(ours, key), med(base, key)
    ratio = ours_value / base_value if ours_value is not None and base_value else None
    verdict = "n/a"
    if ratio is not None:
        if target == "report":
            verdict = "report"
        else:
            bound = float(target.split()[1])
            met = ratio >= bound if higher_is_better else ratio <= bound
            verdict = "met" if met else "MISSED"
    note = next((r for r in (ours, base) if isinstance(r, str)), "")
    note = note.removeprefix("n/a (").removesuffix(")") if note.startswith("n/a (") else note
    ctx.rows.append(
        Row(what, fmt(ours_value, unit), fmt(base_value, unit), ratio, target, verdict, note)
    )


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "MB":
        return f"{value:.2f} MB"
    if unit == "ms":
        return f"{value:.1f} ms"
    return f"{value:,.1f} {unit}"


def rest_params(ctx: Context, counts: dict[str, Any]) -> dict[str, Any]:
    """Return a REST case's parameters: its counts, the bench servers' URLs, a bench token."""
    return {
        **counts,
        "rest_url": ctx.servers["rest"]["rest_url"],
        "relay_url": ctx.servers["relay"]["stream_url"],
        "token": _bench.bench_token("relay.bench.test"),
    }


def bench_send(ctx: Context) -> None:
    params = rest_params(ctx, ctx.counts["send"])
    results = interleave(
        ctx,
        {
            "requests": lambda: client(ctx, "send", "requests", params),
            "ours": lambda: client(ctx, "send", "ours", params),
            "http.client": lambda: client(ctx, "send", "httpclient", params),
        },
    )
    add_ratio_row(
        ctx,
        "send_message (group joined): CPU/call vs requests.Session().post",
        results["ours"],
        results["requests"],
        "cpu_us",
        "us",
        "<= 0.45",
    )
    add_ratio_row(
        ctx,
        "send_message: CPU/call vs raw http.client (the limit)",
        results["ours"],
        results["http.client"],
        "cpu_us",
        "us",
        "<= 2.2",
    )
    first = interleave(
        ctx,
        {
            "requests": lambda: client(ctx, "first_send", "requests", params),
            "ours": lambda: client(ctx, "first_send", "ours", params),
        },
    )
    add_ratio_row(
        ctx,
        "first send to a new address (join + send): CPU vs two requests posts",
        first["ours"],
        first["requests"],
        "cpu_us",
        "us",
        "<= 0.85",
    )


def bench_otel(ctx: Context) -> None:
    params = rest_params(ctx, ctx.counts["send"])
    kinds = ("off", "traces", "traces+metrics", "bare-span")
    results = interleave(
        ctx, {kind: functools.partial(client, ctx, "otel", kind, params) for kind in kinds}
    )
    add_ratio_row(
        ctx,
        "send_message with tracing on (OpenTelemetry SDK, every span recorded) vs off: CPU/call",
        results["traces"],
        results["off"],
        "cpu_us",
        "us",
        "<= 1.15",
    )
    add_ratio_row(
        ctx,
        "send_message with tracing and the SDK's metrics on vs off: CPU/call",
        results["traces+metrics"],
        results["off"],
        "cpu_us",
        "us",
        "report",
    )
    add_ratio_row(
        ctx,
        "send_message + one bare SDK span (no attribute, no hook: the SDK's floor) vs off",
        results["bare-span"],
        results["off"],
        "cpu_us",
        "us",
        "report",
    )
    # What tracing costs above the least any tracing of a call costs (one bare span), as a
    # share of the untraced call: (traces - bare-span) / off, medians of the same run.
    traced, bare, off = (med(results[k], "cpu_us") for k in ("traces", "bare-span", "off"))
    above = traced - bare if traced is not None and bare is not None else None
    share = above / off if above is not None and off else None
    ctx.rows.append(
        Row(
            "tracing on: our share above one bare SDK span, (traces - bare span) / off",
            fmt(above, "us"),
            fmt(off, "us"),
            share,
            "<= 0.05",
            "n/a" if share is None else ("met" if share <= 0.05 else "MISSED"),
            "the service sends a request id (restserver.py's X-Request-Id, as the emulator)",
        )
    )


def bench_iter(ctx: Context) -> None:
    counts = ctx.counts["iter"]
    params = rest_params(ctx, counts)
    results = interleave(
        ctx,
        {
            "requests": lambda: client(ctx, "iter", "requests", params),
            "ours": lambda: client(ctx, "iter", "ours", params),
        },
    )
    for name in ("ours", "requests"):  # per read of the whole history, in ms
        if not isinstance(results[name], str):
            for r in results[name]:  # type: ignore[union-attr]
                r["cpu_ms"] = r["cpu_us"] / 1000
    add_ratio_row(
        ctx,
        f"iter_messages: CPU to read {counts['messages']:,} "
        f"(page_size={counts['page_size']}) vs requests loop on links.next",
        results["ours"],
        results["requests"],
        "cpu_ms",
        "ms",
        "<= 0.9",  # issue 20, with one decoder (issue 17); benchmarks/iter_instructions.py
    )


def server_cpu_seconds(pid: int) -> float:
    """Return the user + system CPU time a server process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def watching_server(
    pid: int, events: int, runner: Callable[[], dict[str, Any]]
) -> Callable[[], dict[str, Any]]:
    """Wrap a realtime runner: add the load server's CPU per event served during the run."""

    def run() -> dict[str, Any]:
        before = server_cpu_seconds(pid)
        result = runner()
        result["server_cpu_us"] = (server_cpu_seconds(pid) - before) / events * 1e6
        return result

    return run


def server_note(results: list[dict[str, Any]] | str) -> str:
    value = med(results, "server_cpu_us")
    if value is None or value <= 0:
        return ""
    return f"load server {value:.1f} us/event (its core could serve ~{1e6 / value:,.0f}/s)"


def bench_stream(ctx: Context) -> None:
    relay = ctx.servers["relay"]
    deadline = 60.0 if ctx.counts is QUICK else 120.0
    py_params = {
        **ctx.counts["stream"],
        "url": relay["stream_url"],
        "http_url": relay["http_url"],
        "token": _bench.bench_token("relay.bench.test"),
        "deadline": deadline,
    }
    node_params = {
        **ctx.counts["official"],
        "token": _bench.bench_token(relay["stream_url"].rstrip("/")),
        "address_id": _bench.ADDRESS_ID,
        "deadline": deadline,
    }
    py_events = py_params["warmup"] + py_params["count"]
    node_events = node_params["warmup"] + node_params["count"]
    results = interleave(
        ctx,
        {
            "naive": watching_server(
                relay["pid"], py_events, lambda: client(ctx, "stream", "naive", py_params)
            ),
            "ours": watching_server(
                relay["pid"], py_events, lambda: client(ctx, "stream", "ours", py_params)
            ),
            "floor": lambda: client(ctx, "stream", "floor", py_params),
            "official": watching_server(
                relay["pid"], node_events, lambda: node_client(ctx, node_params)
            ),
        },
    )
    add_ratio_row(
        ctx,
        "realtime events/s, window 100, to a callback, vs official @signalwire/js in Node",
        results["ours"],
        results["official"],
        "per_s",
        "/s",
        ">= 3.0",
        higher_is_better=True,
    )
    ctx.rows[-1].note = ctx.rows[-1].note or "; ".join(
        f"{name}: {note}" for name in ("ours", "official") if (note := server_note(results[name]))
    )
    add_ratio_row(
        ctx,
        "realtime CPU/event vs the floor (frame reader on the same bytes + json.loads + no-op)",
        results["ours"],
        results["floor"],
        "cpu_us",
        "us",
        "<= 2.0",
    )
    add_ratio_row(
        ctx,
        "realtime CPU/event (recv, ack, decode, callback) vs naive websocket-client loop",
        results["ours"],
        results["naive"],
        "cpu_us",
        "us",
        "<= 0.05",
    )
    add_ratio_row(
        ctx,
        "  (context) official client CPU/event vs naive websocket-client loop",
        results["official"],
        results["naive"],
        "cpu_us",
        "us",
        "report",
    )
    add_ratio_row(
        ctx,
        "  (context) naive websocket-client loop events/s vs official client",
        results["naive"],
        results["official"],
        "per_s",
        "/s",
        "report",
        higher_is_better=True,
    )


def bench_subs(ctx: Context) -> None:
    """One client with N subscriptions, events spread over them, vs one subscription."""
    relay = ctx.servers["relay"]
    counts = ctx.counts["subs"]
    groups = counts["groups"]
    base = {
        "warmup": counts["warmup"],
        "count": counts["count"],
        "http_url": relay["http_url"],
        "token": _bench.bench_token("relay.bench.test"),
        "deadline": 120.0,
    }
    stream = relay["stream_url"].rstrip("/")
    one = {**base, "groups": 1, "url": f"{stream}/groups/1"}
    many = {**base, "groups": groups, "url": f"{stream}/groups/{groups}"}
    results = interleave(
        ctx,
        {
            "one": lambda: client(ctx, "subs", "ours", one),
            "many": lambda: client(ctx, "subs", "ours", many),
        },
    )
    add_ratio_row(
        ctx,
        f"{groups:,} subscriptions on one client, events spread over them: CPU/event vs one"
        " subscription",
        results["many"],
        results["one"],
        "cpu_us",
        "us",
        "<= 1.2",
    )
    if not ctx.rows[-1].note:
        ctx.rows[-1].note = (
            f"events/s {fmt(med(results['many'], 'per_s'), '/s')} with {groups:,},"
            f" {fmt(med(results['one'], 'per_s'), '/s')} with one"
        )


def bench_paced(ctx: Context) -> None:
    relay = ctx.servers["relay"]
    params = {
        **ctx.counts["paced"],
        "url": relay["paced_url"],
        "http_url": relay["http_url"],
        "token": _bench.bench_token("relay.bench.test"),
        "deadline": 120.0,
    }
    results = interleave(
        ctx,
        {
            "naive": lambda: client(ctx, "paced", "naive", params),
            "ours": lambda: client(ctx, "paced", "ours", params),
        },
    )
    add_ratio_row(
        ctx,
        "realtime latency server send -> callback, one at a time, median",
        results["ours"],
        results["naive"],
        "median_us",
        "us",
        "<= 1.25",
    )
    if not ctx.rows[-1].note:
        ctx.rows[-1].note = "; ".join(
            f"{name} p90 {fmt(med(results[name], 'p90_us'), 'us')}, "
            f"p99 {fmt(med(results[name], 'p99_us'), 'us')}"
            for name in ("ours", "naive")
        )


IMPORT_CODE = """
import sys, time
start = time.perf_counter()
{statement}
elapsed = time.perf_counter() - start
heavy = sorted(m for m in ("aiohttp", "signalwire_chat.emulator") if m in sys.modules)
print('{{"wall_us": %f, "heavy": %s}}' % (elapsed * 1e6, str(heavy).replace("'", '"')))
"""


def bench_import(ctx: Context) -> None:
    # Users import from compiled bytecode (pip compiles at install): let the first, untimed run
    # of each statement write it even where PYTHONDONTWRITEBYTECODE is set.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    def run(statement: str) -> dict[str, Any]:
        argv = [PYTHON, "-c", IMPORT_CODE.format(statement=statement)]
        done = subprocess.run(
            argv,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            preexec_fn=pin_to(ctx.client_core),
        )
        if done.returncode != 0:
            if "ModuleNotFoundError" in done.stderr or "ImportError" in done.stderr:
                raise Unavailable(done.stderr.strip().splitlines()[-1])
            raise Failed(done.stderr.strip().splitlines()[-1])
        return dict(json.loads(done.stdout))

    statements = {
        "deps": "import requests, websocket, attrs, cattrs",
        "ours": "import signalwire_chat",
        # The realtime side (and websocket-client) loads on first use; hold it to the same
        # bound once loaded, as after a first subscribe().
        "ours_rt": "import signalwire_chat, signalwire_chat._realtime",
    }
    for statement in statements.values():
        with contextlib.suppress(Unavailable, Failed):
            run(statement)
    saved = ctx.counts["repeats"]
    ctx.counts["repeats"] = ctx.counts["import_repeats"]
    try:
        results = interleave(
            ctx,
            {
                "deps": lambda: run(statements["deps"]),
                "ours": lambda: run(statements["ours"]),
                "ours_rt": lambda: run(statements["ours_rt"]),
            },
        )
    finally:
        ctx.counts["repeats"] = saved
    for name in statements:
        for r in results[name] if not isinstance(results[name], str) else []:
            r["wall_ms"] = r["wall_us"] / 1000
    add_ratio_row(
        ctx,
        "import signalwire_chat wall time vs import requests, websocket, attrs, cattrs",
        results["ours"],
        results["deps"],
        "wall_ms",
        "ms",
        "<= 1.15",
    )
    if not isinstance(results["ours"], str) and results["ours"]:
        heavy = results["ours"][0]["heavy"]
        if heavy:
            ctx.rows[-1].verdict = "MISSED"
            ctx.rows[-1].note = f"imports {', '.join(heavy)}"
        else:
            ctx.rows[
                -1
            ].note = "aiohttp and the emulator not imported; the realtime side loads on first use"
    add_ratio_row(
        ctx,
        "  (context) the same with the realtime side loaded (after a first subscribe)",
        results["ours_rt"],
        results["deps"],
        "wall_ms",
        "ms",
        "<= 1.10",
    )


def bench_memory(ctx: Context) -> None:
    relay = ctx.servers["relay"]
    counts = ctx.counts["memory"]
    params = {
        **counts,
        "url": relay["stream_url"],
        "http_url": relay["http_url"],
        "token": _bench.bench_token("relay.bench.test"),
        "deadline": 600.0 if ctx.counts is FULL else 60.0,
    }
    what = f"resident memory growth over {counts['count']:,} events (after {counts['warmup']:,})"
    try:
        result = client(ctx, "memory", "ours", params)
    except (Unavailable, Failed) as exc:
        if isinstance(exc, Failed):
            ctx.failures.append(f"memory: {exc}")
        ctx.rows.append(Row(what, "n/a", "", None, "<= 2 MB", "n/a", str(exc)))
        return
    growth = result["rss_growth_mb"]
    verdict = "met" if growth <= 2.0 else "MISSED"
    note = f"RSS {result['rss_start_mb']:.1f} MB after warm-up; {result['per_s']:,.0f} events/s"
    ctx.rows.append(Row(what, fmt(growth, "MB"), "", None, "<= 2 MB", verdict, note))


@contextlib.contextmanager
def emulator_process(ctx: Context) -> Iterator[dict[str, Any]]:
    """Run ``python -m signalwire_chat.emulator`` on the server core; yield its JSON line."""
    with tempfile.TemporaryDirectory(prefix="swchat-bench-") as tmp:
        argv = [PYTHON, "-m", "signalwire_chat.emulator", "--port", "0", "--log-level", "WARNING"]
        argv += ["--db", str(Path(tmp) / "bench.db")]
        try:
            # Not from the checkout's root: ``-m`` puts the working folder first on sys.path,
            # where it would shadow the PYTHONPATH that compare.py sets (its base commit's
            # emulator was this checkout's).
            cm = server(argv, ctx.server_core, cwd=Path(tmp))
            emulator = cm.__enter__()
        except Failed as exc:
            raise Unavailable(f"emulator did not start: {str(exc)[-300:]}") from exc
        try:
            yield emulator
        finally:
            cm.__exit__(None, None, None)


def bench_fanout(ctx: Context) -> None:
    counts = ctx.counts["fanout"]
    what = f"emulator capacity: events/s fanned out to {counts['subscribers']} subscribers"
    try:
        with emulator_process(ctx) as emulator:
            params = {**counts, **emulator, "deadline": 120.0}
            result = client(ctx, "fanout", "raw", params)
    except (Unavailable, Failed) as exc:
        if isinstance(exc, Failed):
            ctx.failures.append(f"fanout: {exc}")
        ctx.rows.append(Row(what, "n/a", "", None, "report", "n/a", str(exc)[-300:]))
        return
    # The reader must not be what is measured: it reports its own share of its core.
    note = (
        f"{result['messages_per_s']:,.0f} messages/s sent; the reading client used"
        f" {result['client_cpu_share']:.0%} of its core, the emulator"
        f" {result.get('server_cpu_share', 0.0):.0%} of its own"
    )
    ctx.rows.append(Row(what, fmt(result["per_s"], "/s"), "", None, "report", "report", note))
    members = counts["subscribers"]
    sends = f"emulator capacity: chat messages accepted/s over REST ({members} members each)"
    note = (
        f"{result.get('server_cpu_per_message_ms', 0.0):.2f} ms of emulator CPU per message"
        f" (REST, store, fan-out and acks)"
    )
    ctx.rows.append(
        Row(sends, fmt(result["messages_per_s"], "/s"), "", None, "report", "report", note)
    )


def v4_coldstart(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """Run the official v4 client's cold start in Node on the client core."""
    node = shutil.which("node")
    if node is None or not (V4_MODULES / "@signalwire" / "js").is_dir():
        raise Unavailable(
            "node or tests/conformance/sdk-js-4.0.0-beta.12/node_modules missing (make bench)"
        )
    argv = [node, str(HERE / "official_v4_coldstart.cjs"), json.dumps(params)]
    if shutil.which("taskset"):
        argv = ["taskset", "-c", str(ctx.client_core), *argv]
    return finish(argv, timeout=params["deadline"] + 60)


def bench_coldstart(ctx: Context) -> None:
    """Client created -> subscription live: ours vs @signalwire/js 4.0.0-beta.12, one emulator."""
    import coldstart

    what = (
        "cold start: client created -> subscription live (returned), vs @signalwire/js"
        " 4.0.0-beta.12 reaching textMessages$, same emulator, median"
    )
    saved = ctx.counts["repeats"]
    try:
        with emulator_process(ctx) as emulator:

            def run(participant: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
                try:
                    pair = coldstart.make_pair(emulator)
                except (OSError, RuntimeError, KeyError) as exc:
                    raise Failed(f"setting up the subscribers: {exc}") from exc
                return participant({**pair, "deadline": 60.0})

            ctx.counts["repeats"] = ctx.counts["coldstart"]["repeats"]
            results = interleave(
                ctx,
                {
                    "ours": lambda: run(lambda p: client(ctx, "coldstart", "ours", p)),
                    "official": lambda: run(lambda p: v4_coldstart(ctx, p)),
                },
            )
    except Unavailable as exc:
        ctx.rows.append(Row(what, "n/a", "", None, "<= 1.0", "n/a", str(exc)[-300:]))
        return
    finally:
        ctx.counts["repeats"] = saved
    add_ratio_row(ctx, what, results["ours"], results["official"], "subscribed_ms", "ms", "<= 1.0")
    if not ctx.rows[-1].note:
        ctx.rows[-1].note = "; ".join(
            f"{name}: first message {fmt(med(results[name], 'live_ms'), 'ms')} after creation,"
            f" CPU to subscribed {fmt(med(results[name], 'cpu_ms'), 'ms')}"
            for name in ("ours", "official")
        )
    add_ratio_row(
        ctx,
        "  (context) cold start to the first live message (bob posts once subscribed)",
        results["ours"],
        results["official"],
        "live_ms",
        "ms",
        "report",
    )


def bench_frames(ctx: Context) -> None:
    """The frame layer alone (benchmarks/frames.py), in a fresh process on the client core."""
    argv = [PYTHON, str(HERE / "frames.py"), "--core", str(ctx.client_core)]
    if ctx.counts is QUICK:
        argv.append("--quick")
    what = "frame layer: 16 MiB message in 16 KiB reads vs the same in 256 KiB reads"
    if ctx.counts is QUICK:
        what = what.replace("16 MiB", "4 MiB")
    try:
        result = finish(argv, timeout=600)
    except Failed as exc:
        ctx.failures.append(f"frames: {exc}")
        ctx.rows.append(Row(what, "FAILED", "", None, "<= 2.0", "FAILED", str(exc)[-300:]))
        return
    size = f"{result['big_bytes'] // (1024 * 1024)} MiB"
    rows = [
        (what, result["big_16k"]["ours"], result["big_256k"]["ours"], "ms", "<= 2.0"),
        (
            "  (context) frame layer CPU/event (~700 B text, UTF-8 checked): wsproto vs ours",
            result["events"]["wsproto"],
            result["events"]["ours"],
            "us",
            "report",
        ),
        (
            "  (context) frame layer CPU/event: websocket-client _abnf vs ours",
            result["events"]["websocket-client"],
            result["events"]["ours"],
            "us",
            "report",
        ),
        (
            f"  (context) {size} in 4 KiB fragments: websocket-client _abnf vs ours",
            result["fragmented"]["websocket-client"],
            result["fragmented"]["ours"],
            "ms",
            "report",
        ),
    ]
    per_event = 1e6 / result["event_count"]
    for label, ours_value, base_value, unit, target in rows:
        scale = per_event if unit == "us" else 1000.0
        ours_scaled = ours_value * scale if ours_value is not None else None
        base_scaled = base_value * scale if base_value is not None else None
        ratio = ours_scaled / base_scaled if ours_scaled is not None and base_scaled else None
        verdict = "n/a" if ratio is None else "report"
        if ratio is not None and target != "report":
            verdict = "met" if ratio <= float(target.split()[1]) else "MISSED"
        note = "" if ours_scaled is not None and base_scaled is not None else "not installed"
        ctx.rows.append(
            Row(label, fmt(ours_scaled, unit), fmt(base_scaled, unit), ratio, target, verdict, note)
        )
    ctx.rows[-4].note = ctx.rows[-4].note or "CPU of the reader alone, text UTF-8 checked"


BENCHES: dict[str, Callable[[Context], None]] = {
    "send": bench_send,
    "iter": bench_iter,
    "stream": bench_stream,
    "paced": bench_paced,
    "import": bench_import,
    "memory": bench_memory,
    "fanout": bench_fanout,
    "frames": bench_frames,
    "otel": bench_otel,
    "subs1000": bench_subs,
    "coldstart": bench_coldstart,
}


# --- output --------------------------------------------------------------------------------


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("requests", "websocket-client", "attrs", "cattrs", "signalwire-chat"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    node = shutil.which("node")
    found["node"] = (
        subprocess.run(
            [node, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if node
        else "not installed"
    )
    package = NODE_MODULES / "@signalwire" / "js" / "package.json"
    found["@signalwire/js"] = (
        json.loads(package.read_text())["version"] if package.exists() else "not installed"
    )
    v4 = V4_MODULES / "@signalwire" / "js" / "package.json"
    found["@signalwire/js (cold start)"] = (
        json.loads(v4.read_text())["version"] if v4.exists() else "not installed"
    )
    return found


def machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def table(rows: list[Row]) -> str:
    head = "| benchmark | ours | baseline | ratio | target | verdict |"
    lines = [head, "|---|---|---|---|---|---|"]
    for row in rows:
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else ""
        verdict = row.verdict + (f" - {row.note}" if row.note else "")
        lines.append(
            f"| {row.what} | {row.ours} | {row.baseline} | {ratio} | {row.target} | {verdict} |"
        )
    return "\n".join(lines)


def document(command: str, rows: list[Row], elapsed: float, ctx: Context) -> str:
    found = versions()
    version_lines = "\n".join(f"- {name} {value}" for name, value in found.items())
    intro = textwrap.fill(
        "Ratios are ours / baseline, measured in the same invocation: the client process is"
        f" pinned to core {ctx.client_core}, every server to core {ctx.server_core}; each figure"
        f" is the median of {ctx.counts['repeats']} runs, our client and its baselines"
        " alternating, each run in a fresh process, after a warm-up. CPU is user + system time"
        " of the whole client process (all threads, `getrusage(RUSAGE_SELF)`;"
        " `process.cpuUsage()` in Node) around the measured loop only. Absolute times on a"
        " shared machine are noise; read the ratios.",
        width=100,
    )
    return f"""# Benchmarks

Generated by `{command}` on {time.strftime("%Y-%m-%d")} in {elapsed:.0f} s
({machine()}). Regenerate with `make bench`.

{intro}

{table(rows)}

How each row is measured (sources in `benchmarks/`):
- send_message: `POST /api/fabric/messages` to a minimal asyncio HTTP/1.1 server
  (`restserver.py`); the baselines are what a user would otherwise write: a `requests.Session`
  `post(json=...)` with `raise_for_status()` and `.json()`, and the floor, a raw keep-alive
  `http.client` connection with `json.dumps`/`json.loads`.
- iter_messages: the whole history of one conversation, page by page; the baseline follows
  `links.next` with `requests` and calls `.json()` on each page.
- realtime: `loadserver.py` speaks just enough of the relay protocol (connect result,
  authorization state, then `conversation.message` events from a pre-encoded template, at most
  100 unacknowledged; it counts the acknowledgements). The same server serves the naive
  `websocket-client` loop (`recv()`, `json.loads`, send the ack, call back), our client
  (`subscribe`, callback on its dispatcher thread) and the official client in Node
  (`chat.subscribe`, counting `onMessage` calls, {ctx.counts["official"]["warmup"]:,} events of
  warm-up). Latency: one event at a time, the next 1 ms after the acknowledgement; the message's
  `ts` is the server's send time, the callback subtracts it from `time.time()`. The floor, in
  the same run: the load server's frames for the same events, grouped as it writes them, built
  before the measure, then our frame reader (RFC 6455 checks, UTF-8 checked), `json.loads` of
  each event and the same callback, with no socket, acknowledgement or thread: the least any
  client must do per event.
- import: `time.perf_counter()` around the import statement in a fresh interpreter, from
  compiled bytecode. `import signalwire_chat` leaves the realtime side (and websocket-client) to
  its first use; the context row times the import with it loaded.
- memory: resident set size (`/proc/self/statm`) after warm-up and after the run, both after
  `gc.collect()`, in one process of our client.
- emulator capacity: the emulator (`python -m signalwire_chat.emulator`) on its own core; 50
  subscribers join one address and read with a cheap raw-socket reader; 4 threads post messages.
- 1,000 subscriptions: the load server's spread mode (relay URL path `/groups/N`) sends event `k`
  to group `k % N`; one `ChatClient` subscribes to all N groups (`Group(id=...)`, one callback)
  and is measured only once the last `subscribe()` returned. The baseline is the same client and
  server path with N = 1 (one subscription receiving every event).
- cold start: one emulator process on the server core; before each run two fresh subscribers
  (alice, and bob in a group with her) are minted over REST (`benchmarks/coldstart.py`). From just
  before the client object is created (the package or SDK already imported): ours until
  `ChatClient.subscribe(bob's address)` returned (it joins, reads the history's newest id and
  connects); `@signalwire/js` 4.0.0-beta.12 in Node (`official_v4_coldstart.cjs`) until
  `isConnected$`, `directory.get$(bob)` and `textMessages$` (join and history) have emitted. Then
  bob posts a message over REST and the run ends when it reaches the subscriber (the context row).

Versions:
{version_lines}
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts: a smoke test")
    parser.add_argument("--write", metavar="PATH", help="write the table and context to PATH")
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(BENCHES)}")
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON (compare.py)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(BENCHES)
    unknown = sorted(set(chosen) - set(BENCHES))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    counts = QUICK if args.quick else FULL
    client_core, server_core = _bench.cores()
    ctx = Context(counts=counts, client_core=client_core, server_core=server_core)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        relay = stack.enter_context(
            server([PYTHON, "loadserver.py", "--core", str(server_core)], server_core)
        )
        rest_argv = [PYTHON, "restserver.py", "--core", str(server_core)]
        rest = stack.enter_context(
            server([*rest_argv, "--messages", str(counts["iter"]["messages"])], server_core)
        )
        ctx.servers = {"relay": relay, "rest": rest}
        for name in chosen:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            BENCHES[name](ctx)
    elapsed = time.monotonic() - started
    print(table(ctx.rows))
    command = "python benchmarks/run.py" + " ".join(
        ["", *(["--quick"] if args.quick else []), *(["--write", args.write] if args.write else [])]
    )
    if args.json:
        rows = [dataclasses.asdict(row) for row in ctx.rows]
        Path(args.json).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    if args.write:
        Path(args.write).write_text(document(command, ctx.rows, elapsed, ctx), encoding="utf-8")
        print(f"wrote {args.write}", file=sys.stderr)
    for failure in ctx.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    print(f"done in {elapsed:.0f} s", file=sys.stderr)
    return 1 if ctx.failures else 0


if __name__ == "__main__":
    sys.exit(main())
