"""The Redis Streams bridge against the emulator and a real redis-server.

In-process: entries and their JSON, a restart resuming from the checkpoint, Redis restarted
mid-run, a retried append never appended twice. Real processes: three bridges with the leader
SIGKILLed during a 5,000-message burst (every message once, in order, takeover within TTL + 1 s),
and a SIGSTOPped leader that resumes after losing the lease and appends nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from test_realtime_support import FAST, Setup, wait_until

from signalwire_chat import Checkpoint, RealtimeOptions
from signalwire_chat.bridge import StreamBridge
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease

STREAM = "chat:in"


@pytest.fixture
def world(signalwire_emulator: Any) -> Iterator[Setup]:
    """A room in the group dialect; its clients (of ``me``) have fast realtime options."""
    w = Setup(signalwire_emulator, "group", realtime=RealtimeOptions(**FAST))
    yield w
    w.close()


def _entries(url: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        rows = r.xrange(STREAM)
    out = []
    for entry_id, fields in rows:
        decoded = {k.decode(): v.decode() for k, v in fields.items()}
        decoded["entry"] = entry_id.decode()
        decoded["message"] = json.loads(decoded["message"])
        out.append(decoded)
    return out


def _texts(url: str) -> list[str]:
    try:
        return [e["message"]["text"] for e in _entries(url)]
    except redis.ConnectionError:
        return []


class Running:
    """A bridge running on a thread of this process."""

    def __init__(self, bridge: StreamBridge) -> None:
        self.bridge = bridge
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="test-bridge")
        self.thread.start()

    def _run(self) -> None:
        try:
            self.bridge.run()
        except BaseException as exc:
            self.error = exc

    def stop(self) -> None:
        self.bridge.close()
        self.thread.join(10)
        assert not self.thread.is_alive()
        assert self.error is None, repr(self.error)


def test_entries_carry_the_message_and_a_restart_resumes(
    world: Setup, redis_server: RedisServer
) -> None:
    client = world.client()
    running = Running(
        StreamBridge(client, redis_server.url, stream=STREAM, name="b", targets=[world.room.id])
    )
    try:
        assert wait_until(lambda: running.bridge.leading and bool(client.subscriptions))
        world.send("one")
        world.send("two")
        assert wait_until(lambda: _texts(redis_server.url) == ["one", "two"])
    finally:
        running.stop()
    entry = _entries(redis_server.url)[0]
    assert entry["route"] == f"group:{world.conversation}"
    message = entry["message"]
    assert entry["id"] == message["id"]
    assert message["group_id"] == world.conversation
    assert message["from_address_id"] == world.other.address_id
    assert message["delivery"] in ("live", "catch_up")  # sent as it connected: either
    assert world.me.token not in json.dumps(entry)
    # Down: two more; a new bridge (new client) catches up from the shared checkpoint.
    world.send("three")
    world.send("four")
    again = Running(
        StreamBridge(
            world.client(), redis_server.url, stream=STREAM, name="b", targets=[world.room.id]
        )
    )
    try:
        assert wait_until(lambda: _texts(redis_server.url)[2:] == ["three", "four"])
        world.send("five")
        assert wait_until(lambda: len(_texts(redis_server.url)) == 5)
    finally:
        again.stop()
    entries = _entries(redis_server.url)
    assert [e["message"]["text"] for e in entries] == ["one", "two", "three", "four", "five"]
    assert [e["message"]["delivery"] for e in entries[2:4]] == ["catch_up", "catch_up"]


def test_the_inbox_is_the_default(world: Setup, redis_server: RedisServer) -> None:
    running = Running(StreamBridge(world.client(), redis_server.url, stream=STREAM, name="i"))
    try:
        assert wait_until(lambda: running.bridge.leading and bool(world.clients[0].subscriptions))
        world.send("hello inbox")
        assert wait_until(lambda: _texts(redis_server.url) == ["hello inbox"])
        assert _entries(redis_server.url)[0]["route"] == "inbox"
    finally:
        running.stop()


def test_a_handover_before_the_first_message_loses_nothing(
    world: Setup, redis_server: RedisServer
) -> None:
    # The first leader saves where it starts (fenced): a leader that hands over (a deploy; a
    # crash is the same after the TTL) before any message leaves the next one a place to
    # catch up from, instead of its own "now".
    world.send("before the first leader")

    def leader() -> Running:
        running = Running(
            StreamBridge(
                world.client(), redis_server.url, stream=STREAM, name="b", targets=[world.room.id]
            )
        )
        assert wait_until(
            lambda: running.bridge.leading and bool(running.bridge.client.subscriptions)
        )
        return running

    first = leader()
    first.stop()
    world.send("between the two leaders")
    second = leader()
    try:
        world.send("after")
        assert wait_until(lambda: len(_texts(redis_server.url)) >= 2, 10)
        assert _texts(redis_server.url) == ["between the two leaders", "after"]
    finally:
        second.stop()


def test_a_retried_append_is_not_appended_twice(redis_server: RedisServer) -> None:
    with (
        RedisLease(redis_server.url, name="r", ttl=5) as lease,
        RedisCheckpointStore(redis_server.url, lease=lease) as store,
    ):
        lease.acquire(5)
        cp = Checkpoint(route="inbox", message_id="m1", ts=1.0)
        first = store.save_and_append("k", cp, stream=STREAM, fields={"id": "m1"})
        # The answer was lost; the same append again: nothing new, the same entry id.
        assert store.save_and_append("k", cp, stream=STREAM, fields={"id": "m1"}) == first
        nxt = Checkpoint(route="inbox", message_id="m2", ts=2.0)
        assert store.save_and_append("k", nxt, stream=STREAM, fields={"id": "m2"}) != first
    with redis.Redis.from_url(redis_server.url) as r:
        assert r.xlen(STREAM) == 2


def test_redis_restarted_mid_run_loses_nothing(world: Setup, redis_server_factory: Any) -> None:
    server = redis_server_factory(persistence=True)
    client = world.client()
    running = Running(
        StreamBridge(
            client,
            server.url,
            stream=STREAM,
            name="r",
            targets=[world.room.id],
            ttl=2.0,
            retry_interval=0.1,
        )
    )
    try:
        assert wait_until(lambda: running.bridge.leading and bool(client.subscriptions))
        world.send("before")
        assert wait_until(lambda: _texts(server.url) == ["before"])
        server.stop()
        for i in range(5):
            world.send(f"while redis is down {i}")
        server.start()
        world.send("after")
        expected = ["before"] + [f"while redis is down {i}" for i in range(5)] + ["after"]
        assert wait_until(lambda: _texts(server.url) == expected, 30), _texts(server.url)
    finally:
        running.stop()


# --- real processes ---------------------------------------------------------------------------

_BRIDGE = r"""
import sys, signal, logging
from signalwire_chat import ChatClient, RealtimeOptions
from signalwire_chat.bridge import StreamBridge

