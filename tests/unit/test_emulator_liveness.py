"""A relay socket's timers on a fake clock: authentication deadline, pings, ping timeout.

:class:`Liveness` takes the time as an argument, so each rule is checked at the exact
instants around its deadline, with no socket and no waiting.
"""

from __future__ import annotations

import pytest

from signalwire_chat.emulator._relay_liveness import Due, Liveness


def _socket(opened_at: float = 100.0) -> Liveness:
    return Liveness(opened_at=opened_at, auth_timeout=10.0, ping_timeout=30.0)


def test_an_unauthenticated_socket_is_due_to_close_at_its_deadline_not_before() -> None:
    live = _socket()
    assert live.next_deadline() == 110.0
    assert live.handle_timer(109.999) == []
    assert live.handle_timer(110.0) == [Due.CLOSE_UNAUTHENTICATED]
    assert live.handle_timer(200.0) == []  # said once
    assert live.next_deadline() is None


def test_an_authenticated_socket_has_no_auth_deadline_and_is_pinged_at_the_interval() -> None:
    live = _socket()
    live.authenticated(105.0, ping_interval=5.0)
    assert live.next_deadline() == 110.0  # the first ping, not the auth deadline
    assert live.handle_timer(109.0) == []
    assert live.handle_timer(110.0) == [Due.PING]
    live.heard()  # the answer
    assert live.next_deadline() == 115.0
    assert live.handle_timer(115.0) == [Due.PING]


def test_no_interval_means_no_pings_and_no_deadline() -> None:
    live = _socket()
    live.authenticated(101.0, ping_interval=None)
    assert live.next_deadline() is None
    assert live.handle_timer(10_000.0) == []


def test_silence_after_a_ping_closes_at_the_ping_timeout_and_not_a_moment_before() -> None:
    live = _socket()
    live.authenticated(100.0, ping_interval=5.0)
    assert live.handle_timer(105.0) == [Due.PING]  # silent since 105
    for now in (110.0, 115.0, 120.0, 125.0, 130.0):
        assert live.handle_timer(now) == [Due.PING]  # still pinged, still silent since 105
    assert live.next_deadline() == 135.0
    assert live.handle_timer(134.999) == []
    assert live.handle_timer(135.0) == [Due.CLOSE_DEAD]


def test_any_frame_is_a_sign_of_life_so_a_busy_socket_is_never_dropped() -> None:
    live = _socket()
    live.authenticated(100.0, ping_interval=5.0)
    now = 100.0
    for _ in range(100):  # 500 s of pings, each followed by some frame (an ack, say)
        now += 5.0
        assert live.handle_timer(now) == [Due.PING]
        live.heard()
    assert Due.CLOSE_DEAD not in live.handle_timer(now + 29.999)


def test_the_timeout_counts_from_the_oldest_unanswered_ping() -> None:
    live = _socket()
    live.authenticated(0.0, ping_interval=20.0)
    assert live.handle_timer(20.0) == [Due.PING]
    assert live.handle_timer(40.0) == [Due.PING]  # a second ping does not restart the wait
    assert live.handle_timer(49.999) == []
    assert live.handle_timer(50.0) == [Due.CLOSE_DEAD]


def test_a_half_open_socket_is_neither_pinged_nor_found_dead_and_starts_afresh() -> None:
    live = _socket()
    live.authenticated(100.0, ping_interval=5.0)
    assert live.handle_timer(105.0) == [Due.PING]
    # Silenced on purpose: the server notices nothing, however long.
    assert live.handle_timer(200.0, running=False) == []
    assert live.handle_timer(400.0, running=False) == []
    # Revived: pinged again, and the timeout counts from the new ping.
    assert live.handle_timer(405.0) == [Due.PING]
    for now in (410.0, 415.0, 420.0, 425.0, 430.0):
        assert live.handle_timer(now) == [Due.PING]
    assert live.handle_timer(434.999) == []
    assert live.handle_timer(435.0) == [Due.CLOSE_DEAD]


def test_a_new_interval_restarts_the_schedule_from_now() -> None:
    live = _socket()
    live.authenticated(100.0, ping_interval=5.0)
    live.authenticated(103.0, ping_interval=1.0)  # set_ping_interval
    assert live.next_deadline() == 104.0
    live.authenticated(104.0, ping_interval=None)  # pings stopped
    assert live.next_deadline() is None


@pytest.mark.parametrize("late", [0.0, 0.5, 7.0])
def test_a_late_timer_does_what_is_due_once(late: float) -> None:
    live = _socket()
    live.authenticated(100.0, ping_interval=5.0)
    assert live.handle_timer(105.0 + late) == [Due.PING]
    assert live.next_deadline() == 110.0 + late
