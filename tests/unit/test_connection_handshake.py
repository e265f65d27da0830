"""The websocket handshake is held to ``connect_timeout`` as a whole, not per socket read.

websocket-client's timeout applies to each read of the upgrade answer: a relay (or a proxy)
that drips it, a byte every few seconds, kept the connection thread in the handshake for
ever: no reconnect, nothing for ``on_error``. No server here: websocket-client's connect is
replaced by one that reads a socketpair the test drips into, with the same per-read timeout.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import pytest
import websocket

from signalwire_chat._auth import Credentials
from signalwire_chat._realtime import RealtimeHub, RealtimeOptions, Route, _connection
from signalwire_chat._threads import library_threads
from signalwire_chat.errors import RealtimeConnectError

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJoYW5kc2hha2UifQ.c2VjcmV0LXNpZ25hdHVyZQ"
ROOM = "11111111-1111-4111-8111-111111111111"


class DrippedHandshake:
    """Stands in for ``websocket.WebSocket``: its connect reads an upgrade answer that never
    ends, one byte every 0.2 s, each read with the connect timeout (as websocket-client's)."""

    attempts = 0

    def __init__(self, **_options: Any) -> None:
        self.sock: socket.socket | None = None

    def connect(self, _url: str, *, timeout: float, **_options: Any) -> None:
        type(self).attempts += 1
        ours, relay = socket.socketpair()
        ours.settimeout(timeout)
        self.sock = ours

        def drip() -> None:
            try:
                while True:
                    relay.send(b"a")
                    time.sleep(0.2)
            except OSError:
                relay.close()

        threading.Thread(target=drip, daemon=True).start()
        while True:
            try:
                if not ours.recv(1):
                    raise websocket.WebSocketConnectionClosedException("closed")
            except OSError as exc:
                raise websocket.WebSocketConnectionClosedException(str(exc)) from exc


def test_a_dripped_handshake_is_cut_off_at_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_connection.websocket, "WebSocket", DrippedHandshake)
    errors: list[BaseException] = []
    hub = RealtimeHub(
        relay_url="ws://relay.invalid/",
        credentials=Credentials(TOKEN),
        agent="test",
        history=lambda _route: iter(()),
        options=RealtimeOptions(connect_timeout=1.0, reconnect_max_delay=0.5),
    )
    try:
        hub.subscribe(Route.address(ROOM), lambda _m: None, errors.append)
        deadline = time.monotonic() + 6.0
        while not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert errors, "the handshake was never given up"
        assert isinstance(errors[0], RealtimeConnectError)
        assert "handshake took over 1 s" in str(errors[0])
        while DrippedHandshake.attempts < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert DrippedHandshake.attempts >= 2  # and it tries again
    finally:
        started = time.monotonic()
        hub.close(2.0)
    assert time.monotonic() - started < 2.0
    assert not [t for t in library_threads() if "handshake" in t.name or "connection" in t.name]
