"""subscribe(..., checkpoint=<CheckpointHandler>): a subscriber that keeps its checkpoint itself.

The subscription resumes from what the handler's ``load()`` returns, and hands the messages it
handled to ``advance()`` once per delivery batch (a catch-up read's messages together), after
their callbacks returned, in order. What ``advance()`` raises is said: a fenced write ends the
subscription, another store failure goes to ``on_error`` and delivery goes on.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from test_realtime_support import Collector, Setup, setup_fixture, wait_until

from signalwire_chat import (
    ChatClient,
    Checkpoint,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StoreError,
    StoreUnavailableError,
    Subscription,
)
from signalwire_chat.checkpoints import CheckpointHandler
from signalwire_chat.errors import FencedWriteError
from signalwire_chat.models import ConversationChatMessage

setup = setup_fixture("group", "address")


class Handler:
    """A checkpoint kept in memory; ``batches``: the texts of each advance, in call order."""

    def __init__(self, got: Collector, start: Checkpoint | None = None) -> None:
        self.key = "mine"
        self.start = start
        self.got = got
        self.batches: list[list[str]] = []
        self.handled_before: list[int] = []  # callbacks that had returned at each advance
        self.fail_with: BaseException | None = None

    def load(self) -> Checkpoint | None:
        return self.start

    def advance(self, messages: Sequence[ConversationChatMessage]) -> None:
        self.handled_before.append(len(self.got.messages))
        self.batches.append([m.text for m in messages])
        failure, self.fail_with = self.fail_with, None
        if failure is not None:
            raise failure

    def texts(self) -> list[str]:
        return [text for batch in self.batches for text in batch]


def _subscribed(setup: Setup) -> tuple[Collector, Handler, Subscription]:
    """A subscription to the room with a fresh handler (no checkpoint yet)."""
    got = Collector()
    handler = Handler(got)
    client = setup.client()
    sub = client.subscribe(setup.room.id, got.on_message, got.on_error, checkpoint=handler)
    return got, handler, sub


def _newest(client: ChatClient, setup: Setup) -> ConversationChatMessage:
    return next(iter(client.get_messages(setup.room.id)))


def test_a_handler_resumes_from_its_checkpoint_and_advances_per_batch(setup: Setup) -> None:
    client = setup.client()
    setup.send("handled by an earlier run")
    last = _newest(client, setup)
    start = Checkpoint.of(last, route=client.checkpoint_route(setup.room.id))
    missed = [f"while down {i}" for i in range(5)]
    for text in missed:
        setup.send(text)
    got = Collector()
    handler = Handler(got, start)
    assert isinstance(handler, CheckpointHandler)
    client.subscribe(setup.room.id, got.on_message, got.on_error, checkpoint=handler)
    assert got.wait_for(5) == missed
    # The catch-up read's messages are advanced together, once their callbacks returned.
    assert wait_until(lambda: handler.texts() == missed)
    assert handler.batches == [missed]
    assert handler.handled_before == [5]
    setup.send("live")
    assert wait_until(lambda: handler.texts() == [*missed, "live"])
    assert handler.batches[-1] == ["live"]
    assert got.errors == []


def test_the_inbox_takes_a_handler_too(setup: Setup) -> None:
    client = setup.client()
    got = Collector()
    handler = Handler(got)
    client.subscribe_inbox(got.on_message, got.on_error, checkpoint=handler)
    setup.send("to the inbox")
    assert wait_until(lambda: handler.texts() == ["to the inbox"])


def test_what_advance_raises_is_said_and_a_fenced_write_ends_the_subscription(
    setup: Setup,
) -> None:
    got, handler, sub = _subscribed(setup)
    unavailable = StoreUnavailableError("the store is away")
    handler.fail_with = unavailable
    setup.send("one")
    assert got.wait_error(StoreUnavailableError) is unavailable
    setup.send("two")  # delivery goes on after a store failure
    assert wait_until(lambda: handler.texts() == ["one", "two"])
    assert sub.active
    fenced = FencedWriteError("another holder took over", fencing_token=3)
    handler.fail_with = fenced
    setup.send("three")
    assert got.wait_error(FencedWriteError) is fenced
    assert wait_until(lambda: not sub.active)
    assert got.texts == ["one", "two", "three"]


def test_a_handler_that_raises_something_else_is_reported_as_a_store_error(
    setup: Setup,
) -> None:
    got, handler, sub = _subscribed(setup)
    handler.fail_with = KeyError("a bug in the handler")
    setup.send("one")
    error = got.wait_error(StoreError)
    assert "'mine'" in str(error)
    assert "KeyError" in str(error)
    assert isinstance(error.__cause__, KeyError)
    assert sub.active


def test_a_handler_is_checked_and_loaded_before_anything_starts(setup: Setup) -> None:
    client = setup.client()
    got = Collector()

    class NoAdvance:
        key = "k"

        def load(self) -> None:
            return None

    with pytest.raises(InvalidArgumentTypeError, match="CheckpointHandler"):
        client.subscribe(setup.room.id, got.on_message, checkpoint=NoAdvance())  # type: ignore[arg-type]
    elsewhere = Handler(got, Checkpoint(route="inbox", message_id="m1", ts=1.0))
    with pytest.raises(InvalidArgumentError, match="belongs to inbox"):
        client.subscribe(setup.room.id, got.on_message, checkpoint=elsewhere)

    class Away(Handler):
        def load(self) -> Checkpoint | None:
            raise StoreUnavailableError("not reachable")

    with pytest.raises(StoreUnavailableError):
        client.subscribe(setup.room.id, got.on_message, checkpoint=Away(got))
    assert not client.subscriptions


def test_a_batch_window_gathers_a_steady_flow_into_fewer_advances(setup: Setup) -> None:
    client = setup.client()
    got = Collector()
    handler = Handler(got)
    handler.batch_window = 0.5  # type: ignore[attr-defined]
    client.subscribe(setup.room.id, got.on_message, got.on_error, checkpoint=handler)
    sent = [f"flow {i}" for i in range(20)]
    for text in sent:
        setup.send(text)
    assert wait_until(lambda: handler.texts() == sent)
    # Without the window each message (sent one by one) is a batch of its own.
    assert len(handler.batches) < len(sent) / 2, handler.batches


@pytest.mark.parametrize("window", [-0.1, 2.0, float("nan"), "0.1", True])
def test_a_bad_batch_window_is_refused_at_subscribe(setup: Setup, window: object) -> None:
    client = setup.client()
    got = Collector()
    handler = Handler(got)
    handler.batch_window = window  # type: ignore[attr-defined]
    with pytest.raises((InvalidArgumentError, InvalidArgumentTypeError)):
        client.subscribe(setup.room.id, got.on_message, checkpoint=handler)
    assert not client.subscriptions
