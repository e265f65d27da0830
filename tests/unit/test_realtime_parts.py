"""Pure parts of the realtime side: back-off, expiry parsing, error classes, options, dispatch."""

from __future__ import annotations

import random
import threading

import pytest

from signalwire_chat._realtime import RealtimeOptions
from signalwire_chat._realtime._connection import Backoff, is_auth_error, parse_expires_at
from signalwire_chat._realtime._dispatcher import Dispatcher
from signalwire_chat._realtime._subscriptions import Subscription
from signalwire_chat.errors import CallbackError, InvalidArgumentError, InvalidArgumentTypeError


def test_backoff_first_retry_at_once_then_jittered_exponential_with_a_cap() -> None:
    backoff = Backoff(cap=4.0, base=0.5, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(50)]
    assert delays[0] == 0.0
    assert all(0.0 <= d <= 4.0 for d in delays)
    for attempt, delay in enumerate(delays[1:5], start=1):
        assert delay <= 0.5 * 2 ** (attempt - 1)
    assert len(set(delays[10:])) > 30  # full jitter, not a fixed schedule
    backoff.reset()
    assert backoff.next_delay() == 0.0


def test_parse_expires_at_accepts_numbers_and_iso_strings() -> None:
    assert parse_expires_at(1795620562) == 1795620562.0
    assert parse_expires_at(1795620562.5) == 1795620562.5
    assert parse_expires_at("1795620562") == 1795620562.0
    assert parse_expires_at("2026-11-21T10:00:00Z") == 1795255200.0
    assert parse_expires_at("2026-11-21T10:00:00+00:00") == 1795255200.0
    assert parse_expires_at("not a date") is None
    assert parse_expires_at(None) is None
    assert parse_expires_at(True) is None


def test_auth_errors_are_recognised() -> None:
    assert is_auth_error({"code": -32002, "message": "Authentication failed"})
    assert is_auth_error({"code": -32000, "message": "Requester validation failed"})
    assert not is_auth_error({"code": -32603, "message": "Internal error"})
    assert not is_auth_error("nonsense")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("ping_timeout", 0, InvalidArgumentError),
        ("ping_timeout", float("inf"), InvalidArgumentError),
        ("ping_timeout", "15", InvalidArgumentTypeError),
        ("queue_size", 0, InvalidArgumentError),
        ("queue_size", 1.5, InvalidArgumentTypeError),
        ("queue_size", True, InvalidArgumentTypeError),
        ("reconnect_max_delay", -1, InvalidArgumentError),
    ],
)
def test_options_are_validated(field: str, value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        RealtimeOptions(**{field: value})


def test_options_defaults() -> None:
    options = RealtimeOptions()
    assert options.ping_timeout == 15.0
    assert options.queue_size == 1000
    assert options.reconnect_max_delay == 30.0


class _Owner:
    def _cancel(self, sub: Subscription) -> None:
        pass


def _wire(i: int, conversation: str = "conv") -> dict:
    return {
        "id": f"id{i}",
        "conversation_id": conversation,
        "user_id": "u",
        "ts": 1000.0 + i,
        "text": f"t{i}",
        "type": "message",
        "subtype": "chat",
        "details": {},
        "user_name": "Alice",
    }


def test_dispatcher_delivers_in_order_drops_duplicates_and_survives_raising_callbacks() -> None:
    dispatcher = Dispatcher(queue_size=10)
    got: list[str] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def on_message(message) -> None:
        if message.text == "t3":
            raise RuntimeError("boom")
        got.append(message.text)
        if message.text == "t9":
            done.set()

    sub = Subscription(_Owner(), "conv", on_message, errors.append, recent_ids=100)
    dispatcher.start()
    try:
        items = [((sub,), _wire(i)) for i in range(10)]
        dispatcher.put_messages(items[:6] + items[2:4] + items[6:])  # t2, t3 redelivered
        assert done.wait(5)
        assert got == ["t0", "t1", "t2", "t4", "t5", "t6", "t7", "t8", "t9"]
        assert len(errors) == 1
        assert isinstance(errors[0], CallbackError)
        assert isinstance(errors[0].__cause__, RuntimeError)
        assert dispatcher.pending() == 0
        assert sub.last_id == "id9"
    finally:
        dispatcher.stop()
        dispatcher.thread.join(5)


def test_recent_ids_are_bounded() -> None:
    sub = Subscription(_Owner(), "conv", lambda m: None, None, recent_ids=5)
    dispatcher = Dispatcher(queue_size=10)
    for i in range(20):
        sub._deliver_wire(_wire(i), dispatcher)
    assert len(sub._recent) == 5
    assert sub._recent == {f"id{i}" for i in range(15, 20)}


def test_backfill_delivers_the_gap_oldest_first_and_stops_at_the_last_delivered() -> None:
    from signalwire_chat._convert import structure_chat_message

    got: list[str] = []
    sub = Subscription(_Owner(), "conv", lambda m: got.append(m.text), None, recent_ids=100)
    dispatcher = Dispatcher(queue_size=10)
    for i in range(3):
        sub._deliver_wire(_wire(i), dispatcher)
    history = [structure_chat_message(_wire(i)) for i in reversed(range(8))]  # newest first
    consumed: list[str] = []

    def lazy(address_id: str):
        assert address_id == "conv"
        for message in history:
            consumed.append(message.id)
            yield message

    sub._backfill(lazy, dispatcher, limit=100)
    assert got == [f"t{i}" for i in range(8)]
    assert consumed[-1] == "id2"  # stopped at the last delivered message
