"""The connection thread: the I/O loop around the relay protocol.

What to say to the relay and what its messages mean is :class:`~._protocol.RelayProtocol`'s
business (sans-IO: ids, acks, pings, resumption, reauthentication); the websocket's control
frames are :class:`~._websocket.WebSocketConnection`'s; the clocks of a socket's session
(connect deadline, ``ping_timeout``, our own probe of a silent relay, the wait after a
disconnect) are :class:`~._session.RelaySession`'s, and when to refresh the token is
:class:`~._refresher.TokenRefresher`'s. This module does the I/O around them: it opens the
socket, feeds the session what it reads (``_Loop``: poll, read, feed, write, deliver), carries
out its typed actions in order (send, deliver, hold back) and what its timers say is due, and
reconnects with back-off. It never runs user code: messages go to the dispatcher, token
refreshes to a short-lived thread.

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
import logging
import math
import os
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import websocket

from .._backoff import Backoff, ReconnectPolicy
from .._threads import new_thread, start_thread
from ..errors import (
    AuthenticationError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    RealtimeError,
    TokenUnavailableError,
)
from ._actions import (
    Accepted,
    Action,
    Broken,
    Deliver,
    Ended,
    Mute,
    Reauthenticated,
    Refused,
    Send,
    Write,
)
from ._frames import MaskPool
from ._options import ConnectionState, RealtimeOptions
from ._protocol import RelayProtocol, is_auth_error
from ._refresher import TokenRefresher
from ._session import RecentProofs, RelaySession
from ._timers import Due
from ._websocket import WebSocketConnection

if TYPE_CHECKING:
    from ._dispatcher import Dispatcher
    from ._protocol import RouteTable

__all__ = ["Backoff", "Connection", "is_auth_error", "parse_expires_at"]

logger = logging.getLogger(__name__)

_RECV_SIZE = 256 * 1024
_WAIT_ERRORS = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)


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
        routes: RouteTable,
        on_state: Callable[[ConnectionState], None],
        on_connected: Callable[[bool], None],
        on_failed: Callable[[RealtimeError], None],
        on_trouble: Callable[[BaseException], None] = lambda _error: None,
        name: str = "signalwire-chat-connection",
        server_time: Callable[[float], float | None] | None = None,
    ) -> None:
        self._url = relay_url
        self._credentials = credentials
        self._agent = agent
        self._options = options
        if relay_url.lower().startswith("wss:"):
            # The TLS handshake then runs inside the upgrade request, once websocket-client
            # has set ``ws.sock``: stop() can shut that socket down and cut a stalled
            # handshake short (verification still happens, in that handshake).
            sslopt = {**(sslopt or {}), "do_handshake_on_connect": False}
        self._sslopt = sslopt
        self._proxy = proxy or {}
        self._dispatcher = dispatcher
        #: The relay conversation (ids, acks, resumption, routing): no I/O in it.
        self.relay = RelayProtocol(routes, agent)
        self._on_state = on_state
        self._on_connected = on_connected
        self._on_failed = on_failed
        #: Transient trouble for ``on_error`` (a token-source or relay outage), once per outage.
        self._on_trouble = on_trouble
        self._token_outage = False
        self._link_outage = False
        #: Why the next state change happens (how the last session ended), for the hooks.
        self.reason: str | None = None
        self._stop = threading.Event()
        #: The wake-up pipe; -1 once the thread closed it (its numbers are the OS's again).
        self._wake_lock = threading.Lock()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = new_thread(self._run, name)
        self._masks = MaskPool()
        self._ws: websocket.WebSocket | None = None
        self._sock: socket.socket | None = None
        #: Set when the current handshake is over (or the thread is stopping): the watchdog
        #: that holds the handshake to ``connect_timeout`` then ends.
        self._handshake_over = threading.Event()
        self._watchdog: threading.Thread | None = None
        #: The open websocket's frames (pongs, close answers, framing) on the current socket.
        self._link = WebSocketConnection(masks=self._masks)
        self._muted = False
        #: When the relay accepted the current socket's connect (monotonic), if it did.
        self._accepted_at: float | None = None
        #: Events the current session brought (delivered or held back): a sign of health.
        self._session_events = 0
        #: Messages that already proved a session healthy: a redelivery proves nothing.
        self._proofs = RecentProofs()
        self._token: str = ""
        #: Token refresh: fetched off this thread (the token source is user code), on a
        #: schedule from the relay's ``expires_at`` on the service's clock.
        self._refresher = TokenRefresher(
            credentials,
            margin=options.refresh_margin,
            max_delay=options.reconnect_max_delay,
            wake=self.wake,
            server_time=server_time,
        )
        dispatcher.wake = self.wake

    # --- control from other threads ---------------------------------------------------

    @property
    def thread(self) -> threading.Thread:
        """The connection thread."""
        return self._thread

    def threads(self) -> list[threading.Thread]:
        """The connection thread and the token fetch's helper thread, if one was started."""
        watchdog = self._watchdog
        extra = [watchdog] if watchdog is not None else []
        return [self._thread, *extra, *self._refresher.threads()]

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def wake(self) -> None:
        """Wake the thread from its wait (safe from any thread; nothing once it ended)."""
        with self._wake_lock:
            if self._wake_w < 0:
                return  # closed: the number may be another file's now
            with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
                os.write(self._wake_w, b"\0")

    def stop(self) -> None:
        """Ask the thread to close the socket and end; does not wait."""
        self._stop.set()
        self._handshake_over.set()
        self._refresher.cancel()
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
        """Wait up to ``timeout`` seconds for the thread and a token fetch under way to end.

        True if both did. A fetch is the user's token source running: it cannot be cut
        short, only waited for (its outcome is dropped after :meth:`stop`).
        """
        deadline = time.monotonic() + timeout
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                sock = self._sock
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return False
        self._refresher.join(deadline - time.monotonic())
        return not self._thread.is_alive() and not self._refresher.running

    # --- the thread ---------------------------------------------------------------------

    def _run(self) -> None:
        options = self._options
        policy = ReconnectPolicy.for_relay(options.reconnect_max_delay, options.ping_timeout)
        refreshed = False  # one token refresh per refused connect
        need_refresh = False  # the relay refused the token: get a fresh one before connecting
        ever_connected = False
        attempts = 0
        try:
            while not self._stop.is_set():
                self._on_state(
                    ConnectionState.RECONNECTING if attempts else ConnectionState.CONNECTING
                )
                self.reason = None
                if need_refresh:
                    verdict = self._refresh_first(policy)
                    if verdict is not _GO:
                        if verdict is _RETRY:
                            continue
                        return
                    need_refresh = False
                attempts += 1
                try:
                    self._session(reconnect=attempts > 1, first=not ever_connected)
                except _AuthRefused as refused:
                    if not self._refresh_after(refused, refreshed):
                        return
                    refreshed = need_refresh = True
                    continue
                except TokenUnavailableError as exc:
                    self.reason = "token unavailable"
                    logger.warning("realtime: %s", _describe(exc))
                    self._token_trouble(exc)
                except Exception as exc:  # noqa: BLE001 - any transport failure means reconnect
                    if self._failed_for_good(exc, ever_connected):
                        return
                else:
                    self._ended_quietly()
                if self._stop.is_set():
                    return
                # Also when the session ended in an exception after it was accepted.
                if self._accepted_at is not None:
                    ever_connected = True
                    refreshed = False  # the credentials were good
                    self._session_over(policy, self._accepted_at)
                if self._stop.wait(self._retry_delay(policy)):
                    return
        finally:
            self._close_wake()

    def _close_wake(self) -> None:
        """Close the wake-up pipe, once: a late :meth:`wake` then writes nowhere."""
        with self._wake_lock:
            fds = (self._wake_r, self._wake_w)
            self._wake_r = self._wake_w = -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _ended_quietly(self) -> None:
        """A session ended without an error: if before an accept, that is link trouble."""
        if self._accepted_at is None and not self._stop.is_set():
            self._link_trouble(None)  # closed before accepting the connect

    def _refresh_after(self, refused: _AuthRefused, refreshed: bool) -> bool:
        """After a refused connect: True to refresh the token once and try again.

        False: stopped, or the refusal is final (reported to ``on_failed``).
        """
        if self._stop.is_set():
            return False
        if not refreshed and self._credentials.can_refresh:
            self.reason = "token refused; refreshing it"
            logger.info("realtime: connect refused; refreshing the token once")
            return True
        logger.error("realtime: %s; not reconnecting", refused.error)
        self._on_failed(refused.error)
        return False

    def _refresh_first(self, policy: ReconnectPolicy) -> object:
        """Get a fresh token before connecting: ``_GO``, ``_RETRY`` (after a wait) or ``_STOP``."""
        outcome = self._refresh_blocking()
        if self._stop.is_set():
            return _STOP
        if isinstance(outcome, AuthenticationError):
            logger.error("realtime: the token source was refused; not reconnecting")
            self._on_failed(RealtimeAuthenticationError(f"no usable token: {outcome.message}"))
            return _STOP
        if outcome is None:
            return _GO
        return _STOP if self._stop.wait(self._retry_delay(policy)) else _RETRY

    def _failed_for_good(self, exc: Exception, ever_connected: bool) -> bool:
        """Account for a session that ended in ``exc``; True when reconnecting is pointless."""
        self.reason = _failure_reason(exc, self._accepted_at is not None)
        logger.info("realtime: connection to the relay failed: %s", _describe(exc))
        if self._accepted_at is not None or self._stop.is_set():
            return False
        if not ever_connected and _is_configuration_error(exc):
            # A wrong relay_url (or TLS setting) is not a quiet room: say so.
            logger.error("realtime: cannot connect: %s", _describe(exc))
            error = RealtimeConnectError(
                f"cannot connect to the relay: {_describe(exc)}", permanent=True
            )
            error.__cause__ = exc
            self._on_failed(error)
            return True
        self._link_trouble(exc)
        return False

    def _session_over(self, policy: ReconnectPolicy, accepted_at: float) -> None:
        """Tell the reconnect policy the facts of an accepted session; it judges its health.

        Only a healthy session makes the next attempt immediate: a relay that drops every
        session at once meets a growing delay (ReconnectPolicy).
        """
        lasted = time.monotonic() - accepted_at
        if not policy.session_ended(lasted, self._session_events):
            self._short_sessions(policy)

    @staticmethod
    def _retry_delay(policy: ReconnectPolicy) -> float:
        delay = policy.next_delay()
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

    def _short_sessions(self, policy: ReconnectPolicy) -> None:
        """Tell ``on_error``, once per streak, that the relay keeps dropping new sessions."""
        streak = policy.take_streak_report()
        if streak is None or self._stop.is_set():
            return
        why = self.reason or "the session ended"
        logger.warning(
            "realtime: the relay ended %d sessions in a row soon after accepting them (%s); "
            "reconnecting with a growing delay",
            streak,
            why,
        )
        self._on_trouble(
            RealtimeConnectError(
                f"the relay ended {streak} sessions in a row soon after accepting them "
                f"(last: {why}); reconnecting with a growing delay, up to "
                f"{policy.backoff.cap:g} s"
            )
        )

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
        self._refresher.start(self._token)
        result = self._refresher.wait()
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

    def _session(self, *, reconnect: bool, first: bool) -> float | None:
        """One socket, from connect to its end; returns when it was accepted, if it was.

        ``reconnect``: not the first attempt (resumption parameters are sent);
        ``first``: no attempt of this thread was accepted yet.
        """
        self._accepted_at = None
        self._session_events = 0
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
            self._handshake(ws)
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

    def _handshake(self, ws: websocket.WebSocket) -> None:
        """websocket-client's connect, held to ``connect_timeout`` as a whole.

        Its timeout is per socket read: a relay that drips the upgrade answer (a byte, or
        a header line, every few seconds) kept the handshake, and the thread, there for
        ever. A watchdog shuts the socket down once the time is up.
        """
        timeout = self._options.connect_timeout
        over = self._handshake_over = threading.Event()
        if self._stop.is_set():
            over.set()
        late = threading.Event()
        self._watchdog = start_thread(
            _watch_handshake, "relay-handshake-watchdog", args=(ws, over, late, timeout)
        )
        try:
            ws.connect(  # type: ignore[no-untyped-call]
                self._url, timeout=timeout, suppress_origin=True, **self._proxy
            )
        except Exception as exc:
            if late.is_set():
                raise _Dead(f"the websocket handshake took over {timeout:g} s") from exc
            raise
        finally:
            over.set()
        if late.is_set():
            raise _Dead(f"the websocket handshake took over {timeout:g} s")

    def _send(self, sock: socket.socket, payloads: list[bytes]) -> None:
        """Frame, mask and send ``payloads`` (text frames) with one sendall."""
        if self._muted or not payloads:
            return
        self._send_raw(sock, self._link.send(payloads))

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
        """Run one accepted-or-not socket until it ends; return when it was accepted."""
        session = RelaySession(
            self.relay,
            now=time.monotonic(),
            options=self._options,
            masks=self._masks,
            proofs=self._proofs,
        )
        self._link = session.link
        loop = _Loop(self, sock, session, first)
        self._send(
            sock,
            [
                self.relay.connect(
                    self._token, reconnect=reconnect, secrets=self._credentials.secrets
                )
            ],
        )
        try:
            loop.run()
        except _Ended as ended:
            self.reason = ended.reason
            return session.connected_at
        finally:
            self._session_events = session.events
        self._goodbye(sock)
        return session.connected_at

    def _apply(self, loop: _Loop, actions: list[Action]) -> None:
        """Carry out the relay session's actions, in order (an ending one raises)."""
        sock = loop.sock
        # A read's messages come in parts, each before its acks. A lone part wakes the
        # dispatcher as it is queued (the latency row: not after a send); parts of a longer
        # read are woken for once, by read(), after the last acks. Woken at the first part,
        # the dispatcher fought this thread for the GIL while it decoded the rest (stream
        # bench, 20 rounds alternating: CPU per event 0.95x; 3,900 -> 2,300 context switches
        # per 31,000 events; the latency row unchanged).
        lone = _deliveries(actions) == 1
        for action in actions:
            match action:
                case Send(payloads=payloads):
                    self._send(sock, payloads)
                case Deliver(items=items):
                    dispatcher = self._dispatcher
                    dispatcher.put_messages(items, wake=lone)
                    if lone:
                        dispatcher.stats.last_event_at = time.time()
                    else:
                        loop.delivered = True
                case Write(data=data):
                    self._send_raw(sock, data)
                case Accepted():
                    # Now, before the frames that follow the answer in this read: the
                    # catch-up reads this queues must come before the live events after it.
                    self._on_connected(loop.first)
                    self._accepted_at = loop.session.connected_at
                    self._link_outage = self._token_outage = False
                    self._schedule_refresh(loop.session)
                case Reauthenticated():
                    self._schedule_refresh(loop.session)
                case Mute():
                    self._muted = True
                case Refused(error=error):
                    raise _AuthRefused(error)
                case Broken(reason=reason):
                    raise _Dead(reason)
                case Ended(reason=reason, close_code=code):
                    if code is not None:
                        logger.warning(
                            "realtime: the relay broke the websocket protocol (%s); closing "
                            "with %d and reconnecting",
                            reason,
                            code,
                        )
                        self._goodbye(sock, code)
                    raise _Ended(reason)

    def _schedule_refresh(self, session: RelaySession) -> None:
        """After an accept or a reauthentication: when to refresh next, and the expiry."""
        expires_at = self._expires_at()
        session.timers.refresh_at = self._refresher.first_time(expires_at)
        if expires_at is not None:
            self._dispatcher.stats.token_expires_at = expires_at

    def _expires_at(self) -> float | None:
        """When the token expires (unix seconds), as the relay's last answer says, if it does."""
        subscriber = (self.relay.authorization or {}).get("fabric_subscriber")
        if not isinstance(subscriber, dict):
            return None
        expires_at = parse_expires_at(subscriber.get("expires_at"))
        return expires_at if expires_at is not None and math.isfinite(expires_at) else None

    def _refreshed(self, loop: _Loop, now: float) -> None:
        """A token fetch is over: send the new token, or schedule the next try (back-off)."""
        outcome = self._refresher.outcome()
        if outcome is None:
            return
        token, error = outcome
        if token is not None:
            self._token_outage = False
            if loop.session.connected_at is not None and not self._muted:
                self._token = token
                request = self.relay.reauthenticate(token)
                if request is not None:
                    self._send(loop.sock, [request])
        elif isinstance(error, AuthenticationError):
            # Final: the relay ends the session at expiry, and the reconnect fails.
            logger.error("realtime: token refresh refused: %s", _describe(error))
        elif error is not None:
            # Transient: try again (back-off), also after the token has expired.
            loop.session.timers.refresh_at, delay = self._refresher.retry_time(now)
            logger.warning(
                "realtime: token refresh failed, retrying in %.1f s: %s", delay, _describe(error)
            )
            self._token_trouble(error)

    def _due(self, loop: _Loop, due: Due) -> None:
        """Carry out what a session timer says is due.

        Raises:
            _Ended: the ping timeout passed, or the wait after a disconnect is over.
            _Dead: nothing answered ``signalwire.connect`` in time.
        """
        if due is Due.PROBE:
            self._send(loop.sock, [self.relay.probe(time.time())])
        elif due is Due.REFRESH:
            if not self._refresher.running:
                loop.session.timers.refresh_at = None
                self._refresher.start(self._token)
        elif due is Due.PING_TIMEOUT:
            logger.warning(
                "realtime: nothing from the relay for %.1f s; reconnecting",
                self._options.ping_timeout,
            )
            raise _Ended(due.value)
        elif due is Due.MUTE_OVER:
            raise _Ended(due.value)
        else:
            raise _Dead(due.value)

    def _goodbye(self, sock: socket.socket, code: int = 1000) -> None:
        """Best-effort close frame on the way out (never blocks)."""
        if self._muted:
            return
        with contextlib.suppress(OSError, ValueError):
            sock.send(self._link.close(code))


