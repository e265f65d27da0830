"""Shared test set-up: a check that no thread outlives a test (fixtures: the pytest plugin)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

# The emulator fixtures come from the package's pytest11 entry point (no pytest_plugins line).

_OWNED_PREFIXES = ("signalwire-chat", "signalwire-emulator")
_GRACE_SECONDS = 3.0


def _owned_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and t.name.startswith(_OWNED_PREFIXES)]


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a library or emulator thread running (after a grace period)."""
    before = set(_owned_threads())
    yield
    deadline = time.monotonic() + _GRACE_SECONDS
    for thread in [t for t in _owned_threads() if t not in before]:
        thread.join(max(0.0, deadline - time.monotonic()))
    leaked = [t for t in _owned_threads() if t not in before]
    if leaked:
        names = ", ".join(sorted(t.name for t in leaked))
        pytest.fail(f"threads still alive {_GRACE_SECONDS:.0f} s after the test: {names}")
