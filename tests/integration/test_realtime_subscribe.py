"""What subscribe() promises: nothing after it returns is lost; refusals raise; GC; cells."""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from typing import Any

import pytest
from test_realtime_support import FAST, Collector, Setup, setup_fixture, wait_until

from signalwire_chat import ChatClient, Group
from signalwire_chat._realtime import ConnectionState, RealtimeOptions
from signalwire_chat.errors import (
    AuthenticationError,
    ConnectError,
    MessagesMayBeMissingError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
)

setup = setup_fixture("group")


def _client(setup: Setup, token: Any = None, **options: Any) -> ChatClient:
    """A ChatClient of ``me`` with fast realtime options, closed by the fixture."""
    return setup.client(token, realtime=RealtimeOptions(**{**FAST, **options}))


def _our_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("signalwire-chat")]


# --- 1. nothing created after subscribe() returns is lost -------------------------------------


def test_a_message_sent_right_after_subscribe_returns_is_delivered(setup: Setup) -> None:
    sender = setup.client(setup.other.token)
    for i in range(20):
        client = _client(setup)
        got = Collector()
        sub = client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
        sender.send_message(setup.room.id, f"x{i}")
        assert got.wait_for(1, timeout=5) == [f"x{i}"], f"round {i}"
        assert client.connection_state is ConnectionState.CONNECTED
        sub.cancel()
        client.close()
        assert got.texts == [f"x{i}"]
        assert got.errors == []


def test_a_stream_sees_a_message_sent_right_after_it_is_opened(setup: Setup) -> None:
    client = _client(setup)
    with client.stream_messages(setup.room.id, timeout=5) as stream:  # type: ignore[attr-defined]
        setup.send("first")
        assert next(stream).text == "first"


def test_a_second_subscription_on_a_connected_hub_does_not_wait(setup: Setup) -> None:
    client = _client(setup)
    first, second = Collector(), Collector()
    client.subscribe(setup.room.id, first.on_message)
    assert client.connection_state is ConnectionState.CONNECTED
    started = time.monotonic()
    client.subscribe(setup.room.id, second.on_message)
    assert time.monotonic() - started < 0.5
    setup.send("both")
    assert first.wait_for(1) == ["both"]
    assert second.wait_for(1) == ["both"]
    assert setup.emu.connect_attempts == 1


def test_subscribe_with_a_refused_token_raises_and_leaves_nothing_behind(setup: Setup) -> None:
    expired = setup.emu.mint_token(setup.me, ttl=-60)
    client = _client(setup, expired, connect_timeout=5.0)
    got = Collector()
    # Resolving the room's group is a REST call: its refusal is raised before any socket.
    with pytest.raises(AuthenticationError):
        client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    assert setup.emu.connect_attempts == 0
    # A group needs no REST call: the relay's refusal is raised.
    with pytest.raises(RealtimeAuthenticationError) as raised:
        client.subscribe(Group(id=setup.conversation), got.on_message, on_error=got.on_error)
    assert raised.value.rpc_code == -32002
    assert expired not in str(raised.value)
    assert setup.emu.connect_attempts == 1
    assert client.subscriptions == ()
    assert got.errors == []  # raised, not reported a second time
    assert wait_until(lambda: not _our_threads(), timeout=3)
    assert not wait_until(lambda: setup.emu.connect_attempts > 1, timeout=0.5)


def test_subscribe_with_the_relay_refusing_returns_after_connect_timeout_then_backfills(
    setup: Setup,
) -> None:
    # A non-authentication refusal: the client keeps retrying with back-off.
    setup.emu.refuse_connects(10_000, code=-32603, message="try again later")
    client = _client(setup, connect_timeout=0.5)
    got = Collector()
    started = time.monotonic()
    sub = client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 2.0, elapsed
    assert sub.active
    assert client.connection_state is not ConnectionState.CONNECTED
    texts = [f"gap{i}" for i in range(5)]
    for text in texts:
        setup.send(text)
    setup.emu.refuse_connects(0)
    assert got.wait_for(5) == texts
    setup.send("live")
    assert got.wait_for(6) == [*texts, "live"]
    assert len({m.id for m in got.messages}) == 6
    # Never silent: the outage was told once, as transient.
    assert [type(e) for e in got.errors] == [RealtimeConnectError]
    assert not got.errors[0].permanent  # type: ignore[attr-defined]


