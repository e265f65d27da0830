"""ChatClient: the blocking facade over REST and realtime, a context manager returning models."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

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
    InvalidArgumentError,
    InvalidArgumentTypeError,
    NotFoundError,
    TokenError,
)
from .models import (
    Address,
    Conversation,
    ConversationChatMessage,
    JoinResult,
    SendResult,
    SubscriberInfo,
)

if TYPE_CHECKING:
    # The realtime side (and websocket-client under it) is imported on first use, so a
    # process that only calls REST, such as a web worker, never pays for loading it.
    from ._realtime import ConnectionState, RealtimeHub, RealtimeOptions, Subscription

__all__ = ["ChatClient"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_ADDRESS_TYPES = ("app", "call", "room", "subscriber")
_SORT_BY = ("name", "created_at")
_SORT_ORDER = ("asc", "desc")
_HISTORY_PAGE_SIZE = 100


def _segment(value: str) -> str:
    # One path segment, always: "/", "?", "#", "%" and ".." can never change the request.
    return quote(value, safe="")


def _history_url(http: HttpTransport, address_id: str, page_size: int) -> str:
    """The first page of a conversation's messages, ``page_size`` raw messages to a page."""
    return http.url_for(
        f"/api/fabric/conversations/{_segment(address_id)}/messages", {"page_size": page_size}
    )


