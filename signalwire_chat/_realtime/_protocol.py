"""The relay's JSON-RPC conversation, without I/O: fed messages, it says what to do.

:class:`RelayProtocol` owns what the relay conversation needs remembered (the request ids, the
session's ``protocol`` and ``authorization_state`` for resuming, the authorization, whether
the connect was accepted, whether the relay asked us to go) and decides, for each batch of
websocket messages, what follows: replies to send (acks, ping results, "method not found"),
chat messages to deliver or to hold back (flow control), control frames (pong, close), and
what the session became (accepted, refused, broken, told to disconnect). It opens no socket,
starts no thread and reads no clock: the connection thread (``_connection.py``) feeds it and
carries its actions out, in order, and the property tests drive it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from .._redact import server_text
from ..errors import RealtimeAuthenticationError
from . import _frames, _jsonrpc
from ._frames import OP_BINARY, OP_CLOSE, OP_PING, OP_TEXT
from ._jsonrpc import BadMessage
from ._ratelog import RateLimitedLog

if TYPE_CHECKING:
    from ._dispatcher import Item
    from ._subscriptions import Subscription

__all__ = ["Action", "RelayProtocol", "Routes", "is_auth_error"]

logger = logging.getLogger(__name__)

_AUTH_WORDS = ("auth", "token", "requester", "expired", "credential", "jwt")

#: The events carrying a message: a new one, and an edit of an earlier one.
_MESSAGE_EVENTS = frozenset({"conversation.message", "conversation.message.updated"})
#: A read holding more events than this is handed over and acknowledged in parts, so the
#: relay refills its window of unacknowledged events (100 on the emulator) while the rest
#: is decoded: acknowledged only at the end of a whole window, the relay sat idle for each
#: window's decode (stream bench: 15,000 -> 20,000 events/s, no more CPU per event).
_ACK_EVERY = 32

# What the protocol asks of the I/O side, in order (``Action`` is ``(kind, value)``):
SEND = "send"  # value: list[bytes], text payloads (replies), framed and sent at once
PONG = "pong"  # value: bytes, a ping's payload to echo in a pong frame
CLOSE = "close"  # value: int, answer the relay's close with this code; the socket ends
DELIVER = "deliver"  # value: list[Item], hand to the dispatcher
HOLD = "hold"  # value: (bytes, Item), the ack to send once the item is handed over
ACCEPTED = "accepted"  # value: None; the connect was accepted (queue the catch-up reads now)
REAUTHENTICATED = "reauthenticated"  # value: None; the new token is in force
MUTE = "mute"  # value: None; the relay asked us to go: answer nothing more, then close
REFUSED = "refused"  # value: RealtimeAuthenticationError; the credentials were refused
BROKEN = "broken"  # value: str; the connect failed otherwise: reconnect

Action = tuple[str, Any]


def is_auth_error(error: Any) -> bool:
    """Whether a JSON-RPC error object means the credentials were refused."""
    if not isinstance(error, dict):
        return False
    code = error.get("code")
    if code in (-32002, -32001):
        return True
    message = error.get("message")
    return isinstance(message, str) and any(w in message.lower() for w in _AUTH_WORDS)


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


class RelayProtocol:
    """One client's conversation with the relay, across the sockets it reconnects with.

    Args:
        routes: Where chat messages go (read at each message; replaced by the hub).
        agent: The ``agent`` string sent with ``signalwire.connect``.
    """

    def __init__(self, routes: Routes, agent: str) -> None:
        self.routes = routes
        self.agent = agent
        #: Kept across sockets: what a resuming connect sends back.
        self.protocol: str | None = None
        self.authorization_state: str | None = None
        #: The relay's last word on the credentials (``fabric_subscriber.expires_at``, ...).
        self.authorization: dict[str, Any] | None = None
        # Per socket.
        self.connect_id: str | None = None
        self.reconnect = False
        self.connected = False
        self.muted = False
        self.reauth_id: str | None = None
        self._secrets: Sequence[str] = ()
        # A flood of unreadable messages logs a few WARNINGs a minute, then a count.
        self._skipped_log = RateLimitedLog(logger)

    # --- what the client says ------------------------------------------------------------

    def connect(self, token: str, *, reconnect: bool, secrets: Sequence[str] = ()) -> bytes:
        """Start a socket's session: the ``signalwire.connect`` request to send first.

        ``reconnect`` resumes the last session (its ``protocol`` and authorization
        state). ``secrets`` are redacted from anything the relay's errors echo.
        """
        self.connect_id = _jsonrpc.new_rpc_id()
        self.reconnect = reconnect
        self.connected = False
        self.muted = False
        self.reauth_id = None
        self._secrets = tuple(s for s in (*secrets, token) if s)
        params: dict[str, Any] = {"token": token, "agent": self.agent}
        if reconnect:
            params["protocol"] = self.protocol
            params["authorization_state"] = self.authorization_state
        return _jsonrpc.connect_request(self.connect_id, **params)

    def reauthenticate(self, token: str) -> bytes | None:
        """The ``signalwire.reauthenticate`` request carrying ``token`` (None if not now)."""
        if not self.connected or self.muted:
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
        self, messages: Sequence[_frames.Message], room: int, holding: bool = False
    ) -> list[Action]:
        """What to do with a read's complete messages, in order.

        ``room``: how many chat messages the dispatcher can take now; beyond it (or while
        ``holding``: earlier ones wait already) they are held back, their acks with them,
        so the relay's window stops it. A refused or broken connect ends the list: what
        came after it in the read is not looked at.
        """
        actions: list[Action] = []
        batch: list[Item] = []
        replies: list[bytes] = []
        ack = _jsonrpc.ack
        decode = _jsonrpc.decode_message
        if self.muted:
            return actions

        def flush() -> None:
            nonlocal batch, replies
            if batch:
                actions.append((DELIVER, batch))
                batch = []
            if replies:
                actions.append((SEND, replies))
                replies = []

        for opcode, payload in messages:
            if opcode != OP_TEXT:
                if opcode == OP_PING:
                    # A ping's payload is opaque (RFC 6455 5.5.2): echoed, never parsed.
                    flush()
                    actions.append((PONG, cast(bytes, payload)))
                    continue
                if opcode == OP_CLOSE:
                    flush()
                    # The reader checked the code; a close without one is answered with 1000.
                    code = _frames.close_code(cast(bytes, payload))
                    logger.info("realtime: the relay closed the websocket (code %s)", code)
                    actions.append((CLOSE, code or 1000))
                    return actions
                if opcode != OP_BINARY:
                    continue  # pong
            # Each message on its own: a bad one is skipped, the rest of the read goes on.
            try:
                msg = decode(payload)
            except BadMessage as bad:
                self._skipped_log.log(
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
                item = self._event(msg.get("params"))
                reply = ack(msg.get("id"))
                if item is not None:
                    if holding or room <= 0:
                        holding = True
                        actions.append((HOLD, (reply, item)))
                        continue
                    batch.append(item)
                    room -= 1
                replies.append(reply)
                if len(replies) >= _ACK_EVERY:
                    flush()  # the relay refills its window while the rest is decoded
            elif method == "signalwire.ping":
                params = msg.get("params")
                stamp = params.get("timestamp") if type(params) is dict else None
                replies.append(_jsonrpc.ping_result(msg.get("id"), stamp))
            elif method is None:
                outcome = self._response(msg)
                if outcome is not None:
                    if outcome[0] in (REFUSED, BROKEN):
                        actions.append(outcome)
                        return actions
                    if outcome[0] == ACCEPTED:
                        # Before the messages that follow the answer in this read: the
                        # catch-up reads queued on it must come before their live events.
                        flush()
                    actions.append(outcome)
            elif method == "signalwire.disconnect":
                replies.append(ack(msg.get("id")))
                logger.info("realtime: the relay asked to disconnect; reconnecting")
                self.muted = True
                flush()
                actions.append((MUTE, None))
                return actions
            elif "id" in msg:
                replies.append(_jsonrpc.method_not_found(msg["id"]))
        flush()
        return actions

    def _event(self, params: Any) -> Item | None:
        """The chat message an event brings to a subscription, if any (it is acked either way)."""
        if type(params) is not dict:
            return None
        event_type = params.get("event_type")
        if type(event_type) is not str:
            return None  # a list would not even hash: no event of ours
        if self.routes.drop_stale and self._stale(params, event_type):
            return None
        inner = params.get("params")
        if type(inner) is not dict:
            return None
        if event_type in _MESSAGE_EVENTS:
            if inner.get("subtype") != "chat":
                return None
            subs = self.routes.lookup(inner)
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

    def _stale(self, params: dict[str, Any], event_type: object) -> bool:
        """Whether an event is for an older session: its channel does not name ours."""
        channel = params.get("event_channel")
        protocol = self.protocol
        if type(channel) is not str or not channel or not protocol or protocol in channel:
            return False
        logger.debug("realtime: stale event dropped (%s, channel of another session)", event_type)
        return True

    def _response(self, msg: dict[str, Any]) -> Action | None:
        rpc_id = msg.get("id")
        if rpc_id == self.connect_id and not self.connected:
            error = msg.get("error")
            if error is not None:
                # The relay's words are untrusted: redacted (it may echo the token), cleaned
                # of control characters and cut short before they reach an error or a log.
                raw = error.get("message") if isinstance(error, dict) else None
                message = server_text(raw, list(self._secrets))
                code = error.get("code") if isinstance(error, dict) else None
                if type(code) is not int:
                    code = None
                if is_auth_error(error):
                    return (
                        REFUSED,
                        RealtimeAuthenticationError(
                            message or "signalwire.connect refused", rpc_code=code
                        ),
                    )
                return (BROKEN, f"signalwire.connect failed: {message!r} (code {code!r})")
            result = msg.get("result")
            if not isinstance(result, dict):
                return (BROKEN, "signalwire.connect answered without a result")
            protocol = result.get("protocol")
            if isinstance(protocol, str):
                if self.reconnect and protocol == self.protocol:
                    logger.info("realtime: session resumed")
                self.protocol = protocol
            authorization = result.get("authorization")
            self.authorization = authorization if isinstance(authorization, dict) else None
            self.connected = True
            logger.info("realtime: connected to the relay")
            return (ACCEPTED, None)
        if rpc_id is not None and rpc_id == self.reauth_id:
            self.reauth_id = None
            result = msg.get("result")
            if isinstance(result, dict):
                authorization = result.get("authorization", result)
                if isinstance(authorization, dict):
                    self.authorization = authorization
                logger.info("realtime: token refreshed on the open connection")
                return (REAUTHENTICATED, None)
            logger.warning(
                "realtime: signalwire.reauthenticate refused; the relay will disconnect "
                "at expiry and the reconnect will use the new token"
            )
        return None
