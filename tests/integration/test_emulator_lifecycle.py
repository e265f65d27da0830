"""The Emulator object: start/stop/restart on the same port, persistence, relay wiring, faults."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import websocket

from signalwire_chat.emulator import Emulator, EmulatorSubscriber

TIMEOUT = 5.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def history(emu: Emulator, token: str, address_id: str) -> requests.Response:
    return requests.get(
        f"{emu.rest_url}/api/fabric/conversations/{address_id}/messages",
        headers=bearer(token),
        timeout=TIMEOUT,
    )


def send(emu: Emulator, token: str, address_id: str, text: str) -> requests.Response:
    return requests.post(
        f"{emu.rest_url}/api/fabric/messages",
        json={"conversation_id": address_id, "text": text},
        headers=bearer(token),
        timeout=TIMEOUT,
    )


class Relay:
    """A raw JSON-RPC websocket client for the emulator's relay."""

    def __init__(self, emu: Emulator, token: str) -> None:
        self.ws = websocket.create_connection(emu.relay_url, timeout=TIMEOUT)
        self.token = token

    def connect(self) -> dict[str, Any]:
        rid = str(uuid.uuid4())
        self.ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": rid,
                    "method": "signalwire.connect",
                    "params": {
                        "version": {"major": 4, "minor": 0, "revision": 0},
                        "event_acks": True,
                        "agent": "tests/1",
                        "authentication": {"jwt_token": self.token},
                    },
                }
            )
        )
        return self.wait_for(lambda f: f.get("id") == rid)

    def wait_for(self, predicate: Any, deadline: float = TIMEOUT) -> dict[str, Any]:
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            self.ws.settimeout(max(0.01, end - time.monotonic()))
            frame = json.loads(self.ws.recv())
            if frame.get("method") in ("signalwire.event", "signalwire.ping"):
                result = {} if frame["method"] == "signalwire.event" else frame["params"]
                self.ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": result}))
            if predicate(frame):
                return dict(frame)
        raise AssertionError("no matching frame in time")

    def next_message(self) -> dict[str, Any]:
        frame = self.wait_for(
            lambda f: (
                f.get("method") == "signalwire.event"
                and f["params"]["event_type"] == "conversation.message"
            )
        )
        return dict(frame["params"]["params"])

    def close(self) -> None:
        self.ws.close()


def drain_until_closed(relay: Relay) -> None:
    """Read until the socket fails (an abort) or closes; raise in both cases."""
    while True:
        relay.ws.recv()
        if not relay.ws.connected:
            raise websocket.WebSocketConnectionClosedException("closed")


Keep = Callable[[Relay], Relay]


def open_relay(autoclose: Keep, emu: Emulator, sub: EmulatorSubscriber) -> Relay:
    relay = autoclose(Relay(emu, sub.token))
    assert "result" in relay.connect()
    return relay


# -- lifecycle --------------------------------------------------------------------------------


def test_nothing_starts_in_the_constructor() -> None:
    before = {t.name for t in threading.enumerate()}
    emu = Emulator()
    assert not emu.running
    assert emu.port == 0
    assert {t.name for t in threading.enumerate()} == before
    emu.close()
    with pytest.raises(RuntimeError):
        emu.start()


def test_start_stop_are_idempotent_and_the_thread_is_named() -> None:
    emu = Emulator()
    try:
        emu.start()
        emu.start()
        assert emu.running
        assert emu.port > 0
        assert emu.rest_url == f"http://127.0.0.1:{emu.port}"
        assert emu.relay_url == f"ws://127.0.0.1:{emu.port}/"
        names = [t.name for t in threading.enumerate()]
        assert any(n.startswith("signalwire-emulator-") for n in names)
    finally:
        emu.stop()
        emu.stop()
        emu.close()
        emu.close()
    assert not any(t.name.startswith("signalwire-emulator-") for t in threading.enumerate())


