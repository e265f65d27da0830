"""Fixtures that run the official SignalWire browser SDKs in Node against the emulator.

Each SDK has a folder of its own with pinned dependencies (``npm ci``) and a harness:
``js/`` (``@signalwire/js`` 3.28.0, the address dialect), ``sdk-client-0.0.1/``
(``@signalwire/client`` 0.0.1) and ``sdk-js-4.0.0-beta.12/`` (``@signalwire/js``
4.0.0-beta.12), both of the group dialect.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
JS_DIR = HERE / "js"
HARNESS = JS_DIR / "harness.mjs"
SDK_DIR = JS_DIR / "node_modules" / "@signalwire" / "js"
CLIENT_001_DIR = HERE / "sdk-client-0.0.1"
JS_V4_DIR = HERE / "sdk-js-4.0.0-beta.12"

# Each official client run should take seconds; these bound every wait.
START_TIMEOUT = 15.0
CALL_TIMEOUT = 10.0
EXIT_TIMEOUT = 5.0


def token_hosts(token: str) -> tuple[str, str]:
    """Return (fabric origin, relay origin) that protocol.md derives from the SAT header's `ch`."""
    header = token.split(".", 1)[0]
    claims = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    ch = claims["ch"]
    return "https://fabric." + ch.split(".", 1)[1], "wss://" + ch


class OfficialClientError(AssertionError):
    """The harness reported a failure, died, or missed a deadline."""


