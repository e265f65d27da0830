"""The realtime side's counters and hook calls: what health() and the hooks see of it.

One :class:`RealtimeStats` per client, made with the client and handed to its realtime hub
(which hands it to each run's dispatcher); it outlives hubs (a fork makes a new hub), so its
counts run from the client's creation. It lives outside the realtime package so that
``ChatClient.health()`` reads it without loading that package (nor websocket-client).

Who writes what, so that reads need no lock:

- the connection state, its time, the reconnects and their reasons: under the hub's lock,
  through :meth:`RealtimeStats.state_changed` (plus this object's own lock, for the readers);
- the delivered / catch-up / duplicate counts: the dispatcher thread only (one writer);
- ``last_event_at`` and ``token_expires_at``: the connection thread only.

Hooks never run on the connection thread (it answers pings and must not wait on user code):
state changes are queued here and emitted by :meth:`RealtimeStats.flush`, which the hub
calls where it notifies state listeners (the dispatcher thread, or the thread cancelling
or closing); delivery, duplicate and catch-up hooks run on the dispatcher, the slow-callback
hook on the watchdog thread.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

from ._state import ConnectionState

if TYPE_CHECKING:
    from ._hooks import HookRegistry, StateChangeEvent

# The event classes are imported where an event is made: only with hooks registered, and
# then a client has loaded ``_hooks`` already. Importing the realtime package stays light.

__all__ = ["MAX_REASONS", "RealtimeStats", "target_kind"]

#: How many reconnect reasons health() keeps (the newest).
MAX_REASONS = 10

#: The reason of a state change when whoever made it gave none.
_DEFAULT_REASONS = {
    ConnectionState.CONNECTING: "first subscription",
    ConnectionState.CONNECTED: "connect accepted",
    ConnectionState.RECONNECTING: "connection lost",
    ConnectionState.IDLE: "last subscription cancelled",
    ConnectionState.CLOSED: "closed by user",
    ConnectionState.FAILED: "refused",
}


if TYPE_CHECKING:  # types for the checker only: no class to build at import

    class _Routed(Protocol):
        """What the stats read of a subscription (``_realtime._subscriptions.Subscription``)."""

        @property
        def route(self) -> Any: ...

        @property
        def callback_name(self) -> str: ...

    class _Queue(Protocol):
        def pending(self) -> int: ...


def target_kind(route: Any) -> str:
    """``"conversation"``, ``"group"`` or ``"inbox"``: what a route follows, never its id."""
    if route.is_inbox:
        return "inbox"
    return "group" if route.grouped else "conversation"


class RealtimeStats:
    """The realtime counters of one client and the calls of its realtime hooks.

    Args:
        registry: The client's hooks (``None``: count only, call nothing).
    """

    def __init__(self, registry: HookRegistry | None = None) -> None:
        self._lock = threading.Lock()
        self._registry = registry
        self.on_state_change = registry.on_state_change if registry else ()
        self.on_catch_up_started = registry.on_catch_up_started if registry else ()
        self.on_catch_up_finished = registry.on_catch_up_finished if registry else ()
        self.on_duplicate_dropped = registry.on_duplicate_dropped if registry else ()
        self.on_slow_callback = registry.on_slow_callback if registry else ()
        self.on_delivered = registry.on_delivered if registry else ()
        #: Whether callbacks are timed (only when someone listens: no clock read otherwise).
        self.timed = bool(self.on_delivered)
        self.state: ConnectionState | None = None  # None: IDLE, nothing happened yet
        self.since: float | None = None
        self.reconnects = 0
        self.reasons: deque[str] = deque(maxlen=MAX_REASONS)
        self.last_reason: str | None = None
        self.last_event_at: float | None = None
        self.token_expires_at: float | None = None
        self.delivered = 0
        self.from_catch_up = 0
        self.duplicates = 0
        self._pending: deque[StateChangeEvent] = deque()
        self._queue: weakref.ref[_Queue] | None = None

    # --- the connection's state (any thread, under the hub's lock) -------------------------

    def state_changed(self, state: ConnectionState, reason: str | None = None) -> None:
        """The hub's state became ``state``; ``reason`` says why, when the caller knows."""
        now = time.time()
        why = reason or _DEFAULT_REASONS.get(state, state.value)
        with self._lock:
            previous = self.state
            self.state = state
            self.since = now
            self.last_reason = why
            if state is ConnectionState.RECONNECTING:
                self.reconnects += 1
                self.reasons.append(why)
            if self.on_state_change:
                from ._hooks import StateChangeEvent

                self._pending.append(
                    StateChangeEvent(state=state, previous=previous, reason=why, at=now)
                )

    def flush(self) -> None:
        """Call ``on_state_change`` with the changes not reported yet, oldest first.

        Called off the connection thread (where the hub notifies its state listeners).
        """
        if not self.on_state_change:
            return
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
        registry = self._registry
        assert registry is not None
        for event in events:
            registry.emit(self.on_state_change, event)

    def watch_queue(self, queue: _Queue) -> None:
        """Read the queue depth from ``queue`` (the current run's dispatcher) from now on."""
        self._queue = weakref.ref(queue)

    def queue_depth(self) -> int:
        """Messages received and not yet handed to the callbacks (0 with no connection)."""
        if self.state not in _RUNNING:
            return 0
        ref = self._queue
        queue = ref() if ref is not None else None
        return max(queue.pending(), 0) if queue is not None else 0

    def reconnect_reasons(self) -> tuple[str, ...]:
        """The reasons of the last :data:`MAX_REASONS` reconnects, oldest first."""
        with self._lock:
            return tuple(self.reasons)

    # --- the dispatcher thread ----------------------------------------------------------

    def message(self, message: Any) -> None:
        """A message is about to be handed to ``on_message``."""
        self.delivered += 1
        if message.delivery == "catch_up":
            self.from_catch_up += 1

    def duplicate(self, sub: _Routed, source: str) -> None:
        """A message already delivered came again (``source``: "live" or "catch-up")."""
        self.duplicates += 1
        if self.on_duplicate_dropped:
            from ._hooks import DuplicateDroppedEvent

            event = DuplicateDroppedEvent(source=source, target=target_kind(sub.route))
            self._emit(self.on_duplicate_dropped, event)

    def called(
        self, sub: _Routed, message: Any, wall: float, duration: float, pending: int, update: bool
    ) -> None:
        """A callback returned (or raised); only called when :attr:`timed`."""
        from ._hooks import DeliveredEvent

        catch_up = getattr(message, "delivery", None) == "catch_up"
        ts = getattr(message, "ts", None)
        lag = max(wall - ts, 0.0) if isinstance(ts, (int, float)) else None
        # A live message is counted in the queue until its callbacks are done.
        depth = pending if catch_up else max(pending - 1, 0)
        event = DeliveredEvent(
            target=target_kind(sub.route),
            source="catch-up" if catch_up else "live",
            update=update,
            lag=lag,
            duration=duration,
            queue_depth=depth,
        )
        self._emit(self.on_delivered, event)

    def catch_up_started(self, sub: _Routed) -> float:
        """A catch-up read starts; returns its start time for :meth:`catch_up_finished`."""
        if self.on_catch_up_started:
            from ._hooks import CatchUpStartedEvent

            event = CatchUpStartedEvent(target=target_kind(sub.route))
            self._emit(self.on_catch_up_started, event)
        return time.perf_counter()

    def catch_up_finished(
        self, sub: _Routed, started: float, messages: int, error: str | None
    ) -> None:
        """A catch-up read ended, having delivered ``messages`` (``error``: what ended it)."""
        if self.on_catch_up_finished:
            from ._hooks import CatchUpFinishedEvent

            event = CatchUpFinishedEvent(
                target=target_kind(sub.route),
                messages=messages,
                duration=time.perf_counter() - started,
                error=error,
            )
            self._emit(self.on_catch_up_finished, event)

    # --- the watchdog thread ------------------------------------------------------------

    def slow(self, sub: _Routed, seconds: float) -> None:
        """A callback of ``sub`` has been running for ``seconds``."""
        if self.on_slow_callback:
            from ._hooks import SlowCallbackEvent

            event = SlowCallbackEvent(
                callback=sub.callback_name, seconds=seconds, target=target_kind(sub.route)
            )
            self._emit(self.on_slow_callback, event)

    def _emit(self, callbacks: tuple[Any, ...], event: object) -> None:
        registry = self._registry
        if registry is not None:
            registry.emit(callbacks, event)


_RUNNING = frozenset(
    {
        ConnectionState.CONNECTING,
        ConnectionState.CONNECTED,
        ConnectionState.RECONNECTING,
        ConnectionState.FAILED,
    }
)
