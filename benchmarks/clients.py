"""Client-side workloads of the benchmarks: one case per process, one JSON result line on stdout.

Usage: ``python benchmarks/clients.py CASE KIND --core N --params JSON``. Every case warms up,
then measures the CPU time of this process (all threads, ``RUSAGE_SELF``) and the wall time around
the measured loop only. Exit status 3 means "our client is not available (yet)"; anything else
non-zero is a failure.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import _bench

UNAVAILABLE = 3


class Unavailable(Exception):
    """Our client, or the part of it a case needs, is not there (yet)."""


def our_client_class() -> Any:
    """Return signalwire_chat.ChatClient, or raise Unavailable."""
    try:
        import signalwire_chat
    except ImportError as exc:
        raise Unavailable(f"import signalwire_chat: {exc}") from exc
    client_class = getattr(signalwire_chat, "ChatClient", None)
    if client_class is None:
        raise Unavailable("signalwire_chat.ChatClient does not exist yet")
    return client_class


class Meter:
    """Counts operations; samples CPU, wall and RSS at the end of warm-up and of the run."""

    def __init__(self, warmup: int, count: int) -> None:
        self.warmup = warmup
        self.count = count
        self.seen = 0
        self.done = threading.Event()
        self.start: tuple[float, float, int] = (0.0, 0.0, 0)
        self.end: tuple[float, float, int] = (0.0, 0.0, 0)
        if warmup == 0:
            self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, int]:
        return (_bench.cpu_seconds(), time.perf_counter(), 0)

    def tick(self) -> None:
        """Record one operation (call from whichever thread completes it)."""
        self.seen += 1
        if self.seen == self.warmup:
            self.start = self._sample()
        elif self.seen == self.warmup + self.count:
            self.end = self._sample()
            self.done.set()

    def result(self) -> dict[str, float]:
        """Return CPU and wall per operation (microseconds) and operations per second."""
        cpu = self.end[0] - self.start[0]
        wall = self.end[1] - self.start[1]
        return {
            "cpu_us": cpu / self.count * 1e6,
            "wall_us": wall / self.count * 1e6,
            "per_s": self.count / wall,
            "count": self.count,
        }


# --- send_message --------------------------------------------------------------------------


def send_requests(p: dict[str, Any]) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {p['token']}"
    url = p["rest_url"] + "/api/fabric/messages"

    def op(i: int) -> None:
        reply = session.post(url, json=_send_body(_bench.GROUP_ID, f"hi {i}"))
        reply.raise_for_status()
        reply.json()

    return run_ops(op, p)


def _send_body(group_id: str, text: str) -> dict[str, Any]:
    return {"group_id": group_id, "from_fabric_address_id": _bench.MY_ADDRESS_ID, "text": text}


def _new_address(i: int) -> str:
    return f"dddddddd-0000-4000-8000-{i:012d}"


def first_send_requests(p: dict[str, Any]) -> dict[str, Any]:
    """A first message to a new address, by hand: the join, then the send."""
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {p['token']}"
    join_url = p["rest_url"] + "/api/fabric/conversations/join"
    send_url = p["rest_url"] + "/api/fabric/messages"

    def op(i: int) -> None:
        members = [_new_address(i), _bench.MY_ADDRESS_ID]
        body = {"from_fabric_address_id": _bench.MY_ADDRESS_ID, "fabric_address_ids": members}
        joined = session.post(join_url, json=body)
        joined.raise_for_status()
        sent = session.post(send_url, json=_send_body(joined.json()["group_id"], f"hi {i}"))
        sent.raise_for_status()
        sent.json()

    return run_ops(op, p)


def first_send_ours(p: dict[str, Any]) -> dict[str, Any]:
    """A first message to a new address with our client: it joins, caches, sends."""
    client = our_client_class()(p["token"], rest_url=p["rest_url"], relay_url=p["relay_url"])
    try:
        client.my_address_id()  # once per client, not per address: outside the measure
        return run_ops(lambda i: client.send_message(_new_address(i), f"hi {i}"), p)
    finally:
        client.close()


def send_httpclient(p: dict[str, Any]) -> dict[str, Any]:
    split = urlsplit(p["rest_url"])
    connection = http.client.HTTPConnection(split.hostname or "", split.port)
    headers = {"Authorization": f"Bearer {p['token']}", "Content-Type": "application/json"}

    def op(i: int) -> None:
        body = json.dumps(_send_body(_bench.GROUP_ID, f"hi {i}")).encode()
        connection.request("POST", "/api/fabric/messages", body, headers)
        reply = connection.getresponse()
        data = reply.read()
        if reply.status != 201:
            raise RuntimeError(f"status {reply.status}")
        json.loads(data)

    return run_ops(op, p)


def send_ours(p: dict[str, Any]) -> dict[str, Any]:
    client = our_client_class()(p["token"], rest_url=p["rest_url"], relay_url=p["relay_url"])
    try:
        return run_ops(lambda i: client.send_message(_bench.ADDRESS_ID, f"hi {i}"), p)
    finally:
        client.close()


class OtelSetup:
    """The OpenTelemetry SDK of one tracing mode, as an application would set it up.

    Spans are all sampled and go through a SimpleSpanProcessor (on the calling thread, so
    its cost is measured) to an exporter that drops them. ``mode``:

    - ``traces``: our hooks with an SDK TracerProvider; the meter is the API's no-op one, as
      for an application that set up tracing only;
    - ``traces+metrics``: an SDK MeterProvider too, aggregating every measurement (read by
      nobody);
    - ``bare-span``: no hooks; :meth:`bare_span` makes one SDK span with no attribute, the
      least any tracing of a call can cost (the SDK's floor, none of our code);
    - ``attrs-span``: no hooks; :meth:`attrs_span` makes one SDK span with the six attributes
      our span of a send carries, its times given as ours are (what the SDK charges for
      recording what we record; none of our code either).

    Raises Unavailable without the SDK. Used by this module and otel_instructions.py.
    """

    def __init__(self, mode: str) -> None:
        try:
            from opentelemetry.metrics import NoOpMeterProvider
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import (
                SimpleSpanProcessor,
                SpanExporter,
                SpanExportResult,
            )
            from opentelemetry.trace import SpanKind

            from signalwire_chat.otel import opentelemetry_hooks
        except ImportError as exc:
            raise Unavailable(f"opentelemetry-sdk: {exc}") from exc

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        self.mode = mode
        self._kind = SpanKind.CLIENT
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(Drop()))
        self.meter_provider: Any = (
            MeterProvider(metric_readers=[InMemoryMetricReader()])
            if mode == "traces+metrics"
            else NoOpMeterProvider()
        )
        self.hooks: Any = None
        if mode not in ("bare-span", "attrs-span"):
            self.hooks = opentelemetry_hooks(
                tracer_provider=self.tracer_provider, meter_provider=self.meter_provider
            )
        self._tracer = self.tracer_provider.get_tracer("bench")

    def bare_span(self) -> None:
        """One SDK span with no attribute, started and ended."""
        self._tracer.start_span("POST", kind=self._kind).end()

    def attrs_span(self) -> None:
        """One SDK span with the attributes of our span of a send (values of the same types)."""
        end = time.time_ns()
        self._tracer.start_span(
            "POST /api/fabric/messages",
            kind=self._kind,
            attributes={
                "http.request.method": "POST",
                "server.address": "127.0.0.1",
                "url.template": "/api/fabric/messages",
                "server.port": 8080,
                "http.response.status_code": 201,
                "signalwire_chat.request_id": "6f1c8d2e-5b7a-4c3e-9f0d-2a4b6c8e0f13",
            },
            start_time=end - 1000,
        ).end(end)

    def close(self) -> None:
        self.tracer_provider.shutdown()
        if self.mode == "traces+metrics":
            self.meter_provider.shutdown()


def send_otel(p: dict[str, Any], *, mode: str) -> dict[str, Any]:
    """send_message with OpenTelemetry on in ``mode`` (see :class:`OtelSetup`)."""
    otel = OtelSetup(mode)
    client = our_client_class()(
        p["token"], rest_url=p["rest_url"], relay_url=p["relay_url"], hooks=otel.hooks
    )

    def send(i: int) -> None:
        client.send_message(_bench.ADDRESS_ID, f"hi {i}")

    def send_and_bare_span(i: int) -> None:
        client.send_message(_bench.ADDRESS_ID, f"hi {i}")
        otel.bare_span()

    def send_and_attrs_span(i: int) -> None:
        client.send_message(_bench.ADDRESS_ID, f"hi {i}")
        otel.attrs_span()

    ops = {"bare-span": send_and_bare_span, "attrs-span": send_and_attrs_span}
    try:
        return run_ops(ops.get(mode, send), p)
    finally:
        client.close()
        otel.close()


def run_ops(op: Callable[[int], object], p: dict[str, Any]) -> dict[str, Any]:
    meter = Meter(p["warmup"], p["count"])
    for i in range(p["warmup"] + p["count"]):
        op(i)
        meter.tick()
    return meter.result()


# --- iter_messages -------------------------------------------------------------------------


def iter_requests(p: dict[str, Any]) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {p['token']}"
    first = f"{p['rest_url']}/api/fabric/conversations/{_bench.GROUP_ID}/messages"

    def read_all(_: int) -> None:
        seen = 0
        reply = session.get(first, params={"page_size": p["page_size"]})
        while True:
            reply.raise_for_status()
            page = reply.json()
            for _message in page["data"]:
                seen += 1
            link = (page.get("links") or {}).get("next")
            if not link:
                break
            reply = session.get(link)
        check_count(seen, p["messages"])

    return run_ops(read_all, p)


def iter_ours(p: dict[str, Any]) -> dict[str, Any]:
    client = our_client_class()(p["token"], rest_url=p["rest_url"], relay_url=p["relay_url"])

    def read_all(_: int) -> None:
        seen = 0
        for _message in client.iter_messages(_bench.ADDRESS_ID, page_size=p["page_size"]):
            seen += 1
        check_count(seen, p["messages"])

    try:
        return run_ops(read_all, p)
    finally:
        client.close()


def check_count(seen: int, expected: int) -> None:
    if seen != expected:
        raise RuntimeError(f"read {seen} messages, expected {expected}")


# --- realtime ------------------------------------------------------------------------------


def naive_loop(p: dict[str, Any], on_message: Callable[[dict[str, Any]], None]) -> None:
    """What a user writes with websocket-client: recv(), json.loads, send the ack, call back."""
    import websocket

    ws = websocket.create_connection(p["url"], timeout=30)
    try:
        ws.send(
            _bench.connect_request(
                p["token"], request_id="bench-connect-1", agent="bench-naive/1.0"
            )
        )
        stop = p["stop"]
        while not stop.is_set():
            frame = json.loads(ws.recv())
            method = frame.get("method")
            if method == "signalwire.event":
                ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
                params = frame["params"]
                if params["event_type"] == "conversation.message":
                    message = params["params"]
                    if (
                        message.get("subtype") == "chat"
                        and message.get("group_id") == _bench.GROUP_ID
                    ):
                        on_message(message)
            elif method == "signalwire.ping":
                answer = {"jsonrpc": "2.0", "id": frame["id"], "result": frame["params"]}
                ws.send(json.dumps(answer))
            elif "error" in frame:
                raise RuntimeError(f"relay error: {frame['error']}")
    finally:
        ws.close()


def open_ours(p: dict[str, Any]) -> Any:
    """Return our realtime side: ChatClient when it exists, else the RealtimeHub it delegates to."""
    try:
        return our_client_class()(p["token"], rest_url=p["http_url"], relay_url=p["url"])
    except Unavailable:
        try:
            from signalwire_chat._auth import Credentials
            from signalwire_chat._realtime._hub import RealtimeHub
            from signalwire_chat._realtime._options import RealtimeOptions
        except ImportError as exc:
            raise Unavailable(f"neither ChatClient nor RealtimeHub: {exc}") from exc
        p["via"] = "RealtimeHub"
        return RealtimeHub(
            relay_url=p["url"],
            credentials=Credentials(p["token"]),
            agent="signalwire-chat-bench",
            history=lambda _address: iter(()),
            options=RealtimeOptions(),
        )


def with_ours(p: dict[str, Any], on_message: Callable[[Any], None]) -> None:
    """Subscribe with our client; return when p['stop'] is set (or raise on the deadline)."""
    client = open_ours(p)
    errors: list[BaseException] = []

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        p["stop"].set()

    try:
        # The group dialect's subscription to a known group: no REST call before the socket.
        import signalwire_chat

        group = getattr(signalwire_chat, "Group", None)
        target = _bench.ADDRESS_ID if group is None else group(id=_bench.GROUP_ID)
        subscription = client.subscribe(target, on_message, on_error=on_error)
        if not p["stop"].wait(p["deadline"]):
            raise TimeoutError("our client did not deliver the events in time")
        subscription.cancel()
    finally:
        client.close()
    if errors:
        raise RuntimeError(f"our client reported: {errors[0]!r}")


def floor_writes(p: dict[str, Any]) -> list[bytes]:
    """The load server's frames of ``p``'s events, grouped as it writes them (a tenth of
    the window per write)."""
    import loadserver

    total = p["warmup"] + p["count"]
    batch = max(1, p.get("window", 100) // 10)
    return [
        b"".join(loadserver.event_frame(seq) for seq in range(first, min(first + batch, total + 1)))
        for first in range(1, total + 1, batch)
    ]


def floor_loop(p: dict[str, Any], on_message: Callable[[Any], None]) -> None:
    """The least any client must do per event, on the bytes the load server sends.

    The frames (:func:`floor_writes`) are built before the measure (that is the server's
    work); then each write goes through our frame reader (RFC 6455 checks, text checked as
    UTF-8), each event through ``json.loads``, and the same callback as the other clients
    gets the dict. No socket, no acknowledgement, no thread: the floor of the realtime rows.
    """
    from signalwire_chat._realtime._frames import FrameReader

    writes = floor_writes(p)
    feed = FrameReader().feed
    loads = json.loads
    for data in writes:
        for _opcode, text in feed(data):
            on_message(loads(text))


def realtime(kind: str, p: dict[str, Any], on_message: Callable[[Any], None]) -> None:
    if kind == "naive":
        naive_loop(p, on_message)
    elif kind == "floor":
        floor_loop(p, on_message)
    elif kind == "ours":
        with_ours(p, on_message)
    else:
        raise ValueError(kind)


def rt_stream(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    meter = Meter(p["warmup"], p["count"])
    p["stop"] = meter.done

    def on_message(_message: object) -> None:
        meter.tick()

    realtime(kind, p, on_message)
    return meter.result()


def rt_paced(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    latencies: list[float] = []
    stop = p["stop"] = threading.Event()
    total = p["warmup"] + p["count"]

    def on_message(message: Any) -> None:
        now = time.time()
        ts = message["ts"] if isinstance(message, dict) else message.ts
        latencies.append(now - ts)
        if len(latencies) >= total:
            stop.set()

    realtime(kind, p, on_message)
    measured = sorted(latencies[p["warmup"] : total])
    return {
        "median_us": _bench.median(measured) * 1e6,
        "p90_us": measured[int(len(measured) * 0.9)] * 1e6,
        "p99_us": measured[int(len(measured) * 0.99)] * 1e6,
        "count": len(measured),
    }


def rt_memory(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    import gc

    meter = Meter(p["warmup"], p["count"])
    p["stop"] = meter.done
    rss: list[int] = []

    def on_message(_message: object) -> None:
        meter.tick()
        if meter.seen in (p["warmup"], p["warmup"] + p["count"]):
            gc.collect()
            rss.append(_bench.rss_bytes())

    realtime(kind, p, on_message)
    result = meter.result()
    result["rss_start_mb"] = rss[0] / 2**20
    result["rss_growth_mb"] = (rss[1] - rss[0]) / 2**20
    return result


def rt_subs(kind: str, p: dict[str, Any]) -> dict[str, Any]:
    """CPU per event of one client holding ``p['groups']`` subscriptions, events spread over them.

    The load server's spread mode (``url`` ending in ``/groups/N``) sends event ``k`` to group
    ``k % N``; this client subscribes to every one of the N groups with the same callback. The
    meter is armed only once the last subscribe() returned, so warm-up and measure both see all
    N subscriptions routed (events of a group not subscribed yet are acknowledged and dropped).
    """
    if kind != "ours":
        raise ValueError(kind)
    import signalwire_chat

    group = getattr(signalwire_chat, "Group", None)
    if group is None:
        raise Unavailable("signalwire_chat.Group does not exist yet")
    meter = Meter(p["warmup"], p["count"])
    stop = p["stop"] = meter.done
    armed = False
    errors: list[BaseException] = []

    def on_message(_message: object) -> None:
        if armed:
            meter.tick()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        stop.set()

    client = open_ours(p)
    try:
        prefix = "99999999-0000-4000-8000-"  # loadserver.spread_group_id, without importing it
        subscriptions = [
            client.subscribe(group(id=f"{prefix}{i:012d}"), on_message, on_error=on_error)
            for i in range(p["groups"])
        ]
        armed = True
        if not stop.wait(p["deadline"]):
            raise TimeoutError(f"our client did not deliver the events in time ({meter.seen})")
        for subscription in subscriptions:
            subscription.cancel()
    finally:
        client.close()
    if errors:
        raise RuntimeError(f"our client reported: {errors[0]!r}")
    result = meter.result()
    result["groups"] = p["groups"]
    return result


def coldstart_ours(p: dict[str, Any]) -> dict[str, Any]:
    """Client created -> subscribe() returned -> bob's message delivered (see coldstart.py)."""
    import coldstart

    client_class = our_client_class()  # imported before the clock starts, as Node's require
    arrived = threading.Event()
    errors: list[BaseException] = []

    def on_message(message: Any) -> None:
        if message.text == p["text"]:
            arrived.set()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        arrived.set()

    cpu0 = _bench.cpu_seconds()
    t0 = time.perf_counter()
    client = client_class(p["token"], rest_url=p["rest_url"], relay_url=p["relay_url"])
    try:
        client.subscribe(p["bob_address_id"], on_message, on_error=on_error)
        t1 = time.perf_counter()
        cpu1 = _bench.cpu_seconds()
        coldstart.post_as_bob(p)
        if not arrived.wait(p["deadline"]):
            raise TimeoutError("bob's message never reached our subscriber")
        t2 = time.perf_counter()
    finally:
        client.close()
    if errors:
        raise RuntimeError(f"our client reported: {errors[0]!r}")
    return {
        "subscribed_ms": (t1 - t0) * 1000,
        "live_ms": (t2 - t0) * 1000,
        "cpu_ms": (cpu1 - cpu0) * 1000,
    }


CASES: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "send": lambda kind, p: {
        "requests": send_requests,
        "httpclient": send_httpclient,
        "ours": send_ours,
    }[kind](p),
    "first_send": lambda kind, p: {
        "requests": first_send_requests,
        "ours": first_send_ours,
    }[kind](p),
    "iter": lambda kind, p: {"requests": iter_requests, "ours": iter_ours}[kind](p),
    "otel": lambda kind, p: {
        "off": send_ours,
        "traces": functools.partial(send_otel, mode="traces"),
        "traces+metrics": functools.partial(send_otel, mode="traces+metrics"),
        "bare-span": functools.partial(send_otel, mode="bare-span"),
        "attrs-span": functools.partial(send_otel, mode="attrs-span"),
    }[kind](p),
    "stream": rt_stream,
    "paced": rt_paced,
    "memory": rt_memory,
    "subs": rt_subs,
    "coldstart": lambda kind, p: {"ours": coldstart_ours}[kind](p),
}


