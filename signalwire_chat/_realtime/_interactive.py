"""Callbacks defined in notebook cells, recognised so that a re-run cell replaces its subscription.

A Jupyter or IPython user who edits and re-runs ``sub = client.subscribe(room, show)``
means the new ``show`` instead of the old one, not both. Only functions whose module
is ``__main__`` and whose code comes from an IPython cell (``<ipython-input-3-1a2b>``)
or an ipykernel cell file (``/tmp/ipykernel_1234/2735318385.py``) are recognised;
callbacks defined in modules and plain scripts are never affected.

The rule keys on the cell's identity: Jupyter gives every cell an id (``cellId`` in the
metadata of the execute request, read from the running kernel when ``subscribe()`` is
called), and a subscription made by a later run of the same cell replaces the one the
earlier run made, whatever its callback is called; two subscriptions made by one run
never replace each other. Where no cell id is known (IPython in a terminal), the older
rule remains, keyed on the callback's qualified name, but never for a lambda (every lambda
is called ``<lambda>``: two lambdas from two cells are two subscriptions).
"""

from __future__ import annotations

import os
import re
import sys
import types
from typing import Any

__all__ = ["callback_name", "cell_origin"]

_IPYTHON_INPUT = re.compile(r"<ipython-input-\d+-[0-9a-fA-F]+>")
_IPYKERNEL_CELL = re.compile(r"(?:^|[/\\])ipykernel_\d+[/\\]\d+\.py")


def _function_of(callback: Any) -> Any:
    """The plain function behind ``callback`` (``__func__`` of a bound method)."""
    return getattr(callback, "__func__", callback)


def _current_cell() -> tuple[str, int | None] | None:
    """``(cellId, execution count)`` of the Jupyter cell running now, if the kernel says."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return None
    try:
        shell = get_ipython()
        get_parent = getattr(shell, "get_parent", None)
        parent = get_parent() if get_parent is not None else None
        metadata = parent.get("metadata") if isinstance(parent, dict) else None
        cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
        count = getattr(shell, "execution_count", None)
    except Exception:  # noqa: BLE001 - an odd shell: no cell identity, the fallback applies
        return None
    if not isinstance(cell_id, str) or not cell_id:
        return None
    return cell_id, count if isinstance(count, int) else None


def cell_origin(callback: Any) -> tuple[tuple[str, str, str], int | None] | None:
    """The notebook identity of a subscription with ``callback``, or None (never replaced).

    Returns ``(key, run)``: ``key`` is ``(origin, "cell", cellId)`` when the kernel names
    the running cell, else ``(origin, "name", qualname)``; ``run`` is the cell's execution
    count (None in the fallback). ``origin`` names the interpreter session the cell ran in:
    ``"ipython"`` for ``<ipython-input-...>`` cells, the kernel's cell directory for
    ipykernel files. A subscription replaces a live one of equal key (and route) made by
    another run.
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
    cell = _current_cell()
    if cell is not None:
        return (origin, "cell", cell[0]), cell[1]
    if "<lambda>" in func.__qualname__:
        return None
    return (origin, "name", func.__qualname__), None


def callback_name(callback: Any) -> str:
    """A short readable name for a callback: its qualified name, or its type's."""
    func = _function_of(callback)
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(callback).__qualname__
