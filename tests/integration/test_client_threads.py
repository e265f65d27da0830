"""One client shared by many threads, as in a Django or Flask worker."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from signalwire_chat import ChatClient, InvalidArgumentError, InvalidArgumentTypeError
from signalwire_chat.emulator import Emulator


def _send_from_threads(client: ChatClient, room_id: str, threads: int) -> None:
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda i: client.send_message(room_id, f"m{i}"), range(threads * 12)))


def test_threads_share_one_client_without_losing_sends_or_connections(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    caplog.set_level(logging.WARNING, logger="urllib3")
    with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        _send_from_threads(client, room.id, threads=16)
        texts = sorted(m.text for m in client.iter_messages(room.id))
    assert texts == sorted(f"m{i}" for i in range(16 * 12))
    # Every thread's connection went back to the pool: none opened and thrown away.
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def _sockets_to(port: int) -> set[int]:
    """Local ports of this process's established TCP connections to 127.0.0.1:``port``."""
    ours = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                ours.add(target[len("socket:[") : -1])
    found = set()
    with open("/proc/self/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if state == "01" and remote == f"0100007F:{port:04X}" and inode in ours:
                found.add(int(local.split(":")[1], 16))
    return found


def test_a_hundred_threads_sharing_the_default_client_log_no_pool_warning(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    # With 32 pooled connections, 100 threads made urllib3 log "Connection pool is full" 68
    # times, and each of those connections was closed and opened again by the next burst.
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    threads = 100
    caplog.set_level(logging.WARNING, logger="urllib3")
    with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        start = threading.Barrier(threads)

        def burst(i: int) -> None:
            start.wait(30)  # all at once: the load of a busy web server's thread pool
            for n in range(3):
                client.send_message(room.id, f"m{i}-{n}")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(burst, range(threads)))
        kept = _sockets_to(emu.port)
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(burst, range(threads)))
        after = _sockets_to(emu.port)
        assert client.get_messages(room.id, page_size=1)
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    # At most one socket per thread, kept for reuse: the second burst opened none.
    assert 0 < len(kept) <= threads
    assert after <= kept


def test_max_connections_sizes_the_pool(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    caplog.set_level(logging.WARNING, logger="urllib3")
    with ChatClient(
        alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url, max_connections=2
    ) as client:
        _send_from_threads(client, room.id, threads=8)
    assert [r for r in caplog.records if "pool is full" in r.getMessage()]


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, InvalidArgumentError),
        (1001, InvalidArgumentError),
        (True, InvalidArgumentTypeError),
        ("8", InvalidArgumentTypeError),
    ],
)
def test_max_connections_is_checked(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_connections"):
        ChatClient("a.b.c", rest_url="http://127.0.0.1:9", max_connections=value)  # type: ignore[arg-type]