#: What ``Connection._refresh_first`` says: connect now, loop again (after a wait), stop.
_GO = object()
_RETRY = object()
_STOP = object()


class _Ended(Exception):
    """The socket's session ended normally (not an error): the reason, for the hooks."""

    def __init__(self, reason: str | None) -> None:
        super().__init__(reason)
        self.reason = reason


class _Loop:
    """One socket's I/O loop: poll, read, feed, write, deliver; no policy.

    The sans-IO :class:`~._session.RelaySession` gets the bytes, the time and the room; the
    connection carries out its actions and timers (:meth:`Connection._apply`, ``_due``).
    """

    def __init__(
        self, conn: Connection, sock: socket.socket, session: RelaySession, first: bool
    ) -> None:
        self.conn = conn
        self.sock = sock
        self.session = session
        self.first = first
        self.dispatcher = conn._dispatcher
        sock.setblocking(False)
        self.poller = select.poll()
        self.poller.register(sock, select.POLLIN)
        self.poller.register(conn._wake_r, select.POLLIN)
        self.ssl_pending = getattr(sock, "pending", None)
        #: Reads land here, then are copied out at their size: ``recv(_RECV_SIZE)``
        #: allocated (mmap) and shrank (mremap) 256 KiB for every read.
        self.buffer = memoryview(bytearray(_RECV_SIZE))
        #: Messages of this read were queued and the dispatcher not woken for them yet.
        self.delivered = False

    def run(self) -> None:
        """Until the connection stops (or an ending action or timer raises)."""
        conn = self.conn
        session = self.session
        while not conn._stop.is_set():
            now = time.monotonic()
            if session.held and self.release_held(now):
                continue  # room appeared meanwhile: the wake-up may be lost
            conn._refreshed(self, now)
            for due in session.handle_timer(now):
                conn._due(self, due)
            if self.wait(max(session.next_deadline() - now, 0.0)):
                self.read()

    def release_held(self, now: float) -> bool:
        """Hand held messages over, with their acks; True: more held, and room (loop again)."""
        room = self.dispatcher.room()
        reading = self.session.reading
        if room > 0:
            items, acks = self.session.release(room, now)
            self.dispatcher.put_messages(items)
            self.conn._send(self.sock, acks)
        return self.flow(reading) and self.dispatcher.room() > 0

    def flow(self, was_reading: bool) -> bool:
        """Poll the socket while the session reads; ask for room while it holds (True)."""
        session = self.session
        if session.reading is not was_reading:
            self.poller.modify(self.sock, select.POLLIN if session.reading else 0)
        if session.held:
            self.dispatcher.want_space = True
        return bool(session.held)

    def wait(self, timeout: float) -> bool:
        """Wait for the socket (or a wake-up); True when it is readable."""
        if self.session.reading and self.ssl_pending is not None and self.ssl_pending():
            return True  # TLS has decrypted bytes that poll() cannot see
        wake = self.conn._wake_r
        readable = False
        for fd, _mask in self.poller.poll(timeout * 1000.0):
            if fd == wake:
                with contextlib.suppress(BlockingIOError, OSError):
                    while os.read(wake, 4096):
                        pass
            else:
                readable = True
        return readable

    def read(self) -> None:
        """Read once, feed the session, have the connection carry out what it says."""
        try:
            size = self.sock.recv_into(self.buffer)
        except _WAIT_ERRORS:
            return
        except OSError as exc:
            raise _Dead(f"recv failed: {exc}") from exc
        if not size:
            logger.info("realtime: the relay closed the connection")
            raise _Ended("socket closed by the relay")
        data = self.buffer[:size].tobytes()
        reading = self.session.reading
        actions = self.session.receive(data, time.monotonic(), self.dispatcher.room())
        if actions:
            try:
                self.conn._apply(self, actions)
            finally:
                if self.delivered:  # also when an action ended the session
                    self.delivered = False
                    self.dispatcher.stats.last_event_at = time.time()
                    self.dispatcher.kick()
        self.flow(reading)


def _watch_handshake(
    ws: websocket.WebSocket, over: threading.Event, late: threading.Event, timeout: float
) -> None:
    """Shut ``ws``'s socket down if its handshake is not ``over`` within ``timeout`` seconds.

    The socket exists only once the TCP connect is done (that has its own timeout): until
    then, it is looked for again every 50 ms.
    """
    if over.wait(timeout):
        return
    while not over.is_set():
        sock = getattr(ws, "sock", None)
        if sock is not None:
            late.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return
        over.wait(0.05)


def _deliveries(actions: list[Action]) -> int:
    """How many ``Deliver`` actions (parts of a read's messages) ``actions`` holds."""
    count = 0
    for action in actions:
        if type(action) is Deliver:
            count += 1
    return count


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


def _failure_reason(exc: BaseException, accepted: bool) -> str:
    """Why a session ended in ``exc``, for the state-change hooks."""
    if isinstance(exc, _Dead):
        return str(exc)
    return f"{'connection' if accepted else 'connect'} failed: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    """A short description of a failure, never with a token in it."""
    text = str(exc)
    if len(text) > 200:
        text = text[:200] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
