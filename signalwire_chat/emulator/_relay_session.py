"""Relay sessions and the per-connection protocol: connect, resume, acks, reauthenticate.

A :class:`Session` outlives its socket (resume); the :class:`SessionTable` finds, keeps
and forgets sessions; the :class:`RelayProtocol` answers each JSON-RPC frame a socket
reads. The hub (:mod:`._relay`) fans events out over the sessions; the socket layer
(:mod:`._relay_socket`) moves the frames. The rules are written in the module docstring
of :mod:`._relay`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSCloseCode

from ._relay_socket import RelayRuntime, RelaySocket
from ._relay_wire import (
    AUTHENTICATION_FAILED,
    CLOSE_AUTH_FAILED,
    CLOSE_SLOW_CONSUMER,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    channel,
    dumps,
    event_frame,
    new_id,
)
from ._tokens import InvalidTokenError, SatClaims

__all__ = ["RelayProtocol", "Session", "SessionTable"]

_log = logging.getLogger("signalwire_chat.emulator._relay")

# How long the server waits for the answer to its signalwire.disconnect.
_DISCONNECT_ANSWER_WAIT = 1.0
# An event's acknowledgement as clients write it (compact, in this key order): the one
# frame of every event. Its id is a JSON string with nothing to unescape (no quote,
# backslash or control character), so json.loads would return exactly these three keys.
_ACK = re.compile(r'\{"jsonrpc":"2\.0","id":"([^"\\\x00-\x1f]{1,200})","result":\{\}\}')


class Session:
    """A resumable relay session: authorization, in-flight events and queue."""

    def __init__(self, protocol: str, claims: SatClaims) -> None:
        self.protocol = protocol
        self.subscriber_id = claims.subscriber_id
        self.project_id = claims.project_id
        self.claims = claims
        self.authorization: dict[str, Any] = {}
        self.conn: RelaySocket | None = None
        self.closed_at = 0.0
        # Whether the client acknowledges events (``event_acks`` of its connect).
        self.acks = True
        # id -> frame text, in the order sent.
        self.unacked: dict[str, str] = {}
        # Event params (encoded) waiting for room in the window.
        self.queue: collections.deque[str] = collections.deque()
        self.expiry: asyncio.TimerHandle | None = None
        self.forget: asyncio.TimerHandle | None = None
        self.channel = ""
        self.channel_json = ""
        self.use_channel(channel(protocol))

    def use_channel(self, name: str) -> None:
        """Carry ``name`` as the ``event_channel`` of this session's events."""
        self.channel = name
        # Encoded once: the fan-out splices it into every event it sends this session.
        self.channel_json = dumps(name)

    def send_event(self, conn: RelaySocket, params_json: str, event_id: str) -> None:
        """Send one event (its encoded params) under a fresh id; keep it until acked."""
        frame = event_frame(event_id, params_json)
        if self.acks:
            self.unacked[event_id] = frame
        conn.push(frame)

    def pump(self, window: int, frame_id: Callable[[], str]) -> None:
        """Send queued events while the window has room."""
        conn = self.conn
        if conn is None or conn.closing:
            return
        queue = self.queue
        while queue and len(self.unacked) < window:
            self.send_event(conn, queue.popleft(), frame_id())

    def cancel_timers(self) -> None:
        """Cancel the expiry and the forget timers."""
        for handle in (self.expiry, self.forget):
            if handle is not None:
                handle.cancel()
        self.expiry = self.forget = None


