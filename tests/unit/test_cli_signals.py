"""A stop (SIGTERM, Ctrl-C) that lands where Python cannot raise it still stops the command.

Python runs a signal's handler in the main thread between two bytecodes, wherever they are:
inside a finalizer or a ``__del__`` (urllib3 closes its pools in one), the exception the
handler raises cannot propagate; Python prints "Exception ignored in ..." and goes on, and the
stop is lost. ``signalwire-chat`` delivers such a stop again, at the next bytecode, and prints
no traceback for it; any other exception a finalizer raises is reported as before.
"""

from __future__ import annotations

import signal
import sys
import time
import weakref
from collections.abc import Callable
from typing import Any

import pytest

from signalwire_chat.cli._app import _stops, _Terminated


class _Thing:
    pass


def _stopped_in_a_finalizer(signum: int) -> None:
    """A stop that lands in a finalizer, then a blocking call (where it lands when raised again)."""
    with _stops():
        _finalized_with(lambda: signal.raise_signal(signum))
        time.sleep(5)


def _finalized_with(action: Callable[[], Any]) -> None:
    """Run ``action`` inside a finalizer, as the garbage collector would (then some bytecode)."""
    thing = _Thing()
    weakref.finalize(thing, lambda: (action(), sum(range(10))))
    del thing


@pytest.mark.parametrize(
    ("signum", "raised"),
    [(signal.SIGTERM, _Terminated), (signal.SIGINT, KeyboardInterrupt)],
    ids=["SIGTERM", "Ctrl-C"],
)
def test_a_stop_that_lands_in_a_finalizer_is_delivered_again_without_a_traceback(
    signum: int, raised: type[BaseException], capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.monotonic()
    with pytest.raises(raised):
        _stopped_in_a_finalizer(signum)
    assert time.monotonic() - started < 4.0
    assert "Exception ignored" not in capsys.readouterr().err


def test_other_exceptions_in_a_finalizer_still_reach_the_previous_hook() -> None:
    seen: list[BaseException | None] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: seen.append(unraisable.exc_value)
    try:
        with _stops():
            _finalized_with(lambda: 1 / 0)
    finally:
        sys.unraisablehook = previous
    assert [type(exc) for exc in seen] == [ZeroDivisionError]


def test_the_handlers_and_the_hook_are_put_back_after_the_command() -> None:
    handler, hook = signal.getsignal(signal.SIGTERM), sys.unraisablehook
    with _stops():
        assert signal.getsignal(signal.SIGTERM) is not handler
        assert sys.unraisablehook is not hook
    assert signal.getsignal(signal.SIGTERM) is handler
    assert sys.unraisablehook is hook
