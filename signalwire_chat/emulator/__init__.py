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
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal

import attrs

from ._app import EmulatorState, FabricHTTPError, FaultRule, RestFaults, ServerThread, build_app
from ._record import Recording, TrafficRecorder
from ._rest import join_group_as, room_of
from ._store import DuplicateNameError, Store, group_id_of
from ._tokens import InvalidTokenError, SatClaims, TokenAuthority, generate_key

try:
    from ._relay import RelayConfig, RelayHub
except ImportError:  # pragma: no cover - only while the relay module is being written
    RelayConfig = None  # type: ignore[assignment,misc]
    RelayHub = None  # type: ignore[assignment,misc]

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

DEFAULT_MAX_TEXT_LENGTH = 10_000
SYSTEM_USER_ID = "00000000-0000-0000-0000-000000000000"


@attrs.frozen(kw_only=True)
class EmulatorSubscriber:
    """A subscriber created through :meth:`Emulator.create_subscriber`.

    Attributes:
        id: The subscriber id.
        address_id: The id of the subscriber's own address.
        reference: The reference it was created with (its email).
        display_name: Its display name.
        token: A fresh SAT (not shown in the repr).
        refresh_token: A refresh token (not shown in the repr).
    """

    id: str
    address_id: str
    reference: str
    display_name: str
    token: str = attrs.field(repr=False)
    refresh_token: str = attrs.field(repr=False)


@attrs.frozen(kw_only=True)
class EmulatorAddress:
    """An address created through :meth:`Emulator.create_room`.

    Attributes:
        id: The address id (also the id of its conversation).
        name: The unique name.
        display_name: The display name.
        type: The address type, "room".
        resource_id: The id of the video room resource behind it.
    """

    id: str
    name: str
    display_name: str
    type: str
    resource_id: str


class ThreadMessages(list[dict[str, Any]]):
    """What :meth:`Emulator.messages` returns: a list of messages that names its thread.

    Attributes:
        thread: The id of the thread read: a room's address id (asked by the room's
            address or by its group's id alike), a group's id, or an address id (that
            address's address-dialect conversation).
        dialect: The dialect the messages are shown in (None: each as it was written;
            a message written in the group dialect has ``group_id``).
    """

    def __init__(self, messages: list[dict[str, Any]], *, thread: str, dialect: str | None) -> None:
        super().__init__(messages)
        self.thread = thread
        self.dialect = dialect

    def __repr__(self) -> str:
        shown = self.dialect or "as written"
        return f"ThreadMessages(thread={self.thread!r}, {shown}, {list.__repr__(self)})"


class _State(enum.Enum):
    UNOPENED = "unopened"
    RUNNING = "running"
    STOPPED = "stopped"
    CLOSED = "closed"


class _HalfOpen:
    """Returned by :meth:`Emulator.half_open`; as a context manager, undoes it on exit."""

    def __init__(self, emulator: Emulator) -> None:
        self._emulator = emulator

    def __enter__(self) -> _HalfOpen:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._emulator.running:
            self._emulator.half_open(False)


