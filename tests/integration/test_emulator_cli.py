"""``python -m signalwire_chat.emulator`` as a real subprocess: JSON line, signals, persistence."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

TIMEOUT = 10.0


class Process:
    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "signalwire_chat.emulator", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        self.info = self._read_line()

    def _read_line(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not selector.select(TIMEOUT):
                raise AssertionError("the emulator printed nothing in time")
        finally:
            selector.close()
        line = self.proc.stdout.readline()
        assert line, self.stderr()
        info = json.loads(line)
        assert isinstance(info, dict)
        return info

    def stderr(self) -> str:
        if self.proc.poll() is None:
            return ""
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(TIMEOUT)
        return code, time.monotonic() - started

    def close(self) -> None:
        """Kill the process if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


Keep = Callable[[Process], Process]


def admin_post(info: dict[str, Any], path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` with the project's credentials; assert 201 and return the JSON object."""
    response = requests.post(
        info["rest_url"] + path,
        json=body,
        auth=(info["project_id"], info["api_token"]),
        timeout=TIMEOUT,
    )
    assert response.status_code == 201
    created = response.json()
    assert isinstance(created, dict)
    return created


def mint(info: dict[str, Any], reference: str) -> str:
    token = admin_post(info, "/api/fabric/subscribers/tokens", {"reference": reference})["token"]
    assert isinstance(token, str)
    return token


def create_room(info: dict[str, Any], name: str) -> str:
    room = admin_post(info, "/api/fabric/resources/video_rooms", {"name": name})
    address_id = room["fabric_addresses"][0]["id"]
    assert isinstance(address_id, str)
    return address_id


def send(info: dict[str, Any], token: str, room: str, text: str) -> requests.Response:
    """POST a chat message to ``room`` as the subscriber of ``token``."""
    return requests.post(
        info["rest_url"] + "/api/fabric/messages",
        json={"conversation_id": room, "text": text},
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )


def test_cli_prints_one_json_line_serves_and_exits_on_sigterm(autoclose: Keep) -> None:
    process = autoclose(Process("--port", "0", "--project-id", "proj", "--api-token", "secret"))
    info = process.info
    assert {"rest_url", "relay_url", "project_id", "api_token", "space_host"} <= set(info)
    assert info["project_id"] == "proj"
    assert info["api_token"] == "secret"
    assert info["rest_url"].startswith("http://127.0.0.1:")
    assert info["relay_url"] == info["rest_url"].replace("http://", "ws://") + "/"
    token = mint(info, "alice@example.com")
    room = create_room(info, "lobby")
    assert send(info, token, room, "over the wire").status_code == 201
    code, elapsed = process.stop(signal.SIGTERM)
    assert code == 0
    assert elapsed < 3.0


def test_cli_exits_cleanly_on_sigint(autoclose: Keep) -> None:
    process = autoclose(Process())
    assert requests.get(process.info["rest_url"] + "/", timeout=TIMEOUT).status_code == 404
    code, _ = process.stop(signal.SIGINT)
    assert code == 0


def test_cli_same_db_survives_a_restart(autoclose: Keep, tmp_path: Path) -> None:
    db = str(tmp_path / "cli.sqlite3")
    first = autoclose(Process("--db", db))
    info = first.info
    token = mint(info, "alice@example.com")
    room = create_room(info, "persistent")
    assert send(info, token, room, "kept").status_code == 201
    assert first.stop()[0] == 0

    second = autoclose(Process("--db", db))
    again = second.info
    assert again["project_id"] == info["project_id"]
    assert again["api_token"] == info["api_token"]
    # The old token still verifies: the key lives in the database.
    page = requests.get(
        f"{again['rest_url']}/api/fabric/conversations/{room}/messages",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    assert page.status_code == 200
    assert [m["text"] for m in page.json()["data"]] == ["kept"]
    assert second.stop()[0] == 0


def test_cli_fails_cleanly_on_a_taken_port(autoclose: Keep) -> None:
    first = autoclose(Process())
    port = str(first.info["rest_url"].rsplit(":", 1)[1])
    proc = subprocess.run(
        [sys.executable, "-m", "signalwire_chat.emulator", "--port", port],
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert proc.returncode == 1
    assert proc.stdout == b""
    assert b"cannot listen" in proc.stderr
