"""ChatClient errors and retries against the emulator's fault injection, counting requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from signalwire_chat import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ChatClient,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SubscriberTokenSource,
    ValidationError,
    mint_subscriber_token,
    refresh_subscriber_token,
)
from signalwire_chat.emulator import Emulator

MESSAGES = "/api/fabric/messages"


@pytest.fixture
def setup(signalwire_emulator: Emulator) -> Iterator[tuple[Emulator, ChatClient, str, list[float]]]:
    """(emulator, client, a room to talk to, the client's retry sleeps)."""
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    room = emu.create_room("errors")
    sleeps: list[float] = []
    with ChatClient(
        sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, _sleep=sleeps.append
    ) as client:
        client.my_address_id()  # resolved up front: the tests count the chat requests only
        yield emu, client, room.id, sleeps


def _texts(emu: Emulator, client: ChatClient, room: str) -> list[str]:
    """The texts stored in the client's conversation with ``room``."""
    return [m["text"] for m in emu.messages(emu.group_id_for(room, client.my_address_id()))]


def _count(rec: object, method: str, prefix: str) -> int:
    return sum(
        1
        for e in rec.entries("http")  # type: ignore[attr-defined]
        if e.get("method") == method and str(e.get("path", "")).startswith(prefix)
    )


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (422, ValidationError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (409, APIError),
    ],
)
def test_every_error_class(
    setup: tuple[Emulator, ChatClient, str, list[float]], status: int, cls: type[APIError]
) -> None:
    emu, client, address, _ = setup
    emu.fail_next(status, method="POST", path_prefix=MESSAGES, times=10)
    with pytest.raises(cls) as info:
        client.send_message(address, "hi")
    assert info.value.status == status
    emu.clear_faults()


def test_html_and_empty_bodies(setup: tuple[Emulator, ChatClient, str, list[float]]) -> None:
    emu, client, address, _ = setup
    emu.fail_next(502, body="<html><h1>Bad gateway</h1></html>", method="POST", times=10)
    with pytest.raises(ServerError) as info:
        client.join(address)
    assert info.value.body is not None
    assert "Bad gateway" in info.value.body
    emu.clear_faults()
    emu.fail_next(503, body=b"", method="POST", times=10)  # a join is retried: fail them all
    with pytest.raises(ServerError):
        client.join(address)


def test_get_retries_then_succeeds(setup: tuple[Emulator, ChatClient, str, list[float]]) -> None:
    emu, client, _, sleeps = setup
    emu.fail_next(503, method="GET", path_prefix="/api/fabric/subscriber", times=2)
    with emu.recording() as rec:
        info = client.get_subscriber_info()
        assert info.fabric_addresses[0].id == client.my_address_id()
    assert _count(rec, "GET", "/api/fabric/subscriber") == 3
    assert len(sleeps) == 2


def test_post_not_retried_on_5xx(setup: tuple[Emulator, ChatClient, str, list[float]]) -> None:
    emu, client, address, sleeps = setup
    emu.fail_next(503, method="POST", path_prefix=MESSAGES, times=1)
    with emu.recording() as rec, pytest.raises(ServerError):
        client.send_message(address, "once")
    assert _count(rec, "POST", MESSAGES) == 1
    assert sleeps == []
    assert _texts(emu, client, address) == []


def test_post_retried_on_429(setup: tuple[Emulator, ChatClient, str, list[float]]) -> None:
    emu, client, address, sleeps = setup
    emu.fail_next(429, method="POST", path_prefix=MESSAGES, headers={"Retry-After": "1"})
    with emu.recording() as rec:
        client.send_message(address, "after 429")
    assert _count(rec, "POST", MESSAGES) == 2
    assert sleeps == [1.0]
    assert _texts(emu, client, address) == ["after 429"]


def test_request_id_is_carried(setup: tuple[Emulator, ChatClient, str, list[float]]) -> None:
    emu, client, address, _ = setup
    emu.fail_next(404, method="POST", path_prefix=MESSAGES)
    with pytest.raises(NotFoundError) as info:
        client.send_message(address, "x")
    assert info.value.request_id


def test_token_source_refreshes_on_401(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return emu.mint_token(sub.id)

    with ChatClient(source, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        emu.fail_next(401, method="GET", path_prefix="/api/fabric/subscriber")
        assert client.get_subscriber_info().id == sub.id
    assert len(calls) == 2


def test_expired_fixed_token_is_an_authentication_error(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    sub = emu.create_subscriber()
    expired = emu.mint_token(sub.id, ttl=-10)
    with ChatClient(expired, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        with pytest.raises(AuthenticationError) as info:
            client.get_subscriber_info()
        assert expired not in str(info.value)


def test_backend_helpers(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    minted = mint_subscriber_token(
        emu.rest_url, emu.project_id, emu.api_token, "backend@example.test", display_name="B"
    )
    assert minted.token not in repr(minted)
    assert minted.refresh_token
    refreshed = refresh_subscriber_token(
        emu.rest_url, emu.project_id, emu.api_token, minted.refresh_token
    )
    assert refreshed.token != minted.token
    with ChatClient(refreshed.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        assert client.get_subscriber_info().email == "backend@example.test"
    with pytest.raises(AuthenticationError) as info:
        mint_subscriber_token(emu.rest_url, emu.project_id, "wrong-api-token", "x@example.test")
    assert "wrong-api-token" not in str(info.value)


def test_backend_helpers_refuse_a_success_that_is_not_a_token(
    signalwire_emulator: Emulator,
) -> None:
    # A proxy answering 201 with an HTML page, then a JSON body without a token.
    emu = signalwire_emulator
    prefix = "/api/fabric/subscribers/tokens"
    emu.fail_next(
        201,
        method="POST",
        path_prefix=prefix,
        body="<html>ok</html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(DecodeError, match=r"201 with a body that is not JSON \(text/html\)"):
        mint_subscriber_token(emu.rest_url, emu.project_id, emu.api_token, "a@example.test")
    emu.fail_next(
        201,
        method="POST",
        path_prefix=prefix,
        body='{"ok": true}',
        headers={"Content-Type": "application/json"},
    )
    with pytest.raises(DecodeError, match="string 'token'") as info:
        mint_subscriber_token(emu.rest_url, emu.project_id, emu.api_token, "a@example.test")
    assert info.value.field == "token"


def test_subscriber_token_source(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    source = SubscriberTokenSource(emu.rest_url, emu.project_id, emu.api_token, "src@example.test")
    assert emu.api_token not in repr(source)
    with emu.recording() as rec:
        first = source()
        second = source()
    assert first != second
    paths = [e["path"] for e in rec.entries("http")]
    assert paths == ["/api/fabric/subscribers/tokens", "/api/fabric/subscribers/tokens/refresh"]
    with ChatClient(source, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        assert client.get_subscriber_info().email == "src@example.test"
