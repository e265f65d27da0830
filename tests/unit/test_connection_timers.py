"""What the connection does when a session timer fires, on plain numbers: no relay, no sleep.

The session says what is due (``tests/unit/test_timers.py``); the connection carries it out
(:meth:`Connection._due`, :meth:`Connection._refreshed`). Here a session is fed times by
hand and the connection writes to one end of a socketpair, read back at the other. The same
set-up feeds one read of events to the loop: how it hands them to the dispatcher.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _wire import client_frames, server

from signalwire_chat._realtime import RealtimeOptions
from signalwire_chat._realtime._connection import Connection, _Dead, _Ended, _Loop
from signalwire_chat._realtime._dispatcher import Dispatcher
from signalwire_chat._realtime._routes import Routes
from signalwire_chat._realtime._session import RelaySession
from signalwire_chat._realtime._timers import Due

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0aW1lcnMifQ.c2VjcmV0LXNpZ25hdHVyZQ"
FRESH = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmcmVzaCJ9.c2VjcmV0LXNpZ25hdHVyZQ"


class Source:
    """Credentials whose refresh follows a script (a token, or an exception to raise)."""

    can_refresh = True
    secrets = ()

    def __init__(self, *outcomes: str | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.token = TOKEN
        self.calls = 0

    def refresh(self, stale: str | None = None) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture
def wired() -> Iterator[tuple[Connection, _Loop, socket.socket, Source]]:
    """A connection, a loop over one end of a socketpair (accepted at t=100), the other end."""
    source = Source(FRESH)
    options = RealtimeOptions(ping_timeout=20.0, connect_timeout=10.0, refresh_margin=30.0)
    dispatcher = Dispatcher(queue_size=10)
    errors: list[BaseException] = []
    conn = Connection(
        relay_url="ws://127.0.0.1:9/",
        credentials=source,
        agent="test/1",
        options=options,
        sslopt=None,
        dispatcher=dispatcher,
        routes=Routes(),
        on_state=lambda _state: None,
        on_connected=lambda _first: None,
        on_failed=errors.append,
        on_trouble=errors.append,
    )
    ours, theirs = socket.socketpair()
    session = RelaySession(conn.relay, now=90.0, options=options)
    loop = _Loop(conn, ours, session, first=True)
    conn._token = TOKEN
    connect = json.loads(client_frames(session.connect(TOKEN, reconnect=False))[0][1])
    answer = {"jsonrpc": "2.0", "id": connect["id"], "result": {"protocol": "p"}}
    session.receive(server(json.dumps(answer).encode()), 100.0, room=10)
    try:
        yield conn, loop, theirs, source
    finally:
        conn._refresher.join(10)
        conn._close_wake()
        ours.close()
        theirs.close()
        assert errors == [], errors


def _sent(theirs: socket.socket) -> list[dict[str, Any]]:
    theirs.setblocking(False)
    data = theirs.recv(65536)
    return [json.loads(payload) for _opcode, payload in client_frames(data)]


def test_half_the_ping_timeout_in_silence_sends_one_probe(wired: Any) -> None:
    conn, loop, theirs, _source = wired
    for now in (105.0, 109.9):
        assert loop.session.handle_timer(now) == []
    for due in loop.session.handle_timer(110.0):
        conn._due(loop, due)
    assert [m["method"] for m in _sent(theirs)] == ["signalwire.ping"]
    assert loop.session.handle_timer(115.0) == []  # one probe per silence


def test_the_whole_ping_timeout_in_silence_ends_the_session(wired: Any) -> None:
    conn, loop, _theirs, _source = wired
    assert Due.PING_TIMEOUT not in loop.session.handle_timer(119.9)
    due = loop.session.handle_timer(120.0)
    assert due == [Due.PING_TIMEOUT]
    with pytest.raises(_Ended, match="ping timeout"):
        conn._due(loop, due[0])


def test_an_unanswered_connect_is_a_dead_link(wired: Any) -> None:
    conn, loop, _theirs, _source = wired
    unanswered = RelaySession(conn.relay, now=0.0, options=RealtimeOptions(connect_timeout=10.0))
    assert unanswered.handle_timer(9.9) == []
    [due] = unanswered.handle_timer(10.0)
    with pytest.raises(_Dead, match="no answer"):
        conn._due(loop, due)


def test_a_due_refresh_fetches_once_and_sends_the_fresh_token(wired: Any) -> None:
    conn, loop, theirs, source = wired
    loop.session.timers.received(145.0)  # the link is alive: only the refresh is due
    loop.session.timers.refresh_at = 150.0
    assert Due.REFRESH not in loop.session.handle_timer(149.0)
    woke = threading.Event()
    conn._refresher._wake = woke.set
    for now in (150.0, 150.5):  # due again before the fetch is taken: not fetched twice
        for due in loop.session.handle_timer(now):
            conn._due(loop, due)
    assert loop.session.timers.refresh_at is None
    assert woke.wait(10)
    conn._refreshed(loop, 151.0)
    assert source.calls == 1
    [request] = _sent(theirs)
    assert request["method"] == "signalwire.reauthenticate"
    assert request["params"]["authentication"]["jwt_token"] == FRESH


def test_a_failed_refresh_is_due_again_after_its_back_off(wired: Any) -> None:
    conn, loop, _theirs, source = wired
    source.outcomes = [RuntimeError("token service hiccup")]
    reported: list[BaseException] = []
    conn._on_trouble = reported.append
    woke = threading.Event()
    conn._refresher._wake = woke.set
    conn._refresher.start(TOKEN)
    assert woke.wait(10)
    loop.session.timers.received(199.0)  # the link is alive: only the refresh is due
    conn._refreshed(loop, 200.0)
    retry_at = loop.session.timers.refresh_at
    assert retry_at is not None
    assert retry_at >= 201.0  # at least MIN_REFRESH_DELAY later, never at once
    assert Due.REFRESH not in loop.session.handle_timer(retry_at - 0.01)
    assert Due.REFRESH in loop.session.handle_timer(retry_at)
    assert [type(e) for e in reported] == [RuntimeError]


class _WatchedCondition(threading.Condition):
    """A real condition that notes, at each notification (a wake-up of the dispatcher), how
    many acks the relay's end of the socketpair could read by then."""

    def __init__(self, theirs: socket.socket) -> None:
        super().__init__(threading.Lock())
        self.theirs = theirs
        self.acks_at_wake: list[int] = []

    def notify(self, n: int = 1) -> None:
        try:
            sent = self.theirs.recv(1 << 20, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = b""
        self.acks_at_wake.append(len(client_frames(sent)))
        super().notify(n)


def _events(first: int, count: int) -> bytes:
    """``count`` chat events as the relay frames them, in one write."""
    return b"".join(
        server(
            json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": f"rpc-{n}",
                    "method": "signalwire.event",
                    "params": {
                        "event_type": "conversation.message",
                        "params": {"id": f"m-{n}", "subtype": "chat", "text": f"t{n}"},
                    },
                }
            ).encode()
        )
        for n in range(first, first + count)
    )


