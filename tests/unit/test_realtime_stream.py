"""A stream's iterator and a subscription's checkpoint, driven directly (no relay needed).

The checkpoint store is a real sqlite file; where a store must fail (an outage, a lost lease)
a thin wrapper raises the store's own errors in front of it.
"""

from __future__ import annotations

import gc
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from _realtime_helpers import Owner, chat_message

from signalwire_chat._realtime._checkpointing import Checkpointer
from signalwire_chat._realtime._stream import MessageStream
from signalwire_chat._realtime._subscriptions import Route, Subscription
from signalwire_chat.checkpoints import Checkpoint, SqliteCheckpointStore
from signalwire_chat.errors import (
    FencedWriteError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    StoreUnavailableError,
)

KEY = "bot-1"


class _FaultyStore:
    """A real sqlite store, with a fault (an outage, a lost lease) raised in front of save."""

    def __init__(self, path: Path) -> None:
        self.real = SqliteCheckpointStore(path)
        self.fault: Exception | None = None

    def load(self, key: str) -> Checkpoint | None:
        return self.real.load(key)

    def save(self, key: str, checkpoint: Checkpoint, *, fencing_token: int | None = None) -> None:
        if self.fault is not None:
            raise self.fault
        self.real.save(key, checkpoint, fencing_token=fencing_token)

    def close(self) -> None:
        self.real.close()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    faulty = _FaultyStore(tmp_path / "cp.db")
    yield faulty
    faulty.close()


def test_an_outage_is_reported_once_then_the_next_save_covers_the_gap(
    store: _FaultyStore, caplog: pytest.LogCaptureFixture
) -> None:
    checkpointer = Checkpointer(store, KEY, Route.address("conv"))  # type: ignore[arg-type]
    assert checkpointer.advance(chat_message(1)) is None
    assert checkpointer.advance(chat_message(1)) is None  # the same message: nothing to save
    store.fault = StoreUnavailableError("redis is down")
    first = checkpointer.advance(chat_message(2))
    assert isinstance(first, StoreUnavailableError)
    assert checkpointer.advance(chat_message(3)) is None  # the same outage: not reported again
    assert store.real.load(KEY).message_id == "id1"  # type: ignore[union-attr]
    store.fault = None
    with caplog.at_level(logging.INFO, logger="signalwire_chat._realtime._checkpointing"):
        assert checkpointer.advance(chat_message(4)) is None
    assert "saved again" in caplog.text
    assert store.real.load(KEY).message_id == "id4"  # type: ignore[union-attr]
    store.fault = StoreUnavailableError("down again")
    assert isinstance(checkpointer.advance(chat_message(5)), StoreUnavailableError)  # a new outage


def test_a_lost_lease_is_returned_every_time(store: _FaultyStore) -> None:
    checkpointer = Checkpointer(store, KEY, Route.address("conv"))  # type: ignore[arg-type]
    store.fault = FencedWriteError("lease taken over", fencing_token=3)
    assert isinstance(checkpointer.advance(chat_message(1)), FencedWriteError)
    assert "key='bot-1'" in repr(checkpointer)
    assert "start=None" in repr(checkpointer)


def _stream(
    store: _FaultyStore | None = None, limit: int = 10, timeout: float | None = 5.0
) -> tuple[MessageStream, Subscription, Owner]:
    stream = MessageStream(limit, timeout)
    owner = Owner()
    checkpointer = (
        Checkpointer(store, KEY, Route.address("conv"))  # type: ignore[arg-type]
        if store is not None
        else None
    )
    on_message, on_error = stream.callbacks
    sub = Subscription(
        owner,
        Route.address("conv"),
        on_message,
        on_error,
        recent_ids=100,
        checkpoint=checkpointer,
        advance=False,
    )
    stream.subscription = sub
    sub.on_end = stream.shut
    return stream, sub, owner


