"""Helpers shared by the realtime integration tests (this module holds no tests)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from signalwire_chat._auth import Credentials
from signalwire_chat._client import ChatClient
from signalwire_chat._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Route
from signalwire_chat.models import ConversationChatMessage

FAST = {"ping_timeout": 1.5, "reconnect_max_delay": 0.3, "close_timeout": 2.0}


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Wait for ``predicate`` to hold (re-checked as threads make progress), with a deadline."""
    deadline = time.monotonic() + timeout
    event = threading.Event()
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        event.wait(0.01)
    return True


class Collector:
    """An ``on_message``/``on_error`` pair that records what it gets, with waits."""

    def __init__(self, on_each: Callable[[ConversationChatMessage], None] | None = None):
        self.messages: list[ConversationChatMessage] = []
        self.errors: list[BaseException] = []
        self.threads: set[str] = set()
        self._cond = threading.Condition()
        self._on_each = on_each

    def on_message(self, message: ConversationChatMessage) -> None:
        self.threads.add(threading.current_thread().name)
        if self._on_each is not None:
            self._on_each(message)
        with self._cond:
            self.messages.append(message)
            self._cond.notify_all()

    def on_error(self, error: BaseException) -> None:
        with self._cond:
            self.errors.append(error)
            self._cond.notify_all()

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[str]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return self.texts

    def wait_error(self, kind: type[BaseException], timeout: float = 10.0) -> BaseException:
        with self._cond:
            self._cond.wait_for(lambda: any(isinstance(e, kind) for e in self.errors), timeout)
            found = [e for e in self.errors if isinstance(e, kind)]
        assert found, f"no {kind.__name__} within {timeout} s; errors: {self.errors!r}"
        return found[0]


class Clients:
    """ChatClients of one emulator, made on demand with ``options`` and all closed by close()."""

    def __init__(self, emu: Any, **options: Any) -> None:
        self.emu = emu
        self.options = options
        self.clients: list[ChatClient] = []

    def make(self, token: Any, **options: Any) -> ChatClient:
        """A client with ``token`` (a string or a token source); ``options`` add to the defaults."""
        client = ChatClient(
            token,
            rest_url=self.emu.rest_url,
            relay_url=self.emu.relay_url,
            **{**self.options, **options},
        )
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()


class Setup(Clients):
    """An emulator with a listener (``me``), a sender (``other``) and a shared room.

    ``dialect`` says which wire the clients speak and where the room's messages live:
    the room's group (group dialect) or the room's own conversation (address dialect).
    ``target`` is what a hub subscribes to (a group :class:`Route`, or the room's id),
    ``conversation`` the emulator's key of the room's messages. ``options`` go to every
    client (``realtime=`` for instance).
    """

    def __init__(self, emu: Any, dialect: str = "group", **options: Any) -> None:
        super().__init__(emu, dialect=dialect, **options)
        self.dialect = dialect
        emu.set_ping_interval(0.3)  # well under the tests' ping_timeout
        self.me = emu.create_subscriber()
        self.other = emu.create_subscriber()
        self.room = emu.create_room(f"room-{id(self)}")
        self.target: Any
        if dialect == "group":
            self.conversation = emu.join_group(self.me, [self.room.id])
            assert emu.join_group(self.other, [self.room.id]) == self.conversation
            self.target = Route.group(self.conversation, self.room.id)
        else:
            emu.join(self.me, self.room.id)
            emu.join(self.other, self.room.id)
            self.conversation = self.target = self.room.id

    def client(self, token: Any = None, **options: Any) -> ChatClient:
        """A client of ``me`` (or of ``token``), closed by close(); ``options`` add to ours."""
        return self.make(token if token is not None else self.me.token, **options)

    def hub(
        self,
        token: Any = None,
        on_state_change: Callable[[ConnectionState], None] | None = None,
        **options: Any,
    ) -> RealtimeHub:
        token = token if token is not None else self.me.token
        history_client = self.client(token)
        return RealtimeHub(
            relay_url=self.emu.relay_url,
            credentials=Credentials(token),
            agent="signalwire-chat-python/test",
            history=history_client._rest.history,
            server_time=history_client._rest.transport().server_time_at,
            options=RealtimeOptions(**{**FAST, **options}),
            on_state_change=on_state_change,
            drop_stale=self.dialect == "group",
        )

    @contextlib.contextmanager
    def subscribed(self, **hub_args: Any) -> Iterator[tuple[RealtimeHub, Collector]]:
        """A hub (``hub(**hub_args)``) subscribed to ``target`` with a fresh :class:`Collector`
        as its ``on_message`` and ``on_error``; closed after."""
        hub = self.hub(**hub_args)
        got = Collector()
        try:
            hub.subscribe(self.target, got.on_message, got.on_error)
            yield hub, got
        finally:
            hub.close()

    def send(self, text: str, address_id: str | None = None) -> None:
        """Send as ``other`` to the room (or to ``address_id``), in the setup's dialect."""
        self.emu.send_as(self.other, address_id or self.room.id, text, dialect=self.dialect)


def setup_fixture(*dialects: str) -> Any:
    """A module's ``setup`` fixture: a :class:`Setup` closed after the test, in the one dialect
    given, or once per dialect given (the test's id then says which)."""

    def setup(signalwire_emulator: Any, request: pytest.FixtureRequest) -> Iterator[Setup]:
        made = Setup(signalwire_emulator, getattr(request, "param", dialects[0]))
        yield made
        made.close()

    return pytest.fixture(params=list(dialects) if len(dialects) > 1 else None, name="setup")(setup)


def connected(hub: RealtimeHub, timeout: float = 10.0) -> bool:
    return wait_until(lambda: hub.state is ConnectionState.CONNECTED, timeout)
