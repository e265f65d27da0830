"""The token refresh of an open connection: when to fetch a fresh token, and fetching it.

The token source is user code, so a fetch runs on a short-lived helper thread and the
connection thread picks its outcome up (:meth:`TokenRefresher.outcome`) when it wakes. When
to fetch is a rule on numbers: :meth:`TokenRefresher.first_time` (after the relay accepted a
token, from its ``expires_at`` on the service's clock) and :meth:`TokenRefresher.retry_time`
(after a fetch failed, with back-off). The clocks are injected, so every schedule is tested
with plain numbers and no sleep.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .._backoff import Backoff
from .._threads import start_thread
from ._timers import MIN_REFRESH_DELAY, refresh_delay

__all__ = ["Outcome", "TokenRefresher"]

logger = logging.getLogger("signalwire_chat._realtime._connection")

#: What a fetch gave: ``(token, None)`` or ``(None, why not)``.
Outcome = tuple[str | None, BaseException | None]


class TokenRefresher:
    """Fetches fresh tokens off the connection thread and says when the next fetch is due.

    Args:
        credentials: The token source (``refresh(stale)`` is called on the helper thread).
        margin: How long before expiry to refresh (``refresh_margin``).
        max_delay: The longest wait between failed fetches.
        wake: Called when a fetch is over (wakes the connection thread).
        server_time: The service's time at a monotonic moment, if known.
        monotonic: The monotonic clock; ``wall``: this machine's time (both injected in tests).
    """

    def __init__(
        self,
        credentials: Any,
        *,
        margin: float,
        max_delay: float,
        wake: Callable[[], None],
        server_time: Callable[[float], float | None] | None = None,
        monotonic: Callable[[], float] | None = None,
        wall: Callable[[], float] | None = None,
    ) -> None:
        self._credentials = credentials
        self._margin = margin
        self._wake = wake
        self._server_time = server_time
        self._monotonic = monotonic or time.monotonic
        self._wall = wall or time.time
        self._backoff = Backoff(max(max_delay, MIN_REFRESH_DELAY))
        self._skew_warned = False
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._result: Outcome | None = None

    # --- fetching --------------------------------------------------------------------------

    def start(self, stale: str) -> None:
        """Fetch a fresh token on a helper thread (``stale``: the one to replace)."""
        credentials = self._credentials
        self._done.clear()
        self._result = None

        def refresh() -> None:
            try:
                self._result = (credentials.refresh(stale), None)
            except Exception as exc:  # noqa: BLE001 - reported by the connection thread
                self._result = (None, exc)
            self._done.set()
            self._wake()

        self._thread = start_thread(refresh, "token-refresh")

    @property
    def running(self) -> bool:
        """Whether a fetch is under way."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def wait(self) -> Outcome | None:
        """Wait for the fetch under way; its outcome, or None when :meth:`cancel` came first."""
        self._done.wait()
        return self.outcome()

    def outcome(self) -> Outcome | None:
        """The outcome of the last fetch once it is over (then None until the next one)."""
        if not self._done.is_set():
            return None
        result, self._result = self._result, None
        if result is not None and result[0] is not None:
            self._backoff.reset()  # a token came: the next failure waits from the start
        return result

    def cancel(self) -> None:
        """Stop waiting for a fetch (closing)."""
        self._done.set()

    def threads(self) -> list[threading.Thread]:
        """The helper thread of the last fetch, if one was started (it may have ended)."""
        return [] if self._thread is None else [self._thread]

    def join(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the helper thread (not when called on it)."""
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))

    # --- the schedule ----------------------------------------------------------------------

    def first_time(self, expires_at: float | None) -> float | None:
        """When (monotonic) to refresh a token the relay accepted; None: never.

        The token's remaining life is ``expires_at`` against the *service's* time (its last
        ``Date``, carried on the monotonic clock), so this machine's wall clock plays a part
        only when the service never stated its time. A token the relay has just accepted
        cannot be expired: a remaining life that says otherwise means the clocks disagree,
        and the refresh waits ``margin`` rather than run in a loop (a WARNING, once).
        """
        self._backoff.reset()  # a token was accepted: a failure's retries start over
        if expires_at is None or not self._credentials.can_refresh:
            return None
        now = self._monotonic()
        server_now = self._server_time(now) if self._server_time is not None else None
        remaining = expires_at - (server_now if server_now is not None else self._wall())
        if remaining > 0:
            return now + refresh_delay(remaining, self._margin)
        if not self._skew_warned:
            self._skew_warned = True
            logger.warning(
                "realtime: the token the relay accepted looks expired by %s clock "
                "(%.0f s off); refreshing it every %.0f s instead",
                "the service's" if server_now is not None else "this machine's",
                -remaining,
                self._margin,
            )
        return now + self._margin

    def retry_time(self, now: float) -> tuple[float, float]:
        """After a failed fetch at ``now``: when to try again, and the delay (back-off)."""
        delay = max(self._backoff.next_delay(), MIN_REFRESH_DELAY)
        return now + delay, delay
