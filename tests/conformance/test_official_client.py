"""The official @signalwire/js 3.28.0 client, run in Node, against the emulator.

Each test drives the unmodified SDK through tests/conformance/js/harness.mjs and asserts on what
the SDK returns to its user. A failure here is a bug in the emulator (or in our Python client for
the cross tests), never something to work around in the harness.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from ._common import wait_connected
from .conftest import OfficialClient, obs_is

pytestmark = pytest.mark.conformance

RECONNECT_TIMEOUT = 12.0  # the SDK waits a random 1-4 s before reconnecting


def chat_texts(pages: list[dict[str, Any]]) -> list[list[str]]:
    return [[m["text"] for m in page["data"]] for page in pages]


def test_connects_with_the_emulators_token(signalwire_emulator: Any, official_client: Any) -> None:
    alice = signalwire_emulator.create_subscriber(reference="alice@example.com")
    client: OfficialClient = official_client(signalwire_emulator, alice.token)

    observations = client.observations
    assert not [o for o in observations if o["obs"] == "unexpected_url"]
    created = [o for o in observations if o["obs"] == "ws_created"]
    assert len(created) == 1
    assert created[0]["protocols"] is None
    connected = [o for o in observations if o["obs"] == "connected"]
    assert len(connected) == 1
    assert connected[0]["error"] is None
    assert connected[0]["protocol"]
    assert connected[0]["requested_protocol"] is None


def test_join_send_and_read_back(signalwire_emulator: Any, official_client: Any) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber(reference="alice@example.com")
    room = emu.create_room("lobby")
    client: OfficialClient = official_client(emu, alice.token)

    joined = client.call("join", address_id=room.id)
    # 3.28's types say {"table": {...}}; the SDK hands the body through untouched.
    assert joined["table"]["conversation_id"] == room.id

    sent = client.call("send", address_id=room.id, text="hello from the official client")
    assert sent["table"]["conversation_id"] == room.id
    assert sent["table"]["text"] == "hello from the official client"

    (page,) = client.call("get_messages", address_id=room.id)
    assert page["hasNext"] is False
    (message,) = page["data"]
    assert message["text"] == "hello from the official client"
    assert message["subtype"] == "chat"
    assert message["type"] == "message"
    assert message["conversation_id"] == room.id
    assert message["user_id"] == alice.id
    assert isinstance(message["ts"], float)
    assert message["details"] == {}


def test_get_messages_pages_across_non_chat_messages(
    signalwire_emulator: Any, official_client: Any
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber(reference="alice@example.com")
    room = emu.create_room("history")
    client: OfficialClient = official_client(emu, alice.token)

    # Oldest first. With raw pages of 3 (newest first) this gives
    # [c9 L c8] [c7 c6 c5] [L L L] [c4 L L] [c3 c2 c1] [c0]: the first chat page needs a second
    # raw page and carries two chat messages over, the second skips a page of logs.
    plan = (
        "c0",
        "c1",
        "c2",
        "c3",
        "L",
        "L",
        "c4",
        "L",
        "L",
        "L",
        "c5",
        "c6",
        "c7",
        "c8",
        "L",
        "c9",
    )
    for step in plan:
        if step == "L":
            emu.add_message(room.id, subtype="log", kind="call_ended", details={"call": step})
        else:
            client.call("send", address_id=room.id, text=f"chat {step}")

    pages = client.call("get_messages", address_id=room.id, page_size=3, max_pages=10)

    assert chat_texts(pages) == [
        ["chat c9", "chat c8", "chat c7"],
        ["chat c6", "chat c5", "chat c4"],
        ["chat c3", "chat c2", "chat c1"],
        ["chat c0"],
    ]
    assert [p["hasNext"] for p in pages] == [True, True, True, False]
    for page in pages:
        for message in page["data"]:
            assert message["subtype"] == "chat"
            assert message["conversation_id"] == room.id
    timestamps = [m["ts"] for p in pages for m in p["data"]]
    assert timestamps == sorted(timestamps, reverse=True)

    # The default page size (10) in one call, across the six non-chat messages.
    (page,) = client.call("get_messages", address_id=room.id)
    assert [m["text"] for m in page["data"]] == [f"chat c{i}" for i in range(9, -1, -1)]


def test_subscribe_receives_messages_sent_by_our_client(
    signalwire_emulator: Any, official_client: Any
) -> None:
    from signalwire_chat import ChatClient

    emu = signalwire_emulator
    alice = emu.create_subscriber(reference="alice@example.com")
    bob = emu.create_subscriber(reference="bob@example.com")
    room = emu.create_room("crossing")
    client: OfficialClient = official_client(emu, alice.token)
    client.call("join", address_id=room.id)
    client.call("subscribe", address_id=room.id)
    mark = len(client.observations)
    # A non-chat message first: the SDK acknowledges it and its chat filter drops it.
    emu.add_message(room.id, subtype="log", kind="call_started")

    with ChatClient(
        bob.token, rest_url=emu.rest_url, relay_url=emu.relay_url, dialect="address"
    ) as ours:
        ours.send_message(
            room.id, "hello from python", metadata={"lang": "en"}, details={"thread": "t1"}
        )

    _, obs = client.wait_for(obs_is("message"), start=mark, what="the message from python")
    message = obs["message"]
    assert message["text"] == "hello from python"
    assert message["conversation_id"] == room.id
    assert message["user_id"] == bob.id
    assert message["subtype"] == "chat"
    assert message["metadata"] == {"lang": "en"}
    assert message["details"] == {"thread": "t1"}
    assert len(client.messages(mark)) == 1


def test_our_subscriber_receives_messages_sent_by_the_official_client(
    signalwire_emulator: Any, official_client: Any
) -> None:
    from signalwire_chat import ChatClient

    emu = signalwire_emulator
    alice = emu.create_subscriber(reference="alice@example.com")
    bob = emu.create_subscriber(reference="bob@example.com")
    room = emu.create_room("crossing")
    received: list[Any] = []
    arrived = threading.Event()

    def on_message(message: Any) -> None:
        received.append(message)
        arrived.set()

    with ChatClient(
        bob.token, rest_url=emu.rest_url, relay_url=emu.relay_url, dialect="address"
    ) as ours:
        ours.join(room.id)
        handle = ours.subscribe(room.id, on_message)
        # subscribe() returns before the socket is up (the official client's SignalWire() only
        # resolves once connected): wait for that point, as a user who must not miss a message.
        wait_connected(ours)
        try:
            client: OfficialClient = official_client(emu, alice.token)
            client.call("send", address_id=room.id, text="hello from the official client")
            assert arrived.wait(10), "our subscriber received nothing"
        finally:
            handle.cancel()

    (message,) = received
    assert message.text == "hello from the official client"
    assert message.conversation_id == room.id
    assert message.user_id == alice.id
    assert message.subtype == "chat"


def test_survives_a_dropped_connection(signalwire_emulator: Any, official_client: Any) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber(reference="alice@example.com")
    room = emu.create_room("flaky")
    with emu.recording() as rec:
        client: OfficialClient = official_client(emu, alice.token)
        client.call("join", address_id=room.id)
        client.call("subscribe", address_id=room.id)
        _, first = client.wait_for(obs_is("connected"))

        mark = len(client.observations)
        emu.drop_connections()
        client.wait_for(obs_is("ws_close"), start=mark, what="the socket to close")
        _, again = client.wait_for(
            obs_is("connected"), start=mark, timeout=RECONNECT_TIMEOUT, what="the reconnect"
        )
    # The SDK resumes: it sends back the previous protocol and the server continues that session.
    assert again["error"] is None
    assert again["requested_protocol"] == first["protocol"]
    assert again["protocol"] == first["protocol"]
    # It also sends back the authorization state the server pushed on the first socket.
    first_conn = rec.entries("ws_open")[0]["conn"]
    states = [
        e["frame"]["params"]["params"]["authorization_state"]
        for e in rec.entries("ws_send")
        if e["conn"] == first_conn
        and e["frame"].get("params", {}).get("event_type") == "signalwire.authorization.state"
    ]
    connects = [
        e["frame"]["params"]
        for e in rec.entries("ws_recv")
        if e["frame"].get("method") == "signalwire.connect"
    ]
    assert len(connects) == 2
    assert states
    assert connects[1]["authorization_state"] == states[-1]
    assert "authorization_state" not in connects[0]

    mark = len(client.observations)
    client.call("send", address_id=room.id, text="after the drop")
    client.call("send", address_id=room.id, text="and once more")
    client.wait_for(
        lambda o: o.get("obs") == "message" and o["message"]["text"] == "and once more",
        start=mark,
        what="the messages after the drop",
    )
    # Each delivered once and in order, although the session was resumed.
    assert [m["text"] for m in client.messages(mark)] == ["after the drop", "and once more"]


def test_survives_an_emulator_restart(signalwire_emulator: Any, official_client: Any) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("restarted")
    client: OfficialClient = official_client(emu, alice.token)
    client.call("subscribe", address_id=room.id)
    client.call("join", address_id=room.id)

    mark = len(client.observations)
    emu.stop()
    client.wait_for(obs_is("ws_close"), start=mark, what="the socket to close")
    emu.start()  # same port, same data, no relay sessions
    _, again = client.wait_for(
        lambda o: o.get("obs") == "connected" and o["error"] is None,
        start=mark,
        timeout=2 * RECONNECT_TIMEOUT,
        what="the reconnect",
    )
    # It asks to resume; the restarted server has no such session and starts a new one.
    assert again["requested_protocol"] is not None
    assert again["protocol"] != again["requested_protocol"]

    mark = len(client.observations)
    client.call("send", address_id=room.id, text="after the restart")
    _, obs = client.wait_for(obs_is("message"), start=mark, what="the message after the restart")
    assert obs["message"]["text"] == "after the restart"
