"""Realtime hooks and health against the emulator: reconnects, catch-up, duplicates, slowness."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import pytest
from test_realtime_support import Collector

from signalwire_chat import (
    CatchUpFinishedEvent,
    CatchUpStartedEvent,
    ChatClient,
    ConnectionState,
    DeliveredEvent,
    DuplicateDroppedEvent,
    Hooks,
    RealtimeOptions,
    SlowCallbackEvent,
    StateChangeEvent,
    Subscription,
)
from signalwire_chat.emulator import Emulator, EmulatorAddress, EmulatorSubscriber


class Events:
    """Every realtime hook event, in order, from any thread, with waits on a deadline."""

    def __init__(self) -> None:
        self.all: list[Any] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()

    def add(self, event: Any) -> None:
        with self._cond:
            self.all.append(event)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def hooks(self) -> Hooks:
        return Hooks(
            on_state_change=self.add,
            on_catch_up_started=self.add,
            on_catch_up_finished=self.add,
            on_duplicate_dropped=self.add,
            on_slow_callback=self.add,
            on_delivered=self.add,
        )

    def of(self, kind: type) -> list[Any]:
        with self._cond:
            return [e for e in self.all if isinstance(e, kind)]

    def wait(self, predicate: Callable[[Events], bool], timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout)


@pytest.fixture
def people(
    signalwire_emulator: Emulator,
) -> tuple[Emulator, EmulatorSubscriber, EmulatorSubscriber, EmulatorAddress]:
    emu = signalwire_emulator
    alice = emu.create_subscriber()
    bob = emu.create_subscriber()
    room = emu.create_room("obs-rt")
    return emu, alice, bob, room


class Chat(NamedTuple):
    """Alice's client, its hooks feeding ``events``, in a room Bob writes to."""

    emu: Emulator
    bob: EmulatorSubscriber
    room: EmulatorAddress
    client: ChatClient
    events: Events

    def listen(self) -> tuple[Collector, Subscription]:
        """Subscribe the client to the room with a fresh collector; (collector, subscription)."""
        got = Collector()
        return got, self.client.subscribe(self.room.id, got.on_message, got.on_error)


@pytest.fixture
def chat(
    people: tuple[Emulator, EmulatorSubscriber, EmulatorSubscriber, EmulatorAddress],
) -> Iterator[Chat]:
    emu, alice, bob, room = people
    events = Events()
    # The relay pings often; a silenced link is then noticed within a second.
    emu.set_ping_interval(0.2)
    options = RealtimeOptions(ping_timeout=1.0, reconnect_max_delay=0.2, slow_callback_after=0.3)
    with emu.client_for(alice, hooks=events.hooks(), realtime=options) as client:
        yield Chat(emu, bob, room, client, events)


def test_a_reconnect_with_catch_up_is_told_to_the_hooks_and_counted_in_health(chat: Chat) -> None:
    emu, bob, room, client, events = chat
    got, _ = chat.listen()
    emu.send_as(bob, room.id, "before")
    assert got.wait_for(1) == ["before"]

    # A link that goes silent: the relay keeps the TCP open but sends nothing. What is sent
    # meanwhile reaches this client only through the catch-up read after the reconnect.
    with emu.half_open():
        emu.send_as(bob, room.id, "missed 1")
        emu.send_as(bob, room.id, "missed 2")
        assert events.wait(lambda e: bool(e.of(CatchUpFinishedEvent)))
    emu.send_as(bob, room.id, "after")
    assert got.wait_for(4) == ["before", "missed 1", "missed 2", "after"]
    assert got.errors == []

    states = [(e.previous, e.state, e.reason) for e in events.of(StateChangeEvent)]
    assert states[:2] == [
        (None, ConnectionState.CONNECTING, "first subscription"),
        (ConnectionState.CONNECTING, ConnectionState.CONNECTED, "connect accepted"),
    ]
    assert (ConnectionState.CONNECTED, ConnectionState.RECONNECTING, "ping timeout") in states
    assert states[-1][1:] == (ConnectionState.CONNECTED, "connect accepted")

    [started] = events.of(CatchUpStartedEvent)
    [finished] = events.of(CatchUpFinishedEvent)
    assert started.target == "group"  # the group dialect, never the id
    assert (finished.target, finished.messages, finished.error) == ("group", 2, None)
    assert finished.duration >= 0
    assert events.wait(lambda e: len(e.of(DeliveredEvent)) >= 4)
    delivered = events.of(DeliveredEvent)
    assert [d.source for d in delivered[:4]] == ["live", "catch-up", "catch-up", "live"]
    assert all(d.lag is not None and d.lag >= 0 and d.duration >= 0 for d in delivered)
    assert not any(d.update for d in delivered)
    # The catch-up is reported between its start and its end, in order, on the dispatcher.
    order = [type(e) for e in events.all if not isinstance(e, StateChangeEvent)]
    begin = order.index(CatchUpStartedEvent)
    assert order[begin : begin + 4] == [
        CatchUpStartedEvent,
        DeliveredEvent,
        DeliveredEvent,
        CatchUpFinishedEvent,
    ]
    assert not any("connection" in name for name in events.threads)

    health = client.health()
    assert health.connection_state is ConnectionState.CONNECTED
    assert health.connection_state_reason == "connect accepted"
    assert health.reconnects >= 1
    assert "ping timeout" in health.reconnect_reasons
    assert health.messages_delivered == 4
    assert health.messages_from_catch_up == 2
    assert health.last_event_at is not None
    assert health.last_event_at <= time.time()
    assert health.queue_depth == 0
    assert health.token_expires_at is not None
    assert health.token_expires_at > time.time()

    client.close()
    closed = events.of(StateChangeEvent)[-1]
    assert (closed.state, closed.reason) == (ConnectionState.CLOSED, "closed by user")
    assert client.health().connection_state_reason == "closed by user"


