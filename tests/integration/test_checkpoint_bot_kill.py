"""A bot with a checkpoint, SIGKILLed during a burst and restarted: every message handled once.

The bot is a real process (a ChatClient against the emulator over loopback). Its handler records
each message in the same sqlite file as the checkpoint, in one transaction
(``SqliteCheckpointStore.atomic``), so a redelivery after the crash finds its row and skips it:
exactly once. A second bot records without that (``checkpoint=`` alone): at least once, and any
repeat is only a message handled when the process died.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from test_realtime_support import wait_until

_BOT = r"""
import sys, time
from signalwire_chat import ChatClient, Checkpoint, RealtimeOptions, SqliteCheckpointStore

token, rest, relay, db_path, target, mode = sys.argv[1:7]
store = SqliteCheckpointStore(db_path)
with store.atomic("setup", Checkpoint(route="inbox", message_id="none", ts=0.0)) as db:
    db.execute("CREATE TABLE IF NOT EXISTS handled (n INTEGER PRIMARY KEY, id TEXT, text TEXT)")
client = ChatClient(token, rest_url=rest, relay_url=relay, checkpoint_store=store,
                    realtime=RealtimeOptions(connect_timeout=10))
route = client.checkpoint_route(target)

def exactly_once(message):
    with store.atomic("bot", Checkpoint.of(message, route=route)) as db:
        if db.execute("SELECT 1 FROM handled WHERE id = ?", (message.id,)).fetchone():
            return  # handled before the crash, with its checkpoint: nothing to do
        db.execute("INSERT INTO handled (id, text) VALUES (?, ?)", (message.id, message.text))

def at_least_once(message):
    with store.atomic("log", Checkpoint(route="inbox", message_id="none", ts=0.0)) as db:
        db.execute("INSERT INTO handled (id, text) VALUES (?, ?)", (message.id, message.text))

handler = exactly_once if mode == "exactly" else at_least_once
client.subscribe(target, handler, lambda e: print("error", e, flush=True), checkpoint="bot")
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _handled(path: Path) -> list[tuple[str, str]]:
    try:
        with closing(sqlite3.connect(path, timeout=5)) as db:
            return db.execute("SELECT id, text FROM handled ORDER BY n").fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet


class _Bot:
    def __init__(self, emu: Any, who: Any, path: Path, target: str, mode: str) -> None:
        self.args = [who.token, emu.rest_url, emu.relay_url, str(path), target, mode]
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _BOT, *self.args], stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"the bot did not start: {line!r}, {self.proc.poll()}"

    def kill(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self.proc = None


@pytest.mark.parametrize("mode", ["exactly", "at-least"])
def test_sigkill_mid_burst_then_restart_loses_nothing(
    signalwire_emulator: Any, tmp_path: Path, mode: str
) -> None:
    emu = signalwire_emulator
    me = emu.create_subscriber()
    other = emu.create_subscriber()
    room = emu.create_room(f"kill-{mode}")
    emu.join_group(me, [room.id])
    emu.join_group(other, [room.id])
    path = tmp_path / "bot.db"
    bot = _Bot(emu, me, path, room.id, mode)
    burst = [f"burst {i}" for i in range(200)]
    more = [f"more {i}" for i in range(100)]
    try:
        bot.start()
        done = threading.Event()

        def send_burst() -> None:
            for text in burst:
                emu.send_as(other, room.id, text, dialect="group")
            done.set()

        sender = threading.Thread(target=send_burst)
        sender.start()
        # Kill it mid-burst: some handled, more on the way.
        assert wait_until(lambda: len(_handled(path)) >= 40, 30)
        bot.kill()
        sender.join(60)
        assert done.is_set()
        for text in more:
            emu.send_as(other, room.id, text, dialect="group")
        bot.start()
        expected = burst + more
        assert wait_until(lambda: len({t for _, t in _handled(path)}) == len(expected), 60), len(
            {t for _, t in _handled(path)}
        )
    finally:
        bot.kill()
    rows = _handled(path)
    texts = [t for _, t in rows]
    counts = Counter(texts)
    assert set(counts) == set(expected)
    if mode == "exactly":
        assert texts == expected  # each once, in order, across the crash
    else:
        repeated = [t for t, c in counts.items() if c > 1]
        # At least once: a repeat only of what was handled as the process died.
        assert len(repeated) <= 1, repeated
        assert list(dict.fromkeys(texts)) == expected
