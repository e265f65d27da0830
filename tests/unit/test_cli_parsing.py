"""The command line's pure parts: times, exit codes, the parser's shape."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from signalwire_chat import errors
from signalwire_chat.cli import ExitCode, build_parser
from signalwire_chat.cli._app import UsageError, exit_code_for, parse_time

NOW = 1_800_000_000.0


def fixed_now() -> float:
    return NOW


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("15m", NOW - 900),
        ("2h", NOW - 7200),
        ("1.5d", NOW - 1.5 * 86400),
        ("1w", NOW - 604800),
        ("1764600000", 1764600000.0),
        ("1764600000.25", 1764600000.25),
        (
            "2026-12-01T09:30:00Z",
            dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.timezone.utc).timestamp(),
        ),
        (
            "2026-12-01T09:30+02:00",
            dt.datetime(2026, 12, 1, 7, 30, tzinfo=dt.timezone.utc).timestamp(),
        ),
    ],
)
def test_parse_time(text: str, expected: float) -> None:
    assert parse_time(text, now=fixed_now) == pytest.approx(expected)


def test_a_naive_time_is_local_time() -> None:
    local = dt.datetime(2026, 12, 1, 9, 30).astimezone()
    assert parse_time("2026-12-01T09:30") == local.timestamp()
    assert parse_time("2026-12-01") == dt.datetime(2026, 12, 1).astimezone().timestamp()


@pytest.mark.parametrize("text", ["yesterday", "5x", "", "nan", "inf", "-2h"])
def test_parse_time_refuses_nonsense(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time(text)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (UsageError("x"), ExitCode.USAGE),
        (errors.InvalidArgumentError("x"), ExitCode.USAGE),
        (errors.InsecureURLError("x"), ExitCode.USAGE),
        (errors.TokenError("x"), ExitCode.AUTH),
        (errors.AuthenticationError("x", status=401), ExitCode.AUTH),
        (errors.RealtimeAuthenticationError("x", rpc_code=-32002), ExitCode.AUTH),
        (errors.PermissionDeniedError("x", status=403), ExitCode.PERMISSION),
        (errors.NotFoundError("x", status=404), ExitCode.NOT_FOUND),
        (errors.ConnectError("x"), ExitCode.NETWORK),
        (errors.RequestTimeoutError("x"), ExitCode.NETWORK),
        (errors.RateLimitError("x", status=429), ExitCode.SERVICE),
        (errors.ServerError("x", status=503), ExitCode.SERVICE),
        (errors.DecodeError("x"), ExitCode.SERVICE),
        (errors.ClientClosedError("x"), ExitCode.ERROR),
    ],
)
def test_exit_codes(exc: BaseException, code: ExitCode) -> None:
    assert exit_code_for(exc) is code


def test_exit_codes_are_distinct_and_documented_in_the_help() -> None:
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values))
    epilog = build_parser().epilog or ""
    for code in ExitCode:
        assert f"{code.value} " in epilog


def test_common_options_go_before_or_after_the_command() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--rest-url", "http://127.0.0.1:1", "whoami"])
    after = parser.parse_args(["whoami", "--json", "--rest-url", "http://127.0.0.1:1"])
    plain = parser.parse_args(["whoami"])
    assert before.json is after.json is True
    assert before.rest_url == after.rest_url == "http://127.0.0.1:1"
    assert plain.json is False
    assert plain.rest_url is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "emulator"],
        ["--timeout", "3", "emulator", "--port", "8765"],
        ["--json", "emulator", "-h"],
    ],
)
def test_options_before_emulator_are_a_usage_error_not_a_traceback(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from signalwire_chat.cli import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == ExitCode.USAGE
    said = capsys.readouterr().err
    assert "signalwire-chat emulator [options]" in said
    assert "Traceback" not in said


def test_unknown_arguments_of_a_command_are_still_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from signalwire_chat.cli import main

    with pytest.raises(SystemExit) as info:
        main(["whoami", "--bogus"])
    assert info.value.code == ExitCode.USAGE
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


_JWS = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


@pytest.mark.parametrize(
    "argv",
    [
        ["whoami", "--rest-url", "http://chat.example.com"],
        ["tail", "--inbox", "--relay-url", "ws://chat.example.com/"],
        ["token", "mint", "bob@example.com", "--space-url", "http://chat.example.com"],
    ],
)
def test_a_plain_url_to_another_host_is_refused_without_naming_a_python_argument(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from signalwire_chat.cli import main

    monkeypatch.setenv("SIGNALWIRE_TOKEN", _JWS)
    monkeypatch.setenv("SIGNALWIRE_PROJECT_ID", "p")
    monkeypatch.setenv("SIGNALWIRE_API_TOKEN", "PT-x")
    for name in ("SIGNALWIRE_REST_URL", "SIGNALWIRE_RELAY_URL", "SIGNALWIRE_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert main(argv) == ExitCode.USAGE
    said = capsys.readouterr().err
    assert "'chat.example.com'" in said
    # The command line has no allow_insecure: the fix it names must be one it takes.
    assert "allow_insecure" not in said
    assert "use https://" in said or "use wss://" in said
