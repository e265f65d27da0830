"""Shared test set-up: no thread outlives a test; ``autoclose`` (emulator fixtures: the plugin)."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Protocol, TypeVar

import pytest

if TYPE_CHECKING:  # the emulator (and aiohttp) loads only when a fixture below is used
    from signalwire_chat.emulator import Emulator, EmulatorSubscriber

# The emulator fixtures come from the package's pytest11 entry point (no pytest_plugins line).

# The Ctrl-C tests send a real SIGINT, to this process or to a child. A runner started in the
# background by a shell without job control (`cmd &` in a script, nohup) inherits SIGINT
# ignored, and so would every child: Python then installs no handler and no KeyboardInterrupt
# comes. Python's own handler here makes the tests see what a terminal's Ctrl-C does.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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


class _Closeable(Protocol):
    def close(self) -> None: ...


_C = TypeVar("_C", bound=_Closeable)


@pytest.fixture
def autoclose() -> Iterator[Callable[[_C], _C]]:
    """Return ``keep(thing)``, which hands ``thing`` back and closes it after the test.

    For sockets and processes a test opens itself: they are closed in reverse order, even
    when the test failed, and a close that raises does not stop the others.
    """
    with contextlib.ExitStack() as stack:

        def keep(thing: _C) -> _C:
            return stack.enter_context(contextlib.closing(thing))

        yield keep


# -- the emulator tests' cast (a module may define its own to differ) --------------------------


@pytest.fixture
def emu(signalwire_emulator: Emulator) -> Emulator:
    """The per-test emulator of the plugin, by a short name."""
    return signalwire_emulator


@pytest.fixture
def alice(emu: Emulator) -> EmulatorSubscriber:
    """A subscriber alice@example.com, display name Alice."""
    return emu.create_subscriber("alice@example.com", display_name="Alice")


@pytest.fixture
def bob(emu: Emulator) -> EmulatorSubscriber:
    """A subscriber bob@example.com, display name Bob."""
    return emu.create_subscriber("bob@example.com", display_name="Bob")
