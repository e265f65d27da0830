"""The relay protocol's less travelled paths, one by one: what a hostile or odd relay sends.

Each test feeds ``RelayProtocol.receive`` the frames of one situation and checks the actions
the I/O side would carry out (frames on the wire, deliveries, the session's state).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from signalwire_chat._realtime._actions import (
    ACCEPTED,
    REAUTHENTICATED,
    Broken,
    Deliver,
    Refused,
    Send,
)
from signalwire_chat._realtime._jsonrpc import MAX_JSON_DEPTH
from signalwire_chat._realtime._protocol import RelayProtocol
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._subscriptions import Route, Subscription

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlZGdlcyJ9.c2VjcmV0LXNpZ25hdHVyZQ"


class _Owner:
    def _cancel(self, sub: Subscription) -> None:
        pass


def _protocol(drop_stale: bool = False) -> tuple[RelayProtocol, Subscription]:
    routes = Routes(drop_stale=drop_stale)
    sub = Subscription(_Owner(), Route.group("g"), lambda m: None, None, recent_ids=16)
    routes.groups = {"g": (sub,)}
    return RelayProtocol(routes, "test/1"), sub


def _frame(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _event(rpc_id: str, params: Any) -> bytes:
    return _frame({"jsonrpc": "2.0", "id": rpc_id, "method": "signalwire.event", "params": params})


def _chat(message_id: str, group: str = "g", **extra: Any) -> dict[str, Any]:
    inner = {"id": message_id, "group_id": group, "subtype": "chat", "text": "t", "ts": 1.0}
    inner.update(extra)
    return inner


def _sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(p) for a in actions if type(a) is Send for p in a.payloads]


def _accepted(protocol: RelayProtocol, result: Any) -> list[Any]:
    protocol.connect(TOKEN, reconnect=False)
    return protocol.receive(
        [_frame({"jsonrpc": "2.0", "id": protocol.connect_id, "result": result})], 10
    )


# A close without a code, and pongs: test_websocket.py (the layer that answers them).


def test_binary_frames_are_read_as_text_and_bad_messages_are_skipped() -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    bad_event = b'{"jsonrpc":"2.0","id":"bad-1","method":"signalwire.event","params":[1,'
    actions = protocol.receive(
        [
            bad_event,  # truncated JSON: skipped
            b"\xff\xfe not json",
            # A binary message (bytes, as the websocket layer passes it): read as text.
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": "b1",
                    "method": "signalwire.event",
                    "params": {"event_type": "conversation.message", "params": _chat("m1")},
                }
            ).encode(),
        ],
        10,
    )
    assert [type(a) for a in actions] == [Deliver, Send]
    assert [wire["id"] for _subs, wire, _update in actions[0].items] == ["m1"]  # type: ignore[union-attr]
    assert [f["id"] for f in _sent(actions)] == ["b1"]


@pytest.mark.parametrize(
    "params",
    [
        "not a dict",
        {"event_type": ["conversation.message"], "params": _chat("m")},
        {"event_type": "conversation.message", "params": "not a dict"},
        {"event_type": "conversation.message", "params": _chat("m", subtype="log")},
        {"event_type": "conversation.message", "params": _chat("m", group="not-mine")},
        {"event_type": "signalwire.authorization.state", "params": {"authorization_state": 5}},
        {"event_type": "something.else", "params": {}},
    ],
)
def test_events_that_bring_nothing_are_acknowledged_only(params: Any) -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    actions = protocol.receive([_event("e1", params)], 10)
    assert [type(a) for a in actions] == [Send]
    assert _sent(actions) == [{"jsonrpc": "2.0", "id": "e1", "result": {}}]
    assert protocol.authorization_state is None


def test_the_envelope_says_who_wrote_it_and_an_update_is_marked() -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    update = {
        "event_type": "conversation.message.updated",
        "is_author": True,
        "params": _chat("m1"),
    }
    actions = protocol.receive([_event("u1", update)], 10)
    (_subs, wire, is_update) = actions[0].items[0]  # type: ignore[union-attr]
    assert wire["is_author"] is True
    assert is_update is True


def test_a_long_read_is_acknowledged_in_parts() -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    frames = [_event(f"r{i}", {"event_type": "x.y", "params": {}}) for i in range(40)]
    actions = protocol.receive(frames, 100)
    assert [type(a) for a in actions] == [Send, Send]
    assert [len(a.payloads) for a in actions] == [32, 8]  # type: ignore[union-attr]


def test_a_ping_without_params_and_an_unknown_request_are_answered() -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    actions = protocol.receive(
        [
            _frame({"jsonrpc": "2.0", "id": "p1", "method": "signalwire.ping", "params": [1]}),
            _frame({"jsonrpc": "2.0", "id": "q1", "method": "webrtc.verto"}),
            _frame({"jsonrpc": "2.0", "method": "a.notification"}),  # no id: no answer
            _frame({"jsonrpc": "2.0", "id": "nobody-asked", "result": {}}),
        ],
        10,
    )
    sent = _sent(actions)
    assert [f["id"] for f in sent] == ["p1", "q1"]
    assert sent[0]["result"]["timestamp"] is None
    assert sent[1]["error"]["code"] == -32601


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("just a string", Broken),
        ({"code": "not-an-int", "message": "token invalid"}, Refused),
        ({"code": -32603}, Broken),
    ],
)
def test_a_connect_error_of_any_shape_ends_the_read(error: Any, kind: type) -> None:
    protocol, _sub = _protocol()
    protocol.connect(TOKEN, reconnect=False)
    answer = {"jsonrpc": "2.0", "id": protocol.connect_id, "error": error}
    actions = protocol.receive([_frame(answer), _event("late", _chat("m"))], 10)
    assert [type(a) for a in actions] == [kind]
    if kind is Refused:
        assert actions[0].error.rpc_code is None  # type: ignore[union-attr]
    assert not protocol.connected


@pytest.mark.parametrize("result", [None, "ok", [1]])
def test_a_connect_answer_without_a_result_is_broken(result: Any) -> None:
    protocol, _sub = _protocol()
    actions = _accepted(protocol, result)
    assert actions == [Broken("signalwire.connect answered without a result")]


def test_an_accept_without_protocol_or_authorization_keeps_none(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _sub = _protocol()
    assert _accepted(protocol, {"protocol": 7, "authorization": "x"}) == [ACCEPTED]
    assert protocol.protocol is None
    assert protocol.authorization is None
    _accepted(protocol, {"protocol": "p1"})
    protocol.connect(TOKEN, reconnect=True)
    with caplog.at_level(logging.INFO, logger="signalwire_chat._realtime._protocol"):
        protocol.receive(
            [_frame({"jsonrpc": "2.0", "id": protocol.connect_id, "result": {"protocol": "p1"}})],
            10,
        )
    assert "session resumed" in caplog.text


def test_a_refused_or_odd_reauthentication_keeps_the_last_authorization(
    caplog: pytest.LogCaptureFixture,
) -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p", "authorization": {"project_id": "proj"}})
    request = json.loads(protocol.reauthenticate("new-1") or b"{}")
    refusal = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32002}}
    with caplog.at_level(logging.WARNING, logger="signalwire_chat._realtime._protocol"):
        assert protocol.receive([_frame(refusal)], 10) == []
    assert "reauthenticate refused" in caplog.text
    assert protocol.authorization == {"project_id": "proj"}
    request = json.loads(protocol.reauthenticate("new-2") or b"{}")
    odd = {"jsonrpc": "2.0", "id": request["id"], "result": {"authorization": "not a dict"}}
    assert protocol.receive([_frame(odd)], 10) == [REAUTHENTICATED]
    assert protocol.authorization == {"project_id": "proj"}
    assert protocol.reauth_id is None


def test_an_event_holding_nan_is_acknowledged_not_delivered() -> None:
    # NaN is not JSON: delivered, it would reach `tail --json` and the bridge's entries as
    # JSON no strict reader takes. Acknowledged, so that the relay does not send it again.
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    bad = _event("nan-1", {"event_type": "conversation.message", "params": _chat("m-nan")})
    bad = bad.replace(b'"ts": 1.0', b'"ts": NaN')
    assert b"NaN" in bad
    good = _event("ok-1", {"event_type": "conversation.message", "params": _chat("m-ok")})
    actions = protocol.receive([bad, good], 10)
    assert _sent(actions) == [
        {"jsonrpc": "2.0", "id": "nan-1", "result": {}},
        {"jsonrpc": "2.0", "id": "ok-1", "result": {}},
    ]
    delivered = [item[1]["id"] for a in actions if type(a) is Deliver for item in a.items]
    assert delivered == ["m-ok"]  # the other side: the next event goes on


def test_an_event_nested_too_deep_is_acknowledged_not_delivered() -> None:
    protocol, _sub = _protocol()
    _accepted(protocol, {"protocol": "p"})
    deep: Any = "x"
    for _ in range(MAX_JSON_DEPTH + 5):
        deep = [deep]
    inner = _chat("m-deep", extra=deep)
    deep_event = _event("deep-1", {"event_type": "conversation.message", "params": inner})
    deep_request = _frame({"jsonrpc": "2.0", "id": "deep-2", "method": "other", "params": deep})
    actions = protocol.receive([deep_event, deep_request], 10)
    # The event is acknowledged (or the relay would resend it on every resume); the other
    # request is not answered, and nothing reaches a subscription.
    assert actions == [Send([b'{"jsonrpc":"2.0","id":"deep-1","result":{}}'])]
