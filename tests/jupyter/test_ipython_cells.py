"""The re-run rule in plain IPython (no kernel, no cell ids), in a real IPython shell.

A child process runs IPython's InteractiveShell, as the terminal IPython does, feeding it
cells; each cell names its cell file after a hash of its code, which is all that tells one
cell from another without cell ids. The child's ChatClient reaches the emulator this test
started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cells import SETUP_CELL, chat_env

from signalwire_chat.emulator import Emulator

pytest.importorskip("IPython")

_DRIVER = r"""
import json, os, sys
from IPython.core.interactiveshell import InteractiveShell

shell = InteractiveShell.instance()
cells = json.loads(sys.stdin.read())
for source in cells:
    result = shell.run_cell(source, store_history=True)
    result.raise_error()
print(json.dumps(shell.user_ns["report"]))
"""

_CELL = """
def show(msg):
    print({tag!r}, msg.text)

made.append(({name!r}, client.subscribe(room, show)))
"""


def _run_ipython(emu: Emulator, tmp_path: Path, cells: list[str]) -> list[list[object]]:
    """Run ``cells`` in a fresh IPython; ``[name, live]`` of each subscription in ``made``."""
    chat, _alice, _room = chat_env(emu)
    # IPYTHONDIR: no profile or history of the user's.
    env = {**os.environ, **chat, "IPYTHONDIR": str(tmp_path / "ipython")}
    report = "report = [[name, sub.active] for name, sub in made]\nclient.close()\n"
    done = subprocess.run(
        [sys.executable, "-c", _DRIVER],
        input=json.dumps([SETUP_CELL, *cells, report]),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_in_ipython_the_same_code_run_again_replaces_and_another_cell_does_not(
    emu: Emulator, tmp_path: Path
) -> None:
    cell_a = _CELL.format(tag="a", name="a")
    cells = [
        cell_a,
        _CELL.format(tag="b", name="b"),  # another cell, its callback also called show
        _CELL.format(tag="a, edited", name="a, edited"),  # other code: another cell too
        cell_a,  # In [5] recalls In [2] unchanged: a re-run
    ]
    assert _run_ipython(emu, tmp_path, cells) == [
        ["a", False],
        ["b", True],
        ["a, edited", True],
        ["a", True],
    ]
