"""The command line against a service that answers what no emulator stores: a lone surrogate.

JSON may carry ``"\\ud800"``, half of a UTF-16 pair, which decodes to a string no encoding can
write. The real console script reads it from a scripted server over loopback and must neither
crash nor change it: a person sees it escaped, ``--json`` carries the same value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest
from _loopback import Server, reply

from signalwire_chat.cli import ExitCode

SCRIPT = shutil.which("signalwire-chat", path=os.path.dirname(sys.executable))
TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdG9rZW4ifQ.c2VjcmV0LXNpZ25hdHVyZQ"
ADDRESS = "7b0d4a52-6c8e-4c36-9d3e-2f1a8b9c0d1e"
TEXT = "half \ud800 of a pair"
NAME = "Eve\udc00"


@pytest.fixture
def server() -> Iterator[Server]:
    with Server() as srv:
        message = {
            "id": "m1",
            "conversation_id": ADDRESS,
            "user_id": "u",
            "user_name": NAME,
            "ts": 1.5,
            "type": "message",
            "subtype": "chat",
            "text": TEXT,
        }
        srv.default = reply(200, {"data": [message], "links": {}})
        yield srv


def history(server: Server, *args: str) -> subprocess.CompletedProcess[bytes]:
    assert SCRIPT is not None, "the signalwire-chat console script is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    env.update(
        SIGNALWIRE_TOKEN=TOKEN,
        SIGNALWIRE_REST_URL=server.url,
        SIGNALWIRE_RELAY_URL="ws://127.0.0.1:1/",
        COLUMNS="200",
    )
    return subprocess.run(
        [SCRIPT, "history", ADDRESS, "--dialect", "address", *args],
        capture_output=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_a_lone_surrogate_is_shown_escaped_to_a_person(server: Server) -> None:
    proc = history(server)
    assert proc.returncode == ExitCode.OK, proc.stderr
    shown = proc.stdout.decode("utf-8")  # strict: what was written is UTF-8
    assert "half \\ud800 of a pair" in shown
    assert "Eve\\udc00" in shown
    assert b"Traceback" not in proc.stderr


def test_json_carries_the_lone_surrogate_unchanged(server: Server) -> None:
    proc = history(server, "--json")
    assert proc.returncode == ExitCode.OK, proc.stderr
    (message,) = [json.loads(line) for line in proc.stdout.decode("utf-8").splitlines()]
    assert message["text"] == TEXT
    assert message["user_name"] == NAME


def test_an_error_message_from_the_service_is_shown_escaped(server: Server) -> None:
    detail = "no \x1b]0;pwned\x07 \u202eway\nFORGED"
    server.default = reply(400, {"errors": [{"code": "bad", "message": detail}]})
    proc = history(server)
    assert proc.returncode == ExitCode.SERVICE, proc.stderr
    shown = proc.stderr.decode("utf-8")
    # The library turns C0 controls and bidi controls into "?" before the CLI sees them.
    assert "?way?FORGED" in shown
    assert "\x1b" not in shown
    assert "\u202e" not in shown
    assert len(shown.splitlines()) == 1
