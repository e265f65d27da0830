"""RealtimeHub against the emulator over loopback: filter, order, callbacks, flow, stream."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest
from test_realtime_support import Collector, Setup, connected, setup_fixture, wait_until

from signalwire_chat._realtime import ConnectionState, RealtimeHub
from signalwire_chat.errors import CallbackError, ClientClosedError, SlowCallbackError

setup = setup_fixture("group", "address")


@pytest.fixture
def hub(setup: Setup) -> Iterator[RealtimeHub]:
    h = setup.hub()
    yield h
    h.close()


def _hub_threads() -> list[threading.Thread]:
    """The realtime threads alive (the history client's REST deadline watchdog is not the hub's:
    subscribe() reads the history once, and that client is closed by the fixture)."""
    return [
        t
        for t in threading.enumerate()
        if t.name.startswith("signalwire-chat") and t.name != "signalwire-chat-http-deadline"
    ]


def test_nothing_starts_before_the_first_subscription(setup: Setup) -> None:
    hub = setup.hub()
    assert hub.state is ConnectionState.IDLE
    assert not _hub_threads()
    hub.close()
    assert setup.emu.connect_attempts == 0


def test_filter_delivers_only_chat_messages_of_the_address_with_every_field(
    setup: Setup, hub: RealtimeHub
) -> None:
    other_room = setup.emu.create_room("elsewhere")
    if setup.dialect == "group":
        setup.emu.join_group(setup.me, [other_room.id])
    else:
        setup.emu.join(setup.me, other_room.id)
    got = Collector()
    hub.subscribe(setup.target, got.on_message, got.on_error)
    assert connected(hub)
    setup.send("elsewhere", other_room.id)
    setup.emu.add_message(setup.conversation, subtype="log", kind="call_started")
    setup.emu.send_as(
        setup.other,
        setup.room.id,
        "hello",
        details={"k": 1},
        metadata={"m": "v"},
        dialect=setup.dialect,
    )
    setup.send("last")
    assert got.wait_for(2) == ["hello", "last"]
    first = got.messages[0]
    if setup.dialect == "group":
        assert first.group_id == setup.conversation
        assert first.from_address_id == setup.other.address_id
        assert first.is_author is False  # the envelope says the listener did not send it
    else:
        assert first.conversation_id == setup.room.id
    assert first.subtype == "chat"
    # The group dialect names the sender by address only (no user_id in the official types).
    assert first.user_id == (None if setup.dialect == "group" else setup.other.id)
    assert dict(first.details) == {"k": 1}
    assert dict(first.metadata) == {"m": "v"}
    stored = setup.emu.messages(setup.conversation)
    assert first.id in {m["id"] for m in stored}
    # Realtime-only fields are kept too.
    assert "user_name" in first.extra or getattr(first, "user_name", None) is not None
    assert got.errors == []
    assert got.threads == {"signalwire-chat-dispatcher"}


def test_order_is_kept_and_one_socket_serves_every_subscription(
    setup: Setup, hub: RealtimeHub
) -> None:
    first, second = Collector(), Collector()
    hub.subscribe(setup.target, first.on_message)
    hub.subscribe(setup.target, second.on_message)
    assert connected(hub)
    texts = [f"m{i}" for i in range(150)]
    for text in texts:
        setup.send(text)
    assert first.wait_for(150) == texts
    assert second.wait_for(150) == texts
    assert setup.emu.connect_attempts == 1


def test_cancel_stops_delivery_and_the_last_cancel_closes_the_socket(
    setup: Setup, hub: RealtimeHub
) -> None:
    kept, cancelled = Collector(), Collector()
    sub_kept = hub.subscribe(setup.target, kept.on_message)
    sub_cancelled = hub.subscribe(setup.target, cancelled.on_message)
    assert connected(hub)
    setup.send("before")
    assert cancelled.wait_for(1) == ["before"]
    sub_cancelled.cancel()
    sub_cancelled.cancel()  # idempotent
    assert not sub_cancelled.active
    setup.send("after")
    assert kept.wait_for(2) == ["before", "after"]
    assert cancelled.texts == ["before"]
    with sub_kept:
        pass  # the context manager cancels
    assert hub.state is ConnectionState.IDLE
    assert wait_until(lambda: not _hub_threads())
    # A later subscription starts it again.
    again = Collector()
    hub.subscribe(setup.target, again.on_message)
    assert connected(hub)
    setup.send("again")
    assert again.wait_for(1) == ["again"]
    assert setup.emu.connect_attempts == 2


def test_cancel_from_inside_the_callback(setup: Setup, hub: RealtimeHub) -> None:
    got = Collector()
    holder: list = []

    def on_message(message) -> None:
        got.on_message(message)
        holder[0].cancel()

    holder.append(hub.subscribe(setup.target, on_message))
    assert connected(hub)
    setup.send("one")
    setup.send("two")
    assert got.wait_for(1) == ["one"]
    assert wait_until(lambda: hub.state is ConnectionState.IDLE)
    assert got.texts == ["one"]


def test_close_stops_delivery_and_joins_every_thread(setup: Setup) -> None:
    hub = setup.hub()
    got = Collector()
    sub = hub.subscribe(setup.target, got.on_message)
    assert connected(hub)
    setup.send("one")
    assert got.wait_for(1) == ["one"]
    started = time.monotonic()
    hub.close()
    assert time.monotonic() - started < 2.0
    assert not sub.active
    assert hub.state is ConnectionState.CLOSED
    assert not _hub_threads()
    setup.send("two")
    hub.close()  # idempotent
    with pytest.raises(ClientClosedError):
        hub.subscribe(setup.target, got.on_message)
    assert got.texts == ["one"]


def test_a_raising_callback_is_reported_and_delivery_goes_on(
    setup: Setup, hub: RealtimeHub, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(message) -> None:
        if message.text == "bad":
            raise ValueError("boom")
        got.on_message(message)

    got = Collector()
    hub.subscribe(setup.target, explode, got.on_error)
    assert connected(hub)
    for text in ("a", "bad", "b"):
        setup.send(text)
    assert got.wait_for(2) == ["a", "b"]
    error = got.wait_error(CallbackError)
    assert isinstance(error.__cause__, ValueError)
    assert error.address_id == setup.room.id
    assert "raised" in caplog.text
    assert setup.emu.connect_attempts == 1


def test_a_blocking_callback_does_not_cost_the_connection(setup: Setup) -> None:
    setup.emu.set_ping_interval(0.2)
    hub = setup.hub(ping_timeout=1.0, slow_callback_after=0.5)
    release = threading.Event()

    def block(message) -> None:
        if message.text == "slow":
            release.wait(10)

    got = Collector(on_each=block)
    try:
        hub.subscribe(setup.target, got.on_message, got.on_error)
        assert connected(hub)
        setup.send("slow")
        error = got.wait_error(SlowCallbackError)
        assert error.elapsed >= 0.5
        for i in range(5):
            setup.send(f"after{i}")
        # Many ping intervals pass while the callback blocks; the link must stay up.
        time.sleep(3 * 1.0)  # fault duration (the blocked callback), not a wait for a result
        assert hub.state is ConnectionState.CONNECTED
        release.set()
        assert got.wait_for(6) == ["slow"] + [f"after{i}" for i in range(5)]
        assert setup.emu.connect_attempts == 1
        assert len([e for e in got.errors if isinstance(e, SlowCallbackError)]) == 1
    finally:
        release.set()
        hub.close()


def test_bounded_queue_with_a_slow_callback_loses_nothing(signalwire_emulator) -> None:
    emu = signalwire_emulator
    setup = Setup(emu)
    hub = setup.hub(queue_size=8)
    depths: list[int] = []

    def slow(message) -> None:
        run = hub._core._run
        assert run is not None
        depths.append(run.dispatcher.pending())
        time.sleep(0.002)  # a slow consumer

    got = Collector(on_each=slow)
    try:
        hub.subscribe(setup.target, got.on_message, got.on_error)
        assert connected(hub)
        texts = [f"m{i}" for i in range(400)]
        for text in texts:
            setup.send(text)
        assert got.wait_for(400, timeout=30) == texts
        assert max(depths) <= 8
        assert max(depths) >= 4  # the queue did fill: flow control was exercised
        assert got.errors == []
    finally:
        hub.close()
        setup.close()


def test_stream_yields_messages_and_ends_on_timeout_close_and_hub_close(
    setup: Setup, hub: RealtimeHub
) -> None:
    stream = hub.stream(setup.target, timeout=5)
    assert connected(hub)
    setup.send("s1")
    setup.send("s2")
    assert next(stream).text == "s1"
    assert next(stream).text == "s2"
    stream.close()  # type: ignore[attr-defined]
    assert list(stream) == []
    assert hub.state is ConnectionState.IDLE

    short = hub.stream(setup.target, timeout=0.3)
    started = time.monotonic()
    assert list(short) == []
    assert time.monotonic() - started < 3

    endless = hub.stream(setup.target)
    done = threading.Event()
    seen: list[str] = []

    def consume() -> None:
        seen.extend(m.text for m in endless)
        done.set()

    consumer = threading.Thread(target=consume, name="test-consumer")
    consumer.start()
    assert connected(hub)
    setup.send("s3")
    assert wait_until(lambda: seen == ["s3"])
    hub.close()
    assert done.wait(5)
    consumer.join(5)


def test_state_listeners_run_off_the_connection_thread(setup: Setup) -> None:
    seen: list[tuple[ConnectionState, str]] = []
    hub = setup.hub(on_state_change=lambda s: seen.append((s, threading.current_thread().name)))
    extra: list[ConnectionState] = []
    remove = hub.add_state_listener(extra.append)
    got = Collector()
    hub.subscribe(setup.target, got.on_message)
    assert connected(hub)
    remove()
    remove()
    setup.emu.drop_connections()
    assert wait_until(lambda: [s for s, _ in seen].count(ConnectionState.CONNECTED) == 2)
    hub.close()
    states = [s for s, _ in seen]
    assert states[:2] == [ConnectionState.CONNECTING, ConnectionState.CONNECTED]
    assert ConnectionState.RECONNECTING in states
    assert states[-1] is ConnectionState.CLOSED
    assert all(name != "signalwire-chat-connection" for _, name in seen)
    assert ConnectionState.RECONNECTING not in extra


def test_a_collected_hub_with_running_threads_warns(setup: Setup) -> None:
    hub = setup.hub()
    hub.subscribe(setup.target, lambda m: None)
    assert connected(hub)
    with pytest.warns(ResourceWarning, match="close"):  # noqa: PT031 - the del is the point
        del hub  # the last reference: the finalizer runs here (or at the collect)
        gc.collect()
    assert wait_until(lambda: not _hub_threads())


def test_chat_client_delegates(setup: Setup) -> None:
    client = setup.client()
    got = Collector()
    sub = client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    assert wait_until(lambda: client.connection_state is ConnectionState.CONNECTED)
    setup.send("via client")
    assert got.wait_for(1) == ["via client"]
    stream = client.stream_messages(setup.room.id, timeout=5)
    setup.send("streamed")
    assert next(stream).text == "streamed"
    sub.cancel()
    client.close()
    assert client.connection_state is ConnectionState.CLOSED
    assert list(stream) == []


def test_close_from_inside_a_callback(setup: Setup) -> None:
    hub = setup.hub()
    closed = threading.Event()

    def on_message(message) -> None:
        hub.close()
        closed.set()

    hub.subscribe(setup.target, on_message)
    assert connected(hub)
    setup.send("close now")
    assert closed.wait(5)
    assert hub.state is ConnectionState.CLOSED
    assert wait_until(lambda: not _hub_threads())


def test_ctrl_c_while_waiting_on_a_stream_cancels_it(setup: Setup, hub: RealtimeHub) -> None:
    import os
    import signal

    stream = hub.stream(setup.target)
    assert connected(hub)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            next(stream)
    finally:
        timer.join()
    assert hub.state is ConnectionState.IDLE
    assert list(stream) == []


def test_a_relay_that_never_pings_is_probed_not_dropped(setup: Setup) -> None:
    setup.emu.set_ping_interval(None)
    hub = setup.hub(ping_timeout=0.6)
    got = Collector()
    try:
        hub.subscribe(setup.target, got.on_message)
        assert connected(hub)
        # Several ping_timeouts of silence from the relay: our own pings keep it alive.
        assert not wait_until(lambda: setup.emu.connect_attempts > 1, timeout=2.0)
        setup.send("alive")
        assert got.wait_for(1) == ["alive"]
        assert setup.emu.connect_attempts == 1
    finally:
        hub.close()