def _dumps(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _sslopt(settings: Mapping[str, Any]) -> dict[str, Any] | None:
    """The websocket's TLS options, from the CA bundle and client cert requests resolved."""
    opts: dict[str, Any] = {}
    verify = settings.get("verify")
    if isinstance(verify, str):
        opts["ca_cert_path" if os.path.isdir(verify) else "ca_certs"] = verify
    cert = settings.get("cert")
    if isinstance(cert, str):
        opts["certfile"] = cert
    elif isinstance(cert, tuple) and len(cert) == 2:
        opts["certfile"], opts["keyfile"] = cert
    return opts or None


class ChatClient:
    """A blocking client for the chat namespace of SignalWire's Call Fabric.

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
        realtime: Tuning of the realtime connection.
        on_state_change: Called with each new :class:`ConnectionState` of the realtime side.

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
        realtime: RealtimeOptions | None = None,
        on_state_change: Callable[[ConnectionState], None] | None = None,
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
        if realtime is not None:
            from ._realtime import RealtimeOptions

            if not isinstance(realtime, RealtimeOptions):
                raise InvalidArgumentTypeError("realtime must be a RealtimeOptions or None")
        if on_state_change is not None and not callable(on_state_change):
            raise InvalidArgumentTypeError("on_state_change must be callable or None")
        self._host = host
        self._rest_override = rest_url
        self._relay_override = relay_url
        self._allow_insecure = allow_insecure
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

    # -- chat --

    def get_messages(self, address_id: str, *, page_size: int = 10) -> ChatPage:
        """The newest chat messages exchanged with ``address_id``, one page of ``page_size``.

        Only chat messages (``subtype == "chat"``) of that conversation are kept, gathered
        across raw pages as needed. ``next_page()`` walks back in time; ``prev_page()`` is its
        exact inverse.

        Args:
            address_id: The address of the conversation.
            page_size: Chat messages per page, 1 to 1000.

        Returns:
            The first (newest) chat page.

        Raises:
            InvalidArgumentError: A bad ``address_id`` or ``page_size`` (nothing is sent).
            ClientClosedError: The client is closed.
            APIError: The service refused (e.g. PermissionDeniedError for a non-member).
            TransportError: The request failed at the network level.
        """
        address_id = _check_address_id(address_id)
        page_size = _check_page_size(page_size)
        self._check_open()
        http = self._http()
        first = _history_url(http, address_id, raw_page_size(page_size))
        return ChatPage(_ChatHistory(http, address_id, first), 0, page_size)

    def iter_messages(
        self, address_id: str, *, page_size: int = _HISTORY_PAGE_SIZE, limit: int | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate lazily over the whole chat history of ``address_id``, newest first.

        Args:
            address_id: The address of the conversation.
            page_size: Messages per request (1 to 1000); it does not change what is yielded.
            limit: Stop after this many chat messages (``None``: all of them).

        Returns:
            An iterator; nothing is requested before its first item is asked for.

        Raises:
            InvalidArgumentError: Bad arguments (raised at once, before iterating).
        """
        address_id = _check_address_id(address_id)
        page_size = _check_page_size(page_size)
        limit = _check_limit(limit)
        self._check_open()
        http = self._http()
        first = _history_url(http, address_id, page_size)
        return iter_chat_messages(http, address_id, first, limit)

    def send_message(
        self,
        address_id: str,
        text: str,
        *,
        metadata: Mapping[str, Any] | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> SendResult:
        """Send a chat message to ``address_id`` (joining its conversation if needed).

        Args:
            address_id: The address to send to.
            text: The message text (not empty).
            metadata: A JSON object sent along with the message (omitted when ``None``).
            details: A JSON object of extra event details (omitted when ``None``).

        Returns:
            What the service answered.

        Raises:
            InvalidArgumentError: Bad arguments (nothing is sent).
            ClientClosedError: The client is closed.
            APIError: The service refused (e.g. ValidationError).
            TransportError: The request failed at the network level.
        """
        address_id = _check_address_id(address_id)
        text = _check_str(text, "text")
        payload: dict[str, Any] = {"conversation_id": address_id, "text": text}
        if metadata is not None:
            payload["metadata"] = _check_json_object(metadata, "metadata")
        if details is not None:
            payload["details"] = _check_json_object(details, "details")
        body = _dumps(payload)
        self._check_open()
        http = self._http()
        return structure_send_result(
            http.request("POST", http.base_url + "/api/fabric/messages", body)
        )

    def join(self, address_id: str) -> JoinResult:
        """Join the conversation of ``address_id`` without sending a message.

        Args:
            address_id: The address whose conversation to join.

        Returns:
            What the service answered.

        Raises:
            InvalidArgumentError: A bad ``address_id`` (nothing is sent).
            ClientClosedError: The client is closed.
            APIError: The service refused.
            TransportError: The request failed at the network level.
        """
        address_id = _check_address_id(address_id)
        body = _dumps({"conversation_id": address_id})
        self._check_open()
        http = self._http()
        url = http.base_url + "/api/fabric/conversations/join"
        return structure_join_result(http.request("POST", url, body))

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
                # touched: drop the hub without closing it and make a new one.
                self._hub = None
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
                    on_state_change=self._on_state_change,
                    sslopt=_sslopt(self._http().tls_settings()),
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

    def _history(self, address_id: str) -> Iterator[ConversationChatMessage]:
        return self.iter_messages(address_id, page_size=_HISTORY_PAGE_SIZE)

    def subscribe(
        self,
        address_id: str,
        on_message: Callable[[ConversationChatMessage], None],
        *,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Subscription:
        """Call ``on_message`` with every new chat message of ``address_id``.

        Every chat message of the address created after this returns is delivered exactly
        once, in order. The realtime connection starts with the first subscription, and this
        call waits until it is established (at most ``RealtimeOptions.connect_timeout``
        seconds). If that time passes (e.g. the network is down) the subscription is still
        returned, active: once connected, the messages created meanwhile are fetched from the
        history (anchored at the time of this call on this machine's clock, with a small
        tolerance). Called from inside a callback, it does not wait. Subscriptions survive
        reconnects; messages missed while disconnected are fetched from the history.

        A callback defined in a notebook cell (Jupyter, IPython) replaces a live subscription
        to the same address whose callback has the same name and was also defined in a
        cell, so re-running the cell does not deliver every message twice.

        The client is held only weakly by its realtime threads: a client that is dropped
        without :meth:`close` is closed when garbage-collected (with a ``ResourceWarning``).
        A callback that refers to the client (a closure, a bound method of an object that
        holds it) keeps it alive, and the subscription with it, until :meth:`close`.

        Args:
            address_id: The address of the conversation.
            on_message: Called on the dispatcher thread with each chat message.
            on_error: Called with errors of this subscription (a raising callback, a gap).

        Returns:
            A handle: ``cancel()``, ``active``, and a context manager.

        Raises:
            InvalidArgumentError: A bad ``address_id`` or a callback that is not callable.
            ClientClosedError: The client is closed.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited (the subscription is not left active).
        """
        address_id = _check_address_id(address_id)
        if not callable(on_message):
            raise InvalidArgumentTypeError("on_message must be callable")
        if on_error is not None and not callable(on_error):
            raise InvalidArgumentTypeError("on_error must be callable or None")
        return self._realtime_hub().subscribe(address_id, on_message, on_error)

    def stream_messages(
        self, address_id: str, *, timeout: float | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over new chat messages of ``address_id`` as they arrive.

        Like :meth:`subscribe`, this waits for the connection (at most ``connect_timeout``),
        and every chat message created after it returns is yielded.

        Args:
            address_id: The address of the conversation.
            timeout: Stop after this many seconds without a message (``None``: never).

        Raises:
            InvalidArgumentError: A bad ``address_id`` or ``timeout``.
            ClientClosedError: The client is closed.
            RealtimeAuthenticationError: The relay refused the credentials while this call
                waited.
        """
        address_id = _check_address_id(address_id)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise InvalidArgumentTypeError("timeout must be a number or None")
            if not (math.isfinite(timeout) and timeout > 0):
                raise InvalidArgumentError("timeout must be finite and > 0")
        return self._realtime_hub().stream(address_id, timeout=timeout)

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
        from ._realtime import ConnectionState

        if self._closed:
            return ConnectionState.CLOSED
        hub = self._hub
        if hub is None or self._hub_pid != os.getpid():
            return ConnectionState.IDLE
        return hub.state

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

    def __enter__(self) -> ChatClient:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        rest = self._rest_url or "<not resolved yet>"
        return f"<ChatClient {state} rest_url={rest!r}>"


def _weak_history(client: ChatClient) -> Callable[[str], Iterator[ConversationChatMessage]]:
    """The client's history reader for backfills, holding the client only weakly."""
    method = weakref.WeakMethod(client._history)

    def history(address_id: str) -> Iterator[ConversationChatMessage]:
        bound = method()
        if bound is None:
            raise ClientClosedError("the client was garbage-collected")
        return bound(address_id)

    return history


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
