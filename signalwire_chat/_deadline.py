"""The deadline watchdog: cuts off a response whose headers are still arriving at the deadline.

http.client reads a response's status line and headers in one call; a server that sends them one
byte at a time, each within the read timeout, would keep that call going for as long as it likes.
While a transport's request waits for its headers, the socket is registered here with the call's
deadline; at the deadline the watchdog shuts the socket down (``shutdown``, not ``close``: the
reading thread owns it), which ends the blocked read at once. The body is read piece by piece with
the deadline checked between pieces, so it needs no watching.

The watchdog thread (``signalwire-chat-http-deadline``) belongs to one transport: it starts with
the first watched request, never in a constructor, ends by itself after :data:`IDLE_SECONDS`
with nothing to watch (so a client nobody closes leaves no thread behind), and :meth:`close`
stops it at once.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from . import _fork
from ._threads import start_thread

__all__ = ["IDLE_SECONDS", "Watchdog"]

logger = logging.getLogger(__name__)

#: Seconds the thread waits with nothing to watch before it ends; it also never sleeps longer
#: than this, so a watch that ends without waking it (the usual case, to keep requests cheap)
#: is noticed within this time.
IDLE_SECONDS = 1.0


class Watchdog:
    """Shuts down registered sockets whose deadline (``time.monotonic()``) has passed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._watches: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._next_key = 0
        self._sleeping_until = float("inf")
        self._thread: threading.Thread | None = None
        self._generation = _fork.generation()
        self._closed = False

    def watch(self, sock: socket.socket, deadline: float) -> int:
        """Register ``sock`` until :meth:`unwatch`; returns the key to unwatch it with."""
        if _fork.forked_since(self._generation):
            # A forked child: the parent's thread is not here, and the lock may have been
            # copied while held. Start afresh.
            self._lock = threading.Lock()
            self._wake = threading.Condition(self._lock)
            self._thread, self._watches, self._fired = None, {}, set()
            self._sleeping_until = float("inf")
            self._generation = _fork.generation()
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._watches[key] = (deadline, sock)
            if self._closed:
                return key
            if self._thread is None:
                self._sleeping_until = deadline
                self._thread = start_thread(self._run, "http-deadline")
            elif deadline < self._sleeping_until:
                self._wake.notify()
            return key

    def unwatch(self, key: int) -> bool:
        """Forget a registration; returns whether its socket was cut off at the deadline.

        The caller must then fail the read: http.client takes a cut during the headers for
        their end, and would go on with a truncated response.
        """
        with self._lock:
            self._watches.pop(key, None)
            if key in self._fired:
                self._fired.discard(key)
                return True
            return False

    def cut_all(self) -> None:
        """Cut off every watched socket now (the transport is closing); their reads fail."""
        if _fork.forked_since(self._generation):
            return  # the parent's sockets: never touched from a forked child
        with self._lock:
            watches, self._watches = self._watches, {}
            self._fired.update(watches)
        for _due, sock in watches.values():
            _shut(sock)

    def close(self, timeout: float = 1.0) -> None:
        """Stop the thread (idempotent); watched reads are left to their own timeouts."""
        with self._lock:
            self._closed = True
            thread = None if _fork.forked_since(self._generation) else self._thread
            self._wake.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        with self._lock:
            try:
                while not self._closed:
                    now = time.monotonic()
                    for key in [k for k, (due, _) in self._watches.items() if due <= now]:
                        _due, sock = self._watches.pop(key)
                        self._fired.add(key)
                        _shut(sock)
                    if self._watches:
                        earliest = min(due for due, _ in self._watches.values())
                        self._sleeping_until = min(earliest, now + IDLE_SECONDS)
                        self._wake.wait(self._sleeping_until - now)
                        continue
                    self._sleeping_until = float("inf")
                    if not self._wake.wait(IDLE_SECONDS) and not self._watches:
                        return  # idle: a later watch starts a new thread
            finally:
                self._thread = None


def _shut(sock: socket.socket) -> None:
    try:
        # The plain socket's shutdown, also for a TLS socket: the reading thread owns the TLS
        # state; cutting the transport under it makes its read end with an error.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
        logger.debug("deadline passed while the response headers were arriving: cut off")
    except OSError:
        pass  # already closed
