"""The library's threads: one function names and registers each one.

Every thread this library runs (the connection and dispatcher of a realtime hub, its
watchdog, the token refresher, a closer run from a finalizer, the REST deadline watchdog, a
lease's renewer) is made by :func:`new_thread`: a daemon thread named ``signalwire-chat-…``,
registered in one weak set. Nothing here starts a thread by itself: the owner starts it when
its work begins, never in a constructor, and stops it on ``close()``.

:func:`library_threads` lists the live ones (what a leak check looks at) and
:func:`on_library_thread` tells code that must not block on its own threads (a
``subscribe()`` called from a callback) where it runs.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from . import _fork

__all__ = ["PREFIX", "library_threads", "new_thread", "on_library_thread", "start_thread"]

#: The name of every library thread starts with this.
PREFIX = "signalwire-chat-"

_THREADS: weakref.WeakSet[threading.Thread] = weakref.WeakSet()
_LOCK = threading.Lock()


def _fresh_lock() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # another thread may have held it at the fork


_fork.after_fork_in_child(_fresh_lock)


def new_thread(
    target: Callable[..., object], name: str, *, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """A daemon thread running ``target(*args)``, named ``signalwire-chat-<name>``; not started."""
    full = name if name.startswith(PREFIX) else PREFIX + name
    thread = threading.Thread(target=target, args=args, name=full, daemon=True)
    with _LOCK:
        _THREADS.add(thread)
    return thread


def start_thread(
    target: Callable[..., object], name: str, *, args: tuple[Any, ...] = ()
) -> threading.Thread:
    """:func:`new_thread`, started."""
    thread = new_thread(target, name, args=args)
    thread.start()
    return thread


def library_threads() -> list[threading.Thread]:
    """The library's threads that are alive now."""
    with _LOCK:
        threads = list(_THREADS)
    return [thread for thread in threads if thread.is_alive()]


def on_library_thread() -> bool:
    """Whether the calling thread is one of the library's."""
    return threading.current_thread() in _THREADS
