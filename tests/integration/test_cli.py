"""The real ``signalwire-chat`` console script, run as a subprocess against the emulator.

Each test runs the installed entry point (``.venv/bin/signalwire-chat``) with a token file or
``SIGNALWIRE_TOKEN`` and the emulator's URLs in the environment, and checks what a user of a
shell would: stdout, stderr, the exit code. ``tail`` gets a real SIGINT.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_realtime_support import wait_until

from signalwire_chat import ChatClient
from signalwire_chat.cli import ExitCode
from signalwire_chat.emulator import Emulator, EmulatorSubscriber

TIMEOUT = 20.0
SCRIPT = shutil.which("signalwire-chat", path=os.path.dirname(sys.executable))


@pytest.fixture(scope="module")
def script() -> str:
    if SCRIPT is None:
        pytest.fail("the signalwire-chat console script is not installed (pip install -e .)")
    return SCRIPT


def env_for(emu: Emulator, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALWIRE_")}
    env.update(
        PYTHONUNBUFFERED="1",
        SIGNALWIRE_REST_URL=emu.rest_url,
        SIGNALWIRE_RELAY_URL=emu.relay_url,
        COLUMNS="200",
    )
    env.update(extra)
    return env


def run(
    script: str, emu: Emulator, *args: str, stdin: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [script, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env_for(emu, **env),
        check=False,
    )


@pytest.fixture
def alice(signalwire_emulator: Emulator) -> EmulatorSubscriber:
    return signalwire_emulator.create_subscriber("alice@example.com", display_name="Alice")


@pytest.fixture
def token_file(alice: EmulatorSubscriber, tmp_path: Path) -> str:
    path = tmp_path / "alice.token"
    path.write_text(alice.token + "\n")  # as `echo $TOKEN > file` writes it
    return str(path)


@pytest.fixture
def room(signalwire_emulator: Emulator, alice: EmulatorSubscriber) -> str:
    room = signalwire_emulator.create_room("lobby", display_name="The Lobby")
    signalwire_emulator.join_group(alice, [room.id])  # the room's one group
    return room.id


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- whoami, the token, exit codes ------------------------------------------------------------


def test_whoami_reads_the_token_file_and_never_prints_the_token(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber, token_file: str
) -> None:
    proc = run(script, signalwire_emulator, "whoami", "--token-file", token_file)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert "Alice" in proc.stdout
    assert alice.id in proc.stdout
    assert alice.token not in proc.stdout + proc.stderr

    proc = run(script, signalwire_emulator, "--json", "whoami", "--token-file", token_file)
    info = json.loads(proc.stdout)
    assert info["id"] == alice.id
    assert info["display_name"] == "Alice"
    assert info["fabric_addresses"][0]["id"] == alice.address_id


def test_token_from_the_environment_and_from_stdin(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber
) -> None:
    proc = run(script, signalwire_emulator, "whoami", "--json", SIGNALWIRE_TOKEN=alice.token)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == alice.id
    proc = run(
        script, signalwire_emulator, "whoami", "--json", "--token-file", "-", stdin=alice.token
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["id"] == alice.id


def test_no_token_is_a_usage_error(script: str, signalwire_emulator: Emulator) -> None:
    proc = run(script, signalwire_emulator, "whoami")
    assert proc.returncode == ExitCode.USAGE == 2
    assert "SIGNALWIRE_TOKEN" in proc.stderr
    assert proc.stdout == ""


def test_bad_arguments_exit_2(script: str, signalwire_emulator: Emulator, token_file: str) -> None:
    proc = run(script, signalwire_emulator, "history", "--token-file", token_file)
    assert proc.returncode == 2
    assert "address_id" in proc.stderr
    proc = run(script, signalwire_emulator, "history", "x", "--since", "yesterday-ish")
    assert proc.returncode == 2
    assert "not a time" in proc.stderr


def test_refused_token_exits_3_without_echoing_it(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber, tmp_path: Path
) -> None:
    expired = signalwire_emulator.mint_token(alice, ttl=-60)
    path = tmp_path / "expired"
    path.write_text(expired)
    proc = run(script, signalwire_emulator, "whoami", "--token-file", str(path))
    assert proc.returncode == ExitCode.AUTH == 3
    assert "401" in proc.stderr
    assert expired not in proc.stderr + proc.stdout
    path.write_text("not-a-token")
    proc = run(script, signalwire_emulator, "whoami", "--token-file", str(path))
    assert proc.returncode == ExitCode.AUTH
    assert "not-a-token" not in proc.stderr


def test_not_a_member_exits_4_and_unknown_address_exits_5(
    script: str, signalwire_emulator: Emulator, token_file: str
) -> None:
    other = signalwire_emulator.create_room("private")
    args = ("history", other.id, "--token-file", token_file)
    proc = run(script, signalwire_emulator, *args, "--dialect", "address")
    assert proc.returncode == ExitCode.PERMISSION == 4, proc.stderr
    # The group dialect: speaking as an address that is not yours is refused too.
    bob = signalwire_emulator.create_subscriber()
    proc = run(script, signalwire_emulator, *args, "--from-address", bob.address_id)
    assert proc.returncode == ExitCode.PERMISSION, proc.stderr
    proc = run(script, signalwire_emulator, "history", "no-such-room", "--token-file", token_file)
    assert proc.returncode == ExitCode.NOT_FOUND == 5, proc.stderr
    assert "404" in proc.stderr


def test_network_failure_exits_6(
    script: str, signalwire_emulator: Emulator, token_file: str
) -> None:
    with Emulator() as gone:
        dead_url = gone.rest_url
    proc = run(
        script,
        signalwire_emulator,
        "whoami",
        "--token-file",
        token_file,
        "--rest-url",
        dead_url,
        "--timeout",
        "2",
    )
    assert proc.returncode == ExitCode.NETWORK == 6, proc.stderr


def test_server_error_exits_7(script: str, signalwire_emulator: Emulator, token_file: str) -> None:
    signalwire_emulator.fail_next(500, times=10)
    proc = run(script, signalwire_emulator, "whoami", "--token-file", token_file)
    assert proc.returncode == ExitCode.SERVICE == 7, proc.stderr
    signalwire_emulator.clear_faults()


# --- send, join, history --------------------------------------------------------------------


def test_send_then_history_as_json_lines_and_as_a_table(
    script: str,
    signalwire_emulator: Emulator,
    alice: EmulatorSubscriber,
    token_file: str,
    room: str,
) -> None:
    for i in range(3):
        proc = run(
            script, signalwire_emulator, "send", room, f"hello {i}", "--token-file", token_file
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"sent to {room}"
    proc = run(
        script,
        signalwire_emulator,
        "send",
        room,
        "-",
        "--metadata",
        '{"order": 42}',
        "--json",
        "--token-file",
        token_file,
        stdin="from stdin\n",
    )
    assert proc.returncode == 0, proc.stderr
    group = signalwire_emulator.group_id_for(room, alice.address_id)
    assert json.loads(proc.stdout)["group_id"] == group
    signalwire_emulator.add_message(group, subtype="log", kind="call_started")

    proc = run(script, signalwire_emulator, "history", room, "--json", "--token-file", token_file)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    lines = json_lines(proc.stdout)
    assert [m["text"] for m in lines] == ["from stdin", "hello 2", "hello 1", "hello 0"]
    assert lines[0]["metadata"] == {"order": 42}
    # The group dialect names the sender by its address (the official types have no user_id).
    assert all(m["from_address_id"] == alice.address_id for m in lines)

    proc = run(
        script,
        signalwire_emulator,
        "history",
        room,
        "--json",
        "--limit",
        "2",
        "--oldest-first",
        "--token-file",
        token_file,
    )
    assert [m["text"] for m in json_lines(proc.stdout)] == ["hello 2", "from stdin"]

    proc = run(script, signalwire_emulator, "history", room, "--token-file", token_file)
    assert proc.returncode == 0, proc.stderr
    assert "hello 1" in proc.stdout
    assert "Alice" in proc.stdout  # the sender's display name, not an id
    assert "call_started" not in proc.stdout


def test_send_from_a_windows_file_keeps_no_carriage_return(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str
) -> None:
    # Text piped from a file with CRLF line endings: the last line ending goes, all of it;
    # the lines inside the message stay as they were.
    stdin = "first line\r\nlast line\r\n"
    proc = run(
        script, signalwire_emulator, "send", room, "-", "--token-file", token_file, stdin=stdin
    )
    assert proc.returncode == 0, proc.stderr
    proc = run(script, signalwire_emulator, "history", room, "--json", "--token-file", token_file)
    assert [m["text"] for m in json_lines(proc.stdout)] == ["first line\r\nlast line"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((), "give an address_id"),
        (("--inbox", "{room}"), "not both"),
    ],
)
def test_history_says_which_of_its_targets_is_wrong(
    script: str,
    signalwire_emulator: Emulator,
    token_file: str,
    room: str,
    args: tuple[str, ...],
    said: str,
) -> None:
    argv = [arg.format(room=room) for arg in args]
    proc = run(script, signalwire_emulator, "history", *argv, "--token-file", token_file)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert said in proc.stderr
    assert ("not both" in proc.stderr) is (said == "not both")


def test_history_since_and_until(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str
) -> None:
    first = signalwire_emulator.send_as(
        signalwire_emulator.create_subscriber("bob@example.com"), room, "early"
    )
    signalwire_emulator.send_as(
        signalwire_emulator.create_subscriber("carol@example.com"), room, "late"
    )
    group = signalwire_emulator.group_id_for(room, first["from_fabric_address_id"])
    later = signalwire_emulator.messages(group)[-1]["ts"]
    middle = (first["ts"] + later) / 2
    if not first["ts"] < middle < later:
        pytest.skip("both messages got the same timestamp")
    args = ("--json", "--token-file", token_file)
    since = run(script, signalwire_emulator, "history", room, "--since", str(middle), *args)
    until = run(script, signalwire_emulator, "history", room, "--until", str(middle), *args)
    both = run(
        script,
        signalwire_emulator,
        "history",
        room,
        "--since",
        "1h",
        "--until",
        "2099-01-01",
        *args,
    )
    assert [m["text"] for m in json_lines(since.stdout)] == ["late"]
    assert [m["text"] for m in json_lines(until.stdout)] == ["early"]
    assert [m["text"] for m in json_lines(both.stdout)] == ["late", "early"]
    bad = run(script, signalwire_emulator, "history", room, "--since", "0s", "--until", "1h", *args)
    assert bad.returncode == ExitCode.USAGE


def test_join_addresses_and_conversations(
    script: str, signalwire_emulator: Emulator, token_file: str
) -> None:
    lobby = signalwire_emulator.create_room("hall", display_name="The Hall")
    proc = run(script, signalwire_emulator, "join", lobby.id, "--token-file", token_file)
    assert proc.returncode == 0, proc.stderr
    proc = run(script, signalwire_emulator, "conversations", "--json", "--token-file", token_file)
    group = signalwire_emulator.group_id_for(
        lobby.id, signalwire_emulator.create_subscriber().address_id
    )
    assert group in [c["group_id"] for c in json_lines(proc.stdout)]
    proc = run(
        script,
        signalwire_emulator,
        "addresses",
        "--type",
        "room",
        "--json",
        "--token-file",
        token_file,
    )
    assert [a["name"] for a in json_lines(proc.stdout)] == ["hall"]
    proc = run(script, signalwire_emulator, "addresses", "--token-file", token_file)
    assert "The Hall" in proc.stdout
    assert "subscriber" in proc.stdout


# --- token mint / refresh -------------------------------------------------------------------


def test_token_mint_and_refresh_with_project_credentials(
    script: str, signalwire_emulator: Emulator, tmp_path: Path
) -> None:
    project = {
        "SIGNALWIRE_SPACE_URL": signalwire_emulator.space_url,
        "SIGNALWIRE_PROJECT_ID": signalwire_emulator.project_id,
        "SIGNALWIRE_API_TOKEN": signalwire_emulator.api_token,
    }
    proc = run(script, signalwire_emulator, "token", "mint", "dave@example.com", **project)
    assert proc.returncode == 0, proc.stderr
    token = proc.stdout.strip()
    assert proc.stdout == token + "\n"  # only the token: `> file` makes a token file
    whoami = run(script, signalwire_emulator, "whoami", "--json", SIGNALWIRE_TOKEN=token)
    assert json.loads(whoami.stdout)["email"] == "dave@example.com"

    proc = run(
        script,
        signalwire_emulator,
        "token",
        "mint",
        "erin@example.com",
        "--display-name",
        "Erin",
        "--json",
        **project,
    )
    minted = json.loads(proc.stdout)
    refresh_file = tmp_path / "refresh"
    refresh_file.write_text(minted["refresh_token"] + "\n")
    proc = run(
        script,
        signalwire_emulator,
        "token",
        "refresh",
        "--refresh-token-file",
        str(refresh_file),
        **project,
    )
    assert proc.returncode == 0, proc.stderr
    fresh = proc.stdout.strip()
    assert fresh
    assert fresh != minted["token"]
    whoami = run(script, signalwire_emulator, "whoami", "--json", SIGNALWIRE_TOKEN=fresh)
    assert json.loads(whoami.stdout)["display_name"] == "Erin"


def test_token_mint_without_credentials_or_with_wrong_ones(
    script: str, signalwire_emulator: Emulator
) -> None:
    proc = run(script, signalwire_emulator, "token", "mint", "x@example.com")
    assert proc.returncode == ExitCode.USAGE
    assert "SIGNALWIRE_PROJECT_ID" in proc.stderr
    proc = run(
        script,
        signalwire_emulator,
        "token",
        "mint",
        "x@example.com",
        SIGNALWIRE_SPACE_URL=signalwire_emulator.space_url,
        SIGNALWIRE_PROJECT_ID=signalwire_emulator.project_id,
        SIGNALWIRE_API_TOKEN="wrong-secret",
    )
    assert proc.returncode == ExitCode.AUTH
    assert "wrong-secret" not in proc.stderr


# --- tail: live messages, reconnect status, Ctrl-C -------------------------------------------


class Tail:
    """A running `signalwire-chat tail`, its stdout and stderr read by threads, line by line."""

    def __init__(self, script: str, emu: Emulator, *args: str) -> None:
        self.proc = subprocess.Popen(
            [script, "tail", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env_for(emu),
        )
        self.cond = threading.Condition()
        self.out: list[str] = []
        self.err: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err)),
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: Any, lines: list[str]) -> None:
        for line in stream:
            with self.cond:
                lines.append(line.rstrip("\n"))
                self.cond.notify_all()

    def wait_for(self, lines: list[str], text: str, timeout: float = TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not any(text in line for line in lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and not self.readers_alive()):
                    raise AssertionError(f"{text!r} not seen; stdout={self.out} stderr={self.err}")
                self.cond.wait(min(remaining, 0.5))

    def readers_alive(self) -> bool:
        return any(r.is_alive() for r in self.readers)

    def finish(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(timeout)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        if self.proc.stdout is not None and not self.proc.stdout.closed:
            self.finish()


@pytest.fixture
def tails() -> Iterator[list[Tail]]:
    started: list[Tail] = []
    yield started
    for tail in started:
        tail.kill()


def test_tail_prints_live_messages_reports_reconnects_and_exits_130_on_ctrl_c(
    script: str,
    signalwire_emulator: Emulator,
    token_file: str,
    room: str,
    tails: list[Tail],
) -> None:
    bob = signalwire_emulator.create_subscriber("bob@example.com", display_name="Bob")
    signalwire_emulator.send_as(bob, room, "before")
    tail = Tail(script, signalwire_emulator, room, "--history", "1", "--token-file", token_file)
    tails.append(tail)
    tail.wait_for(tail.err, "connected")
    tail.wait_for(tail.out, "Bob: before")
    signalwire_emulator.send_as(bob, room, "live one")
    tail.wait_for(tail.out, "Bob: live one")

    signalwire_emulator.drop_connections()
    tail.wait_for(tail.err, "reconnecting")
    signalwire_emulator.send_as(bob, room, "after the drop")
    tail.wait_for(tail.out, "Bob: after the drop")

    started = time.monotonic()
    tail.proc.send_signal(signal.SIGINT)
    code = tail.finish()
    assert code == ExitCode.INTERRUPTED == 130
    assert time.monotonic() - started < 5.0
    assert not any("Traceback" in line for line in tail.err), tail.err
    assert [line.split("  ", 1)[1] for line in tail.out] == [
        "Bob: before",
        "Bob: live one",
        "Bob: after the drop",
    ]


def test_tail_json_with_count_exits_0(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str, tails: list[Tail]
) -> None:
    tail = Tail(
        script, signalwire_emulator, room, "--json", "--count", "2", "--token-file", token_file
    )
    tails.append(tail)
    tail.wait_for(tail.err, "connected")
    bob = signalwire_emulator.create_subscriber("bob@example.com")
    for text in ("one", "two", "three"):
        signalwire_emulator.send_as(bob, room, text)
    assert tail.finish() == 0
    assert [json.loads(line)["text"] for line in tail.out] == ["one", "two"]


def test_tail_exits_0_on_sigterm(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str, tails: list[Tail]
) -> None:
    tail = Tail(script, signalwire_emulator, room, "--token-file", token_file)
    tails.append(tail)
    tail.wait_for(tail.err, "connected")
    tail.proc.send_signal(signal.SIGTERM)
    assert tail.finish() == 0


def test_tail_stopped_while_reading_where_history_starts_exits_0(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str, tails: list[Tail]
) -> None:
    """SIGTERM while ``subscribe()`` reads the newest message id (the service slow to answer):
    the library treats that read failing as "start unknown" and goes on, so a stop that was an
    ``Exception`` would have been taken for a failed read, and tail would never end."""
    emu = signalwire_emulator
    emu.delay_next(15.0, method="GET", path_prefix="/api/fabric/conversations/")
    tail = Tail(script, emu, room, "--token-file", token_file)
    tails.append(tail)
    # The rule is used up when the read arrives: from then on the emulator holds it.
    assert wait_until(lambda: not emu._faults._rules, TIMEOUT)
    time.sleep(0.2)
    tail.proc.send_signal(signal.SIGTERM)
    assert tail.finish(10.0) == 0
    assert not any("connected" in line for line in tail.err)  # stopped before connecting


# --- the emulator command -------------------------------------------------------------------


def test_emulator_command_is_the_standalone_emulator(script: str) -> None:
    helped = subprocess.run(
        [script, "emulator", "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=False
    )
    assert helped.returncode == 0
    assert "signalwire-chat emulator" in helped.stdout
    assert "--ping-interval" in helped.stdout

    proc = subprocess.Popen(
        [script, "emulator", "--port", "0", "--project-id", "proj", "--log-level", "WARNING"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        assert selector.select(TIMEOUT), "the emulator printed nothing"
        selector.close()
        info = json.loads(proc.stdout.readline())
        assert info["project_id"] == "proj"
        assert info["space_url"] == info["rest_url"]
        # The JSON line is enough to mint a token and use it.
        from signalwire_chat import mint_subscriber_token

        sat = mint_subscriber_token(
            info["space_url"], info["project_id"], info["api_token"], "zed@example.com"
        )
        with ChatClient(sat.token, rest_url=info["rest_url"], relay_url=info["relay_url"]) as c:
            assert c.get_subscriber_info().email == "zed@example.com"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def test_history_progress_bar_only_on_a_terminal(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str
) -> None:
    import pty

    bob = signalwire_emulator.create_subscriber("bob@example.com")
    for i in range(5):
        signalwire_emulator.send_as(bob, room, f"m{i}")
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run(
            [script, "history", room, "--json", "--token-file", token_file],
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=TIMEOUT,
            env=env_for(signalwire_emulator),
            check=False,
        )
        os.close(follower)
        follower = -1
        drawn = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other side is closed and drained
                break
            if not chunk:
                break
            drawn += chunk
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert proc.returncode == 0
    assert [json.loads(line)["text"] for line in proc.stdout.splitlines()] == [
        f"m{i}" for i in range(4, -1, -1)
    ]  # stdout is untouched by the bar
    assert b"reading history" in drawn
    # It disappears when done: the last thing drawn moves up and erases its line.
    assert drawn.endswith(b"\x1b[1A\x1b[2K")


def test_tail_idle_timeout_exits_0(
    script: str, signalwire_emulator: Emulator, token_file: str, room: str
) -> None:
    proc = run(
        script,
        signalwire_emulator,
        "tail",
        room,
        "--idle-timeout",
        "0.5",
        "--token-file",
        token_file,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    assert "connected" in proc.stderr


def test_json_output_works_without_rich_and_tables_name_the_extra(
    signalwire_emulator: Emulator, token_file: str
) -> None:
    # As if the `cli` extra were not installed: `import rich` fails.
    code = (
        "import sys; sys.modules['rich'] = None\n"
        "from signalwire_chat.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )

    def without_rich(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, *args, "--token-file", token_file],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            env=env_for(signalwire_emulator),
            check=False,
        )

    proc = without_rich("addresses", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json_lines(proc.stdout)[0]["name"] == "alice"
    proc = without_rich("addresses")
    assert proc.returncode == ExitCode.ERROR
    assert "signalwire-chat[cli]" in proc.stderr
