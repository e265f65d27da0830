"""What the bridge does per batch while Redis answers: no back-off is made (its random seed is a
syscall per batch); the outage back-off still comes with the first failure."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_bridge import STREAM, Running, _texts
from test_realtime_support import FAST, Setup, wait_until

from signalwire_chat import RealtimeOptions, bridge
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.pytest_plugin import RedisServer


@pytest.fixture
def world(signalwire_emulator: Any) -> Iterator[Setup]:
    w = Setup(signalwire_emulator, "group", realtime=RealtimeOptions(**FAST))
    yield w
    w.close()


class _Counted(bridge.Backoff):
    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


def test_appends_while_redis_answers_make_no_backoff_and_an_outage_makes_one(
    world: Setup, redis_server_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: RedisServer = redis_server_factory(persistence=True)  # the lease survives a restart
    monkeypatch.setattr(bridge, "Backoff", _Counted)
    monkeypatch.setattr(_Counted, "made", 0)
    running = Running(
        StreamBridge(
            world.client(),
            server.url,
            stream=STREAM,
            name="cost",
            targets=[world.room.id],
            batch_window=0,
            ttl=2.0,
            retry_interval=0.05,
        )
    )
    try:
        assert wait_until(lambda: running.bridge.leading and bool(world.clients[0].subscriptions))
        made = _Counted.made  # subscribing may wait out a Redis outage: not counted here
        texts = [f"m{i}" for i in range(20)]
        for text in texts:
            world.send(text)
        assert wait_until(lambda: _texts(server.url) == texts)
        assert _Counted.made == made
        # Redis away while a message arrives: the append backs off, then goes through.
        server.stop()
        world.send("during")
        assert wait_until(lambda: _Counted.made > made)
        server.start()
        assert wait_until(lambda: _texts(server.url)[-1:] == ["during"], timeout=30)
    finally:
        running.stop()
    assert _texts(server.url) == [*texts, "during"]
