"""The websocket handshake is held to ``connect_timeout`` as a whole, not per socket read.

websocket-client's timeout applies to each read of the upgrade answer: a relay (or a proxy)
that drips it, a byte every 0.2 s, kept the connection thread in the handshake for ever: no
reconnect, nothing for ``on_error``. The relay here is a real listening socket on loopback.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from signalwire_chat._auth import Credentials
from signalwire_chat._realtime import RealtimeHub, RealtimeOptions, Route
from signalwire_chat._threads import library_threads
from signalwire_chat.errors import RealtimeConnectError

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJoYW5kc2hha2UifQ.c2VjcmV0LXNpZ25hdHVyZQ"
ROOM = "11111111-1111-4111-8111-111111111111"


class DrippingRelay:
    """Accepts every connection, reads the upgrade request, then answers it a byte at a time
    (every ``pause`` seconds): never finishing the headers, or (``finish``) finishing them and
    keeping the first frame the client sends after."""

    def __init__(self, *, finish: bool = False, pause: float = 0.2) -> None:
        self.finish = finish
        self.pause = pause
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.first_frames: list[bytes] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _answer(self, request: bytes) -> bytes:
        if not self.finish:
            return b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 100
        key = re.search(rb"Sec-WebSocket-Key: *(\S+)", request, re.IGNORECASE)
        assert key is not None
        digest = hashlib.sha1(key.group(1) + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
        return (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + base64.b64encode(digest) + b"\r\n\r\n"
        )

    def _drip(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            request = conn.recv(65536)  # the upgrade request
            for byte in self._answer(request):
                if self.stop.wait(self.pause):
                    return
                conn.sendall(bytes([byte]))
            conn.settimeout(5)
            self.first_frames.append(conn.recv(65536))  # the client's signalwire.connect
            self.stop.wait(10)

    def close(self) -> None:
        self.stop.set()
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self.listener.close()
        for thread in self.threads:
            thread.join(5)


@pytest.fixture
def relay() -> Iterator[DrippingRelay]:
    dripping = DrippingRelay()
    yield dripping
    dripping.close()


def _hub(relay: DrippingRelay, options: RealtimeOptions) -> RealtimeHub:
    return RealtimeHub(
        relay_url=f"ws://127.0.0.1:{relay.port}/",
        credentials=Credentials(TOKEN),
        agent="test",
        history=lambda _route: iter(()),
        options=options,
    )


def test_a_dripped_handshake_is_cut_off_at_the_connect_timeout(relay: DrippingRelay) -> None:
    errors: list[BaseException] = []
    hub = _hub(relay, RealtimeOptions(connect_timeout=1.0, reconnect_max_delay=0.5))
    try:
        hub.subscribe(Route.address(ROOM), lambda _m: None, errors.append)
        deadline = time.monotonic() + 6.0
        while not errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert errors, "the handshake was never given up"
        assert isinstance(errors[0], RealtimeConnectError)
        assert "handshake took over 1 s" in str(errors[0])
        while relay.accepted < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.accepted >= 2  # and it tries again
    finally:
        started = time.monotonic()
        hub.close(2.0)
    assert time.monotonic() - started < 2.0
    assert not [t for t in library_threads() if "handshake" in t.name or "connection" in t.name]


def test_a_slow_handshake_that_ends_in_time_is_not_cut_off() -> None:
    # The other side: the watchdog holds the handshake as a whole, not each read, and only
    # to connect_timeout: an answer dripped over about 1.3 s within 3 s completes, and the
    # client goes on to send its signalwire.connect (which this relay leaves unanswered:
    # subscribe() returns at the connect timeout).
    relay = DrippingRelay(finish=True, pause=0.01)
    errors: list[BaseException] = []
    hub = _hub(relay, RealtimeOptions(connect_timeout=3.0))
    try:
        hub.subscribe(Route.address(ROOM), lambda _m: None, errors.append)
        deadline = time.monotonic() + 6.0
        while not relay.first_frames and time.monotonic() < deadline:
            time.sleep(0.05)
        assert relay.first_frames, "the handshake did not complete"
        assert relay.first_frames[0][:1] == b"\x81"  # a text frame: the connect request
        assert relay.accepted == 1
        assert not [e for e in errors if "handshake took over" in str(e)]
    finally:
        hub.close(2.0)
        relay.close()
