"""Fork: the one place that knows this process was forked.

A child made by ``os.fork()`` (gunicorn's ``--preload``, multiprocessing's fork start) gets a
copy of the parent's memory but none of its threads, and a lock another thread held at the
fork stays held for ever. What the library keeps per process (a hub and its threads, the
REST pool, the deadline watchdog) must therefore be made afresh on its first use in a child.

``os.register_at_fork`` bumps a generation counter in every child; an owner notes
:func:`generation` when it makes its per-process state and asks :func:`forked_since` before
using it; state whose locks must be fresh before anything runs in the child registers with
:func:`after_fork_in_child`. No other module reads ``os.getpid()`` to find out.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

__all__ = ["after_fork_in_child", "forked_since", "generation"]

_generation = 0
_callbacks: list[Callable[[], None]] = []


def _in_child() -> None:
    global _generation
    _generation += 1
    for callback in list(_callbacks):
        try:
            callback()
        except Exception:
            logging.getLogger(__name__).warning("after-fork callback failed", exc_info=True)


if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_in_child)


def after_fork_in_child(callback: Callable[[], None]) -> None:
    """Call ``callback`` in every forked child, right after the generation moved on.

    For state whose locks a fork may have copied while held (they must be replaced before
    any thread of the child takes them). Keep it short: it runs inside ``os.fork()``.
    """
    _callbacks.append(callback)


def generation() -> int:
    """This process's generation: 0 in the process that imported us, one more per fork."""
    return _generation


def forked_since(noted: int) -> bool:
    """Whether this process is a fork made after :func:`generation` returned ``noted``."""
    return noted != _generation
