"""OpenTelemetry traces and metrics for the client (the ``otel`` extra).

Nothing in ``import signalwire_chat`` imports OpenTelemetry; only importing this module does::

    from signalwire_chat import ChatClient
    from signalwire_chat.otel import opentelemetry_hooks

    client = ChatClient(token, hooks=opentelemetry_hooks())

It uses the global tracer and meter providers unless given others, so configure the SDK (or
your distribution) as usual. What it records follows the OpenTelemetry HTTP semantic
conventions:

- a CLIENT span per REST call, named ``"{method} {url.template}"`` (e.g. ``"GET
  /api/fabric/conversations/{id}/messages"``), with ``http.request.method``, ``url.template``,
  ``server.address``, ``server.port``, ``http.response.status_code``, ``error.type`` on
  failure (and status ERROR), ``http.request.resend_count`` when it was resent, and
  ``signalwire_chat.request_id`` (the service's request id); each retry is a span event
  ``"retry"`` with the attempt, its status or ``error.type``, and the wait in seconds;
- ``signalwire_chat.rest.call.duration`` (histogram, s): each call, retries and waits included
  (with the attributes of the span; each attempt's timing is in the hooks' ``ResponseEvent``);
- ``signalwire_chat.rest.retries`` (counter): each resend, with its reason in ``error.type``.

The realtime side:

- an INTERNAL span ``"signalwire_chat catch-up"`` around each catch-up read (the history a
  subscription missed, read after a reconnect), with ``signalwire_chat.target``
  (``conversation``, ``group`` or ``inbox``), ``signalwire_chat.catch_up.messages`` (how many
  it delivered) and ``error.type`` (status ERROR) when it failed;
- ``signalwire_chat.messages.delivered`` (counter): messages handed to a callback, by
  ``signalwire_chat.target``, ``signalwire_chat.source`` (``live`` or ``catch-up``) and
  ``signalwire_chat.update`` (an edit);
- ``signalwire_chat.message.lag`` (histogram, s): from the message's ``ts`` (the service's
  clock) to its callback's start;
- ``signalwire_chat.callback.duration`` (histogram, s): how long each callback ran;
- ``signalwire_chat.reconnects`` (counter): each entry into ``RECONNECTING``;
- ``signalwire_chat.queue.depth`` (observable gauge): messages waiting for the callbacks, as
  seen at the last delivery.

No attribute ever holds the token, a message text, metadata, an id (of a message, a
conversation or an address), a path's id or a query: the hooks receive only path templates,
statuses, counts, kinds of targets and error kinds. The reason of a reconnect, which may
quote a relay's words, is not an attribute either (it is in the hooks and ``health()``).
"""

from __future__ import annotations

import time
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import NoOpHistogram
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "signalwire_chat.otel needs OpenTelemetry: pip install 'signalwire-chat[otel]'"
    ) from exc

from ._hooks import (
    UNKNOWN_PATH,
    CallRecord,
    CatchUpFinishedEvent,
    DeliveredEvent,
    Hooks,
    ResponseEvent,
    StateChangeEvent,
    reads_call_records,
)
from ._state import ConnectionState
from ._version import __version__

__all__ = ["opentelemetry_hooks"]

_SCOPE = "signalwire_chat"
_CLIENT = SpanKind.CLIENT
_ERROR = Status(StatusCode.ERROR)  # immutable: one for every failed span
#: Kinds of calls (method, path, server) whose span name and attributes a recorder keeps.
_SHAPES_KEPT = 256


def _base(event: ResponseEvent | CallRecord) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "http.request.method": event.method,
        "server.address": event.server_address,
    }
    if event.path != UNKNOWN_PATH:
        attributes["url.template"] = event.path
    if event.server_port is not None:
        attributes["server.port"] = event.server_port
    return attributes


