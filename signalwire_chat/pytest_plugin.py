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

For the lease and the Redis checkpoint store (:mod:`signalwire_chat.redis`), a real
``redis-server`` (never a fake):

- ``redis_server``: a :class:`RedisServer` on a free port of 127.0.0.1, no persistence, fresh
  for each test and stopped after it; ``.url`` for redis-py, ``.restart()`` for outage tests;
- ``redis_server_factory``: start more, with options (``persistence=True`` for an append-only
  file in a temporary directory that survives ``restart()``; ``password="..."`` for a server
  that requires it, given in a config file of mode 0600, never on its command line);
- ``redis_server_with_password``: a started server that requires a random password (its
  ``.url`` carries it, ``.password`` is it).

When ``redis-server`` is not on ``PATH`` these tests are skipped with a loud reason, except
under CI (environment ``CI=true``), where that is a failure. The server is driven with its own
binary and a raw ``PING`` over a socket, so these fixtures need no Python package.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest

if TYPE_CHECKING:
    from signalwire_chat.emulator import Emulator

__all__ = [
    "RedisServer",
    "emulator_factory",
    "redis_server",
    "redis_server_factory",
    "redis_server_with_password",
    "signalwire_emulator",
    "signalwire_emulator_session",
]

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


# --- a real redis-server ---------------------------------------------------------------------

_REDIS_START_SECONDS = 10.0
_REDIS_STOP_SECONDS = 5.0


def _free_port() -> int:
    # redis-server cannot report a port it chose itself (``--port 0`` turns TCP off), so take
    # one from the kernel and hand it over; ``RedisServer.start`` retries if it was taken since.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            # A server that requires a password answers, refusing: it is up all the same.
            return sock.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


class RedisServer:
    """A ``redis-server`` child process on 127.0.0.1, for tests.

    Nothing starts in the constructor: :meth:`start` launches it and waits (with a deadline)
    until it answers ``PING``; :meth:`stop` ends it (SIGTERM, then SIGKILL after a deadline).

    Args:
        persistence: Keep an append-only file in a temporary directory, so data survives
            :meth:`restart`. Without it (the default) a restart empties the server.
        binary: The redis-server executable.
        password: Require this password (``requirepass``, written to a config file of mode
            0600 in the server's directory: never in its argv).
    """

    def __init__(
        self,
        *,
        persistence: bool = False,
        binary: str = "redis-server",
        password: str | None = None,
    ) -> None:
        self.persistence = persistence
        self.binary = binary
        self.password = password
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer 127.0.0.1:{self.port} pid={self.pid}>"

    @property
    def url(self) -> str:
        """The ``redis://`` URL of the server (database 0), with the password if it has one."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        return self._process.pid if self._process is not None else None

    def start(self) -> RedisServer:
        """Start the server (on the port it had, after a :meth:`stop`) and wait for PING.

        Returns:
            The server itself.

        Raises:
            RuntimeError: It did not answer PING within the deadline, or kept exiting.
        """
        if self._process is not None:
            raise RuntimeError("redis-server is already running")
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="signalwire-redis-")
        reuse_port = self.port != 0
        config = self._config()
        for _attempt in range(5):
            port = self.port if reuse_port else _free_port()
            args = [
                self.binary,
                *config,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                self._dir.name,
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistence else "no",
                "--appendfsync",
                "always",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                "--logfile",
                str(Path(self._dir.name) / "redis.log"),
            ]
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL)  # noqa: S603 - fixed argv
            deadline = time.monotonic() + _REDIS_START_SECONDS
            while time.monotonic() < deadline and process.poll() is None:
                if _answers_ping(port):
                    self._process, self.port = process, port
                    return self
                # A fresh process needs a few milliseconds; the deadline bounds the wait.
                time.sleep(0.02)
            _end(process)
        raise RuntimeError(
            f"redis-server did not answer PING within {_REDIS_START_SECONDS:.0f} s "
            f"(log: {Path(self._dir.name) / 'redis.log'})"
        )

    def _config(self) -> list[str]:
        """The config file argument (with ``requirepass``), if a password is set."""
        if self.password is None:
            return []
        assert self._dir is not None
        path = Path(self._dir.name) / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(f'requirepass "{self.password}"\n')
        return [str(path)]

    def stop(self) -> None:
        """Stop the server (idempotent); the port is kept for a later :meth:`start`."""
        process, self._process = self._process, None
        if process is not None:
            _end(process)

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (nothing is flushed)."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(_REDIS_STOP_SECONDS)

    def restart(self) -> None:
        """Stop and start again on the same port (empty unless ``persistence``)."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_REDIS_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(_REDIS_STOP_SECONDS)


def _require_redis_server() -> str:
    binary = shutil.which("redis-server")
    if binary is not None:
        return binary
    reason = (
        "redis-server not found on PATH: SKIPPING the tests that need a real Redis "
        "(install the Debian package redis-server, or run `make test`, which does)"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but " + reason.replace(": SKIPPING", ", so CI cannot run"))
    pytest.skip("#" * 8 + " " + reason)


RedisServerFactory = Callable[..., RedisServer]


@pytest.fixture
def redis_server_factory() -> Iterator[RedisServerFactory]:
    """Return a function that starts a :class:`RedisServer` with the given options.

    Every server it started is stopped after the test, in reverse order.
    """
    binary = _require_redis_server()
    started: list[RedisServer] = []

    def make(**options: Any) -> RedisServer:
        options.setdefault("binary", binary)
        server = RedisServer(**options)
        started.append(server)
        return server.start()

    yield make
    for server in reversed(started):
        server.close()


@pytest.fixture
def redis_server(redis_server_factory: RedisServerFactory) -> RedisServer:
    """A started redis-server on a free port of 127.0.0.1, no persistence, one per test."""
    return redis_server_factory()


@pytest.fixture
def redis_server_with_password(redis_server_factory: RedisServerFactory) -> RedisServer:
    """As ``redis_server``, requiring a random password (in ``.url``; ``.password``)."""
    return redis_server_factory(password=secrets.token_hex(16))
