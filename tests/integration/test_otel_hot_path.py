"""What tracing adds to a REST call above the SDK's own span: little work, the same spans.

The work is counted in Python function calls made on the calling thread (``sys.setprofile``),
which do not vary with the load of the machine: a traced ``send_message``, minus the same call
untraced, minus one SDK span with the same attributes made by hand, is our code alone.
"""

from __future__ import annotations

import logging
import os
import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import signalwire_chat
from signalwire_chat import CallEvent, ChatClient, Hooks, ServerError
from signalwire_chat.emulator import Emulator
from signalwire_chat.otel import opentelemetry_hooks
from signalwire_chat.pytest_plugin import EmulatorFactory


class Tracing:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.hooks = opentelemetry_hooks(
            tracer_provider=self.provider, meter_provider=NoOpMeterProvider()
        )

    def finished(self) -> list[Any]:
        return list(self.spans.get_finished_spans())


#: Where the counted functions live: this library (not its emulator, which runs on threads of
#: its own anyway) and OpenTelemetry. Other libraries (urllib3, the stdlib) are left out, so
#: that their versions do not move the count.
_OURS = os.path.dirname(signalwire_chat.__file__) + os.sep
_EMULATOR = os.path.join(_OURS, "emulator") + os.sep
_OTEL = os.sep + "opentelemetry" + os.sep


def _calls_during(action: Callable[[], object]) -> tuple[Counter[str], list[str]]:
    """Functions of ours and of OpenTelemetry called on this thread while ``action`` ran (by
    module), and the regex methods called."""
    calls: Counter[str] = Counter()
    regex: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            where = frame.f_code.co_filename
            if where.startswith(_OURS) and not where.startswith(_EMULATOR):
                calls["ours"] += 1
            elif _OTEL in where:
                calls["opentelemetry"] += 1
        elif event == "c_call" and type(getattr(arg, "__self__", None)).__name__ == "Pattern":
            regex.append(getattr(arg, "__name__", "?"))

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return calls, regex


def test_a_traced_call_costs_the_sdk_span_and_a_handful_of_our_calls(
    signalwire_emulator: Emulator,
) -> None:
    """Tracing a call sent once adds, above the SDK's span with the same attributes, only the
    hook and the reading of the request id: no CallEvent, no property, no per-call dict of
    fixed attributes, no Status, no regular expression (the request id is printable)."""
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("otel-hot-path").id
    tracing = Tracing()
    counts: dict[str, Counter[str]] = {}
    regex: dict[str, list[str]] = {}
    for mode, hooks in (("off", None), ("traces", tracing.hooks)):
        with ChatClient(
            sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=hooks
        ) as c:
            c.send_message(room, "warm-up")  # the first call of a client also joins
            c.send_message(room, "warm-up")
            counts[mode], regex[mode] = _calls_during(lambda: c.send_message(room, "measured"))
    span = tracing.finished()[-1]
    tracer = tracing.provider.get_tracer("by-hand")
    name, attributes = span.name, dict(span.attributes or {})
    start, end = span.start_time, span.end_time

    def by_hand() -> None:
        tracer.start_span(
            name, kind=SpanKind.CLIENT, attributes=attributes.copy(), start_time=start
        ).end(end)

    by_hand()
    counts["sdk"], _ = _calls_during(by_hand)

    added = counts["traces"] - counts["off"]
    # Of OpenTelemetry, exactly what the SDK does for such a span made by hand.
    assert added["opentelemetry"] == counts["sdk"]["opentelemetry"], counts
    # Of ours: on_call, and the request id: request_id_of, server_text, redact. (It was 11
    # calls and a regular expression: properties, _base(), emit() and path_of().)
    assert added["ours"] <= 4, counts
    assert regex["traces"] == regex["off"]
    assert span.name == "POST /api/fabric/messages"
    assert dict(span.attributes)["signalwire_chat.request_id"]


def test_one_hooks_object_on_two_servers_keeps_each_calls_own_server_and_kind(
    emulator_factory: EmulatorFactory,
) -> None:
    """The recorder remembers the name and fixed attributes of each kind of call: the same
    hooks on two clients of two services still give each span its own server, and a failed
    call of a kind seen before is still an error span with its own status."""
    first, second = emulator_factory(), emulator_factory()
    assert first.port != second.port
    tracing = Tracing()
    seen: list[CallEvent] = []
    both = [tracing.hooks, Hooks(on_call=seen.append)]
    for round_, emu in enumerate((first, second, first)):
        sub = emu.create_subscriber()
        room = emu.create_room(f"otel-shapes-{round_}").id
        with ChatClient(
            sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=both, max_retries=0
        ) as c:
            c.send_message(room, "one")
            c.send_message(room, "two")
            c.get_messages(room)
            emu.fail_next(503, method="POST", path_prefix="/api/fabric/messages")
            with pytest.raises(ServerError):
                c.send_message(room, "three")
            c.send_message(room, "four")
    spans = tracing.finished()
    assert len(spans) == len(seen)
    failed = 0
    for span, event in zip(spans, seen, strict=True):
        attributes = dict(span.attributes)
        assert span.name == f"{event.method} {event.path}"
        assert attributes["server.port"] == event.server_port
        assert attributes["server.address"] == event.server_address
        assert attributes["url.template"] == event.path
        assert attributes["http.request.method"] == event.method
        assert attributes["http.response.status_code"] == event.status
        assert attributes.get("signalwire_chat.request_id") == event.request_id
        if event.error is None:
            assert "error.type" not in attributes
            assert span.status.status_code is StatusCode.UNSET
        else:
            failed += 1
            assert attributes["error.type"] == "503"
            assert span.status.status_code is StatusCode.ERROR
    assert failed == 3
    ports = [dict(s.attributes)["server.port"] for s in spans]
    assert set(ports) == {first.port, second.port}
    names = {s.name for s in spans}
    assert {"POST /api/fabric/messages", "GET /api/fabric/conversations/{id}/messages"} <= names


def test_a_tracing_pipeline_that_raises_never_breaks_a_call(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The OpenTelemetry hook runs in the call's own loop of hooks (not through emit()): one
    that raises is still logged, at WARNING the first time and DEBUG after, and ignored."""
    from opentelemetry.sdk.trace import SpanProcessor

    class Broken(SpanProcessor):
        def on_end(self, span: Any) -> None:
            raise RuntimeError("exporter down")

    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("otel-broken").id
    provider = TracerProvider()
    provider.add_span_processor(Broken())
    hooks = opentelemetry_hooks(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    caplog.set_level(logging.DEBUG, logger="signalwire_chat._hooks")
    with ChatClient(sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=hooks) as c:
        first = c.send_message(room, "one")
        second = c.send_message(room, "two")
    assert (first.text, second.text) == ("one", "two")
    raised = [r for r in caplog.records if "raised on RestCall (ignored)" in r.getMessage()]
    assert [r.levelno for r in raised] == [logging.WARNING] + [logging.DEBUG] * (len(raised) - 1)
    assert len(raised) >= 3  # info, join, the two sends
    assert all(r.exc_info and "exporter down" in str(r.exc_info[1]) for r in raised)
