"""OpenTelemetry spans and metrics with the SDK's in-memory exporters, against the emulator."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from signalwire_chat import ChatClient, RealtimeOptions, ServerError
from signalwire_chat.emulator import Emulator
from signalwire_chat.otel import opentelemetry_hooks

TEXT = "otel-secret-text-5c2a"
META = "otel-secret-metadata-9b3e"
HISTORY = "/api/fabric/conversations/{id}/messages"


class Telemetry:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self) -> tuple[ReadableSpan, ...]:
        return tuple(self.spans.get_finished_spans())

    def points(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        out: dict[str, list[Any]] = {}
        assert data is not None
        for resource_metrics in data.resource_metrics:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


@pytest.fixture
def scenario(
    signalwire_emulator: Emulator,
) -> Iterator[tuple[Emulator, ChatClient, str, Telemetry, str]]:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("otel").id
    telemetry = Telemetry()
    hooks = opentelemetry_hooks(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    with ChatClient(
        sub.token,
        rest_url=emu.rest_url,
        relay_url=emu.relay_url,
        hooks=hooks,
        _sleep=lambda _: None,
    ) as client:
        yield emu, client, room, telemetry, sub.token
    telemetry.shutdown()


def _run_scenario(emu: Emulator, client: ChatClient, room: str) -> None:
    """Send, then walk the history page by page through a 503 that is retried."""
    for i in range(4):
        client.send_message(room, f"{TEXT} {i}", metadata={"note": META})
    emu.fail_next(503, method="GET", path_prefix="/api/fabric/conversations/")
    assert len(list(client.iter_messages(room, page_size=2))) == 4


def _reconnect_with_catch_up(
    emu: Emulator, client: ChatClient, room: str, *, silence: bool
) -> list[str]:
    """Subscribe, lose the link (silenced, or dropped), and catch up; returns what arrived.

    Another member sends: one message before, two while the link is down, one after.
    """
    bob = emu.create_subscriber()
    texts: list[str] = []
    cond = threading.Condition()

    def on_message(message: Any) -> None:
        with cond:
            texts.append(message.text)
            cond.notify_all()

    def wait_for(count: int) -> None:
        with cond:
            assert cond.wait_for(lambda: len(texts) >= count, 15), texts

    client.subscribe(room, on_message)
    emu.send_as(bob, room, f"{TEXT} before", metadata={"note": META})
    wait_for(1)
    before = emu.connect_attempts
    if silence:
        emu.half_open(True)
    else:
        emu.drop_connections()
    emu.send_as(bob, room, f"{TEXT} missed 1", metadata={"note": META})
    emu.send_as(bob, room, f"{TEXT} missed 2", metadata={"note": META})
    wait_for(3)
    emu.half_open(False)
    assert emu.connect_attempts > before
    emu.send_as(bob, room, f"{TEXT} after", metadata={"note": META})
    wait_for(4)
    return texts


@pytest.fixture
def realtime_scenario(
    signalwire_emulator: Emulator,
) -> Iterator[tuple[Emulator, ChatClient, str, Telemetry]]:
    emu = signalwire_emulator
    emu.set_ping_interval(0.2)  # a silenced link is noticed within a second
    sub = emu.create_subscriber()
    room = emu.create_room("otel-rt").id
    telemetry = Telemetry()
    hooks = opentelemetry_hooks(
        tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider
    )
    options = RealtimeOptions(ping_timeout=1.0, reconnect_max_delay=0.2)
    with emu.client_for(sub, hooks=hooks, realtime=options) as client:
        yield emu, client, room, telemetry
    telemetry.shutdown()


def test_a_reconnect_with_catch_up_gives_a_span_and_the_realtime_metrics(
    realtime_scenario: tuple[Emulator, ChatClient, str, Telemetry],
) -> None:
    emu, client, room, telemetry = realtime_scenario
    texts = _reconnect_with_catch_up(emu, client, room, silence=True)
    assert [t.removeprefix(TEXT + " ") for t in texts] == [
        "before",
        "missed 1",
        "missed 2",
        "after",
    ]

    [catch_up] = [s for s in telemetry.finished() if s.name == "signalwire_chat catch-up"]
    assert catch_up.kind is SpanKind.INTERNAL
    assert dict(catch_up.attributes or {}) == {
        "signalwire_chat.target": "group",
        "signalwire_chat.catch_up.messages": 2,
    }
    assert catch_up.status.status_code is StatusCode.UNSET
    assert catch_up.end_time is not None
    assert catch_up.start_time is not None
    assert catch_up.end_time >= catch_up.start_time

    points = telemetry.points()
    delivered = {
        dict(p.attributes)["signalwire_chat.source"]: p.value
        for p in points["signalwire_chat.messages.delivered"]
    }
    assert delivered == {"live": 2, "catch-up": 2}
    assert all(
        dict(p.attributes)["signalwire_chat.target"] == "group"
        for p in points["signalwire_chat.messages.delivered"]
    )
    lag = points["signalwire_chat.message.lag"]
    assert sum(p.count for p in lag) == 4
    assert all(p.min >= 0 for p in lag)
    durations = points["signalwire_chat.callback.duration"]
    assert sum(p.count for p in durations) == 4
    [reconnects] = points["signalwire_chat.reconnects"]
    assert reconnects.value >= 1
    [depth] = points["signalwire_chat.queue.depth"]
    assert depth.value == 0


def test_a_span_per_rest_call_with_http_semantic_conventions(
    scenario: tuple[Emulator, ChatClient, str, Telemetry, str],
) -> None:
    emu, client, room, telemetry, _ = scenario
    _run_scenario(emu, client, room)

    spans = telemetry.finished()
    names = [s.name for s in spans]
    assert names[:3] == [
        "GET /api/fabric/subscriber/info",
        "POST /api/fabric/conversations/join",
        "POST /api/fabric/messages",
    ]
    assert names.count("POST /api/fabric/messages") == 4
    send = spans[2]
    assert send.kind is SpanKind.CLIENT
    attrs = dict(send.attributes or {})
    assert attrs["http.request.method"] == "POST"
    assert attrs["url.template"] == "/api/fabric/messages"
    assert attrs["server.address"] == "127.0.0.1"
    assert attrs["server.port"] == emu.port
    assert attrs["http.response.status_code"] == 201
    assert attrs["signalwire_chat.request_id"]
    assert "error.type" not in attrs
    assert send.status.status_code is StatusCode.UNSET

    walks = [s for s in spans if s.name == f"GET {HISTORY}"]
    assert len(walks) >= 2  # the page walk: one span per page
    retried = walks[0]
    assert dict(retried.attributes or {})["http.request.resend_count"] == 1
    assert dict(retried.attributes or {})["http.response.status_code"] == 200
    [event] = retried.events
    assert event.name == "retry"
    assert dict(event.attributes or {})["http.response.status_code"] == 503
    assert dict(event.attributes or {})["error.type"] == "503"
    assert dict(event.attributes or {})["http.request.resend_count"] == 1
    assert retried.start_time <= event.timestamp <= retried.end_time  # when the 503 came


def test_a_failed_call_is_an_error_span(
    scenario: tuple[Emulator, ChatClient, str, Telemetry, str],
) -> None:
    emu, client, room, telemetry, _ = scenario
    client.send_message(room, TEXT)
    emu.fail_next(503, method="POST", path_prefix="/api/fabric/messages")
    with pytest.raises(ServerError):
        client.send_message(room, TEXT)
    failed = telemetry.finished()[-1]
    assert failed.status.status_code is StatusCode.ERROR
    assert dict(failed.attributes or {})["error.type"] == "503"
    assert dict(failed.attributes or {})["http.response.status_code"] == 503


def test_metrics_for_durations_and_retries(
    scenario: tuple[Emulator, ChatClient, str, Telemetry, str],
) -> None:
    emu, client, room, telemetry, _ = scenario
    _run_scenario(emu, client, room)
    points = telemetry.points()

    [retry] = points["signalwire_chat.rest.retries"]
    assert retry.value == 1
    assert dict(retry.attributes)["url.template"] == HISTORY
    assert dict(retry.attributes)["error.type"] == "503"

    calls = points["signalwire_chat.rest.call.duration"]
    sends = [p for p in calls if dict(p.attributes).get("url.template") == "/api/fabric/messages"]
    assert sum(p.count for p in sends) == 4
    history = [p for p in calls if dict(p.attributes).get("url.template") == HISTORY]
    assert {dict(p.attributes)["http.response.status_code"] for p in history} == {200}
    assert "http.client.request.duration" not in points


def test_no_attribute_anywhere_holds_the_token_texts_metadata_or_ids(
    scenario: tuple[Emulator, ChatClient, str, Telemetry, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emu, client, room, telemetry, token = scenario
    with caplog.at_level(logging.DEBUG, logger="signalwire_chat"):
        _run_scenario(emu, client, room)
        emu.fail_next(503, method="POST", path_prefix="/api/fabric/messages")
        with pytest.raises(ServerError):
            client.send_message(room, TEXT, metadata={"note": META})
        # The realtime side too: a subscription, a dropped link, a catch-up read.
        _reconnect_with_catch_up(emu, client, room, silence=False)
        health = client.health()
        client.close()
    assert any(s.name == "signalwire_chat catch-up" for s in telemetry.finished())
    assert "signalwire_chat.messages.delivered" in telemetry.points()

    group = emu.group_id_for(room, client.my_address_id())
    message_ids = [m["id"] for m in emu.messages(group)]
    forbidden = [
        token,
        *[part for part in token.split(".") if len(part) >= 16],
        TEXT,
        META,
        room,
        group,
        client.my_address_id(),
        *message_ids,
    ]
    values: list[str] = []
    for span in telemetry.finished():
        values.append(span.name)
        values.extend(f"{k}={v}" for k, v in (span.attributes or {}).items())
        for event in span.events:
            values.append(event.name)
            values.extend(f"{k}={v}" for k, v in (event.attributes or {}).items())
    for name, points in telemetry.points().items():
        values.append(name)
        for point in points:
            values.extend(f"{k}={v}" for k, v in dict(point.attributes).items())
    assert len(values) > 50  # the walk saw a real scenario
    for value in values:
        for secret in forbidden:
            assert secret not in value, (secret[:8], value)
    # No log record either (messages, arguments, tracebacks), nor health(): the token and
    # the texts and metadata never; ids may be logged (debugging needs them), not secrets.
    records = [r.getMessage() for r in caplog.records]
    records += [caplog.text, repr(health)]
    assert len(caplog.records) > 10
    for record in records:
        for secret in forbidden[: forbidden.index(META) + 1]:
            assert secret not in record, (secret[:8], record[:200])


def test_nothing_imports_opentelemetry_unless_asked() -> None:
    code = textwrap.dedent(
        """
        import sys
        import signalwire_chat
        from signalwire_chat.emulator import Emulator
        with Emulator() as emu:
            sub = emu.create_subscriber()
            room = emu.create_room("r").id
            with emu.client_for(sub) as client:
                client.send_message(room, "hi")
                list(client.iter_messages(room))
                client.health()
        loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
        assert not loaded, loaded
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_without_opentelemetry_installed_the_client_works_and_otel_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import sys
        class Absent:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry" or name.startswith("opentelemetry."):
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)
                return None
        sys.meta_path.insert(0, Absent())
        from signalwire_chat.emulator import Emulator
        with Emulator() as emu:
            sub = emu.create_subscriber()
            room = emu.create_room("r").id
            with emu.client_for(sub) as client:
                client.send_message(room, "hi")
        try:
            import signalwire_chat.otel
        except ImportError as exc:
            print(exc)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "pip install 'signalwire-chat[otel]'" in out.stdout


