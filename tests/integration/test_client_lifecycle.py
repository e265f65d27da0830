"""A user's whole cycle, many times over: open a client, subscribe, receive, close."""

from __future__ import annotations

import os
import threading
import time

import pytest

from signalwire_chat import ChatClient, ConversationChatMessage
from signalwire_chat.emulator import Emulator


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _library_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("signalwire-chat")]


@pytest.mark.slow
def test_200_open_subscribe_close_cycles_leave_no_thread_or_socket(
    signalwire_emulator: Emulator,
) -> None:
    emu = signalwire_emulator
    alice = emu.create_subscriber("alice@example.com")
    room = emu.create_room("lobby")
    emu.join(alice, room.id)
    fds_before = _open_fds()
    for i in range(200):
        got = threading.Event()

        def on_message(msg: ConversationChatMessage, got: threading.Event = got) -> None:
            got.set()

        with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
            client.subscribe(room.id, on_message)
            if i % 10 == 0:  # a delivery now and then, so REST and relay both carried traffic
                client.send_message(room.id, f"cycle {i}")
                assert got.wait(5), f"cycle {i}: nothing delivered"
        assert _library_threads() == [], f"cycle {i}: {_library_threads()}"
    # Sockets close asynchronously on the emulator's side; ours are closed by close().
    deadline = time.monotonic() + 10
    while _open_fds() > fds_before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds() <= fds_before + 2, (_open_fds(), fds_before)
