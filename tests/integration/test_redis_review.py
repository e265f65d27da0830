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
