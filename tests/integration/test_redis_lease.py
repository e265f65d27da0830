"""The lease in one process against a real redis-server: exclusion, renewal, loss, restart."""

from __future__ import annotations

import math
import threading

import pytest
import redis

from signalwire_chat import (
    Checkpoint,
    ClientClosedError,
    FencedWriteError,
    InvalidArgumentError,
    LeaseTimeoutError,
)
from signalwire_chat.pytest_plugin import RedisServer, RedisServerFactory
from signalwire_chat.redis import RedisCheckpointStore, RedisLease


def _cp(n: int) -> Checkpoint:
    return Checkpoint(route="inbox", message_id=f"m-{n}", ts=float(n))


def test_one_holder_tokens_increase_release_hands_over(redis_server: RedisServer) -> None:
    with (
        RedisLease(redis_server.url, name="bot", ttl=3) as a,
        RedisLease(redis_server.url, name="bot", ttl=3) as b,
    ):
        first = a.acquire(timeout=5)
        assert a.held
        assert a.try_acquire() == first  # already ours
        assert b.try_acquire() is None
        assert not b.held
        with pytest.raises(LeaseTimeoutError):
            b.acquire(timeout=0.3)
        a.release()
        assert not a.held
        second = b.acquire(timeout=5)
        assert second > first
        assert b.token == second


def test_renewal_keeps_it_past_the_ttl(redis_server: RedisServer) -> None:
    lost = threading.Event()
    with (
        RedisLease(redis_server.url, name="bot", ttl=1, on_lost=lost.set) as a,
        RedisLease(redis_server.url, name="bot", ttl=1) as b,
    ):
        a.acquire(timeout=5)
        # b keeps trying for three TTLs; a's renewals must keep it out all along.
        with pytest.raises(LeaseTimeoutError):
            b.acquire(timeout=3)
        assert a.held
        assert not lost.is_set()


def test_a_lease_taken_away_is_noticed_and_reported(redis_server: RedisServer) -> None:
    lost = threading.Event()
    raw = redis.Redis.from_url(redis_server.url)
    try:
        with RedisLease(redis_server.url, name="bot", ttl=1.5, on_lost=lost.set) as a:
            a.acquire(timeout=5)
            raw.delete(a.key)
            assert a.wait_lost(timeout=3)
            assert lost.is_set()
            assert not a.held
            assert a.token is None
            assert a.acquire(timeout=5) >= 1  # and it can be taken again
    finally:
        raw.close()


def test_redis_restarted_holder_notices_waits_and_reacquires(redis_server: RedisServer) -> None:
    with (
        RedisLease(redis_server.url, name="bot", ttl=2) as lease,
        RedisCheckpointStore(redis_server.url, lease=lease, timeout=1) as store,
    ):
        old = lease.acquire(timeout=5)
        store.save("k", _cp(1))
        redis_server.restart()  # no persistence: the lease key and the counter are gone
        assert lease.wait_lost(timeout=2 + 1)
        with pytest.raises(FencedWriteError):  # the old acquisition may not write any more
            store.save("k", _cp(2), fencing_token=old)
        new = lease.acquire(timeout=5)
        store.save("k", _cp(3))
        assert store.load("k") == _cp(3)
        assert lease.held
        assert new >= 1


def test_redis_down_longer_than_the_ttl_loses_the_lease(redis_server: RedisServer) -> None:
    with RedisLease(redis_server.url, name="bot", ttl=1) as lease:
        lease.acquire(timeout=5)
        redis_server.stop()
        assert lease.wait_lost(timeout=1 + 2)
        assert not lease.held
        with pytest.raises(LeaseTimeoutError):
            lease.acquire(timeout=0.5)  # Redis still down: waited through, then a timeout
        redis_server.start()
        assert lease.acquire(timeout=5) >= 1


