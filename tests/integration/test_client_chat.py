"""ChatClient against the emulator over loopback: every method in both wire dialects, and chat
paging both ways."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import NamedTuple

import pytest

from signalwire_chat import (
    Address,
    ChatClient,
    Conversation,
    ConversationChatMessage,
    Group,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    SubscriberInfo,
)
from signalwire_chat.emulator import Emulator


class Alice(NamedTuple):
    emu: Emulator
    client: ChatClient
    own: str  # alice's own address
    dialect: str

    def conversation(self, address_id: str) -> str:
        """Where the emulator keeps alice's conversation with ``address_id``."""
        if self.dialect == "address":
            return address_id
        return self.emu.group_id_for(address_id, self.own)


@pytest.fixture(params=["group", "address"])
def alice(signalwire_emulator: Emulator, request: pytest.FixtureRequest) -> Iterator[Alice]:
    emu = signalwire_emulator
    sub = emu.create_subscriber(reference="alice@example.test")
    with ChatClient(
        sub.token, rest_url=emu.rest_url, relay_url=emu.relay_url, dialect=request.param
    ) as client:
        yield Alice(emu, client, sub.address_id, request.param)


def _fill(alice: Alice, room: str, chats: int, noise: int) -> list[str]:
    """Send `chats` chat messages with `noise` non-chat messages after each; newest first."""
    texts = []
    for i in range(chats):
        alice.client.send_message(room, f"chat {i}")
        texts.append(f"chat {i}")
        for _ in range(noise):
            alice.emu.add_message(alice.conversation(room), subtype="log", kind="call_started")
    return texts[::-1]


def test_every_method(alice: Alice) -> None:
    emu, client, own_address, dialect = alice
    room = emu.create_room("general", display_name="General")
    joined = client.join(room.id)
    conversation = alice.conversation(room.id)
    if dialect == "group":
        assert joined.group_id == conversation
        assert set(joined.address_ids) == {room.id, own_address}
        assert joined.from_address_id == own_address
    else:
        assert joined.conversation_id == room.id
    sent = client.send_message(room.id, "hello", metadata={"m": 1}, details={"d": [1]})
    assert (sent.group_id or sent.conversation_id) == conversation
    assert sent.text == "hello"
    stored = emu.messages(conversation)[-1]
    assert stored["metadata"] == {"m": 1}
    assert stored["details"] == {"d": [1]}
    page = client.get_messages(room.id)
    assert [m.text for m in page.data] == ["hello"]
    assert isinstance(page.data[0], ConversationChatMessage)
    assert page.data[0].metadata == {"m": 1}
    assert not page.has_next
    assert not page.has_prev
    assert page.next_page() is None
    assert page.prev_page() is None
    conversations = client.get_conversations()
    assert all(isinstance(c, Conversation) for c in conversations)
    assert conversation in {c.id for c in conversations.iter_items()}
    rooms = client.get_addresses(type="room", sort_by="name", sort_order="asc")
    assert [a.name for a in rooms] == ["general"]
    assert isinstance(rooms.data[0], Address)
    assert client.get_address(id=room.id).name == "general"
    assert client.get_address(name="general").id == room.id
    info = client.get_subscriber_info()
    assert isinstance(info, SubscriberInfo)
    assert info.email == "alice@example.test"
    assert [a.id for a in info.fabric_addresses] == [own_address]


def test_metadata_and_details_are_omitted_when_not_given(alice: Alice) -> None:
    emu, client, own, dialect = alice
    room = emu.create_room("quiet")
    with emu.recording(redact=True) as rec:
        client.send_message(room.id, "plain")
    bodies = [e.get("body") for e in rec.entries("http") if e.get("method") == "POST"]
    if dialect == "address":
        assert bodies == [{"conversation_id": room.id, "text": "plain"}]
    else:
        group = alice.conversation(room.id)
        assert bodies == [
            {"from_fabric_address_id": own, "fabric_address_ids": [room.id, own]},
            {"group_id": group, "from_fabric_address_id": own, "text": "plain"},
        ]


