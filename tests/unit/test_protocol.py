"""Property tests (hypothesis) of the sans-IO relay protocol, with the subscriptions behind it.

Whatever the relay sends (events duplicated, reordered, split over reads in any way, malformed
in any field, pings, unknown methods, answers to nothing), ``RelayProtocol.receive`` never
raises; every event request is acknowledged exactly once (now, or with its held message); every
routed chat message reaches its subscription exactly once, in the relay's order, across
reconnects; and nothing the relay echoes puts the token in an error.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalwire_chat._realtime._actions import (
    Accepted,
    Broken,
    Deliver,
    Hold,
    Mute,
    Reauthenticated,
    Refused,
    Send,
)
from signalwire_chat._realtime._protocol import RelayProtocol
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._subscriptions import Route, Subscription
from signalwire_chat._rtstats import RealtimeStats

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm90b2NvbCJ9.c2VjcmV0LXNpZ25hdHVyZQ"
GROUPS = ("g-mine", "g-other")


class _Owner:
    def _cancel(self, sub: Subscription) -> None:
        pass


class _Dispatcher:
    """Runs callbacks at once, as the dispatcher thread would, one at a time."""

    stopping = False

    def __init__(self) -> None:
        self.stats = RealtimeStats()

    def call(self, sub: Subscription, fn: Any, arg: Any) -> None:
        fn(arg)


def _event(rpc_id: str, message_id: Any, group: Any, text: str = "t", **extra: Any) -> bytes:
    inner = {
        "id": message_id,
        "group_id": group,
        "subtype": "chat",
        "type": "message",
        "text": text,
        "ts": 1_700_000_000.5,
        "user_id": "u",
    }
    inner.update(extra)
    frame = {
        "jsonrpc": "2.0",
        "id": rpc_id,
        "method": "signalwire.event",
        "params": {
            "event_type": "conversation.message",
            "event_channel": "signalwire_proto-1_abc",
            "params": inner,
        },
    }
    return json.dumps(frame).encode()


def _accept(protocol: RelayProtocol, proto: str = "proto-1") -> bytes:
    return json.dumps(
        {
            "jsonrpc": "2.0",
            "id": protocol.connect_id,
            "result": {"protocol": proto, "authorization": {"project_id": "p"}},
        }
    ).encode()


def _setup() -> tuple[RelayProtocol, Subscription, list[Any], list[BaseException]]:
    got: list[Any] = []
    errors: list[BaseException] = []
    routes = Routes(drop_stale=True)
    sub = Subscription(_Owner(), Route.group("g-mine"), got.append, errors.append, recent_ids=4096)
    routes.groups = {"g-mine": (sub,)}
    return RelayProtocol(routes, "test/1"), sub, got, errors


def _acks(actions: list[Any]) -> list[str]:
    """The ids acknowledged by Send and Hold actions."""
    ids = []
    for action in actions:
        payloads = (
            action.payloads
            if type(action) is Send
            else [action.ack]
            if type(action) is Hold
            else []
        )
        for payload in payloads:
            frame = json.loads(payload)
            if "result" in frame and frame["result"] == {}:
                ids.append(frame["id"])
    return ids


def _run(protocol: RelayProtocol, sub: Subscription, reads: list[list[Any]], room: int) -> None:
    """Feed ``reads``; deliver what is delivered, and held items once there is room again."""
    dispatcher = _Dispatcher()
    held: list[Any] = []
    for read in reads:
        actions = protocol.receive(read, room, holding=bool(held))
        for action in actions:
            if type(action) is Deliver:
                for _subs, wire, _update in action.items:
                    sub._deliver_wire(wire, dispatcher)  # type: ignore[arg-type]
            elif type(action) is Hold:
                held.append((action.ack, action.item))
        # The dispatcher drained: held items go in order.
        for _ack, (_subs, wire, _update) in held:
            sub._deliver_wire(wire, dispatcher)  # type: ignore[arg-type]
        held.clear()


# A stream of events: message ids drawn from a small set (so duplicates are common), groups
# mine or not, with the relay's own pings and noise between them.
event_spec = st.tuples(st.integers(0, 30), st.sampled_from(GROUPS))


def _splits(items: list[bytes], cuts: list[int]) -> list[list[Any]]:
    reads: list[list[Any]] = []
    start = 0
    for cut in [*sorted({c % (len(items) + 1) for c in cuts}), len(items)]:
        reads.append(list(items[start:cut]))
        start = cut
    return reads


@SETTINGS
@given(
    specs=st.lists(event_spec, max_size=60),
    cuts=st.lists(st.integers(0, 200), max_size=10),
    room=st.integers(0, 5),
    reconnect_at=st.lists(st.integers(0, 60), max_size=3),
)
def test_every_routed_message_once_in_relay_order_whatever_the_reads(
    specs: list[tuple[int, str]], cuts: list[int], room: int, reconnect_at: list[int]
) -> None:
    protocol, sub, got, errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    _run(protocol, sub, [[_accept(protocol)]], room=10)
    # The relay redelivers after a reconnect: cut the stream into sessions; each session's
    # connect is resumed and accepted, then its events come (some seen before: duplicates).
    payloads = [_event(f"r{i}", f"m{mid}", group) for i, (mid, group) in enumerate(specs)]
    bounds = [*sorted({b % (len(payloads) + 1) for b in reconnect_at}), len(payloads)]
    start = 0
    for bound in bounds:
        _run(protocol, sub, _splits(payloads[start:bound], cuts), room)
        protocol.connect(TOKEN, reconnect=True)
        _run(protocol, sub, [[_accept(protocol)]], room=10)
        start = bound
    expected = list(dict.fromkeys(f"m{mid}" for mid, group in specs if group == "g-mine"))
    assert [m.id for m in got] == expected
    assert errors == []


@SETTINGS
@given(
    specs=st.lists(event_spec, min_size=1, max_size=40),
    room=st.integers(0, 50),
)
def test_every_event_is_acknowledged_exactly_once_now_or_with_its_held_message(
    specs: list[tuple[int, str]], room: int
) -> None:
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    protocol.receive([_accept(protocol)], 10)
    read = [_event(f"r{i}", f"m{mid}", g) for i, (mid, g) in enumerate(specs)]
    actions = protocol.receive(read, room)
    assert sorted(_acks(actions)) == sorted(f"r{i}" for i in range(len(specs)))
    delivered = [w["id"] for a in actions if type(a) is Deliver for _s, w, _u in a.items]
    held = [a.item[1]["id"] for a in actions if type(a) is Hold]
    mine = [f"m{mid}" for mid, g in specs if g == "g-mine"]
    assert delivered + held == mine  # in order: all delivered ones come before any held one
    assert len(delivered) == min(room, len(mine))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
fields = st.sampled_from(
    ["id", "group_id", "subtype", "text", "ts", "user_id", "metadata", "details", "type"]
)


@SETTINGS
@given(
    changes=st.dictionaries(fields, json_values, max_size=5),
    envelope=st.dictionaries(
        st.sampled_from(["event_type", "event_channel", "is_author", "params", "timestamp"]),
        json_values,
        max_size=3,
    ),
    rpc_id=json_values,
    noise=st.lists(st.binary(max_size=40), max_size=4),
)
def test_malformed_values_anywhere_never_raise(
    changes: dict[str, Any], envelope: dict[str, Any], rpc_id: Any, noise: list[bytes]
) -> None:
    protocol, sub, got, errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    _run(protocol, sub, [[_accept(protocol)]], room=10)
    frame = json.loads(_event("r1", "m1", "g-mine"))
    frame["id"] = rpc_id
    frame["params"]["params"].update(changes)
    frame["params"].update(envelope)
    reads: list[list[Any]] = [
        [json.dumps(frame).encode()],
        list(noise) + list(noise),  # as text and as binary messages: the same bytes
        [_event("r2", "m2", "g-mine")],
    ]
    _run(protocol, sub, reads, room=10)
    # Whatever the hostile one did, the good one after it arrives, once.
    assert [m.id for m in got].count("m2") == 1
    assert all(type(e).__name__ == "DecodeError" for e in errors)


def test_replies_keep_the_order_of_the_messages_around_a_ping() -> None:
    # The ping itself is answered one layer down (test_websocket.py: echoed, never parsed);
    # the session gets the text messages around it, and answers them in order.
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    actions = protocol.receive(
        [_accept(protocol), _event("r1", "m1", "g-mine"), _event("r2", "m2", "g-mine")], 10
    )
    assert [type(a) for a in actions] == [Accepted, Deliver, Send]
    assert [w["id"] for _s, w, _u in actions[1].items] == ["m1", "m2"]  # type: ignore[union-attr]
    assert _acks(actions) == ["r1", "r2"]
    assert not protocol.muted


def test_the_accept_comes_before_the_live_events_of_the_same_read() -> None:
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    actions = protocol.receive([_accept(protocol), _event("r1", "m1", "g-mine")], 10)
    assert [type(a) for a in actions] == [Accepted, Deliver, Send]
    assert protocol.connected
    assert protocol.protocol == "proto-1"


def test_a_refusal_that_echoes_the_token_is_redacted_and_ends_the_read() -> None:
    protocol, _sub, _got, _errors = _setup()
    connect = json.loads(protocol.connect(TOKEN, reconnect=False))
    assert connect["params"]["authentication"]["jwt_token"] == TOKEN
    refusal = {
        "jsonrpc": "2.0",
        "id": protocol.connect_id,
        "error": {"code": -32002, "message": f"token {TOKEN} expired"},
    }
    actions = protocol.receive([json.dumps(refusal).encode(), _event("r1", "m1", "g-mine")], 10)
    assert [type(a) for a in actions] == [Refused]
    error = actions[0].error  # type: ignore[union-attr]
    assert TOKEN not in str(error)
    assert error.rpc_code == -32002
    other = {"jsonrpc": "2.0", "id": protocol.connect_id, "error": {"code": -1, "message": "busy"}}
    protocol.connect(TOKEN, reconnect=True)
    other["id"] = protocol.connect_id
    assert type(protocol.receive([json.dumps(other).encode()], 10)[0]) is Broken


def test_resume_sends_back_the_protocol_and_authorization_state() -> None:
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    state_event = {
        "jsonrpc": "2.0",
        "id": "s1",
        "method": "signalwire.event",
        "params": {
            "event_type": "signalwire.authorization.state",
            "params": {"authorization_state": "opaque-state"},
        },
    }
    protocol.receive([_accept(protocol), json.dumps(state_event).encode()], 10)
    again = json.loads(protocol.connect(TOKEN, reconnect=True))
    assert again["params"]["protocol"] == "proto-1"
    assert again["params"]["authorization_state"] == "opaque-state"
    assert not protocol.connected  # a new socket: not accepted yet


def test_disconnect_mutes() -> None:
    # The close half of this test (a close is answered with its code) is in test_websocket.py.
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    disconnect = b'{"jsonrpc":"2.0","id":"bye","method":"signalwire.disconnect"}'
    actions = protocol.receive([_accept(protocol), disconnect, _event("r", "m", "g")], 10)
    assert [type(a) for a in actions] == [Accepted, Send, Mute]
    assert protocol.receive([_event("r2", "m2", "g-mine")], 10) == []
    assert protocol.reauthenticate(TOKEN) is None  # nothing is said after a disconnect


def test_a_stale_event_is_acknowledged_and_dropped() -> None:
    protocol, _sub, _got, _errors = _setup()
    protocol.connect(TOKEN, reconnect=False)
    protocol.receive([_accept(protocol, "proto-2")], 10)
    actions = protocol.receive([_event("r1", "m1", "g-mine")], 10)  # channel: proto-1
    assert [type(a) for a in actions] == [Send]
    assert _acks(actions) == ["r1"]


def test_reauthenticate_carries_the_project_and_is_recognised() -> None:
    protocol, _sub, _got, _errors = _setup()
    assert protocol.reauthenticate(TOKEN) is None  # not connected
    protocol.connect(TOKEN, reconnect=False)
    protocol.receive([_accept(protocol)], 10)
    request = json.loads(protocol.reauthenticate("new-token") or b"{}")
    assert request["method"] == "signalwire.reauthenticate"
    assert request["params"]["authentication"] == {"project": "p", "jwt_token": "new-token"}
    answer = {"jsonrpc": "2.0", "id": request["id"], "result": {"authorization": {"x": 1}}}
    actions = protocol.receive([json.dumps(answer).encode()], 10)
    assert [type(a) for a in actions] == [Reauthenticated]
    assert protocol.authorization == {"x": 1}
