"""`signalwire-chat bridge` with a password-protected Redis: the URL comes from a file or the
environment, never the command line, and the password shows nowhere."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from test_cli_bridge import SCRIPT, _env, _stream, lobby, run_bridge
from test_realtime_support import wait_until

from signalwire_chat.cli import ExitCode
from signalwire_chat.emulator import Emulator
from signalwire_chat.pytest_plugin import RedisServer


@pytest.mark.parametrize("source", ["file", "env"])
def test_bridge_reads_a_password_url_from_a_file_or_the_environment(
    signalwire_emulator: Emulator,
    redis_server_with_password: RedisServer,
    tmp_path: Path,
    source: str,
) -> None:
    server = redis_server_with_password
    assert server.password is not None
    emu = signalwire_emulator
    _alice, bob, room, token_file = lobby(emu, tmp_path)
    env = _env(emu)
    argv = [SCRIPT, "bridge", room.id, "--stream", "chat:in", "--name", "b", "--ttl", "2"]
    argv += ["--token-file", str(token_file)]
    if source == "file":
        url_file = tmp_path / "redis.url"
        url_file.write_text(server.url + "\n")
        argv += ["--redis-file", str(url_file)]
    else:
        env["SIGNALWIRE_REDIS_URL"] = server.url
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    err: list[str] = []
    reader = threading.Thread(target=lambda: err.extend(proc.stderr))  # type: ignore[arg-type]
    reader.start()
    try:
        assert wait_until(lambda: any("appending" in line for line in err), 20), err
        # What `ps` shows other users of the machine.
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert server.password.encode() not in cmdline
        emu.send_as(bob, room.id, "hello", dialect="group")
        assert wait_until(lambda: [m["text"] for m in _stream(server.url)] == ["hello"], 20)
        proc.terminate()
        assert proc.wait(20) == ExitCode.OK
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()
    assert server.password not in "".join(err)


def test_bridge_refuses_a_password_on_the_command_line_without_echoing_it(
    signalwire_emulator: Emulator,
) -> None:
    secret = "pw-on-argv-0451"
    for url in (f"redis://:{secret}@127.0.0.1:6399/0", f"redis://127.0.0.1/0?password={secret}"):
        proc = run_bridge(signalwire_emulator, "--redis", url, "--stream", "s", "--name", "n")
        assert proc.returncode == ExitCode.USAGE
        assert "--redis-file" in proc.stderr
        assert "SIGNALWIRE_REDIS_URL" in proc.stderr
        assert secret not in proc.stderr + proc.stdout
