"""``signalwire-chat`` against other people's bytes on a real terminal, and on every conversation.

Texts and names come from other subscribers. A person's output runs the real console script
with its stdout on a pseudo terminal (``pty``, output post-processing off, so every byte is
the one written) and checks that nothing a terminal acts on (ESC, BEL, C1 controls, bidi
controls, line separators) arrives from a text or a name, that rich markup in them is shown
as it is, and that ``--json`` still carries the exact text.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import socket
import subprocess
import termios
import time
from pathlib import Path
from typing import NamedTuple

import pytest
import test_cli
from test_cli import TIMEOUT, Tail, env_for, json_lines, run

from signalwire_chat.cli import ExitCode
from signalwire_chat.emulator import Emulator, EmulatorSubscriber

# One trick per message, so that each fits a table cell of 200 columns unbroken.
HOSTILE = [
    "title \x1b]0;pwned\x07 end",
    "clip \x1b]52;c;ZXZpbA==\x07 end",
    "link \x1b]8;;http://evil.example\x1b\\here\x1b]8;;\x1b\\ end",
    "clear \x1b[2J\x1bc end",
    "colour \x1b[31mred\x1b[0m end",
    "c1 \x9b31m \x9d0;t\x9c end",
    "del \x7f bidi \u202eevil\u2066 mark\u200f end",
    "lines \u2028FORGED\u2029FORGED\rFORGED\nFORGED end",
    "markup [/] [link=http://evil.example]click[/link] [bold]b[/bold] end",
]
MALLORY = "Mallory\x1b]0;name\x07[/]\u202e"
ROOM_NAME = "Room\x1b[2J [/] [link=http://evil.example]x[/link]"

# What rich itself writes on a terminal: colours and bold (SGR). Anything else that starts
# with ESC came from somewhere else.
# The same console script, Alice and her token file as test_cli's.
script = test_cli.script
alice = test_cli.alice
token_file = test_cli.token_file

_SGR = re.compile(rb"\x1b\[[0-9;]*m")
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
_INVISIBLE = [
    ch.encode()
    for ch in "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u2028\u2029"
]


def assert_nothing_a_terminal_acts_on(shown: bytes) -> None:
    plain = _SGR.sub(b"", shown)
    for byte in (b"\x1b", b"\x07", b"\x7f", b"\r", b"\x00"):
        assert byte not in plain, (byte, shown)
    assert not _C1_UTF8.search(plain), shown
    for encoded in _INVISIBLE:
        assert encoded not in plain, (encoded, shown)
    assert b"Traceback" not in plain, shown


def on_terminal(
    script: str, emu: Emulator, *args: str, stderr_too: bool = False, **extra: str
) -> tuple[int, bytes, bytes]:
    """Run the script with stdout (and, with ``stderr_too``, stderr) on a pseudo terminal.

    Returns:
        The exit code, what the terminal received, and stderr when it was a pipe.
    """
    leader, follower = pty.openpty()
    mode = termios.tcgetattr(follower)
    mode[1] &= ~termios.OPOST  # no "\n" -> "\r\n": the bytes shown are the bytes written
    termios.tcsetattr(follower, termios.TCSANOW, mode)
    env = env_for(emu, TERM="xterm-256color", **extra)
    proc = subprocess.Popen(
        [script, *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower if stderr_too else subprocess.PIPE,
        env=env,
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
            except OSError:  # EIO: the process closed its side and everything was read
                break
            if not chunk:
                break
            shown += chunk
        code = proc.wait(TIMEOUT)
        errors = proc.stderr.read() if proc.stderr is not None else b""
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        if proc.stderr is not None:
            proc.stderr.close()
    return code, shown, errors


@pytest.fixture
def hostile_room(signalwire_emulator: Emulator, alice: EmulatorSubscriber) -> str:
    room = signalwire_emulator.create_room("hostile", display_name=ROOM_NAME)
    signalwire_emulator.join_group(alice, [room.id])
    mallory = signalwire_emulator.create_subscriber("mallory@example.com", display_name=MALLORY)
    for text in HOSTILE:
        signalwire_emulator.send_as(mallory, room.id, text)
    return room.id


# --- A: hostile bytes -------------------------------------------------------------------------


def test_history_table_shows_hostile_texts_and_names_escaped_and_markup_literally(
    script: str, signalwire_emulator: Emulator, token_file: str, hostile_room: str
) -> None:
    code, shown, errors = on_terminal(
        script, signalwire_emulator, "history", hostile_room, "--token-file", token_file
    )
    assert code == ExitCode.OK, errors
    assert_nothing_a_terminal_acts_on(shown)
    plain = _SGR.sub(b"", shown).decode()
    # What each text tried is visible, escaped as Python's repr writes it.
    assert "title \\x1b]0;pwned\\x07 end" in plain
    assert "clip \\x1b]52;c;ZXZpbA==\\x07 end" in plain
    assert "c1 \\x9b31m \\x9d0;t\\x9c end" in plain
    assert "colour \\x1b[31mred\\x1b[0m end" in plain  # (rich's own colours are stripped above)
    assert "bidi \\u202eevil\\u2066 mark\\u200f end" in plain
    assert "Mallory\\x1b]0;name\\x07[/]\\u202e" in plain
    # rich markup in a text is text: neither an error nor a hyperlink.
    assert "markup [/] [link=http://evil.example]click[/link] [bold]b[/bold] end" in plain
    # A line separator or carriage return does not start a line of its own.
    forged = [line for line in plain.splitlines() if "FORGED" in line]
    assert len(forged) == 1, forged
    assert "lines \\u2028FORGED\\u2029FORGED\\rFORGED" in forged[0]


def test_tables_of_conversations_addresses_and_whoami_escape_names(
    script: str, signalwire_emulator: Emulator, hostile_room: str, tmp_path: Path
) -> None:
    mallory = signalwire_emulator.create_subscriber("mallory@example.com")  # the same one
    signalwire_emulator.join_group(mallory, [hostile_room])
    path = tmp_path / "mallory.token"
    path.write_text(mallory.token)
    for command in ("conversations", "addresses", "whoami"):
        code, shown, errors = on_terminal(
            script, signalwire_emulator, command, "--token-file", str(path)
        )
        assert code == ExitCode.OK, (command, errors)
        assert_nothing_a_terminal_acts_on(shown)
        plain = _SGR.sub(b"", shown).decode()
        if command == "whoami":
            assert plain.startswith("Mallory\\x1b]0;name\\x07[/]\\u202e (subscriber")
        else:
            assert "Room\\x1b[2J [/] [link=http://evil.example]x[/link]" in plain, plain


def test_tail_prints_one_escaped_line_per_message(
    script: str, signalwire_emulator: Emulator, token_file: str, hostile_room: str
) -> None:
    code, shown, _ = on_terminal(
        script,
        signalwire_emulator,
        "tail",
        hostile_room,
        "--history",
        str(len(HOSTILE)),
        "--idle-timeout",
        "1",
        "--token-file",
        token_file,
        stderr_too=True,
    )
    assert code == ExitCode.OK, shown
    assert_nothing_a_terminal_acts_on(shown)
    lines = [line for line in shown.decode().split("\n") if "Mallory" in line]
    assert len(lines) == len(HOSTILE), lines  # no text forged a line of its own
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  Mallory", line) for line in lines)
    assert lines[-1].endswith("  Mallory\\x1b]0;name\\x07[/]\\u202e: " + HOSTILE[-1])
    assert "lines \\u2028FORGED\\u2029FORGED\\rFORGED\\nFORGED end" in lines[-2]


def test_json_keeps_the_exact_texts_and_is_safe_on_a_terminal(
    script: str, signalwire_emulator: Emulator, token_file: str, hostile_room: str
) -> None:
    code, shown, errors = on_terminal(
        script, signalwire_emulator, "history", hostile_room, "--json", "--token-file", token_file
    )
    assert code == ExitCode.OK, errors
    assert_nothing_a_terminal_acts_on(shown)
    messages = json_lines(shown.decode())
    assert [m["text"] for m in messages] == HOSTILE[::-1]
    assert {m["user_name"] for m in messages} == {MALLORY}


@pytest.mark.parametrize("zone", ["JST-9", "EST5"])
def test_times_at_the_edges_of_the_calendar_in_any_time_zone(
    script: str, tmp_path: Path, zone: str
) -> None:
    # The decoder accepts times from year 1 to year 9999 (UTC); east or west of UTC their
    # local time is year 0 or year 10000, which no datetime holds.
    fixed: list[float] = []
    with Emulator(clock=lambda: fixed[0] if fixed else time.time()) as emu:
        alice = emu.create_subscriber("alice@example.com")
        bob = emu.create_subscriber("bob@example.com")
        for edge, text in ((-62135596800.0, "first"), (253402300799.0, "last")):
            fixed.append(edge)
            emu.send_as(bob, alice.address_id, text)
            fixed.clear()
        token = tmp_path / "token"
        token.write_text(alice.token)
        args = ("--token-file", str(token))
        code, shown, errors = on_terminal(script, emu, "history", bob.address_id, *args, TZ=zone)
        assert code == ExitCode.OK, errors
        plain = _SGR.sub(b"", shown).decode()
        assert "9999-12-31" in plain
        assert "0001-01-01" in plain
        tail = ("tail", bob.address_id, "--history", "2", "--idle-timeout", "0.5")
        proc = run(script, emu, *tail, *args, TZ=zone)
        assert proc.returncode == ExitCode.OK, proc.stderr
        assert "Traceback" not in proc.stderr
        lines = proc.stdout.splitlines()
        assert [line.rsplit(": ", 1)[1] for line in lines] == ["first", "last"]
        assert lines[0].startswith("0001-01-01")
        assert lines[1].startswith("9999-12-31")


def test_deeply_nested_metadata_is_a_usage_error(
    script: str, signalwire_emulator: Emulator, token_file: str, hostile_room: str
) -> None:
    send = ("send", hostile_room, "hi", "--token-file", token_file, "--metadata")
    deep = "[" * 50_000 + "]" * 50_000
    proc = run(script, signalwire_emulator, *send, deep)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "--metadata" in proc.stderr
    assert "Traceback" not in proc.stderr
    nested = '{"a": ' * 40 + "1" + "}" * 40  # JSON, deeper than the service takes
    proc = run(script, signalwire_emulator, *send, nested)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    sock.close()
    return port


def test_tail_with_an_unreachable_relay_exits_6_and_does_not_blame_the_token(
    script: str, signalwire_emulator: Emulator, token_file: str, hostile_room: str
) -> None:
    relay = f"ws://127.0.0.1:{_closed_port()}/"
    args = ("tail", hostile_room, "--timeout", "2", "--token-file", token_file)
    proc = run(script, signalwire_emulator, *args, SIGNALWIRE_RELAY_URL=relay)
    assert proc.returncode == ExitCode.NETWORK, proc.stderr
    assert "token" not in proc.stderr
    assert "cannot connect" in proc.stderr


def test_tail_with_a_refused_token_exits_3_and_says_so(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber, tmp_path: Path
) -> None:
    # The address dialect subscribes before any REST call: the relay is the first to refuse.
    expired = tmp_path / "expired"
    expired.write_text(signalwire_emulator.mint_token(alice, ttl=-60))
    args = ("tail", alice.address_id, "--dialect", "address", "--token-file", str(expired))
    proc = run(script, signalwire_emulator, *args)
    assert proc.returncode == ExitCode.AUTH, proc.stderr
    assert "Traceback" not in proc.stderr


# --- B: a token given where a path belongs ----------------------------------------------------


def test_a_token_given_as_the_token_file_is_not_printed(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber, tmp_path: Path
) -> None:
    proc = run(script, signalwire_emulator, "whoami", "--token-file", alice.token)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert alice.token not in proc.stderr + proc.stdout
    for part in filter(None, alice.token.split(".")):
        assert part not in proc.stderr
    assert "looks like a token" in proc.stderr
    # A path that is simply wrong is still named, to be corrected.
    missing = tmp_path / "alice.token"
    proc = run(script, signalwire_emulator, "whoami", "--token-file", str(missing))
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert repr(str(missing)) in proc.stderr
    assert "No such file" in proc.stderr


# --- E: what a URL may be ---------------------------------------------------------------------


def test_a_url_without_a_scheme_is_told_what_is_accepted(
    script: str, signalwire_emulator: Emulator, token_file: str
) -> None:
    proc = run(
        script,
        signalwire_emulator,
        "whoami",
        "--rest-url",
        "localhost:8765",
        "--token-file",
        token_file,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "https://" in proc.stderr
    assert "http://host[:port] to a loopback host" in proc.stderr
    assert "got no scheme" in proc.stderr
    port = signalwire_emulator.port
    proc = run(
        script,
        signalwire_emulator,
        "--json",
        "whoami",
        "--rest-url",
        f"http://localhost:{port}",
        "--token-file",
        token_file,
    )
    assert proc.returncode == ExitCode.OK, proc.stderr


# --- C: every conversation can be read ---------------------------------------------------------


class Team(NamedTuple):
    emu: Emulator
    alice: EmulatorSubscriber
    args: tuple[str, ...]  # Alice's --token-file
    carol: EmulatorSubscriber
    room: str
    group: str


@pytest.fixture
def team(signalwire_emulator: Emulator, alice: EmulatorSubscriber, token_file: str) -> Team:
    """Alice in a room, a direct chat with Bob and a group with Bob and Carol, one message each."""
    emu = signalwire_emulator
    bob = emu.create_subscriber("bob@example.com", display_name="Bob")
    carol = emu.create_subscriber("carol@example.com", display_name="Carol")
    room = emu.create_room("lobby", display_name="The Lobby")
    emu.join_group(alice, [room.id])
    group = emu.join_group(alice, [bob.address_id, carol.address_id])
    emu.send_as(carol, room.id, "in the lobby")
    emu.send_as(bob, alice.address_id, "just to alice")
    emu.send_as(bob, None, "to the three of us", group_id=group)
    return Team(emu, alice, ("--token-file", token_file), carol, room.id, group)


def test_every_conversation_row_has_an_id_that_history_reads(script: str, team: Team) -> None:
    emu, alice, args = team.emu, team.alice, team.args
    proc = run(script, emu, "conversations", *args)
    assert proc.returncode == ExitCode.OK, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    kinds = {
        cells[1].strip(): cells[0].strip() for cells in (r.strip("│").split("│") for r in rows)
    }
    assert kinds[team.group] == "group"
    assert kinds[alice.address_id] == "inbox"  # the row of your own address
    assert "" not in kinds  # no row without an id
    read: dict[str, list[str]] = {}
    for row_id in kinds:
        proc = run(script, emu, "history", row_id, "--json", *args)
        assert proc.returncode == ExitCode.OK, (row_id, proc.stderr)
        read[row_id] = [m["text"] for m in json_lines(proc.stdout)]
    assert read[team.group] == ["to the three of us"]
    assert sorted(read[alice.address_id]) == sorted(
        ["in the lobby", "just to alice", "to the three of us"]
    )


def test_history_inbox_reads_everything_sent_to_me(script: str, team: Team) -> None:
    emu, args = team.emu, team.args
    proc = run(script, emu, "history", "--inbox", *args)
    assert proc.returncode == ExitCode.OK, proc.stderr
    for text in ("in the lobby", "just to alice", "to the three of us"):
        assert text in proc.stdout
    assert "your inbox" in proc.stdout
    # An address or a group still reads only its own conversation.
    proc = run(script, emu, "history", team.room, *args)
    assert "in the lobby" in proc.stdout
    assert "to the three of us" not in proc.stdout
    both = run(script, emu, "history", team.room, "--inbox", *args)
    assert both.returncode == ExitCode.USAGE


def test_tail_follows_the_inbox_and_a_group(script: str, team: Team) -> None:
    emu = team.emu
    for target in ("--inbox", team.group):
        tail = Tail(script, emu, target, "--count", "1", "--json", *team.args)
        try:
            tail.wait_for(tail.err, "connected")
            emu.send_as(team.carol, None, f"live to {target}", group_id=team.group)
            assert tail.finish() == ExitCode.OK, tail.err
        finally:
            tail.kill()
        assert [json.loads(line)["text"] for line in tail.out] == [f"live to {target}"]


def test_an_id_that_is_neither_an_address_nor_a_group_exits_5_naming_what_was_asked(
    script: str, signalwire_emulator: Emulator, token_file: str
) -> None:
    unknown = "3f2b1c0d-9e8f-4a7b-8c6d-5e4f3a2b1c0d"
    for command in ("history", "tail"):
        proc = run(script, signalwire_emulator, command, unknown, "--token-file", token_file)
        assert proc.returncode == ExitCode.NOT_FOUND, proc.stderr
        assert f"'{unknown}': no such address or group" in proc.stderr
        assert "conversations/join" not in proc.stderr  # not a request the user made


def test_send_takes_a_group_id_and_says_what_to_do_about_your_own_address(
    script: str, team: Team
) -> None:
    emu, alice, args = team.emu, team.alice, team.args
    proc = run(script, emu, "send", team.group, "hello all", *args)
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert emu.messages(team.group)[-1]["text"] == "hello all"
    for command in (("send", alice.address_id, "hi"), ("join", alice.address_id)):
        proc = run(script, emu, *command, *args)
        assert proc.returncode == ExitCode.USAGE, proc.stderr
        assert "your own address" in proc.stderr
        assert "--inbox" in proc.stderr
        assert "()" not in proc.stderr  # no advice about Python methods
    proc = run(script, emu, "join", "lobby", *args)
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "'lobby' is not an address id" in proc.stderr
    assert "signalwire-chat addresses" in proc.stderr


def test_a_terminal_that_is_not_utf8_gets_escapes_not_a_traceback(
    script: str, signalwire_emulator: Emulator, alice: EmulatorSubscriber, token_file: str
) -> None:
    emu = signalwire_emulator
    bob = emu.create_subscriber("bob@example.com", display_name="Bob")
    emu.send_as(bob, alice.address_id, "café 日本 \U0001f600")
    args = ("history", bob.address_id, "--token-file", token_file)
    proc = subprocess.run(
        [script, *args],
        capture_output=True,
        timeout=TIMEOUT,
        env=env_for(emu, PYTHONIOENCODING="latin-1"),
        check=False,
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    shown = proc.stdout.decode("latin-1")
    assert "café \\u65e5\\u672c \\U0001f600" in shown
    proc = subprocess.run(
        [script, *args, "--json"],
        capture_output=True,
        timeout=TIMEOUT,
        env=env_for(emu, PYTHONIOENCODING="latin-1"),
        check=False,
    )
    assert proc.returncode == ExitCode.OK, proc.stderr
    assert json.loads(proc.stdout.decode("latin-1"))["text"] == "café 日本 \U0001f600"
