"""The relay's JSON-RPC codec: decoding messages, and the requests and replies we send."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signalwire_chat._realtime import _jsonrpc
from signalwire_chat._realtime._jsonrpc import BadMessage

#: SIGNALWIRE_HYPOTHESIS_EXAMPLES=5000 for a deeper run than the suite's.
PROPERTY = settings(
    max_examples=int(os.environ.get("SIGNALWIRE_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# --- JSON-RPC messages ----------------------------------------------------------------------------


def test_decode_message_accepts_objects_from_text_or_bytes() -> None:
    assert _jsonrpc.decode_message('{"id":"a","method":"m"}') == {"id": "a", "method": "m"}
    assert _jsonrpc.decode_message(b'{"x":[1,{"y":2}]}') == {"x": [1, {"y": 2}]}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ("", "not JSON"),
        ("{nope", "not JSON"),
        ("[1,2]", "a JSON list, not an object"),
        ("42", "a JSON int, not an object"),
        ("null", "a JSON NoneType, not an object"),
        (b"\xff{}", "not UTF-8"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 64"),
        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested deeper"),
    ],
)
def test_decode_message_refuses_what_is_not_a_json_object(
    payload: str | bytes, reason: str
) -> None:
    with pytest.raises(BadMessage) as info:
        _jsonrpc.decode_message(payload)
    assert reason in info.value.reason


def test_nesting_over_the_limit_is_refused_and_keeps_a_usable_id() -> None:
    deep = '{"jsonrpc":"2.0","id":"ev-1","params":' + '{"a":' * 70 + "1" + "}" * 70 + "}"
    with pytest.raises(BadMessage) as info:
        _jsonrpc.decode_message(deep)
    assert info.value.rpc_id == "ev-1"
    assert "nested deeper than 64" in str(info.value)
    within = '{"id":[1],"p":' + "[" * 60 + "]" * 60 + "}"
    assert _jsonrpc.decode_message(within)["id"] == [1]
    with pytest.raises(BadMessage) as bad_id:
        _jsonrpc.decode_message('{"id":[1],"p":' + "[" * 70 + "]" * 70 + "}")
    assert bad_id.value.rpc_id is None  # an id that is not a string or an integer


def test_nesting_counts_objects_and_arrays_together() -> None:
    # 40 objects and 40 arrays in turn: 80 levels, though neither kind alone passes 64.
    deep = '{"id":"ev-2","p":' + '{"a":[' * 40 + "1" + "]}" * 40 + "}"
    with pytest.raises(BadMessage) as info:
        _jsonrpc.decode_message(deep)
    assert info.value.rpc_id == "ev-2"
    # The same brackets side by side instead of nested: two levels deep, accepted.
    wide = '{"id":"ev-3","p":[' + ",".join(['{"a":[1]}'] * 40) + "]}"
    assert len(_jsonrpc.decode_message(wide)["p"]) == 40


def test_many_brackets_inside_strings_are_not_nesting() -> None:
    text = "[{" * 500
    assert _jsonrpc.decode_message(json.dumps({"text": text}))["text"] == text


@pytest.mark.parametrize(
    "payload",
    [
        '{"id":"a"}',
        ' {"id":"a"}',  # whitespace before, after, both: json.loads accepts them
        '{"id":"a"} \n',
        '\t{"id":"a"}\r\n',
        '{"id":"a"}{"id":"b"}',  # extra data
        '{"id":"a"} x',
        '\ufeff{"id":"a"}',  # a BOM
        "x",
        "   ",
        '{"id":NaN,"x":-Infinity}',
        '{"a":1,"a":2}',
        '{"id":"\\ud800"}',  # a lone surrogate escape
        '{"id":"a",}',
        "[]",
        '"text"',
    ],
)
def test_decode_message_agrees_with_json_loads(payload: str) -> None:
    """The scanner fast path accepts exactly what json.loads does, with the same result, but
    NaN and the infinities, which are not JSON."""
    try:
        expected: object = json.loads(payload, parse_constant=_refused)
    except ValueError:
        expected = None
    if type(expected) is not dict:
        with pytest.raises(BadMessage):
            _jsonrpc.decode_message(payload)
        return
    got = _jsonrpc.decode_message(payload)
    # Compared as JSON text: NaN is not equal to itself.
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)


def _refused(name: str) -> Any:
    raise ValueError(name)


@pytest.mark.parametrize(
    "payload",
    [
        '{"jsonrpc":"2.0","id":"e-1","method":"signalwire.event","params":{"x":NaN}}',
        ' {"jsonrpc":"2.0","id":7,"method":"signalwire.event","params":[-Infinity]} ',
    ],
)
def test_nan_and_infinity_are_not_json_and_the_refusal_names_the_event(payload: str) -> None:
    with pytest.raises(BadMessage) as info:
        _jsonrpc.decode_message(payload)
    assert "not JSON" in info.value.reason
    # Named, so that the event is acknowledged rather than sent again on every resume.
    assert info.value.method == "signalwire.event"
    assert info.value.rpc_id in ("e-1", 7)


def test_nan_inside_a_string_is_text() -> None:
    got = _jsonrpc.decode_message('{"id":"a","text":"NaN and -Infinity"}')
    assert got["text"] == "NaN and -Infinity"


def _json_containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=5), children, max_size=4
    )


@PROPERTY
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), _json_containers))
def test_decode_message_round_trips_any_object(value: object) -> None:
    payload = json.dumps({"id": "x", "value": value})
    assert _jsonrpc.decode_message(payload) == json.loads(payload)


def test_bad_message_reasons_never_quote_the_payload() -> None:
    secret = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0.secret-token"
    for payload in (f'{{"jwt_token":"{secret}"', f'["{secret}"]'):
        with pytest.raises(BadMessage) as info:
            _jsonrpc.decode_message(payload)
        assert secret not in str(info.value)
        assert "secret" not in repr(info.value)


def test_ack_and_ping_result_shapes() -> None:
    assert json.loads(_jsonrpc.ack("abc-1")) == {"jsonrpc": "2.0", "id": "abc-1", "result": {}}
    assert json.loads(_jsonrpc.ack('we"ird\\')) == {
        "jsonrpc": "2.0",
        "id": 'we"ird\\',
        "result": {},
    }
    assert json.loads(_jsonrpc.ack(7))["id"] == 7
    assert json.loads(_jsonrpc.ping_result("p", 1795616962.3734279)) == {
        "jsonrpc": "2.0",
        "id": "p",
        "result": {"timestamp": 1795616962.3734279},
    }


def test_connect_request_matches_the_protocol() -> None:
    first = json.loads(_jsonrpc.connect_request("id1", token="T", agent="lib/1.0"))
    assert first == {
        "jsonrpc": "2.0",
        "id": "id1",
        "method": "signalwire.connect",
        "params": {
            "version": {"major": 4, "minor": 0, "revision": 0},
            "event_acks": True,
            "agent": "lib/1.0",
            "authentication": {"jwt_token": "T"},
        },
    }
    again = json.loads(
        _jsonrpc.connect_request(
            "id2", token="T", agent="lib/1.0", protocol="signalwire_x", authorization_state="st"
        )
    )
    assert again["params"]["protocol"] == "signalwire_x"
    assert again["params"]["authorization_state"] == "st"


def test_reauthenticate_request() -> None:
    msg = json.loads(_jsonrpc.reauthenticate_request("r", project="p1", token="T2"))
    assert msg["method"] == "signalwire.reauthenticate"
    assert msg["params"] == {"authentication": {"project": "p1", "jwt_token": "T2"}}


def test_rpc_ids_are_random_uuid4_strings() -> None:
    import uuid

    ids = {_jsonrpc.new_rpc_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rpc_id in list(ids)[:50]:
        parsed = uuid.UUID(rpc_id)
        assert str(parsed) == rpc_id
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