class Emulator:
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

    # -- helpers for tests and demos ------------------------------------------------------

    def create_subscriber(
        self,
        reference: str | None = None,
        *,
        display_name: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        password: str | None = None,
    ) -> EmulatorSubscriber:
        """Create (or fetch) a subscriber and mint it a token, as the tokens endpoint does.

        Args:
            reference: Its reference (an email); a unique one is made up when None.
            display_name: Display name (defaults to first and last name, or the reference).
            first_name: First name.
            last_name: Last name.
            password: Accepted for parity with the REST call; not stored.

        Returns:
            The subscriber, with a fresh token and refresh token.
        """
        del password  # accepted like the REST call does; never stored
        state = self._open_state()
        if reference is None:
            reference = f"subscriber-{uuid.uuid4().hex[:12]}@emulator.test"
        subscriber, _ = state.store.upsert_subscriber(
            reference,
            now=state.clock(),
            display_name=display_name,
            first_name=first_name,
            last_name=last_name,
        )
        token, _ = state.tokens.mint_sat(subscriber["id"], state.project_id)
        refresh, _ = state.tokens.mint_refresh(subscriber["id"], state.project_id)
        return EmulatorSubscriber(
            id=subscriber["id"],
            address_id=subscriber["fabric_addresses"][0]["id"],
            reference=reference,
            display_name=subscriber["display_name"],
            token=token,
            refresh_token=refresh,
        )

    def mint_token(
        self,
        subscriber_id: str | EmulatorSubscriber,
        *,
        ttl: float | None = None,
        expire_at: float | None = None,
    ) -> str:
        """Mint a SAT for an existing subscriber.

        Args:
            subscriber_id: The subscriber (or its id).
            ttl: Lifetime in seconds (``token_ttl`` when None); may be negative for an
                already expired token.
            expire_at: Absolute expiry, unix seconds; wins over ``ttl``.

        Returns:
            The token.

        Raises:
            KeyError: no such subscriber.
        """
        state = self._open_state()
        sub_id = _subscriber_id(subscriber_id)
        if state.store.get_subscriber(sub_id) is None:
            raise KeyError(f"no subscriber {sub_id!r}")
        token, _ = state.tokens.mint_sat(sub_id, state.project_id, ttl=ttl, expire_at=expire_at)
        return token

    def create_room(self, name: str, *, display_name: str | None = None) -> EmulatorAddress:
        """Create a video room and its room address.

        Args:
            name: Unique address name.
            display_name: Display name (the name when None).

        Returns:
            The room's address.

        Raises:
            ValueError: an address with that name exists.
        """
        state = self._open_state()
        try:
            _resource, address = state.store.create_room(
                name, now=state.clock(), display_name=display_name
            )
        except DuplicateNameError as exc:
            raise ValueError(str(exc)) from None
        return EmulatorAddress(
            id=address["id"],
            name=address["name"],
            display_name=address["display_name"],
            type=address["type"],
            resource_id=address["resource_id"],
        )

    def join(self, subscriber: str | EmulatorSubscriber, address_id: str) -> None:
        """Make a subscriber a member of an address's conversation (like the join call).

        Raises:
            KeyError: no such address.
            PermissionError: the address is another subscriber's own (only its owner
                joins it; see "Membership" in the module docstring).
        """
        state = self._open_state()
        sub_id = _subscriber_id(subscriber)
        if state.store.get_address(address_id) is None:
            raise KeyError(f"no address {address_id!r}")
        if not state.store.may_join(address_id, sub_id):
            raise PermissionError("only its owner may join a subscriber's own address")
        state.store.join(address_id, sub_id, now=state.clock())

    def group_id_for(self, *address_ids: str) -> str:
        """Return the group id of a set of addresses, as the join call would give it.

        Pure: nothing is created. Order and duplicates do not matter; a set holding a
        room address gives the room's one group.

        Args:
            *address_ids: The addresses of the set (include the caller's own).

        Returns:
            The group id.

        Raises:
            ValueError: fewer than two distinct addresses, or more than one room.
            KeyError: an unknown address.
        """
        ids = list(dict.fromkeys(address_ids))
        if len(ids) < 2:
            raise ValueError("a group needs at least two distinct addresses")
        try:
            room_id = room_of(self._open_state(), ids)
        except FabricHTTPError as exc:
            raise _helper_error(exc) from None
        return group_id_of(ids, room_id)

    def join_group(
        self,
        subscriber: str | EmulatorSubscriber,
        address_ids: Sequence[str],
        *,
        from_address_id: str | None = None,
    ) -> str:
        """Join a group as a subscriber, as ``POST /api/fabric/conversations/join`` does.

        Args:
            subscriber: The joining subscriber (or its id).
            address_ids: The other addresses of the group (the from-address is added).
            from_address_id: The subscriber's address to join with; its primary address
                when None.

        Returns:
            The group id (the same for the same set, every time).

        Raises:
            KeyError: an unknown address or subscriber.
            PermissionError: ``from_address_id`` is not the subscriber's.
            ValueError: fewer than two distinct addresses (a self-join), or two rooms.
        """
        if isinstance(address_ids, str):
            raise TypeError("address_ids must be a sequence of ids, not one string")
        state = self._open_state()
        sub_id = _subscriber_id(subscriber)
        from_id = from_address_id or self._primary_address(sub_id)
        ids = list(dict.fromkeys([*address_ids, from_id]))
        try:
            group = join_group_as(state, sub_id, from_id, ids)
        except FabricHTTPError as exc:
            raise _helper_error(exc) from None
        return str(group["group_id"])

    def add_message(
        self,
        target: str,
        *,
        subtype: str = "log",
        kind: str | None = None,
        text: str | None = None,
        user_id: str | None = None,
        details: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        from_address_id: str | None = None,
    ) -> dict[str, Any]:
        """Insert a message into a conversation or group and push it to its members.

        The default ``subtype`` is ``"log"``: a non-chat entry (a call event, say), which
        chat reads and subscriptions skip. For a chat message pass ``subtype="chat"`` and
        ``text``, or use :meth:`send_as`.

        Args:
            target: A group id (the message goes to that group, in the group dialect's
                shape), or an address id (the address-dialect conversation of that
                address). A room's address and its group's id are the same thread: a
                member reading the room in either dialect sees the message.
            subtype: The message subtype; ``"log"`` by default.
            kind: The kind of a non-chat message (e.g. ``"call_started"``).
            text: The text (None for none).
            user_id: The sending subscriber. In an address conversation it joins, as
                when it sends. Without one the message comes from a system user (in a
                group, attributed to the address that created the group: every group
                message names a sender address, which v4 looks up).
            details: The ``details`` object.
            metadata: The ``metadata`` object.
            from_address_id: The sender address of a group message (the sender's
                address in the group, or its primary one, when None).

        Returns:
            The stored message object.

        Raises:
            KeyError: ``target`` is neither a group nor an address.
        """
        state = self._open_state()
        group_id: str | None = None
        if state.store.is_group(target):
            group_id = target
            if from_address_id is None and user_id is not None:
                from_address_id = state.store.member_address(target, user_id)
            if from_address_id is None:
                # Every group message names a sender address (v4 looks each one up).
                group = state.store.get_group(target)
                assert group is not None
                from_address_id = group["from_address_id"]
        elif state.store.get_address(target) is None:
            raise KeyError(f"no group or address {target!r}")

        def post() -> dict[str, Any]:
            return state.post_message(
                conversation_id=target,
                group_id=group_id,
                from_address_id=from_address_id,
                user_id=user_id or SYSTEM_USER_ID,
                text=text,
                subtype=subtype,
                kind=kind,
                details=dict(details) if details is not None else None,
                metadata=dict(metadata) if metadata is not None else None,
            )

        message: dict[str, Any] = self._on_loop(post)
        return message

    def send_as(
        self,
        subscriber: str | EmulatorSubscriber,
        address_id: str | None,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
        group_id: str | None = None,
        dialect: Literal["group", "address"] = "group",
    ) -> dict[str, Any]:
        """Send a chat message as a subscriber (what ``POST /api/fabric/messages`` does).

        In the group dialect (the default) the subscriber joins the group of
        ``[address_id, its own address]`` and posts there, as the current official
        clients do; with ``group_id`` it posts to that group directly (``address_id``
        may then be None). With ``dialect="address"`` the message goes to the
        address-dialect conversation of ``address_id`` (the sender joins it).

        Args:
            subscriber: The sender (or its id).
            address_id: The address to message (ignored with ``group_id``).
            text: The text.
            metadata: The ``metadata`` object.
            details: The ``details`` object.
            group_id: A group the subscriber is in, to post to directly.
            dialect: ``"group"`` or ``"address"``.

        Returns:
            The stored message object.

        Raises:
            KeyError: an unknown address, group or subscriber.
            PermissionError: the subscriber is not in the group.
            ValueError: a message to the subscriber's own address in the group dialect,
                or a bad ``dialect``.
        """
        sub_id = _subscriber_id(subscriber)
        if dialect == "address" and group_id is None:
            if address_id is None:
                raise ValueError("the address dialect needs an address_id")
            return self.add_message(
                address_id,
                subtype="chat",
                text=text,
                user_id=sub_id,
                details=details,
                metadata=metadata,
            )
        if dialect not in ("group", "address"):
            raise ValueError(f"dialect must be 'group' or 'address', not {dialect!r}")
        state = self._open_state()
        if group_id is None:
            if address_id is None:
                raise ValueError("give an address_id or a group_id")
            group_id = self.join_group(sub_id, [address_id])
        elif not state.store.is_group(group_id):
            raise KeyError(f"no group {group_id!r}")
        from_id = state.store.member_address(group_id, sub_id)
        if from_id is None:
            raise PermissionError("the subscriber is not a member of that group")
        return self.add_message(
            group_id,
            subtype="chat",
            text=text,
            user_id=sub_id,
            details=details,
            metadata=metadata,
            from_address_id=from_id,
        )

    def messages(
        self, target: str, *, dialect: Literal["group", "address"] | None = None
    ) -> ThreadMessages:
        """Return every message of the thread ``target`` reads, oldest first.

        A room has one thread: ``emu.messages(room.id)`` and ``emu.messages(group)``
        for the room's group return the same messages, whichever dialect wrote them,
        and ``.thread`` names the thread read (the room's address id).

        Args:
            target: A group id, a room's address id, or another address id (its
                address-dialect conversation).
            dialect: Show every message as this dialect reads it (``"group"``: no
                ``user_id``; a message in a subscriber's inbox has only the address
                shape); by default each as it was written.

        Returns:
            The messages, as a list that also says which thread it read.
        """
        store = self._open_state().store
        return ThreadMessages(
            store.all_messages(target, dialect),
            thread=store.thread_of(target),
            dialect=dialect,
        )

    def edit_message(
        self,
        message_id: str,
        *,
        text: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change a stored message and push ``conversation.message.updated`` to its members.

        Args:
            message_id: The message's id.
            text: The new text (None keeps it).
            metadata: The new ``metadata`` (None keeps it).
            details: The new ``details`` (None keeps them).

        Returns:
            The updated message object.

        Raises:
            KeyError: no such message.
        """
        state = self._open_state()

        def edit() -> dict[str, Any]:
            message = state.store.update_message(
                message_id,
                text=text,
                metadata=dict(metadata) if metadata is not None else None,
                details=dict(details) if details is not None else None,
            )
            if message is None:
                raise KeyError(f"no message {message_id!r}")
            state.publish(message_id, event_type="conversation.message.updated")
            return message

        updated: dict[str, Any] = self._on_loop(edit)
        return updated

    def _primary_address(self, subscriber_id: str) -> str:
        ids = self._open_state().store.address_ids_of(subscriber_id)
        if not ids:
            raise KeyError(f"no subscriber {subscriber_id!r} (or it has no address)")
        return ids[0]

    # -- REST faults ----------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
        body: str | bytes | dict[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next matching REST requests with an error instead of handling them.

        Args:
            status: The HTTP status to answer.
            method: Only requests with this method (any when None).
            path_prefix: Only paths starting with it; None matches every ``/api/`` path
                (give ``"/"`` to fail the websocket handshake too).
            times: How many requests it applies to.
            body: None for a fabric error body; a str or bytes is sent raw (HTML when it
                starts with ``<``, e.g. a proxy's 502 page); a dict or list as JSON.
            headers: Extra response headers (e.g. ``{"Retry-After": "2"}``).
            delay: Seconds to wait before answering.

        Rate limiting, as the service answers it (a fabric 429 body with
        ``type: rate_limit_error``) with a ``Retry-After``::

            emu.fail_next(429, path_prefix="/api/fabric/messages", headers={"Retry-After": "1"})
            client.send_message(room.id, "hi")  # ChatClient waits 1 s, retries, succeeds

        More failures than the client retries (3 by default: ``times=4``) end in
        ``RateLimitError`` with ``retry_after`` set. A proxy's HTML error page::

            emu.fail_next(502, body="<html><body>Bad Gateway</body></html>")
        """
        if not 100 <= status <= 599:
            raise ValueError("status must be an HTTP status code")
        self._faults.add(
            FaultRule(
                status=status,
                method=method,
                path_prefix=path_prefix,
                times=times,
                body=body,
                headers=dict(headers or {}),
                delay=delay,
            )
        )

    def delay_next(
        self,
        seconds: float,
        *,
        method: str | None = None,
        path_prefix: str | None = None,
        times: int = 1,
    ) -> None:
        """Hold the next matching REST requests for ``seconds`` before handling them."""
        if not seconds > 0:
            raise ValueError("seconds must be positive")
        self._faults.add(
            FaultRule(status=0, method=method, path_prefix=path_prefix, times=times, delay=seconds)
        )

    def clear_faults(self) -> None:
        """Drop pending REST faults, connect refusals and event faults.

        Events held by :meth:`reorder_next_events` are delivered, in their own order.
        """
        self._faults.clear()
        hub = self._hub_or_none()
        if self.running and hub is not None:
            self.refuse_connects(0)
            self._server.call(hub.clear_event_faults)

    # -- relay faults ---------------------------------------------------------------------

    def drop_connections(self) -> None:
        """Abort every relay socket without a close frame, like a network drop."""
        hub = self._hub()
        self._server.run(hub.drop_all, timeout=10.0)

    def half_open(self, on: bool = True) -> _HalfOpen:
        """Silence (or revive) the open relay sockets while keeping their TCP open.

        Usable as a context manager: ``with emu.half_open(): ...`` revives on exit.
        """
        hub = self._hub()
        self._server.call(lambda: hub.set_half_open(on))
        return _HalfOpen(self)

    def refuse_connects(
        self, count: int = 1, code: int = -32002, message: str = "Authentication failed"
    ) -> None:
        """Refuse the next ``count`` relay connects with a JSON-RPC error."""
        hub = self._hub()
        self._server.call(lambda: hub.refuse_connects(count, code, message))

    def duplicate_next_events(self, count: int = 1) -> None:
        """Deliver each of the next ``count`` relay events twice, as a redelivery would.

        The copy is a second ``signalwire.event`` (a fresh event id) carrying the same
        message, right after the first. A client that promises exactly-once delivery
        drops it by message id::

            emu.duplicate_next_events()
            emu.send_as(bob, room.id, "once")  # each member's session gets it twice
            # ChatClient.subscribe(room.id, on_message): on_message("once") is called once

        Like every relay fault, it lasts until the emulator stops.

        Args:
            count: How many published events are doubled (0 disarms).
        """
        hub = self._hub()
        self._server.call(lambda: hub.duplicate_next_events(count))

    def reorder_next_events(self, count: int = 2) -> None:
        """Hold the next ``count`` relay events, then deliver them newest first.

        They go out in reverse order once the last of them is published::

            emu.reorder_next_events(2)
            emu.send_as(bob, room.id, "first")   # held
            emu.send_as(bob, room.id, "second")  # "second" then "first" on the socket
            # ChatClient.subscribe(): on_message gets each once, in the order the
            # events arrive ("second", "first"); the history keeps the true order

        ``clear_faults()`` delivers events still held, in their own order.

        Args:
            count: How many events to hold (at least 2).
        """
        hub = self._hub()
        self._server.call(lambda: hub.reorder_next_events(count))

    def delay_next_event(self, seconds: float, *, count: int = 1) -> None:
        """Deliver each of the next ``count`` relay events ``seconds`` late.

        Events published meanwhile overtake the late ones::

            emu.delay_next_event(0.5)
            emu.send_as(bob, room.id, "late")     # arrives 0.5 s later
            emu.send_as(bob, room.id, "on time")  # arrives now, before "late"

        Args:
            seconds: The delay.
            count: How many events are delayed.
        """
        hub = self._hub()
        self._server.call(lambda: hub.delay_next_events(seconds, count))

    def expire_tokens(self, subscriber: str | EmulatorSubscriber | None = None) -> None:
        """Make a subscriber's tokens (everyone's when None) expire now.

        Every SAT issued so far stops working: REST answers 401, the relay refuses
        them on connect; each live relay session of the subscriber gets
        ``signalwire.disconnect`` and its socket is closed, as at a real expiry. Tokens
        minted afterwards (``mint_token``, the tokens endpoints) work::

            emu.expire_tokens(alice)
            # alice's ChatClient with a fixed token: AuthenticationError from REST calls,
            # RealtimeAuthenticationError to on_error; with a token source it fetches a
            # fresh token and goes on
            fresh = emu.mint_token(alice)

        Args:
            subscriber: The subscriber (or its id); None for every subscriber.
        """
        state = self._open_state()
        sub_id = None if subscriber is None else _subscriber_id(subscriber)
        state.tokens.expire_now(sub_id)
        hub = self._hub_or_none()
        if hub is not None and self.running:
            self._server.call(lambda: hub.expire_sessions(sub_id))

    def steal_event_channel(self, subscriber: str | EmulatorSubscriber) -> str:
        """Let a newer session of the subscriber take the event channel of its sessions.

        The live sessions' events then carry the ``event_channel`` of another session,
        without their own ``protocol``: the v4 client, and ``ChatClient`` in the group
        dialect, drop them as stale. A connect (a resume included) takes the session's own
        channel back::

            emu.steal_event_channel(alice)
            emu.send_as(bob, room.id, "unseen")  # alice's ChatClient acks and drops it
            emu.drop_connections()  # alice reconnects, events flow again; her client
            # backfills "unseen" from the history

        Args:
            subscriber: The subscriber (or its id).

        Returns:
            The channel the events now carry.
        """
        hub = self._hub()
        sub_id = _subscriber_id(subscriber)
        channel: str = self._server.call(lambda: hub.steal_event_channel(sub_id))
        return channel

    def set_ping_interval(self, seconds: float | None) -> None:
        """Change the relay ping interval (None stops pinging); kept across restarts."""
        if seconds is not None and not seconds > 0:
            raise ValueError("seconds must be positive or None")
        self._ping_interval = seconds
        hub = self._hub_or_none()
        if hub is not None and self.running:
            self._server.call(lambda: hub.set_ping_interval(seconds))

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
        if RelayHub is None or RelayConfig is None:
            logger.warning("the relay module is unavailable; serving REST only")
            return
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
        state.hub = RelayHub(
            verify_token=self._verify_for_relay, config=config, record=self._recorder.record
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

    def _hub_or_none(self) -> Any:
        state = self._state
        return state.hub if state is not None else None

    def _hub(self) -> Any:
        hub = self._hub_or_none()
        if hub is None or not self.running:
            raise RuntimeError("the relay is not running (start the emulator first)")
        return hub

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        if self.running:
            return self._server.call(fn)
        return fn()


def _helper_error(exc: FabricHTTPError) -> Exception:
    """Turn the REST rules' error into the builtin a Python caller expects."""
    if exc.status == 404:
        return KeyError(exc.message)
    if exc.status == 403:
        return PermissionError(exc.message)
    return ValueError(exc.message)


def _subscriber_id(subscriber: str | EmulatorSubscriber) -> str:
    return subscriber.id if isinstance(subscriber, EmulatorSubscriber) else subscriber


def _hostname(host_and_port: str) -> str:
    """``puc.localhost:8443`` -> ``puc.localhost``; a host without a port is returned as is."""
    host, _, port = host_and_port.rpartition(":")
    return host if host and port.isdigit() else host_and_port


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")
