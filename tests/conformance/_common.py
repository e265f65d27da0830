"""What the conformance tests share besides the fixtures of conftest.py.

Waiting (with a deadline) for our client's socket, and reading the emulator's recordings: waiting
for an entry, recognising a ping answer, pairing each server request with the client's answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
WAIT = 10.0

Entry = dict[str, Any]


def wait_connected(ours: Any, timeout: float = WAIT) -> None:
    """Wait until our client's socket is up (subscribe() may return before it is)."""
    from signalwire_chat import ConnectionState

    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while ours.connection_state is not ConnectionState.CONNECTED:
        assert time.monotonic() < deadline, f"our client never connected: {ours.connection_state}"
        pause.wait(0.02)


def wait_recorded(rec: Any, predicate: Callable[[Entry], bool], what: str) -> Entry:
    """Wait (with a deadline) until the recording holds an entry matching predicate."""
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while True:
        for entry in rec.entries():
            if predicate(entry):
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"never recorded {what}; got {rec.entries()[-5:]}")
        pause.wait(0.02)


def is_ping_answer(rec: Any) -> Callable[[Entry], bool]:
    """A predicate: the entry is a client's answer to a ping the server sent."""

    def match(entry: Entry) -> bool:
        if entry["kind"] != "ws_recv" or "result" not in entry["frame"]:
            return False
        pings = {
            e["frame"]["id"]
            for e in rec.entries("ws_send")
            if e["frame"].get("method") == "signalwire.ping"
        }
        return entry["frame"].get("id") in pings

    return match


class Recording(Protocol):
    """The recordings of a parity run, by side (one client) and kind (ws_send, ws_recv...)."""

    def frames(self, side: str, kind: str) -> list[dict[str, Any]]: ...


def answers(recorded: Recording, side: str, method: str) -> list[tuple[dict[str, Any], Any]]:
    """Pair every server request of `method` with the client's answer (None when missing)."""
    replies: dict[str, list[dict[str, Any]]] = {}
    for frame in recorded.frames(side, "ws_recv"):
        if "method" not in frame:
            replies.setdefault(frame["id"], []).append(frame)
    pairs = []
    for frame in recorded.frames(side, "ws_send"):
        if frame.get("method") == method:
            found = replies.get(frame["id"], [])
            assert len(found) <= 1, f"{side} answered {frame['id']} {len(found)} times"
            pairs.append((frame, found[0] if found else None))
    return pairs
