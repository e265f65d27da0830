"""The relay's JSON-RPC conversation, without I/O: fed messages, it says what to do.

:class:`RelayProtocol` owns what the relay conversation needs remembered (the request ids, the
session's ``protocol`` and ``authorization_state`` for resuming, the authorization, and its
:class:`SessionState`) and decides, for each batch of websocket messages, what follows: replies
to send (acks, ping results, "method not found"), chat messages to deliver or to hold back
(flow control), and what the session became (accepted, refused, broken, told to disconnect).
Its answers are typed, frozen actions (``_actions``). It sees text messages only: websocket
control frames (ping, pong, close) are answered one layer down (``_websocket``). Which
subscriptions want a chat message is the hub's routing table's answer (``_routes``), asked by
key. It opens no socket, starts no thread and reads no clock: the connection thread
(``_connection.py``) feeds it and carries its actions out, in order, and the property tests
drive it directly.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from .._redact import server_text
from ..errors import RealtimeAuthenticationError
from . import _jsonrpc
from ._actions import ACCEPTED, MUTE, REAUTHENTICATED, Action, Broken, Deliver, Hold, Refused, Send
from ._jsonrpc import BadMessage
from ._ratelog import RateLimitedLog

if TYPE_CHECKING:
    from ._dispatcher import Item

__all__ = ["RelayProtocol", "SessionState", "is_auth_error"]

logger = logging.getLogger(__name__)

_AUTH_WORDS = ("auth", "token", "requester", "expired", "credential", "jwt")

#: The events carrying a message: a new one, and an edit of an earlier one.
_MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
#: A read holding more events than this is handed over and acknowledged in parts, so the
#: relay refills its window of unacknowledged events (100 on the emulator) while the rest
#: is decoded: acknowledged only at the end of a whole window, the relay sat idle for each
#: window's decode (stream bench: 15,000 -> 20,000 events/s, no more CPU per event).
_ACK_EVERY = 32


def is_auth_error(error: Any) -> bool:
    """Whether a JSON-RPC error object means the credentials were refused."""
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    if code in (-32002, -32001):
        return True
    message = error.get("message")
    return isinstance(message, str) and any(w in message.lower() for w in _AUTH_WORDS)


if TYPE_CHECKING:  # a type for the checker only: no class to build at import

    class RouteTable(Protocol):
        """What the session asks of the hub's routing table (``_routes.Routes``)."""

        #: Drop events whose ``event_channel`` names another session (the group dialect's rule).
        drop_stale: bool

        def lookup(self, message: dict[str, Any]) -> tuple[Any, ...]:
            """The subscriptions a live chat message goes to (empty: none wants it)."""


class SessionState(enum.Enum):
    """Where one socket's relay session is (h11's ``_state`` idea: one value, not flags)."""

    #: No ``signalwire.connect`` sent on this socket yet.
    IDLE = "idle"
    #: ``signalwire.connect`` sent, not answered yet.
    CONNECTING = "connecting"
    #: The relay accepted the connect: events flow.
    CONNECTED = "connected"
    #: The relay asked us to go (``signalwire.disconnect``): nothing more is said or delivered.
    MUTED = "muted"
    #: The connect was refused or failed: this socket is done.
    FAILED = "failed"


