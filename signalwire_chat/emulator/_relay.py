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
:meth:`RelayHub.delay_next_events`, :meth:`RelayHub.expire_sessions`,
:meth:`RelayHub.steal_event_channel`) let tests break the link on purpose; the
``Emulator`` methods of the same names document them with examples. Everything here
runs on the emulator's event loop thread: no method may be called from another thread
(the ``Emulator`` marshals such calls). Sends on one socket are serialised by one
writer task per socket; an event is encoded to JSON once per publish, and per session
only its id is spliced in.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Coroutine
from typing import Any

import attrs
from aiohttp import WSCloseCode, WSMsgType, web

from ._tokens import InvalidTokenError, SatClaims

__all__ = ["RelayConfig", "RelayHub", "SessionInfo"]

_log = logging.getLogger(__name__)

AUTHENTICATION_FAILED = -32002
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# How long the server waits for the answer to its signalwire.disconnect.
_DISCONNECT_ANSWER_WAIT = 1.0
# How long a server-side close waits for queued frames to leave, then for the peer's
# close frame (aiohttp's own close timeout).
_FLUSH_TIMEOUT = 1.0
_CLOSE_TIMEOUT = 2.0
# Answers the server still accepts for its own requests (pings, auth state) per socket.
_MAX_AWAITED_ANSWERS = 64
_MAX_FRAME_BYTES = 1024 * 1024
_CLOSE_AUTH_FAILED = int(WSCloseCode.POLICY_VIOLATION)
_CLOSE_SLOW_CONSUMER = int(WSCloseCode.TRY_AGAIN_LATER)
_CLOSE_GOING_AWAY = int(WSCloseCode.GOING_AWAY)

# An event frame is these pieces around its id and its (shared) encoded params.
_EVENT_HEAD = '{"jsonrpc":"2.0","id":"'
_EVENT_MID = '","method":"signalwire.event","params":'


# A frame as sent (its JSON text) and the object it encodes; an event's encoded
# ``params`` and the object they encode.
_Frame = tuple[str, dict[str, Any]]
_Event = tuple[str, dict[str, Any]]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _new_id() -> str:
    return str(uuid.uuid4())


def _channel(protocol: str) -> str:
    """The ``event_channel`` of a session's events: it contains the session's protocol.

    The v4 client drops every event whose channel does not contain its ``protocol``.
    """
    return f"signalwire.{protocol}"


class _FrameIds:
    """Unique uuid4-shaped ids for the server's frames, cheaper than ``uuid.uuid4()``.

    A random uuid4 prefix per hub plus a 48-bit counter (starting at a random value) in
    the last group: unique within a hub and unlikely to repeat across hubs, at a fraction
    of the cost of reading the OS's randomness for every event of a fan-out.
    """

    def __init__(self) -> None:
        self._prefix = str(uuid.uuid4())[:24]
        self._counter = itertools.count(secrets.randbits(47))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFFFFFF:012x}"


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


