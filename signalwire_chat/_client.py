"""ChatClient: the blocking facade over REST and realtime, a context manager returning models."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import ssl
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

import requests

from ._auth import Credentials, TokenLike
from ._convert import structure, structure_join_result, structure_send_result
from ._http import (
    DEFAULT_DEADLINE,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    USER_AGENT,
    HttpTransport,
    TimeoutLike,
    normalise_deadline,
    normalise_max_response_bytes,
    normalise_timeout,
)
from ._pages import (
    ChatPage,
    Page,
    _ChatHistory,
    _Fetcher,
    iter_chat_messages,
    raw_page_size,
)
from ._token import check_url, derive_urls, read_token_header
from ._validate import check_address_id as _check_address_id
from ._validate import check_choice as _check_choice
from ._validate import check_json_object as _check_json_object
from ._validate import check_limit as _check_limit
from ._validate import check_page_size as _check_page_size
from ._validate import check_str as _check_str
from .errors import (
    ChatError,
    ClientClosedError,
    DecodeError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NoAddressError,
    NotFoundError,
    TokenError,
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
    from ._health import ClientHealth, StateClock
    from ._hooks import Hooks
    from ._realtime import RealtimeHub, RealtimeOptions, Route, Subscription
    from ._realtime._checkpointing import Checkpointer
    from ._state import ConnectionState
    from .checkpoints import CheckpointStore

__all__ = ["ChatClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ADDRESS_TYPES = ("app", "call", "room", "subscriber")
_SORT_BY = ("name", "created_at")
_SORT_ORDER = ("asc", "desc")
_HISTORY_PAGE_SIZE = 100
_DIALECTS = ("group", "address")

#: What the chat methods take: an address id, or a :class:`Group` of the group dialect.
Target = str | Group


def _segment(value: str) -> str:
    # One path segment, always: "/", "?", "#", "%" and ".." can never change the request.
    return quote(value, safe="")


def _history_url(http: HttpTransport, conversation: str | None, page_size: int) -> str:
    """The URL of the first page of a conversation's (or a group's) messages.

    ``page_size`` raw messages to a page; with ``conversation`` None, the messages of every
    conversation of the subscriber (the inbox).
    """
    if conversation is None:
        return http.url_for("/api/fabric/messages", {"page_size": page_size})
    return http.url_for(
        f"/api/fabric/conversations/{_segment(conversation)}/messages", {"page_size": page_size}
    )


class _Flight:
    """One join under way; threads that need the same group wait for it instead of joining."""

    __slots__ = ("done", "error", "group_id")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.group_id: str | None = None
        self.error: BaseException | None = None


def _check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise InvalidArgumentTypeError("timeout must be a number or None")
    if not (math.isfinite(timeout) and timeout > 0):
        raise InvalidArgumentError("timeout must be finite and > 0")


def _check_checkpoint_key(key: object) -> None:
    if key is not None:
        from .checkpoints import check_key

        check_key(key)


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


#: A ``no_proxy`` entry that matches no host: it stops websocket-client from applying the
#: environment's ``no_proxy`` a second time (requests has already decided).
_NO_BYPASS = ["no-proxy-bypass.invalid"]


def _ws_proxy(proxy_url: str | None) -> dict[str, Any]:
    """websocket-client's connect options for the proxy requests chose (None: none at all)."""
    if proxy_url is None:
        return {"http_no_proxy": ["*"]}  # direct, whatever the environment says
    parts = urlsplit(proxy_url if "://" in proxy_url else "http://" + proxy_url)
    scheme = parts.scheme.lower()
    options: dict[str, Any] = {
        "http_proxy_host": parts.hostname,
        "http_proxy_port": parts.port
        or (443 if scheme == "https" else 1080 if scheme.startswith("socks") else 80),
        "proxy_type": scheme if scheme.startswith("socks") else "http",
        "http_no_proxy": _NO_BYPASS,
    }
    if parts.username is not None:
        options["http_proxy_auth"] = (unquote(parts.username), unquote(parts.password or ""))
    return options