def test_a_duplicated_event_is_dropped_told_and_counted(chat: Chat) -> None:
    emu, bob, room, client, events = chat
    got, _ = chat.listen()
    emu.duplicate_next_events(1)
    emu.send_as(bob, room.id, "twice on the wire")
    emu.send_as(bob, room.id, "end")
    assert got.wait_for(2) == ["twice on the wire", "end"]

    assert events.of(DuplicateDroppedEvent) == [
        DuplicateDroppedEvent(source="live", target="group")
    ]
    health = client.health()
    assert health.duplicates_dropped == 1
    assert health.messages_delivered == 2
    assert health.messages_from_catch_up == 0
    assert health.reconnects == 0


def test_a_slow_callback_is_told_to_the_hook_off_the_dispatcher(chat: Chat) -> None:
    emu, bob, room, client, events = chat
    release = threading.Event()
    got = Collector()

    def stuck(message: Any) -> None:
        # Held until the hook has spoken (bounded: the test never hangs).
        release.wait(15)

    client.subscribe(room.id, stuck, got.on_error)
    emu.send_as(bob, room.id, "slow")
    try:
        assert events.wait(lambda e: bool(e.of(SlowCallbackEvent)))
        depth = client.health().queue_depth
    finally:
        release.set()
    [slow] = events.of(SlowCallbackEvent)
    assert slow.callback.endswith("stuck")
    assert slow.seconds >= 0.3
    assert slow.target == "group"
    assert depth == 1  # the message whose callback runs is still in the queue
    assert events.wait(lambda e: bool(e.of(DeliveredEvent)))
    [done] = events.of(DeliveredEvent)
    assert done.duration >= 0.3
    assert client.health().queue_depth == 0


def test_failing_realtime_hooks_never_break_delivery(
    people: tuple[Emulator, EmulatorSubscriber, EmulatorSubscriber, EmulatorAddress],
) -> None:
    emu, alice, bob, room = people

    def broken(event: object) -> None:
        raise RuntimeError("hook bug")

    events = Events()
    hooks = [
        Hooks(
            on_state_change=broken,
            on_catch_up_started=broken,
            on_catch_up_finished=broken,
            on_duplicate_dropped=broken,
            on_delivered=broken,
        ),
        events.hooks(),
    ]
    got = Collector()
    with emu.client_for(alice, hooks=hooks) as client:
        client.subscribe(room.id, got.on_message, got.on_error)
        emu.duplicate_next_events(1)
        emu.send_as(bob, room.id, "one")
        emu.send_as(bob, room.id, "two")
        assert got.wait_for(2) == ["one", "two"]
        assert events.wait(lambda e: len(e.of(DeliveredEvent)) == 2)
    assert got.errors == []
    assert len(events.of(DuplicateDroppedEvent)) == 1  # the hook after the broken one ran
    assert events.of(StateChangeEvent)[-1].state is ConnectionState.CLOSED


def test_health_loads_no_realtime_module_before_a_subscription() -> None:
    code = (
        "import sys, signalwire_chat as s\n"
        "m = sys.modules\n"
        "lazy = ['signalwire_chat._hooks', 'signalwire_chat._health', "
        "'signalwire_chat.checkpoints', 'signalwire_chat._logfmt', 'sqlite3']\n"
        "print(*[name in m for name in lazy])\n"
        "c = s.ChatClient('a.b.c', rest_url='http://127.0.0.1:9', relay_url='ws://127.0.0.1:9/')\n"
        "h = c.health()\n"
        "print(h.connection_state.name, h.messages_delivered, h.reconnects)\n"
        "print('signalwire_chat._realtime' in m, 'websocket' in m)\n"
        "c.close()\n"
        "print(c.health().connection_state.name, 'signalwire_chat._realtime' in m)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.splitlines() == [
        "False False False False False",
        "IDLE 0 0",
        "False False",
        "CLOSED False",
    ]


def test_a_refused_reconnect_and_a_cancel_say_why(chat: Chat) -> None:
    emu, _bob, _room, client, events = chat
    _got, subscription = chat.listen()
    emu.refuse_connects(1)  # the relay refuses the credentials (a fixed token: no refresh)
    emu.drop_connections()
    assert events.wait(
        lambda e: any(s.state is ConnectionState.FAILED for s in e.of(StateChangeEvent))
    )
    failed = events.of(StateChangeEvent)[-1]
    assert (failed.previous, failed.state, failed.reason) == (
        ConnectionState.RECONNECTING,
        ConnectionState.FAILED,
        "token refused",
    )
    health = client.health()
    assert health.connection_state is ConnectionState.FAILED
    assert health.connection_state_reason == "token refused"
    assert health.reconnects == 1
    [lost] = health.reconnect_reasons
    assert lost  # how the dropped socket ended, as the connection saw it
    assert client.subscriptions  # the subscription stays (a new one would try again)

    subscription.cancel()
    idle = events.of(StateChangeEvent)[-1]
    assert (idle.state, idle.reason) == (ConnectionState.IDLE, "last subscription cancelled")
    assert client.health().connection_state_reason == "last subscription cancelled"