def test_a_full_stream_holds_the_dispatcher_until_the_consumer_takes_one() -> None:
    stream, sub, _owner = _stream(limit=1)
    stream.put(chat_message(1))
    put_done = threading.Event()

    def dispatcher() -> None:
        stream.put(chat_message(2))  # blocks: the stream holds one already
        put_done.set()

    thread = threading.Thread(target=dispatcher, name="test-stream-dispatcher")
    thread.start()
    try:
        assert not put_done.wait(0.2)  # still blocked (a bound, not a timing assertion)
        assert next(stream).id == "id1"
        assert put_done.wait(5)
        assert next(stream).id == "id2"
    finally:
        stream.close()
        thread.join(5)
    assert not sub.active
    stream.put(chat_message(3))  # after close: dropped, never blocks
    with pytest.raises(StopIteration):
        next(stream)


def test_a_full_stream_closed_meanwhile_releases_the_dispatcher() -> None:
    stream, _sub, _owner = _stream(limit=1)
    stream.put(chat_message(1))
    put_done = threading.Event()
    thread = threading.Thread(
        target=lambda: (stream.put(chat_message(2)), put_done.set()), name="test-stream-dispatcher"
    )
    thread.start()
    stream.close()
    assert put_done.wait(5)
    thread.join(5)
    # What was buffered is still handed out; the blocked message was dropped.
    assert [m.id for m in stream] == ["id1"]


def test_an_authentication_error_ends_the_iteration_with_that_error() -> None:
    stream, sub, owner = _stream()
    stream.put(chat_message(1))
    refused = RealtimeAuthenticationError("token expired", rpc_code=-32002)
    stream.error(refused)
    assert next(stream).id == "id1"  # what came before the refusal first
    with pytest.raises(RealtimeAuthenticationError) as info:
        next(stream)
    assert info.value is refused
    assert not sub.active
    assert owner.cancelled == [sub]
    with pytest.raises(StopIteration):  # reported once
        next(stream)


def test_other_errors_are_logged_and_the_iteration_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream, sub, _owner = _stream()
    with caplog.at_level(logging.WARNING, logger="signalwire_chat._realtime._stream"):
        stream.error(RealtimeConnectError("relay unreachable"))
    assert "relay unreachable" in caplog.text
    stream.put(chat_message(1))
    assert next(stream).id == "id1"
    assert sub.active
    stream.close()


def test_a_lost_lease_ends_the_stream_when_the_next_message_is_asked_for(
    store: _FaultyStore,
) -> None:
    stream, sub, owner = _stream(store)
    stream.put(chat_message(1))
    stream.put(chat_message(2))
    assert next(stream).id == "id1"
    store.fault = FencedWriteError("lease taken over", fencing_token=7)
    with pytest.raises(FencedWriteError):
        next(stream)
    assert not sub.active
    assert owner.cancelled == [sub]
    assert store.real.load(KEY) is None  # nothing was saved by the fenced holder


def test_an_outage_is_logged_and_the_stream_goes_on(
    store: _FaultyStore, caplog: pytest.LogCaptureFixture
) -> None:
    stream, sub, _owner = _stream(store)
    for i in (1, 2, 3):
        stream.put(chat_message(i))
    assert next(stream).id == "id1"
    store.fault = StoreUnavailableError("store down")
    with caplog.at_level(logging.WARNING, logger="signalwire_chat._realtime._stream"):
        assert next(stream).id == "id2"
    assert "store down" in caplog.text
    store.fault = None
    with stream:
        assert next(stream).id == "id3"
    assert store.real.load(KEY).message_id == "id3"  # type: ignore[union-attr]
    assert not sub.active


def test_a_stream_without_a_subscription_closes_and_times_out() -> None:
    stream = MessageStream(4, 0.05)
    stream.close()  # nothing subscribed yet: nothing to cancel
    with pytest.raises(StopIteration):
        next(stream)


def test_a_forgotten_stream_cancels_its_subscription() -> None:
    stream, sub, owner = _stream()
    del stream, sub  # the subscription holds the stream's callbacks: a cycle, for the collector
    gc.collect()
    assert len(owner.cancelled) == 1
    assert not owner.cancelled[0].active
