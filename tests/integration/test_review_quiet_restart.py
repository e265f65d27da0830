"""Review: a bot (or bridge) that handled nothing yet, restarted or failed over, loses nothing.

The first run has no checkpoint and starts from now; it saves one only once a message is
handled. A quiet first run that ends (a deploy, a crash, a lease handover) leaves none, so the
next run starts from *its* now: what was sent in between is never delivered.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from test_checkpoint_subscribe import Bot, _target
from test_realtime_support import FAST, Collector, Setup, setup_fixture, wait_until

from signalwire_chat import RealtimeOptions
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.pytest_plugin import RedisServer

setup = setup_fixture("group")


@pytest.fixture
def bot(setup: Setup, tmp_path: Path) -> Iterator[Bot]:
    b = Bot(setup, tmp_path / "state" / "checkpoints.db")
    yield b
    b.close()


def test_a_quiet_first_run_restarted_loses_nothing(setup: Setup, bot: Bot) -> None:
    setup.send("before the first run")  # history is not empty: there is a "now" to start at
    first = bot.run()
    got = Collector()
    first.subscribe(_target(setup), got.on_message, got.on_error, checkpoint="bot")
    first.close()  # redeployed before anyone wrote
    setup.send("while down")
    second = bot.run()
    again = Collector()
    second.subscribe(_target(setup), again.on_message, again.on_error, checkpoint="bot")
    setup.send("after")
    assert again.wait_for(2, timeout=10) == ["while down", "after"]


def _texts(url: str, stream: str) -> list[str]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return [json.loads(f[b"message"])["text"] for _, f in r.xrange(stream)]


def test_a_bridge_handover_before_the_first_message_loses_nothing(
    setup: Setup, redis_server: RedisServer
) -> None:
    from test_bridge import Running

    setup.send("before the first run")
    room = setup.room.id

    def bridge() -> Running:
        client = setup.client(realtime=RealtimeOptions(**FAST))
        return Running(StreamBridge(client, redis_server.url, stream="s", name="b", targets=[room]))

    first = bridge()
    assert wait_until(lambda: first.bridge.leading and bool(first.bridge.client.subscriptions))
    first.stop()  # a graceful handover (a deploy); a crash is the same after the TTL
    setup.send("between the two leaders")
    second = bridge()
    try:
        assert wait_until(lambda: second.bridge.leading and bool(second.bridge.client.subscriptions))
        setup.send("after")
        assert wait_until(lambda: len(_texts(redis_server.url, "s")) >= 2, 10)
        assert _texts(redis_server.url, "s") == ["between the two leaders", "after"]
    finally:
        second.stop()
