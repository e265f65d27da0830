"""The emulator's event and token fault hooks, and what a ChatClient sees through each.

Each hook is shown twice: on a raw relay socket (what the wire carries) and through
``signalwire_chat.ChatClient`` (what a user of the library observes).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import websocket

from signalwire_chat import ChatClient, RealtimeOptions
from signalwire_chat.emulator import Emulator, EmulatorAddress, EmulatorSubscriber
from signalwire_chat.errors import AuthenticationError, RateLimitError

TIMEOUT = 10.0


class Got:
    """Messages and errors a subscription delivered, with a condition to wait on."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.errors: list[BaseException] = []
        self._cond = threading.Condition()

    def on_message(self, message: Any) -> None:
        with self._cond:
            self.texts.append(message.text)
            self._cond.notify_all()

    def on_error(self, error: BaseException) -> None:
        with self._cond:
            self.errors.append(error)
            self._cond.notify_all()

    def wait(self, predicate: Callable[[Got], bool], timeout: float = TIMEOUT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)

    def assert_delivered(self, texts: list[str]) -> None:
        """Wait for ``len(texts)`` messages; assert they are ``texts``, in order, with no error."""
        assert self.wait(lambda g: len(g.texts) >= len(texts))
        assert self.texts == texts
        assert self.errors == []


