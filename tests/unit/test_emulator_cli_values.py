"""``signalwire-chat emulator`` with a value its parser lets through but the emulator refuses.

``--port 70000`` or ``--token-ttl -5`` parse (an int, a float), then ``Emulator()`` raised
ValueError: a traceback and exit 1. They are usage errors: one line, exit 2.
"""

from __future__ import annotations

import pytest

from signalwire_chat.cli import ExitCode, main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--port", "70000"], "port must be within 0..65535"),
        (["--token-ttl", "-5"], "token_ttl must be positive"),
        (["--max-text-length", "0"], "max_text_length must be at least 1"),
        (["--idle-timeout", "0"], "idle_timeout must be positive"),
    ],
)
def test_a_value_the_emulator_refuses_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["emulator", *argv])
    assert info.value.code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert f"signalwire-chat emulator: error: {said}" in err
    assert "Traceback" not in err
