"""The group dialect against the emulator: my address, the join cache, group chats, the inbox,
edits, and what the client refuses before sending."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_realtime_support import FAST, Clients, Collector, wait_until

from signalwire_chat import (
    ChatClient,
    ConversationChatMessage,
    Group,
    InvalidArgumentError,
    NoAddressError,
    PermissionDeniedError,
    RealtimeOptions,
)
from signalwire_chat.emulator import Emulator

JOIN = "/api/fabric/conversations/join"


def _posts(rec: Any, path: str) -> list[dict[str, Any]]:
    return [e for e in rec.entries("http") if e.get("method") == "POST" and e.get("path") == path]


class People(Clients):
    """Three subscribers with a client each (group dialect), closed at the end."""

    def __init__(self, emu: Emulator) -> None:
        super().__init__(emu, realtime=RealtimeOptions(**FAST))
        self.alice = emu.create_subscriber(reference="alice@example.test")
        self.bob = emu.create_subscriber(reference="bob@example.test")
        self.carol = emu.create_subscriber(reference="carol@example.test")

    def client(self, who: Any, **kwargs: Any) -> ChatClient:
        return self.make(who.token, **kwargs)


@pytest.fixture
def people(signalwire_emulator: Emulator) -> Iterator[People]:
    signalwire_emulator.set_ping_interval(0.3)
    p = People(signalwire_emulator)
    yield p
    p.close()


def test_my_address_is_looked_up_once_and_can_be_given(people: People) -> None:
    emu = people.emu
    alice = people.client(people.alice)
    with emu.recording() as rec:
        for _ in range(3):
            assert alice.my_address_id() == people.alice.address_id
        alice.send_message(people.bob.address_id, "one")
        alice.send_message(people.bob.address_id, "two")
    gets = [e for e in rec.entries("http") if e.get("method") == "GET"]
    assert [e["path"] for e in gets] == ["/api/fabric/subscriber/info"]
    assert len(_posts(rec, JOIN)) == 1  # the second send is one request
    assert len(_posts(rec, "/api/fabric/messages")) == 2
    given = people.client(people.alice, from_address_id=people.alice.address_id)
    with emu.recording() as rec:
        given.send_message(people.bob.address_id, "three")
    assert not [e for e in rec.entries("http") if e.get("method") == "GET"]


def test_a_foreign_from_address_is_refused_by_the_service(people: People) -> None:
    mallory = people.client(people.alice, from_address_id=people.bob.address_id)
    with pytest.raises(PermissionDeniedError):
        mallory.send_message(people.carol.address_id, "as bob")
    assert (
        people.emu.messages(people.emu.group_id_for(people.bob.address_id, people.carol.address_id))
        == []
    )


def test_32_threads_sending_to_a_new_address_make_one_join(people: People) -> None:
    emu = people.emu
    alice = people.client(people.alice, max_connections=32)
    alice.my_address_id()
    start = threading.Barrier(32)
    failures: list[BaseException] = []

    def send(i: int) -> None:
        try:
            start.wait(10)
            alice.send_message(people.bob.address_id, f"m{i}")
        except BaseException as exc:  # reported by the assertion below
            failures.append(exc)

    with emu.recording() as rec:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert len(_posts(rec, JOIN)) == 1
    group = emu.group_id_for(people.alice.address_id, people.bob.address_id)
    stored = sorted(m["text"] for m in emu.messages(group))
    assert stored == sorted(f"m{i}" for i in range(32))


def test_the_same_pair_is_the_same_group_from_either_side(people: People) -> None:
    alice, bob = people.client(people.alice), people.client(people.bob)
    a = alice.join(people.bob.address_id)
    b = bob.join(people.alice.address_id)
    assert a.group_id == b.group_id
    assert a.group is not None
    assert set(a.group.address_ids) == {people.alice.address_id, people.bob.address_id}
    alice.send_message(people.bob.address_id, "hi bob")
    assert [m.text for m in bob.iter_messages(people.alice.address_id)] == ["hi bob"]
    got = bob.get_messages(people.alice.address_id)
    assert got.group_id == a.group_id
    assert got.data[0].from_address_id == people.alice.address_id


def test_a_group_chat_of_three(people: People) -> None:
    alice, bob = people.client(people.alice), people.client(people.bob)
    group = alice.join_group([people.bob.address_id, people.carol.address_id])
    assert isinstance(group, Group)
    assert group.from_address_id == people.alice.address_id
    assert set(group.address_ids) == {
        people.alice.address_id,
        people.bob.address_id,
        people.carol.address_id,
    }
    # Order and duplicates do not matter; bob reaches the same group from his side.
    again = bob.join_group(
        [people.carol.address_id, people.alice.address_id, people.carol.address_id]
    )
    assert again.id == group.id
    got = Collector()
    with bob.subscribe(again, got.on_message, on_error=got.on_error) as sub:
        assert sub.group_id == group.id
        assert sub.address_id is None
        alice.send_message(group, "to both", metadata={"k": 1})
        assert got.wait_for(1) == ["to both"]
    assert got.messages[0].group_id == group.id
    assert got.messages[0].metadata == {"k": 1}
    assert [m.text for m in bob.get_messages(again)] == ["to both"]
    assert [m.text for m in alice.iter_messages(group, limit=1)] == ["to both"]
    # The pair's own conversation is another group.
    assert alice.join(people.bob.address_id).group_id != group.id


def test_the_inbox_takes_every_group_and_fills_gaps_after_a_drop(people: People) -> None:
    emu = people.emu
    alice, bob, carol = (people.client(p) for p in (people.alice, people.bob, people.carol))
    bob.join(people.alice.address_id)
    carol.join(people.alice.address_id)
    got = Collector()
    alice.subscribe_inbox(got.on_message, on_error=got.on_error)
    bob.send_message(people.alice.address_id, "from bob")
    carol.send_message(people.alice.address_id, "from carol")
    assert got.wait_for(2) == ["from bob", "from carol"]
    emu.drop_connections()
    with emu.half_open():
        bob.send_message(people.alice.address_id, "while away 1")
        carol.send_message(people.alice.address_id, "while away 2")
    assert got.wait_for(4) == ["from bob", "from carol", "while away 1", "while away 2"]
    bob.send_message(people.alice.address_id, "live again")
    assert got.wait_for(5)[-1] == "live again"
    ids = [m.id for m in got.messages]
    assert len(ids) == len(set(ids))
    assert got.errors == []
    assert {m.group_id for m in got.messages} == {
        emu.group_id_for(people.alice.address_id, people.bob.address_id),
        emu.group_id_for(people.alice.address_id, people.carol.address_id),
    }
    inbox = [m.text for m in alice.iter_inbox()]
    assert inbox[0] == "live again"
    assert set(inbox) == {m.text for m in got.messages}


def test_own_messages_arrive_marked_as_authored(people: People) -> None:
    alice = people.client(people.alice)
    got = Collector()
    alice.subscribe(people.bob.address_id, got.on_message, on_error=got.on_error)
    alice.send_message(people.bob.address_id, "mine")
    people.emu.send_as(people.bob, people.alice.address_id, "theirs")
    assert got.wait_for(2) == ["mine", "theirs"]
    assert [m.is_author for m in got.messages] == [True, False]


def test_an_edit_goes_to_on_update_never_to_on_message(people: People) -> None:
    emu = people.emu
    alice = people.client(people.alice)
    got = Collector()
    updates: list[ConversationChatMessage] = []
    alice.subscribe(
        people.bob.address_id, got.on_message, on_error=got.on_error, on_update=updates.append
    )
    sent = emu.send_as(people.bob, people.alice.address_id, "draft")
    assert got.wait_for(1) == ["draft"]
    emu.edit_message(sent["id"], text="final")
    assert wait_until(lambda: len(updates) == 1)
    assert updates[0].id == sent["id"]
    assert updates[0].text == "final"
    emu.send_as(people.bob, people.alice.address_id, "after")
    assert got.wait_for(2) == ["draft", "after"]  # the edit was not delivered as new
    # Without on_update, an edit is simply not delivered.
    plain = Collector()
    alice.subscribe(people.bob.address_id, plain.on_message)
    emu.edit_message(sent["id"], text="again")
    emu.send_as(people.bob, people.alice.address_id, "last")
    assert plain.wait_for(1) == ["last"]


def test_my_own_address_is_refused_before_anything_is_sent(people: People) -> None:
    emu = people.emu
    alice = people.client(people.alice)
    alice.my_address_id()
    me = people.alice.address_id
    with emu.recording() as rec:
        for call in (
            lambda: alice.join(me),
            lambda: alice.send_message(me, "to me"),
            lambda: alice.get_messages(me),
            lambda: alice.subscribe(me, print),
            lambda: alice.join_group([me, me]),
        ):
            with pytest.raises(InvalidArgumentError, match="own address"):
                call()
    assert rec.entries("http") == []
    assert alice.subscriptions == ()


def test_groups_need_the_group_dialect(people: People) -> None:
    old = people.client(people.alice, dialect="address")
    with pytest.raises(InvalidArgumentError, match="dialect='group'"):
        old.join_group([people.bob.address_id])
    with pytest.raises(InvalidArgumentError, match="dialect='group'"):
        old.send_message(Group(id="g"), "x")
    with pytest.raises(InvalidArgumentError):
        ChatClient("a.b.c", rest_url="http://127.0.0.1:1", dialect="auto")
    with pytest.raises(InvalidArgumentError):
        ChatClient("a.b.c", rest_url="http://127.0.0.1:1", dialect="address", from_address_id="x")


def test_a_subscriber_without_an_address_gets_a_clear_error(people: People) -> None:
    emu = people.emu
    info = {"id": "s-without", "email": "none@example.test", "fabric_addresses": []}
    emu.fail_next(200, method="GET", path_prefix="/api/fabric/subscriber/info", body=info)
    alice = people.client(people.alice)
    with pytest.raises(NoAddressError, match="from_address_id"):
        alice.send_message(people.bob.address_id, "hi")
