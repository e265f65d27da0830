"""The README's and the guides' Python blocks run as tests, against the emulator (Sybil).

Every ```python block of README.md and docs/**/*.md runs, in the order written, in one
namespace per document, so a block may use what an earlier one of the same page defined. The
namespace holds only what a reader substitutes: ``token`` and ``bot_token`` (subscribers'
tokens), ``address_id`` (a room), the project credentials ``space_url``, ``project_id`` and
``api_token``, ``redis_url`` (a real redis-server, for the pages that name it), and the
reader's own functions and objects the blocks call but do not define (``handle``, ``report``,
``answer``, a ``statsd`` client).
The tokens name the service's hosts; the test sends those hosts to the emulator, as a hosts
file would, and changes nothing else.

Two markers, HTML comments that the rendered pages do not show, drive the rest:

- ``<!-- invisible-code-block: python ... -->``: what the reader would do next, with
  assertions (send a message to the bot, press Ctrl-C, look at what arrived). The helpers
  named ``docs_*`` below are for those blocks only.
- ``<!-- skip: next "why" -->``: a block that cannot run here; the reason is required and the
  skips are counted (``test_skipped_blocks_are_few_and_say_why``).

A block that raises fails its page's test, naming the file and line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sybil import Sybil
from sybil.parsers.markdown import PythonCodeBlockParser, SkipParser

import signalwire_chat
from signalwire_chat import ChatClient
from signalwire_chat.emulator import Emulator

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("**/*.md"))]
DOCUMENTS = [path for path in DOCUMENTS if "_build" not in path.parts]
# A deadline for what a block waits on (generous: the machine may be loaded).
WAIT_SECONDS = 30.0
SKIP_MARKER = re.compile(r"<!--\s*skip:\s*next(?P<reason>[^\n]*?)\s*-->")
MOST_SKIPS = 3  # the lease loop, the Django view, Celery: raise it only with a reason

_SYBIL = Sybil(parsers=[PythonCodeBlockParser(), SkipParser()])


def _python_blocks(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    return len(re.findall(r"^[ \t]*```python[ \t]*$", text, re.MULTILINE))


def _documents_with_code() -> list[Path]:
    return [path for path in DOCUMENTS if _python_blocks(path)]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


class _Reader:
    """What a reader brings to the page: an emulator in place of the service, and helpers."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.alice = emulator.create_subscriber("alice@example.com", display_name="Alice")
        self.bob = emulator.create_subscriber("bob@example.com", display_name="Bob")
        self.carol = emulator.create_subscriber("carol@example.com", display_name="Carol")
        self.bot = emulator.create_subscriber("bot@example.com", display_name="Bot")
        self.room = emulator.create_room("lobby")
        self.handled: list[Any] = []
        self.reported: list[BaseException] = []
        self.helpers: list[threading.Thread] = []
        emulator.join_group(self.bot, [self.room.id])  # the pages' bot answers in the room

    def texts(self) -> list[str]:
        """Every chat message's text in the room, oldest first."""
        return [m.get("text") or "" for m in self.emulator.messages(self.room.id)]

    def chat(self, text: str) -> None:
        """Bob writes in the room."""
        self.emulator.send_as(self.bob, self.room.id, text)

    def wait_for(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {WAIT_SECONDS:.0f} s: {what}")
            time.sleep(0.05)  # polling a condition with a deadline, not timing anything

    @contextlib.contextmanager
    def ctrl_c_when(
        self, condition: Callable[[], bool], nudge: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Press Ctrl-C once ``condition()`` holds, while the ``with`` body runs a loop.

        Ctrl-C is a real SIGINT to the main thread, where the page's loop runs. ``nudge`` (if
        given) is called first and again every few seconds until the condition holds: a
        message sent before the loop listens is not seen by it. Past the deadline Ctrl-C is
        pressed anyway, so the page's own assertion fails instead of the test hanging.
        """
        stop = threading.Event()
        armed = True

        def on_sigint(signum: int, frame: object) -> None:
            if armed:  # the loop still runs: Ctrl-C, as Python's own handler does
                raise KeyboardInterrupt
            # The body already returned: a late press must not interrupt the test run.

        def press_ctrl_c() -> None:
            deadline = time.monotonic() + WAIT_SECONDS
            while not stop.is_set() and time.monotonic() < deadline:
                if nudge is not None:
                    nudge()
                again_at = time.monotonic() + 5.0
                while time.monotonic() < again_at and not stop.is_set() and not condition():
                    stop.wait(0.05)
                if condition():
                    break
            if not stop.is_set():
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

        previous = signal.signal(signal.SIGINT, on_sigint)
        helper = threading.Thread(target=press_ctrl_c, name="docs-ctrl-c")
        helper.start()
        try:
            yield
        finally:
            armed = False
            stop.set()
            helper.join(WAIT_SECONDS)
            signal.signal(signal.SIGINT, previous)

    def ctrl_c_once_echoed(self, text: str) -> contextlib.AbstractContextManager[None]:
        """Bob writes ``text`` (again, until a bot answers "echo: text"), then Ctrl-C."""
        return self.ctrl_c_when(
            lambda: f"echo: {text}" in self.texts(), nudge=lambda: self.chat(text)
        )

    def close_once_streamed(
        self, namespace: dict[str, Any], name: str, redis_url: str, stream: str
    ) -> None:
        """Once the page binds ``name`` and ``stream`` has an entry, close that object.

        For a block that runs until ``close()`` is called from another thread (the bridge).
        Bob writes until the stream has an entry (what is sent before the bridge leads is
        not its to append). The helper is joined when the page's test ends.
        """
        import redis

        connection = redis.Redis.from_url(redis_url)

        def closer() -> None:
            deadline = time.monotonic() + WAIT_SECONDS
            try:
                while time.monotonic() < deadline and name not in namespace:
                    time.sleep(0.05)
                while time.monotonic() < deadline and not connection.xlen(stream):
                    self.chat("hi bridge")
                    again_at = time.monotonic() + 5.0
                    while time.monotonic() < again_at and not connection.xlen(stream):
                        time.sleep(0.05)
            finally:
                connection.close()
                if name in namespace:
                    namespace[name].close()

        helper = threading.Thread(target=closer, name="docs-closer")
        self.helpers.append(helper)
        helper.start()


class _Statsd:
    """The reader's metrics client, as the observability page calls it."""

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = {}
        self.counts: dict[str, int] = {}

    def timing(self, name: str, seconds: float) -> None:
        self.timings.setdefault(name, []).append(seconds)

    def incr(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1


def _namespace(reader: _Reader, request: pytest.FixtureRequest, text: str) -> dict[str, Any]:
    emu = reader.emulator

    def handle(msg: Any) -> None:
        reader.handled.append(msg)

    def report(error: BaseException) -> None:
        reader.reported.append(error)

    def answer(question: Any) -> str:
        return "thanks for writing"

    namespace: dict[str, Any] = {
        "__name__": "__doc_page__",  # not "__main__": `if __name__ == "__main__":` stays out
        "token": reader.alice.token,
        "bot_token": reader.bot.token,
        "address_id": reader.room.id,
        "bob_address": reader.bob.address_id,
        "carol_address": reader.carol.address_id,
        "space_url": emu.space_url,
        "project_id": emu.project_id,
        "api_token": emu.api_token,
        "handle": handle,
        "report": report,
        "answer": answer,
        "statsd": _Statsd(),
        "docs_reader": reader,
    }
    if "redis_url" in text:
        namespace["redis_url"] = request.getfixturevalue("redis_server").url
    return namespace


@pytest.fixture
def hosts_are_the_emulator(
    signalwire_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> Emulator:
    """Send the hosts a token names (``fabric.emulator.test``...) to the emulator.

    The emulator serves plain HTTP on loopback, so a token's ``ch`` cannot lead there the way
    it leads to the service; like a hosts file, this changes where the hosts are and nothing
    else (the derivation itself is unit-tested in tests/unit/test_token.py).
    """
    from signalwire_chat import _config

    def to_the_emulator(**kwargs: Any) -> tuple[str, str]:
        return (
            kwargs.get("rest_url") or signalwire_emulator.rest_url,
            kwargs.get("relay_url") or signalwire_emulator.relay_url,
        )

    monkeypatch.setattr(_config, "derive_urls", to_the_emulator)
    return signalwire_emulator


@contextlib.contextmanager
def _logging_restored() -> Iterator[None]:
    """A page may configure logging (basicConfig, a handler): undo it after the page."""
    loggers = [logging.getLogger(), logging.getLogger("signalwire_chat")]
    saved = [(lg, list(lg.handlers), lg.level) for lg in loggers]
    try:
        yield
    finally:
        for lg, handlers, level in saved:
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()
            lg.handlers[:] = handlers
            lg.setLevel(level)


def _close_what_the_page_left_open(namespace: dict[str, Any]) -> None:
    import redis

    for value in list(namespace.values()):
        if isinstance(value, (ChatClient, redis.Redis)):
            value.close()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("path", _documents_with_code(), ids=_name)
def test_the_python_blocks_of_a_page_run(
    path: Path,
    hosts_are_the_emulator: Emulator,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # files a page writes (export.jsonl, state/...) land here
    monkeypatch.setenv("SIGNALWIRE_CHAT_CHECKPOINTS", str(tmp_path / "checkpoints.db"))
    monkeypatch.syspath_prepend(str(ROOT / "examples"))  # the pages import the examples' helpers
    reader = _Reader(hosts_are_the_emulator)
    document = _SYBIL.parse(path)
    document.namespace.update(_namespace(reader, request, document.text))
    ran = skipped = 0
    with _logging_restored():
        try:
            for example in document.examples():
                try:
                    example.evaluate()
                except unittest.SkipTest:  # a `skip: next "why"` marker
                    skipped += 1
                else:
                    ran += 1
        finally:
            for helper in reader.helpers:
                helper.join(WAIT_SECONDS)
            _close_what_the_page_left_open(document.namespace)
    assert ran > 0
    assert reader.reported == [], f"on_error was called: {reader.reported!r}"


def test_every_python_block_is_collected() -> None:
    """Each ```python fence of every page is an example (none hides behind a typo)."""
    total = 0
    for path in DOCUMENTS:
        document = _SYBIL.parse(path)
        fenced = [
            example
            for example in document.examples()
            if document.text[example.start :].lstrip(" ").startswith("```")
        ]
        assert len(fenced) == _python_blocks(path), _name(path)
        total += len(fenced)
    assert total >= 25  # issue 18 counted 24 in the README and the guides; index.md has one


def test_skipped_blocks_are_few_and_say_why() -> None:
    reasons = []
    for path in DOCUMENTS:
        for match in SKIP_MARKER.finditer(path.read_text(encoding="utf-8")):
            reason = match.group("reason").strip()
            assert re.fullmatch(r'"[^"]{20,}"', reason), f"{_name(path)}: skip without a reason"
            reasons.append(reason)
    assert len(reasons) <= MOST_SKIPS, reasons


def test_the_package_the_pages_import_is_this_one() -> None:
    assert Path(signalwire_chat.__file__).resolve().is_relative_to(ROOT)


def test_the_gunicorn_command_of_the_guide_loads_the_flask_example(
    signalwire_emulator: Emulator,
) -> None:
    """The guide's `gunicorn ... APP` names an app gunicorn can load from examples/."""
    guide = (ROOT / "docs" / "guides" / "web-frameworks.md").read_text(encoding="utf-8")
    [line] = [line for line in guide.splitlines() if line.startswith("gunicorn ")]
    argv = shlex.split(line)
    assert "--preload" in argv
    emu = signalwire_emulator
    env = {
        **os.environ,
        "SIGNALWIRE_SPACE_URL": emu.space_url,
        "SIGNALWIRE_PROJECT_ID": emu.project_id,
        "SIGNALWIRE_API_TOKEN": emu.api_token,
        "SIGNALWIRE_REST_URL": emu.rest_url,
        "SIGNALWIRE_RELAY_URL": emu.relay_url,
    }
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from gunicorn.util import import_app; "
            "print(type(import_app(sys.argv[1])).__name__)",
            argv[-1],
        ],
        cwd=ROOT / "examples",
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT_SECONDS * 2,
        check=False,
    )
    assert (loaded.returncode, loaded.stdout.strip()) == (0, "Flask"), loaded.stderr
