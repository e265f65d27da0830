"""The emulator's aiohttp application and the background thread that serves it.

One port serves both transports: REST under ``/api/fabric/...`` and the relay websocket
on ``GET /``. The middlewares here give every response an ``X-Request-Id``, turn every
failure into a fabric error body, apply injected REST faults and feed the traffic
recorder. :class:`ServerThread` runs the event loop in a thread named
``signalwire-emulator-...`` and can be stopped and started again on the same port.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import email.utils
import json
import logging
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
from aiohttp import web
from aiohttp.web_server import Server

from ._record import TrafficRecorder
from ._store import Store
from ._tokens import TokenAuthority

__all__ = [
    "REQUEST_ID_HEADER",
    "EmulatorState",
    "FabricHTTPError",
    "FaultRule",
    "RestFaults",
    "ServerThread",
    "build_app",
    "error_body",
]

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-Id"
MAX_BODY_BYTES = 1024 * 1024
# Loop turns a stopping server waits, after it stops listening, for connections already
# accepted by the OS to be handed to aiohttp (an accept takes a few callbacks).
_ACCEPT_SETTLE_TURNS = 10
_ERROR_DOCS = "https://developer.signalwire.com/rest/signalwire-rest/overview/error-codes"
_T = TypeVar("_T")

_STATUS_CODES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "bad_request"),
    401: ("authentication_error", "unauthorized"),
    403: ("authorization_error", "forbidden"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("invalid_request_error", "request_timeout"),
    413: ("invalid_request_error", "payload_too_large"),
    415: ("invalid_request_error", "unsupported_media_type"),
    422: ("validation_error", "invalid_parameter"),
    429: ("rate_limit_error", "too_many_requests"),
}


def error_body(
    status: int, *, code: str | None = None, message: str = "", attribute: str | None = None
) -> dict[str, Any]:
    """Build a fabric error body: ``{"errors": [{type, code, message, attribute, url}]}``."""
    default_type, default_code = _STATUS_CODES.get(
        status, ("api_error", "internal_error" if status >= 500 else "error")
    )
    return {
        "errors": [
            {
                "type": default_type,
                "code": code or default_code,
                "message": message or f"HTTP {status}",
                "attribute": attribute,
                "url": f"{_ERROR_DOCS}#{code or default_code}",
            }
        ]
    }


class FabricHTTPError(Exception):
    """Raised by a handler to answer with a fabric error body.

    Args:
        status: The HTTP status.
        message: Human-readable message (never contains a token).
        code: The fabric error code; a default per status when None.
        attribute: The request attribute at fault, if any.
        headers: Extra response headers.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        attribute: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.attribute = attribute
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """Render the error as a JSON response."""
        body = error_body(
            self.status, code=self.code, message=self.message, attribute=self.attribute
        )
        return web.json_response(body, status=self.status, headers=self.headers)


@attrs.define
class FaultRule:
    """One injected REST fault: answer ``status`` (or delay) for matching requests.

    Attributes:
        status: The status to answer; 0 for a pure delay.
        method: Match only this HTTP method (any when None).
        path_prefix: Match paths starting with it; None matches every ``/api/`` path.
        times: How many more requests it applies to.
        body: Raw body (str or bytes), JSON body (dict or list) or None for a fabric body.
        headers: Extra response headers.
        delay: Seconds to wait before answering (or before handling, for a pure delay).
    """

    status: int
    method: str | None = None
    path_prefix: str | None = None
    times: int = 1
    body: str | bytes | dict[str, Any] | list[Any] | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    delay: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        """Tell whether the rule applies to a request."""
        if self.method is not None and self.method.upper() != method.upper():
            return False
        if self.path_prefix is None:
            return path.startswith("/api/")
        return path.startswith(self.path_prefix)

    def response(self) -> web.Response:
        """Render the injected answer."""
        headers = dict(self.headers)
        if self.body is None:
            body = error_body(self.status, message=f"injected fault {self.status}")
            return web.json_response(body, status=self.status, headers=headers)
        if isinstance(self.body, (dict, list)):
            return web.json_response(self.body, status=self.status, headers=headers)
        raw = self.body.encode() if isinstance(self.body, str) else self.body
        if not any(k.lower() == "content-type" for k in headers):
            looks_html = raw.lstrip()[:1] == b"<"
            headers["Content-Type"] = "text/html" if looks_html else "text/plain"
        return web.Response(body=raw, status=self.status, headers=headers)


