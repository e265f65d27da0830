"""Redis as a user deploys it: a password that shows nowhere, keys that cannot collide, and a
wrong or hostile server that gives our own bounded errors.

The password checks look where a password leaks in practice: the message, the ``repr``, the
log records, and the locals of every frame of the traceback (what traceback printers with
locals and error trackers show), chained exceptions included. The hostile server is a scripted
RESP server on 127.0.0.1: the handshake is answered, then each command gets the scripted reply.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from signalwire_chat import (
    Checkpoint,
    InvalidArgumentError,
    StoreError,
    StoreUnavailableError,
)
from signalwire_chat.errors import FencedWriteError
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore, RedisLease

SECRET = "hunter2-s3cret-Pa55"


def _cp(n: int) -> Checkpoint:
    return Checkpoint(route="inbox", message_id=f"m-{n}", ts=float(n))


def _error_values(error: BaseException) -> Iterator[tuple[str, object]]:
    """Everything a user or a tool could see of ``error``: messages, reprs, frame locals.

    Frames of this test module are left out: they hold the URL the test made.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        yield "message", str(exc)
        yield "repr", repr(exc)
        tb: types.TracebackType | None = exc.__traceback__
        while tb is not None:
            # The test's own frames hold the URL it made; the library's and redis-py's must not.
            if tb.tb_frame.f_code.co_filename != __file__:
                yield from tb.tb_frame.f_locals.items()
            tb = tb.tb_next
        todo += [exc.__cause__, exc.__context__]


def _assert_hidden(error: BaseException, secret: str = SECRET) -> None:
    leaks = []
    for name, value in _error_values(error):
        if isinstance(value, (bytes, str)):  # searched, not repr'd: it may be 300 MiB
            found = (secret.encode() if isinstance(value, bytes) else secret) in value
        else:
            found = secret in repr(value)
        if found:
            leaks.append(name)
    assert leaks == []


# --- the password -----------------------------------------------------------------------------


def test_a_password_protected_redis_works_and_the_password_shows_nowhere(
    redis_server_with_password: RedisServer,
) -> None:
    server = redis_server_with_password
    assert server.password is not None
    with (
        RedisLease(server.url, name="bot", ttl=5) as lease,
        RedisCheckpointStore(server.url, lease=lease) as store,
    ):
        token = lease.acquire(5)
        store.save("k", _cp(1))
        assert store.load("k") == _cp(1)
        assert lease.token == token
        for shown in (repr(lease), repr(store), repr(lease.__dict__), repr(store.__dict__)):
            assert server.password not in shown
    # And it is required: without it the server refuses, as our error.
    with (
        RedisLease(f"redis://127.0.0.1:{server.port}/0", name="bot") as open_lease,
        pytest.raises(StoreError),
    ):
        open_lease.try_acquire()


