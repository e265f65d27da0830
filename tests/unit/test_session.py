"""The relay session of one socket, sans-IO: bytes and plain-number times in, actions out.

No socket, no thread, no sleep: each test feeds server frames with a time and a room, and
checks the actions, the hold queue and the deadlines.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from _wire import client_frames, server

from signalwire_chat._realtime import RealtimeOptions
from signalwire_chat._realtime._actions import (
    Accepted,
    Deliver,
    Ended,
    Mute,
    Send,
    Write,
)
from signalwire_chat._realtime._frames import OP_CLOSE, OP_PING, OP_PONG
from signalwire_chat._realtime._protocol import RelayProtocol
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._session import RelaySession
from signalwire_chat._realtime._timers import Due

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZXNzaW9uIn0.c2VjcmV0LXNpZ25hdHVyZQ"


def _session(now: float = 100.0, **options: Any) -> RelaySession:
    routes = Routes()
    routes.groups = {"g": ("sub",)}  # type: ignore[dict-item]
    relay = RelayProtocol(routes, "test/1")
    opts = RealtimeOptions(
        connect_timeout=10.0, ping_timeout=20.0, close_timeout=5.0, queue_size=4, **options
    )
    return RelaySession(relay, now=now, options=opts)


def _connected(session: RelaySession, now: float = 101.0) -> list[Any]:
    session.connect(TOKEN, reconnect=False)
    answer = {"jsonrpc": "2.0", "id": session.relay.connect_id, "result": {"protocol": "p"}}
    return session.receive(server(json.dumps(answer).encode()), now, room=10)


def _event(i: int) -> bytes:
    return server(
        json.dumps(
            {
                "jsonrpc": "2.0",
                "id": f"r{i}",
                "method": "signalwire.event",
                "params": {
                    "event_type": "conversation.message",
                    "params": {"id": f"m{i}", "group_id": "g", "subtype": "chat"},
                },
            }
        ).encode()
    )


def test_the_connect_is_a_masked_text_frame_and_its_answer_starts_the_session_clock() -> None:
    session = _session()
    [(_op, payload)] = client_frames(session.connect(TOKEN, reconnect=False))
    assert json.loads(payload)["method"] == "signalwire.connect"
    assert session.next_deadline() == 110.0  # the connect deadline
    assert session.handle_timer(109.0) == []
    assert _connected(session, now=103.0) == [Accepted()]
    assert session.connected_at == 103.0
    assert session.next_deadline() == 113.0  # now the probe, half the ping timeout after 103


def test_an_unanswered_connect_is_due_at_its_deadline() -> None:
    session = _session()
    session.connect(TOKEN, reconnect=False)
    assert session.handle_timer(110.0) == [Due.CONNECT_TIMEOUT]


def test_messages_beyond_the_room_are_held_with_their_acks_and_released_in_order() -> None:
    session = _session()
    _connected(session)
    actions = session.receive(b"".join(_event(i) for i in range(5)), 102.0, room=2)
    assert [type(a) for a in actions] == [Deliver, Send]
    assert [w["id"] for _s, w, _u in actions[0].items] == ["m0", "m1"]  # type: ignore[union-attr]
    assert [json.loads(p)["id"] for p in actions[1].payloads] == ["r0", "r1"]  # type: ignore[union-attr]
    assert [item[1]["id"] for _ack, item in session.held] == ["m2", "m3", "m4"]
    assert session.events == 5  # delivered and held: the session brought them all
    items, acks = session.release(2, 103.0)
    assert [w["id"] for _s, w, _u in items] == ["m2", "m3"]
    assert [json.loads(a)["id"] for a in acks] == ["r2", "r3"]
    assert [item[1]["id"] for _ack, item in session.held] == ["m4"]


def test_a_relay_ignoring_its_window_stops_the_reads_until_there_is_room() -> None:
    session = _session()
    _connected(session)
    assert session.hold_limit == 1000  # max(queue_size, 1000)
    session.receive(b"".join(_event(i) for i in range(999)), 102.0, room=0)
    assert session.reading  # 999 held: below the limit
    session.receive(_event(999), 102.0, room=0)
    assert not session.reading
    # Not reading by choice is not silence: no probe and no ping timeout meanwhile.
    assert session.handle_timer(200.0) == []
    session.release(1, 201.0)
    assert session.reading
    assert session.next_deadline() == 211.0  # the silence counts from the release


def test_a_ping_is_answered_after_the_replies_of_its_read() -> None:
    session = _session()
    _connected(session)
    actions = session.receive(_event(1) + server(b"hi", OP_PING), 102.0, room=10)
    assert [type(a) for a in actions] == [Deliver, Send, Write]
    assert client_frames(actions[2].data) == [(OP_PONG, b"hi")]  # type: ignore[union-attr]


def test_the_relays_close_is_answered_and_ends_the_session() -> None:
    session = _session()
    _connected(session)
    actions = session.receive(server(struct.pack("!H", 1001), OP_CLOSE), 102.0, room=10)
    assert [type(a) for a in actions] == [Write, Ended]
    assert client_frames(actions[0].data) == [(OP_CLOSE, struct.pack("!H", 1001))]  # type: ignore[union-attr]
    assert actions[1] == Ended("socket closed by the relay")


def test_a_violation_ends_the_session_with_its_close_code_after_the_valid_messages() -> None:
    session = _session()
    _connected(session)
    masked = bytes((0x81, 0x80 | 2)) + b"\0\0\0\0" + b"{}"  # a server may not mask
    actions = session.receive(_event(1) + masked, 102.0, room=10)
    assert [type(a) for a in actions] == [Deliver, Send, Ended]
    assert actions[2] == Ended("protocol violation: masked frame from the server", 1002)


def test_after_a_disconnect_nothing_is_answered_and_the_close_wait_is_short() -> None:
    session = _session()
    _connected(session)
    bye = server(b'{"jsonrpc":"2.0","id":"bye","method":"signalwire.disconnect"}')
    actions = session.receive(bye + server(b"ping", OP_PING), 102.0, room=10)
    assert [type(a) for a in actions] == [Send, Mute]  # the ack, and no pong
    assert session.receive(_event(2) + server(b"x", OP_PING), 102.5, room=10) == []
    assert session.next_deadline() == 103.0  # one second at most
    assert session.handle_timer(102.9) == []
    assert session.handle_timer(103.0) == [Due.MUTE_OVER]


def test_a_message_brought_again_by_a_later_session_is_no_proof_of_health() -> None:
    # A relay that resends the same old message on every session, then drops it, made the
    # client reconnect at once every time (the subscription drops the duplicate, so
    # nothing was delivered): ~25 connects a second, each with a catch-up read, no on_error.
    from signalwire_chat._realtime._session import RecentProofs

    proofs = RecentProofs()

    def one_session(*events: int) -> int:
        session = _session()
        session._proofs = proofs
        _connected(session)
        for i in events:
            session.receive(_event(i), 102.0, room=10)
        return session.events

    assert one_session(1) == 1  # a first message: the session was healthy
    assert one_session(1) == 0  # the same message again: not
    assert one_session(1) == 0
    assert one_session(1, 2, 3) == 2  # counted from the first new one
    assert one_session() == 0
    # Held messages (no room) count the same way.
    session = _session()
    session._proofs = proofs
    _connected(session)
    session.receive(_event(2), 102.0, room=0)  # the proof of the session before
    assert session.held
    assert session.events == 0
    session.receive(_event(4), 102.0, room=0)
    assert session.events == 1
