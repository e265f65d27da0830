"""Event faults of the relay: events doubled, held and reordered, or delivered late.

The hub asks :meth:`EventFaults.route` how to deliver each published event; with no
fault armed it delivers at once. Runs on the emulator's event loop thread.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Any

__all__ = ["EventFaults", "Published"]

# One published event: its audience, the message, its event type and its author.
Published = tuple[list[str], dict[str, Any], str, "str | None"]


class EventFaults:
    """The armed event faults, and the events they hold.

    Args:
        deliver: Sends one published event to its audience now.
    """

    def __init__(self, deliver: Callable[[list[str], dict[str, Any], str, str | None], None]):
        self._deliver = deliver
        self._duplicates = 0
        self._reorder_left = 0
        self._held: list[Published] = []
        self._delays: collections.deque[float] = collections.deque()
        self._late: set[asyncio.TimerHandle] = set()
        self._closed = False

    def route(self, event: Published) -> None:
        """Deliver one published event, as the armed faults say."""
        if self._delays:
            self._deliver_later(self._delays.popleft(), event)
            return
        if self._reorder_left > 0:
            self._held.append(event)
            self._reorder_left -= 1
            if self._reorder_left == 0:
                self.release_held(reverse=True)
            return
        self._deliver(*event)
        if self._duplicates > 0:
            self._duplicates -= 1
            self._deliver(*event)

    def _deliver_later(self, delay: float, event: Published) -> None:
        def fire() -> None:
            self._late.discard(handle)
            if not self._closed:
                self._deliver(*event)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._late.add(handle)

    def duplicate(self, count: int) -> None:
        """Deliver each of the next ``count`` events twice."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._duplicates = count

    def reorder(self, count: int) -> None:
        """Hold the next ``count`` events, then deliver them newest first."""
        if count < 2:
            raise ValueError(f"count must be >= 2, got {count!r}")
        self.release_held()
        self._reorder_left = count

    def release_held(self, *, reverse: bool = False) -> None:
        """Deliver the held events now (newest first when ``reverse``), and stop holding."""
        held, self._held = self._held, []
        self._reorder_left = 0
        for event in reversed(held) if reverse else held:
            self._deliver(*event)

    def delay(self, seconds: float, count: int) -> None:
        """Deliver each of the next ``count`` events ``seconds`` late."""
        if not seconds > 0:
            raise ValueError(f"seconds must be positive, got {seconds!r}")
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count!r}")
        self._delays.extend([seconds] * count)

    def clear(self) -> None:
        """Disarm every fault; held events are delivered in their order."""
        self._duplicates = 0
        self._delays.clear()
        self.release_held()

    def close(self) -> None:
        """Drop held and late events; deliver nothing more."""
        self._closed = True
        for handle in self._late:
            handle.cancel()
        self._late.clear()
        self._held.clear()
