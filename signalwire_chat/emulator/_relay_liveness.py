"""When a relay socket is due a ping, or overdue to authenticate or to answer: sans-IO.

:class:`Liveness` holds a socket's three timers (the deadline to authenticate, the next
server ping, the deadline after a ping with nothing heard since) as numbers. Time comes
in as an argument: the socket (:mod:`._relay_socket`) arms one loop timer at
:meth:`Liveness.next_deadline` and calls :meth:`Liveness.handle_timer` with the loop's
clock when it fires; tests drive it with a fake clock, and no test waits for a timer.

The rules (see "Pings" and "Unauthenticated sockets" in :mod:`._relay`):

* a socket not authenticated ``auth_timeout`` seconds after it opened is closed (1008);
* once authenticated, a ping is due every ``ping_interval`` seconds (None: never);
* a socket that has sent nothing at all for ``ping_timeout`` seconds after a ping is
  presumed dead and closed (1001); any frame counts as a sign of life;
* a socket silenced on purpose (half-open) is neither pinged nor found dead: the
  server notices nothing, and a revived socket starts afresh.
"""

from __future__ import annotations

import enum

__all__ = ["Due", "Liveness"]


class Due(enum.Enum):
    """What a socket must do when its timer fires."""

    CLOSE_UNAUTHENTICATED = "close_unauthenticated"
    PING = "ping"
    CLOSE_DEAD = "close_dead"


class Liveness:
    """A socket's authentication deadline, ping schedule and ping timeout.

    Args:
        opened_at: When the socket opened (the loop's clock).
        auth_timeout: Seconds it has to authenticate.
        ping_timeout: Seconds it may stay silent after a ping.
    """

    def __init__(self, *, opened_at: float, auth_timeout: float, ping_timeout: float) -> None:
        self._auth_deadline: float | None = opened_at + auth_timeout
        self._ping_timeout = ping_timeout
        self._ping_interval: float | None = None
        self._next_ping: float | None = None
        # When the oldest ping not followed by any frame was sent (None: heard since).
        self._silent_since: float | None = None

    def __repr__(self) -> str:
        return (
            f"Liveness(auth_deadline={self._auth_deadline}, next_ping={self._next_ping},"
            f" silent_since={self._silent_since})"
        )

    def authenticated(self, now: float, ping_interval: float | None) -> None:
        """The socket's connect was accepted (or the interval changed): ping from ``now``."""
        self._auth_deadline = None
        self._ping_interval = ping_interval
        self._next_ping = None if ping_interval is None else now + ping_interval

    def heard(self) -> None:
        """A frame arrived: the socket is alive."""
        self._silent_since = None

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timer` has something to do (None: nothing)."""
        dead_at = None if self._silent_since is None else self._silent_since + self._ping_timeout
        due = [t for t in (self._auth_deadline, self._next_ping, dead_at) if t is not None]
        return min(due) if due else None

    def handle_timer(self, now: float, *, running: bool = True) -> list[Due]:
        """Advance to ``now``; return what is due, in order.

        Args:
            now: The clock's time.
            running: False while the socket is silenced on purpose (half-open).
        """
        due: list[Due] = []
        if self._auth_deadline is not None and now >= self._auth_deadline:
            self._auth_deadline = None
            due.append(Due.CLOSE_UNAUTHENTICATED)
        silent_since = self._silent_since
        if silent_since is not None and now - silent_since >= self._ping_timeout:
            self._silent_since = None
            if running:
                due.append(Due.CLOSE_DEAD)
                return due
        if self._next_ping is not None and now >= self._next_ping:
            assert self._ping_interval is not None
            self._next_ping = now + self._ping_interval
            if running:
                if self._silent_since is None:
                    self._silent_since = now
                due.append(Due.PING)
        return due
