"""The connection thread: one websocket to the relay, spoken as protocol.md says.

It connects (``signalwire.connect``, resuming with ``protocol`` and
``authorization_state`` after the first time), answers every ping, acknowledges
every event, refreshes the token with ``signalwire.reauthenticate``, detects dead
links (no frame for ``ping_timeout``) and reconnects with back-off. It never runs
user code: messages go to the dispatcher, token refreshes to a short-lived thread.

websocket-client is used for what it does well and is hard to get right: the TCP
connect, proxies, TLS (``sslopt``) and the HTTP upgrade handshake. Its frame layer
(``WebSocket.recv``/``send``) is bypassed once the handshake is done: the thread
reads the raw socket itself (see ``_frames`` for why), which also lets it wait on
the socket and a wake-up pipe at once with ``poll``, so ``close()`` and the
dispatcher can wake it without timeouts.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import websocket

from .._http import server_text
from ..errors import (
    AuthenticationError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    RealtimeError,
    TokenUnavailableError,
)
from . import _frames
from ._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    BadMessage,
    FrameReader,
    MaskPool,
    ProtocolViolation,
)
from ._options import ConnectionState, RealtimeOptions

if TYPE_CHECKING:
    from ._dispatcher import Dispatcher, Item
    from ._subscriptions import Subscription

__all__ = ["Backoff", "Connection", "Routes", "is_auth_error", "parse_expires_at"]

logger = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024
_BACKOFF_BASE = 0.5
#: Never refresh the token sooner than this after the previous refresh.
_MIN_REFRESH_DELAY = 1.0
_WAIT_ERRORS = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_AUTH_WORDS = ("auth", "token", "requester", "expired", "credential", "jwt")


class Routes:
    """Which subscriptions want which chat messages (copy-on-write: replaced, never mutated).

    ``groups`` maps a ``group_id`` (group dialect) and ``conversations`` a
    ``conversation_id`` (address dialect) to its subscriptions; ``inbox`` takes every chat
    message. ``drop_stale``: drop events whose ``event_channel`` does not name this session
    (the group dialect's rule, as SignalWire's v4 client applies it).
    """

    __slots__ = ("conversations", "drop_stale", "groups", "inbox")

    def __init__(self, *, drop_stale: bool = False) -> None:
        self.groups: dict[str, tuple[Subscription, ...]] = {}
        self.conversations: dict[str, tuple[Subscription, ...]] = {}
        self.inbox: tuple[Subscription, ...] = ()
        self.drop_stale = drop_stale

    def clear(self) -> None:
        """Route nothing any more."""
        self.groups, self.conversations, self.inbox = {}, {}, ()

    def lookup(self, message: dict[str, Any]) -> tuple[Subscription, ...]:
        """The subscriptions a live chat message goes to (values of a wrong type match none)."""
        subs: tuple[Subscription, ...] = ()
        if self.groups:
            key = message.get("group_id")
            if type(key) is str:
                subs = self.groups.get(key, ())
        if self.conversations:
            key = message.get("conversation_id")
            if type(key) is str:
                more = self.conversations.get(key)
                if more:
                    subs = subs + more if subs else more
        if self.inbox:
            subs = subs + self.inbox if subs else self.inbox
        return subs


class Backoff:
    """Reconnect delays: the first retry at once, then exponential with full jitter, capped."""

    def __init__(self, cap: float, base: float = _BACKOFF_BASE, rng: random.Random | None = None):
        self.cap = cap
        self.base = base
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the attempt count."""
        attempt = self.attempt
        self.attempt += 1
        if attempt == 0:
            return 0.0
        ceiling = min(self.cap, self.base * (2 ** min(attempt - 1, 30)))
        return self._rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        """Make the next retry immediate again."""
        self.attempt = 0


def is_auth_error(error: Any) -> bool:
    """Whether a JSON-RPC error to ``signalwire.connect`` means the credentials were refused."""
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    if code in (-32001, -32002):
        return True
    message = error.get("message")
    return isinstance(message, str) and any(w in message.lower() for w in _AUTH_WORDS)