def test_unknown_address_and_non_member(alice: Alice) -> None:
    emu, client, _, dialect = alice
    with pytest.raises(NotFoundError):
        client.get_address(id="no-such-address")
    with pytest.raises(NotFoundError):
        client.get_address(name="no-such-name")
    if dialect == "address":
        room = emu.create_room("private")
        with pytest.raises(PermissionDeniedError):
            client.get_messages(room.id)
        return
    # The group dialect: a group of two other subscribers is theirs alone.
    bob, carol = emu.create_subscriber(), emu.create_subscriber()
    theirs = Group(id=emu.join_group(bob, [carol.address_id]))
    with pytest.raises(PermissionDeniedError):
        client.get_messages(theirs)
    with pytest.raises(PermissionDeniedError):
        client.send_message(theirs, "let me in")
    with pytest.raises(NotFoundError):
        client.send_message(str(uuid.uuid4()), "hi")  # an address id the service never made
    with pytest.raises(InvalidArgumentError):
        client.send_message("no-such-address", "hi")  # not an address id at all


@pytest.mark.parametrize(("page_size", "noise"), [(1, 0), (3, 5), (7, 2), (10, 9), (25, 1)])
def test_chat_pages_walk_both_ways(alice: Alice, page_size: int, noise: int) -> None:
    emu, client = alice.emu, alice.client
    room = emu.create_room(f"r{page_size}-{noise}")
    expected = _fill(alice, room.id, 23, noise)
    forward = []
    page = client.get_messages(room.id, page_size=page_size)
    assert not page.has_prev
    while True:
        forward.append(page)
        assert len(page.data) == page_size or not page.has_next
        nxt = page.next_page()
        assert page.has_next == (nxt is not None)
        if nxt is None:
            break
        assert nxt.has_prev
        page = nxt
    assert [m.text for p in forward for m in p.data] == expected
    # prev is the exact inverse of next: same items, same order, none skipped.
    backward = [page]
    while True:
        prev = page.prev_page()
        assert page.has_prev == (prev is not None)
        if prev is None:
            break
        assert prev.has_next
        backward.append(prev)
        page = prev
    backward.reverse()
    assert [[m.id for m in p.data] for p in backward] == [[m.id for m in p.data] for p in forward]
    assert not backward[0].has_prev


def test_has_next_is_false_when_only_non_chat_remains(alice: Alice) -> None:
    emu, client = alice.emu, alice.client
    room = emu.create_room("tail")
    client.join(room.id)
    for _ in range(30):
        emu.add_message(alice.conversation(room.id), subtype="log")
    client.send_message(room.id, "one")
    client.send_message(room.id, "two")
    page = client.get_messages(room.id, page_size=2)
    assert [m.text for m in page] == ["two", "one"]
    assert not page.has_next


def test_raw_pages_are_larger_than_chat_pages(alice: Alice) -> None:
    emu, client = alice.emu, alice.client
    room = emu.create_room("sparse")
    _fill(alice, room.id, 12, 9)  # 120 messages, 1 in 10 is chat
    with emu.recording() as rec:
        page = client.get_messages(room.id, page_size=3)
        while page is not None:
            page = page.next_page()
    gets = [e for e in rec.entries("http") if e.get("method") == "GET"]
    # The official client would need one request per 3 raw messages here (40 requests).
    assert len(gets) <= 3


def test_iter_messages_is_lazy_and_complete(alice: Alice) -> None:
    emu, client = alice.emu, alice.client
    room = emu.create_room("iter")
    expected = _fill(alice, room.id, 15, 2)
    with emu.recording() as rec:
        iterator = client.iter_messages(room.id, page_size=4)
        assert rec.entries("http") == []
        assert [m.text for m in iterator] == expected
    assert [m.text for m in client.iter_messages(room.id, page_size=4, limit=5)] == expected[:5]
    assert list(client.iter_messages(room.id, limit=0)) == []


def test_only_chat_messages_of_that_address(alice: Alice) -> None:
    emu, client = alice.emu, alice.client
    room = emu.create_room("mixed")
    other = emu.create_room("other")
    client.send_message(other.id, "elsewhere")
    client.send_message(room.id, "here")
    emu.add_message(alice.conversation(room.id), subtype="log", text="a log with text")
    assert [m.text for m in client.iter_messages(room.id)] == ["here"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_uses_a_fresh_pool(alice: Alice) -> None:
    client, own = alice.client, alice.own
    client.get_subscriber_info()
    transport = client._rest._transport
    assert transport is not None
    parent_session = transport._session
    pid = os.fork()
    if pid == 0:  # the child: exit code says what happened
        code = 1
        try:
            info = client.get_subscriber_info()
            fresh = transport._session is not parent_session
            code = 0 if (fresh and info.fabric_addresses[0].id == own) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert transport._session is parent_session
    client.get_subscriber_info()  # the parent's pool still works
