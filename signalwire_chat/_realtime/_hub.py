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
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import warnings
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..errors import (
    ClientClosedError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    RealtimeAuthenticationError,
)
from ._connection import Connection, Routes
from ._dispatcher import Dispatcher, Watchdog
from ._options import ConnectionState, RealtimeOptions
from ._stream import MessageStream
from ._subscriptions import Subscription

if TYPE_CHECKING:
    from ..models import ConversationChatMessage

__all__ = ["CredentialsLike", "RealtimeHub", "Subscription"]

logger = logging.getLogger(__name__)


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


class _Run:
    """The threads of one run, and the socket's resumption state they carry."""

    def __init__(self, core: _Core) -> None:
        options = core.options
        self.dispatcher = Dispatcher(queue_size=options.queue_size)
        self.watchdog = Watchdog(self.dispatcher, slow_after=options.slow_callback_after)
        self.failed = False
        self.connection = self._new_connection(core)

    def _new_connection(
        self, core: _Core, resume: tuple[str | None, str | None] | None = None
    ) -> Connection:
        return Connection(
            relay_url=core.relay_url,
            credentials=core.credentials,
            agent=core.agent,
            options=core.options,
            sslopt=core.sslopt,
            dispatcher=self.dispatcher,
            routes=core.routes,
            on_state=lambda state: core._connection_state(self, state),
            on_connected=lambda reconnect: core._connected(self, reconnect),
            on_failed=lambda error: core._failed(self, error),
            resume=resume,
        )

    def start(self) -> None:
        self.dispatcher.start()
        self.watchdog.start()
        self.connection.start()

    def restart_connection(self, core: _Core) -> None:
        """After a refusal, try once more (a new subscription asked for it)."""
        old = self.connection
        self.failed = False
        self.connection = self._new_connection(core)
        old.join(0.0)
        self.connection.start()

    def stop(self) -> None:
        """Ask every thread to end; does not wait."""
        self.connection.stop()
        self.dispatcher.stop()
        self.watchdog.stop()

    def threads(self) -> list[threading.Thread]:
        return [self.connection.thread, self.dispatcher.thread, self.watchdog.thread]

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
        history: Callable[[str], Iterator[ConversationChatMessage]],
        options: RealtimeOptions,
        sslopt: dict[str, Any] | None,
    ) -> None:
        self.relay_url = relay_url
        self.credentials = credentials
        self.agent = agent
        self.history = history
        self.options = options
        self.sslopt = sslopt
        self.routes = Routes()
        self._lock = threading.RLock()
        self._subs: list[Subscription] = []
        self._run: _Run | None = None
        self._retired: list[_Run] = []
        self._closed = False
        self._state = ConnectionState.IDLE
        self._listeners: list[Callable[[ConnectionState], None]] = []
        self._pid = os.getpid()
        _CORES.add(self)

    # --- subscriptions ------------------------------------------------------------------

    def subscribe(
        self,
        address_id: str,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None,
        *,
        report_slow: bool = True,
        on_end: Callable[[], None] | None = None,
    ) -> Subscription:
        _check_address(address_id)
        if not callable(on_message):
            raise InvalidArgumentTypeError("on_message must be callable")
        if on_error is not None and not callable(on_error):
            raise InvalidArgumentTypeError("on_error must be callable or None")
        self._check_fork()
        with self._lock:
            if self._closed:
                raise ClientClosedError("the realtime hub is closed")
            sub = Subscription(
                self,
                address_id,
                on_message,
                on_error,
                recent_ids=self.options.recent_ids,
                report_slow=report_slow,
            )
            sub.on_end = on_end
            self._subs.append(sub)
            self._rebuild_routes()
            run = self._run
            if run is None:
                self._prune_retired()
                run = self._run = _Run(self)
                run.start()
            elif run.failed:
                run.restart_connection(self)
        return sub

    def _cancel(self, sub: Subscription) -> None:
        notify = False
        with self._lock:
            if os.getpid() != self._pid:
                return
            try:
                self._subs.remove(sub)
            except ValueError:
                return
            self._rebuild_routes()
            if not self._subs and self._run is not None:
                run, self._run = self._run, None
                run.stop()
                self._retired.append(run)
                notify = self._set_state(ConnectionState.IDLE)
        if notify:
            self._notify(ConnectionState.IDLE)

    def _rebuild_routes(self) -> None:
        table: dict[str, tuple[Subscription, ...]] = {}
        for sub in self._subs:
            table[sub.address_id] = (*table.get(sub.address_id, ()), sub)
        self.routes.table = table

    def _prune_retired(self) -> None:
        self._retired = [r for r in self._retired if any(t.is_alive() for t in r.threads())]

    # --- events from the connection thread ---------------------------------------------

    def _connection_state(self, run: _Run, state: ConnectionState) -> None:
        with self._lock:
            if run is not self._run or not self._set_state(state):
                return
        run.dispatcher.put_task(lambda: self._notify(state))

    def _connected(self, run: _Run, reconnect: bool) -> None:
        if not reconnect:
            return
        with self._lock:
            if run is not self._run:
                return
            subs = list(self._subs)
        dispatcher = run.dispatcher
        history = self.history
        limit = self.options.backfill_limit
        for sub in subs:
            dispatcher.put_task(
                lambda sub=sub: sub._backfill(history, dispatcher, limit)  # type: ignore[misc]
            )

    def _failed(self, run: _Run, error: RealtimeAuthenticationError) -> None:
        with self._lock:
            if run is not self._run:
                return
            run.failed = True
            subs = list(self._subs)
            changed = self._set_state(ConnectionState.FAILED)

        def report() -> None:
            if changed:
                self._notify(ConnectionState.FAILED)
            for sub in subs:
                if sub.active:
                    sub._report(error)

        run.dispatcher.put_task(report)

    # --- state --------------------------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    def _set_state(self, state: ConnectionState) -> bool:
        """Record a new state (under the lock); True if it changed."""
        if self._state is state or self._state is ConnectionState.CLOSED:
            return False
        logger.debug("realtime: state %s -> %s", self._state.name, state.name)
        self._state = state
        return True

    def _notify(self, state: ConnectionState) -> None:
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:
                logger.exception("realtime: a state listener raised")

    def add_state_listener(self, cb: Callable[[ConnectionState], None]) -> Callable[[], None]:
        if not callable(cb):
            raise InvalidArgumentTypeError("the state listener must be callable")
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
            if os.getpid() != self._pid:
                self._forked()
            first = not self._closed
            self._closed = True
            subs, self._subs = self._subs, []
            self.routes.table = {}
            runs = list(self._retired)
            if self._run is not None:
                runs.append(self._run)
            self._run = None
            self._retired = []
            notify = self._set_state(ConnectionState.CLOSED)
        for sub in subs:
            sub._deactivate()
        for run in runs:
            run.stop()
        stuck = [run for run in runs if not run.join(deadline)]
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

    def alive_threads(self) -> list[threading.Thread]:
        runs = list(self._retired)
        if self._run is not None:
            runs.append(self._run)
        return [t for run in runs for t in run.threads() if t.is_alive()]

    @staticmethod
    def collected(core: _Core) -> None:
        """The hub was garbage-collected: warn if it still had threads, and stop them."""
        if os.getpid() != core._pid:
            return
        if core.alive_threads():
            warnings.warn(
                "RealtimeHub was garbage-collected with its threads running; call close()",
                ResourceWarning,
                stacklevel=1,
            )
            core.close(0.0)

    # --- fork ------------------------------------------------------------------------------

    def _check_fork(self) -> None:
        if os.getpid() != self._pid:
            self._forked()

    def _forked(self) -> None:
        """In a forked child: forget the parent's socket and threads without touching them."""
        self._lock = threading.RLock()
        for sub in self._subs:
            sub._active = False
        self._subs = []
        self.routes = Routes()
        self._run = None
        self._retired = []
        self._state = ConnectionState.IDLE if not self._closed else ConnectionState.CLOSED
        self._pid = os.getpid()


