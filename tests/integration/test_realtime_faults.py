"""RealtimeHub through faults: drops, half-open links, restarts, refusals, expiry, fork, leaks."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from test_realtime_support import Collector, Setup, connected, setup_fixture, wait_until

from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions
from signalwire_chat.errors import MessagesMayBeMissingError, RealtimeAuthenticationError

setup = setup_fixture("group", "address")


@contextlib.contextmanager
def listening(setup: Setup, **hub_args: Any) -> Iterator[tuple[RealtimeHub, Collector]]:
    """A hub (``setup.hub(**hub_args)``) subscribed to the room and connected; closed after."""
    with setup.subscribed(**hub_args) as (hub, got):
        assert connected(hub)
        yield hub, got


def _no_dups(got: Collector) -> None:
    ids = [m.id for m in got.messages]
    assert len(ids) == len(set(ids))


def test_reconnect_after_a_drop_delivers_everything_once(setup: Setup) -> None:
    with listening(setup) as (hub, got):
        setup.send("before")
        assert got.wait_for(1) == ["before"]
        for round_ in range(3):
            before = setup.emu.connect_attempts
            setup.emu.drop_connections()
            setup.send(f"down{round_}")  # sent while (probably) disconnected
            # Wait for the new session, not for a CONNECTED the hub has not yet left: the
            # next round's drop must not land on a connect still in flight.
            assert wait_until(
                lambda b=before: (
                    setup.emu.connect_attempts > b  # type: ignore[misc]
                    and hub.state is ConnectionState.CONNECTED
                )
            ), round_
            setup.send(f"up{round_}")
        expected = ["before"] + [t for r in range(3) for t in (f"down{r}", f"up{r}")]
        assert got.wait_for(len(expected)) == expected
        _no_dups(got)
        assert got.errors == []


def test_messages_sent_while_disconnected_are_backfilled_in_order(setup: Setup) -> None:
    with listening(setup, reconnect_max_delay=0.2) as (_hub, got):
        setup.send("live")
        assert got.wait_for(1) == ["live"]
        setup.emu.refuse_connects(0)
        setup.emu.stop()
        setup.emu.start()
        # The emulator is back; the client may not be yet.
        texts = [f"gap{i}" for i in range(30)]
        for text in texts:
            setup.send(text)
        assert got.wait_for(31, timeout=20) == ["live", *texts]
        setup.send("after")
        assert got.wait_for(32) == ["live", *texts, "after"]
        _no_dups(got)


def test_reconnect_after_a_half_open_link(setup: Setup) -> None:
    setup.emu.set_ping_interval(0.2)
    with listening(setup, ping_timeout=1.0) as (_hub, got):
        setup.send("before")
        assert got.wait_for(1) == ["before"]
        setup.emu.half_open(True)
        setup.send("silenced")
        assert wait_until(lambda: setup.emu.connect_attempts >= 2, timeout=10)
        setup.send("after")
        assert got.wait_for(3) == ["before", "silenced", "after"]
        setup.emu.half_open(False)
        _no_dups(got)


def test_server_disconnect_then_resume(setup: Setup) -> None:
    with listening(setup) as (hub, got):
        setup.send("one")
        assert got.wait_for(1) == ["one"]
        setup.emu.stop()
        assert wait_until(lambda: hub.state is not ConnectionState.CONNECTED)
        setup.emu.start()
        assert connected(hub)
        setup.send("two")
        assert got.wait_for(2) == ["one", "two"]


def test_a_refused_token_fails_once_without_a_reconnect_storm(setup: Setup) -> None:
    expired = setup.emu.mint_token(setup.me, ttl=-60)
    hub = setup.hub(token=expired)
    got = Collector()
    try:
        with pytest.raises(RealtimeAuthenticationError) as raised:
            hub.subscribe(setup.target, got.on_message, got.on_error)
        error = raised.value
        assert error.rpc_code == -32002
        assert expired not in str(error)
        assert expired not in repr(error)
        assert hub.subscriptions == ()
        assert hub.state is ConnectionState.IDLE  # the refused subscription was the only one
        # Give a storm the chance to show itself: it must not.
        assert not wait_until(lambda: setup.emu.connect_attempts > 1, timeout=1.5)
        assert setup.emu.connect_attempts == 1
        assert got.errors == []  # raised, not also reported
    finally:
        hub.close()


def test_a_refusal_after_subscribe_returned_goes_to_on_error(setup: Setup) -> None:
    hub = setup.hub()
    got = Collector()
    try:
        hub.subscribe(setup.target, got.on_message, got.on_error)
        assert hub.state is ConnectionState.CONNECTED
        setup.emu.refuse_connects(1)
        setup.emu.drop_connections()
        error = got.wait_error(RealtimeAuthenticationError)
        assert error.rpc_code == -32002
        assert wait_until(lambda: hub.state is ConnectionState.FAILED)
        # A new subscription tries again (once), and the old one is backfilled on success.
        setup.send("while failed")
        later = Collector()
        hub.subscribe(setup.target, later.on_message, later.on_error)
        assert hub.state is ConnectionState.CONNECTED
        assert got.wait_for(1) == ["while failed"]
        setup.send("after")
        assert got.wait_for(2) == ["while failed", "after"]
        assert later.wait_for(1) == ["after"]
    finally:
        hub.close()


def test_a_refused_connect_with_a_token_source_refreshes_once(setup: Setup) -> None:
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return setup.emu.mint_token(setup.me)

    setup.emu.refuse_connects(1)
    with listening(setup, token=source) as (hub, got):
        assert setup.emu.connect_attempts == 2
        assert len(calls) >= 2  # the first token, the refresh (and the history client's own)
        setup.send("ok")
        assert got.wait_for(1) == ["ok"]

    setup.emu.refuse_connects(5)
    hub = setup.hub(token=source)
    got = Collector()
    before = setup.emu.connect_attempts
    try:
        with pytest.raises(RealtimeAuthenticationError):
            hub.subscribe(setup.target, got.on_message, got.on_error)
        assert not wait_until(lambda: setup.emu.connect_attempts > before + 2, timeout=1.0)
        assert setup.emu.connect_attempts == before + 2
        assert hub.subscriptions == ()
    finally:
        hub.close()
        setup.emu.refuse_connects(0)


def test_short_lived_tokens_are_refreshed_on_the_open_connection(setup: Setup) -> None:
    calls: list[int] = []

    def source() -> str:
        calls.append(1)
        return setup.emu.mint_token(setup.me, ttl=2.5)

    with listening(setup, token=source) as (_hub, got):
        assert wait_until(lambda: len(calls) >= 3, timeout=10)  # two refreshes at least
        setup.send("still here")
        assert got.wait_for(1) == ["still here"]
        assert setup.emu.connect_attempts == 1
        assert got.errors == []


def test_expiry_without_a_token_source_is_reported(setup: Setup) -> None:
    short = setup.emu.mint_token(setup.me, ttl=1.5)
    with listening(setup, token=short) as (hub, got):
        got.wait_error(RealtimeAuthenticationError, timeout=10)
        assert hub.state is ConnectionState.FAILED
        attempts = setup.emu.connect_attempts
        assert not wait_until(lambda: setup.emu.connect_attempts > attempts, timeout=1.0)


def test_a_failed_backfill_is_reported(setup: Setup) -> None:
    with listening(setup) as (_hub, got):
        setup.emu.fail_next(500, method="GET", path_prefix="/api/fabric/conversations", times=50)
        setup.emu.drop_connections()
        error = got.wait_error(MessagesMayBeMissingError)
        assert error.address_id == setup.room.id
        setup.emu.clear_faults()
        setup.send("after")
        assert "after" in got.wait_for(1)


def test_fork_child_starts_afresh_and_parent_is_unaffected(setup: Setup) -> None:
    with listening(setup) as (hub, got):
        setup.send("before fork")
        assert got.wait_for(1) == ["before fork"]
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: only os._exit leaves it
            code = 1
            try:
                os.close(ready_r)
                child = Collector()
                ok = hub.state is ConnectionState.IDLE
                # The parent's subscription does not follow: announced, not silently dropped.
                with pytest.warns(RuntimeWarning, match=r"1 subscription\(s\) made before"):
                    hub.subscribe(setup.target, child.on_message)
                ok = ok and hub.forked_away == 0  # warned once
                ok = ok and connected(hub)
                os.write(ready_w, b"1")
                ok = ok and child.wait_for(1) == ["from parent"]
                hub.close(1.0)
                code = 0 if ok else 2
            finally:
                os._exit(code)
        os.close(ready_w)
        with os.fdopen(ready_r, "rb") as ready:
            assert ready.read(1) == b"1"
        setup.send("from parent")
        _, status = os.waitpid(pid, 0)
        assert os.WIFEXITED(status)
        assert os.WEXITSTATUS(status) == 0
        assert got.wait_for(2) == ["before fork", "from parent"]
        setup.send("parent still fine")
        assert got.wait_for(3)[-1] == "parent still fine"
        assert hub.state is ConnectionState.CONNECTED


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    return len([t for t in threading.enumerate() if t.name.startswith("signalwire-chat")])


@pytest.mark.slow
def test_no_thread_or_socket_left_after_many_cycles(setup: Setup) -> None:
    client = setup.client()
    client.iter_messages(setup.room.id)  # open the REST pool before counting
    options = RealtimeOptions(ping_timeout=5.0, close_timeout=2.0)
    fds_before = _fds()
    for i in range(200):
        hub = RealtimeHub(
            relay_url=setup.emu.relay_url,
            credentials=client._rest.credentials,
            agent="test/0",
            history=client.iter_messages,
            options=options,
        )
        hub.subscribe(setup.target, lambda m: None)
        if i % 2:
            assert connected(hub)
        hub.close()
        assert _threads() == 0
    assert wait_until(lambda: _fds() <= fds_before + 2, timeout=10), (_fds(), fds_before)