def parse_expires_at(value: Any) -> float | None:
    """``expires_at`` as unix seconds: it comes as a number or an ISO 8601 string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return float(text)
        except ValueError:
            pass
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = _dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        return parsed.timestamp()
    return None


class _AuthRefused(Exception):
    def __init__(self, error: RealtimeAuthenticationError) -> None:
        super().__init__(str(error))
        self.error = error


class _Dead(Exception):
    """The link is unusable; reconnect."""


class Connection:
    """The connection thread and the socket it owns."""

    def __init__(
        self,
        *,
        relay_url: str,
        credentials: Any,
        agent: str,
        options: RealtimeOptions,
        sslopt: dict[str, Any] | None,
        dispatcher: Dispatcher,
        proxy: dict[str, Any] | None = None,
        routes: Routes,
        on_state: Callable[[ConnectionState], None],
        on_connected: Callable[[bool], None],
        on_failed: Callable[[RealtimeError], None],
        on_trouble: Callable[[BaseException], None] = lambda _error: None,
        resume: tuple[str | None, str | None] | None = None,
        name: str = "signalwire-chat-connection",
    ) -> None:
        self._url = relay_url
        self._credentials = credentials
        self._agent = agent
        self._options = options
        self._sslopt = sslopt
        self._proxy = proxy or {}
        self._dispatcher = dispatcher
        self._routes = routes
        self._on_state = on_state
        self._on_connected = on_connected
        self._on_failed = on_failed
        #: Transient trouble for ``on_error`` (a token-source or relay outage), once per outage.
        self._on_trouble = on_trouble
        self._token_outage = False
        self._link_outage = False
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._masks = MaskPool()
        self._ws: websocket.WebSocket | None = None
        self._sock: socket.socket | None = None
        self._muted = False
        #: When the relay accepted the current socket's connect (monotonic), if it did.
        self._accepted_at: float | None = None
        # Resumption state, kept across sockets.
        self.protocol: str | None = resume[0] if resume else None
        self.authorization_state: str | None = resume[1] if resume else None
        self.authorization: dict[str, Any] | None = None
        self._token: str = ""
        # Token refresh, done off this thread (the token source is user code).
        self._refresh_thread: threading.Thread | None = None
        self._refresh_done = threading.Event()
        self._refresh_result: tuple[str | None, BaseException | None] | None = None
        dispatcher.wake = self.wake

    # --- control from other threads ---------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        """The connection thread."""
        return self._thread

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Wake the thread from its wait (safe from any thread)."""
        # A full pipe means a wake-up is pending anyway; a closed one, that the thread ended.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"\0")

    def stop(self) -> None:
        """Ask the thread to close the socket and end; does not wait."""
        self._stop.set()
        self._refresh_done.set()
        self.wake()
        ws = self._ws
        if ws is not None and self._sock is None:
            # Still in the handshake, blocked inside websocket-client: shut the socket
            # down to wake its recv() at once.
            sock = getattr(ws, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the thread to end; True if it did."""
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                sock = self._sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return False
        refresher = self._refresh_thread
        if refresher is not None:
            refresher.join(max(0.0, min(timeout, 0.5)))
        return not self._thread.is_alive()

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        backoff = Backoff(self._options.reconnect_max_delay)
        refreshed = False  # one token refresh per refused connect
        need_refresh = False  # the relay refused the token: get a fresh one before connecting
        ever_connected = False
        attempts = 0
        try:
            while not self._stop.is_set():
                self._on_state(
                    ConnectionState.RECONNECTING if attempts else ConnectionState.CONNECTING
                )
                if need_refresh:
                    outcome = self._refresh_blocking()
                    if self._stop.is_set():
                        break
                    if isinstance(outcome, AuthenticationError):
                        logger.error("realtime: the token source was refused; not reconnecting")
                        self._on_failed(
                            RealtimeAuthenticationError(f"no usable token: {outcome.message}")
                        )
                        return
                    if outcome is None:
                        need_refresh = False
                    elif self._stop.wait(self._retry_delay(backoff)):
                        break
                    else:
                        continue
                attempts += 1
                try:
                    self._session(reconnect=attempts > 1, first=not ever_connected)
                except _AuthRefused as refused:
                    if self._stop.is_set():
                        break
                    if not refreshed and self._credentials.can_refresh:
                        refreshed = need_refresh = True
                        logger.info("realtime: connect refused; refreshing the token once")
                        continue
                    logger.error("realtime: %s; not reconnecting", refused.error)
                    self._on_failed(refused.error)
                    return
                except TokenUnavailableError as exc:
                    logger.warning("realtime: %s", _describe(exc))
                    self._token_trouble(exc)
                except Exception as exc:  # noqa: BLE001 - any transport failure means reconnect
                    logger.info("realtime: connection to the relay failed: %s", _describe(exc))
                    if self._accepted_at is None and not self._stop.is_set():
                        if not ever_connected and _is_configuration_error(exc):
                            # A wrong relay_url (or TLS setting) is not a quiet room: say so.
                            logger.error("realtime: cannot connect: %s", _describe(exc))
                            error = RealtimeConnectError(
                                f"cannot connect to the relay: {_describe(exc)}", permanent=True
                            )
                            error.__cause__ = exc
                            self._on_failed(error)
                            return
                        self._link_trouble(exc)
                else:
                    if self._accepted_at is None and not self._stop.is_set():
                        self._link_trouble(None)  # closed before accepting the connect
                if self._stop.is_set():
                    break
                # Also when the session ended in an exception after it was accepted.
                if self._accepted_at is not None:
                    ever_connected = True
                    refreshed = False
                    # An accepted session proves the relay and the credentials good: whatever
                    # its length, the next attempt is immediate (a relay that refuses never
                    # gets here, so it still meets a growing delay).
                    backoff.reset()
                if self._stop.wait(self._retry_delay(backoff)):
                    break
        finally:
            for fd in (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    @staticmethod
    def _retry_delay(backoff: Backoff) -> float:
        delay = backoff.next_delay()
        if delay > 0:
            logger.info("realtime: reconnecting in %.2f s", delay)
        return delay

    def _link_trouble(self, cause: BaseException | None) -> None:
        """Tell ``on_error`` that connecting fails (transiently), once per outage."""
        if self._link_outage:
            return
        self._link_outage = True
        what = _describe(cause) if cause is not None else "the relay closed the socket"
        error = RealtimeConnectError(f"cannot connect to the relay, retrying: {what}")
        error.__cause__ = cause
        self._on_trouble(error)

    def _token_trouble(self, error: BaseException) -> None:
        """Tell ``on_error`` about a token-source outage, once per outage."""
        if self._token_outage or self._stop.is_set():
            return
        self._token_outage = True
        self._on_trouble(error)

    def _refresh_blocking(self) -> BaseException | None:
        """Get a fresh token on a helper thread; None if one came, else why not.

        An ``AuthenticationError`` is a refusal (final); anything else is transient, and
        reported to ``on_error`` once per outage.
        """
        self._start_refresh()
        self._refresh_done.wait()
        result = self._refresh_result
        self._refresh_result = None
        if self._stop.is_set() or result is None:
            return TokenUnavailableError("stopped")
        token, error = result
        if token is not None:
            self._token_outage = False
            return None
        assert error is not None
        if isinstance(error, AuthenticationError):
            logger.error("realtime: token refresh refused: %s", _describe(error))
            return error
        logger.warning("realtime: token refresh failed, will retry: %s", _describe(error))
        self._token_trouble(error)
        return error

    def _start_refresh(self) -> None:
        stale = self._token
        credentials = self._credentials
        self._refresh_done.clear()
        self._refresh_result = None

        def refresh() -> None:
            try:
                token = credentials.refresh(stale)
                self._refresh_result = (token, None)
            except Exception as exc:  # noqa: BLE001 - reported by the connection thread
                self._refresh_result = (None, exc)
            self._refresh_done.set()
            self.wake()

        self._refresh_thread = threading.Thread(
            target=refresh, name="signalwire-chat-token-refresh", daemon=True
        )
        self._refresh_thread.start()

    def _session(self, *, reconnect: bool, first: bool) -> float | None:
        """One socket, from connect to its end; returns when it was accepted, if it was.

        ``reconnect``: not the first attempt (resumption parameters are sent);
        ``first``: no attempt of this thread was accepted yet.
        """
        self._accepted_at = None
        # The first fetch from a token source runs here: no socket is open yet, so
        # there is no ping to answer meanwhile.
        try:
            self._token = self._credentials.token
        except AuthenticationError as exc:
            raise _AuthRefused(
                RealtimeAuthenticationError(f"no usable token: {exc.message}")
            ) from exc
        self._muted = False
        ws = websocket.WebSocket(sslopt=self._sslopt, skip_utf8_validation=True)
        self._ws = ws
        try:
            if self._stop.is_set():
                return None
            ws.connect(  # type: ignore[no-untyped-call]
                self._url,
                timeout=self._options.connect_timeout,
                suppress_origin=True,
                **self._proxy,
            )
            sock = ws.sock
            if sock is None or self._stop.is_set():
                return None
            self._sock = sock
            return self._speak(sock, reconnect, first)
        finally:
            self._sock = None
            self._ws = None
            sock = ws.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()
                ws.sock = None

    def _send(self, sock: socket.socket, payloads: list[bytes]) -> None:
        """Frame, mask and send ``payloads`` (text frames) with one sendall."""
        if self._muted or not payloads:
            return
        self._send_raw(sock, _frames.encode_frames(payloads, self._masks.take))

    def _send_raw(self, sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        deadline = 0.0
        while view:
            try:
                sent = sock.send(view)
            except _WAIT_ERRORS:
                now = time.monotonic()
                if not deadline:
                    deadline = now + self._options.ping_timeout
                if now >= deadline or self._stop.is_set():
                    raise _Dead("the relay does not read what is sent") from None
                poller = select.poll()
                poller.register(sock, select.POLLOUT)
                poller.register(self._wake_r, select.POLLIN)
                poller.poll(min(deadline - now, 1.0) * 1000)
                continue
            view = view[sent:]

    def _speak(self, sock: socket.socket, reconnect: bool, first: bool) -> float | None:
        options = self._options
        dispatcher = self._dispatcher
        sock.setblocking(False)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        ssl_pending = getattr(sock, "pending", None)
        reader = FrameReader(
            max_message_size=options.max_message_size, max_fragments=options.max_fragments
        )
        connect_id = _frames.new_rpc_id()
        params: dict[str, Any] = {"token": self._token, "agent": self._agent}
        if reconnect:
            params["protocol"] = self.protocol
            params["authorization_state"] = self.authorization_state
        self._send(sock, [_frames.connect_request(connect_id, **params)])
        now = time.monotonic()
        connect_deadline = now + options.connect_timeout
        connected_at: float | None = None
        last_rx = now
        held: deque[tuple[bytes, Item]] = deque()
        hold_limit = max(options.queue_size, 1000)
        reading = True
        refresh_at: float | None = None
        reauth_id: str | None = None
        mute_deadline = 0.0
        probed = False
        state = _SessionState(self, sock, connect_id, reconnect, first)
        refresh_backoff = Backoff(max(self._options.reconnect_max_delay, _MIN_REFRESH_DELAY))

        while True:
            if self._stop.is_set():
                self._goodbye(sock)
                return connected_at
            now = time.monotonic()
            # Hand held-back messages over as room appears, and acknowledge them.
            if held:
                room = dispatcher.queue_size - dispatcher.pending()
                if room > 0:
                    count = min(room, len(held))
                    released = [held.popleft() for _ in range(count)]
                    dispatcher.put_messages([item for _ack, item in released])
                    self._send(sock, [ack for ack, _item in released])
                    if not reading and len(held) < hold_limit:
                        reading = True
                        poller.modify(sock, select.POLLIN)
                        last_rx = now
                if held:
                    dispatcher.want_space = True
                    if dispatcher.queue_size - dispatcher.pending() > 0:
                        continue  # room appeared meanwhile: the wake-up may be lost
            # Token refresh: start it when due, send it when it came.
            if self._refresh_done.is_set() and self._refresh_result is not None:
                token, error = self._refresh_result
                self._refresh_result = None
                if token is not None:
                    self._token_outage = False
                    refresh_backoff.reset()
                if token is not None and connected_at is not None and not self._muted:
                    self._token = token
                    reauth_id = _frames.new_rpc_id()
                    project = (self.authorization or {}).get("project_id")
                    self._send(
                        sock,
                        [_frames.reauthenticate_request(reauth_id, project=project, token=token)],
                    )
                    state.reauth_id = reauth_id
                elif isinstance(error, AuthenticationError):
                    # Final: the relay ends the session at expiry, and the reconnect fails.
                    logger.error("realtime: token refresh refused: %s", _describe(error))
                elif error is not None:
                    # Transient: try again (back-off), also after the token has expired.
                    delay = max(refresh_backoff.next_delay(), _MIN_REFRESH_DELAY)
                    logger.warning(
                        "realtime: token refresh failed, retrying in %.1f s: %s",
                        delay,
                        _describe(error),
                    )
                    self._token_trouble(error)
                    refresh_at = now + delay
            if (
                refresh_at is not None
                and now >= refresh_at
                and (self._refresh_thread is None or not self._refresh_thread.is_alive())
            ):
                refresh_at = None
                self._start_refresh()
            # How long to wait.
            if self._muted:
                timeout = mute_deadline - now
                if timeout <= 0:
                    return connected_at
            elif connected_at is None:
                timeout = connect_deadline - now
                if timeout <= 0:
                    raise _Dead("no answer to signalwire.connect")
            else:
                timeout = last_rx + options.ping_timeout - now
                if timeout <= 0:
                    if not reading:
                        last_rx = now
                        continue
                    logger.warning(
                        "realtime: nothing from the relay for %.1f s; reconnecting",
                        options.ping_timeout,
                    )
                    return connected_at
                # A relay may not ping at all: after half the timeout in silence, ask it
                # with a signalwire.ping of our own; any frame back proves the link alive.
                probe_at = last_rx + options.ping_timeout / 2
                if not probed and reading:
                    if now >= probe_at:
                        probed = True
                        self._send(
                            sock,
                            [
                                _frames.request(
                                    _frames.new_rpc_id(),
                                    "signalwire.ping",
                                    {"timestamp": time.time()},
                                )
                            ],
                        )
                    else:
                        timeout = probe_at - now
                if refresh_at is not None:
                    timeout = min(timeout, max(refresh_at - now, 0.0))
            if not (reading and ssl_pending is not None and ssl_pending()):
                ready = poller.poll(timeout * 1000.0)
                if not ready:
                    continue
                readable = False
                for fd, _mask in ready:
                    if fd == self._wake_r:
                        try:
                            while os.read(self._wake_r, 4096):
                                pass
                        except (BlockingIOError, OSError):
                            pass
                    else:
                        readable = True
                if not readable:
                    continue
            try:
                data = sock.recv(_RECV_SIZE)
            except _WAIT_ERRORS:
                continue
            except OSError as exc:
                raise _Dead(f"recv failed: {exc}") from exc
            if not data:
                logger.info("realtime: the relay closed the connection")
                return connected_at
            last_rx = time.monotonic()
            probed = False
            if self._muted:
                continue  # after signalwire.disconnect: nothing is answered or delivered
            state.held = held
            violation: ProtocolViolation | None = None
            try:
                messages = reader.feed(data)
            except ProtocolViolation as exc:
                # What came before the fault in this read is valid: handle it first.
                messages, violation = exc.messages, exc
            outcome = state.handle(messages)
            if state.connected and connected_at is None:
                connected_at = self._accepted_at = time.monotonic()
                self._link_outage = self._token_outage = False
                refresh_at = self._refresh_time()
            if state.reauthenticated:
                state.reauthenticated = False
                refresh_at = self._refresh_time()
            if outcome is _CLOSE:
                return connected_at
            if violation is not None:
                logger.warning(
                    "realtime: the relay broke the websocket protocol (%s); closing with %d "
                    "and reconnecting",
                    violation.reason,
                    violation.close_code,
                )
                self._goodbye(sock, violation.close_code)
                return connected_at
            if outcome is _MUTE:
                self._muted = True
                mute_deadline = time.monotonic() + min(1.0, options.close_timeout)
            if held:
                dispatcher.want_space = True
                if len(held) >= hold_limit and reading:
                    # The relay ignores the window: stop reading until there is room.
                    reading = False
                    poller.modify(sock, 0)

    def _refresh_time(self) -> float | None:
        """When (monotonic) to refresh the token, or None when it cannot or need not be."""
        if not self._credentials.can_refresh:
            return None
        subscriber = (self.authorization or {}).get("fabric_subscriber")
        if not isinstance(subscriber, dict):
            return None
        expires_at = parse_expires_at(subscriber.get("expires_at"))
        if expires_at is None:
            return None
        remaining = expires_at - time.time()
        delay = max(remaining - self._options.refresh_margin, remaining / 2, _MIN_REFRESH_DELAY)
        return time.monotonic() + delay

    def _goodbye(self, sock: socket.socket, code: int = 1000) -> None:
        """Best-effort close frame on the way out (never blocks)."""
        if self._muted:
            return
        with contextlib.suppress(OSError, ValueError):
            sock.send(_frames.close_frame(self._masks.take(), code))


#: The events carrying a message: a new one, and an edit of an earlier one.
_MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
#: A read holding more events than this is handed over and acknowledged in parts, so the
#: relay refills its window of unacknowledged events (100 on the emulator) while the rest
#: is decoded: acknowledged only at the end of a whole window, the relay sat idle for each
#: window's decode (stream bench: 15,000 -> 20,000 events/s, no more CPU per event).
_ACK_EVERY = 32

_CLOSE = object()
_MUTE = object()


class _SessionState:
    """The per-socket protocol logic: what to do with each batch of frames."""

    def __init__(
        self, conn: Connection, sock: socket.socket, connect_id: str, reconnect: bool, first: bool
    ) -> None:
        self.conn = conn
        self.sock = sock
        self.connect_id = connect_id
        self.reconnect = reconnect
        self.first = first
        self.connected = False
        self.reauth_id: str | None = None
        self.reauthenticated = False
        self.held: deque[tuple[bytes, Item]] = deque()

    def handle(self, frames: list[_frames.Message]) -> object | None:
        """Process complete frames; send the replies at once; say if the socket ends."""
        conn = self.conn
        dispatcher = conn._dispatcher
        routes = conn._routes
        held = self.held
        room = dispatcher.queue_size - dispatcher.pending()
        batch: list[Item] = []
        replies: list[bytes] = []
        ack = _frames.ack
        decode = _frames.decode_message
        outcome: object | None = None
        for opcode, payload in frames:
            if opcode != OP_TEXT:
                if opcode == OP_PING:
                    # A ping's payload is opaque (RFC 6455 5.5.2): echoed, never parsed.
                    self._flush(batch, replies)
                    batch, replies = [], []
                    conn._send_raw(
                        self.sock,
                        _frames.encode_frame(cast(bytes, payload), conn._masks.take(), OP_PONG),
                    )
                    continue
                if opcode == OP_CLOSE:
                    self._flush(batch, replies)
                    # The reader checked the code; a close without one is answered with 1000.
                    code = _frames.close_code(cast(bytes, payload))
                    logger.info("realtime: the relay closed the websocket (code %s)", code)
                    conn._send_raw(self.sock, _frames.close_frame(conn._masks.take(), code or 1000))
                    return _CLOSE
                if opcode != OP_BINARY:
                    continue  # pong
            # Each message on its own: a bad one is skipped, the rest of the read goes on.
            try:
                msg = decode(payload)
            except BadMessage as bad:
                logger.warning(
                    "realtime: skipped a message from the relay (length %d): %s",
                    len(payload),
                    bad.reason,
                )
                if bad.method == "signalwire.event" and bad.rpc_id is not None:
                    # Unacknowledged, the relay would send it again on every resume.
                    replies.append(ack(bad.rpc_id))
                continue
            method = msg.get("method")
            if method == "signalwire.event":
                params = msg.get("params")
                rpc_id = msg.get("id")
                if type(params) is dict:
                    event_type = params.get("event_type")
                    if routes.drop_stale and self._stale(params, event_type):
                        replies.append(ack(rpc_id))
                        continue
                    if event_type in _MESSAGE_EVENTS:
                        inner = params.get("params")
                        if type(inner) is dict and inner.get("subtype") == "chat":
                            subs = routes.lookup(inner)
                            if subs:
                                author = params.get("is_author")
                                if type(author) is bool:
                                    inner["is_author"] = author  # the envelope says it
                                item = (subs, inner, event_type != "conversation.message")
                                if held or room <= 0:
                                    held.append((ack(rpc_id), item))
                                    continue
                                batch.append(item)
                                room -= 1
                    elif event_type == "signalwire.authorization.state":
                        inner = params.get("params")
                        if type(inner) is dict:
                            value = inner.get("authorization_state")
                            if isinstance(value, str):
                                conn.authorization_state = value
                replies.append(ack(rpc_id))
                if len(replies) >= _ACK_EVERY:
                    self._flush(batch, replies)
                    batch, replies = [], []
            elif method == "signalwire.ping":
                params = msg.get("params")
                stamp = params.get("timestamp") if type(params) is dict else None
                replies.append(_frames.ping_result(msg.get("id"), stamp))
            elif method is None:
                self._response(msg)
            elif method == "signalwire.disconnect":
                replies.append(ack(msg.get("id")))
                logger.info("realtime: the relay asked to disconnect; reconnecting")
                outcome = _MUTE
                break
            elif "id" in msg:
                replies.append(
                    json.dumps(
                        {
                            "jsonrpc": "2.0",
                            "id": msg["id"],
                            "error": {"code": -32601, "message": "Method not found"},
                        }
                    ).encode()
                )
        self._flush(batch, replies)
        return outcome

    def _stale(self, params: dict[str, Any], event_type: object) -> bool:
        """Whether an event is for an older session: its channel does not name ours."""
        channel = params.get("event_channel")
        protocol = self.conn.protocol
        if type(channel) is not str or not channel or not protocol or protocol in channel:
            return False
        logger.debug("realtime: stale event dropped (%s, channel of another session)", event_type)
        return True

    def _flush(self, batch: list[Item], replies: list[bytes]) -> None:
        if batch:
            self.conn._dispatcher.put_messages(batch)
        if replies:
            self.conn._send(self.sock, replies)

    def _response(self, msg: dict[str, Any]) -> None:
        conn = self.conn
        rpc_id = msg.get("id")
        if rpc_id == self.connect_id and not self.connected:
            error = msg.get("error")
            if error is not None:
                # The relay's words are untrusted: redacted (it may echo the token), cleaned
                # of control characters and cut short before they reach an error or a log.
                secrets = (*conn._credentials.secrets, conn._token or "")
                raw = error.get("message") if isinstance(error, dict) else None
                message = server_text(raw, [s for s in secrets if s])
                code = error.get("code") if isinstance(error, dict) else None
                if type(code) is not int:
                    code = None
                if is_auth_error(error):
                    raise _AuthRefused(
                        RealtimeAuthenticationError(
                            message or "signalwire.connect refused", rpc_code=code
                        )
                    )
                raise _Dead(f"signalwire.connect failed: {message!r} (code {code!r})")
            result = msg.get("result")
            if not isinstance(result, dict):
                raise _Dead("signalwire.connect answered without a result")
            protocol = result.get("protocol")
            if isinstance(protocol, str):
                if self.reconnect and protocol == conn.protocol:
                    logger.info("realtime: session resumed")
                conn.protocol = protocol
            authorization = result.get("authorization")
            conn.authorization = authorization if isinstance(authorization, dict) else None
            self.connected = True
            logger.info("realtime: connected to the relay")
            # Now, before the frames that follow the answer in this batch: the backfills
            # this queues must come before the live events the relay sends after it.
            conn._on_connected(self.first)
        elif rpc_id is not None and rpc_id == self.reauth_id:
            self.reauth_id = None
            result = msg.get("result")
            if isinstance(result, dict):
                authorization = result.get("authorization", result)
                if isinstance(authorization, dict):
                    conn.authorization = authorization
                self.reauthenticated = True
                logger.info("realtime: token refreshed on the open connection")
            else:
                logger.warning(
                    "realtime: signalwire.reauthenticate refused; the relay will disconnect "
                    "at expiry and the reconnect will use the new token"
                )


def _is_configuration_error(exc: BaseException) -> bool:
    """Whether a failed first connect is a setting to fix rather than a moment to wait out.

    A name that does not resolve, a refused TCP connection, a TLS failure (a certificate
    not trusted, a protocol mismatch) and a 4xx answer to the HTTP upgrade are; timeouts,
    resets, a 5xx upgrade answer and JSON-RPC errors are not.
    """
    if isinstance(exc, (websocket.WebSocketAddressException, socket.gaierror)):
        return True
    if isinstance(exc, ConnectionRefusedError):
        return True
    if isinstance(exc, ssl.SSLError) and not isinstance(
        exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLWantReadError)
    ):
        return True
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status = getattr(exc, "status_code", None)
        return isinstance(status, int) and 400 <= status < 500
    return False


def _describe(exc: BaseException) -> str:
    """A short description of a failure, never with a token in it."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
