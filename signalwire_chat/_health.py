"""The client's health: counters kept as it works, read as one frozen snapshot.

:meth:`ChatClient.health` is meant for a web health-check endpoint called on every request: a
snapshot copies a few integers under two short locks (the REST counters here, the realtime
ones in ``_rtstats``) and reads the realtime state the client already holds; it sends
nothing, starts nothing, and loads no realtime module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ._state import ConnectionState

__all__ = ["ClientHealth", "RestCounters", "StateClock"]


@attrs.frozen(kw_only=True)
class ClientHealth:
    """A snapshot of what a client has done and where it stands.

    Counts run from the client's creation. Times are ``time.time()`` seconds.

    Attributes:
        rest_calls: REST calls made (each client method call that talks to the service
            counts once, whatever its retries), finished or failed.
        rest_calls_failed: Of those, how many raised.
        rest_attempts: Requests sent, resends included.
        rest_retries: Resends (after a network failure, 429, 502/503/504, or a 401 that
            refreshed the token).
        rest_failures: Failed attempts by kind: the name of the error the library raises
            for it (``{"ServerError": 2, "ConnectError": 1}``); retried ones included.
        last_error: The kind of the last failed attempt, or ``None``.
        last_error_at: When it happened, or ``None``.
        token_expires_at: When the current token expires, as the relay said when it
            accepted the connection (or the last token refresh); ``None`` before any
            realtime connection, or when the relay did not say.
        connection_state: The realtime connection's :class:`~signalwire_chat.ConnectionState`.
        connection_state_since: When the client saw it enter that state (for ``IDLE``
            before any subscription: the client's creation).
        connection_state_reason: Why it entered that state (see
            :class:`~signalwire_chat.StateChangeEvent`), or ``None`` before any subscription.
        last_event_at: When the last message event arrived from the relay, or ``None``.
        messages_delivered: Messages handed to ``on_message`` callbacks (streams included),
            live and caught up.
        messages_from_catch_up: Of those, how many were read from the history after a
            reconnect (or a late connect).
        duplicates_dropped: Messages that arrived again after being delivered, and were
            dropped (a redelivery after a resume, a live event of a message the catch-up
            delivered first).
        reconnects: How many times the connection was lost (or refused) and made again
            (entries into ``RECONNECTING``).
        reconnect_reasons: Why, for the last ten of them, oldest first (e.g. ``"ping
            timeout"``, ``"socket closed by the relay"``).
        queue_depth: Messages received and still waiting for the callbacks (0 without a
            connection).
    """

    rest_calls: int
    rest_calls_failed: int
    rest_attempts: int
    rest_retries: int
    rest_failures: Mapping[str, int]
    last_error: str | None
    last_error_at: float | None
    token_expires_at: float | None
    connection_state: ConnectionState
    connection_state_since: float
    connection_state_reason: str | None = None
    last_event_at: float | None = None
    messages_delivered: int = 0
    messages_from_catch_up: int = 0
    duplicates_dropped: int = 0
    reconnects: int = 0
    reconnect_reasons: tuple[str, ...] = ()
    queue_depth: int = 0

    @property
    def connected(self) -> bool:
        """Whether the realtime connection is up (``CONNECTED``)."""
        return self.connection_state.value == "connected"


class RestCounters:
    """The REST counters of one client, updated by the transport's calls (thread-safe)."""

    __slots__ = (
        "_lock",
        "attempts",
        "calls",
        "calls_failed",
        "failures",
        "last_error",
        "last_error_at",
        "retries",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0
        self.calls_failed = 0
        self.attempts = 0
        self.retries = 0
        self.failures: dict[str, int] = {}
        self.last_error: str | None = None
        self.last_error_at: float | None = None

    def attempt(self, error: str | None, retried: bool) -> None:
        """One attempt ended; ``error`` is its failure kind; ``retried`` if it is sent again."""
        with self._lock:
            self.attempts += 1
            if retried:
                self.retries += 1
            if error is not None:
                self.failures[error] = self.failures.get(error, 0) + 1
                self.last_error = error
                self.last_error_at = time.time()

    def call(self, error: str | None, counted: bool, attempts: int) -> None:
        """One call ended; ``error`` is the name of what it raised.

        ``counted``: the error is the one its last attempt already reported; otherwise (a
        body that is not JSON, a refresh that failed, a closed client) it is a failure too.
        ``attempts``: its attempts not yet reported through :meth:`attempt`.
        """
        with self._lock:
            self.calls += 1
            self.attempts += attempts
            if error is not None:
                self.calls_failed += 1
                if not counted:
                    self.failures[error] = self.failures.get(error, 0) + 1
                    self.last_error = error
                    self.last_error_at = time.time()

    def snapshot(self) -> tuple[int, int, int, int, Mapping[str, int], str | None, float | None]:
        """The counters, copied under the lock."""
        with self._lock:
            return (
                self.calls,
                self.calls_failed,
                self.attempts,
                self.retries,
                MappingProxyType(dict(self.failures)),
                self.last_error,
                self.last_error_at,
            )


class StateClock:
    """When the realtime connection entered its current state, as the client saw it.

    It starts ``IDLE`` at the client's creation.
    """

    __slots__ = ("_lock", "since", "state")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state: ConnectionState | None = None  # None: IDLE, before the realtime side loaded
        self.since = time.time()

    def saw(self, state: ConnectionState) -> tuple[ConnectionState | None, float, bool]:
        """Record ``state``; returns the previous state, the time it is since, and if it changed."""
        with self._lock:
            previous = self.state
            if previous is state or (previous is None and state.value == "idle"):
                self.state = state
                return previous, self.since, False
            self.state = state
            self.since = time.time()
            return previous, self.since, True
