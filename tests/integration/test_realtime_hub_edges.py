"""The hub's less travelled paths against the scripted relay of ``test_realtime_edges``.

A close that cannot join a stuck thread, a close during a token refresh, a hub closed by a
forked child, a subscription with a checkpoint made while connected, Ctrl-C in subscribe(),
listeners and interrupts that raise, a close while the relay's disconnect is pending.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_hostile_relay import Peer, text
from test_realtime_edges import (
    ROOM,
    TOKEN,
    TOKEN2,
    WAIT,
    ScriptedRelay,
    _accept,
    _event,
    _hold_open,
    _refuse,
    _TokenSource,
)
from test_realtime_support import Collector, wait_until

from signalwire_chat._auth import Credentials
from signalwire_chat._convert import structure_chat_message
from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Route
from signalwire_chat._realtime._checkpointing import Checkpointer
from signalwire_chat.checkpoints import Checkpoint, SqliteCheckpointStore
from signalwire_chat.errors import AuthenticationError
from signalwire_chat.models import ConversationChatMessage


def _empty(route: Route) -> Iterator[ConversationChatMessage]:
    return iter(())


def _hub(url: str, token: Any = TOKEN, history: Any = _empty, **kwargs: Any) -> RealtimeHub:
    defaults = {"ping_timeout": 30.0, "reconnect_max_delay": 0.2, "connect_timeout": 5.0}
    options = {**defaults, **kwargs.pop("options", {})}
    return RealtimeHub(
        relay_url=url,
        credentials=Credentials(token),
        agent="signalwire-chat-python/hub-edges-test",
        history=history,
        options=RealtimeOptions(**options),
        **kwargs,
    )


def _own_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("signalwire-chat")]


def test_a_close_that_cannot_join_a_stuck_token_fetch_says_which_thread(
    caplog: pytest.LogCaptureFixture,
) -> None:
    called = threading.Event()
    release = threading.Event()

    def slow_source() -> str:
        called.set()
        release.wait(WAIT)  # a token service that hangs
        return TOKEN

    def script(peer: Peer, number: int) -> None:
        raise AssertionError("the client dialled after close()")

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, token=slow_source, options={"connect_timeout": 0.2})
        try:
            sub = hub.subscribe(ROOM, print)
            assert sub.active  # not connected yet: kept
            assert called.wait(WAIT)
            with caplog.at_level(logging.WARNING, logger="signalwire_chat._realtime._hub"):
                hub.close(0.2)
            assert "threads still running after close" in caplog.text
            assert "signalwire-chat-connection" in caplog.text
            assert not sub.active
        finally:
            release.set()
        # Released, the thread sees it was stopped and ends without dialling.
        assert wait_until(lambda: not hub.running)
        assert relay.peers.empty()


def test_a_close_during_a_token_refresh_ends_at_once() -> None:
    refreshing = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        if len(calls) == 1:
            return TOKEN
        refreshing.set()
        release.wait(WAIT)
        return TOKEN2

    def script(peer: Peer, number: int) -> None:
        _refuse(peer)

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, token=source, options={"connect_timeout": 0.2})
        try:
            hub.subscribe(ROOM, print)
            assert refreshing.wait(WAIT)  # the relay refused the token: a refresh runs
            hub.close(2.0)  # does not wait for the token source
            assert hub.state is ConnectionState.CLOSED
            assert relay.peers.qsize() == 1  # no connect with the late token
        finally:
            release.set()
        assert wait_until(lambda: not hub.running)
    assert relay.errors == []


def test_a_refresh_refused_on_the_open_connection_keeps_it_until_the_relay_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    frames: list[dict[str, Any]] = []

    def script(peer: Peer, number: int) -> None:
        _accept(peer, authorization={"fabric_subscriber": {"expires_at": time.time() + 1.0}})
        peer.send(text(_event("still here")))
        while not stop.is_set():
            try:
                frames.append(peer.next_json(WAIT))
            except (TimeoutError, AssertionError):
                return

    source = _TokenSource(TOKEN, AuthenticationError("project key revoked", status=401))
    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, token=source)
        got = Collector()
        try:
            with caplog.at_level(logging.ERROR, logger="signalwire_chat._realtime._connection"):
                hub.subscribe(ROOM, got.on_message, got.on_error)
                assert got.wait_for(1) == ["still here"]
                assert wait_until(lambda: source.calls >= 2)
                assert wait_until(lambda: "token refresh refused" in caplog.text)
            assert hub.state is ConnectionState.CONNECTED
            methods = [f.get("method") for f in frames]
            assert "signalwire.reauthenticate" not in methods
        finally:
            stop.set()
            hub.close()
    assert relay.errors == []


def test_a_checkpointed_subscription_made_while_connected_catches_up_first(
    tmp_path: Path,
) -> None:
    stop = threading.Event()

    def wire(i: int) -> dict[str, Any]:
        return {
            "id": f"h{i}",
            "conversation_id": ROOM,
            "user_id": "u",
            "ts": 1000.0 + i,
            "text": f"history {i}",
            "type": "message",
            "subtype": "chat",
            "details": {},
        }

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        for i in (5, 4, 3, 2, 1):  # newest first
            yield structure_chat_message(wire(i))

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        _hold_open(peer, stop)

    store = SqliteCheckpointStore(tmp_path / "cp.db")
    store.save("bot", Checkpoint(route=f"address:{ROOM}", message_id="h2", ts=1002.0))
    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, history=history)
        first = Collector()
        got = Collector()
        try:
            hub.subscribe(ROOM, first.on_message)
            assert hub.state is ConnectionState.CONNECTED
            checkpoint = Checkpointer(store, "bot", Route.address(ROOM))
            hub.subscribe(ROOM, got.on_message, got.on_error, checkpoint=checkpoint)
            assert got.wait_for(3) == ["history 3", "history 4", "history 5"]
            assert store.load("bot").message_id == "h5"  # type: ignore[union-attr]
            assert first.messages == []  # the other subscription starts from now
        finally:
            stop.set()
            hub.close()
            store.close()
    assert relay.errors == []


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_while_subscribe_waits_ends_the_subscription() -> None:
    connecting = threading.Event()

    def script(peer: Peer, number: int) -> None:
        peer.handshake()
        peer.next_json()  # the connect: never answered
        connecting.set()
        peer.gone()

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, options={"connect_timeout": 30.0})
        timer = threading.Thread(
            # A real SIGINT to the main thread, as Ctrl-C sends (it wakes a blocked wait).
            target=lambda: (
                connecting.wait(WAIT)
                and signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
            ),
            name="test-ctrl-c",
        )
        try:
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                hub.subscribe(ROOM, print)
            assert hub.subscriptions == ()  # nobody holds the handle: it is ended
            assert hub.state is ConnectionState.IDLE
        finally:
            timer.join(WAIT)
            hub.close()
    assert relay.errors == []


def test_a_raising_listener_and_interrupt_do_not_stop_the_hub(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = threading.Event()
    seen: list[ConnectionState] = []

    def listener(state: ConnectionState) -> None:
        seen.append(state)
        raise RuntimeError("listener bug")

    def interrupt() -> None:
        raise OSError("the REST pool is gone")

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        peer.send(text(_event("delivered anyway")))
        _hold_open(peer, stop)

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, on_state_change=listener, interrupt=interrupt)
        got = Collector()
        try:
            with caplog.at_level(logging.WARNING, logger="signalwire_chat._realtime._hub"):
                hub.subscribe(ROOM, got.on_message)
                assert got.wait_for(1) == ["delivered anyway"]
                stop.set()
                hub.close()
            assert "a state listener raised" in caplog.text
            assert "interrupting the history reads failed" in caplog.text
            assert ConnectionState.CONNECTED in seen
            assert seen[-1] is ConnectionState.CLOSED
        finally:
            stop.set()
            hub.close()
    assert relay.errors == []


def test_a_close_while_the_relays_disconnect_is_pending_says_nothing_more() -> None:
    acked = threading.Event()
    result: dict[str, Any] = {}

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        if number > 1:
            return
        bye = {"jsonrpc": "2.0", "id": "bye-1", "method": "signalwire.disconnect"}
        peer.send(text(bye))
        result["ack"] = peer.next_json()
        acked.set()
        result["next"] = peer.next_frame()  # None: the TCP ends without a close frame

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url, options={"close_timeout": 5.0})
        try:
            hub.subscribe(ROOM, print)
            assert acked.wait(WAIT)
            hub.close()
        finally:
            hub.close()
        assert wait_until(lambda: "next" in result)
    assert result["ack"] == {"jsonrpc": "2.0", "id": "bye-1", "result": {}}
    assert result["next"] is None
    assert relay.errors == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_closing_the_hub_leaves_the_parents_connection_alone() -> None:
    stop = threading.Event()
    peers: list[Peer] = []

    def script(peer: Peer, number: int) -> None:
        _accept(peer)
        peers.append(peer)
        _hold_open(peer, stop)

    with ScriptedRelay(script) as relay:
        hub = _hub(relay.url)
        got = Collector()
        try:
            hub.subscribe(ROOM, got.on_message, got.on_error)
            assert wait_until(lambda: len(peers) == 1)
            pid = os.fork()
            if pid == 0:  # the child: only os._exit leaves it
                code = 1
                try:
                    ok = hub.state is ConnectionState.IDLE and hub.forked_away == 1
                    ok = ok and not hub.running  # the parent's threads are not the child's
                    hub.close(1.0)  # must not touch the parent's socket
                    ok = ok and hub.state is ConnectionState.CLOSED
                    code = 0 if ok else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.WIFEXITED(status)
            assert os.WEXITSTATUS(status) == 0
            peers[0].send(text(_event("parent still served")))
            assert got.wait_for(1) == ["parent still served"]
            assert hub.state is ConnectionState.CONNECTED
            assert len(peers) == 1
        finally:
            stop.set()
            hub.close()
    assert relay.errors == []
