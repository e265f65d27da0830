"""The websocket layer answers control frames itself; the relay session sees text only.

Server frames are built by hand (``_wire``: unmasked, as a server sends them); the client's
answers are read back by unmasking them, so each test checks the bytes that go on the wire.
"""

from __future__ import annotations

import json
import struct

from _wire import client_frames, server

from signalwire_chat._realtime._actions import Accepted, Deliver, Send
from signalwire_chat._realtime._frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
)
from signalwire_chat._realtime._protocol import RelayProtocol
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._websocket import WebSocketConnection, WebSocketState

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3ZWJzb2NrZXQifQ.c2VjcmV0LXNpZ25hdHVyZQ"


def _event(rpc_id: str, message_id: str) -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": rpc_id,
            "method": "signalwire.event",
            "params": {
                "event_type": "conversation.message",
                "params": {"id": message_id, "group_id": "g", "subtype": "chat"},
            },
        },
        separators=(",", ":"),
    ).encode()


def test_a_ping_is_echoed_never_parsed_and_the_text_around_it_reaches_the_session() -> None:
    routes = Routes()
    routes.groups = {"g": ("sub",)}  # type: ignore[dict-item]
    protocol = RelayProtocol(routes, "test/1")
    protocol.connect(TOKEN, reconnect=False)
    accept = json.dumps({"jsonrpc": "2.0", "id": protocol.connect_id, "result": {}}).encode()
    disconnect = b'{"jsonrpc":"2.0","id":"x","method":"signalwire.disconnect"}'
    link = WebSocketConnection()
    data = b"".join(
        [
            server(accept),
            server(_event("r1", "m1")),
            server(disconnect, OP_PING),
            server(_event("r2", "m2")),
        ]
    )
    messages = link.receive(data)
    assert messages == [accept.decode(), _event("r1", "m1").decode(), _event("r2", "m2").decode()]
    assert client_frames(link.data_to_send()) == [(OP_PONG, disconnect)]
    assert link.data_to_send() == b""  # answered once
    actions = protocol.receive(messages, 10)
    assert [type(a) for a in actions] == [Accepted, Deliver, Send]
    assert not protocol.muted  # the ping's payload was never read as a message
    assert link.state is WebSocketState.OPEN


def test_a_close_is_answered_with_its_code_and_nothing_after_it_is_read() -> None:
    link = WebSocketConnection()
    close = server(struct.pack("!H", 1001) + b"going away", OP_CLOSE)
    assert link.receive(server(b'{"a":1}') + close + server(b'{"late":1}')) == ['{"a":1}']
    assert link.state is WebSocketState.CLOSED
    assert link.close_code == 1001
    assert client_frames(link.data_to_send()) == [(OP_CLOSE, struct.pack("!H", 1001))]
    assert link.receive(server(b'{"later":1}')) == []


def test_a_close_without_a_code_is_answered_with_1000_and_pongs_are_ignored() -> None:
    link = WebSocketConnection()
    data = server(b"x", OP_PONG) + server(b"", OP_CLOSE) + server(_event("late", "m"))
    assert link.receive(data) == []  # nothing after the close is looked at
    assert client_frames(link.data_to_send()) == [(OP_CLOSE, struct.pack("!H", 1000))]
    assert link.close_code == 1000


def test_binary_messages_pass_as_bytes_and_text_as_str() -> None:
    link = WebSocketConnection()
    assert link.receive(server(b'{"b":1}', OP_BINARY) + server(b'{"t":1}')) == [
        b'{"b":1}',
        '{"t":1}',
    ]
    assert link.data_to_send() == b""


def test_a_violation_keeps_what_came_before_it_and_says_how_to_close() -> None:
    link = WebSocketConnection(max_message_size=10)
    data = server(b'{"ok":1}') + server(b'{"too":"big"}')
    assert link.receive(data) == ['{"ok":1}']
    assert link.state is WebSocketState.FAILED
    assert link.violation is not None
    assert link.violation.close_code == 1009
    assert client_frames(link.close(link.violation.close_code)) == [
        (OP_CLOSE, struct.pack("!H", 1009))
    ]
    assert link.receive(server(b"{}")) == []


def test_the_session_frames_are_masked_text() -> None:
    link = WebSocketConnection()
    assert client_frames(link.send([b'{"a":1}', b'{"b":2}'])) == [
        (OP_TEXT, b'{"a":1}'),
        (OP_TEXT, b'{"b":2}'),
    ]
