"""The lease between real processes: takeover after SIGKILL, a SIGSTOPped holder fenced off,
Redis restarted under two contenders."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from signalwire_chat.pytest_plugin import RedisServer

pytestmark = pytest.mark.slow

_CHILD = Path(__file__).with_name("_lease_child.py")
TTL = 2.0


class Contender:
    """A child process running _lease_child.py; its lines are read by a thread, with times."""

    def __init__(self, url: str, name: str) -> None:
        self.name = name
        self.lines: queue.Queue[tuple[float, list[str]]] = queue.Queue()
        self.seen: list[tuple[float, list[str]]] = []
        self.process = subprocess.Popen(
            [sys.executable, str(_CHILD), url, name, str(TTL)],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"test-reader-{name}")
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put((time.monotonic(), line.split()))

    def expect(self, word: str, timeout: float) -> tuple[float, list[str]]:
        """The next line starting with ``word`` (earlier ones are kept in ``seen``)."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.name}: no {word} within {timeout} s")
            try:
                item = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(item)
            if item[1] and item[1][0] == word:
                return item

    def drain(self) -> list[list[str]]:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return [words for _, words in self.seen]

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def pair(redis_server: RedisServer) -> Iterator[tuple[Contender, Contender]]:
    """``a`` holding the lease and ``b``, started after it, standing by; both ended after."""
    started: list[Contender] = []
    try:
        a = Contender(redis_server.url, "a")
        started.append(a)
        a.expect("ACQUIRED", 30)
        b = Contender(redis_server.url, "b")
        started.append(b)
        b.expect("READY", 30)
        yield a, b
    finally:
        for contender in started:
            contender.close()


def _stream(url: str) -> list[dict[str, str]]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return [fields for _, fields in client.xrange("chat")]
    finally:
        client.close()


def test_one_wins_the_other_takes_over_within_ttl_after_sigkill(
    redis_server: RedisServer, pair: tuple[Contender, Contender]
) -> None:
    a, b = pair
    for _ in range(int(TTL / 0.02)):  # a keeps writing for about a TTL while b stands by
        a.expect("WROTE", 10)
    assert "ACQUIRED" not in [words[0] for words in b.drain()]
    a.signal(signal.SIGKILL)
    killed = time.monotonic()
    acquired_at, words = b.expect("ACQUIRED", TTL + 10)
    assert acquired_at - killed <= TTL + 1.0, f"takeover took {acquired_at - killed:.2f} s"
    b.expect("WROTE", 10)
    entries = _stream(redis_server.url)
    writers = [e["writer"] for e in entries]
    first_b = writers.index("b")
    assert set(writers[:first_b]) == {"a"}
    assert set(writers[first_b:]) == {"b"}
    assert int(words[1]) > int(entries[0]["token"])  # a later fencing token


def test_a_paused_holder_that_lost_the_lease_writes_nothing(
    redis_server: RedisServer, pair: tuple[Contender, Contender]
) -> None:
    a, b = pair
    a.expect("WROTE", 10)
    a.signal(signal.SIGSTOP)  # paused mid-run, renewal thread and all
    b.expect("ACQUIRED", TTL + 10)
    b.expect("WROTE", 10)
    a.signal(signal.SIGCONT)
    a.expect("REFUSED", 10)  # its first write after resuming is refused by Redis
    for _ in range(5):
        b.expect("WROTE", 10)
    entries = _stream(redis_server.url)
    writers = [e["writer"] for e in entries]
    first_b = writers.index("b")
    assert set(writers[first_b:]) == {"b"}, "the former holder appended after losing the lease"
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        body = client.hget("signalwire-chat:checkpoint:bridge", "body")
    finally:
        client.close()
    assert body is not None
    assert '"message_id":"b-' in body
    # a went back to standing by: it never holds the lease again while b lives.
    assert [w[0] for w in a.drain()].count("ACQUIRED") == 1


def test_redis_restarted_under_two_contenders_one_resumes(
    redis_server: RedisServer, pair: tuple[Contender, Contender]
) -> None:
    a, _b = pair
    a.expect("WROTE", 10)
    redis_server.restart()  # no persistence: lease, counter, stream and checkpoint are gone
    # Someone holds it again within the TTL and a margin, and writes; the stream that
    # restarted empty then has one writer only, at one token.
    deadline = time.monotonic() + TTL + 10
    while len(_stream(redis_server.url)) < 20 and time.monotonic() < deadline:
        threading.Event().wait(0.05)
    entries = _stream(redis_server.url)
    assert entries, "nobody resumed writing after the restart"
    assert len({(e["writer"], e["token"]) for e in entries}) == 1, entries