class _Recorder:
    """Spans and instruments of one :func:`opentelemetry_hooks` call."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider=tracer_provider)
        self._start_span = self.tracer.start_span
        self._shapes: dict[tuple[str, str, str, int | None], tuple[str, dict[str, Any]]] = {}
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider=meter_provider)
        self.call_duration = meter.create_histogram(
            "signalwire_chat.rest.call.duration",
            unit="s",
            description="Duration of each REST call, its retries and their waits included.",
        )
        # An application that set up tracing only has no-op instruments: then the attributes
        # of a call's duration are not built (a no-op instrument never becomes a real one,
        # unlike the proxies the global meter gives before an SDK is set).
        self._durations = not isinstance(self.call_duration, NoOpHistogram)
        self.retries = meter.create_counter(
            "signalwire_chat.rest.retries",
            unit="{retry}",
            description="REST requests sent again, by reason.",
        )
        self.delivered = meter.create_counter(
            "signalwire_chat.messages.delivered",
            unit="{message}",
            description="Messages handed to a subscription's callback.",
        )
        self.lag = meter.create_histogram(
            "signalwire_chat.message.lag",
            unit="s",
            description="From a message's server timestamp to the start of its callback.",
        )
        self.callback_duration = meter.create_histogram(
            "signalwire_chat.callback.duration",
            unit="s",
            description="How long each subscription callback ran.",
        )
        self.reconnects = meter.create_counter(
            "signalwire_chat.reconnects",
            unit="{reconnect}",
            description="Realtime connections lost (or refused) and made again.",
        )
        self._depth = 0
        meter.create_observable_gauge(
            "signalwire_chat.queue.depth",
            callbacks=[self._observe_depth],
            unit="{message}",
            description="Messages received and waiting for the callbacks (at the last delivery).",
        )

    @reads_call_records
    def on_call(self, event: CallRecord) -> None:
        # The span is made whole when the call ends, with its true start time: one pass over
        # its attributes instead of a span kept open across the call (a third cheaper). The
        # retried attempts come with the call, so no hook runs per attempt. This runs on
        # every call: what is the same for all calls of a kind (the name, the method, the
        # server, the template) is worked out once, and no object is made that the SDK
        # does not keep.
        end = time.time_ns()
        shape = (event.method, event.path, event.server_address, event.server_port)
        known = self._shapes.get(shape)
        if known is None:
            known = self._shape(event, shape)
        name, attributes = known
        attributes = attributes.copy()
        status = event.status
        error = event.error
        if status is not None:
            attributes["http.response.status_code"] = status
        if error is not None:
            if status is not None and status >= 400:
                error = str(status)
            attributes["error.type"] = error
        if self._durations:
            self.call_duration.record(event.duration, attributes)
            attributes = attributes.copy()  # the metric's are not the span's
        attempts = event.attempts
        if attempts > 1:
            attributes["http.request.resend_count"] = attempts - 1
        request_id = event.request_id
        if request_id is not None:
            attributes["signalwire_chat.request_id"] = request_id
        span = self._start_span(
            name,
            kind=_CLIENT,
            attributes=attributes,
            start_time=end - int(event.duration * 1e9),
        )
        for retry in event.retries:
            self._retried(span, retry)
        if error is not None:
            span.set_status(_ERROR)
        span.end(end)

    def _shape(
        self, event: CallRecord, shape: tuple[str, str, str, int | None]
    ) -> tuple[str, dict[str, Any]]:
        """The span name and the attributes of every call of ``event``'s kind, kept."""
        if len(self._shapes) >= _SHAPES_KEPT:
            self._shapes.clear()
        name = event.method if event.path == UNKNOWN_PATH else f"{event.method} {event.path}"
        known = self._shapes[shape] = (name, _base(event))
        return known

    def _retried(self, span: Any, retry: ResponseEvent) -> None:
        """Count one resend and add it to its call's span as a ``retry`` event."""
        reason = str(retry.status) if retry.status is not None else (retry.error or "unknown")
        retry_attributes = _base(retry)
        retry_attributes["error.type"] = reason
        self.retries.add(1, retry_attributes)
        detail: dict[str, Any] = {
            "http.request.resend_count": retry.attempt,
            "signalwire_chat.retry_in": retry.retry_in,
            "error.type": reason,
        }
        if retry.status is not None:
            detail["http.response.status_code"] = retry.status
        span.add_event("retry", detail, timestamp=int(retry.at * 1e9))

    # --- realtime ------------------------------------------------------------------------

    def on_state_change(self, event: StateChangeEvent) -> None:
        if event.state is ConnectionState.RECONNECTING:
            self.reconnects.add(1)

    def on_delivered(self, event: DeliveredEvent) -> None:
        attributes: dict[str, Any] = {
            "signalwire_chat.target": event.target,
            "signalwire_chat.source": event.source,
            "signalwire_chat.update": event.update,
        }
        self._depth = event.queue_depth
        self.delivered.add(1, attributes)
        self.callback_duration.record(event.duration, attributes)
        if event.lag is not None:
            self.lag.record(event.lag, attributes)

    def on_catch_up_finished(self, event: CatchUpFinishedEvent) -> None:
        end = time.time_ns()
        attributes: dict[str, Any] = {
            "signalwire_chat.target": event.target,
            "signalwire_chat.catch_up.messages": event.messages,
        }
        if event.error is not None:
            attributes["error.type"] = event.error
        span = self.tracer.start_span(
            "signalwire_chat catch-up",
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=end - int(event.duration * 1e9),
        )
        if event.error is not None:
            span.set_status(_ERROR)
        span.end(end_time=end)

    def _observe_depth(self, options: Any) -> list[metrics.Observation]:
        return [metrics.Observation(self._depth)]


def opentelemetry_hooks(*, tracer_provider: Any = None, meter_provider: Any = None) -> Hooks:
    """:class:`~signalwire_chat.Hooks` that record the client's work as OpenTelemetry data.

    REST calls as spans and metrics, catch-up reads as spans, deliveries, lag, callback
    durations, reconnects and the queue depth as metrics (see the module's docstring).

    Args:
        tracer_provider: The ``TracerProvider`` to use (default: the global one).
        meter_provider: The ``MeterProvider`` to use (default: the global one).

    Returns:
        Hooks to pass to ``ChatClient(hooks=...)`` (alone or in a list with yours).
    """
    recorder = _Recorder(tracer_provider, meter_provider)
    return Hooks(
        on_call=recorder.on_call,
        on_state_change=recorder.on_state_change,
        on_delivered=recorder.on_delivered,
        on_catch_up_finished=recorder.on_catch_up_finished,
    )