def test_close_stops_the_thread_and_releases(redis_server: RedisServer) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    try:
        lease = RedisLease(redis_server.url, name="bot", ttl=30)
        assert not [t for t in threading.enumerate() if t.name.startswith("signalwire-chat-lease")]
        lease.acquire(timeout=5)
        assert raw.exists(lease.key)
        lease.close()
        lease.close()
        assert not raw.exists(lease.key)  # released, not left to expire
        assert not [t for t in threading.enumerate() if t.name.startswith("signalwire-chat-lease")]
        with pytest.raises(ClientClosedError):
            lease.try_acquire()
    finally:
        raw.close()


def test_close_wakes_a_standby(redis_server: RedisServer) -> None:
    with RedisLease(redis_server.url, name="bot", ttl=30) as holder:
        holder.acquire(timeout=5)
        standby = RedisLease(redis_server.url, name="bot", ttl=30)
        errors: list[BaseException] = []

        def wait() -> None:
            try:
                standby.acquire(timeout=60)
            except ClientClosedError as exc:
                errors.append(exc)

        waiter = threading.Thread(target=wait)
        waiter.start()
        standby.close()
        waiter.join(5)
        assert not waiter.is_alive()
        assert len(errors) == 1


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": float("inf")},
        {"renew_interval": 5, "ttl": 5},
        {"owner": "a b"},
    ],
)
def test_bad_options(redis_server: RedisServer, options: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        RedisLease(redis_server.url, name="bot", **options)  # type: ignore[arg-type]


def test_wait_lost_without_limit_is_woken_by_close(redis_server: RedisServer) -> None:
    lease = RedisLease(redis_server.url, name="bot", ttl=30)
    lease.acquire(timeout=5)
    woken = threading.Event()

    def wait() -> None:
        if lease.wait_lost(timeout=math.inf):
            woken.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert not lease.wait_lost(timeout=0.1)  # held: not lost
    lease.close()
    waiter.join(5)
    assert woken.is_set()


def test_a_short_restart_with_persistence_keeps_the_lease(
    redis_server_factory: RedisServerFactory,
) -> None:
    server = redis_server_factory(persistence=True)
    with (
        RedisLease(server.url, name="bot", ttl=4) as a,
        RedisLease(server.url, name="bot", ttl=4) as b,
        RedisCheckpointStore(server.url, lease=a, timeout=1) as store,
    ):
        token = a.acquire(timeout=5)
        store.save("k", _cp(1))
        server.restart()  # the AOF keeps the key with its expiry: the holder waits it out
        with pytest.raises(LeaseTimeoutError):
            b.acquire(timeout=4)  # a full TTL: a's renewals resumed in time
        assert not a.wait_lost(timeout=0)
        assert a.token == token
        store.save("k", _cp(2))
        assert store.load("k") == _cp(2)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_standby_backs_off_while_redis_is_away_and_polls_while_it_answers(
    redis_server: RedisServer,
) -> None:
    """Both sides of one rule: an outage meets growing, jittered waits (standbys do not all
    knock at once when Redis returns); a held lease is polled every retry_interval, so a
    standby takes over soon after the holder goes."""
    import time

    from signalwire_chat import LeaseTimeoutError

    attempts: list[float] = []

    class Counted(RedisLease):
        def try_acquire(self) -> int | None:
            attempts.append(time.monotonic())
            return super().try_acquire()

    away = Counted(f"redis://127.0.0.1:{_closed_port()}/0", name="bot", ttl=2, retry_interval=0.1)
    try:
        with pytest.raises(LeaseTimeoutError):
            away.acquire(timeout=2.0)
    finally:
        away.close()
    # A fixed 0.1 s would be ~20 attempts; the back-off grows to 0.4 s: about 8.
    assert 3 <= len(attempts) <= 12, len(attempts)
    attempts.clear()
    with RedisLease(redis_server.url, name="bot", ttl=2) as holder:
        assert holder.acquire(timeout=5) > 0
        standby = Counted(redis_server.url, name="bot", ttl=2, retry_interval=0.1)
        try:
            with pytest.raises(LeaseTimeoutError):
                standby.acquire(timeout=1.0)
        finally:
            standby.close()
    assert len(attempts) >= 8, len(attempts)  # polled every 0.1 s while Redis answered