def profiled(top: int, case: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``case`` under cProfile in every thread (the client's own threads included); print
    the ``top`` costliest functions of all threads together to stderr."""
    import cProfile
    import pstats

    profilers = [cProfile.Profile()]
    run = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.runcall(run, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    try:
        result = profilers[0].runcall(case, *args)
    finally:
        threading.Thread.run = run  # type: ignore[method-assign]
    stats = pstats.Stats(profilers[0], stream=sys.stderr)
    for profiler in profilers[1:]:
        stats.add(profiler)
    stats.sort_stats("tottime").print_stats(top)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=sorted([*CASES, "fanout"]))
    parser.add_argument("kind")
    parser.add_argument("--core", type=int, default=None)
    parser.add_argument("--params", required=True, help="JSON object of the case's parameters")
    parser.add_argument(
        "--profile", type=int, metavar="N", help="print the N costliest functions (cProfile)"
    )
    args = parser.parse_args()
    if args.core is not None:
        _bench.pin(args.core)
    params = json.loads(args.params)
    params.setdefault("deadline", 120.0)
    try:
        if args.profile:
            result = profiled(args.profile, CASES[args.case], args.kind, params)
        elif args.case == "fanout":
            import fanout

            result = fanout.run(params)
        else:
            result = CASES[args.case](args.kind, params)
    except Unavailable as exc:
        print(json.dumps({"unavailable": str(exc)}), flush=True)
        return UNAVAILABLE
    if "via" in params:
        result["via"] = params["via"]
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