def _call_events_built_during(action: Any) -> int:
    """How many CallEvents were made (on this thread) while ``action`` ran."""
    from types import FrameType

    made = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal made
        if event == "call" and frame.f_code.co_name == "__init__":
            made += type(frame.f_locals.get("self")).__name__ == "CallEvent"

    sys.setprofile(profile)
    try:
        action()
    finally:
        sys.setprofile(None)
    return made


def test_tracing_alone_builds_no_call_event_and_a_users_hook_still_gets_one(
    signalwire_emulator: Emulator,
) -> None:
    """The OpenTelemetry hooks read the ended call itself (a CallEvent was a tenth of what
    tracing added above the SDK's span); a user's on_call beside them gets its CallEvent,
    telling the same story as the span. Tracing without metrics (a no-op meter) too."""
    from opentelemetry.metrics import NoOpMeterProvider

    from signalwire_chat import CallEvent, Hooks

    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("otel-records").id
    telemetry = Telemetry()
    otel = opentelemetry_hooks(
        tracer_provider=telemetry.tracer_provider, meter_provider=NoOpMeterProvider()
    )
    calls: list[CallEvent] = []
    with ChatClient(sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=otel) as c:
        c.send_message(room, "warm-up")
        assert _call_events_built_during(lambda: c.send_message(room, "traced")) == 0
    both = [otel, Hooks(on_call=calls.append)]
    with ChatClient(sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, hooks=both) as c:
        c.send_message(room, "warm-up")  # the first call of a client also joins
        calls.clear()
        assert _call_events_built_during(lambda: c.send_message(room, "traced")) == 1
    telemetry.shutdown()
    spans = telemetry.finished()
    assert spans[-1].name == "POST /api/fabric/messages"
    (event,) = calls
    attributes = dict(spans[-1].attributes or {})
    assert attributes == {
        "http.request.method": event.method,
        "server.address": event.server_address,
        "server.port": event.server_port,
        "url.template": event.path,
        "http.response.status_code": event.status,
        "signalwire_chat.request_id": event.request_id,
    }
    assert event.request_id
    assert spans[-1].end_time - spans[-1].start_time == pytest.approx(
        event.duration * 1e9, rel=0.01
    )
