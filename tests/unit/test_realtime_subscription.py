"""A subscription's delivery, catch-up and error reports, driven directly with a dispatcher.

The dispatcher is the real one (its thread started where the test needs it); the history a
catch-up reads is a small generator standing in for the REST pages, newest first.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest
from _realtime_helpers import Owner, chat_message, chat_wire

from signalwire_chat._convert import structure_chat_message
from signalwire_chat._realtime._dispatcher import Dispatcher
from signalwire_chat._realtime._subscriptions import Anchor, Route, Subscription
from signalwire_chat.errors import (
    CallbackError,
    DecodeError,
    MessagesMayBeMissingError,
    ServerError,
)
from signalwire_chat.models import ConversationChatMessage


def _sub(**kwargs: Any) -> tuple[Subscription, list[str], list[BaseException]]:
    got: list[str] = []
    errors: list[BaseException] = []
    on_message = kwargs.pop("on_message", lambda m: got.append(m.id))
    on_error = kwargs.pop("on_error", errors.append)
    route = kwargs.pop("route", Route.address("conv"))
    sub = Subscription(Owner(), route, on_message, on_error, recent_ids=100, **kwargs)
    return sub, got, errors


def _history(*ids: int, **extra: Any) -> Any:
    """A history call giving messages ``ids`` (newest first) and counting what it read."""

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        for i in ids:
            yield chat_message(i, **extra)

    return history


def test_routes_compare_and_show_what_they_follow() -> None:
    assert Route.address("a") != "a"
    assert Route.address("a") == Route.address("a")
    assert len({Route.address("a"), Route.address("a"), Route.inbox()}) == 2
    assert str(Route.inbox()) == "the inbox"
    sub, _got, _errors = _sub(route=Route.inbox())
    assert sub.inbox
    assert "<Subscription inbox active" in repr(sub)
    printed: list[str] = []

    class _Printer:
        def text(self, value: str) -> None:
            printed.append(value)

    sub._repr_pretty_(_Printer(), False)
    assert printed == [f"Subscription(the inbox active, 0 delivered, {sub.callback_name})"]


def test_nothing_is_delivered_after_cancel_and_duplicates_are_dropped() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub, got, _errors = _sub()
    sub._deliver(chat_message(1), dispatcher)
    sub._deliver(chat_message(1), dispatcher)  # the same id again (a catch-up overlap)
    assert got == ["id1"]
    assert dispatcher.stats.duplicates == 1
    sub.cancel()
    sub._deliver_wire(chat_wire(2), dispatcher)
    sub._catch_up(_history(3), dispatcher, limit=10)
    sub._backfill(_history(3), dispatcher, limit=10)
    assert got == ["id1"]


def test_an_undecodable_update_is_reported_and_a_raising_on_update_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher(queue_size=10)
    updates: list[str] = []
    sub, got, errors = _sub(on_update=lambda m: updates.append(m.text))
    sub._deliver_update(chat_wire(1, ts="yesterday"), dispatcher)
    assert isinstance(errors[0], DecodeError)
    sub._deliver_update(chat_wire(1, text="edited"), dispatcher)
    assert updates == ["edited"]
    assert got == []  # an edit never reaches on_message

    def broken_update(message: ConversationChatMessage) -> None:
        raise KeyError("oops")

    sub2, _got2, errors2 = _sub(on_update=broken_update)
    with caplog.at_level(logging.ERROR):
        sub2._deliver_update(chat_wire(1), dispatcher)
    assert isinstance(errors2[0], CallbackError)
    assert "on_update raised KeyError" in str(errors2[0])
    assert isinstance(errors2[0].__cause__, KeyError)


def test_an_on_error_that_raises_is_logged_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher(queue_size=10)

    def bad_on_error(error: BaseException) -> None:
        raise RuntimeError("on_error is broken too")

    sub, got, _errors = _sub(on_error=bad_on_error)
    with caplog.at_level(logging.ERROR):
        sub._deliver_wire(chat_wire(1, text=5), dispatcher)  # undecodable: reported
        sub._deliver_wire(chat_wire(2), dispatcher)
    assert "on_error of the subscription" in caplog.text
    assert got == ["id2"]
    sub.advance(chat_message(2))  # no checkpoint: nothing to save, nothing reported


def test_a_failing_catch_up_is_told_to_the_hooks_and_raised() -> None:
    dispatcher = Dispatcher(queue_size=10)
    finished: list[Any] = []
    dispatcher.stats.catch_up_finished = (  # type: ignore[method-assign]
        lambda sub, started, count, error: finished.append((count, error))
    )
    sub, _got, _errors = _sub()
    sub.last_id = "id0"

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        raise KeyboardInterrupt  # not an Exception: not a gap, it goes up

    with pytest.raises(KeyboardInterrupt):
        sub._catch_up(history, dispatcher, limit=10)
    assert finished == [(0, "KeyboardInterrupt")]


def test_a_history_longer_than_the_limit_is_a_gap_after_delivering_what_was_read() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.last_id = "id0"
    sub._backfill(_history(9, 8, 7, 6, 5), dispatcher, limit=3)
    assert got == ["id7", "id8", "id9"]
    assert isinstance(errors[0], MessagesMayBeMissingError)
    assert "more than 3 messages" in str(errors[0].__cause__)


def test_a_catch_up_from_a_checkpoint_reads_back_to_its_id_whatever_the_ts() -> None:
    """The service's clock stepped back after the checkpoint: newer messages are dated older."""
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.anchor = Anchor.at_checkpoint("id2")

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        for i, ts in ((6, 900.0), (5, 950.0), (4, 1010.0), (3, 500.0), (2, 1002.0), (1, 1.0)):
            yield chat_message(i, ts=ts)

    sub._backfill(history, dispatcher, limit=100)
    assert got == ["id3", "id4", "id5", "id6"]
    assert errors == []


