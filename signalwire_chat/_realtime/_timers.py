"""The clocks of one socket's relay session, without I/O: fed the time, they say what is due.

aioquic's ``get_timer()`` / ``handle_timer(now)`` idea: :class:`SessionTimers` holds the
connect deadline, the ping timeout, our own probe of a silent relay, the wait after the relay
asked us to go, and the token refresh time. It reads no clock: the I/O loop passes ``now``
(monotonic seconds) in, waits until :meth:`SessionTimers.next_deadline`, and carries out what
:meth:`SessionTimers.handle_timer` returns, so every timeout is tested with plain numbers.
:func:`refresh_delay` is the refresh schedule's rule, on the service's time.
"""

from __future__ import annotations

import enum

__all__ = ["MIN_REFRESH_DELAY", "Due", "SessionTimers", "refresh_delay"]

#: Never refresh the token sooner than this after the previous refresh.
MIN_REFRESH_DELAY = 1.0


class Due(enum.Enum):
    """What a timer asks for when it fires."""

    #: Nothing answered ``signalwire.connect`` in time: the socket is dead.
    CONNECT_TIMEOUT = "no answer to signalwire.connect"
    #: Half the ping timeout in silence: send a ``signalwire.ping`` of our own.
    PROBE = "probe"
    #: Nothing came for the whole ping timeout: end the session and reconnect.
    PING_TIMEOUT = "ping timeout"
    #: The relay asked us to go, and the wait for its close is over.
    MUTE_OVER = "relay asked to disconnect"
    #: Time to fetch a fresh token.
    REFRESH = "refresh"


class SessionTimers:
    """The deadlines of one socket's session, on the monotonic clock the caller passes in.

    Args:
        now: When the socket opened.
        connect_timeout: How long ``signalwire.connect`` may go unanswered.
        ping_timeout: How long the relay may stay silent once connected.
        close_timeout: The most to wait for the relay's close after it asked us to go
            (capped at one second).
    """

    __slots__ = (
        "_close_wait",
        "_ping_timeout",
        "connect_deadline",
        "connected_at",
        "last_rx",
        "mute_deadline",
        "probed",
        "refresh_at",
    )

    def __init__(
        self, now: float, *, connect_timeout: float, ping_timeout: float, close_timeout: float
    ) -> None:
        self._ping_timeout = ping_timeout
        self._close_wait = min(1.0, close_timeout)
        self.connect_deadline = now + connect_timeout
        #: When the relay accepted the connect, once it did.
        self.connected_at: float | None = None
        self.last_rx = now
        self.probed = False
        self.mute_deadline: float | None = None
        #: When to fetch a fresh token (None: not scheduled).
        self.refresh_at: float | None = None

    def received(self, now: float) -> None:
        """Bytes came from the relay: the link is alive."""
        self.last_rx = now
        self.probed = False

    def accepted(self, now: float) -> None:
        """The relay accepted the connect."""
        self.connected_at = now

    def muted(self, now: float) -> None:
        """The relay asked us to go: wait a moment for its close, no more."""
        self.mute_deadline = now + self._close_wait

    def next_deadline(self, reading: bool = True) -> float:
        """The earliest moment :meth:`handle_timer` has something to do.

        ``reading``: False while the loop has stopped reading by choice (flow control).
        """
        if self.mute_deadline is not None:
            return self.mute_deadline
        if self.connected_at is None:
            return self.connect_deadline
        deadline = self.last_rx + self._ping_timeout
        if not self.probed and reading:
            deadline = self.last_rx + self._ping_timeout / 2
        if self.refresh_at is not None and self.refresh_at < deadline:
            deadline = self.refresh_at
        return deadline

    def handle_timer(self, now: float, reading: bool = True) -> list[Due]:
        """What is due at ``now``, in order; an ending (a timeout, the mute over) comes alone."""
        if self.mute_deadline is not None:
            return [Due.MUTE_OVER] if now >= self.mute_deadline else []
        if self.connected_at is None:
            return [Due.CONNECT_TIMEOUT] if now >= self.connect_deadline else []
        if now >= self.last_rx + self._ping_timeout:
            if reading:
                return [Due.PING_TIMEOUT]
            self.last_rx = now  # not reading by choice (flow control): not silence
        due: list[Due] = []
        # A relay may not ping at all: after half the timeout in silence, ask it with a
        # signalwire.ping of our own; any frame back proves the link alive.
        if not self.probed and reading and now >= self.last_rx + self._ping_timeout / 2:
            self.probed = True
            due.append(Due.PROBE)
        if self.refresh_at is not None and now >= self.refresh_at:
            due.append(Due.REFRESH)
        return due


def refresh_delay(remaining: float, margin: float) -> float:
    """Seconds from now to refresh a token with ``remaining`` seconds of life (> 0).

    ``margin`` before expiry, but never later than half its remaining life, nor sooner than
    :data:`MIN_REFRESH_DELAY`. (A remaining life of zero or less, for a token the relay has
    just accepted, means the clocks disagree: the caller waits ``margin`` instead.)
    """
    return max(remaining - margin, remaining / 2, MIN_REFRESH_DELAY)
