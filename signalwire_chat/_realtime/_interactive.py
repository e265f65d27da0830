"""Subscriptions made by notebook cells, recognised so that a re-run cell replaces its own.

A Jupyter or IPython user who edits and re-runs ``sub = client.subscribe(room, show)``
means the new ``show`` instead of the old one, not both. The rule, in full:

- Only a subscription whose callback was defined in a cell (a function, bound method's
  function or lambda of module ``__main__`` whose code comes from an IPython cell,
  ``<ipython-input-3-1a2b>``, or an ipykernel cell file, ``/tmp/ipykernel_1234/27353.py``),
  and made by the running cell itself (its code is on the calling thread's stack), takes
  part. Callbacks from modules and scripts never do, nor subscriptions made by a thread,
  even one a cell started: ipykernel answers ``get_parent()`` in any thread with the
  request running now, which would pin them on whatever cell runs then.
- The cell decides, never the callback's name. When the front end sends the cell's id
  (JupyterLab and Notebook 7 put ``cellId`` in the execute request's metadata,
  read from the kernel's parent header), a later run of that cell replaces what an earlier
  run of it made to the same address, however the cell was edited; another cell is another
  subscription, even if its callback has the same name.
- With no cell id (IPython in a terminal, nbclient, classic Notebook 6), a cell is known by
  its code, which IPython and ipykernel hash into the cell's file name: running the same
  code again replaces; a cell with other code, edited or not, is another cell.
- Two subscriptions made by one run of a cell never replace each other.
"""

from __future__ import annotations

import os
import re
import sys
import types
from typing import Any, TypeAlias

__all__ = ["callback_name", "cell_origin"]

#: IPython's cell file name: the execution count, then a hash of the cell's code.
_IPYTHON_INPUT = r"<ipython-input-\d+-(?P<code>[0-9a-fA-F]+)>"
#: ipykernel's: a per-kernel directory, then a hash of the cell's code.
_IPYKERNEL_CELL = r"(?:^|[/\\])ipykernel_\d+[/\\](?P<code>\d+)\.py"

#: ``(origin, kind, name)``: ``kind`` is ``"cell"`` (``name`` is the cell id) or
#: ``"code"`` (``name`` is the hash of the cell's code).
CellKey: TypeAlias = tuple[str, str, str]
#: What tells one run of a cell from another: the execute request's message id, else the
#: execution count.
CellRun: TypeAlias = str | int | None


def _function_of(callback: Any) -> Any:
    """The plain function behind ``callback`` (``__func__`` of a bound method)."""
    return getattr(callback, "__func__", callback)


def _cell_file(filename: str) -> tuple[str, str] | None:
    """``(origin, code hash)`` when ``filename`` names a cell, else None.

    ``origin`` names the interpreter session: ``"ipython"`` for IPython's cells, the
    kernel's cell directory for ipykernel's.
    """
    # Every subscription with a callback of a script's __main__ asks: the regexes (compiled,
    # then cached by re, on first use) are for the names that can be cells at all.
    if filename.startswith("<ipython-input-"):
        match = re.fullmatch(_IPYTHON_INPUT, filename)
        if match is not None:
            return "ipython", match["code"]
    if "ipykernel_" not in filename:
        return None
    match = re.search(_IPYKERNEL_CELL, filename)
    if match is not None:
        return os.path.dirname(filename), match["code"]
    return None


def _running_cell() -> tuple[str, str] | None:
    """``(origin, code hash)`` of the cell this thread is running, if one is.

    The outermost cell frame is the cell the front end ran (a cell may run another's code
    through ``get_ipython().run_cell``); a thread a cell started has no cell below it.
    """
    found = None
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>":
            found = _cell_file(code.co_filename) or found
        frame = frame.f_back
    return found


def _kernel_request() -> tuple[str | None, CellRun]:
    """``(cellId, run)`` of the execute request running now, as far as the shell says."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    if get_ipython is None:
        return None, None
    try:
        shell = get_ipython()
        get_parent = getattr(shell, "get_parent", None)
        parent = get_parent() if get_parent is not None else None
        count = getattr(shell, "execution_count", None)
    except Exception:  # noqa: BLE001 - an odd shell: no cell id, the cell's code decides
        return None, None
    parent = parent if isinstance(parent, dict) else {}
    metadata = parent.get("metadata")
    header = parent.get("header")
    cell_id = metadata.get("cellId") if isinstance(metadata, dict) else None
    msg_id = header.get("msg_id") if isinstance(header, dict) else None
    run: CellRun = msg_id if isinstance(msg_id, str) and msg_id else None
    if run is None and isinstance(count, int):
        run = count
    return (cell_id if isinstance(cell_id, str) and cell_id else None), run


def cell_origin(callback: Any) -> tuple[CellKey, CellRun] | None:
    """The notebook identity of a subscription with ``callback`` made now, or None.

    Called by the code making the subscription, in its thread. Returns ``(key, run)``:
    ``key`` is ``(origin, "cell", cellId)`` when the kernel names the running cell, else
    ``(origin, "code", hash of the cell's code)``; ``run`` tells this run of the cell from
    the others (None when the shell does not say). None (never replaced) when ``callback``
    was not defined in a cell or no cell is running in this thread. A subscription
    replaces a live one of equal key (and route) made by another run.
    """
    func = _function_of(callback)
    if not isinstance(func, types.FunctionType) or func.__module__ != "__main__":
        return None
    if _cell_file(func.__code__.co_filename) is None:
        return None
    cell = _running_cell()
    if cell is None:
        return None
    origin, code = cell
    cell_id, run = _kernel_request()
    if cell_id is not None:
        return (origin, "cell", cell_id), run
    return (origin, "code", code), run


def callback_name(callback: Any) -> str:
    """A short readable name for a callback: its qualified name, or its type's."""
    func = _function_of(callback)
    name = getattr(func, "__qualname__", None)
    if isinstance(name, str):
        return name
    return type(callback).__qualname__