class OfficialClient:
    """One Node process running `SignalWire({token})` of @signalwire/js, driven line by line.

    Observations the harness prints are kept in order; tests wait on them with deadlines.
    """

    def __init__(
        self,
        node: str,
        config: dict[str, Any],
        stderr_path: Path,
        *,
        harness: Path = HARNESS,
    ) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self._lock = threading.Condition()
        self._observations: list[dict[str, Any]] = []
        self._seq = 0
        self._eof = False
        self._proc = subprocess.Popen(
            [node, str(harness)],
            cwd=harness.parent,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )
        self._reader = threading.Thread(target=self._read, name="official-client-stdout")
        self._reader.start()
        self._write(config)

    # -- plumbing ---------------------------------------------------------------------------

    def _write(self, payload: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(payload) + "\n")
        self._proc.stdin.flush()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                obs = json.loads(line)
            except ValueError:
                obs = {"obs": "garbage", "line": line}
            with self._lock:
                self._observations.append(obs)
                self._lock.notify_all()
        with self._lock:
            self._eof = True
            self._lock.notify_all()

    def stderr_tail(self, size: int = 3000) -> str:
        """Return the end of the Node process's stderr (the SDK's own log)."""
        self._stderr.flush()
        return self._stderr_path.read_bytes()[-size:].decode("utf-8", "replace")

    @property
    def observations(self) -> list[dict[str, Any]]:
        """A snapshot of everything the harness printed so far."""
        with self._lock:
            return list(self._observations)

    def wait_for(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        *,
        timeout: float = CALL_TIMEOUT,
        start: int = 0,
        what: str = "an observation",
    ) -> tuple[int, dict[str, Any]]:
        """Wait until an observation at index >= start satisfies predicate; return (index, obs)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                for index in range(start, len(self._observations)):
                    obs = self._observations[index]
                    if obs.get("obs") == "fatal":
                        raise OfficialClientError(f"harness failed: {obs} \n{self.stderr_tail()}")
                    if predicate(obs):
                        return index, obs
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    state = "exited" if self._eof else f"timed out after {timeout:.0f} s"
                    raise OfficialClientError(
                        f"official client {state} waiting for {what}; seen "
                        f"{self._observations[-10:]}\n--- node stderr ---\n{self.stderr_tail()}"
                    )
                self._lock.wait(remaining)

    def wait_ready(self) -> dict[str, Any]:
        """Wait until `SignalWire()` resolved (socket open and `signalwire.connect` answered)."""
        return self.wait_for(
            lambda o: o.get("obs") == "ready", timeout=START_TIMEOUT, what="ready"
        )[1]

    def call_raw(self, op: str, timeout: float = CALL_TIMEOUT, **params: Any) -> dict[str, Any]:
        """Run one command; return its result observation, successful or not."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        self._write({"seq": seq, "op": op, **params})
        return self.wait_for(
            lambda o: o.get("obs") == "result" and o.get("seq") == seq,
            timeout=timeout,
            what=f"the result of {op}",
        )[1]

    def call(self, op: str, timeout: float = CALL_TIMEOUT, **params: Any) -> Any:
        """Run one command and return its value; a rejected promise fails the test."""
        result = self.call_raw(op, timeout=timeout, **params)
        if not result["ok"]:
            raise OfficialClientError(
                f"official client {op} failed: {result['error']}\n"
                f"--- node stderr ---\n{self.stderr_tail()}"
            )
        return result["value"]

    def messages(self, start: int = 0) -> list[dict[str, Any]]:
        """Return the chat.subscribe callbacks' payloads observed from index start."""
        return [o["message"] for o in self.observations[start:] if o.get("obs") == "message"]

    def close(self, *, disconnect: bool = True) -> None:
        """Ask the client to disconnect (unless told not to) and exit; kill it after a deadline."""
        try:
            if self._proc.poll() is None and not self._eof:
                self._write({"op": "exit", "disconnect": disconnect})
        except (BrokenPipeError, OSError):
            pass
        try:
            self._proc.wait(EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(EXIT_TIMEOUT)
        finally:
            for stream in (self._proc.stdin, self._proc.stdout):
                if stream is not None:
                    stream.close()
            self._reader.join(EXIT_TIMEOUT)
            self._stderr.close()


@pytest.fixture(scope="session")
def node_binary() -> str:
    """The `node` executable; skips the conformance suite only when Node is not installed."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is not installed, and CI must run the conformance suite")
        pytest.skip("node is not installed: the conformance suite runs the official JS client")
    if not SDK_DIR.is_dir() or not (JS_DIR / "node_modules" / "ws").is_dir():
        pytest.fail("run npm ci in tests/conformance/js (or `make test`): node_modules is missing")
    return node


def _require_installed(folder: Path, package: str) -> None:
    if (
        not (folder / "node_modules" / package).is_dir()
        or not (folder / "node_modules" / "ws").is_dir()
    ):
        pytest.fail(f"run npm ci in {folder.relative_to(HERE.parent.parent)} (or `make test`)")


def harness_config(emulator: Any, token: str) -> dict[str, Any]:
    """The configuration a harness reads: the emulator's URLs, the token and its origins."""
    fabric_origin, relay_origin = token_hosts(token)
    return {
        "rest_url": emulator.rest_url,
        "relay_url": emulator.relay_url,
        "token": token,
        "fabric_origin": fabric_origin,
        "relay_origin": relay_origin,
        "log_level": "warn",
    }


def _clients_of(
    node: str, tmp_path: Path, harness: Path
) -> Iterator[Callable[..., OfficialClient]]:
    """Yield a factory of official clients run by `harness`; then close every one it started."""
    started: list[OfficialClient] = []

    def start(emulator: Any, token: str, *, wait: bool = True) -> OfficialClient:
        log = tmp_path / f"node-{harness.parent.name}-{len(started)}.log"
        client = OfficialClient(node, harness_config(emulator, token), log, harness=harness)
        started.append(client)
        if wait:
            client.wait_ready()
        return client

    yield start
    for client in started:
        client.close()
    # Every URL the SDK used must be one derived from the token's `ch` (or a page link naming
    # the emulator itself): anything else means host derivation or a link is wrong.
    strays = [o for c in started for o in c.observations if o.get("obs") == "unexpected_url"]
    assert not strays, f"the official client reached for unexpected hosts: {strays}"


@pytest.fixture
def official_client(node_binary: str, tmp_path: Path) -> Iterator[Callable[..., OfficialClient]]:
    """Factory: `official_client(emulator, token)` starts a connected @signalwire/js 3.28.0."""
    yield from _clients_of(node_binary, tmp_path, HARNESS)


@pytest.fixture
def client_001(node_binary: str, tmp_path: Path) -> Iterator[Callable[..., OfficialClient]]:
    """Factory: `client_001(emulator, token)` starts a connected @signalwire/client 0.0.1."""
    _require_installed(CLIENT_001_DIR, "@signalwire/client")
    yield from _clients_of(node_binary, tmp_path, CLIENT_001_DIR / "harness.mjs")


@pytest.fixture
def js_v4(node_binary: str, tmp_path: Path) -> Iterator[Callable[..., OfficialClient]]:
    """Factory: `js_v4(emulator, token)` starts a connected @signalwire/js 4.0.0-beta.12."""
    _require_installed(JS_V4_DIR, "@signalwire/js")
    yield from _clients_of(node_binary, tmp_path, JS_V4_DIR / "harness.cjs")


Predicate = Callable[[dict[str, Any]], bool]


def obs_is(kind: str, **fields: Any) -> Predicate:
    """Return a predicate matching observations of kind whose fields equal the given values."""

    def match(obs: dict[str, Any]) -> bool:
        return obs.get("obs") == kind and all(obs.get(k) == v for k, v in fields.items())

    return match
