"""Review: hostile values in the lease's keys give a clear error, never a silent livelock."""

from __future__ import annotations

import pytest
import redis

from signalwire_chat import Checkpoint, StoreError
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease


@pytest.mark.parametrize("count", [str(10**14 - 1), str(10**15), "-3", "-1", "007x", "1e5"])
def test_a_fencing_counter_not_of_ours_is_a_clear_error_and_no_lease_is_set(
    redis_server: RedisServer, count: str
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:fence:bot", count)
        with RedisLease(redis_server.url, name="bot", ttl=5) as lease:
            if count == str(10**14 - 1):
                # The largest count still of ours: the token is written as digits, so the
                # holder's renewals and fenced writes find its own value.
                token = lease.acquire(5)
                assert token == 10**14
                assert raw.get("signalwire-chat:lease:bot") == f"{10**14} {lease.owner}".encode()
                with RedisCheckpointStore(redis_server.url, lease=lease) as store:
                    store.save("k", Checkpoint(route="inbox", message_id="m", ts=1.0))
                assert lease.held
                return
            with pytest.raises(StoreError, match="fencing counter"):
                lease.try_acquire()
            assert raw.exists("signalwire-chat:lease:bot") == 0  # nobody is blocked meanwhile


@pytest.mark.parametrize(
    "setup",
    [
        lambda r: r.set("signalwire-chat:lease:bot", "5 ghost"),  # no expiry: never goes
        lambda r: r.hset("signalwire-chat:lease:bot", "a", "b"),
        lambda r: r.rpush("signalwire-chat:lease:bot", "5 ghost"),
    ],
)
def test_a_lease_key_that_never_expires_is_a_clear_error_not_a_silent_standby(
    redis_server: RedisServer, setup: object
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        setup(raw)  # type: ignore[operator]
        with RedisLease(redis_server.url, name="bot", ttl=1, retry_interval=0.05) as lease:
            with pytest.raises(StoreError, match="holds no lease of ours"):
                lease.acquire(2)  # before: LeaseTimeoutError (and acquire(inf): forever)


def test_a_lease_held_by_another_still_means_stand_by(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:lease:bot", "5 other", px=600)
        with RedisLease(redis_server.url, name="bot", ttl=1, retry_interval=0.05) as lease:
            assert lease.try_acquire() is None
            assert lease.acquire(3) == 1  # once the other's expired
