"""The dispatcher thread (every user callback, in arrival order) and the slow-callback watchdog.

The connection thread hands over messages in batches with :meth:`Dispatcher.put_messages`
and internal tasks (backfills, error reports, state notifications) with
:meth:`Dispatcher.put_task`. Messages are counted with two single-writer counters
(``enqueued`` written only by the connection thread, ``done`` only by the dispatcher),
so the connection can read the queue depth without a lock; when it has held back
acknowledgements for lack of room it sets ``want_space`` and the dispatcher calls
``wake`` once the queue has drained to half its bound.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._rtstats import RealtimeStats
from .._threads import new_thread
from ..errors import SlowCallbackError

if TYPE_CHECKING:
    from ._subscriptions import Subscription

__all__ = ["Dispatcher", "Watchdog"]

logger = logging.getLogger(__name__)

#: One queue entry: (subscriptions, wire message, whether it is an edit of an earlier
#: message) or (None, task, False).
Item = tuple[tuple["Subscription", ...] | None, Any, bool]


class Dispatcher:
    """A thread that runs callbacks and internal tasks in the order they were queued."""

    def __init__(
        self,
        *,
        queue_size: int,
        name: str = "signalwire-chat-dispatcher",
        stats: RealtimeStats | None = None,
    ) -> None:
        self.queue_size = queue_size
        #: The client's realtime counters and hooks (see ``signalwire_chat._rtstats``).
        self.stats = stats if stats is not None else RealtimeStats()
        self._low_water = queue_size // 2
        self._cond = threading.Condition(threading.Lock())
        self._items: deque[Item] = deque()
        self._stopping = False
        self._thread = new_thread(self._run, name)
        self.enqueued = 0  # written by the connection thread only
        self.done = 0  # written by the dispatcher thread only
        self.want_space = False
        self.wake: Callable[[], None] = _nothing
        #: ``(sequence, started, subscription)`` of the user callback running now.
        self.current: tuple[int, float, Subscription] | None = None
        self._seq = 0
        self._after_batch: list[Callable[[], None]] = []  # dispatcher thread only
        self._batch_due = math.inf  # when the after-batch hooks run at the latest

    @property
    def thread(self) -> threading.Thread:
        """The dispatcher thread."""
        return self._thread

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def pending(self) -> int:
        """Messages queued and not yet delivered (read without a lock)."""
        return self.enqueued - self.done

    def room(self) -> int:
        """How many more messages the queue takes now (read without a lock)."""
        return self.queue_size - (self.enqueued - self.done)

    def put_messages(self, items: list[Item], *, wake: bool = True) -> None:
        """Queue messages; called by the connection thread only.

        ``wake=False`` queues them without waking a waiting dispatcher: the connection
        thread hands over a long read in parts (each before its acks) and wakes it once,
        with :meth:`kick`, after the last.
        """
        with self._cond:
            self._items.extend(items)
            self.enqueued += len(items)
            if wake:
                self._cond.notify()

    def kick(self) -> None:
        """Wake the dispatcher if it waits (after ``put_messages(..., wake=False)``)."""
        with self._cond:
            self._cond.notify()

    def put_task(self, task: Callable[[], None]) -> None:
        """Queue an internal task; it runs after everything queued before it."""
        with self._cond:
            self._items.append((None, task, False))
            self._cond.notify()

    def stop(self) -> None:
        """Ask the thread to end after the callback running now; queued items are dropped."""
        with self._cond:
            self._stopping = True
            self._items.clear()
            self._cond.notify()

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    def _run(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._items and not self._stopping:
                    if not self._after_batch:
                        cond.wait()
                        continue
                    wait = self._batch_due - time.monotonic()
                    if wait <= 0:
                        break
                    cond.wait(wait)
                if self._stopping:
                    return
                batch = self._items
                self._items = deque()
            if batch:
                self._drain(batch)
            if self._after_batch and time.monotonic() >= self._batch_due:
                self._batch_ended()

    def after_batch(self, hook: Callable[[], None], within: float = 0.0) -> None:
        """Run ``hook`` once the items taken together (all that were queued) are done.

        With ``within``, items that come in the next ``within`` seconds join the batch: the
        hook runs after the items being done when that time has passed (or earlier, with a
        hook due before). Called on the dispatcher thread (by a subscription that advances
        its checkpoint once per batch); the hooks run in the order they were added.
        """
        self._after_batch.append(hook)
        self._batch_due = min(self._batch_due, time.monotonic() + within)

    def _batch_ended(self) -> None:
        hooks = self._after_batch
        if not hooks:
            return
        self._after_batch = []
        self._batch_due = math.inf
        for hook in hooks:
            if self._stopping:
                return
            try:
                hook()
            except Exception:
                logger.exception("realtime: advancing a checkpoint after a batch failed")

    def _drain(self, batch: deque[Item]) -> None:
        popleft = batch.popleft
        while batch:
            if self._stopping:
                return
            subs, payload, update = popleft()
            if subs is None:
                try:
                    payload()
                except Exception:
                    logger.exception("realtime: internal task failed")
                continue
            for sub in subs:
                try:
                    if update:
                        sub._deliver_update(payload, self)
                    else:
                        sub._deliver_wire(payload, self)
                except Exception:  # a bug of ours must not end delivery for every subscription
                    logger.exception("realtime: delivering a message to %s failed", sub.route)
            self.done += 1
            if self.want_space and self.enqueued - self.done <= self._low_water:
                self.want_space = False
                self.wake()

    def call(self, sub: Subscription, fn: Callable[[Any], None], arg: Any) -> None:
        """Run one user callback, marked for the watchdog; used by subscriptions."""
        self._seq += 1
        started = time.monotonic()
        self.current = (self._seq, started, sub)
        stats = self.stats
        if not stats.timed:
            try:
                fn(arg)
            finally:
                self.current = None
            return
        wall = time.time()
        try:
            fn(arg)
        finally:
            self.current = None
            stats.called(
                sub,
                arg,
                wall,
                time.monotonic() - started,
                self.pending(),
                fn is not sub._on_message,
            )


def _nothing() -> None:
    return None


class Watchdog:
    """A thread that reports a user callback running longer than ``slow_after`` seconds."""

    def __init__(
        self, dispatcher: Dispatcher, *, slow_after: float, name: str = "signalwire-chat-watchdog"
    ) -> None:
        self._dispatcher = dispatcher
        self._slow_after = slow_after
        self._stop = threading.Event()
        self._thread = new_thread(self._run, name)

    @property
    def thread(self) -> threading.Thread:
        """The watchdog thread."""
        return self._thread

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end at once."""
        self._stop.set()

    def _run(self) -> None:
        slow = self._slow_after
        reported = 0
        wait = slow / 4
        while not self._stop.wait(wait):
            current = self._dispatcher.current
            wait = slow / 4
            if current is None or current[0] == reported:
                continue
            seq, started, sub = current
            elapsed = time.monotonic() - started
            if elapsed < slow:
                wait = slow - elapsed
                continue
            reported = seq
            if not sub.report_slow:
                continue
            self._dispatcher.stats.slow(sub, elapsed)
            logger.warning(
                "realtime: the callback of the subscription to %s has been running for %.1f s",
                sub.route,
                elapsed,
            )
            sub._report(
                SlowCallbackError(
                    f"callback running for {elapsed:.1f} s (slow_callback_after={slow} s)",
                    address_id=sub.address_id,
                    elapsed=elapsed,
                )
            )
