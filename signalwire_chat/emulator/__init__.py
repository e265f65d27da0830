"""A local stand-in for the SignalWire chat service: REST and relay on one loopback port.

Typical use in a test::

    with Emulator() as emu:
        alice = emu.create_subscriber("alice@example.com")
        room = emu.create_room("lobby")
        ...  # point a client at emu.rest_url / emu.relay_url with alice.token

The emulator serves the REST endpoints of protocol.md (``/api/fabric/...``) and the
JSON-RPC relay websocket (``GET /``) from an aiohttp server in a background thread
named ``signalwire-emulator-...``, stores everything in sqlite3, and mints tokens of
the real shape. ``stop()`` followed by ``start()`` brings it back on the same port
with the same data (a "server restart"); fault hooks break things on purpose.

Both wire dialects are served at once, told apart by each request's body: the
*address* dialect of ``@signalwire/js`` 3.28/3.29 (``conversation_id``; protocol.md) and
the *group* dialect of ``@signalwire/client`` 0.0.1 and ``@signalwire/js`` 4.x
(``group_id``, ``from_fabric_address_id``, ``fabric_address_ids``; protocol-group.md).
A group's id is a uuid5 of its sorted set of addresses (:meth:`Emulator.group_id_for`);
a set holding a room address maps to the room's one group. A group's members are the
subscribers owning an address of its set, plus whoever joined it.

Threads: **a room has one thread**, read and written by both dialects. A message sent to
the room's address (address dialect, or ``add_message(room.id)``) and one sent to the
room's group (group dialect, the default client's) land in the same thread: each
dialect's history of the room lists both, and each member gets the live event in the
dialect it joined in (a subscriber who joined both ways gets one of each shape).
``messages(room.id)`` and ``messages(group_id_for(room.id, ...))`` return the same
messages and name the thread they read (``.thread``, the room's address id). A group of
subscriber addresses is a thread of its own (its group id); a subscriber's own address
is its address-dialect inbox, which the group dialect does not read.

What a message carries: in the group dialect exactly the fields of the official v4 and
0.0.1 types (``id, type, subtype, kind, hidden, group_id, from_fabric_address_id,
from_address_id, ts, metadata, details, text, conversation_name, user_name``; ``kind``
and ``text`` may be null) and **never** ``user_id``: the sender is its address, and
``is_author`` on the event says whether the receiving subscriber sent it. In the address
dialect, ``id, conversation_id, address_id, user_id, from_address_id, ts, details,
metadata, type, subtype``, with ``text`` and ``kind`` only when set, and
``from_address_id`` null for a message with no sender; its events add ``user_name``,
``conversation_name`` and ``hidden``.

Membership (address dialect): a room's conversation is public, whoever joins or writes
to it is a member; the conversation of a subscriber's own address is that subscriber's
inbox: anyone may write to it, only its owner joins it and reads it (another
subscriber's join is 403, like a join to a group the caller's address is not in).

History by a bare address id (``GET /api/fabric/conversations/{address_id}/messages``)
in the group era: the address-dialect conversation of that address when the caller is a
member of it (what 3.28 clients read); otherwise the caller's group with that address
(a room's group, or the group of exactly that address and one of the caller's);
otherwise 403 for a known address and 404 for an unknown one.

This package needs the ``emulator`` extra (aiohttp, joserfc); the client package never
imports it.
"""

from __future__ import annotations

import base64
import enum
import logging
import secrets
import ssl
import threading
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from ._admin import EmulatorAddress, EmulatorSubscriber, ThreadMessages
from ._admin_messages import MessageAdmin
from ._app import EmulatorState, RestFaults, ServerThread, build_app
from ._fault_controls import FaultControls
from ._record import Recording, TrafficRecorder
from ._relay import RelayConfig, RelayHub
from ._store import Store
from ._tokens import InvalidTokenError, SatClaims, TokenAuthority, generate_key

