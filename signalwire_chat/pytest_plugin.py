"""pytest fixtures that run the SignalWire emulator: enable with ``pytest_plugins``.

In a ``conftest.py``::

    pytest_plugins = ["signalwire_chat.pytest_plugin"]

then ask for ``signalwire_emulator`` (a started :class:`~signalwire_chat.emulator.Emulator`,
stopped after the test) or ``emulator_factory`` (start more emulators, with options).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from signalwire_chat.emulator import Emulator

__all__ = ["emulator_factory", "signalwire_emulator"]

EmulatorFactory = Callable[..., Emulator]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Return a function that starts an Emulator with the given options.

    Every emulator it started is closed after the test, in reverse order.
    """
    started: list[Emulator] = []

    def make(**options: Any) -> Emulator:
        emulator = Emulator(**options)
        started.append(emulator)
        return emulator.start()

    yield make
    errors: list[BaseException] = []
    for emulator in reversed(started):
        try:
            emulator.close()
        except Exception as exc:  # noqa: BLE001 - close the others, then re-raise
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def signalwire_emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A started emulator with default options (in-memory database, port 0)."""
    return emulator_factory()
