"""The relay session's clocks, driven with plain numbers: no socket, no thread, no sleep.

Each test states both sides of its deadline: nothing is due a moment before it, and what is
due at it.
"""

from __future__ import annotations

import pytest

from signalwire_chat._realtime._timers import (
    MIN_REFRESH_DELAY,
    Due,
    SessionTimers,
    refresh_delay,
)


def _timers(now: float = 100.0, close_timeout: float = 5.0) -> SessionTimers:
    return SessionTimers(now, connect_timeout=10.0, ping_timeout=20.0, close_timeout=close_timeout)


def test_an_unanswered_connect_times_out_at_its_deadline() -> None:
    timers = _timers()
    assert timers.next_deadline() == 110.0
    assert timers.handle_timer(109.99) == []
    assert timers.handle_timer(110.0) == [Due.CONNECT_TIMEOUT]


def test_an_answered_connect_has_no_connect_deadline() -> None:
    timers = _timers()
    timers.received(105.0)  # the answer came
    timers.accepted(105.0)
    assert timers.handle_timer(110.0) == []  # the connect deadline no longer applies
    assert timers.next_deadline() == 115.0  # the probe: half the ping timeout after 105


def test_silence_is_probed_at_half_the_ping_timeout_then_ends_the_session() -> None:
    timers = _timers()
    timers.accepted(100.0)
    assert timers.handle_timer(109.99) == []
    assert timers.handle_timer(110.0) == [Due.PROBE]
    assert timers.handle_timer(115.0) == []  # probed once per silence
    assert timers.next_deadline() == 120.0
    assert timers.handle_timer(119.99) == []
    assert timers.handle_timer(120.0) == [Due.PING_TIMEOUT]


def test_anything_received_restarts_the_ping_timeout_and_allows_a_new_probe() -> None:
    timers = _timers()
    timers.accepted(100.0)
    assert timers.handle_timer(110.0) == [Due.PROBE]
    timers.received(118.0)
    assert timers.handle_timer(120.0) == []  # alive: no timeout at the old deadline
    assert timers.next_deadline() == 128.0
    assert timers.handle_timer(128.0) == [Due.PROBE]
    assert timers.handle_timer(138.0) == [Due.PING_TIMEOUT]


def test_not_reading_by_choice_is_not_silence() -> None:
    timers = _timers()
    timers.accepted(100.0)
    # Flow control stopped the reads: no probe, and the timeout restarts instead of firing.
    assert timers.handle_timer(110.0, reading=False) == []
    assert timers.next_deadline(reading=False) == 120.0
    assert timers.handle_timer(120.0, reading=False) == []
    assert timers.last_rx == 120.0
    # Reading again, the same silence does end the session.
    assert timers.handle_timer(140.0) == [Due.PING_TIMEOUT]


@pytest.mark.parametrize(("close_timeout", "wait"), [(5.0, 1.0), (0.25, 0.25)])
def test_after_a_disconnect_the_close_is_awaited_briefly_and_nothing_else_fires(
    close_timeout: float, wait: float
) -> None:
    timers = _timers(close_timeout=close_timeout)
    timers.accepted(100.0)
    timers.refresh_at = 100.5
    timers.muted(100.0)
    assert timers.next_deadline() == 100.0 + wait
    assert timers.handle_timer(100.0 + wait - 0.01) == []  # no refresh, no probe while muted
    assert timers.handle_timer(100.0 + wait) == [Due.MUTE_OVER]


def test_the_refresh_is_due_at_its_time_and_comes_first_when_it_is_soonest() -> None:
    timers = _timers()
    timers.accepted(100.0)
    timers.refresh_at = 103.0
    assert timers.next_deadline() == 103.0
    assert timers.handle_timer(102.99) == []
    assert timers.handle_timer(103.0) == [Due.REFRESH]
    timers.refresh_at = 500.0  # later than the probe: the probe's deadline comes first
    assert timers.next_deadline() == 110.0
    assert timers.handle_timer(110.0) == [Due.PROBE]


@pytest.mark.parametrize(
    ("remaining", "margin", "delay"),
    [
        (600.0, 30.0, 570.0),  # margin before expiry
        (40.0, 30.0, 20.0),  # never later than half the remaining life
        (1.5, 30.0, MIN_REFRESH_DELAY),  # never sooner than the floor
        (6.0, 60.0, 3.0),  # a short token: half its life (the skewed-clock test's case)
    ],
)
def test_the_refresh_comes_before_expiry(remaining: float, margin: float, delay: float) -> None:
    assert refresh_delay(remaining, margin) == delay
    assert refresh_delay(remaining, margin) < remaining or remaining <= MIN_REFRESH_DELAY
