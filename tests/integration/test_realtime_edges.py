"""The connection's error paths against a scripted raw-socket relay on 127.0.0.1.

Each test scripts what the relay does with each connection (hang in the upgrade, never answer
``signalwire.connect``, reset the TCP connection, answer the upgrade with 403, ignore the
flow-control window, ...) and checks what a user sees: ``subscribe()`` returning or raising,
errors given to ``on_error`` (once per outage), deliveries, and the frames on the wire (read
back with wsproto by the hostile relay's ``Peer``). History is an empty stand-in: these tests
are about the socket, not the catch-up reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import ssl
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from test_hostile_relay import OP_PING, Peer, Script, ScriptedRelay, frame, text
from test_realtime_support import Collector, wait_until

from signalwire_chat._auth import Credentials
from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Route
from signalwire_chat._threads import library_threads
from signalwire_chat.errors import (
    AuthenticationError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    TokenUnavailableError,
)
from signalwire_chat.models import ConversationChatMessage

WAIT = 10.0
ROOM = "room-1"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlZGdlcyJ9.c2lnbmF0dXJlLW9uZQ"
TOKEN2 = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlZGdlczIifQ.c2lnbmF0dXJlLXR3bw"


@contextlib.contextmanager
def _serving(
    script: Script,
    *,
    stop: threading.Event | None = None,
    rcvbuf: int | None = None,
    **options: Any,
) -> Iterator[RealtimeHub]:
    """A hub (``_hub(url, **options)``) pointed at a relay running ``script``.

    At the end ``stop`` is set, the hub closed, the relay stopped, and (unless the test failed
    already) nothing a script raised is left in ``relay.errors``.
    """
    with ScriptedRelay(script, rcvbuf=rcvbuf) as relay:
        hub = _hub(relay.url, **options)
        try:
            yield hub
        finally:
            if stop is not None:
                stop.set()
            hub.close()
    assert relay.errors == []


def _history(route: Route) -> Iterator[ConversationChatMessage]:
    return iter(())


def _hub(
    url: str, token: Any = TOKEN, sslopt: dict[str, Any] | None = None, **options: Any
) -> RealtimeHub:
    defaults = {"ping_timeout": 30.0, "reconnect_max_delay": 0.2, "connect_timeout": 5.0}
    return RealtimeHub(
        relay_url=url,
        credentials=Credentials(token),
        agent="signalwire-chat-python/edges-test",
        history=_history,
        options=RealtimeOptions(**{**defaults, **options}),
        sslopt=sslopt,
    )


def _accept(peer: Peer, **result: Any) -> dict[str, Any]:
    """Handshake and accept ``signalwire.connect``; the request."""
    peer.handshake()
    request = peer.next_json()
    assert request["method"] == "signalwire.connect"
    answer = {"protocol": f"signalwire_edges_{uuid.uuid4()}", "authorization": {"jti": "j"}}
    answer.update(result)
    peer.send(text({"jsonrpc": "2.0", "id": request["id"], "result": answer}))
    return request


def _event(body: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": str(uuid.uuid4()),
        "method": "signalwire.event",
        "params": {
            "event_type": "conversation.message",
            "params": {
                "id": str(uuid.uuid4()),
                "conversation_id": ROOM,
                "user_id": "mallory",
                "ts": time.time(),
                "details": {},
                "type": "message",
                "subtype": "chat",
                "text": body,
                "user_name": "Mallory",
            },
        },
    }


def _hold_open(peer: Peer, done: threading.Event) -> None:
    """Keep reading what the client sends until it leaves or the test ends."""
    while not done.is_set():
        try:
            if peer.next_frame(WAIT) is None:
                return
        except TimeoutError:
            continue


def test_close_during_the_upgrade_cuts_the_handshake_short() -> None:
    seen = threading.Event()

    def script(peer: Peer, number: int) -> None:
        peer.sock.recv(4096)  # the upgrade request: never answered
        seen.set()
        assert peer.sock.recv(4096) == b""  # the client shut the socket down

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, connect_timeout=30.0)
        got = Collector()
        returned: list[Any] = []
        waiter = threading.Thread(
            target=lambda: returned.append(hub.subscribe(ROOM, got.on_message, got.on_error)),
            name="test-subscriber",
        )
        waiter.start()
        assert seen.wait(WAIT)
        hub.close(2.0)
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert not returned[0].active  # closed while it waited: ended, not left behind
        assert hub.state is ConnectionState.CLOSED
        assert not hub.running
    assert relay.errors == []


def _connection_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("signalwire-chat-connection")]


def test_close_during_a_stalled_tls_handshake_ends_the_thread_at_once() -> None:
    seen = threading.Event()

    def script(peer: Peer, number: int) -> None:
        peer.sock.recv(4096)  # the TLS client hello: never answered
        seen.set()
        assert peer.sock.recv(4096) == b""  # the client shut the socket down

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url.replace("ws://", "wss://"), connect_timeout=30.0)
        waiter = threading.Thread(target=lambda: hub.subscribe(ROOM, print), name="test-sub")
        waiter.start()
        assert seen.wait(WAIT)
        started = time.monotonic()
        hub.close(2.0)
        # Before: close() gave up after 2 s and the thread lived on for the rest of the
        # 30 s connect_timeout, inside the TLS handshake.
        assert wait_until(lambda: not _connection_threads(), timeout=3.0), _connection_threads()
        assert time.monotonic() - started < 3.0
        waiter.join(WAIT)
        assert not waiter.is_alive()
        assert hub.state is ConnectionState.CLOSED
    assert relay.errors == []


@pytest.fixture
def tls_relay(tmp_path: Any) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 and the path of the CA file that trusts it."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, str(ca_file)


@pytest.mark.parametrize("trusted", [True, False], ids=["trusted", "untrusted"])
def test_a_wss_relay_is_verified_and_then_spoken_to(
    tls_relay: tuple[ssl.SSLContext, str], trusted: bool
) -> None:
    """The TLS handshake (now run inside the upgrade) still verifies the certificate."""
    server, ca_file = tls_relay
    done = threading.Event()

    def script(peer: Peer, number: int) -> None:
        try:
            peer.sock = server.wrap_socket(peer.sock, server_side=True)
        except (ssl.SSLError, OSError):
            assert not trusted  # the client refused our certificate
            return
        try:
            _accept(peer)
            peer.send(text(_event("over TLS")))
            _hold_open(peer, done)
        finally:
            peer.sock.close()  # the TLS socket owns the descriptor now

    with ScriptedRelay(script) as relay:
        url = relay.url.replace("ws://", "wss://")
        hub = _hub(url, sslopt={"ca_certs": ca_file} if trusted else None)
        try:
            got = Collector()
            if trusted:
                hub.subscribe(ROOM, got.on_message, got.on_error)
                assert got.wait_for(1) == ["over TLS"]
            else:
                with pytest.raises(RealtimeConnectError) as info:
                    hub.subscribe(ROOM, got.on_message, got.on_error)
                assert info.value.permanent
                assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)
        finally:
            done.set()
            hub.close()
    assert relay.errors == []


def test_a_relay_that_never_answers_the_connect_is_one_outage_for_on_error() -> None:
    attempts = threading.Event()
    numbers: list[int] = []

    def script(peer: Peer, number: int) -> None:
        numbers.append(number)
        peer.handshake()
        assert peer.next_json()["method"] == "signalwire.connect"
        peer.gone()  # silent until the client gives up on this socket
        if number >= 4:
            attempts.set()  # the client now waits (back-off) before its next attempt

    with _serving(script, connect_timeout=0.3, reconnect_max_delay=5.0) as hub:
        got = Collector()
        sub = hub.subscribe(ROOM, got.on_message, got.on_error)
        assert sub.active  # kept: what it misses is fetched once connected
        assert attempts.wait(WAIT)
        error = got.wait_error(RealtimeConnectError)
        assert "no answer to signalwire.connect" in str(error)
        assert len(got.errors) == 1  # once per outage, not once per attempt


def test_a_relay_that_closes_before_answering_then_recovers() -> None:
    def script(peer: Peer, number: int) -> None:
        if number == 1:
            peer.handshake()
            peer.next_json()  # the connect, then the TCP connection ends
            peer.sock.shutdown(socket.SHUT_RDWR)
            return
        _accept(peer)
        peer.send(text(_event("after the outage")))
        _hold_open(peer, stop)

    stop = threading.Event()
    with _serving(script, stop=stop) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        error = got.wait_error(RealtimeConnectError)
        assert "the relay closed the socket" in str(error)
        assert got.wait_for(1) == ["after the outage"]


def test_a_reset_connection_is_reconnected_and_delivery_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        if number == 1:
            peer.send(text(_event("first")))
            peer.next_json()  # its ack
            # An abortive close: the client's recv() fails with ECONNRESET.
            peer.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            peer.sock.close()
            return
        peer.send(text(_event("second")))
        _hold_open(peer, stop)

    with _serving(script, stop=stop) as hub:
        got = Collector()
        with caplog.at_level(logging.INFO, logger="signalwire_chat._realtime._connection"):
            hub.subscribe(ROOM, got.on_message, got.on_error)
            assert got.wait_for(2) == ["first", "second"]
        assert "recv failed" in caplog.text


def test_a_403_upgrade_answer_is_a_setting_to_fix_raised_from_subscribe() -> None:
    def script(peer: Peer, number: int) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            data += peer.sock.recv(4096)
        peer.sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    with _serving(script) as hub:
        with pytest.raises(RealtimeConnectError) as info:
            hub.subscribe(ROOM, print)
        assert info.value.permanent
        assert "403" in str(info.value)
        assert hub.subscriptions == ()  # not left active; with none, the hub is idle
        assert hub.state is ConnectionState.IDLE


class _TokenSource:
    """A token source that follows a script: a token, or an exception to raise, per call."""

    def __init__(self, *outcomes: str | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> str:
        with self.lock:
            self.calls += 1
            outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def test_a_token_source_refused_at_the_first_fetch_is_raised_from_subscribe() -> None:
    def script(peer: Peer, number: int) -> None:  # never reached
        raise AssertionError("the client dialled without a token")

    source = _TokenSource(AuthenticationError("bad project key", status=401))
    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, token=source)
        try:
            with pytest.raises(RealtimeAuthenticationError, match="no usable token"):
                hub.subscribe(ROOM, print)
            assert relay.peers.empty()
        finally:
            hub.close()


def test_a_token_source_outage_is_reported_once_then_the_client_connects() -> None:
    stop = threading.Event()
    requests: list[dict[str, Any]] = []

    def script(peer: Peer, number: int) -> None:
        requests.append(_accept(peer))
        peer.send(text(_event("connected at last")))
        _hold_open(peer, stop)

    down = RuntimeError("token service unreachable")
    source = _TokenSource(down, down, down, TOKEN)
    with _serving(script, stop=stop, token=source, connect_timeout=0.5) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        assert got.wait_for(1) == ["connected at last"]
        assert len(got.errors) == 1
        assert isinstance(got.errors[0], TokenUnavailableError)
        assert source.calls == 4
        assert requests[0]["params"]["authentication"]["jwt_token"] == TOKEN


def _refuse(peer: Peer) -> dict[str, Any]:
    peer.handshake()
    request = peer.next_json()
    error = {"code": -32002, "message": "Authentication failed"}
    peer.send(text({"jsonrpc": "2.0", "id": request["id"], "error": error}))
    return request


def test_a_refused_token_whose_refresh_is_refused_ends_in_failed() -> None:
    def script(peer: Peer, number: int) -> None:
        _refuse(peer)

    source = _TokenSource(TOKEN, AuthenticationError("project key revoked", status=401))
    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, token=source)
        try:
            with pytest.raises(RealtimeAuthenticationError, match="no usable token"):
                hub.subscribe(ROOM, print)
            assert hub.state is ConnectionState.IDLE
            assert relay.peers.qsize() == 1  # no second connect with a refused source
        finally:
            hub.close()
    assert relay.errors == []


def test_a_refused_token_is_refreshed_through_a_transient_failure() -> None:
    stop = threading.Event()
    tokens: list[str] = []

    def script(peer: Peer, number: int) -> None:
        if number == 1:
            tokens.append(_refuse(peer)["params"]["authentication"]["jwt_token"])
            return
        request = _accept(peer)
        tokens.append(request["params"]["authentication"]["jwt_token"])
        peer.send(text(_event("with the new token")))
        _hold_open(peer, stop)

    source = _TokenSource(TOKEN, RuntimeError("token service hiccup"), TOKEN2)
    with _serving(script, stop=stop, token=source) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        assert got.wait_for(1) == ["with the new token"]
        assert tokens == [TOKEN, TOKEN2]
        assert [type(e) for e in got.errors] == [TokenUnavailableError]


def test_a_token_near_expiry_is_refreshed_on_the_open_connection_after_a_failure() -> None:
    reauth = queue.Queue[dict[str, Any]]()
    stop = threading.Event()

    def script(peer: Peer, number: int) -> None:
        expiry = {"fabric_subscriber": {"expires_at": time.time() + 1.0}}
        _accept(peer, authorization=expiry)
        while not stop.is_set():
            try:
                got = peer.next_frame(WAIT)
            except TimeoutError:
                continue
            if got is None:
                return
            message = json.loads(got[1]) if got[0] == 0x1 else {}
            if message.get("method") == "signalwire.reauthenticate":
                later = {"fabric_subscriber": {"expires_at": "not a date"}}
                answer = {"jsonrpc": "2.0", "id": message["id"], "result": later}
                peer.send(text(answer))
                reauth.put(message)

    source = _TokenSource(TOKEN, RuntimeError("token service hiccup"), TOKEN2)
    with _serving(
        script, stop=stop, token=source, refresh_margin=30.0, reconnect_max_delay=0.2
    ) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        request = reauth.get(timeout=WAIT)
        assert request["params"]["authentication"]["jwt_token"] == TOKEN2
        assert [type(e) for e in got.errors] == [TokenUnavailableError]
        assert hub.state is ConnectionState.CONNECTED


def test_with_no_service_time_a_clock_that_makes_the_token_look_expired_does_not_loop(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """This machine an hour ahead, and no REST answer to date the service by: the relay's
    ``expires_at`` reaches the refresh schedule, which says so once and does not fetch again
    at once. (How long it waits, ``refresh_margin``, and that it never loops are timer
    properties, tested on a fake clock in ``tests/unit/test_refresher.py``.)"""
    import types

    from signalwire_chat._realtime import _refresher

    real = time.time
    monkeypatch.setattr(
        _refresher,
        "time",
        types.SimpleNamespace(time=lambda: real() + 3600, monotonic=time.monotonic),
    )
    stop = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer, authorization={"fabric_subscriber": {"expires_at": real() + 600}})
        _hold_open(peer, stop)

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if "looks expired" in r.getMessage()]

    source = _TokenSource(TOKEN, TOKEN2)
    caplog.set_level("WARNING", logger="signalwire_chat._realtime._connection")
    with _serving(script, stop=stop, token=source, refresh_margin=30.0) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        assert wait_until(lambda: bool(warnings()), WAIT)
        assert source.calls == 1, source.calls  # the first fetch only
        assert hub.state is ConnectionState.CONNECTED
    assert len(warnings()) == 1, warnings()


def test_a_relay_ignoring_the_window_is_read_again_once_the_callback_catches_up() -> None:
    count = 1200  # beyond the 1000 messages the client holds back before it stops reading
    stop = threading.Event()
    acked = threading.Event()
    accepted = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        accepted.set()
        events = [_event(f"m{i}") for i in range(count)]
        peer.send(b"".join(text(e) for e in events))
        ids = {e["id"] for e in events}
        while ids and not stop.is_set():
            message = peer.next_json()
            ids.discard(message.get("id"))
        acked.set()
        _hold_open(peer, stop)

    release = threading.Event()
    got = Collector(on_each=lambda message: release.wait(WAIT))
    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, queue_size=1, ping_timeout=1.0, slow_callback_after=30.0)
        try:
            hub.subscribe(ROOM, got.on_message, got.on_error)
            # The scenario itself: the first callback stalls for twice the ping timeout, so
            # the client stops reading (flow control) for longer than that; a silence it
            # chose is no dead link.
            assert accepted.wait(WAIT)
            threading.Timer(2.0, release.set).start()
            texts = got.wait_for(count, timeout=30)
            assert texts == [f"m{i}" for i in range(count)]
            assert acked.wait(WAIT)  # every held message acknowledged once handed over
            assert got.errors == []
            assert relay.peers.qsize() == 1  # one connection: no reconnect for the stall
        finally:
            release.set()
            stop.set()
            hub.close()
    assert relay.errors == []


def test_a_relay_that_never_reads_is_left_after_the_ping_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    ping = frame(b"p" * 125, OP_PING)

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        if number > 1:
            peer.send(text(_event("on a relay that reads")))
            _hold_open(peer, stop)
            return
        # Pings the client must answer, while never reading the answers: its pongs fill
        # the socket buffers until send() blocks.
        peer.sock.settimeout(WAIT)
        with contextlib.suppress(OSError):
            for _ in range(40_000):
                peer.sock.sendall(ping * 50)

    with _serving(script, stop=stop, rcvbuf=4096, ping_timeout=1.0) as hub:
        got = Collector()
        with caplog.at_level(logging.INFO, logger="signalwire_chat._realtime._connection"):
            hub.subscribe(ROOM, got.on_message, got.on_error)
            assert got.wait_for(1, timeout=30) == ["on a relay that reads"]
        assert "the relay does not read what is sent" in caplog.text


def test_a_wss_url_on_a_plain_server_is_a_setting_to_fix() -> None:
    def script(peer: Peer, number: int) -> None:
        peer.sock.recv(4096)  # the TLS client hello, answered in plain HTTP
        peer.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    with ScriptedRelay(script) as relay:
        url = relay.url.replace("ws://", "wss://")
        hub = _hub(url)
        try:
            with pytest.raises(RealtimeConnectError) as info:
                hub.subscribe(ROOM, print)
            assert info.value.permanent
            assert "SSL" in str(info.value)
        finally:
            hub.close()
    assert relay.errors == []


def test_a_relay_that_asks_to_disconnect_but_keeps_the_socket_is_left_and_rejoined() -> None:
    stop = threading.Event()
    frames_after_ack: list[Any] = []

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        if number == 1:
            bye = {"jsonrpc": "2.0", "id": "bye-1", "method": "signalwire.disconnect"}
            peer.send(text(bye))
            assert peer.next_json()["id"] == "bye-1"
            peer.send(text(_event("sent after the disconnect")))  # not answered, not delivered
            frames_after_ack.append(peer.next_frame())  # the client leaves on its own
            return
        peer.send(text(_event("on the new socket")))
        _hold_open(peer, stop)

    with _serving(script, stop=stop, close_timeout=0.3) as hub:
        got = Collector()
        hub.subscribe(ROOM, got.on_message, got.on_error)
        assert got.wait_for(1) == ["on the new socket"]
        assert frames_after_ack == [None]  # nothing more said: no ack, no close frame
        assert got.errors == []


def test_close_with_no_time_to_wait_still_ends_everything() -> None:
    stop = threading.Event()
    left = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        _hold_open(peer, stop)
        left.set()

    with _serving(script, stop=stop) as hub:
        hub.subscribe(ROOM, print)
        assert hub.state is ConnectionState.CONNECTED
        hub.close(0.0)  # returns at once; the socket is shut down under the thread
        assert hub.state is ConnectionState.CLOSED
        assert left.wait(WAIT)
        assert wait_until(lambda: not hub.running)


def test_a_stream_consumer_that_falls_behind_is_not_a_slow_callback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        for i in range(3):
            peer.send(text(_event(f"s{i}")))
        _hold_open(peer, stop)

    with _serving(script, stop=stop, queue_size=1, slow_callback_after=0.1) as hub:
        with caplog.at_level(logging.WARNING):
            stream = hub.stream(ROOM, timeout=WAIT)
            # The consumer is busy elsewhere for many times slow_callback_after, while
            # the dispatcher waits for room in the stream: that is no slow callback.
            stop.wait(1.0)
            texts = [next(stream).text for _ in range(3)]
            stream.close()
        assert texts == ["s0", "s1", "s2"]
        assert "running for" not in caplog.text


class _SlowRefresh:
    """A token source: the first fetch answers at once, each later one waits for ``release``."""

    def __init__(self) -> None:
        self.fetching = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls == 1:
            return TOKEN
        self.fetching.set()
        self.release.wait(WAIT)
        return TOKEN2


@contextlib.contextmanager
def _fetching_a_token() -> Iterator[tuple[RealtimeHub, _SlowRefresh]]:
    """A subscribed hub whose token source is fetching a fresh token (held until released).

    The relay accepts with a token that expires in a second, so a refresh is due at once.
    """
    stop = threading.Event()

    def script(peer: Peer, number: int) -> None:
        _accept(peer, authorization={"fabric_subscriber": {"expires_at": time.time() + 1.0}})
        _hold_open(peer, stop)

    source = _SlowRefresh()
    try:
        with _serving(script, stop=stop, token=source, refresh_margin=30.0) as hub:
            hub.subscribe(ROOM, print)
            assert source.fetching.wait(WAIT)
            yield hub, source
    finally:
        source.release.set()


def _timed_close(hub: RealtimeHub, timeout: float, caplog: pytest.LogCaptureFixture) -> float:
    """How long ``hub.close(timeout)`` took, its WARNINGs captured."""
    with caplog.at_level(logging.WARNING, logger="signalwire_chat"):
        started = time.monotonic()
        hub.close(timeout)
        return time.monotonic() - started


def test_close_waits_for_a_token_fetch_that_ends_in_time_and_leaves_no_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _fetching_a_token() as (hub, source):
        threading.Timer(0.8, source.release.set).start()
        took = _timed_close(hub, 5.0, caplog)
        # close() waited for the fetch (released 0.8 s in), not for its whole timeout.
        assert 0.7 <= took < 4.0, took
        assert not hub.running
        assert [t.name for t in library_threads() if "token-refresh" in t.name] == []
        assert "still running" not in caplog.text


def test_close_names_a_token_fetch_that_does_not_end_and_returns_in_its_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with _fetching_a_token() as (hub, source):
        took = _timed_close(hub, 0.5, caplog)
        assert took < 2.0, took  # bounded by close()'s timeout, however long the fetch
        assert "token-refresh" in caplog.text  # the thread left running is named
        assert hub.running  # and counted, until the token source returns
        source.release.set()
        assert wait_until(lambda: not hub.running)
