"""The bridge never skips a message silently.

Text that UTF-8 cannot carry (a lone surrogate: JSON allows ``"\\ud800"``, so a service can
send it) is appended as JSON escapes; a message that cannot be appended at all stops the
bridge with an error naming it, the checkpoint still before it. The messages are the ones a
live subscription hands to its checkpoint (``Subscription.advance``, what the dispatcher calls
after the callback), built from a message the emulator really delivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs
import pytest
import redis
from test_bridge import STREAM, Running, _texts
from test_realtime_support import FAST, Setup, wait_until

from signalwire_chat import RealtimeOptions, StoreError
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.models import ConversationChatMessage
from signalwire_chat.pytest_plugin import RedisServer


@pytest.fixture
def world(signalwire_emulator: Any) -> Iterator[Setup]:
    w = Setup(signalwire_emulator, "group", realtime=RealtimeOptions(**FAST))
    yield w
    w.close()


class Bridged:
    """A running bridge of ``world.me`` following the room; ``errors`` told to on_error."""

    def __init__(self, world: Setup, url: str) -> None:
        self.client = world.client()
        self.room = world.room.id
        self.errors: list[BaseException] = []
        self.running = Running(
            StreamBridge(
                self.client,
                url,
                stream=STREAM,
                name="b",
                targets=[world.room.id],
                on_error=self.errors.append,
            )
        )
        assert wait_until(lambda: self.running.bridge.leading and bool(self.client.subscriptions))

    def delivered(self, **changes: Any) -> ConversationChatMessage:
        """The room's newest message as the service sent it, with ``changes``."""
        newest = next(iter(self.client.get_messages(self.room)))
        return attrs.evolve(newest, **changes)

    def hand_over(self, message: ConversationChatMessage) -> None:
        self.client.subscriptions[0].advance(message)


def _raw(url: str) -> list[dict[bytes, bytes]]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return [fields for _id, fields in r.xrange(STREAM)]


def _checkpoint(url: str) -> str:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        keys = r.keys("signalwire-chat:checkpoint:*")
        assert len(keys) == 1
        body = r.hget(keys[0], "body")
    assert body is not None
    message_id: str = json.loads(body)["message_id"]
    return message_id


def test_a_lone_surrogate_is_appended_escaped_not_skipped(
    world: Setup, redis_server: RedisServer
) -> None:
    bridged = Bridged(world, redis_server.url)
    try:
        world.send("before é")
        assert wait_until(lambda: _texts(redis_server.url) == ["before é"])
        odd = bridged.delivered(
            id="odd-1", text="half \ud800 a pair", ts=bridged.delivered().ts + 1
        )
        bridged.hand_over(odd)
        world.send("after")
        assert wait_until(lambda: len(_texts(redis_server.url)) >= 3)
    finally:
        bridged.running.stop()
    # Each one once, in order, and json.loads gives back the very text.
    assert _texts(redis_server.url) == ["before é", "half \ud800 a pair", "after"]
    raw = [fields[b"message"] for fields in _raw(redis_server.url)]
    assert "é".encode() in raw[0]  # text UTF-8 can carry stays readable
    assert b"\\ud800" in raw[1]
    assert bridged.errors == []


@pytest.mark.parametrize("bad_id", ["nul\x00in-id", "lone-\udfff"])
def test_a_message_that_cannot_be_appended_stops_the_bridge_naming_it(
    world: Setup, redis_server: RedisServer, bad_id: str
) -> None:
    bridged = Bridged(world, redis_server.url)
    try:
        world.send("before")
        assert wait_until(lambda: _texts(redis_server.url) == ["before"])
        before_id = _checkpoint(redis_server.url)
        bridged.hand_over(bridged.delivered(id=bad_id, ts=bridged.delivered().ts + 1))
        bridged.running.thread.join(10)
        assert not bridged.running.thread.is_alive()
        world.send("after")  # not appended past it: the bridge has stopped
    finally:
        bridged.running.bridge.close()
        bridged.running.thread.join(10)
    error = bridged.running.error
    assert isinstance(error, StoreError)
    assert ascii(bad_id) in str(error)
    assert bridged.errors == [error]
    assert _texts(redis_server.url) == ["before"]
    assert _checkpoint(redis_server.url) == before_id
    assert not bridged.running.bridge.leading