class RestFaults:
    """The list of pending injected REST faults; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        """Queue a rule (rules are tried in the order they were added)."""
        if rule.times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        """Drop every pending rule."""
        with self._lock:
            self._rules.clear()

    def take(self, method: str, path: str) -> FaultRule | None:
        """Return (and use up one application of) the first matching rule, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path):
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                    return rule
        return None


@attrs.define(eq=False)
class EmulatorState:
    """Everything the request handlers share; lives as long as the Emulator.

    Attributes:
        store: The database.
        tokens: Mints and verifies tokens.
        project_id: The project's id.
        api_token: The project's API token (Basic auth password).
        recorder: The traffic recorder.
        faults: Pending REST faults.
        max_text_length: Longest accepted message text, in characters.
        clock: Returns unix time.
        hub: The relay hub while the server runs (None without the relay module).
        idle_timeout: Seconds a request body may take to arrive (408 past it).
        cors_origins: The page origins a browser may call from (``"*"``: any).
    """

    store: Store
    tokens: TokenAuthority
    project_id: str
    api_token: str = attrs.field(repr=False)
    recorder: TrafficRecorder
    faults: RestFaults
    max_text_length: int
    clock: Callable[[], float] = time.time
    hub: Any = None
    idle_timeout: float = 30.0
    cors_origins: frozenset[str] = frozenset({"*"})

    def publish(self, message_id: str, *, event_type: str = "conversation.message") -> None:
        """Push a stored message to every member's sessions; call on the loop thread.

        Each member gets it in the dialect it joined in: the members of its group (a
        room's group too) in the group dialect's shape, the members of its address
        conversation (a room's address, an inbox) in the address dialect's. A subscriber
        who joined a room both ways gets both (each shape matches only its own routes;
        for the event faults, those are two events).

        Args:
            message_id: The stored message's id.
            event_type: ``conversation.message``, or ``conversation.message.updated``
                after an edit.
        """
        hub = self.hub
        found = self.store.message_views(message_id) if hub is not None else None
        if hub is None or found is None:
            return
        (thread, group_id, author), shape = found
        # An audience with nobody in it is no event (the event faults count events).
        members = self.store.member_ids(group_id) if group_id is not None else []
        if members:
            # A group message carries its names (REST and events alike).
            hub.publish(members, shape("group"), event_type=event_type, author=author)
        members = self.store.member_ids(thread) if group_id != thread else []
        if members:
            params = shape("address")
            sender = self.store.get_subscriber(author)
            params["user_name"] = sender["display_name"] if sender else "System"
            params["conversation_name"] = self.store.conversation_name(thread)
            params["hidden"] = False
            hub.publish(members, params, event_type=event_type, author=author)

    def post_message(
        self,
        *,
        conversation_id: str,
        user_id: str,
        text: str | None,
        subtype: str = "chat",
        kind: str | None = None,
        details: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        group_id: str | None = None,
        from_address_id: str | None = None,
        sender: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Store a message and publish it; call on the loop thread.

        In the address dialect (``group_id`` None) the sender joins the conversation of
        ``conversation_id`` (unless it is another subscriber's own address) and its
        primary address is the sender address. For a group
        message, membership is the caller's to check; ``from_address_id`` is the sender
        address (the sender's primary address when None). Either way a room's message
        goes into the room's one thread.

        ``sender`` is the subscriber ``user_id`` names, when the caller has it already.

        Returns:
            The message as its dialect shows it.
        """
        if sender is None or sender["id"] != user_id:
            sender = self.store.get_subscriber(user_id)
        if from_address_id is None and sender is not None:
            from_address_id = sender["fabric_addresses"][0]["id"]
        # Writing to someone's own address delivers to its owner; it does not make the
        # sender a member of (a reader of) that subscriber's conversation.
        join_sender = (
            sender is not None
            and group_id is None
            and self.store.may_join(conversation_id, user_id)
        )
        message = self.store.insert_message(
            conversation_id=self.store.thread_of(group_id) if group_id else conversation_id,
            user_id=user_id,
            from_address_id=from_address_id,
            now=self.clock(),
            text=text,
            subtype=subtype,
            kind=kind,
            details=details,
            metadata=metadata,
            join_sender=join_sender,
            group_id=group_id,
        )
        self.publish(message["id"])
        return message


def _is_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _decode_for_record(raw: bytes, content_type: str) -> Any:
    if not raw:
        return None
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            pass
    return raw.decode("utf-8", errors="replace")


@web.middleware
async def _errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn every failure into a fabric error body (never a bare 500 page)."""
    try:
        return await handler(request)
    except FabricHTTPError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.reason
        if exc.status == 404:
            message = f"no route for {request.path}"
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {}
        return FabricHTTPError(exc.status, message, headers=headers).response()
    except asyncio.CancelledError:
        raise
    except Exception:  # the last line of defence: log it, answer a fabric 500
        logger.exception("emulator handler failed on %s %s", request.method, request.path)
        return FabricHTTPError(500, "internal error in the emulator").response()


def _make_outer_middleware(
    state: EmulatorState,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def outer(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Apply injected faults, then record the exchange."""
        rule = state.faults.take(request.method, request.path)
        if rule is not None and rule.delay > 0:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.status:
            response: web.StreamResponse = rule.response()
        else:
            response = await handler(request)
        if state.recorder.enabled and not _is_upgrade(request):
            await _record_http(state.recorder, request, response)
        logger.debug(
            "%s %s -> %s%s",
            request.method,
            request.path,
            response.status,
            " (injected)" if rule is not None and rule.status else "",
        )
        return response

    return outer


async def _record_http(
    recorder: TrafficRecorder, request: web.Request, response: web.StreamResponse
) -> None:
    try:
        # read() returns the cached body when the handler already read it.
        raw = await request.read() if request.body_exists else b""
    except web.HTTPException:
        raw = b"<body not read: too large>"
    out: Any = None
    if isinstance(response, web.Response) and response.body is not None:
        body = response.body
        out = _decode_for_record(
            body if isinstance(body, bytes) else b"", response.content_type or ""
        )
    recorder.record(
        {
            "kind": "http",
            "method": request.method,
            "path": request.path,
            "query": {k: request.query.getall(k) for k in request.query},
            "headers": dict(request.headers),
            "body": _decode_for_record(raw, request.content_type),
            "status": response.status,
            "response": out,
            "response_headers": dict(response.headers),
        }
    )


async def _add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault(REQUEST_ID_HEADER, str(uuid.uuid4()))


def _date_hook(
    state: EmulatorState,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """Date headers from the emulator's clock, as a service's come from its own.

    A test that steps the clock steps the messages' ``ts`` and the ``Date`` together.
    """

    async def stamp(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Date"] = email.utils.formatdate(state.clock(), usegmt=True)

    return stamp


# CORS, for the official browser clients on a page of another origin (the SDK calls
# https://fabric.<domain> from the page's origin, with a Bearer token and a JSON body, so
# every call but a plain GET is preflighted). The service's own CORS answer is not
# documented; these headers are what such a browser needs (inferred): the allowed origin
# echoed (never with credentials: the token travels in a header, not a cookie), the
# methods of the fabric API, the headers the preflight asks for, and the request id.
_CORS_METHODS = "GET, POST, PUT, PATCH, DELETE"
_CORS_MAX_AGE = "600"
_MAX_CORS_HEADER = 1024


def _cors_origin(state: EmulatorState, request: web.Request) -> str | None:
    """The ``Access-Control-Allow-Origin`` for this request, or None.

    None: not a CORS request, or an origin the emulator was told not to allow.
    """
    origin = request.headers.get("Origin")
    if origin is None or _is_upgrade(request):
        return None
    if "*" in state.cors_origins or origin in state.cors_origins:
        return origin
    return None


def _make_cors_middleware(
    state: EmulatorState,
) -> Callable[..., Awaitable[web.StreamResponse]]:
    @web.middleware
    async def cors(
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Answer a preflight, and say on every answer which page origin may read it."""
        origin = _cors_origin(state, request)
        wanted = request.headers.get("Access-Control-Request-Method")
        if request.method == "OPTIONS" and wanted is not None:
            # A preflight: answered here, before authentication (browsers send none).
            response: web.StreamResponse = web.Response(status=204)
            if origin is not None:
                asked = request.headers.get("Access-Control-Request-Headers", "")
                response.headers["Access-Control-Allow-Methods"] = _CORS_METHODS
                if asked and len(asked) <= _MAX_CORS_HEADER and asked.isprintable():
                    response.headers["Access-Control-Allow-Headers"] = asked
                response.headers["Access-Control-Max-Age"] = _CORS_MAX_AGE
        else:
            response = await handler(request)
        if origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Expose-Headers"] = f"{REQUEST_ID_HEADER}, Retry-After"
        if request.headers.get("Origin") is not None:
            response.headers["Vary"] = "Origin"
        return response

    return cors


def build_app(state: EmulatorState) -> web.Application:
    """Build the aiohttp application serving REST and (when available) the relay."""
    from ._rest import add_routes

    app = web.Application(
        client_max_size=MAX_BODY_BYTES,
        middlewares=[
            _make_cors_middleware(state),
            _make_outer_middleware(state),
            _errors_middleware,
        ],
    )
    app.on_response_prepare.append(_add_request_id)
    app.on_response_prepare.append(_date_hook(state))
    add_routes(app, state)
    return app


class ServerThread:
    """Runs the application on an event loop in a background thread.

    Args:
        make_app: Builds a fresh application for each start.
        host: Interface to bind.
        port: Port to bind; 0 picks a free one, kept for later restarts.
        name: Suffix of the thread name.
        on_start: Coroutine run on the loop before serving (e.g. to create the hub).
        on_stop: Coroutine run on the loop when stopping, before the server closes.
        start_timeout: Seconds to wait for the server to listen.
        idle_timeout: Seconds a connection may go without a complete request (its
            headers never finished, or idle between requests) before it is closed.
        ssl_context: Serve TLS (https and wss) with it; None serves plain http and ws.
    """

    def __init__(
        self,
        *,
        make_app: Callable[[], web.Application],
        host: str,
        port: int,
        name: str,
        on_start: Callable[[], Awaitable[None]] | None = None,
        on_stop: Callable[[], Awaitable[None]] | None = None,
        start_timeout: float = 10.0,
        idle_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._make_app = make_app
        self._ssl_context = ssl_context
        self._idle_timeout = idle_timeout
        self._host = host
        self.port = port
        self._name = name
        self._on_start = on_start
        self._on_stop = on_stop
        self._start_timeout = start_timeout
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._listener: socket.socket | None = None
        # The aiohttp server being shut down, for the last sweep after the loop stopped.
        self._draining: Server | None = None

    @property
    def running(self) -> bool:
        """True between a successful start() and stop()."""
        return self._thread is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The running event loop, or None."""
        return self._loop

    def start(self) -> None:
        """Bind and serve in a new thread; return once listening.

        Raises:
            OSError: the port could not be bound.
            TimeoutError: the server did not come up in time.
        """
        if self._thread is not None:
            return
        sock = _bind(self._host, self.port)
        self.port = sock.getsockname()[1]
        self._ready.clear()
        self._startup_error = None
        thread = threading.Thread(
            target=self._run,
            args=(sock,),
            name=f"signalwire-emulator-{self._name}-{self.port}",
            daemon=True,
        )
        self._thread = thread
        thread.start()
        if not self._ready.wait(self._start_timeout):
            self.stop()
            raise TimeoutError("the emulator did not start in time")
        error = self._take_startup_error()
        if error is not None:
            thread.join(self._start_timeout)
            self._thread = None
            raise error

    def _take_startup_error(self) -> BaseException | None:
        error, self._startup_error = self._startup_error, None
        return error

    def _run(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._listener = sock
        try:
            try:
                loop.run_until_complete(self._serve(sock))
            except BaseException as exc:  # noqa: BLE001 - handed to start() to re-raise
                self._startup_error = exc
                sock.close()
                return
            finally:
                self._ready.set()
            loop.run_forever()
        finally:
            try:
                # A shutdown cut short by stop()'s timeout left its sweep undone.
                server, self._draining = self._draining, None
                _abort_connections(server)
                _cancel_leftovers(loop)
                if self._ssl_context is not None:
                    _abort_transports(loop)
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                self._listener = None
                loop.close()

    async def _serve(self, sock: socket.socket) -> None:
        if self._on_start is not None:
            await self._on_start()
        # keepalive_timeout also runs from the moment a connection is made, so a socket
        # that never finishes its headers is closed after it (aiohttp has no separate
        # header timeout); 3,630 s by default, far too long for a test server.
        runner = web.AppRunner(
            self._make_app(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=0.5,
            keepalive_timeout=self._idle_timeout,
        )
        await runner.setup()
        site = web.SockSite(runner, sock, ssl_context=self._ssl_context)
        await site.start()
        self._runner = runner

    async def _shutdown(self) -> None:
        runner, self._runner = self._runner, None
        server = runner.server if runner is not None else None
        self._draining = server
        listener = self._listener
        if runner is not None and listener is not None:
            # Stop accepting, then let the connections already accepted reach aiohttp,
            # and only then close the server. Closing an asyncio server while an accept
            # is under way (a client reconnecting right after drop_connections()) makes
            # that connection's transport fail half-built (Server._attach asserts), and
            # its socket stays open, never answered, until garbage collection: the
            # client waited out its whole connect timeout.
            with contextlib.suppress(NotImplementedError, ValueError, OSError):
                asyncio.get_running_loop().remove_reader(listener.fileno())
            for _ in range(_ACCEPT_SETTLE_TURNS):
                await asyncio.sleep(0)
        try:
            if self._on_stop is not None:
                await self._on_stop()
        except Exception:  # shutdown goes on; the failure is logged
            logger.warning("emulator on_stop hook failed", exc_info=True)
        if runner is not None:
            await runner.cleanup()
        _abort_connections(server)

    def stop(self, timeout: float = 10.0) -> None:
        """Close every connection, stop the loop and join the thread; idempotent.

        A stop takes milliseconds; ``timeout`` bounds it on a machine too loaded to keep
        up, after which the loop is stopped anyway and whatever is left is cut.
        """
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            try:
                future.result(timeout)
            except (concurrent.futures.TimeoutError, TimeoutError):
                logger.warning("emulator shutdown took longer than %.1f s", timeout)
            except Exception:  # still stop the loop below
                logger.warning("emulator shutdown failed", exc_info=True)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if thread.is_alive():
            logger.warning("emulator thread %s did not end in time", thread.name)
        self._thread = None

    def call(self, fn: Callable[[], _T], timeout: float = 5.0) -> _T:
        """Run ``fn`` on the loop thread and return its result (or raise its error)."""
        loop = self._loop
        if loop is None or threading.current_thread() is self._thread:
            return fn()

        async def wrapper() -> _T:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout)

    def run(self, coro_fn: Callable[[], Awaitable[_T]], timeout: float = 5.0) -> _T:
        """Run a coroutine function on the loop thread and wait for its result."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the emulator is not running")

        async def wrapper() -> _T:
            return await coro_fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), loop).result(timeout)


def _abort_connections(server: Server | None) -> None:
    """Cut every connection aiohttp still holds: no server socket outlives stop()."""
    if server is None:
        return
    for handler in server.connections:
        transport = handler.transport
        if transport is not None:
            transport.abort()


def _abort_transports(loop: asyncio.AbstractEventLoop) -> None:
    """Cut every socket still open on the emulator's (own, stopped) loop, then let it close.

    With TLS a connection outlives aiohttp's view of it: once the peer has closed (a
    browser, requests: neither sends TLS's close_notify), asyncio's TLS layer waits for
    that close_notify up to its 30 s shutdown timeout, on a connection aiohttp no longer
    lists. The selector loop's registry of transports (a private attribute, hence the
    getattr) is the one place that still knows them.
    """
    transports = getattr(loop, "_transports", None)
    if not transports:
        return
    for transport in list(transports.values()):
        with contextlib.suppress(Exception):
            transport.abort()

    async def settle() -> None:
        for _ in range(_ACCEPT_SETTLE_TURNS):  # the closes run in callbacks of later turns
            await asyncio.sleep(0)

    loop.run_until_complete(settle())


def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and await every task still pending on a stopped loop, before it closes.

    A request held by ``delay_next`` (or a shutdown that ran past its timeout) leaves a
    task behind; closing the loop over it would print "Task was destroyed but it is
    pending!" when it is collected.
    """
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in tasks:
        task.cancel()
    if not tasks:
        return

    async def settle() -> None:
        # Bounded: a task that swallows its cancellation must not hang the close.
        await asyncio.wait(tasks, timeout=5.0)

    loop.run_until_complete(settle())
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: no "exception was never retrieved" either


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets a restart bind the same port while old connections linger
        # in TIME_WAIT (the "server restart" fault).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
