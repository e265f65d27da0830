"""The token refresh schedule of an open connection, on fake clocks: no socket, no sleep.

:class:`TokenRefresher` says when to fetch a fresh token (before expiry, on the service's
time; every ``refresh_margin`` when the clocks disagree; with back-off after a failure).
Its clocks are plain functions of a number the test moves.
"""

from __future__ import annotations

import threading

import pytest

from signalwire_chat._realtime._refresher import TokenRefresher
from signalwire_chat._realtime._timers import MIN_REFRESH_DELAY

WALL = 1_800_000_000.0  # this machine's time at monotonic 0


class Clock:
    """A monotonic clock and a wall clock the test moves by hand."""

    def __init__(self, skew: float = 0.0) -> None:
        self.now = 0.0
        self.skew = skew

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> float:
        return WALL + self.skew + self.now


class Source:
    """A token source that follows a script: a token, or an exception to raise, per call."""

    can_refresh = True

    def __init__(self, *outcomes: str | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.stale: list[str] = []

    def refresh(self, stale: str) -> str:
        self.stale.append(stale)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def _refresher(
    clock: Clock, source: object = None, *, server_skew: float | None = None, margin: float = 30.0
) -> TokenRefresher:
    server_time = None
    if server_skew is not None:

        def server_time(now: float) -> float:
            return WALL + server_skew + now

    return TokenRefresher(
        source if source is not None else Source(),
        margin=margin,
        max_delay=8.0,
        wake=lambda: None,
        server_time=server_time,
        monotonic=clock.monotonic,
        wall=clock.wall,
    )


def test_a_token_is_refreshed_margin_seconds_before_it_expires() -> None:
    clock = Clock()
    clock.now = 50.0
    refresher = _refresher(clock)
    assert refresher.first_time(WALL + 50.0 + 600.0) == pytest.approx(50.0 + 570.0)


def test_a_short_lived_token_is_refreshed_at_half_its_life_not_after_it_expired() -> None:
    clock = Clock()
    refresher = _refresher(clock)
    assert refresher.first_time(WALL + 40.0) == pytest.approx(20.0)


def test_the_services_time_decides_the_remaining_life_not_this_machines() -> None:
    # This machine an hour ahead; the service's Date says the token has 600 s left.
    clock = Clock(skew=3600.0)
    refresher = _refresher(clock, server_skew=0.0)
    assert refresher.first_time(WALL + 600.0) == pytest.approx(570.0)


def test_a_clock_an_hour_behind_still_refreshes_before_expiry_by_the_services_time() -> None:
    clock = Clock(skew=-3600.0)
    refresher = _refresher(clock, server_skew=0.0)
    assert refresher.first_time(WALL + 6.0) == pytest.approx(3.0)


def test_with_no_service_time_a_token_that_looks_expired_is_refreshed_every_margin_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """This machine an hour ahead, and no REST answer to date the service by: the refresh
    waits ``refresh_margin`` (said once), instead of calling the token source every second
    (moved from an integration test that watched the token source for 3 s)."""
    caplog.set_level("WARNING", logger="signalwire_chat._realtime._connection")
    clock = Clock(skew=3600.0)
    refresher = _refresher(clock)
    expires_at = WALL + 600.0
    times = []
    for _ in range(5):  # each refresh accepted, each new token looking expired too
        at = refresher.first_time(expires_at)
        assert at is not None
        times.append(at)
        clock.now = at
    assert times == [30.0, 60.0, 90.0, 120.0, 150.0]
    warnings = [r.getMessage() for r in caplog.records if "looks expired" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "this machine's clock" in warnings[0]


def test_a_token_that_looks_expired_by_the_services_clock_says_so() -> None:
    clock = Clock()
    refresher = _refresher(clock, server_skew=7200.0)
    assert refresher.first_time(WALL + 600.0) == pytest.approx(30.0)


def test_no_expiry_or_no_way_to_refresh_means_no_refresh() -> None:
    clock = Clock()
    assert _refresher(clock).first_time(None) is None
    fixed = Source()
    fixed.can_refresh = False  # type: ignore[misc]
    assert _refresher(clock, fixed).first_time(WALL + 600.0) is None


def test_failed_fetches_are_retried_with_a_growing_delay_reset_by_an_accepted_token() -> None:
    clock = Clock()
    clock.now = 10.0
    refresher = _refresher(clock)
    delays = [refresher.retry_time(clock.now)[1] for _ in range(8)]
    assert all(delay >= MIN_REFRESH_DELAY for delay in delays)
    assert max(delays) <= 8.0
    assert delays[-1] >= 4.0  # at least half its capped ceiling: the delay grew
    at, delay = refresher.retry_time(clock.now)
    assert at == pytest.approx(clock.now + delay)
    refresher.first_time(WALL + 600.0)  # the relay accepted a token: the run starts over
    assert refresher.retry_time(clock.now)[1] == MIN_REFRESH_DELAY


def _fetched(refresher: TokenRefresher) -> tuple[str | None, BaseException | None] | None:
    woke = threading.Event()
    refresher._wake = woke.set
    refresher.start("stale-token")
    assert woke.wait(10)
    return refresher.outcome()


def test_a_fetch_runs_off_the_calling_thread_and_its_outcome_is_taken_once() -> None:
    source = Source("fresh-token", RuntimeError("token service hiccup"))
    refresher = _refresher(Clock(), source)
    assert refresher.outcome() is None  # nothing fetched yet
    assert _fetched(refresher) == ("fresh-token", None)
    assert refresher.outcome() is None  # taken
    token, error = _fetched(refresher)  # type: ignore[misc]
    assert token is None
    assert isinstance(error, RuntimeError)
    assert source.stale == ["stale-token", "stale-token"]
    refresher.join(10)
    assert not refresher.running


def test_a_success_resets_the_back_off_of_failed_fetches() -> None:
    refresher = _refresher(Clock(), Source("fresh-token"))
    for _ in range(6):
        refresher.retry_time(0.0)
    assert _fetched(refresher) == ("fresh-token", None)
    assert refresher.retry_time(0.0)[1] == MIN_REFRESH_DELAY
    refresher.join(10)


def test_cancel_ends_a_wait_for_a_fetch_that_never_returns() -> None:
    release = threading.Event()

    class Stuck:
        can_refresh = True

        def refresh(self, stale: str) -> str:
            release.wait(10)
            return "late"

    refresher = _refresher(Clock(), Stuck())
    refresher.start("stale")
    refresher.cancel()
    assert refresher.wait() is None
    release.set()
    refresher.join(10)
