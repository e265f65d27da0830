"""Catch-up reads are anchored on what the service says, never on a clock that can step or lie.

Each test failed before its fix (issue 21.3): a checkpointed subscriber that restarted while the
service's clock had stepped back lost everything sent meanwhile, with a false
``CheckpointNotFoundError``; a subscriber whose first history read failed fell back on its own
wall clock, so a client clock ahead lost messages with no error (and one behind delivered
messages older than ``subscribe()``).
"""

from __future__ import annotations

import contextlib
import time as real_time
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_realtime_support import FAST, Clients, Collector, Setup, wait_until

from signalwire_chat import CheckpointNotFoundError, RealtimeOptions, SqliteCheckpointStore
from signalwire_chat._realtime import ConnectionState
from signalwire_chat.errors import MessagesMayBeMissingError


class Clock:
    """The emulator's clock: the real time plus an offset a test steps."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return real_time.time() + self.offset


@pytest.fixture(params=["group", "address"])
def stepped(emulator_factory: Any, request: pytest.FixtureRequest) -> Iterator[tuple[Setup, Clock]]:
    clock = Clock()
    made = Setup(emulator_factory(clock=clock), request.param)
    yield made, clock
    made.close()


def _saved_id(path: Path) -> str | None:
    with SqliteCheckpointStore(path) as store:
        saved = store.load("bot")
    return saved.message_id if saved is not None else None


def _checkpointed(setup: Setup, store: Path, **options: Any) -> Clients:
    return Clients(
        setup.emu,
        dialect=setup.dialect,
        realtime=RealtimeOptions(**{**FAST, **options}),
        checkpoint_store=store,
    )


@contextlib.contextmanager
def _restarted_after_a_step_back(
    setup: Setup, clock: Clock, tmp_path: Path, texts: list[str], **options: Any
) -> Iterator[Collector]:
    """A checkpointed bot's first run handles one message and stops; the service's clock steps
    back 30 s (or another node is behind); ``texts`` are sent; the second run's Collector."""
    bot = _checkpointed(setup, tmp_path / "cp.db", **options)
    try:
        first = bot.make(setup.me.token)
        got = Collector()
        first.subscribe(setup.room.id, got.on_message, got.on_error, checkpoint="bot")
        setup.send("before")
        assert got.wait_for(1) == ["before"]
        assert wait_until(lambda: _saved_id(tmp_path / "cp.db") == got.messages[0].id)
        first.close()
        clock.offset = -30.0
        for text in texts:
            setup.send(text)
        second = bot.make(setup.me.token)
        again = Collector()
        second.subscribe(setup.room.id, again.on_message, again.on_error, checkpoint="bot")
        yield again
    finally:
        bot.close()


def test_a_restart_after_the_service_clock_stepped_back_loses_nothing(
    stepped: tuple[Setup, Clock], tmp_path: Path
) -> None:
    texts = [f"while down {i}" for i in range(20)]
    with _restarted_after_a_step_back(*stepped, tmp_path, texts) as again:
        assert again.wait_for(20, timeout=15) == texts
        assert again.errors == []


def test_a_checkpoint_beyond_the_backfill_limit_is_reported_and_the_newest_delivered(
    stepped: tuple[Setup, Clock], tmp_path: Path
) -> None:
    texts = [f"m{i}" for i in range(8)]
    with _restarted_after_a_step_back(*stepped, tmp_path, texts, backfill_limit=5) as again:
        error = again.wait_error(CheckpointNotFoundError)
        assert "newest 5 messages" in str(error)
        assert again.wait_for(5) == texts[-5:]  # the newest the limit reaches, in order


def _history_down(setup: Setup) -> str:
    """Fail every history read of the room (the anchor read of subscribe() and catch-ups)."""
    if setup.dialect == "group":
        prefix = f"/api/fabric/conversations/{setup.conversation}/messages"
    else:
        prefix = f"/api/fabric/conversations/{setup.room.id}/messages"
    setup.emu.fail_next(503, method="GET", path_prefix=prefix, times=100_000)
    return prefix


def _skew_client_clock(monkeypatch: pytest.MonkeyPatch, by: float) -> None:
    from signalwire_chat._realtime import _subscriptions

    skewed = types.SimpleNamespace(
        time=lambda: real_time.time() + by, monotonic=real_time.monotonic
    )
    monkeypatch.setattr(_subscriptions, "time", skewed)


@pytest.mark.parametrize("client_clock", [+5.0, 0.0, -30.0], ids=["ahead", "right", "behind"])
def test_an_unreadable_history_at_subscribe_loses_nothing_whatever_the_client_clock(
    stepped: tuple[Setup, Clock], monkeypatch: pytest.MonkeyPatch, client_clock: float
) -> None:
    setup, clock = stepped
    _skew_client_clock(monkeypatch, client_clock)
    clock.offset = -10.0  # sent well before subscribe(): never to be delivered
    setup.send("old")
    clock.offset = 0.0
    _history_down(setup)
    setup.emu.refuse_connects(100_000, code=-32000, message="overloaded")
    with setup.subscribed(connect_timeout=0.5) as (hub, got):
        assert hub.state is not ConnectionState.CONNECTED  # subscribe() returned unconnected
        texts = [f"m{i}" for i in range(25)]
        for text in texts:
            setup.send(text)
        setup.emu.clear_faults()  # the history is readable again
        setup.emu.refuse_connects(0)
        assert got.wait_for(25, timeout=15) == texts
        setup.send("live")
        assert got.wait_for(26)[-1] == "live"
        assert got.texts == [*texts, "live"]  # nothing older than subscribe()
        assert not [e for e in got.errors if isinstance(e, MessagesMayBeMissingError)]


def test_with_no_service_time_an_unreadable_history_is_reported_not_guessed(
    stepped: tuple[Setup, Clock], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup, _clock = stepped
    _skew_client_clock(monkeypatch, -3600.0)  # a guess from it would deliver "old"
    setup.send("old")
    _history_down(setup)
    setup.emu.refuse_connects(100_000, code=-32000, message="overloaded")
    hub = setup.hub(connect_timeout=0.5)
    hub._core.server_time = lambda _moment: None  # a service that states no Date
    got = Collector()
    try:
        hub.subscribe(setup.target, got.on_message, got.on_error)
        setup.send("meanwhile")
        setup.emu.clear_faults()
        setup.emu.refuse_connects(0)
        error = got.wait_error(MessagesMayBeMissingError, timeout=15)
        assert "between subscribe() and the first connect" in str(error)
        setup.send("live")
        assert got.wait_for(1) == ["live"]
    finally:
        hub.close()
