"""ChatClient: the blocking facade over REST and realtime, a context manager returning models."""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import requests

from ._auth import Credentials, TokenLike
from ._convert import structure
from ._dialects import DIALECTS, GroupWire, Target, history_url, wire_for
from ._http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    TimeoutLike,
)
from ._pages import (
    ChatPage,
    Page,
    _ChatHistory,
    raw_page_size,
)
from ._redact import forgets_locals
from ._rest_side import HISTORY_PAGE_SIZE, RestSide
from ._validate import check_address_id as _check_address_id
from ._validate import check_address_uuid as _check_address_uuid
from ._validate import check_callable, check_seconds
from ._validate import check_choice as _check_choice
from ._validate import check_json_object as _check_json_object
from ._validate import check_limit as _check_limit
from ._validate import check_page_size as _check_page_size
from ._validate import check_str as _check_str
from .errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from .models import (
    Address,
    Conversation,
    ConversationChatMessage,
    Group,
    JoinResult,
    SendResult,
    SubscriberInfo,
)

if TYPE_CHECKING:
    # The realtime side (and websocket-client under it) is imported on first use, so a
    # process that only calls REST, such as a web worker, never pays for loading it.
    from ._health import ClientHealth
    from ._hooks import Hooks
    from ._realtime import RealtimeOptions, Subscription
    from ._state import ConnectionState
    from .checkpoints import CheckpointHandler, CheckpointStore