def test_stop_is_quick_with_open_connections(
    signalwire_emulator: Emulator, autoclose: Keep
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber()
    open_relay(autoclose, emu, alice)
    session = requests.Session()  # a kept-alive HTTP connection
    assert session.get(emu.rest_url + "/api/fabric/subscriber/info", headers=bearer(alice.token)).ok
    started = time.monotonic()
    emu.stop()
    assert time.monotonic() - started < 2.0
    session.close()


def test_restart_keeps_port_and_data_in_memory(signalwire_emulator: Emulator) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    session = requests.Session()
    assert send(emu, alice.token, room.id, "before").status_code == 201
    port = emu.port
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        session.get(emu.rest_url + "/api/fabric/subscriber/info", timeout=TIMEOUT)
    emu.start()
    assert emu.port == port
    texts = [m["text"] for m in history(emu, alice.token, room.id).json()["data"]]
    assert texts == ["before"]
    session.close()


def test_file_database_survives_a_new_emulator(tmp_path: Path) -> None:
    db = str(tmp_path / "emu.sqlite3")
    with Emulator(db=db) as first:
        project, api_token = first.project_id, first.api_token
        alice = first.create_subscriber("alice@example.com")
        room = first.create_room("lobby")
        assert send(first, alice.token, room.id, "persisted").status_code == 201
    with Emulator(db=db) as second:
        assert (second.project_id, second.api_token) == (project, api_token)
        # The token key lives in the database: the old token is still valid.
        texts = [m["text"] for m in history(second, alice.token, room.id).json()["data"]]
        assert texts == ["persisted"]
        response = requests.post(
            second.rest_url + "/api/fabric/subscribers/tokens",
            json={"reference": "alice@example.com"},
            auth=(project, api_token),
            timeout=TIMEOUT,
        )
        assert response.status_code == 201
    with Emulator(db=db, project_id="p-explicit", api_token="t-explicit") as third:
        assert (third.project_id, third.api_token) == ("p-explicit", "t-explicit")


def test_a_second_emulator_refuses_the_first_ones_tokens(emulator_factory: Any) -> None:
    one, two = emulator_factory(), emulator_factory()
    alice = one.create_subscriber("alice@example.com")
    two.create_subscriber("alice@example.com")
    response = requests.get(
        two.rest_url + "/api/fabric/subscriber/info", headers=bearer(alice.token), timeout=TIMEOUT
    )
    assert response.status_code == 401


# -- relay wiring -----------------------------------------------------------------------------


def test_sent_messages_reach_every_member_session(
    signalwire_emulator: Emulator, autoclose: Keep
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com", display_name="Alice")
    bob = emu.create_subscriber("bob@example.com")
    carol = emu.create_subscriber("carol@example.com")
    room = emu.create_room("lobby", display_name="Lobby")
    emu.join(bob, room.id)
    alice_a, alice_b = open_relay(autoclose, emu, alice), open_relay(autoclose, emu, alice)
    bob_relay = open_relay(autoclose, emu, bob)
    carol_relay = open_relay(autoclose, emu, carol)
    assert send(emu, alice.token, room.id, "hello all").status_code == 201
    (stored,) = emu.messages(room.id)
    for relay in (alice_a, alice_b, bob_relay):
        event = relay.next_message()
        assert event == {
            **stored,
            "user_name": "Alice",
            "conversation_name": "Lobby",
            "hidden": False,
        }
    # carol is not a member: the next thing she gets is her own direct message.
    emu.add_message(carol.address_id, subtype="log", kind="call_started", details={"x": 1})
    event = carol_relay.next_message()
    assert event["conversation_id"] == carol.address_id
    assert event["subtype"] == "log"
    assert event["kind"] == "call_started"
    assert "text" not in event


def test_add_message_and_send_as_publish(signalwire_emulator: Emulator, autoclose: Keep) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber()
    bob = emu.create_subscriber(display_name="Bob")
    room = emu.create_room("r")
    emu.join(alice, room.id)
    relay = open_relay(autoclose, emu, alice)
    sent = emu.send_as(bob, room.id, "from bob", metadata={"k": "v"}, dialect="address")
    event = relay.next_message()
    assert event["id"] == sent["id"]
    assert event["user_name"] == "Bob"
    assert event["metadata"] == {"k": "v"}
    assert event["text"] == "from bob"
    assert emu.store.is_member(room.id, bob.id)


def test_relay_refuses_foreign_and_expired_tokens(
    signalwire_emulator: Emulator, emulator_factory: Any, autoclose: Keep
) -> None:
    emu = signalwire_emulator
    stranger = emulator_factory().create_subscriber()
    alice = emu.create_subscriber()
    for token in (stranger.token, emu.mint_token(alice, ttl=-1)):
        relay = autoclose(Relay(emu, token))
        answer = relay.connect()
        assert answer["error"]["code"] == -32002
        assert token not in json.dumps(answer)


def test_relay_fault_hooks(signalwire_emulator: Emulator, autoclose: Keep) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber()
    assert emu.connect_attempts == 0
    emu.refuse_connects(1, message="go away")
    refused = autoclose(Relay(emu, alice.token))
    assert refused.connect()["error"] == {"code": -32002, "message": "go away"}
    relay = open_relay(autoclose, emu, alice)
    assert emu.connect_attempts == 2
    emu.drop_connections()
    relay.ws.settimeout(TIMEOUT)
    with pytest.raises((websocket.WebSocketException, OSError)):
        drain_until_closed(relay)
    emu.set_ping_interval(0.2)
    pinged = open_relay(autoclose, emu, alice)
    pinged.wait_for(lambda f: f.get("method") == "signalwire.ping")
    with emu.half_open():
        emu.add_message(alice.address_id, subtype="log", kind="k")
        pinged.ws.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):
            pinged.ws.recv()
    assert pinged.next_message()["kind"] == "k"
    emu.stop()
    emu.start()
    assert emu.connect_attempts == 3  # counted across restarts


def test_recording_sees_websocket_frames_redacted(
    signalwire_emulator: Emulator, autoclose: Keep
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber()
    with emu.recording() as rec:
        relay = open_relay(autoclose, emu, alice)
        relay.close()
    kinds = {e["kind"] for e in rec}
    assert {"ws_open", "ws_recv", "ws_send"} <= kinds
    assert alice.token not in json.dumps(list(rec))


def test_fault_hooks_need_a_running_emulator() -> None:
    emu = Emulator()
    try:
        with pytest.raises(RuntimeError):
            emu.drop_connections()
        with pytest.raises(RuntimeError):
            emu.refuse_connects()
        emu.set_ping_interval(None)  # remembered for the next start
    finally:
        emu.close()