__all__ = [
    "DEFAULT_MAX_TEXT_LENGTH",
    "Emulator",
    "EmulatorAddress",
    "EmulatorSubscriber",
    "InvalidTokenError",
    "Recording",
    "SatClaims",
    "ThreadMessages",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

DEFAULT_MAX_TEXT_LENGTH = 10_000


class _State(enum.Enum):
    UNOPENED = "unopened"
    RUNNING = "running"
    STOPPED = "stopped"
    CLOSED = "closed"


class Emulator(MessageAdmin, FaultControls):
    """The emulated SignalWire service, served on one loopback port.

    Nothing starts in the constructor; ``start()`` (or ``with``) binds and serves.

    Args:
        host: Interface to bind.
        port: Port to bind; 0 picks a free one, which later restarts reuse.
        db: sqlite3 database path, or ":memory:". A file keeps the project credentials,
            the token keys, subscribers and messages across processes.
        space_host: The realtime host written in tokens (``ch``).
        project_id: The project id; generated (and stored in the db) when None.
        api_token: The project's API token; generated (and stored) when None.
        token_ttl: Default SAT lifetime, seconds.
        ping_interval: Seconds between relay pings; None disables them.
        resume_window: Seconds a relay session can be resumed after its socket closes.
        event_window: Most unacknowledged relay events per session.
        max_text_length: Longest accepted message text, in characters.
        clock: Returns unix time; replaceable in tests of expiry.
        idle_timeout: Seconds a connection may go without a complete request (headers
            never finished, or idle between requests) before it is closed, and the
            longest wait for a request body (408 past it).
        auth_timeout: Seconds a relay socket may stay open without an accepted
            ``signalwire.connect`` before it is closed (code 1008).
        ping_timeout: Seconds a connected relay socket may send nothing at all after a
            server ping before it is presumed dead and closed (code 1001); its session
            stays resumable.
        ssl_context: Serve https and wss with this server context (what the official
            browser clients need: they always use ``https://`` and ``wss://``); None
            serves http and ws.
        cors_origins: The page origins a browser may call the REST API from; ``("*",)``
            (the default) allows any. See "CORS" in the emulator reference.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        db: str = ":memory:",
        space_host: str = "puc.emulator.test",
        project_id: str | None = None,
        api_token: str | None = None,
        token_ttl: float = 7200.0,
        ping_interval: float | None = 5.0,
        resume_window: float = 60.0,
        event_window: int = 100,
        max_text_length: int = DEFAULT_MAX_TEXT_LENGTH,
        clock: Callable[[], float] | None = None,
        idle_timeout: float = 30.0,
        auth_timeout: float = 10.0,
        ping_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
        cors_origins: Sequence[str] = ("*",),
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError("port must be within 0..65535")
        if max_text_length < 1:
            raise ValueError("max_text_length must be at least 1")
        if not token_ttl > 0:
            raise ValueError("token_ttl must be positive")
        if ping_interval is not None and not ping_interval > 0:
            raise ValueError("ping_interval must be positive or None")
        if not idle_timeout > 0:
            raise ValueError("idle_timeout must be positive")
        if not auth_timeout > 0:
            raise ValueError("auth_timeout must be positive")
        if not ping_timeout > 0:
            raise ValueError("ping_timeout must be positive")
        self._ping_timeout = ping_timeout
        if isinstance(cors_origins, str):
            raise TypeError("cors_origins must be a sequence of origins, not one string")
        self._idle_timeout = idle_timeout
        self._auth_timeout = auth_timeout
        self._tls = ssl_context is not None
        self._cors_origins = frozenset(cors_origins)
        self._host = host
        self._db = db
        self._space_host = space_host
        self._project_id_opt = project_id
        self._api_token_opt = api_token
        self._token_ttl = token_ttl
        self._ping_interval = ping_interval
        self._resume_window = resume_window
        self._event_window = event_window
        self._max_text_length = max_text_length
        self._clock = clock
        self._lock = threading.RLock()
        self._status = _State.UNOPENED
        self._state: EmulatorState | None = None
        self._recorder = TrafficRecorder()
        self._faults = RestFaults()
        self._attempts_before = 0
        self._server = ServerThread(
            make_app=self._make_app,
            host=host,
            port=port,
            name="loop",
            on_start=self._on_start,
            on_stop=self._on_stop,
            idle_timeout=idle_timeout,
            ssl_context=ssl_context,
        )

    def __repr__(self) -> str:
        return (
            f"<Emulator {self._status.value} host={self._host!r} port={self._server.port}"
            f" db={self._db!r}>"
        )

    def __del__(self) -> None:
        if getattr(self, "_status", None) is _State.RUNNING:
            warnings.warn(
                "Emulator collected while running; call stop() or use it as a context manager",
                ResourceWarning,
                stacklevel=2,
            )

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> Emulator:
        """Bind and serve; return once listening. A no-op when running.

        After ``stop()``, serves again on the same port with the same database.

        Returns:
            The emulator itself.

        Raises:
            RuntimeError: it was closed.
            OSError: the port could not be bound.
        """
        with self._lock:
            if self._status is _State.CLOSED:
                raise RuntimeError("the emulator is closed")
            if self._status is _State.RUNNING:
                return self
            self._open_state()
            self._server.start()
            self._status = _State.RUNNING
            logger.info("emulator listening on %s", self.rest_url)
            return self

    def stop(self) -> None:
        """Close every connection and stop serving; idempotent. Data is kept."""
        with self._lock:
            if self._status is not _State.RUNNING:
                return
            self._server.stop()
            self._status = _State.STOPPED
            logger.info("emulator stopped")

    def close(self) -> None:
        """Stop serving and close the database; idempotent. It cannot start again."""
        with self._lock:
            self.stop()
            if self._state is not None:
                self._state.store.close()
            self._status = _State.CLOSED

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        """True while serving."""
        return self._status is _State.RUNNING

    # -- addresses and credentials --------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound port (the configured one before the first start)."""
        return self._server.port

    @property
    def host(self) -> str:
        """The bound interface."""
        return self._host

    @property
    def rest_url(self) -> str:
        """The REST base URL, e.g. ``http://127.0.0.1:PORT`` (``https`` with TLS)."""
        return f"{'https' if self._tls else 'http'}://{self._netloc()}"

    @property
    def relay_url(self) -> str:
        """The relay websocket URL, e.g. ``ws://127.0.0.1:PORT/`` (``wss`` with TLS)."""
        return f"{'wss' if self._tls else 'ws'}://{self._netloc()}/"

    @property
    def space_host(self) -> str:
        """The realtime host written in tokens."""
        return self._space_host

    @property
    def project_id(self) -> str:
        """The project id (Basic auth user name)."""
        return self._open_state().project_id

    @property
    def api_token(self) -> str:
        """The project's API token (Basic auth password)."""
        return self._open_state().api_token

    @property
    def store(self) -> Store:
        """The database (for advanced assertions)."""
        return self._open_state().store

    @property
    def tokens(self) -> TokenAuthority:
        """The token authority of this emulated space."""
        return self._open_state().tokens

    def _netloc(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._server.port}"

    @property
    def connect_attempts(self) -> int:
        """Every ``signalwire.connect`` seen since the emulator was created."""
        hub = self._hub_or_none()
        return self._attempts_before + (hub.connect_attempts if hub is not None else 0)

    @property
    def hub(self) -> Any:
        """The running relay hub (None when stopped or without the relay module)."""
        return self._hub_or_none()

    # -- traffic recording ----------------------------------------------------------------

    def recording(self, *, redact: bool = True) -> Recording:
        """Start recording traffic (HTTP exchanges and websocket frames).

        Use as a context manager; the returned object reads as a list of entries::

            with emu.recording() as rec:
                ...
            assert rec.entries("http")[0]["path"] == "/api/fabric/messages"

        Args:
            redact: Replace tokens with ``"<redacted>"`` in the entries.
        """
        return self._recorder.start(redact=redact)

    # -- a client for tests ---------------------------------------------------------------

    def client_for(self, subscriber: str | EmulatorSubscriber, **kwargs: Any) -> Any:
        """A ``signalwire_chat.ChatClient`` for ``subscriber``, pointed at this emulator.

        The emulator shares no code with the client; the client is imported here, when
        this method is called, never when the emulator is imported.

        Args:
            subscriber: A subscriber from :meth:`create_subscriber` (its token is used), or a
                subscriber id (a fresh token is minted).
            **kwargs: More ``ChatClient`` options (``timeout=``, ``realtime=``, ...).

        Returns:
            An open ``ChatClient``; close it (or use ``with``).

        Raises:
            KeyError: no subscriber with that id.
        """
        import importlib

        token = (
            subscriber.token
            if isinstance(subscriber, EmulatorSubscriber)
            else self.mint_token(subscriber)
        )
        client_class = importlib.import_module("signalwire_chat").ChatClient
        kwargs.setdefault("rest_url", self.rest_url)
        kwargs.setdefault("relay_url", self.relay_url)
        return client_class(token, **kwargs)

    @property
    def space_url(self) -> str:
        """What ``mint_subscriber_token`` takes as ``space_url`` (the REST base here)."""
        return self.rest_url

    # -- internals ------------------------------------------------------------------------

    def _open_state(self) -> EmulatorState:
        with self._lock:
            if self._state is not None:
                return self._state
            if self._status is _State.CLOSED:
                raise RuntimeError("the emulator is closed")
            store = Store(self._db)
            try:
                self._state = self._load_state(store)
            except BaseException:
                store.close()
                raise
            return self._state

    def _load_state(self, store: Store) -> EmulatorState:
        if self._project_id_opt is not None:
            store.set_meta("project_id", self._project_id_opt)
        if self._api_token_opt is not None:
            store.set_meta("api_token", self._api_token_opt)
        project_id = store.setdefault_meta("project_id", str(uuid.uuid4()))
        api_token = store.setdefault_meta("api_token", "PT" + secrets.token_hex(24))
        sat_key = store.setdefault_meta("sat_key", _b64(generate_key()))
        refresh_key = store.setdefault_meta("refresh_key", _b64(generate_key()))
        clock = self._clock or time.time
        tokens = TokenAuthority(
            sat_key=base64.b64decode(sat_key),
            refresh_key=base64.b64decode(refresh_key),
            space_host=self._space_host,
            sat_ttl=self._token_ttl,
            clock=clock,
        )
        return EmulatorState(
            store=store,
            tokens=tokens,
            project_id=project_id,
            api_token=api_token,
            recorder=self._recorder,
            faults=self._faults,
            max_text_length=self._max_text_length,
            clock=clock,
            idle_timeout=self._idle_timeout,
            cors_origins=self._cors_origins,
        )

    def _make_app(self) -> Any:
        assert self._state is not None
        return build_app(self._state)

    async def _on_start(self) -> None:
        state = self._state
        assert state is not None
        config = RelayConfig(
            ping_interval=self._ping_interval,
            resume_window=self._resume_window,
            event_window=self._event_window,
            # A space host may carry a port (``puc.localhost:8443``, for a browser on
            # loopback): the relay names hosts (TURN servers, identities) without it.
            space_host=_hostname(self._space_host),
            auth_timeout=self._auth_timeout,
            ping_timeout=self._ping_timeout,
        )
        recorder = self._recorder
        state.hub = RelayHub(
            verify_token=self._verify_for_relay,
            config=config,
            record=recorder.record,
            recording=recorder.is_recording,
        )

    def _verify_for_relay(self, token: str) -> SatClaims:
        state = self._state
        assert state is not None
        claims = state.tokens.verify_sat(token)
        if claims.project_id != state.project_id:
            raise InvalidTokenError("the token belongs to another project")
        if state.store.get_subscriber(claims.subscriber_id) is None:
            raise InvalidTokenError("the token's subscriber does not exist")
        return claims

    async def _on_stop(self) -> None:
        state = self._state
        if state is None or state.hub is None:
            return
        hub, state.hub = state.hub, None
        self._attempts_before += hub.connect_attempts
        await hub.close()

    def _hub_or_none(self) -> RelayHub | None:
        state = self._state
        hub: RelayHub | None = state.hub if state is not None else None
        return hub

    def _hub(self) -> RelayHub:
        hub = self._hub_or_none()
        if hub is None or not self.running:
            raise RuntimeError("the relay is not running (start the emulator first)")
        return hub

    def _with_hub(self, fn: Callable[[RelayHub], _T]) -> _T:
        hub = self._hub()
        return self._server.call(lambda: fn(hub))

    def _with_hub_async(self, fn: Callable[[RelayHub], Awaitable[_T]], *, timeout: float) -> _T:
        hub = self._hub()
        return self._server.run(lambda: fn(hub), timeout=timeout)

    def _with_live_hub(self, fn: Callable[[RelayHub], object]) -> None:
        hub = self._hub_or_none()
        if hub is not None and self.running:
            self._server.call(lambda: fn(hub))

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        if self.running:
            return self._server.call(fn)
        return fn()


def _hostname(host_and_port: str) -> str:
    """``puc.localhost:8443`` -> ``puc.localhost``; a host without a port is returned as is."""
    host, _, port = host_and_port.rpartition(":")
    return host if host and port.isdigit() else host_and_port


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
