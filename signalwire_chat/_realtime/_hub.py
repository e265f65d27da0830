"""RealtimeHub: every subscription of a client over one websocket, and the threads behind it.

A *run* is the life of the connection between the first subscription and the last
cancel (or ``close()``): three threads, all named ``signalwire-chat-*`` and daemonic,
with one owner, the hub:

* the connection thread (``_connection``) owns the socket and speaks the protocol;
* the dispatcher thread (``_dispatcher``) runs every user callback in arrival order,
  and the backfills after a reconnect;
* the watchdog thread reports callbacks that run for too long.

Flow control, memory bounded without dropping anything: between the connection
and the dispatcher sits a queue of at most ``RealtimeOptions.queue_size`` messages.
The connection acknowledges an event of a subscribed conversation only once the
message is in that queue. When the queue is full, further such events are kept,
unacknowledged, in a "held" list; the relay sends at most a window of
unacknowledged events per session (100 on SignalWire's relay and in the emulator),
so the flow stops there. The connection meanwhile keeps reading: it answers pings,
acknowledges events of other conversations and of other types at once, and
follows control messages. When the dispatcher has drained the queue to half its
bound it wakes the connection (a pipe, no polling), which moves held messages into
the queue and acknowledges them, and the relay resumes. Memory is thus bounded by
``queue_size`` plus the relay's window. Should a relay ignore the window, the
connection stops reading the socket once ``max(queue_size, 1000)`` messages are
held (TCP then pushes back), and resumes when there is room.

No gaps, no duplicates: each subscription remembers its last delivered message and
a bounded set of recent ids. After every reconnect (resumed or not) a backfill task
per subscription is queued behind the messages already received: it reads the
history, newest first, back to the last delivered message, and delivers what is
missing oldest first. Live messages that arrive meanwhile wait behind it, and those
the backfill delivered are dropped as duplicates.

Nothing lost after ``subscribe()`` returns: when the hub is not connected,
``subscribe()`` waits (at most ``connect_timeout``) until the relay has accepted
``signalwire.connect``; the subscription is in the routing table before that, so
every event of a message created after it returns is routed to it. A refusal of
the credentials is raised from ``subscribe()``. Should the wait time out (or
should ``subscribe()`` run on one of the hub's own threads, where it never waits),
the subscription is marked for a backfill on the first connect. Every catch-up
read is anchored on ids, never on clocks: it stops at the last delivered id, or,
before any delivery, at the newest id of the history read when ``subscribe()``
ran (or at a checkpoint's message id), so no client or server clock step can lose
or resurrect a message (only when that read failed does the service's own time,
never this machine's, bound the read); a 403
or 404 on the first connect's read means not a member, and is only logged at DEBUG.

Notebook cells: a subscription made by a re-run of a notebook cell replaces the
one the earlier run of that cell made on the same address (keyed on the cell's
id, or without one on its code; see ``_interactive``), so a re-run cell does not
deliver everything twice.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from .. import _fork
from .._route import Route
from .._rtstats import RealtimeStats
from .._threads import on_library_thread, start_thread
from .._validate import check_address_id as _check_address
from .._validate import check_callable
from ..errors import (
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RealtimeAuthenticationError,
    RealtimeConnectError,
    RealtimeError,
)
from ._connection import Connection
from ._dispatcher import Dispatcher, Watchdog
from ._options import ConnectionState, RealtimeOptions
from ._routes import Routes
from ._subscriptions import Anchor, ServerTime, Subscription

if TYPE_CHECKING:
    from ..models import ConversationChatMessage
    from ._checkpointing import Checkpointer

__all__ = [
    "RealtimeHub",
    "Route",
    "Subscription",
    "on_realtime_thread",
    "run_detached",
]

logger = logging.getLogger(__name__)


def on_realtime_thread() -> bool:
    """Whether the calling thread is one of the library's (a hub's, for one): never wait there."""
    return on_library_thread()


def run_detached(fn: Callable[[], None], name: str = "signalwire-chat-closer") -> None:
    """Run ``fn`` on a short-lived thread of its own; for finalizers.

    A finalizer runs wherever the garbage collector happens to run, possibly on a
    thread that holds one of our locks (or a stream's), so it must neither block
    nor take a lock: the closing happens on this thread instead. Failures are logged.
    """

    def body() -> None:
        try:
            fn()
        except Exception:
            logger.warning("realtime: closing after garbage collection failed", exc_info=True)

    try:
        start_thread(body, name)
    except RuntimeError:  # interpreter shutdown: the daemon threads die with it anyway
        return


if TYPE_CHECKING:  # a type for the checker only: no class to build at import

    class CredentialsLike(Protocol):
        """What the hub needs of ``signalwire_chat._auth.Credentials``."""

        @property
        def token(self) -> str:
            """The current token."""

        @property
        def can_refresh(self) -> bool:
            """Whether :meth:`refresh` can give a fresh token."""

        def refresh(self, stale: str | None = None) -> str:
            """Return a fresh token (raises ``AuthenticationError``)."""

        @property
        def secrets(self) -> tuple[str, ...]:
            """What to redact from anything the relay sends back."""


class _Run:
    """The threads of one run, and the socket's resumption state they carry."""

    def __init__(self, core: _Core) -> None:
        options = core.options
        self.dispatcher = Dispatcher(queue_size=options.queue_size, stats=core.stats)
        core.stats.watch_queue(self.dispatcher)
        self.watchdog = Watchdog(self.dispatcher, slow_after=options.slow_callback_after)
        self.failed = False
        #: Why the relay refused us (or could not be reached at all), while ``failed``.
        self.error: RealtimeError | None = None
        self.connection = self._new_connection(core)

    def _new_connection(self, core: _Core) -> Connection:
        return Connection(
            relay_url=core.relay_url,
            credentials=core.credentials,
            agent=core.agent,
            options=core.options,
            sslopt=core.sslopt,
            proxy=core.proxy,
            dispatcher=self.dispatcher,
            routes=core.routes,
            on_state=lambda state: core._connection_state(self, state),
            on_connected=lambda first: core._connected(self, first),
            on_failed=lambda error: core._failed(self, error),
            on_trouble=lambda error: core._trouble(self, error),
            server_time=core.server_time,
        )

    def start(self) -> None:
        self.dispatcher.start()
        self.watchdog.start()
        self.connection.start()

    def restart_connection(self, core: _Core) -> None:
        """After a refusal, try once more (a new subscription asked for it)."""
        old = self.connection
        self.failed = False
        self.error = None
        self.connection = self._new_connection(core)
        old.join(0.0)
        self.connection.start()

    def stop(self) -> None:
        """Ask every thread to end; does not wait."""
        self.connection.stop()
        self.dispatcher.stop()
        self.watchdog.stop()

    def threads(self) -> list[threading.Thread]:
        return [*self.connection.threads(), self.dispatcher.thread, self.watchdog.thread]

    def join(self, deadline: float) -> bool:
        """Wait until ``deadline`` (monotonic) for the threads; True if all ended."""
        self.connection.join(max(0.0, deadline - time.monotonic()))
        me = threading.current_thread()
        for thread in self.threads():
            if thread is me or thread.ident is None:
                continue
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads() if t is not me)