class SessionTable:
    """Every session by protocol, and the sessions of each subscriber."""

    def __init__(self, runtime: RelayRuntime) -> None:
        self._runtime = runtime
        self.by_protocol: dict[str, Session] = {}
        self.by_subscriber: dict[str, dict[str, Session]] = {}

    def create(self, claims: SatClaims) -> Session:
        """Start a new session for the claims' subscriber."""
        protocol = f"signalwire_{claims.jti}_{new_id()}_{new_id()}"
        session = Session(protocol, claims)
        self.by_protocol[protocol] = session
        self.by_subscriber.setdefault(session.subscriber_id, {})[protocol] = session
        return session

    def resumable(self, protocol: Any, claims: SatClaims) -> Session | None:
        """The session a connect naming ``protocol`` with these claims continues, if any."""
        if not isinstance(protocol, str):
            return None
        session = self.by_protocol.get(protocol)
        if session is None:
            return None
        if (session.subscriber_id, session.project_id) != (claims.subscriber_id, claims.project_id):
            return None
        window = self._runtime.config.resume_window
        if session.conn is None and time.time() - session.closed_at >= window:
            return None
        return session

    def detach(self, session: Session) -> None:
        """The session's socket is gone: keep it resumable for ``resume_window``."""
        session.conn = None
        session.closed_at = time.time()
        if session.expiry is not None:
            session.expiry.cancel()
            session.expiry = None
        if self._runtime.closed:
            return
        session.forget = asyncio.get_running_loop().call_later(
            self._runtime.config.resume_window, self.forget, session
        )

    def forget(self, session: Session) -> None:
        """Drop a session without a socket (it can no longer be resumed)."""
        if session.conn is not None:
            return
        session.cancel_timers()
        self.by_protocol.pop(session.protocol, None)
        sessions = self.by_subscriber.get(session.subscriber_id)
        if sessions is not None:
            sessions.pop(session.protocol, None)
            if not sessions:
                del self.by_subscriber[session.subscriber_id]

    def drop_slow_consumer(self, session: Session, conn: RelaySocket) -> None:
        """Discard a session whose queue overflowed and close its socket (1013)."""
        _log.warning(
            "relay socket %d: %d events queued behind a full window; dropping the session",
            conn.number,
            len(session.queue),
        )
        session.conn = None
        conn.session = None
        self.forget(session)
        session.queue.clear()
        session.unacked.clear()
        conn.request_close(CLOSE_SLOW_CONSUMER)

    def clear(self) -> None:
        """Forget every session (the hub is closing)."""
        for session in self.by_protocol.values():
            session.cancel_timers()
        self.by_protocol.clear()
        self.by_subscriber.clear()


