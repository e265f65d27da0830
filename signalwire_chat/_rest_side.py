"""The client's REST half: its transport, made on first use, and the reads built on it.

:class:`RestSide` owns what ``ChatClient`` needs to speak REST: the credentials, the
endpoints, the checked :class:`~signalwire_chat._config.RestOptions`, the hooks, and the
:class:`~signalwire_chat._http.HttpTransport` made with the first request. It also holds the
one flag that says the client is closed, under the one lock the client and its realtime
side share, so every part refuses work after :meth:`ChatClient.close` in the same way.

The realtime hub reads gaps from the history, asks the service's time and cuts off a stuck
read through this object, never through the client: the hub holds no reference to the
client, so a client nobody closed can still be collected (its finalizer then stops the hub).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from . import _fork
from ._convert import structure
from ._dialects import history_url, segment
from ._http import HttpTransport
from ._pages import Page, _Fetcher, iter_chat_messages
from ._route import Route
from .errors import ClientClosedError, NotFoundError
from .models import Address

if TYPE_CHECKING:
    from ._auth import Credentials
    from ._config import RestOptions
    from ._hooks import HookRegistry
    from .models import ConversationChatMessage

__all__ = ["HISTORY_PAGE_SIZE", "RestSide"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Messages per request when reading a whole history (iterating, filling a gap).
HISTORY_PAGE_SIZE = 100


class RestSide:
    """The transport of one client (made on first use) and the client's open/closed state.

    ``urls`` are the client's ``host``, ``rest_url`` and ``relay_url`` (each may be None).
    ``lock`` is the client's: it guards :attr:`closed`, the transport's making here, and the
    realtime hub's making in the realtime side.
    """

    def __init__(
        self,
        credentials: Credentials,
        options: RestOptions,
        hooks: HookRegistry,
        *,
        urls: tuple[str | None, str | None, str | None],
        sleep: Callable[[float], None] | None,
        rng: random.Random | None,
    ) -> None:
        from ._config import Endpoints

        host, rest_url, relay_url = urls
        self.credentials = credentials
        # Explicit URLs are checked now; derived from a fixed token now, from a source lazily.
        self.endpoints = Endpoints(
            credentials,
            host=host,
            rest_url=rest_url,
            relay_url=relay_url,
            allow_insecure=options.allow_insecure,
        )
        self.lock = threading.RLock()
        #: Set (under :attr:`lock`) by the client's close(); every later request refuses.
        self.closed = False
        self._options = options
        self._hooks = hooks
        self._sleep = sleep
        self._rng = rng
        self._transport: HttpTransport | None = None
        _fork.renew_in_child(self)

    def _renew_after_fork(self) -> None:
        """In a forked child: the lock held across a token fetch under way at the fork is freed."""
        self.lock = threading.RLock()

    def check_open(self) -> None:
        """Raise ``ClientClosedError`` once the client is closed."""
        if self.closed:
            raise ClientClosedError("the client is closed")

    def transport(self) -> HttpTransport:
        """The transport, for a request about to be sent (made on first use).

        Raises:
            ClientClosedError: The client is closed.
        """
        transport = self._transport
        if transport is not None and not self.closed:
            return transport
        self.check_open()
        # Resolved before the client's lock is taken: with a token source and no rest_url,
        # it calls the source (a request of its own), and close() takes that lock.
        base_url = self.endpoints.rest_url()
        with self.lock:
            self.check_open()
            if self._transport is None:
                options = self._options
                self._transport = HttpTransport(
                    base_url=base_url,
                    credentials=self.credentials,
                    timeout=options.timeout,
                    deadline=options.deadline,
                    max_response_bytes=options.max_response_bytes,
                    max_retries=options.max_retries,
                    max_connections=options.max_connections,
                    session=options.session,
                    sleep=self._sleep,
                    rng=self._rng,
                    hooks=self._hooks,
                )
            return self._transport

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """The decoded JSON answer of ``GET path?params``."""
        http = self.transport()
        return http.request("GET", http.url_for(path, params))

    def page(self, path: str, params: Mapping[str, Any], cls: type[T]) -> Page[T]:
        """The first page of a listing, its items structured as ``cls``."""
        http = self.transport()
        fetcher: _Fetcher[T] = _Fetcher(http, lambda obj: structure(obj, cls))
        return fetcher.fetch(http.url_for(path, params))

    def address_by_id(self, address_id: str) -> Address:
        """The address ``address_id`` (a bare object or one wrapped in ``data``)."""
        obj = self.get(f"/api/fabric/addresses/{segment(address_id)}")
        if isinstance(obj, dict) and isinstance(obj.get("data"), dict):
            obj = obj["data"]
        return structure(obj, Address)

    def address_by_name(self, name: str) -> Address:
        """The address named exactly ``name`` (the service's filter may match more loosely)."""
        for address in self.page("/api/fabric/addresses", {"name": name}, Address).data:
            if address.name == name:
                return address
        raise NotFoundError(
            f"no address named {name!r}",
            status=404,
            method="GET",
            url=self.endpoints.rest_url() + "/api/fabric/addresses",
        )

    def messages(
        self, route: Route, page_size: int, limit: int | None
    ) -> Iterator[ConversationChatMessage]:
        """The chat messages of ``route``'s history, newest first (lazily, page by page)."""
        http = self.transport()
        first = history_url(http, route.value, page_size)
        return iter_chat_messages(http, first, route, limit)

    def lazy_messages(
        self, route_of: Callable[[], Route] | None, page_size: int, limit: int | None
    ) -> Iterator[ConversationChatMessage]:
        """Like :meth:`messages`, the route resolved (None: the inbox) at the first ``next()``.

        An iterator requests nothing before its first item is asked for.
        """
        if limit != 0:
            if route_of is None:
                route_of = Route.inbox
            yield from self.messages(route_of(), page_size, limit)

    def history(self, route: Route) -> Iterator[ConversationChatMessage]:
        """The whole history a subscription's gaps are filled from, newest first."""
        return self.messages(route, HISTORY_PAGE_SIZE, None)

    def server_time_at(self, moment: float) -> float | None:
        """The service's time at a monotonic ``moment``, from its answers (None: unknown)."""
        transport = self._transport
        return transport.server_time_at(moment) if transport is not None else None

    def interrupt(self) -> None:
        """Cut off a stuck read by closing the transport (only ever as the client closes)."""
        transport = self._transport
        if transport is not None:
            transport.close()

    def close(self) -> None:
        """Close the connection pool (after :attr:`closed` was set); a caller's session stays."""
        transport = self._transport
        if transport is not None:
            try:
                transport.close()
            except Exception:
                logger.warning("closing the HTTP transport failed", exc_info=True)
