"""The hook registry: what the client reports about its own work, and who hears it.

Users register :class:`Hooks` in one place, ``ChatClient(hooks=...)``; the OpenTelemetry
integration (:mod:`signalwire_chat.otel`) is itself a :class:`Hooks`. Each callback receives one
frozen event. Events carry no secrets and no content: a REST event names the path *template*
(``/api/fabric/conversations/{id}/messages``), never an id, a query, the token or a body.

A hook that raises is logged (a WARNING with its traceback the first time, DEBUG after) and
never breaks the client. Hooks run synchronously on the thread doing the work (the caller's
thread for REST), so they should be quick.

The REST callbacks, per call of a client method that talks to the service::

    on_request(attempt 1) -> on_response(attempt 1, retry_in=0.4)
    on_request(attempt 2) -> on_response(attempt 2, retry_in=None) -> on_call

The realtime callbacks never run on the connection thread (it must keep answering the
relay): state changes, deliveries, duplicates and catch-up reads are reported on the client's
dispatcher thread (state changes made by ``cancel()`` or ``close()`` on that caller's thread),
slow callbacks on its watchdog thread. After a reconnect, for instance::

    on_state_change(RECONNECTING, reason="socket closed by the relay")
    on_state_change(CONNECTED, reason="connect accepted")
    on_catch_up_started(target="group") -> on_delivered(source="catch-up") ...
    on_catch_up_finished(target="group", messages=3, error=None)
    on_delivered(source="live") ...
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import attrs

from ._validate import check_callable
from .errors import InvalidArgumentTypeError

if TYPE_CHECKING:
    from ._health import RestCounters
    from ._state import ConnectionState

__all__ = [
    "CallEvent",
    "CatchUpFinishedEvent",
    "CatchUpStartedEvent",
    "DeliveredEvent",
    "DuplicateDroppedEvent",
    "HookRegistry",
    "Hooks",
    "RequestEvent",
    "ResponseEvent",
    "SlowCallbackEvent",
    "StateChangeEvent",
    "path_template",
    "server_of",
]

logger = logging.getLogger(__name__)

E = TypeVar("E")
F = TypeVar("F", bound=Callable[..., Any])


# --- events ----------------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RequestEvent:
    """One attempt of a REST call is about to be sent.

    Attributes:
        call: The number of the call within this client (1, 2, ...): it ties the attempts,
            responses and the end of one call together.
        server_address: The REST host.
        server_port: Its port (the scheme's, 443 or 80, when the URL names none).
        method: ``"GET"`` or ``"POST"``.
        path: The path template, e.g. ``/api/fabric/conversations/{id}/messages``
            (``/{unknown}`` for a path the client does not know).
        attempt: 1 for the first send, 2 for the first resend, ...
    """

    call: int
    server_address: str
    server_port: int | None
    method: str
    path: str
    attempt: int


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """One attempt of a REST call ended, with an answer or a failure.

    Attributes:
        call: The number of the call within this client.
        server_address: The REST host.
        server_port: Its port (the scheme's, 443 or 80, when the URL names none).
        method: ``"GET"`` or ``"POST"``.
        path: The path template.
        attempt: Which attempt (1-based).
        status: The HTTP status, or ``None`` when no answer came (a network failure).
        duration: Seconds from sending to the whole body read (or to the failure).
        error: The kind of failure: the name of the error this library raises for it
            (``"ServerError"``, ``"RateLimitError"``, ``"ConnectError"``, ...), or ``None``.
        request_id: The service's request id (``X-Request-Id`` and the like), cleaned and
            capped, or ``None``.
        retry_in: Seconds until the call sends again, or ``None`` when this was its last
            attempt.
        at: ``time.time()`` when the attempt ended.
    """

    call: int
    server_address: str
    server_port: int | None
    method: str
    path: str
    attempt: int
    status: int | None
    duration: float
    error: str | None
    request_id: str | None
    retry_in: float | None
    at: float


@attrs.frozen(kw_only=True)
class CallEvent:
    """A REST call ended (returned or raised), retries and waits included.

    Attributes:
        call: The number of the call within this client.
        server_address: The REST host.
        server_port: Its port (the scheme's, 443 or 80, when the URL names none).
        method: ``"GET"`` or ``"POST"``.
        path: The path template.
        attempts: How many times it was sent (0 when it failed before sending).
        status: The last HTTP status received, or ``None``.
        duration: Seconds for the whole call.
        error: ``None`` on success, else the name of the exception raised to the caller.
        request_id: The last request id the service sent, or ``None``.
        retries: The :class:`ResponseEvent` of each attempt that was followed by another
            (its status or error, and the wait), oldest first; empty for a call sent once.
            ``on_call`` alone thus tells the whole story of a call.
    """

    call: int
    server_address: str
    server_port: int | None
    method: str
    path: str
    attempts: int
    status: int | None
    duration: float
    error: str | None
    request_id: str | None
    retries: tuple[ResponseEvent, ...] = ()


@attrs.frozen(kw_only=True)
class StateChangeEvent:
    """The realtime connection changed state.

    Attributes:
        state: The new :class:`~signalwire_chat.ConnectionState`.
        previous: The state before, or ``None`` for the first one reported.
        reason: Why, in a few words: ``"first subscription"``, ``"connect accepted"``,
            ``"socket closed by the relay"``, ``"ping timeout"``, ``"relay asked to
            disconnect"``, ``"connect failed: ConnectionRefusedError: ..."``, ``"token
            refused"``, ``"last subscription cancelled"``, ``"closed by user"``, ... It never
            holds the token; a relay's own words in it are cleaned and cut short.
        at: ``time.time()`` when the client saw the change.
    """

    state: ConnectionState
    previous: ConnectionState | None
    reason: str | None
    at: float


@attrs.frozen(kw_only=True)
class CatchUpStartedEvent:
    """A subscription started reading the history it missed (after a reconnect).

    Attributes:
        target: ``"conversation"``, ``"group"`` or ``"inbox"`` (never the id).
    """

    target: str


@attrs.frozen(kw_only=True)
class CatchUpFinishedEvent:
    """A catch-up read ended.

    Attributes:
        target: ``"conversation"``, ``"group"`` or ``"inbox"``.
        messages: How many missed messages it delivered.
        duration: Seconds it took.
        error: ``None``, or the name of the error that ended it.
    """

    target: str
    messages: int
    duration: float
    error: str | None


@attrs.frozen(kw_only=True)
class DuplicateDroppedEvent:
    """A message already delivered arrived again and was dropped.

    Attributes:
        source: ``"live"`` (a redelivery after a resume, or a live event of a message the
            catch-up read delivered first) or ``"catch-up"`` (history overlap).
        target: ``"conversation"``, ``"group"`` or ``"inbox"`` (never the id).
    """

    source: str
    target: str | None = None


@attrs.frozen(kw_only=True)
class DeliveredEvent:
    """A subscription's callback returned (or raised) for one message.

    Called only when some :class:`Hooks` has ``on_delivered``: without one, no clock is read.

    Attributes:
        target: ``"conversation"``, ``"group"`` or ``"inbox"`` (never the id).
        source: ``"live"`` or ``"catch-up"`` (read from the history after a reconnect).
        update: True for an edit (``on_update``), False for a new message (``on_message``).
        lag: Seconds from the message's ``ts`` (the service's clock) to the callback's
            start (this machine's clock; never negative), or ``None`` without a ``ts``.
        duration: Seconds the callback ran.
        queue_depth: Messages received and still waiting for the callbacks.
    """

    target: str
    source: str
    update: bool
    lag: float | None
    duration: float
    queue_depth: int


@attrs.frozen(kw_only=True)
class SlowCallbackEvent:
    """A user callback has run longer than ``RealtimeOptions.slow_callback_after``.

    Attributes:
        callback: The callback's qualified name.
        seconds: How long it had run when reported.
        target: ``"conversation"``, ``"group"`` or ``"inbox"`` (never the id).
    """

    callback: str
    seconds: float
    target: str | None = None


def _callable_or_none(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    check_callable(value, attribute.name, optional=True)


@attrs.frozen(kw_only=True)
class Hooks:
    """Callbacks the client calls as it works; every one optional.

    Register with ``ChatClient(hooks=Hooks(...))`` (or a list of them). A hook that raises is
    logged and ignored. REST hooks run on the calling thread; realtime hooks on the client's
    dispatcher thread (``on_slow_callback`` on its watchdog thread; a state change made by
    ``cancel()`` or ``close()`` on that caller's thread), never on the connection thread.

    Attributes:
        on_request: Before each attempt of a REST call (:class:`RequestEvent`).
        on_response: After each attempt (:class:`ResponseEvent`).
        on_call: When a REST call ends, however it ends (:class:`CallEvent`).
        on_state_change: The realtime connection changed state (:class:`StateChangeEvent`).
        on_catch_up_started: A subscription starts reading what it missed
            (:class:`CatchUpStartedEvent`).
        on_catch_up_finished: That read ended (:class:`CatchUpFinishedEvent`).
        on_duplicate_dropped: A message already delivered was dropped
            (:class:`DuplicateDroppedEvent`).
        on_slow_callback: A callback runs longer than ``slow_callback_after``
            (:class:`SlowCallbackEvent`).
        on_delivered: A subscription's callback returned, with its timing and lag
            (:class:`DeliveredEvent`).

    Example::

        def log_slow(event: CallEvent) -> None:
            if event.duration > 1.0:
                print(f"{event.method} {event.path} took {event.duration:.1f}s")

        client = ChatClient(token, hooks=Hooks(on_call=log_slow))
    """

    on_request: Callable[[RequestEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_response: Callable[[ResponseEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_call: Callable[[CallEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_state_change: Callable[[StateChangeEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_catch_up_started: Callable[[CatchUpStartedEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_catch_up_finished: Callable[[CatchUpFinishedEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_duplicate_dropped: Callable[[DuplicateDroppedEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_slow_callback: Callable[[SlowCallbackEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )
    on_delivered: Callable[[DeliveredEvent], None] | None = attrs.field(
        default=None, validator=_callable_or_none
    )


# --- path templates --------------------------------------------------------------------------

_ID = r"[^/]+"
#: The API's paths, most specific first; an id segment becomes ``{id}``.
_TEMPLATES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), template)
    for pattern, template in (
        (r"/api/fabric/subscriber/info", "/api/fabric/subscriber/info"),
        (r"/api/fabric/addresses", "/api/fabric/addresses"),
        (rf"/api/fabric/addresses/{_ID}", "/api/fabric/addresses/{id}"),
        (r"/api/fabric/conversations", "/api/fabric/conversations"),
        (r"/api/fabric/conversations/join", "/api/fabric/conversations/join"),
        (rf"/api/fabric/conversations/{_ID}/messages", "/api/fabric/conversations/{id}/messages"),
        (r"/api/fabric/messages", "/api/fabric/messages"),
        (r"/api/fabric/subscribers/tokens", "/api/fabric/subscribers/tokens"),
        (r"/api/fabric/subscribers/tokens/refresh", "/api/fabric/subscribers/tokens/refresh"),
    )
)
UNKNOWN_PATH = "/{unknown}"
_READS_RECORDS = "__signalwire_reads_call_records__"
#: URLs whose template a registry remembers (see :meth:`HookRegistry.path_of`).
_TEMPLATES_KEPT = 256
#: The templates without an id, found by one dict lookup (most calls: send, join, info).
_EXACT = {template: template for _, template in _TEMPLATES if "{" not in template}


def path_template(url: str, base_path: str = "") -> str:
    """The template of a REST URL's path: ids replaced, query dropped, unknown paths hidden.

    Args:
        url: An absolute URL (ours, or a pagination link the service sent).
        base_path: The path of the REST base URL, removed first.

    Returns:
        One of the API's templates, or ``/{unknown}``: nothing of the URL a server chose
        ever reaches an event, a span or a metric.
    """
    try:
        path = urlsplit(url).path
    except ValueError:
        return UNKNOWN_PATH
    if base_path and path.startswith(base_path):
        path = path[len(base_path) :]
    path = path.rstrip("/") or "/"
    exact = _EXACT.get(path)
    if exact is not None:
        return exact
    for pattern, template in _TEMPLATES:
        if pattern.fullmatch(path):
            return template
    return UNKNOWN_PATH


# --- the registry ----------------------------------------------------------------------------


@attrs.frozen
class _Server:
    """The REST base a transport talks to: host, port, and path prefix."""

    address: str
    port: int | None
    base_path: str


#: The port a URL without one goes to (OpenTelemetry's HTTP client spans require the port).
_DEFAULT_PORTS = {"https": 443, "http": 80}


def server_of(base_url: str) -> _Server:
    """The :class:`_Server` of a (checked) REST base URL."""
    parts = urlsplit(base_url)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    return _Server(parts.hostname or "", port, parts.path.rstrip("/"))


class CallRecord(Protocol):
    """What an ended call offers an ``on_call`` hook.

    A :class:`CallEvent`, or for this library's own hooks (see :func:`reads_call_records`)
    the :class:`RestCall` itself.
    """

    @property
    def server_address(self) -> str: ...
    @property
    def server_port(self) -> int | None: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def status(self) -> int | None: ...
    @property
    def duration(self) -> float: ...
    @property
    def error(self) -> str | None: ...
    @property
    def request_id(self) -> str | None: ...
    @property
    def retries(self) -> tuple[ResponseEvent, ...]: ...


def reads_call_records(hook: F) -> F:
    """Mark an ``on_call`` hook of this library's own as reading the ended :class:`RestCall`.

    A :class:`CallEvent` is then not built for it (the OpenTelemetry hooks are marked).
    A ``CallEvent`` (eleven frozen fields) cost about a tenth of all that tracing adds to a
    call above the SDK's own span; the hook reads the same fields, during its call only.
    """
    setattr(hook, _READS_RECORDS, True)
    return hook


class RestCall:
    """One REST call under way: what the transport tells the registry about it.

    When it ended, it is also the :class:`CallRecord` handed to the hooks marked with
    :func:`reads_call_records` (``duration`` and ``error`` are set then). Every field a hook
    reads is a plain slot: a traced call reads them all, and a property costs a call each.
    """

    __slots__ = (
        "_attempt_started",
        "_counted",
        "_registry",
        "_started",
        "attempts",
        "call",
        "duration",
        "error",
        "last_error",
        "method",
        "path",
        "request_id",
        "retries",
        "server_address",
        "server_port",
        "status",
    )

    def __init__(self, registry: HookRegistry, method: str, url: str, server: _Server) -> None:
        self._registry = registry
        self.server_address = server.address
        self.server_port = server.port
        self.call = next(registry.serials)
        self.method = method
        self.attempts = 0
        self.status: int | None = None
        self.request_id: str | None = None
        self.last_error: str | None = None
        self._counted = 0  # attempts already added to the counters
        #: The attempts that were followed by another, oldest first (only a call sent again).
        self.retries: tuple[ResponseEvent, ...] = ()
        self.duration = 0.0  # both set when the call ends
        self.error: str | None = None
        if registry.rest_hooks:
            # Most calls repeat a few URLs: their templates are one lookup away.
            self.path = registry.templates.get(url) or registry.path_of(url, server.base_path)
            # Durations are for the hooks only: without any, no clock is read.
            self._started = self._attempt_started = time.perf_counter()
        else:
            self.path = ""
            self._started = self._attempt_started = 0.0

    def attempt(self) -> None:
        """An attempt is about to be sent."""
        self.attempts += 1
        registry = self._registry
        if not registry.rest_hooks:
            return
        self._attempt_started = time.perf_counter()
        if registry.on_request:
            event = RequestEvent(
                call=self.call,
                server_address=self.server_address,
                server_port=self.server_port,
                method=self.method,
                path=self.path,
                attempt=self.attempts,
            )
            registry.emit(registry.on_request, event)

    def answered(
        self,
        status: int | None,
        error: str | None,
        retry_in: float | None,
        request_id: Callable[[], str | None] | None = None,
    ) -> None:
        """The attempt ended: a status (or ``None``), its failure kind, the wait before the next."""
        if status is not None:
            self.status = status
        self.last_error = error
        registry = self._registry
        if error is not None or retry_in is not None:
            # The rare path reaches the counters at once (a health check during a long
            # retry sees it); a plain success is counted with the call, under one lock.
            registry.counters.attempt(error, retry_in is not None)
            self._counted += 1
        if not registry.on_response and not registry.on_call:
            return
        if request_id is not None:
            self.request_id = request_id() or self.request_id
        # on_call carries the retried attempts; a call sent once builds no event here for it.
        keep = retry_in is not None and bool(registry.on_call)
        if registry.on_response or keep:
            event = ResponseEvent(
                call=self.call,
                server_address=self.server_address,
                server_port=self.server_port,
                method=self.method,
                path=self.path,
                attempt=self.attempts,
                status=status,
                duration=time.perf_counter() - self._attempt_started,
                error=error,
                request_id=self.request_id,
                retry_in=retry_in,
                at=time.time(),
            )
            if keep:
                self.retries = (*self.retries, event)
            if registry.on_response:
                registry.emit(registry.on_response, event)

    def finished(self, error: BaseException | None) -> None:
        """The call returned (``error`` None) or raised ``error``."""
        registry = self._registry
        kind = None if error is None else type(error).__name__
        registry.counters.call(
            kind, kind is not None and kind == self.last_error, self.attempts - self._counted
        )
        if registry.on_call:
            self.duration = time.perf_counter() - self._started
            self.error = kind
            if registry.on_call_events:
                event = CallEvent(
                    call=self.call,
                    server_address=self.server_address,
                    server_port=self.server_port,
                    method=self.method,
                    path=self.path,
                    attempts=self.attempts,
                    status=self.status,
                    duration=self.duration,
                    error=kind,
                    request_id=self.request_id,
                    retries=self.retries,
                )
                registry.emit(registry.on_call_events, event)
            for hook in registry.on_call_records:  # emit()'s loop inline: it runs on every call
                try:
                    hook(self)
                except Exception:  # noqa: BLE001 - a hook never breaks the client (logged)
                    registry.failed(hook, self)


def _collect(hooks: Sequence[Hooks], name: str) -> tuple[Callable[[Any], None], ...]:
    return tuple(getattr(h, name) for h in hooks if getattr(h, name) is not None)


def normalise_hooks(hooks: object) -> tuple[Hooks, ...]:
    """Check ``hooks=``: ``None``, a :class:`Hooks`, or a list or tuple of them.

    Raises:
        InvalidArgumentTypeError: Anything else.
    """
    if hooks is None:
        return ()
    if isinstance(hooks, Hooks):
        return (hooks,)
    if isinstance(hooks, (list, tuple)) and all(isinstance(h, Hooks) for h in hooks):
        return tuple(hooks)
    raise InvalidArgumentTypeError("hooks must be a Hooks, a list of Hooks, or None")


class HookRegistry:
    """The hooks of one client, the counters behind its health, and the safe calling of both.

    Args:
        hooks: The registered hooks (fixed for the life of the client).
        counters: The REST counters :meth:`ChatClient.health` reads.
    """

    def __init__(self, hooks: Sequence[Hooks], counters: RestCounters) -> None:
        self.hooks = tuple(hooks)
        self.counters = counters
        self.serials = itertools.count(1)
        self.on_request = _collect(self.hooks, "on_request")
        self.on_response = _collect(self.hooks, "on_response")
        self.on_call = _collect(self.hooks, "on_call")
        #: The on_call hooks that read the ended RestCall, and those given a CallEvent.
        self.on_call_records = tuple(
            hook for hook in self.on_call if getattr(hook, _READS_RECORDS, False)
        )
        self.on_call_events = tuple(
            hook for hook in self.on_call if hook not in self.on_call_records
        )
        self.on_state_change = _collect(self.hooks, "on_state_change")
        self.on_catch_up_started = _collect(self.hooks, "on_catch_up_started")
        self.on_catch_up_finished = _collect(self.hooks, "on_catch_up_finished")
        self.on_duplicate_dropped = _collect(self.hooks, "on_duplicate_dropped")
        self.on_slow_callback = _collect(self.hooks, "on_slow_callback")
        self.on_delivered = _collect(self.hooks, "on_delivered")
        self.rest_hooks = bool(self.on_request or self.on_response or self.on_call)
        self._failed: set[int] = set()
        self._failed_lock = threading.Lock()
        #: URL -> path template, for the URLs seen last (see :meth:`path_of`).
        self.templates: dict[str, str] = {}

    def path_of(self, url: str, base_path: str) -> str:
        """:func:`path_template` of ``url``, remembered: most calls repeat a few URLs.

        A registry serves one client, so one REST base (``base_path``). At most
        :data:`_TEMPLATES_KEPT` URLs are kept (pages of a history each have their own).
        """
        templates = self.templates
        path = templates.get(url)
        if path is None:
            if len(templates) >= _TEMPLATES_KEPT:
                templates.clear()
            path = templates[url] = path_template(url, base_path)
        return path

    def rest_call(self, method: str, url: str, server: _Server) -> RestCall:
        """Start following one REST call to ``server`` (see :func:`server_of`)."""
        return RestCall(self, method, url, server)

    def emit(self, callbacks: Sequence[Callable[[E], None]], event: E) -> None:
        """Call each callback with ``event``; one that raises is logged, the rest still run."""
        for callback in callbacks:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a hook never breaks the client; logged by failed()
                self.failed(callback, event)

    def failed(self, callback: Callable[[E], None], event: E) -> None:
        """Log the exception ``callback`` is raising on ``event``: WARNING the first time."""
        with self._failed_lock:
            first = id(callback) not in self._failed
            self._failed.add(id(callback))
        logger.log(
            logging.WARNING if first else logging.DEBUG,
            "hook %s raised on %s (ignored)",
            getattr(callback, "__qualname__", type(callback).__name__),
            type(event).__name__,
            exc_info=True,
        )
