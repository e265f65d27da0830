"""The sqlite store survives a SIGKILL mid-write: the last acknowledged save is there, whole."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

from signalwire_chat import Checkpoint, SqliteCheckpointStore

# The child saves checkpoint n, then prints n: a printed n is an acknowledged (returned) save.
_WRITER = """
import sys
from signalwire_chat import Checkpoint, SqliteCheckpointStore
store = SqliteCheckpointStore(sys.argv[1])
n = 0
while True:
    n += 1
    store.save("bot:inbox", Checkpoint(route="inbox", message_id=f"m-{n}", ts=float(n)))
    print(n, flush=True)
"""


def test_sigkill_mid_write_keeps_the_last_acknowledged_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints.db"
    child = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        acknowledged = 0
        while acknowledged < 200:  # readline blocks until the child reports; the timeout bounds it
            line = child.stdout.readline()
            assert line, f"writer exited early with {child.poll()}"
            acknowledged = int(line)
        os.kill(child.pid, signal.SIGKILL)  # mid-loop: most likely inside a transaction
        child.wait(10)
        # Whatever it printed after our last read was acknowledged too.
        acknowledged = max([acknowledged, *(int(x) for x in child.stdout.read().split())])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    with SqliteCheckpointStore(path) as store:
        saved = store.load("bot:inbox")
    assert saved is not None
    n = int(saved.message_id.removeprefix("m-"))
    # Every acknowledged save survived; at most the one in flight when killed went further.
    assert acknowledged <= n <= acknowledged + 1
    assert saved == Checkpoint(route="inbox", message_id=f"m-{n}", ts=float(n))
