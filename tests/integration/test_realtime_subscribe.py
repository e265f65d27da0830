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


class _Shell:
    """What the running IPython shell tells: the execution count and, under ipykernel, the
    execute request (its ``msg_id``, and the ``cellId`` JupyterLab puts in its metadata).

    Like ipykernel's, ``get_parent()`` answers every thread with the latest request.
    """

    def __init__(self) -> None:
        self.execution_count = 0
        self.cell_id: str | None = None

    def get_parent(self) -> dict[str, Any]:
        metadata = {"cellId": self.cell_id} if self.cell_id is not None else {}
        return {"header": {"msg_id": f"request-{self.execution_count}"}, "metadata": metadata}


@pytest.fixture
def shell(monkeypatch: pytest.MonkeyPatch) -> _Shell:
    import types

    made = _Shell()
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: made))
    return made


def _cell(
    shell: _Shell,
    user_ns: dict[str, Any],
    source: str,
    cell_id: str | None = None,
    kernel: str = "",
) -> dict[str, Any]:
    """Run ``source`` as IPython runs a cell: one new request, the code compiled under the
    cell's file name (a hash of the code: IPython's, or ipykernel's in ``kernel``'s
    directory), in the user's namespace, which every cell shares."""
    import hashlib
    import zlib

    shell.execution_count += 1
    shell.cell_id = cell_id
    if kernel:
        filename = f"/tmp/ipykernel_{kernel}/{zlib.crc32(source.encode())}.py"
    else:
        digest = hashlib.sha1(source.encode()).hexdigest()[:12]
        filename = f"<ipython-input-{shell.execution_count}-{digest}>"
    user_ns.setdefault("__name__", "__main__")
    exec(compile(source, filename, "exec"), user_ns)
    return user_ns


_SHOW = """
def show(message, version=VERSION):
    seen.append((version, message.text))

sub = client.subscribe(room, show)
"""


def _session(setup: Setup) -> tuple[ChatClient, list[Any], dict[str, Any]]:
    """A client, the list its cells' callbacks append to, and the user's namespace."""
    client = _client(setup)
    seen: list[Any] = []
    return client, seen, {"client": client, "room": setup.room.id, "seen": seen}


def test_without_a_cell_id_running_the_same_cell_again_replaces_its_subscription(
    setup: Setup, shell: _Shell, caplog: pytest.LogCaptureFixture
) -> None:
    client, seen, user = _session(setup)
    caplog.set_level(logging.INFO, logger="signalwire_chat._realtime")
    user["VERSION"] = 1
    first = _cell(shell, user, _SHOW)["sub"]
    user["VERSION"] = 2
    second = _cell(shell, user, _SHOW)["sub"]  # IPython in a terminal: In [2] recalls In [1]
    assert not first.active
    assert second.active
    assert client.subscriptions == (second,)
    assert "replaces" in caplog.text
    setup.send("hello")
    assert wait_until(lambda: seen == [(2, "hello")])
    assert not wait_until(lambda: len(seen) > 1, timeout=0.3)
    assert "show" in repr(second)
    assert setup.room.id in repr(second)


def test_without_a_cell_id_another_cell_with_a_same_named_callback_is_kept(
    setup: Setup, shell: _Shell
) -> None:
    client, seen, user = _session(setup)
    user["VERSION"] = 1
    first = _cell(shell, user, _SHOW, kernel="1234")["sub"]  # nbclient sends no cell id
    user["VERSION"] = 2
    second = _cell(shell, user, "# another cell\n" + _SHOW, kernel="1234")["sub"]
    assert first.active
    assert second.active
    assert client.subscriptions == (first, second)
    setup.send("both")
    assert wait_until(lambda: sorted(seen) == [(1, "both"), (2, "both")])


def test_ipykernel_cells_and_bound_methods_replace_too(setup: Setup, shell: _Shell) -> None:
    client, seen, user = _session(setup)
    source = (
        "class Printer:\n"
        "    def on_message(self, message):\n"
        "        seen.append(('method', VERSION, message.text))\n"
        + _SHOW
        + "method_sub = client.subscribe(room, Printer().on_message)\n"
    )
    user["VERSION"] = 1
    _cell(shell, user, source, kernel="1234")
    old_fn, old_method = user["sub"], user["method_sub"]
    user["VERSION"] = 2
    _cell(shell, user, source, kernel="1234")
    new_fn, new_method = user["sub"], user["method_sub"]
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

    def script(filename: str, version: int, module: str = "__main__") -> Any:
        namespace: dict[str, Any] = {"__name__": module, "seen": seen, "VERSION": version}
        exec(compile(_SHOW.split("sub =")[0], filename, "exec"), namespace)
        return namespace["show"]

    subs = [
        client.subscribe(setup.room.id, a.on_message),
        client.subscribe(setup.room.id, b.on_message),
        # __main__ of a plain script, twice
        client.subscribe(setup.room.id, script("/home/me/script.py", 1)),
        client.subscribe(setup.room.id, script("/home/me/script.py", 2)),
        # a cell file, but not __main__
        client.subscribe(setup.room.id, script("<ipython-input-1-aa>", 3, "mod")),
        client.subscribe(setup.room.id, script("<ipython-input-2-bb>", 4, "mod")),
        # cells' callbacks, but subscribed outside any cell
        client.subscribe(setup.room.id, script("<ipython-input-5-cc>", 5)),
        client.subscribe(other_room.id, script("<ipython-input-6-dd>", 6)),
        client.subscribe(setup.room.id, script("/tmp/ipykernel_1/1.py", 7)),
        client.subscribe(setup.room.id, script("/tmp/ipykernel_2/1.py", 8)),
    ]
    assert all(s.active for s in subs)
    assert client.subscriptions == tuple(subs)