__all__ = ["ChatClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ADDRESS_TYPES = ("app", "call", "room", "subscriber")
_SORT_BY = ("name", "created_at")
_SORT_ORDER = ("asc", "desc")


def _check_dialect(dialect: object) -> str:
    name = _check_choice(dialect, "dialect", tuple(DIALECTS))
    if not name:
        raise InvalidArgumentError("dialect must be one of group, address; got None")
    return name


def _check_realtime_args(realtime: object, on_state_change: object, store: object) -> None:
    """The realtime options, state hook and checkpoint store given to ChatClient."""
    if realtime is not None:
        from ._realtime import RealtimeOptions

        if not isinstance(realtime, RealtimeOptions):
            raise InvalidArgumentTypeError("realtime must be a RealtimeOptions or None")
    check_callable(on_state_change, "on_state_change", optional=True)
    if store is not None and not isinstance(store, (str, os.PathLike)):
        from .checkpoints import CheckpointStore

        if not isinstance(store, CheckpointStore):
            raise InvalidArgumentTypeError(
                "checkpoint_store must be a CheckpointStore (load, save, close), a path, or None"
            )


def _check_timeout(timeout: object) -> None:
    if timeout is not None:
        check_seconds(timeout, "timeout")


def _check_checkpoint_key(key: object) -> None:
    if key is not None:
        from .checkpoints import check_checkpoint

        check_checkpoint(key)


def _extras(metadata: object, details: object) -> dict[str, Any]:
    """The optional JSON objects sent along with a message (each omitted when None)."""
    extras: dict[str, Any] = {}
    if metadata is not None:
        extras["metadata"] = _check_json_object(metadata, "metadata")
    if details is not None:
        extras["details"] = _check_json_object(details, "details")
    return extras


def _address_params(
    type: object, display_name: object, sort_by: object, sort_order: object, page_size: object
) -> dict[str, Any]:
    """The query of an address listing, each filter checked (None: not filtered)."""
    return {
        "type": _check_choice(type, "type", _ADDRESS_TYPES),
        "display_name": None if display_name is None else _check_str(display_name, "display_name"),
        "sort_by": _check_choice(sort_by, "sort_by", _SORT_BY),
        "sort_order": _check_choice(sort_order, "sort_order", _SORT_ORDER),
        "page_size": _check_page_size(page_size),
    }


def _check_callbacks(on_message: object, on_error: object, on_update: object, key: object) -> None:
    """A subscription's callbacks (``on_message`` required) and checkpoint key."""
    check_callable(on_message, "on_message")
    check_callable(on_error, "on_error", optional=True)
    check_callable(on_update, "on_update", optional=True)
    _check_checkpoint_key(key)


class ChatClient:
    """A blocking client for the chat namespace of SignalWire's Call Fabric.

    The public API is address-based (``send_message(address_id, ...)``); underneath, the client
    speaks the wire SignalWire's current clients speak, the *group dialect* (join a group of
    addresses, then send and read by ``group_id``), or on request the older *address dialect*
    of ``@signalwire/js`` 3.28 (``dialect="address"``). In the group dialect the client speaks
    as "my address": ``from_address_id=``, or the subscriber's first address, fetched once;
    the group of each address is joined on first use and cached.

    The REST base and relay URL are derived from the token's header ``ch`` (or from ``host``)
    as the official SDK does; ``rest_url`` / ``relay_url`` override them (e.g. to point the
    client at the emulator). Nothing is connected in the constructor: REST requests open a
    pooled session on first use; the realtime connection starts with the first subscription.

    Args:
        token: A Subscriber Access Token (a compact JWE, or a JWS), or a callable returning a
            fresh one (e.g. :class:`~signalwire_chat.SubscriberTokenSource`). A callable is first
            called when a URL or token is first needed, not in the constructor; a 401 makes
            the client fetch a new token and retry the request once.
        host: The realtime host to derive URLs from instead of the token's ``ch``.
        rest_url: The REST base URL, e.g. ``https://fabric.signalwire.com``.
        relay_url: The relay websocket URL, e.g. ``wss://puc.signalwire.com/``.
        timeout: Seconds, or ``(connect, read)`` seconds; default ``(5, 30)``.
        deadline: Seconds one REST request may take in all, retries and their waits
            included; default 120. Past it, ``RequestTimeoutError``.
        max_response_bytes: The largest (decoded) response body read; default 64 MiB.
            Past it, ``ResponseTooLargeError``.
        session: A ``requests.Session`` to send through (its adapters, hooks and cookies are
            used; it is not closed by :meth:`close`).
        max_retries: Retries after the first attempt (see the retry rules in the README).
        max_connections: REST connections kept open for reuse: how many threads sharing this
            client can send at once without opening a new connection each (128 by default).
        allow_insecure: Allow plain ``http://`` / ``ws://`` to non-loopback hosts.
        dialect: ``"group"`` (the default: what the service speaks today) or ``"address"``
            (the wire of ``@signalwire/js`` 3.28, for services or emulators that still speak it).
        from_address_id: In the group dialect, the address to speak as; by default the
            subscriber's first address (``get_subscriber_info().fabric_addresses[0]``).
        realtime: Tuning of the realtime connection.
        on_state_change: Called with each new :class:`ConnectionState` of the realtime side.
        hooks: :class:`~signalwire_chat.Hooks` (or a list of them) called as the client works:
            each REST attempt and call (method, path template, status, attempt, duration),
            realtime state changes. :func:`signalwire_chat.otel.opentelemetry_hooks` gives
            the OpenTelemetry ones. A hook that raises is logged and ignored.

    Raises:
        InvalidArgumentTypeError: An argument of the wrong type.
        InvalidArgumentError: A bad URL, timeout or retry count.
        TokenError: A malformed token, or hosts that cannot be derived from it.
        InsecureURLError: A plain-text URL to a non-loopback host without ``allow_insecure``.
    """

    @forgets_locals
    def __init__(
        self,
        token: TokenLike,
        *,
        host: str | None = None,
        rest_url: str | None = None,
        relay_url: str | None = None,
        timeout: TimeoutLike = DEFAULT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        session: requests.Session | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        allow_insecure: bool = False,
        dialect: str = "group",
        from_address_id: str | None = None,
        realtime: RealtimeOptions | None = None,
        on_state_change: Callable[[ConnectionState], None] | None = None,
        hooks: Hooks | Sequence[Hooks] | None = None,
        checkpoint_store: CheckpointStore | str | os.PathLike[str] | None = None,
        _sleep: Callable[[float], None] | None = None,
        _rng: random.Random | None = None,
    ) -> None:
        # Loaded with the first client, not with the package (import time).
        from ._config import RestOptions
        from ._health import RestCounters
        from ._hooks import HookRegistry, normalise_hooks
        from ._realtime_side import RealtimeSide

        credentials = Credentials(token)
        options = RestOptions(
            timeout=timeout,
            deadline=deadline,
            max_response_bytes=max_response_bytes,
            max_retries=max_retries,
            max_connections=max_connections,
            session=session,
            allow_insecure=allow_insecure,
        )
        #: The wire spoken underneath (join, send body, routes, my address, group cache).
        self._wire = wire_for(_check_dialect(dialect), from_address_id)
        _check_realtime_args(realtime, on_state_change, checkpoint_store)
        self._counters = RestCounters()
        hooks_registry = HookRegistry(normalise_hooks(hooks), self._counters)
        #: The endpoints, the transport (made with the first request), whether closed.
        self._rest = RestSide(
            credentials,
            options,
            hooks_registry,
            urls=(host, rest_url, relay_url),
            sleep=_sleep,
            rng=_rng,
        )
        #: The hub (made with the first subscription), its settings, the checkpoint store.
        self._realtime = RealtimeSide(
            self._rest,
            realtime,
            on_state_change,
            hooks_registry,
            checkpoint_store,
            drop_stale=isinstance(self._wire, GroupWire),
            agent=USER_AGENT,
        )

    # -- URLs and lazily made parts --

    @property
    def rest_url(self) -> str:
        """The REST base URL in use (with a token source, resolving it may call the source)."""
        return self._rest.endpoints.rest_url()

    @property
    def relay_url(self) -> str:
        """The relay websocket URL in use.

        Raises:
            TokenError: It cannot be derived (unreadable token header, no host or relay_url).
        """
        return self._rest.endpoints.relay_url()

    @property
    def dialect(self) -> str:
        """The wire dialect spoken, ``"group"`` or ``"address"``."""
        return self._wire.name

    def check_target(self, target: object, name: str = "address_id") -> Target:
        """Check a chat target as every chat method does, with no request: return it or raise.

        For input taken from outside (a form field, a queued job) before any work is done
        with it: an address id must be a UUID; a :class:`Group` needs the group dialect and
        its ids must be well-formed. ``name`` is the argument named in the error.

        Raises:
            InvalidArgumentTypeError: ``target`` is neither a ``str`` nor a :class:`Group`.
            InvalidArgumentError: A malformed id, or a Group in the address dialect.
        """
        return self._wire.target(target, name)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._rest.closed

    # -- the group dialect: my address, groups --

    def my_address_id(self) -> str:
        """The address this client speaks as in the group dialect.

        ``from_address_id=`` when given; otherwise the subscriber's first address, fetched
        with ``get_subscriber_info()`` on first need and kept for the life of the client (a
        token source renews the token of one subscriber, so its addresses stay).

        Raises:
            NoAddressError: The subscriber has no address.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        return self._wire.my_address_id(self._rest.transport)

    # -- chat --

    def join(self, address_id: str) -> JoinResult:
        """Join the conversation with ``address_id`` without sending a message.

        In the group dialect this joins (or creates) the group of this client's address and
        ``address_id``, always with a request, and caches it for the other chat methods.

        Args:
            address_id: The address to talk to.

        Returns:
            What the service answered, with ``group_id`` (group dialect; also ``result.group``),
            the group's ``address_ids`` and ``from_address_id``.

        Raises:
            InvalidArgumentError: A bad ``address_id``, or your own address in the group
                dialect (nothing is sent).
            NoAddressError: The subscriber has no address to speak as.
            ClientClosedError: The client is closed.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        address_id = _check_address_uuid(address_id)
        return self._wire.join(self._rest.transport, address_id)

    def join_group(self, address_ids: Iterable[str]) -> Group:
        """Join (or create) the group chat of several addresses and this client's address.

        The same set of addresses always gives the same group. Pass the result to
        ``send_message``, ``get_messages``, ``iter_messages``, ``subscribe`` or
        ``stream_messages`` in place of an address id. Group dialect only.

        Args:
            address_ids: The other addresses of the group (at least one; this client's
                own address is added; duplicates are ignored).

        Returns:
            The group.

        Raises:
            InvalidArgumentError: Bad or no addresses, or the address dialect.
            NoAddressError: The subscriber has no address to speak as.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        return self._wire.join_group(self._rest.transport, address_ids)

    def get_messages(self, address_id: Target, *, page_size: int = 10) -> ChatPage:
        """The newest chat messages exchanged with ``address_id``, one page of ``page_size``.

        Only chat messages (``subtype == "chat"``) of that conversation are kept, gathered
        across raw pages as needed. ``next_page()`` walks back in time; ``prev_page()`` is its
        exact inverse. In the group dialect the group of ``address_id`` is resolved first
        (joined once if this client has not joined it yet: the join is idempotent).

        Args:
            address_id: The address of the conversation, or a :class:`Group`.
            page_size: Chat messages per page, 1 to 1000.

        Returns:
            The first (newest) chat page.

        Raises:
            InvalidArgumentError: A bad ``address_id`` or ``page_size`` (nothing is sent).
            ClientClosedError: The client is closed.
            APIError: The service refused (e.g. PermissionDeniedError for a non-member).
            TransportError: The request failed at the network level.
            PageLimitError: The service kept handing out pages without chat messages
                (more raw pages than the bound allows for one page).
        """
        target = self._wire.target(address_id)
        page_size = _check_page_size(page_size)
        route = self._wire.route(self._rest.transport, target)
        http = self._rest.transport()
        first = history_url(http, route.value, raw_page_size(page_size))
        history = _ChatHistory(http, first, route)
        return ChatPage(history, 0, page_size)

    def iter_messages(
        self, address_id: Target, *, page_size: int = HISTORY_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate lazily over the whole chat history of ``address_id``, newest first.

        Args:
            address_id: The address of the conversation, or a :class:`Group`.
            page_size: Messages per request (1 to 1000); it does not change what is yielded.
            limit: Stop after this many chat messages (``None``: all of them).

        Returns:
            An iterator; nothing is requested before its first item is asked for.

        Raises:
            InvalidArgumentError: Bad arguments (raised at once, before iterating).
            PageLimitError: While iterating: the service kept handing out pages without
                chat messages (more raw pages than the bound allows for one step).
        """
        target = self._wire.target(address_id)
        page_size = _check_page_size(page_size)
        limit = _check_limit(limit)
        self._rest.check_open()
        return self._rest.lazy_messages(
            lambda: self._wire.route(self._rest.transport, target), page_size, limit
        )

    def iter_inbox(
        self, *, page_size: int = HISTORY_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate lazily over the chat messages of every conversation of the subscriber.

        Newest first, from ``GET /api/fabric/messages``, in either dialect.

        Args:
            page_size: Messages per request (1 to 1000).
            limit: Stop after this many chat messages (``None``: all of them).

        Raises:
            InvalidArgumentError: Bad arguments (raised at once, before iterating).
        """
        page_size = _check_page_size(page_size)
        limit = _check_limit(limit)
        self._rest.check_open()
        return self._rest.lazy_messages(None, page_size, limit)

    def send_message(
        self,
        address_id: Target,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> SendResult:
        """Send a chat message to ``address_id`` (or to a :class:`Group`).

        In the group dialect the first send to an address joins its group (one join, even
        when many threads send at once); every later send is one request. A send is never
        retried once it may have reached the service, so a message is never sent twice.

        Args:
            address_id: The address to send to, or a :class:`Group`.
            text: The message text (not empty).
            metadata: A JSON object sent along with the message (omitted when ``None``).
            details: A JSON object of extra event details (omitted when ``None``).

        Returns:
            What the service answered.

        Raises:
            InvalidArgumentError: Bad arguments, or your own address in the group dialect
                (nothing is sent).
            NoAddressError: The subscriber has no address to speak as.
            ClientClosedError: The client is closed.
            APIError: The service refused (e.g. ValidationError).
            TransportError: The request failed at the network level.
        """
        target = self._wire.target(address_id)
        text = _check_str(text, "text")
        extras = _extras(metadata, details)
        return self._wire.send(self._rest.transport, target, text, extras)

    # -- other listings --

    def get_conversations(self, *, page_size: int = 10) -> Page[Conversation]:
        """The conversations the subscriber belongs to, one page at a time.

        Args:
            page_size: Conversations per page, 1 to 1000.

        Raises:
            InvalidArgumentError: A bad ``page_size``.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        page_size = _check_page_size(page_size)
        return self._rest.page("/api/fabric/conversations", {"page_size": page_size}, Conversation)

    def get_addresses(
        self,
        *,
        type: str | None = None,
        display_name: str | None = None,
        sort_by: str | None = None,
        sort_order: str | None = None,
        page_size: int = 10,
    ) -> Page[Address]:
        """Addresses visible to the subscriber, optionally filtered and sorted.

        Args:
            type: Only addresses of this type: ``"app"``, ``"call"``, ``"room"``, ``"subscriber"``.
            display_name: Only addresses whose display name matches.
            sort_by: ``"name"`` or ``"created_at"``.
            sort_order: ``"asc"`` or ``"desc"``.
            page_size: Addresses per page, 1 to 1000.

        Raises:
            InvalidArgumentError: A bad filter or ``page_size``.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        params = _address_params(type, display_name, sort_by, sort_order, page_size)
        return self._rest.page("/api/fabric/addresses", params, Address)

    def get_address(self, *, id: str | None = None, name: str | None = None) -> Address:
        """One address, by its id or by its name (exactly one of them).

        Raises:
            InvalidArgumentError: Neither or both of ``id`` and ``name``.
            NotFoundError: No such address.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        if (id is None) == (name is None):
            raise InvalidArgumentError("give exactly one of id=... or name=...")
        if id is not None:
            return self._rest.address_by_id(_check_address_id(id, "id"))
        return self._rest.address_by_name(_check_str(name, "name"))

    def get_subscriber_info(self) -> SubscriberInfo:
        """Who the token belongs to, with the subscriber's own addresses.

        Raises:
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        return structure(self._rest.get("/api/fabric/subscriber/info"), SubscriberInfo)

    # -- realtime (thin delegates; the wiring is in RealtimeSide, the logic in _realtime) --

    def checkpoint_route(self, address_id: Target | None = None) -> str:
        """The ``Checkpoint.route`` a subscription to ``address_id`` (None: the inbox) saves.

        For a handler that saves its checkpoint itself, in its own transaction
        (``SqliteCheckpointStore.atomic``). In the group dialect this resolves the group.

        Raises:
            InvalidArgumentError: A bad ``address_id``.
            APIError: Resolving the group failed.
        """
        self._rest.check_open()
        route = None
        if address_id is not None:
            route = self._wire.subscribe_route(self._rest.transport, self._wire.target(address_id))
        return self._realtime.route_name(route)

    def subscribe(
        self,
        address_id: Target,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: str | CheckpointHandler | None = None,
    ) -> Subscription:
        """Call ``on_message`` with every new chat message of ``address_id``.

        Every chat message of the conversation created after this returns is delivered
        exactly once, in order. In the group dialect the group of ``address_id`` is resolved
        first (a REST call; its failure is raised here). The realtime connection starts with
        the first subscription, and this call waits until it is established (at most
        ``RealtimeOptions.connect_timeout`` seconds). If that time passes (e.g. the network
        is down) the subscription is still returned, active: once connected, the messages
        created meanwhile are fetched from the history (from its newest message id when this
        ran: ids decide, never clocks). Called from inside a callback, it does
        not wait. Subscriptions survive reconnects; messages missed while disconnected are
        fetched from the history.

        Re-running a notebook cell replaces the subscription its earlier run made to the same
        conversation (the cell decides, never the callback's name; see the notebooks guide).
        A client dropped without :meth:`close` is closed when garbage-collected, unless a
        callback refers to it (see "Callbacks instead of a loop" in the scripts guide).

        Args:
            address_id: The address of the conversation, or a :class:`Group`. Your own
                address in the group dialect is refused: use :meth:`subscribe_inbox`.
            on_message: Called on the dispatcher thread with each new chat message.
            on_error: Called with errors of this subscription (a raising callback, a gap).
            on_update: Called with a message each time it is edited
                (``conversation.message.updated``); edits never reach ``on_message``.
            checkpoint: A key in the checkpoint store (``ChatClient(checkpoint_store=)``):
                resume where the last run under that key stopped. The messages created since
                its checkpoint are caught up from the history (in order, deduplicated) before
                live ones, and the checkpoint is saved after each ``on_message`` returned:
                at-least-once across restarts. No checkpoint yet: start from now. One key per
                subscription; a key that holds another conversation's checkpoint is refused.
                Or a :class:`~signalwire_chat.checkpoints.CheckpointHandler` that keeps the
                checkpoint itself: loaded here, advanced once per delivery batch.

        Returns:
            A handle with ``cancel()`` and ``active``; also a context manager.

        Raises:
            InvalidArgumentError: A bad ``address_id`` or ``checkpoint`` key, or a callback
                that is not callable.
            ClientClosedError: The client is closed.
            StoreError: The checkpoint could not be loaded (``StoreUnavailableError``,
                ``CorruptCheckpointError``); nothing was started.
            APIError: Resolving the group failed (e.g. PermissionDeniedError).
            TransportError: Resolving the group failed at the network level.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited (the subscription is not left active).
            RealtimeConnectError: The first connect failed for a reason waiting will not
                fix (name not resolved, connection refused, TLS, a 4xx upgrade answer); a
                transient failure goes to ``on_error`` instead, once per outage.
        """
        target = self._wire.target(address_id)
        _check_callbacks(on_message, on_error, on_update, checkpoint)
        route = self._wire.subscribe_route(self._rest.transport, target)
        return self._realtime.subscribe(self, route, on_message, on_error, on_update, checkpoint)

    def subscribe_inbox(
        self,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: str | CheckpointHandler | None = None,
    ) -> Subscription:
        """Call ``on_message`` with every new chat message of every conversation of yours.

        This is what subscribing to one's own address meant in the address dialect. The
        same promises as :meth:`subscribe`; gaps are filled from the history of all the
        subscriber's messages (``GET /api/fabric/messages``). Messages you send arrive too
        (``message.is_author`` tells them apart on live messages).

        Args:
            on_message: Called on the dispatcher thread with each new chat message.
            on_error: Called with errors of this subscription.
            on_update: Called with each edited message.
            checkpoint: A key in the checkpoint store, as for :meth:`subscribe`: resume where
                the last run under that key stopped, at-least-once across restarts; or a
                :class:`~signalwire_chat.checkpoints.CheckpointHandler`.

        Raises:
            InvalidArgumentError: A callback that is not callable, or a bad ``checkpoint``.
            ClientClosedError: The client is closed.
            StoreError: The checkpoint could not be loaded; nothing was started.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited.
        """
        _check_callbacks(on_message, on_error, on_update, checkpoint)
        return self._realtime.subscribe(self, None, on_message, on_error, on_update, checkpoint)

    def stream_messages(
        self, address_id: Target, *, timeout: float | None = None, checkpoint: str | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over new chat messages of ``address_id`` (or a :class:`Group`) as they arrive.

        Like :meth:`subscribe`, this resolves the group, waits for the connection (at most
        ``connect_timeout``), and every chat message created after it returns is yielded.

        Args:
            address_id: The address of the conversation, or a :class:`Group`.
            timeout: Stop after this many seconds without a message (``None``: never).
            checkpoint: A key in the checkpoint store, as for :meth:`subscribe`; a message
                counts as handled when the next one is asked for (or the ``with`` block is
                left without an exception).

        Raises:
            InvalidArgumentError: A bad ``address_id``, ``timeout`` or ``checkpoint``.
            ClientClosedError: The client is closed.
            StoreError: The checkpoint could not be loaded; nothing was started.
            APIError: Resolving the group failed.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited.
        """
        target = self._wire.target(address_id)
        _check_timeout(timeout)
        _check_checkpoint_key(checkpoint)
        route = self._wire.subscribe_route(self._rest.transport, target)
        return self._realtime.stream(self, route, timeout, checkpoint)

    def stream_inbox(
        self, *, timeout: float | None = None, checkpoint: str | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over new chat messages of every conversation of the subscriber.

        Args:
            timeout: Stop after this many seconds without a message (``None``: never).
            checkpoint: A key in the checkpoint store, as for :meth:`subscribe`; a message
                counts as handled when the next one is asked for (or the ``with`` block is
                left without an exception).

        Raises:
            InvalidArgumentError: A bad ``timeout`` or ``checkpoint``.
            ClientClosedError: The client is closed.
            StoreError: The checkpoint could not be loaded; nothing was started.
        """
        _check_timeout(timeout)
        _check_checkpoint_key(checkpoint)
        return self._realtime.stream(self, None, timeout, checkpoint)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions (those of :meth:`stream_messages` included), oldest first."""
        return self._realtime.subscriptions()

    @property
    def connection_state(self) -> ConnectionState:
        """The realtime connection's state (``IDLE`` before the first subscription)."""
        return self._realtime.state()

    def health(self) -> ClientHealth:
        """A snapshot of what this client has done and where it stands.

        Cheap (it copies a few counters under a lock and sends nothing), so a web app's
        health endpoint may call it on every request. Works on a closed client too. The
        realtime package is not loaded by it: a web worker that never subscribes never
        loads it.

        Returns:
            A frozen :class:`~signalwire_chat.ClientHealth`.
        """
        return self._realtime.health(self._counters, self.connection_state)

    # -- lifecycle --

    def close(self) -> None:
        """Stop the realtime side and close the connection pool. Idempotent.

        The realtime threads get ``RealtimeOptions.close_timeout`` (2 s) to end: the
        websocket's, the dispatcher's (a callback running now finishes first) and a token
        fetch under way (your token source); one still running then is named in a WARNING.
        A REST call in another thread raises ``ClientClosedError``: one about to send or
        waiting to retry at once, one waiting for the answer's headers as they are cut off
        (a callback's send included: that callback ends quietly). One whose answer has come
        completes. A caller's ``session`` is left open.
        """
        with self._rest.lock:
            if self._rest.closed:
                return
            self._rest.closed = True
            hub = self._realtime.take_hub()
        self._realtime.close(hub)  # each cleanup runs even if another fails
        self._rest.close()
        self._realtime.close_store()

    def __enter__(self) -> ChatClient:
        self._rest.check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        rest_side = getattr(self, "_rest", None)
        if rest_side is None:  # in the traceback of a refused argument: never half a repr
            return "<ChatClient not made>"
        state = "closed" if rest_side.closed else "open"
        rest = rest_side.endpoints.rest or "<not resolved yet>"
        return f"<ChatClient {state} rest_url={rest!r}>"
