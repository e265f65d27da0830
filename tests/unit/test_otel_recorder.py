"""The OpenTelemetry recorder's memory of kinds of calls: bounded, and never mixing two kinds."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from signalwire_chat import CallEvent
from signalwire_chat.otel import _SHAPES_KEPT, opentelemetry_hooks


def _event(host: str, port: int | None, path: str = "/api/fabric/messages") -> CallEvent:
    return CallEvent(
        call=1,
        server_address=host,
        server_port=port,
        method="POST",
        path=path,
        attempts=1,
        status=201,
        duration=0.01,
        error=None,
        request_id=f"req-{host}",
    )


def test_more_kinds_of_calls_than_it_keeps_each_get_their_own_span() -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    hooks = opentelemetry_hooks(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    assert hooks.on_call is not None
    recorder: Any = getattr(hooks.on_call, "__self__")  # noqa: B009 - the bound method's recorder
    hosts = [f"space{i}.example.com" for i in range(_SHAPES_KEPT + 44)]
    for round_ in range(2):
        for i, host in enumerate(hosts):
            hooks.on_call(_event(host, None if i % 2 else 8443 + round_))
            assert len(recorder._shapes) <= _SHAPES_KEPT
    hooks.on_call(_event("space0.example.com", 443, "/{unknown}"))
    finished = spans.get_finished_spans()
    assert len(finished) == 2 * len(hosts) + 1
    for round_ in range(2):
        for i, host in enumerate(hosts):
            span = finished[round_ * len(hosts) + i]
            attributes = dict(span.attributes or {})
            assert span.name == "POST /api/fabric/messages"
            assert attributes["server.address"] == host
            assert attributes.get("server.port") == (None if i % 2 else 8443 + round_)
            assert attributes["signalwire_chat.request_id"] == f"req-{host}"
    unknown = finished[-1]
    assert unknown.name == "POST"
    assert "url.template" not in dict(unknown.attributes or {})
    assert dict(unknown.attributes or {})["server.port"] == 443
