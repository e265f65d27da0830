"""ChatClient argument checks: bad input is refused before anything is sent."""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from _loopback import offline_client

from signalwire_chat import (
    ChatClient,
    ClientClosedError,
    InsecureURLError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    TokenError,
)

# Address ids are UUIDs: the client refuses anything else before a request.
ROOM = "0b6e2f4a-5c1d-4e8f-9a7b-3c2d1e0f4a5b"


TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")


SAT = f"{_b64({'typ': 'SAT', 'ch': 'puc.example.com'})}.a.b.c.d"


@pytest.fixture
def client() -> Iterator[ChatClient]:
    # Nothing listens there: a request that got out would be a ConnectError, not a refusal.
    with offline_client(TOKEN) as c:
        yield c


BAD_IDS: list[tuple[Any, type[Exception]]] = [
    ("", InvalidArgumentError),
    ("   ", InvalidArgumentError),
    (".", InvalidArgumentError),
    ("..", InvalidArgumentError),
    ("a\nb", InvalidArgumentError),
    (None, InvalidArgumentTypeError),
    (123, InvalidArgumentTypeError),
    (b"abc", InvalidArgumentTypeError),
]


@pytest.mark.parametrize(("address_id", "error"), BAD_IDS)
def test_bad_address_ids(client: ChatClient, address_id: Any, error: type[Exception]) -> None:
    for call in (
        lambda: client.get_messages(address_id),
        lambda: client.iter_messages(address_id),
        lambda: client.send_message(address_id, "hi"),
        lambda: client.join(address_id),
        lambda: (
            client.get_address(id=address_id)
            if address_id is not None
            else client.get_address(id=5)
        ),  # type: ignore[arg-type]
        lambda: client.subscribe(address_id, print),
        lambda: client.stream_messages(address_id),
    ):
        with pytest.raises(error):
            call()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", InvalidArgumentError),
        ("  ", InvalidArgumentError),
        (None, InvalidArgumentTypeError),
        (5, InvalidArgumentTypeError),
    ],
)
def test_bad_text(client: ChatClient, text: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="text"):
        client.send_message(ROOM, text)


@pytest.mark.parametrize(
    ("page_size", "error"),
    [
        (0, InvalidArgumentError),
        (1001, InvalidArgumentError),
        (-1, InvalidArgumentError),
        (True, InvalidArgumentTypeError),
        (2.0, InvalidArgumentTypeError),
        ("10", InvalidArgumentTypeError),
    ],
)
def test_bad_page_size(client: ChatClient, page_size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="page_size"):
        client.get_messages(ROOM, page_size=page_size)
    with pytest.raises(error, match="page_size"):
        client.iter_messages(ROOM, page_size=page_size)
    with pytest.raises(error, match="page_size"):
        client.get_conversations(page_size=page_size)
    with pytest.raises(error, match="page_size"):
        client.get_addresses(page_size=page_size)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ([1, 2], InvalidArgumentTypeError),
        ("x", InvalidArgumentTypeError),
        ({"a": object()}, InvalidArgumentTypeError),
        ({"a": {1: "x"}}, InvalidArgumentTypeError),
        ({1: "x"}, InvalidArgumentTypeError),
        ({"a": math.nan}, InvalidArgumentError),
        ({"a": [math.inf]}, InvalidArgumentError),
        ({"a": {1, 2}}, InvalidArgumentTypeError),
    ],
)
def test_bad_metadata_and_details(client: ChatClient, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="metadata"):
        client.send_message(ROOM, "hi", metadata=value)
    with pytest.raises(error, match="details"):
        client.send_message(ROOM, "hi", details=value)


def test_bad_filters(client: ChatClient) -> None:
    with pytest.raises(InvalidArgumentError):
        client.get_addresses(type="bogus")
    with pytest.raises(InvalidArgumentError):
        client.get_addresses(sort_by="id")
    with pytest.raises(InvalidArgumentError):
        client.get_addresses(sort_order="up")
    with pytest.raises(InvalidArgumentError):
        client.get_address()
    with pytest.raises(InvalidArgumentError):
        client.get_address(id="a", name="b")
    with pytest.raises(InvalidArgumentTypeError):
        client.iter_messages(ROOM, limit="3")  # type: ignore[arg-type]


def test_bad_callbacks(client: ChatClient) -> None:
    with pytest.raises(InvalidArgumentTypeError):
        client.subscribe(ROOM, "not callable")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError):
        client.subscribe(ROOM, print, on_error=5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        client.stream_messages(ROOM, timeout=-1)


def test_constructor_checks() -> None:
    with pytest.raises(InvalidArgumentTypeError):
        ChatClient(None)  # type: ignore[arg-type]
    with pytest.raises(TokenError):
        ChatClient("not-a-token")
    with pytest.raises(TokenError):
        ChatClient("a.b.c")  # a readable shape but no readable header and no host
    with pytest.raises(InvalidArgumentError):
        ChatClient(TOKEN, host="x.com", timeout=0)
    with pytest.raises(InvalidArgumentError):
        ChatClient(TOKEN, host="x.com", max_retries=-1)
    with pytest.raises(InvalidArgumentTypeError):
        ChatClient(TOKEN, host="x.com", session="s")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentTypeError):
        ChatClient(TOKEN, host=5)  # type: ignore[arg-type]


def test_insecure_urls_refused_unless_loopback_or_opted_in() -> None:
    with pytest.raises(InsecureURLError):
        ChatClient(TOKEN, rest_url="http://example.com", relay_url="wss://example.com/")
    with pytest.raises(InsecureURLError):
        ChatClient(TOKEN, rest_url="https://example.com", relay_url="ws://example.com/")
    ChatClient(
        TOKEN, rest_url="http://example.com", relay_url="ws://example.com/", allow_insecure=True
    ).close()
    ChatClient(TOKEN, rest_url="http://localhost:1", relay_url="ws://[::1]:1/").close()


def test_urls_derived_from_the_token() -> None:
    with ChatClient(SAT) as c:
        assert c.rest_url == "https://fabric.example.com"
        assert c.relay_url == "wss://puc.example.com/"
    with ChatClient(SAT, host="puc.other.org") as c:
        assert c.rest_url == "https://fabric.other.org"


def test_unreadable_header_is_fine_with_explicit_urls() -> None:
    with ChatClient("a.b.c", rest_url="https://r.example", relay_url="wss://w.example/") as c:
        assert c.rest_url == "https://r.example"
    with ChatClient("a.b.c", rest_url="https://r.example") as c, pytest.raises(TokenError):
        _ = c.relay_url


def test_token_source_is_not_called_in_the_constructor() -> None:
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return SAT

    client = ChatClient(source)
    assert calls == []
    assert client.rest_url == "https://fabric.example.com"
    assert calls == [1]
    client.close()


def test_closed_client_refuses_everything() -> None:
    client = ChatClient(TOKEN, rest_url="http://127.0.0.1:1", relay_url="ws://127.0.0.1:1/")
    client.close()
    client.close()  # idempotent
    assert client.closed
    for call in (
        lambda: client.get_messages(ROOM),
        lambda: client.send_message(ROOM, "x"),
        lambda: client.join(ROOM),
        lambda: client.get_conversations(),
        lambda: client.get_subscriber_info(),
        lambda: client.subscribe(ROOM, print),
    ):
        with pytest.raises(ClientClosedError):
            call()
    with pytest.raises(ClientClosedError):
        client.__enter__()


def test_repr_has_no_token() -> None:
    with ChatClient(SAT) as c:
        assert SAT not in repr(c)
        assert "fabric.example.com" in repr(c)
