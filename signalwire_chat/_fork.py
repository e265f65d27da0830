"""Fork: the one place that knows this process was forked.

A child made by ``os.fork()`` (gunicorn's ``--preload``, multiprocessing's fork start) gets a
copy of the parent's memory but none of its threads, and a lock another thread held at the
fork stays held for ever. What the library keeps per process (a hub and its threads, the
REST pool, the deadline watchdog) must therefore be made afresh on its first use in a child.

``os.register_at_fork`` bumps a generation counter in every child; an owner notes
:func:`generation` when it makes its per-process state and asks :func:`forked_since` before
using it; state whose locks must be fresh before anything runs in the child registers with
:func:`after_fork_in_child`; an object whose locks a thread may hold across a request (a token
fetch, a group join) registers itself with :func:`renew_in_child`. No other module reads
``os.getpid()`` to find out.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["after_fork_in_child", "forked_since", "generation", "renew_in_child"]

_generation = 0
_callbacks: list[Callable[[], None]] = []
#: Live objects whose ``_renew_after_fork()`` runs in every child (see :func:`renew_in_child`).
_renewable: weakref.WeakSet[Any] = weakref.WeakSet()


def _in_child() -> None:
    global _generation
    _generation += 1
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:
            logging.getLogger(__name__).warning("after-fork callback failed", exc_info=True)
    for owner in list(_renewable):
        try:
            owner._renew_after_fork()
        except Exception:
            logging.getLogger(__name__).warning("after-fork renewal failed", exc_info=True)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_in_child)


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Call ``callback`` in every forked child, right after the generation moved on.

    For state whose locks a fork may have copied while held (they must be replaced before
    any thread of the child takes them). Keep it short: it runs inside ``os.fork()``.
    """
    _callbacks.append(callback)


def renew_in_child(owner: Any) -> None:
    """Call ``owner._renew_after_fork()`` in every forked child, for as long as ``owner`` lives.

    For an object shared by threads whose lock one of them may hold across a request (the
    token source's fetch, the subscriber lookup, a group join): a fork copies that lock held,
    and no thread of the child will ever release it, so the child's first call would wait for
    ever. ``_renew_after_fork`` replaces such locks (and drops work the parent's threads had
    under way); it runs inside ``os.fork()``, single-threaded, so keep it short. Only a weak
    reference is kept.
    """
    _renewable.add(owner)


def generation() -> int:
    """This process's generation: 0 in the process that imported us, one more per fork."""
    return _generation


def forked_since(noted: int) -> bool:
    """Whether this process is a fork made after :func:`generation` returned ``noted``."""
    return noted != _generation