token, rest, relay, url, target, ttl = sys.argv[1:7]
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
client = ChatClient(token, rest_url=rest, relay_url=relay,
                    realtime=RealtimeOptions(connect_timeout=10))
bridge = StreamBridge(client, url, stream="chat:in", name="fleet", targets=[target],
                      ttl=float(ttl), retry_interval=0.1)
signal.signal(signal.SIGTERM, lambda *a: bridge.close())
print("ready", bridge.lease.owner, flush=True)
bridge.run()
client.close()
"""


def _owner(url: str) -> str | None:
    """The owner id in the fleet's lease key ("<token> <owner>"), if anyone holds it."""
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        value = r.get("signalwire-chat:lease:bridge:fleet")
    return value.decode().split(" ", 1)[1] if value is not None else None


class Fleet:
    """Bridge processes with the same name; ``owners`` maps lease owner ids to processes."""

    def __init__(self, world: Setup, url: str, ttl: float) -> None:
        self.url = url
        self.emu = world.emu
        self.args = [
            world.me.token,
            world.emu.rest_url,
            world.emu.relay_url,
            url,
            world.room.id,
            str(ttl),
        ]
        self.owners: dict[str, subprocess.Popen[str]] = {}

    def start(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-c", _BRIDGE, *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert proc.stdout is not None
        word, owner = proc.stdout.readline().split()
        assert word == "ready"
        self.owners[owner] = proc

    def leader(self) -> subprocess.Popen[str]:
        """The process holding the lease, once its subscription is live.

        Standbys open no relay session; the holder's session exists only after its
        subscription read where it starts, so a connected session means "live".
        """
        assert wait_until(lambda: _owner(self.url) in self.owners, 30)
        assert wait_until(lambda: any(s.connected for s in self.emu.hub.sessions()), 30)
        owner = _owner(self.url)
        assert owner is not None
        return self.owners[owner]

    def close(self) -> None:
        for proc in self.owners.values():
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
            proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


def test_leader_killed_mid_burst_every_message_once_in_order(
    world: Setup, redis_server: RedisServer
) -> None:
    ttl = 2.0
    fleet = Fleet(world, redis_server.url, ttl)
    burst = [f"m{i:05d}" for i in range(5000)]
    expected = ["warm-up", *burst]
    try:
        for _ in range(3):
            fleet.start()
        leader = fleet.leader()
        world.send("warm-up")  # the leader is subscribed once this arrives
        assert wait_until(lambda: _texts(redis_server.url) == ["warm-up"], 30)
        sent = threading.Event()

        def send_all() -> None:
            for text in burst:
                world.send(text)
            sent.set()

        sender = threading.Thread(target=send_all)
        sender.start()
        assert wait_until(lambda: len(_texts(redis_server.url)) > 500, 60)
        killed_owner = _owner(redis_server.url)
        os.kill(leader.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        # Checked at the kill, not after the takeover: the emulator may finish the burst
        # while the lease runs out, which is still a leader killed mid-burst.
        mid_burst = not sent.is_set()
        assert wait_until(lambda: _owner(redis_server.url) not in (None, killed_owner), ttl + 5)
        takeover = time.monotonic() - killed_at
        assert mid_burst, "the burst ended before the kill: not a mid-burst failover"
        sender.join(120)
        assert sent.is_set()
        assert wait_until(lambda: len(_texts(redis_server.url)) >= len(expected), 120), len(
            _texts(redis_server.url)
        )
    finally:
        fleet.close()
    texts = _texts(redis_server.url)
    assert texts == expected  # every message exactly once, in order, across the failover
    assert takeover <= ttl + 1.0, takeover


def test_a_paused_leader_that_lost_the_lease_appends_nothing(
    world: Setup, redis_server: RedisServer
) -> None:
    ttl = 1.0
    fleet = Fleet(world, redis_server.url, ttl)
    try:
        fleet.start()
        fleet.start()
        leader = fleet.leader()
        paused_owner = _owner(redis_server.url)
        world.send("first")
        assert wait_until(lambda: _texts(redis_server.url) == ["first"], 30)
        os.kill(leader.pid, signal.SIGSTOP)
        # Messages reach the paused leader's socket buffer; it cannot append them yet.
        for i in range(20):
            world.send(f"while paused {i}")
        assert wait_until(lambda: _owner(redis_server.url) not in (None, paused_owner), 10)
        expected = ["first"] + [f"while paused {i}" for i in range(20)]
        assert wait_until(lambda: _texts(redis_server.url) == expected, 30)
        os.kill(leader.pid, signal.SIGCONT)  # it resumes, still believing in its lease
        world.send("after resume")
        expected.append("after resume")
        assert wait_until(lambda: len(_texts(redis_server.url)) >= len(expected), 30)
        # Give the resumed process time to try its stale appends: it must be refused.
        deadline = time.monotonic() + 2 * ttl
        while time.monotonic() < deadline:
            assert _texts(redis_server.url) == expected
            time.sleep(0.1)
    finally:
        fleet.close()