def test_subscribe_with_the_service_down_raises_then_works_once_it_is_back(
    setup: Setup,
) -> None:
    client = _client(setup, connect_timeout=0.5)
    client.join(setup.room.id)  # the group is known: subscribing needs no REST call
    setup.emu.stop()
    got = Collector()
    with pytest.raises(ConnectError):  # a group it cannot resolve is an error, not silence
        client.subscribe(setup.other.address_id, got.on_message, on_error=got.on_error)
    # The relay refuses the TCP connection on the first connect: raised, never a quiet room.
    with pytest.raises(RealtimeConnectError):
        client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    setup.emu.start()
    sub = client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    assert sub.active
    setup.send("live")
    assert got.wait_for(1) == ["live"]
    assert got.errors == []


def test_a_first_connect_backfill_refused_403_is_only_logged_at_debug(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    # A group of two others: its history refuses this client (403).
    third = setup.emu.create_subscriber()
    theirs = Group(id=setup.emu.join_group(setup.other, [third.address_id]))
    setup.emu.refuse_connects(10_000, code=-32603, message="try again later")
    client = _client(setup, connect_timeout=0.3)
    got = Collector()
    caplog.set_level(logging.DEBUG, logger="signalwire_chat._realtime")
    sub = client.subscribe(theirs, got.on_message, on_error=got.on_error)
    setup.emu.refuse_connects(0)
    assert wait_until(lambda: "no history of" in caplog.text)
    assert sub.active
    assert [type(e) for e in got.errors] == [RealtimeConnectError]  # the refusals, once
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_failed_first_connect_backfill_is_reported(setup: Setup) -> None:
    setup.emu.refuse_connects(10_000, code=-32603, message="try again later")
    client = _client(setup, connect_timeout=0.3)
    got = Collector()
    client.subscribe(setup.room.id, got.on_message, on_error=got.on_error)
    setup.emu.fail_next(500, method="GET", path_prefix="/api/fabric/conversations", times=50)
    setup.emu.refuse_connects(0)
    error = got.wait_error(MessagesMayBeMissingError)
    assert error.address_id == setup.room.id
    setup.emu.clear_faults()


def test_subscribe_from_a_state_listener_does_not_wait(setup: Setup) -> None:
    durations: list[float] = []
    got = Collector()
    holder: list[ChatClient] = []

    def on_state(state: ConnectionState) -> None:
        if state is ConnectionState.CONNECTING and not durations:
            started = time.monotonic()
            holder[0].subscribe(setup.room.id, got.on_message, on_error=got.on_error)
            durations.append(time.monotonic() - started)

    client = setup.client(
        realtime=RealtimeOptions(**{**FAST, "connect_timeout": 5.0}), on_state_change=on_state
    )
    holder.append(client)
    setup.emu.refuse_connects(3, code=-32603, message="try again later")
    main = Collector()
    client.subscribe(setup.room.id, main.on_message)
    assert client.connection_state is ConnectionState.CONNECTED
    assert durations
    assert durations[0] < 0.5
    setup.send("to both")
    assert main.wait_for(1) == ["to both"]
    assert got.wait_for(1) == ["to both"]
    assert all(isinstance(e, RealtimeConnectError) for e in got.errors)  # the refusals


# --- 2. a client that is garbage-collected leaves no thread behind ----------------------------


def test_a_collected_client_warns_and_stops_its_threads(setup: Setup) -> None:
    client = ChatClient(setup.me.token, rest_url=setup.emu.rest_url, relay_url=setup.emu.relay_url)
    got = Collector()
    sub = client.subscribe(setup.room.id, got.on_message)
    assert client.connection_state is ConnectionState.CONNECTED
    with pytest.warns(ResourceWarning, match="ChatClient was not closed"):  # noqa: PT031
        del client  # the last reference: the finalizer runs here (or at the collect)
        gc.collect()
    assert wait_until(lambda: not _our_threads(), timeout=3)
    assert not sub.active
    setup.send("nobody listens")
    assert not wait_until(lambda: got.messages != [], timeout=0.3)


def test_rebinding_the_name_to_a_new_client_leaves_one_delivery(setup: Setup) -> None:
    got = Collector()
    client = ChatClient(setup.me.token, rest_url=setup.emu.rest_url, relay_url=setup.emu.relay_url)
    client.subscribe(setup.room.id, got.on_message)
    with pytest.warns(ResourceWarning, match="ChatClient was not closed"):  # noqa: PT031
        # A notebook cell re-run: the old client is dropped without close().
        client = ChatClient(
            setup.me.token, rest_url=setup.emu.rest_url, relay_url=setup.emu.relay_url
        )
        gc.collect()
    setup.clients.append(client)
    client.subscribe(setup.room.id, got.on_message)
    assert wait_until(lambda: len(_our_threads()) == 3, timeout=3)  # one hub's threads
    setup.send("once")
    assert got.wait_for(1) == ["once"]
    assert not wait_until(lambda: len(got.messages) > 1, timeout=0.3)


def test_a_closed_client_is_collected_silently(setup: Setup) -> None:
    client = ChatClient(setup.me.token, rest_url=setup.emu.rest_url, relay_url=setup.emu.relay_url)
    client.subscribe(setup.room.id, lambda m: None)
    client.close()
    del client
    gc.collect()  # warnings are errors here: a ResourceWarning would fail the test
    assert not _our_threads()


# --- 3. re-running a notebook cell replaces its subscription ----------------------------------

_CELL = """
def show(message):
    seen.append((VERSION, message.text))

class Printer:
    def on_message(self, message):
        seen.append(("method", VERSION, message.text))
"""


def _run_cell(filename: str, version: int, seen: list[Any], module: str = "__main__") -> Any:
    """Define the cell's functions as IPython would: compiled from the cell's file name."""
    namespace: dict[str, Any] = {"__name__": module, "seen": seen, "VERSION": version}
    exec(compile(_CELL, filename, "exec"), namespace)
    return namespace


def test_rerunning_a_notebook_cell_replaces_the_subscription(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    client = _client(setup)
    seen: list[Any] = []
    caplog.set_level(logging.INFO, logger="signalwire_chat._realtime")
    first = client.subscribe(setup.room.id, _run_cell("<ipython-input-3-1a2b3c>", 1, seen)["show"])
    second = client.subscribe(setup.room.id, _run_cell("<ipython-input-4-9f8e7d>", 2, seen)["show"])
    assert not first.active
    assert second.active
    assert client.subscriptions == (second,)
    assert "replaces" in caplog.text
    setup.send("hello")
    assert wait_until(lambda: seen == [(2, "hello")])
    assert not wait_until(lambda: len(seen) > 1, timeout=0.3)
    assert "show" in repr(second)
    assert setup.room.id in repr(second)


def test_ipykernel_cells_and_bound_methods_replace_too(setup: Setup) -> None:
    client = _client(setup)
    seen: list[Any] = []
    cell_a = _run_cell("/tmp/ipykernel_1234/2735318385.py", 1, seen)
    cell_b = _run_cell("/tmp/ipykernel_1234/1199551234.py", 2, seen)
    old_fn = client.subscribe(setup.room.id, cell_a["show"])
    old_method = client.subscribe(setup.room.id, cell_a["Printer"]().on_message)
    new_fn = client.subscribe(setup.room.id, cell_b["show"])
    new_method = client.subscribe(setup.room.id, cell_b["Printer"]().on_message)
    assert client.subscriptions == (new_fn, new_method)
    assert not old_fn.active
    assert not old_method.active
    setup.send("hi")
    assert wait_until(
        lambda: sorted(map(str, seen)) == sorted(map(str, [(2, "hi"), ("method", 2, "hi")]))
    )


def test_callbacks_from_modules_scripts_or_other_addresses_are_never_replaced(
    setup: Setup,
) -> None:
    client = _client(setup)
    other_room = setup.emu.create_room("second")
    setup.emu.join(setup.me, other_room.id)
    seen: list[Any] = []
    a, b = Collector(), Collector()  # the same qualname, from a module
    subs = [
        client.subscribe(setup.room.id, a.on_message),
        client.subscribe(setup.room.id, b.on_message),
        # __main__ of a plain script, twice
        client.subscribe(setup.room.id, _run_cell("/home/me/script.py", 1, seen)["show"]),
        client.subscribe(setup.room.id, _run_cell("/home/me/script.py", 2, seen)["show"]),
        # a cell file, but not __main__
        client.subscribe(setup.room.id, _run_cell("<ipython-input-1-aa>", 3, seen, "mod")["show"]),
        client.subscribe(setup.room.id, _run_cell("<ipython-input-2-bb>", 4, seen, "mod")["show"]),
        # cells, but another address / another kernel
        client.subscribe(setup.room.id, _run_cell("<ipython-input-5-cc>", 5, seen)["show"]),
        client.subscribe(other_room.id, _run_cell("<ipython-input-6-dd>", 6, seen)["show"]),
        client.subscribe(setup.room.id, _run_cell("/tmp/ipykernel_1/1.py", 7, seen)["show"]),
        client.subscribe(setup.room.id, _run_cell("/tmp/ipykernel_2/1.py", 8, seen)["show"]),
    ]
    assert all(s.active for s in subs)
    assert client.subscriptions == tuple(subs)


def test_lambdas_from_two_cells_are_two_subscriptions(setup: Setup) -> None:
    client = _client(setup)
    seen: list[Any] = []
    cell_source = "handler = lambda message: seen.append((VERSION, message.text))\n"
    subs = []
    for version, filename in ((1, "<ipython-input-3-aa>"), (2, "<ipython-input-4-bb>")):
        namespace: dict[str, Any] = {"__name__": "__main__", "seen": seen, "VERSION": version}
        exec(compile(cell_source, filename, "exec"), namespace)
        subs.append(client.subscribe(setup.room.id, namespace["handler"]))
    assert all(s.active for s in subs)
    setup.send("both")
    assert wait_until(lambda: sorted(seen) == [(1, "both"), (2, "both")])


class _Shell:
    """What ipykernel's shell tells about the cell running now (IPython is not installed)."""

    def __init__(self) -> None:
        self.cell_id = "cell-a"
        self.execution_count = 1

    def get_parent(self) -> dict[str, Any]:
        return {"metadata": {"cellId": self.cell_id}}


def test_a_rerun_of_the_same_jupyter_cell_replaces_whatever_the_callback_is_called(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    shell = _Shell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    client = _client(setup)
    seen: list[Any] = []
    kernel_file = "/tmp/ipykernel_77/{}.py"
    # Run 1 of cell a: two subscriptions, neither replaces the other.
    first = client.subscribe(setup.room.id, _run_cell(kernel_file.format(1), 1, seen)["show"])
    first_b = client.subscribe(setup.room.id, lambda m: seen.append(("lambda", m.text)))
    # Cell b, another cell: kept too.
    shell.cell_id, shell.execution_count = "cell-b", 2
    other = client.subscribe(setup.room.id, _run_cell(kernel_file.format(2), 2, seen)["show"])
    # Run 3 re-runs cell a, edited: its callback is now a lambda under another file name.
    shell.cell_id, shell.execution_count = "cell-a", 3
    namespace: dict[str, Any] = {"__name__": "__main__", "seen": seen}
    exec(
        compile("h = lambda m: seen.append(('edited', m.text))\n", kernel_file.format(3), "exec"),
        namespace,
    )
    edited = client.subscribe(setup.room.id, namespace["h"])
    assert not first.active
    assert first_b.active  # not a cell's callback (defined here, in a module): never replaced
    assert other.active
    assert edited.active
    assert client.subscriptions == (first_b, other, edited)