def test_a_rerun_cell_keeps_module_callbacks_other_addresses_and_other_kernels(
    setup: Setup, shell: _Shell
) -> None:
    client, _seen, user = _session(setup)
    other_room = setup.emu.create_room("second")
    setup.emu.join(setup.me, other_room.id)
    user.update(VERSION=1, module_callback=Collector().on_message)
    source = _SHOW + "module_sub = client.subscribe(room, module_callback)\n"
    first = _cell(shell, user, source, cell_id="cell-a", kernel="1")
    kept = [first["sub"], first["module_sub"]]
    user["room"] = other_room.id  # the same cell, re-run for another address
    kept.append(_cell(shell, user, source, cell_id="cell-a", kernel="1")["sub"])
    user["room"] = setup.room.id  # the same cell id and code, in another kernel
    kept.append(_cell(shell, user, source, cell_id="cell-a", kernel="2")["sub"])
    assert all(s.active for s in kept)
    assert first["module_sub"] in client.subscriptions


def test_lambdas_from_two_cells_are_two_subscriptions(setup: Setup, shell: _Shell) -> None:
    _, seen, user = _session(setup)
    subs = []
    for version in (1, 2):
        cell = f"sub = client.subscribe(room, lambda m: seen.append(({version}, m.text)))\n"
        subs.append(_cell(shell, user, cell)["sub"])
    assert all(s.active for s in subs)
    setup.send("both")
    assert wait_until(lambda: sorted(seen) == [(1, "both"), (2, "both")])


def test_a_rerun_of_the_same_jupyter_cell_replaces_whatever_the_callback_is_called(
    setup: Setup, shell: _Shell
) -> None:
    client, seen, user = _session(setup)
    user.update(VERSION=1, module_lambda=lambda m: seen.append(("lambda", m.text)))
    # Run 1 of cell a: two subscriptions, neither replaces the other.
    _cell(shell, user, _SHOW + "sub_b = client.subscribe(room, module_lambda)\n", "cell-a", "77")
    first, first_b = user["sub"], user["sub_b"]
    # Cell b, another cell with the very same code and callback name: kept too.
    other = _cell(shell, user, _SHOW, cell_id="cell-b", kernel="77")["sub"]
    # Run 3 re-runs cell a, edited: its callback is now a lambda under another file name.
    edited_cell = "sub = client.subscribe(room, lambda m: seen.append(('edited', m.text)))\n"
    edited = _cell(shell, user, edited_cell, cell_id="cell-a", kernel="77")["sub"]
    assert not first.active
    assert first_b.active  # not a cell's callback (defined here, in a module): never replaced
    assert other.active
    assert edited.active
    assert client.subscriptions == (first_b, other, edited)


def test_a_subscription_made_by_a_thread_is_never_replaced(setup: Setup, shell: _Shell) -> None:
    client, _seen, user = _session(setup)
    user.update(VERSION=1, threading=threading, made=[])
    # Cell t starts a worker that subscribes later, while cell b runs (ipykernel then
    # answers the worker's get_parent() with cell b's request).
    _cell(
        shell,
        user,
        "go = threading.Event()\n"
        "def later():\n"
        "    go.wait(10)\n"
        "    made.append(client.subscribe(room, lambda m: seen.append(('worker', m.text))))\n"
        "worker = threading.Thread(target=later)\n"
        "worker.start()\n",
        cell_id="cell-t",
        kernel="5",
    )
    _cell(shell, user, "go.set()\nworker.join(10)\n", cell_id="cell-b", kernel="5")
    [from_worker] = user["made"]
    user["VERSION"] = 2
    from_b = _cell(shell, user, _SHOW, cell_id="cell-b", kernel="5")["sub"]  # b, re-run
    assert from_worker.active
    assert client.subscriptions == (from_worker, from_b)
