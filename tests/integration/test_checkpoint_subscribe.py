"""subscribe(..., checkpoint=) and stream_*(checkpoint=) against the emulator: a restart resumes
where the last run stopped, the checkpoint advances only after the handler returned, and what a
checkpoint cannot promise is said (on_error), never skipped silently."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_realtime_support import FAST, Clients, Collector, Setup, setup_fixture, wait_until

from signalwire_chat import (
    ChatClient,
    Checkpoint,
    CheckpointNotFoundError,
    InvalidArgumentError,
    RealtimeOptions,
    SqliteCheckpointStore,
    StoreUnavailableError,
)
from signalwire_chat.checkpoints import default_checkpoint_path
from signalwire_chat.errors import FencedWriteError

setup = setup_fixture("group", "address")


class Bot(Clients):
    """Clients of ``me`` keeping checkpoints in ``store`` (a fresh client per "run")."""

    def __init__(self, setup: Setup, store: Any) -> None:
        super().__init__(
            setup.emu,
            dialect=setup.dialect,
            realtime=RealtimeOptions(**FAST),
            checkpoint_store=store,
        )
        self.setup = setup
        self.store = store

    def run(self) -> ChatClient:
        return self.make(self.setup.me.token)


@pytest.fixture
def bot(setup: Setup, tmp_path: Path) -> Iterator[Bot]:
    b = Bot(setup, tmp_path / "state" / "checkpoints.db")
    yield b
    b.close()


def _target(setup: Setup) -> str:
    return setup.room.id


def _saved(path: Path, key: str) -> Checkpoint | None:
    with SqliteCheckpointStore(path) as store:
        return store.load(key)


def _newest_id(setup: Setup) -> str:
    return setup.client().get_messages(_target(setup), page_size=1).data[0].id


def _saved_id(path: Path, key: str) -> str | None:
    saved = _saved(path, key)
    return saved.message_id if saved is not None else None


def test_a_restart_resumes_after_the_last_handled_message(setup: Setup, bot: Bot) -> None:
    first = bot.run()
    got = Collector()
    first.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    for text in ("one", "two", "three"):
        setup.send(text)
    assert got.wait_for(3) == ["one", "two", "three"]
    assert wait_until(lambda: _saved_id(bot.store, "bot") == got.messages[-1].id)
    first.close()  # the bot goes down; the room goes on
    for text in ("while down 1", "while down 2", "while down 3"):
        setup.send(text)

    second = bot.run()
    again = Collector()
    second.subscribe(_target(setup), again.on_message, again.on_error, checkpoint="bot")
    setup.send("live after restart")
    assert again.wait_for(4) == [
        "while down 1",
        "while down 2",
        "while down 3",
        "live after restart",
    ]
    # Sent while it was down: from the catch-up. (The last may come either way: sent while
    # the catch-up read runs, it is in the history, and its live event is then a duplicate.)
    assert [m.delivery for m in again.messages[:3]] == ["catch_up"] * 3
    assert again.errors == []
    assert wait_until(lambda: _saved_id(bot.store, "bot") == again.messages[-1].id)
    all_ids = [m.id for m in got.messages + again.messages]
    assert len(all_ids) == len(set(all_ids))


def test_the_first_run_starts_from_now_and_saves_as_it_goes(setup: Setup, bot: Bot) -> None:
    setup.send("before the first run")
    client = bot.run()
    got = Collector()
    client.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    setup.send("first")
    assert got.wait_for(1) == ["first"]
    assert wait_until(lambda: _saved_id(bot.store, "bot") == got.messages[0].id)
    saved = _saved(bot.store, "bot")
    assert saved is not None
    assert saved.message_id == got.messages[0].id
    assert saved.route == (
        "group:" + setup.conversation if setup.dialect == "group" else "address:" + setup.room.id
    )


def test_a_quiet_first_run_restarted_loses_nothing(setup: Setup, bot: Bot) -> None:
    # The first run saves where it starts (the history's newest message): a run ended before it
    # handled anything (a deploy, a crash) leaves a checkpoint, and the next run catches up
    # from there instead of starting from its own "now".
    setup.send("before the first run")
    first = bot.run()
    got = Collector()
    first.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    first.close()
    saved = _saved(bot.store, "bot")
    assert saved is not None
    assert saved.message_id == _newest_id(setup)
    setup.send("while down")
    second = bot.run()
    again = Collector()
    second.subscribe(_target(setup), again.on_message, again.on_error, checkpoint="bot")
    setup.send("after")
    # The other side: where the first run started is not delivered again.
    assert again.wait_for(2, timeout=10) == ["while down", "after"]
    assert not got.messages
    assert not again.errors


def test_a_resumed_run_does_not_move_its_checkpoint_to_the_newest(setup: Setup, bot: Bot) -> None:
    # Only a first run saves where it starts: a run with a checkpoint keeps it until it has
    # handled the messages after it (saving the newest would skip them).
    first = bot.run()
    got = Collector()
    first.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    setup.send("handled")
    assert got.wait_for(1) == ["handled"]
    assert wait_until(lambda: _saved_id(bot.store, "bot") == got.messages[0].id)
    first.close()
    setup.send("missed")
    gate = threading.Event()
    second = bot.run()
    again = Collector()

    def held(msg: Any) -> None:
        gate.wait(10)
        again.on_message(msg)

    second.subscribe(_target(setup), held, again.on_error, checkpoint="bot")
    assert _saved_id(bot.store, "bot") == got.messages[0].id
    gate.set()
    assert again.wait_for(1) == ["missed"]


def test_the_checkpoint_advances_only_after_the_handler_returned(setup: Setup, bot: Bot) -> None:
    client = bot.run()
    entered = threading.Event()
    release = threading.Event()
    seen: list[str] = []

    def handler(message: Any) -> None:
        seen.append(message.text)
        if message.text == "slow":
            entered.set()
            assert release.wait(10)
        if message.text == "boom":
            raise RuntimeError("handler failed")

    errors: list[BaseException] = []
    client.subscribe(_target(setup), handler, errors.append, checkpoint="bot")
    setup.send("fast")
    assert wait_until(lambda: seen == ["fast"])
    assert wait_until(lambda: _saved(bot.store, "bot") is not None)
    fast_id = _saved_id(bot.store, "bot")
    setup.send("slow")
    assert entered.wait(10)
    # The handler is still running: a crash now must hand "slow" out again.
    assert _saved_id(bot.store, "bot") == fast_id
    release.set()
    setup.send("boom")
    assert wait_until(lambda: seen == ["fast", "slow", "boom"])
    assert wait_until(lambda: len(errors) == 1)
    # "boom" raised: the checkpoint stays on "slow", so a restart hands "boom" out again.
    assert wait_until(lambda: _saved_id(bot.store, "bot") not in (None, fast_id))
    client.close()
    again = bot.run()
    got = Collector()
    again.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    assert got.wait_for(1) == ["boom"]


def test_a_checkpoint_the_history_does_not_hold_is_reported(setup: Setup, bot: Bot) -> None:
    setup.send("old")
    history = bot.run().get_messages(_target(setup)).data
    old = history[0]
    route = (
        "group:" + setup.conversation if setup.dialect == "group" else "address:" + setup.room.id
    )
    with SqliteCheckpointStore(bot.store) as store:
        # A message id the history does not hold, dated just before "old".
        store.save("bot", Checkpoint(route=route, message_id="gone-" + old.id, ts=old.ts - 1))
    setup.send("newer")
    client = bot.run()
    got = Collector()
    client.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    error = got.wait_error(CheckpointNotFoundError)
    assert error.checkpoint_key == "bot"  # type: ignore[attr-defined]
    assert error.last_message_id == "gone-" + old.id  # type: ignore[attr-defined]
    # What is newer than the checkpoint's time is delivered, not skipped.
    assert got.wait_for(2) == ["old", "newer"]


def test_a_key_of_another_conversation_is_refused_before_anything_starts(
    setup: Setup, bot: Bot
) -> None:
    with SqliteCheckpointStore(bot.store) as store:
        store.save("bot", Checkpoint(route="group:somewhere-else", message_id="m1", ts=1.0))
    client = bot.run()
    with pytest.raises(InvalidArgumentError, match="belongs to group:somewhere-else"):
        client.subscribe(_target(setup), lambda m: None, checkpoint="bot")
    assert client.subscriptions == ()
    with pytest.raises(InvalidArgumentError, match="checkpoint key"):
        client.subscribe(_target(setup), lambda m: None, checkpoint="")
    with pytest.raises(InvalidArgumentError, match="checkpoint key"):
        client.stream_messages(_target(setup), checkpoint="bad\nkey")


def test_an_unreadable_store_is_raised_from_subscribe(setup: Setup, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    client = ChatClient(
        setup.me.token,
        rest_url=setup.emu.rest_url,
        relay_url=setup.emu.relay_url,
        dialect=setup.dialect,
        checkpoint_store=blocker / "checkpoints.db",
    )
    try:
        with pytest.raises(StoreUnavailableError):
            client.subscribe(_target(setup), lambda m: None, checkpoint="bot")
        assert client.subscriptions == ()
    finally:
        client.close()


def test_a_stream_saves_a_message_once_the_next_is_asked_for(setup: Setup, bot: Bot) -> None:
    client = bot.run()
    stream = client.stream_messages(_target(setup), timeout=10, checkpoint="tail")
    with stream:
        setup.send("a")
        setup.send("b")
        first = next(stream)
        assert first.text == "a"
        assert _saved(bot.store, "tail") is None  # "a" is being handled
        second = next(stream)
        assert second.text == "b"
        assert _saved_id(bot.store, "tail") == first.id
    # Leaving the block normally: "b" was handled too.
    assert _saved_id(bot.store, "tail") == second.id
    client.close()
    setup.send("c")
    again = bot.run()
    with again.stream_messages(_target(setup), timeout=10, checkpoint="tail") as resumed:
        assert next(resumed).text == "c"


def test_a_stream_left_by_an_exception_does_not_save_the_message(setup: Setup, bot: Bot) -> None:
    client = bot.run()
    setup.send("x")  # before the stream: not its business

    def handle_one() -> None:
        with client.stream_messages(_target(setup), timeout=10, checkpoint="tail") as stream:
            setup.send("y")
            assert next(stream).text == "y"
            raise ZeroDivisionError  # the handler failed on "y"

    with pytest.raises(ZeroDivisionError):
        handle_one()
    # Only where the first run started ("x", the history's newest then) is saved, not "y".
    saved = _saved(bot.store, "tail")
    assert saved is not None
    assert saved.message_id == client.get_messages(_target(setup)).data[1].id
    client.close()
    again = bot.run()
    with again.stream_messages(_target(setup), timeout=10, checkpoint="tail") as resumed:
        setup.send("z")
        # "y" was not handled: the second run gets it again, then "z".
        assert next(resumed).text == "y"
        assert next(resumed).text == "z"


class _FencedAfter:
    """A store whose saves are refused after ``n`` (another holder took the lease)."""

    def __init__(self, n: int) -> None:
        self.inner = SqliteCheckpointStore(":memory:")
        self.left = n

    def load(self, key: str) -> Checkpoint | None:
        return self.inner.load(key)

    def save(self, key: str, checkpoint: Checkpoint, *, fencing_token: int | None = None) -> None:
        if self.left <= 0:
            raise FencedWriteError("refused: the lease is someone else's", fencing_token=7)
        self.left -= 1
        self.inner.save(key, checkpoint)

    def close(self) -> None:
        self.inner.close()


def test_a_fenced_save_ends_the_subscription(setup: Setup) -> None:
    store = _FencedAfter(1)
    bot = Bot(setup, store)
    try:
        client = bot.run()
        got = Collector()
        sub = client.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
        setup.send("mine")
        setup.send("no longer mine")
        error = got.wait_error(FencedWriteError)
        assert error.fencing_token == 7  # type: ignore[attr-defined]
        assert wait_until(lambda: not sub.active)
        witness = Collector()
        setup.client(setup.other.token).subscribe(
            _target(setup), witness.on_message, witness.on_error
        )
        setup.send("after")
        assert witness.wait_for(1) == ["after"]  # delivered by now, had it still been active
        assert got.texts == ["mine", "no longer mine"]  # handled, then it stopped
    finally:
        bot.close()
        store.close()


def test_the_default_store_is_a_file_under_the_state_directory(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNALWIRE_CHAT_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    path = default_checkpoint_path()
    assert path == tmp_path / "xdg" / "signalwire-chat" / "checkpoints.db"
    bot = Bot(setup, None)
    try:
        got = Collector()
        bot.run().subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
        setup.send("hello")
        assert got.wait_for(1) == ["hello"]
        assert wait_until(lambda: path.exists() and _saved(path, "bot") is not None)
    finally:
        bot.close()
    monkeypatch.setenv("SIGNALWIRE_CHAT_CHECKPOINTS", str(tmp_path / "explicit.db"))
    assert default_checkpoint_path() == tmp_path / "explicit.db"


def test_the_inbox_resumes_from_its_checkpoint(signalwire_emulator: Any, tmp_path: Path) -> None:
    setup = Setup(signalwire_emulator, "group")
    bot = Bot(setup, tmp_path / "cp.db")
    try:
        first = bot.run()
        got = Collector()
        first.subscribe_inbox(got.on_message, got.on_error, checkpoint="inbox")
        setup.send("hi")
        assert got.wait_for(1) == ["hi"]
        assert wait_until(lambda: _saved(bot.store, "inbox") is not None)
        first.close()
        setup.send("while down")
        got2 = Collector()
        bot.run().subscribe_inbox(got2.on_message, got2.on_error, checkpoint="inbox")
        assert got2.wait_for(1) == ["while down"]
        assert got2.messages[0].delivery == "catch_up"
        assert got2.errors == []
    finally:
        bot.close()
        setup.close()
