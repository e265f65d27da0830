"""The emulator's realtime side: SignalWire's JSON-RPC 2.0 relay over one websocket.

A :class:`RelayHub` serves the websocket that a client opens on ``wss://<ch>/``. It
speaks the protocol written down in ``protocol.md`` (section "Realtime"), as the
official ``@signalwire/js`` 3.28.0 client expects it:

* **Connect.** The first request must be ``signalwire.connect``; its
  ``authentication.jwt_token`` is checked with the ``verify_token`` callable. A
  refused connect is answered with a JSON-RPC error (code -32002) and the socket is
  closed (code 1008). An accepted one is answered with ``protocol``, ``identity``,
  ``authorization`` and ``ice_servers``, followed by a
  ``signalwire.authorization.state`` event carrying a fresh opaque string.
* **Sessions and resume.** A session (named by its ``protocol``) outlives its socket:
  when the socket closes, for any reason, the session is kept for
  ``RelayConfig.resume_window`` seconds. A connect that names that ``protocol`` with a
  token of the same subscriber continues it: the result carries the same ``protocol``,
  and every event that was sent but not acknowledged is sent again, with its original
  id and in its original order, before anything new. Any other ``protocol`` (unknown,
  expired, another subscriber's) starts a new session. A connect that names a session
  still attached to another socket takes it over and drops the old socket (the old one
  is presumed dead, as after a half-open network failure).
* **Gaps are the client's to fill.** Events published while a session has no socket
  are *not* kept for it: a client that promises no gaps fetches the history over REST
  after a reconnect and drops what it already delivered (by message id).
* **Acknowledgements and flow control.** Each ``signalwire.event`` has a fresh id
  (uuid4-shaped) and is acknowledged by a response with the same id and a ``result``.
  A client that connects with ``event_acks: false`` is taken at its word: its events
  count as delivered once written, and are neither held back nor replayed. At most
  ``RelayConfig.event_window`` events are in flight (sent, not yet acknowledged) per
  session; further events wait, in order, in that session's queue and go out one by
  one as acknowledgements arrive. This is what keeps a slow client's memory bounded:
  a client that acknowledges an event only once it has room for another can never be
  sent more than ``event_window`` events it has not yet taken. The server side of
  that queue is bounded too: a session whose queue exceeds
  ``RelayConfig.queue_limit`` is a consumer that has stopped keeping up; its socket is
  closed (code 1013) and the session is discarded, so that the client starts afresh
  and backfills over REST.
* **Pings.** Every ``ping_interval`` seconds the server sends ``signalwire.ping``
  (the official client reconnects after 15 s without one, so the interval must stay
  well under that). A client's own ``signalwire.ping`` is answered with its timestamp.
  Any ``result`` answers a server ping: the v4 client answers with its own clock, not
  an echo of the timestamp. A socket that sends nothing at all (no answer, no frame)
  for ``RelayConfig.ping_timeout`` seconds after a server ping is presumed dead and
  closed (code 1001); its session stays resumable. Any frame counts as a sign of life,
  so a client busy acknowledging events is never dropped for a late ping answer.
* **Events.** Every event's ``event_channel`` contains the session's ``protocol``
  (``signalwire.<protocol>``): the v4 client drops events whose channel does not.
  Conversation events (``conversation.message``, and ``conversation.message.updated``
  after an edit) carry ``is_author``, true for the sender's own sessions, and a float
  ``timestamp``.
* **Extra connect fields.** ``contexts``, ``eventing``, ``topics`` and ``dpop_token``
  on connect, and ``dpop_token`` on reauthenticate (sent by v4), are accepted and
  ignored: a plain SAT needs no proof of possession.
* **Presence.** ``subscriber.online`` and ``subscriber.offline`` are answered with
  ``{"code": "200", "message": "OK"}``; they change nothing.
* **Reauthenticate and expiry.** ``signalwire.reauthenticate`` with a valid token of
  the same subscriber replaces the session's authorization. When the token of the
  session expires, the server sends ``signalwire.disconnect``, waits briefly for the
  answer (v4 sends none, so it is not required), and closes the socket; the session
  stays resumable with a fresh token.
* **Bad frames.** Invalid JSON (nesting too deep for the parser included) is answered
  with error -32700, a frame that is not a JSON-RPC object with -32600, an unknown
  method with -32601; the socket stays open. A frame over 1 MiB closes it (1009).
  Whatever happens while handling a frame is answered (-32603) on the websocket: no
  exception leaves the handler, so aiohttp never writes an HTTP 500 into the upgraded
  socket.
* **Unauthenticated sockets.** A socket without an accepted ``signalwire.connect``
  after ``RelayConfig.auth_timeout`` seconds (10 by default) is closed with code 1008.

Fault hooks (:meth:`RelayHub.drop_all`, :meth:`RelayHub.set_half_open`,
:meth:`RelayHub.refuse_connects`, :meth:`RelayHub.set_ping_interval`, and for events
:meth:`RelayHub.duplicate_next_events`, :meth:`RelayHub.reorder_next_events`,
:meth:`RelayHub.steal_event_channel`) let tests break the link on purpose; the
``Emulator`` methods of the same names document them with examples. Everything here
runs on the emulator's event loop thread: no method may be called from another thread
(the ``Emulator`` marshals such calls).

The parts, each in its own module: this hub (the sessions of each subscriber and the
fan-out of events to them), the per-connection protocol and the sessions
(:mod:`._relay_session`), one websocket's reading, writing, pings and closing
(:mod:`._relay_socket`), the event faults (:mod:`._relay_faults`) and the wire's
constants and frame text (:mod:`._relay_wire`). An event is encoded to JSON once per
publish; per session only its channel, ``is_author`` and id are spliced in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection
from typing import Any

import attrs
from aiohttp import web

from ._relay_faults import EventFaults
from ._relay_session import RelayProtocol, SessionTable
from ._relay_socket import CLOSE_TIMEOUT, FLUSH_TIMEOUT, RelayRuntime, RelaySocket
from ._relay_wire import (
    AUTHENTICATION_FAILED,
    CLOSE_GOING_AWAY,
    EVENT_HEAD,
    EVENT_MID,
    channel,
    dumps,
    new_id,
)

# Importable here under its old name: tests check the ids it makes.
from ._relay_wire import FrameIds as _FrameIds  # noqa: F401
from ._tokens import SatClaims

__all__ = ["RelayConfig", "RelayHub", "SessionInfo"]

_log = logging.getLogger(__name__)

_MAX_FRAME_BYTES = 1024 * 1024


def _positive_or_none(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be positive or None, got {value!r}")


def _positive(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


def _non_negative(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value >= 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value!r}")


def _at_least_one(_inst: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not value >= 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RelayConfig:
    """Tunables of the relay.

    Attributes:
        ping_interval: Seconds between server pings; None disables them. Keep it well
            under 15 s, the official client's watchdog.
        resume_window: Seconds a session outlives its socket and can be resumed.
        event_window: Most unacknowledged events in flight per session.
        space_host: The realtime host of the emulated space (used in ``identity``).
        queue_limit: Most events waiting behind a full window per session; beyond it
            the session is dropped as a consumer that stopped keeping up.
        auth_timeout: Seconds a socket may stay open without an accepted
            ``signalwire.connect``; it is then closed with code 1008.
        ping_timeout: Seconds a connected socket may stay silent (no frame at all)
            after a server ping; it is then closed with code 1001.
    """

    ping_interval: float | None = attrs.field(default=5.0, validator=_positive_or_none)
    resume_window: float = attrs.field(default=60.0, validator=_non_negative)
    event_window: int = attrs.field(default=100, validator=_at_least_one)
    space_host: str = "puc.emulator.test"
    queue_limit: int = attrs.field(default=100_000, validator=_at_least_one)
    auth_timeout: float = attrs.field(default=10.0, validator=_positive)
    ping_timeout: float = attrs.field(default=30.0, validator=_positive)


@attrs.frozen(kw_only=True)
class SessionInfo:
    """A snapshot of one relay session, for tests and benchmarks.

    Attributes:
        protocol: The session's name, as returned by ``signalwire.connect``.
        subscriber_id: The subscriber it belongs to.
        connected: Whether a socket is attached.
        unacked: Events sent and not yet acknowledged.
        queued: Events waiting for room in the window.
    """

    protocol: str
    subscriber_id: str
    connected: bool
    unacked: int
    queued: int


class RelayHub:
    """The relay websocket endpoint of the emulator, its sessions and their fan-out.

    Args:
        verify_token: Checks a SAT and returns its claims; raises
            ``InvalidTokenError`` when the token is refused.
        config: The relay's tunables.
        record: Called with a dict for every socket opened or closed and every frame
            received or sent (``kind`` ``ws_open``, ``ws_recv``, ``ws_send``,
            ``ws_close``), for wire comparisons. Failures of the callable are logged.
        recording: Whether ``record`` wants entries now; entries are built only then
            (always, when None).
    """

    def __init__(
        self,
        *,
        verify_token: Callable[[str], SatClaims],
        config: RelayConfig,
        record: Callable[[dict[str, Any]], None] | None = None,
        recording: Callable[[], bool] | None = None,
    ) -> None:
        self._config = config
        self._runtime = RelayRuntime(config, record, recording)
        self._table = SessionTable(self._runtime)
        self._protocol = RelayProtocol(self._runtime, self._table, verify_token)
        self._faults = EventFaults(self._deliver)
        self._conns: dict[int, RelaySocket] = {}
        self._conn_counter = 0

    def __repr__(self) -> str:
        return (
            f"RelayHub(space_host={self._config.space_host!r}, sockets={len(self._conns)}, "
            f"sessions={len(self._table.by_protocol)}, closed={self._runtime.closed})"
        )

    # ------------------------------------------------------------------ introspection

    @property
    def connect_attempts(self) -> int:
        """Every ``signalwire.connect`` request seen, refused or not."""
        return self._protocol.connect_attempts

    @property
    def live_sessions(self) -> int:
        """How many sessions have a socket attached."""
        return sum(1 for s in self._table.by_protocol.values() if s.conn is not None)

    @property
    def open_sockets(self) -> int:
        """How many websockets are open (connected or not)."""
        return len(self._conns)

    def sessions(self) -> list[SessionInfo]:
        """Return a snapshot of every session, attached or resumable."""
        return [
            SessionInfo(
                protocol=s.protocol,
                subscriber_id=s.subscriber_id,
                connected=s.conn is not None,
                unacked=len(s.unacked),
                queued=len(s.queue),
            )
            for s in self._table.by_protocol.values()
        ]

    # ------------------------------------------------------------------ public entry points

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one websocket (mounted at ``GET /``) until it closes.

        Args:
            request: The upgrade request.

        Returns:
            The websocket response, or a plain 426 when the request is no upgrade,
            or 503 once the hub is closed.
        """
        if self._runtime.closed:
            return web.Response(status=503, text="the relay is shut down")
        ws = web.WebSocketResponse(
            compress=False, timeout=CLOSE_TIMEOUT, max_msg_size=_MAX_FRAME_BYTES
        )
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=426,
                text="this endpoint speaks JSON-RPC over a websocket",
                headers={"Upgrade": "websocket"},
            )
        await ws.prepare(request)
        self._conn_counter += 1
        conn = RelaySocket(self._conn_counter, ws, request, self._runtime)
        self._conns[conn.number] = conn
        self._runtime.emit(
            {
                "kind": "ws_open",
                "conn": conn.number,
                "path": request.path_qs,
                "headers": dict(request.headers),
            }
        )
        conn.writer = self._runtime.spawn(conn.write_loop())
        conn.arm_timer()
        try:
            await conn.read_loop(self._protocol.on_text)
        finally:
            await self._finish(conn)
        return ws

    async def _finish(self, conn: RelaySocket) -> None:
        """Wind a socket down once its read loop has ended; keep its session."""
        code = await conn.wind_down()
        session = conn.session
        if session is not None and session.conn is conn:
            self._table.detach(session)
        conn.session = None
        self._runtime.emit(
            {
                "kind": "ws_close",
                "conn": conn.number,
                "close_code": code,
                "initiator": conn.initiator,
            }
        )
        self._conns.pop(conn.number, None)
        conn.done.set()

    def publish(
        self,
        subscriber_ids: Collection[str],
        params: dict[str, Any],
        *,
        event_type: str = "conversation.message",
        author: str | None = None,
    ) -> None:
        """Push a conversation event to every live session of each subscriber.

        The message's JSON is encoded once; each session gets it in an envelope of its
        own: its ``event_channel`` (which contains the session's ``protocol``, as the
        v4 client requires), ``is_author`` (whether the session's subscriber sent it)
        and the event id. Sessions without a socket are skipped (their client backfills
        over REST).

        Args:
            subscriber_ids: The members who receive the event.
            params: The message object, with ``user_name``, ``conversation_name`` and
                ``hidden``.
            event_type: ``conversation.message`` or ``conversation.message.updated``.
            author: The sending subscriber, whose sessions get ``is_author: true``
                (``params["user_id"]`` when None: the group dialect's messages carry no
                ``user_id``, so its publisher names the author here).

        Raises:
            TypeError: ``subscriber_ids`` is a single string, not a collection of ids.
        """
        if isinstance(subscriber_ids, str):
            raise TypeError("subscriber_ids must be a collection of ids, not one string")
        if self._runtime.closed:
            return
        ids = list(dict.fromkeys(subscriber_ids))
        if author is None:
            author = params.get("user_id")
        self._faults.route((ids, params, event_type, author))

    def _deliver(
        self,
        subscriber_ids: list[str],
        params: dict[str, Any],
        event_type: str,
        author: str | None,
    ) -> None:
        """Send one event (a fresh id per session) to every live session of the members."""
        head = '{"event_type":' + dumps(event_type) + ',"event_channel":'
        tail = ',"timestamp":' + dumps(time.time()) + ',"params":' + dumps(params) + "}"
        # A session with room in its window gets the whole frame in one join (what
        # Session.send_event builds from the body); the pieces around the id are shared.
        frame_head = EVENT_HEAD
        frame_mid = EVENT_MID + head
        frame_tail = tail + "}"
        window = self._config.event_window
        limit = self._config.queue_limit
        next_id = self._runtime.frame_id.next_id
        by_subscriber = self._table.by_subscriber
        for subscriber_id in subscriber_ids:
            sessions = by_subscriber.get(subscriber_id)
            if not sessions:
                continue
            authorship = ',"is_author":true' if subscriber_id == author else ',"is_author":false'
            for session in list(sessions.values()):
                conn = session.conn
                if conn is None or conn.closing:
                    continue
                if not session.queue and len(session.unacked) < window:
                    event_id = next_id()
                    frame = "".join(
                        (
                            frame_head,
                            event_id,
                            frame_mid,
                            session.channel_json,
                            authorship,
                            frame_tail,
                        )
                    )
                    if session.acks:
                        session.unacked[event_id] = frame
                    conn.push(frame)
                elif len(session.queue) >= limit:
                    self._table.drop_slow_consumer(session, conn)
                else:
                    session.queue.append("".join((head, session.channel_json, authorship, tail)))

    async def close(self) -> None:
        """Close every socket, forget every session, and end every task.

        Idempotent. Open sockets get a close frame (code 1001) and are aborted when
        they do not finish closing in time.
        """
        if self._runtime.closed:
            return
        self._runtime.closed = True
        self._faults.close()
        for conn in list(self._conns.values()):
            if conn.running.is_set():
                conn.request_close(CLOSE_GOING_AWAY)
            else:
                conn.abort()
        await self._wait_done(FLUSH_TIMEOUT + CLOSE_TIMEOUT + 1.0)
        for conn in list(self._conns.values()):
            conn.abort()
        await self._wait_done(2.0)
        self._table.clear()
        tasks = list(self._runtime.tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def _wait_done(self, timeout: float) -> None:
        waiters = [asyncio.ensure_future(c.done.wait()) for c in self._conns.values()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        for waiter in pending:
            waiter.cancel()
        if pending:
            await asyncio.wait(pending)

    # ------------------------------------------------------------------ fault hooks

    async def drop_all(self) -> None:
        """Abort every socket, without a close frame, like a network drop.

        Returns once every aborted socket has been wound down (sessions detached and
        resumable).
        """
        for conn in list(self._conns.values()):
            conn.abort()
        await self._wait_done(5.0)

    def duplicate_next_events(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` published events twice.

        The copy is a second ``signalwire.event`` (a fresh event id) with the same message,
        sent right after the first, as a service redelivering would.

        Raises:
            ValueError: ``count`` is negative.
        """
        self._faults.duplicate(count)

    def reorder_next_events(self, count: int = 2) -> None:
        """Hold the next ``count`` published events, then deliver them newest first.

        They go out, in reverse order, when the last of them is published (or in their
        own order from :meth:`release_held_events`).

        Raises:
            ValueError: ``count`` is below 2.
        """
        self._faults.reorder(count)

    def release_held_events(self, *, reverse: bool = False) -> None:
        """Deliver the events held by :meth:`reorder_next_events` now, and stop holding."""
        self._faults.release_held(reverse=reverse)

    def delay_next_events(self, seconds: float, count: int = 1) -> None:
        """Deliver each of the next ``count`` published events ``seconds`` late.

        Events published meanwhile are not held back: they overtake the late ones.

        Raises:
            ValueError: ``seconds`` is not positive or ``count`` is negative.
        """
        self._faults.delay(seconds, count)

    def clear_event_faults(self) -> None:
        """Drop pending event faults; held events are delivered in their order."""
        self._faults.clear()

    def expire_sessions(self, subscriber_id: str | None = None) -> int:
        """End the sessions of a subscriber (of everyone when None) as a token expiry does.

        Each attached socket gets ``signalwire.disconnect`` and is closed; the caller has
        made the tokens invalid (so the session cannot be resumed with them).

        Returns:
            How many sockets were sent a disconnect.
        """
        count = 0
        for session in list(self._table.by_protocol.values()):
            if subscriber_id is not None and session.subscriber_id != subscriber_id:
                continue
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            conn = session.conn
            if conn is not None and not conn.closing:
                self._runtime.spawn(self._protocol.disconnect(conn))
                count += 1
        return count

    def steal_event_channel(self, subscriber_id: str) -> str:
        """Give a subscriber's sessions the event channel of a newer session of theirs.

        From now on their events carry ``event_channel`` ``signalwire.<protocol>`` of a new
        session (not their own ``protocol``): the v4 client, and ``ChatClient`` in the
        group dialect, drop them as stale until they connect again (a connect, a resume
        included, restores the session's own channel).

        Returns:
            The new channel.
        """
        stolen = channel(f"signalwire_stolen_{new_id()}_{new_id()}")
        for session in self._table.by_subscriber.get(subscriber_id, {}).values():
            session.use_channel(stolen)
        return stolen

    def set_half_open(self, on: bool) -> None:
        """Make the sockets open now go silent, or bring them back.

        While on, the sockets that were open when it was switched on are neither read
        nor written nor pinged, but their TCP connections stay open, as after a
        network failure that neither side noticed. Sockets opened afterwards are
        served normally (the path of a reconnect is a new one). Switching it off lets
        the silent sockets catch up on what they held.

        Args:
            on: True to silence the open sockets, False to revive them.
        """
        for conn in self._conns.values():
            if on:
                conn.running.clear()
            else:
                conn.running.set()

    def refuse_connects(
        self, count: int, code: int = AUTHENTICATION_FAILED, message: str = "Authentication failed"
    ) -> None:
        """Refuse the next ``count`` connect requests, whatever their token.

        Each is answered with a JSON-RPC error ``{code, message}`` and its socket closed.
        A new call replaces what is left of the previous one.

        Args:
            count: How many connects to refuse (0 disarms).
            code: The JSON-RPC error code.
            message: The JSON-RPC error message.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._protocol.refuse_connects(count, code, message)

    def set_ping_interval(self, seconds: float | None) -> None:
        """Change the server ping interval of every connected socket.

        Args:
            seconds: The new interval, or None to stop pinging.

        Raises:
            ValueError: ``seconds`` is not positive.
        """
        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds must be positive or None, got {seconds!r}")
        self._runtime.ping_interval = seconds
        for conn in self._conns.values():
            if conn.session is not None and not conn.closing:
                conn.start_pinger()
