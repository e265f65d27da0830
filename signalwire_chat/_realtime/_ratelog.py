"""A log line that a flood cannot repeat without bound: a few per minute, then a count.

A relay that sends thousands of unreadable frames would otherwise write one WARNING each, and
the log (and whoever pays for it) drowns. :class:`RateLimitedLog` writes the first ``burst``
records of a window at their level, the last of them saying that more are being counted; the
rest of the window goes out at DEBUG only, and the first record of a later window is preceded
by one record at the same level giving how many were held back. Each owner (one relay
conversation) has its own, so one client's flood does not mute another's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    """At most ``burst`` records per ``per`` seconds at ``level``; the others are counted.

    Args:
        logger: Where the records go.
        level: The level of the records let through (the held-back ones go out at DEBUG).
        burst: How many records a window lets through.
        per: The window, in seconds.
        clock: Monotonic seconds (replaceable in tests).
    """

    __slots__ = ("_burst", "_clock", "_held", "_level", "_logger", "_passed", "_per", "_start")

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        *,
        burst: int = 5,
        per: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert burst >= 1
        assert per > 0
        self._logger = logger
        self._level = level
        self._burst = burst
        self._per = per
        self._clock = clock
        self._start: float | None = None
        self._passed = 0
        self._held = 0

    def log(self, msg: str, *args: object) -> None:
        """Log ``msg % args`` at the level, or count it (and log it at DEBUG) past the burst."""
        now = self._clock()
        start = self._start
        if start is None or now - start >= self._per:
            if self._held and start is not None:
                # The template, not its arguments: those of the held-back records are gone.
                self._logger.log(
                    self._level,
                    "%d more records like %r were not logged in the last %.0f s",
                    self._held,
                    msg,
                    now - start,
                )
            self._start = start = now
            self._passed = self._held = 0
        if self._passed < self._burst:
            self._passed += 1
            if self._passed == self._burst:
                msg += " (further ones in the next %.0f s are counted, not logged)"
                args = (*args, self._per - (now - start))
            self._logger.log(self._level, msg, *args)
            return
        self._held += 1
        self._logger.debug(msg, *args)