class _Conn:
    """One websocket: its outbox, its writer and pinger tasks, and its state."""

    def __init__(self, number: int, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.number = number
        self.ws = ws
        self.request = request
        # Encoded frames and the objects they encode (for the record callable).
        self.outbox: collections.deque[_Frame] = collections.deque()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        # Cleared while the connection plays half-open: nothing is read, answered or sent.
        self.running = asyncio.Event()
        self.running.set()
        self.done = asyncio.Event()
        self.session: _Session | None = None
        # Ids of the server's own requests whose answers are expected.
        self.awaited: dict[str, asyncio.Future[dict[str, Any]] | None] = {}
        self.closing = False
        self.aborted = False
        self.initiator = "client"
        self.writer: asyncio.Task[None] | None = None
        self.pinger: asyncio.Task[None] | None = None
        self.closer: asyncio.Task[None] | None = None
        self.auth_deadline: asyncio.TimerHandle | None = None
        # Loop time of the oldest server ping after which nothing has been received
        # (None: something came after the last one), and the check of its deadline.
        self.silent_since: float | None = None
        self.ping_deadline: asyncio.TimerHandle | None = None

    def push(self, frame: _Frame) -> None:
        """Queue an encoded frame for the writer; dropped once the socket is closing."""
        if self.closing:
            return
        self.outbox.append(frame)
        self.idle.clear()
        self.wake.set()

    def send(self, obj: dict[str, Any]) -> None:
        """Encode a frame and queue it."""
        self.push((_dumps(obj), obj))

    def expect(self, rid: str, waiter: asyncio.Future[dict[str, Any]] | None = None) -> None:
        """Remember that an answer with this id is due."""
        self.awaited[rid] = waiter
        if len(self.awaited) > _MAX_AWAITED_ANSWERS:
            del self.awaited[next(iter(self.awaited))]


class _Session:
    """A resumable relay session: authorization, in-flight events and queue."""

    def __init__(self, protocol: str, claims: SatClaims) -> None:
        self.protocol = protocol
        # The event_channel of the session's events, and its JSON (encoded once: publish
        # splices it into every event it sends this session).
        self.channel = _channel(protocol)
        self.channel_json = _dumps(self.channel)
        self.subscriber_id = claims.subscriber_id
        self.project_id = claims.project_id
        self.claims = claims
        self.authorization: dict[str, Any] = {}
        self.conn: _Conn | None = None
        self.closed_at = 0.0
        # Whether the client acknowledges events (``event_acks`` of its connect).
        self.acks = True
        # id -> frame, in the order sent.
        self.unacked: dict[str, _Frame] = {}
        # Events waiting for room in the window.
        self.queue: collections.deque[_Event] = collections.deque()
        self.expiry: asyncio.TimerHandle | None = None
        self.forget: asyncio.TimerHandle | None = None

    def cancel_timers(self) -> None:
        for handle in (self.expiry, self.forget):
            if handle is not None:
                handle.cancel()
        self.expiry = self.forget = None


class RelayHub:
    """The relay websocket endpoint of the emulator and its sessions.

    Args:
        verify_token: Checks a SAT and returns its claims; raises
            ``InvalidTokenError`` when the token is refused.
        config: The relay's tunables.
        record: Called with a dict for every socket opened or closed and every frame
            received or sent (``kind`` ``ws_open``, ``ws_recv``, ``ws_send``,
            ``ws_close``), for wire comparisons. Failures of the callable are logged.

    Attributes:
        connect_attempts: Every ``signalwire.connect`` request seen, refused or not.
    """

    def __init__(
        self,
        *,
        verify_token: Callable[[str], SatClaims],
        config: RelayConfig,
        record: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._verify = verify_token
        self._config = config
        self._record = record
        self._ping_interval = config.ping_interval
        self._sessions: dict[str, _Session] = {}
        self._by_subscriber: dict[str, dict[str, _Session]] = {}
        self._conns: dict[int, _Conn] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._refusals = 0
        self._refusal_code = AUTHENTICATION_FAILED
        self._refusal_message = "Authentication failed"
        self._conn_counter = 0
        self._closed = False
        self._space_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, config.space_host))
        self._frame_id = _FrameIds()
        self.connect_attempts = 0
        # Event faults (see "Fault hooks" in the module docstring).
        self._duplicates = 0
        self._reorder_left = 0
        self._held: list[tuple[list[str], dict[str, Any], str, str | None]] = []
        self._event_delays: collections.deque[float] = collections.deque()
        self._late: set[asyncio.TimerHandle] = set()

    def __repr__(self) -> str:
        return (
            f"RelayHub(space_host={self._config.space_host!r}, sockets={len(self._conns)}, "
            f"sessions={len(self._sessions)}, closed={self._closed})"
        )

    # ------------------------------------------------------------------ introspection

    @property
    def live_sessions(self) -> int:
        """How many sessions have a socket attached."""
        return sum(1 for s in self._sessions.values() if s.conn is not None)

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
            for s in self._sessions.values()
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
        if self._closed:
            return web.Response(status=503, text="the relay is shut down")
        ws = web.WebSocketResponse(
            compress=False, timeout=_CLOSE_TIMEOUT, max_msg_size=_MAX_FRAME_BYTES
        )
        if not ws.can_prepare(request).ok:
            return web.Response(
                status=426,
                text="this endpoint speaks JSON-RPC over a websocket",
                headers={"Upgrade": "websocket"},
            )
        await ws.prepare(request)
        self._conn_counter += 1
        conn = _Conn(self._conn_counter, ws, request)
        self._conns[conn.number] = conn
        self._emit(
            {
                "kind": "ws_open",
                "conn": conn.number,
                "path": request.path_qs,
                "headers": dict(request.headers),
            }
        )
        conn.writer = self._spawn(self._write_loop(conn))
        conn.auth_deadline = asyncio.get_running_loop().call_later(
            self._config.auth_timeout, self._auth_overdue, conn
        )
        try:
            await self._read_loop(conn)
        finally:
            await self._finish(conn)
        return ws

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
        if self._closed:
            return
        ids = list(dict.fromkeys(subscriber_ids))
        if author is None:
            author = params.get("user_id")
        if self._event_delays:
            self._deliver_later(self._event_delays.popleft(), ids, params, event_type, author)
            return
        if self._reorder_left > 0:
            self._held.append((ids, params, event_type, author))
            self._reorder_left -= 1
            if self._reorder_left == 0:
                self.release_held_events(reverse=True)
            return
        self._deliver(ids, params, event_type, author)
        if self._duplicates > 0:
            self._duplicates -= 1
            self._deliver(ids, params, event_type, author)

    def _deliver_later(
        self,
        delay: float,
        ids: list[str],
        params: dict[str, Any],
        event_type: str,
        author: str | None,
    ) -> None:
        def fire() -> None:
            self._late.discard(handle)
            if not self._closed:
                self._deliver(ids, params, event_type, author)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._late.add(handle)

    def _deliver(
        self,
        subscriber_ids: list[str],
        params: dict[str, Any],
        event_type: str,
        author: str | None,
    ) -> None:
        """Send one event (a fresh id per session) to every live session of the members."""
        timestamp = time.time()
        head = '{"event_type":' + _dumps(event_type) + ',"event_channel":'
        tail = ',"timestamp":' + _dumps(timestamp) + ',"params":' + _dumps(params) + "}"
        window = self._config.event_window
        limit = self._config.queue_limit
        for subscriber_id in subscriber_ids:
            sessions = self._by_subscriber.get(subscriber_id)
            if not sessions:
                continue
            is_author = subscriber_id == author
            authorship = ',"is_author":true' if is_author else ',"is_author":false'
            for session in list(sessions.values()):
                conn = session.conn
                if conn is None or conn.closing:
                    continue
                event = {
                    "event_type": event_type,
                    "event_channel": session.channel,
                    "is_author": is_author,
                    "timestamp": timestamp,
                    "params": params,
                }
                body: _Event = ("".join((head, session.channel_json, authorship, tail)), event)
                if session.queue or len(session.unacked) >= window:
                    if len(session.queue) >= limit:
                        self._drop_slow_consumer(session, conn)
                    else:
                        session.queue.append(body)
                else:
                    self._send_event(session, conn, body)

    async def close(self) -> None:
        """Close every socket, forget every session, and end every task.

        Idempotent. Open sockets get a close frame (code 1001) and are aborted when
        they do not finish closing in time.
        """
        if self._closed:
            return
        self._closed = True
        for handle in self._late:
            handle.cancel()
        self._late.clear()
        self._held.clear()
        for conn in list(self._conns.values()):
            if conn.running.is_set():
                self._request_close(conn, _CLOSE_GOING_AWAY)
            else:
                self._abort(conn)
        await self._wait_done(_FLUSH_TIMEOUT + _CLOSE_TIMEOUT + 1.0)
        for conn in list(self._conns.values()):
            self._abort(conn)
        await self._wait_done(2.0)
        for session in self._sessions.values():
            session.cancel_timers()
        self._sessions.clear()
        self._by_subscriber.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # ------------------------------------------------------------------ fault hooks

    async def drop_all(self) -> None:
        """Abort every socket, without a close frame, like a network drop.

        Returns once every aborted socket has been wound down (sessions detached and
        resumable).
        """
        for conn in list(self._conns.values()):
            self._abort(conn)
        await self._wait_done(5.0)

    def duplicate_next_events(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` published events twice.

        The copy is a second ``signalwire.event`` (a fresh event id) with the same message,
        sent right after the first, as a service redelivering would.

        Raises:
            ValueError: ``count`` is negative.
        """
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._duplicates = count

    def reorder_next_events(self, count: int = 2) -> None:
        """Hold the next ``count`` published events, then deliver them newest first.

        They go out, in reverse order, when the last of them is published (or in their
        own order from :meth:`release_held_events`).

        Raises:
            ValueError: ``count`` is below 2.
        """
        if count < 2:
            raise ValueError(f"count must be >= 2, got {count!r}")
        self.release_held_events()
        self._reorder_left = count

    def release_held_events(self, *, reverse: bool = False) -> None:
        """Deliver the events held by :meth:`reorder_next_events` now, and stop holding."""
        held, self._held = self._held, []
        self._reorder_left = 0
        for ids, params, event_type, author in reversed(held) if reverse else held:
            self._deliver(ids, params, event_type, author)

    def delay_next_events(self, seconds: float, count: int = 1) -> None:
        """Deliver each of the next ``count`` published events ``seconds`` late.

        Events published meanwhile are not held back: they overtake the late ones.

        Raises:
            ValueError: ``seconds`` is not positive or ``count`` is negative.
        """
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._event_delays.extend([seconds] * count)

    def clear_event_faults(self) -> None:
        """Drop pending event faults; held events are delivered in their order."""
        self._duplicates = 0
        self._event_delays.clear()
        self.release_held_events()

    def expire_sessions(self, subscriber_id: str | None = None) -> int:
        """End the sessions of a subscriber (of everyone when None) as a token expiry does.

        Each attached socket gets ``signalwire.disconnect`` and is closed; the caller has
        made the tokens invalid (so the session cannot be resumed with them).

        Returns:
            How many sockets were sent a disconnect.
        """
        count = 0
        for session in list(self._sessions.values()):
            if subscriber_id is not None and session.subscriber_id != subscriber_id:
                continue
            if session.expiry is not None:
                session.expiry.cancel()
                session.expiry = None
            conn = session.conn
            if conn is not None and not conn.closing:
                self._spawn(self._disconnect(conn))
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
        channel = _channel(f"signalwire_stolen_{_new_id()}_{_new_id()}")
        for session in self._by_subscriber.get(subscriber_id, {}).values():
            session.channel = channel
            session.channel_json = _dumps(channel)
        return channel

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
        self._refusals = count
        self._refusal_code = code
        self._refusal_message = message

    def set_ping_interval(self, seconds: float | None) -> None:
        """Change the server ping interval of every connected socket.

        Args:
            seconds: The new interval, or None to stop pinging.

        Raises:
            ValueError: ``seconds`` is not positive.
        """
        if seconds is not None and not seconds > 0:
            raise ValueError(f"seconds must be positive or None, got {seconds!r}")
        self._ping_interval = seconds
        for conn in self._conns.values():
            if conn.session is not None and not conn.closing:
                self._start_pinger(conn)

    # ------------------------------------------------------------------ socket plumbing

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _log.error("relay task failed", exc_info=task.exception())

    def _emit(self, entry: dict[str, Any]) -> None:
        if self._record is None:
            return
        try:
            self._record(entry)
        except Exception:  # noqa: BLE001 - a failing recorder must not break the relay
            _log.exception("relay record callable failed")

    async def _wait_done(self, timeout: float) -> None:
        waiters = [asyncio.ensure_future(c.done.wait()) for c in self._conns.values()]
        if not waiters:
            return
        _, pending = await asyncio.wait(waiters, timeout=timeout)
        for waiter in pending:
            waiter.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _read_loop(self, conn: _Conn) -> None:
        ws = conn.ws
        while True:
            msg = await ws.receive()
            if not conn.running.is_set():
                await conn.running.wait()
            conn.silent_since = None
            if msg.type is WSMsgType.TEXT:
                text: str = msg.data
            elif msg.type is WSMsgType.BINARY:
                try:
                    text = bytes(msg.data).decode("utf-8")
                except UnicodeDecodeError:
                    self._emit({"kind": "ws_recv", "conn": conn.number, "frame": {"_binary": True}})
                    self._reply_error(conn, None, PARSE_ERROR, "Parse error: not UTF-8")
                    continue
            else:
                return
            if conn.aborted:
                return
            try:
                self._on_text(conn, text)
            except Exception:  # noqa: BLE001 - one bad frame must not end the socket
                _log.exception("relay socket %d: handling a frame failed", conn.number)
                self._reply_error(conn, None, INTERNAL_ERROR, "Internal error")

    async def _write_loop(self, conn: _Conn) -> None:
        ws = conn.ws
        outbox = conn.outbox
        recording = self._record is not None
        try:
            while True:
                await conn.wake.wait()
                conn.wake.clear()
                while outbox:
                    if not conn.running.is_set():
                        await conn.running.wait()
                    if conn.aborted:
                        return
                    text, obj = outbox.popleft()
                    if recording:
                        self._emit({"kind": "ws_send", "conn": conn.number, "frame": obj})
                    await ws.send_str(text)
                conn.idle.set()
        except ConnectionError as exc:
            _log.debug("relay socket %d: write failed: %s", conn.number, exc)
        finally:
            outbox.clear()
            conn.idle.set()

    async def _ping_loop(self, conn: _Conn, interval: float) -> None:
        loop = asyncio.get_running_loop()
        while not conn.closing:
            await asyncio.sleep(interval)
            if conn.closing or not conn.running.is_set():
                continue
            if conn.silent_since is None:
                conn.silent_since = loop.time()
                if conn.ping_deadline is not None:
                    conn.ping_deadline.cancel()
                conn.ping_deadline = loop.call_later(
                    self._config.ping_timeout, self._ping_overdue, conn
                )
            rid = self._frame_id()
            conn.expect(rid)
            conn.send(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": "signalwire.ping",
                    "params": {"timestamp": time.time()},
                }
            )

    def _ping_overdue(self, conn: _Conn) -> None:
        """Close a socket that has sent nothing since a ping ``ping_timeout`` ago."""
        conn.ping_deadline = None
        since = conn.silent_since
        if since is None or conn.closing:
            return
        if not conn.running.is_set():
            # Half-open on purpose: the server notices nothing; start afresh when revived.
            conn.silent_since = None
            return
        silent = asyncio.get_running_loop().time() - since
        if silent < self._config.ping_timeout:
            return  # heard from since, and a newer ping has its own deadline
        _log.info(
            "relay socket %d: nothing received for %.1f s after a ping; closing",
            conn.number,
            silent,
        )
        self._request_close(conn, _CLOSE_GOING_AWAY)

    def _start_pinger(self, conn: _Conn) -> None:
        if conn.pinger is not None:
            conn.pinger.cancel()
            conn.pinger = None
        if self._ping_interval is not None:
            conn.pinger = self._spawn(self._ping_loop(conn, self._ping_interval))

    def _request_close(self, conn: _Conn, code: int) -> None:
        """Close the socket from the server side once what is queued has left."""
        if conn.closer is not None or conn.aborted or conn.done.is_set():
            return
        conn.closing = True
        conn.initiator = "server"
        conn.closer = self._spawn(self._close_conn(conn, code))

    async def _close_conn(self, conn: _Conn, code: int) -> None:
        try:
            await asyncio.wait_for(conn.idle.wait(), _FLUSH_TIMEOUT)
        except asyncio.TimeoutError:
            _log.debug("relay socket %d: closing with frames still queued", conn.number)
        try:
            await conn.ws.close(code=code)
        except ConnectionError as exc:
            _log.debug("relay socket %d: close failed: %s", conn.number, exc)

    def _abort(self, conn: _Conn) -> None:
        """Cut the TCP connection at once: no close frame, like a network drop."""
        if conn.aborted:
            return
        conn.aborted = True
        conn.closing = True
        conn.initiator = "server"
        conn.running.set()
        conn.wake.set()
        transport = conn.request.transport
        if transport is not None:
            transport.abort()

    def _auth_overdue(self, conn: _Conn) -> None:
        """Close a socket that has not authenticated within ``auth_timeout``."""
        conn.auth_deadline = None
        if conn.session is None and not conn.closing:
            _log.info("relay socket %d: no signalwire.connect in time; closing", conn.number)
            self._request_close(conn, _CLOSE_AUTH_FAILED)

    async def _finish(self, conn: _Conn) -> None:
        """Wind a socket down once its read loop has ended; keep its session."""
        conn.closing = True
        for deadline in (conn.auth_deadline, conn.ping_deadline):
            if deadline is not None:
                deadline.cancel()
        conn.auth_deadline = conn.ping_deadline = None
        if conn.closer is not None:
            await asyncio.wait({conn.closer})
        running = [t for t in (conn.pinger, conn.writer) if t is not None]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running)
        for waiter in conn.awaited.values():
            if waiter is not None and not waiter.done():
                # The socket is gone: whoever waits for an answer stops waiting.
                waiter.set_result({})
        conn.awaited.clear()
        session = conn.session
        if session is not None and session.conn is conn:
            self._detach(session)
        conn.session = None
        code = conn.ws.close_code
        if code is None or conn.aborted:
            code = int(WSCloseCode.ABNORMAL_CLOSURE)
        self._emit(
            {
                "kind": "ws_close",
                "conn": conn.number,
                "close_code": code,
                "initiator": conn.initiator,
            }
        )
        self._conns.pop(conn.number, None)
        conn.done.set()

    # ------------------------------------------------------------------ frames

    def _reply(self, conn: _Conn, rid: Any, result: dict[str, Any]) -> None:
        conn.send({"jsonrpc": "2.0", "id": rid, "result": result})

    def _reply_error(self, conn: _Conn, rid: Any, code: int, message: str) -> None:
        conn.send({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}})

    def _on_text(self, conn: _Conn, text: str) -> None:
        if self._closed:
            return
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # Nesting too deep for the parser is a parse error like any other: answered
            # over the websocket, never an exception out of the handler (aiohttp would
            # then write an HTTP 500 into the upgraded socket).
            self._emit({"kind": "ws_recv", "conn": conn.number, "frame": {"_unparsable": text}})
            deep = isinstance(exc, RecursionError)
            message = "Parse error: nested too deeply" if deep else "Parse error"
            self._reply_error(conn, None, PARSE_ERROR, message)
            return
        if not isinstance(frame, dict):
            self._emit({"kind": "ws_recv", "conn": conn.number, "frame": {"_not_object": frame}})
            self._reply_error(conn, None, INVALID_REQUEST, "Invalid Request: not a JSON object")
            return
        self._emit({"kind": "ws_recv", "conn": conn.number, "frame": frame})
        rid = frame.get("id")
        method = frame.get("method")
        if method is None and ("result" in frame or "error" in frame):
            self._on_answer(conn, frame)
            return
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            self._reply_error(conn, None, INVALID_REQUEST, "Invalid Request: no usable id")
            return
        if not isinstance(method, str) or frame.get("jsonrpc") != "2.0":
            self._reply_error(conn, rid, INVALID_REQUEST, "Invalid Request")
            return
        params = frame.get("params", {})
        if not isinstance(params, dict):
            self._reply_error(conn, rid, INVALID_PARAMS, "Invalid params: not an object")
            return
        session = conn.session
        if session is None:
            if method == "signalwire.connect":
                self._on_connect(conn, rid, params)
            else:
                self._reply_error(
                    conn, rid, AUTHENTICATION_FAILED, "Not connected: send signalwire.connect first"
                )
                self._request_close(conn, _CLOSE_AUTH_FAILED)
        elif method == "signalwire.ping":
            self._reply(conn, rid, {"timestamp": params.get("timestamp", time.time())})
        elif method == "signalwire.reauthenticate":
            self._on_reauthenticate(conn, session, rid, params)
        elif method in ("subscriber.online", "subscriber.offline"):
            # Presence (v4 sends subscriber.online after every connect); chat needs
            # nothing from it, but the client waits for an answer.
            self._reply(conn, rid, {"code": "200", "message": "OK"})
        elif method == "signalwire.connect":
            self._reply_error(conn, rid, INVALID_REQUEST, "Already connected")
        else:
            self._reply_error(conn, rid, METHOD_NOT_FOUND, f"Method not found: {method[:100]}")

    def _on_answer(self, conn: _Conn, frame: dict[str, Any]) -> None:
        rid = frame.get("id")
        if not isinstance(rid, str):
            return
        session = conn.session
        if session is not None and rid in session.unacked:
            if "result" in frame:
                del session.unacked[rid]
                self._pump(session)
            else:
                _log.debug("relay socket %d: event %s answered with an error", conn.number, rid)
            return
        waiter = conn.awaited.pop(rid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    # ------------------------------------------------------------------ connect and auth

    def _check_token(self, params: dict[str, Any]) -> SatClaims | None:
        """Return the claims of the request's token, or None when it is refused."""
        authentication = params.get("authentication")
        token = authentication.get("jwt_token") if isinstance(authentication, dict) else None
        if not isinstance(token, str) or not token:
            _log.info("relay: token missing")
            return None
        try:
            claims = self._verify(token)
        except InvalidTokenError as exc:
            _log.info("relay: token refused: %s", exc)
            return None
        if claims.exp <= time.time():
            _log.info("relay: token expired")
            return None
        return claims

    def _on_connect(self, conn: _Conn, rid: Any, params: dict[str, Any]) -> None:
        self.connect_attempts += 1
        if self._refusals > 0:
            self._refusals -= 1
            self._refuse(conn, rid, self._refusal_code, self._refusal_message)
            return
        claims = self._check_token(params)
        if claims is None:
            self._refuse(conn, rid, AUTHENTICATION_FAILED, "Authentication failed")
            return
        session = self._resumable(params.get("protocol"), claims)
        if session is None:
            protocol = f"signalwire_{claims.jti}_{_new_id()}_{_new_id()}"
            session = _Session(protocol, claims)
            self._sessions[protocol] = session
            self._by_subscriber.setdefault(session.subscriber_id, {})[protocol] = session
            _log.debug("relay socket %d: new session", conn.number)
        else:
            _log.debug("relay socket %d: session resumed", conn.number)
            old = session.conn
            if old is not None:
                old.session = None
                self._abort(old)
        self._authorize(session, claims)
        # A connect (a resume included) takes the session's own event channel back from
        # whoever stole it (steal_event_channel).
        session.channel = _channel(session.protocol)
        session.channel_json = _dumps(session.channel)
        if session.forget is not None:
            session.forget.cancel()
            session.forget = None
        session.conn = conn
        session.acks = params.get("event_acks") is not False
        conn.session = session
        self._reply(
            conn,
            rid,
            {
                "identity": self._identity(session),
                "authorization": session.authorization,
                "protocol": session.protocol,
                "ice_servers": self._ice_servers(claims),
            },
        )
        state_id = self._frame_id()
        conn.expect(state_id)
        conn.send(
            {
                "jsonrpc": "2.0",
                "id": state_id,
                "method": "signalwire.event",
                "params": {
                    "event_type": "signalwire.authorization.state",
                    "event_channel": session.channel,
                    "timestamp": time.time(),
                    "params": {"authorization_state": secrets.token_urlsafe(48)},
                },
            }
        )
        for frame in session.unacked.values():
            conn.push(frame)
        self._pump(session)
        self._start_pinger(conn)

    def _refuse(self, conn: _Conn, rid: Any, code: int, message: str) -> None:
        self._reply_error(conn, rid, code, message)
        self._request_close(conn, _CLOSE_AUTH_FAILED)

    def _resumable(self, protocol: Any, claims: SatClaims) -> _Session | None:
        if not isinstance(protocol, str):
            return None
        session = self._sessions.get(protocol)
        if session is None:
            return None
        if (session.subscriber_id, session.project_id) != (claims.subscriber_id, claims.project_id):
            return None
        if session.conn is None and time.time() - session.closed_at >= self._config.resume_window:
            return None
        return session

    def _on_reauthenticate(
        self, conn: _Conn, session: _Session, rid: Any, params: dict[str, Any]
    ) -> None:
        claims = self._check_token(params)
        authentication = params.get("authentication")
        project = authentication.get("project") if isinstance(authentication, dict) else None
        if (
            claims is None
            or claims.subscriber_id != session.subscriber_id
            or claims.project_id != session.project_id
            or (project is not None and project != claims.project_id)
        ):
            self._reply_error(conn, rid, AUTHENTICATION_FAILED, "Authentication failed")
            return
        self._authorize(session, claims)
        self._reply(
            conn,
            rid,
            {
                "identity": self._identity(session),
                "authorization": session.authorization,
                "protocol": session.protocol,
            },
        )

    def _authorize(self, session: _Session, claims: SatClaims) -> None:
        """Install a token's claims on a session and arm its expiry."""
        session.claims = claims
        application_id = uuid.uuid5(
            uuid.NAMESPACE_URL, f"https://{self._config.space_host}/{claims.project_id}/chat"
        )
        session.authorization = {
            "jti": claims.jti,
            "project_id": claims.project_id,
            "fabric_subscriber": {
                "version": 1,
                "expires_at": int(claims.exp),
                "subscriber_id": claims.subscriber_id,
                "project_id": claims.project_id,
                "application_id": str(application_id),
                "space_id": self._space_id,
            },
        }
        if session.expiry is not None:
            session.expiry.cancel()
        delay = max(0.0, claims.exp - time.time())
        session.expiry = asyncio.get_running_loop().call_later(
            delay, self._on_token_expired, session, claims
        )

    def _identity(self, session: _Session) -> str:
        return f"fabric.{session.subscriber_id}@{self._config.space_host}"

    def _ice_servers(self, claims: SatClaims) -> list[dict[str, Any]]:
        return [
            {
                "urls": [
                    f"turn:turn.{self._config.space_host}:443?transport=tcp",
                    f"turns:turn.{self._config.space_host}:443",
                ],
                "username": f"{int(claims.exp)}:{claims.subscriber_id}",
                "credential": secrets.token_urlsafe(20),
            }
        ]

    def _on_token_expired(self, session: _Session, claims: SatClaims) -> None:
        session.expiry = None
        conn = session.conn
        if conn is None or session.claims is not claims or self._closed:
            return
        self._spawn(self._disconnect(conn))

    async def _disconnect(self, conn: _Conn) -> None:
        """Send signalwire.disconnect, wait briefly for the answer, close the socket."""
        if not conn.running.is_set():
            await conn.running.wait()
        if conn.closing:
            return
        rid = self._frame_id()
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.expect(rid, answer)
        conn.send({"jsonrpc": "2.0", "id": rid, "method": "signalwire.disconnect", "params": {}})
        try:
            await asyncio.wait_for(answer, _DISCONNECT_ANSWER_WAIT)
        except asyncio.TimeoutError:
            _log.debug("relay socket %d: no answer to disconnect", conn.number)
        self._request_close(conn, int(WSCloseCode.OK))

    # ------------------------------------------------------------------ sessions

    def _send_event(self, session: _Session, conn: _Conn, event: _Event) -> None:
        eid = self._frame_id()
        body, params = event
        frame = (
            "".join((_EVENT_HEAD, eid, _EVENT_MID, body, "}")),
            {"jsonrpc": "2.0", "id": eid, "method": "signalwire.event", "params": params},
        )
        if session.acks:
            session.unacked[eid] = frame
        conn.push(frame)

    def _pump(self, session: _Session) -> None:
        """Send queued events while the window has room."""
        conn = session.conn
        if conn is None or conn.closing:
            return
        window = self._config.event_window
        queue = session.queue
        while queue and len(session.unacked) < window:
            self._send_event(session, conn, queue.popleft())

    def _detach(self, session: _Session) -> None:
        session.conn = None
        session.closed_at = time.time()
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if self._closed:
            return
        session.forget = asyncio.get_running_loop().call_later(
            self._config.resume_window, self._forget, session
        )

    def _forget(self, session: _Session) -> None:
        if session.conn is not None:
            return
        session.cancel_timers()
        self._sessions.pop(session.protocol, None)
        sessions = self._by_subscriber.get(session.subscriber_id)
        if sessions is not None:
            sessions.pop(session.protocol, None)
            if not sessions:
                del self._by_subscriber[session.subscriber_id]

    def _drop_slow_consumer(self, session: _Session, conn: _Conn) -> None:
        _log.warning(
            "relay socket %d: %d events queued behind a full window; dropping the session",
            conn.number,
            len(session.queue),
        )
        session.conn = None
        conn.session = None
        self._forget(session)
        session.queue.clear()
        session.unacked.clear()
        self._request_close(conn, _CLOSE_SLOW_CONSUMER)