def _sslopt(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The websocket's TLS options, from the verify / cert settings requests resolved."""
    opts: dict[str, Any] = {}
    verify = settings.get("verify")
    if verify is False:
        # The caller turned verification off for REST (session.verify = False): the
        # websocket to the same service follows it, rather than fail where REST works.
        opts["cert_reqs"] = ssl.CERT_NONE
        opts["check_hostname"] = False
    elif isinstance(verify, str):
        opts["ca_cert_path" if os.path.isdir(verify) else "ca_certs"] = verify
    cert = settings.get("cert")
    if isinstance(cert, str):
        opts["certfile"] = cert
    elif isinstance(cert, tuple) and len(cert) == 2:
        opts["certfile"], opts["keyfile"] = cert
    return opts or None


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

    With a token source (a callable) and no explicit URLs or ``host``, the source is first
    called when a URL is first needed (the first request), not in the constructor.

    Args:
        token: A Subscriber Access Token (a compact JWE, or a JWS), or a callable returning a
            fresh one (e.g. :class:`~signalwire_chat.SubscriberTokenSource`). With a callable,
            a 401 makes the client fetch a new token and retry the request once.
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
            client can send at once without opening a new connection each.
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
        self._credentials = Credentials(token)
        for name, value in (("host", host), ("rest_url", rest_url), ("relay_url", relay_url)):
            if value is not None and not isinstance(value, str):
                raise InvalidArgumentTypeError(
                    f"{name} must be a str or None, not {type(value).__name__}"
                )
        self._timeout = normalise_timeout(timeout)
        self._deadline = normalise_deadline(deadline)
        self._max_response_bytes = normalise_max_response_bytes(max_response_bytes)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int):
            raise InvalidArgumentTypeError("max_retries must be an int")
        if not 0 <= max_retries <= 20:
            raise InvalidArgumentError(f"max_retries must be between 0 and 20, got {max_retries}")
        if isinstance(max_connections, bool) or not isinstance(max_connections, int):
            raise InvalidArgumentTypeError("max_connections must be an int")
        if not 1 <= max_connections <= 1000:
            raise InvalidArgumentError(
                f"max_connections must be between 1 and 1000, got {max_connections}"
            )
        if session is not None and not isinstance(session, requests.Session):
            raise InvalidArgumentTypeError("session must be a requests.Session or None")
        if not isinstance(allow_insecure, bool):
            raise InvalidArgumentTypeError("allow_insecure must be a bool")
        dialect = _check_choice(dialect, "dialect", _DIALECTS) or ""
        if not dialect:
            raise InvalidArgumentError("dialect must be one of group, address; got None")
        if from_address_id is not None:
            from_address_id = _check_address_id(from_address_id, "from_address_id")
            if dialect == "address":
                raise InvalidArgumentError("from_address_id is for the group dialect only")
        if realtime is not None:
            from ._realtime import RealtimeOptions

            if not isinstance(realtime, RealtimeOptions):
                raise InvalidArgumentTypeError("realtime must be a RealtimeOptions or None")
        if on_state_change is not None and not callable(on_state_change):
            raise InvalidArgumentTypeError("on_state_change must be callable or None")
        if checkpoint_store is not None and not isinstance(checkpoint_store, (str, os.PathLike)):
            from .checkpoints import CheckpointStore

            if not isinstance(checkpoint_store, CheckpointStore):
                raise InvalidArgumentTypeError(
                    "checkpoint_store must be a CheckpointStore (load, save, close), a path, "
                    "or None"
                )
        # A store object is the caller's; a path (or the default) is opened on first use
        # and closed with the client.
        self._checkpoint_store = checkpoint_store
        self._owned_store: CheckpointStore | None = None
        # Loaded with the first client, not with the package (import time).
        from ._health import RestCounters, StateClock
        from ._hooks import HookRegistry, normalise_hooks
        from ._rtstats import RealtimeStats

        self._counters = RestCounters()
        self._hooks = HookRegistry(normalise_hooks(hooks), self._counters)
        self._state_clock = StateClock()
        self._realtime_stats = RealtimeStats(self._hooks)
        self._host = host
        self._rest_override = rest_url
        self._relay_override = relay_url
        self._allow_insecure = allow_insecure
        self._dialect = dialect
        # "My address" (group dialect): given, or fetched once under its lock.
        self._me: str | None = from_address_id
        self._me_lock = threading.Lock()
        # address id -> group id, and the joins under way (one per address at a time).
        self._groups: dict[str, str] = {}
        self._flights: dict[str, _Flight] = {}
        self._groups_lock = threading.Lock()
        self._session = session
        self._max_retries = max_retries
        self._max_connections = max_connections
        self._realtime_options = realtime  # the defaults are made with the hub
        self._on_state_change = on_state_change
        self._sleep = _sleep
        self._rng = _rng
        self._lock = threading.RLock()
        self._closed = False
        self._rest_url: str | None = None
        self._relay_url: str | None = None
        self._relay_error: ChatError | None = None
        self._transport: HttpTransport | None = None
        self._hub: RealtimeHub | None = None
        self._hub_pid = -1
        self._hub_finalizer: weakref.finalize[Any, ChatClient] | None = None
        # Check explicit URLs now; derive from a fixed token now (a source is called lazily).
        if rest_url is not None:
            self._rest_url = check_url(rest_url, kind="rest", allow_insecure=allow_insecure)
        if relay_url is not None:
            self._relay_url = check_url(relay_url, kind="relay", allow_insecure=allow_insecure)
        if not self._credentials.can_refresh or host is not None:
            self._derive_urls()

    # -- URLs and lazily made parts --

    def _derive_urls(self) -> None:
        if self._rest_url is not None and self._relay_url is not None:
            return
        header = None
        if self._host is None:
            header = read_token_header(self._credentials.token)
        try:
            rest, relay = derive_urls(
                header=header,
                host=self._host,
                rest_url=self._rest_url,
                relay_url=self._relay_url,
            )
        except TokenError as exc:
            # A token with an unreadable header is still usable for what was given explicitly.
            if self._rest_url is None:
                raise
            self._relay_error = exc
            return
        if self._rest_url is None:
            self._rest_url = check_url(rest, kind="rest", allow_insecure=self._allow_insecure)
        if self._relay_url is None:
            self._relay_url = check_url(relay, kind="relay", allow_insecure=self._allow_insecure)

    @property
    def rest_url(self) -> str:
        """The REST base URL in use (with a token source, resolving it may call the source)."""
        with self._lock:
            if self._rest_url is None:
                self._derive_urls()
            assert self._rest_url is not None
            return self._rest_url

    @property
    def relay_url(self) -> str:
        """The relay websocket URL in use.

        Raises:
            TokenError: It cannot be derived (unreadable token header, no host or relay_url).
        """
        with self._lock:
            if self._relay_url is None and self._relay_error is None:
                self._derive_urls()
            if self._relay_url is None:
                assert self._relay_error is not None
                raise self._relay_error
            return self._relay_url

    @property
    def dialect(self) -> str:
        """The wire dialect spoken: ``"group"`` or ``"address"``."""
        return self._dialect

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError("the client is closed")

    def _http(self) -> HttpTransport:
        transport = self._transport
        if transport is not None:
            return transport
        with self._lock:
            self._check_open()
            if self._transport is None:
                self._transport = HttpTransport(
                    base_url=self.rest_url,
                    credentials=self._credentials,
                    timeout=self._timeout,
                    deadline=self._deadline,
                    max_response_bytes=self._max_response_bytes,
                    max_retries=self._max_retries,
                    max_connections=self._max_connections,
                    session=self._session,
                    sleep=self._sleep,
                    rng=self._rng,
                    hooks=self._hooks,
                )
            return self._transport

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        self._check_open()
        http = self._http()
        return http.request("GET", http.url_for(path, params))

    def _page(self, path: str, params: Mapping[str, Any], cls: type[T]) -> Page[T]:
        self._check_open()
        http = self._http()
        fetcher: _Fetcher[T] = _Fetcher(http, lambda obj: structure(obj, cls))
        return fetcher.fetch(http.url_for(path, params))

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
        me = self._me
        if me is not None:
            return me
        with self._me_lock:  # one lookup, whatever the number of threads asking at once
            if self._me is None:
                addresses = self.get_subscriber_info().fabric_addresses
                if not addresses:
                    raise NoAddressError(
                        "the subscriber has no fabric address to send from; "
                        "pass from_address_id= to ChatClient"
                    )
                self._me = addresses[0].id
            return self._me

    def _require_group_dialect(self, what: str) -> None:
        if self._dialect != "group":
            raise InvalidArgumentError(f"{what} needs dialect='group' (this client speaks address)")

    def _check_not_me(self, address_id: str, me: str, what: str) -> None:
        if address_id == me:
            raise InvalidArgumentError(
                f"{what} your own address {address_id!r}: the group dialect has no conversation "
                "of one address (the service answers 422); use subscribe_inbox() or "
                "iter_inbox() for everything sent to you"
            )

    def _post_join(self, me: str, address_ids: list[str]) -> JoinResult:
        body = _dumps({"from_fabric_address_id": me, "fabric_address_ids": address_ids})
        self._check_open()
        http = self._http()
        url = http.base_url + "/api/fabric/conversations/join"
        # Joining is idempotent (the same set always gives the same group), so it is
        # retried like a GET.
        result = structure_join_result(http.request("POST", url, body, idempotent=True))
        if result.group_id is None:
            raise DecodeError("the join answer has no group_id", field="group_id")
        return result

    def _group_for(self, address_id: str) -> str:
        """The group of this client's address and ``address_id``: cached, else joined once."""
        group_id = self._groups.get(address_id)  # the steady state: no lock (dict reads are atomic)
        if group_id is not None:
            return group_id
        with self._groups_lock:
            group_id = self._groups.get(address_id)
            if group_id is not None:
                return group_id
            flight = self._flights.get(address_id)
            leader = flight is None
            if flight is None:
                flight = self._flights[address_id] = _Flight()
        if not leader:
            # Bounded by the leader's request, whose timeouts and retries are finite.
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            assert flight.group_id is not None
            return flight.group_id
        try:
            me = self.my_address_id()
            self._check_not_me(address_id, me, "cannot talk to")
            result = self._post_join(me, [address_id, me])
            assert result.group_id is not None
            flight.group_id = result.group_id
            with self._groups_lock:
                self._groups[address_id] = result.group_id
            return result.group_id
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._groups_lock:
                self._flights.pop(address_id, None)
            flight.done.set()

    def _forget_group(self, address_id: str, group_id: str) -> None:
        with self._groups_lock:
            if self._groups.get(address_id) == group_id:
                del self._groups[address_id]

    def _target(self, target: object, name: str = "address_id") -> str | Group:
        """Check a chat method's target (nothing is sent): an address id or a Group."""
        if isinstance(target, Group):
            self._require_group_dialect("a Group")
            _check_address_id(target.id, "group.id")
            if target.from_address_id is not None:
                _check_address_id(target.from_address_id, "group.from_address_id")
            return target
        if not isinstance(target, str):
            raise InvalidArgumentTypeError(
                f"{name} must be a str (an address id) or a Group, not {type(target).__name__}"
            )
        return _check_address_id(target, name)

    def _route(self, target: str | Group) -> Route:
        """Where a target's messages live (may look up my address and join its group)."""
        from ._realtime import Route

        if isinstance(target, Group):
            return Route.group(target.id)
        if self._dialect == "address":
            return Route.address(target)
        return Route.group(self._group_for(target), target)

    # -- chat --

    def join(self, address_id: str) -> JoinResult:
        """Join the conversation with ``address_id`` without sending a message.

        In the group dialect this joins (or creates) the group of this client's address and
        ``address_id``, always with a request, and caches it for the other chat methods.

        Args:
            address_id: The address to talk to.

        Returns:
            What the service answered: ``group_id`` (group dialect; also ``result.group``),
            the group's ``address_ids`` and ``from_address_id``.

        Raises:
            InvalidArgumentError: A bad ``address_id``, or your own address in the group
                dialect (nothing is sent).
            NoAddressError: The subscriber has no address to speak as.
            ClientClosedError: The client is closed.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        address_id = _check_address_id(address_id)
        if self._dialect == "address":
            body = _dumps({"conversation_id": address_id})
            self._check_open()
            http = self._http()
            url = http.base_url + "/api/fabric/conversations/join"
            return structure_join_result(http.request("POST", url, body))
        self._check_open()
        me = self.my_address_id()
        self._check_not_me(address_id, me, "cannot join")
        result = self._post_join(me, [address_id, me])
        assert result.group_id is not None
        with self._groups_lock:
            self._groups[address_id] = result.group_id
        return result

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
        self._require_group_dialect("join_group")
        if isinstance(address_ids, (str, bytes)) or not isinstance(address_ids, Iterable):
            raise InvalidArgumentTypeError("address_ids must be an iterable of address ids")
        ids: list[str] = []
        for index, address_id in enumerate(address_ids):
            address_id = _check_address_id(address_id, f"address_ids[{index}]")
            if address_id not in ids:
                ids.append(address_id)
        if not ids:
            raise InvalidArgumentError("address_ids must name at least one address")
        self._check_open()
        me = self.my_address_id()
        others = [address_id for address_id in ids if address_id != me]
        if not others:
            self._check_not_me(me, me, "cannot form a group of only")
        result = self._post_join(me, [*others, me])
        group = result.group
        assert group is not None
        if group.from_address_id is None:
            group = Group(id=group.id, address_ids=group.address_ids, from_address_id=me)
        return group

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
        target = self._target(address_id)
        page_size = _check_page_size(page_size)
        self._check_open()
        route = self._route(target)
        http = self._http()
        first = _history_url(http, route.value, raw_page_size(page_size))
        history = _ChatHistory(http, first, route.field, route.value, route.address_id)
        return ChatPage(history, 0, page_size)

    def iter_messages(
        self, address_id: Target, *, page_size: int = _HISTORY_PAGE_SIZE, limit: int | None = None
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
        target = self._target(address_id)
        page_size = _check_page_size(page_size)
        limit = _check_limit(limit)
        self._check_open()
        return self._iter_route(lambda: self._route(target), page_size, limit)

    def iter_inbox(
        self, *, page_size: int = _HISTORY_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate lazily over the chat messages of every conversation of the subscriber.

        Newest first, from ``GET /api/fabric/messages``, in either dialect.

        Args:
            page_size: Messages per request (1 to 1000).
            limit: Stop after this many chat messages (``None``: all of them).

        Raises:
            InvalidArgumentError: Bad arguments (raised at once, before iterating).
        """
        from ._realtime import Route

        page_size = _check_page_size(page_size)
        limit = _check_limit(limit)
        self._check_open()
        return self._iter_route(Route.inbox, page_size, limit)

    def _iter_route(
        self, route_of: Callable[[], Route], page_size: int, limit: int | None
    ) -> Iterator[ConversationChatMessage]:
        route: Route | None = None
        if limit != 0:
            route = route_of()  # on the first next(): an iterator requests nothing before
            http = self._http()
            first = _history_url(http, route.value, page_size)
            yield from iter_chat_messages(http, first, route.field, route.value, limit)

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
        target = self._target(address_id)
        text = _check_str(text, "text")
        extras: dict[str, Any] = {}
        if metadata is not None:
            extras["metadata"] = _check_json_object(metadata, "metadata")
        if details is not None:
            extras["details"] = _check_json_object(details, "details")
        self._check_open()
        if self._dialect == "address":
            assert isinstance(target, str)
            payload: dict[str, Any] = {"conversation_id": target, "text": text, **extras}
        else:
            if isinstance(target, Group):
                group_id, me = target.id, target.from_address_id or self.my_address_id()
            else:
                group_id, me = self._group_for(target), self.my_address_id()
            payload = {"group_id": group_id, "from_fabric_address_id": me, "text": text, **extras}
        body = _dumps(payload)
        http = self._http()
        try:
            return structure_send_result(
                http.request("POST", http.base_url + "/api/fabric/messages", body)
            )
        except NotFoundError:
            if isinstance(target, str) and self._dialect == "group":
                self._forget_group(target, payload["group_id"])  # joined anew next time
            raise

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
        return self._page("/api/fabric/conversations", {"page_size": page_size}, Conversation)

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
        params: dict[str, Any] = {
            "type": _check_choice(type, "type", _ADDRESS_TYPES),
            "display_name": None
            if display_name is None
            else _check_str(display_name, "display_name"),
            "sort_by": _check_choice(sort_by, "sort_by", _SORT_BY),
            "sort_order": _check_choice(sort_order, "sort_order", _SORT_ORDER),
            "page_size": _check_page_size(page_size),
        }
        return self._page("/api/fabric/addresses", params, Address)

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
            address_id = _check_address_id(id, "id")
            obj = self._get(f"/api/fabric/addresses/{_segment(address_id)}")
            if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
                obj = obj["data"]
            return structure(obj, Address)
        assert name is not None
        name = _check_str(name, "name")
        page = self._page("/api/fabric/addresses", {"name": name}, Address)
        for address in page.data:
            if address.name == name:
                return address
        raise NotFoundError(
            f"no address named {name!r}",
            status=404,
            method="GET",
            url=self.rest_url + "/api/fabric/addresses",
        )

    def get_subscriber_info(self) -> SubscriberInfo:
        """Who the token belongs to, with the subscriber's own addresses.

        Raises:
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        return structure(self._get("/api/fabric/subscriber/info"), SubscriberInfo)

    # -- realtime (thin delegates; the logic is in _realtime) --

    def _realtime_hub(self) -> RealtimeHub:
        with self._lock:
            self._check_open()
            pid = os.getpid()
            if self._hub is not None and self._hub_pid != pid:
                # After fork the parent's threads do not exist here and its socket must not be
                # touched: drop the hub without closing it and make a new one. Its
                # subscriptions stay behind: say so rather than drop them silently.
                lost = self._hub.forked_away
                self._hub = None
                if lost:
                    warnings.warn(
                        f"{lost} subscription(s) made before os.fork() do not deliver in this "
                        "child process; subscribe again here",
                        RuntimeWarning,
                        stacklevel=4,
                    )
            if self._hub is None:
                from ._realtime import RealtimeHub, RealtimeOptions, run_detached

                relay_url = self.relay_url
                options = self._realtime_options = self._realtime_options or RealtimeOptions()
                hub = RealtimeHub(
                    relay_url=relay_url,
                    credentials=self._credentials,
                    agent=USER_AGENT,
                    history=_weak_history(self),
                    options=options,
                    on_state_change=_state_watcher(self._state_clock, self._on_state_change),
                    sslopt=_sslopt(self._http().tls_settings()),
                    proxy=_ws_proxy(self._http().websocket_proxy(relay_url)),
                    drop_stale=self._dialect == "group",
                    interrupt=_weak_interrupt(self),
                    stats=self._realtime_stats,
                )
                if self._hub_finalizer is not None:
                    self._hub_finalizer.detach()
                # The hub holds the client only weakly, so a client nobody closed can be
                # collected; this then stops its threads.
                self._hub_finalizer = weakref.finalize(
                    self,
                    _collected_with_hub,
                    hub,
                    self._transport,
                    options.close_timeout,
                    pid,
                    run_detached,
                )
                self._hub_finalizer.atexit = False
                self._hub = hub
                self._hub_pid = pid
            return self._hub

    def _history(self, route: Route) -> Iterator[ConversationChatMessage]:
        """The history a subscription's gaps are filled from, newest first."""
        self._check_open()
        http = self._http()
        first = _history_url(http, route.value, _HISTORY_PAGE_SIZE)
        return iter_chat_messages(http, first, route.field, route.value, None)

    def _check_callbacks(self, **callbacks: object) -> None:
        for name, callback in callbacks.items():
            if callback is None and name != "on_message":
                continue
            if not callable(callback):
                qualifier = "" if name == "on_message" else " or None"
                raise InvalidArgumentTypeError(f"{name} must be callable{qualifier}")

    def _subscribe_route(self, target: str | Group) -> Route:
        """The route of a subscription target; refuses my own address in the group dialect."""
        if isinstance(target, str) and self._dialect == "group":
            self._check_not_me(target, self.my_address_id(), "cannot subscribe to")
        return self._route(target)

    def _subscribe_to(
        self,
        route: Route,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        on_update: Callable[[ConversationChatMessage], None] | None,
        checkpoint: str | None,
    ) -> Subscription:
        """Start a subscription of ``route`` (its arguments checked, the client open)."""
        return self._realtime_hub().subscribe(
            route,
            on_message,
            on_error,
            on_update=on_update,
            checkpoint=self._checkpointer(checkpoint, route),
        )

    def _checkpointer(self, key: str | None, route: Route) -> Checkpointer | None:
        """Load the checkpoint ``key`` of ``route`` (None without a key)."""
        if key is None:
            return None
        from ._realtime._checkpointing import Checkpointer

        return Checkpointer(self._checkpoints(), key, route)

    def _checkpoints(self) -> CheckpointStore:
        """The checkpoint store: the one given, or the sqlite file opened on first use."""
        given = self._checkpoint_store
        if given is not None and not isinstance(given, (str, os.PathLike)):
            return given
        with self._lock:
            self._check_open()
            if self._owned_store is None:
                from .checkpoints import SqliteCheckpointStore, default_checkpoint_path

                path = given if given is not None else default_checkpoint_path()
                self._owned_store = SqliteCheckpointStore(path)
                logger.info("checkpoints are kept in %s", self._owned_store.path)
            return self._owned_store

    def checkpoint_route(self, address_id: Target | None = None) -> str:
        """The ``Checkpoint.route`` a subscription to ``address_id`` (None: the inbox) saves.

        For a handler that saves its checkpoint itself, in its own transaction
        (``SqliteCheckpointStore.atomic``). In the group dialect this resolves the group.

        Raises:
            InvalidArgumentError: A bad ``address_id``.
            APIError: Resolving the group failed.
        """
        from ._realtime import Route
        from ._realtime._checkpointing import route_name

        self._check_open()
        if address_id is None:
            return route_name(Route.inbox())
        return route_name(self._subscribe_route(self._target(address_id)))

    def subscribe(
        self,
        address_id: Target,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: str | None = None,
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

        A subscription made by a re-run of a notebook cell replaces the one the cell's earlier
        run made to the same conversation, so re-running the cell does not deliver every
        message twice. The cell decides, never the callback's name: by its id where the front
        end sends one (JupyterLab, Notebook 7), else by its code (see the notebooks guide).

        The client is held only weakly by its realtime threads: a client that is dropped
        without :meth:`close` is closed when garbage-collected (with a ``ResourceWarning``).
        A callback that refers to the client (a closure, a bound method of an object that
        holds it) keeps it alive, and the subscription with it, until :meth:`close`.

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

        Returns:
            A handle: ``cancel()``, ``active``, and a context manager.

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
        target = self._target(address_id)
        self._check_callbacks(on_message=on_message, on_error=on_error, on_update=on_update)
        _check_checkpoint_key(checkpoint)
        self._check_open()
        return self._subscribe_to(
            self._subscribe_route(target), on_message, on_error, on_update, checkpoint
        )

    def subscribe_inbox(
        self,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: str | None = None,
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
                the last run under that key stopped, at-least-once across restarts.

        Raises:
            InvalidArgumentError: A callback that is not callable, or a bad ``checkpoint``.
            ClientClosedError: The client is closed.
            StoreError: The checkpoint could not be loaded; nothing was started.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited.
        """
        from ._realtime import Route

        self._check_callbacks(on_message=on_message, on_error=on_error, on_update=on_update)
        _check_checkpoint_key(checkpoint)
        self._check_open()
        return self._subscribe_to(Route.inbox(), on_message, on_error, on_update, checkpoint)

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
        target = self._target(address_id)
        _check_timeout(timeout)
        _check_checkpoint_key(checkpoint)
        self._check_open()
        route = self._subscribe_route(target)
        return self._realtime_hub().stream(
            route, timeout=timeout, checkpoint=self._checkpointer(checkpoint, route)
        )

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
        from ._realtime import Route

        _check_timeout(timeout)
        _check_checkpoint_key(checkpoint)
        self._check_open()
        route = Route.inbox()
        return self._realtime_hub().stream(
            route, timeout=timeout, checkpoint=self._checkpointer(checkpoint, route)
        )

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions (those of :meth:`stream_messages` included), oldest first."""
        hub = self._hub
        if self._closed or hub is None or self._hub_pid != os.getpid():
            return ()
        return hub.subscriptions

    @property
    def connection_state(self) -> ConnectionState:
        """The realtime connection's state (``IDLE`` before the first subscription)."""
        from ._state import ConnectionState

        if self._closed:
            return ConnectionState.CLOSED
        hub = self._hub
        if hub is None or self._hub_pid != os.getpid():
            return ConnectionState.IDLE
        return hub.state

    def health(self) -> ClientHealth:
        """A snapshot of what this client has done and where it stands.

        Cheap (it copies a few counters under a lock and sends nothing), so a web app's
        health endpoint may call it on every request. Works on a closed client too. The
        realtime package is not loaded by it: a web worker that never subscribes never
        loads it.

        Returns:
            A frozen :class:`~signalwire_chat.ClientHealth`.
        """
        from ._health import ClientHealth

        state = self.connection_state
        _, since, _ = self._state_clock.saw(state)
        stats = self._realtime_stats
        reason = stats.last_reason
        if stats.state is state and stats.since is not None:
            since = stats.since  # when the hub changed it (the clock: when it was told)
        elif state.value == "closed":
            reason = "closed by user"
        calls, failed, attempts, retries, failures, last, last_at = self._counters.snapshot()
        return ClientHealth(
            rest_calls=calls,
            rest_calls_failed=failed,
            rest_attempts=attempts,
            rest_retries=retries,
            rest_failures=failures,
            last_error=last,
            last_error_at=last_at,
            token_expires_at=stats.token_expires_at,
            connection_state=state,
            connection_state_since=since,
            connection_state_reason=reason,
            last_event_at=stats.last_event_at,
            messages_delivered=stats.delivered,
            messages_from_catch_up=stats.from_catch_up,
            duplicates_dropped=stats.duplicates,
            reconnects=stats.reconnects,
            reconnect_reasons=stats.reconnect_reasons(),
            queue_depth=stats.queue_depth(),
        )

    # -- lifecycle --

    def close(self) -> None:
        """Stop the realtime side and close the connection pool. Idempotent.

        A retry wait in progress in another thread is interrupted (it raises
        ``ClientClosedError``). A caller's ``session`` is left open.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            hub, self._hub = self._hub, None
            transport = self._transport
            if self._hub_finalizer is not None:
                self._hub_finalizer.detach()
        if hub is not None and self._hub_pid == os.getpid():
            try:
                options = self._realtime_options
                hub.close(options.close_timeout if options is not None else 2.0)
            except Exception:  # each cleanup runs even if another fails
                logger.warning("closing the realtime hub failed", exc_info=True)
        if transport is not None:
            try:
                transport.close()
            except Exception:
                logger.warning("closing the HTTP transport failed", exc_info=True)
        store, self._owned_store = self._owned_store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                logger.warning("closing the checkpoint store failed", exc_info=True)

    def __enter__(self) -> ChatClient:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        rest = self._rest_url or "<not resolved yet>"
        return f"<ChatClient {state} rest_url={rest!r}>"


def _state_watcher(
    clock: StateClock,
    user: Callable[[ConnectionState], None] | None,
) -> Callable[[ConnectionState], None]:
    """The hub's state listener: note the time, then call the user's callback.

    (The hooks hear of the change, with its reason, from the hub's ``RealtimeStats``.) It
    holds no reference to the client (the hub holds the client only weakly).
    """

    def changed(state: ConnectionState) -> None:
        # The hub calls this once per change, in order, on its dispatcher thread.
        clock.saw(state)
        if user is not None:
            user(state)

    return changed


def _weak_history(client: ChatClient) -> Callable[[Route], Iterator[ConversationChatMessage]]:
    """The client's history reader for backfills, holding the client only weakly."""
    method = weakref.WeakMethod(client._history)

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        bound = method()
        if bound is None:
            raise ClientClosedError("the client was garbage-collected")
        return bound(route)

    return history


def _weak_interrupt(client: ChatClient) -> Callable[[], None]:
    """What the hub's close() calls to cut off a stuck history read: the transport's close.

    The hub is closed only when the client is (or is collected), so its pool goes anyway.
    """
    ref = weakref.ref(client)

    def interrupt() -> None:
        owner = ref()
        transport = owner._transport if owner is not None else None
        if transport is not None:
            transport.close()

    return interrupt


def _collected_with_hub(
    hub: RealtimeHub,
    transport: HttpTransport | None,
    close_timeout: float,
    pid: int,
    run_detached: Callable[[Callable[[], None]], Any],
) -> None:
    """Finalizer of a ChatClient collected without close(): warn, then close in the background.

    It runs wherever the garbage collector ran (possibly on a realtime thread, or on a
    thread holding a lock the closing needs), so the closing and the joins happen on a
    short-lived thread of their own.
    """
    if os.getpid() != pid:
        return  # a forked child: the sockets are the parent's (a TLS close would be sent)
    if hub.running:
        warnings.warn(
            "ChatClient was not closed: it was garbage-collected with its realtime "
            "connection running; call close() or use it in a with block",
            ResourceWarning,
            stacklevel=2,
        )

    def close() -> None:
        hub.close(close_timeout)
        if transport is not None:
            transport.close()

    run_detached(close)
