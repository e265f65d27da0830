"""A user's whole cycle, many times over: open a client, subscribe, receive, close."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import pytest

from signalwire_chat import CallbackError, ChatClient, ClientClosedError, ConversationChatMessage
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


def _lobby(emu: Emulator) -> tuple[Any, Any, Any]:
    alice = emu.create_subscriber("alice@example.com")
    bob = emu.create_subscriber("bob@example.com")
    room = emu.create_room("lobby")
    emu.join(alice, room.id)
    emu.join(bob, room.id)
    return alice, bob, room


def test_close_cutting_a_callbacks_send_ends_it_quietly(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """A bot stopped while its callback waits for a send's answer: the send raises
    ClientClosedError (not a timeout), and nothing is logged as an error or reported."""
    emu = signalwire_emulator
    alice, bob, room = _lobby(emu)
    sending = threading.Event()
    raised: list[BaseException] = []
    errors: list[BaseException] = []
    client = ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url)

    def on_message(msg: ConversationChatMessage) -> None:
        if msg.text != "ping":
            return
        sending.set()
        try:
            client.send_message(room.id, "pong")
        except BaseException as exc:
            raised.append(exc)
            raise

    with client:
        client.subscribe(room.id, on_message, on_error=errors.append)
        emu.delay_next(10.0, method="POST", path_prefix="/api/fabric/messages")
        emu.send_as(bob, room.id, "ping")
        assert sending.wait(10)
        time.sleep(0.2)  # the send is held by the emulator, waiting for its answer
        with caplog.at_level(logging.DEBUG, logger="signalwire_chat"):
            started = time.monotonic()
            client.close()
            took = time.monotonic() - started
    assert took < 3.0, took
    assert [type(exc) for exc in raised] == [ClientClosedError]
    assert "closed while the request was under way" in str(raised[0])
    assert errors == []
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "cut by close()" in caplog.text


def test_a_callback_raising_client_closed_while_the_client_is_open_is_reported(
    signalwire_emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The other side: only close() makes ClientClosedError quiet (here the callback used
    another client, closed long before)."""
    emu = signalwire_emulator
    alice, bob, room = _lobby(emu)
    other = ChatClient(bob.token, rest_url=emu.rest_url, relay_url=emu.relay_url)
    other.close()
    errors: list[BaseException] = []
    reported = threading.Event()

    def on_error(exc: BaseException) -> None:
        errors.append(exc)
        reported.set()

    with ChatClient(alice.token, rest_url=emu.rest_url, relay_url=emu.relay_url) as client:
        client.subscribe(room.id, lambda msg: other.send_message(room.id, "x"), on_error=on_error)
        with caplog.at_level(logging.ERROR, logger="signalwire_chat"):
            emu.send_as(bob, room.id, "ping")
            assert reported.wait(10)
    assert [type(e) for e in errors] == [CallbackError]
    assert isinstance(errors[0].__cause__, ClientClosedError)
    assert "raised" in caplog.text  # logged at ERROR, with its traceback