def test_a_catch_up_from_a_checkpoint_whose_message_is_gone_reads_to_the_limit() -> None:
    """Not found: everything the read reaches is delivered (at least once beats lost), and said."""
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.anchor = Anchor.at_checkpoint("id-deleted")
    sub._backfill(_history(6, 5, 4, 3, 2), dispatcher, limit=100)
    assert got == ["id2", "id3", "id4", "id5", "id6"]
    assert type(errors[0]).__name__ == "CheckpointNotFoundError"
    assert "id-deleted" in str(errors[0])
    sub, got, errors = _sub()
    sub.anchor = Anchor.at_checkpoint("id-deleted")
    sub._backfill(_history(6, 5, 4, 3, 2), dispatcher, limit=3)
    assert got == ["id4", "id5", "id6"]
    assert [type(e).__name__ for e in errors] == ["CheckpointNotFoundError"]
    assert "newest 3 messages" in str(errors[0])


def test_a_catch_up_ends_when_the_subscription_is_cancelled_meanwhile() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.last_id = "id0"

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        yield chat_message(3)
        sub.cancel()  # another thread cancels while the pages are read
        yield chat_message(2)

    sub._backfill(history, dispatcher, limit=100)
    assert got == []
    assert errors == []


def test_a_catch_up_stops_delivering_when_the_subscription_ends_midway() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub: Subscription
    got: list[str] = []

    def on_message(message: ConversationChatMessage) -> None:
        got.append(message.id)
        sub.cancel()  # the user cancels from the first callback

    sub, _got, errors = _sub(on_message=on_message)
    sub.last_id = "id0"
    sub._backfill(_history(3, 2, 1), dispatcher, limit=100)
    assert got == ["id1"]
    assert errors == []


def test_a_server_error_while_catching_up_is_reported_as_a_gap() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.last_id = "id0"

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        yield chat_message(2)
        raise ServerError("history unavailable", status=503)

    sub._backfill(history, dispatcher, limit=100)
    assert got == ["id2"]  # what was read before the failure is delivered
    assert isinstance(errors[0], MessagesMayBeMissingError)
    assert isinstance(errors[0].__cause__, ServerError)