class _Core:
    """Everything the hub owns; the threads hold this, never the hub itself."""

    def __init__(
        self,
        *,
        relay_url: str,
        credentials: CredentialsLike,
        agent: str,
        history: Callable[[Route], Iterator[ConversationChatMessage]],
        options: RealtimeOptions,
        sslopt: dict[str, Any] | None,
        drop_stale: bool = False,
        interrupt: Callable[[], None] | None = None,
        proxy: dict[str, Any] | None = None,
        stats: RealtimeStats | None = None,
        server_time: ServerTime | None = None,
    ) -> None:
        self.relay_url = relay_url
        #: The service's time at a monotonic moment (catch-up reads with no id to stop at).
        self.server_time = server_time
        self.proxy = proxy
        #: The client's realtime counters and hooks (state changes, deliveries, catch-ups).
        self.stats = stats if stats is not None else RealtimeStats()
        #: Ends the history reads in flight (a stuck catch-up read), called by close().
        self.interrupt = interrupt
        self.credentials = credentials
        self.agent = agent
        self.history = history
        self.options = options
        self.sslopt = sslopt
        self.drop_stale = drop_stale
        self.routes = Routes(drop_stale=drop_stale)
        self._lock = threading.RLock()
        #: Notified (under ``_lock``) on every state change, refusal and end of a run.
        self._cond = threading.Condition(self._lock)
        self._subs: list[Subscription] = []
        self._run: _Run | None = None
        self._retired: list[_Run] = []
        self._closed = False
        self._state = ConnectionState.IDLE
        self._listeners: list[Callable[[ConnectionState], None]] = []
        self._generation = _fork.generation()
        #: Subscriptions of a parent process that a fork left behind (not yet warned about).
        self.forked_away = 0
        _CORES.add(self)

    # --- subscriptions ------------------------------------------------------------------

    def subscribe(
        self,
        route: Route,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        *,
        report_slow: bool = True,
        on_end: Callable[[], None] | None = None,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: Checkpointer | None = None,
        advance: bool = True,
    ) -> Subscription:
        check_callable(on_message, "on_message")
        check_callable(on_error, "on_error", optional=True)
        check_callable(on_update, "on_update", optional=True)
        self._check_fork()
        self.warn_forked_away(stacklevel=4)
        may_wait = not on_realtime_thread()
        if self._closed:
            raise ClientClosedError("the realtime hub is closed")
        # Where this subscription starts, in the service's terms (its history's newest id),
        # read before it is routed: catch-up reads stop there, whatever the clocks say. A
        # durable checkpoint says it instead: the catch-up from there runs before live events.
        start = checkpoint.start if checkpoint is not None else None
        if start is not None:
            anchor = Anchor.at_checkpoint(start.message_id)
        else:
            anchor = Anchor.read(self.history, route)
            if checkpoint is not None and anchor.newest is not None:
                # The first run: where it starts is saved at once, so a run that ends before
                # it handled anything (a deploy, a crash, a lease handover) leaves a
                # checkpoint and the next run catches up from here instead of its own "now".
                checkpoint.begin(anchor.newest)
        with self._lock:
            if self._closed:
                raise ClientClosedError("the realtime hub is closed")
            sub = Subscription(
                self,
                route,
                on_message,
                on_error,
                recent_ids=self.options.recent_ids,
                report_slow=report_slow,
                on_update=on_update,
                checkpoint=checkpoint,
                advance=advance,
            )
            sub.on_end = on_end
            sub.anchor = anchor
            connected = self._state is ConnectionState.CONNECTED
            if connected and checkpoint is not None and self._run is not None:
                # Queued before the subscription is routed: every live event of it lands
                # behind its catch-up on the dispatcher, so the order holds.
                self._queue_backfill(self._run, sub, first=True)
            replaced = self._replaced_by(sub)
            self._subs.append(sub)
            self._reroute(sub, add=True)
            run = self._run
            if run is None:
                self._prune_retired()
                run = self._run = _Run(self)
                run.start()
            elif run.failed:
                for other in self._subs:
                    other.pending_backfill = True  # they missed what came since the refusal
                run.restart_connection(self)
            sub.pending_backfill = not connected
            sub.waiting = may_wait and not connected
        for old in replaced:
            # The new subscription is registered first, so the socket stays open.
            logger.info(
                "realtime: the subscription to %s with %s replaces the older one from an "
                "earlier run of that notebook cell",
                route,
                sub.callback_name,
            )
            old.cancel()
        if sub.waiting:
            self._await_connection(sub, run)
        return sub

    def _replaced_by(self, sub: Subscription) -> list[Subscription]:
        """The subscriptions an earlier run of ``sub``'s notebook cell made to its route."""
        origin = sub.cell_origin
        if origin is None:  # not from a notebook cell: nothing to look through
            return []
        return [
            old
            for old in self._subs
            if old.cell_origin == origin
            and old.route == sub.route
            and (sub.cell_run is None or old.cell_run != sub.cell_run)
        ]

    def warn_forked_away(self, stacklevel: int) -> None:
        """Warn once about the parent's subscriptions a fork left behind, if any."""
        lost, self.forked_away = self.forked_away, 0
        if lost:
            warnings.warn(
                f"{lost} subscription(s) made before os.fork() do not deliver in this child "
                "process; the new subscription starts afresh (subscribe again for the others)",
                RuntimeWarning,
                stacklevel=stacklevel,
            )

    def _await_connection(self, sub: Subscription, run: _Run) -> None:
        """Wait until ``run`` is connected, for at most ``connect_timeout`` seconds.

        Raises the relay's refusal (the subscription is cancelled first). On a
        timeout the subscription stays active and the first connect backfills it.
        """
        timeout = self.options.connect_timeout
        deadline = time.monotonic() + timeout
        error: RealtimeError | None = None
        try:
            with self._cond:
                try:
                    while sub.active and self._run is run:
                        if run.error is not None:
                            error = run.error
                            break
                        if self._state is ConnectionState.CONNECTED:
                            break
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            logger.info(
                                "realtime: not connected after %.1f s; the subscription to %s "
                                "is kept, and what it misses meanwhile is fetched on connect",
                                timeout,
                                sub.route,
                            )
                            break
                        self._cond.wait(remaining)
                finally:
                    sub.waiting = False
        except BaseException:  # Ctrl-C while waiting: nobody holds the handle, so end it
            sub.cancel()
            raise
        if error is not None:
            sub.cancel()
            if isinstance(error, RealtimeAuthenticationError):
                raise RealtimeAuthenticationError(error.message, rpc_code=error.rpc_code) from error
            raise RealtimeConnectError(str(error), permanent=True) from error

    def subscriptions(self) -> tuple[Subscription, ...]:
        with self._lock:
            return tuple(self._subs)

    def _cancel(self, sub: Subscription) -> None:
        notify = False
        with self._lock:
            if _fork.forked_since(self._generation):
                return
            try:
                self._subs.remove(sub)
            except ValueError:
                return
            self._reroute(sub, add=False)
            if not self._subs and self._run is not None:
                run, self._run = self._run, None
                run.stop()
                self._retired.append(run)
                notify = self._set_state(ConnectionState.IDLE)
                self._cond.notify_all()
        if notify:
            self._notify(ConnectionState.IDLE)

    def _reroute(self, sub: Subscription, *, add: bool) -> None:
        """Add ``sub`` to the routes or take it out, touching its own route only.

        Each attribute of :attr:`routes` is replaced whole, never mutated: the connection
        thread reads them without a lock. A subscribe costs one copy of a table (in C), not
        a pass over every subscription, so a client with thousands of them subscribes in
        linear time. Within a route, subscriptions stay in the order they were made.
        """
        routes = self.routes
        key = sub.route.value
        if key is None:
            if add:
                routes.inbox = (*routes.inbox, sub)
            else:
                routes.inbox = tuple(s for s in routes.inbox if s is not sub)
            return
        grouped = sub.route.grouped
        table = dict(routes.groups if grouped else routes.conversations)
        subs = table.get(key, ())
        subs = (*subs, sub) if add else tuple(s for s in subs if s is not sub)
        if subs:
            table[key] = subs
        else:
            table.pop(key, None)
        if grouped:
            routes.groups = table
        else:
            routes.conversations = table

    def _prune_retired(self) -> None:
        self._retired = [r for r in self._retired if any(t.is_alive() for t in r.threads())]

    # --- events from the connection thread ---------------------------------------------

    def _connection_state(self, run: _Run, state: ConnectionState) -> None:
        with self._lock:
            if run is not self._run or not self._set_state(state, run.connection.reason):
                return
        run.dispatcher.put_task(lambda: self._notify(state))

    def _connected(self, run: _Run, first: bool) -> None:
        """The relay accepted ``signalwire.connect`` (on the connection thread).

        State and backfill decisions are made under one lock: a subscribe() still
        waiting needs no backfill (all it promises comes live from now on).
        """
        with self._lock:
            if run is not self._run:
                return
            changed = self._set_state(ConnectionState.CONNECTED)
            # A subscription with a checkpoint catches up even while its subscribe() still
            # waits: it promises everything after its checkpoint (or, on its first run,
            # after the history's newest message when subscribe() was called).
            if first:
                subs = [
                    s
                    for s in self._subs
                    if s.pending_backfill and (not s.waiting or s.checkpoint is not None)
                ]
            else:
                subs = [s for s in self._subs if not s.waiting or s.checkpoint is not None]
            for sub in self._subs:
                sub.pending_backfill = False
        dispatcher = run.dispatcher
        if changed:
            dispatcher.put_task(lambda: self._notify(ConnectionState.CONNECTED))
        for sub in subs:
            self._queue_backfill(run, sub, first=first)

    def _queue_backfill(self, run: _Run, sub: Subscription, *, first: bool) -> None:
        """Queue the catch-up read of ``sub`` on ``run``'s dispatcher."""
        dispatcher = run.dispatcher
        dispatcher.put_task(
            functools.partial(
                sub._catch_up,
                self.history,
                dispatcher,
                self.options.backfill_limit,
                first=first,
                server_time=self.server_time,
            )
        )

    def _failed(self, run: _Run, error: RealtimeError) -> None:
        with self._lock:
            if run is not self._run:
                return
            run.failed = True
            run.error = error
            subs = [s for s in self._subs if not s.waiting]  # those raise it from subscribe()
            changed = self._set_state(ConnectionState.FAILED, _failure_reason(error))
            self._cond.notify_all()

        def report() -> None:
            if changed:
                self._notify(ConnectionState.FAILED)
            for sub in subs:
                if sub.active:
                    sub._report(error)

        run.dispatcher.put_task(report)

    def _trouble(self, run: _Run, error: BaseException) -> None:
        """A transient failure (token source, relay): every subscription's ``on_error`` hears."""
        with self._lock:
            if run is not self._run:
                return
            subs = list(self._subs)

        def report() -> None:
            for sub in subs:
                if sub.active:
                    sub._report(error)

        run.dispatcher.put_task(report)

    # --- state --------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def _set_state(self, state: ConnectionState, reason: str | None = None) -> bool:
        """Record a new state (under the lock), and why if known; True if it changed."""
        if self._state is state or self._state is ConnectionState.CLOSED:
            return False
        logger.debug("realtime: state %s -> %s", self._state.name, state.name)
        self._state = state
        self.stats.state_changed(state, reason)
        self._cond.notify_all()
        return True

    def _notify(self, state: ConnectionState) -> None:
        self.stats.flush()  # the state hooks, off the connection thread
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("realtime: a state listener raised")

    def add_state_listener(self, cb: Callable[[ConnectionState], None]) -> Callable[[], None]:
        check_callable(cb, "the state listener")
        with self._lock:
            self._listeners.append(cb)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._listeners.remove(cb)

        return remove

    # --- shutting down -------------------------------------------------------------------

    def close(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            if _fork.forked_since(self._generation):
                self._forked()
            first = not self._closed
            self._closed = True
            subs, self._subs = self._subs, []
            self.routes.clear()
            runs = list(self._retired)
            if self._run is not None:
                runs.append(self._run)
            self._run = None
            self._retired = []
            notify = self._set_state(ConnectionState.CLOSED)
            self._cond.notify_all()
        for sub in subs:
            sub._deactivate()
        for run in runs:
            run.stop()
        if runs:
            self._interrupt_reads()
        stuck = [run for run in runs if not run.join(deadline)]
        with self._lock:  # kept: ``running`` tells the truth until they end
            self._retired = [*stuck, *self._retired]
        if stuck:
            names = [t.name for run in stuck for t in run.threads() if t.is_alive()]
            logger.warning(
                "realtime: threads still running after close(timeout=%s): %s (a callback "
                "that does not return?)",
                timeout,
                ", ".join(names),
            )
        if notify:
            self._notify(ConnectionState.CLOSED)
        if first:
            logger.debug("realtime: hub closed")

    def _interrupt_reads(self) -> None:
        """Cut off the catch-up reads in flight (a read blocked in a REST call).

        It would keep the dispatcher past close()'s deadline; its failure is reported to
        nobody: the subscriptions are inactive already.
        """
        if self.interrupt is None:
            return
        try:
            self.interrupt()
        except Exception:
            logger.warning("realtime: interrupting the history reads failed", exc_info=True)

    def alive_threads(self) -> list[threading.Thread]:
        runs = list(self._retired)
        if self._run is not None:
            runs.append(self._run)
        return [t for run in runs for t in run.threads() if t.is_alive()]

    @staticmethod
    def collected(core: _Core) -> None:
        """The hub was garbage-collected: warn if it still had threads, and stop them."""
        if _fork.forked_since(core._generation) or core._closed:
            return  # close() waited for them already, and named those left running
        if core.alive_threads():
            warnings.warn(
                "RealtimeHub was garbage-collected with its threads running; call close()",
                ResourceWarning,
                stacklevel=1,
            )
            timeout = core.options.close_timeout
            run_detached(lambda: core.close(timeout))

    # --- fork ------------------------------------------------------------------------------

    def _check_fork(self) -> None:
        if _fork.forked_since(self._generation):
            self._forked()

    def _forked(self) -> None:
        """In a forked child: forget the parent's socket and threads without touching them.

        The parent's subscriptions do not follow into the child: that is logged now, and
        the child's next ``subscribe()`` on this hub warns (``RuntimeWarning``), so code
        that forks after subscribing learns it must subscribe again there.
        """
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        lost = [sub for sub in self._subs if sub._active]
        for sub in self._subs:
            sub._active = False
        if lost:
            self.forked_away += len(lost)
            # Logging is safe here (it re-creates its locks after a fork); warnings.warn is
            # not (under -W error it would raise inside the fork hook): it comes later.
            logger.warning(
                "realtime: %d subscription(s) of the parent process do not deliver in this "
                "forked child; subscribe again here",
                len(lost),
            )
        self._subs = []
        self.routes = Routes(drop_stale=self.drop_stale)
        self._run = None
        self._retired = []
        self._state = ConnectionState.IDLE if not self._closed else ConnectionState.CLOSED
        self._generation = _fork.generation()


_CORES: weakref.WeakSet[_Core] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_CORES):
        if _fork.forked_since(core._generation):
            core._forked()


