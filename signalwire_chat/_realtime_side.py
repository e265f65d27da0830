"""The client's realtime half: its hub, made on first use (once per process), and what feeds it.

:class:`RealtimeSide` owns everything ``ChatClient`` needs for subscriptions and nothing it
needs for REST: the realtime options and state hook, the hub and its fork generation, the
finalizer that closes a hub whose client was dropped, the realtime counters and state clock
(for ``health()``), and the checkpoint store. Imported with the client, it loads nothing of
the realtime package (nor websocket-client) until the first subscription makes the hub.

The hub holds the client only weakly (its history reader, the service's time and the
interrupt of stuck reads go through weak references), so a client nobody closed can be
collected; the finalizer then stops the hub's threads in the background.
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
from .errors import ClientClosedError

if TYPE_CHECKING:
    from ._client import ChatClient
    from ._health import ClientHealth, RestCounters, StateClock
    from ._hooks import HookRegistry
    from ._http import HttpTransport
    from ._realtime import RealtimeHub, RealtimeOptions, Route
    from ._realtime._checkpointing import Checkpointer
    from ._state import ConnectionState
    from .checkpoints import CheckpointStore
    from .models import ConversationChatMessage

__all__ = ["RealtimeSide"]

logger = logging.getLogger(__name__)


class RealtimeSide:
    """The hub of one client (made on first use, again after a fork) and its settings.

    The client calls :meth:`hub` and :meth:`checkpoints` under its own lock and
    :meth:`close` once, after marking itself closed.
    """

    def __init__(
        self,
        options: RealtimeOptions | None,
        on_state_change: Callable[[ConnectionState], None] | None,
        hooks: HookRegistry,
        checkpoint_store: CheckpointStore | str | os.PathLike[str] | None,
    ) -> None:
        # Loaded with the first client, not with the package (import time).
        from ._health import StateClock
        from ._rtstats import RealtimeStats

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
        self._finalizer: weakref.finalize[Any, ChatClient] | None = None

    def current(self) -> RealtimeHub | None:
        """The hub of this process, if one was made (never makes one)."""
        hub = self._hub
        return None if hub is None or _fork.forked_since(self._generation) else hub

    def hub(self, client: ChatClient, *, drop_stale: bool, agent: str) -> RealtimeHub:
        """The hub, made now if this process has none yet (under the client's lock)."""
        made_in = _fork.generation()
        if self._hub is not None and self._generation != made_in:
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
                    stacklevel=5,
                )
        if self._hub is None:
            self._hub = self._make_hub(client, drop_stale=drop_stale, agent=agent)
            self._generation = made_in
        return self._hub

    def _make_hub(self, client: ChatClient, *, drop_stale: bool, agent: str) -> RealtimeHub:
        from ._realtime import RealtimeHub, RealtimeOptions, run_detached

        relay_url = client.relay_url
        http = client._http()
        options = self.options = self.options or RealtimeOptions()
        hub = RealtimeHub(
            relay_url=relay_url,
            credentials=client._credentials,
            agent=agent,
            history=_weak_history(client),
            server_time=_weak_server_time(client),
            options=options,
            on_state_change=_state_watcher(self.state_clock, self.on_state_change),
            sslopt=_sslopt(http.tls_settings()),
            proxy=_ws_proxy(http.websocket_proxy(relay_url)),
            drop_stale=drop_stale,
            interrupt=_weak_interrupt(client),
            stats=self.stats,
        )
        if self._finalizer is not None:
            self._finalizer.detach()
        # The hub holds the client only weakly, so a client nobody closed can be
        # collected; this then stops its threads.
        self._finalizer = weakref.finalize(
            client,
            _collected_with_hub,
            hub,
            http,
            options.close_timeout,
            _fork.generation(),
            run_detached,
        )
        self._finalizer.atexit = False
        return hub

    def checkpoints(self) -> CheckpointStore:
        """The checkpoint store: the one given, or the sqlite file opened on first use."""
        if self._given is not None:
            return self._given
        if self._owned_store is None:
            from .checkpoints import SqliteCheckpointStore, default_checkpoint_path

            path = self._path if self._path is not None else default_checkpoint_path()
            self._owned_store = SqliteCheckpointStore(path)
            logger.info("checkpoints are kept in %s", self._owned_store.path)
        return self._owned_store

    def given_store(self) -> bool:
        """Whether the store is an object of the caller's (no lock needed to reach it)."""
        return self._given is not None

    def checkpointer(self, store: CheckpointStore, key: str, route: Route) -> Checkpointer:
        """Load the checkpoint ``key`` of ``route`` from ``store``."""
        from ._realtime._checkpointing import Checkpointer

        return Checkpointer(store, key, route)

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


def _weak_history(client: ChatClient) -> Callable[[Route], Iterator[ConversationChatMessage]]:
    """The client's history reader for backfills, holding the client only weakly."""
    method = weakref.WeakMethod(client._history)

    def history(route: Route) -> Iterator[ConversationChatMessage]:
        bound = method()
        if bound is None:
            raise ClientClosedError("the client was garbage-collected")
        return bound(route)

    return history


def _weak_server_time(client: ChatClient) -> Callable[[float], float | None]:
    """The service's time at a monotonic moment, as the client's REST answers state it."""
    ref = weakref.ref(client)

    def server_time(moment: float) -> float | None:
        owner = ref()
        transport = owner._transport if owner is not None else None
        return transport.server_time_at(moment) if transport is not None else None

    return server_time


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
