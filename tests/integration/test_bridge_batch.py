"""The bridge appends a whole delivery batch in one fenced script, keeping "both or neither".

Against a real redis-server (and the emulator for the bridge itself): a batch's entries go in
order with the checkpoint of the last one in one round trip; an entry Redis refuses in the
middle leaves the ones before it appended and checkpointed and none after it; a holder that
lost the lease appends nothing of a batch; a retried batch appends nothing twice. Round trips
are counted by Redis itself (``INFO commandstats``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import redis
from test_bridge import STREAM, Running, _entries, _texts
from test_realtime_support import FAST, Setup, wait_until

from signalwire_chat import (
    Checkpoint,
    FencedWriteError,
    Group,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RealtimeOptions,
    StoreError,
)
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import EntryRefusedError, RedisCheckpointStore, RedisLease

#: The last id a stream can hold; an entry added after it is refused ("exhausted").
_LAST_MS = 2**64 - 1


@pytest.fixture
def world(signalwire_emulator: Any) -> Iterator[Setup]:
    w = Setup(signalwire_emulator, "group", realtime=RealtimeOptions(**FAST))
    yield w
    w.close()


def _scripts(url: str) -> int:
    """How many scripts Redis ran since the last reset (EVAL and EVALSHA calls)."""
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        stats = r.info("commandstats")
    return sum(
        int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("eval", "evalsha")
    )


def _reset_stats(url: str) -> None:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        r.config_resetstat()


def _room_for(url: str, entries: int) -> None:
    """Make the stream hold only ``entries`` more entries (ids run out after that)."""
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        seed = r.xadd(STREAM, {"seed": "1"}, id=f"{_LAST_MS}-{2**64 - 1 - entries}")
        r.xdel(STREAM, seed)  # the stream's last id stays


def _checkpoint_id(url: str, key: str) -> str | None:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        body = r.hget(f"signalwire-chat:checkpoint:{key}", "body")
    return None if body is None else str(json.loads(body)["message_id"])


def _batch(*ids: str) -> list[tuple[Checkpoint, dict[str, str]]]:
    return [
        (Checkpoint(route="inbox", message_id=i, ts=float(n)), {"id": i}) for n, i in enumerate(ids)
    ]


def _ids(url: str) -> list[str]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return [fields[b"id"].decode() for _, fields in r.xrange(STREAM) if b"id" in fields]


@pytest.fixture
def fenced(redis_server: RedisServer) -> Iterator[tuple[RedisLease, RedisCheckpointStore]]:
    with (
        RedisLease(redis_server.url, name="batch", ttl=30) as lease,
        RedisCheckpointStore(redis_server.url, lease=lease) as store,
    ):
        lease.acquire(5)
        yield lease, store


# --- the store: one script per batch ---------------------------------------------------------


def test_a_batch_is_appended_in_order_with_its_last_checkpoint_in_one_script(
    redis_server: RedisServer, fenced: tuple[RedisLease, RedisCheckpointStore]
) -> None:
    _lease, store = fenced
    store.save_and_append_many("k", _batch("m0"), stream=STREAM)  # the script is loaded
    _reset_stats(redis_server.url)
    store.save_and_append_many("k", _batch("m1", "m2", "m3", "m4"), stream=STREAM)
    assert _scripts(redis_server.url) == 1
    assert _ids(redis_server.url) == ["m0", "m1", "m2", "m3", "m4"]
    assert _checkpoint_id(redis_server.url, "k") == "m4"


def test_a_retried_batch_appends_nothing_twice(
    redis_server: RedisServer, fenced: tuple[RedisLease, RedisCheckpointStore]
) -> None:
    _lease, store = fenced
    store.save_and_append_many("k", _batch("m1", "m2"), stream=STREAM)
    # The answer was lost: the same batch again appends nothing; a batch that overlaps what
    # the checkpoint covers appends only what follows it.
    store.save_and_append_many("k", _batch("m1", "m2"), stream=STREAM)
    assert _ids(redis_server.url) == ["m1", "m2"]
    store.save_and_append_many("k", _batch("m1", "m2", "m3"), stream=STREAM)
    assert _ids(redis_server.url) == ["m1", "m2", "m3"]
    assert _checkpoint_id(redis_server.url, "k") == "m3"


@pytest.mark.parametrize("room", [2, 0])
def test_an_entry_refused_mid_batch_leaves_those_before_it_done_and_none_after(
    redis_server: RedisServer, fenced: tuple[RedisLease, RedisCheckpointStore], room: int
) -> None:
    _lease, store = fenced
    store.save_and_append_many("k", _batch("m0"), stream=STREAM)
    _room_for(redis_server.url, room)  # the entry at index ``room`` is refused
    with pytest.raises(EntryRefusedError) as refused:
        store.save_and_append_many("k", _batch("m1", "m2", "m3", "m4"), stream=STREAM)
    assert refused.value.index == room
    assert "exhausted" in str(refused.value)
    done = ["m0", "m1", "m2", "m3", "m4"][: room + 1]
    assert _ids(redis_server.url) == done
    assert _checkpoint_id(redis_server.url, "k") == done[-1]


def test_a_holder_that_lost_the_lease_appends_nothing_of_a_batch(
    redis_server: RedisServer, fenced: tuple[RedisLease, RedisCheckpointStore]
) -> None:
    lease, store = fenced
    store.save_and_append_many("k", _batch("m1", "m2"), stream=STREAM)
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as r:
        r.delete(lease.key)  # expired while this holder was paused...
    with (
        RedisLease(redis_server.url, name="batch", ttl=30) as other,
        RedisCheckpointStore(redis_server.url, lease=other) as theirs,
    ):
        other.acquire(5)  # ...and taken over
        with pytest.raises(FencedWriteError):
            store.save_and_append_many("k", _batch("m3", "m4", "m5"), stream=STREAM)
        assert not lease.held
        assert _ids(redis_server.url) == ["m1", "m2"]
        assert _checkpoint_id(redis_server.url, "k") == "m2"
        # The new holder appends the same batch from the shared checkpoint, once.
        theirs.save_and_append_many("k", _batch("m3", "m4", "m5"), stream=STREAM)
    assert _ids(redis_server.url) == ["m1", "m2", "m3", "m4", "m5"]


# --- the bridge: a delivery batch is one script ----------------------------------------------


def _bridge(world: Setup, url: str, *, leading: bool = True, **options: Any) -> Running:
    """A bridge of a new client following the room (``leading``: once it leads)."""
    client = world.client()
    running = Running(
        StreamBridge(client, url, stream=STREAM, name="b", targets=[world.room.id], **options)
    )
    if leading:
        assert wait_until(lambda: running.bridge.leading and bool(client.subscriptions))
    return running


def _down_after_one(world: Setup, url: str, missed: list[str]) -> None:
    """A first run appends "before"; then ``missed`` are sent while no bridge runs."""
    first = _bridge(world, url)
    try:
        world.send("before")
        assert wait_until(lambda: _texts(url) == ["before"])
    finally:
        first.stop()
    for text in missed:
        world.send(text)


def test_a_catch_up_is_appended_in_order_in_a_few_scripts_not_one_per_message(
    world: Setup, redis_server: RedisServer
) -> None:
    missed = [f"while down {i:02d}" for i in range(40)]
    _down_after_one(world, redis_server.url, missed)
    _reset_stats(redis_server.url)
    again = _bridge(world, redis_server.url)
    try:
        assert wait_until(lambda: len(_texts(redis_server.url)) == 41, 30)
        scripts = _scripts(redis_server.url)
        world.send("live")
        assert wait_until(lambda: len(_texts(redis_server.url)) == 42)
    finally:
        again.stop()
    assert _texts(redis_server.url) == ["before", *missed, "live"]
    # The lease's acquisition, one script for the catch-up read's 40 messages (two if a live
    # event split it), a renewal perhaps: a few, where one per message made 41.
    assert scripts <= 4, scripts
    entries = _entries(redis_server.url)
    assert [e["message"]["delivery"] for e in entries[1:41]] == ["catch_up"] * 40
    assert _checkpoint_id(redis_server.url, f"b:group:{world.conversation}") == entries[-1]["id"]


def test_redis_refusing_an_entry_mid_batch_stops_the_bridge_there(
    world: Setup, redis_server: RedisServer
) -> None:
    _down_after_one(world, redis_server.url, [f"missed {i}" for i in range(4)])
    _room_for(redis_server.url, 2)
    errors: list[BaseException] = []
    running = _bridge(world, redis_server.url, leading=False, on_error=errors.append)
    client = running.bridge.client
    running.thread.join(30)
    assert not running.thread.is_alive()
    error = running.error
    assert isinstance(error, StoreError)
    assert "exhausted" in str(error)
    missed = [m for m in client.get_messages(world.room.id) if m.text.startswith("missed")]
    refused = next(m for m in missed if m.text == "missed 2")
    assert ascii(refused.id) in str(error)
    assert errors == [error]
    # Those before it appended and checkpointed, none after it.
    assert _texts(redis_server.url) == ["before", "missed 0", "missed 1"]
    saved = _checkpoint_id(redis_server.url, f"b:group:{world.conversation}")
    assert saved == next(m.id for m in missed if m.text == "missed 1")
    assert running.bridge.appended == 2


def test_an_unappendable_message_mid_batch_leaves_those_before_it_done_and_none_after(
    world: Setup, redis_server: RedisServer
) -> None:
    errors: list[BaseException] = []
    running = _bridge(world, redis_server.url, on_error=errors.append)
    client = running.bridge.client
    try:
        world.send("before")
        assert wait_until(lambda: _texts(redis_server.url) == ["before"])
        newest = next(iter(client.get_messages(world.room.id)))
        batch = [
            attrs.evolve(newest, id=f"batch-{n}", text=text, ts=newest.ts + n + 1)
            for n, text in enumerate(["one", "two", "bad", "four"])
        ]
        batch[2] = attrs.evolve(batch[2], id="nul\x00in-id")
        # What the dispatcher hands over at the end of a batch whose callbacks returned.
        client.subscriptions[0].checkpoint.advance_many(batch)
        running.thread.join(10)
        assert not running.thread.is_alive()
    finally:
        running.bridge.close()
        running.thread.join(10)
    error = running.error
    assert isinstance(error, StoreError)
    assert ascii("nul\x00in-id") in str(error)
    assert _texts(redis_server.url) == ["before", "one", "two"]
    assert _checkpoint_id(redis_server.url, f"b:group:{world.conversation}") == "batch-1"


@pytest.mark.parametrize("window", [-1, 1.5, float("inf")])
def test_a_bad_batch_window_is_refused(
    world: Setup, redis_server: RedisServer, window: float
) -> None:
    with pytest.raises(InvalidArgumentError, match="batch_window"):
        StreamBridge(world.client(), redis_server.url, stream=STREAM, name="b", batch_window=window)


def test_with_no_batch_window_each_delivery_batch_is_appended_at_once(
    world: Setup, redis_server: RedisServer
) -> None:
    running = _bridge(world, redis_server.url, batch_window=0)
    try:
        world.send("one")
        assert wait_until(lambda: _texts(redis_server.url) == ["one"])
        world.send("two")
        assert wait_until(lambda: _texts(redis_server.url) == ["one", "two"])
    finally:
        running.stop()


@pytest.mark.parametrize(
    ("target", "error", "words"),
    [
        ("lobby", InvalidArgumentError, "targets 'lobby' is not an address id"),
        (7, InvalidArgumentTypeError, "targets must be a str"),
        (Group(id="g-1", from_address_id="a\nb"), InvalidArgumentError, "group.from_address_id"),
    ],
)
def test_targets_are_checked_as_the_clients_chat_methods_check_them(
    world: Setup, redis_server: RedisServer, target: Any, error: type[Exception], words: str
) -> None:
    client = world.client()
    with pytest.raises(error) as refused:
        client.check_target(target, "targets")
    assert words in str(refused.value)
    with pytest.raises(error, match=re.escape(str(refused.value))):
        StreamBridge(client, redis_server.url, stream=STREAM, name="b", targets=[target])
