"""Property-based tests (hypothesis): the client's arguments and the decoding of hostile JSON.

Arguments: whatever a caller passes (lone surrogates, odd keys, NaN, cycles aside), a call
either raises InvalidArgumentError before anything is sent, or sends exactly what was given.
Decoding: whatever JSON a server sends, the result is a model or a DecodeError, never another
exception; both decoders agree; a decoded message's ``datetime`` works.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

import pytest
from _loopback import Server, reply
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from signalwire_chat import ChatClient, DecodeError, InvalidArgumentError
from signalwire_chat._convert import _precise, decoder
from signalwire_chat._http import decode_body
from signalwire_chat.models import Address, Conversation, ConversationChatMessage

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwcm9wZXJ0eSJ9.c2lnbmF0dXJl"

SETTINGS = settings(
    max_examples=150,
    deadline=None,  # the machine is shared: time per example is not what is tested
    database=None,  # no .hypothesis directory in the work tree
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every code point, lone surrogates drawn often (hypothesis leaves them out by default, and
# drawing from the whole range would almost never hit one), controls and spaces too.
any_char = (
    st.characters(min_codepoint=0, max_codepoint=0x7F, categories=None)
    | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=None)
    | st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, categories=None)
)
surrogate = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, categories=None)
any_text = st.text(any_char, max_size=40) | st.builds(
    lambda head, middle, tail: head + middle + tail,
    st.text(any_char, max_size=10),
    surrogate,
    st.text(any_char, max_size=10),
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
)
# Address ids are UUIDs (anything else is refused before a request): both kinds, so that the
# sending side of each property is exercised too.
address_ids = any_text | st.uuids().map(str)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(any_text | st.integers(0, 3), inner, max_size=4)
    ),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Server]:
    with Server() as server:
        yield server


@pytest.fixture(scope="module")
def client(recorder: Server) -> Iterator[ChatClient]:
    # The recorder answers one request per call: the address dialect (the arguments are
    # checked by the same code in both dialects, before the dialect matters).
    with ChatClient(TOKEN, rest_url=recorder.url, max_retries=0, dialect="address") as c:
        yield c


def _ok_json(value: Any) -> bool:
    """Whether ``value`` is what check_json_object accepts (the reference, written naively)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value)
    if isinstance(value, list):
        return all(_ok_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _ok_json(k) and _ok_json(v) for k, v in value.items())
    return True


@SETTINGS
@given(
    address_id=address_ids,
    text=any_text,
    metadata=st.none() | st.dictionaries(any_text | st.integers(0, 3), json_like, max_size=4),
)
def test_send_message_refuses_or_sends_exactly_what_was_given(
    client: ChatClient, recorder: Server, address_id: str, text: str, metadata: Any
) -> None:
    recorder.default = reply(200, {"id": "m", "conversation_id": "c", "text": "t"})
    before = len(recorder.requests)
    event(f"surrogate in text: {not _ok_json(text)}")
    try:
        client.send_message(address_id, text, metadata=metadata)
    except InvalidArgumentError:
        assert len(recorder.requests) == before  # nothing was sent
        return
    request = recorder.requests[-1]
    assert (request["method"], request["path"]) == ("POST", "/api/fabric/messages")
    sent = json.loads(request["body"])
    assert sent["conversation_id"] == address_id
    assert sent["text"] == text
    assert sent.get("metadata") == metadata
    # And what was accepted is what a careful caller would expect to be accepted.
    assert address_id == address_id.strip()
    assert text.strip()
    assert _ok_json(address_id)
    assert _ok_json(text)
    assert metadata is None or _ok_json(metadata)


@SETTINGS
@given(address_id=address_ids)
def test_an_address_id_is_refused_or_sent_as_one_exact_path_segment(
    client: ChatClient, recorder: Server, address_id: str
) -> None:
    recorder.default = reply(200, {"data": [], "links": {}})
    before = len(recorder.requests)
    try:
        client.get_messages(address_id)
    except InvalidArgumentError:
        assert len(recorder.requests) == before
        return
    path = recorder.requests[-1]["path"]
    prefix, _, rest = path.partition("/api/fabric/conversations/")
    assert prefix == ""
    segment = rest.split("/messages?", 1)[0]
    assert "/" not in segment
    assert unquote(segment, errors="strict") == address_id


# --- decoding ---------------------------------------------------------------------------------

VALID_CHAT = {
    "id": "m1",
    "conversation_id": "room",
    "user_id": "u",
    "ts": 1_700_000_000.5,
    "type": "message",
    "subtype": "chat",
    "text": "hi",
    "details": {},
}


def _same_outcome(cls: type, obj: Any) -> Any:
    """Decode with both decoders: both fail with DecodeError, or both give equal models."""
    results = []
    for decode in (decoder(cls), _precise(cls)):
        try:
            results.append(decode(obj))
        except DecodeError as exc:
            results.append(("error", exc.field))
    assert results[0] == results[1]
    return results[0]


@SETTINGS
@given(value=json_like)
def test_any_json_value_decodes_or_is_a_decode_error(value: Any) -> None:
    for cls in (ConversationChatMessage, Conversation, Address):
        _same_outcome(cls, value)


@SETTINGS
@given(changes=st.dictionaries(st.sampled_from([*VALID_CHAT, "metadata", "extra"]), json_like))
def test_a_chat_message_with_hostile_fields(changes: dict[str, Any]) -> None:
    result = _same_outcome(ConversationChatMessage, {**VALID_CHAT, **changes})
    if isinstance(result, ConversationChatMessage):
        assert result.datetime.year >= 1  # never raises on a decoded message
        repr(result)


@SETTINGS
@given(body=st.binary(max_size=200) | json_like.map(lambda v: json.dumps(v).encode()))
def test_any_body_decodes_or_is_a_decode_error(body: bytes) -> None:
    try:
        value = decode_body(body, method="GET", url="http://127.0.0.1/x")
    except DecodeError:
        return
    if value is not None:  # what is accepted is JSON, read as the standard library reads it
        assert value == json.loads(body)


@SETTINGS
@given(depth=st.integers(1, 5000), kind=st.sampled_from(["[", '{"k":']))
def test_deep_bodies_decode_or_are_a_decode_error(depth: int, kind: str) -> None:
    close = "]" if kind == "[" else "}"
    body = (kind * depth + "1" + close * depth).encode()
    try:
        value = decode_body(body, method="GET", url="http://127.0.0.1/x")
    except DecodeError as exc:
        message = exc.message
    else:
        for _ in range(depth):
            value = value[0] if kind == "[" else value["k"]
        assert value == 1
        return
    assert "deep" in message
