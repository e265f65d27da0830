"""A room has one thread, read by both dialects; group messages carry the official fields only.

Issue 18.5: ``add_message(room.id, subtype="log")`` landed where no default (group-dialect)
client reads, an address-dialect client and a default client in the same room never saw each
other's messages, and the group dialect's messages carried ``user_id``, which neither official
type defines (a bot filtering on it works here and echoes itself forever against the service).
Real clients, real sockets, the emulator.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from test_emulator_groups import GROUP_MESSAGE_FIELDS
from test_realtime_support import Collector

from signalwire_chat import ConversationChatMessage
from signalwire_chat.emulator import Emulator, EmulatorSubscriber
from signalwire_chat.emulator._store import Store, group_id_of

TIMEOUT = 10.0
#: The fields of a message in the official v4 type (core/RPCMessages/types/events.ts) and
#: 0.0.1's (core 4.3.1 types/conversation.ts, which spells the sender from_address_id).
GROUP_FIELDS = GROUP_MESSAGE_FIELDS


def _get(emu: Emulator, who: EmulatorSubscriber, path: str) -> list[dict[str, Any]]:
    """One page of a message listing, as ``who`` reads it raw (every subtype, newest first)."""
    reply = requests.get(
        emu.rest_url + path, headers={"Authorization": f"Bearer {who.token}"}, timeout=TIMEOUT
    )
    assert reply.status_code == 200, reply.text
    return list(reply.json()["data"])


def _raw_history(emu: Emulator, who: EmulatorSubscriber, key: str) -> list[dict[str, Any]]:
    return _get(emu, who, f"/api/fabric/conversations/{key}/messages")


def test_a_log_added_to_a_room_is_in_what_the_default_client_reads(
    emu: Emulator, alice: EmulatorSubscriber
) -> None:
    # The testing guide's "chat reads skip log entries" passed without the log ever being
    # in the thread the default client reads.
    room = emu.create_room("lobby")
    with emu.client_for(alice) as client:
        assert client.dialect == "group"
        assert client.get_messages(room.id).data == []  # joins the room's group
        emu.add_message(room.id, subtype="log", kind="call_started")
        client.send_message(room.id, "after the call")
        group = emu.group_id_for(room.id, alice.address_id)
        raw = _raw_history(emu, alice, group)
        assert [(m["subtype"], m["kind"]) for m in raw] == [("chat", None), ("log", "call_started")]
        assert all(m["group_id"] == group for m in raw)
        # The log names a sender address (v4 looks every one up): the room's own.
        assert raw[1]["from_fabric_address_id"] == room.id
        # ... and the chat read skips it.
        assert [m.text for m in client.get_messages(room.id).data] == ["after the call"]


def test_address_and_group_clients_in_one_room_see_each_other(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    room = emu.create_room("lobby")
    heard_by_alice, heard_by_bob = Collector(), Collector()
    with (
        emu.client_for(alice) as default,
        emu.client_for(bob, dialect="address") as old,
    ):
        default.subscribe(room.id, heard_by_alice.on_message)
        old.join(room.id)  # the address dialect's subscribe does not join
        old.subscribe(room.id, heard_by_bob.on_message)
        default.send_message(room.id, "from the group dialect")
        old.send_message(room.id, "from the address dialect")
        # Live, each in its own dialect's shape.
        assert heard_by_alice.wait_for(2) == ["from the group dialect", "from the address dialect"]
        assert heard_by_bob.wait_for(2) == ["from the group dialect", "from the address dialect"]
        group = emu.group_id_for(room.id, alice.address_id)
        assert {m.group_id for m in heard_by_alice.messages} == {group}
        assert {m.conversation_id for m in heard_by_bob.messages} == {room.id}
        assert [m.is_author for m in heard_by_alice.messages] == [True, False]
        assert [m.is_author for m in heard_by_bob.messages] == [False, True]
        # And in the history, whichever dialect reads it.
        both = ["from the address dialect", "from the group dialect"]
        assert [m.text for m in default.iter_messages(room.id)] == both
        assert [m.text for m in old.iter_messages(room.id)] == both


def test_messages_names_the_one_thread_of_a_room(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    room = emu.create_room("lobby")
    group = emu.group_id_for(room.id, alice.address_id)
    emu.join_group(alice, [room.id])
    in_group = emu.send_as(alice, room.id, "group")
    in_address = emu.send_as(bob, room.id, "address", dialect="address")
    by_room, by_group = emu.messages(room.id), emu.messages(group)
    assert by_room.thread == by_group.thread == room.id
    assert by_room == by_group == [in_group, in_address]  # each as it was written
    assert "group_id" in by_room[0]
    assert "group_id" not in by_room[1]
    as_group = emu.messages(room.id, dialect="group")
    assert as_group.dialect == "group"
    assert {m["group_id"] for m in as_group} == {group}
    assert all(set(m) == GROUP_FIELDS for m in as_group)
    as_address = emu.messages(group, dialect="address")
    assert {m["conversation_id"] for m in as_address} == {room.id}
    assert [m["user_id"] for m in as_address] == [alice.id, bob.id]
    assert "thread=" in repr(by_room)
    # A group of subscribers is a thread of its own; an address's inbox another.
    pair = emu.join_group(alice, [bob.address_id])
    assert emu.messages(pair).thread == pair
    assert emu.messages(bob.address_id).thread == bob.address_id


def test_group_messages_carry_the_official_fields_and_no_user_id(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    pair = emu.join_group(alice, [bob.address_id])
    sent = emu.send_as(alice, bob.address_id, "hi bob")
    assert set(sent) == GROUP_FIELDS
    (listed,) = _raw_history(emu, bob, pair)
    assert set(listed) == GROUP_FIELDS
    assert listed["from_fabric_address_id"] == listed["from_address_id"] == alice.address_id
    # The address dialect's messages keep the sending subscriber.
    room = emu.create_room("lobby")
    emu.join(bob, room.id)
    emu.send_as(alice, room.id, "old wire", dialect="address")
    (old,) = _raw_history(emu, bob, room.id)
    assert old["user_id"] == alice.id
    assert old["conversation_id"] == room.id
    assert "group_id" not in old


def test_all_my_messages_show_each_in_the_dialect_i_joined_in(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber
) -> None:
    room = emu.create_room("lobby")
    emu.join_group(alice, [room.id])
    emu.join(bob, room.id)
    emu.send_as(alice, room.id, "one")
    emu.send_as(bob, room.id, "two", dialect="address")

    def mine(who: EmulatorSubscriber) -> list[dict[str, Any]]:
        return _get(emu, who, "/api/fabric/messages")

    group = emu.group_id_for(room.id, alice.address_id)
    assert [(m["text"], m["group_id"]) for m in mine(alice)] == [("two", group), ("one", group)]
    assert [(m["text"], m["conversation_id"]) for m in mine(bob)] == [
        ("two", room.id),
        ("one", room.id),
    ]


def test_an_older_database_keeps_a_rooms_group_messages_in_the_rooms_thread(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "old.db")
    store = Store(path)
    try:
        _resource, room = store.create_room("lobby", now=1.0)
    finally:
        store.close()
    # What an older emulator wrote: the room's group messages in a thread of their own.
    group = group_id_of((), room["id"])
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO messages (id, conversation_id, user_id, ts, text, details, metadata, type,"
        " subtype, group_id) VALUES ('m1', ?, 'u1', 1.5, 'kept', '{}', '{}', 'message', 'chat', ?)",
        (group, group),
    )
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        (message,) = store.all_messages(room["id"])
        assert (message["text"], message["group_id"]) == ("kept", group)
    finally:
        store.close()


@pytest.mark.parametrize("dialect", ["group", "address"])
def test_an_edit_reaches_both_dialects(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber, dialect: str
) -> None:
    room = emu.create_room("lobby")
    updates: list[str] = []
    done = threading.Event()

    def on_update(message: ConversationChatMessage) -> None:
        updates.append(message.text)
        done.set()

    with emu.client_for(bob, dialect=dialect) as client:
        client.join(room.id)
        client.subscribe(room.id, lambda _m: None, on_update=on_update)
        other = "address" if dialect == "group" else "group"
        sent = emu.send_as(alice, room.id, "before", dialect=other)  # type: ignore[arg-type]
        emu.edit_message(sent["id"], text="after")
        assert done.wait(TIMEOUT)
    assert updates == ["after"]


@pytest.mark.parametrize("dialect", ["group", "address"])
def test_an_echo_bot_that_skips_its_own_address_never_answers_itself(
    emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber, dialect: str
) -> None:
    # The scripts-and-bots guide's bot skipped msg.user_id == me: the service's group
    # dialect has no user_id, so it answered itself forever; the emulator hid that.
    room = emu.create_room("lobby")
    with (
        emu.client_for(alice, dialect=dialect) as bot,
        emu.client_for(bob, dialect=dialect) as human,
    ):
        bot.join(room.id)
        human.join(room.id)
        me = bot.my_address_id()
        stream = bot.stream_messages(room.id, timeout=TIMEOUT)
        heard = Collector()
        human.subscribe(room.id, heard.on_message)

        def run() -> None:
            for msg in stream:
                if msg.from_address_id != me:  # as the guide's bot does
                    bot.send_message(room.id, f"echo: {msg.text}")
                    if msg.text == "stop":
                        return

        runner = threading.Thread(target=run)
        runner.start()
        human.send_message(room.id, "hi")
        assert heard.wait_for(2)[-1] == "echo: hi"
        # The bot reads its own echo before "stop": had it answered itself, that answer
        # would come before "echo: stop".
        human.send_message(room.id, "stop")
        assert heard.wait_for(4) == ["hi", "echo: hi", "stop", "echo: stop"]
        runner.join(TIMEOUT)
        assert not runner.is_alive()
