"""The client's realtime half: its hub, made on first use (once per process), and what feeds it.

:class:`RealtimeSide` owns everything ``ChatClient`` needs for subscriptions and nothing it
needs for REST: the realtime options and state hook, the hub and its fork generation, the
finalizer that closes a hub whose client was dropped, the realtime counters and state clock
(for ``health()``), the checkpoint store, and the wiring of a subscription (its hub, its
checkpoint). Imported with the client, it loads nothing of the realtime package (nor
websocket-client) until the first subscription makes the hub.

The hub reads gaps, asks the service's time and cuts off stuck reads through the client's
:class:`~signalwire_chat._rest_side.RestSide`, and holds no reference to the client itself,
so a client nobody closed can be collected; the finalizer then stops the hub's threads in
the background.
"""

from __future__ import annotations

import logging
import os
import ssl
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from . import _fork
from ._route import Route

if TYPE_CHECKING:
    from ._health import ClientHealth, RestCounters, StateClock
    from ._hooks import HookRegistry
    from ._http import HttpTransport
    from ._realtime import RealtimeHub, RealtimeOptions, Subscription
    from ._realtime._checkpointing import Checkpointer
    from ._rest_side import RestSide
    from ._state import ConnectionState
    from .checkpoints import CheckpointHandler, CheckpointStore
    from .models import ConversationChatMessage

__all__ = ["RealtimeSide"]

logger = logging.getLogger(__name__)


