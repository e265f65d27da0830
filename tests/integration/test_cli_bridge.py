"""`signalwire-chat bridge` as a user runs it: a real process, the emulator, a real redis-server."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import redis
from test_realtime_support import wait_until

from signalwire_chat.cli import ExitCode
from signalwire_chat.emulator import Emulator
from signalwire_chat.pytest_plugin import RedisServer

SCRIPT = shutil.which("signalwire-chat", path=os.path.dirname(sys.executable))


def _env(emu: Emulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        SIGNALWIRE_REST_URL=emu.rest_url,
        SIGNALWIRE_RELAY_URL=emu.relay_url,
    )
    return env


def _stream(url: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(url, socket_timeout=5) as r:
        return [json.loads(fields[b"message"]) for _id, fields in r.xrange("chat:in")]


def lobby(emu: Emulator, tmp_path: Path) -> tuple[Any, Any, Any, Path]:
    """alice and bob in a room's group, and a file with alice's token (for --token-file)."""
    assert SCRIPT is not None, "the console script is not installed (pip install -e .)"
    alice = emu.create_subscriber("alice@example.com")
    bob = emu.create_subscriber("bob@example.com")
    room = emu.create_room("lobby")
    emu.join_group(alice, [room.id])
    emu.join_group(bob, [room.id])
    token_file = tmp_path / "alice.token"
    token_file.write_text(alice.token + "\n")
    return alice, bob, room, token_file


def test_bridge_command_appends_and_stops_cleanly_on_sigterm(
    signalwire_emulator: Emulator, redis_server: RedisServer, tmp_path: Path
) -> None:
    emu = signalwire_emulator
    alice, bob, room, token_file = lobby(emu, tmp_path)
    proc = subprocess.Popen(
        [
            SCRIPT,
            "bridge",
            room.id,
            "--redis",
            redis_server.url,
            "--stream",
            "chat:in",
            "--name",
            "lobby-bridge",
            "--ttl",
            "2",
            "--token-file",
            str(token_file),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(emu),
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr))  # type: ignore[arg-type]
    reader.start()
    try:
        lease = "signalwire-chat:lease:bridge:lobby-bridge"
        assert wait_until(lambda: any("appending" in line for line in err), 20), err
        with redis.Redis.from_url(redis_server.url) as r:
            assert r.exists(lease) == 1
        emu.send_as(bob, room.id, "hello stream", dialect="group")
        emu.send_as(bob, room.id, "second", dialect="group")
        assert wait_until(
            lambda: [m["text"] for m in _stream(redis_server.url)] == ["hello stream", "second"],
            20,
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == ExitCode.OK
        with redis.Redis.from_url(redis_server.url) as r:
            assert r.exists(lease) == 0  # released on the way out: a standby need not wait
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()
    text = "".join(err)
    assert "standing by for the lease" in text
    assert "2 appended" in text
    assert alice.token not in text


def run_bridge(emu: Emulator, *options: str) -> subprocess.CompletedProcess[str]:
    """`signalwire-chat bridge` with ``options``, run to its end (no token in its environment)."""
    assert SCRIPT is not None
    return subprocess.run(
        [SCRIPT, "bridge", *options],
        capture_output=True,
        text=True,
        timeout=20,
        env=_env(emu),
        check=False,
    )


def test_bridge_command_requires_redis_stream_and_name(signalwire_emulator: Emulator) -> None:
    proc = run_bridge(signalwire_emulator, "--stream", "s", "--name", "n")
    assert proc.returncode == ExitCode.USAGE
    assert "--redis" in proc.stderr
