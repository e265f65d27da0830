"""The Redis checkpoint store against a real redis-server: round trips, fences, corrupt data."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from signalwire_chat import (
    Checkpoint,
    CheckpointStore,
    ClientClosedError,
    CorruptCheckpointError,
    FencedWriteError,
    InvalidArgumentError,
    StoreUnavailableError,
)
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease


def _cp(n: int, route: str = "group:g") -> Checkpoint:
    return Checkpoint(route=route, message_id=f"m-{n}", ts=1700000000.0 + n)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    yield client
    client.close()


def test_round_trip_unfenced(redis_server: RedisServer) -> None:
    with RedisCheckpointStore(redis_server.url) as store:
        assert isinstance(store, CheckpointStore)
        assert store.load("bot") is None
        store.save("bot", _cp(1))
        store.save("bot", _cp(2, "inbox"))
        assert store.load("bot") == _cp(2, "inbox")
    with RedisCheckpointStore(redis_server.url) as other:  # another replica sees it
        assert other.load("bot") == _cp(2, "inbox")
        other.close()
        with pytest.raises(ClientClosedError):
            other.load("bot")


def test_token_without_a_lease_is_fenced_by_the_highest_seen(redis_server: RedisServer) -> None:
    with RedisCheckpointStore(redis_server.url) as store:
        store.save("k", _cp(1), fencing_token=2)
        store.save("k", _cp(2), fencing_token=7)
        with pytest.raises(FencedWriteError) as info:
            store.save("k", _cp(3), fencing_token=6)
        assert info.value.fencing_token == 6
        assert store.load("k") == _cp(2)


@pytest.mark.parametrize(
    "setup",
    [
        lambda r: r.set("signalwire-chat:checkpoint:k", "a string"),
        lambda r: r.hset("signalwire-chat:checkpoint:k", "token", "1"),
        lambda r: r.hset("signalwire-chat:checkpoint:k", "body", "{not json"),
        lambda r: r.hset("signalwire-chat:checkpoint:k", "body", '{"route":"x"}'),
        lambda r: r.hset("signalwire-chat:checkpoint:k", "body", b"\xff\xfe"),
    ],
)
def test_foreign_data_is_reported_not_trusted(
    redis_server: RedisServer, raw: redis.Redis, setup: object
) -> None:
    setup(raw)  # type: ignore[operator]
    with RedisCheckpointStore(redis_server.url) as store, pytest.raises(CorruptCheckpointError):
        store.load("k")


def test_bad_arguments_are_refused_before_sending(redis_server: RedisServer) -> None:
    with RedisCheckpointStore(redis_server.url) as store:
        with pytest.raises(InvalidArgumentError):
            store.save("", _cp(1))
        with pytest.raises(InvalidArgumentError):
            store.save("k", "m-1")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError):
            store.save_and_append("k", _cp(1), stream="s", fields={})
        with pytest.raises(InvalidArgumentError):
            store.save_and_append("k", _cp(1), stream="s", fields={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentError):
        RedisCheckpointStore("http://127.0.0.1:1")


def test_unreachable_redis_is_a_clear_error(redis_server: RedisServer) -> None:
    with RedisCheckpointStore(redis_server.url, timeout=1) as store:
        redis_server.stop()
        with pytest.raises(StoreUnavailableError) as info:
            store.load("k")
        assert isinstance(info.value, ConnectionError)


def test_save_through_a_lease_and_append_to_a_stream(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    with (
        RedisLease(redis_server.url, name="bridge", ttl=5) as lease,
        RedisCheckpointStore(redis_server.url, lease=lease) as store,
    ):
        with pytest.raises(FencedWriteError, match="never acquired"):
            store.save("k", _cp(1))
        token = lease.acquire(timeout=5)
        entry = store.save_and_append("k", _cp(1), stream="chat", fields={"id": "m-1"})
        store.save("k", _cp(2), fencing_token=token)
        with pytest.raises(FencedWriteError):
            store.save("k", _cp(3), fencing_token=token + 1)  # not this lease's token
        assert store.load("k") == _cp(2)
        assert [e[0].decode() for e in raw.xrange("chat")] == [entry]
        # Someone deletes the lease key (or it expired): the next write is refused by Redis,
        # whatever this process believes, and the stream gets nothing.
        raw.delete(lease.key)
        with pytest.raises(FencedWriteError):
            store.save_and_append("k", _cp(4), stream="chat", fields={"id": "m-4"})
        assert raw.xlen("chat") == 1
        assert store.load("k") == _cp(2)


def test_a_password_in_the_url_never_shows_in_errors(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    url = f"redis://:s3cret-pw@127.0.0.1:{port}/0"
    with RedisCheckpointStore(url, timeout=1) as store:
        with pytest.raises(StoreUnavailableError) as info:
            store.load("k")
        assert "s3cret-pw" not in str(info.value)
        assert "s3cret-pw" not in repr(store)
    with RedisLease(url, name="bot", ttl=1) as lease:
        with pytest.raises(StoreUnavailableError) as info:
            lease.try_acquire()
        assert "s3cret-pw" not in str(info.value)
        assert "s3cret-pw" not in repr(lease)
