"""What the connection does when a session timer fires, on plain numbers: no relay, no sleep.

The session says what is due (``tests/unit/test_timers.py``); the connection carries it out
(:meth:`Connection._due`, :meth:`Connection._refreshed`). Here a session is fed times by
hand and the connection writes to one end of a socketpair, read back at the other.
"""

from __future__ import annotations

import json
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
