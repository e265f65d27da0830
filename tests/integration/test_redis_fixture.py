"""The redis-server fixture: a real server on a free loopback port, restartable, stopped after."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from signalwire_chat.pytest_plugin import RedisServer, RedisServerFactory


def _ping(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64)


def test_redis_server_answers_and_has_no_persistence(redis_server: RedisServer) -> None:
    assert _ping(redis_server.port) == b"+PONG\r\n"
    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("save") == {"save": ""}
        client.set("k", "v")
        redis_server.restart()
        assert client.get("k") is None  # no persistence: a restart empties it
    finally:
        client.close()


def test_persistence_survives_a_restart(redis_server_factory: RedisServerFactory) -> None:
    server = redis_server_factory(persistence=True)
    client = redis.Redis.from_url(server.url)
    try:
        client.set("k", "v")
        server.restart()
        assert client.get("k") == b"v"
    finally:
        client.close()


def test_stop_frees_the_process_and_refuses_connections(redis_server: RedisServer) -> None:
    port = redis_server.port
    redis_server.stop()
    assert redis_server.pid is None
    with pytest.raises(ConnectionRefusedError):
        _ping(port)


def _run_pytest(directory: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "CI"}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", str(directory)],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_binary_is_a_skip_locally_and_a_failure_under_ci(tmp_path: Path) -> None:
    (tmp_path / "test_needs_redis.py").write_text("def test_it(redis_server):\n    pass\n")
    (tmp_path / "bin").mkdir()  # a PATH with no redis-server on it
    local = _run_pytest(tmp_path, PATH=str(tmp_path / "bin"))
    assert local.returncode == 0, local.stdout
    assert "1 skipped" in local.stdout
    assert "redis-server not found on PATH: SKIPPING" in local.stdout
    ci = _run_pytest(tmp_path, PATH=str(tmp_path / "bin"), CI="true")
    assert ci.returncode == 1, ci.stdout
    assert "1 error" in ci.stdout
    assert "CI=true but redis-server not found on PATH" in ci.stdout
