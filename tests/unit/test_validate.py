"""The one validation module: what each public entry refuses, and that they all agree.

The client points at a closed port: a refused call raises our error; a call that got out would
raise ConnectError instead, so "nothing was sent" is what these tests check.
"""

from __future__ import annotations

import json
import math
import re
import sys
import types
from collections import UserDict
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _loopback import closed_port_url, offline_client

from signalwire_chat import (
    AuthenticationError,
    ChatClient,
    ConnectError,
    InsecureURLError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    TokenError,
)
from signalwire_chat._auth import Credentials
from signalwire_chat._validate import (
    MAX_INT_DIGITS,
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    check_json_object,
    json_unfit,
)

# Address ids are UUIDs: the client refuses anything else before a request.
ROOM = "0b6e2f4a-5c1d-4e8f-9a7b-3c2d1e0f4a5b"


TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA"


@pytest.fixture
def client() -> Iterator[ChatClient]:
    with offline_client(TOKEN) as c:
        yield c


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def _at_stack_depth(headroom: int, fn: Callable[[], Any]) -> Any:
    """Call ``fn`` with only ``headroom`` frames left before the recursion limit."""
    target = sys.getrecursionlimit() - headroom

    def dive(level: int) -> Any:
        if level >= target:
            return fn()
        return dive(level + 1)

    current = len(_stack())
    return dive(current)


def _stack() -> list[Any]:
    frame = sys._getframe()
    frames = []
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back  # type: ignore[assignment]
    return frames


# --- tokens (issue 10, item 1) --------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["\n", "\r\n", " ", "\t"])
def test_token_with_trailing_whitespace_is_refused_at_construction(suffix: str) -> None:
    with pytest.raises(TokenError) as info:
        ChatClient(TOKEN + suffix, rest_url=closed_port_url())
    assert TOKEN not in str(info.value)
    assert "whitespace" in str(info.value)
    assert TOKEN.split(".")[2] not in str(info.value)


@pytest.mark.parametrize("bad", [" " + TOKEN, TOKEN.replace(".", ". ", 1), TOKEN + "\x00"])
def test_token_with_whitespace_or_nul_inside_is_refused(bad: str) -> None:
    with pytest.raises(TokenError) as info:
        Credentials(bad)
    assert TOKEN.split(".")[2] not in str(info.value)


def test_token_source_returning_a_trailing_newline(client: ChatClient) -> None:
    creds = Credentials(lambda: TOKEN + "\n")
    with pytest.raises(AuthenticationError) as info:
        _ = creds.token
    assert TOKEN.split(".")[2] not in str(info.value)
    assert "whitespace" in str(info.value)
    with (
        ChatClient(lambda: TOKEN + "\n", rest_url=closed_port_url(), max_retries=0) as c,
        pytest.raises(AuthenticationError),
    ):
        c.get_messages(ROOM)


# --- one set of rules for every entry (the "one validation module" item) --------------------

REFUSED_IDS: list[tuple[Any, type[Exception]]] = [
    (" room", InvalidArgumentError),
    ("room ", InvalidArgumentError),
    ("room\n", InvalidArgumentError),
    ("a\x7fb", InvalidArgumentError),
    ("x" * 257, InvalidArgumentError),
    ("ro\ud800om", InvalidArgumentError),
    ("..", InvalidArgumentError),
    (None, InvalidArgumentTypeError),
]


@pytest.mark.parametrize(("address_id", "error"), REFUSED_IDS)
def test_every_entry_gives_the_same_answer(
    client: ChatClient, address_id: Any, error: type[Exception]
) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: client.get_messages(address_id),
        lambda: client.iter_messages(address_id),
        lambda: client.send_message(address_id, "hi"),
        lambda: client.join(address_id),
        lambda: client.subscribe(address_id, print),
        lambda: client.stream_messages(address_id),
    ]
    if address_id is not None:
        calls.append(lambda: client.get_address(id=address_id))
    for call in calls:
        with pytest.raises(error):
            call()


def test_an_accepted_id_is_sent(client: ChatClient) -> None:
    # The control for the tests above: a good id does reach the (closed) port.
    with pytest.raises(ConnectError):
        client.get_messages(ROOM)
    with pytest.raises(ConnectError):  # a name may have inner spaces
        client.get_address(id="room with inner spaces")


# --- bad input that escaped the error contract (issue 10, item 7) ---------------------------


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\udc80" * 3])
def test_lone_surrogates_in_text(client: ChatClient, text: str) -> None:
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        client.send_message(ROOM, text)