class RelayProtocol:
    """Answers the JSON-RPC frames of every socket: connect, acks, pings, reauthenticate.

    Args:
        runtime: What the hub's parts share.
        table: The sessions.
        verify_token: Checks a SAT and returns its claims (``InvalidTokenError`` when not).

    Attributes:
        connect_attempts: Every ``signalwire.connect`` request seen, refused or not.
    """

    def __init__(
        self,
        runtime: RelayRuntime,
        table: SessionTable,
        verify_token: Callable[[str], SatClaims],
    ) -> None:
        self._runtime = runtime
        self._table = table
        self._verify = verify_token
        self._space_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, runtime.config.space_host))
        self.connect_attempts = 0
        self._refusals = 0
        self._refusal_code = AUTHENTICATION_FAILED
        self._refusal_message = "Authentication failed"

    def refuse_connects(self, count: int, code: int, message: str) -> None:
        """Refuse the next ``count`` connects with this JSON-RPC error."""
        self._refusals = count
        self._refusal_code = code
        self._refusal_message = message

    # -- frames ---------------------------------------------------------------------------

    def on_text(self, conn: RelaySocket, text: str) -> None:
        """Answer one text frame read from ``conn``."""
        if self._runtime.closed:
            return
        ack = _ACK.fullmatch(text)
        if ack is not None:
            # The frame json.loads would make, without its cost (a third of the time
            # spent on each acknowledgement, cProfile of benchmarks/fanout.py); the
            # acknowledgement of an event in flight is settled here, the rest as any answer.
            rid = ack.group(1)
            if self._runtime.recording():
                conn.record_received({"jsonrpc": "2.0", "id": rid, "result": {}})
            session = conn.session
            if session is not None and rid in session.unacked:
                del session.unacked[rid]
                if session.queue:
                    session.pump(self._runtime.config.event_window, self._runtime.frame_id)
                return
            self._on_answer(conn, {"jsonrpc": "2.0", "id": rid, "result": {}})
            return
        frame = self._parse(conn, text)
        if frame is None:
            return
        method = frame.get("method")
        if method is None and ("result" in frame or "error" in frame):
            self._on_answer(conn, frame)
            return
        rid = frame.get("id")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            conn.reply_error(None, INVALID_REQUEST, "Invalid Request: no usable id")
            return
        if not isinstance(method, str) or frame.get("jsonrpc") != "2.0":
            conn.reply_error(rid, INVALID_REQUEST, "Invalid Request")
            return
        params = frame.get("params", {})
        if not isinstance(params, dict):
            conn.reply_error(rid, INVALID_PARAMS, "Invalid params: not an object")
            return
        session = conn.session
        if session is None:
            self._on_unauthenticated(conn, method, rid, params)
        else:
            self._on_request(conn, session, method, rid, params)

    def _parse(self, conn: RelaySocket, text: str) -> dict[str, Any] | None:
        """The frame as a JSON object, or None once an error has been answered."""
        try:
            frame = json.loads(text)
        except (ValueError, RecursionError) as exc:
            # Nesting too deep for the parser is a parse error like any other: answered
            # over the websocket, never an exception out of the handler (aiohttp would
            # then write an HTTP 500 into the upgraded socket).
            conn.record_received({"_unparsable": text})
            deep = isinstance(exc, RecursionError)
            message = "Parse error: nested too deeply" if deep else "Parse error"
            conn.reply_error(None, PARSE_ERROR, message)
            return None
        if not isinstance(frame, dict):
            conn.record_received({"_not_object": frame})
            conn.reply_error(None, INVALID_REQUEST, "Invalid Request: not a JSON object")
            return None
        conn.record_received(frame)
        return frame

    def _on_unauthenticated(
        self, conn: RelaySocket, method: str, rid: Any, params: dict[str, Any]
    ) -> None:
        if method == "signalwire.connect":
            self._on_connect(conn, rid, params)
            return
        conn.reply_error(rid, AUTHENTICATION_FAILED, "Not connected: send signalwire.connect first")
        conn.request_close(CLOSE_AUTH_FAILED)

    def _on_request(
        self, conn: RelaySocket, session: Session, method: str, rid: Any, params: dict[str, Any]
    ) -> None:
        if method == "signalwire.ping":
            conn.reply(rid, {"timestamp": params.get("timestamp", time.time())})
        elif method == "signalwire.reauthenticate":
            self._on_reauthenticate(conn, session, rid, params)
        elif method in ("subscriber.online", "subscriber.offline"):
            # Presence (v4 sends subscriber.online after every connect); chat needs
            # nothing from it, but the client waits for an answer.
            conn.reply(rid, {"code": "200", "message": "OK"})
        elif method == "signalwire.connect":
            conn.reply_error(rid, INVALID_REQUEST, "Already connected")
        else:
            conn.reply_error(rid, METHOD_NOT_FOUND, f"Method not found: {method[:100]}")

    def _on_answer(self, conn: RelaySocket, frame: dict[str, Any]) -> None:
        rid = frame.get("id")
        if not isinstance(rid, str):
            return
        session = conn.session
        if session is not None and rid in session.unacked:
            if "result" in frame:
                del session.unacked[rid]
                if session.queue:
                    session.pump(self._runtime.config.event_window, self._runtime.frame_id)
            else:
                _log.debug("relay socket %d: event %s answered with an error", conn.number, rid)
            return
        waiter = conn.awaited.pop(rid, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(frame)

    # -- connect and auth -----------------------------------------------------------------

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

    def _on_connect(self, conn: RelaySocket, rid: Any, params: dict[str, Any]) -> None:
        self.connect_attempts += 1
        if self._refusals > 0:
            self._refusals -= 1
            self._refuse(conn, rid, self._refusal_code, self._refusal_message)
            return
        claims = self._check_token(params)
        if claims is None:
            self._refuse(conn, rid, AUTHENTICATION_FAILED, "Authentication failed")
            return
        session = self._attach(conn, params, claims)
        conn.reply(
            rid,
            {
                "identity": self._identity(session),
                "authorization": session.authorization,
                "protocol": session.protocol,
                "ice_servers": self._ice_servers(claims),
            },
        )
        state_id = self._runtime.frame_id()
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
        session.pump(self._runtime.config.event_window, self._runtime.frame_id)
        conn.start_pinger()

    def _attach(self, conn: RelaySocket, params: dict[str, Any], claims: SatClaims) -> Session:
        """The session an accepted connect continues (or starts), now on ``conn``."""
        session = self._table.resumable(params.get("protocol"), claims)
        if session is None:
            session = self._table.create(claims)
            _log.debug("relay socket %d: new session", conn.number)
        else:
            _log.debug("relay socket %d: session resumed", conn.number)
            old = session.conn
            if old is not None:
                old.session = None
                old.abort()
        self._authorize(session, claims)
        # A connect (a resume included) takes the session's own event channel back from
        # whoever stole it (steal_event_channel).
        session.use_channel(channel(session.protocol))
        if session.forget is not None:
            session.forget.cancel()
            session.forget = None
        session.conn = conn
        session.acks = params.get("event_acks") is not False
        conn.session = session
        return session

    def _refuse(self, conn: RelaySocket, rid: Any, code: int, message: str) -> None:
        conn.reply_error(rid, code, message)
        conn.request_close(CLOSE_AUTH_FAILED)

    def _on_reauthenticate(
        self, conn: RelaySocket, session: Session, rid: Any, params: dict[str, Any]
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
            conn.reply_error(rid, AUTHENTICATION_FAILED, "Authentication failed")
            return
        self._authorize(session, claims)
        conn.reply(
            rid,
            {
                "identity": self._identity(session),
                "authorization": session.authorization,
                "protocol": session.protocol,
            },
        )

    def _authorize(self, session: Session, claims: SatClaims) -> None:
        """Install a token's claims on a session and arm its expiry."""
        space_host = self._runtime.config.space_host
        session.claims = claims
        application_id = uuid.uuid5(
            uuid.NAMESPACE_URL, f"https://{space_host}/{claims.project_id}/chat"
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

    def _identity(self, session: Session) -> str:
        return f"fabric.{session.subscriber_id}@{self._runtime.config.space_host}"

    def _ice_servers(self, claims: SatClaims) -> list[dict[str, Any]]:
        space_host = self._runtime.config.space_host
        return [
            {
                "urls": [
                    f"turn:turn.{space_host}:443?transport=tcp",
                    f"turns:turn.{space_host}:443",
                ],
                "username": f"{int(claims.exp)}:{claims.subscriber_id}",
                "credential": secrets.token_urlsafe(20),
            }
        ]

    def _on_token_expired(self, session: Session, claims: SatClaims) -> None:
        session.expiry = None
        conn = session.conn
        if conn is None or session.claims is not claims or self._runtime.closed:
            return
        self._runtime.spawn(self.disconnect(conn))

    async def disconnect(self, conn: RelaySocket) -> None:
        """Send signalwire.disconnect, wait briefly for the answer, close the socket."""
        if not conn.running.is_set():
            await conn.running.wait()
        if conn.closing:
            return
        rid = self._runtime.frame_id()
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        conn.expect(rid, answer)
        conn.send({"jsonrpc": "2.0", "id": rid, "method": "signalwire.disconnect", "params": {}})
        try:
            await asyncio.wait_for(answer, _DISCONNECT_ANSWER_WAIT)
        except asyncio.TimeoutError:
            _log.debug("relay socket %d: no answer to disconnect", conn.number)
        conn.request_close(int(WSCloseCode.OK))