def test_the_dispatcher_survives_a_failing_task_and_stops_midway(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher(queue_size=10, name="signalwire-chat-dispatcher-test")
    sub, got, _errors = _sub()
    ran = threading.Event()

    def failing() -> None:
        raise RuntimeError("task bug")

    dispatcher.put_task(failing)
    dispatcher.put_messages([((sub,), chat_wire(1), False)])
    dispatcher.put_task(dispatcher.stop)
    dispatcher.put_messages([((sub,), chat_wire(2), False)])
    dispatcher.put_task(ran.set)
    with caplog.at_level(logging.ERROR):
        dispatcher.start()
        dispatcher.thread.join(5)
    assert not dispatcher.thread.is_alive()
    assert "internal task failed" in caplog.text
    assert got == ["id1"]  # what came after stop() was dropped
    assert not ran.is_set()


def test_a_callable_object_is_named_by_its_class() -> None:
    class Printer:
        def __call__(self, message: ConversationChatMessage) -> None:
            return None

    sub, _got, _errors = _sub(on_message=Printer())
    assert sub.callback_name.endswith("<locals>.Printer")
    assert repr(sub).endswith(".Printer>")


def test_an_odd_ipython_shell_falls_back_on_the_cells_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys
    import types

    from signalwire_chat._realtime._interactive import cell_origin

    def broken_get_ipython() -> Any:
        raise RuntimeError("no shell in this thread")

    fake = types.ModuleType("IPython")
    fake.get_ipython = broken_get_ipython  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", fake)
    namespace: dict[str, Any] = {"__name__": "__main__", "cell_origin": cell_origin}
    cell = "def show(message):\n    return message\norigin = cell_origin(show)\n"
    exec(compile(cell, "<ipython-input-9-ab>", "exec"), namespace)
    assert namespace["origin"] == (("ipython", "code", "ab"), None)


def test_a_checkpoint_outage_after_a_callback_is_reported_once_and_delivery_goes_on(
    tmp_path: Any,
) -> None:
    from test_realtime_stream import _FaultyStore

    from signalwire_chat._realtime._checkpointing import Checkpointer
    from signalwire_chat.errors import StoreUnavailableError

    store = _FaultyStore(tmp_path / "cp.db")
    try:
        dispatcher = Dispatcher(queue_size=10)
        checkpoint = Checkpointer(store, "bot", Route.address("conv"))  # type: ignore[arg-type]
        sub, got, errors = _sub(checkpoint=checkpoint)
        store.fault = StoreUnavailableError("store down")
        sub._deliver_wire(chat_wire(1), dispatcher)
        sub._deliver_wire(chat_wire(2), dispatcher)
        assert got == ["id1", "id2"]
        assert [type(e) for e in errors] == [StoreUnavailableError]  # once per outage
        assert sub.active
        store.fault = None
        sub._deliver_wire(chat_wire(3), dispatcher)
        assert store.real.load("bot").message_id == "id3"  # type: ignore[union-attr]
    finally:
        store.close()


def test_without_on_error_a_raising_callback_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher(queue_size=10)

    def on_message(message: ConversationChatMessage) -> None:
        raise ValueError("bad message handling")

    sub = Subscription(Owner(), Route.address("conv"), on_message, None, recent_ids=10)
    with caplog.at_level(logging.ERROR):
        sub._deliver_wire(chat_wire(1), dispatcher)
    records = [r for r in caplog.records if r.name.endswith("_subscriptions")]
    assert len(records) == 1  # with its traceback, not a second line from _report
    assert records[0].exc_info is not None


def test_a_catch_up_skips_what_was_delivered_other_kinds_and_other_conversations() -> None:
    dispatcher = Dispatcher(queue_size=10)
    sub, got, errors = _sub()
    sub.last_id = "id0"
    sub._deliver(chat_message(4), dispatcher)  # came live during the outage
    sub.last_id = "id0"  # the catch-up still starts from before the outage

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        yield chat_message(5)
        yield chat_message(4)  # delivered already
        yield structure_chat_message(chat_wire(3, conversation="elsewhere"))
        yield chat_message(2)
        yield chat_message(0)

    sub._backfill(history, dispatcher, limit=100)
    assert got == ["id4", "id2", "id5"]
    assert errors == []


def test_live_messages_are_decoded_by_the_decoder_the_subscription_looked_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import signalwire_chat._convert as convert

    delivered: list[ConversationChatMessage] = []
    sub, _got, errors = _sub(on_message=delivered.append)

    def gone(cls: type) -> Any:  # a fault: no look-up may happen per message any more
        raise AssertionError(f"decoder({cls.__name__}) looked up per message")

    monkeypatch.setattr(convert, "decoder", gone)
    dispatcher = Dispatcher(queue_size=10)
    dispatcher._drain(deque([((sub,), chat_wire(1), False), ((sub,), chat_wire(2), False)]))
    monkeypatch.undo()
    assert errors == []
    # The same messages structure_chat_message makes, marked as live.
    assert delivered == [structure_chat_message(chat_wire(i), delivery="live") for i in (1, 2)]
