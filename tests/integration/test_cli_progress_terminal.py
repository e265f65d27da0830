"""``history --json`` typed at a terminal: the JSON lines are shown clean, without the bar.

With stdout and stderr on one terminal, the progress bar (stderr) and the JSON lines (stdout,
written as they come) shared the screen's line: each line written after the bar was drawn
kept the bar's text in front of it ("⠙ reading history 600 0:00:00{"id": ...").
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import test_cli
from test_cli import TIMEOUT, env_for

from signalwire_chat.emulator import Emulator

script = test_cli.script
alice = test_cli.alice
token_file = test_cli.token_file
room = test_cli.room


def test_json_lines_to_a_terminal_are_not_mixed_with_the_progress_bar(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str
) -> None:
    bob = signalwire_emulator.create_subscriber("bob@example.com")
    signalwire_emulator.send_many(bob, room, [f"m{i}" for i in range(300)])
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [script, "history", room, "--json", "--token-file", token_file],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env_for(signalwire_emulator),
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: everything was read
                break
            if not chunk:
                break
            shown += chunk
        assert proc.wait(TIMEOUT) == 0
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    assert b"reading history" not in shown
    assert b"\x1b" not in shown  # nothing drawn, nothing erased: only the lines
    lines = shown.decode().replace("\r\n", "\n").splitlines()
    assert [json.loads(line)["text"] for line in lines] == [f"m{i}" for i in range(299, -1, -1)]
