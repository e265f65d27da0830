"""Realtime through outages of what it depends on: the token source, the relay, the clocks.

Each test here failed before the fix it guards (issue 9): a token-source outage ended
delivery for good, a short session kept the back-off growing, clock disagreement lost
messages, an unreachable relay was silent, close() during a stuck catch-up read left a
thread and called back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_realtime_support import FAST, Collector, Setup, setup_fixture, wait_until

from signalwire_chat import ChatClient, SubscriberTokenSource
from signalwire_chat._realtime import ConnectionState, RealtimeOptions
from signalwire_chat.errors import MessagesMayBeMissingError, TokenUnavailableError

TOKENS = "/api/fabric/subscribers/tokens"


@pytest.fixture
def short_tokens(emulator_factory) -> Iterator[Setup]:
    s = Setup(emulator_factory(token_ttl=3.0), "group")
    yield s
    s.close()


def _source_client(s: Setup, **options: object) -> ChatClient:
    source = SubscriberTokenSource(
        s.emu.space_url, s.emu.project_id, s.emu.api_token, s.me.reference
    )
    return s.client(source, realtime=RealtimeOptions(**{**FAST, **options}))  # type: ignore[arg-type]


def test_a_token_source_outage_across_refresh_and_expiry_loses_nothing(
    short_tokens: Setup,
) -> None:
    s = short_tokens
    client = _source_client(s)
    got = Collector()
    sub = client.subscribe(s.room.id, got.on_message, got.on_error)
    assert client.connection_state is ConnectionState.CONNECTED
    expected = [f"before{i}" for i in range(3)]
    for text in expected:
        s.send(text)
    assert got.wait_for(3) == expected
    # The token endpoint answers 503 from now on: the refresh (at half the 3 s life) fails,
    # the token expires, the relay ends the session, reconnects are refused until a fresh
    # token comes.
    s.emu.fail_next(503, path_prefix=TOKENS, times=100_000)
    got.wait_error(TokenUnavailableError, timeout=10)
    assert wait_until(lambda: client.connection_state is not ConnectionState.CONNECTED, 10)
    for i in range(5):
        text = f"down{i}"
        s.send(text)
        expected.append(text)
    assert client.connection_state is not ConnectionState.FAILED
    s.emu.clear_faults()  # the source recovers
    assert wait_until(lambda: client.connection_state is ConnectionState.CONNECTED, 15)
    for i in range(3):
        text = f"after{i}"
        s.send(text)
        expected.append(text)
    assert got.wait_for(len(expected), timeout=15) == expected
    assert len({m.id for m in got.messages}) == len(expected)
    outages = [e for e in got.errors if isinstance(e, TokenUnavailableError)]
    assert len(outages) == 1, got.errors  # told once per outage
    assert [e for e in got.errors if not isinstance(e, TokenUnavailableError)] == []
    assert sub.active


setup = setup_fixture("group")


def test_every_healthy_session_resets_the_back_off(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    with setup.subscribed(reconnect_max_delay=30.0) as (hub, got):
        caplog.set_level("INFO", logger="signalwire_chat._realtime._connection")
        for round_ in range(6):  # sessions far shorter than a few seconds, each delivering
            setup.send(f"round {round_}")
            assert got.wait_for(round_ + 1)[-1] == f"round {round_}"
            before = setup.emu.connect_attempts
            setup.emu.drop_connections()
            assert wait_until(
                lambda b=before: (
                    setup.emu.connect_attempts > b  # type: ignore[misc]
                    and hub.state is ConnectionState.CONNECTED
                ),
                10,
            ), round_
        delays = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
        assert delays == []  # each reconnect was immediate
        setup.send("still")
        assert got.wait_for(7)[-1] == "still"


def test_a_relay_that_refuses_meets_a_growing_delay(setup: Setup) -> None:
    with setup.subscribed(reconnect_max_delay=30.0, connect_timeout=0.5) as (hub, _got):
        before = setup.emu.connect_attempts
        setup.emu.refuse_connects(1000, code=-32000, message="overloaded")
        setup.emu.drop_connections()
        # Delays 0, <=0.5, <=1, <=2, <=4 ... : a storm would make dozens of attempts.
        assert not wait_until(lambda: setup.emu.connect_attempts > before + 8, timeout=3.0)
        assert hub.state is ConnectionState.RECONNECTING
        setup.emu.refuse_connects(0)
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED, 40)


def _outage(s: Setup) -> None:
    """Keep the client away: drop it and refuse (transiently) every reconnect."""
    s.emu.refuse_connects(100_000, code=-32000, message="overloaded")
    s.emu.drop_connections()


def test_a_client_clock_ahead_loses_nothing_after_a_drop_right_after_subscribe(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time as real_time
    import types

    from signalwire_chat._realtime import _subscriptions

    ahead = types.SimpleNamespace(
        time=lambda: real_time.time() + 5.0, monotonic=real_time.monotonic
    )
    monkeypatch.setattr(_subscriptions, "time", ahead, raising=False)
    with setup.subscribed() as (hub, got):
        assert hub.state is ConnectionState.CONNECTED
        _outage(setup)
        texts = [f"m{i}" for i in range(20)]
        for text in texts:
            setup.send(text)
        setup.emu.refuse_connects(0)
        assert got.wait_for(20, timeout=15) == texts
        assert got.errors == [] or all(
            not isinstance(e, MessagesMayBeMissingError) for e in got.errors
        )


def test_the_server_clock_stepping_back_during_an_outage_loses_nothing(
    emulator_factory,
) -> None:
    import time as real_time

    offset = [0.0]
    s = Setup(emulator_factory(clock=lambda: real_time.time() + offset[0]), "group")
    hub = s.hub()
    got = Collector()
    try:
        hub.subscribe(s.target, got.on_message, got.on_error)
        s.send("live")
        assert got.wait_for(1) == ["live"]
        _outage(s)
        offset[0] = -1.0
        texts = [f"m{i}" for i in range(20)]
        for text in texts:
            s.send(text)
        s.emu.refuse_connects(0)
        assert got.wait_for(21, timeout=15) == ["live", *texts]
    finally:
        hub.close()
        s.close()


def test_nothing_older_than_subscribe_is_delivered(setup: Setup) -> None:
    for i in range(5):
        setup.send(f"old{i}")
    setup.emu.refuse_connects(100_000, code=-32000, message="overloaded")
    with setup.subscribed(connect_timeout=0.5) as (hub, got):  # subscribe() returns unconnected
        assert hub.state is not ConnectionState.CONNECTED
        setup.send("new")
        setup.emu.refuse_connects(0)
        assert got.wait_for(1, timeout=15) == ["new"]
        setup.send("newer")
        assert got.wait_for(2) == ["new", "newer"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["refused", "dns", "handshake"])
def test_a_relay_that_cannot_be_reached_on_the_first_connect_raises_from_subscribe(
    setup: Setup, where: str
) -> None:
    from signalwire_chat._auth import Credentials
    from signalwire_chat._realtime import RealtimeHub
    from signalwire_chat.errors import RealtimeConnectError

    relay_url = {
        "refused": f"ws://127.0.0.1:{_closed_port()}/",
        "dns": "ws://relay.does-not-exist.invalid/",
        "handshake": setup.emu.relay_url,
    }[where]
    if where == "handshake":
        setup.emu.fail_next(403, path_prefix="/", method="GET", times=1000)
    history = setup.client()._rest.history
    hub = RealtimeHub(
        relay_url=relay_url,
        credentials=Credentials(setup.me.token),
        agent="signalwire-chat-python/test",
        history=history,
        options=RealtimeOptions(**{**FAST, "connect_timeout": 5.0}),  # type: ignore[arg-type]
        drop_stale=True,
    )
    got = Collector()
    try:
        with pytest.raises(RealtimeConnectError) as info:
            hub.subscribe(setup.target, got.on_message, got.on_error)
        assert info.value.permanent
        assert isinstance(info.value, ConnectionError)
        assert setup.me.token not in str(info.value)
        assert hub.subscriptions == ()
        assert hub.state is ConnectionState.IDLE  # its only subscription is gone
    finally:
        hub.close()
        setup.emu.clear_faults()


def test_a_transient_first_connect_failure_reaches_on_error_and_says_reconnecting(
    setup: Setup,
) -> None:
    from signalwire_chat.errors import RealtimeConnectError

    setup.emu.refuse_connects(100_000, code=-32000, message="overloaded")
    hub = setup.hub(connect_timeout=0.5)
    got = Collector()
    try:
        sub = hub.subscribe(setup.target, got.on_message, got.on_error)
        assert sub.active  # returned after connect_timeout, still trying
        error = got.wait_error(RealtimeConnectError)
        assert not error.permanent  # type: ignore[attr-defined]
        assert wait_until(lambda: hub.state is ConnectionState.RECONNECTING, 5)
        setup.emu.refuse_connects(0)
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED, 15)
        setup.send("ok")
        assert got.wait_for(1) == ["ok"]
        assert len([e for e in got.errors if isinstance(e, RealtimeConnectError)]) == 1
    finally:
        hub.close()


def _in_backfill(thread_name: str) -> bool:
    import sys
    import threading
    import traceback

    for thread in threading.enumerate():
        if thread.name == thread_name and thread.ident is not None:
            frame = sys._current_frames().get(thread.ident)
            if frame is not None and any(
                f.name == "_backfill" for f in traceback.extract_stack(frame)
            ):
                return True
    return False


def test_close_during_a_stuck_catch_up_read_is_prompt_and_final(setup: Setup) -> None:
    import threading
    import time

    client = ChatClient(
        setup.me.token,
        rest_url=setup.emu.rest_url,
        relay_url=setup.emu.relay_url,
        realtime=RealtimeOptions(**FAST),  # type: ignore[arg-type]
    )
    closed = threading.Event()
    late: list[object] = []

    def on_message(message: object) -> None:
        if closed.is_set():
            late.append(message)

    def on_error(error: BaseException) -> None:
        if closed.is_set():
            late.append(error)

    try:
        client.subscribe(setup.room.id, on_message, on_error)
        # The catch-up read after the next reconnect hangs (the service holds the answer).
        setup.emu.delay_next(30.0, method="GET", path_prefix="/api/fabric/conversations")
        setup.emu.drop_connections()
        assert wait_until(lambda: _in_backfill("signalwire-chat-dispatcher"), 10)
        started = time.monotonic()
    finally:
        client.close()
    closed.set()
    assert time.monotonic() - started < FAST["close_timeout"]
    alive = [t.name for t in threading.enumerate() if t.name.startswith("signalwire-chat")]
    assert alive == []
    assert not wait_until(lambda: bool(late), timeout=1.0)  # nothing called back afterwards


def test_every_delivered_message_says_live_or_catch_up(setup: Setup) -> None:
    with setup.subscribed() as (hub, got):
        setup.send("live0")
        assert got.wait_for(1) == ["live0"]
        _outage(setup)
        setup.send("missed")
        setup.emu.refuse_connects(0)
        assert got.wait_for(2) == ["live0", "missed"]
        assert wait_until(lambda: hub.state is ConnectionState.CONNECTED)
        setup.send("live1")
        assert got.wait_for(3) == ["live0", "missed", "live1"]
        assert [m.delivery for m in got.messages] == ["live", "catch_up", "live"]


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_parents_subscriptions_after_fork_are_announced(setup: Setup) -> None:
    import os

    client = setup.client()
    got = Collector()
    client.subscribe(setup.room.id, got.on_message, got.on_error)
    pid = os.fork()
    if pid == 0:  # the child: only os._exit leaves it
        code = 1
        try:
            child = Collector()
            with pytest.warns(RuntimeWarning, match="before os.fork"):
                sub = client.subscribe(setup.room.id, child.on_message)
            code = 0 if sub.active else 2
            client.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0
    setup.send("parent")
    assert got.wait_for(1) == ["parent"]  # the parent's subscription is untouched


class _ConnectProxy:
    """A real HTTP CONNECT proxy on loopback (tunnels to 127.0.0.1); records what it was asked."""

    def __init__(self) -> None:
        import socket
        import threading

        self.requests: list[str] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept = threading.Thread(target=self._serve, name="test-proxy", daemon=True)

    def __enter__(self) -> _ConnectProxy:
        self._accept.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        import contextlib
        import socket

        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._accept.join(5)
        for thread in self._threads:
            thread.join(5)

    def _serve(self) -> None:
        import socket
        import threading

        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._sockets.append(client)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    break
                head += chunk
            line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            method, target, _version = line.split(" ", 2)
            if method != "CONNECT":
                client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                continue
            port = int(target.rsplit(":", 1)[1])
            upstream = socket.create_connection(("127.0.0.1", port))
            self._sockets.append(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            for a, b in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=_pipe, args=(a, b), daemon=True)
                thread.start()
                self._threads.append(thread)


def _pipe(src: object, dst: object) -> None:
    import contextlib
    import socket

    assert isinstance(src, socket.socket)
    assert isinstance(dst, socket.socket)
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_WR)


def test_the_websocket_goes_through_the_callers_session_proxy(setup: Setup) -> None:
    import requests

    relay_port = int(setup.emu.relay_url.rsplit(":", 1)[1].split("/", 1)[0])
    relay_url = setup.emu.relay_url.replace("127.0.0.1", "localhost")
    with _ConnectProxy() as proxy:
        session = requests.Session()
        session.trust_env = False
        # Only the relay's host goes through the proxy (REST stays on 127.0.0.1).
        session.proxies = {"http://localhost": f"http://127.0.0.1:{proxy.port}"}
        client = ChatClient(
            setup.me.token,
            rest_url=setup.emu.rest_url,
            relay_url=relay_url,
            session=session,
            realtime=RealtimeOptions(**FAST),  # type: ignore[arg-type]
        )
        try:
            got = Collector()
            client.subscribe(setup.room.id, got.on_message, got.on_error)
            assert client.connection_state is ConnectionState.CONNECTED
            setup.send("via proxy")
            assert got.wait_for(1) == ["via proxy"]
            assert proxy.requests == [f"CONNECT localhost:{relay_port} HTTP/1.1"]
        finally:
            client.close()
            session.close()


def test_the_websocket_follows_verify_false_of_the_rest_side() -> None:
    import ssl

    from signalwire_chat._realtime_side import _sslopt, _ws_proxy

    assert _sslopt({"verify": False}) == {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    assert _sslopt({"verify": True}) is None
    assert _ws_proxy(None) == {"http_no_proxy": ["*"]}
    options = _ws_proxy("http://user:p%40ss@proxy.example:3128")
    assert options["http_proxy_host"] == "proxy.example"
    assert options["http_proxy_port"] == 3128
    assert options["http_proxy_auth"] == ("user", "p@ss")


@pytest.mark.parametrize("off_by", [3600.0, -3600.0], ids=["ahead", "behind"])
def test_a_skewed_client_clock_changes_nothing_in_the_refresh_schedule(
    emulator_factory, monkeypatch: pytest.MonkeyPatch, off_by: float
) -> None:
    """Tokens of 6 s: the first refresh comes about 3 s in, by the service's time, whatever
    this machine's: the REST answers' Date reaches the refresh schedule.

    Before the fix, a clock an hour ahead called the token source about once a second; one an
    hour behind never refreshed, so the relay ended the session at every expiry. (The
    schedule itself, every refresh of it, is tested on a fake clock in
    ``tests/unit/test_refresher.py``.)
    """
    import time as real_time
    import types

    from signalwire_chat._realtime import _refresher

    skewed = types.SimpleNamespace(
        time=lambda: real_time.time() + off_by, monotonic=real_time.monotonic
    )
    monkeypatch.setattr(_refresher, "time", skewed)
    s = Setup(emulator_factory(token_ttl=6.0), "group")
    try:
        source = SubscriberTokenSource(
            s.emu.space_url, s.emu.project_id, s.emu.api_token, s.me.reference
        )
        calls: list[float] = []

        def counting() -> str:
            calls.append(real_time.monotonic())
            return source()

        client = s.client(counting, realtime=RealtimeOptions(**FAST))
        got = Collector()
        client.subscribe(s.room.id, got.on_message, got.on_error)
        connects = s.emu.connect_attempts
        # One fetch to start, then the refresh at about half the token's life: not about a
        # second later (ahead), and not never (behind).
        assert wait_until(lambda: len(calls) >= 2, 15), calls
        assert 2.0 <= calls[1] - calls[0] <= 5.5, calls[1] - calls[0]
        assert wait_until(lambda: len(calls) >= 3, 15), calls  # past the first token's expiry
        s.send("after the refreshes")
        assert got.wait_for(1) == ["after the refreshes"]
        assert s.emu.connect_attempts == connects  # never dropped at an expiry
        assert got.errors == []
    finally:
        s.close()