class Raw:
    """A raw relay socket that acknowledges events and keeps their frames."""

    def __init__(self, emu: Emulator, token: str) -> None:
        self.ws = websocket.create_connection(emu.relay_url, timeout=TIMEOUT)
        self.ws.send(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": "c",
                    "method": "signalwire.connect",
                    "params": {"event_acks": True, "authentication": {"jwt_token": token}},
                }
            )
        )
        self.protocol = self.until(lambda f: f.get("id") == "c")["result"]["protocol"]

    def until(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        end = time.monotonic() + TIMEOUT
        while time.monotonic() < end:
            self.ws.settimeout(max(0.05, end - time.monotonic()))
            frame = json.loads(self.ws.recv())
            if frame.get("method") in ("signalwire.event", "signalwire.ping"):
                self.ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
            if predicate(frame):
                return dict(frame)
        raise AssertionError("no such frame in time")

    def chat_events(self, until_text: str) -> list[dict[str, Any]]:
        """The conversation events received up to the one whose text is ``until_text``."""
        events: list[dict[str, Any]] = []

        def keep(frame: dict[str, Any]) -> bool:
            if frame.get("method") != "signalwire.event":
                return False
            params = frame["params"]
            if params["event_type"] != "conversation.message":
                return False
            events.append({"id": frame["id"], **params})
            return bool(params["params"]["text"] == until_text)

        self.until(keep)
        return events

    def close(self) -> None:
        self.ws.close()
        self.ws.shutdown()


@pytest.fixture
def room(emu: Emulator, alice: EmulatorSubscriber, bob: EmulatorSubscriber) -> EmulatorAddress:
    room = emu.create_room("faults")
    emu.join_group(alice, [room.id])
    emu.join_group(bob, [room.id])
    return room


Keep = Callable[[Raw], Raw]


@contextmanager
def _subscribed(
    emu: Emulator, sub: EmulatorSubscriber, room: EmulatorAddress, **options: Any
) -> Iterator[tuple[ChatClient, Got]]:
    """A client of ``sub`` subscribed to ``room``, and what its subscription delivers."""
    got = Got()
    with emu.client_for(sub, **options) as client:
        client.subscribe(room.id, got.on_message, got.on_error)
        yield client, got


@dataclass(frozen=True)
class Watch:
    """Bob's raw relay socket (what the wire carries) and Alice's subscribed client."""

    wire: Raw
    client: ChatClient
    got: Got


@pytest.fixture
def watch(
    emu: Emulator,
    alice: EmulatorSubscriber,
    bob: EmulatorSubscriber,
    room: EmulatorAddress,
    autoclose: Keep,
) -> Iterator[Watch]:
    wire = autoclose(Raw(emu, bob.token))
    with _subscribed(emu, alice, room) as (client, got):
        yield Watch(wire, client, got)


def _texts(events: list[dict[str, Any]]) -> list[str]:
    return [e["params"]["text"] for e in events]


# -- duplicate delivery ------------------------------------------------------------------------


def test_duplicated_events_reach_the_socket_twice_and_the_client_once(
    emu: Emulator, bob: EmulatorSubscriber, room: EmulatorAddress, watch: Watch
) -> None:
    emu.duplicate_next_events(1)
    emu.send_as(bob, room.id, "twice on the wire")
    emu.send_as(bob, room.id, "end")
    events = watch.wire.chat_events("end")
    assert _texts(events) == ["twice on the wire", "twice on the wire", "end"]
    assert events[0]["id"] != events[1]["id"]  # a redelivery is a new event
    watch.got.assert_delivered(["twice on the wire", "end"])


# -- reordered delivery ------------------------------------------------------------------------


def test_reordered_events_arrive_newest_first_and_the_client_gets_each_once(
    emu: Emulator, bob: EmulatorSubscriber, room: EmulatorAddress, watch: Watch
) -> None:
    emu.reorder_next_events(2)
    emu.send_as(bob, room.id, "first")
    emu.send_as(bob, room.id, "second")
    assert _texts(watch.wire.chat_events("first")) == ["second", "first"]
    # The client delivers in arrival order; the history keeps the true order.
    watch.got.assert_delivered(["second", "first"])
    assert [m.text for m in watch.client.get_messages(room.id).data] == ["second", "first"]
    assert watch.got.errors == []


def test_clear_faults_releases_held_events_in_order(
    emu: Emulator, bob: EmulatorSubscriber, room: EmulatorAddress, autoclose: Keep
) -> None:
    raw = autoclose(Raw(emu, bob.token))
    emu.reorder_next_events(3)
    emu.send_as(bob, room.id, "a")
    emu.send_as(bob, room.id, "b")
    emu.clear_faults()
    emu.send_as(bob, room.id, "c")
    assert _texts(raw.chat_events("c")) == ["a", "b", "c"]


# -- a delayed event ---------------------------------------------------------------------------


def test_a_delayed_event_is_overtaken(
    emu: Emulator, bob: EmulatorSubscriber, room: EmulatorAddress, watch: Watch
) -> None:
    emu.delay_next_event(0.5)
    emu.send_as(bob, room.id, "late")
    emu.send_as(bob, room.id, "on time")
    assert _texts(watch.wire.chat_events("late")) == ["on time", "late"]
    watch.got.assert_delivered(["on time", "late"])


# -- token expiry now --------------------------------------------------------------------------


def test_expire_tokens_disconnects_the_relay_and_the_token_stops_working(
    emu: Emulator,
    alice: EmulatorSubscriber,
    bob: EmulatorSubscriber,
    room: EmulatorAddress,
    autoclose: Keep,
) -> None:
    raw = autoclose(Raw(emu, alice.token))
    bob_raw = autoclose(Raw(emu, bob.token))
    emu.expire_tokens(alice)
    frame = raw.until(lambda f: f.get("method") == "signalwire.disconnect")
    raw.ws.send(json.dumps({"jsonrpc": "2.0", "id": frame["id"], "result": {}}))
    raw.ws.settimeout(TIMEOUT)
    assert raw.ws.recv() == ""  # the close frame follows
    # The old token is refused everywhere; Bob's token and a fresh one of Alice's work.
    info = f"{emu.rest_url}/api/fabric/subscriber/info"
    old = requests.get(info, headers={"Authorization": f"Bearer {alice.token}"}, timeout=TIMEOUT)
    assert old.status_code == 401
    assert "expired" in old.json()["errors"][0]["message"]
    fresh = emu.mint_token(alice)
    ok = requests.get(info, headers={"Authorization": f"Bearer {fresh}"}, timeout=TIMEOUT)
    assert ok.status_code == 200
    emu.send_as(alice, room.id, "bob still connected")
    assert _texts(bob_raw.chat_events("bob still connected"))[-1] == "bob still connected"


def test_a_client_with_an_expired_token_gets_authentication_errors(
    emu: Emulator, alice: EmulatorSubscriber, room: EmulatorAddress
) -> None:
    options = RealtimeOptions(reconnect_max_delay=0.2)
    with _subscribed(emu, alice, room, realtime=options) as (client, got):
        emu.expire_tokens(alice)
        with pytest.raises(AuthenticationError):
            client.get_messages(room.id)
        assert got.wait(lambda g: any(isinstance(e, AuthenticationError) for e in g.errors))


# -- a second session steals the event channel ------------------------------------------------


def test_a_stolen_event_channel_hides_events_until_a_reconnect(
    emu: Emulator,
    alice: EmulatorSubscriber,
    bob: EmulatorSubscriber,
    room: EmulatorAddress,
    autoclose: Keep,
) -> None:
    with _subscribed(emu, alice, room) as (_, got):
        emu.steal_event_channel(alice)
        emu.send_as(bob, room.id, "unseen")
        # The client acknowledged the event and dropped it as another session's.
        deadline = time.monotonic() + TIMEOUT
        while any(s.unacked for s in emu.hub.sessions()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not any(s.unacked for s in emu.hub.sessions())
        assert got.texts == []
        # After a reconnect the session has its own channel again, events flow, and the
        # client backfills what it dropped from the history.
        emu.drop_connections()
        emu.send_as(bob, room.id, "seen")
        got.assert_delivered(["unseen", "seen"])

    # On the wire: the events carry the thief's channel, not the session's protocol.
    raw = autoclose(Raw(emu, bob.token))
    channel = emu.steal_event_channel(bob)
    emu.send_as(alice, room.id, "stolen")
    (event,) = raw.chat_events("stolen")
    assert event["event_channel"] == channel
    assert raw.protocol not in event["event_channel"]


# -- 429 with Retry-After (fail_next) --------------------------------------------------------


def test_429_with_retry_after_is_waited_out_then_raised_past_the_retries(
    emu: Emulator, alice: EmulatorSubscriber, room: EmulatorAddress
) -> None:
    with emu.client_for(alice) as client, emu.recording() as rec:
        emu.fail_next(429, path_prefix="/api/fabric/messages", headers={"Retry-After": "0.1"})
        client.send_message(room.id, "after a 429")
        posts = [e for e in rec.entries("http") if e["path"] == "/api/fabric/messages"]
        assert [e["status"] for e in posts] == [429, 201]
        assert posts[0]["response"]["errors"][0]["type"] == "rate_limit_error"
        emu.fail_next(
            429, path_prefix="/api/fabric/messages", times=4, headers={"Retry-After": "0"}
        )
        with pytest.raises(RateLimitError) as caught:
            client.send_message(room.id, "never sent")
        assert caught.value.retry_after == 0
    assert [m["text"] for m in emu.messages(room.id)] == ["after a 429"]