def test_lone_surrogates_in_metadata(client: ChatClient) -> None:
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        client.send_message(ROOM, "hi", metadata={"k": "\ud800"})
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        client.send_message(ROOM, "hi", metadata={"\udc00": 1})
    with pytest.raises(InvalidArgumentError, match="surrogate"):
        client.send_message(ROOM, "hi", details={"k": ["ok", "\ud83d"]})


def test_surrogates_in_filters_and_names(client: ChatClient) -> None:
    with pytest.raises(InvalidArgumentError):
        client.get_addresses(display_name="\ud800")
    with pytest.raises(InvalidArgumentError):
        client.get_address(name="x\ud800")


def test_self_referencing_metadata(client: ChatClient) -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(InvalidArgumentError, match="cycle"):
        client.send_message(ROOM, "hi", metadata=loop)
    listed: list[Any] = []
    listed.append(listed)
    with pytest.raises(InvalidArgumentError, match="cycle"):
        client.send_message(ROOM, "hi", details={"l": listed})


def test_shared_but_acyclic_values_are_fine() -> None:
    shared = {"x": 1}
    assert check_json_object({"a": shared, "b": [shared, shared]}, "metadata") == {
        "a": {"x": 1},
        "b": [{"x": 1}, {"x": 1}],
    }


def test_deep_metadata_is_refused_even_from_a_deep_stack(client: ChatClient) -> None:
    deep = _nested(960)

    def call() -> None:
        client.send_message(ROOM, "hi", metadata=deep)

    with pytest.raises(InvalidArgumentError, match="deeper than"):
        _at_stack_depth(60, call)