_CORES: weakref.WeakSet[_Core] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for core in list(_CORES):
        if core._pid != os.getpid():
            core._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _check_address(address_id: Any) -> None:
    if not isinstance(address_id, str):
        raise InvalidArgumentTypeError(f"address_id must be a str, not {type(address_id).__name__}")
    if not address_id or address_id != address_id.strip():
        raise InvalidArgumentError("address_id must be a non-empty string without spaces")


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
    """

    def __init__(
        self,
        *,
        relay_url: str,
        credentials: CredentialsLike,
        agent: str,
        history: Callable[[str], Iterator[ConversationChatMessage]],
        options: RealtimeOptions,
        on_state_change: Callable[[ConnectionState], None] | None = None,
        sslopt: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(options, RealtimeOptions):
            raise InvalidArgumentTypeError("options must be a RealtimeOptions")
        if on_state_change is not None and not callable(on_state_change):
            raise InvalidArgumentTypeError("on_state_change must be callable or None")
        self._core = _Core(
            relay_url=relay_url,
            credentials=credentials,
            agent=agent,
            history=history,
            options=options,
            sslopt=sslopt,
        )
        if on_state_change is not None:
            self._core.add_state_listener(on_state_change)
        self._finalizer = weakref.finalize(self, _Core.collected, self._core)
        self._finalizer.atexit = False

    def subscribe(
        self,
        address_id: str,
        on_message: Callable[[ConversationChatMessage], None],
        on_error: Callable[[BaseException], None] | None = None,
    ) -> Subscription:
        """Deliver every chat message of ``address_id`` to ``on_message``.

        Callbacks run on the hub's dispatcher thread, one at a time, in arrival
        order; each message is delivered once, across reconnects (gaps are
        filled from the history).

        Args:
            address_id: The address (conversation) to follow.
            on_message: Called with each :class:`ConversationChatMessage`.
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
        """
        return self._core.subscribe(address_id, on_message, on_error)

    def stream(
        self, address_id: str, *, timeout: float | None = None
    ) -> Iterator[ConversationChatMessage]:
        """Iterate over the chat messages of ``address_id`` as they arrive.

        The subscription starts at once (messages sent after this call are all
        yielded). The iterator ends when the hub is closed, when it is closed
        (``close()``, or leaving its ``with`` block), or after ``timeout`` seconds
        without a message; it raises ``RealtimeAuthenticationError`` when the relay
        refuses the credentials for good. Ctrl-C while waiting cancels the
        subscription and propagates ``KeyboardInterrupt``.

        Args:
            address_id: The address (conversation) to follow.
            timeout: Most seconds to wait for the next message; None waits forever.

        Returns:
            An iterator (and context manager) of :class:`ConversationChatMessage`.

        Raises:
            InvalidArgumentError: bad ``address_id`` or ``timeout``.
            ClientClosedError: the hub was closed.
        """
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
                raise InvalidArgumentTypeError("timeout must be a number or None")
            if not timeout > 0:
                raise InvalidArgumentError("timeout must be positive")
        stream = MessageStream(self._core.options.queue_size, timeout)
        on_message, on_error = stream.callbacks
        stream.subscription = self._core.subscribe(
            address_id, on_message, on_error, report_slow=False, on_end=stream.shut
        )
        return stream

    @property
    def state(self) -> ConnectionState:
        """The connection's current :class:`ConnectionState`."""
        return self._core.state

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