class RelayProtocol:
    """One client's conversation with the relay, across the sockets it reconnects with.

    Args:
        routes: The hub's routing table (read at each chat message; its entries are
            replaced by the hub as subscriptions come and go).
        agent: The ``agent`` string sent with ``signalwire.connect``.
    """

    def __init__(self, routes: RouteTable, agent: str) -> None:
        self.routes = routes
        self.agent = agent
        #: Kept across sockets: what a resuming connect sends back.
        self.protocol: str | None = None
        self.authorization_state: str | None = None
        #: The relay's last word on the credentials (``fabric_subscriber.expires_at``, ...).
        self.authorization: dict[str, Any] | None = None
        # Per socket.
        self.state = SessionState.IDLE
        self.connect_id: str | None = None
        self.reconnect = False
        self.reauth_id: str | None = None
        self._secrets: Sequence[str] = ()
        # A flood of unreadable messages logs a few WARNINGs a minute, then a count.
        self._skipped_log = RateLimitedLog(logger)

    @property
    def connected(self) -> bool:
        """Whether the relay accepted this socket's connect (also once it asked us to go)."""
        return self.state is SessionState.CONNECTED or self.state is SessionState.MUTED

    @property
    def muted(self) -> bool:
        """Whether the relay asked us to go: nothing more is answered or delivered."""
        return self.state is SessionState.MUTED

    # --- what the client says ------------------------------------------------------------

    def connect(self, token: str, *, reconnect: bool, secrets: Sequence[str] = ()) -> bytes:
        """Start a socket's session: the ``signalwire.connect`` request to send first.

        ``reconnect`` resumes the last session (its ``protocol`` and authorization
        state). ``secrets`` are redacted from anything the relay's errors echo.
        """
        self.connect_id = _jsonrpc.new_rpc_id()
        self.reconnect = reconnect
        self.state = SessionState.CONNECTING
        self.reauth_id = None
        self._secrets = tuple(s for s in (*secrets, token) if s)
        params: dict[str, Any] = {"token": token, "agent": self.agent}
        if reconnect:
            params["protocol"] = self.protocol
            params["authorization_state"] = self.authorization_state
        return _jsonrpc.connect_request(self.connect_id, **params)

    def reauthenticate(self, token: str) -> bytes | None:
        """The ``signalwire.reauthenticate`` request carrying ``token`` (None if not now)."""
        if self.state is not SessionState.CONNECTED:
            return None
        self.reauth_id = _jsonrpc.new_rpc_id()
        project = (self.authorization or {}).get("project_id")
        return _jsonrpc.reauthenticate_request(self.reauth_id, project=project, token=token)

    @staticmethod
    def probe(timestamp: float) -> bytes:
        """A ``signalwire.ping`` of our own, asking a silent relay whether it is there."""
        return _jsonrpc.request(_jsonrpc.new_rpc_id(), "signalwire.ping", {"timestamp": timestamp})

    # --- what the relay says -------------------------------------------------------------

    def receive(
        self, messages: Sequence[str | bytes], room: int, holding: bool = False
    ) -> list[Action]:
        """What to do with a read's complete text messages, in order.

        ``room``: how many chat messages the dispatcher can take now; beyond it (or while
        ``holding``: earlier ones wait already) they are held back, their acks with them,
        so the relay's window stops it. A refused or broken connect ends the list: what
        came after it in the read is not looked at; so does a disconnect.
        """
        actions: list[Action] = []
        state = self.state
        if state is SessionState.MUTED or state is SessionState.FAILED:
            return actions
        batch: list[Item] = []
        replies: list[bytes] = []
        ack = _jsonrpc.ack
        decode = _jsonrpc.decode_message
        for payload in messages:
            # Each message on its own: a bad one is skipped, the rest of the read goes on.
            try:
                msg = decode(payload)
            except BadMessage as bad:
                self._skipped(bad, len(payload), replies)
                continue
            method = msg.get("method")
            if method == "signalwire.event":
                item = self._event(msg.get("params"))
                reply = ack(msg.get("id"))
                if item is not None:
                    if holding or room <= 0:
                        holding = True
                        actions.append(Hold(reply, item))
                        continue
                    batch.append(item)
                    room -= 1
                replies.append(reply)
                if len(replies) >= _ACK_EVERY:
                    # The relay refills its window while the rest is decoded.
                    batch, replies = _flush(actions, batch, replies)
                continue
            action = self._other(method, msg, replies)
            if action is None:
                continue
            if type(action) is Refused or type(action) is Broken:
                actions.append(action)  # nothing after it is looked at, nor answered
                return actions
            # Before the messages that follow it in this read: the catch-up reads queued on
            # an accept must come before their live events.
            batch, replies = _flush(actions, batch, replies)
            actions.append(action)
            if action is MUTE:
                return actions
        _flush(actions, batch, replies)
        return actions

    def _skipped(self, bad: BadMessage, length: int, replies: list[bytes]) -> None:
        self._skipped_log.log(
            "realtime: skipped a message from the relay (length %d): %s", length, bad.reason
        )
        if bad.method == "signalwire.event" and bad.rpc_id is not None:
            # Unacknowledged, the relay would send it again on every resume.
            replies.append(_jsonrpc.ack(bad.rpc_id))

    def _other(self, method: Any, msg: dict[str, Any], replies: list[bytes]) -> Action | None:
        """A message that is not an event: answer it in ``replies``; say what it changed."""
        if method == "signalwire.ping":
            params = msg.get("params")
            stamp = params.get("timestamp") if type(params) is dict else None
            replies.append(_jsonrpc.ping_result(msg.get("id"), stamp))
        elif method is None:
            return self._response(msg)
        elif method == "signalwire.disconnect":
            replies.append(_jsonrpc.ack(msg.get("id")))
            logger.info("realtime: the relay asked to disconnect; reconnecting")
            self.state = SessionState.MUTED
            return MUTE
        elif "id" in msg:
            replies.append(_jsonrpc.method_not_found(msg["id"]))
        return None

    def _event(self, params: Any) -> Item | None:
        """The chat message an event brings to a subscription, if any (it is acked either way)."""
        if type(params) is not dict:
            return None
        event_type = params.get("event_type")
        if type(event_type) is not str:
            return None  # a list would not even hash: no event of ours
        routes = self.routes
        if routes.drop_stale:
            # Stale: for an older session, its channel not naming ours (tested in line: the
            # hot path of every event).
            channel = params.get("event_channel")
            protocol = self.protocol
            if type(channel) is str and channel and protocol and protocol not in channel:
                logger.debug("realtime: stale event dropped (%s, another session's)", event_type)
                return None
        inner = params.get("params")
        if type(inner) is not dict:
            return None
        if event_type in _MESSAGE_EVENTS:
            if inner.get("subtype") != "chat":
                return None
            subs = routes.lookup(inner)
            if not subs:
                return None
            author = params.get("is_author")
            if type(author) is bool:
                inner["is_author"] = author  # the envelope says it
            return (subs, inner, event_type != "conversation.message")
        if event_type == "signalwire.authorization.state":
            value = inner.get("authorization_state")
            if isinstance(value, str):
                self.authorization_state = value
        return None

    def _response(self, msg: dict[str, Any]) -> Action | None:
        rpc_id = msg.get("id")
        if rpc_id == self.connect_id and self.state is SessionState.CONNECTING:
            return self._connect_answer(msg)
        if rpc_id is not None and rpc_id == self.reauth_id:
            self.reauth_id = None
            return self._reauthenticate_answer(msg)
        return None

    def _connect_answer(self, msg: dict[str, Any]) -> Action:
        error = msg.get("error")
        if error is not None:
            self.state = SessionState.FAILED
            return self._connect_error(error)
        result = msg.get("result")
        if not isinstance(result, dict):
            self.state = SessionState.FAILED
            return Broken("signalwire.connect answered without a result")
        protocol = result.get("protocol")
        if isinstance(protocol, str):
            if self.reconnect and protocol == self.protocol:
                logger.info("realtime: session resumed")
            self.protocol = protocol
        authorization = result.get("authorization")
        self.authorization = authorization if isinstance(authorization, dict) else None
        self.state = SessionState.CONNECTED
        logger.info("realtime: connected to the relay")
        return ACCEPTED

    def _connect_error(self, error: Any) -> Action:
        # The relay's words are untrusted: redacted (it may echo the token), cleaned of
        # control characters and cut short before they reach an error or a log.
        raw = error.get("message") if isinstance(error, dict) else None
        message = server_text(raw, list(self._secrets))
        code = error.get("code") if isinstance(error, dict) else None
        if type(code) is not int:
            code = None
        if is_auth_error(error):
            return Refused(
                RealtimeAuthenticationError(message or "signalwire.connect refused", rpc_code=code)
            )
        return Broken(f"signalwire.connect failed: {message!r} (code {code!r})")

    def _reauthenticate_answer(self, msg: dict[str, Any]) -> Action | None:
        result = msg.get("result")
        if isinstance(result, dict):
            authorization = result.get("authorization", result)
            if isinstance(authorization, dict):
                self.authorization = authorization
            logger.info("realtime: token refreshed on the open connection")
            return REAUTHENTICATED
        logger.warning(
            "realtime: signalwire.reauthenticate refused; the relay will disconnect "
            "at expiry and the reconnect will use the new token"
        )
        return None


def _flush(
    actions: list[Action], batch: list[Item], replies: list[bytes]
) -> tuple[list[Item], list[bytes]]:
    """Append what ``batch`` and ``replies`` hold as actions; return them, emptied."""
    if batch:
        actions.append(Deliver(batch))
        batch = []
    if replies:
        actions.append(Send(replies))
        replies = []
    return batch, replies