def test_depth_and_size_limits_are_the_documented_numbers(client: ChatClient) -> None:
    assert check_json_object(_nested(MAX_JSON_DEPTH), "metadata")
    with pytest.raises(InvalidArgumentError, match=f"deeper than {MAX_JSON_DEPTH}"):
        check_json_object(_nested(MAX_JSON_DEPTH + 1), "metadata")
    # {"k":"..."} is 8 bytes of framing around the value.
    assert check_json_object({"k": "x" * (MAX_JSON_BYTES - 8)}, "details")
    with pytest.raises(InvalidArgumentError, match=str(MAX_JSON_BYTES)):
        check_json_object({"k": "x" * (MAX_JSON_BYTES - 7)}, "details")
    # Multi-byte characters count as their UTF-8 bytes.
    with pytest.raises(InvalidArgumentError):
        check_json_object({"k": "é" * (MAX_JSON_BYTES // 2)}, "details")
    with pytest.raises(InvalidArgumentError):
        client.send_message(ROOM, "hi", metadata=_nested(MAX_JSON_DEPTH + 1))


@pytest.mark.parametrize(
    "huge",
    [10**5000, -(10**5000), 10**MAX_INT_DIGITS],
    ids=["10**5000", "-10**5000", "10**MAX_INT_DIGITS"],
)
def test_an_integer_json_cannot_carry_is_an_argument_error(client: ChatClient, huge: int) -> None:
    # json.dumps raised a bare ValueError ("Exceeds the limit ... for integer string
    # conversion") from inside send_message; the closed port shows nothing was sent.
    with pytest.raises(InvalidArgumentError, match=f"more than {MAX_INT_DIGITS} digits"):
        client.send_message(ROOM, "hi", metadata={"a": huge})
    with pytest.raises(InvalidArgumentError, match="details"):
        client.send_message(ROOM, "hi", details={"a": [1, {"b": huge}]})


def test_the_longest_integer_allowed_is_sent(client: ChatClient) -> None:
    longest = 10**MAX_INT_DIGITS - 1
    assert check_json_object({"a": longest, "b": -longest}, "metadata") == {
        "a": longest,
        "b": -longest,
    }
    with pytest.raises(ConnectError):  # accepted and sent (to the closed port)
        client.send_message(ROOM, "hi", metadata={"a": longest})


def test_an_integer_past_a_lowered_process_limit_is_an_argument_error(client: ChatClient) -> None:
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(InvalidArgumentError, match="metadata"):
            client.send_message(ROOM, "hi", metadata={"a": 10**1000})
    finally:
        sys.set_int_max_str_digits(previous)


def test_non_str_keys_and_unserialisable_values(client: ChatClient) -> None:
    for bad in ({1: "x"}, {"a": {None: 1}}, {"a": b"x"}, {"a": {1, 2}}, {"a": object()}):
        with pytest.raises(InvalidArgumentTypeError):
            client.send_message(ROOM, "hi", metadata=bad)


def test_any_mapping_is_sent_as_a_plain_object(client: ChatClient) -> None:
    proxy = types.MappingProxyType({"a": UserDict({"b": (1, 2.5, None, True)})})
    assert check_json_object(proxy, "metadata") == {"a": {"b": [1, 2.5, None, True]}}
    with pytest.raises(ConnectError):  # accepted, serialised, and sent (to the closed port)
        client.send_message(ROOM, "hi", metadata=proxy)


def test_json_unfit_never_recurses() -> None:
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    assert json_unfit(deep) == f"nested deeper than {MAX_JSON_DEPTH} levels"
    assert json_unfit(_nested(MAX_JSON_DEPTH)) is None
    assert json_unfit(_nested(MAX_JSON_DEPTH + 1)) is not None
    assert json_unfit("scalar") is None


def test_json_unfit_names_a_number_python_read_as_infinity() -> None:
    # 1e999 is JSON text; Python's json reads it as inf, which JSON cannot say back.
    for value in (json.loads("1e999"), {"a": [1, {"b": json.loads("-1e999")}]}, [math.nan]):
        reason = json_unfit(value)
        assert reason is not None
        assert "float's range" in reason
    assert json_unfit({"a": [1e300, -1e300, 0.5, 10**400]}) is None  # finite, however large


# --- loopback (issue 10, item 10) -----------------------------------------------------------


@pytest.mark.parametrize("url", ["http://anything.localhost:8080", "http://localhost.evil.com"])
def test_names_under_localhost_are_not_loopback(url: str) -> None:
    with pytest.raises(InsecureURLError):
        ChatClient(TOKEN, rest_url=url)


def test_localhost_itself_and_loopback_addresses_are(client: ChatClient) -> None:
    for url in ("http://localhost:1", "http://127.0.0.2:1", "http://[::1]:1"):
        with ChatClient(TOKEN, rest_url=url, relay_url="ws://localhost:1/"):
            pass


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("deadline", 0, InvalidArgumentError),
        ("deadline", float("inf"), InvalidArgumentError),
        ("deadline", "60", InvalidArgumentTypeError),
        ("deadline", True, InvalidArgumentTypeError),
        ("max_response_bytes", 100, InvalidArgumentError),
        ("max_response_bytes", 1.5e6, InvalidArgumentTypeError),
        ("max_response_bytes", None, InvalidArgumentTypeError),
    ],
)
def test_deadline_and_body_cap_options(option: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=option):
        ChatClient(TOKEN, rest_url=closed_port_url(), **{option: value})


_DURATIONS: list[tuple[str, Callable[[Any], object]]] = [
    ("timeout", lambda v: ChatClient(TOKEN, rest_url=closed_port_url(), timeout=v)),
    ("timeout (read)", lambda v: ChatClient(TOKEN, rest_url=closed_port_url(), timeout=(1, v))),
    ("deadline", lambda v: ChatClient(TOKEN, rest_url=closed_port_url(), deadline=v)),
    ("ping_timeout", lambda v: __import__("signalwire_chat").RealtimeOptions(ping_timeout=v)),
    (
        "reconnect_max_delay",
        lambda v: __import__("signalwire_chat").RealtimeOptions(reconnect_max_delay=v),
    ),
]


@pytest.mark.parametrize(("name", "make"), _DURATIONS, ids=[n for n, _ in _DURATIONS])
def test_every_duration_follows_one_rule(name: str, make: Callable[[Any], object]) -> None:
    """A positive finite number of seconds; infinity, NaN, zero, a bool or a str refused alike."""
    for bad in (float("inf"), float("nan"), 0, -1.5):
        with pytest.raises(InvalidArgumentError, match=re.escape(f"{name} must be finite and > 0")):
            make(bad)
    for bad_type in (True, "5", None):
        with pytest.raises(InvalidArgumentTypeError):
            make(bad_type)
    for good in (0.001, 5, 30.0):
        made = make(good)
        close = getattr(made, "close", None)
        if close is not None:
            close()


def test_a_stream_timeout_follows_the_same_rule(client: ChatClient) -> None:
    with pytest.raises(InvalidArgumentError, match="timeout must be finite and > 0"):
        client.stream_inbox(timeout=float("inf"))
    with pytest.raises(InvalidArgumentTypeError, match="timeout must be a number of seconds"):
        client.stream_inbox(timeout=True)
