"""The reconnect rule, both ways, against scripted relays: back off unless a session was healthy.

A relay that accepts ``signalwire.connect`` and then ends every session at once (a TCP close, a
close 1012, a protocol violation) once made the client reconnect with no delay at all, hundreds
of times a second, each with a catch-up read, and told ``on_error`` nothing. Now such short
sessions keep the back-off growing to ``reconnect_max_delay`` and ``on_error`` hears of the
streak once. A relay that drops *healthy* sessions (one that delivered an event, or lasted a
while) still gets its reconnect at once.
"""

from __future__ import annotations

import itertools
import json
import struct
import threading
import time

import pytest
from test_hostile_relay import (
    OP_CLOSE,
    Peer,
    ScriptedRelay,
    event,
    frame,
    make_hub,
    text,
)
from test_realtime_support import Collector, Setup, setup_fixture, wait_until

from signalwire_chat._realtime import ConnectionState
from signalwire_chat.errors import RealtimeConnectError

setup = setup_fixture("address")


class Accepts:
    """Connections accepted by a scripted relay: when each one answered its connect."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._lock = threading.Lock()

    def mark(self) -> None:
        with self._lock:
            self.times.append(time.monotonic())

    def __len__(self) -> int:
        with self._lock:
            return len(self.times)

    def gaps(self) -> list[float]:
        with self._lock:
            times = list(self.times)
        return [b - a for a, b in itertools.pairwise(times)]


def _end_at_once(how: str):  # type: ignore[no-untyped-def]
    """A script that answers the connect and then ends the session ``how``."""
    accepts = Accepts()

    def script(peer: Peer, _number: int) -> None:
        peer.handshake()
        peer.answer_connect()
        accepts.mark()
        if how == "close-1012":
            peer.send(frame(struct.pack("!H", 1012), OP_CLOSE))
        elif how == "violation":
            peer.send(bytes((0x83, 0)))  # a reserved opcode: the client must close 1002
        peer.sock.close()

    return script, accepts


@pytest.mark.parametrize("how", ["tcp-close", "close-1012", "violation"])
def test_a_relay_that_drops_every_session_at_once_meets_a_growing_delay(
    setup: Setup, how: str
) -> None:
    script, accepts = _end_at_once(how)
    got = Collector()
    with ScriptedRelay(script) as relay:
        hub = make_hub(setup, relay, reconnect_max_delay=2.0, connect_timeout=5.0)  # type: ignore[arg-type]
        try:
            hub.subscribe(setup.room.id, got.on_message, got.on_error)
            assert wait_until(lambda: len(accepts) >= 6, timeout=30), accepts.gaps()
            streak = got.wait_error(RealtimeConnectError)
        finally:
            hub.close()
    # Before the fix: hundreds of connects a second, every gap a few ms. Now the first
    # reconnect is immediate and each later one waits at least half of 0.5, 1, 2, 2 s.
    gaps = accepts.gaps()
    floors = [0.0, 0.25, 0.5, 1.0, 1.0]
    assert all(gap >= 0.9 * floor for gap, floor in zip(gaps, floors, strict=False)), gaps
    assert "sessions in a row" in str(streak)
    streaks = [e for e in got.errors if isinstance(e, RealtimeConnectError)]
    assert len(streaks) == 1, got.errors  # told once, after the third, not per cycle


def test_a_relay_that_drops_sessions_after_an_event_is_reconnected_at_once(
    setup: Setup,
) -> None:
    accepts = Accepts()

    def script(peer: Peer, number: int) -> None:
        peer.handshake()
        peer.answer_connect()
        accepts.mark()
        ev = event(setup, f"event {number}")
        peer.send(text(ev))
        reply = peer.next_frame()  # the ack (or, at the end, the client's close)
        if reply is not None and reply[0] != OP_CLOSE:
            assert json.loads(reply[1])["id"] == ev["id"]
        peer.sock.close()

    got = Collector()
    with ScriptedRelay(script) as relay:
        # A cap of 30 s: any back-off at all would show as a gap of seconds.
        hub = make_hub(setup, relay, reconnect_max_delay=30.0)  # type: ignore[arg-type]
        try:
            hub.subscribe(setup.room.id, got.on_message, got.on_error)
            assert wait_until(lambda: len(accepts) >= 8, timeout=20), accepts.gaps()
            got.wait_for(7)
        finally:
            hub.close()
        assert relay.errors == []
    # Unhealthy sessions would have waited >= 0.25, 0.5, 1, 2, 4, 8 s by the eighth.
    assert max(accepts.gaps()[:7]) < 2.0, accepts.gaps()
    assert got.texts[:7] == [f"event {n}" for n in range(1, 8)]
    assert [e for e in got.errors if isinstance(e, RealtimeConnectError)] == []


def test_a_relay_that_drops_sessions_after_a_few_quiet_seconds_is_reconnected_at_once(
    setup: Setup,
) -> None:
    # ping_timeout 2 s: a session is healthy after 1 s. The relay keeps each one 1.3 s.
    accepts = Accepts()

    def script(peer: Peer, _number: int) -> None:
        peer.handshake()
        peer.answer_connect()
        accepts.mark()
        deadline = time.monotonic() + 1.3
        while time.monotonic() < deadline:
            try:
                peer.next_frame(timeout=max(deadline - time.monotonic(), 0.01))
            except TimeoutError:
                break
        peer.sock.close()

    got = Collector()
    with ScriptedRelay(script) as relay:
        hub = make_hub(setup, relay, reconnect_max_delay=30.0, ping_timeout=2.0)  # type: ignore[arg-type]
        try:
            hub.subscribe(setup.room.id, got.on_message, got.on_error)
            assert wait_until(lambda: len(accepts) >= 6, timeout=30), accepts.gaps()
        finally:
            hub.close()
    # 1.3 s per session plus an immediate reconnect; backing off would add 0.25 .. 8 s.
    assert max(accepts.gaps()[:5]) < 2.5, accepts.gaps()
    assert [e for e in got.errors if isinstance(e, RealtimeConnectError)] == []


def test_a_streak_report_comes_again_only_after_a_healthy_session(setup: Setup) -> None:
    """Short sessions, then healthy ones (the streak ends), then short again: two reports."""
    accepts = Accepts()
    healthy = threading.Event()

    def script(peer: Peer, number: int) -> None:
        peer.handshake()
        peer.answer_connect()
        accepts.mark()
        if healthy.is_set():
            ev = event(setup, f"event {number}")
            peer.send(text(ev))
            peer.next_json()
        peer.sock.close()

    got = Collector()
    with ScriptedRelay(script) as relay:
        hub = make_hub(setup, relay, reconnect_max_delay=0.4)  # type: ignore[arg-type]
        try:
            hub.subscribe(setup.room.id, got.on_message, got.on_error)
            got.wait_error(RealtimeConnectError, timeout=15)
            healthy.set()
            assert got.wait_for(2, timeout=15)
            healthy.clear()
            assert wait_until(
                lambda: len([e for e in got.errors if isinstance(e, RealtimeConnectError)]) >= 2,
                timeout=15,
            ), got.errors
            more = len(accepts) + 4
            assert wait_until(lambda: len(accepts) >= more, timeout=15)  # short ones again
        finally:
            hub.close()
    reports = [e for e in got.errors if isinstance(e, RealtimeConnectError)]
    assert len(reports) == 2, got.errors
    assert hub.state is ConnectionState.CLOSED
