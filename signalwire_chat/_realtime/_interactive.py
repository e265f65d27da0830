"""Callbacks defined in notebook cells, recognised so that a re-run cell replaces its subscription.

A Jupyter or IPython user who edits and re-runs ``sub = client.subscribe(room, show)``
means the new ``show`` instead of the old one, not both. Only functions whose module
is ``__main__`` and whose code comes from an IPython cell (``<ipython-input-3-1a2b>``)
or an ipykernel cell file (``/tmp/ipykernel_1234/2735318385.py``) are recognised;
callbacks defined in modules and plain scripts are never affected.
"""

from __future__ import annotations

import os
import re
import types
from typing import Any

__all__ = ["callback_name", "cell_origin"]

_IPYTHON_INPUT = re.compile(r"<ipython-input-\d+-[0-9a-fA-F]+>")
_IPYKERNEL_CELL = re.compile(r"(?:^|[/\\])ipykernel_\d+[/\\]\d+\.py")


def _function_of(callback: Any) -> Any:
    """The plain function behind ``callback`` (``__func__`` of a bound method)."""
    return getattr(callback, "__func__", callback)


def cell_origin(callback: Any) -> tuple[str, str] | None:
    """``(origin, qualname)`` of a callback defined in an interactive cell, else None.

    ``origin`` names the interpreter session the cell ran in: ``"ipython"`` for
    ``<ipython-input-...>`` cells, the kernel's cell directory for ipykernel files.
    Two callbacks with equal results are the same function of the same session,
    possibly redefined by a re-run cell.
    """
    func = _function_of(callback)
    if not isinstance(func, types.FunctionType) or func.__module__ != "__main__":
        return None
    filename = func.__code__.co_filename
    if _IPYTHON_INPUT.fullmatch(filename):
        origin = "ipython"
    elif _IPYKERNEL_CELL.search(filename):
        origin = os.path.dirname(filename)
    else:
        return None
    return origin, func.__qualname__


def callback_name(callback: Any) -> str:
    """A short readable name for a callback: its qualified name, or its type's."""
    func = _function_of(callback)
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(callback).__qualname__