_fork.after_fork_in_child(_after_fork_in_child)


def _failure_reason(error: RealtimeError) -> str:
    """The reason of a FAILED state: the credentials, or a setting to fix."""
    if isinstance(error, RealtimeAuthenticationError):
        return "token refused"
    return "cannot connect"


def _route(target: Any) -> Route:
    """A :class:`Route` as given, or the address dialect's route of an address id."""
    if isinstance(target, Route):
        return target
    return Route.address(_check_address(target))


class RealtimeHub:
    """Subscriptions to conversations, all over one websocket to the relay.

    Nothing starts in the constructor: the first :meth:`subscribe` (or
    :meth:`stream`) opens the connection, cancelling the last subscription closes
    it, and a later subscription opens it again. :meth:`close` ends everything.

    Args:
        relay_url: The relay's websocket URL (``wss://<ch>/``).
        credentials: The token holder (``signalwire_chat._auth.Credentials``).
        agent: The ``agent`` string sent with ``signalwire.connect``.
        history: Chat messages of an address, newest first, lazily (the REST
            client's ``iter_messages``); used to fill gaps after reconnects.
        options: Tuning; see :class:`RealtimeOptions`.
        on_state_change: Called with each new :class:`ConnectionState`.
        sslopt: TLS options passed to websocket-client.
        proxy: Proxy options passed to websocket-client's ``connect`` (``http_proxy_host``,
            ``http_proxy_port``, ``http_proxy_auth``, ``proxy_type``, ``http_no_proxy``), as
            the REST side resolved them; None lets websocket-client read the environment.
        drop_stale: Drop events of another session (the group dialect's rule).
        interrupt: Called by :meth:`close` to end the history reads in flight (the REST
            client's ``close``), so a stuck catch-up read cannot outlive it.
        stats: The client's realtime counters and hooks (a fresh, silent one if None).
        server_time: The service's time at a moment of ``time.monotonic()``, as its last
            answer stated it, or None (the REST client's ``server_time_at``). A catch-up
            read with no message id to stop at stops there; without it, such a gap is
            reported rather than guessed from this machine's clock.
    """

    def __init__(
        self,
        *,
        relay_url: str,
        credentials: CredentialsLike,
        agent: str,
        history: Callable[[Route], Iterator[ConversationChatMessage]],
        options: RealtimeOptions,
        on_state_change: Callable[[ConnectionState], None] | None = None,
        sslopt: dict[str, Any] | None = None,
        drop_stale: bool = False,
        interrupt: Callable[[], None] | None = None,
        proxy: dict[str, Any] | None = None,
        stats: RealtimeStats | None = None,
        server_time: ServerTime | None = None,
    ) -> None:
        if not isinstance(options, RealtimeOptions):
            raise InvalidArgumentTypeError("options must be a RealtimeOptions")
        check_callable(on_state_change, "on_state_change", optional=True)
        self._core = _Core(
            relay_url=relay_url,
            credentials=credentials,
            agent=agent,
            history=history,
            options=options,
            sslopt=sslopt,
            drop_stale=drop_stale,
            interrupt=interrupt,
            proxy=proxy,
            stats=stats,
            server_time=server_time,
        )
        if on_state_change is not None:
            self._core.add_state_listener(on_state_change)
        self._finalizer = weakref.finalize(self, _Core.collected, self._core)
        self._finalizer.atexit = False

    def subscribe(
        self,
        address_id: str | Route,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
        *,
        on_update: Callable[[ConversationChatMessage], None] | None = None,
        checkpoint: Checkpointer | None = None,
    ) -> Subscription:
        """Deliver every chat message of ``address_id`` (or of a :class:`Route`) to ``on_message``.

        Every chat message of the address created after this returns is delivered
        exactly once, in order, across reconnects (gaps are filled from the
        history). When the hub is not connected yet, this waits until it is, at
        most ``connect_timeout`` seconds; if that passes (the network is down), the
        subscription is returned active all the same, and the messages created
        meanwhile are fetched from the history once connected (from the newest
        message id of the history when this ran: ids, never clocks, decide).
        Called from a callback (or another of the hub's threads), it never waits
        for the connection.

        Callbacks run on the hub's dispatcher thread, one at a time, in arrival
        order. A re-run notebook cell's subscription replaces the one its earlier
        run made to the same address (keyed on the cell's id, else its code; see
        ``_interactive``), so a re-run cell does not deliver twice.

        Args:
            address_id: The address (conversation, address dialect) to follow, or a
                :class:`Route` (a group, the inbox).
            on_message: Called with each :class:`ConversationChatMessage`.
            on_update: Called with each edited message (``conversation.message.updated``).
            checkpoint: A durable checkpoint (``_checkpointing.Checkpointer``): the
                subscription first catches up from it, and saves it after each callback.
            on_error: Called with ``CallbackError`` (``on_message`` raised),
                ``SlowCallbackError`` (it runs too long; called from the watchdog
                thread), ``MessagesMayBeMissingError`` (a gap could not be filled)
                and ``RealtimeAuthenticationError`` (the relay refused the
                credentials; the hub stops reconnecting). Errors are logged either way.

        Returns:
            A :class:`Subscription`; cancel it to stop.

        Raises:
            InvalidArgumentError: ``address_id`` is empty or not a string.
            InvalidArgumentTypeError: a callback is not callable.
            ClientClosedError: the hub was closed.
            RealtimeAuthenticationError: the relay refused the credentials while
                this call waited (the subscription is not left active).
            RealtimeConnectError: the first connect failed for a reason waiting will
                not fix (name not resolved, connection refused, TLS, a 4xx upgrade
                answer); a transient failure goes to ``on_error``, once per outage.
        """
        return self._core.subscribe(
            _route(address_id), on_message, on_error, on_update=on_update, checkpoint=checkpoint
        )

    def stream(
        self,
        address_id: str | Route,
        *,
        timeout: float | None = None,
        checkpoint: Checkpointer | None = None,
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over the chat messages of ``address_id`` as they arrive.

        The subscription starts at once: as with :meth:`subscribe`, this waits
        for the connection (at most ``connect_timeout``), and every message
        created after it returns is yielded. The iterator ends when the hub is
        closed, when it is closed (``close()``, or leaving its ``with`` block), or
        after ``timeout`` seconds without a message; it raises
        ``RealtimeAuthenticationError`` when the relay refuses the credentials for
        good. Ctrl-C while waiting cancels the
        subscription and propagates ``KeyboardInterrupt``.

        Args:
            address_id: The address (conversation) to follow.
            timeout: Most seconds to wait for the next message; None waits forever.
            checkpoint: A durable checkpoint: the stream first catches up from it, and
                saves a message as handled when the next one is asked for (or the ``with``
                block is left without an exception).

        Returns:
            An iterator (and context manager) of :class:`ConversationChatMessage`.

        Raises:
            InvalidArgumentError: bad ``address_id`` or ``timeout``.
            ClientClosedError: the hub was closed.
            RealtimeAuthenticationError: the relay refused the credentials while
                this call waited.
        """
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise InvalidArgumentTypeError("timeout must be a number or None")
            if not timeout > 0:
                raise InvalidArgumentError("timeout must be positive")
        route = _route(address_id)
        from ._stream import MessageStream  # streams only: loaded on first use

        stream = MessageStream(self._core.options.queue_size, timeout)
        on_message, on_error = stream.callbacks
        stream.subscription = self._core.subscribe(
            route,
            on_message,
            on_error,
            report_slow=False,
            on_end=stream.shut,
            checkpoint=checkpoint,
            advance=False,
        )
        return stream

    @property
    def state(self) -> ConnectionState:
        """The connection's current :class:`ConnectionState`."""
        return self._core.state

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions (streams' included), oldest first."""
        return self._core.subscriptions()

    @property
    def forked_away(self) -> int:
        """Subscriptions of a parent process that a fork left behind, not yet warned about."""
        return self._core.forked_away

    @property
    def running(self) -> bool:
        """Whether any thread of the hub is still running (in this process)."""
        core = self._core
        return not _fork.forked_since(core._generation) and bool(core.alive_threads())

    def add_state_listener(self, cb: Callable[[ConnectionState], None]) -> Callable[[], None]:
        """Call ``cb`` with every new state, off the connection thread.

        Args:
            cb: Called with the new :class:`ConnectionState`.

        Returns:
            A function that removes the listener (idempotent).
        """
        return self._core.add_state_listener(cb)

    def close(self, timeout: float = 2.0) -> None:
        """Cancel every subscription, close the socket and join the threads.

        Idempotent; safe from a callback (the dispatcher then ends when it returns).

        Args:
            timeout: Most seconds to wait for the threads.
        """
        self._core.close(timeout)
        self._finalizer.detach()

    def __enter__(self) -> RealtimeHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RealtimeHub {self._core.relay_url!r} {self._core.state.name}>"