def _read(wired: Any, data: bytes, *, then_hang_up: bool = False) -> _WatchedCondition:
    """Feed ``data`` to the loop in one read (the relay gone after it, if told); the
    dispatcher's condition, which saw each wake-up."""
    conn, loop, theirs, _source = wired
    dispatcher = loop.dispatcher
    dispatcher.queue_size = 1000
    cond = dispatcher._cond = _WatchedCondition(theirs)
    conn.relay.routes.inbox = ("subscription",)  # every chat message is wanted
    theirs.sendall(data)
    if then_hang_up:
        theirs.shutdown(socket.SHUT_RD)  # our acks can no longer be sent
    loop.read()
    return cond


def test_a_read_of_many_events_is_acked_in_parts_and_wakes_the_dispatcher_once(
    wired: Any,
) -> None:
    cond = _read(wired, _events(1, 100))
    dispatcher = wired[1].dispatcher
    assert [wire["text"] for _subs, wire, _update in dispatcher._items] == [
        f"t{n}" for n in range(1, 101)
    ]  # queued in order
    assert [m["id"] for m in _sent(wired[2])] == [f"rpc-{n}" for n in range(1, 101)]
    # One wake-up for the whole read, after it is all queued and acked: each part's acks
    # went out while the rest was decoded.
    assert cond.acks_at_wake == [100]


def test_a_lone_event_wakes_the_dispatcher_before_its_ack_is_sent(wired: Any) -> None:
    cond = _read(wired, _events(1, 1))
    assert cond.acks_at_wake == [0]
    assert [m["id"] for m in _sent(wired[2])] == ["rpc-1"]


def test_a_read_that_fails_midway_still_wakes_the_dispatcher_for_what_it_queued(
    wired: Any,
) -> None:
    with pytest.raises(BrokenPipeError):  # sending the first part's acks fails: a dead link
        _read(wired, _events(1, 100), then_hang_up=True)
    dispatcher = wired[1].dispatcher
    assert dispatcher.pending() == 32  # the first part, queued before its acks
    assert dispatcher._cond.acks_at_wake == [0]  # and the dispatcher woken for it


def test_a_small_read_allocates_about_its_size_not_the_receive_buffer(wired: Any) -> None:
    import tracemalloc

    conn, loop, theirs, _source = wired
    conn.relay.routes.inbox = ("subscription",)
    theirs.sendall(_events(1, 1))
    loop.read()  # the session's first read: whatever is set up once is done
    theirs.sendall(_events(2, 1))
    tracemalloc.start()
    try:
        loop.read()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024  # one ~200-byte event; a fresh 256 KiB per read before
    assert loop.dispatcher.pending() == 2
    assert [m["id"] for m in _sent(theirs)] == ["rpc-1", "rpc-2"]


def test_a_wake_up_after_the_thread_closed_its_pipe_writes_to_no_stranger(wired: Any) -> None:
    """The wake-up pipe's numbers are the OS's again once closed: a late wake-up (a token
    fetch ending after close, a stop() after the thread ended) must not write to whatever
    file took them."""
    conn, _loop, _theirs, _source = wired
    conn.wake()  # while the pipe is open, a wake-up reaches the thread's end of it
    assert os.read(conn._wake_r, 16) == b"\0"
    conn._close_wake()  # as the thread does when it ends
    stranger_r, stranger_w = os.pipe()  # takes the numbers the pipe had (the lowest free)
    try:
        conn.wake()
        conn.stop()
        os.set_blocking(stranger_r, False)
        with pytest.raises(BlockingIOError):
            os.read(stranger_r, 16)
        conn._close_wake()  # twice: closes nothing of the stranger's
        os.write(stranger_w, b"ok")
        assert os.read(stranger_r, 16) == b"ok"
    finally:
        os.close(stranger_r)
        os.close(stranger_w)
