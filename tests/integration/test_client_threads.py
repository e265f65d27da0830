"""One client shared by many threads, as in a Django or Flask worker."""

from __future__ import annotations

import logging
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
