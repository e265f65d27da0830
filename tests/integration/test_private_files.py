"""Files with secrets: created owner-only, safe to open when someone else wrote them.

The checkpoint file and the emulator's database (API token, signing keys, every message) are
created with mode 0600 (their -wal and -shm files too) and the directories made for them 0700,
checked in a child process whose umask is 0, the worst case. A checkpoint file from elsewhere
(a trigger that loops, a view in place of the table, a body nested deep) gives our errors in
bounded time, and a path that starts with ``file:`` is a file of that name.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from test_cli_bridge import SCRIPT
from test_emulator_cli import Process

from signalwire_chat import (
    Checkpoint,
    CorruptCheckpointError,
    SqliteCheckpointStore,
)
from signalwire_chat.pytest_plugin import RedisServer
from signalwire_chat.redis import RedisCheckpointStore

CP = Checkpoint(route="inbox", message_id="m-1", ts=1.0)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _run_with_umask_0(code: str) -> None:
    subprocess.run(
        [sys.executable, "-c", "import os\nos.umask(0)\n" + code],
        check=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_the_checkpoint_file_and_the_directories_made_for_it_are_owner_only(
    tmp_path: Path,
) -> None:
    tmp_path.chmod(0o755)  # the user's own directory: left as it is
    path = tmp_path / "state" / "bot" / "checkpoints.db"
    # The -wal and -shm files exist until the last close: their modes are read while open.
    _run_with_umask_0(
        "from signalwire_chat import Checkpoint, SqliteCheckpointStore\n"
        f"path = {str(path)!r}\n"
        "store = SqliteCheckpointStore(path)\n"
        "store.save('k', Checkpoint(route='inbox', message_id='m', ts=1.0))\n"
        "modes = [oct(os.stat(path + s).st_mode & 0o777) for s in ('-wal', '-shm')]\n"
        "store.close()\n"
        f"open({str(tmp_path / 'modes')!r}, 'w').write(' '.join(modes))\n"
    )
    assert _mode(tmp_path) == 0o755
    assert _mode(tmp_path / "state") == 0o700
    assert _mode(tmp_path / "state" / "bot") == 0o700
    assert _mode(path) == 0o600
    assert (tmp_path / "modes").read_text() == "0o600 0o600"


def test_an_existing_checkpoint_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    path.touch(0o640)
    path.chmod(0o640)
    with SqliteCheckpointStore(path) as store:
        store.save("k", CP)
    assert _mode(path) == 0o640


def test_the_emulator_database_is_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "emulator.db"
    _run_with_umask_0(
        "from signalwire_chat.emulator import Emulator\n"
        f"emu = Emulator(db={str(db)!r}).start()\n"
        "emu.create_subscriber('alice@example.com')\n"
        f"modes = [oct(os.stat({str(db)!r} + s).st_mode & 0o777) for s in ('', '-wal', '-shm')]\n"
        "emu.close()\n"
        f"open({str(tmp_path / 'modes')!r}, 'w').write(' '.join(modes))\n"
    )
    assert (tmp_path / "modes").read_text() == "0o600 0o600 0o600"
    assert _mode(db) == 0o600


def test_a_path_that_starts_with_file_is_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    name = "file:cp.db?mode=memory"  # as an SQLite URI: a database that vanishes on close
    with SqliteCheckpointStore(name) as store:
        store.save("k", CP)
    assert (tmp_path / name).is_file()
    with SqliteCheckpointStore(name) as again:
        assert again.load("k") == CP


def _hostile_file(path: Path, schema: str) -> None:
    db = sqlite3.connect(path)
    try:
        db.executescript(schema)
    finally:
        db.close()


_TABLE = (
    "CREATE TABLE checkpoints (key TEXT PRIMARY KEY NOT NULL, body TEXT NOT NULL,"
    " fencing_token INTEGER, saved_at REAL NOT NULL);"
)
_FOREVER = (
    "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)"
    " SELECT x FROM c)"
)


def _in_a_child(path: Path, call: str) -> str:
    """Run ``store.<call>`` on ``path`` (timeout 0.5 s) in a child; the error's class name.

    A child, because a statement that never ends is in sqlite's C code, where no pytest
    timeout reaches: a regression must fail this test, not hang the suite.
    """
    code = (
        "import sys, time\n"
        "from signalwire_chat import Checkpoint, SqliteCheckpointStore\n"
        "cp = Checkpoint(route='inbox', message_id='m-1', ts=1.0)\n"
        f"store = SqliteCheckpointStore({str(path)!r}, timeout=0.5)\n"
        "try:\n"
        f"    store.{call}\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__)\n"
        "store.close()\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"store.{call} still running after 60 s")
    return done.stdout.strip()


@pytest.mark.parametrize("event", ["INSERT", "UPDATE"])
def test_a_trigger_that_never_ends_cannot_hang_save(tmp_path: Path, event: str) -> None:
    path = tmp_path / "hostile.db"
    _hostile_file(
        path,
        _TABLE
        + "INSERT INTO checkpoints VALUES ('other', '{}', NULL, 0);"
        + f"CREATE TRIGGER spin BEFORE {event} ON checkpoints BEGIN {_FOREVER}; END;",
    )
    key = "other" if event == "UPDATE" else "k"
    assert _in_a_child(path, f"save({key!r}, cp)") == "StoreUnavailableError"
    # Nothing was left half-done or locked: once the trigger is gone, saves work again.
    other = sqlite3.connect(path, timeout=10)
    with other:
        other.execute("DROP TRIGGER spin")
    other.close()
    with SqliteCheckpointStore(path) as store:
        store.save(key, CP)
        assert store.load(key) == CP


def test_a_view_that_never_ends_cannot_hang_load(tmp_path: Path) -> None:
    path = tmp_path / "hostile.db"
    forever = _FOREVER.replace("count(*)", "x AS key, x AS body")
    _hostile_file(path, f"CREATE VIEW checkpoints AS {forever};")
    assert _in_a_child(path, "load('k')") == "StoreUnavailableError"


_DEEP = ["[" * 5000 + "]" * 5000, "[" * 200_000 + "]" * 200_000, json.dumps("x" * 10**6)]


@pytest.mark.parametrize("body", _DEEP, ids=["deep", "deeper-and-long", "long"])
def test_a_body_nested_deep_or_huge_is_corrupt_in_sqlite(tmp_path: Path, body: str) -> None:
    path = tmp_path / "cp.db"
    with SqliteCheckpointStore(path) as store:
        store.save("k", CP)
    db = sqlite3.connect(path)
    with db:
        db.execute("UPDATE checkpoints SET body = ? WHERE key = 'k'", (body,))
    db.close()
    with SqliteCheckpointStore(path) as store, pytest.raises(CorruptCheckpointError) as info:
        store.load("k")
    assert len(str(info.value)) < 300


@pytest.mark.parametrize("body", _DEEP, ids=["deep", "deeper-and-long", "long"])
def test_a_body_nested_deep_or_huge_is_corrupt_in_redis(
    redis_server: RedisServer, body: str
) -> None:
    with redis.Redis.from_url(redis_server.url, socket_timeout=5) as raw:
        raw.hset("signalwire-chat:checkpoint:k", "body", body)
    with RedisCheckpointStore(redis_server.url) as store, pytest.raises(CorruptCheckpointError):
        store.load("k")


def test_emulator_beyond_loopback_warns_what_it_exposes() -> None:
    exposed = Process("--host", "0.0.0.0", "--port", "0")
    try:
        code, _ = exposed.stop()
        assert code == 0
        text = exposed.stderr()
    finally:
        exposed.close()
    assert "no real authentication" in text
    assert "API token" in text
    assert "signing keys" in text
    assert "every message" in text
    local = Process("--host", "127.0.0.1", "--port", "0")
    try:
        local.stop()
        assert "no real authentication" not in local.stderr()
    finally:
        local.close()


def test_the_cli_emulator_command_warns_too() -> None:
    assert SCRIPT is not None, "the console script is not installed (pip install -e .)"
    proc = subprocess.Popen(
        [SCRIPT, "emulator", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())  # listening: the warning came before it
        assert info["host"] == "0.0.0.0"
        proc.terminate()
        _out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert "no real authentication" in err
    assert "--host 127.0.0.1" in err