class RealtimeSide:
    """The hub of one client (made on first use, again after a fork) and its settings.

    The hub and the store are made under the client's lock (``rest.lock``), and refused
    once the client is closed; the client calls :meth:`take_hub` under that lock as it
    closes, then :meth:`close` and :meth:`close_store` once.
    """

    def __init__(
        self,
        rest: RestSide,
        options: RealtimeOptions | None,
        on_state_change: Callable[[ConnectionState], None] | None,
        hooks: HookRegistry,
        checkpoint_store: CheckpointStore | str | os.PathLike[str] | None,
        *,
        drop_stale: bool,
        agent: str,
    ) -> None:
        # Loaded with the first client, not with the package (import time).
        from ._health import StateClock
        from ._rtstats import RealtimeStats

        self._rest = rest
        self._drop_stale = drop_stale  # group dialect: events of groups left are dropped
        self._agent = agent
        self.options = options  # the defaults are made with the hub
        self.on_state_change = on_state_change
        self.state_clock: StateClock = StateClock()
        self.stats = RealtimeStats(hooks)
        # A store object is the caller's; a path (or the default) is opened on first use
        # and closed with the client.
        self._given: CheckpointStore | None = None
        self._path: str | os.PathLike[str] | None = None
        if checkpoint_store is None or isinstance(checkpoint_store, (str, os.PathLike)):
            self._path = checkpoint_store
        else:
            self._given = checkpoint_store
        self._owned_store: CheckpointStore | None = None
        self._hub: RealtimeHub | None = None
        self._generation = -1  # the _fork generation the hub was made in
        self._finalizer: weakref.finalize[Any, object] | None = None

    def current(self) -> RealtimeHub | None:
        """The hub of this process, if one was made (never makes one)."""
        hub = self._hub
        return None if hub is None or _fork.forked_since(self._generation) else hub

    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions of this process's hub (none once the client is closed)."""
        hub = self.current()
        return () if self._rest.closed or hub is None else hub.subscriptions

    def state(self) -> ConnectionState:
        """The connection's state: ``CLOSED`` once the client is, ``IDLE`` before a hub."""
        from ._state import ConnectionState

        if self._rest.closed:
            return ConnectionState.CLOSED
        hub = self.current()
        return ConnectionState.IDLE if hub is None else hub.state

    def hub(self, owner: object) -> RealtimeHub:
        """The hub, made now if this process has none yet.

        ``owner`` is the client: when it is collected without ``close()``, the hub is
        closed in the background.

        Raises:
            ClientClosedError: The client is closed.
        """
        # What may call a token source (the URLs, the transport) is resolved first, never
        # under the client's lock: close() takes it, and must not wait for a token fetch.
        self._rest.transport()  # raises ClientClosedError once closed
        self._rest.endpoints.relay_url()
        with self._rest.lock:
            self._rest.check_open()
            made_in = _fork.generation()
            if self._hub is not None and self._generation != made_in:
                # After fork the parent's threads do not exist here and its socket must not
                # be touched: drop the hub without closing it and make a new one. Its
                # subscriptions stay behind: say so rather than drop them silently.
                lost = self._hub.forked_away
                self._hub = None
                if lost:
                    warnings.warn(
                        f"{lost} subscription(s) made before os.fork() do not deliver in this "
                        "child process; subscribe again here",
                        RuntimeWarning,
                        stacklevel=5,
                    )
            if self._hub is None:
                self._hub = self._make_hub(owner)
                self._generation = made_in
            return self._hub

    def _make_hub(self, owner: object) -> RealtimeHub:
        from ._realtime import RealtimeHub, RealtimeOptions, run_detached

        rest = self._rest
        relay_url = rest.endpoints.relay_url()
        http = rest.transport()
        options = self.options = self.options or RealtimeOptions()
        hub = RealtimeHub(
            relay_url=relay_url,
            credentials=rest.credentials,
            agent=self._agent,
            history=rest.history,
            server_time=rest.server_time_at,
            options=options,
            on_state_change=_state_watcher(self.state_clock, self.on_state_change),
            sslopt=_sslopt(http.tls_settings()),
            proxy=_ws_proxy(http.websocket_proxy(relay_url)),
            drop_stale=self._drop_stale,
            interrupt=rest.interrupt,
            stats=self.stats,
        )
        if self._finalizer is not None:
            self._finalizer.detach()
        # The hub holds no reference to the client, so a client nobody closed can be
        # collected; this then stops its threads.
        self._finalizer = weakref.finalize(
            owner,
            _collected_with_hub,
            hub,
            http,
            options.close_timeout,
            _fork.generation(),
            run_detached,
        )
        self._finalizer.atexit = False
        return hub

    def subscribe(
        self,
        owner: object,
        route: Route | None,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        on_update: Callable[[ConversationChatMessage], None] | None,
        checkpoint: str | CheckpointHandler | None,
    ) -> Subscription:
        """Start a subscription of ``route`` (None: the inbox), resuming ``checkpoint``.

        Its arguments are checked; the hub refuses once the client is closed.
        """
        hub = self.hub(owner)
        route = Route.inbox() if route is None else route
        return hub.subscribe(
            route,
            on_message,
            on_error,
            on_update=on_update,
            checkpoint=self.checkpointer(checkpoint, route),
        )

    def stream(
        self, owner: object, route: Route | None, timeout: float | None, checkpoint: str | None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over new messages of ``route`` (None: the inbox; its arguments checked)."""
        hub = self.hub(owner)
        route = Route.inbox() if route is None else route
        return hub.stream(route, timeout=timeout, checkpoint=self.checkpointer(checkpoint, route))

    def route_name(self, route: Route | None) -> str:
        """The ``Checkpoint.route`` a subscription of ``route`` (None: the inbox) saves."""
        from ._realtime._checkpointing import route_name

        return route_name(Route.inbox() if route is None else route)

    def checkpointer(
        self, key: str | CheckpointHandler | None, route: Route
    ) -> Checkpointer | None:
        """Load the checkpoint ``key`` of ``route`` from the store (None without a key).

        A :class:`~signalwire_chat.checkpoints.CheckpointHandler` instead of a key keeps its
        checkpoints itself: it is loaded, and advanced, through its own methods.
        """
        if key is None:
            return None
        if not isinstance(key, str):
            from ._realtime._checkpointing import HandlerCheckpointer

            return HandlerCheckpointer(key, route)
        from ._realtime._checkpointing import Checkpointer

        return Checkpointer(self.checkpoints(), key, route)

    def checkpoints(self) -> CheckpointStore:
        """The checkpoint store: the one given, or the sqlite file opened on first use.

        Raises:
            ClientClosedError: The client is closed (and the store is not the caller's).
        """
        if self._given is not None:
            return self._given
        with self._rest.lock:
            self._rest.check_open()
            if self._owned_store is None:
                from .checkpoints import SqliteCheckpointStore, default_checkpoint_path

                path = self._path if self._path is not None else default_checkpoint_path()
                self._owned_store = SqliteCheckpointStore(path)
                logger.info("checkpoints are kept in %s", self._owned_store.path)
            return self._owned_store

    def health(self, counters: RestCounters, state: ConnectionState) -> ClientHealth:
        """A snapshot of the REST counters and the realtime side in ``state``."""
        from ._health import ClientHealth

        _, since, _ = self.state_clock.saw(state)
        stats = self.stats
        reason = stats.last_reason
        if stats.state is state and stats.since is not None:
            since = stats.since  # when the hub changed it (the clock: when it was told)
        elif state.value == "closed":
            reason = "closed by user"
        calls, failed, attempts, retries, failures, last, last_at = counters.snapshot()
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

    def take_hub(self) -> RealtimeHub | None:
        """Detach the hub for closing (under the client's lock); None if there is none here."""
        hub, self._hub = self._hub, None
        if self._finalizer is not None:
            self._finalizer.detach()
        return None if hub is None or _fork.forked_since(self._generation) else hub

    def close(self, hub: RealtimeHub | None) -> None:
        """Close ``hub`` (from :meth:`take_hub`); the store goes with :meth:`close_store`."""
        if hub is not None:
            try:
                options = self.options
                hub.close(options.close_timeout if options is not None else 2.0)
            except Exception:  # each cleanup runs even if another fails
                logger.warning("closing the realtime hub failed", exc_info=True)

    def close_store(self) -> None:
        """Close the checkpoint store this side opened (a caller's is left open)."""
        store, self._owned_store = self._owned_store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                logger.warning("closing the checkpoint store failed", exc_info=True)


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


def _collected_with_hub(
    hub: RealtimeHub,
    transport: HttpTransport | None,
    close_timeout: float,
    made_in: int,
    run_detached: Callable[[Callable[[], None]], Any],
) -> None:
    """Finalizer of a ChatClient collected without close(): warn, then close in the background.

    It runs wherever the garbage collector ran (possibly on a realtime thread, or on a
    thread holding a lock the closing needs), so the closing and the joins happen on a
    short-lived thread of their own.
    """
    if _fork.forked_since(made_in):
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
