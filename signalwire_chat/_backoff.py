"""Waiting before trying again: the back-off, and the relay's reconnect rule.

Two pieces, both pure (no sleep, no thread, no clock read: callers pass durations in):

- :class:`Backoff`: exponential delays with jitter, capped. The first retry of a run is
  immediate; :meth:`Backoff.reset` starts a run over.
- :class:`ReconnectPolicy`: the one place of the rule *back off unless the last session
  was healthy*. A relay that accepts ``signalwire.connect`` and then drops the session at
  once (a restart loop, a draining load balancer, a protocol error on every session) must
  not be hammered: such short sessions do not reset the back-off, so the delay keeps
  growing to its cap and the steady state is a few connects a minute. A session that
  proved healthy (it lasted a while, or delivered an event) does reset it, so a relay that
  drops good sessions every few seconds still gets its reconnect at once.
"""

from __future__ import annotations

import random

__all__ = ["Backoff", "ReconnectPolicy", "backoff_delay"]

#: The first delay of a run after the immediate retry, in seconds.
BASE = 0.5
#: Consecutive short sessions after which ``on_error`` hears of them (once per streak).
SHORT_STREAK = 3
#: A session that lasts this long (at most) counts as healthy even without an event.
HEALTHY_AFTER_MAX = 5.0


def backoff_delay(
    attempt: int, *, base: float, cap: float, rng: random.Random, floor: float = 0.0
) -> float:
    """The delay before retry ``attempt`` (0 for the first): ``base * 2**attempt``, capped.

    ``floor`` is the share of that ceiling always waited (0: full jitter, any delay from 0
    to the ceiling; 0.5: at least half of it, so the rate of attempts is bounded).
    """
    ceiling = min(cap, base * (2 ** min(attempt, 30)))
    return rng.uniform(ceiling * floor, ceiling)


class Backoff:
    """Reconnect delays: the first retry at once, then exponential with jitter, capped.

    Each later delay is at least half its ceiling (``base * 2**(n-1)``, capped at ``cap``),
    so a run that never succeeds settles at one attempt every ``cap * 3/4`` seconds on
    average, and never faster than one every ``cap / 2``.
    """

    def __init__(self, cap: float, base: float = BASE, rng: random.Random | None = None) -> None:
        self.cap = cap
        self.base = base
        self.attempt = 0
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography

    def next_delay(self) -> float:
        """The delay before the next attempt; advances the attempt count."""
        attempt = self.attempt
        self.attempt += 1
        if attempt == 0:
            return 0.0
        return backoff_delay(attempt - 1, base=self.base, cap=self.cap, rng=self._rng, floor=0.5)

    def reset(self) -> None:
        """Make the next retry immediate again."""
        self.attempt = 0


class ReconnectPolicy:
    """How long to wait before the next connect to the relay, given how the last one went.

    :meth:`session_ended` is told of every session the relay accepted (how long it lasted,
    how many events it brought); a connect that failed or was refused tells nothing, and so
    the delay grows. A session is *healthy* when it lasted ``healthy_after`` seconds or
    delivered at least one event; only a healthy session resets the back-off. After
    ``short_streak`` short sessions in a row, :meth:`take_streak_report` returns the streak
    once, for ``on_error``; the next healthy session re-arms it.
    """

    def __init__(
        self,
        cap: float,
        healthy_after: float,
        *,
        short_streak: int = SHORT_STREAK,
        rng: random.Random | None = None,
    ) -> None:
        self.backoff = Backoff(cap, rng=rng)
        self.healthy_after = healthy_after
        self.short_streak = short_streak
        #: Short sessions in a row (accepted, then ended before proving healthy).
        self.streak = 0
        self._reported = False

    @classmethod
    def for_relay(
        cls, reconnect_max_delay: float, ping_timeout: float, rng: random.Random | None = None
    ) -> ReconnectPolicy:
        """The policy of a realtime connection: healthy after half a ping timeout (5 s at most)."""
        return cls(reconnect_max_delay, min(ping_timeout / 2, HEALTHY_AFTER_MAX), rng=rng)

    def is_healthy(self, lasted: float, events: int) -> bool:
        """Whether an accepted session that lasted ``lasted`` seconds proved the relay good."""
        return events > 0 or lasted >= self.healthy_after

    def session_ended(self, lasted: float, events: int) -> bool:
        """Account for an accepted session that ended; True if it was healthy."""
        if self.is_healthy(lasted, events):
            self.backoff.reset()
            self.streak = 0
            self._reported = False
            return True
        self.streak += 1
        return False

    def take_streak_report(self) -> int | None:
        """The number of short sessions in a row, once when it reaches ``short_streak``."""
        if self._reported or self.streak < self.short_streak:
            return None
        self._reported = True
        return self.streak

    def next_delay(self) -> float:
        """The delay before the next connect; advances the back-off."""
        return self.backoff.next_delay()
