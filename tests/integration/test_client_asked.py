"""Errors say what the caller asked for first, then the request behind it that failed.

A read or a send of an address makes requests of its own in the group dialect (the
subscriber lookup, the group join). When one of them fails, the error must not read as if the
caller had called that endpoint: ``cannot read the history of '...': no such address``, then
the request. Its class and attributes stay those of the failure. A value that cannot be an
address id (not a UUID) is refused before any request.
"""

from __future__ import annotations

import uuid

import pytest

from signalwire_chat import (
    ChatClient,
    Group,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    RequestTimeoutError,
    ServerError,
)
from signalwire_chat.emulator import Emulator, EmulatorSubscriber


@pytest.fixture
def sub(signalwire_emulator: Emulator) -> EmulatorSubscriber:
    return signalwire_emulator.create_subscriber()


def client_of(emu: Emulator, sub: EmulatorSubscriber, **options: object) -> ChatClient:
    return ChatClient(
        sub.token,
        rest_url=emu.rest_url,
        relay_url=emu.relay_url,
        max_retries=0,
        **options,  # type: ignore[arg-type]
    )


def test_an_unknown_address_is_named_as_asked_not_as_the_join(
    signalwire_emulator: Emulator, sub: EmulatorSubscriber
) -> None:
    unknown = str(uuid.uuid4())
    with client_of(signalwire_emulator, sub) as client:
        with pytest.raises(NotFoundError) as read:
            client.get_messages(unknown)
        with pytest.raises(NotFoundError) as lazily:
            next(client.iter_messages(unknown))
        with pytest.raises(NotFoundError) as sent:
            client.send_message(unknown, "hi")
        with pytest.raises(NotFoundError) as followed:
            client.subscribe(unknown, print)
    for info, asked in (
        (read, "cannot read the history of"),
        (lazily, "cannot read the history of"),
        (sent, "cannot send to"),
        (followed, "cannot subscribe to"),
    ):
        text = str(info.value)
        assert f"{asked} '{unknown}': no such address" in text
        assert text.index(asked) < text.index("/conversations/join")  # the request comes second
        assert info.value.status == 404  # the same error, with its attributes
        assert info.value.method == "POST"
        assert isinstance(info.value.__cause__, NotFoundError)


def test_a_slow_lookup_says_what_was_asked(
    signalwire_emulator: Emulator, sub: EmulatorSubscriber
) -> None:
    emu = signalwire_emulator
    room = emu.create_room("slow")
    emu.delay_next(3.0, path_prefix="/api/fabric/subscriber/info")
    with (
        client_of(emu, sub, timeout=(2.0, 0.3)) as client,
        pytest.raises(RequestTimeoutError) as info,
    ):
        client.get_messages(room.id)
    text = str(info.value)
    assert text.startswith(f"cannot read the history of '{room.id}': ")
    assert "subscriber/info" in text


def test_a_failure_of_the_read_itself_is_not_relabelled(
    signalwire_emulator: Emulator, sub: EmulatorSubscriber
) -> None:
    # The other side: the request the caller made fails as itself.
    emu = signalwire_emulator
    room = emu.create_room("failing")
    with client_of(emu, sub) as client:
        client.join(room.id)
        emu.fail_next(500, method="GET", path_prefix="/api/fabric/conversations/", times=1)
        with pytest.raises(ServerError) as info:
            client.get_messages(room.id)
    assert "cannot read" not in str(info.value)
    assert "/messages" in str(info.value)


@pytest.mark.parametrize("dialect", ["group", "address"])
def test_a_value_that_is_not_an_address_id_is_refused_before_any_request(
    signalwire_emulator: Emulator, sub: EmulatorSubscriber, dialect: str
) -> None:
    emu = signalwire_emulator
    with client_of(emu, sub, dialect=dialect) as client:
        before = len(emu.recording().entries("http"))
        for call in (
            lambda: client.get_messages("lobby"),
            lambda: client.iter_messages("lobby"),
            lambda: client.send_message("lobby", "hi"),
            lambda: client.join("lobby"),
            lambda: client.subscribe("lobby", print),
        ):
            with pytest.raises(InvalidArgumentError, match="'lobby' is not an address id"):
                call()
        assert len(emu.recording().entries("http")) == before  # nothing was sent


def test_group_ids_still_work(signalwire_emulator: Emulator, sub: EmulatorSubscriber) -> None:
    emu = signalwire_emulator
    bob = emu.create_subscriber()
    group = emu.join_group(sub, [bob.address_id])
    emu.send_as(bob, None, "hello group", group_id=group)
    with client_of(emu, sub) as client:
        assert [m.text for m in client.get_messages(Group(id=group))] == ["hello group"]
        client.send_message(Group(id=group), "back")
    assert [m["text"] for m in emu.messages(group)] == ["hello group", "back"]


@pytest.mark.parametrize("dialect", ["group", "address"])
def test_check_target_says_what_a_chat_method_would_without_a_request(
    signalwire_emulator: Emulator, sub: EmulatorSubscriber, dialect: str
) -> None:
    emu = signalwire_emulator
    address = str(uuid.uuid4())
    with client_of(emu, sub, dialect=dialect) as client:
        before = len(emu.recording().entries("http"))
        assert client.check_target(address) == address
        with pytest.raises(InvalidArgumentError, match="'lobby' is not an address id"):
            client.check_target("lobby")
        with pytest.raises(InvalidArgumentError, match=r"^to 'lobby' is not"):
            client.check_target("lobby", "to")  # the caller's own argument is named
        with pytest.raises(InvalidArgumentTypeError, match="not int"):
            client.check_target(7)
        if dialect == "group":
            group = Group(id="g-1")
            assert client.check_target(group) is group
            with pytest.raises(InvalidArgumentError, match=r"group\.from_address_id"):
                client.check_target(Group(id="g-1", from_address_id="a\nb"))
        else:
            with pytest.raises(InvalidArgumentError, match="dialect='group'"):
                client.check_target(Group(id="g-1"))
        assert len(emu.recording().entries("http")) == before  # nothing was sent
