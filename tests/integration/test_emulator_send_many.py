"""``Emulator.send_many``: a burst of chat messages, stored and pushed live like ``send_as``'s."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_realtime_support import FAST, Clients, Collector

from signalwire_chat import Group, RealtimeOptions
from signalwire_chat.emulator import Emulator

# More than the emulator's event window (100 unacknowledged events per session), in batches
# that do not divide it: events queue behind the window while the burst goes on.
BURST, BATCH = 450, 64


def _events(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``conversation.message`` events among the relay frames the emulator sent."""
    found = []
    for entry in entries:
        if entry["kind"] != "ws_send":
            continue
        frame = entry["frame"]
        frame = json.loads(frame) if isinstance(frame, str) else frame
        params = frame.get("params", {})
        if params.get("event_type") == "conversation.message":
            found.append(params)
    return found


def test_a_burst_reaches_every_member_live_in_order_and_stays_in_history(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    emu.set_ping_interval(0.3)
    alice, bob, carol = (emu.create_subscriber(f"{n}@example.test") for n in "abc")
    room = emu.create_room("burst")
    group = emu.join_group(alice, [room.id])
    assert emu.join_group(bob, [room.id]) == emu.join_group(carol, [room.id]) == group
    clients = Clients(emu, realtime=RealtimeOptions(**FAST))
    try:
        got = {}
        for who in (alice, bob, carol):  # bob, the sender, gets his own messages too
            got[who.id] = Collector()
            clients.make(who.token).subscribe(Group(id=group), got[who.id].on_message)
        texts = [f"burst {i}" for i in range(BURST)]
        with emu.recording() as rec:
            sent = emu.send_many(bob, None, texts, group_id=group, batch_size=BATCH)
            for collector in got.values():
                assert collector.wait_for(BURST, timeout=60) == texts
            entries = list(rec)
    finally:
        clients.close()

    assert [m["text"] for m in sent] == texts
    assert {(m["group_id"], m["from_fabric_address_id"], m["subtype"]) for m in sent} == {
        (group, bob.address_id, "chat")
    }
    stored = emu.messages(group)
    assert [m["id"] for m in stored] == [m["id"] for m in sent]  # in the history, in order
    # Live relay events, one per message and member, with no HTTP at all (no REST post, and
    # no history read by a client that missed an event).
    assert [e for e in entries if e["kind"] == "http"] == []
    events = _events(entries)
    assert len(events) == 3 * BURST
    for member in (alice, bob, carol):
        mine = [e for e in events if _subscriber_of(emu, e) == member.id]
        assert [e["params"]["text"] for e in mine] == texts
        assert {e["is_author"] for e in mine} == {member is bob}
    assert all(s.unacked == 0 and s.queued == 0 for s in emu.hub.sessions())


def _subscriber_of(emu: Emulator, event: dict[str, Any]) -> str:
    """The subscriber whose session an event went to (its channel names the session)."""
    channel = event["event_channel"]
    for session in emu.hub.sessions():
        if session.protocol in channel:
            return session.subscriber_id
    raise AssertionError(f"no session for {channel!r}")


def test_the_address_dialect_burst_goes_to_the_room_conversation(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.test")
    room = emu.create_room("old-style")
    sent = emu.send_many(alice, room.id, ["one", "two", "three"], dialect="address", batch_size=2)
    assert [(m["conversation_id"], m["text"]) for m in sent] == [
        (room.id, "one"),
        (room.id, "two"),
        (room.id, "three"),
    ]
    assert all("group_id" not in m for m in sent)
    assert [m["id"] for m in emu.messages(room.id)] == [m["id"] for m in sent]
    assert emu.send_many(alice, room.id, [], dialect="address") == []


def test_a_refused_burst_sends_nothing(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    alice, bob, carol = (emu.create_subscriber(f"{n}@example.test") for n in "abc")
    group = emu.join_group(alice, [bob.address_id])
    refusals: list[tuple[type[Exception], dict[str, Any]]] = [
        (TypeError, {"texts": "one string"}),
        (TypeError, {"texts": ["fine", 2]}),
        (ValueError, {"batch_size": 0}),
        (ValueError, {"batch_size": 1001}),
        (ValueError, {"dialect": "smoke signals"}),
        (PermissionError, {"subscriber": carol}),  # not in the group
        (KeyError, {"group_id": "0" * 32}),
    ]
    for error, change in refusals:
        args: dict[str, Any] = {"subscriber": alice, "texts": ["a", "b"], "group_id": group}
        with pytest.raises(error):
            emu.send_many(address_id=None, **{**args, **change})
    with pytest.raises(ValueError, match="own address"):
        emu.send_many(alice, alice.address_id, ["to myself"])
    assert emu.messages(group) == []
    # and the same arguments, fixed, do send
    assert [m["text"] for m in emu.send_many(bob, None, ["a", "b"], group_id=group)] == ["a", "b"]
    assert [m["text"] for m in emu.messages(group)] == ["a", "b"]
