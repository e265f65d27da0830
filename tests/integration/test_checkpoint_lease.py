"""Two replicas of a bot on a real Redis: the lease holder subscribes with a shared, fenced
checkpoint; when it loses the lease its subscription ends, and the next holder resumes from the
checkpoint. Nothing is lost; a repeat is at most the message whose save was refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from test_realtime_support import FAST, wait_until

from signalwire_chat import ChatClient, FencedWriteError, RealtimeOptions
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease


class Replica:
    def __init__(self, emu: Any, token: str, url: str, name: str) -> None:
        self.name = name
        self.lease = RedisLease(url, name="bot", ttl=1.0)
        self.store = RedisCheckpointStore(url, lease=self.lease)
        self.client = ChatClient(
            token,
            rest_url=emu.rest_url,
            relay_url=emu.relay_url,
            realtime=RealtimeOptions(**FAST),
            checkpoint_store=self.store,
        )
        self.handled: list[str] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def handle(self, message: Any) -> None:
        with self.lock:
            self.handled.append(message.text)

    def lead(self, target: str) -> Any:
        self.lease.acquire(10)
        return self.client.subscribe(target, self.handle, self.errors.append, checkpoint="bot")

    def close(self) -> None:
        self.client.close()
        self.store.close()
        self.lease.close()


@pytest.fixture
def replicas(signalwire_emulator: Any, redis_server: RedisServer) -> Iterator[Any]:
    emu = signalwire_emulator
    me = emu.create_subscriber()
    other = emu.create_subscriber()
    room = emu.create_room("lease-room")
    emu.join_group(me, [room.id])
    emu.join_group(other, [room.id])
    a = Replica(emu, me.token, redis_server.url, "a")
    b = Replica(emu, me.token, redis_server.url, "b")
    yield emu, other, room, a, b, redis_server.url
    a.close()
    b.close()


def test_the_next_holder_resumes_from_the_fenced_checkpoint(replicas: Any) -> None:
    emu, other, room, a, b, url = replicas

    def send(text: str) -> None:
        emu.send_as(other, room.id, text, dialect="group")

    sub_a = a.lead(room.id)
    for i in range(5):
        send(f"a{i}")
    assert wait_until(lambda: len(a.handled) == 5)
    # A stalls past its TTL (a GC pause, a partition): Redis forgets its lease, B takes it.
    with redis.Redis.from_url(url) as r:
        r.delete("signalwire-chat:lease:bot")
    assert b.lease.try_acquire() is not None
    send("while a still believes")  # A handles it, but its save is refused
    assert wait_until(lambda: any(isinstance(e, FencedWriteError) for e in a.errors))
    assert wait_until(lambda: not sub_a.active)  # A stops acting
    assert sum(isinstance(e, FencedWriteError) for e in a.errors) == 1  # said once
    for i in range(5):
        send(f"b{i}")
    b.client.subscribe(room.id, b.handle, b.errors.append, checkpoint="bot")
    send("live on b")
    expected = ["while a still believes"] + [f"b{i}" for i in range(5)] + ["live on b"]
    assert wait_until(lambda: b.handled == expected), b.handled
    assert a.handled == [f"a{i}" for i in range(5)] + ["while a still believes"]
    assert b.errors == []
