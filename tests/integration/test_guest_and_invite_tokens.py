"""Subscriber, guest and invite tokens: our minting helpers against the emulator's endpoints.

The request and answer fields are those of the service's OpenAPI as SignalWire's official
Python REST SDK generates them (``signalwire-sdk`` 3.7.5,
``signalwire/rest/namespaces/fabric_types_generated.py``: ``SubscriberTokenRequest``,
``SubscriberTokenResponse``, ``SubscriberRefreshTokenResponse``,
``SubscriberGuestTokenCreateRequest``/``Response``, ``SubscriberInviteTokenCreateRequest``/
``Response``), copied here as tables so that the test needs no SDK.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import pytest

from signalwire_chat import (
    AuthenticationError,
    ChatClient,
    InvalidArgumentError,
    PermissionDeniedError,
    SubscriberTokenSource,
    ValidationError,
    mint_guest_token,
    mint_invite_token,
    mint_subscriber_token,
    refresh_subscriber_token,
)
from signalwire_chat.emulator import Emulator, EmulatorSubscriber

# The OpenAPI's request fields (signalwire-sdk 3.7.5), and our parameter for each.
SUBSCRIBER_TOKEN_REQUEST = frozenset(
    {"reference", "expire_at", "application_id", "password", "first_name", "last_name"}
    | {"display_name", "job_title", "time_zone", "country", "region", "company_name"}
)
GUEST_TOKEN_REQUEST = ("allowed_addresses", "expire_at")
INVITE_TOKEN_REQUEST = ("address_id", "expires_at")


def client_for_token(emu: Emulator, token: str) -> ChatClient:
    return ChatClient(token, rest_url=emu.rest_url, relay_url=emu.relay_url)


def posted(rec: Any, path: str) -> list[Any]:
    return [e["body"] for e in rec.entries("http") if e["method"] == "POST" and e["path"] == path]


def test_every_request_field_of_the_openapi_is_a_parameter() -> None:
    for helper, fields in (
        (mint_subscriber_token, SUBSCRIBER_TOKEN_REQUEST),
        (mint_guest_token, GUEST_TOKEN_REQUEST),
        (mint_invite_token, INVITE_TOKEN_REQUEST),
    ):
        missing = set(fields) - set(inspect.signature(helper).parameters)
        assert not missing, (helper.__name__, missing)


def test_mint_subscriber_token_sends_every_field_and_returns_the_subscriber_id(
    emu: Emulator,
) -> None:
    expire_at = int(time.time()) + 600
    profile = {
        "application_id": "7f1c2a9e-0000-4000-8000-000000000001",
        "password": "s3cret-pass",
        "first_name": "Dana",
        "last_name": "Diaz",
        "display_name": "Dana D.",
        "job_title": "Engineer",
        "time_zone": "Europe/Lisbon",
        "country": "PT",
        "region": "Lisboa",
        "company_name": "Example Ltd",
    }
    with emu.recording() as rec:
        sat = mint_subscriber_token(
            emu.space_url,
            emu.project_id,
            emu.api_token,
            "dana@example.com",
            expire_at=expire_at,
            **profile,
        )
    (body,) = posted(rec, "/api/fabric/subscribers/tokens")
    assert body == {"reference": "dana@example.com", "expire_at": expire_at, **profile}
    with client_for_token(emu, sat.token) as client:
        info = client.get_subscriber_info()
    assert sat.subscriber_id == info.id
    assert emu.tokens.verify_sat(sat.token).exp == expire_at
    assert "dana" not in repr(sat)
    assert sat.token not in repr(sat)

    # The token source takes the same fields.
    with (
        SubscriberTokenSource(
            emu.space_url, emu.project_id, emu.api_token, "erin@example.com", job_title="Ops"
        ) as source,
        emu.recording() as rec,
    ):
        source()
    assert posted(rec, "/api/fabric/subscribers/tokens") == [
        {"reference": "erin@example.com", "job_title": "Ops"}
    ]


def test_a_guest_reaches_its_allowed_addresses_only(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    room = emu.create_room("lobby")
    with emu.recording() as rec:
        guest = mint_guest_token(emu.space_url, emu.project_id, emu.api_token, [alice.address_id])
    assert posted(rec, "/api/fabric/guests/tokens") == [{"allowed_addresses": [alice.address_id]}]
    assert guest.refresh_token is not None
    assert guest.subscriber_id is None
    with client_for_token(emu, guest.token) as client:
        client.send_message(alice.address_id, "hello from a guest")
        group = emu.group_id_for(alice.address_id, client.my_address_id())
        assert [m["text"] for m in emu.messages(group)] == ["hello from a guest"]
        assert [m.text for m in client.get_messages(alice.address_id).data] == [
            "hello from a guest"
        ]
        assert client.get_address(id=alice.address_id).id == alice.address_id
        # Anything else is refused: another subscriber, a room, their addresses.
        with pytest.raises(PermissionDeniedError):
            client.send_message(bob.address_id, "not allowed")
        with pytest.raises(PermissionDeniedError):
            client.send_message(room.id, "not allowed")
        with pytest.raises(PermissionDeniedError):
            client.get_address(id=bob.address_id)
    assert emu.messages(room.id) == []

    # The refresh of a guest token is a guest token again, with the same scope.
    fresh = refresh_subscriber_token(
        emu.space_url, emu.project_id, emu.api_token, guest.refresh_token
    )
    assert emu.tokens.verify_sat(fresh.token).allowed_addresses == (alice.address_id,)
    with client_for_token(emu, fresh.token) as client, pytest.raises(PermissionDeniedError):
        client.send_message(bob.address_id, "still not allowed")

    # A subscriber's own token has no such limit.
    with emu.client_for(bob) as client:
        client.send_message(alice.address_id, "from bob")
        client.send_message(room.id, "bob in the lobby")


def test_guest_token_arguments_and_refusals(emu: Emulator, alice: EmulatorSubscriber) -> None:
    args = (emu.space_url, emu.project_id, emu.api_token)
    with emu.recording() as rec:
        with pytest.raises(InvalidArgumentError):
            mint_guest_token(*args, [])
        with pytest.raises(InvalidArgumentError):
            mint_guest_token(*args, [alice.address_id] * 11)
        with pytest.raises(InvalidArgumentError):
            mint_guest_token(*args, alice.address_id)  # one string, not a list of them
    assert rec.entries("http") == []  # nothing was sent
    with pytest.raises(ValidationError) as refused:
        mint_guest_token(*args, ["9a0e3a8c-0000-4000-8000-00000000dead"])
    assert refused.value.status == 422
    with pytest.raises(AuthenticationError) as wrong:
        mint_guest_token(emu.space_url, emu.project_id, "wrong-api-token", [alice.address_id])
    assert "wrong-api-token" not in str(wrong.value)
    expire_at = int(time.time()) + 300
    guest = mint_guest_token(*args, [alice.address_id], expire_at=expire_at)
    assert emu.tokens.verify_sat(guest.token).exp == expire_at


def test_an_invite_token_reaches_the_inviters_address_only(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    expires_at = int(time.time()) + 900
    with emu.recording() as rec:
        invite = mint_invite_token(
            emu.space_url, alice.token, alice.address_id, expires_at=expires_at
        )
    (entry,) = [e for e in rec.entries("http") if e["path"] == "/api/fabric/subscriber/invites"]
    assert entry["body"] == {"address_id": alice.address_id, "expires_at": expires_at}
    assert entry["headers"]["Authorization"].startswith("Bearer ")  # the SAT, not Basic
    assert invite.refresh_token is None
    assert emu.tokens.verify_sat(invite.token).exp == expires_at
    with client_for_token(emu, invite.token) as client:
        client.send_message(alice.address_id, "I was invited")
        with pytest.raises(PermissionDeniedError):
            client.send_message(bob.address_id, "not invited here")
    # Only one's own address can be given away, and not by a guest.
    with pytest.raises(PermissionDeniedError):
        mint_invite_token(emu.space_url, alice.token, bob.address_id)
    with pytest.raises(PermissionDeniedError):
        mint_invite_token(emu.space_url, invite.token, alice.address_id)
    with pytest.raises(AuthenticationError) as refused:
        mint_invite_token(emu.space_url, emu.mint_token(alice, ttl=-5), alice.address_id)
    assert alice.token not in str(refused.value)
