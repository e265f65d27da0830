"""A thread-safe recorder of the emulator's traffic (HTTP exchanges and websocket frames).

Recording is off until a :class:`Recording` is opened (``Emulator.recording()``). Tokens
are redacted before an entry is stored unless the recording asks for them: the
``Authorization`` header keeps its scheme, and any value under a key named ``token``,
``jwt_token`` or ``refresh_token`` becomes ``"<redacted>"``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, overload

__all__ = ["REDACTED", "Recording", "TrafficRecorder"]

REDACTED = "<redacted>"
_TOKEN_KEYS = frozenset({"token", "jwt_token", "refresh_token"})


class Recording(Sequence[dict[str, Any]]):
    """The entries recorded while it was open, oldest first; a context manager.

    Entries are dicts with at least ``kind`` (``"http"``, ``"ws_open"``, ``"ws_recv"``,
    ``"ws_send"``, ``"ws_close"``...), ``seq`` and ``t`` (seconds since the recording
    started). It reads as a list while traffic is still being added.
    """

    def __init__(self, recorder: TrafficRecorder, *, redact: bool) -> None:
        self._recorder = recorder
        self._entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.redact = redact
        self.started = time.monotonic()

    def __enter__(self) -> Recording:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop recording into this object; idempotent. Entries stay readable."""
        self._recorder.detach(self)

    def add(self, entry: dict[str, Any]) -> None:
        """Append one entry (called by the recorder)."""
        with self._lock:
            entry = {"seq": len(self._entries) + 1, **entry}
            self._entries.append(entry)

    def entries(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Return a snapshot of the entries, optionally only those of one kind."""
        with self._lock:
            return [e for e in self._entries if kind is None or e.get("kind") == kind]

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        with self._lock:
            return self._entries[index]

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.entries())

    def __repr__(self) -> str:
        return f"<Recording entries={len(self)}>"


class TrafficRecorder:
    """Fans recorded entries out to the open recordings; cheap when none is open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recordings: list[Recording] = []

    @property
    def enabled(self) -> bool:
        """True while at least one recording is open."""
        return bool(self._recordings)

    def is_recording(self) -> bool:
        """True while at least one recording is open (``enabled``, as a cheap callable)."""
        return bool(self._recordings)

    def start(self, *, redact: bool = True) -> Recording:
        """Open a new recording."""
        recording = Recording(self, redact=redact)
        with self._lock:
            self._recordings.append(recording)
        return recording

    def detach(self, recording: Recording) -> None:
        """Close a recording (no more entries go into it)."""
        with self._lock:
            if recording in self._recordings:
                self._recordings.remove(recording)

    def record(self, entry: dict[str, Any]) -> None:
        """Record one traffic entry; a no-op unless a recording is open. Thread-safe."""
        with self._lock:
            targets = list(self._recordings)
        if not targets:
            return
        redacted: dict[str, Any] | None = None
        for recording in targets:
            if recording.redact:
                if redacted is None:
                    redacted = redact(entry)
                item = dict(redacted)
            else:
                item = dict(entry)
            item.setdefault("t", round(time.monotonic() - recording.started, 6))
            recording.add(item)


def redact(value: Any) -> Any:
    """Return a copy of ``value`` with tokens replaced by ``"<redacted>"``."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            lowered = key.lower() if isinstance(key, str) else key
            if lowered in _TOKEN_KEYS and isinstance(item, str):
                out[key] = REDACTED
            elif lowered == "authorization" and isinstance(item, str):
                scheme = item.split(" ", 1)[0] if " " in item else ""
                out[key] = f"{scheme} {REDACTED}".strip()
            else:
                out[key] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value