def test_a_wrong_password_is_our_error_and_shows_nowhere(
    redis_server_with_password: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{redis_server_with_password.port}/0"
    caplog.set_level(logging.DEBUG)
    with RedisLease(url, name="bot", ttl=2, retry_interval=0.1) as lease:
        with pytest.raises(StoreUnavailableError) as info:
            lease.try_acquire()
        _assert_hidden(info.value)
        assert SECRET not in repr(lease)
        with pytest.raises(StoreError):  # acquire() logs each refusal while it waits
            lease.acquire(0.3)
    with RedisCheckpointStore(url, timeout=2) as store:
        with pytest.raises(StoreUnavailableError) as info:
            store.load("k")
        _assert_hidden(info.value)
    assert caplog.records
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert record.exc_text is None or SECRET not in record.exc_text


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{SECRET}@127.0.0.1:notaport/0",
        f"redis://:{SECRET}@[::1/0",
        f"http://:{SECRET}@127.0.0.1/0",
        f"redis://127.0.0.1/0?password={SECRET}&db=x",
    ],
)
def test_an_unusable_url_is_refused_without_showing_it(url: str) -> None:
    for make in (
        lambda: RedisLease(url, name="bot"),
        lambda: RedisCheckpointStore(url),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            make()
        _assert_hidden(info.value)


def test_a_bad_argument_next_to_a_password_url_does_not_keep_it_in_traceback_locals() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:6399/0"
    for make in (
        lambda: RedisLease(url, name=""),
        lambda: RedisLease(url, name="bot", ttl=-1),
        lambda: RedisCheckpointStore(url, prefix=""),
    ):
        with pytest.raises(InvalidArgumentError) as info:
            make()
        # The lambdas of this test hold the URL themselves; the library's frames must not.
        frames = info.traceback
        library = [f for f in frames if "signalwire_chat" in str(f.path)]
        assert library
        for frame in library:
            for name, value in frame.locals.items():
                assert SECRET not in repr(value), (frame.name, name)
                if name == "self":
                    repr(value)  # a half-built object still has a repr


def test_a_half_built_lease_has_a_safe_repr() -> None:
    with pytest.raises(InvalidArgumentError) as info:
        RedisLease("redis://127.0.0.1:6399/0", name="bot", ttl=-1)
    selves = [f.locals["self"] for f in info.traceback if "self" in f.locals]
    assert selves
    for half in selves:
        assert repr(half) == "RedisLease(name='bot', not set up)"
    bare = RedisLease.__new__(RedisLease)
    assert repr(bare) == "RedisLease(name=None, not set up)"


# --- the key namespace ------------------------------------------------------------------------


@pytest.mark.parametrize("first", ["bot", "bot:fence"])
def test_no_lease_name_reaches_another_leases_fencing_counter(
    redis_server: RedisServer, first: str
) -> None:
    other = "bot:fence" if first == "bot" else "bot"
    with (
        RedisLease(redis_server.url, name=first, ttl=5) as a,
        RedisLease(redis_server.url, name=other, ttl=5) as b,
    ):
        assert a.acquire(5) == 1
        assert b.acquire(5) == 1  # its own counter, untouched by the other lease
        assert a.held
        assert b.held
        a.release()
        assert a.acquire(5) == 2


def test_the_fencing_counter_continues_from_the_key_of_earlier_versions(
    redis_server: RedisServer,
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:lease:bot:fence", 41)  # where earlier versions counted
        with RedisLease(redis_server.url, name="bot", ttl=5) as lease:
            assert lease.acquire(5) == 42  # tokens never go back across the upgrade
            lease.release()
            assert lease.acquire(5) == 43
        assert raw.get("signalwire-chat:fence:bot") == b"43"
        # A lease value there (a lease named "bot:fence" under the old scheme) is no counter.
        raw.set("signalwire-chat:lease:x:fence", "7 someone")
        with RedisLease(redis_server.url, name="x", ttl=5) as lease:
            assert lease.acquire(5) == 1


def test_the_largest_fencing_count_still_gives_a_working_lease(redis_server: RedisServer) -> None:
    # Lua writes numbers from 10**14 on as "1e+14": the token must still be stored as digits,
    # or the holder's renewals and fenced writes never match its own lease (a silent livelock).
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:fence:bot", str(10**14 - 1))
        with RedisLease(redis_server.url, name="bot", ttl=5) as lease:
            assert lease.acquire(5) == 10**14
            assert raw.get("signalwire-chat:lease:bot") == f"{10**14} {lease.owner}".encode()
            with RedisCheckpointStore(redis_server.url, lease=lease) as store:
                store.save("k", _cp(1))
                assert store.load("k") == _cp(1)
            assert lease.held


@pytest.mark.parametrize("count", [str(10**15), "-3", "-1", "007x", "1e5"])
def test_a_fencing_counter_not_of_ours_is_a_clear_error_and_sets_no_lease(
    redis_server: RedisServer, count: str
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:fence:bot", count)
        with (
            RedisLease(redis_server.url, name="bot", ttl=5) as lease,
            pytest.raises(StoreError, match="fencing counter"),
        ):
            lease.try_acquire()
        assert raw.exists("signalwire-chat:lease:bot") == 0  # nobody is blocked meanwhile


@pytest.mark.parametrize(
    "plant",
    [
        pytest.param(lambda r: r.set("signalwire-chat:lease:bot", "5 ghost"), id="no-expiry"),
        pytest.param(lambda r: r.hset("signalwire-chat:lease:bot", "a", "b"), id="hash"),
        pytest.param(lambda r: r.rpush("signalwire-chat:lease:bot", "5 ghost"), id="list"),
    ],
)
def test_a_lease_key_that_never_expires_is_a_clear_error_not_a_standby_forever(
    redis_server: RedisServer, plant: Callable[[redis.Redis], object]
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        plant(raw)
        with (
            RedisLease(redis_server.url, name="bot", ttl=1, retry_interval=0.05) as lease,
            pytest.raises(StoreError, match="holds no lease of ours"),
        ):
            lease.acquire(2)  # was LeaseTimeoutError here, and acquire(math.inf) waited forever


@pytest.mark.parametrize("seen", ["nan", "inf", "-inf", "abc", "1e3", "-1", "9" * 16])
def test_a_stored_fencing_token_not_of_ours_refuses_the_write(
    redis_server: RedisServer, seen: str
) -> None:
    # Fenced by token without a lease, the highest token seen is kept in the checkpoint. A
    # value there that is no count of ours fails closed: "nan" compared less than any token,
    # so a stale writer passed; "abc" was a Lua error with no word of what was wrong.
    with (
        RedisCheckpointStore(redis_server.url) as store,
        redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw,
    ):
        store.save("k", _cp(1), fencing_token=5)
        (key,) = [k for k in raw.keys("*") if raw.type(k) == b"hash"]
        raw.hset(key, "token", seen)
        with pytest.raises(StoreError, match="fencing token not of ours"):
            store.save("k", _cp(2), fencing_token=1)
        assert store.load("k") == _cp(1)  # nothing written
        raw.hset(key, "token", "5")
        with pytest.raises(FencedWriteError):  # the other side: a count still fences
            store.save("k", _cp(2), fencing_token=1)
        store.save("k", _cp(3), fencing_token=6)
        assert store.load("k") == _cp(3)


def test_a_lease_held_by_another_still_means_stand_by(redis_server: RedisServer) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.set("signalwire-chat:lease:bot", "5 other", px=600)
        with RedisLease(redis_server.url, name="bot", ttl=1, retry_interval=0.05) as lease:
            assert lease.try_acquire() is None
            assert lease.acquire(3) == 1  # once the other's has expired


def test_a_checkpoint_prefix_cannot_reach_into_the_lease_keys(redis_server: RedisServer) -> None:
    for prefix in ("signalwire-chat:lease", "signalwire-chat:fence:x"):
        with pytest.raises(InvalidArgumentError):
            RedisCheckpointStore(redis_server.url, prefix=prefix)
    with RedisCheckpointStore(redis_server.url, prefix="app:bots") as store:
        store.save("k", _cp(1))
        assert store.load("k") == _cp(1)


# --- a wrong or hostile server ----------------------------------------------------------------

_HUGE = 300 * 1024 * 1024
_ECHO = SECRET.encode() + b" \x1b[31m"  # and a terminal escape


class RespServer:
    """A scripted RESP server on 127.0.0.1: the handshake gets +OK, every other command
    ``reply(command)`` (raw bytes; ``None`` closes the connection)."""

    def __init__(self, reply: Callable[[list[bytes]], bytes | None]) -> None:
        self.reply = reply
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.lock = threading.Lock()
        self.acceptor = threading.Thread(target=self._accept, name="test-resp-accept")
        self.acceptor.start()

    @property
    def url(self) -> str:
        return f"redis://:{SECRET}@127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), name="test-resp")
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                command = _read_command(reader)
                if command is None:
                    return
                name = command[0].upper()
                if name in (b"CLIENT", b"SELECT", b"AUTH", b"PING"):
                    answer: bytes | None = b"+OK\r\n"
                elif name == b"HELLO":
                    answer = b"-ERR unknown command 'HELLO'\r\n"
                else:
                    answer = self.reply(command)
                if answer is None:
                    return
                conn.sendall(answer)
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() alone does not
        self.sock.close()
        with self.lock:
            for conn in self.conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(10)
        for thread in self.threads:
            thread.join(10)


def _read_command(reader: Any) -> list[bytes] | None:
    line = reader.readline()
    if not line.startswith(b"*"):
        return None
    parts = []
    for _ in range(int(line[1:])):
        size = int(reader.readline()[1:])
        parts.append(reader.read(size + 2)[:-2])
    return parts


def _huge(_command: list[bytes]) -> bytes:
    return b"$%d\r\n" % _HUGE + b"x" * _HUGE + b"\r\n"


HOSTILE: dict[str, Callable[[list[bytes]], bytes | None]] = {
    "garbage": lambda c: b"!!this is no RESP\r\n",
    "bad length": lambda c: b"$twelve\r\n",
    "wrong type": lambda c: b"*2\r\n+OK\r\n*1\r\n:1\r\n",
    "string for a number": lambda c: b"+OK\r\n",
    "negative number": lambda c: b":-5\r\n",
    "error with the password": lambda c: (
        b"-ERR " + (SECRET.encode() + b" \x1b[31m") * 2000 + b"\r\n"
    ),
    "deep nesting": lambda c: b"*1\r\n" * 100_000 + b":1\r\n",
    "closes": lambda c: None,
}


@pytest.fixture(params=sorted(HOSTILE))
def hostile(request: pytest.FixtureRequest) -> Iterator[RespServer]:
    server = RespServer(HOSTILE[request.param])
    yield server
    server.close()


def _assert_bounded(error: StoreError) -> None:
    message = str(error)
    assert len(message) <= 400, message[:500]
    assert message.isascii()
    assert message.isprintable()
    _assert_hidden(error)


def test_a_300_mib_reply_is_our_bounded_error() -> None:
    server = RespServer(_huge)
    try:
        # The lease script answered with 300 MiB where a number belongs.
        with RedisLease(server.url, name="bot", ttl=60) as lease:
            with pytest.raises(StoreError) as info:
                lease.try_acquire()
            _assert_bounded(info.value)
    finally:
        server.close()


def test_a_hostile_server_gives_our_bounded_errors(hostile: RespServer) -> None:
    with (
        RedisLease(hostile.url, name="bot", ttl=3) as lease,
        RedisCheckpointStore(hostile.url, timeout=3) as store,
    ):
        calls: list[Callable[[], object]] = [
            lease.try_acquire,
            lambda: store.load("k"),
            lambda: store.save("k", _cp(1)),
        ]
        for call in calls:
            with pytest.raises(StoreError) as info:
                call()
            _assert_bounded(info.value)
