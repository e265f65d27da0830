"""pytest fixtures that run the SignalWire emulator, loaded automatically once installed.

The package registers this module as a pytest plugin (a ``pytest11`` entry point), so with
``signalwire-chat[emulator]`` installed the fixtures need no ``conftest.py`` line:

- ``signalwire_emulator``: a started :class:`~signalwire_chat.emulator.Emulator`, fresh for
  each test and closed after it;
- ``signalwire_emulator_session``: one emulator shared by every test of the session (faster;
  tests then share its data, so make unique names, e.g. ``create_subscriber()`` with no
  reference);
- ``emulator_factory``: start more emulators, with options.

``emu.client_for(subscriber)`` returns a :class:`~signalwire_chat.ChatClient` pointed at the
emulator. The emulator (and aiohttp) is imported only when a fixture is used, so installing
the package without the ``emulator`` extra never breaks a test run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from signalwire_chat.emulator import Emulator

__all__ = ["emulator_factory", "signalwire_emulator", "signalwire_emulator_session"]

EmulatorFactory = Callable[..., "Emulator"]


def _emulator_class() -> type[Emulator]:
    try:
        from signalwire_chat.emulator import Emulator
    except ImportError as exc:  # the extra is missing: say which one
        raise pytest.UsageError(
            "the signalwire emulator fixtures need the 'emulator' extra: "
            "pip install 'signalwire-chat[emulator]'"
        ) from exc
    return Emulator


def _close_all(started: list[Emulator]) -> None:
    errors: list[BaseException] = []
    for emulator in reversed(started):
        try:
            emulator.close()
        except Exception as exc:  # noqa: BLE001 - close the others, then re-raise
            errors.append(exc)
    if errors:
        raise errors[0]


@pytest.fixture
def emulator_factory() -> Iterator[EmulatorFactory]:
    """Return a function that starts an Emulator with the given options.

    Every emulator it started is closed after the test, in reverse order.
    """
    started: list[Emulator] = []
    emulator_class = _emulator_class()

    def make(**options: Any) -> Emulator:
        emulator = emulator_class(**options)
        started.append(emulator)
        return emulator.start()

    yield make
    _close_all(started)


@pytest.fixture
def signalwire_emulator(emulator_factory: EmulatorFactory) -> Emulator:
    """A started emulator with default options (in-memory database, port 0), one per test."""
    return emulator_factory()


@pytest.fixture(scope="session")
def signalwire_emulator_session() -> Iterator[Emulator]:
    """One started emulator for the whole test session (default options).

    Tests share its data: create subscribers and rooms with unique names. Fault hooks set by
    one test (``fail_next``, ``refuse_connects``) must be undone by it (``clear_faults()``).
    """
    emulator = _emulator_class()().start()
    try:
        yield emulator
    finally:
        emulator.close()
